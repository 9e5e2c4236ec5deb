/* cli.h — shared by the command-line files: model options and usage errors.
 * Exit status: 0 success, 1 errors in the model or its data, 2 bad usage. */
#ifndef GPTC_CLI_H
#define GPTC_CLI_H

#include <stdbool.h>

#include "base/base.h"
#include "frontend/frontend.h"
#include "runtime/runtime.h"

typedef struct {
    const char *model;
    const char *preset;
    ConfigOverride sets[64];
    int nsets;
    const char *include_dirs[9];
    int ninclude;
} ModelArgs;

/* The values of a repeatable option, in order. */
typedef struct {
    const char *v[16];
    int n;
} CliList;

/* A command's own option: --name VALUE stores VALUE in *dst; with flag set instead,
 * --name takes no value and sets *flag; with list set, --name VALUE may be repeated and
 * appends VALUE to *list. */
typedef struct {
    const char *name;
    const char **dst;
    bool *flag;
    CliList *list;
} CliOpt;
#define CLI_OPT(name, dst) {(name), (dst), NULL, NULL}
#define CLI_FLAG(name, flag) {(name), NULL, (flag), NULL}
#define CLI_LIST(name, list) {(name), NULL, NULL, (list)}

extern const char model_options[];

/* "gptc CMD: <message>" and a pointer to --help on stderr; returns 2 (bad usage). */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "gptc CMD: ERR" on stderr; when ERR says memory ran out (it then states the memory plan),
 * a hint line follows. */
void cli_error(const char *cmd, const char *err);
/* Parses MODEL, --preset, --set, -I and the command's own options. Returns -1 to go on,
 * else the exit status (0 after --help). */
int parse_model_args(const char *cmd, int argc, char **argv, ModelArgs *m, const char *usage,
                     const CliOpt *extra, int nextra);
void free_model_args(ModelArgs *m);
/* NAME=VALUE with an integer or float VALUE → *o (o->name is allocated); false if malformed. */
bool cli_parse_set(const char *s, ConfigOverride *o);
int compile_model(FeCompile *c, const ModelArgs *m);

/* ---- schedule.c: --schedule NAME=VALUE[,NAME=VALUE…] ---- */

/* Pins every schedule that l's values name in c (fe_pin_schedule). 0, or a usage error's
 * exit status (2) when a NAME is not a schedule of the model (the message lists them) or a
 * VALUE is not a finite number. */
int cli_pin_schedules(const char *cmd, FeCompile *c, const CliList *l);
/* "NAME=VALUE NAME=VALUE …" of c's schedules at `step` (%g), in declaration order; with
 * graph_only, only those the forward graph reads. "" when there are none. */
void cli_schedules_text(FeCompile *c, int64_t step, bool graph_only, char *buf, size_t len);
#define CLI_SCHEDULE_HELP \
    "  --schedule NAME=VALUE[,…]  pin the model's schedule NAME to VALUE at every step, wherever\n" \
    "                       it is read (graph, other schedules, optimizers); repeatable\n"
/* --backend and --dtype of cmd → *b, *prec; -1, or a usage error's exit status (2).
 * Defaults: f32 on the cpu backend; --dtype f64 alone selects ref (cpu is f32 only). */
int cli_parse_exec(const char *cmd, const char *backend, const char *dtype, RtBackend *b, RtPrec *prec);
/* the help lines of --backend and --dtype */
#define CLI_EXEC_HELP \
    "  --backend cpu|ref|cuda  cpu: fused generated C kernels (default); ref: the op-by-op oracle;\n" \
    "                       cuda: fused generated CUDA kernels and cuBLASLt on an NVIDIA GPU\n" \
    "  --dtype f32|f64|bf16 precision (default f32, bf16 on cuda; f64 runs on ref): bf16 stores\n" \
    "                       weights and activations in bf16, master weights, optimizer state and\n" \
    "                       statistics in float32, and multiplies on Tensor Cores (cuda only)\n"

int cmd_check(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_ir(int argc, char **argv);
int cmd_grad(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_step(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_report(int argc, char **argv);

extern const char check_usage[], summary_usage[], ir_usage[], grad_usage[], compare_usage[], init_usage[], step_usage[], train_usage[], data_usage[], bench_usage[],
    compile_usage[], sweep_usage[], report_usage[];

#endif
