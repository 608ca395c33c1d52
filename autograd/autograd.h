/* autograd/autograd.h: the define-by-run graph, backward, and every differentiable op.
 *
 *   // f(x, W, b) = sum(sigmoid(x W + b)^2), from examples/grad_basics.c
 *   static Tensor *f(Tensor *const *in, void *ctx) {
 *       (void)ctx;
 *       Tensor *y = ag_sigmoid(ag_add(ag_matmul(in[0], in[1]), in[2]));   // b broadcasts
 *       return ag_sum(ag_pow(y, 2));                                      // a scalar
 *   }
 *   ...
 *   Tensor *x = tensor_randn(NB_SHAPE(4, 3), NULL);   // kept tensors (tensor/tensor.h)
 *   Tensor *W = tensor_randn(NB_SHAPE(3, 2), NULL);
 *   Tensor *b = tensor_zeros(NB_SHAPE(2));
 *   tensor_requires_grad(W, true);
 *   tensor_requires_grad(b, true);
 *
 *   Tensor *in[3] = {x, W, b};
 *   Tensor *loss = f(in, NULL);                        // a step tensor
 *   ...
 *   ag_backward(loss);                                 // fills W->grad and b->grad
 *   tensor_print(W->grad, "df/dW");
 *   ag_reset();                                        // frees loss and the graph
 *
 * How it works. Every op computes its output and, when grad mode is on and some input requires
 * grad, records its inputs and its backward function on the output, and appends the output to
 * the tape. The tape is therefore already in topological order (an op's inputs exist before it),
 * so backward is one reverse walk over the tape, with no recursion: a chain of 100,000 ops
 * backpropagates in constant stack. Each backward function ADDS into its inputs' .grad, so a
 * tensor used several times receives the sum of its gradients, and leaf gradients accumulate
 * across backward calls until tensor_zero_grad (as in PyTorch).
 *
 * Gradients of step tensors are recomputed by each backward call; .grad of kept leaves persists.
 * Ownership: see tensor/tensor.h. Every ag_* op returns a step tensor.
 * Broadcasting follows NumPy for every binary op; backward sums over the broadcast dims.
 * Errors (shape mismatch, backward on a non-scalar without a gradient) go through nb_fail with
 * the op name, the shapes and the call site. */
#ifndef NB_AUTOGRAD_H
#define NB_AUTOGRAD_H

#include "tensor/kernels.h"
#include "tensor/tensor.h"

/* ---- graph and tape -------------------------------------------------------------------------- */

void tensor_requires_grad(Tensor *t, bool on); /* kept leaves only */
void tensor_zero_grad(Tensor *t);              /* sets t->grad to zeros (if it has one) */
/* Sets t->grad to NULL (PyTorch's zero_grad(set_to_none=True)); a kept tensor keeps the buffer,
 * so the next backward writes into it without zeroing it first and without allocating. */
void tensor_clear_grad(Tensor *t);

/* Backpropagates from a one-element tensor (its gradient is 1). */
#define ag_backward(t) ag_backward_at(__FILE__, __LINE__, (t), NULL)
/* Backpropagates from any tensor given d(loss)/d(t) of t's shape. */
#define ag_backward_with(t, g) ag_backward_at(__FILE__, __LINE__, (t), (g))
void ag_backward_at(const char *file, int line, Tensor *t, const Tensor *grad);

/* Ends a step: releases every step tensor and the graph. Memory is kept for the next step. */
void ag_reset(void);

/* Marks and releases part of the tape (a stack): everything made after the mark goes. */
typedef struct {
    arena_mark_t arena;
    int64_t tape_len;
} ag_mark_t;
ag_mark_t ag_mark(void);
void ag_release(ag_mark_t m);

/* Grad mode (PyTorch's torch.no_grad): returns the previous setting.
 *   bool prev = ag_set_grad_enabled(false); ... ; ag_set_grad_enabled(prev); */
bool ag_set_grad_enabled(bool on);
bool ag_is_grad_enabled(void);

int64_t ag_tape_length(void); /* number of recorded ops (for tests and the graph printer) */
Tensor *ag_tape_at(int64_t i);

/* Writes the graph that produced t in Graphviz dot form: each node's name or op and shape,
 * "grad" on those that require it and, once backward has run (before ag_reset or a zero_grad
 * that clears them), "|grad| <2-norm>" on every node that holds a gradient. */
void ag_write_dot(FILE *f, const Tensor *t);

/* Backward trace, for following a reverse walk by eye: with f non-NULL, every backward prints
 * to f one line per op it runs (tape index, op, output shape, |d loss / d output|) followed by
 * the op's inputs and the norms of the gradients they hold so far. NULL (the default) turns it
 * off. Returns the previous stream. The tape is per process, and so is this setting. */
FILE *ag_set_backward_trace(FILE *f);

/* ---- step-tensor constants for forward code -------------------------------------------------- */

Tensor *ag_zeros(int ndim, const int64_t *shape);
Tensor *ag_full(int ndim, const int64_t *shape, real value);
Tensor *ag_randn(int ndim, const int64_t *shape, nb_rng *rng); /* rng NULL: global */
Tensor *ag_rand(int ndim, const int64_t *shape, nb_rng *rng);
Tensor *ag_constant(int ndim, const int64_t *shape, const real *values); /* copies */

/* ---- element-wise (autograd/ops_elementwise.c) ----------------------------------------------- */

Tensor *ag_add(Tensor *a, Tensor *b); /* broadcast */
Tensor *ag_sub(Tensor *a, Tensor *b);
Tensor *ag_mul(Tensor *a, Tensor *b);
Tensor *ag_div(Tensor *a, Tensor *b);
Tensor *ag_neg(Tensor *a);
Tensor *ag_add_scalar(Tensor *a, real s);
Tensor *ag_mul_scalar(Tensor *a, real s);
Tensor *ag_exp(Tensor *a);
Tensor *ag_log(Tensor *a);
Tensor *ag_pow(Tensor *a, real p);
Tensor *ag_sqrt(Tensor *a);
Tensor *ag_abs(Tensor *a);
Tensor *ag_clamp(Tensor *a, real lo, real hi); /* gradient passes where lo <= a <= hi */
Tensor *ag_relu(Tensor *a);                    /* gradient 0 at a == 0 (as PyTorch) */
Tensor *ag_sigmoid(Tensor *a);
Tensor *ag_tanh(Tensor *a);
Tensor *ag_softplus(Tensor *a);

/* ---- reductions (autograd/ops_reduce.c) ------------------------------------------------------ */
/* dims: list of n dims (negative counts from the end); keepdim keeps them with size 1. */

Tensor *ag_sum(Tensor *a);  /* all elements -> scalar (ndim 0) */
Tensor *ag_mean(Tensor *a); /* all elements -> scalar */
Tensor *ag_sum_dims(Tensor *a, const int *dims, int n, bool keepdim);
Tensor *ag_mean_dims(Tensor *a, const int *dims, int n, bool keepdim);
Tensor *ag_max(Tensor *a, int dim, bool keepdim);       /* values; grad to the first argmax */
Tensor *ag_logsumexp(Tensor *a, int dim, bool keepdim); /* stable */
Tensor *ag_softmax(Tensor *a, int dim);
Tensor *ag_log_softmax(Tensor *a, int dim);

/* ---- matmul (autograd/ops_matmul.c) ---------------------------------------------------------- */

/* a [..., M, K] @ b [..., K, N] -> [..., M, N]; batch dims broadcast; 2-D is the common case.
 * Transposed operands (e.g. ag_transpose(W, 0, 1)) are read through their strides, not copied. */
Tensor *ag_matmul(Tensor *a, Tensor *b);

/* x [R, I], W [O, I], b [O] or NULL -> x W^T + b [R, O]: one fused op (what nn_linear uses);
 * the same values and gradients as the composite up to rounding (the bias is the gemm's starting
 * value), with fewer passes over memory. */
Tensor *ag_linear(Tensor *x, Tensor *W, Tensor *b);

/* ---- views and joins (autograd/ops_view.c) --------------------------------------------------- */

Tensor *ag_reshape(Tensor *a, int ndim,
                   const int64_t *shape); /* view if possible, else copy; -1 inferred */
Tensor *ag_view(Tensor *a, int ndim, const int64_t *shape); /* view or fail */
Tensor *ag_transpose(Tensor *a, int d0, int d1);
Tensor *ag_permute(Tensor *a, const int *dims); /* dims has a->ndim entries */
Tensor *ag_narrow(Tensor *a, int dim, int64_t start, int64_t length);
Tensor *ag_expand(Tensor *a, int ndim,
                  const int64_t *shape); /* size-1 dims to any size; -1 keeps */
Tensor *ag_squeeze(Tensor *a, int dim);
Tensor *ag_unsqueeze(Tensor *a, int dim);
Tensor *ag_contiguous(Tensor *a); /* a itself if already contiguous */
Tensor *ag_detach(Tensor *a);     /* same data, no graph, no grad */
Tensor *ag_concat(Tensor *const *ts, int n, int dim);
/* Splits a along dim into n pieces of the given sizes (summing to the dim's size); views. */
void ag_split(Tensor *a, const int64_t *sizes, int n, int dim, Tensor **out);
/* Splits a along dim into chunks of ceil(size / n) (the last smaller), as torch.chunk: returns
 * how many it made (at most n) and sets the rest of out[0..n) to NULL. */
int ag_chunk(Tensor *a, int n, int dim, Tensor **out);

/* ---- element-wise, more (autograd/ops_elementwise.c) -----------------------------------------
 * PyTorch's definitions; gelu is the exact (erf) form; maximum and minimum propagate NaN. */

Tensor *ag_gelu(Tensor *a);            /* a * Phi(a), Phi the standard normal CDF */
Tensor *ag_silu(Tensor *a);            /* a * sigmoid(a) */
Tensor *ag_elu(Tensor *a, real alpha); /* a > 0 ? a : alpha * (exp(a) - 1) */
Tensor *ag_sin(Tensor *a);
Tensor *ag_cos(Tensor *a);
Tensor *ag_maximum(Tensor *a, Tensor *b); /* broadcast; ties send half the gradient to each */
Tensor *ag_minimum(Tensor *a, Tensor *b); /* broadcast; ties as ag_maximum */
/* cond != 0 picks a, else b; all three broadcast. No gradient flows to cond. */
Tensor *ag_where(Tensor *cond, Tensor *a, Tensor *b);
/* Comparisons: 0/1 masks of the broadcast shape; no gradient (never on the tape). */
Tensor *ag_gt(Tensor *a, Tensor *b);
Tensor *ag_ge(Tensor *a, Tensor *b);
Tensor *ag_lt(Tensor *a, Tensor *b);
Tensor *ag_le(Tensor *a, Tensor *b);
Tensor *ag_eq(Tensor *a, Tensor *b);
Tensor *ag_ne(Tensor *a, Tensor *b);
/* Inverted dropout: in training each element is zeroed with probability p and the rest are
 * scaled by 1 / (1 - p) (p == 1: all zeros); with training false or p == 0 it returns x itself
 * (which may be a kept tensor). Fails unless 0 <= p <= 1. The mask takes one uniform draw per
 * element from rng (NULL: the global generator), so a seed fixes it; backward reuses it. */
Tensor *ag_dropout(Tensor *x, real p, bool training, nb_rng *rng);

/* ---- statistics and scans (autograd/ops_reduce.c) ---------------------------------------------
 * dims NULL or n == 0: over every element. correction 1 is Bessel's (torch.var's default).
 * sum((a - mean)^2) / (count - correction); a denominator <= 0 gives inf or NaN, as PyTorch.
 * std's gradient is 0 where std is 0 (as PyTorch), not NaN. */

Tensor *ag_var(Tensor *a, const int *dims, int n, int correction, bool keepdim);
Tensor *ag_std(Tensor *a, const int *dims, int n, int correction, bool keepdim);
Tensor *ag_cumsum(Tensor *a, int dim); /* same shape; running sum along dim, in double */
/* Indices of the first maximum (minimum) along dim, row-major over the reduced shape (the shape
 * without dim): out has numel / shape[dim] entries (1 for a scalar). A NaN counts as both the
 * maximum and the minimum (as PyTorch). Fails on an empty dim. Not differentiable: int64_t. */
void tensor_argmax(const Tensor *a, int dim, int64_t *out);
void tensor_argmin(const Tensor *a, int dim, int64_t *out);

/* ---- joins and lookups (autograd/ops_index.c) ------------------------------------------------ */

/* n tensors of one shape -> a new dim at `dim` (0 <= dim <= ndim; negative counts from the end). */
Tensor *ag_stack(Tensor *const *ts, int n, int dim);
/* weight [V, E]; ids: the numel of `shape` indices in [0, V), row-major -> shape + [E] (ndim 0:
 * one id -> [E]). Rows of weight gather; backward scatter-adds into weight's gradient in id
 * order (deterministic). ids are copied. Fails naming the first id out of range and its place. */
Tensor *ag_embedding(Tensor *weight, int ndim, const int64_t *shape, const int64_t *ids);
/* ids [n] in [0, num_classes) -> a kept [n, num_classes] tensor of 0/1 rows (caller frees).
 * Fails naming the first id out of range. */
Tensor *tensor_one_hot(const int64_t *ids, int64_t n, int64_t num_classes);

/* ---- normalization (autograd/ops_norm.c) ----------------------------------------------------- */

/* Normalizes over the last normalized_ndim dims (biased variance), then * w + b; w and b have
 * those dims' shape, or are NULL. */
Tensor *ag_layer_norm(Tensor *x, int normalized_ndim, Tensor *w, Tensor *b, real eps);
/* x [N, C] or [N, C, H, W] (or [N, C, L]); statistics per channel C. Training: batch statistics
 * (biased for normalizing), and running_mean/var ([C], or NULL) updated in place with momentum,
 * the variance unbiased, as PyTorch; fails when a channel has 1 value (N * H * W == 1).
 * Evaluation: normalizes with the running statistics (required). w, b [C] or NULL. */
Tensor *ag_batch_norm(Tensor *x, Tensor *running_mean, Tensor *running_var, Tensor *w, Tensor *b,
                      bool training, real momentum, real eps);

/* ---- convolution, pooling, upsampling (autograd/ops_conv.c), NCHW ----------------------------
 * Output size per spatial dim: (in + 2 pad - dilation (k - 1) - 1) / stride + 1 for conv and
 * pooling; (in - 1) stride - 2 pad + dilation (k - 1) + output_padding + 1 for the transpose. */

typedef struct {
    int stride[2], padding[2], dilation[2], output_padding[2], groups;
} nb_conv2d_opts;
/* Stride 1, padding 0, dilation 1, output_padding 0, groups 1 (PyTorch's defaults). */
nb_conv2d_opts nb_conv2d_defaults(void);

/* x [N, C, H, W], w [O, C/groups, kh, kw], b [O] or NULL -> [N, O, H', W']. */
Tensor *ag_conv2d(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o);
/* x [N, C, L], w [O, C/groups, k], b [O] or NULL -> [N, O, L']; uses index 0 of each option. */
Tensor *ag_conv1d(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o);
/* x [N, C, H, W], w [C, O/groups, kh, kw], b [O] or NULL -> [N, O, H', W']: conv2d's gradient
 * with respect to its input, as torch.nn.functional.conv_transpose2d. */
Tensor *ag_conv_transpose2d(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o);
/* ag_relu(ag_conv2d(...)) and ag_relu(ag_conv_transpose2d(...)) as one op, the same bits, without
 * keeping the convolution's output next to the ReLU's (nn's Sequential fuses a conv followed by
 * a ReLU this way). */
Tensor *ag_conv2d_relu(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o);
Tensor *ag_conv_transpose2d_relu(Tensor *x, Tensor *w, Tensor *b, nb_conv2d_opts o);
/* x [N, C, H, W] -> [N, C, H', W']; padding pads with -inf (max) or 0 (avg, counted). */
Tensor *ag_max_pool2d(Tensor *x, int kernel, int stride, int padding);
Tensor *ag_avg_pool2d(Tensor *x, int kernel, int stride, int padding); /* count_include_pad */
Tensor *ag_upsample_nearest2d(Tensor *x, int scale); /* [N, C, H, W] -> [N, C, sH, sW] */

/* ---- for writing new ops (autograd/graph.c) ---------------------------------------------------
 * An op makes its output with tensor_step, computes it, then calls ag_record to attach its
 * inputs and backward function (which does nothing if no input requires grad or grad mode is
 * off). A backward function reads out->grad and adds into ag_grad(parent) for each parent that
 * requires grad. ag_record also fails on an input that ag_reset released (tensor_check_live);
 * an op that returns without ag_record checks its inputs itself, and a view op takes its
 * output's header from arena_header, never from arena_alloc. */
void ag_record(Tensor *out, const char *op, ag_backward_fn backward, Tensor *const *parents, int n);
Tensor *ag_grad(Tensor *t); /* t->grad, made (zeroed) on first use */
/* t->grad for a backward that is about to write it: when *fresh comes back true the gradient
 * was just made and is NOT zeroed, so the caller must store (not add) every element. */
Tensor *ag_grad_begin(Tensor *t, bool *fresh);
/* Adds g into parent's gradient: summed over the dims where the parent was broadcast, or
 * broadcast itself where g is the smaller (a reduction's backward). */
void ag_accumulate(Tensor *parent, const Tensor *g);
/* Adds op(g) (or op(g, other)) into parent's gradient, summing over any broadcast dims; nothing
 * happens if the parent doesn't require grad. g and other have the output's shape or broadcast
 * to it. */
void ag_accumulate_unary(Tensor *parent, k_unary_op op, const Tensor *g, real p0, real p1);
void ag_accumulate_binary(Tensor *parent, k_binary_op op, const Tensor *g, const Tensor *other,
                          real p0, real p1);

/* ---- call sites: outside the library, the ops that can fail on shapes report the caller's
 * file and line (tensor/base.h, NB_AT). Variadic, so arguments such as NB_SHAPE(2, 3) or a
 * compound literal (int[]){0, 1} pass through whole. ---------------------------------------- */
#ifndef NB_INTERNAL
#define ag_add(...)                   NB_AT(Tensor *, ag_add(__VA_ARGS__))
#define ag_sub(...)                   NB_AT(Tensor *, ag_sub(__VA_ARGS__))
#define ag_mul(...)                   NB_AT(Tensor *, ag_mul(__VA_ARGS__))
#define ag_div(...)                   NB_AT(Tensor *, ag_div(__VA_ARGS__))
#define ag_clamp(...)                 NB_AT(Tensor *, ag_clamp(__VA_ARGS__))
#define ag_sum_dims(...)              NB_AT(Tensor *, ag_sum_dims(__VA_ARGS__))
#define ag_mean_dims(...)             NB_AT(Tensor *, ag_mean_dims(__VA_ARGS__))
#define ag_max(...)                   NB_AT(Tensor *, ag_max(__VA_ARGS__))
#define ag_logsumexp(...)             NB_AT(Tensor *, ag_logsumexp(__VA_ARGS__))
#define ag_softmax(...)               NB_AT(Tensor *, ag_softmax(__VA_ARGS__))
#define ag_log_softmax(...)           NB_AT(Tensor *, ag_log_softmax(__VA_ARGS__))
#define ag_matmul(...)                NB_AT(Tensor *, ag_matmul(__VA_ARGS__))
#define ag_linear(...)                NB_AT(Tensor *, ag_linear(__VA_ARGS__))
#define ag_reshape(...)               NB_AT(Tensor *, ag_reshape(__VA_ARGS__))
#define ag_view(...)                  NB_AT(Tensor *, ag_view(__VA_ARGS__))
#define ag_transpose(...)             NB_AT(Tensor *, ag_transpose(__VA_ARGS__))
#define ag_permute(...)               NB_AT(Tensor *, ag_permute(__VA_ARGS__))
#define ag_narrow(...)                NB_AT(Tensor *, ag_narrow(__VA_ARGS__))
#define ag_expand(...)                NB_AT(Tensor *, ag_expand(__VA_ARGS__))
#define ag_squeeze(...)               NB_AT(Tensor *, ag_squeeze(__VA_ARGS__))
#define ag_unsqueeze(...)             NB_AT(Tensor *, ag_unsqueeze(__VA_ARGS__))
#define ag_concat(...)                NB_AT(Tensor *, ag_concat(__VA_ARGS__))
#define ag_maximum(...)               NB_AT(Tensor *, ag_maximum(__VA_ARGS__))
#define ag_minimum(...)               NB_AT(Tensor *, ag_minimum(__VA_ARGS__))
#define ag_where(...)                 NB_AT(Tensor *, ag_where(__VA_ARGS__))
#define ag_gt(...)                    NB_AT(Tensor *, ag_gt(__VA_ARGS__))
#define ag_ge(...)                    NB_AT(Tensor *, ag_ge(__VA_ARGS__))
#define ag_lt(...)                    NB_AT(Tensor *, ag_lt(__VA_ARGS__))
#define ag_le(...)                    NB_AT(Tensor *, ag_le(__VA_ARGS__))
#define ag_eq(...)                    NB_AT(Tensor *, ag_eq(__VA_ARGS__))
#define ag_ne(...)                    NB_AT(Tensor *, ag_ne(__VA_ARGS__))
#define ag_dropout(...)               NB_AT(Tensor *, ag_dropout(__VA_ARGS__))
#define ag_var(...)                   NB_AT(Tensor *, ag_var(__VA_ARGS__))
#define ag_std(...)                   NB_AT(Tensor *, ag_std(__VA_ARGS__))
#define ag_cumsum(...)                NB_AT(Tensor *, ag_cumsum(__VA_ARGS__))
#define ag_stack(...)                 NB_AT(Tensor *, ag_stack(__VA_ARGS__))
#define ag_embedding(...)             NB_AT(Tensor *, ag_embedding(__VA_ARGS__))
#define ag_layer_norm(...)            NB_AT(Tensor *, ag_layer_norm(__VA_ARGS__))
#define ag_batch_norm(...)            NB_AT(Tensor *, ag_batch_norm(__VA_ARGS__))
#define ag_conv2d(...)                NB_AT(Tensor *, ag_conv2d(__VA_ARGS__))
#define ag_conv1d(...)                NB_AT(Tensor *, ag_conv1d(__VA_ARGS__))
#define ag_conv_transpose2d(...)      NB_AT(Tensor *, ag_conv_transpose2d(__VA_ARGS__))
#define ag_conv2d_relu(...)           NB_AT(Tensor *, ag_conv2d_relu(__VA_ARGS__))
#define ag_conv_transpose2d_relu(...) NB_AT(Tensor *, ag_conv_transpose2d_relu(__VA_ARGS__))
#define ag_max_pool2d(...)            NB_AT(Tensor *, ag_max_pool2d(__VA_ARGS__))
#define ag_avg_pool2d(...)            NB_AT(Tensor *, ag_avg_pool2d(__VA_ARGS__))
#define ag_upsample_nearest2d(...)    NB_AT(Tensor *, ag_upsample_nearest2d(__VA_ARGS__))
#endif

/* The ops that cannot fail on shapes are wrapped too, so a step tensor remembers the user's line
 * that made it, which a use after ag_reset reports (tensor_check_live in tensor/tensor.h). */
#ifndef NB_INTERNAL
#define ag_zeros(...)      NB_AT(Tensor *, ag_zeros(__VA_ARGS__))
#define ag_full(...)       NB_AT(Tensor *, ag_full(__VA_ARGS__))
#define ag_randn(...)      NB_AT(Tensor *, ag_randn(__VA_ARGS__))
#define ag_rand(...)       NB_AT(Tensor *, ag_rand(__VA_ARGS__))
#define ag_constant(...)   NB_AT(Tensor *, ag_constant(__VA_ARGS__))
#define ag_neg(...)        NB_AT(Tensor *, ag_neg(__VA_ARGS__))
#define ag_add_scalar(...) NB_AT(Tensor *, ag_add_scalar(__VA_ARGS__))
#define ag_mul_scalar(...) NB_AT(Tensor *, ag_mul_scalar(__VA_ARGS__))
#define ag_exp(...)        NB_AT(Tensor *, ag_exp(__VA_ARGS__))
#define ag_log(...)        NB_AT(Tensor *, ag_log(__VA_ARGS__))
#define ag_pow(...)        NB_AT(Tensor *, ag_pow(__VA_ARGS__))
#define ag_sqrt(...)       NB_AT(Tensor *, ag_sqrt(__VA_ARGS__))
#define ag_abs(...)        NB_AT(Tensor *, ag_abs(__VA_ARGS__))
#define ag_relu(...)       NB_AT(Tensor *, ag_relu(__VA_ARGS__))
#define ag_sigmoid(...)    NB_AT(Tensor *, ag_sigmoid(__VA_ARGS__))
#define ag_tanh(...)       NB_AT(Tensor *, ag_tanh(__VA_ARGS__))
#define ag_softplus(...)   NB_AT(Tensor *, ag_softplus(__VA_ARGS__))
#define ag_gelu(...)       NB_AT(Tensor *, ag_gelu(__VA_ARGS__))
#define ag_silu(...)       NB_AT(Tensor *, ag_silu(__VA_ARGS__))
#define ag_elu(...)        NB_AT(Tensor *, ag_elu(__VA_ARGS__))
#define ag_sin(...)        NB_AT(Tensor *, ag_sin(__VA_ARGS__))
#define ag_cos(...)        NB_AT(Tensor *, ag_cos(__VA_ARGS__))
#define ag_sum(...)        NB_AT(Tensor *, ag_sum(__VA_ARGS__))
#define ag_mean(...)       NB_AT(Tensor *, ag_mean(__VA_ARGS__))
#define ag_contiguous(...) NB_AT(Tensor *, ag_contiguous(__VA_ARGS__))
#define ag_detach(...)     NB_AT(Tensor *, ag_detach(__VA_ARGS__))
#endif

#endif
