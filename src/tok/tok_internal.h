/* The tokenizer object, shared by the loaders (tok_load.c: files and folders, tok_json.c
 * and tok_pipeline.c: tokenizer.json, tok_gguf.c: GGUF vocabularies), the set-up
 * (tok_setup.c, tok_regex.c) and the encoder/decoder (tok_encode.c, tok_bpe.c,
 * tok_decode.c).
 *
 * One model covers the BPE tokenizers in use: a vocabulary, ranked merges, and how the
 * first symbols of a word are made (each byte through GPT-2's byte alphabet, or each
 * UTF-8 character looked up in the vocabulary with SentencePiece's byte fallback). What
 * comes before (added tokens, normalizers, pre-tokenizer splits) and after (BOS/EOS)
 * is data in the struct, filled from tokenizer.json or a GGUF file.
 *
 * Everything here is read-only once loading finishes, so one tokenizer can serve many
 * threads: per-call scratch (match data, word cache) lives on the call. */
#ifndef VENE_TOK_INTERNAL_H
#define VENE_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "tok/tok_map.h"

/* Ids above this are rejected while loading: it bounds the id table a hostile or
 * corrupt vocab file can make us allocate. */
#define TOK_MAX_ID (1 << 24)
#define TOK_MAX_SPLITS 8 /* regex splits in a pre-tokenizer sequence */
#define TOK_MAX_OPS 8    /* text rewrites before splitting */
#define TOK_MAX_AFFIX 4  /* special tokens added before / after a text */

/* Token types, numbered as llama.cpp's GGUF files number them. */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };

typedef struct tok_merge {
    int32_t left, right, result; /* token ids */
    int32_t rank;                /* lower merges first; equal ranks go left to right */
} tok_merge;

typedef struct tok_wordlevel tok_wordlevel;

typedef struct tok_token {
    const char *piece; /* as in the vocab file, NUL-terminated; NULL for an unused id */
    const char *bytes; /* what the token decodes to (may contain NULs) */
    uint32_t n_bytes;
    uint8_t type;    /* TOK_NORMAL, ... */
    uint8_t special; /* left out by VENE_TOK_SKIP_SPECIAL */
} tok_token;

/* A token matched in the raw text before anything else runs (Hugging Face's added
 * tokens, llama.cpp's control and user-defined tokens). */
typedef struct tok_added {
    const char *text; /* what it matches (in the arena) */
    uint32_t len;
    int32_t id;
    uint8_t special; /* matched only with VENE_TOK_PARSE_SPECIAL */
    uint8_t lstrip, rstrip; /* swallows the whitespace before / after it */
} tok_added;

/* How a word becomes its first symbols. */
typedef enum tok_symbols {
    TOK_SYM_BYTES, /* each byte is the token of its GPT-2 alphabet character */
    TOK_SYM_CHARS  /* each UTF-8 character is the token of that text, else byte fallback or unk */
} tok_symbols;

/* Text rewrites applied to each stretch of text between added tokens, in order:
 * Hugging Face's normalizers and the rewriting half of Metaspace/ByteLevel. */
typedef enum tok_op_kind {
    TOK_OP_REPLACE,         /* every `from` becomes `to` */
    TOK_OP_PREPEND,         /* `to` in front of non-empty text (normalizers.Prepend) */
    TOK_OP_PREPEND_UNLESS,  /* `to` in front unless the text starts with it (Metaspace "always") */
    TOK_OP_PREPEND_FIRST,   /* as above, only for the stretch at the start of the text ("first") */
    TOK_OP_NFC              /* Unicode canonical composition (tok_nfc.c) */
} tok_op_kind;

typedef struct tok_op {
    tok_op_kind kind;
    const char *from, *to; /* in the arena */
    uint32_t from_len, to_len;
} tok_op;

struct vene_tokenizer {
    tok_wordlevel *wl;    /* a WordLevel model (tok_wordlevel.c); NULL otherwise */
    int32_t n_vocab;      /* highest id + 1 */
    tok_token *tok;       /* [n_vocab] */
    tok_strmap vocab;     /* piece -> id */
    tok_strmap by_bytes;  /* decoded bytes -> id of normal tokens; for ignore_merges on byte symbols */
    tok_pairmap pairs;    /* (left id, right id) -> index into merges */
    tok_merge *merges;
    int32_t n_merges, cap_merges;
    int rank_is_index;    /* merges[r] has rank r (merge lists; not SentencePiece scores) */
    /* Bit (a << 8 | b) is set when some token's text has a character ending in byte a
     * followed by one ending in byte b (BYTES: byte a then byte b). Where the first
     * symbols of a word meet with the bit clear, no merge can ever join them, so the
     * merge loop runs on the pieces between such places (small heaps for long words). */
    uint8_t span[65536 / 8];

    tok_symbols symbols;
    int32_t byte_id[256];  /* BYTES: token of each byte; CHARS: its <0xXX> token or -1 */
    int byte_fallback;     /* CHARS: unknown characters become their <0xXX> tokens */
    int fuse_unk;          /* consecutive unknowns give one unk */
    int ignore_merges;     /* a word that is a token is that token (Llama 3) */
    int32_t unk_id, bos_id, eos_id, pad_id; /* -1 when absent */

    tok_added *added;          /* sorted by first byte, then longest first */
    int32_t n_added, cap_added;
    int32_t added_at[257];     /* added tokens starting with byte b: [added_at[b], added_at[b+1]) */
    int32_t n_added_plain;     /* of them not special: matched even without VENE_TOK_PARSE_SPECIAL */

    tok_op ops[TOK_MAX_OPS];
    int n_ops;
    char *patterns[TOK_MAX_SPLITS]; /* PCRE2 syntax (translated), compiled by tok_finish */
    int literal[TOK_MAX_SPLITS];    /* the pattern is a plain string */
    int n_splits;
    pcre2_code *re[TOK_MAX_SPLITS];

    int32_t prefix[TOK_MAX_AFFIX], suffix[TOK_MAX_AFFIX]; /* added by VENE_TOK_ADD_SPECIAL */
    int n_prefix, n_suffix;

    /* Decoding: each token's bytes are spelled out by tok_finish from these. */
    int dec_byte_level;        /* pieces are GPT-2 alphabet strings */
    int dec_byte_fallback;     /* "<0xXX>" pieces are that byte */
    const char *dec_from, *dec_to; /* one Replace (e.g. "▁" -> " "); NULL for none */
    int dec_strip_first;       /* drop one leading space of the first token (Metaspace) */
    int dec_strip_start;       /* drop up to this many leading spaces of the text (Strip) */

    char kind[48];   /* "byte-level BPE", ... for vene_tokenizer_get_info */
    char source[16]; /* "tokenizer.json", "gguf", "vocab.json" */
    tok_arena arena; /* pieces, decoded bytes, op strings */
};

/* ---- building (tok_load.c) */

vene_tokenizer *tok_new(void);
/* Gives id `id` the piece `piece` (len bytes, no NUL inside) of type `type`. The caller
 * checked 0 <= id < t->n_vocab. The message says what clashed; the caller adds where. */
int tok_set_token(vene_tokenizer *t, int32_t id, const char *piece, size_t len, int type, vene_error *err);
/* Appends the merge of pieces a and b at the next rank. */
int tok_add_merge(vene_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, vene_error *err);
/* Adds merge left+right -> result at `rank`, unless the pair already has one. */
int tok_add_merge_ids(vene_tokenizer *t, int32_t left, int32_t right, int32_t result, int32_t rank,
                      vene_error *err);
/* Makes id an added token matched as `text` in raw text (usually its piece; Hugging Face
 * may give a vocab token a different added spelling). */
int tok_add_added(vene_tokenizer *t, int32_t id, const char *text, size_t len, int special, int lstrip, int rstrip,
                  vene_error *err);
int tok_add_op(vene_tokenizer *t, tok_op_kind kind, const char *from, size_t from_len, const char *to,
               size_t to_len, vene_error *err);
/* Reads a whole file (NUL-terminated copy). */
int tok_read_file(const char *path, char **buf, size_t *len, vene_error *err);
/* Parses a JSON file into *out (a cJSON *; the caller deletes it). Messages give line:col. */
int tok_parse_json(const char *path, void **out, vene_error *err);

/* ---- merges from SentencePiece scores (tok_spm.c) */

/* Every split of every piece into two tokens becomes a merge ranked by the score of the
 * whole piece, higher first; equal scores tie, so they go left to right as in
 * SentencePiece. `scores` has t->n_vocab entries. */
int tok_merges_from_scores(vene_tokenizer *t, const float *scores, const char *file, vene_error *err);

/* ---- pre-tokenizer patterns (tok_regex.c) */

/* Patterns as Hugging Face's tokenizer.json files write them (Oniguruma syntax). */
extern const char tok_pattern_gpt2[], tok_pattern_llama3[], tok_pattern_qwen2[];
/* Adds a split step; `literal` for a plain string. The pattern is translated to PCRE2
 * (see tok_regex.c) and compiled by tok_finish. */
int tok_add_split(vene_tokenizer *t, const char *pattern, size_t len, int literal, vene_error *err);
int tok_compile_splits(vene_tokenizer *t, vene_error *err);

/* ---- finishing (tok_setup.c) */

/* After the vocab, merges and options are in: first symbols, decoded bytes, byte-level
 * lookups, added-token index, the regexes. `file` names the source for messages. */
int tok_finish(vene_tokenizer *t, const char *file, vene_error *err);

/* ---- loaders */

int tok_load_tokenizer_json(const char *path, const char *config_json, vene_tokenizer **out, vene_error *err);
int tok_load_gguf(const char *path, vene_tokenizer **out, vene_error *err);
typedef struct gguf_file gguf_file;
/* From an open GGUF file (io/gguf.h); also used by the fuzzers on in-memory files. */
int tok_from_gguf(const gguf_file *g, vene_tokenizer **out, vene_error *err);
/* Reads normalizer, pre_tokenizer and decoder of a tokenizer.json root (tok_pipeline.c). */
int tok_json_pipeline(vene_tokenizer *t, const void *root_json, const char *file, vene_error *err);

/* ---- encoding pieces (tok_bpe.c, tok_nfc.c) */

typedef struct tok_enc tok_enc;
tok_enc *tok_enc_new(const vene_tokenizer *t);
void tok_enc_free(tok_enc *e);
/* Appends the ids of one pre-tokenized word. Returns -1 when out of memory, -2 when a
 * character has no token, no byte tokens and there is no unk (tok_enc_unknown says which). */
int tok_enc_word(tok_enc *e, const char *w, size_t n);
size_t tok_enc_unknown(const tok_enc *e, const char **c);
int tok_enc_push(tok_enc *e, const int32_t *ids, size_t n);
/* Hands over the ids gathered so far (caller frees). */
int32_t *tok_enc_take(tok_enc *e, size_t *n);

/* NFC of s into a malloc'd buffer; invalid UTF-8 is kept as it is. NULL when out of memory. */
char *tok_nfc(const char *s, size_t n, size_t *out_len);

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
