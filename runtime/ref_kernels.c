/* ref_kernels.c — reference ("ref") backend kernels: document ids and the mask's closed
 * form, attention, the rotary tables and the matrix product.
 * See ref_kernels.h for the contracts. The precision-generic bodies live in
 * ref_kernels_impl.h, instantiated below for double and for float. */
#include "runtime/ref_kernels.h"
#include "base/base.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- documents and the mask ------------------------------------------------------- */

void rt_ref_doc_ids(const int32_t *tokens, int T, int32_t eot, int32_t *doc)
{
    assert(T >= 0);
    int32_t n = 0;
    for (int t = 0; t < T; t++) {
        if (tokens[t] == eot) n++;
        doc[t] = n;
    }
}

static int window_blocks(int window) { return window < 1 ? 1 : window; }

int rt_ref_allowed(int q, int k, const int32_t *doc, int block, int window)
{
    assert(block >= 1 && q >= 0 && k >= 0);
    return k <= q && doc[k] == doc[q] && q / block - k / block < window_blocks(window);
}

int rt_ref_window_begin(int q, int block, int window)
{
    assert(block >= 1 && q >= 0);
    long long b = (long long)(q / block) - window_blocks(window) + 1;   /* first key block */
    return b <= 0 ? 0 : (int)(b * block);
}

/* One past the last query that key k can be visible to, by the window alone:
 * q/B - k/B < W  <=>  q < (k/B + W) * B. */
static int window_query_end(int k, int T, int block, int window)
{
    long long e = ((long long)(k / block) + window_blocks(window)) * block;
    return e >= T ? T : (int)e;
}

int64_t rt_ref_iota_inner(int ndim, const int64_t *shape, int axis, int64_t *numel)
{
    int64_t inner = 1, n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    for (int d = axis + 1; d < ndim; d++) inner *= shape[d];
    *numel = n;
    return inner;
}

void rt_ref_iota_i32(int ndim, const int64_t *shape, int axis, int32_t *y)
{
    int64_t n, inner = rt_ref_iota_inner(ndim, shape, axis, &n);
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(i / inner % shape[axis]);
}

/* ---- precision-generic kernels -------------------------------------------------------- */

#define REAL double
#define SFX(name) name##_f64
#include "runtime/ref_kernels_impl.h"
#undef REAL
#undef SFX

#define REAL float
#define SFX(name) name##_f32
#include "runtime/ref_kernels_impl.h"
#undef REAL
#undef SFX
