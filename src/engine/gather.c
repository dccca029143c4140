/* Moving blocks between live site tensors and contiguous intervention blocks
 * (spec §6.4 gather, §6.5 scatter). One address walk serves both directions so they can
 * never disagree. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"

typedef struct walk {
    int B, S, Dt;           /* site tensor as B x S x Dt (3-D sites) */
    int start, W;           /* channel window after a third-split */
    int four_d;             /* site is B x H x S x S (attention weights) */
    int64_t inner;          /* elements per dim-1 slice for 4-D sites */
} walk;

static int check_idx(int v, int limit, const char *who, const char *axis, int b, vene_error *err) {
    if (v < 0 || v >= limit)
        return vene_errorf(err, VENE_ERR_RANGE, "%s: location %d past the %s (size %d) for example %d", who, v, axis, limit, b);
    return VENE_OK;
}

/* dir 0: block <- tensor; dir 1: tensor <- block. */
static int move(const vene_where *w, const vene_loc *loc, vene_tensor *t, vene_tensor *blk, int dir, const char *who,
                vene_error *err) {
    walk k = {0};
    int B = (int)t->shape[0];
    if (t->ndim == 4) {
        k.four_d = 1;
        k.inner = t->shape[2] * t->shape[3];
        k.S = (int)t->shape[1];
    } else if (t->ndim == 3) {
        k.S = (int)t->shape[1];
        k.Dt = (int)t->shape[2];
    } else if (t->ndim == 2 && w->unit == VENE_UNIT_T) {
        k.S = 1;
        k.Dt = (int)t->shape[1];
    } else {
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: site tensor of %d dims is not supported", who, t->ndim);
    }
    k.B = B;
    k.start = 0;
    k.W = k.Dt;
    if (w->split) {
        if (k.four_d || k.Dt % 3) return vene_errorf(err, VENE_ERR_STATE, "%s: cannot split a site into thirds", who);
        k.W = k.Dt / 3;
        k.start = (w->split - VENE_SPLIT_THIRD0) * k.W;
    }
    if (loc->present && loc->rows != B)
        return vene_errorf(err, VENE_ERR_ARG, "%s: locations have %d rows but the batch has %d examples", who, loc->rows, B);
    float *T = t->data;
    int64_t shape[VENE_MAX_DIMS];
    int nd;
    int rc;
    if (w->unit == VENE_UNIT_T) {
        /* the whole B x D state; the engine selects rows */
        nd = 2;
        shape[0] = B;
        shape[1] = k.W;
        if (dir == 0) {
            blk->data = malloc(sizeof(float) * (size_t)B * (size_t)k.W);
            if (!blk->data) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        }
        for (int b = 0; b < B; b++) {
            float *tp = T + (int64_t)b * k.Dt + k.start, *bp = blk->data + (int64_t)b * k.W;
            if (dir == 0) memcpy(bp, tp, sizeof(float) * (size_t)k.W);
            else memcpy(tp, bp, sizeof(float) * (size_t)k.W);
        }
    } else if (k.four_d) {
        /* "pos" (or any unit) on B x H x S x S indexes dim 1 */
        int K = loc->present ? loc->k1 : k.S;
        nd = 4;
        shape[0] = B;
        shape[1] = K;
        shape[2] = t->shape[2];
        shape[3] = t->shape[3];
        if (dir == 0) {
            blk->data = malloc(sizeof(float) * (size_t)B * (size_t)K * (size_t)k.inner);
            if (!blk->data) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        }
        for (int b = 0; b < B; b++)
            for (int i = 0; i < K; i++) {
                int h = loc->present ? loc->idx1[b * K + i] : i;
                if (loc->present && (rc = check_idx(h, k.S, who, "head axis", b, err))) goto fail;
                float *tp = T + ((int64_t)b * k.S + h) * k.inner, *bp = blk->data + ((int64_t)b * K + i) * k.inner;
                if (dir == 0) memcpy(bp, tp, sizeof(float) * (size_t)k.inner);
                else memcpy(tp, bp, sizeof(float) * (size_t)k.inner);
            }
    } else if (!w->n_heads) {
        int K = loc->present ? loc->k1 : k.S;
        nd = 3;
        shape[0] = B;
        shape[1] = K;
        shape[2] = k.W;
        if (dir == 0) {
            blk->data = malloc(sizeof(float) * (size_t)B * (size_t)K * (size_t)k.W);
            if (!blk->data) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        }
        for (int b = 0; b < B; b++)
            for (int i = 0; i < K; i++) {
                int s = loc->present ? loc->idx1[b * K + i] : i;
                if (loc->present && (rc = check_idx(s, k.S, who, "sequence", b, err))) goto fail;
                float *tp = T + ((int64_t)b * k.S + s) * k.Dt + k.start, *bp = blk->data + ((int64_t)b * K + i) * k.W;
                if (dir == 0) memcpy(bp, tp, sizeof(float) * (size_t)k.W);
                else memcpy(tp, bp, sizeof(float) * (size_t)k.W);
            }
    } else {
        int H = w->n_heads;
        if (k.W % H) return vene_errorf(err, VENE_ERR_STATE, "%s: width %d does not split into %d heads", who, k.W, H);
        int d = k.W / H;
        int two = w->unit == VENE_UNIT_HPOS && loc->present;
        int K1 = loc->present ? loc->k1 : H, K2 = two ? loc->k2 : k.S;
        nd = 4;
        shape[0] = B;
        shape[1] = K1;
        shape[2] = K2;
        shape[3] = d;
        if (dir == 0) {
            blk->data = malloc(sizeof(float) * (size_t)B * (size_t)K1 * (size_t)K2 * (size_t)d);
            if (!blk->data) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        }
        for (int b = 0; b < B; b++)
            for (int i = 0; i < K1; i++) {
                int h = loc->present ? loc->idx1[b * K1 + i] : i;
                if (loc->present && (rc = check_idx(h, H, who, "head axis", b, err))) goto fail;
                for (int j = 0; j < K2; j++) {
                    int s = two ? loc->idx2[b * K2 + j] : j;
                    if (two && (rc = check_idx(s, k.S, who, "sequence", b, err))) goto fail;
                    float *tp = T + ((int64_t)b * k.S + s) * k.Dt + k.start + (int64_t)h * d;
                    float *bp = blk->data + (((int64_t)b * K1 + i) * K2 + j) * d;
                    if (dir == 0) memcpy(bp, tp, sizeof(float) * (size_t)d);
                    else memcpy(tp, bp, sizeof(float) * (size_t)d);
                }
            }
    }
    if (dir == 0) {
        float *data = blk->data;
        *blk = vene_tensor_view(data, nd, shape);
    }
    return VENE_OK;
fail:
    if (dir == 0) {
        free(blk->data);
        blk->data = NULL;
    }
    return rc;
}

int vene_gather(const vene_where *w, const vene_loc *loc, const vene_tensor *t, vene_tensor *block, const char *who,
                vene_error *err) {
    memset(block, 0, sizeof *block);
    return move(w, loc, (vene_tensor *)t, block, 0, who, err);
}

int vene_scatter(const vene_where *w, const vene_loc *loc, vene_tensor *t, const vene_tensor *block, const char *who,
                 vene_error *err) {
    /* the caller checks that the block kept the shape vene_gather gave it */
    vene_tensor blk = *block;
    return move(w, loc, t, &blk, 1, who, err);
}
