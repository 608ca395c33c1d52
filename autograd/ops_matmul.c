/* autograd/ops_matmul.c: (batched) matrix multiply over tensor/gemm.c.
 *
 *   C[..., M, N] = A[..., M, K] @ B[..., K, N]
 *   dA[..., M, K] += G[..., M, N] @ B^T        dB[..., K, N] += A^T @ G
 *
 * Every operand is handed to nb_gemm with its own row and column strides, so a transposed
 * view is read in place. Batch dims broadcast; a broadcast operand's gradient block is reused
 * for every batch entry (gemm's beta = 1 accumulates), which is the sum over the broadcast. */
#include "autograd/autograd.h"
#include "tensor/gemm.h"

typedef struct {
    int nb;                     /* number of batch dims of the output */
    int64_t shape[NB_MAX_DIMS]; /* batch shape */
    int64_t count;              /* product of the batch shape */
} batch_t;

/* Element offset of batch entry `k` in a tensor whose batch dims (its leading ndim-2 dims,
 * aligned right against the output's) have the given strides; size-1 dims repeat. */
static int64_t batch_offset(const batch_t *bt, const Tensor *t, const int64_t *strides, int64_t k) {
    int64_t off = 0;
    int tb = t->ndim - 2;
    for (int d = bt->nb - 1; d >= 0; d--) {
        int64_t i = k % bt->shape[d];
        k /= bt->shape[d];
        int td = d - (bt->nb - tb);
        if (td >= 0 && t->shape[td] != 1) off += i * strides[td];
    }
    return off;
}

static void check_shapes(const Tensor *a, const Tensor *b, batch_t *bt) {
    char s1[128], s2[128];
    if (a->ndim < 2 || b->ndim < 2)
        nb_fail("matmul", "operands must have at least 2 dims, got %s and %s",
                nb_shape_str(s1, a->ndim, a->shape), nb_shape_str(s2, b->ndim, b->shape));
    if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        nb_fail("matmul", "inner dims differ: %s @ %s (%lld vs %lld)",
                nb_shape_str(s1, a->ndim, a->shape), nb_shape_str(s2, b->ndim, b->shape),
                (long long)a->shape[a->ndim - 1], (long long)b->shape[b->ndim - 2]);
    Tensor ab = *a, bb = *b; /* the batch parts alone, to reuse the broadcast rule */
    ab.ndim -= 2;
    bb.ndim -= 2;
    bt->nb = tensor_broadcast_shape("matmul", &ab, &bb, bt->shape);
    bt->count = 1;
    for (int d = 0; d < bt->nb; d++) bt->count *= bt->shape[d];
}

static void matmul_backward(Tensor *c) {
    Tensor *a = c->parents[0], *b = c->parents[1];
    batch_t bt;
    check_shapes(a, b, &bt);
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    int64_t ra = a->strides[a->ndim - 2], ca = a->strides[a->ndim - 1];
    int64_t rb = b->strides[b->ndim - 2], cb = b->strides[b->ndim - 1];
    const real *G = c->grad->data + c->grad->offset;
    /* A fresh gradient is written by the gemm (beta 0) when one gemm covers it all; otherwise
     * it is zeroed first. */
    bool fresh_a = false, fresh_b = false;
    Tensor *ga = a->requires_grad ? ag_grad_begin(a, &fresh_a) : NULL;
    Tensor *gb = b->requires_grad ? ag_grad_begin(b, &fresh_b) : NULL;
    if (bt.count != 1) { /* several entries may share a block; none leaves it unwritten */
        if (fresh_a) tensor_fill(ga, 0);
        if (fresh_b) tensor_fill(gb, 0);
        fresh_a = fresh_b = false;
    }
    for (int64_t k = 0; k < bt.count; k++) {
        const real *Gk = G + k * M * N;
        if (ga) /* dA = G @ B^T: B^T(n, k) = B(k, n) */
            nb_gemm(M, K, N, Gk, N, 1, b->data + b->offset + batch_offset(&bt, b, b->strides, k),
                    cb, rb, fresh_a ? 0 : 1, ga->data + batch_offset(&bt, a, ga->strides, k), K);
        if (gb) /* dB = A^T @ G: A^T(k, m) = A(m, k) */
            nb_gemm(K, N, M, a->data + a->offset + batch_offset(&bt, a, a->strides, k), ca, ra, Gk,
                    N, 1, fresh_b ? 0 : 1, gb->data + batch_offset(&bt, b, gb->strides, k), N);
    }
}

Tensor *ag_matmul(Tensor *a, Tensor *b) {
    batch_t bt;
    check_shapes(a, b, &bt);
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < bt.nb; d++) shape[d] = bt.shape[d];
    shape[bt.nb] = M;
    shape[bt.nb + 1] = N;
    Tensor *c = tensor_step(bt.nb + 2, shape);
    for (int64_t k = 0; k < bt.count; k++)
        nb_gemm(M, N, K, a->data + a->offset + batch_offset(&bt, a, a->strides, k),
                a->strides[a->ndim - 2], a->strides[a->ndim - 1],
                b->data + b->offset + batch_offset(&bt, b, b->strides, k), b->strides[b->ndim - 2],
                b->strides[b->ndim - 1], 0, c->data + k * M * N, N);
    ag_record(c, "matmul", matmul_backward, (Tensor *[]){a, b}, 2);
    return c;
}

/* ---- linear: y = x W^T + b, one fused op ------------------------------------------------------
 *   y[R, O] = x[R, I] @ W[O, I]^T + b[O]
 *   dx[R, I] += g @ W        dW[O, I] += g^T @ x        db[O] += sum over rows of g
 * The same as ag_add(ag_matmul(x, ag_transpose(W, 0, 1)), b), but the bias is written as the
 * gemm's starting C and W's gradient is produced in W's own layout, so no pass copies a
 * transposed gradient back. */
static void linear_backward(Tensor *y) {
    Tensor *x = y->parents[0], *W = y->parents[1], *b = y->nparents > 2 ? y->parents[2] : NULL;
    int64_t R = x->shape[0], I = x->shape[1], O = W->shape[0];
    const real *G = y->grad->data + y->grad->offset;
    bool fresh;
    if (x->requires_grad) {
        Tensor *gx = ag_grad_begin(x, &fresh);
        nb_gemm(R, I, O, G, O, 1, W->data + W->offset, W->strides[0], W->strides[1], fresh ? 0 : 1,
                gx->data, I);
    }
    if (W->requires_grad) {
        Tensor *gw = ag_grad_begin(W, &fresh);
        nb_gemm(O, I, R, G, 1, O, x->data + x->offset, x->strides[0], x->strides[1], fresh ? 0 : 1,
                gw->data, I);
    }
    if (b && b->requires_grad) {
        Tensor *gb = ag_grad_begin(b, &fresh);
        k_sum_to(y->grad, gb, !fresh);
    }
}

Tensor *ag_linear(Tensor *x, Tensor *W, Tensor *b) {
    char s1[128], s2[128];
    if (x->ndim != 2 || W->ndim != 2 || x->shape[1] != W->shape[1])
        nb_fail("linear", "input %s does not fit weight %s (want [rows, in] and [out, in])",
                nb_shape_str(s1, x->ndim, x->shape), nb_shape_str(s2, W->ndim, W->shape));
    int64_t R = x->shape[0], I = x->shape[1], O = W->shape[0];
    if (b && (b->ndim != 1 || b->shape[0] != O))
        nb_fail("linear", "bias %s does not match weight %s", nb_shape_str(s1, b->ndim, b->shape),
                nb_shape_str(s2, W->ndim, W->shape));
    Tensor *y = tensor_step(NB_SHAPE(R, O));
    if (b) {
        Tensor bv;
        tensor_layout_expand(b, 2, y->shape, &bv);
        k_unary(K_COPY, &bv, y, 0, 0, false);
    }
    nb_gemm(R, O, I, x->data + x->offset, x->strides[0], x->strides[1], W->data + W->offset,
            W->strides[1], W->strides[0], b ? 1 : 0, y->data, O);
    if (b)
        ag_record(y, "linear", linear_backward, (Tensor *[]){x, W, b}, 3);
    else
        ag_record(y, "linear", linear_backward, (Tensor *[]){x, W}, 2);
    return y;
}
