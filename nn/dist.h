/* nn/dist.h: diagonal Normal and Bernoulli distributions and their KL divergences, for VAEs.
 *
 *   nn_normal q = nn_normal_from_logvar(mu, logvar);        // encoder outputs, [B, Z] each
 *   Tensor *z = nn_normal_rsample(&q, rng);                  // mu + sigma * eps, [B, Z]
 *   Tensor *rec = ag_neg(ag_sum(nn_bernoulli_log_prob_logits(nn_linear_forward(&dec, z), x)));
 *   Tensor *kl = nn_kl_normal_std_sum(mu, logvar);           // sum over batch and latent dims
 *   Tensor *loss = ag_add(rec, kl);
 *
 * All log-densities are in nats and per element (sum them for a diagonal Normal's joint
 * log-density). Arguments broadcast against each other (NumPy rules): a [Z] prior against
 * [B, Z] posteriors, or [S, B, Z] samples against [B, Z] parameters; a pair that doesn't
 * broadcast fails (nb_fail) naming the function and both shapes. Everything returned is a step
 * tensor; an nn_normal holds step tensors (or the caller's tensors) and owns nothing.
 *
 * The logvar guard. Every function here that takes a logvar uses clamp(logvar, NN_LOGVAR_MIN,
 * NN_LOGVAR_MAX) = clamp(logvar, -30, 20) in its place, in every term (as Stable Diffusion's
 * DiagonalGaussianDistribution does). Why: exp(logvar) must stay finite in float for any
 * encoder output; with the bounds, sigma lies in [3.1e-7, 2.2e4], the variance below 4.9e8 and
 * 1/variance below 1.1e13, so squared distances over the variance stay far from overflow. Using
 * the clamped value everywhere keeps each result the exact density or KL of a Normal whose
 * variance is exp(clamped logvar), so no loss can be lowered by pushing logvar past a bound.
 * Inside the bounds (the normal range) the clamp is the identity and passes the gradient
 * unchanged; outside, that element's gradient with respect to logvar is 0. nn_gaussian_nll
 * (nn/loss.h) uses the same guard. */
#ifndef NB_NN_DIST_H
#define NB_NN_DIST_H

#include "autograd/autograd.h"

#define NN_LOGVAR_MIN (-30)
#define NN_LOGVAR_MAX 20

/* ---- diagonal Normal ------------------------------------------------------------------------- */

typedef struct {
    Tensor *mu;     /* mean, [...] */
    Tensor *logvar; /* log sigma^2 (clamped, see above), broadcasts with mu */
    Tensor *sigma;  /* standard deviation, logvar's shape */
} nn_normal;

/* N(mu, exp(logvar)): .logvar = clamp(logvar, -30, 20), sigma = exp(0.5 .logvar). Fails if the
 * two don't broadcast. */
nn_normal nn_normal_from_logvar(Tensor *mu, Tensor *logvar);

/* N(mu, sigma^2) for sigma > 0: logvar = 2 log sigma (no clamp; sigma is used as given). */
nn_normal nn_normal_from_sigma(Tensor *mu, Tensor *sigma);

/* A reparameterized sample z = mu + sigma * eps, eps ~ N(0, I) drawn from rng (NULL: global) in
 * the broadcast shape of mu and sigma. Gradients reach mu and sigma (or logvar). */
Tensor *nn_normal_rsample(const nn_normal *d, nb_rng *rng);

/* The same with a given eps (a kept or step tensor broadcasting with mu, e.g. [S, B, Z] for S
 * samples at once): deterministic, for tests and evaluation. */
Tensor *nn_normal_rsample_eps(const nn_normal *d, Tensor *eps);

/* log N(x; mu, sigma^2) per element = -0.5 (log 2 pi + logvar + (x - mu)^2 / sigma^2), in the
 * broadcast shape of x, mu and logvar. */
Tensor *nn_normal_log_prob(const nn_normal *d, Tensor *x);

/* Entropy per element = 0.5 (1 + log 2 pi + logvar), in the broadcast shape of mu and logvar. */
Tensor *nn_normal_entropy(const nn_normal *d);

/* ---- KL divergences, closed form ------------------------------------------------------------- */

/* KL(N(mu, exp(logvar)) || N(0, 1)) per element = -0.5 (1 + logvar - mu^2 - exp(logvar)). */
Tensor *nn_kl_normal_std(Tensor *mu, Tensor *logvar);
Tensor *nn_kl_normal_std_sum(Tensor *mu, Tensor *logvar); /* summed over all elements: scalar */

/* KL(N(mu1, exp(logvar1)) || N(mu2, exp(logvar2))) per element (a learned or conditional
 * prior) = 0.5 (logvar2 - logvar1 + (exp(logvar1) + (mu1 - mu2)^2) / exp(logvar2) - 1).
 * All four broadcast together. With mu2 = 0 and logvar2 = 0 it equals nn_kl_normal_std. */
Tensor *nn_kl_normal_normal(Tensor *mu1, Tensor *logvar1, Tensor *mu2, Tensor *logvar2);
Tensor *nn_kl_normal_normal_sum(Tensor *mu1, Tensor *logvar1, Tensor *mu2, Tensor *logvar2);

/* ---- Bernoulli ------------------------------------------------------------------------------- */

/* log Bernoulli(x; sigmoid(logits)) per element = -bce_with_logits(logits, x) (nn/loss.h):
 * x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)), stable for any logit; x in [0, 1] (continuous
 * pixel intensities are allowed, as in the reference VAE). Same shapes required. */
Tensor *nn_bernoulli_log_prob_logits(Tensor *logits, Tensor *x);

#endif
