/* runs.c — reading runs: gptc run folders (log.txt, else log.jsonl; run.json written by
 * `gptc sweep`) and modded-nanogpt log files. Of a log.txt-format file two kinds of line
 * count, everything else (the script and nvidia-smi dump that open a modded-nanogpt log,
 * training-step lines) is skipped:
 *   step:125/5960 val_loss:4.324540 train_time:28089ms step_avg:224.72ms
 *   step:5960/5960 x00_lambdas:[1.0, 0.5, …]
 * A validation step logged again (a log that goes on after a restart) replaces what
 * followed it. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "study/study.h"

/* ---- building a run --------------------------------------------------------------------- */

static void add_val(StRun *r, int64_t step, double loss, double ms) {
    while (r->nval > 0 && r->step[r->nval - 1] >= step) r->nval--;
    if ((r->nval & (r->nval - 1)) == 0) {   /* grow at powers of two */
        size_t cap = r->nval ? 2 * (size_t)r->nval : 8;
        r->step = xrealloc(r->step, cap * sizeof *r->step);
        r->loss = xrealloc(r->loss, cap * sizeof *r->loss);
        r->ms = xrealloc(r->ms, cap * sizeof *r->ms);
    }
    r->step[r->nval] = step;
    r->loss[r->nval] = loss;
    r->ms[r->nval] = ms;
    r->nval++;
}

/* Replaces (or adds) vector name with the n values v; takes v. */
static void set_vector(StRun *r, const char *name, size_t len, double *v, int n) {
    for (int i = 0; i < r->nvec; i++)
        if (strlen(r->vec[i].name) == len && !strncmp(r->vec[i].name, name, len)) {
            free(r->vec[i].v);
            r->vec[i].v = v, r->vec[i].n = n;
            return;
        }
    r->vec = xrealloc(r->vec, sizeof *r->vec * (size_t)(r->nvec + 1));
    r->vec[r->nvec++] = (StVector){xstrndup(name, len), n, v};
}

/* "[a, b, …]" at s → a new array; NULL unless every element is a number. */
static double *parse_list(const char *s, int *n, const char **end) {
    if (*s++ != '[') return NULL;
    int cap = 16;
    double *v = xmalloc(sizeof *v * (size_t)cap);
    *n = 0;
    while (*s == ' ') s++;
    while (*s != ']') {
        char *e;
        double x = strtod(s, &e);
        if (e == s && !strncmp(s, "null", 4)) x = NAN, e = (char *)s + 4;   /* log.jsonl's non-finite number */
        if (e == s) break;
        if (*n == cap) v = xrealloc(v, sizeof *v * (size_t)(cap *= 2));
        v[(*n)++] = x;
        s = e;
        while (*s == ',' || *s == ' ') s++;
    }
    if (*s != ']' || *n == 0) {
        free(v);
        return NULL;
    }
    if (end) *end = s + 1;
    return v;
}

/* ---- log.txt lines ----------------------------------------------------------------------- */

static void read_txt_line(StRun *r, const char *line) {
    long long n, m;
    int k = 0;
    if (sscanf(line, "step:%lld/%lld %n", &n, &m, &k) != 2 || k == 0) return;
    const char *rest = line + k;
    if (!strncmp(rest, "val_loss:", 9)) {
        char *e;
        double loss = strtod(rest + 9, &e), ms = NAN;
        if (e == rest + 9) return;
        const char *t = strstr(e, "train_time:");
        if (t) ms = strtod(t + 11, NULL);
        add_val(r, n, loss, ms);
        r->steps = m;
        return;
    }
    size_t len = 0;
    while (isalnum((unsigned char)rest[len]) || rest[len] == '_') len++;
    if (len == 0 || rest[len] != ':') return;
    int cnt;
    double *v = parse_list(rest + len + 1, &cnt, NULL);
    if (v) set_vector(r, rest, len, v, cnt);
}

/* ---- log.jsonl lines: {"step": 8, "val_loss": 5.54, "train_time_ms": 188.0,
 *      "schedules": {"lr_mul": 1.0, …}, "x_lambdas": [0.97, 0.96], …}; training-step objects
 *      have no "val_loss"; objects (the schedules) are passed over ------------------------------- */

/* past the object that starts at s ('{'), or NULL when it does not end on the line */
static const char *skip_object(const char *s) {
    int depth = 0;
    for (; *s; s++)
        if (*s == '{') depth++;
        else if (*s == '}' && --depth == 0) return s + 1;
    return NULL;
}

static void read_jsonl_line(StRun *r, const char *line) {
    if (!strstr(line, "\"val_loss\": ")) return;
    double step = -1, loss = NAN, ms = NAN;
    for (const char *p = strchr(line, '"'); p; p = strchr(p, '"')) {
        const char *key = p + 1, *q = strchr(key, '"');
        if (!q || strncmp(q, "\": ", 3) != 0) break;
        size_t len = (size_t)(q - key);
        const char *val = q + 3;
        if (*val == '[') {
            int cnt;
            double *v = parse_list(val, &cnt, &p);
            if (!v) break;
            /* logs written before the schedules object held the windows as "window": [L, S] */
            if (len == 6 && !strncmp(key, "window", 6)) free(v);
            else set_vector(r, key, len, v, cnt);
            continue;
        }
        if (*val == '{') {
            if (!(p = skip_object(val))) break;
            continue;
        }
        char *e;
        double x = strtod(val, &e);
        if (e == val && !strncmp(val, "null", 4)) x = NAN, e = (char *)val + 4;
        if (e == val) break;
        if (len == 4 && !strncmp(key, "step", 4)) step = x;
        else if (len == 8 && !strncmp(key, "val_loss", 8)) loss = x;
        else if (len == 13 && !strncmp(key, "train_time_ms", 13)) ms = x;
        p = e;
    }
    if (step >= 0 && !isnan(loss)) add_val(r, (int64_t)step, loss, ms);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int st_run_read(StRun *r, const char *path, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    r->path = xstrdup(path);
    FILE *f = fopen(path, "r");
    if (!f) return fail_at(err, errlen, path, "cannot read: %s", strerror(errno));
    bool jsonl = ends_with(path, ".jsonl");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') {   /* the last line, cut: its numbers may be too */
            r->cut = xstrdup(path);
            break;
        }
        if (jsonl) read_jsonl_line(r, line);
        else read_txt_line(r, line);
    }
    free(line);
    fclose(f);
    if (jsonl && r->nval > 0) r->steps = r->step[r->nval - 1];   /* log.jsonl does not state M */
    return 0;
}

/* ---- run folders --------------------------------------------------------------------------- */

/* The "variant" string of DIR/run.json, or NULL. */
static char *run_json_variant(const char *dir) {
    char path[4096], buf[8192];
    snprintf(path, sizeof path, "%s/run.json", dir);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strstr(buf, "\"variant\": \"");
    if (!p) return NULL;
    p += 12;
    const char *q = strchr(p, '"');
    return q ? xstrndup(p, (size_t)(q - p)) : NULL;
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_run_dir(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/log.txt", dir);
    if (file_exists(p)) return true;
    snprintf(p, sizeof p, "%s/log.jsonl", dir);
    return file_exists(p);
}

int st_run_read_dir(StRun *r, const char *dir, char *err, size_t errlen) {
    char p[4096];
    snprintf(p, sizeof p, "%s/log.txt", dir);
    if (!file_exists(p)) snprintf(p, sizeof p, "%s/log.jsonl", dir);
    int rc = st_run_read(r, p, err, errlen);
    free(r->path);
    r->path = xstrdup(dir);
    r->variant = run_json_variant(dir);
    return rc;
}

bool st_run_finished(const StRun *r) {
    return r->nval > 0 && r->steps > 0 && r->step[r->nval - 1] == r->steps;
}

/* ---- labels ---------------------------------------------------------------------------------- */

static bool is_emb_lambdas(const char *name) {   /* x00_lambdas, x01_lambdas, … */
    return name[0] == 'x' && isdigit((unsigned char)name[1]) && isdigit((unsigned char)name[2]) &&
           !strcmp(name + 3, "_lambdas");
}

/* The last path component of path's folder (for a file) or of path itself (dir = true). */
static void path_part(const char *path, bool parent, char *out, size_t len) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    if (parent) {
        char *s = strrchr(buf, '/');
        if (s) *s = 0;
        else snprintf(buf, sizeof buf, ".");
    }
    const char *s = strrchr(buf, '/');
    snprintf(out, len, "%s", s ? s + 1 : buf);
}

void st_run_label(StRun *r) {
    int k = 0;
    for (int i = 0; i < r->nvec; i++) k += is_emb_lambdas(r->vec[i].name);
    char name[256];
    if (!r->variant && k > 0) {
        snprintf(name, sizeof name, "n_emb=%d", k);
        r->variant = xstrdup(name);
    }
    if (!r->variant) {   /* the folder holding the run: "n_emb=2" in a sweep's layout */
        path_part(r->path, true, name, sizeof name);
        if (strchr(name, '=')) r->variant = xstrdup(name);
    }
    if (!r->variant) {
        path_part(r->path, false, name, sizeof name);
        r->variant = xstrdup(name);
    }
    const char *e = strstr(r->variant, "n_emb=");
    r->n_emb = k > 0 ? k : e ? atoi(e + 6) : 0;
}

void st_run_free(StRun *r) {
    for (int i = 0; i < r->nvec; i++) free(r->vec[i].name), free(r->vec[i].v);
    free(r->vec);
    free(r->step), free(r->loss), free(r->ms);
    free(r->path), free(r->variant), free(r->cut);
    memset(r, 0, sizeof *r);
}

void st_runs_free(StRun *runs, int n) {
    for (int i = 0; i < n; i++) st_run_free(&runs[i]);
    free(runs);
}

/* ---- finding runs ------------------------------------------------------------------------------ */

static void push_run(StRun **runs, int *n, StRun *r) {
    st_run_label(r);
    *runs = xrealloc(*runs, sizeof **runs * (size_t)(*n + 1));
    (*runs)[(*n)++] = *r;
}

/* What a folder search meets: a run folder, or a *.txt / *.log file; either is a run if it
 * holds a validation line (a run folder just started may not yet). */
static int find_file(const char *path, bool dir, StRun **runs, int *n, char *err, size_t errlen) {
    if (!dir && !ends_with(path, ".txt") && !ends_with(path, ".log")) return 0;
    StRun r;
    if ((dir ? st_run_read_dir(&r, path, err, errlen) : st_run_read(&r, path, err, errlen)) != 0) {
        st_run_free(&r);
        return -1;
    }
    if (r.nval > 0) push_run(runs, n, &r);
    else st_run_free(&r);
    return 0;
}

static int find_in_dir(const char *dir, StRun **runs, int *n, int depth, char *err, size_t errlen) {
    if (depth > 16) return 0;   /* a link cycle, or nothing a study would make */
    struct dirent **ents;
    int ne = scandir(dir, &ents, NULL, versionsort);
    if (ne < 0) return fail_at(err, errlen, dir, "cannot list: %s", strerror(errno));
    int rc = 0;
    for (int i = 0; i < ne; i++) {
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, ents[i]->d_name);
        if (rc == 0 && ents[i]->d_name[0] != '.' && stat(p, &st) == 0)
            rc = S_ISDIR(st.st_mode) && !is_run_dir(p) ? find_in_dir(p, runs, n, depth + 1, err, errlen)
                                                       : find_file(p, S_ISDIR(st.st_mode), runs, n, err, errlen);
        free(ents[i]);
    }
    free(ents);
    return rc;
}

int st_runs_find(const char *path, StRun **runs, int *n, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) return fail_at(err, errlen, path, "cannot read: %s", strerror(errno));
    if (S_ISDIR(st.st_mode) && !is_run_dir(path)) return find_in_dir(path, runs, n, 0, err, errlen);
    StRun r;
    int rc = S_ISDIR(st.st_mode) ? st_run_read_dir(&r, path, err, errlen) : st_run_read(&r, path, err, errlen);
    if (rc == 0 && r.nval == 0)
        rc = fail_at(err, errlen, path, "no validation lines (step:N/M val_loss:X): not a gptc run or a modded-nanogpt log");
    if (rc != 0) {
        st_run_free(&r);
        return -1;
    }
    push_run(runs, n, &r);
    return 0;
}

/* ---- progress of a running log ------------------------------------------------------------------ */

int st_log_progress(const char *log_txt, int64_t *step, int64_t *steps) {
    FILE *f = fopen(log_txt, "r");
    if (!f) return -1;
    char buf[4097];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > 4096 ? size - 4096 : 0, SEEK_SET);
    size_t n = fread(buf, 1, 4096, f);
    fclose(f);
    buf[n] = 0;
    int rc = -1;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        long long a, b;
        if (sscanf(line, "step:%lld/%lld", &a, &b) == 2) *step = a, *steps = b, rc = 0;
    }
    return rc;
}
