/* examples/mpi/ddp.c: a training loop made data-parallel with dist/ (make MPI=1).
 *
 *   mpirun -np 2 build/mpi/ddp                 2 ranks, each on half of every global batch
 *   mpirun -np 2 build/mpi/ddp --micro 8       micro-batches of 8: the same bits for any -np
 *   build/mpi/ddp                              one process (mpirun -np 1 is the same)
 *   flags: --steps N (300), --batch B (64, the global batch), --micro M (0: off),
 *          --allreduce (MPI_Allreduce instead of the rank-ordered sum)
 *
 * A 2-64-64-2 ReLU MLP learns two interleaved spirals with Adam, as examples/spirals.c does on
 * one process. The lines marked DIST are all that data parallelism adds to the loop:
 *   1. dist_init, and a broadcast so every rank starts from rank 0's parameters (here each rank
 *      initialises with its own seed on purpose, so the broadcast is visible);
 *   2. each rank draws the same global batch (same seed) and keeps its shard (dist_shard);
 *   3. the loss is the shard's SUM divided by the global batch size, so the sum of the ranks'
 *      gradients is the global batch's mean gradient;
 *   4. after backward, dist_grads_sync; then every rank takes the same optimizer step;
 *   5. metrics are summed with dist_sum; rank 0 alone prints (and would write files).
 * It prints the loss, the accuracy and an FNV-1a hash of the final parameters' bytes, so runs
 * can be compared bit for bit (tests/mpi/run.sh does). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "dist/dist.h"
#include "nn/module.h"
#include "nn/loss.h"
#include "nn/optim.h"

#define POINTS 800
#define HIDDEN 64
#define LR     0.01

/* ---- data and model ------------------------------------------------------------------------ */

typedef struct {
    real *x;         /* [N, 2] */
    int64_t *labels; /* [N] class 0 or 1 */
} dataset;

/* Two spirals of POINTS / 2 points each, radius in [0.05, 1], 1.5 turns, noise 0.02. */
static dataset spirals(uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    dataset d = {nb_malloc(sizeof(real) * 2 * POINTS), nb_malloc(sizeof(int64_t) * POINTS)};
    for (int64_t i = 0; i < POINTS; i++) {
        double r = 0.05 + 0.95 * nb_rng_uniform(&rng),
               th = 3 * 3.14159265358979 * r + (i % 2) * 3.14159265358979;
        d.x[2 * i] = (real)(r * cos(th) + 0.02 * nb_rng_normal(&rng));
        d.x[2 * i + 1] = (real)(r * sin(th) + 0.02 * nb_rng_normal(&rng));
        d.labels[i] = i % 2;
    }
    return d;
}

typedef struct {
    nn_module *net; /* 2 -> HIDDEN -> HIDDEN -> 2, ReLUs between */
    nn_params ps;
} mlp;

static void mlp_init(mlp *m, uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    m->net = nn_sequential(nn_linear_module(2, HIDDEN, true, &rng), nn_relu_module(),
                           nn_linear_module(HIDDEN, HIDDEN, true, &rng), nn_relu_module(),
                           nn_linear_module(HIDDEN, 2, true, &rng), NULL);
    m->ps = (nn_params){0};
    nn_module_params(m->net, NULL, &m->ps);
}

static void mlp_free(mlp *m) {
    nn_params_free(&m->ps);
    nn_module_free(m->net);
}

/* Points idx[0..n) of d -> logits [n, 2] (step tensor); their labels into labels [n]. */
static Tensor *forward(const mlp *m, const dataset *d, const int64_t *idx, int64_t n,
                       int64_t *labels) {
    Tensor *x = tensor_step(NB_SHAPE(n, 2));
    for (int64_t i = 0; i < n; i++) {
        x->data[2 * i] = d->x[2 * idx[i]];
        x->data[2 * i + 1] = d->x[2 * idx[i] + 1];
        labels[i] = d->labels[idx[i]];
    }
    return nn_forward(m->net, x);
}

/* Summed cross-entropy of idx[0..n) divided by the global batch size; backward from it; the
 * right answers go to *right. Returns the summed loss. */
static double shard_step(const mlp *m, const dataset *d, const int64_t *idx, int64_t n,
                         int64_t batch, double *right) {
    int64_t labels[POINTS];
    Tensor *logits = forward(m, d, idx, n, labels);
    Tensor *sum = nn_cross_entropy(logits, labels, NN_SUM);
    ag_backward(ag_mul_scalar(sum, (real)(1.0 / (double)batch)));
    for (int64_t i = 0; i < n; i++)
        *right += (logits->data[2 * i + 1] > logits->data[2 * i]) == (labels[i] == 1);
    double l = tensor_item(sum);
    ag_reset();
    return l;
}

static uint64_t params_hash(const nn_params *ps) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < ps->n; i++) {
        const unsigned char *b = (const unsigned char *)ps->items[i].t->data;
        for (size_t j = 0; j < sizeof(real) * (size_t)ps->items[i].t->numel; j++)
            h = (h ^ b[j]) * 1099511628211ull;
    }
    return h;
}

/* ---- the data-parallel loop ------------------------------------------------------------------ */

int main(int argc, char **argv) {
    dist_init(&argc, &argv); /* DIST 1 */
    dist_group world = dist_world();
    int64_t steps = 300, batch = 64, micro = 0;
    dist_reduce how = DIST_ORDERED;
    for (int i = 1; i < argc; i++) {
        bool val = i + 1 < argc;
        if (!strcmp(argv[i], "--steps") && val)
            steps = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && val)
            batch = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--micro") && val)
            micro = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--allreduce"))
            how = DIST_ALLREDUCE;
        else
            dist_abort(2, "ddp: unknown or incomplete flag '%s'", argv[i]);
    }
    if (steps < 1 || batch < 1 || batch > POINTS || micro < 0)
        dist_abort(2, "ddp: need --steps >= 1, 1 <= --batch <= %d, --micro >= 0", POINTS);

    dataset d = spirals(7);
    mlp m;
    mlp_init(&m, 42 + (uint64_t)world.rank);
    dist_broadcast_params(&world, &m.ps); /* DIST 1: everyone starts from rank 0's model */
    nn_optim *opt = nn_optim_adam(&m.ps, nn_adam_defaults(LR));
    int64_t unit = micro ? micro : 1, per_rank = (batch + unit - 1) / unit;
    dist_grads *sync = dist_grads_new(&world, &m.ps, micro ? (int)per_rank : 1, how);

    nb_rng order; /* the same on every rank: the global batches */
    nb_rng_seed(&order, 1);
    int64_t perm[POINTS];
    for (int64_t i = 0; i < POINTS; i++) perm[i] = i;
    double loss = 0, acc = 0;
    for (int64_t step = 0; step < steps; step++) {
        int64_t b = step % (POINTS / batch), *gb = perm + b * batch; /* the global batch */
        if (b == 0)                                                  /* a new epoch: shuffle */
            for (int64_t i = POINTS - 1; i > 0; i--) {
                int64_t j = (int64_t)nb_rng_below(&order, (uint64_t)i + 1), t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
        int64_t start, count; /* DIST 2: this rank's shard of the global batch gb[0..batch) */
        dist_shard(batch, unit, world.rank, world.size, &start, &count);
        nn_optim_zero_grad(opt);
        double sums[2] = {0, 0}; /* summed loss, right answers */
        if (!micro) {
            if (count > 0) sums[0] = shard_step(&m, &d, gb + start, count, batch, &sums[1]);
        } else {
            for (int64_t a = start; a < start + count; a += micro) {
                int64_t n = start + count - a < micro ? start + count - a : micro;
                sums[0] += shard_step(&m, &d, gb + a, n, batch, &sums[1]);
                dist_grads_stash(sync); /* DIST: this micro-batch's gradient, in order */
            }
        }
        dist_grads_sync(sync, 1.0); /* DIST 4: .grad is now the global batch's gradient */
        nn_optim_step(opt);
        dist_sum(&world, sums, 2); /* DIST 5 */
        loss = sums[0] / (double)batch;
        acc = sums[1] / (double)batch;
        if (world.rank == 0 && (step % 100 == 0 || step == steps - 1))
            printf("step %4lld  loss %.6f  batch accuracy %.3f\n", (long long)step, loss, acc);
    }
    dist_stats st = dist_grads_stats(sync);
    uint64_t h = params_hash(&m.ps);
    if (world.rank == 0) {
        printf("ranks %d  batch %lld  micro %lld  %s  final loss %.9g\n", world.size,
               (long long)batch, (long long)micro, how == DIST_ORDERED ? "ordered" : "allreduce",
               loss);
        printf("params %016llx\n", (unsigned long long)h);
        printf("sync %.3f ms per step (exchange %.3f ms), %lld bytes\n",
               1e3 * st.sync_seconds / (double)st.syncs,
               1e3 * st.exchange_seconds / (double)st.syncs, (long long)st.bytes);
    }
    dist_grads_free(sync);
    nn_optim_free(opt);
    mlp_free(&m);
    nb_free(d.x);
    nb_free(d.labels);
    arena_free_all();
    dist_finalize();
    return 0;
}
