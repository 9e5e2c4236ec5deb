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
 * weight. Values that are i32 tensors (the tokens, and what op_int computes from them:
 * arithmetic, // and %, comparisons, where, shift, cumsum) are marked `integer` with the
 * range [lo, hi] of their elements: the float ops never pick them, the logits never project
 * them, and a gather by one (op_int_gather) takes it % the table's rows unless its range is
 * already within them (ref stops at an index out of range). float() and integer conditions
 * bring them into the float values (op_int_float).
 *
 * What keeps finite differences meaningful: every float value is a continuous function of
 * the parameters, so max and min see exact ties only between copies of one element (a row
 * gathered twice, a broadcast), where the evenly shared gradient is right; where on floats
 * is written only in continuous forms (a maximum, a minimum, a leaky relu). Some parameters
 * are frozen (opt none); the projections into the logits never are, so every model has
 * gradients to check. */
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
    bool integer;     /* an i32 tensor (the tokens, integer ops); every other value is float */
    int64_t lo, hi;   /* an integer value's range: every element within [lo, hi] */
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
    bool trained_only; /* new parameters are trainable (the logits' projections) */
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
    const char *opt = chance(g, 0.2) ? "a(lr_mul = 0.5)" : "a";
    if (!g->trained_only && chance(g, 0.08)) opt = "none";   /* frozen: no gradient */
    buf_printf(&g->top, "param %s : %s[%s] init %s opt %s\n", path, dtypes[pick(g, 6)], dims, init, opt);
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

/* q [T, H, D] and k, v [T, Hkv, D] (Hkv dividing H: grouped-query) projected from one
 * [T, K] value (a stacked weight at times, which the sibling-product pass merges), q and k
 * normed and rotated at times, then attention with one of its masks: documents and a
 * window, plain causal, documents only, a window only */
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
    int64_t H = 1 + pick(g, 4), D = chance(g, 0.5) ? 4 : 8, shape[3] = {g->T, H, D};
    int64_t Hkv = chance(g, 0.5) ? H : H % 2 == 0 && chance(g, 0.5) ? H / 2 : 1;
    int64_t stack[3] = {3, H * D, x.dim[1]}, kv_rows[2] = {Hkv * D, x.dim[1]};
    int w = Hkv == H && chance(g, 0.5) ? new_param(g, 3, stack) : -1, qkv[3];
    for (int i = 0; i < 3; i++) {
        char wi[48];
        int64_t heads = i ? Hkv : H, hshape[3] = {g->T, heads, D};
        if (w >= 0) snprintf(wi, sizeof wi, "%s[%d]", use(g, w), i);
        else snprintf(wi, sizeof wi, "%s", use(g, new_param(g, 2, i ? kv_rows : stack + 1)));
        bool norm = i < 2 && chance(g, 0.6);
        qkv[i] = emit(g, 3, hshape, norm ? 3 : x.mag, norm ? "rotary(rms_norm(reshape(linear(%s, %s), [T, %lld, %lld])))"
                                                            : "reshape(linear(%s, %s), [T, %lld, %lld])",
                      src, wi, (long long)heads, (long long)D);
        if (qkv[i] < 0) return false;
    }
    int64_t blocks[4] = {1, 2, 4, 8}, block = blocks[pick(g, 4)];
    while (g->T % block) block /= 2;
    char window[16];
    if (chance(g, 0.4)) snprintf(window, sizeof window, "win");
    else snprintf(window, sizeof window, "%d", 1 + pick(g, (int)(g->T / block)));
    char docs[40] = "", windowed[64] = "";
    int mask = pick(g, 4);   /* 0: documents and a window, 1: causal, 2: documents, 3: a window */
    if (mask == 0 || mask == 2) snprintf(docs, sizeof docs, "tokens = tokens, eot = eot, ");
    if (mask == 0 || mask == 3) snprintf(windowed, sizeof windowed, "block = %lld, window = %s, ", (long long)block, window);
    const char *q = use(g, qkv[0]), *k = use(g, qkv[1]), *v = use(g, qkv[2]);
    return emit(g, 3, shape, g->v[qkv[2]].mag, "attention(%s, %s, %s, %s%sscale = %.3g)", q, k, v, docs, windowed,
                1 / sqrt((double)D)) >= 0;
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

/* ---- reductions, normalisations, constant tensors ------------------------------------------ */

/* an axis as written: counted from the start, or at times from the end */
static int axis_text(Gen *g, int nd, int axis) { return chance(g, 0.3) ? axis - nd : axis; }

/* sum/mean/max/min(x, axis): every axis, one axis or a list of two; keepdim at times. The
 * values' elements are continuous functions of the parameters, so max and min see ties only
 * between copies of one element (a gathered row twice), where the shared gradient is right. */
static bool op_reduce(Gen *g) {
    static const char *fns[] = {"sum", "mean", "max", "min"};
    int f = pick(g, 4), a = pick_val(g, f == 0 ? fits_moderate : fits_any);
    if (a < 0 || g->v[a].nd == 0) return false;
    const Val *x = &g->v[a];
    bool axes[MAX_ND] = {0}, keep = chance(g, 0.3);
    char spec[64] = "";
    int r = pick(g, 3), i = pick(g, x->nd);
    if (r == 0) {                          /* every axis */
        for (int d = 0; d < x->nd; d++) axes[d] = true;
    } else if (r == 1 || x->nd < 2) {      /* one axis */
        axes[i] = true;
        snprintf(spec, sizeof spec, ", %s%d", chance(g, 0.3) ? "axis = " : "", axis_text(g, x->nd, i));
    } else {                               /* two axes, in order */
        int j = (i + 1 + pick(g, x->nd - 1)) % x->nd, lo = i < j ? i : j, hi = i < j ? j : i;
        axes[lo] = axes[hi] = true;
        snprintf(spec, sizeof spec, ", [%d, %d]", lo, axis_text(g, x->nd, hi));
    }
    int64_t dim[MAX_ND], count = 1;
    int nd = 0;
    for (int d = 0; d < x->nd; d++)
        if (!axes[d]) dim[nd++] = x->dim[d];
        else count *= x->dim[d], keep ? (void)(dim[nd++] = 1) : (void)0;
    double mag = f == 0 ? x->mag * (double)count : x->mag;
    return emit(g, nd, dim, mag, "%s(%s%s%s)", fns[f], use(g, a), spec, keep ? ", keepdim = true" : "") >= 0;
}

/* softmax or log_softmax along the last axis (left unsaid at times) or another */
static bool op_softmax(Gen *g) {
    int a = pick_val(g, fits_moderate);
    if (a < 0 || g->v[a].nd == 0) return false;
    const Val *x = &g->v[a];
    int axis = chance(g, 0.5) ? x->nd - 1 : pick(g, x->nd);
    bool log_form = chance(g, 0.5);
    char spec[32] = "";
    if (axis != x->nd - 1 || chance(g, 0.3))
        snprintf(spec, sizeof spec, ", %s%d", chance(g, 0.5) ? "axis = " : "", axis_text(g, x->nd, axis));
    double mag = log_form ? 2 * x->mag + log((double)x->dim[axis]) + 1 : 1;
    return emit(g, x->nd, x->dim, mag, "%s(%s%s)", log_form ? "log_softmax" : "softmax", use(g, a), spec) >= 0;
}

/* layer_norm(x), layer_norm(x, w) or layer_norm(x, w, b), w and b parameters of [n] */
static bool op_layer_norm(Gen *g) {
    int a = pick_val(g, fits_any);
    if (a < 0 || g->v[a].nd == 0 || g->v[a].dim[g->v[a].nd - 1] < 2) return false;
    int64_t n = g->v[a].dim[g->v[a].nd - 1];
    int nwb = pick(g, 3);
    char args[96] = "";
    size_t k = 0;
    for (int i = 0; i < nwb; i++) k += (size_t)snprintf(args + k, sizeof args - k, ", %s", use(g, new_param(g, 1, &n)));
    if (chance(g, 0.3)) snprintf(args + k, sizeof args - k, ", eps = 1e-4");
    return emit(g, g->v[a].nd, g->v[a].dim, sqrt((double)n) * (nwb ? 2 : 1) + (nwb == 2 ? 2 : 0), "layer_norm(%s%s)",
                use(g, a), args) >= 0;
}

/* a constant tensor combined with a value: iota, full, ones, zeros of a shape that
 * broadcasts into it, or a product with eye(K) or eye(K, M) */
static bool op_const(Gen *g) {
    int a = pick_val(g, fits_moderate);
    if (a < 0 || g->v[a].nd == 0) return false;
    Val x = g->v[a];
    int drop = pick(g, x.nd), nd = x.nd - drop;
    int64_t dim[MAX_ND] = {0};
    for (int i = 0; i < nd; i++) dim[i] = chance(g, 0.3) ? 1 : x.dim[drop + i];
    char shape[96], dims[80];
    dims_text(g, nd, dim, dims, sizeof dims);
    snprintf(shape, sizeof shape, nd == 1 && chance(g, 0.5) ? "%s" : "[%s]", dims);
    const char *sa = use(g, a);
    int64_t K = x.dim[x.nd - 1], M = 2 + pick(g, 15);
    switch (pick(g, 4)) {
    case 0: {
        int axis = pick(g, nd);
        char ax[24] = "";
        if (axis || chance(g, 0.5)) snprintf(ax, sizeof ax, ", axis = %d", axis_text(g, nd, axis));
        return emit(g, x.nd, x.dim, x.mag + 1, "%s + iota(%s%s) / %lld", sa, shape, ax, (long long)dim[axis]) >= 0;
    }
    case 1: return emit(g, x.nd, x.dim, x.mag * 1.5, "%s * full(%s, %s)", sa, shape, chance(g, 0.5) ? "0.5" : "-1.5") >= 0;
    case 2: return emit(g, x.nd, x.dim, x.mag + 1, "%s + ones(%s) - zeros(%s)", sa, shape, shape) >= 0;
    default:
        if (x.nd < 2 || chance(g, 0.3)) return emit(g, x.nd, x.dim, x.mag, "linear(%s, eye(%lld))", sa, (long long)K) >= 0;
        x.dim[x.nd - 1] = M;
        return emit(g, x.nd, x.dim, x.mag * 1.5, "linear(%s, eye(%lld)) @ (eye(%lld, %lld) + full([%lld, %lld], 0.05))", sa,
                    (long long)K, (long long)K, (long long)M, (long long)K, (long long)M) >= 0;
    }
}

/* ---- integer values: computed from the tokens, used as indices, masks and floats ------------ */

enum { INT_BOUND = 1 << 20 };   /* far from i32's overflow through any one op */

/* a random integer value, preferring one no line has read yet */
static int pick_int(Gen *g) {
    int idx[MAX_VALS], n = 0, fresh[MAX_VALS], nf = 0;
    for (int i = 0; i < g->n; i++)
        if (g->v[i].integer) {
            idx[n++] = i;
            if (!g->v[i].used) fresh[nf++] = i;
        }
    if (nf && chance(g, 0.7)) return fresh[pick(g, nf)];
    return n ? idx[pick(g, n)] : -1;
}

/* appends an integer line "vN = expr" of shape [T] with elements in [lo, hi] */
static bool emit_int(Gen *g, int64_t lo, int64_t hi, const char *expr) {
    if (lo < -INT_BOUND || hi > INT_BOUND) return false;
    int64_t seq[1] = {g->T};
    int r = emit(g, 1, seq, (double)(hi > -lo ? hi : -lo), "%s", expr);
    if (r < 0) return false;
    g->v[r].integer = true;
    g->v[r].lo = lo, g->v[r].hi = hi;
    return true;
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }
static int64_t min4(int64_t a, int64_t b, int64_t c, int64_t d) { int64_t m = a < b ? a : b, n = c < d ? c : d; return m < n ? m : n; }
static int64_t max4(int64_t a, int64_t b, int64_t c, int64_t d) { int64_t m = a > b ? a : b, n = c > d ? c : d; return m > n ? m : n; }

/* one integer op on integer values: + - * by numbers and values, // and %, comparisons
 * (0 or 1), where, shift, cumsum, a sum of comparisons; the range of the result tracked */
static bool op_int(Gen *g) {
    int a = pick_int(g);
    if (a < 0) return false;
    Val x = g->v[a];
    const char *sa = use(g, a);
    char e[256];
    static const int muls[] = {3, 7, 31, -13}, divs[] = {2, 3, 5, -3};
    static const char *cmps[] = {"==", "!=", "<", "<=", ">", ">="};
    int64_t c = x.lo + pick(g, (int)(x.hi - x.lo + 1 > 1000 ? 1000 : x.hi - x.lo + 1));   /* a number within the range */
    switch (pick(g, 9)) {
    case 0: {
        int m = muls[pick(g, 4)], d = pick(g, 81) - 40;
        snprintf(e, sizeof e, "%s * %d %c %d", sa, m, d < 0 ? '-' : '+', abs(d));
        return emit_int(g, (m > 0 ? x.lo : x.hi) * m + d, (m > 0 ? x.hi : x.lo) * m + d, e);
    }
    case 1: {
        int b = pick_int(g);
        const Val *y = &g->v[b];
        int op = pick(g, 3);
        snprintf(e, sizeof e, "%s %c %s", sa, "+-*"[op], use(g, b));
        if (op == 0) return emit_int(g, x.lo + y->lo, x.hi + y->hi, e);
        if (op == 1) return emit_int(g, x.lo - y->hi, x.hi - y->lo, e);
        return emit_int(g, min4(x.lo * y->lo, x.lo * y->hi, x.hi * y->lo, x.hi * y->hi),
                        max4(x.lo * y->lo, x.lo * y->hi, x.hi * y->lo, x.hi * y->hi), e);
    }
    case 2: {
        int d = divs[pick(g, 4)];
        int64_t p = floor_div(x.lo, d), q = floor_div(x.hi, d);
        snprintf(e, sizeof e, "%s // %d", sa, d);
        return emit_int(g, p < q ? p : q, p < q ? q : p, e);
    }
    case 3: {
        int d = chance(g, 0.3) ? -3 : 2 + pick(g, 9);
        snprintf(e, sizeof e, "%s %% %d", sa, d);
        return emit_int(g, d > 0 ? 0 : d + 1, d > 0 ? d - 1 : 0, e);
    }
    case 4:
        if (chance(g, 0.5)) break;   /* the position counter below */
        snprintf(e, sizeof e, "%s %s %lld", sa, cmps[pick(g, 6)], (long long)c);
        return emit_int(g, 0, 1, e);
    case 5: {
        int b = pick_int(g);
        const Val *y = &g->v[b];
        snprintf(e, sizeof e, "where(%s %s %lld, %s, %s)", sa, cmps[pick(g, 6)], (long long)c, sa, use(g, b));
        return emit_int(g, x.lo < y->lo ? x.lo : y->lo, x.hi > y->hi ? x.hi : y->hi, e);
    }
    case 6: {
        int n = 1 + pick(g, 3), f = pick(g, 7) - 3;
        if (chance(g, 0.3)) n = -n;
        if (chance(g, 0.3)) f = 0, snprintf(e, sizeof e, "shift(%s, %d)", sa, n);
        else snprintf(e, sizeof e, "shift(%s, %d, fill = %d)", sa, n, f);
        return emit_int(g, x.lo < f ? x.lo : f, x.hi > f ? x.hi : f, e);
    }
    case 7:
        if (x.lo < -4 || x.hi > 4) return false;   /* running sums of small values */
        snprintf(e, sizeof e, chance(g, 0.5) ? "cumsum(%s)" : "cumsum(%s, axis = 0)", sa);
        return emit_int(g, x.lo < 0 ? x.lo * g->T : x.lo, x.hi > 0 ? x.hi * g->T : x.hi, e);
    default: break;
    }
    /* how many of the last n values equal this one: a position counter */
    int n = 2 + pick(g, 4);
    snprintf(e, sizeof e, "sum(shift(%s, k, fill = -1) == %s for k in range(1, %d))", sa, sa, n);
    return emit_int(g, 0, n - 1, e);
}

/* a gather with computed indices: table[idx], idx an integer value brought into [0, rows)
 * by % where its range needs it (ref stops at an index out of range), or a hash written
 * in place as (a * 31 + shift(a, 1)) % rows */
static bool op_int_gather(Gen *g) {
    int a = pick_int(g);
    if (a < 0) return false;
    const Val x = g->v[a];
    int64_t R = chance(g, 0.5) ? g->V : 5 + pick(g, 36);
    char rows[24], idx[160];
    dim_text(g, R, rows, sizeof rows);
    const char *sa = use(g, a);
    if (x.lo >= 0 && x.hi < 1000 && chance(g, 0.3))
        snprintf(idx, sizeof idx, "(%s * 31 + shift(%s, 1)) %% %s", sa, sa, rows);
    else if (x.lo >= 0 && x.hi < R) snprintf(idx, sizeof idx, "%s", sa);
    else snprintf(idx, sizeof idx, "%s %% %s", sa, rows);
    int t = -1;
    if (R == g->V && chance(g, 0.3)) t = pick_val(g, fits_tokens_rows);
    if (t < 0) {
        int64_t dim[3] = {R, 2 + pick(g, 15), 2 + pick(g, 3)};
        t = new_param(g, chance(g, 0.8) ? 2 : 3, dim);
    }
    Val y = g->v[t];
    y.dim[0] = g->T;
    return emit(g, y.nd, y.dim, y.mag, "%s[%s]", use(g, t), idx) >= 0;
}

static bool fits_seq_matrix(const Gen *g, const Val *x) { return x->nd == 2 && x->dim[0] == g->T && x->mag <= 20; }

/* integer values into float ones: float(i) scaled, a float comparison of it, or an
 * integer condition choosing rows of a [T, n] value */
static bool op_int_float(Gen *g) {
    int a = pick_int(g);
    if (a < 0) return false;
    const Val x = g->v[a];
    int64_t seq[1] = {g->T}, scale = x.hi > -x.lo ? x.hi : -x.lo;
    int r = pick(g, 4), m = r >= 2 ? pick_val(g, fits_seq_matrix) : -1;
    const char *sa = use(g, a);
    if (m >= 0) {
        const Val *y = &g->v[m];
        const char *sm = use(g, m);
        return emit(g, y->nd, y->dim, y->mag, "where(reshape(%s, [T, 1]), %s, %s * 0.5)", sa, sm, sm) >= 0;
    }
    if (r == 1) return emit(g, 1, seq, 1, "float(%s) > %g", sa, (double)(x.lo + x.hi) / 2 + 0.5) >= 0;
    return emit(g, 1, seq, 1, "float(%s) / %lld", sa, (long long)(scale > 0 ? scale : 1)) >= 0;
}

/* where on floats: a maximum or minimum of two values, or a leaky relu (continuous, so
 * finite differences hold) */
static bool op_where(Gen *g) {
    int a = pick_val(g, fits_any);
    if (a < 0) return false;
    int r = pick(g, 3), b = r < 2 ? broadcast_partner(g, a, 50) : a;
    if (b < 0) return false;
    const char *sa = use(g, a), *sb = use(g, b);
    double mag = fmax(g->v[a].mag, g->v[b].mag);
    if (r == 2) return emit(g, g->v[a].nd, g->v[a].dim, mag, "where(%s > 0, %s, %s * 0.1)", sa, sa, sa) >= 0;
    return emit(g, g->v[a].nd, g->v[a].dim, mag, "where(%s %s %s, %s, %s)", sa, r ? "<" : ">=", sb, sa, sb) >= 0;
}

/* shift(x, n, fill =, axis =) along any axis of a float value. A fill other than 0 only
 * along the last axis: along another it makes whole rows of one number, which a norm turns
 * into rounding noise over sqrt(eps) (x − mean(x) is 0 only in exact arithmetic; an FMA
 * keeps it apart from 0), and float32 cannot be compared with float64 there. */
static bool op_shift(Gen *g) {
    int a = pick_val(g, fits_any);
    if (a < 0 || g->v[a].nd == 0) return false;
    const Val *x = &g->v[a];
    int axis = pick(g, x->nd);
    int64_t L = x->dim[axis];
    if (L < 2) return false;
    int64_t n = 1 + pick(g, (int)(L - 1));
    if (chance(g, 0.4)) n = -n;
    char opts[64] = "";
    size_t k = 0;
    if (axis == x->nd - 1 && chance(g, 0.5))
        k += (size_t)snprintf(opts, sizeof opts, ", fill = %s", chance(g, 0.5) ? "0.5" : "-1.0");
    else if (chance(g, 0.2))
        k += (size_t)snprintf(opts, sizeof opts, ", fill = 0");
    if (axis || chance(g, 0.3)) snprintf(opts + k, sizeof opts - k, ", axis = %d", axis_text(g, x->nd, axis));
    return emit(g, x->nd, x->dim, fmax(x->mag, 1), "shift(%s, %lld%s)", use(g, a), (long long)n, opts) >= 0;
}

/* cumsum(x, axis) of a float value */
static bool op_cumsum(Gen *g) {
    int a = pick_val(g, fits_small);
    if (a < 0 || g->v[a].nd == 0) return false;
    const Val *x = &g->v[a];
    int axis = pick(g, x->nd);
    char spec[32] = "";
    if (axis || chance(g, 0.5)) snprintf(spec, sizeof spec, ", %s%d", chance(g, 0.5) ? "axis = " : "", axis_text(g, x->nd, axis));
    return emit(g, x->nd, x->dim, x->mag * (double)x->dim[axis], "cumsum(%s%s)", use(g, a), spec) >= 0;
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
    {"rotary", 1, op_rotary},     {"attention", 3, op_attention}, {"loop", 1, op_loop},
    {"fn", 1, op_fn},             {"reduce", 3, op_reduce},     {"softmax", 2, op_softmax},
    {"layer_norm", 2, op_layer_norm}, {"const", 3, op_const},   {"int", 4, op_int},
    {"int_gather", 2, op_int_gather}, {"int_float", 2, op_int_float}, {"where", 2, op_where},
    {"shift", 2, op_shift},       {"cumsum", 2, op_cumsum},
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
    g->trained_only = true;   /* every model has trainable parameters */
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
    g->v[tok].hi = g->V - 1;
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
