/* cmd_init.c — gptc init: a parameter file initialized as the model declares, seeded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "trainer/trainer.h"
#include "formats/formats.h"

const char init_usage[] =
    "usage: gptc init MODEL [--preset P] [--set NAME=VALUE]… -o OUT.safetensors [--seed S]\n"
    "                 [--dtype f32|f64|bf16]\n"
    "Writes every parameter, initialized as its declaration says (normal, uniform, zeros,\n"
    "constant; slice initializers after the whole-tensor one), from seed S (default 0).\n"
    "The same model, config and seed give the same file. Default dtype f32.\n\n";

int cmd_init(int argc, char **argv) {
    const char *out = NULL, *seed_s = NULL, *dtype = NULL;
    const CliOpt opts[] = {CLI_OPT("-o", &out), CLI_OPT("--seed", &seed_s), CLI_OPT("--dtype", &dtype)};
    ModelArgs m;
    char usage[2048];
    snprintf(usage, sizeof usage, "%s%s", init_usage, model_options);
    int rc = parse_model_args("init", argc, argv, &m, usage, opts, 3);
    StDtype dt = ST_F32;
    char *end = NULL;
    unsigned long long seed = seed_s ? strtoull(seed_s, &end, 10) : 0;
    if (rc < 0 && !out) rc = usage_error("init", "-o OUT.safetensors is required");
    if (rc < 0 && seed_s && (*end || !*seed_s)) rc = usage_error("init", "--seed takes an integer, got '%s'", seed_s);
    if (rc < 0 && dtype) {
        if (!strcmp(dtype, "f64")) dt = ST_F64;
        else if (!strcmp(dtype, "bf16")) dt = ST_BF16;
        else if (strcmp(dtype, "f32")) rc = usage_error("init", "--dtype is f32, f64 or bf16, got '%s'", dtype);
    }
    if (rc >= 0) {
        free_model_args(&m);
        return rc;
    }
    FeCompile c;
    rc = compile_model(&c, &m) ? 1 : 0;
    if (rc == 0) {
        Program *p = &c.prog;
        StWriter *w = st_writer_new();
        double **vals = xcalloc((size_t)p->nparams + 1, sizeof *vals);
        for (int i = 0; i < p->nparams; i++) vals[i] = xmalloc(sizeof(double) * (size_t)fe_param_count(&p->params[i]));
        init_params(p, seed, vals);
        for (int i = 0; i < p->nparams; i++) {
            st_writer_add_f64(w, p->params[i].name, dt, p->params[i].ndim, p->params[i].shape, vals[i]);
            free(vals[i]);
        }
        free(vals);
        char err[512];
        if (st_writer_save(w, out, err, sizeof err) != 0) {
            fprintf(stderr, "gptc init: %s\n", err);
            rc = 1;
        }
        st_writer_free(w);
    }
    fe_free(&c);
    free_model_args(&m);
    return rc;
}
