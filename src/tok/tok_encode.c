/* Encoding (regex pre-tokens -> byte tokens -> BPE merges) and decoding. */
#include "tok/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* Words longer than this are not cached: long runs rarely repeat and would only make
 * the cache hold large copies. */
#define TOK_CACHE_MAX_WORD 128

/* A queued merge: rank in the high half and the left symbol's position in the low half,
 * so one integer comparison orders by rank, then left to right. Entries are not removed
 * when a merge changes their pair; they are recognised as stale when popped. */
typedef uint64_t heap_ent;

/* Per-call state. The word cache lives here rather than in the tokenizer so that a
 * shared tokenizer stays read-only (no locks); within one call it still spares the
 * merging of every repeated word. */
typedef struct enc {
    const vene_tokenizer *t;
    int32_t *out;
    size_t n_out, cap_out;
    tok_strmap cache;      /* word -> offset into cids, where cids[off] = n, ids follow */
    tok_arena cache_keys;
    int32_t *cids;
    size_t n_cids, cap_cids;
    int32_t *sym, *prv, *nxt; /* the word as a linked list of tokens; merged-away = -1 */
    heap_ent *heap;
    size_t n_heap, cap_word;
} enc;

static int push_ids(int32_t **v, size_t *n, size_t *cap, const int32_t *ids, size_t k) {
    if (*cap - *n < k) {
        size_t ncap = *cap ? *cap : 256;
        while (ncap - *n < k) ncap *= 2;
        int32_t *nv = realloc(*v, ncap * sizeof *nv);
        if (!nv) return -1;
        *v = nv;
        *cap = ncap;
    }
    if (k) memcpy(*v + *n, ids, k * sizeof *ids);
    *n += k;
    return 0;
}

static void heap_push(enc *e, heap_ent x) {
    size_t i = e->n_heap++;
    while (i > 0 && x < e->heap[(i - 1) / 2]) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = x;
}

static heap_ent heap_pop(enc *e) {
    heap_ent top = e->heap[0], last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && e->heap[c + 1] < e->heap[c]) c++;
        if (e->heap[c] >= last) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    e->heap[i] = last;
    return top;
}

/* Queue the pair starting at symbol i, if the vocab can merge it. */
static void push_pair(enc *e, int32_t i) {
    int32_t j = e->nxt[i];
    if (j < 0) return;
    int32_t rank = tok_pairmap_get(&e->t->ranks, tok_pair_key(e->sym[i], e->sym[j]));
    if (rank >= 0) heap_push(e, (uint64_t)rank << 32 | (uint32_t)i);
}

static int reserve_word(enc *e, size_t n) {
    if (n <= e->cap_word) return 0;
    size_t cap = n < 64 ? 64 : n;
    free(e->sym), free(e->prv), free(e->nxt), free(e->heap);
    e->sym = malloc(cap * sizeof *e->sym);
    e->prv = malloc(cap * sizeof *e->prv);
    e->nxt = malloc(cap * sizeof *e->nxt);
    /* n-1 initial pairs, and each merge queues at most two more */
    e->heap = malloc(3 * cap * sizeof *e->heap);
    e->cap_word = e->sym && e->prv && e->nxt && e->heap ? cap : 0;
    return e->cap_word ? 0 : -1;
}

/* Merging lowest rank first with ties left to right gives what the reference's
 * "merge every occurrence of the best pair, left to right, and repeat" gives (a pair
 * holding a merged token always ranks after the merge that made it, in any trained
 * merge list), in O(n log n) rather than O(n^2) for very long words. Hugging Face's
 * tokenizers merge in this same order. */
static int bpe_word(enc *e, const char *w, size_t n) {
    const vene_tokenizer *t = e->t;
    if (n == 1) return push_ids(&e->out, &e->n_out, &e->cap_out, &t->byte_id[(unsigned char)w[0]], 1);
    int cacheable = n <= TOK_CACHE_MAX_WORD && e->n_cids < INT32_MAX / 2;
    if (cacheable) {
        int32_t off = tok_strmap_get(&e->cache, w, (uint32_t)n);
        if (off >= 0) return push_ids(&e->out, &e->n_out, &e->cap_out, e->cids + off + 1, (size_t)e->cids[off]);
    }
    if (reserve_word(e, n)) return -1;
    for (size_t i = 0; i < n; i++) {
        e->sym[i] = t->byte_id[(unsigned char)w[i]];
        e->prv[i] = (int32_t)i - 1;
        e->nxt[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    e->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(e, (int32_t)i);
    while (e->n_heap) {
        heap_ent h = heap_pop(e);
        const tok_merge *m = &t->merges[h >> 32];
        int32_t l = (int32_t)(uint32_t)h, r = e->nxt[l];
        if (e->sym[l] != m->left || r < 0 || e->sym[r] != m->right) continue; /* stale */
        e->sym[l] = m->result;
        e->sym[r] = -1;
        e->nxt[l] = e->nxt[r];
        if (e->nxt[r] >= 0) e->prv[e->nxt[r]] = l;
        if (e->prv[l] >= 0) push_pair(e, e->prv[l]);
        push_pair(e, l);
    }
    /* Compact the survivors in place: sym[k] for k < i is already consumed. */
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = e->nxt[i]) e->sym[k++] = e->sym[i];
    if (push_ids(&e->out, &e->n_out, &e->cap_out, e->sym, k)) return -1;
    if (!cacheable) return 0;
    int32_t off = (int32_t)e->n_cids, count = (int32_t)k;
    const char *key = tok_arena_dup(&e->cache_keys, w, n);
    if (!key || push_ids(&e->cids, &e->n_cids, &e->cap_cids, &count, 1) ||
        push_ids(&e->cids, &e->n_cids, &e->cap_cids, e->sym, k))
        return -1;
    return tok_strmap_put(&e->cache, key, (uint32_t)n, off, NULL) < 0 ? -1 : 0;
}

static void enc_free(enc *e) {
    tok_strmap_free(&e->cache);
    tok_arena_free(&e->cache_keys);
    free(e->cids), free(e->sym), free(e->prv), free(e->nxt), free(e->heap);
}

int vene_tokenize(const vene_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                  vene_error *err) {
    if (!t || !ids || !n_ids || (!text && len))
        return vene_errorf(err, VENE_ERR_ARG, "vene_tokenize: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (len > INT32_MAX)
        return vene_errorf(err, VENE_ERR_RANGE, "vene_tokenize: text of %zu bytes is over the 2 GiB limit", len);
    if (t->wl) return tok_wordlevel_encode(t, text, len, ids, n_ids, err);
    enc e = {.t = t};
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    /* Allocated up front so that even empty text hands back a buffer, not NULL. */
    e.cap_out = len / 3 + 16;
    e.out = malloc(e.cap_out * sizeof *e.out);
    int rc = md && e.out ? VENE_OK : VENE_ERR_MEMORY;
    for (size_t pos = 0; pos < len && !rc;) {
        int m = pcre2_match(t->re, (PCRE2_SPTR)text, len, pos, 0, md, NULL);
        size_t s = len, end = len;
        if (m >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            s = ov[0], end = ov[1];
        } else if (m != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = vene_errorf(err, VENE_ERR_UNSUPPORTED, "vene_tokenize: pre-tokenizer failed at byte %zu: %s",
                             pos, (const char *)msg);
            break;
        }
        if (end == s) s = end = len; /* cannot happen (no alternative matches empty); be safe */
        if (s > pos && bpe_word(&e, text + pos, s - pos)) rc = VENE_ERR_MEMORY; /* invalid UTF-8 */
        if (!rc && end > s && bpe_word(&e, text + s, end - s)) rc = VENE_ERR_MEMORY;
        pos = end;
    }
    pcre2_match_data_free(md);
    if (rc == VENE_ERR_MEMORY) vene_errorf(err, rc, "vene_tokenize: out of memory");
    if (rc) free(e.out);
    else {
        *ids = e.out;
        *n_ids = e.n_out;
    }
    enc_free(&e);
    return rc;
}

int vene_detokenize(const vene_tokenizer *t, const int32_t *ids, size_t n_ids, char **text, size_t *len,
                    vene_error *err) {
    if (!t || !text || !len || (!ids && n_ids))
        return vene_errorf(err, VENE_ERR_ARG, "vene_detokenize: NULL argument");
    *text = NULL;
    *len = 0;
    if (t->wl) return tok_wordlevel_decode(t, ids, n_ids, text, len, err);
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->tok[ids[i]].piece)
            return vene_errorf(err, VENE_ERR_RANGE, "token id %d (at %zu) is out of range: vocab size %d%s",
                               ids[i], i, t->n_vocab,
                               ids[i] >= 0 && ids[i] < t->n_vocab ? ", and no token has that id" : "");
        total += t->tok[ids[i]].n_bytes;
    }
    char *out = malloc(total + 1);
    if (!out) return vene_errorf(err, VENE_ERR_MEMORY, "vene_detokenize: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++) {
        const tok_token *tk = &t->tok[ids[i]];
        memcpy(out + n, tk->bytes, tk->n_bytes);
        n += tk->n_bytes;
    }
    out[n] = '\0';
    *text = out;
    *len = n;
    return VENE_OK;
}

int vene_tokenizer_vocab_size(const vene_tokenizer *t) { return t ? t->n_vocab : 0; }

const char *vene_token_piece(const vene_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return t->tok[id].piece;
}

int32_t vene_token_id(const vene_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    return tok_strmap_get(&t->vocab, piece, (uint32_t)strlen(piece));
}
