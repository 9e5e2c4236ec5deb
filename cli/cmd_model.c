/* cmd_model.c — commands that read a model: check, summary, ir. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ir/ir.h"
#include "step/step.h"

/* Parses the options, compiles the model and, if that worked, runs `body` on it.
 * Returns the exit status: the body's, 1 after model errors, 2 for bad usage. */
typedef int (*ModelBody)(FeCompile *c, const ModelArgs *m, void *ctx);

static int with_model(const char *cmd, const char *cmd_usage, int argc, char **argv, ModelBody body, void *ctx,
                      const CliOpt *opts, int nopts) {
    ModelArgs m;
    char usage[2048];
    snprintf(usage, sizeof usage, "%s%s", cmd_usage, model_options);
    int rc = parse_model_args(cmd, argc, argv, &m, usage, opts, nopts);
    if (rc >= 0) {
        free_model_args(&m);
        return rc;
    }
    FeCompile c;
    rc = compile_model(&c, &m) ? 1 : body(&c, &m, ctx);
    if (c.diag.nerrors) fprintf(stderr, "%s: %d error%s\n", m.model, c.diag.nerrors, c.diag.nerrors == 1 ? "" : "s");
    fe_free(&c);
    free_model_args(&m);
    return rc;
}

/* ---- gptc check ----------------------------------------------------------------------- */

const char check_usage[] =
    "usage: gptc check MODEL [--preset P] [--set NAME=VALUE]…\n"
    "Parses and checks a model file: names, compile-time values, every tensor shape and dtype.\n"
    "Prints located errors and warnings; exit status 1 if there are errors.\n\n";

/* What gptc train would refuse: inputs it cannot feed, parameters that change with T when
 * validation builds the model with T = val_seq_len. The validation build's own errors are
 * shown, introduced, when it is the only one to fail. */
static int check_trainable(FeCompile *c, const ModelArgs *m) {
    const ConfigEntry *v = fe_config(&c->prog, "val_seq_len");
    bool other = v && v->is_int && v->value > 0 && (int64_t)v->value != c->prog.T;
    FeCompile ev;
    char *msgs = NULL;
    size_t len = 0;
    FILE *out = other ? open_memstream(&msgs, &len) : NULL;
    if (other && out) {
        FeOptions fo = {.path = m->model, .preset = m->preset, .sets = m->sets, .nsets = m->nsets,
                        .include_dirs = m->ninclude ? (const char **)m->include_dirs : NULL,
                        .seq_config = "val_seq_len"};
        int bad = fe_compile(&ev, &fo, out);
        fclose(out);
        if (bad) {
            fprintf(stderr, "gptc check: with T = val_seq_len = %lld (the validation graph):\n%s", (long long)v->value,
                    msgs ? msgs : "");
            c->diag.nerrors += ev.diag.nerrors;
        } else {
            fe_check_trainable(c, &ev);
        }
        fe_free(&ev);
        free(msgs);
    } else {
        fe_check_trainable(c, NULL);
    }
    return c->diag.nerrors ? 1 : 0;
}

static int check_body(FeCompile *c, const ModelArgs *m, void *ctx) {
    if (check_trainable(c, m) != 0) return 1;
    printf("%s: ok (%d parameters, %d graph nodes, %d warning%s)\n", m->model, c->prog.nparams, c->prog.graph->n,
           c->diag.nwarnings, c->diag.nwarnings == 1 ? "" : "s");
    return 0;
}

int cmd_check(int argc, char **argv) { return with_model("check", check_usage, argc, argv, check_body, NULL, NULL, 0); }

/* ---- gptc summary --------------------------------------------------------------------- */

const char summary_usage[] =
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
    int64_t total = 0, frozen = 0;
    for (int i = 0; i < p->nparams; i++) {
        const ParamDecl *d = &p->params[i];
        char init[160];
        init_str(&d->init[0], init, sizeof init);
        for (int k = 1; k < d->ninit; k++) {
            size_t len = strlen(init);
            snprintf(init + len, sizeof init - len, ", [%d]=%s", d->init[k].slice, init_str(&d->init[k], ib, sizeof ib));
        }
        int k = snprintf(ob, sizeof ob, "%s", fe_param_trainable(d) ? p->optims[d->optim].name : "none (frozen)");
        if (d->wd_mul != 1) k += snprintf(ob + k, sizeof ob - (size_t)k, " wd×%g", d->wd_mul);
        if (d->lr_mul != 1) snprintf(ob + k, sizeof ob - (size_t)k, " lr×%g", d->lr_mul);
        int64_t n = fe_param_count(d);
        total += n;
        if (!fe_param_trainable(d)) frozen += n;
        printf("  %-22s %-18s %-5s %-40s %-12s %13s\n", d->name, ir_shape_str(d->ndim, d->shape, sb, sizeof sb),
               ir_dtype_name(d->dtype), init, ob, group_count(n, cb));
    }
    printf("total parameters: %s", group_count(total, cb));
    if (frozen) printf(" (%s frozen)", group_count(frozen, cb));
    printf("\n");
}

static int summary_body(FeCompile *c, const ModelArgs *m, void *ctx) {
    printf("model: %s%s%s\n", m->model, m->preset ? "  preset: " : "", m->preset ? m->preset : "");
    print_config(&c->prog);
    print_optims(c);
    print_params(&c->prog);
    printf("logs:");
    for (int i = 0; i < c->prog.nlogs; i++) printf(" %s", c->prog.logs[i].name);
    printf("\nprobes: %d   graph nodes (forward, T = %lld): %d\n", c->prog.nprobes, (long long)c->prog.T,
           c->prog.graph->n);
    return 0;
}

int cmd_summary(int argc, char **argv) { return with_model("summary", summary_usage, argc, argv, summary_body, NULL, NULL, 0); }

/* ---- gptc ir ---------------------------------------------------------------------------- */

const char ir_usage[] =
    "usage: gptc ir MODEL [--preset P] [--set NAME=VALUE]… [--train]\n"
    "Prints the forward graph, one op a line: %id = OP(inputs) attributes : dtype[shape]\n"
    "followed by the model-file line that made it. With --train: the training graph (forward,\n"
    "backward to every parameter, after common-subexpression and dead-code elimination).\n\n";

static int ir_body(FeCompile *c, const ModelArgs *m, void *ctx) {
    bool train = *(bool *)ctx;
    StepGrad gg = {0};
    char err[512];
    int rc = 0;
    if (train && step_grad_build(&c->prog, &gg, err, sizeof err) != 0) {
        fprintf(stderr, "gptc ir: %s\n", err);
        rc = 1;
    }
    if (rc == 0) ir_print(c->prog.graph, stdout);
    step_grad_free(&gg);
    return rc;
}

int cmd_ir(int argc, char **argv) {
    bool train = false;
    const CliOpt opts[] = {CLI_FLAG("--train", &train)};
    return with_model("ir", ir_usage, argc, argv, ir_body, &train, opts, 1);
}
