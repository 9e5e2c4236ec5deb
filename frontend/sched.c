/* sched.c — schedules and optimizer hyper-parameters: numeric expressions of `step`,
 * evaluated in double precision at every training step without allocating.
 *
 * Allowed: numbers, `step`, config values, `let` numbers, other schedules, + - * / //
 * % ** (pow), comparisons, and/or/not, if-then-else, and min max abs sqrt floor ceil pow
 * exp log next_multiple. Comparisons yield 1 or 0. */
#include "frontend/elab.h"

#include <math.h>
#include <string.h>

typedef struct {
    Elab *E;
    int64_t step;
    bool report;
    int depth;
} SchedCtx;

static bool fail(SchedCtx *c, Loc loc, const char *msg, const char *arg) {
    if (c->report) diag_error(c->E->D, loc, msg, arg);
    return false;
}

static bool ev(SchedCtx *c, const Node *n, Scope *s, double *out);

/* next_multiple(v, n): the smallest k*n >= v with integer k >= 1 (spec S-3). */
static double next_multiple(double v, double n) {
    double k = ceil(v / n);
    if (k < 1) k = 1;
    /* correct the rounding of v / n; beyond 2^53, k + 1 == k and there is nothing to fix */
    for (int i = 0; i < 4 && k * n < v; i++) k++;
    for (int i = 0; i < 4 && k > 1 && (k - 1) * n >= v; i++) k--;
    return k * n;
}

static bool ev_call(SchedCtx *c, const Node *n, Scope *s, double *out) {
    static const struct { const char *name; int nargs; } fns[] = {
        {"min", 2}, {"max", 2}, {"abs", 1}, {"sqrt", 1}, {"floor", 1}, {"ceil", 1},
        {"pow", 2}, {"exp", 1}, {"log", 1}, {"next_multiple", 2}};
    if (n->kind != N_CALL || n->call.callee->kind != N_NAME)
        return fail(c, n->loc, "%s", "only builtin functions can be called in a schedule");
    const Node *callee = n->call.callee;
    int k = -1;
    for (int i = 0; i < (int)(sizeof fns / sizeof fns[0]); i++)
        if (strcmp(fns[i].name, callee->name) == 0) k = i;
    if (k < 0) return fail(c, callee->loc, "'%s' cannot be used in a schedule", callee->name);
    double x[2] = {0, 0};
    int i = 0;
    for (const Node *a = n->call.args; a; a = a->next, i++) {
        if (i >= fns[k].nargs || a->kind == N_KWARG) break;
        if (!ev(c, a, s, &x[i])) return false;
    }
    if (i != fns[k].nargs || ast_count(n->call.args) != fns[k].nargs)
        return fail(c, n->loc, "%s() takes a different number of arguments here", fns[k].name);
    switch (k) {
    case 0: *out = fmin(x[0], x[1]); break;
    case 1: *out = fmax(x[0], x[1]); break;
    case 2: *out = fabs(x[0]); break;
    case 3: *out = sqrt(x[0]); break;
    case 4: *out = floor(x[0]); break;
    case 5: *out = ceil(x[0]); break;
    case 6: *out = pow(x[0], x[1]); break;
    case 7: *out = exp(x[0]); break;
    case 8: *out = log(x[0]); break;
    case 9:
        if (!(x[1] >= 1) || x[1] != floor(x[1]) || !(x[0] >= 0))
            return fail(c, n->loc, "%s", "next_multiple(v, n) needs v >= 0 and an integer n >= 1");
        *out = next_multiple(x[0], x[1]);
        break;
    }
    return true;
}

static bool ev_name(SchedCtx *c, const Node *n, Scope *s, double *out) {
    if (strcmp(n->name, "step") == 0) {
        *out = (double)c->step;
        return true;
    }
    Binding *b = scope_find(s, n->name);
    if (!b) {
        const char *sug = scope_suggest(s, n->name);
        if (c->report) {
            if (sug) diag_error(c->E->D, n->loc, "unknown name '%s'; did you mean '%s'?", n->name, sug);
            else diag_error(c->E->D, n->loc, "unknown name '%s'", n->name);
        }
        return false;
    }
    b->used = true;
    const Value *v = b->val;
    if (v->kind == V_NONE) return false;   /* its definition failed and was reported */
    if (v->kind == V_INT || v->kind == V_BOOL) { *out = (double)v->i; return true; }
    if (v->kind == V_FLOAT) { *out = v->f; return true; }
    if (v->kind == V_SCHED) {
        const ScheduleDecl *d = fe_schedule(c->E->P, v->s);   /* NULL while it is declared */
        if (d && d->pinned) {
            *out = d->pin;
            return true;
        }
        return ev(c, v->sched, v->scope, out);
    }
    return fail(c, n->loc, "'%s' is not a number; a schedule uses numbers, config values and step", n->name);
}

static bool ev_binary(SchedCtx *c, const Node *n, Scope *s, double *out) {
    double a, b;
    if (!ev(c, n->binary.lhs, s, &a) || !ev(c, n->binary.rhs, s, &b)) return false;
    switch (n->op) {
    case '+': *out = a + b; break;
    case '-': *out = a - b; break;
    case '*': *out = a * b; break;
    case '/': *out = a / b; break;
    case T_FLOORDIV: *out = floor(a / b); break;
    case '%': *out = a - b * floor(a / b); break;
    case T_POW: *out = pow(a, b); break;
    case T_EQ: *out = a == b; break;
    case T_NE: *out = a != b; break;
    case '<': *out = a < b; break;
    case T_LE: *out = a <= b; break;
    case '>': *out = a > b; break;
    case T_GE: *out = a >= b; break;
    case T_AND: *out = a != 0 && b != 0; break;
    case T_OR: *out = a != 0 || b != 0; break;
    default: return fail(c, n->loc, "%s", "this operator cannot be used in a schedule");
    }
    return true;
}

static bool ev_node(SchedCtx *c, const Node *n, Scope *s, double *out);

static bool ev(SchedCtx *c, const Node *n, Scope *s, double *out) {
    if (c->depth > MAX_EVAL_DEPTH) return fail(c, n->loc, "%s", "schedule expression nested too deeply");
    c->depth++;
    bool ok = ev_node(c, n, s, out);
    c->depth--;
    return ok;
}

static bool ev_node(SchedCtx *c, const Node *n, Scope *s, double *out) {
    switch (n->kind) {
    case N_INT: *out = (double)n->ival; return true;
    case N_FLOAT: *out = n->fval; return true;
    case N_BOOL: *out = (double)n->ival; return true;
    case N_NAME: return ev_name(c, n, s, out);
    case N_CALL: return ev_call(c, n, s, out);
    case N_BINARY: return ev_binary(c, n, s, out);
    case N_UNARY:
        if (!ev(c, n->unary.operand, s, out)) return false;
        *out = n->op == '-' ? -*out : (double)(*out == 0);
        return true;
    case N_COND: {
        double cond;
        if (!ev(c, n->branch.cond, s, &cond)) return false;
        return ev(c, cond != 0 ? n->branch.then : n->branch.els, s, out);
    }
    default:
        return fail(c, n->loc, "%s", "a schedule is a number expression of step");
    }
}

bool sched_eval(Elab *E, const Node *n, Scope *s, int64_t step, double *out, bool report) {
    SchedCtx c = {E, step, report, 0};
    return ev(&c, n, s, out);
}
