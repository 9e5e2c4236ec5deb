/* nvrtc.c — the NVRTC entry points: a "cubin" the emulator can load.
 *
 * nvrtcCompileProgram does what the device build would, then builds for the host:
 *  1. the real NVRTC (from the CUDA toolkit, when it loads) compiles the source with the
 *     options given. Its errors are the program's errors, and its log (ptxas -v) gives each
 *     kernel's registers and static shared memory, which the launches are held to.
 *  2. c++ -E expands the source's own macros, with __global__ and __launch_bounds__ turned
 *     into markers, so that every kernel and its bounds can be found in the text, and
 *     GPTC_CUDA_EMULATOR defined: where the source would run inline PTX (tensor-core mma,
 *     ldmatrix) it calls the prelude's versions of those instructions instead;
 *  3. c++ compiles that text for the host, prelude.cuh in front and, after it, for each
 *     kernel a trampoline that calls it with a launch's parameter array, into a shared
 *     object. ThreadSanitizer's instrumentation (-fsanitize=thread, without its run-time
 *     library) routes every access to check.c.
 * The image returned as the cubin is a small header (the kernels' registers and shared
 * memory) followed by the shared object; cuModuleLoadData (driver.c) reads it.
 * gptcEmuCompilerId names the compilers and the prelude, for the kernel cache's key. */
#include "emu/emu.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

extern const char emu_prelude[];   /* prelude.cuh, embedded by prelude.S */

enum { NVRTC_SUCCESS = 0, NVRTC_OUT_OF_MEMORY = 1, NVRTC_INVALID_INPUT = 3, NVRTC_INVALID_PROGRAM = 4,
       NVRTC_COMPILATION = 6 };

typedef struct {
    char *src, *name;
    char *log;
    char *image;
    size_t image_size;
} Prog;

/* ---- the real NVRTC, for the device build's errors and ptxas's figures -------------------- */

static struct {
    int tried;
    void *lib;
    int (*create)(void **, const char *, const char *, int, const char *const *, const char *const *);
    int (*compile)(void *, int, const char *const *);
    int (*log_size)(void *, size_t *);
    int (*log)(void *, char *);
    int (*destroy)(void **);
    int (*version)(int *, int *);
} real;

static void load_real(void)
{
    if (real.tried++) return;
    const char *home = getenv("CUDA_HOME");
    char path[4096];
    snprintf(path, sizeof path, "%s/lib64/libnvrtc.so", home && *home ? home : "/usr/local/cuda");
    const char *names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", path};
    for (int i = 0; i < 4 && !real.lib; i++) real.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!real.lib) return;
    *(void **)&real.create = dlsym(real.lib, "nvrtcCreateProgram");
    *(void **)&real.compile = dlsym(real.lib, "nvrtcCompileProgram");
    *(void **)&real.log_size = dlsym(real.lib, "nvrtcGetProgramLogSize");
    *(void **)&real.log = dlsym(real.lib, "nvrtcGetProgramLog");
    *(void **)&real.destroy = dlsym(real.lib, "nvrtcDestroyProgram");
    *(void **)&real.version = dlsym(real.lib, "nvrtcVersion");
    if (!real.create || !real.compile || !real.log_size || !real.log || !real.destroy || !real.version) real.lib = NULL;
}

/* the device build: 0, or NVRTC_COMPILATION with its log; *log is malloc'ed */
static int device_build(const Prog *p, int nopts, const char *const *opts, char **log)
{
    *log = NULL;
    load_real();
    if (!real.lib) {
        *log = strdup("cuda emulator: no NVRTC in the CUDA toolkit: the source was not compiled for the device, "
                      "and registers and shared memory are not checked\n");
        return NVRTC_SUCCESS;
    }
    void *prog = NULL;
    int rc = real.create(&prog, p->src, p->name, 0, NULL, NULL);
    if (rc) return rc;
    rc = real.compile(prog, nopts, opts);
    size_t n = 0;
    real.log_size(prog, &n);
    *log = calloc(n + 1, 1);
    if (*log && n) real.log(prog, *log);
    real.destroy(&prog);
    return rc ? NVRTC_COMPILATION : NVRTC_SUCCESS;
}

/* ---- files and commands ------------------------------------------------------------------- */

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n;
    return fclose(f) || bad ? -1 : 0;
}

static char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *b = malloc((size_t)(len > 0 ? len : 0) + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[len] = 0, *n = (size_t)len;
    return b;
}

/* appends to a malloc'ed string */
static void append(char **s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *add = NULL;
    if (vasprintf(&add, fmt, ap) < 0) add = NULL;
    va_end(ap);
    if (!add) return;
    size_t a = *s ? strlen(*s) : 0, b = strlen(add);
    char *t = realloc(*s, a + b + 1);
    if (t) {
        memcpy(t + a, add, b + 1);
        *s = t;
    }
    free(add);
}

/* runs cmd in dir; its output is appended to *log; 0 when it succeeded */
static int run(const char *dir, const char *cmd, char **log)
{
    char *full = NULL;
    if (asprintf(&full, "cd '%s' && %s 2>&1", dir, cmd) < 0) return -1;
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf - 1, p)) > 0) {
        buf[n] = 0;
        append(log, "%s", buf);
    }
    return pclose(p) == 0 ? 0 : -1;
}

static const char *cxx(void)
{
    const char *c = getenv("GPTC_EMU_CXX");
    return c && *c ? c : "c++";
}

/* the flags of the host build: ThreadSanitizer's instrumentation, not its run-time library
 * (the .o is linked without -fsanitize); no function entry/exit hooks; no GNU-unique symbols,
 * which the loader would merge across the module's copies (a template's __shared__ array
 * would then be one for all workers) */
#define CXX_FLAGS "-std=c++17 -O1 -fPIC -fno-exceptions -fno-rtti -fno-gnu-unique -w -fsanitize=thread " \
                  "--param=tsan-instrument-func-entry-exit=0"

/* ---- kernels in the expanded text --------------------------------------------------------- */

typedef struct { char name[128]; int bounds; } Kern;

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    return s;
}

/* "__emu_global__ void [__emu_lb__(N[, M])] NAME (" → NAME and N */
static int find_kernels(const char *text, Kern **out)
{
    int n = 0, cap = 0;
    *out = NULL;
    for (const char *s = text; (s = strstr(s, "__emu_global__")) != NULL;) {
        s = skip_space(s + strlen("__emu_global__"));
        if (strncmp(s, "void", 4)) continue;
        s = skip_space(s + 4);
        int bounds = 0;
        if (!strncmp(s, "__emu_lb__", 10)) {
            s = skip_space(s + 10);
            if (*s == '(') bounds = atoi(s + 1);
            while (*s && *s != ')') s++;
            s = skip_space(*s ? s + 1 : s);
        }
        const char *b = s;
        while (*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) s++;
        if (s == b || s - b >= 127 || *skip_space(s) != '(') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            Kern *k = realloc(*out, sizeof **out * (size_t)cap);
            if (!k) break;
            *out = k;
        }
        snprintf((*out)[n].name, sizeof (*out)[n].name, "%.*s", (int)(s - b), b);
        (*out)[n++].bounds = bounds;
    }
    return n;
}

/* the trampolines and the table, appended to the expanded text */
static char *trampolines(const Kern *k, int n)
{
    char *t = NULL;
    append(&t, "\n/* ---- emulator trampolines ---- */\n");
    for (int i = 0; i < n; i++) append(&t, "EMU_KERNEL(%s, %d)\n", k[i].name, k[i].bounds);
    append(&t, "extern \"C\" const EmuKernelEntry emu_kernels[] = {\n");
    for (int i = 0; i < n; i++) append(&t, "    EMU_ENTRY(%s, %d),\n", k[i].name, k[i].bounds);
    append(&t, "    {nullptr, nullptr, 0, {0}, 0}\n};\n");
    /* the __shared__ arrays' section, as the linker bounds it (absent: none) */
    append(&t, "extern \"C\" __attribute__((weak)) char __start_emu_shared[], __stop_emu_shared[];\n"
               "extern \"C\" void emu_shared_range(char **lo, char **hi) { *lo = __start_emu_shared; "
               "*hi = __stop_emu_shared; }\n");
    return t;
}

/* ---- ptxas figures ------------------------------------------------------------------------ */

/* "NAME REGS SMEM\n" for every "Compiling entry function 'NAME'" block of the log */
static char *ptxas_table(const char *log)
{
    char *t = NULL;
    const char *key = "Compiling entry function '";
    for (const char *s = log ? strstr(log, key) : NULL; s; s = strstr(s, key)) {
        s += strlen(key);
        const char *e = strchr(s, '\'');
        if (!e) break;
        const char *next = strstr(e, key), *used = strstr(e, "Used ");
        int regs = -1, smem = 0;
        if (used && (!next || used < next)) {
            regs = atoi(used + 5);
            const char *line_end = strchr(used, '\n');
            const char *sm = strstr(used, "bytes smem");
            if (sm && (!line_end || sm < line_end)) {
                const char *d = sm - 1;
                while (d > used && *d == ' ') d--;
                while (d > used && d[-1] >= '0' && d[-1] <= '9') d--;
                smem = atoi(d);
            }
        }
        append(&t, "%.*s %d %d\n", (int)(e - s), s, regs, smem);
        s = e;
    }
    return t ? t : strdup("");
}

/* ---- the host build ----------------------------------------------------------------------- */

static void remove_dir(const char *dir)
{
    const char *files[] = {"prelude.cuh", "cuda_bf16.h", "cuda_fp16.h", "mma.h", "src.cu", "src.ii", "main.cpp",
                           "main.o", "module.so"};
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* src → dir/module.so; the compilers' output in *log */
static int host_build(const Prog *p, const char *dir, char **log)
{
    if (write_text(dir, "prelude.cuh", emu_prelude) || write_text(dir, "cuda_bf16.h", "") ||
        write_text(dir, "cuda_fp16.h", "") || write_text(dir, "mma.h", "") || write_text(dir, "src.cu", p->src)) {
        append(log, "cuda emulator: cannot write into %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char *cmd = NULL;
    int rc = asprintf(&cmd, "%s -std=c++17 -E -x c++ -I. -D__CUDACC__ -D__CUDA_ARCH__=900 -DGPTC_CUDA_EMULATOR "
                      "-D__global__=__emu_global__ '-D__launch_bounds__(...)=__emu_lb__(__VA_ARGS__)' "
                      "src.cu -o src.ii", cxx());
    if (rc < 0 || run(dir, cmd, log)) {
        free(cmd);
        append(log, "cuda emulator: %s -E failed on the kernels' source\n", cxx());
        return -1;
    }
    free(cmd);
    char path[4200];
    size_t n;
    snprintf(path, sizeof path, "%s/src.ii", dir);
    char *text = read_bytes(path, &n);
    Kern *k = NULL;
    int nk = text ? find_kernels(text, &k) : 0;
    free(text);
    char *main_src = NULL;
    append(&main_src, "#include \"src.ii\"\n");
    char *tr = trampolines(k, nk);
    append(&main_src, "%s", tr ? tr : "");
    free(tr);
    free(k);
    rc = write_text(dir, "main.cpp", main_src ? main_src : "");
    free(main_src);
    if (rc) return -1;
    if (asprintf(&cmd, "%s " CXX_FLAGS " -include prelude.cuh -c main.cpp -o main.o && %s -shared main.o -o module.so",
                 cxx(), cxx()) < 0)
        return -1;
    rc = run(dir, cmd, log);
    free(cmd);
    if (rc) append(log, "cuda emulator: %s failed to compile the kernels for the host\n", cxx());
    return rc;
}

/* the image: "GPTCEMU1\n", "kernels N\n", N lines "NAME REGS SMEM", "so BYTES\n", the object */
static int make_image(Prog *p, const char *table, const char *so_path)
{
    size_t so_n = 0;
    char *so = read_bytes(so_path, &so_n);
    if (!so) return -1;
    int lines = 0;
    for (const char *s = table; *s; s++) lines += *s == '\n';
    char *head = NULL;
    append(&head, "GPTCEMU1\nkernels %d\n%sso %zu\n", lines, table, so_n);
    size_t h = head ? strlen(head) : 0;
    p->image = malloc(h + so_n);
    if (!head || !p->image) {
        free(head);
        free(so);
        return -1;
    }
    memcpy(p->image, head, h);
    memcpy(p->image + h, so, so_n);
    p->image_size = h + so_n;
    free(head);
    free(so);
    return 0;
}

/* ---- the API ------------------------------------------------------------------------------ */

EXPORT int nvrtcCreateProgram(void **prog, const char *src, const char *name, int nheaders, const char *const *headers,
                              const char *const *include_names)
{
    if (!prog || !src) return NVRTC_INVALID_INPUT;
    if (nheaders > 0) return NVRTC_INVALID_INPUT;   /* gptc's sources are self-contained */
    Prog *p = calloc(1, sizeof *p);
    if (!p) return NVRTC_OUT_OF_MEMORY;
    p->src = strdup(src);
    p->name = strdup(name ? name : "default_program");
    *prog = p;
    return NVRTC_SUCCESS;
}

EXPORT int nvrtcCompileProgram(void *prog, int nopts, const char *const *opts)
{
    Prog *p = prog;
    if (!p) return NVRTC_INVALID_PROGRAM;
    free(p->log);
    p->log = NULL;
    char *dev_log = NULL;
    int rc = device_build(p, nopts, opts, &dev_log);
    append(&p->log, "%s", dev_log ? dev_log : "");
    if (rc) {
        free(dev_log);
        return rc;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/gptc-emu-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        append(&p->log, "cuda emulator: cannot make a folder under %s: %s\n", tmp && *tmp ? tmp : "/tmp", strerror(errno));
        free(dev_log);
        return NVRTC_COMPILATION;
    }
    char *host_log = NULL, so_path[4200];
    snprintf(so_path, sizeof so_path, "%s/module.so", dir);
    rc = host_build(p, dir, &host_log);
    char *table = ptxas_table(dev_log);
    if (!rc && make_image(p, table, so_path)) rc = -1;
    if (rc) append(&p->log, "%s", host_log ? host_log : "");
    free(table);
    free(host_log);
    free(dev_log);
    remove_dir(dir);
    return rc ? NVRTC_COMPILATION : NVRTC_SUCCESS;
}

EXPORT int nvrtcGetCUBINSize(void *prog, size_t *n)
{
    const Prog *p = prog;
    if (!p || !p->image) return NVRTC_INVALID_PROGRAM;
    *n = p->image_size;
    return NVRTC_SUCCESS;
}

EXPORT int nvrtcGetCUBIN(void *prog, char *out)
{
    const Prog *p = prog;
    if (!p || !p->image) return NVRTC_INVALID_PROGRAM;
    memcpy(out, p->image, p->image_size);
    return NVRTC_SUCCESS;
}

EXPORT int nvrtcGetProgramLogSize(void *prog, size_t *n)
{
    const Prog *p = prog;
    *n = (p && p->log ? strlen(p->log) : 0) + 1;
    return NVRTC_SUCCESS;
}

EXPORT int nvrtcGetProgramLog(void *prog, char *out)
{
    const Prog *p = prog;
    strcpy(out, p && p->log ? p->log : "");
    return NVRTC_SUCCESS;
}

EXPORT int nvrtcDestroyProgram(void **prog)
{
    Prog *p = prog ? *prog : NULL;
    if (!p) return NVRTC_SUCCESS;
    free(p->src);
    free(p->name);
    free(p->log);
    free(p->image);
    free(p);
    *prog = NULL;
    return NVRTC_SUCCESS;
}

EXPORT int nvrtcVersion(int *major, int *minor)
{
    load_real();
    if (real.lib) return real.version(major, minor);
    *major = 13, *minor = 0;
    return NVRTC_SUCCESS;
}

EXPORT const char *nvrtcGetErrorString(int rc)
{
    switch (rc) {
    case NVRTC_SUCCESS: return "NVRTC_SUCCESS";
    case NVRTC_OUT_OF_MEMORY: return "NVRTC_ERROR_OUT_OF_MEMORY";
    case NVRTC_INVALID_INPUT: return "NVRTC_ERROR_INVALID_INPUT";
    case NVRTC_INVALID_PROGRAM: return "NVRTC_ERROR_INVALID_PROGRAM";
    case NVRTC_COMPILATION: return "NVRTC_ERROR_COMPILATION";
    default: return "NVRTC error";
    }
}

/* What the kernel cache's key must change with: this emulator's prelude, the host compiler
 * and its flags. */
EXPORT const char *gptcEmuCompilerId(void)
{
    static char id[512];
    if (id[0]) return id;
    uint64_t h = 1469598103934665603ull;
    for (const char *s = emu_prelude; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    for (const char *s = CXX_FLAGS; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    char cmd[600], ver[256] = "unknown";
    snprintf(cmd, sizeof cmd, "%s --version 2>/dev/null", cxx());
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(ver, sizeof ver, p)) snprintf(ver, sizeof ver, "unknown");
        pclose(p);
    }
    ver[strcspn(ver, "\n")] = 0;
    snprintf(id, sizeof id, "gptc cuda emulator %016llx %s", (unsigned long long)h, ver);
    return id;
}
