/* examples/vae/par.c: see par.h. With NB_MPI (make MPI=1) on dist/; without, one rank. */
#include "examples/vae/par.h"

#include <stdio.h>

#ifdef NB_MPI
#include "dist/dist.h"

struct par_sync {
    dist_grads *g;
};

static dist_group world;

void par_init(int *argc, char ***argv) {
    dist_init(argc, argv);
    world = dist_world();
    if (world.rank > 0 && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "vae: rank %d: cannot silence stdout\n", world.rank);
}

int par_finish(int rc) {
    if (rc && world.size > 1)
        dist_abort(rc, "vae: this rank failed (exit status %d): stopping the job", rc);
    dist_finalize();
    return rc;
}

int par_rank(void) {
    return world.rank;
}

int par_size(void) {
    return world.size;
}

void par_broadcast(const nn_params *ps, nn_optim *opt) {
    dist_broadcast_params(&world, ps);
    if (opt) dist_broadcast_optim(&world, opt);
}

void par_shard(int64_t n, int64_t *start, int64_t *count) {
    dist_shard(n, 1, world.rank, world.size, start, count);
}

void par_sum(double *v, int n) {
    dist_sum(&world, v, n);
}

nb_rng *par_noise(nb_rng *shared, nb_rng *mine) {
    if (world.size == 1) return shared;
    uint64_t draw = nb_rng_next(shared);
    nb_rng_seed(mine, draw ^ (0x9E3779B97F4A7C15ull * (uint64_t)(world.rank + 1)));
    return mine;
}

par_sync *par_sync_new(const nn_params *ps) {
    if (world.size == 1) return NULL;
    par_sync *s = nb_malloc(sizeof *s);
    s->g = dist_grads_new(&world, ps, 1, DIST_ORDERED);
    return s;
}

void par_sync_grads(par_sync *s) {
    if (s) dist_grads_sync(s->g, 1.0);
}

double par_sync_seconds(const par_sync *s) {
    return s ? dist_grads_stats(s->g).exchange_seconds : 0;
}

void par_sync_free(par_sync *s) {
    if (!s) return;
    dist_grads_free(s->g);
    nb_free(s);
}

#else /* one process */

void par_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
}

int par_finish(int rc) {
    return rc;
}

int par_rank(void) {
    return 0;
}

int par_size(void) {
    return 1;
}

void par_broadcast(const nn_params *ps, nn_optim *opt) {
    (void)ps;
    (void)opt;
}

void par_shard(int64_t n, int64_t *start, int64_t *count) {
    *start = 0;
    *count = n;
}

void par_sum(double *v, int n) {
    (void)v;
    (void)n;
}

nb_rng *par_noise(nb_rng *shared, nb_rng *mine) {
    (void)mine;
    return shared;
}

par_sync *par_sync_new(const nn_params *ps) {
    (void)ps;
    return NULL;
}

void par_sync_grads(par_sync *s) {
    (void)s;
}

double par_sync_seconds(const par_sync *s) {
    (void)s;
    return 0;
}

void par_sync_free(par_sync *s) {
    (void)s;
}

#endif
