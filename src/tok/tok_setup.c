/* What a loaded vocab needs before it can encode: GPT-2's byte alphabet (each token's
 * decoded bytes, each byte's token) and the pre-tokenizer regex. */
#include "tok/tok_internal.h"

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

/* ---------------------------------------------------------------- the regex */

/* GPT-2's pattern:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with \s spelled out as Unicode White_Space, which is what Python's `regex` module (used
 * by OpenAI's encoder) matches; PCRE2's UCP \s adds U+180E, which is no longer White_Space
 * (Unicode 6.3 made it a format character). \p{L} and \p{N} come from PCRE2's Unicode
 * tables (14.0 in PCRE2 10.42): characters assigned later count as neither.
 *
 * Invalid UTF-8: compiled with PCRE2_MATCH_INVALID_UTF, an invalid sequence matches no
 * pattern item and no match crosses it. Every valid character matches some
 * alternative, so the bytes between two matches are exactly the invalid ones; each such
 * run becomes a word of its own, merged like any other. Valid runs thus split exactly as
 * the reference splits them, and arbitrary bytes still encode and decode back, without
 * a separate UTF-8 validation pass. */
#define WS "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
static const char gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+"
                                   "|[" WS "]+(?![^" WS "])|[" WS "]+";

static int compile_regex(vene_tokenizer *t, vene_error *err) {
    int code;
    PCRE2_SIZE at;
    t->re = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &at, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "pre-tokenizer regex: %s at offset %zu",
                           (const char *)msg, (size_t)at);
    }
    /* JIT is only a speed-up; a PCRE2 built without it still matches the same. */
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE);
    return VENE_OK;
}

/* ---------------------------------------------------------------- finishing a load */

int tok_finish(vene_tokenizer *t, const char *file, vene_error *err) {
    uint32_t cp_of[256];
    int16_t byte_of[TOK_ALPHABET_END];
    byte_alphabet(cp_of, byte_of);
    for (int b = 0; b < 256; b++) {
        char s[3];
        size_t n = utf8_put(cp_of[b], s);
        s[n] = '\0';
        t->byte_id[b] = tok_strmap_get(&t->vocab, s, (uint32_t)n);
        if (t->byte_id[b] < 0)
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s: no token for byte 0x%02x (\"%s\"): not a byte-level BPE vocab",
                               file, b, s);
    }
    /* Spell out what each token decodes to once, so decoding is a copy. A piece with a
     * character outside the alphabet can't be byte-level; it decodes as its own text. */
    char *buf = NULL;
    size_t cap = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_token *tk = &t->tok[id];
        if (!tk->piece || tk->bytes) continue;
        size_t len = strlen(tk->piece), n = 0;
        if (len + 1 > cap) {
            char *nb = realloc(buf, cap = len + 64);
            if (!nb) {
                free(buf);
                return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            }
            buf = nb;
        }
        const unsigned char *p = (const unsigned char *)tk->piece;
        while (*p) {
            uint32_t cp = 0;
            size_t k = utf8_get(p, &cp);
            if (!k || cp >= TOK_ALPHABET_END || byte_of[cp] < 0) break;
            buf[n++] = (char)byte_of[cp];
            p += k;
        }
        if (*p) { /* not byte-level */
            tk->bytes = tk->piece;
            tk->n_bytes = (uint32_t)len;
        } else if (!(tk->bytes = tok_arena_dup(&t->arena, buf, n))) {
            free(buf);
            return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        } else {
            tk->n_bytes = (uint32_t)n;
        }
    }
    free(buf);
    return compile_regex(t, err);
}
