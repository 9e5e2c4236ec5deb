/* builtins_nn.c — tensor builtins composed of primitive graph ops: reductions over axes
 * (sum, mean, max, min), softmax and log_softmax, layer_norm, constant tensors (zeros,
 * ones, full, iota, eye) that need no parameter, and where, shift and cumsum over integer or
 * float tensors. Every one is a handful of IR nodes, so the
 * fused backends compile them like any other chain and autodiff differentiates them by the
 * primitives' rules. */
#include "frontend/elab.h"

#include <string.h>

/* ---- arguments ---------------------------------------------------------------------------- */

/* An axis of a tensor of ndim axes (negative counts from the end) → [0, ndim). */
static bool axis_value(Elab *E, const Value *v, Loc loc, int ndim, int *out) {
    int64_t k;
    if (!v_to_int(E, v, loc, "an axis", &k)) return false;
    if (k < -ndim || k >= ndim) {
        diag_error(E->D, loc, "axis %lld is out of range for a tensor of %d dimension%s", (long long)k, ndim,
                   ndim == 1 ? "" : "s");
        return false;
    }
    *out = (int)(k < 0 ? k + ndim : k);
    return true;
}

/* The axis argument (positional argument `pos`, or axis = …): an integer or a list of
 * integers, marked in axes[]; absent → dflt (-1: every axis). */
static bool axes_arg(Elab *E, CallArgs *a, int pos, int ndim, int dflt, bool *axes) {
    Value *v = a->nargs > pos ? a->args[pos] : kwarg(a, "axis");
    Loc loc = a->nargs > pos ? a->locs[pos] : kwloc(a, "axis");
    if (a->nargs > pos && kwarg(a, "axis")) {
        diag_error(E->D, kwloc(a, "axis"), "%s() got the axis twice", a->name);
        return false;
    }
    memset(axes, 0, sizeof(bool) * IR_MAX_DIMS);
    if (!v) {
        for (int i = 0; i < ndim; i++) axes[i] = dflt < 0 || i == dflt;
        return true;
    }
    int n = v->kind == V_LIST ? v->n : 1;
    for (int i = 0; i < n; i++) {
        int k;
        if (!axis_value(E, v->kind == V_LIST ? v->items[i] : v, loc, ndim, &k)) return false;
        if (axes[k]) {
            diag_error(E->D, loc, "axis %d is given twice", k);
            return false;
        }
        axes[k] = true;
    }
    return true;
}

/* One axis (positional argument `pos`, or axis = …), dflt when absent. */
static bool one_axis(Elab *E, CallArgs *a, int pos, int ndim, int dflt, int *axis) {
    bool axes[IR_MAX_DIMS];
    if (!axes_arg(E, a, pos, ndim, dflt, axes)) return false;
    int n = 0;
    for (int i = 0; i < ndim; i++)
        if (axes[i]) *axis = i, n++;
    if (n != 1) diag_error(E->D, a->at, "%s() takes one axis", a->name);
    return n == 1;
}

/* A shape: a positive integer n ([n]) or a list of them. */
static bool shape_arg(Elab *E, const Value *v, Loc loc, int *ndim, int64_t *shape) {
    int n = v->kind == V_LIST ? v->n : 1;
    if (n > IR_MAX_DIMS) {
        diag_error(E->D, loc, "a shape has at most %d dimensions", IR_MAX_DIMS);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!v_to_int(E, v->kind == V_LIST ? v->items[i] : v, loc, "a dimension", &shape[i])) return false;
        if (shape[i] <= 0) {
            diag_error(E->D, loc, "dimensions must be positive, got %lld", (long long)shape[i]);
            return false;
        }
    }
    *ndim = n;
    return shape_check_numel(E, n, shape, loc);
}

static bool flag_kwarg(Elab *E, CallArgs *a, const char *name, bool *out) {
    Value *v = kwarg(a, name);
    if (!v) return true;
    if (v->kind != V_BOOL) {
        diag_error(E->D, kwloc(a, name), "%s must be true or false, got %s", name, v_describe(E, v));
        return false;
    }
    *out = v->i != 0;
    return true;
}

/* ---- reductions ----------------------------------------------------------------------------- */

/* op (SUM or MAX) over the marked axes, each kept as size 1 (over a size-1 axis, a copy) */
static IrNode *reduce_kept(Elab *E, IrOp op, IrNode *x, const bool *axes) {
    for (int i = 0; i < x->ndim; i++)
        if (axes[i] && x->shape[i] > 1) x = ir_reduce(E->g, op, x, i);
    return x;
}

/* x's shape without the marked axes */
static IrNode *drop_axes(Elab *E, IrNode *x, const bool *axes) {
    int64_t shape[IR_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++)
        if (!axes[i]) shape[nd++] = x->shape[i];
    return nd == x->ndim ? x : ir_reshape(E->g, x, nd, shape);
}

/* sum/mean/max/min(x, axis = every axis, keepdim = false): a float tensor reduced over one
 * axis or a list of axes; max's gradient goes to every element equal to the maximum. */
Value *bi_reduce(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 0);
    bool axes[IR_MAX_DIMS], keep = false;
    if (!x || !axes_arg(E, a, 1, x->ndim, -1, axes) || !flag_kwarg(E, a, "keepdim", &keep)) return NULL;
    graph_at(E, a->at);
    bool is_min = !strcmp(a->name, "min"), is_max = !strcmp(a->name, "max");
    IrNode *r;
    if (is_max || is_min) {
        r = reduce_kept(E, IR_MAX, is_min ? ir_unary(E->g, IR_NEG, x) : x, axes);
        if (is_min) r = ir_unary(E->g, IR_NEG, r);
    } else {
        r = reduce_kept(E, IR_SUM, x, axes);
        int64_t count = 1;
        for (int i = 0; i < x->ndim; i++)
            if (axes[i]) count *= x->shape[i];
        if (!strcmp(a->name, "mean") && count > 1) r = t_scale(E, r, 1.0 / (double)count);
    }
    return v_tensor(E, keep ? r : drop_axes(E, r, axes));
}

/* softmax(x, axis = -1) = exp(x − m) / Σ exp(x − m), log_softmax(x, axis = -1) =
 * (x − m) − log Σ exp(x − m), with m the maximum along the axis (no overflow at any x) */
Value *bi_softmax(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 1);
    int axis;
    if (!x || !one_axis(E, a, 1, x->ndim, x->ndim - 1, &axis)) return NULL;
    graph_at(E, a->at);
    IrGraph *g = E->g;
    IrNode *z = x;
    if (x->shape[axis] > 1) z = ir_binary(g, IR_SUB, x, bcast_to(E, ir_reduce(g, IR_MAX, x, axis), x->ndim, x->shape));
    IrNode *e = ir_unary(g, IR_EXP, z);
    IrNode *s = x->shape[axis] > 1 ? ir_reduce(g, IR_SUM, e, axis) : e;
    if (!strcmp(a->name, "softmax")) return v_tensor(E, ir_binary(g, IR_DIV, e, bcast_to(E, s, x->ndim, x->shape)));
    return v_tensor(E, ir_binary(g, IR_SUB, z, bcast_to(E, ir_unary(g, IR_LOG, s), x->ndim, x->shape)));
}

/* layer_norm(x, w, b, eps = 1e-5) over the last axis: (x − μ) / sqrt(σ² + eps), σ² the
 * biased variance, then times w and plus b when given (each broadcast against x) */
Value *bi_layer_norm(Elab *E, CallArgs *a) {
    IrNode *x = tensor_arg(E, a, 0, 1);
    IrNode *w = a->nargs > 1 ? tensor_arg(E, a, 1, 0) : NULL, *b = a->nargs > 2 ? tensor_arg(E, a, 2, 0) : NULL;
    double eps = 1e-5;
    Value *ve = kwarg(a, "eps");
    if (!x || (a->nargs > 1 && !w) || (a->nargs > 2 && !b)) return NULL;
    if (ve && !num_arg(E, ve, kwloc(a, "eps"), "eps", &eps)) return NULL;
    if (!(eps >= 0)) {
        diag_error(E->D, kwloc(a, "eps"), "eps must not be negative");
        return NULL;
    }
    graph_at(E, a->at);
    IrGraph *g = E->g;
    int last = x->ndim - 1;
    double inv_n = 1.0 / (double)x->shape[last];
    IrNode *mu = bcast_to(E, t_scale(E, ir_reduce(g, IR_SUM, x, last), inv_n), x->ndim, x->shape);
    IrNode *d = ir_binary(g, IR_SUB, x, mu);
    IrNode *var = t_scale(E, ir_reduce(g, IR_SUM, ir_unary(g, IR_SQUARE, d), last), inv_n);
    IrNode *y = ir_binary(g, IR_MUL, d, bcast_to(E, ir_unary(g, IR_RSQRT, t_add_const(E, var, eps)), x->ndim, x->shape));
    if (w && !(y = t_binary(E, '*', y, w, a->locs[1]))) return NULL;
    if (b && !(y = t_binary(E, '+', y, b, a->locs[2]))) return NULL;
    return v_tensor(E, y);
}

/* ---- constant tensors --------------------------------------------------------------------- */

/* zeros(shape), ones(shape), full(shape, v): f32 tensors of one value */
Value *bi_filled(Elab *E, CallArgs *a) {
    int nd;
    int64_t shape[IR_MAX_DIMS];
    double v = !strcmp(a->name, "ones") ? 1 : 0;
    if (!shape_arg(E, a->args[0], a->locs[0], &nd, shape)) return NULL;
    if (!strcmp(a->name, "full") && !num_arg(E, a->args[1], a->locs[1], "the value", &v)) return NULL;
    graph_at(E, a->at);
    return v_tensor(E, bcast_to(E, ir_const(E->g, v), nd, shape));
}

/* iota(shape, axis = 0): f32, each element's index along the axis (iota(4) = [0, 1, 2, 3]) */
Value *bi_iota(Elab *E, CallArgs *a) {
    int nd, axis;
    int64_t shape[IR_MAX_DIMS];
    if (!shape_arg(E, a->args[0], a->locs[0], &nd, shape) || !one_axis(E, a, 1, nd, 0, &axis)) return NULL;
    if (shape[axis] > (1 << 24)) {
        diag_error(E->D, a->locs[0], "iota() counts to %lld, past the integers f32 holds exactly (2^24)",
                   (long long)shape[axis]);
        return NULL;
    }
    graph_at(E, a->at);
    return v_tensor(E, ir_iota(E->g, IR_F32, nd, shape, axis));
}

/* eye(n) or eye(n, m): f32 [n, m] with ones where row = column */
Value *bi_eye(Elab *E, CallArgs *a) {
    int64_t shape[2];
    for (int i = 0; i < 2; i++) {
        Value *v = a->args[i < a->nargs ? i : 0];
        Loc loc = a->locs[i < a->nargs ? i : 0];
        if (!v_to_int(E, v, loc, "a dimension", &shape[i])) return NULL;
        if (shape[i] <= 0 || shape[i] > (1 << 24)) {
            diag_error(E->D, loc, "eye() needs dimensions from 1 to 2^24, got %lld", (long long)shape[i]);
            return NULL;
        }
    }
    if (!shape_check_numel(E, 2, shape, a->at)) return NULL;
    graph_at(E, a->at);
    IrNode *rows = ir_iota(E->g, IR_F32, 2, shape, 0), *cols = ir_iota(E->g, IR_F32, 2, shape, 1);
    return v_tensor(E, ir_binary(E->g, IR_EQ, rows, cols));
}

/* ---- selection and running sums: where, shift, cumsum (integer or float) ------------------ */

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
Value *bi_where(Elab *E, CallArgs *a) {
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

static IrNode *moved_arg(Elab *E, CallArgs *a) {
    Value *v = a->args[0];
    if (v->kind == V_TENSOR && v->t->ndim >= 1) return v->t;
    diag_error(E->D, a->locs[0], "%s() needs a tensor with at least 1 dimension, got %s", a->name, v_describe(E, v));
    return NULL;
}

/* shift(x, n, fill = 0, axis = 0): x[i - n] along axis, fill where i - n is outside it */
Value *bi_shift(Elab *E, CallArgs *a) {
    IrNode *x = moved_arg(E, a);
    int64_t n;
    int axis;
    if (!x || !v_to_int(E, a->args[1], a->locs[1], "the shift", &n)) return NULL;
    Value *vf = kwarg(a, "fill");
    if (!one_axis(E, a, 2, x->ndim, 0, &axis)) return NULL;   /* axis = … only: shift takes 2 arguments */
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
Value *bi_cumsum(Elab *E, CallArgs *a) {
    IrNode *x = moved_arg(E, a);
    int axis;
    if (!x || !one_axis(E, a, 1, x->ndim, 0, &axis)) return NULL;
    graph_at(E, a->at);
    for (int64_t k = 1; k < x->shape[axis]; k *= 2) x = ir_binary(E->g, IR_ADD, x, shift_along(E, x, axis, k, NULL));
    return v_tensor(E, x);
}
