/* fuzz_gen.c — the generator of random well-typed models (fuzz_gen.h).
 *
 * A model is built line by line. Every tensor the body computes is a Val: its name, its
 * shape, a rough bound of its elements (mag) and whether a later line reads it. An op
 * generator (op_table, at the end) picks operands whose shapes fit its rule, or declares
 * a new parameter of a fitting shape, appends "vN = …" and records vN's shape. Ops that
 * make values grow (square, exp, products) take only operands with a small mag, so the
 * values stay within float's comfortable range and the f32 comparison stays meaningful.
 *
 * Adding an op: a function `static bool op_x(Gen *g)` that picks its operands (pick_val
 * with a Fits predicate for its shape rule, broadcast_partner, new_param), appends its line
 * with emit (the result's shape and mag) and returns true; then a row in op_table with its
 * weight. Values that are i32 tensors (the tokens, so far) are marked `integer`: the float
 * ops never pick them, and the logits never project them. */
#include "tests/fuzz_gen.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_VALS = 512, MAX_ND = 4 };

typedef struct {
    char *s;
    size_t len, cap;
} Buf;

typedef struct {
    char name[32];
    int nd;
    int64_t dim[MAX_ND];
    bool integer;     /* an i32 tensor (tokens); every other value is a float tensor */
    double mag;       /* rough bound of |element| */
    bool used;        /* read by a later line */
} Val;

typedef struct {
    uint64_t rng;
    int T, V, dim, eot;
    Buf top, body;    /* declarations; the model's body */
    Val v[MAX_VALS];
    int n, nparams, nlines;
    bool has_fn;
} Gen;

uint64_t fuzz_next(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

double fuzz_unit(uint64_t *s) { return (double)(fuzz_next(s) >> 11) * 0x1.0p-53; }

static int pick(Gen *g, int n) { return (int)(fuzz_next(&g->rng) % (uint64_t)n); }
static bool chance(Gen *g, double p) { return fuzz_unit(&g->rng) < p; }

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) abort();
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static int64_t numel(const Val *x) {
    int64_t n = 1;
    for (int i = 0; i < x->nd; i++) n *= x->dim[i];
    return n;
}

/* one dimension as the model writes it: a config name where one has the value, often */
static void dim_text(Gen *g, int64_t d, char *out, size_t len) {
    if (d == g->T && chance(g, 0.7)) snprintf(out, len, "T");
    else if (d == g->dim && chance(g, 0.6)) snprintf(out, len, "dim");
    else if (d == g->V && chance(g, 0.6)) snprintf(out, len, "vocab");
    else snprintf(out, len, "%lld", (long long)d);
}

/* "a, b, c": the dimensions of a shape, for a type or a reshape's list */
static void dims_text(Gen *g, int nd, const int64_t *dim, char *out, size_t len) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < nd && k < len; i++) {
        char d[24];
        dim_text(g, dim[i], d, sizeof d);
        k += (size_t)snprintf(out + k, len - k, "%s%s", i ? ", " : "", d);
    }
}

static int add_val(Gen *g, const char *name, int nd, const int64_t *dim, double mag) {
    if (g->n == MAX_VALS) return -1;
    Val *x = &g->v[g->n];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->nd = nd;
    if (nd) memcpy(x->dim, dim, sizeof(int64_t) * (size_t)nd);
    x->mag = mag;
    return g->n++;
}

/* the name of value i, which is now read */
static const char *use(Gen *g, int i) {
    g->v[i].used = true;
    return g->v[i].name;
}

/* init clause: the values are the test's own, so this only exercises the syntax */
static void init_text(Gen *g, int nd, const int64_t *dim, char *out, size_t len) {
    size_t k = 0;
    switch (pick(g, 5)) {
    case 0: k = (size_t)snprintf(out, len, "normal(0, 0.5)"); break;
    case 1: k = (size_t)snprintf(out, len, "uniform(-0.3, 0.3)"); break;
    case 2: k = (size_t)snprintf(out, len, "zeros()"); break;
    case 3: k = (size_t)snprintf(out, len, "ones()"); break;
    default:
        if (nd == 0 || dim[nd - 1] > 8) { k = (size_t)snprintf(out, len, "constant(0.25)"); break; }
        k = (size_t)snprintf(out, len, "constant([");
        for (int i = 0; i < dim[nd - 1]; i++) k += (size_t)snprintf(out + k, len - k, "%s%d", i ? ", " : "", i % 3);
        k += (size_t)snprintf(out + k, len - k, "])");
    }
    if (nd >= 1 && dim[0] >= 2 && chance(g, 0.3)) snprintf(out + k, len - k, ", [%d] = ones()", pick(g, (int)dim[0]));
}

/* declares a new parameter of this shape (random dtype, init, name style); its index */
static int new_param(Gen *g, int nd, const int64_t *dim) {
    static const char *dtypes[] = {"f32", "f32", "f32", "f32", "bf16", "f64"};
    char name[32], path[32], dims[96], init[160];
    int k = g->nparams++;
    if (chance(g, 0.25)) {
        snprintf(path, sizeof path, "blk[%d].w", k);
        snprintf(name, sizeof name, "blk[%d].w", k);
    } else {
        snprintf(path, sizeof path, "p%d", k);
        snprintf(name, sizeof name, "p%d", k);
    }
    dims_text(g, nd, dim, dims, sizeof dims);
    init_text(g, nd, dim, init, sizeof init);
    buf_printf(&g->top, "param %s : %s[%s] init %s opt %s\n", path, dtypes[pick(g, 6)], dims, init,
               chance(g, 0.2) ? "a(lr_mul = 0.5)" : "a");
    return add_val(g, name, nd, dim, 1.0);
}

/* appends "vN = expr" with the given shape; its index */
static int emit(Gen *g, int nd, const int64_t *dim, double mag, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int emit(Gen *g, int nd, const int64_t *dim, double mag, const char *fmt, ...) {
    char name[16], expr[1024];
    snprintf(name, sizeof name, "v%d", g->nlines++);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(expr, sizeof expr, fmt, ap);
    va_end(ap);
    buf_printf(&g->body, "    %s = %s\n", name, expr);
    return add_val(g, name, nd, dim, fmin(mag, 1e6));
}

/* ---- choosing operands ---------------------------------------------------------------- */

typedef bool (*Fits)(const Gen *g, const Val *x);

/* a random float value that fits, preferring one no line has read yet; -1 if none (the
 * float ops draw with it; an integer op would test x->integer in a picker of its own) */
static int pick_val(Gen *g, Fits fits) {
    int idx[MAX_VALS], n = 0, fresh[MAX_VALS], nf = 0;
    for (int i = 0; i < g->n; i++)
        if (!g->v[i].integer && fits(g, &g->v[i])) {
            idx[n++] = i;
            if (!g->v[i].used) fresh[nf++] = i;
        }
    if (nf && chance(g, 0.7)) return fresh[pick(g, nf)];
    return n ? idx[pick(g, n)] : -1;
}

static bool fits_any(const Gen *g, const Val *x) { return x->mag <= 50; }
static bool fits_small(const Gen *g, const Val *x) { return x->mag <= 4; }
static bool fits_moderate(const Gen *g, const Val *x) { return x->mag <= 20; }
static bool fits_matrix(const Gen *g, const Val *x) { return x->nd >= 2 && x->mag <= 20; }
static bool fits_tokens_rows(const Gen *g, const Val *x) { return x->nd >= 1 && x->nd <= 3 && x->dim[0] >= g->V && x->mag <= 20; }
static bool fits_rotary(const Gen *g, const Val *x) {
    return x->nd >= 2 && x->dim[0] == g->T && x->dim[x->nd - 1] % 4 == 0 && x->mag <= 50;
}
static bool fits_seq(const Gen *g, const Val *x) { return x->nd >= 1 && x->dim[0] == g->T && x->mag <= 20; }

/* shape b broadcasts into shape a with the result a (trailing axes aligned) */
static bool broadcasts_into(const Val *b, const Val *a) {
    if (b->nd > a->nd) return false;
    for (int i = 0; i < b->nd; i++) {
        int64_t sb = b->dim[b->nd - 1 - i], sa = a->dim[a->nd - 1 - i];
        if (sb != sa && sb != 1) return false;
    }
    return true;
}

/* an operand for `a op b` with the result a's shape: an existing value or a new parameter
 * with some leading axes dropped and some axes of size 1 */
static int broadcast_partner(Gen *g, int a, double max_mag) {
    if (chance(g, 0.5)) {
        int idx[MAX_VALS], n = 0;
        for (int i = 0; i < g->n; i++)
            if (i != a && !g->v[i].integer && g->v[i].mag <= max_mag && broadcasts_into(&g->v[i], &g->v[a])) idx[n++] = i;
        if (n) return idx[pick(g, n)];
    }
    const Val *x = &g->v[a];
    int drop = x->nd ? pick(g, x->nd + 1) : 0, nd = x->nd - drop;
    int64_t dim[MAX_ND];
    for (int i = 0; i < nd; i++) dim[i] = chance(g, 0.3) ? 1 : x->dim[drop + i];
    return new_param(g, nd, dim);
}

/* a scalar operand: a number, a schedule, a scalar parameter or one element of a value */
static void scalar_text(Gen *g, char *out, size_t len, double *mag) {
    static const char *nums[] = {"0.5", "2", "1.5", "0.25", "3"};
    int r = pick(g, 5);
    *mag = 3;
    if (r == 0) snprintf(out, len, "%s", nums[pick(g, 5)]);
    else if (r == 1) snprintf(out, len, "%s", chance(g, 0.5) ? "gain" : "decay");
    else if (r == 2) snprintf(out, len, "%s", use(g, new_param(g, 0, NULL)));
    else {
        int i = pick_val(g, fits_small);
        if (i < 0 || g->v[i].nd == 0) { snprintf(out, len, "gain"); return; }
        const Val *x = &g->v[i];
        size_t k = (size_t)snprintf(out, len, "%s[", x->name);
        for (int d = 0; d < x->nd; d++) k += (size_t)snprintf(out + k, len - k, "%s%d", d ? ", " : "", pick(g, (int)x->dim[d]));
        snprintf(out + k, len - k, "]");
        use(g, i);
        *mag = x->mag;
    }
}

/* ---- op generators: each appends one or more lines, false when nothing fits ------------- */

static const struct {
    const char *f;   /* format of the call */
    int growth;      /* 0: bounded by 1, 1: keeps the size, 2: squares it */
} unary_fns[] = {{"relu(%s)", 1}, {"square(%s)", 2}, {"sigmoid(%s)", 0}, {"tanh(%s)", 0}, {"softplus(%s)", 1},
                 {"erf(%s)", 0}, {"silu(%s)", 1}, {"gelu(%s)", 1}, {"gelu_tanh(%s)", 1}, {"-%s", 1}, {"%s ** 2", 2}};
enum { N_UNARY = sizeof unary_fns / sizeof unary_fns[0] };

static double grow(int growth, double m) { return growth == 0 ? 1 : growth == 1 ? m + 1 : m * m; }

static bool op_unary(Gen *g) {
    int f = pick(g, N_UNARY), a = pick_val(g, unary_fns[f].growth == 2 ? fits_small : fits_any);
    if (a < 0) return false;
    char expr[64];
    snprintf(expr, sizeof expr, unary_fns[f].f, use(g, a));
    return emit(g, g->v[a].nd, g->v[a].dim, grow(unary_fns[f].growth, g->v[a].mag), "%s", expr) >= 0;
}

/* sqrt, log and exp on arguments kept in their domain and range */
static bool op_math(Gen *g) {
    static const char *forms[] = {"sqrt(square(%s) + 0.5)", "log(softplus(%s) + 0.5)", "exp(tanh(%s))",
                                  "exp(-square(%s))", "sqrt(sigmoid(%s) + 0.1)"};
    int f = pick(g, 5), a = pick_val(g, f == 0 ? fits_moderate : fits_any);
    if (a < 0) return false;
    char expr[96];
    snprintf(expr, sizeof expr, forms[f], use(g, a));
    return emit(g, g->v[a].nd, g->v[a].dim, f == 0 ? g->v[a].mag + 1 : 3, "%s", expr) >= 0;
}

static bool op_binary(Gen *g) {
    int op = pick(g, 3), a = pick_val(g, op == 2 ? fits_small : fits_any);
    if (a < 0) return false;
    int b = broadcast_partner(g, a, op == 2 ? 4 : 50);
    if (b < 0) return false;
    double mag = op == 2 ? g->v[a].mag * g->v[b].mag : g->v[a].mag + g->v[b].mag;
    const char *sa = use(g, a), *sb = use(g, b);
    bool swap = chance(g, 0.3);
    return emit(g, g->v[a].nd, g->v[a].dim, mag, "%s %c %s", swap ? sb : sa, "+-*"[op], swap ? sa : sb) >= 0;
}

/* a / (something at least 0.5) */
static bool op_div(Gen *g) {
    int a = pick_val(g, fits_moderate);
    if (a < 0) return false;
    if (chance(g, 0.3)) return emit(g, g->v[a].nd, g->v[a].dim, g->v[a].mag, "%s / 3", use(g, a)) >= 0;
    int b = broadcast_partner(g, a, 50);
    if (b < 0) return false;
    const char *sa = use(g, a), *sb = use(g, b);
    return emit(g, g->v[a].nd, g->v[a].dim, 2 * g->v[a].mag,
                chance(g, 0.5) ? "%s / (sigmoid(%s) + 0.5)" : "%s / (square(%s) + 1)", sa, sb) >= 0;
}

static bool op_scalar(Gen *g) {
    int a = pick_val(g, fits_moderate);
    if (a < 0) return false;
    char s[64];
    double ms;
    scalar_text(g, s, sizeof s, &ms);
    const char *sa = use(g, a);
    switch (pick(g, 3)) {
    case 0: return emit(g, g->v[a].nd, g->v[a].dim, g->v[a].mag * ms, "%s * %s", s, sa) >= 0;
    case 1: return emit(g, g->v[a].nd, g->v[a].dim, g->v[a].mag + ms, "%s + %s", sa, s) >= 0;
    default: return emit(g, g->v[a].nd, g->v[a].dim, g->v[a].mag + ms, "%s - %s", s, sa) >= 0;
    }
}

/* one long expression of elementwise steps: what fusion makes one kernel */
static bool op_chain(Gen *g) {
    static const char *steps[] = {"tanh(%s)", "sigmoid(%s)", "erf(%s)", "silu(%s)", "gelu(%s)", "gelu_tanh(%s)",
                                  "softplus(%s)", "relu(%s)", "(%s) * 0.5", "(%s) + 0.25", "1.5 - (%s)", "-(%s)",
                                  "(%s) * gain", "(%s) / 3", "softcap(%s, 2)", "%s * %s"};
    int a = pick_val(g, fits_small);
    if (a < 0) return false;
    char expr[1024], next[1100];
    snprintf(expr, sizeof expr, "%s", use(g, a));
    double mag = g->v[a].mag;
    for (int k = 3 + pick(g, 6); k > 0; k--) {
        int s = pick(g, 16);
        if (s == 15) {   /* another input of the same kernel */
            int b = broadcast_partner(g, a, 4);
            snprintf(next, sizeof next, "(%s) * %s", expr, use(g, b));
            mag *= g->v[b].mag;
        } else {
            snprintf(next, sizeof next, steps[s], expr);
            mag = s < 3 || s == 14 ? 2 : mag + 2;
        }
        if (strlen(next) >= sizeof expr) break;
        memcpy(expr, next, strlen(next) + 1);
        if (mag > 20) break;
    }
    return emit(g, g->v[a].nd, g->v[a].dim, mag, "%s", expr) >= 0;
}

static bool op_rms_norm(Gen *g) {
    int a = pick_val(g, fits_any);
    if (a < 0 || g->v[a].nd == 0) return false;
    const char *sa = use(g, a);
    double mag = sqrt((double)g->v[a].dim[g->v[a].nd - 1]);
    if (chance(g, 0.3)) return emit(g, g->v[a].nd, g->v[a].dim, mag, "rms_norm(%s, eps = 1e-5)", sa) >= 0;
    return emit(g, g->v[a].nd, g->v[a].dim, mag, "rms_norm(%s)", sa) >= 0;
}

static bool op_softcap(Gen *g) {
    static const int caps[] = {1, 3, 15};
    int a = pick_val(g, fits_any), c = caps[pick(g, 3)];
    if (a < 0) return false;
    return emit(g, g->v[a].nd, g->v[a].dim, fmin(g->v[a].mag, c), "softcap(%s, %d)", use(g, a), c) >= 0;
}

/* linear(x [..., K], w [N, K]) → [..., N]; w a parameter or a slice of a stacked one */
static bool op_linear(Gen *g) {
    int a = pick_val(g, fits_moderate);
    if (a < 0 || g->v[a].nd == 0 || g->v[a].nd > 3) return false;
    Val x = g->v[a];
    int64_t N = 2 + pick(g, 15), K = x.dim[x.nd - 1];
    char w[48];
    if (chance(g, 0.3)) {
        int64_t stack[3] = {2 + pick(g, 2), N, K};
        int s = new_param(g, 3, stack);
        snprintf(w, sizeof w, "%s[%d]", use(g, s), pick(g, (int)stack[0]));
    } else {
        int64_t wd[2] = {N, K};
        snprintf(w, sizeof w, "%s", use(g, new_param(g, 2, wd)));
    }
    x.dim[x.nd - 1] = N;
    return emit(g, x.nd, x.dim, x.mag + 1, "linear(%s, %s)", use(g, a), w) >= 0;
}

/* x [..., M, K] @ w [K, N]; or x [M, K] @ transpose(y [M', K]); or batched x @ transpose(y) */
static bool op_matmul(Gen *g) {
    int a = pick_val(g, fits_matrix);
    if (a < 0) return false;
    Val x = g->v[a];
    int64_t K = x.dim[x.nd - 1];
    for (int i = 0; i < g->n && chance(g, 0.5); i++) {
        const Val *y = &g->v[(i + a + 1) % g->n];
        bool two_d = x.nd == 2 && y->nd == 2 && y->dim[1] == K;
        bool batched = x.nd == 3 && y->nd == 3 && y->dim[0] == x.dim[0] && y->dim[2] == K;
        if (!(two_d || batched) || y->integer || y->mag > 4 || x.mag > 4) continue;
        x.dim[x.nd - 1] = y->dim[y->nd - 2];
        int b = (int)(y - g->v);
        const char *sa = use(g, a), *sb = use(g, b);
        return emit(g, x.nd, x.dim, x.mag * g->v[b].mag * sqrt((double)K), chance(g, 0.5) ? "%s @ transpose(%s)" : "matmul(%s, transpose(%s))", sa, sb) >= 0;
    }
    int64_t wd[2] = {K, 2 + pick(g, 15)};
    int w = new_param(g, 2, wd);
    x.dim[x.nd - 1] = wd[1];
    const char *sa = use(g, a), *sw = use(g, w);
    return emit(g, x.nd, x.dim, x.mag * 2, chance(g, 0.5) ? "%s @ %s" : "matmul(%s, %s)", sa, sw) >= 0;
}

static bool op_transpose(Gen *g) {
    int a = pick_val(g, fits_matrix);
    if (a < 0) return false;
    Val x = g->v[a];
    int64_t t = x.dim[x.nd - 1];
    x.dim[x.nd - 1] = x.dim[x.nd - 2];
    x.dim[x.nd - 2] = t;
    return emit(g, x.nd, x.dim, x.mag, "transpose(%s)", use(g, a)) >= 0;
}

/* another shape of the same elements: axes merged or split, written with -1 at times */
static bool op_reshape(Gen *g) {
    int a = pick_val(g, fits_any);
    if (a < 0 || g->v[a].nd == 0) return false;
    Val x = g->v[a];
    int64_t last = x.dim[x.nd - 1], f = 0;
    for (int d = 2; d < last; d++)
        if (last % d == 0 && (!f || chance(g, 0.5))) f = d;
    int r = pick(g, 4);
    if (r == 0 && x.nd >= 2) {           /* merge the last two */
        x.dim[x.nd - 2] *= x.dim[x.nd - 1];
        x.nd--;
    } else if (r == 1 && f && x.nd < MAX_ND) {   /* split the last */
        x.dim[x.nd - 1] = f;
        x.dim[x.nd++] = last / f;
    } else if (r == 2 && x.nd >= 2) {    /* merge the first two */
        x.dim[0] *= x.dim[1];
        memmove(&x.dim[1], &x.dim[2], sizeof(int64_t) * (size_t)(x.nd - 2));
        x.nd--;
    } else {                             /* flatten */
        x.dim[0] = numel(&x);
        x.nd = 1;
    }
    char dims[96];
    dims_text(g, x.nd, x.dim, dims, sizeof dims);
    if (chance(g, 0.3)) {                /* one dimension left to infer */
        int k = pick(g, x.nd);
        size_t p = 0;
        for (int i = 0; i < x.nd; i++) {
            char d[24];
            if (i == k) snprintf(d, sizeof d, "-1");
            else dim_text(g, x.dim[i], d, sizeof d);
            p += (size_t)snprintf(dims + p, sizeof dims - p, "%s%s", i ? ", " : "", d);
        }
    }
    return emit(g, x.nd, x.dim, x.mag, "reshape(%s, [%s])", use(g, a), dims) >= 0;
}

/* x[i], x[a:b], x[:, a:b], x[:, i], x[-k:] … */
static bool op_slice(Gen *g) {
    int a = pick_val(g, fits_any);
    if (a < 0 || g->v[a].nd == 0) return false;
    Val x = g->v[a];
    int axis = x.nd >= 2 && chance(g, 0.5) ? 1 : 0;
    int64_t size = x.dim[axis];
    char idx[48];
    if (x.nd >= 2 && chance(g, 0.3)) {   /* an index drops the axis */
        int64_t i = pick(g, (int)size);
        if (chance(g, 0.3)) snprintf(idx, sizeof idx, "%lld", (long long)(i - size));
        else snprintf(idx, sizeof idx, "%lld", (long long)i);
        memmove(&x.dim[axis], &x.dim[axis + 1], sizeof(int64_t) * (size_t)(x.nd - axis - 1));
        x.nd--;
    } else {
        if (size < 2) return false;
        int64_t lo = pick(g, (int)size - 1), hi = lo + 1 + pick(g, (int)(size - lo));
        if (hi == size && chance(g, 0.5)) snprintf(idx, sizeof idx, "%lld:", (long long)(lo - size));
        else if (lo == 0 && chance(g, 0.5)) snprintf(idx, sizeof idx, ":%lld", (long long)hi);
        else snprintf(idx, sizeof idx, "%lld:%lld", (long long)lo, (long long)hi);
        x.dim[axis] = hi - lo;
    }
    return emit(g, x.nd, x.dim, x.mag, axis ? "%s[:, %s]" : "%s[%s]", use(g, a), idx) >= 0;
}

/* table[tokens]: rows of a parameter or of a computed value with at least V rows */
static bool op_gather(Gen *g) {
    int t = chance(g, 0.4) ? pick_val(g, fits_tokens_rows) : -1;
    if (t < 0) {
        int64_t dim[3] = {g->V, 2 + pick(g, 15), 2 + pick(g, 3)};
        t = new_param(g, chance(g, 0.7) ? 2 : 3, dim);
    }
    Val x = g->v[t];
    x.dim[0] = g->T;
    return emit(g, x.nd, x.dim, x.mag, "%s[tokens]", use(g, t)) >= 0;
}

/* sum([a, b, …]) with broadcasting, or sum(w[k] * a for k < n) over a stacked parameter */
static bool op_sum(Gen *g) {
    int a = pick_val(g, fits_moderate);
    if (a < 0) return false;
    const Val *x = &g->v[a];
    if (chance(g, 0.5)) {
        int n = 2 + pick(g, 3);
        int64_t dim[MAX_ND] = {n};
        int nd = 1;
        if (x->nd && chance(g, 0.5)) dim[nd++] = x->dim[x->nd - 1];
        int w = new_param(g, nd, dim);
        const char *sw = use(g, w);
        return emit(g, x->nd, x->dim, x->mag * n, "sum(%s[k] * %s for k < %d)", sw, use(g, a), n) >= 0;
    }
    char list[256];
    double mag = x->mag;
    size_t k = (size_t)snprintf(list, sizeof list, "%s", use(g, a));
    for (int n = 1 + pick(g, 3); n > 0; n--) {
        int b = broadcast_partner(g, a, 20);
        if (b < 0) return false;
        k += (size_t)snprintf(list + k, sizeof list - k, ", %s", use(g, b));
        mag += g->v[b].mag;
    }
    return emit(g, x->nd, x->dim, mag, "sum([%s])", list) >= 0;
}

static bool op_rotary(Gen *g) {
    int a = pick_val(g, fits_rotary);
    if (a < 0) return false;
    const char *sa = use(g, a);
    if (chance(g, 0.4)) return emit(g, g->v[a].nd, g->v[a].dim, g->v[a].mag, "rotary(%s, base = 10000)", sa) >= 0;
    return emit(g, g->v[a].nd, g->v[a].dim, g->v[a].mag, "rotary(%s)", sa) >= 0;
}

/* q, k, v [T, H, D] projected from one [T, K] value (a stacked weight at times, which the
 * sibling-product pass merges), q and k normed and rotated at times, then attention */
static bool op_attention(Gen *g) {
    int a = pick_val(g, fits_seq);
    if (a < 0) return false;
    Val x = g->v[a];
    const char *src = use(g, a);
    char flat[64];
    if (x.nd != 2) {
        snprintf(flat, sizeof flat, "reshape(%s, [T, -1])", src);
        x.dim[1] = numel(&x) / g->T;
        x.nd = 2;
        src = flat;
    }
    int64_t H = 1 + pick(g, 3), D = chance(g, 0.5) ? 4 : 8, shape[3] = {g->T, H, D};
    int64_t stack[3] = {3, H * D, x.dim[1]};
    int w = chance(g, 0.5) ? new_param(g, 3, stack) : -1, qkv[3];
    for (int i = 0; i < 3; i++) {
        char wi[48];
        if (w >= 0) snprintf(wi, sizeof wi, "%s[%d]", use(g, w), i);
        else snprintf(wi, sizeof wi, "%s", use(g, new_param(g, 2, stack + 1)));
        bool norm = i < 2 && chance(g, 0.6);
        qkv[i] = emit(g, 3, shape, norm ? 3 : x.mag, norm ? "rotary(rms_norm(reshape(linear(%s, %s), [T, %lld, %lld])))"
                                                          : "reshape(linear(%s, %s), [T, %lld, %lld])",
                      src, wi, (long long)H, (long long)D);
        if (qkv[i] < 0) return false;
    }
    int64_t blocks[4] = {1, 2, 4, 8}, block = blocks[pick(g, 4)];
    while (g->T % block) block /= 2;
    char window[16];
    if (chance(g, 0.4)) snprintf(window, sizeof window, "win");
    else snprintf(window, sizeof window, "%d", 1 + pick(g, (int)(g->T / block)));
    const char *q = use(g, qkv[0]), *k = use(g, qkv[1]), *v = use(g, qkv[2]);
    return emit(g, 3, shape, g->v[qkv[2]].mag,
                "attention(%s, %s, %s, tokens = tokens, eot = eot, block = %lld, window = %s, scale = %.3g)", q, k, v,
                (long long)block, window, 1 / sqrt((double)D)) >= 0;
}

/* a compile-time loop updating one value: x = x + tanh(x) / (i + 2), n times */
static bool op_loop(Gen *g) {
    int a = pick_val(g, fits_small);
    if (a < 0) return false;
    int n = 1 + pick(g, 3), r = emit(g, g->v[a].nd, g->v[a].dim, g->v[a].mag + n, "%s", use(g, a));
    if (r < 0) return false;
    const char *x = g->v[r].name;
    buf_printf(&g->body, "    for i < %d {\n        %s = %s + tanh(%s) / (i + 2)\n    }\n", n, x, x, x);
    return true;
}

/* a user function of two values of one shape, defined once per model */
static bool op_fn(Gen *g) {
    int a = pick_val(g, fits_small);
    if (a < 0) return false;
    int b = broadcast_partner(g, a, 4);
    if (b < 0) return false;
    if (!g->has_fn) {
        buf_printf(&g->top, "fn mix(x, y) {\n    h = x * sigmoid(y)\n    return h + y / 2\n}\n");
        g->has_fn = true;
    }
    const char *sa = use(g, a), *sb = use(g, b);
    return emit(g, g->v[a].nd, g->v[a].dim, g->v[a].mag + 1, "mix(%s, %s)", sa, sb) >= 0;
}

typedef struct {
    const char *name;
    int weight;
    bool (*gen)(Gen *g);
} OpGen;

/* the ops the generator draws from; each row: its weight and its generator */
static const OpGen op_table[] = {
    {"unary", 4, op_unary},       {"math", 2, op_math},         {"binary", 4, op_binary},
    {"div", 2, op_div},           {"scalar", 2, op_scalar},     {"chain", 3, op_chain},
    {"rms_norm", 2, op_rms_norm}, {"softcap", 1, op_softcap},   {"linear", 3, op_linear},
    {"matmul", 2, op_matmul},     {"transpose", 1, op_transpose}, {"reshape", 3, op_reshape},
    {"slice", 2, op_slice},       {"gather", 1, op_gather},     {"sum", 2, op_sum},
    {"rotary", 1, op_rotary},     {"attention", 1, op_attention}, {"loop", 1, op_loop},
    {"fn", 1, op_fn},
};
enum { N_OPS = sizeof op_table / sizeof op_table[0] };

static const OpGen *pick_op(Gen *g) {
    int total = 0;
    for (int i = 0; i < N_OPS; i++) total += op_table[i].weight;
    int r = pick(g, total);
    for (int i = 0;; i++)
        if ((r -= op_table[i].weight) < 0) return &op_table[i];
}

/* ---- the model ------------------------------------------------------------------------- */

/* logits [T, V]: every value nothing read (parameters included) projected to [T, V] or
 * [1, V] and summed, so each reaches the loss */
static void finish(Gen *g) {
    char terms[16384];
    size_t k = 0;
    int nterms = 0, last_seq = -1;
    bool have_seq = false;   /* a [T, V] term */
    for (int i = 0, n = g->n; i < n && k < sizeof terms - 200; i++) {
        Val x = g->v[i];
        if (x.integer) continue;
        bool seq = x.nd >= 1 && x.dim[0] == g->T;
        if (seq) last_seq = i;
        if (x.used) continue;
        char in[64];
        snprintf(in, sizeof in, x.mag > 20 ? "softcap(%s, 5)" : "%s", use(g, i));
        int64_t wd[2] = {g->V, seq ? numel(&x) / g->T : numel(&x)};
        int w = new_param(g, 2, wd);
        k += (size_t)snprintf(terms + k, sizeof terms - k, "%slinear(reshape(%s, [%s, -1]), %s)", nterms++ ? ", " : "",
                              in, seq ? "T" : "1", use(g, w));
        have_seq |= seq;
    }
    if (!have_seq) {   /* the value of T rows computed last */
        int64_t wd[2] = {g->V, numel(&g->v[last_seq]) / g->T};
        int w = new_param(g, 2, wd);
        k += (size_t)snprintf(terms + k, sizeof terms - k, "%slinear(reshape(%s, [T, -1]), %s)", nterms++ ? ", " : "",
                              use(g, last_seq), use(g, w));
    }
    buf_printf(&g->body, "    logits = sum([%s])\n", terms);
    if (chance(g, 0.5)) buf_printf(&g->body, "    logits = softcap(logits, 15)\n");
    buf_printf(&g->body, "    return cross_entropy(logits, targets)\n");
}

char *fuzz_model(uint64_t seed, FuzzSizes *sizes) {
    static const int Ts[] = {8, 12, 16, 24, 32};
    Gen *g = calloc(1, sizeof *g);
    g->rng = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    for (int i = 0; i < 4; i++) fuzz_next(&g->rng);
    g->T = Ts[pick(g, 5)];
    g->V = 8 + pick(g, 33);
    g->dim = 4 + pick(g, 13);
    g->eot = pick(g, g->V);
    buf_printf(&g->top, "# model %llu of the differential fuzzer (tests/fuzz_gen.c)\n", (unsigned long long)seed);
    buf_printf(&g->top, "config {\n    vocab = %d\n    eot = %d\n    dim = %d\n    seq_len = %d\n}\n", g->V, g->eot,
               g->dim, g->T);
    buf_printf(&g->top, "schedule decay = max(0.1, 1 - step / 100)\nschedule gain = 0.75 + step / 1000\n");
    buf_printf(&g->top, "schedule win = if step < 10 then %d else 1\n", 1 + pick(g, 3));
    buf_printf(&g->top, "optim a = adam(lr = 0.01 * decay, beta1 = 0.8)\n");
    buf_printf(&g->top, "input tokens : i32[T]\ninput targets : i32[T]\n");
    int64_t seq[1] = {g->T};
    int tok = add_val(g, "tokens", 1, seq, 0);
    g->v[tok].integer = g->v[tok].used = true;   /* for integer ops; never projected into the logits */
    int64_t emb[2] = {g->V, g->dim};
    int e = new_param(g, 2, emb);
    int64_t x0[2] = {g->T, g->dim};
    emit(g, 2, x0, 1, chance(g, 0.5) ? "rms_norm(%s[tokens])" : "%s[tokens]", use(g, e));
    for (int ops = 6 + pick(g, 12); ops > 0 && g->n < MAX_VALS / 2;)   /* room for finish's heads */
        if (pick_op(g)->gen(g)) ops--;
    finish(g);
    Buf out = {0};
    buf_printf(&out, "%smodel {\n%s}\n", g->top.s, g->body.s);
    free(g->top.s);
    free(g->body.s);
    *sizes = (FuzzSizes){g->T, g->V, g->eot};
    free(g);
    return out.s;
}
