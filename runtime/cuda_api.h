/* cuda_api.h — the CUDA driver API, cuBLASLt and NCCL, loaded at run time.
 *
 * gptc links none of them: a binary linked against libcuda does not even start on a
 * machine without an NVIDIA driver, and gptc must run everywhere (its CPU backends, its
 * compiler). rt_cu_open() dlopen()s libcuda.so.1 and libcublasLt, looks up every entry
 * point used and makes the device's primary context current; it fails with one line
 * ("no NVIDIA driver: libcuda.so.1 cannot be loaded …") where there is no GPU. NCCL is
 * loaded only by rt_cu_nccl_open, for runs of several ranks. The types and constants below
 * are the ABI of CUDA 12/13 (cuda.h, cublasLt.h, nccl.h), declared here so that building
 * gptc needs no CUDA headers. GPTC_LIBCUDA, GPTC_LIBCUBLASLT and GPTC_LIBNCCL name other
 * libraries to load (the tests' recording stand-in for the driver uses them).
 *
 * Every call goes through CU_CHECK / LT_CHECK, which turn a failure into an error message
 * naming the call and return -1 from the calling function. */
#ifndef GPTC_RUNTIME_CUDA_API_H
#define GPTC_RUNTIME_CUDA_API_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef int CUresult;                 /* CUDA_SUCCESS = 0 */
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUevent_st *CUevent;

enum {
    RT_CU_ATTR_SM_COUNT = 16,          /* CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT */
    RT_CU_ATTR_CC_MAJOR = 75,
    RT_CU_ATTR_CC_MINOR = 76,
    RT_CU_STREAM_NON_BLOCKING = 1,
    RT_CU_CAPTURE_THREAD_LOCAL = 1,    /* CU_STREAM_CAPTURE_MODE_THREAD_LOCAL */
};

typedef struct {
    CUresult (*Init)(unsigned);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*MemGetInfo)(size_t *, size_t *);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleUnload)(CUmodule);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream,
                             void **, void **);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*MemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*MemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
    CUresult (*StreamCreate)(CUstream *, unsigned);
    CUresult (*StreamSynchronize)(CUstream);
    CUresult (*StreamBeginCapture)(CUstream, int);
    CUresult (*StreamEndCapture)(CUstream, CUgraph *);
    CUresult (*GraphInstantiate)(CUgraphExec *, CUgraph, unsigned long long);
    CUresult (*GraphLaunch)(CUgraphExec, CUstream);
    CUresult (*GraphDestroy)(CUgraph);
    CUresult (*GraphExecDestroy)(CUgraphExec);
    CUresult (*GetErrorString)(CUresult, const char **);
    /* events: only GPTC_PROFILE=1 uses them, to time each kernel of a run */
    CUresult (*EventCreate)(CUevent *, unsigned);
    CUresult (*EventRecord)(CUevent, CUstream);
    CUresult (*EventSynchronize)(CUevent);
    CUresult (*EventElapsedTime)(float *, CUevent, CUevent);
    CUresult (*EventDestroy)(CUevent);
    /* The CUDA emulator's only entry point of its own (NULL on a GPU): the tensors the next
     * launch or product may touch, each [base, base + bytes) read (0), written whole before it
     * is read (1) or both (2), with a label naming its node and model line; `what` names the
     * work. Its checks then hold every access to its tensor and name it in errors. */
    void (*EmuTensors)(const char *what, int n, const CUdeviceptr *base, const size_t *bytes, const int *mode,
                       const char *const *label);
} RtCuDriver;

/* ---- cuBLASLt ---- */
typedef int cublasStatus_t;           /* CUBLAS_STATUS_SUCCESS = 0 */
typedef struct cublasLtContext *cublasLtHandle_t;
typedef struct cublasLtMatmulDescOpaque_t *cublasLtMatmulDesc_t;
typedef struct cublasLtMatrixLayoutOpaque_t *cublasLtMatrixLayout_t;
typedef struct cublasLtMatmulPreferenceOpaque_t *cublasLtMatmulPreference_t;
typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

enum {
    RT_LT_R_32F = 0,                   /* cudaDataType CUDA_R_32F */
    RT_LT_R_16BF = 14,                 /* CUDA_R_16BF */
    RT_LT_COMPUTE_32F = 68,            /* cublasComputeType_t CUBLAS_COMPUTE_32F */
    RT_LT_OP_N = 0,
    RT_LT_OP_T = 1,
    RT_LT_DESC_TRANSA = 3,             /* cublasLtMatmulDescAttributes_t */
    RT_LT_DESC_TRANSB = 4,
    RT_LT_LAYOUT_BATCH_COUNT = 5,      /* cublasLtMatrixLayoutAttribute_t */
    RT_LT_LAYOUT_BATCH_STRIDE = 6,
    RT_LT_PREF_MAX_WORKSPACE = 1,      /* cublasLtMatmulPreferenceAttributes_t */
    RT_LT_PREF_MIN_ALIGN_A = 5,        /* … _B = 6, _C = 7, _D = 8 */
};

typedef struct {
    cublasStatus_t (*Create)(cublasLtHandle_t *);
    cublasStatus_t (*Destroy)(cublasLtHandle_t);
    cublasStatus_t (*MatmulDescCreate)(cublasLtMatmulDesc_t *, int, int);
    cublasStatus_t (*MatmulDescDestroy)(cublasLtMatmulDesc_t);
    cublasStatus_t (*MatmulDescSetAttribute)(cublasLtMatmulDesc_t, int, const void *, size_t);
    cublasStatus_t (*MatrixLayoutCreate)(cublasLtMatrixLayout_t *, int, uint64_t, uint64_t, int64_t);
    cublasStatus_t (*MatrixLayoutDestroy)(cublasLtMatrixLayout_t);
    cublasStatus_t (*MatrixLayoutSetAttribute)(cublasLtMatrixLayout_t, int, const void *, size_t);
    cublasStatus_t (*MatmulPreferenceCreate)(cublasLtMatmulPreference_t *);
    cublasStatus_t (*MatmulPreferenceDestroy)(cublasLtMatmulPreference_t);
    cublasStatus_t (*MatmulPreferenceSetAttribute)(cublasLtMatmulPreference_t, int, const void *, size_t);
    cublasStatus_t (*MatmulAlgoGetHeuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
                                             cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                             cublasLtMatmulPreference_t, int, cublasLtMatmulHeuristicResult_t *, int *);
    cublasStatus_t (*Matmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *, const void *, cublasLtMatrixLayout_t,
                             const void *, cublasLtMatrixLayout_t, const void *, const void *, cublasLtMatrixLayout_t,
                             void *, cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t *, void *, size_t, CUstream);
} RtCuBlasLt;

/* ---- NCCL ---- */
typedef struct ncclComm *ncclComm_t;
typedef struct { char internal[128]; } ncclUniqueId;
enum { RT_NCCL_F32 = 7, RT_NCCL_BF16 = 9, RT_NCCL_SUM = 0, RT_NCCL_AVG = 4 };

typedef struct {
    int (*GetUniqueId)(ncclUniqueId *);
    int (*CommInitRank)(ncclComm_t *, int, ncclUniqueId, int);
    int (*CommDestroy)(ncclComm_t);
    int (*AllReduce)(const void *, void *, size_t, int, int, ncclComm_t, CUstream);
    int (*Broadcast)(const void *, void *, size_t, int, int, ncclComm_t, CUstream);
    const char *(*GetErrorString)(int);
} RtNccl;

/* The loaded libraries and the device, once rt_cu_open succeeded. */
typedef struct {
    RtCuDriver cu;
    RtCuBlasLt lt;
    RtNccl nccl;
    CUdevice dev;
    CUcontext ctx;
    char name[128];                    /* "NVIDIA H100 80GB HBM3" */
    int cc_major, cc_minor, sms;
    size_t mem_total;
    int opened, nccl_opened;
} RtCuda;

extern RtCuda rt_cu;

/* Loads the driver and cuBLASLt, picks device `ordinal` modulo the device count (a rank's
 * local index), makes its primary context current. Idempotent. -1 and one line in err. */
int rt_cu_open(int ordinal, char *err, size_t errlen);
/* Loads NCCL (for several ranks). */
int rt_cu_nccl_open(char *err, size_t errlen);
/* "sm_90" for the open device */
void rt_cu_arch(char *out, size_t len);

/* the text of a driver error */
const char *rt_cu_error(CUresult r);

/* "cuda: LaunchKernel failed: <driver's text> (runtime/cuda.c:228)": the call's name only */
void rt_cu_fail(char *err, size_t errlen, const char *call, const char *why, const char *file, int line);

#define CU_CHECK(call, err, errlen)                                                    \
    do {                                                                               \
        CUresult cu_rc_ = (call);                                                      \
        if (cu_rc_ != 0) {                                                             \
            rt_cu_fail(err, errlen, #call, rt_cu_error(cu_rc_), __FILE__, __LINE__);   \
            return -1;                                                                 \
        }                                                                              \
    } while (0)

#define LT_CHECK(call, err, errlen)                                                    \
    do {                                                                               \
        cublasStatus_t lt_rc_ = (call);                                                \
        if (lt_rc_ != 0) {                                                             \
            char lt_why_[32];                                                          \
            snprintf(lt_why_, sizeof lt_why_, "cuBLAS status %d", lt_rc_);             \
            rt_cu_fail(err, errlen, #call, lt_why_, __FILE__, __LINE__);               \
            return -1;                                                                 \
        }                                                                              \
    } while (0)

#endif
