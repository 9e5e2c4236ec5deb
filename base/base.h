/* base.h — small helpers every stage shares, written once: error messages that name a
 * file, atomic file writes, mkdir -p and kinds of file (files.c); allocation with one
 * policy for running out of memory (alloc.c); loading a shared library at run time
 * (lib.c); a monotonic clock and bf16 conversion (here, inline). base/ depends on nothing
 * else of gptc. */
#ifndef GPTC_BASE_H
#define GPTC_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* ==== Files (files.c) ==== */

/* err = "<what>: <formatted message>", truncated to errlen (err may be NULL). Returns -1. */
int fail_at(char *err, size_t errlen, const char *what, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One piece of a file's contents; pieces are written in order. */
typedef struct {
    const void *data;
    size_t len;
} Piece;

/* Writes the pieces to "path.tmp.<pid>", flushes and fsyncs it, renames it over path and
 * fsyncs the folder. On failure the temp file is removed and err says which stage failed:
 * "path: cannot write (rename path.tmp.123): Is a directory". 0 or -1. */
int write_atomic(const char *path, const Piece *pieces, int n, char *err, size_t errlen);

/* mkdir -p: path and any missing parents (existing folders are fine; an existing file in
 * the way is an error). 0, or -1 with err. */
int mkdir_p(const char *path, char *err, size_t errlen);

/* What kind of file a stat mode is, for messages: "a folder", "a FIFO", "a character
 * device", "a block device", "a socket", "a symbolic link", "a regular file". */
const char *file_kind(unsigned int mode);

/* ==== Allocation (alloc.c) ====
 * One policy for running out of memory, and never abort():
 *  - memory whose size follows from the model (a backend's arena and leaves, the trainer's
 *    copies of the parameters and optimizer state) is asked for with try_calloc; a failure
 *    is an error returned to the command, which states the memory plan and a hint;
 *  - everything else goes through xmalloc, xcalloc, xrealloc, xstrdup, xstrndup,
 *    xasprintf and xvasprintf, which on failure print "gptc: out of memory: cannot
 *    allocate N bytes (FILE:LINE)" and exit with status 1. */
void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t n, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
char *xstrndup_at(const char *s, size_t n, const char *file, int line);
char *xasprintf_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
char *xvasprintf_at(const char *file, int line, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, size) xcalloc_at((n), (size), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)
#define xstrndup(s, n) xstrndup_at((s), (n), __FILE__, __LINE__)
#define xasprintf(...) xasprintf_at(__FILE__, __LINE__, __VA_ARGS__)
#define xvasprintf(fmt, ap) xvasprintf_at(__FILE__, __LINE__, (fmt), (ap))

/* The phrase every out-of-memory error of the first kind holds, so that a command can tell
 * one from other errors and add its hint. */
#define OUT_OF_MEMORY "out of memory"

/* calloc(n, size) (at least one byte), or NULL with
 * err = "out of memory: cannot allocate 12.30 GB for WHAT". */
void *try_calloc(size_t n, size_t size, const char *what, char *err, size_t errlen);

/* Whether need bytes exceed the machine's physical memory (Linux would grant them and
 * kill the process once they are touched): then why = "this machine has 25.32 GB". */
bool exceeds_memory(double need, char *why, size_t whylen);

/* "12.30 GB" / "512.0 MB" / "4.0 KB" into buf; returns buf. */
const char *fmt_bytes(double bytes, char *buf, size_t len);

/* ==== Shared libraries (lib.c) ==== */

/* dlopen(names[0]), then names[1], … (NULL entries are skipped) with flags: the first that
 * loads, its index in *which (which may be NULL); or NULL with why = dlerror()'s reason
 * for the first name. */
void *lib_open(const char *const *names, int n, int flags, int *which, char *why, size_t whylen);

/* The path of file `name` next to the running program, or, when there is none there, one
 * folder up (where a test binary's gptc sits); into out, which is returned. */
const char *beside_program(const char *name, char *out, size_t len);

/* With GPTC_CUDA_EMULATE set (to anything but 0), the CUDA emulator's library, which the cuda
 * backend and NVRTC load in place of libcuda, libnvrtc, libcublasLt and libnccl:
 * $GPTC_LIBCUDAEMU, else libgptc-cudaemu.so next to the running program. NULL otherwise. */
const char *cuda_emulator(void);

/* ==== Clock and bf16 ==== */

/* Seconds on the monotonic clock (for durations). */
static inline double clock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* float → bf16, rounded to nearest even, as the GPU converts; a NaN stays a (quiet) NaN. */
static inline uint16_t bf16_from_f32(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);   /* may carry into inf */
}

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

#endif
