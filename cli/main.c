/* main.c — the gptc command line: one table of subcommands, each with its --help.
 * Exit status: 0 success, 1 errors in the model (or its data), 2 bad usage. */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ir/ir.h"
#include "runtime/runtime.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage;
} Command;

const char model_options[] =
    "  --preset P        apply the model's preset P (tiny, small, medium …)\n"
    "  --set NAME=VALUE  override a config value (repeatable; applied after the preset)\n"
    "  -I DIR            also search DIR for included files\n"
    "  -h, --help        show this help\n";

int usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gptc %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run 'gptc %s --help' for usage)\n", cmd);
    va_end(ap);
    return 2;
}

void cli_error(const char *cmd, const char *err) {
    fprintf(stderr, "gptc %s: %s\n", cmd, err);
    if (strstr(err, OUT_OF_MEMORY))
        fprintf(stderr, "gptc %s: hint: a smaller preset (--preset NAME) or a shorter sequence (--set seq_len=N) "
                        "needs less memory\n", cmd);
}

bool cli_parse_set(const char *s, ConfigOverride *o) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || !eq[1]) return false;
    o->name = xstrndup(s, (size_t)(eq - s));
    char *end;
    errno = 0;
    long long i = strtoll(eq + 1, &end, 10);
    if (!*end && errno == 0) {
        o->value = (double)i;
        o->is_int = true;
        return true;
    }
    o->value = strtod(eq + 1, &end);
    o->is_int = false;
    return !*end && isfinite(o->value);
}

void free_model_args(ModelArgs *m) {
    for (int i = 0; i < m->nsets; i++) free((char *)m->sets[i].name);
}

static const CliOpt *find_opt(const CliOpt *extra, int nextra, const char *name) {
    for (int i = 0; i < nextra; i++)
        if (!strcmp(extra[i].name, name)) return &extra[i];
    return NULL;
}

int parse_model_args(const char *cmd, int argc, char **argv, ModelArgs *m, const char *usage,
                     const CliOpt *extra, int nextra) {
    memset(m, 0, sizeof *m);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const CliOpt *o = find_opt(extra, nextra, a);
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s", usage);
            return 0;
        } else if (o && o->flag) {
            *o->flag = true;
        } else if (o && o->list) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value", a);
            if (o->list->n == (int)(sizeof o->list->v / sizeof o->list->v[0]))
                return usage_error(cmd, "too many %s options", a);
            o->list->v[o->list->n++] = argv[++i];
        } else if (o) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value", a);
            *o->dst = argv[++i];
        } else if (!strcmp(a, "--preset") || !strcmp(a, "--set") || !strcmp(a, "-I")) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--preset")) m->preset = v;
            else if (!strcmp(a, "-I")) {
                if (m->ninclude == 8) return usage_error(cmd, "too many -I folders");
                m->include_dirs[m->ninclude++] = v;
            } else {
                if (m->nsets == 64) return usage_error(cmd, "too many --set options");
                if (!cli_parse_set(v, &m->sets[m->nsets])) {
                    if (m->sets[m->nsets].name) free((char *)m->sets[m->nsets].name);
                    m->sets[m->nsets].name = NULL;
                    return usage_error(cmd, "--set takes NAME=NUMBER, got '%s'", v);
                }
                m->nsets++;
            }
        } else if (a[0] == '-' && a[1]) {
            return usage_error(cmd, "unknown option '%s'", a);
        } else if (m->model) {
            return usage_error(cmd, "more than one model file ('%s')", a);
        } else {
            m->model = a;
        }
    }
    if (!m->model) return usage_error(cmd, "no model file given");
    return -1;
}

int cli_parse_exec(const char *cmd, const char *backend, const char *dtype, RtBackend *b, RtPrec *prec) {
    if (dtype && strcmp(dtype, "f64") && strcmp(dtype, "f32") && strcmp(dtype, "bf16"))
        return usage_error(cmd, "--dtype is f64, f32 or bf16, got '%s'", dtype);
    int k = backend ? rt_backend_parse(backend) : dtype && !strcmp(dtype, "f64") ? RT_REF_BACKEND : RT_CPU_BACKEND;
    if (k < 0) return usage_error(cmd, "unknown backend '%s' (available: cpu, ref, cuda)", backend);
    *b = (RtBackend)k;
    if (!dtype) dtype = *b == RT_CUDA_BACKEND ? "bf16" : "f32";
    *prec = !strcmp(dtype, "f64") ? RT_F64 : !strcmp(dtype, "bf16") ? RT_BF16 : RT_F32;
    const char *unsupported = rt_exec_unsupported(*b, *prec);
    return unsupported ? usage_error(cmd, "%s", unsupported) : -1;
}

int compile_model(FeCompile *c, const ModelArgs *m) {
    FeOptions opt = {.path = m->model, .preset = m->preset, .sets = m->sets, .nsets = m->nsets,
                     .include_dirs = m->ninclude ? (const char **)m->include_dirs : NULL};
    return fe_compile(c, &opt, stderr);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static int cmd_help(int argc, char **argv);

static const Command commands[] = {
    {"check", cmd_check, "check a model file and report located errors", check_usage},
    {"summary", cmd_summary, "print the resolved config, parameters and their count", summary_usage},
    {"ir", cmd_ir, "print the forward graph", ir_usage},
    {"init", cmd_init, "write a seeded, freshly initialized parameter file", init_usage},
    {"data", cmd_data, "turn text into GPT-2 token shards (Brown corpus, text files), or check shards", data_usage},
    {"train", cmd_train, "train a model on token shards (cpu, ref or cuda backend; mpirun for ranks)", train_usage},
    {"bench", cmd_bench, "time training steps and print the median and peak memory", bench_usage},
    {"step", cmd_step, "optimizer steps from given parameters (and optionally gradients)", step_usage},
    {"sweep", cmd_sweep, "train every variant × seed of a study as child processes, resumably", sweep_usage},
    {"report", cmd_report, "figures and report.md from runs, sweeps and modded-nanogpt logs", report_usage},
    {"compare", cmd_compare, "per-tensor relative error between two safetensors files", compare_usage},
    {"grad", cmd_grad, "the loss and every gradient on one batch", grad_usage},
    {"compile", cmd_compile, "fuse the training step, generate and compile its C or CUDA kernels, write plan.txt", compile_usage},
    {"help", cmd_help, "show this help", "usage: gptc help [COMMAND]\n"},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void print_help(FILE *out) {
    fprintf(out, "gptc — a compiler and trainer for GPT model variants\n\n"
                 "usage: gptc COMMAND [options]   (gptc COMMAND --help for each)\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nThe model language is described in docs/language.md.\n");
}

static int cmd_help(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: gptc help [COMMAND]\nShows the commands, or one command's help.\n");
        return 0;
    }
    if (argc > 1)
        for (int i = 0; i < NCOMMANDS; i++)
            if (!strcmp(argv[1], commands[i].name)) {
                char *args[] = {argv[1], "--help", NULL};
                return commands[i].run(2, args);
            }
    print_help(stdout);
    return 0;
}

int main(int argc, char **argv) {
    rt_blas_pick_kernels();   /* may execute gptc again, with OpenBLAS's kernels for this CPU */
    char sgemm_err[160];
    if (rt_sgemm_check_env(sgemm_err, sizeof sgemm_err)) {
        fprintf(stderr, "gptc: %s\n", sgemm_err);
        return 2;
    }
    /* Tensors are large and short-lived: keep freed memory in the heap instead of returning
     * it to the system, so the next tensor of that size does not fault in fresh pages. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        print_help(stdout);
        return 0;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "gptc: unknown command '%s' (run 'gptc --help')\n", argv[1]);
    return 2;
}
