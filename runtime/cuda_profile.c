/* cuda_profile.c — GPTC_PROFILE=1 on the cuda backend: every kernel of a run timed with
 * events, reported per kind and as the slowest kernels, each beside the roofline model's
 * estimate when the caller has one (codegen/roofline.c).
 *
 * The estimates are the roofline model's (codegen/roofline.c) for the kernels' ptxas
 * figures, the runtime scalars last set (the attention window) and the documents of the
 * tokens last set (their mean length, from the eot tokens).
 *
 * Events are recorded between the launches, so a run that is profiled is launched kernel by
 * kernel (not replayed as a CUDA graph): each interval holds a kernel's launch and its
 * execution, plus what the runtime enqueues with it (operand conversions of a product or of
 * attention, the all-reduce of a gradient it produced). The report is read after the run
 * has finished, which synchronizes the stream: a profiled run is slower than a plain one. */
#include "runtime/cuda_profile.h"

#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct RtGpuProfile {
    const CgStep *s;
    const char *name;      /* the executor's, for the report's title */
    CUevent *ev;           /* ev[k] before kernel k, ev[nk] after the last */
    int runs;
    CgPtxas ptxas;         /* the module's registers and shared memory, for the estimates */
    CgScalar *scalars;     /* the runtime scalars as last set (names borrowed from the graph) */
    int nscalars;
    double doc_len;        /* mean document length of the tokens last set; 0: one document */
};

static const char *const kind_names[] = {
    [CG_LOOP] = "loop", [CG_MATMUL] = "product", [CG_ATTENTION] = "attention",
    [CG_ATTENTION_BWD] = "attention backward", [CG_SCATTER_ADD] = "scatter-add",
};
#define NKINDS (CG_SCATTER_ADD + 1)

bool rt_gpu_profiling(void)
{
    const char *p = getenv("GPTC_PROFILE");
    return p && *p && strcmp(p, "0");
}

RtGpuProfile *rt_gpu_profile_new(const CgStep *s, const char *name, const char *ptxas_log, char *err, size_t errlen)
{
    RtGpuProfile *p = xcalloc(1, sizeof *p);
    p->s = s;
    p->name = name;
    cg_ptxas_parse(ptxas_log, &p->ptxas);
    p->ev = xcalloc((size_t)s->nk + 1, sizeof *p->ev);
    for (int k = 0; k <= s->nk; k++) {
        CUresult r = rt_cu.cu.EventCreate(&p->ev[k], 0);
        if (r != 0) {
            snprintf(err, errlen, "cuda: cuEventCreate failed (%s)", rt_cu_error(r));
            rt_gpu_profile_free(p);
            return NULL;
        }
    }
    return p;
}

int rt_gpu_profile_mark(RtGpuProfile *p, int k, CUstream stream, char *err, size_t errlen)
{
    CUresult r = rt_cu.cu.EventRecord(p->ev[k], stream);
    if (r != 0) snprintf(err, errlen, "cuda: cuEventRecord failed (%s)", rt_cu_error(r));
    return r != 0 ? -1 : 0;
}

void rt_gpu_profile_scalar(RtGpuProfile *p, const char *name, double v)
{
    for (int i = 0; i < p->nscalars; i++)
        if (!strcmp(p->scalars[i].name, name)) {
            p->scalars[i].value = v;
            return;
        }
    p->scalars = xrealloc(p->scalars, sizeof *p->scalars * (size_t)(p->nscalars + 1));
    p->scalars[p->nscalars++] = (CgScalar){name, v};
}

void rt_gpu_profile_tokens(RtGpuProfile *p, const IrNode *leaf, const int32_t *data)
{
    for (int k = 0; k < p->s->nk; k++) {
        const IrNode *op = p->s->k[k].op;
        if (!op || (op->op != IR_ATTENTION && op->op != IR_ATTENTION_BWD) || op->in[3] != leaf) continue;
        int64_t n = ir_numel(leaf), docs = 0;
        for (int64_t i = 0; i < n; i++) docs += data[i] == op->iattr[1];
        p->doc_len = docs ? (double)n / (double)docs : 0;
        return;
    }
}

static void kernel_label(const CgStep *s, int k, char *buf, size_t len)
{
    const CgKernel *kk = &s->k[k];
    const IrNode *r = s->g->nodes[kk->roots[0]];
    char shape[96];
    ir_shape_str(kk->kind == CG_LOOP ? kk->ndim : r->ndim, kk->kind == CG_LOOP ? kk->dom : r->shape, shape,
                 sizeof shape);
    snprintf(buf, len, "#%d %s %s%s %s:%d", k, kk->kind == CG_LOOP ? s->funcs[kk->func].name : kind_names[kk->kind],
             shape, kk->kind == CG_LOOP && kk->axis >= 0 ? " (reduction)" : "", r->src_file ? r->src_file : "?",
             r->src_line);
}

static void report_kinds(const RtGpuProfile *p, const double *ms, const double *est)
{
    int count[NKINDS] = {0};
    double got[NKINDS] = {0}, want[NKINDS] = {0};
    for (int k = 0; k < p->s->nk; k++) {
        int kind = (int)p->s->k[k].kind;
        count[kind]++;
        got[kind] += ms[k];
        if (est) want[kind] += est[k];
    }
    fprintf(stderr, "  %-20s %7s %12s%s\n", "kind", "kernels", "measured_ms", est ? "  estimated_ms  measured/estimated" : "");
    for (int i = 0; i < NKINDS; i++) {
        if (!count[i]) continue;
        fprintf(stderr, "  %-20s %7d %12.3f", kind_names[i], count[i], got[i]);
        if (est) fprintf(stderr, "  %12.3f  %18.2f", want[i], want[i] > 0 ? got[i] / want[i] : 0.0);
        fputc('\n', stderr);
    }
}

static void report_slowest(const RtGpuProfile *p, const double *ms, const double *est)
{
    enum { TOP = 12 };
    int order[TOP], n = 0;
    for (int k = 0; k < p->s->nk; k++) {
        if (n == TOP && ms[k] <= ms[order[TOP - 1]]) continue;
        int j = n < TOP ? n++ : TOP - 1;
        while (j > 0 && ms[order[j - 1]] < ms[k]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = k;
    }
    fprintf(stderr, "  slowest:\n");
    for (int i = 0; i < n; i++) {
        char label[256];
        kernel_label(p->s, order[i], label, sizeof label);
        if (est) fprintf(stderr, "  %9.3f ms (estimated %9.3f)  %s\n", ms[order[i]], est[order[i]], label);
        else fprintf(stderr, "  %9.3f ms  %s\n", ms[order[i]], label);
    }
}

/* the roofline model's estimate of each kernel, or NULL (no ptxas figures) */
static double *estimates(const RtGpuProfile *p)
{
    CgWorkload w = {p->scalars, p->nscalars, p->doc_len};
    CgRoofline r;
    char why[256];
    if (cg_roofline(p->s, &p->ptxas, &w, &r, why, sizeof why)) return NULL;
    double *est = xcalloc((size_t)p->s->nk, sizeof *est);
    for (int k = 0; k < p->s->nk; k++) est[k] = r.k[k].t.ms;
    cg_roofline_free(&r);
    return est;
}

int rt_gpu_profile_report(RtGpuProfile *p, char *err, size_t errlen)
{
    const CgStep *s = p->s;
    double *est = estimates(p);
    CUresult r = rt_cu.cu.EventSynchronize(p->ev[s->nk]);
    double *ms = xcalloc((size_t)s->nk, sizeof *ms), total = 0, total_est = 0;
    for (int k = 0; k < s->nk && r == 0; k++) {
        float t = 0;
        r = rt_cu.cu.EventElapsedTime(&t, p->ev[k], p->ev[k + 1]);
        ms[k] = t;
        total += t;
        if (est) total_est += est[k];
    }
    if (r != 0) {
        snprintf(err, errlen, "cuda: timing the kernels failed (%s)", rt_cu_error(r));
        free(ms);
        free(est);
        return -1;
    }
    p->runs++;
    fprintf(stderr, "cuda profile (%s, run %d): %.3f ms in %d kernels", p->name, p->runs, total, s->nk);
    if (est) fprintf(stderr, ", estimated %.3f ms on an H100", total_est);
    fputc('\n', stderr);
    report_kinds(p, ms, est);
    report_slowest(p, ms, est);
    free(ms);
    free(est);
    return 0;
}

void rt_gpu_profile_free(RtGpuProfile *p)
{
    if (!p) return;
    for (int k = 0; k <= p->s->nk; k++)
        if (p->ev[k]) rt_cu.cu.EventDestroy(p->ev[k]);
    free(p->ev);
    cg_ptxas_free(&p->ptxas);
    free(p->scalars);
    free(p);
}
