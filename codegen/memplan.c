/* memplan.c — the static memory plan: every root gets an offset in one arena.
 *
 * A root lives from the kernel that writes it to the last kernel that reads it (through
 * a view too); kept nodes live to the end of the step. Roots are placed in the order they
 * are written, each at the lowest 64-byte-aligned offset that no live root overlaps; a
 * root may take the memory of one whose last reader ran strictly before its writer, so no
 * kernel ever reads and writes the same bytes (but an output computed in the leaf it
 * replaces, inplace.c, which gets no arena memory). A CUDA reduction split across blocks gets
 * its partials' scratch the same way, after its roots, live during that kernel only. With
 * levels (cg_fuse_levels) time counts in levels, not kernels: the kernels of one level may
 * run at the same time, so none takes memory that another of its level reads or writes. */
#include "codegen/codegen.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 64

/* when kernel k runs: its index, or its level */
static int time_of(const CgStep *s, int k) { return s->level ? s->level[k] : k; }

static void note_read(const CgStep *s, int id, int k, int *last)
{
    int64_t off;
    int b = cg_storage(s, id, &off);
    if (b >= 0 && s->role[b] == CG_ROOT && last[b] < k) last[b] = k;
}

static void liveness(const CgStep *s, IrNode *const *keep, int nkeep, int *last)
{
    for (int i = 0; i < s->g->n; i++) last[i] = -1;
    for (int k = 0; k < s->nk; k++) {
        const CgKernel *kk = &s->k[k];
        int scratch[6];
        const int *ids;
        int n = cg_kernel_reads(kk, &ids, scratch);
        for (int j = 0; j < n; j++) note_read(s, ids[j], time_of(s, k), last);
    }
    for (int i = 0; i < nkeep; i++) note_read(s, keep[i]->id, s->nk ? time_of(s, s->nk - 1) + 1 : 0, last);
}

typedef struct {
    int64_t off, size;
    int end;
} Live;

static int by_offset(const void *a, const void *b)
{
    const Live *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

/* bytes written at time k, live to time `end`: the lowest offset no live region overlaps */
static int64_t place(CgStep *s, Live *live, int *nlive, int k, int64_t bytes, int end)
{
    int64_t size = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    int m = 0;                                           /* drop regions whose last reader ran */
    for (int j = 0; j < *nlive; j++)
        if (live[j].end >= k) live[m++] = live[j];
    *nlive = m;
    qsort(live, (size_t)m, sizeof *live, by_offset);
    int64_t at = 0;                                      /* lowest gap that fits */
    for (int j = 0; j < m && live[j].off < at + size; j++)
        if (live[j].off + live[j].size > at) at = live[j].off + live[j].size;
    live[(*nlive)++] = (Live){at, size, end};
    if (at + size > s->arena_bytes) s->arena_bytes = at + size;
    return at;
}

void cg_memplan(CgStep *s, IrNode *const *keep, int nkeep)
{
    int n = s->g->n, *last = xcalloc((size_t)n, sizeof *last);
    Live *live = xcalloc((size_t)n + 1, sizeof *live);
    s->offset = xcalloc((size_t)n, sizeof *s->offset);
    liveness(s, keep, nkeep, last);
    int nlive = 0;
    s->arena_bytes = 0;
    for (int i = 0; i < n; i++) s->offset[i] = -1;
    for (int k = 0; k < s->nk; k++) {
        CgKernel *kk = &s->k[k];
        int t = time_of(s, k);
        for (int r = 0; r < kk->nroots; r++) {
            const IrNode *node = s->g->nodes[kk->roots[r]];
            if (s->alias && s->alias[node->id] >= 0) continue;   /* computed in a leaf (inplace.c) */
            int end = last[node->id] < t ? t : last[node->id];
            s->offset[node->id] = place(s, live, &nlive, t, ir_numel(node) * cg_elem_bytes(s, node->id), end);
        }
        if (kk->part_bytes > 0) kk->part_off = place(s, live, &nlive, t, kk->part_bytes, t);
    }
    free(last);
    free(live);
}
