/* formats.h — the files gptc reads and writes: safetensors (parameters, checkpoints,
 * golden data) and token shards.
 *
 * ==== safetensors (safetensors.c) ====
 *
 * File format: an 8-byte little-endian u64 n, then n bytes of JSON, then the raw
 * little-endian tensor data. The JSON is an object mapping each tensor name to
 *     {"dtype": "F32", "shape": [256, 64], "data_offsets": [begin, end]}
 * with offsets relative to the first byte after the header, plus an optional
 * "__metadata__" entry mapping strings to strings. Writers pad the JSON with spaces to a
 * multiple of 8 bytes.
 *
 * OWNERSHIP RULE: every pointer this module hands out (tensor records, names, tensor data,
 * metadata strings) belongs to the StFile or StWriter it came from and stays valid
 * until st_close / st_writer_free; callers never free them. Every pointer a caller
 * passes in is only borrowed for the duration of the call: st_writer_add* copy the
 * name, shape and data, so the caller may free or reuse its buffers as soon as they return.
 *
 * Errors: functions that can fail take (char *err, size_t errlen) and return 0 or -1; on
 * -1 err holds one line (no newline) that starts with the file path, e.g.
 *     params.safetensors: tensor 'lm_head' has shape [256, 64], expected [256, 32]
 * err may be NULL (or errlen 0) to discard the message.
 *
 * Shapes are row-major, 0 to ST_MAX_DIMS dims; 0 dims is a scalar with one element.
 * A dim of 0 is allowed (the tensor then has no data). The host must be little-endian. */
#ifndef GPTC_FORMATS_H
#define GPTC_FORMATS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000u   /* a JSON header longer than this is rejected */

typedef enum {
    ST_F64, ST_F32, ST_BF16, ST_F16,
    ST_I64, ST_I32, ST_I16, ST_I8,
    ST_U64, ST_U32, ST_U16, ST_U8,
    ST_BOOL,
    ST_NDTYPES
} StDtype;

const char *st_dtype_name(StDtype t);   /* "F64", "BF16", ...; "?" when out of range */
size_t st_dtype_size(StDtype t);        /* bytes per element; 0 when out of range */
int st_dtype_is_float(StDtype t);       /* 1 for F64, F32, BF16, F16 */
/* The dtype whose name is the n bytes at s (exact, case-sensitive): 0, or -1 if none. */
int st_dtype_parse(const char *s, size_t n, StDtype *out);

/* ---- reader ---- */

typedef struct {
    const char *name;                 /* NUL-terminated, UTF-8 */
    StDtype dtype;
    int ndim;                         /* 0..ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];    /* shape[ndim..] are 0 */
    int64_t numel;                    /* product of shape; 1 for a scalar */
    uint64_t begin, end;              /* data_offsets, relative to the data area */
    const void *data;                 /* end-begin bytes inside the mapping; NOT aligned */
} StTensor;

typedef struct { const char *key, *value; } StMeta;

typedef struct {
    const char *path;                 /* copy of the path given to st_open */
    const StTensor *tensors;      /* ntensors records, in the order the header lists them */
    int ntensors;
    const StMeta *meta;           /* the "__metadata__" pairs, in header order */
    int nmeta;
    uint64_t header_len;              /* n, the JSON length */
    uint64_t data_len;                /* bytes after the header (file size - 8 - n) */
    /* private */
    void *map_; size_t map_len_;
    char *strings_;
    const StTensor **by_name_;    /* tensors sorted by name, for st_find */
} StFile;

/* Maps path read-only and parses and validates its header: every tensor must have a known
 * dtype, integer dims >= 0, end - begin == numel * dtype size, lie inside the data area
 * and not overlap another; names must be unique. Returns 0, or -1 with err set and *f left
 * closed (st_close on it is a harmless no-op). Never reads outside the file. path must
 * not be NULL. The file must not be truncated while it is open (the mapping would fault). */
int st_open(StFile *f, const char *path, char *err, size_t errlen);

/* Unmaps and frees everything; f is zeroed and may be reopened. NULL is allowed. */
void st_close(StFile *f);

/* The tensor called name, or NULL. O(log ntensors). */
const StTensor *st_find(const StFile *f, const char *name);

/* The "__metadata__" value for key, or NULL. */
const char *st_meta_get(const StFile *f, const char *key);

/* Copy tensor `name` into dst (numel elements), checking that it has exactly ndim dims equal
 * to shape[0..ndim) (shape may be NULL when ndim is 0). The stored dtype may be any float
 * dtype (F64, F32, BF16, F16); values are converted (F64 -> f32 rounds to nearest even).
 * Errors: missing tensor, wrong shape, non-float dtype. dst is untouched on error. */
int st_read_f64(const StFile *f, const char *name, int ndim, const int64_t *shape,
                   double *dst, char *err, size_t errlen);
int st_read_f32(const StFile *f, const char *name, int ndim, const int64_t *shape,
                   float *dst, char *err, size_t errlen);

/* Same for integers: the stored dtype may be any integer dtype (I32, I64, U16, U8, ...);
 * a value outside int32 is an error naming the element. dst may be partly written then. */
int st_read_i32(const StFile *f, const char *name, int ndim, const int64_t *shape,
                   int32_t *dst, char *err, size_t errlen);

/* ---- writer ---- */

typedef struct StWriter StWriter;

StWriter *st_writer_new(void);      /* NULL when out of memory */
void st_writer_free(StWriter *w);   /* NULL is allowed */

/* Adds a tensor whose numel * dtype-size bytes of raw little-endian data are at `data`
 * (which is COPIED). Tensors are stored in the order added. Invalid arguments (bad ndim,
 * negative dim, duplicate or reserved name, NULL data with numel > 0, out of memory) do not
 * abort: the first one is remembered and reported by st_writer_save, which then fails. */
void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim,
                      const int64_t *shape, const void *data);

/* Adds a tensor from f64 / f32 values, converting each to dtype, which must be F64, F32,
 * BF16 or F16 (each rounded to nearest even, directly from the source value). */
void st_writer_add_f64(StWriter *w, const char *name, StDtype dtype, int ndim,
                          const int64_t *shape, const double *src);
void st_writer_add_f32(StWriter *w, const char *name, StDtype dtype, int ndim,
                          const int64_t *shape, const float *src);

/* Adds a "__metadata__" key/value pair (both copied); a duplicate key is an error. */
void st_writer_meta(StWriter *w, const char *key, const char *value);

/* Writes the file atomically: to "<path>.tmp.<pid>", then fflush + fsync, rename over path,
 * fsync of the directory. The header lists __metadata__ first, then the tensors in the
 * order added, stored contiguously from offset 0, JSON padded with spaces to a multiple of
 * 8. Returns 0, or -1 with err naming path (and strerror where the OS failed); on failure
 * the temp file is removed and an existing file at path is left as it was. */
int st_writer_save(StWriter *w, const char *path, char *err, size_t errlen);

/* ---- scalar conversions (round to nearest even; NaN stays NaN, quiet); float ↔ bf16 is
 * bf16_from_f32 / bf16_to_f32 in base.h ---- */

uint16_t st_f64_to_bf16(double x);   /* rounds once, from the double (no double rounding) */
uint16_t st_f32_to_f16(float x);     /* IEEE binary16; beyond 65504 rounds to inf */
uint16_t st_f64_to_f16(double x);
float st_f16_to_f32(uint16_t h);

/* ==== Token shards (the modded-nanogpt / llm.c format; shard.c) ====
 *
 * Shard file (S-7.1):
 *   offset 0    : 256 little-endian int32 header words: [0] = 20240520 (magic),
 *                 [1] = 1 (version), [2] = N (tokens), [3..255] = 0
 *   offset 1024 : N little-endian uint16 token ids; bytes after them are ignored.
 * The host must be little-endian. */

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_BYTES 1024          /* 256 int32 words */
#define SHARD_MAX_TOKENS INT32_MAX       /* N is an int32 in the header */

/* ---- one shard ---- */

typedef struct {
    char *path;
    int64_t ntokens;              /* N, from the header */
    const uint16_t *tokens;       /* N ids inside the mapping, or NULL while not mapped */
    bool checked;                 /* every id verified below the vocabulary size */
    /* private */
    void *map_;
    size_t map_len_;
} Shard;

/* Writes tokens[0..n) as a shard at path, atomically: "<path>.tmp.<pid>", fsync, rename,
 * fsync of the folder. 0 <= n <= SHARD_MAX_TOKENS. On failure an existing file at
 * path is left as it was. */
int shard_write(const char *path, const uint16_t *tokens, int64_t n, char *err, size_t errlen);

/* Opens path, validates the header (magic, version, N >= 0, file size >= 1024 + 2N) and
 * maps the tokens. *s is zeroed first; on failure it is left closed. */
int shard_open(Shard *s, const char *path, char *err, size_t errlen);
/* Every id < vocab, else an error naming the first offending position and id. Sets
 * s->checked on success. s must be open (mapped). */
int shard_check(Shard *s, int64_t vocab, char *err, size_t errlen);
/* Unmaps and frees; s is zeroed. NULL and a closed shard are allowed. */
void shard_close(Shard *s);

/* The steps of shard_open, for a reader that maps one shard at a time: shard_probe reads
 * and validates the header of s->path (s->path set, nothing mapped) and sets s->ntokens;
 * shard_map maps the header and the tokens of a probed shard, checking the size again (a
 * file truncated since the probe must not fault the mapping); shard_unmap undoes it. */
int shard_probe(Shard *s, char *err, size_t errlen);
int shard_map(Shard *s, char *err, size_t errlen);
void shard_unmap(Shard *s);

#endif
