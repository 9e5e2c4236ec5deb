/* frontend.h — gptc's front end: model file → checked, elaborated program.
 *
 * Pipeline inside this folder:
 *   lexer.l   characters → tokens (Go-style automatic ';' at line ends)
 *   parser.y  tokens → AST (pure bison parser, error recovery at ';')
 *   ast.c     the arena, AST nodes
 *   diag.c    the one reporter: "file:line:col: error: msg", source line, caret
 *   source.c  model files and includes
 *   override.c definitions of included files replaced (override let, schedule, fn)
 *   config.c  config entries, set, presets, --set
 *   value.c   compile-time values (numbers, lists, maps, tensors, schedules…)
 *   scope.c   scopes of names, suggestions for misspelt names
 *   expr.c    compile-time evaluation of expressions; tensor values are graph nodes
 *   decl.c    declarations: params, inputs, optimizer groups, schedules, logs, probes
 *   elab.c    statements, the model body, the phases of fe_compile
 *   builtins.c the tensor builtins (rms_norm, rotary, attention…) and their shape rules
 *   sched.c   schedules: numeric expressions of the step, evaluated at run time
 *
 * Ownership: everything a compilation allocates (AST, strings, values, program tables)
 * lives in the Arena of its FeCompile; fe_free() releases it and the forward graph.
 * Library code never exits; model-file errors are counted in Diag and reported with
 * their location. */
#ifndef GPTC_FRONTEND_H
#define GPTC_FRONTEND_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ir/ir.h"

/* ---- arena (ast.c) -------------------------------------------------------------- */
typedef struct ArenaBlock ArenaBlock;
typedef struct {
    ArenaBlock *head;
} Arena;
void *arena_alloc(Arena *a, size_t n);          /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_free(Arena *a);

/* ---- diagnostics (diag.c) --------------------------------------------------------- */
typedef struct Source {
    const char *name;      /* path as given (used in messages) */
    const char *real;      /* canonical path, NULL if unknown (identity of includes) */
    const char *text;      /* whole file, NUL-terminated */
    size_t len;
    int index;             /* in FeCompile.sources */
    uint64_t includes;     /* bit i: this file includes sources[i], directly or through others */
} Source;

typedef struct {
    const Source *src;     /* NULL: no location (command line) */
    int line, col;         /* 1-based */
} Loc;

enum { DIAG_SEEN = 256 };
typedef struct {
    FILE *out;             /* where messages go (stderr) */
    int nerrors, nwarnings;
    int max_errors;        /* stop reporting after this many (0 = 50) */
    uint64_t seen[DIAG_SEEN];   /* hashes of reported errors, to drop exact repeats */
    int nseen;
} Diag;

void diag_error(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_vreport(Diag *d, Loc loc, const char *kind, const char *fmt, va_list ap);

/* ---- AST (ast.c) ------------------------------------------------------------------ */
/* A node's children are the fields of one member of its union, named at the start of the
 * kind's line below: "binary: lhs op rhs" means n->binary.lhs and n->binary.rhs. NAME is
 * n->name; a member's ident, where it has one, is NAME's node (kept for its location).
 * Lists of nodes are linked through next. */
typedef enum {
    /* expressions */
    N_INT, N_FLOAT, N_STRING, N_BOOL, N_NAME,   /* leaves: ival, fval or name */
    N_MEMBER,       /* member: base.NAME */
    N_INDEX,        /* index: base[args]; args are expressions or N_SLICE */
    N_SLICE,        /* slice: lo:hi inside an index; lo, hi may be NULL */
    N_CALL,         /* call: callee(args); args are expressions or N_KWARG */
    N_KWARG,        /* kwarg: NAME = value */
    N_UNARY,        /* unary: op operand */
    N_BINARY,       /* binary: lhs op rhs */
    N_COND,         /* branch: if cond then then else els */
    N_LIST,         /* list: [items] */
    N_MAP,          /* list: {items}; items are N_PAIR */
    N_PAIR,         /* pair: key: value */
    N_COMP,         /* comp: [elem for NAME < iter if filter] / [elem for NAME in iter if filter];
                       op = '<' or T_IN; filter may be NULL */
    N_GENCALL,      /* call: callee(comp), comp an N_COMP (args NULL) */
    /* statements */
    N_INCLUDE,      /* include "NAME" */
    N_CONFIG,       /* block: config { body } */
    N_PRESET,       /* block: preset NAME { body }; ident is NAME's node */
    N_SET,          /* def: set NAME = value */
    N_LET,          /* def: let NAME = value; replaced: the definition an override took the
                       place of (override.c), else NULL — also for N_SCHEDULE */
    N_PARAM,        /* param: param path : type  init init, overrides  opt opt; overrides are
                       N_PAIR [key] = value (slice key's initializer); init, opt may be NULL */
    N_INPUT,        /* input: input NAME : type */
    N_OPTIM,        /* def: optim NAME = value */
    N_SCHEDULE,     /* def: schedule NAME = value */
    N_LOG,          /* def: log NAME = value; NAME may be a string with {name} interpolations */
    N_PROBE,        /* probe: probe path = value */
    N_FN,           /* fn: fn NAME(params) { body } / fn NAME(params) = expr; params are N_NAME */
    N_OVERRIDE,     /* over: override def; def an N_LET, N_SCHEDULE or N_FN of NAME */
    N_MODEL,        /* block: model { body } */
    N_FOR,          /* loop: for NAME < iter { body } / for NAME in iter { body }; op = '<' or T_IN */
    N_IF,           /* branch: if cond { then } else { els }; els is NULL, a block or one N_IF */
    N_ASSIGN,       /* assign: target = value */
    N_RETURN,       /* ret: return value */
} NodeKind;

typedef struct Node Node;
struct Node {
    NodeKind kind;
    Loc loc;
    int op;                 /* operator token (N_UNARY, N_BINARY, N_FOR, N_COMP) */
    const char *name;       /* identifier / string text */
    int64_t ival;
    double fval;
    union {                 /* the children, by kind (see NodeKind) */
        struct { Node *base; } member;
        struct { Node *base, *args; } index;
        struct { Node *lo, *hi; } slice;
        struct { Node *callee, *args, *comp; } call;
        struct { Node *value; } kwarg;
        struct { Node *operand; } unary;
        struct { Node *lhs, *rhs; } binary;
        struct { Node *cond, *then, *els; } branch;
        struct { Node *items; } list;
        struct { Node *key, *value; } pair;
        struct { Node *elem, *iter, *filter; } comp;
        struct { Node *ident, *body; } block;
        struct { Node *ident, *value, *replaced; } def;
        struct { Node *path, *type, *init, *overrides, *opt; } param;
        struct { Node *ident, *type; } input;
        struct { Node *path, *value; } probe;
        struct { Node *ident, *params, *body, *expr; } fn;
        struct { Node *def; } over;
        struct { Node *ident, *iter, *body; } loop;
        struct { Node *target, *value; } assign;
        struct { Node *value; } ret;
    };
    Node *next;
};

Node *ast_new(Arena *a, NodeKind kind, Loc loc);
const char *ast_kind_name(NodeKind k);
int ast_count(const Node *list);

/* ---- parsing (parser.y, lexer.l) ---------------------------------------------------- */
typedef struct {
    Arena *arena;
    Diag *diag;
    const Source *src;
    Node *result;           /* the statement list of the file */
    void *scanner;
    /* lexer state for automatic semicolons and bracket matching */
    int last_token, prev_token;
    size_t offset;          /* bytes of the source consumed so far */
    int lex_error_line;     /* a lexical error on this line: no parse errors on it */
    Loc last_loc;           /* where the last token started */
    Loc prev_end;           /* the token before the one being reported */
    int depth;              /* open ( and [ */
    Loc paren_stack[64];
    char paren_char[64];
    Loc brace_stack[64];
    int nbraces;
    bool eof_done;
} ParseCtx;

/* Parse one source; statements are returned (NULL on empty file). Errors go to diag. */
Node *fe_parse_source(Arena *arena, Diag *diag, const Source *src);

/* ---- compile-time values (value.c) --------------------------------------------------- */
typedef struct Value Value;
typedef enum {
    V_NONE, V_INT, V_FLOAT, V_BOOL, V_STRING, V_LIST, V_MAP,
    V_TENSOR,      /* a node of the forward graph */
    V_SCHED,       /* a runtime scalar: an expression of the step (schedule) */
    V_FAMILY,      /* a prefix of parameter names (embed, blocks[3].attn …) */
    V_FUNC,        /* a user function (inlined at each call) */
    V_BUILTIN,     /* a builtin function */
    V_OPTIM,       /* an optimizer group */
} ValueKind;

struct Value {
    ValueKind kind;
    int64_t i;           /* V_INT, V_BOOL; V_BUILTIN index */
    double f;            /* V_FLOAT */
    const char *s;       /* V_STRING; V_FAMILY prefix ("blocks.3.attn") */
    Value **items;       /* V_LIST items; V_MAP key, value pairs: items[2i], items[2i+1] */
    int n;
    IrNode *t;           /* V_TENSOR */
    const Node *fn;      /* V_FUNC */
    const Node *sched;   /* V_SCHED: the schedule's expression */
    struct Scope *scope; /* V_SCHED / V_FUNC: where its names resolve */
    int optim;           /* V_OPTIM: index into Program.optims */
};

/* ---- the elaborated program (elab.c) ------------------------------------------------- */
typedef struct {
    const char *name;
    double value;
    bool is_int;
    Loc loc;
} ConfigEntry;

typedef enum { INIT_ZEROS, INIT_CONSTANT, INIT_NORMAL, INIT_UNIFORM } InitKind;

typedef struct {
    InitKind kind;
    double a, b;          /* normal: mean, std; uniform: lo, hi */
    double *values;       /* constant: values broadcast over the trailing axes */
    int nvalues;
    int slice;            /* -1: whole tensor; otherwise index along axis 0 */
} InitSpec;

typedef enum { OPT_ADAM, OPT_MUON } OptKind;

typedef struct {
    const char *key;      /* lr, beta1, beta2, eps, momentum, wd, … */
    const Node *expr;     /* evaluated at run time for each step (may use schedules) */
    struct Scope *scope;
} OptArg;

typedef struct {
    const char *name;
    OptKind kind;
    OptArg args[12];
    int nargs;
    double ns_coeffs[8][3];   /* muon: Newton-Schulz coefficient triples */
    int n_ns;
    double ns_eps;
    Loc loc;
} OptimGroup;

typedef struct {
    const char *name;     /* checkpoint name: "blocks.3.attn.qkvo" */
    IrDtype dtype;
    int ndim;
    int64_t shape[IR_MAX_DIMS];
    InitSpec init[4];     /* init[0] is the whole tensor; later ones overwrite slices */
    int ninit;
    int optim;            /* index into Program.optims, or FE_FROZEN (opt none) */
    double wd_mul;
    double lr_mul;
    Loc loc;
    IrNode *node;         /* its node in the forward graph */
    bool used;
} ParamDecl;

typedef struct {
    const char *name;
    const Node *expr;
    struct Scope *scope;
    Loc loc;
    bool pinned;          /* fe_pin_schedule: `pin` at every step, in place of expr */
    double pin;
} ScheduleDecl;

typedef struct {
    const char *name;     /* "x00_lambdas" */
    const char *param;    /* the parameter it reads */
    int64_t offset, stride, count;   /* elements param[offset + i*stride], i < count */
    Loc loc;
} LogDecl;

typedef struct {
    const char *name;     /* "resid.3" */
    IrNode *node;
} ProbeDecl;

typedef struct {
    ConfigEntry *config; int nconfig;
    ParamDecl *params; int nparams;
    OptimGroup *optims; int noptims;
    ScheduleDecl *schedules; int nschedules;
    LogDecl *logs; int nlogs;
    ProbeDecl *probes; int nprobes;
    IrGraph *graph;       /* forward graph with T = seq_len; output 0 = the loss */
    int64_t T;            /* sequence length the graph was built for */
} Program;

/* A command-line override: --set NAME=VALUE. */
typedef struct {
    const char *name;
    double value;
    bool is_int;
} ConfigOverride;

typedef struct {
    const char *path;           /* model file */
    const char *text;           /* if not NULL: the model file's contents (path names it) */
    size_t text_len;
    const char *preset;         /* NULL: none */
    const ConfigOverride *sets; /* --set, applied last */
    int nsets;
    const char *seq_config;     /* config name bound to T ("seq_len" or "val_seq_len") */
    const char **include_dirs;  /* extra folders searched by include (NULL-terminated) */
} FeOptions;

typedef struct {
    Arena arena;
    Diag diag;
    Program prog;
    Source *sources[64];
    int nsources;
    struct Elab *elab;          /* kept for evaluating schedules at run time */
} FeCompile;

/* Parse, check and elaborate a model. Returns 0 when there were no errors (warnings
 * are allowed); messages have been printed to `diag_out`. fe_free() releases all. */
int fe_compile(FeCompile *c, const FeOptions *opt, FILE *diag_out);
void fe_free(FeCompile *c);

/* The checks of a model that gptc check and gptc train make: the trainer feeds only the
 * inputs 'tokens' and 'targets', i32[T]; validation
 * runs `eval`, the model compiled with T = val_seq_len (NULL when it equals seq_len), on
 * the parameters trained with `c`, so no parameter may change with T. Errors are reported
 * to c's diagnostics, at the declarations; returns their count. */
int fe_check_trainable(FeCompile *c, FeCompile *eval);
/* The inputs the trainer feeds from the token stream: a batch's tokens (FE_TOKENS, the input
 * 'tokens') and each one's next token (FE_NEXT_TOKENS, 'targets'); NULL when the model does
 * not declare it. The names live here, so the trainer names no input. */
typedef enum { FE_TOKENS, FE_NEXT_TOKENS } FeStream;
IrNode *fe_stream_input(const Program *p, FeStream s);
const char *fe_stream_name(FeStream s);   /* for messages */
/* Why the trainer cannot take this value of a config entry ("(the number of training
 * steps) must be …"), or NULL when it can or does not read the entry; the config's
 * evaluation reports it where the value is set. */
const char *fe_trainer_entry_error(const char *name, double value);

const ConfigEntry *fe_config(const Program *p, const char *name);
int64_t fe_param_count(const ParamDecl *p);
/* A frozen parameter (`opt none`) has no optimizer: no gradient is computed for it and it
 * keeps its initial or loaded value. */
#define FE_FROZEN (-1)
bool fe_param_trainable(const ParamDecl *p);

/* Evaluate a schedule (or any runtime expression) at `step`, or its pin; NaN if unknown. */
double fe_schedule_value(FeCompile *c, const char *name, int64_t step);
/* Pins schedule `name` to `value` at every step: wherever it is read (the graph's scalar,
 * other schedules, optimizer settings). -1 if the model declares no such schedule. */
int fe_pin_schedule(FeCompile *c, const char *name, double value);
/* The schedule declared as `name`, or NULL; the nearest declared name to a misspelt one,
 * or NULL. */
const ScheduleDecl *fe_schedule(const Program *p, const char *name);
const char *fe_schedule_suggest(const Program *p, const char *name);
double fe_optim_arg(FeCompile *c, const OptimGroup *g, const char *key, int64_t step, double dflt);

/* internal, shared by elab.c and source.c */
Source *fe_load_source(FeCompile *c, const char *path, Loc from);
bool fe_source_loaded(FeCompile *c, const char *path);

#endif
