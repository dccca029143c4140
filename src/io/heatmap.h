/* Heatmaps of a grid of numbers with labelled rows and columns (a sweep's tokens x
 * layers): SVG, PNG (drawn with the built-in bitmap font) and a terminal rendering. */
#ifndef VENE_IO_HEATMAP_H
#define VENE_IO_HEATMAP_H

#include <stdint.h>
#include <stdio.h>

#include "vene.h"

typedef struct vene_heatmap {
    int rows, cols;
    const double *values;          /* rows x cols, row-major; NAN = no value (left blank) */
    const char *const *row_labels; /* rows labels (UTF-8; tokens), NULL = row numbers */
    const char *const *col_labels; /* cols labels (layers), NULL = column numbers */
    const char *title;             /* above the grid, or NULL */
    const char *col_title;         /* under the column labels ("layer"), or NULL */
    double lo, hi;                 /* colour scale: lo -> white (or blue when lo < 0 < hi), hi -> ink */
    uint8_t ink[3];                /* colour of hi for a one-sided scale */
} vene_heatmap;

/* Colour of value v on the map's scale (white for NAN). */
void vene_heatmap_color(const vene_heatmap *hm, double v, uint8_t rgb[3]);

int vene_heatmap_svg(const vene_heatmap *hm, const char *path, vene_error *err);
int vene_heatmap_png(const vene_heatmap *hm, const char *path, vene_error *err);
/* One line per row: 24-bit ANSI background colours when ansi, else shaded blocks. */
void vene_heatmap_print(const vene_heatmap *hm, FILE *f, int ansi);

#endif
