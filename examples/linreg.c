/* examples/linreg.c: linear regression by gradient descent, checked against the closed form.
 *
 *   y = x w + b + noise,  x [N, 3], true w = (2, -3.4, 0.5), b = 4.2, noise N(0, 0.01^2)
 *
 * The model is two kept tensors, the loss the mean squared error; plain SGD (nn_optim_sgd) runs
 * until the parameters stop moving. The least-squares answer is also computed directly, by
 * solving the normal equations [X 1]^T [X 1] theta = [X 1]^T y in double; the program exits 1
 * unless gradient descent lands on it.
 *
 *   ./build/linreg */
#include <math.h>
#include <stdio.h>

#include "autograd/autograd.h"
#include "nn/loss.h"
#include "nn/optim.h"

#define N     200
#define D     3
#define STEPS 500

/* Solves the (D+1) x (D+1) system A t = r in place by Gaussian elimination with pivoting. */
static void solve(double A[D + 1][D + 1], double *r, double *t) {
    const int n = D + 1;
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int i = c + 1; i < n; i++)
            if (fabs(A[i][c]) > fabs(A[p][c])) p = i;
        for (int j = 0; j < n; j++) {
            double tmp = A[c][j];
            A[c][j] = A[p][j], A[p][j] = tmp;
        }
        double tmp = r[c];
        r[c] = r[p], r[p] = tmp;
        for (int i = c + 1; i < n; i++) {
            double f = A[i][c] / A[c][c];
            for (int j = c; j < n; j++) A[i][j] -= f * A[c][j];
            r[i] -= f * r[c];
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        double s = r[i];
        for (int j = i + 1; j < n; j++) s -= A[i][j] * t[j];
        t[i] = s / A[i][i];
    }
}

int main(void) {
    const double w_true[D] = {2, -3.4, 0.5}, b_true = 4.2;
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    Tensor *x = tensor_randn(NB_SHAPE(N, D), &rng), *y = tensor_empty(NB_SHAPE(N, 1));
    for (int i = 0; i < N; i++) {
        double v = b_true + 0.01 * nb_rng_normal(&rng);
        for (int j = 0; j < D; j++) v += w_true[j] * x->data[i * D + j];
        y->data[i] = (real)v;
    }

    /* the model: w [D, 1] and b [1], both starting at zero */
    Tensor *w = tensor_zeros(NB_SHAPE(D, 1)), *b = tensor_zeros(NB_SHAPE(1));
    nn_params ps = {0};
    nn_params_add(&ps, NULL, "w", w);
    nn_params_add(&ps, NULL, "b", b);
    nn_optim *opt = nn_optim_sgd(&ps, nn_sgd_defaults(0.1));
    double loss = 0;
    for (int step = 0; step < STEPS; step++) {
        nn_optim_zero_grad(opt);
        Tensor *pred = ag_add(ag_matmul(x, w), b); /* [N, 1]; b broadcasts over the rows */
        Tensor *l = nn_mse(pred, y, NN_MEAN);      /* mean of (pred - y)^2 */
        ag_backward(l);                            /* dl/dw = 2/N x^T (pred - y), dl/db = ... */
        nn_optim_step(opt);                        /* w -= 0.1 dl/dw, b -= 0.1 dl/db */
        loss = tensor_item(l);
        if (step % 100 == 0) printf("step %3d  loss %.6f\n", step, loss);
        ag_reset();
    }

    /* the closed form: normal equations over the features plus a column of ones */
    double A[D + 1][D + 1] = {{0}}, r[D + 1] = {0}, theta[D + 1];
    for (int i = 0; i < N; i++) {
        double row[D + 1] = {[D] = 1};
        for (int j = 0; j < D; j++) row[j] = x->data[i * D + j];
        for (int j = 0; j <= D; j++) {
            r[j] += row[j] * y->data[i];
            for (int k = 0; k <= D; k++) A[j][k] += row[j] * row[k];
        }
    }
    solve(A, r, theta);

    bool ok = loss < 2e-4; /* the noise variance is 1e-4 */
    printf("final loss %.6f (noise variance 0.0001)\n%-4s %10s %10s %10s\n", loss, "", "SGD",
           "exact", "true");
    for (int j = 0; j <= D; j++) {
        double got = j < D ? w->data[j] : b->data[0], want = theta[j];
        ok &= fabs(got - want) < 1e-4; /* tighter than the noise moves the answer off the truth */
        printf("%-4s %10.5f %10.5f %10.5f\n", j < D ? (const char *[]){"w0", "w1", "w2"}[j] : "b",
               got, want, j < D ? w_true[j] : b_true);
    }
    printf("gradient descent %s the least-squares solution\n", ok ? "reached" : "DID NOT reach");
    nn_optim_free(opt);
    nn_params_free(&ps);
    tensor_free(x), tensor_free(y), tensor_free(w), tensor_free(b);
    return ok ? 0 : 1;
}
