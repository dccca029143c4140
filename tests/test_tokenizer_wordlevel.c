/* Hugging Face's WordLevel model with the Whitespace pre-tokenizer (src/tok/tok_wordlevel.c):
 * the split (\w+|[^\w\s]+ over Unicode), whole-word lookup with the unknown token, added
 * tokens matched inside text, decoding joined by spaces, and the load errors. Expected
 * ids follow the tokenizers library's definitions of the two components. */
#include <stdint.h>

#include "test.h"
#include "test_tmp.h"
#include "vene.h"

static const char *vocab_json =
    "{\"[UNK]\": 0, \"<|endoftext|>\": 1, \"The\": 2, \"capital\": 3, \"of\": 4, \"Spain\": 5, \"is\": 6,"
    " \"Madrid\": 7, \".\": 8, \"'\": 9, \"s\": 10, \"Z\\u00fcrich\": 11, \"!?\": 12, \"_x1\": 13, \"de\": 14}";

static const char *added_json =
    "[{\"id\": 0, \"content\": \"[UNK]\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
    "  \"normalized\": false, \"special\": true},"
    " {\"id\": 1, \"content\": \"<|endoftext|>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
    "  \"normalized\": false, \"special\": true}]";

/* A folder with a tokenizer.json; pre/unk/extra vary per case. */
static const char *write_tok(const char *name, const char *pre, const char *unk, const char *extra, const char *added) {
    const char *dir = tpath(name);
    mkdir(dir, 0777);
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return dir;
    /* extra comes first: of two equal keys, the first is the one read */
    fprintf(f, "{%s \"version\": \"1.0\", \"added_tokens\": %s, \"normalizer\": null, \"pre_tokenizer\": %s,"
               " \"post_processor\": null, \"decoder\": null, \"model\": {\"type\": \"WordLevel\", \"vocab\": %s%s%s}}\n",
            extra, added, pre, vocab_json, unk ? ", \"unk_token\": " : "", unk ? unk : "");
    fclose(f);
    return dir;
}

static int encodes(const vene_tokenizer *t, const char *text, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t k = 0;
    vene_error err = {0};
    int ok = vene_tokenize(t, text, strlen(text), &ids, &k, &err) == VENE_OK && ids != NULL && k == n &&
             (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!ok) {
        fprintf(stderr, "  \"%s\": got", text);
        for (size_t i = 0; i < k; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, " (%s)\n", err.msg);
    }
    vene_free(ids);
    return ok;
}
#define ENCODES(t, text, ...)                                                         \
    do {                                                                              \
        const int32_t want_[] = {__VA_ARGS__};                                        \
        CHECK(encodes((t), (text), want_, sizeof want_ / sizeof want_[0]));           \
    } while (0)

static int decodes(const vene_tokenizer *t, const int32_t *ids, size_t n, const char *want) {
    char *text = NULL;
    size_t len = 0;
    vene_error err = {0};
    int ok = vene_detokenize(t, ids, n, &text, &len, &err) == VENE_OK && len == strlen(want) && !strcmp(text, want);
    if (!ok) fprintf(stderr, "  decode: got \"%s\", want \"%s\" (%s)\n", text ? text : "", want, err.msg);
    vene_free(text);
    return ok;
}

static void test_encode(const vene_tokenizer *t) {
    ENCODES(t, "The capital of Spain is Madrid.", 2, 3, 4, 5, 6, 7, 8);
    ENCODES(t, "Spain's capital", 5, 9, 10, 3);                 /* punctuation splits a word */
    ENCODES(t, "  The\tcapital\nof \r\n", 2, 3, 4);              /* every kind of space is dropped */
    ENCODES(t, "The capital of France is Paris!?", 2, 3, 4, 0, 6, 0, 12); /* "!?" is one run */
    ENCODES(t, "Paris !? !", 0, 12, 0);
    ENCODES(t, "Z\xc3\xbcrich _x1", 11, 13);                    /* letters beyond ASCII, _ and digits are \w */
    ENCODES(t, "de-Spain", 14, 0, 5);
    ENCODES(t, "Madrid<|endoftext|>The", 7, 1, 2);               /* added tokens inside a word */
    ENCODES(t, "Madrid <|endoftext|> The", 7, 1, 2);
    ENCODES(t, "Mad<|endoftext|>rid", 0, 1, 0);
    ENCODES(t, "<|endoftext|><|endoftext|>[UNK]", 1, 1, 0);
    ENCODES(t, "<|endoftext", 0, 0);                             /* a partial added token is text */
    int32_t *ids = NULL;
    size_t n = 1;
    vene_error err = {0};
    CHECK(vene_tokenize(t, "", 0, &ids, &n, &err) == VENE_OK && ids != NULL && n == 0);
    vene_free(ids);
    CHECK(vene_tokenize(t, " \t ", 3, &ids, &n, &err) == VENE_OK && n == 0);
    vene_free(ids);
    /* invalid UTF-8 is neither a word nor punctuation: skipped, and the rest still splits */
    ENCODES(t, "Spain\xff is", 5, 6);
}

static void test_decode(const vene_tokenizer *t) {
    const int32_t s[] = {2, 3, 4, 5, 6, 7, 8};
    CHECK(decodes(t, s, 7, "The capital of Spain is Madrid ."));
    const int32_t e[] = {7, 1};
    CHECK(decodes(t, e, 2, "Madrid <|endoftext|>"));
    CHECK(decodes(t, NULL, 0, ""));
    CHECK(decodes(t, s + 5, 1, "Madrid"));
    /* decoding then encoding gives the ids back (no unknowns) */
    CHECK(encodes(t, "The capital of Spain is Madrid .", s, 7));
    const int32_t bad[] = {2, 15};
    char *text = NULL;
    size_t len = 0;
    vene_error err = {0};
    CHECK(vene_detokenize(t, bad, 2, &text, &len, &err) == VENE_ERR_RANGE && strstr(err.msg, "15"));
    CHECK(vene_tokenizer_vocab_size(t) == 15);
    CHECK(vene_token_id(t, "Madrid") == 7 && vene_token_id(t, "<|endoftext|>") == 1 && vene_token_id(t, "Paris") == -1);
    CHECK(vene_token_piece(t, 11) && !strcmp(vene_token_piece(t, 11), "Z\xc3\xbcrich"));
}

static int load_fails(const char *dir, int code, const char *needle) {
    vene_tokenizer *t = (vene_tokenizer *)1;
    vene_error err = {0};
    int rc = vene_tokenizer_load(dir, &t, &err);
    int ok = rc == code && t == NULL && strstr(err.msg, needle) && strstr(err.msg, "tokenizer.json");
    if (!ok) fprintf(stderr, "  %s: rc %d, \"%s\"\n", dir, rc, err.msg);
    if (!rc) vene_tokenizer_free(t);
    return ok;
}

static void test_errors(void) {
    const char *ws = "{\"type\": \"Whitespace\"}";
    CHECK(load_fails(write_tok("bytelevel", "{\"type\": \"ByteLevel\"}", "\"[UNK]\"", "", added_json), VENE_ERR_UNSUPPORTED, "Whitespace"));
    CHECK(load_fails(write_tok("nopre", "null", "\"[UNK]\"", "", added_json), VENE_ERR_UNSUPPORTED, "Whitespace"));
    CHECK(load_fails(write_tok("badunk", ws, "\"<unk>\"", "", added_json), VENE_ERR_FORMAT, "<unk>"));
    CHECK(load_fails(write_tok("decoder", ws, "\"[UNK]\"", " \"decoder\": {\"type\": \"WordPiece\"},", added_json),
                     VENE_ERR_UNSUPPORTED, "decoder"));
    CHECK(load_fails(write_tok("norm", ws, "\"[UNK]\"", " \"normalizer\": {\"type\": \"Lowercase\"},", added_json),
                     VENE_ERR_UNSUPPORTED, "normalizer"));
    CHECK(load_fails(write_tok("lstrip", ws, "\"[UNK]\"", "",
                               "[{\"id\": 1, \"content\": \"<|endoftext|>\", \"lstrip\": true, \"special\": true}]"),
                     VENE_ERR_UNSUPPORTED, "lstrip"));
    /* without an unknown token, a word outside the vocabulary is an error that names it */
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    CHECK(vene_tokenizer_load(write_tok("nounk", ws, NULL, "", "[]"), &t, &err) == VENE_OK);
    if (t) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(vene_tokenize(t, "The Paris", 9, &ids, &n, &err) == VENE_ERR_FORMAT && strstr(err.msg, "\"Paris\"") && !ids);
        ENCODES(t, "The capital", 2, 3);
        vene_tokenizer_free(t);
    }
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene_wordlevel.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    int rc = vene_tokenizer_load(write_tok("ok", "{\"type\": \"Whitespace\"}", "\"[UNK]\"", "", added_json), &t, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (t) {
        test_encode(t);
        test_decode(t);
        vene_tokenizer_free(t);
    }
    test_errors();
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
