/* llama.cpp's tokenizer test vectors (46 strings each) for Llama 3 (llama-bpe), Qwen2 and
 * Llama 2 (llama-spm), with each vocabulary read from a GGUF file and from a
 * tokenizer.json that tools/gguf_to_tokenizer_json.py converted from it: exact ids, and
 * decode(encode(text)) == text. Then BOS/EOS, special-token parsing and decoding
 * options, NFC, and the pipelines of tokenizer.json that the vectors do not reach.
 *
 * Fixtures (tests/fixtures/tokenizer/, see its README): the real Llama 3 and Llama 2
 * GGUF files; Qwen2 and GPT-2 as GGUF and tokenizer.json pruned to what the vectors
 * use. VENE_TOKENIZER_EXTRA="NAME=PATH ..." checks more vocabularies against NAME's
 * vectors (e.g. the full files of the shared data set). */
#include <stdint.h>
#include <unistd.h>

#include "test.h"
#include "vene.h"

#define FIX "fixtures/tokenizer/"

typedef struct vectors {
    int n;
    char *text[64];
    size_t len[64];
    int32_t ids[64][512];
    size_t n_ids[64];
} vectors;

/* NAME.gguf.inp: strings joined by SEP with a trailing SEP; NAME.gguf.out: a line of ids
 * per string. */
static int read_vectors(const char *name, vectors *v) {
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    char path[256];
    snprintf(path, sizeof path, FIX "ggml-vocab-%s.gguf.inp", name);
    char *in = test_read_file(path, NULL);
    snprintf(path, sizeof path, FIX "ggml-vocab-%s.gguf.out", name);
    char *out = test_read_file(path, NULL);
    memset(v, 0, sizeof *v);
    int ok = in && out;
    char *p = in, *line = out;
    for (char *sep; ok && (sep = strstr(p, SEP)) && v->n < 64; p = sep + strlen(SEP)) {
        char *nl = strchr(line, '\n');
        if (!(ok = nl != NULL)) break;
        *nl = '\0';
        v->len[v->n] = (size_t)(sep - p);
        v->text[v->n] = malloc(v->len[v->n] + 1);
        memcpy(v->text[v->n], p, v->len[v->n]);
        v->text[v->n][v->len[v->n]] = '\0';
        for (char *s = line, *e; v->n_ids[v->n] < 512; s = e) {
            long id = strtol(s, &e, 10);
            if (e == s) break;
            v->ids[v->n][v->n_ids[v->n]++] = (int32_t)id;
        }
        v->n++;
        line = nl + 1;
    }
    ok = ok && v->n == 46 && *line == '\0';
    CHECK_MSG(ok, "%s: could not read 46 vectors from " FIX, name);
    free(in);
    free(out);
    return ok;
}

static void free_vectors(vectors *v) {
    for (int i = 0; i < v->n; i++) free(v->text[i]);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Encodes every string: exact ids, and decoding gives the string back. Returns how many
 * strings passed both. */
static int run_vectors(const char *label, const vene_tokenizer *t, const vectors *v) {
    int passed = 0;
    for (int i = 0; i < v->n; i++) {
        int32_t *ids = NULL;
        size_t n = 0, blen = 0;
        char *back = NULL;
        vene_error err = {0};
        int rc = vene_tokenize(t, v->text[i], v->len[i], &ids, &n, &err);
        int same = !rc && n == v->n_ids[i] && (!n || !memcmp(ids, v->ids[i], n * sizeof *ids));
        int trip = !rc && !vene_detokenize(t, ids, n, &back, &blen, &err) && blen == v->len[i] &&
                   !memcmp(back, v->text[i], blen);
        CHECK_MSG(same && trip, "%s: vector %d \"%s\": %s%s%s", label, i, v->text[i], rc ? err.msg : "",
                  !same ? " ids differ" : "", same && !trip ? " decodes differently" : "");
        if (!same && !rc) print_ids("got ", ids, n), print_ids("want", v->ids[i], v->n_ids[i]);
        passed += same && trip;
        vene_free(ids);
        vene_free(back);
    }
    printf("%-40s %d/%d vectors\n", label, passed, v->n);
    return passed;
}

static vene_tokenizer *load(const char *path) {
    vene_tokenizer *t = NULL;
    vene_error err = {0};
    int rc = vene_tokenizer_load(path, &t, &err);
    CHECK_MSG(rc == VENE_OK && t, "%s: %s", path, err.msg);
    return t;
}

static void check_vocab(const char *name, const char *path) {
    vectors v;
    if (!read_vectors(name, &v)) return;
    vene_tokenizer *t = load(path);
    char label[300];
    snprintf(label, sizeof label, "%s (%s)", name, path);
    if (t) CHECK(run_vectors(label, t, &v) == 46);
    vene_tokenizer_free(t);
    free_vectors(&v);
}

/* ids of text with flags, into out (at most 16); returns the count or -1. */
static int enc(const vene_tokenizer *t, const char *text, unsigned flags, int32_t *out) {
    int32_t *ids = NULL;
    size_t n = 0;
    vene_error err = {0};
    int rc = vene_tokenize_ex(t, text, strlen(text), flags, &ids, &n, &err);
    CHECK_MSG(rc == VENE_OK && n <= 16, "\"%s\": %s", text, err.msg);
    if (rc || n > 16) return vene_free(ids), -1;
    memcpy(out, ids, n * sizeof *ids);
    vene_free(ids);
    return (int)n;
}

static int same(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && na >= 0 && !memcmp(a, b, (size_t)na * sizeof *a);
}

static int decodes_to(const vene_tokenizer *t, const int32_t *ids, int n, unsigned flags, const char *want) {
    char *text = NULL;
    size_t len = 0;
    int ok = vene_detokenize_ex(t, ids, (size_t)n, flags, &text, &len, NULL) == VENE_OK && !strcmp(text, want);
    if (!ok) fprintf(stderr, "  decoded \"%s\", want \"%s\"\n", text ? text : "", want);
    vene_free(text);
    return ok;
}

/* BOS/EOS, special-token parsing and skipping on the real vocabularies. */
static void check_specials(const char *name, const char *path) {
    vene_tokenizer *t = load(path);
    if (!t) return;
    vene_tokenizer_info info;
    vene_tokenizer_get_info(t, &info);
    int32_t a[16], b[16];
    int na, nb;
    if (!strcmp(name, "llama-bpe")) {
        static const int32_t hw[] = {128000, 9906, 1917}, eot[] = {128000, 9906, 128009};
        CHECK(info.bos_id == 128000 && info.n_prefix == 1 && info.prefix[0] == 128000 && info.n_suffix == 0);
        CHECK(same(a, enc(t, "Hello world", VENE_TOK_ADD_SPECIAL, a), hw, 3));
        CHECK(same(a, enc(t, "<|begin_of_text|>Hello<|eot_id|>", VENE_TOK_PARSE_SPECIAL, a), eot, 3));
        na = enc(t, "<|begin_of_text|>", 0, a);
        CHECK_MSG(na > 1 && a[0] != 128000, "special text is not parsed by default");
        CHECK(decodes_to(t, eot, 3, 0, "<|begin_of_text|>Hello<|eot_id|>") &&
              decodes_to(t, eot, 3, VENE_TOK_SKIP_SPECIAL, "Hello"));
        CHECK(vene_token_is_special(t, 128009) && !vene_token_is_special(t, 9906));
    } else if (!strcmp(name, "llama-spm")) {
        static const int32_t hw[] = {1, 15043, 3186}, s[] = {1, 15043, 2};
        CHECK(info.bos_id == 1 && info.unk_id == 0 && info.n_prefix == 1 && info.prefix[0] == 1);
        CHECK(!strcmp(info.kind, "SentencePiece BPE"));
        CHECK(same(a, enc(t, "Hello world", VENE_TOK_ADD_SPECIAL, a), hw, 3));
        CHECK(same(a, enc(t, "<s>Hello</s>", VENE_TOK_PARSE_SPECIAL, a), s, 3));
        CHECK(decodes_to(t, hw, 3, 0, "<s> Hello world") && decodes_to(t, hw, 3, VENE_TOK_SKIP_SPECIAL, "Hello world"));
        size_t len = 0;
        const char *txt = vene_token_text(t, 15043, &len);
        CHECK(txt && len == 6 && !memcmp(txt, " Hello", 6));
    } else if (!strcmp(name, "qwen2")) {
        CHECK(info.n_prefix == 0 && info.n_suffix == 0 && !strcmp(info.kind, "byte-level BPE"));
        na = enc(t, "user", 0, a);
        nb = enc(t, "<|im_start|>user", VENE_TOK_PARSE_SPECIAL, b);
        CHECK(nb == na + 1 && nb > 1 && b[0] == 151644 && same(a, na, b + 1, nb - 1));
        CHECK(same(a, enc(t, "Hello", VENE_TOK_ADD_SPECIAL, a), b, enc(t, "Hello", 0, b)));
        /* user-defined tokens ([PAD...]) are matched without PARSE_SPECIAL */
        static const int32_t pad[] = {151935};
        CHECK(same(a, enc(t, "[PAD151935]", 0, a), pad, 1));
    }
    vene_tokenizer_free(t);
}

int main(void) {
    static const char *sets[][2] = {
        {"llama-bpe", FIX "ggml-vocab-llama-bpe.gguf"}, {"llama-spm", FIX "ggml-vocab-llama-spm.gguf"},
        {"qwen2", FIX "qwen2.pruned.gguf"},             {"gpt-2", FIX "gpt-2.pruned.gguf"},
        {"llama-bpe", FIX "llama-bpe.tokenizer.json"},  {"llama-spm", FIX "llama-spm.tokenizer.json"},
        {"qwen2", FIX "qwen2.tokenizer.json"},          {"gpt-2", FIX "gpt-2.tokenizer.json"},
    };
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        check_vocab(sets[i][0], sets[i][1]);
        check_specials(sets[i][0], sets[i][1]);
    }
    const char *extra = getenv("VENE_TOKENIZER_EXTRA");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", extra ? extra : "");
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = '\0';
        check_vocab(tok, eq + 1);
    }
    TEST_MAIN_END();
}
