/* compile.c — compile(src) → shared object or cubin, cached on disk.
 *
 * Cache entries are named by a 64-bit FNV-1a hash: for C, of the source, the flags
 * (C_FLAGS and $GPTC_KERNEL_CFLAGS) and the first line of `$GPTC_CC --version` (default
 * cc); for CUDA, of the source, the architecture and NVRTC's version. They live under
 * $XDG_CACHE_HOME/gptc (default ~/.cache/gptc; /tmp/gptc-cache-UID without a HOME) and
 * are written to a temporary name and renamed, so a crash never leaves a half entry and
 * concurrent gptc processes agree. A warm start compiles nothing.
 *
 * NVRTC is loaded with dlopen, so gptc starts on machines without CUDA; it is looked up
 * as libnvrtc.so, libnvrtc.so.13, libnvrtc.so.12 and under $CUDA_HOME (default
 * /usr/local/cuda)/lib64. Under GPTC_CUDA_EMULATE the CUDA emulator's library stands in
 * for it: its "cubins" are modules for the host, and the cache key holds the emulator's
 * compilers, so the two never share an entry.
 *
 * gptc itself loads NVRTC only for its version (the cache key): a module is compiled by
 * gptc-nvrtc, a process of its own next to gptc (cli/nvrtc_main.c → cg_nvrtc_main). NVRTC's
 * heap (gptc compile of a small model peaked at 195 MB with NVRTC inside, 60 MB without)
 * then leaves with that process instead of staying in the trainer's, a crash inside NVRTC
 * is a failed compile rather than a lost run, and a gptc built with AddressSanitizer does
 * not route NVRTC's allocations through its allocator (2–3× slower). */
#include "codegen/codegen.h"
#include "base/base.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* -fno-math-errno and -fno-trapping-math let selects and sqrt vectorize; no flag changes
 * a result (no -ffast-math). -ffp-contract=off: a value computed in two kernels (x in a
 * maximum's loop and in its gradient's mask x == max(x)) must round the same in both, and
 * the compiler contracts a * b + c into one fused multiply-add in one loop but not another */
#define C_FLAGS "-O3 -march=native -fopenmp -fPIC -shared -fno-math-errno -fno-trapping-math -ffp-contract=off"

uint64_t cg_hash(const void *data, size_t n, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_str(const char *s, uint64_t h) { return cg_hash(s, strlen(s) + 1, h); }

int cg_cache_dir(char *out, size_t len, char *err, size_t errlen)
{
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && *x) snprintf(out, len, "%s/gptc", x);
    else if (home && *home) snprintf(out, len, "%s/.cache/gptc", home);
    else snprintf(out, len, "/tmp/gptc-cache-%d", (int)getuid());
    char why[512];
    if (mkdir_p(out, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot create the kernel cache (%s)", why);
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const void *data, size_t n)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    if (fclose(f) || w != n || rename(tmp, path)) {
        remove(tmp);
        return -1;
    }
    return 0;
}

/* extra flags for the kernels, e.g. -fsanitize=address under the test suite */
static const char *kernel_flags(void)
{
    const char *f = getenv("GPTC_KERNEL_CFLAGS");
    return f ? f : "";
}

static const char *c_compiler(void)
{
    const char *cc = getenv("GPTC_CC");
    return cc && *cc ? cc : "cc";
}

/* the first line of `cc --version`, once */
static const char *cc_version(void)
{
    static char v[256];
    if (v[0]) return v;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --version 2>/dev/null", c_compiler());
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(v, sizeof v, p)) snprintf(v, sizeof v, "unknown");
    if (p) pclose(p);
    v[strcspn(v, "\n")] = '\0';
    return v;
}

static bool exists(const char *path) { return access(path, R_OK) == 0; }

int cg_compile_c(const char *src, char *path, size_t pathlen, bool *cached, char *err, size_t errlen)
{
    char dir[4096], csrc[4200], tmp[4300], cmd[9000];
    if (cg_cache_dir(dir, sizeof dir, err, errlen)) return -1;
    uint64_t h = hash_str(kernel_flags(), hash_str(C_FLAGS, hash_str(cc_version(), hash_str(src, 1469598103934665603ull))));
    snprintf(path, pathlen, "%s/%016llx.so", dir, (unsigned long long)h);
    *cached = exists(path);
    if (*cached) return 0;
    snprintf(csrc, sizeof csrc, "%s/%016llx.c", dir, (unsigned long long)h);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    if (write_file(csrc, src, strlen(src))) {
        snprintf(err, errlen, "cannot write %s: %s", csrc, strerror(errno));
        return -1;
    }
    snprintf(cmd, sizeof cmd, "%s %s %s -o '%s' '%s' -lm 2>&1", c_compiler(), C_FLAGS, kernel_flags(), tmp, csrc);
    FILE *p = popen(cmd, "r");
    char out[2048] = "";
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = '\0';
    int rc = p ? pclose(p) : -1;
    if (rc != 0 || rename(tmp, path)) {
        remove(tmp);
        snprintf(err, errlen, "the C compiler failed on %s (%s):\n%s", csrc, cmd, out);
        return -1;
    }
    return 0;
}

/* ---- NVRTC ------------------------------------------------------------------------------ */

typedef int (*FnCreate)(void **, const char *, const char *, int, const char *const *, const char *const *);
typedef int (*FnCompile)(void *, int, const char *const *);
typedef int (*FnSize)(void *, size_t *);
typedef int (*FnGet)(void *, char *);
typedef int (*FnDestroy)(void **);
typedef int (*FnVersion)(int *, int *);
typedef const char *(*FnError)(int);

static struct {
    void *lib;
    const char *(*emu_id)(void);   /* the CUDA emulator's compilers, for the cache key */
    FnCreate create;
    FnCompile compile;
    FnSize cubin_size, log_size;
    FnGet cubin, log;
    FnDestroy destroy;
    FnVersion version;
    FnError error;
} nv;

const char *cg_cuda_home(void)
{
    const char *h = getenv("CUDA_HOME");
    return h && *h ? h : "/usr/local/cuda";
}

static int load_nvrtc(char *err, size_t errlen)
{
    if (nv.lib) return 0;
    char alt[4200];
    snprintf(alt, sizeof alt, "%s/lib64/libnvrtc.so", cg_cuda_home());
    const char *names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", alt};
    char why[512];
    const char *emu[] = {cuda_emulator()};
    if (emu[0] && !(nv.lib = lib_open(emu, 1, RTLD_NOW | RTLD_GLOBAL, NULL, why, sizeof why))) {
        snprintf(err, errlen, "the CUDA emulator: %s ($GPTC_CUDA_EMULATE) cannot be loaded (%s); make builds it next to "
                 "gptc (or set GPTC_LIBCUDAEMU)", emu[0], why);
        return -1;
    }
    if (!nv.lib && !(nv.lib = lib_open(names, 4, RTLD_NOW, NULL, why, sizeof why))) {
        snprintf(err, errlen, "NVRTC (libnvrtc.so) cannot be loaded (%s): install the CUDA toolkit or set CUDA_HOME", why);
        return -1;
    }
    nv.emu_id = (const char *(*)(void))dlsym(nv.lib, "gptcEmuCompilerId");
    nv.create = (FnCreate)dlsym(nv.lib, "nvrtcCreateProgram");
    nv.compile = (FnCompile)dlsym(nv.lib, "nvrtcCompileProgram");
    nv.cubin_size = (FnSize)dlsym(nv.lib, "nvrtcGetCUBINSize");
    nv.cubin = (FnGet)dlsym(nv.lib, "nvrtcGetCUBIN");
    nv.log_size = (FnSize)dlsym(nv.lib, "nvrtcGetProgramLogSize");
    nv.log = (FnGet)dlsym(nv.lib, "nvrtcGetProgramLog");
    nv.destroy = (FnDestroy)dlsym(nv.lib, "nvrtcDestroyProgram");
    nv.version = (FnVersion)dlsym(nv.lib, "nvrtcVersion");
    nv.error = (FnError)dlsym(nv.lib, "nvrtcGetErrorString");
    if (!nv.create || !nv.compile || !nv.cubin_size || !nv.cubin || !nv.log_size || !nv.log || !nv.destroy ||
        !nv.version || !nv.error) {
        snprintf(err, errlen, "libnvrtc.so lacks the NVRTC functions gptc uses");
        dlclose(nv.lib);
        nv.lib = NULL;
        return -1;
    }
    return 0;
}

static char *program_log(void *prog)
{
    size_t n = 0;
    nv.log_size(prog, &n);
    char *log = xcalloc(n + 1, 1);
    if (log && n) nv.log(prog, log);
    return log;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = xcalloc((size_t)(n > 0 ? n : 0) + 1, 1);
    if (s && n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = '\0';
    fclose(f);
    return s;
}

/* NVRTC: src → cubin bytes (malloc'ed), and the log; its errors name the source as name */
static int nvrtc_build(const char *src, const char *name, const char *arch, char **cubin, size_t *size, char **log,
                       char *err, size_t errlen)
{
    char archopt[64], inc[4200];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s", arch);
    snprintf(inc, sizeof inc, "--include-path=%s/include", cg_cuda_home());
    const char *opts[] = {archopt, "--std=c++17", "-default-device", "--ptxas-options=-v", "-lineinfo", inc};
    void *prog = NULL;
    int rc = nv.create(&prog, src, name, 0, NULL, NULL);
    if (rc) {
        snprintf(err, errlen, "nvrtcCreateProgram: %s", nv.error(rc));
        return -1;
    }
    rc = nv.compile(prog, (int)(sizeof opts / sizeof *opts), opts);
    *log = program_log(prog);
    if (rc) {   /* the log is long (ptxas -v): show its error lines */
        size_t k = (size_t)snprintf(err, errlen, "NVRTC failed (%s):", nv.error(rc));
        for (const char *l = *log ? *log : ""; *l && k < errlen;) {
            size_t n = strcspn(l, "\n");
            if (memmem(l, n, "error", 5)) k += (size_t)snprintf(err + k, errlen - k, "\n%.*s", (int)n, l);
            l += n + (l[n] == '\n');
        }
        nv.destroy(&prog);
        return -1;
    }
    nv.cubin_size(prog, size);
    *cubin = xmalloc(*size ? *size : 1);
    if (*cubin) nv.cubin(prog, *cubin);
    nv.destroy(&prog);
    return 0;
}

/* ---- gptc-nvrtc ------------------------------------------------------------------------- */

static const char nvrtc_usage[] =
    "usage: gptc-nvrtc ARCH SOURCE CUBIN LOG\n"
    "Compiles the CUDA source file SOURCE with NVRTC for ARCH (sm_90) and writes the cubin to\n"
    "CUBIN and NVRTC's log (ptxas -v) to LOG, each atomically. Under GPTC_CUDA_EMULATE=1 the\n"
    "CUDA emulator's library compiles in NVRTC's place. gptc runs it for every module it\n"
    "compiles. Exit status: 0 compiled, 1 the compile failed (its errors on stderr), 2 usage.\n";

int cg_nvrtc_main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(nvrtc_usage, stdout);
        return 0;
    }
    if (argc != 5) {
        fputs(nvrtc_usage, stderr);
        return 2;
    }
    const char *arch = argv[1], *source = argv[2], *cubin_path = argv[3], *log_path = argv[4];
    char err[8192];
    char *src = read_all(source), *cubin = NULL, *log = NULL;
    size_t size = 0;
    int rc = -1;
    if (!src) snprintf(err, sizeof err, "cannot read %s: %s", source, strerror(errno));
    else if (!load_nvrtc(err, sizeof err) && !nvrtc_build(src, source, arch, &cubin, &size, &log, err, sizeof err)) {
        rc = write_file(log_path, log ? log : "", log ? strlen(log) : 0) || write_file(cubin_path, cubin, size);
        if (rc) snprintf(err, sizeof err, "cannot write %s: %s", cubin_path, strerror(errno));
    }
    if (rc) fprintf(stderr, "%s\n", err);
    free(src);
    free(cubin);
    free(log);
    return rc ? 1 : 0;
}

/* Runs argv[0] with argv (no shell), its stdout and stderr read into out (NUL-terminated,
 * cut at outlen). Its exit status, 128 + the signal that killed it, or -1 (errno) when it
 * could not start. */
static int run_capture(char *const argv[], char *out, size_t outlen)
{
    extern char **environ;
    int fd[2];
    out[0] = 0;
    if (pipe(fd)) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 2);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (e) {
        close(fd[0]);
        errno = e;
        return -1;
    }
    size_t n = 0;
    char sink[1024];
    for (;;) {   /* read to the end, keeping what fits */
        bool room = n + 1 < outlen;
        ssize_t r = read(fd[0], room ? out + n : sink, room ? outlen - 1 - n : sizeof sink);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (room) n += (size_t)r;
    }
    out[n] = 0;
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* a cache miss: the source into the cache (source, beside its cubin), gptc-nvrtc compiles it
 * into path and logpath */
static int nvrtc_in_child(const char *src, const char *arch, const char *source, const char *path,
                          const char *logpath, char *err, size_t errlen)
{
    char child[PATH_MAX + 64], out[8192];
    beside_program("gptc-nvrtc", child, sizeof child);
    if (access(child, X_OK)) {
        snprintf(err, errlen, "gptc-nvrtc, which compiles CUDA modules, is neither next to the program nor one folder up "
                 "(%s): make builds it", child);
        return -1;
    }
    if (write_file(source, src, strlen(src))) {
        snprintf(err, errlen, "cannot write %s: %s", source, strerror(errno));
        return -1;
    }
    char *argv[] = {child, (char *)arch, (char *)source, (char *)path, (char *)logpath, NULL};
    int rc = run_capture(argv, out, sizeof out);
    for (size_t n = strlen(out); n > 0 && out[n - 1] == '\n';) out[--n] = 0;
    if (rc < 0) snprintf(err, errlen, "cannot run %s: %s", child, strerror(errno));
    else if (rc > 128) snprintf(err, errlen, "%s was killed by signal %d compiling %s", child, rc - 128, source);
    else if (rc) snprintf(err, errlen, "%s", out[0] ? out : "gptc-nvrtc failed and said nothing");
    return rc ? -1 : 0;
}

int cg_compile_cuda(const char *src, const char *arch, char *path, size_t pathlen, bool *cached, char **log,
                    char *err, size_t errlen)
{
    char dir[4096], logpath[4200], source[4200], ver[32];
    *log = NULL;
    if (load_nvrtc(err, errlen) || cg_cache_dir(dir, sizeof dir, err, errlen)) return -1;
    int maj = 0, min = 0;
    nv.version(&maj, &min);
    snprintf(ver, sizeof ver, "nvrtc %d.%d", maj, min);
    uint64_t h = hash_str(ver, hash_str(arch, hash_str(src, 1469598103934665603ull)));
    if (nv.emu_id) h = hash_str(nv.emu_id(), h);   /* an emulated module is no cubin */
    snprintf(path, pathlen, "%s/%016llx.cubin", dir, (unsigned long long)h);
    snprintf(logpath, sizeof logpath, "%s/%016llx.log", dir, (unsigned long long)h);
    snprintf(source, sizeof source, "%s/%016llx.cu", dir, (unsigned long long)h);
    *cached = exists(path) && exists(logpath);
    if (!*cached && nvrtc_in_child(src, arch, source, path, logpath, err, errlen)) return -1;
    *log = read_all(logpath);
    return 0;
}
