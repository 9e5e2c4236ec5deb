/* alloc.c — allocation with one policy for running out of memory (base.h). */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static _Noreturn void out_of_memory(size_t n, const char *file, int line) {
    char b[32];
    fprintf(stderr, "gptc: " OUT_OF_MEMORY ": cannot allocate %s (%zu bytes, %s:%d)\n", fmt_bytes((double)n, b, sizeof b),
            n, file, line);
    exit(1);
}

void *xmalloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n, file, line);
    return p;
}

void *xcalloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size, file, line);
    return p;
}

void *xrealloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n, file, line);
    return q;
}

char *xstrdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

char *xstrndup_at(const char *s, size_t n, const char *file, int line) {
    size_t len = strnlen(s, n);
    char *p = xmalloc_at(len + 1, file, line);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

char *xvasprintf_at(const char *file, int line, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    size_t len = n > 0 ? (size_t)n : 0;
    char *p = xmalloc_at(len + 1, file, line);
    vsnprintf(p, len + 1, fmt, ap);
    return p;
}

char *xasprintf_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf_at(file, line, fmt, ap);
    va_end(ap);
    return p;
}

void *try_calloc(size_t n, size_t size, const char *what, char *err, size_t errlen) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p && err && errlen) {
        char b[32];
        snprintf(err, errlen, OUT_OF_MEMORY ": cannot allocate %s for %s", fmt_bytes((double)n * (double)size, b, sizeof b),
                 what);
    }
    return p;
}

bool exceeds_memory(double need, char *why, size_t whylen) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    double have = pages > 0 && size > 0 ? (double)pages * (double)size : 0;
    if (have == 0 || need <= have) return false;   /* unknown: let the allocation decide */
    char h[32];
    snprintf(why, whylen, "this machine has %s", fmt_bytes(have, h, sizeof h));
    return true;
}

const char *fmt_bytes(double bytes, char *buf, size_t len) {
    if (bytes >= 1e9) snprintf(buf, len, "%.2f GB", bytes / 1e9);
    else if (bytes >= 1e6) snprintf(buf, len, "%.1f MB", bytes / 1e6);
    else snprintf(buf, len, "%.1f KB", bytes / 1e3);
    return buf;
}
