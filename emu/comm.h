/* comm.h — the emulated NCCL's data movement between the ranks of one machine (processes
 * started by mpirun), through one POSIX shared-memory segment per communicator, the way
 * NCCL's shm transport works within a node.
 *
 *     char id[EMU_COMM_ID_BYTES];
 *     if (rank == 0) emu_comm_unique_id(id, err, sizeof err);   then hand id to every rank
 *     EmuComm *c;
 *     if (emu_comm_init(&c, nranks, id, rank, err, sizeof err)) { report err }
 *     emu_comm_allreduce_avg(c, grads, n, 0, err, sizeof err);
 *     emu_comm_destroy(c);
 *
 * Every rank issues the same collectives in the same order with the same arguments; a rank
 * that issues a different one, or none, makes the call fail on every rank (a mismatch is
 * named at once, a missing rank after the timeout: GPTC_EMU_COMM_TIMEOUT seconds, 120 by
 * default). After any failure the communicator only fails; destroy it. Functions return
 * 0, or -1 with a one-line message in err (err may be NULL); nothing is printed.
 *
 * Ownership: the communicator belongs to the caller until emu_comm_destroy; buffers are
 * borrowed for the call. One thread at a time uses a communicator. Depends only on libc,
 * pthread and librt (link with -lpthread -lrt). */
#ifndef GPTC_EMU_COMM_H
#define GPTC_EMU_COMM_H

#include <stddef.h>

/* one communicator of nranks processes on this machine */
typedef struct EmuComm EmuComm;

enum { EMU_COMM_ID_BYTES = 128 };

/* Rank 0 makes the id: the name of the shared segment ("/gptc-emu-<pid>-<random>-<n>",
 * NUL-terminated), unique per call. The caller hands all EMU_COMM_ID_BYTES bytes to the
 * other ranks (gptc broadcasts them through MPI). Nothing is created yet. */
int emu_comm_unique_id(char id[EMU_COMM_ID_BYTES], char *err, size_t errlen);

/* Every rank calls this with the same id and nranks and its own rank in 0..nranks-1; it
 * returns once all nranks have joined (or -1 after the timeout, naming the ranks that
 * never came). Whichever rank comes first creates the segment and reserves its memory, so
 * a /dev/shm too small is an error here rather than a crash later. When it returns 0 on
 * any rank the segment's name is already unlinked: nothing is left in /dev/shm even if a
 * rank is killed later. Ranks that disagree on nranks, or two ranks with one number, fail. */
int emu_comm_init(EmuComm **c, int nranks, const char id[EMU_COMM_ID_BYTES], int rank, char *err,
                  size_t errlen);

/* In place: buf (count elements: float if !bf16, else bf16 stored as uint16_t) becomes the
 * average over the ranks, identical on every rank: for each element, the sum in float in
 * rank order 0..n-1, then divided by n in float (bf16: each element converted to float,
 * summed and divided the same way, rounded to nearest even back to bf16; NaN stays NaN).
 * Any count: large buffers go through the segment in chunks. */
int emu_comm_allreduce_avg(EmuComm *c, void *buf, size_t count, int bf16, char *err, size_t errlen);

/* In place: the bytes of buf on every rank become root's. */
int emu_comm_broadcast(EmuComm *c, void *buf, size_t bytes, int root, char *err, size_t errlen);

int emu_comm_rank(const EmuComm *c);
int emu_comm_size(const EmuComm *c);

/* Unmaps the segment and frees c (NULL is fine). Other ranks are not waited for. */
void emu_comm_destroy(EmuComm *c);

#endif
