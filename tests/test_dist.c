/* test_dist.c — the collectives across processes (runtime/dist.c).
 *
 *   test_dist              one process: world size 1, every collective a no-op, the
 *                          errors of a missing / wrong libmpi, caller bugs abort
 *   test_dist --mpi        under mpirun -np N (N >= 2): allreduce mean/sum (f64, f32),
 *                          chunked (test hook: chunks of 7), bcast from every root, max,
 *                          owner, barrier; each test's failures are summed over ranks and
 *                          rank 0 prints "pass: mpi_NAME" / "fail: mpi_NAME"
 *   test_dist --mpi-error  every rank makes one invalid MPI call through the check macro
 *                          (expected: MPI's error string, the call site, nonzero exit)
 *   test_dist --mpi-abort  rank 1 calls rt_dist_abort(3) while the others wait in a barrier
 *                          (expected: the whole job ends, nonzero)
 * tests/sh/dist.sh runs the MPI modes. */
#include "runtime/runtime.h"
#include "tests/test.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- one process ---- */

static char child_err[4096];

/* Runs fn in a child process; returns its exit status (-1 if it did not exit) with its
 * stderr in child_err. */
static int in_child(void (*fn)(void)) {
    int fds[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t k;
    while ((k = read(fds[0], child_err + n, sizeof child_err - 1 - n)) > 0) n += (size_t)k;
    child_err[n] = 0;
    close(fds[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static int libmpi_mapped(void) {
    FILE *fp = fopen("/proc/self/maps", "r");
    char line[1024];
    int found = 0;
    if (!fp) return -1;
    while (fgets(line, sizeof line, fp)) found |= strstr(line, "libmpi") != NULL;
    fclose(fp);
    return found;
}

TEST(missing_libmpi_is_a_clear_error) {
    char err[512] = "";
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    rt_dist_test_set_lib("libgptc-no-such-mpi.so.40");
    CHECK(rt_dist_init(NULL, NULL, err, sizeof err) == -1);
    CHECK(strstr(err, "launched by mpirun but libgptc-no-such-mpi.so.40 cannot be loaded: ") == err);
    CHECK(strstr(err, "install openmpi-bin") != NULL);
    if (!strstr(err, "cannot be loaded")) fprintf(stderr, "err: %s\n", err);
    rt_dist_test_set_lib(NULL);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    CHECK(rt_dist_size() == 1);
}

TEST(non_openmpi_library_is_a_clear_error) {
    char err[512] = "";
    setenv("PMIX_RANK", "0", 1);
    rt_dist_test_set_lib("libm.so.6");
    CHECK(rt_dist_init(NULL, NULL, err, sizeof err) == -1);
    CHECK_STR(err, "libm.so.6 has no symbol 'MPI_Init_thread' (gptc needs Open MPI, libmpi.so.40)");
    CHECK(rt_dist_init(NULL, NULL, NULL, 0) == -1);   /* err may be NULL */
    rt_dist_test_set_lib(NULL);
    unsetenv("PMIX_RANK");
}

static void barrier_under_mpirun_before_init(void) {
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    rt_dist_barrier();
}

TEST(collective_before_init_under_mpirun_aborts) {
    CHECK(in_child(barrier_under_mpirun_before_init) == 1);
    CHECK(strstr(child_err, "rt_dist_barrier: called before rt_dist_init") != NULL);
}

TEST(init_without_mpirun) {
    char err[256] = "";
    CHECK(rt_dist_init(NULL, NULL, err, sizeof err) == 0);
    CHECK_STR(err, "");
    CHECK(rt_dist_size() == 1);
    CHECK(rt_dist_rank() == 0);
    CHECK(rt_dist_init(NULL, NULL, err, sizeof err) == 0);   /* idempotent */
    CHECK(libmpi_mapped() == 0);                              /* nothing loaded */
}

TEST(allreduce_is_identity) {
    double d[5] = {1.5, -2, 0, 1e300, -0.0};
    float f[3] = {1.25f, -3, 7e30f};
    double d0[5], f0[3];
    memcpy(d0, d, sizeof d);
    for (int i = 0; i < 3; i++) f0[i] = f[i];
    rt_dist_allreduce_mean_f64(d, 5);
    CHECK(memcmp(d, d0, sizeof d) == 0);
    rt_dist_allreduce_sum_f64(d, 5);
    CHECK(memcmp(d, d0, sizeof d) == 0);
    rt_dist_allreduce_mean_f32(f, 3);
    for (int i = 0; i < 3; i++) CHECK(f[i] == f0[i]);
    rt_dist_allreduce_mean_f64(NULL, 0);   /* empty is fine */
    rt_dist_allreduce_mean_f32(NULL, 0);
    rt_dist_allreduce_sum_f64(NULL, 0);
}

TEST(bcast_barrier_max_are_noops) {
    char b[4] = "abc";
    rt_dist_bcast(b, 4, 0);
    CHECK_STR(b, "abc");
    rt_dist_bcast(NULL, 0, 0);
    rt_dist_barrier();
    CHECK(rt_dist_max_f64(-3.5) == -3.5);
    CHECK(rt_dist_max_f64(0.25) == 0.25);
}

TEST(owner_is_zero) {
    for (int i = 0; i < 100; i++) CHECK(rt_dist_owner(i) == 0);
    CHECK(rt_dist_owner(2147483647) == 0);
}

static void negative_count(void) { double d; rt_dist_allreduce_mean_f64(&d, -1); }
static void null_buffer(void) { rt_dist_allreduce_sum_f64(NULL, 3); }
static void bad_root(void) { char c = 0; rt_dist_bcast(&c, 1, 1); }
static void negative_owner(void) { rt_dist_owner(-1); }
static void after_finalize(void) { rt_dist_finalize(); rt_dist_barrier(); }
static void abort_code(void) { rt_dist_abort(7); }

TEST(caller_bugs_abort) {
    CHECK(in_child(negative_count) == 1);
    CHECK(strstr(child_err, "rank 0: rt_dist_allreduce_mean_f64: negative count") != NULL);
    CHECK(in_child(null_buffer) == 1);
    CHECK(strstr(child_err, "rt_dist_allreduce_sum_f64: NULL buffer") != NULL);
    CHECK(in_child(bad_root) == 1);
    CHECK(strstr(child_err, "rt_dist_bcast: root out of range") != NULL);
    CHECK(in_child(negative_owner) == 1);
    CHECK(strstr(child_err, "rt_dist_owner: negative index") != NULL);
    CHECK(in_child(after_finalize) == 1);
    CHECK(strstr(child_err, "rt_dist_barrier: called after rt_dist_finalize") != NULL);
    CHECK(in_child(abort_code) == 7);
    CHECK(in_child(rt_dist_test_mpi_error) == 1);
    CHECK(strstr(child_err, "needs mpirun") != NULL);
}

TEST(finalize_is_idempotent) {
    rt_dist_finalize();
    rt_dist_finalize();
    CHECK(rt_dist_size() == 1);
}

static int single_process(void) {
    RUN(missing_libmpi_is_a_clear_error);
    RUN(non_openmpi_library_is_a_clear_error);
    RUN(collective_before_init_under_mpirun_aborts);
    RUN(init_without_mpirun);
    RUN(allreduce_is_identity);
    RUN(bcast_barrier_max_are_noops);
    RUN(owner_is_zero);
    RUN(caller_bugs_abort);
    RUN(finalize_is_idempotent);
    return test_summary();
}

/* ---- under mpirun ---- */

static int R, S;   /* rank, size */

/* Runs a test on every rank; its failed checks are summed over ranks, rank 0 reports. */
#define MRUN(name) do { test_failed_checks = 0; name(); double f_ = test_failed_checks; \
    rt_dist_allreduce_sum_f64(&f_, 1); \
    if (f_ > 0) test_nfail++; else test_npass++; \
    if (R == 0) { printf("%s: mpi_%s\n", f_ > 0 ? "fail" : "pass", #name); fflush(stdout); } \
    } while (0)

TEST(rank_and_size) {
    const char *want = getenv("OMPI_COMM_WORLD_SIZE");
    CHECK(S >= 2);
    CHECK(want && atoi(want) == S);
    CHECK(R >= 0 && R < S);
    double ranks = R, ones = 1;
    rt_dist_allreduce_sum_f64(&ranks, 1);
    rt_dist_allreduce_sum_f64(&ones, 1);
    CHECK(ranks == S * (S - 1) / 2.0);   /* every rank appears once */
    CHECK(ones == S);
}

/* value of element i on rank r: exact integers (or halves), so sums are exact */
static double val(int r, int64_t i) { return 1000.0 * r + (double)(i % 997) - 0.5 * (i % 3); }

static double want_sum(int64_t i) {
    double s = 0;
    for (int r = 0; r < S; r++) s += val(r, i);
    return s;
}

/* Checks the three allreduces on n elements; returns the number of wrong elements. */
static int64_t allreduce_errors(int64_t n) {
    double *d = malloc((size_t)n * sizeof *d), *m = malloc((size_t)n * sizeof *m);
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) d[i] = m[i] = val(R, i), f[i] = (float)val(R, i);
    rt_dist_allreduce_sum_f64(d, n);
    rt_dist_allreduce_mean_f64(m, n);
    rt_dist_allreduce_mean_f32(f, n);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = want_sum(i);
        bad += d[i] != s;
        bad += m[i] != s / S;
        bad += f[i] != (float)s / (float)S;
    }
    free(d), free(m), free(f);
    return bad;
}

TEST(allreduce) {
    int64_t sizes[] = {0, 1, 2, 1000, 1 << 20};
    for (int k = 0; k < 5; k++) {
        int64_t bad = allreduce_errors(sizes[k]);
        if (bad) fprintf(stderr, "rank %d: n %lld: %lld wrong\n", R, (long long)sizes[k], (long long)bad);
        CHECK(bad == 0);
    }
}

TEST(allreduce_chunked) {
    int64_t sizes[] = {1, 6, 7, 8, 14, 100, 1001};
    rt_dist_test_set_chunk(7);
    for (int k = 0; k < 7; k++) {
        int64_t bad = allreduce_errors(sizes[k]);
        if (bad) fprintf(stderr, "rank %d: n %lld (chunks of 7): %lld wrong\n", R, (long long)sizes[k], (long long)bad);
        CHECK(bad == 0);
    }
    rt_dist_test_set_chunk(0);
}

/* Bcasts n bytes from every root; returns the number of wrong bytes. */
static int64_t bcast_errors(int64_t n) {
    unsigned char *b = malloc((size_t)n + 1);
    int64_t bad = 0;
    for (int root = 0; root < S; root++) {
        for (int64_t i = 0; i < n; i++) b[i] = (unsigned char)(R * 31 + i * 7);
        rt_dist_bcast(b, n, root);
        for (int64_t i = 0; i < n; i++) bad += b[i] != (unsigned char)(root * 31 + i * 7);
    }
    free(b);
    return bad;
}

TEST(bcast_from_every_root) {
    CHECK(bcast_errors(0) == 0);
    CHECK(bcast_errors(1) == 0);
    CHECK(bcast_errors(4099) == 0);
    rt_dist_test_set_chunk(5);
    CHECK(bcast_errors(37) == 0);
    CHECK(bcast_errors(40) == 0);
    rt_dist_test_set_chunk(0);
}

TEST(max) {
    CHECK(rt_dist_max_f64(1.5 * R) == 1.5 * (S - 1));
    CHECK(rt_dist_max_f64(-10.0 - R) == -10.0);
    CHECK(rt_dist_max_f64(R == S - 1 ? 1e300 : -1e300) == 1e300);
}

/* The Muon pattern: each matrix is computed by its owner only, then broadcast from it. */
TEST(owner_shards_work) {
    enum { N = 11 };
    double item[N] = {0}, mine = 0;
    for (int i = 0; i < N; i++) {
        CHECK(rt_dist_owner(i) == i % S);
        if (rt_dist_owner(i) == R) item[i] = 100.0 + i, mine++;
    }
    for (int i = 0; i < N; i++) rt_dist_bcast(&item[i], sizeof item[i], rt_dist_owner(i));
    for (int i = 0; i < N; i++) CHECK(item[i] == 100.0 + i);
    rt_dist_allreduce_sum_f64(&mine, 1);
    CHECK(mine == N);   /* every item owned by exactly one rank */
}

/* No rank leaves a barrier before every rank has reached it. Before the barrier each rank
 * leaves a file in a folder all ranks share (one machine), the last rank after a pause;
 * after it every rank must see all the files. The allreduces that follow are what the
 * cleanup waits on, so that it does not depend on the barrier under test. */
TEST(barrier) {
    char dir[64] = "";
    if (R == 0 && !mkdtemp(strcpy(dir, "/tmp/gptc-barrier-XXXXXX"))) dir[0] = 0;
    rt_dist_bcast(dir, sizeof dir, 0);
    CHECK(dir[0] != 0);
    if (!dir[0]) return;
    char mine[96], other[96];
    snprintf(mine, sizeof mine, "%s/%d", dir, R);
    for (int round = 0; round < 2; round++) {
        if (R == S - 1) usleep(300 * 1000);
        FILE *f = fopen(mine, "w");
        CHECK(f != NULL);
        if (f) fclose(f);
        rt_dist_barrier();
        int seen = 0;
        for (int r = 0; r < S; r++) {
            snprintf(other, sizeof other, "%s/%d", dir, r);
            seen += access(other, F_OK) == 0;
        }
        if (seen != S) fprintf(stderr, "rank %d, round %d: %d of %d ranks had reached the barrier\n", R, round, seen, S);
        CHECK(seen == S);
        double done = 1;
        rt_dist_allreduce_sum_f64(&done, 1);   /* every rank has looked */
        CHECK(remove(mine) == 0);
        rt_dist_allreduce_sum_f64(&done, 1);   /* every file is gone */
    }
    if (R == 0) CHECK(rmdir(dir) == 0);
}

static int under_mpirun(int *argc, char ***argv, const char *mode) {
    char err[512];
    if (rt_dist_init(argc, argv, err, sizeof err)) {
        fprintf(stderr, "rt_dist_init: %s\n", err);
        return 2;
    }
    R = rt_dist_rank(), S = rt_dist_size();
    if (!strcmp(mode, "--mpi-error")) rt_dist_test_mpi_error();
    if (!strcmp(mode, "--mpi-abort")) {
        if (R == 1) { fprintf(stderr, "rank 1 aborts\n"); rt_dist_abort(3); }
        rt_dist_barrier();   /* never completes */
        fprintf(stderr, "rank %d: passed a barrier that rank 1 never reached\n", R);
        rt_dist_finalize();
        return 0;
    }
    MRUN(rank_and_size);
    MRUN(allreduce);
    MRUN(allreduce_chunked);
    MRUN(bcast_from_every_root);
    MRUN(max);
    MRUN(owner_shards_work);
    MRUN(barrier);
    rt_dist_finalize();
    return test_summary();
}

int main(int argc, char **argv) {
    if (argc > 1 && !strncmp(argv[1], "--mpi", 5)) return under_mpirun(&argc, &argv, argv[1]);
    if (argc > 1) { fprintf(stderr, "usage: test_dist [--mpi | --mpi-error | --mpi-abort]\n"); return 2; }
    return single_process();
}
