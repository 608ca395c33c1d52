/* tests/testutil.c: helpers shared by the Check programs; see testutil.h. */
#include "tests/testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "nn/loss.h"

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

/* ---- digits ------------------------------------------------------------------------------------
 */

void nbt_epoch(const idx_dataset *d, nb_rng *rng, nbt_step_fn step, void *ctx) {
    int64_t D = d->rows * d->cols;
    int64_t *perm = nb_malloc((size_t)d->n * sizeof *perm);
    idx_shuffle(perm, d->n, rng);
    Tensor *x = tensor_empty(NB_SHAPE(NBT_BATCH, D));
    int64_t labels[NBT_BATCH];
    for (int64_t i = 0; i + NBT_BATCH <= d->n; i += NBT_BATCH) {
        idx_batch(d, perm + i, NBT_BATCH, x->data, labels);
        step(ctx, x, labels);
        ag_reset();
    }
    tensor_free(x);
    nb_free(perm);
}

Tensor *nbt_classifier_logits(nbt_classifier *c, Tensor *x) {
    return nn_linear_forward(&c->l2, nn_relu(nn_linear_forward(&c->l1, x)));
}

static void classifier_step(void *ctx, Tensor *x, const int64_t *labels) {
    nbt_classifier *c = ctx;
    ag_backward(nn_cross_entropy(nbt_classifier_logits(c, x), labels, NN_MEAN));
    nn_optim_step(c->opt);
    nn_optim_zero_grad(c->opt);
}

void nbt_classifier_train(nbt_classifier *c, const idx_dataset *d, int classes, int epochs,
                          nb_rng *rng) {
    memset(c, 0, sizeof *c);
    nn_linear_init(&c->l1, d->rows * d->cols, 128, true, rng);
    nn_linear_init(&c->l2, 128, classes, true, rng);
    nn_linear_params(&c->l1, "fc1", &c->ps);
    nn_linear_params(&c->l2, "fc2", &c->ps);
    c->opt = nn_optim_adam(&c->ps, nn_adam_defaults(1e-3));
    for (int e = 0; e < epochs; e++) nbt_epoch(d, rng, classifier_step, c);
}

void nbt_classifier_predict(nbt_classifier *c, const real *x, int64_t n, int64_t D, int64_t *out) {
    bool prev = ag_set_grad_enabled(false);
    Tensor *logits = nbt_classifier_logits(c, ag_constant(NB_SHAPE(n, D), x));
    int64_t K = logits->shape[1];
    real *l = nb_malloc((size_t)(n * K) * sizeof *l);
    tensor_to_array(logits, l);
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        for (int64_t k = 1; k < K; k++)
            if (l[i * K + k] > l[i * K + best]) best = k;
        out[i] = best;
    }
    nb_free(l);
    ag_reset();
    ag_set_grad_enabled(prev);
}

void nbt_classifier_free(nbt_classifier *c) {
    nn_optim_free(c->opt);
    nn_params_free(&c->ps);
    nn_linear_free(&c->l1);
    nn_linear_free(&c->l2);
    memset(c, 0, sizeof *c);
}

void nbt_mkdtemp(char *dir, size_t len, const char *name) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, len, "%s/nabla_%s_XXXXXX", base, name);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

void nbt_rmdir(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}
