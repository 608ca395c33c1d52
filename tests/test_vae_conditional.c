/* tests/test_vae_conditional.c: a conditional VAE's samples show the classes asked for.
 *
 * A small conditional VAE and a small MLP classifier are trained on the shipped digits; the
 * classifier then reads samples drawn for each requested label. An unconditional model (or a
 * conditional one that ignored its label) would score about 10%. */
#include "tests/check_main.h"
#include "tests/testutil.h"

#include "io/idx.h"
#include "models/vae.h"
#include "nn/optim.h"

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
    for (int e = 0; e < 3; e++) nbt_epoch(&d, &rng, vae_step, &vc);

    nbt_classifier clf;
    nbt_classifier_train(&clf, &d, 10, 3, &rng);

    /* 20 samples of each class, read by the classifier */
    bool prev = ag_set_grad_enabled(false);
    int64_t labels[200];
    int hits = 0;
    for (int i = 0; i < 200; i++) labels[i] = i / 20;
    Tensor *samples = vae_sample(&m, 200, labels, &rng);
    real *px = nb_malloc(200 * 784 * sizeof *px);
    int64_t read[200];
    tensor_to_array(samples, px);
    nbt_classifier_predict(&clf, px, 200, 784, read);
    for (int i = 0; i < 200; i++) hits += read[i] == labels[i];
    nb_free(px);
    ag_set_grad_enabled(prev);
    ag_reset();
    ck_assert_msg(hits >= 140, "only %d of 200 samples were read as the requested class", hits);

    nn_optim_free(vc.opt);
    nbt_classifier_free(&clf);
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
