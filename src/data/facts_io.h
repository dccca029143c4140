/* A growing text buffer written out atomically, for the facts corpus files. */
#ifndef VENE_DATA_FACTS_IO_H
#define VENE_DATA_FACTS_IO_H

#include <stddef.h>

#include "core/strbuf.h"
#include "vene.h"

typedef vene_strbuf facts_buf; /* core/strbuf.h */

#define facts_buf_printf vene_strbuf_printf
/* Writes the buffer to path through a temporary file and a rename, then frees it. */
int facts_buf_save(facts_buf *b, const char *path, vene_error *err);

#endif
