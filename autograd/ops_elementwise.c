/* autograd/ops_elementwise.c: element-wise ops, each forward beside its backward.
 * Notation: c = op(a[, b]); g = dL/dc (c->grad); each backward adds dL/da (and dL/db). */
#include "autograd/autograd.h"

/* A fresh contiguous output of the broadcast shape of a and b. */
static Tensor *binary_out(const char *op, const Tensor *a, const Tensor *b) {
    int64_t shape[NB_MAX_DIMS];
    int n = tensor_broadcast_shape(op, a, b, shape);
    return tensor_step(n, shape);
}

#define PARENTS(...)                                                                               \
    (Tensor *[]) {                                                                                 \
        __VA_ARGS__                                                                                \
    }

/* ---- c = a + b:  da += g,  db += g ----------------------------------------------------------- */
static void add_backward(Tensor *c) {
    ag_accumulate(c->parents[0], c->grad);
    ag_accumulate(c->parents[1], c->grad);
}
Tensor *ag_add(Tensor *a, Tensor *b) {
    Tensor *c = binary_out("add", a, b);
    k_binary(K_ADD, a, b, c, 0, 0, false);
    ag_record(c, "add", add_backward, PARENTS(a, b), 2);
    return c;
}

/* ---- c = a - b:  da += g,  db -= g ----------------------------------------------------------- */
static void sub_backward(Tensor *c) {
    ag_accumulate(c->parents[0], c->grad);
    ag_accumulate_unary(c->parents[1], K_NEG, c->grad, 0, 0);
}
Tensor *ag_sub(Tensor *a, Tensor *b) {
    Tensor *c = binary_out("sub", a, b);
    k_binary(K_SUB, a, b, c, 0, 0, false);
    ag_record(c, "sub", sub_backward, PARENTS(a, b), 2);
    return c;
}

/* ---- c = a * b:  da += g b,  db += g a ------------------------------------------------------- */
static void mul_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_MUL, c->grad, c->parents[1], 0, 0);
    ag_accumulate_binary(c->parents[1], K_MUL, c->grad, c->parents[0], 0, 0);
}
Tensor *ag_mul(Tensor *a, Tensor *b) {
    Tensor *c = binary_out("mul", a, b);
    k_binary(K_MUL, a, b, c, 0, 0, false);
    ag_record(c, "mul", mul_backward, PARENTS(a, b), 2);
    return c;
}

/* ---- c = a / b:  da += g / b,  db += -(g c) / b ---------------------------------------------- */
static void div_backward(Tensor *c) {
    Tensor *a = c->parents[0], *b = c->parents[1];
    ag_accumulate_binary(a, K_DIV, c->grad, b, 0, 0);
    if (b->requires_grad) {
        Tensor *gc = tensor_step(c->ndim, c->shape);
        k_binary(K_MUL, c->grad, c, gc, 0, 0, false);
        ag_accumulate_binary(b, K_NEG_DIV, gc, b, 0, 0);
    }
}
Tensor *ag_div(Tensor *a, Tensor *b) {
    Tensor *c = binary_out("div", a, b);
    k_binary(K_DIV, a, b, c, 0, 0, false);
    ag_record(c, "div", div_backward, PARENTS(a, b), 2);
    return c;
}

/* ---- unary ops: c = f(a), da += g f'(a) ---------------------------------------------------------
 */

/* Runs a unary kernel into a fresh output and records it. */
static Tensor *unary(const char *name, k_unary_op op, Tensor *a, real p0, real p1,
                     ag_backward_fn backward) {
    Tensor *c = tensor_step(a->ndim, a->shape);
    k_unary(op, a, c, p0, p1, false);
    ag_record(c, name, backward, PARENTS(a), 1);
    c->sarg[0] = p0;
    c->sarg[1] = p1;
    return c;
}

/* c = -a: da -= g */
static void neg_backward(Tensor *c) {
    ag_accumulate_unary(c->parents[0], K_NEG, c->grad, 0, 0);
}
Tensor *ag_neg(Tensor *a) {
    return unary("neg", K_NEG, a, 0, 0, neg_backward);
}

/* c = a + s: da += g */
static void add_scalar_backward(Tensor *c) {
    ag_accumulate(c->parents[0], c->grad);
}
Tensor *ag_add_scalar(Tensor *a, real s) {
    return unary("add_scalar", K_AFFINE, a, 1, s, add_scalar_backward);
}

/* c = a s: da += g s */
static void mul_scalar_backward(Tensor *c) {
    ag_accumulate_unary(c->parents[0], K_AFFINE, c->grad, c->sarg[0], 0);
}
Tensor *ag_mul_scalar(Tensor *a, real s) {
    return unary("mul_scalar", K_AFFINE, a, s, 0, mul_scalar_backward);
}

/* c = exp(a): da += g c */
static void exp_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_MUL, c->grad, c, 0, 0);
}
Tensor *ag_exp(Tensor *a) {
    return unary("exp", K_EXP, a, 0, 0, exp_backward);
}

/* c = log(a): da += g / a */
static void log_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_DIV, c->grad, c->parents[0], 0, 0);
}
Tensor *ag_log(Tensor *a) {
    return unary("log", K_LOG, a, 0, 0, log_backward);
}

/* c = a^p: da += g p a^(p-1) */
static void pow_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_POW_BWD, c->grad, c->parents[0], c->sarg[0], 0);
}
Tensor *ag_pow(Tensor *a, real p) {
    return unary("pow", K_POW, a, p, 0, pow_backward);
}

/* c = sqrt(a): da += g / (2 c) */
static void sqrt_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_SQRT_BWD, c->grad, c, 0, 0);
}
Tensor *ag_sqrt(Tensor *a) {
    return unary("sqrt", K_SQRT, a, 0, 0, sqrt_backward);
}

/* c = |a|: da += g sign(a) (0 at a == 0, as PyTorch) */
static void abs_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_ABS_BWD, c->grad, c->parents[0], 0, 0);
}
Tensor *ag_abs(Tensor *a) {
    return unary("abs", K_ABS, a, 0, 0, abs_backward);
}

/* c = clamp(a, lo, hi): da += g where lo <= a <= hi */
static void clamp_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_CLAMP_BWD, c->grad, c->parents[0], c->sarg[0],
                         c->sarg[1]);
}
Tensor *ag_clamp(Tensor *a, real lo, real hi) {
    if (lo > hi) nb_fail("clamp", "lower bound %g is above upper bound %g", (double)lo, (double)hi);
    return unary("clamp", K_CLAMP, a, lo, hi, clamp_backward);
}

/* c = max(a, 0): da += g where c > 0 */
static void relu_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_RELU_BWD, c->grad, c, 0, 0);
}
Tensor *ag_relu(Tensor *a) {
    return unary("relu", K_RELU, a, 0, 0, relu_backward);
}

/* c = 1 / (1 + exp(-a)): da += g c (1 - c) */
static void sigmoid_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_SIGMOID_BWD, c->grad, c, 0, 0);
}
Tensor *ag_sigmoid(Tensor *a) {
    return unary("sigmoid", K_SIGMOID, a, 0, 0, sigmoid_backward);
}

/* c = tanh(a): da += g (1 - c^2) */
static void tanh_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_TANH_BWD, c->grad, c, 0, 0);
}
Tensor *ag_tanh(Tensor *a) {
    return unary("tanh", K_TANH, a, 0, 0, tanh_backward);
}

/* c = log(1 + exp(a)): da += g sigmoid(a) */
static void softplus_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_SOFTPLUS_BWD, c->grad, c->parents[0], 0, 0);
}
Tensor *ag_softplus(Tensor *a) {
    return unary("softplus", K_SOFTPLUS, a, 0, 0, softplus_backward);
}
