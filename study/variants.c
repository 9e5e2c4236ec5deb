/* variants.c — finished runs grouped by variant label; per variant the validation curve
 * averaged over seeds (at the steps every seed validated), the final loss, training time
 * and time per step of each seed with their mean and spread, and per-layer vectors. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "study/study.h"

static int cmp_variant(const void *a, const void *b) {
    const StVariant *x = a, *y = b;
    if (x->n_emb != y->n_emb) return x->n_emb < y->n_emb ? -1 : 1;
    return strverscmp(x->label, y->label);
}

static StVariant *variant_of(StVariant **v, int *n, const StRun *r) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*v)[i].label, r->variant)) return &(*v)[i];
    *v = xrealloc(*v, sizeof **v * (size_t)(*n + 1));
    StVariant *nv = &(*v)[(*n)++];
    memset(nv, 0, sizeof *nv);
    nv->label = xstrdup(r->variant);
    nv->n_emb = r->n_emb;
    return nv;
}

static bool has_step(const StRun *r, int64_t s, int *at) {
    for (int i = 0; i < r->nval; i++)
        if (r->step[i] == s) return *at = i, true;
    return false;
}

/* The mean curve over the steps that every run validated. */
static void mean_curve(StVariant *v) {
    const StRun *r0 = v->runs[0];
    v->step = xmalloc(sizeof *v->step * (size_t)r0->nval);
    v->loss = xmalloc(sizeof *v->loss * (size_t)r0->nval);
    v->sec = xmalloc(sizeof *v->sec * (size_t)r0->nval);
    for (int i = 0; i < r0->nval; i++) {
        double loss = 0, ms = 0;
        int k, at;
        for (k = 0; k < v->nruns && has_step(v->runs[k], r0->step[i], &at); k++) {
            loss += v->runs[k]->loss[at];
            ms += v->runs[k]->ms[at];
        }
        if (k < v->nruns) continue;
        v->step[v->npts] = r0->step[i];
        v->loss[v->npts] = loss / v->nruns;
        v->sec[v->npts++] = ms / v->nruns / 1000;
    }
}

static int summarize(StVariant *v, char *err, size_t errlen) {
    v->final_loss = xmalloc(sizeof(double) * (size_t)v->nruns);
    v->final_sec = xmalloc(sizeof(double) * (size_t)v->nruns);
    v->step_ms = xmalloc(sizeof(double) * (size_t)v->nruns);
    for (int k = 0; k < v->nruns; k++) {
        const StRun *r = v->runs[k];
        if (r->steps != v->runs[0]->steps)
            return fail_at(err, errlen, v->label, "its runs differ in length: %s has %lld steps, %s has %lld", r->path,
                           (long long)r->steps, v->runs[0]->path, (long long)v->runs[0]->steps);
        v->final_loss[k] = r->loss[r->nval - 1];
        v->final_sec[k] = r->ms[r->nval - 1] / 1000;
        v->step_ms[k] = r->ms[r->nval - 1] / (double)r->steps;
    }
    v->loss_s = st_summary(v->final_loss, v->nruns);
    v->sec_s = st_summary(v->final_sec, v->nruns);
    v->step_s = st_summary(v->step_ms, v->nruns);
    mean_curve(v);
    return 0;
}

int st_variants_group(StRun *runs, int n, StVariant **out, int *nout, char *err, size_t errlen) {
    StVariant *v = NULL;
    int nv = 0;
    for (int i = 0; i < n; i++) {
        if (!st_run_finished(&runs[i])) continue;
        StVariant *g = variant_of(&v, &nv, &runs[i]);
        g->runs = xrealloc(g->runs, sizeof *g->runs * (size_t)(g->nruns + 1));
        g->runs[g->nruns++] = &runs[i];
    }
    if (nv > 0) qsort(v, (size_t)nv, sizeof *v, cmp_variant);
    *out = v, *nout = nv;
    for (int i = 0; i < nv; i++)
        if (summarize(&v[i], err, errlen) != 0) return -1;
    return 0;
}

void st_variants_free(StVariant *v, int n) {
    for (int i = 0; i < n; i++) {
        free(v[i].label), free(v[i].runs);
        free(v[i].step), free(v[i].loss), free(v[i].sec);
        free(v[i].final_loss), free(v[i].final_sec), free(v[i].step_ms);
    }
    free(v);
}

static const StVector *find_vector(const StRun *r, const char *name) {
    for (int i = 0; i < r->nvec; i++)
        if (!strcmp(r->vec[i].name, name)) return &r->vec[i];
    return NULL;
}

double *st_variant_vector(const StVariant *v, const char *name, int *len, double **std) {
    const StVector *first = find_vector(v->runs[0], name);
    if (!first) return NULL;
    int L = first->n;
    for (int k = 1; k < v->nruns; k++) {
        const StVector *x = find_vector(v->runs[k], name);
        if (!x || x->n != L) return NULL;
    }
    double *mean = xmalloc(sizeof(double) * 2 * (size_t)L), *col = xmalloc(sizeof(double) * (size_t)v->nruns);
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < v->nruns; k++) col[k] = find_vector(v->runs[k], name)->v[l];
        StSummary s = st_summary(col, v->nruns);
        mean[l] = s.mean;
        mean[L + l] = v->nruns > 1 ? s.std : 0;
    }
    free(col);
    *len = L;
    *std = mean + L;
    return mean;
}

void st_variant_title(const StVariant *v, char *buf, size_t len) {
    int k, used = 0;
    if (sscanf(v->label, "n_emb=%d%n", &k, &used) == 1 && v->label[used] == 0 && k >= 1)
        snprintf(buf, len, "x%02d (n_emb=%d)", k - 1, k);
    else
        snprintf(buf, len, "%s", v->label);
}

void st_variant_slug(const StVariant *v, char *buf, size_t len) {
    snprintf(buf, len, "%s", v->label);
    for (char *p = buf; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._=-", *p)) *p = '_';
}
