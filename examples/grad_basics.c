/* examples/grad_basics.c: build f(x, W, b) = sum(sigmoid(x W + b)^2) with a broadcast bias,
 * print its gradients, and check them against finite differences.
 *
 *   make && ./build/grad_basics
 *   ./build/grad_basics --dot | dot -Tpng > graph.png     # draw the graph (Graphviz) */
#include <stdio.h>
#include <string.h>

#include "autograd/gradcheck.h"

/* f(x, W, b) = sum(sigmoid(x W + b)^2); x [4, 3], W [3, 2], b [2] broadcast over the rows. */
static Tensor *f(Tensor *const *in, void *ctx) {
    (void)ctx;
    Tensor *y = ag_sigmoid(ag_add(ag_matmul(in[0], in[1]), in[2]));
    return ag_sum(ag_pow(y, 2));
}

int main(int argc, char **argv) {
    bool dot = argc > 1 && strcmp(argv[1], "--dot") == 0;
    if (argc > 1 && !dot) {
        fprintf(stderr, "usage: grad_basics [--dot]\n");
        return 2;
    }
    nb_manual_seed(0);
    Tensor *x = tensor_randn(NB_SHAPE(4, 3), NULL);
    Tensor *W = tensor_randn(NB_SHAPE(3, 2), NULL);
    Tensor *b = tensor_zeros(NB_SHAPE(2));
    tensor_requires_grad(W, true);
    tensor_requires_grad(b, true);

    Tensor *in[3] = {x, W, b};
    x->name = "x", W->name = "W", b->name = "b";
    Tensor *loss = f(in, NULL);
    if (dot) { /* the graph that backward will walk, as Graphviz input */
        ag_write_dot(stdout, loss);
        ag_reset();
        tensor_free(x), tensor_free(W), tensor_free(b);
        return 0;
    }
    ag_backward(loss);
    printf("f = %.6f\n", (double)tensor_item(loss));
    tensor_print(W->grad, "df/dW");
    tensor_print(b->grad, "df/db");
    ag_reset(); /* frees loss and the graph; W->grad and b->grad stay */

    ag_gradcheck_result r;
    bool ok = ag_gradcheck(f, in, 3, NULL, NULL, &r);
    printf("gradient check: %s\n", r.message);

    tensor_free(x);
    tensor_free(W);
    tensor_free(b);
    return ok ? 0 : 1;
}
