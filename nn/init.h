/* nn/init.h: parameter initializers, with PyTorch's formulas (torch.nn.init).
 *
 *   Tensor *W = tensor_empty(NB_SHAPE(400, 784));             // [out, in]
 *   nn_init_kaiming_uniform_(W, 0, NN_FAN_IN, NN_GAIN_RELU, rng); // U(-b, b), b = sqrt(6 / 784)
 *   nn_init_uniform_(bias, -0.1, 0.1, NULL);                  // NULL: the global generator
 *
 * Each function overwrites every element of a kept tensor in place (through its strides), in
 * row-major order, drawing from `rng` (NULL: nb_rng_global()). Nothing is recorded for autograd.
 *
 * Fans, as PyTorch computes them for a tensor of shape [out, in, k1, k2, ...] (2 or more dims):
 *   receptive = k1 * k2 * ... (1 for a 2-D [out, in] weight)
 *   fan_in = in * receptive, fan_out = out * receptive.
 * Gains (torch.nn.init.calculate_gain): linear and sigmoid 1, tanh 5/3, relu sqrt(2),
 * leaky_relu sqrt(2 / (1 + a^2)) with `a` the negative slope.
 *   xavier_uniform_:  U(-b, b),   b = gain * sqrt(6 / (fan_in + fan_out))
 *   xavier_normal_:   N(0, s^2),  s = gain * sqrt(2 / (fan_in + fan_out))
 *   kaiming_uniform_: U(-b, b),   b = gain * sqrt(3 / fan)      (fan = fan_in or fan_out)
 *   kaiming_normal_:  N(0, s^2),  s = gain / sqrt(fan)
 * Programmer errors (fewer than 2 dims where fans are needed, a > b, std < 0) go to nb_fail
 * naming the function. A tensor with no elements is left alone, as in PyTorch. */
#ifndef NB_NN_INIT_H
#define NB_NN_INIT_H

#include "tensor/tensor.h"

typedef enum { NN_FAN_IN, NN_FAN_OUT } nn_fan_mode;

typedef enum {
    NN_GAIN_LINEAR,     /* 1 (also for identity and convolutions) */
    NN_GAIN_SIGMOID,    /* 1 */
    NN_GAIN_TANH,       /* 5/3 */
    NN_GAIN_RELU,       /* sqrt(2) */
    NN_GAIN_LEAKY_RELU, /* sqrt(2 / (1 + a^2)), a the negative slope */
} nn_nonlinearity;

/* The recommended gain for a nonlinearity; `a` is leaky_relu's slope (ignored otherwise). */
double nn_init_gain(nn_nonlinearity nl, double a);

/* Fans of a tensor with at least 2 dims (see above); fails with `op` in the message otherwise. */
void nn_init_fans(const char *op, const Tensor *t, int64_t *fan_in, int64_t *fan_out);

/* Fills t with U(a, b) (a <= b). */
void nn_init_uniform_(Tensor *t, double a, double b, nb_rng *rng);

/* Fills t with N(mean, std^2) (std >= 0). */
void nn_init_normal_(Tensor *t, double mean, double std, nb_rng *rng);

/* Fills t with one value (zeros_ and ones_ are value 0 and 1). */
void nn_init_constant_(Tensor *t, double value);

/* Glorot and Bengio (2010); t has >= 2 dims. */
void nn_init_xavier_uniform_(Tensor *t, double gain, nb_rng *rng);
void nn_init_xavier_normal_(Tensor *t, double gain, nb_rng *rng);

/* He et al. (2015); t has >= 2 dims. `a` is the leaky_relu slope (used with
 * NN_GAIN_LEAKY_RELU only). nn_linear's default is kaiming_uniform_ with a = sqrt(5), fan_in,
 * leaky_relu, which gives U(-1/sqrt(in), 1/sqrt(in)). */
void nn_init_kaiming_uniform_(Tensor *t, double a, nn_fan_mode mode, nn_nonlinearity nl,
                              nb_rng *rng);
void nn_init_kaiming_normal_(Tensor *t, double a, nn_fan_mode mode, nn_nonlinearity nl,
                             nb_rng *rng);

#endif
