/* examples/vae_mog.c: a VAE whose prior is learned: a mixture of K Gaussians instead of N(0, I),
 * composed from nn/dist.h's Normal parts (VampPrior-style papers use the same idea).
 *
 *   q(z | x) = N(mu(x), exp(logvar(x)))                  encoder 784 -> 256 -> 2Z
 *   p(z)     = sum_k pi_k N(z; m_k, exp(s_k))             learned: m, s [K, Z], pi = softmax(a)
 *   p(x | z) = Bernoulli(sigmoid(decoder(z)))            decoder Z -> 256 -> 784
 *   loss     = -log p(x | z) + log q(z | x) - log p(z),  z = mu + sigma eps (one sample)
 *
 * The mixture's KL has no closed form, so the KL term is the one-sample Monte Carlo estimate
 * log q(z|x) - log p(z), with log p(z) = logsumexp_k(log pi_k + sum_d log N(z_d; m_kd, e^s_kd))
 * computed for all B x K pairs at once by broadcasting z [B, 1, Z] against m [K, Z].
 *
 *   ./build/vae_mog    (6 epochs over data/digits, about 1.5 s of CPU)
 *
 * Exits 1 unless (a) the mixture log-density matches a hand computation, (b) the test loss is
 * below 150 nats (139 with the defaults) and (c) the learned prior gives the test codes z a higher
 * log-density than N(0, I) does (it learned the shape of the codes). */
#include <math.h>
#include <stdio.h>

#include "io/idx.h"
#include "nn/dist.h"
#include "nn/data.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/gemm.h"

enum { D = 784, H = 256, Z = 8, K = 10, BATCH = 128, EPOCHS = 6 };

typedef struct {
    nn_linear enc, enc_out, dec, dec_out;
    Tensor *m, *s, *a; /* the prior: means [K, Z], log-variances [K, Z], mixture logits [K] */
} model;

/* log p(z) under the mixture, per row of z [B, Z] -> [B]. */
static Tensor *log_prior(const model *M, Tensor *z) {
    nn_normal comp = nn_normal_from_logvar(M->m, M->s);         /* [K, Z] */
    Tensor *lp = nn_normal_log_prob(&comp, ag_unsqueeze(z, 1)); /* [B, K, Z] */
    Tensor *joint = ag_add(ag_sum_dims(lp, (int[]){2}, 1, false), ag_log_softmax(M->a, 0));
    return ag_logsumexp(joint, 1, false); /* [B, K] -> [B] */
}

/* The loss (nats per example) of x [B, D]; *log_pz (if not NULL) gets mean log p(z) under the
 * mixture and *log_pz_std under N(0, I), for the same samples z. */
static Tensor *loss_of(const model *M, Tensor *x, nb_rng *rng, double *log_pz, double *log_pz_std) {
    Tensor *out = nn_linear_forward(&M->enc_out, nn_relu(nn_linear_forward(&M->enc, x)));
    nn_normal q = nn_normal_from_logvar(ag_narrow(out, 1, 0, Z), ag_narrow(out, 1, Z, Z));
    Tensor *z = nn_normal_rsample(&q, rng); /* [B, Z] */
    Tensor *logits = nn_linear_forward(&M->dec_out, nn_relu(nn_linear_forward(&M->dec, z)));
    Tensor *recon = nn_bce_with_logits(logits, x, NN_SUM);
    Tensor *lq = ag_sum(nn_normal_log_prob(&q, z)), *lp = ag_sum(log_prior(M, z));
    real B = (real)x->shape[0];
    if (log_pz) {
        Tensor *zero = ag_zeros(NB_SHAPE(1));
        nn_normal std = nn_normal_from_logvar(zero, zero);
        *log_pz = tensor_item(lp) / B;
        *log_pz_std = tensor_item(ag_sum(nn_normal_log_prob(&std, z))) / B;
    }
    return ag_mul_scalar(ag_add(recon, ag_sub(lq, lp)), 1 / B);
}

/* (a): log p(z) for one z against the formula evaluated with loops. */
static bool prior_matches_hand(const model *M, nb_rng *rng) {
    Tensor *z = ag_randn(NB_SHAPE(1, Z), rng);
    double terms[K], mx = -1e300, sum = 0, za = 0;
    for (int k = 0; k < K; k++) za = fmax(za, M->a->data[k]);
    for (int k = 0; k < K; k++) sum += exp(M->a->data[k] - za);
    for (int k = 0; k < K; k++) {
        terms[k] = M->a->data[k] - za - log(sum); /* log pi_k */
        for (int d = 0; d < Z; d++) {
            double v = exp(M->s->data[k * Z + d]), e = z->data[d] - M->m->data[k * Z + d];
            terms[k] += -0.5 * (log(2 * 3.141592653589793 * v) + e * e / v);
        }
        mx = fmax(mx, terms[k]);
    }
    double want = 0;
    for (int k = 0; k < K; k++) want += exp(terms[k] - mx);
    want = mx + log(want);
    double got = tensor_item(log_prior(M, z));
    printf("mixture log p(z): %.6f, by hand %.6f\n", got, want);
    return fabs(got - want) < 1e-4 * (1 + fabs(want));
}

int main(void) {
    idx_dataset train = {0}, test = {0};
    char err[512];
    if (idx_load_split("data/digits", 1, 10, &train, err, sizeof err) != IDX_OK ||
        idx_load_split("data/digits", 0, 10, &test, err, sizeof err) != IDX_OK ||
        train.rows * train.cols != D) {
        fprintf(stderr, "vae_mog: %s\n", train.n ? "images must be 28x28" : err);
        idx_free(&train), idx_free(&test);
        return 1;
    }
    nb_set_num_threads(1);
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    model M;
    nn_linear_init(&M.enc, D, H, true, &rng);
    nn_linear_init(&M.enc_out, H, 2 * Z, true, &rng);
    nn_linear_init(&M.dec, Z, H, true, &rng);
    nn_linear_init(&M.dec_out, H, D, true, &rng);
    M.m = tensor_randn(NB_SHAPE(K, Z), &rng); /* spread-out means, unit variances, equal pi */
    M.s = tensor_zeros(NB_SHAPE(K, Z));
    M.a = tensor_zeros(NB_SHAPE(K));
    nn_params ps = {0};
    nn_linear_params(&M.enc, "enc", &ps), nn_linear_params(&M.enc_out, "enc_out", &ps);
    nn_linear_params(&M.dec, "dec", &ps), nn_linear_params(&M.dec_out, "dec_out", &ps);
    nn_params_add(&ps, "prior", "means", M.m), nn_params_add(&ps, "prior", "logvars", M.s);
    nn_params_add(&ps, "prior", "logits", M.a);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(1e-3));
    bool ok = prior_matches_hand(&M, &rng);
    ag_reset();

    Tensor *x = tensor_empty(NB_SHAPE(BATCH, D));
    nn_batches it, in_order; /* the training set shuffled with rng each epoch; the test set */
    nn_batches_init(&it, train.n, BATCH, true, false, 0);
    nn_batches_init(&in_order, test.n, BATCH, false, false, 0);
    double test_loss = 0, lpz = 0, lpz_std = 0;
    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        nn_batches_epoch(&it, &rng);
        while (nn_batches_next(&it)) {
            int64_t count = it.count;
            idx_batch(&train, it.index, count, x->data, NULL);
            nn_optim_zero_grad(opt);
            ag_backward(loss_of(&M, ag_narrow(x, 0, 0, count), &rng, NULL, NULL));
            nn_optim_step(opt);
            ag_reset();
        }
        bool prev = ag_set_grad_enabled(false); /* the test set, in batches */
        test_loss = lpz = lpz_std = 0;
        while (nn_batches_next(&in_order)) {
            int64_t count = in_order.count;
            double a, b;
            idx_batch(&test, in_order.index, count, x->data, NULL);
            test_loss += tensor_item(loss_of(&M, ag_narrow(x, 0, 0, count), &rng, &a, &b)) * count;
            lpz += a * (double)count, lpz_std += b * (double)count;
            ag_reset();
        }
        ag_set_grad_enabled(prev);
        test_loss /= (double)test.n, lpz /= (double)test.n, lpz_std /= (double)test.n;
        printf("epoch %d  test loss %.2f nats  mean log p(z): mixture %.2f, N(0, I) %.2f\n", epoch,
               test_loss, lpz, lpz_std);
    }
    ok &= test_loss < 150 && lpz > lpz_std;
    printf("%s\n", ok ? "the mixture prior VAE trained and its prior fits the codes"
                      : "the mixture prior VAE FAILED its checks");

    nn_batches_free(&it), nn_batches_free(&in_order);
    tensor_free(x), tensor_free(M.m), tensor_free(M.s), tensor_free(M.a);
    nn_optim_free(opt);
    nn_params_free(&ps);
    nn_linear_free(&M.enc), nn_linear_free(&M.enc_out);
    nn_linear_free(&M.dec), nn_linear_free(&M.dec_out);
    idx_free(&train), idx_free(&test);
    arena_free_all();
    return ok ? 0 : 1;
}
