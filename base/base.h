/* files.h — what the runtime's file formats share: error messages that start with the
 * file's name, and atomic writes (a crash never leaves a half-written file in place). */
#ifndef GPTC_BASE_H
#define GPTC_BASE_H

#include <stddef.h>

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

/* mkdir -p: path and any missing parents (existing folders are fine). 0, or -1 with err. */
int mkdir_p(const char *path, char *err, size_t errlen);

#endif
