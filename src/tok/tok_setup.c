/* What a loaded vocab needs before it can encode: the first symbols of a word (GPT-2's
 * byte alphabet or SentencePiece's <0xXX> byte tokens), each token's decoded bytes, the
 * added-token index and the pre-tokenizer regexes. */
#include "tok/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- byte alphabet */

/* GPT-2 gives every byte a visible, non-space character so that BPE pieces are
 * printable strings: bytes that are printable Latin-1 stand for themselves, the other
 * 68 take U+0100.. in byte order. */
static int byte_is_self(int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

#define TOK_ALPHABET_END (256 + 68) /* one past the highest code point the alphabet uses */

static void byte_alphabet(uint32_t cp_of[256], int16_t byte_of[TOK_ALPHABET_END]) {
    for (int i = 0; i < TOK_ALPHABET_END; i++) byte_of[i] = -1;
    int shifted = 0;
    for (int b = 0; b < 256; b++) {
        cp_of[b] = byte_is_self(b) ? (uint32_t)b : (uint32_t)(256 + shifted++);
        byte_of[cp_of[b]] = (int16_t)b;
    }
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6)); /* the alphabet stays below U+0800 */
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* Next code point of a NUL-terminated piece; 0 bytes consumed when malformed. Only the
 * 1- and 2-byte forms can belong to the alphabet, so longer ones just need skipping. */
static size_t utf8_get(const unsigned char *s, uint32_t *cp) {
    if (s[0] < 0x80) return *cp = s[0], 1;
    int n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (!n || s[0] > 0xF4) return 0;
    uint32_t c = s[0] & (0x3F >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < (n == 2 ? 0x80u : n == 3 ? 0x800u : 0x10000u)) return 0; /* overlong */
    *cp = c;
    return (size_t)n;
}

/* ---------------------------------------------------------------- decoded bytes */

/* "<0xXX>" (upper-case hex, as SentencePiece writes byte pieces): the byte, else -1. */
static int byte_piece(const char *p) {
    static const char hex[] = "0123456789ABCDEF";
    if (strncmp(p, "<0x", 3) != 0 || !p[3] || !p[4] || strcmp(p + 5, ">") != 0) return -1;
    const char *hi = strchr(hex, p[3]), *lo = strchr(hex, p[4]);
    return hi && lo ? (int)((hi - hex) << 4 | (lo - hex)) : -1;
}

typedef struct scratch {
    char *buf;
    size_t cap;
} scratch;

static char *reserve(scratch *s, size_t n) {
    if (n <= s->cap) return s->buf;
    char *b = realloc(s->buf, n);
    if (!b) return NULL;
    s->buf = b, s->cap = n;
    return b;
}

/* GPT-2 alphabet text back to bytes; returns 0 when the piece is not alphabet text. */
static int alphabet_decode(const char *piece, const int16_t *byte_of, char *out, size_t *n) {
    const unsigned char *p = (const unsigned char *)piece;
    size_t k = 0;
    while (*p) {
        uint32_t cp = 0;
        size_t used = utf8_get(p, &cp);
        if (!used || cp >= TOK_ALPHABET_END || byte_of[cp] < 0) return 0;
        out[k++] = (char)byte_of[cp];
        p += used;
    }
    *n = k;
    return 1;
}

/* Piece with every dec_from replaced by dec_to. */
static size_t replace_decode(const vene_tokenizer *t, const char *piece, size_t len, char *out) {
    size_t fl = strlen(t->dec_from), tl = strlen(t->dec_to), k = 0;
    for (size_t i = 0; i < len;) {
        if (fl && i + fl <= len && memcmp(piece + i, t->dec_from, fl) == 0) {
            memcpy(out + k, t->dec_to, tl);
            k += tl, i += fl;
        } else {
            out[k++] = piece[i++];
        }
    }
    return k;
}

static int spell_tokens(vene_tokenizer *t, const int16_t *byte_of, vene_error *err) {
    scratch s = {0};
    size_t grow = t->dec_from && strlen(t->dec_to) > strlen(t->dec_from) ? strlen(t->dec_to) : 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_token *tk = &t->tok[id];
        if (!tk->piece) continue;
        size_t len = strlen(tk->piece), n = len;
        int b = byte_piece(tk->piece);
        const char *src = tk->piece;
        if (tk->type != TOK_NORMAL && tk->type != TOK_BYTE) {
            /* control and user-defined tokens decode as their text */
        } else if (b >= 0 && (tk->type == TOK_BYTE || t->dec_byte_fallback)) {
            char one = (char)b;
            if (!(src = tok_arena_dup(&t->arena, &one, 1))) break;
            n = 1;
        } else if (t->dec_byte_level || t->dec_from) {
            char *out = reserve(&s, len * grow + 1);
            if (!out) break;
            if (t->dec_byte_level ? alphabet_decode(tk->piece, byte_of, out, &n)
                                  : (n = replace_decode(t, tk->piece, len, out), 1)) {
                if (!(src = tok_arena_dup(&t->arena, out, n))) break;
            } else {
                n = len; /* a piece outside the alphabet can't be byte-level: its own text */
            }
        }
        tk->bytes = src;
        tk->n_bytes = (uint32_t)n;
        tk->special = tk->type == TOK_CONTROL || tk->type == TOK_UNKNOWN;
        if (t->ignore_merges && t->symbols == TOK_SYM_BYTES && tk->type == TOK_NORMAL &&
            tok_strmap_put(&t->by_bytes, tk->bytes, tk->n_bytes, id, NULL) < 0)
            break;
    }
    free(s.buf);
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].piece && !t->tok[id].bytes) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    return VENE_OK;
}

/* ---------------------------------------------------------------- span bits */

static void mark_spans(vene_tokenizer *t) {
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const tok_token *tk = &t->tok[id];
        if (!tk->piece) continue;
        /* the text merges build: decoded bytes (BYTES) or the piece itself (CHARS) */
        const unsigned char *s = (const unsigned char *)(t->symbols == TOK_SYM_BYTES ? tk->bytes : tk->piece);
        size_t n = t->symbols == TOK_SYM_BYTES ? tk->n_bytes : strlen(tk->piece);
        int prev = -1; /* last byte of the previous character */
        for (size_t i = 0; i < n; i++) {
            int ends = t->symbols == TOK_SYM_BYTES || i + 1 == n || (s[i + 1] & 0xC0) != 0x80;
            if (!ends) continue;
            if (prev >= 0) t->span[(prev << 8 | s[i]) >> 3] |= (uint8_t)(1u << (s[i] & 7));
            prev = s[i];
        }
    }
}

/* ---------------------------------------------------------------- added tokens */

static int cmp_added(const void *x, const void *y) {
    const tok_added *a = x, *b = y;
    unsigned char fa = (unsigned char)a->text[0], fb = (unsigned char)b->text[0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : a->id > b->id;
}

static int index_added(vene_tokenizer *t, vene_error *err) {
    int32_t kept = 0;
    for (int32_t i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        if (a->id < 0 || a->id >= t->n_vocab || !t->tok[a->id].piece)
            return vene_errorf(err, VENE_ERR_FORMAT, "added token id %d has no token", a->id);
        if (a->special) t->tok[a->id].special = 1;
        if (!a->len) continue; /* an empty token can never match */
        t->n_added_plain += !a->special;
        t->added[kept++] = *a;
    }
    t->n_added = kept;
    if (kept) qsort(t->added, (size_t)kept, sizeof *t->added, cmp_added);
    int32_t i = 0;
    for (int b = 0; b <= 256; b++) {
        while (i < kept && (unsigned char)t->added[i].text[0] < b) i++;
        t->added_at[b] = i;
    }
    return VENE_OK;
}

/* ---------------------------------------------------------------- finishing a load */

int tok_finish(vene_tokenizer *t, const char *file, vene_error *err) {
    if (t->n_vocab <= 0) return vene_errorf(err, VENE_ERR_FORMAT, "%s: the vocab is empty", file);
    uint32_t cp_of[256];
    int16_t byte_of[TOK_ALPHABET_END];
    byte_alphabet(cp_of, byte_of);
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n;
        if (t->symbols == TOK_SYM_BYTES) n = utf8_put(cp_of[b], s);
        else n = (size_t)snprintf(s, sizeof s, "<0x%02X>", b);
        s[n] = '\0';
        t->byte_id[b] = tok_strmap_get(&t->vocab, s, (uint32_t)n);
        if (t->byte_id[b] < 0 && t->symbols == TOK_SYM_BYTES)
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s: no token for byte 0x%02x (\"%s\"): not a byte-level BPE vocab", file, b, s);
    }
    /* Special ids come from places that name ids (post-processors, GGUF keys): each must
     * be a token. */
    const int32_t special[] = {t->unk_id, t->bos_id, t->eos_id, t->pad_id};
    static const char *what[] = {"unknown-token", "BOS", "EOS", "padding"};
    for (int i = 0; i < 4 + t->n_prefix + t->n_suffix; i++) {
        int32_t id = i < 4 ? special[i] : i < 4 + t->n_prefix ? t->prefix[i - 4] : t->suffix[i - 4 - t->n_prefix];
        if (id >= t->n_vocab || (id >= 0 && !t->tok[id].piece) || (id < 0 && i >= 4))
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: %s id %d has no token", file,
                               i < 4 ? what[i] : "post-processor special token", id);
    }
    t->rank_is_index = 1;
    for (int32_t i = 0; i < t->n_merges && t->rank_is_index; i++) t->rank_is_index = t->merges[i].rank == i;
    int rc = spell_tokens(t, byte_of, err);
    if (!rc) mark_spans(t);
    if (!rc) rc = index_added(t, err);
    if (!rc) rc = tok_compile_splits(t, err);
    if (rc) return vene_error_prefix(err, "%s", file);
    return VENE_OK;
}
