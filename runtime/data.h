/* data.h — token shards (the modded-nanogpt / llm.c format) and the batch loader of
 * spec S-7.
 *
 * Shard file (S-7.1):
 *   offset 0    : 256 little-endian int32 header words: [0] = 20240520 (magic),
 *                 [1] = 1 (version), [2] = N (tokens), [3..255] = 0
 *   offset 1024 : N little-endian uint16 token ids; bytes after them are ignored.
 *
 * Loader (S-7.2), per rank r of W, T tokens per rank, G = W·T:
 *   open the first file; pos = 0
 *   every batch: while pos + G + 1 >= N(file): next file, pos = 0   (no wrap-around)
 *                start = pos + r·T; inputs = tok[start .. start+T-1];
 *                targets = tok[start+1 .. start+T]; pos += G
 * A file serves batches while G + 2 tokens remain from pos; a file with N <= G + 1 is
 * skipped; running out of files is an error. Neighbouring ranks overlap by one token.
 *
 * Files: in a folder DIR, the regular files whose names match "*KIND*.bin" (KIND "train"
 * or "val"), in lexicographic (strcmp) order of their names, so a modded-nanogpt
 * fineweb10B folder (fineweb_train_000001.bin …, fineweb_val_000000.bin) works as is.
 * DIR may also be one shard file, which is then the only file (whatever its name).
 *
 * OWNERSHIP RULE: an RtData / RtShard owns its paths, file descriptors and mappings;
 * rt_data_close / rt_shard_close release everything. Token pointers point into a mapping
 * and are valid until the file is unmapped (for RtData: until the loader moves to another
 * file or is closed; batches are copied out, so callers never hold them).
 *
 * Errors: functions that can fail take (char *err, size_t errlen) and return 0 or -1; on
 * -1 err holds one line (no newline) that starts with the file (or folder) concerned:
 *     data/train.bin: truncated: header says 1538 tokens, file holds 1000
 * err may be NULL (or errlen 0). A failed rt_data_next leaves the loader state unchanged.
 * The host must be little-endian. */
#ifndef GPTC_RUNTIME_DATA_H
#define GPTC_RUNTIME_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_SHARD_MAGIC 20240520
#define RT_SHARD_VERSION 1
#define RT_SHARD_HEADER_BYTES 1024          /* 256 int32 words */
#define RT_SHARD_MAX_TOKENS INT32_MAX       /* N is an int32 in the header */

/* ---- one shard ---- */

typedef struct {
    char *path;
    int64_t ntokens;              /* N, from the header */
    const uint16_t *tokens;       /* N ids inside the mapping, or NULL while not mapped */
    bool checked;                 /* every id verified below the vocabulary size */
    /* private */
    void *map_;
    size_t map_len_;
} RtShard;

/* Writes tokens[0..n) as a shard at path, atomically: "<path>.tmp.<pid>", fsync, rename,
 * fsync of the folder. 0 <= n <= RT_SHARD_MAX_TOKENS. On failure an existing file at
 * path is left as it was. */
int rt_shard_write(const char *path, const uint16_t *tokens, int64_t n, char *err, size_t errlen);

/* Opens path, validates the header (magic, version, N >= 0, file size >= 1024 + 2N) and
 * maps the tokens. *s is zeroed first; on failure it is left closed. */
int rt_shard_open(RtShard *s, const char *path, char *err, size_t errlen);
/* Every id < vocab, else an error naming the first offending position and id. Sets
 * s->checked on success. s must be open (mapped). */
int rt_shard_check(RtShard *s, int64_t vocab, char *err, size_t errlen);
/* Unmaps and frees; s is zeroed. NULL and a closed shard are allowed. */
void rt_shard_close(RtShard *s);

/* ---- the loader ---- */

typedef struct {
    char *dir;                    /* copies of the arguments of rt_data_open */
    char *kind;
    int64_t T, vocab;
    int rank, world;
    RtShard *files;               /* nfiles, sorted; headers validated, mapped on use */
    int nfiles;
    int64_t ntokens;              /* sum of N over the files */
    /* state: the current file and position (S-7.2); batches served since open/reset */
    int64_t file, pos, batches;
    /* private */
    int64_t mapped_;              /* the one file kept mapped, or -1 */
} RtData;

/* Finds the "*KIND*.bin" files of dir (or takes dir itself when it is a file), validates
 * every header and size up front (ids are checked when a file is first used), and sets
 * the state to the start of the first file. T >= 1, 0 <= rank < world, vocab >= 1.
 * Errors: "no *train*.bin files in DIR", an unreadable folder or file, a bad header, a
 * truncated file. *d is zeroed first; on failure it is left closed. */
int rt_data_open(RtData *d, const char *dir, const char *kind, int64_t T, int rank, int world,
                 int64_t vocab, char *err, size_t errlen);

/* The next batch of this rank: inputs[0..T) and targets[0..T) (targets = inputs shifted by
 * one). Errors: the files run out ("the training shards hold too few tokens: batch K
 * needs …"), an id >= vocab in a file used for the first time. */
int rt_data_next(RtData *d, int32_t *inputs, int32_t *targets, char *err, size_t errlen);

/* Back to the start of the first file (every validation starts there). */
void rt_data_reset(RtData *d);

/* The loader state as two int64 values, for checkpoints: state[0] = file index, state[1]
 * = position in that file. rt_data_set_state restores it (for the same files, T and W);
 * a state that cannot come from these files (index out of range, position past the file's
 * end or not a multiple of G) is an error and leaves the loader as it was. */
void rt_data_get_state(const RtData *d, int64_t state[2]);
int rt_data_set_state(RtData *d, const int64_t state[2], char *err, size_t errlen);

/* How many batches the files serve in all, from the start. */
int64_t rt_data_nbatches(const RtData *d);

/* Unmaps and frees everything; d is zeroed. NULL and a closed loader are allowed. */
void rt_data_close(RtData *d);

#endif
