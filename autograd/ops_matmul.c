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
    int nb;                        /* number of batch dims of the output */
    int64_t shape[NB_MAX_DIMS];    /* batch shape */
    int64_t count;                 /* product of the batch shape */
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
    Tensor *ga = a->requires_grad ? ag_grad(a) : NULL;
    Tensor *gb = b->requires_grad ? ag_grad(b) : NULL;
    for (int64_t k = 0; k < bt.count; k++) {
        const real *Gk = G + k * M * N;
        if (ga) /* dA = G @ B^T: B^T(n, k) = B(k, n) */
            nb_gemm(M, K, N, Gk, N, 1, b->data + b->offset + batch_offset(&bt, b, b->strides, k),
                    cb, rb, 1, ga->data + batch_offset(&bt, a, ga->strides, k), K);
        if (gb) /* dB = A^T @ G: A^T(k, m) = A(m, k) */
            nb_gemm(K, N, M, a->data + a->offset + batch_offset(&bt, a, a->strides, k), ca, ra,
                    Gk, N, 1, 1, gb->data + batch_offset(&bt, b, gb->strides, k), N);
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
                b->data + b->offset + batch_offset(&bt, b, b->strides, k),
                b->strides[b->ndim - 2], b->strides[b->ndim - 1], 0, c->data + k * M * N, N);
    ag_record(c, "matmul", matmul_backward, (Tensor *[]){a, b}, 2);
    return c;
}
