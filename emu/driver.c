/* driver.c — the CUDA driver API on the emulator: one device with sm_90's limits, memory,
 * modules, launches, copies, one stream at a time and graphs.
 *
 * Device memory is one reserved range of the address space (up to EMU_RANGE bytes, pages
 * taken only when touched), followed by a shadow range of the same size: one byte per device
 * byte, set once the byte is written (a copy from the host, a memset, a kernel's store). A
 * device pointer is a host address, so kernels dereference it directly. Allocations are
 * never moved; freed ones give their pages back.
 *
 * Modules are module.c's. Work runs when it is enqueued (streams are in order, so that is stream order), except
 * while the stream captures: then it is recorded, and cuGraphLaunch runs the recording. The
 * first error of a launch is sticky, as a faulted context is on the device: every later
 * call returns it.
 *
 * gptcEmuTensors is the one entry point a GPU has not: the runtime calls it, when the
 * library has it, before a piece of work, to name the tensors the work may touch (base,
 * bytes, read or written, a label with the model line). The checks then hold every access
 * to the tensor it falls in, and name it. */
#include "emu/emu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define EMU_RANGE ((uintptr_t)256 << 30)
#define DEVICE_MEMORY ((size_t)80 << 30)   /* an H100's */
#define ALLOC_ALIGN 256

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

uintptr_t emu_dev_lo, emu_dev_span;

/* ---- memory ---------------------------------------------------------------------------------- */

typedef struct { uintptr_t p; size_t n; bool live; } Alloc;
static Alloc *allocs;
static int nallocs;
static uintptr_t next_free;
static size_t live_bytes;

/* the device range and its shadow: as large as the system lets a process map (a strict
 * overcommit policy counts even pages never touched), from EMU_RANGE down to 1 GiB */
static int reserve(void)
{
    if (emu_dev_lo) return 0;
    for (uintptr_t span = EMU_RANGE; span >= ((uintptr_t)1 << 30); span /= 2) {
        void *m = mmap(NULL, 2 * span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) continue;
        emu_dev_lo = next_free = (uintptr_t)m;
        emu_dev_span = span;
        return 0;
    }
    return emu_error(EMU_OUT_OF_MEMORY, "cuda emulator: cannot map even 2 GiB for device memory and its shadow");
}

bool emu_dev_inside(uintptr_t p, size_t n)
{
    for (int i = nallocs - 1; i >= 0; i--)
        if (allocs[i].live && p >= allocs[i].p && p + n <= allocs[i].p + allocs[i].n) return true;
    return false;
}

size_t emu_first_unwritten(uintptr_t p, size_t n)
{
    const unsigned char *s = emu_shadow(p);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {   /* eight at a time while all are set */
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w != 0x0101010101010101ull) break;
    }
    for (; i < n; i++)
        if (!s[i]) return i;
    return n;
}

void emu_mark_written(uintptr_t p, size_t n) { memset(emu_shadow(p), 1, n); }
void emu_mark_unwritten(uintptr_t p, size_t n) { memset(emu_shadow(p), 0, n); }

static size_t physical_memory(void) { return (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE); }

static size_t device_limit(void)
{
    size_t phys = physical_memory(), lim = phys < DEVICE_MEMORY ? phys : DEVICE_MEMORY;
    return emu_dev_span && emu_dev_span < lim ? emu_dev_span : lim;
}

/* ---- errors of the API itself ---------------------------------------------------------------- */

#define STICKY()                          \
    do {                                  \
        int s_ = emu_sticky();            \
        if (s_) return s_;                \
    } while (0)

/* ---- device, context ------------------------------------------------------------------------- */

EXPORT CUresult cuInit(unsigned flags) { return reserve(); }
EXPORT CUresult cuDeviceGetCount(int *n) { *n = 1; return EMU_OK; }
EXPORT CUresult cuDeviceGet(int *d, int i)
{
    *d = i;
    return i == 0 ? EMU_OK : EMU_INVALID_VALUE;
}
EXPORT CUresult cuDeviceGetName(char *s, int n, int d)
{
    snprintf(s, (size_t)n, "gptc CUDA emulator (H100 limits)");
    return EMU_OK;
}
EXPORT CUresult cuDeviceGetAttribute(int *v, int attr, int d)
{
    *v = attr == 75 ? 9 : attr == 76 ? 0 : attr == 16 ? EMU_SMS : 0;   /* compute capability 9.0, SMs */
    return EMU_OK;
}
EXPORT CUresult cuDevicePrimaryCtxRetain(void **ctx, int d)
{
    static int c;
    *ctx = &c;
    return EMU_OK;
}
EXPORT CUresult cuCtxSetCurrent(void *ctx) { return EMU_OK; }
EXPORT CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total)
{
    *total = DEVICE_MEMORY;
    size_t lim = device_limit();
    *free_b = live_bytes < lim ? lim - live_bytes : 0;
    return EMU_OK;
}
EXPORT CUresult cuGetErrorString(CUresult r, const char **s)
{
    *s = emu_error_text(r);
    return EMU_OK;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n)
{
    STICKY();
    if (reserve()) return EMU_OUT_OF_MEMORY;
    size_t span = (n + ALLOC_ALIGN - 1) / ALLOC_ALIGN * ALLOC_ALIGN;
    if (n == 0) return EMU_INVALID_VALUE;
    if (live_bytes + span > device_limit() || next_free + span > emu_dev_lo + emu_dev_span) return EMU_OUT_OF_MEMORY;
    Alloc *a = realloc(allocs, sizeof *allocs * (size_t)(nallocs + 1));
    if (!a) return EMU_OUT_OF_MEMORY;
    allocs = a;
    allocs[nallocs++] = (Alloc){next_free, n, true};
    *p = next_free;
    next_free += span;
    live_bytes += span;
    return EMU_OK;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr p)
{
    for (int i = 0; i < nallocs; i++)
        if (allocs[i].live && allocs[i].p == p) {
            size_t span = (allocs[i].n + ALLOC_ALIGN - 1) / ALLOC_ALIGN * ALLOC_ALIGN;
            long page = sysconf(_SC_PAGESIZE);
            uintptr_t lo = (p + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
            uintptr_t hi = (p + span) / (uintptr_t)page * (uintptr_t)page;
            if (hi > lo) {   /* the pages back to the system, the shadow with them */
                madvise((void *)lo, hi - lo, MADV_DONTNEED);
                madvise(emu_shadow(lo), hi - lo, MADV_DONTNEED);
            }
            allocs[i].live = false;
            live_bytes -= span;
            return EMU_OK;
        }
    return emu_error(EMU_INVALID_VALUE, "cuda emulator: cuMemFree of %#llx, which is not an allocation", p);
}

/* ---- tensors described by the runtime ------------------------------------------------------- */

static EmuTensors *pending;

static int by_base(const void *a, const void *b)
{
    uintptr_t x = ((const EmuTensor *)a)->base, y = ((const EmuTensor *)b)->base;
    return x < y ? -1 : x > y;
}

/* a copy, its tensors sorted by base (check.c searches them) */
EmuTensors *emu_tensors_copy(const EmuTensors *t)
{
    if (!t) return NULL;
    EmuTensors *c = calloc(1, sizeof *c);
    c->what = strdup(t->what ? t->what : "");
    c->n = t->n;
    c->t = calloc((size_t)(t->n ? t->n : 1), sizeof *c->t);
    for (int i = 0; i < t->n; i++) {
        c->t[i] = t->t[i];
        c->t[i].label = strdup(t->t[i].label ? t->t[i].label : "");
    }
    qsort(c->t, (size_t)c->n, sizeof *c->t, by_base);
    return c;
}

void emu_tensors_free(EmuTensors *t)
{
    if (!t) return;
    for (int i = 0; i < t->n; i++) free(t->t[i].label);
    free(t->t);
    free(t->what);
    free(t);
}

/* the tensors the next piece of work may touch: n of them, each [base, base + bytes), read,
 * written (all of it, before it is read) or both, with a label; `what` names the work */
EXPORT void gptcEmuTensors(const char *what, int n, const CUdeviceptr *base, const size_t *bytes, const int *mode,
                           const char *const *label)
{
    EmuTensor *t = calloc((size_t)(n > 0 ? n : 1), sizeof *t);
    for (int i = 0; i < n; i++) t[i] = (EmuTensor){(uintptr_t)base[i], bytes[i], mode[i], (char *)label[i]};
    EmuTensors view = {(char *)what, n, t};
    emu_tensors_free(pending);
    pending = emu_tensors_copy(&view);
    free(t);
}

/* ---- work, streams, capture ------------------------------------------------------------------ */

typedef struct {
    EmuOp **ops;
    int n, refs;
} Graph;

static Graph *capture;   /* the recording, while the stream captures */

static void op_free(EmuOp *op)
{
    if (!op) return;
    if (op->drop) op->drop(op);
    emu_tensors_free(op->tensors);
    free(op);
}

int emu_submit(EmuOp *op, bool described)
{
    if (described) {
        op->tensors = pending;
        pending = NULL;
    }
    if (capture) {
        EmuOp **o = realloc(capture->ops, sizeof *o * (size_t)(capture->n + 1));
        if (!o) {
            op_free(op);
            return EMU_OUT_OF_MEMORY;
        }
        capture->ops = o;
        capture->ops[capture->n++] = op;
        return EMU_OK;
    }
    int rc = emu_sticky() ? emu_sticky() : op->run(op);
    op_free(op);
    return rc;
}

static void graph_release(Graph *g)
{
    if (!g || --g->refs > 0) return;
    for (int i = 0; i < g->n; i++) op_free(g->ops[i]);
    free(g->ops);
    free(g);
}

EXPORT CUresult cuStreamCreate(void **s, unsigned flags)
{
    static int stream;
    *s = &stream;
    return EMU_OK;
}

EXPORT CUresult cuStreamSynchronize(void *s)
{
    if (capture) return emu_error(EMU_CAPTURE_UNSUPPORTED, "cuda emulator: cuStreamSynchronize while the stream captures");
    return emu_sticky();
}

EXPORT CUresult cuStreamBeginCapture_v2(void *s, int mode)
{
    STICKY();
    if (capture) return emu_error(EMU_CAPTURE_UNSUPPORTED, "cuda emulator: a capture begun while one is under way");
    capture = calloc(1, sizeof *capture);
    capture->refs = 1;
    return EMU_OK;
}

EXPORT CUresult cuStreamEndCapture(void *s, void **g)
{
    if (!capture) return emu_error(EMU_INVALID_VALUE, "cuda emulator: the end of a capture never begun");
    *g = capture;
    capture = NULL;
    return EMU_OK;
}

EXPORT CUresult cuGraphInstantiateWithFlags(void **exec, void *g, unsigned long long flags)
{
    STICKY();
    ((Graph *)g)->refs++;
    *exec = g;
    return EMU_OK;
}

EXPORT CUresult cuGraphLaunch(void *exec, void *s)
{
    STICKY();
    if (capture) return emu_error(EMU_CAPTURE_UNSUPPORTED, "cuda emulator: a graph launched while the stream captures");
    const Graph *g = exec;
    for (int i = 0; i < g->n; i++) {
        int rc = g->ops[i]->run(g->ops[i]);
        if (rc) return rc;
    }
    return EMU_OK;
}

EXPORT CUresult cuGraphDestroy(void *g)
{
    graph_release(g);
    return EMU_OK;
}

EXPORT CUresult cuGraphExecDestroy(void *e)
{
    graph_release(e);
    return EMU_OK;
}

/* ---- events ------------------------------------------------------------------------------ */

/* An event holds the time its record reached the head of the stream: work runs when it is
 * enqueued (or when its graph is launched), so that is when the record op runs. */
typedef struct {
    double ms;
    bool recorded;
} Event;

typedef struct {
    EmuOp op;
    Event *e;
} Record;

static int record_run(EmuOp *op)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    Event *e = ((Record *)op)->e;
    e->ms = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
    e->recorded = true;
    return EMU_OK;
}

EXPORT CUresult cuEventCreate(void **e, unsigned flags)
{
    *e = calloc(1, sizeof(Event));
    return *e ? EMU_OK : EMU_OUT_OF_MEMORY;
}

EXPORT CUresult cuEventRecord(void *e, void *s)
{
    STICKY();
    Record *r = calloc(1, sizeof *r);
    if (!r) return EMU_OUT_OF_MEMORY;
    *r = (Record){{record_run, NULL, NULL}, e};
    return emu_submit(&r->op, false);
}

EXPORT CUresult cuEventSynchronize(void *e)
{
    if (capture) return emu_error(EMU_CAPTURE_UNSUPPORTED, "cuda emulator: cuEventSynchronize while the stream captures");
    return emu_sticky();
}

EXPORT CUresult cuEventElapsedTime(float *ms, void *a, void *b)
{
    const Event *x = a, *y = b;
    if (!x->recorded || !y->recorded)
        return emu_error(EMU_INVALID_VALUE, "cuda emulator: cuEventElapsedTime of an event never recorded");
    *ms = (float)(y->ms - x->ms);
    return EMU_OK;
}

EXPORT CUresult cuEventDestroy_v2(void *e)
{
    free(e);
    return EMU_OK;
}

/* ---- copies and memsets ------------------------------------------------------------------------ */

typedef struct {
    EmuOp op;
    uintptr_t dst, src;                /* src 0: a memset of `value`, or host bytes in `host` */
    size_t n;
    unsigned char value;
    unsigned char *host;
    const char *name;
} Copy;

static int outside(const char *name, uintptr_t p, size_t n)
{
    return emu_error(EMU_INVALID_VALUE, "cuda emulator: %s of %zu bytes at %#lx is outside every allocation", name, n,
                     (unsigned long)p);
}

static int copy_run(EmuOp *op)
{
    Copy *c = (Copy *)op;
    if (c->src) {
        memmove((void *)c->dst, (const void *)c->src, c->n);
        memmove(emu_shadow(c->dst), emu_shadow(c->src), c->n);   /* unwritten stays unwritten */
    } else {
        if (c->host) memcpy((void *)c->dst, c->host, c->n);
        else memset((void *)c->dst, c->value, c->n);
        emu_mark_written(c->dst, c->n);
    }
    return EMU_OK;
}

static void copy_drop(EmuOp *op) { free(((Copy *)op)->host); }

static CUresult enqueue_copy(const char *name, uintptr_t dst, uintptr_t src, const void *host, size_t n,
                             unsigned char value)
{
    STICKY();
    if (!emu_dev_inside(dst, n)) return outside(name, dst, n);
    if (src && !emu_dev_inside(src, n)) return outside(name, src, n);
    Copy *c = calloc(1, sizeof *c);
    *c = (Copy){{copy_run, copy_drop, NULL}, dst, src, n, value, NULL, name};
    if (host) {   /* staged now, as the driver stages pageable memory */
        c->host = malloc(n ? n : 1);
        memcpy(c->host, host, n);
    }
    return emu_submit(&c->op, false);
}

EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *h, size_t n, void *s)
{
    return enqueue_copy("cuMemcpyHtoDAsync", d, 0, h, n, 0);
}
EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr src, size_t n, void *s)
{
    return enqueue_copy("cuMemcpyDtoDAsync", d, src, NULL, n, 0);
}
EXPORT CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, void *s)
{
    return enqueue_copy("cuMemsetD8Async", d, 0, NULL, n, v);
}

/* a copy to the host reads device memory: every byte must have been written */
EXPORT CUresult cuMemcpyDtoH_v2(void *h, CUdeviceptr d, size_t n)
{
    STICKY();
    if (capture) return emu_error(EMU_CAPTURE_UNSUPPORTED, "cuda emulator: cuMemcpyDtoH while the stream captures");
    if (!emu_dev_inside(d, n)) return outside("cuMemcpyDtoH", d, n);
    size_t bad = emu_first_unwritten(d, n);
    if (bad < n)
        return emu_error(EMU_ILLEGAL_ADDRESS, "cuda emulator: a copy to the host reads device memory never written: "
                         "byte %zu of %zu at %#llx", bad, n, d);
    memcpy(h, (const void *)(uintptr_t)d, n);
    return EMU_OK;
}

/* ---- launches ---------------------------------------------------------------------------------- */

typedef struct {
    EmuOp op;
    EmuLaunch l;
    char *args;                        /* the parameters' values, copied */
} Launch;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int launch_run(EmuOp *op)
{
    Launch *k = (Launch *)op;
    k->l.tensors = op->tensors;
    for (int i = 0; op->tensors && i < op->tensors->n; i++)   /* what it writes, it writes before reading */
        if (op->tensors->t[i].mode == EMU_WRITE) emu_mark_unwritten(op->tensors->t[i].base, op->tensors->t[i].bytes);
    double t0 = now();
    int rc = emu_launch_run(&k->l);
    EmuFunc *f = (EmuFunc *)k->l.f;
    f->seconds += now() - t0;
    f->launches++;
    return rc;
}

static void launch_drop(EmuOp *op)
{
    Launch *k = (Launch *)op;
    free(k->l.params);
    free(k->args);
}

/* the launch configuration against sm_90's limits and the kernel's own */
static int check_shape(const EmuFunc *f, EmuDim3 g, EmuDim3 b, unsigned smem)
{
    const char *name = f->e->name;
    unsigned long threads = (unsigned long)b.x * b.y * b.z;
    if (!threads || threads > EMU_MAX_THREADS || b.x > 1024 || b.y > 1024 || b.z > EMU_MAX_BLOCK_Z)
        return emu_error(EMU_INVALID_VALUE, "cuda emulator: kernel %s launched with blocks of (%u,%u,%u) threads: "
                         "sm_90 allows 1 to 1024 (z at most 64)", name, b.x, b.y, b.z);
    if (!g.x || g.x > 0x7fffffffu || !g.y || g.y > EMU_MAX_GRID_YZ || !g.z || g.z > EMU_MAX_GRID_YZ)
        return emu_error(EMU_INVALID_VALUE, "cuda emulator: kernel %s launched with a grid of (%u,%u,%u) blocks, "
                         "beyond sm_90's (2^31-1, 65535, 65535)", name, g.x, g.y, g.z);
    if (f->e->launch_bounds && threads > (unsigned long)f->e->launch_bounds)
        return emu_error(EMU_LAUNCH_OUT_OF_RESOURCES, "cuda emulator: kernel %s launched with %lu threads a block, "
                         "above its __launch_bounds__(%d)", name, threads, f->e->launch_bounds);
    unsigned long warps_threads = (threads + 31) / 32 * 32;
    if (f->regs > 0 && (unsigned long)f->regs * warps_threads > EMU_REGS_PER_SM)
        return emu_error(EMU_LAUNCH_OUT_OF_RESOURCES, "cuda emulator: kernel %s needs %d registers a thread: %lu threads "
                         "need %lu, beyond the 65536 of an SM", name, f->regs, threads, f->regs * warps_threads);
    if (f->smem > EMU_MAX_STATIC_SMEM || smem + (unsigned)(f->smem > 0 ? f->smem : 0) > EMU_MAX_STATIC_SMEM)
        return emu_error(EMU_LAUNCH_OUT_OF_RESOURCES, "cuda emulator: kernel %s uses %d + %u bytes of shared memory a "
                         "block, beyond the 48 KiB sm_90 gives without opting in", name, f->smem, smem);
    if (smem) return emu_error(EMU_INVALID_VALUE, "cuda emulator: kernel %s: dynamic shared memory is not emulated", name);
    return 0;
}

EXPORT CUresult cuLaunchKernel(void *fp, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               unsigned smem, void *stream, void **params, void **extra)
{
    STICKY();
    const EmuFunc *f = fp;
    if (!f || (f->e->nparams && !params) || extra)
        return emu_error(EMU_INVALID_VALUE, "cuda emulator: a launch without a kernel or its parameters");
    EmuDim3 g = {gx, gy, gz}, b = {bx, by, bz};
    int rc = check_shape(f, g, b, smem);
    if (rc) return rc;
    Launch *k = calloc(1, sizeof *k);
    size_t total = 0;
    for (int i = 0; i < f->e->nparams && i < EMU_MAX_PARAMS; i++) total += (f->e->param_size[i] + 15u) / 16u * 16u;
    k->args = calloc(total ? total : 1, 1);
    int np = f->e->nparams > 0 && f->e->nparams <= EMU_MAX_PARAMS ? f->e->nparams : 0;
    k->l.params = calloc((size_t)np + 1, sizeof *k->l.params);
    for (int i = 0, off = 0; i < np; off += (f->e->param_size[i] + 15) / 16 * 16, i++) {
        memcpy(k->args + off, params[i], f->e->param_size[i]);
        k->l.params[i] = k->args + off;
    }
    k->op = (EmuOp){launch_run, launch_drop, NULL};
    k->l.f = f, k->l.grid = g, k->l.block = b;
    return emu_submit(&k->op, true);
}
