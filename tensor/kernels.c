/* tensor/kernels.c: strided element-wise and reduction kernels; see kernels.h. */
#include "tensor/kernels.h"

#include <math.h>
#include <string.h>

#include "tensor/fastmath.h"
#include "tensor/parallel.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define RF NB_REAL_FN

/* ---- the iterator: up to three operands walked over one shape -------------------------------- */

typedef struct {
    int ndim;
    int nops;
    int64_t shape[NB_MAX_DIMS];
    int64_t st[3][NB_MAX_DIMS];
    real *p[3];
} iter_t;

/* ops[0..nops) all have the same shape. Size-1 dims are dropped and neighbours merged when every
 * operand is contiguous across them, so the inner row is as long as possible. */
static void iter_init(iter_t *it, int nops, const Tensor *const *ops) {
    const Tensor *t0 = ops[0];
    memset(it, 0, sizeof *it); /* unused operand slots stay NULL with stride 0 */
    it->nops = nops;
    it->ndim = 0;
    for (int k = 0; k < nops; k++) it->p[k] = ops[k]->data + ops[k]->offset;
    for (int d = 0; d < t0->ndim; d++) {
        if (t0->shape[d] == 1) continue;
        int n = it->ndim;
        bool merge = n > 0;
        for (int k = 0; k < nops && merge; k++)
            merge = it->st[k][n - 1] == ops[k]->strides[d] * t0->shape[d];
        if (merge) {
            it->shape[n - 1] *= t0->shape[d];
            for (int k = 0; k < nops; k++) it->st[k][n - 1] = ops[k]->strides[d];
        } else {
            it->shape[n] = t0->shape[d];
            for (int k = 0; k < nops; k++) it->st[k][n] = ops[k]->strides[d];
            it->ndim++;
        }
    }
    if (it->ndim == 0) { /* a scalar, or every dim of size 1 */
        it->ndim = 1;
        it->shape[0] = 1;
        for (int k = 0; k < nops; k++) it->st[k][0] = 1;
    }
}

typedef void (*inner_fn)(int64_t n, real *const *p, const int64_t *st, const void *ctx);

/* Runs rows [r0, r1) of the innermost dim, each as one inner() call. */
static void run_rows(const iter_t *it, inner_fn inner, const void *ctx, int64_t r0, int64_t r1) {
    int last = it->ndim - 1;
    int64_t idx[NB_MAX_DIMS] = {0};
    real *p[3] = {it->p[0], it->p[1], it->p[2]};
    int64_t st[3] = {it->st[0][last], it->st[1][last], it->st[2][last]};
    for (int d = last - 1; d >= 0; d--) { /* the position of row r0 */
        int64_t below = 1;
        for (int k = d + 1; k < last; k++) below *= it->shape[k];
        idx[d] = (r0 / below) % it->shape[d];
        for (int k = 0; k < it->nops; k++) p[k] += idx[d] * it->st[k][d];
    }
    for (int64_t r = r0; r < r1; r++) {
        inner(it->shape[last], p, st, ctx);
        for (int d = last - 1; d >= 0; d--) {
            if (++idx[d] < it->shape[d]) {
                for (int k = 0; k < it->nops; k++) p[k] += it->st[k][d];
                break;
            }
            for (int k = 0; k < it->nops; k++) p[k] -= (it->shape[d] - 1) * it->st[k][d];
            idx[d] = 0;
        }
    }
}

/* Calls inner() over every row of the innermost dim. Large jobs are split across threads: by
 * rows, or, when there are too few rows, by pieces of the row (only if `split_inner`). Every
 * element is computed the same way whatever the split, so results don't depend on threads. */
static void iter_run(const iter_t *it, inner_fn inner, const void *ctx, bool parallel_ok,
                     bool split_inner) {
    int last = it->ndim - 1;
    int64_t rows = 1, n = it->shape[last];
    for (int d = 0; d < last; d++) rows *= it->shape[d];
    if (rows == 0 || n == 0) return;
    int nt = (parallel_ok && rows * n >= NB_PAR_MIN) ? nb_get_num_threads() : 1;
    if (nt > 1 && rows >= nt) {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            run_rows(it, inner, ctx, rows * t / T, rows * (t + 1) / T);
        }
        return;
#endif
    }
    if (nt > 1 && split_inner) {
        for (int64_t r = 0; r < rows; r++) {
            iter_t one = *it;
            int64_t idx = r;
            for (int d = last - 1; d >= 0; d--) {
                int64_t i = idx % it->shape[d];
                idx /= it->shape[d];
                for (int k = 0; k < it->nops; k++) one.p[k] += i * it->st[k][d];
            }
            int64_t st[3] = {it->st[0][last], it->st[1][last], it->st[2][last]};
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
            {
#ifdef _OPENMP
                int t = omp_get_thread_num(), T = omp_get_num_threads();
#else
                int t = 0, T = 1;
#endif
                int64_t a = n * t / T, b = n * (t + 1) / T;
                real *p[3] = {NULL, NULL, NULL};
                for (int k = 0; k < it->nops; k++) p[k] = one.p[k] + a * st[k];
                if (b > a) inner(b - a, p, st, ctx);
            }
        }
        return;
    }
    run_rows(it, inner, ctx, 0, rows);
}

/* Views `a` broadcast to `out`'s shape, failing with `op` when it can't. */
static Tensor broadcast_to(const char *op, const Tensor *a, const Tensor *out) {
    Tensor v;
    if (tensor_same_shape(a, out)) return *a;
    int64_t shape[NB_MAX_DIMS];
    int n = tensor_broadcast_shape(op, a, out, shape);
    if (n != out->ndim || memcmp(shape, out->shape, sizeof(int64_t) * (size_t)n) != 0) {
        char s1[128], s2[128];
        nb_fail(op, "shape %s does not broadcast to the output shape %s",
                nb_shape_str(s1, a->ndim, a->shape), nb_shape_str(s2, out->ndim, out->shape));
    }
    tensor_layout_expand(a, out->ndim, out->shape, &v);
    return v;
}

/* ---- scalar functions
 * ---------------------------------------------------------------------------- */

/* Written without branches on x's sign so loops over them vectorize. */
static inline real sigmoid(real x) {
    real e = nb_exp(-RF(fabs)(x)); /* in (0, 1]: never overflows */
    return (x >= 0 ? 1 : e) / (1 + e);
}

static inline real softplus(real x) {
    return (x > 0 ? x : 0) + nb_log1p_unit(nb_exp(-RF(fabs)(x))); /* exp(-|x|) is in (0, 1] */
}

static inline real unary1(k_unary_op op, real x, real p0, real p1) {
    switch (op) {
    case K_COPY:
        return x;
    case K_NEG:
        return -x;
    case K_EXP:
        return nb_exp(x);
    case K_LOG:
        return nb_log(x);
    case K_SQRT:
        return RF(sqrt)(x);
    case K_ABS:
        return RF(fabs)(x);
    case K_RELU:
        return x > 0 ? x : 0;
    case K_SIGMOID:
        return sigmoid(x);
    case K_TANH:
        return RF(tanh)(x);
    case K_SOFTPLUS:
        return softplus(x);
    case K_POW:
        return p0 == 2 ? x * x : RF(pow)(x, p0);
    case K_CLAMP:
        return x < p0 ? p0 : (x > p1 ? p1 : x);
    case K_AFFINE:
        return x * p0 + p1;
    }
    return 0;
}

static inline real binary1(k_binary_op op, real a, real b, real p0, real p1) {
    switch (op) {
    case K_ADD:
        return a + b;
    case K_SUB:
        return a - b;
    case K_MUL:
        return a * b;
    case K_DIV:
        return a / b;
    case K_NEG_DIV:
        return -(a / b);
    case K_RELU_BWD:
        return b > 0 ? a : 0;
    case K_SIGMOID_BWD:
        return a * b * (1 - b);
    case K_TANH_BWD:
        return a * (1 - b * b);
    case K_SOFTPLUS_BWD:
        return a * sigmoid(b);
    case K_POW_BWD:
        return p0 == 2 ? a * 2 * b : a * p0 * RF(pow)(b, p0 - 1);
    case K_CLAMP_BWD:
        return (b >= p0 && b <= p1) ? a : 0;
    case K_ABS_BWD:
        return a * (real)((b > 0) - (b < 0));
    case K_SQRT_BWD:
        return a * (real)0.5 / b;
    case K_EXP_SUB:
        return nb_exp(a - b);
    }
    return 0;
}

/* ---- element-wise
 * ------------------------------------------------------------------------------------ */

typedef struct {
    int op;
    real p0, p1;
    bool acc;
} ew_ctx;

/* The loops are written once with stride arguments; calling them with literal 1s lets the
 * compiler produce a vectorized contiguous copy of each. */
static inline void unary_row(k_unary_op op, int64_t n, real *o, int64_t so, const real *a,
                             int64_t sa, real p0, real p1, bool acc) {
    if (acc)
        for (int64_t i = 0; i < n; i++) o[i * so] += unary1(op, a[i * sa], p0, p1);
    else
        for (int64_t i = 0; i < n; i++) o[i * so] = unary1(op, a[i * sa], p0, p1);
}

static void unary_inner(int64_t n, real *const *p, const int64_t *st, const void *vctx) {
    const ew_ctx *c = vctx;
    k_unary_op op = (k_unary_op)c->op;
    if (st[0] == 1 && st[1] == 1) {
        switch (op) { /* a literal op per case: each loop is specialised and vectorized */
        case K_COPY:
            unary_row(K_COPY, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_NEG:
            unary_row(K_NEG, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_EXP:
            unary_row(K_EXP, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_LOG:
            unary_row(K_LOG, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_SQRT:
            unary_row(K_SQRT, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_ABS:
            unary_row(K_ABS, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_RELU:
            unary_row(K_RELU, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_SIGMOID:
            unary_row(K_SIGMOID, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_TANH:
            unary_row(K_TANH, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_SOFTPLUS:
            unary_row(K_SOFTPLUS, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_POW:
            unary_row(K_POW, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_CLAMP:
            unary_row(K_CLAMP, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        case K_AFFINE:
            unary_row(K_AFFINE, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);
            return;
        }
    }
    unary_row(op, n, p[0], st[0], p[1], st[1], c->p0, c->p1, c->acc);
}

void k_unary(k_unary_op op, const Tensor *a, Tensor *out, real p0, real p1, bool acc) {
    Tensor va = broadcast_to("unary", a, out);
    const Tensor *ops[2] = {out, &va};
    iter_t it;
    iter_init(&it, 2, ops);
    ew_ctx c = {(int)op, p0, p1, acc};
    iter_run(&it, unary_inner, &c, true, true);
}

static inline void binary_row(k_binary_op op, int64_t n, real *o, int64_t so, const real *a,
                              int64_t sa, const real *b, int64_t sb, real p0, real p1, bool acc) {
    if (acc)
        for (int64_t i = 0; i < n; i++) o[i * so] += binary1(op, a[i * sa], b[i * sb], p0, p1);
    else
        for (int64_t i = 0; i < n; i++) o[i * so] = binary1(op, a[i * sa], b[i * sb], p0, p1);
}

static void binary_inner(int64_t n, real *const *p, const int64_t *st, const void *vctx) {
    const ew_ctx *c = vctx;
    k_binary_op op = (k_binary_op)c->op;
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
        switch (op) { /* a literal op per case, as above */
        case K_ADD:
            binary_row(K_ADD, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_SUB:
            binary_row(K_SUB, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_MUL:
            binary_row(K_MUL, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_DIV:
            binary_row(K_DIV, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_NEG_DIV:
            binary_row(K_NEG_DIV, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_RELU_BWD:
            binary_row(K_RELU_BWD, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_SIGMOID_BWD:
            binary_row(K_SIGMOID_BWD, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_TANH_BWD:
            binary_row(K_TANH_BWD, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_SOFTPLUS_BWD:
            binary_row(K_SOFTPLUS_BWD, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_POW_BWD:
            binary_row(K_POW_BWD, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_CLAMP_BWD:
            binary_row(K_CLAMP_BWD, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_ABS_BWD:
            binary_row(K_ABS_BWD, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_SQRT_BWD:
            binary_row(K_SQRT_BWD, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        case K_EXP_SUB:
            binary_row(K_EXP_SUB, n, p[0], 1, p[1], 1, p[2], 1, c->p0, c->p1, c->acc);
            return;
        }
    }
    if (st[0] == 1 && st[1] == 1 && st[2] == 0) { /* a row and a broadcast scalar: bias add */
        binary_row(op, n, p[0], 1, p[1], 1, p[2], 0, c->p0, c->p1, c->acc);
        return;
    }
    binary_row(op, n, p[0], st[0], p[1], st[1], p[2], st[2], c->p0, c->p1, c->acc);
}

void k_binary(k_binary_op op, const Tensor *a, const Tensor *b, Tensor *out, real p0, real p1,
              bool acc) {
    Tensor va = broadcast_to("binary", a, out), vb = broadcast_to("binary", b, out);
    const Tensor *ops[3] = {out, &va, &vb};
    iter_t it;
    iter_init(&it, 3, ops);
    ew_ctx c = {(int)op, p0, p1, acc};
    iter_run(&it, binary_inner, &c, true, true);
}

/* ---- reductions
 * ---------------------------------------------------------------------------------------- */

double k_dsum(const real *a, int64_t n) {
    double s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j];
    for (int j = 0; i < n; i++, j++) s[j] += a[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static void sum_inner(int64_t n, real *const *p, const int64_t *st, const void *ctx) {
    (void)ctx;
    real *o = p[0];
    const real *a = p[1];
    if (st[0] == 0) { /* the whole row folds into one output: accumulate in double */
        double s = 0;
        if (st[1] == 1)
            s = k_dsum(a, n);
        else
            for (int64_t i = 0; i < n; i++) s += a[i * st[1]];
        *o += (real)s;
    } else if (st[0] == 1 && st[1] == 1) {
        for (int64_t i = 0; i < n; i++) o[i] += a[i];
    } else {
        for (int64_t i = 0; i < n; i++) o[i * st[0]] += a[i * st[1]];
    }
}

void k_sum_to(const Tensor *a, Tensor *out, bool acc) {
    if (!acc) tensor_fill(out, 0);
    Tensor vo = broadcast_to("sum", out, a); /* out seen with stride 0 on the summed dims */
    const Tensor *ops[2] = {&vo, a};
    iter_t it;
    iter_init(&it, 2, ops);
    /* Threads may share the work only if no two rows add into the same output: every outer
     * dim must move the output. Splitting a row is safe only if its elements don't fold into
     * one output either. */
    bool distinct = true;
    for (int d = 0; d + 1 < it.ndim; d++) distinct = distinct && it.st[0][d] != 0;
    iter_run(&it, sum_inner, NULL, distinct, it.st[0][it.ndim - 1] != 0);
}

void k_max_dim(const Tensor *a, int dim, Tensor *vals, int64_t *idx) {
    int d = tensor_dim("max", a, dim);
    if (a->shape[d] == 0) nb_fail("max", "cannot take the max over an empty dim %d", d);
    /* Walk every output position; for each, scan along dim. */
    Tensor first;
    tensor_layout_narrow(a, d, 0, 1, &first);
    int64_t n = a->shape[d], sd = a->strides[d];
    int64_t pos[NB_MAX_DIMS] = {0};
    for (int64_t k = 0; k < vals->numel; k++) {
        int64_t off = first.offset, ooff = vals->offset;
        for (int i = 0; i < a->ndim; i++) {
            off += pos[i] * a->strides[i];
            ooff += pos[i] * vals->strides[i];
        }
        real best = a->data[off];
        int64_t arg = 0;
        for (int64_t j = 1; j < n; j++) {
            real v = a->data[off + j * sd];
            if (v > best || (v != v && best == best)) {
                best = v;
                arg = j;
            }
        }
        vals->data[ooff] = best;
        if (idx) idx[k] = arg;
        for (int i = a->ndim - 1; i >= 0; i--) {
            if (i == d) continue;
            if (++pos[i] < a->shape[i]) break;
            pos[i] = 0;
        }
    }
}
