/* examples/vae/par.h: vae train across MPI ranks. `make MPI=1` builds these on dist/ (dist/dist.h);
 * the ordinary build gets the one-process case (rank 0 of 1), where every call is a no-op or the
 * identity, so the training loop has no #ifdef and runs exactly as before.
 *
 * Under mpirun each rank trains on its part of every global batch (--batch stays global), the
 * gradients are summed in rank order after backward (one exchange per step), and rank 0 alone
 * prints and writes files. A rank that ends with a failure stops the whole job (par_finish). */
#ifndef NB_VAE_PAR_H
#define NB_VAE_PAR_H

#include <stdint.h>

#include "nn/optim.h"
#include "tensor/rng.h"

/* MPI_Init; ranks other than 0 send stdout to /dev/null (errors still reach stderr). */
void par_init(int *argc, char ***argv);
/* The end of main: rc != 0 on a rank of a multi-rank job stops every rank (MPI_Abort with a
 * message), else MPI_Finalize. Returns rc. */
int par_finish(int rc);
int par_rank(void);
int par_size(void);

/* Rank 0's parameters, buffers and optimizer state to every rank. */
void par_broadcast(const nn_params *ps, nn_optim *opt);
/* This rank's rows [*start, *start + *count) of a global batch of n. */
void par_shard(int64_t n, int64_t *start, int64_t *count);
/* v[0..n) <- the sum over ranks, in rank order. */
void par_sum(double *v, int n);
/* The generator for this rank's latent noise in one step: the shared one itself on one rank;
 * on several, `mine` seeded from one draw of the shared one (every rank draws it, so the shared
 * state, which checkpoints save, stays equal) and the rank. */
nb_rng *par_noise(nb_rng *shared, nb_rng *mine);

/* The gradient exchange, prepared once for ps (NULL on one rank: nothing to do). */
typedef struct par_sync par_sync;
par_sync *par_sync_new(const nn_params *ps);
void par_sync_grads(par_sync *s);           /* .grad <- the sum over ranks of .grad */
double par_sync_seconds(const par_sync *s); /* time in the exchange so far */
void par_sync_free(par_sync *s);

#endif
