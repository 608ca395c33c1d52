/* nn/init.c: parameter initializers (formulas in nn/init.h). */
#include "nn/init.h"

#include <math.h>

/* ---- filling through strides ----------------------------------------------------------------- */

typedef double (*draw_fn)(nb_rng *rng, double p0, double p1);

/* Sets every element of t, in row-major order, to draw(rng, p0, p1). */
static void fill(Tensor *t, draw_fn draw, nb_rng *rng, double p0, double p1) {
    if (!rng) rng = nb_rng_global();
    if (tensor_is_contiguous(t)) {
        real *p = t->data + t->offset;
        for (int64_t i = 0; i < t->numel; i++) p[i] = (real)draw(rng, p0, p1);
        return;
    }
    int64_t idx[NB_MAX_DIMS] = {0};
    for (int64_t i = 0; i < t->numel; i++) {
        *tensor_ptr(t, idx) = (real)draw(rng, p0, p1);
        for (int d = t->ndim - 1; d >= 0; d--) { /* odometer: next row-major index */
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static double draw_uniform(nb_rng *rng, double a, double b) {
    return a + (b - a) * nb_rng_uniform(rng);
}
static double draw_normal(nb_rng *rng, double mean, double std) {
    return mean + std * nb_rng_normal(rng);
}
static double draw_constant(nb_rng *rng, double value, double unused) {
    (void)rng;
    (void)unused;
    return value;
}

/* ---- gains and fans -------------------------------------------------------------------------- */

double nn_init_gain(nn_nonlinearity nl, double a) {
    switch (nl) {
    case NN_GAIN_TANH:
        return 5.0 / 3.0;
    case NN_GAIN_RELU:
        return sqrt(2.0);
    case NN_GAIN_LEAKY_RELU:
        return sqrt(2.0 / (1.0 + a * a));
    case NN_GAIN_LINEAR:
    case NN_GAIN_SIGMOID:
        break;
    }
    return 1.0;
}

void nn_init_fans(const char *op, const Tensor *t, int64_t *fan_in, int64_t *fan_out) {
    if (t->ndim < 2) {
        char s[128];
        nb_fail(op, "fan in and fan out need a tensor of 2 or more dims, got shape %s",
                nb_shape_str(s, t->ndim, t->shape));
    }
    int64_t receptive = 1;
    for (int d = 2; d < t->ndim; d++) receptive *= t->shape[d];
    *fan_in = t->shape[1] * receptive;
    *fan_out = t->shape[0] * receptive;
}

/* ---- the initializers ------------------------------------------------------------------------ */

void nn_init_uniform_(Tensor *t, double a, double b, nb_rng *rng) {
    if (!(a <= b)) nb_fail("nn_init_uniform_", "lower bound %g is above upper bound %g", a, b);
    fill(t, draw_uniform, rng, a, b);
}

void nn_init_normal_(Tensor *t, double mean, double std, nb_rng *rng) {
    if (!(std >= 0)) nb_fail("nn_init_normal_", "standard deviation %g is negative", std);
    fill(t, draw_normal, rng, mean, std);
}

void nn_init_constant_(Tensor *t, double value) {
    fill(t, draw_constant, NULL, value, 0);
}

void nn_init_xavier_uniform_(Tensor *t, double gain, nb_rng *rng) {
    int64_t fi, fo;
    nn_init_fans("nn_init_xavier_uniform_", t, &fi, &fo);
    if (t->numel == 0) return;
    double b = gain * sqrt(6.0 / (double)(fi + fo));
    fill(t, draw_uniform, rng, -b, b);
}

void nn_init_xavier_normal_(Tensor *t, double gain, nb_rng *rng) {
    int64_t fi, fo;
    nn_init_fans("nn_init_xavier_normal_", t, &fi, &fo);
    if (t->numel == 0) return;
    fill(t, draw_normal, rng, 0, gain * sqrt(2.0 / (double)(fi + fo)));
}

/* The standard deviation gain / sqrt(fan) shared by both kaiming initializers. */
static double kaiming_std(const char *op, const Tensor *t, double a, nn_fan_mode mode,
                          nn_nonlinearity nl) {
    int64_t fi, fo;
    nn_init_fans(op, t, &fi, &fo);
    int64_t fan = mode == NN_FAN_IN ? fi : fo;
    return fan > 0 ? nn_init_gain(nl, a) / sqrt((double)fan) : 0;
}

void nn_init_kaiming_uniform_(Tensor *t, double a, nn_fan_mode mode, nn_nonlinearity nl,
                              nb_rng *rng) {
    double b = sqrt(3.0) * kaiming_std("nn_init_kaiming_uniform_", t, a, mode, nl);
    if (t->numel == 0) return;
    fill(t, draw_uniform, rng, -b, b);
}

void nn_init_kaiming_normal_(Tensor *t, double a, nn_fan_mode mode, nn_nonlinearity nl,
                             nb_rng *rng) {
    double s = kaiming_std("nn_init_kaiming_normal_", t, a, mode, nl);
    if (t->numel == 0) return;
    fill(t, draw_normal, rng, 0, s);
}
