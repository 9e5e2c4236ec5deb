/* expr.c — compile-time evaluation of expressions: names, members, indexing, lists,
 * maps, comprehensions, arithmetic on numbers, lists, strings and tensors, and calls
 * (user functions are inlined; builtins are in builtins.c). */
#include "frontend/elab.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* ---- expressions ----------------------------------------------------------------------- */

void graph_at(Elab *E, Loc loc) {
    E->g->cur_file = loc.src ? loc.src->name : NULL;
    E->g->cur_line = loc.line;
}

IrNode *sched_node(Elab *E, const char *name) {
    for (int i = 0; i < E->nsched_nodes; i++)
        if (strcmp(E->sched_names[i], name) == 0) return E->sched_nodes[i];
    IrNode *n = ir_leaf(E->g, IR_SCALAR, name, IR_F32, 0, NULL);
    if (E->nsched_nodes < 64) {
        E->sched_names[E->nsched_nodes] = name;
        E->sched_nodes[E->nsched_nodes++] = n;
    }
    return n;
}

IrNode *as_tensor(Elab *E, Value *v, Loc loc, const char *what) {
    if (!v) return NULL;
    if (v->kind == V_TENSOR) return v->t;
    if (v_is_num(v)) return ir_const(E->g, v_num(v));
    if (v->kind == V_SCHED) {
        if (E->context != CTX_MODEL && E->context != CTX_FN) {
            diag_error(E->D, loc, "schedule values are only known inside fn and model");
            return NULL;
        }
        return sched_node(E, v->s);
    }
    diag_error(E->D, loc, "%s must be a tensor or a number, got %s", what, v_describe(E, v));
    return NULL;
}

/* The root of a parameter name ("embed" of "embed.0") close to `name`, or NULL. */
static const char *suggest_param(Elab *E, const char *name) {
    if (strlen(name) <= 3) return NULL;
    for (int i = 0; i < E->P->nparams; i++) {
        const char *full = E->P->params[i].name, *dot = strchr(full, '.');
        char *root = arena_strndup(E->A, full, dot ? (size_t)(dot - full) : strlen(full));
        if (edit_distance(name, root) <= 2) return root;
    }
    return NULL;
}

static Value *eval_name(Elab *E, const Node *n, Scope *s) {
    Binding *b = scope_find(s, n->name);
    if (b) {
        b->used = true;
        return b->val->kind == V_NONE ? NULL : b->val;   /* NONE: its definition failed */
    }
    Value *v = resolve_path(E, n->name, n->loc, false);
    if (v) return v;
    int bi = builtin_lookup(n->name);
    if (bi >= 0) {
        v = v_new(E, V_BUILTIN);
        v->i = bi;
        return v;
    }
    for (int i = 0; i < E->nfailed; i++) {
        size_t len = strlen(n->name);
        if (strncmp(E->failed[i], n->name, len) == 0 && (E->failed[i][len] == 0 || E->failed[i][len] == '.'))
            return NULL;   /* a parameter whose declaration failed (reported there) */
    }
    if (strcmp(n->name, "step") == 0 && E->context == CTX_TOP) {
        diag_error(E->D, n->loc, "'step' is only known in schedule and optim expressions");
        return NULL;
    }
    const char *sug = scope_suggest(s, n->name);
    if (!sug) sug = suggest_param(E, n->name);
    if (sug) diag_error(E->D, n->loc, "unknown name '%s'; did you mean '%s'?", n->name, sug);
    else diag_error(E->D, n->loc, "unknown name '%s'", n->name);
    return NULL;
}

static Value *eval_member(Elab *E, const Node *n, Scope *s) {
    Value *a = eval(E, n->member.base, s);
    if (!a) return NULL;
    if (a->kind != V_FAMILY) {
        diag_error(E->D, n->loc, "'.%s': only parameter families have members, this is a %s", n->name,
                   v_describe(E, a));
        return NULL;
    }
    return resolve_path(E, arena_printf(E->A, "%s.%s", a->s, n->name), n->loc, true);
}

static Value *eval_index(Elab *E, const Node *n, Scope *s) {
    Value *a = eval(E, n->index.base, s);
    if (!a) return NULL;
    const Node *idx = n->index.args;
    if (a->kind == V_TENSOR) return t_index(E, a, n, s);
    if (ast_count(idx) != 1 || idx->kind == N_SLICE) {
        diag_error(E->D, n->loc, "a %s takes exactly one index", v_kind_name(a));
        return NULL;
    }
    Value *k = eval(E, idx, s);
    if (!k) return NULL;
    switch (a->kind) {
    case V_FAMILY: {
        int64_t i;
        if (!v_to_int(E, k, idx->loc, "a parameter family index", &i)) return NULL;
        return resolve_path(E, arena_printf(E->A, "%s.%lld", a->s, (long long)i), n->loc, true);
    }
    case V_LIST: {
        int64_t i;
        if (!v_to_int(E, k, idx->loc, "a list index", &i)) return NULL;
        if (i < 0) i += a->n;
        if (i < 0 || i >= a->n) {
            diag_error(E->D, idx->loc, "index %lld is out of range for a list of %d", (long long)i, a->n);
            return NULL;
        }
        return a->items[i];
    }
    case V_MAP: {
        Value *v = v_map_get(a, k);
        if (!v) diag_error(E->D, idx->loc, "key %s is not in the map", v_describe(E, k));
        return v;
    }
    default:
        diag_error(E->D, n->loc, "cannot index a %s", v_describe(E, a));
        return NULL;
    }
}

bool count_iteration(Elab *E, Loc loc) {
    if (++E->iterations <= MAX_ITERATIONS) return true;
    if (E->iterations == MAX_ITERATIONS + 1)
        diag_error(E->D, loc, "more than %d compile-time loop iterations", MAX_ITERATIONS);
    return false;
}

/* The values a `for` or comprehension runs over: 0..iter−1 for '<'; for 'in', the items
 * of a list or the keys of a map. */
Value **iteration_values(Elab *E, int op, const Node *iter, Scope *s, int *count) {
    Value *b = eval(E, iter, s);
    *count = -1;   /* -1: error (reported) */
    if (!b) return NULL;
    if (op == '<') {
        int64_t n;
        if (!v_to_int(E, b, iter->loc, "a loop bound", &n)) return NULL;
        if (n > MAX_ITERATIONS) {
            diag_error(E->D, iter->loc, "loop bound %lld is too large", (long long)n);
            return NULL;
        }
        *count = 0;
        if (n <= 0) return NULL;
        Value **vals = arena_alloc(E->A, sizeof(Value *) * (size_t)n);
        for (int64_t i = 0; i < n; i++) vals[i] = v_int(E, i);
        *count = (int)n;
        return vals;
    }
    if (b->kind == V_LIST) {
        *count = b->n;
        return b->items;
    }
    if (b->kind == V_MAP) {
        Value **vals = arena_alloc(E->A, sizeof(Value *) * (size_t)(b->n ? b->n : 1));
        for (int i = 0; i < b->n; i++) vals[i] = b->items[2 * i];
        *count = b->n;
        return vals;
    }
    diag_error(E->D, iter->loc, "'for … in' needs a list or a map, got %s", v_describe(E, b));
    return NULL;
}

bool eval_cond(Elab *E, const Node *n, Scope *s, bool *out) {
    Value *v = eval(E, n, s);
    if (!v) return false;
    if (v->kind == V_BOOL) { *out = v->i != 0; return true; }
    if (v->kind == V_TENSOR || v->kind == V_SCHED)
        diag_error(E->D, n->loc, "a condition must be known at compile time, got %s", v_describe(E, v));
    else diag_error(E->D, n->loc, "a condition must be a bool, got %s", v_describe(E, v));
    return false;
}

static Value *eval_comp(Elab *E, const Node *n, Scope *s) {
    int count;
    Value **vals = iteration_values(E, n->op, n->comp.iter, s, &count);
    if (count < 0) return NULL;
    Value *list = v_new(E, V_LIST);
    list->items = arena_alloc(E->A, sizeof(Value *) * (size_t)(count ? count : 1));
    for (int i = 0; i < count; i++) {
        if (!count_iteration(E, n->loc)) return NULL;
        Scope *inner = scope_new(E, s);
        scope_bind(E, inner, n->name, vals[i], n->loc);
        bool keep = true;
        if (n->comp.filter && !eval_cond(E, n->comp.filter, inner, &keep)) return NULL;
        if (!keep) continue;
        Value *v = eval(E, n->comp.elem, inner);
        if (!v) return NULL;
        list->items[list->n++] = v;
    }
    return list;
}

static Value *eval_list(Elab *E, const Node *n, Scope *s) {
    Value *list = v_new(E, V_LIST);
    int count = ast_count(n->list.items);
    list->items = arena_alloc(E->A, sizeof(Value *) * (size_t)(count ? count : 1));
    for (const Node *e = n->list.items; e; e = e->next) {
        if (e->kind == N_KWARG) {
            diag_error(E->D, e->loc, "'%s = …' is only allowed in a call", e->name);
            return NULL;
        }
        Value *v = eval(E, e, s);
        if (!v) return NULL;
        list->items[list->n++] = v;
    }
    return list;
}

static Value *eval_map(Elab *E, const Node *n, Scope *s) {
    Value *map = v_new(E, V_MAP);
    for (const Node *p = n->list.items; p; p = p->next) {
        Value *k = eval(E, p->pair.key, s), *v = eval(E, p->pair.value, s);
        if (!k || !v) return NULL;
        if (!v_is_num(k) && k->kind != V_STRING && k->kind != V_BOOL) {
            diag_error(E->D, p->pair.key->loc, "a map key must be a number, a bool or a string, got %s", v_describe(E, k));
            return NULL;
        }
        if (v_map_get(map, k)) {
            diag_error(E->D, p->pair.key->loc, "key %s appears twice in the map", v_describe(E, k));
            return NULL;
        }
        v_map_put(E, map, k, v);
    }
    return map;
}

/* ---- arithmetic ------------------------------------------------------------------------- */

static Value *int_arith(Elab *E, int op, int64_t a, int64_t b, Loc loc) {
    int64_t r = 0;
    bool ovf = false;
    switch (op) {
    case '+': ovf = __builtin_add_overflow(a, b, &r); break;
    case '-': ovf = __builtin_sub_overflow(a, b, &r); break;
    case '*': ovf = __builtin_mul_overflow(a, b, &r); break;
    case T_FLOORDIV:
    case '%':
        if (b == 0) {
            diag_error(E->D, loc, "division by zero");
            return NULL;
        }
        if (a == INT64_MIN && b == -1) { ovf = true; break; }
        r = op == '%' ? a % b : a / b;
        if (op == T_FLOORDIV && (a % b != 0) && ((a < 0) != (b < 0))) r--;
        if (op == '%' && r != 0 && ((r < 0) != (b < 0))) r += b;
        break;
    case T_POW:
        /* b >= 0; |a| >= 2 overflows within 63 steps, so the loop is short */
        if (a == 0 || a == 1) r = b == 0 ? 1 : a;
        else if (a == -1) r = b % 2 ? -1 : 1;
        else {
            r = 1;
            for (int64_t i = 0; i < b && !ovf; i++) ovf = __builtin_mul_overflow(r, a, &r);
        }
        break;
    default: return NULL;
    }
    if (ovf) {
        diag_error(E->D, loc, "integer overflow");
        return NULL;
    }
    return v_int(E, r);
}

static bool is_arith(int op) {
    return op == '+' || op == '-' || op == '*' || op == T_FLOORDIV || op == '%' || op == T_POW;
}

static Value *num_binary(Elab *E, int op, Value *a, Value *b, Loc loc) {
    /* int op int stays an int (except '/' and negative powers); errors return NULL */
    if (a->kind == V_INT && b->kind == V_INT && is_arith(op) && !(op == T_POW && b->i < 0))
        return int_arith(E, op, a->i, b->i, loc);
    double x = v_num(a), y = v_num(b), r;
    switch (op) {
    case '+': r = x + y; break;
    case '-': r = x - y; break;
    case '*': r = x * y; break;
    case '/':
    case T_FLOORDIV:
    case '%':
        if (y == 0) {
            diag_error(E->D, loc, "division by zero");
            return NULL;
        }
        r = op == '/' ? x / y : op == T_FLOORDIV ? floor(x / y) : x - y * floor(x / y);
        break;
    case T_POW: r = pow(x, y); break;
    case T_EQ: return v_bool(E, x == y);
    case T_NE: return v_bool(E, x != y);
    case '<': return v_bool(E, x < y);
    case T_LE: return v_bool(E, x <= y);
    case '>': return v_bool(E, x > y);
    case T_GE: return v_bool(E, x >= y);
    default:
        diag_error(E->D, loc, "this operator does not apply to numbers");
        return NULL;
    }
    if (!isfinite(r)) {
        diag_error(E->D, loc, "the result is not a finite number");
        return NULL;
    }
    return v_float(E, r);
}

static Value *list_binary(Elab *E, int op, Value *a, Value *b, Loc loc) {
    if (op == '+' && b->kind == V_LIST) {
        if ((int64_t)a->n + b->n > MAX_LIST) goto too_long;
        Value *r = v_new(E, V_LIST);
        r->items = arena_alloc(E->A, sizeof(Value *) * (size_t)(a->n + b->n + 1));
        for (int i = 0; i < a->n; i++) r->items[r->n++] = a->items[i];
        for (int i = 0; i < b->n; i++) r->items[r->n++] = b->items[i];
        return r;
    }
    if (op == '*' && b->kind == V_INT) {
        int64_t k = b->i < 0 ? 0 : b->i;
        if (k > MAX_LIST || (int64_t)a->n * k > MAX_LIST) goto too_long;
        Value *r = v_new(E, V_LIST);
        r->items = arena_alloc(E->A, sizeof(Value *) * (size_t)(a->n * k + 1));
        for (int64_t j = 0; j < k; j++)
            for (int i = 0; i < a->n; i++) r->items[r->n++] = a->items[i];
        return r;
    }
    if (op == T_EQ || op == T_NE) return v_bool(E, v_equal(a, b) == (op == T_EQ));
    diag_error(E->D, loc, "this operator does not apply to a list and a %s", v_kind_name(b));
    return NULL;
too_long:
    diag_error(E->D, loc, "list longer than %d elements", MAX_LIST);
    return NULL;
}

/* v as an operand beside `other`: an int beside an i32 tensor is an i32 constant */
static IrNode *operand(Elab *E, Value *v, const Value *other, Loc loc, const char *what) {
    if (v->kind != V_INT || other->kind != V_TENSOR || other->t->dtype != IR_I32) return as_tensor(E, v, loc, what);
    if (v->i < INT32_MIN || v->i > INT32_MAX) {
        diag_error(E->D, loc, "%lld does not fit i32", (long long)v->i);
        return NULL;
    }
    return ir_const_i32(E->g, (int32_t)v->i);
}

static bool tensor_op(int op) {
    return op == '+' || op == '-' || op == '*' || op == '/' || op == T_FLOORDIV || op == '%' || op == T_EQ ||
           op == T_NE || op == '<' || op == T_LE || op == '>' || op == T_GE;
}

static Value *tensor_binary(Elab *E, int op, Value *a, Value *b, const Node *n) {
    const Node *lhs = n->binary.lhs, *rhs = n->binary.rhs;
    IrNode *x = operand(E, a, b, lhs->loc, "the left operand");
    IrNode *y = operand(E, b, a, rhs->loc, "the right operand");
    if (!x || !y) return NULL;
    graph_at(E, n->loc);
    if (op == T_POW) {
        if (!v_is_num(b) || v_num(b) != 2 || !ir_dtype_is_float(x->dtype)) {
            diag_error(E->D, n->loc, "only a float tensor can be raised to a power, and only to 2 (use square)");
            return NULL;
        }
        return v_tensor(E, ir_unary(E->g, IR_SQUARE, x));
    }
    if (op == '@') {
        CallArgs ca = {.args = (Value *[]){v_tensor(E, x), v_tensor(E, y)},
                       .locs = (Loc[]){lhs->loc, rhs->loc}, .nargs = 2, .at = n->loc, .name = "@"};
        return builtin_call(E, builtin_lookup("matmul"), &ca);
    }
    if (!tensor_op(op)) {
        diag_error(E->D, n->loc, "this operator needs values known at compile time, not tensors");
        return NULL;
    }
    IrNode *r = t_binary(E, op, x, y, n->loc);
    return r ? v_tensor(E, r) : NULL;
}

static Value *eval_binary(Elab *E, const Node *n, Scope *s) {
    int op = n->op;
    const Node *lhs = n->binary.lhs, *rhs = n->binary.rhs;
    Value *a = eval(E, lhs, s);
    if (!a && op != T_AND && op != T_OR) {
        eval(E, rhs, s);   /* report its errors too */
        return NULL;
    }
    if (!a) return NULL;
    if (op == T_AND || op == T_OR) {
        if (a->kind != V_BOOL) {
            diag_error(E->D, lhs->loc, "'%s' needs bools, got %s", op == T_AND ? "and" : "or", v_describe(E, a));
            return NULL;
        }
        if ((op == T_AND) != (a->i != 0)) return a;   /* short circuit */
        Value *b = eval(E, rhs, s);
        if (b && b->kind != V_BOOL) {
            diag_error(E->D, rhs->loc, "'%s' needs bools, got %s", op == T_AND ? "and" : "or", v_describe(E, b));
            return NULL;
        }
        return b;
    }
    Value *b = eval(E, rhs, s);
    if (!a || !b) return NULL;
    if (op == T_IN) {
        if (b->kind == V_LIST) {
            for (int i = 0; i < b->n; i++)
                if (v_equal(a, b->items[i])) return v_bool(E, true);
            return v_bool(E, false);
        }
        if (b->kind == V_MAP) return v_bool(E, v_map_get(b, a) != NULL);
        diag_error(E->D, rhs->loc, "'in' needs a list or a map on its right, got %s", v_describe(E, b));
        return NULL;
    }
    if (v_is_num(a) && v_is_num(b)) return num_binary(E, op, a, b, n->loc);
    if (a->kind == V_LIST) return list_binary(E, op, a, b, n->loc);
    if (a->kind == V_STRING && b->kind == V_STRING) {
        if (op == '+') return v_string(E, arena_printf(E->A, "%s%s", a->s, b->s));
        if (op == T_EQ || op == T_NE) return v_bool(E, (strcmp(a->s, b->s) == 0) == (op == T_EQ));
    }
    if (a->kind == V_BOOL && b->kind == V_BOOL && (op == T_EQ || op == T_NE))
        return v_bool(E, (a->i == b->i) == (op == T_EQ));
    bool ta = a->kind == V_TENSOR || a->kind == V_SCHED, tb = b->kind == V_TENSOR || b->kind == V_SCHED;
    if ((ta || v_is_num(a)) && (tb || v_is_num(b))) return tensor_binary(E, op, a, b, n);
    diag_error(E->D, n->loc, "this operator does not apply to %s and %s", v_describe(E, a), v_describe(E, b));
    return NULL;
}

static Value *eval_unary(Elab *E, const Node *n, Scope *s) {
    Value *a = eval(E, n->unary.operand, s);
    if (!a) return NULL;
    if (n->op == T_NOT) {
        if (a->kind == V_BOOL) return v_bool(E, !a->i);
        diag_error(E->D, n->loc, "'not' needs a bool, got %s", v_describe(E, a));
        return NULL;
    }
    if (a->kind == V_INT) {
        if (a->i == INT64_MIN) {
            diag_error(E->D, n->loc, "integer overflow");
            return NULL;
        }
        return v_int(E, -a->i);
    }
    if (a->kind == V_FLOAT) return v_float(E, -a->f);
    IrNode *t = as_tensor(E, a, n->unary.operand->loc, "the operand of '-'");
    if (!t) return NULL;
    graph_at(E, n->loc);
    if (t->dtype == IR_I32)   /* 0 - x: wraps around like the other i32 arithmetic */
        return v_tensor(E, ir_binary(E->g, IR_SUB, ir_broadcast(E->g, ir_const_i32(E->g, 0), t->ndim, t->shape), t));
    return v_tensor(E, ir_unary(E->g, IR_NEG, t));
}

/* ---- calls -------------------------------------------------------------------------------- */

Value *call_function(Elab *E, const Value *fnv, Value **args, const Loc *locs, int nargs, Loc at) {
    const Node *fn = fnv->fn;
    int nparams = ast_count(fn->fn.params);
    if (nargs != nparams) {
        diag_error(E->D, at, "fn '%s' takes %d argument%s, %d given", fn->name, nparams,
                   nparams == 1 ? "" : "s", nargs);
        return NULL;
    }
    if (E->depth >= MAX_INLINE_DEPTH) {
        diag_error(E->D, at, "calls nested more than %d deep (is '%s' recursive?)", MAX_INLINE_DEPTH, fn->name);
        return NULL;
    }
    Scope *local = scope_new(E, fnv->scope);
    int i = 0;
    for (const Node *p = fn->fn.params; p; p = p->next, i++) scope_bind(E, local, p->name, args[i], locs[i]);
    (void)locs;
    int saved_ctx = E->context;
    Value *saved_ret = E->ret;
    E->context = CTX_FN;
    E->depth++;
    Value *result;
    if (fn->fn.expr) {
        result = eval(E, fn->fn.expr, local);
    } else {
        E->ret = NULL;
        E->returned = false;
        exec_list(E, fn->fn.body, local);
        result = E->ret;
        if (!E->returned && E->D->nerrors == 0)
            diag_error(E->D, fn->loc, "fn '%s' ends without 'return'", fn->name);
        E->returned = false;
    }
    E->depth--;
    E->context = saved_ctx;
    E->ret = saved_ret;
    return result;
}

static Value *eval_call(Elab *E, const Node *n, Scope *s) {
    Value *callee = eval(E, n->call.callee, s);
    if (!callee) return NULL;
    if (callee->kind != V_FUNC && callee->kind != V_BUILTIN) {
        diag_error(E->D, n->call.callee->loc, "%s is not a function", v_describe(E, callee));
        return NULL;
    }
    int count = ast_count(n->call.args) + (n->kind == N_GENCALL);
    CallArgs a = {.at = n->loc, .name = callee->kind == V_FUNC ? callee->fn->name : builtin_name((int)callee->i)};
    a.args = arena_alloc(E->A, sizeof(Value *) * (size_t)(count + 1));
    a.locs = arena_alloc(E->A, sizeof(Loc) * (size_t)(count + 1));
    a.kw = arena_alloc(E->A, sizeof(char *) * (size_t)(count + 1));
    a.kwv = arena_alloc(E->A, sizeof(Value *) * (size_t)(count + 1));
    a.kwloc = arena_alloc(E->A, sizeof(Loc) * (size_t)(count + 1));
    a.kw_used = arena_alloc(E->A, sizeof(bool) * (size_t)(count + 1));
    if (n->kind == N_GENCALL) {
        a.args[0] = eval_comp(E, n->call.comp, s);
        a.locs[0] = n->call.comp->loc;
        if (!a.args[0]) return NULL;
        a.nargs = 1;
    }
    bool failed = false;
    for (const Node *e = n->call.args; e; e = e->next) {
        Value *v = eval(E, e->kind == N_KWARG ? e->kwarg.value : e, s);
        if (!v) {
            failed = true;   /* go on: the other arguments' errors are reported too */
            continue;
        }
        if (e->kind == N_KWARG) {
            for (int i = 0; i < a.nkw; i++)
                if (strcmp(a.kw[i], e->name) == 0) {
                    diag_error(E->D, e->loc, "argument '%s' is given twice", e->name);
                    return NULL;
                }
            a.kw[a.nkw] = e->name;
            a.kwloc[a.nkw] = e->loc;
            a.kwv[a.nkw++] = v;
        } else {
            if (a.nkw) {
                diag_error(E->D, e->loc, "a positional argument cannot follow a named one");
                return NULL;
            }
            a.locs[a.nargs] = e->loc;
            a.args[a.nargs++] = v;
        }
    }
    if (failed) return NULL;
    if (callee->kind == V_FUNC) {
        if (a.nkw) {
            diag_error(E->D, a.kwloc[0], "fn '%s' takes positional arguments only", callee->fn->name);
            return NULL;
        }
        return call_function(E, callee, a.args, a.locs, a.nargs, n->loc);
    }
    Value *r = builtin_call(E, (int)callee->i, &a);
    for (int i = 0; r && i < a.nkw; i++)
        if (!a.kw_used[i]) {
            diag_error(E->D, a.kwloc[i], "%s() has no argument named '%s'", a.name, a.kw[i]);
            return NULL;
        }
    return r;
}

static Value *eval_node(Elab *E, const Node *n, Scope *s);

/* Every expression passes here: a guard on nesting depth keeps hostile inputs (a file of
 * 1+1+1+… ) from overflowing the C stack. */
Value *eval(Elab *E, const Node *n, Scope *s) {
    if (!n) return NULL;
    if (E->eval_depth >= MAX_EVAL_DEPTH) {
        diag_error(E->D, n->loc, "expression nested more than %d deep", MAX_EVAL_DEPTH);
        return NULL;
    }
    E->eval_depth++;
    Value *v = eval_node(E, n, s);
    E->eval_depth--;
    return v;
}

static Value *eval_node(Elab *E, const Node *n, Scope *s) {
    switch (n->kind) {
    case N_INT: return v_int(E, n->ival);
    case N_FLOAT: return v_float(E, n->fval);
    case N_STRING: return v_string(E, n->name);
    case N_BOOL: return v_bool(E, n->ival != 0);
    case N_NAME: return eval_name(E, n, s);
    case N_MEMBER: return eval_member(E, n, s);
    case N_INDEX: return eval_index(E, n, s);
    case N_CALL:
    case N_GENCALL: return eval_call(E, n, s);
    case N_UNARY: return eval_unary(E, n, s);
    case N_BINARY: return eval_binary(E, n, s);
    case N_COND: {
        bool c;
        if (!eval_cond(E, n->branch.cond, s, &c)) return NULL;
        return eval(E, c ? n->branch.then : n->branch.els, s);
    }
    case N_LIST: return eval_list(E, n, s);
    case N_MAP: return eval_map(E, n, s);
    case N_COMP: return eval_comp(E, n, s);
    case N_SLICE: diag_error(E->D, n->loc, "a slice a:b is only allowed inside a tensor index"); return NULL;
    case N_KWARG: diag_error(E->D, n->loc, "'%s = …' is only allowed in a call", n->name); return NULL;
    default: diag_error(E->D, n->loc, "expected an expression"); return NULL;
    }
}
