/* runfolder.c — a run folder never loses a run (trainer.h): one trainer writes it at a time
 * (an advisory lock), a fresh run does not start over a run that is there, temp files of
 * checkpoint writers that died are removed, and a resumed run is checked against what its
 * checkpoint records before anything is written. */
#include "trainer/trainer.h"
#include "base/base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_FILE "train.lock"
#define CKPT_FILE "checkpoint.safetensors"
#define CKPT_TMP_PREFIX CKPT_FILE ".tmp."

/* ---- how a run was made ---------------------------------------------------------------------- */

/* Appends " fmt…" (no space first) to the string *out of *len bytes in *cap; an entry
 * longer than 255 bytes is left out. */
static void append_entry(char **out, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void append_entry(char **out, size_t *len, size_t *cap, const char *fmt, ...) {
    char one[256];
    size_t sep = *len ? 1 : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(one, sizeof one, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof one) return;
    while (*len + sep + (size_t)n + 1 > *cap) *out = xrealloc(*out, *cap *= 2);
    if (sep) (*out)[(*len)++] = ' ';
    memcpy(*out + *len, one, (size_t)n + 1);
    *len += (size_t)n;
}

void runfolder_identity(const FeCompile *c, int grad_accum, int ranks, RunIdentity *id) {
    uint64_t h = 0xcbf29ce484222325u;   /* FNV-1a 64 over every source file's text, in load order */
    for (int i = 0; i < c->nsources; i++)
        for (size_t k = 0; k < c->sources[i]->len; k++) h = (h ^ (unsigned char)c->sources[i]->text[k]) * 0x100000001b3u;
    snprintf(id->model_hash, sizeof id->model_hash, "%016" PRIx64, h);
    id->model = xstrdup(c->nsources ? c->sources[0]->name : "");
    size_t cap = 64, len = 0;
    id->config = xmalloc(cap);
    id->config[0] = 0;
    for (int i = 0; i < c->prog.nconfig; i++) {
        const ConfigEntry *e = &c->prog.config[i];
        if (e->is_int) append_entry(&id->config, &len, &cap, "%s=%lld", e->name, (long long)e->value);
        else append_entry(&id->config, &len, &cap, "%s=%.17g", e->name, e->value);
    }
    for (int i = 0; i < c->prog.nschedules; i++) {   /* a pinned schedule changes the run as config does */
        const ScheduleDecl *s = &c->prog.schedules[i];
        if (s->pinned) append_entry(&id->config, &len, &cap, "schedule:%s=%.17g", s->name, s->pin);
    }
    id->grad_accum = grad_accum;
    id->ranks = ranks;
}

void runfolder_identity_free(RunIdentity *id) {
    free(id->model);
    free(id->config);
    id->model = id->config = NULL;
}

/* The value of "NAME=VALUE" in a config string as text (*len bytes), or NULL. */
static const char *config_value(const char *config, const char *name, size_t name_len, size_t *len) {
    for (const char *p = config; p && *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ' ');
        if (!end) end = p + strlen(p);
        if (eq && eq < end && (size_t)(eq - p) == name_len && !strncmp(p, name, name_len)) {
            *len = (size_t)(end - eq - 1);
            return eq + 1;
        }
        p = *end ? end + 1 : end;
    }
    return NULL;
}

/* Appends "sep fmt…" to out (a comma list of changes). */
static void add_change(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_change(char *out, size_t outlen, const char *fmt, ...) {
    size_t n = strlen(out);
    if (n + 3 >= outlen) return;
    if (n) n += (size_t)snprintf(out + n, outlen - n, ", ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, outlen - n, fmt, ap);
    va_end(ap);
}

/* Config entries that differ between the two strings: "seq_len 256 → 512". */
static void config_changes(const char *was, const char *now, char *out, size_t outlen) {
    const char *pairs[2][2] = {{was, now}, {now, was}};
    for (int pass = 0; pass < 2; pass++)
        for (const char *p = pairs[pass][0]; *p;) {
            const char *eq = strchr(p, '='), *end = strchr(p, ' ');
            if (!end) end = p + strlen(p);
            if (eq && eq < end) {
                size_t nlen = (size_t)(eq - p), vlen = (size_t)(end - eq - 1), olen = 0;
                const char *other = config_value(pairs[pass][1], p, nlen, &olen);
                if (pass == 0 && (!other || olen != vlen || strncmp(other, eq + 1, vlen)))
                    add_change(out, outlen, "%.*s %.*s → %.*s", (int)nlen, p, (int)vlen, eq + 1, other ? (int)olen : 6,
                               other ? other : "(none)");
                else if (pass == 1 && !other)
                    add_change(out, outlen, "%.*s (none) → %.*s", (int)nlen, p, (int)vlen, eq + 1);
            }
            p = *end ? end + 1 : end;
        }
}

/* ---- the lock ----------------------------------------------------------------------------------- */

/* The error of a lock that flock refused (errno e): the holder's PID when it is another
 * trainer's, as it wrote it into the lock file. */
static int lock_refused(int fd, const char *dir, const char *path, int e, char *err, size_t errlen) {
    if (e != EWOULDBLOCK) return fail_at(err, errlen, path, "cannot lock: %s", strerror(e));
    char buf[32], pid[48] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    long holder = strtol(buf, NULL, 10);
    if (holder > 0) snprintf(pid, sizeof pid, "PID %ld, which ", holder);
    return fail_at(err, errlen, dir, "in use by another gptc train (%sholds %s): wait for it to finish or stop it, or "
                   "give --out another folder", pid[0] ? pid : "it ", path);
}

int runfolder_lock(const char *dir, int *fd_out, char *err, size_t errlen) {
    *fd_out = -1;
    if (mkdir_p(dir, err, errlen) != 0) return -1;
    char *path = xasprintf("%s/%s", dir, LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666), rc = 0;
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (fd < 0) rc = fail_at(err, errlen, path, "cannot open: %s", strerror(errno));
    else if (flock(fd, LOCK_EX | LOCK_NB) != 0) rc = lock_refused(fd, dir, path, errno, err, errlen);
    else if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        rc = fail_at(err, errlen, path, "cannot write: %s", strerror(errno ? errno : EIO));
    free(path);
    if (rc != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *fd_out = fd;
    return 0;
}

void runfolder_unlock(int fd) {
    if (fd < 0) return;
    if (ftruncate(fd, 0) != 0) { /* the PID stays behind; the lock goes with the descriptor all the same */ }
    close(fd);
}

/* ---- stale temp files ------------------------------------------------------------------------------ */

void runfolder_remove_stale(const char *dir, FILE *note) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (strncmp(de->d_name, CKPT_TMP_PREFIX, strlen(CKPT_TMP_PREFIX)) != 0) continue;
        const char *num = de->d_name + strlen(CKPT_TMP_PREFIX);
        char *end;
        long pid = strtol(num, &end, 10);
        if (end == num || *end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* its writer may still be at work */
        char *path = xasprintf("%s/%s", dir, de->d_name);
        if (unlink(path) == 0 && note)
            fprintf(note, "gptc train: removed %s, left by a checkpoint writer that is gone (PID %ld)\n", path, pid);
        free(path);
    }
    closedir(dp);
}

/* ---- a fresh run -------------------------------------------------------------------------------- */

/* The I64 scalar name of a checkpoint, or dflt. */
static int64_t ckpt_i64(const StFile *f, const char *name, int64_t dflt) {
    const StTensor *t = st_find(f, name);
    int64_t v = dflt;
    if (t && t->dtype == ST_I64 && t->numel == 1) memcpy(&v, t->data, sizeof v);
    return v;
}

/* The size of dir/name, or -1 when it is not there. */
static int64_t file_size(const char *dir, const char *name) {
    char *path = xasprintf("%s/%s", dir, name);
    struct stat st;
    int64_t n = stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
    free(path);
    return n;
}

int runfolder_clear(const char *dir, char *err, size_t errlen) {
    char *ckpt = xasprintf("%s/%s", dir, CKPT_FILE);
    int rc = unlink(ckpt) != 0 && errno != ENOENT ? fail_at(err, errlen, ckpt, "cannot remove: %s", strerror(errno)) : 0;
    free(ckpt);
    return rc;
}

int runfolder_check_fresh(const char *dir, bool overwrite, char *err, size_t errlen) {
    char *ckpt = xasprintf("%s/%s", dir, CKPT_FILE);
    int64_t txt = file_size(dir, "log.txt"), jsonl = file_size(dir, "log.jsonl");
    struct stat st;
    bool has_ckpt = stat(ckpt, &st) == 0;
    int rc = 0;
    if (!overwrite && (has_ckpt || txt > 0 || jsonl > 0)) {
        char what[512] = "", b[32];
        if (has_ckpt) {
            StFile f;
            int64_t step = -1;
            if (st_open(&f, ckpt, NULL, 0) == 0) step = ckpt_i64(&f, "trainer.step", -1);
            st_close(&f);
            if (step >= 0) add_change(what, sizeof what, "%s at step %lld", CKPT_FILE, (long long)step);
            else add_change(what, sizeof what, "%s", CKPT_FILE);
        }
        if (txt > 0) add_change(what, sizeof what, "log.txt of %s", fmt_bytes((double)txt, b, sizeof b));
        if (jsonl > 0) add_change(what, sizeof what, "log.jsonl of %s", fmt_bytes((double)jsonl, b, sizeof b));
        rc = fail_at(err, errlen, dir, "holds a run already (%s): continue it with --resume %s, or give --out another "
                     "folder (--overwrite replaces it)", what, dir);
    }
    free(ckpt);
    return rc;
}

/* ---- resuming ----------------------------------------------------------------------------------- */

/* The changes from what checkpoint f records to now, into out (empty: none). */
static void run_changes(const StFile *f, const RunIdentity *now, char *out, size_t outlen) {
    out[0] = 0;
    const char *hash = st_meta_get(f, "gptc.model_hash"), *model = st_meta_get(f, "gptc.model");
    const char *config = st_meta_get(f, "gptc.config");
    if (hash && strcmp(hash, now->model_hash) != 0) {
        if (model && strcmp(model, now->model) != 0) add_change(out, outlen, "the model %s → %s", model, now->model);
        else add_change(out, outlen, "the model's text (%s or a file it includes has changed)", now->model);
    }
    if (config) config_changes(config, now->config, out, outlen);
    /* W ranks × G micro-batches read as W·G ranks: only the product makes another step */
    int64_t accum = ckpt_i64(f, "run.grad_accum", -1), ranks = ckpt_i64(f, "run.ranks", -1);
    if (accum < 1 || ranks < 1 || accum * ranks == now->grad_accum * now->ranks) return;
    if (ranks == now->ranks)
        add_change(out, outlen, "--grad-accum %lld → %lld", (long long)accum, (long long)now->grad_accum);
    else
        add_change(out, outlen, "micro-batches a step (ranks × --grad-accum) %lld × %lld → %lld × %lld", (long long)ranks,
                   (long long)accum, (long long)now->ranks, (long long)now->grad_accum);
}

/* Each log must hold at least the bytes the checkpoint recorded of it. */
static int check_logs(const char *dir, const StFile *f, int64_t step, char *err, size_t errlen) {
    static const char *const names[2] = {"log.txt", "log.jsonl"};
    static const char *const fields[2] = {"run.log_txt_bytes", "run.log_jsonl_bytes"};
    for (int i = 0; i < 2; i++) {
        int64_t want = ckpt_i64(f, fields[i], 0), have = file_size(dir, names[i]);
        if (have >= want) continue;
        char *path = xasprintf("%s/%s", dir, names[i]);
        if (have < 0)
            fail_at(err, errlen, path, "missing, but the checkpoint (step %lld) follows %lld bytes of it: put it back to "
                    "resume, or start afresh (--overwrite, or another --out)", (long long)step, (long long)want);
        else
            fail_at(err, errlen, path, "%lld bytes, shorter than the %lld the checkpoint (step %lld) follows: it was cut "
                    "or replaced; put the whole log back to resume, or start afresh (--overwrite, or another --out)",
                    (long long)have, (long long)want, (long long)step);
        free(path);
        return -1;
    }
    return 0;
}

int runfolder_check_resume(const char *dir, const RunIdentity *now, bool allow_change, int64_t steps, bool logs,
                           char *err, size_t errlen) {
    char *ckpt = xasprintf("%s/%s", dir, CKPT_FILE);
    struct stat st;
    StFile f = {0};
    int rc = 0;
    if (stat(ckpt, &st) != 0 && errno == ENOENT) {
        rc = fail_at(err, errlen, dir, "no %s to resume from (start the run without --resume; --overwrite replaces "
                     "logs that are there)", CKPT_FILE);
    } else if (st_open(&f, ckpt, err, errlen) != 0) {
        rc = -1;
    } else {
        int64_t step = ckpt_i64(&f, "trainer.step", -1), val_done = ckpt_i64(&f, "trainer.val_done", 0);
        char changes[1024];
        run_changes(&f, now, changes, sizeof changes);
        if (step < 0) {
            rc = fail_at(err, errlen, ckpt, "not a training checkpoint (no trainer.step): --init takes its parameters");
        } else if (step == steps && val_done) {   /* nothing to train, whatever else differs */
            fail_at(err, errlen, dir, "the run is finished: its checkpoint holds step %lld of %lld; nothing to train",
                    (long long)step, (long long)steps);
            rc = TRAIN_FINISHED;
        } else if (changes[0] && !allow_change) {
            rc = fail_at(err, errlen, dir, "the run was made otherwise: %s (--allow-change resumes it all the same)",
                         changes);
        } else if (step > steps)
            rc = fail_at(err, errlen, dir, "the checkpoint holds step %lld, past the run's %lld steps", (long long)step,
                         (long long)steps);
        else if (logs)
            rc = check_logs(dir, &f, step, err, errlen);
    }
    st_close(&f);
    free(ckpt);
    return rc;
}
