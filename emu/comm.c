/* comm.c — the emulated NCCL's data movement through POSIX shared memory; comm.h has the
 * API and the ownership rule.
 *
 * One segment per communicator, laid out from nranks alone, so every rank that maps it
 * agrees on where things are:
 *
 *   CommHeader          sizes, the join counter, the barrier, the first failure
 *   RankState[nranks]   per rank: joined, barriers entered, the collective it issued
 *   slots[nranks]       per rank: COMM_CHUNK bytes where it puts its part of a chunk
 *
 * A collective is one round per chunk (at least one): each rank copies its part into its
 * slot, barrier, every rank reads the slots it needs, barrier (then the slots and the call
 * records may be reused). After the first barrier every rank compares the call records,
 * so ranks that issue different collectives fail together instead of mixing data.
 *
 * Every wait polls (sched_yield, then short sleeps, so ranks sharing busy cores still make
 * progress), gives up after the timeout, and also stops when another rank has published
 * a failure in the header: one rank's error ends the collective everywhere, fast. */
#include "emu/comm.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The barrier's words live in memory shared between processes: a lock-based fallback
 * would keep its lock inside one process and not work. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "process-shared atomics need lock-free int");

enum {
    COMM_CHUNK = 4 << 20,        /* bytes of one rank's slot */
    COMM_PAGE = 4096,
    COMM_SPINS = 4000,           /* polls with sched_yield before polls with a sleep */
    COMM_SLEEP_NS = 50 * 1000,
    COMM_BLOCK = 1024,           /* elements averaged at a time, in a float buffer */
    COMM_MSG = 512,
};
#define COMM_MAGIC 0x676d6d6f4375456dull
#define COMM_ERR_PREFIX "NCCL emulation: "
#define COMM_TIMEOUT_ENV "GPTC_EMU_COMM_TIMEOUT"
#define COMM_TIMEOUT_S 120.0

typedef enum { CALL_ALLREDUCE_F32 = 1, CALL_ALLREDUCE_BF16, CALL_BROADCAST } CallOp;

/* One collective as issued by one rank: what the ranks compare before moving data. */
typedef struct {
    uint32_t op;                 /* CallOp */
    int32_t root;                /* broadcast; -1 otherwise */
    uint64_t count;              /* elements (all-reduce) or bytes (broadcast) */
} Call;

typedef struct {
    uint64_t magic, nranks, bytes;
    int32_t creator;             /* the rank that created the segment and set nranks */
    _Atomic uint32_t ready;      /* 1 once the creator has filled in the fields above */
    _Atomic uint32_t joined;     /* ranks that have mapped the segment */
    _Atomic uint32_t arrived;    /* ranks in the current barrier */
    _Atomic uint32_t generation; /* barriers completed: the value waiting ranks watch */
    _Atomic int32_t failed;      /* 0; -1 while failed_msg is written; then failing rank + 1 */
    char failed_msg[COMM_MSG];
} CommHeader;

/* One cache line per rank, so that ranks writing their own records do not slow the others. */
typedef struct {
    _Alignas(64) _Atomic uint32_t present;   /* 1 once this rank has joined */
    _Atomic uint32_t barriers;               /* barriers this rank has entered */
    Call call;                               /* its current collective */
} RankState;

struct EmuComm {
    int rank, nranks;
    int broken;                  /* a call failed: every later call fails */
    int published;               /* the failure in the header is this process's */
    double timeout;              /* seconds any one wait may take */
    uint32_t barriers;           /* barriers this rank has entered */
    char name[EMU_COMM_ID_BYTES];
    unsigned char *base;         /* the mapped segment, bytes long */
    size_t bytes;
    CommHeader *h;
    RankState *ranks;            /* [nranks] */
    unsigned char *slots;        /* [nranks][COMM_CHUNK] */
};

/* ---- errors ---- */

static int set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Publishes msg as the communicator's first failure (a later one is dropped: the first is
 * the cause), so that ranks waiting anywhere stop with it. */
static void publish_failure(EmuComm *c, const char *msg) {
    int32_t expected = 0;
    if (!c->h || !atomic_compare_exchange_strong(&c->h->failed, &expected, -1)) return;
    snprintf(c->h->failed_msg, sizeof c->h->failed_msg, "%s", msg);
    c->published = 1;
    atomic_store_explicit(&c->h->failed, c->rank + 1, memory_order_release);
}

/* err = "NCCL emulation: <message>"; the communicator is broken from now on, here and, by
 * the header, on every other rank. Returns -1. */
static int comm_fail(EmuComm *c, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int comm_fail(EmuComm *c, char *err, size_t errlen, const char *fmt, ...) {
    char msg[COMM_MSG];
    size_t n = (size_t)snprintf(msg, sizeof msg, COMM_ERR_PREFIX);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - n, fmt, ap);
    va_end(ap);
    c->broken = 1;
    publish_failure(c, msg);
    return set_err(err, errlen, "%s", msg);
}

/* The rank that published a failure, if not this process (which may share its rank
 * number with another, by mistake); -1 if none. */
static int peer_failure(const EmuComm *c) {
    int32_t f = atomic_load_explicit(&c->h->failed, memory_order_acquire);
    return f > 0 && !c->published ? f - 1 : -1;
}

/* The published message without its prefix, to quote inside this rank's message. */
static const char *peer_message(const EmuComm *c) {
    const char *m = c->h->failed_msg;
    size_t n = strlen(COMM_ERR_PREFIX);
    return strncmp(m, COMM_ERR_PREFIX, n) == 0 ? m + n : m;
}

/* ---- waiting ---- */

typedef struct {
    struct timespec start;
    unsigned polls;
} Poll;

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void poll_start(Poll *p) {
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    p->polls = 0;
}

/* Lets the other ranks run, then returns the seconds waited so far. Yielding first keeps
 * the latency low; sleeping later keeps two ranks on two busy cores from starving the
 * work they wait for. */
static double poll_pause(Poll *p) {
    if (p->polls++ < COMM_SPINS) {
        sched_yield();
    } else {
        struct timespec ns = {0, COMM_SLEEP_NS};
        nanosleep(&ns, NULL);
    }
    return seconds_since(&p->start);
}

typedef enum { WAIT_DONE, WAIT_TIMEOUT, WAIT_PEER_FAILED } WaitResult;

/* Waits until *word == target, another rank publishes a failure, or the timeout. */
static WaitResult wait_for(const EmuComm *c, _Atomic uint32_t *word, uint32_t target) {
    Poll p;
    poll_start(&p);
    for (;;) {
        if (atomic_load_explicit(word, memory_order_acquire) == target) return WAIT_DONE;
        /* A rank publishes a failure only after it saw everything it waited for, so look
         * once more: a barrier that completed is reported as completed on every rank. */
        if (peer_failure(c) >= 0)
            return atomic_load_explicit(word, memory_order_acquire) == target ? WAIT_DONE : WAIT_PEER_FAILED;
        if (poll_pause(&p) > c->timeout) return WAIT_TIMEOUT;
    }
}

static int rank_missing(const EmuComm *c, int r, int joining) {
    return joining ? !atomic_load(&c->ranks[r].present) : atomic_load(&c->ranks[r].barriers) != c->barriers;
}

/* "rank 0" or "ranks 0, 2": the ranks not yet at the current barrier (or not joined). */
static void missing_ranks(const EmuComm *c, int joining, char *out, size_t len) {
    int count = 0, listed = 0;
    for (int r = 0; r < c->nranks; r++) count += rank_missing(c, r, joining);
    size_t n = (size_t)snprintf(out, len, "%s", count == 1 ? "rank " : "ranks ");
    for (int r = 0; r < c->nranks && n < len; r++)
        if (rank_missing(c, r, joining)) n += (size_t)snprintf(out + n, len - n, "%s%d", listed++ ? ", " : "", r);
}

/* err = this rank stopped at `at` (a collective, or joining) because another rank failed. */
static int peer_failed_error(EmuComm *c, const char *at, char *err, size_t errlen) {
    return comm_fail(c, err, errlen, "rank %d stopped %s because rank %d failed: %s", c->rank, at,
                     peer_failure(c), peer_message(c));
}

/* Waits as wait_for; on failure, err says where this rank waited (call: "an all-reduce",
 * or NULL while joining) and for whom, or which other rank failed first. */
static int comm_wait(EmuComm *c, _Atomic uint32_t *word, uint32_t target, const char *call, char *err,
                     size_t errlen) {
    WaitResult w = wait_for(c, word, target);
    char at[64], who[COMM_MSG / 2];
    snprintf(at, sizeof at, "%s%s", call ? "at " : "while joining", call ? call : "");
    if (w == WAIT_DONE) return 0;
    if (w == WAIT_PEER_FAILED) return peer_failed_error(c, at, err, errlen);
    missing_ranks(c, call == NULL, who, sizeof who);
    if (!call)
        return comm_fail(c, err, errlen, "rank %d waited %g s for %s to join the communicator "
                         "(was every rank started, with the same id?)", c->rank, c->timeout, who);
    return comm_fail(c, err, errlen, "rank %d waited %g s %s for %s (did a rank die or issue a different collective?)",
                     c->rank, c->timeout, at, who);
}

/* Sense-reversing counter barrier: the last rank to arrive resets the counter and moves
 * the generation on to the value every rank expects (its own count of barriers), which
 * releases the others. call: the collective ("an all-reduce"), for messages. */
static int comm_barrier(EmuComm *c, const char *call, char *err, size_t errlen) {
    CommHeader *h = c->h;
    uint32_t target = ++c->barriers;
    atomic_store(&c->ranks[c->rank].barriers, target);
    if (atomic_fetch_add_explicit(&h->arrived, 1, memory_order_acq_rel) == (uint32_t)c->nranks - 1) {
        atomic_store_explicit(&h->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&h->generation, target, memory_order_release);
        return 0;
    }
    return comm_wait(c, &h->generation, target, call, err, errlen);
}

/* ---- the segment ---- */

static size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

static size_t states_offset(void) { return align_up(sizeof(CommHeader), 64); }

static size_t slots_offset(int nranks) {
    return align_up(states_offset() + (size_t)nranks * sizeof(RankState), COMM_PAGE);
}

static size_t segment_bytes(int nranks) { return slots_offset(nranks) + (size_t)nranks * COMM_CHUNK; }

static unsigned char *slot(const EmuComm *c, int r) { return c->slots + (size_t)r * COMM_CHUNK; }

static void point_into(EmuComm *c, unsigned char *base, size_t bytes, int nranks) {
    c->base = base;
    c->bytes = bytes;
    c->h = (CommHeader *)base;
    c->ranks = (RankState *)(base + states_offset());
    c->slots = base + slots_offset(nranks);
}

static unsigned char *map_fd(int fd, size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Creates the segment (*created = 1) or opens the one another rank created. */
static int open_segment(EmuComm *c, int *created, char *err, size_t errlen) {
    for (int tries = 0; tries < 100; tries++) {
        int fd = shm_open(c->name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) return *created = 1, fd;
        if (errno != EEXIST) break;
        fd = shm_open(c->name, O_RDWR, 0600);
        if (fd >= 0) return *created = 0, fd;
        if (errno != ENOENT) break;
        /* unlinked between the two calls (the ranks before gave up): create it anew */
    }
    return set_err(err, errlen, COMM_ERR_PREFIX "rank %d cannot open shared memory %s: %s", c->rank, c->name,
                   strerror(errno));
}

/* The first rank sizes the segment, reserves its memory (so a full /dev/shm fails here,
 * not with SIGBUS in a collective) and fills in the header; ready is set last. */
static int create_segment(EmuComm *c, int fd, char *err, size_t errlen) {
    size_t bytes = segment_bytes(c->nranks);
    if (ftruncate(fd, (off_t)bytes))
        return set_err(err, errlen, COMM_ERR_PREFIX "cannot size shared memory %s: %s", c->name, strerror(errno));
    unsigned char *base = map_fd(fd, bytes);
    if (!base)
        return set_err(err, errlen, COMM_ERR_PREFIX "cannot map %zu MiB of shared memory: %s", bytes >> 20,
                       strerror(errno));
    point_into(c, base, bytes, c->nranks);
    int rc = posix_fallocate(fd, 0, (off_t)bytes);
    if (rc)   /* published in the header (one page), so the ranks already here stop too */
        return comm_fail(c, err, errlen, "cannot reserve %zu MiB of shared memory in /dev/shm for %d ranks: %s "
                         "(in a container, raise --shm-size)", bytes >> 20, c->nranks, strerror(rc));
    c->h->magic = COMM_MAGIC;
    c->h->nranks = (uint64_t)c->nranks;
    c->h->bytes = bytes;
    c->h->creator = c->rank;
    atomic_store_explicit(&c->h->ready, 1, memory_order_release);
    return 0;
}

/* Waits until the creator has sized the segment; its size, or 0 with err. */
static size_t wait_for_size(EmuComm *c, int fd, char *err, size_t errlen) {
    Poll p;
    poll_start(&p);
    for (;;) {
        struct stat st;
        if (fstat(fd, &st))
            return set_err(err, errlen, COMM_ERR_PREFIX "cannot stat shared memory %s: %s", c->name, strerror(errno)), 0;
        if ((size_t)st.st_size >= slots_offset(1)) return (size_t)st.st_size;
        if (poll_pause(&p) > c->timeout)
            return set_err(err, errlen, COMM_ERR_PREFIX "rank %d waited %g s for shared memory %s to be set up",
                           c->rank, c->timeout, c->name), 0;
    }
}

/* Maps the segment another rank created and checks that it was made for as many ranks. */
static int attach_segment(EmuComm *c, int fd, char *err, size_t errlen) {
    size_t bytes = wait_for_size(c, fd, err, errlen);
    if (!bytes) return -1;
    unsigned char *base = map_fd(fd, bytes);
    if (!base)
        return set_err(err, errlen, COMM_ERR_PREFIX "cannot map shared memory %s: %s", c->name, strerror(errno));
    point_into(c, base, bytes, c->nranks);
    WaitResult w = wait_for(c, &c->h->ready, 1);
    if (w == WAIT_PEER_FAILED) return peer_failed_error(c, "while joining", err, errlen);
    if (w == WAIT_TIMEOUT)
        return comm_fail(c, err, errlen, "rank %d waited %g s for the rank that created shared memory %s to set it up",
                         c->rank, c->timeout, c->name);
    if (c->h->magic != COMM_MAGIC || c->h->bytes != bytes)
        return comm_fail(c, err, errlen, "shared memory %s is not a communicator's segment", c->name);
    if (c->h->nranks != (uint64_t)c->nranks)
        return comm_fail(c, err, errlen, "rank %d joined with %d ranks but rank %d created the communicator with %d",
                         c->rank, c->nranks, c->h->creator, (int)c->h->nranks);
    return 0;
}

/* Counts this rank in and waits for the rest. Every rank unlinks the name once all have
 * joined (all but the first find it gone), so no rank returns while it still exists. */
static int join(EmuComm *c, char *err, size_t errlen) {
    if (atomic_exchange(&c->ranks[c->rank].present, 1))
        return comm_fail(c, err, errlen, "rank %d joined twice (two processes were given the same rank)", c->rank);
    atomic_fetch_add_explicit(&c->h->joined, 1, memory_order_acq_rel);
    if (comm_wait(c, &c->h->joined, (uint32_t)c->nranks, NULL, err, errlen)) return -1;
    shm_unlink(c->name);
    return 0;
}

/* ---- set-up ---- */

static const char *timeout_env(double *seconds) {
    const char *s = getenv(COMM_TIMEOUT_ENV);
    char *end;
    *seconds = COMM_TIMEOUT_S;
    if (!s || !*s) return NULL;
    double v = strtod(s, &end);
    if (*end || !(v > 0) || !isfinite(v)) return s;
    *seconds = v;
    return NULL;
}

static int check_init_args(int nranks, const char *id, int rank, char *err, size_t errlen) {
    if (nranks < 1) return set_err(err, errlen, COMM_ERR_PREFIX "a communicator needs 1 rank or more, not %d", nranks);
    if (rank < 0 || rank >= nranks)
        return set_err(err, errlen, COMM_ERR_PREFIX "rank %d is not in 0..%d", rank, nranks - 1);
    if (!memchr(id, 0, EMU_COMM_ID_BYTES) || id[0] != '/' || strchr(id + 1, '/') || !id[1])
        return set_err(err, errlen, COMM_ERR_PREFIX "rank %d got an id that is not a communicator id "
                       "(was it made by emu_comm_unique_id and sent whole?)", rank);
    return 0;
}

int emu_comm_unique_id(char id[EMU_COMM_ID_BYTES], char *err, size_t errlen) {
    static _Atomic unsigned counter;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        /* no entropy yet: pid and counter alone keep the name unique on this machine */
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        r = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
    }
    memset(id, 0, EMU_COMM_ID_BYTES);
    snprintf(id, EMU_COMM_ID_BYTES, "/gptc-emu-%ld-%016llx-%u", (long)getpid(), (unsigned long long)r,
             atomic_fetch_add(&counter, 1));
    return 0;
}

int emu_comm_init(EmuComm **out, int nranks, const char id[EMU_COMM_ID_BYTES], int rank, char *err,
                  size_t errlen) {
    *out = NULL;
    if (check_init_args(nranks, id, rank, err, errlen)) return -1;
    EmuComm *c = calloc(1, sizeof *c);
    if (!c) return set_err(err, errlen, COMM_ERR_PREFIX "out of memory");
    c->rank = rank;
    c->nranks = nranks;
    memcpy(c->name, id, EMU_COMM_ID_BYTES);
    const char *bad = timeout_env(&c->timeout);
    if (bad) {
        free(c);
        return set_err(err, errlen, COMM_ERR_PREFIX COMM_TIMEOUT_ENV " must be a number of seconds > 0, not '%s'", bad);
    }
    int created = 0, fd = open_segment(c, &created, err, errlen);
    int rc = fd < 0 ? -1 : created ? create_segment(c, fd, err, errlen) : attach_segment(c, fd, err, errlen);
    if (fd >= 0) close(fd);   /* the mapping keeps the segment alive */
    if (rc == 0) rc = join(c, err, errlen);
    if (rc) {
        /* leave nothing behind: the other ranks stop too (the failure is published) */
        if (fd >= 0) shm_unlink(c->name);
        emu_comm_destroy(c);
        return -1;
    }
    *out = c;
    return 0;
}

int emu_comm_rank(const EmuComm *c) { return c->rank; }

int emu_comm_size(const EmuComm *c) { return c->nranks; }

void emu_comm_destroy(EmuComm *c) {
    if (!c) return;
    if (c->base) munmap(c->base, c->bytes);
    free(c);
}

/* ---- collectives ---- */

static const char *call_name(uint32_t op) { return op == CALL_BROADCAST ? "a broadcast" : "an all-reduce"; }

/* "an all-reduce of 10 f32", "a broadcast of 40 bytes from rank 1" */
static void describe_call(const Call *k, char *out, size_t len) {
    if (k->op == CALL_BROADCAST)
        snprintf(out, len, "a broadcast of %llu bytes from rank %d", (unsigned long long)k->count, (int)k->root);
    else
        snprintf(out, len, "an all-reduce of %llu %s", (unsigned long long)k->count,
                 k->op == CALL_ALLREDUCE_BF16 ? "bf16" : "f32");
}

/* Every rank compares every record with rank 0's after the first barrier: they all see the
 * same records, so they all fail, with the same message, or all go on. */
static int check_calls_agree(EmuComm *c, char *err, size_t errlen) {
    const Call *first = &c->ranks[0].call;
    for (int r = 1; r < c->nranks; r++) {
        const Call *k = &c->ranks[r].call;
        if (k->op == first->op && k->count == first->count && k->root == first->root) continue;
        char a[128], b[128];
        describe_call(first, a, sizeof a);
        describe_call(k, b, sizeof b);
        return comm_fail(c, err, errlen, "ranks issued different collectives at once: rank 0 %s, rank %d %s", a, r, b);
    }
    return 0;
}

/* Checks the arguments and that the communicator still works, then records the call for
 * the other ranks to compare. */
static int begin_call(EmuComm *c, const Call *k, const void *buf, size_t bytes_per, char *err, size_t errlen) {
    if (c->broken)
        return set_err(err, errlen, COMM_ERR_PREFIX "rank %d: the communicator failed earlier; destroy it", c->rank);
    char at[64];
    snprintf(at, sizeof at, "at %s", call_name(k->op));
    if (peer_failure(c) >= 0) return peer_failed_error(c, at, err, errlen);
    if (k->count > SIZE_MAX / bytes_per || (k->count && !buf))
        return comm_fail(c, err, errlen, "rank %d issued %s of %llu elements from %s", c->rank, call_name(k->op),
                         (unsigned long long)k->count, buf ? "a buffer too large" : "a NULL buffer");
    if (k->op == CALL_BROADCAST && (k->root < 0 || k->root >= c->nranks))
        return comm_fail(c, err, errlen, "rank %d issued a broadcast from rank %d, not in 0..%d", c->rank,
                         (int)k->root, c->nranks - 1);
    c->ranks[c->rank].call = *k;
    return 0;
}

/* The round's first barrier; the first round of a call also checks the call records. */
static int exchange(EmuComm *c, uint32_t op, int first_round, char *err, size_t errlen) {
    if (comm_barrier(c, call_name(op), err, errlen)) return -1;
    return first_round ? check_calls_agree(c, err, errlen) : 0;
}

static float bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even; a NaN keeps its top bits and gets the quiet bit, so it cannot
 * turn into an infinity by losing its low mantissa bits. */
static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40);
    u += 0x7fffu + (u >> 16 & 1);
    return (uint16_t)(u >> 16);
}

/* acc[0..m) = sum over the ranks, in rank order, of their slots' elements at i0.. (float) */
static void sum_block(const EmuComm *c, int bf16, size_t i0, size_t m, float *acc) {
    for (int r = 0; r < c->nranks; r++) {
        if (bf16) {
            const uint16_t *s = (const uint16_t *)slot(c, r) + i0;
            for (size_t j = 0; j < m; j++) acc[j] = r ? acc[j] + bf16_to_f32(s[j]) : bf16_to_f32(s[j]);
        } else {
            const float *s = (const float *)slot(c, r) + i0;
            for (size_t j = 0; j < m; j++) acc[j] = r ? acc[j] + s[j] : s[j];
        }
    }
}

/* out[0..n) = the average of the ranks' slots (n elements each) */
static void average_slots(const EmuComm *c, int bf16, void *out, size_t n) {
    float acc[COMM_BLOCK], div = (float)c->nranks;
    for (size_t i0 = 0; i0 < n; i0 += COMM_BLOCK) {
        size_t m = n - i0 < COMM_BLOCK ? n - i0 : COMM_BLOCK;
        sum_block(c, bf16, i0, m, acc);
        for (size_t j = 0; j < m; j++) {
            if (bf16)
                ((uint16_t *)out)[i0 + j] = f32_to_bf16(acc[j] / div);
            else
                ((float *)out)[i0 + j] = acc[j] / div;
        }
    }
}

int emu_comm_allreduce_avg(EmuComm *c, void *buf, size_t count, int bf16, char *err, size_t errlen) {
    Call k = {bf16 ? CALL_ALLREDUCE_BF16 : CALL_ALLREDUCE_F32, -1, count};
    size_t esize = bf16 ? sizeof(uint16_t) : sizeof(float), per_chunk = COMM_CHUNK / esize, done = 0;
    if (begin_call(c, &k, buf, esize, err, errlen)) return -1;
    do {
        size_t n = count - done < per_chunk ? count - done : per_chunk;
        unsigned char *part = n ? (unsigned char *)buf + done * esize : NULL;   /* buf may be NULL */
        if (n) memcpy(slot(c, c->rank), part, n * esize);
        if (exchange(c, k.op, done == 0, err, errlen)) return -1;
        average_slots(c, bf16, part, n);
        if (comm_barrier(c, call_name(k.op), err, errlen)) return -1;
        done += n;
    } while (done < count);
    return 0;
}

int emu_comm_broadcast(EmuComm *c, void *buf, size_t bytes, int root, char *err, size_t errlen) {
    Call k = {CALL_BROADCAST, root, bytes};
    size_t done = 0;
    if (begin_call(c, &k, buf, 1, err, errlen)) return -1;
    do {
        size_t n = bytes - done < COMM_CHUNK ? bytes - done : COMM_CHUNK;
        unsigned char *part = n ? (unsigned char *)buf + done : NULL;
        if (c->rank == root && n) memcpy(slot(c, root), part, n);
        if (exchange(c, k.op, done == 0, err, errlen)) return -1;
        if (c->rank != root && n) memcpy(part, slot(c, root), n);
        if (comm_barrier(c, call_name(k.op), err, errlen)) return -1;
        done += n;
    } while (done < bytes);
    return 0;
}
