/* autograd/gradcheck.h: check any function's gradients against finite differences.
 *
 *   static Tensor *f(Tensor *const *in, void *ctx) {             // f(x, W) = tanh(x W)
 *       (void)ctx;
 *       return ag_tanh(ag_matmul(in[0], in[1]));
 *   }
 *   ...
 *   Tensor *in[2] = {x, W};                                      // kept, requires_grad
 *   ag_gradcheck_result r;
 *   if (!ag_gradcheck(f, in, 2, NULL, NULL, &r)) puts(r.message);
 *
 * How it checks (after PyTorch's gradcheck): the output y = f(inputs) is reduced to a scalar
 * L = sum(y * w) with a fixed random w, so every output element matters. The analytic gradient
 * is backward from y with upstream w; the numeric one is (L(x + e) - L(x - e)) / 2e per input
 * element, with L summed in double. An element passes when |analytic - numeric| <= atol +
 * rtol * |numeric|. It also checks that backward run twice gives identical gradients (no
 * hidden state), that a second backward without clearing adds to the gradients (2x, within the
 * same tolerance), that a zero upstream gradient gives zero gradients, and, by filling the
 * reused gradient buffers with NaN first, that backward writes every element it owns.
 *
 * float32 central differences are coarse: the defaults are eps 1e-3, atol 5e-3, rtol 1e-2 in a
 * float build and PyTorch's eps 1e-6, atol 1e-5, rtol 1e-3 in a double build (make DOUBLE=1);
 * `make test` runs the suite in both. Keep inputs away from kinks (relu at 0, abs at 0, clamp
 * bounds) by more than eps, as ggml's tests do.
 *
 * Inputs must be kept tensors; those with requires_grad are checked. Their .grad is overwritten.
 * The function may make any step tensors; they are released before ag_gradcheck returns. */
#ifndef NB_GRADCHECK_H
#define NB_GRADCHECK_H

#include "autograd/autograd.h"

typedef Tensor *(*ag_fn)(Tensor *const *inputs, void *ctx);

typedef struct {
    double eps, atol, rtol;
} ag_gradcheck_opts;

typedef struct {
    bool ok;
    double max_abs_err; /* largest |analytic - numeric| seen */
    int input;          /* first failing input, or -1 */
    int64_t index;      /* its flat element index */
    double analytic, numeric;
    char message[512]; /* what failed, or a one-line summary */
} ag_gradcheck_result;

ag_gradcheck_opts ag_gradcheck_defaults(void); /* per element type, as above */

/* Returns true when every check passes. opts NULL: defaults. */
bool ag_gradcheck(ag_fn f, Tensor *const *inputs, int n, void *ctx, const ag_gradcheck_opts *opts,
                  ag_gradcheck_result *res);

#endif
