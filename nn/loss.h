/* nn/loss.h: losses, as in torch.nn.functional, each reduced to a scalar step tensor.
 *
 *   Tensor *p = nn_sigmoid(nn_linear_forward(&dec, h));   // [B, 784] probabilities
 *   Tensor *rec = nn_bce(p, x, NN_SUM);                   // scalar: summed over pixels and batch
 *   ag_backward(rec);
 *
 * Reductions: NN_SUM sums every element; NN_MEAN divides that sum by the number of elements
 * (for cross-entropy, by the number of rows N, as PyTorch); NN_NONE returns the per-element loss
 * (per row for cross-entropy) without reducing, for per-example losses.
 * Prediction and target must have the same shape (either may be a strided or broadcast view);
 * a mismatch is a programmer error: nb_fail naming the loss and both shapes. Every function
 * returns a step tensor (released by ag_reset). */
#ifndef NB_NN_LOSS_H
#define NB_NN_LOSS_H

#include "autograd/autograd.h"

typedef enum { NN_SUM, NN_MEAN, NN_NONE } nn_reduction;

/* Binary cross-entropy on probabilities p in [0, 1] against targets y (usually in [0, 1]):
 * -(y log p + (1 - y) log(1 - p)), each log clamped below at -100 as PyTorch does, so p = 0 or 1
 * gives a finite loss (at most 100 per element). Gradient, also as PyTorch:
 * dp = (p - y) / max(p (1 - p), 1e-12), dy = log(1 - p) - log p (the clamped logs).
 * One fused op (a composite would give 0 * inf = NaN gradients where the clamp is active).
 * Fails (as PyTorch) when some p is outside [0, 1] or NaN, naming its flat index. */
Tensor *nn_bce(Tensor *p, Tensor *y, nn_reduction red);

/* Binary cross-entropy on logits x: max(x, 0) - x y + log1p(exp(-|x|)), finite and accurate for
 * any x (|x| = 100 included). Gradient dx = sigmoid(x) - y, dy = -x. One fused op. */
Tensor *nn_bce_with_logits(Tensor *x, Tensor *y, nn_reduction red);

/* Mean squared error (or sum): (a - b)^2 per element. */
Tensor *nn_mse(Tensor *a, Tensor *b, nn_reduction red);

/* Cross-entropy of logits [N, C] against class labels [N] (each in 0..C-1), through
 * log_softmax: -log_softmax(logits)[i, labels[i]]. NN_MEAN divides by N; NN_NONE gives [N].
 * Fails when logits are not 2-D or a label is out of range (naming its index). labels is read
 * during the call only. */
Tensor *nn_cross_entropy(Tensor *logits, const int64_t *labels, nn_reduction red);

/* Gaussian negative log-likelihood of x under N(mu, exp(logvar)), per element
 *   0.5 * (log(2 pi) + logvar + (x - mu)^2 / exp(logvar)),
 * WITH the constant 0.5 log(2 pi) = 0.9189385 nats (PyTorch's GaussianNLLLoss leaves it out
 * unless full=True), so the sum is a true negative log-density in nats. mu has x's shape;
 * logvar broadcasts to it (a per-dimension [D] or a scalar variance is fine). logvar is clamped
 * to [-30, 20] first, in both terms (the guard of nn/dist.h). */
Tensor *nn_gaussian_nll(Tensor *x, Tensor *mu, Tensor *logvar, nn_reduction red);

/* Reduces a per-element loss as `red` says (helper for losses defined elsewhere). */
Tensor *nn_reduce(Tensor *loss, nn_reduction red);

#endif
