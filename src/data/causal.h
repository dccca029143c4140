/* Internal structures of the causal-model data generator (pyvene's CausalModel, spec §15).
 *
 * A model is a list of variables in the order they were added. Parents are kept by name
 * until vene_causal_check resolves them, so variables may be added in any order; the check
 * also computes a topological order (rejecting cycles), marks inputs (no parents) and
 * outputs (nobody's parent), and is redone lazily after every change. */
#ifndef VENE_DATA_CAUSAL_H
#define VENE_DATA_CAUSAL_H

#include <stdint.h>

#include "vene.h"

/* Cap on the parent assignments enumerated for one variable's equivalence classes
 * (pyvene's generate_equiv_classes walks the full product of the parents' value sets). */
#define VENE_CAUSAL_MAX_COMBOS (1LL << 22)
/* Most intervened variables in one counterfactual dataset (subsets are bit masks). */
#define VENE_CAUSAL_MAX_IV 16

typedef struct vene_causal_var {
    char *name;
    int n_values;
    char **value_names;      /* n_values strings, owned */
    int n_parents;
    char **parent_names;     /* owned */
    int *parents;            /* resolved indices (valid once the model is checked) */
    vene_causal_fn fn;       /* NULL for inputs */
    void *user;
    int is_input, is_output;
    float *features;         /* n_values x feat_dim, owned, or NULL (default encoder) */
    int feat_dim;
    int *labels;             /* n_values label ids, owned, or NULL (= the value index) */
    /* Equivalence classes: the parent assignments (mixed-radix codes, first parent most
     * significant) giving each value, grouped by value: codes eq_start[v]..eq_start[v+1]. */
    int64_t *eq_start;       /* n_values + 1 */
    int64_t *eq_codes;
} vene_causal_var;

struct vene_causal {
    int n, cap;
    vene_causal_var *v;
    int *order;              /* topological order (parents first), valid when ready */
    int ready;               /* checked since the last change */
    vene_causal_encoder enc;
    void *enc_user;
};

/* Uniform integer in [0, n) from a splitmix64 state (rejection, no modulo bias). */
uint64_t vene_causal_below(uint64_t *rng, uint64_t n);
/* A uniform value among those var can take (all of an input's values). */
int vene_causal_balanced_value(vene_causal *cm, int var, uint64_t *rng, int *value, vene_error *err);
/* Error prefix naming a value: "WX = true (index 1)". */
const char *vene_causal_value_label(const vene_causal *cm, int var, int value, char *buf, int n);

#endif
