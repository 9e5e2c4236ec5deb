/* siblings.c — one product for sibling products (ir_merge_siblings).
 *
 * Products of one left operand whose right operands are adjacent pieces of one tensor —
 * q, k and v as h·w[0]ᵀ, h·w[1]ᵀ, h·w[2]ᵀ with w of shape [4, N, K] — read `a` once each.
 * Siblings are MATMULs with
 *   - the same a: the same node and the same a^T flag (hence the same M, K and batch);
 *   - b^T [..., N_j, K] (or b [..., 1, N_j] when K = 1; see below) a view of a contiguous
 *     element range of one base node, found by following RESHAPEs and contiguous SLICEs
 *     (full along their axis, or with only size-1 axes before it) from b to the base;
 *   - batch axes all of size 1;
 *   - ranges that overlap no other candidate of the same a and base.
 * A run of ≥ 2 siblings whose ranges are adjacent (each starts where the previous ends) is
 * one product  a · bᵀ  with b the view [..., ΣN_j, K] of the union range, which fusion
 * aliases (a reshape and a leading slice of the base); each sibling becomes
 * SLICE(product, last axis, its offset, N_j) in place, so its users, and the outputs, keep
 * pointing at the same node.
 *
 * Why b must be given transposed: b^T's rows [N_j, K] stack along N, so adjacent row
 * ranges are the rows of the union. b given as [K, N_j] has rows of N_j along N; its
 * union along N would interleave the pieces row by row ([K, ΣN_j] with row k made of
 * every piece's row k), which is no contiguous range unless K = 1; K = 1 is taken, the
 * rest is left alone. With batch axes of size > 1 the pieces are [B, N_j, K] blocks each
 * holding every batch, so their union is no view of [B, ΣN_j, K] either.
 *
 * Ids stay topological: the new nodes (view, product) go right before the first sibling
 * in id order; their inputs, a and the base, are inputs or ancestors of every sibling. */
#include "ir/ir.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    IrNode *mm;            /* the product */
    IrNode *base;          /* b's elements are base's elements lo .. lo+len-1, in order */
    int64_t lo, len;
    bool overlaps;         /* its range meets another candidate's of the same a and base */
} Sib;

/* The node whose contiguous element range x is (the start in *lo): x itself, or what a
 * chain of RESHAPEs and contiguous SLICEs reads. */
static IrNode *range_of(IrNode *x, int64_t *lo)
{
    *lo = 0;
    for (;;) {
        IrNode *y = x->in[0];
        if (x->op == IR_SLICE) {
            int axis = (int)x->iattr[0];
            int64_t stride = 1;
            bool leading = true;
            for (int d = 0; d < axis; d++) leading = leading && y->shape[d] == 1;
            if (!leading && x->shape[axis] != y->shape[axis]) return x;
            for (int d = axis + 1; d < y->ndim; d++) stride *= y->shape[d];
            *lo += x->iattr[1] * stride;
        } else if (x->op != IR_RESHAPE) {
            return x;
        }
        x = y;
    }
}

static int64_t row_len(const IrNode *mm) { return mm->in[0]->shape[mm->ndim - (mm->iattr[1] ? 2 : 1)]; }

/* Can mm join a merge: batch axes of size 1, and b a piece of whole rows along N. */
static bool candidate(const IrNode *mm)
{
    const IrNode *b = mm->in[1];
    for (int d = 0; d < mm->ndim - 2; d++)
        if (mm->shape[d] != 1) return false;
    return mm->iattr[0] || b->shape[b->ndim - 2] == 1;
}

/* Sibling order: by a, a^T, b^T, base, then range. */
static int cmp_sib(const void *pa, const void *pb)
{
    const Sib *x = pa, *y = pb;
    int64_t k[2][6] = {{x->mm->in[0]->id, x->mm->iattr[1], x->mm->iattr[0], x->base->id, x->lo, x->len},
                       {y->mm->in[0]->id, y->mm->iattr[1], y->mm->iattr[0], y->base->id, y->lo, y->len}};
    for (int i = 0; i < 6; i++)
        if (k[0][i] != k[1][i]) return k[0][i] < k[1][i] ? -1 : 1;
    return 0;
}

static bool same_key(const Sib *x, const Sib *y)
{
    return x->mm->in[0] == y->mm->in[0] && x->mm->iattr[1] == y->mm->iattr[1] &&
           x->mm->iattr[0] == y->mm->iattr[0] && x->base == y->base;
}

static int64_t gcd(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Elements lo .. lo+len-1 of base, as a tensor of the given shape, built from moves that
 * fusion aliases: a slice along base's leading axis when its stride divides lo and len,
 * else one along the leading axis of base reshaped to [numel/r, r]; then a reshape. */
static IrNode *range_view(IrGraph *g, IrNode *base, int64_t lo, int64_t len, int nd, const int64_t *shape)
{
    int64_t numel = ir_numel(base), r = gcd(gcd(lo, len), numel);
    IrNode *x = base;
    if (len != numel) {
        int64_t stride0 = numel / base->shape[0];
        if (r % stride0 != 0) {
            int64_t rows[2] = {numel / r, r};
            x = ir_reshape(g, x, 2, rows);
            stride0 = r;
        }
        x = ir_slice(g, x, 0, lo / stride0, len / stride0);
    }
    bool same = x->ndim == nd;
    for (int d = 0; same && d < nd; d++) same = x->shape[d] == shape[d];
    return same ? x : ir_reshape(g, x, nd, shape);
}

/* The nodes one merge appended, nodes[from .. from+n-1], and the id they go before. */
typedef struct {
    int anchor, from, n;
} Placed;

/* Replaces the run s[0..n-1] (adjacent ranges, in range order) by one product and slices
 * of it. The new nodes are appended to g; where they go is returned. */
static Placed merge_run(IrGraph *g, Sib *s, int n)
{
    IrNode *first = s[0].mm, *a = first->in[0];
    for (int i = 1; i < n; i++)
        if (s[i].mm->id < first->id) first = s[i].mm;
    Placed p = {first->id, g->n, 0};
    int nd = first->ndim;
    int64_t K = row_len(first), N = 0, shape[IR_MAX_DIMS];
    for (int i = 0; i < n; i++) N += s[i].len / K;
    for (int d = 0; d < nd - 2; d++) shape[d] = 1;
    shape[nd - 2] = first->iattr[0] ? N : 1;
    shape[nd - 1] = first->iattr[0] ? K : N;
    const char *file = g->cur_file;
    int line = g->cur_line;
    g->cur_file = first->src_file;
    g->cur_line = first->src_line;
    IrNode *b = range_view(g, s[0].base, s[0].lo, s[n - 1].lo + s[n - 1].len - s[0].lo, nd, shape);
    IrNode *mm = ir_matmul_t(g, a, b, first->iattr[1], first->iattr[0]);
    g->cur_file = file;
    g->cur_line = line;
    for (int i = 0; i < n; i++) {
        IrNode *x = s[i].mm;
        x->op = IR_SLICE;
        x->in[0] = mm;
        x->in[1] = NULL;
        x->nin = 1;
        memset(x->iattr, 0, sizeof x->iattr);
        x->iattr[0] = nd - 1;
        x->iattr[1] = (s[i].lo - s[0].lo) / K;
    }
    p.n = g->n - p.from;
    return p;
}

static int cmp_placed(const void *pa, const void *pb)
{
    const Placed *x = pa, *y = pb;
    return (x->anchor > y->anchor) - (x->anchor < y->anchor);
}

/* Each merge's new nodes go right before its anchor (anchors are distinct: a sibling is
 * in one run); ids become positions again. */
static void place_new_nodes(IrGraph *g, int nold, Placed *p, int np)
{
    qsort(p, (size_t)np, sizeof *p, cmp_placed);
    IrNode **order = xmalloc((size_t)g->n * sizeof *order);
    int k = 0, r = 0;
    for (int i = 0; i < nold; i++) {
        for (; r < np && p[r].anchor == i; r++)
            for (int j = 0; j < p[r].n; j++) order[k++] = g->nodes[p[r].from + j];
        order[k++] = g->nodes[i];
    }
    for (int i = 0; i < k; i++) {
        order[i]->id = i;
        g->nodes[i] = order[i];
    }
    free(order);
}

int ir_merge_siblings(IrGraph *g)
{
    Sib *s = xmalloc(((size_t)g->n + 1) * sizeof *s);
    int ns = 0;
    for (int i = 0; i < g->n; i++) {
        IrNode *n = g->nodes[i];
        if (n->op != IR_MATMUL || !candidate(n)) continue;
        s[ns] = (Sib){.mm = n, .len = ir_numel(n->in[1])};
        s[ns].base = range_of(n->in[1], &s[ns].lo);
        ns++;
    }
    qsort(s, (size_t)ns, sizeof *s, cmp_sib);
    /* in range order, a range overlaps an earlier one iff it starts before the furthest
     * end so far; marking that one too marks every overlapping pair */
    for (int i = 0, far = -1; i < ns; i++) {
        if (i == 0 || !same_key(&s[i - 1], &s[i])) far = i;
        else if (s[i].lo < s[far].lo + s[far].len) s[i].overlaps = s[far].overlaps = true;
        if (s[i].lo + s[i].len > s[far].lo + s[far].len) far = i;
    }
    Placed *p = xmalloc(((size_t)ns / 2 + 1) * sizeof *p);
    int nold = g->n, np = 0, removed = 0;
    for (int i = 0; i < ns;) {
        int j = i + 1;
        while (!s[i].overlaps && j < ns && same_key(&s[i], &s[j]) && !s[j].overlaps &&
               s[j].lo == s[j - 1].lo + s[j - 1].len)
            j++;
        if (j - i >= 2) {
            p[np++] = merge_run(g, s + i, j - i);
            removed += j - i - 1;
        }
        i = j;
    }
    if (np) place_new_nodes(g, nold, p, np);
    free(p);
    free(s);
    return removed;
}
