/* safetensors.c — formats.h has the format, the API contracts and the ownership rule.
 *
 * Reader: mmap the file, parse the JSON header with a small hand-written parser that knows
 * the exact shape of a safetensors header (so it needs no recursion), then validate every
 * tensor against the data area. Every byte read is bounds-checked against the mapping.
 * Writer: tensors are copied into the writer, the header is built in a string buffer, and
 * the file is written to a temp name and renamed into place. */
#include "formats/formats.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* ---- errors ---- */

/* ---- dtypes ---- */

static const struct { const char *name; size_t size; } st_dtypes[ST_NDTYPES] = {
    [ST_F64] = {"F64", 8},  [ST_F32] = {"F32", 4},  [ST_BF16] = {"BF16", 2},
    [ST_F16] = {"F16", 2},  [ST_I64] = {"I64", 8},  [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2},  [ST_I8] = {"I8", 1},    [ST_U64] = {"U64", 8},
    [ST_U32] = {"U32", 4},  [ST_U16] = {"U16", 2},  [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1},
};

static int st_dtype_ok(StDtype t) { return (unsigned)t < ST_NDTYPES; }

const char *st_dtype_name(StDtype t) { return st_dtype_ok(t) ? st_dtypes[t].name : "?"; }
size_t st_dtype_size(StDtype t) { return st_dtype_ok(t) ? st_dtypes[t].size : 0; }

int st_dtype_is_float(StDtype t) {
    return t == ST_F64 || t == ST_F32 || t == ST_BF16 || t == ST_F16;
}

int st_dtype_parse(const char *s, size_t n, StDtype *out) {
    for (int t = 0; t < ST_NDTYPES; t++)
        if (strlen(st_dtypes[t].name) == n && memcmp(st_dtypes[t].name, s, n) == 0) {
            *out = (StDtype)t;
            return 0;
        }
    return -1;
}

/* ---- scalar conversions ---- */

static uint32_t f32_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static float f32_from_bits(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* x rounded to float with round-to-odd: truncate toward zero, then set the last bit if
 * inexact. Rounding that result to nearest even with >= 2 fewer bits (bf16, f16) gives the
 * same answer as rounding x directly, which a plain (float)x would not (double rounding). */
static float f64_to_f32_odd(double x) {
    float t = (float)x;   /* x is not NaN here */
    if ((double)t == x) return t;
    uint32_t u = f32_bits(t);
    double at = t < 0 ? -(double)t : (double)t, ax = x < 0 ? -x : x;
    if (at > ax) u -= 1;   /* rounded away from zero: step the magnitude back one ulp */
    return f32_from_bits(u | 1);
}

uint16_t st_f64_to_bf16(double x) {
    if (x != x) return bf16_from_f32((float)x);
    return bf16_from_f32(f64_to_f32_odd(x));
}

uint16_t st_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((u >> 13) & 0x3ff);   /* NaN */
    if (u >= 0x477ff000u) return sign | 0x7c00;    /* >= 65520: rounds to inf */
    if (u >= 0x38800000u) {                          /* normal half: >= 2^-14 */
        u += 0xfffu + ((u >> 13) & 1);
        return sign | (uint16_t)((u - 0x38000000u) >> 13);
    }
    /* subnormal half: round |x| * 2^24 (exact scaling, < 1024) to an integer, ties even;
     * 1024 is the smallest normal, whose encoding is also 1024 */
    float s = f32_from_bits(u) * 16777216.0f;
    uint32_t i = (uint32_t)s;
    float frac = s - (float)i;
    if (frac > 0.5f || (frac == 0.5f && (i & 1))) i++;
    return sign | (uint16_t)i;
}

uint16_t st_f64_to_f16(double x) {
    if (x != x) return st_f32_to_f16((float)x);
    return st_f32_to_f16(f64_to_f32_odd(x));
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {   /* zero or subnormal: m * 2^-24, exact in float */
        float v = (float)m * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (e == 31) return f32_from_bits(sign | 0x7f800000u | (m << 13));
    return f32_from_bits(sign | ((e + 112) << 23) | (m << 13));
}

/* ---- shapes ---- */

/* numel of shape[0..ndim); -1 if a dim is negative or the product overflows int64. */
static int64_t st_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] == 0) n = 0;
    }
    if (n == 0) return 0;
    for (int i = 0; i < ndim; i++) {
        if (n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

/* "[256, 64]" into buf (at most ST_MAX_DIMS dims, so 8 * 22 bytes suffice). */
static const char *st_shape_str(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, len - k, "[");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}
#define ST_SHAPE_BUF 200

/* ---- JSON header parser ---- */

typedef struct {
    const char *s;      /* the header, n bytes, not NUL-terminated */
    size_t n, i;        /* length, cursor */
    char *arena;        /* decoded strings: each fits in its raw text, so n + 1 bytes suffice */
    size_t arena_used;
    const char *path;
    char *err;
    size_t errlen;
} JsonParser;

static int json_fail(JsonParser *p, const char *what) {
    return fail_at(p->err, p->errlen, p->path, "invalid JSON header at byte %zu: %s", p->i, what);
}

static void json_ws(JsonParser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

/* Skips whitespace; the next byte, or -1 at the end. */
static int json_peek(JsonParser *p) {
    json_ws(p);
    return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

static int json_expect(JsonParser *p, char c, const char *what) {
    if (json_peek(p) != (unsigned char)c) return json_fail(p, what);
    p->i++;
    return 0;
}

static int json_hex4(JsonParser *p, uint32_t *out) {
    uint32_t v = 0;
    if (p->n - p->i < 4) return json_fail(p, "truncated \\u escape");
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return json_fail(p, "bad hex digit in \\u escape");
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* Parses a string at the cursor into the arena: *out is NUL-terminated, *len its length.
 * Strings containing NUL (\u0000) are rejected: names and metadata must be C strings. */
static int json_string(JsonParser *p, char **out, size_t *len) {
    if (json_peek(p) != '"') return json_fail(p, "expected a string");
    p->i++;
    char *dst = p->arena + p->arena_used, *o = dst;
    for (;;) {
        if (p->i >= p->n) return json_fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"') break;
        if (c < 0x20) return json_fail(p, "control character in string");
        if (c != '\\') { *o++ = (char)c; continue; }
        if (p->i >= p->n) return json_fail(p, "unterminated string");
        c = (unsigned char)p->s[p->i++];
        switch (c) {
        case '"': case '\\': case '/': *o++ = (char)c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (json_hex4(p, &cp)) return -1;
            if (cp >= 0xdc00 && cp <= 0xdfff) return json_fail(p, "lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                    return json_fail(p, "high surrogate without low surrogate");
                p->i += 2;
                if (json_hex4(p, &lo)) return -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return json_fail(p, "high surrogate without low surrogate");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0) return json_fail(p, "\\u0000 in string");
            /* UTF-8: at most 4 bytes for the 12 raw bytes of a pair, 3 for 6 bytes */
            if (cp < 0x80) *o++ = (char)cp;
            else if (cp < 0x800) { *o++ = (char)(0xc0 | cp >> 6); *o++ = (char)(0x80 | (cp & 0x3f)); }
            else if (cp < 0x10000) {
                *o++ = (char)(0xe0 | cp >> 12); *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *o++ = (char)(0x80 | (cp & 0x3f));
            } else {
                *o++ = (char)(0xf0 | cp >> 18); *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3f)); *o++ = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default: p->i--; return json_fail(p, "bad escape in string");
        }
    }
    *o++ = 0;
    *out = dst;
    *len = (size_t)(o - dst - 1);
    p->arena_used += (size_t)(o - dst);
    return 0;
}

/* Parses a non-negative integer that fits int64. `what` names it in messages, e.g.
 * "tensor 'a': dim 1". Rejects fractions and exponents ("not an integer"), a minus sign
 * ("negative"), and non-numbers. */
static int json_uint(JsonParser *p, const char *tname, const char *what, int64_t *out) {
    int c = json_peek(p);
    if (c != '-' && !(c >= '0' && c <= '9'))
        return fail_at(p->err, p->errlen, p->path, "tensor '%s': %s is not an integer "
                       "(header byte %zu)", tname, what, p->i);
    size_t start = p->i;
    int neg = 0, frac = 0, overflow = 0;
    uint64_t v = 0;
    if (p->s[p->i] == '-') { neg = 1; p->i++; }
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
        return json_fail(p, "bad number");
    if (p->s[p->i] == '0' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9')
        return json_fail(p, "number with a leading zero");
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        unsigned d = (unsigned)(p->s[p->i++] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10) overflow = 1; else v = v * 10 + d;
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        frac = 1; p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return json_fail(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        frac = 1; p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return json_fail(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    int nlen = (int)(p->i - start > 40 ? 40 : p->i - start);
    if (frac)
        return fail_at(p->err, p->errlen, p->path, "tensor '%s': %s is %.*s, not an integer",
                       tname, what, nlen, p->s + start);
    if (neg)
        return fail_at(p->err, p->errlen, p->path, "tensor '%s': %s is negative (%.*s)",
                       tname, what, nlen, p->s + start);
    if (overflow)
        return fail_at(p->err, p->errlen, p->path, "tensor '%s': %s is too large (%.*s)",
                       tname, what, nlen, p->s + start);
    *out = (int64_t)v;
    return 0;
}

/* {"key": "value", ...} — the __metadata__ object; appends to *meta. */
static int json_metadata(JsonParser *p, StMeta **meta, int *nmeta) {
    int cap = 0;
    if (json_expect(p, '{', "expected '{' after \"__metadata__\"")) return -1;
    if (json_peek(p) == '}') { p->i++; return 0; }
    for (;;) {
        char *k, *v;
        size_t kl, vl;
        if (json_string(p, &k, &kl)) return -1;
        if (json_expect(p, ':', "expected ':' after a key")) return -1;
        if (json_peek(p) != '"')
            return fail_at(p->err, p->errlen, p->path, "__metadata__ value of '%s' is not a "
                           "string (invalid header at byte %zu)", k, p->i);
        if (json_string(p, &v, &vl)) return -1;
        for (int j = 0; j < *nmeta; j++)
            if (strcmp((*meta)[j].key, k) == 0)
                return fail_at(p->err, p->errlen, p->path, "duplicate __metadata__ key '%s'", k);
        if (*nmeta == cap) {
            cap = cap ? 2 * cap : 8;
            *meta = xrealloc(*meta, (size_t)cap * sizeof **meta);
        }
        (*meta)[(*nmeta)++] = (StMeta){k, v};
        int c = json_peek(p);
        p->i++;
        if (c == '}') return 0;
        if (c != ',') { p->i--; return json_fail(p, "expected ',' or '}' in __metadata__"); }
    }
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]} for tensor t (t->name is set). */
static int json_tensor(JsonParser *p, StTensor *t) {
    int seen_dtype = 0, seen_shape = 0, seen_off = 0;
    const char *nm = t->name;
    if (json_expect(p, '{', "expected '{' for a tensor entry")) return -1;
    if (json_peek(p) == '}') {
        p->i++;
        return fail_at(p->err, p->errlen, p->path, "tensor '%s': missing \"dtype\"", nm);
    }
    for (;;) {
        char *k;
        size_t kl;
        if (json_string(p, &k, &kl)) return -1;
        if (json_expect(p, ':', "expected ':' after a key")) return -1;
        if (strcmp(k, "dtype") == 0) {
            char *d;
            size_t dl;
            if (seen_dtype++)
                return fail_at(p->err, p->errlen, p->path, "tensor '%s': duplicate \"dtype\"", nm);
            if (json_string(p, &d, &dl)) return -1;
            if (st_dtype_parse(d, dl, &t->dtype))
                return fail_at(p->err, p->errlen, p->path, "tensor '%s': unknown dtype '%s'",
                               nm, d);
        } else if (strcmp(k, "shape") == 0) {
            if (seen_shape++)
                return fail_at(p->err, p->errlen, p->path, "tensor '%s': duplicate \"shape\"", nm);
            if (json_expect(p, '[', "expected '[' for \"shape\"")) return -1;
            if (json_peek(p) == ']') p->i++;
            else for (;;) {
                if (t->ndim == ST_MAX_DIMS)
                    return fail_at(p->err, p->errlen, p->path, "tensor '%s': more than %d dims",
                                   nm, ST_MAX_DIMS);
                char what[32];
                snprintf(what, sizeof what, "dim %d", t->ndim);
                if (json_uint(p, nm, what, &t->shape[t->ndim])) return -1;
                t->ndim++;
                int c = json_peek(p);
                p->i++;
                if (c == ']') break;
                if (c != ',') { p->i--; return json_fail(p, "expected ',' or ']' in \"shape\""); }
            }
        } else if (strcmp(k, "data_offsets") == 0) {
            int64_t b, e;
            if (seen_off++)
                return fail_at(p->err, p->errlen, p->path, "tensor '%s': duplicate "
                               "\"data_offsets\"", nm);
            if (json_expect(p, '[', "expected '[' for \"data_offsets\"")) return -1;
            if (json_uint(p, nm, "data_offsets[0]", &b)) return -1;
            if (json_expect(p, ',', "expected two numbers in \"data_offsets\"")) return -1;
            if (json_uint(p, nm, "data_offsets[1]", &e)) return -1;
            if (json_expect(p, ']', "expected ']' after two numbers in \"data_offsets\"")) return -1;
            t->begin = (uint64_t)b;
            t->end = (uint64_t)e;
        } else {
            return fail_at(p->err, p->errlen, p->path, "tensor '%s': unknown key '%s'", nm, k);
        }
        int c = json_peek(p);
        p->i++;
        if (c == '}') break;
        if (c != ',') { p->i--; return json_fail(p, "expected ',' or '}' in a tensor entry"); }
    }
    const char *missing = !seen_dtype ? "dtype" : !seen_shape ? "shape"
                        : !seen_off ? "data_offsets" : NULL;
    if (missing)
        return fail_at(p->err, p->errlen, p->path, "tensor '%s': missing \"%s\"", nm, missing);
    return 0;
}

/* The whole header: {"name": {...}, "__metadata__": {...}, ...} then only whitespace. */
static int json_header(JsonParser *p, StFile *f, StTensor **tensors, StMeta **meta) {
    int cap = 0, seen_meta = 0;
    if (json_expect(p, '{', "expected '{' at the start")) return -1;
    if (json_peek(p) == '}') p->i++;
    else for (;;) {
        char *k;
        size_t kl;
        if (json_string(p, &k, &kl)) return -1;
        if (json_expect(p, ':', "expected ':' after a key")) return -1;
        if (strcmp(k, "__metadata__") == 0) {
            if (seen_meta++)
                return fail_at(p->err, p->errlen, p->path, "duplicate \"__metadata__\"");
            if (json_metadata(p, meta, &f->nmeta)) return -1;
            f->meta = *meta;
        } else {
            if (f->ntensors == cap) {
                if (cap > INT32_MAX / 4) return fail_at(p->err, p->errlen, p->path, "too many tensors");
                cap = cap ? 2 * cap : 64;
                *tensors = xrealloc(*tensors, (size_t)cap * sizeof **tensors);
                f->tensors = *tensors;
            }
            StTensor *t = &(*tensors)[f->ntensors++];
            memset(t, 0, sizeof *t);
            t->name = k;
            if (json_tensor(p, t)) return -1;
        }
        int c = json_peek(p);
        p->i++;
        if (c == '}') break;
        if (c != ',') { p->i--; return json_fail(p, "expected ',' or '}' after an entry"); }
    }
    if (json_peek(p) != -1) return json_fail(p, "unexpected text after the header object");
    return 0;
}

/* ---- reader ---- */

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

static int cmp_by_offset(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

void st_close(StFile *f) {
    if (!f) return;
    if (f->map_) munmap(f->map_, f->map_len_);
    free((void *)f->path);
    free((void *)f->tensors);
    free((void *)f->meta);
    free(f->strings_);
    free((void *)f->by_name_);
    memset(f, 0, sizeof *f);
}

/* Checks every parsed tensor against the data area; fills numel and data, builds by_name_. */
static int st_validate(StFile *f, const uint8_t *data, char *err, size_t errlen) {
    const char *path = f->path;
    StTensor *ts = (StTensor *)f->tensors;
    int n = f->ntensors;
    size_t nalloc = n > 0 ? (size_t)n : 1;
    char s1[ST_SHAPE_BUF];
    uint64_t max_end = 0;

    for (int i = 0; i < n; i++) {
        StTensor *t = &ts[i];
        size_t esz = st_dtype_size(t->dtype);
        t->numel = st_numel(t->ndim, t->shape);
        if (t->numel < 0 || (uint64_t)t->numel > UINT64_MAX / esz)
            return fail_at(err, errlen, path, "tensor '%s': shape %s is too large", t->name,
                           st_shape_str(s1, sizeof s1, t->ndim, t->shape));
        if (t->begin > t->end)
            return fail_at(err, errlen, path, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                           "] end before they begin", t->name, t->begin, t->end);
        uint64_t need = (uint64_t)t->numel * esz;
        if (t->end - t->begin != need)
            return fail_at(err, errlen, path, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                           "] hold %" PRIu64 " bytes, but shape %s of %s needs %" PRIu64,
                           t->name, t->begin, t->end, t->end - t->begin,
                           st_shape_str(s1, sizeof s1, t->ndim, t->shape),
                           st_dtype_name(t->dtype), need);
        if (t->end > max_end) max_end = t->end;
    }
    if (max_end > f->data_len)
        return fail_at(err, errlen, path, "truncated: header says %" PRIu64 " bytes of data, "
                       "file has %" PRIu64, max_end, f->data_len);
    for (int i = 0; i < n; i++) ts[i].data = data + ts[i].begin;

    const StTensor **idx = xmalloc(nalloc * sizeof *idx);
    f->by_name_ = idx;
    for (int i = 0; i < n; i++) idx[i] = &ts[i];
    qsort(idx, (size_t)n, sizeof *idx, cmp_by_name);
    for (int i = 1; i < n; i++)
        if (strcmp(idx[i - 1]->name, idx[i]->name) == 0)
            return fail_at(err, errlen, path, "duplicate tensor name '%s'", idx[i]->name);

    const StTensor **ord = xmalloc(nalloc * sizeof *ord);
    for (int i = 0; i < n; i++) ord[i] = &ts[i];
    qsort(ord, (size_t)n, sizeof *ord, cmp_by_offset);
    const StTensor *prev = NULL;   /* the non-empty tensor that ends last so far */
    for (int i = 0; i < n; i++) {
        const StTensor *t = ord[i];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end) {
            fail_at(err, errlen, path, "tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%"
                    PRIu64 ", %" PRIu64 ") overlap", prev->name, prev->begin, prev->end,
                    t->name, t->begin, t->end);
            free(ord);
            return -1;
        }
        if (!prev || t->end > prev->end) prev = t;
    }
    free(ord);
    return 0;
}

int st_open(StFile *f, const char *path, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    if (err && errlen) err[0] = 0;
    char *pcopy = xstrdup(path);
    f->path = pcopy;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail_at(err, errlen, path, "cannot open: %s", strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        fail_at(err, errlen, path, "cannot stat: %s", strerror(errno));
        close(fd);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        fail_at(err, errlen, path, "not a regular file");
        close(fd);
        goto fail;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        fail_at(err, errlen, path, "truncated: file has %" PRIu64 " bytes, less than the "
                "8-byte header length", size);
        close(fd);
        goto fail;
    }
    if (size > SIZE_MAX) {
        fail_at(err, errlen, path, "file too large to map (%" PRIu64 " bytes)", size);
        close(fd);
        goto fail;
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int merr = errno;
    close(fd);
    if (map == MAP_FAILED) {
        fail_at(err, errlen, path, "mmap: %s", strerror(merr));
        goto fail;
    }
    f->map_ = map;
    f->map_len_ = (size_t)size;
    const uint8_t *bytes = map;

    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = (n << 8) | bytes[k];
    if (n > ST_MAX_HEADER) {
        fail_at(err, errlen, path, "header length %" PRIu64 " is absurd (more than %u bytes)",
                n, ST_MAX_HEADER);
        goto fail;
    }
    if (n > size - 8) {
        fail_at(err, errlen, path, "truncated: header length says %" PRIu64 " bytes of JSON, "
                "file has %" PRIu64 " after the length", n, size - 8);
        goto fail;
    }
    f->header_len = n;
    f->data_len = size - 8 - n;

    f->strings_ = xmalloc((size_t)n + 1);
    JsonParser p = {.s = (const char *)bytes + 8, .n = (size_t)n, .arena = f->strings_,
                 .path = path, .err = err, .errlen = errlen};
    StTensor *tensors = NULL;
    StMeta *meta = NULL;
    int rc = json_header(&p, f, &tensors, &meta);
    f->tensors = tensors;   /* whatever was allocated is freed by st_close */
    f->meta = meta;
    if (rc) goto fail;
    if (st_validate(f, bytes + 8 + n, err, errlen)) goto fail;
    return 0;
fail:
    st_close(f);
    return -1;
}

const StTensor *st_find(const StFile *f, const char *name) {
    size_t lo = 0, hi = (size_t)f->ntensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name_[mid]->name, name);
        if (c == 0) return f->by_name_[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

const char *st_meta_get(const StFile *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* Finds name and checks its shape against (ndim, shape) and its dtype with want_float. */
static const StTensor *st_lookup(const StFile *f, const char *name, int ndim,
                                     const int64_t *shape, int want_float,
                                     char *err, size_t errlen) {
    char s1[ST_SHAPE_BUF], s2[ST_SHAPE_BUF];
    const StTensor *t = st_find(f, name);
    if (!t) { fail_at(err, errlen, f->path, "missing tensor '%s'", name); return NULL; }
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape)) {
        fail_at(err, errlen, f->path, "tensor '%s': bad expected shape (ndim %d)", name, ndim);
        return NULL;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        fail_at(err, errlen, f->path, "tensor '%s' has shape %s, expected %s", name,
                st_shape_str(s1, sizeof s1, t->ndim, t->shape),
                st_shape_str(s2, sizeof s2, ndim, shape));
        return NULL;
    }
    if (st_dtype_is_float(t->dtype) != want_float) {
        fail_at(err, errlen, f->path, "tensor '%s' has dtype %s, expected %s", name,
                st_dtype_name(t->dtype), want_float ? "a float dtype (F64, F32, BF16, F16)"
                : "an integer dtype (I32, I64, U16, ...)");
        return NULL;
    }
    return t;
}

/* Element i of a float tensor as double (exact for every float dtype). */
static double st_get_f64(const StTensor *t, int64_t i) {
    const uint8_t *p = (const uint8_t *)t->data + (size_t)i * st_dtype_size(t->dtype);
    switch (t->dtype) {
    case ST_F64: { double v; memcpy(&v, p, 8); return v; }
    case ST_F32: { float v; memcpy(&v, p, 4); return v; }
    case ST_BF16: { uint16_t h; memcpy(&h, p, 2); return bf16_to_f32(h); }
    case ST_F16: { uint16_t h; memcpy(&h, p, 2); return st_f16_to_f32(h); }
    default: return 0;
    }
}

int st_read_f64(const StFile *f, const char *name, int ndim, const int64_t *shape,
                   double *dst, char *err, size_t errlen) {
    const StTensor *t = st_lookup(f, name, ndim, shape, 1, err, errlen);
    if (!t) return -1;
    if (t->dtype == ST_F64) { if (t->numel) memcpy(dst, t->data, (size_t)t->numel * 8); }
    else for (int64_t i = 0; i < t->numel; i++) dst[i] = st_get_f64(t, i);
    return 0;
}

int st_read_f32(const StFile *f, const char *name, int ndim, const int64_t *shape,
                   float *dst, char *err, size_t errlen) {
    const StTensor *t = st_lookup(f, name, ndim, shape, 1, err, errlen);
    if (!t) return -1;
    if (t->dtype == ST_F32) { if (t->numel) memcpy(dst, t->data, (size_t)t->numel * 4); }
    else for (int64_t i = 0; i < t->numel; i++) dst[i] = (float)st_get_f64(t, i);
    return 0;
}

int st_read_i32(const StFile *f, const char *name, int ndim, const int64_t *shape,
                   int32_t *dst, char *err, size_t errlen) {
    const StTensor *t = st_lookup(f, name, ndim, shape, 0, err, errlen);
    if (!t) return -1;
    size_t esz = st_dtype_size(t->dtype);
    for (int64_t i = 0; i < t->numel; i++) {
        const uint8_t *p = (const uint8_t *)t->data + (size_t)i * esz;
        int64_t v = 0;
        int big = 0;   /* a U64 beyond INT64_MAX */
        switch (t->dtype) {
        case ST_I64: memcpy(&v, p, 8); break;
        case ST_I32: { int32_t x; memcpy(&x, p, 4); v = x; break; }
        case ST_I16: { int16_t x; memcpy(&x, p, 2); v = x; break; }
        case ST_I8: { int8_t x; memcpy(&x, p, 1); v = x; break; }
        case ST_U64: { uint64_t x; memcpy(&x, p, 8); big = x > INT64_MAX; v = (int64_t)(x & INT64_MAX); break; }
        case ST_U32: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
        case ST_U16: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
        case ST_U8: case ST_BOOL: v = *p; break;
        default: break;
        }
        if (big || v < INT32_MIN || v > INT32_MAX) {
            if (big) {
                uint64_t x;
                memcpy(&x, p, 8);
                return fail_at(err, errlen, f->path, "tensor '%s': element %" PRId64 " is %"
                               PRIu64 ", which does not fit in int32", name, i, x);
            }
            return fail_at(err, errlen, f->path, "tensor '%s': element %" PRId64 " is %" PRId64
                           ", which does not fit in int32", name, i, v);
        }
        dst[i] = (int32_t)v;
    }
    return 0;
}

/* ---- writer ---- */

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    void *data;      /* nbytes, owned */
    size_t nbytes;
} WTensor;

struct StWriter {
    WTensor *t;
    int n, cap;
    char **mkey, **mval;
    int nmeta, mcap;
    int failed;
    char err[300];   /* the first add error, reported by save */
};

StWriter *st_writer_new(void) { return xcalloc(1, sizeof(StWriter)); }

void st_writer_free(StWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) { free(w->t[i].name); free(w->t[i].data); }
    for (int i = 0; i < w->nmeta; i++) { free(w->mkey[i]); free(w->mval[i]); }
    free(w->t);
    free(w->mkey);
    free(w->mval);
    free(w);
}

/* Remembers the first error; later adds are ignored. */
static void w_fail(StWriter *w, const char *fmt, ...) {
    if (w->failed) return;
    w->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
}

/* Validates and appends a tensor with an uninitialised data buffer; NULL on error. */
static WTensor *w_new_tensor(StWriter *w, const char *name, StDtype dtype,
                                int ndim, const int64_t *shape) {
    if (!w || w->failed) return NULL;
    if (!name) { w_fail(w, "tensor with a NULL name"); return NULL; }
    if (!st_dtype_ok(dtype)) { w_fail(w, "tensor '%s': bad dtype %d", name, (int)dtype); return NULL; }
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape)) {
        w_fail(w, "tensor '%s': bad ndim %d (0..%d)", name, ndim, ST_MAX_DIMS);
        return NULL;
    }
    if (strcmp(name, "__metadata__") == 0) { w_fail(w, "tensor name '__metadata__' is reserved"); return NULL; }
    int64_t numel = st_numel(ndim, shape);
    size_t esz = st_dtype_size(dtype);
    if (numel < 0 || (uint64_t)numel > SIZE_MAX / esz) {
        w_fail(w, "tensor '%s': negative or too large dims", name);
        return NULL;
    }
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0) {
            w_fail(w, "duplicate tensor name '%s'", name);
            return NULL;
        }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        w->t = xrealloc(w->t, (size_t)cap * sizeof *w->t);
        w->cap = cap;
    }
    WTensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->nbytes = (size_t)numel * esz;
    /* a copy of the tensor: as large as the model's parameters, so a failure is an error
     * of the save, not the end of the process */
    char why[128];
    if (!(t->data = try_calloc(t->nbytes, 1, "a copy of the tensor", why, sizeof why))) {
        w_fail(w, "tensor '%s': %s", name, why);
        return NULL;
    }
    t->name = xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    w->n++;
    return t;
}

void st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim,
                      const int64_t *shape, const void *data) {
    WTensor *t = w_new_tensor(w, name, dtype, ndim, shape);
    if (!t) return;
    if (t->nbytes && !data) { w_fail(w, "tensor '%s': NULL data", name); return; }
    if (t->nbytes) memcpy(t->data, data, t->nbytes);
}

/* Stores n values, v(i) for i < n, as dtype (a float dtype) into dst. */
#define ST_CONVERT(dtype, dst, n, V, TO_F32, TO_BF16, TO_F16) do { \
    uint8_t *o_ = (uint8_t *)(dst); \
    for (size_t i = 0; i < (n); i++) switch (dtype) { \
    case ST_F64: { double x_ = (double)(V); memcpy(o_ + 8 * i, &x_, 8); break; } \
    case ST_F32: { float x_ = TO_F32(V); memcpy(o_ + 4 * i, &x_, 4); break; } \
    case ST_BF16: { uint16_t x_ = TO_BF16(V); memcpy(o_ + 2 * i, &x_, 2); break; } \
    case ST_F16: { uint16_t x_ = TO_F16(V); memcpy(o_ + 2 * i, &x_, 2); break; } \
    default: break; \
    } } while (0)

static float st_f64_to_f32(double x) { return (float)x; }
static float st_f32_id(float x) { return x; }

/* The tensor that add_f64 / add_f32 (named by fn) fill, and its element count in *n; NULL
 * after recording the error (a non-float dtype, a bad name or shape, no data). */
static WTensor *w_new_float(StWriter *w, const char *fn, const char *name, StDtype dtype, int ndim,
                            const int64_t *shape, const void *src, size_t *n) {
    if (w && !w->failed && !st_dtype_is_float(dtype)) {
        w_fail(w, "tensor '%s': %s needs a float dtype, not %s", name ? name : "(null)", fn, st_dtype_name(dtype));
        return NULL;
    }
    WTensor *t = w_new_tensor(w, name, dtype, ndim, shape);
    if (!t) return NULL;
    *n = t->nbytes / st_dtype_size(dtype);
    if (*n && !src) {
        w_fail(w, "tensor '%s': NULL data", name);
        return NULL;
    }
    return t;
}

void st_writer_add_f64(StWriter *w, const char *name, StDtype dtype, int ndim,
                          const int64_t *shape, const double *src) {
    size_t n;
    WTensor *t = w_new_float(w, "add_f64", name, dtype, ndim, shape, src, &n);
    if (t) ST_CONVERT(dtype, t->data, n, src[i], st_f64_to_f32, st_f64_to_bf16, st_f64_to_f16);
}

void st_writer_add_f32(StWriter *w, const char *name, StDtype dtype, int ndim,
                          const int64_t *shape, const float *src) {
    size_t n;
    WTensor *t = w_new_float(w, "add_f32", name, dtype, ndim, shape, src, &n);
    if (t) ST_CONVERT(dtype, t->data, n, src[i], st_f32_id, bf16_from_f32, st_f32_to_f16);
}

void st_writer_meta(StWriter *w, const char *key, const char *value) {
    if (!w || w->failed) return;
    if (!key || !value) { w_fail(w, "__metadata__ with a NULL key or value"); return; }
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->mkey[i], key) == 0) { w_fail(w, "duplicate __metadata__ key '%s'", key); return; }
    if (w->nmeta == w->mcap) {
        int cap = w->mcap ? 2 * w->mcap : 8;
        w->mkey = xrealloc(w->mkey, (size_t)cap * sizeof *w->mkey);
        w->mval = xrealloc(w->mval, (size_t)cap * sizeof *w->mval);
        w->mcap = cap;
    }
    w->mkey[w->nmeta] = xstrdup(key);
    w->mval[w->nmeta] = xstrdup(value);
    w->nmeta++;
}

/* A growable byte buffer for the header. */
typedef struct { char *s; size_t len, cap; } HeaderBuf;

static void buf_put(HeaderBuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->s = xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void buf_puts(HeaderBuf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(HeaderBuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) buf_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped; other bytes as is. */
static void buf_json_str(HeaderBuf *b, const char *s) {
    buf_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { char e[2] = {'\\', (char)c}; buf_put(b, e, 2); }
        else if (c < 0x20) buf_printf(b, "\\u%04x", c);
        else buf_put(b, (const char *)&c, 1);
    }
    buf_puts(b, "\"");
}

/* The padded header JSON for w. */
static void st_build_header(const StWriter *w, HeaderBuf *b) {
    buf_puts(b, "{");
    int first = 1;
    if (w->nmeta) {
        buf_puts(b, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            if (i) buf_puts(b, ",");
            buf_json_str(b, w->mkey[i]);
            buf_puts(b, ":");
            buf_json_str(b, w->mval[i]);
        }
        buf_puts(b, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const WTensor *t = &w->t[i];
        if (!first) buf_puts(b, ",");
        first = 0;
        buf_json_str(b, t->name);
        buf_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) buf_printf(b, "%s%" PRId64, d ? "," : "", t->shape[d]);
        buf_printf(b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    buf_puts(b, "}");
    while (b->len % 8) buf_puts(b, " ");
}

int st_writer_save(StWriter *w, const char *path, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!w) return fail_at(err, errlen, path, "cannot save: no writer");
    if (w->failed) return fail_at(err, errlen, path, "cannot save: %s", w->err);

    HeaderBuf hb = {0};
    st_build_header(w, &hb);

    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)hb.len >> (8 * k));
    Piece *pieces = xmalloc(sizeof(Piece) * (size_t)(w->n + 2));
    pieces[0] = (Piece){len8, 8};
    pieces[1] = (Piece){hb.s, hb.len};
    for (int i = 0; i < w->n; i++) pieces[2 + i] = (Piece){w->t[i].data, w->t[i].nbytes};
    int rc = write_atomic(path, pieces, w->n + 2, err, errlen);
    free(pieces);
    free(hb.s);
    return rc;
}
