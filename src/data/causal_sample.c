/* pyvene's sample_input_tree_balanced: equivalence classes (for every non-input variable and
 * value, the parent assignments that produce it) and the top-down draw through them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/causal.h"

/* Enumerate every assignment of v's parents (mixed radix, first parent most significant),
 * run the mechanism, and group the assignment codes by the value they give. */
static int eq_build(vene_causal *cm, vene_causal_var *v, vene_error *err) {
    int64_t total = 1;
    for (int p = 0; p < v->n_parents; p++) {
        total *= cm->v[v->parents[p]].n_values;
        if (total > VENE_CAUSAL_MAX_COMBOS)
            return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                               "causal model: %s: more than %lld parent assignments to enumerate for balanced "
                               "sampling; use uniform sampling", v->name, (long long)VENE_CAUSAL_MAX_COMBOS);
    }
    int *val = malloc((size_t)total * sizeof *val);
    int64_t *start = calloc((size_t)v->n_values + 1, sizeof *start);
    int64_t *codes = malloc((size_t)total * sizeof *codes);
    int pv_stack[16], *pv = v->n_parents > 16 ? malloc((size_t)v->n_parents * sizeof *pv) : pv_stack;
    int rc = VENE_OK;
    if (!val || !start || !codes || !pv) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "causal model: %s: out of memory for %lld parent assignments",
                         v->name, (long long)total);
        goto out;
    }
    for (int64_t c = 0; c < total && !rc; c++) {
        int64_t r = c;
        for (int p = v->n_parents - 1; p >= 0; p--) {
            int64_t nv = cm->v[v->parents[p]].n_values;
            pv[p] = (int)(r % nv);
            r /= nv;
        }
        rc = v->fn(v->user, pv, &val[c], err);
        if (rc) vene_error_prefix(err, "causal model: mechanism of %s", v->name);
        else if (val[c] < 0 || val[c] >= v->n_values)
            rc = vene_errorf(err, VENE_ERR_RANGE, "causal model: mechanism of %s returned value index %d (%d values)",
                             v->name, val[c], v->n_values);
        else
            start[val[c] + 1]++;
    }
    if (rc) goto out;
    for (int k = 0; k < v->n_values; k++) start[k + 1] += start[k];
    int64_t *fill = calloc((size_t)v->n_values, sizeof *fill);
    if (!fill) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
        goto out;
    }
    for (int64_t c = 0; c < total; c++) codes[start[val[c]] + fill[val[c]]++] = c;
    free(fill);
    v->eq_start = start;
    v->eq_codes = codes;
    start = NULL;
    codes = NULL;
out:
    free(val);
    free(start);
    free(codes);
    if (pv != pv_stack) free(pv);
    return rc;
}

static int64_t eq_size(const vene_causal_var *v, int value) { return v->eq_start[value + 1] - v->eq_start[value]; }

/* Assign the inputs under `var` so that it takes `value`: a uniform parent assignment among
 * those giving the value, then the same for each non-input parent. *conflict is set when an
 * input shared by two branches was given two different values. */
static int descend(vene_causal *cm, int var, int value, uint64_t *rng, int *clamp, int *conflict, vene_error *err) {
    vene_causal_var *v = &cm->v[var];
    if (v->is_input) {
        if (clamp[var] >= 0 && clamp[var] != value) *conflict = 1;
        else clamp[var] = value;
        return VENE_OK;
    }
    if (!v->eq_start) {
        int rc = eq_build(cm, v, err);
        if (rc) return rc;
    }
    int64_t n = eq_size(v, value);
    if (n == 0) {
        char buf[256];
        return vene_errorf(err, VENE_ERR_RANGE, "causal model: no assignment of the parents gives %s",
                           vene_causal_value_label(cm, var, value, buf, sizeof buf));
    }
    int64_t code = v->eq_codes[v->eq_start[value] + (int64_t)vene_causal_below(rng, (uint64_t)n)];
    /* decode first, recurse after: a parent's descent may consume the rng in any order */
    int pv_stack[16], *pv = v->n_parents > 16 ? malloc((size_t)v->n_parents * sizeof *pv) : pv_stack;
    if (!pv) return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    for (int p = v->n_parents - 1; p >= 0; p--) {
        int64_t nv = cm->v[v->parents[p]].n_values;
        pv[p] = (int)(code % nv);
        code /= nv;
    }
    int rc = VENE_OK;
    for (int p = 0; p < v->n_parents && !rc && !*conflict; p++)
        rc = descend(cm, v->parents[p], pv[p], rng, clamp, conflict, err);
    if (pv != pv_stack) free(pv);
    return rc;
}

int vene_causal_balanced_value(vene_causal *cm, int var, uint64_t *rng, int *value, vene_error *err) {
    vene_causal_var *v = &cm->v[var];
    if (v->is_input) {
        *value = (int)vene_causal_below(rng, (uint64_t)v->n_values);
        return VENE_OK;
    }
    if (!v->eq_start) {
        int rc = eq_build(cm, v, err);
        if (rc) return rc;
    }
    int n = 0;
    for (int k = 0; k < v->n_values; k++) n += eq_size(v, k) > 0;
    int pick = (int)vene_causal_below(rng, (uint64_t)n); /* n >= 1: every assignment gives some value */
    for (int k = 0; k < v->n_values; k++)
        if (eq_size(v, k) > 0 && pick-- == 0) *value = k;
    return VENE_OK;
}

/* The only output, or an error listing them. */
static int only_output(const vene_causal *cm, int *var, vene_error *err) {
    int n = 0;
    char names[256] = "";
    for (int i = 0; i < cm->n; i++) {
        if (!cm->v[i].is_output) continue;
        if (n++ == 0) *var = i;
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", cm->v[i].name);
    }
    if (n == 1) return VENE_OK;
    return vene_errorf(err, VENE_ERR_ARG, "causal model: %d outputs (%s): name the variable to balance", n, names);
}

int vene_causal_sample_balanced(vene_causal *cm, int var, int value, uint64_t *rng, int *setting,
                                vene_error *err) {
    int rc = vene_causal_check(cm, err);
    if (rc) return rc;
    if (!rng || !setting) return vene_errorf(err, VENE_ERR_ARG, "causal model: sample: NULL rng or setting");
    if (var == -1 && (rc = only_output(cm, &var, err))) return rc;
    if (var < 0 || var >= cm->n)
        return vene_errorf(err, VENE_ERR_RANGE, "causal model: sample: variable index %d out of range (%d variables)",
                           var, cm->n);
    if (value < -1 || value >= cm->v[var].n_values)
        return vene_errorf(err, VENE_ERR_RANGE, "causal model: sample: %s: value index %d out of range (%d values)",
                           cm->v[var].name, value, cm->v[var].n_values);
    if (value == -1 && (rc = vene_causal_balanced_value(cm, var, rng, &value, err))) return rc;
    int *clamp = malloc((size_t)cm->n * sizeof *clamp);
    if (!clamp) return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    enum { TRIES = 1000 };
    int tries = 0;
    for (; tries < TRIES && !rc; tries++) {
        int conflict = 0;
        for (int i = 0; i < cm->n; i++) clamp[i] = -1;
        rc = descend(cm, var, value, rng, clamp, &conflict, err);
        if (rc || conflict) continue;
        for (int i = 0; i < cm->n; i++)
            if (cm->v[i].is_input && clamp[i] < 0) clamp[i] = (int)vene_causal_below(rng, (uint64_t)cm->v[i].n_values);
        rc = vene_causal_forward(cm, clamp, setting, err);
        if (!rc && setting[var] == value) break;
    }
    free(clamp);
    if (rc) return rc;
    if (tries == TRIES) {
        char buf[256];
        return vene_errorf(err, VENE_ERR_STATE,
                           "causal model: no input with %s in %d balanced draws (shared ancestors keep disagreeing)",
                           vene_causal_value_label(cm, var, value, buf, sizeof buf), TRIES);
    }
    return VENE_OK;
}
