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
#define __align__(n) alignas(n)
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

/* ---- vector types ---- */
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(8) float2 { float x, y; };

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
