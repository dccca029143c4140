/* Memory limits of an intervenable call (vene_intervenable_set_memory_limit): the call's
 * peak memory is estimated from the batch shapes and the parsed locations, and a call over
 * the limit fails before its first pass instead of being killed by the system halfway.
 *
 * The estimate is an upper bound of what the call allocates: run scratch for the largest
 * pass (the arena is reused, so passes do not add up), the copies of the outputs, per
 * intervention the gathered source block plus the base block and its working copy, and the
 * seeded initialisation of rotations not yet initialised (E x E doubles and floats). */
#include <stdio.h>

#include "core/error.h"
#include "core/tensor.h"
#include "engine/engine.h"

void vene_intervenable_set_memory_limit(vene_intervenable *iv, size_t bytes) {
    iv->mem_limit = bytes;
    vene_run_set_memory_limit(iv->rs, bytes); /* a safety net for passes the estimate missed */
}

static uint64_t outputs_bytes(const vene_model *m, int B, int S, int copies) {
    uint64_t per = (uint64_t)m->d_model + (m->has_lm_head ? (uint64_t)m->vocab_size : 0);
    return vene_sat_mul(vene_sat_mul(vene_sat_mul((uint64_t)B, (uint64_t)S), per), sizeof(float) * (uint64_t)copies);
}

/* `what` reads "an intervened forward of 1 x 5 tokens" */
static int over(const vene_intervenable *iv, uint64_t need, const char *what, vene_error *err) {
    if (need <= iv->mem_limit) return VENE_OK;
    char a[64], b[64];
    return vene_errorf(err, VENE_ERR_MEMORY, "%s needs %s, over the memory limit of %s", what, vene_bytes_str(need, a, sizeof a),
                       vene_bytes_str(iv->mem_limit, b, sizeof b));
}

int vene_budget_check_length(const vene_intervenable *iv, int B, int S, vene_error *err) {
    if (!iv->mem_limit) return VENE_OK;
    const vene_model *m = iv->m;
    uint64_t need = vene_sat_add(m->arch->run_bytes(m, B, S), outputs_bytes(m, B, S, 2));
    char what[96];
    snprintf(what, sizeof what, "generating up to %d tokens (batch %d)", S, B);
    return over(iv, need, what, err);
}

/* Elements of the block vene_gather returns for a site of shape t (mirrors gather.c). */
static uint64_t block_numel(const vene_where *w, const vene_loc *loc, int nd, const int64_t *t) {
    uint64_t B = (uint64_t)t[0];
    if (w->unit == VENE_UNIT_T || nd < 3) return vene_sat_mul(B, (uint64_t)t[nd - 1]);
    uint64_t S = (uint64_t)t[1], W = (uint64_t)(w->split ? t[2] / 3 : t[2]);
    if (nd == 4) return vene_sat_mul(vene_sat_mul(B, loc->present ? (uint64_t)loc->k1 : S), (uint64_t)(t[2] * t[3]));
    if (!w->n_heads) return vene_sat_mul(vene_sat_mul(B, loc->present ? (uint64_t)loc->k1 : S), W);
    uint64_t k1 = loc->present ? (uint64_t)loc->k1 : (uint64_t)w->n_heads;
    uint64_t k2 = w->unit == VENE_UNIT_HPOS && loc->present ? (uint64_t)loc->k2 : S;
    return vene_sat_mul(vene_sat_mul(vene_sat_mul(B, k1), k2), W / (uint64_t)w->n_heads);
}

static uint64_t site_block_bytes(const vene_model *m, const vene_where *w, int site, const vene_loc *loc,
                                 const vene_batch *b) {
    int64_t shape[VENE_MAX_DIMS] = {0};
    int nd = vene_model_site_shape(m, site, b->batch, b->seq, shape);
    return nd > 0 ? vene_sat_mul(block_numel(w, loc, nd, shape), sizeof(float)) : 0;
}

int vene_budget_check(const vene_intervenable *iv, const vene_call *call, const vene_batch *const *src,
                      vene_error *err) {
    if (!iv->mem_limit) return VENE_OK;
    const vene_model *m = iv->m;
    const vene_batch *base = call->base;
    uint64_t arena = m->arch->run_bytes(m, base->batch, base->seq), blocks = 0;
    for (int g = 0; g < iv->G; g++)
        if (src[g]) {
            uint64_t a = m->arch->run_bytes(m, src[g]->batch, src[g]->seq);
            if (a > arena) arena = a;
        }
    for (int i = 0; i < iv->n; i++) {
        const vene_slot *s = &iv->slots[i];
        uint64_t bb = site_block_bytes(m, &s->where, s->where.site, &s->base_loc, base);
        blocks = vene_sat_add(blocks, vene_sat_mul(bb, 2));
        const vene_batch *sb = src[s->group];
        if (sb) {
            int site = s->iv->type == VENE_IV_SKIP && s->where.input_site >= 0 ? s->where.input_site : s->where.site;
            blocks = vene_sat_add(blocks, site_block_bytes(m, &s->where, site, &s->src_loc, sb));
        }
        const vene_iv *v = s->iv;
        int rotation = v->type == VENE_IV_ROTATED || v->type == VENE_IV_LOWRANK_ROTATED ||
                       v->type == VENE_IV_BOUNDLESS_ROTATED || v->type == VENE_IV_SIGMOID_MASK_ROTATED;
        if (rotation && s->iv_owner && !s->finalized && !v->W && v->embed_dim > 0) {
            uint64_t E = (uint64_t)v->embed_dim;
            blocks = vene_sat_add(blocks, vene_sat_mul(vene_sat_mul(E, E), sizeof(double) + 3 * sizeof(float)));
        }
    }
    uint64_t need = vene_sat_add(vene_sat_add(arena, outputs_bytes(m, base->batch, base->seq, call->output_original ? 2 : 1)),
                                 blocks);
    char what[96];
    snprintf(what, sizeof what, "an intervened forward of %d x %d tokens", base->batch, base->seq);
    return over(iv, need, what, err);
}
