/* stats.c — mean and sample standard deviation over seeds, and the one-sided one-sample
 * t-test the report applies to final validation losses (as modded-nanogpt records are
 * judged: is the mean below the threshold?). Student's t distribution goes through the
 * regularized incomplete beta function, evaluated by its continued fraction. */
#include <math.h>

#include "study/study.h"

StSummary st_summary(const double *x, int n) {
    StSummary s = {n, NAN, NAN};
    if (n < 1) return s;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    s.mean = sum / n;
    if (n < 2) return s;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - s.mean) * (x[i] - s.mean);
    s.std = sqrt(ss / (n - 1));
    return s;
}

/* Keeps a continued-fraction term away from zero (modified Lentz). */
static double nonzero(double v) {
    return fabs(v) < 1e-300 ? 1e-300 : v;
}

/* The continued fraction of I_x(a, b) (converges fast for x < (a + 1) / (a + b + 2)):
 *   1 / (1 + d1 / (1 + d2 / (1 + …))), with
 *   d(2m)   =  m (b − m) x / ((a + 2m − 1)(a + 2m))
 *   d(2m+1) = −(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)). */
static double incbeta_cf(double a, double b, double x) {
    double c = 1, d = 1 / nonzero(1 - (a + b) * x / (a + 1)), f = d;
    for (int m = 1; m <= 1000; m++) {
        double e = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        d = 1 / nonzero(1 + e * d);
        c = nonzero(1 + e / c);
        f *= c * d;
        double o = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
        d = 1 / nonzero(1 + o * d);
        c = nonzero(1 + o / c);
        f *= c * d;
        if (fabs(c * d - 1) < 1e-16) break;
    }
    return f;
}

double st_incbeta(double a, double b, double x) {
    if (!(a > 0 && b > 0 && x >= 0 && x <= 1)) return NAN;
    if (x == 0 || x == 1) return x;
    if (x > (a + 1) / (a + b + 2)) return 1 - st_incbeta(b, a, 1 - x);   /* I_x(a,b) = 1 − I_(1−x)(b,a) */
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)) / a;
    return front * incbeta_cf(a, b, x);
}

/* P(|T| > |t|) = I_(df / (df + t²))(df / 2, 1 / 2); each tail is half of it. */
double st_t_cdf(double t, double df) {
    if (isnan(t) || !(df > 0)) return NAN;
    if (isinf(t)) return t > 0 ? 1 : 0;
    double tail = 0.5 * st_incbeta(df / 2, 0.5, df / (df + t * t));
    return t > 0 ? 1 - tail : tail;
}

StTTest st_ttest_below(const double *x, int n, double mu0) {
    StTTest r = {NAN, n - 1, NAN};
    StSummary s = st_summary(x, n);
    if (n < 2 || !(s.std > 0)) return r;
    r.t = (s.mean - mu0) / (s.std / sqrt(n));
    r.p = st_t_cdf(r.t, r.df);
    return r;
}
