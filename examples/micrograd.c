/* examples/micrograd.c: micrograd's own README example, in nabla. Every value is a 0-d tensor,
 * so each op below is one node of a scalar graph, as in micrograd's Value class.
 *
 *   ./build/micrograd      prints g, dg/da, dg/db; exits 1 unless they are micrograd's numbers
 *                          (24.7041, 138.8338, 645.5773) and pass a finite-difference check */
#include <math.h>
#include <stdio.h>

#include "autograd/gradcheck.h"

static Tensor *num(real v) { /* a constant: a step tensor, freed by ag_reset */
    return ag_full(0, NULL, v);
}

/* micrograd's expression of a and b (in[0], in[1]); its comments give the Python. */
static Tensor *g_of(Tensor *const *in, void *ctx) {
    (void)ctx;
    Tensor *a = in[0], *b = in[1];
    Tensor *c = ag_add(a, b);                                          /* c = a + b */
    Tensor *d = ag_add(ag_mul(a, b), ag_pow(b, 3));                    /* d = a * b + b**3 */
    c = ag_add(c, ag_add_scalar(c, 1));                                /* c += c + 1 */
    c = ag_add(c, ag_add(ag_add_scalar(c, 1), ag_neg(a)));             /* c += 1 + c + (-a) */
    d = ag_add(d, ag_add(ag_mul_scalar(d, 2), ag_relu(ag_add(b, a)))); /* d += d*2 + (b+a).relu() */
    d = ag_add(d, ag_add(ag_mul_scalar(d, 3), ag_relu(ag_sub(b, a)))); /* d += 3*d + (b-a).relu() */
    Tensor *e = ag_sub(c, d);                                          /* e = c - d */
    Tensor *f = ag_pow(e, 2);                                          /* f = e**2 */
    Tensor *g = ag_mul_scalar(f, 0.5);                                 /* g = f / 2.0 */
    return ag_add(g, ag_div(num(10), f));                              /* g += 10.0 / f */
}

static bool near(const char *what, double got, double want) {
    bool ok = fabs(got - want) <= 1e-4 * fabs(want);
    printf("%-6s %10.4f   (micrograd: %.4f) %s\n", what, got, want, ok ? "" : " WRONG");
    return ok;
}

int main(void) {
    Tensor *a = tensor_scalar(-4), *b = tensor_scalar(2);
    tensor_requires_grad(a, true);
    tensor_requires_grad(b, true);
    Tensor *in[2] = {a, b};

    Tensor *g = g_of(in, NULL);
    ag_backward(g);
    bool ok = near("g", tensor_item(g), 24.7041);
    ok &= near("dg/da", tensor_item(a->grad), 138.8338);
    ok &= near("dg/db", tensor_item(b->grad), 645.5773);
    printf("%lld ops on the tape\n", (long long)ag_tape_length());
    ag_reset();

    /* finite differences agree too (a + b and b - a stay far from relu's kink at 0) */
    ag_gradcheck_result r;
    ok &= ag_gradcheck(g_of, in, 2, NULL, NULL, &r);
    printf("gradient check: %s\n", r.message);

    tensor_free(a);
    tensor_free(b);
    return ok ? 0 : 1;
}
