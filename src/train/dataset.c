#include "train/dataset.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static int read_input(const cJSON *j, const vene_tokenizer *tok, ds_input *in, const char *where, vene_error *err) {
    memset(in, 0, sizeof *in);
    if (!j || cJSON_IsNull(j)) return VENE_OK;
    if (!cJSON_IsObject(j)) return vene_errorf(err, VENE_ERR_FORMAT, "%s: expected {\"text\"}, {\"ids\"} or {\"embeds\"}", where);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text"), *ids = cJSON_GetObjectItemCaseSensitive(j, "ids");
    const cJSON *em = cJSON_GetObjectItemCaseSensitive(j, "embeds");
    if (!!t + !!ids + !!em != 1)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: give exactly one of \"text\", \"ids\" or \"embeds\"", where);
    if (t) {
        if (!cJSON_IsString(t)) return vene_errorf(err, VENE_ERR_FORMAT, "%s.text: expected a string", where);
        if (!tok) return vene_errorf(err, VENE_ERR_ARG, "%s.text: the model folder has no tokenizer (give \"ids\")", where);
        size_t n = 0;
        int32_t *p = NULL;
        int rc = vene_tokenize(tok, t->valuestring, strlen(t->valuestring), &p, &n, err);
        if (rc) return vene_error_prefix(err, "%s.text", where);
        if (n == 0 || n > 1000000) {
            vene_free(p);
            return vene_errorf(err, VENE_ERR_FORMAT, "%s.text: tokenizes to %zu tokens", where, n);
        }
        if (!(in->ids = malloc(n * sizeof(int32_t)))) {
            vene_free(p);
            return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        }
        memcpy(in->ids, p, n * sizeof(int32_t));
        vene_free(p);
        in->len = (int)n;
        return VENE_OK;
    }
    if (ids) {
        int n = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : 0;
        if (n <= 0) return vene_errorf(err, VENE_ERR_FORMAT, "%s.ids: expected a non-empty list of token ids", where);
        if (!(in->ids = malloc((size_t)n * sizeof(int32_t)))) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ids) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT32_MAX || e->valuedouble != (int32_t)e->valuedouble)
                return vene_errorf(err, VENE_ERR_FORMAT, "%s.ids[%d]: expected a non-negative integer", where, i);
            in->ids[i++] = (int32_t)e->valuedouble;
        }
        in->len = n;
        return VENE_OK;
    }
    int S = cJSON_IsArray(em) ? cJSON_GetArraySize(em) : 0;
    int D = S ? cJSON_GetArraySize(cJSON_GetArrayItem(em, 0)) : 0;
    if (S <= 0 || D <= 0)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s.embeds: expected a non-empty list of equal-length rows of numbers", where);
    if (!(in->embeds = malloc((size_t)S * D * sizeof(float)))) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    int s = 0;
    const cJSON *row, *e;
    cJSON_ArrayForEach(row, em) {
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != D)
            return vene_errorf(err, VENE_ERR_FORMAT, "%s.embeds[%d]: expected %d numbers like row 0", where, s, D);
        int d = 0;
        cJSON_ArrayForEach(e, row) {
            if (!cJSON_IsNumber(e)) return vene_errorf(err, VENE_ERR_FORMAT, "%s.embeds[%d][%d]: expected a number", where, s, d);
            in->embeds[(size_t)s * D + d++] = (float)e->valuedouble;
        }
        s++;
    }
    in->len = S;
    in->dim = D;
    return VENE_OK;
}

static void free_input(ds_input *in) {
    free(in->ids);
    free(in->embeds);
}

static void free_example(ds_example *e) {
    free_input(&e->base);
    for (int i = 0; i < e->n_src; i++) free_input(&e->src[i]);
    free(e->src);
    free(e->ul);
    free(e->ss);
    free(e->sig);
    free(e->target_ids);
    free(e->target_p);
}

void ds_free(ds_set *s) {
    for (int i = 0; i < s->n; i++) free_example(&s->ex[i]);
    free(s->ex);
    memset(s, 0, sizeof *s);
}

static char *json_text(const cJSON *j) { return j && !cJSON_IsNull(j) ? cJSON_PrintUnformatted(j) : NULL; }

static int parse_line(const char *line, const vene_tokenizer *tok, ds_example *e, const char *where, vene_error *err) {
    memset(e, 0, sizeof *e);
    cJSON *j = cJSON_Parse(line);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: not a JSON object", where);
    }
    static const char *const keys[] = {"base", "sources", "label", "unit_locations", "subspaces", "position", "base_label",
                                       "intervention_id", "target"};
    int rc = VENE_OK;
    for (const cJSON *c = j->child; c && !rc; c = c->next) {
        int ok = 0;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) ok |= !strcmp(c->string, keys[k]);
        if (!ok) rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: unknown key \"%s\"", where, c->string);
    }
    char w[400];
    snprintf(w, sizeof w, "%s: base", where);
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(j, "base"), *srcs = cJSON_GetObjectItemCaseSensitive(j, "sources");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(j, "label"), *pos = cJSON_GetObjectItemCaseSensitive(j, "position");
    if (!rc && !base) rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: missing \"base\"", where);
    if (!rc) rc = read_input(base, tok, &e->base, w, err);
    const cJSON *tgt = cJSON_GetObjectItemCaseSensitive(j, "target");
    e->label = -1; /* none: language-model objective, or a soft target below */
    if (!rc && !label && tgt && cJSON_IsObject(tgt) && tgt->child) {
        e->label = (int32_t)strtol(tgt->child->string, NULL, 10);
    } else if (!rc && label && (!cJSON_IsNumber(label) || label->valuedouble < 0 || label->valuedouble > INT32_MAX ||
                label->valuedouble != (int32_t)label->valuedouble))
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: \"label\" must be a non-negative integer (a token or class id)", where);
    else if (!rc && label) e->label = (int32_t)label->valuedouble;
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(j, "target");
    if (!rc && tg && !cJSON_IsNull(tg)) {
        int n = cJSON_IsObject(tg) ? cJSON_GetArraySize(tg) : 0;
        e->target_ids = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        e->target_p = malloc(sizeof(float) * (size_t)(n ? n : 1));
        if (n <= 0) rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: \"target\" must be an object {\"token id\": probability}", where);
        else if (!e->target_ids || !e->target_p) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        const cJSON *c;
        double sum = 0;
        cJSON_ArrayForEach(c, tg) {
            if (rc) break;
            char *end;
            long id = strtol(c->string, &end, 10);
            if (*end || id < 0 || id > INT32_MAX || !cJSON_IsNumber(c) || c->valuedouble < 0)
                rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: target \"%s\": expected a token id and a probability >= 0", where,
                                 c->string);
            else {
                e->target_ids[e->n_target] = (int32_t)id;
                e->target_p[e->n_target++] = (float)c->valuedouble;
                sum += c->valuedouble;
            }
        }
        if (!rc && (sum < 0.999 || sum > 1.001))
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: target probabilities sum to %g, not 1", where, sum);
        int best = 0; /* no label: IIA scores the most likely target */
        for (int k = 1; k < e->n_target; k++)
            if (e->target_p[k] > e->target_p[best]) best = k;
        if (!rc && !label) e->label = e->target_ids[best];
    }
    e->position = INT32_MIN;
    if (!rc && pos) {
        if (!cJSON_IsNumber(pos) || pos->valuedouble != (int)pos->valuedouble)
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: \"position\" must be an integer", where);
        else e->position = (int)pos->valuedouble;
    }
    if (!rc && srcs && !cJSON_IsNull(srcs)) {
        if (!cJSON_IsArray(srcs)) rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: \"sources\" must be a list", where);
        else {
            e->n_src = cJSON_GetArraySize(srcs);
            if (e->n_src && !(e->src = calloc((size_t)e->n_src, sizeof *e->src))) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            for (int i = 0; i < e->n_src && !rc; i++) {
                snprintf(w, sizeof w, "%s: sources[%d]", where, i);
                rc = read_input(cJSON_GetArrayItem(srcs, i), tok, &e->src[i], w, err);
            }
        }
    }
    if (!rc) {
        e->ul = json_text(cJSON_GetObjectItemCaseSensitive(j, "unit_locations"));
        e->ss = json_text(cJSON_GetObjectItemCaseSensitive(j, "subspaces"));
        /* signature: lengths and kinds of every input, locations and subspaces */
        size_t cap = 64 + (size_t)e->n_src * 24 + (e->ul ? strlen(e->ul) : 0) + (e->ss ? strlen(e->ss) : 0);
        if (!(e->sig = malloc(cap))) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        else {
            int at = snprintf(e->sig, cap, "%c%d", e->base.ids ? 'i' : 'e', e->base.len);
            for (int i = 0; i < e->n_src; i++)
                at += snprintf(e->sig + at, cap - (size_t)at, ",%c%d", e->src[i].len ? (e->src[i].ids ? 'i' : 'e') : 'n',
                               e->src[i].len);
            snprintf(e->sig + at, cap - (size_t)at, "|%s|%s|%d", e->ul ? e->ul : "", e->ss ? e->ss : "", e->position);
        }
    }
    cJSON_Delete(j);
    if (rc) free_example(e);
    return rc;
}

int ds_load(const char *path, const vene_tokenizer *tok, ds_set *out, vene_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return vene_errorf(err, VENE_ERR_IO, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = VENE_OK;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t k = 0;
        while (k < (size_t)len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\n' || line[k] == '\r')) k++;
        if (k == (size_t)len) continue; /* blank */
        if (out->n == out->cap) {
            int nc = out->cap ? 2 * out->cap : 64;
            ds_example *p = realloc(out->ex, sizeof *p * (size_t)nc);
            if (!p) {
                rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
                break;
            }
            out->ex = p;
            out->cap = nc;
        }
        char where[300];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        rc = parse_line(line, tok, &out->ex[out->n], where, err);
        if (!rc) out->n++;
    }
    free(line);
    fclose(f);
    if (!rc && out->n == 0) rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: no examples", path);
    if (rc) ds_free(out);
    return rc;
}

static int concat(const ds_example *ex, const int *idx, int n, int which, vene_batch *b, void **mem, vene_error *err) {
    const ds_input *first = which < 0 ? &ex[idx[0]].base : &ex[idx[0]].src[which];
    memset(b, 0, sizeof *b);
    b->batch = n;
    b->seq = first->len;
    size_t per = first->ids ? (size_t)first->len : (size_t)first->len * first->dim;
    float *buf = malloc((per ? per : 1) * (size_t)n * sizeof(float));
    if (!buf) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    *mem = buf;
    for (int i = 0; i < n; i++) {
        const ds_input *in = which < 0 ? &ex[idx[i]].base : &ex[idx[i]].src[which];
        if (in->dim != first->dim)
            return vene_errorf(err, VENE_ERR_FORMAT, "example %d: embeds are %d wide, example %d's are %d", idx[i], in->dim,
                               idx[0], first->dim);
        if (first->ids) memcpy((int32_t *)(void *)buf + per * i, in->ids, per * sizeof(int32_t));
        else memcpy(buf + per * i, in->embeds, per * sizeof(float));
    }
    if (first->ids) b->ids = (const int32_t *)(void *)buf;
    else b->embeds = buf;
    return VENE_OK;
}

int ds_batch_make(const ds_set *s, const int *idx, int n, int default_position, ds_batch *b, vene_error *err) {
    memset(b, 0, sizeof *b);
    const ds_example *e0 = &s->ex[idx[0]];
    int rc = concat(s->ex, idx, n, -1, &b->base, &b->mem[0], err);
    b->n_src = e0->n_src;
    if (!rc && b->n_src > 5) rc = vene_errorf(err, VENE_ERR_ARG, "example %d: more than 5 sources", idx[0]);
    if (!rc && b->n_src) {
        b->srcs = calloc((size_t)b->n_src, sizeof *b->srcs);
        b->src_ptrs = calloc((size_t)b->n_src, sizeof *b->src_ptrs);
        if (!b->srcs || !b->src_ptrs) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        for (int k = 0; k < b->n_src && !rc; k++) {
            if (!e0->src[k].len) continue; /* null source: the group is skipped (spec §9.4) */
            rc = concat(s->ex, idx, n, k, &b->srcs[k], &b->mem[1 + k], err);
            b->src_ptrs[k] = &b->srcs[k];
        }
    }
    b->ex = malloc(sizeof *b->ex * (size_t)n);
    if (!rc && !b->ex) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int i = 0; i < n && !rc; i++) b->ex[i] = &s->ex[idx[i]];
    b->labels = malloc(sizeof(int32_t) * (size_t)n);
    b->positions = malloc(sizeof(int) * (size_t)n);
    if (!rc && (!b->labels || !b->positions)) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        b->labels[i] = s->ex[idx[i]].label;
        b->positions[i] = s->ex[idx[i]].position == INT32_MIN ? default_position : s->ex[idx[i]].position;
    }
    b->call.base = &b->base;
    b->call.sources = b->src_ptrs;
    b->call.n_sources = b->n_src;
    b->call.unit_locations = e0->ul;
    b->call.subspaces = e0->ss;
    return rc;
}

void ds_batch_free(ds_batch *b) {
    for (int i = 0; i < 8; i++) free(b->mem[i]);
    free(b->srcs);
    free(b->src_ptrs);
    free(b->labels);
    free(b->positions);
    free(b->ex);
    memset(b, 0, sizeof *b);
}
