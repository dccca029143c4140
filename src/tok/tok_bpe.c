/* The BPE model: one pre-tokenized word -> first symbols -> ranked merges -> ids. */
#include "tok/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* Words longer than this are not cached: long runs rarely repeat and would only make
 * the cache hold large copies. */
#define TOK_CACHE_MAX_WORD 128
/* A first symbol that is not in the vocab (CHARS only): byte fallback or unk at the end. */
#define SYM_UNKNOWN (-2)

/* A queued merge: rank in the high half and the left symbol's position in the low half,
 * so one integer comparison orders by rank, then left to right. Entries are not removed
 * when a merge changes their pair; they are recognised as stale when popped. */
typedef uint64_t heap_ent;

/* Per-call state. The word cache lives here rather than in the tokenizer so that a
 * shared tokenizer stays read-only (no locks); within one call it still spares the
 * merging of every repeated word. */
struct tok_enc {
    const vene_tokenizer *t;
    int32_t *out;
    size_t n_out, cap_out;
    tok_strmap cache; /* word -> offset into cids, where cids[off] = n, ids follow */
    tok_arena cache_keys;
    int32_t *cids;
    size_t n_cids, cap_cids;
    int32_t *sym, *prv, *nxt; /* the word as a linked list of tokens; merged-away = -1 */
    uint32_t *off;            /* CHARS: byte offset of each first symbol, plus the end */
    heap_ent *heap;
    size_t n_heap, cap_word;
    char unknown[4]; /* the character that had neither byte tokens nor unk */
    size_t n_unknown;
};

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

tok_enc *tok_enc_new(const vene_tokenizer *t) {
    tok_enc *e = calloc(1, sizeof *e);
    if (e) e->t = t;
    return e;
}

void tok_enc_free(tok_enc *e) {
    if (!e) return;
    tok_strmap_free(&e->cache);
    tok_arena_free(&e->cache_keys);
    free(e->out), free(e->cids), free(e->sym), free(e->prv), free(e->nxt), free(e->off), free(e->heap);
    free(e);
}

size_t tok_enc_unknown(const tok_enc *e, const char **c) {
    *c = e->unknown;
    return e->n_unknown;
}

int tok_enc_push(tok_enc *e, const int32_t *ids, size_t n) { return push_ids(&e->out, &e->n_out, &e->cap_out, ids, n); }

int32_t *tok_enc_take(tok_enc *e, size_t *n) {
    /* Even no ids hand back a buffer, not NULL. */
    if (!e->out && !(e->out = malloc(sizeof *e->out))) return NULL;
    int32_t *out = e->out;
    *n = e->n_out;
    e->out = NULL;
    e->n_out = e->cap_out = 0;
    return out;
}

static void heap_push(tok_enc *e, heap_ent x) {
    size_t i = e->n_heap++;
    while (i > 0 && x < e->heap[(i - 1) / 2]) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = x;
}

static heap_ent heap_pop(tok_enc *e) {
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

/* The merge of symbol i with its right neighbour, or NULL. */
static inline const tok_merge *pair_at(const tok_enc *e, int32_t i) {
    int32_t j = e->nxt[i];
    if (j < 0 || e->sym[i] < 0 || e->sym[j] < 0) return NULL;
    int32_t m = tok_pairmap_get(&e->t->pairs, tok_pair_key(e->sym[i], e->sym[j]));
    return m >= 0 ? &e->t->merges[m] : NULL;
}

static inline void push_pair(tok_enc *e, int32_t i) {
    const tok_merge *m = pair_at(e, i);
    if (m) heap_push(e, (uint64_t)(uint32_t)m->rank << 32 | (uint32_t)i);
}

static int reserve_word(tok_enc *e, size_t n) {
    if (n <= e->cap_word) return 0;
    size_t cap = n < 64 ? 64 : n;
    free(e->sym), free(e->prv), free(e->nxt), free(e->off), free(e->heap);
    e->sym = malloc(cap * sizeof *e->sym);
    e->prv = malloc(cap * sizeof *e->prv);
    e->nxt = malloc(cap * sizeof *e->nxt);
    e->off = malloc((cap + 1) * sizeof *e->off);
    /* n-1 initial pairs, and each merge queues at most two more */
    e->heap = malloc(3 * cap * sizeof *e->heap);
    e->cap_word = e->sym && e->prv && e->nxt && e->off && e->heap ? cap : 0;
    return e->cap_word ? 0 : -1;
}

/* Length of the UTF-8 character at s (n > 0 bytes left); an invalid byte is a
 * character of its own, as SentencePiece and llama.cpp treat it. */
static size_t char_len(const unsigned char *s, size_t n) {
    size_t k = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
             : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 1;
    if (k > n) return 1;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 1;
    return k;
}

/* First symbols; returns how many. *unknown tells whether one is not in the vocab. */
static size_t first_symbols(tok_enc *e, const char *w, size_t n, int *unknown) {
    const vene_tokenizer *t = e->t;
    size_t k = 0;
    if (t->symbols == TOK_SYM_BYTES) {
        for (size_t i = 0; i < n; i++) e->sym[k++] = t->byte_id[(unsigned char)w[i]];
    } else {
        for (size_t i = 0; i < n; k++) {
            size_t c = char_len((const unsigned char *)w + i, n - i);
            int32_t id = tok_strmap_get(&t->vocab, w + i, (uint32_t)c);
            e->sym[k] = id >= 0 ? id : SYM_UNKNOWN;
            *unknown |= id < 0;
            e->off[k] = (uint32_t)i;
            i += c;
        }
        e->off[k] = (uint32_t)n;
    }
    for (size_t i = 0; i < k; i++) {
        e->prv[i] = (int32_t)i - 1;
        e->nxt[i] = i + 1 < k ? (int32_t)i + 1 : -1;
    }
    return k;
}

/* An unknown character: its byte tokens, or unk. Returns -2 when it has neither. */
static int emit_unknown(tok_enc *e, const char *c, size_t n, int *last_unk) {
    const vene_tokenizer *t = e->t;
    int have_bytes = t->byte_fallback;
    for (size_t i = 0; i < n && have_bytes; i++) have_bytes = t->byte_id[(unsigned char)c[i]] >= 0;
    if (have_bytes) {
        *last_unk = 0;
        for (size_t i = 0; i < n; i++)
            if (push_ids(&e->out, &e->n_out, &e->cap_out, &t->byte_id[(unsigned char)c[i]], 1)) return -1;
        return 0;
    }
    if (t->unk_id < 0) {
        e->n_unknown = n < sizeof e->unknown ? n : sizeof e->unknown;
        memcpy(e->unknown, c, e->n_unknown);
        return -2;
    }
    if (t->fuse_unk && *last_unk) return 0;
    *last_unk = 1;
    return push_ids(&e->out, &e->n_out, &e->cap_out, &t->unk_id, 1);
}

/* Whether first symbols i and i + 1 of word w may ever be joined (see span in
 * tok_internal.h): the last bytes of the two characters. */
static inline int may_join(const tok_enc *e, const char *w, size_t i) {
    const unsigned char *u = (const unsigned char *)w;
    unsigned x, y;
    if (e->t->symbols == TOK_SYM_BYTES) x = u[i], y = u[i + 1];
    else x = u[e->off[i + 1] - 1], y = u[e->off[i + 2] - 1];
    return e->t->span[(x << 8 | y) >> 3] >> (y & 7) & 1;
}

/* The merge loop over first symbols [a, b), which no merge can join to their neighbours. */
static void merge_run(tok_enc *e, size_t a, size_t b) {
    const vene_tokenizer *t = e->t;
    e->n_heap = 0;
    for (size_t i = a; i + 1 < b; i++) push_pair(e, (int32_t)i);
    while (e->n_heap) {
        heap_ent h = heap_pop(e);
        int32_t l = (int32_t)(uint32_t)h, r = e->nxt[l];
        const tok_merge *m;
        if (t->rank_is_index) { /* the rank names the merge: check it still fits */
            m = &t->merges[h >> 32];
            if (e->sym[l] != m->left || r < 0 || e->sym[r] != m->right) continue; /* stale */
        } else if (!(m = pair_at(e, l)) || (uint32_t)m->rank != (uint32_t)(h >> 32)) {
            continue; /* stale */
        }
        e->sym[l] = m->result;
        e->sym[r] = -1;
        e->nxt[l] = e->nxt[r];
        if (e->nxt[r] >= 0) e->prv[e->nxt[r]] = l;
        if (e->prv[l] >= 0) push_pair(e, e->prv[l]);
        push_pair(e, l);
    }
}

/* Merging lowest rank first with ties left to right gives what the reference's
 * "merge every occurrence of the best pair, left to right, and repeat" gives (a pair
 * holding a merged token always ranks after the merge that made it, in any trained
 * merge list), in O(n log n) rather than O(n^2) for very long words. Hugging Face's
 * tokenizers merge in this same order, and SentencePiece's (score, then left first)
 * is this order with ranks taken from scores. */
int tok_enc_word(tok_enc *e, const char *w, size_t n) {
    const vene_tokenizer *t = e->t;
    if (n == 0) return 0;
    if (t->symbols == TOK_SYM_BYTES && n == 1)
        return push_ids(&e->out, &e->n_out, &e->cap_out, &t->byte_id[(unsigned char)w[0]], 1);
    if (t->ignore_merges) {
        const tok_strmap *m = t->symbols == TOK_SYM_BYTES ? &t->by_bytes : &t->vocab;
        int32_t id = n < UINT32_MAX ? tok_strmap_get(m, w, (uint32_t)n) : -1;
        if (id >= 0) return push_ids(&e->out, &e->n_out, &e->cap_out, &id, 1);
    }
    int cacheable = n <= TOK_CACHE_MAX_WORD && e->n_cids < INT32_MAX / 2;
    if (cacheable) {
        int32_t off = tok_strmap_get(&e->cache, w, (uint32_t)n);
        if (off >= 0) return push_ids(&e->out, &e->n_out, &e->cap_out, e->cids + off + 1, (size_t)e->cids[off]);
    }
    if (reserve_word(e, n)) return -1;
    int unknown = 0;
    size_t k = first_symbols(e, w, n, &unknown);
    for (size_t a = 0, b; a < k; a = b) {
        for (b = a + 1; b < k && may_join(e, w, b - 1); b++) {}
        merge_run(e, a, b);
    }
    size_t start = e->n_out;
    int last_unk = 0;
    if (!unknown) { /* compact the survivors in place (sym[k] for k < i is consumed) */
        k = 0;
        for (int32_t i = 0; i >= 0; i = e->nxt[i]) e->sym[k++] = e->sym[i];
        if (push_ids(&e->out, &e->n_out, &e->cap_out, e->sym, k)) return -1;
    }
    for (int32_t i = 0; unknown && i >= 0; i = e->nxt[i]) {
        if (e->sym[i] == SYM_UNKNOWN) {
            /* unknown symbols never merge, so the next first symbol ends this one */
            int rc = emit_unknown(e, w + e->off[i], e->off[i + 1] - e->off[i], &last_unk);
            if (rc) return rc;
        } else {
            last_unk = 0;
            if (push_ids(&e->out, &e->n_out, &e->cap_out, &e->sym[i], 1)) return -1;
        }
    }
    if (!cacheable) return 0;
    int32_t off = (int32_t)e->n_cids, count = (int32_t)(e->n_out - start);
    const char *key = tok_arena_dup(&e->cache_keys, w, n);
    if (!key || push_ids(&e->cids, &e->n_cids, &e->cap_cids, &count, 1) ||
        push_ids(&e->cids, &e->n_cids, &e->cap_cids, e->out + start, (size_t)count))
        return -1;
    return tok_strmap_put(&e->cache, key, (uint32_t)n, off, NULL) < 0 ? -1 : 0;
}
