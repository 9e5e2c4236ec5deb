/* cmd_step.c — gptc step: K optimizer steps from given parameters on one batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "trainer/trainer.h"

const char step_usage[] =
    "usage: gptc step MODEL [--preset P] [--set NAME=VALUE]… --params P.safetensors\n"
    "                 --batch B.safetensors --step S [--count K] [--schedule NAME=VALUE[,…]]…\n"
    "                 [--grads G.safetensors] [--backend cpu|ref|cuda] [--dtype f32|f64|bf16]\n"
    "                 --out NEW.safetensors\n"
    "Applies K optimizer steps (default 1) to the parameters, starting at step index S: each\n"
    "step computes the gradient on the batch (the first uses --grads instead, if given) and\n"
    "updates every parameter with its group's optimizer, schedules evaluated at the step\n"
    "index with the config's 'steps'. Prints the loss of every computed gradient.\n"
    "The parameter file may hold optimizer state (as --out writes it); without it the\n"
    "optimizer starts fresh. --out holds the parameters under their names, the state as\n"
    "adam_m.NAME, adam_v.NAME, muon_buf.NAME, and trainer.adam_steps (I64).\n"
    CLI_SCHEDULE_HELP CLI_EXEC_HELP "\n";

typedef struct {
    const char *params, *batch, *step, *count, *grads, *backend, *dtype, *out;
    CliList pins;               /* --schedule */
    long first, k;
    RtBackend be;
    RtPrec prec;
} StepArgs;

static int check_args(StepArgs *a) {
    if (!a->params || !a->batch || !a->step || !a->out)
        return usage_error("step", "--params, --batch, --step and --out are required");
    char *end;
    a->first = strtol(a->step, &end, 10);
    if (*end || a->first < 0) return usage_error("step", "--step takes a step index >= 0, got '%s'", a->step);
    a->k = a->count ? strtol(a->count, &end, 10) : 1;
    if ((a->count && *end) || a->k < 1) return usage_error("step", "--count takes a number >= 1, got '%s'", a->count);
    return cli_parse_exec("step", a->backend, a->dtype, &a->be, &a->prec);
}

/* The given gradients, by parameter name, into t->grad. */
static int load_grads(Trainer *t, const char *path, char *err, size_t errlen) {
    const Program *p = &t->c->prog;
    double **g = xcalloc((size_t)p->nparams + 1, sizeof *g);
    int rc = grads_load(p, path, g, err, errlen);
    for (int i = 0; rc == 0 && i < p->nparams; i++)
        if (g[i]) memcpy(t->grad[i], g[i], sizeof(double) * (size_t)fe_param_count(&p->params[i]));
    if (rc == 0) values_free(g, p->nparams);
    free(g);
    return rc;
}

static int run_steps(FeCompile *c, const StepArgs *a) {
    char err[512];
    Trainer t;
    int32_t *in[4] = {0};
    IrNode *leaves[4];
    int nin = 0, rc = 1;
    if (trainer_init(&t, c, a->be, a->prec, err, sizeof err) != 0 ||
        trainer_load(&t, a->params, true, NULL, 0, err, sizeof err) != 0 ||
        batch_load(c->prog.graph, a->batch, in, leaves, 4, &nin, err, sizeof err) != 0 ||
        (a->grads && load_grads(&t, a->grads, err, sizeof err) != 0))
        goto out;
    const int32_t *tokens = NULL, *targets = NULL;
    for (int i = 0; i < nin; i++) {
        if (leaves[i] == t.tokens) tokens = in[i];
        if (leaves[i] == t.targets) targets = in[i];
    }
    for (long k = 0; k < a->k; k++) {
        if (k > 0 || !a->grads) {
            double loss;
            trainer_set_schedules(&t, a->first + k);
            if (trainer_grad(&t, tokens, targets, &loss, err, sizeof err) != 0) goto out;
            printf("step %ld: loss %.12g\n", a->first + k, loss);
        }
        if (trainer_update(&t, a->first + k, err, sizeof err) != 0) goto out;
    }
    if (trainer_save(&t, a->out, NULL, 0, NULL, 0, err, sizeof err) != 0) goto out;
    rc = 0;
out:
    if (rc) cli_error("step", err);
    for (int i = 0; i < nin; i++) free(in[i]);
    trainer_free(&t);
    return rc;
}

int cmd_step(int argc, char **argv) {
    StepArgs a = {0};
    const CliOpt opts[] = {CLI_OPT("--params", &a.params), CLI_OPT("--batch", &a.batch), CLI_LIST("--schedule", &a.pins),
                           CLI_OPT("--step", &a.step), CLI_OPT("--count", &a.count), CLI_OPT("--grads", &a.grads),
                           CLI_OPT("--dtype", &a.dtype), CLI_OPT("--backend", &a.backend), CLI_OPT("--out", &a.out)};
    ModelArgs m;
    char usage[4096];
    snprintf(usage, sizeof usage, "%s%s", step_usage, model_options);
    int rc = parse_model_args("step", argc, argv, &m, usage, opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc < 0) rc = check_args(&a);
    if (rc >= 0) {
        free_model_args(&m);
        return rc;
    }
    FeCompile c;
    rc = compile_model(&c, &m) ? 1 : cli_pin_schedules("step", &c, &a.pins);
    if (rc == 0) rc = run_steps(&c, &a);
    fe_free(&c);
    free_model_args(&m);
    return rc;
}
