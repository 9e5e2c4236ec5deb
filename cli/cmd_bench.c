/* cmd_bench.c — gptc bench: time full training steps (forward, backward, optimizer) on
 * random tokens from a seeded initialization; prints the median and the peak memory. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "trainer/trainer.h"

const char bench_usage[] =
    "usage: gptc bench MODEL [--preset P] [--set NAME=VALUE]… [--schedule NAME=VALUE[,…]]…\n"
    "                  [--steps N] [--warmup W] [--threads T] [--backend cpu|ref|cuda] [--dtype f32|f64|bf16]\n"
    "Times N training steps (default 5) after W warm-up steps (default 1): gradients on a\n"
    "batch of random tokens (an eot about every 400) and the optimizer update. Prints every\n"
    "step's time, then 'median_ms_per_step: X', the medians of the gradient step and the\n"
    "update, and 'peak_rss_mb: Y'. The cpu backend also prints where a step's time goes\n"
    "(products, attention, loop kernels, scatter-adds), the GFLOP/s its products reach\n"
    "against one large sgemm timed in the same run, and how many of its small kernels run\n"
    "in groups, several at once; 'products_kernel:' says what multiplies (gptc's AVX-512\n"
    "kernel or OpenBLAS; GPTC_SGEMM=openblas|avx512 picks one). Every step runs with the\n"
    "schedules at step 0, but for those --schedule pins; 'schedules:' prints them.\n"
    "--threads sets the OpenMP and OpenBLAS threads.\n"
    CLI_SCHEDULE_HELP CLI_EXEC_HELP "\n";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, long n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void reset_stats(Trainer *t) {
    RtStats st;
    rt_exec_stats(t->grad_r, &st, true);
    rt_exec_stats(t->upd_r, &st, true);
}

/* the cpu backend's time by kind of kernel, a mean step, and its products against sgemm */
static void print_split(Trainer *t, long steps) {
    RtStats g, u;
    if (!rt_exec_stats(t->grad_r, &g, false) || !rt_exec_stats(t->upd_r, &u, false)) return;
    double k = 1e3 / (double)steps, prod = g.product_sec + u.product_sec, flops = g.product_flops + u.product_flops;
    printf("split_ms: products %.1f, attention %.1f, loop kernels %.1f, scatter-adds %.1f (a mean step)\n",
           prod * k, (g.attention_sec + u.attention_sec) * k, (g.loop_sec + u.loop_sec) * k,
           (g.scatter_sec + u.scatter_sec) * k);
    double peak = rt_blas_sgemm_gflops(), got = prod > 0 ? flops / prod / 1e9 : 0;
    printf("products: %.1f GFLOP a step (gradient %.1f, update %.1f) at %.0f GFLOP/s; one large sgemm here: "
           "%.0f GFLOP/s (%.0f%%)\n", flops / 1e9 / (double)steps, g.product_flops / 1e9 / (double)steps,
           u.product_flops / 1e9 / (double)steps, got, peak, peak > 0 ? 100 * got / peak : 0);
    printf("groups: gradient step %d of %d kernels in %d groups, update %d of %d in %d (kernels run several at "
           "once, one a thread)\n", g.grouped, g.kernels, g.groups, u.grouped, u.kernels, u.groups);
}

static void print_summary(Trainer *t, double **ms, long steps) {
    printf("median_ms_per_step: %.1f\nmedian_gradient_ms: %.1f\nmedian_update_ms: %.1f\n", median(ms[0], steps),
           median(ms[1], steps), median(ms[2], steps));
    print_split(t, steps);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak_rss_mb: %.0f\n", ru.ru_maxrss / 1024.0);
}

static int run_bench(FeCompile *c, long steps, long warmup, RtBackend be, RtPrec prec) {
    char err[512];
    Trainer t;
    double t0 = clock_seconds() * 1e3;
    if (trainer_init(&t, c, be, prec, err, sizeof err) != 0) {
        cli_error("bench", err);
        trainer_free(&t);
        return 1;
    }
    printf("setup_ms: %.0f\nplanned_bytes: %zu (gradient step) + %zu (update)\n", clock_seconds() * 1e3 - t0,
           rt_exec_peak_bytes(t.grad_r), rt_exec_peak_bytes(t.upd_r));
    if (be == RT_CUDA_BACKEND) {
        char dev[256];
        rt_gpu_describe(dev, sizeof dev);
        printf("device: %s\ndevice_mb: %.0f\n", dev, (rt_exec_peak_bytes(t.grad_r) + rt_exec_peak_bytes(t.upd_r)) / 1048576.0);
    }
    init_params(&c->prog, 0, t.param);
    const ConfigEntry *v = fe_config(&c->prog, "vocab"), *e = fe_config(&c->prog, "eot");
    int64_t T = c->prog.T, V = v ? (int64_t)v->value : 256;
    int32_t *tok = xmalloc(sizeof(int32_t) * (size_t)(T + 1));
    Rng rng;
    rng_seed(&rng, 0, 0);
    for (int64_t i = 0; i <= T; i++)
        tok[i] = (e && rng_uniform(&rng) < 0.0025) ? (int32_t)e->value : (int32_t)(rng_next(&rng) % (uint64_t)V);
    double *ms[3];   /* by timed step: whole, gradient step, update */
    for (int i = 0; i < 3; i++) ms[i] = xmalloc(sizeof(double) * (size_t)steps);
    int rc = 0;
    trainer_set_schedules(&t, 0);   /* the schedules at step 0 (as printed); they stay set */
    for (long s = 0; s < warmup + steps && rc == 0; s++) {
        if (s == warmup) reset_stats(&t);
        double t0 = clock_seconds() * 1e3, loss = 0;
        rc = trainer_grad(&t, tok, tok + 1, &loss, err, sizeof err);
        rt_exec_sync(t.grad_r);
        double t1 = clock_seconds() * 1e3;
        if (rc == 0) rc = trainer_update(&t, s, err, sizeof err);
        rt_exec_sync(t.upd_r);   /* the update runs asynchronously on cuda: time it whole */
        double t2 = clock_seconds() * 1e3;
        if (s >= warmup) {
            ms[0][s - warmup] = t2 - t0;
            ms[1][s - warmup] = t1 - t0;
            ms[2][s - warmup] = t2 - t1;
        }
        printf("step %ld%s: %.1f ms (gradient %.1f, update %.1f)  loss %.4f\n", s, s < warmup ? " (warm-up)" : "",
               t2 - t0, t1 - t0, t2 - t1, loss);
        fflush(stdout);
    }
    if (rc == 0) print_summary(&t, ms, steps);
    else cli_error("bench", err);
    for (int i = 0; i < 3; i++) free(ms[i]);
    free(tok);
    trainer_free(&t);
    return rc ? 1 : 0;
}

int cmd_bench(int argc, char **argv) {
    const char *steps_s = NULL, *warm_s = NULL, *threads_s = NULL, *backend = NULL, *dtype = NULL;
    CliList pins = {0};
    const CliOpt opts[] = {CLI_LIST("--schedule", &pins), CLI_OPT("--steps", &steps_s), CLI_OPT("--warmup", &warm_s),
                           CLI_OPT("--threads", &threads_s), CLI_OPT("--backend", &backend), CLI_OPT("--dtype", &dtype)};
    ModelArgs m;
    char usage[4096];
    snprintf(usage, sizeof usage, "%s%s", bench_usage, model_options);
    int rc = parse_model_args("bench", argc, argv, &m, usage, opts, (int)(sizeof opts / sizeof opts[0]));
    long steps = steps_s ? atol(steps_s) : 5, warmup = warm_s ? atol(warm_s) : 1, threads = threads_s ? atol(threads_s) : 0;
    RtBackend be = RT_CPU_BACKEND;
    RtPrec prec = RT_F32;
    if (rc < 0 && (steps < 1 || warmup < 0 || (threads_s && threads < 1)))
        rc = usage_error("bench", "--steps, --warmup and --threads take positive numbers");
    if (rc < 0) rc = cli_parse_exec("bench", backend, dtype, &be, &prec);
    if (rc >= 0) {
        free_model_args(&m);
        return rc;
    }
    if (threads > 0) {
        omp_set_num_threads((int)threads);
        openblas_set_num_threads((int)threads);
    }
    FeCompile c;
    rc = compile_model(&c, &m) ? 1 : cli_pin_schedules("bench", &c, &pins);
    if (rc == 0) {
        char sched[1024];
        cli_schedules_text(&c, 0, false, sched, sizeof sched);
        printf("gptc bench: %s T=%lld threads %d backend %s %s\nschedules: %s\n", m.model, (long long)c.prog.T,
               omp_get_max_threads(), rt_backend_name(be), rt_prec_name(prec), sched);
        printf("blas: %s\nblas_core: %s\nproducts_kernel: %s\n", rt_blas_describe(), rt_blas_core(),
               rt_sgemm_describe());
        const char *fb = getenv("GPTC_BLAS_FALLBACK");
        if (fb && *fb) printf("blas_fallback: %s (OpenBLAS's own choice for this CPU; gptc set OPENBLAS_CORETYPE)\n", fb);
        rc = run_bench(&c, steps, warmup, be, prec);
    }
    fe_free(&c);
    free_model_args(&m);
    return rc;
}
