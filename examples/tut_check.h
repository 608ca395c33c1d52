/* examples/tut_check.h: the one check the tutorial's samples share: does a tensor hold the
 * numbers worked out by hand? Each sample exits 1 when a check fails, so `make test` (which runs
 * them) notices a tutorial that no longer matches the code. */
#ifndef NB_TUT_CHECK_H
#define NB_TUT_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include "tensor/tensor.h"

/* Tolerance for comparing float (or double) results with formulas evaluated by hand. */
#ifdef NB_DOUBLE
#define TUT_TOL 1e-9
#else
#define TUT_TOL 2e-4
#endif

/* True when every element of got (any layout, row-major order) is within TUT_TOL * (1 + |want|)
 * of want; prints one line either way. */
static inline bool tut_close(const char *what, const Tensor *got, const real *want) {
    double worst = 0;
    int64_t at = 0;
    bool ok = got != NULL;
    for (int64_t i = 0; ok && i < got->numel; i++) {
        int64_t idx[NB_MAX_DIMS], r = i;
        for (int d = got->ndim - 1; d >= 0; d--) idx[d] = r % got->shape[d], r /= got->shape[d];
        double err = fabs((double)tensor_get(got, idx) - (double)want[i]);
        if (!(err <= TUT_TOL * (1 + fabs((double)want[i])))) ok = false, at = i;
        if (err > worst) worst = err;
    }
    if (ok)
        printf("  %-36s matches the hand formula (max error %.2g)\n", what, worst);
    else if (!got)
        printf("  %-36s FAILED: no gradient\n", what);
    else
        printf("  %-36s FAILED at element %lld (error %.3g)\n", what, (long long)at, worst);
    return ok;
}

#endif
