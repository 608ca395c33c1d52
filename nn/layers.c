/* nn/layers.c: Linear (over the fused ag_linear) and the activations, over autograd ops. */
#include "nn/layers.h"

#include <math.h>
#include <string.h>

#include "nn/init.h"

/* ---- Linear ---------------------------------------------------------------------------------- */

void nn_linear_init(nn_linear *l, int64_t in, int64_t out, bool bias, nb_rng *rng) {
    if (in <= 0 || out <= 0)
        nb_fail("nn_linear_init", "in (%lld) and out (%lld) must be positive", (long long)in,
                (long long)out);
    l->in = in;
    l->out = out;
    l->weight = tensor_empty(NB_SHAPE(out, in));
    nn_init_kaiming_uniform_(l->weight, sqrt(5.0), NN_FAN_IN, NN_GAIN_LEAKY_RELU, rng);
    l->bias = NULL;
    if (bias) {
        double b = 1.0 / sqrt((double)in);
        l->bias = tensor_empty(NB_SHAPE(out));
        nn_init_uniform_(l->bias, -b, b, rng);
    }
}

Tensor *nn_linear_forward(const nn_linear *l, Tensor *x) {
    if (x->ndim < 1 || x->shape[x->ndim - 1] != l->in) {
        char sx[128], sw[128];
        nb_fail("nn_linear", "input of shape %s does not end in in = %lld (weight of shape %s)",
                nb_shape_str(sx, x->ndim, x->shape), (long long)l->in,
                nb_shape_str(sw, l->weight->ndim, l->weight->shape));
    }
    /* Rows: [..., in] -> [rows, in]; the product is one 2-D gemm whatever the leading dims. */
    Tensor *rows = x->ndim == 2 ? x : ag_reshape(x, NB_SHAPE(-1, l->in));
    Tensor *y = ag_linear(rows, l->weight, l->bias); /* [rows, out] */
    if (x->ndim == 2) return y;
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
    shape[x->ndim - 1] = l->out;
    return ag_reshape(y, x->ndim, shape);
}

void nn_linear_params(nn_linear *l, const char *prefix, nn_params *ps) {
    nn_params_add(ps, prefix, "weight", l->weight);
    if (l->bias) nn_params_add(ps, prefix, "bias", l->bias);
}

void nn_linear_free(nn_linear *l) {
    if (!l) return;
    tensor_free(l->weight);
    tensor_free(l->bias);
    memset(l, 0, sizeof *l);
}

/* ---- activations ----------------------------------------------------------------------------- */

Tensor *nn_relu(Tensor *x) {
    return ag_relu(x);
}
Tensor *nn_sigmoid(Tensor *x) {
    return ag_sigmoid(x);
}
Tensor *nn_tanh(Tensor *x) {
    return ag_tanh(x);
}
Tensor *nn_softplus(Tensor *x) {
    return ag_softplus(x);
}

/* leaky_relu(x) = relu(x) - slope * relu(-x): both relus have gradient 0 at 0, so the gradient
 * there is 0 (PyTorch gives slope; a measure-zero difference). */
Tensor *nn_leaky_relu(Tensor *x, real slope) {
    return ag_sub(ag_relu(x), ag_mul_scalar(ag_relu(ag_neg(x)), slope));
}
