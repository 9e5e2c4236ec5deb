/* exec.h — one interface over the backends that run a graph: `ref` (the op-by-op
 * interpreter, ref.h) and `cpu` (the fused, generated C kernels with OpenBLAS, cpu.c).
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

typedef enum { RT_REF_BACKEND, RT_CPU_BACKEND } RtBackend;

typedef struct RtExec RtExec;

/* NULL with a message (the cpu backend computes in f32 only; a kernel that does not
 * compile) */
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
/* bytes of tensors held at most during the last run (leaves and intermediates) */
size_t rt_exec_peak_bytes(const RtExec *x);
void rt_exec_free(RtExec *x);

/* "ref" or "cpu" → backend; -1 for other names */
int rt_backend_parse(const char *name);
const char *rt_backend_name(RtBackend b);

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

#endif
