/* Error reporting shared by every layer: fill a caller-provided vene_error. */
#ifndef VENE_CORE_ERROR_H
#define VENE_CORE_ERROR_H

#include "vene.h"

#if defined(__GNUC__)
#define VENE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VENE_PRINTF(a, b)
#endif

/* Sets err (if non-NULL) to code and the formatted message; returns code. */
int vene_errorf(vene_error *err, int code, const char *fmt, ...) VENE_PRINTF(3, 4);
/* Prepends "prefix: " to an existing message (for adding file or field context); returns
 * err->code (VENE_ERR_ARG when err is NULL), so `return vene_error_prefix(...)` fails. */
int vene_error_prefix(vene_error *err, const char *fmt, ...) VENE_PRINTF(2, 3);
void vene_error_clear(vene_error *err);

#endif
