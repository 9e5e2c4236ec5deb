/* test_ref_kernels.c — the ref backend's fused kernels (runtime/ref_kernels.h):
 * documents and the attention mask (S-5), attention forward/backward, soft-capped CE.
 *
 * Oracles: the hand-worked example of S-5.5, the literal block-list rules of S-5.2/5.3,
 * the golden masks / activations / gradients of tests/golden/tiny_x02 (read with a tiny
 * local safetensors reader), naive dense O(T^2) implementations, central finite
 * differences, and float-vs-double agreement. Run from the repository root. */
#include "runtime/ref_kernels.h"
#include "tests/mask_rules.h"
#include "tests/softcap_ce.h"
#include "tests/test.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static void rng_seed(uint64_t s) { rng_state = s; }
static uint64_t rng_u64(void)                  /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unit(void) { return (double)(rng_u64() >> 11) * 0x1.0p-53; }       /* [0,1) */
static double rng_range(double a, double b) { return a + (b - a) * rng_unit(); }
static int rng_int(int lo, int hi) { return lo + (int)(rng_u64() % (uint64_t)(hi - lo + 1)); }

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

static void fill(double *x, size_t n, double a, double b)
{
    for (size_t i = 0; i < n; i++) x[i] = rng_range(a, b);
}

/* max|a - b| / max|b| */
static double rel_err(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(a[i] - b[i]) > num) num = fabs(a[i] - b[i]);
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return den > 0 ? num / den : num;
}
static double rel_err_f(const float *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > num) num = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return den > 0 ? num / den : num;
}
static double max_abs_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) if (fabs(a[i] - b[i]) > m) m = fabs(a[i] - b[i]);
    return m;
}
static void to_float(const double *x, float *y, size_t n) { for (size_t i = 0; i < n; i++) y[i] = (float)x[i]; }
static void to_double(const float *x, double *y, size_t n) { for (size_t i = 0; i < n; i++) y[i] = x[i]; }

/* random token stream: eot with probability rate, other ids in 0..eot-1 */
static void random_tokens(int32_t *tok, int T, int32_t eot, double rate)
{
    for (int t = 0; t < T; t++) tok[t] = rng_unit() < rate ? eot : (int32_t)rng_int(0, eot - 1);
}

/* keys allowed for query q, as a bitmap over [0, T), from the dense mask */
static int keys_are_range(const uint8_t *mask, int T, int q, int k_lo, int k_hi)
{
    for (int k = 0; k < T; k++) {
        int want = k >= k_lo && k <= k_hi;
        if (mask[(size_t)q * T + k] != want) return 0;
    }
    return 1;
}

/* ---- a tiny local safetensors reader (test only) ------------------------------------ */

typedef struct { unsigned char *buf; size_t size; char *hdr; size_t data_start; } stfile;

static int st_open(stfile *f, const char *path)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) { fprintf(stderr, "cannot open %s\n", path); return 0; }
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (sz < 8) { fclose(fp); return 0; }
    f->buf = xcalloc((size_t)sz, 1);
    f->size = (size_t)sz;
    size_t got = fread(f->buf, 1, f->size, fp);
    fclose(fp);
    if (got != f->size) return 0;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->buf[i];
    if (n > f->size - 8) return 0;
    f->hdr = xcalloc((size_t)n + 1, 1);
    memcpy(f->hdr, f->buf + 8, (size_t)n);
    f->data_start = 8 + (size_t)n;
    return 1;
}

static void st_close(stfile *f) { free(f->buf); free(f->hdr); memset(f, 0, sizeof *f); }

/* Raw bytes of tensor `name`, checking its dtype string and byte count. */
static const unsigned char *st_tensor(const stfile *f, const char *name, const char *dtype, size_t nbytes)
{
    char key[128];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *e = f->hdr ? strstr(f->hdr, key) : NULL;
    if (!e) { fprintf(stderr, "tensor %s not found\n", name); return NULL; }
    const char *dt = strstr(e, "\"dtype\"");
    const char *off = strstr(e, "\"data_offsets\"");
    const char *close = strchr(e, '}');
    if (!dt || !off || !close || dt > close || off > close) return NULL;
    dt = strchr(dt + 7, '"');
    if (!dt || strncmp(dt + 1, dtype, strlen(dtype)) != 0 || dt[1 + strlen(dtype)] != '"') {
        fprintf(stderr, "tensor %s: dtype is not %s\n", name, dtype);
        return NULL;
    }
    const char *lb = strchr(off, '[');
    if (!lb) return NULL;
    char *end;
    unsigned long long b = strtoull(lb + 1, &end, 10);
    while (*end == ' ' || *end == ',') end++;
    unsigned long long en = strtoull(end, NULL, 10);
    if (en < b || en - b != nbytes || f->data_start + en > f->size) {
        fprintf(stderr, "tensor %s: bad offsets [%llu, %llu], want %zu bytes\n", name, b, en, nbytes);
        return NULL;
    }
    return f->buf + f->data_start + b;
}

static int st_i32(const stfile *f, const char *name, int32_t *out, size_t n)
{
    const unsigned char *p = st_tensor(f, name, "I32", n * 4);
    if (!p) return 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        memcpy(&out[i], &u, 4);
    }
    return 1;
}

static int st_f64(const stfile *f, const char *name, double *out, size_t n)
{
    const unsigned char *p = st_tensor(f, name, "F64", n * 8);
    if (!p) return 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t u = 0;
        for (int b = 7; b >= 0; b--) u = (u << 8) | p[8 * i + b];
        memcpy(&out[i], &u, 8);
    }
    return 1;
}

#define GOLDEN "tests/golden/tiny_x02/"

/* ======================================================================================
 * Mask
 * ====================================================================================== */

TEST(doc_ids_basic)
{
    int32_t tok[8] = {7, 3, 9, 9, 1, 9, 2, 2}, doc[8];
    int32_t want[8] = {0, 0, 1, 2, 2, 3, 3, 3};
    rt_ref_doc_ids(tok, 8, 9, doc);
    for (int t = 0; t < 8; t++) CHECK(doc[t] == want[t]);
    int32_t tok2[3] = {9, 1, 2}, doc2[3];
    rt_ref_doc_ids(tok2, 3, 9, doc2);
    CHECK(doc2[0] == 1 && doc2[1] == 1 && doc2[2] == 1);   /* u[0] = eot → id 1 */
}

/* S-5.5: B = 4, T = 32, eot at 0 and 10. */
TEST(mask_worked_example)
{
    enum { T = 32, B = 4, N = T / B };
    int32_t tok[T], doc[T];
    for (int t = 0; t < T; t++) tok[t] = 5;
    tok[0] = tok[10] = 99;
    rt_ref_doc_ids(tok, T, 99, doc);
    for (int t = 0; t < T; t++) CHECK(doc[t] == (t < 10 ? 1 : 2));

    /* block lists, nearest first */
    int nP[N], nF[N], P[N * N], F[N * N];
    block_lists(doc, T, B, nP, P, nF, F);
    CHECK(nP[2] == 3 && P[2 * N + 0] == 2 && P[2 * N + 1] == 1 && P[2 * N + 2] == 0 && nF[2] == 0);
    CHECK(nP[4] == 2 && P[4 * N + 0] == 4 && P[4 * N + 1] == 2);
    CHECK(nF[4] == 1 && F[4 * N + 0] == 3);
    CHECK(nP[7] == 2 && P[7 * N + 0] == 7 && P[7 * N + 1] == 2);
    CHECK(nF[7] == 4 && F[7 * N + 0] == 6 && F[7 * N + 1] == 5 && F[7 * N + 2] == 4 && F[7 * N + 3] == 3);
    CHECK(P[7 * N + 2] == -1 && F[7 * N + 4] == -1);

    static uint8_t m3[T * T], m3b[T * T], m2[T * T], m6[T * T], m6b[T * T];
    mask_dense(doc, T, B, 3, m3);
    mask_blocks(doc, T, B, 3, m3b);
    mask_dense(doc, T, B, 2, m2);
    mask_dense(doc, T, B, 6, m6);
    mask_blocks(doc, T, B, 6, m6b);
    CHECK(memcmp(m3, m3b, sizeof m3) == 0);
    CHECK(memcmp(m6, m6b, sizeof m6) == 0);

    CHECK(keys_are_range(m3, T, 17, 10, 17));    /* block 2 partial: only 10, 11 */
    CHECK(keys_are_range(m3, T, 28, 20, 28));
    CHECK(keys_are_range(m3, T, 10, 10, 10));    /* the eot sees only itself */
    CHECK(keys_are_range(m2, T, 9, 4, 9));
    /* block 7, w = 3 keeps P [7], F [6, 5]; w = 6 keeps P [7, 2], F [6, 5, 4, 3] */
    for (int q = 28; q < 32; q++) {
        CHECK(keys_are_range(m3, T, q, 20, q));
        CHECK(keys_are_range(m6, T, q, 10, q));
    }
    /* block 4 (w = 3): P [4, 2], F [3]: keys 10..q */
    for (int q = 16; q < 20; q++) CHECK(keys_are_range(m3, T, q, 10, q));
    /* query 5 (doc 1), w = 3: keys 0..5 */
    CHECK(keys_are_range(m3, T, 5, 0, 5));

    CHECK(rt_ref_allowed(17, 10, doc, B, 3) && !rt_ref_allowed(17, 9, doc, B, 3));
    CHECK(!rt_ref_allowed(17, 18, doc, B, 3));
    CHECK(rt_ref_window_begin(17, B, 3) == 8);
    CHECK(rt_ref_window_begin(9, B, 2) == 4);
    CHECK(rt_ref_window_begin(3, B, 3) == 0);
}

/* A document boundary inside a block: B = 4, eot at 6. */
TEST(mask_boundary_inside_block)
{
    enum { T = 16, B = 4 };
    int32_t tok[T], doc[T];
    for (int t = 0; t < T; t++) tok[t] = 1;
    tok[6] = 50;
    rt_ref_doc_ids(tok, T, 50, doc);
    static uint8_t m1[T * T], m2[T * T], mb[T * T];
    mask_dense(doc, T, B, 1, m1);
    mask_dense(doc, T, B, 2, m2);
    CHECK(keys_are_range(m2, T, 5, 0, 5));       /* doc 0, sees block 0 and itself */
    CHECK(keys_are_range(m2, T, 7, 6, 7));       /* doc 1 starts at 6 */
    CHECK(keys_are_range(m2, T, 6, 6, 6));
    CHECK(keys_are_range(m2, T, 9, 6, 9));       /* blocks 1 (keys 6, 7) and 2 */
    CHECK(keys_are_range(m1, T, 9, 8, 9));
    CHECK(keys_are_range(m1, T, 5, 4, 5));
    CHECK(keys_are_range(m2, T, 15, 8, 15));
    for (int w = -1; w <= 6; w++) {
        mask_dense(doc, T, B, w, m1);
        mask_blocks(doc, T, B, w, mb);
        CHECK(memcmp(m1, mb, sizeof mb) == 0);
    }
}

/* w = 0 and w < 0 behave exactly like w = 1, in both forms. */
TEST(mask_nonpositive_window)
{
    rng_seed(11);
    for (int rep = 0; rep < 200; rep++) {
        int B = rng_int(1, 6), N = rng_int(1, 8), T = B * N;
        int32_t tok[48], doc[48];
        random_tokens(tok, T, 7, rng_range(0, 0.5));
        rt_ref_doc_ids(tok, T, 7, doc);
        uint8_t one[48 * 48], m[48 * 48];
        mask_dense(doc, T, B, 1, one);
        for (int w = -3; w <= 0; w++) {
            mask_dense(doc, T, B, w, m);
            CHECK(memcmp(m, one, (size_t)T * T) == 0);
            mask_blocks(doc, T, B, w, m);
            CHECK(memcmp(m, one, (size_t)T * T) == 0);
        }
        mask_dense(doc, T, B, INT_MIN, m);
        CHECK(memcmp(m, one, (size_t)T * T) == 0);
        mask_blocks(doc, T, B, INT_MIN, m);
        CHECK(memcmp(m, one, (size_t)T * T) == 0);
        /* w = 1: only the diagonal block, element rule */
        for (int q = 0; q < T; q++)
            for (int k = 0; k < T; k++)
                CHECK(one[q * T + k] == (k <= q && k / B == q / B && doc[k] == doc[q]));
        for (int q = 0; q < T; q++) CHECK(rt_ref_window_begin(q, B, -2) == (q / B) * B);
    }
}

/* Closed form (S-5.4) == literal block rules (S-5.2/5.3) on many random streams. */
TEST(mask_closed_form_equals_block_rules)
{
    static const double rates[] = {0.0, 0.02, 0.08, 0.2, 0.4, 0.7, 1.0};
    rng_seed(2024);
    int cases = 0, mismatches = 0;
    long window_matters = 0, far_partial_kept = 0, full_clamped = 0, wrong_caught[3] = {0, 0, 0};
    enum { MAXT = 80 };
    static uint8_t md[MAXT * MAXT], mb[MAXT * MAXT], prev[MAXT * MAXT];
    for (int rep = 0; rep < 3000; rep++) {
        int B = rng_int(1, 8), N = rng_int(1, 10), T = B * N;
        double rate = rates[rep % 7];
        int32_t tok[MAXT], doc[MAXT];
        random_tokens(tok, T, 1000, rate);
        rt_ref_doc_ids(tok, T, 1000, doc);
        int nP[10], nF[10], P[100], F[100];
        block_lists(doc, T, B, nP, P, nF, F);
        for (int i = 0; i < N; i++) {
            CHECK(nP[i] >= 1 && P[i * N] == i);      /* the diagonal block is partial, nearest */
            for (int x = 1; x < nP[i]; x++) CHECK(P[i * N + x] < P[i * N + x - 1]);
            for (int x = 1; x < nF[i]; x++) CHECK(F[i * N + x] < F[i * N + x - 1]);
        }
        for (int w = -1; w <= N + 2; w++) {
            mask_dense(doc, T, B, w, md);
            mask_blocks(doc, T, B, w, mb);
            cases++;
            if (memcmp(md, mb, (size_t)T * T) != 0) mismatches++;
            if (w >= 2 && memcmp(md, prev, (size_t)T * T) != 0) window_matters++;
            memcpy(prev, md, (size_t)T * T);
            /* power of the comparison: plausible wrong closed forms must disagree often */
            {
                int W = w < 1 ? 1 : w, caught[3] = {0, 0, 0};
                for (int q = 0; q < T; q++)
                    for (int k = 0; k <= q; k++) {
                        int d = q / B - k / B, same = doc[k] == doc[q];
                        int wrong[3] = {same && d <= W,                  /* off by one block */
                                        d < W,                           /* documents ignored */
                                        same && d < w};                  /* w <= 0 not clamped */
                        for (int x = 0; x < 3; x++) caught[x] |= wrong[x] != mb[q * T + k];
                    }
                for (int x = 0; x < 3; x++) wrong_caught[x] += caught[x];
            }
            for (int i = 0; i < N; i++) {
                int kp = w - nF[i];
                if (kp < 1) kp = 1;
                if (kp > nP[i]) kp = nP[i];
                if (nF[i] >= 1 && kp >= 2) far_partial_kept++;
                if (w >= 2 && nF[i] > w - 1) full_clamped++;
            }
            /* window_begin bounds every allowed key */
            for (int q = 0; q < T; q++) {
                int k0 = rt_ref_window_begin(q, B, w);
                for (int k = 0; k < k0; k++) CHECK(!md[q * T + k]);
                CHECK(k0 <= q && k0 % B == 0);
            }
        }
    }
    printf("  mask: %d cases, %d mismatches; coverage: window matters %ld, far partial kept %ld, "
           "full clamped %ld; wrong forms caught: off-by-one %ld, no-doc %ld, unclamped-w %ld\n",
           cases, mismatches, window_matters, far_partial_kept, full_clamped,
           wrong_caught[0], wrong_caught[1], wrong_caught[2]);
    CHECK(cases > 25000);
    CHECK(mismatches == 0);
    CHECK(window_matters > 1000);
    CHECK(far_partial_kept > 1000);
    CHECK(full_clamped > 1000);
    for (int x = 0; x < 3; x++) CHECK(wrong_caught[x] > 1000);
}

/* The golden masks of tiny_x02: B = 16, windows 3 (long) and 1 (short), eot = 199. */
TEST(mask_golden_tiny_x02)
{
    enum { T = 256, B = 16 };
    stfile fi, fm;
    int ok_i = st_open(&fi, GOLDEN "inputs.safetensors");
    int ok_m = st_open(&fm, GOLDEN "masks.safetensors");
    CHECK(ok_i && ok_m);
    int32_t *tok = xcalloc(T, 4), *gdoc = xcalloc(T, 4), *doc = xcalloc(T, 4);
    int32_t *gm = xcalloc((size_t)T * T, 4);
    uint8_t *m = xcalloc((size_t)T * T, 1), *mb = xcalloc((size_t)T * T, 1);
    if (ok_i && ok_m) {
        CHECK(st_i32(&fi, "tokens", tok, T));
        CHECK(st_i32(&fi, "doc_ids", gdoc, T));
        rt_ref_doc_ids(tok, T, 199, doc);
        for (int t = 0; t < T; t++) CHECK(doc[t] == gdoc[t]);
        CHECK(doc[T - 1] == 8);                    /* eot at 0,37,64,101,171,175,230,255 */
        static const char *names[2] = {"mask_long", "mask_short"};
        static const int windows[2] = {3, 1};
        for (int n = 0; n < 2; n++) {
            CHECK(st_i32(&fm, names[n], gm, (size_t)T * T));
            mask_dense(doc, T, B, windows[n], m);
            mask_blocks(doc, T, B, windows[n], mb);
            long bad = 0, ones = 0;
            for (size_t x = 0; x < (size_t)T * T; x++) {
                if (gm[x] != 0 && gm[x] != 1) bad++;
                if (m[x] != gm[x] || mb[x] != gm[x]) bad++;
                ones += gm[x];
            }
            CHECK(bad == 0);
            CHECK(ones > T);                       /* not a trivial mask */
        }
    }
    free(tok); free(gdoc); free(doc); free(gm); free(m); free(mb);
    st_close(&fi);
    st_close(&fm);
}

/* ======================================================================================
 * Attention
 * ====================================================================================== */

typedef struct {
    int T, H, D, B, w;
    double scale;
    int32_t *doc;
    double *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv;
} attn_prob;

static void attn_alloc(attn_prob *a, int T, int H, int D, int B, int w, double eot_rate, double qk_range)
{
    a->T = T; a->H = H; a->D = D; a->B = B; a->w = w; a->scale = 0.12;
    size_t n = (size_t)T * H * D;
    int32_t *tok = xcalloc((size_t)T, 4);
    a->doc = xcalloc((size_t)T, 4);
    random_tokens(tok, T, 500, eot_rate);
    rt_ref_doc_ids(tok, T, 500, a->doc);
    free(tok);
    a->q = xcalloc(n, 8); a->k = xcalloc(n, 8); a->v = xcalloc(n, 8);
    a->o = xcalloc(n, 8); a->lse = xcalloc((size_t)H * T, 8); a->dout = xcalloc(n, 8);
    a->dq = xcalloc(n, 8); a->dk = xcalloc(n, 8); a->dv = xcalloc(n, 8);
    fill(a->q, n, -qk_range, qk_range);
    fill(a->k, n, -qk_range, qk_range);
    fill(a->v, n, -1, 1);
    fill(a->dout, n, -1, 1);
}

static void attn_free(attn_prob *a)
{
    free(a->doc); free(a->q); free(a->k); free(a->v); free(a->o); free(a->lse);
    free(a->dout); free(a->dq); free(a->dk); free(a->dv);
}

/* Naive dense oracle: full [T, T] scores per head, -inf where masked, softmax, P v; and the
 * dense backward. The mask comes from the literal block rules when T % B == 0, else from an
 * inline closed form. Writes o, lse and (if dq) dq, dk, dv (all double). */
static void attn_naive(const attn_prob *a, double *o, double *lse, double *dq, double *dk, double *dv)
{
    const int T = a->T, H = a->H, D = a->D;
    uint8_t *mask = xcalloc((size_t)T * T, 1);
    if (T % a->B == 0) mask_blocks(a->doc, T, a->B, a->w, mask);
    else
        for (int i = 0; i < T; i++)
            for (int j = 0; j < T; j++)
                mask[(size_t)i * T + j] = j <= i && a->doc[j] == a->doc[i] &&
                                          i / a->B - j / a->B < (a->w < 1 ? 1 : a->w);
    double *S = xcalloc((size_t)T * T, 8), *P = xcalloc((size_t)T * T, 8);
    double *dP = xcalloc((size_t)T * T, 8);
    if (dq) { memset(dq, 0, sizeof(double) * T * H * D); memset(dk, 0, sizeof(double) * T * H * D);
              memset(dv, 0, sizeof(double) * T * H * D); }
#define AT(x, t, h, e) (x)[((size_t)(t) * H + (h)) * D + (e)]
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < T; i++) {
            double m = -INFINITY;
            for (int j = 0; j < T; j++) {
                double s = 0;
                for (int e = 0; e < D; e++) s += AT(a->q, i, h, e) * AT(a->k, j, h, e);
                S[(size_t)i * T + j] = mask[(size_t)i * T + j] ? a->scale * s : -INFINITY;
                if (S[(size_t)i * T + j] > m) m = S[(size_t)i * T + j];
            }
            double sum = 0;
            for (int j = 0; j < T; j++) sum += exp(S[(size_t)i * T + j] - m);
            for (int j = 0; j < T; j++) P[(size_t)i * T + j] = exp(S[(size_t)i * T + j] - m) / sum;
            lse[(size_t)h * T + i] = m + log(sum);
            for (int e = 0; e < D; e++) {
                double acc = 0;
                for (int j = 0; j < T; j++) acc += P[(size_t)i * T + j] * AT(a->v, j, h, e);
                AT(o, i, h, e) = acc;
            }
        }
        if (!dq) continue;
        for (int i = 0; i < T; i++) {
            double Di = 0;
            for (int e = 0; e < D; e++) Di += AT(a->dout, i, h, e) * AT(o, i, h, e);
            for (int j = 0; j < T; j++) {
                double dp = 0;
                for (int e = 0; e < D; e++) dp += AT(a->dout, i, h, e) * AT(a->v, j, h, e);
                double ds = P[(size_t)i * T + j] * (dp - Di);
                for (int e = 0; e < D; e++) {
                    AT(dq, i, h, e) += a->scale * ds * AT(a->k, j, h, e);
                    AT(dk, j, h, e) += a->scale * ds * AT(a->q, i, h, e);
                    AT(dv, j, h, e) += P[(size_t)i * T + j] * AT(a->dout, i, h, e);
                }
                dP[(size_t)i * T + j] = dp;
            }
        }
    }
#undef AT
    free(mask); free(S); free(P); free(dP);
}

static void attn_check_vs_naive(int T, int H, int D, int B, int w, double rate, int with_bwd)
{
    attn_prob a;
    attn_alloc(&a, T, H, D, B, w, rate, 3.0);
    size_t n = (size_t)T * H * D;
    double *o = xcalloc(n, 8), *lse = xcalloc((size_t)H * T, 8);
    double *dq = xcalloc(n, 8), *dk = xcalloc(n, 8), *dv = xcalloc(n, 8);
    attn_naive(&a, o, lse, with_bwd ? dq : NULL, dk, dv);
    /* garbage in the outputs: the kernels must overwrite, not accumulate */
    fill(a.o, n, 5, 6); fill(a.dq, n, 5, 6); fill(a.dk, n, 5, 6); fill(a.dv, n, 5, 6);
    rt_ref_attn_fwd_f64(a.q, a.k, a.v, a.doc, T, H, D, B, w, a.scale, a.o, a.lse);
    CHECK_NEAR(max_abs_diff(a.o, o, n), 0, 1e-13);
    CHECK_NEAR(max_abs_diff(a.lse, lse, (size_t)H * T), 0, 1e-13);
    if (with_bwd) {
        rt_ref_attn_bwd_f64(a.dout, a.q, a.k, a.v, a.o, a.lse, a.doc, T, H, D, B, w, a.scale,
                            a.dq, a.dk, a.dv);
        CHECK_NEAR(rel_err(a.dq, dq, n), 0, 1e-12);
        CHECK_NEAR(rel_err(a.dk, dk, n), 0, 1e-12);
        CHECK_NEAR(rel_err(a.dv, dv, n), 0, 1e-12);
    }
    free(o); free(lse); free(dq); free(dk); free(dv);
    attn_free(&a);
}

TEST(attn_fwd_bwd_vs_naive)
{
    rng_seed(7);
    attn_check_vs_naive(24, 2, 4, 4, 2, 0.1, 1);
    attn_check_vs_naive(64, 3, 5, 8, 3, 0.05, 1);
    attn_check_vs_naive(64, 1, 8, 8, 0, 0.05, 1);        /* w = 0 acts as 1 */
    attn_check_vs_naive(48, 2, 3, 4, -4, 0.2, 1);        /* w < 0 acts as 1 */
    attn_check_vs_naive(30, 2, 4, 4, 3, 0.1, 1);         /* T not a multiple of B */
    attn_check_vs_naive(40, 2, 4, 1, 5, 0.1, 1);         /* B = 1 */
    attn_check_vs_naive(40, 2, 4, 8, INT_MAX, 0.0, 1);   /* huge window, one document */
    attn_check_vs_naive(33, 1, 4, 5, 100, 0.6, 1);       /* many documents */
    attn_check_vs_naive(1, 1, 1, 4, 3, 0.5, 1);
    attn_check_vs_naive(256, 2, 16, 16, 3, 0.02, 1);     /* tiny_x02-like */
    attn_check_vs_naive(1024, 1, 4, 16, 27, 0.004, 0);   /* longer sequence, forward only */
}

/* The forward must see exactly the keys of the mask: perturbing a masked key changes
 * nothing; perturbing an allowed key changes the output. */
TEST(attn_mask_respected)
{
    rng_seed(99);
    attn_prob a;
    const int T = 32, H = 1, D = 4, B = 4;
    attn_alloc(&a, T, H, D, B, 2, 0.0, 2.0);
    for (int t = 0; t < T; t++) a.doc[t] = t < 10 ? 1 : 2;     /* S-5.5 documents */
    double o1[4], o2[4], lse[32];
    double *o = xcalloc((size_t)T * D, 8);
    rt_ref_attn_fwd_f64(a.q, a.k, a.v, a.doc, T, H, D, B, 2, a.scale, o, lse);
    memcpy(o1, o + 17 * D, sizeof o1);
    for (int key = 0; key < T; key++) {
        double saved_k = a.k[key * D], saved_v = a.v[key * D];
        a.k[key * D] += 0.5; a.v[key * D] += 0.5;
        rt_ref_attn_fwd_f64(a.q, a.k, a.v, a.doc, T, H, D, B, 2, a.scale, o, lse);
        memcpy(o2, o + 17 * D, sizeof o2);
        int changed = memcmp(o1, o2, sizeof o1) != 0;
        CHECK(changed == (key >= 12 && key <= 17));      /* w = 2: blocks 3, 4; doc 2 */
        a.k[key * D] = saved_k; a.v[key * D] = saved_v;
    }
    free(o);
    attn_free(&a);
}

/* f = <G, o(q, k, v)>; central differences vs the backward, every element. */
static void attn_fd_check(int T, int H, int D, int B, int w, double rate)
{
    attn_prob a;
    attn_alloc(&a, T, H, D, B, w, rate, 3.0);
    const size_t n = (size_t)T * H * D;
    rt_ref_attn_fwd_f64(a.q, a.k, a.v, a.doc, T, H, D, B, w, a.scale, a.o, a.lse);
    rt_ref_attn_bwd_f64(a.dout, a.q, a.k, a.v, a.o, a.lse, a.doc, T, H, D, B, w, a.scale,
                        a.dq, a.dk, a.dv);
    double *o = xcalloc(n, 8), *lse = xcalloc((size_t)H * T, 8), *fd = xcalloc(n, 8);
    double *xs[3] = {a.q, a.k, a.v}, *gs[3] = {a.dq, a.dk, a.dv};
    const double h = 1e-6;
    for (int which = 0; which < 3; which++) {
        double *x = xs[which];
        for (size_t i = 0; i < n; i++) {
            double x0 = x[i], fp = 0, fm = 0;
            x[i] = x0 + h;
            rt_ref_attn_fwd_f64(a.q, a.k, a.v, a.doc, T, H, D, B, w, a.scale, o, lse);
            for (size_t j = 0; j < n; j++) fp += a.dout[j] * o[j];
            x[i] = x0 - h;
            rt_ref_attn_fwd_f64(a.q, a.k, a.v, a.doc, T, H, D, B, w, a.scale, o, lse);
            for (size_t j = 0; j < n; j++) fm += a.dout[j] * o[j];
            x[i] = x0;
            fd[i] = (fp - fm) / (2 * h);
        }
        double e = rel_err(gs[which], fd, n);
        if (e > 1e-6) fprintf(stderr, "  attn FD: d%c rel err %.3g\n", "qkv"[which], e);
        CHECK(e <= 1e-6);
    }
    free(o); free(lse); free(fd);
    attn_free(&a);
}

TEST(attn_grad_finite_differences)
{
    rng_seed(31);
    attn_fd_check(24, 2, 4, 4, 2, 0.12);
    attn_fd_check(22, 1, 3, 3, 0, 0.1);      /* w = 0, T not a multiple of B */
    attn_fd_check(16, 2, 2, 2, 100, 0.0);    /* one document, whole causal triangle */
}

TEST(attn_f32_vs_f64)
{
    rng_seed(5);
    const int T = 128, H = 2, D = 8, B = 8, w = 3;
    attn_prob a;
    attn_alloc(&a, T, H, D, B, w, 0.05, 3.0);
    const size_t n = (size_t)T * H * D, nl = (size_t)H * T;
    /* the double problem uses the float-rounded inputs, so only arithmetic differs */
    float *qf = xcalloc(n, 4), *kf = xcalloc(n, 4), *vf = xcalloc(n, 4), *of = xcalloc(n, 4);
    float *lsef = xcalloc(nl, 4), *dof = xcalloc(n, 4);
    float *dqf = xcalloc(n, 4), *dkf = xcalloc(n, 4), *dvf = xcalloc(n, 4);
    to_float(a.q, qf, n); to_float(a.k, kf, n); to_float(a.v, vf, n); to_float(a.dout, dof, n);
    to_double(qf, a.q, n); to_double(kf, a.k, n); to_double(vf, a.v, n); to_double(dof, a.dout, n);
    rt_ref_attn_fwd_f64(a.q, a.k, a.v, a.doc, T, H, D, B, w, a.scale, a.o, a.lse);
    rt_ref_attn_bwd_f64(a.dout, a.q, a.k, a.v, a.o, a.lse, a.doc, T, H, D, B, w, a.scale,
                        a.dq, a.dk, a.dv);
    rt_ref_attn_fwd_f32(qf, kf, vf, a.doc, T, H, D, B, w, a.scale, of, lsef);
    rt_ref_attn_bwd_f32(dof, qf, kf, vf, of, lsef, a.doc, T, H, D, B, w, a.scale, dqf, dkf, dvf);
    double e[5] = {rel_err_f(of, a.o, n), rel_err_f(lsef, a.lse, nl), rel_err_f(dqf, a.dq, n),
                   rel_err_f(dkf, a.dk, n), rel_err_f(dvf, a.dv, n)};
    for (int i = 0; i < 5; i++) {
        if (e[i] > 1e-5) fprintf(stderr, "  attn f32 vs f64: tensor %d rel err %.3g\n", i, e[i]);
        CHECK(e[i] <= 1e-5);
        CHECK(e[i] > 0 || i == 1);   /* the float path really is float */
    }
    free(qf); free(kf); free(vf); free(of); free(lsef); free(dof); free(dqf); free(dkf); free(dvf);
    attn_free(&a);
}

/* ======================================================================================
 * Soft-capped cross-entropy
 * ====================================================================================== */

static double cap_direct(double z, double c) { return c * z * pow(z * z + c * c, -0.5); }

TEST(ce_fwd_vs_direct)
{
    rng_seed(17);
    const int T = 9, V = 37;
    const double c = 15;
    double *z = xcalloc((size_t)T * V, 8), *l = xcalloc((size_t)T * V, 8);
    double loss[9], lse[9];
    int32_t y[9];
    fill(z, (size_t)T * V, -40, 40);
    z[0] = 0; z[1] = 1e6; z[2] = -1e6; z[3] = 15;
    for (int t = 0; t < T; t++) y[t] = rng_int(0, V - 1);
    y[0] = 0; y[1] = V - 1;
    capped_logits_f64(z, T, V, c, l);
    for (size_t x = 0; x < (size_t)T * V; x++) CHECK_NEAR(l[x], cap_direct(z[x], c), 1e-14);
    CHECK(l[0] == 0);
    CHECK_NEAR(l[1], 15, 2e-9); CHECK_NEAR(l[2], -15, 2e-9);
    CHECK_NEAR(l[3], 15 / sqrt(2.0), 1e-14);
    softcap_ce_fwd_f64(z, y, T, V, c, loss, lse);
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int j = 0; j < V; j++) s += exp(cap_direct(z[t * V + j], c));
        CHECK_NEAR(lse[t], log(s), 1e-13);
        CHECK_NEAR(loss[t], log(s) - cap_direct(z[t * V + y[t]], c), 1e-13);
        CHECK(loss[t] > 0);
    }
    /* in place: l may alias z */
    double *zz = xcalloc((size_t)T * V, 8);
    memcpy(zz, z, sizeof(double) * T * V);
    capped_logits_f64(zz, T, V, c, zz);
    CHECK(memcmp(zz, l, sizeof(double) * T * V) == 0);
    /* all-equal logits: loss = log V */
    for (int j = 0; j < V; j++) z[j] = 2.5;
    softcap_ce_fwd_f64(z, y, 1, V, c, loss, lse);
    CHECK_NEAR(loss[0], log((double)V), 1e-14);
    free(z); free(l); free(zz);
}

static void ce_fd_check(int T, int V, double c, double zr)
{
    double *z = xcalloc((size_t)T * V, 8), *dz = xcalloc((size_t)T * V, 8), *fd = xcalloc((size_t)T * V, 8);
    double *loss = xcalloc((size_t)T, 8), *lse = xcalloc((size_t)T, 8), *g = xcalloc((size_t)T, 8);
    int32_t *y = xcalloc((size_t)T, 4);
    fill(z, (size_t)T * V, -zr, zr);
    fill(g, (size_t)T, -1, 1);
    for (int t = 0; t < T; t++) y[t] = rng_int(0, V - 1);
    softcap_ce_fwd_f64(z, y, T, V, c, loss, lse);
    fill(dz, (size_t)T * V, 5, 6);
    softcap_ce_bwd_f64(z, y, lse, g, T, V, c, dz);
    const double h = 1e-6;
    for (size_t i = 0; i < (size_t)T * V; i++) {
        double z0 = z[i], fp = 0, fm = 0;
        z[i] = z0 + h;
        softcap_ce_fwd_f64(z, y, T, V, c, loss, lse);
        for (int t = 0; t < T; t++) fp += g[t] * loss[t];
        z[i] = z0 - h;
        softcap_ce_fwd_f64(z, y, T, V, c, loss, lse);
        for (int t = 0; t < T; t++) fm += g[t] * loss[t];
        z[i] = z0;
        fd[i] = (fp - fm) / (2 * h);
    }
    double e = rel_err(dz, fd, (size_t)T * V);
    if (e > 1e-6) fprintf(stderr, "  CE FD (c=%g): rel err %.3g\n", c, e);
    CHECK(e <= 1e-6);
    /* the row sums of dz / dcap are zero: sum_j (softmax_j - [j==y]) = 0 */
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int j = 0; j < V; j++) {
            double zx = z[t * V + j], u = c / sqrt(zx * zx + c * c);
            s += dz[t * V + j] / (u * u * u);
        }
        CHECK_NEAR(s, 0, 1e-12);
    }
    /* in place: dz may alias z */
    softcap_ce_fwd_f64(z, y, T, V, c, loss, lse);
    memcpy(fd, z, sizeof(double) * T * V);
    softcap_ce_bwd_f64(fd, y, lse, g, T, V, c, fd);
    CHECK(memcmp(fd, dz, sizeof(double) * T * V) == 0);
    free(z); free(dz); free(fd); free(loss); free(lse); free(g); free(y);
}

TEST(ce_grad_finite_differences)
{
    rng_seed(23);
    ce_fd_check(6, 10, 15, 30);
    ce_fd_check(5, 17, 2, 5);       /* strong cap */
    ce_fd_check(3, 128, 15, 12);
}

TEST(ce_f32_vs_f64)
{
    rng_seed(41);
    const int T = 64, V = 256;
    const double c = 15;
    const size_t n = (size_t)T * V;
    double *z = xcalloc(n, 8), *l = xcalloc(n, 8), *dz = xcalloc(n, 8);
    double loss[64], lse[64], g[64];
    float *zf = xcalloc(n, 4), *lf = xcalloc(n, 4), *dzf = xcalloc(n, 4);
    float lossf[64], lsef[64], gf[64];
    int32_t y[64];
    fill(z, n, -12, 12);
    for (int t = 0; t < T; t++) { y[t] = rng_int(0, V - 1); g[t] = 1.0 / T; gf[t] = (float)g[t]; }
    to_float(z, zf, n);
    to_double(zf, z, n);
    capped_logits_f64(z, T, V, c, l);
    capped_logits_f32(zf, T, V, c, lf);
    softcap_ce_fwd_f64(z, y, T, V, c, loss, lse);
    softcap_ce_fwd_f32(zf, y, T, V, c, lossf, lsef);
    softcap_ce_bwd_f64(z, y, lse, g, T, V, c, dz);
    softcap_ce_bwd_f32(zf, y, lsef, gf, T, V, c, dzf);
    double e[4] = {rel_err_f(lf, l, n), rel_err_f(lossf, loss, T), rel_err_f(lsef, lse, T),
                   rel_err_f(dzf, dz, n)};
    for (int i = 0; i < 4; i++) {
        if (e[i] > 1e-5) fprintf(stderr, "  CE f32 vs f64: tensor %d rel err %.3g\n", i, e[i]);
        CHECK(e[i] <= 1e-5);
    }
    CHECK(e[0] > 0);
    free(z); free(l); free(dz); free(zf); free(lf); free(dzf);
}

/* End to end against the float64 PyTorch reference: z = final_norm · lm_headᵀ; the capped
 * logits equal acts.logits, the mean loss equals the golden loss, and dzᵀ · final_norm
 * equals the golden gradient of lm_head. */
TEST(ce_golden_tiny_x02)
{
    enum { T = 256, d = 64, Vp = 256 };
    const double golden_loss = 8.162777622208608;
    stfile fa, fp, fg, fi;
    int ok = st_open(&fa, GOLDEN "acts.safetensors") & st_open(&fp, GOLDEN "params.safetensors") &
             st_open(&fg, GOLDEN "grads.safetensors") & st_open(&fi, GOLDEN "inputs.safetensors");
    CHECK(ok);
    double *xn = xcalloc((size_t)T * d, 8), *W = xcalloc((size_t)Vp * d, 8);
    double *gW = xcalloc((size_t)Vp * d, 8), *myW = xcalloc((size_t)Vp * d, 8);
    double *glog = xcalloc((size_t)T * Vp, 8), *z = xcalloc((size_t)T * Vp, 8);
    double *l = xcalloc((size_t)T * Vp, 8), *dz = xcalloc((size_t)T * Vp, 8);
    double *loss = xcalloc(T, 8), *lse = xcalloc(T, 8), *g = xcalloc(T, 8);
    int32_t *y = xcalloc(T, 4);
    if (ok && st_f64(&fa, "final_norm", xn, (size_t)T * d) && st_f64(&fp, "lm_head", W, (size_t)Vp * d) &&
        st_f64(&fg, "lm_head", gW, (size_t)Vp * d) && st_f64(&fa, "logits", glog, (size_t)T * Vp) &&
        st_i32(&fi, "targets", y, T)) {
        for (int t = 0; t < T; t++)
            for (int j = 0; j < Vp; j++) {
                double s = 0;
                for (int i = 0; i < d; i++) s += xn[t * d + i] * W[j * d + i];
                z[t * Vp + j] = s;
            }
        capped_logits_f64(z, T, Vp, 15, l);
        double el = rel_err(l, glog, (size_t)T * Vp);
        CHECK(el <= 1e-13);
        softcap_ce_fwd_f64(z, y, T, Vp, 15, loss, lse);
        double mean = 0;
        for (int t = 0; t < T; t++) mean += loss[t];
        mean /= T;
        CHECK_NEAR(mean / golden_loss, 1, 1e-13);
        for (int t = 0; t < T; t++) g[t] = 1.0 / T;
        softcap_ce_bwd_f64(z, y, lse, g, T, Vp, 15, dz);
        for (int j = 0; j < Vp; j++)
            for (int i = 0; i < d; i++) {
                double s = 0;
                for (int t = 0; t < T; t++) s += dz[t * Vp + j] * xn[t * d + i];
                myW[j * d + i] = s;
            }
        double eg = rel_err(myW, gW, (size_t)Vp * d);
        printf("  golden: logits rel err %.3g, loss %.17g (rel %.3g), d lm_head rel err %.3g\n",
               el, mean, fabs(mean / golden_loss - 1), eg);
        CHECK(eg <= 1e-12);
    } else CHECK(!"could not read the golden tensors");
    free(xn); free(W); free(gW); free(myW); free(glog); free(z); free(l); free(dz);
    free(loss); free(lse); free(g); free(y);
    st_close(&fa); st_close(&fp); st_close(&fg); st_close(&fi);
}

int main(void)
{
    RUN(doc_ids_basic);
    RUN(mask_worked_example);
    RUN(mask_boundary_inside_block);
    RUN(mask_nonpositive_window);
    RUN(mask_closed_form_equals_block_rules);
    RUN(mask_golden_tiny_x02);
    RUN(attn_fwd_bwd_vs_naive);
    RUN(attn_mask_respected);
    RUN(attn_grad_finite_differences);
    RUN(attn_f32_vs_f64);
    RUN(ce_fwd_vs_direct);
    RUN(ce_grad_finite_differences);
    RUN(ce_f32_vs_f64);
    RUN(ce_golden_tiny_x02);
    return test_summary();
}
