/* test.h — the unit-test harness every tests/test_*.c binary uses.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_NEAR(a, b, 1e-9); }
 *   int main(void) { RUN(name); ...; return test_summary(); }
 *
 * Each test prints one line, "pass: name" or "fail: name", after the failed checks'
 * file:line messages; tests/run.sh counts those lines. test_summary() returns nonzero
 * when anything failed, so a binary can never exit 0 on a failure. */
#ifndef GPTC_TEST_H
#define GPTC_TEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

/* unused in a binary that only takes the helpers below */
static int test_failed_checks __attribute__((unused));   /* failed checks in the current test */
static int test_npass __attribute__((unused)), test_nfail __attribute__((unused));

#define TEST(name) static void name(void)

#define CHECK(cond) do { if (!(cond)) { test_failed_checks++; \
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)

/* |a - b| <= tol, with both values printed on failure */
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); \
    if (!(fabs(a_ - b_) <= (tol))) { test_failed_checks++; \
    fprintf(stderr, "%s:%d: %s = %.17g, %s = %.17g, |diff| %.3g > %.3g\n", __FILE__, __LINE__, \
            #a, a_, #b, b_, fabs(a_ - b_), (double)(tol)); } } while (0)

#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) { test_failed_checks++; \
    fprintf(stderr, "%s:%d: %s = \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, \
            a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } } while (0)

#define RUN(name) do { test_failed_checks = 0; name(); \
    if (test_failed_checks) { test_nfail++; printf("fail: %s\n", #name); } \
    else { test_npass++; printf("pass: %s\n", #name); } fflush(stdout); } while (0)

static inline int test_summary(void) { return test_nfail ? 1 : 0; }

/* the folder of the running test binary into dir (where make puts the libraries it loads) */
#include <unistd.h>
static inline void test_exe_dir(char *dir, size_t len) {
    ssize_t n = readlink("/proc/self/exe", dir, len - 1);
    dir[n > 0 ? n : 0] = 0;
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
}

#endif
