/* softcap_ce.h — the soft-capped cross-entropy of spec S-3 and S-4.2 written out on its
 * own, as an oracle: test code only (tests/test_ref_kernels.c). The graph computes the
 * loss from IR primitives (softcap from the frontend, CROSS_ENTROPY and CE_BWD), and the
 * golden data hold that; this is the spec's formula, checked here against finite
 * differences. The f32 forms take and return float and compute in double, rounding once.
 *
 * z: raw logits [T, V] (V = the padded vocabulary; every entry takes part). targets: int32
 * [T], each in [0, V) (asserted). cap = c > 0 (15 in the model).
 *   l[t,j]      = c * z[t,j] / sqrt(z[t,j]^2 + c^2)                       (the soft cap)
 *   lse[t]      = log sum_j exp(l[t,j])
 *   loss_row[t] = lse[t] - l[t, targets[t]]
 */

#ifndef GPTC_TESTS_SOFTCAP_CE_H
#define GPTC_TESTS_SOFTCAP_CE_H

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* cap(z) = c z / sqrt(z^2 + c^2)  and  d cap / dz = c^3 / (z^2 + c^2)^(3/2)  (S-3) */
static double softcap(double z, double c) { return c * z / sqrt(z * z + c * c); }
static double softcap_grad(double z, double c)
{
    const double u = c / sqrt(z * z + c * c);
    return u * u * u;
}

/* l [T, V] = cap(z). l may alias z exactly (in place). */
static void capped_logits_f64(const double *z, int T, int V, double cap, double *l)
{
    assert(T >= 0 && V >= 1 && cap > 0);
    for (size_t x = 0; x < (size_t)T * V; x++) l[x] = softcap(z[x], cap);
}

/* Forward: writes loss_row [T] and lse [T] (of the capped row). The mean loss is
 * (1/T) sum_t loss_row[t]; summing is left to the caller. */
static void softcap_ce_fwd_f64(const double *z, const int32_t *targets, int T, int V, double cap,
                                      double *loss_row, double *lse)
{
    assert(T >= 0 && V >= 1 && cap > 0);
    for (int t = 0; t < T; t++) {
        const int32_t y = targets[t];
        assert(y >= 0 && y < V && "softcap CE: target outside [0, V)");
        const double *zt = z + (size_t)t * V;
        double m = -INFINITY, sum = 0.0;
        for (int j = 0; j < V; j++) m = fmax(m, softcap(zt[j], cap));
        for (int j = 0; j < V; j++) sum += exp(softcap(zt[j], cap) - m);
        lse[t] = m + log(sum);
        loss_row[t] = lse[t] - softcap(zt[y], cap);
    }
}

/* Backward: given z, targets, the forward's lse [T] and dloss_row [T] (upstream gradient
 * of each row's loss; 1/T each for the mean loss), writes (overwrites) dz [T, V]:
 *   dz[t,j] = dloss_row[t] * (exp(l[t,j] - lse[t]) - [j == targets[t]])
 *             * c^3 / (z[t,j]^2 + c^2)^(3/2)
 * dz may alias z exactly (in place). */
static void softcap_ce_bwd_f64(const double *z, const int32_t *targets, const double *lse,
                                      const double *dloss_row, int T, int V, double cap, double *dz)
{
    assert(T >= 0 && V >= 1 && cap > 0);
    for (int t = 0; t < T; t++) {
        const int32_t y = targets[t];
        assert(y >= 0 && y < V && "softcap CE: target outside [0, V)");
        for (int j = 0; j < V; j++) {
            /* read z[t,j] once, then write dz[t,j]: dz may alias z */
            const double zx = z[(size_t)t * V + j];
            const double dl = exp(softcap(zx, cap) - lse[t]) - (j == y ? 1.0 : 0.0);
            dz[(size_t)t * V + j] = dloss_row[t] * dl * softcap_grad(zx, cap);
        }
    }
}

/* The float forms: inputs widened to double, the double forms, each output rounded once. */
static double *widen(const float *x, size_t n)
{
    double *d = malloc(sizeof *d * (n ? n : 1));
    assert(d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static void narrow(const double *d, size_t n, float *x)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)d[i];
}

static void capped_logits_f32(const float *z, int T, int V, double cap, float *l)
{
    size_t n = (size_t)T * V;
    double *zd = widen(z, n);
    capped_logits_f64(zd, T, V, cap, zd);
    narrow(zd, n, l);
    free(zd);
}

static void softcap_ce_fwd_f32(const float *z, const int32_t *targets, int T, int V, double cap,
                                      float *loss_row, float *lse)
{
    double *zd = widen(z, (size_t)T * V), *ld = malloc(sizeof *ld * ((size_t)T + 1)), *sd = malloc(sizeof *sd * ((size_t)T + 1));
    assert(ld && sd);
    softcap_ce_fwd_f64(zd, targets, T, V, cap, ld, sd);
    narrow(ld, (size_t)T, loss_row);
    narrow(sd, (size_t)T, lse);
    free(zd), free(ld), free(sd);
}

static void softcap_ce_bwd_f32(const float *z, const int32_t *targets, const float *lse,
                                      const float *dloss_row, int T, int V, double cap, float *dz)
{
    size_t n = (size_t)T * V;
    double *zd = widen(z, n), *sd = widen(lse, (size_t)T), *gd = widen(dloss_row, (size_t)T);
    softcap_ce_bwd_f64(zd, targets, sd, gd, T, V, cap, zd);
    narrow(zd, n, dz);
    free(zd), free(sd), free(gd);
}

#endif
