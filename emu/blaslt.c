/* blaslt.c — the cuBLASLt entry points gptc uses: products computed from their descriptors.
 *
 * D = alpha op(A) op(B) + beta C, column-major as cuBLASLt's layouts say (type, rows,
 * columns, leading dimension, batch count and stride), op a transpose or not, f32 or bf16
 * operands read as float and summed in float (CUBLAS_COMPUTE_32F), D rounded to its type.
 * Before it runs, a product is checked as the recording stand-in checked it: operand types
 * that agree, shapes that agree, every operand's extent inside one allocation (and inside
 * the tensor the runtime described for it), and, as compute-sanitizer's initcheck would,
 * operands that were written before; D is then written. What cuBLASLt would refuse
 * (other compute types, epilogues, orders) is refused with a message. */
#include "emu/emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

enum { R_32F = 0, R_16BF = 14, COMPUTE_32F = 68, OP_N = 0, OP_T = 1 };
enum { NOT_INITIALIZED = 1, ALLOC_FAILED = 3, INVALID_VALUE = 7, NOT_SUPPORTED = 15 };
enum { DESC_TRANSA = 3, DESC_TRANSB = 4, LAYOUT_TYPE = 0, LAYOUT_ORDER = 1, LAYOUT_BATCH = 5, LAYOUT_STRIDE = 6 };

typedef struct { int compute, scale, transa, transb; } Desc;
typedef struct { int type; uint64_t rows, cols; int64_t ld; int32_t batch; int64_t stride; } Layout;

EXPORT int cublasLtCreate(void **h)
{
    static int handle;
    *h = &handle;
    return 0;
}
EXPORT int cublasLtDestroy(void *h) { return 0; }

EXPORT int cublasLtMatmulDescCreate(Desc **d, int compute, int scale)
{
    if (compute != COMPUTE_32F || scale != R_32F) {
        emu_error(EMU_INVALID_VALUE, "cuda emulator: cuBLASLt compute type %d / scale type %d: only 32F is emulated",
                  compute, scale);
        return NOT_SUPPORTED;
    }
    *d = calloc(1, sizeof **d);
    **d = (Desc){compute, scale, OP_N, OP_N};
    return *d ? 0 : ALLOC_FAILED;
}
EXPORT int cublasLtMatmulDescDestroy(Desc *d)
{
    free(d);
    return 0;
}
EXPORT int cublasLtMatmulDescSetAttribute(Desc *d, int attr, const void *v, size_t n)
{
    int32_t x;
    memcpy(&x, v, sizeof x);
    if ((attr != DESC_TRANSA && attr != DESC_TRANSB) || (x != OP_N && x != OP_T)) {
        emu_error(EMU_INVALID_VALUE, "cuda emulator: cuBLASLt matmul attribute %d = %d is not emulated", attr, x);
        return NOT_SUPPORTED;
    }
    if (attr == DESC_TRANSA) d->transa = x;
    else d->transb = x;
    return 0;
}

EXPORT int cublasLtMatrixLayoutCreate(Layout **l, int type, uint64_t rows, uint64_t cols, int64_t ld)
{
    if ((type != R_32F && type != R_16BF) || ld < (int64_t)rows || !rows || !cols) {
        emu_error(EMU_INVALID_VALUE, "cuda emulator: cuBLASLt layout of type %d, %llu x %llu, ld %lld: not a valid f32 "
                  "or bf16 column-major layout", type, (unsigned long long)rows, (unsigned long long)cols, (long long)ld);
        return INVALID_VALUE;
    }
    *l = calloc(1, sizeof **l);
    **l = (Layout){type, rows, cols, ld, 1, 0};
    return *l ? 0 : ALLOC_FAILED;
}
EXPORT int cublasLtMatrixLayoutDestroy(Layout *l)
{
    free(l);
    return 0;
}
EXPORT int cublasLtMatrixLayoutSetAttribute(Layout *l, int attr, const void *v, size_t n)
{
    if (attr == LAYOUT_BATCH && n == sizeof(int32_t)) memcpy(&l->batch, v, n);
    else if (attr == LAYOUT_STRIDE && n == sizeof(int64_t)) memcpy(&l->stride, v, n);
    else {
        emu_error(EMU_INVALID_VALUE, "cuda emulator: cuBLASLt layout attribute %d is not emulated", attr);
        return NOT_SUPPORTED;
    }
    return 0;
}

EXPORT int cublasLtMatmulPreferenceCreate(void **p)
{
    *p = calloc(1, 8);
    return *p ? 0 : ALLOC_FAILED;
}
EXPORT int cublasLtMatmulPreferenceDestroy(void *p)
{
    free(p);
    return 0;
}
EXPORT int cublasLtMatmulPreferenceSetAttribute(void *p, int a, const void *v, size_t n) { return 0; }

typedef struct { uint64_t data[8]; size_t ws; int state; float waves; int reserved[4]; } Heuristic;
EXPORT int cublasLtMatmulAlgoGetHeuristic(void *h, Desc *d, Layout *a, Layout *b, Layout *c, Layout *dd, void *pref,
                                          int want, Heuristic *res, int *found)
{
    memset(res, 0, sizeof *res);
    res->waves = 1.0f;
    *found = 1;
    return 0;
}

/* ---- the product ------------------------------------------------------------------------------- */

typedef struct {
    EmuOp op;
    Desc d;
    Layout la, lb, lc, ld;
    float alpha, beta;
    uintptr_t a, b, c, dst;
    uint64_t m, n, k;
} Product;

static size_t elem(int type) { return type == R_16BF ? 2 : 4; }

/* bytes from the first element of a layout to the end of its last batch */
static size_t extent(const Layout *l)
{
    return elem(l->type) * ((size_t)l->ld * (l->cols - 1) + l->rows + (size_t)(l->batch - 1) * (size_t)l->stride);
}

static float load(int type, uintptr_t base, size_t i)
{
    if (type == R_32F) return ((const float *)base)[i];
    uint32_t b = (uint32_t)((const uint16_t *)base)[i] << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static void store(int type, uintptr_t base, size_t i, float v)
{
    if (type == R_32F) {
        ((float *)base)[i] = v;
        return;
    }
    uint32_t b;
    memcpy(&b, &v, 4);
    uint16_t h = (b & 0x7fffffffu) > 0x7f800000u ? 0x7fff : (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
    ((uint16_t *)base)[i] = h;
}

/* op(X) of batch `bt` as rows × depth floats, row r contiguous: for A (m × k) rows are D's
 * rows; for B (k × n), packed transposed, rows are D's columns */
static float *pack(const Layout *l, uintptr_t base, int trans, int bt, uint64_t rows, uint64_t depth, bool is_b)
{
    float *p = malloc(sizeof *p * rows * depth + 1);
    if (!p) return NULL;
    size_t off = (size_t)bt * (size_t)l->stride;
    for (uint64_t r = 0; r < rows; r++)
        for (uint64_t k = 0; k < depth; k++) {
            /* A: element (r, k) of op(A); B: element (k, r) of op(B) */
            uint64_t i = is_b ? k : r, j = is_b ? r : k;
            size_t at = trans ? (size_t)(j + i * (uint64_t)l->ld) : (size_t)(i + j * (uint64_t)l->ld);
            p[r * depth + k] = load(l->type, base, off + at);
        }
    return p;
}

/* eight partial sums in a fixed order: vectorizes, and gives the same result every run */
static float dot(const float *x, const float *y, uint64_t n)
{
    float s[8] = {0};
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) s[l] += x[i + l] * y[i + l];
    for (; i < n; i++) s[i % 8] += x[i] * y[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

typedef struct { const Product *p; const float *ap, *bp; int bt; } Job;

static void columns(void *ctx, int task)
{
    const Job *j = ctx;
    const Product *p = j->p;
    uint64_t j0 = (uint64_t)task * 16, j1 = j0 + 16 < p->n ? j0 + 16 : p->n;
    size_t doff = (size_t)j->bt * (size_t)p->ld.stride, coff = (size_t)j->bt * (size_t)p->lc.stride;
    for (uint64_t c = j0; c < j1; c++)
        for (uint64_t r = 0; r < p->m; r++) {
            float v = p->alpha * dot(j->ap + r * p->k, j->bp + c * p->k, p->k);
            if (p->beta != 0.0f) v += p->beta * load(p->lc.type, p->c, coff + r + c * (uint64_t)p->lc.ld);
            store(p->ld.type, p->dst, doff + r + c * (uint64_t)p->ld.ld, v);
        }
}

/* every operand inside its tensor (when described) and written before */
static int check_operand(const Product *p, const char *name, uintptr_t base, const Layout *l, bool read)
{
    size_t n = extent(l);
    const EmuTensors *ts = p->op.tensors;
    const char *label = "an allocation";
    bool inside = false;
    for (int i = 0; ts && i < ts->n && !inside; i++)
        if (base >= ts->t[i].base && base + n <= ts->t[i].base + ts->t[i].bytes) inside = true, label = ts->t[i].label;
    if (ts ? !inside : !emu_dev_inside(base, n))
        return emu_error(EMU_ILLEGAL_ADDRESS, "cuda emulator: cuBLASLt product%s%s: operand %s (%zu bytes at %#lx) lies "
                         "outside %s", ts ? " for " : "", ts ? ts->what : "", name, n, (unsigned long)base,
                         ts ? "every tensor of the product" : "every allocation");
    size_t bad = read ? emu_first_unwritten(base, n) : n;
    if (bad < n)
        return emu_error(EMU_LAUNCH_FAILED, "cuda emulator: cuBLASLt product%s%s: operand %s reads byte %zu of %s, which "
                         "nothing wrote before", ts ? " for " : "", ts ? ts->what : "", name, bad, label);
    return 0;
}

static int product_run(EmuOp *op)
{
    Product *p = (Product *)op;
    int rc = check_operand(p, "A", p->a, &p->la, true);
    if (!rc) rc = check_operand(p, "B", p->b, &p->lb, true);
    if (!rc && p->beta != 0.0f) rc = check_operand(p, "C", p->c, &p->lc, true);
    if (!rc) rc = check_operand(p, "D", p->dst, &p->ld, false);
    if (rc) return rc;
    for (int bt = 0; bt < p->ld.batch; bt++) {
        float *ap = pack(&p->la, p->a, p->d.transa, bt, p->m, p->k, false);
        float *bp = pack(&p->lb, p->b, p->d.transb, bt, p->n, p->k, true);
        if (!ap || !bp) {
            free(ap), free(bp);
            return emu_error(EMU_OUT_OF_MEMORY, "cuda emulator: no host memory for a product's operands");
        }
        Job j = {p, ap, bp, bt};
        emu_parallel((int)((p->n + 15) / 16), columns, &j);
        free(ap), free(bp);
    }
    emu_mark_written(p->dst, extent(&p->ld));
    return 0;
}

static int refuse(const char *why, long long x)
{
    emu_error(EMU_INVALID_VALUE, "cuda emulator: cublasLtMatmul: %s (%lld)", why, x);
    return INVALID_VALUE;
}

EXPORT int cublasLtMatmul(void *h, Desc *d, const void *alpha, const void *A, Layout *la, const void *B, Layout *lb,
                          const void *beta, const void *C, Layout *lc, void *D, Layout *ld, const void *algo, void *ws,
                          size_t wsn, void *stream)
{
    if (emu_sticky()) return INVALID_VALUE;
    uint64_t m = d->transa ? la->cols : la->rows, k = d->transa ? la->rows : la->cols;
    uint64_t kb = d->transb ? lb->cols : lb->rows, n = d->transb ? lb->rows : lb->cols;
    if (la->type != lb->type) return refuse("operands A and B of different types", la->type);
    if (lc->type != ld->type) return refuse("C and D of different types", lc->type);
    if (k != kb) return refuse("op(A) and op(B) disagree on the inner dimension", (long long)k);
    if (ld->rows != m || ld->cols != n || lc->rows != m || lc->cols != n) return refuse("D is not m x n", (long long)m);
    if (la->batch != lb->batch || la->batch != ld->batch || lc->batch != ld->batch)
        return refuse("batch counts differ", la->batch);
    if (ws && wsn && !emu_dev_inside((uintptr_t)ws, wsn)) return refuse("the workspace lies outside an allocation", 0);
    Product *p = calloc(1, sizeof *p);
    if (!p) return ALLOC_FAILED;
    *p = (Product){{product_run, NULL, NULL}, *d, *la, *lb, *lc, *ld, *(const float *)alpha, *(const float *)beta,
                   (uintptr_t)A, (uintptr_t)B, (uintptr_t)C, (uintptr_t)D, m, n, k};
    int rc = emu_submit(&p->op, true);
    return rc ? INVALID_VALUE : 0;
}
