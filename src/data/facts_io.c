#include "data/facts_io.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

void facts_buf_printf(facts_buf *b, const char *fmt, ...) {
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
        if (b->p && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n <= (size_t)k) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
}

int facts_buf_save(facts_buf *b, const char *path, vene_error *err) {
    int rc = VENE_OK;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (b->oom) rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    FILE *f = rc ? NULL : fopen(tmp, "wb");
    if (!rc && !f) rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    if (f) {
        int ok = fwrite(b->p ? b->p : "", 1, b->n, f) == b->n;
        ok &= fclose(f) == 0;
        if (!ok || rename(tmp, path) != 0) {
            rc = vene_errorf(err, VENE_ERR_IO, "%s: write failed: %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    free(b->p);
    memset(b, 0, sizeof *b);
    return rc;
}
