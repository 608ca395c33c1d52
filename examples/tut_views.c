/* examples/tut_views.c: views and strides (docs/TUTORIAL.md, part 4). A view is a new shape,
 * strides and offset over the same storage; element (i, j) lives at data[offset + i s0 + j s1].
 * Backward through a view applies the view to the gradient: a transpose transposes it back, a
 * narrow scatters it into zeros, an expand (stride 0) sums it over the repeated dim.
 *
 *   ./build/tut_views    exits 1 if a layout or a view's gradient is not as derived */
#include "autograd/autograd.h"
#include "examples/tut_check.h"

static bool layout(const char *what, const Tensor *t, int64_t s0, int64_t s1, int64_t offset) {
    bool ok = t->ndim == 2 && t->strides[0] == s0 && t->strides[1] == s1 && t->offset == offset;
    printf("  %-28s shape [%lld, %lld] strides (%lld, %lld) offset %lld%s\n", what,
           (long long)t->shape[0], (long long)t->shape[1], (long long)t->strides[0],
           (long long)t->strides[1], (long long)t->offset, ok ? "" : "  WRONG");
    return ok;
}

int main(void) {
    /* a = [[0 1 2 3], [4 5 6 7], [8 9 10 11]]: row-major, strides (4, 1) */
    Tensor *base = tensor_arange(0, 12, 1);
    Tensor *a = tensor_copy(ag_reshape(base, NB_SHAPE(3, 4)));
    tensor_requires_grad(a, true);
    printf("layouts (no data moves):\n");
    bool ok = layout("a", a, 4, 1, 0);
    Tensor *t = ag_transpose(a, 0, 1); /* [4, 3]: t(i, j) = a(j, i) */
    Tensor *n = ag_narrow(a, 1, 1, 2); /* [3, 2]: columns 1 and 2 */
    Tensor *r = ag_narrow(a, 0, 2, 1); /* [1, 4]: the last row */
    Tensor *e = ag_expand(r, NB_SHAPE(3, 4));
    ok &= layout("transpose(a, 0, 1)", t, 1, 4, 0);
    ok &= layout("narrow(a, 1, 1, 2)", n, 4, 1, 1);
    ok &= layout("expand(last row, [3, 4])", e, 0, 1, 8);
    ok &= t->data == a->data && n->data == a->data && e->data == a->data; /* one storage */
    /* the address rule, element by element */
    for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 3; j++)
            ok &= t->data[t->offset + i * t->strides[0] + j * t->strides[1]] == (real)(j * 4 + i);
    printf("  t(i, j) = data[offset + i s0 + j s1] = a(j, i) everywhere: %s\n", ok ? "yes" : "NO");
    printf("  transpose is contiguous: %s; ag_contiguous copies it into rows\n",
           tensor_is_contiguous(t) ? "yes" : "no");
    ok &= !tensor_is_contiguous(t) && tensor_is_contiguous(ag_contiguous(t));
    ag_reset();

    /* Gradients through views, with upstream M: each lands where its view read from. */
    real M[12];
    for (int i = 0; i < 12; i++) M[i] = (real)(i + 1);
    Tensor *m43 = tensor_from_array(NB_SHAPE(4, 3), M), *m32 = tensor_from_array(NB_SHAPE(3, 2), M);
    Tensor *m34 = tensor_from_array(NB_SHAPE(3, 4), M);
    printf("gradients through views:\n");
    ag_backward(ag_sum(ag_mul(ag_transpose(a, 0, 1), m43))); /* d/da = M^T */
    real want_t[12], want_n[12] = {0}, want_e[12] = {0};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) want_t[i * 4 + j] = M[j * 3 + i];
    ok &= tut_close("transpose: da = G^T", a->grad, want_t);
    ag_reset();
    tensor_clear_grad(a);
    ag_backward(ag_sum(ag_mul(ag_narrow(a, 1, 1, 2), m32))); /* G into columns 1..2, else 0 */
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) want_n[i * 4 + 1 + j] = M[i * 2 + j];
    ok &= tut_close("narrow: da = G scattered into 0", a->grad, want_n);
    ag_reset();
    tensor_clear_grad(a);
    ag_backward(ag_sum(ag_mul(ag_expand(ag_narrow(a, 0, 2, 1), NB_SHAPE(3, 4)), m34)));
    for (int j = 0; j < 4; j++) want_e[8 + j] = M[j] + M[4 + j] + M[8 + j]; /* summed rows */
    ok &= tut_close("expand: da = G summed over rows", a->grad, want_e);
    ag_reset();

    printf("%s\n", ok ? "views behave as derived" : "a view is WRONG");
    tensor_free(base), tensor_free(a), tensor_free(m43), tensor_free(m32), tensor_free(m34);
    return ok ? 0 : 1;
}
