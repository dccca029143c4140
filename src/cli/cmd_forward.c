/* `vene forward MODEL_DIR TEXT`: next-token top-k (pyvene's top_vals), and optionally
 * logits plus any hook sites written to a safetensors file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "vene.h"

#define MAX_SITES 64

typedef struct capture {
    const char *name;
    float *data;
    vene_tensor shape;
} capture;

static int capture_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)err;
    capture *c = user;
    if (c->data) return VENE_OK; /* first call only */
    size_t n = (size_t)vene_tensor_numel(t);
    c->data = malloc(n * sizeof(float));
    if (!c->data) return VENE_ERR_MEMORY;
    memcpy(c->data, t->data, n * sizeof(float));
    c->shape = *t;
    c->shape.data = c->data;
    return VENE_OK;
}

/* pyvene's format_token: spaces shown as _, newlines as \n. */
static void print_token(const char *s, size_t len) {
    char buf[64];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 3 < sizeof buf; i++) {
        if (s[i] == ' ') buf[o++] = '_';
        else if (s[i] == '\n') { buf[o++] = '\\'; buf[o++] = 'n'; }
        else buf[o++] = s[i];
    }
    buf[o] = '\0';
    printf("%-20s", buf);
}

static int usage(void) {
    printf("usage: vene forward MODEL_DIR TEXT [--top K] [--out FILE.safetensors] [--site NAME]... [--class CLASS]\n"
           "                    [--max-memory SIZE]\n\n"
           "Runs the model on TEXT (GPT-2 BPE, no BOS) and prints the K most likely next tokens\n"
           "with their probabilities (K = 10 by default), as pyvene's top_vals does.\n"
           "--out writes `logits` (1 x S x V, LM models), `last_hidden_state` and `input_ids`, plus each\n"
           "--site NAME (a module path such as h[3].attn.c_attn.output, see `vene info`) as a tensor\n"
           "of that name. The file is written to a temporary name and renamed.\n"
           "--max-memory SIZE (512M, 2G, ...) refuses, before running, a forward whose weights, run memory and\n"
           "--site copies would need more than SIZE.\n");
    return 0;
}

int vene_cmd_forward(int argc, char **argv) {
    const char *dir = NULL, *text = NULL, *out = NULL, *cls = NULL, *max_arg = NULL;
    size_t max_mem = 0;
    const char *sites[MAX_SITES];
    int n_sites = 0, top = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage();
        if (!strcmp(argv[i], "--top") && i + 1 < argc) {
            if (vene_cli_int_arg("forward", "--top", argv[++i], 1, 1000000, &top)) return 1;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--class") && i + 1 < argc) cls = argv[++i];
        else if (!strcmp(argv[i], "--max-memory") && i + 1 < argc) {
            if (vene_cli_size_arg("forward", max_arg = argv[++i], &max_mem)) return 1;
        } else if (!strcmp(argv[i], "--site") && i + 1 < argc) {
            if (n_sites == MAX_SITES) return vene_cli_fail("forward: at most %d --site options", MAX_SITES);
            sites[n_sites++] = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) return vene_cli_fail("forward: unknown option \"%s\"", argv[i]);
        else if (!dir) dir = argv[i];
        else if (!text) text = argv[i];
        else return vene_cli_fail("forward: unexpected argument \"%s\"", argv[i]);
    }
    if (!dir || !text) return vene_cli_fail("forward: expected MODEL_DIR and TEXT (see `vene forward --help`)");
    if (!*text) return vene_cli_fail("forward: empty text");
    if (top < 1) top = 1;

    vene_error err = {0};
    vene_model *m = NULL;
    vene_tokenizer *tok = NULL;
    vene_run *rs = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    capture caps[MAX_SITES];
    memset(caps, 0, sizeof caps);
    int rc = 1;
    if (vene_model_load(dir, cls, &m, &err) || vene_tokenizer_load(dir, &tok, &err) ||
        vene_tokenize(tok, text, strlen(text), &ids, &n_ids, &err) || vene_run_new(m, &rs, &err)) {
        vene_cli_fail("%s", err.msg);
        goto done;
    }
    if (n_ids == 0) {
        vene_cli_fail("forward: text \"%s\" has no tokens", text);
        goto done;
    }
    for (int i = 0; i < n_sites; i++) {
        int site, layer;
        caps[i].name = sites[i];
        if (vene_model_find_site(m, sites[i], &site, &layer, &err) ||
            vene_run_add_hook(rs, site, layer, capture_hook, &caps[i], &err)) {
            vene_cli_fail("%s", err.msg);
            goto done;
        }
    }
    if (max_mem) {
        size_t copies = 0, left = 0;
        for (int i = 0; i < n_sites; i++) {
            int site, layer;
            int64_t shape[VENE_MAX_DIMS];
            vene_model_find_site(m, sites[i], &site, &layer, NULL);
            vene_tensor t = {.ndim = vene_model_site_shape(m, site, 1, (int)n_ids, shape)};
            memcpy(t.shape, shape, sizeof shape);
            copies += (size_t)vene_tensor_numel(&t) * sizeof(float);
        }
        if (vene_cli_memory_left(m, max_arg, max_mem, copies, &left)) goto done;
        vene_run_set_memory_limit(rs, left);
    }
    vene_batch b = {.batch = 1, .seq = (int)n_ids, .ids = ids};
    if (vene_forward(rs, &b, &err)) {
        if (max_mem && err.code == VENE_ERR_MEMORY) vene_cli_fail("%s (--max-memory %s less the model's weights)", err.msg, max_arg);
        else vene_cli_fail("%s", err.msg);
        goto done;
    }
    const vene_tensor *logits = vene_run_logits(rs);
    if (logits) {
        int V = (int)logits->shape[2];
        const float *last = logits->data + (size_t)(n_ids - 1) * (size_t)V;
        float mx = last[0];
        for (int v = 1; v < V; v++) mx = last[v] > mx ? last[v] : mx;
        double sum = 0;
        for (int v = 0; v < V; v++) sum += exp((double)last[v] - mx);
        if (top > V) top = V;
        if (top < 1) top = 1;
        int *best = calloc((size_t)(unsigned)top, sizeof *best);
        if (!best) goto done;
        for (int k = 0; k < top; k++) {
            int bi = -1;
            for (int v = 0; v < V; v++) {
                int taken = 0;
                for (int j = 0; j < k; j++) taken |= best[j] == v;
                if (!taken && (bi < 0 || last[v] > last[bi])) bi = v;
            }
            best[k] = bi;
        }
        printf("next token after \"%s\" (%zu tokens):\n", text, n_ids);
        for (int k = 0; k < top; k++) {
            char *piece = NULL;
            size_t plen = 0;
            int32_t id = best[k];
            if (vene_detokenize(tok, &id, 1, &piece, &plen, &err) == VENE_OK) print_token(piece, plen);
            vene_free(piece);
            printf(" %.6f\n", exp((double)last[id] - mx) / sum);
        }
        free(best);
    } else {
        printf("bare model: no logits; last_hidden_state is 1 x %zu x %lld\n", n_ids,
               (long long)vene_run_last_hidden(rs)->shape[2]);
    }
    if (out) {
        st_writer *w = st_writer_new();
        int64_t idshape[2] = {1, (int64_t)n_ids};
        int64_t *ids64 = malloc(sizeof(int64_t) * n_ids);
        int wrc = w && ids64 ? VENE_OK : VENE_ERR_MEMORY;
        for (size_t i = 0; ids64 && i < n_ids; i++) ids64[i] = ids[i];
        if (!wrc) wrc = st_writer_add(w, "input_ids", ST_I64, 2, idshape, ids64, &err);
        if (!wrc && logits) wrc = st_writer_add_f32(w, "logits", logits, &err);
        if (!wrc) wrc = st_writer_add_f32(w, "last_hidden_state", vene_run_last_hidden(rs), &err);
        for (int i = 0; !wrc && i < n_sites; i++) {
            if (!caps[i].data) {
                wrc = VENE_ERR_ARG;
                snprintf(err.msg, sizeof err.msg, "site %s did not fire in this model", caps[i].name);
                break;
            }
            wrc = st_writer_add_f32(w, caps[i].name, &caps[i].shape, &err);
        }
        if (!wrc) wrc = st_writer_save(w, out, &err);
        st_writer_free(w);
        free(ids64);
        if (wrc) {
            vene_cli_fail("%s", err.msg);
            goto done;
        }
        printf("wrote %s\n", out);
    }
    rc = 0;
done:
    for (int i = 0; i < n_sites; i++) free(caps[i].data);
    vene_free(ids);
    vene_run_free(rs);
    vene_tokenizer_free(tok);
    vene_model_free(m);
    return rc;
}
