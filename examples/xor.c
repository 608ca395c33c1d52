/* examples/xor.c: XOR, the function no single linear layer can fit, learned by a 2-8-1 MLP.
 *
 *   x       y      the model: h = tanh(x W1^T + b1)   [4, 8]
 *   0 0  -> 0                 logit = h W2^T + b2     [4, 1]
 *   0 1  -> 1      the loss:  binary cross-entropy on the logit (nn_bce_with_logits)
 *   1 0  -> 1
 *   1 1  -> 0      Adam, learning rate 0.05, 300 full-batch steps
 *
 *   ./build/xor    exits 1 unless all four points are classified right with loss below 0.05 */
#include <stdio.h>

#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/optim.h"

#define HIDDEN 8
#define STEPS  300

int main(void) {
    const real xs[8] = {0, 0, 0, 1, 1, 0, 1, 1}, ys[4] = {0, 1, 1, 0};
    Tensor *x = tensor_from_array(NB_SHAPE(4, 2), xs), *y = tensor_from_array(NB_SHAPE(4, 1), ys);

    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nn_linear fc1, fc2;
    nn_linear_init(&fc1, 2, HIDDEN, true, &rng);
    nn_linear_init(&fc2, HIDDEN, 1, true, &rng);
    nn_params ps = {0};
    nn_linear_params(&fc1, "fc1", &ps);
    nn_linear_params(&fc2, "fc2", &ps);
    nn_optim *opt = nn_optim_adam(&ps, nn_adam_defaults(0.05));

    double loss = 0;
    for (int step = 0; step < STEPS; step++) {
        nn_optim_zero_grad(opt);
        Tensor *logit = nn_linear_forward(&fc2, nn_tanh(nn_linear_forward(&fc1, x)));
        Tensor *l = nn_bce_with_logits(logit, y, NN_MEAN);
        ag_backward(l);
        nn_optim_step(opt);
        loss = tensor_item(l);
        if (step % 50 == 0) printf("step %3d  loss %.4f\n", step, loss);
        ag_reset();
    }

    /* the trained model on the four points, without recording a graph */
    bool prev = ag_set_grad_enabled(false);
    Tensor *p = nn_sigmoid(nn_linear_forward(&fc2, nn_tanh(nn_linear_forward(&fc1, x))));
    bool ok = loss < 0.05;
    printf("final loss %.4f\n", loss);
    for (int i = 0; i < 4; i++) {
        double pi = p->data[p->offset + i];
        bool right = (pi > 0.5) == (ys[i] > 0.5);
        ok &= right;
        printf("  %g xor %g = %g   p(1) = %.3f %s\n", (double)xs[2 * i], (double)xs[2 * i + 1],
               (double)ys[i], pi, right ? "" : "WRONG");
    }
    ag_reset();
    ag_set_grad_enabled(prev);
    printf("%s\n", ok ? "XOR learned" : "XOR NOT learned");

    nn_optim_free(opt);
    nn_params_free(&ps);
    nn_linear_free(&fc1), nn_linear_free(&fc2);
    tensor_free(x), tensor_free(y);
    return ok ? 0 : 1;
}
