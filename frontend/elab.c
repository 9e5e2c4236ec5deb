/* elab.c — from parsed files to a checked program: statements (executed at compile time:
 * let, fn, loops, conditions, assignments, returns), the model body, and fe_compile's
 * phases: load + include (source.c) → overrides (override.c) → config (config.c) and T →
 * the top-level statements in order (declarations: decl.c) → the model body → warnings
 * for unused parameters and inputs. Also the queries of a compiled Program (fe_config, fe_schedule_value…).
 * Expressions: expr.c. */
#include "frontend/elab.h"

#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* ---- statements ------------------------------------------------------------------------------ */

static bool only_at_top(Elab *E, const Node *st) {
    if (E->context == CTX_TOP) return true;
    diag_error(E->D, st->loc, "'%s' is only allowed at top level (outside fn and model)", ast_kind_name(st->kind));
    return false;
}

static bool only_in_body(Elab *E, const Node *st) {
    if (E->context == CTX_FN || E->context == CTX_MODEL) return true;
    Loc at = st->kind == N_ASSIGN ? st->assign.target->loc : st->loc;
    diag_error(E->D, at, "%s is only allowed inside fn and model%s", st->kind == N_ASSIGN ? "assignment" :
               st->kind == N_RETURN ? "'return'" : "'probe'",
               st->kind == N_ASSIGN ? "; use 'let NAME = …' for a constant" : "");
    return false;
}

/* Assignment updates the nearest binding of the current fn or model, else binds here. */
static void stmt_assign(Elab *E, const Node *st, Scope *s) {
    Value *v = eval(E, st->assign.value, s);
    const Node *lhs = st->assign.target;
    if (!v && lhs->kind != N_NAME) return;
    if (!v) v = v_new(E, V_NONE);   /* later uses stay silent instead of 'unknown name' */
    if (lhs->kind == N_NAME) {
        for (Scope *sc = s; sc && sc != E->global; sc = sc->parent)
            for (Binding *b = sc->head; b; b = b->next)
                if (strcmp(b->name, lhs->name) == 0) {
                    b->val = v;
                    return;
                }
        scope_bind(E, s, lhs->name, v, lhs->loc);
        return;
    }
    if (lhs->kind == N_INDEX && lhs->index.base->kind == N_NAME && ast_count(lhs->index.args) == 1 &&
        lhs->index.args->kind != N_SLICE) {
        const Node *map = lhs->index.base, *key = lhs->index.args;
        Binding *b = scope_find(s, map->name);
        bool local = false;
        for (Scope *sc = s; sc && sc != E->global; sc = sc->parent)
            for (Binding *x = sc->head; x; x = x->next) local |= x == b;
        if (b && b->val->kind == V_MAP && !local) {
            diag_error(E->D, map->loc, "'%s' is a constant defined outside this fn or model; make a local map", map->name);
            return;
        }
        if (!b || b->val->kind != V_MAP) {
            diag_error(E->D, map->loc, "'%s[…] = …' needs '%s' to be a map, as in %s = {}", map->name, map->name,
                       map->name);
            return;
        }
        Value *k = eval(E, key, s);
        if (k) v_map_put(E, b->val, k, v);
        return;
    }
    diag_error(E->D, lhs->loc, "can only assign to NAME or NAME[KEY]");
}

static void stmt_for(Elab *E, const Node *st, Scope *s) {
    int count;
    Value **vals = iteration_values(E, st->op, st->loop.iter, s, &count);
    for (int i = 0; i < count && !E->returned; i++) {
        if (!count_iteration(E, st->loc)) return;
        Scope *inner = scope_new(E, s);
        scope_bind(E, inner, st->name, vals[i], st->loop.ident->loc);
        exec_list(E, st->loop.body, inner);
    }
}

static void stmt_if(Elab *E, const Node *st, Scope *s) {
    bool c;
    if (!eval_cond(E, st->branch.cond, s, &c)) return;
    const Node *body = c ? st->branch.then : st->branch.els;
    if (body) exec_list(E, body, scope_new(E, s));
}

static void stmt_let(Elab *E, const Node *st, Scope *s) {
    if (!only_at_top(E, st)) return;
    Binding *b = scope_find(s, st->name);
    if (b) {
        diag_error(E->D, st->def.ident->loc, "'%s' is already defined%s%s", st->name,
                   strcmp(st->name, "T") == 0 ? " (T is the sequence length)" : "", redefinition_hint(E, st, b, s));
        if (b->loc.src) diag_note(E->D, b->loc, "defined here");
        return;
    }
    int errors = E->D->nerrors;
    Value *v = eval(E, st->def.value, s);
    if (E->D->nerrors > errors) override_note(E, st);
    if (v && (v->kind == V_TENSOR || v->kind == V_SCHED)) {
        diag_error(E->D, st->def.value->loc, "'let' binds a compile-time value, got %s", v_describe(E, v));
        v = NULL;
    }
    scope_bind(E, s, st->name, v ? v : v_new(E, V_NONE), st->def.ident->loc);
}

static void stmt_fn(Elab *E, const Node *st, Scope *s) {
    if (!only_at_top(E, st)) return;
    Loc at = st->fn.ident->loc;
    Binding *b = scope_find(s, st->name);
    if (b || builtin_lookup(st->name) >= 0) {
        diag_error(E->D, at, "'%s' is already defined%s", st->name, b ? redefinition_hint(E, st, b, s) : " (a builtin)");
        if (b && b->loc.src) diag_note(E->D, b->loc, "first defined here");
        return;
    }
    for (const Node *p = st->fn.params; p; p = p->next)
        for (const Node *q = p->next; q; q = q->next)
            if (strcmp(p->name, q->name) == 0) diag_error(E->D, q->loc, "parameter '%s' appears twice", q->name);
    Value *v = v_new(E, V_FUNC);
    v->fn = st;
    v->scope = s;
    scope_bind(E, s, st->name, v, at);
}

void exec_stmt(Elab *E, const Node *st, Scope *s) {
    switch (st->kind) {
    case N_CONFIG:
    case N_PRESET:
    case N_SET:
    case N_OVERRIDE:   /* put in place of the definition it replaces before anything ran */
        if (E->context != CTX_TOP || s != E->global)
            diag_error(E->D, st->loc, "'%s' is only allowed at the top level of a file", ast_kind_name(st->kind));
        break;
    case N_INCLUDE: diag_error(E->D, st->loc, "'include' is only allowed at the top level of a file"); break;
    case N_LET: stmt_let(E, st, s); break;
    case N_PARAM: if (only_at_top(E, st)) decl_param(E, st, s); break;
    case N_INPUT: if (only_at_top(E, st)) decl_input(E, st, s); break;
    case N_OPTIM: if (only_at_top(E, st)) decl_optim(E, st, s); break;
    case N_SCHEDULE: if (only_at_top(E, st)) decl_schedule(E, st, s); break;
    case N_LOG: if (only_at_top(E, st)) decl_log(E, st, s); break;
    case N_FN: stmt_fn(E, st, s); break;
    case N_MODEL: if (only_at_top(E, st)) diag_error(E->D, st->loc, "'model' must be at the top level of a file"); break;
    case N_PROBE: if (only_in_body(E, st)) stmt_probe(E, st, s); break;
    case N_ASSIGN: if (only_in_body(E, st)) stmt_assign(E, st, s); break;
    case N_RETURN:
        if (!only_in_body(E, st)) break;
        E->ret = eval(E, st->ret.value, s);
        E->returned = true;
        break;
    case N_FOR: stmt_for(E, st, s); break;
    case N_IF: stmt_if(E, st, s); break;
    default: diag_error(E->D, st->loc, "an expression alone is not a statement"); break;
    }
}

/* False once the program is too big to go on with (reported once). */
bool within_limits(Elab *E, const Node *st) {
    if (E->g->n <= MAX_NODES && E->P->nparams <= MAX_PARAMS) return E->D->nerrors <= 200;
    if (!E->too_big) diag_error(E->D, st->loc, "the program grows past %d graph nodes or %d parameters", MAX_NODES, MAX_PARAMS);
    E->too_big = true;
    return false;
}

void exec_list(Elab *E, const Node *list, Scope *s) {
    for (const Node *st = list; st && !E->returned; st = st->next) {
        if (!within_limits(E, st)) return;
        exec_stmt(E, st, s);
    }
}


/* ---- the model and the whole compilation ---------------------------------------------------- */

static void elab_model(Elab *E, const Node *model) {
    Scope *local = scope_new(E, E->global);
    E->context = CTX_MODEL;
    E->returned = false;
    E->ret = NULL;
    exec_list(E, model->block.body, local);
    E->context = CTX_TOP;
    if (!E->returned) {
        if (E->D->nerrors == 0) diag_error(E->D, model->loc, "model does not return a loss");
        return;
    }
    Value *r = E->ret;
    if (!r) return;
    if (r->kind != V_TENSOR || r->t->ndim != 0 || !ir_dtype_is_float(r->t->dtype)) {
        diag_error(E->D, model->loc, "the model must return the loss, a float scalar tensor; it returns %s",
                   v_describe(E, r));
        return;
    }
    ir_add_output(E->g, r->t);
}

static void warn_unused(Elab *E) {
    for (int i = 0; i < E->P->nparams; i++)
        if (!E->P->params[i].used)
            diag_warning(E->D, E->P->params[i].loc, "parameter '%s' is never used by the model", E->P->params[i].name);
    for (Binding *b = E->global->head; b; b = b->next)
        if (b->val && b->val->kind == V_TENSOR && b->val->t->op == IR_INPUT && !b->used)
            diag_warning(E->D, b->loc, "input '%s' is never used", b->name);
}

static void bind_T(Elab *E, const FeOptions *opt) {
    const char *name = opt->seq_config ? opt->seq_config : "seq_len";
    const ConfigEntry *c = fe_config(E->P, name);
    if (!c) {
        if (E->D->nerrors == 0) diag_error(E->D, (Loc){0}, "the model's config has no '%s' (the sequence length T)", name);
        return;
    }
    if (!c->is_int || c->value <= 0) {
        diag_error(E->D, c->loc, "'%s' must be a positive integer", name);
        return;
    }
    E->P->T = (int64_t)c->value;
    scope_bind(E, E->global, "T", v_int(E, E->P->T), (Loc){0});
}

int fe_compile(FeCompile *c, const FeOptions *opt, FILE *diag_out) {
    memset(c, 0, sizeof *c);
    c->diag.out = diag_out;
    Elab *E = arena_alloc(&c->arena, sizeof *E);
    c->elab = E;
    E->c = c;
    E->A = &c->arena;
    E->D = &c->diag;
    E->P = &c->prog;
    E->g = c->prog.graph = ir_graph_new();
    E->global = scope_new(E, NULL);
    E->context = CTX_TOP;
    E->include_dirs = opt->include_dirs;

    Source *src = opt->text ? source_from_text(c, opt) : fe_load_source(c, opt->path, (Loc){0});
    if (!src) return 1;
    const Source *stack[16];
    Node *stmts = load_flat(E, src, stack, 0);
    if (c->diag.nerrors) return 1;   /* syntax errors: the tree is incomplete */
    override_definitions(E, &stmts);
    eval_config(E, stmts, opt);
    bind_T(E, opt);
    if (c->diag.nerrors) return 1;
    const Node *model = NULL;
    for (Node *st = stmts; st; st = st->next) {
        if (!within_limits(E, st)) break;
        if (st->kind != N_MODEL) {
            exec_stmt(E, st, E->global);
        } else if (model) {
            diag_error(E->D, st->loc, "a second 'model' block");
            diag_note(E->D, model->loc, "the first is here");
        } else {
            model = st;
        }
    }
    if (!model) diag_error(E->D, (Loc){src, 1, 1}, "no 'model { … }' block");
    else elab_model(E, model);
    if (c->diag.nerrors == 0) warn_unused(E);
    return c->diag.nerrors ? 1 : 0;
}

/* ---- the checks of a model that is to be trained ------------------------------------------------ */

static const char *type_str(IrDtype dt, int ndim, const int64_t *shape, char *buf, int len) {
    char sb[128];
    snprintf(buf, (size_t)len, "%s%s", ir_dtype_name(dt), ir_shape_str(ndim, shape, sb, sizeof sb));
    return buf;
}

static const char *stream_names[] = {[FE_TOKENS] = "tokens", [FE_NEXT_TOKENS] = "targets"};

IrNode *fe_stream_input(const Program *p, FeStream s) { return ir_leaf_named(p->graph, IR_INPUT, stream_names[s]); }
const char *fe_stream_name(FeStream s) { return stream_names[s]; }

/* The inputs of c in declaration order: the trainer feeds 'tokens' and 'targets', i32[T]. */
static void check_inputs(FeCompile *c) {
    Elab *E = c->elab;
    const Binding *in[64];
    int n = 0;
    for (const Binding *b = E->global->head; b; b = b->next)
        if (b->val && b->val->kind == V_TENSOR && b->val->t->op == IR_INPUT && n < 64) in[n++] = b;
    char want[160], got[160];
    int64_t T = c->prog.T;
    type_str(IR_I32, 1, &T, want, sizeof want);
    for (int i = n - 1; i >= 0; i--) {
        const IrNode *t = in[i]->val->t;
        if (strcmp(in[i]->name, stream_names[FE_TOKENS]) != 0 && strcmp(in[i]->name, stream_names[FE_NEXT_TOKENS]) != 0)
            diag_error(E->D, in[i]->loc, "the trainer feeds only the inputs 'tokens' and 'targets', each i32[T]; "
                       "'%s' would have no value: compute it in the model from them", in[i]->name);
        else if (t->dtype != IR_I32 || t->ndim != 1 || t->shape[0] != T)
            diag_error(E->D, in[i]->loc, "the trainer feeds input '%s' as i32[T] (%s), not %s", in[i]->name, want,
                       type_str(t->dtype, t->ndim, t->shape, got, sizeof got));
    }
}

static const ParamDecl *param_named(const Program *p, const char *name) {
    for (int i = 0; i < p->nparams; i++)
        if (strcmp(p->params[i].name, name) == 0) return &p->params[i];
    return NULL;
}

static bool same_type(const ParamDecl *a, const ParamDecl *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *fe_trainer_entry_error(const char *name, double value) {
    if (strcmp(name, "steps") == 0 && (value != floor(value) || value < 1))
        return "(the number of training steps) must be an integer of at least 1";
    return NULL;
}

int fe_check_trainable(FeCompile *c, FeCompile *eval) {
    int before = c->diag.nerrors;
    check_inputs(c);
    if (!eval || eval == c) return c->diag.nerrors - before;
    const Program *p = &c->prog, *q = &eval->prog;
    long long T = (long long)p->T, Tv = (long long)q->T;
    char a[160], b[160];
    for (int i = 0; i < p->nparams; i++) {
        const ParamDecl *x = &p->params[i], *y = param_named(q, x->name);
        if (!y)
            diag_error(&c->diag, x->loc, "parameter '%s' exists with T = seq_len = %lld but not with T = val_seq_len = "
                       "%lld: validation runs on the trained parameters, so they must not depend on T; "
                       "set val_seq_len = seq_len (%lld)", x->name, T, Tv, T);
        else if (!same_type(x, y))
            diag_error(&c->diag, x->loc, "parameter '%s' is %s with T = seq_len = %lld but %s with T = val_seq_len = "
                       "%lld: validation runs on the trained parameters, so their shapes must not depend on T; "
                       "set val_seq_len = seq_len (%lld)", x->name, type_str(x->dtype, x->ndim, x->shape, a, sizeof a),
                       T, type_str(y->dtype, y->ndim, y->shape, b, sizeof b), Tv, T);
    }
    for (int i = 0; i < q->nparams; i++)
        if (!param_named(p, q->params[i].name))
            diag_error(&c->diag, q->params[i].loc, "parameter '%s' exists with T = val_seq_len = %lld but not with "
                       "T = seq_len = %lld: validation runs on the trained parameters, so they must not depend on T; "
                       "set val_seq_len = seq_len (%lld)", q->params[i].name, Tv, T, T);
    return c->diag.nerrors - before;
}

void fe_free(FeCompile *c) {
    ir_graph_free(c->prog.graph);
    c->prog.graph = NULL;
    arena_free(&c->arena);
}

const ConfigEntry *fe_config(const Program *p, const char *name) {
    for (int i = 0; i < p->nconfig; i++)
        if (strcmp(p->config[i].name, name) == 0) return &p->config[i];
    return NULL;
}

int64_t fe_param_count(const ParamDecl *p) {
    int64_t n = 1;
    for (int i = 0; i < p->ndim; i++) n *= p->shape[i];
    return n;
}

bool fe_param_trainable(const ParamDecl *p) { return p->optim != FE_FROZEN; }

static ScheduleDecl *find_schedule(const Program *p, const char *name) {
    for (int i = 0; i < p->nschedules; i++)
        if (strcmp(p->schedules[i].name, name) == 0) return &p->schedules[i];
    return NULL;
}

const ScheduleDecl *fe_schedule(const Program *p, const char *name) { return find_schedule(p, name); }

double fe_schedule_value(FeCompile *c, const char *name, int64_t step) {
    const ScheduleDecl *s = fe_schedule(&c->prog, name);
    double v;
    if (s && s->pinned) return s->pin;
    return s && sched_eval(c->elab, s->expr, s->scope, step, &v, false) ? v : NAN;
}

const char *fe_schedule_suggest(const Program *p, const char *name) {
    const char *best = NULL;
    int bestd = suggest_limit(name);
    for (int i = 0; i < p->nschedules; i++) {
        int d = edit_distance(name, p->schedules[i].name);
        if (d < bestd) {
            bestd = d;
            best = p->schedules[i].name;
        }
    }
    return best;
}

int fe_pin_schedule(FeCompile *c, const char *name, double value) {
    ScheduleDecl *s = find_schedule(&c->prog, name);
    if (!s) return -1;
    s->pinned = true;
    s->pin = value;
    return 0;
}

double fe_optim_arg(FeCompile *c, const OptimGroup *g, const char *key, int64_t step, double dflt) {
    for (int i = 0; i < g->nargs; i++) {
        double v;
        if (strcmp(g->args[i].key, key) == 0)
            return sched_eval(c->elab, g->args[i].expr, g->args[i].scope, step, &v, false) ? v : NAN;
    }
    return dflt;
}
