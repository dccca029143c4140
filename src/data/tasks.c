/* Built-in causal models: pyvene's hierarchical-equality task (DAS_Main_Introduction) and
 * its control, pyvene's "pattern" model, over one pool of random object vectors. */
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/causal.h"

/* Both intermediates and the output are "are my two parents the same value?": objects for
 * WX, YZ, WY, XZ; truth values for O. */
static int same(void *user, const int *pv, int *value, vene_error *err) {
    (void)user;
    (void)err;
    *value = pv[0] == pv[1];
    return VENE_OK;
}

/* n distinct vectors of dim entries k/100, k uniform in [-100, 100] (pyvene's randvec:
 * round(uniform(-1, 1), 2)), drawn from seed. Distinct, so equal vectors mean one object. */
static int make_pool(int dim, int n, uint64_t seed, float *pool, vene_error *err) {
    double room = 1;
    for (int c = 0; c < dim && room < 1e9; c++) room *= 201;
    if ((double)n > room)
        return vene_errorf(err, VENE_ERR_ARG, "hierarchical equality: %d distinct objects do not fit in %d dimensions",
                           n, dim);
    uint64_t rng = seed;
    for (int i = 0; i < n; i++) {
        float *v = pool + (size_t)i * (size_t)dim;
        for (int again = 1; again;) {
            for (int c = 0; c < dim; c++) v[c] = (float)((int)vene_causal_below(&rng, 201) - 100) / 100.0f;
            again = 0;
            for (int j = 0; j < i && !again; j++) {
                const float *u = pool + (size_t)j * (size_t)dim;
                int c = 0;
                while (c < dim && u[c] == v[c]) c++;
                again = c == dim;
            }
        }
    }
    return VENE_OK;
}

int vene_causal_hierarchical_equality(int dim, int n_objects, uint64_t pool_seed, int pattern,
                                      vene_causal **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "hierarchical equality: out is NULL");
    *out = NULL;
    if (dim < 1 || dim > 4096)
        return vene_errorf(err, VENE_ERR_RANGE, "hierarchical equality: object dimension %d (expected 1..4096)", dim);
    if (n_objects < 2 || n_objects > 2048)
        return vene_errorf(err, VENE_ERR_RANGE, "hierarchical equality: %d objects (expected 2..2048)", n_objects);
    static const char *const truth[] = {"false", "true"};
    static const char *const inputs[] = {"W", "X", "Y", "Z"};
    /* Each intermediate compares two inputs: (W, X) and (Y, Z), or for the control (W, Y)
     * and (X, Z). */
    const char *const mids[2] = {pattern ? "WY" : "WX", pattern ? "XZ" : "YZ"};
    const char *const args[2][2] = {{"W", pattern ? "Y" : "X"}, {pattern ? "X" : "Y", "Z"}};
    float *pool = malloc((size_t)n_objects * (size_t)dim * sizeof *pool);
    char **names = calloc((size_t)n_objects, sizeof *names);
    vene_causal *cm = NULL;
    int rc = pool && names ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "hierarchical equality: out of memory");
    for (int i = 0; i < n_objects && !rc; i++) {
        char buf[24];
        snprintf(buf, sizeof buf, "obj%d", i);
        if (!(names[i] = malloc(sizeof buf)))
            rc = vene_errorf(err, VENE_ERR_MEMORY, "hierarchical equality: out of memory");
        else
            snprintf(names[i], sizeof buf, "%s", buf);
    }
    if (!rc) rc = make_pool(dim, n_objects, pool_seed, pool, err);
    if (!rc) rc = vene_causal_new(&cm, err);
    for (int i = 0; i < 4 && !rc; i++) {
        int var;
        rc = vene_causal_add(cm, inputs[i], n_objects, (const char *const *)names, 0, NULL, NULL, NULL, &var, err);
        if (!rc) rc = vene_causal_set_features(cm, var, dim, pool, err);
    }
    for (int i = 0; i < 2 && !rc; i++) rc = vene_causal_add(cm, mids[i], 2, truth, 2, args[i], same, NULL, NULL, err);
    if (!rc) rc = vene_causal_add(cm, "O", 2, truth, 2, mids, same, NULL, NULL, err);
    if (!rc) rc = vene_causal_check(cm, err);
    if (names)
        for (int i = 0; i < n_objects; i++) free(names[i]);
    free(names);
    free(pool);
    if (rc) {
        vene_causal_free(cm);
        return rc;
    }
    *out = cm;
    return VENE_OK;
}
