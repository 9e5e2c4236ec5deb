/* elab.h — internal interface of the elaborator: elab.c, source.c, config.c, decl.c,
 * expr.c, builtins.c, sched.c, scope.c, value.c and override.c (not part of the front end's public
 * face). */
#ifndef GPTC_ELAB_H
#define GPTC_ELAB_H

#include "frontend/frontend.h"
#include "parser.h"     /* token codes of operators (T_EQ, T_POW …) */

/* Limits that keep hostile or mistaken model files from exhausting the machine. */
enum {
    MAX_INLINE_DEPTH = 64,        /* nested fn calls */
    MAX_ITERATIONS = 1 << 20,     /* total compile-time loop iterations */
    MAX_LIST = 1 << 20,           /* elements of a compile-time list */
    MAX_NODES = 1 << 20,          /* graph nodes */
    MAX_PARAMS = 10000,           /* parameter tensors */
    MAX_EVAL_DEPTH = 2000,        /* nested expressions (C stack) */
};
#define MAX_NUMEL ((int64_t)1 << 40)

typedef struct Binding {
    const char *name;
    Value *val;
    Loc loc;
    bool used;
    struct Binding *next;
} Binding;

typedef struct Scope {
    Binding *head;
    struct Scope *parent;
} Scope;

enum { CTX_TOP, CTX_CONFIG, CTX_FN, CTX_MODEL };

typedef struct Elab {
    FeCompile *c;
    Arena *A;
    Diag *D;
    Program *P;
    IrGraph *g;
    Scope *global;
    int context;             /* CTX_* of the statements being executed */
    int depth;               /* fn inlining depth */
    int64_t iterations;      /* compile-time loop iterations so far */
    Value *ret;              /* value of the `return` that ended the current fn/model */
    bool returned;
    bool too_big;            /* a size limit was hit: stop executing */
    int eval_depth;
    const char **include_dirs;
    const char *failed[64];  /* parameters whose declaration failed */
    int nfailed;
    int cap_params, cap_optims, cap_scheds, cap_logs, cap_probes, cap_config;
    IrNode *sched_nodes[64]; /* runtime scalar leaves, one per schedule name */
    const char *sched_names[64];
    int nsched_nodes;
} Elab;

/* value.c */
Value *v_new(Elab *E, ValueKind k);
Value *v_int(Elab *E, int64_t i);
Value *v_float(Elab *E, double f);
Value *v_bool(Elab *E, bool b);
Value *v_string(Elab *E, const char *s);
Value *v_tensor(Elab *E, IrNode *t);
bool v_is_num(const Value *v);
double v_num(const Value *v);
const char *v_kind_name(const Value *v);
const char *v_describe(Elab *E, const Value *v);     /* "int 3", "tensor f32[256, 64]" */
bool v_equal(const Value *a, const Value *b);
Value *v_map_get(const Value *map, const Value *key);
void v_map_put(Elab *E, Value *map, Value *key, Value *val);
bool v_to_int(Elab *E, const Value *v, Loc loc, const char *what, int64_t *out);

/* scope.c */
Scope *scope_new(Elab *E, Scope *parent);
Binding *scope_find(Scope *s, const char *name);
void scope_bind(Elab *E, Scope *s, const char *name, Value *v, Loc loc);
const char *scope_suggest(Scope *s, const char *name);   /* nearest visible name or NULL */
int suggest_limit(const char *name);   /* a name is suggested for `name` below this edit distance */
int edit_distance(const char *a, const char *b);

/* expr.c */
Value *eval(Elab *E, const Node *n, Scope *s);
Value *call_function(Elab *E, const Value *fn, Value **args, const Loc *locs, int nargs, Loc at);
IrNode *as_tensor(Elab *E, Value *v, Loc loc, const char *what);   /* numbers → CONST */
IrNode *sched_node(Elab *E, const char *name);
void graph_at(Elab *E, Loc loc);        /* stamp new graph nodes with this location */
bool eval_cond(Elab *E, const Node *n, Scope *s, bool *out);
Value **iteration_values(Elab *E, int op, const Node *iter, Scope *s, int *count);
bool count_iteration(Elab *E, Loc loc);

/* source.c */
Node *load_flat(Elab *E, Source *src, const Source **stack, int depth);
Source *source_from_text(FeCompile *c, const FeOptions *opt);

/* override.c */
void override_definitions(Elab *E, Node **stmts);
void override_note(Elab *E, const Node *def);
const char *redefinition_hint(Elab *E, const Node *def, const Binding *old, Scope *s);

/* config.c */
void eval_config(Elab *E, Node *stmts, const FeOptions *opt);

/* decl.c */
const char *path_name(Elab *E, const Node *n, Scope *s);
ParamDecl *find_param(Program *P, const char *name);
bool is_family(Program *P, const char *prefix);
Value *resolve_path(Elab *E, const char *name, Loc loc, bool report);
bool eval_type(Elab *E, const Node *n, Scope *s, IrDtype *dt, int *ndim, int64_t *shape);
bool grow(Elab *E, void **arr, int *cap, int n, size_t elem);
void decl_param(Elab *E, const Node *st, Scope *s);
void decl_input(Elab *E, const Node *st, Scope *s);
void decl_optim(Elab *E, const Node *st, Scope *s);
void decl_schedule(Elab *E, const Node *st, Scope *s);
void decl_log(Elab *E, const Node *st, Scope *s);
void stmt_probe(Elab *E, const Node *st, Scope *s);

/* elab.c */
void exec_list(Elab *E, const Node *list, Scope *s);

/* builtins.c */
typedef struct {
    Value **args; Loc *locs; int nargs;
    const char **kw; Value **kwv; Loc *kwloc; int nkw;
    bool *kw_used;
    Loc at;                  /* the call */
    const char *name;
} CallArgs;

typedef Value *(*BuiltinFn)(Elab *E, CallArgs *a);
int builtin_lookup(const char *name);
const char *builtin_name(int i);
Value *builtin_call(Elab *E, int index, CallArgs *a);
IrNode *t_binary(Elab *E, int op, IrNode *a, IrNode *b, Loc loc);   /* broadcasting */
IrNode *t_scale(Elab *E, IrNode *x, double s);
Value *t_index(Elab *E, Value *base, const Node *index, Scope *s);
bool shape_check_numel(Elab *E, int ndim, const int64_t *shape, Loc loc);
/* argument helpers of the builtins: each reports a located error and returns NULL/false */
const char *shape_of(Elab *E, const IrNode *t);                /* "f32[4, 8]" */
Value *kwarg(CallArgs *a, const char *name);                   /* NULL if absent; marks it used */
Loc kwloc(CallArgs *a, const char *name);
IrNode *tensor_arg(Elab *E, CallArgs *a, int i, int ndim_min); /* a float tensor */
bool num_arg(Elab *E, Value *v, Loc loc, const char *what, double *out);
IrNode *bcast_to(Elab *E, IrNode *x, int ndim, const int64_t *shape);
IrNode *t_add_const(Elab *E, IrNode *x, double s);

/* builtins_nn.c: reductions over axes, softmax, layer_norm, constant tensors, where, shift,
 * cumsum */
Value *bi_reduce(Elab *E, CallArgs *a);        /* sum/mean/max/min(x, axis) of a tensor */
Value *bi_softmax(Elab *E, CallArgs *a);       /* softmax and log_softmax */
Value *bi_layer_norm(Elab *E, CallArgs *a);
Value *bi_filled(Elab *E, CallArgs *a);        /* zeros, ones, full */
Value *bi_iota(Elab *E, CallArgs *a);
Value *bi_eye(Elab *E, CallArgs *a);
Value *bi_where(Elab *E, CallArgs *a);
Value *bi_shift(Elab *E, CallArgs *a);
Value *bi_cumsum(Elab *E, CallArgs *a);

/* sched.c: numbers of the step, evaluated at run time without allocating */
bool sched_eval(Elab *E, const Node *n, Scope *s, int64_t step, double *out, bool report);

#endif
