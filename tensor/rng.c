/* tensor/rng.c: xoshiro256** seeded by splitmix64; see rng.h. */
#include "tensor/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void nb_rng_seed(nb_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
    r->has_cached = 0;
    r->cached_normal = 0;
}

uint64_t nb_rng_next(nb_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double nb_rng_uniform(nb_rng *r) {
    return (double)(nb_rng_next(r) >> 11) * 0x1.0p-53;
}

double nb_rng_normal(nb_rng *r) {
    if (r->has_cached) {
        r->has_cached = 0;
        return r->cached_normal;
    }
    double u, v, s;
    do {
        u = 2.0 * nb_rng_uniform(r) - 1.0;
        v = 2.0 * nb_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    r->cached_normal = v * f;
    r->has_cached = 1;
    return u * f;
}

uint64_t nb_rng_below(nb_rng *r, uint64_t n) {
    /* Rejection sampling on the top of the range keeps every value equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = nb_rng_next(r);
    while (x >= limit);
    return x % n;
}

void nb_rng_permutation(nb_rng *r, int64_t *perm, int64_t n) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nb_rng_below(r, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static nb_rng global_rng = {
    {0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 0x2545F4914F6CDD1Dull},
    0.0,
    0};

nb_rng *nb_rng_global(void) {
    return &global_rng;
}

void nb_manual_seed(uint64_t seed) {
    nb_rng_seed(&global_rng, seed);
}
