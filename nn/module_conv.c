/* nn/module_conv.c: Conv1d, Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d and Upsample modules
 * over the ops of autograd/ops_conv.c. */
#include "nn/module.h"

#include <math.h>

#include "nn/init.h"

/* ---- convolutions ---------------------------------------------------------------------------- */

typedef struct {
    nn_module base;
    Tensor *weight; /* Conv: [out, in/groups, k...]; ConvTranspose: [in, out/groups, kh, kw] */
    Tensor *bias;   /* [out] or NULL */
    nb_conv2d_opts o;
} conv;

static Tensor *conv1d_forward(nn_module *m, Tensor *x) {
    conv *c = (conv *)m;
    return ag_conv1d(x, c->weight, c->bias, c->o);
}

static Tensor *conv2d_forward(nn_module *m, Tensor *x) {
    conv *c = (conv *)m;
    return ag_conv2d(x, c->weight, c->bias, c->o);
}

static Tensor *conv_transpose2d_forward(nn_module *m, Tensor *x) {
    conv *c = (conv *)m;
    return ag_conv_transpose2d(x, c->weight, c->bias, c->o);
}

static void conv_collect(nn_module *m, const char *prefix, nn_params *ps) {
    conv *c = (conv *)m;
    nn_params_add(ps, prefix, "weight", c->weight);
    if (c->bias) nn_params_add(ps, prefix, "bias", c->bias);
}

static void conv_free(nn_module *m) {
    conv *c = (conv *)m;
    tensor_free(c->weight);
    tensor_free(c->bias);
    nb_free(c);
}

static const nn_module_ops conv1d_ops = {"Conv1d", conv1d_forward, conv_collect, NULL, conv_free};
static const nn_module_ops conv2d_ops = {"Conv2d", conv2d_forward, conv_collect, NULL, conv_free};
static const nn_module_ops conv_transpose2d_ops = {"ConvTranspose2d", conv_transpose2d_forward,
                                                   conv_collect, NULL, conv_free};

Tensor *nn_forward_relu(nn_module *m, Tensor *x) {
    if (!m || !x) nb_fail("nn_forward_relu", "module and input must not be NULL");
    conv *c = (conv *)m; /* read only when m's table says it is one */
    if (m->ops == &conv2d_ops) return ag_conv2d_relu(x, c->weight, c->bias, c->o);
    if (m->ops == &conv_transpose2d_ops)
        return ag_conv_transpose2d_relu(x, c->weight, c->bias, c->o);
    return NULL;
}

/* Makes the module with a weight of the given shape and PyTorch's _ConvNd.reset_parameters:
 * kaiming_uniform_(a = sqrt(5)) on the weight, then the bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 * with fan_in computed from the weight's shape (shape[1] * kernel size). */
static nn_module *conv_new(const nn_module_ops *ops, int64_t in, int64_t out, int ndim,
                           const int64_t *wshape, nb_conv2d_opts o, bool bias, nb_rng *rng) {
    int64_t k = 1;
    for (int d = 2; d < ndim; d++) k *= wshape[d];
    if (in <= 0 || out <= 0 || k <= 0 || o.groups <= 0 || in % o.groups || out % o.groups)
        nb_fail(ops->type,
                "need positive in (%lld), out (%lld) and kernel sizes, and groups (%d) dividing "
                "in and out",
                (long long)in, (long long)out, o.groups);
    conv *c = nn_module_alloc(sizeof *c, ops);
    c->o = o;
    c->weight = tensor_empty(ndim, wshape);
    nn_init_kaiming_uniform_(c->weight, sqrt(5.0), NN_FAN_IN, NN_GAIN_LEAKY_RELU, rng);
    if (bias) {
        int64_t fan_in, fan_out;
        nn_init_fans(ops->type, c->weight, &fan_in, &fan_out);
        double b = 1.0 / sqrt((double)fan_in);
        c->bias = tensor_empty(NB_SHAPE(out));
        nn_init_uniform_(c->bias, -b, b, rng);
    }
    return &c->base;
}

nn_module *nn_conv1d(int64_t in, int64_t out, int k, nb_conv2d_opts o, bool bias, nb_rng *rng) {
    int g = o.groups > 0 ? o.groups : 1; /* conv_new rejects groups <= 0 */
    return conv_new(&conv1d_ops, in, out, 3, (int64_t[]){out, in / g, k}, o, bias, rng);
}

nn_module *nn_conv2d(int64_t in, int64_t out, int kh, int kw, nb_conv2d_opts o, bool bias,
                     nb_rng *rng) {
    int g = o.groups > 0 ? o.groups : 1;
    return conv_new(&conv2d_ops, in, out, 4, (int64_t[]){out, in / g, kh, kw}, o, bias, rng);
}

nn_module *nn_conv_transpose2d(int64_t in, int64_t out, int kh, int kw, nb_conv2d_opts o, bool bias,
                               nb_rng *rng) {
    int g = o.groups > 0 ? o.groups : 1;
    return conv_new(&conv_transpose2d_ops, in, out, 4, (int64_t[]){in, out / g, kh, kw}, o, bias,
                    rng);
}

/* ---- pooling and upsampling ------------------------------------------------------------------ */

typedef struct {
    nn_module base;
    int k, stride, padding; /* upsampling: k is the scale */
} pool;

static Tensor *max_pool2d_forward(nn_module *m, Tensor *x) {
    pool *p = (pool *)m;
    return ag_max_pool2d(x, p->k, p->stride, p->padding);
}

static Tensor *avg_pool2d_forward(nn_module *m, Tensor *x) {
    pool *p = (pool *)m;
    return ag_avg_pool2d(x, p->k, p->stride, p->padding);
}

static Tensor *upsample_forward(nn_module *m, Tensor *x) {
    return ag_upsample_nearest2d(x, ((pool *)m)->k);
}

static const nn_module_ops max_pool2d_ops = {"MaxPool2d", max_pool2d_forward, NULL, NULL, NULL};
static const nn_module_ops avg_pool2d_ops = {"AvgPool2d", avg_pool2d_forward, NULL, NULL, NULL};
static const nn_module_ops upsample_ops = {"Upsample", upsample_forward, NULL, NULL, NULL};

static nn_module *pool_new(const nn_module_ops *ops, int k, int stride, int padding) {
    if (k <= 0 || stride < 0 || padding < 0)
        nb_fail(ops->type, "need kernel (scale) > 0, stride >= 0 and padding >= 0 (got %d, %d, %d)",
                k, stride, padding);
    pool *p = nn_module_alloc(sizeof *p, ops);
    p->k = k;
    p->stride = stride ? stride : k;
    p->padding = padding;
    return &p->base;
}

nn_module *nn_max_pool2d_module(int k, int stride, int padding) {
    return pool_new(&max_pool2d_ops, k, stride, padding);
}

nn_module *nn_avg_pool2d_module(int k, int stride, int padding) {
    return pool_new(&avg_pool2d_ops, k, stride, padding);
}

nn_module *nn_upsample_nearest2d_module(int scale) {
    return pool_new(&upsample_ops, scale, 0, 0);
}
