/* autograd/gradcheck.c: finite-difference gradient checking; see gradcheck.h. */
#include "autograd/gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

ag_gradcheck_opts ag_gradcheck_defaults(void) {
#ifdef NB_DOUBLE
    ag_gradcheck_opts o = {1e-6, 1e-5, 1e-3};
#else
    ag_gradcheck_opts o = {1e-3, 5e-3, 1e-2};
#endif
    return o;
}

/* L = sum(y * w) in double. */
static double weighted_sum(const Tensor *y, const real *w) {
    real *v = nb_malloc((size_t)(y->numel ? y->numel : 1) * sizeof(real));
    tensor_to_array(y, v);
    double s = 0;
    for (int64_t i = 0; i < y->numel; i++) s += (double)v[i] * (double)w[i];
    nb_free(v);
    return s;
}

/* Clears the inputs' gradients so the next backward takes its fresh (write, don't add) path,
 * and fills the buffers it will reuse with NaN: a backward that leaves any element of a fresh
 * gradient unwritten then shows up as a NaN gradient. */
static void poison_grads(Tensor *const *in, int n) {
    for (int i = 0; i < n; i++) {
        if (!in[i]->requires_grad) continue;
        ag_grad(in[i]);
        tensor_clear_grad(in[i]);
        tensor_fill(in[i]->grad_spare, NAN);
    }
}

/* Element-wise equality (so -0 and +0 count as equal, unlike memcmp). */
static bool same_values(const real *a, const real *b, int64_t n) {
    for (int64_t k = 0; k < n; k++)
        if (a[k] != b[k]) return false;
    return true;
}

/* Copies every checked input's gradient into one flat buffer. */
static void grab_grads(Tensor *const *in, int n, real *out) {
    for (int i = 0; i < n; i++) {
        if (!in[i]->requires_grad) continue;
        if (in[i]->grad)
            memcpy(out, in[i]->grad->data, (size_t)in[i]->numel * sizeof(real));
        else
            memset(out, 0, (size_t)in[i]->numel * sizeof(real));
        out += in[i]->numel;
    }
}

static bool fail(ag_gradcheck_result *r, const char *msg) {
    r->ok = false;
    snprintf(r->message, sizeof r->message, "%s", msg);
    return false;
}

bool ag_gradcheck(ag_fn f, Tensor *const *in, int n, void *ctx, const ag_gradcheck_opts *opts,
                  ag_gradcheck_result *r) {
    ag_gradcheck_opts o = opts ? *opts : ag_gradcheck_defaults();
    memset(r, 0, sizeof *r);
    r->input = -1;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!in[i]->kept || !tensor_is_contiguous(in[i]))
            nb_fail("gradcheck", "input %d must be a contiguous kept tensor", i);
        if (in[i]->requires_grad) total += in[i]->numel;
    }
    real *g1 = nb_malloc((size_t)(total + 1) * sizeof(real));
    real *g2 = nb_malloc((size_t)(total + 1) * sizeof(real));
    ag_mark_t start = ag_mark();
    bool prev_mode = ag_set_grad_enabled(true);
    bool ok = true;

    /* analytic: backward from y with a fixed random upstream w */
    Tensor *y = f(in, ctx);
    nb_rng rng;
    nb_rng_seed(&rng, 20240611);
    Tensor *w = ag_randn(y->ndim, y->shape, &rng);
    Tensor *zero = ag_zeros(y->ndim, y->shape);
    if (!y->requires_grad) {
        ok = fail(r, "the output does not require grad: no input reaches it");
        goto done;
    }
    poison_grads(in, n);
    ag_backward_with(y, w);
    grab_grads(in, n, g1);
    for (int64_t k = 0; k < total; k++)
        if (g1[k] != g1[k]) {
            ok = fail(r, "backward left a gradient element unwritten (or NaN)");
            goto done;
        }

    /* backward twice gives the same gradients */
    poison_grads(in, n);
    ag_backward_with(y, w);
    grab_grads(in, n, g2);
    if (!same_values(g1, g2, total)) {
        ok = fail(r, "backward run twice gave different gradients");
        goto done;
    }
    /* a second backward without clearing adds to the gradients (each op's accumulating path;
     * every pass above took the fresh one): 2 g1, up to the rounding of the additions */
    ag_backward_with(y, w);
    grab_grads(in, n, g2);
    for (int64_t k = 0; k < total; k++)
        if (!(fabs((double)g2[k] - 2.0 * g1[k]) <= o.atol + o.rtol * fabs(2.0 * g1[k]))) {
            ok = fail(r, "a second backward did not add to the gradients (accumulating path)");
            goto done;
        }
    /* a zero upstream gradient gives zero gradients */
    poison_grads(in, n);
    ag_backward_with(y, zero);
    grab_grads(in, n, g2);
    for (int64_t k = 0; k < total; k++)
        if (g2[k] != 0) {
            ok = fail(r, "a zero upstream gradient gave a non-zero gradient");
            goto done;
        }

    /* numeric: central differences of L = sum(f(x) * w), grad mode off */
    ag_set_grad_enabled(false);
    {
        int64_t k = 0;
        for (int i = 0; i < n; i++) {
            if (!in[i]->requires_grad) continue;
            for (int64_t j = 0; j < in[i]->numel; j++, k++) {
                real *x = &in[i]->data[j];
                real x0 = *x;
                ag_mark_t m = ag_mark();
                *x = (real)(x0 + o.eps);
                double up = *x - (double)x0;
                double lp = weighted_sum(f(in, ctx), w->data);
                ag_release(m);
                *x = (real)(x0 - o.eps);
                double down = (double)x0 - *x;
                double lm = weighted_sum(f(in, ctx), w->data);
                ag_release(m);
                *x = x0;
                double num = (lp - lm) / (up + down), ana = g1[k], err = fabs(ana - num);
                if (err > r->max_abs_err || err != err) r->max_abs_err = err;
                if (!(err <= o.atol + o.rtol * fabs(num)) && ok) {
                    ok = false;
                    r->input = i;
                    r->index = j;
                    r->analytic = ana;
                    r->numeric = num;
                }
            }
        }
    }
    if (!ok) {
        char s[128];
        snprintf(r->message, sizeof r->message,
                 "input %d %s element %lld: analytic %.6g, numeric %.6g (eps %g, atol %g, rtol %g)",
                 r->input, nb_shape_str(s, in[r->input]->ndim, in[r->input]->shape),
                 (long long)r->index, r->analytic, r->numeric, o.eps, o.atol, o.rtol);
    } else {
        snprintf(r->message, sizeof r->message, "ok: %lld elements, max abs error %.3g",
                 (long long)total, r->max_abs_err);
    }
done:
    r->ok = ok;
    ag_set_grad_enabled(prev_mode);
    ag_release(start);
    nb_free(g1);
    nb_free(g2);
    return ok;
}
