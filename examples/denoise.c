/* examples/denoise.c: a denoising autoencoder on the digits shipped in data/digits. Each
 * training image is corrupted (every pixel, independently: replaced by uniform noise with
 * probability 0.3) and the network learns to give back the clean image:
 *
 *   noisy x~ [B, 784] -> linear 784 -> 256 -> relu -> linear 256 -> 784 -> sigmoid -> x^ [B, 784]
 *   loss = binary cross-entropy(x^, clean x), Adam 1e-3, batch 64
 *
 *   ./build/denoise [--epochs N (default 3)]
 *
 * On the 1,000 test images, corrupted the same way, it prints the mean squared error of the
 * noisy input and of the output against the clean image; exits 1 unless the output's error is
 * under half the input's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/idx.h"
#include "nn/data.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/gemm.h"

enum { D = 784, H = 256, BATCH = 64 };
#define P_NOISE 0.3

/* noisy = clean with each pixel replaced, with probability P_NOISE, by a uniform value. */
static void corrupt(const Tensor *clean, Tensor *noisy, int64_t count, nb_rng *rng) {
    for (int64_t i = 0; i < count * D; i++)
        noisy->data[i] = nb_rng_uniform(rng) < P_NOISE ? (real)nb_rng_uniform(rng) : clean->data[i];
}

typedef struct {
    nn_linear enc, dec;
} dae;

static Tensor *forward(const dae *m, Tensor *x) { /* [B, D] -> probabilities [B, D] */
    return nn_sigmoid(nn_linear_forward(&m->dec, nn_relu(nn_linear_forward(&m->enc, x))));
}

/* Mean squared error per pixel, over the test set, of the noisy inputs and of the outputs. */
static void test_errors(const dae *m, const idx_dataset *test, Tensor *x, Tensor *xn,
                        double *noisy_mse, double *out_mse) {
    nb_rng rng;
    nb_rng_seed(&rng, 99); /* the same corruption every time */
    bool prev = ag_set_grad_enabled(false);
    double en = 0, eo = 0;
    nn_batches it; /* in order */
    nn_batches_init(&it, test->n, BATCH, false, false, 0);
    while (nn_batches_next(&it)) {
        int64_t count = it.count;
        idx_batch(test, it.index, count, x->data, NULL);
        corrupt(x, xn, count, &rng);
        Tensor *clean = ag_narrow(x, 0, 0, count), *noisy = ag_narrow(xn, 0, 0, count);
        en += tensor_item(nn_mse(noisy, clean, NN_SUM));
        eo += tensor_item(nn_mse(forward(m, noisy), clean, NN_SUM));
        ag_reset();
    }
    nn_batches_free(&it);
    ag_set_grad_enabled(prev);
    *noisy_mse = en / (double)(test->n * D);
    *out_mse = eo / (double)(test->n * D);
}

int main(int argc, char **argv) {
    long epochs = 3;
    char *end = NULL;
    if (argc == 3 && !strcmp(argv[1], "--epochs")) epochs = strtol(argv[2], &end, 10);
    if ((argc != 1 && argc != 3) || (end && (*end || epochs < 1 || epochs > 1000))) {
        fprintf(stderr, "usage: denoise [--epochs N (1..1000)]\n");
        return 2;
    }
    idx_dataset train = {0}, test = {0};
    char err[512];
    if (idx_load_split("data/digits", 1, 10, &train, err, sizeof err) != IDX_OK ||
        idx_load_split("data/digits", 0, 10, &test, err, sizeof err) != IDX_OK ||
        train.rows * train.cols != D) {
        fprintf(stderr, "denoise: %s\n", train.n ? "images must be 28x28" : err);
        idx_free(&train), idx_free(&test);
        return 1;
    }
    nb_set_num_threads(1);
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    dae m;
    nn_linear_init(&m.enc, D, H, true, &rng);
    nn_linear_init(&m.dec, H, D, true, &rng);
    nn_params ps = {0};
    nn_linear_params(&m.enc, "enc", &ps);
    nn_linear_params(&m.dec, "dec", &ps);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(1e-3));

    Tensor *x = tensor_empty(NB_SHAPE(BATCH, D)), *xn = tensor_empty(NB_SHAPE(BATCH, D));
    nn_batches it; /* shuffled with rng each epoch */
    nn_batches_init(&it, train.n, BATCH, true, false, 0);
    double noisy = 0, out = 0;
    for (long epoch = 1; epoch <= epochs; epoch++) {
        nn_batches_epoch(&it, &rng);
        double loss_sum = 0;
        while (nn_batches_next(&it)) {
            int64_t count = it.count;
            idx_batch(&train, it.index, count, x->data, NULL);
            corrupt(x, xn, count, &rng); /* a fresh corruption each time an image is seen */
            nn_optim_zero_grad(opt);
            Tensor *p = forward(&m, ag_narrow(xn, 0, 0, count));
            Tensor *loss = ag_mul_scalar(nn_bce(p, ag_narrow(x, 0, 0, count), NN_SUM),
                                         (real)(1.0 / (double)count)); /* nats per image */
            ag_backward(loss);
            nn_optim_step(opt);
            loss_sum += tensor_item(loss) * (double)count;
            ag_reset();
        }
        test_errors(&m, &test, x, xn, &noisy, &out);
        printf("epoch %ld  train loss %.2f nats/image  test MSE: noisy input %.4f, output %.4f\n",
               epoch, loss_sum / (double)train.n, noisy, out);
    }
    bool ok = out < 0.5 * noisy;
    printf("denoising %s: the output's error is %.0f%% of the input's\n", ok ? "works" : "FAILED",
           100 * out / noisy);

    nn_batches_free(&it);
    tensor_free(x), tensor_free(xn);
    nn_optim_free(opt);
    nn_params_free(&ps);
    nn_linear_free(&m.enc), nn_linear_free(&m.dec);
    idx_free(&train), idx_free(&test);
    arena_free_all();
    return ok ? 0 : 1;
}
