/* verify.c — invariants of the graph, checked between passes in the pipeline and tests:
 * ids are positions, each op has its number of inputs, inputs are earlier nodes of the
 * same graph, every dimension is positive, binary ops see operands of their own shape,
 * unary ops keep the shape, a reshape keeps the element count, and every output is a node
 * of the graph. */
#include "ir/ir.h"

#include <string.h>

static int arity(IrOp op) {
    switch (ir_op_class(op)) {
    case IRC_LEAF: return 0;
    case IRC_UNARY: case IRC_REDUCE: return 1;
    case IRC_BINARY: case IRC_GATHER: case IRC_MATMUL: return 2;
    case IRC_MOVE: return op == IR_CONCAT ? 2 : 1;
    case IRC_FUSED:
        return op == IR_ATTENTION ? 5 : op == IR_ATTENTION_BWD ? 6 : op == IR_CE_BWD ? 3 : 2;
    }
    return -1;
}

static int fail(char *err, size_t len, const IrNode *n, const char *what) {
    snprintf(err, len, "node %%%d (%s): %s", n->id, ir_op_name(n->op), what);
    return -1;
}

int ir_verify(const IrGraph *g, char *err, size_t errlen) {
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = g->nodes[i];
        if (n->id != i) return fail(err, errlen, n, "id is not its position");
        if (n->nin != arity(n->op)) return fail(err, errlen, n, "wrong number of inputs");
        for (int j = 0; j < n->nin; j++)
            if (!n->in[j] || n->in[j]->id >= i || g->nodes[n->in[j]->id] != n->in[j])
                return fail(err, errlen, n, "an input is not an earlier node of this graph");
        for (int d = 0; d < n->ndim; d++)
            if (n->shape[d] <= 0) return fail(err, errlen, n, "a dimension is not positive");
        if (ir_op_class(n->op) == IRC_BINARY && (!ir_same_shape(n, n->in[0]) || !ir_same_shape(n, n->in[1])))
            return fail(err, errlen, n, "elementwise operands of different shapes");
        if (ir_op_class(n->op) == IRC_UNARY && !ir_same_shape(n, n->in[0]))
            return fail(err, errlen, n, "unary op changes the shape");
        if (n->op == IR_RESHAPE && ir_numel(n) != ir_numel(n->in[0]))
            return fail(err, errlen, n, "reshape changes the number of elements");
    }
    for (int i = 0; i < g->noutputs; i++)
        if (!g->outputs[i] || g->outputs[i]->id >= g->n || g->nodes[g->outputs[i]->id] != g->outputs[i]) {
            snprintf(err, errlen, "output %d is not a node of this graph", i);
            return -1;
        }
    return 0;
}
