/* Whole files written atomically: a temporary file in the same directory, then a rename,
 * so a reader never sees half a file. */
#ifndef VENE_IO_ATOMIC_H
#define VENE_IO_ATOMIC_H

#include <stddef.h>

#include "vene.h"

/* Write n bytes to path (mode 0644); on failure path is untouched. */
int vene_write_atomic(const char *path, const void *data, size_t n, vene_error *err);

#endif
