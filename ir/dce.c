/* dce.c — dead-code elimination: keeps the nodes some output depends on, and every PARAM
 * and INPUT leaf (they stay addressable even when unused; an unused SCALAR goes); the
 * kept nodes are renumbered in order. */
#include "ir/ir.h"
#include "base/base.h"

#include <stdlib.h>

int ir_dce(IrGraph *g) {
    bool *live = xcalloc((size_t)g->n + 1, sizeof *live);
    for (int i = 0; i < g->noutputs; i++) live[g->outputs[i]->id] = true;
    for (int i = g->n - 1; i >= 0; i--) {
        IrNode *n = g->nodes[i];
        if (n->op == IR_PARAM || n->op == IR_INPUT) live[i] = true;
        if (!live[i]) continue;
        for (int j = 0; j < n->nin; j++) live[n->in[j]->id] = true;
    }
    int kept = 0, removed = 0;
    for (int i = 0; i < g->n; i++) {
        IrNode *n = g->nodes[i];
        if (live[i]) {
            n->id = kept;
            g->nodes[kept++] = n;
        } else {
            free(n->name);
            free(n);
            removed++;
        }
    }
    g->n = kept;
    free(live);
    return removed;
}
