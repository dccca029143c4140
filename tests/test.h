/* A minimal test harness: CHECK macros count passes and failures; TEST_MAIN_END prints
 * the closing "N passed, N failed" line and returns non-zero on any failure. */
#ifndef VENE_TEST_H
#define VENE_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_, test_failed_;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) test_passed_++;                                                        \
        else {                                                                           \
            test_failed_++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
        }                                                                                \
    } while (0)

#define CHECK_MSG(cond, ...)                                                             \
    do {                                                                                 \
        if (cond) test_passed_++;                                                        \
        else {                                                                           \
            test_failed_++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

/* |a - b| <= tol * max(1, |b|) elementwise over n floats; reports the worst element. */
static inline int test_close_(const float *a, const float *b, long n, double tol, const char *what) {
    double worst = 0, scale = 1;
    long at = -1;
    for (long i = 0; i < n; i++) {
        if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
    }
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) { worst = d; at = i; }
    }
    if (worst <= tol * scale) return 1;
    fprintf(stderr, "  %s: max diff %.3g at %ld (got %g, want %g), tolerance %.3g\n", what, worst, at,
            at >= 0 ? a[at] : 0.0, at >= 0 ? b[at] : 0.0, tol * scale);
    return 0;
}
#define CHECK_CLOSE(a, b, n, tol, what) CHECK(test_close_((a), (b), (n), (tol), (what)))

/* A whole file, NUL-terminated (malloc'd; NULL when unreadable); *len gets its size. */
static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = buf ? (size_t)n : 0;
    return buf;
}

#define TEST_MAIN_END()                                                                  \
    do {                                                                                 \
        printf("%d passed, %d failed\n", test_passed_, test_failed_);                    \
        return test_failed_ ? 1 : 0;                                                     \
    } while (0)

#endif
