/* pyvene's IntervenableModel: construction, source passes, the intervened base pass
 * (spec §4, §9). Source passes stop as soon as the deepest site they feed has fired. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"
#include "io/json_keys.h"

/* ---------------------------------------------------------------- construction */

static void make_key(vene_slot *s, int dup) {
    char comp[200], unit[32];
    snprintf(comp, sizeof comp, "%s", s->r.component);
    snprintf(unit, sizeof unit, "%s", s->r.unit);
    for (char *p = unit; *p; p++)
        if (*p == '.') *p = '_';
    if (strchr(comp, '.')) {
        for (char *p = comp; *p; p++)
            if (*p == '.') *p = '_';
        snprintf(s->key, sizeof s->key, "comp_%s_unit_%s_nunit_%d#%d", comp, unit, s->r.max_units, dup);
    } else {
        snprintf(s->key, sizeof s->key, "layer_%d_comp_%s_unit_%s_nunit_%d#%d", s->r.layer, comp, unit, s->r.max_units, dup);
    }
}

static int set_partition(vene_iv *iv, const cJSON *p, int index, vene_error *err) {
    int n = cJSON_GetArraySize(p);
    if (n == 0) return vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].subspace_partition: empty", index);
    int *lens = calloc((size_t)n, sizeof(int)), *is_range = calloc((size_t)n, sizeof(int));
    int **vals = calloc((size_t)n, sizeof(int *));
    int rc = lens && is_range && vals ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    int j = 0;
    for (const cJSON *e = p->child; e && !rc; e = e->next, j++) {
        int m = cJSON_GetArraySize(e);
        if (!cJSON_IsArray(e) || m == 0) {
            rc = vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].subspace_partition[%d]: expected [begin, end] or a list of coordinates",
                             index, j);
            break;
        }
        vals[j] = calloc((size_t)m, sizeof(int));
        if (!vals[j]) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            break;
        }
        int k = 0;
        for (const cJSON *u = e->child; u; u = u->next, k++) {
            if (!cJSON_IsNumber(u) || u->valuedouble < 0 || u->valuedouble > 1e9) {
                rc = vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].subspace_partition[%d][%d]: expected a non-negative integer",
                                 index, j, k);
                break;
            }
            vals[j][k] = (int)u->valuedouble;
        }
        lens[j] = m;
        is_range[j] = m == 2; /* pyvene: a 2-element list starting with an int is range(a, b) */
    }
    if (!rc) {
        rc = vene_iv_set_partition(iv, n, lens, (const int *const *)vals, is_range, err);
        if (rc) vene_error_prefix(err, "config.representations[%d].subspace_partition", index);
    }
    for (int i = 0; vals && i < n; i++) free(vals[i]);
    free(vals);
    free(lens);
    free(is_range);
    return rc;
}

int vene_intervenable_from_json(const vene_model *m, const cJSON *cfg, vene_intervenable **out, vene_error *err) {
    *out = NULL;
    const cJSON *reprs = cfg, *mode = NULL;
    if (cJSON_IsObject(cfg) && cJSON_GetObjectItemCaseSensitive(cfg, "representations")) {
        reprs = cJSON_GetObjectItemCaseSensitive(cfg, "representations");
        mode = cJSON_GetObjectItemCaseSensitive(cfg, "mode");
        for (const cJSON *c = cfg->child; c; c = c->next)
            if (strcmp(c->string, "representations") && strcmp(c->string, "mode") && strcmp(c->string, "intervention_types") &&
                strcmp(c->string, "sorted_keys") && strcmp(c->string, "model_type") &&
                strcmp(c->string, "intervention_dimensions") && strcmp(c->string, "intervention_constant_sources") &&
                strcmp(c->string, "transformers_version"))
                return vene_errorf(err, VENE_ERR_ARG, "config: unknown key \"%s\"", c->string);
    }
    int single = cJSON_IsObject(reprs);
    if (!single && !cJSON_IsArray(reprs))
        return vene_errorf(err, VENE_ERR_ARG, "config.representations: expected a list of representations");
    int n = single ? 1 : cJSON_GetArraySize(reprs);
    if (n == 0) return vene_errorf(err, VENE_ERR_ARG, "config.representations: empty list");
    vene_intervenable *iv = calloc(1, sizeof *iv);
    if (!iv) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    iv->m = m;
    iv->n = n;
    iv->slots = calloc((size_t)n, sizeof *iv->slots);
    int rc = iv->slots ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (!rc && mode && !cJSON_IsNull(mode)) {
        if (cJSON_IsString(mode) && !strcmp(mode->valuestring, "serial")) iv->serial = 1;
        else if (!cJSON_IsString(mode) || strcmp(mode->valuestring, "parallel"))
            rc = vene_errorf(err, VENE_ERR_ARG, "config.mode: expected \"parallel\" or \"serial\"");
    }
    if (!rc) rc = vene_run_new(m, &iv->rs, err);
    int any_group = 0, all_group = 1, max_link = -1;
    for (int i = 0; i < n && !rc; i++) {
        vene_slot *s = &iv->slots[i];
        s->owner = iv;
        s->index = i;
        const cJSON *j = single ? reprs : cJSON_GetArrayItem(reprs, i);
        if ((rc = vene_repr_parse(j, i, &s->r, err))) break;
        s->r_parsed = 1;
        if ((rc = vene_resolve_where(m, &s->r, i, &s->where, err))) break;
        int dup = 0;
        make_key(s, 0);
        for (int k = 0; k < i; k++) {
            char a[320], b[320];
            snprintf(a, sizeof a, "%s", iv->slots[k].key);
            snprintf(b, sizeof b, "%s", s->key);
            *strrchr(a, '#') = 0;
            *strrchr(b, '#') = 0;
            if (!strcmp(a, b)) dup++;
        }
        make_key(s, dup);
        if (s->r.group_key >= 0) any_group = 1;
        else all_group = 0;
        if (s->r.link_key > max_link) max_link = s->r.link_key;
        /* linked slots share the first slot's intervention (spec §9.5) */
        for (int k = 0; k < i; k++)
            if (s->r.link_key >= 0 && iv->slots[k].r.link_key == s->r.link_key) {
                s->iv = iv->slots[k].iv;
                break;
            }
        if (s->iv) continue;
        s->iv = calloc(1, sizeof *s->iv);
        if (!s->iv) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            break;
        }
        s->iv_owner = 1;
        if (s->where.width > 0 && s->r.max_units > INT_MAX / s->where.width) {
            rc = vene_errorf(err, VENE_ERR_RANGE, "config.representations[%d].max_number_of_units: %d units of width %d is too large",
                             i, s->r.max_units, s->where.width);
            break;
        }
        int E = s->where.width > 0 ? s->where.width * s->r.max_units : -1;
        if ((rc = vene_iv_init(s->iv, (vene_iv_type)s->r.iv_type, E, s->r.low_rank, err))) {
            vene_error_prefix(err, "config.representations[%d]", i);
            break;
        }
        s->iv->keep_last_dim = s->r.keep_last_dim;
        s->iv->interchange_dim = s->r.instantiate ? -1 : E;
        if (s->r.partition && (rc = set_partition(s->iv, s->r.partition, i, err))) break;
    }
    if (!rc && any_group && !all_group)
        rc = vene_errorf(err, VENE_ERR_ARG, "config.representations: group_key must be set on every representation or none");
    if (!rc) {
        iv->G = n;
        if (any_group) {
            iv->G = 0;
            for (int i = 0; i < n; i++) {
                if (i && iv->slots[i].r.group_key < iv->slots[i - 1].r.group_key) {
                    rc = vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].group_key: group keys must be in ascending order", i);
                    break;
                }
                if (iv->slots[i].r.group_key + 1 > iv->G) iv->G = iv->slots[i].r.group_key + 1;
            }
        }
        for (int i = 0; i < n; i++) iv->slots[i].group = any_group ? iv->slots[i].r.group_key : i;
    }
    iv->n_links = max_link + 1;
    if (!rc && iv->n_links > 0) {
        iv->hot_t = calloc((size_t)iv->n_links, sizeof *iv->hot_t);
        if (!iv->hot_t) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    if (rc) {
        vene_intervenable_free(iv);
        return rc;
    }
    *out = iv;
    return VENE_OK;
}

int vene_intervenable_new(const vene_model *m, const char *config_json, vene_intervenable **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "vene_intervenable_new: out is NULL");
    *out = NULL;
    if (!config_json) return vene_errorf(err, VENE_ERR_ARG, "config: NULL");
    cJSON *j = cJSON_Parse(config_json);
    if (!j) return vene_errorf(err, VENE_ERR_ARG, "config: not valid JSON");
    int rc = vene_json_unique_keys(j, "config", err);
    if (!rc) rc = vene_intervenable_from_json(m, j, out, err);
    cJSON_Delete(j);
    return rc;
}

static void free_call_state(vene_intervenable *iv) {
    for (int i = 0; i < iv->n; i++) {
        vene_slot *s = &iv->slots[i];
        free(s->cache.data);
        memset(&s->cache, 0, sizeof s->cache);
        s->has_cache = s->getter_fired = s->setter_calls = 0;
        for (int k = 0; k < s->n_coll; k++) free(s->coll[k].data);
        s->n_coll = 0;
        vene_slot_free_backward(s);
    }
    for (int k = 0; iv->hot_t && k < iv->n_links; k++) {
        free(iv->hot_t[k].data);
        memset(&iv->hot_t[k], 0, sizeof iv->hot_t[k]);
    }
}

static void free_outputs(vene_intervenable *iv) {
    for (int w = 0; w < 2; w++) {
        free(iv->out_logits[w].data);
        free(iv->out_hidden[w].data);
        memset(&iv->out_logits[w], 0, sizeof iv->out_logits[w]);
        memset(&iv->out_hidden[w], 0, sizeof iv->out_hidden[w]);
    }
    for (int k = 0; k < iv->n_collected; k++) free(iv->collected[k].data);
    iv->n_collected = 0;
}

void vene_intervenable_free(vene_intervenable *iv) {
    if (!iv) return;
    if (iv->slots) {
        free_call_state(iv);
        for (int i = 0; i < iv->n; i++) {
            vene_slot *s = &iv->slots[i];
            if (s->iv_owner) {
                vene_iv_free(s->iv);
                free(s->iv);
            }
            vene_loc_free(&s->base_loc);
            vene_loc_free(&s->src_loc);
            free((void *)s->ss.row_offsets);
            free((void *)s->ss.ids);
            free(s->coll);
            vene_schedule_clear(&s->sched);
            if (s->r_parsed) vene_repr_free(&s->r);
        }
    }
    free_outputs(iv);
    free(iv->collected);
    free(iv->hot_t);
    free(iv->row_on);
    free(iv->slots);
    vene_intervenable_free_grad(iv);
    vene_run_free(iv->rs);
    free(iv);
}

int vene_intervenable_count(const vene_intervenable *iv) { return iv->n; }
const char *vene_intervenable_key(const vene_intervenable *iv, int i) {
    return i >= 0 && i < iv->n ? iv->slots[i].key : NULL;
}

void vene_intervenable_set_seed(vene_intervenable *iv, uint64_t seed) { iv->seed = seed; }

int vene_intervenable_set_param(vene_intervenable *iv, int i, const char *name, const vene_tensor *value,
                                vene_error *err) {
    if (i < 0 || i >= iv->n) return vene_errorf(err, VENE_ERR_RANGE, "intervention %d out of range (%d configured)", i, iv->n);
    if (!name || !value || (!value->data && vene_tensor_numel(value)))
        return vene_errorf(err, VENE_ERR_ARG, "intervention %d: parameter name or value is NULL", i);
    st_tensor t = {0};
    t.name = name;
    t.dtype = ST_F32;
    t.ndim = value->ndim;
    memcpy(t.shape, value->shape, sizeof t.shape);
    t.numel = vene_tensor_numel(value);
    t.data = value->data;
    t.nbytes = (size_t)t.numel * sizeof(float);
    int rc = vene_iv_set_param(iv->slots[i].iv, name, &t, err);
    if (rc) {
        vene_error_prefix(err, "intervention %d (%s)", i, iv->slots[i].key);
        return rc;
    }
    for (int k = 0; k < iv->n; k++)
        if (iv->slots[k].iv == iv->slots[i].iv) iv->slots[k].finalized = 0;
    return VENE_OK;
}

int vene_intervenable_set_callback(vene_intervenable *iv, int i, vene_iv_callback fn, void *user, vene_error *err) {
    if (i < 0 || i >= iv->n) return vene_errorf(err, VENE_ERR_RANGE, "intervention %d out of range (%d configured)", i, iv->n);
    iv->slots[i].cb = fn;
    iv->slots[i].cb_user = user;
    return VENE_OK;
}

/* ---------------------------------------------------------------- hooks */

static int slot_is_constant(const vene_slot *s) {
    return !vene_iv_needs_source(s->iv->type) || s->iv->source_repr || s->const_src;
}

static int push_collected(vene_slot *s, vene_tensor *c, vene_error *err) {
    if (s->n_coll == s->cap_coll) {
        int cap = s->cap_coll ? 2 * s->cap_coll : 4;
        vene_tensor *p = realloc(s->coll, sizeof *p * (size_t)cap);
        if (!p) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        s->coll = p;
        s->cap_coll = cap;
    }
    s->coll[s->n_coll++] = *c;
    return VENE_OK;
}

/* Unit "t" (recurrent models, spec §11, intended semantics): a cell's site fires once per
 * time step; where->call is the step. The source's state at example b's j-th listed step
 * replaces the base's state at b's j-th listed base step; nothing else is touched. */
static int step_index(const vene_loc *l, int b, int step) {
    for (int j = 0; j < l->k1; j++)
        if (l->idx1[b * l->k1 + j] == step) return j;
    return -1;
}

static int t_getter(vene_slot *s, int step, vene_tensor *t, vene_error *err) {
    const vene_loc *l = &s->src_loc;
    if (!l->present || t->ndim != 2)
        return vene_errorf(err, VENE_ERR_ARG, "unit_locations, source side of representations[%d]: unit \"t\" needs time steps", s->index);
    int B = (int)t->shape[0], Dt = (int)t->shape[1];
    int D = s->where.split ? Dt / 3 : Dt, start = s->where.split ? (s->where.split - VENE_SPLIT_THIRD0) * D : 0;
    if (!s->cache.data) {
        s->cache.data = calloc((size_t)B * (size_t)l->k1 * (size_t)D, sizeof(float));
        if (!s->cache.data) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        s->cache = vene_tensor_3d(s->cache.data, B, l->k1, D);
        s->has_cache = 1;
    }
    int done = 1;
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < l->k1; j++)
            if (l->idx1[b * l->k1 + j] == step)
                memcpy(s->cache.data + ((size_t)b * l->k1 + j) * D, t->data + (size_t)b * Dt + start, sizeof(float) * (size_t)D);
            else if (l->idx1[b * l->k1 + j] > step) done = 0;
    }
    if (done && !s->getter_fired) {
        s->getter_fired = 1;
        return --s->owner->getters_pending == 0 ? VENE_STOP : VENE_OK;
    }
    return VENE_OK;
}

static int t_setter(vene_slot *s, int step, vene_tensor *t, vene_error *err) {
    const vene_loc *l = &s->base_loc;
    if (!l->present || t->ndim != 2)
        return vene_errorf(err, VENE_ERR_ARG, "unit_locations, base side of representations[%d]: unit \"t\" needs time steps", s->index);
    int B = (int)t->shape[0], Dt = (int)t->shape[1];
    /* a third-split component (e.g. new_h2h_output) is a window of the row */
    int D = s->where.split ? Dt / 3 : Dt, start = s->where.split ? (s->where.split - VENE_SPLIT_THIRD0) * D : 0;
    for (int b = 0; b < B; b++) {
        int j = step_index(l, b, step);
        if (j < 0) continue;
        vene_tensor x = vene_tensor_3d(t->data + (size_t)b * Dt + start, 1, 1, D), src, *sp = NULL, col = {0};
        if (s->has_cache) {
            if (j >= s->cache.shape[1])
                return vene_errorf(err, VENE_ERR_ARG, "unit_locations of representations[%d]: example %d lists more base than source steps",
                                   s->index, b);
            src = vene_tensor_3d(s->cache.data + ((size_t)b * s->cache.shape[1] + j) * D, 1, 1, D);
            sp = &src;
        } else if (s->const_src) {
            int64_t n = s->const_src_numel;
            src = vene_tensor_view((float *)s->const_src, 1, &n);
            sp = &src;
        }
        int collect = s->iv->type == VENE_IV_COLLECT;
        int rc = vene_iv_apply(s->iv, &x, sp, s->ss_present ? &s->ss : NULL, collect ? &col : NULL, err);
        if (rc) {
            vene_error_prefix(err, "representations[%d] (%s) at step %d", s->index, s->key, step);
            return rc;
        }
        if (collect && (rc = push_collected(s, &col, err))) return rc;
    }
    s->setter_calls++;
    return VENE_OK;
}

static int getter_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    vene_slot *s = user;
    if (s->where.unit == VENE_UNIT_T) return t_getter(s, where->call, t, err);
    if (s->getter_fired) return VENE_OK;
    char who[400];
    snprintf(who, sizeof who, "unit_locations, source side of representations[%d] (%s)", s->index, s->key);
    int rc = vene_gather(&s->where, &s->src_loc, t, &s->cache, who, err);
    if (rc) return rc;
    s->has_cache = s->getter_fired = 1;
    /* a source pass that will be back-propagated (IIT) must keep all of its layers */
    return --s->owner->getters_pending == 0 && s->owner->grad_mode != VENE_GRAD_MODEL ? VENE_STOP : VENE_OK;
}


static char *subspaces_json(const vene_slot *s) {
    if (!s->ss_present) return strdup("null");
    cJSON *a = cJSON_CreateArray();
    for (int r = 0; r < s->ss.n_rows; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int k = s->ss.row_offsets[r]; k < s->ss.row_offsets[r + 1]; k++) cJSON_AddItemToArray(row, cJSON_CreateNumber(s->ss.ids[k]));
        cJSON_AddItemToArray(a, row);
    }
    char *out = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return out;
}

static int setter_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    vene_slot *s = user;
    if (s->where.unit == VENE_UNIT_T) return t_setter(s, where->call, t, err);
    vene_intervenable *iv = s->owner;
    const int B = (int)t->shape[0];
    const int n_on = vene_slot_rows(s, B, iv->row_on); /* generation gating and schedule */
    if (n_on == 0) return VENE_OK;
    char who[400];
    snprintf(who, sizeof who, "unit_locations, base side of representations[%d] (%s)", s->index, s->key);
    vene_tensor x = {0}, col = {0};
    int rc = vene_gather(&s->where, &s->base_loc, t, &x, who, err);
    if (rc) return rc;
    const vene_tensor gathered = x; /* a callback may not change the block's shape */
    float *kept = NULL; /* rows the schedule leaves alone are put back after the intervention */
    const size_t row_n = (size_t)(vene_tensor_numel(&x) / B);
    if (n_on < B) {
        kept = malloc(sizeof(float) * row_n * (size_t)B);
        if (!kept) {
            free(x.data);
            return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        }
        memcpy(kept, x.data, sizeof(float) * row_n * (size_t)B);
    }
    int link = s->r.link_key;
    if (link >= 0 && iv->hot_t[link].data) {
        /* a linked site reads the link's hot activation instead of its own (spec §9.5) */
        if (vene_tensor_numel(&iv->hot_t[link]) != vene_tensor_numel(&x)) {
            free(x.data);
            return vene_errorf(err, VENE_ERR_ARG, "%s: linked sites have different block sizes", who);
        }
        memcpy(x.data, iv->hot_t[link].data, sizeof(float) * (size_t)vene_tensor_numel(&x));
    }
    const vene_tensor *src = s->has_cache ? &s->cache : NULL;
    vene_tensor cs;
    if (!src && s->const_src) {
        int64_t n = s->const_src_numel;
        cs = vene_tensor_view((float *)s->const_src, 1, &n);
        src = &cs;
    }
    if (iv->grad_mode && (rc = vene_slot_save_for_backward(s, &x, src, err))) {
        free(x.data);
        return rc;
    }
    if (s->cb) {
        char *ssj = subspaces_json(s);
        rc = s->cb(s->cb_user, &x, src, ssj ? ssj : "null", err);
        free(ssj);
    } else {
        rc = vene_iv_apply(s->iv, &x, src, s->ss_present ? &s->ss : NULL,
                           s->iv->type == VENE_IV_COLLECT ? &col : NULL, err);
    }
    if (kept && !rc && x.data == gathered.data) {
        for (int b = 0; b < B; b++)
            if (!iv->row_on[b]) memcpy(x.data + (size_t)b * row_n, kept + (size_t)b * row_n, sizeof(float) * row_n);
    }
    free(kept);
    if (rc) {
        free(x.data);
        vene_error_prefix(err, "representations[%d] (%s)%s", s->index, s->key, s->ss_present ? " with its subspaces" : "");
        return rc;
    }
    if (s->iv->type == VENE_IV_COLLECT && !s->cb) {
        free(x.data);
        return push_collected(s, &col, err);
    }
    if (link >= 0) {
        size_t n = (size_t)vene_tensor_numel(&x);
        float *h = realloc(iv->hot_t[link].data, n * sizeof(float));
        if (!h) {
            free(x.data);
            return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        }
        memcpy(h, x.data, n * sizeof(float));
        iv->hot_t[link] = x;
        iv->hot_t[link].data = h;
    }
    if (!vene_tensor_same_shape(&gathered, &x) || x.data != gathered.data) {
        char a[64], b[64];
        vene_shape_str(&gathered, a, sizeof a);
        vene_shape_str(&x, b, sizeof b);
        free(gathered.data);
        return vene_errorf(err, VENE_ERR_ARG, "%s: intervention result has shape %s, the site expects %s", who, b, a);
    }
    rc = vene_scatter(&s->where, &s->base_loc, t, &x, who, err);
    free(x.data);
    s->setter_calls++;
    return rc;
}

/* ---------------------------------------------------------------- the call */

static int copy_tensor(vene_tensor *dst, const vene_tensor *src, vene_error *err) {
    free(dst->data);
    memset(dst, 0, sizeof *dst);
    if (!src) return VENE_OK;
    size_t n = (size_t)vene_tensor_numel(src);
    float *d = malloc(n * sizeof(float));
    if (!d) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    memcpy(d, src->data, n * sizeof(float));
    *dst = *src;
    dst->data = d;
    return VENE_OK;
}

static int keep_outputs(vene_intervenable *iv, int which, vene_error *err) {
    int rc = copy_tensor(&iv->out_logits[which], vene_run_logits(iv->rs), err);
    if (!rc) rc = copy_tensor(&iv->out_hidden[which], vene_run_last_hidden(iv->rs), err);
    return rc;
}

static int add_setter(vene_intervenable *iv, vene_slot *s, vene_error *err) {
    if (!s->has_cache && !s->cb && !slot_is_constant(s)) return VENE_OK; /* skipped: no source (spec §9.4) */
    return vene_run_add_hook(iv->rs, s->where.site, s->where.layer, setter_hook, s, err);
}

static int add_getter(vene_intervenable *iv, vene_run *rs, vene_slot *s, vene_error *err) {
    if (slot_is_constant(s) && !s->cb) return VENE_OK;
    int site = s->iv->type == VENE_IV_SKIP ? s->where.input_site : s->where.site;
    if (site < 0) return vene_errorf(err, VENE_ERR_ARG, "intervention %s: this site has no module input to skip from", s->key);
    iv->getters_pending++;
    return vene_run_add_hook(rs, site, s->where.layer, getter_hook, s, err);
}

static int run_source(vene_intervenable *iv, vene_run *rs, const vene_batch *src, vene_error *err) {
    if (iv->getters_pending == 0) return VENE_OK; /* nothing to read: the pass would be wasted */
    int rc = vene_forward(rs, src, err);
    if (rc == VENE_STOP) rc = VENE_OK;
    if (!rc && iv->getters_pending)
        rc = vene_errorf(err, VENE_ERR_STATE, "a source pass ended before all of its sites fired");
    return rc;
}

/* The rows group g's getters read at their deepest layer: per example, the lowest source
 * position any getter there reads; *layer is that layer. NULL when a getter there reads
 * whole sequences (a unit without positions) or sits on a site outside the layers.
 * Caller frees. */
static int *tail_rows(const vene_intervenable *iv, int g, const vene_batch *src, int *layer) {
    const int B = src->batch, S = src->seq;
    int L = -1;
    for (int i = 0; i < iv->n; i++) {
        const vene_slot *s = &iv->slots[i];
        if (s->group != g || (slot_is_constant(s) && !s->cb)) continue;
        if (s->where.layer < 0) return NULL;
        if (s->where.layer > L) L = s->where.layer;
    }
    int *first = L >= 0 ? malloc(sizeof(int) * (size_t)B) : NULL;
    if (!first) return NULL;
    for (int b = 0; b < B; b++) first[b] = S - 1;
    for (int i = 0; i < iv->n; i++) {
        const vene_slot *s = &iv->slots[i];
        if (s->group != g || (slot_is_constant(s) && !s->cb) || s->where.layer != L) continue;
        if (!vene_loc_lowest_positions(&s->where, &s->src_loc, B, first)) {
            free(first);
            return NULL;
        }
    }
    *layer = L;
    return first;
}

/* A source pass whose activations nothing will differentiate (gradients into the
 * interventions only: the source is a constant of the step) keeps none, and runs its
 * deepest layer only on the rows read there (models/model.h, vene_run_set_tail). */
static int run_source_pass(vene_intervenable *iv, vene_run *rs, int g, const vene_batch *src, vene_error *err) {
    if (iv->grad_mode == VENE_GRAD_MODEL) return run_source(iv, rs, src, err);
    const int mode = rs->grad_mode;
    int layer = -1, *first = tail_rows(iv, g, src, &layer);
    rs->grad_mode = VENE_GRAD_NONE;
    vene_run_set_tail(rs, layer, first);
    int rc = run_source(iv, rs, src, err);
    vene_run_set_tail(rs, -1, NULL);
    rs->grad_mode = mode;
    free(first);
    return rc;
}

int vene_iv_prepare(vene_intervenable *iv, const vene_call *call, int run_original, vene_error *err) {
    if (!iv) return vene_errorf(err, VENE_ERR_ARG, "vene_intervenable_forward: intervenable is NULL");
    free_call_state(iv);
    free_outputs(iv);
    if (!call || !call->base) return vene_errorf(err, VENE_ERR_ARG, "no base input");
    const vene_batch *base = call->base;
    int B = base->batch, rc;
    const vene_batch **src = calloc((size_t)iv->G, sizeof *src);
    if (!src) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (call->n_sources == 1) {
        for (int g = 0; g < iv->G; g++) src[g] = call->sources[0];
    } else if (call->n_sources > 1) {
        if (call->n_sources != iv->G) {
            free(src);
            return vene_errorf(err, VENE_ERR_ARG, "sources: %d given for %d intervention groups", call->n_sources, iv->G);
        }
        for (int g = 0; g < iv->G; g++) src[g] = call->sources[g];
    }
    for (int g = 0; g < iv->G; g++)
        if (src[g] && src[g]->batch != B) {
            int sb = src[g]->batch;
            free(src);
            return vene_errorf(err, VENE_ERR_ARG, "sources[%d]: batch of %d examples, but the base has %d", g, sb, B);
        }
    cJSON *ul = call->unit_locations ? cJSON_Parse(call->unit_locations) : NULL;
    cJSON *ssj = call->subspaces ? cJSON_Parse(call->subspaces) : NULL;
    if ((call->unit_locations && !ul) || (call->subspaces && !ssj)) {
        rc = vene_errorf(err, VENE_ERR_ARG, "%s: not valid JSON", call->unit_locations && !ul ? "unit_locations" : "subspaces");
        goto done;
    }
    if ((rc = vene_json_unique_keys(ul, "unit_locations", err))) goto done;
    if ((rc = vene_locs_parse(iv, ul, B, err)) || (rc = vene_subspaces_parse(iv, ssj, B, err)) ||
        (rc = vene_budget_check(iv, call, src, err)))
        goto done;
    uint8_t *on = realloc(iv->row_on, (size_t)B);
    if (!on) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        goto done;
    }
    iv->row_on = on;
    for (int i = 0; i < iv->n; i++) {
        const vene_tensor *c = call->source_reps ? call->source_reps[i] : NULL;
        iv->slots[i].const_src = c ? c->data : NULL;
        iv->slots[i].const_src_numel = c ? vene_tensor_numel(c) : 0;
    }
    /* parameters not given explicitly get the seeded initialisation (seed + index) */
    for (int i = 0; i < iv->n; i++) {
        vene_slot *s = &iv->slots[i];
        if (!s->iv_owner || s->finalized) continue;
        if ((rc = vene_iv_finalize(s->iv, iv->seed + (uint64_t)i, err))) {
            vene_error_prefix(err, "intervention %d (%s)", i, s->key);
            goto done;
        }
        s->finalized = 1;
    }
    vene_run_clear_hooks(iv->rs);
    vene_run_set_logit_positions(iv->rs, call->logit_positions);
    if (run_original) {
        if ((rc = vene_forward(iv->rs, base, err)) || (rc = keep_outputs(iv, 0, err))) goto done;
    }
    if (!iv->serial) {
        for (int g = 0; g < iv->G && !rc; g++) {
            if (!src[g]) continue;
            vene_run *rs = NULL;
            if ((rc = vene_intervenable_source_rs(iv, g, &rs, err))) break;
            vene_run_clear_hooks(rs);
            iv->getters_pending = 0;
            for (int i = 0; i < iv->n && !rc; i++)
                if (iv->slots[i].group == g) rc = add_getter(iv, rs, &iv->slots[i], err);
            vene_run_set_logit_positions(rs, NULL);
            if (!rc) rc = run_source_pass(iv, rs, g, src[g], err);
            vene_run_clear_hooks(rs);
            if (rc) vene_error_prefix(err, "sources[%d]", g);
        }
        vene_run_clear_hooks(iv->rs);
        for (int g = 0; g < iv->G && !rc; g++)
            for (int i = 0; i < iv->n && !rc; i++)
                if (iv->slots[i].group == g) rc = add_setter(iv, &iv->slots[i], err);
    } else {
        int prev = -1; /* group whose setters act on the next pass */
        for (int g = 0; g < iv->G && !rc; g++) {
            vene_run_clear_hooks(iv->rs);
            if (!src[g]) {
                prev = -1; /* intended: a skipped group drops the chain (spec §16 #6) */
                continue;
            }
            iv->getters_pending = 0;
            for (int i = 0; i < iv->n && !rc; i++)
                if (prev >= 0 && iv->slots[i].group == prev) rc = add_setter(iv, &iv->slots[i], err);
            for (int i = 0; i < iv->n && !rc; i++)
                if (iv->slots[i].group == g && iv->slots[i].src_loc.present) rc = add_getter(iv, iv->rs, &iv->slots[i], err);
            vene_run_set_logit_positions(iv->rs, NULL);
            if (!rc) rc = run_source(iv, iv->rs, src[g], err);
            if (rc) vene_error_prefix(err, "sources[%d]", g);
            prev = g;
        }
        vene_run_clear_hooks(iv->rs);
        for (int i = 0; i < iv->n && !rc; i++)
            if (iv->slots[i].group == prev || (prev < 0 && slot_is_constant(&iv->slots[i]))) rc = add_setter(iv, &iv->slots[i], err);
    }
done:
    if (rc) vene_run_clear_hooks(iv->rs);
    cJSON_Delete(ul);
    cJSON_Delete(ssj);
    free(src);
    return rc;
}

/* collected tensors in representation order, one per hook call (spec §9.7) */
int vene_iv_take_collected(vene_intervenable *iv, vene_error *err) {
    for (int i = 0; i < iv->n; i++) {
        vene_slot *s = &iv->slots[i];
        for (int k = 0; k < s->n_coll; k++) {
            if (iv->n_collected == iv->cap_collected) {
                int cap = iv->cap_collected ? 2 * iv->cap_collected : 4;
                vene_tensor *p = realloc(iv->collected, sizeof *p * (size_t)cap);
                if (!p) {
                    /* what was not moved stays with the slot and is freed with it */
                    memmove(s->coll, s->coll + k, sizeof *s->coll * (size_t)(s->n_coll - k));
                    s->n_coll -= k;
                    return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
                }
                iv->collected = p;
                iv->cap_collected = cap;
            }
            iv->collected[iv->n_collected++] = s->coll[k];
        }
        s->n_coll = 0; /* ownership moved */
    }
    return VENE_OK;
}

int vene_intervenable_forward(vene_intervenable *iv, const vene_call *call, vene_error *err) {
    int rc = vene_iv_prepare(iv, call, call && call->output_original, err);
    if (rc) return rc;
    vene_run_set_logit_positions(iv->rs, call->logit_positions);
    /* gradients into the interventions only: the backward stops at the lowest setter's
     * layer, so the layers below need keep nothing */
    if (iv->grad_mode == VENE_GRAD_ACTIVATIONS) vene_run_set_grad_keep_from(iv->rs, vene_run_lowest_hooked_layer(iv->rs));
    rc = vene_forward(iv->rs, call->base, err); /* logit positions stay set: a backward reads them */
    vene_run_set_grad_keep_from(iv->rs, 0);
    vene_run_clear_hooks(iv->rs);
    if (!rc) rc = keep_outputs(iv, 1, err);
    if (!rc) rc = vene_iv_take_collected(iv, err);
    return rc;
}

const vene_tensor *vene_intervenable_logits(const vene_intervenable *iv, int which) {
    return which >= 0 && which < 2 && iv->out_logits[which].data ? &iv->out_logits[which] : NULL;
}
const vene_tensor *vene_intervenable_last_hidden(const vene_intervenable *iv, int which) {
    return which >= 0 && which < 2 && iv->out_hidden[which].data ? &iv->out_hidden[which] : NULL;
}
int vene_intervenable_collected_count(const vene_intervenable *iv) { return iv->n_collected; }
const vene_tensor *vene_intervenable_collected(const vene_intervenable *iv, int n) {
    return n >= 0 && n < iv->n_collected ? &iv->collected[n] : NULL;
}
