/* plan.c — the step's translation unit in each dialect (cg_step_source: the prelude, for
 * CUDA the kernels of cuda_lib.c, then every distinct loop function), plan.txt
 * (cg_write_plan: kernels and library calls in order with launch shapes, bytes, FLOPs,
 * for the CUDA target the roofline estimate, and output offsets, then the totals and the
 * arena size) and the elementwise traffic fused and unfused (cg_traffic). */
#include "codegen/codegen.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

static char *concat(char *acc, size_t *n, const char *s)
{
    size_t k = strlen(s);
    acc = xrealloc(acc, *n + k + 1);
    memcpy(acc + *n, s, k + 1);
    *n += k;
    return acc;
}

char *cg_step_source(const CgStep *s, CgDialect d)
{
    size_t n = 0;
    char *src = concat(NULL, &n, cg_prelude(d));
    if (d == CG_CUDA) src = concat(src, &n, cg_cuda_library());
    for (int i = 0; i < s->nfuncs; i++) {
        src = concat(src, &n, "\n");
        src = concat(src, &n, d == CG_CUDA ? s->funcs[i].cuda_src : s->funcs[i].c_src);
    }
    return src;
}

static void library_cost(const CgStep *s, const CgKernel *k, double *flops, int64_t *rd, int64_t *wr)
{
    const IrNode *n = k->op;
    *rd = 0;
    for (int j = 0; j < n->nin; j++) *rd += ir_numel(n->in[j]) * cg_elem_bytes(s, n->in[j]->id);
    *wr = ir_numel(n) * cg_elem_bytes(s, n->id);
    if (n->op == IR_MATMUL) {
        const IrNode *a = n->in[0];
        int64_t K = n->iattr[1] ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
        *flops = 2.0 * (double)ir_numel(n) * (double)K;
    } else if (n->op == IR_ATTENTION || n->op == IR_ATTENTION_BWD) {
        const IrNode *q = n->in[0];   /* [T, H, D]: causal, dense upper bound */
        double T = (double)q->shape[0], HD = (double)(q->shape[1] * q->shape[2]);
        *flops = (n->op == IR_ATTENTION ? 2.0 : 5.0) * T * T * HD;
    } else *flops = (double)ir_numel(n->in[0]);
}

static const char *kind_name(CgKind k)
{
    static const char *names[] = {"loop", "matmul", "attention", "attention_bwd", "scatter_add"};
    return names[k];
}

void cg_traffic(const CgStep *s, int64_t *fused, int64_t *unfused)
{
    *fused = *unfused = 0;
    for (int i = 0; i < s->nk; i++)
        if (s->k[i].kind == CG_LOOP) *fused += s->k[i].bytes_read + s->k[i].bytes_written;
    for (int i = 0; i < s->g->n; i++) {
        const IrNode *n = s->g->nodes[i];
        IrClass c = ir_op_class(n->op);
        bool ew = c == IRC_UNARY || c == IRC_BINARY || c == IRC_REDUCE || c == IRC_MOVE || n->op == IR_GATHER ||
                  n->op == IR_CROSS_ENTROPY || n->op == IR_CE_BWD;
        if (!ew) continue;
        *unfused += ir_numel(n) * cg_elem_bytes(s, n->id);
        for (int j = 0; j < n->nin; j++) {
            const IrNode *x = n->in[j];
            int64_t m = n->op == IR_GATHER && j == 0 ? ir_numel(n) : ir_numel(x);
            *unfused += m * cg_elem_bytes(s, x->id);
        }
    }
}

static void shape_of(const IrNode *n, char *buf, int len) { ir_shape_str(n->ndim, n->shape, buf, len); }

void cg_write_plan(const CgStep *s, const CgRoofline *est, FILE *out)
{
    int64_t rd_all = 0, wr_all = 0, launches = 0, lib = 0;
    double fl_all = 0;
    fprintf(out, "# the training step: kernels and library calls in execution order\n");
    fprintf(out, "# idx kind function domain/op roots  launch(blocks x threads)  read_bytes written_bytes flops%s\n",
            est ? "  est(H100) bound occupancy" : "");
    for (int i = 0; i < s->nk; i++) {
        const CgKernel *k = &s->k[i];
        char shape[128], buf[160];
        double flops = k->flops;
        int64_t rd = k->bytes_read, wr = k->bytes_written;
        if (k->kind == CG_LOOP) {
            int64_t blocks;
            int threads;
            ir_shape_str(k->ndim, k->dom, shape, sizeof shape);
            cg_cuda_launch(k, &blocks, &threads);
            snprintf(buf, sizeof buf, "%s axis=%d", shape, k->axis);
            fprintf(out, "%5d loop %s %s roots=%d launch=%lldx%d", i, s->funcs[k->func].name, buf, k->nroots,
                    (long long)blocks, threads);
            launches++;
        } else {
            library_cost(s, k, &flops, &rd, &wr);
            shape_of(k->op, shape, sizeof shape);
            fprintf(out, "%5d %s %%%d %s", i, kind_name(k->kind), k->op->id, shape);
            if (k->kind == CG_MATMUL) fprintf(out, " a^T=%d b^T=%d", (int)k->op->iattr[1], (int)k->op->iattr[0]);
            lib++;
        }
        fprintf(out, " read=%lld written=%lld flops=%.3g", (long long)rd, (long long)wr, flops);
        if (s->level) fprintf(out, " level=%d", s->level[i]);
        if (est)
            fprintf(out, " est=%.4fms bound=%s occ=%.2f", est->k[i].t.ms, cg_bound_name(est->k[i].bound), est->k[i].occ);
        for (int r = 0; r < k->nroots && r < 4; r++) {   /* @arena offset, or @%leaf computed in */
            int id = k->roots[r];
            if (s->alias[id] >= 0) fprintf(out, "%s%%%d@%%%d", r ? "," : " out=", id, s->alias[id]);
            else fprintf(out, "%s%%%d@%lld", r ? "," : " out=", id, (long long)s->offset[id]);
        }
        if (k->nroots > 4) fprintf(out, ",…");
        const IrNode *first = s->g->nodes[k->roots[0]];
        if (first->src_file) fprintf(out, "  # %s:%d", first->src_file, first->src_line);
        fprintf(out, "\n");
        rd_all += rd;
        wr_all += wr;
        fl_all += flops;
    }
    int64_t fused, unfused;
    cg_traffic(s, &fused, &unfused);
    fprintf(out, "\n# totals\nloop_kernels %lld (distinct functions %d)\nlibrary_calls %lld\n", (long long)launches,
            s->nfuncs, (long long)lib);
    fprintf(out, "bytes_read %lld\nbytes_written %lld\nflops %.4g\n", (long long)rd_all, (long long)wr_all, fl_all);
    fprintf(out, "elementwise_bytes_fused %lld\nelementwise_bytes_unfused %lld\n", (long long)fused, (long long)unfused);
    if (est) {
        const CgTime *t = &est->total;
        fprintf(out, "\n# estimated on one H100 SXM (roofline.c), ms: total = tensor-core + CUDA-core + memory +\n"
                     "# under-occupied + launch\nestimated_ms %.4f\nestimated_split_ms %.4f %.4f %.4f %.4f %.4f\n",
                t->ms, t->tc, t->fp32, t->mem, t->under, t->launch);
        for (int k = 0; k < CG_EST_NKINDS; k++)
            fprintf(out, "estimated_kind %s: %d calls, %d launches, %.4f ms\n", cg_est_kind_name((CgEstKind)k),
                    est->calls[k], est->launches[k], est->kind[k].ms);
        CgDeviceMem m;
        cg_device_memory(s, NULL, &m);
        fprintf(out, "\n# the cuda executor's one allocation (cg_device_memory)\n");
        fprintf(out, "device_bytes %zu (arena %zu, leaves %zu, operand scratch %zu, attention workspace %zu, document ids "
                     "%zu, cuBLASLt workspace %zu)\n", m.total, m.arena, m.leaves, m.scratch, m.work, m.doc, m.lt_work);
    }
    fprintf(out, "\n# memory plan: one arena for every intermediate (leaves are separate)\n");
    fprintf(out, "arena_bytes %lld\n", (long long)s->arena_bytes);
}
