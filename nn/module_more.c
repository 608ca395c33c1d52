/* nn/module_more.c: Dropout, Embedding and the GELU, SiLU and ELU activation modules, over the
 * ops of autograd/ops_elementwise.c and autograd/ops_index.c. */
#include "nn/module.h"

#include <math.h>

#include "nn/init.h"

/* ---- Dropout --------------------------------------------------------------------------------- */

typedef struct {
    nn_module base;
    real p;      /* probability of zeroing an element */
    nb_rng *rng; /* NULL: the global generator; not owned */
} dropout;

static Tensor *dropout_forward(nn_module *m, Tensor *x) {
    dropout *d = (dropout *)m;
    return ag_dropout(x, d->p, m->training, d->rng);
}

static const nn_module_ops dropout_ops = {"Dropout", dropout_forward, NULL, NULL, NULL};

nn_module *nn_dropout(real p, nb_rng *rng) {
    if (!(p >= 0 && p <= 1)) nb_fail("Dropout", "p = %g must be in [0, 1]", (double)p);
    dropout *d = nn_module_alloc(sizeof *d, &dropout_ops);
    d->p = p;
    d->rng = rng;
    return &d->base;
}

/* ---- Embedding ------------------------------------------------------------------------------- */

typedef struct {
    nn_module base;
    Tensor *weight; /* [V, E] */
} embedding;

/* ids: integer values in any shape -> ids.shape + [E]. The ids are copied to int64_t in step
 * memory (released with the step). */
static Tensor *embedding_forward(nn_module *m, Tensor *ids) {
    embedding *e = (embedding *)m;
    int64_t V = e->weight->shape[0];
    int64_t *idx = arena_alloc((size_t)(ids->numel ? ids->numel : 1) * sizeof *idx);
    int64_t at[NB_MAX_DIMS] = {0};
    for (int64_t i = 0; i < ids->numel; i++) {
        real v = tensor_get(ids, at);
        if (!(v >= 0 && v < (real)V) || v != floor(v))
            nb_fail("Embedding", "id %g (element %lld) is not an integer in [0, %lld)", (double)v,
                    (long long)i, (long long)V);
        idx[i] = (int64_t)v;
        for (int d = ids->ndim - 1; d >= 0; d--) { /* next row-major index */
            if (++at[d] < ids->shape[d]) break;
            at[d] = 0;
        }
    }
    return ag_embedding(e->weight, ids->ndim, ids->shape, idx);
}

static void embedding_collect(nn_module *m, const char *prefix, nn_params *ps) {
    nn_params_add(ps, prefix, "weight", ((embedding *)m)->weight);
}

static void embedding_free(nn_module *m) {
    tensor_free(((embedding *)m)->weight);
    nb_free(m);
}

static const nn_module_ops embedding_ops = {"Embedding", embedding_forward, embedding_collect, NULL,
                                            embedding_free};

nn_module *nn_embedding(int64_t V, int64_t E, nb_rng *rng) {
    if (V <= 0 || E <= 0)
        nb_fail("Embedding", "need V > 0 and E > 0 (got %lld, %lld)", (long long)V, (long long)E);
    embedding *e = nn_module_alloc(sizeof *e, &embedding_ops);
    e->weight = tensor_empty(NB_SHAPE(V, E));
    nn_init_normal_(e->weight, 0, 1, rng);
    return &e->base;
}

/* ---- activations ----------------------------------------------------------------------------- */

nn_module *nn_gelu_module(void) {
    return nn_activation_module("GELU", ag_gelu);
}
nn_module *nn_silu_module(void) {
    return nn_activation_module("SiLU", ag_silu);
}
nn_module *nn_elu_module(real alpha) {
    return nn_activation_arg_module("ELU", ag_elu, alpha);
}
