/* cmd_train.c — gptc train: train a model on token shards on any backend (cpu, ref, cuda),
 * in one process or under mpirun. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/runtime.h"
#include "trainer/trainer.h"

const char train_usage[] =
    "usage: gptc train MODEL [--preset P] [--set NAME=VALUE]… --data DIR --out RUN_DIR\n"
    "                  [--init P.safetensors] [--resume RUN_DIR] [--seed S] [--grad-accum G]\n"
    "                  [--checkpoint-every N] [--backend cpu|ref|cuda] [--dtype f32|f64|bf16] [--quiet]\n"
    "Trains for the config's 'steps' (override with --set steps=…), validating at step 0,\n"
    "every 'val_every' steps and at the end on 'val_tokens' tokens of DIR's *val*.bin shards;\n"
    "training reads DIR's *train*.bin shards in name order. RUN_DIR receives log.txt\n"
    "(modded-nanogpt format), log.jsonl and checkpoint.safetensors (parameters, optimizer\n"
    "state, step, data position; written atomically at each validation and every N steps).\n"
    "  --init FILE          start from these parameters with a fresh optimizer\n"
    "  --resume RUN_DIR     continue the run in RUN_DIR (= --out) from its checkpoint, exactly\n"
    "  --seed S             initialization seed when starting fresh (default 0)\n"
    "  --grad-accum G       G micro-batches of seq_len tokens per step (default 1)\n"
    CLI_EXEC_HELP
    "Under `mpirun -np N`, every rank reads its slice of each batch, gradients are averaged\n"
    "and rank 0 writes the run folder. Ctrl-C writes a checkpoint and stops.\n\n";

typedef struct {
    const char *data, *out, *init, *resume, *seed, *accum, *every, *backend, *dtype;
} TrainArgs;

static int check_args(const TrainArgs *a, TrainOptions *o) {
    if (!a->data || !a->out) return usage_error("train", "--data and --out are required");
    if (a->init && a->resume) return usage_error("train", "--init and --resume exclude each other");
    if (a->resume && strcmp(a->resume, a->out) != 0)
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
    o->data_dir = a->data, o->out_dir = a->out, o->init_path = a->init, o->resume_dir = a->resume;
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
                           CLI_OPT("--backend", &a.backend), CLI_OPT("--dtype", &a.dtype), CLI_FLAG("--quiet", &quiet)};
    ModelArgs m;
    char usage[4096];
    snprintf(usage, sizeof usage, "%s%s", train_usage, model_options);
    int rc = parse_model_args("train", argc, argv, &m, usage, opts, (int)(sizeof opts / sizeof opts[0]));
    o.verbose = !quiet;
    if (rc < 0) rc = check_args(&a, &o);
    if (rc >= 0) {
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
    if (rc == 0) {
        int r = train_run(&c, &ev, &o, err, sizeof err);
        if (r != 0) cli_error("train", err);
        rc = r == 0 ? 0 : r == TRAIN_INTERRUPTED ? 130 : 1;
        if (r != 0 && rt_dist_size() > 1 && r != TRAIN_INTERRUPTED) rt_dist_abort(1);
    }
    fe_free(&c);
    fe_free(&ev);
    free_model_args(&m);
    rt_dist_finalize();
    return rc;
}
