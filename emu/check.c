/* check.c — what compute-sanitizer would report, checked at every access of a kernel, and
 * the emulator's errors.
 *
 * The kernels are compiled with ThreadSanitizer's instrumentation (nvrtc.c), which calls
 * __tsan_readN / __tsan_writeN before every load and store that may touch memory other
 * threads see. This file defines those callbacks (gptc never links ThreadSanitizer's own
 * run time). An access is
 *   - global when it falls in the device range: it must be naturally aligned (the device
 *     faults otherwise: 16-byte vector accesses included), lie inside one of the tensors the
 *     runtime described for the launch (or, undescribed, inside an allocation), not write a
 *     tensor the kernel only reads, and read only bytes written before (the shadow of
 *     driver.c; a tensor the kernel writes counts as unwritten when the launch starts);
 *   - shared when it falls in the module's __shared__ arrays of the worker thread: every
 *     4-byte word remembers the thread that last wrote it and read it, and the barrier
 *     epoch; a word written by one thread and read or written by another in the same epoch
 *     is a race, and a word read before anything of the block wrote it is an error. (Words,
 *     not bytes: two threads writing different bytes of one word count as a race here,
 *     where the device allows it; gptc's kernels share no sub-word data.)
 * Anything else (the fiber's stack, the emulator's own memory) is not the kernel's to check.
 * The first error stops the launch and stays, as a fault does on the device. */
#include "emu/emu.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* ---- errors ----------------------------------------------------------------------------------- */

static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static int sticky, last_code;
static char last_text[2048];

int emu_error(int code, const char *fmt, ...)
{
    pthread_mutex_lock(&err_mu);
    if (!sticky) {   /* after a fault, the first one's text stays */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(last_text, sizeof last_text, fmt, ap);
        va_end(ap);
        last_code = code;
        if (code >= EMU_ILLEGAL_ADDRESS && code < EMU_CAPTURE_UNSUPPORTED) sticky = code;
    }
    pthread_mutex_unlock(&err_mu);
    return code;
}

int emu_sticky(void) { return __atomic_load_n(&sticky, __ATOMIC_RELAXED); }

const char *emu_error_text(int code)
{
    if (code == last_code && last_text[0]) return last_text;
    switch (code) {
    case EMU_OK: return "no error";
    case EMU_INVALID_VALUE: return "invalid argument";
    case EMU_OUT_OF_MEMORY: return "out of memory";
    case EMU_NO_DEVICE: return "no CUDA-capable device is detected";
    case EMU_INVALID_IMAGE: return "device kernel image is invalid";
    case EMU_NOT_FOUND: return "named symbol not found";
    case EMU_ILLEGAL_ADDRESS: return "an illegal memory access was encountered";
    case EMU_LAUNCH_OUT_OF_RESOURCES: return "too many resources requested for launch";
    case EMU_MISALIGNED_ADDRESS: return "misaligned address";
    case EMU_LAUNCH_FAILED: return "unspecified launch failure";
    default: return "unknown error";
    }
}

/* ---- messages ---------------------------------------------------------------------------------- */

static const char *kind_name(int kind) { return kind == EMU_LOAD ? "load" : kind == EMU_STORE ? "store" : "atomic"; }

void emu_fail(int code, const char *fmt, ...)
{
    char where[512], what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    emu_where(where, sizeof where);
    emu_error(code, "cuda emulator: %s: %s", where, what);
    emu_abort_block();
}

/* "8 bytes past the end of %35 MUL (…:57), 4096 bytes" for the tensor nearest to p */
static void nearest(const EmuTensors *ts, uintptr_t p, char *out, size_t len)
{
    const EmuTensor *best = NULL;
    uintptr_t dist = UINTPTR_MAX;
    for (int i = 0; i < ts->n; i++) {
        const EmuTensor *t = &ts->t[i];
        uintptr_t d = p < t->base ? t->base - p : p - (t->base + t->bytes);
        if (d < dist) dist = d, best = t;
    }
    if (!best) snprintf(out, len, "the launch was given no tensor");
    else snprintf(out, len, "%zu bytes %s %s (%zu bytes)", (size_t)dist, p < best->base ? "before the start of" :
                  "past the end of", best->label, best->bytes);
}

/* ---- global memory ----------------------------------------------------------------------------- */

/* the tensor [p, p + n) lies in: the thread's last one, else a binary search of the tensors
 * (sorted by base), looking back past a few that start later inside an earlier one */
static const EmuTensor *find_tensor(EmuThread *t, const EmuTensors *ts, uintptr_t p, size_t n)
{
    const EmuTensor *last = t->last;
    if (last && p >= last->base && p + n <= last->base + last->bytes) return last;
    int lo = 0, hi = ts->n;   /* the first tensor whose base is above p */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ts->t[mid].base <= p) lo = mid + 1;
        else hi = mid;
    }
    for (int i = lo - 1; i >= 0 && i >= lo - 8; i--)
        if (p + n <= ts->t[i].base + ts->t[i].bytes) return t->last = &ts->t[i];
    return NULL;
}

/* the first of n bytes of shadow that is unwritten, or n: words at a time for small accesses */
static size_t first_unwritten(uintptr_t p, size_t n)
{
    if (n == 4 || n == 8) {
        uint64_t w = 0;
        memcpy(&w, emu_shadow(p), n);
        if (w == (n == 4 ? 0x01010101ull : 0x0101010101010101ull)) return n;
    }
    return emu_first_unwritten(p, n);
}

static void global_access(EmuWorker *w, uintptr_t p, size_t n, int kind)
{
    const EmuTensors *ts = w->launch->tensors;
    const EmuTensor *hit = ts ? find_tensor(w->cur, ts, p, n) : NULL;
    if (ts && !hit) {
        char near[512];
        nearest(ts, p, near, sizeof near);
        emu_fail(EMU_ILLEGAL_ADDRESS, "%s of %zu bytes at %#lx, outside every tensor of the launch: %s", kind_name(kind), n,
               (unsigned long)p, near);
    }
    if (!ts && !emu_dev_inside(p, n))
        emu_fail(EMU_ILLEGAL_ADDRESS, "%s of %zu bytes at %#lx, outside every allocation", kind_name(kind), n,
               (unsigned long)p);
    if (n > 1 && n <= 16 && (p & (n - 1)))
        emu_fail(EMU_MISALIGNED_ADDRESS, "misaligned %zu-byte %s at %#lx (%s + %zu)", n, kind_name(kind), (unsigned long)p,
               hit ? hit->label : "an allocation", hit ? (size_t)(p - hit->base) : (size_t)0);
    if (hit && kind != EMU_LOAD && hit->mode == EMU_READ)
        emu_fail(EMU_ILLEGAL_ADDRESS, "%s of %zu bytes into %s (at byte %zu), which the launch only reads", kind_name(kind),
               n, hit->label, (size_t)(p - hit->base));
    if (kind != EMU_STORE) {
        size_t bad = first_unwritten(p, n);
        if (bad < n)
            emu_fail(EMU_LAUNCH_FAILED, "%s of %zu bytes at %s + %zu, which nothing wrote before", kind_name(kind), n,
                   hit ? hit->label : "an allocation", hit ? (size_t)(p + bad - hit->base) : (size_t)0);
    }
    if (kind != EMU_LOAD) emu_mark_written(p, n);
}

/* ---- shared memory ----------------------------------------------------------------------------- */

static void shared_word(EmuWorker *w, EmuShEntry *e, size_t off, int kind)
{
    const uint16_t me = (uint16_t)w->cur->index;
    const uint32_t ep = w->epoch;
    char other[64];
    if (e->gen != w->gen) {   /* nothing of this block touched it yet */
        if (kind != EMU_STORE)
            emu_fail(EMU_LAUNCH_FAILED, "%s of the word at byte %zu of the __shared__ arrays before any thread of its "
                   "block wrote it: a missing __syncthreads (the writer runs later), or shared memory never written",
                   kind_name(kind), off);
        *e = (EmuShEntry){w->gen, ep, UINT32_MAX, me, 0};
        return;
    }
    if (kind == EMU_ATOMIC) return;
    if (e->wepoch == ep && e->writer != me) {
        emu_thread_name(w, e->writer, other, sizeof other);
        emu_fail(EMU_LAUNCH_FAILED, "shared-memory race: %s of the word at byte %zu of the __shared__ arrays, which %s "
               "wrote with no __syncthreads between", kind_name(kind), off, other);
    }
    if (kind == EMU_LOAD) {
        e->reader = e->repoch == ep && e->reader != me ? EMU_MANY : me;
        e->repoch = ep;
        return;
    }
    if (e->repoch == ep && e->reader != me) {
        if (e->reader == EMU_MANY) snprintf(other, sizeof other, "other threads");
        else emu_thread_name(w, e->reader, other, sizeof other);
        emu_fail(EMU_LAUNCH_FAILED, "shared-memory race: store to the word at byte %zu of the __shared__ arrays, which %s "
               "read with no __syncthreads between", off, other);
    }
    e->writer = me, e->wepoch = ep;
}

static void shared_access(EmuWorker *w, uintptr_t p, size_t n, int kind)
{
    size_t off = p - w->sh_lo;
    if (n > 1 && n <= 16 && (p & (n - 1)))
        emu_fail(EMU_MISALIGNED_ADDRESS, "misaligned %zu-byte %s of shared memory (byte %zu of the __shared__ arrays)", n,
               kind_name(kind), off);
    if (off + n > w->sh_size) n = w->sh_size - off;
    for (size_t g = off / 4; g <= (off + n - 1) / 4; g++) shared_word(w, &w->sh[g], 4 * g, kind);
}

void emu_access(uintptr_t p, size_t n, int kind)
{
    EmuWorker *w = emu_worker;
    if (!w || !w->cur) return;   /* not a kernel's thread */
    if (p - emu_dev_lo < emu_dev_span) global_access(w, p, n, kind);
    else if (p - w->sh_lo < w->sh_size) shared_access(w, p, n, kind);
}

/* ---- ThreadSanitizer's callbacks ---------------------------------------------------------------- */

#define ACCESS(N)                                                                                              \
    EXPORT void __tsan_read##N(void *p) { emu_access((uintptr_t)p, N, EMU_LOAD); }                             \
    EXPORT void __tsan_write##N(void *p) { emu_access((uintptr_t)p, N, EMU_STORE); }                           \
    EXPORT void __tsan_unaligned_read##N(void *p) { emu_access((uintptr_t)p, N, EMU_LOAD); }                   \
    EXPORT void __tsan_unaligned_write##N(void *p) { emu_access((uintptr_t)p, N, EMU_STORE); }                 \
    EXPORT void __tsan_volatile_read##N(void *p) { emu_access((uintptr_t)p, N, EMU_LOAD); }                    \
    EXPORT void __tsan_volatile_write##N(void *p) { emu_access((uintptr_t)p, N, EMU_STORE); }
ACCESS(1)
ACCESS(2)
ACCESS(4)
ACCESS(8)
ACCESS(16)

/* wider accesses (aggregate copies): one range, no alignment beyond the element's */
EXPORT void __tsan_read_range(void *p, unsigned long n) { emu_access((uintptr_t)p, n, EMU_LOAD); }
EXPORT void __tsan_write_range(void *p, unsigned long n) { emu_access((uintptr_t)p, n, EMU_STORE); }
EXPORT void __tsan_init(void) {}
EXPORT void __tsan_func_entry(void *pc) {}
EXPORT void __tsan_func_exit(void) {}
EXPORT void __tsan_vptr_update(void **p, void *v) {}
EXPORT void __tsan_vptr_read(void **p) {}
