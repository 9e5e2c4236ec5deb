/* ref_kernels.h — the fused primitives of the reference ("ref") backend.
 *
 * These are the oracle kernels of the op-by-op interpreter: plain, single-threaded C,
 * written for clarity and exactness, not speed. Every kernel comes twice, for double
 * (suffix _f64) and for float (suffix _f32); both are instantiated from one body
 * (runtime/ref_kernels_impl.h). The float versions take and return float tensors but
 * accumulate every dot product, sum and softmax in double and round once on store.
 *
 * Conventions for every function below:
 *   - All tensors are dense, row-major, last index fastest.
 *   - Outputs are OVERWRITTEN, never accumulated into.
 *   - Outputs must not overlap inputs, except where a function says "may alias".
 *   - Scalar parameters (scale, cap) are double in both precisions.
 *   - Shape/argument violations (T < 0, block < 1, a target outside [0, V), ...) are
 *     caller bugs and are caught by assert().
 *
 * Spec references (S-x.y) are to /work/shared/spec/model.md.
 */
#ifndef GPTC_RUNTIME_REF_KERNELS_H
#define GPTC_RUNTIME_REF_KERNELS_H

#include <stdint.h>

/* ------------------------------------------------------------------------------------
 * Documents and the attention mask (S-5)
 * ------------------------------------------------------------------------------------ */

/* doc[t] = #{ s <= t : tokens[s] == eot }  (inclusive prefix count, S-5.1), t = 0..T-1.
 * An eot token starts a new document. doc is non-decreasing. doc may alias tokens. */
void rt_ref_doc_ids(const int32_t *tokens, int T, int32_t eot, int32_t *doc);

/* The mask, closed form (S-5.4): nonzero iff
 *     k <= q  &&  doc[k] == doc[q]  &&  q/B - k/B < max(window, 1)
 * with B = block >= 1 and window in blocks (0 or negative acts as 1). q, k >= 0. */
int rt_ref_allowed(int q, int k, const int32_t *doc, int block, int window);

/* First key position of the block window of query q: max(0, (q/B - max(w,1) + 1) * B).
 * Every allowed key of q lies in [rt_ref_window_begin(q, B, w), q]. */
int rt_ref_window_begin(int q, int block, int window);

/* ------------------------------------------------------------------------------------
 * Attention (S-4.3) with the document-causal sliding-block mask (S-5.4)
 *
 * Shapes: q, k, v, o, dout, dq, dk, dv: [T, H, D] row-major, element (t, h, e) at
 * (t*H + h)*D + e (feature f = h*D + e of a [T, H*D] row). lse: [H, T], element (h, t) at
 * h*T + t. doc: int32 [T] (rt_ref_doc_ids). block >= 1, window in blocks (<= 0 acts as 1).
 * T need not be a multiple of block. T >= 0, H >= 1, D >= 1.
 *
 *   s[h,q,k] = scale * <q[q,h,:], k[k,h,:]>  if rt_ref_allowed(q, k) else -inf
 *   p[h,q,:] = softmax_k s[h,q,:]            (max-subtracted; every row has key q itself)
 *   o[q,h,:] = sum_k p[h,q,k] v[k,h,:]
 *   lse[h,q] = log sum_k exp(s[h,q,k])
 *
 * Only keys in [rt_ref_window_begin(q), q] are visited; keys of other documents are
 * skipped. Cost O(T * min(T, max(w,1)*B) * H * D); extra memory O(T).
 * ------------------------------------------------------------------------------------ */

/* Forward: writes o [T, H, D] and lse [H, T]. */
void rt_ref_attn_fwd_f64(const double *q, const double *k, const double *v,
                         const int32_t *doc, int T, int H, int D, int block, int window,
                         double scale, double *o, double *lse);
void rt_ref_attn_fwd_f32(const float *q, const float *k, const float *v,
                         const int32_t *doc, int T, int H, int D, int block, int window,
                         double scale, float *o, float *lse);

/* Backward: given dout = dL/do [T, H, D] and the forward's q, k, v, o, lse, writes
 * (overwrites) dq, dk, dv [T, H, D]:
 *   p = exp(s - lse);  dP[h,q,k] = <dout[q,h], v[k,h]>;  Di[h,q] = <dout[q,h], o[q,h]>
 *   dS = p * (dP - Di);  dq = scale * dS k;  dk = scale * dS^T q;  dv = p^T dout
 * Extra memory O(T*H). */
void rt_ref_attn_bwd_f64(const double *dout, const double *q, const double *k,
                         const double *v, const double *o, const double *lse,
                         const int32_t *doc, int T, int H, int D, int block, int window,
                         double scale, double *dq, double *dk, double *dv);
void rt_ref_attn_bwd_f32(const float *dout, const float *q, const float *k,
                         const float *v, const float *o, const float *lse,
                         const int32_t *doc, int T, int H, int D, int block, int window,
                         double scale, float *dq, float *dk, float *dv);

/* ------------------------------------------------------------------------------------
 * Matrix products (ref_ops_impl.h; the cpu backend uses them too)
 *   c[i] = op(a[i]) op(b[i]) for i < batch: c [M, N]; a [M, K] (at: [K, M]); b [K, N]
 *   (bt: [N, K]); OpenBLAS, small products one per OpenMP thread, a large one split by
 *   rows of c across the threads (OpenBLAS must run single-threaded).
 * ------------------------------------------------------------------------------------ */
/* ROPE_COS / ROPE_SIN tables [T, D/2] (ops.def): angles in double, rounded once */
void rt_ref_rope_f64(int is_sin, int64_t T, int64_t D, double base, double *y);
void rt_ref_rope_f32(int is_sin, int64_t T, int64_t D, double base, float *y);
/* IOTA tensors (ops.def): each element's index along axis; the i32 one is for i32 leaves */
void rt_ref_iota_f64(int ndim, const int64_t *shape, int axis, double *y);
void rt_ref_iota_f32(int ndim, const int64_t *shape, int axis, float *y);
void rt_ref_iota_i32(int ndim, const int64_t *shape, int axis, int32_t *y);
/* the elements past one step of axis (i / inner % shape[axis] is i's index); *numel the count */
int64_t rt_ref_iota_inner(int ndim, const int64_t *shape, int axis, int64_t *numel);

void rt_ref_matmul_f64(const double *a, const double *b, double *c, int64_t batch, int M, int N, int K, int at,
                       int bt);
void rt_ref_matmul_f32(const float *a, const float *b, float *c, int64_t batch, int M, int N, int K, int at,
                       int bt);

#endif
