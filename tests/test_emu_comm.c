/* test_emu_comm.c — the emulated NCCL's collectives through shared memory (emu/comm.c),
 * with 2 and 3 ranks as forked processes joined to one communicator.
 *
 * Each rank runs one body, checks what it saw and sends a Report (failed checks, a hash of
 * its results) to the parent through a pipe; the parent prints "pass: NAME" / "fail: NAME"
 * and also checks that every rank reported, exited 0 (under ASan: no leaks) and, for the
 * data tests, got bit-identical results. Expected results are computed here from the
 * contract in comm.h: f32 sums in rank order then one division; bf16 rounded to nearest
 * even by comparing distances, not by comm.c's bit trick. The error tests shorten the
 * timeout with GPTC_EMU_COMM_TIMEOUT; the three that wait for it start first and run
 * alongside the others. Last, nothing of this process's may be left in /dev/shm. */
#include "emu/comm.h"
#include "tests/test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_RANKS = 3, BIG = 3000000 };   /* BIG floats: 12 MB, three 4 MiB chunks */

/* ---- ranks as child processes ---- */

typedef struct {
    int rank, failures;
    uint64_t hash;      /* of the rank's results, compared across ranks */
    char msg[1024];     /* the first failed check */
} Report;               /* < PIPE_BUF: one write is never interleaved with another rank's */

typedef struct {
    int rank, n;
    const char *id;
    EmuComm *c;         /* NULL in bodies that join by themselves */
    Report *rep;
} Rank;

typedef void (*Body)(Rank *r);

/* a failed check in a rank: counted; the first one, with err if any, goes to the parent */
#define RCHECK(r, cond, err) rank_check((r), (cond) ? 1 : 0, __LINE__, #cond, (err))
static void rank_check(Rank *r, int ok, int line, const char *what, const char *err) {
    if (ok) return;
    if (!r->rep->failures++)
        snprintf(r->rep->msg, sizeof r->rep->msg, "rank %d: %s:%d: check failed: %s%s%s", r->rank, __FILE__, line,
                 what, err ? "; err: " : "", err ? err : "");
}

static void hash_bytes(Rank *r, const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = r->rep->hash ? r->rep->hash : 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    r->rep->hash = h;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* /dev/shm path of a communicator id ("/gptc-emu-...") */
static void shm_path(const char *id, char *out, size_t len) { snprintf(out, len, "/dev/shm%s", id); }

_Noreturn static void rank_main(Rank *r, Body body, int join, const char *timeout, int fd) {
    char err[512] = "";
    alarm(8);   /* a hang fails the test (no report) instead of stalling the suite */
    if (timeout) setenv("GPTC_EMU_COMM_TIMEOUT", timeout, 1);
    if (join) {
        int rc = emu_comm_init(&r->c, r->n, r->id, r->rank, err, sizeof err);
        RCHECK(r, rc == 0, err);
        char path[256];
        shm_path(r->id, path, sizeof path);
        RCHECK(r, rc || access(path, F_OK) != 0, path);   /* unlinked once every rank joined */
    }
    if (!join || r->c) body(r);
    emu_comm_destroy(r->c);
    if (write(fd, r->rep, sizeof *r->rep) != (ssize_t)sizeof *r->rep) exit(3);
    exit(0);
}

/* n ranks of one communicator, started and not yet waited for */
typedef struct {
    int n, fd;                  /* fd: the pipe the reports come through */
    pid_t pids[MAX_RANKS];
} Job;

/* Forks n ranks of one new communicator, each running body (after joining it, if join). */
static void start_ranks(Job *j, int n, Body body, int join, const char *timeout) {
    char id[EMU_COMM_ID_BYTES], err[256];
    int fds[2];
    *j = (Job){.n = n, .fd = -1};
    if (emu_comm_unique_id(id, err, sizeof err) || pipe(fds)) return;
    fflush(stdout);
    fflush(stderr);
    for (int k = 0; k < n; k++) {
        j->pids[k] = fork();
        if (j->pids[k] == 0) {
            close(fds[0]);
            Report own = {.rank = k};
            Rank r = {k, n, id, NULL, &own};
            rank_main(&r, body, join, timeout, fds[1]);
        }
    }
    close(fds[1]);
    j->fd = fds[0];
}

/* Collects the ranks' reports and checks that every rank exited 0 and reported no failure
 * (and the same hash, if same). */
static void finish_ranks(Job *j, int same) {
    Report rep[MAX_RANKS], got;
    int clean = 0;
    for (int k = 0; k < j->n; k++) rep[k] = (Report){.rank = -1};
    while (j->fd >= 0 && read(j->fd, &got, sizeof got) == (ssize_t)sizeof got)
        if (got.rank >= 0 && got.rank < j->n) rep[got.rank] = got;
    if (j->fd >= 0) close(j->fd);
    for (int k = 0; k < j->n; k++) {
        int st;
        clean += j->pids[k] > 0 && waitpid(j->pids[k], &st, 0) == j->pids[k] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    CHECK(clean == j->n);
    for (int k = 0; k < j->n; k++) {
        CHECK(rep[k].rank == k);
        CHECK(rep[k].failures == 0);
        if (rep[k].failures) fprintf(stderr, "  %s\n", rep[k].msg);
        if (same) CHECK(rep[k].hash == rep[0].hash);
    }
}

static void check_ranks(int n, Body body, int join, const char *timeout, int same) {
    Job j;
    start_ranks(&j, n, body, join, timeout);
    finish_ranks(&j, same);
}

/* ---- inputs and references ---- */

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t draw(int rank, size_t i, uint64_t salt) { return mix(salt ^ ((uint64_t)rank << 40) ^ i); }

/* any float in [-1000, 1000) with a full mantissa, so that the order of the sum shows */
static float random_f32(int rank, size_t i) { return (float)((double)(draw(rank, i, 1) >> 11) * 0x1p-53 * 2000 - 1000); }

/* integers and halves whose sum in any order is exact: rank r adds r - (n-1)/2 to
 * base(i), so the average is base(i) exactly */
static float exact_f32(int rank, int n, size_t i) { return (float)((double)(i % 2001) - 1000 + rank - (n - 1) / 2.0); }

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float bf16_value(uint16_t b) { return bits_to_f32((uint32_t)b << 16); }

/* a bf16 magnitude as a real number; 0x7f80 (infinity) counts as 2^128, where rounding
 * with an unbounded exponent would put the next value */
static double bf16_magnitude(uint16_t m) { return m >= 0x7f80 ? 0x1p128 : (double)bf16_value(m); }

/* The bf16 nearest to f, ties to the even one, found by comparing the distances (in
 * double, where they are exact) to the two bf16 values around f. */
static uint16_t ref_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (isnan(f)) return 0x7fc0;
    uint16_t sign = (uint16_t)(u >> 16 & 0x8000), lo = (uint16_t)((u & 0x7fffffff) >> 16);
    if (lo >= 0x7f80) return sign | 0x7f80;
    double a = fabs((double)f), below = a - bf16_magnitude(lo), above = bf16_magnitude(lo + 1) - a;
    uint16_t m = below < above ? lo : above < below ? lo + 1 : (lo & 1) ? lo + 1 : lo;
    return sign | m;
}

static int bf16_isnan(uint16_t b) { return (b & 0x7fff) > 0x7f80; }

/* The first elements are chosen cases; the rest random bit patterns (NaN, infinity,
 * subnormals included). Cases 0 and 1 average to exact ties: 1.00390625 between 0x3f80
 * and 0x3f81 (even: 0x3f80), 1.01171875 between 0x3f81 and 0x3f82 (even: 0x3f82). */
static uint16_t bf16_input(int rank, int n, size_t i) {
    static const uint16_t tie2[2][2] = {{0x3f80, 0x3f81}, {0x3f81, 0x3f82}};
    static const uint16_t tie3[2][3] = {{0x4000, 0x3f80, 0x3c40}, {0x4000, 0x3f80, 0x3d10}};   /* 2+1+3/256, 2+1+9/256 */
    switch (i) {
    case 0: case 1: return n == 2 ? tie2[i][rank] : tie3[i][rank];
    case 2: return rank == 0 ? 0x7fc1 : 0x3f80;               /* quiet NaN */
    case 3: return rank == 0 ? 0x7f81 : 0x3f80;               /* NaN with only a low mantissa bit */
    case 4: return rank == 0 ? 0x7f80 : rank == 1 ? 0xff80 : 0; /* inf - inf */
    case 5: return 0x7f7f;                                    /* the largest finite: the sum overflows */
    case 6: return 0x0001;                                    /* the smallest subnormal */
    default: return (uint16_t)(draw(rank, i, 2) >> 48);
    }
}

static uint16_t bf16_expected(int n, size_t i) {
    float acc = bf16_value(bf16_input(0, n, i));
    for (int q = 1; q < n; q++) acc += bf16_value(bf16_input(q, n, i));
    return ref_bf16(acc / (float)n);
}

/* rank's data to broadcast: one draw per 8 bytes */
static void broadcast_fill(int rank, unsigned char *buf, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 8) {
        uint64_t w = draw(rank, i, 3);
        memcpy(buf + i, &w, bytes - i < 8 ? bytes - i : 8);
    }
}

/* ---- data bodies ---- */

static void body_allreduce_f32(Rank *r) {
    char err[512] = "";
    float one = (float)r->rank + 1, *x = malloc(BIG * sizeof *x);
    RCHECK(r, emu_comm_allreduce_avg(r->c, NULL, 0, 0, err, sizeof err) == 0, err);
    RCHECK(r, emu_comm_allreduce_avg(r->c, &one, 1, 0, err, sizeof err) == 0, err);
    RCHECK(r, one == (float)(r->n + 1) / 2, NULL);
    hash_bytes(r, &one, sizeof one);

    for (size_t i = 0; i < BIG; i++) x[i] = exact_f32(r->rank, r->n, i);
    RCHECK(r, emu_comm_allreduce_avg(r->c, x, BIG, 0, err, sizeof err) == 0, err);
    size_t wrong = 0;
    for (size_t i = 0; i < BIG; i++) wrong += x[i] != (float)((double)(i % 2001) - 1000);
    RCHECK(r, wrong == 0, NULL);
    hash_bytes(r, x, BIG * sizeof *x);

    for (size_t i = 0; i < BIG; i++) x[i] = random_f32(r->rank, i);
    RCHECK(r, emu_comm_allreduce_avg(r->c, x, BIG, 0, err, sizeof err) == 0, err);
    wrong = 0;
    for (size_t i = 0; i < BIG; i++) {
        float acc = random_f32(0, i);
        for (int q = 1; q < r->n; q++) acc += random_f32(q, i);
        float want = acc / (float)r->n;
        wrong += memcmp(&x[i], &want, sizeof want) != 0;
    }
    RCHECK(r, wrong == 0, NULL);
    hash_bytes(r, x, BIG * sizeof *x);
    free(x);
}

static void body_allreduce_bf16(Rank *r) {
    char err[512] = "";
    size_t count = BIG, wrong = 0;
    uint16_t *x = malloc(count * sizeof *x);
    for (size_t i = 0; i < count; i++) x[i] = bf16_input(r->rank, r->n, i);
    RCHECK(r, emu_comm_allreduce_avg(r->c, x, count, 1, err, sizeof err) == 0, err);
    RCHECK(r, x[0] == 0x3f80 && x[1] == 0x3f82, NULL);   /* ties to even */
    RCHECK(r, bf16_isnan(x[2]) && bf16_isnan(x[3]) && bf16_isnan(x[4]), NULL);
    RCHECK(r, x[5] == 0x7f80 && x[6] == 0x0001, NULL);
    for (size_t i = 0; i < count; i++) {
        uint16_t want = bf16_expected(r->n, i);
        wrong += bf16_isnan(want) ? !bf16_isnan(x[i]) : x[i] != want;
    }
    RCHECK(r, wrong == 0, NULL);
    hash_bytes(r, x, count * sizeof *x);
    free(x);
}

static void body_broadcast(Rank *r) {
    char err[512] = "";
    size_t bytes = 9 * 1024 * 1024 + 3;   /* three chunks, the last one short */
    unsigned char *buf = malloc(bytes), *want = malloc(bytes), byte;
    RCHECK(r, emu_comm_broadcast(r->c, NULL, 0, r->n - 1, err, sizeof err) == 0, err);
    for (int root = 0; root < r->n; root++) {
        broadcast_fill(r->rank, buf, bytes);
        broadcast_fill(root, want, bytes);
        RCHECK(r, emu_comm_broadcast(r->c, buf, bytes, root, err, sizeof err) == 0, err);
        RCHECK(r, memcmp(buf, want, bytes) == 0, NULL);
        hash_bytes(r, buf, bytes);
        byte = (unsigned char)(r->rank + 10);
        RCHECK(r, emu_comm_broadcast(r->c, &byte, 1, root, err, sizeof err) == 0, err);
        RCHECK(r, byte == root + 10, NULL);
    }
    free(buf);
    free(want);
}

TEST(allreduce_f32_2_ranks) { check_ranks(2, body_allreduce_f32, 1, NULL, 1); }
TEST(allreduce_f32_3_ranks) { check_ranks(3, body_allreduce_f32, 1, NULL, 1); }
TEST(allreduce_bf16_2_ranks) { check_ranks(2, body_allreduce_bf16, 1, NULL, 1); }
TEST(allreduce_bf16_3_ranks) { check_ranks(3, body_allreduce_bf16, 1, NULL, 1); }
TEST(broadcast_from_every_root_2_ranks) { check_ranks(2, body_broadcast, 1, NULL, 1); }
TEST(broadcast_from_every_root_3_ranks) { check_ranks(3, body_broadcast, 1, NULL, 1); }

/* ---- error bodies ---- */

/* every later call on a failed communicator fails at once */
static void check_stays_failed(Rank *r) {
    char err[512] = "";
    float x = 0;
    RCHECK(r, emu_comm_allreduce_avg(r->c, &x, 1, 0, err, sizeof err) == -1, NULL);
    RCHECK(r, strstr(err, "the communicator failed earlier; destroy it") != NULL, err);
}

/* Rank 0 never issues the all-reduce: with 2 ranks it leaves (as if it died), with 3 it
 * comes late, after the others gave up, and is stopped at once by their failure. */
static void body_timeout(Rank *r) {
    char err[512] = "";
    float x[4] = {0};
    if (r->rank == 0) {
        if (r->n == 2) return;
        nanosleep(&(struct timespec){2, 0}, NULL);
        RCHECK(r, emu_comm_allreduce_avg(r->c, x, 4, 0, err, sizeof err) == -1, NULL);
        RCHECK(r, strstr(err, "NCCL emulation: rank 0 stopped at an all-reduce because rank ") == err, err);
        return;
    }
    double t0 = now();
    RCHECK(r, emu_comm_allreduce_avg(r->c, x, 4, 0, err, sizeof err) == -1, NULL);
    RCHECK(r, now() - t0 < 1.9, NULL);
    /* said by this rank, or quoted from the rank that gave up first */
    RCHECK(r, strstr(err, "waited 1 s at an all-reduce for rank 0 (did a rank die or issue a different collective?)"),
           err);
    RCHECK(r, strncmp(err, "NCCL emulation: rank ", 21) == 0 && atoi(err + 21) == r->rank, err);
    check_stays_failed(r);
}

/* Rank 1 never joins: the others give up naming it, and leave nothing in /dev/shm. */
static void body_join_timeout(Rank *r) {
    char err[512] = "";
    if (r->rank == 1) return;
    RCHECK(r, emu_comm_init(&r->c, r->n, r->id, r->rank, err, sizeof err) == -1, NULL);
    RCHECK(r, r->c == NULL, NULL);
    RCHECK(r, strstr(err, "waited 1 s for rank 1 to join the communicator") != NULL, err);
}

/* Rank 1 thinks there are 3 ranks; both fail at once (whichever created the segment). */
static void body_nranks_mismatch(Rank *r) {
    char err[512] = "";
    RCHECK(r, emu_comm_init(&r->c, r->rank ? 3 : 2, r->id, r->rank, err, sizeof err) == -1, NULL);
    RCHECK(r, strstr(err, "ranks but rank ") && strstr(err, "created the communicator with "), err);
}

/* Two processes both claim rank 0. */
static void body_same_rank(Rank *r) {
    char err[512] = "";
    RCHECK(r, emu_comm_init(&r->c, r->n, r->id, 0, err, sizeof err) == -1, NULL);
    RCHECK(r, strstr(err, "rank 0 joined twice (two processes were given the same rank)"), err);
}

/* 2 ranks: an all-reduce against a broadcast; 3 ranks: bf16 against f32 on the last rank.
 * Every rank reports the same message, naming both calls. */
static void body_different_collectives(Rank *r) {
    char err[512] = "";
    unsigned char buf[64] = {0};
    const char *want;
    int rc;
    if (r->n == 2) {
        rc = r->rank == 0 ? emu_comm_allreduce_avg(r->c, buf, 10, 0, err, sizeof err)
                          : emu_comm_broadcast(r->c, buf, 40, 0, err, sizeof err);
        want = "NCCL emulation: ranks issued different collectives at once: rank 0 an all-reduce of 10 f32, "
               "rank 1 a broadcast of 40 bytes from rank 0";
    } else {
        rc = emu_comm_allreduce_avg(r->c, buf, 10, r->rank < 2, err, sizeof err);
        want = "NCCL emulation: ranks issued different collectives at once: rank 0 an all-reduce of 10 bf16, "
               "rank 2 an all-reduce of 10 f32";
    }
    RCHECK(r, rc == -1, NULL);
    RCHECK(r, strcmp(err, want) == 0, err);
    check_stays_failed(r);
}

/* every rank passes a root out of range */
static void body_bad_root(Rank *r) {
    char err[512] = "";
    unsigned char b = 0;
    RCHECK(r, emu_comm_broadcast(r->c, &b, 1, r->n, err, sizeof err) == -1, NULL);
    RCHECK(r, strstr(err, "a broadcast from rank 2, not in 0..1") != NULL, err);   /* own, or quoted */
}

/* The tests that wait for a timeout mostly sleep: main starts them first, and they run
 * alongside the others until these collect them. */
static Job timeout_2, timeout_3, join_timeout;

static void start_slow_tests(void) {
    start_ranks(&timeout_2, 2, body_timeout, 1, "1");
    start_ranks(&timeout_3, 3, body_timeout, 1, "1");
    start_ranks(&join_timeout, 3, body_join_timeout, 0, "1");
}

TEST(timeout_names_the_missing_rank_2_ranks) { finish_ranks(&timeout_2, 0); }
TEST(timeout_names_the_missing_rank_3_ranks) { finish_ranks(&timeout_3, 0); }
TEST(join_timeout_names_the_missing_rank) { finish_ranks(&join_timeout, 0); }
TEST(ranks_disagreeing_on_nranks_fail) { check_ranks(2, body_nranks_mismatch, 0, "3", 0); }
TEST(two_ranks_with_one_number_fail) { check_ranks(2, body_same_rank, 0, "3", 0); }
TEST(different_collectives_fail_on_every_rank_2_ranks) { check_ranks(2, body_different_collectives, 1, "3", 0); }
TEST(different_collectives_fail_on_every_rank_3_ranks) { check_ranks(3, body_different_collectives, 1, "3", 0); }
TEST(broadcast_root_out_of_range) { check_ranks(2, body_bad_root, 1, "3", 0); }

/* ---- one process ---- */

TEST(one_rank_is_the_identity) {
    char id[EMU_COMM_ID_BYTES], id2[EMU_COMM_ID_BYTES], err[512] = "";
    EmuComm *c = NULL;
    float x[3] = {1.5f, -2, 3};
    uint16_t h[2] = {0x3f81, 0x7fc1};
    CHECK(emu_comm_unique_id(id, err, sizeof err) == 0);
    CHECK(emu_comm_unique_id(id2, err, sizeof err) == 0);
    CHECK(strcmp(id, id2) != 0);
    CHECK(emu_comm_init(&c, 1, id, 0, err, sizeof err) == 0);
    if (!c) return;
    CHECK(emu_comm_rank(c) == 0 && emu_comm_size(c) == 1);
    CHECK(emu_comm_allreduce_avg(c, x, 3, 0, err, sizeof err) == 0);
    CHECK(x[0] == 1.5f && x[1] == -2 && x[2] == 3);
    CHECK(emu_comm_allreduce_avg(c, h, 2, 1, err, sizeof err) == 0);
    CHECK(h[0] == 0x3f81 && h[1] == 0x7fc1);
    CHECK(emu_comm_broadcast(c, x, sizeof x, 0, err, sizeof err) == 0);
    emu_comm_destroy(c);
    emu_comm_destroy(NULL);
}

TEST(bad_arguments_are_errors) {
    char id[EMU_COMM_ID_BYTES] = "no-slash", err[512] = "";
    EmuComm *c = (EmuComm *)1;
    CHECK(emu_comm_init(&c, 2, id, 0, err, sizeof err) == -1 && c == NULL);
    CHECK(strstr(err, "rank 0 got an id that is not a communicator id") != NULL);
    CHECK(emu_comm_unique_id(id, err, sizeof err) == 0);
    CHECK(emu_comm_init(&c, 2, id, 2, err, sizeof err) == -1);
    CHECK_STR(err, "NCCL emulation: rank 2 is not in 0..1");
    CHECK(emu_comm_init(&c, 0, id, 0, NULL, 0) == -1);   /* err may be NULL */
    setenv("GPTC_EMU_COMM_TIMEOUT", "soon", 1);
    CHECK(emu_comm_init(&c, 1, id, 0, err, sizeof err) == -1);
    CHECK_STR(err, "NCCL emulation: GPTC_EMU_COMM_TIMEOUT must be a number of seconds > 0, not 'soon'");
    unsetenv("GPTC_EMU_COMM_TIMEOUT");
}

/* entries in /dev/shm named by this process's ids */
static int segments_left(void) {
    char prefix[64];
    int n = 0;
    snprintf(prefix, sizeof prefix, "gptc-emu-%ld-", (long)getpid());
    DIR *d = opendir("/dev/shm");
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        fprintf(stderr, "  left in /dev/shm: %s\n", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

TEST(nothing_left_in_dev_shm) { CHECK(segments_left() == 0); }

int main(void) {
    start_slow_tests();
    RUN(allreduce_f32_2_ranks);
    RUN(allreduce_f32_3_ranks);
    RUN(allreduce_bf16_2_ranks);
    RUN(allreduce_bf16_3_ranks);
    RUN(broadcast_from_every_root_2_ranks);
    RUN(broadcast_from_every_root_3_ranks);
    RUN(timeout_names_the_missing_rank_2_ranks);
    RUN(timeout_names_the_missing_rank_3_ranks);
    RUN(join_timeout_names_the_missing_rank);
    RUN(ranks_disagreeing_on_nranks_fail);
    RUN(two_ranks_with_one_number_fail);
    RUN(different_collectives_fail_on_every_rank_2_ranks);
    RUN(different_collectives_fail_on_every_rank_3_ranks);
    RUN(broadcast_root_out_of_range);
    RUN(one_rank_is_the_identity);
    RUN(bad_arguments_are_errors);
    RUN(nothing_left_in_dev_shm);
    return test_summary();
}
