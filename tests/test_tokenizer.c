/* GPT-2 byte-level BPE tokenizer: llama.cpp's 46 reference vectors, known ids, exact
 * round trips of random text and bytes, tokenizer.json loading, load errors, and the
 * `vene tokenize` command. Prints the speed of encoding about 1 MB (no assertion). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "vene.h"

#define GPT2 "fixtures/gpt2-tokenizer/"
#define VECTORS "fixtures/tokenizer/ggml-vocab-gpt-2.gguf"

static char tmpdir[64];

/* Writes tmpdir/name and returns its path (static buffer, valid until the next call). */
static const char *write_tmp(const char *name, const char *data, size_t len) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
    return path;
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        remove(path);
    }
    if (d) closedir(d);
    rmdir(tmpdir);
}

/* Encodes text and compares with want; prints both on a mismatch. */
static int encodes_to(const vene_tokenizer *t, const char *text, size_t len, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    vene_error err = {0};
    if (vene_tokenize(t, text, len, &ids, &n, &err)) {
        fprintf(stderr, "  encode failed: %s\n", err.msg);
        return 0;
    }
    int ok = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!ok) {
        fprintf(stderr, "  text \"%.*s\"\n  got ", (int)len, text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n  want");
        for (size_t i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fputc('\n', stderr);
    }
    vene_free(ids);
    return ok;
}

/* decode(encode(text)) == text, byte for byte. */
static int round_trips(const vene_tokenizer *t, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0, back_len = 0;
    char *back = NULL;
    vene_error err = {0};
    int ok = vene_tokenize(t, text, len, &ids, &n, &err) == VENE_OK &&
             vene_detokenize(t, ids, n, &back, &back_len, &err) == VENE_OK && back_len == len &&
             memcmp(back, text, len) == 0;
    for (size_t i = 0; ok && i < n; i++) ok = ids[i] >= 0 && ids[i] < vene_tokenizer_vocab_size(t);
    vene_free(ids);
    vene_free(back);
    return ok;
}

/* llama.cpp's vectors: .inp strings joined by SEP (with a trailing SEP), .out one line of
 * ids per string. Returns how many strings matched (and checks each). */
static int check_vectors(const vene_tokenizer *t, const char *label) {
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    char *in = test_read_file(VECTORS ".inp", NULL), *out = test_read_file(VECTORS ".out", NULL);
    CHECK(in && out);
    if (!in || !out) return free(in), free(out), 0;
    int n = 0, matched = 0;
    char *p = in, *line = out;
    for (char *sep; (sep = strstr(p, SEP)); p = sep + strlen(SEP), n++) {
        char *nl = strchr(line, '\n');
        CHECK_MSG(nl != NULL, "%s: .out has fewer lines than .inp", label);
        if (!nl) break;
        *nl = '\0';
        int32_t want[512];
        size_t n_want = 0;
        for (char *s = line, *e; n_want < 512; s = e) {
            long v = strtol(s, &e, 10);
            if (e == s) break;
            want[n_want++] = (int32_t)v;
        }
        int ok = encodes_to(t, p, (size_t)(sep - p), want, n_want) && round_trips(t, p, (size_t)(sep - p));
        CHECK_MSG(ok, "%s: vector %d", label, n);
        matched += ok;
        line = nl + 1;
    }
    CHECK_MSG(n == 46 && *line == '\0', "%s: %d vectors, expected 46 and a used-up .out", label, n);
    free(in);
    free(out);
    return matched;
}

static void check_known(const vene_tokenizer *t) {
    static const int32_t capital[] = {464, 3139, 286, 8602, 318}, rome[] = {10598},
                         once[] = {7454, 2402, 257, 640, 612, 373}, eot_text[] = {27, 91, 437, 1659, 5239, 91, 29},
                         ff[] = {15496, 187, 995}, cut[] = {87, 447, 331};
#define ENC(s, w) CHECK(encodes_to(t, s, strlen(s), w, sizeof w / sizeof *w))
    ENC("The capital of Spain is", capital);
    ENC(" Rome", rome);
    ENC("Once upon a time there was", once);
    ENC("<|endoftext|>", eot_text); /* special-token text is not parsed as special */
    /* Invalid UTF-8: the valid runs split as if alone; each run of invalid bytes is one
     * word, so the cut-off "\xE2\x80" of a "…" merges to its token 447 ("âĢ"). */
    ENC("Hello\xFF world", ff);
    ENC("x\xE2\x80 y", cut);
#undef ENC
    CHECK(vene_tokenizer_vocab_size(t) == 50257);
    CHECK(vene_token_id(t, "<|endoftext|>") == 50256);
    CHECK(vene_token_id(t, "\xC4\xA0the") == 262); /* "Ġthe" */
    CHECK(vene_token_id(t, "no such piece here") == -1);
    CHECK(vene_token_piece(t, 464) && !strcmp(vene_token_piece(t, 464), "The"));
    CHECK(vene_token_piece(t, 50256) && !strcmp(vene_token_piece(t, 50256), "<|endoftext|>"));
    CHECK(vene_token_piece(t, -1) == NULL && vene_token_piece(t, 50257) == NULL);

    int32_t *ids = NULL;
    size_t n = 99;
    vene_error err = {0};
    CHECK(vene_tokenize(t, "", 0, &ids, &n, &err) == VENE_OK && n == 0 && ids != NULL);
    vene_free(ids);
    CHECK(vene_tokenize(t, NULL, 0, &ids, &n, &err) == VENE_OK && n == 0);
    vene_free(ids);
    CHECK(vene_tokenize(t, NULL, 3, &ids, &n, &err) == VENE_ERR_ARG);

    char *text = NULL;
    size_t len = 0;
    const int32_t good[] = {464, 3139}, bad[] = {464, 50257}, neg[] = {-1};
    CHECK(vene_detokenize(t, good, 2, &text, &len, &err) == VENE_OK && len == 11 && !strcmp(text, "The capital"));
    vene_free(text);
    int rc = vene_detokenize(t, bad, 2, &text, &len, &err);
    CHECK_MSG(rc == VENE_ERR_RANGE && strstr(err.msg, "50257") && strstr(err.msg, "vocab size 50257"), "%s", err.msg);
    CHECK(vene_detokenize(t, neg, 1, &text, &len, &err) == VENE_ERR_RANGE && strstr(err.msg, "-1"));
    CHECK(vene_detokenize(t, NULL, 0, &text, &len, &err) == VENE_OK && len == 0 && text && !text[0]);
    vene_free(text);
}

/* ---------------------------------------------------------------- random round trips */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static size_t put_utf8(uint32_t c, char *o) {
    size_t n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t i = n - 1; i > 0; i--, c >>= 6) o[i] = (char)(0x80 | (c & 63));
    o[0] = (char)(lead[n] | c);
    return n;
}

/* A code point drawn to hit the pre-tokenizer's classes and the byte alphabet's edges. */
static uint32_t random_cp(void) {
    static const uint32_t ws[] = {' ', '\t', '\n', '\r', 0x0B, 0x0C, 0x85, 0xA0, 0x1680, 0x2003, 0x2028, 0x3000, 0x1C};
    static const uint32_t ranges[][2] = {{0x20, 0x7E},     {0x00, 0x1F},     {0xA1, 0xFF},   {0x100, 0x17F},
                                         {0x391, 0x3C9},   {0x410, 0x44F},   {0x5D0, 0x5EA}, {0x900, 0x97F},
                                         {0x4E00, 0x4FFF}, {0xAC00, 0xAD00}, {0x1F300, 0x1F6FF}, {0x200B, 0x200D},
                                         {0x80, 0x10FFFF}};
    uint32_t r = next_u32() % 100;
    if (r < 15) return ws[next_u32() % (sizeof ws / sizeof *ws)];
    if (r < 20) return "'sdtmlrev"[next_u32() % 9];
    const uint32_t *g = ranges[next_u32() % (sizeof ranges / sizeof *ranges)];
    for (;;) {
        uint32_t c = g[0] + next_u32() % (g[1] - g[0] + 1);
        if (c < 0xD800 || c > 0xDFFF) return c;
    }
}

/* Byte fragments that break UTF-8 in every way, mixed with valid characters. */
static size_t random_bytes(char *o, size_t max) {
    static const char *frag[] = {"\x80", "\xBF", "\xC0\xAF", "\xC3", "\xE2\x82", "\xED\xA0\x80", "\xF0\x9F\x98",
                                 "\xF5\x80\x80\x80", "\xFF", "\xFE", " ", "'s", "\n\n", "a", "1", "\xC3\xA9", ""};
    size_t n = 0, want = next_u32() % max;
    while (n < want) {
        uint32_t r = next_u32() % 3;
        if (r == 0) o[n++] = (char)next_u32();
        else if (r == 1) {
            const char *f = frag[next_u32() % (sizeof frag / sizeof *frag)];
            size_t k = f[0] ? strlen(f) : 1; /* "" stands for a NUL byte */
            if (n + k > max) break;
            memcpy(o + n, f, k);
            n += k;
        } else {
            if (n + 4 > max) break;
            n += put_utf8(random_cp(), o + n);
        }
    }
    return n;
}

static void check_round_trips(const vene_tokenizer *t) {
    char buf[512];
    int bad_text = 0, bad_bytes = 0, runs = 2000;
    for (int i = 0; i < runs; i++) {
        size_t n = 0, want = next_u32() % 60;
        for (size_t k = 0; k < want; k++) n += put_utf8(random_cp(), buf + n);
        if (!round_trips(t, buf, n) && bad_text++ < 3) fprintf(stderr, "  text round trip failed (%zu bytes)\n", n);
    }
    for (int i = 0; i < runs; i++) {
        size_t n = random_bytes(buf, sizeof buf);
        if (!round_trips(t, buf, n) && bad_bytes++ < 3) fprintf(stderr, "  bytes round trip failed (%zu bytes)\n", n);
    }
    CHECK_MSG(bad_text == 0, "%d of %d random UTF-8 strings did not round-trip", bad_text, runs);
    CHECK_MSG(bad_bytes == 0, "%d of %d random byte strings did not round-trip", bad_bytes, runs);

    /* Long runs of one class: the regex backtracks over whitespace, and a long word
     * must merge in O(n log n). */
    size_t big = 200000;
    char *s = malloc(big);
    static const char fill[] = {' ', 'a', '7', '\xFF', '!', '\n', '\0'};
    for (size_t k = 0; k < sizeof fill; k++) {
        memset(s, fill[k], big);
        CHECK_MSG(round_trips(t, s, big), "run of byte 0x%02x", (unsigned char)fill[k]);
    }
    for (size_t k = 0; k < big; k++) s[k] = (char)next_u32();
    CHECK(round_trips(t, s, big));
    free(s);
}

/* ---------------------------------------------------------------- tokenizer.json */

/* A tokenizer.json with the GPT-2 vocab and merges; merges as "a b" or as ["a", "b"]. */
static char *make_tokenizer_json(int array_merges) {
    char *vocab_text = test_read_file(GPT2 "encoder.json", NULL), *merges = test_read_file(GPT2 "vocab.bpe", NULL);
    cJSON *vocab = vocab_text ? cJSON_Parse(vocab_text) : NULL;
    free(vocab_text);
    if (!vocab || !merges) return cJSON_Delete(vocab), free(merges), NULL;
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *list = cJSON_CreateArray();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens"), *eot = cJSON_CreateObject();
    cJSON_AddNumberToObject(eot, "id", 50256);
    cJSON_AddStringToObject(eot, "content", "<|endoftext|>");
    cJSON_AddTrueToObject(eot, "special");
    cJSON_AddItemToArray(added, eot);
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddFalseToObject(pre, "add_prefix_space");
    cJSON_AddTrueToObject(pre, "use_regex");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    for (char *line = strchr(merges, '\n') + 1, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        char *sp = strchr(line, ' ');
        if (!array_merges) cJSON_AddItemToArray(list, cJSON_CreateString(line));
        else if (sp) {
            *sp = '\0';
            const char *pair[2] = {line, sp + 1};
            cJSON_AddItemToArray(list, cJSON_CreateStringArray(pair, 2));
        }
    }
    cJSON_AddItemToObject(model, "merges", list);
    cJSON_AddItemToObject(root, "model", model);
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(merges);
    return json;
}

static void check_tokenizer_json(void) {
    for (int array_merges = 0; array_merges < 2; array_merges++) {
        char *json = make_tokenizer_json(array_merges);
        CHECK(json != NULL);
        if (!json) continue;
        write_tmp("tokenizer.json", json, strlen(json));
        free(json);
        vene_tokenizer *t = NULL;
        vene_error err = {0};
        int rc = vene_tokenizer_load(tmpdir, &t, &err);
        CHECK_MSG(rc == VENE_OK, "%s", err.msg);
        if (rc) continue;
        int matched = check_vectors(t, array_merges ? "tokenizer.json, array merges" : "tokenizer.json");
        printf("tokenizer.json (%s merges): %d/46 vectors\n", array_merges ? "array" : "string", matched);
        CHECK(vene_token_id(t, "<|endoftext|>") == 50256 && vene_tokenizer_vocab_size(t) == 50257);
        vene_tokenizer_free(t);
    }
    remove_tmpdir();
    mkdir(tmpdir, 0700);
}

/* ---------------------------------------------------------------- errors */

static void expect_fail(int rc, vene_tokenizer *t, const vene_error *err, int code, const char *a, const char *b) {
    CHECK_MSG(rc == code && t == NULL && strstr(err->msg, a) && (!b || strstr(err->msg, b)),
              "rc %s, message \"%s\", wanted %s mentioning \"%s\"%s%s", vene_status_name(rc), err->msg,
              vene_status_name(code), a, b ? " and " : "", b ? b : "");
    vene_tokenizer_free(t);
}

static void files_fail(const char *vocab, const char *merges, int code, const char *a, const char *b) {
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    int rc = vene_tokenizer_load_files(vocab, merges, &t, &err);
    expect_fail(rc, t, &err, code, a, b);
}

static void dir_fail(const char *dir, int code, const char *a, const char *b) {
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    int rc = vene_tokenizer_load(dir, &t, &err);
    expect_fail(rc, t, &err, code, a, b);
}

/* write_tmp for NUL-terminated contents; returns a copy of the path in out. */
static const char *put(const char *name, const char *text, char out[256]) {
    snprintf(out, 256, "%s", write_tmp(name, text, strlen(text)));
    return out;
}

/* A JSON vocab in which byte b has id b, plus one more piece (JSON-escaped) as id 256. */
static void byte_vocab(char *out, size_t cap, const char *extra) {
    size_t n = (size_t)snprintf(out, cap, "{");
    for (int b = 0, shifted = 0; b < 256; b++) {
        int self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        uint32_t cp = self ? (uint32_t)b : (uint32_t)(256 + shifted++);
        n += (size_t)snprintf(out + n, cap - n, "\"\\u%04x\": %d, ", cp, b);
    }
    snprintf(out + n, cap - n, "\"%s\": 256}", extra);
}

/* Whitespace is Unicode White_Space, as in the reference's Python `regex` \s. PCRE2's
 * own UCP \s also takes U+180E (Mongolian vowel separator, a format character since
 * Unicode 6.3). GPT-2's merges never touch it, so a vocab whose one merge is "Ġ" + "á"
 * (0x20 0xE1) shows the split: " \u180E" must be one punctuation word (and merge),
 * while " \u0085" (NEL, White_Space) is a space followed by a whitespace run. */
static void check_whitespace_class(void) {
    char vocab[8192], vocab_path[256], merges_path[256];
    byte_vocab(vocab, sizeof vocab, "\\u0120\\u00e1");
    put("ws_vocab.json", vocab, vocab_path);
    put("ws_merges.txt", "\xC4\xA0 \xC3\xA1\n", merges_path);
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    CHECK_MSG(vene_tokenizer_load_files(vocab_path, merges_path, &t, &err) == VENE_OK, "%s", err.msg);
    if (!t) return;
    static const int32_t mvs[] = {97, 256, 160, 142, 98}, nel[] = {97, 32, 194, 133, 98};
    CHECK(encodes_to(t, "a \xE1\xA0\x8E" "b", 6, mvs, 5));
    CHECK(encodes_to(t, "a \xC2\x85" "b", 5, nel, 5));
    vene_tokenizer_free(t);
}

static void check_errors(void) {
    char vocab_path[256], merges_path[256], empty_path[256], bad[256];
    dir_fail("fixtures/no-such-dir", VENE_ERR_IO, "no-such-dir", NULL);
    files_fail(GPT2 "missing.json", GPT2 "vocab.bpe", VENE_ERR_IO, "missing.json", NULL);
    files_fail(GPT2 "encoder.json", GPT2 "missing.bpe", VENE_ERR_IO, "missing.bpe", NULL);

    /* A vocab of the 256 byte symbols plus "Ġt", enough for merges to be checked. */
    char vocab[8192];
    byte_vocab(vocab, sizeof vocab, "\\u0120t");
    put("vocab.json", vocab, vocab_path);
    put("merges.txt", "#version: 0.2\n\xC4\xA0 t\n", merges_path);
    put("empty.txt", "#version: 0.2\n", empty_path);
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    CHECK_MSG(vene_tokenizer_load_files(vocab_path, merges_path, &t, &err) == VENE_OK, "%s", err.msg);
    CHECK(t && vene_token_id(t, "\xC4\xA0t") == 256 && vene_tokenizer_vocab_size(t) == 257);
    vene_tokenizer_free(t);
    t = NULL;
    CHECK_MSG(vene_tokenizer_load(tmpdir, &t, &err) == VENE_OK, "%s", err.msg); /* vocab.json + merges.txt */
    vene_tokenizer_free(t);

    put("bad_merges.txt", "#version: 0.2\n\xC4\xA0 t\n\xC4\xA0t\n", bad);
    files_fail(vocab_path, bad, VENE_ERR_FORMAT, "bad_merges.txt:3", "two pieces");
    put("bad_merges.txt", "\xC4\xA0 t\na  b\n", bad);
    files_fail(vocab_path, bad, VENE_ERR_FORMAT, "bad_merges.txt:2", "two pieces");
    put("bad_merges.txt", "#version: 0.2\n\xC4\xA0 t\nqq zz\n", bad);
    files_fail(vocab_path, bad, VENE_ERR_FORMAT, "bad_merges.txt:3", "\"qq\" is not in the vocab");
    put("bad_merges.txt", "a b\n", bad); /* "ab" is not in the vocab */
    files_fail(vocab_path, bad, VENE_ERR_FORMAT, "bad_merges.txt:1", "\"ab\"");

    put("bad.json", "{\"a\": 0,\n \"b\": }", bad);
    files_fail(bad, merges_path, VENE_ERR_FORMAT, "bad.json:2", "malformed JSON");
    put("bad.json", "{\"a\": 0, \"b\": \"one\"}", bad);
    files_fail(bad, merges_path, VENE_ERR_FORMAT, "bad.json", "key \"b\"");
    put("bad.json", "{\"a\": 0, \"b\": 0}", bad);
    files_fail(bad, merges_path, VENE_ERR_FORMAT, "bad.json", "id 0");
    put("bad.json", "{\"a\": 0, \"b\": 1}", bad);
    files_fail(bad, empty_path, VENE_ERR_FORMAT, "bad.json", "byte 0x00");
    put("bad.json", "{\"a\": 0}\n}", bad);
    files_fail(bad, merges_path, VENE_ERR_FORMAT, "bad.json:2:1", "malformed JSON");
    put("bad.json", "[1, 2]", bad);
    files_fail(bad, merges_path, VENE_ERR_FORMAT, "bad.json", NULL);
    remove(vocab_path);
    dir_fail(tmpdir, VENE_ERR_IO, tmpdir, NULL);

    static const struct {
        const char *json, *msg;
        int code;
    } tj[] = {
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []", "tokenizer.json:1:", VENE_ERR_FORMAT},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "WordPiece", VENE_ERR_UNSUPPORTED},
        {"{\"normalizer\": {\"type\": \"Lowercase\"}, \"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}}",
         "normalizer", VENE_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}}",
         "pre_tokenizer", VENE_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"vocab\": {\"a\": 0}, \"merges\": [[1, 2]]}}",
         "model.merges[0]", VENE_ERR_FORMAT},
        {"{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]}}",
         "\"c\"", VENE_ERR_FORMAT},
        {"{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"added_tokens\": [{\"id\": \"0\", \"content\": \"x\"}]}",
         "added_tokens[0]", VENE_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof tj / sizeof *tj; i++) {
        put("tokenizer.json", tj[i].json, bad);
        dir_fail(tmpdir, tj[i].code, "tokenizer.json", tj[i].msg);
    }
}

/* ---------------------------------------------------------------- speed */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* About 1 MB of English-like text with many distinct words (so the per-call word cache
 * does not turn it into a lookup benchmark), punctuation and numbers. */
static void report_speed(const vene_tokenizer *t) {
    static const char *syl[] = {"the", "an", "pro", "ter", "ing", "ly", "con", "si", "de", "ra", "tion", "mo",
                                "ver", "sta", "ble", "qu", "est", "ment", "al", "ic", "ous", "ph", "ex", "um"};
    static const char *punct[] = {" ", " ", " ", " ", " ", ", ", ". ", "\n", " (", ") ", "'s ", " - "};
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap + 64);
    while (n < cap) {
        if (next_u32() % 20 == 0) n += (size_t)snprintf(text + n, 64, "%u", next_u32() % 100000);
        for (uint32_t k = 1 + next_u32() % 4; k; k--) n += (size_t)snprintf(text + n, 64, "%s", syl[next_u32() % 24]);
        n += (size_t)snprintf(text + n, 64, "%s", punct[next_u32() % 12]);
    }
    int32_t *ids = NULL;
    size_t n_ids = 0, back_len = 0;
    char *back = NULL;
    vene_error err = {0};
    double t0 = now();
    int rc = vene_tokenize(t, text, n, &ids, &n_ids, &err);
    double t1 = now();
    rc = rc ? rc : vene_detokenize(t, ids, n_ids, &back, &back_len, &err);
    double t2 = now();
    CHECK_MSG(rc == VENE_OK && back_len == n && !memcmp(back, text, n), "1 MB round trip: %s", err.msg);
    printf("speed: encoded %.2f MB into %zu tokens in %.1f ms (%.1f MB/s); decoded in %.1f ms\n", n / 1e6, n_ids,
           (t1 - t0) * 1e3, n / 1e6 / (t1 - t0), (t2 - t1) * 1e3);
    vene_free(ids);
    vene_free(back);
    free(text);
}

/* ---------------------------------------------------------------- CLI */

/* Runs `vene tokenize ARGS` (stdout and stderr together) and compares with want. */
static void cli_case(const char *bin, const char *args, int want_rc, const char *want) {
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "'%s' tokenize %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = '\0';
    int status = p ? pclose(p) : -1;
    int rc = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    CHECK_MSG(rc == want_rc && !strcmp(out, want), "`vene tokenize %s`: exit %d, output \"%s\"", args, rc, out);
}

/* ctest passes the built tool in VENE_BIN; run by hand without it, these are skipped. */
static void check_cli(void) {
    const char *bin = getenv("VENE_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("CLI checks skipped: VENE_BIN is not set to a built `vene`\n");
        return;
    }
    cli_case(bin, GPT2 " 'The capital of Spain is' --ids", 0, "464 3139 286 8602 318\n");
    cli_case(bin, "--ids " GPT2 " ' Rome'", 0, "10598\n");
    cli_case(bin, GPT2 " 'Hi \"you\"\t\xc3\xa9'", 0,
             "17250\t\"Hi\"\n366\t\" \\\"\"\n5832\t\"you\"\n1\t\"\\\"\"\n197\t\"\\t\"\n2634\t\"\xc3\xa9\"\n");
    cli_case(bin, GPT2 " \"$(printf ' \\360\\237\\230\\200')\"", 0,
             "30325\t\" \\xf0\\x9f\\x98\"\n222\t\"\\x80\"\n");
    cli_case(bin, GPT2 " ''", 1, "vene: tokenize: empty text\n");
    cli_case(bin, "fixtures/no-such-dir x", 1,
             "vene: fixtures/no-such-dir: No such file or directory (expected a model folder, a tokenizer.json or a "
             "GGUF file)\n");
    cli_case(bin, GPT2, 1, "vene: tokenize: usage: vene tokenize MODEL TEXT [--ids] [--special] [--parse-special]\n");
    /* GGUF files and tokenizer.json files directly; BOS and special tokens on request */
    cli_case(bin, "fixtures/tokenizer/ggml-vocab-llama-spm.gguf 'Hello world' --ids", 0, "15043 3186\n");
    cli_case(bin, "fixtures/tokenizer/ggml-vocab-llama-spm.gguf 'Hello world' --ids --special", 0, "1 15043 3186\n");
    cli_case(bin, "fixtures/tokenizer/ggml-vocab-llama-spm.gguf 'Hi<s>'", 0,
             "6324\t\" Hi\"\n29966\t\"<\"\n29879\t\"s\"\n29958\t\">\"\n");
    cli_case(bin, "fixtures/tokenizer/ggml-vocab-llama-spm.gguf 'Hi<s>' --parse-special", 0,
             "6324\t\" Hi\"\n1\t\"<s>\"\n");
    cli_case(bin, "fixtures/tokenizer/llama-bpe.tokenizer.json '<|begin_of_text|>Hello' --ids --parse-special", 0,
             "128000 9906\n");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene-tok-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);

    if (access(GPT2 "encoder.json", R_OK) != 0)
        fprintf(stderr, "note: fixtures not found: run from the tests/ folder (ctest does)\n");
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    int rc = vene_tokenizer_load_files(GPT2 "encoder.json", GPT2 "vocab.bpe", &t, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (t) {
        printf("vocab.json + merges.txt: %d/46 vectors\n", check_vectors(t, "encoder.json + vocab.bpe"));
        check_known(t);
        check_round_trips(t);
        report_speed(t);
        vene_tokenizer_free(t);
    }
    t = NULL;
    CHECK_MSG(vene_tokenizer_load(GPT2, &t, &err) == VENE_OK, "%s", err.msg); /* encoder.json + vocab.bpe */
    vene_tokenizer_free(t);
    check_tokenizer_json();
    check_errors();
    check_whitespace_class();
    remove_tmpdir();
    check_cli();
    TEST_MAIN_END();
}
