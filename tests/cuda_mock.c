/* cuda_mock.c — a recording stand-in for libcuda.so.1 and libcublasLt, so that the cuda
 * backend's host side runs and is checked on machines without a GPU.
 *
 * Built as a shared object (build/tests/libcudamock.so) and loaded by gptc through
 * GPTC_LIBCUDA and GPTC_LIBCUBLASLT. "Device" memory is host memory (calloc), so copies
 * to and from it are real; no kernel runs. What it checks, failing the call that breaks
 * a rule (as the driver would, or as a kernel's out-of-bounds access would fault):
 *   - modules are cubins (ELF), and every function asked for is in the module;
 *   - launches: a function of a loaded module, 1..1024 threads, a grid within limits,
 *     every pointer argument of the library kernels inside one allocation for the extent
 *     the kernel touches (from its scalar arguments), the first argument of generated
 *     kernels inside an allocation;
 *   - copies and memsets inside allocations; no synchronous copy while a stream captures;
 *   - cuBLASLt products: operand types (A, B alike; f32 or bf16), shapes that agree
 *     (op(A) m×k, op(B) k×n, D m×n) and every operand's extent (leading dimension,
 *     batch stride and count) inside one allocation.
 *   - NCCL (GPTC_LIBNCCL): a communicator made from a unique id of this stand-in, of the
 *     size and rank mpirun gave; all-reduces averaging f32 or bf16 in place inside an
 *     allocation, on a stream (captured or not); in-place broadcasts from a valid root.
 * At exit it writes counters to $GPTC_MOCK_LOG (.RANK appended under mpirun):
 * allocations, modules, eager launches, graphs captured (and their launches), graph
 * launches, products, all-reduces, broadcasts (and those from this rank), errors (each
 * named).
 * GPTC_MOCK_NO_DEVICE=1 makes cuInit fail as on a machine whose driver sees no GPU. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
enum { OK = 0, E_INVALID = 1, E_NO_DEVICE = 100, E_INVALID_IMAGE = 200, E_NOT_FOUND = 500, E_CAPTURE = 900 };

#define MAX_ALLOCS 256
static struct { char *p; size_t n; } allocs[MAX_ALLOCS];
static int nallocs, live_allocs, modules, eager, graphs, graph_nodes, graph_launches, gemms, errors, allreduces,
    allreduces_captured, broadcasts, broadcasts_from_me;
static size_t alloc_bytes;
static int capturing, captured;

typedef struct { char name[128]; } Func;
typedef struct { int nodes; } Graph;

/* $GPTC_MOCK_LOG, or $GPTC_MOCK_LOG.RANK in a process started by mpirun */
static FILE *open_log(void)
{
    const char *path = getenv("GPTC_MOCK_LOG"), *rank = getenv("OMPI_COMM_WORLD_RANK");
    char name[4096];
    if (!path || !*path) return NULL;
    snprintf(name, sizeof name, rank ? "%s.%s" : "%s", path, rank);
    return fopen(name, "a");
}

static void report(void)
{
    FILE *f = open_log();
    if (!f) return;
    fprintf(f, "allocations %d bytes %zu live %d\nmodules %d\neager_launches %d\ngraphs %d nodes %d\n"
               "graph_launches %d\ngemms %d\nallreduces %d captured %d\nbroadcasts %d from_me %d\nerrors %d\n",
            nallocs, alloc_bytes, live_allocs, modules, eager, graphs, graph_nodes, graph_launches, gemms, allreduces,
            allreduces_captured, broadcasts, broadcasts_from_me, errors);
    fclose(f);
}

static CUresult fail(CUresult r, const char *fmt, const char *a, long long b)
{
    errors++;
    fprintf(stderr, "cuda mock: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    FILE *f = open_log();
    if (f) {
        fprintf(f, "error: ");
        fprintf(f, fmt, a, b);
        fputc('\n', f);
        fclose(f);
    }
    return r;
}

/* is [p, p + n) inside one live allocation? */
static int inside(CUdeviceptr p, size_t n)
{
    for (int i = 0; i < nallocs; i++)
        if (allocs[i].p && p >= (CUdeviceptr)(uintptr_t)allocs[i].p &&
            p + n <= (CUdeviceptr)(uintptr_t)allocs[i].p + allocs[i].n)
            return 1;
    return 0;
}

/* ---- device, context, memory ---------------------------------------------------------- */

CUresult cuInit(unsigned flags)
{
    static int once;
    if (!once++) atexit(report);
    const char *nd = getenv("GPTC_MOCK_NO_DEVICE");
    return nd && !strcmp(nd, "1") ? E_NO_DEVICE : OK;
}
CUresult cuDeviceGetCount(int *n) { *n = 1; return OK; }
CUresult cuDeviceGet(int *d, int i) { *d = i; return i == 0 ? OK : E_INVALID; }
CUresult cuDeviceGetName(char *s, int n, int d) { snprintf(s, (size_t)n, "gptc mock device"); return OK; }
CUresult cuDeviceGetAttribute(int *v, int attr, int d)
{
    *v = attr == 75 ? 9 : attr == 76 ? 0 : attr == 16 ? 132 : 0;
    return OK;
}
CUresult cuDevicePrimaryCtxRetain(void **ctx, int d) { static int c; *ctx = &c; return OK; }
CUresult cuCtxSetCurrent(void *ctx) { return OK; }
CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total) { *free_b = *total = (size_t)80 << 30; return OK; }
CUresult cuGetErrorString(CUresult r, const char **s) { *s = "error reported by the cuda mock"; return OK; }

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n)
{
    if (nallocs == MAX_ALLOCS) return fail(E_INVALID, "%s more than %lld allocations", "", MAX_ALLOCS);
    char *m = calloc(n ? n : 1, 1);
    if (!m) return 2;   /* CUDA_ERROR_OUT_OF_MEMORY */
    allocs[nallocs].p = m;
    allocs[nallocs++].n = n;
    live_allocs++;
    alloc_bytes += n;
    *p = (CUdeviceptr)(uintptr_t)m;
    return OK;
}

CUresult cuMemFree_v2(CUdeviceptr p)
{
    for (int i = 0; i < nallocs; i++)
        if (allocs[i].p && (CUdeviceptr)(uintptr_t)allocs[i].p == p) {
            free(allocs[i].p);
            allocs[i].p = NULL;
            live_allocs--;
            return OK;
        }
    return fail(E_INVALID, "%scuMemFree of an address never allocated (%llx)", "", (long long)p);
}

static CUresult copy(void *to, const void *from, size_t n, CUdeviceptr dev_a, CUdeviceptr dev_b, const char *what)
{
    if ((dev_a && !inside(dev_a, n)) || (dev_b && !inside(dev_b, n)))
        return fail(E_INVALID, "%s outside an allocation (%lld bytes)", what, (long long)n);
    if (capturing && strstr(what, "Async") == NULL) return fail(E_CAPTURE, "%s while a stream captures%lld", what, 0);
    if (!capturing) memmove(to, from, n);
    else captured++;
    return OK;
}

CUresult cuMemcpyDtoH_v2(void *h, CUdeviceptr d, size_t n) { return copy(h, (void *)(uintptr_t)d, n, d, 0, "cuMemcpyDtoH"); }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *h, size_t n, void *s)
{
    return copy((void *)(uintptr_t)d, h, n, d, 0, "cuMemcpyHtoDAsync");
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void *st)
{
    return copy((void *)(uintptr_t)d, (void *)(uintptr_t)s, n, d, s, "cuMemcpyDtoDAsync");
}
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, void *s)
{
    if (!inside(d, n)) return fail(E_INVALID, "%scuMemsetD8Async outside an allocation (%lld bytes)", "", (long long)n);
    if (!capturing) memset((void *)(uintptr_t)d, v, n);
    return OK;
}

/* ---- modules and launches ------------------------------------------------------------- */

typedef struct { char *image; size_t n; Func **funcs; int nfuncs; } Module;

CUresult cuModuleLoadData(void **m, const void *image)
{
    const unsigned char *p = image;
    if (memcmp(p, "\x7f" "ELF", 4)) return fail(E_INVALID_IMAGE, "%sa module that is not a cubin (ELF)%lld", "", 0);
    /* the cubin's size from its ELF header: section headers end the file */
    uint64_t shoff;
    uint16_t shentsize, shnum;
    memcpy(&shoff, p + 0x28, 8);
    memcpy(&shentsize, p + 0x3a, 2);
    memcpy(&shnum, p + 0x3c, 2);
    Module *mod = calloc(1, sizeof *mod);
    mod->n = (size_t)(shoff + (uint64_t)shentsize * shnum);
    mod->image = malloc(mod->n);
    memcpy(mod->image, image, mod->n);
    modules++;
    *m = mod;
    return OK;
}

CUresult cuModuleUnload(void *m)
{
    Module *mod = m;
    for (int i = 0; i < mod->nfuncs; i++) free(mod->funcs[i]);
    free(mod->funcs);
    free(mod->image);
    free(mod);
    return OK;
}

CUresult cuModuleGetFunction(void **f, void *m, const char *name)
{
    Module *mod = m;
    size_t len = strlen(name) + 1;
    for (size_t i = 0; i + len <= mod->n; i++)
        if (!memcmp(mod->image + i, name, len) && i > 0 && mod->image[i - 1] == 0) {
            Func *fn = calloc(1, sizeof *fn);   /* owned by the module, as the driver's are */
            snprintf(fn->name, sizeof fn->name, "%s", name);
            mod->funcs = realloc(mod->funcs, sizeof *mod->funcs * (size_t)(mod->nfuncs + 1));
            mod->funcs[mod->nfuncs++] = fn;
            *f = fn;
            return OK;
        }
    return fail(E_NOT_FOUND, "function %s is not in the module%lld", name, 0);
}

#define PTR(i) (*(CUdeviceptr *)params[i])
#define I32(i) (*(int *)params[i])
#define I64(i) (*(long *)params[i])

/* the extents the library kernels touch, from their scalar arguments */
static CUresult check_library(const Func *fn, void **params)
{
    const char *n = fn->name;
    int bf = strstr(n, "_bf16") != NULL, es = bf ? 2 : 4;
    struct { CUdeviceptr p; size_t bytes; } use[12];
    int k = 0;
    if (!strcmp(n, "cg_doc_ids")) {
        use[k].p = PTR(0), use[k++].bytes = (size_t)I32(1) * 4;
        use[k].p = PTR(3), use[k++].bytes = (size_t)I32(1) * 4;
    } else if (!strncmp(n, "cg_attn_", 8)) {
        size_t T = (size_t)I32(4), H = (size_t)I32(5), D = (size_t)I32(6), m = T * H * D * (size_t)es;
        for (int i = 0; i < 3; i++) use[k].p = PTR(i), use[k++].bytes = m;
        use[k].p = PTR(3), use[k++].bytes = T * 4;
        use[k].p = PTR(8), use[k++].bytes = 4;   /* the window, a float */
        if (strstr(n, "fwd")) use[k].p = PTR(10), use[k++].bytes = m, use[k].p = PTR(11), use[k++].bytes = H * T * 4;
        else {
            use[k].p = PTR(10), use[k++].bytes = m;                 /* dout */
            use[k].p = PTR(11), use[k++].bytes = 2 * H * T * 4;     /* workspace */
            if (strstr(n, "_dq")) use[k].p = PTR(12), use[k++].bytes = m;
            if (strstr(n, "_dkv")) use[k].p = PTR(12), use[k++].bytes = m, use[k].p = PTR(13), use[k++].bytes = m;
        }
    } else if (!strcmp(n, "cg_zero")) {
        use[k].p = PTR(0), use[k++].bytes = (size_t)I64(1) * 4;
    } else if (!strncmp(n, "cg_scatter_add", 14)) {
        size_t cnt = (size_t)I64(2), row = (size_t)I64(3);
        use[k].p = PTR(0), use[k++].bytes = cnt * row * (size_t)es;
        use[k].p = PTR(1), use[k++].bytes = cnt * 4;
        use[k].p = PTR(4), use[k++].bytes = row * 4;   /* at least one row; the rows hit depend on idx */
    } else if (!strcmp(n, "cg_to_bf16") || !strcmp(n, "cg_to_f32")) {
        size_t cnt = (size_t)I64(1);
        int from = !strcmp(n, "cg_to_bf16") ? 4 : 2;
        use[k].p = PTR(0), use[k++].bytes = cnt * (size_t)from;
        use[k].p = PTR(2), use[k++].bytes = cnt * (size_t)(6 - from);
    } else {   /* a generated loop kernel: every argument is a buffer; the first one is checked */
        use[k].p = PTR(0), use[k++].bytes = 1;
    }
    for (int i = 0; i < k; i++)
        if (!inside(use[i].p, use[i].bytes))
            return fail(E_INVALID, "%s: argument %lld outside an allocation", n, i);
    return OK;
}

CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned smem, void *stream, void **params, void **extra)
{
    const Func *fn = f;
    if (!fn || !params) return fail(E_INVALID, "%slaunch without a function or arguments%lld", "", 0);
    unsigned threads = bx * by * bz;
    if (threads < 1 || threads > 1024 || gx < 1 || gy < 1 || gy > 65535 || gz < 1 || gz > 65535)
        return fail(E_INVALID, "%s: launch shape out of range (%lld threads)", fn->name, threads);
    CUresult r = check_library(fn, params);
    if (r) return r;
    if (capturing) captured++;
    else eager++;
    return OK;
}

/* ---- streams, graphs ---------------------------------------------------------- */

CUresult cuStreamCreate(void **s, unsigned flags) { static int st; *s = &st; return OK; }
CUresult cuStreamSynchronize(void *s)
{
    return capturing ? fail(E_CAPTURE, "%scuStreamSynchronize while capturing%lld", "", 0) : OK;
}
CUresult cuStreamBeginCapture_v2(void *s, int mode)
{
    if (capturing) return fail(E_CAPTURE, "%snested capture%lld", "", 0);
    capturing = 1;
    captured = 0;
    return OK;
}
CUresult cuStreamEndCapture(void *s, void **g)
{
    if (!capturing) return fail(E_CAPTURE, "%send of a capture never begun%lld", "", 0);
    capturing = 0;
    Graph *gr = calloc(1, sizeof *gr);
    gr->nodes = captured;
    graphs++;
    graph_nodes += captured;
    *g = gr;
    return OK;
}
CUresult cuGraphInstantiateWithFlags(void **exec, void *g, unsigned long long flags)
{
    Graph *e = calloc(1, sizeof *e);
    *e = *(Graph *)g;
    *exec = e;
    return OK;
}
CUresult cuGraphLaunch(void *exec, void *s)
{
    if (((Graph *)exec)->nodes < 1) return fail(E_INVALID, "%sa graph without nodes%lld", "", 0);
    graph_launches++;
    return OK;
}
CUresult cuGraphDestroy(void *g) { free(g); return OK; }
CUresult cuGraphExecDestroy(void *e) { free(e); return OK; }

/* events: a mock runs nothing, so every interval is 0 ms */
CUresult cuEventCreate(void **e, unsigned flags) { *e = calloc(1, 1); return *e ? OK : 2; }
CUresult cuEventRecord(void *e, void *s) { return OK; }
CUresult cuEventSynchronize(void *e) { return capturing ? fail(E_CAPTURE, "%scuEventSynchronize while capturing%lld", "", 0) : OK; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b) { *ms = 0; return OK; }
CUresult cuEventDestroy_v2(void *e) { free(e); return OK; }

/* ---- cuBLASLt --------------------------------------------------------------------------- */

typedef struct { int transa, transb, compute; } Desc;
typedef struct { int type; uint64_t rows, cols; int64_t ld; int32_t batch; int64_t stride; } Layout;

int cublasLtCreate(void **h) { static int lt; *h = &lt; return 0; }
int cublasLtDestroy(void *h) { return 0; }
int cublasLtMatmulDescCreate(Desc **d, int compute, int scale)
{
    *d = calloc(1, sizeof **d);
    (*d)->compute = compute;
    return compute == 68 && scale == 0 ? 0 : (fail(E_INVALID, "%sMatmulDesc: compute %lld, not 32F", "", compute), 7);
}
int cublasLtMatmulDescDestroy(Desc *d) { free(d); return 0; }
int cublasLtMatmulDescSetAttribute(Desc *d, int attr, const void *v, size_t n)
{
    if (attr == 3) d->transa = *(const int *)v;
    else if (attr == 4) d->transb = *(const int *)v;
    return 0;
}
int cublasLtMatrixLayoutCreate(Layout **l, int type, uint64_t rows, uint64_t cols, int64_t ld)
{
    *l = calloc(1, sizeof **l);
    **l = (Layout){type, rows, cols, ld, 1, 0};
    return ld >= (int64_t)rows ? 0 : (fail(E_INVALID, "%sMatrixLayout: ld %lld below the rows", "", ld), 7);
}
int cublasLtMatrixLayoutDestroy(Layout *l) { free(l); return 0; }
int cublasLtMatrixLayoutSetAttribute(Layout *l, int attr, const void *v, size_t n)
{
    if (attr == 5) l->batch = *(const int32_t *)v;
    else if (attr == 6) l->stride = *(const int64_t *)v;
    return 0;
}
int cublasLtMatmulPreferenceCreate(void **p) { *p = calloc(1, 8); return 0; }
int cublasLtMatmulPreferenceDestroy(void *p) { free(p); return 0; }
int cublasLtMatmulPreferenceSetAttribute(void *p, int a, const void *v, size_t n) { return 0; }

typedef struct { uint64_t data[8]; size_t ws; int state; float waves; int reserved[4]; } Heuristic;
int cublasLtMatmulAlgoGetHeuristic(void *h, Desc *d, Layout *a, Layout *b, Layout *c, Layout *dd, void *pref, int want,
                                   Heuristic *res, int *found)
{
    memset(res, 0, sizeof *res);
    *found = 1;
    return 0;
}

static size_t extent(const Layout *l)
{
    size_t es = l->type == 14 ? 2 : 4;
    return es * ((size_t)l->ld * (l->cols - 1) + l->rows + (size_t)(l->batch - 1) * (size_t)l->stride);
}

int cublasLtMatmul(void *h, Desc *d, const void *alpha, const void *A, Layout *la, const void *B, Layout *lb,
                   const void *beta, const void *C, Layout *lc, void *D, Layout *ld, const void *algo, void *ws,
                   size_t wsn, void *stream)
{
    uint64_t m = d->transa ? la->cols : la->rows, k = d->transa ? la->rows : la->cols;
    uint64_t kb = d->transb ? lb->cols : lb->rows, n = d->transb ? lb->rows : lb->cols;
    if (la->type != lb->type || (la->type != 0 && la->type != 14) || (ld->type != 0 && ld->type != 14))
        return fail(E_INVALID, "%sMatmul: operand types A %lld differ from B or are not f32/bf16", "", la->type), 7;
    if (k != kb || ld->rows != m || ld->cols != n)
        return fail(E_INVALID, "%sMatmul: shapes disagree (k %lld)", "", (long long)k), 7;
    if (la->batch != lb->batch || la->batch != ld->batch)
        return fail(E_INVALID, "%sMatmul: batch counts differ (%lld)", "", la->batch), 7;
    if (!inside((CUdeviceptr)(uintptr_t)A, extent(la)) || !inside((CUdeviceptr)(uintptr_t)B, extent(lb)) ||
        !inside((CUdeviceptr)(uintptr_t)D, extent(ld)) || C != D)
        return fail(E_INVALID, "%sMatmul: an operand outside its allocation (m %lld)", "", (long long)m), 7;
    if (!inside((CUdeviceptr)(uintptr_t)ws, wsn)) return fail(E_INVALID, "%sMatmul: workspace outside%lld", "", 0), 7;
    gemms++;
    if (capturing) captured++;
    return 0;
}

/* ---- NCCL ------------------------------------------------------------------------------- */

typedef struct { char internal[128]; } UniqueId;
typedef struct { int n, rank, destroyed; } Comm;

int ncclGetUniqueId(UniqueId *id)
{
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "gptc cuda mock %d", 42);
    return 0;
}

int ncclCommInitRank(Comm **c, int n, UniqueId id, int rank)
{
    const char *ws = getenv("OMPI_COMM_WORLD_SIZE"), *wr = getenv("OMPI_COMM_WORLD_RANK");
    if (strcmp(id.internal, "gptc cuda mock 42"))
        return fail(E_INVALID, "%sncclCommInitRank: a unique id that rank 0 did not make%lld", "", 0), 4;
    if (!ws || atoi(ws) != n || !wr || atoi(wr) != rank)
        return fail(E_INVALID, "%sncclCommInitRank: size or rank differ from mpirun's (%lld)", "", n), 4;
    *c = calloc(1, sizeof **c);
    (*c)->n = n, (*c)->rank = rank;
    return 0;
}

int ncclCommDestroy(Comm *c)
{
    free(c);
    return 0;
}

int ncclAllReduce(const void *send, void *recv, size_t count, int type, int op, Comm *c, void *stream)
{
    size_t es = type == 7 ? 4 : type == 9 ? 2 : 0;
    if (!c || !es || op != 4 || count == 0)
        return fail(E_INVALID, "%sncclAllReduce: type %lld, op or count unexpected", "", type), 4;
    if (send != recv || !inside((CUdeviceptr)(uintptr_t)recv, count * es))
        return fail(E_INVALID, "%sncclAllReduce: not in place inside an allocation (%lld)", "", (long long)count), 4;
    allreduces++;
    if (capturing) captured++, allreduces_captured++;
    return 0;
}

int ncclBroadcast(const void *send, void *recv, size_t count, int type, int root, Comm *c, void *stream)
{
    size_t es = type == 7 ? 4 : type == 9 ? 2 : 0;
    if (!c || !es || root < 0 || root >= c->n || count == 0)
        return fail(E_INVALID, "%sncclBroadcast: type, root or count unexpected (root %lld)", "", root), 4;
    if (send != recv || !inside((CUdeviceptr)(uintptr_t)recv, count * es))
        return fail(E_INVALID, "%sncclBroadcast: not in place inside an allocation (%lld)", "", (long long)count), 4;
    broadcasts++;
    broadcasts_from_me += root == c->rank;
    return 0;
}

const char *ncclGetErrorString(int r) { return "error reported by the cuda mock"; }
