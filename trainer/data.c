/* data.c — the loader of spec S-7.2 (trainer.h has the contracts).
 *
 * Every shard's header is checked when the loader opens (so a bad file is reported before
 * training starts); its tokens are mapped when a batch first needs them, checked once
 * against the vocabulary, and unmapped when the loader moves to another file, so one file
 * at a time is mapped. */
#include "trainer/trainer.h"
#include "base/base.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *kind_label(const char *kind) {
    if (!strcmp(kind, "train")) return "training";
    if (!strcmp(kind, "val")) return "validation";
    return kind;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The paths of the regular files "*KIND*.bin" in dir, sorted by name; dir itself when it
 * is a file. */
static int list_shards(const char *dir, const char *kind, char ***out, int *nout, char *err, size_t errlen) {
    *out = NULL;
    *nout = 0;
    struct stat st;
    if (stat(dir, &st) != 0) return fail_at(err, errlen, dir, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return fail_at(err, errlen, dir, "%s: expected a folder of *%s*.bin shards or one shard file", file_kind(st.st_mode),
                       kind);
    if (S_ISREG(st.st_mode)) {
        char **one = xmalloc(sizeof *one);
        one[0] = xstrdup(dir);
        *out = one;
        *nout = 1;
        return 0;
    }
    DIR *dp = opendir(dir);
    if (!dp) return fail_at(err, errlen, dir, "cannot open: %s", strerror(errno));
    char *pattern = xasprintf("*%s*.bin", kind);
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (fnmatch(pattern, de->d_name, 0) != 0) continue;
        char *p = xasprintf("%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", de->d_name);
        struct stat fs;
        if (stat(p, &fs) != 0 || !S_ISREG(fs.st_mode)) { free(p); continue; }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            names = xrealloc(names, (size_t)cap * sizeof *names);
        }
        names[n++] = p;
    }
    closedir(dp);
    int rc = n == 0 ? fail_at(err, errlen, dir, "no %s files in %s", pattern, dir) : 0;
    free(pattern);
    if (rc != 0) return -1;
    qsort(names, (size_t)n, sizeof *names, cmp_str);   /* same folder: order of the names */
    *out = names;
    *nout = n;
    return 0;
}

int loader_open(Loader *d, const char *dir, const char *kind, int64_t T, int rank, int world, int64_t vocab,
                 char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    d->mapped_ = -1;
    if (err && errlen) err[0] = 0;
    if (T < 1 || world < 1 || rank < 0 || rank >= world || vocab < 1 || T > INT64_MAX / 4 / world)
        return fail_at(err, errlen, dir, "bad loader arguments: T=%" PRId64 ", rank %d of %d, vocab %" PRId64, T,
                         rank, world, vocab);
    char **names;
    int n;
    if (list_shards(dir, kind, &names, &n, err, errlen) != 0) return -1;
    d->dir = xstrdup(dir);
    d->kind = xstrdup(kind);
    d->files = xcalloc((size_t)n, sizeof *d->files);
    d->T = T;
    d->rank = rank;
    d->world = world;
    d->vocab = vocab;
    d->nfiles = n;
    for (int i = 0; i < n; i++) d->files[i].path = names[i];   /* the files own the names now */
    free(names);
    for (int i = 0; i < n; i++) {
        if (shard_probe(&d->files[i], err, errlen) != 0) {
            loader_close(d);
            return -1;
        }
        d->ntokens += d->files[i].ntokens;
    }
    return 0;
}

/* Batches file f serves from pos 0: the k >= 0 with k·G + G + 1 < N. */
static int64_t file_batches(const Loader *d, int64_t f) {
    int64_t G = d->T * d->world, N = d->files[f].ntokens;
    return N > G + 1 ? (N - 2) / G : 0;
}

int64_t loader_nbatches(const Loader *d) {
    int64_t b = 0;
    for (int64_t f = 0; f < d->nfiles; f++) b += file_batches(d, f);
    return b;
}

static int out_of_data(const Loader *d, char *err, size_t errlen) {
    int64_t G = d->T * d->world;
    const Shard *last = &d->files[d->nfiles - 1];
    int64_t left = last->ntokens - (d->file == d->nfiles - 1 ? d->pos : 0);
    if (left < 0) left = 0;
    return fail_at(err, errlen, d->dir,
                     "the %s shards hold too few tokens: batch %" PRId64 " needs %" PRId64
                     " tokens of one file (%d rank%s × T=%" PRId64 ", + 2) and %s, the last file, has %" PRId64
                     " left (%d file%s, %" PRId64 " tokens in all; there is no second epoch: use fewer steps or more "
                     "data)",
                     kind_label(d->kind), d->batches + 1, G + 2, d->world, d->world == 1 ? "" : "s", d->T,
                     last->path, left, d->nfiles, d->nfiles == 1 ? "" : "s", d->ntokens);
}

int loader_next(Loader *d, int32_t *inputs, int32_t *targets, char *err, size_t errlen) {
    int64_t G = d->T * d->world;
    int64_t f = d->file, pos = d->pos;
    while (f < d->nfiles && pos + G + 1 >= d->files[f].ntokens) {
        f++;
        pos = 0;
    }
    if (f >= d->nfiles) return out_of_data(d, err, errlen);
    Shard *s = &d->files[f];
    if (d->mapped_ != f) {
        if (d->mapped_ >= 0) shard_unmap(&d->files[d->mapped_]);
        d->mapped_ = -1;
        if (shard_map(s, err, errlen) != 0) return -1;
        d->mapped_ = f;
    }
    if (!s->checked && shard_check(s, d->vocab, err, errlen) != 0) return -1;
    const uint16_t *tok = s->tokens + pos + (int64_t)d->rank * d->T;
    for (int64_t i = 0; i < d->T; i++) {
        inputs[i] = tok[i];
        targets[i] = tok[i + 1];
    }
    d->file = f;
    d->pos = pos + G;
    d->batches++;
    return 0;
}

void loader_reset(Loader *d) {
    d->file = 0;
    d->pos = 0;
    d->batches = 0;
}

void loader_get_state(const Loader *d, int64_t state[2]) {
    state[0] = d->file;
    state[1] = d->pos;
}

int loader_set_state(Loader *d, const int64_t state[2], char *err, size_t errlen) {
    int64_t f = state[0], pos = state[1], G = d->T * d->world;
    if (f < 0 || f >= d->nfiles)
        return fail_at(err, errlen, d->dir,
                         "cannot restore the %s loader to file %" PRId64 ": there are %d %s files", kind_label(d->kind),
                         f, d->nfiles, d->kind);
    const Shard *s = &d->files[f];
    if (pos != 0 && (pos < 0 || pos % G != 0 || pos > s->ntokens - 2))
        return fail_at(err, errlen, d->dir,
                         "cannot restore the %s loader to position %" PRId64 " of %s (%" PRId64
                         " tokens): with %d rank%s × T=%" PRId64 " a position is a multiple of %" PRId64
                         " below N - 1 (other shards, T or world size than the checkpoint's?)",
                         kind_label(d->kind), pos, s->path, s->ntokens, d->world, d->world == 1 ? "" : "s", d->T, G);
    int64_t b = pos / G;
    for (int64_t i = 0; i < f; i++) b += file_batches(d, i);
    d->file = f;
    d->pos = pos;
    d->batches = b;
    return 0;
}

void loader_align_state(const Loader *d, int64_t state[2]) {
    int64_t f = state[0], pos = state[1], G = d->T * d->world;
    if (f < 0 || f >= d->nfiles || pos <= 0) return;
    pos = (pos + G - 1) / G * G;
    if (pos > d->files[f].ntokens - 2 && f + 1 < d->nfiles) f++, pos = 0;
    state[0] = f;
    state[1] = pos;
}

void loader_close(Loader *d) {
    if (!d) return;
    for (int i = 0; i < d->nfiles; i++) shard_close(&d->files[i]);
    free(d->files);
    free(d->dir);
    free(d->kind);
    memset(d, 0, sizeof *d);
    d->mapped_ = -1;
}
