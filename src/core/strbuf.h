/* A growable string built with printf; a failed append sets oom and later appends do
 * nothing, so callers check once at the end. The owner frees p. */
#ifndef VENE_CORE_STRBUF_H
#define VENE_CORE_STRBUF_H

#include <stddef.h>

#include "core/error.h"

typedef struct vene_strbuf {
    char *p;
    size_t n, cap;
    int oom;
} vene_strbuf;

void vene_strbuf_printf(vene_strbuf *b, const char *fmt, ...) VENE_PRINTF(2, 3);
/* Append len bytes of s (which need not be terminated); p stays NUL-terminated. */
void vene_strbuf_put(vene_strbuf *b, const char *s, size_t len);
/* Append the string s. */
void vene_strbuf_str(vene_strbuf *b, const char *s);

#endif
