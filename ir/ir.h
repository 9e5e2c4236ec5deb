/* ir.h — the graph IR: a static-shape SSA dataflow graph of tensor values.
 *
 *   ops.def     the primitive op set (X-macro table)
 *   graph.c     nodes, builders with shape/dtype inference, printing
 *   autodiff.c  reverse-mode differentiation, one rule per op
 *   cse.c       common-subexpression elimination
 *   dce.c       dead-code elimination
 *   siblings.c  one product for products of one operand with adjacent pieces of another
 *   chunk.c     large products consumed row by row computed in chunks of rows
 *   verify.c    the invariant checker
 *   pipeline.c  the passes in order (ir_optimize), checked between passes
 *
 * Ownership: an IrGraph owns its nodes and their name strings; ir_graph_free() releases
 * them. Builders assert their shape preconditions: the front end checks user programs
 * and reports located errors before it calls them, so a failed assert is a gptc bug. */
#ifndef GPTC_IR_H
#define GPTC_IR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define IR_MAX_DIMS 6

typedef enum { IR_F32, IR_F64, IR_BF16, IR_I32, IR_NDTYPES } IrDtype;

typedef enum {
#define X(name, cls, doc) IR_##name,
#include "ir/ops.def"
#undef X
    IR_NOPS
} IrOp;

typedef enum { IRC_LEAF, IRC_UNARY, IRC_BINARY, IRC_REDUCE, IRC_MOVE, IRC_GATHER, IRC_MATMUL,
               IRC_FUSED } IrClass;

typedef struct IrNode IrNode;
struct IrNode {
    int id;                       /* index in IrGraph.nodes: inputs always have smaller ids */
    IrOp op;
    IrDtype dtype;
    int ndim;
    int64_t shape[IR_MAX_DIMS];
    IrNode *in[6];
    int nin;
    int64_t iattr[IR_MAX_DIMS];
    double fattr[2];
    char *name;                   /* LEAF names; NULL otherwise */
    const char *src_file;         /* model-file location that created it (not owned) */
    int src_line;
};

typedef struct {
    IrNode **nodes;
    int n, cap;
    IrNode **outputs;             /* what the program computes: loss, gradients, probes … */
    IrNode **replaces;            /* by output: the leaf whose value it replaces after each run
                                   * (a new parameter or optimizer state), or NULL; a fused
                                   * backend may then compute it in that leaf's memory */
    int noutputs, cap_outputs;
    const char *cur_file;         /* location stamped on new nodes */
    int cur_line;
} IrGraph;

const char *ir_op_name(IrOp op);
IrClass ir_op_class(IrOp op);
const char *ir_dtype_name(IrDtype t);
int ir_dtype_size(IrDtype t);
bool ir_dtype_is_float(IrDtype t);
int64_t ir_numel(const IrNode *n);
bool ir_same_shape(const IrNode *a, const IrNode *b);

IrGraph *ir_graph_new(void);
void ir_graph_free(IrGraph *g);

IrNode *ir_leaf(IrGraph *g, IrOp op, const char *name, IrDtype dt, int ndim, const int64_t *shape);
IrNode *ir_const(IrGraph *g, double v);
IrNode *ir_const_i32(IrGraph *g, int32_t v);   /* an i32 CONST; the value in fattr[0] */
IrNode *ir_rope(IrGraph *g, IrOp op, int64_t T, int64_t D, double base);
IrNode *ir_iota(IrGraph *g, IrDtype dt, int ndim, const int64_t *shape, int axis);
IrNode *ir_unary(IrGraph *g, IrOp op, IrNode *x);
IrNode *ir_cast(IrGraph *g, IrNode *x, IrDtype dt);
IrNode *ir_binary(IrGraph *g, IrOp op, IrNode *a, IrNode *b);
IrNode *ir_reduce(IrGraph *g, IrOp op, IrNode *x, int axis);
IrNode *ir_reshape(IrGraph *g, IrNode *x, int ndim, const int64_t *shape);
IrNode *ir_permute(IrGraph *g, IrNode *x, const int *perm);
IrNode *ir_slice(IrGraph *g, IrNode *x, int axis, int64_t start, int64_t len);
IrNode *ir_concat(IrGraph *g, IrNode *a, IrNode *b, int axis);
IrNode *ir_broadcast(IrGraph *g, IrNode *x, int ndim, const int64_t *shape);
IrNode *ir_gather(IrGraph *g, IrNode *table, IrNode *idx);
IrNode *ir_matmul(IrGraph *g, IrNode *a, IrNode *b, bool b_transposed);
IrNode *ir_matmul_t(IrGraph *g, IrNode *a, IrNode *b, bool a_transposed, bool b_transposed);
IrNode *ir_pad(IrGraph *g, IrNode *x, int axis, int64_t start, int64_t total);
IrNode *ir_scatter_add(IrGraph *g, IrNode *rows, IrNode *idx, int64_t V);
IrNode *ir_attention_bwd(IrGraph *g, const IrNode *fwd, IrNode *dout);
IrNode *ir_ce_bwd(IrGraph *g, IrNode *logits, IrNode *targets, IrNode *drows);
IrNode *ir_attention(IrGraph *g, IrNode *q, IrNode *k, IrNode *v, IrNode *tokens,
                     IrNode *window, int64_t block, int64_t eot, double scale);
IrNode *ir_cross_entropy(IrGraph *g, IrNode *logits, IrNode *targets);

int ir_add_output(IrGraph *g, IrNode *n);   /* returns its index in outputs */
/* Output out replaces leaf after each run: the caller reads the output and stores it into
 * the leaf before the next run, so the leaf's old value is not needed once the output is
 * computed (see IrGraph.replaces). */
void ir_output_replaces(IrGraph *g, int out, IrNode *leaf);
/* The first leaf of kind op (INPUT, PARAM, SCALAR) with this name, or NULL. */
IrNode *ir_leaf_named(const IrGraph *g, IrOp op, const char *name);

/* ---- autodiff.c ---- */
/* Appends the backward graph of the scalar `out` to g: grads[i] = d out / d wrt[i]
 * (a zero tensor when wrt[i] does not influence out). 0, or -1 with a message. */
int ir_autodiff(IrGraph *g, IrNode *out, IrNode *const *wrt, int nwrt, IrNode **grads, char *err, size_t errlen);
bool ir_autodiff_has_rule(IrOp op);

/* ---- passes: verify.c cse.c dce.c pipeline.c ---- */
/* Checks the invariants every pass keeps (ids topological, shapes and attributes as the
 * builders make them); 0, or -1 with the first violation in err. */
int ir_verify(const IrGraph *g, char *err, size_t errlen);
/* Merges equal nodes (same op, attributes and inputs); outputs are redirected. Returns
 * the number of nodes merged. */
int ir_cse(IrGraph *g);
/* Removes nodes no output depends on (PARAM and INPUT leaves are kept); renumbers ids.
 * Returns the number of nodes removed. */
int ir_dce(IrGraph *g);
/* Turns MATMULs of the same a whose b are adjacent row ranges of one node into one
 * product of the union (a view of that node) and a SLICE of it per original product, in
 * place (siblings.c); keeps ids topological. Returns the number of products removed. */
int ir_merge_siblings(IrGraph *g);
/* verify → cse → verify → siblings → verify → dce → verify; with GPTC_DUMP_IR set,
 * prints the graph after every pass to stderr. 0, or -1 with a message. */
int ir_optimize(IrGraph *g, char *err, size_t errlen);

/* ---- chunk.c ---- */
/* Every 2-D MATMUL [M, N] (a not transposed) whose output is consumed row-locally down to
 * per-row results (at most 16 values a row) and whose M exceeds a chunk's rows — max_rows,
 * and at most max_elems / N when max_elems > 0, but no fewer than M / 64: every chunk
 * repeats the chain, so their count is bounded — becomes chunks of that many rows, each
 * followed by its rows of the chain, with the per-row results concatenated; later readers
 * are unchanged.
 * Run after ir_dce (a dead reader counts); leaves unused operands to ir_dce; keeps ids
 * topological. Returns the number of products chunked. */
int ir_chunk_rows(IrGraph *g, int64_t max_rows, int64_t max_elems);

/* Can x be broadcast to shape (numpy rules, trailing axes aligned)? */
bool ir_broadcastable(const IrNode *x, int ndim, const int64_t *shape);

/* "[4, 64, 64]" into buf */
const char *ir_shape_str(int ndim, const int64_t *shape, char *buf, int len);
void ir_print(const IrGraph *g, FILE *out);

#endif
