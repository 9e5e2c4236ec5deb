/* storage.c — the dtype each materialized tensor is stored in.
 *
 * The maths of every kernel is float (int for indices); storage is a separate choice:
 *
 *   CG_STORE_F32          every float tensor in float32: the C target, and the CUDA f32 mode
 *                         that the golden comparisons on a GPU use.
 *   CG_STORE_BF16         CUDA mixed precision (spec 10.1): leaves as declared (bf16
 *                         parameters in bf16, the rest float32); full-size activations in
 *                         bf16; per-row statistics (a reduction's outputs, such as norm
 *                         factors and log-sum-exps), scatter-add sums and every kept output
 *                         (loss, gradients) in float32, but an output cast to bf16.
 *   CG_STORE_BF16_MASTER  as CG_STORE_BF16 but every leaf float32: the optimizer step, whose
 *                         leaves are the master weights and the optimizer state, and whose
 *                         intermediates (the Newton–Schulz iterates) are bf16.
 *
 * Library ops may then see operands stored differently from what they compute in (a bf16
 * product with a float32 weight): the runtime converts those operands into scratch memory
 * (cg_operand_dtype says which). */
#include "codegen/codegen.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>

static IrDtype root_dtype(const CgStep *s, const IrNode *n, const unsigned char *kept)
{
    if (kept[n->id]) return n->dtype == IR_BF16 ? IR_BF16 : IR_F32;   /* bf16 when asked for (a cast) */
    const CgKernel *k = &s->k[s->producer[n->id]];
    if (k->kind == CG_SCATTER_ADD) return IR_F32;
    if (k->kind == CG_LOOP && k->axis >= 0) {
        int64_t pts = 1;
        for (int d = 0; d < k->ndim; d++) pts *= k->dom[d];
        if (ir_numel(n) < pts) return IR_F32;   /* one value per reduced row */
    }
    return IR_BF16;
}

void cg_assign_storage(CgStep *s, CgStore mode, IrNode *const *keep, int nkeep)
{
    const IrGraph *g = s->g;
    unsigned char *kept = xcalloc((size_t)g->n + 1, 1);
    s->store = xcalloc((size_t)g->n + 1, sizeof *s->store);
    for (int i = 0; i < nkeep; i++) kept[keep[i]->id] = 1;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = g->nodes[i];
        IrDtype t = IR_F32;
        if (n->dtype == IR_I32) t = IR_I32;
        else if (mode == CG_STORE_F32) t = IR_F32;
        else if (s->role[i] == CG_LEAF) t = mode == CG_STORE_BF16 && n->dtype == IR_BF16 ? IR_BF16 : IR_F32;
        else if (s->role[i] == CG_ROOT) t = root_dtype(s, n, kept);
        s->store[i] = t;
    }
    free(kept);
}

IrDtype cg_store_dtype(const CgStep *s, int id)
{
    int64_t off;
    int b = cg_storage(s, id, &off);
    if (b < 0 || !s->store) return s->g->nodes[id]->dtype == IR_I32 ? IR_I32 : IR_F32;   /* (while fusing: float) */
    return s->store[b];
}

int cg_elem_bytes(const CgStep *s, int id) { return cg_store_dtype(s, id) == IR_BF16 ? 2 : 4; }

IrDtype cg_operand_dtype(const CgStep *s, const IrNode *op)
{
    switch (op->op) {
    case IR_MATMUL:   /* a bf16 Tensor Core product when an operand or the result is bf16 */
        return cg_store_dtype(s, op->in[0]->id) == IR_BF16 || cg_store_dtype(s, op->in[1]->id) == IR_BF16 ||
                       cg_store_dtype(s, op->id) == IR_BF16
                   ? IR_BF16
                   : IR_F32;
    case IR_ATTENTION:
    case IR_ATTENTION_BWD: return cg_store_dtype(s, op->id);   /* every operand as the output */
    default: return IR_F32;
    }
}
