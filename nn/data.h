/* nn/data.h: walking a dataset in mini-batches, shuffled or in order (PyTorch's DataLoader over
 * in-memory data, without workers).
 *
 *   nn_batches it;
 *   nn_batches_init(&it, X->shape[0], 32, true, false, 1); // shuffled; keeps a partial last batch
 *   Tensor *xb = tensor_empty(NB_SHAPE(32, 4));            // kept: each batch is copied in
 *   int64_t y[32];
 *   for (int epoch = 0; epoch < 3; epoch++)
 *       while (nn_batches_next(&it)) {                     // each epoch in a fresh order
 *           Tensor *x = nn_batches_gather(&it, X, xb);     // rows it.index[0..it.count) of X
 *           for (int64_t i = 0; i < it.count; i++) y[i] = labels[it.index[i]];
 *           train_step(x, y);                              // ..., ag_reset()
 *       }
 *   tensor_free(xb);
 *   nn_batches_free(&it);
 *
 * (X is a kept [N, 4] tensor, labels an int64_t array [N]; tests/test_data.c runs this.)
 *
 * The iterator hands out example indices; the caller gathers the examples, from kept tensors
 * whose first dim is the example dim (nn_batches_gather) or from anything else (io/idx.h's
 * idx_batch takes the same index list). An epoch starts by itself at the first nn_batches_next
 * after init or after the last batch, in a uniform random order (nb_rng_permutation) drawn from
 * the iterator's own generator, seeded once at init: the same seed gives the same orders. A
 * caller that keeps its own generator (a run that saves it in a checkpoint, to resume in the same
 * order) starts each epoch with nn_batches_epoch(&it, rng) instead. Nothing is allocated after
 * init.
 * Programmer errors (a bad batch size, a tensor that doesn't fit) go through nb_fail. */
#ifndef NB_NN_DATA_H
#define NB_NN_DATA_H

#include "tensor/tensor.h"

typedef struct {
    int64_t n;            /* examples in the dataset */
    int64_t batch;        /* examples per batch; the last one may have fewer */
    bool shuffle;         /* a new random order each epoch (false: 0, 1, ..., n-1) */
    bool drop_last;       /* skip a last batch smaller than `batch` */
    nb_rng rng;           /* draws the order when nn_batches_epoch gets no generator */
    int64_t *order;       /* [n] this epoch's order of the examples */
    int64_t pos;          /* examples handed out so far this epoch */
    bool in_epoch;        /* false: the next nn_batches_next starts an epoch */
    const int64_t *index; /* [count] the current batch's example indices (into order) */
    int64_t count;        /* examples in the current batch */
} nn_batches;

/* Sets up batches of `batch` (>= 1) over n (>= 0) examples; seed seeds the iterator's own
 * generator. No epoch is under way yet. Free with nn_batches_free. */
void nn_batches_init(nn_batches *it, int64_t n, int64_t batch, bool shuffle, bool drop_last,
                     uint64_t seed);
/* Starts a new epoch (abandoning any under way): a fresh permutation drawn from rng (NULL: the
 * iterator's own) when shuffling, else the examples in order (rng unused). */
void nn_batches_epoch(nn_batches *it, nb_rng *rng);
/* Moves to the next batch (it->index, it->count), first starting an epoch with the iterator's
 * generator if none is under way; false at the end of the epoch (and the next call starts
 * another). With drop_last a last batch smaller than `batch` is skipped. */
bool nn_batches_next(nn_batches *it);
/* Batches in one epoch: ceil(n / batch), or floor with drop_last. */
int64_t nn_batches_per_epoch(const nn_batches *it);
void nn_batches_free(nn_batches *it); /* NULL-safe; leaves *it zeroed */

/* Copies the current batch's examples (rows it->index[i] of src's first dim) into the first
 * it->count rows of dst, a contiguous tensor of src's shape with `batch` rows, and returns
 * dst when the batch is full or a view of its first it->count rows (a step tensor) otherwise. */
Tensor *nn_batches_gather(const nn_batches *it, const Tensor *src, Tensor *dst);

#endif
