/* test_cuda.c — what of the cuda backend runs without a GPU: the storage policy
 * (codegen/storage.c) on small graphs, and, on the recording stand-in for the driver
 * (tests/cuda_mock.c, loaded through GPTC_LIBCUDA; its "device" memory is host memory, so
 * copies are real), the host side of the executor: parameters stored in bf16 come back
 * rounded to nearest, f32 storage keeps them exact, the rotary tables are uploaded at
 * creation, integer inputs out of range are reported by the run, and a run enqueues its
 * kernels; NVRTC compiles in its own process (gptc-nvrtc). Kernels do not execute here. */
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "ir/ir.h"
#include "runtime/runtime.h"
#include "runtime/ref_kernels.h"
#include "tests/test.h"

/* y = relu(x @ w) with x a bf16 parameter [4, 8], w an f32 parameter [8, 6], then the row
 * sums of y: a bf16 × f32 product, an elementwise activation, a reduction, a kept output */
typedef struct {
    IrGraph *g;
    IrNode *x, *w, *xw, *y, *rows, *loss;
} Chain;

static Chain chain(void)
{
    Chain c;
    c.g = ir_graph_new();
    c.x = ir_leaf(c.g, IR_PARAM, "x", IR_BF16, 2, (int64_t[]){4, 8});
    c.w = ir_leaf(c.g, IR_PARAM, "w", IR_F32, 2, (int64_t[]){8, 6});
    c.xw = ir_matmul(c.g, c.x, c.w, false);
    c.y = ir_unary(c.g, IR_RELU, c.xw);
    IrNode *m = ir_matmul(c.g, c.y, c.w, true);   /* y used twice: stored */
    c.rows = ir_reduce(c.g, IR_SUM, m, 1);
    c.loss = ir_reduce(c.g, IR_SUM, ir_binary(c.g, IR_MUL, c.y, c.y), 1);
    return c;
}

TEST(storage_policy)
{
    Chain c = chain();
    IrNode *keep[] = {c.loss, c.rows};
    char err[256];
    CgStep *s = cg_fuse(c.g, keep, 2, CG_STORE_BF16, err, sizeof err);
    CHECK(s != NULL);
    if (!s) return;
    CHECK(cg_store_dtype(s, c.x->id) == IR_BF16);      /* a bf16 weight, as declared */
    CHECK(cg_store_dtype(s, c.w->id) == IR_F32);       /* an f32 weight, as declared */
    CHECK(cg_store_dtype(s, c.xw->id) == IR_BF16);     /* a product: a full-size activation */
    CHECK(cg_store_dtype(s, c.rows->id) == IR_F32);    /* kept outputs stay float32 */
    CHECK(cg_store_dtype(s, c.loss->id) == IR_F32);
    CHECK(cg_elem_bytes(s, c.xw->id) == 2 && cg_elem_bytes(s, c.w->id) == 4);
    CHECK(cg_operand_dtype(s, c.xw) == IR_BF16);       /* bf16 × f32: a bf16 product, w converted */
    cg_step_free(s);

    s = cg_fuse(c.g, keep, 2, CG_STORE_BF16_MASTER, err, sizeof err);
    CHECK(s && cg_store_dtype(s, c.x->id) == IR_F32);  /* master weights: every leaf float32 */
    CHECK(s && cg_store_dtype(s, c.xw->id) == IR_BF16);
    cg_step_free(s);

    s = cg_fuse(c.g, keep, 2, CG_STORE_F32, err, sizeof err);
    CHECK(s && cg_store_dtype(s, c.x->id) == IR_F32 && cg_store_dtype(s, c.xw->id) == IR_F32);
    CHECK(s && cg_operand_dtype(s, c.xw) == IR_F32);
    cg_step_free(s);
    ir_graph_free(c.g);
}

/* a per-row statistic (the reduced output of a reduction kernel) stays float32 */
TEST(statistics_stay_f32)
{
    IrGraph *g = ir_graph_new();
    IrNode *a = ir_leaf(g, IR_PARAM, "a", IR_BF16, 2, (int64_t[]){16, 32});
    IrNode *b = ir_leaf(g, IR_PARAM, "b", IR_BF16, 2, (int64_t[]){32, 32});
    IrNode *h = ir_matmul(g, a, b, false);
    IrNode *ms = ir_reduce(g, IR_SUM, ir_binary(g, IR_MUL, h, h), 1);   /* [16, 1] */
    IrNode *n = ir_binary(g, IR_MUL, h, ir_broadcast(g, ir_unary(g, IR_RSQRT, ms), 2, h->shape));
    IrNode *o = ir_matmul(g, n, b, false);
    IrNode *keep[] = {o};
    char err[256];
    CgStep *s = cg_fuse(g, keep, 1, CG_STORE_BF16, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
        int64_t off;
        int st = cg_storage(s, ms->id, &off), nn = cg_storage(s, n->id, &off);
        CHECK(st < 0 || cg_store_dtype(s, ms->id) == IR_F32);   /* inlined, or stored in float32 */
        CHECK(nn >= 0 && cg_store_dtype(s, n->id) == IR_BF16);  /* a product's operand: stored, bf16 */
        CHECK(cg_store_dtype(s, h->id) == IR_BF16);
    }
    cg_step_free(s);
    ir_graph_free(g);
}

static char mock[4096];

/* NVRTC is installed (then every compile must work) */
static bool have_nvrtc(void)
{
    char lib[512];
    snprintf(lib, sizeof lib, "%s/lib64/libnvrtc.so", cg_cuda_home());
    return access(lib, R_OK) == 0;
}

/* NVRTC runs in gptc-nvrtc: a module compiles, its source is kept beside its cubin in the
 * cache and a second compile takes it from there; NVRTC's errors come back naming that
 * source. In a kernel cache of its own, empty at the start. */
TEST(nvrtc_in_its_own_process)
{
    if (!have_nvrtc()) {
        printf("skip: NVRTC is not installed\n");
        return;
    }
    char cache[] = "/tmp/gptc-test-cuda-XXXXXX", cmd[64], *saved = getenv("XDG_CACHE_HOME");
    saved = saved ? strdup(saved) : NULL;
    CHECK(mkdtemp(cache) != NULL);
    setenv("XDG_CACHE_HOME", cache, 1);
    char path[4200], src_path[4200], err[4096];
    bool cached = true;
    char *log = NULL;
    const char *good = "extern \"C\" __global__ void k(float *x) { x[0] = 2; }";
    int rc = cg_compile_cuda(good, "sm_90", path, sizeof path, &cached, &log, err, sizeof err);
    if (rc) fprintf(stderr, "  %s\n", err);
    CHECK(rc == 0 && !cached && log && strstr(log, "Compiling entry function 'k'"));
    snprintf(src_path, sizeof src_path, "%.*s.cu", (int)(strlen(path) - strlen(".cubin")), path);
    CHECK(access(path, R_OK) == 0 && access(src_path, R_OK) == 0);
    free(log);
    log = NULL;
    CHECK(cg_compile_cuda(good, "sm_90", path, sizeof path, &cached, &log, err, sizeof err) == 0 && cached && log);
    free(log);
    log = NULL;
    rc = cg_compile_cuda("extern \"C\" __global__ void k(float *x) { x[0] = nonesuch; }", "sm_90", path, sizeof path,
                         &cached, &log, err, sizeof err);
    snprintf(src_path, sizeof src_path, "%.*s.cu(1): error: identifier \"nonesuch\" is undefined",
             (int)(strlen(path) - strlen(".cubin")), path);
    CHECK(rc == -1 && strstr(err, "NVRTC failed") && strstr(err, src_path));
    CHECK(access(path, R_OK) != 0);
    free(log);
    if (saved) setenv("XDG_CACHE_HOME", saved, 1);
    else unsetenv("XDG_CACHE_HOME");
    free(saved);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    CHECK(system(cmd) == 0);
}

static float bf16_round(float f)   /* nearest even, finite values */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

TEST(executor_on_the_stand_in)
{
    if (!have_nvrtc()) {
        printf("skip: NVRTC is not installed\n");
        return;
    }
    setenv("GPTC_LIBCUDA", mock, 1);
    setenv("GPTC_LIBCUBLASLT", mock, 1);
    IrGraph *g = ir_graph_new();
    IrNode *table = ir_leaf(g, IR_PARAM, "table", IR_BF16, 2, (int64_t[]){8, 4});
    IrNode *idx = ir_leaf(g, IR_INPUT, "idx", IR_I32, 1, (int64_t[]){3});
    IrNode *y = ir_unary(g, IR_EXP, ir_gather(g, table, idx));
    IrNode *keep[] = {y};
    double v[32], back[32];
    for (int i = 0; i < 32; i++) v[i] = 1.0 + i * 0x1p-10 + 0x1p-12;   /* most not bf16 values */
    for (int bf = 0; bf < 2; bf++) {
        char err[512] = "";
        RtExec *x = rt_exec_new(RT_CUDA_BACKEND, g, bf ? RT_BF16 : RT_F32, keep, 1, err, sizeof err);
        CHECK(x != NULL);
        if (!x) {
            fprintf(stderr, "%s\n", err);
            continue;
        }
        rt_exec_set(x, table, v);
        rt_exec_get(x, table, back);
        int bad = 0;
        for (int i = 0; i < 32; i++) bad += back[i] != (bf ? bf16_round((float)v[i]) : (float)v[i]);
        CHECK(bad == 0);
        CHECK(rt_exec_peak_bytes(x) > 32 * 2);
        rt_exec_set_i32(x, idx, (int32_t[]){1, 9, 2});
        CHECK(rt_exec_run(x, err, sizeof err) == -1);
        CHECK(strstr(err, "index 9 is outside [0, 8)") != NULL);
        rt_exec_set_i32(x, idx, (int32_t[]){1, 7, 2});
        CHECK(rt_exec_run(x, err, sizeof err) == 0);
        CHECK(rt_exec_run(x, err, sizeof err) == 0);   /* the replay */
        rt_exec_free(x);
    }
    ir_graph_free(g);
}

/* the rotary tables, leaves the graph defines, are on the device before the first run */
TEST(rotary_tables_uploaded)
{
    if (!have_nvrtc()) return;
    IrGraph *g = ir_graph_new();
    IrNode *cs = ir_rope(g, IR_ROPE_COS, 16, 8, 1024.0), *sn = ir_rope(g, IR_ROPE_SIN, 16, 8, 1024.0);
    IrNode *y = ir_binary(g, IR_ADD, cs, sn);
    IrNode *keep[] = {y};
    char err[512];
    RtExec *x = rt_exec_new(RT_CUDA_BACKEND, g, RT_BF16, keep, 1, err, sizeof err);
    CHECK(x != NULL);
    if (x) {
        double got[64], want[64];
        for (int k = 0; k < 2; k++) {
            rt_exec_get(x, k ? sn : cs, got);
            rt_ref_rope_f64(k, 16, 8, 1024.0, want);
            int bad = 0;
            for (int i = 0; i < 64; i++) bad += got[i] != (double)(float)want[i];
            CHECK(bad == 0);
        }
        rt_exec_free(x);
    }
    ir_graph_free(g);
}

int main(int argc, char **argv)
{
    char self[4096];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(mock, sizeof mock, "%s/libcudamock.so", dirname(self));
    (void)argc;
    RUN(storage_policy);
    RUN(statistics_stay_f32);
    RUN(executor_on_the_stand_in);
    RUN(rotary_tables_uploaded);
    RUN(nvrtc_in_its_own_process);
    return test_summary();
}
