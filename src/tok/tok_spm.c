/* SentencePiece BPE as merges. SentencePiece (and llama.cpp's port of it) merges, at each
 * step, the adjacent pair whose concatenation is the vocab piece with the highest
 * score, leftmost first on ties. That is the BPE merge loop of tok_bpe.c once every
 * split of a piece into two vocab pieces is a merge whose rank orders by the piece's
 * score: equal scores get equal ranks, so they too go left to right. */
#include "tok/tok_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct scored {
    float score;
    int32_t id;
} scored;

static int cmp_score_desc(const void *x, const void *y) {
    const scored *a = x, *b = y;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Start of the UTF-8 character after byte i (merges only ever join whole characters). */
static size_t next_char(const char *s, size_t i, size_t n) {
    i++;
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    return i;
}

int tok_merges_from_scores(vene_tokenizer *t, const float *scores, const char *file, vene_error *err) {
    scored *order = malloc((size_t)t->n_vocab * sizeof *order);
    int32_t *rank = malloc((size_t)t->n_vocab * sizeof *rank);
    int rc = order && rank ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", file);
    for (int32_t id = 0; id < t->n_vocab && !rc; id++) {
        if (!isfinite(scores[id]))
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: score of token %d is not a finite number", file, id);
        order[id] = (scored){scores[id], id};
    }
    if (!rc) {
        qsort(order, (size_t)t->n_vocab, sizeof *order, cmp_score_desc);
        int32_t r = 0;
        for (int32_t i = 0; i < t->n_vocab; i++) {
            if (i && order[i].score != order[i - 1].score) r++;
            rank[order[i].id] = r;
        }
    }
    for (int32_t id = 0; id < t->n_vocab && !rc; id++) {
        const char *p = t->tok[id].piece;
        if (!p || t->tok[id].type == TOK_BYTE) continue;
        size_t n = strlen(p);
        for (size_t k = next_char(p, 0, n); k < n && !rc; k = next_char(p, k, n)) {
            int32_t l = tok_strmap_get(&t->vocab, p, (uint32_t)k);
            int32_t r = l >= 0 ? tok_strmap_get(&t->vocab, p + k, (uint32_t)(n - k)) : -1;
            if (r >= 0 && tok_add_merge_ids(t, l, r, id, rank[id], err)) rc = vene_error_prefix(err, "%s", file);
        }
    }
    free(order);
    free(rank);
    return rc;
}
