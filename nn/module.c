/* nn/module.c: the module interface, Sequential, Linear, the activation modules, Flatten and
 * Unflatten. Modules over the convolution and normalization ops are in nn/module_conv.c,
 * nn/module_norm.c and nn/module_more.c. */
#include "nn/module.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nn/layers.h"

/* ---- the interface --------------------------------------------------------------------------- */

void *nn_module_alloc(size_t size, const nn_module_ops *ops) {
    if (size < sizeof(nn_module) || !ops || !ops->forward)
        nb_fail("nn_module_alloc",
                "need size >= sizeof(nn_module) (got %zu) and ops with a forward", size);
    nn_module *m = nb_calloc(size);
    m->ops = ops;
    m->training = true;
    return m;
}

Tensor *nn_forward(nn_module *m, Tensor *x) {
    if (!m || !x) nb_fail("nn_forward", "module and input must not be NULL");
    return m->ops->forward(m, x);
}

void nn_module_params(nn_module *m, const char *prefix, nn_params *ps) {
    if (!m || !ps) nb_fail("nn_module_params", "module and list must not be NULL");
    if (m->ops->collect) m->ops->collect(m, prefix, ps);
}

void nn_module_params_child(nn_module *child, const char *prefix, const char *name, nn_params *ps) {
    char full[NN_NAME_MAX];
    int len = (prefix && *prefix) ? snprintf(full, sizeof full, "%s.%s", prefix, name)
                                  : snprintf(full, sizeof full, "%s", name);
    if (len < 0 || len >= NN_NAME_MAX)
        nb_fail("nn_module_params", "module name '%s.%s' is longer than %d characters",
                prefix ? prefix : "", name, NN_NAME_MAX - 1);
    nn_module_params(child, full, ps);
}

void nn_module_train(nn_module *m, bool on) {
    if (!m) nb_fail("nn_module_train", "module must not be NULL");
    m->training = on;
    if (m->ops->train) m->ops->train(m, on);
}

void nn_module_free(nn_module *m) {
    if (!m) return;
    if (m->ops->free)
        m->ops->free(m);
    else
        nb_free(m);
}

/* ---- Sequential ------------------------------------------------------------------------------ */

#define CHILD_NAME_MAX 32

typedef struct {
    char name[CHILD_NAME_MAX]; /* "0", "conv1" */
    nn_module *m;              /* owned */
} seq_child;

typedef struct {
    nn_module base;
    seq_child *kids; /* [n], in forward order */
    int n, cap;
} sequential;

static bool is_relu(const nn_module *m);

/* A child with a fused form followed by a ReLU runs as one op (the same values and gradients,
 * one activation fewer kept for the backward). */
static Tensor *sequential_forward(nn_module *m, Tensor *x) {
    sequential *s = (sequential *)m;
    for (int i = 0; i < s->n; i++) {
        nn_module *k = s->kids[i].m;
        Tensor *fused = i + 1 < s->n && is_relu(s->kids[i + 1].m) ? nn_forward_relu(k, x) : NULL;
        if (fused) {
            x = fused;
            i++; /* the ReLU is done */
            continue;
        }
        x = nn_forward(k, x);
    }
    return x;
}

static void sequential_collect(nn_module *m, const char *prefix, nn_params *ps) {
    sequential *s = (sequential *)m;
    for (int i = 0; i < s->n; i++)
        nn_module_params_child(s->kids[i].m, prefix, s->kids[i].name, ps);
}

static void sequential_train(nn_module *m, bool on) {
    sequential *s = (sequential *)m;
    for (int i = 0; i < s->n; i++) nn_module_train(s->kids[i].m, on);
}

static void sequential_free(nn_module *m) {
    sequential *s = (sequential *)m;
    for (int i = 0; i < s->n; i++) nn_module_free(s->kids[i].m);
    nb_free(s->kids);
    nb_free(s);
}

static const nn_module_ops sequential_ops = {"Sequential", sequential_forward, sequential_collect,
                                             sequential_train, sequential_free};

static sequential *as_sequential(const char *op, const nn_module *m) {
    if (!m || m->ops != &sequential_ops)
        nb_fail(op, "module is a %s, not a Sequential", m ? m->ops->type : "NULL pointer");
    return (sequential *)m;
}

void nn_sequential_add(nn_module *seq, const char *name, nn_module *child) {
    const char *op = "nn_sequential_add";
    sequential *s = as_sequential(op, seq);
    if (!child) nb_fail(op, "child '%s' is NULL", name ? name : "");
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= CHILD_NAME_MAX || strchr(name, '.'))
        nb_fail(op, "child name '%s' must have 1 to %d characters and no '.'", name ? name : "",
                CHILD_NAME_MAX - 1);
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->kids[i].name, name) == 0) nb_fail(op, "child name '%s' is taken", name);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        seq_child *kids = nb_malloc((size_t)cap * sizeof *kids);
        if (s->n) memcpy(kids, s->kids, (size_t)s->n * sizeof *kids);
        nb_free(s->kids);
        s->kids = kids;
        s->cap = cap;
    }
    memcpy(s->kids[s->n].name, name, len + 1);
    s->kids[s->n].m = child;
    s->n++;
}

void nn_sequential_append(nn_module *seq, nn_module *child) {
    char name[CHILD_NAME_MAX];
    snprintf(name, sizeof name, "%d", as_sequential("nn_sequential_append", seq)->n);
    nn_sequential_add(seq, name, child);
}

nn_module *nn_sequential(nn_module *first, ...) {
    nn_module *seq = nn_module_alloc(sizeof(sequential), &sequential_ops);
    va_list ap;
    va_start(ap, first);
    for (nn_module *m = first; m; m = va_arg(ap, nn_module *)) nn_sequential_append(seq, m);
    va_end(ap);
    return seq;
}

int nn_sequential_len(const nn_module *seq) {
    return as_sequential("nn_sequential_len", seq)->n;
}

nn_module *nn_sequential_at(const nn_module *seq, int i) {
    sequential *s = as_sequential("nn_sequential_at", seq);
    if (i < 0 || i >= s->n) nb_fail("nn_sequential_at", "index %d out of range [0, %d)", i, s->n);
    return s->kids[i].m;
}

/* ---- Linear ---------------------------------------------------------------------------------- */

typedef struct {
    nn_module base;
    nn_linear l; /* weight [out, in], bias [out] or NULL */
} linear_module;

static Tensor *linear_forward(nn_module *m, Tensor *x) {
    return nn_linear_forward(&((linear_module *)m)->l, x);
}

static void linear_collect(nn_module *m, const char *prefix, nn_params *ps) {
    nn_linear_params(&((linear_module *)m)->l, prefix, ps);
}

static void linear_free(nn_module *m) {
    nn_linear_free(&((linear_module *)m)->l);
    nb_free(m);
}

static const nn_module_ops linear_ops = {"Linear", linear_forward, linear_collect, NULL,
                                         linear_free};

nn_module *nn_linear_module(int64_t in, int64_t out, bool bias, nb_rng *rng) {
    linear_module *m = nn_module_alloc(sizeof *m, &linear_ops);
    nn_linear_init(&m->l, in, out, bias, rng);
    return &m->base;
}

/* ---- activations: one module type, its ops table carrying the class name --------------------- */

typedef struct {
    nn_module base;
    nn_module_ops ops;                    /* this module's table: type is the class name */
    Tensor *(*fn)(Tensor *x);             /* a function of x alone, or NULL */
    Tensor *(*fn_arg)(Tensor *x, real a); /* else one of x and arg */
    real arg;
} activation;

static Tensor *activation_forward(nn_module *m, Tensor *x) {
    activation *a = (activation *)m;
    return a->fn ? a->fn(x) : a->fn_arg(x, a->arg);
}

static activation *activation_new(const char *type) {
    activation *a = nb_calloc(sizeof *a);
    a->ops = (nn_module_ops){type, activation_forward, NULL, NULL, NULL};
    a->base.ops = &a->ops;
    a->base.training = true;
    return a;
}

nn_module *nn_activation_module(const char *type, Tensor *(*fn)(Tensor *x)) {
    if (!type || !fn) nb_fail("nn_activation_module", "type and fn must not be NULL");
    activation *a = activation_new(type);
    a->fn = fn;
    return &a->base;
}

nn_module *nn_activation_arg_module(const char *type, Tensor *(*fn)(Tensor *x, real a), real arg) {
    activation *a = activation_new(type);
    a->fn_arg = fn;
    a->arg = arg;
    return &a->base;
}

nn_module *nn_relu_module(void) {
    return nn_activation_module("ReLU", nn_relu);
}

static bool is_relu(const nn_module *m) {
    return m->ops->forward == activation_forward && ((const activation *)m)->fn == nn_relu;
}
nn_module *nn_sigmoid_module(void) {
    return nn_activation_module("Sigmoid", nn_sigmoid);
}
nn_module *nn_tanh_module(void) {
    return nn_activation_module("Tanh", nn_tanh);
}
nn_module *nn_leaky_relu_module(real slope) {
    return nn_activation_arg_module("LeakyReLU", nn_leaky_relu, slope);
}

/* ---- Flatten and Unflatten ------------------------------------------------------------------- */

typedef struct {
    nn_module base;
    int start, end; /* possibly negative, resolved against the input's ndim */
} flatten;

static Tensor *flatten_forward(nn_module *m, Tensor *x) {
    flatten *f = (flatten *)m;
    int start = tensor_dim("nn_flatten", x, f->start), end = tensor_dim("nn_flatten", x, f->end);
    if (start > end)
        nb_fail("nn_flatten", "start_dim %d comes after end_dim %d for an input of %d dims",
                f->start, f->end, x->ndim);
    int64_t shape[NB_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < start; d++) shape[n++] = x->shape[d];
    shape[n] = 1;
    for (int d = start; d <= end; d++) shape[n] *= x->shape[d];
    n++;
    for (int d = end + 1; d < x->ndim; d++) shape[n++] = x->shape[d];
    return ag_reshape(x, n, shape);
}

static const nn_module_ops flatten_ops = {"Flatten", flatten_forward, NULL, NULL, NULL};

nn_module *nn_flatten(int start_dim, int end_dim) {
    flatten *f = nn_module_alloc(sizeof *f, &flatten_ops);
    f->start = start_dim;
    f->end = end_dim;
    return &f->base;
}

typedef struct {
    nn_module base;
    int dim; /* possibly negative */
    int ndim;
    int64_t shape[NB_MAX_DIMS]; /* [ndim]; one may be -1 */
} unflatten;

static Tensor *unflatten_forward(nn_module *m, Tensor *x) {
    unflatten *u = (unflatten *)m;
    int dim = tensor_dim("nn_unflatten", x, u->dim);
    int64_t known = 1, size = x->shape[dim];
    bool infer = false;
    for (int i = 0; i < u->ndim; i++) {
        if (u->shape[i] == -1)
            infer = true;
        else
            known *= u->shape[i];
    }
    char sx[128], su[128];
    if (x->ndim - 1 + u->ndim > NB_MAX_DIMS || (infer ? known == 0 || size % known : size != known))
        nb_fail("nn_unflatten", "dim %d of input %s cannot be unflattened into %s", u->dim,
                nb_shape_str(sx, x->ndim, x->shape), nb_shape_str(su, u->ndim, u->shape));
    int64_t shape[NB_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < dim; d++) shape[n++] = x->shape[d];
    for (int i = 0; i < u->ndim; i++) shape[n++] = u->shape[i];
    for (int d = dim + 1; d < x->ndim; d++) shape[n++] = x->shape[d];
    return ag_reshape(x, n, shape);
}

static const nn_module_ops unflatten_ops = {"Unflatten", unflatten_forward, NULL, NULL, NULL};

nn_module *nn_unflatten(int dim, int ndim, const int64_t *shape) {
    int inferred = 0;
    for (int i = 0; i < ndim && ndim <= NB_MAX_DIMS; i++) {
        if (shape[i] == -1)
            inferred++;
        else if (shape[i] <= 0)
            inferred = 2;
    }
    if (ndim < 1 || ndim > NB_MAX_DIMS || inferred > 1)
        nb_fail("nn_unflatten", "need 1 to %d positive sizes (one may be -1), got %d", NB_MAX_DIMS,
                ndim);
    unflatten *u = nn_module_alloc(sizeof *u, &unflatten_ops);
    u->dim = dim;
    u->ndim = ndim;
    memcpy(u->shape, shape, (size_t)ndim * sizeof *shape);
    return &u->base;
}
