/* tests/mpi/bench_dist.c: the cost of one gradient sync for the MLP VAE's parameters
 * (784-400-20: 652,824 values, 2.6 MB in float), rank-ordered against MPI_Allreduce.
 *
 *   mpirun -np 2 build/mpi/tests/mpi/bench_dist [reps]
 *
 * Prints, per method, the median and best time of a sync and of its exchange alone (ms), and
 * whether the two methods' results agree to rounding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "dist/dist.h"

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    dist_group world = dist_world();
    int reps = argc > 1 ? atoi(argv[1]) : 50;
    if (reps < 1 || reps > 10000) dist_abort(2, "bench_dist: reps in [1, 10000]");
    int64_t shapes[][2] = {{400, 784}, {400, 1},  {20, 400}, {20, 1},    {20, 400},
                           {20, 1},    {400, 20}, {400, 1},  {784, 400}, {784, 1}};
    enum { NT = 10 };
    Tensor *t[NT];
    nn_params ps = {0};
    nb_rng rng;
    nb_rng_seed(&rng, 3 + (uint64_t)world.rank);
    for (int i = 0; i < NT; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        t[i] = tensor_zeros(NB_SHAPE(shapes[i][0], shapes[i][1]));
        nn_params_add(&ps, NULL, name, t[i]);
    }
    real *result[2];
    for (int how = 0; how < 2; how++) {
        dist_grads *s = dist_grads_new(&world, &ps, 1, how ? DIST_ALLREDUCE : DIST_ORDERED);
        double *sync = nb_malloc(sizeof(double) * (size_t)reps),
               *ex = nb_malloc(sizeof(double) * (size_t)reps);
        for (int r = -3; r < reps; r++) { /* 3 warm-up rounds */
            nb_rng_seed(&rng, 3 + (uint64_t)world.rank);
            for (int i = 0; i < NT; i++) {
                Tensor *g = ag_grad(t[i]);
                for (int64_t j = 0; j < g->numel; j++) g->data[j] = (real)nb_rng_normal(&rng);
            }
            MPI_Barrier(world.comm);
            dist_stats a = dist_grads_stats(s);
            dist_grads_sync(s, 1.0);
            dist_stats b = dist_grads_stats(s);
            if (r >= 0) {
                sync[r] = 1e3 * (b.sync_seconds - a.sync_seconds);
                ex[r] = 1e3 * (b.exchange_seconds - a.exchange_seconds);
            }
        }
        qsort(sync, (size_t)reps, sizeof *sync, cmp);
        qsort(ex, (size_t)reps, sizeof *ex, cmp);
        dist_sum(&world, sync, 0); /* nothing: keeps ranks in step */
        if (world.rank == 0)
            printf("%-10s %d ranks, %lld bytes: sync median %.3f ms (best %.3f), exchange median "
                   "%.3f ms (best %.3f)\n",
                   how ? "allreduce" : "ordered", world.size, (long long)dist_grads_stats(s).bytes,
                   sync[reps / 2], sync[0], ex[reps / 2], ex[0]);
        int64_t n = nn_params_count(&ps), k = 0;
        result[how] = nb_malloc(sizeof(real) * (size_t)n);
        for (int i = 0; i < NT; i++) {
            memcpy(result[how] + k, t[i]->grad->data, sizeof(real) * (size_t)t[i]->numel);
            k += t[i]->numel;
        }
        nb_free(sync);
        nb_free(ex);
        dist_grads_free(s);
    }
    int64_t n = nn_params_count(&ps), differ = 0;
    double worst = 0;
    for (int64_t j = 0; j < n; j++) {
        double d = (double)result[0][j] - (double)result[1][j];
        differ += d != 0;
        if (d < 0) d = -d;
        if (d > worst) worst = d;
    }
    if (world.rank == 0)
        printf("ordered vs allreduce: %lld of %lld values differ, by at most %.3g\n",
               (long long)differ, (long long)n, worst);
    for (int i = 0; i < NT; i++) tensor_free(t[i]);
    nb_free(result[0]);
    nb_free(result[1]);
    nn_params_free(&ps);
    dist_finalize();
    return 0;
}
