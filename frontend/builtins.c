/* builtins.c — builtin functions: compile-time helpers and the tensor builtins, each
 * with its argument, shape and dtype checks, lowered to primitive graph ops
 * (rms_norm, rotary and soft cap are compositions; attention and cross-entropy are the
 * IR's fused primitives); and, for expr.c, tensor indexing and broadcasting arithmetic.
 * Shapes in comments: T tokens, H heads, D head width. */
#include "frontend/elab.h"

#include <math.h>
#include <string.h>

typedef struct {
    const char *name;
    BuiltinFn fn;
    int min_args, max_args;
} Builtin;

/* ---- helpers ------------------------------------------------------------------------ */

const char *shape_of(Elab *E, const IrNode *t) {
    char sb[128];
    return arena_printf(E->A, "%s%s", ir_dtype_name(t->dtype), ir_shape_str(t->ndim, t->shape, sb, sizeof sb));
}

bool shape_check_numel(Elab *E, int ndim, const int64_t *shape, Loc loc) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0 || __builtin_mul_overflow(n, shape[i], &n) || n > MAX_NUMEL) {
            diag_error(E->D, loc, "tensor shape is too large or not positive");
            return false;
        }
    }
    return true;
}

Value *kwarg(CallArgs *a, const char *name) {
    for (int i = 0; i < a->nkw; i++)
        if (strcmp(a->kw[i], name) == 0) {
            a->kw_used[i] = true;
            return a->kwv[i];
        }
    return NULL;
}

Loc kwloc(CallArgs *a, const char *name) {
    for (int i = 0; i < a->nkw; i++)
        if (strcmp(a->kw[i], name) == 0) return a->kwloc[i];
    return a->at;
}

/* The i-th argument as a float tensor (numbers become constants). */
static IrNode *float_arg(Elab *E, CallArgs *a, int i) {
    IrNode *t = as_tensor(E, a->args[i], a->locs[i], "the argument");
    if (t && !ir_dtype_is_float(t->dtype)) {
        diag_error(E->D, a->locs[i], "%s() needs a float tensor, got %s", a->name, shape_of(E, t));
        return NULL;
    }
    return t;
}

IrNode *tensor_arg(Elab *E, CallArgs *a, int i, int ndim_min) {
    Value *v = a->args[i];
    if (v->kind != V_TENSOR) {
        diag_error(E->D, a->locs[i], "%s() needs a tensor here, got %s", a->name, v_describe(E, v));
        return NULL;
    }
    if (v->t->ndim < ndim_min) {
        diag_error(E->D, a->locs[i], "%s() needs a tensor with at least %d dimension%s, got %s", a->name, ndim_min,
                   ndim_min == 1 ? "" : "s", shape_of(E, v->t));
        return NULL;
    }
    if (!ir_dtype_is_float(v->t->dtype)) {
        diag_error(E->D, a->locs[i], "%s() needs a float tensor, got %s", a->name, shape_of(E, v->t));
        return NULL;
    }
    return v->t;
}

bool num_arg(Elab *E, Value *v, Loc loc, const char *what, double *out) {
    if (!v_is_num(v)) {
        diag_error(E->D, loc, "%s must be a number, got %s", what, v_describe(E, v));
        return false;
    }
    *out = v_num(v);
    return true;
}

IrNode *bcast_to(Elab *E, IrNode *x, int ndim, const int64_t *shape) {
    if (x->ndim == ndim && memcmp(x->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0) return x;
    return ir_broadcast(E->g, x, ndim, shape);
}

static IrOp binop_ir(int op) {
    switch (op) {
    case '+': return IR_ADD;
    case '-': return IR_SUB;
    case '*': return IR_MUL;
    case T_FLOORDIV: return IR_FLOORDIV;
    case '%': return IR_MOD;
    case T_EQ: return IR_EQ;
    case T_NE: return IR_NE;
    case '<': case '>': return IR_LT;      /* a > b is b < a */
    case T_LE: case T_GE: return IR_LE;
    default: return IR_DIV;
    }
}

/* The operator's dtype rule, or NULL: i32 with i32 takes + - * // % and comparisons; float
 * with float takes + - * / and comparisons; i32 and float do not mix. */
static const char *dtype_rule(int op, IrNode *a, IrNode *b) {
    bool ia = a->dtype == IR_I32, ib = b->dtype == IR_I32;
    if (ia != ib) return "i32 and float tensors do not mix (convert the i32 one with float(x))";
    if (ia && op == '/') return "'/' of i32 tensors: use // (floor division), or float(x) first";
    if (!ia && (op == T_FLOORDIV || op == '%')) return "'//' and '%' need i32 tensors";
    return NULL;
}

/* a op b with numpy broadcasting (trailing axes aligned): arithmetic and comparisons
 * (0 or 1 in the operands' dtype), on float tensors or on i32 tensors. */
IrNode *t_binary(Elab *E, int op, IrNode *a, IrNode *b, Loc loc) {
    const char *bad = dtype_rule(op, a, b);
    if (bad) {
        diag_error(E->D, loc, "%s, got %s and %s", bad, shape_of(E, a), shape_of(E, b));
        return NULL;
    }
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t shape[IR_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            diag_error(E->D, loc, "shapes %s and %s do not broadcast", shape_of(E, a), shape_of(E, b));
            return NULL;
        }
        shape[i] = sa == 1 ? sb : sa;
    }
    graph_at(E, loc);
    IrNode *x = bcast_to(E, a, nd, shape), *y = bcast_to(E, b, nd, shape);
    if (op == '>' || op == T_GE) return ir_binary(E->g, binop_ir(op), y, x);
    return ir_binary(E->g, binop_ir(op), x, y);
}

IrNode *t_scale(Elab *E, IrNode *x, double s) {
    return ir_binary(E->g, IR_MUL, x, bcast_to(E, ir_const(E->g, s), x->ndim, x->shape));
}

IrNode *t_add_const(Elab *E, IrNode *x, double s) {
    return ir_binary(E->g, IR_ADD, x, bcast_to(E, ir_const(E->g, s), x->ndim, x->shape));
}

/* ---- tensor indexing ------------------------------------------------------------------ */

static bool slice_bound(Elab *E, const Node *n, Scope *s, int64_t dflt, int64_t size, int64_t *out) {
    if (!n) { *out = dflt; return true; }
    if (!v_to_int(E, eval(E, n, s), n->loc, "a slice bound", out)) return false;
    if (*out < 0) *out += size;
    if (*out < 0 || *out > size) {
        diag_error(E->D, n->loc, "slice bound is out of range for an axis of %lld", (long long)size);
        return false;
    }
    return true;
}

/* x[i, a:b, …]: integers pick (and drop) an axis, slices keep it; trailing axes are
 * kept whole. x[idx] with an i32 tensor idx gathers rows (embedding lookup). */
Value *t_index(Elab *E, Value *base, const Node *index, Scope *s) {
    IrNode *x = base->t;
    const Node *args = index->index.args;
    graph_at(E, index->loc);
    if (ast_count(args) == 1 && args->kind != N_SLICE) {
        Value *k = eval(E, args, s);
        if (!k) return NULL;
        if (k->kind == V_TENSOR) {
            if (k->t->dtype != IR_I32) {
                diag_error(E->D, args->loc, "rows are picked by an i32 tensor, got %s", shape_of(E, k->t));
                return NULL;
            }
            if (x->ndim < 1 || k->t->ndim + x->ndim - 1 > IR_MAX_DIMS) {
                diag_error(E->D, index->loc, "cannot pick rows of %s", shape_of(E, x));
                return NULL;
            }
            return v_tensor(E, ir_gather(E->g, x, k->t));
        }
    }
    int nidx = ast_count(args);
    if (nidx > x->ndim) {
        diag_error(E->D, index->loc, "%d indices for a tensor %s", nidx, shape_of(E, x));
        return NULL;
    }
    int64_t keep[IR_MAX_DIMS];
    int nkeep = 0, axis = 0;
    for (const Node *a = args; a; a = a->next, axis++) {
        int64_t size = x->shape[axis], lo, hi;
        if (a->kind == N_SLICE) {
            if (!slice_bound(E, a->slice.lo, s, 0, size, &lo) || !slice_bound(E, a->slice.hi, s, size, size, &hi))
                return NULL;
            if (hi <= lo) {
                diag_error(E->D, a->loc, "empty slice %lld:%lld", (long long)lo, (long long)hi);
                return NULL;
            }
            keep[nkeep++] = hi - lo;
        } else {
            if (!v_to_int(E, eval(E, a, s), a->loc, "a tensor index", &lo)) return NULL;
            if (lo < 0) lo += size;
            if (lo < 0 || lo >= size) {
                diag_error(E->D, a->loc, "index is out of range for axis %d of %s", axis, shape_of(E, x));
                return NULL;
            }
            hi = lo + 1;
        }
        if (lo != 0 || hi != size) x = ir_slice(E->g, x, axis, lo, hi - lo);
    }
    for (; axis < x->ndim; axis++) keep[nkeep++] = x->shape[axis];
    if (nkeep != x->ndim) x = ir_reshape(E->g, x, nkeep, keep);
    return v_tensor(E, x);
}

/* ---- compile-time builtins --------------------------------------------------------------- */

static Value *bi_minmax(Elab *E, CallArgs *a) {
    if (a->args[0]->kind == V_TENSOR) {
        if (a->nargs <= 2) return bi_reduce(E, a);   /* max(x, axis) */
        diag_error(E->D, a->at, "%s() of a tensor takes the tensor and an axis", a->name);
        return NULL;
    }
    Value **items = a->args;
    int n = a->nargs;
    if (n == 1 && a->args[0]->kind == V_LIST) {
        items = a->args[0]->items;
        n = a->args[0]->n;
    }
    if (n == 0) {
        diag_error(E->D, a->at, "%s() of nothing", a->name);
        return NULL;
    }
    Value *best = NULL;
    for (int i = 0; i < n; i++) {
        if (!v_is_num(items[i])) {
            diag_error(E->D, a->at, "%s() takes numbers, got %s", a->name, v_describe(E, items[i]));
            return NULL;
        }
        bool better = !best || (a->name[1] == 'i' ? v_num(items[i]) < v_num(best) : v_num(items[i]) > v_num(best));
        if (better) best = items[i];
    }
    return best;
}

static Value *bi_math1(Elab *E, CallArgs *a) {
    Value *v = a->args[0];
    if (v->kind == V_TENSOR || v->kind == V_SCHED) {
        IrNode *t = float_arg(E, a, 0);
        if (!t) return NULL;
        IrOp op = strcmp(a->name, "sqrt") == 0 ? IR_SQRT : strcmp(a->name, "exp") == 0 ? IR_EXP
                : strcmp(a->name, "log") == 0 ? IR_LOG : IR_NOPS;
        if (op == IR_NOPS) {
            diag_error(E->D, a->locs[0], "%s() takes a number, not a tensor", a->name);
            return NULL;
        }
        graph_at(E, a->at);
        return v_tensor(E, ir_unary(E->g, op, t));
    }
    double x, r;
    if (!num_arg(E, v, a->locs[0], "the argument", &x)) return NULL;
    switch (a->name[0]) {
    case 's': r = sqrt(x); break;
    case 'e': r = exp(x); break;
    case 'l': r = log(x); break;
    case 'a': if (v->kind == V_INT && v->i != INT64_MIN) return v_int(E, v->i < 0 ? -v->i : v->i); r = fabs(x); break;
    case 'f': r = floor(x); break;
    default: r = ceil(x); break;
    }
    if (!isfinite(r) || ((a->name[0] == 'f' || a->name[0] == 'c') && fabs(r) > 9e15)) {
        diag_error(E->D, a->at, "%s() of %g is not a finite number", a->name, x);
        return NULL;
    }
    return (a->name[0] == 'f' || a->name[0] == 'c') ? v_int(E, (int64_t)r) : v_float(E, r);
}

static Value *bi_pow(Elab *E, CallArgs *a) {
    double x, y;
    if (!num_arg(E, a->args[0], a->locs[0], "the base", &x) || !num_arg(E, a->args[1], a->locs[1], "the exponent", &y))
        return NULL;
    double r = pow(x, y);
    if (!isfinite(r)) {
        diag_error(E->D, a->at, "pow(%g, %g) is not a finite number", x, y);
        return NULL;
    }
    return v_float(E, r);
}

static Value *bi_next_multiple(Elab *E, CallArgs *a) {
    double v;
    int64_t n;
    if (!num_arg(E, a->args[0], a->locs[0], "the value", &v) || !v_to_int(E, a->args[1], a->locs[1], "n", &n))
        return NULL;
    if (n < 1 || !(v >= 0) || v > 9e15) {
        diag_error(E->D, a->at, "next_multiple(v, n) needs 0 <= v and n >= 1");
        return NULL;
    }
    int64_t k = (int64_t)ceil(v / (double)n);
    if (k < 1) k = 1;
    for (int i = 0; i < 4 && (double)k * (double)n < v; i++) k++;
    for (int i = 0; i < 4 && k > 1 && (double)(k - 1) * (double)n >= v; i++) k--;
    return v_int(E, k * n);
}

static Value *bi_len(Elab *E, CallArgs *a) {
    Value *v = a->args[0];
    if (v->kind == V_LIST || v->kind == V_MAP) return v_int(E, v->n);
    if (v->kind == V_STRING) return v_int(E, (int64_t)strlen(v->s));
    diag_error(E->D, a->locs[0], "len() takes a list, a map or a string, got %s", v_describe(E, v));
    return NULL;
}

static Value *bi_range(Elab *E, CallArgs *a) {
    int64_t lo = 0, hi;
    if (!v_to_int(E, a->args[0], a->locs[0], "range()'s bound", &hi)) return NULL;
    if (a->nargs == 2) {
        lo = hi;
        if (!v_to_int(E, a->args[1], a->locs[1], "range()'s end", &hi)) return NULL;
    }
    int64_t span;
    if (__builtin_sub_overflow(hi, lo, &span) || span > MAX_LIST) {
        diag_error(E->D, a->at, "range() longer than %d", MAX_LIST);
        return NULL;
    }
    Value *list = v_new(E, V_LIST);
    list->items = arena_alloc(E->A, sizeof(Value *) * (size_t)(hi > lo ? hi - lo : 1));
    for (int64_t i = lo; i < hi; i++) list->items[list->n++] = v_int(E, i);
    return list;
}

static Value *bi_int(Elab *E, CallArgs *a) {
    double x;
    if (!num_arg(E, a->args[0], a->locs[0], "int()'s argument", &x)) return NULL;
    if (fabs(x) > 9e15) {
        diag_error(E->D, a->locs[0], "int() of %g is out of range", x);
        return NULL;
    }
    return v_int(E, (int64_t)x);
}

static Value *bi_float(Elab *E, CallArgs *a) {
    double x;
    if (a->args[0]->kind == V_TENSOR && a->args[0]->t->dtype == IR_I32) {   /* i32 tensor → f32 */
        graph_at(E, a->at);
        return v_tensor(E, ir_cast(E->g, a->args[0]->t, IR_F32));
    }
    return num_arg(E, a->args[0], a->locs[0], "float()'s argument", &x) ? v_float(E, x) : NULL;
}

/* sum(list) or sum(expr for k < n): numbers add up at compile time, tensors in the graph,
 * left to right (term 0 first). */
static Value *bi_sum(Elab *E, CallArgs *a) {
    Value *list = a->args[0];
    if (list->kind == V_TENSOR) return bi_reduce(E, a);       /* sum(x, axis) */
    if (a->nargs > 1) {
        diag_error(E->D, a->locs[1], "sum() of a list takes no axis");
        return NULL;
    }
    if (list->kind != V_LIST) {
        diag_error(E->D, a->locs[0], "sum() takes a list or a generator, got %s", v_describe(E, list));
        return NULL;
    }
    if (list->n == 0) return v_int(E, 0);
    Value *acc = list->items[0];
    for (int i = 1; i < list->n; i++) {
        Value *x = list->items[i];
        if (v_is_num(acc) && v_is_num(x)) {
            acc = (acc->kind == V_INT && x->kind == V_INT && !__builtin_add_overflow(acc->i, x->i, &(int64_t){0}))
                      ? v_int(E, acc->i + x->i) : v_float(E, v_num(acc) + v_num(x));
            continue;
        }
        IrNode *p = as_tensor(E, acc, a->locs[0], "a term of sum()");
        IrNode *q = as_tensor(E, x, a->locs[0], "a term of sum()");
        IrNode *r = p && q ? t_binary(E, '+', p, q, a->at) : NULL;
        if (!r) return NULL;
        acc = v_tensor(E, r);
    }
    return acc;
}

/* ---- tensor builtins ------------------------------------------------------------------------ */

/* rms_norm(x, eps = 2^-23): x / sqrt(mean(x², last axis) + eps) */
static Value *bi_rms_norm(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 1);
    double eps = ldexp(1.0, -23);
    Value *ve = kwarg(a, "eps");
    if (!x || (ve && !num_arg(E, ve, kwloc(a, "eps"), "eps", &eps))) return NULL;
    graph_at(E, a->at);
    int last = x->ndim - 1;
    IrNode *ms = t_scale(E, ir_reduce(E->g, IR_SUM, ir_unary(E->g, IR_SQUARE, x), last), 1.0 / (double)x->shape[last]);
    IrNode *r = ir_unary(E->g, IR_RSQRT, t_add_const(E, ms, eps));
    return v_tensor(E, ir_binary(E->g, IR_MUL, x, bcast_to(E, r, x->ndim, x->shape)));
}

static IrNode *matmul_nd(Elab *E, IrNode *x, IrNode *w, bool wt) {
    if (x->ndim == 2) return ir_matmul(E->g, x, w, wt);
    int64_t rows = ir_numel(x) / x->shape[x->ndim - 1];
    int64_t flat[2] = {rows, x->shape[x->ndim - 1]};
    IrNode *y = ir_matmul(E->g, ir_reshape(E->g, x, 2, flat), w, wt);
    int64_t shape[IR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = y->shape[1];
    return ir_reshape(E->g, y, x->ndim, shape);
}

/* linear(x [..., K], w [N, K]) = x wᵀ → [..., N] */
static Value *bi_linear(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 1), *w = tensor_arg(E, a, 1, 2);
    if (!x || !w) return NULL;
    if (w->ndim != 2 || w->shape[1] != x->shape[x->ndim - 1]) {
        diag_error(E->D, a->at, "linear(x, w) needs w [N, %lld] for x %s, got w %s", (long long)x->shape[x->ndim - 1],
                   shape_of(E, x), shape_of(E, w));
        return NULL;
    }
    graph_at(E, a->at);
    if (x->ndim == 1) {
        int64_t row[2] = {1, x->shape[0]}, out[1] = {w->shape[0]};
        return v_tensor(E, ir_reshape(E->g, ir_matmul(E->g, ir_reshape(E->g, x, 2, row), w, true), 1, out));
    }
    return v_tensor(E, matmul_nd(E, x, w, true));
}

/* matmul(a [..., M, K], b [..., K, N]) → [..., M, N]; a may have more leading axes
 * than a 2-D b. */
static Value *bi_matmul(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 2), *y = tensor_arg(E, a, 1, 2);
    if (!x || !y) return NULL;
    int nx = x->ndim, ny = y->ndim;
    bool ok = x->shape[nx - 1] == y->shape[ny - 2] && (ny == 2 || nx == ny);
    for (int i = 0; ok && ny > 2 && i < nx - 2; i++) ok = x->shape[i] == y->shape[i];
    if (!ok) {
        diag_error(E->D, a->at, "cannot multiply %s by %s", shape_of(E, x), shape_of(E, y));
        return NULL;
    }
    graph_at(E, a->at);
    return v_tensor(E, ny == 2 ? matmul_nd(E, x, y, false) : ir_matmul(E->g, x, y, false));
}

static Value *bi_transpose(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 2);
    if (!x) return NULL;
    int perm[IR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[x->ndim - 2] = x->ndim - 1;
    perm[x->ndim - 1] = x->ndim - 2;
    graph_at(E, a->at);
    return v_tensor(E, ir_permute(E->g, x, perm));
}

/* reshape(x, [d0, d1, …]); one dim may be -1 (inferred) */
static Value *bi_reshape(Elab *E, CallArgs *a) {
    Value *x = a->args[0], *dims = a->args[1];
    if (x->kind != V_TENSOR) {
        diag_error(E->D, a->locs[0], "reshape() needs a tensor, got %s", v_describe(E, x));
        return NULL;
    }
    if (dims->kind != V_LIST || dims->n < 1 || dims->n > IR_MAX_DIMS) {
        diag_error(E->D, a->locs[1], "reshape() takes a list of 1 to %d dimensions", IR_MAX_DIMS);
        return NULL;
    }
    int64_t shape[IR_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < dims->n; i++) {
        if (!v_to_int(E, dims->items[i], a->locs[1], "a dimension", &shape[i])) return NULL;
        if (shape[i] == -1 && infer < 0) { infer = i; continue; }
        if (shape[i] <= 0 || __builtin_mul_overflow(known, shape[i], &known)) {
            diag_error(E->D, a->locs[1], "reshape() dimensions must be positive (one may be -1)");
            return NULL;
        }
    }
    int64_t n = ir_numel(x->t);
    if (infer >= 0) shape[infer] = known > 0 && n % known == 0 ? n / known : -1;
    int64_t total = infer >= 0 ? (shape[infer] > 0 ? n : -1) : known;
    if (total != n) {
        char sb[128];
        diag_error(E->D, a->at, "cannot reshape %s (%lld elements) to %s", shape_of(E, x->t), (long long)n,
                   ir_shape_str(dims->n, shape, sb, sizeof sb));
        return NULL;
    }
    graph_at(E, a->at);
    return v_tensor(E, ir_reshape(E->g, x->t, dims->n, shape));
}

/* the activations that are one IR op each */
static const struct {
    const char *name;
    IrOp op;
} unary_ops[] = {{"relu", IR_RELU}, {"square", IR_SQUARE}, {"sigmoid", IR_SIGMOID}, {"tanh", IR_TANH},
                 {"softplus", IR_SOFTPLUS}, {"erf", IR_ERF}};

static Value *bi_unary(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 0);
    if (!x) return NULL;
    int i = 0;
    while (strcmp(unary_ops[i].name, a->name)) i++;
    graph_at(E, a->at);
    return v_tensor(E, ir_unary(E->g, unary_ops[i].op, x));
}

/* silu(x) = x·sigmoid(x); gelu(x) = x·(1 + erf(x/√2))/2; gelu_tanh(x) = x·(1 + tanh(u))/2
 * with u = √(2/π)·(x + 0.044715·x³) */
static Value *bi_gated(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 0);
    if (!x) return NULL;
    graph_at(E, a->at);
    IrGraph *g = E->g;
    IrNode *gate;
    if (!strcmp(a->name, "silu")) {
        gate = ir_unary(g, IR_SIGMOID, x);
    } else {
        IrNode *s;
        if (!strcmp(a->name, "gelu")) {
            s = ir_unary(g, IR_ERF, t_scale(E, x, M_SQRT1_2));
        } else {
            IrNode *cube = ir_binary(g, IR_MUL, ir_unary(g, IR_SQUARE, x), x);
            IrNode *u = t_scale(E, ir_binary(g, IR_ADD, x, t_scale(E, cube, 0.044715)), sqrt(2 / M_PI));
            s = ir_unary(g, IR_TANH, u);
        }
        gate = t_scale(E, t_add_const(E, s, 1.0), 0.5);
    }
    return v_tensor(E, ir_binary(g, IR_MUL, x, gate));
}

/* softcap(z, c) = c·z / sqrt(z² + c²) */
static Value *bi_softcap(Elab *E, CallArgs *a) {
    IrNode *z = tensor_arg(E, a, 0, 0);
    double c;
    if (!z || !num_arg(E, a->args[1], a->locs[1], "the cap", &c)) return NULL;
    if (!(c > 0)) {
        diag_error(E->D, a->locs[1], "the cap must be positive");
        return NULL;
    }
    graph_at(E, a->at);
    IrNode *r = ir_unary(E->g, IR_RSQRT, t_add_const(E, ir_unary(E->g, IR_SQUARE, z), c * c));
    return v_tensor(E, t_scale(E, ir_binary(E->g, IR_MUL, z, r), c));
}

/* cross_entropy(logits [T, V], targets i32 [T]) → mean over rows, a scalar */
static Value *bi_cross_entropy(Elab *E, CallArgs *a) {
    IrNode *z = tensor_arg(E, a, 0, 2);
    Value *y = a->args[1];
    if (!z) return NULL;
    if (z->ndim != 2) {
        diag_error(E->D, a->locs[0], "cross_entropy() needs logits [T, V], got %s", shape_of(E, z));
        return NULL;
    }
    if (y->kind != V_TENSOR || y->t->dtype != IR_I32 || y->t->ndim != 1 || y->t->shape[0] != z->shape[0]) {
        diag_error(E->D, a->locs[1], "cross_entropy() needs targets i32[%lld], got %s", (long long)z->shape[0],
                   v_describe(E, y));
        return NULL;
    }
    graph_at(E, a->at);
    IrNode *rows = ir_cross_entropy(E->g, z, y->t);
    IrNode *total = ir_reshape(E->g, ir_reduce(E->g, IR_SUM, rows, 0), 0, NULL);
    return v_tensor(E, t_scale(E, total, 1.0 / (double)z->shape[0]));
}

/* rotary(x [T, …, D], base = 1024) → [T, …, D]: the half-truncated rotary embedding of
 * spec S-3/S-4.3 on the last axis, t the index on axis 0 (the middle axes share its
 * angles). With n = D/4 and j = 0..D/2−1:
 *   ω_j = base^(−j/(n−1)) for j < n (ω_0 = 1 if n = 1),   ω_j = 0 for j ≥ n
 *   θ[t, j] = t·ω_j                       (the ROPE_COS / ROPE_SIN tables, [T, D/2])
 *   a = x[…, :D/2],  b = x[…, D/2:]       (halves, not interleaved pairs)
 *   rotary(x) = concat(a cos θ + b sin θ,  b cos θ − a sin θ)    (a rotation by −θ)
 * so the last D/4 features of each half pass unchanged. D must be a multiple of 4. */
static Value *bi_rotary(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 2);
    double base = 1024;
    Value *vb = kwarg(a, "base");
    if (!x || (vb && !num_arg(E, vb, kwloc(a, "base"), "base", &base))) return NULL;
    int nd = x->ndim;
    int64_t T = x->shape[0], D = x->shape[nd - 1];
    if (D % 4 != 0) {
        diag_error(E->D, a->locs[0], "rotary() needs a last axis that is a multiple of 4, got %s", shape_of(E, x));
        return NULL;
    }
    graph_at(E, a->at);
    int64_t half[IR_MAX_DIMS], tab[IR_MAX_DIMS];
    memcpy(half, x->shape, sizeof half);
    half[nd - 1] = D / 2;
    for (int i = 0; i < nd; i++) tab[i] = i == 0 ? T : i == nd - 1 ? D / 2 : 1;
    IrNode *cs = bcast_to(E, ir_reshape(E->g, ir_rope(E->g, IR_ROPE_COS, T, D, base), nd, tab), nd, half);
    IrNode *sn = bcast_to(E, ir_reshape(E->g, ir_rope(E->g, IR_ROPE_SIN, T, D, base), nd, tab), nd, half);
    IrNode *lo = ir_slice(E->g, x, nd - 1, 0, D / 2), *hi = ir_slice(E->g, x, nd - 1, D / 2, D / 2);
    IrNode *lo2 = ir_binary(E->g, IR_ADD, ir_binary(E->g, IR_MUL, lo, cs), ir_binary(E->g, IR_MUL, hi, sn));
    IrNode *hi2 = ir_binary(E->g, IR_SUB, ir_binary(E->g, IR_MUL, hi, cs), ir_binary(E->g, IR_MUL, lo, sn));
    return v_tensor(E, ir_concat(E->g, lo2, hi2, nd - 1));
}

static bool int_kwarg(Elab *E, CallArgs *a, const char *name, int64_t *out) {
    Value *v = kwarg(a, name);
    if (!v) {
        diag_error(E->D, a->at, "%s() needs %s = …", a->name, name);
        return false;
    }
    return v_to_int(E, v, kwloc(a, name), name, out);
}

/* k or v [T, Hk, D] → [T, H, D]: query head h reads head h / (H / Hk) (grouped-query
 * attention); a broadcast, so the gradient of each shared head sums over its group */
static IrNode *repeat_heads(Elab *E, IrNode *kv, int64_t H) {
    int64_t T = kv->shape[0], Hk = kv->shape[1], D = kv->shape[2];
    if (Hk == H) return kv;
    int64_t one[4] = {T, Hk, 1, D}, group[4] = {T, Hk, H / Hk, D}, out[3] = {T, H, D};
    return ir_reshape(E->g, ir_broadcast(E->g, ir_reshape(E->g, kv, 4, one), 4, group), 3, out);
}

static bool attention_shapes(Elab *E, CallArgs *a, IrNode *q, IrNode *k, IrNode *v) {
    bool ok = q->ndim == 3 && k->ndim == 3 && ir_same_shape(k, v) && k->shape[0] == q->shape[0] &&
              k->shape[2] == q->shape[2] && q->shape[1] % k->shape[1] == 0;
    if (!ok)
        diag_error(E->D, a->at, "attention() needs q [T, H, D] and k, v [T, Hkv, D] with Hkv dividing H, got %s, %s, %s",
                   shape_of(E, q), shape_of(E, k), shape_of(E, v));
    return ok;
}

/* The mask's keyword arguments: documents (tokens = i32[T] with eot = N, or neither: one
 * document) and the block window (block = B with window = W in blocks, or neither: every
 * earlier key, as one block of T with a window of 1). */
static bool attention_mask(Elab *E, CallArgs *a, int64_t T, IrNode **tokens, int64_t *eot, int64_t *block,
                           IrNode **window) {
    Value *tok = kwarg(a, "tokens"), *ve = kwarg(a, "eot"), *vb = kwarg(a, "block"), *vw = kwarg(a, "window");
    if (!tok != !ve) {
        diag_error(E->D, a->at, "attention() takes tokens = … and eot = … together (documents), or neither");
        return false;
    }
    if (!vb != !vw) {
        diag_error(E->D, a->at, "attention() takes block = … and window = … together (a sliding window), or neither");
        return false;
    }
    *eot = -1;
    if (tok && (tok->kind != V_TENSOR || tok->t->dtype != IR_I32 || tok->t->ndim != 1 || tok->t->shape[0] != T)) {
        diag_error(E->D, kwloc(a, "tokens"), "attention() needs tokens = an i32[%lld] tensor", (long long)T);
        return false;
    }
    if (tok && !int_kwarg(E, a, "eot", eot)) return false;
    *tokens = tok ? tok->t : ir_iota(E->g, IR_I32, 1, &T, 0);   /* positions: never eot = -1 */
    if (!vb) {
        *block = T;
        *window = ir_const(E->g, 1);
        return true;
    }
    if (!int_kwarg(E, a, "block", block)) return false;
    if (*block < 1 || T % *block != 0) {
        diag_error(E->D, kwloc(a, "block"), "the sequence length %lld is not a multiple of block = %lld",
                   (long long)T, (long long)*block);
        return false;
    }
    IrNode *w = as_tensor(E, vw, kwloc(a, "window"), "the window");
    if (w && w->ndim != 0) diag_error(E->D, kwloc(a, "window"), "the window is a scalar, got %s", shape_of(E, w));
    *window = w && w->ndim == 0 ? w : NULL;
    return *window != NULL;
}

/* attention(q [T, H, D], k, v [T, Hkv, D], scale = S [, tokens = i32[T], eot = N]
 *           [, block = B, window = W]) → [T, H, D]:
 * softmax(scale·q kᵀ) v over the keys the mask allows: causal, within the query's document
 * (tokens and eot) and within its last W blocks of B tokens (block and window). */
static Value *bi_attention(Elab *E, CallArgs *a) {
    IrNode *q = tensor_arg(E, a, 0, 3), *k = tensor_arg(E, a, 1, 3), *v = tensor_arg(E, a, 2, 3);
    if (!q || !k || !v || !attention_shapes(E, a, q, k, v)) return NULL;
    double scale;
    Value *vs = kwarg(a, "scale");
    if (!vs) {
        diag_error(E->D, a->at, "attention() needs scale = …");
        return NULL;
    }
    if (!num_arg(E, vs, kwloc(a, "scale"), "scale", &scale)) return NULL;
    int64_t eot, block;
    IrNode *tokens, *window;
    graph_at(E, a->at);
    if (!attention_mask(E, a, q->shape[0], &tokens, &eot, &block, &window)) return NULL;
    k = repeat_heads(E, k, q->shape[1]);
    v = repeat_heads(E, v, q->shape[1]);
    return v_tensor(E, ir_attention(E->g, q, k, v, tokens, window, block, eot, scale));
}

/* ---- integer features: where, shift, cumsum ---------------------------------------------- */

/* v as a tensor of dtype dt: a tensor of that dtype, or a number (an int for i32) */
static IrNode *typed_arg(Elab *E, Value *v, Loc loc, IrDtype dt, const char *what) {
    if (v->kind == V_TENSOR) {
        if ((v->t->dtype == IR_I32) == (dt == IR_I32)) return v->t;
        diag_error(E->D, loc, "%s must be %s tensor, got %s", what, dt == IR_I32 ? "an i32" : "a float",
                   shape_of(E, v->t));
        return NULL;
    }
    if (dt != IR_I32) return as_tensor(E, v, loc, what);
    if (v->kind != V_INT || v->i < INT32_MIN || v->i > INT32_MAX) {
        diag_error(E->D, loc, "%s must be an int that fits i32, got %s", what, v_describe(E, v));
        return NULL;
    }
    return ir_const_i32(E->g, (int32_t)v->i);
}

/* where(c, a, b): a where c != 0, else b, broadcasting; a and b both i32 or both float.
 * Built as a·m + b·(1 − m) with m = (c != 0): the gradient flows to a masked by m and to b
 * masked by 1 − m. */
static Value *bi_where(Elab *E, CallArgs *a) {
    Value *vc = a->args[0], *va = a->args[1], *vb = a->args[2];
    if (vc->kind != V_TENSOR) {
        diag_error(E->D, a->locs[0], "where() needs a tensor condition, got %s", v_describe(E, vc));
        return NULL;
    }
    bool i32 = (va->kind == V_TENSOR && va->t->dtype == IR_I32) || (vb->kind == V_TENSOR && vb->t->dtype == IR_I32);
    IrDtype dt = i32 ? IR_I32 : IR_F32;
    IrNode *c = vc->t, *x = typed_arg(E, va, a->locs[1], dt, "where()'s second argument");
    IrNode *y = typed_arg(E, vb, a->locs[2], dt, "where()'s third argument");
    if (!x || !y) return NULL;
    graph_at(E, a->at);
    IrNode *m = ir_binary(E->g, IR_NE, c, c->dtype == IR_I32 ? bcast_to(E, ir_const_i32(E->g, 0), c->ndim, c->shape)
                                                              : bcast_to(E, ir_const(E->g, 0), c->ndim, c->shape));
    if ((m->dtype == IR_I32) != i32) m = ir_cast(E->g, m, dt);
    IrNode *one = i32 ? ir_const_i32(E->g, 1) : ir_const(E->g, 1);
    IrNode *xm = t_binary(E, '*', x, m, a->at), *rest = xm ? t_binary(E, '-', one, m, a->at) : NULL;
    IrNode *ym = rest ? t_binary(E, '*', y, rest, a->at) : NULL;
    IrNode *r = ym ? t_binary(E, '+', xm, ym, a->at) : NULL;
    return r ? v_tensor(E, r) : NULL;
}

/* x moved n places along axis (towards higher indices when n > 0), the n places left
 * open holding fill; 0 < |n| < the axis's length */
static IrNode *shift_along(Elab *E, IrNode *x, int axis, int64_t n, IrNode *fill) {
    int64_t L = x->shape[axis], k = n > 0 ? n : -n;
    IrNode *kept = ir_slice(E->g, x, axis, n > 0 ? 0 : k, L - k);
    if (!fill) return ir_pad(E->g, kept, axis, n > 0 ? k : 0, L);
    int64_t shape[IR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[axis] = k;
    IrNode *block = bcast_to(E, fill, x->ndim, shape);
    return n > 0 ? ir_concat(E->g, block, kept, axis) : ir_concat(E->g, kept, block, axis);
}

/* the axis argument i (0 when absent; negative counts from the end) */
static bool axis_arg(Elab *E, CallArgs *a, int i, const IrNode *x, int *axis) {
    int64_t v = 0;
    if (i < a->nargs && !v_to_int(E, a->args[i], a->locs[i], "the axis", &v)) return false;
    if (v < 0) v += x->ndim;
    if (v < 0 || v >= x->ndim) {
        diag_error(E->D, i < a->nargs ? a->locs[i] : a->at, "%s() has no axis %lld for %s", a->name, (long long)v,
                   shape_of(E, x));
        return false;
    }
    *axis = (int)v;
    return true;
}

static IrNode *moved_arg(Elab *E, CallArgs *a) {
    Value *v = a->args[0];
    if (v->kind == V_TENSOR && v->t->ndim >= 1) return v->t;
    diag_error(E->D, a->locs[0], "%s() needs a tensor with at least 1 dimension, got %s", a->name, v_describe(E, v));
    return NULL;
}

/* shift(x, n, fill = 0, axis = 0): x[i - n] along axis, fill where i - n is outside it */
static Value *bi_shift(Elab *E, CallArgs *a) {
    IrNode *x = moved_arg(E, a);
    int64_t n;
    int axis;
    if (!x || !v_to_int(E, a->args[1], a->locs[1], "the shift", &n)) return NULL;
    Value *vf = kwarg(a, "fill"), *va = kwarg(a, "axis");
    CallArgs ax = {.args = &va, .locs = (Loc[]){kwloc(a, "axis")}, .nargs = va ? 1 : 0, .at = a->at, .name = a->name};
    if (!axis_arg(E, &ax, 0, x, &axis)) return NULL;
    if (n <= -x->shape[axis] || n >= x->shape[axis]) {
        diag_error(E->D, a->locs[1], "shift() by %lld needs |n| below the axis length %lld", (long long)n,
                   (long long)x->shape[axis]);
        return NULL;
    }
    if (n == 0) return a->args[0];
    IrNode *fill = NULL;
    if (vf && !(v_is_num(vf) && v_num(vf) == 0)) {
        fill = typed_arg(E, vf, kwloc(a, "fill"), x->dtype == IR_I32 ? IR_I32 : IR_F32, "fill");
        if (!fill) return NULL;
        if (fill->ndim != 0) {
            diag_error(E->D, kwloc(a, "fill"), "fill must be a number, got %s", shape_of(E, fill));
            return NULL;
        }
        if (fill->dtype != x->dtype) fill = ir_cast(E->g, fill, x->dtype);
    }
    graph_at(E, a->at);
    return v_tensor(E, shift_along(E, x, axis, n, fill));
}

/* cumsum(x, axis = 0): running sums along axis, as ⌈log2 L⌉ rounds of x + shift(x, 2^k)
 * (a float's sums are added in that order; the gradient is the reversed running sum) */
static Value *bi_cumsum(Elab *E, CallArgs *a) {
    IrNode *x = moved_arg(E, a);
    Value *va = a->nargs > 1 ? a->args[1] : kwarg(a, "axis");
    Loc loc = a->nargs > 1 ? a->locs[1] : kwloc(a, "axis");
    if (a->nargs > 1 && kwarg(a, "axis")) {
        diag_error(E->D, kwloc(a, "axis"), "%s() got the axis twice", a->name);
        return NULL;
    }
    CallArgs ax = {.args = &va, .locs = &loc, .nargs = va ? 1 : 0, .at = a->at, .name = a->name};
    int axis;
    if (!x || !axis_arg(E, &ax, 0, x, &axis)) return NULL;
    graph_at(E, a->at);
    for (int64_t k = 1; k < x->shape[axis]; k *= 2) x = ir_binary(E->g, IR_ADD, x, shift_along(E, x, axis, k, NULL));
    return v_tensor(E, x);
}

static const Builtin builtins[] = {
    {"min", bi_minmax, 1, 8}, {"max", bi_minmax, 1, 8},
    {"abs", bi_math1, 1, 1}, {"sqrt", bi_math1, 1, 1}, {"exp", bi_math1, 1, 1}, {"log", bi_math1, 1, 1},
    {"floor", bi_math1, 1, 1}, {"ceil", bi_math1, 1, 1}, {"pow", bi_pow, 2, 2},
    {"next_multiple", bi_next_multiple, 2, 2}, {"len", bi_len, 1, 1}, {"range", bi_range, 1, 2},
    {"int", bi_int, 1, 1}, {"float", bi_float, 1, 1}, {"sum", bi_sum, 1, 2},
    {"rms_norm", bi_rms_norm, 1, 1}, {"linear", bi_linear, 2, 2}, {"matmul", bi_matmul, 2, 2},
    {"transpose", bi_transpose, 1, 1}, {"reshape", bi_reshape, 2, 2}, {"relu", bi_unary, 1, 1},
    {"square", bi_unary, 1, 1}, {"sigmoid", bi_unary, 1, 1}, {"tanh", bi_unary, 1, 1}, {"softplus", bi_unary, 1, 1},
    {"erf", bi_unary, 1, 1}, {"silu", bi_gated, 1, 1}, {"gelu", bi_gated, 1, 1}, {"gelu_tanh", bi_gated, 1, 1},
    {"softcap", bi_softcap, 2, 2}, {"cross_entropy", bi_cross_entropy, 2, 2},
    {"rotary", bi_rotary, 1, 1}, {"attention", bi_attention, 3, 3},
    {"mean", bi_reduce, 1, 2}, {"softmax", bi_softmax, 1, 2}, {"log_softmax", bi_softmax, 1, 2},
    {"layer_norm", bi_layer_norm, 1, 3}, {"zeros", bi_filled, 1, 1}, {"ones", bi_filled, 1, 1},
    {"full", bi_filled, 2, 2}, {"iota", bi_iota, 1, 2}, {"eye", bi_eye, 1, 2},
    {"where", bi_where, 3, 3}, {"shift", bi_shift, 2, 2}, {"cumsum", bi_cumsum, 1, 2},
};

int builtin_lookup(const char *name) {
    for (int i = 0; i < (int)(sizeof builtins / sizeof builtins[0]); i++)
        if (strcmp(builtins[i].name, name) == 0) return i;
    return -1;
}

const char *builtin_name(int i) { return builtins[i].name; }

Value *builtin_call(Elab *E, int index, CallArgs *a) {
    const Builtin *b = &builtins[index];
    if (a->nargs < b->min_args || a->nargs > b->max_args) {
        if (b->min_args == b->max_args)
            diag_error(E->D, a->at, "%s() takes %d argument%s, %d given", b->name, b->min_args,
                       b->min_args == 1 ? "" : "s", a->nargs);
        else
            diag_error(E->D, a->at, "%s() takes %d to %d arguments, %d given", b->name, b->min_args, b->max_args,
                       a->nargs);
        return NULL;
    }
    a->name = b->name;
    for (int i = 0; i < a->nargs; i++)
        if (a->args[i]->kind == V_SCHED && b->fn != bi_math1 && b->fn != bi_attention) {
            IrNode *t = as_tensor(E, a->args[i], a->locs[i], "the argument");
            if (!t) return NULL;
            a->args[i] = v_tensor(E, t);
        }
    return b->fn(E, a);
}
