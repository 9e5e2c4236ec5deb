/* cpu_kernels.h — the library ops of the `cpu` backend, float32, OpenMP-parallel:
 * attention forward and backward, scatter-add (matrix products: rt_ref_matmul_f32).
 * The loop kernels between them are generated (codegen/emit.c).
 *
 * Shapes follow ops.def. Attention tensors are [T, H, D] row-major; doc[t] is the
 * document index of position t (rt_ref_doc_ids); the mask is spec S-5.4. Outputs are
 * overwritten and must not overlap inputs. */
#ifndef GPTC_RUNTIME_CPU_KERNELS_H
#define GPTC_RUNTIME_CPU_KERNELS_H

#include <stdint.h>

/* o [T, H, D]; accumulation in float (dot products vectorize), softmax with the row max */
void rt_cpu_attn_fwd(const float *q, const float *k, const float *v, const int32_t *doc, int T, int H, int D,
                     int block, int window, double scale, float *o);

/* dq, dk, dv [T, H, D] from dout, recomputing the forward (ops.def ATTENTION_BWD) */
void rt_cpu_attn_bwd(const float *dout, const float *q, const float *k, const float *v, const int32_t *doc, int T,
                     int H, int D, int block, int window, double scale, float *dq, float *dk, float *dv);

/* c [batch, n, n] = x xᵀ with x [batch, n, k], or xᵀ x with x [batch, k, n] (trans): the
 * product of a matrix with its own transpose, symmetric, so its upper triangle is computed
 * (ssyrk on the diagonal blocks, sgemm beside them) and mirrored: half the multiplications */
void rt_cpu_gram(const float *x, float *c, int64_t batch, int n, int k, int trans);

/* y [V, row] = 0; y[idx[i], :] += x[i, :] (input indices checked by the caller; one
 * computed in the graph is clamped to [0, V), as the generated gathers do) */
void rt_cpu_scatter_add(const float *x, const int32_t *idx, int64_t n, int64_t V, int64_t row, float *y);

#endif
