/* emit.c — one loop kernel as C or CUDA C source: one C-like emitter for both dialects.
 *
 * A loop kernel iterates over a domain (dom, ndim) and writes its roots. Elementwise
 * kernels (axis < 0) compute every root at every point. A reduction kernel (axis >= 0)
 * runs per *row* (a point of the domain with the axis left out) in three parts:
 *     p1   a loop over the axis accumulating every reduction the roots need (SUM, MAX,
 *          and the logsumexp of CROSS_ENTROPY / CE_BWD rows; in C the logsumexp takes a
 *          second loop, p1b, for the sum of exponentials)
 *     mid  once per row: values of reduced shape (norm factors, loss rows), reduced roots
 *     p2   a loop over the axis computing the full-shape roots (the epilogue)
 * A value is an expression of the index: val(n, idx) emits n's computation at idx (C
 * index strings, one per axis of n) and returns the name of a temporary. Movement ops
 * only rewrite the index (a reshape axis group by axis group, so indices stay affine
 * where the shapes allow); materialized nodes are loads; a memo per block reuses a value
 * computed at the same index. What cannot be expressed (a reduction nested in another's
 * input, a reduction read at another row, a domain mismatch) fails with the node to
 * materialize in *culprit.
 *
 * Dialects. The expression code (val, compute, the index mappings, the memo) writes the
 * same text for both; the dialect is the CgDialect argument, and the places where C and
 * CUDA differ test it (d == CG_CUDA, d == CG_C):
 *   signature    C: void k(void *const *a), unpacked into typed restrict pointers;
 *                CUDA: extern "C" __global__ with typed __restrict__ parameters
 *   loops        C: rows split across OpenMP threads (one thread below CG_PAR_MIN
 *                points), `omp simd` over the axis (or the last axis); a reduction over
 *                an outer axis runs lane groups of adjacent rows, `omp simd` across the
 *                lanes (reduce_lanes); CUDA: one thread per point, one thread block per row when
 *                the reduced axis is innermost (block_rows), else one thread per row; a
 *                reduction whose rows cannot fill the GPU is split along its axis into
 *                chunks (split_chunks, cuda_split_body): two launches of one function
 *   partials     CUDA split: two more parameters, cg_part and cg_stage; launch 1
 *                (cg_stage 0) writes each chunk's accumulators to cg_part, a scratch
 *                region of the arena; launch 2 (cg_stage 1) combines them, then runs mid
 *                and p2: with p2, every (row, chunk) combines its row's partials in chunk
 *                order, then runs p2 over its chunk; without, 32 threads share a row's
 *                chunks and meet in shared memory (split_stage2_grouped)
 *   bf16         CUDA only: bf16-stored tensors converted on load and store; elementwise
 *                kernels of a multiple of 8 points run 8 points per thread (vec8) and move
 *                bf16 tensors read or written at the point's own index as 16-byte accesses
 *   logsumexp    C: a max pass and a pass of cg_expf (vectorizable); CUDA: an online
 *                (max, sum) pair per thread, combined with cg_block_lse
 *   prelude      cg_prelude: C's cg_expf and CG_PAR_MIN; CUDA's block reductions
 *
 * Numerics: values are float; C accumulates reductions in double, CUDA in float (with
 * warp-shuffle tree reductions across the block when block_rows, and split reductions'
 * chunks combined in a fixed order). */
#include "codegen/codegen.h"
#include "base/base.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static void bput(Buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        size_t room = b->cap - b->n;
        int k = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
        va_end(ap);
        if ((size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
}

typedef struct {
    int nd;
    const char *c[IR_MAX_DIMS];
    const char *lin;                 /* the linear index in the node's shape, when known */
} Idx;

enum { VEC_ARGS = 256, MAX_CUTS = 8, SEG_MIN = 8, MAX_CACHE = 8 };

typedef struct {
    int id;                          /* node (for LSE: the logits node) */
    char kind;                       /* 's' sum, 'x' max, 'l' logsumexp */
} Acc;

typedef struct {
    int node;
    const char *key, *var;
} Memo;

typedef struct {
    Buf text;
    Memo *memo;
    int nmemo, cap;
} Block;

typedef struct {
    const CgStep *s;
    CgKernel *k;
    CgDialect d;
    Block p1, p1b, mid, p2, *cur;
    Acc acc[32];
    int nacc;
    char **strs;                     /* every string made here (freed at the end) */
    int nstrs, capstrs;
    int ntmp;
    int culprit;
    bool failed, in_p1;
    bool block_rows;                 /* CUDA: one thread block per row */
    int chunks;                      /* CUDA: the reduced axis split into this many chunks (1: not) */
    bool vec8;                       /* CUDA elementwise: 8 consecutive points per thread */
    int lanes;                       /* C reductions over an outer axis: rows done this many at
                                      * a time, their accumulators arrays indexed by lane w */
    bool in_place;                   /* a root computed in a leaf it reads (inplace.c): the
                                      * roots are stored after all of them are computed */
    Buf stores;                      /* … those stores, until then */
    const char *seg_var;             /* C elementwise: the inner loop's variable (segments) */
    int64_t seg_lo, seg_hi;          /* … the part of its range being emitted */
    int64_t cut[MAX_CUTS];           /* … where a concat or pad on it changes sides */
    int ncut;
    Buf seg_text[MAX_CUTS + 1];      /* … each segment's loop body, when cut */
    int64_t tile, tile_want;         /* … its inner loop as two, of tile points inside */
    Memo cache[MAX_CACHE];           /* C reductions: values p1 computes that a later pass
                                      * needs too, kept in a row buffer c<i> (row_cache) */
    int ncache;
    bool caching;                    /* … this emission stores and reads them */
    bool exp_row[32];                /* … acc i's exponentials kept in ce<i> for CE_BWD */
    unsigned char vin[VEC_ARGS], vout[VEC_ARGS];   /* bf16 args moved 16 bytes at a time */
} Em;

static const char *str(Em *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf(fmt, ap);
    va_end(ap);
    if (e->nstrs == e->capstrs) {
        e->capstrs = e->capstrs ? 2 * e->capstrs : 64;
        e->strs = xrealloc(e->strs, sizeof *e->strs * (size_t)e->capstrs);
    }
    return e->strs[e->nstrs++] = p;
}

static const char *fail(Em *e, int node)
{
    if (!e->failed) e->culprit = node;
    e->failed = true;
    return "0";
}

/* ---- indices ------------------------------------------------------------------------- */

static const char *idx_key(Em *e, const Idx *x)
{
    size_t n = 1;
    for (int i = 0; i < x->nd; i++) n += strlen(x->c[i]) + 1;
    char *k = xmalloc(n), *p = k;
    for (int i = 0; i < x->nd; i++) {
        size_t m = strlen(x->c[i]);
        memcpy(p, x->c[i], m);
        p[m] = ',';
        p += m + 1;
    }
    *p = '\0';
    if (e->nstrs == e->capstrs) {
        e->capstrs = e->capstrs ? 2 * e->capstrs : 64;
        e->strs = xrealloc(e->strs, sizeof *e->strs * (size_t)e->capstrs);
    }
    return e->strs[e->nstrs++] = k;
}

/* an index temporary holding expr, declared in the current block */
static const char *itmp(Em *e, const char *expr)
{
    const char *t = str(e, "t%d", e->ntmp++);
    bput(&e->cur->text, "        CG_UNUSED const long %s = %s;\n", t, expr);
    return t;
}

static const char *linearize(Em *e, const Idx *x, const IrNode *n)
{
    if (x->lin) return x->lin;
    if (n->ndim == 0) return "0";
    const char *s = x->c[0];
    for (int d = 1; d < n->ndim; d++) s = str(e, "(%s) * %lld + %s", s, (long long)n->shape[d], x->c[d]);
    return s;
}

/* in's coordinates for axes [c, d) of one reshape group, from the group's linear index L */
static void split_group(Em *e, Idx *r, const IrNode *in, const int *ax, int c, int d, const char *L)
{
    if (d - c == 2 && e->seg_var && !strcmp(L, e->seg_var)) {   /* the loop's own index split in two */
        int64_t inner = in->shape[ax[c + 1]], n = e->k->dom[e->k->ndim - 1];
        if (e->tile == inner) {   /* … which the tiled loop has as its two indices */
            r->c[ax[c]] = str(e, "%sh", L);
            r->c[ax[c + 1]] = str(e, "%sl", L);
            return;
        }
        if (!e->tile && !e->tile_want && inner >= SEG_MIN && inner < n && n % inner == 0) e->tile_want = inner;
    }
    if (d - c > 1) L = itmp(e, L);
    int64_t stride = 1;
    for (int k = d - 1; k >= c; k--) {
        int64_t size = in->shape[ax[k]];
        if (k == c) r->c[ax[k]] = stride == 1 ? L : str(e, "%s / %lld", L, (long long)stride);
        else r->c[ax[k]] = stride == 1 ? str(e, "%s %% %lld", L, (long long)size)
                                       : str(e, "%s / %lld %% %lld", L, (long long)stride, (long long)size);
        stride *= size;
    }
}

/* idx of n's elements seen through reshape: the same linear index in in's shape. The axes
 * of size > 1 fall into groups whose sizes multiply to the same product on both sides
 * ([T, 4, 64] and [T, 256]: {T} and {4, 64} ↔ {256}); only a group of several axes is
 * linearized and split, so an axis outside it keeps its own index ([T, 4, 64] reads
 * [T, 256] at (i0, i1 * 64 + i2), not through T's part of one linear index), and the
 * divisions left are by the group's strides. */
static Idx map_reshape(Em *e, const Idx *x, const IrNode *n, const IrNode *in)
{
    Idx r = {.nd = in->ndim, .lin = x->lin};
    int an[IR_MAX_DIMS], ai[IR_MAX_DIMS], nn = 0, ni = 0;
    for (int d = 0; d < n->ndim; d++)
        if (n->shape[d] != 1) an[nn++] = d;
    for (int d = 0; d < in->ndim; d++) {
        if (in->shape[d] != 1) ai[ni++] = d;
        r.c[d] = "0";
    }
    for (int a = 0, b = 0; a < nn && b < ni;) {
        int a1 = a + 1, b1 = b + 1;
        int64_t pn = n->shape[an[a]], pi = in->shape[ai[b]];
        while (pn != pi && a1 <= nn && b1 <= ni) {
            if (pn < pi && a1 < nn) pn *= n->shape[an[a1++]];
            else if (pi < pn && b1 < ni) pi *= in->shape[ai[b1++]];
            else break;
        }
        if (pn != pi) break;   /* not a reshape of the same elements: cannot happen */
        const char *L = x->c[an[a]];
        for (int k = a + 1; k < a1; k++) L = str(e, "(%s) * %lld + %s", L, (long long)n->shape[an[k]], x->c[an[k]]);
        split_group(e, &r, in, ai, b, b1, L);
        a = a1;
        b = b1;
    }
    return r;
}

static Idx map_broadcast(Em *e, const Idx *x, const IrNode *n, const IrNode *in)
{
    Idx r = {.nd = in->ndim};
    int off = n->ndim - in->ndim;
    for (int d = 0; d < in->ndim; d++) r.c[d] = in->shape[d] == 1 ? "0" : x->c[d + off];
    if (ir_numel(in) == ir_numel(n)) r.lin = x->lin;
    return r;
}

static Idx with(Em *e, const Idx *x, int axis, const char *c)
{
    Idx r = *x;
    r.lin = NULL;
    r.c[axis] = c;
    return r;
}

/* ---- blocks and memo ---------------------------------------------------------------------- */

static const char *memo_get(const Block *b, int node, const char *key)
{
    for (int i = b->nmemo - 1; i >= 0; i--)
        if (b->memo[i].node == node && !strcmp(b->memo[i].key, key)) return b->memo[i].var;
    return NULL;
}

static void memo_put(Block *b, int node, const char *key, const char *var)
{
    if (b->nmemo == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->memo = xrealloc(b->memo, sizeof *b->memo * (size_t)b->cap);
    }
    b->memo[b->nmemo++] = (Memo){node, key, var};
}

/* the row buffer that holds n at key in this emission, or -1 */
static int cached(const Em *e, int node, const char *key)
{
    if (!e->caching) return -1;
    for (int i = 0; i < e->ncache; i++)
        if (e->cache[i].node == node && !strcmp(e->cache[i].key, key)) return i;
    return -1;
}

static const char *canon(Em *e, int d)
{
    static const char *const names[IR_MAX_DIMS] = {"i0", "i1", "i2", "i3", "i4", "i5"};
    return names[d];
}

/* the reduced axis is the innermost non-trivial one: a row's points are adjacent */
static bool inner_axis(const CgKernel *k)
{
    for (int d = k->axis + 1; d < k->ndim; d++)
        if (k->dom[d] != 1) return false;
    return true;
}

static int64_t rows_of(const CgKernel *k)
{
    int64_t r = 1;
    for (int d = 0; d < k->ndim; d++)
        if (d != k->axis) r *= k->dom[d];
    return r;
}

/* Is x the row's own index for n, of reduced shape: the row's coordinates (the axis
 * kept as 0 or dropped), or the row's linear index when n has one element a row? */
static bool at_row(Em *e, const IrNode *n, const Idx *x)
{
    const CgKernel *k = e->k;
    if (x->lin && !strcmp(x->lin, "row") && ir_numel(n) == rows_of(k)) return true;
    if (n->ndim == k->ndim) {
        if (n->shape[k->axis] != 1) return false;
        for (int d = 0; d < n->ndim; d++) {
            if (d == k->axis ? strcmp(x->c[d], "0") : n->shape[d] != k->dom[d] || strcmp(x->c[d], canon(e, d)))
                return false;
        }
        return true;
    }
    if (n->ndim != k->ndim - 1) return false;
    for (int d = 0, j = 0; d < k->ndim; d++) {
        if (d == k->axis) continue;
        if (n->shape[j] != k->dom[d] || strcmp(x->c[j], canon(e, d))) return false;
        j++;
    }
    return true;
}

/* Is (n, x) a per-row value of a reduction kernel: n of reduced shape read at the row's own
 * index? Such values are computed once per row, in mid. */
static bool row_value(Em *e, const IrNode *n, const Idx *x)
{
    return e->k->axis >= 0 && !e->in_p1 && at_row(e, n, x);
}

/* ---- arguments and loads ------------------------------------------------------------------- */

static bool is_root_of(const CgKernel *k, int id)
{
    for (int i = 0; i < k->nroots; i++)
        if (k->roots[i] == id) return true;
    return false;
}

/* Does k write argument id: a root, or the leaf a root is computed in? */
static bool written_arg(const CgStep *s, const CgKernel *k, int id)
{
    for (int i = 0; i < k->nroots; i++)
        if (k->roots[i] == id || (s->alias && s->alias[k->roots[i]] == id)) return true;
    return false;
}

static int arg_of(Em *e, int id)
{
    CgKernel *k = e->k;
    if (e->s->alias && e->s->alias[id] >= 0) id = e->s->alias[id];   /* one pointer for both */
    for (int i = 0; i < k->nargs; i++)
        if (k->args[i] == id) return i;
    k->args = xrealloc(k->args, sizeof *k->args * (size_t)(k->nargs + 1));
    k->args[k->nargs] = id;
    return k->nargs++;
}

/* n's element at x. A view is its own argument (the runtime passes base + offset), so
 * kernels that differ only in which slice they read share one function. */
static const char *load(Em *e, const IrNode *n, const Idx *x)
{
    int64_t off;
    cg_storage(e->s, n->id, &off);
    bool bf16 = e->d == CG_CUDA && cg_store_dtype(e->s, n->id) == IR_BF16;
    int a = arg_of(e, n->id);
    const char *lin = linearize(e, x, n);
    if (e->vec8 && bf16 && !strcmp(lin, "lin") && off % 8 == 0 && a < VEC_ARGS) {
        e->vin[a] = 1;                 /* read as one 16-byte load of 8 values before the loop */
        return str(e, "__bfloat162float(r%d[u])", a);
    }
    if (bf16) return str(e, "__bfloat162float(b%d[%s])", a, lin);
    return str(e, "b%d[%s]", a, lin);
}

static const char *val(Em *e, const IrNode *n, const Idx *x);

static const char *const_text(Em *e, double v)
{
    if (isinf(v)) return v > 0 ? "INFINITY" : "(-INFINITY)";
    if (isnan(v)) return "NAN";
    return str(e, "%.8ef", (double)(float)v);
}

static const char *unary_text(Em *e, const IrNode *n, const char *a)
{
    switch (n->op) {
    case IR_NEG: return str(e, "-%s", a);
    case IR_RELU: return str(e, "(%s < 0.0f ? 0.0f : %s)", a, a);
    case IR_SQUARE: return str(e, "%s * %s", a, a);
    case IR_SQRT: return str(e, "sqrtf(%s)", a);
    case IR_RSQRT: return str(e, "1.0f / sqrtf(%s)", a);
    case IR_EXP: return str(e, "expf(%s)", a);
    case IR_LOG: return str(e, "logf(%s)", a);
    case IR_STEP: return str(e, "(%s > 0.0f ? 1.0f : 0.0f)", a);
    /* exp(-a) overflowing to inf gives 1 / inf = 0, the limit: no NaN */
    case IR_SIGMOID: return str(e, "1.0f / (1.0f + expf(-%s))", a);
    case IR_TANH: return str(e, "tanhf(%s)", a);
    case IR_SOFTPLUS: return str(e, "fmaxf(%s, 0.0f) + log1pf(expf(-fabsf(%s)))", a, a);
    case IR_ERF: return str(e, "erff(%s)", a);
    default: return n->in[0]->dtype == IR_I32 ? str(e, "(float)%s", a) : a;   /* CAST */
    }
}

/* i32 values: + - * wrap around (computed unsigned), // and % round down through the
 * prelude's cg_floordiv and cg_mod, comparisons give 0 or 1 */
static const char *binary_i32_text(Em *e, IrOp op, const char *a, const char *b)
{
    switch (op) {
    case IR_ADD: return str(e, "(int)((unsigned)%s + (unsigned)%s)", a, b);
    case IR_SUB: return str(e, "(int)((unsigned)%s - (unsigned)%s)", a, b);
    case IR_MUL: return str(e, "(int)((unsigned)%s * (unsigned)%s)", a, b);
    case IR_FLOORDIV: return str(e, "cg_floordiv(%s, %s)", a, b);
    case IR_MOD: return str(e, "cg_mod(%s, %s)", a, b);
    case IR_NE: return str(e, "(%s != %s)", a, b);
    case IR_LT: return str(e, "(%s < %s)", a, b);
    case IR_LE: return str(e, "(%s <= %s)", a, b);
    default: return str(e, "(%s == %s)", a, b);                                /* EQ */
    }
}

static const char *binary_text(Em *e, const IrNode *n, const char *a, const char *b)
{
    if (n->dtype == IR_I32) return binary_i32_text(e, n->op, a, b);
    switch (n->op) {
    case IR_ADD: return str(e, "%s + %s", a, b);
    case IR_SUB: return str(e, "%s - %s", a, b);
    case IR_MUL: return str(e, "%s * %s", a, b);
    case IR_DIV: return str(e, "%s / %s", a, b);
    case IR_NE: return str(e, "(%s != %s ? 1.0f : 0.0f)", a, b);
    case IR_LT: return str(e, "(%s < %s ? 1.0f : 0.0f)", a, b);
    case IR_LE: return str(e, "(%s <= %s ? 1.0f : 0.0f)", a, b);
    case IR_EQ: return str(e, "(%s == %s ? 1.0f : 0.0f)", a, b);
    default: return fail(e, n->id);                                          /* // % of floats */
    }
}

/* a CONST's literal in its dtype */
static const char *const_of(Em *e, const IrNode *n)
{
    return n->dtype == IR_I32 ? str(e, "(%d)", (int)n->fattr[0]) : const_text(e, n->fattr[0]);
}

/* the accumulator of reduction `id` (kind), registered for p1; its per-row result name */
static const char *acc_ref(Em *e, int id, char kind, int culprit)
{
    if (e->in_p1) return fail(e, culprit);
    int i = 0;
    while (i < e->nacc && !(e->acc[i].id == id && e->acc[i].kind == kind)) i++;
    if (i == e->nacc) {
        if (e->nacc == 32) return fail(e, culprit);
        e->acc[e->nacc++] = (Acc){id, kind};
    }
    return str(e, "r%c%d", kind, i);   /* named by position: equal kernels get equal text */
}

static int acc_index(const Em *e, int id, char kind)
{
    int i = 0;
    while (i < e->nacc && !(e->acc[i].id == id && e->acc[i].kind == kind)) i++;
    return i;
}

/* n must be a reduction of this kernel's domain and axis, read at the row's own index */
static bool own_reduction(Em *e, const IrNode *x, int axis)
{
    const CgKernel *k = e->k;
    return k->axis == axis && x->ndim == k->ndim && !memcmp(x->shape, k->dom, sizeof(int64_t) * (size_t)k->ndim);
}

/* The accumulators hold the row's own reductions: read at any other index (a slice or a
 * pad shifting a non-reduced axis, inside a reduced root computed in mid), the
 * reduction must be stored. */
static const char *reduce_val(Em *e, const IrNode *n, const Idx *x)
{
    if (cg_trivial_reduce(n)) return val(e, n->in[0], x);   /* one element: itself, at the same index */
    if (!own_reduction(e, n->in[0], (int)n->iattr[0]) || e->cur != &e->mid || !at_row(e, n, x))
        return fail(e, n->id);
    return acc_ref(e, n->id, n->op == IR_SUM ? 's' : 'x', n->id);
}

/* A row index i into a table of V rows. An input's indices are checked before the run;
 * one computed in the graph is clamped to [0, V), so a bad one cannot read out of bounds
 * (the ref backend reports it). */
static const char *row_index(Em *e, const IrNode *ids, const char *i, int64_t V)
{
    if (ids->op == IR_INPUT) return i;
    return str(e, "(%s < 0 ? 0 : %s >= %lld ? %lld : %s)", i, i, (long long)V, (long long)V - 1, i);
}

/* CROSS_ENTROPY at row t: logsumexp(a[t]) - a[t, b[t]] */
static const char *ce_val(Em *e, const IrNode *n, const Idx *x)
{
    const IrNode *a = n->in[0];
    if (!own_reduction(e, a, a->ndim - 1) || e->cur != &e->mid || !at_row(e, n, x)) return fail(e, n->id);
    const char *lse = acc_ref(e, a->id, 'l', n->id);
    const char *tgt = row_index(e, n->in[1], val(e, n->in[1], x), a->shape[a->ndim - 1]);
    Idx ai = {.nd = a->ndim};
    for (int d = 0; d < x->nd; d++) ai.c[d] = x->c[d];
    ai.c[a->ndim - 1] = tgt;
    return str(e, "(float)(%s - %s)", lse, val(e, a, &ai));
}

/* CE_BWD at (t, j): c[t] * (exp(a[t, j] - lse[t]) - [j == b[t]]) */
static const char *ce_bwd_val(Em *e, const IrNode *n, const Idx *x)
{
    const IrNode *a = n->in[0];
    int last = a->ndim - 1;
    Idx row = {.nd = last};
    for (int d = 0; d < last; d++) row.c[d] = x->c[d];
    if (!own_reduction(e, a, last) || !row_value(e, n->in[1], &row)) return fail(e, n->id);
    Block *save = e->cur;
    e->cur = &e->mid;
    const char *lse = acc_ref(e, a->id, 'l', n->id), *tgt = val(e, n->in[1], &row), *c = val(e, n->in[2], &row);
    e->cur = save;
    int i = acc_index(e, a->id, 'l');
    if (e->d == CG_C && !strcmp(x->c[last], canon(e, last))) {   /* at the row's own points: */
        if (!e->caching) e->exp_row[i] = true;                      /* exp(a − m) / l, kept by p1b */
        else if (e->exp_row[i])
            return str(e, "%s * (ce%d[i%d] * il%d - (float)(%s == (long)%s))", c, i, last, i, x->c[last], tgt);
    }
    return str(e, "%s * (%s(%s - (float)%s) - (float)(%s == (long)%s))", c, e->d == CG_C ? "cg_expf" : "expf",
               val(e, a, x), lse, x->c[last], tgt);
}

/* ---- segments --------------------------------------------------------------------------
 * A concat or pad along a C elementwise kernel's inner axis reads its operands through
 * clamped indices and selects (`i < 32 ? a : b`), which vectorize as gathers and compute
 * both sides at every point. The kernel is emitted once to find where on that axis they
 * change sides, then once per segment between those cuts: inside a segment each concat or
 * pad is on one side, read at an affine index (contiguous vector loads). */
static bool on_seg_axis(const Em *e, const char *c) { return e->seg_var && !strcmp(c, e->seg_var); }

static void note_cut(Em *e, int64_t at)
{
    if (at <= 0 || at >= e->k->dom[e->k->ndim - 1] || e->ncut == MAX_CUTS) return;
    for (int i = 0; i < e->ncut; i++)
        if (e->cut[i] == at) return;
    e->cut[e->ncut++] = at;
}

/* the segment against [lo, hi) of the axis: 1 inside, 0 outside, -1 across (cuts noted) */
static int seg_side(Em *e, int64_t lo, int64_t hi)
{
    if (e->seg_lo >= lo && e->seg_hi <= hi) return 1;
    if (e->seg_hi <= lo || e->seg_lo >= hi) return 0;
    note_cut(e, lo);
    note_cut(e, hi);
    return -1;
}

/* CONCAT or PAD at x whose axis a is the segmented loop's and the segment on one side:
 * that side's value; NULL where the general form is needed */
static const char *seg_concat(Em *e, const IrNode *n, const Idx *x, int a)
{
    long long la = n->in[0]->shape[a];
    int side = seg_side(e, 0, la);
    if (side < 0) return NULL;
    Idx r = with(e, x, a, side ? x->c[a] : str(e, "(%s - %lld)", x->c[a], la));
    return val(e, n->in[side ? 0 : 1], &r);
}

static const char *seg_pad(Em *e, const IrNode *n, const Idx *x, int a)
{
    long long s = n->iattr[1];
    int side = seg_side(e, s, s + n->in[0]->shape[a]);
    if (side < 0) return NULL;
    if (!side) return n->dtype == IR_I32 ? "0" : "0.0f";
    Idx r = with(e, x, a, s ? str(e, "(%s - %lld)", x->c[a], s) : x->c[a]);
    return val(e, n->in[0], &r);
}

static const char *compute(Em *e, const IrNode *n, const Idx *x)
{
    switch (ir_op_class(n->op)) {
    case IRC_UNARY: return unary_text(e, n, val(e, n->in[0], x));
    case IRC_BINARY: return binary_text(e, n, val(e, n->in[0], x), val(e, n->in[1], x));
    case IRC_REDUCE: return reduce_val(e, n, x);
    case IRC_GATHER: {
        if (n->op != IR_GATHER) return fail(e, n->id);
        const IrNode *t = n->in[0], *ids = n->in[1];
        Idx ii = {.nd = ids->ndim}, ti = {.nd = t->ndim};
        for (int d = 0; d < ids->ndim; d++) ii.c[d] = x->c[d];
        ti.c[0] = row_index(e, ids, val(e, ids, &ii), t->shape[0]);
        for (int d = 1; d < t->ndim; d++) ti.c[d] = x->c[ids->ndim + d - 1];
        return val(e, t, &ti);
    }
    case IRC_LEAF:
        if (n->op == IR_CONST) return const_of(e, n);
        return fail(e, n->id);
    case IRC_FUSED:
        if (n->op == IR_CROSS_ENTROPY) return ce_val(e, n, x);
        if (n->op == IR_CE_BWD) return ce_bwd_val(e, n, x);
        return fail(e, n->id);
    default: break;
    }
    const IrNode *in = n->in[0];
    switch (n->op) {
    case IR_RESHAPE: { Idx r = map_reshape(e, x, n, in); return val(e, in, &r); }
    case IR_BROADCAST: { Idx r = map_broadcast(e, x, n, in); return val(e, in, &r); }
    case IR_PERMUTE: {
        Idx r = {.nd = in->ndim};
        for (int d = 0; d < n->ndim; d++) r.c[n->iattr[d]] = x->c[d];
        return val(e, in, &r);
    }
    case IR_SLICE: {
        int a = (int)n->iattr[0];
        Idx r = with(e, x, a, str(e, "(%s + %lld)", x->c[a], (long long)n->iattr[1]));
        return val(e, in, &r);
    }
    case IR_PAD: {   /* inside [s, s+len): x at c - s; the index is clamped so the load is safe */
        int a = (int)n->iattr[0];
        long long s = n->iattr[1], len = in->shape[a];
        const char *c = x->c[a], *v;
        if (on_seg_axis(e, c) && (v = seg_pad(e, n, x, a))) return v;
        Idx r = with(e, x, a, itmp(e, str(e, "%s < %lld ? 0 : %s >= %lld ? %lld : %s - %lld", c, s, c, s + len,
                                          len - 1, c, s)));
        v = val(e, in, &r);
        return str(e, "(%s >= %lld && %s < %lld ? %s : %s)", c, s, c, s + len, v, n->dtype == IR_I32 ? "0" : "0.0f");
    }
    case IR_CONCAT: {
        int a = (int)n->iattr[0];
        long long la = in->shape[a], lb = n->in[1]->shape[a];
        const char *c = x->c[a], *v;
        if (on_seg_axis(e, c) && (v = seg_concat(e, n, x, a))) return v;
        Idx ra = with(e, x, a, itmp(e, str(e, "%s < %lld ? %s : %lld", c, la, c, la - 1)));
        Idx rb = with(e, x, a, itmp(e, str(e, "%s < %lld ? 0 : %s - %lld < %lld ? %s - %lld : %lld", c, la, c, la,
                                           lb, c, la, lb - 1)));
        const char *va = val(e, in, &ra), *vb = val(e, n->in[1], &rb);
        return str(e, "(%s < %lld ? %s : %s)", c, la, va, vb);
    }
    default: return fail(e, n->id);
    }
}

/* n's value at x, as the name of a temporary (or a literal) */
static const char *val(Em *e, const IrNode *n, const Idx *x)
{
    if (e->failed) return "0";
    CgRole role = e->s->role[n->id];
    if (role == CG_CONST) return const_of(e, n);
    bool own_root = is_root_of(e->k, n->id);
    if (role == CG_VIEW) {     /* a view of a root of this kernel is not stored yet: split */
        const IrNode *base = n;
        while (e->s->role[base->id] == CG_VIEW) base = base->in[0];
        if (is_root_of(e->k, base->id)) return fail(e, base->id);
    }
    if (role != CG_INLINE && !own_root) return load(e, n, x);
    Block *save = e->cur;
    if (row_value(e, n, x)) e->cur = &e->mid;
    const char *key = idx_key(e, x), *v = memo_get(e->cur, n->id, key);
    if (!v) {
        int c = cached(e, n->id, key);
        bool later_pass = e->cur == &e->p1b || e->cur == &e->p2;
        const char *expr = c >= 0 && later_pass ? str(e, "c%d[i%d]", c, e->k->axis) : compute(e, n, x);
        v = str(e, "v%d", e->ntmp++);
        bput(&e->cur->text, "        const %s %s = %s;\n", n->dtype == IR_I32 ? "int" : "float", v, expr);
        if (c >= 0 && e->cur == &e->p1) bput(&e->cur->text, "        c%d[i%d] = %s;\n", c, e->k->axis, v);
        memo_put(e->cur, n->id, key, v);
    }
    e->cur = save;
    return v;
}

/* ---- kernels ---------------------------------------------------------------------------- */

/* n's coordinates at linear index v (a root of reduced shape that is not the domain's) */
static void delinearize_idx(Em *e, Idx *x, const IrNode *n, const char *v)
{
    int64_t stride = 1;
    for (int d = n->ndim - 1; d >= 0; d--) {
        x->c[d] = n->shape[d] == 1 ? "0" : str(e, "%s / %lld %% %lld", v, (long long)stride, (long long)n->shape[d]);
        stride *= n->shape[d];
    }
}

static Idx canon_idx(Em *e, const IrNode *n)
{
    Idx x = {.nd = n->ndim};
    const CgKernel *k = e->k;
    if (k->axis >= 0 && !(n->ndim == k->ndim && n->shape[k->axis] == k->dom[k->axis])) {
        bool rows_shape = n->ndim == k->ndim || n->ndim == k->ndim - 1;
        for (int d = 0, j = 0; d < k->ndim && rows_shape; d++) {   /* a reduced root: the row's index */
            if (n->ndim == k->ndim) x.c[d] = d == k->axis ? "0" : canon(e, d);
            else if (d != k->axis) x.c[j++] = canon(e, d);
            if (d != k->axis && n->shape[n->ndim == k->ndim ? d : j - 1] != k->dom[d]) rows_shape = false;
        }
        if (!rows_shape) delinearize_idx(e, &x, n, "row");   /* rows laid out in another shape */
        x.lin = "row";
        return x;
    }
    for (int d = 0; d < n->ndim; d++) x.c[d] = canon(e, d);
    x.lin = k->axis < 0 ? "lin" : NULL;
    return x;
}

static void store_root(Em *e, const IrNode *n)
{
    Idx x = canon_idx(e, n);
    bool reduced = x.lin && !strcmp(x.lin, "row");
    e->cur = reduced ? &e->mid : &e->p2;
    const char *v = val(e, n, &x);
    int a = arg_of(e, n->id);
    const char *lin = linearize(e, &x, n);
    const char *guard = reduced && e->chunks > 1 ? "if (cg_first) " : reduced && e->block_rows ? "if (threadIdx.x == 0) " : "";
    bool bf16 = e->d == CG_CUDA && cg_store_dtype(e->s, n->id) == IR_BF16;
    Buf *t = e->in_place ? &e->stores : &e->cur->text;   /* in place: after every root's loads */
    if (e->vec8 && bf16 && !strcmp(lin, "lin") && a < VEC_ARGS) {
        e->vout[a] = 1;                /* written as one 16-byte store after the loop */
        bput(t, "        w%d[u] = __float2bfloat16(%s);\n", a, v);
    } else if (bf16)
        bput(t, "        %sb%d[%s] = __float2bfloat16(%s);\n", guard, a, lin, v);
    else bput(t, "        %sb%d[%s] = %s;\n", guard, a, lin, v);
}

/* accumulator i's input at the full index, emitted into the current block */
static const char *acc_input(Em *e, int i)
{
    const Acc *a = &e->acc[i];
    const IrNode *n = e->s->g->nodes[a->id];
    const IrNode *in = a->kind == 'l' ? n : n->in[0];
    Idx x = {.nd = in->ndim};
    for (int d = 0; d < in->ndim; d++) x.c[d] = canon(e, d);
    return val(e, in, &x);
}

/* p1: every accumulator's update. C takes a logsumexp in two vectorizable passes over
 * the row (the max in p1, the sum of exponentials in p1b; the row is in cache); CUDA's
 * threads keep an online (max, sum) pair each, combined afterwards. */
static void emit_p1(Em *e)
{
    e->in_p1 = true;
    bool cuda = e->d == CG_CUDA;
    for (int i = 0; i < e->nacc && !e->failed; i++) {
        char kind = e->acc[i].kind;
        e->cur = &e->p1;
        const char *v = acc_input(e, i);
        Buf *t = &e->p1.text;
        const char *w = e->lanes ? "[w]" : "";
        if (kind == 's') bput(t, "        s%d%s += %s;\n", i, w, v);
        else if (kind == 'x') bput(t, "        if (%s > x%d%s || %s != %s) x%d%s = %s;\n", v, i, w, v, v, i, w, v);
        else if (cuda)
            bput(t, "        if (%s > m%d) { l%d = l%d * expf(m%d - %s) + 1; m%d = %s; } else l%d += expf(%s - m%d);\n",
                 v, i, i, i, i, v, i, v, i, v, i);
        else {
            bput(t, "        m%d = %s > m%d ? %s : m%d;\n", i, v, i, v, i);
            e->cur = &e->p1b;
            v = acc_input(e, i);
            if (e->caching && e->exp_row[i])
                bput(&e->p1b.text, "        const float ex%d = cg_expf(%s - m%d);\n        ce%d[i%d] = ex%d;\n        l%d += ex%d;\n",
                     i, v, i, i, e->k->axis, i, i, i);
            else bput(&e->p1b.text, "        l%d += cg_expf(%s - m%d);\n", i, v, i);
        }
    }
    e->in_p1 = false;
}

static const char *ctype(const CgStep *s, CgDialect d, int id)
{
    IrDtype t = cg_store_dtype(s, id);
    if (t == IR_I32) return "int";
    return d == CG_CUDA && t == IR_BF16 ? "__nv_bfloat16" : "float";
}

static void emit_params(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    for (int i = 0; i < k->nargs; i++) {
        const char *w = written_arg(e->s, k, k->args[i]) ? "" : "const ";
        if (e->d == CG_CUDA) bput(o, "%s%s%s *__restrict__ b%d", i ? ", " : "", w, ctype(e->s, e->d, k->args[i]), i);
        else bput(o, "    %s%s *restrict b%d = (%s%s *)a[%d];\n", w, ctype(e->s, e->d, k->args[i]), i, w,
                  ctype(e->s, e->d, k->args[i]), i);
    }
}

/* "const long i0 = v / s % d; …" for the axes in mask, v running over their product */
static void delinearize(Buf *o, const CgKernel *k, const char *v, int skip_axis, int skip_last)
{
    int64_t stride = 1;
    for (int d = k->ndim - 1; d >= 0; d--) {
        if (d == skip_axis || (skip_last && d == k->ndim - 1)) continue;
        bput(o, "        CG_UNUSED const long i%d = %s / %lld %% %lld;\n", d, v, (long long)stride, (long long)k->dom[d]);
        stride *= k->dom[d];
    }
}

static void acc_decls(Em *e, Buf *o)
{
    const char *t = e->d == CG_CUDA ? "float" : "double";
    for (int i = 0; i < e->nacc; i++) {
        int id = i;
        if (e->acc[i].kind == 's') bput(o, "        %s s%d = 0;\n", t, id);
        else if (e->acc[i].kind == 'x') bput(o, "        %s x%d = -INFINITY;\n", t, id);
        else bput(o, "        float m%d = -INFINITY;\n        %s l%d = 0;\n", id, t, id);
    }
}

/* block: the accumulators combined over the block's threads; results: the per-row
 * results rs, rx, rl that mid reads */
static void acc_finals(Em *e, Buf *o, bool block, bool results)
{
    const char *t = e->d == CG_CUDA ? "float" : "double";
    for (int i = 0; i < e->nacc; i++) {
        int id = i;
        char kd = e->acc[i].kind;
        if (block) {
            if (kd == 's') bput(o, "        s%d = cg_block_sum(s%d);\n", id, id);
            else if (kd == 'x') bput(o, "        x%d = cg_block_max(x%d);\n", id, id);
            else bput(o, "        cg_block_lse(&m%d, &l%d);\n", id, id);
        }
        if (!results) continue;
        if (kd == 's') bput(o, "        const float rs%d = (float)s%d;\n", id, id);
        else if (kd == 'x') bput(o, "        const float rx%d = (float)x%d;\n", id, id);
        else bput(o, "        const %s rl%d = m%d + log%s(l%d);\n", t, id, id, e->d == CG_CUDA ? "f" : "", id);
        if (kd == 'l' && e->caching && e->exp_row[i]) bput(o, "        const float il%d = (float)(1.0 / l%d);\n", id, id);
    }
}

/* "#pragma omp simd reduction(+:s0,…) reduction(max:m1,…)" over the accumulators of the
 * loop, unless a MAX (NaN-propagating, not a simd reduction) is among them. For the
 * first loop sum = 's', max = 'm' (logsumexp maxima); for the exponential pass sum = 'l'. */
static void simd_reduction(const Em *e, Buf *o, char sum, char max)
{
    int ns = 0, nm = 0;
    for (int i = 0; i < e->nacc; i++) {
        if (e->acc[i].kind == 'x') return;
        if (e->acc[i].kind == (sum == 'l' ? 'l' : 's')) ns++;
        else if (max && e->acc[i].kind == 'l') nm++;
    }
    if (!ns && !nm) return;
    bput(o, "#pragma omp simd");
    for (int pass = 0; pass < 2; pass++) {
        if (!(pass ? nm : ns)) continue;
        bput(o, " reduction(%s:", pass ? "max" : "+");
        for (int i = 0, k = 0; i < e->nacc; i++) {
            char kd = e->acc[i].kind;
            bool mine = pass ? kd == 'l' : kd == (sum == 'l' ? 'l' : 's');
            if (mine) bput(o, "%s%c%d", k++ ? "," : "", pass ? 'm' : sum, i);
        }
        bput(o, ")");
    }
    bput(o, "\n");
}

/* C reductions: each thread's row buffers (row_cache), declared or freed by fmt */
static void row_buffers(const Em *e, Buf *o, const char *fmt)
{
    if (!e->caching) return;
    long long R = e->k->dom[e->k->axis];
    for (int i = 0; i < e->ncache; i++) {
        bput(o, "    ");
        bput(o, fmt, "c", i, R);
        bput(o, "\n");
    }
    for (int i = 0; i < e->nacc; i++)
        if (e->exp_row[i]) {
            bput(o, "    ");
            bput(o, fmt, "ce", i, R);
            bput(o, "\n");
        }
}

/* "#pragma omp parallel {params; #pragma omp for: for (row …) {" — the buffer pointers
 * are declared inside the parallel region, so the outlined function keeps them restrict
 * locals (captured pointers are reloaded after every store and block vectorization). */
static void parallel_rows(Em *e, Buf *o, int64_t work, int64_t rows, const char *var)
{
    bput(o, "#pragma omp parallel if (%lld > CG_PAR_MIN)\n    {\n", (long long)work);
    emit_params(e, o);
    row_buffers(e, o, "float *%s%d = malloc(sizeof(float) * %lld);");
    bput(o, "#pragma omp for schedule(static)\n    for (long %s = 0; %s < %lld; %s++) {\n", var, var, (long long)rows, var);
}

static void c_reduce_body(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    int a = k->axis;
    long long R = k->dom[a];
    parallel_rows(e, o, rows_of(k) * R, rows_of(k), "row");
    delinearize(o, k, "row", a, 0);
    acc_decls(e, o);
    simd_reduction(e, o, 's', 'm');
    if (e->nacc) bput(o, "    for (long i%d = 0; i%d < %lld; i%d++) {\n%s    }\n", a, a, R, a, e->p1.text.p ? e->p1.text.p : "");
    if (e->p1b.text.n) {
        simd_reduction(e, o, 'l', 0);
        bput(o, "    for (long i%d = 0; i%d < %lld; i%d++) {\n%s    }\n", a, a, R, a, e->p1b.text.p);
    }
    acc_finals(e, o, false, true);
    bput(o, "%s", e->mid.text.p ? e->mid.text.p : "");
    if (e->p2.text.n) bput(o, "#pragma omp simd\n    for (long i%d = 0; i%d < %lld; i%d++) {\n%s    }\n", a, a, R, a, e->p2.text.p);
    bput(o, "    }\n");
    row_buffers(e, o, "free(%s%d);");
    bput(o, "    }\n");
}

/* Rows a C reduction does together when its axis is not the innermost: consecutive rows
 * differ in the innermost index, so a row-at-a-time loop strides through memory by whole
 * rows of the axis and touches a cache line per point. Lanes of W rows walk the axis once,
 * reading W adjacent values per step. Sums and maxima only (logsumexp's two passes and a
 * p2 after the reduction stay row at a time), over a whole number of lane groups. */
static int lane_dim(const CgKernel *k)
{
    int d = k->ndim - 1;
    while (d > k->axis && k->dom[d] == 1) d--;
    return d;
}

static int reduce_lanes(const Em *e)
{
    const CgKernel *k = e->k;
    if (e->d != CG_C || k->axis < 0 || inner_axis(k) || e->p2.text.n) return 0;
    for (int i = 0; i < e->nacc; i++)
        if (e->acc[i].kind == 'l') return 0;
    for (int w = 16; w >= 4; w /= 2)   /* a group shares every index but the lane dimension's */
        if (k->dom[lane_dim(k)] % w == 0) return w;
    return 0;
}

/* The group's row indices before the loop over the axis: all but the lane dimension's are
 * the group's own, that one is its first plus w (so the loads are affine in w). */
static void lane_indices(Buf *o, const CgKernel *k, int W)
{
    int64_t stride = 1;
    int ld = lane_dim(k);
    for (int d = k->ndim - 1; d >= 0; d--) {
        if (d == k->axis) continue;
        bput(o, "        CG_UNUSED const long i%d%s = grp * %d / %lld %% %lld;\n", d, d == ld ? "_0" : "", W,
             (long long)stride, (long long)k->dom[d]);
        stride *= k->dom[d];
    }
}

/* the lanes' accumulators, then per row of the group: its results and mid */
static void c_reduce_lanes_body(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    int a = k->axis, W = e->lanes, ld = lane_dim(k);
    long long R = k->dom[a];
    parallel_rows(e, o, rows_of(k) * R, rows_of(k) / W, "grp");
    for (int i = 0; i < e->nacc; i++) {
        char kd = e->acc[i].kind;
        bput(o, "        double %c%d[%d];\n        for (int w = 0; w < %d; w++) %c%d[w] = %s;\n", kd, i, W, W, kd, i,
             kd == 's' ? "0" : "-INFINITY");
    }
    lane_indices(o, k, W);
    bput(o, "    for (long i%d = 0; i%d < %lld; i%d++) {\n#pragma omp simd\n    for (long w = 0; w < %d; w++) {\n", a, a, R,
         a, W);
    bput(o, "        const long row = grp * %d + w;\n        CG_UNUSED const long i%d = i%d_0 + w;\n", W, ld, ld);
    bput(o, "%s    }\n    }\n", e->p1.text.p ? e->p1.text.p : "");
    bput(o, "    for (long w = 0; w < %d; w++) {\n        const long row = grp * %d + w;\n", W, W);
    delinearize(o, k, "row", a, 0);
    for (int i = 0; i < e->nacc; i++)
        bput(o, "        const float r%c%d = (float)%c%d[w];\n", e->acc[i].kind, i, e->acc[i].kind, i);
    bput(o, "%s    }\n    }\n    }\n", e->mid.text.p ? e->mid.text.p : "");
}

static void c_ew_body(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    if (k->ndim == 0) {
        emit_params(e, o);
        bput(o, "    {\n        CG_UNUSED const long lin = 0;\n%s    }\n", e->p2.text.p);
        return;
    }
    int last = k->ndim - 1;
    long long L = k->dom[last], rows = 1;
    for (int d = 0; d < last; d++) rows *= k->dom[d];
    parallel_rows(e, o, rows * L, rows, "row");
    delinearize(o, k, "row", -1, 1);
    if (e->tile) {
        long long T = e->tile;
        bput(o, "    for (long i%dh = 0; i%dh < %lld; i%dh++) {\n", last, last, L / T, last);
        bput(o, "#pragma omp simd\n    for (long i%dl = 0; i%dl < %lld; i%dl++) {\n", last, last, T, last);
        bput(o, "        CG_UNUSED const long i%d = i%dh * %lld + i%dl;\n", last, last, T, last);
        bput(o, "        CG_UNUSED const long lin = row * %lld + i%d;\n%s    }\n    }\n    }\n    }\n", L, last, e->p2.text.p);
        return;
    }
    for (int i = 0; i <= e->ncut; i++) {   /* one loop, or one a segment */
        long long lo = i ? e->cut[i - 1] : 0, hi = i < e->ncut ? e->cut[i] : L;
        bput(o, "#pragma omp simd\n    for (long i%d = %lld; i%d < %lld; i%d++) {\n", last, lo, last, hi, last);
        bput(o, "        CG_UNUSED const long lin = row * %lld + i%d;\n%s    }\n", L, last,
             e->ncut ? e->seg_text[i].p : e->p2.text.p);
    }
    bput(o, "    }\n    }\n");
}

/* CUDA: elementwise one thread per point; reductions one block per row when the axis is
 * the innermost non-trivial one (coalesced; 32 to 256 threads, the row's length rounded up
 * to a power of two), else one thread per row */
static int64_t points(const CgKernel *k)
{
    int64_t n = 1;
    for (int d = 0; d < k->ndim; d++) n *= k->dom[d];
    return n;
}

/* elementwise kernels of a multiple of 8 points: 8 consecutive points per thread, so bf16
 * tensors read and written at the point's own index move as one 16-byte access each */
static bool vec8_kernel(const CgKernel *k) { return k->axis < 0 && k->ndim > 0 && points(k) % 8 == 0; }

static void cuda_vec8_body(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    bput(o, "    const long lin0 = ((long)blockIdx.x * blockDim.x + threadIdx.x) * 8;\n    if (lin0 >= %lld) return;\n",
         (long long)points(k));
    for (int a = 0; a < k->nargs && a < VEC_ARGS; a++) {
        if (e->vin[a])
            bput(o, "    const uint4 q%d = *(const uint4 *)(b%d + lin0);\n"
                    "    const __nv_bfloat16 *r%d = (const __nv_bfloat16 *)&q%d;\n", a, a, a, a);
        if (e->vout[a]) bput(o, "    __align__(16) __nv_bfloat16 w%d[8];\n", a);
    }
    bput(o, "#pragma unroll\n    for (int u = 0; u < 8; u++) {\n        CG_UNUSED const long lin = lin0 + u;\n");
    delinearize(o, k, "lin", -1, 0);
    bput(o, "%s    }\n", e->p2.text.p ? e->p2.text.p : "");
    for (int a = 0; a < k->nargs && a < VEC_ARGS; a++)
        if (e->vout[a]) bput(o, "    *(uint4 *)(b%d + lin0) = *(const uint4 *)w%d;\n", a, a);
}

/* ---- reductions split across blocks ------------------------------------------------------
 * A reduction kernel launches a thread per row (or a block per row when the axis is
 * innermost); with few long rows most of the GPU idles while each thread walks its row. Such
 * a kernel has its axis cut into C chunks of L points: the first launch runs p1 on every
 * (row, chunk) and stores the chunk's accumulators in the arena (partials[slot][chunk][row],
 * rows fastest: adjacent threads, adjacent addresses); the second combines a row's C
 * partials in chunk order — the same result whichever thread does it, and independent of
 * the order blocks run — then runs mid, and p2 over its own chunk. Two launches rather than
 * one whose last block combines: p2 needs every chunk's partials before any of its chunks
 * starts, a barrier across the grid that only a launch boundary gives, and two launches need
 * no counter to reset between replays of a captured graph. */
enum {
    CG_SMS = 132,                 /* streaming multiprocessors of the GPUs we target (H100) */
    SPLIT_MIN_POINTS = 1 << 16,   /* smaller domains: a second launch costs more than it saves */
    SPLIT_BLOCKS = 4 * CG_SMS,    /* chunks are added until the first launch has this many blocks */
    SPLIT_MAX_CHUNKS = 256,       /* at most: the combination reads every chunk's partial */
    SPLIT_ROWS = 8,               /* the combination without p2: rows a block (8 floats, a 32-byte sector) */
    SPLIT_GROUPS = 32,            /* … and the threads sharing a row's chunks (256 threads a block) */
    SPLIT_SHARED_SLOTS = 16,      /* … while the groups' accumulators take at most 16 KB of shared memory */
};

static int64_t split_blocks(const CgKernel *k, int64_t chunks)
{
    return inner_axis(k) ? rows_of(k) * chunks : (rows_of(k) * chunks + 255) / 256;
}

/* C, the chunks k's axis is split into on CUDA (1: one launch). Chunks stay at least a
 * block's worth of points long (inner axis; 32 points a thread otherwise). */
static int split_chunks(const CgKernel *k)
{
    if (k->axis < 0 || points(k) < SPLIT_MIN_POINTS || split_blocks(k, 1) >= CG_SMS) return 1;
    int64_t R = k->dom[k->axis], min_len = inner_axis(k) ? 256 : 32, c = 1;
    while (split_blocks(k, c) < SPLIT_BLOCKS && 2 * c <= SPLIT_MAX_CHUNKS && R / (2 * c) >= min_len) c *= 2;
    int64_t len = (R + c - 1) / c;
    return (int)((R + len - 1) / len);   /* no chunk left empty */
}

/* partial slots of a split kernel (its part_bytes: slots × chunks × rows floats) */
static int64_t split_slots(const CgKernel *k) { return k->part_bytes / ((int64_t)k->chunks * rows_of(k) * 4); }

/* Does the second launch combine by groups of threads (split_stage2_grouped)? */
static bool split_grouped(const CgKernel *k)
{
    int64_t slots = split_slots(k);
    return !k->split_p2 && slots >= 1 && slots <= SPLIT_SHARED_SLOTS;
}

static int64_t chunk_len(const CgKernel *k) { return (k->dom[k->axis] + k->chunks - 1) / k->chunks; }

/* partial slots: one per accumulator, two (max, sum) per logsumexp */
static int part_slots(const Em *e)
{
    int n = 0;
    for (int i = 0; i < e->nacc; i++) n += e->acc[i].kind == 'l' ? 2 : 1;
    return n;
}

/* "cg_part[(slot * C + chunk) * rows + row]" */
static void part_at(Buf *o, const CgKernel *k, int slot, const char *chunk)
{
    bput(o, "cg_part[(%lldL * %d + %s) * %lld + row]", (long long)slot, k->chunks, chunk, (long long)rows_of(k));
}

/* row, cg_c (the chunk) and [cg_lo, cg_hi) (its points) of this thread or block; per_row:
 * the no-p2 combination, a thread per row */
static void split_index(Em *e, Buf *o, bool per_row)
{
    const CgKernel *k = e->k;
    long long rows = rows_of(k), C = k->chunks, L = chunk_len(k), R = k->dom[k->axis];
    if (per_row)
        bput(o, "    const long row = (long)blockIdx.x * blockDim.x + threadIdx.x;\n    if (row >= %lld) return;\n", rows);
    else if (e->block_rows) bput(o, "    const long row = blockIdx.x %% %lld, cg_c = blockIdx.x / %lld;\n", rows, rows);
    else bput(o, "    const long cg_g = (long)blockIdx.x * blockDim.x + threadIdx.x;\n    if (cg_g >= %lld) return;\n"
                 "    const long row = cg_g %% %lld, cg_c = cg_g / %lld;\n", rows * C, rows, rows);
    if (!per_row) bput(o, "    const long cg_lo = cg_c * %lld, cg_hi = cg_lo + %lld < %lld ? cg_lo + %lld : %lld;\n", L, L, R, L, R);
}

/* launch 1: p1 over the chunk, the block's combination, the partials stored */
static void split_stage1(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    int a = k->axis;
    const char *from = e->block_rows ? " + threadIdx.x" : "", *step = e->block_rows ? "blockDim.x" : "1";
    split_index(e, o, false);
    bput(o, "    {\n");
    delinearize(o, k, "row", a, 0);
    acc_decls(e, o);
    if (e->nacc) bput(o, "    for (long i%d = cg_lo%s; i%d < cg_hi; i%d += %s) {\n%s    }\n", a, from, a, a, step, e->p1.text.p);
    acc_finals(e, o, e->block_rows, false);
    if (e->block_rows) bput(o, "        if (threadIdx.x == 0) {\n");
    for (int i = 0, slot = 0; i < e->nacc; i++) {
        char kd = e->acc[i].kind;
        bput(o, "        ");
        part_at(o, k, slot++, "cg_c");
        bput(o, " = %c%d;\n", kd == 'l' ? 'm' : kd, i);
        if (kd != 'l') continue;
        bput(o, "        ");
        part_at(o, k, slot++, "cg_c");
        bput(o, " = l%d;\n", i);
    }
    if (e->block_rows) bput(o, "        }\n");
    bput(o, "    }\n");
}

/* where partial `slot` of chunk (or group) `at` is read: in the arena, or in the block's
 * shared memory */
typedef void PartAt(Buf *o, const CgKernel *k, int slot, const char *at);

static void shared_at(Buf *o, const CgKernel *k, int slot, const char *at)
{
    (void)k;
    bput(o, "cg_sh[%d][%s]", slot, at);
}

/* the accumulators merged with the partials at `at`, as p1 merges points */
static void merge_partials(Em *e, Buf *o, PartAt *where, const char *at)
{
    for (int i = 0, slot = 0; i < e->nacc; i++) {
        char kd = e->acc[i].kind;
        bput(o, "        {\n            const float cg_p = ");
        where(o, e->k, slot++, at);
        bput(o, ";\n");
        if (kd == 's') bput(o, "            s%d += cg_p;\n", i);
        else if (kd == 'x') bput(o, "            if (cg_p > x%d || cg_p != cg_p) x%d = cg_p;\n", i, i);
        else {
            bput(o, "            const float cg_q = ");
            where(o, e->k, slot++, at);
            bput(o, ";\n            if (cg_p > m%d) { l%d = l%d * expf(m%d - cg_p) + cg_q; m%d = cg_p; }\n"
                    "            else if (cg_p != -INFINITY) l%d += cg_q * expf(cg_p - m%d);\n", i, i, i, i, i, i, i);
        }
        bput(o, "        }\n");
    }
}

/* launch 2 with p2: every (row, chunk) combines the row's partials in chunk order, then
 * runs mid (reduced roots stored once, by cg_first) and p2 over its chunk */
static void split_stage2(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    int a = k->axis;
    split_index(e, o, false);
    bput(o, "    {\n");
    delinearize(o, k, "row", a, 0);
    acc_decls(e, o);
    if (e->nacc) bput(o, "#pragma unroll 8\n    for (int cg_k = 0; cg_k < %d; cg_k++) {\n", k->chunks);
    merge_partials(e, o, part_at, "cg_k");
    if (e->nacc) bput(o, "    }\n");
    acc_finals(e, o, false, true);
    bput(o, "        CG_UNUSED const bool cg_first = %s;\n", e->block_rows ? "cg_c == 0 && threadIdx.x == 0" : "cg_c == 0");
    bput(o, "%s", e->mid.text.p ? e->mid.text.p : "");
    bput(o, "    for (long i%d = cg_lo%s; i%d < cg_hi; i%d += %s) {\n%s    }\n", a,
         e->block_rows ? " + threadIdx.x" : "", a, a, e->block_rows ? "blockDim.x" : "1", e->p2.text.p);
    bput(o, "    }\n");
}

/* launch 2 without p2: a block of SPLIT_GROUPS × SPLIT_ROWS threads combines SPLIT_ROWS
 * rows, thread (group g, row r) merging chunks g, g + SPLIT_GROUPS, … in order; the groups'
 * accumulators meet in shared memory, where the first group merges them in group order
 * and runs mid. Each row's partials are read by many threads at once (a thread a row read
 * C partials in turn on a few blocks), adjacent threads reading adjacent rows; the order of
 * the additions is fixed, so the result is the same on every run. */
static void split_stage2_grouped(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    long long rows = rows_of(k);
    bput(o, "    const long row = (long)blockIdx.x * %d + threadIdx.x %% %d;\n"
            "    const int cg_g = threadIdx.x / %d;\n"
            "    __shared__ float cg_sh[%d][%d];\n    {\n", SPLIT_ROWS, SPLIT_ROWS, SPLIT_ROWS, part_slots(e),
         SPLIT_GROUPS * SPLIT_ROWS);
    acc_decls(e, o);
    bput(o, "    if (row < %lld)\n    for (int cg_k = cg_g; cg_k < %d; cg_k += %d) {\n", rows, k->chunks, SPLIT_GROUPS);
    merge_partials(e, o, part_at, "cg_k");
    bput(o, "    }\n");
    for (int i = 0, slot = 0; i < e->nacc; i++) {
        char kd = e->acc[i].kind;
        bput(o, "        cg_sh[%d][threadIdx.x] = %c%d;\n", slot++, kd == 'l' ? 'm' : kd, i);
        if (kd == 'l') bput(o, "        cg_sh[%d][threadIdx.x] = l%d;\n", slot++, i);
    }
    bput(o, "    }\n    __syncthreads();\n    if (cg_g != 0 || row >= %lld) return;\n    {\n", rows);
    delinearize(o, k, "row", k->axis, 0);
    acc_decls(e, o);
    bput(o, "    for (int cg_j = 0; cg_j < %d; cg_j++) {\n        const int cg_t = cg_j * %d + threadIdx.x;\n",
         SPLIT_GROUPS, SPLIT_ROWS);
    merge_partials(e, o, shared_at, "cg_t");
    bput(o, "    }\n");
    acc_finals(e, o, false, true);
    bput(o, "        CG_UNUSED const bool cg_first = true;\n%s    }\n", e->mid.text.p ? e->mid.text.p : "");
}

/* launch 2 without p2 when the groups' accumulators do not fit the shared memory: a thread
 * a row, merging the row's partials in chunk order */
static void split_stage2_per_row(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    split_index(e, o, true);
    bput(o, "    {\n");
    delinearize(o, k, "row", k->axis, 0);
    acc_decls(e, o);
    if (e->nacc) bput(o, "#pragma unroll 8\n    for (int cg_k = 0; cg_k < %d; cg_k++) {\n", k->chunks);
    merge_partials(e, o, part_at, "cg_k");
    if (e->nacc) bput(o, "    }\n");
    acc_finals(e, o, false, true);
    bput(o, "        CG_UNUSED const bool cg_first = true;\n%s    }\n", e->mid.text.p ? e->mid.text.p : "");
}

static void cuda_split_body(Em *e, Buf *o)
{
    bput(o, "    if (cg_stage == 0) {\n");
    split_stage1(e, o);
    bput(o, "    return;\n    }\n");
    if (e->p2.text.n > 0) split_stage2(e, o);
    else if (split_grouped(e->k)) split_stage2_grouped(e, o);
    else split_stage2_per_row(e, o);
}

static void cuda_body(Em *e, Buf *o)
{
    const CgKernel *k = e->k;
    if (e->vec8) {
        cuda_vec8_body(e, o);
        return;
    }
    if (k->axis < 0) {
        int64_t N = 1;
        for (int d = 0; d < k->ndim; d++) N *= k->dom[d];
        bput(o, "    const long lin = (long)blockIdx.x * blockDim.x + threadIdx.x;\n    if (lin >= %lld) return;\n",
             (long long)N);
        bput(o, "    {\n");
        delinearize(o, k, "lin", -1, 0);
        bput(o, "%s    }\n", e->p2.text.p ? e->p2.text.p : "");
        return;
    }
    if (e->chunks > 1) {
        cuda_split_body(e, o);
        return;
    }
    int a = k->axis;
    long long R = k->dom[a];
    if (e->block_rows) bput(o, "    const long row = blockIdx.x;\n    {\n");
    else bput(o, "    const long row = (long)blockIdx.x * blockDim.x + threadIdx.x;\n    if (row >= %lld) return;\n    {\n",
              (long long)rows_of(k));
    delinearize(o, k, "row", a, 0);
    acc_decls(e, o);
    const char *from = e->block_rows ? "threadIdx.x" : "0", *step = e->block_rows ? "blockDim.x" : "1";
    if (e->nacc) bput(o, "    for (long i%d = %s; i%d < %lld; i%d += %s) {\n%s    }\n", a, from, a, R, a, step, e->p1.text.p);
    acc_finals(e, o, e->block_rows, true);
    bput(o, "%s", e->mid.text.p ? e->mid.text.p : "");
    if (e->p2.text.n) bput(o, "    for (long i%d = %s; i%d < %lld; i%d += %s) {\n%s    }\n", a, from, a, R, a, step, e->p2.text.p);
    bput(o, "    }\n");
}

static void block_free(Block *b)
{
    free(b->text.p);
    free(b->memo);
}

static void kernel_bytes(Em *e)
{
    CgKernel *k = e->k;
    int64_t pts = 1;
    for (int d = 0; d < k->ndim; d++) pts *= k->dom[d];
    k->bytes_read = k->bytes_written = 0;
    for (int i = 0; i < k->nargs; i++) {
        const IrNode *n = e->s->g->nodes[k->args[i]];
        int64_t m = ir_numel(n) < pts ? ir_numel(n) : pts;
        if (written_arg(e->s, k, n->id)) k->bytes_written += ir_numel(n) * cg_elem_bytes(e->s, n->id);
        if (!is_root_of(k, n->id)) k->bytes_read += m * cg_elem_bytes(e->s, n->id);   /* a leaf written in place too */
    }
    k->flops = (double)pts * (double)(e->ntmp > 0 ? e->ntmp : 1);   /* about one op per temporary */
}

/* every root stored, into p2 (and mid) */
static void emit_roots(Em *e)
{
    for (int i = 0; i < e->k->nroots && !e->failed; i++) store_root(e, e->s->g->nodes[e->k->roots[i]]);
    if (e->stores.n) bput(&e->p2.text, "%s", e->stores.p);
    e->stores.n = 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* the blocks cur[0, n) emitted again by fn, after a change of form in e; the first
 * emission stands (false) where the second failed or took other arguments or accumulators:
 * it sees the nodes the first saw, so it cannot, but a broken kernel is worse than a slow one */
static bool emit_again(Em *e, Block *const *cur, int n, void (*fn)(Em *))
{
    Block saved[4];
    int nargs = e->k->nargs, nacc = e->nacc;
    for (int i = 0; i < n; i++) {
        saved[i] = *cur[i];
        memset(cur[i], 0, sizeof *cur[i]);
    }
    fn(e);
    bool same = !e->failed && e->k->nargs == nargs && e->nacc == nacc;
    for (int i = 0; i < n; i++) {
        block_free(same ? &saved[i] : cur[i]);
        if (!same) *cur[i] = saved[i];
    }
    if (!same) {
        e->failed = false;
        e->culprit = -1;
        e->k->nargs = nargs;
        e->nacc = nacc;
    }
    return same;
}

/* A reshape that splits the inner loop's index in two ([T, 256] read as [T, 4, 64]) divides
 * it (i / 64, i % 64): per-head values become gathers, and what depends on the head alone
 * is recomputed at every point. Where no segments are cut, the loop is emitted again as two
 * nested loops, the outer over the groups and the inner over a group's points, and the
 * split reads their indices (the row's per-head values hoisted out of the inner loop). */
static void emit_tiles(Em *e)
{
    Block *p2[] = {&e->p2};
    e->tile = e->tile_want;
    if (!emit_again(e, p2, 1, emit_roots)) e->tile = 0;
}

/* the roots again, once per segment between the cuts, each into seg_text. A segment sees
 * the nodes the whole loop saw, so the arguments stay as they are (else: no segments). */
static void emit_segments(Em *e)
{
    int nargs = e->k->nargs, ncut = 0;
    int64_t L = e->k->dom[e->k->ndim - 1];
    qsort(e->cut, (size_t)e->ncut, sizeof *e->cut, cmp_i64);
    for (int i = 0; i < e->ncut; i++)   /* no segment shorter than a vector of floats */
        if (e->cut[i] - (ncut ? e->cut[ncut - 1] : 0) >= SEG_MIN && L - e->cut[i] >= SEG_MIN) e->cut[ncut++] = e->cut[i];
    if (!ncut) {
        e->ncut = 0;
        return;
    }
    for (int i = 0; i <= ncut && !e->failed; i++) {
        Block whole = e->p2;
        memset(&e->p2, 0, sizeof e->p2);
        e->seg_lo = i ? e->cut[i - 1] : 0;
        e->seg_hi = i < ncut ? e->cut[i] : L;
        emit_roots(e);
        e->seg_text[i] = e->p2.text;
        free(e->p2.memo);
        e->p2 = whole;
    }
    e->ncut = ncut;   /* cuts a segment noted across a nested concat are not taken */
    if (e->k->nargs != nargs) {
        for (int i = 0; i <= ncut; i++) {
            free(e->seg_text[i].p);
            e->seg_text[i] = (Buf){0};
        }
        e->ncut = 0;
        e->k->nargs = nargs;
    }
}

/* ---- row cache ---------------------------------------------------------------------------
 * A C reduction walks its row in up to three passes (p1, p1b, p2), and each recomputes
 * what it needs: the cross-entropy of soft-capped logits evaluates the cap's 1/sqrt in
 * all three and an exponential in two. The kernel is emitted once to find the values p1
 * computes that a later pass computes again at the same index, of an op costlier than a
 * few multiplies, and the exponentials of a logsumexp that a CE_BWD in p2 takes again; then
 * once more, p1 storing those values in a row buffer of each thread (c<i>, L1 or L2
 * resident: a row of 50,304 floats is 201 KB) that the later passes load, and the
 * gradient taking exp(a − m) / l from p1b's exponentials (ce<i>, il<i>) for exp(a − lse). */
enum { ROW_CACHE_MAX = 1 << 20 };   /* floats a row buffer may hold */

static bool costly(const IrNode *n)
{
    switch (n->op) {
    case IR_SQRT: case IR_RSQRT: case IR_EXP: case IR_LOG: case IR_SIGMOID: case IR_TANH: case IR_SOFTPLUS:
    case IR_ERF: return true;
    case IR_DIV: return n->dtype != IR_I32;
    default: return false;
    }
}

static void find_cache(Em *e)
{
    const Block *later[2] = {&e->p1b, &e->p2};
    const char *ax = canon(e, e->k->axis);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < later[b]->nmemo && e->ncache < MAX_CACHE; i++) {
            const Memo *m = &later[b]->memo[i];
            if (!costly(e->s->g->nodes[m->node]) || !strstr(m->key, ax) || !memo_get(&e->p1, m->node, m->key)) continue;
            int c = 0;
            while (c < e->ncache && !(e->cache[c].node == m->node && !strcmp(e->cache[c].key, m->key))) c++;
            if (c == e->ncache) e->cache[e->ncache++] = (Memo){m->node, m->key, NULL};
        }
}

/* the reduction's passes again, p1 counting its accumulators anew */
static void emit_cached(Em *e)
{
    e->nacc = 0;
    emit_roots(e);
    emit_p1(e);
}

static void row_cache(Em *e)
{
    bool exps = false;
    for (int i = 0; i < e->nacc; i++) exps |= e->exp_row[i];
    find_cache(e);
    if ((!e->ncache && !exps) || e->k->dom[e->k->axis] > ROW_CACHE_MAX) {
        e->ncache = 0;
        memset(e->exp_row, 0, sizeof e->exp_row);
        return;
    }
    Block *passes[] = {&e->p1, &e->p1b, &e->mid, &e->p2};
    e->caching = true;
    if (!emit_again(e, passes, 4, emit_cached)) e->caching = false;
}

int cg_emit_loop(const CgStep *s, CgKernel *k, CgDialect d, const char *name, char **src, int *culprit)
{
    Em e = {.s = s, .k = k, .d = d, .culprit = -1};
    e.block_rows = d == CG_CUDA && k->axis >= 0 && inner_axis(k);
    e.vec8 = d == CG_CUDA && vec8_kernel(k);
    e.chunks = d == CG_CUDA ? split_chunks(k) : 1;
    free(k->args);
    k->args = NULL;
    k->nargs = 0;
    for (int i = 0; i < k->nroots; i++) arg_of(&e, k->roots[i]);
    for (int i = 0; i < k->nroots && s->alias; i++) e.in_place |= s->alias[k->roots[i]] >= 0;
    if (d == CG_C && k->axis < 0 && k->ndim > 0) {   /* segments: this emission finds the cuts */
        e.seg_var = canon(&e, k->ndim - 1);
        e.seg_hi = k->dom[k->ndim - 1];
    }
    emit_roots(&e);
    if (e.ncut && !e.failed) emit_segments(&e);
    if (!e.ncut && e.tile_want && !e.failed) emit_tiles(&e);
    e.lanes = e.failed ? 0 : reduce_lanes(&e);
    if (!e.failed && k->axis >= 0) emit_p1(&e);
    if (!e.failed && d == CG_C && k->axis >= 0 && !e.lanes) row_cache(&e);
    int rc = -1;
    if (!e.failed) {
        Buf o = {0};
        if (d == CG_CUDA) {
            bput(&o, "extern \"C\" __global__ void __launch_bounds__(256) %s(", name);
            emit_params(&e, &o);
            if (e.chunks > 1) bput(&o, ", float *__restrict__ cg_part, const int cg_stage");
            bput(&o, ")\n{\n");
            k->chunks = e.chunks;
            k->split_p2 = e.p2.text.n > 0;
            k->part_bytes = e.chunks > 1 ? (int64_t)part_slots(&e) * e.chunks * rows_of(k) * 4 : 0;
            cuda_body(&e, &o);
        } else {
            bput(&o, "void %s(void *const *a)\n{\n", name);
            if (e.lanes) c_reduce_lanes_body(&e, &o);
            else if (k->axis >= 0) c_reduce_body(&e, &o);
            else c_ew_body(&e, &o);
        }
        bput(&o, "}\n");
        *src = o.p;
        kernel_bytes(&e);
        rc = 0;
    }
    *culprit = e.culprit;
    block_free(&e.p1);
    block_free(&e.p1b);
    block_free(&e.mid);
    block_free(&e.p2);
    for (int i = 0; i <= e.ncut; i++) free(e.seg_text[i].p);
    free(e.stores.p);
    for (int i = 0; i < e.nstrs; i++) free(e.strs[i]);
    free(e.strs);
    return rc;
}

void cg_cuda_launch(const CgKernel *k, int64_t *blocks, int *threads)
{
    int64_t pts = 1;
    for (int d = 0; d < k->ndim; d++) pts *= k->dom[d];
    *threads = 256;
    if (vec8_kernel(k)) *blocks = (pts / 8 + 255) / 256;
    else if (k->axis < 0) *blocks = (pts + 255) / 256;
    else if (inner_axis(k)) {   /* a block a row: no more threads than the row has points, a warp at least */
        *blocks = rows_of(k);
        while (*threads > 32 && *threads / 2 >= k->dom[k->axis]) *threads /= 2;
    } else *blocks = (rows_of(k) + 255) / 256;
    if (k->chunks > 1) {        /* split: a block a (row, chunk), or a thread a (row, chunk) */
        *blocks = split_blocks(k, k->chunks);
        *threads = 256;
        while (inner_axis(k) && *threads > 32 && *threads / 2 >= chunk_len(k)) *threads /= 2;
    }
    if (*blocks < 1) *blocks = 1;
}

void cg_cuda_launch2(const CgKernel *k, int64_t *blocks, int *threads)
{
    *blocks = 0;
    *threads = 0;
    if (k->axis < 0 || k->chunks <= 1) return;
    if (k->split_p2) {          /* p2 per chunk: the first launch's shape */
        cg_cuda_launch(k, blocks, threads);
        return;
    }
    int64_t rows = rows_of(k);
    if (split_grouped(k)) {     /* SPLIT_ROWS rows a block */
        *threads = SPLIT_GROUPS * SPLIT_ROWS;
        *blocks = (rows + SPLIT_ROWS - 1) / SPLIT_ROWS;
        return;
    }
    *threads = rows < 256 ? (int)(rows + 31) / 32 * 32 : 256;   /* a thread a row */
    *blocks = (rows + *threads - 1) / *threads;
}

/* i32 floor division and modulo (the sign of the divisor), in 64 bits so that
 * INT_MIN // -1 wraps instead of trapping; by 0 both give 0 */
#define CG_INT_DIV(qual)                                                                      \
    qual " int cg_floordiv(int a, int b)\n{\n"                                      \
    "    if (b == 0) return 0;\n"                                                           \
    "    long long q = (long long)a / b;\n"                                                 \
    "    if (q * b != a && (a < 0) != (b < 0)) q--;\n"                                       \
    "    return (int)(unsigned)q;\n}\n"                                                    \
    qual " int cg_mod(int a, int b)\n{\n"                                           \
    "    if (b == 0) return 0;\n"                                                           \
    "    long long r = (long long)a % b;\n"                                                 \
    "    if (r != 0 && (r < 0) != (b < 0)) r += b;\n"                                       \
    "    return (int)r;\n}\n"

const char *cg_prelude(CgDialect d)
{
    if (d == CG_C)
        return "/* generated by gptc: loop kernels of one training step (C, OpenMP) */\n"
               "#include <math.h>\n"
               "#include <stdlib.h>\n"
               "#define CG_UNUSED __attribute__((unused))\n"
               "/* work (points) up to which a loop stays on one thread: every parallel region costs a\n"
               " * fork and a barrier, which a busy machine turns into scheduler waits; above it (a\n"
               " * [256, 1024] matrix of Muon's iteration and larger) two threads already pay */\n"
               "#define CG_PAR_MIN 65536\n"
               "/* exp(x) by a polynomial, arithmetic only, so loops that call it vectorize (codegen.h) */\n"
               CG_TEXT(CG_EXPF_DEFINITION) "\n"
               CG_INT_DIV("static inline CG_UNUSED") "\n";
    return "/* generated by gptc: loop kernels of one training step (CUDA) */\n"
           "#include <cuda_bf16.h>\n"
           "#define CG_UNUSED [[maybe_unused]]\n"
           "#ifndef INFINITY\n#define INFINITY __int_as_float(0x7f800000)\n#endif\n"
           "#ifndef NAN\n#define NAN __int_as_float(0x7fffffff)\n#endif\n"
           CG_INT_DIV("__device__")
           "/* block-wide reductions over blockDim.x (a multiple of 32, at most 1024) threads;\n"
           " * every thread gets the result */\n"
           "__device__ float cg_block_sum(float v)\n{\n"
           "    __shared__ float part[32];\n"
           "    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
           "    __syncthreads();\n"
           "    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;\n"
           "    __syncthreads();\n"
           "    v = 0.0f;\n"
           "    for (int w = 0; w < (int)(blockDim.x >> 5); w++) v += part[w];\n"
           "    return v;\n}\n"
           "__device__ float cg_block_max(float v)\n{\n"
           "    __shared__ float part[32];\n"
           "    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));\n"
           "    __syncthreads();\n"
           "    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;\n"
           "    __syncthreads();\n"
           "    v = -INFINITY;\n"
           "    for (int w = 0; w < (int)(blockDim.x >> 5); w++) v = fmaxf(v, part[w]);\n"
           "    return v;\n}\n"
           "/* (m, l) pairs of an online logsumexp, combined over the block */\n"
           "__device__ void cg_block_lse(float *m, float *l)\n{\n"
           "    const float mm = cg_block_max(*m);\n"
           "    const float s = mm == -INFINITY ? 0.0f : *l * expf(*m - mm);\n"
           "    *l = cg_block_sum(s);\n"
           "    *m = mm;\n}\n\n";
}
