/* cmd_compile.c — gptc compile: the training step as generated kernels and a plan. */
#include <errno.h>
#include <math.h>
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
    "                   [--precision bf16|f32] [--schedule NAME=VALUE[,…]]… [--doc-len N] -o DIR\n"
    "Fuses the training step (forward + backward, then the optimizer update), generates its\n"
    "kernels and compiles them through the kernel cache ($XDG_CACHE_HOME/gptc, default\n"
    "~/.cache/gptc; a warm start compiles nothing). DIR receives, for the gradient step\n"
    "(grad) and the update (update):\n"
    "  NAME.c + NAME.so        --target c: the C kernels and the shared object (cc -O3 -fopenmp)\n"
    "  NAME.cu + NAME.cubin    --target cuda: the CUDA kernels and the cubin (NVRTC)\n"
    "  NAME.ptxas.txt          --target cuda: registers and spills of every kernel (ptxas -v)\n"
    "  plan.txt                every kernel and library call in order, with launch shapes, bytes\n"
    "                          read and written, FLOPs, and the memory plan; --target c: in the\n"
    "                          cpu backend's level order, each one's level (the kernels of one\n"
    "                          level may run at once); --target cuda: each one's estimated time\n"
    "                          on an H100, what bounds it, its occupancy\n"
    "  --arch ARCH             the CUDA architecture (default sm_90: H100, H200)\n"
    "  --precision P           storage of the cuda target, as `gptc train --backend cuda --dtype P`\n"
    "                          runs it: bf16 (default: bf16 weights and activations, float32\n"
    "                          master weights, optimizer state and statistics) or f32\n"
    "  --schedule NAME=VALUE[,…]  the schedules for the estimate, as `gptc bench` takes them\n"
    "                          (default: their values at step 0); repeatable\n"
    "  --doc-len N             mean document length in tokens for the estimate (default 400, as\n"
    "                          `gptc bench`'s random batch: an eot about every 400 tokens)\n"
    "--target cuda then prints the step's estimated time on one H100 SXM (the roofline model),\n"
    "split by bound and by kind of kernel, the schedules the graph reads as the estimate\n"
    "assumes them, and the device memory training allocates.\n\n";

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

/* gptc bench's random batch draws an eot with probability 0.0025: documents of 400 tokens */
#define BENCH_DOC_LEN 400

typedef struct {
    const char *dir, *target, *arch, *precision;
    int nkernels, nlibrary, nfuncs, ncached;
    int64_t fused, unfused, arena;
    CgWorkload work;               /* --target cuda: the estimate's scalars and documents … */
    CgRoofline est;                /* … its sums over both graphs (est.k unused) … */
    int nestimated;                /* … and how many graphs ptxas's figures let it estimate */
    CgDeviceMem mem[3];            /* gradient step, update, validation */
} Out;

/* the per-graph estimate r into the step's sums */
static void add_estimate(Out *o, const CgRoofline *r)
{
    cg_time_add(&o->est.total, &r->total);
    for (int k = 0; k < CG_EST_NKINDS; k++) {
        cg_time_add(&o->est.kind[k], &r->kind[k]);
        o->est.calls[k] += r->calls[k];
        o->est.launches[k] += r->launches[k];
    }
}

/* sources, compiled object, plan section and (cuda) estimate of one graph */
static int emit_graph(const char *name, const CgStep *s, Out *o, FILE *plan)
{
    bool cuda = !strcmp(o->target, "cuda");
    char file[256], path[4200], err[8192];
    bool cached;
    CgPtxas px = {0};
    CgRoofline est = {0};
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
            cg_ptxas_parse(log, &px);   /* none without the device build (the emulator without NVRTC) */
            if (rc == 0 && px.n && (rc = cg_roofline(s, &px, &o->work, &est, err, sizeof err)))
                fprintf(stderr, "gptc compile: %s\n", err);
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
    cg_write_plan(s, est.k ? &est : NULL, plan);
    if (est.k) add_estimate(o, &est), o->nestimated++;
    cg_roofline_free(&est);
    cg_ptxas_free(&px);
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

/* The device memory of validation: the evaluation graph (T = val_seq_len) fused and planned
 * as the trainer's evaluation executor is (step_eval_build, the loss kept). */
static int validation_memory(const ModelArgs *m, int64_t T, CgStore store, CgDeviceMem *mem)
{
    FeOptions fo = {.path = m->model, .preset = m->preset, .sets = m->sets, .nsets = m->nsets,
                    .include_dirs = m->ninclude ? (const char **)m->include_dirs : NULL, .seq_config = "val_seq_len"};
    FeCompile ev;
    char err[1024];
    FILE *quiet = fopen("/dev/null", "w");   /* the same file: its warnings were shown */
    int rc = fe_compile(&ev, &fo, quiet ? quiet : stderr) ? -1 : 0;
    if (quiet) fclose(quiet);
    CgStep *s = NULL;
    IrGraph *g = rc == 0 ? ev.prog.graph : NULL;
    if (g && (step_eval_build(g, T, err, sizeof err) || !(s = cg_fuse(g, g->outputs, 1, store, err, sizeof err)))) {
        fprintf(stderr, "gptc compile: the validation graph: %s\n", err);
        rc = -1;
    }
    if (s) cg_device_memory(s, NULL, mem);
    cg_step_free(s);
    fe_free(&ev);
    return rc;
}

/* sched: the schedules the graph reads, "NAME=VALUE …" (cli_schedules_text) */
static void print_estimate(const Out *o, const char *sched)
{
    const CgTime *t = &o->est.total;
    if (o->nestimated < 2) {
        printf("estimated step on H100: none: ptxas reported no registers (NVRTC did not compile for the device)\n");
    } else {
        printf("estimated step on H100: %.3f ms (tensor-core %.3f ms, CUDA-core %.3f ms, memory %.3f ms, "
               "under-occupied %.3f ms, launch %.3f ms)\n", t->ms, t->tc, t->fp32, t->mem, t->under, t->launch);
        printf("  assuming %s%s%sdocuments of %g tokens\n", *sched ? "schedules " : "", sched, *sched ? " and " : "",
               o->work.doc_len);
        for (int k = 0; k < CG_EST_NKINDS; k++)
            printf("  %s: %d calls, %d launches, %.3f ms\n", cg_est_kind_name((CgEstKind)k), o->est.calls[k],
                   o->est.launches[k], o->est.kind[k].ms);
    }
    printf("device memory for training: %.2f GB (gradient step %.2f GB, update %.2f GB, validation %.2f GB)\n",
           (double)(o->mem[0].total + o->mem[1].total + o->mem[2].total) / 1e9, o->mem[0].total / 1e9,
           o->mem[1].total / 1e9, o->mem[2].total / 1e9);
}

static int compile_step(FeCompile *c, const ModelArgs *m, const char *sched, Out *o)
{
    char err[1024];
    StepGrad gg = {0};
    StepUpdate ug = {0};
    CgStep *gs = NULL, *us = NULL;
    int rc = -1;
    double t0 = clock_seconds();
    bool bf16 = !strcmp(o->precision, "bf16");
    if (step_grad_build(&c->prog, &gg, err, sizeof err) ||
        step_update_build(c, NULL, bf16 && !strcmp(o->target, "cuda"), &ug, err, sizeof err)) {
        fprintf(stderr, "gptc compile: %s\n", err);
        goto done;
    }
    const IrGraph *g = c->prog.graph;
    IrNode **keep = xmalloc(sizeof *keep * (size_t)(c->prog.nparams + 1));
    int nkeep = step_grad_kept(&c->prog, &gg, keep);
    /* the C target as the cpu backend runs it: in level order (its kernels of a level grouped) */
    CgStep *(*fuse)(const IrGraph *, IrNode *const *, int, CgStore, char *, size_t) =
        strcmp(o->target, "c") ? cg_fuse : cg_fuse_levels;
    gs = fuse(g, keep, nkeep, bf16 ? CG_STORE_BF16 : CG_STORE_F32, err, sizeof err);
    free(keep);
    if (gs) us = fuse(ug.g, ug.g->outputs, ug.g->noutputs, bf16 ? CG_STORE_BF16_MASTER : CG_STORE_F32, err, sizeof err);
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
    bool cuda = !strcmp(o->target, "cuda");
    if (rc == 0 && cuda) {
        cg_device_memory(gs, NULL, &o->mem[0]);
        cg_device_memory(us, NULL, &o->mem[1]);
        if (fe_config(&c->prog, "val_seq_len"))   /* what the trainer validates with */
            rc = validation_memory(m, c->prog.T, bf16 ? CG_STORE_BF16 : CG_STORE_F32, &o->mem[2]);
        fprintf(plan, "\n######## validation\n# the evaluation graph (T = val_seq_len) as the trainer's evaluation "
                      "executor allocates it\ndevice_bytes %zu\n", o->mem[2].total);
    }
    if (fclose(plan)) rc = -1;
    if (rc == 0)
        printf("%s: %d loop kernels (%d distinct), %d library calls; elementwise traffic %.1f MB fused vs %.1f MB "
               "unfused; arena %.1f MB; %d of 2 objects from the cache; %.2f s\n",
               o->dir, o->nkernels, o->nfuncs, o->nlibrary, o->fused / 1e6, o->unfused / 1e6, o->arena / 1e6,
               o->ncached, clock_seconds() - t0);
    if (rc == 0 && cuda) print_estimate(o, sched);
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
    const char *doc_len = NULL;
    CliList pins = {0};
    const CliOpt opts[] = {CLI_OPT("--target", &o.target), CLI_OPT("--arch", &o.arch), CLI_OPT("-o", &o.dir),
                           CLI_OPT("--precision", &o.precision), CLI_LIST("--schedule", &pins),
                           CLI_OPT("--doc-len", &doc_len)};
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
    long dl = BENCH_DOC_LEN;
    if (rc < 0 && doc_len) {
        char *end;
        dl = strtol(doc_len, &end, 10);
        if (end == doc_len || *end || dl < 1)
            rc = usage_error("compile", "--doc-len takes a positive number of tokens, got '%s'", doc_len);
    }
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
    rc = compile_model(&c, &m) ? 1 : cli_pin_schedules("compile", &c, &pins);
    /* the estimate's runtime scalars: every schedule at step 0 or as pinned, as gptc bench
     * sets them */
    int ns = rc ? 0 : c.prog.nschedules;
    CgScalar *sc = xcalloc((size_t)ns + 1, sizeof *sc);
    for (int i = 0; i < ns; i++) {
        sc[i].name = c.prog.schedules[i].name;
        sc[i].value = fe_schedule_value(&c, sc[i].name, 0);
    }
    o.work = (CgWorkload){sc, ns, (double)dl};
    char sched[1024] = "";
    if (rc == 0) cli_schedules_text(&c, 0, true, sched, sizeof sched);
    if (rc == 0) rc = compile_step(&c, &m, sched, &o);
    free(sc);
    fe_free(&c);
    free_model_args(&m);
    return rc;
}
