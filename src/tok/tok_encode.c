/* Encoding: added tokens are cut out of the raw text first; each stretch between them is
 * rewritten (normalizers, Metaspace), split by the pre-tokenizer regexes in turn, and
 * each piece goes through the BPE model (tok_bpe.c). BOS/EOS come last. */
#include "tok/tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct pipe {
    const vene_tokenizer *t;
    tok_enc *e;
    pcre2_match_data *md[TOK_MAX_SPLITS];
    char *buf[2];
    size_t cap[2];
    vene_error *err;
} pipe;

static int oom(pipe *p) { return vene_errorf(p->err, VENE_ERR_MEMORY, "vene_tokenize: out of memory"); }

/* ---------------------------------------------------------------- rewrites */

/* Room for n bytes in ping-pong buffer `which`. */
static char *room(pipe *p, int which, size_t n) {
    if (n + 1 > p->cap[which]) {
        size_t cap = n + 1 > 2 * p->cap[which] ? n + 1 : 2 * p->cap[which];
        char *b = realloc(p->buf[which], cap);
        if (!b) return NULL;
        p->buf[which] = b, p->cap[which] = cap;
    }
    return p->buf[which];
}

static int starts_with(const char *s, size_t n, const tok_op *op) {
    return n >= op->to_len && memcmp(s, op->to, op->to_len) == 0;
}

/* Applies the rewrites to one stretch; *out is the text itself or one of p's buffers. */
static int rewrite(pipe *p, const char *s, size_t n, int at_start, const char **out, size_t *out_n) {
    int which = 0;
    for (int k = 0; k < p->t->n_ops; k++) {
        const tok_op *op = &p->t->ops[k];
        char *d;
        size_t m = 0;
        if (op->kind == TOK_OP_REPLACE) {
            if (!op->from_len) continue;
            size_t hits = 0;
            for (size_t i = 0; i + op->from_len <= n;)
                if (memcmp(s + i, op->from, op->from_len) == 0) hits++, i += op->from_len;
                else i++;
            if (!hits) continue;
            if (!(d = room(p, which, n + hits * op->to_len))) return -1;
            for (size_t i = 0; i < n;) {
                if (i + op->from_len <= n && memcmp(s + i, op->from, op->from_len) == 0) {
                    memcpy(d + m, op->to, op->to_len);
                    m += op->to_len, i += op->from_len;
                } else {
                    d[m++] = s[i++];
                }
            }
        } else if (op->kind == TOK_OP_NFC) {
            size_t len;
            char *nfc = tok_nfc(s, n, &len);
            if (!nfc || !(d = room(p, which, len))) return free(nfc), -1;
            memcpy(d, nfc, len);
            free(nfc);
            m = len;
        } else {
            int want = n > 0 && (op->kind == TOK_OP_PREPEND ||
                                 (!starts_with(s, n, op) && (op->kind == TOK_OP_PREPEND_UNLESS || at_start)));
            if (!want) continue;
            if (!(d = room(p, which, n + op->to_len))) return -1;
            memcpy(d, op->to, op->to_len);
            memcpy(d + op->to_len, s, n);
            m = n + op->to_len;
        }
        s = d, n = m;
        which ^= 1;
    }
    *out = s, *out_n = n;
    return 0;
}

/* ---------------------------------------------------------------- splitting */

static int word(pipe *p, const char *s, size_t n) {
    int rc = tok_enc_word(p->e, s, n);
    if (rc == -1) return oom(p);
    if (rc == -2) {
        const char *c;
        size_t k = tok_enc_unknown(p->e, &c);
        return vene_errorf(p->err, VENE_ERR_RANGE,
                           "vene_tokenize: character \"%.*s\" is not in the vocab, which has no byte tokens "
                           "and no unknown token", (int)k, c);
    }
    return VENE_OK;
}

/* Split step k: each match is a piece, and so is each run of text between matches (in
 * the patterns we know, such runs are invalid UTF-8). Each piece goes to step k + 1. */
static int split(pipe *p, int k, const char *s, size_t n) {
    if (k == p->t->n_splits) return word(p, s, n);
    int last = k + 1 == p->t->n_splits;
    for (size_t pos = 0; pos < n;) {
        int m = pcre2_match(p->t->re[k], (PCRE2_SPTR)s, n, pos, PCRE2_NOTEMPTY, p->md[k], NULL);
        size_t ms = n, me = n;
        if (m >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md[k]);
            ms = ov[0], me = ov[1];
        } else if (m != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            return vene_errorf(p->err, VENE_ERR_UNSUPPORTED, "vene_tokenize: pre-tokenizer failed at byte %zu: %s",
                               pos, (const char *)msg);
        }
        if (me <= ms) ms = me = n; /* no empty matches (PCRE2_NOTEMPTY); be safe */
        int rc = ms <= pos ? VENE_OK : last ? word(p, s + pos, ms - pos) : split(p, k + 1, s + pos, ms - pos);
        if (!rc && me > ms) rc = last ? word(p, s + ms, me - ms) : split(p, k + 1, s + ms, me - ms);
        if (rc) return rc;
        pos = me;
    }
    return VENE_OK;
}

static int stretch(pipe *p, const char *s, size_t n, int at_start) {
    if (n == 0) return VENE_OK;
    const char *r;
    size_t rn;
    if (rewrite(p, s, n, at_start, &r, &rn)) return oom(p);
    return split(p, 0, r, rn);
}

/* ---------------------------------------------------------------- added tokens */

static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* The leftmost added token at or after `from` (the longest there), or NULL. */
static const tok_added *find_added(const vene_tokenizer *t, const char *s, size_t n, size_t from, unsigned flags,
                                   size_t *at) {
    for (size_t i = from; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        for (int32_t k = t->added_at[b]; k < t->added_at[b + 1]; k++) {
            const tok_added *a = &t->added[k];
            if (a->special && !(flags & VENE_TOK_PARSE_SPECIAL)) continue;
            if (a->len <= n - i && memcmp(s + i, a->text, a->len) == 0) {
                *at = i;
                return a;
            }
        }
    }
    return NULL;
}

static int encode(pipe *p, const char *text, size_t len, unsigned flags) {
    const vene_tokenizer *t = p->t;
    if ((flags & VENE_TOK_ADD_SPECIAL) && tok_enc_push(p->e, t->prefix, (size_t)t->n_prefix)) return oom(p);
    for (size_t pos = 0;;) {
        size_t at = len;
        int any = (flags & VENE_TOK_PARSE_SPECIAL) ? t->n_added > 0 : t->n_added_plain > 0;
        const tok_added *a = any ? find_added(t, text, len, pos, flags, &at) : NULL;
        size_t end = at;
        if (a && a->lstrip)
            while (end > pos && is_space(text[end - 1])) end--;
        int rc = stretch(p, text + pos, end - pos, pos == 0);
        if (rc) return rc;
        if (!a) break;
        if (tok_enc_push(p->e, &a->id, 1)) return oom(p);
        pos = at + a->len;
        if (a->rstrip)
            while (pos < len && is_space(text[pos])) pos++;
    }
    if ((flags & VENE_TOK_ADD_SPECIAL) && tok_enc_push(p->e, t->suffix, (size_t)t->n_suffix)) return oom(p);
    return VENE_OK;
}

int vene_tokenize_ex(const vene_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids,
                     size_t *n_ids, vene_error *err) {
    if (!t || !ids || !n_ids || (!text && len))
        return vene_errorf(err, VENE_ERR_ARG, "vene_tokenize: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (flags & ~(unsigned)(VENE_TOK_ADD_SPECIAL | VENE_TOK_PARSE_SPECIAL))
        return vene_errorf(err, VENE_ERR_ARG, "vene_tokenize: unknown flags 0x%x", flags);
    if (t->wl) return tok_wordlevel_encode(t, text ? text : "", len, ids, n_ids, err);
    if (len > INT32_MAX)
        return vene_errorf(err, VENE_ERR_RANGE, "vene_tokenize: text of %zu bytes is over the 2 GiB limit", len);
    pipe p = {.t = t, .e = tok_enc_new(t), .err = err};
    int rc = p.e ? VENE_OK : oom(&p);
    for (int k = 0; k < t->n_splits && !rc; k++)
        if (!(p.md[k] = pcre2_match_data_create_from_pattern(t->re[k], NULL))) rc = oom(&p);
    if (!rc) rc = encode(&p, text ? text : "", len, flags);
    if (!rc && !(*ids = tok_enc_take(p.e, n_ids))) rc = oom(&p);
    for (int k = 0; k < t->n_splits; k++) pcre2_match_data_free(p.md[k]);
    free(p.buf[0]), free(p.buf[1]);
    tok_enc_free(p.e);
    return rc;
}

int vene_tokenize(const vene_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids,
                  vene_error *err) {
    return vene_tokenize_ex(t, text, len, 0, ids, n_ids, err);
}
