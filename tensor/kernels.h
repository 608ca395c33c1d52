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

/* ---- the element-wise ops: one table row each --------------------------------------------------
 * X(NAME, formula): the formula is what the kernel computes per element, written in the inputs
 * (x for unary ops; a, b for binary; a, b, c for ternary) and the scalars p0, p1. The rows make
 * the enums here and, in tensor/kernels.c, every per-op loop, so adding an op is adding a row.
 * Helpers the formulas name live in kernels.c (sigmoid, gelu_grad, ...; RF(f) is libm's f for
 * `real`) and tensor/fastmath.h (nb_exp, nb_normal_cdf, ...).
 * "_BWD" rows are gradients: a is the upstream gradient, b the op's input (or output, as said). */
// clang-format off
#define K_UNARY_OPS(X)                                                                             \
    X(K_COPY,     x)                                                                               \
    X(K_NEG,      -x)                                                                              \
    X(K_EXP,      nb_exp(x))                                                                       \
    X(K_LOG,      nb_log(x))                                                                       \
    X(K_SQRT,     RF(sqrt)(x))                                                                     \
    X(K_ABS,      RF(fabs)(x))                                                                     \
    X(K_RELU,     x > 0 ? x : 0)                                                                   \
    X(K_SIGMOID,  sigmoid(x))                  /* stable for large |x| */                          \
    X(K_TANH,     nb_tanh(x))                                                                      \
    X(K_SOFTPLUS, softplus(x))                 /* log(1 + exp(x)), stable */                       \
    X(K_POW,      pow_scalar(x, p0))           /* x ^ p0 */                                        \
    X(K_CLAMP,    x < p0 ? p0 : (x > p1 ? p1 : x))                                                 \
    X(K_AFFINE,   x * p0 + p1)                                                                     \
    X(K_GELU,     x * nb_normal_cdf(x))        /* exact (erf) form */                              \
    X(K_SILU,     x * sigmoid(x))                                                                  \
    X(K_ELU,      x > 0 ? x : p0 * nb_expm1(x))                                                    \
    X(K_SIN,      nb_sin(x))                   /* libm's for rows with |x| > 2^22 */               \
    X(K_COS,      nb_cos(x))

#define K_BINARY_OPS(X)                                                                            \
    X(K_ADD,          a + b)                                                                       \
    X(K_SUB,          a - b)                                                                       \
    X(K_MUL,          a * b)                                                                       \
    X(K_DIV,          a / b)                                                                       \
    X(K_NEG_DIV,      -(a / b))                                                                    \
    X(K_RELU_BWD,     b > 0 ? a : 0)                                                               \
    X(K_SIGMOID_BWD,  a * b * (1 - b))                  /* b = sigmoid output */                   \
    X(K_TANH_BWD,     a * (1 - b * b))                  /* b = tanh output */                      \
    X(K_SOFTPLUS_BWD, a * sigmoid(b))                                                              \
    X(K_POW_BWD,      a * pow_grad(b, p0))              /* 0 when p0 == 0, as PyTorch */           \
    X(K_CLAMP_BWD,    (b >= p0 && b <= p1) ? a : 0)                                                \
    X(K_ABS_BWD,      a * (real)((b > 0) - (b < 0)))                                               \
    X(K_SQRT_BWD,     a * (real)0.5 / b)                /* b = sqrt output */                      \
    X(K_EXP_SUB,      nb_exp(a - b))                                                               \
    X(K_GELU_BWD,     a * gelu_grad(b))                                                            \
    X(K_SILU_BWD,     a * silu_grad(b))                                                            \
    X(K_ELU_BWD,      b > 0 ? a : a * p0 * nb_exp(b))   /* p0 = alpha */                           \
    X(K_SIN_BWD,      a * nb_cos(b))                    /* as K_SIN */                             \
    X(K_COS_BWD,      -a * nb_sin(b))                                                              \
    X(K_MAXIMUM,      (a > b || a != a) ? a : b)        /* NaN in either gives NaN */              \
    X(K_MINIMUM,      (a < b || a != a) ? a : b)                                                   \
    X(K_GT,           (real)(a > b))                                                               \
    X(K_GE,           (real)(a >= b))                                                              \
    X(K_LT,           (real)(a < b))                                                               \
    X(K_LE,           (real)(a <= b))                                                              \
    X(K_EQ,           (real)(a == b))                                                              \
    X(K_NE,           (real)(a != b))                                                              \
    X(K_PICK,         b != 0 ? a : 0)                   /* a where b != 0 */                       \
    X(K_PICK_NOT,     b != 0 ? 0 : a)                   /* a where b == 0 */

#define K_TERNARY_OPS(X)                                                                           \
    X(K_WHERE,        a != 0 ? b : c)                                                              \
    X(K_MAXIMUM_BWD,  b == c ? a * (real)0.5 : (b < c ? 0 : a))  /* b this input, c the other */  \
    X(K_MINIMUM_BWD,  b == c ? a * (real)0.5 : (b > c ? 0 : a))
// clang-format on

#define K_ENUM_ROW(name, formula) name,
typedef enum { K_UNARY_OPS(K_ENUM_ROW) } k_unary_op;
typedef enum { K_BINARY_OPS(K_ENUM_ROW) } k_binary_op;
typedef enum { K_TERNARY_OPS(K_ENUM_ROW) } k_ternary_op;
#undef K_ENUM_ROW

/* out (op)= f(a). a broadcasts to out's shape. */
void k_unary(k_unary_op op, const Tensor *a, Tensor *out, real p0, real p1, bool acc);

/* out (op)= f(a, b). a and b broadcast to out's shape. */
void k_binary(k_binary_op op, const Tensor *a, const Tensor *b, Tensor *out, real p0, real p1,
              bool acc);

/* out (op)= f(a, b, c). a, b and c broadcast to out's shape. */
void k_ternary(k_ternary_op op, const Tensor *a, const Tensor *b, const Tensor *c, Tensor *out,
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
