/* pyvene's CausalModel (spec §15): variables with finite value lists, parents and
 * mechanisms; forward runs with interventions, interchange interventions, and the two
 * input samplers (uniform and tree-balanced through equivalence classes). */
#include "data/causal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

uint64_t vene_causal_below(uint64_t *rng, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
    do x = vene_splitmix64(rng);
    while (x >= limit);
    return x % n;
}

const char *vene_causal_value_label(const vene_causal *cm, int var, int value, char *buf, int n) {
    const vene_causal_var *v = &cm->v[var];
    if (value >= 0 && value < v->n_values)
        snprintf(buf, (size_t)n, "%s = %s (index %d)", v->name, v->value_names[value], value);
    else
        snprintf(buf, (size_t)n, "%s = index %d", v->name, value);
    return buf;
}

/* ---------------------------------------------------------------- building */

int vene_causal_new(vene_causal **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "causal model: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    return VENE_OK;
}

static void free_eq(vene_causal_var *v) {
    free(v->eq_start);
    free(v->eq_codes);
    v->eq_start = NULL;
    v->eq_codes = NULL;
}

static void free_strings(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

static void free_var(vene_causal_var *v) {
    free(v->name);
    free_strings(v->value_names, v->n_values);
    free_strings(v->parent_names, v->n_parents);
    free(v->parents);
    free(v->features);
    free(v->labels);
    free_eq(v);
}

void vene_causal_free(vene_causal *cm) {
    if (!cm) return;
    for (int i = 0; i < cm->n; i++) free_var(&cm->v[i]);
    free(cm->v);
    free(cm->order);
    free(cm);
}

int vene_causal_find(const vene_causal *cm, const char *name) {
    if (!cm || !name) return -1;
    for (int i = 0; i < cm->n; i++)
        if (!strcmp(cm->v[i].name, name)) return i;
    return -1;
}

static int fill_var(vene_causal_var *v, const char *name, int n_values, const char *const *value_names,
                    int n_parents, const char *const *parents) {
    if (!(v->name = strdup(name))) return 0;
    v->value_names = calloc((size_t)n_values, sizeof *v->value_names);
    v->parent_names = calloc((size_t)(n_parents ? n_parents : 1), sizeof *v->parent_names);
    v->parents = calloc((size_t)(n_parents ? n_parents : 1), sizeof *v->parents);
    if (!v->value_names || !v->parent_names || !v->parents) return 0;
    v->n_values = n_values;
    v->n_parents = n_parents;
    for (int i = 0; i < n_values; i++) {
        char num[24];
        snprintf(num, sizeof num, "%d", i);
        if (!(v->value_names[i] = strdup(value_names ? value_names[i] : num))) return 0;
    }
    for (int i = 0; i < n_parents; i++)
        if (!(v->parent_names[i] = strdup(parents[i]))) return 0;
    return 1;
}

int vene_causal_add(vene_causal *cm, const char *name, int n_values, const char *const *value_names,
                    int n_parents, const char *const *parents, vene_causal_fn fn, void *user, int *index,
                    vene_error *err) {
    if (!cm || !name || !name[0]) return vene_errorf(err, VENE_ERR_ARG, "causal model: variable name missing");
    if (vene_causal_find(cm, name) >= 0)
        return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s added twice", name);
    if (n_values < 1)
        return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s: needs at least one value (got %d)",
                           name, n_values);
    if (n_parents < 0 || (n_parents > 0 && !parents))
        return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s: bad parent list (%d parents)", name,
                           n_parents);
    for (int i = 0; i < n_values && value_names; i++)
        if (!value_names[i])
            return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s: value name %d is NULL", name, i);
    for (int i = 0; i < n_parents; i++) {
        if (!parents[i] || !parents[i][0])
            return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s: parent %d has no name", name, i);
        if (!strcmp(parents[i], name))
            return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s lists itself as a parent (a cycle)",
                               name);
    }
    if (n_parents == 0 && fn)
        return vene_errorf(err, VENE_ERR_ARG,
                           "causal model: variable %s has no parents (an input) and takes no mechanism", name);
    if (n_parents > 0 && !fn)
        return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s has %d parents but no mechanism", name,
                           n_parents);
    if (cm->n == cm->cap) {
        int cap = cm->cap ? 2 * cm->cap : 8;
        vene_causal_var *nv = realloc(cm->v, (size_t)cap * sizeof *nv);
        if (!nv) return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory adding %s", name);
        cm->v = nv;
        cm->cap = cap;
    }
    vene_causal_var *v = &cm->v[cm->n];
    memset(v, 0, sizeof *v);
    if (!fill_var(v, name, n_values, value_names, n_parents, parents)) {
        free_var(v);
        return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory adding %s", name);
    }
    v->fn = fn;
    v->user = user;
    if (index) *index = cm->n;
    cm->n++;
    cm->ready = 0;
    for (int i = 0; i < cm->n; i++) free_eq(&cm->v[i]); /* parents' value sets may have changed */
    return VENE_OK;
}

/* ---------------------------------------------------------------- checking */

/* A parent of var that Kahn's algorithm could not order (ordered variables hold -1 in indeg,
 * the rest > 0, so every unordered variable has one). */
static int unordered_parent(const vene_causal *cm, const int *indeg, int var) {
    const vene_causal_var *v = &cm->v[var];
    for (int p = 0; p < v->n_parents; p++)
        if (indeg[v->parents[p]] > 0) return v->parents[p];
    return -1;
}

/* Name a cycle among the unordered variables: walk up through unordered parents until a
 * variable repeats, then write the loop from it. */
static int report_cycle(const vene_causal *cm, const int *indeg, vene_error *err) {
    int cur = 0;
    while (indeg[cur] <= 0) cur++;
    char *seen = calloc((size_t)cm->n, 1);
    if (!seen) return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    for (; !seen[cur]; cur = unordered_parent(cm, indeg, cur)) seen[cur] = 1;
    free(seen);
    char path[512] = "";
    size_t len = 0;
    int first = cur;
    do { /* child <- parent <- ... */
        int w = snprintf(path + len, sizeof path - len, "%s <- ", cm->v[cur].name);
        if (w > 0 && (size_t)w < sizeof path - len) len += (size_t)w;
        cur = unordered_parent(cm, indeg, cur);
    } while (cur != first);
    snprintf(path + len, sizeof path - len, "%s", cm->v[first].name);
    return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s is its own ancestor (cycle %s)",
                       cm->v[first].name, path);
}

int vene_causal_check(vene_causal *cm, vene_error *err) {
    if (!cm) return vene_errorf(err, VENE_ERR_ARG, "causal model: NULL model");
    if (cm->ready) return VENE_OK;
    if (cm->n <= 0) return vene_errorf(err, VENE_ERR_STATE, "causal model: no variables");
    for (int i = 0; i < cm->n; i++) {
        vene_causal_var *v = &cm->v[i];
        v->is_input = v->n_parents == 0;
        v->is_output = 1;
        for (int p = 0; p < v->n_parents; p++) {
            int j = vene_causal_find(cm, v->parent_names[p]);
            if (j < 0)
                return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s: unknown parent %s", v->name,
                                   v->parent_names[p]);
            for (int q = 0; q < p; q++)
                if (v->parents[q] == j)
                    return vene_errorf(err, VENE_ERR_ARG, "causal model: variable %s: parent %s listed twice",
                                       v->name, v->parent_names[p]);
            v->parents[p] = j;
        }
    }
    for (int i = 0; i < cm->n; i++)
        for (int p = 0; p < cm->v[i].n_parents; p++) cm->v[cm->v[i].parents[p]].is_output = 0;
    /* Kahn's algorithm over parent counts; ties keep the order of addition. */
    int *indeg = calloc((size_t)cm->n, sizeof *indeg);
    int *order = malloc((size_t)cm->n * sizeof *order);
    if (!indeg || !order) {
        free(indeg);
        free(order);
        return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    }
    for (int i = 0; i < cm->n; i++) indeg[i] = cm->v[i].n_parents;
    int done = 0;
    for (int progress = 1; progress;) {
        progress = 0;
        for (int i = 0; i < cm->n; i++) {
            if (indeg[i] != 0) continue;
            order[done++] = i;
            indeg[i] = -1;
            progress = 1;
            for (int c = 0; c < cm->n; c++)
                for (int p = 0; p < cm->v[c].n_parents; p++)
                    if (cm->v[c].parents[p] == i) indeg[c]--;
        }
    }
    if (done < cm->n) {
        int rc = report_cycle(cm, indeg, err);
        free(indeg);
        free(order);
        return rc;
    }
    free(indeg);
    free(cm->order);
    cm->order = order;
    cm->ready = 1;
    return VENE_OK;
}

int vene_causal_count(const vene_causal *cm) { return cm ? cm->n : 0; }

const char *vene_causal_name(const vene_causal *cm, int var) {
    return cm && var >= 0 && var < cm->n ? cm->v[var].name : NULL;
}

int vene_causal_n_values(const vene_causal *cm, int var) {
    return cm && var >= 0 && var < cm->n ? cm->v[var].n_values : 0;
}

const char *vene_causal_value_name(const vene_causal *cm, int var, int value) {
    if (!cm || var < 0 || var >= cm->n || value < 0 || value >= cm->v[var].n_values) return NULL;
    return cm->v[var].value_names[value];
}

int vene_causal_is_input(const vene_causal *cm, int var) {
    return cm && cm->ready && var >= 0 && var < cm->n && cm->v[var].is_input;
}

int vene_causal_is_output(const vene_causal *cm, int var) {
    return cm && cm->ready && var >= 0 && var < cm->n && cm->v[var].is_output;
}

/* ---------------------------------------------------------------- running */

/* Call v's mechanism on parent values pv and range-check what it returns. */
static int mechanism(const vene_causal_var *v, const int *pv, int *value, vene_error *err) {
    *value = -1;
    int rc = v->fn(v->user, pv, value, err);
    if (rc) return vene_error_prefix(err, "causal model: mechanism of %s", v->name);
    if (*value < 0 || *value >= v->n_values)
        return vene_errorf(err, VENE_ERR_RANGE, "causal model: mechanism of %s returned value index %d (%d values)",
                           v->name, *value, v->n_values);
    return VENE_OK;
}

int vene_causal_forward(vene_causal *cm, const int *clamp, int *setting, vene_error *err) {
    int rc = vene_causal_check(cm, err);
    if (rc) return rc;
    if (!clamp || !setting) return vene_errorf(err, VENE_ERR_ARG, "causal model: forward: NULL clamp or setting");
    int pv_stack[16], *pv = pv_stack;
    int max_p = 0;
    for (int i = 0; i < cm->n; i++)
        if (cm->v[i].n_parents > max_p) max_p = cm->v[i].n_parents;
    if (max_p > 16 && !(pv = malloc((size_t)max_p * sizeof *pv)))
        return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    for (int k = 0; k < cm->n && !rc; k++) {
        int i = cm->order[k];
        const vene_causal_var *v = &cm->v[i];
        if (clamp[i] >= 0) {
            if (clamp[i] >= v->n_values)
                rc = vene_errorf(err, VENE_ERR_RANGE, "causal model: %s: value index %d out of range (%d values)",
                                 v->name, clamp[i], v->n_values);
            setting[i] = clamp[i];
        } else if (clamp[i] != -1) {
            rc = vene_errorf(err, VENE_ERR_RANGE, "causal model: %s: value index %d out of range (%d values)",
                             v->name, clamp[i], v->n_values);
        } else if (v->is_input) {
            rc = vene_errorf(err, VENE_ERR_ARG, "causal model: input variable %s has no value", v->name);
        } else {
            for (int p = 0; p < v->n_parents; p++) pv[p] = setting[v->parents[p]];
            rc = mechanism(v, pv, &setting[i], err);
        }
    }
    if (pv != pv_stack) free(pv);
    return rc;
}

/* clamp := the input entries of src, -1 elsewhere. */
static void inputs_of(const vene_causal *cm, const int *src, int *clamp) {
    for (int i = 0; i < cm->n; i++) clamp[i] = cm->v[i].is_input ? src[i] : -1;
}

int vene_causal_interchange(vene_causal *cm, const int *base, int n, const int *vars,
                            const int *const *sources, int *setting, vene_error *err) {
    int rc = vene_causal_check(cm, err);
    if (rc) return rc;
    if (!base || !setting || n < 0 || (n > 0 && (!vars || !sources)))
        return vene_errorf(err, VENE_ERR_ARG, "causal model: interchange: bad arguments");
    int *clamp = malloc((size_t)cm->n * sizeof *clamp), *tmp = malloc((size_t)cm->n * sizeof *tmp);
    int *src = malloc((size_t)cm->n * sizeof *src);
    if (!clamp || !tmp || !src) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
        goto out;
    }
    inputs_of(cm, base, clamp);
    for (int i = 0; i < n && !rc; i++) {
        if (vars[i] < 0 || vars[i] >= cm->n) {
            rc = vene_errorf(err, VENE_ERR_RANGE, "causal model: interchange: variable index %d out of range (%d "
                             "variables)", vars[i], cm->n);
            break;
        }
        if (!sources[i]) {
            rc = vene_errorf(err, VENE_ERR_ARG, "causal model: interchange: no source for %s", cm->v[vars[i]].name);
            break;
        }
        inputs_of(cm, sources[i], tmp);
        if ((rc = vene_causal_forward(cm, tmp, src, err)))
            vene_error_prefix(err, "interchange source %d (for %s)", i, cm->v[vars[i]].name);
        else
            clamp[vars[i]] = src[vars[i]];
    }
    if (!rc && (rc = vene_causal_forward(cm, clamp, setting, err))) vene_error_prefix(err, "interchange base");
out:
    free(clamp);
    free(tmp);
    free(src);
    return rc;
}

/* ---------------------------------------------------------------- sampling */

int vene_causal_sample_input(vene_causal *cm, uint64_t *rng, int *setting, vene_error *err) {
    int rc = vene_causal_check(cm, err);
    if (rc) return rc;
    if (!rng || !setting) return vene_errorf(err, VENE_ERR_ARG, "causal model: sample: NULL rng or setting");
    int *clamp = malloc((size_t)cm->n * sizeof *clamp);
    if (!clamp) return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    for (int i = 0; i < cm->n; i++)
        clamp[i] = cm->v[i].is_input ? (int)vene_causal_below(rng, (uint64_t)cm->v[i].n_values) : -1;
    rc = vene_causal_forward(cm, clamp, setting, err);
    free(clamp);
    return rc;
}
