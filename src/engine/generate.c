/* KV-cached generation, plain (vene_generate) or with pyvene's interventions
 * (vene_intervenable_generate, spec §10).
 *
 * A "lane" is one continuation being decoded: a run state with its own KV cache, token
 * rows and random generators. Plain generation has one lane; an intervened call with
 * output_original has two, stepped in lock-step: at each step the original lane's pass,
 * then the intervened lane's. Step 0 runs the whole prompt; step t >= 1 feeds each row's
 * t-th new token. The intervened lane's setters are the intervenable's, registered once
 * by vene_iv_prepare (after the source passes); before each of its passes generate.c tells
 * the intervenable which step it is, and vene_slot_rows gates each setter on it. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "engine/sample.h"
#include "models/kv_cache.h"

typedef struct lane {
    vene_run *rs;
    vene_kv_cache *kv;
    vene_intervenable *iv; /* gating context; NULL for a plain lane */
    int which;             /* vene_token_event.which */
    vene_rng *rng;         /* one per row */
    int32_t *seq;          /* B x cap: padded prompt, then the new tokens */
    int *n_new;
    uint8_t *done;
    int n_done;
} lane;

typedef struct gen {
    const vene_model *m;
    const vene_gen_params *p;
    const vene_batch *prompt;
    int B, P, max_new, cap;
    int32_t *pos0;     /* B x P prompt position ids */
    int *next_pos;     /* per row: position id of the first fed new token */
    int32_t *step_ids, *step_pos;
    vene_sampler sampler;
    lane lanes[2];
    int n_lanes;
} gen;

void vene_gen_params_init(vene_gen_params *p, const vene_model *m) {
    memset(p, 0, sizeof *p);
    p->max_new_tokens = 20;
    p->top_p = 1.0f;
    p->eos_token_id = m ? vene_config_int_opt(m->config, "eos_token_id", -1) : -1;
}

void vene_gen_output_free(vene_gen_output *out) {
    if (!out) return;
    free(out->ids);
    free(out->n_new);
    memset(out, 0, sizeof *out);
}

/* Checks and sizes; HF's position ids for the prompt. */
static int gen_setup(gen *g, const vene_model *m, const vene_batch *prompt, const vene_gen_params *p, vene_error *err) {
    memset(g, 0, sizeof *g);
    g->m = m;
    g->p = p;
    g->prompt = prompt;
    if (!p) return vene_errorf(err, VENE_ERR_ARG, "generate: no parameters (start from vene_gen_params_init)");
    if (!prompt || !prompt->ids || prompt->batch <= 0 || prompt->seq <= 0)
        return vene_errorf(err, VENE_ERR_ARG, "generate: the prompt must be a non-empty batch of token ids");
    if (prompt->positions)
        return vene_errorf(err, VENE_ERR_ARG, "generate: prompt positions must be NULL (they follow the attention mask)");
    if (!m->arch->kv_cached)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "generate: no KV-cached decoding for %s models", m->arch->model_type);
    if (!m->has_lm_head)
        return vene_errorf(err, VENE_ERR_ARG, "generate: %s has no LM head (load it as a causal LM class)", m->model_class);
    if (p->top_k < 0) return vene_errorf(err, VENE_ERR_ARG, "generate: top_k %d must not be negative", p->top_k);
    if (p->eos_token_id < -1 || p->eos_token_id >= m->vocab_size)
        return vene_errorf(err, VENE_ERR_RANGE, "generate: eos_token_id %d out of range (vocab size %d, or -1)", p->eos_token_id,
                           m->vocab_size);
    g->B = prompt->batch;
    g->P = prompt->seq;
    g->max_new = p->max_new_tokens > 0 ? p->max_new_tokens : p->max_length - g->P;
    if (g->max_new < 0) g->max_new = 0;
    if ((int64_t)g->P + g->max_new > m->n_ctx)
        return vene_errorf(err, VENE_ERR_RANGE, "generate: %d prompt + %d new tokens exceed the model's %d positions", g->P,
                           g->max_new, m->n_ctx);
    g->cap = g->P + g->max_new;
    const int B = g->B, P = g->P;
    g->pos0 = malloc(sizeof(int32_t) * (size_t)B * (size_t)P);
    g->next_pos = malloc(sizeof(int) * (size_t)B);
    g->step_ids = malloc(sizeof(int32_t) * (size_t)B);
    g->step_pos = malloc(sizeof(int32_t) * (size_t)B);
    if (!g->pos0 || !g->next_pos || !g->step_ids || !g->step_pos) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int b = 0; b < B; b++) {
        int seen = 0;
        for (int s = 0; s < P; s++) {
            int on = !prompt->attn_mask || prompt->attn_mask[(size_t)b * P + s];
            seen += on;
            g->pos0[(size_t)b * P + s] = on ? seen - 1 : 1; /* HF: cumsum(mask) - 1, padding 1 */
        }
        if (!seen) return vene_errorf(err, VENE_ERR_ARG, "generate: prompt row %d is all padding", b);
        g->next_pos[b] = seen;
    }
    return vene_sampler_init(&g->sampler, m->vocab_size, err);
}

static int lane_init(gen *g, lane *L, vene_run *rs, vene_intervenable *iv, int which, vene_error *err) {
    memset(L, 0, sizeof *L);
    L->rs = rs;
    L->iv = iv;
    L->which = which;
    const int B = g->B;
    L->rng = calloc((size_t)B, sizeof *L->rng);
    L->seq = malloc(sizeof(int32_t) * (size_t)B * (size_t)g->cap);
    L->n_new = calloc((size_t)B, sizeof(int));
    L->done = calloc((size_t)B, 1);
    if (!L->rng || !L->seq || !L->n_new || !L->done) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int b = 0; b < B; b++) {
        vene_rng_seed(&L->rng[b], g->p->seed + (uint64_t)b);
        memcpy(L->seq + (size_t)b * g->cap, g->prompt->ids + (size_t)b * g->P, sizeof(int32_t) * (size_t)g->P);
    }
    int rc = vene_kv_new(g->m, B, g->cap, &L->kv, err);
    if (!rc) rc = vene_run_set_kv(rs, L->kv, err);
    return rc;
}

static void lane_free(lane *L) {
    if (L->rs) vene_run_set_kv(L->rs, NULL, NULL);
    vene_kv_free(L->kv);
    free(L->rng);
    free(L->seq);
    free(L->n_new);
    free(L->done);
}

static void gen_free(gen *g) {
    for (int i = 0; i < g->n_lanes; i++) lane_free(&g->lanes[i]);
    free(g->pos0);
    free(g->next_pos);
    free(g->step_ids);
    free(g->step_pos);
    vene_sampler_free(&g->sampler);
}

/* Pass t of one lane: forward, then pick and report each unfinished row's next token. */
static int lane_pass(gen *g, lane *L, int t, vene_error *err) {
    const int B = g->B, P = g->P, cap = g->cap, V = g->m->vocab_size;
    vene_batch b = {B, P, g->prompt->ids, NULL, g->prompt->attn_mask, g->pos0};
    if (t > 0) {
        for (int r = 0; r < B; r++) {
            g->step_ids[r] = L->seq[(size_t)r * cap + P + t - 1];
            g->step_pos[r] = g->next_pos[r] + t - 1;
        }
        b = (vene_batch){B, 1, g->step_ids, NULL, NULL, g->step_pos};
    }
    if (L->iv) {
        L->iv->gen_step = t;
        L->iv->gen_ids = L->seq;
        L->iv->gen_ld = cap;
        L->iv->gen_len = P + t;
    }
    int rc = vene_forward(L->rs, &b, err);
    if (rc == VENE_STOP) return vene_errorf(err, VENE_ERR_STATE, "generate: a hook stopped pass %d", t);
    if (rc) return vene_error_prefix(err, "generate, pass %d", t);
    const vene_tensor *logits = vene_run_logits(L->rs);
    const int eos = g->p->eos_token_id;
    for (int r = 0; r < B; r++) {
        int32_t *cell = &L->seq[(size_t)r * cap + P + t];
        if (L->done[r]) {
            *cell = eos; /* only rows that emitted eos finish early: HF pads them with it */
            continue;
        }
        int32_t tok = vene_sample(&g->sampler, logits->data + ((size_t)r * b.seq + b.seq - 1) * V, g->p, &L->rng[r]);
        *cell = tok;
        L->n_new[r]++;
        vene_token_event ev = {L->which, r, t, tok, tok == eos || t == g->max_new - 1};
        if (ev.last) {
            L->done[r] = 1;
            L->n_done++;
        }
        if (g->p->on_token && (rc = g->p->on_token(g->p->user, &ev, err)) != VENE_OK) return rc;
    }
    return VENE_OK;
}

static int decode(gen *g, vene_error *err) {
    int rc = VENE_OK;
    for (int t = 0; t < g->max_new && !rc; t++) {
        int busy = 0;
        for (int i = 0; i < g->n_lanes && !rc; i++) {
            lane *L = &g->lanes[i];
            if (L->n_done == g->B) continue;
            rc = lane_pass(g, L, t, err);
            busy = 1;
        }
        if (!busy) break;
    }
    return rc;
}

static int lane_output(const gen *g, const lane *L, vene_gen_output *out, vene_error *err) {
    int most = 0;
    for (int b = 0; b < g->B; b++)
        if (L->n_new[b] > most) most = L->n_new[b];
    out->batch = g->B;
    out->len = g->P + most;
    out->ids = malloc(sizeof(int32_t) * (size_t)g->B * (size_t)out->len);
    out->n_new = malloc(sizeof(int) * (size_t)g->B);
    if (!out->ids || !out->n_new) {
        vene_gen_output_free(out);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    for (int b = 0; b < g->B; b++) {
        memcpy(out->ids + (size_t)b * out->len, L->seq + (size_t)b * g->cap, sizeof(int32_t) * (size_t)out->len);
        out->n_new[b] = L->n_new[b];
    }
    return VENE_OK;
}

int vene_generate(vene_run *rs, const vene_batch *prompt, const vene_gen_params *p, vene_gen_output *out, vene_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!rs || !out) return vene_errorf(err, VENE_ERR_ARG, "generate: run state and output are required");
    gen g;
    int rc = gen_setup(&g, rs->m, prompt, p, err);
    if (!rc) {
        g.n_lanes = 1;
        rc = lane_init(&g, &g.lanes[0], rs, NULL, 1, err);
    }
    if (!rc) rc = decode(&g, err);
    if (!rc) rc = lane_output(&g, &g.lanes[0], out, err);
    gen_free(&g);
    return rc;
}

int vene_intervenable_generate(vene_intervenable *iv, const vene_call *call, const vene_gen_params *p,
                               vene_gen_output out[2], vene_error *err) {
    if (out) memset(out, 0, 2 * sizeof *out);
    if (!iv || !call || !out) return vene_errorf(err, VENE_ERR_ARG, "generate: intervenable, call and outputs are required");
    gen g;
    vene_run *plain = NULL;
    int rc = gen_setup(&g, iv->m, call->base, p, err);
    if (!rc) rc = vene_budget_check_length(iv, g.B, g.P + g.max_new, err); /* the longest pass, before any token */
    /* pyvene: without locations and not on the prompt, intervene on each new token */
    vene_call c = *call;
    if (!c.unit_locations && p && !p->intervene_on_prompt) c.unit_locations = "{\"base\": 0}";
    if (!rc) rc = vene_iv_prepare(iv, &c, 0, err);
    if (!rc && call->output_original) {
        rc = vene_run_new(iv->m, &plain, err);
        if (!rc) rc = lane_init(&g, &g.lanes[g.n_lanes++], plain, NULL, 0, err);
    }
    if (!rc) rc = lane_init(&g, &g.lanes[g.n_lanes++], iv->rs, iv, 1, err);
    if (!rc) {
        iv->gen_mode = 1;
        iv->gen_intervene_on_prompt = p->intervene_on_prompt != 0;
        rc = decode(&g, err);
        iv->gen_mode = 0;
        iv->gen_ids = NULL;
    }
    vene_run_clear_hooks(iv->rs);
    if (!rc) rc = vene_iv_take_collected(iv, err);
    for (int i = 0; i < g.n_lanes && !rc; i++) rc = lane_output(&g, &g.lanes[i], &out[g.lanes[i].which], err);
    if (rc) {
        vene_gen_output_free(&out[0]);
        vene_gen_output_free(&out[1]);
    }
    gen_free(&g);
    vene_run_free(plain);
    return rc;
}
