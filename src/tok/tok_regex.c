/* Pre-tokenizer patterns: the ones llama.cpp names in GGUF files, and the translation of
 * Hugging Face's patterns (Oniguruma syntax, which tokenizers compiles) to PCRE2.
 *
 * The two dialects agree on everything these patterns use (\p{L}, \p{N}, (?i:...),
 * {1,3}, lookahead, classes) except \s: Oniguruma's Unicode \s is the White_Space
 * property, while PCRE2's UCP \s also takes U+180E (White_Space until Unicode 6.3). So
 * \s and \S are spelled out as White_Space. \p{L} and \p{N} come from PCRE2's Unicode
 * tables (14.0 in PCRE2 10.42): characters assigned later count as neither.
 *
 * Invalid UTF-8: compiled with PCRE2_MATCH_INVALID_UTF, an invalid sequence matches no
 * pattern item and no match crosses it. Every valid character matches some alternative
 * of these patterns, so the bytes between two matches are exactly the invalid ones; the
 * splitter makes each such run a word of its own. Valid runs thus split exactly as the
 * reference splits them, and arbitrary bytes still encode and decode back. */
#include "tok/tok_internal.h"

#include <stdlib.h>
#include <string.h>

const char tok_pattern_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char tok_pattern_llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
                                  "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char tok_pattern_qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
                                 "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Unicode White_Space (Unicode 14), as the body of a PCRE2 class. */
static const char white_space[] =
    "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

typedef struct out_buf {
    char *p;
    size_t n, cap;
} out_buf;

static int put(out_buf *o, const char *s, size_t n) {
    if (o->cap - o->n < n + 1) {
        size_t cap = (o->cap + n + 1) * 2;
        char *p = realloc(o->p, cap);
        if (!p) return -1;
        o->p = p, o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
    return 0;
}

#define PUTS(o, s) put((o), (s), strlen(s))

/* Oniguruma pattern -> PCRE2 pattern (malloc'd), or NULL when out of memory. */
static char *translate(const char *pat, size_t len) {
    out_buf o = {0};
    int in_class = 0, bad = put(&o, "", 0);
    for (size_t i = 0; i < len && !bad;) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            char e = pat[i + 1];
            if (e == 'Q') { /* \Q...\E is literal text: copy it through untouched */
                const char *end = NULL;
                for (size_t j = i + 2; j + 1 < len && !end; j++)
                    if (pat[j] == '\\' && pat[j + 1] == 'E') end = pat + j + 2;
                size_t k = end ? (size_t)(end - (pat + i)) : len - i;
                bad = put(&o, pat + i, k);
                i += k;
                continue;
            }
            if (e == 's' && in_class) bad = PUTS(&o, white_space);
            else if (e == 's') bad = PUTS(&o, "[") || PUTS(&o, white_space) || PUTS(&o, "]");
            else if (e == 'S' && !in_class) bad = PUTS(&o, "[^") || PUTS(&o, white_space) || PUTS(&o, "]");
            else bad = put(&o, pat + i, 2);
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            size_t k = 1;
            if (i + k < len && pat[i + k] == '^') k++;
            if (i + k < len && pat[i + k] == ']') k++; /* a leading ] is a member */
            bad = put(&o, pat + i, k);
            i += k;
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && pat[i + 1] == ':') { /* [:alpha:] */
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < len && !end; j++)
                if (pat[j] == ':' && pat[j + 1] == ']') end = pat + j + 2;
            size_t k = end ? (size_t)(end - (pat + i)) : 1;
            bad = put(&o, pat + i, k);
            i += k;
            continue;
        }
        if (in_class && c == ']') in_class = 0;
        bad = put(&o, &c, 1);
        i++;
    }
    if (bad) {
        free(o.p);
        return NULL;
    }
    return o.p;
}

int tok_add_split(vene_tokenizer *t, const char *pattern, size_t len, int literal, vene_error *err) {
    if (t->n_splits == TOK_MAX_SPLITS)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "more than %d pre-tokenizer splits", TOK_MAX_SPLITS);
    if (memchr(pattern, 0, len)) return vene_errorf(err, VENE_ERR_FORMAT, "pre-tokenizer pattern contains a NUL");
    char *p = literal ? malloc(len + 1) : translate(pattern, len);
    if (!p) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (literal) {
        memcpy(p, pattern, len);
        p[len] = '\0';
    }
    t->patterns[t->n_splits] = p;
    t->literal[t->n_splits] = literal;
    t->n_splits++;
    return VENE_OK;
}

int tok_compile_splits(vene_tokenizer *t, vene_error *err) {
    for (int i = 0; i < t->n_splits; i++) {
        if (t->re[i]) continue;
        int code;
        PCRE2_SIZE at;
        uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (t->literal[i] ? PCRE2_LITERAL : PCRE2_UCP);
        t->re[i] = pcre2_compile((PCRE2_SPTR)t->patterns[i], PCRE2_ZERO_TERMINATED, opts, &code, &at, NULL);
        if (!t->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            return vene_errorf(err, VENE_ERR_UNSUPPORTED, "pre-tokenizer pattern \"%.200s\": %s at offset %zu",
                               t->patterns[i], (const char *)msg, (size_t)at);
        }
        /* JIT is only a speed-up; a PCRE2 built without it still matches the same. */
        pcre2_jit_compile(t->re[i], PCRE2_JIT_COMPLETE);
    }
    return VENE_OK;
}
