/* sgemm.h — the float32 matrix product of the runtime's f32 paths (the cpu backend's
 * products, Gram products and attention; the ref backend in f32).
 *
 * rt_sgemm runs gptc's own AVX-512 kernel (sgemm.c) where the CPU has AVX-512F and the
 * OpenBLAS kernels this process loaded have none (an AVX2 core, as with
 * OPENBLAS_CORETYPE=Haswell); everywhere else it is OpenBLAS's cblas_sgemm. GPTC_SGEMM=openblas or GPTC_SGEMM=avx512 forces the choice (rt_sgemm_check_env
 * says when the second cannot be had). Products are single-threaded either way: callers
 * split them across OpenMP threads. */
#ifndef GPTC_RUNTIME_SGEMM_H
#define GPTC_RUNTIME_SGEMM_H

#include <stdbool.h>

/* c [m, n] = alpha op(a) op(b) + beta c, row-major as cblas_sgemm: op(a) [m, k] is a
 * ([m, k], leading dimension lda) or, at, aᵀ (a [k, m]); likewise op(b) [k, n]. With beta
 * 0, c is not read. */
void rt_sgemm(bool at, bool bt, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
              float beta, float *c, int ldc);

/* true when rt_sgemm runs gptc's own kernel (rt_sgemm_upper may then be called) */
bool rt_sgemm_own(void);

/* rt_sgemm with gptc's own kernel, alpha 1 and beta 0, computing the entries of c on or
 * above its diagonal (j >= i) and of those below it only the ones that share a 12 × 32
 * micro-tile with them; the others are left as they were. For a product known to be
 * symmetric, about half the work. Only when rt_sgemm_avx512_here(). */
void rt_sgemm_upper(bool at, bool bt, int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c,
                    int ldc);

/* gptc's own kernel, whatever rt_sgemm would choose: for tests and comparisons. Only where
 * rt_sgemm_avx512_here(). */
void rt_sgemm_avx512(bool at, bool bt, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                     int ldb, float beta, float *c, int ldc);
bool rt_sgemm_avx512_here(void);

#endif
