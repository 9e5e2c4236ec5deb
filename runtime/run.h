/* run.h — `gptc train`: the training loop of spec S-8.1 with validation, logs, checkpoints,
 * resume, gradient accumulation and data parallelism (runtime/dist.h).
 * Ownership: rt_run_train borrows both compilations; everything else is its own. */
#ifndef GPTC_RUNTIME_RUN_H
#define GPTC_RUNTIME_RUN_H

#include <stdbool.h>

#include "runtime/data.h"
#include "runtime/runlog.h"
#include "runtime/trainer.h"

enum { RT_MAX_ACCUM = 64, RT_RUN_INTERRUPTED = 2 };

typedef struct {
    const char *data_dir, *out_dir;
    const char *init_path;      /* parameters to start from (fresh optimizer), or NULL */
    const char *resume_dir;     /* run folder whose checkpoint to continue, or NULL */
    uint64_t seed;              /* initialization seed when neither is given */
    int grad_accum;             /* micro-batches per step, 1..RT_MAX_ACCUM */
    int checkpoint_every;       /* steps between checkpoints besides validations; 0 = only those */
    RtPrec prec;
    RtBackend backend;
    bool verbose;               /* validation lines on stderr */
} RtRunOptions;

typedef struct {
    FeCompile *c, *eval_c;      /* training graph (T = seq_len), evaluation (T = val_seq_len) */
    RtRunOptions opt;
    RtTrainer t;
    RtExec *eval_r;
    IrNode *eval_tokens, *eval_targets;
    RtData train[RT_MAX_ACCUM], val[RT_MAX_ACCUM];
    int accum;
    int64_t T, T_val, steps, val_every, val_batches, first_step;
    int32_t *tin, *ttg, *vin, *vtg;
    double **acc;               /* gradient accumulator */
    double train_ms;
    RtLog log;
    bool tty, progress_shown;
} RtRun;

/* Trains; 0 at the end of training, RT_RUN_INTERRUPTED after SIGINT (checkpoint written,
 * message in err), -1 with a message on an error (a non-finite loss included). */
int rt_run_train(FeCompile *c, FeCompile *eval_c, const RtRunOptions *opt, char *err, size_t errlen);

#endif
