/* init.h — parameter initialization from the model's declarations, seeded.
 * Ownership: rt_init_params fills caller-allocated arrays (fe_param_count doubles each). */
#ifndef GPTC_RUNTIME_INIT_H
#define GPTC_RUNTIME_INIT_H

#include <stdint.h>

#include "frontend/frontend.h"

/* A small deterministic generator: splitmix64-seeded xoshiro256**. */
typedef struct { uint64_t s[4]; } RtRng;
void rt_rng_seed(RtRng *r, uint64_t seed, uint64_t stream);
uint64_t rt_rng_next(RtRng *r);
double rt_rng_uniform(RtRng *r);   /* [0, 1) with 53 random bits */
double rt_rng_normal(RtRng *r);    /* N(0, 1), Box–Muller */

/* values[i] = parameter i initialized as declared: init[0] over the whole tensor, then each
 * slice initializer over its slice of axis 0, in order. Parameter i draws from its own
 * stream (seed, i), so adding a parameter does not change the others' values. */
void rt_init_params(const Program *p, uint64_t seed, double **values);

#endif
