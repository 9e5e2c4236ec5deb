/* trainer.h — training a model on a backend (runtime.h): steps (gradients on a batch, the
 * optimizer update, checkpoints), the training loop, the data loader, the logs, parameter
 * initialization and the parameter and batch files.
 *
 * ==== Steps (trainer.c) ====
 * Ownership: a Trainer owns its graphs (besides the compiled model's, which it extends
 * with the backward pass), interpreters and host arrays; trainer_free releases them.
 * The FeCompile must outlive it. */
#ifndef GPTC_TRAINER_H
#define GPTC_TRAINER_H

#include <stdbool.h>

#include "formats/formats.h"
#include "frontend/frontend.h"
#include "runtime/runtime.h"
#include "step/step.h"

typedef struct {
    FeCompile *c;
    RtPrec prec;
    RtBackend backend;
    StepGrad gg;
    StepUpdate ug;
    RtExec *grad_r, *upd_r;
    int np;
    double **param, **grad;   /* per parameter, host copies (double) */
    double **state[2];        /* optimizer state: Adam m, v; Muon buf in state[0] */
    int64_t adam_steps;       /* optimizer steps taken since the state was fresh */
    IrNode *tokens, *targets; /* the model's inputs */
    int *owner;               /* rank that updates parameter i (-1: every rank), spec S-9.5 */
    /* Resident mode (the cpu backend in one process): parameters and optimizer state stay
     * in the executors between steps, in float; the host copies above are refreshed only
     * when read (trainer_sync) and pushed when written (load, a fresh init). */
    bool resident;
    bool host_stale;          /* the executors hold newer parameters and state than the host */
    bool dev_stale;           /* the host holds newer ones than the executors */
    /* Device gradients (the cuda backend; the cpu backend in one process, see below):
     * trainer_grad hands the gradients to the update executor device to device, averaged
     * across ranks by NCCL inside the step; t->grad is then not filled, and on cuda
     * micro-batch accumulation is not available. With
     * several ranks each Muon matrix is updated by its owner, which broadcasts it with
     * NCCL; the host copies (checkpoints, validation) come from the owners by MPI, so
     * trainer_sync is collective there. */
    bool device_grads;
    bool grads_in_update;     /* the update executor holds this step's gradients */
    /* The cpu backend in one process: the update executor reads the gradients where the
     * gradient executor computed them, and the gradient executor reads the parameters where
     * the update writes them (rt_exec_share), so a step copies neither. device_grads is set
     * then; with micro-batches (trainer_micro_batches) the update executor's gradients get
     * memory of their own, and each batch's are added there in float, scaled by 1/micro. */
    bool params_shared;
    int micro, micro_done;    /* micro-batches a step (0 or 1: one), and those handed over so far */
} Trainer;

/* A named I64 scalar stored in checkpoints beside the parameters ("trainer.step" …). */
typedef struct {
    const char *name;
    int64_t value;
} TrainerExtra;

int trainer_init(Trainer *t, FeCompile *c, RtBackend backend, RtPrec prec, char *err, size_t errlen);
void trainer_free(Trainer *t);
/* n micro-batches a step (call before the first step): their gradients are averaged on
 * the cpu backend's update executor in one process, else summed by the caller in the host
 * copies t->grad (device_grads false). Returns -1 where that cannot be done (cuda). */
int trainer_micro_batches(Trainer *t, int n);
/* Every schedule of program c at step `step` into executor e: each scalar a graph reads is
 * a schedule of the model, set by its name, whatever it is called (a pinned one to its
 * pin, fe_pin_schedule). */
void trainer_schedules(FeCompile *c, RtExec *e, int64_t step);
/* The gradient executor's schedules at `step`. */
void trainer_set_schedules(Trainer *t, int64_t step);
/* Loss and t->grad on one batch (T tokens and targets), with the schedules set last. */
int trainer_grad(Trainer *t, const int32_t *tokens, const int32_t *targets, double *loss, char *err, size_t errlen);
/* One optimizer step of t->param with t->grad, schedules at step index `step`. With
 * several ranks each Muon matrix is updated by its owner and broadcast with its momentum. */
int trainer_update(Trainer *t, int64_t step, char *err, size_t errlen);
/* Brings t->param and t->state up to date (resident mode); a no-op otherwise. Call it
 * before reading them; after writing them directly (not through trainer_load), set
 * t->dev_stale. */
void trainer_sync(Trainer *t);
/* Parameters (model names), optimizer state (adam_m.NAME, adam_v.NAME, muon_buf.NAME),
 * trainer.adam_steps, the extras and the metadata pairs (nmeta, may be 0), written
 * atomically. */
int trainer_save(Trainer *t, const char *path, const TrainerExtra *extra, int nextra, const StMeta *meta, int nmeta,
                 char *err, size_t errlen);
/* Reads parameters, and the optimizer state when present and with_state; a fresh state
 * otherwise. Extras present in the file are read into extra[].value. Of a checkpoint (a
 * file with trainer.adam_steps), trainer.* and run.* tensors that are not among the extras
 * are passed over, so its parameters can start another run. */
int trainer_load(Trainer *t, const char *path, bool with_state, TrainerExtra *extra, int nextra, char *err,
                    size_t errlen);

/* ==== Parameter and batch files (params.c) ====
 * Ownership: value arrays returned by the loaders are malloc'ed, one per parameter or
 * input, and released with values_free / free by the caller. */

/* values[i] = parameter i read from path (any float dtype, its declared shape). A missing
 * parameter, a wrong shape or a tensor the model does not declare is an error. */
int params_load(const Program *p, const char *path, double **values, char *err, size_t errlen);
/* The same for a gradient file: one tensor per trainable parameter; values[i] of a frozen
 * parameter is NULL. */
int grads_load(const Program *p, const char *path, double **values, char *err, size_t errlen);
void values_free(double **values, int n);

/* data[k] = INPUT leaf k (leaves[k]) read from the batch file by name; *count inputs. */
int batch_load(const IrGraph *g, const char *path, int32_t **data, IrNode **leaves, int max, int *count,
                  char *err, size_t errlen);
int batch_check_ids(const IrGraph *g, const char *path, int32_t *const *data, IrNode *const *leaves, int n,
                       char *err, size_t errlen);

/* ==== Initialization (init.c) ====
 * Parameter initialization from the model's declarations, seeded.
 * Ownership: init_params fills caller-allocated arrays (fe_param_count doubles each). */

/* A small deterministic generator: splitmix64-seeded xoshiro256**. */
typedef struct { uint64_t s[4]; } Rng;
void rng_seed(Rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_next(Rng *r);
double rng_uniform(Rng *r);   /* [0, 1) with 53 random bits */
double rng_normal(Rng *r);    /* N(0, 1), Box–Muller */

/* values[i] = parameter i initialized as declared: init[0] over the whole tensor, then each
 * slice initializer over its slice of axis 0, in order. Parameter i draws from its own
 * stream (seed, i), so adding a parameter does not change the others' values. */
void init_params(const Program *p, uint64_t seed, double **values);

/* ==== The data loader (data.c) ====
 * Loader (S-7.2), per rank r of W, T tokens per rank, G = W·T:
 *   open the first file; pos = 0
 *   every batch: while pos + G + 1 >= N(file): next file, pos = 0   (no wrap-around)
 *                start = pos + r·T; inputs = tok[start .. start+T-1];
 *                targets = tok[start+1 .. start+T]; pos += G
 * A file serves batches while G + 2 tokens remain from pos; a file with N <= G + 1 is
 * skipped; running out of files is an error. Neighbouring ranks overlap by one token.
 *
 * Files: in a folder DIR, the regular files whose names match "*KIND*.bin" (KIND "train"
 * or "val"), in lexicographic (strcmp) order of their names, so a modded-nanogpt
 * fineweb10B folder (fineweb_train_000001.bin …, fineweb_val_000000.bin) works as is.
 * DIR may also be one shard file, which is then the only file (whatever its name).
 *
 * OWNERSHIP RULE: a Loader owns its paths and its Shards (formats.h); loader_close
 * releases everything. Batches are copied out of the mapped shards, so callers never hold
 * a pointer into a mapping.
 *
 * Errors: functions that can fail take (char *err, size_t errlen) and return 0 or -1; on
 * -1 err holds one line (no newline) that starts with the file (or folder) concerned:
 *     data/train.bin: truncated: header says 1538 tokens, file holds 1000
 * err may be NULL (or errlen 0). A failed loader_next leaves the loader state unchanged.
 * The host must be little-endian. */

typedef struct {
    char *dir;                    /* copies of the arguments of loader_open */
    char *kind;
    int64_t T, vocab;
    int rank, world;
    Shard *files;               /* nfiles, sorted; headers validated, mapped on use */
    int nfiles;
    int64_t ntokens;              /* sum of N over the files */
    /* state: the current file and position (S-7.2); batches served since open/reset */
    int64_t file, pos, batches;
    /* private */
    int64_t mapped_;              /* the one file kept mapped, or -1 */
} Loader;

/* Finds the "*KIND*.bin" files of dir (or takes dir itself when it is a file), validates
 * every header and size up front (ids are checked when a file is first used), and sets
 * the state to the start of the first file. T >= 1, 0 <= rank < world, vocab >= 1.
 * Errors: "no *train*.bin files in DIR", an unreadable folder or file, a bad header, a
 * truncated file. *d is zeroed first; on failure it is left closed. */
int loader_open(Loader *d, const char *dir, const char *kind, int64_t T, int rank, int world,
                 int64_t vocab, char *err, size_t errlen);

/* The next batch of this rank: inputs[0..T) and targets[0..T) (targets = inputs shifted by
 * one). Errors: the files run out ("the training shards hold too few tokens: batch K
 * needs …"), an id >= vocab in a file used for the first time. */
int loader_next(Loader *d, int32_t *inputs, int32_t *targets, char *err, size_t errlen);

/* Back to the start of the first file (every validation starts there). */
void loader_reset(Loader *d);

/* The loader state as two int64 values, for checkpoints: state[0] = file index, state[1]
 * = position in that file. loader_set_state restores it (for the same files, T and W);
 * a state that cannot come from these files (index out of range, position past the file's
 * end or not a multiple of G) is an error and leaves the loader as it was. */
void loader_get_state(const Loader *d, int64_t state[2]);
int loader_set_state(Loader *d, const int64_t state[2], char *err, size_t errlen);
/* A state saved with another batch (T or world size): its position rounded up to this
 * loader's next batch boundary, or the next file's start when that is past the file's last
 * batch. A state these files, T and W could have made is left as it is. */
void loader_align_state(const Loader *d, int64_t state[2]);

/* How many batches the files serve in all, from the start. */
int64_t loader_nbatches(const Loader *d);

/* Unmaps and frees everything; d is zeroed. NULL and a closed loader are allowed. */
void loader_close(Loader *d);

/* ==== Logs (runlog.c) ====
 * A run's logs: RUN_DIR/log.txt in the modded-nanogpt format
 *   step:125/5960 val_loss:4.324540 train_time:28089ms step_avg:224.72ms
 *   step:125/5960 x00_lambdas:[1.0, 0.5, …]
 *   step:126/5960 train_time:28313ms step_avg:224.71ms
 * and RUN_DIR/log.jsonl, one JSON object per line for each training step and validation
 * (a non-finite number is written null, so every line stays JSON):
 *   {"step": 0, "train_loss": 5.3, "schedules": {"lr": 0.05, "ramp": 0.25}, "train_time_ms": 120.5}
 *   {"step": 0, "val_loss": 5.3, "train_time_ms": 0.0, "schedules": {…}, "NAME": […], …}
 * (a "NAME": […] for each log declaration)
 * Every write is checked: a record that cannot be written entirely (a full disk) is an
 * error "RUN_DIR/log.txt: cannot write: No space left on device".
 * Ownership: RunLog owns its two FILEs and their paths; records are borrowed for the call. */

typedef struct {
    FILE *txt, *jsonl;
    char *txt_path, *jsonl_path;
} RunLog;

/* Every schedule of the model at a record's step: log.jsonl's "schedules" object. */
typedef struct {
    const ScheduleDecl *decls;  /* names, in declaration order */
    double *values;
    int n;
} LogSchedules;

typedef struct {
    int64_t step, steps;      /* the step just taken (0-based) and the run's length */
    double loss, train_ms;
    LogSchedules schedules;
} TrainRecord;

typedef struct {
    int64_t step, steps;
    double val_loss, train_ms;
    LogSchedules schedules;
    int nvectors;             /* the model's log declarations */
    const char *const *names;
    double *const *vectors;
    const int *counts;
} ValRecord;

/* Python's repr of a double: the shortest decimal that reads back exactly ("0.1", "1.0",
 * "1e-05"), as the reference logs print lambdas. */
void float_repr(double v, char *buf, size_t len);

/* Opens DIR/log.txt and DIR/log.jsonl: new files when the sizes are -1, else appends after
 * cutting them to the given sizes (a resumed run drops what followed its checkpoint; the
 * caller has checked that the files are that long). */
int runlog_open(RunLog *l, const char *dir, int64_t txt_size, int64_t jsonl_size, char *err, size_t errlen);
/* Closes both files (a closed RunLog is fine); -1 when what was buffered could not be written. */
int runlog_close(RunLog *l, char *err, size_t errlen);
/* The bytes written so far, everything flushed. */
int runlog_sizes(RunLog *l, int64_t *txt, int64_t *jsonl, char *err, size_t errlen);
int runlog_train(RunLog *l, const TrainRecord *r, char *err, size_t errlen);
int runlog_val(RunLog *l, const ValRecord *r, char *err, size_t errlen);

/* ==== The run folder (runfolder.c) ====
 * A run folder holds one run: log.txt, log.jsonl, checkpoint.safetensors (written by
 * rank 0), and train.lock, which the trainer writing the folder holds an advisory lock
 * (flock) on, its PID inside. Checkpoints record how the run was made: the model's text
 * (a hash, and its path), the resolved config and pinned schedules (metadata
 * gptc.model_hash, gptc.model, gptc.config) and the micro-batches and ranks (run.grad_accum, run.ranks), so a resumed
 * run continues the same run or says what differs. W ranks × G micro-batches read the data
 * as W·G ranks, so only a change of the product W·G changes a step.
 * Ownership: a RunIdentity owns its strings (runfolder_identity_free). */

typedef struct {
    char model_hash[17];        /* FNV-1a 64 of the model's source files, hex */
    char *model;                /* the model file as given */
    char *config;               /* "vocab=200 eot=199 dim=8 …", every config entry, resolved,
                                 * then each pinned schedule as "schedule:NAME=VALUE" */
    int64_t grad_accum, ranks;
} RunIdentity;

void runfolder_identity(const FeCompile *c, int grad_accum, int ranks, RunIdentity *id);
void runfolder_identity_free(RunIdentity *id);

/* Creates dir if needed and locks it: *fd holds the lock until runfolder_unlock. Another
 * holder is an error naming its PID. */
int runfolder_lock(const char *dir, int *fd, char *err, size_t errlen);
void runfolder_unlock(int fd);
/* Removes dir/checkpoint.safetensors.tmp.PID files whose writer is gone (killed while it
 * wrote), saying so on note. Call it holding the lock. */
void runfolder_remove_stale(const char *dir, FILE *note);
/* A fresh run's folder (it may not exist yet): one that holds a run (a checkpoint, or a
 * log that is not empty) is an error saying what is there, unless overwrite. */
int runfolder_check_fresh(const char *dir, bool overwrite, char *err, size_t errlen);
/* Removes dir's checkpoint, if any, for a run that replaces the one there (its logs are
 * then rewritten from their start). Call it holding the lock. */
int runfolder_clear(const char *dir, char *err, size_t errlen);
/* What --resume continues: dir's checkpoint must be a training checkpoint; TRAIN_FINISHED
 * (err says so) when it holds the finished run; the model, config and micro-batches a step
 * (ranks × micro-batches) it records must be now's unless allow_change (a checkpoint that
 * does not record them passes); the run must not be past `steps`; with check_logs, both
 * logs must hold at least the bytes the checkpoint recorded (never padded). 0 to resume,
 * -1 with err otherwise. */
int runfolder_check_resume(const char *dir, const RunIdentity *now, bool allow_change, int64_t steps, bool check_logs,
                           char *err, size_t errlen);

/* ==== The training loop (run.c) ====
 * `gptc train`: the training loop of spec S-8.1 with validation, logs, checkpoints,
 * resume, gradient accumulation and data parallelism (collectives: runtime.h).
 * Ownership: train_run borrows both compilations; everything else is its own. */

enum { TRAIN_MAX_ACCUM = 64, TRAIN_INTERRUPTED = 2, TRAIN_FINISHED = 3 };

typedef struct {
    const char *data_dir, *out_dir;
    const char *init_path;      /* parameters to start from (fresh optimizer), or NULL */
    const char *resume_dir;     /* run folder whose checkpoint to continue, or NULL */
    uint64_t seed;              /* initialization seed when neither is given */
    int grad_accum;             /* micro-batches per step, 1..TRAIN_MAX_ACCUM */
    int checkpoint_every;       /* steps between checkpoints besides validations; 0 = only those */
    RtPrec prec;
    RtBackend backend;
    bool verbose;               /* validation lines on stderr */
    bool overwrite;             /* a fresh run may replace the run out_dir holds */
    bool allow_change;          /* resume although the model, config or micro-batches a step differ */
} TrainOptions;

typedef struct {
    FeCompile *c, *eval_c;      /* training graph (T = seq_len), evaluation (T = val_seq_len) */
    TrainOptions opt;
    Trainer t;
    RtExec *eval_r;
    IrNode *eval_tokens, *eval_targets;
    Loader train[TRAIN_MAX_ACCUM], val[TRAIN_MAX_ACCUM];
    int accum;
    int64_t T, T_val, steps, val_every, val_batches, first_step;
    int32_t *train_tokens, *train_targets;   /* one batch of T, reused */
    int32_t *val_tokens, *val_targets;       /* one batch of T_val */
    double **acc;               /* gradient accumulator */
    double train_ms;
    RunLog log;
    bool tty, progress_shown;
    int lock_fd;                /* rank 0: the run folder's lock (runfolder.c), else -1 */
    int64_t ckpt_step;          /* the step the folder's checkpoint holds; -1: none */
    RunIdentity id;             /* what the checkpoints record of how the run was made */
} TrainRun;

/* Trains; 0 at the end of training, TRAIN_INTERRUPTED after SIGINT (checkpoint written,
 * message in err), TRAIN_FINISHED when --resume finds the run finished (nothing trained,
 * message in err), -1 with a message on an error (a non-finite loss, a write that failed).
 * An error after the first checkpoint says which step the checkpoint kept holds. */
int train_run(FeCompile *c, FeCompile *eval_c, const TrainOptions *opt, char *err, size_t errlen);

#endif
