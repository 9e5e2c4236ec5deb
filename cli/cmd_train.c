/* cmd_train.c — gptc train: train a model on token shards on any backend (cpu, ref, cuda),
 * in one process or under mpirun. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "runtime/runtime.h"
#include "trainer/trainer.h"

const char train_usage[] =
    "usage: gptc train MODEL [--preset P] [--set NAME=VALUE]… --data DIR --out RUN_DIR\n"
    "                  [--init P.safetensors] [--resume RUN_DIR [--allow-change]] [--overwrite]\n"
    "                  [--seed S] [--grad-accum G] [--schedule NAME=VALUE[,…]]…\n"
    "                  [--checkpoint-every N] [--backend cpu|ref|cuda] [--dtype f32|f64|bf16] [--quiet]\n"
    "Trains for the config's 'steps' (override with --set steps=…), validating at step 0,\n"
    "every 'val_every' steps and at the end on 'val_tokens' tokens of DIR's *val*.bin shards;\n"
    "training reads DIR's *train*.bin shards in name order. RUN_DIR receives log.txt\n"
    "(modded-nanogpt format), log.jsonl and checkpoint.safetensors (parameters, optimizer\n"
    "state, step, data position; written atomically at each validation and every N steps).\n"
    "One trainer at a time writes RUN_DIR (it holds RUN_DIR/train.lock); a fresh run does not\n"
    "start in a folder that holds a run. A non-finite loss or a write that fails (a full disk)\n"
    "stops the run; the checkpoint of the last good step stays.\n"
    "  --init FILE          start from these parameters (or a checkpoint's) with a fresh optimizer\n"
    "  --resume RUN_DIR     continue the run in RUN_DIR (= --out) from its checkpoint, exactly; the\n"
    "                       model, config and micro-batches a step (ranks × --grad-accum) must be\n"
    "                       the run's, its logs at least as long as the checkpoint recorded; a\n"
    "                       finished run says so and trains nothing\n"
    "  --allow-change       resume although the model, config or micro-batches a step differ\n"
    "  --overwrite          start afresh in a folder that holds a run, replacing its logs and\n"
    "                       checkpoint\n"
    "  --seed S             initialization seed when starting fresh (default 0)\n"
    "  --grad-accum G       G micro-batches of seq_len tokens per step (default 1)\n"
    CLI_SCHEDULE_HELP
    "                       (checkpoints record the pins: --resume takes the same ones)\n"
    CLI_EXEC_HELP
    "Under `mpirun -np N`, every rank reads its slice of each batch, gradients are averaged\n"
    "and rank 0 writes the run folder. Ctrl-C writes a checkpoint and stops.\n\n";

typedef struct {
    const char *data, *out, *init, *resume, *seed, *accum, *every, *backend, *dtype;
    CliList pins;               /* --schedule */
    bool overwrite, allow_change;
    char *out_dir;              /* --out without trailing slashes (allocated) */
} TrainArgs;

/* path without its trailing slashes ("/" stays), allocated. */
static char *folder_name(const char *path) {
    char *s = xstrdup(path);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = 0;
    return s;
}

/* Whether two folder arguments name one folder: the same name up to trailing slashes, or
 * the same folder on disk. */
static bool same_folder(const char *a, const char *b) {
    char *x = folder_name(a), *y = folder_name(b);
    bool same = !strcmp(x, y);
    free(x), free(y);
    struct stat sa, sb;
    return same || (stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

static int check_args(TrainArgs *a, TrainOptions *o) {
    if (!a->data || !a->out) return usage_error("train", "--data and --out are required");
    if (a->init && a->resume) return usage_error("train", "--init and --resume exclude each other");
    if (a->resume && a->overwrite)
        return usage_error("train", "--resume continues the run in the folder, --overwrite replaces it: choose one");
    if (a->allow_change && !a->resume) return usage_error("train", "--allow-change is for --resume");
    if (a->resume && !same_folder(a->resume, a->out))
        return usage_error("train", "--resume continues a run in its own folder: give --out the same folder ('%s')", a->resume);
    int rc = cli_parse_exec("train", a->backend, a->dtype, &o->backend, &o->prec);
    if (rc >= 0) return rc;
    char *end = NULL;
    o->seed = a->seed ? strtoull(a->seed, &end, 10) : 0;
    if (a->seed && (*end || !*a->seed)) return usage_error("train", "--seed takes an integer, got '%s'", a->seed);
    o->grad_accum = a->accum ? (int)strtol(a->accum, &end, 10) : 1;
    if (a->accum && (*end || o->grad_accum < 1 || o->grad_accum > TRAIN_MAX_ACCUM))
        return usage_error("train", "--grad-accum takes 1 to 64, got '%s'", a->accum);
    o->checkpoint_every = a->every ? (int)strtol(a->every, &end, 10) : 0;
    if (a->every && (*end || o->checkpoint_every < 1))
        return usage_error("train", "--checkpoint-every takes a number of steps >= 1, got '%s'", a->every);
    a->out_dir = folder_name(a->out);
    o->data_dir = a->data, o->out_dir = o->resume_dir = a->out_dir, o->init_path = a->init;
    if (!a->resume) o->resume_dir = NULL;
    o->overwrite = a->overwrite, o->allow_change = a->allow_change;
    return -1;
}

int cmd_train(int argc, char **argv) {
    char err[1024];
    if (rt_dist_init(&argc, &argv, err, sizeof err) != 0) {
        cli_error("train", err);
        return 1;
    }
    TrainArgs a = {0};
    bool quiet = false;
    TrainOptions o = {.verbose = true};
    const CliOpt opts[] = {CLI_OPT("--data", &a.data), CLI_OPT("--out", &a.out), CLI_OPT("--init", &a.init), CLI_OPT("--resume", &a.resume),
                           CLI_OPT("--seed", &a.seed), CLI_OPT("--grad-accum", &a.accum), CLI_OPT("--checkpoint-every", &a.every),
                           CLI_LIST("--schedule", &a.pins),
                           CLI_OPT("--backend", &a.backend), CLI_OPT("--dtype", &a.dtype), CLI_FLAG("--quiet", &quiet),
                           CLI_FLAG("--overwrite", &a.overwrite), CLI_FLAG("--allow-change", &a.allow_change)};
    ModelArgs m;
    char usage[4096];
    snprintf(usage, sizeof usage, "%s%s", train_usage, model_options);
    int rc = parse_model_args("train", argc, argv, &m, usage, opts, (int)(sizeof opts / sizeof opts[0]));
    o.verbose = !quiet;
    if (rc < 0) rc = check_args(&a, &o);
    if (rc >= 0) {
        free(a.out_dir);
        free_model_args(&m);
        rt_dist_finalize();
        return rc;
    }
    FeCompile c, ev;
    FeOptions fo = {.path = m.model, .preset = m.preset, .sets = m.sets, .nsets = m.nsets,
                    .include_dirs = m.ninclude ? (const char **)m.include_dirs : NULL};
    rc = fe_compile(&c, &fo, stderr) ? 1 : 0;
    fo.seq_config = "val_seq_len";
    FILE *quiet_out = fopen("/dev/null", "w");   /* the same file: its warnings were shown */
    if (fe_compile(&ev, &fo, quiet_out) != 0) rc = 1;
    fclose(quiet_out);
    if (rc == 0) rc = cli_pin_schedules("train", &c, &a.pins);
    if (rc == 0) cli_pin_schedules("train", &ev, &a.pins);   /* the same model: it pins as c did */
    if (rc == 0) {
        int r = train_run(&c, &ev, &o, err, sizeof err);
        if (r == TRAIN_FINISHED && rt_dist_rank() == 0) fprintf(stderr, "gptc train: %s\n", err);
        else if (r != 0 && r != TRAIN_FINISHED) cli_error("train", err);
        rc = r == 0 || r == TRAIN_FINISHED ? 0 : r == TRAIN_INTERRUPTED ? 130 : 1;
        if (rc == 1 && rt_dist_size() > 1) rt_dist_abort(1);
    }
    fe_free(&c);
    fe_free(&ev);
    free(a.out_dir);
    free_model_args(&m);
    rt_dist_finalize();
    return rc;
}
