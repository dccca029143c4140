#include "data/facts_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/atomic.h"


int facts_buf_save(facts_buf *b, const char *path, vene_error *err) {
    int rc = b->oom ? vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path)
                    : vene_write_atomic(path, b->p ? b->p : "", b->n, err);
    free(b->p);
    memset(b, 0, sizeof *b);
    return rc;
}
