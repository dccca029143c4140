/* Intervention maths on gathered blocks (src/engine/interventions.h): the swap kernel
 * goldens of spec §7.3, every intervention of §8, the orthogonal parametrisation against
 * torch's own tensors (fixtures/iv, made by tools/make_iv_fixtures.py) and error cases. */
#include "test.h"

#include <stdint.h>

#include "core/rng.h"
#include "engine/interventions.h"
#include "io/safetensors.h"

#define FIX "fixtures/iv/"

static vene_error err;

/* ---------------------------------------------------------------- helpers */

static void iota(float *p, int n, float start) {
    for (int i = 0; i < n; i++) p[i] = start + (float)i;
}

static vene_tensor tens(float *data, int ndim, const int64_t *shape) {
    vene_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    return t;
}

/* An in-memory st_tensor (no file needed for vene_iv_set_param). */
static st_tensor stt(st_dtype dt, const void *data, int ndim, const int64_t *shape) {
    st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "test";
    t.dtype = dt;
    t.ndim = ndim;
    t.numel = 1;
    for (int i = 0; i < ndim; i++) {
        t.shape[i] = shape[i];
        t.numel *= shape[i];
    }
    t.data = data;
    t.nbytes = (size_t)t.numel * st_dtype_size(dt);
    return t;
}

static int set_f32(vene_iv *iv, const char *name, const float *data, int ndim, const int64_t *shape) {
    st_tensor t = stt(ST_F32, data, ndim, shape);
    return vene_iv_set_param(iv, name, &t, &err);
}

/* A subspace selection from rows given as -1-terminated lists. */
typedef struct {
    int off[8];
    int ids[32];
    vene_subspaces ss;
} subsp;

static vene_subspaces *mk_ss(subsp *s, int n_rows, const int *rows) {
    int at = 0, r = 0;
    s->off[0] = 0;
    for (const int *p = rows; r < n_rows; p++) {
        if (*p < 0) s->off[++r] = at;
        else s->ids[at++] = *p;
    }
    s->ss.n_rows = n_rows;
    s->ss.row_offsets = s->off;
    s->ss.ids = s->ids;
    return &s->ss;
}

static void set_partition_pairs(vene_iv *iv) {   /* [[0,2],[2,4],[4,6]] */
    static const int p0[2] = {0, 2}, p1[2] = {2, 4}, p2[2] = {4, 6};
    const int *vals[3] = {p0, p1, p2};
    int lens[3] = {2, 2, 2}, rng[3] = {1, 1, 1};
    CHECK(vene_iv_set_partition(iv, 3, lens, vals, rng, &err) == VENE_OK);
}

static int has(const char *msg, const char *needle) {
    if (strstr(msg, needle)) return 1;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", msg, needle);
    return 0;
}

/* y (n x m) = x (n x k) * W (k x m), in double. */
static void dmatmul(const float *x, const float *W, int n, int k, int m, double *y) {
    for (int i = 0; i < n; i++)
        for (int c = 0; c < m; c++) {
            double s = 0;
            for (int f = 0; f < k; f++) s += (double)x[i * k + f] * W[f * m + c];
            y[i * m + c] = s;
        }
}

/* max |W^T W - I| for W (E x r). */
static double orth_err(const float *W, int E, int r) {
    double worst = 0;
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double s = 0;
            for (int i = 0; i < E; i++) s += (double)W[i * r + a] * W[i * r + b];
            double d = fabs(s - (a == b));
            if (d > worst) worst = d;
        }
    return worst;
}

/* ---------------------------------------------------------------- names and flags */

static void test_names(void) {
    CHECK(vene_iv_type_from_name("VanillaIntervention") == VENE_IV_VANILLA);
    CHECK(vene_iv_type_from_name("<class 'pyvene.models.interventions.LowRankRotatedSpaceIntervention'>") ==
          VENE_IV_LOWRANK_ROTATED);
    CHECK(vene_iv_type_from_name("pyvene.BoundlessRotatedSpaceIntervention") == VENE_IV_BOUNDLESS_ROTATED);
    CHECK(vene_iv_type_from_name("SigmoidMaskIntervention") == VENE_IV_SIGMOID_MASK);
    CHECK(vene_iv_type_from_name("SigmoidMask") == -1);
    CHECK(vene_iv_type_from_name("") == -1);
    CHECK(vene_iv_type_from_name(NULL) == -1);
    for (int t = 0; t < VENE_IV_TYPE_COUNT; t++) CHECK(vene_iv_type_from_name(vene_iv_type_name(t)) == t);
    CHECK(!strcmp(vene_iv_type_name(VENE_IV_ROTATED), "RotatedSpaceIntervention"));
    CHECK(vene_iv_is_localist(VENE_IV_NOISE) && vene_iv_is_localist(VENE_IV_SIGMOID_MASK));
    CHECK(!vene_iv_is_localist(VENE_IV_BOUNDLESS_ROTATED) && !vene_iv_is_localist(VENE_IV_LOWRANK_ROTATED));
    CHECK(!vene_iv_needs_source(VENE_IV_ZERO) && !vene_iv_needs_source(VENE_IV_COLLECT) &&
          !vene_iv_needs_source(VENE_IV_NOISE));
    CHECK(vene_iv_needs_source(VENE_IV_VANILLA) && vene_iv_needs_source(VENE_IV_SKIP) &&
          vene_iv_needs_source(VENE_IV_ROTATED));
    CHECK(vene_iv_is_trainable(VENE_IV_SIGMOID_MASK) && vene_iv_is_trainable(VENE_IV_ROTATED) &&
          !vene_iv_is_trainable(VENE_IV_VANILLA));
}

/* ---------------------------------------------------------------- rng */

static void test_rng(void) {
    vene_rng a, b;
    vene_rng_seed(&a, 42);
    vene_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= vene_rng_next(&a) == vene_rng_next(&b);
    CHECK(same);
    vene_rng_seed(&b, 43);
    CHECK(vene_rng_next(&a) != vene_rng_next(&b));
    double s = 0, s2 = 0;
    for (int i = 0; i < 20000; i++) {
        double x = vene_rng_normal(&a);
        s += x;
        s2 += x * x;
    }
    CHECK(fabs(s / 20000) < 0.05 && fabs(s2 / 20000 - 1) < 0.05);
    double u = vene_rng_uniform(&a);
    CHECK(u >= 0 && u < 1);

    /* numpy.random.RandomState(1).randn: first values from the spec, all 24 from numpy. */
    vene_mt mt;
    vene_mt_seed(&mt, 1);
    double g[24];
    for (int i = 0; i < 24; i++) g[i] = vene_mt_gauss(&mt);
    CHECK(fabs(g[0] - 1.6243453636632417) < 1e-15 && fabs(g[1] + 0.6117564136500754) < 1e-15);
    st_file *f = NULL;
    CHECK(st_open(FIX "orthogonal_random.safetensors", &f, &err) == VENE_OK);
    const st_tensor *nt = f ? st_find(f, "noise.randn") : NULL;
    CHECK(nt && nt->dtype == ST_F64 && nt->numel == 24);
    if (nt) {
        double ref[24];
        memcpy(ref, nt->data, sizeof ref);
        int exact = 1;
        for (int i = 0; i < 24; i++) exact &= g[i] == ref[i];
        CHECK_MSG(exact, "MT19937 gaussians differ from numpy RandomState(1)");
    }
    st_close(f);
}

/* ---------------------------------------------------------------- swap kernel (spec §7.3) */

enum { SB = 2, SK = 3, SD = 6, SN = SB * SK * SD };
static const int64_t S_SHAPE[3] = {SB, SK, SD};

/* Applies iv to base 0..35 as [2,3,6] with source 36..71 (or `src` if given). */
static int run_swap(const vene_iv *iv, const vene_tensor *src, const vene_subspaces *ss, float *out,
                    vene_tensor *collected) {
    float s[SN];
    iota(out, SN, 0);
    iota(s, SN, 36);
    vene_tensor bt = tens(out, 3, S_SHAPE), st = tens(s, 3, S_SHAPE);
    return vene_iv_apply(iv, &bt, src ? src : &st, ss, collected, &err);
}

/* expected[b][u][c]: source value where sel(b, c) else base value. */
static void expect_swap(float *want, const float *srcvec /* NULL: full source */, int (*sel)(int b, int c)) {
    for (int b = 0; b < SB; b++)
        for (int u = 0; u < SK; u++)
            for (int c = 0; c < SD; c++) {
                int i = (b * SK + u) * SD + c;
                want[i] = sel(b, c) ? (srcvec ? srcvec[c] : (float)(36 + i)) : (float)i;
            }
}

static int sel_01(int b, int c) { (void)b; return c < 2; }
static int sel_rows_01_12(int b, int c) { return b == 0 ? (c == 0 || c == 1) : (c == 1 || c == 2); }
static int sel_0123(int b, int c) { (void)b; return c < 4; }
static int sel_part_rows(int b, int c) { return b == 0 ? c < 4 : c >= 2; }

static void test_swap_goldens(void) {
    vene_iv iv;
    float out[SN], want[SN];
    subsp s;

    /* VanillaIntervention(embed_dim=2), no subspaces: coords 0-1 from the source in every
     * row; first row [36,37,2,3,4,5]. */
    CHECK(vene_iv_init(&iv, VENE_IV_VANILLA, 2, 0, &err) == VENE_OK);
    CHECK(run_swap(&iv, NULL, NULL, out, NULL) == VENE_OK);
    expect_swap(want, NULL, sel_01);
    CHECK_CLOSE(out, want, SN, 0, "vanilla prefix 2");
    CHECK(out[0] == 36 && out[1] == 37 && out[2] == 2 && out[5] == 5);
    vene_iv_free(&iv);

    /* pyvene golden: subspaces [[1,0],[0,1],[1,2]] (3 rows, batch 2) takes path B, pairing
     * row r with *unit* r. Intended semantics (spec §16 #2) pair row b with example b, so 3
     * rows for 2 examples is an error here. */
    vene_iv_init(&iv, VENE_IV_VANILLA, -1, 0, &err);
    static const int rows3[] = {1, 0, -1, 0, 1, -1, 1, 2, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 3, rows3), out, NULL) == VENE_ERR_RANGE);
    CHECK(has(err.msg, "VanillaIntervention") && has(err.msg, "3 subspace rows") && has(err.msg, "2 examples"));

    /* Intended variant of that golden: rows [[1,0],[1,2]] -> example 0 takes coords {0,1},
     * example 1 takes {1,2}, on every unit. (pyvene path B would give unit 0 {0,1} and unit
     * 1 {1,2} in both examples.) */
    static const int rows2[] = {1, 0, -1, 1, 2, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 2, rows2), out, NULL) == VENE_OK);
    expect_swap(want, NULL, sel_rows_01_12);
    CHECK_CLOSE(out, want, SN, 0, "vanilla per-example rows");
    CHECK(out[0] == 36 && out[1] == 37 && out[2] == 2);   /* example 0, unit 0 */
    CHECK(out[18] == 18 && out[19] == 55 && out[20] == 56 && out[21] == 21);   /* example 1 */

    /* Single row: applies to every example (path A). */
    static const int row_01[] = {0, 1, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 1, row_01), out, NULL) == VENE_OK);
    expect_swap(want, NULL, sel_01);
    CHECK_CLOSE(out, want, SN, 0, "vanilla single row");

    /* Partition [[0,2],[2,4],[4,6]]: ids [1,0] -> coords [2,3,0,1] (order listed). As in
     * the use_fast golden, one row [1,0] gives coords 0..3 everywhere. */
    set_partition_pairs(&iv);
    CHECK(iv.part.n == 3 && iv.part.offsets[3] == 6 && iv.part.coords[2] == 2);
    static const int row_10[] = {1, 0, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 1, row_10), out, NULL) == VENE_OK);
    expect_swap(want, NULL, sel_0123);
    CHECK_CLOSE(out, want, SN, 0, "vanilla partition single row");

    /* Partition + rows [[1,0],[1,2]] (intended): example 0 coords 2,3,0,1; example 1 2..5.
     * (pyvene's golden with 3 rows: unit 0 coords 2,3,0,1; unit 1 0..3; unit 2 2..5.) */
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 2, rows2), out, NULL) == VENE_OK);
    expect_swap(want, NULL, sel_part_rows);
    CHECK_CLOSE(out, want, SN, 0, "vanilla partition per-example rows");

    /* Broadcast source 36..41 as [6] + partition. use_fast golden: row [1,0] everywhere ->
     * rows [36,37,38,39,4,5], [36,37,38,39,10,11], [36,37,38,39,16,17], ... */
    float vec[SD];
    iota(vec, SD, 36);
    int64_t vshape[1] = {SD};
    vene_tensor vt = tens(vec, 1, vshape);
    CHECK(run_swap(&iv, &vt, mk_ss(&s, 1, row_10), out, NULL) == VENE_OK);
    expect_swap(want, vec, sel_0123);
    CHECK_CLOSE(out, want, SN, 0, "broadcast partition single row");
    CHECK(out[6] == 36 && out[9] == 39 && out[10] == 10 && out[12] == 36 && out[16] == 16);
    /* Broadcast + per-example rows (intended; pyvene's 3-row golden gives rows
     * [36,37,38,39,4,5], [36,37,38,39,10,11], [12,13,38,39,40,41] for units 0-2). */
    CHECK(run_swap(&iv, &vt, mk_ss(&s, 2, rows2), out, NULL) == VENE_OK);
    expect_swap(want, vec, sel_part_rows);
    CHECK_CLOSE(out, want, SN, 0, "broadcast partition per-example rows");
    CHECK(out[18] == 18 && out[19] == 19 && out[20] == 38 && out[23] == 41);

    /* Out-of-range subspace ids. */
    static const int row_3[] = {3, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 1, row_3), out, NULL) == VENE_ERR_RANGE);
    CHECK(has(err.msg, "subspace id 3") && has(err.msg, "3 parts"));
    /* A negative id (built by hand: mk_ss uses negatives as row ends). */
    s.off[0] = 0, s.off[1] = 2, s.ids[0] = 0, s.ids[1] = -2;
    s.ss.n_rows = 1, s.ss.row_offsets = s.off, s.ss.ids = s.ids;
    CHECK(run_swap(&iv, NULL, &s.ss, out, NULL) == VENE_ERR_RANGE);
    vene_iv_free(&iv);
    vene_iv_init(&iv, VENE_IV_VANILLA, -1, 0, &err);
    static const int row_6[] = {0, 6, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 1, row_6), out, NULL) == VENE_ERR_RANGE);
    CHECK(has(err.msg, "subspace id 6") && has(err.msg, "width 6"));

    /* Mismatched broadcasts: last dim differs, or a leading dim that is neither 1 nor equal. */
    int64_t s5[1] = {5}, s26[2] = {2, 6}, s36[2] = {3, 6}, s136[3] = {1, 3, 6};
    vene_tensor bad = tens(vec, 1, s5);
    CHECK(run_swap(&iv, &bad, NULL, out, NULL) == VENE_ERR_ARG);
    CHECK(has(err.msg, "[5]") && has(err.msg, "[2, 3, 6]"));
    float big[SN];
    iota(big, SN, 100);
    bad = tens(big, 2, s26);
    CHECK(run_swap(&iv, &bad, NULL, out, NULL) == VENE_ERR_ARG);
    /* [3, 6] and [1, 3, 6] broadcast over the batch. */
    vene_tensor ok = tens(big, 2, s36);
    CHECK(run_swap(&iv, &ok, NULL, out, NULL) == VENE_OK);
    CHECK(out[0] == 100 && out[17] == 117 && out[18] == 100 && out[35] == 117);
    ok = tens(big, 3, s136);
    CHECK(run_swap(&iv, &ok, NULL, out, NULL) == VENE_OK && out[20] == 102);

    /* Missing source. */
    float b0[SN];
    iota(b0, SN, 0);
    vene_tensor bt = tens(b0, 3, S_SHAPE);
    CHECK(vene_iv_apply(&iv, &bt, NULL, NULL, NULL, &err) == VENE_ERR_STATE);
    CHECK(has(err.msg, "VanillaIntervention"));
    vene_iv_free(&iv);
}

static void test_collect(void) {
    vene_iv iv;
    float out[SN];
    subsp s;
    vene_tensor col;

    /* CollectIntervention(partition) with one row [1,0] (the golden's row 0, applied to every
     * example): batch 0 -> [[2,3,0,1],[8,9,6,7],[14,15,12,13]]. pyvene's 3-row golden gives
     * [[2,3,0,1],[6,7,8,9],[14,15,16,17]] by pairing rows with units (path B). */
    CHECK(vene_iv_init(&iv, VENE_IV_COLLECT, -1, 0, &err) == VENE_OK);
    set_partition_pairs(&iv);
    static const int row_10[] = {1, 0, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 1, row_10), out, &col) == VENE_OK);
    CHECK(col.data && col.ndim == 3 && col.shape[0] == 2 && col.shape[1] == 3 && col.shape[2] == 4);
    static const float want1[24] = {2, 3, 0, 1, 8, 9, 6, 7, 14, 15, 12, 13,
                                    20, 21, 18, 19, 26, 27, 24, 25, 32, 33, 30, 31};
    if (col.data) CHECK_CLOSE(col.data, want1, 24, 0, "collect single row");
    free(col.data);
    float base0[SN];
    iota(base0, SN, 0);
    CHECK_CLOSE(out, base0, SN, 0, "collect leaves base unchanged");

    /* Per-example rows [[1,0],[0,1]]: example 1 takes coords 0..3. */
    static const int rows2[] = {1, 0, -1, 0, 1, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 2, rows2), out, &col) == VENE_OK);
    static const float want2[24] = {2, 3, 0, 1, 8, 9, 6, 7, 14, 15, 12, 13,
                                    18, 19, 20, 21, 24, 25, 26, 27, 30, 31, 32, 33};
    if (col.data) CHECK_CLOSE(col.data, want2, 24, 0, "collect per-example rows");
    free(col.data);

    /* Ragged: example 0 selects 4 coordinates, example 1 two. */
    static const int ragged[] = {1, 0, -1, 1, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 2, ragged), out, &col) == VENE_ERR_ARG);
    CHECK(col.data == NULL && has(err.msg, "CollectIntervention") && has(err.msg, "ragged") &&
          has(err.msg, "selects 4") && has(err.msg, "selects 2"));
    vene_iv_free(&iv);

    /* Prefix collect (embed_dim 2): base[..., :2]. */
    vene_iv_init(&iv, VENE_IV_COLLECT, 2, 0, &err);
    CHECK(run_swap(&iv, NULL, NULL, out, &col) == VENE_OK);
    CHECK(col.shape[2] == 2 && col.data && col.data[0] == 0 && col.data[1] == 1 && col.data[2] == 6 &&
          col.data[11] == 31);
    free(col.data);
    CHECK(run_swap(&iv, NULL, NULL, out, NULL) == VENE_ERR_ARG);
    vene_iv_free(&iv);
}

static void test_add_sub_zero_skip(void) {
    vene_iv iv;
    float out[SN], want[SN], vec[SD] = {1, -2, 3, -4, 5, -6};
    int64_t vshape[1] = {SD};
    vene_tensor vt = tens(vec, 1, vshape);
    subsp s;

    /* Addition with a [D] steering vector on every coordinate. */
    vene_iv_init(&iv, VENE_IV_ADDITION, -1, 0, &err);
    CHECK(run_swap(&iv, &vt, NULL, out, NULL) == VENE_OK);
    for (int i = 0; i < SN; i++) want[i] = (float)i + vec[i % SD];
    CHECK_CLOSE(out, want, SN, 0, "addition steering");
    vene_iv_free(&iv);

    /* Subtraction with per-example subspace rows [[0],[5]]. */
    vene_iv_init(&iv, VENE_IV_SUBTRACTION, -1, 0, &err);
    static const int rows[] = {0, -1, 5, -1};
    CHECK(run_swap(&iv, NULL, mk_ss(&s, 2, rows), out, NULL) == VENE_OK);
    for (int i = 0; i < SN; i++) {
        int b = i / (SK * SD), c = i % SD;
        want[i] = (float)i - (((b == 0 && c == 0) || (b == 1 && c == 5)) ? (float)(36 + i) : 0.0f);
    }
    CHECK_CLOSE(out, want, SN, 0, "subtraction per-example");
    vene_iv_free(&iv);

    /* Zero, prefix 3 (needs no source). */
    vene_iv_init(&iv, VENE_IV_ZERO, 3, 0, &err);
    float b0[SN];
    iota(b0, SN, 1);
    vene_tensor bt = tens(b0, 3, S_SHAPE);
    CHECK(vene_iv_apply(&iv, &bt, NULL, NULL, NULL, &err) == VENE_OK);
    for (int i = 0; i < SN; i++) want[i] = (i % SD) < 3 ? 0.0f : (float)(i + 1);
    CHECK_CLOSE(b0, want, SN, 0, "zero prefix 3");
    vene_iv_free(&iv);

    /* Skip behaves like Vanilla here (the engine supplies the module's input as source). */
    vene_iv_init(&iv, VENE_IV_SKIP, 4, 0, &err);
    CHECK(run_swap(&iv, NULL, NULL, out, NULL) == VENE_OK);
    for (int i = 0; i < SN; i++) want[i] = (i % SD) < 4 ? (float)(36 + i) : (float)i;
    CHECK_CLOSE(out, want, SN, 0, "skip prefix 4");
    vene_iv_free(&iv);

    /* Constant source_representation (used when source is NULL), broadcast. */
    vene_iv_init(&iv, VENE_IV_VANILLA, -1, 0, &err);
    CHECK(set_f32(&iv, "source_representation", vec, 1, vshape) == VENE_OK);
    iota(b0, SN, 0);
    CHECK(vene_iv_apply(&iv, &bt, NULL, NULL, NULL, &err) == VENE_OK);
    for (int i = 0; i < SN; i++) want[i] = vec[i % SD];
    CHECK_CLOSE(b0, want, SN, 0, "source_representation");
    vene_iv_free(&iv);

    /* Interchange on a 4-D block (localist: per unit on the last dim, never flattened). */
    vene_iv_init(&iv, VENE_IV_VANILLA, -1, 0, &err);
    int64_t sh4[4] = {2, 3, 2, 3};
    iota(b0, SN, 0);
    float s4[SN];
    iota(s4, SN, 100);
    vene_tensor b4 = tens(b0, 4, sh4), src4 = tens(s4, 4, sh4);
    static const int rows4[] = {2, -1, 0, -1};
    CHECK(vene_iv_apply(&iv, &b4, &src4, mk_ss(&s, 2, rows4), NULL, &err) == VENE_OK);
    for (int i = 0; i < SN; i++) {
        int b = i / 18, c = i % 3;
        want[i] = (b == 0 ? c == 2 : c == 0) ? (float)(100 + i) : (float)i;
    }
    CHECK_CLOSE(b0, want, SN, 0, "vanilla 4-D per-example");
    vene_iv_free(&iv);
}

/* ---------------------------------------------------------------- noise, sigmoid mask */

static void test_noise(void) {
    vene_iv iv;
    /* Known noise 1 x 4 x 3, level 0.25, on a [2, 4, 3] block. */
    double noise[12];
    for (int i = 0; i < 12; i++) noise[i] = 0.1 * (i + 1) * ((i % 2) ? -1 : 1) + 1e-9 * i;
    int64_t nshape[3] = {1, 4, 3};
    CHECK(vene_iv_init(&iv, VENE_IV_NOISE, 3, 0, &err) == VENE_OK);
    CHECK(fabsf(iv.noise_level - 0.13462981581687927f) < 1e-9f);
    st_tensor nt = stt(ST_F64, noise, 3, nshape);
    CHECK(vene_iv_set_param(&iv, "noise", &nt, &err) == VENE_OK);
    float lvl = 0.25f;
    CHECK(set_f32(&iv, "noise_level", &lvl, 0, NULL) == VENE_OK);
    float x[24], want[24];
    for (int i = 0; i < 24; i++) x[i] = 0.5f * (float)i - 3.3f;
    for (int i = 0; i < 24; i++) want[i] = (float)((double)x[i] + noise[i % 12] * 0.25);
    int64_t xs[3] = {2, 4, 3};
    vene_tensor xt = tens(x, 3, xs);
    CHECK(vene_iv_apply(&iv, &xt, NULL, NULL, NULL, &err) == VENE_OK);
    CHECK_CLOSE(x, want, 24, 0, "noise");
    /* Units != 4. */
    int64_t x3[3] = {2, 3, 3}, x2[2] = {8, 3};
    xt = tens(x, 3, x3);
    CHECK(vene_iv_apply(&iv, &xt, NULL, NULL, NULL, &err) == VENE_ERR_ARG);
    CHECK(has(err.msg, "NoiseIntervention") && has(err.msg, "3 units") && has(err.msg, "1 x 4 x 3"));
    xt = tens(x, 2, x2);
    CHECK(vene_iv_apply(&iv, &xt, NULL, NULL, NULL, &err) == VENE_ERR_ARG);
    /* The noise must cover the intervened prefix: [:3] of a 2-wide block is 2 wide. (A
     * 6-wide block is fine: pyvene adds to base[..., :3].) */
    int64_t x4[3] = {1, 4, 2};
    xt = tens(x, 3, x4);
    CHECK(vene_iv_apply(&iv, &xt, NULL, NULL, NULL, &err) == VENE_ERR_ARG);
    int64_t x6[3] = {1, 4, 6};
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    xt = tens(x, 3, x6);
    CHECK(vene_iv_apply(&iv, &xt, NULL, NULL, NULL, &err) == VENE_OK);
    CHECK(x[3] == 3 && x[23] == 23 && x[0] == (float)(0 + noise[0] * 0.25) && x[8] == (float)(8 + noise[5] * 0.25));
    /* Bad noise shape. */
    int64_t nbad2[2] = {4, 3};
    nt = stt(ST_F64, noise, 2, nbad2);
    CHECK(vene_iv_set_param(&iv, "noise", &nt, &err) == VENE_ERR_ARG && has(err.msg, "[4, 3]"));
    vene_iv_free(&iv);

    /* Default noise (finalize) = numpy RandomState(1).randn(1, 4, E). */
    vene_iv_init(&iv, VENE_IV_NOISE, 6, 0, &err);
    CHECK(vene_iv_finalize(&iv, 123, &err) == VENE_OK);
    CHECK(iv.noise && iv.noise_units == 4 && iv.noise_dim == 6);
    if (iv.noise) CHECK(fabs(iv.noise[0] - 1.6243453636632417) < 1e-15 && fabs(iv.noise[3] + 1.0729686221561705) < 1e-15);
    vene_iv_free(&iv);
}

static void test_sigmoid_mask(void) {
    vene_iv iv;
    CHECK(vene_iv_init(&iv, VENE_IV_SIGMOID_MASK, 3, 0, &err) == VENE_OK);
    CHECK(fabsf(iv.temperature - 0.01f) < 1e-9f);
    float mask[3] = {-1, 0, 2}, T = 0.5f;
    int64_t ms[1] = {3};
    CHECK(set_f32(&iv, "mask", mask, 1, ms) == VENE_OK);
    CHECK(set_f32(&iv, "temperature", &T, 0, NULL) == VENE_OK);
    float x[6] = {1, 2, 3, 4, 5, 6}, s[6] = {-1, 10, 20, 0.5f, 0, 9}, want[6];
    for (int i = 0; i < 6; i++) {
        double m = 1 / (1 + exp(-(double)mask[i % 3] / T));
        want[i] = (float)((1 - m) * x[i] + m * s[i]);
    }
    int64_t sh[3] = {2, 1, 3};
    vene_tensor xt = tens(x, 3, sh), st = tens(s, 3, sh);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    CHECK_CLOSE(x, want, 6, 1e-6, "sigmoid mask");
    /* Mask length must equal the last dim. */
    int64_t sh2[2] = {1, 6};
    xt = tens(x, 2, sh2), st = tens(s, 2, sh2);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_ERR_ARG && has(err.msg, "3 entries"));
    int64_t ms4[1] = {4};
    float m4[4] = {0};
    CHECK(set_f32(&iv, "mask", m4, 1, ms4) == VENE_ERR_ARG);
    CHECK(has(err.msg, "SigmoidMaskIntervention") && has(err.msg, "'mask'") && has(err.msg, "[4]"));
    vene_iv_free(&iv);
    /* Default mask 0: m = 0.5. */
    vene_iv_init(&iv, VENE_IV_SIGMOID_MASK, 2, 0, &err);
    CHECK(vene_iv_finalize(&iv, 0, &err) == VENE_OK && iv.masks && iv.masks_len == 2);
    float a[2] = {1, 3}, b[2] = {3, 5};
    int64_t s12[2] = {1, 2};
    xt = tens(a, 2, s12), st = tens(b, 2, s12);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK && a[0] == 2 && a[1] == 4);
    vene_iv_free(&iv);
}

/* ---------------------------------------------------------------- rotations */

static void test_rotated(void) {
    vene_iv iv;
    enum { E = 6 };
    CHECK(vene_iv_init(&iv, VENE_IV_ROTATED, E, 0, &err) == VENE_OK);
    CHECK(vene_iv_finalize(&iv, 7, &err) == VENE_OK);
    CHECK(iv.W && iv.base && iv.original && orth_err(iv.W, E, E) < 1e-5);
    float x[12], s[12], x0[12];
    for (int i = 0; i < 12; i++) x0[i] = x[i] = sinf((float)i), s[i] = cosf(0.7f * (float)i) * 2;
    int64_t sh[2] = {2, E};
    vene_tensor xt = tens(x, 2, sh), st = tens(s, 2, sh);
    /* interchange_dim = E (pyvene's default): out = source. */
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    CHECK_CLOSE(x, s, 12, 1e-5, "rotated interchange_dim=E returns source");
    /* interchange_dim = 0: out = base. */
    memcpy(x, x0, sizeof x);
    iv.interchange_dim = 0;
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    CHECK_CLOSE(x, x0, 12, 1e-5, "rotated interchange_dim=0 returns base");
    /* Per-example subspaces rows [[0,4],[2]] vs a direct computation. */
    memcpy(x, x0, sizeof x);
    subsp ss;
    static const int rows[] = {0, 4, -1, 2, -1};
    CHECK(vene_iv_apply(&iv, &xt, &st, mk_ss(&ss, 2, rows), NULL, &err) == VENE_OK);
    double rx[12], rs[12];
    dmatmul(x0, iv.W, 2, E, E, rx);
    dmatmul(s, iv.W, 2, E, E, rs);
    rx[0] = rs[0], rx[4] = rs[4], rx[E + 2] = rs[E + 2];
    float want[12];
    for (int b = 0; b < 2; b++)
        for (int f = 0; f < E; f++) {
            double v = 0;
            for (int c = 0; c < E; c++) v += rx[b * E + c] * iv.W[f * E + c];
            want[b * E + f] = (float)v;
        }
    CHECK_CLOSE(x, want, 12, 1e-5, "rotated per-example subspaces");
    /* Flattened width != E. */
    int64_t sh3[3] = {1, 2, E};
    xt = tens(x, 3, sh3), st = tens(s, 3, sh3);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_ERR_ARG);
    CHECK(has(err.msg, "RotatedSpaceIntervention") && has(err.msg, "width 12") && has(err.msg, "embed_dim is 6"));
    vene_iv_free(&iv);
    /* No weight yet. */
    vene_iv_init(&iv, VENE_IV_ROTATED, E, 0, &err);
    xt = tens(x, 2, sh), st = tens(s, 2, sh);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_ERR_STATE);
    vene_iv_free(&iv);
}

static void test_lowrank(void) {
    vene_iv iv;
    enum { E = 8, R = 3, B = 2 };
    CHECK(vene_iv_init(&iv, VENE_IV_LOWRANK_ROTATED, E, R, &err) == VENE_OK);
    CHECK(vene_iv_finalize(&iv, 11, &err) == VENE_OK);
    CHECK(iv.W && orth_err(iv.W, E, R) < 1e-5);
    /* Seeded init: W = base[:, :r], original = -I pattern, and the parametrisation of
     * (original, base) gives W back. */
    int first_cols = 1;
    for (int i = 0; i < E; i++)
        for (int j = 0; j < R; j++) first_cols &= iv.W[i * R + j] == iv.base[i * E + j];
    CHECK(first_cols && iv.original[0] == -1 && iv.original[R + 1] == -1 && iv.original[1] == 0);
    float Wp[E * R];
    CHECK(vene_orthogonal_weight(iv.original, iv.base, E, R, Wp, &err) == VENE_OK);
    CHECK_CLOSE(Wp, iv.W, E * R, 1e-6, "parametrisation at init = base[:, :r]");

    /* [2, 2, 4] block, flattened to [2, 8]: out = x + (s - x) W W^T. */
    float x[16], s[16], x0[16], want[16];
    for (int i = 0; i < 16; i++) x0[i] = x[i] = 0.3f * (float)i - 2, s[i] = cosf((float)i);
    int64_t sh[3] = {B, 2, 4};
    vene_tensor xt = tens(x, 3, sh), st = tens(s, 3, sh);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    double rx[B * R], rs[B * R];
    dmatmul(x0, iv.W, B, E, R, rx);
    dmatmul(s, iv.W, B, E, R, rs);
    for (int b = 0; b < B; b++)
        for (int f = 0; f < E; f++) {
            double v = x0[b * E + f];
            for (int c = 0; c < R; c++) v += (rs[b * R + c] - rx[b * R + c]) * iv.W[f * R + c];
            want[b * E + f] = (float)v;
        }
    CHECK_CLOSE(x, want, 16, 1e-5, "lowrank all columns");

    /* Partition [[0,1],[1,3]], rows [[1],[0]]: example 0 uses columns 1,2; example 1 column 0. */
    static const int p0[2] = {0, 1}, p1[2] = {1, 3};
    const int *vals[2] = {p0, p1};
    int lens[2] = {2, 2}, isr[2] = {1, 1};
    CHECK(vene_iv_set_partition(&iv, 2, lens, vals, isr, &err) == VENE_OK);
    subsp ss;
    static const int rows[] = {1, -1, 0, -1};
    memcpy(x, x0, sizeof x);
    CHECK(vene_iv_apply(&iv, &xt, &st, mk_ss(&ss, 2, rows), NULL, &err) == VENE_OK);
    for (int b = 0; b < B; b++)
        for (int f = 0; f < E; f++) {
            double v = x0[b * E + f];
            for (int c = 0; c < R; c++)
                if ((b == 0) == (c >= 1)) v += (rs[b * R + c] - rx[b * R + c]) * iv.W[f * R + c];
            want[b * E + f] = (float)v;
        }
    CHECK_CLOSE(x, want, 16, 1e-5, "lowrank per-example partition");
    /* Id past the partition. */
    static const int row2[] = {2, -1};
    CHECK(vene_iv_apply(&iv, &xt, &st, mk_ss(&ss, 1, row2), NULL, &err) == VENE_ERR_RANGE);
    CHECK(has(err.msg, "LowRankRotatedSpaceIntervention") && has(err.msg, "2 parts"));
    vene_iv_free(&iv);
}

static void test_boundless(void) {
    /* Spec §8.9 golden: E = 6, base [[0..5],[6..11]], source = base + 12, T = 50, b = 0.5,
     * rotation = identity: output = base + 12 m_i ~ base + 3.09 (int cast: base + 3). */
    vene_iv iv;
    enum { E = 6 };
    CHECK(vene_iv_init(&iv, VENE_IV_BOUNDLESS_ROTATED, E, 0, &err) == VENE_OK);
    CHECK(iv.temperature == 50.0f && iv.boundary == 0.5f);
    float I[E * E] = {0};
    for (int i = 0; i < E; i++) I[i * E + i] = 1;
    int64_t ws[2] = {E, E};
    CHECK(set_f32(&iv, "rotate_layer.weight", I, 2, ws) == VENE_OK);
    CHECK(vene_iv_finalize(&iv, 0, &err) == VENE_OK);
    float x[12], s[12];
    iota(x, 12, 0);
    iota(s, 12, 12);
    int64_t sh[2] = {2, E};
    vene_tensor xt = tens(x, 2, sh), st = tens(s, 2, sh);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    double msum = 0;
    int ints = 1;
    for (int i = 0; i < E; i++) {
        double m = 1 / (1 + exp(-i / 50.0)) / (1 + exp(-(3.0 - i) / 50.0));
        msum += m;
        for (int b = 0; b < 2; b++) {
            float got = x[b * E + i] - (float)(b * E + i);
            CHECK_MSG(fabs(got - 12 * m) < 1e-5 && fabs(got - 3.09) < 0.01, "i=%d got +%g want +%g", i, got, 12 * m);
            ints &= (int)x[b * E + i] == b * E + i + 3;
        }
    }
    CHECK(fabs(12 * msum / E - 3.09) < 0.005);
    CHECK(ints);

    /* Flattened like the other rotations (spec §16 #3): [2, 2, 3] with E = 6 gives the same. */
    iota(x, 12, 0);
    int64_t sh3[3] = {2, 2, 3};
    xt = tens(x, 3, sh3), st = tens(s, 3, sh3);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    CHECK(fabs(x[5] - 5 - 12 * (1 / (1 + exp(-5 / 50.0)) / (1 + exp(2 / 50.0)))) < 1e-5);

    /* Boundary clamped into [1e-3, 1]; a sharp temperature gives a hard prefix. */
    float bnd = 7.0f, T = 0.01f;
    int64_t one[1] = {1};
    CHECK(set_f32(&iv, "intervention_boundaries", &bnd, 1, one) == VENE_OK);
    CHECK(set_f32(&iv, "temperature", &T, 0, NULL) == VENE_OK);
    iota(x, 12, 0);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    /* b = 1: m_0 = 0.5 (sigma(0)), m_1..5 = 1. */
    CHECK(fabsf(x[0] - 6) < 1e-5f && fabsf(x[1] - 13) < 1e-5f && fabsf(x[11] - 23) < 1e-5f);

    /* intervention_population: must be arange(E), I64. */
    int64_t pop[E] = {0, 1, 2, 3, 4, 5}, ps[1] = {E};
    st_tensor pt = stt(ST_I64, pop, 1, ps);
    CHECK(vene_iv_set_param(&iv, "intervention_population", &pt, &err) == VENE_OK);
    pop[3] = 4;
    CHECK(vene_iv_set_param(&iv, "intervention_population", &pt, &err) != VENE_OK);
    CHECK(has(err.msg, "intervention_population"));
    int64_t ps5[1] = {5};
    pt = stt(ST_I64, pop, 1, ps5);
    CHECK(vene_iv_set_param(&iv, "intervention_population", &pt, &err) == VENE_ERR_ARG);
    /* Boundary shape [1] only. */
    float two[2] = {0.1f, 0.2f};
    int64_t s2[1] = {2};
    CHECK(set_f32(&iv, "intervention_boundaries", two, 1, s2) == VENE_ERR_ARG && has(err.msg, "[2]"));
    vene_iv_free(&iv);
}

static void test_sigmoid_mask_rotated(void) {
    vene_iv iv;
    enum { E = 4 };
    CHECK(vene_iv_init(&iv, VENE_IV_SIGMOID_MASK_ROTATED, E, 0, &err) == VENE_OK);
    CHECK(vene_iv_finalize(&iv, 5, &err) == VENE_OK && iv.masks && iv.masks_len == E && iv.masks[3] == 100.0f);
    float masks[E] = {-30, 0, 15, 80}, T = 20;
    int64_t ms[1] = {E};
    CHECK(set_f32(&iv, "masks", masks, 1, ms) == VENE_OK);
    CHECK(set_f32(&iv, "temperature", &T, 0, NULL) == VENE_OK);
    float x[8], s[8], x0[8], want[8];
    for (int i = 0; i < 8; i++) x0[i] = x[i] = (float)i - 3, s[i] = 2 * sinf((float)i);
    int64_t sh[2] = {2, E};
    vene_tensor xt = tens(x, 2, sh), st = tens(s, 2, sh);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    double rx[8], rs[8];
    dmatmul(x0, iv.W, 2, E, E, rx);
    dmatmul(s, iv.W, 2, E, E, rs);
    for (int b = 0; b < 2; b++)
        for (int f = 0; f < E; f++) {
            double v = 0;
            for (int c = 0; c < E; c++) {
                double m = 1 / (1 + exp(-masks[c] / T));
                v += ((1 - m) * rx[b * E + c] + m * rs[b * E + c]) * iv.W[f * E + c];
            }
            want[b * E + f] = (float)v;
        }
    CHECK_CLOSE(x, want, 8, 1e-5, "sigmoid mask rotated");
    int64_t ms3[1] = {3};
    CHECK(set_f32(&iv, "masks", masks, 1, ms3) == VENE_ERR_ARG);
    vene_iv_free(&iv);
}

/* 4-D blocks B x k1 x k2 x d flatten to B x k2 x (k1 d): heads concatenated per position. */
static void test_flatten_4d(void) {
    enum { B = 2, K1 = 2, K2 = 3, D = 2, E = K1 * D, N = B * K1 * K2 * D };
    vene_iv iv;
    CHECK(vene_iv_init(&iv, VENE_IV_ROTATED, E, 0, &err) == VENE_OK);
    /* A non-symmetric orthogonal W from a random original. */
    float orig[E * E], base[E * E] = {0};
    vene_rng r;
    vene_rng_seed(&r, 99);
    for (int i = 0; i < E * E; i++) orig[i] = (float)vene_rng_normal(&r);
    for (int i = 0; i < E; i++) base[i * E + i] = 1;
    int64_t ws[2] = {E, E};
    CHECK(set_f32(&iv, "rotate_layer.parametrizations.weight.original", orig, 2, ws) == VENE_OK);
    CHECK(set_f32(&iv, "rotate_layer.parametrizations.weight.0.base", base, 2, ws) == VENE_OK);
    CHECK(vene_iv_finalize(&iv, 0, &err) == VENE_OK && iv.W);
    CHECK(orth_err(iv.W, E, E) < 1e-5 && fabsf(iv.W[1] - iv.W[E]) > 1e-3f);
    iv.interchange_dim = 1;
    float x[N], s[N], x0[N], want[N];
    for (int i = 0; i < N; i++) x0[i] = x[i] = (float)i, s[i] = 100.0f - 3 * (float)i;
    int64_t sh[4] = {B, K1, K2, D};
    vene_tensor xt = tens(x, 4, sh), st = tens(s, 4, sh);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    for (int b = 0; b < B; b++)
        for (int p = 0; p < K2; p++) {
            float vx[E], vs[E];
            for (int h = 0; h < K1; h++)
                for (int j = 0; j < D; j++) {
                    int at = ((b * K1 + h) * K2 + p) * D + j;
                    vx[h * D + j] = x0[at];
                    vs[h * D + j] = s[at];
                }
            double rx[E], rs[E];
            dmatmul(vx, iv.W, 1, E, E, rx);
            dmatmul(vs, iv.W, 1, E, E, rs);
            rx[0] = rs[0];
            for (int h = 0; h < K1; h++)
                for (int j = 0; j < D; j++) {
                    double v = 0;
                    for (int c = 0; c < E; c++) v += rx[c] * iv.W[(h * D + j) * E + c];
                    want[((b * K1 + h) * K2 + p) * D + j] = (float)v;
                }
        }
    CHECK_CLOSE(x, want, N, 1e-5, "4-D flatten order");
    /* keep_last_dim: rows of the last dim; [B, 3, 4] block with E = 4. */
    iv.keep_last_dim = 1;
    int64_t sh3[3] = {B, N / (B * E), E};
    memcpy(x, x0, sizeof x);
    xt = tens(x, 3, sh3), st = tens(s, 3, sh3);
    CHECK(vene_iv_apply(&iv, &xt, &st, NULL, NULL, &err) == VENE_OK);
    for (int row = 0; row < N / E; row++) {
        double rx[E], rs[E];
        dmatmul(x0 + row * E, iv.W, 1, E, E, rx);
        dmatmul(s + row * E, iv.W, 1, E, E, rs);
        rx[0] = rs[0];
        for (int f = 0; f < E; f++) {
            double v = 0;
            for (int c = 0; c < E; c++) v += rx[c] * iv.W[f * E + c];
            want[row * E + f] = (float)v;
        }
    }
    CHECK_CLOSE(x, want, N, 1e-5, "keep_last_dim rows");
    vene_iv_free(&iv);
}

/* ---------------------------------------------------------------- orthogonal parametrisation */

static void check_golden_rotation(const char *file, vene_iv_type type, int E, int r) {
    st_file *f = NULL;
    char path[256];
    snprintf(path, sizeof path, FIX "%s.inputs.safetensors", file);
    CHECK_MSG(st_open(path, &f, &err) == VENE_OK, "%s", err.msg);
    if (!f) return;
    const st_tensor *o = st_find(f, "iv0.rotate_layer.parametrizations.weight.original");
    const st_tensor *b = st_find(f, "iv0.rotate_layer.parametrizations.weight.0.base");
    const st_tensor *w = st_find(f, "iv0.rotate_layer.weight");
    CHECK(o && b && w && o->shape[0] == E && o->shape[1] == r && b->shape[1] == E);
    if (o && b && w) {
        /* Through the parameter API: original + base, W computed by finalize. */
        vene_iv iv;
        CHECK(vene_iv_init(&iv, type, E, type == VENE_IV_LOWRANK_ROTATED ? r : 0, &err) == VENE_OK);
        CHECK(vene_iv_set_param(&iv, "rotate_layer.parametrizations.weight.original", o, &err) == VENE_OK);
        CHECK(vene_iv_set_param(&iv, "rotate_layer.parametrizations.weight.0.base", b, &err) == VENE_OK);
        CHECK(vene_iv_finalize(&iv, 0, &err) == VENE_OK && iv.W);
        float *want = malloc(sizeof(float) * (size_t)E * r);
        CHECK(st_to_f32(w, want, &err) == VENE_OK);
        if (iv.W) {
            CHECK_CLOSE(iv.W, want, (long)E * r, 1e-5, file);
            CHECK_MSG(orth_err(iv.W, E, r) < 1e-5, "%s: W^T W - I = %g", file, orth_err(iv.W, E, r));
        }
        /* Loading the exported W directly. */
        vene_iv iv2;
        vene_iv_init(&iv2, type, E, type == VENE_IV_LOWRANK_ROTATED ? r : 0, &err);
        CHECK(vene_iv_set_param(&iv2, "rotate_layer.weight", w, &err) == VENE_OK);
        CHECK(vene_iv_finalize(&iv2, 0, &err) == VENE_OK && iv2.W && iv2.W[0] == want[0]);
        /* Wrong shapes for this type. */
        CHECK(vene_iv_set_param(&iv2, "rotate_layer.parametrizations.weight.0.base", o, &err) ==
              (r == E ? VENE_OK : VENE_ERR_ARG));
        free(want);
        vene_iv_free(&iv);
        vene_iv_free(&iv2);
    }
    st_close(f);
}

static void test_orthogonal_goldens(void) {
    check_golden_rotation("iv_rotated_space_subspace", VENE_IV_ROTATED, 64, 64);
    check_golden_rotation("iv_lowrank_rank4_subspace_partition", VENE_IV_LOWRANK_ROTATED, 64, 4);
    check_golden_rotation("t101_das_lowrank_forward", VENE_IV_LOWRANK_ROTATED, 64, 1);
}

/* Random, non-initial originals against torch.nn.utils.parametrizations.orthogonal. */
static void test_orthogonal_torch(void) {
    st_file *f = NULL;
    CHECK_MSG(st_open(FIX "orthogonal_random.safetensors", &f, &err) == VENE_OK, "%s", err.msg);
    if (!f) return;
    static const char *const cases[3] = {"sq", "tall", "trunc"};
    for (int k = 0; k < 3; k++) {
        char n1[64], n2[64], n3[64];
        snprintf(n1, sizeof n1, "%s.original", cases[k]);
        snprintf(n2, sizeof n2, "%s.base", cases[k]);
        snprintf(n3, sizeof n3, "%s.weight", cases[k]);
        const st_tensor *o = st_find(f, n1), *b = st_find(f, n2), *w = st_find(f, n3);
        CHECK(o && b && w);
        if (!o || !b || !w) continue;
        int E = (int)o->shape[0], r = (int)o->shape[1];
        float *O = malloc(sizeof(float) * (size_t)E * r), *Bm = malloc(sizeof(float) * (size_t)E * E);
        float *Wt = malloc(sizeof(float) * (size_t)E * r), *W = malloc(sizeof(float) * (size_t)E * r);
        st_to_f32(o, O, &err);
        st_to_f32(b, Bm, &err);
        st_to_f32(w, Wt, &err);
        CHECK(vene_orthogonal_weight(O, Bm, E, r, W, &err) == VENE_OK);
        CHECK_CLOSE(W, Wt, (long)E * r, 1e-5, cases[k]);
        if (k < 2) CHECK_MSG(orth_err(W, E, r) < 1e-5, "%s: W^T W - I = %g", cases[k], orth_err(W, E, r));
        if (k == 2) {   /* diagonal 2.7, -1.2, 0.5 truncates to 2, -1, 0 */
            double n0 = 0, nz = 0;
            for (int i = 0; i < E; i++) n0 += (double)W[i * r] * W[i * r], nz += fabs(W[i * r + 2]);
            CHECK(fabs(n0 - 4) < 1e-5 && nz == 0);
        }
        free(O), free(Bm), free(Wt), free(W);
    }
    st_close(f);
}

/* Random originals generated here (square and tall), on a seeded orthogonal base. */
static void test_orthogonal_random(void) {
    enum { E = 10, R = 4 };
    vene_iv iv;
    CHECK(vene_iv_init(&iv, VENE_IV_ROTATED, E, 0, &err) == VENE_OK);
    CHECK(vene_iv_finalize(&iv, 2024, &err) == VENE_OK);
    CHECK(orth_err(iv.base, E, E) < 1e-6);
    int eq = 1;
    for (int i = 0; i < E * E; i++) eq &= iv.W[i] == iv.base[i];
    CHECK(eq && iv.original[0] == -1 && iv.original[E + 1] == -1 && iv.original[1] == 0);
    vene_iv other;
    vene_iv_init(&other, VENE_IV_ROTATED, E, 0, &err);
    vene_iv_finalize(&other, 2024, &err);
    CHECK(memcmp(other.W, iv.W, sizeof(float) * E * E) == 0);   /* deterministic */
    vene_iv_free(&other);
    vene_iv_init(&other, VENE_IV_ROTATED, E, 0, &err);
    vene_iv_finalize(&other, 2025, &err);
    CHECK(memcmp(other.W, iv.W, sizeof(float) * E * E) != 0);
    vene_iv_free(&other);

    vene_rng r;
    vene_rng_seed(&r, 5);
    float O[E * E], W[E * E], Ot[E * R], Wt[E * R];
    for (int i = 0; i < E * E; i++) O[i] = (float)(2.0 * vene_rng_normal(&r));
    CHECK(vene_orthogonal_weight(O, iv.base, E, E, W, &err) == VENE_OK);
    CHECK_MSG(orth_err(W, E, E) < 1e-5, "square random: %g", orth_err(W, E, E));
    for (int i = 0; i < E * R; i++) Ot[i] = (float)vene_rng_normal(&r);
    for (int j = 0; j < R; j++) Ot[j * R + j] = (j % 2) ? 1.0f : -1.0f;
    CHECK(vene_orthogonal_weight(Ot, iv.base, E, R, Wt, &err) == VENE_OK);
    CHECK_MSG(orth_err(Wt, E, R) < 1e-5, "tall random: %g", orth_err(Wt, E, R));
    /* Upper-triangle entries of original do not matter (tril). */
    O[1] += 5;
    float W2[E * E];
    vene_orthogonal_weight(O, iv.base, E, E, W2, &err);
    CHECK_CLOSE(W2, W, E * E, 1e-6, "upper triangle ignored");
    /* Bad sizes. */
    CHECK(vene_orthogonal_weight(Ot, iv.base, R, E, Wt, &err) == VENE_ERR_ARG);
    vene_iv_free(&iv);

    /* A larger square rotation (GPT-2 width) stays orthogonal. */
    enum { G = 768 };
    float *Og = malloc(sizeof(float) * G * G), *Bg = calloc((size_t)G * G, sizeof(float));
    float *Wg = malloc(sizeof(float) * G * G);
    for (int i = 0; i < G * G; i++) Og[i] = (float)(0.05 * vene_rng_normal(&r));
    for (int i = 0; i < G; i++) Bg[i * G + i] = 1;
    CHECK(vene_orthogonal_weight(Og, Bg, G, G, Wg, &err) == VENE_OK);
    double worst = 0;
    for (int a = 0; a < 8; a++)   /* a few columns suffice */
        for (int b = 0; b < G; b += 97) {
            double s = 0;
            for (int i = 0; i < G; i++) s += (double)Wg[i * G + a] * Wg[i * G + b];
            if (fabs(s - (a == b)) > worst) worst = fabs(s - (a == b));
        }
    CHECK_MSG(worst < 1e-5, "768 x 768: %g", worst);
    free(Og), free(Bg), free(Wg);
}

/* ---------------------------------------------------------------- parameter errors */

static void test_param_errors(void) {
    vene_iv iv;
    enum { E = 6 };
    float buf[64] = {0};
    CHECK(vene_iv_init(&iv, VENE_IV_ROTATED, E, 0, &err) == VENE_OK);
    int64_t s65[2] = {6, 5}, s66[2] = {6, 6}, s1[1] = {1};
    CHECK(set_f32(&iv, "rotate_layer.parametrizations.weight.original", buf, 2, s65) == VENE_ERR_ARG);
    CHECK(has(err.msg, "RotatedSpaceIntervention") && has(err.msg, "[6, 5]") && has(err.msg, "[6, 6]"));
    CHECK(set_f32(&iv, "masks", buf, 1, s1) == VENE_ERR_ARG);
    CHECK(has(err.msg, "unknown parameter 'masks'") && has(err.msg, "RotatedSpaceIntervention"));
    int64_t ibuf[36] = {0};
    st_tensor it = stt(ST_I64, ibuf, 2, s66);
    CHECK(vene_iv_set_param(&iv, "rotate_layer.weight", &it, &err) == VENE_ERR_ARG && has(err.msg, "I64"));
    CHECK(set_f32(&iv, "rotate_layer.parametrizations.weight.original", buf, 2, s66) == VENE_OK);
    CHECK(vene_iv_finalize(&iv, 0, &err) == VENE_ERR_STATE && has(err.msg, "0.base"));
    /* Scalars: [] or [1]; temperature is not a Rotated parameter. */
    CHECK(set_f32(&iv, "temperature", buf, 0, NULL) == VENE_ERR_ARG);
    /* embed_dim / interchange_dim buffers (0-d int64). */
    int64_t v = 3;
    st_tensor et = stt(ST_I64, &v, 0, NULL);
    CHECK(vene_iv_set_param(&iv, "interchange_dim", &et, &err) == VENE_OK && iv.interchange_dim == 3);
    CHECK(vene_iv_set_param(&iv, "embed_dim", &et, &err) == VENE_ERR_ARG);   /* original is 6 wide */
    v = 6;
    CHECK(vene_iv_set_param(&iv, "embed_dim", &et, &err) == VENE_OK && iv.embed_dim == 6);
    st_tensor ft = stt(ST_F32, buf, 0, NULL);
    CHECK(vene_iv_set_param(&iv, "embed_dim", &ft, &err) == VENE_ERR_ARG);
    vene_iv_free(&iv);

    /* E adopted from the first rotation tensor when unknown; LowRank r too. */
    vene_iv_init(&iv, VENE_IV_LOWRANK_ROTATED, -1, 0, &err);
    int64_t s62[2] = {6, 2};
    CHECK(set_f32(&iv, "rotate_layer.weight", buf, 2, s62) == VENE_OK && iv.embed_dim == 6 && iv.low_rank == 2);
    int64_t s63[2] = {6, 3};
    CHECK(set_f32(&iv, "rotate_layer.parametrizations.weight.original", buf, 2, s63) == VENE_ERR_ARG);
    vene_iv_free(&iv);

    /* Noise level scalar only. */
    vene_iv_init(&iv, VENE_IV_NOISE, 4, 0, &err);
    int64_t s2[1] = {2};
    CHECK(set_f32(&iv, "noise_level", buf, 1, s2) == VENE_ERR_ARG && has(err.msg, "noise_level"));
    CHECK(vene_iv_apply(&iv, &(vene_tensor){buf, 3, {1, 4, 4}}, NULL, NULL, NULL, &err) == VENE_ERR_STATE);
    vene_iv_free(&iv);

    /* Partitions: explicit lists keep their order; bad ranges are rejected. */
    vene_iv_init(&iv, VENE_IV_VANILLA, -1, 0, &err);
    static const int pa[3] = {5, 3, 4}, pb[2] = {0, 2};
    const int *vals[2] = {pa, pb};
    int lens[2] = {3, 2}, isr[2] = {0, 1};
    CHECK(vene_iv_set_partition(&iv, 2, lens, vals, isr, &err) == VENE_OK);
    CHECK(iv.part.n == 2 && iv.part.coords[0] == 5 && iv.part.coords[3] == 0 && iv.part.offsets[2] == 5);
    static const int bad[2] = {4, 2};
    vals[1] = bad;
    CHECK(vene_iv_set_partition(&iv, 2, lens, vals, isr, &err) == VENE_ERR_RANGE);
    CHECK(iv.part.n == 2);   /* unchanged on error */
    CHECK(vene_iv_set_partition(&iv, 0, NULL, NULL, NULL, &err) == VENE_OK && iv.part.n == 0);
    vene_iv_free(&iv);
    vene_iv_free(&iv);   /* safe twice */
}

int main(void) {
    test_names();
    test_rng();
    test_swap_goldens();
    test_collect();
    test_add_sub_zero_skip();
    test_noise();
    test_sigmoid_mask();
    test_rotated();
    test_lowrank();
    test_boundless();
    test_sigmoid_mask_rotated();
    test_flatten_4d();
    test_orthogonal_goldens();
    test_orthogonal_torch();
    test_orthogonal_random();
    test_param_errors();
    TEST_MAIN_END();
}
