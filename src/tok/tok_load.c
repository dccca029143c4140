/* Loading a GPT-2 style byte-level BPE tokenizer from Hugging Face's tokenizer.json or
 * from the original vocab.json (encoder.json) + merges.txt (vocab.bpe) pair. */
#include "tok/tok_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- building blocks */

int tok_set_token(vene_tokenizer *t, int32_t id, const char *piece, int raw, vene_error *err) {
    tok_token *tk = &t->tok[id];
    if (tk->piece) {
        if (strcmp(tk->piece, piece) != 0)
            return vene_errorf(err, VENE_ERR_FORMAT, "id %d given to both \"%s\" and \"%s\"", id,
                               tk->piece, piece);
    } else {
        size_t len = strlen(piece);
        char *copy = tok_arena_dup(&t->arena, piece, len);
        if (!copy) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        int32_t old = -1;
        int rc = tok_strmap_put(&t->vocab, copy, (uint32_t)len, id, &old);
        if (rc < 0) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        if (rc > 0)
            return vene_errorf(err, VENE_ERR_FORMAT, "piece \"%s\" given ids %d and %d", piece, old,
                               id);
        tk->piece = copy;
    }
    if (raw) {
        tk->bytes = tk->piece;
        tk->n_bytes = (uint32_t)strlen(tk->piece);
    }
    return VENE_OK;
}

int tok_add_merge(vene_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                  vene_error *err) {
    int32_t ia = tok_strmap_get(&t->vocab, a, (uint32_t)alen);
    int32_t ib = tok_strmap_get(&t->vocab, b, (uint32_t)blen);
    if (ia < 0 || ib < 0) {
        const char *p = ia < 0 ? a : b;
        int n = (int)(ia < 0 ? alen : blen);
        return vene_errorf(err, VENE_ERR_FORMAT, "piece \"%.*s\" is not in the vocab", n, p);
    }
    char small[256], *ab = small;
    if (alen + blen > sizeof small && !(ab = malloc(alen + blen)))
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    memcpy(ab, a, alen);
    memcpy(ab + alen, b, blen);
    int32_t im = tok_strmap_get(&t->vocab, ab, (uint32_t)(alen + blen));
    int rc = VENE_OK;
    if (im < 0) {
        rc = vene_errorf(err, VENE_ERR_FORMAT, "merged piece \"%.*s\" is not in the vocab",
                         (int)(alen + blen), ab);
    } else if (t->n_merges == t->cap_merges) {
        int32_t cap = t->cap_merges ? t->cap_merges * 2 : 1024;
        tok_merge *m = realloc(t->merges, (size_t)cap * sizeof *m);
        if (!m) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        else {
            t->merges = m;
            t->cap_merges = cap;
        }
    }
    if (ab != small) free(ab);
    if (rc) return rc;
    /* A repeated pair keeps its first (best) rank, as a dictionary built in file order
     * with "first wins" would; it takes no rank of its own. */
    int put = tok_pairmap_put(&t->ranks, tok_pair_key(ia, ib), t->n_merges, NULL);
    if (put < 0) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (put == 0) t->merges[t->n_merges++] = (tok_merge){ia, ib, im};
    return VENE_OK;
}

static int read_file(const char *path, char **buf, size_t *len, vene_error *err) {
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

static int parse_json(const char *path, cJSON **out, vene_error *err) {
    char *buf;
    size_t len;
    int rc = read_file(path, &buf, &len, err);
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

/* Vocab ids must be whole numbers in [0, TOK_MAX_ID). */
static int json_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TOK_MAX_ID) || floor(d) != d) return 0;
    *id = (int32_t)d;
    return 1;
}

static void max_id(const cJSON *vocab, const cJSON *added, int32_t *max) {
    int32_t id;
    for (const cJSON *e = vocab ? vocab->child : NULL; e; e = e->next)
        if (json_id(e, &id) && id > *max) *max = id;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next)
        if (json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) && id > *max) *max = id;
}

/* `where` names the object in messages: "" for a vocab.json, "model.vocab" inside a
 * tokenizer.json. */
static int load_vocab(vene_tokenizer *t, const cJSON *vocab, const cJSON *added, const char *file,
                      const char *where, vene_error *err) {
    if (!cJSON_IsObject(vocab))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: %s is not a JSON object", file,
                           *where ? where : "the vocab");
    int32_t max = -1;
    max_id(vocab, added, &max);
    if (max < 0) return vene_errorf(err, VENE_ERR_FORMAT, "%s: the vocab is empty", file);
    t->n_vocab = max + 1;
    t->tok = calloc((size_t)t->n_vocab, sizeof *t->tok);
    if (!t->tok) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", file);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id;
        if (!json_id(e, &id))
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: %s%skey \"%s\": id must be an integer in 0..%d",
                               file, where, *where ? " " : "", e->string, TOK_MAX_ID - 1);
        if (tok_set_token(t, id, e->string, 0, err))
            return vene_error_prefix(err, "%s: %s%skey \"%s\"", file, where, *where ? " " : "",
                                     e->string);
    }
    int i = 0;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next, i++) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        int32_t id;
        if (!json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id) || !cJSON_IsString(content))
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s: added_tokens[%d]: needs an integer \"id\" and a string \"content\"",
                               file, i);
        if (tok_set_token(t, id, content->valuestring, 1, err))
            return vene_error_prefix(err, "%s: added_tokens[%d]", file, i);
    }
    return VENE_OK;
}

/* ---------------------------------------------------------------- vocab.json + merges.txt */

static int load_merges_txt(vene_tokenizer *t, const char *path, vene_error *err) {
    char *buf;
    size_t len;
    int rc = read_file(path, &buf, &len, err);
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
            rc = vene_errorf(err, VENE_ERR_FORMAT,
                             "%s:%d: expected two pieces separated by one space, got \"%.*s\"", path,
                             line, n > 80 ? 80 : (int)n, p);
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
    vene_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    cJSON *root = NULL;
    int rc = parse_json(vocab_json, &root, err);
    if (!rc) rc = load_vocab(t, root, NULL, vocab_json, "", err);
    cJSON_Delete(root);
    if (!rc) rc = load_merges_txt(t, merges_txt, err);
    if (!rc) rc = tok_finish(t, vocab_json, err);
    if (rc) {
        vene_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return VENE_OK;
}

/* ---------------------------------------------------------------- tokenizer.json */

static int is_true(const cJSON *o, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static int nonempty_string(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring[0];
}

/* Only the GPT-2 pipeline is implemented; anything that would change the encoding is
 * refused rather than silently ignored. */
static int check_pipeline(const cJSON *root, const cJSON *model, const char *file, vene_error *err) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "BPE") == 0))
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: model.type %s is not supported (only BPE)",
                           file, cJSON_IsString(type) ? type->valuestring : "(not a string)");
    static const char *flags[] = {"byte_fallback", "ignore_merges"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (is_true(model, flags[i]))
            return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: model.%s is not supported", file, flags[i]);
    if (nonempty_string(model, "continuing_subword_prefix") || nonempty_string(model, "end_of_word_suffix"))
        return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                           "%s: model.continuing_subword_prefix/end_of_word_suffix are not supported", file);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm))
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: normalizer is not supported (must be null)", file);
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *ptype = cJSON_GetObjectItemCaseSensitive(pre, "type");
    const cJSON *use_regex = cJSON_GetObjectItemCaseSensitive(pre, "use_regex");
    if (!cJSON_IsString(ptype) || strcmp(ptype->valuestring, "ByteLevel") != 0 ||
        is_true(pre, "add_prefix_space") || cJSON_IsFalse(use_regex))
        return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                           "%s: pre_tokenizer must be ByteLevel with the GPT-2 regex and no "
                           "add_prefix_space", file);
    return VENE_OK;
}

static int load_json_merges(vene_tokenizer *t, const cJSON *merges, const char *file, vene_error *err) {
    if (!cJSON_IsArray(merges))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: model.merges is missing or not an array", file);
    int i = 0;
    for (const cJSON *m = merges->child; m; m = m->next, i++) {
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        if (cJSON_IsString(m)) { /* "a b" */
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (sp && sp != s && sp[1] && !strchr(sp + 1, ' ')) {
                a = s, alen = (size_t)(sp - s);
                b = sp + 1, blen = strlen(b);
            }
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) { /* ["a", "b"] */
            a = m->child->valuestring, alen = strlen(a);
            b = m->child->next->valuestring, blen = strlen(b);
        }
        if (!a || !alen || !blen)
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s: model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", file, i);
        if (tok_add_merge(t, a, alen, b, blen, err))
            return vene_error_prefix(err, "%s: model.merges[%d]", file, i);
    }
    return VENE_OK;
}

static int load_tokenizer_json(const char *path, vene_tokenizer **out, vene_error *err) {
    vene_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    cJSON *root = NULL;
    int rc = parse_json(path, &root, err);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!rc && !cJSON_IsObject(model))
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: no \"model\" object", path);
    if (!rc && added && !cJSON_IsArray(added))
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: added_tokens is not an array", path);
    int word_level = !rc && tok_wordlevel_is(model);
    if (!rc && !word_level) rc = check_pipeline(root, model, path, err);
    if (!rc)
        rc = load_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), added, path, "model.vocab",
                        err);
    if (!rc && word_level) rc = tok_wordlevel_finish(t, root, path, err);
    else if (!rc) rc = load_json_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), path, err);
    cJSON_Delete(root);
    if (!rc && !word_level) rc = tok_finish(t, path, err);
    if (rc) {
        vene_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return VENE_OK;
}

/* ---------------------------------------------------------------- folders */

static int exists(const char *dir, const char *name, char *path, size_t cap) {
    struct stat st;
    int n = snprintf(path, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap && stat(path, &st) == 0;
}

int vene_tokenizer_load(const char *dir, vene_tokenizer **out, vene_error *err) {
    if (!dir || !out) return vene_errorf(err, VENE_ERR_ARG, "vene_tokenizer_load: NULL argument");
    *out = NULL;
    char a[4096], b[4096];
    if (exists(dir, "tokenizer.json", a, sizeof a)) return load_tokenizer_json(a, out, err);
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

void vene_tokenizer_free(vene_tokenizer *t) {
    if (!t) return;
    pcre2_code_free(t->re);
    tok_wordlevel_free(t->wl);
    tok_strmap_free(&t->vocab);
    tok_pairmap_free(&t->ranks);
    tok_arena_free(&t->arena);
    free(t->merges);
    free(t->tok);
    free(t);
}
