/* examples/spirals.c: a 2-64-64-2 ReLU MLP learns two interleaved spirals with Adam; the model
 * and the optimizer go to a safetensors checkpoint and come back bit for bit.
 *
 *   ./build/spirals train model.safetensors     train, print loss and accuracy, save
 *   ./build/spirals predict model.safetensors   load, print accuracy and the probe logits
 *   ./build/spirals                             both in one process via a temporary file;
 *                                               exits 1 if the loaded model predicts differently
 *
 * The probe logits (5 fixed points) are printed in both modes and stored in the checkpoint's
 * metadata as hex floats, so `predict` also checks itself against the run that trained it.
 * Exit status: 0 on success, 1 on a failure (unreadable checkpoint, differing predictions),
 * 2 on bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autograd/autograd.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tensor/gemm.h"

/* Dimensions: N points (both classes), D = 2 coordinates, H hidden units, K = 2 classes. */
#define POINTS_PER_CLASS 400
#define HIDDEN           64
#define STEPS            1000
#define LR               0.01
#define DATA_SEED        7
#define INIT_SEED        42
#define NPROBE           5

#ifdef NB_DOUBLE
#define DIGITS 17
#else
#define DIGITS 9 /* enough to tell any two floats apart */
#endif

/* ---- data: two interleaved spirals ----------------------------------------------------------- */

typedef struct {
    Tensor *x;       /* [N, 2] coordinates, kept */
    int64_t *labels; /* [N] class 0 or 1 */
    int64_t n;
} dataset;

/* Class c's point at radius r in [0, 1] lies at angle 3 pi r + c pi (1.5 turns), plus N(0, s^2)
 * noise in each coordinate. */
static dataset spirals(int64_t per_class, uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    dataset d = {.n = 2 * per_class};
    d.x = tensor_empty(NB_SHAPE(d.n, 2));
    d.labels = nb_malloc((size_t)d.n * sizeof *d.labels);
    const double pi = 3.14159265358979323846, noise = 0.02;
    for (int64_t i = 0; i < d.n; i++) {
        int64_t c = i % 2;
        double r = 0.05 + 0.95 * nb_rng_uniform(&rng);
        double theta = 3 * pi * r + (double)c * pi;
        d.x->data[2 * i] = (real)(r * cos(theta) + noise * nb_rng_normal(&rng));
        d.x->data[2 * i + 1] = (real)(r * sin(theta) + noise * nb_rng_normal(&rng));
        d.labels[i] = c;
    }
    return d;
}

static void dataset_free(dataset *d) {
    tensor_free(d->x);
    nb_free(d->labels);
}

/* ---- the model ------------------------------------------------------------------------------- */

typedef struct {
    nn_linear fc1, fc2, fc3; /* 2 -> H -> H -> 2 */
    nn_params ps;
} mlp;

static void mlp_init(mlp *m, int64_t hidden, uint64_t seed) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nn_linear_init(&m->fc1, 2, hidden, true, &rng);
    nn_linear_init(&m->fc2, hidden, hidden, true, &rng);
    nn_linear_init(&m->fc3, hidden, 2, true, &rng);
    m->ps = (nn_params){0};
    nn_linear_params(&m->fc1, "fc1", &m->ps);
    nn_linear_params(&m->fc2, "fc2", &m->ps);
    nn_linear_params(&m->fc3, "fc3", &m->ps);
}

static void mlp_free(mlp *m) {
    nn_params_free(&m->ps);
    nn_linear_free(&m->fc1);
    nn_linear_free(&m->fc2);
    nn_linear_free(&m->fc3);
}

/* x [N, 2] -> logits [N, 2] (step tensor) */
static Tensor *mlp_forward(const mlp *m, Tensor *x) {
    Tensor *h = nn_relu(nn_linear_forward(&m->fc1, x));
    h = nn_relu(nn_linear_forward(&m->fc2, h));
    return nn_linear_forward(&m->fc3, h);
}

/* Fraction of d's points whose larger logit is their class. */
static double accuracy(const mlp *m, const dataset *d) {
    bool prev = ag_set_grad_enabled(false);
    Tensor *logits = mlp_forward(m, d->x);
    int64_t right = 0;
    for (int64_t i = 0; i < d->n; i++) {
        real l0 = tensor_get(logits, (int64_t[]){i, 0}), l1 = tensor_get(logits, (int64_t[]){i, 1});
        right += (l1 > l0) == (d->labels[i] == 1);
    }
    ag_reset();
    ag_set_grad_enabled(prev);
    return (double)right / (double)d->n;
}

/* The logits of NPROBE fixed points into out [NPROBE * 2], printed. */
static void probe(const mlp *m, real *out) {
    static const real pts[NPROBE * 2] = {0, 0, 0.5f, 0.5f, -0.3f, 0.7f, 0.8f, -0.1f, -0.6f, -0.6f};
    bool prev = ag_set_grad_enabled(false);
    Tensor *logits = mlp_forward(m, ag_constant(NB_SHAPE(NPROBE, 2), pts));
    tensor_to_array(logits, out);
    for (int i = 0; i < NPROBE; i++)
        printf("  probe (%5.2f, %5.2f): logits %.*g %.*g -> class %d\n", (double)pts[2 * i],
               (double)pts[2 * i + 1], DIGITS, (double)out[2 * i], DIGITS, (double)out[2 * i + 1],
               out[2 * i + 1] > out[2 * i]);
    ag_reset();
    ag_set_grad_enabled(prev);
}

/* ---- train ----------------------------------------------------------------------------------- */

/* Trains a fresh model, saves it to path; the probe logits go to probe_out. Returns 0 or 1. */
static int train(const char *path, real *probe_out) {
    dataset d = spirals(POINTS_PER_CLASS, DATA_SEED);
    mlp m;
    mlp_init(&m, HIDDEN, INIT_SEED);
    nn_optim *opt = nn_optim_adam(&m.ps, nn_adam_defaults(LR));
    printf("training a 2-%d-%d-2 MLP on %lld spiral points (%lld parameters), %d Adam steps\n",
           HIDDEN, HIDDEN, (long long)d.n, (long long)nn_params_count(&m.ps), STEPS);
    for (int step = 0; step < STEPS; step++) {
        nn_optim_zero_grad(opt);
        Tensor *loss = nn_cross_entropy(mlp_forward(&m, d.x), d.labels, NN_MEAN);
        ag_backward(loss);
        bool finite;
        nn_clip_grad_norm(&m.ps, 5.0, &finite);
        if (!finite) {
            fprintf(stderr, "spirals: step %d: the gradient is not finite\n", step);
            return 1;
        }
        /* 50 warm-up steps from lr/10, then a cosine down to lr/100 */
        nn_optim_set_lr(opt, nn_lr_warmup(nn_lr_cosine(LR, step, STEPS, LR / 100), step, 50, 0.1));
        nn_optim_step(opt);
        if (step % 200 == 0 || step == STEPS - 1) {
            double l = tensor_item(loss);
            ag_reset();
            printf("step %4d  loss %.4f  accuracy %.3f  lr %.5f\n", step, l, accuracy(&m, &d),
                   nn_optim_get_lr(opt));
        }
        ag_reset();
    }
    /* the checkpoint stores F32: round to it (a no-op when real is float), so the probes below
     * are the saved model's in a double build too */
    for (int i = 0; i < m.ps.n; i++) {
        Tensor *t = m.ps.items[i].t;
        for (int64_t j = 0; j < t->numel; j++) t->data[j] = (real)(float)t->data[j];
    }
    printf("train accuracy %.3f\n", accuracy(&m, &d));
    probe(&m, probe_out);

    /* the metadata: what predict needs to rebuild the model and check itself */
    char hidden[16], steps[16], probes[NPROBE * 2 * 32] = "";
    snprintf(hidden, sizeof hidden, "%d", HIDDEN);
    snprintf(steps, sizeof steps, "%d", STEPS);
    for (int i = 0; i < NPROBE * 2; i++)
        snprintf(probes + strlen(probes), sizeof probes - strlen(probes), "%s%a", i ? " " : "",
                 (double)probe_out[i]);
    nn_meta meta[] = {{"model", "mlp 2-H-H-2 relu"},
                      {"hidden", hidden},
                      {"step", steps},
                      {"real", NB_REAL_NAME},
                      {"probe_logits", probes}};
    nn_ckpt_error err;
    int rc = 0;
    if (nn_checkpoint_save(path, &m.ps, opt, meta, 5, &err) != NN_CKPT_OK) {
        fprintf(stderr, "spirals: %s\n", err.message);
        rc = 1;
    } else {
        printf("saved %s\n", path);
    }
    nn_optim_free(opt);
    mlp_free(&m);
    dataset_free(&d);
    return rc;
}

/* ---- predict --------------------------------------------------------------------------------- */

/* Parses "hidden" from the metadata: a whole number in [1, 4096], else -1. */
static int64_t parse_hidden(const char *s) {
    if (!s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return end != s && *end == '\0' && v >= 1 && v <= 4096 ? v : -1;
}

/* Loads path, prints accuracy and the probe logits into probe_out, and compares them with the
 * ones the training run stored (when it stored them). Returns 0, or 1 on any failure. */
static int predict(const char *path, real *probe_out) {
    nn_checkpoint_meta *meta;
    nn_ckpt_error err;
    if (nn_checkpoint_read_meta(path, &meta, &err) != NN_CKPT_OK) {
        fprintf(stderr, "spirals: %s\n", err.message);
        return 1;
    }
    int64_t hidden = parse_hidden(nn_checkpoint_meta_get(meta, "hidden"));
    nn_checkpoint_meta_free(meta);
    if (hidden < 0) {
        fprintf(stderr, "spirals: %s: metadata 'hidden' is missing or not in [1, 4096]\n", path);
        return 1;
    }
    mlp m;
    mlp_init(&m, hidden, 0); /* any values: the checkpoint overwrites them */
    if (nn_checkpoint_load(path, &m.ps, NULL, &meta, &err) != NN_CKPT_OK) {
        fprintf(stderr, "spirals: %s\n", err.message);
        mlp_free(&m);
        return 1;
    }
    printf("loaded %s (%s, trained %s steps in %s)\n", path, nn_checkpoint_meta_get(meta, "model"),
           nn_checkpoint_meta_get(meta, "step"), nn_checkpoint_meta_get(meta, "real"));
    dataset d = spirals(POINTS_PER_CLASS, DATA_SEED);
    dataset test = spirals(POINTS_PER_CLASS, DATA_SEED + 1);
    printf("accuracy: training points %.3f, fresh points %.3f\n", accuracy(&m, &d),
           accuracy(&m, &test));
    probe(&m, probe_out);

    int rc = 0;
    const char *stored = nn_checkpoint_meta_get(meta, "probe_logits");
    if (stored) {
        int same = 1;
        for (int i = 0; i < NPROBE * 2; i++) {
            char *end;
            double v = strtod(stored, &end);
            if (end == stored) {
                same = 0;
                break;
            }
            same &= (real)v == probe_out[i];
            stored = end;
        }
        printf("probe logits %s the training run's\n", same ? "match" : "DIFFER from");
        rc = !same;
    }
    nn_checkpoint_meta_free(meta);
    dataset_free(&d);
    dataset_free(&test);
    mlp_free(&m);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int usage(void) {
    fprintf(stderr, "usage: spirals train FILE      train and save a checkpoint\n"
                    "       spirals predict FILE    load a checkpoint and predict\n"
                    "       spirals                 both, through a temporary file\n");
    return 2;
}

int main(int argc, char **argv) {
    real trained[NPROBE * 2], loaded[NPROBE * 2];
    int rc;
    nb_set_num_threads(1); /* matrices of 800 x 64 are done before a second thread would start */
    if (argc == 3 && strcmp(argv[1], "train") == 0) {
        rc = train(argv[2], trained);
    } else if (argc == 3 && strcmp(argv[1], "predict") == 0) {
        rc = predict(argv[2], loaded);
    } else if (argc == 1) {
        char dir[] = "/tmp/spirals_XXXXXX", path[64];
        if (!mkdtemp(dir)) {
            perror("spirals: mkdtemp");
            return 1;
        }
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = train(path, trained);
        if (rc == 0) rc = predict(path, loaded);
        if (rc == 0 && memcmp(trained, loaded, sizeof trained) != 0) {
            fprintf(stderr, "spirals: the loaded model's logits differ from the trained one's\n");
            rc = 1;
        }
        unlink(path);
        rmdir(dir);
        if (rc == 0) printf("round trip through the checkpoint: identical predictions\n");
    } else {
        return usage();
    }
    arena_free_all();
    return rc;
}
