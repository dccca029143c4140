/* A growing text buffer written out atomically, for the facts corpus files. */
#ifndef VENE_DATA_FACTS_IO_H
#define VENE_DATA_FACTS_IO_H

#include <stddef.h>

#include "vene.h"

typedef struct facts_buf {
    char *p;
    size_t n, cap;
    int oom; /* an append failed: facts_buf_save reports it */
} facts_buf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void facts_buf_printf(facts_buf *b, const char *fmt, ...);
/* Writes the buffer to path through a temporary file and a rename, then frees it. */
int facts_buf_save(facts_buf *b, const char *path, vene_error *err);

#endif
