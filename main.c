/* main.c — the gptc command line: one table of subcommands, each with its --help.
 * Exit status: 0 success, 1 errors in the model (or its data), 2 bad usage. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "ir/ir.h"

typedef struct {
    const char *model;
    const char *preset;
    ConfigOverride sets[64];
    int nsets;
    const char *include_dirs[9];
    int ninclude;
} ModelArgs;

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage;
} Command;

static const char model_options[] =
    "  --preset P        apply the model's preset P (tiny, small, medium …)\n"
    "  --set NAME=VALUE  override a config value (repeatable; applied after the preset)\n"
    "  -I DIR            also search DIR for included files\n"
    "  -h, --help        show this help\n";

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "gptc %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run 'gptc %s --help' for usage)\n", cmd);
    return 2;
}

/* NAME=VALUE with an integer or float VALUE */
static bool parse_set(const char *s, ConfigOverride *o) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || !eq[1]) return false;
    o->name = strndup(s, (size_t)(eq - s));
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

static void free_model_args(ModelArgs *m) {
    for (int i = 0; i < m->nsets; i++) free((char *)m->sets[i].name);
}

/* Parses the options every model command shares. Returns -1 on success, else an exit code. */
static int parse_model_args(const char *cmd, int argc, char **argv, ModelArgs *m, const char *usage) {
    memset(m, 0, sizeof *m);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s", usage);
            return 0;
        } else if (!strcmp(a, "--preset") || !strcmp(a, "--set") || !strcmp(a, "-I")) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--preset")) m->preset = v;
            else if (!strcmp(a, "-I")) {
                if (m->ninclude == 8) return usage_error(cmd, "too many -I folders%s", "");
                m->include_dirs[m->ninclude++] = v;
            } else {
                if (m->nsets == 64) return usage_error(cmd, "too many --set options%s", "");
                if (!parse_set(v, &m->sets[m->nsets])) {
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
    if (!m->model) return usage_error(cmd, "no model file given%s", "");
    return -1;
}

static int compile_model(FeCompile *c, const ModelArgs *m) {
    FeOptions opt = {.path = m->model, .preset = m->preset, .sets = m->sets, .nsets = m->nsets,
                     .include_dirs = m->ninclude ? (const char **)m->include_dirs : NULL};
    return fe_compile(c, &opt, stderr);
}

/* ---- gptc check ----------------------------------------------------------------------- */

static const char check_usage[] =
    "usage: gptc check MODEL [--preset P] [--set NAME=VALUE]…\n"
    "Parses and checks a model file: names, compile-time values, every tensor shape and dtype.\n"
    "Prints located errors and warnings; exit status 1 if there are errors.\n\n";

static int cmd_check(int argc, char **argv) {
    ModelArgs m;
    char usage[2048];
    snprintf(usage, sizeof usage, "%s%s", check_usage, model_options);
    int rc = parse_model_args("check", argc, argv, &m, usage);
    if (rc >= 0) { free_model_args(&m); return rc; }
    FeCompile c;
    rc = compile_model(&c, &m);
    if (rc == 0)
        printf("%s: ok (%d parameters, %d graph nodes, %d warning%s)\n", m.model, c.prog.nparams, c.prog.graph->n,
               c.diag.nwarnings, c.diag.nwarnings == 1 ? "" : "s");
    else
        fprintf(stderr, "%s: %d error%s\n", m.model, c.diag.nerrors, c.diag.nerrors == 1 ? "" : "s");
    fe_free(&c);
    free_model_args(&m);
    return rc ? 1 : 0;
}

/* ---- gptc summary --------------------------------------------------------------------- */

static const char summary_usage[] =
    "usage: gptc summary MODEL [--preset P] [--set NAME=VALUE]…\n"
    "Prints the resolved config, the optimizer groups, a table of parameters (name, shape,\n"
    "dtype, init, optimizer group, count) and the total parameter count.\n\n";

static const char *group_count(int64_t n, char *buf) {
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%lld", (long long)n), o = 0;
    for (int i = 0; i < len; i++) {
        buf[o++] = tmp[i];
        if (tmp[i] != '-' && (len - i - 1) % 3 == 0 && i != len - 1) buf[o++] = ',';
    }
    buf[o] = 0;
    return buf;
}

static const char *init_str(const InitSpec *s, char *buf, size_t n) {
    switch (s->kind) {
    case INIT_ZEROS: snprintf(buf, n, "zeros"); break;
    case INIT_NORMAL: snprintf(buf, n, "normal(%g, %g)", s->a, s->b); break;
    case INIT_UNIFORM: snprintf(buf, n, "uniform(%.4g, %.4g)", s->a, s->b); break;
    case INIT_CONSTANT:
        if (s->nvalues == 1) snprintf(buf, n, "constant(%g)", s->values[0]);
        else snprintf(buf, n, "constant([%g, …])", s->values[0]);
        break;
    }
    return buf;
}

static void print_config(const Program *p) {
    printf("config:\n");
    for (int i = 0; i < p->nconfig; i++) {
        const ConfigEntry *e = &p->config[i];
        if (e->is_int) printf("  %-18s %lld\n", e->name, (long long)e->value);
        else printf("  %-18s %.17g\n", e->name, e->value);
    }
}

static void print_optims(FeCompile *c) {
    printf("optimizer groups (values at step 0):\n");
    for (int i = 0; i < c->prog.noptims; i++) {
        const OptimGroup *g = &c->prog.optims[i];
        printf("  %-8s %-4s", g->name, g->kind == OPT_ADAM ? "adam" : "muon");
        for (int j = 0; j < g->nargs; j++) printf(" %s=%g", g->args[j].key, fe_optim_arg(c, g, g->args[j].key, 0, NAN));
        if (g->kind == OPT_MUON) printf(" ns_steps=%d", g->n_ns);
        printf("\n");
    }
}

static void print_params(const Program *p) {
    char sb[128], ib[96], cb[32], ob[64];
    printf("parameters:\n  %-22s %-18s %-5s %-40s %-12s %13s\n", "name", "shape", "dtype", "init", "optimizer", "count");
    int64_t total = 0;
    for (int i = 0; i < p->nparams; i++) {
        const ParamDecl *d = &p->params[i];
        char init[160];
        init_str(&d->init[0], init, sizeof init);
        for (int k = 1; k < d->ninit; k++) {
            size_t len = strlen(init);
            snprintf(init + len, sizeof init - len, ", [%d]=%s", d->init[k].slice, init_str(&d->init[k], ib, sizeof ib));
        }
        const OptimGroup *g = &p->optims[d->optim];
        int k = snprintf(ob, sizeof ob, "%s", g->name);
        if (d->wd_mul != 1) k += snprintf(ob + k, sizeof ob - (size_t)k, " wd×%g", d->wd_mul);
        if (d->lr_mul != 1) snprintf(ob + k, sizeof ob - (size_t)k, " lr×%g", d->lr_mul);
        int64_t n = fe_param_count(d);
        total += n;
        printf("  %-22s %-18s %-5s %-40s %-12s %13s\n", d->name, ir_shape_str(d->ndim, d->shape, sb, sizeof sb),
               ir_dtype_name(d->dtype), init, ob, group_count(n, cb));
    }
    printf("total parameters: %s\n", group_count(total, cb));
}

static int cmd_summary(int argc, char **argv) {
    ModelArgs m;
    char usage[2048];
    snprintf(usage, sizeof usage, "%s%s", summary_usage, model_options);
    int rc = parse_model_args("summary", argc, argv, &m, usage);
    if (rc >= 0) { free_model_args(&m); return rc; }
    FeCompile c;
    rc = compile_model(&c, &m);
    if (rc == 0) {
        printf("model: %s%s%s\n", m.model, m.preset ? "  preset: " : "", m.preset ? m.preset : "");
        print_config(&c.prog);
        print_optims(&c);
        print_params(&c.prog);
        printf("logs:");
        for (int i = 0; i < c.prog.nlogs; i++) printf(" %s", c.prog.logs[i].name);
        printf("\nprobes: %d   graph nodes (forward, T = %lld): %d\n", c.prog.nprobes, (long long)c.prog.T,
               c.prog.graph->n);
    }
    fe_free(&c);
    free_model_args(&m);
    return rc ? 1 : 0;
}

/* ---- gptc ir ---------------------------------------------------------------------------- */

static const char ir_usage[] =
    "usage: gptc ir MODEL [--preset P] [--set NAME=VALUE]…\n"
    "Prints the forward graph, one op a line: %id = OP(inputs) attributes : dtype[shape]\n"
    "followed by the model-file line that made it.\n\n";

static int cmd_ir(int argc, char **argv) {
    ModelArgs m;
    char usage[2048];
    snprintf(usage, sizeof usage, "%s%s", ir_usage, model_options);
    int rc = parse_model_args("ir", argc, argv, &m, usage);
    if (rc >= 0) { free_model_args(&m); return rc; }
    FeCompile c;
    rc = compile_model(&c, &m);
    if (rc == 0) ir_print(c.prog.graph, stdout);
    fe_free(&c);
    free_model_args(&m);
    return rc ? 1 : 0;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static int cmd_help(int argc, char **argv);

static const Command commands[] = {
    {"check", cmd_check, "check a model file and report located errors", check_usage},
    {"summary", cmd_summary, "print the resolved config, parameters and their count", summary_usage},
    {"ir", cmd_ir, "print the forward graph", ir_usage},
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
