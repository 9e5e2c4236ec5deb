/* shard.c — token shards: see formats.h for the format. A header is read and checked with
 * pread (shard_probe), so a bad file is reported before its tokens are needed; the tokens are
 * mapped on demand (shard_map) and unmapped when no longer used (shard_unmap). */
#include "formats/formats.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shard.c assumes a little-endian host"
#endif

static int32_t le32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* ---- writer ---- */

int shard_write(const char *path, const uint16_t *tokens, int64_t n, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (n < 0 || n > SHARD_MAX_TOKENS)
        return fail_at(err, errlen, path, "cannot write %" PRId64 " tokens (a shard holds 0 to %d)", n,
                         SHARD_MAX_TOKENS);
    if (n > 0 && !tokens) return fail_at(err, errlen, path, "cannot write: no tokens given");
    uint8_t header[SHARD_HEADER_BYTES] = {0};
    const uint32_t words[3] = {SHARD_MAGIC, SHARD_VERSION, (uint32_t)n};
    for (int w = 0; w < 3; w++)
        for (int k = 0; k < 4; k++) header[4 * w + k] = (uint8_t)(words[w] >> (8 * k));

    Piece pieces[2] = {{header, sizeof header}, {tokens, sizeof *tokens * (size_t)n}};
    return write_atomic(path, pieces, 2, err, errlen);
}

/* ---- one shard ---- */

int shard_probe(Shard *s, char *err, size_t errlen) {
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer */
    int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return fail_at(err, errlen, s->path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fail_at(err, errlen, s->path, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail_at(err, errlen, s->path, "%s, not a regular file: expected a token shard file (*.bin)",
                       file_kind(st.st_mode));
    }
    uint8_t h[12];
    ssize_t got = st.st_size >= SHARD_HEADER_BYTES ? pread(fd, h, sizeof h, 0) : 0;
    int e = errno;
    close(fd);
    if (st.st_size < SHARD_HEADER_BYTES)
        return fail_at(err, errlen, s->path,
                         "truncated: %lld bytes, shorter than the %d-byte header (not a token shard?)",
                         (long long)st.st_size, SHARD_HEADER_BYTES);
    if (got != (ssize_t)sizeof h)
        return fail_at(err, errlen, s->path, "cannot read the header: %s", got < 0 ? strerror(e) : "short read");
    int32_t magic = le32(h), version = le32(h + 4), n = le32(h + 8);
    if (magic != SHARD_MAGIC)
        return fail_at(err, errlen, s->path,
                         "wrong magic number %" PRId32 " (a token shard starts with %d): not a token shard", magic,
                         SHARD_MAGIC);
    if (version != SHARD_VERSION)
        return fail_at(err, errlen, s->path, "unsupported shard version %" PRId32 " (expected %d)", version,
                         SHARD_VERSION);
    if (n < 0) return fail_at(err, errlen, s->path, "bad header: it says %" PRId32 " tokens", n);
    int64_t held = ((int64_t)st.st_size - SHARD_HEADER_BYTES) / 2;
    if (held < n)
        return fail_at(err, errlen, s->path, "truncated: header says %" PRId32 " tokens, file holds %" PRId64, n,
                         held);
    s->ntokens = n;
    return 0;
}

void shard_unmap(Shard *s) {
    if (s->map_) munmap(s->map_, s->map_len_);
    s->map_ = NULL;
    s->map_len_ = 0;
    s->tokens = NULL;
}

int shard_map(Shard *s, char *err, size_t errlen) {
    if (s->map_) return 0;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail_at(err, errlen, s->path, "cannot open: %s", strerror(errno));
    struct stat st;
    size_t len = (size_t)SHARD_HEADER_BYTES + 2 * (size_t)s->ntokens;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < len) {
        close(fd);
        return fail_at(err, errlen, s->path, "truncated since it was opened: header says %" PRId64 " tokens",
                         s->ntokens);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return fail_at(err, errlen, s->path, "mmap: %s", strerror(e));
    s->map_ = map;
    s->map_len_ = len;
    s->tokens = (const uint16_t *)((const uint8_t *)map + SHARD_HEADER_BYTES);
    return 0;
}

int shard_open(Shard *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (err && errlen) err[0] = 0;
    s->path = xstrdup(path);
    if (shard_probe(s, err, errlen) != 0 || shard_map(s, err, errlen) != 0) {
        shard_close(s);
        return -1;
    }
    return 0;
}

int shard_check(Shard *s, int64_t vocab, char *err, size_t errlen) {
    if (!s->tokens && s->ntokens > 0) return fail_at(err, errlen, s->path, "not mapped");
    for (int64_t i = 0; i < s->ntokens; i++)
        if (s->tokens[i] >= vocab)
            return fail_at(err, errlen, s->path,
                             "token id %u at position %" PRId64 " is not below the vocabulary size %" PRId64
                             " (shards of another tokenizer?)",
                             (unsigned)s->tokens[i], i, vocab);
    s->checked = true;
    return 0;
}

void shard_close(Shard *s) {
    if (!s) return;
    shard_unmap(s);
    free(s->path);
    memset(s, 0, sizeof *s);
}

/* ---- the loader ---- */
