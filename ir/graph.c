/* graph.c — IR nodes, builders with shape/dtype inference, printing. */
#include "ir/ir.h"
#include "base/base.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; IrClass cls; } op_info[] = {
#define X(name, cls, doc) {#name, IRC_##cls},
#include "ir/ops.def"
#undef X
};

const char *ir_op_name(IrOp op) { return op_info[op].name; }
IrClass ir_op_class(IrOp op) { return op_info[op].cls; }

const char *ir_dtype_name(IrDtype t) {
    static const char *names[] = {"f32", "f64", "bf16", "i32"};
    return names[t];
}
int ir_dtype_size(IrDtype t) {
    static const int sizes[] = {4, 8, 2, 4};
    return sizes[t];
}
bool ir_dtype_is_float(IrDtype t) { return t != IR_I32; }

int64_t ir_numel(const IrNode *n) {
    int64_t k = 1;
    for (int i = 0; i < n->ndim; i++) k *= n->shape[i];
    return k;
}

bool ir_same_shape(const IrNode *a, const IrNode *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

IrGraph *ir_graph_new(void) {
    IrGraph *g = xcalloc(1, sizeof *g);
    return g;
}

void ir_graph_free(IrGraph *g) {
    if (!g) return;
    for (int i = 0; i < g->n; i++) {
        free(g->nodes[i]->name);
        free(g->nodes[i]);
    }
    free(g->nodes);
    free(g->outputs);
    free(g->replaces);
    free(g);
}

int ir_add_output(IrGraph *g, IrNode *n) {
    if (g->noutputs == g->cap_outputs) {
        g->cap_outputs = g->cap_outputs ? 2 * g->cap_outputs : 16;
        g->outputs = xrealloc(g->outputs, (size_t)g->cap_outputs * sizeof *g->outputs);
        g->replaces = xrealloc(g->replaces, (size_t)g->cap_outputs * sizeof *g->replaces);
    }
    g->outputs[g->noutputs] = n;
    g->replaces[g->noutputs] = NULL;
    return g->noutputs++;
}

void ir_output_replaces(IrGraph *g, int out, IrNode *leaf) { g->replaces[out] = leaf; }

IrNode *ir_leaf_named(const IrGraph *g, IrOp op, const char *name) {
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i]->op == op && g->nodes[i]->name && !strcmp(g->nodes[i]->name, name)) return g->nodes[i];
    return NULL;
}

static IrNode *new_node(IrGraph *g, IrOp op, IrDtype dt, int ndim, const int64_t *shape) {
    assert(ndim >= 0 && ndim <= IR_MAX_DIMS);
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->nodes = xrealloc(g->nodes, (size_t)g->cap * sizeof *g->nodes);
    }
    IrNode *n = xcalloc(1, sizeof *n);
    n->id = g->n;
    n->op = op;
    n->dtype = dt;
    n->ndim = ndim;
    for (int i = 0; i < ndim; i++) n->shape[i] = shape[i];
    n->src_file = g->cur_file;
    n->src_line = g->cur_line;
    g->nodes[g->n++] = n;
    return n;
}

static void add_input(IrNode *n, IrNode *x) {
    assert(n->nin < 6);
    n->in[n->nin++] = x;
}

static IrDtype promote(IrDtype a, IrDtype b) {
    if (a == IR_F64 || b == IR_F64) return IR_F64;
    if (a == IR_I32 && b == IR_I32) return IR_I32;
    return IR_F32;
}

IrNode *ir_leaf(IrGraph *g, IrOp op, const char *name, IrDtype dt, int ndim, const int64_t *shape) {
    assert(ir_op_class(op) == IRC_LEAF);
    IrNode *n = new_node(g, op, dt, ndim, shape);
    if (name) {
        n->name = xstrdup(name);
    }
    return n;
}

IrNode *ir_const(IrGraph *g, double v) {
    IrNode *n = new_node(g, IR_CONST, IR_F32, 0, NULL);
    n->fattr[0] = v;
    return n;
}

IrNode *ir_const_i32(IrGraph *g, int32_t v) {
    IrNode *n = new_node(g, IR_CONST, IR_I32, 0, NULL);
    n->fattr[0] = v;
    return n;
}

IrNode *ir_rope(IrGraph *g, IrOp op, int64_t T, int64_t D, double base) {
    assert((op == IR_ROPE_COS || op == IR_ROPE_SIN) && D % 4 == 0);
    int64_t shape[2] = {T, D / 2};
    IrNode *n = new_node(g, op, IR_F32, 2, shape);
    n->iattr[0] = D;
    n->fattr[0] = base;
    return n;
}

IrNode *ir_iota(IrGraph *g, IrDtype dt, int ndim, const int64_t *shape, int axis) {
    assert((dt == IR_F32 || dt == IR_I32) && axis >= 0 && axis < ndim);
    IrNode *n = new_node(g, IR_IOTA, dt, ndim, shape);
    n->iattr[0] = axis;
    return n;
}

IrNode *ir_unary(IrGraph *g, IrOp op, IrNode *x) {
    assert(ir_op_class(op) == IRC_UNARY && op != IR_CAST);
    IrNode *n = new_node(g, op, x->dtype == IR_I32 ? IR_F32 : x->dtype, x->ndim, x->shape);
    add_input(n, x);
    return n;
}

IrNode *ir_cast(IrGraph *g, IrNode *x, IrDtype dt) {
    IrNode *n = new_node(g, IR_CAST, dt, x->ndim, x->shape);
    add_input(n, x);
    return n;
}

IrNode *ir_binary(IrGraph *g, IrOp op, IrNode *a, IrNode *b) {
    assert(ir_op_class(op) == IRC_BINARY && ir_same_shape(a, b));
    IrNode *n = new_node(g, op, promote(a->dtype, b->dtype), a->ndim, a->shape);
    add_input(n, a);
    add_input(n, b);
    return n;
}

IrNode *ir_reduce(IrGraph *g, IrOp op, IrNode *x, int axis) {
    assert(ir_op_class(op) == IRC_REDUCE && axis >= 0 && axis < x->ndim);
    IrNode *n = new_node(g, op, x->dtype, x->ndim, x->shape);
    n->shape[axis] = 1;
    n->iattr[0] = axis;
    add_input(n, x);
    return n;
}

IrNode *ir_reshape(IrGraph *g, IrNode *x, int ndim, const int64_t *shape) {
    IrNode *n = new_node(g, IR_RESHAPE, x->dtype, ndim, shape);
    assert(ir_numel(n) == ir_numel(x));
    add_input(n, x);
    return n;
}

IrNode *ir_permute(IrGraph *g, IrNode *x, const int *perm) {
    int64_t shape[IR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[perm[i]];
    IrNode *n = new_node(g, IR_PERMUTE, x->dtype, x->ndim, shape);
    for (int i = 0; i < x->ndim; i++) n->iattr[i] = perm[i];
    add_input(n, x);
    return n;
}

IrNode *ir_slice(IrGraph *g, IrNode *x, int axis, int64_t start, int64_t len) {
    assert(axis >= 0 && axis < x->ndim && start >= 0 && len >= 0 && start + len <= x->shape[axis]);
    IrNode *n = new_node(g, IR_SLICE, x->dtype, x->ndim, x->shape);
    n->shape[axis] = len;
    n->iattr[0] = axis;
    n->iattr[1] = start;
    add_input(n, x);
    return n;
}

IrNode *ir_concat(IrGraph *g, IrNode *a, IrNode *b, int axis) {
    assert(a->ndim == b->ndim && axis >= 0 && axis < a->ndim);
    IrNode *n = new_node(g, IR_CONCAT, promote(a->dtype, b->dtype), a->ndim, a->shape);
    for (int i = 0; i < a->ndim; i++) assert(i == axis || a->shape[i] == b->shape[i]);
    n->shape[axis] += b->shape[axis];
    n->iattr[0] = axis;
    add_input(n, a);
    add_input(n, b);
    return n;
}

bool ir_broadcastable(const IrNode *x, int ndim, const int64_t *shape) {
    if (x->ndim > ndim) return false;
    for (int i = 0; i < x->ndim; i++) {
        int64_t xs = x->shape[x->ndim - 1 - i], s = shape[ndim - 1 - i];
        if (xs != s && xs != 1) return false;
    }
    return true;
}

IrNode *ir_broadcast(IrGraph *g, IrNode *x, int ndim, const int64_t *shape) {
    assert(ir_broadcastable(x, ndim, shape));
    IrNode *n = new_node(g, IR_BROADCAST, x->dtype, ndim, shape);
    add_input(n, x);
    return n;
}

IrNode *ir_gather(IrGraph *g, IrNode *table, IrNode *idx) {
    assert(idx->dtype == IR_I32 && table->ndim >= 1 && idx->ndim + table->ndim - 1 <= IR_MAX_DIMS);
    int64_t shape[IR_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < idx->ndim; i++) shape[nd++] = idx->shape[i];
    for (int i = 1; i < table->ndim; i++) shape[nd++] = table->shape[i];
    IrNode *n = new_node(g, IR_GATHER, table->dtype, nd, shape);
    add_input(n, table);
    add_input(n, idx);
    return n;
}

IrNode *ir_matmul_t(IrGraph *g, IrNode *a, IrNode *b, bool a_transposed, bool b_transposed) {
    assert(a->ndim >= 2 && a->ndim == b->ndim);
    int nd = a->ndim;
    int64_t M = a_transposed ? a->shape[nd - 1] : a->shape[nd - 2];
    int64_t K = a_transposed ? a->shape[nd - 2] : a->shape[nd - 1];
    int64_t N = b_transposed ? b->shape[nd - 2] : b->shape[nd - 1];
    assert(K == (b_transposed ? b->shape[nd - 1] : b->shape[nd - 2]));
    for (int i = 0; i < nd - 2; i++) assert(a->shape[i] == b->shape[i]);
    IrNode *n = new_node(g, IR_MATMUL, promote(a->dtype, b->dtype), nd, a->shape);
    n->shape[nd - 2] = M;
    n->shape[nd - 1] = N;
    n->iattr[0] = b_transposed;
    n->iattr[1] = a_transposed;
    add_input(n, a);
    add_input(n, b);
    return n;
}

IrNode *ir_matmul(IrGraph *g, IrNode *a, IrNode *b, bool b_transposed) {
    return ir_matmul_t(g, a, b, false, b_transposed);
}

IrNode *ir_pad(IrGraph *g, IrNode *x, int axis, int64_t start, int64_t total) {
    assert(axis >= 0 && axis < x->ndim && start >= 0 && start + x->shape[axis] <= total);
    IrNode *n = new_node(g, IR_PAD, x->dtype, x->ndim, x->shape);
    n->shape[axis] = total;
    n->iattr[0] = axis;
    n->iattr[1] = start;
    add_input(n, x);
    return n;
}

IrNode *ir_scatter_add(IrGraph *g, IrNode *rows, IrNode *idx, int64_t V) {
    assert(idx->dtype == IR_I32 && rows->ndim >= idx->ndim);
    for (int i = 0; i < idx->ndim; i++) assert(rows->shape[i] == idx->shape[i]);
    int64_t shape[IR_MAX_DIMS];
    int nd = 0;
    shape[nd++] = V;
    for (int i = idx->ndim; i < rows->ndim; i++) shape[nd++] = rows->shape[i];
    IrNode *n = new_node(g, IR_SCATTER_ADD, rows->dtype, nd, shape);
    n->iattr[0] = V;
    add_input(n, rows);
    add_input(n, idx);
    return n;
}

IrNode *ir_attention_bwd(IrGraph *g, const IrNode *fwd, IrNode *dout) {
    assert(fwd->op == IR_ATTENTION && ir_same_shape(fwd, dout));
    int64_t shape[4] = {3, fwd->shape[0], fwd->shape[1], fwd->shape[2]};
    IrNode *n = new_node(g, IR_ATTENTION_BWD, fwd->dtype, 4, shape);
    n->iattr[0] = fwd->iattr[0];
    n->iattr[1] = fwd->iattr[1];
    n->fattr[0] = fwd->fattr[0];
    for (int i = 0; i < 5; i++) add_input(n, fwd->in[i]);
    add_input(n, dout);
    return n;
}

IrNode *ir_ce_bwd(IrGraph *g, IrNode *logits, IrNode *targets, IrNode *drows) {
    assert(logits->ndim == 2 && drows->ndim == 1 && drows->shape[0] == logits->shape[0]);
    IrNode *n = new_node(g, IR_CE_BWD, logits->dtype, 2, logits->shape);
    add_input(n, logits);
    add_input(n, targets);
    add_input(n, drows);
    return n;
}

IrNode *ir_attention(IrGraph *g, IrNode *q, IrNode *k, IrNode *v, IrNode *tokens,
                     IrNode *window, int64_t block, int64_t eot, double scale) {
    assert(q->ndim == 3 && ir_same_shape(q, k) && ir_same_shape(q, v));
    assert(tokens->ndim == 1 && tokens->shape[0] == q->shape[0] && window->ndim == 0);
    IrNode *n = new_node(g, IR_ATTENTION, promote(q->dtype, v->dtype), 3, q->shape);
    n->iattr[0] = block;
    n->iattr[1] = eot;
    n->fattr[0] = scale;
    add_input(n, q);
    add_input(n, k);
    add_input(n, v);
    add_input(n, tokens);
    add_input(n, window);
    return n;
}

IrNode *ir_cross_entropy(IrGraph *g, IrNode *logits, IrNode *targets) {
    assert(logits->ndim == 2 && targets->ndim == 1 && targets->shape[0] == logits->shape[0]);
    IrNode *n = new_node(g, IR_CROSS_ENTROPY, logits->dtype, 1, logits->shape);
    add_input(n, logits);
    add_input(n, targets);
    return n;
}

const char *ir_shape_str(int ndim, const int64_t *shape, char *buf, int len) {
    int k = snprintf(buf, (size_t)len, "[");
    for (int i = 0; i < ndim && k < len; i++)
        k += snprintf(buf + k, (size_t)(len - k), "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < len) snprintf(buf + k, (size_t)(len - k), "]");
    return buf;
}

/* One op a line: %id = OP(inputs) attrs : dtype[shape]   # file:line */
void ir_print(const IrGraph *g, FILE *out) {
    char sb[128];
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = g->nodes[i];
        fprintf(out, "%%%d = %s(", n->id, ir_op_name(n->op));
        for (int j = 0; j < n->nin; j++) fprintf(out, "%s%%%d", j ? ", " : "", n->in[j]->id);
        fprintf(out, ")");
        if (n->name) fprintf(out, " \"%s\"", n->name);
        switch (n->op) {
        case IR_CONST: fprintf(out, " %.17g", n->fattr[0]); break;
        case IR_SUM: case IR_MAX: case IR_IOTA: fprintf(out, " axis=%lld", (long long)n->iattr[0]); break;
        case IR_SLICE: fprintf(out, " axis=%lld start=%lld", (long long)n->iattr[0], (long long)n->iattr[1]); break;
        case IR_CONCAT: fprintf(out, " axis=%lld", (long long)n->iattr[0]); break;
        case IR_MATMUL:
            if (n->iattr[1]) fprintf(out, " a^T");
            if (n->iattr[0]) fprintf(out, " b^T");
            break;
        case IR_PAD: fprintf(out, " axis=%lld start=%lld", (long long)n->iattr[0], (long long)n->iattr[1]); break;
        case IR_ATTENTION:
        case IR_ATTENTION_BWD:
            fprintf(out, " block=%lld eot=%lld scale=%g", (long long)n->iattr[0], (long long)n->iattr[1], n->fattr[0]);
            break;
        case IR_PERMUTE:
            fprintf(out, " perm=");
            for (int j = 0; j < n->ndim; j++) fprintf(out, "%s%lld", j ? "," : "", (long long)n->iattr[j]);
            break;
        default: break;
        }
        fprintf(out, " : %s%s", ir_dtype_name(n->dtype), ir_shape_str(n->ndim, n->shape, sb, sizeof sb));
        if (n->src_file) fprintf(out, "   # %s:%d", n->src_file, n->src_line);
        fprintf(out, "\n");
    }
    for (int i = 0; i < g->noutputs; i++) fprintf(out, "output %d = %%%d\n", i, g->outputs[i]->id);
}
