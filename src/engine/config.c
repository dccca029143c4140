/* RepresentationConfig parsing and component resolution (spec §3.1, §5.2–§5.4). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"

/* Positional order of pyvene's RepresentationConfig namedtuple (saved configs). */
static const char *const repr_fields[] = {
    "layer", "component", "unit", "max_number_of_units", "low_rank_dimension", "intervention_type",
    "intervention", "subspace_partition", "group_key", "intervention_link_key", "moe_key",
    "source_representation", "hidden_source_representation", "latent_dim"};
#define N_REPR_FIELDS (int)(sizeof repr_fields / sizeof repr_fields[0])

static const char *const extra_fields[] = {"intervention_kwargs", "instantiate"};

static int known_field(const char *k) {
    for (int i = 0; i < N_REPR_FIELDS; i++)
        if (!strcmp(k, repr_fields[i])) return 1;
    for (size_t i = 0; i < sizeof extra_fields / sizeof extra_fields[0]; i++)
        if (!strcmp(k, extra_fields[i])) return 1;
    return 0;
}

static int get_int_or_null(const cJSON *v, int dflt, int *out, const char *name, int index, vene_error *err) {
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return VENE_OK;
    }
    /* range first: converting an out-of-range double to int is undefined */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= -1e9 && v->valuedouble <= 1e9) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].%s: expected an integer (|n| <= 1e9) or null",
                           index, name);
    *out = (int)v->valuedouble;
    return VENE_OK;
}

static int get_str(const cJSON *v, const char *dflt, char **out, const char *name, int index, vene_error *err) {
    if (!v || cJSON_IsNull(v)) {
        *out = dflt ? strdup(dflt) : NULL;
        return VENE_OK;
    }
    if (!cJSON_IsString(v))
        return vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].%s: expected a string", index, name);
    *out = strdup(v->valuestring);
    return *out ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
}

int vene_repr_parse(const cJSON *j, int index, vene_repr *r, vene_error *err) {
    memset(r, 0, sizeof *r);
    r->group_key = r->link_key = r->low_rank = -1;
    r->iv_type = VENE_IV_VANILLA;
    const cJSON *f[N_REPR_FIELDS] = {0};
    const cJSON *kwargs = NULL, *inst = NULL;
    if (cJSON_IsArray(j)) {
        int n = cJSON_GetArraySize(j);
        if (n > N_REPR_FIELDS)
            return vene_errorf(err, VENE_ERR_ARG, "config.representations[%d]: list form has %d fields, at most %d",
                               index, n, N_REPR_FIELDS);
        for (int i = 0; i < n; i++) f[i] = cJSON_GetArrayItem(j, i);
    } else if (cJSON_IsObject(j)) {
        for (const cJSON *c = j->child; c; c = c->next)
            if (!known_field(c->string))
                return vene_errorf(err, VENE_ERR_ARG, "config.representations[%d]: unknown field \"%s\"", index, c->string);
        for (int i = 0; i < N_REPR_FIELDS; i++) f[i] = cJSON_GetObjectItemCaseSensitive(j, repr_fields[i]);
        kwargs = cJSON_GetObjectItemCaseSensitive(j, "intervention_kwargs");
        inst = cJSON_GetObjectItemCaseSensitive(j, "instantiate");
    } else {
        return vene_errorf(err, VENE_ERR_ARG, "config.representations[%d]: expected an object or a list", index);
    }
    int rc;
    if ((rc = get_int_or_null(f[0], 0, &r->layer, "layer", index, err)) ||
        (rc = get_str(f[1], "block_output", &r->component, "component", index, err)) ||
        (rc = get_str(f[2], "pos", &r->unit, "unit", index, err)) ||
        (rc = get_int_or_null(f[3], 1, &r->max_units, "max_number_of_units", index, err)) ||
        (rc = get_int_or_null(f[4], -1, &r->low_rank, "low_rank_dimension", index, err)) ||
        (rc = get_int_or_null(f[8], -1, &r->group_key, "group_key", index, err)) ||
        (rc = get_int_or_null(f[9], -1, &r->link_key, "intervention_link_key", index, err)) ||
        (rc = get_str(f[11], NULL, &r->source_repr, "source_representation", index, err)))
        goto fail;
    if (f[4] && !cJSON_IsNull(f[4]) && r->low_rank < 1) {
        rc = vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].low_rank_dimension: must be positive or null, got %d",
                         index, r->low_rank);
        goto fail;
    }
    if (r->max_units < 1 || r->max_units > 65536) {
        rc = vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].max_number_of_units: must be in 1..65536, got %d",
                         index, r->max_units);
        goto fail;
    }
    if (f[5] && !cJSON_IsNull(f[5])) {
        if (!cJSON_IsString(f[5])) {
            rc = vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].intervention_type: expected a string", index);
            goto fail;
        }
        r->iv_type = vene_iv_type_from_name(f[5]->valuestring);
        if (r->iv_type < 0) {
            rc = vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].intervention_type: unknown intervention type \"%s\"",
                             index, f[5]->valuestring);
            goto fail;
        }
    }
    if (f[7] && !cJSON_IsNull(f[7])) {
        if (!cJSON_IsArray(f[7])) {
            rc = vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].subspace_partition: expected a list of lists", index);
            goto fail;
        }
        r->partition = cJSON_Duplicate(f[7], 1);
    }
    if (kwargs && !cJSON_IsNull(kwargs)) {
        if (!cJSON_IsObject(kwargs)) {
            rc = vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].intervention_kwargs: expected an object", index);
            goto fail;
        }
        for (const cJSON *c = kwargs->child; c; c = c->next) {
            if (!strcmp(c->string, "keep_last_dim") && cJSON_IsBool(c)) r->keep_last_dim = cJSON_IsTrue(c);
            /* AutoencoderIntervention's latent width travels as low_rank_dimension */
            else if (!strcmp(c->string, "latent_dim") && cJSON_IsNumber(c) && c->valuedouble >= 1 && c->valuedouble <= 1 << 20)
                r->low_rank = (int)c->valuedouble;
            else if (!strcmp(c->string, "embed_dim") && cJSON_IsNumber(c)) continue; /* the component's width */
            else {
                rc = vene_errorf(err, VENE_ERR_UNSUPPORTED,
                                 "config.representations[%d].intervention_kwargs: unsupported argument \"%s\"", index, c->string);
                goto fail;
            }
        }
    }
    if (inst && cJSON_IsBool(inst)) r->instantiate = cJSON_IsTrue(inst);
    return VENE_OK;
fail:
    vene_repr_free(r);
    return rc;
}

void vene_repr_free(vene_repr *r) {
    free(r->component);
    free(r->unit);
    free(r->source_repr);
    cJSON_Delete(r->partition);
    memset(r, 0, sizeof *r);
}

static int find_site_tmpl(const vene_model *m, const char *tmpl, int is_input) {
    for (int i = 0; i < m->arch->n_sites; i++)
        if (m->arch->sites[i].is_input == is_input && !strcmp(m->arch->sites[i].path, tmpl)) return i;
    return -1;
}

int vene_resolve_where(const vene_model *m, const vene_repr *r, int index, vene_where *w, vene_error *err) {
    memset(w, 0, sizeof *w);
    w->input_site = -1;
    w->width = -1;
    if (!strcmp(r->unit, "pos")) w->unit = VENE_UNIT_POS;
    else if (!strcmp(r->unit, "h")) w->unit = VENE_UNIT_H;
    else if (!strcmp(r->unit, "h.pos")) w->unit = VENE_UNIT_HPOS;
    else if (!strcmp(r->unit, "t")) w->unit = VENE_UNIT_T;
    else
        return vene_errorf(err, VENE_ERR_ARG, "config.representations[%d].unit: unknown unit \"%s\" (pos, h, h.pos, t)",
                           index, r->unit);
    const vene_component_def *c = NULL;
    for (int i = 0; i < m->arch->n_components; i++)
        if (!strcmp(m->arch->components[i].name, r->component)) c = &m->arch->components[i];
    if (c) {
        if (r->layer < 0 || r->layer >= m->n_layer)
            return vene_errorf(err, VENE_ERR_RANGE, "config.representations[%d].layer: %d out of range (%s has %d layers)",
                               index, r->layer, m->model_class, m->n_layer);
        w->site = find_site_tmpl(m, c->path, c->is_input);
        w->layer = r->layer;
        w->split = c->split;
        w->n_heads = c->head_split == 2 ? m->n_kv_head : c->head_split == 1 ? m->n_head : 0;
        w->width = m->arch->component_width(m, c);
        w->input_site = find_site_tmpl(m, c->path, 1);
        if (w->site < 0) return vene_errorf(err, VENE_ERR_STATE, "component table of %s is inconsistent", m->model_class);
        return VENE_OK;
    }
    const char *dot = strrchr(r->component, '.');
    if (!dot || (strcmp(dot, ".input") && strcmp(dot, ".output")))
        return vene_errorf(err, VENE_ERR_ARG,
                           "config.representations[%d].component: unknown component \"%s\" for %s (an abstract name "
                           "such as block_output, or a module path ending in .input/.output)",
                           index, r->component, m->arch->model_type);
    vene_error sub = {0};
    if (vene_model_find_site(m, r->component, &w->site, &w->layer, &sub))
        return vene_errorf(err, sub.code, "config.representations[%d].component: %s", index, sub.msg);
    char path[512];
    snprintf(path, sizeof path, "%s", m->arch->sites[w->site].path);
    w->input_site = find_site_tmpl(m, path, 1);
    return VENE_OK;
}
