/* pipeline.c — the passes over a graph, in order, with the invariant checker between
 * them; GPTC_DUMP_IR=1 prints the graph after every pass. */
#include "ir/ir.h"

#include <stdlib.h>

static int after(IrGraph *g, const char *pass, int changed, char *err, size_t errlen) {
    if (getenv("GPTC_DUMP_IR")) {
        fprintf(stderr, "---- after %s (%d changed, %d nodes)\n", pass, changed, g->n);
        ir_print(g, stderr);
    }
    if (ir_verify(g, err, errlen) == 0) return 0;
    fprintf(stderr, "gptc: internal error after %s: %s\n", pass, err);
    return -1;
}

int ir_optimize(IrGraph *g, char *err, size_t errlen) {
    if (after(g, "input", 0, err, errlen)) return -1;
    int merged = ir_cse(g);
    if (after(g, "cse", merged, err, errlen)) return -1;
    int joined = ir_merge_siblings(g);
    if (after(g, "siblings", joined, err, errlen)) return -1;
    int removed = ir_dce(g);
    return after(g, "dce", removed, err, errlen);
}
