/* runtime.h — the runtime: one interface over the backends that run a graph: `ref` (the op-by-op
 * interpreter, ref.h), `cpu` (the fused, generated C kernels with OpenBLAS, cpu.c) and
 * `cuda` (the fused, generated CUDA kernels with cuBLASLt, cuda.c).
 *
 *     RtExec *x = rt_exec_new(RT_CPU_BACKEND, g, RT_F32, keep, nkeep, err, sizeof err);
 *     rt_exec_set(x, param, data); rt_exec_set_i32(x, tokens, ids); rt_exec_set_scalar(x, "w", 3);
 *     if (rt_exec_run(x, err, sizeof err)) { report err }
 *     rt_exec_get(x, loss, &value);
 *     rt_exec_free(x);
 *
 * The set of kept nodes (the values read after a run) is fixed when the executor is made:
 * the cpu backend plans its memory around it. Leaf values persist across runs. The graph
 * must outlive the executor and must not change. Ownership: every pointer passed in is
 * borrowed for the call; the executor owns its buffers. */
#ifndef GPTC_RUNTIME_H
#define GPTC_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

/* RT_BF16 and RT_BF16_MASTER are the cuda backend's mixed precision (codegen/storage.c):
 * bf16 weights and activations, float32 statistics and outputs; _MASTER keeps every leaf
 * (master weights, optimizer state) in float32. The ref and cpu backends reject them. */
typedef enum { RT_F64, RT_F32, RT_BF16, RT_BF16_MASTER } RtPrec;

typedef enum { RT_REF_BACKEND, RT_CPU_BACKEND, RT_CUDA_BACKEND } RtBackend;

typedef struct RtExec RtExec;

/* NULL with a message (the cpu backend computes in f32 only, the cuda backend in f32 or
 * bf16; a kernel that does not compile; no GPU) */
RtExec *rt_exec_new(RtBackend b, const IrGraph *g, RtPrec prec, IrNode *const *keep, int nkeep, char *err,
                    size_t errlen);
void rt_exec_set(RtExec *x, const IrNode *leaf, const double *data);
void rt_exec_set_i32(RtExec *x, const IrNode *leaf, const int32_t *data);
void rt_exec_set_scalar(RtExec *x, const char *name, double v);
int rt_exec_run(RtExec *x, char *err, size_t errlen);
void rt_exec_get(const RtExec *x, const IrNode *n, double *out);
/* leaf `leaf` of dst takes the value of node n of src (kept, or a leaf) without a trip
 * through double when both are cpu backends (a float copy); numel must match */
void rt_exec_copy(RtExec *dst, const IrNode *leaf, const RtExec *src, const IrNode *n);
/* From now on leaf `leaf` of dst is node n of src: the same memory, so no copy is needed
 * (rt_exec_copy between them becomes a no-op). n must be a leaf or a kept node of src, and
 * src must outlive dst's runs; dst must not write that leaf while src needs n. Returns
 * false, changing nothing, where the backends cannot share (then copy at each step). */
bool rt_exec_share(RtExec *dst, const IrNode *leaf, const RtExec *src, const IrNode *n);
/* the leaf has memory of its own again (after rt_exec_share; its value is then zero) */
bool rt_exec_own(RtExec *x, const IrNode *leaf);
/* leaf of dst = (first ? 0 : leaf) + scale · node n of src, in float, where both are cpu
 * executors (the leaf with memory of its own, n kept or a leaf); false (nothing done)
 * where they are not */
bool rt_exec_accumulate(RtExec *dst, const IrNode *leaf, const RtExec *src, const IrNode *n, double scale, bool first);
/* waits until the last run has finished (runs on cuda are asynchronous; get waits by
 * itself, set is ordered after the runs before it) */
void rt_exec_sync(const RtExec *x);
/* Where the cpu backend's runs spent their time, summed since the executor was made or
 * last reset: products (MATMUL kernels, with their floating-point operations), attention
 * forward and backward, generated loop kernels, scatter-adds (a group's time shared among
 * its kernels in proportion to each one's own time). And of the step's kernels, how many run in groups, several at once
 * (cpu.c), and in how many groups. */
typedef struct {
    int runs;
    double product_sec, product_flops, attention_sec, loop_sec, scatter_sec;
    int kernels, grouped, groups;
} RtStats;
/* false (and *out zeroed) where the backend keeps none; reset: start the sums again */
bool rt_exec_stats(RtExec *x, RtStats *out, bool reset);
/* bytes of tensors held at most during the last run (leaves and intermediates) */
size_t rt_exec_peak_bytes(const RtExec *x);
void rt_exec_free(RtExec *x);

/* The cuda backend only: the nodes (gradients) averaged across ranks with NCCL as soon as
 * each is computed, inside the step. Other backends leave averaging to the caller
 * (rt_dist_allreduce). Returns whether the backend does it. */
bool rt_exec_allreduce(RtExec *x, IrNode *const *nodes, int n);

/* The cuda backend with several ranks: leaf `leaf` takes rank root's value (NCCL, in
 * stream order). Every rank calls it in the same order. */
void rt_exec_broadcast(RtExec *x, const IrNode *leaf, int root);

/* The cuda backend's device, opened on first use: "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs,
 * 85.0 GB)" */
void rt_gpu_describe(char *out, size_t len);

/* NULL when backend b computes in precision prec, else one line saying why not and which
 * backend does ("the cpu backend computes in f32; --dtype f64 needs --backend ref"). */
const char *rt_exec_unsupported(RtBackend b, RtPrec prec);

/* "ref", "cpu" or "cuda" → backend; -1 for other names */
int rt_backend_parse(const char *name);
const char *rt_backend_name(RtBackend b);
const char *rt_prec_name(RtPrec p);   /* "f64", "f32", "bf16" */

/* ==== Collectives across processes (dist.c) ====
 * Data-parallel collectives across processes (ranks), with MPI loaded at run time.
 *
 * gptc runs either as one process (world size 1; no MPI library needed, every collective
 * is a no-op) or under Open MPI's launcher:
 *     mpirun -np 4 build/gptc train ...
 * The binary does NOT link libmpi. rt_dist_init looks at the environment: when the process
 * was started by mpirun (OMPI_COMM_WORLD_SIZE or PMIX_RANK is set) it dlopen()s
 * "libmpi.so.40" (falling back to "libmpi.so") with RTLD_GLOBAL, finds every MPI function
 * and Open MPI's predefined handles (MPI_COMM_WORLD = &ompi_mpi_comm_world, MPI_DOUBLE =
 * &ompi_mpi_double, MPI_SUM = &ompi_mpi_op_sum, ...) with dlsym, and initialises MPI. It
 * relies on Open MPI's ABI (handles are pointers, MPI_IN_PLACE is (void *)1, MPI_SUCCESS
 * is 0), so only Open MPI (3.x, 4.x, 5.x: soname libmpi.so.40) is supported; <mpi.h> is
 * not needed to build. On Debian: apt-get install openmpi-bin (tools/deps.sh does).
 *
 * Launching (tested with Open MPI 4.1.4 in a Debian 12 container, as root):
 *     mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -np 2 build/gptc ...
 * --allow-run-as-root is required as root (or OMPI_ALLOW_RUN_AS_ROOT=1 and
 * OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1); --oversubscribe when -np exceeds the cores (else
 * "not enough slots"); --mca btl self,vader keeps traffic in shared memory (the default
 * transports worked here too). Under ASan, see tests/sh/dist.sh for the leak options.
 *
 * Semantics. Every rank must call each collective (allreduce, bcast, barrier, max) in the
 * same order with the same count, from the thread that called rt_dist_init and outside
 * OpenMP parallel regions (MPI is initialised with MPI_THREAD_FUNNELED). Counts are
 * int64_t and may exceed INT_MAX: the work is split into chunks of at most
 * RT_DIST_CHUNK elements (bytes for bcast) per MPI call.
 *
 * Errors. rt_dist_init returns -1 with one line in err (e.g. "launched by mpirun but
 * libmpi.so.40 cannot be loaded: ...; install openmpi-bin"). After init, every MPI call
 * goes through one check: on failure it prints MPI's own error string (MPI_Error_string),
 * the rank, the call and its file:line to stderr, then aborts all ranks (rt_dist_abort(1)).
 * Caller bugs (negative count, NULL buffer, root out of range, a collective after
 * rt_dist_finalize or, under mpirun, before rt_dist_init) print a message and abort.
 *
 * OWNERSHIP: the module owns its only state (the library handle, kept loaded until the
 * process exits: Open MPI must not be unloaded). Buffers passed in are borrowed for the
 * duration of the call and modified in place where documented; nothing is handed out. */

#define RT_DIST_CHUNK ((int64_t)1 << 28)   /* elements (bytes for bcast) per MPI call */

/* Sets up the process group. Without mpirun: world size 1, rank 0, nothing loaded, returns
 * 0. Under mpirun: loads libmpi, calls MPI_Init_thread(argc, argv) (argc/argv may be NULL)
 * and makes MPI errors return to the check instead of aborting inside MPI. Returns 0, or
 * -1 with err set (err may be NULL). A second call after success is a no-op returning 0. */
int rt_dist_init(int *argc, char ***argv, char *err, size_t errlen);

int rt_dist_rank(void);   /* this process's rank, 0..size-1 (0 before init) */
int rt_dist_size(void);   /* number of ranks (1 before init and without mpirun) */

/* Which rank owns item `index` (e.g. which rank runs Muon's Newton–Schulz on matrix
 * `index` and then broadcasts the result): index % size. index must be >= 0. With one
 * process always 0. */
int rt_dist_owner(int index);

/* In place, over all ranks: buf[i] = (sum over ranks of buf[i]) / size (mean) or the sum.
 * The f32 sum is accumulated by MPI in float. n >= 0; with one process a no-op. */
void rt_dist_allreduce_mean_f64(double *buf, int64_t n);
void rt_dist_allreduce_mean_f32(float *buf, int64_t n);
void rt_dist_allreduce_sum_f64(double *buf, int64_t n);

/* Copies `bytes` bytes of root's buf into every other rank's buf. 0 <= root < size. */
void rt_dist_bcast(void *buf, int64_t bytes, int root);

void rt_dist_barrier(void);            /* returns when every rank has reached it */
double rt_dist_max_f64(double v);      /* the largest v over all ranks (e.g. step time) */

/* Shuts MPI down (MPI_Finalize); every rank must call it before a normal exit, or mpirun
 * reports the job as failed. Idempotent; a no-op with one process. The library stays
 * loaded. No collective may follow. */
void rt_dist_finalize(void);

/* On a fatal error in one rank: flushes stdout/stderr and ends every rank with exit status
 * `code` (MPI_Abort on MPI_COMM_WORLD; exit(code) with one process). Never returns. */
_Noreturn void rt_dist_abort(int code);

/* ---- test hooks (tests/test_dist.c only) ---- */

/* Splits collectives into chunks of n elements instead of RT_DIST_CHUNK (n <= 0 restores
 * it), so tests exercise the chunking with small buffers. */
void rt_dist_test_set_chunk(int64_t n);
/* Loads `name` instead of libmpi.so.40 / libmpi.so (NULL restores them). */
void rt_dist_test_set_lib(const char *name);
/* Makes one invalid MPI call (a bcast from root -7) through the check: never returns. */
_Noreturn void rt_dist_test_mpi_error(void);

/* OpenBLAS's kernels for this CPU (blas.c): call first thing in main. When the library fell
 * back to generic kernels on a CPU with AVX2 or AVX-512, the process executes itself again
 * with OPENBLAS_CORETYPE set; otherwise it returns at once. */
void rt_blas_pick_kernels(void);
/* "OpenBLAS 0.3.21 … SkylakeX", the library and its build; "SkylakeX", the kernels it runs */
const char *rt_blas_describe(void);
const char *rt_blas_core(void);
/* true when the kernels OpenBLAS runs include an AVX-512 sgemm (SkylakeX, Cooperlake, …) */
bool rt_blas_core_avx512(void);
/* GFLOP/s of one large float32 product as the cpu backend issues it (split by rows over
 * the OpenMP threads), the best of a few: the ceiling the products of a step are held to */
double rt_blas_sgemm_gflops(void);
/* The f32 products' kernel (sgemm.c): "gptc's AVX-512 kernel" or "OpenBLAS". */
const char *rt_sgemm_describe(void);
/* 0, or -1 with a message when GPTC_SGEMM is set to something other than auto, openblas
 * or avx512, or to avx512 on a CPU without AVX-512F: call in main, beside
 * rt_blas_pick_kernels. */
int rt_sgemm_check_env(char *err, size_t errlen);

#endif
