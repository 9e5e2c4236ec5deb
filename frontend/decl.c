/* decl.c — top-level declarations: parameter names and types, initializers, optimizer
 * groups, inputs, schedules, logs; and probes (statements of fn and model bodies). */
#include "frontend/elab.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- parameter names and types --------------------------------------------------------- */

static const char *path_name_at(Elab *E, const Node *n, Scope *s);

/* NAME, PATH.NAME or PATH[INT] → "blocks.3.attn.qkvo"; NULL after an error. */
const char *path_name(Elab *E, const Node *n, Scope *s) {
    if (E->eval_depth >= MAX_EVAL_DEPTH) {
        diag_error(E->D, n->loc, "name nested more than %d deep", MAX_EVAL_DEPTH);
        return NULL;
    }
    E->eval_depth++;
    const char *r = path_name_at(E, n, s);
    E->eval_depth--;
    return r;
}

static const char *path_name_at(Elab *E, const Node *n, Scope *s) {
    switch (n->kind) {
    case N_NAME: return n->name;
    case N_MEMBER: {
        const char *a = path_name(E, n->member.base, s);
        return a ? arena_printf(E->A, "%s.%s", a, n->name) : NULL;
    }
    case N_INDEX: {
        const char *a = path_name(E, n->index.base, s);
        if (!a) return NULL;
        const Node *k = n->index.args;
        if (ast_count(k) != 1 || k->kind == N_SLICE) {
            diag_error(E->D, n->loc, "a name path takes one integer index, as in blocks[i]");
            return NULL;
        }
        int64_t i;
        if (!v_to_int(E, eval(E, k, s), k->loc, "the index", &i)) return NULL;
        if (i < 0) {
            diag_error(E->D, k->loc, "a name path index must not be negative, got %lld", (long long)i);
            return NULL;
        }
        return arena_printf(E->A, "%s.%lld", a, (long long)i);
    }
    default:
        diag_error(E->D, n->loc, "expected a name such as lm_head, embed[k] or blocks[i].mlp.fc");
        return NULL;
    }
}

ParamDecl *find_param(Program *P, const char *name) {
    for (int i = 0; i < P->nparams; i++)
        if (strcmp(P->params[i].name, name) == 0) return &P->params[i];
    return NULL;
}

bool is_family(Program *P, const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < P->nparams; i++)
        if (strncmp(P->params[i].name, prefix, n) == 0 && P->params[i].name[n] == '.') return true;
    return false;
}

/* Resolve a (partial) parameter path to its tensor or family value. */
Value *resolve_path(Elab *E, const char *name, Loc loc, bool report) {
    ParamDecl *p = find_param(E->P, name);
    if (p) {
        if (E->context == CTX_MODEL || E->context == CTX_FN) p->used = true;
        return v_tensor(E, p->node);
    }
    if (is_family(E->P, name)) {
        Value *v = v_new(E, V_FAMILY);
        v->s = name;
        return v;
    }
    if (report) diag_error(E->D, loc, "no parameter '%s'", name);
    return NULL;
}

static bool dtype_by_name(const char *s, IrDtype *out) {
    static const struct { const char *name; IrDtype t; } tab[] = {
        {"f32", IR_F32}, {"f64", IR_F64}, {"bf16", IR_BF16}, {"i32", IR_I32}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].name) == 0) { *out = tab[i].t; return true; }
    return false;
}

/* DTYPE[D0, D1, …] → dtype and shape; every dim a positive integer. */
bool eval_type(Elab *E, const Node *n, Scope *s, IrDtype *dt, int *ndim, int64_t *shape) {
    if (n->kind != N_INDEX || n->index.base->kind != N_NAME || !dtype_by_name(n->index.base->name, dt)) {
        diag_error(E->D, n->loc, "expected a tensor type such as f32[dim] or bf16[vocab, dim]");
        return false;
    }
    *ndim = 0;
    for (const Node *d = n->index.args; d; d = d->next) {
        if (*ndim == IR_MAX_DIMS) {
            diag_error(E->D, d->loc, "a tensor has at most %d dimensions", IR_MAX_DIMS);
            return false;
        }
        int64_t v;
        if (d->kind == N_SLICE || !v_to_int(E, eval(E, d, s), d->loc, "a dimension", &v)) {
            if (d->kind == N_SLICE) diag_error(E->D, d->loc, "a dimension must be an integer");
            return false;
        }
        if (v <= 0) {
            diag_error(E->D, d->loc, "a dimension must be positive, got %lld", (long long)v);
            return false;
        }
        shape[(*ndim)++] = v;
    }
    return shape_check_numel(E, *ndim, shape, n->loc);
}


/* ---- declarations -------------------------------------------------------------------------- */

bool grow(Elab *E, void **arr, int *cap, int n, size_t elem) {
    if (n < *cap) return true;
    int nc = *cap ? 2 * *cap : 32;
    void *p = arena_alloc(E->A, elem * (size_t)nc);
    if (n) memcpy(p, *arr, elem * (size_t)n);
    *arr = p;
    *cap = nc;
    return true;
}

/* init normal(mean, std) | uniform(lo, hi) | zeros() | ones() | constant(v) */
static bool eval_init(Elab *E, const Node *call, Scope *s, const ParamDecl *p, int first_axis, InitSpec *out) {
    static const struct { const char *name; InitKind kind; int nargs; } inits[] = {
        {"normal", INIT_NORMAL, 2}, {"uniform", INIT_UNIFORM, 2}, {"zeros", INIT_ZEROS, 0},
        {"ones", INIT_CONSTANT, 0}, {"constant", INIT_CONSTANT, 1}};
    if (call->kind != N_CALL || call->call.callee->kind != N_NAME) {
        diag_error(E->D, call->loc, "expected an initializer: normal(mean, std), uniform(lo, hi), zeros(), ones() or constant(v)");
        return false;
    }
    const Node *callee = call->call.callee;
    int k = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(callee->name, inits[i].name) == 0) k = i;
    if (k < 0) {
        diag_error(E->D, callee->loc, "unknown initializer '%s' (normal, uniform, zeros, ones, constant)", callee->name);
        return false;
    }
    if (ast_count(call->call.args) != inits[k].nargs) {
        diag_error(E->D, call->loc, "%s() takes %d argument%s", inits[k].name, inits[k].nargs, inits[k].nargs == 1 ? "" : "s");
        return false;
    }
    *out = (InitSpec){.kind = inits[k].kind, .slice = -1};
    if (strcmp(inits[k].name, "ones") == 0) {
        out->values = arena_alloc(E->A, sizeof(double));
        out->values[0] = 1;
        out->nvalues = 1;
        return true;
    }
    double nums[2] = {0, 0};
    int i = 0;
    for (const Node *a = call->call.args; a; a = a->next, i++) {
        if (a->kind == N_KWARG) {
            diag_error(E->D, a->loc, "%s() takes positional arguments", inits[k].name);
            return false;
        }
        Value *v = eval(E, a, s);
        if (!v) return false;
        if (out->kind == INIT_CONSTANT) {
            /* a number, or a list of numbers broadcast over the trailing axis */
            int n = v->kind == V_LIST ? v->n : 1;
            int64_t last = p->ndim > first_axis ? p->shape[p->ndim - 1] : 1;
            if (v->kind == V_LIST && n != last) {
                diag_error(E->D, a->loc, "constant() list has %d values, the last axis has %lld", n, (long long)last);
                return false;
            }
            out->values = arena_alloc(E->A, sizeof(double) * (size_t)n);
            out->nvalues = n;
            for (int j = 0; j < n; j++) {
                Value *x = v->kind == V_LIST ? v->items[j] : v;
                if (!v_is_num(x)) {
                    diag_error(E->D, a->loc, "constant() takes a number or a list of numbers");
                    return false;
                }
                out->values[j] = v_num(x);
            }
            return true;
        }
        if (!v_is_num(v)) {
            diag_error(E->D, a->loc, "%s() takes numbers, got %s", inits[k].name, v_describe(E, v));
            return false;
        }
        nums[i] = v_num(v);
    }
    out->a = nums[0];
    out->b = nums[1];
    if (out->kind == INIT_NORMAL && nums[1] < 0) {
        diag_error(E->D, call->call.args->next->loc, "normal() needs a standard deviation ≥ 0");
        return false;
    }
    if (out->kind == INIT_UNIFORM && nums[1] < nums[0]) {
        diag_error(E->D, call->loc, "uniform(lo, hi) needs lo ≤ hi");
        return false;
    }
    return true;
}

static bool param_inits(Elab *E, const Node *st, Scope *s, ParamDecl *p) {
    if (!st->param.init) {
        diag_error(E->D, st->loc, "parameter '%s' has no 'init' clause", p->name);
        return false;
    }
    if (!eval_init(E, st->param.init, s, p, 0, &p->init[0])) return false;
    p->ninit = 1;
    for (const Node *o = st->param.overrides; o; o = o->next) {
        int64_t k;
        if (p->ndim == 0) {
            diag_error(E->D, o->loc, "a scalar parameter has no slices to initialize");
            return false;
        }
        if (!v_to_int(E, eval(E, o->pair.key, s), o->pair.key->loc, "a slice index", &k)) return false;
        if (k < 0 || k >= p->shape[0]) {
            diag_error(E->D, o->pair.key->loc, "slice %lld is out of range: the first axis has %lld", (long long)k,
                       (long long)p->shape[0]);
            return false;
        }
        if (p->ninit == 4) {
            diag_error(E->D, o->loc, "at most 3 slice initializers");
            return false;
        }
        if (!eval_init(E, o->pair.value, s, p, 1, &p->init[p->ninit])) return false;
        p->init[p->ninit++].slice = (int)k;
    }
    return true;
}

static int find_optim(Program *P, const char *name) {
    for (int i = 0; i < P->noptims; i++)
        if (strcmp(P->optims[i].name, name) == 0) return i;
    return -1;
}

static bool optim_has(const OptimGroup *g, const char *key) {
    for (int i = 0; i < g->nargs; i++)
        if (strcmp(g->args[i].key, key) == 0) return true;
    return false;
}

/* opt GROUP | opt GROUP(wd_mul = x, lr_mul = y) */
static bool param_optim(Elab *E, const Node *st, Scope *s, ParamDecl *p) {
    const Node *o = st->param.opt;
    if (!o) {
        diag_error(E->D, st->loc, "parameter '%s' has no 'opt' clause", p->name);
        return false;
    }
    const Node *name = o->kind == N_CALL ? o->call.callee : o;
    if (name->kind != N_NAME) {
        diag_error(E->D, o->loc, "expected an optimizer group, as in 'opt muon' or 'opt muon(wd_mul = 2)'");
        return false;
    }
    p->wd_mul = 1;
    p->lr_mul = 1;
    if (!strcmp(name->name, "none")) {   /* frozen */
        if (o->kind == N_CALL) diag_error(E->D, o->loc, "a frozen parameter (opt none) takes no wd_mul or lr_mul");
        p->optim = FE_FROZEN;
        return o->kind != N_CALL;
    }
    p->optim = find_optim(E->P, name->name);
    if (p->optim < 0) {
        diag_error(E->D, name->loc, "unknown optimizer group '%s' (declare it with 'optim %s = adam(…)' first)",
                   name->name, name->name);
        return false;
    }
    const Node *wd_mul = NULL;
    for (const Node *a = o->kind == N_CALL ? o->call.args : NULL; a; a = a->next) {
        double *dst = a->kind != N_KWARG ? NULL : strcmp(a->name, "wd_mul") == 0 ? &p->wd_mul
                    : strcmp(a->name, "lr_mul") == 0 ? &p->lr_mul : NULL;
        if (!dst) {
            diag_error(E->D, a->loc, "a parameter's optimizer takes wd_mul = … and lr_mul = …");
            return false;
        }
        for (const Node *b = o->call.args; b != a; b = b->next)
            if (strcmp(b->name, a->name) == 0) {
                diag_error(E->D, a->loc, "'%s' is given twice", a->name);
                return false;
            }
        Value *v = eval(E, a->kwarg.value, s);
        if (!v) return false;
        if (!v_is_num(v)) {
            diag_error(E->D, a->kwarg.value->loc, "%s must be a number, got %s", a->name, v_describe(E, v));
            return false;
        }
        *dst = v_num(v);
        if (dst == &p->wd_mul) wd_mul = a;
    }
    if (wd_mul && !optim_has(&E->P->optims[p->optim], "wd"))
        diag_warning(E->D, wd_mul->loc, "wd_mul has no effect: optimizer group '%s' has no weight decay (give it wd = …)",
                     name->name);
    return true;
}

void decl_param(Elab *E, const Node *st, Scope *s) {
    const Node *path = st->param.path, *type = st->param.type;
    const char *name = path_name(E, path, s);
    if (!name) return;
    ParamDecl *old = find_param(E->P, name);
    if (old) {
        diag_error(E->D, path->loc, "parameter '%s' is declared twice", name);
        diag_note(E->D, old->loc, "first declared here");
        return;
    }
    if (is_family(E->P, name)) {
        diag_error(E->D, path->loc, "'%s' already names a family of parameters (%s.…)", name, name);
        return;
    }
    for (int i = 0; i < E->P->nparams; i++) {
        size_t n = strlen(E->P->params[i].name);
        if (strncmp(name, E->P->params[i].name, n) == 0 && name[n] == '.') {
            diag_error(E->D, path->loc, "'%s' would be a member of parameter '%s'", name, E->P->params[i].name);
            return;
        }
    }
    ParamDecl p = {.name = name, .loc = path->loc};
    bool ok = eval_type(E, type, s, &p.dtype, &p.ndim, p.shape);
    if (ok && p.dtype == IR_I32) {
        diag_error(E->D, type->loc, "a parameter must have a float dtype (f32, f64 or bf16)");
        ok = false;
    }
    ok = ok && param_inits(E, st, s, &p);
    ok = ok && param_optim(E, st, s, &p);
    if (!ok) {
        /* uses of it later stay silent: the error above is the one to fix */
        if (E->nfailed < (int)(sizeof E->failed / sizeof E->failed[0])) E->failed[E->nfailed++] = name;
        return;
    }
    graph_at(E, st->loc);
    p.node = ir_leaf(E->g, IR_PARAM, name, p.dtype, p.ndim, p.shape);
    grow(E, (void **)&E->P->params, &E->cap_params, E->P->nparams, sizeof(ParamDecl));
    E->P->params[E->P->nparams++] = p;
}

void decl_input(Elab *E, const Node *st, Scope *s) {
    IrDtype dt;
    int ndim;
    int64_t shape[IR_MAX_DIMS];
    if (scope_find(E->global, st->name)) {
        diag_error(E->D, st->input.ident->loc, "'%s' is already defined", st->name);
        return;
    }
    if (!eval_type(E, st->input.type, s, &dt, &ndim, shape)) return;
    graph_at(E, st->loc);
    IrNode *t = ir_leaf(E->g, IR_INPUT, st->name, dt, ndim, shape);
    scope_bind(E, E->global, st->name, v_tensor(E, t), st->input.ident->loc);
}

static const char *adam_keys[] = {"lr", "beta1", "beta2", "eps", "wd", NULL};
static const char *muon_keys[] = {"lr", "momentum", "wd", "ns_coeffs", "ns_eps", NULL};

static bool muon_coeffs(Elab *E, const Node *arg, Scope *s, OptimGroup *g) {
    Value *v = eval(E, arg->kwarg.value, s);
    if (!v) return false;
    bool ok = v->kind == V_LIST && v->n >= 1 && v->n <= 8;
    for (int i = 0; ok && i < v->n; i++) {
        Value *t = v->items[i];
        ok = t->kind == V_LIST && t->n == 3;
        for (int j = 0; ok && j < 3; j++) {
            ok = v_is_num(t->items[j]);
            if (ok) g->ns_coeffs[i][j] = v_num(t->items[j]);
        }
    }
    if (!ok) {
        diag_error(E->D, arg->kwarg.value->loc, "ns_coeffs is a list of 1 to 8 triples [a, b, c]");
        return false;
    }
    g->n_ns = v->n;
    return true;
}

/* One `key = value` of adam(…)/muon(…); false after reporting an error. */
static bool optim_arg(Elab *E, const Node *call, const Node *a, Scope *s, OptimGroup *g) {
    const char **keys = g->kind == OPT_ADAM ? adam_keys : muon_keys;
    if (a->kind != N_KWARG) {
        diag_error(E->D, a->loc, "%s() takes named arguments, as in lr = 0.3", call->call.callee->name);
        return false;
    }
    bool known = false;
    for (int i = 0; keys[i]; i++) known |= strcmp(keys[i], a->name) == 0;
    if (!known) {
        diag_error(E->D, a->loc, "%s() has no argument '%s'", call->call.callee->name, a->name);
        return false;
    }
    for (const Node *b = call->call.args; b != a; b = b->next)
        if (b->kind == N_KWARG && strcmp(b->name, a->name) == 0) {
            diag_error(E->D, a->loc, "argument '%s' is given twice", a->name);
            return false;
        }
    if (strcmp(a->name, "ns_coeffs") == 0) return muon_coeffs(E, a, s, g);
    double x;
    const Node *value = a->kwarg.value;
    if (!sched_eval(E, value, s, 0, &x, true)) return false;
    if (!isfinite(x)) {
        diag_error(E->D, value->loc, "%s is not a finite number at step 0 (%g)", a->name, x);
        return false;
    }
    if (strcmp(a->name, "ns_eps") == 0) g->ns_eps = x;
    else if (g->nargs < 12) g->args[g->nargs++] = (OptArg){a->name, value, s};
    return true;
}

/* optim NAME = adam(lr = …, beta1 = …, …) | muon(lr = …, momentum = …, …). The group is
 * registered even when its arguments have errors, so that its users stay silent. */
void decl_optim(Elab *E, const Node *st, Scope *s) {
    const Node *call = st->def.value, *callee = call->kind == N_CALL ? call->call.callee : NULL;
    OptimGroup g = {.name = st->name, .loc = st->def.ident->loc, .ns_eps = 1e-7};
    if (find_optim(E->P, st->name) >= 0) {
        diag_error(E->D, st->def.ident->loc, "optimizer group '%s' is declared twice", st->name);
        return;
    }
    if (!strcmp(st->name, "none")) {
        diag_error(E->D, st->def.ident->loc, "'none' is not a group name: 'opt none' marks a frozen parameter");
        return;
    }
    if (!callee || callee->kind != N_NAME || (strcmp(callee->name, "adam") != 0 && strcmp(callee->name, "muon") != 0)) {
        diag_error(E->D, call->loc, "an optimizer group is adam(lr = …, …) or muon(lr = …, …)");
    } else {
        g.kind = strcmp(callee->name, "adam") == 0 ? OPT_ADAM : OPT_MUON;
        bool ok = true;
        for (const Node *a = call->call.args; a; a = a->next) ok &= optim_arg(E, call, a, s, &g);
        bool has_lr = false;
        for (int i = 0; i < g.nargs; i++) has_lr |= strcmp(g.args[i].key, "lr") == 0;
        if (ok && !has_lr) diag_error(E->D, call->loc, "%s() needs lr = …", callee->name);
        if (ok && g.kind == OPT_MUON && g.n_ns == 0) diag_error(E->D, call->loc, "muon() needs ns_coeffs = [[a, b, c], …]");
    }
    grow(E, (void **)&E->P->optims, &E->cap_optims, E->P->noptims, sizeof(OptimGroup));
    E->P->optims[E->P->noptims++] = g;   /* groups have their own namespace, used by 'opt' */
}

void decl_schedule(Elab *E, const Node *st, Scope *s) {
    const Node *expr = st->def.value;
    Loc at = st->def.ident->loc;
    Binding *b = scope_find(E->global, st->name);
    if (b || strcmp(st->name, "step") == 0) {
        diag_error(E->D, at, "'%s' is already defined%s", st->name, b ? redefinition_hint(E, st, b, s) : "");
        if (b && b->loc.src) diag_note(E->D, b->loc, "defined here");
        return;
    }
    double x;
    bool ok = sched_eval(E, expr, s, 0, &x, true);
    if (!ok) override_note(E, st);
    if (ok && !isfinite(x)) {
        diag_error(E->D, expr->loc, "schedule '%s' is not a finite number at step 0 (%g)", st->name, x);
        ok = false;
    }
    if (!ok) {
        scope_bind(E, E->global, st->name, v_new(E, V_NONE), at);   /* later uses stay silent */
        return;
    }
    Value *v = v_new(E, V_SCHED);
    v->sched = expr;
    v->scope = s;
    v->s = st->name;
    scope_bind(E, E->global, st->name, v, at);
    grow(E, (void **)&E->P->schedules, &E->cap_scheds, E->P->nschedules, sizeof(ScheduleDecl));
    E->P->schedules[E->P->nschedules++] = (ScheduleDecl){.name = st->name, .expr = expr, .scope = s, .loc = at};
}

/* "x0{k}_lambdas" with k an integer in scope → "x00_lambdas" */
static const char *interpolate(Elab *E, const Node *name, Scope *s) {
    const char *p = name->name;
    char out[256];
    size_t o = 0;
    while (*p) {
        if (o + 24 >= sizeof out) {
            diag_error(E->D, name->loc, "log name is longer than %zu characters", sizeof out - 24);
            return NULL;
        }
        if (*p != '{') { out[o++] = *p++; continue; }
        const char *end = strchr(p, '}');
        if (!end || end - p > 40) {
            diag_error(E->D, name->loc, "'{' in a log name must enclose a name, as in \"x0{k}_lambdas\"");
            return NULL;
        }
        char *var = arena_strndup(E->A, p + 1, (size_t)(end - p - 1));
        Binding *b = scope_find(s, var);
        if (!b || b->val->kind != V_INT) {
            diag_error(E->D, name->loc, "'{%s}' in a log name must be an integer in scope", var);
            return NULL;
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "%lld", (long long)b->val->i);
        p = end + 1;
    }
    out[o] = 0;
    return arena_strdup(E->A, out);
}

/* log NAME = PARAM | PARAM[i] | PARAM[:, j] …: one row of a parameter, read at logging time. */
void decl_log(Elab *E, const Node *st, Scope *s) {
    const Node *ident = st->def.ident;
    const char *name = ident->kind == N_STRING ? interpolate(E, ident, s) : st->name;
    if (!name) return;
    for (int i = 0; i < E->P->nlogs; i++)
        if (strcmp(E->P->logs[i].name, name) == 0) {
            diag_error(E->D, ident->loc, "log '%s' is declared twice", name);
            return;
        }
    const Node *e = st->def.value, *idx = NULL;
    Value *v;
    if (e->kind == N_INDEX) {
        v = eval(E, e->index.base, s);
        if (!v) return;
        if (v->kind == V_FAMILY) v = eval(E, e, s);   /* g[0] names a member, not an index */
        else {
            idx = e->index.args;
            e = e->index.base;
        }
    } else {
        v = eval(E, e, s);
    }
    if (!v) return;
    if (v->kind != V_TENSOR || v->t->op != IR_PARAM) {
        diag_error(E->D, e->loc, "a log reads a parameter, got %s", v_describe(E, v));
        return;
    }
    const IrNode *t = v->t;
    LogDecl L = {.name = name, .param = t->name, .offset = 0, .stride = 1, .count = ir_numel(t), .loc = ident->loc};
    if (idx) {
        int64_t stride = ir_numel(t), axis = 0, free_axis = -1;
        for (const Node *a = idx; a; a = a->next, axis++) {
            if (axis >= t->ndim) {
                diag_error(E->D, a->loc, "too many indices for %s", v_describe(E, v));
                return;
            }
            stride /= t->shape[axis];
            if (a->kind == N_SLICE && !a->slice.lo && !a->slice.hi) {
                if (free_axis >= 0) {
                    diag_error(E->D, a->loc, "a log takes one ':' axis");
                    return;
                }
                free_axis = axis;
                L.stride = stride;
                L.count = t->shape[axis];
                continue;
            }
            int64_t k;
            if (a->kind == N_SLICE || !v_to_int(E, eval(E, a, s), a->loc, "a log index", &k)) {
                if (a->kind == N_SLICE) diag_error(E->D, a->loc, "a log index is an integer or ':'");
                return;
            }
            if (k < 0 || k >= t->shape[axis]) {
                diag_error(E->D, a->loc, "index %lld is out of range for axis %lld of size %lld", (long long)k,
                           (long long)axis, (long long)t->shape[axis]);
                return;
            }
            L.offset += k * stride;
        }
        if (axis != t->ndim || free_axis < 0) {
            diag_error(E->D, st->def.value->loc, "a log reads a vector: index every axis but one, which is ':'");
            return;
        }
    } else if (t->ndim != 1) {
        diag_error(E->D, st->def.value->loc, "a log reads a vector; index the parameter, as in lambdas[:, 0]");
        return;
    }
    grow(E, (void **)&E->P->logs, &E->cap_logs, E->P->nlogs, sizeof(LogDecl));
    E->P->logs[E->P->nlogs++] = L;
}

void stmt_probe(Elab *E, const Node *st, Scope *s) {
    const char *name = path_name(E, st->probe.path, s);
    Value *v = eval(E, st->probe.value, s);
    if (!name || !v) return;
    if (v->kind != V_TENSOR) {
        diag_error(E->D, st->probe.value->loc, "a probe records a tensor, got %s", v_describe(E, v));
        return;
    }
    for (int i = 0; i < E->P->nprobes; i++)
        if (strcmp(E->P->probes[i].name, name) == 0) {
            diag_error(E->D, st->probe.path->loc, "probe '%s' is recorded twice", name);
            return;
        }
    grow(E, (void **)&E->P->probes, &E->cap_probes, E->P->nprobes, sizeof(ProbeDecl));
    E->P->probes[E->P->nprobes++] = (ProbeDecl){name, v->t};
}
