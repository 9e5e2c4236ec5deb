/* cuda_api.c — loads the CUDA driver, cuBLASLt and NCCL with dlopen (cuda_api.h). */
#include "runtime/cuda_api.h"

#include "base/base.h"
#include "codegen/codegen.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

RtCuda rt_cu;

/* The library $env names, else the first of names[] (n ≤ 4) that loads, else (toolkit
 * libraries) names[0] under $CUDA_HOME/lib64. On failure: "WHAT: NAME cannot be loaded:
 * <the first failure>; HINT" in err. *libname: what was asked for, for later messages. */
static void *open_lib(const char *env, const char *const *names, int n, bool toolkit, const char *what,
                      const char *hint, char *libname, size_t len, char *err, size_t errlen)
{
    const char *forced = cuda_emulator() ? cuda_emulator() : getenv(env);
    char why[512] = "", home[600];
    snprintf(home, sizeof home, "%s/lib64/%s", cg_cuda_home(), names[0]);
    const char *tries[6];
    int k = 0;
    if (forced && *forced) tries[k++] = forced;
    else {
        for (int i = 0; i < n && i < 4; i++) tries[k++] = names[i];
        if (toolkit) tries[k++] = home;
    }
    if (cuda_emulator()) snprintf(libname, len, "%s ($GPTC_CUDA_EMULATE)", forced);
    else if (forced && *forced) snprintf(libname, len, "%s ($%s)", forced, env);
    else snprintf(libname, len, "%s", names[0]);
    void *h = lib_open(tries, k, RTLD_NOW | RTLD_GLOBAL, NULL, why, sizeof why);
    if (!h && cuda_emulator()) what = "the CUDA emulator", hint = "make builds it next to gptc (or set GPTC_LIBCUDAEMU)";
    if (!h) snprintf(err, errlen, "%s: %s cannot be loaded: %s; %s", what, libname, why, hint);
    return h;
}

/* *slot = dlsym(lib, name); -1 with a message naming the symbol when absent */
static int sym(void *lib, const char *name, void *slot, const char *libname, char *err, size_t errlen)
{
    void *p = dlsym(lib, name);
    if (!p) {
        snprintf(err, errlen, "%s lacks %s (a driver or library older than CUDA 12?)", libname, name);
        return -1;
    }
    memcpy(slot, &p, sizeof p);
    return 0;
}

#define SYM(lib, field, name)                                            \
    do {                                                                 \
        if (sym(lib, name, &(field), libname, err, errlen)) return -1;   \
    } while (0)

static int load_driver(char *err, size_t errlen)
{
    static const char *const names[] = {"libcuda.so.1", "libcuda.so"};
    char libname[512];
    void *lib = open_lib("GPTC_LIBCUDA", names, 2, false, "no NVIDIA driver",
                         "the cuda backend needs a GPU — use --backend cpu here", libname, sizeof libname, err, errlen);
    if (!lib) return -1;
    RtCuDriver *d = &rt_cu.cu;
    SYM(lib, d->Init, "cuInit");
    SYM(lib, d->DeviceGetCount, "cuDeviceGetCount");
    SYM(lib, d->DeviceGet, "cuDeviceGet");
    SYM(lib, d->DeviceGetName, "cuDeviceGetName");
    SYM(lib, d->DeviceGetAttribute, "cuDeviceGetAttribute");
    SYM(lib, d->DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    SYM(lib, d->CtxSetCurrent, "cuCtxSetCurrent");
    SYM(lib, d->MemGetInfo, "cuMemGetInfo_v2");
    SYM(lib, d->ModuleLoadData, "cuModuleLoadData");
    SYM(lib, d->ModuleUnload, "cuModuleUnload");
    SYM(lib, d->ModuleGetFunction, "cuModuleGetFunction");
    SYM(lib, d->LaunchKernel, "cuLaunchKernel");
    SYM(lib, d->MemAlloc, "cuMemAlloc_v2");
    SYM(lib, d->MemFree, "cuMemFree_v2");
    SYM(lib, d->MemcpyDtoH, "cuMemcpyDtoH_v2");
    SYM(lib, d->MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
    SYM(lib, d->MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
    SYM(lib, d->MemsetD8Async, "cuMemsetD8Async");
    SYM(lib, d->StreamCreate, "cuStreamCreate");
    SYM(lib, d->StreamSynchronize, "cuStreamSynchronize");
    SYM(lib, d->StreamBeginCapture, "cuStreamBeginCapture_v2");
    SYM(lib, d->StreamEndCapture, "cuStreamEndCapture");
    SYM(lib, d->GraphInstantiate, "cuGraphInstantiateWithFlags");
    SYM(lib, d->GraphLaunch, "cuGraphLaunch");
    SYM(lib, d->GraphDestroy, "cuGraphDestroy");
    SYM(lib, d->GraphExecDestroy, "cuGraphExecDestroy");
    SYM(lib, d->GetErrorString, "cuGetErrorString");
    SYM(lib, d->EventCreate, "cuEventCreate");
    SYM(lib, d->EventRecord, "cuEventRecord");
    SYM(lib, d->EventSynchronize, "cuEventSynchronize");
    SYM(lib, d->EventElapsedTime, "cuEventElapsedTime");
    SYM(lib, d->EventDestroy, "cuEventDestroy_v2");
    *(void **)&d->EmuTensors = dlsym(lib, "gptcEmuTensors");   /* the emulator's alone */
    return 0;
}

static int load_cublaslt(char *err, size_t errlen)
{
    static const char *const names[] = {"libcublasLt.so", "libcublasLt.so.13", "libcublasLt.so.12"};
    char libname[512];
    void *lib = open_lib("GPTC_LIBCUBLASLT", names, 3, true, "cuBLASLt", "install the CUDA toolkit or set CUDA_HOME",
                         libname, sizeof libname, err, errlen);
    if (!lib) return -1;
    RtCuBlasLt *l = &rt_cu.lt;
    SYM(lib, l->Create, "cublasLtCreate");
    SYM(lib, l->Destroy, "cublasLtDestroy");
    SYM(lib, l->MatmulDescCreate, "cublasLtMatmulDescCreate");
    SYM(lib, l->MatmulDescDestroy, "cublasLtMatmulDescDestroy");
    SYM(lib, l->MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
    SYM(lib, l->MatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
    SYM(lib, l->MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
    SYM(lib, l->MatrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute");
    SYM(lib, l->MatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
    SYM(lib, l->MatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
    SYM(lib, l->MatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
    SYM(lib, l->MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
    SYM(lib, l->Matmul, "cublasLtMatmul");
    return 0;
}

const char *rt_cu_error(CUresult r)
{
    const char *s = NULL;
    if (rt_cu.cu.GetErrorString) rt_cu.cu.GetErrorString(r, &s);
    return s ? s : "unknown error";
}

void rt_cu_fail(char *err, size_t errlen, const char *call, const char *why, const char *file, int line)
{
    const char *name = call, *paren = strchr(call, '(');
    for (const char *p = call; p < paren; p++)   /* "rt_cu.cu.LaunchKernel(f, …" → "LaunchKernel" */
        if (*p == '.' || *p == '>') name = p + 1;
    int len = paren ? (int)(paren - name) : (int)strlen(name);
    snprintf(err, errlen, "cuda: %.*s failed: %s (%s:%d)", len, name, why, file, line);
}

static int pick_device(int ordinal, char *err, size_t errlen)
{
    RtCuDriver *d = &rt_cu.cu;
    CUresult r = d->Init(0);
    if (r != 0) {
        snprintf(err, errlen, "no usable GPU: cuInit failed: %s", rt_cu_error(r));
        return -1;
    }
    int n = 0;
    CU_CHECK(d->DeviceGetCount(&n), err, errlen);
    if (n < 1) {
        snprintf(err, errlen, "no usable GPU: the NVIDIA driver sees no device");
        return -1;
    }
    CU_CHECK(d->DeviceGet(&rt_cu.dev, ordinal % n), err, errlen);
    CU_CHECK(d->DeviceGetName(rt_cu.name, (int)sizeof rt_cu.name, rt_cu.dev), err, errlen);
    CU_CHECK(d->DeviceGetAttribute(&rt_cu.cc_major, RT_CU_ATTR_CC_MAJOR, rt_cu.dev), err, errlen);
    CU_CHECK(d->DeviceGetAttribute(&rt_cu.cc_minor, RT_CU_ATTR_CC_MINOR, rt_cu.dev), err, errlen);
    CU_CHECK(d->DeviceGetAttribute(&rt_cu.sms, RT_CU_ATTR_SM_COUNT, rt_cu.dev), err, errlen);
    CU_CHECK(d->DevicePrimaryCtxRetain(&rt_cu.ctx, rt_cu.dev), err, errlen);
    CU_CHECK(d->CtxSetCurrent(rt_cu.ctx), err, errlen);
    size_t free_b = 0;
    CU_CHECK(d->MemGetInfo(&free_b, &rt_cu.mem_total), err, errlen);
    return 0;
}

int rt_cu_open(int ordinal, char *err, size_t errlen)
{
    if (rt_cu.opened) return 0;
    if (load_driver(err, errlen) || pick_device(ordinal, err, errlen) || load_cublaslt(err, errlen)) return -1;
    rt_cu.opened = 1;
    return 0;
}

int rt_cu_nccl_open(char *err, size_t errlen)
{
    if (rt_cu.nccl_opened) return 0;
    static const char *const names[] = {"libnccl.so.2", "libnccl.so"};
    char libname[512];
    void *lib = open_lib("GPTC_LIBNCCL", names, 2, true, "NCCL", "several ranks on the cuda backend need NCCL", libname,
                         sizeof libname, err, errlen);
    if (!lib) return -1;
    RtNccl *c = &rt_cu.nccl;
    SYM(lib, c->GetUniqueId, "ncclGetUniqueId");
    SYM(lib, c->CommInitRank, "ncclCommInitRank");
    SYM(lib, c->CommDestroy, "ncclCommDestroy");
    SYM(lib, c->AllReduce, "ncclAllReduce");
    SYM(lib, c->Broadcast, "ncclBroadcast");
    SYM(lib, c->GetErrorString, "ncclGetErrorString");
    rt_cu.nccl_opened = 1;
    return 0;
}

void rt_cu_arch(char *out, size_t len) { snprintf(out, len, "sm_%d%d", rt_cu.cc_major, rt_cu.cc_minor); }
