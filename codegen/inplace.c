/* inplace.c — outputs computed in the memory of the leaf they replace (cg_alias_outputs).
 *
 * An optimizer step reads each parameter and its state and writes their new values, which
 * the caller stores back into those leaves before the next run (IrGraph.replaces). Written
 * to arena memory of their own, the new values double the memory of the parameters and
 * the state, and the copy back is a pass over all of it. Computed in the leaf itself, they
 * need neither. An output R that replaces leaf L takes L's memory (s->alias[R] = L) when
 *   - R is a root of an elementwise loop kernel k, over R's own shape, and L has that
 *     shape and the same storage dtype;
 *   - every read of L in k is at the point's own index: the kernel's roots reach L only
 *     through elementwise ops of that shape (no broadcast, movement, reduction or gather,
 *     and no view of L), so each thread reads L[p] before it writes R[p] (the emitter
 *     stores a kernel's roots after computing all of them), and no thread reads a point
 *     another thread writes;
 *   - no kernel after k reads L (its old value);
 *   - L is no output itself, and no other output takes it.
 * cg_storage then names L for R; the memory plan gives R no arena memory, the emitter passes
 * R and L as one argument (one pointer, read and written), and a copy of R into L is a copy
 * of a buffer onto itself, which the backends skip. */
#include "codegen/codegen.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

static bool elementwise_of(const IrNode *n, const CgKernel *k)
{
    IrClass c = ir_op_class(n->op);
    return (c == IRC_UNARY || c == IRC_BINARY) && n->ndim == k->ndim &&
           !memcmp(n->shape, k->dom, sizeof(int64_t) * (size_t)k->ndim);
}

/* Does n's expression in kernel k read leaf L? *bad when it reads it other than at the
 * point's own index. seen[id] == stamp marks the nodes visited, reach[id] their answer. */
static bool reads_leaf(const CgStep *s, const CgKernel *k, const IrNode *n, int L, int *seen, unsigned char *reach,
                       int stamp, bool *bad)
{
    if (n->id == L) return true;
    int64_t off;
    if (s->role[n->id] == CG_VIEW && cg_storage(s, n->id, &off) == L) {
        *bad = true;   /* read through another shape */
        return true;
    }
    bool own_root = s->role[n->id] == CG_ROOT && s->producer[n->id] == k - s->k;
    if (s->role[n->id] != CG_INLINE && !own_root) return false;
    if (seen[n->id] == stamp) return reach[n->id];   /* searched (and judged) already */
    seen[n->id] = stamp;
    bool reads = false;
    for (int j = 0; j < n->nin; j++) reads |= reads_leaf(s, k, n->in[j], L, seen, reach, stamp, bad);
    if (reads && !elementwise_of(n, k)) *bad = true;
    reach[n->id] = reads;
    return reads;
}

/* Does any kernel after k read L? */
static bool read_after(const CgStep *s, int k, int L)
{
    int scratch[6];
    for (int m = k + 1; m < s->nk; m++) {
        const int *ids;
        int n = cg_kernel_reads(&s->k[m], &ids, scratch);
        int64_t off;
        for (int a = 0; a < n; a++)
            if (cg_storage(s, ids[a], &off) == L) return true;
    }
    return false;
}

static bool can_alias(const CgStep *s, const IrNode *r, const IrNode *l, const unsigned char *kept, int *seen,
                      unsigned char *reach, int stamp)
{
    if (s->role[r->id] != CG_ROOT || s->role[l->id] != CG_LEAF || kept[l->id] || s->alias[r->id] >= 0) return false;
    for (int i = 0; i < s->g->n; i++)
        if (s->alias[i] == l->id) return false;
    const CgKernel *k = &s->k[s->producer[r->id]];
    if (k->kind != CG_LOOP || k->axis >= 0 || !ir_same_shape(r, l) || r->ndim != k->ndim ||
        memcmp(r->shape, k->dom, sizeof(int64_t) * (size_t)k->ndim) || s->store[r->id] != s->store[l->id])
        return false;
    bool bad = false;
    for (int i = 0; i < k->nroots && !bad; i++) reads_leaf(s, k, s->g->nodes[k->roots[i]], l->id, seen, reach, stamp, &bad);
    return !bad && !read_after(s, (int)(k - s->k), l->id);
}

void cg_alias_outputs(CgStep *s, IrNode *const *keep, int nkeep)
{
    const IrGraph *g = s->g;
    s->alias = xmalloc(sizeof *s->alias * ((size_t)g->n + 1));
    for (int i = 0; i < g->n; i++) s->alias[i] = -1;
    if (!g->replaces) return;
    unsigned char *kept = xcalloc((size_t)g->n + 1, 1);
    int *seen = xcalloc((size_t)g->n + 1, sizeof *seen);
    unsigned char *reach = xcalloc((size_t)g->n + 1, 1);
    for (int i = 0; i < nkeep; i++) kept[keep[i]->id] = 1;
    for (int j = 0; j < g->noutputs; j++) {
        const IrNode *r = g->outputs[j], *l = g->replaces[j];
        if (l && kept[r->id] && can_alias(s, r, l, kept, seen, reach, j + 1)) s->alias[r->id] = l->id;
    }
    free(kept);
    free(seen);
    free(reach);
}
