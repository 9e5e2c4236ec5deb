/* fuzz_gen.h — random, well-typed model files for the differential fuzzer
 * (tests/test_diff_fuzz.c). Test code only.
 *
 * fuzz_model(seed) writes the text of one .gptc model: a config (vocab V, eot, dim,
 * seq_len T), parameters of several shapes and dtypes, the inputs tokens and targets
 * (i32[T]), schedules, and a model body of random tensor operations whose shapes the
 * generator tracks, so every model is meant to compile: elementwise math, products,
 * views, norms, reductions, softmax, constant tensors, attention with each of its masks,
 * integer values computed from the tokens (indices of gathers, masks), where, shift and
 * cumsum; some parameters are frozen (opt none). The body ends with the logits
 * [T, V] — every value computed and not used is added to them through a projection — and
 * returns cross_entropy(logits, targets). The same seed gives the same text.
 *
 * The operations come from one table in fuzz_gen.c (op_table): each entry draws its
 * operands from the values computed so far (or new parameters) and appends one line; a
 * new op is one function and one row there.
 *
 * Ownership: the text is malloc'ed; the caller frees it. */
#ifndef GPTC_TESTS_FUZZ_GEN_H
#define GPTC_TESTS_FUZZ_GEN_H

#include <stdint.h>

typedef struct {
    int T, V, eot;        /* the sizes the tokens and targets need */
} FuzzSizes;

char *fuzz_model(uint64_t seed, FuzzSizes *sizes);

/* the xorshift64 generator the fuzzer uses everywhere: next value, and a double in [0, 1) */
uint64_t fuzz_next(uint64_t *s);
double fuzz_unit(uint64_t *s);

#endif
