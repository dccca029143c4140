/* The tokenizer object, shared by the loader (tok_load.c, tok_setup.c) and the encoder/decoder
 * (tok_encode.c). Everything here is read-only once loading finishes, so one tokenizer
 * can serve many threads: per-call scratch (match data, word cache) lives on the call. */
#ifndef VENE_TOK_INTERNAL_H
#define VENE_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "tok/tok_map.h"

/* Ids above this are rejected while loading: it bounds the id table a hostile or
 * corrupt vocab file can make us allocate. */
#define TOK_MAX_ID (1 << 24)

typedef struct tok_merge {
    int32_t left, right, result; /* token ids */
} tok_merge;

typedef struct tok_wordlevel tok_wordlevel;

typedef struct tok_token {
    const char *piece;   /* as in the vocab file, NUL-terminated; NULL for an unused id */
    const char *bytes;   /* what the token decodes to (may contain NULs) */
    uint32_t n_bytes;
} tok_token;

struct vene_tokenizer {
    int32_t n_vocab;      /* highest id + 1 */
    tok_token *tok;       /* [n_vocab] */
    tok_strmap vocab;     /* piece -> id */
    tok_pairmap ranks;    /* (left id, right id) -> merge rank */
    tok_merge *merges;    /* [n_merges], by rank */
    int32_t n_merges, cap_merges;
    int32_t byte_id[256]; /* token of each single byte */
    pcre2_code *re;       /* the GPT-2 pre-tokenizer */
    tok_arena arena;      /* pieces and decoded bytes */
    tok_wordlevel *wl;    /* a WordLevel model (tok_wordlevel.c); NULL for BPE */
};

/* Gives id `id` the piece `piece`. `raw` marks tokens (added/special ones) that decode
 * to their text as-is rather than through the byte alphabet. The caller checked that
 * 0 <= id < t->n_vocab. The message says what clashed; the caller adds where. */
int tok_set_token(vene_tokenizer *t, int32_t id, const char *piece, int raw, vene_error *err);
/* Appends the merge of pieces a and b (lengths given) at the next rank. */
int tok_add_merge(vene_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                  vene_error *err);
/* After the vocab and merges are in: byte tokens, decoded bytes, the regex. `file`
 * names the vocab for messages. */
int tok_finish(vene_tokenizer *t, const char *file, vene_error *err);

/* WordLevel models (tok_wordlevel.c). _is takes tokenizer.json's "model" object; _finish
 * (its root, once the vocab and added tokens are in t) sets t->wl. */
int tok_wordlevel_is(const void *model_json);
int tok_wordlevel_finish(vene_tokenizer *t, const void *root_json, const char *file, vene_error *err);
int tok_wordlevel_encode(const vene_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                         vene_error *err);
int tok_wordlevel_decode(const vene_tokenizer *t, const int32_t *ids, size_t n_ids, char **text, size_t *len,
                         vene_error *err);
void tok_wordlevel_free(tok_wordlevel *w);

#endif
