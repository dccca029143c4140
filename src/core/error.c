#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vene_errorf(vene_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int vene_error_prefix(vene_error *err, const char *fmt, ...) {
    if (!err) return VENE_ERR_ARG; /* the caller failed; keep the result non-zero */
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* append ": <old message>" after the new prefix, truncating the tail if needed */
    if (n >= 0 && (size_t)n < sizeof err->msg - 2) {
        size_t room = sizeof err->msg - (size_t)n;
        size_t len = strnlen(old, sizeof old - 1);
        err->msg[n] = ':';
        err->msg[n + 1] = ' ';
        size_t copy = len < room - 3 ? len : room - 3;
        memcpy(err->msg + n + 2, old, copy);
        err->msg[n + 2 + copy] = '\0';
    }
    return err->code;
}

void vene_error_clear(vene_error *err) {
    if (err) {
        err->code = VENE_OK;
        err->msg[0] = '\0';
    }
}

const char *vene_status_name(int code) {
    switch (code) {
    case VENE_OK: return "VENE_OK";
    case VENE_ERR_ARG: return "VENE_ERR_ARG";
    case VENE_ERR_IO: return "VENE_ERR_IO";
    case VENE_ERR_FORMAT: return "VENE_ERR_FORMAT";
    case VENE_ERR_MEMORY: return "VENE_ERR_MEMORY";
    case VENE_ERR_RANGE: return "VENE_ERR_RANGE";
    case VENE_ERR_UNSUPPORTED: return "VENE_ERR_UNSUPPORTED";
    case VENE_ERR_STATE: return "VENE_ERR_STATE";
    case VENE_STOP: return "VENE_STOP";
    default: return "VENE_ERR_UNKNOWN";
    }
}

void vene_free(void *p) { free(p); }
