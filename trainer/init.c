/* init.c — seeded parameter initialization (spec S-2.1: the distributions; the reference
 * script draws them unseeded, so only the distributions are specified). */
#include "trainer/trainer.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(Rng *r) {
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(Rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

double rng_normal(Rng *r) {
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log1p(-u)) * cos(2.0 * M_PI * v);   /* 1 - u in (0, 1] */
}

/* Fills n elements; constant values repeat along the trailing axis. */
static void fill(const InitSpec *s, Rng *rng, double *dst, int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        switch (s->kind) {
        case INIT_ZEROS: dst[k] = 0; break;
        case INIT_CONSTANT: dst[k] = s->values[k % s->nvalues]; break;
        case INIT_NORMAL: dst[k] = s->a + s->b * rng_normal(rng); break;
        case INIT_UNIFORM: dst[k] = s->a + (s->b - s->a) * rng_uniform(rng); break;
        }
    }
}

void init_params(const Program *p, uint64_t seed, double **values) {
    for (int i = 0; i < p->nparams; i++) {
        const ParamDecl *d = &p->params[i];
        Rng rng;
        rng_seed(&rng, seed, (uint64_t)i + 1);
        int64_t n = fe_param_count(d), row = d->ndim ? n / d->shape[0] : n;
        fill(&d->init[0], &rng, values[i], n);
        for (int k = 1; k < d->ninit; k++) fill(&d->init[k], &rng, values[i] + d->init[k].slice * row, row);
    }
}
