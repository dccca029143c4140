/* A tokenizer from a llama.cpp GGUF file's vocabulary metadata (tokenizer.ggml.*): the
 * byte-level BPE ("gpt2") and SentencePiece ("llama") models, with llama.cpp's defaults
 * for what the file leaves out. The pre-tokenizer is named (tokenizer.ggml.pre), not
 * stored; the names map to the patterns below. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "tok/tok_internal.h"

#define KEY "tokenizer.ggml."

static const char spm_space[] = "\xE2\x96\x81"; /* U+2581 "▁", SentencePiece's space */

static int str_is(gguf_str s, const char *lit) { return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0; }

/* llama.cpp's names for the pre-tokenizers whose patterns we know. */
static const struct {
    const char *name, *pattern;
    int ignore_merges, add_bos;
} pre_types[] = {
    {"gpt-2", tok_pattern_gpt2, 0, 0},      {"llama-bpe", tok_pattern_llama3, 1, 1},
    {"llama3", tok_pattern_llama3, 1, 1},   {"llama-v3", tok_pattern_llama3, 1, 1},
    {"qwen2", tok_pattern_qwen2, 0, 0},     {"deepseek-r1-qwen", tok_pattern_qwen2, 0, 0},
};

static int load_tokens(vene_tokenizer *t, const gguf_file *g, const gguf_kv *tokens, const gguf_kv *types,
                       vene_error *err) {
    const char *file = gguf_label(g);
    for (uint64_t i = 0; i < tokens->n; i++) {
        gguf_str s = gguf_arr_str(tokens, i);
        int64_t type = types ? gguf_arr_int(types, i) : TOK_NORMAL;
        if (type < 0 || type > TOK_BYTE)
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: " KEY "token_type[%llu] is %lld (expected 0..6)", file,
                               (unsigned long long)i, (long long)type);
        if (type == 0) type = TOK_NORMAL; /* "undefined" */
        char empty[40];
        if (s.len == 0) { /* llama.cpp gives an empty piece a name of its own */
            snprintf(empty, sizeof empty, "[EMPTY_%llu]", (unsigned long long)i);
            s = (gguf_str){empty, strlen(empty)};
        }
        if (tok_set_token(t, (int32_t)i, s.ptr, (size_t)s.len, (int)type, err))
            return vene_error_prefix(err, "%s: " KEY "tokens[%llu]", file, (unsigned long long)i);
        /* llama.cpp matches control, unknown and user-defined tokens in raw text; only
         * user-defined ones without parse_special. */
        if ((type == TOK_CONTROL || type == TOK_UNKNOWN || type == TOK_USER) &&
            tok_add_added(t, (int32_t)i, s.ptr, (size_t)s.len, type != TOK_USER, 0, 0, err))
            return vene_error_prefix(err, "%s", file);
    }
    return VENE_OK;
}

static int load_bpe(vene_tokenizer *t, const gguf_file *g, int *add_bos, vene_error *err) {
    const char *file = gguf_label(g);
    const gguf_kv *merges;
    gguf_str pre = {"", 0};
    int has_pre;
    int rc = gguf_get_array(g, KEY "merges", GGUF_STRING, &merges, NULL, err);
    if (!rc) rc = gguf_get_str(g, KEY "pre", &pre, &has_pre, err);
    if (rc) return rc;
    for (uint64_t i = 0; i < merges->n; i++) {
        gguf_str m = gguf_arr_str(merges, i);
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
        if (!sp || sp == m.ptr + m.len - 1)
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: " KEY "merges[%llu]: expected \"a b\", got \"%.*s\"", file,
                               (unsigned long long)i, m.len > 80 ? 80 : (int)m.len, m.ptr);
        size_t alen = (size_t)(sp - m.ptr);
        if (tok_add_merge(t, m.ptr, alen, sp + 1, (size_t)m.len - alen - 1, err))
            return vene_error_prefix(err, "%s: " KEY "merges[%llu]", file, (unsigned long long)i);
    }
    for (size_t i = 0; i < sizeof pre_types / sizeof *pre_types; i++)
        if (str_is(pre, pre_types[i].name)) {
            t->ignore_merges = pre_types[i].ignore_merges;
            *add_bos = pre_types[i].add_bos;
            t->symbols = TOK_SYM_BYTES;
            t->dec_byte_level = 1;
            snprintf(t->kind, sizeof t->kind, "byte-level BPE");
            return tok_add_split(t, pre_types[i].pattern, strlen(pre_types[i].pattern), 0, err);
        }
    return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                       "%s: " KEY "pre is %s%.*s%s: vene knows the pre-tokenizers \"gpt-2\", \"llama-bpe\" "
                       "(\"llama3\", \"llama-v3\") and \"qwen2\" (\"deepseek-r1-qwen\")",
                       file, has_pre ? "\"" : "missing", has_pre ? (int)(pre.len > 64 ? 64 : pre.len) : 0,
                       pre.ptr, has_pre ? "\"" : "");
}

static int load_spm(vene_tokenizer *t, const gguf_file *g, vene_error *err) {
    const char *file = gguf_label(g);
    const gguf_kv *scores;
    int prefix = 1, found;
    int rc = gguf_get_array(g, KEY "scores", GGUF_FLOAT32, &scores, NULL, err);
    if (!rc) rc = gguf_get_bool(g, KEY "add_space_prefix", &prefix, &found, err);
    if (rc) return rc;
    if (scores->n != (uint64_t)t->n_vocab)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: " KEY "scores has %llu entries for %d tokens", file,
                           (unsigned long long)scores->n, t->n_vocab);
    float *s = malloc((size_t)t->n_vocab * sizeof *s);
    if (!s) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", file);
    for (int32_t i = 0; i < t->n_vocab; i++) s[i] = gguf_arr_f32(scores, (uint64_t)i);
    rc = tok_merges_from_scores(t, s, file, err);
    free(s);
    if (rc) return rc;
    t->symbols = TOK_SYM_CHARS;
    t->byte_fallback = t->fuse_unk = 1;
    if (t->n_vocab > 2) t->unk_id = 0, t->bos_id = 1, t->eos_id = 2; /* llama.cpp's defaults */
    /* llama.cpp puts a space before the text, then writes spaces as "▁"; decoding turns
     * "▁" back into spaces and drops that first one. */
    if (prefix) rc = tok_add_op(t, TOK_OP_PREPEND, NULL, 0, spm_space, 3, err);
    if (!rc) rc = tok_add_op(t, TOK_OP_REPLACE, " ", 1, spm_space, 3, err);
    t->dec_from = spm_space;
    t->dec_to = " ";
    t->dec_byte_fallback = 1;
    t->dec_strip_start = prefix;
    snprintf(t->kind, sizeof t->kind, "SentencePiece BPE");
    return rc ? vene_error_prefix(err, "%s", file) : VENE_OK;
}

/* bos/eos/unk/pad ids and whether BOS/EOS are added. */
static int load_specials(vene_tokenizer *t, const gguf_file *g, int add_bos, vene_error *err) {
    static const char *keys[] = {KEY "bos_token_id", KEY "eos_token_id", KEY "unknown_token_id",
                                 KEY "padding_token_id"};
    int32_t *ids[] = {&t->bos_id, &t->eos_id, &t->unk_id, &t->pad_id};
    for (int i = 0; i < 4; i++) {
        int64_t v;
        int found, rc = gguf_get_int(g, keys[i], 0, t->n_vocab - 1, &v, &found, err);
        if (rc) return rc;
        if (found) *ids[i] = (int32_t)v;
    }
    int add_eos = 0, found;
    int rc = gguf_get_bool(g, KEY "add_bos_token", &add_bos, &found, err);
    if (!rc) rc = gguf_get_bool(g, KEY "add_eos_token", &add_eos, &found, err);
    if (rc) return rc;
    if (add_bos && t->bos_id >= 0) t->prefix[t->n_prefix++] = t->bos_id;
    if (add_eos && t->eos_id >= 0) t->suffix[t->n_suffix++] = t->eos_id;
    return VENE_OK;
}

static int from_gguf(vene_tokenizer *t, const gguf_file *g, vene_error *err) {
    const char *file = gguf_label(g);
    gguf_str model;
    const gguf_kv *tokens, *types = NULL;
    int has_types, rc = gguf_get_str(g, KEY "model", &model, NULL, err);
    if (rc) return rc;
    int spm = str_is(model, "llama");
    if (!spm && !str_is(model, "gpt2"))
        return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                           "%s: " KEY "model is \"%.*s\": vene reads \"gpt2\" (byte-level BPE) and \"llama\" "
                           "(SentencePiece) vocabularies", file, model.len > 64 ? 64 : (int)model.len, model.ptr);
    if (!rc) rc = gguf_get_array(g, KEY "tokens", GGUF_STRING, &tokens, NULL, err);
    if (!rc) rc = gguf_get_array(g, KEY "token_type", GGUF_TYPE_COUNT, &types, &has_types, err);
    if (rc) return rc;
    if (tokens->n == 0 || tokens->n > TOK_MAX_ID)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: " KEY "tokens has %llu entries (expected 1..%d)", file,
                           (unsigned long long)tokens->n, TOK_MAX_ID);
    if (has_types && types->n != tokens->n)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: " KEY "token_type has %llu entries for %llu tokens", file,
                           (unsigned long long)types->n, (unsigned long long)tokens->n);
    t->n_vocab = (int32_t)tokens->n;
    if (!(t->tok = calloc((size_t)t->n_vocab, sizeof *t->tok)))
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", file);
    rc = load_tokens(t, g, tokens, has_types ? types : NULL, err);
    int add_bos = spm; /* llama.cpp: SentencePiece adds BOS; BPE only for some pre-tokenizers */
    if (!rc) rc = spm ? load_spm(t, g, err) : load_bpe(t, g, &add_bos, err);
    if (!rc) rc = load_specials(t, g, add_bos, err);
    snprintf(t->source, sizeof t->source, "gguf");
    return rc ? rc : tok_finish(t, file, err);
}

int tok_from_gguf(const gguf_file *g, vene_tokenizer **out, vene_error *err) {
    *out = NULL;
    vene_tokenizer *t = tok_new();
    int rc = t ? from_gguf(t, g, err) : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (rc) {
        vene_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return VENE_OK;
}

int tok_load_gguf(const char *path, vene_tokenizer **out, vene_error *err) {
    gguf_file *g = NULL;
    int rc = gguf_open(path, &g, err);
    if (!rc) rc = tok_from_gguf(g, out, err);
    gguf_close(g);
    return rc;
}
