/* tests/test_vae_conditional.c: a conditional VAE's samples show the classes asked for.
 *
 * A small conditional VAE and a small MLP classifier are trained on the shipped digits; the
 * classifier then reads samples drawn for each requested label. An unconditional model (or a
 * conditional one that ignored its label) would score about 10%. */
#include "tests/check_main.h"
#include "tests/testutil.h"

#include "io/idx.h"
#include "models/vae.h"
#include "nn/data.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"

#define B 100

/* One pass over the training digits in a fixed shuffled order, calling step() per batch. */
typedef void (*step_fn)(void *ctx, Tensor *x, const int64_t *labels);
static void epoch(const idx_dataset *d, nb_rng *rng, step_fn step, void *ctx) {
    nn_batches it;
    nn_batches_init(&it, d->n, B, true, true, 0);
    nn_batches_epoch(&it, rng);
    Tensor *x = tensor_empty(NB_SHAPE(B, 784));
    int64_t labels[B];
    while (nn_batches_next(&it)) {
        idx_batch(d, it.index, B, x->data, labels);
        step(ctx, x, labels);
        ag_reset();
    }
    tensor_free(x);
    nn_batches_free(&it);
}

typedef struct {
    vae_model *m;
    nn_optim *opt;
    int64_t step;
} vae_ctx;
static void vae_step(void *vctx, Tensor *x, const int64_t *labels) {
    vae_ctx *c = vctx;
    ag_backward(vae_loss(c->m, x, labels, c->step++, NULL).objective);
    nn_optim_step(c->opt);
    nn_optim_zero_grad(c->opt);
}

typedef struct {
    nn_linear l1, l2;
    nn_optim *opt;
} mlp_ctx;
static Tensor *mlp(mlp_ctx *c, Tensor *x) {
    return nn_linear_forward(&c->l2, nn_relu(nn_linear_forward(&c->l1, x)));
}
static void mlp_step(void *vctx, Tensor *x, const int64_t *labels) {
    mlp_ctx *c = vctx;
    ag_backward(nn_cross_entropy(mlp(c, x), labels, NN_MEAN));
    nn_optim_step(c->opt);
    nn_optim_zero_grad(c->opt);
}

START_TEST(samples_show_the_requested_class) {
    idx_dataset d;
    char err[512];
    ck_assert_msg(idx_load_split("data/digits", 1, 10, &d, err, sizeof err) == IDX_OK, "%s", err);
    nb_manual_seed(11);
    nb_rng rng;
    nb_rng_seed(&rng, 11);

    vae_config cfg;
    vae_config_default(&cfg);
    cfg.hidden[0] = 256, cfg.latent = 2,
    cfg.num_classes = 10; /* a small z leaves the class to the label */
    vae_model m;
    vae_init(&m, &cfg, NULL);
    vae_ctx vc = {&m, nn_optim_adam(&m.params, nn_adam_defaults(2e-3)), 0};
    for (int e = 0; e < 3; e++) epoch(&d, &rng, vae_step, &vc);

    mlp_ctx mc;
    nn_params ps = {0};
    nn_linear_init(&mc.l1, 784, 128, true, NULL);
    nn_linear_init(&mc.l2, 128, 10, true, NULL);
    nn_linear_params(&mc.l1, "fc1", &ps);
    nn_linear_params(&mc.l2, "fc2", &ps);
    mc.opt = nn_optim_adam(&ps, nn_adam_defaults(1e-3));
    for (int e = 0; e < 3; e++) epoch(&d, &rng, mlp_step, &mc);

    /* 20 samples of each class, read by the classifier */
    bool prev = ag_set_grad_enabled(false);
    int64_t labels[200];
    int hits = 0;
    for (int i = 0; i < 200; i++) labels[i] = i / 20;
    Tensor *logits = mlp(&mc, vae_sample(&m, 200, labels, &rng));
    for (int i = 0; i < 200; i++) {
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (logits->data[i * 10 + k] > logits->data[i * 10 + best]) best = k;
        hits += best == labels[i];
    }
    ag_set_grad_enabled(prev);
    ag_reset();
    ck_assert_msg(hits >= 140, "only %d of 200 samples were read as the requested class", hits);

    nn_optim_free(vc.opt);
    nn_optim_free(mc.opt);
    nn_params_free(&ps);
    nn_linear_free(&mc.l1);
    nn_linear_free(&mc.l2);
    vae_free(&m);
    idx_free(&d);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("vae_conditional");
    TCase *t = tcase_create("conditional");
    tcase_set_timeout(t, 600);
    tcase_add_test(t, samples_show_the_requested_class);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
