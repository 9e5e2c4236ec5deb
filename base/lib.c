/* lib.c — loading a shared library at run time (base.h). gptc links none of the CUDA, NCCL
 * or MPI libraries: each is opened with lib_open when first needed, so one binary runs on
 * machines that lack them. */
#include "base/base.h"

#include <dlfcn.h>
#include <stdio.h>

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
