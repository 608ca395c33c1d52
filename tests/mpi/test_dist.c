/* tests/mpi/test_dist.c: dist/ under mpirun -np 2 (or more); tests/mpi/run.sh runs it.
 *
 *   mpirun -np 2 build/mpi/tests/mpi/test_dist           the checks; exit 1 if any fails
 *   mpirun -np 2 build/mpi/tests/mpi/test_dist --fail R  rank R fails (nb_fail) while the others
 *                                                        wait in a collective: the job must stop
 *
 * Every rank runs every check; a failure prints its rank and line, and the exit status is the
 * logical or over ranks. The one-process references run on MPI_COMM_SELF in the same program. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "dist/dist.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/gemm.h"

static int failures;
static dist_group world;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "test_dist: rank %d: line %d: ", world.rank, __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* ---- sharding, sums, broadcast -------------------------------------------------------------- */

static void test_shard(void) {
    int64_t s, c;
    int64_t want3[3][2] = {{0, 4}, {4, 3}, {7, 3}}; /* 10 items over 3 ranks */
    for (int r = 0; r < 3; r++) {
        dist_shard(10, 1, r, 3, &s, &c);
        CHECK(s == want3[r][0] && c == want3[r][1], "shard 10/3 rank %d: %lld+%lld", r,
              (long long)s, (long long)c);
    }
    int64_t want4[4][2] = {{0, 4}, {4, 4}, {8, 2}, {10, 0}}; /* 3 units of 4 over 4 ranks */
    for (int r = 0; r < 4; r++) {
        dist_shard(10, 4, r, 4, &s, &c);
        CHECK(s == want4[r][0] && c == want4[r][1], "shard 10 by 4s over 4, rank %d: %lld+%lld", r,
              (long long)s, (long long)c);
    }
}

static void test_sum(void) {
    double v[70];
    for (int i = 0; i < 70; i++) v[i] = (world.rank + 1) * 0.1 + i;
    dist_sum(&world, v, 70);
    for (int i = 0; i < 70; i++) {
        double want = 0;
        for (int r = 0; r < world.size; r++) want += (r + 1) * 0.1 + i;
        CHECK(v[i] == want, "dist_sum[%d] = %.17g, want %.17g (rank order)", i, v[i], want);
    }
}

static void test_broadcast(void) {
    Tensor *w = tensor_full(NB_SHAPE(3, 5), (real)(world.rank + 1));
    Tensor *run = tensor_full(NB_SHAPE(5), (real)(10 * world.rank + 7));
    nn_params ps = {0};
    nn_params_add(&ps, "layer", "weight", w);
    nn_params_add_buffer(&ps, "layer", "running_mean", run);
    dist_broadcast_params(&world, &ps);
    for (int64_t i = 0; i < w->numel; i++)
        CHECK(w->data[i] == 1, "weight[%lld] not rank 0's", (long long)i);
    for (int64_t i = 0; i < run->numel; i++)
        CHECK(run->data[i] == 7, "buffer[%lld] not rank 0's", (long long)i);
    /* optimizer state: one Adam step from rank-dependent gradients, then rank 0's state */
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(0.1));
    tensor_fill(ag_grad(w), (real)(world.rank + 1));
    nn_optim_step(opt);
    if (world.rank > 0) nn_optim_step(opt); /* a second step: the counts differ too */
    dist_broadcast_optim(&world, opt);
    for (int i = 0; i < nn_optim_state_count(opt); i++) {
        nn_optim_state e = nn_optim_state_at(opt, i);
        double v[2] = {e.t ? (double)e.t->data[e.t->numel - 1] : (double)*e.count, 0};
        v[1] = v[0];
        dist_sum(&world, v, 1); /* equal everywhere: the sum is size times mine */
        CHECK(v[0] == world.size * v[1], "%s differs between ranks after the broadcast", e.name);
        if (!e.t && strstr(e.name, "weight"))
            CHECK(*e.count == 1, "%s = %lld, rank 0 took 1 step", e.name, (long long)*e.count);
    }
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(w);
    tensor_free(run);
}

/* ---- gradients: absent ones, scale, no allocation ------------------------------------------- */

static void test_null_grads(void) {
    Tensor *a = tensor_zeros(NB_SHAPE(70000)), *b = tensor_zeros(NB_SHAPE(4)),
           *c = tensor_zeros(NB_SHAPE(2)), *buf = tensor_zeros(NB_SHAPE(3));
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "a", a);
    nn_params_add_buffer(&ps, NULL, "buf", buf);
    nn_params_add(&ps, NULL, "b", b);
    nn_params_add(&ps, NULL, "c", c);
    for (int how = 0; how < 2; how++) {
        dist_grads *s = dist_grads_new(&world, &ps, 1, how ? DIST_ALLREDUCE : DIST_ORDERED);
        for (int round = 0; round < 3; round++) {
            /* a on every rank, b only on rank 0 (-0.0 there, kept exactly), c nowhere */
            tensor_fill(ag_grad(a), (real)(world.rank + 1));
            if (world.rank == 0)
                tensor_fill(ag_grad(b), (real)-0.0);
            else
                tensor_clear_grad(b);
            tensor_clear_grad(c);
            nb_mem_stats_t before = nb_mem_stats();
            dist_grads_sync(s, 0.5);
            nb_mem_stats_t after = nb_mem_stats();
            if (round > 0)
                CHECK(after.allocs == before.allocs, "sync allocated %lld blocks in round %d",
                      (long long)(after.allocs - before.allocs), round);
            real want = (real)(0.25 * world.size * (world.size + 1));
            CHECK(a->grad && a->grad->data[0] == want && a->grad->data[69999] == want,
                  "a's grad %g, want %g", a->grad ? (double)a->grad->data[69999] : -1.0,
                  (double)want);
            /* the ordered sum adds only present gradients: rank 0's -0 stays -0 */
            CHECK(b->grad && b->grad->data[3] == 0 && (how || signbit(b->grad->data[3])),
                  "b's grad must be rank 0's -0 on every rank");
            CHECK(c->grad == NULL, "c had no gradient anywhere and must stay NULL");
            CHECK(buf->grad == NULL, "a buffer gets no gradient");
        }
        dist_grads_free(s);
    }
    nn_params_free(&ps);
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    tensor_free(buf);
}

/* ---- training: N ranks against one process ------------------------------------------------ */

#define B 24 /* global batch */
#define D 5
#define H 16

/* A D-H-1 tanh MLP regressing a fixed random function; steps Adam steps over global batches of
 * B; micro > 0: micro-batches of that size. Returns the final parameters in out [count]. */
static int64_t train(const dist_group *g, int64_t micro, dist_reduce how, int steps, real *out) {
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    nn_linear l1, l2;
    nn_linear_init(&l1, D, H, true, &rng);
    nn_linear_init(&l2, H, 1, true, &rng);
    nn_params ps = {0};
    nn_linear_params(&l1, "l1", &ps);
    nn_linear_params(&l2, "l2", &ps);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(0.01));
    int64_t unit = micro ? micro : 1;
    dist_grads *s = dist_grads_new(g, &ps, (int)((B + unit - 1) / unit), how);
    nb_rng data;
    nb_rng_seed(&data, 9);
    for (int step = 0; step < steps; step++) {
        real x[B * D], y[B];
        for (int i = 0; i < B * D; i++) x[i] = (real)nb_rng_normal(&data);
        for (int i = 0; i < B; i++) y[i] = (real)sin(x[i * D] + x[i * D + 1] * x[i * D + 2]);
        int64_t start, count;
        dist_shard(B, unit, g->rank, g->size, &start, &count);
        nn_optim_zero_grad(opt);
        int64_t piece = micro ? micro : (count ? count : 1);
        for (int64_t a = start; a < start + count; a += piece) {
            int64_t n = start + count - a < piece ? start + count - a : piece;
            Tensor *xb = ag_constant(NB_SHAPE(n, D), x + a * D),
                   *yb = ag_constant(NB_SHAPE(n, 1), y + a);
            Tensor *pred = nn_linear_forward(&l2, ag_tanh(nn_linear_forward(&l1, xb)));
            ag_backward(ag_mul_scalar(nn_mse(pred, yb, NN_SUM), (real)(1.0 / B)));
            ag_reset();
            if (micro) dist_grads_stash(s);
        }
        dist_grads_sync(s, 1.0);
        nn_optim_step(opt);
    }
    int64_t k = 0;
    for (int i = 0; i < ps.n; i++) {
        memcpy(out + k, ps.items[i].t->data, sizeof(real) * (size_t)ps.items[i].t->numel);
        k += ps.items[i].t->numel;
    }
    dist_grads_free(s);
    nn_optim_free(opt);
    nn_params_free(&ps);
    nn_linear_free(&l1);
    nn_linear_free(&l2);
    return k;
}

static double max_diff(const real *a, const real *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

static void test_training(void) {
    enum { STEPS = 40, NP = D * H + H + H + 1 };
    real one[NP], many[NP], again[NP], fast[NP];
    dist_group self = dist_self();
    /* plain sharding: the same model as one process up to rounding; the same bits each run */
    int64_t n = train(&self, 0, DIST_ORDERED, STEPS, one);
    CHECK(n == NP, "%lld parameters", (long long)n);
    train(&world, 0, DIST_ORDERED, STEPS, many);
    train(&world, 0, DIST_ORDERED, STEPS, again);
    train(&world, 0, DIST_ALLREDUCE, STEPS, fast);
    double tol = sizeof(real) == 4 ? 1e-4 : 1e-12;
    CHECK(max_diff(one, many, NP) < tol, "%d ranks vs one process: max diff %g", world.size,
          max_diff(one, many, NP));
    CHECK(max_diff(one, fast, NP) < tol, "allreduce vs one process: max diff %g",
          max_diff(one, fast, NP));
    CHECK(!memcmp(many, again, sizeof many), "two runs with the same N differ");
    /* the training really moved (a broken sync that zeroes gradients would pass the above) */
    real init[NP];
    train(&self, 0, DIST_ORDERED, 0, init);
    CHECK(max_diff(init, one, NP) > 0.05, "training did not move the parameters");
    /* micro-batches of 4 (6 per global batch): the same bits as one process, for any N */
    train(&self, 4, DIST_ORDERED, STEPS, one);
    train(&world, 4, DIST_ORDERED, STEPS, many);
    CHECK(!memcmp(one, many, sizeof one),
          "micro-batches: %d ranks differ from one process (max %g)", world.size,
          max_diff(one, many, NP));
    train(&world, 5, DIST_ORDERED, STEPS, many); /* a last, shorter micro-batch */
    train(&self, 5, DIST_ORDERED, STEPS, one);
    CHECK(!memcmp(one, many, sizeof one), "micro-batches of 5: ranks differ from one process");
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    world = dist_world();
    if (argc == 3 && !strcmp(argv[1], "--fail")) {
        if (world.rank == atoi(argv[2]))
            nb_fail("test_dist", "rank %d fails on purpose", world.rank);
        double v = 1;
        dist_sum(&world, &v, 1); /* the others wait here: the job must stop, not hang */
        dist_finalize();
        return 0;
    }
    /* the tape's pointer array lives as long as the process: count from after it exists */
    Tensor *warm = tensor_zeros(NB_SHAPE(1));
    tensor_requires_grad(warm, true);
    ag_mul_scalar(warm, 2);
    ag_reset();
    arena_free_all();
    tensor_free(warm);
    int64_t live0 = nb_mem_stats().live;
    test_shard();
    test_sum();
    test_broadcast();
    test_null_grads();
    test_training();
    arena_free_all();
    nb_gemm_release(); /* one thread here (OMP_NUM_THREADS=1 in run.sh) */
    nb_mem_stats_t mem = nb_mem_stats();
    CHECK(mem.live == live0, "%lld blocks still allocated at the end, %lld at the start",
          (long long)mem.live, (long long)live0);
    int any = failures > 0;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    if (world.rank == 0)
        printf("test_dist: %d ranks: %s\n", world.size, any ? "FAILED" : "all checks passed");
    dist_finalize();
    return any ? EXIT_FAILURE : EXIT_SUCCESS;
}
