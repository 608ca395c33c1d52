/* nn/module_norm.c: BatchNorm1d, BatchNorm2d and LayerNorm modules over autograd/ops_norm.c. */
#include "nn/module.h"

/* ---- batch norm ------------------------------------------------------------------------------ */

typedef struct {
    nn_module base;
    int64_t C;
    bool spatial;                       /* BatchNorm2d: x [N, C, H, W]; else [N, C] or [N, C, L] */
    Tensor *weight, *bias;              /* [C]: ones, zeros */
    Tensor *running_mean, *running_var; /* [C] buffers: zeros, ones */
    Tensor *num_batches_tracked;        /* scalar buffer: training forwards so far */
    real eps, momentum;                 /* momentum < 0: cumulative average */
} batch_norm;

/* x [N, C, ...] with the statistics per C. */
static Tensor *batch_norm_forward(nn_module *m, Tensor *x) {
    batch_norm *bn = (batch_norm *)m;
    if ((bn->spatial ? x->ndim != 4 : x->ndim != 2 && x->ndim != 3) || x->shape[1] != bn->C) {
        char s[128];
        nb_fail(m->ops->type, "input %s is not %s with C = %lld",
                nb_shape_str(s, x->ndim, x->shape),
                bn->spatial ? "[N, C, H, W]" : "[N, C] or [N, C, L]", (long long)bn->C);
    }
    real *count = bn->num_batches_tracked->data, momentum = bn->momentum;
    if (m->training && momentum < 0) momentum = 1 / (*count + 1); /* the mean of all batches */
    Tensor *y = ag_batch_norm(x, bn->running_mean, bn->running_var, bn->weight, bn->bias,
                              m->training, momentum, bn->eps);
    if (m->training) *count += 1;
    return y;
}

static void batch_norm_collect(nn_module *m, const char *prefix, nn_params *ps) {
    batch_norm *bn = (batch_norm *)m;
    nn_params_add(ps, prefix, "weight", bn->weight);
    nn_params_add(ps, prefix, "bias", bn->bias);
    nn_params_add_buffer(ps, prefix, "running_mean", bn->running_mean);
    nn_params_add_buffer(ps, prefix, "running_var", bn->running_var);
    nn_params_add_buffer(ps, prefix, "num_batches_tracked", bn->num_batches_tracked);
}

static void batch_norm_free(nn_module *m) {
    batch_norm *bn = (batch_norm *)m;
    tensor_free(bn->weight);
    tensor_free(bn->bias);
    tensor_free(bn->running_mean);
    tensor_free(bn->running_var);
    tensor_free(bn->num_batches_tracked);
    nb_free(bn);
}

static const nn_module_ops batch_norm1d_ops = {"BatchNorm1d", batch_norm_forward,
                                               batch_norm_collect, NULL, batch_norm_free};
static const nn_module_ops batch_norm2d_ops = {"BatchNorm2d", batch_norm_forward,
                                               batch_norm_collect, NULL, batch_norm_free};

static nn_module *batch_norm_new(const nn_module_ops *ops, int64_t C, real eps, real momentum) {
    if (C <= 0 || !(eps > 0) || !(momentum <= 1))
        nb_fail(ops->type, "need C > 0 (got %lld), eps > 0 (got %g) and momentum <= 1 (got %g)",
                (long long)C, (double)eps, (double)momentum);
    batch_norm *bn = nn_module_alloc(sizeof *bn, ops);
    bn->C = C;
    bn->spatial = ops == &batch_norm2d_ops;
    bn->eps = eps;
    bn->momentum = momentum;
    bn->weight = tensor_ones(NB_SHAPE(C));
    bn->bias = tensor_zeros(NB_SHAPE(C));
    bn->running_mean = tensor_zeros(NB_SHAPE(C));
    bn->running_var = tensor_ones(NB_SHAPE(C));
    bn->num_batches_tracked = tensor_scalar(0);
    return &bn->base;
}

nn_module *nn_batch_norm1d(int64_t C, real eps, real momentum) {
    return batch_norm_new(&batch_norm1d_ops, C, eps, momentum);
}

nn_module *nn_batch_norm2d(int64_t C, real eps, real momentum) {
    return batch_norm_new(&batch_norm2d_ops, C, eps, momentum);
}

/* ---- layer norm ------------------------------------------------------------------------------ */

typedef struct {
    nn_module base;
    int ndim;              /* normalized dims: the input's last ndim */
    Tensor *weight, *bias; /* the normalized shape: ones, zeros */
    real eps;
} layer_norm;

static Tensor *layer_norm_forward(nn_module *m, Tensor *x) {
    layer_norm *ln = (layer_norm *)m;
    return ag_layer_norm(x, ln->ndim, ln->weight, ln->bias, ln->eps);
}

static void layer_norm_collect(nn_module *m, const char *prefix, nn_params *ps) {
    layer_norm *ln = (layer_norm *)m;
    nn_params_add(ps, prefix, "weight", ln->weight);
    nn_params_add(ps, prefix, "bias", ln->bias);
}

static void layer_norm_free(nn_module *m) {
    layer_norm *ln = (layer_norm *)m;
    tensor_free(ln->weight);
    tensor_free(ln->bias);
    nb_free(ln);
}

static const nn_module_ops layer_norm_ops = {"LayerNorm", layer_norm_forward, layer_norm_collect,
                                             NULL, layer_norm_free};

nn_module *nn_layer_norm(int ndim, const int64_t *shape, real eps) {
    bool ok = ndim >= 1 && ndim <= NB_MAX_DIMS && eps > 0;
    for (int d = 0; ok && d < ndim; d++) ok = shape[d] > 0;
    if (!ok)
        nb_fail("LayerNorm", "need 1 to %d positive sizes (got %d) and eps > 0 (got %g)",
                NB_MAX_DIMS, ndim, (double)eps);
    layer_norm *ln = nn_module_alloc(sizeof *ln, &layer_norm_ops);
    ln->ndim = ndim;
    ln->eps = eps;
    ln->weight = tensor_ones(ndim, shape);
    ln->bias = tensor_zeros(ndim, shape);
    return &ln->base;
}
