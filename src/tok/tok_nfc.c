/* Unicode NFC (canonical decomposition, canonical ordering, canonical composition, as
 * UAX #15 describes them), for the NFC normalizer of Qwen2's and GPT-NeoX's
 * tokenizer.json. The data (Unicode 14) is in tok_nfc_table.c. Bytes that are not valid
 * UTF-8 pass through unchanged and split the text into runs normalized separately. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"
#include "tok/tok_nfc_table.h"

enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7,
       L_COUNT = 19, V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT };

static uint8_t ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    int lo = 0, hi = tok_nfc_n_ccc;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        uint32_t c = tok_nfc_ccc[mid] >> 8;
        if (c == cp) return (uint8_t)(tok_nfc_ccc[mid] & 0xFF);
        if (c < cp) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static const tok_nfc_decomp *decomp(uint32_t cp) {
    int lo = 0, hi = tok_nfc_n_decomp;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (tok_nfc_decomps[mid].cp == cp) return &tok_nfc_decomps[mid];
        if (tok_nfc_decomps[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* The primary composite of a + b, or 0. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE && b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    int lo = 0, hi = tok_nfc_n_comp;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        const tok_nfc_comp *c = &tok_nfc_comps[mid];
        if (c->first == a && c->second == b) return c->composite;
        if (c->first < a || (c->first == a && c->second < b)) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes left) and its code point; 0 if invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (s[0] < 0x80) return *cp = s[0], 1;
    size_t k = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (!k || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0) || (s[0] == 0xF0 && s[1] < 0x90) ||
        (s[0] == 0xF4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate or past U+10FFFF */
    uint32_t c = s[0] & (0x7F >> k);
    for (size_t i = 1; i < k; i++) c = c << 6 | (s[i] & 0x3F);
    *cp = c;
    return k;
}

static size_t utf8_encode(uint32_t c, char *o) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 63)), 2;
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 63)), o[2] = (char)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 63));
    o[2] = (char)(0x80 | (c >> 6 & 63)), o[3] = (char)(0x80 | (c & 63));
    return 4;
}

static size_t decompose(uint32_t cp, uint32_t *out) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE, t = s % T_COUNT;
        out[0] = L_BASE + s / N_COUNT;
        out[1] = V_BASE + (s % N_COUNT) / T_COUNT;
        if (t) out[2] = T_BASE + t;
        return t ? 3 : 2;
    }
    const tok_nfc_decomp *d = decomp(cp);
    if (!d) return out[0] = cp, 1;
    memcpy(out, tok_nfc_pool + d->off, d->len * sizeof *out);
    return d->len;
}

static int unstable(uint32_t cp) {
    if (cp < 0x300) return 0; /* the first range starts there */
    int lo = 0, hi = tok_nfc_n_unstable;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        uint32_t first = (uint32_t)(tok_nfc_unstable[mid] >> 32), last = (uint32_t)tok_nfc_unstable[mid];
        if (cp < first) hi = mid;
        else if (cp > last) lo = mid + 1;
        else return 1;
    }
    return 0;
}

typedef struct nfc_buf {
    char *out;
    size_t n, cap;
    uint32_t *cps, *buf;
    uint8_t *cls;
    size_t cap_cps;
} nfc_buf;

static int out_room(nfc_buf *b, size_t k) {
    if (b->cap - b->n >= k + 1) return 0;
    size_t cap = b->cap * 2 > b->n + k + 1 ? b->cap * 2 : b->n + k + 1;
    char *o = realloc(b->out, cap);
    if (!o) return -1;
    b->out = o, b->cap = cap;
    return 0;
}

/* NFC of the m code points in b->cps, appended to the output. */
static int nfc_chunk(nfc_buf *b, size_t m) {
    uint32_t *buf = b->buf;
    uint8_t *cls = b->cls;
    size_t k = 0;
    for (size_t i = 0; i < m; i++) k += decompose(b->cps[i], buf + k);
    for (size_t i = 0; i < k; i++) cls[i] = ccc(buf[i]);
    for (size_t i = 1; i < k; i++) /* canonical order: stable sort of each run of non-starters */
        for (size_t j = i; j > 0 && cls[j] && cls[j - 1] > cls[j]; j--) {
            uint32_t c = buf[j];
            uint8_t x = cls[j];
            buf[j] = buf[j - 1], cls[j] = cls[j - 1];
            buf[j - 1] = c, cls[j - 1] = x;
        }
    /* Compose each character with the last starter unless something between blocks it. */
    size_t starter = 0, n = k ? 1 : 0;
    int last = k && cls[0] ? 256 : 0;
    for (size_t i = 1; i < k; i++) {
        uint32_t c = buf[i], comp = last != 256 ? compose(buf[starter], c) : 0;
        int x = cls[i];
        if (comp && (last < x || last == 0)) {
            buf[starter] = comp;
            continue;
        }
        if (x == 0) starter = n;
        last = x;
        buf[n] = c;
        cls[n++] = (uint8_t)x;
    }
    if (out_room(b, 4 * n)) return -1;
    for (size_t i = 0; i < n; i++) b->n += utf8_encode(buf[i], b->out + b->n);
    return 0;
}

static int grow_cps(nfc_buf *b, size_t m) {
    if (m < b->cap_cps) return 0;
    size_t cap = 2 * m + 16, d = cap * tok_nfc_max_decomposition;
    uint32_t *cps = realloc(b->cps, cap * sizeof *cps);
    if (cps) b->cps = cps;
    uint32_t *buf = realloc(b->buf, d * sizeof *buf);
    if (buf) b->buf = buf;
    uint8_t *cls = realloc(b->cls, d);
    if (cls) b->cls = cls;
    if (!cps || !buf || !cls) return -1;
    b->cap_cps = cap;
    return 0;
}

char *tok_nfc(const char *s, size_t n, size_t *out_len) {
    const unsigned char *u = (const unsigned char *)s;
    nfc_buf b = {0};
    int bad = out_room(&b, n);
    for (size_t i = 0; i < n && !bad;) {
        /* A chunk: one character and the unstable ones after it. */
        uint32_t cp;
        size_t k = utf8_decode(u + i, n - i, &cp), j = i + k, m = 1;
        if (!k) { /* an invalid byte stays as it is */
            bad = out_room(&b, 1);
            if (!bad) b.out[b.n++] = s[i++];
            continue;
        }
        uint32_t next;
        for (size_t l; j < n && (l = utf8_decode(u + j, n - j, &next)) && unstable(next); j += l) m++;
        if (m == 1 && !unstable(cp)) {
            bad = out_room(&b, k);
            if (!bad) memcpy(b.out + b.n, s + i, k), b.n += k;
        } else if (!(bad = grow_cps(&b, m))) {
            m = 0;
            for (size_t p = i, l; p < j; p += l) l = utf8_decode(u + p, j - p, &b.cps[m++]);
            bad = nfc_chunk(&b, m);
        }
        i = j;
    }
    free(b.cps), free(b.buf), free(b.cls);
    if (bad) {
        free(b.out);
        return NULL;
    }
    b.out[b.n] = '\0';
    *out_len = b.n;
    return b.out;
}
