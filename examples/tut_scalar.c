/* examples/tut_scalar.c: the tutorial's first example (docs/TUTORIAL.md, part 1): one scalar
 * expression, its tape in topological order, and the reverse walk that fills the gradients,
 * narrated by the backward trace; checked against the derivatives worked out by hand.
 *
 *   L = (x y + x)^2 / 2   at x = 2, y = 3:  a = x y = 6,  b = a + x = 8,  L = 32
 *   dL/db = b = 8;  dL/da = dL/db = 8;  dL/dy = x dL/da = 16;
 *   dL/dx = dL/db (through b = a + x) + y dL/da (through a = x y) = 8 + 24 = 32
 *
 *   ./build/tut_scalar           the tape, the trace, the check (exit 1 if a gradient is wrong)
 *   ./build/tut_scalar --dot     the graph after backward, with |grad| on each node */
#include <string.h>

#include "autograd/autograd.h"
#include "examples/tut_check.h"

int main(int argc, char **argv) {
    bool dot = argc > 1 && !strcmp(argv[1], "--dot");
    Tensor *x = tensor_scalar(2), *y = tensor_scalar(3);
    tensor_requires_grad(x, true);
    tensor_requires_grad(y, true);
    x->name = "x", y->name = "y";

    /* The forward pass records each op on the tape as it runs. */
    Tensor *a = ag_mul(x, y);                     /* 6 */
    Tensor *b = ag_add(a, x);                     /* 8: x is used twice */
    Tensor *L = ag_mul_scalar(ag_pow(b, 2), 0.5); /* 32 */
    a->name = "a", b->name = "b", L->name = "L";

    if (!dot) {
        printf("L = %g\nthe tape, in the order the ops ran (a topological order):\n",
               (double)tensor_item(L));
        for (int64_t i = 0; i < ag_tape_length(); i++) {
            Tensor *t = ag_tape_at(i);
            printf("  #%lld %-10s = %-4g from", (long long)i, t->op, (double)tensor_item(t));
            for (int k = 0; k < t->nparents; k++)
                printf(" %s", t->parents[k]->name ? t->parents[k]->name : t->parents[k]->op);
            printf("\n");
        }
        ag_set_backward_trace(stdout); /* narrate the reverse walk */
    }
    ag_backward(L);
    ag_set_backward_trace(NULL);
    if (dot) {
        ag_write_dot(stdout, L);
        ag_reset();
        tensor_free(x), tensor_free(y);
        return 0;
    }

    /* Every input of every node sits earlier on the tape: that is what lets backward be one
     * loop from the end. */
    bool ok = true;
    for (int64_t i = 0; i < ag_tape_length(); i++)
        for (int k = 0; k < ag_tape_at(i)->nparents; k++) {
            const Tensor *p = ag_tape_at(i)->parents[k];
            ok &= p->kept || p->tape_index < i;
        }
    printf("the tape is in topological order: %s\nchecks:\n", ok ? "yes" : "NO");
    ok &= tut_close("dL/db = b", b->grad, (real[]){8});
    ok &= tut_close("dL/da = dL/db", a->grad, (real[]){8});
    ok &= tut_close("dL/dy = x dL/da", y->grad, (real[]){16});
    ok &= tut_close("dL/dx = dL/db + y dL/da", x->grad, (real[]){32});
    ag_reset();

    /* Gradients of leaves accumulate across backward calls until zeroed (as in PyTorch). */
    ag_backward(ag_mul_scalar(ag_pow(ag_add(ag_mul(x, y), x), 2), 0.5));
    ok &= tut_close("dL/dx after a second backward", x->grad, (real[]){64});
    ag_reset();
    tensor_free(x);
    tensor_free(y);
    return ok ? 0 : 1;
}
