/* Decoding (each token's bytes were spelled out at load time) and the accessors. */
#include "tok/tok_internal.h"

#include <stdlib.h>
#include <string.h>

int vene_detokenize_ex(const vene_tokenizer *t, const int32_t *ids, size_t n_ids, unsigned flags, char **text,
                       size_t *len, vene_error *err) {
    if (!t || !text || !len || (!ids && n_ids))
        return vene_errorf(err, VENE_ERR_ARG, "vene_detokenize: NULL argument");
    *text = NULL;
    *len = 0;
    if (t->wl) return tok_wordlevel_decode(t, ids, n_ids, text, len, err);
    if (flags & ~(unsigned)VENE_TOK_SKIP_SPECIAL)
        return vene_errorf(err, VENE_ERR_ARG, "vene_detokenize: unknown flags 0x%x", flags);
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->tok[ids[i]].piece)
            return vene_errorf(err, VENE_ERR_RANGE, "token id %d (at %zu) is out of range: vocab size %d%s", ids[i],
                               i, t->n_vocab, ids[i] >= 0 && ids[i] < t->n_vocab ? ", and no token has that id" : "");
        total += t->tok[ids[i]].n_bytes;
    }
    char *out = malloc(total + 1);
    if (!out) return vene_errorf(err, VENE_ERR_MEMORY, "vene_detokenize: out of memory");
    size_t n = 0;
    int first = 1;
    for (size_t i = 0; i < n_ids; i++) {
        const tok_token *tk = &t->tok[ids[i]];
        if ((flags & VENE_TOK_SKIP_SPECIAL) && tk->special) continue;
        const char *b = tk->bytes;
        size_t k = tk->n_bytes;
        /* Metaspace's decoder drops the space it prepended, from the first token only. */
        if (first && t->dec_strip_first && k && b[0] == ' ') b++, k--;
        first = 0;
        memcpy(out + n, b, k);
        n += k;
    }
    /* Hugging Face's Strip decoder works on the joined text. */
    size_t skip = 0;
    while ((int)skip < t->dec_strip_start && skip < n && out[skip] == ' ') skip++;
    if (skip) memmove(out, out + skip, n -= skip);
    out[n] = '\0';
    *text = out;
    *len = n;
    return VENE_OK;
}

int vene_detokenize(const vene_tokenizer *t, const int32_t *ids, size_t n_ids, char **text, size_t *len,
                    vene_error *err) {
    return vene_detokenize_ex(t, ids, n_ids, 0, text, len, err);
}

int vene_tokenizer_vocab_size(const vene_tokenizer *t) { return t ? t->n_vocab : 0; }

const char *vene_token_piece(const vene_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return t->tok[id].piece;
}

const char *vene_token_text(const vene_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab || !t->tok[id].piece) return NULL;
    if (len) *len = t->tok[id].n_bytes;
    return t->tok[id].bytes;
}

int vene_token_is_special(const vene_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && t->tok[id].special;
}

int32_t vene_token_id(const vene_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    return tok_strmap_get(&t->vocab, piece, (uint32_t)strlen(piece));
}

void vene_tokenizer_get_info(const vene_tokenizer *t, vene_tokenizer_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->bos_id = info->eos_id = info->unk_id = info->pad_id = -1;
    info->kind = info->source = "";
    if (!t) return;
    info->n_vocab = t->n_vocab;
    info->bos_id = t->bos_id, info->eos_id = t->eos_id, info->unk_id = t->unk_id, info->pad_id = t->pad_id;
    info->n_prefix = t->n_prefix, info->n_suffix = t->n_suffix;
    memcpy(info->prefix, t->prefix, sizeof info->prefix);
    memcpy(info->suffix, t->suffix, sizeof info->suffix);
    info->kind = t->kind;
    info->source = t->source;
}
