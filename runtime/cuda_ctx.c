/* cuda_ctx.c — what the cuda executors of one process share: the device (a rank takes
 * the GPU of its local index), one stream (executors hand tensors to each other in stream
 * order, so no copy needs a wait), and, with several ranks, the NCCL communicator,
 * bootstrapped through MPI (rank 0's unique id broadcast with rt_dist_bcast). The device's
 * primary context and the stream live as long as the process; the communicator is
 * destroyed at exit. */
#include "runtime/backend.h"

#include "runtime/cuda_api.h"

#include <stdlib.h>
#include <string.h>

static CUstream stream;
static ncclComm_t comm;

static int local_rank(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "LOCAL_RANK"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

static void close_nccl(void)
{
    if (comm) rt_cu.nccl.CommDestroy(comm);
    comm = NULL;
}

static int open_nccl(char *err, size_t errlen)
{
    if (rt_cu_nccl_open(err, errlen)) return -1;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (rt_dist_rank() == 0) {
        int r = rt_cu.nccl.GetUniqueId(&id);
        if (r != 0) {
            snprintf(err, errlen, "NCCL: ncclGetUniqueId failed: %s", rt_cu.nccl.GetErrorString(r));
            return -1;
        }
    }
    rt_dist_bcast(&id, (int64_t)sizeof id, 0);
    int r = rt_cu.nccl.CommInitRank(&comm, rt_dist_size(), id, rt_dist_rank());
    if (r != 0) {
        snprintf(err, errlen, "NCCL: ncclCommInitRank (rank %d of %d) failed: %s", rt_dist_rank(), rt_dist_size(),
                 rt_cu.nccl.GetErrorString(r));
        return -1;
    }
    atexit(close_nccl);
    return 0;
}

int rt_gpu_open(char *err, size_t errlen)
{
    if (stream) return 0;
    if (rt_cu_open(local_rank(), err, errlen)) return -1;
    CU_CHECK(rt_cu.cu.StreamCreate(&stream, RT_CU_STREAM_NON_BLOCKING), err, errlen);
    if (rt_dist_size() > 1 && open_nccl(err, errlen)) return -1;
    return 0;
}

CUstream rt_gpu_stream(void) { return stream; }

ncclComm_t rt_gpu_comm(void) { return comm; }

void rt_gpu_describe(char *out, size_t len)
{
    snprintf(out, len, "%s (sm_%d%d, %d SMs, %.1f GB)", rt_cu.name, rt_cu.cc_major, rt_cu.cc_minor, rt_cu.sms,
             rt_cu.mem_total / 1e9);
}
