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
    CgKernel *k;
    int nk;
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
void cg_step_free(CgStep *s);
/* the node whose memory holds n's elements (n itself, or a view's base), or -1 */
int cg_storage(const CgStep *s, int id, int64_t *offset);
/* n is a SUM or MAX over an axis of size 1: the identity, which no kernel loops over */
bool cg_trivial_reduce(const IrNode *n);

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
/* CUDA launch shape of loop kernel k: blocks × threads. */
void cg_cuda_launch(const CgKernel *k, int64_t *blocks, int *threads);

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
 * (malloc'ed, may be NULL). A missing NVRTC is an error naming the library. */
int cg_compile_cuda(const char *src, const char *arch, char *path, size_t pathlen, bool *cached, char **log,
                    char *err, size_t errlen);
uint64_t cg_hash(const void *data, size_t n, uint64_t h);
/* where the CUDA toolkit is: $CUDA_HOME, default /usr/local/cuda */
const char *cg_cuda_home(void);

/* ---- plan.c ---- */
/* The step's translation unit in dialect d: the prelude, for CUDA the library kernels
 * (cg_cuda_library), then every distinct loop function. */
char *cg_step_source(const CgStep *s, CgDialect d);
/* plan.txt: one line per kernel / library call (in order), totals, the memory plan. */
void cg_write_plan(const CgStep *s, FILE *out);
/* Totals over the loop kernels: bytes moved by the fused kernels, and by the same graph
 * unfused (every elementwise/reduction/movement node reading its inputs and writing its
 * output). */
void cg_traffic(const CgStep *s, int64_t *fused_bytes, int64_t *unfused_bytes);

#endif
