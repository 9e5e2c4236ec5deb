/* prelude.cuh — the CUDA built-ins gptc's kernels use, defined for the host. The emulator
 * compiles the generated CUDA source as C++ with this header in front (nvrtc.c): a kernel is
 * then an ordinary function that one fiber per CUDA thread runs (exec.c). Nothing here
 * re-implements a kernel; each built-in means what the CUDA C++ Programming Guide says:
 *
 *   threadIdx, blockIdx, blockDim, gridDim   the running fiber's, read through emu_self
 *   __shared__        one array per block: a static in the section emu_shared, of which
 *                     every worker thread has a copy (driver.c loads the module once per
 *                     worker), so the fibers of its block share it
 *   __syncthreads     a barrier of the block's fibers (exec.c checks that all reach the same one)
 *   __shfl_xor_sync   a rendezvous of the named lanes of the warp
 *   atomicAdd         an atomic read-modify-write, checked like any access
 *   mma.sync, ldmatrix the tensor-core instructions the library wraps (below): a rendezvous
 *                     of the whole warp, with the PTX ISA's fragment layouts
 *   __nv_bfloat16     two bytes; conversions round to nearest even, NaN to the canonical NaN
 *   uint4             16 bytes aligned to 16: a misaligned vector access is reported
 *
 * Every global and shared access is checked: the kernels are compiled with GCC's
 * ThreadSanitizer instrumentation, whose callbacks (__tsan_read4 …) check.c implements. A
 * built-in the kernels do not use is not defined, so a new one fails to compile here until
 * it is added with its documented meaning. */
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

/* the markers nvrtc.c's first pass leaves for kernels and their launch bounds */
#define __emu_global__
#define __emu_lb__(...)
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))   /* GNU: allowed after __shared__'s static */
#define __shared__ static __attribute__((section("emu_shared")))

struct EmuDim3 { unsigned x, y, z; };
struct EmuThreadInfo { EmuDim3 tid, bid, bdim, gdim; };
extern "C" {
extern __thread const EmuThreadInfo *emu_self __attribute__((tls_model("initial-exec")));
void emu_syncthreads(int line);
unsigned emu_shfl_xor(unsigned mask, unsigned bits, int lane_mask, int width, int line);
float emu_atomic_add_f32(float *p, float v);
int emu_atomic_add_i32(int *p, int v);
}
#define threadIdx (emu_self->tid)
#define blockIdx (emu_self->bid)
#define blockDim (emu_self->bdim)
#define gridDim (emu_self->gdim)
#define warpSize 32

#define __syncthreads() emu_syncthreads(__LINE__)

template <typename T>
inline T emu_shfl_xor_t(int line, unsigned mask, T v, int lane_mask, int width = 32)
{
    static_assert(sizeof(T) == 4, "the emulator shuffles 4-byte values");
    unsigned b;
    std::memcpy(&b, &v, 4);
    b = emu_shfl_xor(mask, b, lane_mask, width, line);
    std::memcpy(&v, &b, 4);
    return v;
}
#define __shfl_xor_sync(...) emu_shfl_xor_t(__LINE__, __VA_ARGS__)

inline float atomicAdd(float *p, float v) { return emu_atomic_add_f32(p, v); }
inline int atomicAdd(int *p, int v) { return emu_atomic_add_i32(p, v); }

/* ---- integer min and max, as CUDA's math API overloads them ---- */
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

/* ---- bit casts and fast-math spellings ---- */
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

/* ---- bf16 (cuda_bf16.h) ---- */
struct __nv_bfloat16 { unsigned short __x; };
inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float((unsigned)h.__x << 16); }
inline __nv_bfloat16 __float2bfloat16(float f)
{
    unsigned b = __float_as_uint(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{0x7fff};
    b += 0x7fffu + ((b >> 16) & 1u);
    return __nv_bfloat16{(unsigned short)(b >> 16)};
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }

/* ---- vector types ---- */
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(8) float2 { float x, y; };

/* ---- tensor-core instructions (the library's cg_mma, cg_ldsm, cg_ldsm_t under
 * GPTC_CUDA_EMULATOR): mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 and
 * ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16, warp-collective as on the device: every
 * lane hands its registers to emu_warp_op (exec.c), the last to arrive computes every lane's
 * results from all of them, each lane takes its own. The register <-> (row, column) maps are
 * the PTX ISA's, "Matrix Fragments for mma.m16n8k16 with floating point type" and
 * "Warp-level matrix load instruction: ldmatrix"; with g = lane / 4, c = lane % 4 and two
 * bf16 a register, the lower-indexed element in its low half:
 *   A 16x16: a0 (g, 2c..2c+1)  a1 (g+8, 2c..)  a2 (g, 2c+8..)  a3 (g+8, 2c+8..)
 *   B 16x8:  b0 (2c..2c+1, g)  b1 (2c+8..2c+9, g)
 *   C, D 16x8 float: d0, d1 (g, 2c), (g, 2c+1)  d2, d3 (g+8, 2c), (g+8, 2c+1)
 *   ldmatrix .x4: lane l gives the address of row l % 8 of matrix l / 8; register i of lane l
 *   is matrix i's row l / 4, elements 2(l % 4), 2(l % 4) + 1; with .trans, its column l / 4,
 *   rows 2(l % 4) and 2(l % 4) + 1. ---- */
extern "C" void emu_warp_op(unsigned mask, const unsigned *in, int nin, unsigned *out, int nout,
                            void (*op)(const unsigned *in, unsigned *out, int stride), int line);
inline float emu_bf16_lo(unsigned r) { return __uint_as_float(r << 16); }
inline float emu_bf16_hi(unsigned r) { return __uint_as_float(r & 0xffff0000u); }
inline unsigned emu_half(unsigned r, int i) { return i ? r >> 16 : r & 0xffffu; }

/* lane l's words at in[l * stride]: a0..a3, b0, b1, c0..c3; out: d0..d3. Products of bf16 are
 * exact in float; they are summed over k in order, then added to c. */
__attribute__((no_sanitize_thread)) static void emu_mma_op(const unsigned *in, unsigned *out, int stride)
{
    float a[16][16], b[16][8];
    for (int l = 0; l < 32; l++) {
        const unsigned *r = in + l * stride;
        const int g = l / 4, c = l % 4;
        for (int i = 0; i < 4; i++) {
            const int row = g + (i & 1) * 8, col = 2 * c + (i >> 1) * 8;
            a[row][col] = emu_bf16_lo(r[i]), a[row][col + 1] = emu_bf16_hi(r[i]);
        }
        b[2 * c][g] = emu_bf16_lo(r[4]), b[2 * c + 1][g] = emu_bf16_hi(r[4]);
        b[2 * c + 8][g] = emu_bf16_lo(r[5]), b[2 * c + 9][g] = emu_bf16_hi(r[5]);
    }
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) {
            const int row = l / 4 + (i >> 1) * 8, col = 2 * (l % 4) + (i & 1);
            float s = 0.0f;
            for (int k = 0; k < 16; k++) s += a[row][k] * b[k][col];
            out[l * stride + i] = __float_as_uint(__uint_as_float(in[l * stride + 6 + i]) + s);
        }
}

/* lane l's words: the 16 bytes of the row it addressed */
__attribute__((no_sanitize_thread)) static void emu_ldsm_op(const unsigned *in, unsigned *out, int stride)
{
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) out[l * stride + i] = in[(8 * i + l / 4) * stride + l % 4];
}
__attribute__((no_sanitize_thread)) static void emu_ldsm_t_op(const unsigned *in, unsigned *out, int stride)
{
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) {
            const int g = l / 4, c = l % 4;
            const unsigned lo = in[(8 * i + 2 * c) * stride + g / 2], hi = in[(8 * i + 2 * c + 1) * stride + g / 2];
            out[l * stride + i] = emu_half(lo, g % 2) | emu_half(hi, g % 2) << 16;
        }
}

/* d += a b, the warp's 16x8 tile (line: the caller's, for messages) */
inline void emu_mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2], int line = __builtin_LINE())
{
    const unsigned in[10] = {a[0], a[1], a[2], a[3], b[0], b[1], __float_as_uint(d[0]), __float_as_uint(d[1]),
                             __float_as_uint(d[2]), __float_as_uint(d[3])};
    unsigned out[4];
    emu_warp_op(0xffffffffu, in, 10, out, 4, emu_mma_op, line);
    for (int i = 0; i < 4; i++) d[i] = __uint_as_float(out[i]);
}

/* the lane's own row is read here, so its access is checked as the lane's (alignment, bounds,
 * a shared-memory race or a missing barrier) */
template <typename E>
inline void emu_ldmatrix_x4(unsigned r[4], const E *row, int trans, int line = __builtin_LINE())
{
    const uint4 v = *(const uint4 *)row;
    const unsigned in[4] = {v.x, v.y, v.z, v.w};
    emu_warp_op(0xffffffffu, in, 4, r, 4, trans ? emu_ldsm_t_op : emu_ldsm_op, line);
}

/* ---- what the trampolines of nvrtc.c's second pass use: a kernel called with the
 * launch's parameter array, and its parameters' sizes ---- */
struct EmuKernelEntry {
    const char *name;
    void (*run)(void **params);
    int nparams;
    unsigned short param_size[256];
    int launch_bounds;
};
template <typename... A, std::size_t... I>
inline void emu_call(void (*f)(A...), void **p, std::index_sequence<I...>)
{
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>> *>(p[I])...);
}
template <typename... A>
inline void emu_invoke(void (*f)(A...), void **p) { emu_call(f, p, std::index_sequence_for<A...>{}); }
template <typename... A>
constexpr EmuKernelEntry emu_entry(const char *name, void (*run)(void **), void (*)(A...), int bounds)
{
    static_assert(sizeof...(A) <= 256, "a kernel of more than 256 parameters");
    return EmuKernelEntry{name, run, (int)sizeof...(A), {(unsigned short)sizeof(A)...}, bounds};
}
#define EMU_KERNEL(f, bounds) static void emu_run_##f(void **p) { emu_invoke(f, p); }
#define EMU_ENTRY(f, bounds) emu_entry(#f, emu_run_##f, f, bounds)
