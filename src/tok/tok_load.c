/* Building a tokenizer (tokens, merges, added tokens, rewrites), the original GPT-2 file
 * pair vocab.json (encoder.json) + merges.txt (vocab.bpe), and vene_tokenizer_load, which
 * picks the loader for a folder, a tokenizer.json or a GGUF file. */
#include "tok/tok_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- building blocks */

vene_tokenizer *tok_new(void) {
    vene_tokenizer *t = calloc(1, sizeof *t);
    if (t) t->unk_id = t->bos_id = t->eos_id = t->pad_id = -1;
    return t;
}

int tok_set_token(vene_tokenizer *t, int32_t id, const char *piece, size_t len, int type, vene_error *err) {
    if (memchr(piece, 0, len)) return vene_errorf(err, VENE_ERR_FORMAT, "id %d: piece contains a NUL byte", id);
    if (len > UINT32_MAX / 2) return vene_errorf(err, VENE_ERR_FORMAT, "id %d: piece too long", id);
    tok_token *tk = &t->tok[id];
    if (tk->piece) {
        if (strlen(tk->piece) != len || memcmp(tk->piece, piece, len) != 0)
            return vene_errorf(err, VENE_ERR_FORMAT, "id %d given to both \"%s\" and \"%.*s\"", id, tk->piece,
                               (int)(len > 200 ? 200 : len), piece);
    } else {
        char *copy = tok_arena_dup(&t->arena, piece, len);
        if (!copy) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        int32_t old = -1;
        int rc = tok_strmap_put(&t->vocab, copy, (uint32_t)len, id, &old);
        if (rc < 0) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        if (rc > 0)
            return vene_errorf(err, VENE_ERR_FORMAT, "piece \"%s\" given ids %d and %d", copy, old, id);
        tk->piece = copy;
    }
    tk->type = (uint8_t)type;
    return VENE_OK;
}

int tok_add_merge_ids(vene_tokenizer *t, int32_t left, int32_t right, int32_t result, int32_t rank,
                      vene_error *err) {
    if (t->n_merges == t->cap_merges) {
        if (t->cap_merges > INT32_MAX / 2) return vene_errorf(err, VENE_ERR_RANGE, "too many merges");
        int32_t cap = t->cap_merges ? t->cap_merges * 2 : 1024;
        tok_merge *m = realloc(t->merges, (size_t)cap * sizeof *m);
        if (!m) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        t->merges = m;
        t->cap_merges = cap;
    }
    /* A repeated pair keeps its first (best) rank, as a dictionary built in file order
     * with "first wins" would; it takes no rank of its own. */
    int put = tok_pairmap_put(&t->pairs, tok_pair_key(left, right), t->n_merges, NULL);
    if (put < 0) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (put == 0) t->merges[t->n_merges++] = (tok_merge){left, right, result, rank};
    return VENE_OK;
}

int tok_add_merge(vene_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, vene_error *err) {
    if (alen > UINT32_MAX / 2 || blen > UINT32_MAX / 2) return vene_errorf(err, VENE_ERR_FORMAT, "piece too long");
    int32_t ia = tok_strmap_get(&t->vocab, a, (uint32_t)alen);
    int32_t ib = tok_strmap_get(&t->vocab, b, (uint32_t)blen);
    if (ia < 0 || ib < 0) {
        const char *p = ia < 0 ? a : b;
        size_t n = ia < 0 ? alen : blen;
        return vene_errorf(err, VENE_ERR_FORMAT, "piece \"%.*s\" is not in the vocab", (int)(n > 200 ? 200 : n), p);
    }
    char small[256], *ab = small;
    if (alen + blen > sizeof small && !(ab = malloc(alen + blen)))
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    memcpy(ab, a, alen);
    memcpy(ab + alen, b, blen);
    int32_t im = tok_strmap_get(&t->vocab, ab, (uint32_t)(alen + blen));
    int rc = im >= 0 ? tok_add_merge_ids(t, ia, ib, im, t->n_merges, err)
                     : vene_errorf(err, VENE_ERR_FORMAT, "merged piece \"%.*s\" is not in the vocab",
                                   (int)(alen + blen > 200 ? 200 : alen + blen), ab);
    if (ab != small) free(ab);
    return rc;
}

int tok_add_added(vene_tokenizer *t, int32_t id, const char *text, size_t len, int special, int lstrip, int rstrip,
                  vene_error *err) {
    if (len > UINT32_MAX / 2) return vene_errorf(err, VENE_ERR_FORMAT, "added token %d too long", id);
    if (t->n_added == INT32_MAX / 2) return vene_errorf(err, VENE_ERR_RANGE, "too many added tokens");
    if (t->n_added == t->cap_added) {
        int32_t cap = t->cap_added ? t->cap_added * 2 : 64;
        tok_added *a = realloc(t->added, (size_t)cap * sizeof *a);
        if (!a) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        t->added = a;
        t->cap_added = cap;
    }
    const char *copy = tok_arena_dup(&t->arena, text, len);
    if (!copy) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    t->added[t->n_added++] =
        (tok_added){copy, (uint32_t)len, id, (uint8_t)special, (uint8_t)lstrip, (uint8_t)rstrip};
    return VENE_OK;
}

int tok_add_op(vene_tokenizer *t, tok_op_kind kind, const char *from, size_t from_len, const char *to,
               size_t to_len, vene_error *err) {
    if (t->n_ops == TOK_MAX_OPS)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "more than %d normalizer steps", TOK_MAX_OPS);
    if (from_len > 4096 || to_len > 4096)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "normalizer string over 4096 bytes");
    tok_op *op = &t->ops[t->n_ops];
    op->kind = kind;
    op->from = tok_arena_dup(&t->arena, from ? from : "", from_len);
    op->to = tok_arena_dup(&t->arena, to ? to : "", to_len);
    if (!op->from || !op->to) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    op->from_len = (uint32_t)from_len, op->to_len = (uint32_t)to_len;
    t->n_ops++;
    return VENE_OK;
}

int tok_read_file(const char *path, char **buf, size_t *len, vene_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return vene_errorf(err, VENE_ERR_IO, "%s: %s", path, strerror(errno));
    char *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            size_t ncap = cap ? cap * 2 : 1 << 20;
            char *d = realloc(data, ncap + 1);
            if (!d) {
                free(data);
                fclose(f);
                return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
            }
            data = d;
            cap = ncap;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        return vene_errorf(err, VENE_ERR_IO, "%s: read error", path);
    }
    data[n] = '\0';
    *buf = data;
    *len = n;
    return VENE_OK;
}

int tok_parse_json(const char *path, void **out, vene_error *err) {
    char *buf;
    size_t len;
    *out = NULL;
    int rc = tok_read_file(path, &buf, &len, err);
    if (rc) return rc;
    const char *end = NULL;
    /* The Opts variant reports where parsing stopped without going through cJSON's
     * global error pointer, which other threads may be using. Trailing garbage is an
     * error; cJSON checks for it by finding the NUL, so the length includes it. */
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
    if (!root) {
        int line = 1, col = 1;
        for (const char *p = buf; end && p < end && p < buf + len; p++) {
            if (*p == '\n') line++, col = 1;
            else col++;
        }
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s:%d:%d: malformed JSON", path, line, col);
    }
    free(buf);
    *out = root;
    return rc;
}

/* ---------------------------------------------------------------- vocab.json + merges.txt */

/* Vocab ids must be whole numbers in [0, TOK_MAX_ID). */
static int json_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TOK_MAX_ID) || floor(d) != d) return 0;
    *id = (int32_t)d;
    return 1;
}

static int load_vocab_json(vene_tokenizer *t, const cJSON *vocab, const char *file, vene_error *err) {
    if (!cJSON_IsObject(vocab)) return vene_errorf(err, VENE_ERR_FORMAT, "%s: the vocab is not a JSON object", file);
    int32_t id, max = -1;
    for (const cJSON *e = vocab->child; e; e = e->next)
        if (json_id(e, &id) && id > max) max = id;
        else if (!json_id(e, &id)) /* name the first bad entry, not an "empty" vocab */
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: key \"%s\": id must be an integer in 0..%d", file, e->string,
                               TOK_MAX_ID - 1);
    if (max < 0) return vene_errorf(err, VENE_ERR_FORMAT, "%s: the vocab is empty", file);
    t->n_vocab = max + 1;
    t->tok = calloc((size_t)t->n_vocab, sizeof *t->tok);
    if (!t->tok) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", file);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!json_id(e, &id))
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: key \"%s\": id must be an integer in 0..%d", file,
                               e->string, TOK_MAX_ID - 1);
        if (tok_set_token(t, id, e->string, strlen(e->string), TOK_NORMAL, err))
            return vene_error_prefix(err, "%s: key \"%s\"", file, e->string);
    }
    /* GPT-2's end-of-text token is special in every copy of its files. */
    int32_t eot = tok_strmap_get(&t->vocab, "<|endoftext|>", 13);
    if (eot >= 0) {
        t->tok[eot].type = TOK_CONTROL;
        t->bos_id = t->eos_id = eot;
        return tok_add_added(t, eot, "<|endoftext|>", 13, 1, 0, 0, err);
    }
    return VENE_OK;
}

static int load_merges_txt(vene_tokenizer *t, const char *path, vene_error *err) {
    char *buf;
    size_t len;
    int rc = tok_read_file(path, &buf, &len, err);
    if (rc) return rc;
    const char *p = buf, *end = buf + len;
    for (int line = 1; p < end && !rc; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t n = (size_t)(eol - p);
        if (n && p[n - 1] == '\r') n--;
        const char *sp = memchr(p, ' ', n);
        if (n == 0 || (line == 1 && n >= 8 && memcmp(p, "#version", 8) == 0)) {
            /* blank lines and the "#version: 0.2" header carry no merge */
        } else if (!sp || sp == p || sp == p + n - 1 || memchr(sp + 1, ' ', (size_t)(p + n - sp - 1))) {
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s:%d: expected two pieces separated by one space, got \"%.*s\"",
                             path, line, n > 80 ? 80 : (int)n, p);
        } else if ((rc = tok_add_merge(t, p, (size_t)(sp - p), sp + 1, (size_t)(p + n - sp - 1), err))) {
            vene_error_prefix(err, "%s:%d", path, line);
        }
        p = eol + 1;
    }
    free(buf);
    return rc;
}

int vene_tokenizer_load_files(const char *vocab_json, const char *merges_txt, vene_tokenizer **out,
                              vene_error *err) {
    if (!vocab_json || !merges_txt || !out)
        return vene_errorf(err, VENE_ERR_ARG, "vene_tokenizer_load_files: NULL argument");
    *out = NULL;
    vene_tokenizer *t = tok_new();
    if (!t) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    void *root = NULL;
    int rc = tok_parse_json(vocab_json, &root, err);
    if (!rc) rc = load_vocab_json(t, root, vocab_json, err);
    cJSON_Delete(root);
    if (!rc) rc = load_merges_txt(t, merges_txt, err);
    if (!rc) rc = tok_add_split(t, tok_pattern_gpt2, strlen(tok_pattern_gpt2), 0, err);
    if (!rc) {
        t->symbols = TOK_SYM_BYTES;
        t->dec_byte_level = 1;
        snprintf(t->kind, sizeof t->kind, "byte-level BPE");
        snprintf(t->source, sizeof t->source, "vocab.json");
        rc = tok_finish(t, vocab_json, err);
    }
    if (rc) {
        vene_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return VENE_OK;
}

/* ---------------------------------------------------------------- picking a loader */

static int exists(const char *dir, const char *name, char *path, size_t cap) {
    struct stat st;
    int n = snprintf(path, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap && stat(path, &st) == 0;
}

static int load_dir(const char *dir, vene_tokenizer **out, vene_error *err) {
    char a[4096], b[4096];
    if (exists(dir, "tokenizer.json", a, sizeof a))
        return tok_load_tokenizer_json(a, exists(dir, "tokenizer_config.json", b, sizeof b) ? b : NULL, out, err);
    /* Hugging Face folders name the pair vocab.json + merges.txt; OpenAI's release and
     * the npm/tiktoken copies use encoder.json + vocab.bpe. */
    static const char *pairs[][2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
        if (exists(dir, pairs[i][0], a, sizeof a)) {
            if (!exists(dir, pairs[i][1], b, sizeof b))
                return vene_errorf(err, VENE_ERR_IO, "%s: has %s but no %s", dir, pairs[i][0], pairs[i][1]);
            return vene_tokenizer_load_files(a, b, out, err);
        }
    return vene_errorf(err, VENE_ERR_IO, "%s: no tokenizer.json, vocab.json + merges.txt or "
                                         "encoder.json + vocab.bpe", dir);
}

int vene_tokenizer_load(const char *path, vene_tokenizer **out, vene_error *err) {
    if (!path || !out) return vene_errorf(err, VENE_ERR_ARG, "vene_tokenizer_load: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return vene_errorf(err, VENE_ERR_IO, "%s: %s (expected a model folder, a tokenizer.json or a GGUF file)", path,
                           strerror(errno));
    if (S_ISDIR(st.st_mode)) return load_dir(path, out, err);
    FILE *f = fopen(path, "rb");
    if (!f) return vene_errorf(err, VENE_ERR_IO, "%s: %s", path, strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return tok_load_gguf(path, out, err);
    /* A file named tokenizer.json still takes its folder's tokenizer_config.json, as the
     * folder itself would; other names stand alone. */
    char dir[4096], config[4096];
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    int n = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) : snprintf(dir, sizeof dir, ".");
    int has_config = !strcmp(base, "tokenizer.json") && n > 0 && (size_t)n < sizeof dir &&
                     exists(dir, "tokenizer_config.json", config, sizeof config);
    return tok_load_tokenizer_json(path, has_config ? config : NULL, out, err);
}

void vene_tokenizer_free(vene_tokenizer *t) {
    if (!t) return;
    tok_wordlevel_free(t->wl);
    for (int i = 0; i < t->n_splits; i++) {
        pcre2_code_free(t->re[i]);
        free(t->patterns[i]);
    }
    tok_strmap_free(&t->vocab);
    tok_strmap_free(&t->by_bytes);
    tok_pairmap_free(&t->pairs);
    tok_arena_free(&t->arena);
    free(t->merges);
    free(t->added);
    free(t->tok);
    free(t);
}
