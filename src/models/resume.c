#include "models/resume.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels.h"

int vene_run_set_resume(vene_run *rs, const vene_resume *plan, vene_error *err) {
    if (plan && !rs->m->arch->resumable)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: the forward cannot resume part-way (sweeps need GPT-2)",
                           rs->m->arch->model_type);
    if (plan && rs->kv) return vene_errorf(err, VENE_ERR_STATE, "resuming a forward: detach the KV cache first");
    if (plan && rs->grad_mode)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "resuming a forward: gradients are on (vene_run_set_grad 0 first)");
    if (plan && (plan->first_layer < 0 || plan->first_layer > rs->m->n_layer))
        return vene_errorf(err, VENE_ERR_RANGE, "resuming at layer %d: the model has %d layers", plan->first_layer,
                           rs->m->n_layer);
    rs->resume = plan;
    return VENE_OK;
}

int vene_resume_attention(const vene_run *rs, const float *q, const float *k, const float *v, int ld, float *out,
                          int ldo, int n_head, int n_kv, int hd, float scale_div, int window, vene_error *err) {
    const vene_resume *plan = rs->resume;
    const int W = n_kv * hd, rows = rs->B * rs->S;
    int max_keys = 0, max_rows = 0;
    for (int c = 0; c < plan->n_cells; c++) {
        const vene_resume_cell *cell = &plan->cells[c];
        if (cell->row0 < 0 || cell->n_rows <= 0 || cell->pos0 < 0 || cell->row0 > rows - cell->n_rows ||
            (cell->pos0 > 0 && !(cell->past_k && cell->past_v)))
            return vene_errorf(err, VENE_ERR_ARG, "resume plan: cell %d (rows %d + %d, %d earlier positions) does not fit "
                               "a batch of %d rows", c, cell->row0, cell->n_rows, cell->pos0, rows);
        if (cell->pos0 + cell->n_rows > max_keys) max_keys = cell->pos0 + cell->n_rows;
        if (cell->n_rows > max_rows) max_rows = cell->n_rows;
    }
    /* per thread: the cell's keys and values gathered contiguously, and its probabilities */
    const size_t per_thread = (size_t)2 * max_keys * W + (size_t)n_head * max_rows * max_keys;
    const int nt = omp_get_max_threads();
    float *scratch = malloc(sizeof(float) * per_thread * (size_t)nt);
    if (!scratch) return vene_errorf(err, VENE_ERR_MEMORY, "resume plan: out of memory for attention scratch");
#pragma omp parallel for schedule(dynamic, 4) if (plan->n_cells > 1)
    for (int c = 0; c < plan->n_cells; c++) {
        const vene_resume_cell *cell = &plan->cells[c];
        const int n = cell->pos0 + cell->n_rows;
        float *K = scratch + per_thread * (size_t)omp_get_thread_num(), *V = K + (size_t)n * W, *P = V + (size_t)n * W;
        for (int j = 0; j < cell->pos0; j++) {
            memcpy(K + (size_t)j * W, cell->past_k + (size_t)j * cell->past_ld, sizeof(float) * (size_t)W);
            memcpy(V + (size_t)j * W, cell->past_v + (size_t)j * cell->past_ld, sizeof(float) * (size_t)W);
        }
        for (int i = 0; i < cell->n_rows; i++) {
            size_t r = (size_t)(cell->row0 + i) * (size_t)ld;
            memcpy(K + (size_t)(cell->pos0 + i) * W, k + r, sizeof(float) * (size_t)W);
            memcpy(V + (size_t)(cell->pos0 + i) * W, v + r, sizeof(float) * (size_t)W);
        }
        vk_kv kv = {K, V, W, (int64_t)n * W, n, cell->pos0, NULL, n};
        vk_attn_scores_kv(q + (size_t)cell->row0 * ld, ld, &kv, P, 1, cell->n_rows, n_head, n_kv, hd, scale_div, window);
        vk_attn_values_kv(P, &kv, out + (size_t)cell->row0 * ldo, ldo, 1, cell->n_rows, n_head, n_kv, hd);
    }
    free(scratch);
    return VENE_OK;
}
