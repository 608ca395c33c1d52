/* tests/testutil.c: helpers shared by the Check programs; see testutil.h. */
#include "tests/testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

jmp_buf nbt_jump;

void nbt_jump_handler(const char *message) {
    (void)message;
    longjmp(nbt_jump, 1);
}

void nbt_gradcheck(const char *what, ag_fn f, Tensor *const *in, int n, void *ctx) {
    ag_gradcheck_result r;
    bool ok = ag_gradcheck(f, in, n, ctx, NULL, &r);
    ck_assert_msg(ok, "%s: %s", what, r.message);
}

Tensor *nbt_tensor(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed, bool grad) {
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    Tensor *t = tensor_empty(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++)
        t->data[i] = (real)(lo + (hi - lo) * nb_rng_uniform(&rng));
    if (grad) tensor_requires_grad(t, true);
    return t;
}

Tensor *nbt_param(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed) {
    return nbt_tensor(ndim, shape, lo, hi, seed, true);
}

void nbt_check_error_texts(const char *const *texts) {
    for (; *texts; texts++)
        ck_assert_msg(strstr(nb_last_error(), *texts) != NULL, "error \"%s\" lacks \"%s\"",
                      nb_last_error(), *texts);
}

void nbt_assert_close(const Tensor *a, const real *expect, double tol) {
    real *v = nb_malloc((size_t)(a->numel ? a->numel : 1) * sizeof(real));
    tensor_to_array(a, v);
    for (int64_t i = 0; i < a->numel; i++) {
        double d = fabs((double)v[i] - (double)expect[i]);
        if (!(d <= tol)) {
            double got = v[i];
            nb_free(v);
            ck_abort_msg("element %lld: got %.9g, expected %.9g", (long long)i, got,
                         (double)expect[i]);
        }
    }
    nb_free(v);
}

void nbt_assert_ref(const char *what, const char *part, const Tensor *t, const double *ref,
                    double tol) {
    real *v = nb_malloc((size_t)(t->numel ? t->numel : 1) * sizeof(real));
    tensor_to_array(t, v);
    for (int64_t i = 0; i < t->numel; i++) {
        double got = v[i], e = ref[i];
        bool ok = isnan(e)   ? isnan(got)
                  : isinf(e) ? got == e
                             : fabs(got - e) <= tol * (1 + fabs(e));
        if (!ok) {
            nb_free(v);
            ck_abort_msg("%s: %s[%lld] = %.10g, PyTorch %.10g", what, part, (long long)i, got, e);
        }
    }
    nb_free(v);
}

int nbt_run(const char *prog, char *out, size_t len, const char *fmt, ...) {
    const char *build = getenv("NABLA_BUILD");
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s/%s %s 2>&1", build && *build ? build : "build", prog, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t used = 0, n;
    char buf[4096];
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
        if (out && used + 1 < len) {
            size_t take = n < len - 1 - used ? n : len - 1 - used;
            memcpy(out + used, buf, take);
            used += take;
        }
    }
    if (out && len) out[used] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void nbt_write_idx(const char *path, const uint8_t *data, int ndims, const uint32_t *dims) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    uint8_t head[4] = {0, 0, 0x08, (uint8_t)ndims};
    fwrite(head, 1, 4, f);
    size_t n = 1;
    for (int i = 0; i < ndims; i++) {
        uint8_t be[4] = {(uint8_t)(dims[i] >> 24), (uint8_t)(dims[i] >> 16),
                         (uint8_t)(dims[i] >> 8), (uint8_t)dims[i]};
        fwrite(be, 1, 4, f);
        n *= dims[i];
    }
    fwrite(data, 1, n, f);
    ck_assert(fclose(f) == 0);
}
