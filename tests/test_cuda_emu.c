/* test_cuda_emu.c — the CUDA emulator on kernels of its own: CUDA semantics (barriers,
 * shared memory, warp shuffles, atomics, bf16 rounding, graphs, the library's tensor-core
 * wrappers cg_mma / cg_ldsm / cg_ldsm_t against matrix products) and the checks, each
 * planted bug caught and named (an out-of-bounds write, a missing __syncthreads, a
 * misaligned vector load, a divergent barrier, a read of memory never written, a shuffle
 * with a lane that returned, launches beyond the limits).
 *
 * The emulator's library is loaded as gptc loads it (GPTC_CUDA_EMULATE); the kernels below
 * are compiled once by its NVRTC, then every case runs in a child process of its own,
 * since a fault is sticky, as on a device. */
#include "base/base.h"
#include "codegen/codegen.h"
#include "test.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const source =
    "#include <cuda_bf16.h>\n"
    "extern \"C\" __global__ void __launch_bounds__(256) add(const float *a, const float *b, float *c, int n)\n"
    "{ int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) c[i] = a[i] + b[i]; }\n"
    "extern \"C\" __global__ void __launch_bounds__(256) oob_write(float *c, int n)\n"
    "{ int i = blockIdx.x * blockDim.x + threadIdx.x; if (i <= n) c[i] = 1.0f; }\n"
    "extern \"C\" __global__ void __launch_bounds__(256) rotate(float *out, int sync)\n"
    "{\n"
    "    __shared__ float s[256];\n"
    "    s[threadIdx.x] = (float)threadIdx.x;\n"
    "    if (sync) __syncthreads();\n"
    "    out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];\n"
    "}\n"
    "extern \"C\" __global__ void __launch_bounds__(256) rotate_back(float *out)\n"
    "{\n"
    "    __shared__ float s[256];\n"
    "    s[threadIdx.x] = (float)threadIdx.x;\n"
    "    out[threadIdx.x] = s[(threadIdx.x + blockDim.x - 1) % blockDim.x];   /* no barrier */\n"
    "}\n"
    "extern \"C\" __global__ void __launch_bounds__(256) misaligned(const float *x, float *out)\n"
    "{\n"
    "    const uint4 q = *(const uint4 *)(x + 1);   /* as the generated bf16 loads: all 16 bytes used */\n"
    "    const unsigned *r = (const unsigned *)&q;\n"
    "    unsigned v = 0;\n"
    "    for (int u = 0; u < 4; u++) v ^= r[u];\n"
    "    out[0] = __uint_as_float(v);\n"
    "}\n"
    "extern \"C\" __global__ void __launch_bounds__(256) divergent(float *out)\n"
    "{ if (threadIdx.x >= 128) return; __syncthreads(); out[threadIdx.x] = 1.0f; }\n"
    "extern \"C\" __global__ void __launch_bounds__(256) copy(const float *x, float *out)\n"
    "{ out[threadIdx.x] = x[threadIdx.x]; }\n"
    "extern \"C\" __global__ void __launch_bounds__(256) block_sum(const float *x, float *out)\n"
    "{\n"
    "    __shared__ float part[8];\n"
    "    float v = x[blockIdx.x * blockDim.x + threadIdx.x];\n"
    "    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);\n"
    "    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;\n"
    "    __syncthreads();\n"
    "    if (threadIdx.x == 0) { float s = 0; for (int w = 0; w < 8; w++) s += part[w]; atomicAdd(out, s); }\n"
    "}\n"
    "extern \"C\" __global__ void __launch_bounds__(256) shfl_returned(float *out)\n"
    "{ if (threadIdx.x == 5) return; out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1); }\n"
    "extern \"C\" __global__ void __launch_bounds__(64) bounded(float *out) { out[threadIdx.x] = 0.0f; }\n"
    "extern \"C\" __global__ void __launch_bounds__(256) to_bf16(const float *x, __nv_bfloat16 *y, int n)\n"
    "{ int i = threadIdx.x; if (i < n) y[i] = __float2bfloat16(x[i]); }\n"
    "extern \"C\" __global__ void __launch_bounds__(32) bump(float *out) { atomicAdd(out, 1.0f); }\n";

/* After the library (cg_cuda_library): one warp's products through its tensor-core wrappers.
 * a [16, 16], b [16, 16] (k, n) and c [16, 16] row-major bf16 / float; d = a b + c as two
 * 16x8 tiles. mma_direct builds the fragments from memory by the PTX ISA's layout (so the
 * emulator's mma is held to it); mma_ldsm loads them with ldmatrix from shared memory: a by
 * rows, b both as bᵀ rows (ldmatrix) and as b rows (ldmatrix .trans), d and d2. */
static const char *const tc_source =
    "__device__ unsigned pair(const __nv_bfloat16 *x, int ld, int r, int c)\n"
    "{ return *(const unsigned short *)&x[r * ld + c] | (unsigned)*(const unsigned short *)&x[r * ld + c + 1] << 16; }\n"
    "__device__ unsigned pair_t(const __nv_bfloat16 *x, int ld, int r, int c)   /* (r, c), (r + 1, c) */\n"
    "{ return *(const unsigned short *)&x[r * ld + c] | (unsigned)*(const unsigned short *)&x[(r + 1) * ld + c] << 16; }\n"
    "extern \"C\" __global__ void __launch_bounds__(32) mma_direct(const __nv_bfloat16 *a, const __nv_bfloat16 *b,\n"
    "                                                          const float *c, float *d)\n"
    "{\n"
    "    const int g = threadIdx.x / 4, t = threadIdx.x % 4;\n"
    "    const unsigned af[4] = {pair(a, 16, g, 2 * t), pair(a, 16, g + 8, 2 * t), pair(a, 16, g, 2 * t + 8),\n"
    "                            pair(a, 16, g + 8, 2 * t + 8)};\n"
    "    for (int n = 0; n < 2; n++) {\n"
    "        const unsigned bf[2] = {pair_t(b, 16, 2 * t, 8 * n + g), pair_t(b, 16, 2 * t + 8, 8 * n + g)};\n"
    "        float acc[4] = {c[g * 16 + 8 * n + 2 * t], c[g * 16 + 8 * n + 2 * t + 1], c[(g + 8) * 16 + 8 * n + 2 * t],\n"
    "                        c[(g + 8) * 16 + 8 * n + 2 * t + 1]};\n"
    "        cg_mma(acc, af, bf);\n"
    "        d[g * 16 + 8 * n + 2 * t] = acc[0], d[g * 16 + 8 * n + 2 * t + 1] = acc[1];\n"
    "        d[(g + 8) * 16 + 8 * n + 2 * t] = acc[2], d[(g + 8) * 16 + 8 * n + 2 * t + 1] = acc[3];\n"
    "    }\n"
    "}\n"
    "extern \"C\" __global__ void __launch_bounds__(32) mma_ldsm(const __nv_bfloat16 *a, const __nv_bfloat16 *b,\n"
    "                                                        const float *c, float *d, float *d2)\n"
    "{\n"
    "    __shared__ __align__(16) __nv_bfloat16 as[16][24], bs[16][24], bts[16][24];\n"
    "    const int l = threadIdx.x, g = l / 4, t = l % 4;\n"
    "    for (int e = l; e < 128; e += 32) {   /* a thread writes both halves of a word: no race */\n"
    "        const int r = e / 8, k = e % 8 * 2;\n"
    "        as[r][k] = a[r * 16 + k], as[r][k + 1] = a[r * 16 + k + 1];\n"
    "        bs[r][k] = b[r * 16 + k], bs[r][k + 1] = b[r * 16 + k + 1];\n"
    "        bts[r][k] = b[k * 16 + r], bts[r][k + 1] = b[(k + 1) * 16 + r];\n"
    "    }\n"
    "    __syncthreads();\n"
    "    unsigned af[4], bt[4], bn[4];\n"
    "    cg_ldsm(af, &as[(l & 7) + (l >> 3 & 1) * 8][(l >> 4) * 8]);\n"
    "    cg_ldsm(bt, &bts[(l & 7) + (l >> 4) * 8][(l >> 3 & 1) * 8]);   /* n-tiles 0, 1 of bᵀ rows */\n"
    "    cg_ldsm_t(bn, &bs[(l & 7) + (l >> 3 & 1) * 8][(l >> 4) * 8]);  /* the same from b's rows */\n"
    "    for (int n = 0; n < 2; n++) {\n"
    "        float x[4], y[4];\n"
    "        for (int i = 0; i < 4; i++) x[i] = y[i] = c[(g + (i >> 1) * 8) * 16 + 8 * n + 2 * t + (i & 1)];\n"
    "        cg_mma(x, af, bt + 2 * n);\n"
    "        cg_mma(y, af, bn + 2 * n);\n"
    "        for (int i = 0; i < 4; i++) {\n"
    "            d[(g + (i >> 1) * 8) * 16 + 8 * n + 2 * t + (i & 1)] = x[i];\n"
    "            d2[(g + (i >> 1) * 8) * 16 + 8 * n + 2 * t + (i & 1)] = y[i];\n"
    "        }\n"
    "    }\n"
    "}\n"
    "extern \"C\" __global__ void __launch_bounds__(32) mma_half(float *d)\n"
    "{\n"
    "    const unsigned a[4] = {0u, 0u, 0u, 0u}, b[2] = {0u, 0u};\n"
    "    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};\n"
    "    if (threadIdx.x < 16) cg_mma(acc, a, b);   /* half a warp: undefined on the device */\n"
    "    d[threadIdx.x] = acc[0];\n"
    "}\n";

typedef unsigned long long Ptr;
static struct {
    void *lib;
    int (*create)(void **, const char *, const char *, int, const char *const *, const char *const *);
    int (*compile)(void *, int, const char *const *);
    int (*image_size)(void *, size_t *);
    int (*image)(void *, char *);
    int (*log_size)(void *, size_t *);
    int (*log)(void *, char *);
    int (*init)(unsigned);
    int (*load)(void **, const void *);
    int (*func)(void **, void *, const char *);
    int (*alloc)(Ptr *, size_t);
    int (*h2d)(Ptr, const void *, size_t, void *);
    int (*d2h)(void *, Ptr, size_t);
    int (*launch)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *, void **, void **);
    int (*error)(int, const char **);
    void (*tensors)(const char *, int, const Ptr *, const size_t *, const int *, const char *const *);
    int (*begin)(void *, int);
    int (*end)(void *, void **);
    int (*instantiate)(void **, void *, unsigned long long);
    int (*graph_launch)(void *, void *);
    int (*destroy)(void **);
} cu;
static char *image;
static void *mod;

/* the sanitized build of the emulator next to this binary, if there is one (make builds it) */
static void prefer_sanitized(void)
{
    char exe[4096], path[4200];
    test_exe_dir(exe, sizeof exe);
    snprintf(path, sizeof path, "%s/libgptc-cudaemu-san.so", exe);
    if (!getenv("GPTC_LIBCUDAEMU") && access(path, R_OK) == 0) setenv("GPTC_LIBCUDAEMU", path, 1);
}

static int load_library(void)
{
    setenv("GPTC_CUDA_EMULATE", "1", 1);
    prefer_sanitized();
    const char *path = cuda_emulator();
    cu.lib = path ? dlopen(path, RTLD_NOW | RTLD_GLOBAL) : NULL;
    if (!cu.lib) {
        fprintf(stderr, "cannot load the emulator (%s): %s\n", path ? path : "none", dlerror());
        return -1;
    }
    const char *names[] = {"nvrtcCreateProgram", "nvrtcCompileProgram", "nvrtcGetCUBINSize", "nvrtcGetCUBIN",
                           "nvrtcGetProgramLogSize", "nvrtcGetProgramLog", "cuInit", "cuModuleLoadData",
                           "cuModuleGetFunction", "cuMemAlloc_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoH_v2",
                           "cuLaunchKernel", "cuGetErrorString", "gptcEmuTensors", "cuStreamBeginCapture_v2",
                           "cuStreamEndCapture", "cuGraphInstantiateWithFlags", "cuGraphLaunch",
                           "nvrtcDestroyProgram"};
    void **slots = (void **)&cu.create;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!(slots[i] = dlsym(cu.lib, names[i]))) {
            fprintf(stderr, "the emulator lacks %s\n", names[i]);
            return -1;
        }
    return 0;
}

static int compile_kernels(void)
{
    void *prog;
    const char *home = getenv("CUDA_HOME");
    char inc[4200];
    snprintf(inc, sizeof inc, "--include-path=%s/include", home && *home ? home : "/usr/local/cuda");
    const char *opts[] = {"--gpu-architecture=sm_90", "--std=c++17", "-default-device", "--ptxas-options=-v", inc};
    char *full = NULL;
    if (asprintf(&full, "%s#ifndef INFINITY\n#define INFINITY __int_as_float(0x7f800000)\n#endif\n%s%s", source,
                 cg_cuda_library(), tc_source) < 0)
        return -1;
    int rc = cu.create(&prog, full, "test.cu", 0, NULL, NULL);
    free(full);
    if (rc) return -1;
    rc = cu.compile(prog, 5, opts);
    size_t n = 0;
    cu.log_size(prog, &n);
    char *log = calloc(n + 1, 1);
    cu.log(prog, log);
    if (rc) fprintf(stderr, "the test kernels do not compile:\n%s\n", log);
    free(log);
    if (!rc) {
        cu.image_size(prog, &n);
        image = malloc(n);
        cu.image(prog, image);
    }
    cu.destroy(&prog);
    return rc ? -1 : 0;
}

/* ---- helpers a case uses (in its own process) --------------------------------------------- */

static Ptr dev(size_t n, const float *init)
{
    Ptr p = 0;
    CHECK(cu.alloc(&p, n) == 0);
    if (init) CHECK(cu.h2d(p, init, n, NULL) == 0);
    return p;
}

static int run(const char *kernel, unsigned blocks, unsigned threads, void **params)
{
    void *f = NULL;
    if (cu.func(&f, mod, kernel)) return -1;
    return cu.launch(f, blocks, 1, 1, threads, 1, 1, 0, NULL, params, NULL);
}

/* the emulator's text for rc holds every one of the strings, NULL-terminated */
static void check_error(int rc, int want, ...)
{
    const char *text = "";
    cu.error(rc, &text);
    CHECK(rc == want);
    va_list ap;
    va_start(ap, want);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        if (!strstr(text, s)) {
            fprintf(stderr, "the error lacks \"%s\": %s\n", s, text);
            CHECK(strstr(text, s) != NULL);
        }
    va_end(ap);
}

/* ---- the cases ------------------------------------------------------------------------------ */

static void case_add(void)
{
    float a[300], b[300], c[300];
    for (int i = 0; i < 300; i++) a[i] = (float)i, b[i] = 0.5f * (float)i;
    Ptr da = dev(sizeof a, a), db = dev(sizeof b, b), dc = dev(sizeof c, NULL);
    int n = 300;
    void *p[] = {&da, &db, &dc, &n};
    CHECK(run("add", 2, 256, p) == 0);
    CHECK(cu.d2h(c, dc, sizeof c) == 0);
    for (int i = 0; i < 300; i++) CHECK(c[i] == 1.5f * (float)i);
}

static void case_oob_write(void)
{
    Ptr c = dev(64 * 4 + 256, NULL);   /* room after the tensor: only the tensor's extent can tell */
    int n = 64;
    Ptr base[] = {c};
    size_t bytes[] = {64 * 4};
    int mode[] = {1};
    const char *label[] = {"%7 ADD c (test.gptc:12)"};
    cu.tensors("computes %7 ADD c (test.gptc:12)", 1, base, bytes, mode, label);
    void *p[] = {&c, &n};
    check_error(run("oob_write", 1, 256, p), 700, "kernel oob_write", "test.gptc:12", "block (0,0,0)", "thread (64,0,0)",
                "store of 4 bytes", "0 bytes past the end of %7 ADD c", NULL);
}

static void case_missing_sync(void)
{
    Ptr out = dev(256 * 4, NULL);
    int sync = 0;
    void *p[] = {&out, &sync};
    check_error(run("rotate", 1, 256, p), 719, "kernel rotate", "missing __syncthreads", "thread (0,0,0)", NULL);
}

/* the writer ran first: a race on the word it wrote */
static void case_race(void)
{
    Ptr out = dev(256 * 4, NULL);
    void *p[] = {&out};
    int rc = run("rotate_back", 1, 256, p);
    check_error(rc, 719, "kernel rotate_back", NULL);
    const char *text = "";
    cu.error(rc, &text);
    CHECK(strstr(text, "shared-memory race") || strstr(text, "missing __syncthreads"));
}

static void case_with_sync(void)
{
    Ptr out = dev(256 * 4, NULL);
    int sync = 1;
    void *p[] = {&out, &sync};
    CHECK(run("rotate", 1, 256, p) == 0);
    float h[256];
    CHECK(cu.d2h(h, out, sizeof h) == 0);
    for (int i = 0; i < 256; i++) CHECK(h[i] == (float)((i + 1) % 256));
}

static void case_misaligned(void)
{
    float x[8] = {0};
    Ptr dx = dev(sizeof x, x), out = dev(4, NULL);
    void *p[] = {&dx, &out};
    check_error(run("misaligned", 1, 1, p), 716, "kernel misaligned", "misaligned 16-byte load", NULL);
}

static void case_divergent(void)
{
    Ptr out = dev(256 * 4, NULL);
    void *p[] = {&out};
    check_error(run("divergent", 1, 256, p), 719, "kernel divergent", "__syncthreads", "never reach", NULL);
}

static void case_unwritten(void)
{
    Ptr x = dev(256 * 4, NULL), out = dev(256 * 4, NULL);
    void *p[] = {&x, &out};
    check_error(run("copy", 1, 256, p), 719, "kernel copy", "load of 4 bytes", "nothing wrote before", NULL);
}

static void case_block_sum(void)
{
    enum { N = 4 * 256 };
    float x[N], zero = 0, got = 0;
    for (int i = 0; i < N; i++) x[i] = (float)(i % 7);
    Ptr dx = dev(sizeof x, x), out = dev(4, &zero);
    void *p[] = {&dx, &out};
    CHECK(run("block_sum", 4, 256, p) == 0);
    CHECK(cu.d2h(&got, out, 4) == 0);
    double want = 0;
    for (int i = 0; i < N; i++) want += x[i];
    CHECK(got == (float)want);
}

static void case_shfl_returned(void)
{
    Ptr out = dev(32 * 4, NULL);
    void *p[] = {&out};
    check_error(run("shfl_returned", 1, 32, p), 719, "kernel shfl_returned", "thread (5,0,0)",
                "returns while lanes of its warp wait for it at a shuffle", NULL);
}

static void case_limits(void)
{
    Ptr out = dev(2048 * 4, NULL);
    void *p[] = {&out};
    check_error(run("bounded", 1, 128, p), 701, "__launch_bounds__(64)", NULL);
}

static void case_too_many_threads(void)
{
    Ptr out = dev(2048 * 4, NULL);
    void *p[] = {&out};
    check_error(run("bump", 1, 2048, p), 1, "1 to 1024", NULL);
}

/* bf16 conversion rounds to nearest even, as the device's cvt.rn.bf16.f32 */
static void case_bf16(void)
{
    float x[6] = {1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -2.5f, 3.14159265f, 1e-40f, 65504.0f};
    uint16_t y[6];
    Ptr dx = dev(sizeof x, x), dy = dev(sizeof y, NULL);
    int n = 6;
    void *p[] = {&dx, &dy, &n};
    CHECK(run("to_bf16", 1, 32, p) == 0);
    CHECK(cu.d2h(y, dy, sizeof y) == 0);
    for (int i = 0; i < 6; i++) CHECK(y[i] == bf16_from_f32(x[i]));
    CHECK(y[0] == 0x3f80);   /* the tie 1 + 2^-8 goes to the even 1.0 */
    CHECK(y[1] == 0x3f82);   /* the tie 1 + 3·2^-8 goes to the even 1 + 2^-6 */
}

/* a captured launch runs only when the graph is launched, every time */
static void case_graph(void)
{
    float zero = 0, got = -1;
    Ptr out = dev(4, &zero);
    void *p[] = {&out}, *graph = NULL, *exec = NULL, *f = NULL;
    CHECK(cu.func(&f, mod, "bump") == 0);
    CHECK(cu.begin(NULL, 1) == 0);
    CHECK(cu.launch(f, 2, 1, 1, 32, 1, 1, 0, NULL, p, NULL) == 0);
    CHECK(cu.end(NULL, &graph) == 0);
    CHECK(cu.d2h(&got, out, 4) == 0);
    CHECK(got == 0.0f);
    CHECK(cu.instantiate(&exec, graph, 0) == 0);
    for (int i = 0; i < 3; i++) CHECK(cu.graph_launch(exec, NULL) == 0);
    CHECK(cu.d2h(&got, out, 4) == 0);
    CHECK(got == 192.0f);
}

/* ---- tensor cores ---------------------------------------------------------------------------- */

/* small integers: every product and sum is exact in float, on the device as here */
static void mma_operands(uint16_t a[256], uint16_t b[256], float c[256], double want[256])
{
    for (int i = 0; i < 256; i++) {
        a[i] = bf16_from_f32((float)((i * 7 + i / 16 * 3) % 11 - 5));
        b[i] = bf16_from_f32((float)((i * 5 + i / 16) % 9 - 4) * 0.5f);
        c[i] = (float)(i % 13) - 6.0f;
    }
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 16; n++) {
            double s = c[r * 16 + n];
            for (int k = 0; k < 16; k++) s += (double)bf16_to_f32(a[r * 16 + k]) * bf16_to_f32(b[k * 16 + n]);
            want[r * 16 + n] = s;
        }
}

static void case_mma_direct(void)
{
    uint16_t a[256], b[256];
    float c[256], d[256];
    double want[256];
    mma_operands(a, b, c, want);
    Ptr da = dev(sizeof a, (const float *)a), db = dev(sizeof b, (const float *)b), dc = dev(sizeof c, c),
        dd = dev(sizeof d, NULL);
    void *p[] = {&da, &db, &dc, &dd};
    CHECK(run("mma_direct", 1, 32, p) == 0);
    CHECK(cu.d2h(d, dd, sizeof d) == 0);
    int bad = 0;
    for (int i = 0; i < 256; i++) bad += d[i] != (float)want[i];
    if (bad) fprintf(stderr, "mma_direct: %d of 256 elements differ from the product, e.g. d[0] = %g, want %g\n", bad,
                     d[0], want[0]);
    CHECK(bad == 0);
}

static void case_mma_ldsm(void)
{
    uint16_t a[256], b[256];
    float c[256], d[256], d2[256];
    double want[256];
    mma_operands(a, b, c, want);
    Ptr da = dev(sizeof a, (const float *)a), db = dev(sizeof b, (const float *)b), dc = dev(sizeof c, c),
        dd = dev(sizeof d, NULL), dd2 = dev(sizeof d2, NULL);
    void *p[] = {&da, &db, &dc, &dd, &dd2};
    CHECK(run("mma_ldsm", 1, 32, p) == 0);
    CHECK(cu.d2h(d, dd, sizeof d) == 0 && cu.d2h(d2, dd2, sizeof d2) == 0);
    int bad = 0, bad2 = 0;
    for (int i = 0; i < 256; i++) bad += d[i] != (float)want[i], bad2 += d2[i] != (float)want[i];
    if (bad || bad2) fprintf(stderr, "mma_ldsm: %d (ldmatrix) and %d (ldmatrix .trans) of 256 elements differ\n", bad, bad2);
    CHECK(bad == 0 && bad2 == 0);
}

static void case_mma_half(void)
{
    Ptr out = dev(32 * 4, NULL);
    void *p[] = {&out};
    check_error(run("mma_half", 1, 32, p), 719, "kernel mma_half", "returns while lanes of its warp wait", NULL);
}

/* runs a case in a child process: its checks' result comes back as the exit status */
static void in_child(void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        test_failed_checks = 0;
        if (cu.init(0) || cu.load(&mod, image)) _exit(2);
        fn();
        _exit(test_failed_checks ? 1 : 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#define CASE(name) TEST(name) { in_child(case_##name); }
CASE(add)
CASE(oob_write)
CASE(missing_sync)
CASE(race)
CASE(with_sync)
CASE(misaligned)
CASE(divergent)
CASE(unwritten)
CASE(block_sum)
CASE(shfl_returned)
CASE(limits)
CASE(too_many_threads)
CASE(bf16)
CASE(graph)
CASE(mma_direct)
CASE(mma_ldsm)
CASE(mma_half)

int main(void)
{
    if (load_library() || compile_kernels()) {
        printf("fail: the emulator loads and compiles the test kernels\n");
        return 1;
    }
    RUN(add);
    RUN(oob_write);
    RUN(missing_sync);
    RUN(race);
    RUN(with_sync);
    RUN(misaligned);
    RUN(divergent);
    RUN(unwritten);
    RUN(block_sum);
    RUN(shfl_returned);
    RUN(limits);
    RUN(too_many_threads);
    RUN(bf16);
    RUN(graph);
    RUN(mma_direct);
    RUN(mma_ldsm);
    RUN(mma_half);
    free(image);
    return test_summary();
}
