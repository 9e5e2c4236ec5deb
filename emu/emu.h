/* emu.h — the CUDA emulator's insides, shared by its files (private to emu/).
 *
 * The emulator is one shared library, libgptc-cudaemu.so, that exports the entry points gptc
 * loads at run time from libcuda, NVRTC, cuBLASLt and NCCL (GPTC_CUDA_EMULATE=1 makes gptc
 * load it in their place). "Device" memory is host memory in one reserved address range;
 * kernels are the generated CUDA source compiled for the host (nvrtc.c) and run one block at
 * a time per worker thread, every CUDA thread of the block on a fiber of its own (exec.c);
 * every global and shared access of a kernel goes through check.c. Stream work runs when it
 * is enqueued, or is recorded into a graph while the stream captures (driver.c).
 *
 *   driver.c   the driver API: device, memory, launches, copies, streams, graphs
 *   module.c   modules: the compiled kernels loaded, once per worker thread
 *   exec.c     a launch: the worker pool, blocks on fibers, barriers, warp shuffles, atomics
 *   fiber.c    stacks and the context switch
 *   check.c    the access checks (tensor extents, unwritten reads, shared-memory races,
 *              alignment) and the error every check reports
 *   nvrtc.c    the NVRTC API: the real NVRTC for the log and limits, then c++ for the host
 *   blaslt.c   the cuBLASLt API: products from their descriptors
 *   nccl.c     the NCCL API over comm.c (shared memory between the ranks' processes) */
#ifndef GPTC_EMU_H
#define GPTC_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CUresult values the emulator returns (cuda.h) */
enum {
    EMU_OK = 0,
    EMU_INVALID_VALUE = 1,
    EMU_OUT_OF_MEMORY = 2,
    EMU_NO_DEVICE = 100,
    EMU_INVALID_IMAGE = 200,
    EMU_NOT_FOUND = 500,
    EMU_ILLEGAL_ADDRESS = 700,
    EMU_LAUNCH_OUT_OF_RESOURCES = 701,
    EMU_MISALIGNED_ADDRESS = 716,
    EMU_LAUNCH_FAILED = 719,
    EMU_CAPTURE_UNSUPPORTED = 900,
    EMU_CAPTURE_INVALIDATED = 901,
};

/* the limits of sm_90 (H100) the emulator holds launches to */
enum {
    EMU_MAX_THREADS = 1024,
    EMU_MAX_BLOCK_Z = 64,
    EMU_MAX_GRID_YZ = 65535,
    EMU_MAX_STATIC_SMEM = 48 * 1024,
    EMU_REGS_PER_SM = 65536,
    EMU_SMS = 132,
};

/* ---- the thread a kernel sees: prelude.cuh declares the same layout ---------------------- */
typedef struct { unsigned x, y, z; } EmuDim3;
typedef struct { EmuDim3 tid, bid, bdim, gdim; } EmuThreadInfo;

/* ---- a kernel of a loaded module (the table nvrtc.c's trampolines export) ---------------- */
enum { EMU_MAX_PARAMS = 256 };
typedef struct {
    const char *name;
    void (*run)(void **params);
    int nparams;
    unsigned short param_size[EMU_MAX_PARAMS];
    int launch_bounds;                 /* __launch_bounds__ threads, 0 when none */
} EmuKernelEntry;

typedef struct EmuModule EmuModule;
typedef struct {
    const EmuKernelEntry *e;           /* in the module's first copy (name, parameters, bounds) */
    int index;                         /* in the table of every copy */
    EmuModule *mod;
    int regs, smem;                    /* from ptxas (the real NVRTC's log), -1 unknown */
    double seconds;                    /* time spent in its launches (GPTC_EMU_PROFILE) */
    long launches;
} EmuFunc;

/* ---- tensors the runtime describes for the next piece of work (gptcEmuTensors) ------------ */
enum { EMU_READ = 0, EMU_WRITE = 1, EMU_READ_WRITE = 2 };
typedef struct {
    uintptr_t base;
    size_t bytes;
    int mode;
    char *label;                       /* "%35 MUL (models/gpt2m.gptc:57)" */
} EmuTensor;
typedef struct {
    char *what;                        /* the kernel's node: "computes %35 MUL (…:57)" */
    int n;
    EmuTensor *t;
} EmuTensors;
EmuTensors *emu_tensors_copy(const EmuTensors *t);
void emu_tensors_free(EmuTensors *t);

/* ---- device memory (driver.c) -------------------------------------------------------------- */
/* is [p, p + n) inside one live allocation? */
bool emu_dev_inside(uintptr_t p, size_t n);
extern uintptr_t emu_dev_lo, emu_dev_span;   /* the reserved range */
/* one byte of shadow per device byte: 1 once written */
static inline unsigned char *emu_shadow(uintptr_t p) { return (unsigned char *)(p + emu_dev_span); }
/* the offset of the first unwritten byte of [p, p + n), or n */
size_t emu_first_unwritten(uintptr_t p, size_t n);
void emu_mark_written(uintptr_t p, size_t n);
void emu_mark_unwritten(uintptr_t p, size_t n);

/* ---- errors (check.c) ------------------------------------------------------------------------ */
/* Records the first error (sticky, as a faulted context is on the device) and returns code.
 * The text is what cuGetErrorString gives for it. */
int emu_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int emu_sticky(void);                  /* the recorded code, or 0 */
const char *emu_error_text(int code);

/* ---- stream work (driver.c) ---------------------------------------------------------------- */
/* One piece of stream work: a launch, a copy, a product, a collective. It runs when it is
 * submitted, or, while the stream captures, is recorded into the graph and runs at every
 * replay. Kinds embed it first. */
typedef struct EmuOp EmuOp;
struct EmuOp {
    int (*run)(EmuOp *op);             /* 0, or the error code (the error recorded) */
    void (*drop)(EmuOp *op);           /* frees what the kind owns (not op itself), or NULL */
    EmuTensors *tensors;               /* what the runtime described for it, or NULL */
};
/* takes ownership of op (malloc'ed); when `described`, the tensors the runtime described
 * last are attached to it */
int emu_submit(EmuOp *op, bool described);

/* ---- a launch (exec.c) ----------------------------------------------------------------------- */
typedef struct {
    const EmuFunc *f;
    EmuDim3 grid, block;
    void **params;
    const EmuTensors *tensors;         /* may be NULL: then only allocations are checked */
} EmuLaunch;
/* runs every block; returns 0 or the error code (the error recorded) */
int emu_launch_run(const EmuLaunch *l);
/* runs fn(ctx, task) for task in [0, n) on the worker threads */
void emu_parallel(int n, void (*fn)(void *ctx, int task), void *ctx);
/* The copy of module m for worker `id` (loaded on first use): every worker runs its blocks
 * in a copy of its own, so that each has its own __shared__ arrays. Its kernel table and the
 * range of its __shared__ arrays; NULL when it cannot be loaded. */
enum { EMU_MAX_WORKERS = 32 };
const EmuKernelEntry *emu_module_copy(EmuModule *m, int id, uintptr_t *sh_lo, size_t *sh_size);

/* ---- fibers (fiber.c) ------------------------------------------------------------------------ */
typedef struct {
    void *sp;                          /* saved stack pointer while switched out */
    char *stack;
    size_t size, color;                /* color: the top's offset below the end */
    const void *asan_bottom;           /* for the sanitizer's fiber annotations */
    size_t asan_size;
    void *asan_fake;
} EmuFiber;
/* makes f start entry() on its stack at the next switch to it */
void emu_fiber_prepare(EmuFiber *f, void (*entry)(void));
void emu_fiber_switch(EmuFiber *from, EmuFiber *to);
/* the last switch away from a fiber that is done (never resumed) */
void emu_fiber_exit(EmuFiber *from, EmuFiber *to) __attribute__((noreturn));
/* the first thing a fiber's entry does (for the sanitizer) */
void emu_fiber_started(void);
/* the context of a worker thread's own stack, which its fibers switch back to */
void emu_fiber_scheduler(EmuFiber *sched);
/* a stack of `size` bytes above a guard page for the index-th thread; -1 when memory is short */
int emu_fiber_stack(EmuFiber *f, size_t size, int index);
void emu_fiber_release(EmuFiber *f);

/* ---- a worker thread running blocks (exec.c), as the checks see it ------------------------ */
/* one 4-byte word of a block's shared memory: which thread last wrote and read it, at which
 * barrier epoch, in which block execution (gen: entries of earlier blocks read as never written) */
enum { EMU_MANY = 0xffff };
typedef struct {
    uint32_t gen, wepoch, repoch;
    uint16_t writer, reader;
} EmuShEntry;

enum { EMU_RUNNABLE, EMU_AT_BARRIER, EMU_AT_WARP, EMU_EXITED };
typedef struct {
    EmuFiber fiber;
    EmuThreadInfo info;
    int index, state;
    unsigned shfl_in, shfl_out;        /* a warp shuffle's value, given and received */
    int shfl_src;                      /* the lane it reads */
    const EmuTensor *last;             /* the tensor of its last global access */
} EmuThread;

typedef struct {
    int arrived, line;                 /* lanes waiting at a warp operation, and where */
    unsigned mask;
} EmuWarp;

typedef struct EmuWorker {
    EmuFiber sched;                    /* the scheduler's own context */
    EmuThread *t;                      /* the block's threads */
    int nt_alloc;
    EmuThread *cur;                    /* the running one */
    const EmuLaunch *launch;
    EmuDim3 bid;
    int nthreads, alive, exited;
    int arrived, bar_line, bar_first;  /* the barrier being gathered */
    uint32_t epoch, gen;
    EmuWarp warp[EMU_MAX_THREADS / 32];
    uintptr_t sh_lo;                   /* the module's __shared__ arrays for this thread */
    size_t sh_size;
    EmuModule *sh_mod;
    const EmuKernelEntry *entries;     /* the kernels of this worker's copy of sh_mod */
    int id;                            /* which copy of a module it runs */
    void *warp_ops;                    /* exec.c's areas of warp-wide instructions (mma, ldmatrix),
                                        * one a warp, made at the first */
    EmuShEntry *sh;                    /* their shadow, an entry a word */
    bool aborted;
} EmuWorker;
extern __thread EmuWorker *emu_worker __attribute__((tls_model("initial-exec")));

/* "kernel k_… (computes %35 MUL at …:57), block (3,0,0), thread (17,0,0)" */
void emu_where(char *out, size_t len);
/* "thread (x,y,z)" of the running block's thread i */
void emu_thread_name(const EmuWorker *w, int i, char *out, size_t len);
/* stops the running CUDA thread's block after an error (never returns to the kernel) */
void emu_abort_block(void) __attribute__((noreturn));
/* records "cuda emulator: WHERE: WHAT" as the error (check.c) and stops the block */
void emu_fail(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* ---- the access checks (check.c), called by the kernels' instrumentation ------------------- */
enum { EMU_LOAD = 0, EMU_STORE = 1, EMU_ATOMIC = 2 };
void emu_access(uintptr_t p, size_t n, int kind);

#endif
