/* module.c — modules: the image an emulated NVRTC compile made (nvrtc.c) loaded as a shared
 * object, once per worker thread that runs its kernels, and its kernels by name. */
#include "emu/emu.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;

/* The shared object, through a memory file so that nothing is left on disk. The file stays
 * open while the module is loaded: the loader knows a library by its path, and a reused
 * descriptor number would make the next module's path that of this one. */
static void *open_object(const char *bytes, size_t n, int *fd)
{
    *fd = memfd_create("gptc-emu-module", MFD_CLOEXEC);
    if (*fd < 0) return NULL;
    void *dl = NULL;
    if (write(*fd, bytes, n) == (ssize_t)n) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", *fd);
        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!dl) close(*fd);
    return dl;
}

/* A module is loaded once per worker thread that runs its kernels (a memory file and a
 * dlopen each): a copy's statics, the __shared__ arrays among them, are that worker's. */
typedef struct {
    void *dl;
    int fd;                            /* its memory file, open while it is loaded */
    const EmuKernelEntry *entries;
    uintptr_t sh_lo;
    size_t sh_size;
} ModuleCopy;

struct EmuModule {
    char *so;                          /* the shared object's bytes, for more copies */
    size_t so_n;
    ModuleCopy copy[EMU_MAX_WORKERS];
    pthread_mutex_t mu;
    EmuFunc *f;
    int nf;
};

static int load_copy(EmuModule *m, ModuleCopy *c)
{
    c->dl = open_object(m->so, m->so_n, &c->fd);
    if (!c->dl) return -1;
    c->entries = dlsym(c->dl, "emu_kernels");
    void (*range)(char **, char **) = (void (*)(char **, char **))dlsym(c->dl, "emu_shared_range");
    char *lo = NULL, *hi = NULL;
    if (range) range(&lo, &hi);
    c->sh_lo = (uintptr_t)lo;
    c->sh_size = lo && hi > lo ? (size_t)(hi - lo) : 0;
    return c->entries ? 0 : -1;
}

const EmuKernelEntry *emu_module_copy(EmuModule *m, int id, uintptr_t *sh_lo, size_t *sh_size)
{
    if (id < 0 || id >= EMU_MAX_WORKERS) return NULL;
    ModuleCopy *c = &m->copy[id];
    pthread_mutex_lock(&m->mu);
    int rc = c->dl ? 0 : load_copy(m, c);
    pthread_mutex_unlock(&m->mu);
    if (rc) return NULL;
    *sh_lo = c->sh_lo, *sh_size = c->sh_size;
    return c->entries;
}

/* the image's header: "GPTCEMU1\nkernels N\n" N × "NAME REGS SMEM\n" "so BYTES\n" */
static const char *parse_header(const char *img, char (**names)[128], int **regs, int **smem, int *n, size_t *so_n)
{
    if (strncmp(img, "GPTCEMU1\nkernels ", 17)) return NULL;
    *n = atoi(img + 17);
    const char *s = strchr(img + 17, '\n');
    if (*n < 0 || *n > 100000 || !s) return NULL;
    *names = calloc((size_t)*n + 1, sizeof **names);
    *regs = calloc((size_t)*n + 1, sizeof **regs);
    *smem = calloc((size_t)*n + 1, sizeof **smem);
    for (int i = 0; i < *n; i++) {
        if (sscanf(s + 1, "%127s %d %d", (*names)[i], &(*regs)[i], &(*smem)[i]) != 3) return NULL;
        s = strchr(s + 1, '\n');
        if (!s) return NULL;
    }
    if (strncmp(s + 1, "so ", 3)) return NULL;
    *so_n = (size_t)strtoull(s + 4, NULL, 10);
    s = strchr(s + 1, '\n');
    return s ? s + 1 : NULL;
}

static void fill_funcs(EmuModule *m, char (*names)[128], const int *regs, const int *smem, int nptx)
{
    const EmuKernelEntry *e = m->copy[0].entries;
    int n = 0;
    while (e && e[n].name) n++;
    m->f = calloc((size_t)(n ? n : 1), sizeof *m->f);
    m->nf = n;
    for (int i = 0; i < n; i++) {
        m->f[i] = (EmuFunc){&e[i], i, m, -1, -1, 0, 0};
        for (int j = 0; j < nptx; j++)
            if (!strcmp(names[j], e[i].name)) m->f[i].regs = regs[j], m->f[i].smem = smem[j];
    }
}

EXPORT CUresult cuModuleLoadData(void **mod, const void *image)
{
    if (emu_sticky()) return emu_sticky();
    char(*names)[128] = NULL;
    int *regs = NULL, *smem = NULL, n = 0;
    size_t so_n = 0;
    const char *so = parse_header(image, &names, &regs, &smem, &n, &so_n);
    EmuModule *m = calloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    if (so && (m->so = malloc(so_n ? so_n : 1))) memcpy(m->so, so, so_n), m->so_n = so_n;
    if (!m->so || load_copy(m, &m->copy[0])) {
        const char *why = so ? dlerror() : "";
        free(names), free(regs), free(smem), free(m->so), free(m);
        return emu_error(EMU_INVALID_IMAGE, so ? "cuda emulator: the module's code does not load: %s"
                                               : "cuda emulator: not an emulator module (a cubin for a real GPU?)%s",
                         why ? why : "");
    }
    fill_funcs(m, names, regs, smem, n);
    free(names), free(regs), free(smem);
    *mod = m;
    return EMU_OK;
}

/* GPTC_EMU_PROFILE=1: the module's kernels by the time they took, on stderr */
static int by_seconds(const void *a, const void *b)
{
    double x = (*(EmuFunc *const *)a)->seconds, y = (*(EmuFunc *const *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void profile(const EmuModule *m)
{
    const char *on = getenv("GPTC_EMU_PROFILE");
    if (!on || strcmp(on, "1") || !m->nf) return;
    EmuFunc **f = calloc((size_t)m->nf, sizeof *f);
    double total = 0;
    for (int i = 0; i < m->nf; i++) f[i] = &m->f[i], total += m->f[i].seconds;
    qsort(f, (size_t)m->nf, sizeof *f, by_seconds);
    fprintf(stderr, "cuda emulator: %.3f s in the kernels of a module\n", total);
    for (int i = 0; i < m->nf && f[i]->seconds > 0; i++)
        fprintf(stderr, "  %8.3f s %6ld launches  %s\n", f[i]->seconds, f[i]->launches, f[i]->e->name);
    free(f);
}

EXPORT CUresult cuModuleUnload(void *mod)
{
    EmuModule *m = mod;
    if (!m) return EMU_INVALID_VALUE;
    profile(m);
    for (int i = 0; i < EMU_MAX_WORKERS; i++)
        if (m->copy[i].dl) dlclose(m->copy[i].dl), close(m->copy[i].fd);
    free(m->so);
    pthread_mutex_destroy(&m->mu);
    free(m->f);
    free(m);
    return EMU_OK;
}

EXPORT CUresult cuModuleGetFunction(void **f, void *mod, const char *name)
{
    EmuModule *m = mod;
    for (int i = 0; i < m->nf; i++)
        if (!strcmp(m->f[i].e->name, name)) {
            *f = &m->f[i];
            return EMU_OK;
        }
    return emu_error(EMU_NOT_FOUND, "cuda emulator: kernel %s is not in the module", name);
}

