/* examples/tut_vae_loss.c: the VAE's loss, piece by piece (docs/TUTORIAL.md, part 5), each
 * piece's value and gradient checked against its closed form:
 *
 *  1. the reparameterization trick  z = mu + exp(logvar / 2) eps:
 *       dz/dmu = 1,  dz/dlogvar = eps exp(logvar / 2) / 2
 *  2. the closed-form KL(N(mu, e^lv) || N(0, 1)) = -1/2 (1 + lv - mu^2 - e^lv) per dim:
 *       dKL/dmu = mu,  dKL/dlv = (e^lv - 1) / 2;  and a Monte Carlo estimate agrees with it
 *  3. beta-VAE: recon + beta KL scales the KL's gradient by beta
 *  4. IWAE: log (1/S) sum_s w_s >= mean_s log w_s (Jensen), equal for S = 1, and its gradient
 *     with respect to log w_s is the normalized weight w_s / sum w = softmax(log w)_s
 *
 *   ./build/tut_vae_loss    exits 1 if a value or gradient differs from its closed form */
#include "examples/tut_check.h"
#include "nn/dist.h"

enum { B = 4, Z = 3 };

static Tensor *param(int ndim, const int64_t *shape, nb_rng *rng, real scale) {
    Tensor *t = tensor_randn(ndim, shape, rng);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] *= scale;
    tensor_requires_grad(t, true);
    return t;
}

int main(void) {
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    Tensor *mu = param(NB_SHAPE(B, Z), &rng, 1), *lv = param(NB_SHAPE(B, Z), &rng, 0.5f);
    Tensor *eps = tensor_randn(NB_SHAPE(B, Z), &rng), *G = tensor_randn(NB_SHAPE(B, Z), &rng);
    real dmu[B * Z], dlv[B * Z], kl = 0;
    bool ok = true;

    printf("1. reparameterization: z = mu + sigma eps, upstream G\n");
    nn_normal q = nn_normal_from_logvar(mu, lv);
    ag_backward_with(nn_normal_rsample_eps(&q, eps), G);
    for (int i = 0; i < B * Z; i++) {
        dmu[i] = G->data[i];
        dlv[i] = (real)(G->data[i] * eps->data[i] * exp(lv->data[i] / 2.0) / 2);
    }
    ok &= tut_close("dmu = G", mu->grad, dmu);
    ok &= tut_close("dlogvar = G eps sigma / 2", lv->grad, dlv);
    ag_reset();
    tensor_clear_grad(mu), tensor_clear_grad(lv);

    printf("2. KL(q || N(0, I)), summed over the batch and latent dims\n");
    Tensor *klt = nn_kl_normal_std_sum(mu, lv);
    ag_backward(klt);
    for (int i = 0; i < B * Z; i++) {
        double m = mu->data[i], l = lv->data[i];
        kl += (real)(-0.5 * (1 + l - m * m - exp(l)));
        dmu[i] = (real)m;
        dlv[i] = (real)((exp(l) - 1) / 2);
    }
    ok &= tut_close("KL = -1/2 sum(1 + lv - mu^2 - e^lv)", klt, &kl);
    ok &= tut_close("dKL/dmu = mu", mu->grad, dmu);
    ok &= tut_close("dKL/dlogvar = (e^lv - 1) / 2", lv->grad, dlv);
    ag_reset();
    tensor_clear_grad(mu), tensor_clear_grad(lv);

    /* Monte Carlo: KL = E_q[log q(z) - log p(z)], S samples of z at once ([S, B, Z]). */
    enum { S = 20000 };
    bool prev = ag_set_grad_enabled(false);
    q = nn_normal_from_logvar(mu, lv); /* the last ag_reset released the first q's sigma */
    Tensor *zs = nn_normal_rsample_eps(&q, ag_randn(NB_SHAPE(S, B, Z), &rng));
    Tensor *zero = ag_zeros(NB_SHAPE(1));
    nn_normal p = nn_normal_from_logvar(zero, zero);
    Tensor *d = ag_sum_dims(ag_sub(nn_normal_log_prob(&q, zs), nn_normal_log_prob(&p, zs)),
                            (int[]){1, 2}, 2, false); /* [S]: one KL estimate per sample */
    double m1 = 0, m2 = 0;
    for (int s = 0; s < S; s++) m1 += d->data[s] / S, m2 += (double)d->data[s] * d->data[s] / S;
    double se = sqrt((m2 - m1 * m1) / S);
    bool mc = fabs(m1 - kl) < 4 * se;
    printf("  Monte Carlo KL over %d samples   %.4f +- %.4f vs closed form %.4f %s\n", S, m1, se,
           (double)kl, mc ? "" : "WRONG");
    ok &= mc;
    ag_reset();
    ag_set_grad_enabled(prev);

    printf("3. beta-VAE: the KL term times beta = 4\n");
    ag_backward(ag_mul_scalar(nn_kl_normal_std_sum(mu, lv), 4));
    for (int i = 0; i < B * Z; i++) dmu[i] = 4 * mu->data[i];
    ok &= tut_close("d(beta KL)/dmu = beta mu", mu->grad, dmu);
    ag_reset();
    tensor_clear_grad(mu), tensor_clear_grad(lv);

    printf("4. IWAE: log weights [S = 5, B], the bound logsumexp_s - log S\n");
    Tensor *lw = param(NB_SHAPE(5, B), &rng, 2);
    Tensor *bound = ag_add_scalar(ag_logsumexp(lw, 0, false), (real)-log(5.0)); /* [B] */
    Tensor *elbo = ag_mean_dims(lw, (int[]){0}, 1, false);                      /* [B] */
    bool jensen = true;
    for (int b = 0; b < B; b++) jensen &= bound->data[b] >= elbo->data[b];
    printf("  IWAE bound >= ELBO for every example: %s\n", jensen ? "yes" : "NO");
    ok &= jensen;
    ag_backward(ag_sum(bound));
    real soft[5 * B];
    for (int b = 0; b < B; b++) {
        double mx = lw->data[b], z = 0;
        for (int s = 1; s < 5; s++) mx = fmax(mx, lw->data[s * B + b]);
        for (int s = 0; s < 5; s++) z += exp(lw->data[s * B + b] - mx);
        for (int s = 0; s < 5; s++) soft[s * B + b] = (real)(exp(lw->data[s * B + b] - mx) / z);
    }
    ok &= tut_close("d bound / d log w = softmax_s", lw->grad, soft);
    ag_reset();
    Tensor *one = ag_narrow(lw, 0, 0, 1); /* S = 1: the bound is the ELBO itself */
    ok &= tut_close("S = 1: bound = log w", ag_logsumexp(one, 0, false), lw->data);
    ag_reset();

    printf("%s\n", ok ? "the VAE loss's pieces match their closed forms" : "a piece is WRONG");
    tensor_free(mu), tensor_free(lv), tensor_free(eps), tensor_free(G), tensor_free(lw);
    return ok ? 0 : 1;
}
