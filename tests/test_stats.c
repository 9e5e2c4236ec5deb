/* test_stats.c — study/stats.c against outside references: closed forms of Student's t CDF
 * for 1–4 degrees of freedom, printed t tables, and values computed independently in
 * 30-digit arithmetic by numerical quadrature of the densities (mpmath.quad over the t
 * density and over u^(a−1)(1−u)^(b−1) / B(a, b)), not through the incomplete beta function. */
#include <math.h>

#include "study/study.h"
#include "tests/test.h"

TEST(summary_mean_and_sample_std) {
    double x[] = {3.2790, 3.2805, 3.2771, 3.2783, 3.2779};
    StSummary s = st_summary(x, 5);
    CHECK(s.n == 5);
    CHECK_NEAR(s.mean, 3.27856, 1e-14);
    CHECK_NEAR(s.std, 0.0012837445228704970019, 1e-14);
    StSummary one = st_summary(x, 1);
    CHECK(one.mean == x[0] && isnan(one.std));
    CHECK(isnan(st_summary(x, 0).mean));
}

TEST(incbeta_quadrature_values) {
    CHECK_NEAR(st_incbeta(2.5, 0.5, 0.3), 0.018927124071945651653, 1e-14);
    CHECK_NEAR(st_incbeta(0.7, 3.2, 0.6), 0.96865798723177926651, 1e-14);
    CHECK_NEAR(st_incbeta(10, 10, 0.45), 0.3289640875783922709, 1e-14);
    CHECK_NEAR(st_incbeta(1.5, 0.5, 0.95), 0.71768564421078588614, 1e-14);
}

TEST(incbeta_identities) {
    CHECK_NEAR(st_incbeta(3.5, 1, 0.7), pow(0.7, 3.5), 1e-14);          /* I_x(a, 1) = x^a */
    CHECK_NEAR(st_incbeta(1, 2.5, 0.3), 1 - pow(0.7, 2.5), 1e-14);      /* I_x(1, b) = 1 − (1 − x)^b */
    CHECK_NEAR(st_incbeta(7.25, 7.25, 0.5), 0.5, 1e-14);               /* symmetry */
    CHECK(st_incbeta(2, 3, 0) == 0 && st_incbeta(2, 3, 1) == 1);
    CHECK(isnan(st_incbeta(-1, 3, 0.5)) && isnan(st_incbeta(2, 3, 1.5)));
}

/* Closed forms: ν = 1 Cauchy, ν = 2, 3, 4 (textbook expressions). */
static double cdf1(double t) { return 0.5 + atan(t) / M_PI; }
static double cdf2(double t) { return 0.5 + t / (2 * sqrt(2 + t * t)); }
static double cdf3(double t) {
    double u = t / sqrt(3);
    return 0.5 + (u / (1 + u * u) + atan(u)) / M_PI;
}
static double cdf4(double t) {
    double q = 1 + t * t / 4;
    return 0.5 + 0.375 * (t / sqrt(q)) * (1 - t * t / (12 * q));
}

TEST(t_cdf_closed_forms) {
    double ts[] = {-40, -7.5, -2, -0.3, 0, 0.01, 0.9, 3.3, 25};
    for (int i = 0; i < 9; i++) {
        double t = ts[i];
        CHECK_NEAR(st_t_cdf(t, 1), cdf1(t), 1e-13);
        CHECK_NEAR(st_t_cdf(t, 2), cdf2(t), 1e-13);
        CHECK_NEAR(st_t_cdf(t, 3), cdf3(t), 1e-13);
        CHECK_NEAR(st_t_cdf(t, 4), cdf4(t), 1e-13);
    }
}

TEST(t_cdf_tables_and_quadrature) {
    /* printed critical values (6 decimals): one-sided 5 %, 2.5 %, 1 %, 0.5 % */
    CHECK_NEAR(st_t_cdf(2.015048, 5), 0.95, 2e-7);
    CHECK_NEAR(st_t_cdf(-2.228139, 10), 0.025, 2e-7);
    CHECK_NEAR(st_t_cdf(2.527977, 20), 0.99, 2e-7);
    CHECK_NEAR(st_t_cdf(2.749996, 30), 0.995, 2e-7);
    /* quadrature of the density, including a fractional ν */
    CHECK_NEAR(st_t_cdf(-1.3, 7.5), 0.11606338940780432928, 1e-13);
    CHECK_NEAR(st_t_cdf(2.5, 4), 0.96661672759400592748, 1e-13);
    CHECK_NEAR(st_t_cdf(-3.2, 9), 0.0054156512949506641618, 1e-14);
    CHECK_NEAR(st_t_cdf(1.7, 29), 0.95008310425576531138, 1e-13);
    CHECK_NEAR(st_t_cdf(-0.05, 3), 0.4816325722956931626, 1e-13);
    CHECK_NEAR(st_t_cdf(-2.2, 60), 0.015834623736288440179, 1e-13);
    CHECK(st_t_cdf(INFINITY, 3) == 1 && st_t_cdf(-INFINITY, 3) == 0 && isnan(st_t_cdf(1, 0)));
}

TEST(ttest_below_threshold) {
    double x[] = {3.2790, 3.2805, 3.2771, 3.2783, 3.2779};
    StTTest r = st_ttest_below(x, 5, 3.28);
    CHECK_NEAR(r.df, 4, 0);
    CHECK_NEAR(r.t, -2.5082388514498235674, 1e-11);
    CHECK_NEAR(r.p, 0.03309081754316864475, 1e-11);
    StTTest above = st_ttest_below(x, 5, 3.27);
    CHECK(above.t > 0 && above.p > 0.99);
    double same[] = {3.28, 3.28, 3.28};
    CHECK(isnan(st_ttest_below(same, 3, 3.3).p));   /* no spread: no test */
    CHECK(isnan(st_ttest_below(x, 1, 3.28).p));     /* one seed: no test */
}

int main(void) {
    RUN(summary_mean_and_sample_std);
    RUN(incbeta_quadrature_values);
    RUN(incbeta_identities);
    RUN(t_cdf_closed_forms);
    RUN(t_cdf_tables_and_quadrature);
    RUN(ttest_below_threshold);
    return test_summary();
}
