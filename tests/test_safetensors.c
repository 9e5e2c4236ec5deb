/* test_safetensors.c — formats/safetensors: round trips of every dtype, BF16/F16 rounding,
 * the golden tiny_x02 files (expected values computed independently with Python's
 * struct + json), every open/read/save error path, and a deterministic mutation fuzz. */
#include "formats/formats.h"
#include "tests/test.h"

#include <dirent.h>
#include <float.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define GOLDEN "tests/golden/tiny_x02/"

static char tmpdir[64];

/* tmpdir/name, in one of a few rotating buffers. */
static const char *tpath(const char *name) {
    static char bufs[8][256];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) { perror(path); exit(2); }
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

/* A safetensors file: u64 strlen(json), json, then datalen bytes of data (zeros if NULL). */
static const char *write_st(const char *name, const char *json, const void *data, size_t datalen) {
    const char *path = tpath(name);
    size_t jl = strlen(json);
    unsigned char *b = calloc(1, 8 + jl + datalen + 1);
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)((uint64_t)jl >> (8 * k));
    memcpy(b + 8, json, jl);
    if (data) memcpy(b + 8 + jl, data, datalen);
    write_bytes(path, b, 8 + jl + datalen);
    free(b);
    return path;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = fread(b, 1, (size_t)sz, fp);
    fclose(fp);
    return b;
}

static int file_exists(const char *path) { struct stat sb; return stat(path, &sb) == 0; }

/* Does any file in tmpdir have ".tmp." in its name? (a leftover temp file) */
static int tmp_leftover(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) found = 1;
    if (d) closedir(d);
    return found;
}

/* err starts with "path: " and contains kw */
#define CHECK_ERR(err_, path_, kw_) do { const char *e_ = (err_), *p_ = (path_), *k_ = (kw_); \
    if (strncmp(e_, p_, strlen(p_)) != 0 || strncmp(e_ + strlen(p_), ": ", 2) != 0 || \
        !strstr(e_, k_)) { test_failed_checks++; \
        fprintf(stderr, "%s:%d: error \"%s\" should start with \"%s: \" and contain \"%s\"\n", \
                __FILE__, __LINE__, e_, p_, k_); } } while (0)

/* st_open(path) must fail, leaving f zeroed, with an error containing kw1 and kw2. */
#define CHECK_OPEN_FAILS(path_, kw1, kw2) do { StFile f_; char e2_[512]; \
    const char *pp_ = (path_); \
    int rc_ = st_open(&f_, pp_, e2_, sizeof e2_); CHECK(rc_ == -1); \
    if (rc_ == 0) st_close(&f_); \
    else { CHECK(f_.tensors == NULL && f_.path == NULL && f_.ntensors == 0); \
           CHECK_ERR(e2_, pp_, kw1); CHECK_ERR(e2_, pp_, kw2); } } while (0)

/* A deterministic generator for test data. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

static uint32_t bits32(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static uint64_t bits64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }

/* ---- dtypes and scalar conversions ---- */

TEST(dtype_helpers) {
    static const struct { StDtype t; const char *name; size_t size; int fl; } want[] = {
        {ST_F64, "F64", 8, 1}, {ST_F32, "F32", 4, 1}, {ST_BF16, "BF16", 2, 1},
        {ST_F16, "F16", 2, 1}, {ST_I64, "I64", 8, 0}, {ST_I32, "I32", 4, 0},
        {ST_I16, "I16", 2, 0}, {ST_I8, "I8", 1, 0},   {ST_U64, "U64", 8, 0},
        {ST_U32, "U32", 4, 0}, {ST_U16, "U16", 2, 0}, {ST_U8, "U8", 1, 0},
        {ST_BOOL, "BOOL", 1, 0},
    };
    CHECK(sizeof want / sizeof want[0] == ST_NDTYPES);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        StDtype t = ST_NDTYPES;
        CHECK_STR(st_dtype_name(want[i].t), want[i].name);
        CHECK(st_dtype_size(want[i].t) == want[i].size);
        CHECK(st_dtype_is_float(want[i].t) == want[i].fl);
        CHECK(st_dtype_parse(want[i].name, strlen(want[i].name), &t) == 0 && t == want[i].t);
    }
    StDtype t;
    CHECK(st_dtype_parse("f32", 3, &t) == -1);
    CHECK(st_dtype_parse("F3", 2, &t) == -1);
    CHECK(st_dtype_parse("F322", 4, &t) == -1);
    CHECK(st_dtype_parse("F32", 2, &t) == -1);   /* "F3" */
    CHECK_STR(st_dtype_name(ST_NDTYPES), "?");
    CHECK(st_dtype_size((StDtype)-1) == 0);
}

TEST(bf16_rounding) {
    /* exact values */
    CHECK(bf16_from_f32(1.0f) == 0x3f80);
    CHECK(bf16_from_f32(-2.0f) == 0xc000);
    CHECK(bf16_from_f32(0.0f) == 0x0000);
    CHECK(bf16_from_f32(-0.0f) == 0x8000);
    CHECK(bf16_from_f32(INFINITY) == 0x7f80);
    CHECK(bf16_from_f32(-INFINITY) == 0xff80);
    /* ties go to even: 1 + 2^-8 is halfway between 0x3f80 and 0x3f81 */
    CHECK(bf16_from_f32(1.0f + 0x1p-8f) == 0x3f80);
    CHECK(bf16_from_f32(1.0f + 3 * 0x1p-8f) == 0x3f82);   /* halfway 0x3f81/0x3f82 */
    CHECK(bf16_from_f32(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);   /* just above half */
    CHECK(bf16_from_f32(1.0f + 0x1p-9f) == 0x3f80);               /* below half */
    CHECK(bf16_from_f32(3.14159265f) == 0x4049);   /* 0x40490fdb */
    CHECK(bf16_from_f32(-3.14159265f) == 0xc049);
    CHECK(bf16_from_f32(0.1f) == 0x3dcd);          /* 0x3dcccccd rounds up */
    CHECK(bf16_from_f32(FLT_MAX) == 0x7f80);      /* rounds up to inf */
    CHECK(bf16_from_f32(0x1.fep127f) == 0x7f7f);   /* bf16 max stays */
    CHECK(bf16_from_f32(1e-40f) == 0x0001);        /* f32 subnormal 0x000116c2 */
    /* NaN stays a (quiet) NaN, sign kept */
    uint16_t n = bf16_from_f32(NAN);
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
    float snan;
    uint32_t sbits = 0x7f800001u;   /* signalling NaN whose payload is below bf16's bits */
    memcpy(&snan, &sbits, 4);
    n = bf16_from_f32(snan);
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
    /* back to f32 is exact */
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    CHECK(bf16_to_f32(0x4049) == 3.140625f);
    CHECK(bf16_to_f32(0xc000) == -2.0f);
    /* from double: one rounding. (float)x would give 1 + 2^-8 exactly, a tie rounding to
     * 0x3f80; x is above the tie, so the right answer is 0x3f81. */
    CHECK(st_f64_to_bf16(1.0 + 0x1p-8 + 0x1p-40) == 0x3f81);
    CHECK(st_f64_to_bf16(1.0 + 0x1p-8 - 0x1p-40) == 0x3f80);
    CHECK(st_f64_to_bf16(1.0 + 0x1p-8) == 0x3f80);
    CHECK(st_f64_to_bf16(-(1.0 + 0x1p-8 + 0x1p-40)) == 0xbf81);
    CHECK(st_f64_to_bf16(1e300) == 0x7f80);
    CHECK(st_f64_to_bf16(-1e300) == 0xff80);
    CHECK(st_f64_to_bf16(1e-300) == 0x0000);
    CHECK(st_f64_to_bf16(0x1.fep127) == 0x7f7f);    /* bf16 max exactly */
    CHECK(st_f64_to_bf16(0x1.fefp127) == 0x7f7f);   /* below the tie */
    CHECK(st_f64_to_bf16(0x1.ffp127) == 0x7f80);    /* tie -> even, which is inf */
    CHECK(st_f64_to_bf16(0x1.ff00000001p127) == 0x7f80);
    n = st_f64_to_bf16(NAN);
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
    /* every bf16 value survives bf16 -> f32 -> bf16 and bf16 -> f64 -> bf16 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float x = bf16_to_f32((uint16_t)h);
        if (x != x) continue;
        bad += bf16_from_f32(x) != h || st_f64_to_bf16(x) != h;
    }
    CHECK(bad == 0);
}

TEST(f16_conversion) {
    CHECK(st_f32_to_f16(1.0f) == 0x3c00);
    CHECK(st_f32_to_f16(-2.0f) == 0xc000);
    CHECK(st_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(st_f32_to_f16(65519.0f) == 0x7bff);   /* below the rounding boundary */
    CHECK(st_f32_to_f16(65520.0f) == 0x7c00);   /* tie to even -> inf */
    CHECK(st_f32_to_f16(0x1p-24f) == 0x0001);   /* smallest subnormal */
    CHECK(st_f32_to_f16(0x1p-25f) == 0x0000);   /* tie -> even 0 */
    CHECK(st_f32_to_f16(0x1.8p-24f) == 0x0002); /* 1.5 ulp tie -> even 2 */
    CHECK(st_f32_to_f16(0x1p-14f) == 0x0400);   /* smallest normal */
    CHECK(st_f32_to_f16(0x1p-14f - 0x1p-26f) == 0x0400);   /* 1023.75 ulps rounds up */
    CHECK(st_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);        /* tie -> even */
    CHECK(st_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);
    CHECK(st_f32_to_f16(-0.0f) == 0x8000);
    CHECK(st_f32_to_f16(INFINITY) == 0x7c00);
    uint16_t n = st_f32_to_f16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    CHECK(st_f64_to_f16(1.0 + 0x1p-11 + 0x1p-40) == 0x3c01);   /* no double rounding */
    CHECK(st_f64_to_f16(1e10) == 0x7c00);
    CHECK(st_f16_to_f32(0x3c00) == 1.0f);
    CHECK(st_f16_to_f32(0xc000) == -2.0f);
    CHECK(st_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(st_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(st_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    CHECK(st_f16_to_f32(0x3555) == 0x1.554p-2f);
    CHECK(bits32(st_f16_to_f32(0x8000)) == 0x80000000u);
    CHECK(st_f16_to_f32(0xfc00) == -INFINITY);
    float x = st_f16_to_f32(0x7e00);
    CHECK(x != x);
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float v = st_f16_to_f32((uint16_t)h);
        if (v != v) continue;
        bad += st_f32_to_f16(v) != h || st_f64_to_f16(v) != h;
    }
    CHECK(bad == 0);
}

/* ---- round trips ---- */

TEST(roundtrip_every_dtype) {
    const char *path = tpath("all.safetensors");
    const int64_t shape[2] = {3, 5};
    unsigned char data[ST_NDTYPES][15 * 8];
    for (int t = 0; t < ST_NDTYPES; t++)
        for (size_t i = 0; i < sizeof data[t]; i++) data[t][i] = (unsigned char)next_rand();
    for (size_t i = 0; i < 15; i++) data[ST_BOOL][i] &= 1;
    /* some special float bit patterns: NaN with payload, -0, inf, subnormal */
    uint64_t nan64 = 0x7ff0000000000123ull, neg0 = 0x8000000000000000ull;
    memcpy(data[ST_F64], &nan64, 8);
    memcpy(data[ST_F64] + 8, &neg0, 8);
    uint32_t nan32 = 0xffc00001u, inf32 = 0x7f800000u, sub32 = 1;
    memcpy(data[ST_F32], &nan32, 4);
    memcpy(data[ST_F32] + 4, &inf32, 4);
    memcpy(data[ST_F32] + 8, &sub32, 4);

    StWriter *w = st_writer_new();
    char name[32];
    for (int t = 0; t < ST_NDTYPES; t++) {
        snprintf(name, sizeof name, "t.%s", st_dtype_name((StDtype)t));
        st_writer_add(w, name, (StDtype)t, 2, shape, data[t]);
    }
    st_writer_meta(w, "format", "pt");
    char err[512] = "";
    CHECK(st_writer_save(w, path, err, sizeof err) == 0);
    CHECK_STR(err, "");
    st_writer_free(w);
    CHECK(!tmp_leftover());

    StFile f;
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    if (f.path == NULL) { fprintf(stderr, "%s\n", err); return; }
    CHECK_STR(f.path, path);
    CHECK(f.ntensors == ST_NDTYPES);
    CHECK(f.header_len % 8 == 0);
    CHECK(f.nmeta == 1);
    CHECK_STR(st_meta_get(&f, "format"), "pt");
    CHECK(st_meta_get(&f, "missing") == NULL);
    uint64_t off = 0;
    for (int t = 0; t < f.ntensors; t++) {
        const StTensor *x = &f.tensors[t];
        size_t nb = 15 * st_dtype_size((StDtype)t);
        snprintf(name, sizeof name, "t.%s", st_dtype_name((StDtype)t));
        CHECK_STR(x->name, name);                  /* file order = order added */
        CHECK(st_find(&f, name) == x);
        CHECK(x->dtype == (StDtype)t);
        CHECK(x->ndim == 2 && x->shape[0] == 3 && x->shape[1] == 5 && x->numel == 15);
        CHECK(x->begin == off && x->end == off + nb);   /* contiguous, in order */
        CHECK(memcmp(x->data, data[t], nb) == 0);       /* bit-exact */
        off += nb;
    }
    CHECK(f.data_len == off);
    /* the file itself: header length field, '{' first, space padding */
    size_t n;
    unsigned char *b = read_all(path, &n);
    CHECK(n == 8 + f.header_len + off);
    CHECK(b[8] == '{');
    CHECK(b[8 + f.header_len - 1] == ' ' || b[8 + f.header_len - 1] == '}');
    const char *want = "{\"__metadata__\":{\"format\":\"pt\"},\"t.F64\":{\"dtype\":\"F64\","
                       "\"shape\":[3,5],\"data_offsets\":[0,120]},\"t.F32\":{";
    CHECK(memcmp(b + 8, want, strlen(want)) == 0);
    free(b);

    /* integer dtypes through read_i32 */
    int32_t iv[15];
    CHECK(st_read_i32(&f, "t.I32", 2, shape, iv, err, sizeof err) == 0);
    CHECK(memcmp(iv, data[ST_I32], sizeof iv) == 0);
    CHECK(st_read_i32(&f, "t.U16", 2, shape, iv, err, sizeof err) == 0);
    for (int i = 0; i < 15; i++) {
        uint16_t u;
        memcpy(&u, data[ST_U16] + 2 * i, 2);
        CHECK(iv[i] == (int32_t)u);
    }
    CHECK(st_read_i32(&f, "t.I8", 2, shape, iv, err, sizeof err) == 0);
    CHECK(iv[3] == (int32_t)(int8_t)data[ST_I8][3]);
    CHECK(st_read_i32(&f, "t.BOOL", 2, shape, iv, err, sizeof err) == 0);
    CHECK(iv[4] == data[ST_BOOL][4]);
    /* float dtypes through read_f64: F64 bit-exact, others exactly their value */
    double dv[15];
    CHECK(st_read_f64(&f, "t.F64", 2, shape, dv, err, sizeof err) == 0);
    CHECK(memcmp(dv, data[ST_F64], sizeof dv) == 0);
    CHECK(st_read_f64(&f, "t.F32", 2, shape, dv, err, sizeof err) == 0);
    CHECK(dv[0] != dv[0] && dv[1] == INFINITY && dv[2] == 0x1p-149);
    for (int i = 3; i < 15; i++) {
        float v;
        memcpy(&v, data[ST_F32] + 4 * i, 4);
        CHECK(bits64(dv[i]) == bits64((double)v) || (v != v && dv[i] != dv[i]));
    }
    float fv[15];
    CHECK(st_read_f32(&f, "t.F32", 2, shape, fv, err, sizeof err) == 0);
    CHECK(memcmp(fv, data[ST_F32], sizeof fv) == 0);
    CHECK(st_read_f32(&f, "t.BF16", 2, shape, fv, err, sizeof err) == 0);
    for (int i = 0; i < 15; i++) {
        uint16_t h;
        memcpy(&h, data[ST_BF16] + 2 * i, 2);
        CHECK(bits32(fv[i]) == (uint32_t)h << 16);
    }
    CHECK(st_read_f64(&f, "t.F16", 2, shape, dv, err, sizeof err) == 0);
    for (int i = 0; i < 15; i++) {
        uint16_t h;
        memcpy(&h, data[ST_F16] + 2 * i, 2);
        float want = st_f16_to_f32(h);
        CHECK(bits64(dv[i]) == bits64((double)want) || (want != want && dv[i] != dv[i]));
    }
    st_close(&f);
    CHECK(f.path == NULL && f.ntensors == 0);
    st_close(&f);   /* twice is harmless */
    unlink(path);
}

TEST(roundtrip_converted_floats) {
    const char *path = tpath("conv.safetensors");
    const double v[6] = {1.0, -2.5, 1.0 + 0x1p-8 + 0x1p-40, 0.1, 1e-30, -0.0};
    const float vf[6] = {1.0f, -2.5f, 1.0f + 3 * 0x1p-8f, 0.1f, 65520.0f, -0.0f};
    const int64_t shape[1] = {6};
    StWriter *w = st_writer_new();
    st_writer_add_f64(w, "d64", ST_F64, 1, shape, v);
    st_writer_add_f64(w, "d32", ST_F32, 1, shape, v);
    st_writer_add_f64(w, "dbf", ST_BF16, 1, shape, v);
    st_writer_add_f64(w, "d16", ST_F16, 1, shape, v);
    st_writer_add_f32(w, "f64", ST_F64, 1, shape, vf);
    st_writer_add_f32(w, "f32", ST_F32, 1, shape, vf);
    st_writer_add_f32(w, "fbf", ST_BF16, 1, shape, vf);
    st_writer_add_f32(w, "f16", ST_F16, 1, shape, vf);
    char err[512] = "";
    CHECK(st_writer_save(w, path, err, sizeof err) == 0);
    st_writer_free(w);

    StFile f;
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    if (f.path == NULL) { fprintf(stderr, "%s\n", err); return; }
    double d[6];
    float x[6];
    CHECK(st_read_f64(&f, "d64", 1, shape, d, err, sizeof err) == 0);
    for (int i = 0; i < 6; i++) CHECK(bits64(d[i]) == bits64(v[i]));
    CHECK(st_read_f32(&f, "d32", 1, shape, x, err, sizeof err) == 0);
    for (int i = 0; i < 6; i++) CHECK(bits32(x[i]) == bits32((float)v[i]));
    CHECK(st_read_f64(&f, "dbf", 1, shape, d, err, sizeof err) == 0);
    CHECK(d[0] == 1.0 && d[1] == -2.5 && d[2] == 1.0 + 0x1p-7 && d[3] == 0.10009765625);
    CHECK(st_find(&f, "dbf")->end - st_find(&f, "dbf")->begin == 12);
    CHECK(bits64(d[5]) == bits64(-0.0));
    CHECK(st_read_f64(&f, "d16", 1, shape, d, err, sizeof err) == 0);
    CHECK(d[0] == 1.0 && d[1] == -2.5 && d[2] == 1.0 + 0x1p-8 && d[4] == 0.0);
    CHECK_NEAR(d[3], 0.1, 0x1p-14);
    CHECK(st_read_f64(&f, "f64", 1, shape, d, err, sizeof err) == 0);
    for (int i = 0; i < 6; i++) CHECK(bits64(d[i]) == bits64((double)vf[i]));
    CHECK(st_read_f32(&f, "f32", 1, shape, x, err, sizeof err) == 0);
    CHECK(memcmp(x, vf, sizeof x) == 0);
    CHECK(st_read_f32(&f, "fbf", 1, shape, x, err, sizeof err) == 0);
    CHECK(x[2] == 1.0f + 0x1p-6f && x[4] == 65536.0f);
    CHECK(st_read_f32(&f, "f16", 1, shape, x, err, sizeof err) == 0);
    CHECK(x[0] == 1.0f && x[4] == INFINITY && bits32(x[5]) == 0x80000000u);
    st_close(&f);
    unlink(path);
}

TEST(scalars_empty_and_8_dims) {
    const char *path = tpath("dims.safetensors");
    const double s = 42.5;
    const int64_t s8[8] = {1, 2, 1, 2, 1, 2, 1, 3};
    double d8[24];
    for (int i = 0; i < 24; i++) d8[i] = i * 0.5;
    const int64_t se[3] = {4, 0, 7};
    const int64_t one = 7;
    StWriter *w = st_writer_new();
    st_writer_add(w, "scalar", ST_F64, 0, NULL, &s);
    st_writer_add(w, "empty", ST_F32, 3, se, NULL);   /* no data needed */
    st_writer_add(w, "eight", ST_F64, 8, s8, d8);
    st_writer_add(w, "empty2", ST_I32, 1, (int64_t[]){0}, NULL);
    st_writer_add(w, "weird \"name\"\\\n\xc3\xa9", ST_I64, 1, &one,
                     (int64_t[]){-1, 2, -3, 4, 5, 6, 7});
    st_writer_meta(w, "k \"q\"", "v\\ \t\x01 \xe2\x82\xac");
    char err[512] = "";
    CHECK(st_writer_save(w, path, err, sizeof err) == 0);
    st_writer_free(w);

    StFile f;
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    if (f.path == NULL) { fprintf(stderr, "%s\n", err); return; }
    const StTensor *t = st_find(&f, "scalar");
    CHECK(t && t->ndim == 0 && t->numel == 1 && t->end - t->begin == 8);
    double out = 0;
    CHECK(st_read_f64(&f, "scalar", 0, NULL, &out, err, sizeof err) == 0 && out == 42.5);
    t = st_find(&f, "empty");
    CHECK(t && t->ndim == 3 && t->numel == 0 && t->begin == t->end && t->begin == 8);
    CHECK(st_read_f64(&f, "empty", 3, se, NULL, err, sizeof err) == 0);
    t = st_find(&f, "eight");
    CHECK(t && t->ndim == 8 && t->numel == 24 && t->begin == 8);
    double o8[24];
    CHECK(st_read_f64(&f, "eight", 8, s8, o8, err, sizeof err) == 0);
    CHECK(memcmp(o8, d8, sizeof o8) == 0);
    CHECK(st_find(&f, "empty2") != NULL);
    int32_t iv[7];
    CHECK(st_read_i32(&f, "weird \"name\"\\\n\xc3\xa9", 1, &one, iv, err, sizeof err) == 0);
    CHECK(iv[0] == -1 && iv[2] == -3 && iv[6] == 7);
    CHECK_STR(st_meta_get(&f, "k \"q\""), "v\\ \t\x01 \xe2\x82\xac");
    /* scalar against a 1-dim expectation */
    CHECK(st_read_f64(&f, "scalar", 1, &one, &out, err, sizeof err) == -1);
    CHECK_ERR(err, path, "tensor 'scalar' has shape [], expected [7]");
    st_close(&f);
    unlink(path);
}

TEST(overwrite_is_atomic_replace) {
    const char *path = tpath("over.safetensors");
    const int64_t sh[1] = {2};
    char err[512] = "";
    for (int round = 0; round < 2; round++) {
        double v[2] = {round, round + 1.0};
        StWriter *w = st_writer_new();
        st_writer_add(w, round ? "second" : "first", ST_F64, 1, sh, v);
        CHECK(st_writer_save(w, path, err, sizeof err) == 0);
        st_writer_free(w);
    }
    StFile f;
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    CHECK(f.ntensors == 1 && st_find(&f, "second") && !st_find(&f, "first"));
    st_close(&f);
    CHECK(!tmp_leftover());
    unlink(path);
}

TEST(unicode_escapes_in_header) {
    /* \u00e9 = é (2 UTF-8 bytes), \ud83d\ude00 = U+1F600 (4 bytes), \/ and \n */
    const char *json = "{\"caf\\u00e9 \\ud83d\\ude00\\/\\n\":{\"dtype\":\"U8\",\"shape\":[2],"
                       "\"data_offsets\":[0,2]} , \"__metadata__\" : { } }  \n\t";
    const char *path = write_st("uni.safetensors", json, "\x05\x06", 2);
    StFile f;
    char err[512] = "";
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    const StTensor *t = st_find(&f, "caf\xc3\xa9 \xf0\x9f\x98\x80/\n");
    CHECK(t && t->numel == 2 && ((const unsigned char *)t->data)[1] == 6);
    CHECK(f.nmeta == 0);
    st_close(&f);
}

/* ---- golden files ---- */

TEST(golden_params) {
    const char *path = GOLDEN "params.safetensors";
    StFile f;
    char err[512] = "";
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    if (f.path == NULL) { fprintf(stderr, "%s\n", err); return; }
    /* numbers from python3: struct.unpack('<Q') + json.loads of the header */
    CHECK(f.header_len == 4880);
    CHECK(f.data_len == 6911640 - 8 - 4880);
    CHECK(f.ntensors == 57);
    CHECK_STR(f.tensors[0].name, "embed.0");
    CHECK_STR(f.tensors[56].name, "sa_lambdas");
    CHECK_STR(st_meta_get(&f, "set"), "tiny_x02");
    CHECK_STR(st_meta_get(&f, "file"), "params.safetensors");
    int64_t total = 0;
    for (int i = 0; i < f.ntensors; i++) {
        CHECK(f.tensors[i].dtype == ST_F64);
        total += f.tensors[i].numel;
    }
    CHECK(total == 863344);
    CHECK(st_find(&f, "blocks.7.attn.qkvo") == NULL);   /* layer 7 has no attention */
    CHECK(st_find(&f, "blocks.8.attn.qkvo") != NULL);

    double lam[64];
    CHECK(st_read_f64(&f, "lambdas", 2, (int64_t[]){16, 4}, lam, err, sizeof err) == 0);
    CHECK(lam[0] == 1.0156451196520653);
    CHECK(lam[1] == 0.09294897439568896);
    CHECK(lam[4] == 0.8269331509289507);
    CHECK(lam[63] == -0.12928240154726703);
    double sum = 0;
    for (int i = 0; i < 64; i++) sum += lam[i];
    CHECK_NEAR(sum, 16.362034014006912, 1e-12);
    float lamf[64];
    CHECK(st_read_f32(&f, "lambdas", 2, (int64_t[]){16, 4}, lamf, err, sizeof err) == 0);
    CHECK(lamf[0] == (float)1.0156451196520653 && lamf[63] == (float)-0.12928240154726703);

    double *lm = malloc(256 * 64 * sizeof *lm);
    CHECK(st_read_f64(&f, "lm_head", 2, (int64_t[]){256, 64}, lm, err, sizeof err) == 0);
    CHECK(lm[0] == 0.13340889434619715);
    CHECK(lm[255 * 64 + 63] == 0.03966614833828101);
    sum = 0;
    for (int i = 0; i < 256 * 64; i++) sum += lm[i];
    CHECK_NEAR(sum, 6.377147912393569, 1e-9);
    free(lm);

    double *emb = malloc(200 * 64 * sizeof *emb);
    CHECK(st_read_f64(&f, "embed.0", 2, (int64_t[]){200, 64}, emb, err, sizeof err) == 0);
    CHECK(emb[0] == -0.512829832515419);
    CHECK(emb[199 * 64 + 5] == -0.038870415197825206);
    sum = 0;
    for (int i = 0; i < 200 * 64; i++) sum += emb[i];
    CHECK_NEAR(sum, -89.74395965184691, 1e-9);
    free(emb);

    double sk[16];
    CHECK(st_read_f64(&f, "skip_weights", 1, (int64_t[]){16}, sk, err, sizeof err) == 0);
    CHECK(sk[0] == 0.943354092578278 && sk[15] == 0.9346544799704372);

    /* the brief's example errors, on the real file */
    double dummy[256 * 32];
    CHECK(st_read_f64(&f, "lm_head", 2, (int64_t[]){256, 32}, dummy, err, sizeof err) == -1);
    CHECK_STR(err, GOLDEN "params.safetensors: tensor 'lm_head' has shape [256, 64], "
                   "expected [256, 32]");
    CHECK(st_read_f64(&f, "lm_heads", 2, (int64_t[]){256, 64}, dummy, err, sizeof err) == -1);
    CHECK_STR(err, GOLDEN "params.safetensors: missing tensor 'lm_heads'");
    st_close(&f);
}

TEST(golden_inputs) {
    const char *path = GOLDEN "inputs.safetensors";
    StFile f;
    char err[512] = "";
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    if (f.path == NULL) { fprintf(stderr, "%s\n", err); return; }
    CHECK(f.ntensors == 3);
    const StTensor *t = st_find(&f, "tokens");
    CHECK(t && t->dtype == ST_I32 && t->ndim == 1 && t->shape[0] == 256);
    int32_t tok[256], tgt[256], doc[256];
    const int64_t T[1] = {256};
    CHECK(st_read_i32(&f, "tokens", 1, T, tok, err, sizeof err) == 0);
    CHECK(st_read_i32(&f, "targets", 1, T, tgt, err, sizeof err) == 0);
    CHECK(st_read_i32(&f, "doc_ids", 1, T, doc, err, sizeof err) == 0);
    static const int32_t first[10] = {199, 11, 123, 15, 107, 88, 2, 145, 157, 103};
    CHECK(memcmp(tok, first, sizeof first) == 0);
    CHECK(tok[250] == 178 && tok[255] == 199);
    int64_t sum = 0;
    int lo = 1 << 30, hi = -1;
    for (int i = 0; i < 256; i++) {
        sum += tok[i];
        if (tok[i] < lo) lo = tok[i];
        if (tok[i] > hi) hi = tok[i];
    }
    CHECK(sum == 26690 && lo == 0 && hi == 199);
    int shifted = 1;
    for (int i = 0; i + 1 < 256; i++) shifted &= tgt[i] == tok[i + 1];
    CHECK(shifted);
    CHECK(doc[0] == 1 && doc[255] == 8);
    double d[256];
    CHECK(st_read_f64(&f, "tokens", 1, T, d, err, sizeof err) == -1);
    CHECK_ERR(err, path, "tensor 'tokens' has dtype I32, expected a float dtype");
    st_close(&f);
}

/* ---- open errors ---- */

TEST(err_short_and_missing_files) {
    const char *p = tpath("empty.safetensors");
    write_bytes(p, "", 0);
    CHECK_OPEN_FAILS(p, "truncated", "file has 0 bytes");
    p = tpath("five.safetensors");
    write_bytes(p, "\x10\0\0\0\0", 5);
    CHECK_OPEN_FAILS(p, "truncated", "file has 5 bytes");
    CHECK_OPEN_FAILS(tpath("nonexistent.safetensors"), "cannot open", "No such file");
    CHECK_OPEN_FAILS(tmpdir, "not a regular file", "");
    /* err may be NULL */
    StFile f;
    CHECK(st_open(&f, p, NULL, 0) == -1);
    char small[8];
    CHECK(st_open(&f, p, small, sizeof small) == -1 && strlen(small) == 7);
}

TEST(err_header_length) {
    unsigned char b[32] = {0};
    const char *p = tpath("absurd.safetensors");
    uint64_t n = 1ull << 40;
    memcpy(b, &n, 8);
    write_bytes(p, b, sizeof b);
    CHECK_OPEN_FAILS(p, "header length 1099511627776", "absurd");
    n = UINT64_MAX;
    memcpy(b, &n, 8);
    write_bytes(p, b, sizeof b);
    CHECK_OPEN_FAILS(p, "header length 18446744073709551615", "absurd");
    /* plausible length but beyond the file: 4096 bytes of JSON, file has 92 after it */
    unsigned char c[100];
    memset(c, ' ', sizeof c);
    n = 4096;
    memcpy(c, &n, 8);
    c[8] = '{';
    c[9] = '}';
    write_bytes(p, c, sizeof c);
    CHECK_OPEN_FAILS(p, "truncated", "header length says 4096 bytes of JSON, file has 92");
    /* one byte too many */
    n = 93;
    memcpy(c, &n, 8);
    write_bytes(p, c, sizeof c);
    CHECK_OPEN_FAILS(p, "truncated", "93 bytes of JSON");
    /* exactly right: "{}" + 90 spaces is a valid empty file */
    n = 92;
    memcpy(c, &n, 8);
    write_bytes(p, c, sizeof c);
    StFile f;
    char err[256];
    CHECK(st_open(&f, p, err, sizeof err) == 0 && f.ntensors == 0 && f.data_len == 0);
    st_close(&f);
    /* zero-length header is not JSON */
    memset(c, 0, 8);
    write_bytes(p, c, 8);
    CHECK_OPEN_FAILS(p, "invalid JSON", "expected '{'");
}

TEST(err_truncated_data) {
    /* the real params file cut to its header + 100 bytes of data */
    size_t n;
    unsigned char *b = read_all(GOLDEN "params.safetensors", &n);
    CHECK(b != NULL && n == 6911640);
    if (!b) return;
    const char *p = tpath("params.safetensors");
    write_bytes(p, b, 8 + 4880 + 100);
    CHECK_OPEN_FAILS(p, "truncated: header says 6906752 bytes of data, file has 100", "");
    write_bytes(p, b, n - 1);   /* one byte short */
    CHECK_OPEN_FAILS(p, "truncated: header says 6906752 bytes of data, file has 6906751", "");
    free(b);
    /* small hand-made case */
    p = write_st("short.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                 "\"data_offsets\":[0,24]}}", NULL, 16);
    CHECK_OPEN_FAILS(p, "truncated", "24 bytes of data, file has 16");
}

TEST(err_bad_json) {
    static const struct { const char *json, *kw; } cases[] = {
        {"", "expected '{' at the start"},
        {"   ", "expected '{'"},
        {"[]", "expected '{'"},
        {"{", "expected a string"},
        {"{\"a\"", "expected ':'"},
        {"{\"a\":", "expected '{' for a tensor entry"},
        {"{\"a\":{", "expected a string"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}", "expected ',' or '}'"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}} x", "unexpected text"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}}", "unexpected text"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},}", "expected a string"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],}}", "expected a string"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,],\"data_offsets\":[0,1]}}", "not an integer"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1 2],\"data_offsets\":[0,1]}}", "expected ',' or ']'"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0 1]}}", "expected two numbers"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", "expected ']'"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", "expected two numbers"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}", "expected '['"},
        {"{\"a\":{\"dtype\":U8,\"shape\":[1],\"data_offsets\":[0,1]}}", "expected a string"},
        {"{'a':{}}", "expected a string"},
        {"{\"a", "unterminated string"},
        {"{\"a\\", "unterminated string"},
        {"{\"a\\q\":{}}", "bad escape"},
        {"{\"a\\u12\":{}}", "bad hex digit"},
        {"{\"a\\u12", "truncated \\u escape"},
        {"{\"\\udc00\":{}}", "lone low surrogate"},
        {"{\"\\ud800x\":{}}", "high surrogate without low"},
        {"{\"\\ud800\\u0041\":{}}", "high surrogate without low"},
        {"{\"a\\u0000b\":{}}", "\\u0000"},
        {"{\"a\tb\":{}}", "control character"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[01],\"data_offsets\":[0,1]}}", "leading zero"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[-],\"data_offsets\":[0,1]}}", "bad number"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1.],\"data_offsets\":[0,1]}}", "bad number"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1e],\"data_offsets\":[0,1]}}", "bad number"},
        {"{\"__metadata__\":[]}", "expected '{' after \"__metadata__\""},
        {"{\"__metadata__\":{\"k\":\"v\" \"k2\":\"v\"}}", "expected ',' or '}' in __metadata__"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "badjson%zu.safetensors", i);
        const char *p = write_st(name, cases[i].json, "\0", 1);
        StFile f;
        char err[512] = "";
        int rc = st_open(&f, p, err, sizeof err);
        if (rc == 0) st_close(&f);
        CHECK(rc == -1);
        CHECK_ERR(err, p, cases[i].kw);
        unlink(p);
    }
}

TEST(err_bad_entries) {
    static const struct { const char *json, *kw1, *kw2; } cases[] = {
        {"{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
         "tensor 'a'", "unknown dtype 'F8'"},
        {"{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         "tensor 'w'", "unknown dtype 'f32'"},
        {"{\"w\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", "invalid JSON", "string"},
        {"{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "tensor 'w'", "missing \"dtype\""},
        {"{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,4]}}", "tensor 'w'", "missing \"shape\""},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4]}}", "tensor 'w'", "missing \"data_offsets\""},
        {"{\"w\":{}}", "tensor 'w'", "missing \"dtype\""},
        {"{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
         "tensor 'w'", "duplicate \"dtype\""},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"shape\":[4],\"data_offsets\":[0,4]}}",
         "tensor 'w'", "duplicate \"shape\""},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4],\"data_offsets\":[0,4]}}",
         "tensor 'w'", "duplicate \"data_offsets\""},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4],\"extra\":1}}",
         "tensor 'w'", "unknown key 'extra'"},
        /* dims */
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[2.5],\"data_offsets\":[0,4]}}",
         "tensor 'w': dim 0 is 2.5", "not an integer"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[2,2.0],\"data_offsets\":[0,4]}}",
         "tensor 'w': dim 1 is 2.0", "not an integer"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4e0],\"data_offsets\":[0,4]}}",
         "dim 0 is 4e0", "not an integer"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
         "tensor 'w': dim 0", "negative"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[-0],\"data_offsets\":[0,0]}}",
         "tensor 'w': dim 0", "negative"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[\"4\"],\"data_offsets\":[0,4]}}",
         "tensor 'w': dim 0", "not an integer"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[null],\"data_offsets\":[0,4]}}",
         "tensor 'w': dim 0", "not an integer"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}",
         "tensor 'w': dim 0", "too large"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808],\"data_offsets\":[0,4]}}",
         "tensor 'w': dim 0", "too large"},
        {"{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}",
         "tensor 'w': shape [4294967296, 4294967296]", "too large"},
        {"{\"w\":{\"dtype\":\"F64\",\"shape\":[9223372036854775807],\"data_offsets\":[0,4]}}",
         "tensor 'w'", "too large"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
         "tensor 'w'", "more than 8 dims"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}",
         "tensor 'w': data_offsets[0]", "negative"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.5]}}",
         "tensor 'w': data_offsets[1]", "not an integer"},
        /* offsets vs shape */
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",
         "tensor 'w': data_offsets [0, 20] hold 20 bytes", "shape [2, 3] of F32 needs 24"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}",
         "hold 0 bytes", "shape [] of F32 needs 4"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,4]}}",
         "tensor 'w': data_offsets [8, 4]", "end before they begin"},
        /* offsets outside the data area (32 bytes) */
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[28,36]}}",
         "truncated", "header says 36 bytes of data, file has 32"},
        {"{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[33,33]}}",
         "truncated", "header says 33 bytes of data"},
        /* overlap */
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[8,24]}}",
         "tensors 'a' [0, 16) and 'b' [8, 24)", "overlap"},
        {"{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
         "'a' [4, 8)", "overlap"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[30],\"data_offsets\":[0,30]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[10,12]},"
         "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[12,14]}}",
         "tensors 'a' [0, 30) and 'b' [10, 12)", "overlap"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[30],\"data_offsets\":[0,30]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[30,32]},"
         "\"c\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[29,30]}}",
         "tensors 'a' [0, 30) and 'c' [29, 30)", "overlap"},
        /* names */
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
         "duplicate tensor name 'a'", ""},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", "duplicate \"__metadata__\"", ""},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", "duplicate __metadata__ key 'k'", ""},
        {"{\"__metadata__\":{\"k\":1}}", "__metadata__ value of 'k'", "not a string"},
        {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", "__metadata__ value of 'k'", "not a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "badentry%zu.safetensors", i);
        const char *p = write_st(name, cases[i].json, NULL, 32);
        StFile f;
        char err[512] = "";
        int rc = st_open(&f, p, err, sizeof err);
        if (rc == 0) st_close(&f);
        CHECK(rc == -1);
        CHECK_ERR(err, p, cases[i].kw1);
        CHECK_ERR(err, p, cases[i].kw2);
        unlink(p);
    }
}

TEST(valid_unusual_layouts) {
    /* gaps, out-of-order offsets, empty tensors sharing an offset, whitespace everywhere */
    const char *json = " { \"b\" : { \"data_offsets\" : [ 16 , 24 ] , \"shape\" : [ 2 ] ,"
                       " \"dtype\" : \"F32\" } ,\n\"a\":{\"dtype\":\"U8\",\"shape\":[4],"
                       "\"data_offsets\":[0,4]},\"e1\":{\"dtype\":\"F64\",\"shape\":[0,3],"
                       "\"data_offsets\":[2,2]},\"e2\":{\"dtype\":\"I32\",\"shape\":[5,0],"
                       "\"data_offsets\":[2,2]},\"e3\":{\"dtype\":\"I32\",\"shape\":[0],"
                       "\"data_offsets\":[32,32]}}      ";
    unsigned char data[32] = {1, 2, 3, 4};
    float two[2] = {1.5f, -3.0f};
    memcpy(data + 16, two, 8);
    const char *p = write_st("unusual.safetensors", json, data, sizeof data);
    StFile f;
    char err[512] = "";
    CHECK(st_open(&f, p, err, sizeof err) == 0);
    if (f.path == NULL) { fprintf(stderr, "%s\n", err); return; }
    CHECK(f.ntensors == 5);
    CHECK_STR(f.tensors[0].name, "b");   /* header order, not offset order */
    CHECK_STR(f.tensors[1].name, "a");
    double d[2];
    CHECK(st_read_f64(&f, "b", 1, (int64_t[]){2}, d, err, sizeof err) == 0);
    CHECK(d[0] == 1.5 && d[1] == -3.0);
    CHECK(st_find(&f, "e3")->numel == 0);
    for (int i = 0; i < f.ntensors; i++) CHECK(st_find(&f, f.tensors[i].name) == &f.tensors[i]);
    CHECK(st_find(&f, "") == NULL && st_find(&f, "c") == NULL);
    st_close(&f);
    unlink(p);
}

/* ---- read errors ---- */

TEST(err_read) {
    const char *path = tpath("read.safetensors");
    const int64_t sh[2] = {2, 3};
    const int64_t i64[3] = {1, (int64_t)1 << 31, -5};
    const int64_t i64ok[3] = {INT32_MAX, INT32_MIN, 0};
    const uint64_t u64[2] = {7, UINT64_MAX};
    const uint32_t u32[1] = {0x80000000u};
    const double f6[6] = {0};
    StWriter *w = st_writer_new();
    st_writer_add(w, "w", ST_F64, 2, sh, f6);
    st_writer_add(w, "big", ST_I64, 1, (int64_t[]){3}, i64);
    st_writer_add(w, "ok", ST_I64, 1, (int64_t[]){3}, i64ok);
    st_writer_add(w, "u64", ST_U64, 1, (int64_t[]){2}, u64);
    st_writer_add(w, "u32", ST_U32, 1, (int64_t[]){1}, u32);
    char err[512] = "";
    CHECK(st_writer_save(w, path, err, sizeof err) == 0);
    st_writer_free(w);
    StFile f;
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    if (f.path == NULL) { fprintf(stderr, "%s\n", err); return; }

    double d[6] = {9, 9, 9, 9, 9, 9};
    float x[6];
    int32_t iv[6];
    CHECK(st_read_f64(&f, "lm_head", 2, sh, d, err, sizeof err) == -1);
    CHECK_ERR(err, path, "missing tensor 'lm_head'");
    CHECK(st_read_f64(&f, "w", 2, (int64_t[]){3, 2}, d, err, sizeof err) == -1);
    CHECK_ERR(err, path, "tensor 'w' has shape [2, 3], expected [3, 2]");
    CHECK(d[0] == 9);   /* untouched */
    CHECK(st_read_f32(&f, "w", 1, (int64_t[]){6}, x, err, sizeof err) == -1);
    CHECK_ERR(err, path, "tensor 'w' has shape [2, 3], expected [6]");
    CHECK(st_read_f32(&f, "w", 3, (int64_t[]){2, 3, 1}, x, err, sizeof err) == -1);
    CHECK_ERR(err, path, "expected [2, 3, 1]");
    CHECK(st_read_f64(&f, "w", 9, (int64_t[]){2, 3, 1, 1, 1, 1, 1, 1, 1}, d, err, sizeof err) == -1);
    CHECK_ERR(err, path, "bad expected shape");
    CHECK(st_read_f64(&f, "w", 2, NULL, d, err, sizeof err) == -1);
    CHECK_ERR(err, path, "bad expected shape");
    CHECK(st_read_i32(&f, "w", 2, sh, iv, err, sizeof err) == -1);
    CHECK_ERR(err, path, "tensor 'w' has dtype F64, expected an integer dtype");
    CHECK(st_read_f32(&f, "ok", 1, (int64_t[]){3}, x, err, sizeof err) == -1);
    CHECK_ERR(err, path, "tensor 'ok' has dtype I64, expected a float dtype");
    CHECK(st_read_i32(&f, "big", 1, (int64_t[]){3}, iv, err, sizeof err) == -1);
    CHECK_ERR(err, path, "tensor 'big': element 1 is 2147483648, which does not fit in int32");
    CHECK(st_read_i32(&f, "ok", 1, (int64_t[]){3}, iv, err, sizeof err) == 0);
    CHECK(iv[0] == INT32_MAX && iv[1] == INT32_MIN && iv[2] == 0);
    CHECK(st_read_i32(&f, "u64", 1, (int64_t[]){2}, iv, err, sizeof err) == -1);
    CHECK_ERR(err, path, "element 1 is 18446744073709551615, which does not fit");
    CHECK(st_read_i32(&f, "u32", 1, (int64_t[]){1}, iv, err, sizeof err) == -1);
    CHECK_ERR(err, path, "element 0 is 2147483648");
    /* a NULL err is fine */
    CHECK(st_read_f64(&f, "nope", 2, sh, d, NULL, 0) == -1);
    st_close(&f);
    unlink(path);
}

/* ---- writer errors ---- */

static void check_save_fails(StWriter *w, const char *kw, int line) {
    const char *p = tpath("never.safetensors");
    char err[512] = "";
    int before = test_failed_checks;
    CHECK(st_writer_save(w, p, err, sizeof err) == -1);
    CHECK_ERR(err, p, "cannot save");
    CHECK_ERR(err, p, kw);
    CHECK(!file_exists(p));
    CHECK(!tmp_leftover());
    if (test_failed_checks != before) fprintf(stderr, "  (from line %d)\n", line);
    st_writer_free(w);
}

TEST(err_writer_arguments) {
    const double v[4] = {1, 2, 3, 4};
    const int64_t sh[1] = {4};
    StWriter *w = st_writer_new();
    st_writer_add(w, "a", ST_F64, 1, sh, v);
    st_writer_add(w, "a", ST_F64, 1, sh, v);
    st_writer_add(w, "b", ST_F64, -1, sh, v);   /* later errors do not replace the first */
    check_save_fails(w, "duplicate tensor name 'a'", __LINE__);

    w = st_writer_new();
    st_writer_add(w, "x", ST_F64, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 4}, v);
    check_save_fails(w, "tensor 'x': bad ndim 9", __LINE__);
    w = st_writer_new();
    st_writer_add(w, "x", ST_F64, 2, (int64_t[]){-1, 4}, v);
    check_save_fails(w, "tensor 'x': negative or too large", __LINE__);
    w = st_writer_new();
    st_writer_add(w, "x", ST_F64, 1, sh, NULL);
    check_save_fails(w, "tensor 'x': NULL data", __LINE__);
    w = st_writer_new();
    st_writer_add(w, "__metadata__", ST_F64, 1, sh, v);
    check_save_fails(w, "reserved", __LINE__);
    w = st_writer_new();
    st_writer_add(w, "x", ST_NDTYPES, 1, sh, v);
    check_save_fails(w, "bad dtype", __LINE__);
    w = st_writer_new();
    st_writer_add_f64(w, "x", ST_I32, 1, sh, v);
    check_save_fails(w, "tensor 'x': add_f64 needs a float dtype, not I32", __LINE__);
    w = st_writer_new();
    st_writer_add_f32(w, "x", ST_U8, 1, sh, (float[]){1, 2, 3, 4});
    check_save_fails(w, "not U8", __LINE__);
    w = st_writer_new();
    st_writer_meta(w, "k", "v");
    st_writer_meta(w, "k", "w");
    check_save_fails(w, "duplicate __metadata__ key 'k'", __LINE__);
    /* a NULL writer (st_writer_new out of memory) is safe everywhere */
    st_writer_add(NULL, "x", ST_F64, 1, sh, v);
    st_writer_meta(NULL, "k", "v");
    char err[256];
    CHECK(st_writer_save(NULL, tpath("n.safetensors"), err, sizeof err) == -1);
    st_writer_free(NULL);
}

TEST(err_writer_filesystem) {
    const double v[2] = {1, 2};
    const int64_t sh[1] = {2};
    char err[512] = "";
    /* a directory that does not exist */
    const char *p = tpath("no/such/dir/x.safetensors");
    StWriter *w = st_writer_new();
    st_writer_add(w, "v", ST_F64, 1, sh, v);
    CHECK(st_writer_save(w, p, err, sizeof err) == -1);
    CHECK_ERR(err, p, "No such file or directory");
    CHECK_ERR(err, p, "create");
    /* the target is a non-empty directory: rename fails, the temp file is removed */
    const char *d = tpath("adir");
    CHECK(mkdir(d, 0700) == 0);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/keep", d);
    write_bytes(inner, "x", 1);
    CHECK(st_writer_save(w, d, err, sizeof err) == -1);
    CHECK_ERR(err, d, "rename");
    CHECK(strstr(err, strerror(EISDIR)) != NULL || strstr(err, strerror(ENOTEMPTY)) != NULL);
    CHECK(!tmp_leftover());
    unlink(inner);
    CHECK(rmdir(d) == 0);
    /* the same writer still saves fine afterwards, and a relative path works */
    char cwd[512];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(tmpdir) == 0);
    CHECK(st_writer_save(w, "rel.safetensors", err, sizeof err) == 0);
    StFile f;
    CHECK(st_open(&f, "rel.safetensors", err, sizeof err) == 0);
    CHECK(f.ntensors == 1);
    st_close(&f);
    unlink("rel.safetensors");
    CHECK(chdir(cwd) == 0);
    st_writer_free(w);
}

/* ---- robustness ---- */

/* On success the parsed tensors must describe memory inside the data area. */
static int sane(const StFile *f) {
    for (int i = 0; i < f->ntensors; i++) {
        const StTensor *t = &f->tensors[i];
        if (t->begin > t->end || t->end > f->data_len || !t->name ||
            t->end - t->begin != (uint64_t)t->numel * st_dtype_size(t->dtype) ||
            st_find(f, t->name) != t)
            return 0;
    }
    return 1;
}

TEST(fuzz_truncations_and_mutations) {
    const char *src = tpath("seed.safetensors");
    StWriter *w = st_writer_new();
    const double v[6] = {1, 2, 3, 4, 5, 6};
    st_writer_add(w, "alpha", ST_F64, 2, (int64_t[]){2, 3}, v);
    st_writer_add_f64(w, "b\"eta", ST_BF16, 1, (int64_t[]){6}, v);
    st_writer_add(w, "s", ST_F64, 0, NULL, v);
    st_writer_meta(w, "k", "v\\u");
    char err[512] = "";
    CHECK(st_writer_save(w, src, err, sizeof err) == 0);
    st_writer_free(w);
    size_t n;
    unsigned char *seed = read_all(src, &n);
    if (!seed) { CHECK(0); return; }
    const char *p = tpath("fuzz.safetensors");

    /* every proper prefix fails, with the path in the message */
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        write_bytes(p, seed, k);
        StFile f;
        if (st_open(&f, p, err, sizeof err) == 0) { bad++; st_close(&f); }
        else if (strncmp(err, p, strlen(p)) != 0) bad++;
    }
    CHECK(bad == 0);

    /* random mutations: either a clean error or a sane file */
    static const char *tokens[] = {"{", "}", "[", "]", "\"", ":", ",", "0", "-1", "1e5", "\\",
                                   "\\u", "\\ud800", " ", "\"dtype\"", "\"F32\"", "99", "2.5",
                                   "\"__metadata__\"", "null", "\x00", "\xff"};
    unsigned char *m = malloc(n + 64);
    int ok = 0, failed = 0, badmsg = 0, insane = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(m, seed, n);
        size_t len = n;
        int edits = 1 + (int)(next_rand() % 4);
        for (int e = 0; e < edits; e++) {
            uint64_t r = next_rand();
            size_t pos = (size_t)(r >> 8) % len;
            switch (r % 4) {
            case 0: m[pos] = (unsigned char)(r >> 40); break;          /* random byte */
            case 1: m[pos] ^= (unsigned char)(1u << ((r >> 32) % 8)); break;   /* bit flip */
            case 2: {                                                    /* overwrite a token */
                const char *t = tokens[(r >> 32) % (sizeof tokens / sizeof tokens[0])];
                size_t tl = strlen(t) ? strlen(t) : 1;
                if (pos + tl <= len) memcpy(m + pos, t, tl);
                break;
            }
            case 3: len = 8 + (size_t)(r >> 8) % (len - 7); break;     /* truncate */
            }
        }
        write_bytes(p, m, len);
        StFile f;
        err[0] = 0;
        if (st_open(&f, p, err, sizeof err) == 0) {
            ok++;
            insane += !sane(&f);
            for (int i = 0; i < f.ntensors; i++) {   /* touch every byte of every tensor */
                const unsigned char *b = f.tensors[i].data;
                unsigned x = 0;
                for (uint64_t j = 0; j < f.tensors[i].end - f.tensors[i].begin; j++) x += b[j];
                (void)x;
            }
            st_close(&f);
        } else {
            failed++;
            badmsg += strncmp(err, p, strlen(p)) != 0 || strlen(err) <= strlen(p) + 2;
        }
    }
    CHECK(insane == 0);
    CHECK(badmsg == 0);
    CHECK(ok > 0 && failed > 0);   /* the mutations exercised both outcomes */
    free(m);
    free(seed);
    unlink(p);
    unlink(src);
}

/* ---- main ---- */

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(tmpdir);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gptc_st_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    RUN(dtype_helpers);
    RUN(bf16_rounding);
    RUN(f16_conversion);
    RUN(roundtrip_every_dtype);
    RUN(roundtrip_converted_floats);
    RUN(scalars_empty_and_8_dims);
    RUN(overwrite_is_atomic_replace);
    RUN(unicode_escapes_in_header);
    RUN(golden_params);
    RUN(golden_inputs);
    RUN(err_short_and_missing_files);
    RUN(err_header_length);
    RUN(err_truncated_data);
    RUN(err_bad_json);
    RUN(err_bad_entries);
    RUN(valid_unusual_layouts);
    RUN(err_read);
    RUN(err_writer_arguments);
    RUN(err_writer_filesystem);
    RUN(fuzz_truncations_and_mutations);
    remove_tmpdir();
    return test_summary();
}
