/* tensor/kernels.h: element-wise and reduction kernels over strided tensors.
 *
 *   k_binary(K_ADD, a, b, out, 0, 0, false);   // out = a + b, a and b broadcast to out's shape
 *   k_sum_to(g, bias_grad, true);               // bias_grad += g summed over broadcast dims
 *
 * These compute; they record nothing for autograd (autograd/ops_*.c does). Every kernel accepts
 * any strides, including 0, for its inputs and any non-overlapping strides for its output; dims
 * are merged where the layout allows, and a row whose strides are all 1 runs a contiguous loop
 * the compiler vectorizes. With acc true the result is added into out instead of stored.
 * Shapes that don't fit are reported through nb_fail. */
#ifndef NB_KERNELS_H
#define NB_KERNELS_H

#include "tensor/tensor.h"

typedef enum {
    K_COPY,     /* a */
    K_NEG,      /* -a */
    K_EXP,      /* exp(a) */
    K_LOG,      /* log(a) */
    K_SQRT,     /* sqrt(a) */
    K_ABS,      /* |a| */
    K_RELU,     /* max(a, 0) */
    K_SIGMOID,  /* 1 / (1 + exp(-a)), stable for large |a| */
    K_TANH,     /* tanh(a) */
    K_SOFTPLUS, /* log(1 + exp(a)), stable */
    K_POW,      /* a ^ p0 */
    K_CLAMP,    /* min(max(a, p0), p1) */
    K_AFFINE,   /* a * p0 + p1 */
} k_unary_op;

typedef enum {
    K_ADD,          /* a + b */
    K_SUB,          /* a - b */
    K_MUL,          /* a * b */
    K_DIV,          /* a / b */
    K_NEG_DIV,      /* -(a / b) */
    K_RELU_BWD,     /* a * (b > 0) */
    K_SIGMOID_BWD,  /* a * b * (1 - b), b = sigmoid output */
    K_TANH_BWD,     /* a * (1 - b * b), b = tanh output */
    K_SOFTPLUS_BWD, /* a * sigmoid(b), b = input */
    K_POW_BWD,      /* a * p0 * b ^ (p0 - 1), b = input */
    K_CLAMP_BWD,    /* a * (p0 <= b <= p1), b = input */
    K_ABS_BWD,      /* a * sign(b) */
    K_SQRT_BWD,     /* a * 0.5 / b, b = sqrt output */
    K_EXP_SUB,      /* exp(a - b) */
} k_binary_op;

/* out (op)= f(a). a broadcasts to out's shape. */
void k_unary(k_unary_op op, const Tensor *a, Tensor *out, real p0, real p1, bool acc);

/* out (op)= f(a, b). a and b broadcast to out's shape. */
void k_binary(k_binary_op op, const Tensor *a, const Tensor *b, Tensor *out, real p0, real p1,
              bool acc);

/* out (+)= a summed over the dims where out has size 1 (or that out lacks on the left): the
 * reduction of a broadcast. Summation order is fixed (row-major), so results are reproducible;
 * whole-row sums are accumulated in double. */
void k_sum_to(const Tensor *a, Tensor *out, bool acc);

/* The sum of a[0..n) in double: eight running sums (element i goes to sum i % 8, in increasing
 * i), added pairwise at the end. The order depends only on n, so the result is the same bits on
 * any thread count; the eight independent chains vectorize and don't wait on one another. */
double k_dsum(const real *a, int64_t n);

/* vals = max of a over dim (keepdim layout: vals has size 1 at dim), idx = the first argmax
 * (row-major over vals, may be NULL). */
void k_max_dim(const Tensor *a, int dim, Tensor *vals, int64_t *idx);

#endif
