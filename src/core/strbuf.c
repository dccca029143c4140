#include "core/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for need bytes (doubling); on failure oom is set and 0 returned. */
static int grow(vene_strbuf *b, size_t need) {
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) {
        b->oom = 1;
        return 0;
    }
    b->p = q;
    b->cap = cap;
    return 1;
}

void vene_strbuf_printf(vene_strbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        if (!grow(b, b->n + (size_t)k + 1)) return;
    }
}

void vene_strbuf_put(vene_strbuf *b, const char *s, size_t len) {
    if (b->oom || !grow(b, b->n + len + 1)) return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

void vene_strbuf_str(vene_strbuf *b, const char *s) { vene_strbuf_put(b, s, strlen(s)); }
