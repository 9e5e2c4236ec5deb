/* cmd_compile.c — gptc compile: the training step as generated kernels and a plan. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "codegen/codegen.h"
#include "step/step.h"

const char compile_usage[] =
    "usage: gptc compile MODEL [--preset P] [--set NAME=VALUE]… --target c|cuda [--arch sm_90]\n"
    "                   [--precision bf16|f32] -o DIR\n"
    "Fuses the training step (forward + backward, then the optimizer update), generates its\n"
    "kernels and compiles them through the kernel cache ($XDG_CACHE_HOME/gptc, default\n"
    "~/.cache/gptc; a warm start compiles nothing). DIR receives, for the gradient step\n"
    "(grad) and the update (update):\n"
    "  NAME.c + NAME.so        --target c: the C kernels and the shared object (cc -O3 -fopenmp)\n"
    "  NAME.cu + NAME.cubin    --target cuda: the CUDA kernels and the cubin (NVRTC)\n"
    "  NAME.ptxas.txt          --target cuda: registers and spills of every kernel (ptxas -v)\n"
    "  plan.txt                every kernel and library call in order, with launch shapes, bytes\n"
    "                          read and written, FLOPs, and the memory plan\n"
    "  --arch ARCH             the CUDA architecture (default sm_90: H100, H200)\n"
    "  --precision P           storage of the cuda target, as `gptc train --backend cuda --dtype P`\n"
    "                          runs it: bf16 (default: bf16 weights and activations, float32\n"
    "                          master weights, optimizer state and statistics) or f32\n\n";

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = a && b ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) rc = -1;
    if (a) fclose(a);
    if (b && fclose(b)) rc = -1;
    return rc;
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        fprintf(stderr, "gptc compile: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

typedef struct {
    const char *dir, *target, *arch, *precision;
    int nkernels, nlibrary, nfuncs, ncached;
    int64_t fused, unfused, arena;
} Out;

/* sources, compiled object and plan section of one graph */
static int emit_graph(const char *name, const CgStep *s, Out *o, FILE *plan)
{
    bool cuda = !strcmp(o->target, "cuda");
    char file[256], path[4200], err[8192];
    bool cached;
    char *src = cg_step_source(s, cuda ? CG_CUDA : CG_C);
    snprintf(file, sizeof file, "%s.%s", name, cuda ? "cu" : "c");
    int rc = write_text(o->dir, file, src);
    if (rc == 0) {
        char *log = NULL;
        rc = cuda ? cg_compile_cuda(src, o->arch, path, sizeof path, &cached, &log, err, sizeof err)
                  : cg_compile_c(src, path, sizeof path, &cached, err, sizeof err);
        if (rc) fprintf(stderr, "gptc compile: %s\n", err);
        o->ncached += rc == 0 && cached;
        if (rc == 0 && cuda) {
            snprintf(file, sizeof file, "%s.ptxas.txt", name);
            rc = write_text(o->dir, file, log ? log : "");
        }
        free(log);
    }
    if (rc == 0) {
        char dest[4200];
        snprintf(dest, sizeof dest, "%s/%s.%s", o->dir, name, cuda ? "cubin" : "so");
        if ((rc = copy_file(path, dest))) fprintf(stderr, "gptc compile: cannot write %s\n", dest);
    }
    free(src);
    fprintf(plan, "\n######## %s\n", name);
    cg_write_plan(s, plan);
    for (int i = 0; i < s->nk; i++) {
        if (s->k[i].kind == CG_LOOP) o->nkernels++;
        else o->nlibrary++;
    }
    int64_t f, u;
    cg_traffic(s, &f, &u);
    o->fused += f, o->unfused += u, o->nfuncs += s->nfuncs;
    if (s->arena_bytes > o->arena) o->arena = s->arena_bytes;
    return rc;
}

static int compile_step(FeCompile *c, Out *o)
{
    char err[1024];
    StepGrad gg = {0};
    StepUpdate ug = {0};
    CgStep *gs = NULL, *us = NULL;
    int rc = -1;
    double t0 = clock_seconds();
    if (step_grad_build(&c->prog, &gg, err, sizeof err) || step_update_build(c, NULL, &ug, err, sizeof err)) {
        fprintf(stderr, "gptc compile: %s\n", err);
        goto done;
    }
    const IrGraph *g = c->prog.graph;
    IrNode **keep = xmalloc(sizeof *keep * (size_t)(c->prog.nparams + 1));
    keep[0] = g->outputs[gg.loss_out];
    for (int i = 0; i < c->prog.nparams; i++) keep[1 + i] = g->outputs[gg.grad_out[i]];
    bool bf16 = !strcmp(o->precision, "bf16");
    gs = cg_fuse(g, keep, c->prog.nparams + 1, bf16 ? CG_STORE_BF16 : CG_STORE_F32, err, sizeof err);
    free(keep);
    if (gs) us = cg_fuse(ug.g, ug.g->outputs, ug.g->noutputs, bf16 ? CG_STORE_BF16_MASTER : CG_STORE_F32, err, sizeof err);
    if (!gs || !us) {
        fprintf(stderr, "gptc compile: %s\n", err);
        goto done;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/plan.txt", o->dir);
    FILE *plan = fopen(path, "w");
    if (!plan) {
        fprintf(stderr, "gptc compile: cannot write %s: %s\n", path, strerror(errno));
        goto done;
    }
    fprintf(plan, "# gptc compile: the training step, target %s%s%s, storage %s\n", o->target,
            strcmp(o->target, "cuda") ? "" : " ", strcmp(o->target, "cuda") ? "" : o->arch, o->precision);
    rc = emit_graph("grad", gs, o, plan) | emit_graph("update", us, o, plan);
    if (fclose(plan)) rc = -1;
    if (rc == 0)
        printf("%s: %d loop kernels (%d distinct), %d library calls; elementwise traffic %.1f MB fused vs %.1f MB "
               "unfused; arena %.1f MB; %d of 2 objects from the cache; %.2f s\n",
               o->dir, o->nkernels, o->nfuncs, o->nlibrary, o->fused / 1e6, o->unfused / 1e6, o->arena / 1e6,
               o->ncached, clock_seconds() - t0);
done:
    cg_step_free(gs);
    cg_step_free(us);
    step_update_free(&ug);
    step_grad_free(&gg);
    return rc ? 1 : 0;
}

int cmd_compile(int argc, char **argv)
{
    Out o = {.arch = NULL};
    const CliOpt opts[] = {CLI_OPT("--target", &o.target), CLI_OPT("--arch", &o.arch), CLI_OPT("-o", &o.dir),
                           CLI_OPT("--precision", &o.precision)};
    ModelArgs m;
    char usage[4096];
    snprintf(usage, sizeof usage, "%s%s", compile_usage, model_options);
    int rc = parse_model_args("compile", argc, argv, &m, usage, opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc < 0 && (!o.target || !o.dir)) rc = usage_error("compile", "--target and -o are required");
    if (rc < 0 && strcmp(o.target, "c") && strcmp(o.target, "cuda"))
        rc = usage_error("compile", "--target is c or cuda, got '%s'", o.target);
    if (rc < 0 && o.precision && strcmp(o.precision, "bf16") && strcmp(o.precision, "f32"))
        rc = usage_error("compile", "--precision is bf16 or f32, got '%s'", o.precision);
    if (rc < 0 && o.precision && !strcmp(o.target, "c") && strcmp(o.precision, "f32"))
        rc = usage_error("compile", "the c target stores float32 only (--precision f32)");
    if (rc < 0 && o.arch && strncmp(o.arch, "sm_", 3))
        rc = usage_error("compile", "--arch takes a CUDA architecture such as sm_90, got '%s'", o.arch);
    char why[512];
    if (rc < 0 && mkdir_p(o.dir, why, sizeof why) != 0) {
        fprintf(stderr, "gptc compile: %s\n", why);
        rc = 1;
    }
    if (rc >= 0) {
        free_model_args(&m);
        return rc;
    }
    if (!o.arch) o.arch = "sm_90";
    if (!o.precision) o.precision = strcmp(o.target, "cuda") ? "f32" : "bf16";
    FeCompile c;
    rc = compile_model(&c, &m) ? 1 : compile_step(&c, &o);
    fe_free(&c);
    free_model_args(&m);
    return rc;
}
