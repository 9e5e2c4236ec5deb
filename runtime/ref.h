/* ref.h — the reference ("ref") backend: an op-by-op interpreter of the graph IR.
 *
 * It is the correctness oracle for every faster backend: each node is evaluated on its
 * own, in node-id order (ids are topological), by plain loops, OpenBLAS (MATMUL) and the
 * kernels of ref_kernels.h (ATTENTION, ATTENTION_BWD). Meanings of the ops: ir/ops.def.
 *
 * Precision. Every float tensor is computed in the precision chosen at rt_ref_new,
 * whatever the node's declared dtype (bf16, f32 and f64 all mean "float" here); I32
 * tensors are int32. In RT_F32 each elementwise result is computed in double and rounded
 * once to float (so +, -, *, /, sqrt are exactly float arithmetic); reductions (SUM),
 * SCATTER_ADD, CROSS_ENTROPY, CE_BWD and the rotary tables accumulate in double and round
 * once; MATMUL is rt_sgemm (sgemm.h: float accumulation) in RT_F32 and cblas_dgemm in RT_F64.
 *
 * Lifecycle:
 *     RtRef *r = rt_ref_new(g, RT_F64);
 *     rt_ref_set(r, param, data);  rt_ref_set_i32(r, tokens, ids);  rt_ref_set_scalar(r, "w", 3);
 *     if (rt_ref_run(r, keep, nkeep, err, sizeof err)) { report err }
 *     rt_ref_get(r, loss, &value);
 *     rt_ref_free(r);
 * Values set on leaves persist across runs (set again to change them); a run may be
 * repeated. The graph may grow (autodiff appending nodes) between calls; it must outlive
 * the RtRef and must not otherwise change: run passes that renumber ids (DCE) before
 * rt_ref_new.
 *
 * OWNERSHIP: the RtRef borrows the graph (never frees or modifies it) and owns every
 * tensor buffer. Every pointer passed in (data, keep, name, err) is only borrowed for the
 * duration of the call: rt_ref_set* copy the data. rt_ref_get copies out. Nothing this
 * module hands out needs freeing except the RtRef itself (rt_ref_free).
 *
 * Errors. Caller bugs (a non-leaf passed to rt_ref_set, rt_ref_get of a node the last run
 * did not keep) abort with a message. Data-dependent problems (an unset leaf, a GATHER /
 * SCATTER_ADD index or a cross-entropy target out of range, an unsupported op) make
 * rt_ref_run return -1 with one line in err, never a crash. */
#ifndef GPTC_RUNTIME_REF_H
#define GPTC_RUNTIME_REF_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

typedef struct RtRef RtRef;

/* A new interpreter of graph g in precision prec; no leaf has a value yet. */
RtRef *rt_ref_new(const IrGraph *g, RtPrec prec);

/* Gives a PARAM or INPUT leaf its value: numel(leaf) doubles, copied and converted to the
 * precision (to int32, truncated, for an I32 INPUT). Replaces any earlier value. */
void rt_ref_set(RtRef *r, const IrNode *leaf, const double *data);

/* Gives an INPUT leaf its value from int32 data (numel(leaf) elements, copied); meant for
 * I32 inputs (tokens, targets); a float input converts. */
void rt_ref_set_i32(RtRef *r, const IrNode *leaf, const int32_t *data);

/* Gives every SCALAR leaf named name the value v (every element, if it has a shape).
 * Names that match no leaf are ignored. */
void rt_ref_set_scalar(RtRef *r, const char *name, double v);

/* Evaluates every node of the graph in id order. The buffer of a computed node is freed
 * right after its last consumer ran (or at once if it has none) unless the node is one of
 * keep[0 .. nkeep-1] (outputs, probes, gradients the caller will read); kept results stay
 * until the next rt_ref_run or rt_ref_free. Leaf values are never freed by a run.
 * Returns 0, or -1 with one line in err (err may be NULL), for instance
 *     parameter 'lm_head' has no value
 *     model.gptc:12: GATHER %7: index 9 is outside [0, 5)
 * After a failed run no computed buffer is held. */
int rt_ref_run(RtRef *r, IrNode *const *keep, int nkeep, char *err, size_t errlen);

/* Copies node n's value, converted to double, into out (numel(n) elements). n must be a
 * leaf with a value or a node kept by the last successful run. */
void rt_ref_get(const RtRef *r, const IrNode *n, double *out);

/* Frees the interpreter and every buffer it holds; r may be NULL. */
void rt_ref_free(RtRef *r);

/* Memory accounting, for tests and reports. Counted: node tensor buffers (leaf values and
 * computed results); not counted: per-op scratch (converted inputs, attention lse, etc.).
 *   rt_ref_live_bytes  bytes held now
 *   rt_ref_peak_bytes  the most held at any moment since the start of the last rt_ref_run
 *                      (before any run: since rt_ref_new) */
size_t rt_ref_live_bytes(const RtRef *r);
size_t rt_ref_peak_bytes(const RtRef *r);

#endif
