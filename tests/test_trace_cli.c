/* `vene trace` and `vene patch` end to end: their CSV numbers against cell-by-cell `vene run`
 * experiments (pyvene's NoiseIntervention and VanillaIntervention, the same noise), the
 * averaging over prompts, the heatmap files (PNG chunks, CRCs and pixels; SVG structure and
 * labels), the terminal rendering, and the error contract. Runs the vene binary named by
 * VENE_BIN. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <zlib.h>

#include "core/rng.h"
#include "io/safetensors.h"
#include "test.h"
#include "test_tmp.h"
#include "vene.h"

/* Writes text to a file of the temporary folder; returns its path. */
static const char *put_text(const char *name, const char *text) {
    FILE *f = fopen(tpath(name), "w");
    if (f) fputs(text, f), fclose(f);
    return tpath(name);
}

#define MODEL "fixtures/models/gpt2-tiny"
#define PROMPT "The Space Needle is in downtown"
#define TOL 1e-5

static const char *vene_bin;
static char model_abs[PATH_MAX];
static vene_tokenizer *tok;
static int D = 64, V = 50257;

static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The CSV value of (grid, row, layer), NAN when absent. */
static double csv_value(const char *path, const char *grid, int row, int layer) {
    char *text = test_read_file(path, NULL), *save = NULL;
    double v = NAN;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char g[64];
        int r, l, off = 0;
        if (sscanf(line, "%63[^,],%d,%n", g, &r, &off) != 2 || strcmp(g, grid) || r != row) continue;
        char *last = strrchr(line, ','), *prev = last;
        while (prev > line && prev[-1] != ',') prev--;
        if (sscanf(prev, "%d,", &l) == 1 && l == layer) v = strtod(last + 1, NULL);
    }
    free(text);
    return v;
}

static int32_t *tokens(const char *text, int *n) {
    int32_t *ids = NULL;
    size_t k = 0;
    vene_tokenize(tok, text, strlen(text), &ids, &k, NULL);
    *n = (int)k;
    return ids;
}

static void ids_json(char *buf, size_t n, const int32_t *ids, int S) {
    size_t o = (size_t)snprintf(buf, n, "{\"input_ids\": [[");
    for (int i = 0; i < S; i++) o += (size_t)snprintf(buf + o, n - o, "%s%d", i ? ", " : "", ids[i]);
    snprintf(buf + o, n - o, "]]}");
}

/* One cell as a `vene run` experiment: noise sample `sample` (-1: none) on the subject,
 * then `component` at layers lo .. hi - 1 from the source at `loc`; the logits of the last
 * position into out. */
static int run_cell(const int32_t *base, const int32_t *source, int S, const char *component, int lo, int hi,
                    const char *loc, int sample, const int *subj, int n_subj, float level, float *out) {
    char reps[4096], src[2048], dst[2048], bj[1024], sj[1024], srcs[8192], exp[24576];
    int noisy = sample >= 0, ro = 0, so = 0, dn = 0, xo = 0;
    ids_json(bj, sizeof bj, base, S);
    ids_json(sj, sizeof sj, source, S);
    ro += snprintf(reps + ro, sizeof reps - ro, "%s", noisy ? "{\"layer\": 0, \"component\": \"block_input\", "
                   "\"intervention_type\": \"NoiseIntervention\"}" : "");
    so += snprintf(src + so, sizeof src - so, "%s", noisy ? "null" : "");
    dn += snprintf(dst + dn, sizeof dst - dn, "%s", noisy ? "[[" : "");
    for (int i = 0; noisy && i < n_subj; i++) dn += snprintf(dst + dn, sizeof dst - dn, "%s%d", i ? ", " : "", subj[i]);
    dn += snprintf(dst + dn, sizeof dst - dn, "%s", noisy ? "]]" : "");
    xo += snprintf(srcs + xo, sizeof srcs - xo, "%s", noisy ? "null" : "");
    for (int l = lo; l < hi; l++) {
        const char *sep = (l > lo || noisy) ? ", " : "";
        ro += snprintf(reps + ro, sizeof reps - ro, "%s{\"layer\": %d, \"component\": \"%s\", \"unit\": \"%s\"}", sep, l,
                       component, loc[1] == '[' && loc[2] == '[' ? "h.pos" : "pos");
        so += snprintf(src + so, sizeof src - so, "%s%s", sep, loc);
        dn += snprintf(dst + dn, sizeof dst - dn, "%s%s", sep, loc);
        xo += snprintf(srcs + xo, sizeof srcs - xo, "%s%s", sep, sj);
    }
    snprintf(exp, sizeof exp, "{\"model\": \"%s\", \"config\": {\"representations\": [%s]}, \"intervention_params\": %s, "
             "\"base\": %s, \"sources\": [%s], \"unit_locations\": {\"sources->base\": [[%s], [%s]]}, \"run\": \"forward\", "
             "\"outputs\": [\"intervened.logits\"]}", model_abs, reps,
             noisy ? "{\"0.noise\": \"noise\", \"0.noise_level\": \"level\"}" : "{}", bj, srcs, src, dst);
    put_text("cell.json", exp);
    remove(tpath("inputs.safetensors"));
    if (noisy) { /* the trace's noise: numpy RandomState(1 + sample) normals */
        double *nz = malloc(sizeof(double) * (size_t)n_subj * D);
        vene_mt mt;
        vene_mt_seed(&mt, (uint32_t)(1 + sample));
        for (int i = 0; i < n_subj * D; i++) nz[i] = vene_mt_gauss(&mt);
        st_writer *w = st_writer_new();
        int64_t shape[3] = {1, n_subj, D};
        int rc = st_writer_add(w, "noise", ST_F64, 3, shape, nz, NULL) || st_writer_add(w, "level", ST_F32, 0, shape, &level, NULL) ||
                 st_writer_save(w, tpath("inputs.safetensors"), NULL);
        st_writer_free(w);
        free(nz);
        if (rc) return 1;
    }
    if (sh("'%s' run '%s' --out '%s' --quiet", vene_bin, tpath("cell.json"), tpath("cell.safetensors"))) return 1;
    st_file *r = NULL;
    if (st_open(tpath("cell.safetensors"), &r, NULL)) return 1;
    const st_tensor *t = st_find(r, "intervened.logits");
    int rc = !t || t->numel != (int64_t)S * V;
    if (!rc) memcpy(out, (const float *)t->data + (size_t)(S - 1) * V, sizeof(float) * (size_t)V);
    st_close(r);
    return rc;
}

static double p_of(const float *lg, int a) {
    double mx = lg[0], s = 0;
    for (int v = 1; v < V; v++) mx = fmax(mx, lg[v]);
    for (int v = 0; v < V; v++) s += exp((double)lg[v] - mx);
    return exp((double)lg[a] - mx) / s;
}

static int close_rel(double got, double want) { return fabs(got - want) <= TOL * fmax(fabs(want), 1e-12); }

static void test_trace(void) {
    CHECK(sh("'%s' trace %s --prompt '%s' --subject 'The Space Needle' --answer Seattle --samples 2 --window 2 "
             "--out '%s' --quiet 2>/dev/null", vene_bin, MODEL, PROMPT, tpath("t")) == 0);
    char *js = test_read_file(tpath("t.json"), NULL);
    cJSON *j = cJSON_Parse(js ? js : "");
    free(js);
    CHECK(j != NULL);
    if (!j) return;
    float level = (float)cJSON_GetObjectItem(j, "noise_level")->valuedouble;
    int answer = cJSON_GetObjectItem(j, "answer_token")->valueint, S = 0, subj[8], n_subj = 0;
    for (cJSON *e = cJSON_GetObjectItem(j, "subject_positions")->child; e && n_subj < 8; e = e->next) subj[n_subj++] = e->valueint;
    int32_t *ids = tokens(PROMPT, &S);
    CHECK(n_subj == 4 && subj[0] == 0 && subj[3] == 3 && S == 7);
    int32_t seattle = -1;
    int32_t *a = NULL;
    size_t na = 0;
    vene_tokenize(tok, " Seattle", 8, &a, &na, NULL);
    if (na) seattle = a[0];
    vene_free(a);
    CHECK(answer == seattle);
    float *lg = malloc(sizeof(float) * (size_t)V);
    /* the corrupted baseline: the noise alone (restoring block_output at the last layer at
     * position 0 leaves the last position as it is) */
    struct { const char *grid, *comp; int layer, lo, hi, pos; } cells[] = {
        {"block", "block_output", 0, 0, 1, 1}, {"block", "block_output", 2, 2, 3, 6}, {"block", "block_output", 3, 3, 4, 6},
        {"block", "block_output", 1, 1, 2, 3}, {"mlp", "mlp_output", 1, 0, 2, 3}, {"mlp", "mlp_output", 0, 0, 1, 0},
        {"attn", "attention_output", 2, 1, 3, 6}, {"attn", "attention_output", 3, 2, 4, 2}, {"corrupted", "block_output", 3, 3, 4, 0},
    };
    int ok = 0, n = (int)(sizeof cells / sizeof cells[0]);
    for (int c = 0; c < n; c++) {
        char loc[32];
        snprintf(loc, sizeof loc, "[[%d]]", cells[c].pos);
        double mean = 0;
        for (int smp = 0; smp < 2; smp++) {
            if (run_cell(ids, ids, S, cells[c].comp, cells[c].lo, cells[c].hi, loc, smp, subj, n_subj, level, lg)) break;
            mean += p_of(lg, answer) / 2;
        }
        double got = !strcmp(cells[c].grid, "corrupted") ? cJSON_GetObjectItem(j, "corrupted")->valuedouble
                                                          : csv_value(tpath("t.csv"), cells[c].grid, cells[c].pos, cells[c].layer);
        if (close_rel(got, mean)) ok++;
        else CHECK_MSG(0, "trace %s layer %d pos %d: %.9g, vene run %.9g", cells[c].grid, cells[c].layer, cells[c].pos, got, mean);
    }
    CHECK_MSG(ok == n, "%d of %d trace cells equal `vene run`", ok, n);
    printf("trace: %d cells equal cell-by-cell `vene run` within %.0e relative\n", ok, TOL);
    /* the clean run: a plain forward */
    CHECK(sh("'%s' forward %s '%s' --out '%s' >/dev/null", vene_bin, MODEL, PROMPT, tpath("f.safetensors")) == 0);
    st_file *f = NULL;
    if (st_open(tpath("f.safetensors"), &f, NULL) == VENE_OK) {
        const st_tensor *t = st_find(f, "logits");
        CHECK(t && close_rel(cJSON_GetObjectItem(j, "clean")->valuedouble, p_of((const float *)t->data + (size_t)(S - 1) * V, answer)));
        st_close(f);
    }
    free(lg);
    vene_free(ids);
    cJSON_Delete(j);
}

static void test_patch(void) {
    const char *base = "The Colosseum is in the city of", *source = "The Eiffel Tower is in the city of";
    FILE *f = fopen(tpath("p.json"), "w");
    fprintf(f, "{\"base\": \"%s\", \"source\": \"%s\", \"answer\": \" Paris\", \"contrast\": \" Rome\",\n"
               " \"components\": [\"block_output\", \"head_attention_value_output\", \"mlp_output\"],\n"
               " \"layers\": [0, 2], \"positions\": [1, -1], \"heads\": [1, 3]}\n", base, source);
    fclose(f);
    CHECK(sh("'%s' patch %s --experiment '%s' --out '%s' --quiet 2>/dev/null", vene_bin, MODEL, tpath("p.json"),
             tpath("p")) == 0);
    int S = 0, S2 = 0, paris = 0, rome = 0;
    int32_t *b = tokens(base, &S), *s = tokens(source, &S2), *t = NULL;
    size_t nt = 0;
    vene_tokenize(tok, " Paris", 6, &t, &nt, NULL);
    paris = nt ? t[0] : 0;
    vene_free(t);
    vene_tokenize(tok, " Rome", 5, &t, &nt, NULL);
    rome = nt ? t[0] : 0;
    vene_free(t);
    CHECK(S == S2 && S == 10);
    float *lg = malloc(sizeof(float) * (size_t)V);
    struct { const char *comp, *loc; int layer, row; } cells[] = {
        {"block_output", "[[1]]", 0, 1}, {"block_output", "[[9]]", 2, 9}, {"mlp_output", "[[1]]", 2, 1},
        {"head_attention_value_output", "[[[1]], [[1, 9]]]", 0, 1}, {"head_attention_value_output", "[[[3]], [[1, 9]]]", 2, 3},
    };
    int ok = 0, n = (int)(sizeof cells / sizeof cells[0]);
    for (int c = 0; c < n; c++) {
        if (run_cell(b, s, S, cells[c].comp, cells[c].layer, cells[c].layer + 1, cells[c].loc, -1, NULL, 0, 0, lg)) continue;
        double want = (double)lg[paris] - lg[rome], got = csv_value(tpath("p.csv"), cells[c].comp, cells[c].row, cells[c].layer);
        if (fabs(got - want) <= TOL * fmax(1, fabs(want))) ok++;
        else CHECK_MSG(0, "patch %s layer %d row %d: %.9g, vene run %.9g", cells[c].comp, cells[c].layer, cells[c].row, got, want);
    }
    CHECK_MSG(ok == n, "%d of %d patch cells equal `vene run`", ok, n);
    /* KL to the source's distribution, normalised by the base's own */
    f = fopen(tpath("k.json"), "w");
    fprintf(f, "{\"base\": \"%s\", \"source\": \"%s\", \"answer\": \" Paris\", \"metric\": \"kl\", \"normalize\": true,\n"
               " \"components\": [\"attention_output\"], \"layers\": [1], \"positions\": [4]}\n", base, source);
    fclose(f);
    CHECK(sh("'%s' patch %s --experiment '%s' --out '%s' --quiet 2>/dev/null", vene_bin, MODEL, tpath("k.json"), tpath("k")) == 0);
    float *src = malloc(sizeof(float) * (size_t)V), *bl = malloc(sizeof(float) * (size_t)V);
    int got_all = !run_cell(s, s, S, "block_output", 3, 4, "[[0]]", -1, NULL, 0, 0, src) &&
                  !run_cell(b, b, S, "block_output", 3, 4, "[[0]]", -1, NULL, 0, 0, bl) &&
                  !run_cell(b, s, S, "attention_output", 1, 2, "[[4]]", -1, NULL, 0, 0, lg);
    CHECK(got_all);
    if (got_all) {
        double kl[2] = {0, 0}, ls = 0, lb = 0, lp = 0, ms = src[0], mb = bl[0], mp = lg[0];
        for (int v = 0; v < V; v++) ms = fmax(ms, src[v]), mb = fmax(mb, bl[v]), mp = fmax(mp, lg[v]);
        for (int v = 0; v < V; v++) ls += exp(src[v] - ms), lb += exp(bl[v] - mb), lp += exp(lg[v] - mp);
        ls = ms + log(ls), lb = mb + log(lb), lp = mp + log(lp);
        for (int v = 0; v < V; v++) {
            double ps = exp(src[v] - ls);
            kl[0] += ps * ((src[v] - ls) - (bl[v] - lb));
            kl[1] += ps * ((src[v] - ls) - (lg[v] - lp));
        }
        double want = (kl[1] - kl[0]) / (0 - kl[0]), got = csv_value(tpath("k.csv"), "attention_output", 4, 1);
        CHECK_MSG(fabs(got - want) <= 1e-4 * fmax(1, fabs(want)), "normalised KL %.9g, by hand %.9g", got, want);
    }
    printf("patch: %d logit-diff cells and a normalised KL equal cell-by-cell `vene run`\n", ok);
    free(src);
    free(bl);
    free(lg);
    vene_free(b);
    vene_free(s);
}

/* Several prompts: each row is the mean, over the prompts that have it, of a token
 * category's mean; the single-prompt traces give the same numbers. */
static void test_prompts(void) {
    const char *p[2] = {"The Space Needle is in downtown", "Paris is the capital of"};
    const char *s[2] = {"Space Needle", "Paris"};
    FILE *f = fopen(tpath("facts.jsonl"), "w");
    fprintf(f, "{\"prompt\": \"%s\", \"subject\": \"%s\", \"answer\": \"Seattle\"}\n\n{\"prompt\": \"%s\", \"subject\": "
               "\"%s\", \"answer\": \" France\"}\n", p[0], s[0], p[1], s[1]);
    fclose(f);
    const char *common = "--samples 2 --window 2 --kinds block --quiet 2>/dev/null";
    CHECK(sh("'%s' trace %s --prompts '%s' --out '%s' %s", vene_bin, MODEL, tpath("facts.jsonl"), tpath("m"), common) == 0);
    CHECK(sh("'%s' trace %s --prompt '%s' --subject '%s' --answer Seattle --out '%s' %s", vene_bin, MODEL, p[0], s[0], tpath("m0"), common) == 0);
    CHECK(sh("'%s' trace %s --prompt '%s' --subject '%s' --answer France --out '%s' %s", vene_bin, MODEL, p[1], s[1], tpath("m1"), common) == 0);
    /* prompt 0: " Space"(1) " Need"(2) "le"(3) subject, " downtown"(6) last; prompt 1: "Paris"(0) subject,
     * " is"(1) next, " capital"(3) ... " of"(5) last */
    int ok = 1;
    for (int l = 0; l < 4; l++) {
        double first = (csv_value(tpath("m0.csv"), "block", 1, l) + csv_value(tpath("m1.csv"), "block", 0, l)) / 2;
        double middle = csv_value(tpath("m0.csv"), "block", 2, l);
        double next = csv_value(tpath("m0.csv"), "block", 4, l) / 2 + csv_value(tpath("m1.csv"), "block", 1, l) / 2;
        double last = (csv_value(tpath("m0.csv"), "block", 6, l) + csv_value(tpath("m1.csv"), "block", 4, l)) / 2;
        double further = (csv_value(tpath("m0.csv"), "block", 5, l) +
                          (csv_value(tpath("m1.csv"), "block", 2, l) + csv_value(tpath("m1.csv"), "block", 3, l)) / 2) / 2;
        ok &= fabs(csv_value(tpath("m.csv"), "block", 4, l) - further) <= 1e-7 * fabs(further);
        ok &= fabs(csv_value(tpath("m.csv"), "block", 0, l) - first) <= 1e-7 * fabs(first);
        ok &= fabs(csv_value(tpath("m.csv"), "block", 1, l) - middle) <= 1e-7 * fabs(middle);
        ok &= fabs(csv_value(tpath("m.csv"), "block", 3, l) - next) <= 1e-7 * fabs(next);
        ok &= fabs(csv_value(tpath("m.csv"), "block", 5, l) - last) <= 1e-7 * fabs(last);
    }
    CHECK_MSG(ok, "category means of two prompts differ from their single traces");
    char *js = test_read_file(tpath("m.json"), NULL);
    CHECK(js && strstr(js, "\"last token\"") && strstr(js, "\"prompts\":\t2"));
    free(js);
}

/* ---------------------------------------------------------------- heatmap files */

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* CRC-32 (PNG's, bit by bit: independent of the encoder's zlib). */
static uint32_t crc_bits(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* A valid 8-bit RGB PNG whose pixels include the colour ink; returns 1 when all holds. */
static int check_png(const char *path, const unsigned char ink[3], int *w_out, int *h_out) {
    size_t n = 0;
    unsigned char *b = (unsigned char *)test_read_file(path, &n);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int ok = b && n > 8 && !memcmp(b, sig, 8), w = 0, h = 0, chunks = 0, ended = 0;
    unsigned char *idat = NULL;
    size_t idat_n = 0;
    for (size_t at = 8; ok && at + 12 <= n && !ended; chunks++) {
        uint32_t len = be32(b + at);
        if (at + 12 + len > n) ok = 0;
        else {
            ok &= crc_bits(b + at + 4, 4 + len) == be32(b + at + 8 + len);
            if (!memcmp(b + at + 4, "IHDR", 4)) {
                ok &= chunks == 0 && len == 13 && b[at + 16] == 8 && b[at + 17] == 2 && !b[at + 18] && !b[at + 19] && !b[at + 20];
                w = (int)be32(b + at + 8), h = (int)be32(b + at + 12);
            } else if (!memcmp(b + at + 4, "IDAT", 4)) {
                idat = realloc(idat, idat_n + len);
                memcpy(idat + idat_n, b + at + 8, len);
                idat_n += len;
            } else if (!memcmp(b + at + 4, "IEND", 4)) ended = at + 12 == n;
            at += 12 + len;
        }
    }
    ok &= ended && w > 0 && h > 0 && idat;
    int inked = 0;
    if (ok) {
        uLongf raw_n = (uLongf)h * (3 * (uLongf)w + 1);
        unsigned char *raw = malloc(raw_n);
        ok = raw && uncompress(raw, &raw_n, idat, idat_n) == Z_OK && raw_n == (uLongf)h * (3 * (uLongf)w + 1);
        for (int y = 0; ok && y < h; y++) {
            const unsigned char *row = raw + (size_t)y * (3 * (size_t)w + 1);
            ok &= row[0] == 0;
            for (int x = 0; x < w; x++) inked |= !memcmp(row + 1 + 3 * x, ink, 3);
        }
        free(raw);
    }
    free(idat);
    free(b);
    *w_out = w, *h_out = h;
    return ok && inked;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_heatmaps(void) {
    static const unsigned char purple[3] = {84, 39, 143}, red[3] = {165, 15, 21};
    int w, h;
    CHECK_MSG(check_png(tpath("t_block.png"), purple, &w, &h), "t_block.png");
    CHECK(w > 4 * 30 && h > 7 * 22); /* 4 layers x 7 tokens of cells, plus labels */
    CHECK_MSG(check_png(tpath("t_attn.png"), red, &w, &h), "t_attn.png");
    char *svg = test_read_file(tpath("t_block.svg"), NULL);
    CHECK(svg && !strncmp(svg, "<?xml", 5) && strstr(svg, "<svg ") && strstr(svg, "</svg>"));
    if (svg) {
        CHECK(count(svg, "<text") == count(svg, "</text>") && count(svg, "<rect") >= 28 + 2);
        CHECK(strstr(svg, ">The*<") && strstr(svg, "> Space*<") && strstr(svg, "> downtown<") && strstr(svg, ">layer<"));
        CHECK(strstr(svg, ">3<") && strstr(svg, "Seattle") && strstr(svg, "#54278f")); /* hi in purple */
        CHECK(count(svg, "<") == count(svg, ">")); /* no stray angle brackets: labels are escaped */
    }
    free(svg);
    /* the terminal: shaded blocks when stdout is not a terminal, one line per token */
    CHECK(sh("'%s' trace %s --prompt '%s' --subject 'The Space Needle' --answer Seattle --samples 1 --window 2 "
             "--kinds mlp --out '%s' > '%s' 2>/dev/null", vene_bin, MODEL, PROMPT, tpath("q"), tpath("term.txt")) == 0);
    char *term = test_read_file(tpath("term.txt"), NULL);
    CHECK(term && strstr(term, "MLP output restored") && strstr(term, "    The* ") && strstr(term, " downtown ") &&
          (strstr(term, "\u2588") || strstr(term, "\u2593")) && !strchr(term, '\x1b'));
    free(term);
    /* labels with XML's special characters are escaped */
    CHECK(sh("'%s' trace %s --prompt 'a<b & c> \"d\" is' --subject '<b' --answer x --samples 1 --kinds block --out '%s' "
             "--quiet 2>/dev/null", vene_bin, MODEL, tpath("x")) == 0);
    svg = test_read_file(tpath("x_block.svg"), NULL);
    CHECK(svg && strstr(svg, ">&lt;*<") && strstr(svg, ">&gt;<") && strstr(svg, "> &amp;<") && strstr(svg, "> &quot;<") &&
          count(svg, "<") == count(svg, ">"));
    free(svg);
}

/* ---------------------------------------------------------------- errors */

/* exit status 1, one stderr line "vene: ..." containing needle, no output files */
static void expect_error(const char *needle, const char *fmt, ...) {
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    remove(tpath("e.csv"));
    int rc = sh("'%s' %s --out '%s' > /dev/null 2> '%s'", vene_bin, args, tpath("e"), tpath("err.txt"));
    char *e = test_read_file(tpath("err.txt"), NULL);
    FILE *f = fopen(tpath("e.csv"), "r");
    CHECK_MSG(rc == 1 && e && !strncmp(e, "vene: ", 6) && strstr(e, needle) && count(e, "\n") == 1 && !f,
              "%s: exit %d, stderr %s", args, rc, e ? e : "(none)");
    if (f) fclose(f);
    free(e);
}

static void test_errors(void) {
    const char *m = MODEL;
    expect_error("does not occur", "trace %s --prompt 'The cat' --subject dog --answer x", m);
    expect_error("--contrast", "trace %s --prompt 'The cat' --subject cat --answer x --metric logit-diff", m);
    expect_error("max-memory", "trace %s --prompt 'The cat' --subject cat --answer x --max-memory 12Q", m);
    expect_error("max_memory", "trace %s --prompt 'The cat' --subject cat --answer x --max-memory 4K", m);
    expect_error("--kinds", "trace %s --prompt 'The cat' --subject cat --answer x --kinds mlps_no", m);
    expect_error("--samples", "trace %s --prompt 'The cat' --subject cat --answer x --samples 0", m);
    expect_error("expected --prompt", "trace %s --prompt 'The cat'", m);
    expect_error(":2: missing string \"answer\"", "trace %s --prompts '%s'", m, tpath("bad.jsonl"));
    expect_error("config.json", "trace %s/nothing --prompt 'The cat' --subject cat --answer x", tmpdir);
    /* experiment files `vene patch` must refuse, with the words its error must contain */
    static const struct { const char *want, *json; } bad[] = {
        {"unknown key \"layer\"",
         "{\"base\": \"The cat\", \"source\": \"The dog\", \"answer\": \" x\", \"contrast\": \" y\", \"layer\": 1}"},
        {"must match", "{\"base\": \"The cat\", \"source\": \"The big dog\", \"answer\": \" x\", \"contrast\": \" y\"}"},
        {"blok_output",
         "{\"base\": \"The cat\", \"source\": \"The dog\", \"answer\": \" x\", \"contrast\": \" y\", \"components\": [\"blok_output\"]}"},
        {"needs \"contrast\"", "{\"base\": \"The cat\", \"source\": \"The dog\", \"answer\": \" x\"}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char name[16];
        snprintf(name, sizeof name, "e%zu.json", i + 1);
        expect_error(bad[i].want, "patch %s --experiment '%s'", m, put_text(name, bad[i].json));
    }
    expect_error("--experiment", "patch %s", m);
}

int main(void) {
    vene_bin = getenv("VENE_BIN");
    if (!vene_bin) {
        fprintf(stderr, "VENE_BIN is not set (ctest sets it to the vene binary)\n");
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene_trace_cli.XXXXXX");
    if (!mkdtemp(tmpdir) || !realpath(MODEL, model_abs) || vene_tokenizer_load(MODEL, &tok, NULL)) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    put_text("bad.jsonl",
             "{\"prompt\": \"The cat\", \"subject\": \"cat\", \"answer\": \"x\"}\n{\"prompt\": \"The cat\", \"subject\": \"cat\"}\n");
    if (sh("'%s' trace --help | grep -q -- --max-memory && '%s' patch --help | grep -q -- --experiment && "
           "'%s' --help | grep -q '^  trace ' && '%s' --help | grep -q '^  patch '", vene_bin, vene_bin, vene_bin, vene_bin))
        CHECK_MSG(0, "help texts");
    test_trace();
    test_patch();
    test_prompts();
    test_heatmaps();
    test_errors();
    vene_tokenizer_free(tok);
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
