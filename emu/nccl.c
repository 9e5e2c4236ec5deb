/* nccl.c — the NCCL entry points gptc uses, between the processes mpirun starts on this
 * machine: the data moves through shared memory (comm.c). All-reduces (average) and
 * broadcasts are stream work like launches: they run in stream order, or are captured into
 * the step's graph and run at every replay. Each checks that it works in place inside an
 * allocation and that what it sends was written. */
#include "emu/comm.h"
#include "emu/emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

enum { NCCL_OK = 0, NCCL_SYSTEM = 2, NCCL_INTERNAL = 3, NCCL_INVALID_ARGUMENT = 4, NCCL_INVALID_USAGE = 5 };
enum { NCCL_F32 = 7, NCCL_BF16 = 9, NCCL_AVG = 4 };

typedef struct { char internal[128]; } UniqueId;
typedef struct { EmuComm *c; } Comm;

static char last[1024];

static int nccl_fail(int rc, const char *why)
{
    snprintf(last, sizeof last, "%s", why);
    return rc;
}

EXPORT const char *ncclGetErrorString(int r) { return last[0] ? last : r ? "NCCL error" : "no error"; }

EXPORT int ncclGetUniqueId(UniqueId *id)
{
    char err[512];
    memset(id, 0, sizeof *id);
    return emu_comm_unique_id(id->internal, err, sizeof err) ? nccl_fail(NCCL_SYSTEM, err) : NCCL_OK;
}

EXPORT int ncclCommInitRank(Comm **c, int n, UniqueId id, int rank)
{
    char err[512];
    *c = calloc(1, sizeof **c);
    if (!*c) return nccl_fail(NCCL_SYSTEM, "cuda emulator: no memory for a communicator");
    if (emu_comm_init(&(*c)->c, n, id.internal, rank, err, sizeof err)) {
        free(*c);
        *c = NULL;
        return nccl_fail(NCCL_SYSTEM, err);
    }
    return NCCL_OK;
}

EXPORT int ncclCommDestroy(Comm *c)
{
    if (c) emu_comm_destroy(c->c);
    free(c);
    return NCCL_OK;
}

typedef struct {
    EmuOp op;
    Comm *comm;
    uintptr_t buf;
    size_t count, bytes;
    int bf16, root;                    /* root < 0: an all-reduce */
} Collective;

static int collective_run(EmuOp *op)
{
    Collective *k = (Collective *)op;
    const char *what = k->root < 0 ? "all-reduce" : "broadcast";
    size_t bad = k->root < 0 || emu_comm_rank(k->comm->c) == k->root ? emu_first_unwritten(k->buf, k->bytes) : k->bytes;
    if (bad < k->bytes)
        return emu_error(EMU_LAUNCH_FAILED, "cuda emulator: NCCL %s of %zu bytes at %#lx sends byte %zu, which nothing "
                         "wrote before", what, k->bytes, (unsigned long)k->buf, bad);
    char err[512];
    int rc = k->root < 0 ? emu_comm_allreduce_avg(k->comm->c, (void *)k->buf, k->count, k->bf16, err, sizeof err)
                         : emu_comm_broadcast(k->comm->c, (void *)k->buf, k->bytes, k->root, err, sizeof err);
    if (rc) return emu_error(EMU_LAUNCH_FAILED, "cuda emulator: NCCL %s: %s", what, err);
    emu_mark_written(k->buf, k->bytes);
    return 0;
}

static int enqueue(const void *send, void *recv, size_t count, int type, int root, Comm *c, const char *name)
{
    size_t es = type == NCCL_F32 ? 4 : type == NCCL_BF16 ? 2 : 0;
    char why[256];
    if (!c || !es || !count) {
        snprintf(why, sizeof why, "cuda emulator: %s: type %d, count %zu or communicator not emulated", name, type, count);
        return nccl_fail(NCCL_INVALID_ARGUMENT, why);
    }
    if (send != recv || !emu_dev_inside((uintptr_t)recv, count * es)) {
        snprintf(why, sizeof why, "cuda emulator: %s of %zu elements is not in place inside one allocation", name, count);
        return nccl_fail(NCCL_INVALID_USAGE, why);
    }
    if (root >= emu_comm_size(c->c)) {
        snprintf(why, sizeof why, "cuda emulator: %s from rank %d of %d", name, root, emu_comm_size(c->c));
        return nccl_fail(NCCL_INVALID_ARGUMENT, why);
    }
    Collective *k = calloc(1, sizeof *k);
    if (!k) return nccl_fail(NCCL_SYSTEM, "cuda emulator: no memory");
    *k = (Collective){{collective_run, NULL, NULL}, c, (uintptr_t)recv, count, count * es, type == NCCL_BF16, root};
    if (emu_submit(&k->op, false)) return nccl_fail(NCCL_INTERNAL, emu_error_text(emu_sticky() ? emu_sticky() : 1));
    return NCCL_OK;
}

EXPORT int ncclAllReduce(const void *send, void *recv, size_t count, int type, int op, Comm *c, void *stream)
{
    if (op != NCCL_AVG) return nccl_fail(NCCL_INVALID_ARGUMENT, "cuda emulator: only ncclAvg all-reduces are emulated");
    return enqueue(send, recv, count, type, -1, c, "ncclAllReduce");
}

EXPORT int ncclBroadcast(const void *send, void *recv, size_t count, int type, int root, Comm *c, void *stream)
{
    if (root < 0) return nccl_fail(NCCL_INVALID_ARGUMENT, "cuda emulator: ncclBroadcast from a negative root");
    return enqueue(send, recv, count, type, root, c, "ncclBroadcast");
}
