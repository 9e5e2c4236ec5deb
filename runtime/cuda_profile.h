/* cuda_profile.h — GPTC_PROFILE=1 on the cuda backend (private to runtime/): each kernel of
 * a run timed between events, reported on stderr per kind and as the slowest kernels,
 * beside the roofline model's estimate of each when one is given. */
#ifndef GPTC_CUDA_PROFILE_H
#define GPTC_CUDA_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "codegen/codegen.h"
#include "runtime/cuda_api.h"

typedef struct RtGpuProfile RtGpuProfile;

/* GPTC_PROFILE is set (and not 0) */
bool rt_gpu_profiling(void);
/* events for step s's nk kernels; name titles the reports ("executor 1"); ptxas_log is
 * NVRTC's log of the module (for the estimates; may be NULL); borrows s and name */
RtGpuProfile *rt_gpu_profile_new(const CgStep *s, const char *name, const char *ptxas_log, char *err, size_t errlen);
/* what the estimates assume: a runtime scalar set (name borrowed), an integer leaf set (the
 * tokens of an attention: their documents) */
void rt_gpu_profile_scalar(RtGpuProfile *p, const char *name, double v);
void rt_gpu_profile_tokens(RtGpuProfile *p, const IrNode *leaf, const int32_t *data);
/* records the event before kernel k on the stream (k = nk: after the last) */
int rt_gpu_profile_mark(RtGpuProfile *p, int k, CUstream stream, char *err, size_t errlen);
/* waits for the run, prints it beside the estimates (when the log had the figures) */
int rt_gpu_profile_report(RtGpuProfile *p, char *err, size_t errlen);
void rt_gpu_profile_free(RtGpuProfile *p);

#endif
