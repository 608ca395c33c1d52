/* models/vae_nets.c: the architectures: builders of encoder/decoder pairs from nn/module.h
 * modules, and their table. A new architecture is a builder, a parameter count and a row in
 * `archs`; the objectives in vae.c never change for it.
 *
 * Shapes (B batch, D = rows * cols pixels, K classes, Z latent, C1, C2 channels, h = rows / 4,
 * w = cols / 4 for two stride-2 convolutions):
 *   mlp encoder   [B, D+K] -> fc1 relu .. fcN relu -> out [B, 2Z]
 *   mlp decoder   [B, Z+K] -> fc1 relu .. fcN relu -> out [B, D]
 *   conv encoder  [B, D+K] -> x [B, 1, rows, cols] -> conv1 relu [B, C1, rows/2, cols/2]
 *                 -> conv2 relu [B, C2, h, w] -> flatten [B, C2 h w] -> | onehot -> out [B, 2Z]
 *   conv decoder  [B, Z+K] -> fc relu [B, C2 h w] -> [B, C2, h, w] -> deconv1 relu [B, C2, 2h,
 *                 2w] -> deconv2 relu [B, C1, rows, cols] -> out [B, 1, rows, cols] -> [B, D] */
#include <stdio.h>
#include <string.h>

#include "models/vae.h"

/* ---- mlp ---------------------------------------------------------------------------------- */

/* Linear layers named fc1 .. fcN with ReLU after each, then "out": a named nn_sequential. */
static nn_module *mlp(int64_t in, const int64_t *sizes, int n, int64_t out, nb_rng *rng) {
    nn_module *seq = nn_sequential(NULL);
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "fc%d", i + 1);
        nn_sequential_add(seq, name, nn_linear_module(in, sizes[i], true, rng));
        snprintf(name, sizeof name, "relu%d", i + 1);
        nn_sequential_add(seq, name, nn_relu_module());
        in = sizes[i];
    }
    nn_sequential_add(seq, "out", nn_linear_module(in, out, true, rng));
    return seq;
}

static void mlp_build(const vae_config *c, nb_rng *rng, nn_module **enc, nn_module **dec) {
    int64_t D = c->rows * c->cols, K = c->num_classes, Z = c->latent;
    int64_t mirror[VAE_MAX_HIDDEN];
    for (int i = 0; i < c->nhidden; i++) mirror[i] = c->hidden[c->nhidden - 1 - i];
    *enc = mlp(D + K, c->hidden, c->nhidden, 2 * Z, rng);
    *dec = mlp(Z + K, mirror, c->nhidden, D, rng);
}

static double mlp_count(const vae_config *c) {
    double p = 0, enc = (double)(c->rows * c->cols + c->num_classes),
           dec = (double)(c->latent + c->num_classes);
    for (int i = 0; i < c->nhidden; i++) { /* encoder layer i and decoder layer i */
        double he = (double)c->hidden[i], hd = (double)c->hidden[c->nhidden - 1 - i];
        p += (enc + 1) * he + (dec + 1) * hd;
        enc = he, dec = hd;
    }
    return p + (enc + 1) * 2 * (double)c->latent + (dec + 1) * (double)(c->rows * c->cols);
}

/* ---- conv --------------------------------------------------------------------------------- */

/* The convolutional encoder: a module of its own because a conditional model's label joins
 * the features in the middle (after the convolutions, before encoder.out). */
typedef struct {
    nn_module base;
    nn_module *convs;      /* conv1 relu1 conv2 relu2 ...: [B, 1, rows, cols] -> [B, CN, h, w] */
    nn_module *out;        /* Linear CN h w + K -> 2Z */
    int64_t rows, cols, K; /* image size, classes */
} conv_encoder;

static Tensor *conv_encoder_forward(nn_module *self, Tensor *in) {
    conv_encoder *e = (conv_encoder *)self;
    int64_t B = in->shape[0], D = e->rows * e->cols;
    Tensor *x = e->K ? ag_narrow(in, 1, 0, D) : in;
    Tensor *h = nn_forward(e->convs, ag_reshape(x, NB_SHAPE(B, 1, e->rows, e->cols)));
    h = ag_reshape(h, NB_SHAPE(B, -1)); /* flatten, C-major as torch.flatten */
    if (e->K) h = ag_concat((Tensor *[]){h, ag_narrow(in, 1, D, e->K)}, 2, 1);
    return nn_forward(e->out, h);
}

/* Its children's parameters sit directly under the prefix: encoder.conv1, encoder.out. */
static void conv_encoder_collect(nn_module *self, const char *prefix, nn_params *ps) {
    conv_encoder *e = (conv_encoder *)self;
    nn_module_params(e->convs, prefix, ps);
    nn_module_params_child(e->out, prefix, "out", ps);
}

static void conv_encoder_train(nn_module *self, bool on) {
    conv_encoder *e = (conv_encoder *)self;
    nn_module_train(e->convs, on);
    nn_module_train(e->out, on);
}

static void conv_encoder_free(nn_module *self) {
    conv_encoder *e = (conv_encoder *)self;
    nn_module_free(e->convs);
    nn_module_free(e->out);
    nb_free(e);
}

static const nn_module_ops conv_encoder_ops = {"ConvEncoder", conv_encoder_forward,
                                               conv_encoder_collect, conv_encoder_train,
                                               conv_encoder_free};

/* 3x3 options: padding 1, the given stride and output padding (transposed convolutions). */
static nb_conv2d_opts conv3x3(int stride, int output_padding) {
    nb_conv2d_opts o = nb_conv2d_defaults();
    o.stride[0] = o.stride[1] = stride;
    o.padding[0] = o.padding[1] = 1;
    o.output_padding[0] = o.output_padding[1] = output_padding;
    return o;
}

static void conv_build(const vae_config *c, nb_rng *rng, nn_module **enc, nn_module **dec) {
    int n = c->nchannels;
    const int64_t *ch = c->channels;
    int64_t K = c->num_classes, Z = c->latent;
    int64_t h = c->rows >> n, w = c->cols >> n, F = ch[n - 1] * h * w; /* flattened features */
    nb_conv2d_opts down = conv3x3(2, 0), up = conv3x3(2, 1), same = conv3x3(1, 0);
    char name[32];

    conv_encoder *e = nn_module_alloc(sizeof *e, &conv_encoder_ops);
    e->rows = c->rows, e->cols = c->cols, e->K = K;
    e->convs = nn_sequential(NULL);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "conv%d", i + 1);
        nn_sequential_add(e->convs, name,
                          nn_conv2d(i ? ch[i - 1] : 1, ch[i], 3, 3, down, true, rng));
        snprintf(name, sizeof name, "relu%d", i + 1);
        nn_sequential_add(e->convs, name, nn_relu_module());
    }
    e->out = nn_linear_module(F + K, 2 * Z, true, rng);
    *enc = &e->base;

    /* the decoder mirrors it: deconv1 keeps CN channels, deconv i > 1 goes to C(N-i+1) */
    nn_module *d = nn_sequential(NULL);
    nn_sequential_add(d, "fc", nn_linear_module(Z + K, F, true, rng));
    nn_sequential_add(d, "relu0", nn_relu_module());
    nn_sequential_add(d, "unflatten", nn_unflatten(1, NB_SHAPE(ch[n - 1], h, w)));
    for (int i = 0; i < n; i++) {
        int64_t in = i ? ch[n - i] : ch[n - 1], out = ch[n - 1 - i];
        snprintf(name, sizeof name, "deconv%d", i + 1);
        nn_sequential_add(d, name, nn_conv_transpose2d(in, out, 3, 3, up, true, rng));
        snprintf(name, sizeof name, "relu%d", i + 1);
        nn_sequential_add(d, name, nn_relu_module());
    }
    nn_sequential_add(d, "out", nn_conv2d(ch[0], 1, 3, 3, same, true, rng));
    nn_sequential_add(d, "flatten", nn_flatten(1, -1));
    *dec = d;
}

static double conv_count(const vae_config *c) {
    int n = c->nchannels;
    const int64_t *ch = c->channels;
    double K = (double)c->num_classes, Z = (double)c->latent;
    double F = (double)ch[n - 1] * (double)(c->rows >> n) * (double)(c->cols >> n), p = 0;
    for (int i = 0; i < n; i++) { /* conv i and deconv (n - i), 3x3 with bias */
        double in = i ? (double)ch[i - 1] : 1, in_d = i ? (double)ch[n - i] : (double)ch[n - 1];
        p += (in * 9 + 1) * (double)ch[i] + (in_d * 9 + 1) * (double)ch[n - 1 - i];
    }
    return p + (F + K + 1) * 2 * Z + (Z + K + 1) * F + (double)ch[0] * 9 + 1;
}

static int conv_check(const vae_config *c, char *err, size_t n) {
    int64_t div = (int64_t)1 << c->nchannels;
    if (c->rows % div || c->cols % div)
        return snprintf(err, n,
                        "the conv architecture with %d stride-2 convolutions needs image sides "
                        "divisible by %lld, not %lldx%lld",
                        c->nchannels, (long long)div, (long long)c->rows, (long long)c->cols),
               -1;
    return 0;
}

/* ---- the table ------------------------------------------------------------------------------ */

static const vae_arch archs[] = {
    {"mlp", mlp_build, mlp_count, NULL},
    {"conv", conv_build, conv_count, conv_check},
};
#define NARCHS (int)(sizeof archs / sizeof archs[0])

const vae_arch *vae_arch_find(const char *name) {
    for (int i = 0; i < NARCHS; i++)
        if (!strcmp(archs[i].name, name)) return &archs[i];
    return NULL;
}

const char *vae_arch_names(void) {
    static char names[128];
    if (!names[0])
        for (int i = 0, used = 0; i < NARCHS; i++)
            used += snprintf(names + used, sizeof names - (size_t)used, "%s%s", i ? ", " : "",
                             archs[i].name);
    return names;
}
