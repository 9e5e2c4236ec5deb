/* ref_kernels_impl.h — precision-generic bodies of the ref kernels; included only by
 * ref_kernels.c, twice: with REAL = double, SFX(x) = x##_f64 and with REAL = float,
 * SFX(x) = x##_f32. Tensors are REAL; every intermediate (dot products, softmax sums,
 * gradient accumulators) is double, and each output element is rounded to REAL once.
 * Contracts: ref_kernels.h. Not a public header; no include guard on purpose. */

#if !defined(REAL) || !defined(SFX)
#error "ref_kernels_impl.h is included by ref_kernels.c with REAL and SFX defined"
#endif

/* <a, b> over n elements, in double */
static double SFX(ref_dot)(const REAL *a, const REAL *b, int n)
{
    double s = 0.0;
    for (int e = 0; e < n; e++) s += (double)a[e] * (double)b[e];
    return s;
}

/* ---- attention ------------------------------------------------------------------------ */

void SFX(rt_ref_attn_fwd)(const REAL *q, const REAL *k, const REAL *v,
                          const int32_t *doc, int T, int H, int D, int block, int window,
                          double scale, REAL *o, REAL *lse)
{
    assert(T >= 0 && H >= 1 && D >= 1 && block >= 1);
    if (T == 0) return;
    const size_t row = (size_t)H * D;                 /* stride of one position t */
    double *s = xmalloc(sizeof(double) * (size_t)T);  /* one row of scores, s[j - k0] */
    double *acc = xmalloc(sizeof(double) * (size_t)D);
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < T; i++) {
            const int k0 = rt_ref_window_begin(i, block, window);
            const REAL *qi = q + (size_t)i * row + (size_t)h * D;
            /* scores and their maximum; key i itself is always allowed, so m is finite */
            double m = -INFINITY;
            for (int j = k0; j <= i; j++) {
                if (!rt_ref_allowed(i, j, doc, block, window)) { s[j - k0] = -INFINITY; continue; }
                s[j - k0] = scale * SFX(ref_dot)(qi, k + (size_t)j * row + (size_t)h * D, D);
                if (s[j - k0] > m) m = s[j - k0];
            }
            double sum = 0.0;
            for (int e = 0; e < D; e++) acc[e] = 0.0;
            for (int j = k0; j <= i; j++) {
                if (s[j - k0] == -INFINITY) continue;  /* masked key */
                const double p = exp(s[j - k0] - m);
                const REAL *vj = v + (size_t)j * row + (size_t)h * D;
                sum += p;
                for (int e = 0; e < D; e++) acc[e] += p * (double)vj[e];
            }
            REAL *oi = o + (size_t)i * row + (size_t)h * D;
            for (int e = 0; e < D; e++) oi[e] = (REAL)(acc[e] / sum);
            lse[(size_t)h * T + i] = (REAL)(m + log(sum));
        }
    }
    free(s);
    free(acc);
}

void SFX(rt_ref_attn_bwd)(const REAL *dout, const REAL *q, const REAL *k,
                          const REAL *v, const REAL *o, const REAL *lse,
                          const int32_t *doc, int T, int H, int D, int block, int window,
                          double scale, REAL *dq, REAL *dk, REAL *dv)
{
    assert(T >= 0 && H >= 1 && D >= 1 && block >= 1);
    if (T == 0) return;
    const size_t row = (size_t)H * D;
    double *Di = xmalloc(sizeof(double) * (size_t)H * T);   /* Di[h*T + i] = <dO_i, o_i> */
    double *acc1 = xmalloc(sizeof(double) * (size_t)D);
    double *acc2 = xmalloc(sizeof(double) * (size_t)D);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < T; i++) {
            const size_t off = (size_t)i * row + (size_t)h * D;
            Di[(size_t)h * T + i] = SFX(ref_dot)(dout + off, o + off, D);
        }

    /* Pass 1, query-major: dq[i] = scale * sum_j dS[i,j] k[j]. */
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < T; i++) {
            const size_t oi = (size_t)i * row + (size_t)h * D;
            const double lse_i = (double)lse[(size_t)h * T + i], D_i = Di[(size_t)h * T + i];
            for (int e = 0; e < D; e++) acc1[e] = 0.0;
            for (int j = rt_ref_window_begin(i, block, window); j <= i; j++) {
                if (!rt_ref_allowed(i, j, doc, block, window)) continue;
                const size_t oj = (size_t)j * row + (size_t)h * D;
                const double p = exp(scale * SFX(ref_dot)(q + oi, k + oj, D) - lse_i);
                const double dp = SFX(ref_dot)(dout + oi, v + oj, D);
                const double ds = p * (dp - D_i);
                for (int e = 0; e < D; e++) acc1[e] += ds * (double)k[oj + e];
            }
            for (int e = 0; e < D; e++) dq[oi + e] = (REAL)(scale * acc1[e]);
        }
    }

    /* Pass 2, key-major: dk[j] = scale * sum_i dS[i,j] q[i];  dv[j] = sum_i p[i,j] dO[i].
     * The queries that may see key j lie in [j, window_query_end(j)). */
    for (int h = 0; h < H; h++) {
        for (int j = 0; j < T; j++) {
            const size_t oj = (size_t)j * row + (size_t)h * D;
            for (int e = 0; e < D; e++) acc1[e] = acc2[e] = 0.0;
            const int i1 = window_query_end(j, T, block, window);
            for (int i = j; i < i1; i++) {
                if (!rt_ref_allowed(i, j, doc, block, window)) continue;
                const size_t oi = (size_t)i * row + (size_t)h * D;
                const double lse_i = (double)lse[(size_t)h * T + i], D_i = Di[(size_t)h * T + i];
                const double p = exp(scale * SFX(ref_dot)(q + oi, k + oj, D) - lse_i);
                const double dp = SFX(ref_dot)(dout + oi, v + oj, D);
                const double ds = p * (dp - D_i);
                for (int e = 0; e < D; e++) {
                    acc1[e] += ds * (double)q[oi + e];
                    acc2[e] += p * (double)dout[oi + e];
                }
            }
            for (int e = 0; e < D; e++) {
                dk[oj + e] = (REAL)(scale * acc1[e]);
                dv[oj + e] = (REAL)acc2[e];
            }
        }
    }
    free(Di);
    free(acc1);
    free(acc2);
}
