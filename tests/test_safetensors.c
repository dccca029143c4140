/* safetensors reader validation, dtype conversion and writer round trips. Every bad file
 * is generated at run time in a temporary directory. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "test.h"
#include "test_tmp.h"

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Count directory entries whose name contains `needle`. */
static int count_entries(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strstr(e->d_name, needle)) n++;
    }
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        return;
    }
    if (n) fwrite(b, 1, n, fp);
    fclose(fp);
}

/* [8-byte length = hlen][header text][data]; hlen = strlen(header) unless given. */
static const char *write_raw(const char *name, const char *header, int64_t hlen, const void *data,
                             size_t dlen) {
    const char *p = tpath(name);
    size_t hl = strlen(header);
    if (hlen < 0) hlen = (int64_t)hl;
    unsigned char *buf = malloc(8 + hl + dlen + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (dlen) memcpy(buf + 8 + hl, data, dlen);
    write_bytes(p, buf, 8 + hl + dlen);
    free(buf);
    return p;
}

/* st_open must fail with `code`, and the message must name the file and contain `a`
 * (and `b` when given). */
static void expect_bad(const char *path, int code, const char *a, const char *b, int line) {
    st_file *f = (st_file *)1;
    vene_error err = {0};
    int rc = st_open(path, &f, &err);
    int ok = rc == code && f == NULL && err.code == code && strstr(err.msg, path) &&
             (!a || strstr(err.msg, a)) && (!b || strstr(err.msg, b));
    CHECK_MSG(ok, "line %d: rc=%s msg='%s' (want %s with '%s' '%s')", line, vene_status_name(rc),
              err.msg, vene_status_name(code), a ? a : "", b ? b : "");
    if (rc == VENE_OK) st_close(f);
}
#define EXPECT_BAD(path, code, a, b) expect_bad((path), (code), (a), (b), __LINE__)

static float zeros24[6];

static void test_bad_files(void) {
    /* shorter than 8 bytes */
    write_bytes(tpath("short.safetensors"), "\x10\0\0\0\0", 5);
    EXPECT_BAD(tpath("short.safetensors"), VENE_ERR_FORMAT, "too short", NULL);
    write_bytes(tpath("empty.safetensors"), "", 0);
    EXPECT_BAD(tpath("empty.safetensors"), VENE_ERR_FORMAT, "0 bytes", NULL);

    /* header cut: a valid file truncated in the middle of its header */
    {
        st_writer *w = st_writer_new();
        int64_t sh[2] = {2, 3};
        CHECK(st_writer_add(w, "weight", ST_F32, 2, sh, zeros24, NULL) == VENE_OK);
        CHECK(st_writer_save(w, tpath("full.safetensors"), NULL) == VENE_OK);
        st_writer_free(w);
        FILE *fp = fopen(tpath("full.safetensors"), "rb");
        unsigned char buf[256];
        size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
        if (fp) fclose(fp);
        CHECK(n > 40);
        write_bytes(tpath("cut.safetensors"), buf, 8 + 20);
        EXPECT_BAD(tpath("cut.safetensors"), VENE_ERR_FORMAT, "past the end of the file", NULL);
    }

    /* header length past the end of the file, and absurdly large */
    EXPECT_BAD(write_raw("hlen.safetensors", "{}      ", 1000, NULL, 0), VENE_ERR_FORMAT, "1000",
               "past the end");
    EXPECT_BAD(write_raw("huge.safetensors", "{}      ", INT64_MAX, NULL, 0), VENE_ERR_FORMAT,
               "header length", NULL);

    /* not JSON / not an object / trailing bytes */
    EXPECT_BAD(write_raw("nojson.safetensors", "{\"a\": {\"dtype\": ", -1, NULL, 0), VENE_ERR_FORMAT,
               "not valid JSON", NULL);
    EXPECT_BAD(write_raw("array.safetensors", "[1, 2, 3]", -1, NULL, 0), VENE_ERR_FORMAT, "not an object",
               NULL);
    EXPECT_BAD(write_raw("trail.safetensors", "{} xyz", -1, NULL, 0), VENE_ERR_FORMAT, "trailing", NULL);
    EXPECT_BAD(write_raw("entry.safetensors", "{\"w.x\": 5}", -1, NULL, 0), VENE_ERR_FORMAT, "'w.x'",
               "not a JSON object");

    /* entries missing fields or of the wrong JSON type */
    EXPECT_BAD(write_raw("nodtype.safetensors", "{\"w.a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", -1,
                         zeros24, 4),
               VENE_ERR_FORMAT, "'w.a'", "dtype");
    EXPECT_BAD(write_raw("noshape.safetensors", "{\"w.b\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", -1,
                         zeros24, 4),
               VENE_ERR_FORMAT, "'w.b'", "shape");
    EXPECT_BAD(write_raw("nooff.safetensors", "{\"w.c\":{\"dtype\":\"F32\",\"shape\":[1]}}", -1, zeros24, 4),
               VENE_ERR_FORMAT, "'w.c'", "data_offsets");
    EXPECT_BAD(write_raw("dtypenum.safetensors",
                         "{\"w.d\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", -1, zeros24, 4),
               VENE_ERR_FORMAT, "'w.d'", "dtype");
    EXPECT_BAD(write_raw("shapestr.safetensors",
                         "{\"w.e\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", -1, zeros24,
                         4),
               VENE_ERR_FORMAT, "'w.e'", "shape");
    EXPECT_BAD(write_raw("shapefrac.safetensors",
                         "{\"w.f\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", -1, zeros24,
                         4),
               VENE_ERR_FORMAT, "'w.f'", "shape[0]");
    EXPECT_BAD(write_raw("offstr.safetensors",
                         "{\"w.g\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", -1, zeros24, 4),
               VENE_ERR_FORMAT, "'w.g'", "data_offsets");

    /* unknown dtype */
    EXPECT_BAD(write_raw("dtype.safetensors",
                         "{\"h.0.mlp\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", -1,
                         zeros24, 4),
               VENE_ERR_FORMAT, "'h.0.mlp'", "F8_E4M3");

    /* negative dims, too many dims */
    EXPECT_BAD(write_raw("neg.safetensors",
                         "{\"neg.w\":{\"dtype\":\"F32\",\"shape\":[-1,4],\"data_offsets\":[0,16]}}", -1,
                         zeros24, 16),
               VENE_ERR_FORMAT, "'neg.w'", "negative");
    EXPECT_BAD(write_raw("dims.safetensors",
                         "{\"many.w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                         -1, zeros24, 1),
               VENE_ERR_FORMAT, "'many.w'", "dimensions");

    /* element count x dtype size != end - begin */
    EXPECT_BAD(write_raw("bytes.safetensors",
                         "{\"mm.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", -1, zeros24,
                         24),
               VENE_ERR_FORMAT, "'mm.w'", "[2, 3]");
    /* huge dims whose product overflows */
    EXPECT_BAD(write_raw("ovf.safetensors",
                         "{\"ovf.w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,16],"
                         "\"data_offsets\":[0,8]}}",
                         -1, zeros24, 8),
               VENE_ERR_FORMAT, "'ovf.w'", "needs");

    /* offsets: begin > end, past the data section */
    EXPECT_BAD(write_raw("order.safetensors",
                         "{\"ord.w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", -1, zeros24, 8),
               VENE_ERR_FORMAT, "'ord.w'", "begin");
    EXPECT_BAD(write_raw("range.safetensors",
                         "{\"far.w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}", -1, zeros24,
                         16),
               VENE_ERR_FORMAT, "'far.w'", "past the end of the data");
    EXPECT_BAD(write_raw("range2.safetensors",
                         "{\"far.b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}", -1,
                         zeros24, 16),
               VENE_ERR_FORMAT, "'far.b'", "[16, 20]");

    /* overlapping ranges */
    EXPECT_BAD(write_raw("overlap.safetensors",
                         "{\"alpha\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                         "\"beta\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                         -1, zeros24, 24),
               VENE_ERR_FORMAT, "'beta'", "'alpha'");
    /* overlap hidden behind a long range listed later in the header */
    EXPECT_BAD(write_raw("overlap2.safetensors",
                         "{\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[10,12]},"
                         "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
                         "\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]}}",
                         -1, zeros24, 16),
               VENE_ERR_FORMAT, "overlap", "'a'");

    /* duplicate names */
    EXPECT_BAD(write_raw("dup.safetensors",
                         "{\"same\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                         "\"same\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                         -1, zeros24, 2),
               VENE_ERR_FORMAT, "'same'", "twice");

    /* __metadata__ must be an object of strings */
    EXPECT_BAD(write_raw("meta1.safetensors", "{\"__metadata__\":{\"format\":1}}", -1, NULL, 0),
               VENE_ERR_FORMAT, "__metadata__", "format");
    EXPECT_BAD(write_raw("meta2.safetensors", "{\"__metadata__\":[\"pt\"]}", -1, NULL, 0), VENE_ERR_FORMAT,
               "__metadata__", NULL);

    /* missing file, directory */
    EXPECT_BAD(tpath("does-not-exist.safetensors"), VENE_ERR_IO, "cannot open", NULL);
    EXPECT_BAD(tmpdir, VENE_ERR_IO, "not a regular file", NULL);

    /* in-memory parsing uses the label */
    {
        st_file *f = NULL;
        vene_error err = {0};
        CHECK(st_open_memory("\x01\0\0", 3, "fuzz-input", &f, &err) == VENE_ERR_FORMAT);
        CHECK(f == NULL && strstr(err.msg, "fuzz-input"));
    }
}

static void test_good_headers(void) {
    /* __metadata__ is skipped, empty tensors allowed anywhere, whitespace padding fine */
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
        "\"s\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]},"
        "\"v\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[4,7]}}    \n ";
    unsigned char data[8] = {0x2a, 0, 0, 0, 7, 8, 9, 0};
    const char *p = write_raw("good.safetensors", hdr, -1, data, 8);
    st_file *f = NULL;
    vene_error err = {0};
    int rc = st_open(p, &f, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc != VENE_OK) return;
    CHECK(st_count(f) == 3);
    CHECK(strcmp(st_path(f), p) == 0);
    CHECK(st_find(f, "__metadata__") == NULL);
    CHECK(st_find(f, "nope") == NULL);
    CHECK(st_at(f, 3) == NULL && st_at(f, -1) == NULL);
    CHECK(st_at(f, 0) && strcmp(st_at(f, 0)->name, "e") == 0); /* header order */
    const st_tensor *e = st_find(f, "e"), *s = st_find(f, "s"), *v = st_find(f, "v");
    CHECK(e && e->numel == 0 && e->nbytes == 0 && e->ndim == 2 && e->shape[1] == 3);
    CHECK(s && s->ndim == 0 && s->numel == 1 && s->dtype == ST_I32);
    CHECK(v && v->numel == 3 && v->dtype == ST_U8);
    if (s && v) {
        int64_t i64[3];
        float f32[3];
        CHECK(st_to_i64(s, i64, NULL) == VENE_OK && i64[0] == 42);
        CHECK(st_to_f32(v, f32, NULL) == VENE_OK && f32[0] == 7 && f32[1] == 8 && f32[2] == 9);
        CHECK(st_to_f32(e, NULL, NULL) == VENE_OK);
    }
    st_close(f);
    st_close(NULL);

    /* an empty header */
    p = write_raw("none.safetensors", "{}      ", -1, NULL, 0);
    rc = st_open(p, &f, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc == VENE_OK) {
        CHECK(st_count(f) == 0 && st_find(f, "x") == NULL);
        st_close(f);
    }
}

static uint16_t f16_bits[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x8000,
                              0x7C00, 0xFC00, 0x7E00, 0x3555, 0x8001, 0x3800, 0x0000};

static void test_conversions(void) {
    st_writer *w = st_writer_new();
    int64_t n16 = (int64_t)(sizeof f16_bits / sizeof f16_bits[0]);
    CHECK(st_writer_add(w, "f16", ST_F16, 1, &n16, f16_bits, NULL) == VENE_OK);
    uint16_t bf[] = {0x3F80, 0xC049, 0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x8000, 0x4780};
    int64_t nbf = 8;
    CHECK(st_writer_add(w, "bf16", ST_BF16, 1, &nbf, bf, NULL) == VENE_OK);
    double f64[] = {1e-3, 3.5, -1e300, 0.1, -0.0, 16777217.0};
    int64_t sh64[2] = {2, 3};
    CHECK(st_writer_add(w, "f64", ST_F64, 2, sh64, f64, NULL) == VENE_OK);
    int64_t i64[] = {-5, 0, INT64_MAX, INT64_MIN + 1};
    int64_t ni64 = 4;
    CHECK(st_writer_add(w, "i64", ST_I64, 1, &ni64, i64, NULL) == VENE_OK);
    int32_t i32[] = {-7, 123456};
    int16_t i16[] = {-32768, 32767};
    int8_t i8[] = {-128, 127};
    uint8_t u8[] = {0, 255};
    uint8_t bl[] = {0, 1};
    int64_t two = 2;
    CHECK(st_writer_add(w, "i32", ST_I32, 1, &two, i32, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "i16", ST_I16, 1, &two, i16, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "i8", ST_I8, 1, &two, i8, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "u8", ST_U8, 1, &two, u8, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "bool", ST_BOOL, 1, &two, bl, NULL) == VENE_OK);
    float f32[] = {1.5f, -0.25f};
    CHECK(st_writer_add(w, "f32", ST_F32, 1, &two, f32, NULL) == VENE_OK);
    vene_error err = {0};
    int rc = st_writer_save(w, tpath("conv.safetensors"), &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    st_writer_free(w);
    st_file *f = NULL;
    rc = st_open(tpath("conv.safetensors"), &f, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc != VENE_OK) return;

    float out[16];
    const st_tensor *t = st_find(f, "f16");
    CHECK(t && t->dtype == ST_F16 && t->numel == n16);
    if (t && st_to_f32(t, out, NULL) == VENE_OK) {
        CHECK(out[0] == 1.0f);
        CHECK(out[1] == -2.0f);
        CHECK(out[2] == 65504.0f);
        CHECK(out[3] == 5.9604644775390625e-08f);  /* smallest subnormal, 2^-24 */
        CHECK(out[4] == 6.0975551605224609375e-05f); /* largest subnormal, 1023 * 2^-24 */
        CHECK(out[5] == 6.103515625e-05f);         /* smallest normal, 2^-14 */
        CHECK(out[6] == 0.0f && signbit(out[6]));
        CHECK(isinf(out[7]) && out[7] > 0);
        CHECK(isinf(out[8]) && out[8] < 0);
        CHECK(isnan(out[9]));
        CHECK(out[10] == 0.333251953125f);
        CHECK(out[11] == -5.9604644775390625e-08f);
        CHECK(out[12] == 0.5f);
        CHECK(out[13] == 0.0f && !signbit(out[13]));
    }
    t = st_find(f, "bf16");
    CHECK(t != NULL);
    if (t && st_to_f32(t, out, NULL) == VENE_OK) {
        CHECK(out[0] == 1.0f);
        CHECK(out[1] == -3.140625f);
        CHECK(isinf(out[2]) && out[2] > 0);
        CHECK(isinf(out[3]) && out[3] < 0);
        CHECK(isnan(out[4]));
        CHECK(out[5] > 0 && out[5] < 1e-38f); /* bf16 subnormal 2^-133 */
        CHECK(out[6] == 0.0f && signbit(out[6]));
        CHECK(out[7] == 65536.0f);
    }
    t = st_find(f, "f64");
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->nbytes == 48);
    if (t && st_to_f32(t, out, NULL) == VENE_OK) {
        CHECK(out[0] == (float)1e-3);
        CHECK(out[1] == 3.5f);
        CHECK(isinf(out[2]) && out[2] < 0);
        CHECK(out[3] == 0.1f);
        CHECK(out[4] == 0.0f && signbit(out[4]));
        CHECK(out[5] == 16777216.0f);
    }
    int64_t iout[8];
    t = st_find(f, "i64");
    CHECK(t != NULL);
    if (t) {
        CHECK(st_to_i64(t, iout, NULL) == VENE_OK && iout[0] == -5 && iout[2] == INT64_MAX &&
              iout[3] == INT64_MIN + 1);
        CHECK(st_to_f32(t, out, NULL) == VENE_OK && out[0] == -5.0f && out[1] == 0.0f);
    }
    struct {
        const char *name;
        int64_t a, b;
    } ints[] = {{"i32", -7, 123456}, {"i16", -32768, 32767}, {"i8", -128, 127}, {"u8", 0, 255},
                {"bool", 0, 1}};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        t = st_find(f, ints[k].name);
        CHECK_MSG(t && st_to_i64(t, iout, NULL) == VENE_OK && iout[0] == ints[k].a && iout[1] == ints[k].b,
                  "%s", ints[k].name);
        CHECK_MSG(t && st_to_f32(t, out, NULL) == VENE_OK && out[0] == (float)ints[k].a &&
                      out[1] == (float)ints[k].b,
                  "%s", ints[k].name);
    }
    t = st_find(f, "f32");
    CHECK(t && st_to_f32(t, out, NULL) == VENE_OK && out[0] == 1.5f && out[1] == -0.25f);
    /* float types cannot become int64 */
    const char *floats[] = {"f32", "f16", "bf16", "f64"};
    for (int k = 0; k < 4; k++) {
        t = st_find(f, floats[k]);
        vene_error e2 = {0};
        CHECK_MSG(t && st_to_i64(t, iout, &e2) == VENE_ERR_FORMAT && strstr(e2.msg, floats[k]) &&
                      e2.code == VENE_ERR_FORMAT,
                  "%s: %s", floats[k], e2.msg);
    }
    /* every tensor sits aligned to its element size (bigger dtypes are written first) */
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *a = st_at(f, i);
        CHECK_MSG((uintptr_t)a->data % st_dtype_size(a->dtype) == 0, "%s misaligned", a->name);
    }
    CHECK(st_to_f32(NULL, out, NULL) == VENE_ERR_ARG);
    st_close(f);

    CHECK(strcmp(st_dtype_name(ST_BF16), "BF16") == 0 && st_dtype_size(ST_F64) == 8 &&
          st_dtype_size(ST_BOOL) == 1 && st_dtype_size(ST_DTYPE_COUNT) == 0);
}

/* Header length and JSON text of a written file. */
static char *read_header(const char *path, uint64_t *hlen, long *fsize) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    unsigned char l8[8];
    char *h = NULL;
    if (fread(l8, 1, 8, fp) == 8) {
        *hlen = 0;
        for (int i = 7; i >= 0; i--) *hlen = (*hlen << 8) | l8[i];
        h = calloc(1, (size_t)*hlen + 1);
        if (fread(h, 1, (size_t)*hlen, fp) != (size_t)*hlen) {
            free(h);
            h = NULL;
        }
    }
    fseek(fp, 0, SEEK_END);
    *fsize = ftell(fp);
    fclose(fp);
    return h;
}

static void test_round_trip(void) {
    st_writer *w = st_writer_new();
    CHECK(w != NULL);
    float mat[3 * 5];
    for (int i = 0; i < 15; i++) mat[i] = (float)i * 0.37f - 2.0f;
    mat[7] = -0.0f;
    vene_tensor vt = {mat, 2, {3, 5}};
    double scal = 2.718281828459045;
    uint16_t half[2 * 2 * 2 * 1 * 1 * 3];
    for (int i = 0; i < 24; i++) half[i] = (uint16_t)(0x3000 + 37 * i);
    int64_t sh6[6] = {2, 2, 2, 1, 1, 3};
    int64_t sh_empty[3] = {4, 0, 2};
    int32_t big[1000];
    for (int i = 0; i < 1000; i++) big[i] = i * i - 500;
    int64_t sh_big[2] = {10, 100};
    uint8_t odd[3] = {1, 2, 3};
    int64_t sh_odd = 3;
    vene_error err = {0};
    CHECK(st_writer_add_f32(w, "z.matrix", &vt, &err) == VENE_OK);
    CHECK(st_writer_add(w, "scalar", ST_F64, 0, NULL, &scal, &err) == VENE_OK);
    CHECK(st_writer_add(w, "m.half6d", ST_F16, 6, sh6, half, &err) == VENE_OK);
    CHECK(st_writer_add(w, "empty", ST_F32, 3, sh_empty, NULL, &err) == VENE_OK);
    CHECK(st_writer_add(w, "a.big", ST_I32, 2, sh_big, big, &err) == VENE_OK);
    CHECK(st_writer_add(w, "bytes", ST_U8, 1, &sh_odd, odd, &err) == VENE_OK);
    CHECK(st_writer_add(w, "quote\"and\\slash\n", ST_BF16, 1, &sh_odd, half, &err) == VENE_OK);
    /* writer copies on add: clobber the sources */
    mat[0] = 999.0f;
    big[0] = 999;
    /* rejections */
    CHECK(st_writer_add(w, "z.matrix", ST_F32, 0, NULL, mat, &err) == VENE_ERR_ARG &&
          strstr(err.msg, "z.matrix"));
    CHECK(st_writer_add(w, "__metadata__", ST_F32, 0, NULL, mat, &err) == VENE_ERR_ARG);
    CHECK(st_writer_add(w, "", ST_F32, 0, NULL, mat, &err) == VENE_ERR_ARG);
    CHECK(st_writer_add(w, "neg", ST_F32, 1, (int64_t[]){-1}, mat, &err) == VENE_ERR_ARG &&
          strstr(err.msg, "neg"));
    CHECK(st_writer_add(w, "nodata", ST_F32, 1, &sh_odd, NULL, &err) == VENE_ERR_ARG);
    CHECK(st_writer_add(w, "d7", ST_U8, 7, (int64_t[]){1, 1, 1, 1, 1, 1, 1}, odd, &err) == VENE_ERR_ARG);
    CHECK(st_writer_add(w, "badtype", ST_DTYPE_COUNT, 1, &sh_odd, odd, &err) == VENE_ERR_ARG);
    CHECK(st_writer_add(NULL, "x", ST_U8, 1, &sh_odd, odd, &err) == VENE_ERR_ARG);

    const char *p = tpath("rt.safetensors");
    int rc = st_writer_save(w, p, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    CHECK(count_entries(tmpdir, ".tmp.") == 0);
    /* saving again replaces the file atomically */
    rc = st_writer_save(w, p, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    st_writer_free(w);
    mat[0] = -2.0f;
    big[0] = -500;

    uint64_t hlen = 0;
    long fsize = 0;
    char *hdr = read_header(p, &hlen, &fsize);
    CHECK(hdr != NULL && hlen % 8 == 0);
    if (hdr) {
        /* Same dtype-then-name order as the Python library: F64, F32, I32, BF16, F16, U8. */
        const char *order[] = {"\"scalar\"", "\"empty\"", "\"z.matrix\"", "\"a.big\"",
                               "\"quote\\\"and\\\\slash\\n\"", "\"m.half6d\"", "\"bytes\""};
        const char *prev = hdr;
        for (int i = 0; i < 7; i++) {
            const char *at = strstr(hdr, order[i]);
            CHECK_MSG(at && at >= prev, "%s out of order in %s", order[i], hdr);
            if (at) prev = at;
        }
        CHECK(strstr(hdr, "\"scalar\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}") != NULL);
        CHECK(strstr(hdr, "\"a.big\":{\"dtype\":\"I32\",\"shape\":[10,100],\"data_offsets\":[68,4068]}"));
        /* "{...}" then only space padding */
        const char *close = strrchr(hdr, '}');
        CHECK(hdr[0] == '{' && close && strspn(close + 1, " ") == strlen(close + 1) &&
              (size_t)(close + 1 - hdr) + strlen(close + 1) == hlen && strlen(close + 1) < 8);
        free(hdr);
    }

    st_file *f = NULL;
    rc = st_open(p, &f, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc != VENE_OK) return;
    CHECK(st_count(f) == 7);
    /* data contiguous in header order and ending at the end of the file */
    size_t total = 0;
    for (int i = 0; i + 1 < st_count(f); i++) {
        const st_tensor *a = st_at(f, i), *b = st_at(f, i + 1);
        CHECK((const unsigned char *)a->data + a->nbytes == (const unsigned char *)b->data);
    }
    for (int i = 0; i < st_count(f); i++) total += st_at(f, i)->nbytes;
    CHECK((long)(8 + hlen + total) == fsize);

    const st_tensor *t = st_find(f, "z.matrix");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 5 &&
          t->numel == 15 && t->nbytes == 60 && memcmp(t->data, mat, 60) == 0);
    t = st_find(f, "scalar");
    CHECK(t && t->dtype == ST_F64 && t->ndim == 0 && t->numel == 1 && memcmp(t->data, &scal, 8) == 0);
    t = st_find(f, "m.half6d");
    CHECK(t && t->dtype == ST_F16 && t->ndim == 6 && memcmp(t->shape, sh6, sizeof sh6) == 0 &&
          t->numel == 24 && memcmp(t->data, half, 48) == 0);
    t = st_find(f, "empty");
    CHECK(t && t->ndim == 3 && t->shape[0] == 4 && t->shape[1] == 0 && t->shape[2] == 2 && t->numel == 0 &&
          t->nbytes == 0);
    t = st_find(f, "a.big");
    CHECK(t && t->dtype == ST_I32 && t->numel == 1000 && memcmp(t->data, big, 4000) == 0);
    t = st_find(f, "bytes");
    CHECK(t && t->dtype == ST_U8 && memcmp(t->data, odd, 3) == 0);
    t = st_find(f, "quote\"and\\slash\n");
    CHECK(t && t->dtype == ST_BF16 && memcmp(t->data, half, 6) == 0);
    st_close(f);

    /* an empty writer makes a valid empty file */
    w = st_writer_new();
    CHECK(st_writer_save(w, tpath("empty-writer.safetensors"), NULL) == VENE_OK);
    st_writer_free(w);
    CHECK(st_open(tpath("empty-writer.safetensors"), &f, NULL) == VENE_OK && st_count(f) == 0);
    st_close(f);
}

static void test_many_tensors(void) {
    st_writer *w = st_writer_new();
    enum { N = 600 };
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "layers.%d.w", (i * 7919) % N);
        float v = (float)((i * 7919) % N);
        CHECK(st_writer_add(w, name, ST_F32, 0, NULL, &v, NULL) == VENE_OK);
    }
    CHECK(st_writer_save(w, tpath("many.safetensors"), NULL) == VENE_OK);
    st_writer_free(w);
    st_file *f = NULL;
    vene_error err = {0};
    int rc = st_open(tpath("many.safetensors"), &f, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc != VENE_OK) return;
    CHECK(st_count(f) == N);
    int good = 0;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "layers.%d.w", i);
        const st_tensor *t = st_find(f, name);
        float v = -1;
        if (t && st_to_f32(t, &v, NULL) == VENE_OK && v == (float)i && strcmp(t->name, name) == 0) good++;
    }
    CHECK(good == N);
    CHECK(st_find(f, "layers.600.w") == NULL && st_find(f, "layers.") == NULL && st_find(f, "") == NULL);
    st_close(f);
}

static void test_atomic_save(void) {
    st_writer *w = st_writer_new();
    float v[4] = {1, 2, 3, 4};
    vene_tensor t = {v, 1, {4}};
    CHECK(st_writer_add_f32(w, "v", &t, NULL) == VENE_OK);
    vene_error err = {0};

    /* target directory does not exist: fails, and nothing is left anywhere */
    const char *p = tpath("no-such-dir/out.safetensors");
    int rc = st_writer_save(w, p, &err);
    CHECK_MSG(rc == VENE_ERR_IO && strstr(err.msg, "no-such-dir/out.safetensors"), "%s", err.msg);
    CHECK(!exists(p) && !exists(tpath("no-such-dir")));
    CHECK(count_entries(tmpdir, ".tmp.") == 0);

    /* target is a directory: rename fails, the temporary file is removed */
    mkdir(tpath("adir"), 0755);
    rc = st_writer_save(w, tpath("adir"), &err);
    CHECK_MSG(rc == VENE_ERR_IO && strstr(err.msg, "adir"), "%s", err.msg);
    CHECK(count_entries(tmpdir, ".tmp.") == 0);

    /* an existing file is replaced only by a complete one */
    write_bytes(tpath("old.safetensors"), "garbage", 7);
    rc = st_writer_save(w, tpath("old.safetensors"), &err);
    CHECK(rc == VENE_OK);
    st_file *f = NULL;
    CHECK(st_open(tpath("old.safetensors"), &f, NULL) == VENE_OK && st_count(f) == 1);
    st_close(f);
    CHECK(count_entries(tmpdir, ".tmp.") == 0);

    CHECK(st_writer_save(NULL, p, &err) == VENE_ERR_ARG);
    CHECK(st_writer_save(w, "", &err) == VENE_ERR_ARG);
    st_writer_free(w);
    st_writer_free(NULL);
}

static void test_real_model(void) {
    const char *p = "fixtures/models/gpt2-tiny/model.safetensors";
    if (!exists(p)) {
        printf("note: %s absent; skipping the real-model check\n", p);
        return;
    }
    st_file *f = NULL;
    vene_error err = {0};
    int rc = st_open(p, &f, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc != VENE_OK) return;
    CHECK(st_count(f) > 0);
    int bad = 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (st_find(f, t->name) != t) bad++;
        if (t->dtype <= ST_F64) {
            float *buf = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
            if (!buf || st_to_f32(t, buf, &err) != VENE_OK) bad++;
            for (int64_t k = 0; buf && k < t->numel; k++) {
                if (!isfinite(buf[k])) {
                    bad++;
                    break;
                }
            }
            free(buf);
        }
    }
    CHECK_MSG(bad == 0, "%d tensors failed", bad);

    /* Rewriting it puts tensors in the same order as the Python library did: the data
     * sections are byte-identical. */
    st_writer *w = st_writer_new();
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        CHECK(st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, NULL) == VENE_OK);
    }
    const char *copy = tpath("real-copy.safetensors");
    CHECK(st_writer_save(w, copy, NULL) == VENE_OK);
    st_writer_free(w);
    st_file *g = NULL;
    rc = st_open(copy, &g, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc == VENE_OK) {
        CHECK(st_count(g) == st_count(f));
        int same = 1;
        const unsigned char *d0 = NULL, *e0 = NULL;
        for (int i = 0; i < st_count(f); i++) {
            const st_tensor *a = st_at(f, i), *b = st_find(g, a->name);
            if (!b || b->nbytes != a->nbytes || memcmp(a->data, b->data, a->nbytes) != 0) same = 0;
            /* same offset from the start of the data section */
            if (!d0 || (const unsigned char *)a->data < d0) d0 = a->data;
            if (b && (!e0 || (const unsigned char *)b->data < e0)) e0 = b->data;
        }
        for (int i = 0; same && i < st_count(f); i++) {
            const st_tensor *a = st_at(f, i), *b = st_find(g, a->name);
            if ((const unsigned char *)a->data - d0 != (const unsigned char *)b->data - e0) same = 0;
        }
        CHECK_MSG(same, "rewritten data section differs from the original");
        st_close(g);
    }
    st_close(f);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene_st_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_bad_files();
    test_good_headers();
    test_conversions();
    test_round_trip();
    test_many_tensors();
    test_atomic_save();
    test_real_model();
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
