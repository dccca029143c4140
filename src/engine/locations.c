/* unit_locations and subspaces: pyvene's shorthand broadcasting (spec §6.2, §6.3, §7.1)
 * turned into canonical per-intervention, per-example index lists. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"

void vene_loc_free(vene_loc *l) {
    free(l->idx1);
    free(l->idx2);
    memset(l, 0, sizeof *l);
}

/* range first: converting an out-of-range double to int is undefined */
static int is_int(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble >= -1e9 && v->valuedouble <= 1e9 && v->valuedouble == (double)(int)v->valuedouble;
}

/* pyvene's get_list_depth: follows first elements. */
static int list_depth(const cJSON *v) {
    int d = 0;
    while (cJSON_IsArray(v)) {
        d++;
        v = v->child;
    }
    return d;
}

/* [rows][k] rectangular int lists into a malloc'd array. */
static int parse_rows(const cJSON *v, int B, int *rows, int *k, int **out, const char *what, vene_error *err) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return vene_errorf(err, VENE_ERR_ARG, "%s: expected a non-empty list with one list of units per example", what);
    int R = cJSON_GetArraySize(v), K = -1;
    for (const cJSON *r = v->child; r; r = r->next) {
        if (!cJSON_IsArray(r)) return vene_errorf(err, VENE_ERR_ARG, "%s: expected a list of units per example", what);
        int n = cJSON_GetArraySize(r);
        if (K >= 0 && n != K)
            return vene_errorf(err, VENE_ERR_ARG, "%s: examples list different numbers of units (%d and %d)", what, K, n);
        K = n;
    }
    if (K == 0) return vene_errorf(err, VENE_ERR_ARG, "%s: empty unit list", what);
    if (R != B && R != 1)
        return vene_errorf(err, VENE_ERR_ARG, "%s: %d location rows for a batch of %d", what, R, B);
    int *a = malloc(sizeof(int) * (size_t)B * (size_t)K);
    if (!a) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    int i = 0;
    for (const cJSON *r = v->child; r; r = r->next, i++) {
        int j = 0;
        for (const cJSON *u = r->child; u; u = u->next, j++) {
            if (!is_int(u) || u->valuedouble < 0) {
                free(a);
                return vene_errorf(err, VENE_ERR_ARG, "%s[%d][%d]: expected a non-negative integer", what, i, j);
            }
            a[(size_t)i * K + j] = (int)u->valuedouble;
        }
    }
    for (int b = R; b < B; b++) memcpy(a + (size_t)b * K, a, sizeof(int) * (size_t)K);
    *rows = B;
    *k = K;
    *out = a;
    return VENE_OK;
}

int vene_loc_from_json(const cJSON *v, int two_level, int B, vene_loc *out, const char *what, vene_error *err) {
    memset(out, 0, sizeof *out);
    if (!v || cJSON_IsNull(v)) return VENE_OK;
    out->present = 1;
    if (!two_level) return parse_rows(v, B, &out->rows, &out->k1, &out->idx1, what, err);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
        return vene_errorf(err, VENE_ERR_ARG, "%s: a two-level unit needs [heads per example, positions per example]", what);
    char w1[300], w2[300];
    snprintf(w1, sizeof w1, "%s[0]", what);
    snprintf(w2, sizeof w2, "%s[1]", what);
    int r2, rc = parse_rows(cJSON_GetArrayItem(v, 0), B, &out->rows, &out->k1, &out->idx1, w1, err);
    if (!rc) rc = parse_rows(cJSON_GetArrayItem(v, 1), B, &r2, &out->k2, &out->idx2, w2, err);
    if (rc) vene_loc_free(out);
    return rc;
}

static int single_pos(int p, int B, vene_loc *l) {
    l->present = 1;
    l->rows = B;
    l->k1 = 1;
    l->idx1 = malloc(sizeof(int) * (size_t)B);
    if (!l->idx1) return VENE_ERR_MEMORY;
    for (int b = 0; b < B; b++) l->idx1[b] = p;
    return VENE_OK;
}

static int flat_pos(const cJSON *v, int B, vene_loc *l) {
    int k = cJSON_GetArraySize(v);
    l->present = 1;
    l->rows = B;
    l->k1 = k;
    l->idx1 = malloc(sizeof(int) * (size_t)B * (size_t)k);
    if (!l->idx1) return VENE_ERR_MEMORY;
    for (int b = 0; b < B; b++) {
        int j = 0;
        for (const cJSON *u = v->child; u; u = u->next) l->idx1[(size_t)b * k + j++] = (int)u->valuedouble;
    }
    return VENE_OK;
}

static int all_ints(const cJSON *v) {
    for (const cJSON *u = v->child; u; u = u->next)
        if (!is_int(u) || u->valuedouble < 0) return 0;
    return 1;
}

/* One key of unit_locations into src[N] and base[N] (spec §6.3's table). */
static int broadcast_key(vene_intervenable *iv, const cJSON *v, int base_only, int B, vene_loc *src, vene_loc *base,
                         const char *key, vene_error *err) {
    int N = iv->n, rc = VENE_OK;
    char what[300];
    if (is_int(v) && v->valuedouble >= 0) {
        for (int i = 0; i < N && !rc; i++) {
            rc = single_pos((int)v->valuedouble, B, &base[i]);
            if (!rc && !base_only) rc = single_pos((int)v->valuedouble, B, &src[i]);
        }
        return rc ? vene_errorf(err, rc, "out of memory") : VENE_OK;
    }
    if (!cJSON_IsArray(v))
        return vene_errorf(err, VENE_ERR_ARG, "unit_locations[\"%s\"]: expected a non-negative int or a list", key);
    int n = cJSON_GetArraySize(v);
    const cJSON *a = cJSON_GetArrayItem(v, 0), *b = cJSON_GetArrayItem(v, 1);
    if (n == 2 && (is_int(a) || cJSON_IsNull(a)) && (is_int(b) || cJSON_IsNull(b)) && !(cJSON_IsNull(a) && cJSON_IsNull(b))) {
        /* (source position, base position), even under "base" (spec §6.3, §16 #7) */
        for (int i = 0; i < N && !rc; i++) {
            if (is_int(a)) rc = single_pos((int)a->valuedouble, B, &src[i]);
            if (!rc && is_int(b)) rc = single_pos((int)b->valuedouble, B, &base[i]);
        }
        return rc ? vene_errorf(err, rc, "out of memory") : VENE_OK;
    }
    if (list_depth(v) == 1 && n > 0 && all_ints(v)) {
        for (int i = 0; i < N && !rc; i++) {
            rc = flat_pos(v, B, &base[i]);
            if (!rc && !base_only) rc = flat_pos(v, B, &src[i]);
        }
        return rc ? vene_errorf(err, rc, "out of memory") : VENE_OK;
    }
    const cJSON *S = NULL, *Bs = v;
    if (!base_only) {
        if (n != 2)
            return vene_errorf(err, VENE_ERR_ARG,
                               "unit_locations[\"%s\"]: expected [source locations, base locations] with one entry per "
                               "intervention",
                               key);
        S = a;
        Bs = b;
    }
    const cJSON *sides[2] = {S, Bs};
    vene_loc *outs[2] = {src, base};
    for (int side = 0; side < 2; side++) {
        const cJSON *L = sides[side];
        if (!L || cJSON_IsNull(L)) continue;
        if (!cJSON_IsArray(L) || cJSON_GetArraySize(L) != N)
            return vene_errorf(err, VENE_ERR_ARG, "unit_locations[\"%s\"][%d]: expected a list with one entry per intervention (%d)",
                               key, side, N);
        int i = 0;
        for (const cJSON *e = L->child; e; e = e->next, i++) {
            snprintf(what, sizeof what, "unit_locations[\"%s\"]%s[%d] (intervention %d)", key, base_only ? "" : side ? "[1]" : "[0]",
                     i, i);
            if ((rc = vene_loc_from_json(e, iv->slots[i].where.unit == VENE_UNIT_HPOS, B, &outs[side][i], what, err)))
                return rc;
        }
    }
    return VENE_OK;
}

static void clear_locs(vene_intervenable *iv) {
    for (int i = 0; i < iv->n; i++) {
        vene_loc_free(&iv->slots[i].base_loc);
        vene_loc_free(&iv->slots[i].src_loc);
    }
}

int vene_locs_parse(vene_intervenable *iv, const cJSON *ul, int B, vene_error *err) {
    clear_locs(iv);
    if (!ul || cJSON_IsNull(ul)) return VENE_OK;
    if (!cJSON_IsObject(ul)) return vene_errorf(err, VENE_ERR_ARG, "unit_locations: expected an object or null");
    int N = iv->n, rc = VENE_OK;
    vene_loc *src = calloc((size_t)N, sizeof *src), *base = calloc((size_t)N, sizeof *base);
    if (!src || !base) {
        free(src);
        free(base);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    if (!iv->serial) {
        int seen = 0;
        for (const cJSON *k = ul->child; k && !rc; k = k->next) {
            int base_only = !strcmp(k->string, "base");
            if (!base_only && strcmp(k->string, "sources->base")) {
                rc = vene_errorf(err, VENE_ERR_ARG, "unit_locations: unknown key \"%s\" in parallel mode (\"sources->base\" or \"base\")",
                                 k->string);
                break;
            }
            if (seen++) {
                rc = vene_errorf(err, VENE_ERR_ARG, "unit_locations: give either \"sources->base\" or \"base\", not both");
                break;
            }
            rc = broadcast_key(iv, k, base_only, B, src, base, k->string, err);
        }
        for (int i = 0; i < N; i++) {
            iv->slots[i].src_loc = src[i];
            iv->slots[i].base_loc = base[i];
        }
    } else {
        for (const cJSON *k = ul->child; k && !rc; k = k->next) {
            int g = -1, h = -1, consumed = 0;
            char tail[8] = "";
            if (sscanf(k->string, "source_%d->source_%d%n", &g, &h, &consumed) == 2 && !k->string[consumed]) {
                if (g < 0 || g >= iv->G || h != g + 1)
                    rc = vene_errorf(err, VENE_ERR_ARG, "unit_locations: key \"%s\" names a missing source (serial chain of %d groups)",
                                     k->string, iv->G);
            } else if (sscanf(k->string, "source_%d->bas%1s%n", &g, tail, &consumed) == 2 && !strcmp(tail, "e") &&
                       !k->string[consumed]) {
                if (g != iv->G - 1)
                    rc = vene_errorf(err, VENE_ERR_ARG, "unit_locations: key \"%s\" names a missing source (the last of %d groups is source_%d)",
                                     k->string, iv->G, iv->G - 1);
            } else {
                rc = vene_errorf(err, VENE_ERR_ARG, "unit_locations: unknown key \"%s\" in serial mode (\"source_i->source_j\" or \"source_i->base\")",
                                 k->string);
            }
            if (rc) break;
            rc = broadcast_key(iv, k, 0, B, src, base, k->string, err);
            /* slot j of group g takes entry j (its position within the group, spec §9.3) */
            int j = 0;
            for (int i = 0; i < N; i++) {
                if (iv->slots[i].group != g) continue;
                vene_loc_free(&iv->slots[i].src_loc);
                vene_loc_free(&iv->slots[i].base_loc);
                iv->slots[i].src_loc = src[j];
                iv->slots[i].base_loc = base[j];
                memset(&src[j], 0, sizeof src[j]);
                memset(&base[j], 0, sizeof base[j]);
                j++;
            }
            for (int i = 0; i < N; i++) {
                vene_loc_free(&src[i]);
                vene_loc_free(&base[i]);
            }
        }
    }
    free(src);
    free(base);
    if (rc) clear_locs(iv);
    return rc;
}

/* ---------------------------------------------------------------- subspaces */

static void clear_ss(vene_intervenable *iv) {
    for (int i = 0; i < iv->n; i++) {
        free((void *)iv->slots[i].ss.row_offsets);
        free((void *)iv->slots[i].ss.ids);
        memset(&iv->slots[i].ss, 0, sizeof iv->slots[i].ss);
        iv->slots[i].ss_present = 0;
    }
}

/* rows: a list of lists of ints (or a flat list = one row). */
static int ss_from_rows(const cJSON *rows, vene_subspaces *ss, const char *what, vene_error *err) {
    int flat = list_depth(rows) == 1;
    int R = flat ? 1 : cJSON_GetArraySize(rows), total = 0;
    if (!flat)
        for (const cJSON *r = rows->child; r; r = r->next) {
            if (!cJSON_IsArray(r) || !all_ints(r))
                return vene_errorf(err, VENE_ERR_ARG, "%s: expected lists of non-negative subspace ids", what);
            total += cJSON_GetArraySize(r);
        }
    else {
        if (!all_ints(rows)) return vene_errorf(err, VENE_ERR_ARG, "%s: expected non-negative subspace ids", what);
        total = cJSON_GetArraySize(rows);
    }
    int *off = malloc(sizeof(int) * (size_t)(R + 1)), *ids = malloc(sizeof(int) * (size_t)(total + 1));
    if (!off || !ids) {
        free(off);
        free(ids);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    int o = 0, r = 0;
    off[0] = 0;
    if (flat) {
        for (const cJSON *u = rows->child; u; u = u->next) ids[o++] = (int)u->valuedouble;
        off[1] = o;
    } else {
        for (const cJSON *row = rows->child; row; row = row->next) {
            for (const cJSON *u = row->child; u; u = u->next) ids[o++] = (int)u->valuedouble;
            off[++r] = o;
        }
    }
    ss->n_rows = R;
    ss->row_offsets = off;
    ss->ids = ids;
    return VENE_OK;
}

int vene_subspaces_parse(vene_intervenable *iv, const cJSON *ssj, int B, vene_error *err) {
    clear_ss(iv);
    if (!ssj || cJSON_IsNull(ssj)) return VENE_OK;
    int rc = VENE_OK;
    char what[128];
    if (is_int(ssj) || (cJSON_IsArray(ssj) && list_depth(ssj) == 1 && all_ints(ssj))) {
        cJSON *tmp = NULL;
        const cJSON *row = ssj;
        if (is_int(ssj)) {
            tmp = cJSON_CreateArray();
            cJSON_AddItemToArray(tmp, cJSON_CreateNumber(ssj->valuedouble));
            row = tmp;
        }
        for (int i = 0; i < iv->n && !rc; i++) {
            snprintf(what, sizeof what, "subspaces (intervention %d)", i);
            rc = ss_from_rows(row, &iv->slots[i].ss, what, err);
            iv->slots[i].ss_present = !rc;
        }
        cJSON_Delete(tmp);
    } else if (cJSON_IsArray(ssj)) {
        if (cJSON_GetArraySize(ssj) != iv->n) {
            rc = vene_errorf(err, VENE_ERR_ARG, "subspaces: expected one entry per intervention (%d), got %d", iv->n,
                             cJSON_GetArraySize(ssj));
        } else {
            int i = 0;
            for (const cJSON *e = ssj->child; e && !rc; e = e->next, i++) {
                if (cJSON_IsNull(e)) continue;
                snprintf(what, sizeof what, "subspaces[%d]", i);
                if (!cJSON_IsArray(e)) {
                    rc = vene_errorf(err, VENE_ERR_ARG, "%s: expected a list of subspace ids per example or null", what);
                    break;
                }
                rc = ss_from_rows(e, &iv->slots[i].ss, what, err);
                if (!rc && iv->slots[i].ss.n_rows != 1 && iv->slots[i].ss.n_rows != B)
                    rc = vene_errorf(err, VENE_ERR_ARG, "%s: %d rows for a batch of %d (give 1 row or one per example)", what,
                                     iv->slots[i].ss.n_rows, B);
                iv->slots[i].ss_present = !rc;
            }
        }
    } else {
        rc = vene_errorf(err, VENE_ERR_ARG, "subspaces: expected an int, a list or null");
    }
    if (rc) clear_ss(iv);
    return rc;
}

int vene_loc_lowest_positions(const vene_where *w, const vene_loc *l, int B, int *first) {
    const int level = !w->n_heads && w->unit == VENE_UNIT_POS ? 1 : w->n_heads && w->unit == VENE_UNIT_HPOS ? 2 : 0;
    if (!level || !l->present || l->rows != B) return 0;
    const int k = level == 1 ? l->k1 : l->k2;
    const int *idx = level == 1 ? l->idx1 : l->idx2;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < k; j++) {
            const int p = idx[b * k + j];
            if (p >= 0 && p < first[b]) first[b] = p;
        }
    return 1;
}
