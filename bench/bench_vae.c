/* bench/bench_vae.c: nabla's side of the VAE training benchmark.
 *
 *   build/bench/bench_vae DATA_DIR [epochs] [threads] [batch] [hidden]
 *   build/bench/bench_vae --kernel      prints the gemm kernel this CPU runs (for the header)
 *
 * Trains the reference VAE (784-H-20, Adam 1e-3, batch B, Bernoulli likelihood) on DATA_DIR's
 * training set and prints one JSON line per epoch: epoch, train_loss (nats per example),
 * epoch_seconds (the training loop only, as bench/torch_vae.py measures it), samples_per_second,
 * peak_rss_mb (the process's peak resident set so far). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/timing.h"
#include "io/idx.h"
#include "models/vae.h"
#include "nn/data.h"
#include "nn/optim.h"
#include "tensor/gemm.h"

static double peak_rss_mb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_vae DATA_DIR [epochs] [threads] [batch] [hidden]\n");
        return 2;
    }
    if (strcmp(argv[1], "--kernel") == 0) {
        printf("%s\n", nb_gemm_kernel_name());
        return 0;
    }
    int epochs = argc > 2 ? atoi(argv[2]) : 1, threads = argc > 3 ? atoi(argv[3]) : 0;
    int64_t B = argc > 4 ? atoll(argv[4]) : 128, H = argc > 5 ? atoll(argv[5]) : 400;
    if (epochs < 1 || B < 1 || H < 1) {
        fprintf(stderr, "bench_vae: epochs, batch and hidden must be positive\n");
        return 2;
    }
    char err[512];
    idx_dataset train;
    if (idx_load_split(argv[1], 1, 10, &train, err, sizeof err) != IDX_OK) {
        fprintf(stderr, "bench_vae: %s\n", err);
        return 1;
    }
    nb_set_num_threads(threads);
    nb_manual_seed(1);
    vae_config c;
    vae_config_default(&c);
    c.hidden[0] = H;
    vae_model m;
    vae_init(&m, &c, NULL);
    nn_optim *opt = nn_optim_adam(&m.params, nn_adam_defaults(1e-3));
    int64_t D = train.rows * train.cols;
    Tensor *x = tensor_empty(NB_SHAPE(B, D));
    nn_batches it;
    nn_batches_init(&it, train.n, B, true, false, 1);
    int64_t step = 0;
    for (int e = 1; e <= epochs; e++) {
        double t0 = bench_now(), total = 0;
        while (nn_batches_next(&it)) {
            int64_t n = it.count;
            idx_batch(&train, it.index, n, x->data, NULL);
            Tensor *xb = n == B ? x : ag_narrow(x, 0, 0, n);
            vae_terms t = vae_loss(&m, xb, NULL, step++, NULL);
            ag_backward(t.objective);
            nn_optim_step(opt);
            nn_optim_zero_grad(opt);
            ag_reset();
            total += t.elbo_loss * (double)n;
        }
        double dt = bench_now() - t0;
        printf("{\"epoch\": %d, \"train_loss\": %.4f, \"epoch_seconds\": %.4f, "
               "\"samples_per_second\": %.1f, \"peak_rss_mb\": %.1f, \"threads\": %d}\n",
               e, total / (double)train.n, dt, (double)train.n / dt, peak_rss_mb(),
               nb_get_num_threads());
        fflush(stdout);
    }
    nn_batches_free(&it);
    tensor_free(x);
    nn_optim_free(opt);
    vae_free(&m);
    idx_free(&train);
    return 0;
}
