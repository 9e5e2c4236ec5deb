/* runlog.h — a run's logs: RUN_DIR/log.txt in the modded-nanogpt format
 *   step:125/5960 val_loss:4.324540 train_time:28089ms step_avg:224.72ms
 *   step:125/5960 x00_lambdas:[1.0, 0.5, …]
 *   step:126/5960 train_time:28313ms step_avg:224.71ms
 * and RUN_DIR/log.jsonl, one object per training step and per validation.
 * Ownership: RtLog owns its two FILEs; records are borrowed for the call. */
#ifndef GPTC_RUNTIME_RUNLOG_H
#define GPTC_RUNTIME_RUNLOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *txt, *jsonl;
} RtLog;

typedef struct {
    int64_t step, steps;      /* the step just taken (0-based) and the run's length */
    double loss, lr, train_ms;
    int64_t window[2];
} RtTrainRecord;

typedef struct {
    int64_t step, steps;
    double val_loss, train_ms;
    int64_t window[2];
    int nvectors;             /* the model's log declarations */
    const char *const *names;
    double *const *vectors;
    const int *counts;
} RtValRecord;

/* Python's repr of a double: the shortest decimal that reads back exactly ("0.1", "1.0",
 * "1e-05"), as the reference logs print lambdas. */
void rt_float_repr(double v, char *buf, size_t len);

/* Opens DIR/log.txt and DIR/log.jsonl: new files when the sizes are -1, else appends after
 * cutting them to the given sizes (a resumed run drops what followed its checkpoint). */
int rt_log_open(RtLog *l, const char *dir, int64_t txt_size, int64_t jsonl_size, char *err, size_t errlen);
void rt_log_close(RtLog *l);
void rt_log_sizes(RtLog *l, int64_t *txt, int64_t *jsonl);
void rt_log_train(RtLog *l, const RtTrainRecord *r);
void rt_log_val(RtLog *l, const RtValRecord *r);

#endif
