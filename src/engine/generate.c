/* Greedy generation with interventions (spec §10), batch 1.
 *
 * There is no KV cache yet: every step recomputes the whole sequence. The gating is then
 * translated so results equal a KV-cached decode: with a cache, the token fed at decoding
 * step s sits at absolute position P - 1 + s, and its keys and values were computed with
 * that step's intervention. Recomputing causally and intervening at every such position
 * reproduces exactly those keys and values, so the logits of the newest position are the
 * same. The prompt pass maps to the prompt positions, and a None location (whole tensor)
 * stays the whole tensor on every pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"

static int argmax_last(const vene_tensor *logits) {
    int64_t S = logits->shape[1], V = logits->shape[2];
    const float *row = logits->data + (S - 1) * V;
    int best = 0;
    for (int64_t v = 1; v < V; v++)
        if (row[v] > row[best]) best = (int)v;
    return best;
}

/* The step input's positions (base side) and source positions from pyvene's shorthand. */
typedef struct gen_locs {
    int has_locs;       /* 0: unit_locations None -> whole tensor */
    int base_only;
    int n_base, n_src;
    int base[64], src[64];
} gen_locs;

static int read_positions(const cJSON *v, int *out, int *n, const char *what, vene_error *err) {
    *n = 0;
    if (cJSON_IsNumber(v)) {
        if (!(v->valuedouble >= 0 && v->valuedouble <= 1e6)) /* range first: (int) of a huge double is undefined */
            return vene_errorf(err, VENE_ERR_RANGE, "%s: position %g out of range", what, v->valuedouble);
        out[(*n)++] = (int)v->valuedouble;
        return VENE_OK;
    }
    if (!cJSON_IsArray(v)) return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: generation takes an int or a flat list", what);
    for (const cJSON *u = v->child; u; u = u->next) {
        if (!cJSON_IsNumber(u) || u->valuedouble < 0 || u->valuedouble > 1e6 || *n == 64)
            return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: generation takes up to 64 non-negative positions", what);
        out[(*n)++] = (int)u->valuedouble;
    }
    return VENE_OK;
}

static int parse_gen_locs(const cJSON *ul, int intervene_on_prompt, gen_locs *g, vene_error *err) {
    memset(g, 0, sizeof *g);
    if (!ul || cJSON_IsNull(ul)) {
        if (intervene_on_prompt) return VENE_OK; /* whole tensor on every pass */
        g->has_locs = g->base_only = 1;          /* pyvene's default {"base": 0}: the new token */
        g->n_base = 1;
        return VENE_OK;
    }
    const cJSON *k = ul->child;
    if (!cJSON_IsObject(ul) || !k || k->next)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "unit_locations: generation takes one key, \"base\" or \"sources->base\"");
    g->has_locs = 1;
    g->base_only = !strcmp(k->string, "base");
    if (!g->base_only && strcmp(k->string, "sources->base"))
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "unit_locations: key \"%s\" is not supported for generation", k->string);
    int rc = read_positions(k, g->base, &g->n_base, "unit_locations", err);
    if (rc) return rc;
    memcpy(g->src, g->base, sizeof g->src);
    g->n_src = g->n_base;
    if (cJSON_IsArray(k) && g->n_base == 2 && !g->base_only) { /* (source, base) pair */
        g->n_src = g->n_base = 1;
        g->src[0] = g->base[0];
        g->base[0] = g->base[1];
    }
    return VENE_OK;
}

/* unit_locations JSON for one recomputed pass, or NULL for none (whole tensors). */
static char *step_locations(const gen_locs *g, int n_iv, int P, int generated, int intervene_on_prompt, int *skip) {
    *skip = 0;
    if (!g->has_locs) return NULL;
    int pos[4096], n = 0;
    if (intervene_on_prompt) {
        for (int j = 0; j < g->n_base; j++) pos[n++] = g->base[j];
    } else {
        for (int s = 1; s <= generated && n + g->n_base <= 4096; s++)
            for (int j = 0; j < g->n_base; j++) pos[n++] = P - 1 + s + g->base[j];
    }
    if (n == 0) {
        *skip = 1; /* the prompt pass is not intervened */
        return NULL;
    }
    cJSON *root = cJSON_CreateObject(), *base = cJSON_CreateArray(), *src = g->base_only ? NULL : cJSON_CreateArray();
    for (int i = 0; i < n_iv; i++) {
        cJSON *rows = cJSON_CreateArray(), *row = cJSON_CreateIntArray(pos, n);
        cJSON_AddItemToArray(rows, row);
        cJSON_AddItemToArray(base, rows);
        if (src) {
            cJSON *srows = cJSON_CreateArray();
            cJSON_AddItemToArray(srows, cJSON_CreateIntArray(g->src, g->n_src));
            cJSON_AddItemToArray(src, srows);
        }
    }
    if (src) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, src);
        cJSON_AddItemToArray(pair, base);
        cJSON_AddItemToObject(root, "sources->base", pair);
    } else {
        cJSON_AddItemToObject(root, "base", base);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

int vene_generate_greedy(vene_intervenable *iv, const vene_call *tmpl, const cJSON *ul, int intervene_on_prompt, int plain,
                         int max_total, int eos, int64_t **out, int *n_out, vene_error *err) {
    const vene_batch *prompt = tmpl->base;
    if (prompt->batch != 1 || !prompt->ids)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "generate: base must be one sequence of input_ids");
    int P = prompt->seq;
    if (max_total > iv->m->n_ctx) max_total = iv->m->n_ctx;
    if (max_total < P) max_total = P;
    gen_locs g;
    int rc = parse_gen_locs(ul, intervene_on_prompt, &g, err);
    if (!rc) rc = vene_budget_check_length(iv, 1, max_total, err); /* the last, longest pass */
    if (rc) return rc;
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)max_total);
    int64_t *res = malloc(sizeof(int64_t) * (size_t)max_total);
    if (!seq || !res) {
        free(seq);
        free(res);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    memcpy(seq, prompt->ids, sizeof(int32_t) * (size_t)P);
    int L = P;
    while (L < max_total) {
        vene_batch b = *prompt;
        b.ids = seq;
        b.seq = L;
        vene_call c = *tmpl;
        c.base = &b;
        c.output_original = 0;
        int skip = 0;
        char *locs = plain ? NULL : step_locations(&g, iv->n, P, L - P, intervene_on_prompt, &skip);
        const vene_tensor *logits = NULL;
        if (plain || skip) {
            /* a plain pass: the intervenable's run state without hooks */
            vene_run *rs = iv->rs;
            vene_run_clear_hooks(rs);
            rc = vene_forward(rs, &b, err);
            logits = vene_run_logits(rs);
        } else {
            c.unit_locations = locs;
            rc = vene_intervenable_forward(iv, &c, err);
            logits = vene_intervenable_logits(iv, 1);
        }
        free(locs);
        if (rc) break;
        if (!logits) {
            rc = vene_errorf(err, VENE_ERR_ARG, "generate: %s has no LM head", iv->m->model_class);
            break;
        }
        int next = argmax_last(logits);
        seq[L++] = next;
        if (next == eos) break;
    }
    if (rc) {
        free(seq);
        free(res);
        return rc;
    }
    for (int i = 0; i < L; i++) res[i] = seq[i];
    free(seq);
    *out = res;
    *n_out = L;
    return VENE_OK;
}
