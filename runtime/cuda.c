/* cuda.c — the `cuda` backend: the fused step (codegen/) on an NVIDIA GPU.
 *
 * At creation the graph is fused with a storage precision (codegen/storage.c: bf16
 * activations and weights, or all float32), the step's CUDA source (loop kernels and the
 * library kernels of cuda_lib.c) is compiled by NVRTC through the kernel cache into one
 * cubin for the device's architecture and loaded with cuModuleLoadData. Device memory is
 * ONE allocation, laid out as
 *
 *     [ memory-plan arena | leaves | operand scratch | attention workspace, doc ids | cuBLASLt workspace ]
 *
 * so the peak is known before the first run. A run is the kernel sequence: generated
 * loops, cuBLASLt products (bf16 or float operands, float accumulation, transposes and
 * batches as layouts), the attention and scatter-add kernels. The first run captures the
 * sequence as a CUDA graph on the stream; later runs replay it (GPTC_CUDA_GRAPH=0 launches
 * kernel by kernel instead). Scalars (the learning-rate multiplier, the window) are device
 * memory the kernels read, so a replayed graph follows the schedules.
 *
 * Runs are asynchronous: uploads (rt_gpu_set…) are enqueued behind them on the stream;
 * rt_gpu_get waits for the stream, and a device error surfaces there (reported, then the
 * process exits: the context is lost). */
#include "runtime/backend.h"
#include "base/base.h"

#include "codegen/codegen.h"
#include "runtime/cuda_api.h"
#include "runtime/cuda_profile.h"
#include "runtime/ref_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* L_ATTN_TC_*: the tensor-core attention (bf16, head dims multiples of 16), in both rows */
enum { L_DOC, L_ATTN_FWD, L_ATTN_STATS, L_ATTN_DQ, L_ATTN_DKV, L_ATTN_TC_FWD, L_ATTN_TC_STATS, L_ATTN_TC_DQ,
       L_ATTN_TC_DKV, L_ZERO, L_SCATTER, L_TO_BF16, L_TO_F32, L_NFN };
static const char *const lib_names[2][L_NFN] = {
    {"cg_doc_ids", "cg_attn_fwd_f32", "cg_attn_bwd_stats_f32", "cg_attn_bwd_dq_f32", "cg_attn_bwd_dkv_f32",
     "cg_attn_tc_fwd_bf16", "cg_attn_tc_bwd_stats_bf16", "cg_attn_tc_bwd_dq_bf16", "cg_attn_tc_bwd_dkv_bf16", "cg_zero",
     "cg_scatter_add_f32", "cg_to_bf16", "cg_to_f32"},
    {"cg_doc_ids", "cg_attn_fwd_bf16", "cg_attn_bwd_stats_bf16", "cg_attn_bwd_dq_bf16", "cg_attn_bwd_dkv_bf16",
     "cg_attn_tc_fwd_bf16", "cg_attn_tc_bwd_stats_bf16", "cg_attn_tc_bwd_dq_bf16", "cg_attn_tc_bwd_dkv_bf16", "cg_zero",
     "cg_scatter_add_bf16", "cg_to_bf16", "cg_to_f32"},
};

/* one cuBLASLt product, described once at creation */
typedef struct {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} Gemm;

struct RtGpu {
    const IrGraph *g;
    CgStep *s;
    CUmodule mod;
    CUfunction *fn;                 /* by CgStep.funcs index */
    CUfunction lib[2][L_NFN];       /* [f32, bf16] */
    CUstream stream;
    CUdeviceptr mem;                /* the one allocation */
    size_t bytes;
    CUdeviceptr leaves, scratch, work, doc, lt_work;
    int64_t *leaf_off;              /* by node id: byte offset of a leaf in the leaf region, -1 */
    int64_t *index_bound;           /* by node id: i32 leaves used as indices must lie below this */
    CUdeviceptr **args;             /* by kernel: argument values of loop kernels */
    Gemm *gemm;                     /* by kernel (CG_MATMUL) */
    cublasLtHandle_t lt;
    CUgraphExec graph;
    int use_graph;
    IrNode **allreduce;             /* nodes averaged across ranks once produced (NCCL) */
    int nallreduce;
    char bad_input[256];            /* an index out of range, reported by the next run */
    char **label;                   /* by node id, for the emulator's messages (describe) */
    RtGpuProfile *prof;             /* GPTC_PROFILE=1: every kernel timed (cuda_profile.c), else NULL */
    char *ptxas_log;                /* GPTC_PROFILE=1: NVRTC's log of the module, until the profile has it */
    char prof_name[32];
};

static size_t align_up(size_t n) { return (n + CG_DEVICE_ALIGN - 1) / CG_DEVICE_ALIGN * CG_DEVICE_ALIGN; }

/* device address of node id's elements */
static CUdeviceptr dev_of(const RtGpu *c, int id)
{
    int64_t off;
    int b = cg_storage(c->s, id, &off);
    if (b < 0) return 0;
    CUdeviceptr base = c->s->role[b] == CG_LEAF ? c->leaves + (CUdeviceptr)c->leaf_off[b] : c->mem + (CUdeviceptr)c->s->offset[b];
    return base + (CUdeviceptr)(off * cg_elem_bytes(c->s, b));
}

static bool is_bf16(const RtGpu *c, int id) { return cg_store_dtype(c->s, id) == IR_BF16; }

/* ---- what the emulator is told --------------------------------------------------------------
 * Before each launch and product the tensors it may touch are described to the CUDA emulator
 * (rt_cu.cu.EmuTensors), which then checks every access against its tensor and names the
 * node and model line in its errors. On a GPU the entry point is absent and nothing is done. */

enum { D_READ = 0, D_WRITE = 1, D_READ_WRITE = 2, D_MAX = 512 };   /* a kernel takes fewer */
typedef struct {
    int n;
    CUdeviceptr base[D_MAX];
    size_t bytes[D_MAX];
    int mode[D_MAX];
    const char *label[D_MAX];
} Described;

static bool describing(void) { return rt_cu.cu.EmuTensors != NULL; }

/* "%35 MUL (models/gpt2m.gptc:57)" for every node, when describing */
static void make_labels(RtGpu *c)
{
    if (!describing()) return;
    c->label = xcalloc((size_t)c->g->n, sizeof *c->label);
    for (int id = 0; id < c->g->n; id++) {
        const IrNode *n = c->g->nodes[id];
        c->label[id] = xasprintf("%%%d %s%s%s (%s:%d)", id, ir_op_name(n->op), n->name ? " " : "", n->name ? n->name : "",
                                 n->src_file ? n->src_file : "?", n->src_line);
    }
}

static const char *node_label(const RtGpu *c, int id) { return c->label ? c->label[id] : ""; }

static void describe(Described *d, CUdeviceptr base, size_t bytes, int mode, const char *label)
{
    if (d->n == D_MAX) {   /* more than a launch can take (32 KiB of parameters) */
        fprintf(stderr, "cuda: a launch touching more than %d tensors\n", D_MAX);
        abort();
    }
    d->base[d->n] = base, d->bytes[d->n] = bytes, d->mode[d->n] = mode, d->label[d->n++] = label;
}

/* the whole memory of node id's storage (a view's base node) */
static void describe_node(const RtGpu *c, Described *d, int id, int mode)
{
    int64_t off;
    int b = cg_storage(c->s, id, &off);
    if (b < 0) return;
    describe(d, dev_of(c, b), (size_t)ir_numel(c->g->nodes[b]) * (size_t)cg_elem_bytes(c->s, b), mode, node_label(c, b));
}

static void describe_send(const Described *d, const char *what)
{
    if (describing()) rt_cu.cu.EmuTensors(what, d->n, d->base, d->bytes, d->mode, d->label);
}

/* ---- layout ------------------------------------------------------------------------------ */

/* the layout is codegen's (cg_device_memory), so `gptc compile` states what is allocated here */
static void plan_layout(RtGpu *c, CgDeviceMem *m)
{
    c->leaf_off = xcalloc((size_t)c->g->n, sizeof *c->leaf_off);
    cg_device_memory(c->s, c->leaf_off, m);
}

/* every i32 leaf used as a row index: the bound its values must respect */
static void index_bounds(RtGpu *c)
{
    c->index_bound = xcalloc((size_t)c->g->n, sizeof *c->index_bound);
    for (int i = 0; i < c->g->n; i++) c->index_bound[i] = INT64_MAX;
    for (int i = 0; i < c->g->n; i++) {
        const IrNode *n = c->g->nodes[i];
        int64_t v = -1;
        if (n->op == IR_GATHER) v = n->in[0]->shape[0];
        else if (n->op == IR_SCATTER_ADD) v = n->iattr[0];
        else if (n->op == IR_CROSS_ENTROPY || n->op == IR_CE_BWD) v = n->in[0]->shape[1];
        if (v < 0) continue;
        int64_t off;
        int b = cg_storage(c->s, n->in[1]->id, &off);
        if (b >= 0 && c->s->role[b] == CG_LEAF && v < c->index_bound[b]) c->index_bound[b] = v;
    }
}

static int allocate(RtGpu *c, char *err, size_t errlen)
{
    CgDeviceMem m;
    plan_layout(c, &m);
    size_t arena = m.arena, leaf_bytes = m.leaves, scratch = m.scratch, work = m.work, doc = m.doc;
    c->bytes = m.total;
    CUresult r = rt_cu.cu.MemAlloc(&c->mem, c->bytes);
    if (r != 0) {
        size_t free_b = 0, total = 0;
        rt_cu.cu.MemGetInfo(&free_b, &total);
        snprintf(err, errlen, "cuda: " OUT_OF_MEMORY " on the device: the step needs %.2f GB (plan %.2f GB, leaves %.2f GB), %.2f GB "
                 "of %.2f GB are free: %s", c->bytes / 1e9, arena / 1e9, leaf_bytes / 1e9, free_b / 1e9, total / 1e9,
                 rt_cu_error(r));
        c->mem = 0;
        return -1;
    }
    c->leaves = c->mem + arena;
    c->scratch = c->leaves + leaf_bytes;
    c->work = c->scratch + scratch;
    c->doc = c->work + work;
    c->lt_work = c->doc + doc;
    /* leaves start at zero: parameters not yet set read as zeros, not garbage */
    CU_CHECK(rt_cu.cu.MemsetD8Async(c->leaves, 0, leaf_bytes, c->stream), err, errlen);
    return 0;
}

/* ---- kernels ----------------------------------------------------------------------------- */

static int load_module(RtGpu *c, char *err, size_t errlen)
{
    char arch[16], path[4200];
    rt_cu_arch(arch, sizeof arch);
    char *src = cg_step_source(c->s, CG_CUDA);
    bool cached;
    char *log = NULL;
    int rc = cg_compile_cuda(src, arch, path, sizeof path, &cached, &log, err, errlen);
    free(src);
    if (rt_gpu_profiling()) c->ptxas_log = log;
    else free(log);
    if (rc) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cuda: cannot read %s", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *image = xcalloc((size_t)n + 1, 1);
    size_t got = fread(image, 1, (size_t)n, f);
    fclose(f);
    CUresult r = got == (size_t)n ? rt_cu.cu.ModuleLoadData(&c->mod, image) : 1;
    free(image);
    if (r != 0) {
        snprintf(err, errlen, "cuda: cannot load %s (%s): a stale cache entry? remove it", path, rt_cu_error(r));
        return -1;
    }
    c->fn = xcalloc((size_t)c->s->nfuncs, sizeof *c->fn);
    for (int i = 0; i < c->s->nfuncs; i++) CU_CHECK(rt_cu.cu.ModuleGetFunction(&c->fn[i], c->mod, c->s->funcs[i].name), err, errlen);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < L_NFN; i++) CU_CHECK(rt_cu.cu.ModuleGetFunction(&c->lib[t][i], c->mod, lib_names[t][i]), err, errlen);
    return 0;
}

static void bind_args(RtGpu *c)
{
    c->args = xcalloc((size_t)c->s->nk, sizeof *c->args);
    for (int k = 0; k < c->s->nk; k++) {
        const CgKernel *kk = &c->s->k[k];
        if (kk->kind != CG_LOOP) continue;
        c->args[k] = xcalloc((size_t)kk->nargs, sizeof **c->args);
        for (int j = 0; j < kk->nargs; j++) c->args[k][j] = dev_of(c, kk->args[j]);
    }
}

static int launch(const RtGpu *c, CUfunction f, int64_t blocks_x, int blocks_y, int threads, void **params, char *err,
                  size_t errlen)
{
    if (blocks_x < 1) blocks_x = 1;
    CU_CHECK(rt_cu.cu.LaunchKernel(f, (unsigned)blocks_x, (unsigned)blocks_y, 1, (unsigned)threads, 1, 1, 0, c->stream,
                                   params, NULL), err, errlen);
    return 0;
}

/* n elements of node `id` from one storage type to the other, at `to` */
static int convert(const RtGpu *c, int id, CUdeviceptr from, IrDtype from_t, CUdeviceptr to, int64_t n, char *err,
                   size_t errlen)
{
    if (describing()) {
        Described d = {0};
        describe(&d, from, (size_t)n * (from_t == IR_BF16 ? 2 : 4), D_READ, node_label(c, id));
        describe(&d, to, (size_t)n * (from_t == IR_BF16 ? 4 : 2), D_WRITE, node_label(c, id));
        char what[300];
        snprintf(what, sizeof what, "converts %s to %s", node_label(c, id), from_t == IR_BF16 ? "f32" : "bf16");
        describe_send(&d, what);
    }
    void *p[] = {&from, &n, &to};
    return launch(c, c->lib[0][from_t == IR_BF16 ? L_TO_F32 : L_TO_BF16], (n + 255) / 256, 1, 256, p, err, errlen);
}

/* the address of operand x of a library op computing in `want`: its own, or a converted
 * copy in the scratch region at *scratch_off */
static int operand(const RtGpu *c, const IrNode *x, IrDtype want, size_t *scratch_off, CUdeviceptr *out, char *err,
                   size_t errlen)
{
    *out = dev_of(c, x->id);
    IrDtype have = cg_store_dtype(c->s, x->id);
    if (have == want) return 0;
    CUdeviceptr to = c->scratch + *scratch_off;
    *scratch_off += align_up((size_t)ir_numel(x) * 4);
    if (convert(c, x->id, *out, have, to, ir_numel(x), err, errlen)) return -1;
    *out = to;
    return 0;
}

/* ---- cuBLASLt ---------------------------------------------------------------------------- */

/* the alignment cuBLASLt may assume of an operand's address (converted operands sit at
 * 256-byte boundaries of the scratch region) */
static uint32_t addr_align(CUdeviceptr p)
{
    uint32_t a = 1;
    while (a < CG_DEVICE_ALIGN && p % (2 * a) == 0) a *= 2;
    return a;
}

static uint32_t operand_align(const RtGpu *c, const IrNode *x, IrDtype want)
{
    return cg_store_dtype(c->s, x->id) != want ? CG_DEVICE_ALIGN : addr_align(dev_of(c, x->id));
}

/* Row-major C[M,N] = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLASLt's "A" is
 * our b and its "B" our a, with m = N, n = M. */
static int gemm_plan(RtGpu *c, const IrNode *n, Gemm *gm, char *err, size_t errlen)
{
    const IrNode *a = n->in[0];
    int nd = n->ndim, ta = (int)n->iattr[1], tb = (int)n->iattr[0];
    int64_t batch = 1;
    for (int d = 0; d < nd - 2; d++) batch *= n->shape[d];
    uint64_t M = (uint64_t)n->shape[nd - 2], N = (uint64_t)n->shape[nd - 1];
    uint64_t K = (uint64_t)(ta ? a->shape[nd - 2] : a->shape[nd - 1]);
    int in_t = cg_operand_dtype(c->s, n) == IR_BF16 ? RT_LT_R_16BF : RT_LT_R_32F;
    int out_t = is_bf16(c, n->id) ? RT_LT_R_16BF : RT_LT_R_32F;
    RtCuBlasLt *L = &rt_cu.lt;
    int opa = tb ? RT_LT_OP_T : RT_LT_OP_N, opb = ta ? RT_LT_OP_T : RT_LT_OP_N;
    LT_CHECK(L->MatmulDescCreate(&gm->desc, RT_LT_COMPUTE_32F, RT_LT_R_32F), err, errlen);
    LT_CHECK(L->MatmulDescSetAttribute(gm->desc, RT_LT_DESC_TRANSA, &opa, sizeof opa), err, errlen);
    LT_CHECK(L->MatmulDescSetAttribute(gm->desc, RT_LT_DESC_TRANSB, &opb, sizeof opb), err, errlen);
    LT_CHECK(L->MatrixLayoutCreate(&gm->a, in_t, tb ? K : N, tb ? N : K, (int64_t)(tb ? K : N)), err, errlen);
    LT_CHECK(L->MatrixLayoutCreate(&gm->b, in_t, ta ? M : K, ta ? K : M, (int64_t)(ta ? M : K)), err, errlen);
    LT_CHECK(L->MatrixLayoutCreate(&gm->d, out_t, N, M, (int64_t)N), err, errlen);
    int32_t count = (int32_t)batch;
    int64_t sa = (int64_t)(K * N), sb = (int64_t)(M * K), sd = (int64_t)(M * N);
    cublasLtMatrixLayout_t lay[3] = {gm->a, gm->b, gm->d};
    int64_t stride[3] = {sa, sb, sd};
    for (int i = 0; i < 3 && batch > 1; i++) {
        LT_CHECK(L->MatrixLayoutSetAttribute(lay[i], RT_LT_LAYOUT_BATCH_COUNT, &count, sizeof count), err, errlen);
        LT_CHECK(L->MatrixLayoutSetAttribute(lay[i], RT_LT_LAYOUT_BATCH_STRIDE, &stride[i], sizeof stride[i]), err, errlen);
    }
    cublasLtMatmulPreference_t pref;
    uint64_t ws = CG_LT_WORKSPACE;
    LT_CHECK(L->MatmulPreferenceCreate(&pref), err, errlen);
    LT_CHECK(L->MatmulPreferenceSetAttribute(pref, RT_LT_PREF_MAX_WORKSPACE, &ws, sizeof ws), err, errlen);
    IrDtype want = cg_operand_dtype(c->s, n);
    uint32_t d_align = addr_align(dev_of(c, n->id));   /* C is D */
    uint32_t align[4] = {operand_align(c, n->in[1], want), operand_align(c, a, want), d_align, d_align};
    for (int i = 0; i < 4; i++)
        LT_CHECK(L->MatmulPreferenceSetAttribute(pref, RT_LT_PREF_MIN_ALIGN_A + i, &align[i], sizeof align[i]), err, errlen);
    cublasLtMatmulHeuristicResult_t h;
    int found = 0;
    cublasStatus_t st = L->MatmulAlgoGetHeuristic(c->lt, gm->desc, gm->a, gm->b, gm->d, gm->d, pref, 1, &h, &found);
    L->MatmulPreferenceDestroy(pref);
    if (st != 0 || found < 1) {
        snprintf(err, errlen, "%s:%d: cuBLASLt has no algorithm for MATMUL %%%d ([%llu x %llu] x [%llu x %llu], batch %lld, "
                 "%s) (status %d)", n->src_file ? n->src_file : "?", n->src_line, n->id, (unsigned long long)M,
                 (unsigned long long)K, (unsigned long long)K, (unsigned long long)N, (long long)batch,
                 in_t == RT_LT_R_16BF ? "bf16" : "f32", st);
        return -1;
    }
    gm->algo = h.algo;
    return 0;
}

static int plan_gemms(RtGpu *c, char *err, size_t errlen)
{
    LT_CHECK(rt_cu.lt.Create(&c->lt), err, errlen);
    c->gemm = xcalloc((size_t)c->s->nk, sizeof *c->gemm);
    for (int k = 0; k < c->s->nk; k++)
        if (c->s->k[k].kind == CG_MATMUL && gemm_plan(c, c->s->k[k].op, &c->gemm[k], err, errlen)) return -1;
    return 0;
}

static int run_gemm(const RtGpu *c, int k, char *err, size_t errlen)
{
    const IrNode *n = c->s->k[k].op;
    IrDtype want = cg_operand_dtype(c->s, n);
    CUdeviceptr a, b, d = dev_of(c, n->id);
    size_t so = 0;
    if (operand(c, n->in[0], want, &so, &a, err, errlen) || operand(c, n->in[1], want, &so, &b, err, errlen)) return -1;
    if (describing()) {
        Described dd = {0};
        describe(&dd, a, (size_t)ir_numel(n->in[0]) * (want == IR_BF16 ? 2 : 4), D_READ, node_label(c, n->in[0]->id));
        describe(&dd, b, (size_t)ir_numel(n->in[1]) * (want == IR_BF16 ? 2 : 4), D_READ, node_label(c, n->in[1]->id));
        describe_node(c, &dd, n->id, D_WRITE);
        describe_send(&dd, node_label(c, n->id));
    }
    const Gemm *gm = &c->gemm[k];
    const float one = 1.0f, zero = 0.0f;
    LT_CHECK(rt_cu.lt.Matmul(c->lt, gm->desc, &one, (const void *)(uintptr_t)b, gm->a, (const void *)(uintptr_t)a, gm->b,
                             &zero, (const void *)(uintptr_t)d, gm->d, (void *)(uintptr_t)d, gm->d, &gm->algo,
                             (void *)(uintptr_t)c->lt_work, CG_LT_WORKSPACE, c->stream), err, errlen);
    return 0;
}

/* ---- attention, scatter-add -------------------------------------------------------------- */

static int run_doc_ids(const RtGpu *c, const IrNode *op, int T, char *err, size_t errlen)
{
    CUdeviceptr tokens = dev_of(c, op->in[3]->id), doc = c->doc;
    int eot = (int)op->iattr[1];
    if (describing()) {
        Described d = {0};
        describe_node(c, &d, op->in[3]->id, D_READ);
        describe(&d, doc, (size_t)T * 4, D_WRITE, "document ids");
        describe_send(&d, "document ids");
    }
    void *p[] = {&tokens, &T, &eot, &doc};
    return launch(c, c->lib[0][L_DOC], 1, 1, 1024, p, err, errlen);
}

/* what the attention kernels touch: q, k, v (and dout) as computed from, document ids, the
 * window, the workspace (lse, then Di) and the outputs */
typedef struct {
    const IrNode *n;
    CUdeviceptr in[4];              /* q, k, v, dout (0 in the forward pass) */
    CUdeviceptr doc;
    size_t m, stat;                 /* bytes of one [T, H, D] operand and of one [H, T] statistic */
} AttnArgs;

/* pass 0: forward; 1: backward statistics; 2: dq; 3: dk and dv */
static void describe_attention(const RtGpu *c, const AttnArgs *a, int pass)
{
    if (!describing()) return;
    static const char *const passes[] = {"forward", "backward statistics", "backward dq", "backward dk, dv"};
    const IrNode *n = a->n;
    Described d = {0};
    for (int i = 0; i < (pass ? 4 : 3); i++) describe(&d, a->in[i], a->m, D_READ, node_label(c, n->in[i == 3 ? 5 : i]->id));
    describe(&d, a->doc, (size_t)n->in[0]->shape[0] * 4, D_READ, "document ids");
    describe_node(c, &d, n->in[4]->id, D_READ);
    CUdeviceptr out = dev_of(c, n->id);
    if (pass == 0) describe_node(c, &d, n->id, D_WRITE), describe(&d, c->work, a->stat, D_WRITE, "attention lse");
    if (pass == 1) describe(&d, c->work, 2 * a->stat, D_WRITE, "attention lse and Di");
    if (pass >= 2) describe(&d, c->work, 2 * a->stat, D_READ, "attention lse and Di");
    if (pass == 2) describe(&d, out, a->m, D_WRITE, node_label(c, n->id));
    if (pass == 3) describe(&d, out + a->m, 2 * a->m, D_WRITE, node_label(c, n->id));
    char what[320];
    snprintf(what, sizeof what, "attention %s of %s", passes[pass], node_label(c, n->id));
    describe_send(&d, what);
}

static int run_attention(const RtGpu *c, const IrNode *n, char *err, size_t errlen)
{
    const IrNode *q = n->in[0];
    int T = (int)q->shape[0], H = (int)q->shape[1], D = (int)q->shape[2], B = (int)n->iattr[0];
    if (D % 4 || D > 128) {
        snprintf(err, errlen, "%s:%d: %s %%%d: the CUDA attention kernels take head dims that are multiples of 4 up to "
                 "128, got %d", n->src_file ? n->src_file : "?", n->src_line, ir_op_name(n->op), n->id, D);
        return -1;
    }
    IrDtype want = cg_operand_dtype(c->s, n);
    const CUfunction *lib = c->lib[want == IR_BF16];
    CUdeviceptr qd, kd, vd, dout = 0, win = dev_of(c, n->in[4]->id), out = dev_of(c, n->id), doc = c->doc, work = c->work;
    size_t so = 0;
    if (operand(c, q, want, &so, &qd, err, errlen) || operand(c, n->in[1], want, &so, &kd, err, errlen) ||
        operand(c, n->in[2], want, &so, &vd, err, errlen))
        return -1;
    if (n->op == IR_ATTENTION_BWD && operand(c, n->in[5], want, &so, &dout, err, errlen)) return -1;
    if (run_doc_ids(c, n, T, err, errlen)) return -1;
    float scale = (float)n->fattr[0];
    int64_t bx = (T + 63) / 64;
    CUdeviceptr m = (CUdeviceptr)((int64_t)T * H * D * (want == IR_BF16 ? 2 : 4)), dk = out + m, dv = out + 2 * m;
    const AttnArgs a = {n, {qd, kd, vd, dout}, doc, (size_t)m, (size_t)H * T * 4};
    /* tensor cores where they apply: bf16, D a multiple of 16, rows loaded 16 bytes at a time
     * (128 threads a block); else the CUDA-core kernels (256) */
    const bool tc = want == IR_BF16 && D % 16 == 0 && (qd | kd | vd | dout) % 16 == 0 && out % 4 == 0;
    const int fwd = tc ? L_ATTN_TC_FWD : L_ATTN_FWD, threads = tc ? 128 : 256;
    if (n->op == IR_ATTENTION) {
        void *p[] = {&qd, &kd, &vd, &doc, &T, &H, &D, &B, &win, &scale, &out, &work};
        describe_attention(c, &a, 0);
        return launch(c, lib[fwd], bx, H, threads, p, err, errlen);
    }
    void *ps[] = {&qd, &kd, &vd, &doc, &T, &H, &D, &B, &win, &scale, &dout, &work};
    void *pq[] = {&qd, &kd, &vd, &doc, &T, &H, &D, &B, &win, &scale, &dout, &work, &out};
    void *pk[] = {&qd, &kd, &vd, &doc, &T, &H, &D, &B, &win, &scale, &dout, &work, &dk, &dv};
    describe_attention(c, &a, 1);
    if (launch(c, lib[fwd + (L_ATTN_STATS - L_ATTN_FWD)], bx, H, threads, ps, err, errlen)) return -1;
    describe_attention(c, &a, 2);
    if (launch(c, lib[fwd + (L_ATTN_DQ - L_ATTN_FWD)], bx, H, threads, pq, err, errlen)) return -1;
    describe_attention(c, &a, 3);
    return launch(c, lib[fwd + (L_ATTN_DKV - L_ATTN_FWD)], bx, H, threads, pk, err, errlen);
}

/* cg_zero writes the sum; then the scatter reads rows and indices and adds into it */
static void describe_scatter(const RtGpu *c, const IrNode *n, bool adding)
{
    if (!describing()) return;
    Described d = {0};
    if (adding) describe_node(c, &d, n->in[0]->id, D_READ), describe_node(c, &d, n->in[1]->id, D_READ);
    describe_node(c, &d, n->id, adding ? D_READ_WRITE : D_WRITE);
    describe_send(&d, node_label(c, n->id));
}

static int run_scatter(const RtGpu *c, const IrNode *n, char *err, size_t errlen)
{
    long cnt = (long)ir_numel(n->in[1]), row = cnt ? (long)(ir_numel(n->in[0]) / cnt) : 0, total = (long)ir_numel(n);
    long V = (long)n->iattr[0];
    CUdeviceptr rows = dev_of(c, n->in[0]->id), idx = dev_of(c, n->in[1]->id), out = dev_of(c, n->id);
    void *pz[] = {&out, &total};
    void *ps[] = {&rows, &idx, &cnt, &row, &out, &V};
    describe_scatter(c, n, false);
    if (launch(c, c->lib[0][L_ZERO], (total + 255) / 256, 1, 256, pz, err, errlen)) return -1;
    describe_scatter(c, n, true);
    return launch(c, c->lib[is_bf16(c, n->in[0]->id)][L_SCATTER], (cnt * row + 255) / 256, 1, 256, ps, err, errlen);
}

/* ---- the step ---------------------------------------------------------------------------- */

static int allreduce_after(const RtGpu *c, int k, char *err, size_t errlen);

static bool is_root_of(const CgKernel *k, int id)
{
    for (int i = 0; i < k->nroots; i++)
        if (k->roots[i] == id) return true;
    return false;
}

/* stage 0: a kernel of one launch; 1 and 2: the launches of a split reduction, the first
 * writing the partials (and no root), the second reading them and writing the roots */
static void describe_loop(const RtGpu *c, const CgKernel *k, int stage)
{
    if (!describing()) return;
    Described d = {0};
    for (int j = 0; j < k->nargs; j++) {
        bool root = is_root_of(k, k->args[j]), in_place = false;   /* in place: a leaf a root is computed in */
        for (int r = 0; r < k->nroots && c->s->alias; r++) in_place |= c->s->alias[k->roots[r]] == k->args[j];
        if (!(root && stage == 1)) describe_node(c, &d, k->args[j], in_place ? D_READ_WRITE : root ? D_WRITE : D_READ);
    }
    if (stage && k->part_bytes > 0)
        describe(&d, c->mem + (CUdeviceptr)k->part_off, (size_t)k->part_bytes, stage == 1 ? D_WRITE : D_READ,
                 "the partials of a split reduction");
    char what[320];
    snprintf(what, sizeof what, "%s %s%s", stage == 1 ? "computes partials of" : stage == 2 ? "combines partials into" : "computes",
             k->nroots ? node_label(c, k->roots[0]) : "?", k->nroots > 1 ? " and more" : "");
    describe_send(&d, what);
}

/* loop kernel k: one launch, or the two of a reduction split across blocks (emit.c), the
 * partials' arena memory and the stage after the kernel's own arguments */
static int launch_loop(const RtGpu *c, int k, char *err, size_t errlen)
{
    const CgKernel *kk = &c->s->k[k];
    int64_t blocks;
    int threads, stage[2] = {0, 1}, rc;
    CUdeviceptr part = c->mem + (CUdeviceptr)kk->part_off;
    void **p = xcalloc((size_t)kk->nargs + 2, sizeof *p);
    for (int j = 0; j < kk->nargs; j++) p[j] = &c->args[k][j];
    cg_cuda_launch(kk, &blocks, &threads);
    if (kk->chunks <= 1) {
        describe_loop(c, kk, 0);
        rc = launch(c, c->fn[kk->func], blocks, 1, threads, p, err, errlen);
    } else {
        p[kk->nargs] = &part;
        p[kk->nargs + 1] = &stage[0];
        describe_loop(c, kk, 1);
        rc = launch(c, c->fn[kk->func], blocks, 1, threads, p, err, errlen);
        if (!rc) {
            p[kk->nargs + 1] = &stage[1];
            cg_cuda_launch2(kk, &blocks, &threads);
            describe_loop(c, kk, 2);
            rc = launch(c, c->fn[kk->func], blocks, 1, threads, p, err, errlen);
        }
    }
    free(p);
    return rc;
}

static int enqueue_step(const RtGpu *c, char *err, size_t errlen)
{
    for (int k = 0; k < c->s->nk; k++) {
        const CgKernel *kk = &c->s->k[k];
        int rc = 0;
        if (c->prof && rt_gpu_profile_mark(c->prof, k, c->stream, err, errlen)) return -1;
        switch (kk->kind) {
        case CG_LOOP: rc = launch_loop(c, k, err, errlen); break;
        case CG_MATMUL: rc = run_gemm(c, k, err, errlen); break;
        case CG_ATTENTION:
        case CG_ATTENTION_BWD: rc = run_attention(c, kk->op, err, errlen); break;
        case CG_SCATTER_ADD: rc = run_scatter(c, kk->op, err, errlen); break;
        }
        if (rc || allreduce_after(c, k, err, errlen)) return -1;
    }
    return c->prof ? rt_gpu_profile_mark(c->prof, c->s->nk, c->stream, err, errlen) : 0;
}

/* gradients averaged across ranks as soon as their kernel has run (NCCL on the stream:
 * the collective of one gradient overlaps the kernels of the next ones on other ranks'
 * progress; within a graph NCCL launches are captured like kernels) */
static int allreduce_after(const RtGpu *c, int k, char *err, size_t errlen)
{
    for (int i = 0; i < c->nallreduce; i++) {
        const IrNode *n = c->allreduce[i];
        int64_t off;
        int b = cg_storage(c->s, n->id, &off);
        if (b < 0 || c->s->role[b] != CG_ROOT || c->s->producer[b] != k) continue;
        int r = rt_cu.nccl.AllReduce((const void *)(uintptr_t)dev_of(c, n->id), (void *)(uintptr_t)dev_of(c, n->id),
                                     (size_t)ir_numel(n), is_bf16(c, n->id) ? RT_NCCL_BF16 : RT_NCCL_F32, RT_NCCL_AVG,
                                     rt_gpu_comm(), c->stream);
        if (r != 0) {
            snprintf(err, errlen, "NCCL: all-reduce of %%%d failed: %s", n->id, rt_cu.nccl.GetErrorString(r));
            return -1;
        }
    }
    return 0;
}

int rt_gpu_run(RtGpu *c, char *err, size_t errlen)
{
    if (c->bad_input[0]) {
        snprintf(err, errlen, "%s", c->bad_input);
        c->bad_input[0] = 0;
        return -1;
    }
    if (c->prof) return enqueue_step(c, err, errlen) || rt_gpu_profile_report(c->prof, err, errlen) ? -1 : 0;
    if (!c->use_graph) return enqueue_step(c, err, errlen);
    if (!c->graph) {
        CUgraph graph;
        CU_CHECK(rt_cu.cu.StreamBeginCapture(c->stream, RT_CU_CAPTURE_THREAD_LOCAL), err, errlen);
        int rc = enqueue_step(c, err, errlen);
        CUresult end = rt_cu.cu.StreamEndCapture(c->stream, &graph);
        if (rc) return -1;
        CU_CHECK(end, err, errlen);
        CUresult r = rt_cu.cu.GraphInstantiate(&c->graph, graph, 0);
        rt_cu.cu.GraphDestroy(graph);
        CU_CHECK(r, err, errlen);
    }
    CU_CHECK(rt_cu.cu.GraphLaunch(c->graph, c->stream), err, errlen);
    return 0;
}

/* ---- creation ---------------------------------------------------------------------------- */

/* leaves the graph defines itself: the rotary tables and index tensors, computed as the
 * ref backend does */
static void fill_constants(RtGpu *c)
{
    for (int i = 0; i < c->g->n; i++) {
        const IrNode *n = c->g->nodes[i];
        bool rope = n->op == IR_ROPE_COS || n->op == IR_ROPE_SIN;
        if (c->s->role[i] != CG_LEAF || (!rope && n->op != IR_IOTA)) continue;
        if (n->dtype == IR_I32) {
            int32_t *y = xcalloc((size_t)ir_numel(n), sizeof *y);
            rt_ref_iota_i32(n->ndim, n->shape, (int)n->iattr[0], y);
            rt_gpu_set_i32(c, n, y);
            free(y);
            continue;
        }
        double *y = xcalloc((size_t)ir_numel(n), sizeof *y);
        if (rope) rt_ref_rope_f64(n->op == IR_ROPE_SIN, n->shape[0], n->iattr[0], n->fattr[0], y);
        else rt_ref_iota_f64(n->ndim, n->shape, (int)n->iattr[0], y);
        rt_gpu_set(c, n, y);
        free(y);
    }
}

RtGpu *rt_gpu_new(const IrGraph *g, RtPrec prec, IrNode *const *keep, int nkeep, char *err, size_t errlen)
{
    if (prec == RT_F64) {
        snprintf(err, errlen, "the cuda backend computes in f32 or bf16; use --backend ref for --dtype f64");
        return NULL;
    }
    if (rt_gpu_open(err, errlen)) return NULL;
    RtGpu *c = xcalloc(1, sizeof *c);
    c->g = g;
    c->stream = rt_gpu_stream();
    const char *eg = getenv("GPTC_CUDA_GRAPH");
    c->use_graph = !(eg && !strcmp(eg, "0"));
    CgStore store = prec == RT_F32 ? CG_STORE_F32 : prec == RT_BF16 ? CG_STORE_BF16 : CG_STORE_BF16_MASTER;
    if (!(c->s = cg_fuse(g, keep, nkeep, store, err, errlen)) || load_module(c, err, errlen) ||
        allocate(c, err, errlen) || plan_gemms(c, err, errlen)) {
        rt_gpu_free(c);
        return NULL;
    }
    bind_args(c);
    index_bounds(c);
    make_labels(c);
    fill_constants(c);
    if (rt_gpu_profiling()) {
        static int made;   /* executors are numbered in the order they are made, for the reports */
        snprintf(c->prof_name, sizeof c->prof_name, "executor %d", ++made);
        if (!(c->prof = rt_gpu_profile_new(c->s, c->prof_name, c->ptxas_log, err, errlen))) {
            rt_gpu_free(c);
            return NULL;
        }
    }
    return c;
}

void rt_gpu_allreduce(RtGpu *c, IrNode *const *nodes, int n)
{
    free(c->allreduce);
    c->allreduce = xcalloc((size_t)n, sizeof *c->allreduce);
    memcpy(c->allreduce, nodes, sizeof *nodes * (size_t)n);
    c->nallreduce = n;
    if (c->graph) {   /* recapture with the collectives */
        rt_cu.cu.GraphExecDestroy(c->graph);
        c->graph = NULL;
    }
}

void rt_gpu_free(RtGpu *c)
{
    if (!c) return;
    if (rt_cu.opened) rt_cu.cu.StreamSynchronize(c->stream);
    if (c->graph) rt_cu.cu.GraphExecDestroy(c->graph);
    rt_gpu_profile_free(c->prof);
    free(c->ptxas_log);
    if (c->gemm)
        for (int k = 0; k < c->s->nk; k++) {
            Gemm *gm = &c->gemm[k];
            if (gm->desc) rt_cu.lt.MatmulDescDestroy(gm->desc);
            if (gm->a) rt_cu.lt.MatrixLayoutDestroy(gm->a);
            if (gm->b) rt_cu.lt.MatrixLayoutDestroy(gm->b);
            if (gm->d) rt_cu.lt.MatrixLayoutDestroy(gm->d);
        }
    free(c->gemm);
    if (c->lt) rt_cu.lt.Destroy(c->lt);
    if (c->args)
        for (int k = 0; k < c->s->nk; k++) free(c->args[k]);
    free(c->args);
    if (c->mem) rt_cu.cu.MemFree(c->mem);
    if (c->mod) rt_cu.cu.ModuleUnload(c->mod);
    free(c->fn);
    free(c->leaf_off);
    free(c->index_bound);
    free(c->allreduce);
    for (int i = 0; c->label && i < c->g->n; i++) free(c->label[i]);
    free(c->label);
    cg_step_free(c->s);
    free(c);
}

/* ---- host transfers ---------------------------------------------------------------------- */

static void fatal(const char *what, CUresult r)
{
    fprintf(stderr, "cuda: %s failed: %s (a kernel of the step faulted?)\n", what, rt_cu_error(r));
    exit(1);
}

static void sync_stream(const RtGpu *c)
{
    CUresult r = rt_cu.cu.StreamSynchronize(c->stream);
    if (r != 0) fatal("the step", r);
}

/* In stream order, so it waits for the runs enqueued before it on the device, not on the
 * host: from pageable memory the driver stages `host` before returning, so the caller may
 * free it at once. */
static void upload(RtGpu *c, const IrNode *leaf, const void *host, size_t bytes)
{
    CUresult r = rt_cu.cu.MemcpyHtoDAsync(dev_of(c, leaf->id), host, bytes, c->stream);
    if (r != 0) fatal("a copy to the device", r);
}

static void need_leaf(const RtGpu *c, const IrNode *leaf)
{
    if (c->s->role[leaf->id] != CG_LEAF) {
        fprintf(stderr, "cuda: node %%%d is not a leaf\n", leaf->id);
        abort();
    }
}

void rt_gpu_set(RtGpu *c, const IrNode *leaf, const double *data)
{
    need_leaf(c, leaf);
    int64_t n = ir_numel(leaf);
    int es = cg_elem_bytes(c->s, leaf->id);
    IrDtype t = cg_store_dtype(c->s, leaf->id);
    void *h = xcalloc((size_t)n, (size_t)es);
    for (int64_t i = 0; i < n; i++) {
        if (t == IR_I32) ((int32_t *)h)[i] = (int32_t)data[i];
        else if (t == IR_BF16) ((uint16_t *)h)[i] = bf16_from_f32((float)data[i]);
        else ((float *)h)[i] = (float)data[i];
    }
    upload(c, leaf, h, (size_t)n * (size_t)es);
    free(h);
}

/* Indices are checked here, on the host, where the cpu backend checks them in its run: a
 * value out of range is reported by the next rt_gpu_run, and the data is not uploaded. */
void rt_gpu_set_i32(RtGpu *c, const IrNode *leaf, const int32_t *data)
{
    need_leaf(c, leaf);
    if (c->prof) rt_gpu_profile_tokens(c->prof, leaf, data);
    int64_t n = ir_numel(leaf), bound = c->index_bound[leaf->id];
    for (int64_t i = 0; i < n; i++)
        if (data[i] < 0 || data[i] >= bound) {
            snprintf(c->bad_input, sizeof c->bad_input, "%s %%%d: index %d is outside [0, %lld)",
                     leaf->name ? leaf->name : "input", leaf->id, data[i], (long long)bound);
            return;
        }
    if (leaf->dtype == IR_I32) {
        upload(c, leaf, data, (size_t)n * 4);
        return;
    }
    double *v = xcalloc((size_t)n, sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = data[i];
    rt_gpu_set(c, leaf, v);
    free(v);
}

/* An attention window beyond int: the kernels' (int) conversion of it is undefined, so the
 * next run reports it, as the cpu and ref backends do. */
static void check_window(RtGpu *c, const IrNode *scalar, double v)
{
    if (v >= -1e9 && v <= 1e9) return;
    for (int i = 0; i < c->g->n; i++) {
        const IrNode *n = c->g->nodes[i];
        if ((n->op == IR_ATTENTION || n->op == IR_ATTENTION_BWD) && n->in[4] == scalar) {
            snprintf(c->bad_input, sizeof c->bad_input, "%s %%%d: window %g is not a valid number of blocks",
                     ir_op_name(n->op), n->id, v);
            return;
        }
    }
}

void rt_gpu_set_scalar(RtGpu *c, const char *name, double v)
{
    for (int i = 0; i < c->g->n; i++) {
        const IrNode *n = c->g->nodes[i];
        if (n->op != IR_SCALAR || strcmp(n->name, name) || c->s->role[i] != CG_LEAF) continue;
        check_window(c, n, v);
        if (c->prof) rt_gpu_profile_scalar(c->prof, n->name, v);
        double *vals = xcalloc((size_t)ir_numel(n), sizeof *vals);
        for (int64_t j = 0; j < ir_numel(n); j++) vals[j] = v;
        rt_gpu_set(c, n, vals);
        free(vals);
    }
}

void rt_gpu_get(const RtGpu *c, const IrNode *n, double *out)
{
    CUdeviceptr p = dev_of(c, n->id);
    if (!p) { fprintf(stderr, "cuda: node %%%d has no memory (not kept)\n", n->id); abort(); }
    sync_stream(c);
    int64_t m = ir_numel(n);
    int es = cg_elem_bytes(c->s, n->id);
    IrDtype t = cg_store_dtype(c->s, n->id);
    void *h = xcalloc((size_t)m, (size_t)es);
    CUresult r = rt_cu.cu.MemcpyDtoH(h, p, (size_t)m * (size_t)es);
    if (r != 0) fatal("a copy from the device", r);
    for (int64_t i = 0; i < m; i++)
        out[i] = t == IR_I32 ? ((int32_t *)h)[i] : t == IR_BF16 ? bf16_to_f32(((uint16_t *)h)[i]) : ((float *)h)[i];
    free(h);
}

void rt_gpu_copy(RtGpu *dst, const IrNode *leaf, const RtGpu *src, const IrNode *n)
{
    need_leaf(dst, leaf);
    if (ir_numel(leaf) != ir_numel(n) || !dev_of(src, n->id)) {
        fprintf(stderr, "cuda: cannot copy %%%d into leaf %%%d\n", n->id, leaf->id);
        abort();
    }
    IrDtype from = cg_store_dtype(src->s, n->id), to = cg_store_dtype(dst->s, leaf->id);
    CUdeviceptr s = dev_of(src, n->id), d = dev_of(dst, leaf->id);
    CUresult r = 0;
    char err[256];
    if (s == d && from == to) return;   /* an output computed in the leaf it replaces: there already */
    if (from == to) r = rt_cu.cu.MemcpyDtoDAsync(d, s, (size_t)ir_numel(n) * (size_t)cg_elem_bytes(src->s, n->id), dst->stream);
    else if (convert(dst, leaf->id, s, from, d, ir_numel(n), err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    if (r != 0) fatal("a device copy", r);
}

void rt_gpu_broadcast(RtGpu *c, const IrNode *leaf, int root)
{
    need_leaf(c, leaf);
    CUdeviceptr p = dev_of(c, leaf->id);
    int r = rt_cu.nccl.Broadcast((const void *)(uintptr_t)p, (void *)(uintptr_t)p, (size_t)ir_numel(leaf),
                                 is_bf16(c, leaf->id) ? RT_NCCL_BF16 : RT_NCCL_F32, root, rt_gpu_comm(), c->stream);
    if (r != 0) {
        fprintf(stderr, "NCCL: broadcast of %s from rank %d failed: %s\n", leaf->name ? leaf->name : "a leaf", root,
                rt_cu.nccl.GetErrorString(r));
        exit(1);
    }
}

size_t rt_gpu_bytes(const RtGpu *c) { return c->bytes; }

void rt_gpu_sync(const RtGpu *c) { sync_stream(c); }
