/* exec.c — the backend interface (runtime.h): an executor holds one backend's handle, and
 * each call goes to the backend whose handle is set. */
#include "runtime/backend.h"
#include "base/base.h"
#include "runtime/ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct RtExec {
    RtBackend b;
    RtRef *ref;
    RtCpu *cpu;
    RtGpu *gpu;
    IrNode **keep;
    int nkeep;
};

const char *rt_exec_unsupported(RtBackend b, RtPrec prec)
{
    bool bf16 = prec == RT_BF16 || prec == RT_BF16_MASTER;
    if (b == RT_CPU_BACKEND && prec == RT_F64) return "the cpu backend computes in f32; --dtype f64 needs --backend ref";
    if (b == RT_CPU_BACKEND && bf16) return "the cpu backend computes in f32; --dtype bf16 needs --backend cuda";
    if (b == RT_REF_BACKEND && bf16) return "the ref backend computes in f64 or f32; --dtype bf16 needs --backend cuda";
    if (b == RT_CUDA_BACKEND && prec == RT_F64)
        return "the cuda backend computes in bf16 or f32; use --backend ref for --dtype f64";
    return NULL;
}

RtExec *rt_exec_new(RtBackend b, const IrGraph *g, RtPrec prec, IrNode *const *keep, int nkeep, char *err,
                    size_t errlen)
{
    const char *unsupported = rt_exec_unsupported(b, prec);
    if (unsupported) {
        snprintf(err, errlen, "%s", unsupported);
        return NULL;
    }
    RtExec *x = xcalloc(1, sizeof *x);
    x->keep = xmalloc(sizeof *x->keep * (size_t)(nkeep > 0 ? nkeep : 1));
    memcpy(x->keep, keep, sizeof *keep * (size_t)nkeep);
    x->nkeep = nkeep;
    x->b = b;
    if (b == RT_REF_BACKEND) x->ref = rt_ref_new(g, prec);
    else if (b == RT_CUDA_BACKEND ? !(x->gpu = rt_gpu_new(g, prec, keep, nkeep, err, errlen))
                                  : !(x->cpu = rt_cpu_new(g, keep, nkeep, err, errlen))) {
        free(x->keep);
        free(x);
        return NULL;
    }
    return x;
}

void rt_exec_set(RtExec *x, const IrNode *leaf, const double *data)
{
    if (x->ref) rt_ref_set(x->ref, leaf, data);
    else if (x->gpu) rt_gpu_set(x->gpu, leaf, data);
    else rt_cpu_set(x->cpu, leaf, data);
}

void rt_exec_set_i32(RtExec *x, const IrNode *leaf, const int32_t *data)
{
    if (x->ref) rt_ref_set_i32(x->ref, leaf, data);
    else if (x->gpu) rt_gpu_set_i32(x->gpu, leaf, data);
    else rt_cpu_set_i32(x->cpu, leaf, data);
}

void rt_exec_set_scalar(RtExec *x, const char *name, double v)
{
    if (x->ref) rt_ref_set_scalar(x->ref, name, v);
    else if (x->gpu) rt_gpu_set_scalar(x->gpu, name, v);
    else rt_cpu_set_scalar(x->cpu, name, v);
}

int rt_exec_run(RtExec *x, char *err, size_t errlen)
{
    if (x->ref) return rt_ref_run(x->ref, x->keep, x->nkeep, err, errlen);
    return x->gpu ? rt_gpu_run(x->gpu, err, errlen) : rt_cpu_run(x->cpu, err, errlen);
}

void rt_exec_get(const RtExec *x, const IrNode *n, double *out)
{
    if (x->ref) rt_ref_get(x->ref, n, out);
    else if (x->gpu) rt_gpu_get(x->gpu, n, out);
    else rt_cpu_get(x->cpu, n, out);
}

void rt_exec_copy(RtExec *dst, const IrNode *leaf, const RtExec *src, const IrNode *n)
{
    if (dst->cpu && src->cpu) {
        rt_cpu_copy(dst->cpu, leaf, src->cpu, n);
        return;
    }
    if (dst->gpu && src->gpu) {
        rt_gpu_copy(dst->gpu, leaf, src->gpu, n);
        return;
    }
    int64_t k = ir_numel(n);
    double *v = xmalloc(sizeof(double) * (size_t)(k ? k : 1));
    rt_exec_get(src, n, v);
    rt_exec_set(dst, leaf, v);
    free(v);
}

bool rt_exec_share(RtExec *dst, const IrNode *leaf, const RtExec *src, const IrNode *n)
{
    return dst->cpu && src->cpu && rt_cpu_share(dst->cpu, leaf, src->cpu, n);
}

bool rt_exec_stats(RtExec *x, RtStats *out, bool reset)
{
    memset(out, 0, sizeof *out);
    if (!x->cpu) return false;
    rt_cpu_stats(x->cpu, out, reset);
    return true;
}

bool rt_exec_own(RtExec *x, const IrNode *leaf) { return x->cpu && rt_cpu_own(x->cpu, leaf); }

bool rt_exec_accumulate(RtExec *dst, const IrNode *leaf, const RtExec *src, const IrNode *n, double scale, bool first)
{
    if (!dst->cpu || !src->cpu) return false;
    rt_cpu_accumulate(dst->cpu, leaf, src->cpu, n, scale, first);
    return true;
}

size_t rt_exec_peak_bytes(const RtExec *x)
{
    return x->ref ? rt_ref_peak_bytes(x->ref) : x->gpu ? rt_gpu_bytes(x->gpu) : rt_cpu_bytes(x->cpu);
}

void rt_exec_sync(const RtExec *x)
{
    if (x->gpu) rt_gpu_sync(x->gpu);
}

void rt_exec_broadcast(RtExec *x, const IrNode *leaf, int root)
{
    if (!x->gpu) {
        fprintf(stderr, "rt_exec_broadcast: only the cuda backend broadcasts device to device\n");
        abort();
    }
    rt_gpu_broadcast(x->gpu, leaf, root);
}

bool rt_exec_allreduce(RtExec *x, IrNode *const *nodes, int n)
{
    if (!x->gpu) return false;
    rt_gpu_allreduce(x->gpu, nodes, n);
    return true;
}

void rt_exec_free(RtExec *x)
{
    if (!x) return;
    rt_ref_free(x->ref);
    rt_cpu_free(x->cpu);
    rt_gpu_free(x->gpu);
    free(x->keep);
    free(x);
}

int rt_backend_parse(const char *name)
{
    if (!strcmp(name, "ref")) return RT_REF_BACKEND;
    if (!strcmp(name, "cpu")) return RT_CPU_BACKEND;
    if (!strcmp(name, "cuda")) return RT_CUDA_BACKEND;
    return -1;
}

const char *rt_prec_name(RtPrec p) { return p == RT_F64 ? "f64" : p == RT_F32 ? "f32" : "bf16"; }

const char *rt_backend_name(RtBackend b) { return b == RT_REF_BACKEND ? "ref" : b == RT_CPU_BACKEND ? "cpu" : "cuda"; }
