/* ref.c — the reference backend: an op-by-op interpreter of the graph IR (contract:
 * ref.h). One function per op family, a switch in eval(); the precision-generic numeric
 * kernels live in ref_ops_impl.h, instantiated below for double and for float. Data
 * movement (MOVE ops, GATHER) is precision-agnostic: it copies elements of 4 or 8 bytes. */
#include "runtime/ref.h"
#include "base/base.h"

#include "runtime/ref_kernels.h"
#include "runtime/sgemm.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <time.h>

#define PAR_MIN (1 << 15)       /* elements of work below which loops stay serial */
#define GEMM_SMALL 262144.0     /* M*N*K at or below which one product is not split */

struct RtRef {
    const IrGraph *g;
    RtPrec prec;
    int cap;                    /* entries of the per-node arrays below (by node id) */
    void **buf;                 /* node values: float data in prec, or int32; NULL: none */
    size_t *nbytes;             /* sizes of those buffers */
    unsigned char *is_value;    /* 1: a leaf value set by the caller (kept across runs) */
    unsigned char *keep;        /* 1: kept by the current run */
    int *last;                  /* id of the last consumer in the current run, or -1 */
    size_t live, peak;          /* bytes of node buffers held now / at most in this run */
    void *pool[64];             /* freed node buffers kept for reuse (sizes in pool_bytes): */
    size_t pool_bytes[64];      /* a fresh large buffer costs page faults on every run */
    int npool;
    char msg[512];              /* the current error */
};

#define REAL double
#define SFX(x) x##_f64
#define GEMM cblas_dgemm
#include "runtime/ref_ops_impl.h"
#undef REAL
#undef SFX
#undef GEMM
#define REAL float
#define SFX(x) x##_f32
#define GEMM(order, ta, tb, ...) rt_sgemm((ta) == CblasTrans, (tb) == CblasTrans, __VA_ARGS__)
#include "runtime/ref_ops_impl.h"
#undef REAL
#undef SFX
#undef GEMM

/* Calls kernel fn in the interpreter's precision; pointer arguments are void *. */
#define KCALL(r, fn, ...) do { if ((r)->prec == RT_F64) fn##_f64(__VA_ARGS__); \
                               else fn##_f32(__VA_ARGS__); } while (0)

/* ---- buffers ---------------------------------------------------------------------------- */

static size_t real_size(const RtRef *r) { return r->prec == RT_F64 ? sizeof(double) : sizeof(float); }

/* bytes per element of node n in this backend */
static size_t elem_size(const RtRef *r, const IrNode *n)
{
    return n->dtype == IR_I32 ? sizeof(int32_t) : real_size(r);
}

/* the per-node arrays cover every node of the graph (which may have grown) */
static void grow(RtRef *r)
{
    int n = r->g->n;
    if (n <= r->cap) return;
    r->buf = xrealloc(r->buf, sizeof *r->buf * (size_t)n);
    r->nbytes = xrealloc(r->nbytes, sizeof *r->nbytes * (size_t)n);
    r->is_value = xrealloc(r->is_value, (size_t)n);
    r->keep = xrealloc(r->keep, (size_t)n);
    r->last = xrealloc(r->last, sizeof *r->last * (size_t)n);
    for (int i = r->cap; i < n; i++) {
        r->buf[i] = NULL;
        r->nbytes[i] = 0;
        r->is_value[i] = r->keep[i] = 0;
        r->last[i] = -1;
    }
    r->cap = n;
}

/* A buffer of exactly `bytes` from the pool, zeroed, or a new one. */
static void *pool_take(RtRef *r, size_t bytes)
{
    for (int i = 0; i < r->npool; i++)
        if (r->pool_bytes[i] == bytes) {
            void *p = r->pool[i];
            r->pool[i] = r->pool[--r->npool];
            r->pool_bytes[i] = r->pool_bytes[r->npool];
            return memset(p, 0, bytes);
        }
    return xcalloc(bytes, 1);
}

/* Keeps a large buffer for reuse (evicting the oldest when full); frees small ones. */
static void pool_give(RtRef *r, void *p, size_t bytes)
{
    if (bytes < (1u << 16)) {
        free(p);
        return;
    }
    if (r->npool == 64) {
        free(r->pool[0]);
        memmove(r->pool, r->pool + 1, sizeof r->pool[0] * 63);
        memmove(r->pool_bytes, r->pool_bytes + 1, sizeof r->pool_bytes[0] * 63);
        r->npool--;
    }
    r->pool[r->npool] = p;
    r->pool_bytes[r->npool++] = bytes;
}

/* a zeroed buffer for node n (replacing any it has) */
static void *alloc_buf(RtRef *r, const IrNode *n)
{
    size_t bytes = (size_t)ir_numel(n) * elem_size(r, n);
    if (r->buf[n->id]) {
        pool_give(r, r->buf[n->id], r->nbytes[n->id]);
        r->live -= r->nbytes[n->id];
    }
    r->buf[n->id] = pool_take(r, bytes);
    r->nbytes[n->id] = bytes;
    r->live += bytes;
    if (r->live > r->peak) r->peak = r->live;
    return r->buf[n->id];
}

static void free_buf(RtRef *r, int id)
{
    if (!r->buf[id]) return;
    pool_give(r, r->buf[id], r->nbytes[id]);
    r->buf[id] = NULL;
    r->live -= r->nbytes[id];
    r->nbytes[id] = 0;
    r->is_value[id] = 0;
}

/* frees every computed result (leaf values stay) */
static void free_results(RtRef *r)
{
    for (int i = 0; i < r->cap; i++)
        if (!r->is_value[i]) free_buf(r, i);
}

/* One line into r->msg: "file:line: OP %id: " (when n is given) then the message. */
static int fail(RtRef *r, const IrNode *n, const char *fmt, ...)
{
    size_t k = 0, cap = sizeof r->msg;
    r->msg[0] = '\0';
    if (n && n->src_file)
        k += (size_t)snprintf(r->msg, cap, "%s:%d: ", n->src_file, n->src_line);
    if (n && k < cap) k += (size_t)snprintf(r->msg + k, cap - k, "%s %%%d: ", ir_op_name(n->op), n->id);
    if (k < cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->msg + k, cap - k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* x's data in the representation of a float op: its own buffer, or for an I32 x a converted
 * copy left in *tmp for the caller to free */
static const void *real_in(RtRef *r, const IrNode *x, void **tmp)
{
    if (x->dtype != IR_I32) return r->buf[x->id];
    int64_t n = ir_numel(x);
    *tmp = xmalloc((size_t)n * real_size(r));
    KCALL(r, k_from_i32, r->buf[x->id], *tmp, n);
    return *tmp;
}

/* x's data in the representation of node n (a MOVE or GATHER consumer of x) */
static const void *in_as(RtRef *r, const IrNode *x, const IrNode *n, void **tmp)
{
    return n->dtype == IR_I32 ? r->buf[x->id] : real_in(r, x, tmp);
}

static int no_i32(RtRef *r, const IrNode *n)
{
    return fail(r, n, "i32 results are only supported for elementwise arithmetic and comparisons, data "
                      "movement, GATHER and CAST");
}

/* ---- leaves ----------------------------------------------------------------------------- */

/* PARAM, INPUT, SCALAR: the caller's value; CONST, IOTA, ROPE_*: computed */
static int eval_leaf(RtRef *r, const IrNode *n)
{
    static const char *kind[] = {[IR_INPUT] = "input", [IR_PARAM] = "parameter", [IR_SCALAR] = "scalar"};
    switch (n->op) {
    case IR_INPUT: case IR_PARAM: case IR_SCALAR:
        if (!r->buf[n->id]) return fail(r, NULL, "%s '%s' has no value", kind[n->op], n->name ? n->name : "?");
        return 0;
    case IR_CONST:
        if (n->dtype == IR_I32) {
            *(int32_t *)alloc_buf(r, n) = (int32_t)n->fattr[0];
            return 0;
        }
        KCALL(r, k_fill, alloc_buf(r, n), ir_numel(n), n->fattr[0]);
        return 0;
    case IR_IOTA:
        if (n->dtype == IR_I32) rt_ref_iota_i32(n->ndim, n->shape, (int)n->iattr[0], alloc_buf(r, n));
        else KCALL(r, rt_ref_iota, n->ndim, n->shape, (int)n->iattr[0], alloc_buf(r, n));
        return 0;
    default:                                           /* ROPE_COS, ROPE_SIN: [T, D/2] */
        if (n->dtype == IR_I32) return no_i32(r, n);
        KCALL(r, rt_ref_rope, n->op == IR_ROPE_SIN, n->shape[0], n->iattr[0], n->fattr[0], alloc_buf(r, n));
        return 0;
    }
}

/* ---- elementwise and reductions ----------------------------------------------------------- */

/* CAST to i32: truncation toward zero, an error outside the int32 range */
static int eval_cast_i32(RtRef *r, const IrNode *n)
{
    const IrNode *x = n->in[0];
    int64_t numel = ir_numel(n), bad = -1;
    int32_t *y = alloc_buf(r, n);
    if (x->dtype == IR_I32) {
        memcpy(y, r->buf[x->id], (size_t)numel * sizeof *y);
        return 0;
    }
    if (r->prec == RT_F64) bad = k_to_i32_f64(r->buf[x->id], y, numel);
    else bad = k_to_i32_f32(r->buf[x->id], y, numel);
    if (bad < 0) return 0;
    double v = r->prec == RT_F64 ? ((double *)r->buf[x->id])[bad] : ((float *)r->buf[x->id])[bad];
    return fail(r, n, "element %lld (%g) does not fit i32", (long long)bad, v);
}

/* UNARY: y = op(x), same shape */
static int eval_unary(RtRef *r, const IrNode *n)
{
    if (n->op == IR_CAST && n->dtype == IR_I32) return eval_cast_i32(r, n);
    if (n->dtype == IR_I32) return no_i32(r, n);
    void *tmp = NULL;
    const void *x = real_in(r, n->in[0], &tmp);
    KCALL(r, k_unary, n->op, x, alloc_buf(r, n), ir_numel(n));
    free(tmp);
    return 0;
}

/* a op b for one pair of i32 operands, computed in 64 bits: + - * wrap around modulo 2^32
 * as the fused backends' do; // and % round down (Python's rules). 0, or -1 on a division
 * by zero. */
static int i32_op(IrOp op, int64_t a, int64_t b, int32_t *out)
{
    int64_t q, m;
    if ((op == IR_FLOORDIV || op == IR_MOD) && b == 0) return -1;
    switch (op) {
    case IR_ADD: *out = (int32_t)(uint32_t)(uint64_t)(a + b); return 0;
    case IR_SUB: *out = (int32_t)(uint32_t)(uint64_t)(a - b); return 0;
    case IR_MUL: *out = (int32_t)(uint32_t)(uint64_t)(a * b); return 0;
    case IR_EQ: *out = a == b; return 0;
    case IR_NE: *out = a != b; return 0;
    case IR_LT: *out = a < b; return 0;
    case IR_LE: *out = a <= b; return 0;
    case IR_FLOORDIV: case IR_MOD:
        q = a / b;
        m = a % b;
        if (m != 0 && (m < 0) != (b < 0)) {
            q--;
            m += b;
        }
        *out = (int32_t)(uint32_t)(uint64_t)(op == IR_FLOORDIV ? q : m);
        return 0;
    default: return -1;
    }
}

/* BINARY with i32 operands and result: an error names the first division by zero */
static int eval_binary_i32(RtRef *r, const IrNode *n)
{
    const IrNode *x = n->in[0], *y = n->in[1];
    if (x->dtype != IR_I32 || y->dtype != IR_I32) return fail(r, n, "i32 arithmetic needs i32 operands");
    const int32_t *a = r->buf[x->id], *b = r->buf[y->id];
    int32_t *o = alloc_buf(r, n);
    for (int64_t i = 0; i < ir_numel(n); i++)
        if (i32_op(n->op, a[i], b[i], &o[i]))
            return b[i] == 0 ? fail(r, n, "division by zero (element %lld: %d by 0)", (long long)i, a[i])
                             : fail(r, n, "not an i32 operation");
    return 0;
}

/* BINARY: y = a op b, equal shapes */
static int eval_binary(RtRef *r, const IrNode *n)
{
    if (n->dtype == IR_I32) return eval_binary_i32(r, n);
    if (n->op == IR_FLOORDIV || n->op == IR_MOD) return fail(r, n, "// and %% take i32 operands only");
    void *ta = NULL, *tb = NULL;
    const void *a = real_in(r, n->in[0], &ta), *b = real_in(r, n->in[1], &tb);
    KCALL(r, k_binary, n->op, a, b, alloc_buf(r, n), ir_numel(n));
    free(ta);
    free(tb);
    return 0;
}

/* SUM, MAX: x [..., L, ...] → [..., 1, ...] over axis iattr[0] */
static int eval_reduce(RtRef *r, const IrNode *n)
{
    if (n->dtype == IR_I32) return no_i32(r, n);
    const IrNode *x = n->in[0];
    int axis = (int)n->iattr[0];
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= x->shape[i];
    for (int i = axis + 1; i < x->ndim; i++) inner *= x->shape[i];
    void *tmp = NULL;
    const void *xd = real_in(r, x, &tmp);
    KCALL(r, k_reduce, n->op, xd, alloc_buf(r, n), outer, x->shape[axis], inner);
    free(tmp);
    return 0;
}

/* ---- data movement ---------------------------------------------------------------------- */

/* row-major strides (in elements) of a shape */
static void strides(int nd, const int64_t *shape, int64_t *st)
{
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st[i] = s;
        s *= shape[i];
    }
}

/* Copies a box of elements of es (4 or 8) bytes: for every index i < shape (nd axes),
 * dst[Σ i_k·ds_k] = src[Σ i_k·ss_k] (strides in elements; a stride may be 0). */
static void copy_box(char *dst, const int64_t *ds, const char *src, const int64_t *ss, int nd,
                     const int64_t *shape, size_t es)
{
    if (nd == 0) { memcpy(dst, src, es); return; }
    int64_t rows = 1, len = shape[nd - 1];
    for (int k = 0; k < nd - 1; k++) rows *= shape[k];
    const int64_t dj = ds[nd - 1] * (int64_t)es, sj = ss[nd - 1] * (int64_t)es;
#pragma omp parallel for if (rows * len > PAR_MIN)
    for (int64_t row = 0; row < rows; row++) {
        int64_t rem = row, doff = 0, soff = 0;
        for (int k = nd - 2; k >= 0; k--) {
            int64_t i = rem % shape[k];
            rem /= shape[k];
            doff += i * ds[k];
            soff += i * ss[k];
        }
        char *d = dst + doff * (int64_t)es;
        const char *s = src + soff * (int64_t)es;
        if (dj == (int64_t)es && sj == (int64_t)es) memcpy(d, s, (size_t)len * es);
        else if (es == 8) for (int64_t j = 0; j < len; j++) memcpy(d + j * dj, s + j * sj, 8);
        else for (int64_t j = 0; j < len; j++) memcpy(d + j * dj, s + j * sj, 4);
    }
}

/* BROADCAST source strides: trailing axes aligned, missing and size-1 axes stride 0 */
static void bcast_strides(const IrNode *x, const IrNode *n, int64_t *ss)
{
    int64_t xs[IR_MAX_DIMS];
    strides(x->ndim, x->shape, xs);
    for (int k = 0; k < n->ndim; k++) {
        int xa = k - (n->ndim - x->ndim);
        ss[k] = xa < 0 || x->shape[xa] == 1 ? 0 : xs[xa];
    }
}

/* RESHAPE, PERMUTE, SLICE, PAD, CONCAT, BROADCAST */
static int eval_move(RtRef *r, const IrNode *n)
{
    const IrNode *x = n->in[0];
    const size_t es = elem_size(r, n);
    int64_t os[IR_MAX_DIMS], xs[IR_MAX_DIMS], ss[IR_MAX_DIMS];
    void *tmp = NULL, *tmp2 = NULL;
    const char *xd = in_as(r, x, n, &tmp);
    char *y = alloc_buf(r, n);
    const int axis = (int)n->iattr[0];
    strides(n->ndim, n->shape, os);
    strides(x->ndim, x->shape, xs);
    switch (n->op) {
    case IR_RESHAPE: memcpy(y, xd, (size_t)ir_numel(n) * es); break;
    case IR_PERMUTE:                       /* out axis i = in axis iattr[i] */
        for (int i = 0; i < n->ndim; i++) ss[i] = xs[n->iattr[i]];
        copy_box(y, os, xd, ss, n->ndim, n->shape, es);
        break;
    case IR_SLICE:                         /* out = x[..., start : start+len, ...] */
        copy_box(y, os, xd + n->iattr[1] * xs[axis] * (int64_t)es, xs, n->ndim, n->shape, es);
        break;
    case IR_PAD:                           /* zeros, x placed at start on axis */
        copy_box(y + n->iattr[1] * os[axis] * (int64_t)es, os, xd, xs, x->ndim, x->shape, es);
        break;
    case IR_CONCAT: {                      /* a then b along axis */
        const IrNode *b = n->in[1];
        const char *bd = in_as(r, b, n, &tmp2);
        copy_box(y, os, xd, xs, x->ndim, x->shape, es);
        strides(b->ndim, b->shape, xs);
        copy_box(y + x->shape[axis] * os[axis] * (int64_t)es, os, bd, xs, b->ndim, b->shape, es);
        break;
    }
    default:                               /* IR_BROADCAST */
        bcast_strides(x, n, ss);
        copy_box(y, os, xd, ss, n->ndim, n->shape, es);
        break;
    }
    free(tmp);
    free(tmp2);
    return 0;
}

/* ---- gather / scatter ------------------------------------------------------------------- */

/* every index of b (i32) in [0, V), else an error naming the first bad one */
static int check_index(RtRef *r, const IrNode *n, const IrNode *b, int64_t V, const char *what)
{
    const int32_t *idx = r->buf[b->id];
    if (b->dtype != IR_I32) return fail(r, n, "%ss must be an i32 tensor", what);
    for (int64_t i = 0; i < ir_numel(b); i++)
        if (idx[i] < 0 || idx[i] >= V)
            return fail(r, n, "%s %d (element %lld) is outside [0, %lld)", what, idx[i], (long long)i,
                        (long long)V);
    return 0;
}

/* GATHER: a [V, ...] rows picked by b (i32, any shape) → b.shape + a.shape[1:];
 * SCATTER_ADD: zeros [V = iattr[0], ...] with rows of a added at b (a = b.shape + row) */
static int eval_gather(RtRef *r, const IrNode *n)
{
    const IrNode *a = n->in[0], *b = n->in[1];
    const int64_t V = n->op == IR_GATHER ? a->shape[0] : n->iattr[0], nidx = ir_numel(b);
    int64_t row = 1;                       /* elements of one row: n's trailing axes */
    for (int i = n->op == IR_GATHER ? b->ndim : 1; i < n->ndim; i++) row *= n->shape[i];
    if (check_index(r, n, b, V, "index")) return -1;
    const int32_t *idx = r->buf[b->id];
    void *tmp = NULL;
    if (n->op == IR_SCATTER_ADD) {
        if (n->dtype == IR_I32) return no_i32(r, n);
        const void *ad = real_in(r, a, &tmp);
        KCALL(r, k_scatter_add, ad, idx, nidx, V, row, alloc_buf(r, n));
        free(tmp);
        return 0;
    }
    const size_t es = elem_size(r, n), rb = (size_t)row * es;
    const char *ad = in_as(r, a, n, &tmp);
    char *y = alloc_buf(r, n);
#pragma omp parallel for if (nidx * row > PAR_MIN)
    for (int64_t i = 0; i < nidx; i++) memcpy(y + (size_t)i * rb, ad + (size_t)idx[i] * rb, rb);
    free(tmp);
    return 0;
}

/* ---- matmul ----------------------------------------------------------------------------- */

/* MATMUL: a [..., M, K] (iattr[1]: [..., K, M]) times b [..., K, N] (iattr[0]: [..., N, K])
 * → [..., M, N]; batch axes equal */
static int eval_matmul(RtRef *r, const IrNode *n)
{
    if (n->dtype == IR_I32) return no_i32(r, n);
    const IrNode *a = n->in[0], *b = n->in[1];
    const int nd = n->ndim, at = n->iattr[1] != 0, bt = n->iattr[0] != 0;
    const int64_t M = n->shape[nd - 2], N = n->shape[nd - 1];
    const int64_t K = at ? a->shape[nd - 2] : a->shape[nd - 1];
    int64_t batch = 1;
    for (int i = 0; i < nd - 2; i++) batch *= n->shape[i];
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX) return fail(r, n, "a matrix dimension exceeds INT_MAX");
    void *ta = NULL, *tb = NULL;
    const void *ad = real_in(r, a, &ta), *bd = real_in(r, b, &tb);
    KCALL(r, rt_ref_matmul, ad, bd, alloc_buf(r, n), batch, (int)M, (int)N, (int)K, at, bt);
    free(ta);
    free(tb);
    return 0;
}

/* ---- fused ------------------------------------------------------------------------------ */

/* window (a 0-d float or i32 tensor) → blocks, (int)llround */
static int window_of(RtRef *r, const IrNode *n, const IrNode *w, int *out)
{
    double v;
    if (w->dtype == IR_I32) v = *(const int32_t *)r->buf[w->id];
    else if (r->prec == RT_F64) v = *(const double *)r->buf[w->id];
    else v = *(const float *)r->buf[w->id];
    if (!(v >= INT_MIN && v <= INT_MAX)) return fail(r, n, "window %g is not a valid number of blocks", v);
    *out = (int)llround(v);
    return 0;
}

/* ATTENTION: q k v [T, H, D], tokens i32 [T], window [] → [T, H, D];
 * ATTENTION_BWD: the same and dout [T, H, D] → [3, T, H, D] = dq, dk, dv */
static int eval_attention(RtRef *r, const IrNode *n)
{
    if (n->dtype == IR_I32) return no_i32(r, n);
    const IrNode *q = n->in[0], *tok = n->in[3];
    const int64_t T = q->shape[0], H = q->shape[1], D = q->shape[2];
    const int64_t block = n->iattr[0], eot = n->iattr[1];
    int window = 1;
    if (tok->dtype != IR_I32) return fail(r, n, "tokens must be an i32 tensor");
    if (block < 1 || block > INT_MAX) return fail(r, n, "block %lld is not >= 1", (long long)block);
    if (T > INT_MAX || H < 1 || H > INT_MAX || D < 1 || D > INT_MAX || T * H * D > INT_MAX)
        return fail(r, n, "unsupported shape");
    if (eot < INT32_MIN || eot > INT32_MAX) return fail(r, n, "eot %lld does not fit i32", (long long)eot);
    if (window_of(r, n, n->in[4], &window)) return -1;
    void *tmp[4] = {0};
    const void *qd = real_in(r, q, &tmp[0]), *kd = real_in(r, n->in[1], &tmp[1]);
    const void *vd = real_in(r, n->in[2], &tmp[2]);
    int32_t *doc = xmalloc(sizeof(int32_t) * (size_t)(T ? T : 1));
    rt_ref_doc_ids(r->buf[tok->id], (int)T, (int32_t)eot, doc);
    void *y = alloc_buf(r, n);
    if (n->op == IR_ATTENTION)
        KCALL(r, k_attention, qd, kd, vd, doc, (int)T, (int)H, (int)D, (int)block, window, n->fattr[0], y);
    else {
        const void *dout = real_in(r, n->in[5], &tmp[3]);
        KCALL(r, k_attention_bwd, qd, kd, vd, doc, (int)T, (int)H, (int)D, (int)block, window,
              n->fattr[0], dout, y);
    }
    free(doc);
    for (int i = 0; i < 4; i++) free(tmp[i]);
    return 0;
}

/* CROSS_ENTROPY: logits a [T, V], targets b i32 [T] → [T];
 * CE_BWD: a, b, row gradients c [T] → [T, V] */
static int eval_ce(RtRef *r, const IrNode *n)
{
    if (n->dtype == IR_I32) return no_i32(r, n);
    const IrNode *a = n->in[0], *b = n->in[1];
    const int64_t T = a->shape[0], V = a->shape[1];
    if (b->ndim != 1 || b->shape[0] != T) return fail(r, n, "targets must have shape [%lld]", (long long)T);
    if (check_index(r, n, b, V, "target")) return -1;
    void *ta = NULL, *tc = NULL;
    const void *ad = real_in(r, a, &ta);
    if (n->op == IR_CROSS_ENTROPY)
        KCALL(r, k_ce, ad, r->buf[b->id], T, V, alloc_buf(r, n));
    else {
        const void *cd = real_in(r, n->in[2], &tc);
        KCALL(r, k_ce_bwd, ad, r->buf[b->id], cd, T, V, alloc_buf(r, n));
    }
    free(ta);
    free(tc);
    return 0;
}

/* ---- the interpreter -------------------------------------------------------------------- */

static int eval(RtRef *r, const IrNode *n)
{
    switch (ir_op_class(n->op)) {
    case IRC_LEAF: return eval_leaf(r, n);
    case IRC_UNARY: return eval_unary(r, n);
    case IRC_BINARY: return eval_binary(r, n);
    case IRC_REDUCE: return eval_reduce(r, n);
    case IRC_MOVE: return eval_move(r, n);
    case IRC_GATHER: return eval_gather(r, n);
    case IRC_MATMUL: return eval_matmul(r, n);
    default:
        switch (n->op) {
        case IR_ATTENTION: case IR_ATTENTION_BWD: return eval_attention(r, n);
        case IR_CROSS_ENTROPY: case IR_CE_BWD: return eval_ce(r, n);
        default: return fail(r, n, "op not supported by the ref backend");
        }
    }
}

RtRef *rt_ref_new(const IrGraph *g, RtPrec prec)
{
    /* OpenMP threads run the loops and split large matrix products; OpenBLAS's own threads
     * would compete with them for the same cores (measured: 1.6 s instead of 2.3 s per
     * tiny training step on 2 cores), so BLAS runs single-threaded inside each. */
    openblas_set_num_threads(1);
    RtRef *r = xcalloc(1, sizeof *r);
    r->g = g;
    r->prec = prec;
    grow(r);
    return r;
}

/* a fresh value buffer for a caller-set leaf */
static void *leaf_buf(RtRef *r, const IrNode *leaf)
{
    if (leaf->op != IR_PARAM && leaf->op != IR_INPUT && leaf->op != IR_SCALAR) {
        fprintf(stderr, "ref: node %%%d (%s) is not a PARAM, INPUT or SCALAR leaf\n", leaf->id,
                ir_op_name(leaf->op));
        abort();
    }
    grow(r);
    void *p = alloc_buf(r, leaf);
    r->is_value[leaf->id] = 1;
    return p;
}

void rt_ref_set(RtRef *r, const IrNode *leaf, const double *data)
{
    void *p = leaf_buf(r, leaf);
    int64_t n = ir_numel(leaf);
    if (leaf->dtype != IR_I32) { KCALL(r, k_from_f64, data, p, n); return; }
    if (k_to_i32_f64(data, p, n) >= 0) {
        fprintf(stderr, "ref: a value for i32 input '%s' does not fit i32\n", leaf->name ? leaf->name : "?");
        abort();
    }
}

void rt_ref_set_i32(RtRef *r, const IrNode *leaf, const int32_t *data)
{
    void *p = leaf_buf(r, leaf);
    int64_t n = ir_numel(leaf);
    if (leaf->dtype == IR_I32) memcpy(p, data, (size_t)n * sizeof *data);
    else KCALL(r, k_from_i32, data, p, n);
}

void rt_ref_set_scalar(RtRef *r, const char *name, double v)
{
    for (int i = 0; i < r->g->n; i++) {
        const IrNode *n = r->g->nodes[i];
        if (n->op != IR_SCALAR || !n->name || strcmp(n->name, name) != 0) continue;
        void *p = leaf_buf(r, n);
        if (n->dtype != IR_I32) { KCALL(r, k_fill, p, ir_numel(n), v); continue; }
        int32_t iv;
        if (k_to_i32_f64(&v, &iv, 1) >= 0) {
            fprintf(stderr, "ref: value %g for i32 scalar '%s' does not fit i32\n", v, name);
            abort();
        }
        for (int64_t k = 0; k < ir_numel(n); k++) ((int32_t *)p)[k] = iv;
    }
}

/* frees the buffers node n was the last consumer of, and n's own if nobody reads it */
static void release_after(RtRef *r, const IrNode *n)
{
    for (int j = 0; j < n->nin; j++) {
        int id = n->in[j]->id;
        if (r->last[id] == n->id && !r->keep[id] && !r->is_value[id]) free_buf(r, id);
    }
    if (r->last[n->id] < 0 && !r->keep[n->id] && !r->is_value[n->id]) free_buf(r, n->id);
}

int rt_ref_run(RtRef *r, IrNode *const *keep, int nkeep, char *err, size_t errlen)
{
    const IrGraph *g = r->g;
    grow(r);
    free_results(r);
    for (int i = 0; i < g->n; i++) {
        r->last[i] = -1;
        r->keep[i] = 0;
    }
    for (int i = 0; i < g->n; i++)
        for (int j = 0; j < g->nodes[i]->nin; j++) r->last[g->nodes[i]->in[j]->id] = i;
    for (int i = 0; i < nkeep; i++) r->keep[keep[i]->id] = 1;
    r->peak = r->live;
    r->msg[0] = '\0';
    static double op_ms[IR_NOPS];
    static int64_t op_elems[IR_NOPS];
    bool profile = getenv("GPTC_PROFILE") != NULL;   /* time per op kind, to stderr */
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = g->nodes[i];
        double t0 = profile ? clock_seconds() : 0;
        int rc = eval(r, n);
        if (profile) {
            op_ms[n->op] += (clock_seconds() - t0) * 1e3;
            op_elems[n->op] += ir_numel(n);
        }
        if (rc != 0) {
            free_results(r);
            if (err && errlen) snprintf(err, errlen, "%s", r->msg);
            return -1;
        }
        release_after(r, n);
    }
    if (profile) {
        fprintf(stderr, "ref profile (cumulative): op, ms, elements\n");
        for (int op = 0; op < IR_NOPS; op++)
            if (op_ms[op] > 1) fprintf(stderr, "  %-14s %9.1f %14lld\n", ir_op_name((IrOp)op), op_ms[op], (long long)op_elems[op]);
    }
    if (err && errlen) err[0] = '\0';
    return 0;
}

void rt_ref_get(const RtRef *r, const IrNode *n, double *out)
{
    if (n->id >= r->cap || !r->buf[n->id]) {
        fprintf(stderr, "ref: node %%%d (%s) has no value: not kept by the last run\n", n->id,
                ir_op_name(n->op));
        abort();
    }
    const void *p = r->buf[n->id];
    int64_t k = ir_numel(n);
    if (n->dtype == IR_I32)
        for (int64_t i = 0; i < k; i++) out[i] = ((const int32_t *)p)[i];
    else if (r->prec == RT_F64) k_to_f64_f64(p, out, k);
    else k_to_f64_f32(p, out, k);
}

void rt_ref_free(RtRef *r)
{
    if (!r) return;
    for (int i = 0; i < r->cap; i++) free(r->buf[i]);
    for (int i = 0; i < r->npool; i++) free(r->pool[i]);
    free(r->buf);
    free(r->nbytes);
    free(r->is_value);
    free(r->keep);
    free(r->last);
    free(r);
}

size_t rt_ref_live_bytes(const RtRef *r) { return r->live; }
size_t rt_ref_peak_bytes(const RtRef *r) { return r->peak; }
