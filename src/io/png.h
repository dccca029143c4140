/* PNG images: 8-bit RGB, written atomically; the pixels are deflated with zlib. */
#ifndef VENE_IO_PNG_H
#define VENE_IO_PNG_H

#include <stdint.h>

#include "vene.h"

/* rgb: h rows of w pixels, 3 bytes each, top row first. */
int vene_png_write(const char *path, int w, int h, const uint8_t *rgb, vene_error *err);

#endif
