/* backend.h — inside runtime/: the cpu and cuda backends' entry points, which
 * runtime.h's rt_exec_* functions dispatch to (exec.c). */
#ifndef GPTC_RUNTIME_BACKEND_H
#define GPTC_RUNTIME_BACKEND_H

#include "runtime/runtime.h"

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
bool rt_cpu_share(RtCpu *dst, const IrNode *leaf, const RtCpu *src, const IrNode *n);
bool rt_cpu_own(RtCpu *c, const IrNode *leaf);
void rt_cpu_accumulate(RtCpu *dst, const IrNode *leaf, const RtCpu *src, const IrNode *n, double scale, bool first);
void rt_cpu_stats(RtCpu *c, RtStats *out, bool reset);
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

#endif
