/* examples/custom_op.c: a new differentiable op written outside the library with ag_record,
 * then checked with ag_gradcheck (finite differences, accumulation, no hidden state).
 *
 *   hypot(a, b) = sqrt(a^2 + b^2), element-wise, a and b of one shape
 *   d hypot / d a = a / hypot,   d hypot / d b = b / hypot
 *
 * The recipe (autograd/autograd.h, "for writing new ops"): the forward makes its output with
 * tensor_step, computes it, then calls ag_record with its inputs and its backward function; the
 * backward reads out->grad and ADDS into ag_grad(parent) for each parent that requires grad.
 *
 *   ./build/custom_op    exits 1 if the op's values or gradients are wrong */
#include <math.h>
#include <stdio.h>

#include "autograd/gradcheck.h"

/* ---- the op ------------------------------------------------------------------------------- */

/* out [...] = hypot(a, b); out->parents = {a, b} (contiguous, see my_hypot). */
static void hypot_backward(Tensor *out) {
    const Tensor *g = out->grad; /* d loss / d out, contiguous, out's shape */
    for (int k = 0; k < 2; k++) {
        Tensor *p = out->parents[k];
        if (!p->requires_grad) continue; /* e.g. a constant input */
        Tensor *pg = ag_grad(p);         /* zeroed on first use; we add into it */
        for (int64_t i = 0; i < out->numel; i++) {
            real h = out->data[i], v = p->data[p->offset + i];
            pg->data[pg->offset + i] += g->data[g->offset + i] * (h > 0 ? v / h : 0);
        }
    }
}

static Tensor *my_hypot(Tensor *a, Tensor *b) {
    if (!tensor_same_shape(a, b)) {
        char s1[128], s2[128];
        nb_fail("my_hypot", "shapes %s and %s differ", nb_shape_str(s1, a->ndim, a->shape),
                nb_shape_str(s2, b->ndim, b->shape));
    }
    /* Views may have any strides; a contiguous copy (itself a recorded op, so gradients flow
     * back through it) lets both loops index data[offset + i]. */
    a = ag_contiguous(a);
    b = ag_contiguous(b);
    Tensor *out = tensor_step(a->ndim, a->shape);
    for (int64_t i = 0; i < out->numel; i++) {
        double x = a->data[a->offset + i], y = b->data[b->offset + i];
        out->data[i] = (real)sqrt(x * x + y * y);
    }
    ag_record(out, "hypot", hypot_backward, (Tensor *[]){a, b}, 2);
    return out;
}

/* ---- checking it ------------------------------------------------------------------------- */

/* f(a, b) = hypot(a, b^T) * a: a [3, 4], b [4, 3] read through a transposed view, and a used
 * twice, so the check covers strided inputs and accumulation. */
static Tensor *f(Tensor *const *in, void *ctx) {
    (void)ctx;
    return ag_mul(my_hypot(in[0], ag_transpose(in[1], 0, 1)), in[0]);
}

int main(void) {
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    Tensor *a = tensor_randn(NB_SHAPE(3, 4), &rng), *b = tensor_randn(NB_SHAPE(4, 3), &rng);
    tensor_requires_grad(a, true);
    tensor_requires_grad(b, true);

    /* values: 3-4-5 */
    Tensor *three = tensor_scalar(3), *four = tensor_scalar(4);
    double five = tensor_item(my_hypot(three, four));
    bool ok = five == 5;
    printf("hypot(3, 4) = %g\n", five);
    ag_reset();

    /* gradients of the composite, against finite differences */
    Tensor *in[2] = {a, b};
    ag_gradcheck_result r;
    ok &= ag_gradcheck(f, in, 2, NULL, NULL, &r);
    printf("gradient check of hypot(a, b^T) * a: %s\n", r.message);

    /* and against the same function built from library ops */
    Tensor *mine = f(in, NULL);
    Tensor *lib = ag_mul(ag_sqrt(ag_add(ag_pow(a, 2), ag_pow(ag_transpose(b, 0, 1), 2))), a);
    double worst = 0;
    for (int64_t i = 0; i < 12; i++)
        worst = fmax(worst, fabs((double)mine->data[i] - (double)lib->data[i]));
    ok &= worst < 1e-5;
    printf("largest difference from sqrt(a^2 + b^2) * a built from ag_ ops: %.2g\n", worst);
    ag_reset();

    printf("%s\n", ok ? "the custom op checks out" : "the custom op is WRONG");
    tensor_free(a), tensor_free(b), tensor_free(three), tensor_free(four);
    return ok ? 0 : 1;
}
