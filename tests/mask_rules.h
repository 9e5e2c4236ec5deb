/* mask_rules.h — the attention mask of spec S-5 written out literally, as an oracle for the
 * closed form the kernels use (rt_ref_allowed, runtime/ref_kernels.h). Test code only:
 * included by tests/test_ref_kernels.c. O(N^2 + T^2). */
#ifndef GPTC_TESTS_MASK_RULES_H
#define GPTC_TESTS_MASK_RULES_H

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ref_kernels.h"

/* ---- Literal block-list rules of S-5.2/5.3 (an oracle for tests; O(N^2 + T^2)). ----
 * They require T % block == 0 (N = T / block blocks) and a non-decreasing doc.
 *
 * block_lists: for every query block i = 0..N-1, the partial list P_i and the full
 * list F_i of key blocks, nearest (highest index) first:
 *     nP[i] entries in P[i*N + 0 .. nP[i]-1],  nF[i] entries in F[i*N + 0 .. nF[i]-1]
 * (nP, nF: int [N]; P, F: int [N*N]; unused entries are set to -1).
 *
 * mask_blocks: the dense mask [T, T] built literally from those lists and the
 * clamps kP = min(nP, max(w - nF, 1)), kF = max(min(nF, w - 1), 0): a kept full block
 * allows every element, a kept partial block applies dc(q,k) = k <= q && doc[k] == doc[q],
 * every other block allows nothing. S-5.4 says this equals mask_dense.
 *
 * mask_dense: the mask [T, T] from the closed form, mask[q*T + k] = rt_ref_allowed(q, k, …). */
static void mask_dense(const int32_t *doc, int T, int block, int window, uint8_t *mask)
{
    assert(T >= 0 && block >= 1);
    for (int q = 0; q < T; q++)
        for (int k = 0; k < T; k++)
            mask[(size_t)q * T + k] = (uint8_t)rt_ref_allowed(q, k, doc, block, window);
}

static void block_lists(const int32_t *doc, int T, int block,
                        int *nP, int *P, int *nF, int *F)
{
    assert(T >= 0 && block >= 1 && T % block == 0);
    int N = T / block;
    for (int i = 0; i < N; i++) {
        int32_t lo_i = doc[i * block], hi_i = doc[i * block + block - 1];
        int np = 0, nf = 0;
        for (int j = N - 1; j >= 0; j--) {            /* descending key-block index */
            int32_t lo_j = doc[j * block], hi_j = doc[j * block + block - 1];
            int touch = j <= i && lo_i <= hi_j && hi_i >= lo_j;
            int whole = j < i && lo_i == hi_j && hi_i == lo_j;
            if (whole) F[i * N + nf++] = j;           /* full */
            else if (touch) P[i * N + np++] = j;      /* partial */
        }
        for (int x = np; x < N; x++) P[i * N + x] = -1;
        for (int x = nf; x < N; x++) F[i * N + x] = -1;
        nP[i] = np;
        nF[i] = nf;
    }
}

static void mask_blocks(const int32_t *doc, int T, int block, int window, uint8_t *mask)
{
    assert(T >= 0 && block >= 1 && T % block == 0);
    int N = T / block;
    memset(mask, 0, (size_t)T * T);
    if (N == 0) return;
    int *nP = malloc(sizeof(int) * (size_t)N), *nF = malloc(sizeof(int) * (size_t)N);
    int *P = malloc(sizeof(int) * (size_t)N * N), *F = malloc(sizeof(int) * (size_t)N * N);
    uint8_t *kind = calloc((size_t)N * N, 1);        /* 0 skipped, 1 partial, 2 full */
    if (!nP || !nF || !P || !F || !kind) { fprintf(stderr, "mask_blocks: out of memory\n"); exit(2); }
    block_lists(doc, T, block, nP, P, nF, F);
    for (int i = 0; i < N; i++) {
        /* S-5.3 clamps, literally (w may be 0 or negative) */
        long long kp = (long long)window - nF[i];      /* min(nP, max(w - nF, 1)) */
        if (kp < 1) kp = 1;
        if (kp > nP[i]) kp = nP[i];
        long long kf = (long long)window - 1;          /* min(nF, w - 1) */
        if (kf > nF[i]) kf = nF[i];
        if (kf < 0) kf = 0;                           /* a negative count selects nothing */
        for (int x = 0; x < kp; x++) kind[i * N + P[i * N + x]] = 1;
        for (int x = 0; x < kf; x++) kind[i * N + F[i * N + x]] = 2;
    }
    for (int q = 0; q < T; q++)
        for (int k = 0; k < T; k++) {
            int c = kind[(q / block) * N + k / block];
            int dc = k <= q && doc[k] == doc[q];
            mask[(size_t)q * T + k] = (uint8_t)(c == 2 || (c == 1 && dc));
        }
    free(nP); free(nF); free(P); free(F); free(kind);
}

#endif
