/* fuse.c — fusion: which nodes get memory and which kernels compute them (cg_fuse).
 *
 * Roles (codegen.h) are decided in one pass in id order: leaves are LEAF, except CONSTs,
 * which are CONST (a ROOT when kept); library ops (MATMUL, ATTENTION, ATTENTION_BWD,
 * SCATTER_ADD) are ROOTs; a movement node that reads a contiguous range of a materialized
 * node (a reshape, a broadcast adding size-1 axes, a slice with only size-1 axes before
 * its axis) is a VIEW; a node in the `force` set is a ROOT; anything else is INLINE.
 * `force` holds the kept nodes, the library ops' operands, the nodes used twice whose
 * recomputation would read more than HEAVY_READS full-size tensors, and every node the
 * emitter reported it cannot inline. A graph with an i32 node other than a leaf, an
 * elementwise binary op, a movement, a gather or a cast is rejected.
 *
 * Kernels: the roots in id order, each library root on its own, consecutive loop roots
 * with the same iteration signature (domain, reduced axis) grouped into one kernel as long
 * as the emitter accepts the group. The signature of a loop root is set by the first
 * reduction its inlined expression reaches (SUM/MAX over an axis longer than 1, or the row
 * logsumexp inside CROSS_ENTROPY and CE_BWD): its input shape and axis; without one the
 * root's own shape, elementwise. Whether the emitter accepts a group is tried in the C
 * dialect. When it rejects a kernel it names a node to materialize; that node is forced
 * and the pass backtracks to it (form_kernels). The reductions a root reaches that can
 * never be its kernel's (another domain or axis) are forced all at once beforehand
 * (force_foreign). Then a later kernel joins an earlier one of its signature across
 * kernels it does not depend on (merge_across).
 *
 * Then cg_fuse assigns the storage dtypes (storage.c), emits every loop kernel in both
 * dialects, with kernels of equal source sharing one CgFunc named by its hash, and makes
 * the memory plan (memplan.c). */
#include "codegen/codegen.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAVY_READS 2    /* full-size reads from which a node used twice is stored once */

static bool is_library(IrOp op)
{
    return op == IR_MATMUL || op == IR_ATTENTION || op == IR_ATTENTION_BWD || op == IR_SCATTER_ADD;
}

static bool materialized(const CgStep *s, const IrNode *n)
{
    CgRole r = s->role[n->id];
    return r == CG_LEAF || r == CG_ROOT || r == CG_VIEW;
}

int cg_storage(const CgStep *s, int id, int64_t *offset)
{
    *offset = 0;
    int b = id;
    if (s->role[id] == CG_VIEW) {
        *offset = s->view_off[id];
        b = s->view_base[id];
    } else if (s->role[id] != CG_LEAF && s->role[id] != CG_ROOT) {
        return -1;
    }
    return b >= 0 && s->alias && s->alias[b] >= 0 ? s->alias[b] : b;
}

bool cg_trivial_reduce(const IrNode *n)
{
    return ir_op_class(n->op) == IRC_REDUCE && n->in[0]->shape[n->iattr[0]] == 1;
}

/* n (a movement node over a materialized input) reads a contiguous range of it:
 * a reshape, a broadcast adding size-1 axes, or a slice with only size-1 axes before it. */
static bool contiguous_move(const IrNode *n, int64_t *off)
{
    const IrNode *x = n->in[0];
    *off = 0;
    switch (n->op) {
    case IR_RESHAPE: return true;
    case IR_BROADCAST: return ir_numel(n) == ir_numel(x);
    case IR_SLICE: {
        int a = (int)n->iattr[0];
        int64_t stride = 1;
        for (int d = 0; d < a; d++)
            if (x->shape[d] != 1) return false;
        for (int d = a + 1; d < x->ndim; d++) stride *= x->shape[d];
        *off = n->iattr[1] * stride;
        return true;
    }
    default: return false;
    }
}

/* roles of the nodes from id `from` on (those before keep theirs) */
static void assign_roles(CgStep *s, const unsigned char *force, int from)
{
    const IrGraph *g = s->g;
    for (int i = from; i < g->n; i++) {
        const IrNode *n = g->nodes[i];
        int64_t off;
        s->view_base[i] = -1;
        if (ir_op_class(n->op) == IRC_LEAF)   /* a kept constant gets memory of its own */
            s->role[i] = n->op != IR_CONST ? CG_LEAF : force[i] ? CG_ROOT : CG_CONST;
        else if (is_library(n->op)) s->role[i] = CG_ROOT;
        else if (ir_op_class(n->op) == IRC_MOVE && materialized(s, n->in[0]) && contiguous_move(n, &off)) {
            int64_t base_off;
            s->role[i] = CG_VIEW;
            s->view_base[i] = cg_storage(s, n->in[0]->id, &base_off);
            s->view_off[i] = base_off + off;
        } else s->role[i] = force[i] ? CG_ROOT : CG_INLINE;
    }
}

/* What recomputing n costs over loading it: the full-size tensors its inlined expression
 * reads (as many as n's elements; shared subtrees counted at every use). Arithmetic is
 * cheap next to memory traffic, so a node used twice is stored once only when recomputing
 * it would read more than storing and loading it writes and reads. */
typedef struct {
    int64_t *value;
    int *stamp;                  /* value[id] is current when stamp[id] == now */
    int now;
} Memo;

static int64_t inline_reads(const CgStep *s, const IrNode *n, int64_t numel, Memo *memo)
{
    if (memo->stamp[n->id] == memo->now) return memo->value[n->id];
    int64_t c = 0;
    for (int j = 0; j < n->nin; j++) {
        const IrNode *x = n->in[j];
        CgRole r = s->role[x->id];
        if (r == CG_INLINE) c += inline_reads(s, x, numel, memo);
        else if (r != CG_CONST && ir_numel(x) >= numel) c++;
    }
    memo->stamp[n->id] = memo->now;
    return memo->value[n->id] = c < 1000000 ? c : 1000000;
}

static void initial_force(CgStep *s, IrNode *const *keep, int nkeep, unsigned char *force)
{
    const IrGraph *g = s->g;
    int *uses = xcalloc((size_t)g->n, sizeof *uses);
    Memo memo = {xcalloc((size_t)g->n, sizeof *memo.value), xcalloc((size_t)g->n, sizeof *memo.stamp), 0};
    for (int i = 0; i < nkeep; i++) force[keep[i]->id] = 1;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = g->nodes[i];
        for (int j = 0; j < n->nin; j++) {
            uses[n->in[j]->id]++;
            if (is_library(n->op)) force[n->in[j]->id] = 1;
        }
    }
    assign_roles(s, force, 0);
    for (int i = 0; i < g->n; i++) {
        if (s->role[i] != CG_INLINE || uses[i] < 2) continue;
        memo.now++;   /* "full size" depends on the node asked about: a fresh memo each time */
        if (inline_reads(s, g->nodes[i], ir_numel(g->nodes[i]), &memo) > HEAVY_READS) force[i] = 1;
    }
    free(uses);
    free(memo.value);
    free(memo.stamp);
}

/* ---- signatures ------------------------------------------------------------------------ */

typedef struct {
    int ndim, axis;
    int64_t dom[IR_MAX_DIMS];
} Sig;

/* the first reduction reached from n through inlined nodes (n included), or NULL
 * (reductions over an axis of size 1 are looked through);
 * seen[id] == stamp marks the nodes visited in this search */
static const IrNode *first_reduce(const CgStep *s, const IrNode *n, int *seen, int stamp, bool top)
{
    if (seen[n->id] == stamp) return NULL;
    seen[n->id] = stamp;
    if (!top && s->role[n->id] != CG_INLINE) return NULL;
    /* a reduction over an axis of size 1 copies its input: the kernel's domain is its own */
    if ((ir_op_class(n->op) == IRC_REDUCE && !cg_trivial_reduce(n)) || n->op == IR_CROSS_ENTROPY ||
        n->op == IR_CE_BWD)
        return n;
    for (int j = 0; j < n->nin; j++) {
        const IrNode *r = first_reduce(s, n->in[j], seen, stamp, false);
        if (r) return r;
    }
    return NULL;
}

/* r's shape fits domain sig: equal, or the domain with the axis kept as 1 or dropped */
static bool fits(const IrNode *r, const Sig *g)
{
    if (g->axis < 0) return r->ndim == g->ndim && !memcmp(r->shape, g->dom, sizeof(int64_t) * (size_t)g->ndim);
    int64_t rows = 1;
    for (int d = 0; d < g->ndim; d++)
        if (d != g->axis) rows *= g->dom[d];
    bool same = r->ndim == g->ndim && !memcmp(r->shape, g->dom, sizeof(int64_t) * (size_t)g->ndim);
    return same || (ir_numel(r) == rows && (r->ndim == g->ndim || r->ndim == g->ndim - 1));
}

/* 0 and *sig, or -1 with *culprit: a reduction to materialize first */
static int signature(const CgStep *s, const IrNode *root, Sig *sig, int *culprit, int *seen)
{
    int stamp = ++seen[s->g->n];            /* the last slot counts the searches */
    const IrNode *r = first_reduce(s, root, seen, stamp, true);
    if (!r) {
        sig->ndim = root->ndim;
        sig->axis = -1;
        memcpy(sig->dom, root->shape, sizeof sig->dom);
        return 0;
    }
    const IrNode *x = r->in[0];
    sig->ndim = x->ndim;
    sig->axis = ir_op_class(r->op) == IRC_REDUCE ? (int)r->iattr[0] : x->ndim - 1;
    memcpy(sig->dom, x->shape, sizeof sig->dom);
    if (fits(root, sig)) return 0;
    *culprit = r->id;
    return -1;
}

/* Forces every reduction that the root's inlined expression reaches and that cannot be
 * computed in a kernel of signature sig (another domain or axis), all at once. The emitter
 * would reject them one at a time, each rejection a backtrack and a re-emission of the
 * root: quadratic where a root reads many chunks' reductions. The search goes through the
 * kernel's own reductions (their operands are computed in it) but not past a forced one
 * (its operands go to its own kernel). The lowest id forced, or -1. */
static int force_foreign(const CgStep *s, const IrNode *n, const Sig *sig, unsigned char *force, int *seen,
                         int stamp, bool top)
{
    if (seen[n->id] == stamp) return -1;
    seen[n->id] = stamp;
    if (!top && s->role[n->id] != CG_INLINE) return -1;
    bool reduce = (ir_op_class(n->op) == IRC_REDUCE && !cg_trivial_reduce(n)) || n->op == IR_CROSS_ENTROPY ||
                  n->op == IR_CE_BWD;
    if (reduce && !top) {
        const IrNode *x = n->in[0];
        int axis = ir_op_class(n->op) == IRC_REDUCE ? (int)n->iattr[0] : x->ndim - 1;
        if (axis != sig->axis || x->ndim != sig->ndim || memcmp(x->shape, sig->dom, sizeof(int64_t) * (size_t)x->ndim)) {
            force[n->id] = 1;
            return n->id;
        }
    }
    int lo = -1;
    for (int j = 0; j < n->nin; j++) {
        int c = force_foreign(s, n->in[j], sig, force, seen, stamp, false);
        if (c >= 0 && (lo < 0 || c < lo)) lo = c;
    }
    return lo;
}

static bool same_sig(const CgKernel *k, const Sig *g)
{
    return k->ndim == g->ndim && k->axis == g->axis &&
           !memcmp(k->dom, g->dom, sizeof(int64_t) * (size_t)g->ndim);
}

/* ---- kernels ----------------------------------------------------------------------------- */

static CgKernel *new_kernel(CgStep *s, CgKind kind)
{
    CgKernel *k = &s->k[s->nk++];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->func = -1;
    k->axis = -1;
    return k;
}

static void add_root(CgKernel *k, int id)
{
    k->roots = xrealloc(k->roots, sizeof *k->roots * (size_t)(k->nroots + 1));
    k->roots[k->nroots++] = id;
}

static void free_kernel(CgKernel *k)
{
    free(k->roots);
    free(k->args);
    k->roots = k->args = NULL;
    k->nroots = k->nargs = 0;
}

/* tries to emit k; on failure *culprit names the node to materialize (or -1) */
static int try_emit(CgStep *s, CgKernel *k, int *culprit)
{
    char *src = NULL;
    *culprit = -1;
    int rc = cg_emit_loop(s, k, CG_C, "probe", &src, culprit);
    free(src);
    return rc;
}

/* After node `from` was forced: its roles redone, the kernels holding roots at or after it
 * dropped; the id of the last root kept (the pass resumes after it), or -1 */
static int backtrack(CgStep *s, const unsigned char *force, int from)
{
    assign_roles(s, force, from);
    while (s->nk > 0 && s->k[s->nk - 1].roots[s->k[s->nk - 1].nroots - 1] >= from) free_kernel(&s->k[--s->nk]);
    return s->nk > 0 ? s->k[s->nk - 1].roots[s->k[s->nk - 1].nroots - 1] : -1;
}

/* Forms the kernels in one pass over the roots in id order. When a kernel cannot be
 * emitted, the node the emitter names is forced to be a root: the roles from that node on
 * are redone, the kernels holding roots at or after it are dropped, and the pass resumes
 * after the last kept kernel (the kept ones cannot read the node: their roots come first).
 * 0, or -1 with *bad: the node that could not be helped. */
static int form_kernels(CgStep *s, unsigned char *force, int *seen, int *bad)
{
    CgKernel *open = NULL;
    int culprit;
    for (int i = 0; i < s->g->n; i++) {
        const IrNode *n = s->g->nodes[i];
        if (s->role[i] != CG_ROOT) continue;
        if (is_library(n->op)) {
            CgKernel *k = new_kernel(s, n->op == IR_MATMUL ? CG_MATMUL : n->op == IR_ATTENTION ? CG_ATTENTION
                                      : n->op == IR_ATTENTION_BWD ? CG_ATTENTION_BWD : CG_SCATTER_ADD);
            k->op = s->g->nodes[i];
            add_root(k, i);
            open = NULL;
            continue;
        }
        Sig sig;
        bool ok = signature(s, n, &sig, &culprit, seen) == 0;
        int forced = ok ? force_foreign(s, n, &sig, force, seen, ++seen[s->g->n], true) : -1;
        if (forced >= 0) {
            i = backtrack(s, force, forced);
            open = NULL;
            continue;
        }
        if (ok && open && same_sig(open, &sig)) {
            add_root(open, i);
            if (try_emit(s, open, &culprit) == 0) continue;
            open->nroots--;
        }
        if (ok) {
            open = new_kernel(s, CG_LOOP);
            open->ndim = sig.ndim;
            open->axis = sig.axis;
            memcpy(open->dom, sig.dom, sizeof sig.dom);
            add_root(open, i);
            if (try_emit(s, open, &culprit) == 0) continue;
        }
        if (culprit < 0 || force[culprit]) {
            *bad = culprit < 0 ? i : culprit;
            return -1;
        }
        force[culprit] = 1;
        i = backtrack(s, force, culprit);
        open = NULL;
    }
    return 0;
}

/* ---- kernels merged across others ----------------------------------------------------------
 * form_kernels groups consecutive roots only. Where two families of nodes alternate (the
 * autodiff's per-operand gradients: a reduction for one operand, an accumulation for it,
 * then the same pair for the next), kernels of one signature alternate with kernels of
 * another, each reading the same large tensor again. A later loop kernel j joins an
 * earlier one i of its signature when no kernel between them writes what j reads (no
 * library call lies between them either); j's roots are then computed earlier, which no
 * kernel can notice, since none before j reads them. The emitter still has the last
 * word on every merge. MERGE_WINDOW bounds how far a kernel moves up, and with it how much
 * longer its outputs stay in memory. */
#define MERGE_WINDOW 8

static bool writes_read_by(const CgStep *s, const CgKernel *w, const CgKernel *r)
{
    for (int a = 0; a < r->nargs; a++) {
        int64_t off;
        int b = cg_storage(s, r->args[a], &off);
        for (int q = 0; q < w->nroots; q++)
            if (w->roots[q] == b) return true;
    }
    return false;
}

static bool same_domain(const CgKernel *a, const CgKernel *b)
{
    return a->ndim == b->ndim && a->axis == b->axis && !memcmp(a->dom, b->dom, sizeof(int64_t) * (size_t)a->ndim);
}

/* may kernel j join kernel i: the same signature, loop kernels only between them, none of
 * them writing what j reads? */
static bool can_move_up(const CgStep *s, int i, int j)
{
    if (s->k[j].kind != CG_LOOP || !same_domain(&s->k[i], &s->k[j])) return false;
    for (int m = i + 1; m < j; m++)
        if (writes_read_by(s, &s->k[m], &s->k[j])) return false;
    return true;
}

static void merge_across(CgStep *s)
{
    int culprit;
    for (int i = 0; i < s->nk; i++) {
        CgKernel *ki = &s->k[i];
        if (ki->kind != CG_LOOP) continue;
        for (int j = i + 1; j < s->nk && j <= i + MERGE_WINDOW && s->k[j].kind == CG_LOOP; j++) {
            if (!can_move_up(s, i, j)) continue;
            CgKernel *kj = &s->k[j];
            int n0 = ki->nroots;
            for (int r = 0; r < kj->nroots; r++) add_root(ki, kj->roots[r]);
            if (try_emit(s, ki, &culprit)) {
                ki->nroots = n0;
                try_emit(s, ki, &culprit);   /* its arguments as they were */
                continue;
            }
            free_kernel(kj);
            memmove(kj, kj + 1, sizeof *kj * (size_t)(s->nk - j - 1));
            s->nk--;
            j--;
        }
    }
}

int cg_kernel_reads(const CgKernel *k, const int **ids, int scratch[6])
{
    if (k->kind == CG_LOOP) {
        *ids = k->args;
        return k->nargs;
    }
    for (int j = 0; j < k->op->nin; j++) scratch[j] = k->op->in[j]->id;
    *ids = scratch;
    return k->op->nin;
}

typedef struct {
    int level, index;
} Rank;

static int cmp_rank(const void *a, const void *b)
{
    const Rank *x = a, *y = b;
    return x->level != y->level ? (x->level > y->level) - (x->level < y->level) : (x->index > y->index) - (x->index < y->index);
}

/* a stable sort of the kernels by level: 0 for a kernel that reads no other's roots, else
 * one more than the highest level among the kernels it reads from (which come before it) */
static void order_by_level(CgStep *s)
{
    int scratch[6];
    Rank *rank = xmalloc(sizeof *rank * ((size_t)s->nk + 1));
    for (int i = 0; i < s->nk; i++) {
        const int *ids;
        int n = cg_kernel_reads(&s->k[i], &ids, scratch);
        rank[i] = (Rank){0, i};
        for (int a = 0; a < n; a++) {
            int64_t off;
            int b = cg_storage(s, ids[a], &off), p = b >= 0 && s->role[b] == CG_ROOT ? s->producer[b] : -1;
            if (p >= 0 && p < i && rank[p].level + 1 > rank[i].level) rank[i].level = rank[p].level + 1;
        }
    }
    qsort(rank, (size_t)s->nk, sizeof *rank, cmp_rank);
    CgKernel *k = xmalloc(sizeof *k * ((size_t)s->nk + 1));
    s->level = xmalloc(sizeof *s->level * ((size_t)s->nk + 1));
    for (int i = 0; i < s->nk; i++) {
        k[i] = s->k[rank[i].index];
        s->level[i] = rank[i].level;
    }
    memcpy(s->k, k, sizeof *k * (size_t)s->nk);
    free(k);
    free(rank);
}

static void set_producers(CgStep *s)
{
    for (int i = 0; i < s->g->n; i++) s->producer[i] = -1;
    for (int i = 0; i < s->nk; i++)
        for (int j = 0; j < s->k[i].nroots; j++) s->producer[s->k[i].roots[j]] = i;
}

/* the arena the memory plan needs for the kernels in their present order */
static int64_t planned_bytes(CgStep *s, IrNode *const *keep, int nkeep)
{
    cg_memplan(s, keep, nkeep);
    free(s->offset);
    s->offset = NULL;
    return s->arena_bytes;
}

/* Level order, unless its memory plan needs more than LEVEL_SLACK times the fused order's
 * (both before outputs take their leaves' memory): kernels written to run one after the
 * other to bound memory — a validation's logits in row chunks — would all be live at once. */
#define LEVEL_SLACK 1.25

static void order_levels(CgStep *s, IrNode *const *keep, int nkeep)
{
    int64_t fused = planned_bytes(s, keep, nkeep);
    CgKernel *saved = xmalloc(sizeof *saved * ((size_t)s->nk + 1));
    memcpy(saved, s->k, sizeof *saved * (size_t)s->nk);
    order_by_level(s);
    if ((double)planned_bytes(s, keep, nkeep) > LEVEL_SLACK * (double)fused) {
        memcpy(s->k, saved, sizeof *saved * (size_t)s->nk);
        free(s->level);
        s->level = NULL;
    }
    free(saved);
    set_producers(s);
}

static void reset_kernels(CgStep *s)
{
    for (int i = 0; i < s->nk; i++) free_kernel(&s->k[i]);
    s->nk = 0;
}

#define KNAME "k_@@@@@@@@@@@@@@@@"   /* a placeholder as long as a real name */

static char *rename_func(char *src, const char *name)
{
    char *p = strstr(src, KNAME);
    if (p) memcpy(p, name, strlen(KNAME));
    return src;
}

/* shares one CgFunc between kernels whose source is equal */
static int make_funcs(CgStep *s, char *err, size_t errlen)
{
    s->funcs = xcalloc((size_t)s->nk, sizeof *s->funcs);
    for (int i = 0; i < s->nk; i++) {
        CgKernel *k = &s->k[i];
        if (k->kind != CG_LOOP) continue;
        char *c = NULL, *cu = NULL;
        int culprit;
        if (cg_emit_loop(s, k, CG_C, KNAME, &c, &culprit) || cg_emit_loop(s, k, CG_CUDA, KNAME, &cu, &culprit)) {
            snprintf(err, errlen, "codegen: kernel %d cannot be emitted", i);
            free(c);
            free(cu);
            return -1;
        }
        uint64_t h = cg_hash(cu, strlen(cu), cg_hash(c, strlen(c), 1469598103934665603ull));
        char name[24];
        snprintf(name, sizeof name, "k_%016llx", (unsigned long long)h);
        int f = 0;
        while (f < s->nfuncs && strcmp(s->funcs[f].name, name)) f++;
        if (f == s->nfuncs) {
            CgFunc *fn = &s->funcs[s->nfuncs++];
            memcpy(fn->name, name, sizeof name);
            fn->c_src = rename_func(c, name);     /* the placeholder has the name's length */
            fn->cuda_src = rename_func(cu, name);
        } else {
            free(c);
            free(cu);
        }
        k->func = f;
    }
    return 0;
}

/* "model.gptc:12: codegen: GATHER %7 …": the model line that made the node */
static void node_error(const IrNode *n, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s:%d: codegen: %s %%%d %s", n->src_file ? n->src_file : "?", n->src_line,
             ir_op_name(n->op), n->id, what);
}

static bool supported(const IrNode *n)
{
    IrClass c = ir_op_class(n->op);
    return n->dtype != IR_I32 || c == IRC_LEAF || c == IRC_MOVE || c == IRC_BINARY || c == IRC_GATHER ||
           n->op == IR_CAST;
}

static CgStep *fuse(const IrGraph *g, IrNode *const *keep, int nkeep, CgStore store, bool levels, char *err,
                    size_t errlen)
{
    for (int i = 0; i < g->n; i++)
        if (!supported(g->nodes[i])) {
            node_error(g->nodes[i], "computes i32 values, which only arithmetic, comparisons and data movement may",
                       err, errlen);
            return NULL;
        }
    CgStep *s = xcalloc(1, sizeof *s);
    s->g = g;
    s->role = xcalloc((size_t)g->n, sizeof *s->role);
    s->view_base = xcalloc((size_t)g->n, sizeof *s->view_base);
    s->view_off = xcalloc((size_t)g->n, sizeof *s->view_off);
    s->producer = xcalloc((size_t)g->n, sizeof *s->producer);
    s->k = xcalloc((size_t)g->n, sizeof *s->k);
    unsigned char *force = xcalloc((size_t)g->n, 1);
    int *seen = xcalloc((size_t)g->n + 1, sizeof *seen);
    initial_force(s, keep, nkeep, force);
    int bad = -1;
    assign_roles(s, force, 0);
    if (form_kernels(s, force, seen, &bad)) {
        node_error(g->nodes[bad], "has no kernel plan", err, errlen);
        free(force);
        free(seen);
        cg_step_free(s);
        return NULL;
    }
    free(force);
    free(seen);
    merge_across(s);
    set_producers(s);
    cg_assign_storage(s, store, keep, nkeep);
    if (levels) order_levels(s, keep, nkeep);
    cg_alias_outputs(s, keep, nkeep);
    if (make_funcs(s, err, errlen)) {
        cg_step_free(s);
        return NULL;
    }
    cg_memplan(s, keep, nkeep);
    return s;
}

CgStep *cg_fuse(const IrGraph *g, IrNode *const *keep, int nkeep, CgStore store, char *err, size_t errlen)
{
    return fuse(g, keep, nkeep, store, false, err, errlen);
}

CgStep *cg_fuse_levels(const IrGraph *g, IrNode *const *keep, int nkeep, CgStore store, char *err, size_t errlen)
{
    return fuse(g, keep, nkeep, store, true, err, errlen);
}

void cg_step_free(CgStep *s)
{
    if (!s) return;
    reset_kernels(s);
    for (int i = 0; i < s->nfuncs; i++) {
        free(s->funcs[i].c_src);
        free(s->funcs[i].cuda_src);
    }
    free(s->funcs);
    free(s->k);
    free(s->role);
    free(s->store);
    free(s->view_base);
    free(s->view_off);
    free(s->producer);
    free(s->alias);
    free(s->offset);
    free(s->level);
    free(s);
}
