/* A PNG is the signature and three chunks (length, type, data, CRC-32 of type and data):
 * IHDR (size, 8-bit RGB), one IDAT (the zlib stream of the rows, each row led by filter
 * byte 0 = none) and IEND. */
#include "io/png.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/error.h"
#include "io/atomic.h"

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Append a chunk at out + *at (room is the caller's). */
static void chunk(uint8_t *out, size_t *at, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t *c = out + *at;
    put_be32(c, n);
    memcpy(c + 4, type, 4);
    if (n) memcpy(c + 8, data, n);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, c + 4, 4 + n);
    put_be32(c + 8 + n, (uint32_t)crc);
    *at += 12 + (size_t)n;
}

int vene_png_write(const char *path, int w, int h, const uint8_t *rgb, vene_error *err) {
    if (w <= 0 || h <= 0 || w > (1 << 16) || h > (1 << 16))
        return vene_errorf(err, VENE_ERR_ARG, "%s: image size %d x %d (1 .. 65536 each)", path, w, h);
    const size_t stride = (size_t)w * 3 + 1, raw_n = stride * (size_t)h;
    uLongf z_n = compressBound((uLong)raw_n);
    uint8_t *raw = malloc(raw_n), *z = malloc(z_n), *out = malloc((size_t)z_n + 64);
    int rc = VENE_OK;
    if (!raw || !z || !out) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for a %d x %d image", path, w, h);
        goto done;
    }
    for (int y = 0; y < h; y++) {
        raw[(size_t)y * stride] = 0;
        memcpy(raw + (size_t)y * stride + 1, rgb + (size_t)y * w * 3, (size_t)w * 3);
    }
    if (compress2(z, &z_n, raw, (uLong)raw_n, 9) != Z_OK) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: deflate failed", path);
        goto done;
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13];
    put_be32(ihdr, (uint32_t)w);
    put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;                        /* bits per channel */
    ihdr[9] = 2;                        /* RGB */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    memcpy(out, sig, 8);
    size_t at = 8;
    chunk(out, &at, "IHDR", ihdr, 13);
    chunk(out, &at, "IDAT", z, (uint32_t)z_n);
    chunk(out, &at, "IEND", NULL, 0);
    rc = vene_write_atomic(path, out, at, err);
done:
    free(raw);
    free(z);
    free(out);
    return rc;
}
