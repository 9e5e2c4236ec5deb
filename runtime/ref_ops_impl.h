/* ref_ops_impl.h — precision-generic numeric kernels of the ref interpreter. Included only
 * by ref.c, twice: with REAL = double, SFX(x) = x##_f64, GEMM = cblas_dgemm and with
 * REAL = float, SFX(x) = x##_f32, GEMM = rt_sgemm (sgemm.h) called as cblas_sgemm is.
 * Inputs are validated by ref.c (indices, targets, sizes) before these run, so nothing
 * here can fail.
 * Every tensor is dense, row-major; n counts elements. Outputs are overwritten.
 * Not a public header; no include guard on purpose. */

#if !defined(REAL) || !defined(SFX) || !defined(GEMM)
#error "ref_ops_impl.h is included by ref.c with REAL, SFX and GEMM defined"
#endif

/* ---- conversions ------------------------------------------------------------------------ */

static void SFX(k_fill)(REAL *y, int64_t n, double v)
{
    for (int64_t i = 0; i < n; i++) y[i] = (REAL)v;
}

static void SFX(k_from_f64)(const double *x, REAL *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = (REAL)x[i];
}

static void SFX(k_from_i32)(const int32_t *x, REAL *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = (REAL)x[i];
}

static void SFX(k_to_f64)(const REAL *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = (double)x[i];
}

/* y = x truncated toward zero; returns the index of the first element that is NaN or
 * outside the int32 range (y then incomplete), or -1 when all converted. */
static int64_t SFX(k_to_i32)(const REAL *x, int32_t *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double v = trunc((double)x[i]);
        if (!(v >= INT32_MIN && v <= INT32_MAX)) return i;
        y[i] = (int32_t)v;
    }
    return -1;
}

/* ---- leaves ----------------------------------------------------------------------------- */

/* ROPE_COS / ROPE_SIN: y [T, D/2]; n = D/4 frequencies ω_j = base^(-j/(n-1)) (ω_0 = 1 when
 * n = 1), ω_j = 0 for j >= n; y[t, j] = cos or sin of t·ω_j, in double, rounded once. */
void SFX(rt_ref_rope)(int is_sin, int64_t T, int64_t D, double base, REAL *y)
{
    const int64_t half = D / 2, nf = D / 4;
    for (int64_t j = 0; j < half; j++) {
        double w = j >= nf ? 0.0 : nf == 1 ? 1.0 : pow(base, -(double)j / (double)(nf - 1));
        for (int64_t t = 0; t < T; t++) {
            double th = (double)t * w;
            y[t * half + j] = (REAL)(is_sin ? sin(th) : cos(th));
        }
    }
}

/* IOTA: y[i] = i's index along axis of shape, exact (an index below 2^24 in float) */
void SFX(rt_ref_iota)(int ndim, const int64_t *shape, int axis, REAL *y)
{
    int64_t n, inner = rt_ref_iota_inner(ndim, shape, axis, &n);
    for (int64_t i = 0; i < n; i++) y[i] = (REAL)(i / inner % shape[axis]);
}

/* ---- elementwise ------------------------------------------------------------------------ */

/* y[i] = op(x[i]) for the UNARY ops (CAST between floats is a copy) */
static void SFX(k_unary)(IrOp op, const REAL *x, REAL *y, int64_t n)
{
#pragma omp parallel for if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const double v = (double)x[i];
        double o;
        switch (op) {
        case IR_NEG: o = -v; break;
        case IR_RELU: o = v < 0 ? 0.0 : v; break;          /* NaN passes through */
        case IR_SQUARE: o = v * v; break;
        case IR_SQRT: o = sqrt(v); break;
        case IR_RSQRT: o = 1.0 / sqrt(v); break;
        case IR_EXP: o = exp(v); break;
        case IR_LOG: o = log(v); break;
        case IR_STEP: o = v > 0 ? 1.0 : 0.0; break;
        case IR_SIGMOID: o = 1.0 / (1.0 + exp(-v)); break;
        case IR_TANH: o = tanh(v); break;
        case IR_SOFTPLUS: o = fmax(v, 0.0) + log1p(exp(-fabs(v))); break;
        case IR_ERF: o = erf(v); break;
        default: o = v; break;                              /* IR_CAST */
        }
        y[i] = (REAL)o;
    }
}

/* y[i] = a[i] op b[i] for the BINARY ops */
static void SFX(k_binary)(IrOp op, const REAL *a, const REAL *b, REAL *y, int64_t n)
{
#pragma omp parallel for if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const double u = (double)a[i], v = (double)b[i];
        double o;
        switch (op) {
        case IR_ADD: o = u + v; break;
        case IR_SUB: o = u - v; break;
        case IR_MUL: o = u * v; break;
        case IR_DIV: o = u / v; break;
        case IR_NE: o = u != v ? 1.0 : 0.0; break;
        case IR_LT: o = u < v ? 1.0 : 0.0; break;
        case IR_LE: o = u <= v ? 1.0 : 0.0; break;
        default: o = u == v ? 1.0 : 0.0; break;             /* IR_EQ */
        }
        y[i] = (REAL)o;
    }
}

/* x viewed as [outer, len, inner] → y [outer, 1, inner]: SUM (double accumulator) or MAX
 * (a NaN anywhere gives NaN; len = 0 gives 0 for SUM, -inf for MAX) */
static void SFX(k_reduce)(IrOp op, const REAL *x, REAL *y, int64_t outer, int64_t len, int64_t inner)
{
    const int64_t m = outer * inner;
#pragma omp parallel for if (m * len > PAR_MIN)
    for (int64_t oi = 0; oi < m; oi++) {
        const REAL *p = x + (oi / inner) * len * inner + oi % inner;
        double acc = op == IR_SUM ? 0.0 : -INFINITY;
        for (int64_t k = 0; k < len; k++) {
            const double v = (double)p[k * inner];
            if (op == IR_SUM) acc += v;
            else if (v > acc || isnan(v)) acc = v;
            if (op == IR_MAX && isnan(acc)) break;
        }
        y[oi] = (REAL)acc;
    }
}

/* ---- matmul ----------------------------------------------------------------------------- */

/* c[i] = op(a[i]) op(b[i]) for i < batch: c [M, N]; a [M, K] or, at, [K, M]; b [K, N] or,
 * bt, [N, K]. Small products run one per OpenMP thread; large ones one at a time, leaving
 * the threads to OpenBLAS (its pthread build must not be called from a parallel region
 * with work big enough for it to thread). */
void SFX(rt_ref_matmul)(const REAL *a, const REAL *b, REAL *c, int64_t batch, int M, int N,
                          int K, int at, int bt)
{
    if (M == 0 || N == 0 || batch == 0) return;
    if (K == 0) {
        memset(c, 0, sizeof(REAL) * (size_t)(batch * M * N));
        return;
    }
    const int lda = at ? M : K, ldb = bt ? K : N;
    if (batch > 1 || (double)M * N * K <= GEMM_SMALL) {
#pragma omp parallel for if (batch > 1)
        for (int64_t i = 0; i < batch; i++)
            GEMM(CblasRowMajor, at ? CblasTrans : CblasNoTrans, bt ? CblasTrans : CblasNoTrans,
                 M, N, K, 1, a + i * M * K, lda, b + i * K * N, ldb, 0, c + i * M * N, N);
        return;
    }
    /* one large product: each thread computes a block of rows of c (OpenBLAS itself runs
     * single-threaded, see rt_ref_new); a's rows are columns when it is transposed */
    const int parts = omp_in_parallel() ? 1 : omp_get_max_threads(), rows = (M + parts - 1) / parts;
#pragma omp parallel for
    for (int p = 0; p < parts; p++) {
        const int m0 = p * rows, m = m0 + rows <= M ? rows : M - m0;
        if (m > 0)
            GEMM(CblasRowMajor, at ? CblasTrans : CblasNoTrans, bt ? CblasTrans : CblasNoTrans,
                 m, N, K, 1, a + (at ? m0 : (int64_t)m0 * K), lda, b, ldb, 0, c + (int64_t)m0 * N, N);
    }
}

/* ---- scatter ---------------------------------------------------------------------------- */

/* y [V, row] = 0; y[idx[i], :] += x[i, :] for i < n (indices checked by the caller).
 * Accumulates in double; threads own column chunks, so the sum order is fixed. */
static void SFX(k_scatter_add)(const REAL *x, const int32_t *idx, int64_t n, int64_t V,
                               int64_t row, REAL *y)
{
    double *acc = xcalloc((size_t)(V * row), sizeof(double));
    const int64_t CH = 64, nch = (row + CH - 1) / CH;
#pragma omp parallel for if (n * row > PAR_MIN)
    for (int64_t c = 0; c < nch; c++) {
        const int64_t j0 = c * CH, j1 = j0 + CH < row ? j0 + CH : row;
        for (int64_t i = 0; i < n; i++) {
            double *d = acc + (int64_t)idx[i] * row;
            const REAL *s = x + i * row;
            for (int64_t j = j0; j < j1; j++) d[j] += (double)s[j];
        }
    }
    for (int64_t i = 0; i < V * row; i++) y[i] = (REAL)acc[i];
    free(acc);
}

/* ---- fused ------------------------------------------------------------------------------ */

/* o [T, H, D] = attention (ref_kernels.h); the lse is scratch */
static void SFX(k_attention)(const REAL *q, const REAL *k, const REAL *v, const int32_t *doc,
                             int T, int H, int D, int block, int window, double scale, REAL *o)
{
    REAL *lse = xmalloc(sizeof(REAL) * (size_t)H * (size_t)T);
    SFX(rt_ref_attn_fwd)(q, k, v, doc, T, H, D, block, window, scale, o, lse);
    free(lse);
}

/* out [3, T, H, D] = dq, dk, dv of attention for upstream dout [T, H, D]; recomputes the
 * forward's o and lse */
static void SFX(k_attention_bwd)(const REAL *q, const REAL *k, const REAL *v, const int32_t *doc,
                                 int T, int H, int D, int block, int window, double scale,
                                 const REAL *dout, REAL *out)
{
    const size_t n = (size_t)T * H * D;
    REAL *o = xmalloc(sizeof(REAL) * n), *lse = xmalloc(sizeof(REAL) * (size_t)H * T);
    SFX(rt_ref_attn_fwd)(q, k, v, doc, T, H, D, block, window, scale, o, lse);
    SFX(rt_ref_attn_bwd)(dout, q, k, v, o, lse, doc, T, H, D, block, window, scale,
                         out, out + n, out + 2 * n);
    free(o);
    free(lse);
}

/* max and sum of exp(x - max) of one row of V logits, in double */
static void SFX(k_row_softmax)(const REAL *x, int64_t V, double *m, double *s)
{
    double mx = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < V; j++)
        if ((double)x[j] > mx) mx = (double)x[j];
    for (int64_t j = 0; j < V; j++) sum += exp((double)x[j] - mx);
    *m = mx;
    *s = sum;
}

/* out [T] = logsumexp(a[t]) - a[t, y[t]], a [T, V], targets y checked by the caller */
static void SFX(k_ce)(const REAL *a, const int32_t *y, int64_t T, int64_t V, REAL *out)
{
#pragma omp parallel for if (T * V > PAR_MIN)
    for (int64_t t = 0; t < T; t++) {
        double m, s;
        SFX(k_row_softmax)(a + t * V, V, &m, &s);
        out[t] = (REAL)(m + log(s) - (double)a[t * V + y[t]]);
    }
}

/* out [T, V] = c[t] * (softmax(a[t]) - onehot(y[t])) */
static void SFX(k_ce_bwd)(const REAL *a, const int32_t *y, const REAL *c, int64_t T, int64_t V,
                          REAL *out)
{
#pragma omp parallel for if (T * V > PAR_MIN)
    for (int64_t t = 0; t < T; t++) {
        double m, s;
        const REAL *row = a + t * V;
        SFX(k_row_softmax)(row, V, &m, &s);
        for (int64_t j = 0; j < V; j++) {
            double p = exp((double)row[j] - m) / s - (j == y[t] ? 1.0 : 0.0);
            out[t * V + j] = (REAL)((double)c[t] * p);
        }
    }
}
