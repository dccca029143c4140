/* The experiment file of `vene run` (docs/experiment-format.md): read, validate, execute,
 * write the result file atomically. Every error names the field it is about. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "engine/engine.h"
#include "io/json_keys.h"
#include "io/safetensors.h"

static const char *const top_keys[] = {"model", "model_class", "seed", "config", "intervention_params", "base", "sources",
                                       "unit_locations", "subspaces", "source_representations", "run", "generate",
                                       "loss", "grads", "enable_model_gradients", "outputs"};

typedef struct input {
    vene_batch b;
    int32_t *ids;
    float *embeds;
} input;

typedef struct exp_ctx {
    const char *path;
    char dir[4096];
    cJSON *j;
    vene_model *m;
    vene_tokenizer *tok;
    st_file *inputs;
    vene_intervenable *iv;
    input base;
    input *srcs;
    int n_srcs;
    vene_tensor *reps;       /* per intervention constant sources (owned data) */
    const vene_tensor **rep_ptrs;
} exp_ctx;

static char *read_all(const char *path, vene_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        vene_errorf(err, VENE_ERR_IO, "cannot open the file");
        return NULL;
    }
    struct stat sb; /* a directory opens, then reports a size of LONG_MAX */
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        vene_errorf(err, VENE_ERR_IO, "not a regular file");
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        vene_errorf(err, VENE_ERR_IO, "read failed");
        return NULL;
    }
    buf[n] = 0;
    fclose(f);
    return buf;
}

static const st_tensor *input_tensor(exp_ctx *x, const char *name, const char *field, vene_error *err) {
    if (!x->inputs) {
        vene_errorf(err, VENE_ERR_ARG, "%s: names tensor \"%s\" but %s/inputs.safetensors does not exist", field, name, x->dir);
        return NULL;
    }
    const st_tensor *t = st_find(x->inputs, name);
    if (!t) vene_errorf(err, VENE_ERR_ARG, "%s: tensor \"%s\" is not in inputs.safetensors", field, name);
    return t;
}

static int parse_input(exp_ctx *x, const cJSON *j, input *in, const char *field, vene_error *err) {
    memset(in, 0, sizeof *in);
    if (!cJSON_IsObject(j)) return vene_errorf(err, VENE_ERR_ARG, "%s: expected an object with input_ids, text or inputs_embeds", field);
    for (const cJSON *c = j->child; c; c = c->next)
        if (strcmp(c->string, "input_ids") && strcmp(c->string, "text") && strcmp(c->string, "inputs_embeds"))
            return vene_errorf(err, VENE_ERR_ARG, "%s: unknown key \"%s\"", field, c->string);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "input_ids");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(j, "inputs_embeds");
    if (emb && !cJSON_IsNull(emb)) {
        if (!cJSON_IsString(emb)) return vene_errorf(err, VENE_ERR_ARG, "%s.inputs_embeds: expected a tensor name", field);
        const st_tensor *t = input_tensor(x, emb->valuestring, field, err);
        if (!t) return err->code;
        if (t->ndim != 3 || t->shape[2] != x->m->d_model)
            return vene_errorf(err, VENE_ERR_ARG, "%s.inputs_embeds: tensor \"%s\" must be B x S x %d", field, emb->valuestring,
                               x->m->d_model);
        in->embeds = malloc(sizeof(float) * (size_t)t->numel);
        if (!in->embeds) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        if (st_to_f32(t, in->embeds, err)) return err->code;
        in->b.batch = (int)t->shape[0];
        in->b.seq = (int)t->shape[1];
        in->b.embeds = in->embeds;
        return VENE_OK;
    }
    if (ids && !cJSON_IsNull(ids)) {
        int B = cJSON_GetArraySize(ids), S = -1;
        if (!cJSON_IsArray(ids) || B == 0) return vene_errorf(err, VENE_ERR_ARG, "%s.input_ids: expected a non-empty list of lists", field);
        for (const cJSON *r = ids->child; r; r = r->next) {
            int n = cJSON_GetArraySize(r);
            if (!cJSON_IsArray(r) || n == 0) return vene_errorf(err, VENE_ERR_ARG, "%s.input_ids: expected a list of id lists", field);
            if (S >= 0 && n != S)
                return vene_errorf(err, VENE_ERR_ARG, "%s.input_ids: rows of different lengths (%d and %d); pad them", field, S, n);
            S = n;
        }
        in->ids = malloc(sizeof(int32_t) * (size_t)B * (size_t)S);
        if (!in->ids) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        int b = 0;
        for (const cJSON *r = ids->child; r; r = r->next, b++) {
            int s = 0;
            for (const cJSON *u = r->child; u; u = u->next, s++) {
                if (!cJSON_IsNumber(u) || u->valuedouble < 0 || u->valuedouble >= x->m->vocab_size)
                    return vene_errorf(err, VENE_ERR_RANGE, "%s.input_ids[%d][%d]: token id out of range (vocab size %d)", field, b, s,
                                       x->m->vocab_size);
                in->ids[b * S + s] = (int32_t)u->valuedouble;
            }
        }
        in->b.batch = B;
        in->b.seq = S;
        in->b.ids = in->ids;
        return VENE_OK;
    }
    if (!cJSON_IsArray(text) || cJSON_GetArraySize(text) == 0)
        return vene_errorf(err, VENE_ERR_ARG, "%s: needs input_ids, text or inputs_embeds", field);
    if (!x->tok) {
        int rc = vene_tokenizer_load(x->m->dir, &x->tok, err);
        if (rc) return vene_error_prefix(err, "%s.text", field);
    }
    int B = cJSON_GetArraySize(text), S = -1, b = 0;
    for (const cJSON *t = text->child; t; t = t->next, b++) {
        if (!cJSON_IsString(t) || !*t->valuestring) return vene_errorf(err, VENE_ERR_ARG, "%s.text[%d]: expected non-empty text", field, b);
        int32_t *ids1 = NULL;
        size_t n = 0;
        if (vene_tokenize(x->tok, t->valuestring, strlen(t->valuestring), &ids1, &n, err)) return err->code;
        if (S >= 0 && (int)n != S) {
            vene_free(ids1);
            return vene_errorf(err, VENE_ERR_ARG, "%s.text: texts tokenize to different lengths (%d and %zu)", field, S, n);
        }
        if (!in->ids) in->ids = malloc(sizeof(int32_t) * (size_t)B * n);
        if (!in->ids || n == 0) {
            vene_free(ids1);
            return vene_errorf(err, VENE_ERR_ARG, "%s.text[%d]: no tokens", field, b);
        }
        S = (int)n;
        memcpy(in->ids + (size_t)b * n, ids1, n * sizeof(int32_t));
        vene_free(ids1);
    }
    in->b.batch = B;
    in->b.seq = S;
    in->b.ids = in->ids;
    return VENE_OK;
}

static int load_params(exp_ctx *x, vene_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(x->j, "intervention_params");
    if (!p || cJSON_IsNull(p)) return VENE_OK;
    if (!cJSON_IsObject(p)) return vene_errorf(err, VENE_ERR_ARG, "intervention_params: expected an object");
    for (const cJSON *c = p->child; c; c = c->next) {
        char *end = NULL;
        long i = strtol(c->string, &end, 10);
        if (end == c->string || *end != '.' || i < 0 || i >= x->iv->n)
            return vene_errorf(err, VENE_ERR_ARG, "intervention_params[\"%s\"]: key must be \"<index>.<parameter>\" with index < %d",
                               c->string, x->iv->n);
        if (!cJSON_IsString(c)) return vene_errorf(err, VENE_ERR_ARG, "intervention_params[\"%s\"]: expected a tensor name", c->string);
        char field[300];
        snprintf(field, sizeof field, "intervention_params[\"%s\"]", c->string);
        const st_tensor *t = input_tensor(x, c->valuestring, field, err);
        if (!t) return err->code;
        if (vene_iv_set_param(x->iv->slots[i].iv, end + 1, t, err)) return vene_error_prefix(err, "%s", field);
    }
    return VENE_OK;
}

static int load_const(exp_ctx *x, int i, const char *name, const char *field, vene_error *err) {
    const st_tensor *t = input_tensor(x, name, field, err);
    if (!t) return err->code;
    vene_tensor *r = &x->reps[i];
    free(r->data);
    r->data = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    if (!r->data) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (st_to_f32(t, r->data, err)) return err->code;
    r->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) r->shape[d] = t->shape[d];
    if (t->ndim == 0) {
        r->ndim = 1;
        r->shape[0] = 1;
    }
    /* a constant source must broadcast over the site's last dimension */
    int width = x->iv->slots[i].where.width;
    int64_t last = r->shape[r->ndim - 1];
    if (width > 0 && last != width)
        return vene_errorf(err, VENE_ERR_ARG, "%s: tensor \"%s\" has last dimension %lld, the site of intervention %d is %d wide",
                           field, name, (long long)last, i, width);
    x->rep_ptrs[i] = r;
    return VENE_OK;
}

static int load_sources_reps(exp_ctx *x, vene_error *err) {
    int n = x->iv->n, rc;
    x->reps = calloc((size_t)n, sizeof *x->reps);
    x->rep_ptrs = calloc((size_t)n, sizeof *x->rep_ptrs);
    if (!x->reps || !x->rep_ptrs) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    char field[128];
    for (int i = 0; i < n; i++) {
        if (!x->iv->slots[i].r.source_repr) continue;
        snprintf(field, sizeof field, "config.representations[%d].source_representation", i);
        if ((rc = load_const(x, i, x->iv->slots[i].r.source_repr, field, err))) return rc;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(x->j, "source_representations");
    if (!s || cJSON_IsNull(s)) return VENE_OK;
    if (cJSON_IsString(s)) {
        for (int i = 0; i < n; i++)
            if ((rc = load_const(x, i, s->valuestring, "source_representations", err))) return rc;
        return VENE_OK;
    }
    if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) != n)
        return vene_errorf(err, VENE_ERR_ARG, "source_representations: expected a tensor name or a list of %d names or nulls", n);
    int i = 0;
    for (const cJSON *e = s->child; e; e = e->next, i++) {
        if (cJSON_IsNull(e)) continue;
        snprintf(field, sizeof field, "source_representations[%d]", i);
        if (!cJSON_IsString(e)) return vene_errorf(err, VENE_ERR_ARG, "%s: expected a tensor name or null", field);
        if ((rc = load_const(x, i, e->valuestring, field, err))) return rc;
    }
    return VENE_OK;
}

static void ctx_free(exp_ctx *x) {
    if (x->iv) {
        for (int i = 0; x->reps && i < x->iv->n; i++) free(x->reps[i].data);
    }
    free(x->reps);
    free(x->rep_ptrs);
    free(x->base.ids);
    free(x->base.embeds);
    for (int i = 0; i < x->n_srcs; i++) {
        free(x->srcs[i].ids);
        free(x->srcs[i].embeds);
    }
    free(x->srcs);
    vene_intervenable_free(x->iv);
    st_close(x->inputs);
    vene_tokenizer_free(x->tok);
    vene_model_free(x->m);
    cJSON_Delete(x->j);
}

static int known_output(const char *o, int generate) {
    if (generate) return !strcmp(o, "generated.original") || !strcmp(o, "generated.intervened");
    return !strcmp(o, "original.logits") || !strcmp(o, "intervened.logits") || !strcmp(o, "original.last_hidden_state") ||
           !strcmp(o, "intervened.last_hidden_state") || !strncmp(o, "collected.", 10);
}

/* The tensor an output name refers to after the call, or NULL. */
static const vene_tensor *output_tensor(const vene_intervenable *iv, const char *name) {
    if (!strcmp(name, "original.logits")) return vene_intervenable_logits(iv, 0);
    if (!strcmp(name, "intervened.logits")) return vene_intervenable_logits(iv, 1);
    if (!strcmp(name, "original.last_hidden_state")) return vene_intervenable_last_hidden(iv, 0);
    if (!strcmp(name, "intervened.last_hidden_state")) return vene_intervenable_last_hidden(iv, 1);
    char *end = NULL;
    long n = strtol(name + 10, &end, 10);
    if (strncmp(name, "collected.", 10) || end == name + 10 || *end || n < 0) return NULL;
    return vene_intervenable_collected(iv, (int)n);
}

static void print_top(const char *label, const vene_tensor *logits, vene_tokenizer *tok) {
    if (!logits || logits->ndim != 3) return; /* classifier logits are not tokens */
    int64_t S = logits->shape[1], V = logits->shape[2];
    const float *row = logits->data + (S - 1) * V;
    int best[3] = {-1, -1, -1};
    for (int64_t v = 0; v < V; v++)
        for (int k = 0; k < 3; k++)
            if (best[k] < 0 || row[v] > row[best[k]]) {
                for (int q = 2; q > k; q--) best[q] = best[q - 1];
                best[k] = (int)v;
                break;
            }
    fprintf(stderr, "  %-11s", label);
    for (int k = 0; k < 3; k++) {
        char *p = NULL;
        size_t n = 0;
        int32_t id = best[k];
        if (tok && vene_detokenize(tok, &id, 1, &p, &n, NULL) == VENE_OK) fprintf(stderr, " %-14s", p);
        else fprintf(stderr, " [%d]%-9s", id, "");
        vene_free(p);
    }
    fputc('\n', stderr);
}

/* run "generate" (contract §8.3): greedy decoding, unintervened and intervened; or the
 * command line's generation (g non-NULL: its parameters and callback, no result file). */
static int run_generate(exp_ctx *x, const vene_call *call, const char *out_path, int quiet, const vene_exp_gen *g,
                        vene_error *err) {
    const cJSON *gj = cJSON_GetObjectItemCaseSensitive(x->j, "generate");
    if (!g && !cJSON_IsObject(gj)) return vene_errorf(err, VENE_ERR_ARG, "generate: expected an object for run \"generate\"");
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(gj, "max_length");
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(gj, "max_new_tokens");
    const cJSON *iop = cJSON_GetObjectItemCaseSensitive(gj, "intervene_on_prompt");
    for (const cJSON *c = cJSON_IsObject(gj) ? gj->child : NULL; c; c = c->next)
        if (strcmp(c->string, "max_length") && strcmp(c->string, "max_new_tokens") && strcmp(c->string, "intervene_on_prompt"))
            return vene_errorf(err, VENE_ERR_ARG, "generate: unknown key \"%s\"", c->string);
    vene_gen_params p;
    vene_gen_params_init(&p, x->m);
    int P = call->base->seq;
    if (g) {
        int eos = g->no_eos ? -1 : p.eos_token_id;
        p = *g->params;
        p.eos_token_id = eos;
    }
    else if (cJSON_IsNumber(ml) && ml->valuedouble >= 1 && ml->valuedouble <= 1e6) p.max_new_tokens = (int)ml->valuedouble - P;
    else if (cJSON_IsNumber(mn) && mn->valuedouble >= 0 && mn->valuedouble <= 1e6) p.max_new_tokens = (int)mn->valuedouble;
    else return vene_errorf(err, VENE_ERR_ARG, "generate: needs max_length or max_new_tokens (a positive integer)");
    if (iop && !cJSON_IsBool(iop)) return vene_errorf(err, VENE_ERR_ARG, "generate.intervene_on_prompt: expected true or false");
    p.intervene_on_prompt = cJSON_IsTrue(iop);
    if (!g) { /* max_length is capped by the model's positions; nothing to generate is no error */
        if (P + p.max_new_tokens > x->m->n_ctx) p.max_new_tokens = x->m->n_ctx - P;
        if (p.max_new_tokens <= 0) {
            p.max_new_tokens = 0;
            p.max_length = P;
        }
    }
    vene_call c = *call;
    c.output_original = g ? g->compare : 1;
    vene_gen_output res[2];
    int rc = vene_intervenable_generate(x->iv, &c, &p, res, err);
    if (rc || g) {
        vene_gen_output_free(&res[0]);
        vene_gen_output_free(&res[1]);
        return rc;
    }
    st_writer *wr = st_writer_new();
    if (!wr) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(x->j, "outputs"), *o;
    int64_t *ids64 = NULL;
    cJSON_ArrayForEach(o, outputs) {
        if (rc) break;
        const vene_gen_output *r = &res[!strcmp(o->valuestring, "generated.intervened")];
        int64_t shape[2] = {r->batch, r->len}, n = shape[0] * shape[1];
        int64_t *tmp = realloc(ids64, sizeof(int64_t) * (size_t)(n ? n : 1));
        if (!tmp) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            break;
        }
        ids64 = tmp;
        for (int64_t i = 0; i < n; i++) ids64[i] = r->ids[i];
        rc = st_writer_add(wr, o->valuestring, ST_I64, 2, shape, ids64, err);
    }
    if (!rc) rc = st_writer_save(wr, out_path, err);
    st_writer_free(wr);
    free(ids64);
    if (!rc && !quiet) {
        if (!x->tok) vene_tokenizer_load(x->m->dir, &x->tok, NULL);
        for (int w = 0; w < 2; w++) {
            fprintf(stderr, "%-11s", w ? "intervened" : "original");
            char *text = NULL;
            size_t len = 0;
            if (x->tok && vene_detokenize(x->tok, res[w].ids, (size_t)res[w].len, &text, &len, NULL) == VENE_OK) fputs(text, stderr);
            vene_free(text);
            fputc('\n', stderr);
        }
    }
    vene_gen_output_free(&res[0]);
    vene_gen_output_free(&res[1]);
    return rc;
}

static int experiment_exec(const char *path, const char *out_path, const vene_experiment_opts *opts,
                           const vene_exp_gen *g, vene_error *err);

int vene_experiment_run_opts(const char *path, const char *out_path, const vene_experiment_opts *opts, vene_error *err) {
    return experiment_exec(path, out_path, opts, NULL, err);
}

/* max_memory counts the model's weights; what is left bounds each intervened call. */
static int weights_budget(const vene_model *m, size_t max_memory, size_t *left, vene_error *err) {
    uint64_t w = (uint64_t)m->n_params * sizeof(float);
    if (w >= max_memory) {
        char a[64], b[64];
        return vene_errorf(err, VENE_ERR_MEMORY, "model: its weights take %s, over the memory limit of %s",
                           vene_bytes_str(w, a, sizeof a), vene_bytes_str(max_memory, b, sizeof b));
    }
    *left = (size_t)(max_memory - w);
    return VENE_OK;
}

static int experiment_exec(const char *path, const char *out_path, const vene_experiment_opts *opts,
                           const vene_exp_gen *g, vene_error *err) {
    vene_experiment_opts defaults = {0};
    vene_error local;
    if (!opts) opts = &defaults;
    if (!err) err = &local; /* the steps below read err->code */
    if (!path || (!out_path && !g)) return vene_errorf(err, VENE_ERR_ARG, "experiment and result paths must not be NULL");
    const int quiet = opts->quiet;
    size_t call_budget = 0;
    exp_ctx x;
    memset(&x, 0, sizeof x);
    x.path = path;
    int rc = VENE_OK;
    char *text = read_all(path, err);
    if (!text) return err->code;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(x.dir, sizeof x.dir, "%s", dirname(tmp));
    const char *end = NULL;
    x.j = cJSON_ParseWithOpts(text, &end, 0);
    if (!cJSON_IsObject(x.j)) {
        long off = x.j ? 0 : (end ? (long)(end - text) : 0);
        free(text);
        rc = vene_errorf(err, VENE_ERR_FORMAT, "not a JSON object (parse error near byte %ld)", off);
        goto out;
    }
    free(text);
    if ((rc = vene_json_unique_keys(x.j, "", err))) goto out;
    for (const cJSON *c = x.j->child; c; c = c->next) {
        int ok = 0;
        for (size_t i = 0; i < sizeof top_keys / sizeof top_keys[0]; i++) ok |= !strcmp(c->string, top_keys[i]);
        if (!ok) {
            rc = vene_errorf(err, VENE_ERR_ARG, "unknown key \"%s\"", c->string);
            goto out;
        }
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(x.j, "model");
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(x.j, "model_class");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(x.j, "run");
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(x.j, "outputs");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(x.j, "seed");
    if (!cJSON_IsString(model)) { rc = vene_errorf(err, VENE_ERR_ARG, "model: expected a path string"); goto out; }
    if (cls && !cJSON_IsNull(cls) && !cJSON_IsString(cls)) { rc = vene_errorf(err, VENE_ERR_ARG, "model_class: expected a string or null"); goto out; }
    if (!cJSON_IsString(run)) { rc = vene_errorf(err, VENE_ERR_ARG, "run: expected \"forward\", \"backward\" or \"generate\""); goto out; }
    if (!cJSON_IsArray(outputs)) { rc = vene_errorf(err, VENE_ERR_ARG, "outputs: expected a list of output names"); goto out; }
    int generate = g || !strcmp(run->valuestring, "generate"), backward = !g && !strcmp(run->valuestring, "backward");
    if (strcmp(run->valuestring, "forward") && !generate && !backward) {
        rc = vene_errorf(err, VENE_ERR_ARG, "run: unknown run kind \"%s\"", run->valuestring);
        goto out;
    }
    char mpath[8192];
    if (g && g->model_dir) snprintf(mpath, sizeof mpath, "%s", g->model_dir);
    else if (model->valuestring[0] == '/') snprintf(mpath, sizeof mpath, "%s", model->valuestring);
    else snprintf(mpath, sizeof mpath, "%s/%s", x.dir, model->valuestring);
    if ((rc = vene_model_load(mpath, cJSON_IsString(cls) ? cls->valuestring : NULL, &x.m, err))) {
        vene_error_prefix(err, "model");
        goto out;
    }
    if (opts->max_memory && (rc = weights_budget(x.m, opts->max_memory, &call_budget, err))) goto out;
    char ipath[8192];
    struct stat st;
    snprintf(ipath, sizeof ipath, "%s/inputs.safetensors", x.dir);
    if (stat(ipath, &st) == 0 && (rc = st_open(ipath, &x.inputs, err))) goto out;
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(x.j, "config");
    if (!cJSON_IsObject(cfg)) { rc = vene_errorf(err, VENE_ERR_ARG, "config: expected an object with representations"); goto out; }
    if ((rc = vene_intervenable_from_json(x.m, cfg, &x.iv, err))) goto out;
    if (call_budget) vene_intervenable_set_memory_limit(x.iv, call_budget);
    if (seed && !cJSON_IsNull(seed) && !(cJSON_IsNumber(seed) && seed->valuedouble >= 0 && seed->valuedouble < 9007199254740992.0)) {
        rc = vene_errorf(err, VENE_ERR_ARG, "seed: expected a non-negative integer");
        goto out;
    }
    if (cJSON_IsNumber(seed)) vene_intervenable_set_seed(x.iv, (uint64_t)seed->valuedouble);
    if ((rc = load_params(&x, err)) || (rc = load_sources_reps(&x, err))) goto out;
    cJSON *prompt = g ? cJSON_CreateObject() : NULL; /* the command line's prompt replaces "base" */
    if (prompt) cJSON_AddItemToObject(prompt, "text", cJSON_CreateStringArray(&g->prompt, 1));
    rc = parse_input(&x, prompt ? prompt : cJSON_GetObjectItemCaseSensitive(x.j, "base"), &x.base, "base", err);
    cJSON_Delete(prompt);
    if (rc) goto out;
    const cJSON *srcs = cJSON_GetObjectItemCaseSensitive(x.j, "sources");
    const vene_batch **sb = NULL;
    if (srcs && !cJSON_IsNull(srcs)) {
        if (!cJSON_IsArray(srcs)) { rc = vene_errorf(err, VENE_ERR_ARG, "sources: expected a list or null"); goto out; }
        x.n_srcs = cJSON_GetArraySize(srcs);
        x.srcs = calloc((size_t)x.n_srcs + 1, sizeof *x.srcs);
        sb = calloc((size_t)x.n_srcs + 1, sizeof *sb);
        if (!x.srcs || !sb) { free(sb); rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory"); goto out; }
        int i = 0;
        for (const cJSON *e = srcs->child; e; e = e->next, i++) {
            if (cJSON_IsNull(e)) continue;
            char field[64];
            snprintf(field, sizeof field, "sources[%d]", i);
            if ((rc = parse_input(&x, e, &x.srcs[i], field, err))) { free(sb); goto out; }
            sb[i] = &x.srcs[i].b;
        }
    }
    int want_orig = 0;
    int i = 0;
    for (const cJSON *o = g ? NULL : outputs->child; o; o = o->next, i++) {
        if (!cJSON_IsString(o) || !known_output(o->valuestring, generate)) {
            rc = vene_errorf(err, VENE_ERR_ARG, "outputs[%d]: unknown output \"%s\"", i, cJSON_IsString(o) ? o->valuestring : "?");
            free(sb);
            goto out;
        }
        if (strstr(o->valuestring, "logits") && !x.m->has_lm_head) {
            rc = vene_errorf(err, VENE_ERR_ARG, "outputs[%d]: %s has no LM head, so \"%s\" cannot be produced", i, x.m->model_class,
                             o->valuestring);
            free(sb);
            goto out;
        }
        if (!strncmp(o->valuestring, "original.", 9)) want_orig = 1;
    }
    char *ul = NULL, *ss = NULL;
    const cJSON *ulj = cJSON_GetObjectItemCaseSensitive(x.j, "unit_locations");
    const cJSON *ssj = cJSON_GetObjectItemCaseSensitive(x.j, "subspaces");
    if (ulj && !cJSON_IsNull(ulj)) ul = cJSON_PrintUnformatted(ulj);
    if (ssj && !cJSON_IsNull(ssj)) ss = cJSON_PrintUnformatted(ssj);
    vene_call call = {.base = &x.base.b, .sources = sb, .n_sources = x.n_srcs, .unit_locations = ul, .subspaces = ss,
                      .source_reps = x.rep_ptrs, .output_original = want_orig || (!quiet && x.m->has_lm_head && !generate)};
    if (generate) {
        rc = run_generate(&x, &call, out_path, quiet, g, err);
        free(ul);
        free(ss);
        free(sb);
        goto out;
    }
    float loss = 0;
    rc = backward ? vene_exp_backward(x.iv, x.j, &call, &loss, err) : vene_intervenable_forward(x.iv, &call, err);
    free(ul);
    free(ss);
    free(sb);
    if (rc) goto out;
    st_writer *w = st_writer_new();
    if (!w) { rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory"); goto out; }
    i = 0;
    for (const cJSON *o = outputs->child; o && !rc; o = o->next, i++) {
        const char *name = o->valuestring;
        const vene_tensor *t = output_tensor(x.iv, name);
        if (!t && !strncmp(name, "collected.", 10)) {
            rc = vene_errorf(err, VENE_ERR_ARG, "outputs[%d]: \"%s\" but the run collected %d tensors", i, name,
                             vene_intervenable_collected_count(x.iv));
            break;
        }
        if (!t) { rc = vene_errorf(err, VENE_ERR_ARG, "outputs[%d]: \"%s\" was not produced", i, name); break; }
        rc = st_writer_add_f32(w, name, t, err);
    }
    if (!rc && backward) rc = vene_exp_write_grads(x.iv, x.j, loss, w, err);
    if (!rc) rc = st_writer_save(w, out_path, err);
    st_writer_free(w);
    if (!rc && !quiet) {
        fprintf(stderr, "wrote %s:\n", out_path);
        for (const cJSON *o = outputs->child; o; o = o->next) {
            const char *name = o->valuestring;
            const vene_tensor *t = output_tensor(x.iv, name);
            char shp[64];
            if (t) fprintf(stderr, "  %-30s %s\n", name, vene_shape_str(t, shp, sizeof shp));
        }
    }
    if (!rc && !quiet && x.m->has_lm_head) {
        if (!x.tok) vene_tokenizer_load(x.m->dir, &x.tok, NULL);
        fprintf(stderr, "top next tokens (last position, example 0):\n");
        print_top("original", vene_intervenable_logits(x.iv, 0), x.tok);
        print_top("intervened", vene_intervenable_logits(x.iv, 1), x.tok);
    }
out:
    if (rc == VENE_ERR_MEMORY && call_budget && err) {
        size_t l = strlen(err->msg);
        snprintf(err->msg + l, sizeof err->msg - l, " (max_memory less the model's weights)");
    }
    ctx_free(&x);
    return rc;
}

int vene_experiment_run(const char *path, const char *out_path, int quiet, vene_error *err) {
    vene_experiment_opts o = {.quiet = quiet};
    return experiment_exec(path, out_path, &o, NULL, err);
}

int vene_experiment_generate(const char *path, const vene_exp_gen *g, vene_error *err) {
    if (!g || !g->prompt || !g->params) return vene_errorf(err, VENE_ERR_ARG, "generate: prompt and parameters are required");
    vene_experiment_opts o = {.quiet = 1};
    return experiment_exec(path, NULL, &o, g, err);
}
