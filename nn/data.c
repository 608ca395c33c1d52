/* nn/data.c: mini-batch iteration over index permutations. */
#include "nn/data.h"

#include <string.h>

#include "autograd/autograd.h"

void nn_batches_init(nn_batches *it, int64_t n, int64_t batch, bool shuffle, bool drop_last,
                     uint64_t seed) {
    if (!it || n < 0 || batch < 1)
        nb_fail("nn_batches_init", "NULL iterator, %lld examples or batch %lld", (long long)n,
                (long long)batch);
    memset(it, 0, sizeof *it);
    it->n = n;
    it->batch = batch;
    it->shuffle = shuffle;
    it->drop_last = drop_last;
    nb_rng_seed(&it->rng, seed);
    it->order = nb_malloc((size_t)(n > 0 ? n : 1) * sizeof *it->order);
    for (int64_t i = 0; i < n; i++) it->order[i] = i;
    it->index = it->order;
}

void nn_batches_epoch(nn_batches *it, nb_rng *rng) {
    if (it->shuffle)
        nb_rng_permutation(rng ? rng : &it->rng, it->order, it->n);
    else
        for (int64_t i = 0; i < it->n; i++) it->order[i] = i;
    it->pos = 0;
    it->in_epoch = true;
    it->index = it->order;
    it->count = 0;
}

bool nn_batches_next(nn_batches *it) {
    if (!it->in_epoch) nn_batches_epoch(it, NULL);
    int64_t left = it->n - it->pos;
    if (left <= 0 || (it->drop_last && left < it->batch)) {
        it->count = 0;
        it->in_epoch = false;
        return false;
    }
    it->index = it->order + it->pos;
    it->count = left < it->batch ? left : it->batch;
    it->pos += it->count;
    return true;
}

int64_t nn_batches_per_epoch(const nn_batches *it) {
    return it->drop_last ? it->n / it->batch : (it->n + it->batch - 1) / it->batch;
}

void nn_batches_free(nn_batches *it) {
    if (!it) return;
    nb_free(it->order);
    memset(it, 0, sizeof *it);
}

Tensor *nn_batches_gather(const nn_batches *it, const Tensor *src, Tensor *dst) {
    char s1[128], s2[128];
    tensor_check_live("nn_batches_gather", src);
    bool fits = src->ndim >= 1 && tensor_is_contiguous(dst) && dst->ndim == src->ndim &&
                dst->shape[0] == it->batch && src->shape[0] == it->n;
    for (int d = 1; fits && d < src->ndim; d++) fits = dst->shape[d] == src->shape[d];
    if (!fits)
        nb_fail("nn_batches_gather",
                "src %s must have the iterator's %lld examples and dst %s (contiguous) %lld "
                "rows of the same shape",
                nb_shape_str(s1, src->ndim, src->shape), (long long)it->n,
                nb_shape_str(s2, dst->ndim, dst->shape), (long long)it->batch);
    int64_t row = src->shape[0] ? src->numel / src->shape[0] : 0;
    for (int64_t i = 0; i < it->count; i++) {
        Tensor one;
        tensor_layout_narrow(src, 0, it->index[i], 1, &one); /* checks the index */
        tensor_to_array(&one, dst->data + dst->offset + i * row);
    }
    return it->count == it->batch ? dst : ag_narrow(dst, 0, 0, it->count);
}
