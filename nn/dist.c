/* nn/dist.c: Normal and Bernoulli distributions and KL divergences, as autograd composites. */
#include "nn/dist.h"

#include "nn/loss.h"

static const double LOG_2PI = 1.8378770664093453; /* log(2 pi) */

/* Fails naming `op` and both shapes unless a and b broadcast together. */
static void check_broadcast(const char *op, const char *na, const Tensor *a, const char *nb,
                            const Tensor *b) {
    for (int i = 1; i <= a->ndim && i <= b->ndim; i++) {
        int64_t x = a->shape[a->ndim - i], y = b->shape[b->ndim - i];
        if (x != y && x != 1 && y != 1) {
            char s1[128], s2[128];
            nb_fail(op, "%s of shape %s does not broadcast with %s of shape %s", na,
                    nb_shape_str(s1, a->ndim, a->shape), nb, nb_shape_str(s2, b->ndim, b->shape));
        }
    }
}

/* The logvar guard described in nn/dist.h. */
static Tensor *clamped(Tensor *logvar) {
    return ag_clamp(logvar, NN_LOGVAR_MIN, NN_LOGVAR_MAX);
}

/* ---- diagonal Normal ------------------------------------------------------------------------- */

nn_normal nn_normal_from_logvar(Tensor *mu, Tensor *logvar) {
    check_broadcast("nn_normal_from_logvar", "mu", mu, "logvar", logvar);
    Tensor *lv = clamped(logvar);
    nn_normal d = {mu, lv, ag_exp(ag_mul_scalar(lv, (real)0.5))};
    return d;
}

nn_normal nn_normal_from_sigma(Tensor *mu, Tensor *sigma) {
    check_broadcast("nn_normal_from_sigma", "mu", mu, "sigma", sigma);
    nn_normal d = {mu, ag_mul_scalar(ag_log(sigma), 2), sigma};
    return d;
}

Tensor *nn_normal_rsample_eps(const nn_normal *d, Tensor *eps) {
    check_broadcast("nn_normal_rsample", "eps", eps, "mu", d->mu);
    check_broadcast("nn_normal_rsample", "eps", eps, "sigma", d->sigma);
    return ag_add(d->mu, ag_mul(d->sigma, eps));
}

Tensor *nn_normal_rsample(const nn_normal *d, nb_rng *rng) {
    int64_t shape[NB_MAX_DIMS];
    int nd = tensor_broadcast_shape("nn_normal_rsample", d->mu, d->sigma, shape);
    return nn_normal_rsample_eps(d, ag_randn(nd, shape, rng));
}

Tensor *nn_normal_log_prob(const nn_normal *d, Tensor *x) {
    check_broadcast("nn_normal_log_prob", "x", x, "mu", d->mu);
    check_broadcast("nn_normal_log_prob", "x", x, "sigma", d->sigma);
    Tensor *z = ag_div(ag_sub(x, d->mu), d->sigma);
    Tensor *t = ag_add(ag_mul(z, z), d->logvar);
    return ag_add_scalar(ag_mul_scalar(t, (real)-0.5), (real)(-0.5 * LOG_2PI));
}

Tensor *nn_normal_entropy(const nn_normal *d) {
    int64_t shape[NB_MAX_DIMS];
    int nd = tensor_broadcast_shape("nn_normal_entropy", d->mu, d->logvar, shape);
    Tensor *h = ag_add_scalar(ag_mul_scalar(d->logvar, (real)0.5), (real)(0.5 * (1 + LOG_2PI)));
    return ag_expand(h, nd, shape);
}

/* ---- KL divergences -------------------------------------------------------------------------- */

Tensor *nn_kl_normal_std(Tensor *mu, Tensor *logvar) {
    check_broadcast("nn_kl_normal_std", "mu", mu, "logvar", logvar);
    /* 0.5 (mu^2 + exp(logvar) - logvar - 1) */
    Tensor *lv = clamped(logvar);
    Tensor *t = ag_sub(ag_add(ag_mul(mu, mu), ag_exp(lv)), lv);
    return ag_add_scalar(ag_mul_scalar(t, (real)0.5), (real)-0.5);
}

Tensor *nn_kl_normal_std_sum(Tensor *mu, Tensor *logvar) {
    return ag_sum(nn_kl_normal_std(mu, logvar));
}

Tensor *nn_kl_normal_normal(Tensor *mu1, Tensor *logvar1, Tensor *mu2, Tensor *logvar2) {
    const char *op = "nn_kl_normal_normal";
    check_broadcast(op, "mu1", mu1, "logvar1", logvar1);
    check_broadcast(op, "mu2", mu2, "logvar2", logvar2);
    check_broadcast(op, "mu1", mu1, "mu2", mu2);
    check_broadcast(op, "logvar1", logvar1, "logvar2", logvar2);
    /* 0.5 (lv2 - lv1 + exp(lv1 - lv2) + (mu1 - mu2)^2 exp(-lv2) - 1) */
    Tensor *lv1 = clamped(logvar1), *lv2 = clamped(logvar2);
    Tensor *dlv = ag_sub(lv1, lv2);
    Tensor *dm = ag_sub(mu1, mu2);
    Tensor *dist = ag_mul(ag_mul(dm, dm), ag_exp(ag_neg(lv2)));
    Tensor *t = ag_add(ag_sub(ag_exp(dlv), dlv), dist);
    return ag_add_scalar(ag_mul_scalar(t, (real)0.5), (real)-0.5);
}

Tensor *nn_kl_normal_normal_sum(Tensor *mu1, Tensor *logvar1, Tensor *mu2, Tensor *logvar2) {
    return ag_sum(nn_kl_normal_normal(mu1, logvar1, mu2, logvar2));
}

/* ---- Bernoulli ------------------------------------------------------------------------------- */

Tensor *nn_bernoulli_log_prob_logits(Tensor *logits, Tensor *x) {
    if (!tensor_same_shape(logits, x)) {
        char s1[128], s2[128];
        nb_fail("nn_bernoulli_log_prob_logits", "logits of shape %s do not match x of shape %s",
                nb_shape_str(s1, logits->ndim, logits->shape), nb_shape_str(s2, x->ndim, x->shape));
    }
    return ag_neg(nn_bce_with_logits(logits, x, NN_NONE));
}
