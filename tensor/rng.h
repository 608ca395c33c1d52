/* tensor/rng.h: the random number generator, seeded and the same on every platform.
 *
 *   nb_rng r;
 *   nb_rng_seed(&r, 42);
 *   double u = nb_rng_uniform(&r);    // [0, 1)
 *   double z = nb_rng_normal(&r);     // N(0, 1)
 *
 * The generator is xoshiro256** (Blackman and Vigna, 2018): 256 bits of state, period 2^256-1,
 * fast, and defined only by 64-bit integer arithmetic, so the bit stream for a seed is the same
 * on every platform. The seed is expanded into the state with splitmix64. Uniform doubles take
 * the top 53 bits. Normals use Marsaglia's polar method in double precision (two normals per
 * accepted pair; the second is cached), so they match across platforms wherever libm's log and
 * sqrt agree, which for glibc, musl and macOS they do on the values used here.
 *
 * A process-wide generator, nb_rng_global(), serves tensor_randn/tensor_rand and the
 * reparameterized sampler; nb_manual_seed() reseeds it (like torch.manual_seed). */
#ifndef NB_RNG_H
#define NB_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];        /* xoshiro256** state */
    double cached_normal; /* the second normal of the last polar pair */
    int has_cached;       /* 1 when cached_normal is unused */
} nb_rng;

void nb_rng_seed(nb_rng *r, uint64_t seed);
uint64_t nb_rng_next(nb_rng *r);              /* 64 random bits */
double nb_rng_uniform(nb_rng *r);             /* [0, 1) */
double nb_rng_normal(nb_rng *r);              /* standard normal */
uint64_t nb_rng_below(nb_rng *r, uint64_t n); /* uniform in [0, n), unbiased; n > 0 */
/* Fills perm[0..n) with a uniformly random permutation of 0..n-1 (torch.randperm): Fisher-Yates
 * from the last element down, with nb_rng_below. perm's old contents don't matter, so the
 * order is fixed by the generator's state alone. */
void nb_rng_permutation(nb_rng *r, int64_t *perm, int64_t n);

nb_rng *nb_rng_global(void);
void nb_manual_seed(uint64_t seed);

#endif
