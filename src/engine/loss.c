/* Losses for training: value, gradient w.r.t. the logits, and accuracy, in one pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "engine/loss.h"

double vene_logsumexp(const float *row, int64_t V, int64_t *argmax) {
    double mx = row[0];
    int64_t arg = 0;
    for (int64_t v = 1; v < V; v++)
        if (row[v] > mx) mx = row[v], arg = v;
    double z = 0;
    for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
    if (argmax) *argmax = arg;
    return log(z) + mx;
}

double vene_loss_row(const float *row, int64_t V, int32_t y, float *grad, double scale, int *hit) {
    int64_t arg;
    double lz = vene_logsumexp(row, V, &arg);
    if (grad) {
        for (int64_t v = 0; v < V; v++) grad[v] = (float)(exp((double)row[v] - lz) * scale);
        grad[y] -= (float)scale;
    }
    if (hit) *hit = arg == y;
    return lz - row[y];
}

int vene_loss_cross_entropy(const vene_tensor *logits, const int *positions, int position, const int32_t *labels,
                            vene_tensor *d_logits, float *loss, int *correct, vene_error *err) {
    if (!logits || !labels || !loss) return vene_errorf(err, VENE_ERR_ARG, "cross-entropy: NULL logits, labels or loss");
    if (logits->ndim != 3 && logits->ndim != 2)
        return vene_errorf(err, VENE_ERR_ARG, "cross-entropy: logits must be B x S x V or B x V (got %d dims)",
                           logits->ndim);
    int three = logits->ndim == 3;
    int64_t B = logits->shape[0], S = three ? logits->shape[1] : 1, V = logits->shape[logits->ndim - 1];
    if (d_logits) {
        if (!vene_tensor_same_shape(d_logits, logits))
            return vene_errorf(err, VENE_ERR_ARG, "cross-entropy: d_logits must have the logits' shape");
        memset(d_logits->data, 0, sizeof(float) * (size_t)vene_tensor_numel(logits));
    }
    for (int64_t b = 0; b < B; b++) {
        int64_t p = positions ? positions[b] : position;
        if (p < 0) p += S;
        if (p < 0 || p >= S)
            return vene_errorf(err, VENE_ERR_RANGE, "cross-entropy: position %lld of example %lld outside %lld positions",
                               (long long)(positions ? positions[b] : position), (long long)b, (long long)S);
        if (labels[b] < 0 || labels[b] >= V)
            return vene_errorf(err, VENE_ERR_RANGE, "cross-entropy: label %d of example %lld outside the %lld classes",
                               labels[b], (long long)b, (long long)V);
    }
    /* rows in parallel (two passes of exp over the vocabulary each), summed in order after */
    double *row_loss = malloc(sizeof(double) * (size_t)B);
    int *row_hit = malloc(sizeof(int) * (size_t)B);
    if (!row_loss || !row_hit) {
        free(row_loss), free(row_hit);
        return vene_errorf(err, VENE_ERR_MEMORY, "cross-entropy: out of memory for %lld examples", (long long)B);
    }
#pragma omp parallel for schedule(static) if (B > 1 && B * V > 65536)
    for (int64_t b = 0; b < B; b++) {
        int64_t p = positions ? positions[b] : position;
        if (p < 0) p += S;
        row_loss[b] = vene_loss_row(logits->data + (b * S + p) * V, V, labels[b],
                                    d_logits ? d_logits->data + (b * S + p) * V : NULL, 1.0 / (double)B, &row_hit[b]);
    }
    double total = 0;
    int hits = 0;
    for (int64_t b = 0; b < B; b++) total += row_loss[b], hits += row_hit[b];
    free(row_loss), free(row_hit);
    *loss = (float)(total / (double)B);
    if (correct) *correct = hits;
    return VENE_OK;
}
