/* test_model_fd.c — the whole model's gradient against finite differences, in float64,
 * for configurations the golden folder does not hold (other widths, n_emb, eot ids,
 * block sizes, windows) and for test models of builtins: along random directions v, (L(θ+hv) − L(θ−hv)) / 2h = ⟨∇L, v⟩. */
#include <stdlib.h>

#include "frontend/frontend.h"
#include "step/step.h"
#include "runtime/ref.h"
#include "tests/test.h"

static uint64_t rng = 0x243f6a8885a308d3ull;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / (double)(1ull << 52) - 1.0;
}

typedef struct {
    FeCompile c;
    StepGrad gg;
    double **theta;
    int32_t *tokens, *targets;
    IrNode *tok_leaf, *tgt_leaf;
    double wl, ws;
} Model;

static double loss_at(Model *m, double **theta, double **grads) {
    Program *p = &m->c.prog;
    RtRef *r = rt_ref_new(p->graph, RT_F64);
    for (int i = 0; i < p->nparams; i++) rt_ref_set(r, p->params[i].node, theta[i]);
    rt_ref_set_i32(r, m->tok_leaf, m->tokens);
    rt_ref_set_i32(r, m->tgt_leaf, m->targets);
    rt_ref_set_scalar(r, "window_long", m->wl);
    rt_ref_set_scalar(r, "window_short", m->ws);
    char err[256];
    double L = NAN;
    if (rt_ref_run(r, p->graph->outputs, p->graph->noutputs, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
    } else {
        rt_ref_get(r, p->graph->outputs[0], &L);
        for (int i = 0; grads && i < p->nparams; i++) rt_ref_get(r, p->graph->outputs[m->gg.grad_out[i]], grads[i]);
    }
    rt_ref_free(r);
    return L;
}

static void check_model(const char *path, const ConfigOverride *sets, int nsets, double wl, double ws, int32_t eot) {
    Model m = {.wl = wl, .ws = ws};
    FILE *devnull = fopen("/dev/null", "w");
    FeOptions o = {.path = path, .sets = sets, .nsets = nsets};
    int rc = fe_compile(&m.c, &o, devnull);
    fclose(devnull);
    CHECK(rc == 0);
    char err[256];
    CHECK(rc == 0 && step_grad_build(&m.c.prog, &m.gg, err, sizeof err) == 0);
    if (rc) { fe_free(&m.c); return; }
    Program *p = &m.c.prog;
    int np = p->nparams;
    m.theta = calloc((size_t)np, sizeof(double *));
    double **g = calloc((size_t)np, sizeof(double *)), **v = calloc((size_t)np, sizeof(double *));
    double **tp = calloc((size_t)np, sizeof(double *));
    for (int i = 0; i < np; i++) {
        int64_t n = fe_param_count(&p->params[i]);
        m.theta[i] = malloc(sizeof(double) * (size_t)n);
        g[i] = malloc(sizeof(double) * (size_t)n);
        v[i] = malloc(sizeof(double) * (size_t)n);
        tp[i] = malloc(sizeof(double) * (size_t)n);
        double s = p->params[i].ndim >= 2 ? 1.0 / sqrt((double)p->params[i].shape[p->params[i].ndim - 1]) : 0.5;
        if (!strncmp(p->params[i].name, "embed", 5) || !strncmp(p->params[i].name, "value_embed", 11)) s = 1;
        for (int64_t k = 0; k < n; k++) m.theta[i][k] = (p->params[i].ndim < 2 ? 0.7 : 0) + s * urand();
    }
    m.tok_leaf = ir_leaf_named(p->graph, IR_INPUT, "tokens");
    m.tgt_leaf = ir_leaf_named(p->graph, IR_INPUT, "targets");
    int64_t T = p->T, V = (int64_t)fe_config(p, "vocab")->value;
    m.tokens = malloc(sizeof(int32_t) * (size_t)T);
    m.targets = malloc(sizeof(int32_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++) m.tokens[t] = (int32_t)((urand() + 1) / 2 * (double)V) % (int32_t)V;
    for (int64_t t = 0; t < T; t += 5) m.tokens[t] = eot;   /* documents of 5 tokens */
    for (int64_t t = 0; t < T; t++) m.targets[t] = t + 1 < T ? m.tokens[t + 1] : eot;
    double L = loss_at(&m, m.theta, g);
    CHECK(isfinite(L));
    const double h = 1e-5;
    for (int dir = 0; dir < 3; dir++) {
        double dot = 0;
        for (int i = 0; i < np; i++)
            for (int64_t k = 0; k < fe_param_count(&p->params[i]); k++) {
                v[i][k] = urand();
                dot += v[i][k] * g[i][k];
            }
        double side[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            for (int i = 0; i < np; i++)
                for (int64_t k = 0; k < fe_param_count(&p->params[i]); k++)
                    tp[i][k] = m.theta[i][k] + (sgn ? -h : h) * v[i][k];
            side[sgn] = loss_at(&m, tp, NULL);
        }
        double fd = (side[0] - side[1]) / (2 * h);
        double rel = fabs(fd - dot) / fmax(fabs(dot), 1e-12);
        if (!(rel < 1e-6)) fprintf(stderr, "direction %d: finite difference %.12g, gradient %.12g, rel %.3g\n", dir, fd, dot, rel);
        CHECK(rel < 1e-6);
    }
    for (int i = 0; i < np; i++) free(m.theta[i]), free(g[i]), free(v[i]), free(tp[i]);
    free(m.theta), free(g), free(v), free(tp), free(m.tokens), free(m.targets);
    step_grad_free(&m.gg);
    fe_free(&m.c);
}

TEST(two_embeddings_eot_mid_vocab) {
    const ConfigOverride s[] = {{"vocab", 50, true}, {"eot", 7, true}, {"dim", 16, true}, {"heads", 2, true},
                                {"head_dim", 8, true}, {"n_emb", 2, true}, {"block", 4, true}, {"seq_len", 32, true}};
    check_model("models/gpt2m.gptc", s, 8, 3, 1, 7);
}

TEST(four_embeddings_one_head_block_8) {
    const ConfigOverride s[] = {{"vocab", 33, true}, {"eot", 32, true}, {"dim", 8, true}, {"heads", 1, true},
                                {"head_dim", 8, true}, {"n_emb", 4, true}, {"block", 8, true}, {"seq_len", 48, true}};
    check_model("models/gpt2m.gptc", s, 8, 2, 0, 32);
}

/* the reductions, softmax, layer_norm and constant-tensor builtins (tests/models) */
TEST(nn_builtins) { check_model("tests/models/nn_builtins.gptc", NULL, 0, 1, 1, 0); }
/* grouped-query heads, plain causal masking, documents alone and a window alone */
TEST(attention_options) { check_model("tests/models/attention_options.gptc", NULL, 0, 1, 1, 0); }

int main(void) {
    RUN(two_embeddings_eot_mid_vocab);
    RUN(four_embeddings_one_head_block_8);
    RUN(nn_builtins);
    RUN(attention_options);
    return test_summary();
}
