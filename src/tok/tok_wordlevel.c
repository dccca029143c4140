/* Hugging Face's WordLevel model with the Whitespace pre-tokenizer: a text is cut at its
 * added tokens, the rest is split into runs of word characters and runs of other
 * non-space characters (the pre-tokenizer's regex \w+|[^\w\s]+), and each piece is looked
 * up whole in the vocabulary, the unknown token standing in for a piece it lacks.
 * Decoding with no decoder joins the tokens with single spaces, as the tokenizers
 * library does. Kept apart from the BPE code: the tokenizer only points at this state.
 *
 * \w and \s are PCRE2's Unicode classes (UCP): letters, numbers, underscore (and, from
 * PCRE2 10.43, marks and connector punctuation) and White_Space. Rust's regex, which
 * Hugging Face uses, also counts every mark and Join_Control as \w; texts in scripts
 * whose words carry combining marks may split differently on older PCRE2. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

struct tok_wordlevel {
    int32_t unk;          /* -1: an unknown piece is an error */
    int32_t *added;       /* ids of the added tokens, longest text first */
    int n_added;
    pcre2_code *re;
};

int tok_wordlevel_is(const void *model_json) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive((const cJSON *)model_json, "type");
    return cJSON_IsString(type) && strcmp(type->valuestring, "WordLevel") == 0;
}

void tok_wordlevel_free(tok_wordlevel *w) {
    if (!w) return;
    pcre2_code_free(w->re);
    free(w->added);
    free(w);
}

/* Longest first, so that a token whose text starts with another's wins (insertion sort:
 * there are few added tokens). */
static void sort_added(const vene_tokenizer *t, int32_t *ids, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t->tok[ids[j - 1]].n_bytes < t->tok[ids[j]].n_bytes; j--) {
            int32_t x = ids[j];
            ids[j] = ids[j - 1], ids[j - 1] = x;
        }
}

/* Everything but the model's vocab and the added tokens' ids (which tok_load.c read into
 * t already): the pipeline must be the one implemented here, and the unknown token must
 * be in the vocab. */
int tok_wordlevel_finish(vene_tokenizer *t, const void *root_json, const char *file, vene_error *err) {
    const cJSON *root = root_json, *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *ptype = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (!cJSON_IsString(ptype) || strcmp(ptype->valuestring, "Whitespace") != 0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: a WordLevel model needs the \"Whitespace\" pre_tokenizer, got %s",
                           file, cJSON_IsString(ptype) ? ptype->valuestring : "none");
    static const char *const absent[] = {"normalizer", "decoder", "post_processor"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, absent[i]);
        if (v && !cJSON_IsNull(v))
            return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: %s is not supported with a WordLevel model (must be null)",
                               file, absent[i]);
    }
    tok_wordlevel *w = calloc(1, sizeof *w);
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    t->wl = w;
    w->unk = -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (unk && !cJSON_IsNull(unk)) {
        if (!cJSON_IsString(unk) || (w->unk = vene_token_id(t, unk->valuestring)) < 0)
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: model.unk_token %s is not in the vocab", file,
                               cJSON_IsString(unk) ? unk->valuestring : "(not a string)");
    }
    /* Every token decodes to its piece. */
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].piece && !t->tok[id].bytes) {
            t->tok[id].bytes = t->tok[id].piece;
            t->tok[id].n_bytes = (uint32_t)strlen(t->tok[id].piece);
        }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *e;
    int n = cJSON_GetArraySize(added), i = 0;
    if (n > 0 && !(w->added = malloc(sizeof(int32_t) * (size_t)n))) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    cJSON_ArrayForEach(e, added) {
        static const char *const flags[] = {"single_word", "lstrip", "rstrip"};
        for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, flags[k])))
                return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: added_tokens[%d].%s is not supported", file, i, flags[k]);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        int32_t id = vene_token_id(t, content->valuestring); /* tok_load.c checked the entry */
        if (id >= 0 && content->valuestring[0]) w->added[w->n_added++] = id;
        i++;
    }
    sort_added(t, w->added, w->n_added);
    int code;
    PCRE2_SIZE at;
    w->re = pcre2_compile((PCRE2_SPTR) "\\w+|[^\\w\\s]+", PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                          &code, &at, NULL);
    if (!w->re) return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: the Whitespace pre-tokenizer's regex does not compile", file);
    pcre2_jit_compile(w->re, PCRE2_JIT_COMPLETE);
    return VENE_OK;
}

typedef struct ids_buf {
    int32_t *v;
    size_t n, cap;
} ids_buf;

static int push(ids_buf *b, int32_t id) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        int32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) return -1;
        b->v = v, b->cap = cap;
    }
    b->v[b->n++] = id;
    return 0;
}

/* The pieces of text[from, to) (no added tokens inside). */
static int encode_span(const vene_tokenizer *t, pcre2_match_data *md, const char *text, size_t from, size_t to,
                       ids_buf *out, vene_error *err) {
    const tok_wordlevel *w = t->wl;
    for (size_t pos = from; pos < to;) {
        int m = pcre2_match(w->re, (PCRE2_SPTR)text, to, pos, 0, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) break; /* only white space (or invalid UTF-8) is left */
        if (m < 0) return vene_errorf(err, VENE_ERR_UNSUPPORTED, "vene_tokenize: pre-tokenizer failed at byte %zu", pos);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int32_t id = tok_strmap_get(&t->vocab, text + ov[0], (uint32_t)(ov[1] - ov[0]));
        if (id < 0) id = w->unk;
        if (id < 0)
            return vene_errorf(err, VENE_ERR_FORMAT, "vene_tokenize: \"%.*s\" (at byte %zu) is not in the vocab and there is no unk_token",
                               (int)(ov[1] - ov[0] > 64 ? 64 : ov[1] - ov[0]), text + ov[0], (size_t)ov[0]);
        if (push(out, id)) return vene_errorf(err, VENE_ERR_MEMORY, "vene_tokenize: out of memory");
        pos = ov[1];
    }
    return VENE_OK;
}

int tok_wordlevel_encode(const vene_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                         vene_error *err) {
    const tok_wordlevel *w = t->wl;
    ids_buf out = {0};
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(w->re, NULL);
    int rc = md && push(&out, 0) == 0 ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "vene_tokenize: out of memory");
    out.n = 0; /* the push only made sure even an empty text hands back a buffer */
    size_t start = 0;
    /* Added tokens are matched first, leftmost and then longest (Hugging Face's order). */
    for (size_t i = 0; i < len && !rc; i++) {
        int hit = -1;
        for (int k = 0; k < w->n_added && hit < 0; k++) {
            const tok_token *tk = &t->tok[w->added[k]];
            if (tk->n_bytes <= len - i && memcmp(text + i, tk->piece, tk->n_bytes) == 0) hit = k;
        }
        if (hit < 0) continue;
        rc = encode_span(t, md, text, start, i, &out, err);
        if (!rc && push(&out, w->added[hit])) rc = vene_errorf(err, VENE_ERR_MEMORY, "vene_tokenize: out of memory");
        start = i + t->tok[w->added[hit]].n_bytes;
        i = start - 1;
    }
    if (!rc) rc = encode_span(t, md, text, start, len, &out, err);
    pcre2_match_data_free(md);
    if (rc) {
        free(out.v);
        return rc;
    }
    *ids = out.v;
    *n_ids = out.n;
    return VENE_OK;
}

int tok_wordlevel_decode(const vene_tokenizer *t, const int32_t *ids, size_t n_ids, char **text, size_t *len,
                         vene_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->tok[ids[i]].piece)
            return vene_errorf(err, VENE_ERR_RANGE, "token id %d (at %zu) is out of range: vocab size %d", ids[i], i, t->n_vocab);
        total += t->tok[ids[i]].n_bytes + 1;
    }
    char *out = malloc(total + 1);
    if (!out) return vene_errorf(err, VENE_ERR_MEMORY, "vene_detokenize: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (i) out[n++] = ' ';
        memcpy(out + n, t->tok[ids[i]].bytes, t->tok[ids[i]].n_bytes);
        n += t->tok[ids[i]].n_bytes;
    }
    out[n] = '\0';
    *text = out;
    *len = n;
    return VENE_OK;
}
