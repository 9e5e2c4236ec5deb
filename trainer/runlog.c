/* runlog.c — the run folder's logs: log.txt in the modded-nanogpt line format (so existing
 * analysis scripts read it) and log.jsonl, one JSON object per line for tools. */
#include "trainer/trainer.h"

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
    char path[4096];
    const char *names[2] = {"log.txt", "log.jsonl"};
    int64_t sizes[2] = {txt_size, jsonl_size};
    FILE **files[2] = {&l->txt, &l->jsonl};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        /* a resumed run cuts what the interrupted run logged after its checkpoint */
        if (sizes[i] >= 0 && truncate(path, sizes[i]) != 0 && sizes[i] > 0) {
            snprintf(err, errlen, "%s: cannot cut back to %lld bytes", path, (long long)sizes[i]);
            return -1;
        }
        *files[i] = fopen(path, sizes[i] >= 0 ? "a" : "w");
        if (!*files[i]) {
            snprintf(err, errlen, "%s: cannot write", path);
            return -1;
        }
    }
    return 0;
}

void runlog_close(RunLog *l) {
    if (l->txt) fclose(l->txt);
    if (l->jsonl) fclose(l->jsonl);
    l->txt = l->jsonl = NULL;
}

void runlog_sizes(RunLog *l, int64_t *txt, int64_t *jsonl) {
    fflush(l->txt);
    fflush(l->jsonl);
    *txt = ftell(l->txt);
    *jsonl = ftell(l->jsonl);
}

static void json_list(FILE *f, const double *v, int n) {
    char b[40];
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        float_repr(v[i], b, sizeof b);
        fprintf(f, "%s%s", i ? ", " : "", b);
    }
    fputc(']', f);
}

void runlog_train(RunLog *l, const TrainRecord *r) {
    fprintf(l->txt, "step:%lld/%lld train_time:%.0fms step_avg:%.2fms\n", (long long)r->step + 1, (long long)r->steps,
            r->train_ms, r->train_ms / (double)(r->step + 1));
    char b[40];
    float_repr(r->loss, b, sizeof b);
    fprintf(l->jsonl, "{\"step\": %lld, \"train_loss\": %s, ", (long long)r->step, b);
    float_repr(r->lr, b, sizeof b);
    fprintf(l->jsonl, "\"lr\": %s, \"window\": [%lld, %lld], \"train_time_ms\": %.3f}\n", b, (long long)r->window[0],
            (long long)r->window[1], r->train_ms);
    fflush(l->txt);
    fflush(l->jsonl);
}

void runlog_val(RunLog *l, const ValRecord *r) {
    double avg = r->train_ms / (double)(r->step > 1 ? r->step : 1);
    fprintf(l->txt, "step:%lld/%lld val_loss:%.6f train_time:%.0fms step_avg:%.2fms\n", (long long)r->step,
            (long long)r->steps, r->val_loss, r->train_ms, avg);
    char b[40];
    float_repr(r->val_loss, b, sizeof b);
    fprintf(l->jsonl, "{\"step\": %lld, \"val_loss\": %s, \"train_time_ms\": %.3f, \"window\": [%lld, %lld]",
            (long long)r->step, b, r->train_ms, (long long)r->window[0], (long long)r->window[1]);
    for (int i = 0; i < r->nvectors; i++) {
        fprintf(l->txt, "step:%lld/%lld %s:", (long long)r->step, (long long)r->steps, r->names[i]);
        json_list(l->txt, r->vectors[i], r->counts[i]);
        fputc('\n', l->txt);
        fprintf(l->jsonl, ", \"%s\": ", r->names[i]);
        json_list(l->jsonl, r->vectors[i], r->counts[i]);
    }
    fprintf(l->jsonl, "}\n");
    fflush(l->txt);
    fflush(l->jsonl);
}
