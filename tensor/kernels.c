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

/* ---- the iterator: up to four operands walked over one shape --------------------------------- */

#define ITER_OPS 4 /* the output and up to three inputs */

typedef struct {
    int ndim;
    int nops;
    int64_t shape[NB_MAX_DIMS];
    int64_t st[ITER_OPS][NB_MAX_DIMS];
    real *p[ITER_OPS];
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
    real *p[ITER_OPS];
    int64_t st[ITER_OPS];
    for (int k = 0; k < ITER_OPS; k++) {
        p[k] = it->p[k];
        st[k] = it->st[k][last];
    }
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
    int nt = (parallel_ok && rows * n >= NB_PAR_MIN) ? nb_threads_now() : 1;
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
            int64_t st[ITER_OPS];
            for (int k = 0; k < ITER_OPS; k++) st[k] = it->st[k][last];
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
                real *p[ITER_OPS] = {NULL};
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

/* The per-op loops below are made by calling a row function with a literal op, which the
 * compiler folds to that op's formula and vectorizes; that needs every call inlined, however
 * many ops the tables hold (past ~20 cases GCC's inliner stops on its own). */
#if defined(__GNUC__)
#define K_INLINE static inline __attribute__((always_inline))
#else
#define K_INLINE static inline
#endif

/* ---- scalar functions ------------------------------------------------------------------------ */

/* Written without branches on x's sign so loops over them vectorize. */
K_INLINE real sigmoid(real x) {
    real e = nb_exp(-RF(fabs)(x)); /* in (0, 1]: never overflows */
    return (x >= 0 ? 1 : e) / (1 + e);
}

K_INLINE real softplus(real x) {
    return (x > 0 ? x : 0) + nb_log1p_unit(nb_exp(-RF(fabs)(x))); /* exp(-|x|) is in (0, 1] */
}

/* d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density. */
K_INLINE real gelu_grad(real x) {
    return nb_normal_cdf(x) + x * (real)0.39894228040143267794 * nb_exp(-(real)0.5 * x * x);
}

/* d/dx x sigmoid(x) = s (1 + x (1 - s)). */
K_INLINE real silu_grad(real x) {
    real s = sigmoid(x);
    return s * (1 + x * (1 - s));
}

/* Squares and cubes as products, as PyTorch computes them: the loop over them vectorizes (the
 * compiler splits it on p), where pow is a libm call per element. */
K_INLINE real pow_scalar(real x, real p) {
    return p == 2 ? x * x : (p == 3 ? x * x * x : RF(pow)(x, p));
}

/* d/dx x^p = p x^(p-1), and 0 for p == 0 (PyTorch's rule: p x^(p-1) would be 0 * inf = NaN at
 * x == 0). */
K_INLINE real pow_grad(real x, real p) {
    return p == 0 ? 0 : (p == 2 ? 2 * x : (p == 3 ? 3 * x * x : p * RF(pow)(x, p - 1)));
}

/* ---- sin and cos of large arguments ----------------------------------------------------------
 * nb_sin and nb_cos reduce x exactly only up to NB_TRIG_FAST_MAX; a row holding a larger |x| (or
 * an infinity) runs libm's sin and cos instead: a scan that vectorizes, then the libm loop only
 * for such rows. g is the upstream gradient of the backward rows (NULL for K_SIN and K_COS). */

static bool trig_row_is_large(int64_t n, const real *x, int64_t sx) {
#ifdef NB_DOUBLE
    (void)n, (void)x, (void)sx;
    return false; /* nb_sin and nb_cos are libm's already */
#else
    int large = 0;
    for (int64_t i = 0; i < n; i++) large |= RF(fabs)(x[i * sx]) > NB_TRIG_FAST_MAX;
    return large != 0;
#endif
}

static void trig_row_libm(bool is_sin, int64_t n, real *o, int64_t so, const real *g, int64_t sg,
                          const real *x, int64_t sx, bool acc) {
    for (int64_t i = 0; i < n; i++) {
        real v = x[i * sx];
        real y = g ? (is_sin ? g[i * sg] * RF(cos)(v) : -g[i * sg] * RF(sin)(v))
                   : (is_sin ? RF(sin)(v) : RF(cos)(v));
        o[i * so] = acc ? o[i * so] + y : y;
    }
}

/* The formulas of kernels.h's tables, one case each. */
#define K_FORMULA_CASE(name, formula)                                                              \
    case name:                                                                                     \
        return formula;

K_INLINE real unary1(k_unary_op op, real x, real p0, real p1) {
    switch (op) { K_UNARY_OPS(K_FORMULA_CASE) }
    return 0;
}

K_INLINE real binary1(k_binary_op op, real a, real b, real p0, real p1) {
    switch (op) { K_BINARY_OPS(K_FORMULA_CASE) }
    return 0;
}

K_INLINE real ternary1(k_ternary_op op, real a, real b, real c) {
    switch (op) { K_TERNARY_OPS(K_FORMULA_CASE) }
    return 0;
}
#undef K_FORMULA_CASE

/* ---- element-wise ---------------------------------------------------------------------------- */

typedef struct {
    int op;
    real p0, p1;
    bool acc;
} ew_ctx;

/* The loops are written once with stride arguments; calling them with literal 1s lets the
 * compiler produce a vectorized contiguous copy of each. */
K_INLINE void unary_row(k_unary_op op, int64_t n, real *o, int64_t so, const real *a, int64_t sa,
                        real p0, real p1, bool acc) {
    if (acc)
        for (int64_t i = 0; i < n; i++) o[i * so] += unary1(op, a[i * sa], p0, p1);
    else
        for (int64_t i = 0; i < n; i++) o[i * so] = unary1(op, a[i * sa], p0, p1);
}

/* A case per op with the op as a literal, so each contiguous loop is specialised and
 * vectorized (n, p and c are unary_inner's). An input that is one value for the row (stride 0:
 * sum's backward spreading its gradient) is one op and a fill. */
#define K_UNARY_ROW(name, formula)                                                                 \
    case name:                                                                                     \
        unary_row(name, n, p[0], 1, p[1], 1, c->p0, c->p1, c->acc);                                \
        return;
NB_VECTOR_CLONES static void unary_inner(int64_t n, real *const *p, const int64_t *st,
                                         const void *vctx) {
    const ew_ctx *c = vctx;
    k_unary_op op = (k_unary_op)c->op;
    if ((op == K_SIN || op == K_COS) && trig_row_is_large(n, p[1], st[1])) {
        trig_row_libm(op == K_SIN, n, p[0], st[0], NULL, 0, p[1], st[1], c->acc);
        return;
    }
    if (st[0] == 1 && st[1] == 1) {
        switch (op) { K_UNARY_OPS(K_UNARY_ROW) }
    }
    if (st[0] == 1 && st[1] == 0) {
        real v = unary1(op, p[1][0], c->p0, c->p1);
        unary_row(K_COPY, n, p[0], 1, &v, 0, 0, 0, c->acc);
        return;
    }
    unary_row(op, n, p[0], st[0], p[1], st[1], c->p0, c->p1, c->acc);
}
#undef K_UNARY_ROW

/* A copy whose inner dim is contiguous on one side only and whose next dim is contiguous on the
 * other (a transpose made contiguous, or its gradient written back through the transpose): the
 * two dims in TILE x TILE tiles, so each cache line read or written is used whole while it is
 * in cache, instead of one element per line along the strided side. */
enum { TILE = 32 };

static bool copy_wants_tiles(const iter_t *it) {
    int L = it->ndim - 1, M = L - 1;
    if (L < 1 || it->shape[L] < TILE / 2 || it->shape[M] < TILE / 2) return false;
    const int64_t *so = it->st[0], *sa = it->st[1];
    /* a stride of 0 is a broadcast (sum's backward spreading a value per row), not a transpose:
     * the row loop fills those */
    if (sa[L] == 0 || so[L] == 0) return false;
    return (so[L] == 1 && sa[L] != 1 && sa[M] == 1) || (sa[L] == 1 && so[L] != 1 && so[M] == 1);
}

/* One tile: o[i, j] (+)= a[i, j] for i < r, j < c, with the given strides (one side's inner
 * stride is 1). A function of its own so that it is compiled per ISA (gathers on AVX2 and up). */
NB_VECTOR_CLONES static void copy_tile(real *o, int64_t som, int64_t sol, const real *a,
                                       int64_t sam, int64_t sal, int64_t r, int64_t c, bool acc) {
    if (sol == 1) {
        for (int64_t i = 0; i < r; i++) {
            real *d = o + i * som;
            const real *s = a + i * sam;
            if (acc)
                for (int64_t j = 0; j < c; j++) d[j] += s[j * sal];
            else
                for (int64_t j = 0; j < c; j++) d[j] = s[j * sal];
        }
        return;
    }
    for (int64_t i = 0; i < r; i++) {
        real *d = o + i * som;
        const real *s = a + i * sam;
        if (acc)
            for (int64_t j = 0; j < c; j++) d[j * sol] += s[j];
        else
            for (int64_t j = 0; j < c; j++) d[j * sol] = s[j];
    }
}

static void copy_tiled(const iter_t *it, bool acc) {
    int L = it->ndim - 1, M = L - 1;
    int64_t planes = 1, R = it->shape[M], C = it->shape[L];
    for (int d = 0; d < M; d++) planes *= it->shape[d];
    int64_t tr = (R + TILE - 1) / TILE, tc = (C + TILE - 1) / TILE, jobs = planes * tr * tc;
    int64_t som = it->st[0][M], sol = it->st[0][L], sam = it->st[1][M], sal = it->st[1][L];
    NB_PARALLEL_FOR(planes * R * C)
    for (int64_t job = 0; job < jobs; job++) {
        int64_t plane = job / (tr * tc), i0 = job % (tr * tc) / tc * TILE, j0 = job % tc * TILE;
        real *o = it->p[0];
        const real *a = it->p[1];
        for (int d = M - 1; d >= 0; d--) {
            int64_t k = plane % it->shape[d];
            plane /= it->shape[d];
            o += k * it->st[0][d], a += k * it->st[1][d];
        }
        int64_t i1 = i0 + TILE < R ? i0 + TILE : R, j1 = j0 + TILE < C ? j0 + TILE : C;
        copy_tile(o + i0 * som + j0 * sol, som, sol, a + i0 * sam + j0 * sal, sam, sal, i1 - i0,
                  j1 - j0, acc);
    }
}

void k_unary(k_unary_op op, const Tensor *a, Tensor *out, real p0, real p1, bool acc) {
    Tensor va = broadcast_to("unary", a, out);
    const Tensor *ops[2] = {out, &va};
    iter_t it;
    iter_init(&it, 2, ops);
    if (op == K_COPY && copy_wants_tiles(&it)) {
        copy_tiled(&it, acc);
        return;
    }
    ew_ctx c = {(int)op, p0, p1, acc};
    iter_run(&it, unary_inner, &c, true, true);
}

K_INLINE void binary_row(k_binary_op op, int64_t n, real *o, int64_t so, const real *a, int64_t sa,
                         const real *b, int64_t sb, real p0, real p1, bool acc) {
    if (acc)
        for (int64_t i = 0; i < n; i++) o[i * so] += binary1(op, a[i * sa], b[i * sb], p0, p1);
    else
        for (int64_t i = 0; i < n; i++) o[i * so] = binary1(op, a[i * sa], b[i * sb], p0, p1);
}

/* As K_UNARY_ROW, for binary_inner: b a row too (sb 1) or one value for the row (sb 0: a bias, or
 * the row max that softmax's exp(a - max) subtracts). */
#define K_BINARY_ROW(name, formula)                                                                \
    case name:                                                                                     \
        binary_row(name, n, p[0], 1, p[1], 1, p[2], sb, c->p0, c->p1, c->acc);                     \
        return;
NB_VECTOR_CLONES static void binary_inner(int64_t n, real *const *p, const int64_t *st,
                                          const void *vctx) {
    const ew_ctx *c = vctx;
    k_binary_op op = (k_binary_op)c->op;
    if ((op == K_SIN_BWD || op == K_COS_BWD) && trig_row_is_large(n, p[2], st[2])) {
        trig_row_libm(op == K_SIN_BWD, n, p[0], st[0], p[1], st[1], p[2], st[2], c->acc);
        return;
    }
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
        enum { sb = 1 };
        switch (op) { K_BINARY_OPS(K_BINARY_ROW) }
    }
    if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
        enum { sb = 0 };
        switch (op) { K_BINARY_OPS(K_BINARY_ROW) }
    }
    binary_row(op, n, p[0], st[0], p[1], st[1], p[2], st[2], c->p0, c->p1, c->acc);
}
#undef K_BINARY_ROW

void k_binary(k_binary_op op, const Tensor *a, const Tensor *b, Tensor *out, real p0, real p1,
              bool acc) {
    Tensor va = broadcast_to("binary", a, out), vb = broadcast_to("binary", b, out);
    const Tensor *ops[3] = {out, &va, &vb};
    iter_t it;
    iter_init(&it, 3, ops);
    ew_ctx c = {(int)op, p0, p1, acc};
    iter_run(&it, binary_inner, &c, true, true);
}

K_INLINE void ternary_row(k_ternary_op op, int64_t n, real *o, int64_t so, const real *a,
                          int64_t sa, const real *b, int64_t sb, const real *c, int64_t sc,
                          bool acc) {
    if (acc)
        for (int64_t i = 0; i < n; i++) o[i * so] += ternary1(op, a[i * sa], b[i * sb], c[i * sc]);
    else
        for (int64_t i = 0; i < n; i++) o[i * so] = ternary1(op, a[i * sa], b[i * sb], c[i * sc]);
}

/* As K_UNARY_ROW, for ternary_inner. */
#define K_TERNARY_ROW(name, formula)                                                               \
    case name:                                                                                     \
        ternary_row(name, n, p[0], 1, p[1], 1, p[2], 1, p[3], 1, c->acc);                          \
        return;
NB_VECTOR_CLONES static void ternary_inner(int64_t n, real *const *p, const int64_t *st,
                                           const void *vctx) {
    const ew_ctx *c = vctx;
    k_ternary_op op = (k_ternary_op)c->op;
    if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {
        switch (op) { K_TERNARY_OPS(K_TERNARY_ROW) }
    }
    ternary_row(op, n, p[0], st[0], p[1], st[1], p[2], st[2], p[3], st[3], c->acc);
}
#undef K_TERNARY_ROW

void k_ternary(k_ternary_op op, const Tensor *a, const Tensor *b, const Tensor *c, Tensor *out,
               bool acc) {
    Tensor va = broadcast_to("ternary", a, out), vb = broadcast_to("ternary", b, out),
           vc = broadcast_to("ternary", c, out);
    const Tensor *ops[4] = {out, &va, &vb, &vc};
    iter_t it;
    iter_init(&it, 4, ops);
    ew_ctx ctx = {(int)op, 0, 0, acc};
    iter_run(&it, ternary_inner, &ctx, true, true);
}

/* ---- reductions ------------------------------------------------------------------------------ */

NB_VECTOR_CLONES double k_dsum(const real *a, int64_t n) {
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
