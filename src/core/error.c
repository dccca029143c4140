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
    if (!err) return 0;
    char head[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
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
