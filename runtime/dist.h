/* dist.h — data-parallel collectives across processes (ranks), with MPI loaded at run time.
 *
 * gptc runs either as one process (world size 1; no MPI library needed, every collective
 * is a no-op) or under Open MPI's launcher:
 *     mpirun -np 4 build/gptc train ...
 * The binary does NOT link libmpi. rt_dist_init looks at the environment: when the process
 * was started by mpirun (OMPI_COMM_WORLD_SIZE or PMIX_RANK is set) it dlopen()s
 * "libmpi.so.40" (falling back to "libmpi.so") with RTLD_GLOBAL, finds every MPI function
 * and Open MPI's predefined handles (MPI_COMM_WORLD = &ompi_mpi_comm_world, MPI_DOUBLE =
 * &ompi_mpi_double, MPI_SUM = &ompi_mpi_op_sum, ...) with dlsym, and initialises MPI. It
 * relies on Open MPI's ABI (handles are pointers, MPI_IN_PLACE is (void *)1, MPI_SUCCESS
 * is 0), so only Open MPI (3.x, 4.x, 5.x: soname libmpi.so.40) is supported; <mpi.h> is
 * not needed to build. On Debian: apt-get install openmpi-bin (tools/deps.sh does).
 *
 * Launching (tested with Open MPI 4.1.4 in a Debian 12 container, as root):
 *     mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -np 2 build/gptc ...
 * --allow-run-as-root is required as root (or OMPI_ALLOW_RUN_AS_ROOT=1 and
 * OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1); --oversubscribe when -np exceeds the cores (else
 * "not enough slots"); --mca btl self,vader keeps traffic in shared memory (the default
 * transports worked here too). Under ASan, see tests/sh/dist.sh for the leak options.
 *
 * Semantics. Every rank must call each collective (allreduce, bcast, barrier, max) in the
 * same order with the same count, from the thread that called rt_dist_init and outside
 * OpenMP parallel regions (MPI is initialised with MPI_THREAD_FUNNELED). Counts are
 * int64_t and may exceed INT_MAX: the work is split into chunks of at most
 * RT_DIST_CHUNK elements (bytes for bcast) per MPI call.
 *
 * Errors. rt_dist_init returns -1 with one line in err (e.g. "launched by mpirun but
 * libmpi.so.40 cannot be loaded: ...; install openmpi-bin"). After init, every MPI call
 * goes through one check: on failure it prints MPI's own error string (MPI_Error_string),
 * the rank, the call and its file:line to stderr, then aborts all ranks (rt_dist_abort(1)).
 * Caller bugs (negative count, NULL buffer, root out of range, a collective after
 * rt_dist_finalize or, under mpirun, before rt_dist_init) print a message and abort.
 *
 * OWNERSHIP: the module owns its only state (the library handle, kept loaded until the
 * process exits: Open MPI must not be unloaded). Buffers passed in are borrowed for the
 * duration of the call and modified in place where documented; nothing is handed out. */
#ifndef GPTC_RUNTIME_DIST_H
#define GPTC_RUNTIME_DIST_H

#include <stddef.h>
#include <stdint.h>

#define RT_DIST_CHUNK ((int64_t)1 << 28)   /* elements (bytes for bcast) per MPI call */

/* Sets up the process group. Without mpirun: world size 1, rank 0, nothing loaded, returns
 * 0. Under mpirun: loads libmpi, calls MPI_Init_thread(argc, argv) (argc/argv may be NULL)
 * and makes MPI errors return to the check instead of aborting inside MPI. Returns 0, or
 * -1 with err set (err may be NULL). A second call after success is a no-op returning 0. */
int rt_dist_init(int *argc, char ***argv, char *err, size_t errlen);

int rt_dist_rank(void);   /* this process's rank, 0..size-1 (0 before init) */
int rt_dist_size(void);   /* number of ranks (1 before init and without mpirun) */

/* Which rank owns item `index` (e.g. which rank runs Muon's Newton–Schulz on matrix
 * `index` and then broadcasts the result): index % size. index must be >= 0. With one
 * process always 0. */
int rt_dist_owner(int index);

/* In place, over all ranks: buf[i] = (sum over ranks of buf[i]) / size (mean) or the sum.
 * The f32 sum is accumulated by MPI in float. n >= 0; with one process a no-op. */
void rt_dist_allreduce_mean_f64(double *buf, int64_t n);
void rt_dist_allreduce_mean_f32(float *buf, int64_t n);
void rt_dist_allreduce_sum_f64(double *buf, int64_t n);

/* Copies `bytes` bytes of root's buf into every other rank's buf. 0 <= root < size. */
void rt_dist_bcast(void *buf, int64_t bytes, int root);

void rt_dist_barrier(void);            /* returns when every rank has reached it */
double rt_dist_max_f64(double v);      /* the largest v over all ranks (e.g. step time) */

/* Shuts MPI down (MPI_Finalize); every rank must call it before a normal exit, or mpirun
 * reports the job as failed. Idempotent; a no-op with one process. The library stays
 * loaded. No collective may follow. */
void rt_dist_finalize(void);

/* On a fatal error in one rank: flushes stdout/stderr and ends every rank with exit status
 * `code` (MPI_Abort on MPI_COMM_WORLD; exit(code) with one process). Never returns. */
_Noreturn void rt_dist_abort(int code);

/* ---- test hooks (tests/test_dist.c only) ---- */

/* Splits collectives into chunks of n elements instead of RT_DIST_CHUNK (n <= 0 restores
 * it), so tests exercise the chunking with small buffers. */
void rt_dist_test_set_chunk(int64_t n);
/* Loads `name` instead of libmpi.so.40 / libmpi.so (NULL restores them). */
void rt_dist_test_set_lib(const char *name);
/* Makes one invalid MPI call (a bcast from root -7) through the check: never returns. */
_Noreturn void rt_dist_test_mpi_error(void);

#endif
