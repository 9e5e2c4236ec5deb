/* sweep.c — `gptc sweep`: every variant × seed as a child `gptc train` process, at most
 * jobs at a time, one run folder each (SWEEP_DIR/VARIANT/seed=S, the child's output in its
 * train.out, its settings in run.json), SWEEP_DIR/sweep.json describing the whole.
 *
 * Resuming is by looking: a run whose log validated at its last step is skipped, one with
 * a checkpoint is continued with --resume, any other is started afresh (with --overwrite
 * when it left logs: it died before its first checkpoint). Children run in
 * their own process group, so a terminal's Ctrl-C reaches the sweep alone, which forwards
 * it once (to the group: a launcher such as mpirun and its ranks); and they get SIGINT if
 * the sweep dies, so they always stop at a checkpoint. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "study/study.h"

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) { (void)sig; stop_requested = 1; }

/* ---- the plan ------------------------------------------------------------------------------ */

typedef struct {
    char *name;
    char **values;
    int n;
} Spec;

/* "NAME=V1,V2,…" → spec; false if the name or a value is empty. */
static bool parse_spec(const char *s, Spec *sp) {
    const char *eq = strchr(s, '=');
    memset(sp, 0, sizeof *sp);
    if (!eq || eq == s || !eq[1]) return false;
    sp->name = xstrndup(s, (size_t)(eq - s));
    for (const char *v = eq + 1;; v++) {
        const char *c = strchrnul(v, ',');
        if (c == v) return false;
        sp->values = xrealloc(sp->values, sizeof *sp->values * (size_t)(sp->n + 1));
        sp->values[sp->n++] = xstrndup(v, (size_t)(c - v));
        if (!*c) return true;
        v = c;
    }
}

static void free_spec(Spec *sp) {
    for (int i = 0; i < sp->n; i++) free(sp->values[i]);
    free(sp->values), free(sp->name);
}

static void add_run(StSweep *s, const Spec *specs, int nspec, const int *pick, int seed) {
    s->runs = xrealloc(s->runs, sizeof *s->runs * (size_t)(s->nruns + 1));
    StSweepRun *r = &s->runs[s->nruns++];
    memset(r, 0, sizeof *r);
    r->sets = xmalloc(sizeof *r->sets * (size_t)nspec);
    size_t len;
    FILE *f = open_memstream(&r->variant, &len);   /* "n_emb=2,dim=64" */
    for (int k = 0; k < nspec; k++) {
        r->sets[r->nsets] = xasprintf("%s=%s", specs[k].name, specs[k].values[pick[k]]);
        fprintf(f, "%s%s", k ? "," : "", r->sets[r->nsets++]);
    }
    fclose(f);
    r->seed = seed;
    r->name = xasprintf("%s/seed=%d", r->variant, seed);
    r->dir = xasprintf("%s/%s", s->out, r->name);
}

int st_sweep_plan(StSweep *s, const char *const *vary, int nvary, int nseeds, char *err, size_t errlen) {
    Spec *specs = xcalloc((size_t)nvary + 1, sizeof *specs);
    int *pick = xcalloc((size_t)nvary + 1, sizeof *pick), rc = 0;
    for (int k = 0; k < nvary && rc == 0; k++)
        if (!parse_spec(vary[k], &specs[k])) rc = fail_at(err, errlen, "--vary", "takes NAME=V1,V2,…, got '%s'", vary[k]);
    s->nvariants = 0;
    s->nseeds = nseeds;
    while (rc == 0) {   /* pick counts in mixed radix, the last spec fastest */
        for (int seed = 0; seed < nseeds; seed++) add_run(s, specs, nvary, pick, seed);
        s->nvariants++;
        int k = nvary - 1;
        while (k >= 0 && ++pick[k] == specs[k].n) pick[k--] = 0;
        if (k < 0) break;
    }
    for (int k = 0; k < nvary; k++) free_spec(&specs[k]);
    free(specs), free(pick);
    return rc;
}

void st_sweep_free(StSweep *s) {
    for (int i = 0; i < s->nruns; i++) {
        StSweepRun *r = &s->runs[i];
        for (int k = 0; k < r->nsets; k++) free(r->sets[k]);
        free(r->sets), free(r->dir), free(r->name), free(r->variant);
    }
    free(s->runs);
    s->runs = NULL, s->nruns = 0;
}

/* ---- sweep.json and run.json ----------------------------------------------------------------- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void json_strs(FILE *f, const char *const *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        json_str(f, v[i]);
    }
    fputc(']', f);
}

/* The line of sweep.json that must not change between the sweeps sharing a folder. */
static char *train_args_line(const StSweep *s) {
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    fputs("  \"train_args\": ", f);
    json_strs(f, s->train_args, s->ntrain_args);
    fclose(f);
    return buf;
}

static int write_text(const char *path, char *text, size_t len, char *err, size_t errlen) {
    Piece piece = {text, len};
    int rc = write_atomic(path, &piece, 1, err, errlen);
    free(text);
    return rc;
}

static int write_sweep_json(const StSweep *s, const char *command, char *err, size_t errlen) {
    char *buf, *args = train_args_line(s), path[4096];
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "{\n  \"command\": ");
    json_str(f, command);
    fprintf(f, ",\n%s,\n  \"variants\": %d,\n  \"seeds\": %d,\n  \"runs\": [\n", args, s->nvariants, s->nseeds);
    for (int i = 0; i < s->nruns; i++) {
        const StSweepRun *r = &s->runs[i];
        fprintf(f, "    {\"dir\": ");
        json_str(f, r->name);
        fprintf(f, ", \"variant\": ");
        json_str(f, r->variant);
        fprintf(f, ", \"seed\": %d, \"set\": ", r->seed);
        json_strs(f, (const char *const *)r->sets, r->nsets);
        fprintf(f, "}%s\n", i + 1 < s->nruns ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    free(args);
    snprintf(path, sizeof path, "%s/sweep.json", s->out);
    return write_text(path, buf, len, err, errlen);
}

/* An existing sweep.json must hold the same train_args line: the runs of one folder share
 * their settings, and only the varied values and the seeds may be added to. */
static int check_previous(const StSweep *s, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/sweep.json", s->out);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char *line = NULL, *want = train_args_line(s);
    size_t cap = 0;
    bool found = false, same = false;
    while (!found && getline(&line, &cap, f) > 0)
        if (strstr(line, "\"train_args\": ")) {
            found = true;
            same = !strncmp(line, want, strlen(want)) && !strcmp(line + strlen(want), ",\n");
        }
    fclose(f);
    free(line), free(want);
    if (same) return 0;
    return fail_at(err, errlen, path, "this folder holds a sweep with other train arguments (model, preset, --set, "
                   "--data or training flags); give --out another folder, or remove it");
}

static int write_run_json(const StSweep *s, const StSweepRun *r, char *err, size_t errlen) {
    char *buf, path[4096];
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "{\"variant\": ");
    json_str(f, r->variant);
    fprintf(f, ", \"seed\": %d, \"set\": ", r->seed);
    json_strs(f, (const char *const *)r->sets, r->nsets);
    fprintf(f, ", \"train_args\": ");
    json_strs(f, s->train_args, s->ntrain_args);
    fprintf(f, "}\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/run.json", r->dir);
    return write_text(path, buf, len, err, errlen);
}

/* ---- state of a run folder -------------------------------------------------------------------- */

static StSweepState folder_state(const StSweepRun *r) {
    char path[4096];
    struct stat st;
    StRun log;
    if (st_run_read_dir(&log, r->dir, NULL, 0) == 0 && st_run_finished(&log)) {
        st_run_free(&log);
        return SW_SKIP;
    }
    st_run_free(&log);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", r->dir);
    return stat(path, &st) == 0 ? SW_RESUME : SW_START;
}

int st_sweep_prepare(StSweep *s, const char *command, char *err, size_t errlen) {
    if (mkdir_p(s->out, err, errlen) != 0 || check_previous(s, err, errlen) != 0) return -1;
    if (write_sweep_json(s, command, err, errlen) != 0) return -1;
    for (int i = 0; i < s->nruns; i++) s->runs[i].state = folder_state(&s->runs[i]);
    return 0;
}

/* ---- children ----------------------------------------------------------------------------------- */

/* Whether a log of dir is there and not empty. */
static bool has_log(const char *dir) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/log.txt", dir);
    if (stat(path, &st) == 0 && st.st_size > 0) return true;
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* [LAUNCHER… exe] train TRAIN_ARGS… --set NAME=V… then --seed S --out DIR [--overwrite], or
 * --resume DIR --out DIR; argv[0] is "gptc" without a launcher (what ps shows; the program
 * is s->exe). The strings borrow from s, r, seed and *words (freed by the caller). */
static char **child_argv(const StSweep *s, const StSweepRun *r, char *seed, char **words) {
    char **argv = xcalloc((size_t)(s->ntrain_args + 2 * r->nsets + 11) + (s->launcher ? strlen(s->launcher) : 0), sizeof *argv);
    int n = 0;
    *words = s->launcher ? xstrdup(s->launcher) : NULL;
    char *save = NULL;
    for (char *w = *words ? strtok_r(*words, " \t", &save) : NULL; w; w = strtok_r(NULL, " \t", &save)) argv[n++] = w;
    argv[n++] = s->launcher ? (char *)s->exe : "gptc";
    argv[n++] = "train";
    for (int i = 0; i < s->ntrain_args; i++) argv[n++] = (char *)s->train_args[i];
    for (int k = 0; k < r->nsets; k++) argv[n++] = "--set", argv[n++] = r->sets[k];
    if (r->state == SW_RESUME) argv[n++] = "--resume", argv[n++] = r->dir;
    else argv[n++] = "--seed", argv[n++] = seed;
    argv[n++] = "--out", argv[n++] = r->dir;
    if (r->state != SW_RESUME && has_log(r->dir)) argv[n++] = "--overwrite";
    return argv;
}

/* In the child: own process group, SIGINT when the sweep dies, output to train.out, and
 * with several jobs a share of the cores each (unless OMP_NUM_THREADS says otherwise). */
static void exec_child(const StSweep *s, char **argv, const char *out_path, bool append, pid_t sweep) {
    setpgid(0, 0);
    if (s->jobs > 1 && !getenv("OMP_NUM_THREADS")) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        char n[32];
        snprintf(n, sizeof n, "%ld", cores / s->jobs > 1 ? cores / s->jobs : 1);
        setenv("OMP_NUM_THREADS", n, 1);
    }
    prctl(PR_SET_PDEATHSIG, SIGINT);
    if (getppid() != sweep) _exit(130);   /* the sweep died before prctl */
    int fd = open(out_path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0666);
    int null = open("/dev/null", O_RDONLY);
    if (fd < 0 || null < 0) _exit(126);
    dup2(null, 0), dup2(fd, 1), dup2(fd, 2);
    dprintf(1, "$");
    for (int i = 0; argv[i]; i++) dprintf(1, " %s", argv[i]);
    dprintf(1, "\n");
    if (s->launcher) execvp(argv[0], argv);
    else execv(s->exe, argv);
    dprintf(2, "gptc sweep: cannot run %s: %s\n", s->launcher ? argv[0] : s->exe, strerror(errno));
    _exit(127);
}

static int start_run(StSweep *s, StSweepRun *r, char *err, size_t errlen) {
    if (mkdir_p(r->dir, err, errlen) != 0 || write_run_json(s, r, err, errlen) != 0) return -1;
    char seed[32], out[4096], log[4096];
    snprintf(seed, sizeof seed, "%d", r->seed);
    snprintf(out, sizeof out, "%s/train.out", r->dir);
    snprintf(log, sizeof log, "%s/log.txt", r->dir);
    char *words;
    char **argv = child_argv(s, r, seed, &words);
    bool resume = r->state == SW_RESUME;
    int64_t steps;
    if (!resume || st_log_progress(log, &r->step0, &steps) != 0) r->step0 = 0;   /* for the ETA */
    r->step = r->step0;
    fflush(stdout), fflush(stderr);
    pid_t sweep = getpid(), pid = fork();
    if (pid == 0) exec_child(s, argv, out, resume, sweep);
    if (pid > 0) setpgid(pid, pid);   /* as the child does: signals to the group cannot miss it */
    free(argv), free(words);
    if (pid < 0) return fail_at(err, errlen, r->name, "cannot start: %s", strerror(errno));
    r->pid = pid, r->state = SW_RUNNING, r->t0 = clock_seconds();
    return 0;
}

/* ---- progress ---------------------------------------------------------------------------------- */

static void count(const StSweep *s, int *done, int *running, int *pending) {
    *done = *running = *pending = 0;
    for (int i = 0; i < s->nruns; i++) {
        StSweepState st = s->runs[i].state;
        *done += st == SW_SKIP || st == SW_DONE;
        *running += st == SW_RUNNING;
        *pending += st == SW_START || st == SW_RESUME;
    }
}

/* Seconds left, from the steps this sweep has taken so far; negative if unknown. */
static double eta(const StSweep *s, double elapsed) {
    int64_t taken = 0, left = 0;
    for (int i = 0; i < s->nruns; i++) {
        const StSweepRun *r = &s->runs[i];
        if (r->state == SW_SKIP || r->state == SW_FAILED) continue;
        taken += r->step - r->step0;
        if (r->steps <= 0 && r->state != SW_DONE) return -1;
        if (r->state != SW_DONE) left += r->steps - r->step;
    }
    return taken > 0 ? elapsed * (double)left / (double)taken : -1;
}

static void fmt_eta(double sec, char *buf, size_t len) {
    if (sec < 0) snprintf(buf, len, "ETA –");
    else if (sec < 3600) snprintf(buf, len, "ETA %dm%02ds", (int)sec / 60, (int)sec % 60);
    else snprintf(buf, len, "ETA %dh%02dm", (int)sec / 3600, (int)sec % 3600 / 60);
}

/* Reads the running runs' steps from the ends of their logs. */
static void update_steps(StSweep *s) {
    for (int i = 0; i < s->nruns; i++) {
        StSweepRun *r = &s->runs[i];
        char log[4096];
        int64_t steps;
        snprintf(log, sizeof log, "%s/log.txt", r->dir);
        if (r->state == SW_RUNNING && st_log_progress(log, &r->step, &steps) == 0 && r->steps <= 0) r->steps = steps;
    }
}

/* "[3/8 done] n_emb=2/seed=1 12/24 n_emb=3/seed=0 3/24 · ETA 1m05s" */
static void progress_line(StSweep *s, double elapsed, bool runs, char *buf, size_t len) {
    int done, running, pending;
    update_steps(s);
    count(s, &done, &running, &pending);
    size_t n = (size_t)snprintf(buf, len, "[%d/%d done]", done, s->nruns);
    for (int i = 0; runs && i < s->nruns && n < len; i++) {
        const StSweepRun *r = &s->runs[i];
        if (r->state == SW_RUNNING)
            n += (size_t)snprintf(buf + n, len - n, " %s %lld/%lld", r->name, (long long)r->step, (long long)r->steps);
    }
    char e[32];
    fmt_eta(eta(s, elapsed), e, sizeof e);
    if (n < len) snprintf(buf + n, len - n, " · %s", e);
}

/* ---- the loop ------------------------------------------------------------------------------------ */

typedef struct {
    bool tty, line_shown;
    double t0, last_draw;
} Screen;

/* Prints an event line, clearing the progress line first on a terminal. */
static void say(Screen *sc, const char *fmt, const char *a, const char *b) {
    if (sc->line_shown) fputs("\r\033[K", stderr);
    sc->line_shown = false;
    fprintf(stderr, "sweep: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
}

/* The last k (<= 8) lines of a file, indented, on stderr. */
static void last_lines(const char *path, int k) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *lines[8] = {0}, *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0) {
        free(lines[n % k]);
        lines[n++ % k] = xstrdup(line);
    }
    for (int i = n > k ? n - k : 0; i < n; i++) fprintf(stderr, "    %s", lines[i % k]);
    for (int i = 0; i < k; i++) free(lines[i]);
    free(line);
    fclose(f);
}

/* A child ended: done if its log validated at the last step (a launcher may exit nonzero
 * when signalled even so), stopped if the sweep is stopping, else failed. */
static void finished_child(StSweep *s, StSweepRun *r, int status, Screen *sc) {
    char msg[8192], out[4200], line[256];
    r->status = status;
    snprintf(out, sizeof out, "%s/train.out", r->dir);
    StRun log;
    bool done = st_run_read_dir(&log, r->dir, NULL, 0) == 0 && st_run_finished(&log);
    double loss = done ? log.loss[log.nval - 1] : NAN;
    st_run_free(&log);
    if (done) {
        r->state = SW_DONE;
        r->step = r->steps;
        progress_line(s, clock_seconds() - sc->t0, false, line, sizeof line);
        snprintf(msg, sizeof msg, "in %.1f s, val_loss %.6f  %s", clock_seconds() - r->t0, loss, line);
        say(sc, "done     %s %s", r->name, msg);
    } else if (stop_requested) {
        r->state = SW_STOPPED;
        say(sc, "stopped  %s (%s)", r->name, "its checkpoint is kept");
    } else {
        r->state = SW_FAILED;
        if (WIFEXITED(status)) snprintf(msg, sizeof msg, "exit status %d; output in %s", WEXITSTATUS(status), out);
        else snprintf(msg, sizeof msg, "killed by signal %d; output in %s", WTERMSIG(status), out);
        say(sc, "FAILED   %s: %s", r->name, msg);
        last_lines(out, 4);
    }
}

static void reap(StSweep *s, Screen *sc) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (int i = 0; i < s->nruns; i++)
            if (s->runs[i].state == SW_RUNNING && s->runs[i].pid == pid) finished_child(s, &s->runs[i], status, sc);
}

static void start_more(StSweep *s, Screen *sc) {
    int done, running, pending;
    count(s, &done, &running, &pending);
    for (int i = 0; i < s->nruns && running < s->jobs; i++) {
        StSweepRun *r = &s->runs[i];
        if (r->state != SW_START && r->state != SW_RESUME) continue;
        char err[4096];
        bool resume = r->state == SW_RESUME;
        if (start_run(s, r, err, sizeof err) != 0) {
            r->state = SW_FAILED;
            say(sc, "FAILED   %s: %s", r->name, err);
            continue;
        }
        running++;
        say(sc, "%s %s", resume ? "resume  " : "start   ", r->name);
    }
}

static void draw(StSweep *s, Screen *sc) {
    double t = clock_seconds();
    if (!sc->tty || t - sc->last_draw < 1) return;
    char line[2048];
    progress_line(s, t - sc->t0, true, line, sizeof line);
    fprintf(stderr, "\r\033[K%s", line);
    sc->line_shown = true;
    sc->last_draw = t;
}

static void announce(const StSweep *s, Screen *sc) {
    int skip = 0, resume = 0, start = 0;
    for (int i = 0; i < s->nruns; i++) {
        skip += s->runs[i].state == SW_SKIP;
        resume += s->runs[i].state == SW_RESUME;
        start += s->runs[i].state == SW_START;
    }
    fprintf(stderr, "sweep: %d run%s (%d variant%s × %d seed%s) in %s: %d finished already, %d to resume, %d to start; "
            "at most %d at a time\n", s->nruns, s->nruns == 1 ? "" : "s", s->nvariants, s->nvariants == 1 ? "" : "s", s->nseeds,
            s->nseeds == 1 ? "" : "s", s->out, skip, resume, start, s->jobs);
    for (int i = 0; i < s->nruns; i++)
        if (s->runs[i].state == SW_SKIP) say(sc, "skip     %s (%s)", s->runs[i].name, "finished");
}

/* The closing summary; returns the exit status. */
static int conclude(const StSweep *s, Screen *sc) {
    int failed = 0, stopped = 0;
    for (int i = 0; i < s->nruns; i++) {
        failed += s->runs[i].state == SW_FAILED;
        stopped += s->runs[i].state == SW_STOPPED;
    }
    if (sc->line_shown) fputs("\r\033[K", stderr);
    for (int i = 0; i < s->nruns; i++)
        if (s->runs[i].state == SW_FAILED)
            fprintf(stderr, "sweep: failed: %s (exit status %d, %s/train.out)\n", s->runs[i].name,
                    WIFEXITED(s->runs[i].status) ? WEXITSTATUS(s->runs[i].status) : 128 + WTERMSIG(s->runs[i].status),
                    s->runs[i].dir);
    if (stop_requested) {
        fprintf(stderr, "sweep: interrupted; %d run%s stopped at a checkpoint. Run the same command again to "
                "continue.\n", stopped, stopped == 1 ? "" : "s");
        return 130;
    }
    if (failed) {
        fprintf(stderr, "sweep: %d of %d runs failed\n", failed, s->nruns);
        return 1;
    }
    fprintf(stderr, "sweep: all %d run%s finished in %s; the report: gptc report %s -o %s/report\n", s->nruns,
            s->nruns == 1 ? "" : "s", s->out,
            s->out, s->out);
    return 0;
}

int st_sweep_run(StSweep *s) {
    Screen sc = {isatty(2), false, clock_seconds(), 0};
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_requested = 0;
    bool forwarded = false;
    announce(s, &sc);
    for (;;) {
        reap(s, &sc);
        if (stop_requested && !forwarded) {
            for (int i = 0; i < s->nruns; i++)
                if (s->runs[i].state == SW_RUNNING) kill(-s->runs[i].pid, SIGINT);   /* with a launcher's ranks */
            forwarded = true;
        }
        if (!stop_requested) start_more(s, &sc);
        int done, running, pending;
        count(s, &done, &running, &pending);
        if (running == 0 && (stop_requested || pending == 0)) break;
        draw(s, &sc);
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return conclude(s, &sc);
}
