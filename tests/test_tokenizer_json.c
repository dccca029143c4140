/* tokenizer.json pipelines on small hand-made vocabularies, where every id can be worked
 * out by hand: SentencePiece-style BPE in Llama 2's legacy form and with Metaspace (both
 * prepend schemes, split or not), byte fallback, unk and fuse_unk, NFC (against 400
 * strings normalized by Python's unicodedata), ByteLevel's add_prefix_space, literal
 * splits, Digits, added tokens with lstrip/rstrip and respelled added tokens, BOS/EOS
 * from the post-processor and tokenizer_config.json, decoding options, and the messages
 * of what is refused. */
#include <stdarg.h>

#include "test.h"
#include "test_tmp.h"
#include "tok/tok_internal.h"
#include "vene.h"

#define SP "\xE2\x96\x81" /* U+2581, SentencePiece's space */

/* A SentencePiece-style vocab: <unk> <s> </s>, the 256 byte tokens <0x00>.. as ids 3..258,
 * then pieces from id 259 on. `bytes` = 0 leaves the byte tokens out. */
static const char *spm_vocab(int bytes) {
    static char buf[16384];
    size_t n = (size_t)snprintf(buf, sizeof buf, "{\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, ");
    for (int b = 0; b < 256 && bytes; b++) n += (size_t)snprintf(buf + n, sizeof buf - n, "\"<0x%02X>\": %d, ", b, 3 + b);
    snprintf(buf + n, sizeof buf - n,
             "\"" SP "\": 259, \"a\": 260, \"b\": 261, \"" SP "a\": 262, \"" SP "b\": 263, \"ab\": 264, "
             "\"" SP "ab\": 265, \"\xC3\xA9\": 266}");
    return buf;
}
#define SPM_MERGES "[\"" SP " a\", \"" SP " b\", \"a b\", \"" SP "a b\"]"
#define LEGACY_NORM                                                                                     \
    "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"" SP "\"}, "   \
    "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"" SP "\"}]}"
#define LEGACY_DEC                                                                                       \
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"" SP "\"}, " \
    "\"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, "                          \
    "{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]}"
#define BOS_TEMPLATE                                                                                     \
    "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, " \
    "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", "    \
    "\"ids\": [1], \"tokens\": [\"<s>\"]}}}"
#define SPECIALS                                                                                 \
    "[{\"id\": 0, \"content\": \"<unk>\", \"special\": true}, {\"id\": 1, \"content\": \"<s>\", " \
    "\"special\": true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true}]"

/* A tokenizer.json for a SentencePiece-style BPE model with these parts. */
static char *spm_json(const char *normalizer, const char *pre, const char *decoder, const char *post, int bytes) {
    static char buf[32768];
    snprintf(buf, sizeof buf,
             "{\"added_tokens\": " SPECIALS ", \"normalizer\": %s, \"pre_tokenizer\": %s, \"decoder\": %s, "
             "\"post_processor\": %s, \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true, "
             "\"byte_fallback\": %s, \"vocab\": %s, \"merges\": " SPM_MERGES "}}",
             normalizer, pre, decoder, post, bytes ? "true" : "false", spm_vocab(bytes));
    return buf;
}

/* GPT-2's byte alphabet as a vocab (byte b has id b), then `extra` (JSON members). */
static char *byte_json(const char *pre, const char *added, const char *extra, const char *merges) {
    static char buf[32768];
    size_t n = (size_t)snprintf(buf, sizeof buf,
                                "{\"added_tokens\": %s, \"pre_tokenizer\": %s, \"model\": {\"type\": \"BPE\", "
                                "\"merges\": %s, \"vocab\": {",
                                added, pre, merges);
    for (int b = 0, shifted = 0; b < 256; b++) {
        int self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\"\\u%04x\": %d, ", self ? b : 256 + shifted++, b);
    }
    snprintf(buf + n, sizeof buf - n, "%s}}}", extra);
    return buf;
}

/* Writes json as tmpdir/name/tokenizer.json (and `config` as tokenizer_config.json) and
 * loads the folder; *err_out gets the error of a failed load. */
static vene_tokenizer *load_json(const char *name, const char *json, const char *config, vene_error *err_out) {
    mkdir(tpath(name), 0700);
    char path[600];
    snprintf(path, sizeof path, "%s/%s/tokenizer.json", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f) fputs(json, f), fclose(f);
    snprintf(path, sizeof path, "%s/%s/tokenizer_config.json", tmpdir, name);
    if (config && (f = fopen(path, "wb"))) fputs(config, f), fclose(f);
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    int rc = vene_tokenizer_load(path, &t, &err);
    if (err_out) *err_out = err;
    else CHECK_MSG(rc == VENE_OK, "%s: %s", name, err.msg);
    return t;
}

/* Encodes text with flags and compares with the n ids that follow. */
static void expect(const vene_tokenizer *t, unsigned flags, const char *text, int n, ...) {
    int32_t want[32], *ids = NULL;
    size_t got = 0;
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) want[i] = va_arg(ap, int32_t);
    va_end(ap);
    vene_error err = {0};
    int rc = t ? vene_tokenize_ex(t, text, strlen(text), flags, &ids, &got, &err) : -1;
    int ok = rc == VENE_OK && got == (size_t)n && (!n || !memcmp(ids, want, (size_t)n * sizeof *ids));
    CHECK_MSG(ok, "\"%s\" (flags %u): %s", text, flags, err.msg);
    if (!ok && !rc) {
        fprintf(stderr, "  got ");
        for (size_t i = 0; i < got; i++) fprintf(stderr, " %d", ids[i]);
        fputc('\n', stderr);
    }
    vene_free(ids);
}

static void expect_text(const vene_tokenizer *t, unsigned flags, const int32_t *ids, size_t n, const char *want) {
    char *text = NULL;
    size_t len = 0;
    vene_error err = {0};
    int rc = t ? vene_detokenize_ex(t, ids, n, flags, &text, &len, &err) : -1;
    CHECK_MSG(rc == VENE_OK && len == strlen(want) && !strcmp(text, want), "decode: got \"%s\", want \"%s\" %s",
              text ? text : "", want, err.msg);
    vene_free(text);
}

static void check_legacy_spm(void) {
    vene_tokenizer *t = load_json("legacy", spm_json(LEGACY_NORM, "null", LEGACY_DEC, BOS_TEMPLATE, 1), NULL, NULL);
    expect(t, 0, "ab", 1, 265);
    expect(t, 0, " ab", 2, 259, 265); /* the prefix is added even before a space */
    expect(t, 0, "ab ba", 3, 265, 263, 260);
    expect(t, 0, "x", 2, 259, 3 + 'x');                   /* byte fallback */
    expect(t, 0, "\xC3\xA9\xFF", 3, 259, 266, 3 + 0xFF); /* é is a token; a stray byte falls back */
    expect(t, 0, "", 0);
    expect(t, VENE_TOK_ADD_SPECIAL, "ab", 2, 1, 265);
    expect(t, VENE_TOK_PARSE_SPECIAL, "<s>ab</s>", 3, 1, 265, 2); /* the prefix again after <s> */
    expect(t, 0, "<s>", 4, 259, 3 + '<', 3 + 's', 3 + '>');       /* not parsed by default */
    static const int32_t a[] = {259, 265}, b[] = {1, 265, 2};
    expect_text(t, 0, a, 2, " ab");
    expect_text(t, 0, b, 3, "<s> ab</s>");
    expect_text(t, VENE_TOK_SKIP_SPECIAL, b, 3, "ab");
    vene_tokenizer_info info;
    vene_tokenizer_get_info(t, &info);
    CHECK(info.bos_id == 1 && info.unk_id == 0 && info.n_prefix == 1 && info.prefix[0] == 1 && info.n_suffix == 0);
    CHECK(t && !strcmp(info.kind, "SentencePiece BPE") && !strcmp(info.source, "tokenizer.json"));
    CHECK(vene_token_is_special(t, 1) && vene_token_is_special(t, 0) && !vene_token_is_special(t, 265));
    size_t len = 0;
    const char *s = vene_token_text(t, 265, &len);
    CHECK(s && len == 3 && !memcmp(s, " ab", 3));
    s = vene_token_text(t, 3 + 0x41, &len);
    CHECK(s && len == 1 && s[0] == 'A');
    CHECK(vene_token_text(t, 267, &len) == NULL && vene_token_text(t, -1, &len) == NULL);
    vene_tokenizer_free(t);

    /* NFC first: e + combining acute becomes the é token. */
    t = load_json("nfc", spm_json("{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, " LEGACY_NORM
                                  "]}", "null", LEGACY_DEC, "null", 1), NULL, NULL);
    expect(t, 0, "e\xCC\x81", 2, 259, 266);
    vene_tokenizer_free(t);

    /* No byte tokens: unknown characters are <unk>, fused; with no unk, an error. */
    t = load_json("unk", spm_json(LEGACY_NORM, "null", LEGACY_DEC, "null", 0), NULL, NULL);
    expect(t, 0, "axyb", 3, 262, 0, 261);
    expect(t, 0, "xy", 2, 259, 0);
    vene_tokenizer_free(t);
    char *json = spm_json(LEGACY_NORM, "null", LEGACY_DEC, "null", 0), *unk = strstr(json, "\"unk_token\": \"<unk>\"");
    memcpy(unk, "\"unk_token\": null   ", 20);
    t = load_json("nounk", json, NULL, NULL);
    int32_t *ids = NULL;
    size_t n = 0;
    vene_error err = {0};
    int rc = t ? vene_tokenize(t, "a\xE4\xB8\xAD", 4, &ids, &n, &err) : -1;
    CHECK_MSG(rc == VENE_ERR_RANGE && strstr(err.msg, "\xE4\xB8\xAD") && !ids, "%s", err.msg);
    vene_tokenizer_free(t);
}

static void check_metaspace(void) {
    static const char *pre[] = {
        "{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"prepend_scheme\": \"first\", \"split\": false}",
        "{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"prepend_scheme\": \"always\", \"split\": true}"};
    static const char dec[] = "{\"type\": \"Metaspace\", \"replacement\": \"" SP "\", \"prepend_scheme\": \"first\"}";
    vene_tokenizer *t = load_json("ms-first", spm_json("null", pre[0], dec, "null", 1), NULL, NULL);
    expect(t, 0, "ab", 1, 265);
    expect(t, 0, " ab", 1, 265); /* already starts with the replacement: nothing prepended */
    expect(t, 0, "ab ab", 2, 265, 265);
    expect(t, VENE_TOK_PARSE_SPECIAL, "<s>ab", 2, 1, 264); /* "first": not after <s> */
    static const int32_t a[] = {265, 263};
    expect_text(t, 0, a, 2, "ab b");
    vene_tokenizer_free(t);
    t = load_json("ms-always", spm_json("null", pre[1], dec, "null", 1), NULL, NULL);
    expect(t, 0, "ab ab", 2, 265, 265);
    expect(t, 0, "ab  b", 3, 265, 259, 263);
    expect(t, VENE_TOK_PARSE_SPECIAL, "<s>ab", 2, 1, 265);
    vene_tokenizer_free(t);
}

static void check_byte_level(void) {
    /* add_prefix_space: "a" encodes as " a" (Ġa, id 256), but " a" gets no second space. */
    static const char pre_prefix[] =
        "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}";
    vene_tokenizer *t = load_json("prefix", byte_json(pre_prefix, "[]", "\"\\u0120a\": 256", "[\"\\u0120 a\"]"),
                                  NULL, NULL);
    expect(t, 0, "a", 1, 256);
    expect(t, 0, " a", 1, 256);
    expect(t, 0, "aa", 2, 256, 'a');
    vene_tokenizer_free(t);

    /* A literal split keeps "a-" from merging; Digits splits digits apart. */
    static const char *pres[] = {
        "{\"type\": \"ByteLevel\", \"use_regex\": false}",
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, "
        "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": true}, "
        "{\"type\": \"ByteLevel\", \"use_regex\": false}]}"};
    for (int i = 0; i < 3; i++) {
        t = load_json(i == 0 ? "plain" : i == 1 ? "split" : "digits",
                      byte_json(pres[i], "[]", "\"a-\": 256, \"12\": 257", "[\"a -\", \"1 2\"]"), NULL, NULL);
        if (i == 1) expect(t, 0, "a-b12", 4, 'a', '-', 'b', 257);
        else if (i == 2) expect(t, 0, "a-b12", 4, 256, 'b', '1', '2');
        else expect(t, 0, "a-b12", 3, 256, 'b', 257);
        vene_tokenizer_free(t);
    }

    /* Added tokens: <m> swallows the spaces around it; <x> respells id 256 ("a-"); <s> is
     * special and only parsed on request. */
    static const char added[] =
        "[{\"id\": 257, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true}, {\"id\": 258, \"content\": "
        "\"<n>\"}, {\"id\": 256, \"content\": \"<x>\"}, {\"id\": 259, \"content\": \"<s>\", \"special\": true}]";
    t = load_json("added", byte_json(pres[0], added, "\"a-\": 256", "[\"a -\"]"), NULL, NULL);
    expect(t, 0, "a <m> b", 3, 'a', 257, 'b');
    expect(t, 0, "a <n> b", 5, 'a', ' ', 258, ' ', 'b');
    expect(t, 0, "<x>a-", 2, 256, 256);
    expect(t, 0, "<s>", 3, '<', 's', '>');
    expect(t, VENE_TOK_PARSE_SPECIAL, "<s><m>", 2, 259, 257);
    static const int32_t x[] = {256, 259, 257};
    expect_text(t, 0, x, 3, "a-<s><m>");
    expect_text(t, VENE_TOK_SKIP_SPECIAL, x, 3, "a-<m>");
    vene_tokenizer_free(t);
}

static void check_config(void) {
    static const char cfg[] = "{\"add_bos_token\": false, \"add_eos_token\": true, "
                              "\"eos_token\": {\"content\": \"</s>\", \"special\": true}, \"pad_token\": \"<unk>\"}";
    vene_tokenizer *t = load_json("config", spm_json(LEGACY_NORM, "null", LEGACY_DEC, BOS_TEMPLATE, 1), cfg, NULL);
    expect(t, VENE_TOK_ADD_SPECIAL, "ab", 2, 265, 2);
    vene_tokenizer_info info;
    vene_tokenizer_get_info(t, &info);
    CHECK(info.n_prefix == 0 && info.n_suffix == 1 && info.eos_id == 2 && info.pad_id == 0 && info.bos_id == 1);
    vene_tokenizer_free(t);
    vene_error err;
    t = load_json("badcfg", spm_json(LEGACY_NORM, "null", LEGACY_DEC, "null", 1), "{\"bos_token\": \"<bos>\"}", &err);
    CHECK_MSG(!t && err.code == VENE_ERR_FORMAT && strstr(err.msg, "tokenizer_config.json") &&
                  strstr(err.msg, "bos_token \"<bos>\""), "%s", err.msg);
}

/* Each tokenizer.json must be refused with the code and a message naming what. */
static void check_refused(void) {
    static const struct {
        const char *pre, *norm, *dec, *post, *msg;
        int code;
    } cases[] = {
        {"{\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Removed\"}", "null", "null", "null",
         "Split: behavior \"Removed\"", VENE_ERR_UNSUPPORTED},
        {"{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}", "null", "null", "null",
         "pre-tokenizer pattern \"(a\"", VENE_ERR_UNSUPPORTED},
        {"null", "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \" \"}, \"content\": \"x\"}", "null", "null",
         "normalizer Replace", VENE_ERR_UNSUPPORTED},
        {"{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\"}, {\"type\": \"Metaspace\"}]}", "null",
         "null", "null", "Metaspace after a split", VENE_ERR_UNSUPPORTED},
        {"{\"type\": \"Metaspace\", \"prepend_scheme\": \"sometimes\"}", "null", "null", "null",
         "prepend_scheme \"sometimes\"", VENE_ERR_FORMAT},
        {"null", "null", "{\"type\": \"WordPiece\"}", "null", "decoder type \"WordPiece\"", VENE_ERR_UNSUPPORTED},
        {"null", "null", "null", "{\"type\": \"Bogus\"}", "post_processor type \"Bogus\"", VENE_ERR_UNSUPPORTED},
        {"null", "{\"type\": \"NFKC\"}", "null", "null", "normalizer type \"NFKC\"", VENE_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        vene_error err;
        vene_tokenizer *t = load_json("refused", spm_json(cases[i].norm, cases[i].pre, cases[i].dec, cases[i].post, 1),
                                      NULL, &err);
        CHECK_MSG(!t && err.code == cases[i].code && strstr(err.msg, "tokenizer.json") && strstr(err.msg, cases[i].msg),
                  "case %zu: %s", i, err.msg);
        vene_tokenizer_free(t);
    }
    vene_error err;
    char *json = spm_json("null", "null", "null", "null", 1), *unk = strstr(json, "\"<unk>\", \"fuse_unk\"");
    memcpy(unk, "\"<UNK>\"", 7);
    vene_tokenizer *t = load_json("refused", json, NULL, &err);
    CHECK_MSG(!t && strstr(err.msg, "model.unk_token \"<UNK>\" is not in the vocab"), "%s", err.msg);
    /* A post-processor id inside the vocab range that no token has (a fuzzing finding). */
    char *pp = byte_json("{\"type\": \"ByteLevel\"}", "[{\"id\": 300, \"content\": \"<s>\", \"special\": true}]",
                         "\"a-\": 256", "[]");
    char with_pp[40000];
    snprintf(with_pp, sizeof with_pp,
             "{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}, "
             "{\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"<s>\": {\"ids\": [280]}}}, %s", pp + 1);
    t = load_json("refused", with_pp, NULL, &err);
    CHECK_MSG(!t && strstr(err.msg, "BOS id 280 has no token"), "%s", err.msg);
    json = byte_json("null", "[{\"id\": 256, \"content\": \"w\", \"single_word\": true}]", "\"a-\": 256", "[]");
    t = load_json("refused", json, NULL, &err);
    CHECK_MSG(!t && strstr(err.msg, "added_tokens[0] (\"w\"): single_word"), "%s", err.msg);
}

static int unhex(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned v;
        if (sscanf(s + i, "%2x", &v) != 1) return -1;
        out[k++] = (char)v;
    }
    return (int)k;
}

static void check_nfc(void) {
    FILE *f = fopen("fixtures/tokenizer/nfc_cases.txt", "r");
    CHECK(f != NULL);
    char line[1024], in[512], want[512];
    int cases = 0, bad = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');
        if (!tab || !nl) continue;
        int n = unhex(line, (size_t)(tab - line), in), m = unhex(tab + 1, (size_t)(nl - tab - 1), want);
        size_t len = 0;
        char *got = tok_nfc(in, (size_t)n, &len);
        int ok = got && len == (size_t)m && !memcmp(got, want, len);
        if (!ok && bad++ < 5) fprintf(stderr, "  NFC case %d (%.*s) differs\n", cases, (int)(tab - line), line);
        cases++;
        free(got);
    }
    if (f) fclose(f);
    CHECK_MSG(cases == 400 && bad == 0, "NFC: %d of %d cases differ", bad, cases);
    printf("NFC: %d/%d cases match Python's unicodedata\n", cases - bad, cases);
    /* Invalid bytes pass through and cut the text into runs. */
    size_t len = 0;
    char *got = tok_nfc("\xFF" "e\xCC\x81\xCC" "e", 6, &len);
    CHECK(got && len == 5 && !memcmp(got, "\xFF\xC3\xA9\xCC" "e", 5));
    free(got);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene-tokjson-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    check_legacy_spm();
    check_metaspace();
    check_byte_level();
    check_config();
    check_refused();
    check_nfc();
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
