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

/* Runs a binary kernel into a fresh output of the broadcast shape and records it; with no
 * backward the output is a constant (never on the tape). */
static Tensor *binary(const char *name, k_binary_op op, Tensor *a, Tensor *b,
                      ag_backward_fn backward) {
    Tensor *c = binary_out(name, a, b);
    k_binary(op, a, b, c, 0, 0, false);
    if (backward) ag_record(c, name, backward, PARENTS(a, b), 2);
    return c;
}

/* ---- c = a + b:  da += g,  db += g ----------------------------------------------------------- */
static void add_backward(Tensor *c) {
    ag_accumulate(c->parents[0], c->grad);
    ag_accumulate(c->parents[1], c->grad);
}
Tensor *ag_add(Tensor *a, Tensor *b) {
    return binary("add", K_ADD, a, b, add_backward);
}

/* ---- c = a - b:  da += g,  db -= g ----------------------------------------------------------- */
static void sub_backward(Tensor *c) {
    ag_accumulate(c->parents[0], c->grad);
    ag_accumulate_unary(c->parents[1], K_NEG, c->grad, 0, 0);
}
Tensor *ag_sub(Tensor *a, Tensor *b) {
    return binary("sub", K_SUB, a, b, sub_backward);
}

/* ---- c = a * b:  da += g b,  db += g a ------------------------------------------------------- */
static void mul_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_MUL, c->grad, c->parents[1], 0, 0);
    ag_accumulate_binary(c->parents[1], K_MUL, c->grad, c->parents[0], 0, 0);
}
Tensor *ag_mul(Tensor *a, Tensor *b) {
    return binary("mul", K_MUL, a, b, mul_backward);
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
    return binary("div", K_DIV, a, b, div_backward);
}

/* ---- unary ops: c = f(a), da += g f'(a) ------------------------------------------------------ */

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

/* ---- activations and trigonometry: c = f(a), da += g f'(a) ----------------------------------- */

/* c = a Phi(a), Phi the standard normal CDF: da += g (Phi(a) + a phi(a)) */
static void gelu_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_GELU_BWD, c->grad, c->parents[0], 0, 0);
}
Tensor *ag_gelu(Tensor *a) {
    return unary("gelu", K_GELU, a, 0, 0, gelu_backward);
}

/* c = a sigmoid(a): da += g s (1 + a (1 - s)), s = sigmoid(a) */
static void silu_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_SILU_BWD, c->grad, c->parents[0], 0, 0);
}
Tensor *ag_silu(Tensor *a) {
    return unary("silu", K_SILU, a, 0, 0, silu_backward);
}

/* c = a > 0 ? a : alpha (exp(a) - 1): da += g where a > 0, g alpha exp(a) elsewhere */
static void elu_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_ELU_BWD, c->grad, c->parents[0], c->sarg[0], 0);
}
Tensor *ag_elu(Tensor *a, real alpha) {
    return unary("elu", K_ELU, a, alpha, 0, elu_backward);
}

/* c = sin(a): da += g cos(a) */
static void sin_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_SIN_BWD, c->grad, c->parents[0], 0, 0);
}
Tensor *ag_sin(Tensor *a) {
    return unary("sin", K_SIN, a, 0, 0, sin_backward);
}

/* c = cos(a): da -= g sin(a) */
static void cos_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_COS_BWD, c->grad, c->parents[0], 0, 0);
}
Tensor *ag_cos(Tensor *a) {
    return unary("cos", K_COS, a, 0, 0, cos_backward);
}

/* ---- c = maximum(a, b), minimum(a, b) -----------------------------------------------------------
 * PyTorch 1.13's rule: the input that is picked gets g, and on a tie (a == b) each gets g / 2;
 * where either is NaN (so c is NaN) both get g. */

/* parent's gradient += op(g, x, y), summed over the dims where parent was broadcast. */
static void accumulate_ternary(Tensor *parent, k_ternary_op op, const Tensor *g, const Tensor *x,
                               const Tensor *y) {
    if (!parent->requires_grad) return;
    bool fresh;
    Tensor *pg = ag_grad_begin(parent, &fresh);
    if (tensor_same_shape(pg, g)) {
        k_ternary(op, g, x, y, pg, !fresh);
        return;
    }
    ag_mark_t m = ag_mark();
    Tensor *tmp = tensor_step(g->ndim, g->shape);
    k_ternary(op, g, x, y, tmp, false);
    k_sum_to(tmp, pg, !fresh);
    ag_release(m);
}

static void maximum_backward(Tensor *c) {
    Tensor *a = c->parents[0], *b = c->parents[1];
    accumulate_ternary(a, K_MAXIMUM_BWD, c->grad, a, b);
    accumulate_ternary(b, K_MAXIMUM_BWD, c->grad, b, a);
}
Tensor *ag_maximum(Tensor *a, Tensor *b) {
    return binary("maximum", K_MAXIMUM, a, b, maximum_backward);
}

static void minimum_backward(Tensor *c) {
    Tensor *a = c->parents[0], *b = c->parents[1];
    accumulate_ternary(a, K_MINIMUM_BWD, c->grad, a, b);
    accumulate_ternary(b, K_MINIMUM_BWD, c->grad, b, a);
}
Tensor *ag_minimum(Tensor *a, Tensor *b) {
    return binary("minimum", K_MINIMUM, a, b, minimum_backward);
}

/* ---- c = where(cond, a, b):  da += g where cond != 0,  db += g where cond == 0 ------------------
 * cond is not a parent (no gradient reaches it); backward finds it in c->saved. */
static void where_backward(Tensor *c) {
    const Tensor *cond = c->saved;
    ag_accumulate_binary(c->parents[0], K_PICK, c->grad, cond, 0, 0);
    ag_accumulate_binary(c->parents[1], K_PICK_NOT, c->grad, cond, 0, 0);
}
Tensor *ag_where(Tensor *cond, Tensor *a, Tensor *b) {
    Tensor ab = {0}; /* only the broadcast shape of a and b */
    int64_t shape[NB_MAX_DIMS];
    ab.ndim = tensor_broadcast_shape("where", a, b, ab.shape);
    int n = tensor_broadcast_shape("where", cond, &ab, shape);
    Tensor *c = tensor_step(n, shape);
    k_ternary(K_WHERE, cond, a, b, c, false);
    ag_record(c, "where", where_backward, PARENTS(a, b), 2);
    c->saved = cond;
    return c;
}

/* ---- comparisons: 0/1 masks, constants (no gradient, never on the tape) ---------------------- */

Tensor *ag_gt(Tensor *a, Tensor *b) {
    return binary("gt", K_GT, a, b, NULL);
}
Tensor *ag_ge(Tensor *a, Tensor *b) {
    return binary("ge", K_GE, a, b, NULL);
}
Tensor *ag_lt(Tensor *a, Tensor *b) {
    return binary("lt", K_LT, a, b, NULL);
}
Tensor *ag_le(Tensor *a, Tensor *b) {
    return binary("le", K_LE, a, b, NULL);
}
Tensor *ag_eq(Tensor *a, Tensor *b) {
    return binary("eq", K_EQ, a, b, NULL);
}
Tensor *ag_ne(Tensor *a, Tensor *b) {
    return binary("ne", K_NE, a, b, NULL);
}

/* ---- c = dropout(x) = x m:  dx += g m -----------------------------------------------------------
 * m (x's shape, in c->saved) is 0 with probability p and 1 / (1 - p) otherwise: one uniform draw
 * per element, in row-major order, so a seed gives the same mask on every platform. */
static void dropout_backward(Tensor *c) {
    ag_accumulate_binary(c->parents[0], K_MUL, c->grad, c->saved, 0, 0);
}
Tensor *ag_dropout(Tensor *x, real p, bool training, nb_rng *rng) {
    if (!(p >= 0 && p <= 1)) nb_fail("dropout", "probability %g is not in [0, 1]", (double)p);
    if (!training || p == 0) return x;
    if (!rng) rng = nb_rng_global();
    Tensor *m = tensor_step(x->ndim, x->shape);
    if (p == 1) { /* everything dropped: no draws, as PyTorch */
        tensor_fill(m, 0);
    } else {
        real scale = 1 / (1 - p);
        for (int64_t i = 0; i < m->numel; i++)
            m->data[i] = nb_rng_uniform(rng) < (double)p ? 0 : scale;
    }
    Tensor *c = tensor_step(x->ndim, x->shape);
    k_binary(K_MUL, x, m, c, 0, 0, false);
    ag_record(c, "dropout", dropout_backward, PARENTS(x), 1);
    c->saved = m;
    c->sarg[0] = p;
    return c;
}
