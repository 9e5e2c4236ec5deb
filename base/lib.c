/* lib.c — loading a shared library at run time (base.h). gptc links none of the CUDA, NCCL
 * or MPI libraries: each is opened with lib_open when first needed, so one binary runs on
 * machines that lack them. */
#include "base/base.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *lib_open(const char *const *names, int n, int flags, int *which, char *why, size_t whylen) {
    if (why && whylen) why[0] = 0;
    bool first = true;
    for (int i = 0; i < n; i++) {
        if (!names[i]) continue;
        void *h = dlopen(names[i], flags);
        if (h) {
            if (which) *which = i;
            return h;
        }
        if (first && why && whylen) snprintf(why, whylen, "%s", dlerror());
        first = false;
    }
    return NULL;
}

const char *beside_program(const char *name, char *out, size_t len) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    /* next to gptc; a test binary sits one folder further down (build/tests/) */
    snprintf(out, len, "%s/%s", exe, name);
    if (access(out, R_OK) != 0) snprintf(out, len, "%s/../%s", exe, name);
    return out;
}

const char *cuda_emulator(void) {
    static char path[PATH_MAX + 64];
    const char *on = getenv("GPTC_CUDA_EMULATE");
    if (!on || !*on || !strcmp(on, "0")) return NULL;
    if (path[0]) return path;
    const char *forced = getenv("GPTC_LIBCUDAEMU");
    if (forced && *forced) {
        snprintf(path, sizeof path, "%s", forced);
        return path;
    }
    return beside_program("libgptc-cudaemu.so", path, sizeof path);
}
