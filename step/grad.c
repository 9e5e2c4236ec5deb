/* grad.c — the gradient graph: the model's forward graph, its backward pass and the IR
 * passes, with the output indices of the loss, the gradients and the probes. */
#include "step/step.h"
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int step_grad_build(Program *p, StepGrad *gg, char *err, size_t errlen) {
    memset(gg, 0, sizeof *gg);
    IrGraph *g = p->graph;
    if (g->noutputs < 1) {
        snprintf(err, errlen, "the model has no loss");
        return -1;
    }
    IrNode **wrt = xmalloc(sizeof(IrNode *) * (size_t)(p->nparams + 1));
    IrNode **grads = xmalloc(sizeof(IrNode *) * (size_t)(p->nparams + 1));
    gg->grad_out = xmalloc(sizeof(int) * (size_t)(p->nparams + 1));
    gg->probe_out = xmalloc(sizeof(int) * (size_t)(p->nprobes + 1));
    for (int i = 0; i < p->nprobes; i++) gg->probe_out[i] = ir_add_output(g, p->probes[i].node);
    /* Equal forward computations are merged before the backward pass is made: a table
     * gathered by the same tokens in two layers is then one node, whose gradients are summed
     * before one scatter-add instead of each scattered into a table of its own. */
    ir_cse(g);
    IrNode *loss = g->outputs[0];
    int nwrt = 0;
    for (int i = 0; i < p->nparams; i++)
        if (fe_param_trainable(&p->params[i])) wrt[nwrt++] = p->params[i].node;
    int rc = ir_autodiff(g, loss, wrt, nwrt, grads, err, errlen);
    if (rc == 0) {
        gg->loss_out = 0;
        for (int i = 0, k = 0; i < p->nparams; i++)
            gg->grad_out[i] = fe_param_trainable(&p->params[i]) ? ir_add_output(g, grads[k++]) : -1;
        rc = ir_optimize(g, err, errlen);
        /* CSE may have merged probed nodes: read them back from the outputs */
        for (int i = 0; rc == 0 && i < p->nprobes; i++) p->probes[i].node = g->outputs[gg->probe_out[i]];
    }
    free(wrt);
    free(grads);
    return rc;
}

int step_eval_build(IrGraph *g, int64_t train_T, char *err, size_t errlen) {
    if (ir_optimize(g, err, errlen)) return -1;
    /* validation needs no larger product than a training step, nor one of over 2^30 values */
    const char *chunk = getenv("GPTC_EVAL_CHUNK");
    if (chunk && !strcmp(chunk, "0")) return 0;
    return ir_chunk_rows(g, train_T, (int64_t)1 << 30) > 0 ? ir_optimize(g, err, errlen) : 0;
}

int step_grad_kept(const Program *p, const StepGrad *gg, IrNode **keep) {
    const IrGraph *g = p->graph;
    int n = 0;
    keep[n++] = g->outputs[gg->loss_out];
    for (int i = 0; i < p->nparams; i++)
        if (gg->grad_out[i] >= 0) keep[n++] = g->outputs[gg->grad_out[i]];
    return n;
}

void step_grad_free(StepGrad *gg) {
    free(gg->grad_out);
    free(gg->probe_out);
    memset(gg, 0, sizeof *gg);
}
