/* test_frontend.c — the model language against the spec and the golden files:
 * config precedence, schedules (window, lr, momentum), parameter names/shapes/order as in
 * the golden checkpoint, logs, probes, graph shapes, and the semantics of small programs. */
#include <stdlib.h>

#include "frontend/frontend.h"
#include "formats/formats.h"
#include "tests/test.h"

static const char *GOLDEN = "tests/golden/tiny_x02";

/* The golden tiny_x02 configuration as --set overrides of models/gpt2m.gptc. */
static const ConfigOverride golden_sets[] = {
    {"vocab", 200, true}, {"eot", 199, true}, {"dim", 64, true}, {"heads", 2, true},
    {"head_dim", 32, true}, {"n_emb", 3, true}, {"block", 16, true}, {"seq_len", 256, true},
    {"val_seq_len", 256, true}, {"val_tokens", 512, true}, {"steps", 6, true}, {"val_every", 3, true},
};

static FILE *devnull(void) { return fopen("/dev/null", "w"); }

static int compile_golden(FeCompile *c, FILE *out) {
    FeOptions o = {.path = "models/gpt2m.gptc", .sets = golden_sets,
                   .nsets = (int)(sizeof golden_sets / sizeof golden_sets[0])};
    return fe_compile(c, &o, out);
}

/* Compiles program text; diagnostics go into *msgs (caller frees). */
static int compile_text(FeCompile *c, const char *text, char **msgs) {
    size_t len;
    FILE *out = open_memstream(msgs, &len);
    FeOptions o = {.path = "tests/inline.gptc", .text = text, .text_len = strlen(text)};
    int rc = fe_compile(c, &o, out);
    fclose(out);
    return rc;
}

TEST(golden_params_names_shapes_order) {
    FeCompile c;
    FILE *out = devnull();
    CHECK(compile_golden(&c, out) == 0);
    fclose(out);
    StFile f;
    char err[256];
    char path[256];
    snprintf(path, sizeof path, "%s/params.safetensors", GOLDEN);
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    CHECK(c.prog.nparams == f.ntensors);
    for (int i = 0; i < c.prog.nparams && i < f.ntensors; i++) {
        const ParamDecl *p = &c.prog.params[i];
        const StTensor *t = &f.tensors[i];
        CHECK_STR(p->name, t->name);
        CHECK(p->ndim == t->ndim);
        for (int k = 0; k < p->ndim && k < t->ndim; k++) CHECK(p->shape[k] == t->shape[k]);
    }
    st_close(&f);
    fe_free(&c);
}

TEST(golden_probes_are_the_activation_names) {
    FeCompile c;
    FILE *out = devnull();
    CHECK(compile_golden(&c, out) == 0);
    fclose(out);
    StFile f;
    char err[256], path[256];
    snprintf(path, sizeof path, "%s/acts.safetensors", GOLDEN);
    CHECK(st_open(&f, path, err, sizeof err) == 0);
    CHECK(c.prog.nprobes == f.ntensors);
    for (int i = 0; i < f.ntensors; i++) {
        const StTensor *t = &f.tensors[i];
        const ProbeDecl *p = NULL;
        for (int j = 0; j < c.prog.nprobes; j++)
            if (!strcmp(c.prog.probes[j].name, t->name)) p = &c.prog.probes[j];
        CHECK(p != NULL);
        if (!p) continue;
        CHECK(p->node->ndim == t->ndim);
        for (int k = 0; k < t->ndim && k < p->node->ndim; k++) CHECK(p->node->shape[k] == t->shape[k]);
    }
    st_close(&f);
    fe_free(&c);
}

/* Spec S-6 and the golden trajectory: S = 6, B = 16, M = 27. */
TEST(window_schedule_golden_trajectory) {
    FeCompile c;
    FILE *out = devnull();
    CHECK(compile_golden(&c, out) == 0);
    fclose(out);
    const double wl[] = {1, 10, 13, 14, 14, 18, 27}, ws[] = {0, 5, 6, 7, 7, 9, 13};
    for (int s = 0; s <= 6; s++) {
        CHECK_NEAR(fe_schedule_value(&c, "window_long", s), wl[s], 0);
        CHECK_NEAR(fe_schedule_value(&c, "window_short", s), ws[s], 0);
    }
    const double lr[] = {1, 1, 0.9523809523809523, 0.7142857142857143, 0.47619047619047616, 0.23809523809523808};
    for (int s = 0; s < 6; s++) CHECK_NEAR(fe_schedule_value(&c, "lr_mul", s), lr[s], 1e-15);
    CHECK_NEAR(fe_schedule_value(&c, "momentum", 0), 0.85, 1e-15);
    CHECK_NEAR(fe_schedule_value(&c, "momentum", 150), 0.9, 1e-15);
    CHECK_NEAR(fe_schedule_value(&c, "momentum", 1000), 0.95, 1e-15);
    fe_free(&c);
}

/* Full-size window schedule boundaries from spec S-6. */
TEST(window_schedule_full_size) {
    FeCompile c;
    FILE *out = devnull();
    FeOptions o = {.path = "models/gpt2m_x00.gptc", .preset = "medium"};
    CHECK(fe_compile(&c, &o, out) == 0);
    fclose(out);
    const int edges[][2] = {{75, 1}, {76, 2}, {155, 2}, {156, 3}, {1986, 13}, {1987, 14}, {3973, 14},
                            {3974, 15}, {5884, 26}, {5885, 27}, {5960, 27}};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        CHECK_NEAR(fe_schedule_value(&c, "window_long", edges[i][0]), edges[i][1], 0);
    CHECK_NEAR(fe_schedule_value(&c, "lr_mul", 1788), 1, 0);
    CHECK_NEAR(fe_schedule_value(&c, "lr_mul", 1789), (1 - 1789.0 / 5960) / 0.7, 1e-15);
    const OptimGroup *muon = &c.prog.optims[3];
    CHECK_STR(muon->name, "muon");
    CHECK(muon->kind == OPT_MUON && muon->n_ns == 5);
    CHECK_NEAR(muon->ns_coeffs[4][2], 1.2012, 0);
    CHECK_NEAR(fe_optim_arg(&c, muon, "lr", 5959, NAN), 0.025 * (1 - 5959.0 / 5960) / 0.7, 1e-15);
    CHECK_NEAR(fe_optim_arg(&c, &c.prog.optims[0], "lr", 0, NAN), 1.0 / 320, 1e-18);
    fe_free(&c);
}

TEST(parameter_totals_per_variant) {
    const int64_t totals[] = {454496336, 505959520, 557422704, 608885888, 660349072};
    for (int k = 0; k < 5; k++) {
        char path[64];
        snprintf(path, sizeof path, "models/gpt2m_x0%d.gptc", k);
        FeCompile c;
        FILE *out = devnull();
        FeOptions o = {.path = path, .preset = "medium"};
        CHECK(fe_compile(&c, &o, out) == 0);
        fclose(out);
        int64_t total = 0;
        for (int i = 0; i < c.prog.nparams; i++) total += fe_param_count(&c.prog.params[i]);
        CHECK(total == totals[k]);
        CHECK(c.prog.nlogs == 4 + k + 1);
        fe_free(&c);
    }
}

TEST(logs_read_the_right_entries) {
    FeCompile c;
    FILE *out = devnull();
    CHECK(compile_golden(&c, out) == 0);
    fclose(out);
    const char *names[] = {"x_lambdas", "x00_lambdas", "x01_lambdas", "x02_lambdas", "unet_lambdas", "v_lambdas",
                           "ve_lambdas"};
    const int64_t offset[] = {0, 1, 2, 3, 0, 0, 1}, stride[] = {4, 4, 4, 4, 1, 2, 2};
    CHECK(c.prog.nlogs == 7);
    for (int i = 0; i < 7 && i < c.prog.nlogs; i++) {
        CHECK_STR(c.prog.logs[i].name, names[i]);
        CHECK(c.prog.logs[i].offset == offset[i] && c.prog.logs[i].stride == stride[i]);
        CHECK(c.prog.logs[i].count == 16);
    }
    fe_free(&c);
}

TEST(config_precedence_default_set_preset_cli) {
    /* set → preset → --set, and derived values follow their inputs */
    const char *prog = "config { a = 1\n b = a * 10\n c = 5\n seq_len = 4 }\nset c = 6\npreset p { a = 2 }\n"
                       "optim g = adam(lr = 1)\nparam w : f32[b] init zeros() opt g\n"
                       "model { return sum(w[i] for i < b) * c }\n";
    ConfigOverride cli[] = {{"c", 7, true}};
    size_t len;
    char *msgs = NULL;
    FILE *out = open_memstream(&msgs, &len);
    FeCompile c;
    FeOptions o = {.path = "inline.gptc", .text = prog, .text_len = strlen(prog), .preset = "p"};
    CHECK(fe_compile(&c, &o, out) == 0);
    CHECK(fe_config(&c.prog, "a")->value == 2 && fe_config(&c.prog, "b")->value == 20);
    CHECK(fe_config(&c.prog, "c")->value == 6);
    fe_free(&c);
    o.sets = cli;
    o.nsets = 1;
    CHECK(fe_compile(&c, &o, out) == 0);
    CHECK(fe_config(&c.prog, "c")->value == 7);
    CHECK(c.prog.params[0].shape[0] == 20);
    fe_free(&c);
    fclose(out);
    free(msgs);
}

TEST(semantics_of_small_programs) {
    const char *prog =
        "config { seq_len = 8\n n = 3 }\n"
        "let xs = [i * i for i < 5 if i % 2 == 0]\n"          /* [0, 4, 16] */
        "let m = {1: 10, 2: 20}\n"
        "let total = sum(x for x in xs) + m[2] + len(m) + (if 2 in m then 100 else 0)\n"
        "let fl = 7 // 2 + (-7) // 2 + 7 % 3 + (-7) % 3\n"     /* 3 - 4 + 1 + 2 = 2 */
        "optim g = adam(lr = 0.1)\n"
        "param w : f32[total, 4] init normal(0, 1) opt g\n"
        "param v : f32[fl * 2] init constant([1, 2, 3, 4]) opt g\n"
        "input tok : i32[T]\n"
        "fn twice(x) = x + x\n"
        "fn pick(k) {\n  if k > 1 {\n    return k\n  } else if k == 1 {\n    return 10\n  }\n  return 20\n}\n"
        "model {\n  e = w[tok]\n  acc = {}\n  for i < n { acc[i] = twice(e) }\n"
        "  return sum(acc[i][0, 0] for i < n) * pick(0) * pick(1) * pick(2) + v[0]\n}\n";
    char *msgs = NULL;
    FeCompile c;
    CHECK(compile_text(&c, prog, &msgs) == 0);
    if (c.prog.nparams == 2) {
        CHECK(c.prog.params[0].shape[0] == 0 + 4 + 16 + 20 + 2 + 100);
        CHECK(c.prog.params[1].shape[0] == 4);
    } else {
        CHECK(!"two parameters");
    }
    CHECK(c.prog.graph->noutputs == 1 && c.prog.graph->outputs[0]->ndim == 0);
    if (msgs && *msgs) fprintf(stderr, "%s", msgs);
    fe_free(&c);
    free(msgs);
}

/* Each bad program reports the given message at the given line:col, and compiling
 * stops with errors (exit status 1 in the CLI). */
TEST(errors_are_located) {
    static const struct { const char *text, *expect; } cases[] = {
        {"config { seq_len = 4 }\nmodel { return dimm }\n", "inline.gptc:2:16: error: unknown name 'dimm'"},
        {"config { seq_len = 4\n dim = 2 }\nmodel { return dimm }\n",
         "inline.gptc:3:16: error: unknown name 'dimm'; did you mean 'dim'?"},
        {"config { seq_len = 4 }\nfor i < 3 {\n  x = 1\n}\nmodel { return 1 }\n",
         "inline.gptc:3:3: error: assignment is only allowed inside fn and model"},
        {"config { seq_len = 4 }\nmodel {\n  for i < 2 {\n", "inline.gptc:3:14: error: unexpected end of file"},
        {"config { seq_len = 4 }\noptim g = adam(lr = 1)\nparam w : f32[4, 3] init zeros() opt g\n"
         "model { return linear(w, w[0:2, 0:2])[0, 0] }\n",
         "inline.gptc:4:16: error: linear(x, w) needs w [N, 3] for x f32[4, 3], got w f32[2, 2]"},
        {"config { seq_len = 4 }\nmodel { return 1 / 0 }\n", "inline.gptc:2:18: error: division by zero"},
        {"config { seq_len = 4 }\nlet x = 9223372036854775807 + 1\n", "inline.gptc:2:9: error: integer"},
        {"config { seq_len = 4 }\noptim g = adam(lr = 1)\nparam w : f32[4] init zeros() opt g\n"
         "param w : f32[4] init zeros() opt g\nmodel { return w[0] }\n",
         "inline.gptc:4:7: error: parameter 'w' is declared twice"},
        {"config { seq_len = 4 }\noptim g = adam(lr = 1)\nparam w : f32[4] init zeros() opt h\n",
         "inline.gptc:3:35: error: unknown optimizer group 'h'"},
        {"config { seq_len = 4 }\nschedule s = stepp * 2\n", "inline.gptc:2:14: error: unknown name 'stepp'"},
        {"config { seq_len = 4 }\nfn f(x) = f(x)\nmodel { return f(1) }\n", "error: calls nested more than 64 deep"},
        {"config { seq_len = 4 }\nmodel { return [1, 2][5] }\n", "inline.gptc:2:23: error: index 5 is out of range"},
        {"config { seq_len = 4 }\nmodel { x = 1 $ 2\n return x }\n", "inline.gptc:2:15: error: unexpected character '$'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *msgs = NULL;
        FeCompile c;
        int rc = compile_text(&c, cases[i].text, &msgs);
        CHECK(rc == 1);
        CHECK(c.diag.nerrors > 0);
        if (!msgs || !strstr(msgs, cases[i].expect)) {
            fprintf(stderr, "case %zu: expected \"%s\" in:\n%s\n", i, cases[i].expect, msgs ? msgs : "");
            CHECK(!"message");
        }
        fe_free(&c);
        free(msgs);
    }
}

TEST(several_errors_in_one_run) {
    const char *prog = "config { seq_len = 4 }\nlet a = 1 +\nlet b = (2\nlet c = 3\nmodel { return q + r }\n";
    char *msgs = NULL;
    FeCompile c;
    CHECK(compile_text(&c, prog, &msgs) == 1);
    CHECK(c.diag.nerrors >= 2);
    CHECK(strstr(msgs, "inline.gptc:3:1: error: unexpected 'let'") && strstr(msgs, "inline.gptc:5:22: error"));
    CHECK(strstr(msgs, "inline.gptc:3:9: note: '(' opened here is not closed") != NULL);
    fe_free(&c);
    free(msgs);
}

TEST(unused_parameter_warns) {
    const char *prog = "config { seq_len = 4 }\noptim g = adam(lr = 1)\nparam w : f32[4] init zeros() opt g\n"
                       "param u : f32[4] init zeros() opt g\nmodel { return w[0] }\n";
    char *msgs = NULL;
    FeCompile c;
    CHECK(compile_text(&c, prog, &msgs) == 0);
    CHECK(c.diag.nwarnings == 1);
    CHECK(msgs && strstr(msgs, "inline.gptc:4:7: warning: parameter 'u' is never used"));
    fe_free(&c);
    free(msgs);
}

/* ---- override ---------------------------------------------------------------------------- */

/* A model given as text, standing in tests/ (its includes resolve from there), on the tiny
 * preset when it has one; messages are dropped. 0 when it compiled. */
static int compile_in_tests(FeCompile *c, const char *text, const char *preset) {
    FILE *out = devnull();
    FeOptions o = {.path = "tests/variant.gptc", .text = text, .text_len = strlen(text), .preset = preset};
    int rc = fe_compile(c, &o, out);
    fclose(out);
    return rc;
}

static int count_op(const IrGraph *g, IrOp op) {
    int n = 0;
    for (int i = 0; i < g->n; i++) n += g->nodes[i]->op == op;
    return n;
}

/* ATTENTION nodes whose window (input 4) is the runtime scalar of schedule `name` */
static int attention_windows(const IrGraph *g, const char *name) {
    int n = 0;
    for (int i = 0; i < g->n; i++) {
        const IrNode *w = g->nodes[i]->op == IR_ATTENTION ? g->nodes[i]->in[4] : NULL;
        n += w && w->op == IR_SCALAR && w->name && !strcmp(w->name, name);
    }
    return n;
}

static int params_ending(const Program *p, const char *suffix) {
    int n = 0;
    size_t k = strlen(suffix);
    for (int i = 0; i < p->nparams; i++) {
        size_t len = strlen(p->params[i].name);
        n += len >= k && !strcmp(p->params[i].name + len - k, suffix);
    }
    return n;
}

TEST(override_table_changes_earlier_uses) {
    /* gpt2m's attn reads long_layers, and its parameter loop attn_layers, before the override line */
    FeCompile c;
    CHECK(compile_in_tests(&c, "include \"../models/gpt2m.gptc\"\n", "tiny") == 0);
    CHECK(count_op(c.prog.graph, IR_ATTENTION) == 15);
    CHECK(attention_windows(c.prog.graph, "window_long") == 4);
    CHECK(params_ending(&c.prog, ".attn.qkvo") == 15);
    fe_free(&c);
    CHECK(compile_in_tests(&c, "include \"../models/gpt2m.gptc\"\noverride let long_layers = [0, 15]\n", "tiny") == 0);
    CHECK(count_op(c.prog.graph, IR_ATTENTION) == 15);
    CHECK(attention_windows(c.prog.graph, "window_long") == 2);
    CHECK(attention_windows(c.prog.graph, "window_short") == 13);
    fe_free(&c);
    CHECK(compile_in_tests(&c, "override let attn_layers = [0, 1, 2]\ninclude \"../models/gpt2m.gptc\"\n", "tiny") == 0);
    CHECK(count_op(c.prog.graph, IR_ATTENTION) == 3);
    CHECK(attention_windows(c.prog.graph, "window_long") == 1);
    CHECK(params_ending(&c.prog, ".attn.qkvo") == 3);
    CHECK(c.diag.nwarnings == 0);
    fe_free(&c);
}

TEST(override_fn_changes_every_block) {
    FeCompile c;
    CHECK(compile_in_tests(&c, "include \"../models/gpt2m.gptc\"\n", "tiny") == 0);
    int squares = count_op(c.prog.graph, IR_SQUARE), relus = count_op(c.prog.graph, IR_RELU);
    fe_free(&c);
    CHECK(compile_in_tests(&c, "include \"../models/gpt2m.gptc\"\n"
                               "override fn mlp(i, g) {\n    h = relu(linear(g, blocks[i].mlp.fc))\n"
                               "    return linear(h, blocks[i].mlp.proj)\n}\n", "tiny") == 0);
    CHECK(relus == 16 && count_op(c.prog.graph, IR_RELU) == 16);
    CHECK(count_op(c.prog.graph, IR_SQUARE) == squares - 16);
    fe_free(&c);
}

TEST(override_schedule_everywhere) {
    /* window_short is read by attn and is the trainer's per-step scalar */
    FeCompile c;
    CHECK(compile_in_tests(&c, "include \"../models/gpt2m.gptc\"\noverride schedule window_short = window_long // 4\n",
                           "tiny") == 0);
    int changed = 0;
    for (int64_t step = 0; step <= 300; step += 10) {
        double l = fe_schedule_value(&c, "window_long", step), s = fe_schedule_value(&c, "window_short", step);
        CHECK(s == floor(l / 4));
        changed += floor(l / 4) != floor(l / 2);
    }
    CHECK(changed > 10);
    CHECK(c.prog.nschedules == 5);
    CHECK(attention_windows(c.prog.graph, "window_short") == 11);
    fe_free(&c);
}

TEST(override_outermost_file_wins) {
    /* base.gptc: width = 2·dim rows; variant.gptc overrides it with 3·dim; dim = 4 */
    FeCompile c;
    CHECK(compile_in_tests(&c, "include \"models/override/base.gptc\"\n", NULL) == 0);
    CHECK(c.prog.nparams == 1 && c.prog.params[0].shape[0] == 8 && count_op(c.prog.graph, IR_RELU) == 1);
    fe_free(&c);
    CHECK(compile_in_tests(&c, "include \"models/override/variant.gptc\"\n", NULL) == 0);
    CHECK(c.prog.nparams == 1 && c.prog.params[0].shape[0] == 12);
    fe_free(&c);
    CHECK(compile_in_tests(&c, "include \"models/override/variant.gptc\"\noverride let width = 4 * dim\n"
                               "override fn act(x) = square(x)\n", NULL) == 0);
    CHECK(c.prog.nparams == 1 && c.prog.params[0].shape[0] == 16);
    CHECK(count_op(c.prog.graph, IR_RELU) == 0 && count_op(c.prog.graph, IR_SQUARE) == 1);
    fe_free(&c);
    /* variant.gptc and sibling.gptc, neither including the other, both override width:
     * an error, unless a file that includes both overrides it too */
    const char *both = "include \"models/override/variant.gptc\"\ninclude \"models/override/sibling.gptc\"\n";
    CHECK(compile_in_tests(&c, both, NULL) == 1);
    fe_free(&c);
    char text[256];
    snprintf(text, sizeof text, "%soverride let width = dim\n", both);
    CHECK(compile_in_tests(&c, text, NULL) == 0);
    CHECK(c.prog.nparams == 1 && c.prog.params[0].shape[0] == 4);
    fe_free(&c);
}

int main(void) {
    RUN(golden_params_names_shapes_order);
    RUN(golden_probes_are_the_activation_names);
    RUN(window_schedule_golden_trajectory);
    RUN(window_schedule_full_size);
    RUN(parameter_totals_per_variant);
    RUN(logs_read_the_right_entries);
    RUN(config_precedence_default_set_preset_cli);
    RUN(semantics_of_small_programs);
    RUN(errors_are_located);
    RUN(several_errors_in_one_run);
    RUN(unused_parameter_warns);
    RUN(override_table_changes_earlier_uses);
    RUN(override_fn_changes_every_block);
    RUN(override_schedule_everywhere);
    RUN(override_outermost_file_wins);
    return test_summary();
}
