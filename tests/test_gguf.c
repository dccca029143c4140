/* The GGUF metadata reader (src/io/gguf.c) on files built here: every value type through
 * the getters, every truncation of a valid file, targeted corruptions with the message
 * each must give, random byte flips (no crash; run under ASan by `make test-asan`); and
 * tokenizers from small GGUF vocabularies (byte-level and SentencePiece) with the errors
 * of bad ones. */
#include <math.h>
#include <stdint.h>

#include "io/gguf.h"
#include "test.h"
#include "test_tmp.h"
#include "vene.h"

/* ---------------------------------------------------------------- building files */

typedef struct gb {
    unsigned char p[1 << 16];
    size_t n;
} gb;

static void put(gb *b, const void *x, size_t n) {
    if (b->n + n > sizeof b->p) return;
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void u32(gb *b, uint32_t v) {
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(b, x, 4);
}
static void u64(gb *b, uint64_t v) {
    u32(b, (uint32_t)v);
    u32(b, (uint32_t)(v >> 32));
}
static void str(gb *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void header(gb *b, uint64_t n_kv) {
    b->n = 0;
    put(b, "GGUF", 4);
    u32(b, 3);
    u64(b, 0);
    u64(b, n_kv);
}
static void kv_str(gb *b, const char *k, const char *v) { str(b, k), u32(b, GGUF_STRING), str(b, v); }
static void kv_u32(gb *b, const char *k, uint32_t v) { str(b, k), u32(b, GGUF_UINT32), u32(b, v); }
static void kv_bool(gb *b, const char *k, int v) {
    unsigned char c = (unsigned char)v;
    str(b, k), u32(b, GGUF_BOOL), put(b, &c, 1);
}
static void kv_strs(gb *b, const char *k, const char *const *v, int n) {
    str(b, k), u32(b, GGUF_ARRAY), u32(b, GGUF_STRING), u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) str(b, v[i]);
}
static void kv_i32s(gb *b, const char *k, const int32_t *v, int n) {
    str(b, k), u32(b, GGUF_ARRAY), u32(b, GGUF_INT32), u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) u32(b, (uint32_t)v[i]);
}
static void kv_f32s(gb *b, const char *k, const float *v, int n) {
    str(b, k), u32(b, GGUF_ARRAY), u32(b, GGUF_FLOAT32), u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        u32(b, bits);
    }
}

/* One entry of each kind. */
static void sample(gb *b) {
    static const char *const names[] = {"one", "", "three"};
    static const int32_t ints[] = {-7, 0, 2147483647};
    header(b, 7);
    kv_str(b, "general.name", "sample");
    kv_u32(b, "n.u32", 4000000000u);
    str(b, "n.i8"), u32(b, GGUF_INT8), put(b, "\xF9", 1); /* -7 */
    str(b, "n.u64"), u32(b, GGUF_UINT64), u64(b, UINT64_MAX);
    kv_bool(b, "flag", 1);
    kv_strs(b, "names", names, 3);
    kv_i32s(b, "ints", ints, 3);
}

/* ---------------------------------------------------------------- the reader */

static int open_fails(const gb *b, int code, const char *want) {
    gguf_file *g = NULL;
    vene_error err = {0};
    int rc = gguf_open_memory(b->p, b->n, "mem.gguf", &g, &err);
    int ok = rc == code && !g && strstr(err.msg, "mem.gguf") && (!want || strstr(err.msg, want));
    if (!ok) fprintf(stderr, "  rc %s, message \"%s\", wanted \"%s\"\n", vene_status_name(rc), err.msg, want ? want : "");
    gguf_close(g);
    return ok;
}

static void check_getters(void) {
    gb *b = calloc(1, sizeof *b);
    sample(b);
    gguf_file *g = NULL;
    vene_error err = {0};
    CHECK_MSG(gguf_open_memory(b->p, b->n, "mem.gguf", &g, &err) == VENE_OK, "%s", err.msg);
    if (!g) return free(b);
    CHECK(gguf_version(g) == 3 && gguf_kv_count(g) == 7 && gguf_find(g, "flag") && !gguf_find(g, "fla"));
    gguf_str s;
    int64_t v;
    int flag, found = -1;
    CHECK(gguf_get_str(g, "general.name", &s, NULL, &err) == VENE_OK && s.len == 6 && !memcmp(s.ptr, "sample", 6));
    CHECK(gguf_get_int(g, "n.u32", 0, INT64_MAX, &v, NULL, &err) == VENE_OK && v == 4000000000LL);
    CHECK(gguf_get_int(g, "n.i8", -10, 10, &v, NULL, &err) == VENE_OK && v == -7);
    CHECK(gguf_get_int(g, "n.u64", 0, INT64_MAX, &v, NULL, &err) == VENE_OK && v == INT64_MAX);
    CHECK(gguf_get_bool(g, "flag", &flag, NULL, &err) == VENE_OK && flag == 1);
    CHECK(gguf_get_bool(g, "absent", &flag, &found, &err) == VENE_OK && found == 0);
    CHECK(gguf_get_bool(g, "absent", &flag, NULL, &err) == VENE_ERR_FORMAT && strstr(err.msg, "\"absent\" is missing"));
    CHECK(gguf_get_str(g, "n.u32", &s, NULL, &err) == VENE_ERR_FORMAT &&
          strstr(err.msg, "key \"n.u32\": expected a string, got a uint32"));
    CHECK(gguf_get_int(g, "n.i8", 0, 10, &v, NULL, &err) == VENE_ERR_FORMAT && strstr(err.msg, "is -7 (expected 0..10)"));
    const gguf_kv *kv = NULL;
    CHECK(gguf_get_array(g, "names", GGUF_STRING, &kv, NULL, &err) == VENE_OK && kv->n == 3);
    if (kv) {
        gguf_str a = gguf_arr_str(kv, 0), e = gguf_arr_str(kv, 1), c = gguf_arr_str(kv, 2);
        CHECK(a.len == 3 && !memcmp(a.ptr, "one", 3) && e.len == 0 && c.len == 5 && !memcmp(c.ptr, "three", 5));
    }
    CHECK(gguf_get_array(g, "ints", GGUF_TYPE_COUNT, &kv, NULL, &err) == VENE_OK && kv->n == 3 &&
          gguf_arr_int(kv, 0) == -7 && gguf_arr_int(kv, 2) == 2147483647);
    CHECK(gguf_get_array(g, "ints", GGUF_FLOAT32, &kv, NULL, &err) == VENE_ERR_FORMAT &&
          strstr(err.msg, "expected an array of float32, got an array of int32"));
    CHECK(gguf_get_array(g, "flag", GGUF_STRING, &kv, NULL, &err) == VENE_ERR_FORMAT && strstr(err.msg, "got a bool"));
    gguf_close(g);

    /* Every proper prefix of the file is refused with a message; none reads past it. */
    int bad = 0;
    for (size_t n = 0; n < b->n; n++) {
        gb *c = calloc(1, sizeof *c);
        memcpy(c->p, b->p, n);
        c->n = n;
        bad += !open_fails(c, VENE_ERR_FORMAT, NULL);
        free(c);
    }
    CHECK_MSG(bad == 0, "%d of %zu truncations not refused cleanly", bad, b->n);
    free(b);
}

static void check_corruptions(void) {
    gb *b = calloc(1, sizeof *b);
    sample(b);
    b->p[0] = 'X';
    CHECK(open_fails(b, VENE_ERR_FORMAT, "not a GGUF file"));
    sample(b);
    b->p[4] = 1;
    CHECK(open_fails(b, VENE_ERR_UNSUPPORTED, "version 1 is not supported"));
    sample(b);
    b->p[4] = 0, b->p[7] = 3;
    CHECK(open_fails(b, VENE_ERR_UNSUPPORTED, "big-endian"));
    header(b, 1), str(b, "x"), u32(b, 13), u32(b, 0);
    CHECK(open_fails(b, VENE_ERR_FORMAT, "unknown value type 13"));
    header(b, 1), str(b, "x"), u32(b, GGUF_ARRAY), u32(b, GGUF_ARRAY), u64(b, 0);
    CHECK(open_fails(b, VENE_ERR_FORMAT, "arrays of arrays"));
    header(b, 1), str(b, "x"), u32(b, GGUF_ARRAY), u32(b, GGUF_STRING), u64(b, UINT64_MAX / 2);
    CHECK(open_fails(b, VENE_ERR_FORMAT, "strings need more than"));
    header(b, 1), str(b, "x"), u32(b, GGUF_ARRAY), u32(b, GGUF_UINT64), u64(b, (uint64_t)1 << 61);
    CHECK(open_fails(b, VENE_ERR_FORMAT, "elements of uint64 need more than"));
    header(b, 1), str(b, "x"), u32(b, GGUF_STRING), u64(b, UINT64_MAX);
    CHECK(open_fails(b, VENE_ERR_FORMAT, "the value of \"x\" needs 18446744073709551615 bytes"));
    header(b, UINT64_MAX);
    CHECK(open_fails(b, VENE_ERR_FORMAT, "key/value entries cannot fit"));
    header(b, 1), str(b, ""), u32(b, GGUF_UINT32), u32(b, 0);
    CHECK(open_fails(b, VENE_ERR_FORMAT, "key of 0 bytes"));
    header(b, 2), kv_u32(b, "k", 1), kv_u32(b, "k", 2);
    CHECK(open_fails(b, VENE_ERR_FORMAT, "key \"k\" appears more than once"));
    header(b, 1), kv_bool(b, "b", 2);
    CHECK(open_fails(b, VENE_ERR_FORMAT, "bool element 0 is 2"));

    /* Random flips: accepted or refused, never a bad read (ASan) or a silent failure. */
    uint64_t rng = 0x243F6A8885A308D3ull;
    int accepted = 0, refused = 0;
    for (int i = 0; i < 3000; i++) {
        sample(b);
        for (int k = 0; k < 1 + i % 4; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            b->p[rng % b->n] ^= (unsigned char)(1u << (rng >> 40) % 8);
        }
        gguf_file *g = NULL;
        vene_error err = {0};
        if (gguf_open_memory(b->p, b->n, "mem.gguf", &g, &err) != VENE_OK) {
            refused++;
            CHECK_MSG(!g && strstr(err.msg, "mem.gguf"), "flip %d: %s", i, err.msg);
            continue;
        }
        accepted++;
        for (uint64_t j = 0; j < gguf_kv_count(g); j++) {
            const gguf_kv *kv = gguf_kv_at(g, j);
            for (uint64_t e = 0; kv->type == GGUF_ARRAY && e < kv->n; e++) {
                if (kv->elem == GGUF_STRING) gguf_arr_str(kv, e);
                else if (kv->elem == GGUF_FLOAT32) gguf_arr_f32(kv, e);
                else if (kv->elem <= GGUF_INT32 || kv->elem >= GGUF_UINT64) gguf_arr_int(kv, e);
            }
        }
        gguf_close(g);
    }
    printf("random flips: %d accepted, %d refused\n", accepted, refused);
    free(b);

    gguf_file *g = NULL;
    vene_error err = {0};
    CHECK(gguf_open("fixtures/no-such.gguf", &g, &err) == VENE_ERR_IO && strstr(err.msg, "no-such.gguf"));
    CHECK(gguf_open("fixtures", &g, &err) == VENE_ERR_IO && strstr(err.msg, "not a regular file"));
}

/* ---------------------------------------------------------------- tokenizers */

static char alphabet[256][3];
static const char *byte_tokens[260];

/* GPT-2's alphabet as tokens 0..255, then "Ġa" (256) and "<|end|>" (257). */
static void gpt2_tokens(void) {
    for (int b = 0, shifted = 0; b < 256; b++) {
        int self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        unsigned cp = self ? (unsigned)b : 256u + (unsigned)shifted++;
        if (cp < 0x80) alphabet[b][0] = (char)cp;
        else alphabet[b][0] = (char)(0xC0 | cp >> 6), alphabet[b][1] = (char)(0x80 | (cp & 63));
        byte_tokens[b] = alphabet[b];
    }
    byte_tokens[256] = "\xC4\xA0" "a";
    byte_tokens[257] = "<|end|>";
}

/* A byte-level vocab; `bad` selects one defect (0 = none). */
static void bpe_file(gb *b, int bad) {
    static const char *const merges[] = {"\xC4\xA0 a"}, *const nospace[] = {"\xC4\xA0" "a"},
                              *const unknown[] = {"\xC4\xA0 q!"};
    int32_t types[258];
    for (int i = 0; i < 258; i++) types[i] = i == 257 ? 3 : 1;
    if (bad == 5) types[3] = 9;
    header(b, bad == 7 ? 4 : 6);
    kv_str(b, "tokenizer.ggml.model", bad == 1 ? "bert" : "gpt2");
    if (bad != 7) kv_str(b, "tokenizer.ggml.pre", bad == 2 ? "foo" : "gpt-2");
    kv_strs(b, "tokenizer.ggml.tokens", byte_tokens, 258);
    kv_i32s(b, "tokenizer.ggml.token_type", types, bad == 4 ? 257 : 258);
    kv_strs(b, "tokenizer.ggml.merges", bad == 3 ? nospace : bad == 6 ? unknown : merges, 1);
    if (bad != 7) kv_u32(b, "tokenizer.ggml.eos_token_id", bad == 8 ? 258 : 257);
}

/* A SentencePiece vocab: <unk> <s> </s>, byte tokens, then ▁ a ▁a. */
static void spm_file(gb *b, int bad, int prefix) {
    static char bytes[256][8];
    const char *tok[262];
    int32_t types[262];
    float scores[262];
    tok[0] = "<unk>", tok[1] = "<s>", tok[2] = "</s>";
    for (int i = 0; i < 256; i++) snprintf(bytes[i], 8, "<0x%02X>", i), tok[3 + i] = bytes[i];
    tok[259] = "\xE2\x96\x81", tok[260] = "a", tok[261] = "\xE2\x96\x81" "a";
    for (int i = 0; i < 262; i++) types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1, scores[i] = (float)-i;
    if (bad == 2) scores[100] = NAN;
    header(b, prefix ? 4 : 5);
    kv_str(b, "tokenizer.ggml.model", "llama");
    kv_strs(b, "tokenizer.ggml.tokens", tok, 262);
    kv_i32s(b, "tokenizer.ggml.token_type", types, 262);
    kv_f32s(b, "tokenizer.ggml.scores", scores, bad == 1 ? 261 : 262);
    if (!prefix) kv_bool(b, "tokenizer.ggml.add_space_prefix", 0);
}

static vene_tokenizer *load_gguf(const gb *b, vene_error *err) {
    const char *path = tpath("vocab.gguf");
    FILE *f = fopen(path, "wb");
    if (f) fwrite(b->p, 1, b->n, f), fclose(f);
    vene_tokenizer *t = NULL;
    vene_tokenizer_load(path, &t, err);
    return t;
}

static void expect_ids(const vene_tokenizer *t, unsigned flags, const char *text, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t got = 0;
    vene_error err = {0};
    int rc = t ? vene_tokenize_ex(t, text, strlen(text), flags, &ids, &got, &err) : -1;
    CHECK_MSG(rc == VENE_OK && got == n && !memcmp(ids, want, n * sizeof *ids), "\"%s\": %s", text, err.msg);
    vene_free(ids);
}

static void check_tokenizers(void) {
    gb *b = calloc(1, sizeof *b);
    gpt2_tokens();
    vene_error err = {0};
    bpe_file(b, 0);
    vene_tokenizer *t = load_gguf(b, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    static const int32_t a[] = {256, 256}, end[] = {257}, end_text[] = {'<', '|', 'e', 'n', 'd', '|', '>'};
    expect_ids(t, 0, " a a", a, 2);
    expect_ids(t, 0, "<|end|>", end_text, 7);
    expect_ids(t, VENE_TOK_PARSE_SPECIAL, "<|end|>", end, 1);
    vene_tokenizer_info info;
    vene_tokenizer_get_info(t, &info);
    CHECK(info.eos_id == 257 && info.bos_id == -1 && info.n_prefix == 0 && !strcmp(info.source, "gguf"));
    vene_tokenizer_free(t);
    static const struct {
        int bad, code;
        const char *msg;
    } cases[] = {
        {1, VENE_ERR_UNSUPPORTED, "tokenizer.ggml.model is \"bert\""},
        {2, VENE_ERR_UNSUPPORTED, "tokenizer.ggml.pre is \"foo\""},
        {3, VENE_ERR_FORMAT, "tokenizer.ggml.merges[0]: expected \"a b\""},
        {4, VENE_ERR_FORMAT, "token_type has 257 entries for 258 tokens"},
        {5, VENE_ERR_FORMAT, "token_type[3] is 9"},
        {6, VENE_ERR_FORMAT, "tokenizer.ggml.merges[0]: piece \"q!\" is not in the vocab"},
        {7, VENE_ERR_UNSUPPORTED, "tokenizer.ggml.pre is missing"},
        {8, VENE_ERR_FORMAT, "\"tokenizer.ggml.eos_token_id\" is 258 (expected 0..257)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bpe_file(b, cases[i].bad);
        t = load_gguf(b, &err);
        CHECK_MSG(!t && err.code == cases[i].code && strstr(err.msg, "vocab.gguf") && strstr(err.msg, cases[i].msg),
                  "case %d: %s", cases[i].bad, err.msg);
        vene_tokenizer_free(t);
    }

    spm_file(b, 0, 1);
    t = load_gguf(b, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    static const int32_t sa[] = {261, 259, 3 + 'b'}, bos[] = {1, 261};
    expect_ids(t, 0, "a b", sa, 3);
    expect_ids(t, VENE_TOK_ADD_SPECIAL, "a", bos, 2);
    vene_tokenizer_free(t);
    spm_file(b, 0, 0);
    t = load_gguf(b, &err);
    static const int32_t np[] = {260, 261};
    expect_ids(t, 0, "a a", np, 2);
    vene_tokenizer_free(t);
    spm_file(b, 1, 1);
    t = load_gguf(b, &err);
    CHECK_MSG(!t && strstr(err.msg, "scores has 261 entries for 262 tokens"), "%s", err.msg);
    spm_file(b, 2, 1);
    t = load_gguf(b, &err);
    CHECK_MSG(!t && strstr(err.msg, "score of token 100 is not a finite number"), "%s", err.msg);
    free(b);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene-gguf-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    check_getters();
    check_corruptions();
    check_tokenizers();
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
