/* cmd_grad.c — gptc grad: the loss and every gradient of a model on one batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "step/step.h"
#include "trainer/trainer.h"

const char grad_usage[] =
    "usage: gptc grad MODEL [--preset P] [--set NAME=VALUE]… --params P.safetensors\n"
    "                 --batch B.safetensors [--schedule NAME=VALUE[,…]]… [--backend cpu|ref|cuda]\n"
    "                 [--dtype f32|f64|bf16] [--grads OUT.safetensors] [--acts OUT.safetensors]\n"
    "One forward and backward pass on one batch. Prints 'loss: VALUE' (12 significant digits)\n"
    "on stdout; writes the gradient of every parameter under the parameter's name (--grads)\n"
    "and every probed activation under its probe name (--acts), in the chosen dtype. The\n"
    "schedules take their values at step 0, but for those --schedule pins.\n"
    "  --params FILE       every parameter of the model, by name, any float dtype\n"
    "  --batch FILE        every input of the model (tokens, targets), integer tensors\n"
    CLI_SCHEDULE_HELP CLI_EXEC_HELP "\n";

typedef struct {
    const char *params, *batch, *backend, *dtype, *grads, *acts;
    CliList pins;               /* --schedule */
    RtPrec prec;
    RtBackend be;
} GradArgs;

static int check_grad_args(GradArgs *a) {
    if (!a->params || !a->batch) return usage_error("grad", "--params and --batch are required");
    return cli_parse_exec("grad", a->backend, a->dtype, &a->be, &a->prec);
}

static int save_outputs(const char *path, RtExec *r, int n, const char *const *names, IrNode *const *nodes,
                        RtPrec prec) {
    StWriter *w = st_writer_new();
    if (!w) return -1;
    for (int i = 0; i < n; i++) {
        int64_t count = ir_numel(nodes[i]);
        double *v = xmalloc(sizeof(double) * (size_t)(count ? count : 1));
        rt_exec_get(r, nodes[i], v);
        st_writer_add_f64(w, names[i], prec == RT_F64 ? ST_F64 : ST_F32, nodes[i]->ndim, nodes[i]->shape, v);
        free(v);
    }
    char err[512];
    int rc = st_writer_save(w, path, err, sizeof err);
    if (rc) cli_error("grad", err);
    st_writer_free(w);
    return rc;
}

/* Loads the data into a new interpreter and runs it; NULL after reporting an error. */
static RtExec *run_step(FeCompile *c, const GradArgs *a) {
    Program *p = &c->prog;
    char err[512];
    double **vals = xcalloc((size_t)p->nparams + 1, sizeof *vals);
    int32_t *inputs[16];
    IrNode *leaves[16];
    int ninputs = 0;
    RtExec *r = NULL;
    if (params_load(p, a->params, vals, err, sizeof err) != 0 ||
        batch_load(p->graph, a->batch, inputs, leaves, 16, &ninputs, err, sizeof err) != 0) {
        cli_error("grad", err);
        free(vals);
        return NULL;
    }
    r = rt_exec_new(a->be, p->graph, a->prec, p->graph->outputs, p->graph->noutputs, err, sizeof err);
    if (!r) {
        cli_error("grad", err);
        values_free(vals, p->nparams);
        free(vals);
        for (int i = 0; i < ninputs; i++) free(inputs[i]);
        return NULL;
    }
    for (int i = 0; i < p->nparams; i++) rt_exec_set(r, p->params[i].node, vals[i]);
    for (int i = 0; i < ninputs; i++) rt_exec_set_i32(r, leaves[i], inputs[i]);
    for (int i = 0; i < p->nschedules; i++)   /* every schedule at step 0, or as pinned */
        rt_exec_set_scalar(r, p->schedules[i].name, fe_schedule_value(c, p->schedules[i].name, 0));
    values_free(vals, p->nparams);
    free(vals);
    for (int i = 0; i < ninputs; i++) free(inputs[i]);
    double t0 = clock_seconds() * 1e3;
    if (rt_exec_run(r, err, sizeof err) != 0) {
        cli_error("grad", err);
        rt_exec_free(r);
        return NULL;
    }
    fprintf(stderr, "gptc grad: forward + backward in %.1f ms (%s, %s)\n", clock_seconds() * 1e3 - t0,
            rt_backend_name(a->be), rt_prec_name(a->prec));
    return r;
}

static int write_results(FeCompile *c, const GradArgs *a, const StepGrad *gg, RtExec *r) {
    Program *p = &c->prog;
    IrGraph *g = p->graph;
    double loss;
    rt_exec_get(r, g->outputs[gg->loss_out], &loss);
    printf("loss: %.12g\n", loss);
    int rc = 0;
    const char **names = xmalloc(sizeof(char *) * (size_t)(p->nparams + p->nprobes + 1));
    IrNode **nodes = xmalloc(sizeof(IrNode *) * (size_t)(p->nparams + p->nprobes + 1));
    if (a->grads) {   /* frozen parameters have none */
        int n = 0;
        for (int i = 0; i < p->nparams; i++)
            if (gg->grad_out[i] >= 0) {
                names[n] = p->params[i].name;
                nodes[n++] = g->outputs[gg->grad_out[i]];
            }
        rc |= save_outputs(a->grads, r, n, names, nodes, a->prec);
    }
    if (a->acts) {
        for (int i = 0; i < p->nprobes; i++) {
            names[i] = p->probes[i].name;
            nodes[i] = p->probes[i].node;
        }
        rc |= save_outputs(a->acts, r, p->nprobes, names, nodes, a->prec);
    }
    free(names);
    free(nodes);
    return rc ? 1 : 0;
}

int cmd_grad(int argc, char **argv) {
    GradArgs a = {0};
    const CliOpt opts[] = {CLI_OPT("--params", &a.params), CLI_OPT("--batch", &a.batch), CLI_LIST("--schedule", &a.pins),
                           CLI_OPT("--backend", &a.backend), CLI_OPT("--dtype", &a.dtype), CLI_OPT("--grads", &a.grads),
                           CLI_OPT("--acts", &a.acts)};
    ModelArgs m;
    char usage[4096];
    snprintf(usage, sizeof usage, "%s%s", grad_usage, model_options);
    int rc = parse_model_args("grad", argc, argv, &m, usage, opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc < 0) rc = check_grad_args(&a);
    if (rc >= 0) {
        free_model_args(&m);
        return rc;
    }
    FeCompile c;
    rc = compile_model(&c, &m) ? 1 : cli_pin_schedules("grad", &c, &a.pins);
    StepGrad gg = {0};
    char err[512];
    if (rc == 0 && step_grad_build(&c.prog, &gg, err, sizeof err) != 0) {
        cli_error("grad", err);
        rc = 1;
    }
    RtExec *r = rc == 0 ? run_step(&c, &a) : NULL;
    if (rc == 0) rc = r ? write_results(&c, &a, &gg, r) : 1;
    rt_exec_free(r);
    step_grad_free(&gg);
    fe_free(&c);
    free_model_args(&m);
    return rc;
}
