/* test_diff_fuzz.c — differential fuzzing of the compiler: random well-typed models
 * (tests/fuzz_gen.c writes their .gptc text), each compiled by the front end and checked
 * three ways:
 *
 *   fd    the ref backend's float64 gradients against central finite differences of its
 *         float64 loss, computed on the forward graph as the front end built it (before
 *         autodiff and the IR passes, whose loss must equal the gradient step's to 1e-12):
 *         one direction per parameter (unit length, half along the gradient so that
 *         ⟨∇L, v⟩ is never tiny beside ‖∇L‖, half random) and one across all of them,
 *         h = 1e-5. Accepted when |fd − ⟨∇L, v⟩| ≤ 1e-6·|⟨∇L, v⟩| + 1e-9: the truncation
 *         error h²·L'''/6 and the rounding of the loss difference (~1e-16·|L|/h) stay
 *         well below that (over 400 models the worst |fd − ⟨∇L, v⟩| was 5e-7 of
 *         max(|⟨∇L, v⟩|, 1e-3)), while a wrong rule moves a gradient by a good fraction of
 *         itself (a derivative of erf off by 7e-5 relative already fails 6 of 12
 *         default models). A direction that fails is tried again at h/8 before it counts:
 *         a relu whose input crosses zero between L(θ ± hv) (a kink, not a bug) rarely
 *         crosses again; a wrong gradient fails at every h.
 *   cpu   the fused cpu backend in float32 (generated C kernels) against ref float64 on the
 *         same values, each tensor (the loss, every gradient) within rel·max|ref64| +
 *         8·max|ref32 − ref64| (+ 1e-7 of the largest gradient element, for gradients),
 *         rel = 2e-5 for the loss and 2e-4 for gradients. Float32 through the models'
 *         chains of 10–40 ops leaves a few 1e-6 of the largest element (the worst error
 *         over its tolerance is printed on the pass line); the second term, 8 times what
 *         the op-by-op float32 interpreter (ref f32) misses, admits gradients that cancel
 *         to nearly zero (a scale's gradient through a norm that undoes the scale), where
 *         any float32 computation is mostly rounding; the third, gradients that are zero
 *         by the model's making (attention over keys whose values are all equal). A
 *         kernel that reads a wrong element or drops a term is off by far more
 *         (softplus's log1p term off by 1e-3 fails 5 default models). Frozen parameters
 *         (opt none) have no gradient: fd perturbs and cpu compares the trainable ones.
 *   cuda  the gradient step is fused and its CUDA source written, in float32 and in bf16
 *         storage, for every model; the first FUZZ_NVRTC models' float32 source (default 1)
 *         is compiled with NVRTC for sm_90 when the CUDA toolkit is there, without a
 *         warning. With FUZZ_EMU = N the first N models also run on the cuda backend on the
 *         CUDA emulator (f32, the cpu check's tolerance); about 30 s a model on 2 cores, so
 *         the default run leaves it out.
 *
 * The models the fuzzer found bugs with are kept as tests/models/fuzz_*.gptc (each says
 * what went wrong); the default run checks them first, with seed 1's values.
 *
 * Modes. The suite runs a fixed seed and a few models (`build-asan/tests/test_diff_fuzz`,
 * from the repository's root). A soak runs more, faster in the release build
 * (`./build/tests/test_diff_fuzz`):
 *   FUZZ_MODELS=N or --models N   models to generate (default 16)
 *   FUZZ_SEED=S or --seed S       model i is generated from seed S + i (default 1)
 *   FUZZ_NVRTC=N or --nvrtc N     models whose CUDA source NVRTC compiles (default 1)
 *   FUZZ_EMU=N or --emu N         models run on the CUDA emulator too (default 0)
 *   --keep DIR                    write every generated model to DIR/fuzz-SEED.gptc
 *   --model FILE                  check a model file instead (repeatable; its config has
 *                                 vocab and eot, its inputs are tokens and targets)
 * A failure prints the model's seed, the check, the worst tensor and its error, and writes
 * the model to DIR (--keep) or $TMPDIR (default /tmp) as fuzz-SEED.gptc; rerun it alone
 * with `build-asan/tests/test_diff_fuzz --seed SEED --models 1 --keep DIR`, or, once
 * edited, with `--model FILE`. One line per check kind ("pass: cpu f32 against ref f64
 * (13 models, …)"), or a "fail:" line per failing model and check and one per kind. */
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "frontend/frontend.h"
#include "runtime/runtime.h"
#include "step/step.h"
#include "tests/fuzz_gen.h"
#include "tests/test.h"

enum { CHECK_FRONTEND, CHECK_FD, CHECK_CPU, CHECK_CUDA, CHECK_EMU, NCHECKS };
static const char *check_names[NCHECKS] = {"front end", "fd", "cpu", "cuda", "cuda emulated"};

typedef struct {
    uint64_t seed;
    const char *file;       /* a model file given instead of a generated model */
    const char *keep;       /* where models are written; NULL: only failing ones, to $TMPDIR */
    char *text, path[512];
    FuzzSizes sz;
    FeCompile c;            /* the gradient step */
    StepGrad gg;
    FeCompile fwd;          /* the forward graph alone, for finite differences */
    int np;
    double **theta, **grad; /* parameters; ref f64 gradients */
    double loss;
    int32_t *tokens, *targets;
    bool failed[NCHECKS];
} Case;

static struct {
    int models, nvrtc, compiled, emu, emulated, failures[NCHECKS], directions;
    double worst_fd, worst_loss, worst_grad;
} run;

/* writes the model's text to its file (once) and returns the path */
static const char *model_path(Case *k) {
    if (k->file) return k->file;
    if (k->path[0]) return k->path;
    const char *dir = k->keep ? k->keep : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(k->path, sizeof k->path, "%s/fuzz-%llu.gptc", dir, (unsigned long long)k->seed);
    FILE *f = fopen(k->path, "w");
    if (!f || fputs(k->text, f) < 0 || fclose(f) != 0) fprintf(stderr, "cannot write %s: %s\n", k->path, strerror(errno));
    return k->path;
}

static void failure(Case *k, int check, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void failure(Case *k, int check, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!k->failed[check]) run.failures[check]++;
    k->failed[check] = true;
    if (k->file) printf("fail: diff_fuzz %s %s: %s\n", k->file, check_names[check], msg);
    else printf("fail: diff_fuzz seed %llu %s: %s (model %s)\n", (unsigned long long)k->seed, check_names[check], msg,
                model_path(k));
    fflush(stdout);
}

/* fe_compile on the case's text (or file); the front end's messages are printed only with a failure */
static bool compile(Case *k, FeCompile *c) {
    char name[64], *msgs = NULL;
    size_t len = 0;
    snprintf(name, sizeof name, "fuzz-%llu.gptc", (unsigned long long)k->seed);
    FeOptions o = {.path = k->file ? k->file : name, .text = k->text, .text_len = k->text ? strlen(k->text) : 0};
    FILE *out = open_memstream(&msgs, &len);
    int rc = fe_compile(c, &o, out);
    fclose(out);
    if (rc) failure(k, CHECK_FRONTEND, "the model does not compile:\n%s", msgs);
    free(msgs);
    return rc == 0;
}

/* parameters as test_model_fd draws them; random tokens, each eot with probability 1/5
 * (documents of random lengths), and random targets */
static void draw_values(Case *k, uint64_t *rng) {
    Program *p = &k->c.prog;
    k->np = p->nparams;
    k->theta = calloc((size_t)k->np, sizeof(double *));
    k->grad = calloc((size_t)k->np, sizeof(double *));
    for (int i = 0; i < k->np; i++) {
        const ParamDecl *d = &p->params[i];
        int64_t n = fe_param_count(d);
        double s = d->ndim >= 2 ? 1.0 / sqrt((double)d->shape[d->ndim - 1]) : 0.5;
        k->theta[i] = malloc(sizeof(double) * (size_t)n);
        k->grad[i] = calloc((size_t)n, sizeof(double));   /* stays 0 for a frozen parameter */
        for (int64_t j = 0; j < n; j++) k->theta[i][j] = (d->ndim < 2 ? 0.7 : 0) + s * (2 * fuzz_unit(rng) - 1);
    }
    int T = k->sz.T;
    k->tokens = malloc(sizeof(int32_t) * (size_t)T);
    k->targets = malloc(sizeof(int32_t) * (size_t)T);
    for (int t = 0; t < T; t++) {
        k->tokens[t] = (int32_t)(fuzz_next(rng) % (uint64_t)k->sz.V);
        if (fuzz_next(rng) % 5 == 0) k->tokens[t] = k->sz.eot;
        k->targets[t] = (int32_t)(fuzz_next(rng) % (uint64_t)k->sz.V);
    }
}

/* an executor of p's graph keeping its outputs, with the case's inputs and schedules set
 * (parameters are set before each run) */
static RtExec *executor(Case *k, FeCompile *c, RtBackend b, RtPrec prec, char *err, size_t errlen) {
    Program *p = &c->prog;
    RtExec *x = rt_exec_new(b, p->graph, prec, p->graph->outputs, p->graph->noutputs, err, errlen);
    if (!x) return NULL;
    IrNode *tok = ir_leaf_named(p->graph, IR_INPUT, "tokens"), *tgt = ir_leaf_named(p->graph, IR_INPUT, "targets");
    if (tok) rt_exec_set_i32(x, tok, k->tokens);
    if (tgt) rt_exec_set_i32(x, tgt, k->targets);
    for (int i = 0; i < p->nschedules; i++)
        rt_exec_set_scalar(x, p->schedules[i].name, fe_schedule_value(c, p->schedules[i].name, 0));
    return x;
}

/* a parameter with a gradient: a frozen one (opt none) has no gradient output, and the
 * checks compare and perturb only the trainable ones */
static bool trainable(const Case *k, int i) { return k->gg.grad_out[i] >= 0; }

static int set_and_run(RtExec *x, Program *p, double **theta, char *err, size_t errlen) {
    for (int i = 0; i < p->nparams; i++) rt_exec_set(x, p->params[i].node, theta[i]);
    return rt_exec_run(x, err, errlen);
}

/* ---- fd: ref f64 gradients against finite differences ------------------------------------ */

static double loss_along(RtExec *x, Case *k, double **dir, double t, double **tmp) {
    Program *p = &k->fwd.prog;
    for (int i = 0; i < k->np; i++)
        for (int64_t j = 0; j < fe_param_count(&p->params[i]); j++) tmp[i][j] = k->theta[i][j] + t * dir[i][j];
    char err[512];
    double L = NAN;
    if (set_and_run(x, p, tmp, err, sizeof err) == 0) rt_exec_get(x, p->graph->outputs[0], &L);
    return L;
}

/* direction on parameter `only` (or every trainable one when -1): unit length, half along
 * the gradient; zero on frozen parameters, whose gradient the step does not compute */
static void direction(Case *k, int only, uint64_t *rng, double **dir) {
    double gn = 0, rn = 0;
    for (int i = 0; i < k->np; i++)
        for (int64_t j = 0; j < fe_param_count(&k->c.prog.params[i]); j++) {
            bool on = (only < 0 || only == i) && trainable(k, i);
            dir[i][j] = on ? 2 * fuzz_unit(rng) - 1 : 0;
            rn += dir[i][j] * dir[i][j];
            gn += on ? k->grad[i][j] * k->grad[i][j] : 0;
        }
    double sg = gn > 0 ? 1 / sqrt(gn) : 0, sr = rn > 0 ? 1 / sqrt(rn) : 0, norm = 0;
    for (int i = 0; i < k->np; i++)
        for (int64_t j = 0; j < fe_param_count(&k->c.prog.params[i]); j++) {
            bool on = (only < 0 || only == i) && trainable(k, i);
            dir[i][j] = dir[i][j] * sr + (on ? k->grad[i][j] * sg : 0);
            norm += dir[i][j] * dir[i][j];
        }
    for (int i = 0; i < k->np && norm > 0; i++)
        for (int64_t j = 0; j < fe_param_count(&k->c.prog.params[i]); j++) dir[i][j] /= sqrt(norm);
}

static void check_fd(Case *k, uint64_t *rng) {
    char err[512];
    RtExec *x = executor(k, &k->fwd, RT_REF_BACKEND, RT_F64, err, sizeof err);
    if (!x) { failure(k, CHECK_FD, "ref: %s", err); return; }
    double **dir = calloc((size_t)k->np, sizeof(double *)), **tmp = calloc((size_t)k->np, sizeof(double *));
    for (int i = 0; i < k->np; i++) {
        dir[i] = calloc((size_t)fe_param_count(&k->c.prog.params[i]), sizeof(double));
        tmp[i] = malloc(sizeof(double) * (size_t)fe_param_count(&k->c.prog.params[i]));
    }
    double L0 = loss_along(x, k, dir, 0, tmp);   /* the forward graph's loss is the step's */
    if (!(fabs(L0 - k->loss) <= 1e-12 * fmax(1, fabs(k->loss))))
        failure(k, CHECK_FD, "forward graph loss %.17g, gradient step's %.17g", L0, k->loss);
    for (int only = -1; only < k->np; only++) {
        if (only >= 0 && !trainable(k, only)) continue;
        direction(k, only, rng, dir);
        double dot = 0, fd = 0, rel = 0;
        for (int i = 0; i < k->np; i++)
            for (int64_t j = 0; j < fe_param_count(&k->c.prog.params[i]); j++) dot += dir[i][j] * k->grad[i][j];
        for (double h = 1e-5; h > 1e-6; h /= 8) {
            fd = (loss_along(x, k, dir, h, tmp) - loss_along(x, k, dir, -h, tmp)) / (2 * h);
            rel = fabs(fd - dot) / (1e-6 * fabs(dot) + 1e-9);   /* ≤ 1 passes */
            if (rel <= 1) break;
        }
        run.directions++;
        run.worst_fd = fmax(run.worst_fd, fabs(fd - dot) / fmax(fabs(dot), 1e-3));
        if (!(rel <= 1))
            failure(k, CHECK_FD, "direction along %s: finite difference %.12g, gradient %.12g, |diff| %.3g",
                    only < 0 ? "every parameter" : k->c.prog.params[only].name, fd, dot, fabs(fd - dot));
    }
    for (int i = 0; i < k->np; i++) free(dir[i]), free(tmp[i]);
    free(dir), free(tmp);
    rt_exec_free(x);
}

/* ---- cpu: the fused backend in f32 against ref f64 ------------------------------------------ */

/* the loss and every gradient of a run of x, in out[0] (the loss) and out[1 + i] */
static double **outputs_of(RtExec *x, Case *k) {
    Program *p = &k->c.prog;
    double **out = calloc((size_t)k->np + 1, sizeof(double *));
    out[0] = malloc(sizeof(double));
    rt_exec_get(x, p->graph->outputs[k->gg.loss_out], out[0]);
    for (int i = 0; i < k->np; i++) {
        out[1 + i] = calloc((size_t)fe_param_count(&p->params[i]), sizeof(double));
        if (trainable(k, i)) rt_exec_get(x, p->graph->outputs[k->gg.grad_out[i]], out[1 + i]);
    }
    return out;
}

static void free_outputs(Case *k, double **out) {
    for (int i = 0; out && i <= k->np; i++) free(out[i]);
    free(out);
}

/* max |a - b| over n values */
static double max_diff(const double *a, const double *b, int64_t n) {
    double m = 0;
    for (int64_t j = 0; j < n; j++)
        if (!(fabs(a[j] - b[j]) <= m)) m = fabs(a[j] - b[j]);
    return m;
}

/* One tensor (the loss, or a gradient): its cpu error against ref f64 over the error it
 * may have, rel·max|ref64| + 8·max|ref32 − ref64| + floor; at most 1 passes. The second
 * term admits what float32 itself cannot resolve (a gradient that cancels to nearly zero,
 * as a scale's through a norm that undoes it), measured by the op-by-op f32 interpreter;
 * floor is an absolute error small beside the whole step's gradients (GRAD_FLOOR). */
static double error_ratio(const double *cpu, const double *r32, const double *r64, int64_t n, double rel,
                          double floor) {
    double m = 0;
    for (int64_t j = 0; j < n; j++) m = fmax(m, fabs(r64[j]));
    return max_diff(cpu, r64, n) / (rel * m + 8 * max_diff(r32, r64, n) + floor + 1e-300);
}

/* A gradient's error below this fraction of the step's largest gradient element passes: float32's
 * resolution (2^-24 ≈ 6e-8) of the values it was computed from. It admits a gradient that is
 * zero or nearly so because the model makes it so (attention over keys whose values are all
 * equal: no score matters; erf saturated at 1), where the fused kernels' rounding differs from
 * the f32 interpreter's (1e-9 to 2e-8 of the largest gradient seen); a wrong kernel is off by
 * a fraction of the gradient itself. */
#define GRAD_FLOOR 1e-7

/* the largest gradient element of the step (ref f64) */
static double largest_gradient(const Case *k) {
    double m = 0;
    for (int i = 0; i < k->np; i++)
        for (int64_t j = 0; trainable(k, i) && j < fe_param_count(&k->c.prog.params[i]); j++)
            m = fmax(m, fabs(k->grad[i][j]));
    return m;
}

/* backend b (cpu, or cuda on the emulator) in f32 against ref f64; its failures count as
 * check `check` */
static void check_backend(Case *k, RtBackend b, int check) {
    Program *p = &k->c.prog;
    char err[1024];
    RtExec *x = executor(k, &k->c, b, RT_F32, err, sizeof err);
    RtExec *r = x ? executor(k, &k->c, RT_REF_BACKEND, RT_F32, err, sizeof err) : NULL;
    if (!x || !r || set_and_run(x, p, k->theta, err, sizeof err) != 0 || set_and_run(r, p, k->theta, err, sizeof err) != 0) {
        failure(k, check, "%s backend: %s", x ? "ref f32" : rt_backend_name(b), err);
        rt_exec_free(x);
        rt_exec_free(r);
        return;
    }
    double **cpu = outputs_of(x, k), **r32 = outputs_of(r, k);
    double lr = error_ratio(cpu[0], r32[0], &k->loss, 1, 2e-5, 0);
    if (check == CHECK_CPU) run.worst_loss = fmax(run.worst_loss, lr);
    if (!(lr <= 1)) failure(k, check, "loss %.9g, ref f64 %.9g, ref f32 %.9g: %.3g times the tolerance", cpu[0][0], k->loss, r32[0][0], lr);
    int worst = -1;
    double worst_ratio = 0, gmax = largest_gradient(k);
    for (int i = 0; i < k->np; i++) {
        if (!trainable(k, i)) continue;
        double q = error_ratio(cpu[1 + i], r32[1 + i], k->grad[i], fe_param_count(&p->params[i]), 2e-4, GRAD_FLOOR * gmax);
        if (!(q <= worst_ratio)) worst_ratio = q, worst = i;
    }
    if (check == CHECK_CPU) run.worst_grad = fmax(run.worst_grad, worst_ratio);
    if (!(worst_ratio <= 1)) {
        int64_t n = fe_param_count(&p->params[worst]);
        double m = 0;
        for (int64_t j = 0; j < n; j++) m = fmax(m, fabs(k->grad[worst][j]));
        failure(k, check, "gradient of %s: max|cpu - ref64| %.3g, max|ref32 - ref64| %.3g, max|ref64| %.3g (of every gradient %.3g): %.3g times the tolerance",
                p->params[worst].name, max_diff(cpu[1 + worst], k->grad[worst], n),
                max_diff(r32[1 + worst], k->grad[worst], n), m, gmax, worst_ratio);
    }
    free_outputs(k, cpu);
    free_outputs(k, r32);
    rt_exec_free(x);
    rt_exec_free(r);
}

/* ---- cuda: the step's CUDA source, and NVRTC on the first models ----------------------------- */

/* the cuda backend on the CUDA emulator: GPTC_CUDA_EMULATE set for this run only (NVRTC
 * checks compile for the device), the emulator's library the one built next to this
 * binary's folder unless GPTC_LIBCUDAEMU names one */
static void check_emulated(Case *k) {
    char exe[4096], lib[4200];
    test_exe_dir(exe, sizeof exe);
    snprintf(lib, sizeof lib, "%s/../libgptc-cudaemu.so", exe);
    if (!getenv("GPTC_LIBCUDAEMU")) setenv("GPTC_LIBCUDAEMU", lib, 1);
    setenv("GPTC_CUDA_EMULATE", "1", 1);
    run.emulated++;
    check_backend(k, RT_CUDA_BACKEND, CHECK_EMU);
    unsetenv("GPTC_CUDA_EMULATE");
}

static bool have_nvrtc(void) {
    char lib[512];
    snprintf(lib, sizeof lib, "%s/lib64/libnvrtc.so", cg_cuda_home());
    return access(lib, R_OK) == 0;
}

static void check_cuda(Case *k) {
    IrGraph *g = k->c.prog.graph;
    char err[4096];
    for (int store = CG_STORE_F32; store <= CG_STORE_BF16; store++) {
        CgStep *cs = cg_fuse(g, g->outputs, g->noutputs, (CgStore)store, err, sizeof err);
        char *src = cs ? cg_step_source(cs, CG_CUDA) : NULL;
        if (!src) failure(k, CHECK_CUDA, "%s: no CUDA source: %s", store ? "bf16" : "f32", cs ? "" : err);
        if (src && store == CG_STORE_F32 && run.compiled < run.nvrtc && have_nvrtc()) {
            char path[4200], *log = NULL;
            bool cached;
            run.compiled++;
            if (cg_compile_cuda(src, "sm_90", path, sizeof path, &cached, &log, err, sizeof err) != 0)
                failure(k, CHECK_CUDA, "NVRTC: %s", err);
            else if (log && strstr(log, "warning"))
                failure(k, CHECK_CUDA, "NVRTC warns: %.300s", strstr(log, "warning"));
            free(log);
        }
        free(src);
        cg_step_free(cs);
    }
}

/* ---- one model ------------------------------------------------------------------------------- */

static void free_case(Case *k) {
    for (int i = 0; k->theta && i < k->np; i++) free(k->theta[i]), free(k->grad[i]);
    free(k->theta), free(k->grad), free(k->tokens), free(k->targets), free(k->text);
    step_grad_free(&k->gg);
    fe_free(&k->c);
    fe_free(&k->fwd);
}

/* the ref f64 loss and gradients every other check compares with */
static bool ref_gradients(Case *k) {
    Program *p = &k->c.prog;
    char err[512];
    RtExec *x = executor(k, &k->c, RT_REF_BACKEND, RT_F64, err, sizeof err);
    int rc = x ? set_and_run(x, p, k->theta, err, sizeof err) : -1;
    if (rc == 0) {
        rt_exec_get(x, p->graph->outputs[k->gg.loss_out], &k->loss);
        for (int i = 0; i < k->np; i++)
            if (trainable(k, i)) rt_exec_get(x, p->graph->outputs[k->gg.grad_out[i]], k->grad[i]);
        if (!isfinite(k->loss)) {
            failure(k, CHECK_FD, "ref f64 loss is %g", k->loss);
            rc = -1;
        }
    } else {
        failure(k, CHECK_FD, "ref f64 run: %s", err);
    }
    rt_exec_free(x);
    return rc == 0;
}

/* a model file's sizes: vocab, eot and T from its config */
static bool file_sizes(Case *k) {
    const ConfigEntry *v = fe_config(&k->c.prog, "vocab"), *e = fe_config(&k->c.prog, "eot");
    if (!v || !e) {
        failure(k, CHECK_FRONTEND, "the model has no config vocab or eot");
        return false;
    }
    k->sz = (FuzzSizes){(int)k->c.prog.T, (int)v->value, (int)e->value};
    return true;
}

/* generated model number `seed`, or (file not NULL) a model file with seed's values */
static void check_model(uint64_t seed, const char *file, const char *keep) {
    Case k = {.seed = seed, .file = file, .keep = keep};
    if (!file) k.text = fuzz_model(seed, &k.sz);
    if (keep && !file) model_path(&k);
    uint64_t rng = seed ^ 0x5DEECE66Dull;
    fuzz_next(&rng);
    char err[512];
    if (!compile(&k, &k.c) || !compile(&k, &k.fwd) || (file && !file_sizes(&k))) { free_case(&k); return; }
    if (step_grad_build(&k.c.prog, &k.gg, err, sizeof err) != 0) {
        failure(&k, CHECK_FRONTEND, "gradient step: %s", err);
        free_case(&k);
        return;
    }
    draw_values(&k, &rng);
    if (ref_gradients(&k)) {
        check_fd(&k, &rng);
        check_backend(&k, RT_CPU_BACKEND, CHECK_CPU);
        if (run.emulated < run.emu) check_emulated(&k);
    }
    check_cuda(&k);
    free_case(&k);
}

static long option(int argc, char **argv, const char *flag, const char *env, long dflt) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], flag)) return strtol(argv[i + 1], NULL, 10);
    return getenv(env) ? strtol(getenv(env), NULL, 10) : dflt;
}

static void summary(int check, const char *what, const char *detail) {
    if (run.failures[check])
        printf("fail: %s (%d of %d models)\n", what, run.failures[check], run.models);
    else
        printf("pass: %s (%d models%s)\n", what, run.models, detail);
}

int main(int argc, char **argv) {
    uint64_t seed = (uint64_t)option(argc, argv, "--seed", "FUZZ_SEED", 1);
    int ngen = (int)option(argc, argv, "--models", "FUZZ_MODELS", 16);
    run.nvrtc = (int)option(argc, argv, "--nvrtc", "FUZZ_NVRTC", 1);
    run.emu = (int)option(argc, argv, "--emu", "FUZZ_EMU", 0);
    const char *keep = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--keep")) keep = argv[i + 1];
    if (keep && mkdir(keep, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", keep, strerror(errno));
        return 2;
    }
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--model")) check_model(seed, argv[i + 1], NULL), run.models++;
    if (run.models == 0) {   /* the models the fuzzer found bugs with, then generated ones */
        glob_t gl;
        if (glob("tests/models/fuzz_*.gptc", 0, NULL, &gl) == 0)
            for (size_t i = 0; i < gl.gl_pathc; i++) check_model(seed, gl.gl_pathv[i], NULL), run.models++;
        globfree(&gl);
        for (int i = 0; i < ngen; i++) check_model(seed + (uint64_t)i, NULL, keep), run.models++;
    }
    char d[160];
    summary(CHECK_FRONTEND, "front end compiles every generated model", "");
    snprintf(d, sizeof d, ", %d directions, worst |fd - dot| / max(|dot|, 1e-3) %.2g", run.directions, run.worst_fd);
    summary(CHECK_FD, "ref f64 gradients against finite differences", d);
    snprintf(d, sizeof d, ", worst errors over their tolerance: loss %.2g, gradients %.2g", run.worst_loss, run.worst_grad);
    summary(CHECK_CPU, "cpu f32 against ref f64", d);
    snprintf(d, sizeof d, ", f32 and bf16 sources; %d compiled with NVRTC", run.compiled);
    summary(CHECK_CUDA, "cuda sources", d);
    if (run.failures[CHECK_EMU])
        printf("fail: cuda f32 on the emulator against ref f64 (%d of %d models)\n", run.failures[CHECK_EMU], run.emulated);
    else if (run.emulated)
        printf("pass: cuda f32 on the emulator against ref f64 (%d models)\n", run.emulated);
    int failed = 0;
    for (int c = 0; c < NCHECKS; c++) failed += run.failures[c];
    return failed ? 1 : 0;
}
