/* runlog.c — the run folder's logs: log.txt in the modded-nanogpt line format (so existing
 * analysis scripts read it) and log.jsonl, one JSON object per line for tools. */
#include "trainer/trainer.h"

#include "base/base.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Python's repr of a float: the shortest decimal that reads back as the same double,
 * positional for 1e-4 <= |v| < 1e16 (with ".0" for integers), exponent otherwise. */
void float_repr(double v, char *buf, size_t len) {
    if (isnan(v)) { snprintf(buf, len, "nan"); return; }
    if (isinf(v)) { snprintf(buf, len, v < 0 ? "-inf" : "inf"); return; }
    if (v == 0) { snprintf(buf, len, signbit(v) ? "-0.0" : "0.0"); return; }
    char e[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e = [-]D[.DDD]e±XX: digits and exponent */
    char digits[24];
    int nd = 0, exp10 = atoi(strchr(e, 'e') + 1);
    for (const char *p = e; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char out[64];
    int o = 0;
    if (v < 0) out[o++] = '-';
    if (exp10 < -4 || exp10 >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (exp10 < 0) {            /* 0.000ddd */
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -exp10 - 1; i++) out[o++] = '0';
        for (int i = 0; i < nd; i++) out[o++] = digits[i];
    } else {                           /* ddd[000].ddd or ddd.0 */
        for (int i = 0; i <= exp10; i++) out[o++] = i < nd ? digits[i] : '0';
        out[o++] = '.';
        if (nd <= exp10 + 1) out[o++] = '0';
        for (int i = exp10 + 1; i < nd; i++) out[o++] = digits[i];
    }
    out[o] = 0;
    snprintf(buf, len, "%s", out);
}

int runlog_open(RunLog *l, const char *dir, int64_t txt_size, int64_t jsonl_size, char *err, size_t errlen) {
    l->txt_path = xasprintf("%s/log.txt", dir);
    l->jsonl_path = xasprintf("%s/log.jsonl", dir);
    const char *paths[2] = {l->txt_path, l->jsonl_path};
    int64_t sizes[2] = {txt_size, jsonl_size};
    FILE **files[2] = {&l->txt, &l->jsonl};
    for (int i = 0; i < 2; i++) {
        /* a resumed run cuts what the interrupted run logged after its checkpoint */
        if (sizes[i] >= 0 && truncate(paths[i], sizes[i]) != 0 && sizes[i] > 0)
            return fail_at(err, errlen, paths[i], "cannot cut back to %lld bytes: %s", (long long)sizes[i], strerror(errno));
        *files[i] = fopen(paths[i], sizes[i] >= 0 ? "a" : "w");
        if (!*files[i]) return fail_at(err, errlen, paths[i], "cannot write: %s", strerror(errno));
    }
    return 0;
}

/* Flushes f; -1 with "PATH: cannot write: REASON" when any write to it since the last
 * check failed (stdio keeps the error until then; errno was cleared before the record). */
static int flush_checked(FILE *f, const char *path, char *err, size_t errlen) {
    if (fflush(f) == 0 && !ferror(f)) return 0;
    return fail_at(err, errlen, path, "cannot write: %s", strerror(errno ? errno : EIO));
}

static int flush_both(RunLog *l, char *err, size_t errlen) {
    if (flush_checked(l->txt, l->txt_path, err, errlen) != 0) return -1;
    return flush_checked(l->jsonl, l->jsonl_path, err, errlen);
}

int runlog_close(RunLog *l, char *err, size_t errlen) {
    int rc = 0;
    FILE *files[2] = {l->txt, l->jsonl};
    const char *paths[2] = {l->txt_path, l->jsonl_path};
    for (int i = 0; i < 2; i++) {
        if (!files[i]) continue;
        errno = 0;
        bool bad = ferror(files[i]) != 0;
        if ((fclose(files[i]) != 0 || bad) && rc == 0)
            rc = fail_at(err, errlen, paths[i], "cannot write: %s", strerror(errno ? errno : EIO));
    }
    free(l->txt_path);
    free(l->jsonl_path);
    memset(l, 0, sizeof *l);
    return rc;
}

int runlog_sizes(RunLog *l, int64_t *txt, int64_t *jsonl, char *err, size_t errlen) {
    errno = 0;
    if (flush_both(l, err, errlen) != 0) return -1;
    *txt = ftell(l->txt);
    *jsonl = ftell(l->jsonl);
    if (*txt < 0 || *jsonl < 0)
        return fail_at(err, errlen, *txt < 0 ? l->txt_path : l->jsonl_path, "cannot tell its size: %s", strerror(errno));
    return 0;
}

/* A number for JSON: Python's repr when finite, else null (JSON has no NaN or infinity). */
static void json_num(double v, char *buf, size_t len) {
    if (isfinite(v)) float_repr(v, buf, len);
    else snprintf(buf, len, "null");
}

/* "schedules": {"NAME": value, …}: every schedule at the record's step, JSON numbers. */
static void json_schedules(FILE *f, const LogSchedules *s) {
    char b[40];
    fprintf(f, "\"schedules\": {");
    for (int i = 0; i < s->n; i++) {
        json_num(s->values[i], b, sizeof b);
        fprintf(f, "%s\"%s\": %s", i ? ", " : "", s->decls[i].name, b);
    }
    fputc('}', f);
}

/* "[a, b, …]": Python's repr of each value (log.txt), or JSON numbers (log.jsonl). */
static void write_list(FILE *f, const double *v, int n, bool json) {
    char b[40];
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (json) json_num(v[i], b, sizeof b);
        else float_repr(v[i], b, sizeof b);
        fprintf(f, "%s%s", i ? ", " : "", b);
    }
    fputc(']', f);
}

int runlog_train(RunLog *l, const TrainRecord *r, char *err, size_t errlen) {
    errno = 0;
    fprintf(l->txt, "step:%lld/%lld train_time:%.0fms step_avg:%.2fms\n", (long long)r->step + 1, (long long)r->steps,
            r->train_ms, r->train_ms / (double)(r->step + 1));
    char b[40];
    json_num(r->loss, b, sizeof b);
    fprintf(l->jsonl, "{\"step\": %lld, \"train_loss\": %s, ", (long long)r->step, b);
    json_schedules(l->jsonl, &r->schedules);
    fprintf(l->jsonl, ", \"train_time_ms\": %.3f}\n", r->train_ms);
    return flush_both(l, err, errlen);
}

int runlog_val(RunLog *l, const ValRecord *r, char *err, size_t errlen) {
    errno = 0;
    double avg = r->train_ms / (double)(r->step > 1 ? r->step : 1);
    fprintf(l->txt, "step:%lld/%lld val_loss:%.6f train_time:%.0fms step_avg:%.2fms\n", (long long)r->step,
            (long long)r->steps, r->val_loss, r->train_ms, avg);
    char b[40];
    json_num(r->val_loss, b, sizeof b);
    fprintf(l->jsonl, "{\"step\": %lld, \"val_loss\": %s, \"train_time_ms\": %.3f, ", (long long)r->step, b,
            r->train_ms);
    json_schedules(l->jsonl, &r->schedules);
    for (int i = 0; i < r->nvectors; i++) {
        fprintf(l->txt, "step:%lld/%lld %s:", (long long)r->step, (long long)r->steps, r->names[i]);
        write_list(l->txt, r->vectors[i], r->counts[i], false);
        fputc('\n', l->txt);
        fprintf(l->jsonl, ", \"%s\": ", r->names[i]);
        write_list(l->jsonl, r->vectors[i], r->counts[i], true);
    }
    fprintf(l->jsonl, "}\n");
    return flush_both(l, err, errlen);
}
