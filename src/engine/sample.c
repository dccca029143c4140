#include "engine/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int vene_sampler_init(vene_sampler *s, int V, vene_error *err) {
    s->V = V;
    s->z = malloc(sizeof(float) * (size_t)V);
    s->cand = malloc(sizeof(vene_scored) * (size_t)V);
    if (!s->z || !s->cand) {
        vene_sampler_free(s);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory (sampling scratch for %d tokens)", V);
    }
    return VENE_OK;
}

void vene_sampler_free(vene_sampler *s) {
    free(s->z);
    free(s->cand);
    s->z = NULL;
    s->cand = NULL;
}

static int32_t argmax(const float *x, int V) {
    int32_t best = 0;
    for (int32_t v = 1; v < V; v++)
        if (x[v] > x[best]) best = v;
    return best;
}

/* k-th largest of tmp[0..n-1] (1-based k), by quickselect (tmp is reordered). */
static float kth_largest(float *tmp, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1; /* index in descending order */
    while (lo < hi) {
        float pivot = tmp[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (tmp[i] > pivot) i++;
            while (tmp[j] < pivot) j--;
            if (i <= j) {
                float t = tmp[i];
                tmp[i++] = tmp[j];
                tmp[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    return tmp[want];
}

/* descending score, then ascending id: a total order, so the cut is deterministic */
static int by_score_desc(const void *a, const void *b) {
    const vene_scored *x = a, *y = b;
    if (x->z != y->z) return x->z > y->z ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t vene_sample(vene_sampler *s, const float *logits, const vene_gen_params *p, vene_rng *rng) {
    const int V = s->V;
    if (!(p->temperature > 0)) return argmax(logits, V);
    const float inv_t = 1.0f / p->temperature;
    /* candidates: every token, or those scoring at least the k-th best (ties kept) */
    float floor_k = -INFINITY;
    if (p->top_k > 0 && p->top_k < V) {
        for (int v = 0; v < V; v++) s->z[v] = logits[v] * inv_t;
        floor_k = kth_largest(s->z, V, p->top_k);
    }
    vene_scored *c = s->cand;
    int n = 0;
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) {
        float z = logits[v] * inv_t;
        if (z >= floor_k) {
            c[n++] = (vene_scored){z, v};
            if (z > mx) mx = z;
        }
    }
    const int nucleus = p->top_p > 0 && p->top_p < 1;
    if (nucleus) qsort(c, (size_t)n, sizeof *c, by_score_desc);
    double total = 0;
    for (int i = 0; i < n; i++) total += exp((double)c[i].z - mx);
    if (nucleus) {
        /* keep tokens while the probability before them is below top_p */
        double kept = 0;
        int keep = 0;
        while (keep < n && kept < p->top_p * total) kept += exp((double)c[keep++].z - mx);
        n = keep;
        total = kept;
    }
    double u = vene_rng_uniform(rng) * total, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += exp((double)c[i].z - mx);
        if (u < acc) return c[i].id;
    }
    return c[n - 1].id; /* u within rounding of the total */
}
