/* exec.h — one interface over the backends that run a graph: `ref` (the op-by-op
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
 * must outlive the executor and must not change. Ownership as in ref.h: every pointer
 * passed in is borrowed for the call; the executor owns its buffers. */
#ifndef GPTC_RUNTIME_EXEC_H
#define GPTC_RUNTIME_EXEC_H

#include "runtime/ref.h"

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
/* waits until the last run has finished (runs on cuda are asynchronous; get waits by
 * itself, set is ordered after the runs before it) */
void rt_exec_sync(const RtExec *x);
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

/* "ref", "cpu" or "cuda" → backend; -1 for other names */
int rt_backend_parse(const char *name);
const char *rt_backend_name(RtBackend b);
const char *rt_prec_name(RtPrec p);   /* "f64", "f32", "bf16" */

/* ---- cpu.c: the cpu backend (the functions above dispatch to these) ---- */
typedef struct RtCpu RtCpu;
RtCpu *rt_cpu_new(const IrGraph *g, IrNode *const *keep, int nkeep, char *err, size_t errlen);
void rt_cpu_set(RtCpu *c, const IrNode *leaf, const double *data);
void rt_cpu_set_i32(RtCpu *c, const IrNode *leaf, const int32_t *data);
void rt_cpu_set_scalar(RtCpu *c, const char *name, double v);
int rt_cpu_run(RtCpu *c, char *err, size_t errlen);
void rt_cpu_get(const RtCpu *c, const IrNode *n, double *out);
size_t rt_cpu_bytes(const RtCpu *c);
void rt_cpu_copy(RtCpu *dst, const IrNode *leaf, const RtCpu *src, const IrNode *n);
void rt_cpu_free(RtCpu *c);

/* ---- cuda.c, cuda_ctx.c: the cuda backend ---- */
typedef struct RtGpu RtGpu;
RtGpu *rt_gpu_new(const IrGraph *g, RtPrec prec, IrNode *const *keep, int nkeep, char *err, size_t errlen);
void rt_gpu_set(RtGpu *c, const IrNode *leaf, const double *data);
void rt_gpu_set_i32(RtGpu *c, const IrNode *leaf, const int32_t *data);
void rt_gpu_set_scalar(RtGpu *c, const char *name, double v);
int rt_gpu_run(RtGpu *c, char *err, size_t errlen);
void rt_gpu_get(const RtGpu *c, const IrNode *n, double *out);
void rt_gpu_copy(RtGpu *dst, const IrNode *leaf, const RtGpu *src, const IrNode *n);
void rt_gpu_allreduce(RtGpu *c, IrNode *const *nodes, int n);
void rt_gpu_broadcast(RtGpu *c, const IrNode *leaf, int root);
size_t rt_gpu_bytes(const RtGpu *c);
void rt_gpu_sync(const RtGpu *c);
void rt_gpu_free(RtGpu *c);
/* the process's device, stream and (several ranks) NCCL communicator, opened once */
int rt_gpu_open(char *err, size_t errlen);
struct CUstream_st *rt_gpu_stream(void);
struct ncclComm *rt_gpu_comm(void);
/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 85.0 GB)" */
void rt_gpu_describe(char *out, size_t len);

#endif
