/* exec.c — a launch: every block of the grid runs on one worker thread, every CUDA thread
 * of the block on a fiber of its own.
 *
 * The scheduler of a block runs its runnable threads in order, each until it waits (at
 * __syncthreads or a warp shuffle) or returns. The last thread to reach a barrier releases
 * the others and goes on; so does the last lane of a shuffle, after handing every lane the
 * value it reads; at a warp-wide instruction (mma, ldmatrix), after computing every lane's
 * results. What a real GPU leaves undefined is reported and stops the launch:
 *   - a barrier reached after some threads of the block returned, or while they wait at
 *     another barrier, or a thread that returns while others wait for it (divergent);
 *   - a shuffle whose mask names a lane that returned or is missing, or lanes that meet at
 *     different shuffles; a warp-wide instruction without every lane of the warp, or whose
 *     lanes meet at different ones; threads that wait for each other forever.
 * Blocks are shared among the worker threads (GPTC_EMU_THREADS, default the machine's
 * cores, at most 16), as SMs share a grid: their order is not fixed, so float atomics may
 * sum in another order from run to run, as on the device. */
#include "emu/emu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define STACK_BYTES (128 * 1024)

/* initial-exec: a load at a fixed offset from the thread pointer, where the default model of a
 * loaded library calls __tls_get_addr on every access (the kernels read emu_self for every
 * threadIdx, the checks emu_worker for every access) */
__thread EmuWorker *emu_worker __attribute__((tls_model("initial-exec")));
EXPORT __thread const EmuThreadInfo *emu_self __attribute__((tls_model("initial-exec")));

/* ---- the worker pool ------------------------------------------------------------------------ */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    int threads;                       /* pool threads besides the caller */
    unsigned long job;                 /* bumped for every job */
    int active;
    void (*fn)(void *, int);
    void *ctx;
    int n;
    atomic_int next;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, 0, 0, NULL, NULL, 0, 0};

static void work(void)
{
    for (int i; (i = atomic_fetch_add(&pool.next, 1)) < pool.n;) pool.fn(pool.ctx, i);
}

static void *pool_main(void *arg)
{
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&pool.mu);
        while (pool.job == seen) pthread_cond_wait(&pool.go, &pool.mu);
        seen = pool.job;
        pthread_mutex_unlock(&pool.mu);
        work();
        pthread_mutex_lock(&pool.mu);
        if (--pool.active == 0) pthread_cond_signal(&pool.done);
        pthread_mutex_unlock(&pool.mu);
    }
    return arg;
}

static int pool_threads(void)
{
    if (pool.threads >= 0) return pool.threads;
    const char *e = getenv("GPTC_EMU_THREADS");
    long n = e && *e ? atol(e) : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 16) n = 16;
    pool.threads = 0;
    for (long i = 1; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, pool_main, NULL)) break;
        pthread_detach(t);
        pool.threads++;
    }
    return pool.threads;
}

void emu_parallel(int n, void (*fn)(void *ctx, int task), void *ctx)
{
    if (n <= 1 || pool_threads() == 0) {
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn, pool.ctx = ctx, pool.n = n;
    atomic_store(&pool.next, 0);
    pool.active = pool.threads;
    pool.job++;
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    work();
    pthread_mutex_lock(&pool.mu);
    while (pool.active > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}

/* ---- where a thread is, for messages -------------------------------------------------------- */

static void dim_text(char *out, size_t len, EmuDim3 d) { snprintf(out, len, "(%u,%u,%u)", d.x, d.y, d.z); }

void emu_where(char *out, size_t len)
{
    const EmuWorker *w = emu_worker;
    char b[48], t[48];
    dim_text(b, sizeof b, w->bid);
    dim_text(t, sizeof t, w->cur->info.tid);
    const EmuTensors *ts = w->launch->tensors;
    snprintf(out, len, "kernel %s%s%s%s, block %s, thread %s", w->launch->f->e->name, ts ? " (" : "",
             ts ? ts->what : "", ts ? ")" : "", b, t);
}

void emu_thread_name(const EmuWorker *w, int i, char *out, size_t len)
{
    char t[48];
    dim_text(t, sizeof t, w->t[i].info.tid);
    snprintf(out, len, "thread %s", t);
}

void emu_abort_block(void)
{
    EmuWorker *w = emu_worker;
    w->aborted = true;
    emu_fiber_exit(&w->cur->fiber, &w->sched);
}

/* the per-warp areas of warp-wide instructions (mma, ldmatrix: emu_warp_op) */
#define WARP_OP_WORDS 16   /* the most words a lane gives or takes */
typedef void WarpOpFn(const unsigned *in, unsigned *out, int stride);
typedef struct {
    unsigned in[32 * WARP_OP_WORDS], out[32 * WARP_OP_WORDS];   /* lane l's at l * WARP_OP_WORDS */
    WarpOpFn *op;                      /* the instruction the waiting lanes are at; NULL at a shuffle */
} WarpOp;
/* a worker's (EmuWorker.warp_ops), one a warp of its block, made at its first warp-wide
 * instruction; workers live as long as the process */
static WarpOp *warp_ops_of(const EmuWorker *w) { return w->warp_ops; }

/* ---- barriers and shuffles --------------------------------------------------------------------- */

/* the next runnable lane of t's warp after t, or NULL */
static EmuThread *next_in_warp(EmuWorker *w, const EmuThread *t)
{
    int base = t->index - t->index % 32, end = base + 32 < w->nthreads ? base + 32 : w->nthreads;
    for (int k = 1; k < end - base; k++) {
        EmuThread *o = &w->t[base + (t->index - base + k) % (end - base)];
        if (o->state == EMU_RUNNABLE) return o;
    }
    return NULL;
}

/* the running thread waits: straight on to the next lane of its warp that can run (one switch
 * where going through the scheduler takes two), else back to the scheduler */
static void wait_here(EmuWorker *w, int state)
{
    EmuThread *t = w->cur, *next = next_in_warp(w, t);
    t->state = state;
    if (!next) {
        emu_fiber_switch(&t->fiber, &w->sched);
        return;
    }
    w->cur = next;
    emu_self = &next->info;
    emu_fiber_switch(&t->fiber, &next->fiber);
}

EXPORT void emu_syncthreads(int line)
{
    EmuWorker *w = emu_worker;
    if (w->exited > 0)
        emu_fail(EMU_LAUNCH_FAILED, "reaches __syncthreads (line %d of the CUDA source) after %d threads of its block "
             "returned: a barrier some threads never reach", line, w->exited);
    if (w->arrived == 0) w->bar_line = line, w->bar_first = w->cur->index;
    else if (line != w->bar_line) {
        char other[64];
        emu_thread_name(w, w->bar_first, other, sizeof other);
        emu_fail(EMU_LAUNCH_FAILED, "waits at __syncthreads on line %d while %s waits at the one on line %d", line, other,
             w->bar_line);
    }
    if (++w->arrived < w->alive) {
        wait_here(w, EMU_AT_BARRIER);
        return;
    }
    for (int i = 0; i < w->nthreads; i++)   /* the last one: the barrier opens */
        if (w->t[i].state == EMU_AT_BARRIER) w->t[i].state = EMU_RUNNABLE;
    w->arrived = 0;
    w->epoch++;
}

/* the lanes of the running thread's warp that exist (a last warp may be partial) */
static unsigned warp_lanes(const EmuWorker *w, int base)
{
    int n = w->nthreads - base;
    return n >= 32 ? 0xffffffffu : (1u << n) - 1;
}

static void check_mask(EmuWorker *w, unsigned mask, int lane, int base, int line)
{
    if (!(mask & (1u << lane)))
        emu_fail(EMU_LAUNCH_FAILED, "calls a warp shuffle (line %d) with a mask %#x that lacks its own lane", line, mask);
    if (mask & ~warp_lanes(w, base))
        emu_fail(EMU_LAUNCH_FAILED, "calls a warp shuffle (line %d) with a mask %#x that names lanes beyond the block",
             line, mask);
    for (int l = 0; w->exited && l < 32; l++)   /* only once some thread returned */
        if ((mask & (1u << l)) && w->t[base + l].state == EMU_EXITED)
            emu_fail(EMU_LAUNCH_FAILED, "calls a warp shuffle (line %d) whose mask names lane %d, which has returned",
                 line, l);
}

EXPORT unsigned emu_shfl_xor(unsigned mask, unsigned bits, int lane_mask, int width, int line)
{
    EmuWorker *w = emu_worker;
    EmuThread *t = w->cur;
    int lane = t->index % 32, base = t->index - lane;
    EmuWarp *wp = &w->warp[t->index / 32];
    check_mask(w, mask, lane, base, line);
    if (width < 1 || width > 32 || (width & (width - 1)))
        emu_fail(EMU_LAUNCH_FAILED, "calls a warp shuffle (line %d) of width %d, not a power of two up to 32", line, width);
    WarpOp *o = w->warp_ops ? &warp_ops_of(w)[t->index / 32] : NULL;
    if (wp->arrived == 0) {
        wp->mask = mask, wp->line = line;
        if (o) o->op = NULL;   /* left over from a block stopped mid-instruction */
    } else if (wp->mask != mask || wp->line != line || (o && o->op))
        emu_fail(EMU_LAUNCH_FAILED, "meets its warp at a shuffle on line %d, where other lanes wait at line %d (or with "
             "another mask)", line, wp->line);
    int src = lane ^ (lane_mask & 31);
    if (src / width > lane / width) src = lane;   /* beyond its segment of the warp: its own value */
    if (!(mask & (1u << src)))
        emu_fail(EMU_LAUNCH_FAILED, "reads lane %d in a warp shuffle (line %d), which its mask leaves out", src, line);
    t->shfl_in = bits;
    t->shfl_src = base + src;
    if (++wp->arrived < __builtin_popcount(mask)) {
        wait_here(w, EMU_AT_WARP);
        return t->shfl_out;
    }
    for (unsigned rest = mask; rest; rest &= rest - 1) {   /* the last lane: everyone reads its source */
        EmuThread *o = &w->t[base + __builtin_ctz(rest)];
        o->shfl_out = w->t[o->shfl_src].shfl_in;
        if (o->state == EMU_AT_WARP) o->state = EMU_RUNNABLE;
    }
    wp->arrived = 0;
    return t->shfl_out;
}

/* ---- warp-wide instructions (the prelude's mma and ldmatrix) --------------------------------- */

/* The running lane is at instruction op with nin words; once every lane of mask is, the last
 * to arrive runs op over all of them and each lane takes its nout words into out. A lane reads
 * its results before it can reach the next instruction, and the next op runs only once every
 * lane has, so one area a warp suffices. */
EXPORT void emu_warp_op(unsigned mask, const unsigned *in, int nin, unsigned *out, int nout, WarpOpFn *op, int line)
{
    EmuWorker *w = emu_worker;
    EmuThread *t = w->cur;
    int lane = t->index % 32, base = t->index - lane;
    EmuWarp *wp = &w->warp[t->index / 32];
    if (!w->warp_ops && !(w->warp_ops = calloc(EMU_MAX_THREADS / 32, sizeof(WarpOp))))
        emu_fail(EMU_OUT_OF_MEMORY, "no memory for a warp-wide instruction (line %d)", line);
    WarpOp *o = &warp_ops_of(w)[t->index / 32];
    check_mask(w, mask, lane, base, line);
    if (mask != warp_lanes(w, base))
        emu_fail(EMU_LAUNCH_FAILED, "runs a warp-wide mma or ldmatrix (line %d) with lanes %#x, not the whole warp "
             "(%#x): .sync.aligned needs every lane", line, mask, warp_lanes(w, base));
    if (nin > WARP_OP_WORDS || nout > WARP_OP_WORDS)
        emu_fail(EMU_LAUNCH_FAILED, "a warp-wide instruction (line %d) of more than %d words a lane", line, WARP_OP_WORDS);
    if (wp->arrived == 0) wp->mask = mask, wp->line = line, o->op = op;
    else if (wp->mask != mask || wp->line != line || o->op != op)
        emu_fail(EMU_LAUNCH_FAILED, "meets its warp at a warp-wide instruction on line %d, where other lanes wait at "
             "another one or a shuffle (line %d)", line, wp->line);
    memcpy(o->in + lane * WARP_OP_WORDS, in, sizeof *in * (size_t)nin);
    if (++wp->arrived < __builtin_popcount(mask)) wait_here(w, EMU_AT_WARP);
    else {
        op(o->in, o->out, WARP_OP_WORDS);
        for (unsigned rest = mask; rest; rest &= rest - 1) {
            EmuThread *l = &w->t[base + __builtin_ctz(rest)];
            if (l->state == EMU_AT_WARP) l->state = EMU_RUNNABLE;
        }
        wp->arrived = 0;
        o->op = NULL;
    }
    memcpy(out, o->out + lane * WARP_OP_WORDS, sizeof *out * (size_t)nout);
}

EXPORT float emu_atomic_add_f32(float *p, float v)
{
    emu_access((uintptr_t)p, 4, EMU_ATOMIC);
    uint32_t old = __atomic_load_n((uint32_t *)p, __ATOMIC_RELAXED), next;
    float f;
    do {
        memcpy(&f, &old, 4);
        float sum = f + v;
        memcpy(&next, &sum, 4);
    } while (!__atomic_compare_exchange_n((uint32_t *)p, &old, next, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return f;
}

EXPORT int emu_atomic_add_i32(int *p, int v)
{
    emu_access((uintptr_t)p, 4, EMU_ATOMIC);
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

/* ---- a block -------------------------------------------------------------------------------------- */

static void thread_returns(EmuWorker *w)
{
    EmuThread *t = w->cur;
    t->state = EMU_EXITED;
    w->alive--, w->exited++;
    if (w->arrived > 0) {
        char other[64];
        emu_thread_name(w, w->bar_first, other, sizeof other);
        emu_fail(EMU_LAUNCH_FAILED, "returns while %s and others wait at __syncthreads (line %d): a barrier some threads "
             "never reach", other, w->bar_line);
    }
    const EmuWarp *wp = &w->warp[t->index / 32];
    if (wp->arrived > 0 && (wp->mask & (1u << (t->index % 32))))
        emu_fail(EMU_LAUNCH_FAILED, "returns while lanes of its warp wait for it at a shuffle (line %d)", wp->line);
    EmuThread *next = next_in_warp(w, t);
    if (next) w->cur = next, emu_self = &next->info;
    emu_fiber_exit(&t->fiber, next ? &next->fiber : &w->sched);
}

static void fiber_entry(void)
{
    EmuWorker *w = emu_worker;
    emu_fiber_started();
    w->entries[w->launch->f->index].run(w->launch->params);
    thread_returns(w);
}

static int grow_threads(EmuWorker *w, int n)
{
    if (n <= w->nt_alloc) return 0;
    EmuThread *t = realloc(w->t, sizeof *t * (size_t)n);
    if (!t) return -1;
    w->t = t;
    for (int i = w->nt_alloc; i < n; i++) {
        memset(&t[i], 0, sizeof t[i]);
        if (emu_fiber_stack(&t[i].fiber, STACK_BYTES, i)) return -1;
        w->nt_alloc = i + 1;
    }
    return 0;
}

/* this worker's copy of the launch's module: its kernels, its __shared__ arrays and a shadow
 * as large */
static int bind_module(EmuWorker *w, EmuModule *m)
{
    if (w->sh_mod == m) return 0;
    uintptr_t lo;
    size_t size;
    const EmuKernelEntry *e = emu_module_copy(m, w->id, &lo, &size);
    if (!e) return -1;
    free(w->sh);
    w->sh = calloc(size / 4 + 1, sizeof *w->sh);   /* a shadow entry a 4-byte word */
    if (!w->sh) return -1;
    w->entries = e, w->sh_lo = lo, w->sh_size = size, w->sh_mod = m, w->gen = 0;
    return 0;
}

static void start_block(EmuWorker *w, const EmuLaunch *l, unsigned long linear)
{
    const EmuDim3 g = l->grid, b = l->block;
    w->bid = (EmuDim3){(unsigned)(linear % g.x), (unsigned)(linear / g.x % g.y), (unsigned)(linear / g.x / g.y)};
    int n = (int)(b.x * b.y * b.z);
    for (int i = 0; i < n; i++) {
        EmuThread *t = &w->t[i];
        t->index = i, t->state = EMU_RUNNABLE, t->last = NULL;
        t->info = (EmuThreadInfo){{(unsigned)i % b.x, (unsigned)i / b.x % b.y, (unsigned)i / b.x / b.y}, w->bid, b, g};
        emu_fiber_prepare(&t->fiber, fiber_entry);
    }
    w->launch = l, w->nthreads = w->alive = n, w->exited = w->arrived = 0, w->epoch = 0, w->aborted = false;
    memset(w->warp, 0, sizeof w->warp);
    if (++w->gen == 0) {   /* generations wrapped: old shadow entries must not look current */
        memset(w->sh, 0, sizeof *w->sh * (w->sh_size / 4 + 1));
        w->gen = 1;
    }
}

static void deadlock(EmuWorker *w)
{
    int at_bar = 0, at_warp = 0, first = -1;
    for (int i = 0; i < w->nthreads; i++) {
        at_bar += w->t[i].state == EMU_AT_BARRIER;
        at_warp += w->t[i].state == EMU_AT_WARP;
        if (first < 0 && w->t[i].state == EMU_AT_WARP) first = i;
    }
    w->cur = &w->t[first >= 0 ? first : 0];
    char where[512];
    emu_where(where, sizeof where);
    emu_error(EMU_LAUNCH_FAILED, "cuda emulator: %s: the block's threads wait for each other forever: %d at "
              "__syncthreads (line %d), %d at warp shuffles", where, at_bar, w->bar_line, at_warp);
}

/* runs the lanes of warp [base, end) until none can go on (all wait at a barrier, or returned);
 * whether any ran. A warp at a time keeps 32 stacks in the caches, not the whole block's. */
static bool run_warp(EmuWorker *w, int base, int end)
{
    bool any = false;
    for (bool ran = true; ran && !w->aborted;) {
        ran = false;
        for (int i = base; i < end && !w->aborted; i++) {
            if (w->t[i].state != EMU_RUNNABLE) continue;
            w->cur = &w->t[i];
            emu_self = &w->t[i].info;
            emu_fiber_switch(&w->sched, &w->t[i].fiber);
            ran = any = true;
        }
    }
    return any;
}

static void run_block(EmuWorker *w, const EmuLaunch *l, unsigned long linear)
{
    start_block(w, l, linear);
    while (w->alive > 0 && !w->aborted) {
        bool ran = false;
        for (int base = 0; base < w->nthreads && !w->aborted; base += 32)
            ran |= run_warp(w, base, base + 32 < w->nthreads ? base + 32 : w->nthreads);
        if (!ran && !w->aborted) {
            deadlock(w);
            break;
        }
    }
    w->cur = NULL;
    emu_self = NULL;
}

static EmuWorker *this_worker(void)
{
    if (emu_worker) return emu_worker;
    static atomic_int next_id;
    emu_worker = calloc(1, sizeof *emu_worker);
    if (!emu_worker) return NULL;
    emu_fiber_scheduler(&emu_worker->sched);
    emu_worker->id = atomic_fetch_add(&next_id, 1);
    return emu_worker;
}

static void block_task(void *ctx, int i)
{
    const EmuLaunch *l = ctx;
    if (emu_sticky()) return;   /* a block of this launch failed: the launch is over */
    EmuWorker *w = this_worker();
    if (!w || grow_threads(w, (int)(l->block.x * l->block.y * l->block.z)) || bind_module(w, l->f->mod)) {
        emu_error(EMU_OUT_OF_MEMORY, "cuda emulator: no memory for the stacks, or no copy of the module, for a block "
                  "of kernel %s", l->f->e->name);
        return;
    }
    run_block(w, l, (unsigned long)i);
}

int emu_launch_run(const EmuLaunch *l)
{
    unsigned long blocks = (unsigned long)l->grid.x * l->grid.y * l->grid.z;
    if (blocks > 0x7fffffffUL)
        return emu_error(EMU_INVALID_VALUE, "cuda emulator: kernel %s: %lu blocks are more than it runs", l->f->e->name,
                         blocks);
    emu_parallel((int)blocks, block_task, (void *)l);
    return emu_sticky();
}
