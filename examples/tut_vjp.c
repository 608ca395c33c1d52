/* examples/tut_vjp.c: each op's vector-Jacobian product, derived by hand (docs/TUTORIAL.md,
 * part 3) and checked against nabla's backward. For y = op(x) and an upstream gradient G =
 * d loss / d y (here random), backward must give d loss / d x = J^T G; each section computes
 * that formula with plain loops and compares it with what ag_backward_with(y, G) put in .grad.
 *
 *   ./build/tut_vjp     exits 1 if any backward disagrees with its formula */
#include "autograd/autograd.h"
#include "examples/tut_check.h"

static nb_rng rng;

static Tensor *param(int ndim, const int64_t *shape) { /* a random leaf that requires grad */
    Tensor *t = tensor_randn(ndim, shape, &rng);
    tensor_requires_grad(t, true);
    return t;
}

/* y = A B: dA = G B^T, dB = A^T G.  A [M, K], B [K, N], G [M, N]. */
static bool matmul(void) {
    enum { M = 3, K = 4, N = 2 };
    Tensor *A = param(NB_SHAPE(M, K)), *B = param(NB_SHAPE(K, N)), *G = param(NB_SHAPE(M, N));
    ag_backward_with(ag_matmul(A, B), G);
    real dA[M * K] = {0}, dB[K * N] = {0};
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < N; j++) {
                dA[i * K + k] += G->data[i * N + j] * B->data[k * N + j];
                dB[k * N + j] += A->data[i * K + k] * G->data[i * N + j];
            }
    bool ok = tut_close("matmul: dA = G B^T", A->grad, dA);
    ok &= tut_close("matmul: dB = A^T G", B->grad, dB);
    tensor_free(A), tensor_free(B), tensor_free(G);
    return ok;
}

/* y = a + b with b [N] broadcast over a's rows: da = G, db = G summed over the rows. */
static bool broadcast_add(void) {
    enum { M = 3, N = 4 };
    Tensor *a = param(NB_SHAPE(M, N)), *b = param(NB_SHAPE(N)), *G = param(NB_SHAPE(M, N));
    ag_backward_with(ag_add(a, b), G);
    real db[N] = {0};
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) db[j] += G->data[i * N + j];
    bool ok = tut_close("add: da = G", a->grad, G->data);
    ok &= tut_close("add: db = sum over rows of G", b->grad, db);
    tensor_free(a), tensor_free(b), tensor_free(G);
    return ok;
}

/* y = sigmoid(x) = s: dx = G s (1 - s), element-wise (a diagonal Jacobian). */
static bool sigmoid(void) {
    enum { M = 3, N = 4 };
    Tensor *x = param(NB_SHAPE(M, N)), *G = param(NB_SHAPE(M, N));
    ag_backward_with(ag_sigmoid(x), G);
    real dx[M * N];
    for (int i = 0; i < M * N; i++) {
        double s = 1 / (1 + exp(-(double)x->data[i]));
        dx[i] = (real)(G->data[i] * s * (1 - s));
    }
    bool ok = tut_close("sigmoid: dx = G s (1 - s)", x->grad, dx);
    tensor_free(x), tensor_free(G);
    return ok;
}

/* Along each row: s = softmax(x): dx = s * (G - sum_k G_k s_k);
 * y = log_softmax(x): dx = G - s * sum_k G_k. */
static bool softmax(void) {
    enum { M = 3, N = 5 };
    Tensor *x = param(NB_SHAPE(M, N)), *G = param(NB_SHAPE(M, N));
    real s[M * N], dsm[M * N], dls[M * N];
    for (int i = 0; i < M; i++) {
        double mx = x->data[i * N], z = 0, gs = 0, g = 0;
        for (int j = 1; j < N; j++) mx = fmax(mx, x->data[i * N + j]);
        for (int j = 0; j < N; j++) z += exp(x->data[i * N + j] - mx);
        for (int j = 0; j < N; j++) s[i * N + j] = (real)(exp(x->data[i * N + j] - mx) / z);
        for (int j = 0; j < N; j++)
            gs += G->data[i * N + j] * s[i * N + j], g += G->data[i * N + j];
        for (int j = 0; j < N; j++) {
            dsm[i * N + j] = (real)(s[i * N + j] * (G->data[i * N + j] - gs));
            dls[i * N + j] = (real)(G->data[i * N + j] - s[i * N + j] * g);
        }
    }
    ag_backward_with(ag_softmax(x, 1), G);
    bool ok = tut_close("softmax: dx = s (G - <G, s>)", x->grad, dsm);
    ag_reset();
    tensor_clear_grad(x);
    ag_backward_with(ag_log_softmax(x, 1), G);
    ok &= tut_close("log_softmax: dx = G - s sum(G)", x->grad, dls);
    tensor_free(x), tensor_free(G);
    return ok;
}

/* Layer norm over each row of N: xh = (x - mean) / sd, sd = sqrt(var + eps), y = xh w + b.
 * With g = G w: dx = (g - mean(g) - xh mean(g xh)) / sd; dw = sum_rows G xh; db = sum_rows G. */
static bool layer_norm(void) {
    enum { M = 3, N = 6 };
    const double eps = 1e-5;
    Tensor *x = param(NB_SHAPE(M, N)), *w = param(NB_SHAPE(N)), *b = param(NB_SHAPE(N));
    Tensor *G = param(NB_SHAPE(M, N));
    ag_backward_with(ag_layer_norm(x, 1, w, b, (real)eps), G);
    real dx[M * N], dw[N] = {0}, db[N] = {0};
    for (int i = 0; i < M; i++) {
        const real *xi = x->data + i * N, *Gi = G->data + i * N;
        double mean = 0, var = 0, mg = 0, mgx = 0, xh[N];
        for (int j = 0; j < N; j++) mean += xi[j] / (double)N;
        for (int j = 0; j < N; j++) var += (xi[j] - mean) * (xi[j] - mean) / N;
        double sd = sqrt(var + eps);
        for (int j = 0; j < N; j++) {
            xh[j] = (xi[j] - mean) / sd;
            mg += Gi[j] * w->data[j] / N;
            mgx += Gi[j] * w->data[j] * xh[j] / N;
            dw[j] += (real)(Gi[j] * xh[j]);
            db[j] += Gi[j];
        }
        for (int j = 0; j < N; j++)
            dx[i * N + j] = (real)((Gi[j] * w->data[j] - mg - xh[j] * mgx) / sd);
    }
    bool ok = tut_close("layer_norm: dx", x->grad, dx);
    ok &= tut_close("layer_norm: dw = sum_rows G xh", w->grad, dw);
    ok &= tut_close("layer_norm: db = sum_rows G", b->grad, db);
    tensor_free(x), tensor_free(w), tensor_free(b), tensor_free(G);
    return ok;
}

/* conv2d (stride 1, no padding) as im2col + matmul, written with views: each of the kh*kw
 * kernel offsets (p, q) is a narrowed view of x; stacked, they are the im2col matrix
 * [N, C*kh*kw, Ho*Wo], and the convolution is one matmul with w seen as [O, C*kh*kw]. Backward
 * needs no code of its own: narrow's backward scatters, which is col2im. */
static Tensor *conv2d_im2col(Tensor *x, Tensor *w, Tensor *b) {
    int64_t N = x->shape[0], C = x->shape[1], O = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    int64_t Ho = x->shape[2] - kh + 1, Wo = x->shape[3] - kw + 1;
    Tensor *cols[64]; /* kh * kw <= 64 */
    for (int64_t p = 0; p < kh; p++)
        for (int64_t q = 0; q < kw; q++) /* [N, C, 1, Ho, Wo]: x[n, c, i + p, j + q] */
            cols[p * kw + q] = ag_unsqueeze(ag_narrow(ag_narrow(x, 2, p, Ho), 3, q, Wo), 2);
    Tensor *col = ag_concat(cols, (int)(kh * kw), 2); /* [N, C, kh*kw, Ho, Wo]: rows (c, p, q) */
    col = ag_reshape(col, NB_SHAPE(N, C * kh * kw, Ho * Wo));
    Tensor *y = ag_matmul(ag_reshape(w, NB_SHAPE(O, C * kh * kw)), col); /* [N, O, Ho*Wo] */
    y = ag_add(y, ag_reshape(b, NB_SHAPE(O, 1)));
    return ag_reshape(y, NB_SHAPE(N, O, Ho, Wo));
}

/* y[n,o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] x[n,c,i+p,j+q]:
 * dx[n,c,i+p,j+q] += sum_o w[o,c,p,q] G[n,o,i,j]; dw[o,c,p,q] = sum_{n,i,j} G[n,o,i,j]
 * x[n,c,i+p,j+q]; db[o] = sum_{n,i,j} G[n,o,i,j]. Checked for ag_conv2d and for the composite. */
static bool conv2d(void) {
    enum { N = 2, C = 2, H = 5, W = 6, O = 3, KH = 3, KW = 2, HO = H - KH + 1, WO = W - KW + 1 };
    Tensor *x = param(NB_SHAPE(N, C, H, W)), *w = param(NB_SHAPE(O, C, KH, KW));
    Tensor *b = param(NB_SHAPE(O)), *G = param(NB_SHAPE(N, O, HO, WO));
    static real dx[N * C * H * W], dw[O * C * KH * KW], db[O];
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++)
            for (int i = 0; i < HO; i++)
                for (int j = 0; j < WO; j++) {
                    real g = G->data[((n * O + o) * HO + i) * WO + j];
                    db[o] += g;
                    for (int c = 0; c < C; c++)
                        for (int p = 0; p < KH; p++)
                            for (int q = 0; q < KW; q++) {
                                int xi = ((n * C + c) * H + i + p) * W + j + q;
                                int wi = ((o * C + c) * KH + p) * KW + q;
                                dx[xi] += w->data[wi] * g;
                                dw[wi] += x->data[xi] * g;
                            }
                }
    Tensor *y = ag_contiguous(ag_conv2d(x, w, b, nb_conv2d_defaults()));
    bool ok = tut_close("im2col composite: y = conv2d(x)", conv2d_im2col(x, w, b), y->data);
    ag_reset();
    for (int way = 0; way < 2; way++) {
        Tensor *y = way ? conv2d_im2col(x, w, b) : ag_conv2d(x, w, b, nb_conv2d_defaults());
        ag_backward_with(y, G);
        ok &= tut_close(way ? "im2col composite: dx (col2im)" : "conv2d: dx", x->grad, dx);
        ok &= tut_close(way ? "im2col composite: dw" : "conv2d: dw", w->grad, dw);
        ok &= tut_close(way ? "im2col composite: db" : "conv2d: db", b->grad, db);
        ag_reset();
        tensor_clear_grad(x), tensor_clear_grad(w), tensor_clear_grad(b);
    }
    tensor_free(x), tensor_free(w), tensor_free(b), tensor_free(G);
    return ok;
}

int main(void) {
    nb_rng_seed(&rng, 2024);
    bool (*sections[])(void) = {matmul, broadcast_add, sigmoid, softmax, layer_norm, conv2d};
    bool ok = true;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        ok &= sections[i]();
        ag_reset();
    }
    printf("%s\n", ok ? "every backward matches its hand-derived VJP" : "a backward is WRONG");
    return ok ? 0 : 1;
}
