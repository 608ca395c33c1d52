/* nn/layers.h: the Linear layer and the activations, built from autograd ops.
 *
 *   nn_linear fc1;
 *   nn_linear_init(&fc1, 784, 400, true, rng);         // PyTorch's default init
 *   nn_params ps = {0};
 *   nn_linear_params(&fc1, "encoder.fc1", &ps);         // encoder.fc1.weight, encoder.fc1.bias
 *   Tensor *h = nn_relu(nn_linear_forward(&fc1, x));    // x [B, 784] -> h [B, 400]
 *   ...
 *   nn_params_free(&ps);
 *   nn_linear_free(&fc1);
 *
 * The layer owns its weight and bias (kept tensors, freed by nn_linear_free). Forward functions
 * return step tensors (released by ag_reset) and need no backward of their own: gradients flow
 * through the autograd ops they are made of. To compose networks (Sequential, convolutions,
 * norms, named parameters for checkpoints), nn/module.h wraps these as modules. */
#ifndef NB_NN_LAYERS_H
#define NB_NN_LAYERS_H

#include "autograd/autograd.h"
#include "nn/params.h"

/* ---- Linear: y = x W^T + b ------------------------------------------------------------------- */

typedef struct {
    Tensor *weight; /* [out, in], kept, owned by the layer */
    Tensor *bias;   /* [out], kept, owned; NULL for a layer without bias */
    int64_t in, out;
} nn_linear;

/* Allocates the weight (and bias when `bias` is true) and initializes them as torch.nn.Linear
 * does: weight by kaiming_uniform_ with a = sqrt(5), that is U(-1/sqrt(in), 1/sqrt(in)), then
 * bias U(-1/sqrt(in), 1/sqrt(in)), both drawn from rng (NULL: the global generator). Fails
 * (nb_fail) when in or out is not positive. */
void nn_linear_init(nn_linear *l, int64_t in, int64_t out, bool bias, nb_rng *rng);

/* x [..., in] -> [..., out] = x @ W^T + b through the fused ag_linear (W read through its
 * strides, no copy; the bias is the gemm's starting value), b broadcasts
 * over the rows. Leading dims are flattened into rows (a view when x allows it); x may also be
 * 1-D [in] -> [out]. Fails naming nn_linear and both shapes when x's last dim is not `in`. */
Tensor *nn_linear_forward(const nn_linear *l, Tensor *x);

/* Adds "<prefix>.weight" and, with a bias, "<prefix>.bias" to ps (marks them requires_grad). */
void nn_linear_params(nn_linear *l, const char *prefix, nn_params *ps);

/* Frees the weight and bias and zeroes the struct; NULL-safe. */
void nn_linear_free(nn_linear *l);

/* ---- activations: element-wise, any shape ---------------------------------------------------- */

Tensor *nn_relu(Tensor *x);                   /* max(x, 0); gradient 0 at x == 0 */
Tensor *nn_leaky_relu(Tensor *x, real slope); /* x for x > 0, slope * x otherwise */
Tensor *nn_sigmoid(Tensor *x);                /* 1 / (1 + exp(-x)), stable */
Tensor *nn_tanh(Tensor *x);
/* log(1 + exp(x)) with beta 1, computed as max(x, 0) + log1p(exp(-|x|)): finite for any x, so
 * PyTorch's threshold (20) is not needed. */
Tensor *nn_softplus(Tensor *x);

#endif
