/* SVG and PNG share one layout (grid, labels left and below, colour bar right), so the
 * two files look alike; the terminal gets two characters per cell. */
#include "io/heatmap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/strbuf.h"
#include "io/atomic.h"
#include "io/font5x8.h"
#include "io/png.h"

#define SCALE 2                              /* PNG font pixels per glyph pixel */
#define CHAR_W ((VENE_FONT_W + 1) * SCALE)   /* advance of one character */
#define CHAR_H (VENE_FONT_H * SCALE)
#define CELL_W 30
#define CELL_H 22
#define PAD 12
#define BAR_W 16
#define MAX_LABEL 24                          /* characters of a row label shown */

void vene_heatmap_color(const vene_heatmap *hm, double v, uint8_t rgb[3]) {
    static const uint8_t neg[3] = {33, 102, 172}, pos[3] = {178, 24, 43};
    if (isnan(v)) {
        rgb[0] = rgb[1] = rgb[2] = 255;
        return;
    }
    const uint8_t *to = hm->ink;
    double t;
    if (hm->lo < 0 && hm->hi > 0) { /* diverging around 0 */
        double m = fmax(-hm->lo, hm->hi);
        t = fabs(v) / m;
        to = v < 0 ? neg : pos;
    } else {
        t = hm->hi > hm->lo ? (v - hm->lo) / (hm->hi - hm->lo) : 0.5;
    }
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    for (int i = 0; i < 3; i++) rgb[i] = (uint8_t)lround(255.0 + t * ((double)to[i] - 255.0));
}

/* The label of row/column i: the caller's, or its number. */
static const char *label(const char *const *labels, int i, char *buf, size_t n) {
    if (labels && labels[i]) return labels[i];
    snprintf(buf, n, "%d", i);
    return buf;
}

/* Characters of UTF-8 text (continuation bytes do not count). */
static int utf8_chars(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* ... of a label, which shows at most MAX_LABEL of them */
static int text_chars(const char *s) {
    int n = utf8_chars(s);
    return n > MAX_LABEL ? MAX_LABEL : n;
}

typedef struct layout {
    int left, top, grid_w, grid_h, width, height, bar_x;
    char lo[32], hi[32];
} layout;

static void make_layout(const vene_heatmap *hm, layout *g) {
    int widest = 1;
    char buf[32];
    for (int r = 0; r < hm->rows; r++) {
        int n = text_chars(label(hm->row_labels, r, buf, sizeof buf));
        widest = n > widest ? n : widest;
    }
    snprintf(g->lo, sizeof g->lo, "%.3g", hm->lo);
    snprintf(g->hi, sizeof g->hi, "%.3g", hm->hi);
    int scale_chars = (int)(strlen(g->lo) > strlen(g->hi) ? strlen(g->lo) : strlen(g->hi));
    g->left = PAD + widest * CHAR_W + PAD / 2;
    g->top = PAD + (hm->title ? CHAR_H + PAD : 0);
    g->grid_w = hm->cols * CELL_W;
    g->grid_h = hm->rows * CELL_H;
    g->bar_x = g->left + g->grid_w + PAD;
    g->width = g->bar_x + BAR_W + PAD / 2 + scale_chars * CHAR_W + PAD;
    int title_w = hm->title ? PAD + utf8_chars(hm->title) * CHAR_W + PAD : 0;
    int col_w = hm->col_title ? g->left + utf8_chars(hm->col_title) * CHAR_W + PAD : 0;
    title_w = title_w > col_w ? title_w : col_w;
    g->width = g->width > title_w ? g->width : title_w;
    g->height = g->top + g->grid_h + PAD / 2 + CHAR_H + (hm->col_title ? PAD / 2 + CHAR_H : 0) + PAD;
}

/* ---------------------------------------------------------------- SVG */


/* Text as XML character data (at most MAX_LABEL characters). */
static void sb_xml(vene_strbuf *b, const char *s, int limit) {
    int chars = 0;
    for (; *s && !b->oom; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c & 0xc0) != 0x80 && limit && chars++ == MAX_LABEL) break;
        if (c == '<') vene_strbuf_printf(b, "&lt;");
        else if (c == '>') vene_strbuf_printf(b, "&gt;");
        else if (c == '&') vene_strbuf_printf(b, "&amp;");
        else if (c == '"') vene_strbuf_printf(b, "&quot;");
        else if (c < 0x20) vene_strbuf_printf(b, "&#x%x;", 0x2400 + c); /* control pictures */
        else vene_strbuf_printf(b, "%c", c);
    }
}

int vene_heatmap_svg(const vene_heatmap *hm, const char *path, vene_error *err) {
    layout g;
    make_layout(hm, &g);
    vene_strbuf b = {0};
    char buf[32];
    vene_strbuf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                  "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"monospace\" font-size=\"13\">\n"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", g.width, g.height, g.width, g.height);
    if (hm->title) {
        vene_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"15\">", PAD, PAD + CHAR_H - 3);
        sb_xml(&b, hm->title, 0);
        vene_strbuf_printf(&b, "</text>\n");
    }
    for (int r = 0; r < hm->rows; r++) {
        int y = g.top + r * CELL_H;
        vene_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" xml:space=\"preserve\">", g.left - PAD / 2,
                  y + CELL_H / 2 + 5);
        sb_xml(&b, label(hm->row_labels, r, buf, sizeof buf), 1);
        vene_strbuf_printf(&b, "</text>\n");
        for (int c = 0; c < hm->cols; c++) {
            uint8_t rgb[3];
            double v = hm->values[(size_t)r * hm->cols + c];
            vene_heatmap_color(hm, v, rgb);
            vene_strbuf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#%02x%02x%02x\"><title>%.6g</title></rect>\n",
                      g.left + c * CELL_W, y, CELL_W, CELL_H, rgb[0], rgb[1], rgb[2], v);
        }
    }
    int ly = g.top + g.grid_h + PAD / 2 + CHAR_H - 3;
    for (int c = 0; c < hm->cols; c++) {
        vene_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", g.left + c * CELL_W + CELL_W / 2, ly);
        sb_xml(&b, label(hm->col_labels, c, buf, sizeof buf), 1);
        vene_strbuf_printf(&b, "</text>\n");
    }
    if (hm->col_title) {
        vene_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", g.left + g.grid_w / 2, ly + PAD / 2 + CHAR_H);
        sb_xml(&b, hm->col_title, 0);
        vene_strbuf_printf(&b, "</text>\n");
    }
    /* colour bar: hi at the top */
    vene_strbuf_printf(&b, "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int i = 0; i <= 10; i++) {
        uint8_t m[3];
        vene_heatmap_color(hm, hm->lo + (hm->hi - hm->lo) * i / 10.0, m);
        vene_strbuf_printf(&b, "<stop offset=\"%.1f\" stop-color=\"#%02x%02x%02x\"/>", i / 10.0, m[0], m[1], m[2]);
    }
    vene_strbuf_printf(&b, "</linearGradient></defs>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"url(#scale)\" "
                  "stroke=\"#888\"/>\n", g.bar_x, g.top, BAR_W, g.grid_h);
    vene_strbuf_printf(&b, "<text x=\"%d\" y=\"%d\">%s</text>\n<text x=\"%d\" y=\"%d\">%s</text>\n</svg>\n", g.bar_x + BAR_W + 4,
              g.top + 12, g.hi, g.bar_x + BAR_W + 4, g.top + g.grid_h, g.lo);
    int rc = b.oom ? vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path) : vene_write_atomic(path, b.p, b.n, err);
    free(b.p);
    return rc;
}

/* ---------------------------------------------------------------- PNG */

typedef struct canvas {
    int w, h;
    uint8_t *px;
} canvas;

static void fill(canvas *cv, int x, int y, int w, int h, const uint8_t rgb[3]) {
    for (int j = y < 0 ? 0 : y; j < y + h && j < cv->h; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < cv->w; i++) memcpy(cv->px + ((size_t)j * cv->w + i) * 3, rgb, 3);
}

/* Text with its top-left corner at (x, y); bytes outside ASCII draw one '?' per character. */
static void draw_text(canvas *cv, int x, int y, const char *s, int limit) {
    static const uint8_t ink[3] = {0, 0, 0};
    int chars = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c & 0xc0) == 0x80) continue;
        if (limit && chars == MAX_LABEL) break;
        const unsigned char *gl = vene_font_glyph(c < 0x80 ? c : '?');
        for (int r = 0; r < VENE_FONT_H; r++)
            for (int k = 0; k < VENE_FONT_W; k++)
                if (gl[r] & (0x10 >> k)) fill(cv, x + (chars * (VENE_FONT_W + 1) + k) * SCALE, y + r * SCALE, SCALE, SCALE, ink);
        chars++;
    }
}

/* Pixel width of a label (limit: as shown, at most MAX_LABEL characters) or of whole text. */
static int text_w(const char *s, int limit) { return (limit ? text_chars(s) : utf8_chars(s)) * CHAR_W - SCALE; }

int vene_heatmap_png(const vene_heatmap *hm, const char *path, vene_error *err) {
    layout g;
    make_layout(hm, &g);
    canvas cv = {g.width, g.height, malloc((size_t)g.width * g.height * 3)};
    if (!cv.px) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    memset(cv.px, 255, (size_t)g.width * g.height * 3);
    char buf[32];
    if (hm->title) draw_text(&cv, PAD, PAD, hm->title, 0);
    for (int r = 0; r < hm->rows; r++) {
        int y = g.top + r * CELL_H;
        const char *lb = label(hm->row_labels, r, buf, sizeof buf);
        draw_text(&cv, g.left - PAD / 2 - text_w(lb, 1), y + (CELL_H - CHAR_H) / 2, lb, 1);
        for (int c = 0; c < hm->cols; c++) {
            uint8_t rgb[3];
            vene_heatmap_color(hm, hm->values[(size_t)r * hm->cols + c], rgb);
            fill(&cv, g.left + c * CELL_W, y, CELL_W, CELL_H, rgb);
        }
    }
    int ly = g.top + g.grid_h + PAD / 2;
    for (int c = 0; c < hm->cols; c++) {
        const char *lb = label(hm->col_labels, c, buf, sizeof buf);
        draw_text(&cv, g.left + c * CELL_W + (CELL_W - text_w(lb, 1)) / 2, ly, lb, 1);
    }
    if (hm->col_title) draw_text(&cv, g.left + (g.grid_w - text_w(hm->col_title, 0)) / 2, ly + CHAR_H + PAD / 2, hm->col_title, 0);
    for (int j = 0; j < g.grid_h; j++) { /* colour bar, hi at the top */
        uint8_t rgb[3];
        vene_heatmap_color(hm, hm->hi - (hm->hi - hm->lo) * j / (double)(g.grid_h > 1 ? g.grid_h - 1 : 1), rgb);
        fill(&cv, g.bar_x, g.top + j, BAR_W, 1, rgb);
    }
    draw_text(&cv, g.bar_x + BAR_W + PAD / 2, g.top, g.hi, 0);
    draw_text(&cv, g.bar_x + BAR_W + PAD / 2, g.top + g.grid_h - CHAR_H, g.lo, 0);
    int rc = vene_png_write(path, cv.w, cv.h, cv.px, err);
    free(cv.px);
    return rc;
}

/* ---------------------------------------------------------------- terminal */

void vene_heatmap_print(const vene_heatmap *hm, FILE *f, int ansi) {
    static const char *const shade[5] = {"  ", "\u2591\u2591", "\u2592\u2592", "\u2593\u2593", "\u2588\u2588"};
    char buf[32];
    int widest = 1;
    for (int r = 0; r < hm->rows; r++) {
        int n = text_chars(label(hm->row_labels, r, buf, sizeof buf));
        widest = n > widest ? n : widest;
    }
    if (hm->title) fprintf(f, "%s\n", hm->title);
    fprintf(f, "%*s ", widest, "");
    for (int c = 0; c < hm->cols; c++) {
        const char *lb = label(hm->col_labels, c, buf, sizeof buf);
        size_t n = strlen(lb);
        fprintf(f, "%2s", n > 2 ? lb + n - 2 : lb);
    }
    fprintf(f, "%s%s\n", hm->col_title ? "  " : "", hm->col_title ? hm->col_title : "");
    for (int r = 0; r < hm->rows; r++) {
        const char *lb = label(hm->row_labels, r, buf, sizeof buf);
        fprintf(f, "%*s", widest - text_chars(lb), "");
        int chars = 0;
        for (const char *s = lb; *s; s++) { /* at most MAX_LABEL characters, whole UTF-8 sequences */
            if (((unsigned char)*s & 0xc0) != 0x80 && chars++ == MAX_LABEL) break;
            fputc(*s, f);
        }
        fputc(' ', f);
        for (int c = 0; c < hm->cols; c++) {
            double v = hm->values[(size_t)r * hm->cols + c];
            if (ansi) {
                uint8_t rgb[3];
                vene_heatmap_color(hm, v, rgb);
                fprintf(f, "\x1b[48;2;%d;%d;%dm  ", rgb[0], rgb[1], rgb[2]);
            } else {
                double t = hm->hi > hm->lo ? (v - hm->lo) / (hm->hi - hm->lo) : 0.5;
                if (hm->lo < 0 && hm->hi > 0) t = fabs(v) / fmax(-hm->lo, hm->hi);
                int k = isnan(v) ? 0 : (int)lround((t < 0 ? 0 : t > 1 ? 1 : t) * 4);
                fputs(shade[k], f);
            }
        }
        fputs(ansi ? "\x1b[0m\n" : "\n", f);
    }
    fprintf(f, "%*s scale: %.3g ", widest, "", hm->lo);
    for (int k = 0; k <= 4; k++) {
        if (ansi) {
            uint8_t rgb[3];
            vene_heatmap_color(hm, hm->lo + (hm->hi - hm->lo) * k / 4.0, rgb);
            fprintf(f, "\x1b[48;2;%d;%d;%dm  \x1b[0m", rgb[0], rgb[1], rgb[2]);
        } else {
            fputs(shade[k], f);
        }
    }
    fprintf(f, " %.3g%s\n", hm->hi, hm->lo < 0 && hm->hi > 0 ? " (shade: |value|)" : "");
}
