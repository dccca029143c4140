/* `vene train-lm OUT_DIR --data DIR`: a small GPT-2 trained from scratch on a JSONL
 * corpus with its tokenizer (e.g. `vene facts --out DIR`). It is `vene init` followed by
 * `vene train` with objective "lm" (AdamW, linear warm-up, cosine decay), with the model's
 * config made from the options and the tokenizer, and the tokenizer files carried into
 * the result: a Hugging Face folder (config.json, model.safetensors, tokenizer.json). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "vene.h"

typedef struct lm_opts {
    const char *out, *data;
    long long seed;
    int layers, d_model, heads, positions, epochs, batch, threads, quiet;
    double lr, weight_decay, warmup, clip;
} lm_opts;

static int usage(void) {
    printf("usage: vene train-lm OUT_DIR --data DIR [--seed S] [--layers L] [--d-model D] [--heads H]\n"
           "                     [--positions P] [--epochs N] [--batch B] [--lr X] [--weight-decay W]\n"
           "                     [--warmup F] [--threads T] [--quiet]\n\n"
           "Trains a GPT-2 language model from scratch: DIR holds tokenizer.json (its vocabulary sets the\n"
           "model's), train.jsonl and optionally eval.jsonl (token sequences, docs/training.md). The model\n"
           "is initialised as `vene init` does (Hugging Face's initialisation, seeded) and trained as\n"
           "`vene train` with objective \"lm\" does: next-token cross-entropy at every position, AdamW, a\n"
           "linear warm-up over the first F of the steps, then cosine decay to 0. OUT_DIR receives\n"
           "config.json (GPT2LMHeadModel), model.safetensors and the tokenizer files: a folder Hugging\n"
           "Face's transformers can load. The same options and seed give the same bytes.\n\n"
           "  --layers 4  --d-model 64  --heads 4  --positions 16      the architecture\n"
           "  --epochs 150  --batch 32  --lr 3e-3  --weight-decay 0.01  --warmup 0.05  --clip 1 (global\n"
           "                gradient norm; 0: none)\n"
           "  --threads T   OpenMP threads (default 1, or OMP_NUM_THREADS: a model this small gains\n"
           "                nothing from more, and one thread gives the same bytes on every machine)\n\n"
           "  vene facts --out facts && vene train-lm models/facts-gpt2 --data facts   (the embedded model)\n");
    return 0;
}

static int parse(int argc, char **argv, lm_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *ip = !strcmp(a, "--layers") ? &o->layers : !strcmp(a, "--d-model") ? &o->d_model
                : !strcmp(a, "--heads") ? &o->heads : !strcmp(a, "--positions") ? &o->positions
                : !strcmp(a, "--epochs") ? &o->epochs : !strcmp(a, "--batch") ? &o->batch
                : !strcmp(a, "--threads") ? &o->threads : NULL;
        double *dp = !strcmp(a, "--lr") ? &o->lr : !strcmp(a, "--weight-decay") ? &o->weight_decay
                   : !strcmp(a, "--warmup") ? &o->warmup : !strcmp(a, "--clip") ? &o->clip : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(), -1;
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) o->quiet = 1;
        else if (!strcmp(a, "--data") && v) o->data = argv[++i];
        else if (!strcmp(a, "--seed") && v) o->seed = atoll(argv[++i]);
        else if (ip && v) {
            char *end;
            long x = strtol(argv[++i], &end, 10);
            if (*end || x < 1 || x > 1 << 20) return vene_cli_fail("train-lm: %s expects a positive integer", a);
            *ip = (int)x;
        } else if (dp && v) {
            char *end;
            *dp = strtod(argv[++i], &end);
            if (*end || !(*dp >= 0 && *dp <= 10)) return vene_cli_fail("train-lm: %s expects a number in [0, 10]", a);
        } else if (a[0] == '-') return vene_cli_fail("train-lm: unknown option \"%s\" (see vene train-lm --help)", a);
        else if (!o->out) o->out = a;
        else return vene_cli_fail("train-lm: unexpected argument \"%s\"", a);
    }
    if (!o->out || !o->data) return vene_cli_fail("train-lm: expected OUT_DIR and --data DIR (see vene train-lm --help)");
    if (o->seed < 0) return vene_cli_fail("train-lm: --seed must be non-negative");
    if (o->d_model % o->heads) return vene_cli_fail("train-lm: --d-model %d is not divisible by --heads %d", o->d_model, o->heads);
    if (o->warmup > 1) return vene_cli_fail("train-lm: --warmup is a fraction of the steps, in [0, 1]");
    return 0;
}

/* The file's bytes copied to `to` (an ENOENT source is skipped when optional). */
static int copy_file(const char *from, const char *to, int optional) {
    FILE *in = fopen(from, "rb");
    if (!in) return optional && errno == ENOENT ? 0 : vene_cli_fail("%s: cannot open: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int ok = out != NULL;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    fclose(in);
    if (out) ok &= fclose(out) == 0;
    return ok ? 0 : vene_cli_fail("%s: write failed", to);
}

static char *model_config(const lm_opts *o, int vocab, int eos) {
    cJSON *c = cJSON_CreateObject(), *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddItemToObject(c, "architectures", arch);
    cJSON_AddStringToObject(c, "model_type", "gpt2");
    cJSON_AddNumberToObject(c, "vocab_size", vocab);
    cJSON_AddNumberToObject(c, "n_positions", o->positions);
    cJSON_AddNumberToObject(c, "n_ctx", o->positions);
    cJSON_AddNumberToObject(c, "n_embd", o->d_model);
    cJSON_AddNumberToObject(c, "n_layer", o->layers);
    cJSON_AddNumberToObject(c, "n_head", o->heads);
    cJSON_AddNullToObject(c, "n_inner");
    cJSON_AddStringToObject(c, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(c, "resid_pdrop", 0);
    cJSON_AddNumberToObject(c, "embd_pdrop", 0);
    cJSON_AddNumberToObject(c, "attn_pdrop", 0);
    cJSON_AddNumberToObject(c, "layer_norm_epsilon", 1e-5);
    cJSON_AddNumberToObject(c, "initializer_range", 0.02);
    cJSON_AddTrueToObject(c, "scale_attn_weights");
    cJSON_AddTrueToObject(c, "tie_word_embeddings");
    if (eos >= 0) {
        cJSON_AddNumberToObject(c, "bos_token_id", eos);
        cJSON_AddNumberToObject(c, "eos_token_id", eos);
    }
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    return text;
}

static char *train_config(const lm_opts *o, const char *data_abs, const char *out_abs, int have_eval) {
    cJSON *c = cJSON_CreateObject(), *opt = cJSON_CreateObject();
    char p[PATH_MAX + 32];
    cJSON_AddStringToObject(c, "model", ".");
    snprintf(p, sizeof p, "%s/train.jsonl", data_abs);
    cJSON_AddStringToObject(c, "train", p);
    if (have_eval) {
        snprintf(p, sizeof p, "%s/eval.jsonl", data_abs);
        cJSON_AddStringToObject(c, "eval", p);
    } else {
        cJSON_AddNumberToObject(c, "eval_fraction", 0);
    }
    cJSON_AddStringToObject(c, "objective", "lm");
    cJSON_AddNumberToObject(c, "batch_size", o->batch);
    cJSON_AddNumberToObject(c, "epochs", o->epochs);
    cJSON_AddNumberToObject(c, "seed", (double)o->seed);
    cJSON_AddStringToObject(opt, "type", "adamw");
    cJSON_AddNumberToObject(opt, "lr", o->lr);
    cJSON_AddNumberToObject(opt, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(opt, "warmup", o->warmup);
    cJSON_AddNumberToObject(opt, "clip_norm", o->clip);
    cJSON_AddStringToObject(opt, "schedule", "cosine");
    cJSON_AddItemToObject(c, "optimizer", opt);
    cJSON_AddStringToObject(c, "save_model", out_abs);
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    return text;
}

static int write_text(const char *path, const char *text) {
    FILE *f = text ? fopen(path, "w") : NULL;
    int ok = f && fputs(text, f) >= 0;
    if (f) ok &= fclose(f) == 0;
    return ok ? 0 : vene_cli_fail("%s: write failed", path);
}

int vene_cmd_train_lm(int argc, char **argv) {
    lm_opts o = {.layers = 4, .d_model = 64, .heads = 4, .positions = 16, .epochs = 150, .batch = 32, .lr = 3e-3,
                 .weight_decay = 0.01, .warmup = 0.05, .clip = 1};
    const char *env = getenv("OMP_NUM_THREADS");
    o.threads = env && atoi(env) > 0 ? atoi(env) : 1;
    int prc = parse(argc, argv, &o);
    if (prc) return prc < 0 ? 0 : prc;
    omp_set_num_threads(o.threads);

    char data_abs[PATH_MAX], cwd[PATH_MAX], out_abs[2 * PATH_MAX], tmp[2 * PATH_MAX + 32], p[3 * PATH_MAX], q[3 * PATH_MAX];
    if (!realpath(o.data, data_abs)) return vene_cli_fail("%s: %s", o.data, strerror(errno));
    if (o.out[0] == '/') snprintf(out_abs, sizeof out_abs, "%s", o.out);
    else if (getcwd(cwd, sizeof cwd)) snprintf(out_abs, sizeof out_abs, "%s/%s", cwd, o.out);
    else return vene_cli_fail("train-lm: cannot read the working directory");

    vene_error err = {0};
    vene_tokenizer *tok = NULL;
    if (vene_tokenizer_load(data_abs, &tok, &err)) return vene_cli_fail("%s", err.msg);
    int vocab = vene_tokenizer_vocab_size(tok), eos = vene_token_id(tok, "<|endoftext|>");
    vene_tokenizer_free(tok);
    snprintf(p, sizeof p, "%s/eval.jsonl", data_abs);
    struct stat st;
    int have_eval = stat(p, &st) == 0;

    /* The freshly initialised model lives in a scratch folder beside OUT_DIR. */
    snprintf(tmp, sizeof tmp, "%s.init.XXXXXX", out_abs);
    if (!mkdtemp(tmp)) return vene_cli_fail("%s: cannot create: %s", tmp, strerror(errno));
    char *cfg = model_config(&o, vocab, eos), *tcfg = train_config(&o, data_abs, out_abs, have_eval);
    int64_t params = 0;
    int rc = !cfg || !tcfg ? vene_cli_fail("train-lm: out of memory") : 0;
    if (!rc && vene_model_init(tmp, cfg, (uint64_t)o.seed, &params, &err)) rc = vene_cli_fail("%s", err.msg);
    static const char *const tok_files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 2 && !rc; i++) {
        snprintf(p, sizeof p, "%s/%s", data_abs, tok_files[i]);
        snprintf(q, sizeof q, "%s/%s", tmp, tok_files[i]);
        rc = copy_file(p, q, i > 0);
    }
    snprintf(q, sizeof q, "%s/train.json", tmp);
    if (!rc) rc = write_text(q, tcfg);
    if (!rc && !o.quiet)
        fprintf(stderr, "train-lm: GPT-2 with %d layers, d_model %d, %d heads, %d positions, vocabulary %d: %lld parameters; "
                        "%d epochs on %d thread%s\n",
                o.layers, o.d_model, o.heads, o.positions, vocab, (long long)params, o.epochs, o.threads, o.threads > 1 ? "s" : "");
    vene_train_options to = {.seed = o.seed, .quiet = o.quiet};
    vene_train_result r;
    if (!rc && vene_train_run(q, &to, &r, &err)) rc = vene_cli_fail("%s", err.msg);
    if (!rc)
        printf("%s: %lld parameters, %d steps in %.1f s: train loss %.4f, held-out loss %.4f, held-out next-token accuracy %.3f\n",
               o.out, (long long)r.params, r.steps, r.seconds, r.train_loss, r.eval_loss, r.iia);
    static const char *const scratch[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "train.json"};
    for (size_t i = 0; i < sizeof scratch / sizeof *scratch; i++) {
        snprintf(p, sizeof p, "%s/%s", tmp, scratch[i]);
        unlink(p);
    }
    rmdir(tmp);
    free(cfg);
    free(tcfg);
    return rc;
}
