/* chunk.c — row chunking of large products (ir_chunk_rows).
 *
 * A product P = a · b, a [M, K] (not given transposed), P [M, N], whose output is consumed
 * row by row until the rows are reduced to a few values each, never needs all of P at once.
 * Its *row region* R is P and, transitively, every consumer of a node of R that is
 * row-local: each output row r reads row r of its R operands and of its other operands,
 * which are row-aligned ([M, …]; a broadcast across rows counts) and not computed from P:
 *   - unary and binary ops;
 *   - SUM and MAX over an axis other than the rows';
 *   - RESHAPE keeping M leading, BROADCAST of the same rank, SLICE, PAD and CONCAT along
 *     another axis, PERMUTE keeping the rows first;
 *   - CROSS_ENTROPY and CE_BWD (every operand is per row: logits, targets, row gradients).
 * Products, attention, gathers and reductions over the rows end the region. Its *exits* are
 * the nodes of R read by a node outside R or by an output. When every exit holds at most
 * CHUNK_ROW_VALUES values a row, and P more (N > CHUNK_ROW_VALUES), R becomes C chunks of
 * at most `rows` rows: chunk c is  a[c·rows : …] · b  and the chain of R on it, with every other
 * operand sliced alike (a row slice of a broadcast across rows is the smaller broadcast);
 * each exit becomes the CONCAT of its chunks along the rows, which the readers of the
 * exit read instead. The maths is that of the unchunked graph, value by value.
 *
 * Batched products (rank > 2) and products of a transposed a are left alone: their rows
 * are no leading range of a.
 *
 * Order. The chunks are placed where P was, in turn (chunk 0's slices, product and
 * chain, then chunk 1's …), the concatenations after them, so in the fused plan
 * (codegen/memplan.c) chunk c's product dies before chunk c+1's is written and all of
 * them share one piece of memory; a node outside R that a chunk reads but that came
 * after P moves up with what it reads (a depth-first pass keeps the ids topological).
 * The nodes of R are freed; operands left unused (a broadcast the chunks now take in
 * pieces) are left to ir_dce. A node that reads R counts as a consumer even when no
 * output needs it: run the pass after DCE. */
#include "ir/ir.h"
#include "base/base.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_ROW_VALUES 16   /* values per row an exit may hold: per-row results */
#define CHUNK_MAX 64          /* chunks of one product at most: each repeats the chain, so the
                               * graph grows with their count (rows then exceed max_rows) */

/* Does n, which reads a node of R, keep rows aligned (row r from rows r of its inputs)? */
static bool row_local(const IrNode *n, const unsigned char *in_r, const unsigned char *from_p, int64_t M)
{
    if (n->ndim < 1 || n->shape[0] != M) return false;
    for (int j = 0; j < n->nin; j++) {
        const IrNode *x = n->in[j];
        if (in_r[x->id]) continue;
        if (from_p[x->id] || x->ndim < 1 || x->shape[0] != M) return false;
    }
    switch (ir_op_class(n->op)) {
    case IRC_UNARY: case IRC_BINARY: return true;
    case IRC_REDUCE: return n->iattr[0] >= 1;
    case IRC_MOVE:
        switch (n->op) {
        case IR_RESHAPE: return true;                              /* M leading on both sides */
        case IR_BROADCAST: return n->ndim == n->in[0]->ndim;       /* else the rows move */
        case IR_SLICE: case IR_PAD: case IR_CONCAT: return n->iattr[0] >= 1;
        case IR_PERMUTE: return n->iattr[0] == 0;
        default: return false;
        }
    case IRC_FUSED: return n->op == IR_CROSS_ENTROPY || n->op == IR_CE_BWD;
    default: return false;
    }
}

/* rows start .. start+len-1 of x ([M, …], M > 1) */
static IrNode *row_slice(IrGraph *g, IrNode *x, int64_t start, int64_t len)
{
    if (x->op == IR_BROADCAST) {
        IrNode *src = x->in[0];
        int64_t shape[IR_MAX_DIMS];
        memcpy(shape, x->shape, sizeof shape);
        shape[0] = len;
        if (src->ndim < x->ndim || src->shape[0] == 1) return ir_broadcast(g, src, x->ndim, shape);
        return ir_broadcast(g, row_slice(g, src, start, len), x->ndim, shape);
    }
    return ir_slice(g, x, 0, start, len);
}

/* n of R built again on its chunk's inputs in[] (rows: the chunk's rows) */
static IrNode *rebuild(IrGraph *g, const IrNode *n, IrNode **in, int64_t rows)
{
    int64_t shape[IR_MAX_DIMS];
    memcpy(shape, n->shape, sizeof shape);
    shape[0] = rows;
    int axis = (int)n->iattr[0];
    IrNode *m;
    switch (n->op) {
    case IR_CAST: m = ir_cast(g, in[0], n->dtype); break;
    case IR_RESHAPE: m = ir_reshape(g, in[0], n->ndim, shape); break;
    case IR_BROADCAST: m = ir_broadcast(g, in[0], n->ndim, shape); break;
    case IR_SLICE: m = ir_slice(g, in[0], axis, n->iattr[1], n->shape[axis]); break;
    case IR_PAD: m = ir_pad(g, in[0], axis, n->iattr[1], n->shape[axis]); break;
    case IR_CONCAT: m = ir_concat(g, in[0], in[1], axis); break;
    case IR_PERMUTE: {
        int perm[IR_MAX_DIMS];
        for (int d = 0; d < n->ndim; d++) perm[d] = (int)n->iattr[d];
        m = ir_permute(g, in[0], perm);
        break;
    }
    case IR_CROSS_ENTROPY: m = ir_cross_entropy(g, in[0], in[1]); break;
    case IR_CE_BWD: m = ir_ce_bwd(g, in[0], in[1], in[2]); break;
    default:
        switch (ir_op_class(n->op)) {
        case IRC_UNARY: m = ir_unary(g, n->op, in[0]); break;
        case IRC_BINARY: m = ir_binary(g, n->op, in[0], in[1]); break;
        case IRC_REDUCE: m = ir_reduce(g, n->op, in[0], axis); break;
        default: assert(!"row_local admits no other op"); return NULL;
        }
    }
    assert(m->dtype == n->dtype && m->ndim == n->ndim &&
           !memcmp(m->shape, shape, sizeof(int64_t) * (size_t)n->ndim));
    m->src_file = n->src_file;
    m->src_line = n->src_line;
    return m;
}

/* the concatenation of parts[lo .. hi-1] along the rows, as a balanced tree */
static IrNode *concat_rows(IrGraph *g, IrNode **parts, int lo, int hi)
{
    if (hi - lo == 1) return parts[lo];
    int mid = (lo + hi) / 2;
    IrNode *x = concat_rows(g, parts, lo, mid), *y = concat_rows(g, parts, mid, hi);
    IrNode *c = ir_concat(g, x, y, 0);
    c->src_file = parts[lo]->src_file;
    c->src_line = parts[lo]->src_line;
    return c;
}

/* list[0..n-1] reordered so every node follows its inputs: depth first, in list order */
static void topo_order(IrNode **list, int n, int nid, IrNode **out)
{
    unsigned char *placed = xcalloc((size_t)nid, 1);
    IrNode **stack = xmalloc(sizeof *stack * (size_t)(n + 1));
    int *next = xmalloc(sizeof *next * (size_t)(n + 1));
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (placed[list[i]->id]) continue;
        int sp = 0;
        stack[sp] = list[i], next[sp++] = 0;
        while (sp > 0) {
            IrNode *t = stack[sp - 1];
            if (next[sp - 1] < t->nin) {
                IrNode *x = t->in[next[sp - 1]++];
                if (!placed[x->id]) stack[sp] = x, next[sp++] = 0;
                continue;
            }
            sp--;
            if (!placed[t->id]) placed[t->id] = 1, out[k++] = t;
        }
    }
    assert(k == n);
    free(placed);
    free(stack);
    free(next);
}

/* Marks R (in_r) and its exits; false when P is not to be chunked. from_p: nodes that P
 * reaches. */
static bool find_region(const IrGraph *g, const IrNode *p, unsigned char *in_r, unsigned char *from_p,
                        unsigned char *is_exit)
{
    int64_t M = p->shape[0];
    in_r[p->id] = from_p[p->id] = 1;
    for (int i = p->id + 1; i < g->n; i++) {
        const IrNode *n = g->nodes[i];
        bool reads_r = false;
        for (int j = 0; j < n->nin; j++) {
            from_p[i] |= from_p[n->in[j]->id];
            reads_r |= in_r[n->in[j]->id];
        }
        if (reads_r && row_local(n, in_r, from_p, M)) in_r[i] = 1;
    }
    int nexit = 0;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = g->nodes[i];
        for (int j = 0; j < n->nin && !in_r[i]; j++)
            if (in_r[n->in[j]->id]) is_exit[n->in[j]->id] = 1;
    }
    for (int i = 0; i < g->noutputs; i++)
        if (in_r[g->outputs[i]->id]) is_exit[g->outputs[i]->id] = 1;
    for (int i = p->id; i < g->n; i++)
        if (is_exit[i]) {
            if (ir_numel(g->nodes[i]) > CHUNK_ROW_VALUES * M) return false;
            nexit++;
        }
    return nexit > 0;
}

/* Rewrites R of p as chunks of `rows` rows (see the top of the file). */
static void chunk_region(IrGraph *g, IrNode *p, int64_t rows, const unsigned char *in_r,
                         const unsigned char *is_exit)
{
    int old_n = g->n, pid = p->id;
    int64_t M = p->shape[0];
    int nchunks = (int)((M + rows - 1) / rows);
    IrNode **map = xcalloc((size_t)old_n, sizeof *map), **cat = xcalloc((size_t)old_n, sizeof *cat);
    int *slot = xcalloc((size_t)old_n, sizeof *slot), nexit = 0;   /* exit i: parts[slot[i]·C + c] */
    for (int i = pid; i < old_n; i++)
        if (is_exit[i]) slot[i] = nexit++;
    IrNode **parts = xcalloc((size_t)nexit * (size_t)nchunks, sizeof *parts);
    const char *file = g->cur_file;
    int line = g->cur_line;
    for (int c = 0; c < nchunks; c++) {
        int64_t start = c * rows, len = M - start < rows ? M - start : rows;
        g->cur_file = p->src_file, g->cur_line = p->src_line;
        map[pid] = ir_matmul_t(g, row_slice(g, p->in[0], start, len), p->in[1], false, p->iattr[0]);
        for (int i = pid + 1; i < old_n; i++) {
            if (!in_r[i]) continue;
            const IrNode *n = g->nodes[i];
            IrNode *in[6];
            g->cur_file = n->src_file, g->cur_line = n->src_line;
            for (int j = 0; j < n->nin; j++)
                in[j] = in_r[n->in[j]->id] ? map[n->in[j]->id] : row_slice(g, n->in[j], start, len);
            map[i] = rebuild(g, n, in, len);
        }
        for (int i = pid; i < old_n; i++)
            if (is_exit[i]) parts[(size_t)slot[i] * (size_t)nchunks + (size_t)c] = map[i];
    }
    for (int i = pid; i < old_n; i++)
        if (is_exit[i]) cat[i] = concat_rows(g, parts + (size_t)slot[i] * (size_t)nchunks, 0, nchunks);
    g->cur_file = file, g->cur_line = line;
    for (int i = 0; i < old_n; i++) {               /* readers of the exits read the chunks */
        IrNode *n = g->nodes[i];
        for (int j = 0; j < n->nin && !in_r[i]; j++)
            if (in_r[n->in[j]->id]) n->in[j] = cat[n->in[j]->id];
    }
    for (int i = 0; i < g->noutputs; i++)
        if (in_r[g->outputs[i]->id]) g->outputs[i] = cat[g->outputs[i]->id];

    /* new order: the nodes before P, the chunks, the rest; R goes */
    IrNode **list = xmalloc(sizeof *list * (size_t)g->n), **order = xmalloc(sizeof *order * (size_t)g->n);
    int n = 0;
    for (int i = 0; i < old_n; i++) {
        if (i == pid)
            for (int k = old_n; k < g->n; k++) list[n++] = g->nodes[k];
        if (!in_r[i]) list[n++] = g->nodes[i];
    }
    topo_order(list, n, g->n, order);
    for (int i = 0; i < old_n; i++)
        if (in_r[i]) {
            free(g->nodes[i]->name);
            free(g->nodes[i]);
        }
    for (int i = 0; i < n; i++) {
        g->nodes[i] = order[i];
        order[i]->id = i;
    }
    g->n = n;
    free(list);
    free(order);
    free(map);
    free(parts);
    free(slot);
    free(cat);
}

int ir_chunk_rows(IrGraph *g, int64_t max_rows, int64_t max_elems)
{
    assert(max_rows >= 1);
    int chunked = 0;
    for (int i = 0; i < g->n; i++) {
        IrNode *p = g->nodes[i];
        if (p->op != IR_MATMUL || p->ndim != 2 || p->iattr[1]) continue;
        int64_t M = p->shape[0], N = p->shape[1], rows = max_rows;
        if (max_elems > 0 && rows > max_elems / N) rows = max_elems / N > 0 ? max_elems / N : 1;
        if (rows < (M + CHUNK_MAX - 1) / CHUNK_MAX) rows = (M + CHUNK_MAX - 1) / CHUNK_MAX;
        if (M <= rows || N <= CHUNK_ROW_VALUES) continue;
        unsigned char *in_r = xcalloc((size_t)g->n, 1), *from_p = xcalloc((size_t)g->n, 1),
                      *is_exit = xcalloc((size_t)g->n, 1);
        if (find_region(g, p, in_r, from_p, is_exit)) {
            chunk_region(g, p, rows, in_r, is_exit);
            chunked++;
            i--;   /* position i now holds the first node of the chunks */
        }
        free(in_r);
        free(from_p);
        free(is_exit);
    }
    return chunked;
}
