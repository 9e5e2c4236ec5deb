/* blas.c — OpenBLAS's kernels for the CPU we run on.
 *
 * A DYNAMIC_ARCH OpenBLAS picks its kernels by the CPU's model number when the library
 * loads. A CPU newer than the library (a model number it does not know) gets the generic
 * fallback, Prescott's SSE3 kernels: on a 2-core AVX-512 machine sgemm then reaches ~60
 * GFLOP/s instead of ~300. OPENBLAS_CORETYPE overrides the choice, but it is read only when
 * the library loads, before main. So when the library fell back to a core without AVX2
 * while the CPU has AVX2 and FMA (or AVX-512), the process sets the variable and executes
 * itself again, once: the second time the variable is set and nothing happens. A user's
 * own OPENBLAS_CORETYPE is always left alone. */
#include "runtime/runtime.h"
#include "base/base.h"
#include "runtime/ref_kernels.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* OpenBLAS's x86 cores with AVX2 kernels (a choice among these is the library's own), and
 * whether their sgemm is AVX-512 (where it is, sgemm.c multiplies with it, not its own) */
typedef struct {
    const char *name;
    bool avx512;
} BlasCore;

static const BlasCore avx2_cores[] = {{"Haswell", false}, {"SkylakeX", true}, {"Cooperlake", true},
                                      {"SapphireRapids", true}, {"Zen", false}, {"Excavator", false}};

/* core's entry in avx2_cores, or NULL */
static const BlasCore *avx2_core(const char *core)
{
    for (size_t i = 0; core && i < sizeof avx2_cores / sizeof avx2_cores[0]; i++)
        if (!strcasecmp(core, avx2_cores[i].name)) return &avx2_cores[i];
    return NULL;
}

/* the core whose kernels this CPU runs best, or NULL when none beats the generic ones */
static const char *best_core(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

/* the core to set, or NULL when nothing needs doing */
static const char *core_choice(void)
{
    const char *core = openblas_get_corename();
    if (getenv("OPENBLAS_CORETYPE") || !core || avx2_core(core)) return NULL;
    return best_core();
}

/* this process's argv, read back from /proc (the caller need not pass it) */
static char **own_argv(char *buf, size_t cap)
{
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (!f) return NULL;
    size_t n = fread(buf, 1, cap - 1, f);
    int full = feof(f);
    fclose(f);
    if (!full || n == 0) return NULL;   /* longer than buf: do not run a truncated command */
    buf[n] = 0;
    size_t argc = 0;
    for (size_t i = 0; i < n; i++) argc += buf[i] == 0;
    char **argv = calloc(argc + 1, sizeof *argv);
    if (!argv) return NULL;
    char *p = buf;
    for (size_t i = 0; i < argc; i++, p += strlen(p) + 1) argv[i] = p;
    return argv;
}

void rt_blas_pick_kernels(void)
{
    const char *core = core_choice();
    if (!core) return;
    static char buf[1 << 17];
    char **argv = own_argv(buf, sizeof buf);
    if (!argv) return;
    setenv("GPTC_BLAS_FALLBACK", openblas_get_corename(), 1);   /* what the library chose: gptc bench says */
    setenv("OPENBLAS_CORETYPE", core, 1);
    execv("/proc/self/exe", argv);
    free(argv);   /* exec failed: go on with the generic kernels */
}

const char *rt_blas_describe(void) { return openblas_get_config(); }
const char *rt_blas_core(void) { return openblas_get_corename(); }

bool rt_blas_core_avx512(void)
{
    const BlasCore *c = avx2_core(openblas_get_corename());
    return c && c->avx512;
}

double rt_blas_sgemm_gflops(void)
{
    enum { M = 1024, N = 4096, K = 1024 };
    float *a = xcalloc((size_t)M * K, sizeof *a), *b = xcalloc((size_t)K * N, sizeof *b),
          *c = xcalloc((size_t)M * N, sizeof *c);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 7) * 0.25f;
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)(i % 5) * 0.5f;
    double best = 0;
    for (int r = 0; r < 4; r++) {   /* the first warms the caches and the threads */
        double t0 = clock_seconds();
        rt_ref_matmul_f32(a, b, c, 1, M, N, K, 0, 0);
        double sec = clock_seconds() - t0;
        if (r > 0 && sec > 0 && 2.0 * M * N * K / sec > best) best = 2.0 * M * N * K / sec;
    }
    free(a);
    free(b);
    free(c);
    return best / 1e9;
}
