/* cse.c — common-subexpression elimination: two nodes with the same op, dtype, shape,
 * attributes and (already merged) inputs compute the same value; later ones are redirected
 * to the first. Named leaves (params, inputs, scalars) are never merged with each other.
 * Nodes are visited in id order, so inputs are merged before their users. */
#include "ir/ir.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

static uint64_t node_hash(const IrNode *n) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = mix(h, (uint64_t)n->op);
    h = mix(h, (uint64_t)n->dtype);
    for (int i = 0; i < n->ndim; i++) h = mix(h, (uint64_t)n->shape[i]);
    for (int i = 0; i < n->nin; i++) h = mix(h, (uint64_t)n->in[i]->id);
    for (int i = 0; i < IR_MAX_DIMS; i++) h = mix(h, (uint64_t)n->iattr[i]);
    uint64_t f;
    memcpy(&f, &n->fattr[0], sizeof f);
    return mix(h, f);
}

static bool same_node(const IrNode *a, const IrNode *b) {
    if (a->op != b->op || a->dtype != b->dtype || a->nin != b->nin || !ir_same_shape(a, b)) return false;
    if (a->name || b->name) return false;
    for (int i = 0; i < a->nin; i++)
        if (a->in[i] != b->in[i]) return false;
    return !memcmp(a->iattr, b->iattr, sizeof a->iattr) && !memcmp(a->fattr, b->fattr, sizeof a->fattr);
}

int ir_cse(IrGraph *g) {
    size_t cap = 1;
    while (cap < 2 * (size_t)g->n + 2) cap *= 2;
    IrNode **table = xcalloc(cap, sizeof *table);
    IrNode **repl = xcalloc((size_t)g->n + 1, sizeof *repl);
    int merged = 0;
    for (int i = 0; i < g->n; i++) {
        IrNode *n = g->nodes[i];
        for (int j = 0; j < n->nin; j++)
            if (repl[n->in[j]->id]) n->in[j] = repl[n->in[j]->id];
        if (n->name) continue;
        size_t k = node_hash(n) & (cap - 1);
        while (table[k] && !same_node(table[k], n)) k = (k + 1) & (cap - 1);
        if (table[k]) {
            repl[i] = table[k];
            merged++;
        } else {
            table[k] = n;
        }
    }
    for (int i = 0; i < g->noutputs; i++)
        if (repl[g->outputs[i]->id]) g->outputs[i] = repl[g->outputs[i]->id];
    free(table);
    free(repl);
    return merged;
}
