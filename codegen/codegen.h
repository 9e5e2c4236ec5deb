/* codegen.h — from a graph to kernels: fusion, the C-like emitter (C and CUDA dialects),
 * the static memory plan, compilation with its disk cache.
 *
 *   fuse.c      which nodes are materialized, grouped into kernels and library calls
 *   storage.c   the dtype each materialized tensor is stored in (float32, or bf16 on GPUs)
 *   emit.c      one loop kernel as C (OpenMP) or CUDA C source
 *   cuda_lib.c  CUDA kernels for the library ops (attention, scatter-add), document ids
 *               and float/bf16 conversions
 *   memplan.c   liveness over the kernel sequence, one arena, offsets
 *   compile.c   compile(src) → shared object / cubin, cached under $XDG_CACHE_HOME/gptc
 *   plan.c      the step's source per dialect, and plan.txt: the step as kernels with
 *               shapes, bytes, FLOPs and the memory plan
 *
 * Vocabulary. A node is *materialized* when it has memory of its own: a leaf the caller
 * sets (PARAM, INPUT, SCALAR), a rotary table, or a *root* that one kernel writes. A *view*
 * is a movement node whose elements are a contiguous range of a materialized node (a
 * reshape, a broadcast adding size-1 axes, a leading slice): it aliases that memory. Every other node is *inlined*: the
 * kernels that need it recompute it from its inputs at the index they need.
 *
 * Ownership: a CgStep owns its kernels, arrays and strings (cg_step_free); it borrows the
 * graph, which must outlive it and must not change. */
#ifndef GPTC_CODEGEN_H
#define GPTC_CODEGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

typedef enum {
    CG_LOOP,        /* generated: elementwise, or a reduction with prologue and epilogue */
    CG_MATMUL,      /* BLAS / cuBLASLt */
    CG_ATTENTION,   /* attention template */
    CG_ATTENTION_BWD,
    CG_SCATTER_ADD, /* scatter-add template */
} CgKind;

typedef struct {
    CgKind kind;
    int *roots, nroots;            /* node ids written, ascending */
    int *args, nargs;              /* node ids the generated code takes, in parameter order */
    IrNode *op;                    /* the library node (all kinds but CG_LOOP) */
    int ndim;                      /* CG_LOOP: the iteration domain … */
    int64_t dom[IR_MAX_DIMS];
    int axis;                      /* … and the reduced axis, or -1 (elementwise) */
    int func;                      /* index of its function in CgStep.funcs (CG_LOOP), or -1 */
    double flops;                  /* estimates, for plan.txt and benchmarks */
    int64_t bytes_read, bytes_written;
    /* CUDA, a reduction split across blocks (emit.c): its axis in `chunks` chunks (0 or 1:
     * not split), two launches (cg_cuda_launch, cg_cuda_launch2) of one function taking two
     * more arguments, the partials' memory and the stage (0, 1); split_p2: the second
     * launch computes full-size roots, per chunk; the partials take part_bytes of the
     * arena at part_off (memplan.c), live during this kernel only */
    int chunks;
    bool split_p2;
    int64_t part_bytes, part_off;
} CgKernel;

/* A distinct generated function (kernels of identical source share one). */
typedef struct {
    char name[24];                 /* "k_" + 16 hex digits of the source hash */
    char *c_src, *cuda_src;        /* the function in each dialect */
} CgFunc;

typedef enum { CG_LEAF, CG_ROOT, CG_VIEW, CG_INLINE, CG_CONST } CgRole;

/* storage precision of a step (storage.c says what each one keeps in bf16) */
typedef enum { CG_STORE_F32, CG_STORE_BF16, CG_STORE_BF16_MASTER } CgStore;

typedef struct {
    const IrGraph *g;
    CgRole *role;                  /* by node id */
    IrDtype *store;                /* by node id, leaves and roots: stored as IR_F32, IR_BF16 or IR_I32 */
    int *view_base;                /* CG_VIEW: the materialized node aliased … */
    int64_t *view_off;             /* … and the element offset into it */
    int *producer;                 /* CG_ROOT: index of the kernel that writes it */
    int *alias;                    /* CG_ROOT: the leaf whose memory it is computed in, or -1
                                    * (inplace.c: an output that replaces that leaf) */
    CgKernel *k;
    int nk;
    int *level;                    /* by kernel, in level order only (cg_fuse_levels; else
                                    * NULL): its level; the kernels of one level may run at
                                    * the same time */
    CgFunc *funcs;
    int nfuncs;
    /* memory plan (memplan.c): byte offsets of roots in one arena, -1 for the rest */
    int64_t *offset;
    int64_t arena_bytes;
} CgStep;

/* ---- fuse.c ---- */
/* Plans graph g: roles, kernels in execution order, their generated functions. keep:
 * the nodes whose values are read after the step (outputs); they stay materialized and
 * are never overwritten. NULL with a message on an op the code generator lacks. */
CgStep *cg_fuse(const IrGraph *g, IrNode *const *keep, int nkeep, CgStore store, char *err, size_t errlen);
/* cg_fuse, the kernels then ordered by level (fuse.c order_by_level): a kernel comes after
 * every kernel of a lower level, so independent chains (each parameter's update) advance
 * together and kernels that may run at the same time stand next to each other (the cpu
 * backend runs such neighbours concurrently). The memory plan gives no two kernels of one
 * level the same bytes, so intermediates of the chains live longer; where that would plan
 * over 1.25 times the memory of the fused order, the fused order stays (level NULL). */
CgStep *cg_fuse_levels(const IrGraph *g, IrNode *const *keep, int nkeep, CgStore store, char *err, size_t errlen);
/* the nodes kernel k reads: its arguments (a loop kernel; its roots among them) or its
 * op's inputs (a library call), as ids; scratch holds the latter. Returns their number. */
int cg_kernel_reads(const CgKernel *k, const int **ids, int scratch[6]);
void cg_step_free(CgStep *s);
/* the node whose memory holds n's elements (n itself, a view's base, or the leaf a root is
 * computed in), or -1 */
int cg_storage(const CgStep *s, int id, int64_t *offset);
/* n is a SUM or MAX over an axis of size 1: the identity, which no kernel loops over */
bool cg_trivial_reduce(const IrNode *n);

/* ---- inplace.c ---- */
/* Outputs computed in the memory of the leaf they replace (IrGraph.replaces) where that is
 * safe: fills s->alias (called by cg_fuse once storage is assigned, before emission). */
void cg_alias_outputs(CgStep *s, IrNode *const *keep, int nkeep);

/* ---- storage.c ---- */
/* fills s->store (called by cg_fuse once the kernels are formed) */
void cg_assign_storage(CgStep *s, CgStore mode, IrNode *const *keep, int nkeep);
/* the dtype node id's elements are stored in (its storage's; f32 or i32 for inlined nodes) */
IrDtype cg_store_dtype(const CgStep *s, int id);
/* bytes per stored element of node id: 2 (bf16) or 4 */
int cg_elem_bytes(const CgStep *s, int id);
/* the dtype library op `op` computes from (IR_BF16: a bf16 product or attention); operands
 * stored otherwise are converted by the runtime first */
IrDtype cg_operand_dtype(const CgStep *s, const IrNode *op);

/* ---- emit.c ---- */
typedef enum { CG_C, CG_CUDA } CgDialect;
/* The source of loop kernel k in dialect d, malloc'ed; -1 with *culprit set to a node
 * that must be materialized for the kernel to be expressible. */
int cg_emit_loop(const CgStep *s, CgKernel *k, CgDialect d, const char *name, char **src, int *culprit);
/* Text every translation unit of the dialect starts with (types, helpers). */
const char *cg_prelude(CgDialect d);
/* exp(x) = 2^n e^r, n = rint(x / ln 2), |r| <= ln(2)/2, e^r by its Taylor polynomial of
 * degree 6 (relative error < 2e-7 over the float range): arithmetic only, so loops that call
 * it vectorize. Below -87 it returns exp(-87) ~ 1.6e-38, not 0. One definition: the C
 * prelude holds its text, and the cpu backend's attention compiles it. */
#define CG_EXPF_DEFINITION                                                                   \
    static inline float cg_expf(float x)                                                     \
    {                                                                                        \
        x = x > -87.0f ? x : -87.0f;                                                         \
        x = x < 88.0f ? x : 88.0f;                                                           \
        const float n = __builtin_rintf(x * 1.44269504f);                                    \
        const float r = x - n * 0.693145752f - n * 1.42860677e-6f;                           \
        float p = 1.0f / 720;                                                                \
        p = p * r + 1.0f / 120;                                                              \
        p = p * r + 1.0f / 24;                                                               \
        p = p * r + 1.0f / 6;                                                                \
        p = p * r + 0.5f;                                                                    \
        p = p * r + 1.0f;                                                                    \
        p = p * r + 1.0f;                                                                    \
        const int bits = ((int)n + 127) << 23;                                               \
        float scale;                                                                         \
        __builtin_memcpy(&scale, &bits, sizeof scale);                                       \
        return p * scale;                                                                    \
    }
#define CG_STRINGIFY(...) #__VA_ARGS__
#define CG_TEXT(...) CG_STRINGIFY(__VA_ARGS__)
/* CUDA launch shape of loop kernel k: blocks × threads. */
void cg_cuda_launch(const CgKernel *k, int64_t *blocks, int *threads);
/* The second launch of a split reduction (k->chunks > 1): blocks × threads; 0 × 0 for a
 * kernel of one launch. */
void cg_cuda_launch2(const CgKernel *k, int64_t *blocks, int *threads);

/* ---- cuda_lib.c ---- */
/* CUDA source of the library kernels (attention forward and backward, scatter-add),
 * document ids and the float/bf16 conversions. */
const char *cg_cuda_library(void);

/* ---- memplan.c ---- */
/* Gives every root an offset in one arena (liveness over the kernel order; kept nodes
 * live to the end); fills s->offset and s->arena_bytes. */
void cg_memplan(CgStep *s, IrNode *const *keep, int nkeep);

/* ---- compile.c ---- */
/* The directory of the kernel cache: $XDG_CACHE_HOME/gptc or ~/.cache/gptc (created). */
int cg_cache_dir(char *out, size_t len, char *err, size_t errlen);
/* Compiles C source into a shared object (cc -O3 -fopenmp -shared), through the cache;
 * *path receives the object's path; *cached tells whether it was already there. */
int cg_compile_c(const char *src, char *path, size_t pathlen, bool *cached, char *err, size_t errlen);
/* Compiles CUDA source with NVRTC (loaded at run time) for arch ("sm_90"), through the
 * cache; writes the cubin's path and NVRTC's log (ptxas -v: registers, spills) to *log
 * (malloc'ed, may be NULL). A missing NVRTC is an error naming the library. NVRTC runs in
 * gptc-nvrtc, a process of its own next to the program (or one folder up). */
int cg_compile_cuda(const char *src, const char *arch, char *path, size_t pathlen, bool *cached, char **log,
                    char *err, size_t errlen);
/* gptc-nvrtc's main: ARCH SOURCE CUBIN LOG (cli/nvrtc_main.c; --help says more) */
int cg_nvrtc_main(int argc, char **argv);
uint64_t cg_hash(const void *data, size_t n, uint64_t h);
/* where the CUDA toolkit is: $CUDA_HOME, default /usr/local/cuda */
const char *cg_cuda_home(void);

/* ---- plan.c ---- */
/* The step's translation unit in dialect d: the prelude, for CUDA the library kernels
 * (cg_cuda_library), then every distinct loop function. */
char *cg_step_source(const CgStep *s, CgDialect d);
/* plan.txt: one line per kernel / library call (in order), totals, the memory plan; with
 * est (cg_roofline, NULL for the C target) each line's estimate on an H100 too. */
struct CgRoofline;
void cg_write_plan(const CgStep *s, const struct CgRoofline *est, FILE *out);
/* Totals over the loop kernels: bytes moved by the fused kernels, and by the same graph
 * unfused (every elementwise/reduction/movement node reading its inputs and writing its
 * output). */
void cg_traffic(const CgStep *s, int64_t *fused_bytes, int64_t *unfused_bytes);

/* ---- roofline.c ---- */
/* A model of the cuda backend on one H100 SXM, until one measures it: the time of every
 * launch of a fused step, and the device memory a cuda executor allocates.
 *
 * Time of one launch: launch + work / occ, with work = max(tensor-core FLOPs / rate,
 * CUDA-core FLOPs / rate, bytes / bandwidth) and occ the fraction of the GPU its blocks
 * fill (resident blocks per SM from ptxas's registers and shared memory, last partial wave
 * included). Its split: `launch` to launch, `work` to its bound (tc, fp32 or mem),
 * work · (1/occ − 1) to under-occupied. */

/* ptxas's figures of one compiled function (NVRTC's log, cg_compile_cuda) */
typedef struct {
    char *name;
    int regs, smem;                /* registers per thread, static shared bytes per block */
} CgPtxasFunc;
typedef struct {
    CgPtxasFunc *f;
    int n;
} CgPtxas;
/* Every function of the log with a "Used N registers" line; free with cg_ptxas_free. */
void cg_ptxas_parse(const char *log, CgPtxas *p);
void cg_ptxas_free(CgPtxas *p);

typedef enum { CG_BOUND_LAUNCH, CG_BOUND_TC, CG_BOUND_FP32, CG_BOUND_MEM } CgBound;
/* the kinds of work the step's time is totalled by: a library call's operand conversions
 * count as CG_EST_CONVERT, its document ids and zeroing with the call */
typedef enum {
    CG_EST_LOOP, CG_EST_PRODUCT, CG_EST_ATTENTION, CG_EST_ATTENTION_BWD, CG_EST_SCATTER_ADD, CG_EST_CONVERT,
    CG_EST_NKINDS
} CgEstKind;

/* milliseconds, split as above: ms = tc + fp32 + mem + under + launch */
typedef struct {
    double ms, tc, fp32, mem, under, launch;
} CgTime;

typedef struct {
    CgTime t;                      /* every launch of the kernel or library call */
    CgBound bound;                 /* … and the bound and occupancy of its longest launch */
    double occ;
    int launches;
} CgKernelEst;

typedef struct CgRoofline {
    CgKernelEst *k;                /* by kernel index of the step */
    CgTime total, kind[CG_EST_NKINDS];
    int calls[CG_EST_NKINDS], launches[CG_EST_NKINDS];
} CgRoofline;

/* what the step is run on: runtime scalars by name (the attention window; an unnamed or
 * absent window is taken as the whole sequence) and the mean document length in tokens
 * (documents of exactly that length; <= 0: one document) */
typedef struct {
    const char *name;
    double value;
} CgScalar;
typedef struct {
    const CgScalar *scalars;
    int nscalars;
    double doc_len;
} CgWorkload;

/* Estimates every kernel of s (cuda dialect) from ptxas's figures px; -1 with a message
 * when a launched function is not in px. Free with cg_roofline_free. */
int cg_roofline(const CgStep *s, const CgPtxas *px, const CgWorkload *w, CgRoofline *r, char *err, size_t errlen);
void cg_roofline_free(CgRoofline *r);
void cg_time_add(CgTime *to, const CgTime *t);
const char *cg_bound_name(CgBound b);
const char *cg_est_kind_name(CgEstKind k);   /* "loop", "product", … "conversions" */

/* The device memory of a cuda executor of s, the one allocation laid out as
 * [arena | leaves | operand scratch | attention workspace | document ids | cuBLASLt
 * workspace], every region a multiple of CG_DEVICE_ALIGN bytes. leaf_off (by node id, may
 * be NULL) receives each leaf's byte offset in the leaf region, -1 for other nodes. */
#define CG_DEVICE_ALIGN 256
#define CG_LT_WORKSPACE ((size_t)32 << 20)   /* 32 MiB, enough for Hopper's cuBLASLt kernels */
typedef struct {
    size_t arena, leaves, scratch, work, doc, lt_work, total;
} CgDeviceMem;
void cg_device_memory(const CgStep *s, int64_t *leaf_off, CgDeviceMem *m);

#endif
