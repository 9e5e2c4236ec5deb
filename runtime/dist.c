/* dist.c — collectives across processes; runtime.h has the API, the launch flags and the
 * ownership rule.
 *
 * Open MPI is reached only through dlopen/dlsym: the function pointers and predefined
 * handles below are declared with Open MPI's ABI (every handle is a pointer to a global
 * object in libmpi), so neither <mpi.h> nor -lmpi is needed to build. One process
 * (no mpirun) never touches MPI: every collective returns at once. */
#include "runtime/runtime.h"
#include "base/base.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Open MPI ABI (values from Open MPI's mpi.h) ---- */

typedef void *MpiHandle;                 /* MPI_Comm, MPI_Datatype, MPI_Op, MPI_Errhandler */
#define MPI_OK 0                         /* MPI_SUCCESS */
#define MPI_IN_PLACE_ ((void *)1)        /* MPI_IN_PLACE */
#define MPI_THREAD_FUNNELED_ 1
#define MPI_ERRSTR_MAX 1024              /* >= MPI_MAX_ERROR_STRING (256) */

typedef struct {
    int (*Init_thread)(int *, char ***, int, int *);
    int (*Comm_rank)(MpiHandle, int *);
    int (*Comm_size)(MpiHandle, int *);
    int (*Comm_set_errhandler)(MpiHandle, MpiHandle);
    int (*Allreduce)(const void *, void *, int, MpiHandle, MpiHandle, MpiHandle);
    int (*Bcast)(void *, int, MpiHandle, int, MpiHandle);
    int (*Barrier)(MpiHandle);
    int (*Finalize)(void);
    int (*Abort)(MpiHandle, int);
    int (*Error_string)(int, char *, int *);
    MpiHandle comm_world, t_double, t_float, t_byte, op_sum, op_max, errors_return;
} MpiApi;

/* ---- state ---- */

static struct {
    int inited, finalized, mpi;           /* mpi: running under mpirun with libmpi loaded */
    int rank, size;
    void *lib;
    MpiApi f;
    int64_t chunk;                         /* 0: RT_DIST_CHUNK */
    const char *test_lib;                  /* test hook: library to load instead */
} D = {.size = 1};

#define DIST_CHECK(call) dist_check((call), #call, __func__, __FILE__, __LINE__)

_Noreturn static void dist_bug(const char *fn, const char *msg) {
    fprintf(stderr, "gptc: rank %d: %s: %s\n", D.rank, fn, msg);
    rt_dist_abort(1);
}

/* Every MPI call's return code comes here: on failure, MPI's message, then abort. */
static void dist_check(int rc, const char *call, const char *fn, const char *file, int line) {
    if (rc == MPI_OK) return;
    char msg[MPI_ERRSTR_MAX] = {0};
    int len = 0;
    if (!D.f.Error_string || D.f.Error_string(rc, msg, &len) != MPI_OK)
        snprintf(msg, sizeof msg, "unknown MPI error code %d", rc);
    fprintf(stderr, "gptc: rank %d: MPI error in %s (%s:%d) from %s: %s\n", D.rank, fn, file,
            line, call, msg);
    rt_dist_abort(1);
}

static int dist_launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
}

/* True when collectives must go through MPI; aborts on calls out of order. */
static int dist_active(const char *fn) {
    if (D.finalized) dist_bug(fn, "called after rt_dist_finalize");
    if (!D.inited && dist_launched_by_mpirun()) dist_bug(fn, "called before rt_dist_init");
    return D.mpi && D.size > 1;
}

static int64_t dist_chunk(void) { return D.chunk > 0 ? D.chunk : RT_DIST_CHUNK; }

/* ---- loading libmpi ---- */

/* err = the formatted message (when err is not NULL). Always returns -1. */
static int dist_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void *dist_sym(void *lib, const char *name, const char *libname, char *err, size_t errlen) {
    void *p = dlsym(lib, name);
    if (!p) dist_fail(err, errlen, "%s has no symbol '%s' (gptc needs Open MPI, libmpi.so.40)",
                      libname, name);
    return p;
}

/* Loads the library (RTLD_GLOBAL: Open MPI's plugins resolve symbols through it); NULL with
 * err naming the first library tried and dlerror's reason. */
static void *dist_open(const char **libname, char *err, size_t errlen) {
    const char *names[2] = {D.test_lib ? D.test_lib : "libmpi.so.40", D.test_lib ? NULL : "libmpi.so"};
    char first[512] = "";
    int which = 0;
    void *lib = lib_open(names, 2, RTLD_NOW | RTLD_GLOBAL, &which, first, sizeof first);
    if (lib) {
        *libname = names[which];
        return lib;
    }
    dist_fail(err, errlen, "launched by mpirun but %s cannot be loaded: %s; "
              "install openmpi-bin (tools/deps.sh)", names[0], first);
    return NULL;
}

#define DIST_LOAD(field, name) \
    do { if (!(p = dist_sym(lib, name, libname, err, errlen))) { dlclose(lib); return -1; } \
         f.field = (__typeof__(f.field))p; } while (0)

/* Fills D.lib and D.f, all or nothing. */
static int dist_load(char *err, size_t errlen) {
    const char *libname = NULL;
    MpiApi f;
    void *p, *lib = dist_open(&libname, err, errlen);
    if (!lib) return -1;
    DIST_LOAD(Init_thread, "MPI_Init_thread");
    DIST_LOAD(Comm_rank, "MPI_Comm_rank");
    DIST_LOAD(Comm_size, "MPI_Comm_size");
    DIST_LOAD(Comm_set_errhandler, "MPI_Comm_set_errhandler");
    DIST_LOAD(Allreduce, "MPI_Allreduce");
    DIST_LOAD(Bcast, "MPI_Bcast");
    DIST_LOAD(Barrier, "MPI_Barrier");
    DIST_LOAD(Finalize, "MPI_Finalize");
    DIST_LOAD(Abort, "MPI_Abort");
    DIST_LOAD(Error_string, "MPI_Error_string");
    DIST_LOAD(comm_world, "ompi_mpi_comm_world");
    DIST_LOAD(t_double, "ompi_mpi_double");
    DIST_LOAD(t_float, "ompi_mpi_float");
    DIST_LOAD(t_byte, "ompi_mpi_byte");
    DIST_LOAD(op_sum, "ompi_mpi_op_sum");
    DIST_LOAD(op_max, "ompi_mpi_op_max");
    DIST_LOAD(errors_return, "ompi_mpi_errors_return");
    D.lib = lib;
    D.f = f;
    return 0;
}

/* ---- lifecycle ---- */

int rt_dist_init(int *argc, char ***argv, char *err, size_t errlen) {
    if (D.inited) return 0;
    if (!dist_launched_by_mpirun()) { D.rank = 0; D.size = 1; D.inited = 1; return 0; }
    if (!D.f.Init_thread && dist_load(err, errlen)) return -1;
    int provided = 0, rc = D.f.Init_thread(argc, argv, MPI_THREAD_FUNNELED_, &provided);
    if (rc != MPI_OK) {
        char msg[MPI_ERRSTR_MAX] = "unknown error";
        int len = 0;
        D.f.Error_string(rc, msg, &len);
        return dist_fail(err, errlen, "MPI_Init_thread failed: %s", msg);
    }
    D.mpi = D.inited = 1;
    DIST_CHECK(D.f.Comm_set_errhandler(D.f.comm_world, D.f.errors_return));
    DIST_CHECK(D.f.Comm_rank(D.f.comm_world, &D.rank));
    DIST_CHECK(D.f.Comm_size(D.f.comm_world, &D.size));
    return 0;
}

int rt_dist_rank(void) { return D.rank; }
int rt_dist_size(void) { return D.size; }

int rt_dist_owner(int index) {
    if (index < 0) dist_bug("rt_dist_owner", "negative index");
    return index % D.size;
}

void rt_dist_finalize(void) {
    if (!D.inited || D.finalized) return;
    D.finalized = 1;
    if (D.mpi) DIST_CHECK(D.f.Finalize());
}

_Noreturn void rt_dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    if (D.mpi && !D.finalized) D.f.Abort(D.f.comm_world, code);
    exit(code);
}

/* ---- collectives ---- */

static void dist_check_buf(const char *fn, const void *buf, int64_t n) {
    if (n < 0) dist_bug(fn, "negative count");
    if (n > 0 && !buf) dist_bug(fn, "NULL buffer");
}

/* In-place allreduce of n elements of elem_size bytes, chunk by chunk. */
static void dist_allreduce(void *buf, int64_t n, size_t elem_size, MpiHandle type, MpiHandle op) {
    int64_t chunk = dist_chunk();
    for (int64_t off = 0; off < n; off += chunk) {
        int cnt = (int)(n - off < chunk ? n - off : chunk);
        char *p = (char *)buf + (size_t)off * elem_size;
        DIST_CHECK(D.f.Allreduce(MPI_IN_PLACE_, p, cnt, type, op, D.f.comm_world));
    }
}

void rt_dist_allreduce_sum_f64(double *buf, int64_t n) {
    dist_check_buf("rt_dist_allreduce_sum_f64", buf, n);
    if (dist_active("rt_dist_allreduce_sum_f64"))
        dist_allreduce(buf, n, sizeof *buf, D.f.t_double, D.f.op_sum);
}

void rt_dist_allreduce_mean_f64(double *buf, int64_t n) {
    dist_check_buf("rt_dist_allreduce_mean_f64", buf, n);
    if (!dist_active("rt_dist_allreduce_mean_f64")) return;
    dist_allreduce(buf, n, sizeof *buf, D.f.t_double, D.f.op_sum);
    double s = (double)D.size;
    for (int64_t i = 0; i < n; i++) buf[i] /= s;
}

void rt_dist_allreduce_mean_f32(float *buf, int64_t n) {
    dist_check_buf("rt_dist_allreduce_mean_f32", buf, n);
    if (!dist_active("rt_dist_allreduce_mean_f32")) return;
    dist_allreduce(buf, n, sizeof *buf, D.f.t_float, D.f.op_sum);
    float s = (float)D.size;
    for (int64_t i = 0; i < n; i++) buf[i] /= s;
}

void rt_dist_bcast(void *buf, int64_t bytes, int root) {
    dist_check_buf("rt_dist_bcast", buf, bytes);
    if (root < 0 || root >= D.size) dist_bug("rt_dist_bcast", "root out of range");
    if (!dist_active("rt_dist_bcast")) return;
    int64_t chunk = dist_chunk();
    for (int64_t off = 0; off < bytes; off += chunk) {
        int cnt = (int)(bytes - off < chunk ? bytes - off : chunk);
        DIST_CHECK(D.f.Bcast((char *)buf + off, cnt, D.f.t_byte, root, D.f.comm_world));
    }
}

void rt_dist_barrier(void) {
    if (dist_active("rt_dist_barrier")) DIST_CHECK(D.f.Barrier(D.f.comm_world));
}

double rt_dist_max_f64(double v) {
    if (dist_active("rt_dist_max_f64"))
        DIST_CHECK(D.f.Allreduce(MPI_IN_PLACE_, &v, 1, D.f.t_double, D.f.op_max, D.f.comm_world));
    return v;
}

/* ---- test hooks ---- */

void rt_dist_test_set_chunk(int64_t n) { D.chunk = n > INT_MAX ? INT_MAX : n; }
void rt_dist_test_set_lib(const char *name) { D.test_lib = name; }

_Noreturn void rt_dist_test_mpi_error(void) {
    char b = 0;
    if (!D.mpi) dist_bug("rt_dist_test_mpi_error", "needs mpirun");
    DIST_CHECK(D.f.Bcast(&b, 1, D.f.t_byte, -7, D.f.comm_world));
    dist_bug("rt_dist_test_mpi_error", "MPI accepted root -7");
}
