/* cmd_compare.c — gptc compare: per-tensor relative error between two safetensors files,
 * ‖a − b‖∞ / ‖b‖∞ (b the reference), as the golden data's tolerances are stated. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "formats/formats.h"

const char compare_usage[] =
    "usage: gptc compare A.safetensors REF.safetensors [--tol T] [--only PREFIX] [--skip PREFIX]\n"
    "                    [--quiet]\n"
    "Prints, for every tensor of REF, max|a - b| / max|b| (0/0 counts as 0, a NaN on either\n"
    "side as inf; integer tensors count 0 if equal, inf if not) and the worst.\n"
    "Every tensor of REF must be in A with the same shape. Exit status 1 if an error exceeds\n"
    "T (default: no limit) or a tensor is missing; 2 for bad usage.\n"
    "  --only PREFIX   compare only tensors whose name starts with PREFIX\n"
    "  --skip PREFIX   leave out tensors whose name starts with PREFIX (repeatable)\n"
    "  --quiet         print only the worst error line\n";

static double rel_error(const double *a, const double *b, int64_t n) {
    double diff = 0, ref = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = a[i] == b[i] ? 0 : fabs(a[i] - b[i]);
        if (isnan(d)) return INFINITY;   /* a NaN on either side (fmax would pass it over) */
        diff = fmax(diff, d);
        ref = fmax(ref, fabs(b[i]));
    }
    return ref > 0 ? diff / ref : diff;
}

/* Relative error of one tensor, or -1 after printing why it cannot be compared. */
static double compare_tensor(const StFile *fa, const StFile *fb, const StTensor *t) {
    char err[512];
    if (!st_dtype_is_float(t->dtype)) {   /* integers (counters, tokens): equal or not */
        const StTensor *u = st_find(fa, t->name);
        if (!u) {
            fprintf(stderr, "gptc compare: %s: missing tensor '%s'\n", fa->path, t->name);
            return -1;
        }
        bool same = u->dtype == t->dtype && u->numel == t->numel && !memcmp(u->data, t->data, t->end - t->begin);
        return same ? 0 : INFINITY;
    }
    int64_t n = t->numel;
    double *a = xmalloc(sizeof(double) * (size_t)(n ? n : 1)), *b = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    double e = -1;
    if (st_read_f64(fb, t->name, t->ndim, t->shape, b, err, sizeof err) != 0 ||
        st_read_f64(fa, t->name, t->ndim, t->shape, a, err, sizeof err) != 0)
        fprintf(stderr, "gptc compare: %s\n", err);
    else
        e = rel_error(a, b, n);
    free(a);
    free(b);
    return e;
}

int cmd_compare(int argc, char **argv) {
    const char *files[2] = {0}, *tol_s = NULL, *only = NULL, *skip[8];
    int nskip = 0;
    bool quiet = false;
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s", compare_usage);
            return 0;
        } else if (!strcmp(argv[i], "--tol") || !strcmp(argv[i], "--only") || !strcmp(argv[i], "--skip")) {
            if (i + 1 >= argc) return usage_error("compare", "%s needs a value", argv[i]);
            if (!strcmp(argv[i], "--skip")) {
                if (nskip == 8) return usage_error("compare", "at most 8 --skip options");
                skip[nskip++] = argv[i + 1];
            } else {
                *(!strcmp(argv[i], "--tol") ? &tol_s : &only) = argv[i + 1];
            }
            i++;
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (argv[i][0] == '-' || nfiles == 2) {
            return usage_error("compare", "unexpected argument '%s'", argv[i]);
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles != 2) return usage_error("compare", "needs two files");
    double tol = INFINITY;
    if (tol_s) {
        char *end;
        tol = strtod(tol_s, &end);
        if (*end || !(tol >= 0)) return usage_error("compare", "--tol takes a number >= 0, got '%s'", tol_s);
    }
    StFile fa, fb;
    char err[512];
    if (st_open(&fa, files[0], err, sizeof err) != 0) {
        fprintf(stderr, "gptc compare: %s\n", err);
        return 1;
    }
    if (st_open(&fb, files[1], err, sizeof err) != 0) {
        fprintf(stderr, "gptc compare: %s\n", err);
        st_close(&fa);
        return 1;
    }
    double worst = 0;
    const char *worst_name = "";
    int bad = 0, compared = 0;
    for (int i = 0; i < fb.ntensors; i++) {
        const StTensor *t = &fb.tensors[i];
        if (only && strncmp(t->name, only, strlen(only)) != 0) continue;
        bool skipped = false;
        for (int k = 0; k < nskip; k++) skipped |= strncmp(t->name, skip[k], strlen(skip[k])) == 0;
        if (skipped) continue;
        double e = compare_tensor(&fa, &fb, t);
        compared++;
        if (e < 0 || e > tol) bad++;
        if (e > worst || e < 0) {
            worst = e < 0 ? INFINITY : e;
            worst_name = t->name;
        }
        if (!quiet && e >= 0) printf("%-28s %.3e%s\n", t->name, e, e > tol ? "   > tol" : "");
    }
    printf("worst: %.3e (%s) over %d tensors%s\n", worst, worst_name, compared, bad ? ", FAILED" : "");
    st_close(&fa);
    st_close(&fb);
    return bad ? 1 : 0;
}
