/* roofline.c — a model of the fused step on one H100 SXM (cg_roofline), and the device
 * memory of a cuda executor (cg_device_memory, which runtime/cuda.c allocates by).
 *
 * Every launch the cuda backend makes for a kernel of the step is estimated as
 *
 *     t = launch + max(tensor-core FLOPs / TC, CUDA-core FLOPs / FP32, bytes / HBM) / occ
 *
 * occ = blocks / (waves · slots), slots = SMs × blocks resident per SM, waves = ⌈blocks /
 * slots⌉: the fraction of the GPU the launch keeps busy, its last partial wave included.
 * Loop kernels launch as cg_cuda_launch (and cg_cuda_launch2) say, with ptxas's registers
 * and shared memory; library calls as runtime/cuda.c launches them: operand conversions
 * (cg_to_bf16 / cg_to_f32) into the scratch region first; products as cuBLASLt tiles, one
 * per SM at a time; attention as cg_doc_ids then the passes of cuda_lib.c over the tiles
 * its mask lets it visit; scatter-add as cg_zero then the atomic scatter. Bytes are each
 * tensor read or written once (caches are assumed to catch the re-reads of tiles). */
#include "codegen/codegen.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

/* ---- the device: every constant, with where it comes from ----------------------------------- */
static const struct {
    double tc_flops;        /* 790e12 FLOP/s: the H100 SXM data sheet's dense BF16 tensor-core peak is
                             * 989 TFLOP/s (1,979 with sparsity); 790 (80 %) is what large cuBLASLt
                             * products reach */
    double fp32_flops;      /* 67e12 FLOP/s: data sheet, FP32 (SXM), an FMA counted as two */
    double hbm_bytes;       /* 3.0e12 B/s: data sheet HBM3 3.35 TB/s; ~90 % is what streaming kernels reach */
    double launch_s;        /* 3e-6 s: one kernel's cost inside a CUDA graph (launch and the gap to
                             * the next kernel, ~2-3 µs on Hopper in published microbenchmarks; the
                             * round upper figure until gpu-check measures it) */
    int sms;                /* 132 SMs: H100 SXM5 (data sheet, Hopper architecture whitepaper) */
    int regs_per_sm;        /* 65536 32-bit registers per SM (CUDA C++ Programming Guide, table of
                             * compute capabilities, 9.0) */
    int reg_unit;           /* 256: registers are allocated per warp in units of 256 (CUDA Occupancy
                             * Calculator, compute capability 9.0) */
    int smem_per_sm;        /* 233472 = 228 KB of shared memory per SM (Programming Guide, 9.0) */
    int smem_reserved;      /* 1024 B per block reserved by the system (Programming Guide, shared
                             * memory of compute capability 8.x/9.0) */
    int smem_unit;          /* 128 B: shared-memory allocation granularity (Occupancy Calculator, 9.0) */
    int threads_per_sm;     /* 2048 resident threads per SM (Programming Guide, 9.0) */
    int blocks_per_sm;      /* 32 resident blocks per SM (Programming Guide, 9.0) */
    int gemm_tile;          /* 128: cuBLASLt's sm_90 products compute 128 × 128 output tiles (its
                             * bf16 WGMMA kernels' common CTA tile; the SIMT float kernels' too) */
    int gemm_per_sm;        /* 1: one product tile per SM at a time (the tiles' pipelined shared-memory
                             * stages take most of the 228 KB) */
} H100 = {790e12, 67e12, 3.0e12, 3e-6, 132, 65536, 256, 233472, 1024, 128, 2048, 32, 128, 1};

/* cuda_lib.c's attention on CUDA cores (f32, and bf16 head dims that are no multiple of 16):
 * queries per block, keys per shared-memory tile, threads */
enum { ATTN_QT = 64, ATTN_KT = 32, ATTN_THREADS = 256, LIB_THREADS = 256, DOC_THREADS = 1024 };
/* … and on tensor cores (bf16, D a multiple of 16): 64 rows a block, 4 warps of 16 rows,
 * each warp stepping over the keys (or, key-major, the queries) its rows may see, 32 keys
 * a step in the forward, 16 in the backward; an mma.sync m16n8k16 is 2·16·8·16 FLOPs */
enum { TC_ROWS = 64, TC_THREADS = 128, TC_WARP_ROWS = 16, TC_MMA_FLOPS = 4096 };

/* ---- ptxas's log ------------------------------------------------------------------------- */

void cg_ptxas_parse(const char *log, CgPtxas *p)
{
    static const char key[] = "Compiling entry function '";
    p->f = NULL, p->n = 0;
    for (const char *e = log ? strstr(log, key) : NULL; e; ) {
        const char *name = e + strlen(key), *q = strchr(name, '\'');
        const char *next = strstr(name, key), *used = strstr(name, "Used ");
        e = next;
        if (!q || !used || (next && used > next)) continue;
        const char *eol = strchr(used, '\n'), *sm = strstr(used, " bytes smem");
        int smem = 0;
        if (sm && (!eol || sm < eol)) {
            while (sm > used && sm[-1] >= '0' && sm[-1] <= '9') sm--;
            smem = atoi(sm);
        }
        p->f = xrealloc(p->f, sizeof *p->f * (size_t)(p->n + 1));
        p->f[p->n++] = (CgPtxasFunc){xstrndup(name, (size_t)(q - name)), atoi(used + 5), smem};
    }
}

void cg_ptxas_free(CgPtxas *p)
{
    for (int i = 0; i < p->n; i++) free(p->f[i].name);
    free(p->f);
    p->f = NULL, p->n = 0;
}

static const CgPtxasFunc *ptxas_find(const CgPtxas *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->f[i].name, name)) return &p->f[i];
    return NULL;
}

/* ---- one launch -------------------------------------------------------------------------- */

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int imin(int a, int b) { return a < b ? a : b; }

/* blocks of `threads` threads with these registers and shared bytes resident on one SM */
static int resident_blocks(int threads, int regs, int smem)
{
    int warps = (threads + 31) / 32;
    int n = imin(H100.blocks_per_sm, H100.threads_per_sm / (warps * 32));
    int warp_regs = (int)ceil_div((int64_t)regs * 32, H100.reg_unit) * H100.reg_unit;
    if (warp_regs > 0) n = imin(n, H100.regs_per_sm / (warp_regs * warps));
    int block_smem = (int)ceil_div(smem + H100.smem_reserved, H100.smem_unit) * H100.smem_unit;
    n = imin(n, H100.smem_per_sm / block_smem);
    return n > 0 ? n : 1;
}

static double occupancy(int64_t blocks, int per_sm)
{
    int64_t slots = (int64_t)H100.sms * per_sm, waves = ceil_div(blocks > 0 ? blocks : 1, slots);
    return (double)(blocks > 0 ? blocks : 1) / (double)(waves * slots);
}

typedef struct {
    double tc, fp32, bytes;        /* tensor-core FLOPs, CUDA-core FLOPs, bytes moved */
    int64_t blocks;
    int per_sm;                    /* blocks resident per SM */
} Launch;

/* the time of launch l, split; *bound and *occ describe it */
static CgTime launch_time(const Launch *l, CgBound *bound, double *occ)
{
    double t[3] = {l->tc / H100.tc_flops, l->fp32 / H100.fp32_flops, l->bytes / H100.hbm_bytes};
    int b = 0;
    for (int i = 1; i < 3; i++)
        if (t[i] > t[b]) b = i;
    *occ = occupancy(l->blocks, l->per_sm);
    double work = t[b] * 1e3, launch = H100.launch_s * 1e3, under = work * (1 / *occ - 1);
    CgTime r = {.ms = launch + work + under, .under = under, .launch = launch};
    if (b == 0) r.tc = work;
    else if (b == 1) r.fp32 = work;
    else r.mem = work;
    *bound = launch >= work + under ? CG_BOUND_LAUNCH : b == 0 ? CG_BOUND_TC : b == 1 ? CG_BOUND_FP32 : CG_BOUND_MEM;
    return r;
}

void cg_time_add(CgTime *to, const CgTime *t)
{
    to->ms += t->ms, to->tc += t->tc, to->fp32 += t->fp32, to->mem += t->mem, to->under += t->under;
    to->launch += t->launch;
}

typedef struct {
    const CgStep *s;
    const CgPtxas *px;
    const CgWorkload *w;
    CgRoofline *r;
    double *longest;               /* by kernel: its longest launch so far (ms) */
    char *err;
    size_t errlen;
} Ctx;

/* l->per_sm from ptxas's figures of function fn, launched with `threads` threads */
static int resident(Ctx *c, const char *fn, int threads, Launch *l)
{
    const CgPtxasFunc *f = ptxas_find(c->px, fn);
    if (!f) {
        snprintf(c->err, c->errlen, "roofline: ptxas's log has no figures for %s", fn);
        return -1;
    }
    l->per_sm = resident_blocks(threads, f->regs, f->smem);
    return 0;
}

/* adds launch l of kernel k, counted as `kind` */
static void add(Ctx *c, int k, CgEstKind kind, const Launch *l)
{
    CgBound b;
    double occ;
    CgTime t = launch_time(l, &b, &occ);
    CgKernelEst *e = &c->r->k[k];
    if (t.ms >= c->longest[k]) c->longest[k] = t.ms, e->bound = b, e->occ = occ;
    cg_time_add(&e->t, &t);
    e->launches++;
    cg_time_add(&c->r->kind[kind], &t);
    cg_time_add(&c->r->total, &t);
    c->r->launches[kind]++;
}

/* A loop kernel is one launch, or two for a reduction split across blocks (emit.c): the
 * first reads the inputs and writes the partials, the second reads them and writes the
 * outputs, re-reading the inputs when it computes full-size roots (split_p2). The FLOPs go
 * with the first. */
static int loop_kernel(Ctx *c, int k)
{
    const CgKernel *kk = &c->s->k[k];
    const char *fn = c->s->funcs[kk->func].name;
    int threads;
    double rd = (double)kk->bytes_read, wr = (double)kk->bytes_written, part = (double)kk->part_bytes;
    bool split = kk->chunks > 1;
    Launch l = {.fp32 = kk->flops, .bytes = split ? rd + part : rd + wr};
    cg_cuda_launch(kk, &l.blocks, &threads);
    if (resident(c, fn, threads, &l)) return -1;
    add(c, k, CG_EST_LOOP, &l);
    if (!split) return 0;
    Launch l2 = {.bytes = part + wr + (kk->split_p2 ? rd : 0)};
    cg_cuda_launch2(kk, &l2.blocks, &threads);
    if (resident(c, fn, threads, &l2)) return -1;
    add(c, k, CG_EST_LOOP, &l2);
    return 0;
}

/* operand x of library op converted into the dtype it computes from, as cuda.c's operand()
 * does: cg_to_f32 from bf16, cg_to_bf16 otherwise, into the scratch region */
static int conversion(Ctx *c, int k, const IrNode *op, const IrNode *x)
{
    IrDtype have = cg_store_dtype(c->s, x->id);
    if (have == cg_operand_dtype(c->s, op)) return 0;
    int64_t n = ir_numel(x);
    Launch l = {.bytes = 6.0 * (double)n, .blocks = ceil_div(n, LIB_THREADS)};   /* 4 + 2 bytes an element */
    if (resident(c, have == IR_BF16 ? "cg_to_f32" : "cg_to_bf16", LIB_THREADS, &l)) return -1;
    add(c, k, CG_EST_CONVERT, &l);
    c->r->calls[CG_EST_CONVERT]++;
    return 0;
}

static int product(Ctx *c, int k)
{
    const IrNode *n = c->s->k[k].op, *a = n->in[0], *b = n->in[1];
    if (conversion(c, k, n, a) || conversion(c, k, n, b)) return -1;
    int nd = n->ndim;
    int64_t batch = 1, M = n->shape[nd - 2], N = n->shape[nd - 1], K = n->iattr[1] ? a->shape[nd - 2] : a->shape[nd - 1];
    for (int d = 0; d < nd - 2; d++) batch *= n->shape[d];
    bool bf16 = cg_operand_dtype(c->s, n) == IR_BF16;
    double flops = 2.0 * (double)batch * (double)M * (double)N * (double)K;
    Launch l = {.tc = bf16 ? flops : 0, .fp32 = bf16 ? 0 : flops,
                .bytes = (double)((ir_numel(a) + ir_numel(b)) * (bf16 ? 2 : 4) + ir_numel(n) * cg_elem_bytes(c->s, n->id)),
                .blocks = batch * ceil_div(M, H100.gemm_tile) * ceil_div(N, H100.gemm_tile), .per_sm = H100.gemm_per_sm};
    add(c, k, CG_EST_PRODUCT, &l);
    return 0;
}

/* the attention window in blocks as the kernels read it ((int)*window, at least 1): the
 * given value of its runtime scalar, a constant's value, else the whole sequence */
static int64_t window_blocks(const Ctx *c, const IrNode *w, int64_t T, int64_t B)
{
    while (w->nin == 1 && ir_op_class(w->op) == IRC_MOVE) w = w->in[0];
    double v = (double)ceil_div(T, B);
    if (w->op == IR_CONST) v = w->fattr[0];
    for (int i = 0; w->op == IR_SCALAR && w->name && i < c->w->nscalars; i++)
        if (!strcmp(c->w->scalars[i].name, w->name)) v = c->w->scalars[i].value;
    double whole = (double)ceil_div(T, B);   /* a longer window is the whole sequence too */
    return v > 1 ? (int64_t)(v < whole ? v : whole) : 1;
}

/* document index of position t: documents of L tokens, each opened by its eot */
static int64_t doc_of(int64_t t, int64_t L) { return L > 0 ? t / L : 0; }

/* the first key query q may see: the start of its window (blocks of B, W of them), or of
 * its document when that is later (cg_first_key) */
static int64_t first_key(int64_t q, int64_t B, int64_t W, int64_t L)
{
    int64_t k = (q / B - W + 1) * B, d = doc_of(q, L) * L;
    if (k < 0) k = 0;
    return L > 0 && k < d ? d : k;
}

/* (query, key) pairs in the tiles the query-major passes visit (cg_attn_rows, cg_attn_dq):
 * per block of QT queries, the key tiles from its first key (window and document start of
 * its first query, cg_first_key) to its last query */
static double query_major_pairs(int64_t T, int64_t B, int64_t W, int64_t L)
{
    double pairs = 0;
    for (int64_t q0 = 0; q0 < T; q0 += ATTN_QT) {
        int64_t q1 = q0 + ATTN_QT < T ? q0 + ATTN_QT : T, k = first_key(q0, B, W, L);
        pairs += (double)(q1 - q0) * ATTN_KT * (double)ceil_div(q1 - (k - k % ATTN_KT), ATTN_KT);
    }
    return pairs;
}

/* the same for the key-major pass (cg_attn_dkv): per block of keys, the query tiles up to
 * the end of its last key's window, stopping at the first tile of a later document */
static double key_major_pairs(int64_t T, int64_t B, int64_t W, int64_t L)
{
    double pairs = 0;
    for (int64_t k0 = 0; k0 < T; k0 += ATTN_QT) {
        int64_t k1 = k0 + ATTN_QT < T ? k0 + ATTN_QT : T, qend = ((k1 - 1) / B + W) * B;
        if (qend > T) qend = T;
        for (int64_t qt = k0 - k0 % ATTN_KT; qt < qend; qt += ATTN_KT) {
            if (doc_of(qt < T ? qt : T - 1, L) > doc_of(k1 - 1, L)) break;
            pairs += (double)(k1 - k0) * ATTN_KT;
        }
    }
    return pairs;
}

/* steps of g keys the warps of the query-major tensor-core passes take: per warp of 16
 * queries, from its first query's first visible key (window, document) down to a multiple
 * of g, to its last query */
static double tc_query_steps(int64_t T, int64_t B, int64_t W, int64_t L, int64_t g)
{
    double steps = 0;
    for (int64_t q0 = 0; q0 < T; q0 += TC_WARP_ROWS) {
        int64_t q1 = q0 + TC_WARP_ROWS < T ? q0 + TC_WARP_ROWS : T, k = first_key(q0, B, W, L);
        steps += (double)ceil_div(q1 - (k - k % g), g);
    }
    return steps;
}

/* steps of 16 queries the warps of the key-major pass take: per warp of 16 keys, from its
 * first key to the end of its last key's window or document */
static double tc_key_steps(int64_t T, int64_t B, int64_t W, int64_t L)
{
    double steps = 0;
    for (int64_t k0 = 0; k0 < T; k0 += TC_WARP_ROWS) {
        int64_t k1 = k0 + TC_WARP_ROWS < T ? k0 + TC_WARP_ROWS : T, qend = ((k1 - 1) / B + W) * B;
        if (qend > T) qend = T;
        if (L > 0 && qend > (doc_of(k1 - 1, L) + 1) * L) qend = (doc_of(k1 - 1, L) + 1) * L;
        if (qend > k0) steps += (double)ceil_div(qend - k0, TC_WARP_ROWS);
    }
    return steps;
}

/* the tensor-core passes: mma per step at head dim D — forward (32 keys): q·kᵀ D/4, p·v as a
 * bf16 pair hi + lo 2 · D/4; statistics (16 keys): q·kᵀ D/8; dq: q·kᵀ D/8, dout·vᵀ D/8,
 * dS·k as a pair 2 · D/8; dk, dv: q·kᵀ, dout·vᵀ, pᵀ·dout and dSᵀ·q, the last two pairs:
 * 6 · D/8 */
static int attention_tc(Ctx *c, int k, CgEstKind kind, int64_t W, int64_t L, double m, double stat, double ids)
{
    const IrNode *n = c->s->k[k].op, *q = n->in[0];
    bool bwd = n->op == IR_ATTENTION_BWD;
    int64_t T = q->shape[0], H = q->shape[1], D = q->shape[2], B = n->iattr[0];
    static const char *const names[] = {"cg_attn_tc_fwd_bf16", "cg_attn_tc_bwd_stats_bf16", "cg_attn_tc_bwd_dq_bf16",
                                        "cg_attn_tc_bwd_dkv_bf16"};
    const double reads[] = {3, 4, 4, 4}, writes[] = {1, 0, 1, 2}, stats[] = {1, 2, 2, 2};
    const double mma[] = {3.0 * (double)D / 4, (double)D / 8, (double)D / 2, 3.0 * (double)D / 4};
    for (int p = bwd ? 1 : 0; p < (bwd ? 4 : 1); p++) {
        double steps = p == 3 ? tc_key_steps(T, B, W, L) : tc_query_steps(T, B, W, L, p == 0 ? 32 : 16);
        Launch l = {.tc = steps * (double)H * mma[p] * TC_MMA_FLOPS, .bytes = (reads[p] + writes[p]) * m + stats[p] * stat + ids,
                    .blocks = ceil_div(T, TC_ROWS) * H};
        if (resident(c, names[p], TC_THREADS, &l)) return -1;
        add(c, k, kind, &l);
    }
    return 0;
}

static int attention(Ctx *c, int k)
{
    const IrNode *n = c->s->k[k].op, *q = n->in[0];
    bool bwd = n->op == IR_ATTENTION_BWD;
    for (int j = 0; j < 6; j++)
        if ((j < 3 || (bwd && j == 5)) && conversion(c, k, n, n->in[j])) return -1;
    CgEstKind kind = bwd ? CG_EST_ATTENTION_BWD : CG_EST_ATTENTION;
    int64_t T = q->shape[0], H = q->shape[1], D = q->shape[2], B = n->iattr[0];
    int64_t W = window_blocks(c, n->in[4], T, B), L = c->w->doc_len >= 1 ? (int64_t)c->w->doc_len : 0;
    Launch doc = {.bytes = 8.0 * (double)T, .blocks = 1};   /* tokens in, document ids out */
    if (resident(c, "cg_doc_ids", DOC_THREADS, &doc)) return -1;
    add(c, k, kind, &doc);
    bool bf16 = cg_operand_dtype(c->s, n) == IR_BF16;
    double m = (double)(T * H * D * (bf16 ? 2 : 4)), stat = (double)(H * T * 4), ids = 4.0 * (double)T;
    if (bf16 && D % 16 == 0) return attention_tc(c, k, kind, W, L, m, stat, ids);   /* as cuda.c picks it */
    double qp = query_major_pairs(T, B, W, L) * (double)(H * D), kp = bwd ? key_major_pairs(T, B, W, L) * (double)(H * D) : 0;
    /* per pass: its entry point, FLOPs per (pair · feature) — 2 for each product of a D-vector
     * pair: q·k, p·v (forward); q·k, p·v, Di (stats); q·k, dout·v, dS·k (dq); q·k, dout·v,
     * p·dout, dS·q (dk, dv) — the pairs it visits, and its bytes: q, k, v (and dout), the
     * statistics, the document ids, its outputs */
    static const char *const names[] = {"cg_attn_fwd", "cg_attn_bwd_stats", "cg_attn_bwd_dq", "cg_attn_bwd_dkv"};
    const double per[] = {4, 4, 6, 8}, reads[] = {3, 4, 4, 4}, writes[] = {1, 0, 1, 2}, stats[] = {1, 2, 2, 2};
    for (int p = bwd ? 1 : 0; p < (bwd ? 4 : 1); p++) {
        double flops = per[p] * (p == 3 ? kp : qp);
        Launch l = {.fp32 = flops, .bytes = (reads[p] + writes[p]) * m + stats[p] * stat + ids,
                    .blocks = ceil_div(T, ATTN_QT) * H};
        char fn[40];
        snprintf(fn, sizeof fn, "%s_%s", names[p], bf16 ? "bf16" : "f32");
        if (resident(c, fn, ATTN_THREADS, &l)) return -1;
        add(c, k, kind, &l);
    }
    return 0;
}

/* cg_zero clears the float sum, then one thread an element adds its row's element into it
 * with an atomic (read and write of the sum) */
static int scatter_add(Ctx *c, int k)
{
    const IrNode *n = c->s->k[k].op, *rows = n->in[0];
    int64_t cnt = ir_numel(n->in[1]), elems = ir_numel(rows), total = ir_numel(n);
    bool bf16 = cg_store_dtype(c->s, rows->id) == IR_BF16;
    Launch z = {.bytes = 4.0 * (double)total, .blocks = ceil_div(total, LIB_THREADS)};
    Launch l = {.fp32 = (double)elems, .bytes = (double)elems * ((bf16 ? 2 : 4) + 8) + 4.0 * (double)cnt,
                .blocks = ceil_div(elems, LIB_THREADS)};
    if (resident(c, "cg_zero", LIB_THREADS, &z) || resident(c, bf16 ? "cg_scatter_add_bf16" : "cg_scatter_add_f32", LIB_THREADS, &l))
        return -1;
    add(c, k, CG_EST_SCATTER_ADD, &z);
    add(c, k, CG_EST_SCATTER_ADD, &l);
    return 0;
}

int cg_roofline(const CgStep *s, const CgPtxas *px, const CgWorkload *w, CgRoofline *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->k = xcalloc((size_t)(s->nk > 0 ? s->nk : 1), sizeof *r->k);
    Ctx c = {s, px, w, r, xcalloc((size_t)(s->nk > 0 ? s->nk : 1), sizeof *c.longest), err, errlen};
    int rc = 0;
    for (int k = 0; k < s->nk && rc == 0; k++) {
        switch (s->k[k].kind) {
        case CG_LOOP: rc = loop_kernel(&c, k); r->calls[CG_EST_LOOP]++; break;
        case CG_MATMUL: rc = product(&c, k); r->calls[CG_EST_PRODUCT]++; break;
        case CG_ATTENTION: rc = attention(&c, k); r->calls[CG_EST_ATTENTION]++; break;
        case CG_ATTENTION_BWD: rc = attention(&c, k); r->calls[CG_EST_ATTENTION_BWD]++; break;
        case CG_SCATTER_ADD: rc = scatter_add(&c, k); r->calls[CG_EST_SCATTER_ADD]++; break;
        }
    }
    free(c.longest);
    if (rc) cg_roofline_free(r);
    return rc;
}

void cg_roofline_free(CgRoofline *r)
{
    free(r->k);
    r->k = NULL;
}

const char *cg_bound_name(CgBound b)
{
    static const char *const names[] = {"launch", "tc", "fp32", "mem"};
    return names[b];
}

const char *cg_est_kind_name(CgEstKind k)
{
    static const char *const names[] = {"loop", "product", "attention", "attention backward", "scatter-add", "conversions"};
    return names[k];
}

/* ---- device memory ----------------------------------------------------------------------- */

static size_t align_up(size_t n) { return (n + CG_DEVICE_ALIGN - 1) / CG_DEVICE_ALIGN * CG_DEVICE_ALIGN; }

/* scratch bytes a library op needs: every operand stored otherwise than it computes is
 * converted into its own float-sized slot (tokens and the window are read as they are) */
static size_t conversion_bytes(const CgStep *s, const IrNode *op)
{
    IrDtype want = cg_operand_dtype(s, op);
    size_t sum = 0;
    int nin = op->op == IR_MATMUL ? 2 : op->op == IR_ATTENTION ? 3 : op->op == IR_ATTENTION_BWD ? 6 : 0;
    for (int j = 0; j < nin; j++) {
        const IrNode *x = op->in[j];
        if (x->dtype == IR_I32 || (op->op != IR_MATMUL && (j == 3 || j == 4))) continue;
        if (cg_store_dtype(s, x->id) != want) sum += align_up((size_t)ir_numel(x) * 4);
    }
    return sum;
}

void cg_device_memory(const CgStep *s, int64_t *leaf_off, CgDeviceMem *m)
{
    const IrGraph *g = s->g;
    memset(m, 0, sizeof *m);
    m->arena = align_up((size_t)s->arena_bytes);
    for (int i = 0; i < g->n; i++) {
        if (leaf_off) leaf_off[i] = -1;
        if (s->role[i] != CG_LEAF) continue;
        if (leaf_off) leaf_off[i] = (int64_t)m->leaves;
        m->leaves += align_up((size_t)ir_numel(g->nodes[i]) * (size_t)cg_elem_bytes(s, i));
    }
    for (int k = 0; k < s->nk; k++) {
        const IrNode *op = s->k[k].op;
        if (!op) continue;
        size_t conv = conversion_bytes(s, op);
        if (conv > m->scratch) m->scratch = conv;
        if (op->op == IR_ATTENTION || op->op == IR_ATTENTION_BWD) {   /* lse and Di [2, H, T]; ids [T] */
            const IrNode *q = op->in[0];
            size_t w = align_up((size_t)2 * (size_t)q->shape[0] * (size_t)q->shape[1] * 4);
            size_t d = align_up((size_t)q->shape[0] * 4);
            if (w > m->work) m->work = w;
            if (d > m->doc) m->doc = d;
        }
    }
    m->lt_work = CG_LT_WORKSPACE;
    m->total = m->arena + m->leaves + m->scratch + m->work + m->doc + m->lt_work;
}
