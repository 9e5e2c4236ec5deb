/* cpu.c — the `cpu` backend: the fused step (codegen/) run on the CPU.
 *
 * At creation the graph is fused, its loop kernels are emitted as one C translation unit,
 * compiled through the kernel cache into a shared object and loaded with dlopen; memory
 * is one arena for every root (the static plan: its size is known before the first run)
 * plus one buffer per leaf. A run is the kernel sequence: generated loops, OpenBLAS
 * products, the attention and scatter-add kernels of cpu_kernels.c. Everything is float32
 * (i32 for integer inputs). */
#include "runtime/backend.h"
#include "base/base.h"

#include "codegen/codegen.h"
#include "runtime/cpu_kernels.h"
#include "runtime/ref_kernels.h"

#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef void (*LoopFn)(void *const *args);

struct RtCpu {
    const IrGraph *g;
    CgStep *s;
    void *so;                  /* the loaded shared object */
    LoopFn *fn;                /* by CgStep.funcs index */
    void ***args;              /* by kernel: argument pointers of loop kernels */
    char *arena;
    void **leaf;               /* by node id: leaf buffers (PARAM, INPUT, SCALAR, ROPE_*) */
    bool *borrowed;            /* by node id: the leaf is another executor's memory (rt_cpu_share) */
    size_t leaf_bytes;
    int32_t *doc;              /* attention scratch: document ids [T] */
    RtStats stats;
    bool args_stale;           /* a leaf moved (rt_cpu_share, rt_cpu_own): rebind before the next run */
    int *group_end;            /* by kernel: the end of its group (build_groups) */
    int *order;                /* the kernels in the order a group hands them out */
    int groups, grouped;       /* groups of two or more kernels, and the kernels in them */
};

/* where node id's elements live (a leaf buffer, or the arena) */
static void *data_of(const RtCpu *c, int id)
{
    int64_t off;
    int b = cg_storage(c->s, id, &off);
    if (b < 0) return NULL;
    char *base = c->s->role[b] == CG_LEAF ? c->leaf[b] : c->arena + c->s->offset[b];
    return base ? base + off * 4 : NULL;
}

static size_t leaf_bytes(const RtCpu *c)
{
    size_t bytes = 0;
    for (int i = 0; i < c->g->n; i++)
        if (c->s->role[i] == CG_LEAF) bytes += (size_t)ir_numel(c->g->nodes[i]) * 4;
    return bytes;
}

/* Large tensors in 2 MiB pages where the system gives them on request (transparent huge
 * pages in "madvise" mode): a product reading a transposed operand steps a row — a page or
 * more — at every element, and with 4 KiB pages nearly every such step misses the TLB. */
static void *huge_pages(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    enum { HUGE = 2 << 20 };
    uintptr_t lo = ((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1), hi = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE - 1);
    if (p && hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);   /* advice: a refusal changes nothing */
#else
    (void)n;
#endif
    return p;
}

/* The memory plan (arena and leaves), or an error that states it: a plan larger than the
 * machine's memory is refused before anything is touched, rather than left to the kernel's
 * out-of-memory killer in the middle of a step. */
static int alloc_plan(RtCpu *c, char *err, size_t errlen)
{
    size_t arena = (size_t)c->s->arena_bytes, leaves = leaf_bytes(c);
    char a[32], l[32], t[32], why[160] = "";
    if (!exceeds_memory((double)(arena + leaves), why, sizeof why) &&
        (c->arena = huge_pages(try_calloc(arena, 1, "the arena", why, sizeof why), arena))) {
        c->leaf = xcalloc((size_t)c->g->n, sizeof *c->leaf);
        c->borrowed = xcalloc((size_t)c->g->n, sizeof *c->borrowed);
        for (int i = 0; i < c->g->n && !why[0]; i++)
            if (c->s->role[i] == CG_LEAF)
                c->leaf[i] = huge_pages(try_calloc((size_t)ir_numel(c->g->nodes[i]), 4, "the leaves", why, sizeof why),
                                        (size_t)ir_numel(c->g->nodes[i]) * 4);
    }
    if (!why[0]) {
        c->leaf_bytes = leaves;
        return 0;
    }
    snprintf(err, errlen, "cpu: " OUT_OF_MEMORY ": the memory plan needs %s (arena %s, leaves %s); %s",
             fmt_bytes((double)(arena + leaves), t, sizeof t), fmt_bytes((double)arena, a, sizeof a),
             fmt_bytes((double)leaves, l, sizeof l), why);
    return -1;
}

/* leaves the graph defines itself: the rotary tables and index tensors */
static void init_computed_leaves(RtCpu *c)
{
    for (int i = 0; i < c->g->n; i++) {
        const IrNode *n = c->g->nodes[i];
        if (c->s->role[i] != CG_LEAF) continue;
        if (n->op == IR_ROPE_COS || n->op == IR_ROPE_SIN)
            rt_ref_rope_f32(n->op == IR_ROPE_SIN, n->shape[0], n->iattr[0], n->fattr[0], c->leaf[i]);
        else if (n->op == IR_IOTA && n->dtype == IR_I32)
            rt_ref_iota_i32(n->ndim, n->shape, (int)n->iattr[0], c->leaf[i]);
        else if (n->op == IR_IOTA)
            rt_ref_iota_f32(n->ndim, n->shape, (int)n->iattr[0], c->leaf[i]);
    }
}

static int load_kernels(RtCpu *c, char *err, size_t errlen)
{
    char *src = cg_step_source(c->s, CG_C), path[4200];
    bool cached;
    int rc = cg_compile_c(src, path, sizeof path, &cached, err, errlen);
    free(src);
    if (rc) return -1;
    c->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!c->so) {
        snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
        return -1;
    }
    c->fn = xcalloc((size_t)c->s->nfuncs, sizeof *c->fn);
    for (int i = 0; i < c->s->nfuncs; i++) {
        *(void **)&c->fn[i] = dlsym(c->so, c->s->funcs[i].name);
        if (!c->fn[i]) {
            snprintf(err, errlen, "%s lacks %s (a stale cache entry? remove it)", path, c->s->funcs[i].name);
            return -1;
        }
    }
    return 0;
}

static void bind_args(RtCpu *c)
{
    if (!c->args) c->args = xcalloc((size_t)c->s->nk, sizeof *c->args);
    for (int k = 0; k < c->s->nk; k++) {
        const CgKernel *kk = &c->s->k[k];
        if (kk->kind != CG_LOOP) continue;
        if (!c->args[k]) c->args[k] = xcalloc((size_t)kk->nargs, sizeof **c->args);
        for (int j = 0; j < kk->nargs; j++) c->args[k][j] = data_of(c, kk->args[j]);
    }
}

/* ---- groups ------------------------------------------------------------------------------
 * Kernels too small to keep two threads busy each (Muon's products of 256-row matrices, the
 * loops between them) lose much of their time to the fork and barrier of their parallel
 * region and to products split into halves. The step is fused in level order
 * (cg_fuse_levels), so kernels of independent chains stand next to each other; a run of
 * such small neighbours whose memory does not meet (none writes what another reads or
 * writes: the memory plan may reuse a buffer between them, so this is checked on the
 * addresses, not the graph) is one group, its kernels spread over the threads, one kernel
 * a thread (nested regions run on one thread). */
enum { GROUP_MAX = 64 };
#define GROUP_LOOP_POINTS (1 << 20)       /* points of a loop kernel small enough to group */
#define GROUP_PRODUCT_FLOPS (1LL << 28)   /* multiply-adds (batch·M·N·K) of a product */

/* a loop kernel's points, or a product's multiply-adds (batch·M·N·K) */
static int64_t work_of(const CgKernel *k)
{
    int64_t n = 1;
    if (k->kind == CG_LOOP)
        for (int d = 0; d < k->ndim; d++) n *= k->dom[d];
    else if (k->kind == CG_MATMUL) {
        const IrNode *r = k->op, *a = r->in[0];
        n = ir_numel(r) * (r->iattr[1] ? a->shape[r->ndim - 2] : a->shape[r->ndim - 1]);
    }
    return n;
}

static bool groupable(const CgKernel *k)
{
    if (k->kind == CG_LOOP) return work_of(k) <= GROUP_LOOP_POINTS;
    return k->kind == CG_MATMUL && work_of(k) <= GROUP_PRODUCT_FLOPS;   /* not attention: it shares
                                                                          * the document-id scratch */
}

typedef struct {
    int64_t cost;
    int k;
} Job;

static int longest_first(const void *a, const void *b)
{
    const Job *x = a, *y = b;
    return x->cost != y->cost ? (x->cost < y->cost) - (x->cost > y->cost) : (x->k > y->k) - (x->k < y->k);
}

/* c->order[k, end): the group's kernels, the longest first (a loop's point costs about as
 * much as 8 of a product's multiply-adds), so that no thread is left alone with a long one
 * at the end */
static void order_group(RtCpu *c, int k, int end)
{
    Job job[GROUP_MAX];
    for (int j = k; j < end; j++) {
        const CgKernel *kk = &c->s->k[j];
        job[j - k] = (Job){work_of(kk) * (kk->kind == CG_LOOP ? 8 : 1), j};
    }
    qsort(job, (size_t)(end - k), sizeof *job, longest_first);
    for (int j = k; j < end; j++) c->order[j] = job[j - k].k;
}

typedef struct {
    const char *lo, *hi;
    bool written;
} Span;

/* the memory kernel k touches: its reads and its roots, each its storage's whole buffer;
 * -1 when they are more than cap */
static int spans_of(const RtCpu *c, int k, Span *sp, int cap)
{
    const CgKernel *kk = &c->s->k[k];
    int scratch[6], n = 0;
    const int *ids;
    int nr = cg_kernel_reads(kk, &ids, scratch);
    if (nr + kk->nroots > cap) return -1;
    for (int i = 0; i < nr + kk->nroots; i++) {
        int id = i < nr ? ids[i] : kk->roots[i - nr];
        int64_t off;
        int b = cg_storage(c->s, id, &off);
        const char *p = b >= 0 ? data_of(c, b) : NULL;
        if (!p) continue;
        bool w = false;
        for (int r = 0; r < kk->nroots; r++) w |= cg_storage(c->s, kk->roots[r], &off) == b;
        sp[n++] = (Span){p, p + ir_numel(c->g->nodes[b]) * 4, w};
    }
    return n;
}

static bool meet(const Span *a, int na, const Span *b, int nb)
{
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if ((a[i].written || b[j].written) && a[i].lo < b[j].hi && b[j].lo < a[i].hi) return true;
    return false;
}

static void build_groups(RtCpu *c)
{
    enum { SPANS = 64 };
    int nk = c->s->nk;
    if (!c->group_end) {
        c->group_end = xcalloc((size_t)nk + 1, sizeof *c->group_end);
        c->order = xcalloc((size_t)nk + 1, sizeof *c->order);
    }
    c->groups = c->grouped = 0;
    Span *sp = xmalloc(sizeof *sp * GROUP_MAX * SPANS);
    int nsp[GROUP_MAX];
    for (int k = 0; k < nk;) {
        int end = k + 1;
        if (groupable(&c->s->k[k]) && omp_get_max_threads() > 1 && (nsp[0] = spans_of(c, k, sp, SPANS)) >= 0) {
            while (end < nk && end - k < GROUP_MAX && c->s->level && c->s->level[end] == c->s->level[k] &&
                   groupable(&c->s->k[end])) {
                Span *mine = sp + (end - k) * SPANS;
                int n = nsp[end - k] = spans_of(c, end, mine, SPANS), j = k;
                if (n < 0) break;
                while (j < end && !meet(sp + (j - k) * SPANS, nsp[j - k], mine, n)) j++;
                if (j < end) break;
                end++;
            }
        }
        for (int j = k; j < end; j++) c->group_end[j] = end;
        order_group(c, k, end);
        if (end - k > 1) {
            c->groups++;
            c->grouped += end - k;
        }
        k = end;
    }
    free(sp);
}

RtCpu *rt_cpu_new(const IrGraph *g, IrNode *const *keep, int nkeep, char *err, size_t errlen)
{
    openblas_set_num_threads(1);   /* OpenMP threads split the products (cpu_kernels.c) */
    omp_set_max_active_levels(1);  /* a grouped kernel's own parallel region: one thread */
    RtCpu *c = xcalloc(1, sizeof *c);
    c->g = g;
    if (!(c->s = cg_fuse_levels(g, keep, nkeep, CG_STORE_F32, err, errlen))) {
        free(c);
        return NULL;
    }
    if (alloc_plan(c, err, errlen) || load_kernels(c, err, errlen)) {
        rt_cpu_free(c);
        return NULL;
    }
    init_computed_leaves(c);
    bind_args(c);
    build_groups(c);
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i]->op == IR_ATTENTION || g->nodes[i]->op == IR_ATTENTION_BWD) {
            c->doc = xcalloc((size_t)g->nodes[i]->shape[g->nodes[i]->op == IR_ATTENTION ? 0 : 1], sizeof *c->doc);
            break;
        }
    return c;
}

void rt_cpu_set(RtCpu *c, const IrNode *leaf, const double *data)
{
    if (!c->leaf[leaf->id]) { fprintf(stderr, "cpu: node %%%d is not a leaf\n", leaf->id); abort(); }
    int64_t n = ir_numel(leaf);
    if (leaf->dtype == IR_I32) {
        int32_t *y = c->leaf[leaf->id];
        for (int64_t i = 0; i < n; i++) y[i] = (int32_t)data[i];
    } else {
        float *y = c->leaf[leaf->id];
        for (int64_t i = 0; i < n; i++) y[i] = (float)data[i];
    }
}

void rt_cpu_set_i32(RtCpu *c, const IrNode *leaf, const int32_t *data)
{
    if (!c->leaf[leaf->id]) { fprintf(stderr, "cpu: node %%%d is not a leaf\n", leaf->id); abort(); }
    int64_t n = ir_numel(leaf);
    if (leaf->dtype == IR_I32) memcpy(c->leaf[leaf->id], data, sizeof *data * (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) ((float *)c->leaf[leaf->id])[i] = (float)data[i];
}

void rt_cpu_set_scalar(RtCpu *c, const char *name, double v)
{
    for (int i = 0; i < c->g->n; i++) {
        const IrNode *n = c->g->nodes[i];
        if (n->op != IR_SCALAR || strcmp(n->name, name) || !c->leaf[i]) continue;
        for (int64_t j = 0; j < ir_numel(n); j++) ((float *)c->leaf[i])[j] = (float)v;
    }
}

/* integer inputs used as row indices must lie in [0, V) */
static int check_index(const RtCpu *c, const IrNode *user, const IrNode *idx, int64_t V, char *err, size_t errlen)
{
    const int32_t *p = data_of(c, idx->id);
    if (!p || c->s->role[idx->id] != CG_LEAF || idx->dtype != IR_I32) return 0;
    for (int64_t i = 0; i < ir_numel(idx); i++)
        if (p[i] < 0 || p[i] >= V) {
            snprintf(err, errlen, "%s:%d: %s %%%d: index %d is outside [0, %lld)", user->src_file ? user->src_file : "?",
                     user->src_line, ir_op_name(user->op), user->id, p[i], (long long)V);
            return -1;
        }
    return 0;
}

static int check_inputs(const RtCpu *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->g->n; i++) {
        const IrNode *n = c->g->nodes[i];
        int rc = 0;
        if (n->op == IR_GATHER) rc = check_index(c, n, n->in[1], n->in[0]->shape[0], err, errlen);
        else if (n->op == IR_SCATTER_ADD) rc = check_index(c, n, n->in[1], n->iattr[0], err, errlen);
        else if (n->op == IR_CROSS_ENTROPY || n->op == IR_CE_BWD)
            rc = check_index(c, n, n->in[1], n->in[0]->shape[1], err, errlen);
        if (rc) return -1;
    }
    return 0;
}

static void run_matmul(const RtCpu *c, const IrNode *n)
{
    const IrNode *a = n->in[0];
    int nd = n->ndim;
    int64_t batch = 1;
    for (int d = 0; d < nd - 2; d++) batch *= n->shape[d];
    int M = (int)n->shape[nd - 2], N = (int)n->shape[nd - 1];
    int K = (int)(n->iattr[1] ? a->shape[nd - 2] : a->shape[nd - 1]);
    if (a == n->in[1] && n->iattr[0] != n->iattr[1]) {   /* x xᵀ or xᵀ x: symmetric */
        rt_cpu_gram(data_of(c, a->id), data_of(c, n->id), batch, M, K, (int)n->iattr[1]);
        return;
    }
    rt_ref_matmul_f32(data_of(c, a->id), data_of(c, n->in[1]->id), data_of(c, n->id), batch, M, N, K, (int)n->iattr[1],
                  (int)n->iattr[0]);
}

static int run_attention(RtCpu *c, const IrNode *n, char *err, size_t errlen)
{
    const IrNode *q = n->in[0];
    int T = (int)q->shape[0], H = (int)q->shape[1], D = (int)q->shape[2];
    float w = *(const float *)data_of(c, n->in[4]->id);
    if (!(w >= -1e9f && w <= 1e9f)) {
        snprintf(err, errlen, "%s %%%d: window %g is not a valid number of blocks", ir_op_name(n->op), n->id, w);
        return -1;
    }
    rt_ref_doc_ids(data_of(c, n->in[3]->id), T, (int32_t)n->iattr[1], c->doc);
    const float *qd = data_of(c, q->id), *kd = data_of(c, n->in[1]->id), *vd = data_of(c, n->in[2]->id);
    float *out = data_of(c, n->id);
    int block = (int)n->iattr[0], window = (int)lroundf(w);
    if (n->op == IR_ATTENTION) rt_cpu_attn_fwd(qd, kd, vd, c->doc, T, H, D, block, window, n->fattr[0], out);
    else {
        int64_t m = (int64_t)T * H * D;
        rt_cpu_attn_bwd(data_of(c, n->in[5]->id), qd, kd, vd, c->doc, T, H, D, block, window, n->fattr[0], out,
                        out + m, out + 2 * m);
    }
    return 0;
}

/* the multiplications and additions a MATMUL kernel does: half for a Gram product (the
 * upper triangle and the diagonal) */
static double matmul_flops(const IrNode *n)
{
    const IrNode *a = n->in[0];
    int nd = n->ndim;
    double k = (double)(n->iattr[1] ? a->shape[nd - 2] : a->shape[nd - 1]), full = 2.0 * (double)ir_numel(n) * k;
    if (a != n->in[1] || n->iattr[0] == n->iattr[1]) return full;
    double rows = (double)n->shape[nd - 1];
    return full * (rows + 1) / (2 * rows);
}

/* kernel k's time into the sums of its kind */
static void add_time(RtStats *st, const CgKernel *k, double sec)
{
    switch (k->kind) {
    case CG_LOOP: st->loop_sec += sec; break;
    case CG_MATMUL:
        st->product_sec += sec;
        st->product_flops += matmul_flops(k->op);
        break;
    case CG_ATTENTION:
    case CG_ATTENTION_BWD: st->attention_sec += sec; break;
    case CG_SCATTER_ADD: st->scatter_sec += sec; break;
    }
}

/* GPTC_PROFILE=1: the slowest kernels of each run on stderr */
static void profile_report(const RtCpu *c, const double *sec)
{
    enum { SHOWN = 12 };
    int order[SHOWN], n = 0;
    double total = 0;
    for (int k = 0; k < c->s->nk; k++) {
        total += sec[k];
        if (n == SHOWN && sec[k] <= sec[order[SHOWN - 1]]) continue;   /* not among the slowest */
        int j = n < SHOWN ? n++ : SHOWN - 1;
        while (j > 0 && sec[order[j - 1]] < sec[k]) { order[j] = order[j - 1]; j--; }
        order[j] = k;
    }
    RtStats st = {0};
    for (int k = 0; k < c->s->nk; k++) add_time(&st, &c->s->k[k], sec[k]);
    fprintf(stderr, "cpu profile: %.1f ms in %d kernels: products %.1f ms (%.0f GFLOP/s), attention %.1f ms, loop "
            "kernels %.1f ms, scatter-adds %.1f ms; slowest:\n", total * 1e3, c->s->nk, st.product_sec * 1e3,
            st.product_sec > 0 ? st.product_flops / st.product_sec / 1e9 : 0, st.attention_sec * 1e3, st.loop_sec * 1e3,
            st.scatter_sec * 1e3);
    for (int i = 0; i < n; i++) {
        const CgKernel *k = &c->s->k[order[i]];
        const IrNode *r = c->g->nodes[k->roots[0]];
        char shape[96];
        ir_shape_str(k->kind == CG_LOOP ? k->ndim : r->ndim, k->kind == CG_LOOP ? k->dom : r->shape, shape, sizeof shape);
        fprintf(stderr, "  %8.2f ms  #%d %s %s axis=%d %s:%d\n", sec[order[i]] * 1e3, order[i],
                k->kind == CG_LOOP ? c->s->funcs[k->func].name : ir_op_name(r->op), shape, k->axis,
                r->src_file ? r->src_file : "?", r->src_line);
    }
}

static int run_kernel(RtCpu *c, int k, char *err, size_t errlen)
{
    const CgKernel *kk = &c->s->k[k];
    const IrNode *n = kk->op;
    switch (kk->kind) {
    case CG_LOOP: c->fn[kk->func](c->args[k]); break;
    case CG_MATMUL: run_matmul(c, n); break;
    case CG_ATTENTION:
    case CG_ATTENTION_BWD: return run_attention(c, n, err, errlen);
    case CG_SCATTER_ADD: {
        int64_t cnt = ir_numel(n->in[1]), row = cnt ? ir_numel(n->in[0]) / cnt : 0;
        rt_cpu_scatter_add(data_of(c, n->in[0]->id), data_of(c, n->in[1]->id), cnt, n->iattr[0], row,
                           data_of(c, n->id));
        break;
    }
    }
    return 0;
}

int rt_cpu_run(RtCpu *c, char *err, size_t errlen)
{
    if (check_inputs(c, err, errlen)) return -1;
    if (c->args_stale) {
        bind_args(c);
        build_groups(c);
        c->args_stale = false;
    }
    const char *pe = getenv("GPTC_PROFILE");
    double *sec = pe && *pe && strcmp(pe, "0") ? xcalloc((size_t)c->s->nk, sizeof *sec) : NULL;
    int rc = 0;
    for (int k = 0, end; k < c->s->nk && rc == 0; k = end) {
        end = c->group_end[k];
        double t0 = clock_seconds(), own[GROUP_MAX], sum = 0;
        if (end - k == 1) rc = run_kernel(c, k, err, errlen);
        else {
#pragma omp parallel for schedule(dynamic, 1)
            for (int j = k; j < end; j++) {   /* loops and products: no errors */
                double tj = clock_seconds();
                run_kernel(c, c->order[j], NULL, 0);
                own[c->order[j] - k] = clock_seconds() - tj;
            }
        }
        double wall = clock_seconds() - t0;
        for (int j = k; j < end && end - k > 1; j++) sum += own[j - k];
        for (int j = k; j < end; j++) {   /* a group's time shared by the kernels' own times */
            double dt = end - k == 1 ? wall : sum > 0 ? wall * own[j - k] / sum : wall / (end - k);
            add_time(&c->stats, &c->s->k[j], dt);
            if (sec) sec[j] = dt;
        }
    }
    c->stats.runs++;
    if (sec && rc == 0) profile_report(c, sec);
    free(sec);
    return rc;
}

void rt_cpu_stats(RtCpu *c, RtStats *out, bool reset)
{
    *out = c->stats;
    out->kernels = c->s->nk;
    out->groups = c->groups;
    out->grouped = c->grouped;
    if (reset) memset(&c->stats, 0, sizeof c->stats);
}

void rt_cpu_get(const RtCpu *c, const IrNode *n, double *out)
{
    const void *p = data_of(c, n->id);
    if (!p) { fprintf(stderr, "cpu: node %%%d has no memory (not kept)\n", n->id); abort(); }
    int64_t m = ir_numel(n);
    if (n->dtype == IR_I32)
        for (int64_t i = 0; i < m; i++) out[i] = ((const int32_t *)p)[i];
    else
        for (int64_t i = 0; i < m; i++) out[i] = ((const float *)p)[i];
}

void rt_cpu_copy(RtCpu *dst, const IrNode *leaf, const RtCpu *src, const IrNode *n)
{
    const void *from = data_of(src, n->id);
    if (!dst->leaf[leaf->id] || !from || ir_numel(leaf) != ir_numel(n)) {
        fprintf(stderr, "cpu: cannot copy %%%d into leaf %%%d\n", n->id, leaf->id);
        abort();
    }
    if (dst->leaf[leaf->id] != from)   /* an output computed in the leaf it replaces: there already */
        memcpy(dst->leaf[leaf->id], from, (size_t)ir_numel(n) * 4);
}

bool rt_cpu_share(RtCpu *dst, const IrNode *leaf, const RtCpu *src, const IrNode *n)
{
    void *from = data_of(src, n->id);
    if (!dst->leaf[leaf->id] || !from || ir_numel(leaf) != ir_numel(n) || (leaf->dtype == IR_I32) != (n->dtype == IR_I32))
        return false;
    if (dst->leaf[leaf->id] == from) return true;
    if (!dst->borrowed[leaf->id]) {
        free(dst->leaf[leaf->id]);
        dst->leaf_bytes -= (size_t)ir_numel(leaf) * 4;
    }
    dst->leaf[leaf->id] = from;
    dst->borrowed[leaf->id] = true;
    dst->args_stale = true;   /* loop kernels hold argument pointers */
    return true;
}

bool rt_cpu_own(RtCpu *c, const IrNode *leaf)
{
    if (!c->borrowed || !c->borrowed[leaf->id]) return c->leaf && c->leaf[leaf->id];
    c->leaf[leaf->id] = xcalloc((size_t)ir_numel(leaf), 4);
    c->borrowed[leaf->id] = false;
    c->leaf_bytes += (size_t)ir_numel(leaf) * 4;
    c->args_stale = true;
    return true;
}

void rt_cpu_accumulate(RtCpu *dst, const IrNode *leaf, const RtCpu *src, const IrNode *n, double scale, bool first)
{
    float *y = dst->leaf[leaf->id];
    const float *x = data_of(src, n->id);
    int64_t m = ir_numel(n);
    if (!y || !x || (const float *)y == x || ir_numel(leaf) != m || leaf->dtype == IR_I32 || n->dtype == IR_I32) {
        fprintf(stderr, "cpu: cannot add %%%d into leaf %%%d\n", n->id, leaf->id);
        abort();
    }
    const float s = (float)scale;
#pragma omp parallel for if (m > 65536) schedule(static)
    for (int64_t i = 0; i < m; i++) y[i] = first ? s * x[i] : y[i] + s * x[i];
}

size_t rt_cpu_bytes(const RtCpu *c) { return (size_t)c->s->arena_bytes + c->leaf_bytes; }

void rt_cpu_free(RtCpu *c)
{
    if (!c) return;
    if (c->args)
        for (int k = 0; k < c->s->nk; k++) free(c->args[k]);
    free(c->args);
    if (c->leaf)
        for (int i = 0; i < c->g->n; i++)
            if (!c->borrowed[i]) free(c->leaf[i]);
    free(c->leaf);
    free(c->borrowed);
    free(c->fn);
    free(c->group_end);
    free(c->order);
    if (c->so) dlclose(c->so);
    free(c->arena);
    free(c->doc);
    cg_step_free(c->s);
    free(c);
}
