/* dist/dist.h: data-parallel training over MPI (Open MPI or MPICH), outside the core.
 *
 *   // from examples/mpi/ddp.c: every rank runs the same program (mpirun -np N ./ddp)
 *   dist_init(&argc, &argv);                          // MPI_Init; nb_fail now stops every rank
 *   dist_group world = dist_world();                  // .rank, .size
 *   dist_broadcast_params(&world, &m.ps);             // rank 0's parameters and buffers to all
 *   dist_grads *sync = dist_grads_new(&world, &m.ps, 1, DIST_ORDERED);
 *   for (int step = 0; step < STEPS; step++) {
 *       int64_t start, count;                         // this rank's part of the global batch
 *       dist_shard(BATCH, 1, world.rank, world.size, &start, &count);
 *       nn_optim_zero_grad(opt);
 *       ag_backward(shard_loss(&m, start, count));    // the shard's summed loss / BATCH
 *       dist_grads_sync(sync, 1.0);                   // .grad = the global batch's gradient
 *       nn_optim_step(opt);                           // the same update on every rank
 *       ag_reset();
 *   }
 *   dist_grads_free(sync);
 *   dist_finalize();
 *
 * The model is replicated: every rank holds the whole model, computes the gradient of its shard
 * of each global batch, and dist_grads_sync makes every rank's .grad the sum over ranks (times a
 * scale), so the optimizers, which start equal, take equal steps. Write each rank's loss as its
 * shard's summed loss divided by the global batch size: then the sum is the global-batch mean's
 * gradient whatever the shard sizes.
 *
 * One exchange per step. dist_grads_sync packs every parameter's .grad (a NULL one as zeros) and
 * one present/absent count per parameter into a single flat buffer allocated by dist_grads_new,
 * reduces it across ranks in one collective and unpacks it; it allocates nothing. A parameter
 * whose .grad is NULL on every rank stays NULL everywhere (the optimizer skips it, as in one
 * process); one that has a gradient on some rank gets the sum on every rank.
 *
 * Determinism. DIST_ORDERED sums in rank order: rank 0's buffer, plus rank 1's, plus rank 2's...,
 * passed down the ranks in chunks (a pipeline, so every link carries the buffer once) and then
 * broadcast from the last rank. The order never depends on timing, so the same N gives the same
 * bits every run. DIST_ALLREDUCE calls MPI_Allreduce instead, whose summation order is the
 * library's choice (Open MPI picks an algorithm by size and rank count; the standard does not
 * promise the same bits); it is there to measure against.
 *
 * Results independent of N (micro-batches). Split the global batch into fixed-size micro-batches
 * (dist_shard with unit = the micro-batch size gives each rank whole micro-batches, in order).
 * After each micro-batch's backward call dist_grads_stash, which copies .grad into its own slot
 * and clears it; dist_grads_sync then folds every micro-batch gradient into the sum one by one in
 * global micro-batch order, wherever it was computed. One process (N = 1) and any N perform the
 * same additions in the same order, so they give the same bits. Memory: one slot of the flat
 * buffer per micro-batch a rank may hold in a step (max_micro).
 *
 * Errors. dist_init installs an nb_fail handler that prints the message with the rank and calls
 * MPI_Abort, so a programmer error on one rank stops the whole job instead of leaving the others
 * waiting in a collective. dist_abort does the same for a program's own fatal errors (a file
 * that cannot be read on one rank). Misuse (a parameter list that changed size, more stashes than
 * max_micro) goes through nb_fail. */
#ifndef NB_DIST_H
#define NB_DIST_H

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>

#include "nn/optim.h"
#include "nn/params.h"

#ifdef NB_DOUBLE
#define DIST_MPI_REAL MPI_DOUBLE
#else
#define DIST_MPI_REAL MPI_FLOAT
#endif

/* ---- processes --------------------------------------------------------------------------- */

typedef struct {
    MPI_Comm comm;
    int rank, size; /* this process's rank in comm, and comm's size */
} dist_group;

/* MPI_Init (with argc/argv, which may be NULL) and the aborting nb_fail handler. Call once,
 * before any other dist_ function; dist_finalize (MPI_Finalize) once at the end. */
void dist_init(int *argc, char ***argv);
void dist_finalize(void);
dist_group dist_world(void); /* every process of the job (MPI_COMM_WORLD) */
dist_group dist_self(void);  /* this process alone (MPI_COMM_SELF): a one-process reference */

/* Prints "nabla[rank r]: <message>" to stderr and stops every rank of the job (MPI_Abort) with
 * exit code `code`. Never returns. */
#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 2, 3)))
#endif
void dist_abort(int code, const char *fmt, ...);

/* ---- parameters and data ------------------------------------------------------------------ */

/* Copies rank 0's values of every tensor in ps (parameters and buffers) to every rank. Every
 * rank must pass a list of the same names and shapes (checked: a mismatch aborts the job). */
void dist_broadcast_params(const dist_group *g, const nn_params *ps);

/* Copies rank 0's optimizer state (every buffer and step counter) to every rank, e.g. after each
 * rank loaded a checkpoint, so a file that differs on one machine cannot split the replicas. */
void dist_broadcast_optim(const dist_group *g, nn_optim *opt);

/* This rank's contiguous part [*start, *start + *count) of n items handed out in whole units of
 * `unit` items (the last unit may be shorter): ranks get the units in rank order, the first
 * (units mod size) ranks one unit more. unit = 1 splits items; unit = the micro-batch size keeps
 * micro-batches whole. A rank may get nothing (*count = 0) when there are fewer units than ranks.
 */
void dist_shard(int64_t n, int64_t unit, int rank, int size, int64_t *start, int64_t *count);

/* v[0..n) <- the sum over ranks of every rank's v, added in rank order (the same bits on every
 * rank and every run). For metrics: losses, counts. */
void dist_sum(const dist_group *g, double *v, int n);

/* ---- gradients ---------------------------------------------------------------------------- */

typedef enum {
    DIST_ORDERED,  /* rank-order sum down a pipeline of ranks, then a broadcast: deterministic */
    DIST_ALLREDUCE /* MPI_Allreduce(MPI_SUM): the library's order */
} dist_reduce;

typedef struct dist_grads dist_grads;

/* Prepares the exchange for ps's parameters (buffers are skipped) with room for max_micro
 * stashed micro-batch gradients per step (1 when not using micro-batches). ps must outlive it
 * and keep its parameters; free with dist_grads_free (NULL-safe). */
dist_grads *dist_grads_new(const dist_group *g, const nn_params *ps, int max_micro,
                           dist_reduce how);
void dist_grads_free(dist_grads *s);

/* Copies every parameter's .grad into the next micro-batch slot and clears it (NULL, buffer kept
 * for reuse), ready for the next micro-batch's backward. */
void dist_grads_stash(dist_grads *s);

/* Every rank: .grad <- scale * (sum over ranks of the rank's stashed gradients, in global
 * order), or, when nothing was stashed this step, of the rank's current .grad. A collective:
 * every rank of the group must call it once per step. Empties the stash. */
void dist_grads_sync(dist_grads *s, double scale);

/* Time spent inside dist_grads_sync (packing, exchange, unpacking) and how much of it was the
 * exchange alone, in seconds since dist_grads_new; the flat buffer's size in bytes. */
typedef struct {
    double sync_seconds, exchange_seconds;
    int64_t syncs, bytes;
} dist_stats;
dist_stats dist_grads_stats(const dist_grads *s);

#endif
