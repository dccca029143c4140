/* The LLaMA-shaped ~125M-parameter bench model shared by bench_llama_forward and
 * bench_llama_backward: random weights (normal(0, 0.02), norms 1, fixed seed) written
 * once to /tmp/vene-bench-llama-125m (VENE_BENCH_LLAMA=dir for another llama folder),
 * 12 layers, width 768, 12 query / 4 key-value heads of 64, SwiGLU 2048, vocabulary
 * 32000, untied head; and the FLOPs of its forward. Header-only, like common.h. */
#ifndef VENE_BENCH_LLAMA_MODEL_H
#define VENE_BENCH_LLAMA_MODEL_H

#include "common.h"

#define LL_DIR "/tmp/vene-bench-llama-125m"
#define LL_SEED 20240610

enum { LL_L = 12, LL_D = 768, LL_H = 12, LL_KV = 4, LL_HD = 64, LL_F = 2048, LL_V = 32000, LL_CTX = 2048 };

#define LL_PARAMS                                                                                              \
    (2 * (int64_t)LL_V * LL_D + LL_D +                                                                         \
     (int64_t)LL_L * (2 * LL_D + 2 * (int64_t)LL_D * LL_H * LL_HD + 2 * (int64_t)LL_D * LL_KV * LL_HD +       \
                      3 * (int64_t)LL_D * LL_F))

static inline int write_llama(const char *dir, vene_error *err) {
    char path[4096], name[128], cfg[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(cfg, sizeof cfg,
             "{\n  \"model_type\": \"llama\",\n  \"architectures\": [\"LlamaForCausalLM\"],\n"
             "  \"num_hidden_layers\": %d,\n  \"hidden_size\": %d,\n  \"num_attention_heads\": %d,\n"
             "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"intermediate_size\": %d,\n"
             "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"hidden_act\": \"silu\",\n"
             "  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": 500000.0,\n  \"tie_word_embeddings\": false,\n"
             "  \"vene_bench_seed\": %d\n}\n",
             LL_L, LL_D, LL_H, LL_KV, LL_HD, LL_F, LL_V, LL_CTX, LL_SEED);
    if (bench_write_text_(path, cfg)) return vene_errorf(err, VENE_ERR_IO, "%s: cannot write", path);
    bench_rng rng = {(uint64_t)LL_SEED, 0, 0.0f};
    st_writer *w = st_writer_new();
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    const int64_t D = LL_D, Q = LL_H * LL_HD, KV = LL_KV * LL_HD, F = LL_F;
    int rc = bench_add_tensor_(w, "model.embed_tokens.weight", 2, LL_V, D, 2, &rng, err);
    for (int l = 0; l < LL_L && !rc; l++) {
        const struct { const char *sfx; int ndim; int64_t a, b; int kind; } t[] = {
            {"input_layernorm.weight", 1, D, 0, 1},   {"self_attn.q_proj.weight", 2, Q, D, 2},
            {"self_attn.k_proj.weight", 2, KV, D, 2}, {"self_attn.v_proj.weight", 2, KV, D, 2},
            {"self_attn.o_proj.weight", 2, D, Q, 2},  {"post_attention_layernorm.weight", 1, D, 0, 1},
            {"mlp.gate_proj.weight", 2, F, D, 2},     {"mlp.up_proj.weight", 2, F, D, 2},
            {"mlp.down_proj.weight", 2, D, F, 2},
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0] && !rc; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].sfx);
            rc = bench_add_tensor_(w, name, t[i].ndim, t[i].a, t[i].b, t[i].kind, &rng, err);
        }
    }
    if (!rc) rc = bench_add_tensor_(w, "model.norm.weight", 1, D, 0, 1, &rng, err);
    if (!rc) rc = bench_add_tensor_(w, "lm_head.weight", 2, LL_V, D, 2, &rng, err);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    return rc;
}

static inline int llama_ok(const char *dir) {
    if (!bench_seed_ok_(dir, LL_SEED)) return 0;
    vene_model *m = NULL;
    if (vene_model_load(dir, NULL, &m, NULL) != VENE_OK) return 0;
    vene_model_info info;
    vene_model_get_info(m, &info);
    int ok = info.n_layer == LL_L && info.d_model == LL_D && info.vocab_size == LL_V && info.n_params == LL_PARAMS &&
             info.has_lm_head;
    vene_model_free(m);
    return ok;
}

/* FLOPs of a B x S forward: every projection and the head (2 per multiply-add), and
 * attention's two products as computed (full S x S per head, then causally masked). */
static inline double forward_flops(int B, int S) {
    double T = (double)B * S, D = LL_D, Q = LL_H * LL_HD, KV = LL_KV * LL_HD, F = LL_F;
    double per_layer = D * Q + 2 * D * KV + Q * D + 3 * D * F;
    return 2.0 * T * (LL_L * per_layer + (double)LL_V * D) + LL_L * 4.0 * B * (double)S * S * Q;
}

/* The bench model's folder (written on first use). */
static inline const char *bench_llama_dir(void) {
    return bench_model_folder("VENE_BENCH_LLAMA", LL_DIR, "Llama 125M (about 500 MB)", write_llama, llama_ok);
}

#endif
