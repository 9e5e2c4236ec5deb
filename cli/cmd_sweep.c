/* cmd_sweep.c — gptc sweep: a study's variants × seeds, each a child `gptc train` process
 * (study/sweep.c), resumable by running the same command again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "study/study.h"

const char sweep_usage[] =
    "usage: gptc sweep MODEL [--preset P] [--set NAME=VALUE]… --vary NAME=V1,V2,… [--vary …]\n"
    "                  --seeds N --data DIR --out SWEEP_DIR [-j JOBS] [--grad-accum G]\n"
    "                  [--backend cpu|ref|cuda] [--dtype f32|f64|bf16] [--checkpoint-every N] [--launcher CMD]\n"
    "Trains every variant (one per value of --vary; several --vary: every combination) with\n"
    "seeds 0 … N−1, each as `gptc train MODEL … --set NAME=V --seed S` in its own folder\n"
    "SWEEP_DIR/NAME=V/seed=S (the child's output in train.out, its settings in run.json);\n"
    "SWEEP_DIR/sweep.json describes the sweep. Running the same command again skips finished\n"
    "runs, resumes interrupted ones from their checkpoints (--resume) and starts the rest; more\n"
    "values or seeds may be added, other settings need another folder. Progress (runs done,\n"
    "running runs' steps, ETA) goes to stderr. Ctrl-C stops every run at a checkpoint. A\n"
    "failed run is named with its folder and exit status, and the sweep exits 1 at the end.\n"
    "  --vary NAME=V1,V2,…   a config value to vary (repeatable)\n"
    "  --seeds N             seeds per variant: 0 … N−1\n"
    "  --data DIR            token shards, as for gptc train\n"
    "  --out SWEEP_DIR       the sweep folder (created if missing)\n"
    "  -j JOBS               runs at the same time (default 1; each gets OMP_NUM_THREADS =\n"
    "                        cores / JOBS unless it is set)\n"
    "  --launcher CMD        run each gptc train under CMD, e.g. 'mpirun -np 8' for 8 ranks\n"
    "                        (Ctrl-C then goes to CMD's process group)\n"
    "  --grad-accum, --dtype, --backend, --checkpoint-every   passed to every gptc train\n"
    "Then: gptc report SWEEP_DIR -o REPORT_DIR.\n\n";

typedef struct {
    const char **vary;
    int nvary;
    const char *seeds, *out, *jobs, *launcher;
    const char **train;          /* argv[0] and the arguments passed to every gptc train */
    int ntrain;
} SweepArgs;

static bool is_one_of(const char *a, const char *const *names) {
    for (; *names; names++)
        if (!strcmp(a, *names)) return true;
    return false;
}

/* Splits argv into the sweep's own options and the train arguments. -1 to go on, else the
 * exit status. */
static int split_args(int argc, char **argv, SweepArgs *a) {
    static const char *const valued[] = {"--preset", "--set", "-I", "--data", "--grad-accum", "--dtype", "--backend",
                                         "--checkpoint-every", NULL};
    a->vary = xcalloc((size_t)argc, sizeof *a->vary);
    a->train = xcalloc((size_t)argc + 1, sizeof *a->train);
    a->train[a->ntrain++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        bool own = !strcmp(o, "--vary") || !strcmp(o, "--seeds") || !strcmp(o, "--out") || !strcmp(o, "-j") ||
                   !strcmp(o, "--launcher");
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            printf("%s%s", sweep_usage, model_options);
            return 0;
        }
        if ((own || is_one_of(o, valued)) && i + 1 >= argc) return usage_error("sweep", "%s needs a value", o);
        if (!strcmp(o, "--vary")) a->vary[a->nvary++] = argv[++i];
        else if (!strcmp(o, "--seeds")) a->seeds = argv[++i];
        else if (!strcmp(o, "--out")) a->out = argv[++i];
        else if (!strcmp(o, "-j")) a->jobs = argv[++i];
        else if (!strcmp(o, "--launcher")) a->launcher = argv[++i];
        else {
            a->train[a->ntrain++] = argv[i];
            if (is_one_of(o, valued)) a->train[a->ntrain++] = argv[++i];
        }
    }
    return -1;
}

static int parse_count(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    *out = (int)v;
    return *s && !*end && v >= lo && v <= hi;
}

/* The train options, as gptc train would check them. */
static int check_train_args(SweepArgs *a, ModelArgs *m) {
    const char *data = NULL, *accum = NULL, *dtype = NULL, *backend = NULL, *every = NULL;
    const CliOpt opts[] = {CLI_OPT("--data", &data), CLI_OPT("--grad-accum", &accum), CLI_OPT("--dtype", &dtype),
                           CLI_OPT("--backend", &backend), CLI_OPT("--checkpoint-every", &every)};
    int rc = parse_model_args("sweep", a->ntrain, (char **)a->train, m, sweep_usage, opts, 5);
    if (rc >= 0) return rc;
    int n;
    if (!data || !a->out) return usage_error("sweep", "--data and --out are required");
    if (a->nvary == 0) return usage_error("sweep", "nothing to vary: give --vary NAME=V1,V2,…");
    if (!a->seeds || !parse_count(a->seeds, 1, 1000, &n))
        return usage_error("sweep", "--seeds takes a number of seeds from 1 to 1000, got '%s'", a->seeds ? a->seeds : "nothing");
    if (a->jobs && !parse_count(a->jobs, 1, 64, &n)) return usage_error("sweep", "-j takes 1 to 64 runs, got '%s'", a->jobs);
    if (a->launcher && !a->launcher[strspn(a->launcher, " \t")])
        return usage_error("sweep", "--launcher takes a command such as 'mpirun -np 8'");
    if (accum && !parse_count(accum, 1, 64, &n)) return usage_error("sweep", "--grad-accum takes 1 to 64, got '%s'", accum);
    if (every && !parse_count(every, 1, 1 << 30, &n))
        return usage_error("sweep", "--checkpoint-every takes a number of steps >= 1, got '%s'", every);
    RtBackend b;
    RtPrec prec;
    return cli_parse_exec("sweep", backend, dtype, &b, &prec);
}

/* Every --vary value is a number, no name is varied twice or also --set. */
static int check_vary(const SweepArgs *a, const ModelArgs *m) {
    for (int k = 0; k < a->nvary; k++) {
        const char *eq = strchr(a->vary[k], '=');
        size_t len = eq ? (size_t)(eq - a->vary[k]) : 0;
        if (!eq || len == 0 || !eq[1]) return usage_error("sweep", "--vary takes NAME=V1,V2,…, got '%s'", a->vary[k]);
        for (const char *v = eq + 1; *v;) {
            char buf[512];
            const char *c = strchrnul(v, ',');
            snprintf(buf, sizeof buf, "%.*s=%.*s", (int)len, a->vary[k], (int)(c - v), v);
            ConfigOverride o = {0};
            bool ok = cli_parse_set(buf, &o);
            free((char *)o.name);
            if (!ok) return usage_error("sweep", "--vary values are numbers: '%s'", buf);
            v = *c ? c + 1 : c;
            if (*c && !*v) return usage_error("sweep", "--vary ends with a comma: '%s'", a->vary[k]);
        }
        for (int j = 0; j < k; j++)
            if (!strncmp(a->vary[j], a->vary[k], len + 1)) return usage_error("sweep", "--vary of '%.*s' given twice", (int)len, a->vary[k]);
        for (int j = 0; j < m->nsets; j++)
            if (strlen(m->sets[j].name) == len && !strncmp(m->sets[j].name, a->vary[k], len))
                return usage_error("sweep", "'%s' is both set (--set) and varied (--vary)", m->sets[j].name);
    }
    return -1;
}

/* Compiles the model once per variant, before any run starts: a misspelt name or an invalid
 * combination fails here with the compiler's message. Sets each run's length. 0 or 1. */
static int compile_variants(StSweep *s, const ModelArgs *m) {
    int rc = 0;
    for (int i = 0; i < s->nruns && rc == 0; i++) {
        StSweepRun *r = &s->runs[i];
        if (i > 0 && !strcmp(r->variant, s->runs[i - 1].variant)) {
            r->steps = s->runs[i - 1].steps;
            continue;
        }
        ConfigOverride sets[64 + 16];
        int n = 0;
        for (int k = 0; k < m->nsets; k++) sets[n++] = m->sets[k];
        for (int k = 0; k < r->nsets && n < 80; k++) cli_parse_set(r->sets[k], &sets[n++]);
        FeOptions fo = {.path = m->model, .preset = m->preset, .sets = sets, .nsets = n,
                        .include_dirs = m->ninclude ? (const char **)m->include_dirs : NULL};
        char *diag;
        size_t len;
        FILE *out = open_memstream(&diag, &len);   /* warnings stay quiet; errors are shown */
        FeCompile c;
        if (fe_compile(&c, &fo, out) != 0) {
            fclose(out);
            fprintf(stderr, "%sgptc sweep: the model does not compile for variant %s\n", diag, r->variant);
            rc = 1;
        } else {
            fclose(out);
            const ConfigEntry *e = fe_config(&c.prog, "steps");
            r->steps = e ? (int64_t)e->value : 0;
        }
        free(diag);
        fe_free(&c);
        for (int k = m->nsets; k < n; k++) free((char *)sets[k].name);
    }
    return rc;
}

static char *command_line(int argc, char **argv) {
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "gptc");
    for (int i = 0; i < argc; i++) fprintf(f, " %s", argv[i]);
    fclose(f);
    return buf;
}

int cmd_sweep(int argc, char **argv) {
    SweepArgs a = {0};
    ModelArgs m = {0};
    StSweep s = {0};
    char err[4096];
    int rc = split_args(argc, argv, &a);
    if (rc < 0) rc = check_train_args(&a, &m);
    if (rc < 0) rc = check_vary(&a, &m);
    char exe[4096] = "/proc/self/exe";
    if (rc < 0 && a.launcher) {   /* the launcher runs gptc by its path */
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[len > 0 ? len : 0] = 0;
    }
    if (rc < 0) {
        s = (StSweep){.out = a.out, .exe = exe, .launcher = a.launcher, .train_args = a.train + 1,
                      .ntrain_args = a.ntrain - 1, .jobs = a.jobs ? atoi(a.jobs) : 1};
        rc = st_sweep_plan(&s, a.vary, a.nvary, atoi(a.seeds), err, sizeof err) != 0 ? usage_error("sweep", "%s", err) : -1;
    }
    if (rc < 0) rc = compile_variants(&s, &m) ? 1 : -1;
    if (rc < 0) {
        char *cmd = command_line(argc, argv);
        if (st_sweep_prepare(&s, cmd, err, sizeof err) != 0) {
            fprintf(stderr, "gptc sweep: %s\n", err);
            rc = 1;
        } else {
            rc = st_sweep_run(&s);
        }
        free(cmd);
    }
    st_sweep_free(&s);
    free_model_args(&m);
    free(a.vary), free(a.train);
    return rc;
}
