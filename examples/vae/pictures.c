/* examples/vae/pictures.c: sample grids, reconstructions, interpolations and the 2-D latent
 * manifold as PNG files. Everything here runs with grad mode off and resets the tape. */
#include <math.h>
#include <string.h>

#include "examples/vae/cli.h"
#include "io/png.h"

#define GRID_COLS 8

int cli_write_grid(const char *cmd, const char *path, const real *imgs, int64_t n, int64_t rows,
                   int64_t cols, int64_t grid_cols) {
    char err[512];
    if (png_write_grid(path, imgs, (int)n, (int)rows, (int)cols, (int)grid_cols, err, sizeof err) !=
        PNG_OK)
        return cli_error(CLI_FAIL, cmd, "%s", err);
    return 0;
}

/* Writes the step tensor imgs [n, D] as a grid of `cols` columns. */
static int write_grid(const char *cmd, const vae_model *m, const char *path, const Tensor *imgs,
                      int64_t cols) {
    real *buf = nb_malloc((size_t)imgs->numel * sizeof *buf);
    tensor_to_array(imgs, buf);
    int rc = cli_write_grid(cmd, path, buf, imgs->shape[0], m->cfg.rows, m->cfg.cols, cols);
    nb_free(buf);
    return rc;
}

int cli_write_samples(const char *cmd, const vae_model *m, const char *path, int64_t n, int label,
                      int64_t per_class, nb_rng *rng) {
    int K = m->cfg.num_classes;
    int64_t cols = GRID_COLS;
    if (K > 0 && label < 0) {
        n = per_class * K;
        cols = per_class;
    }
    int64_t *labels = nb_malloc((size_t)n * sizeof *labels);
    for (int64_t i = 0; i < n; i++) labels[i] = label >= 0 ? label : i / cols;
    bool prev = ag_set_grad_enabled(false);
    Tensor *imgs = vae_sample(m, n, cli_labels(m, labels), rng);
    int rc = write_grid(cmd, m, path, imgs, cols < n ? cols : n);
    ag_reset();
    ag_set_grad_enabled(prev);
    nb_free(labels);
    return rc;
}

int cli_write_reconstructions(const char *cmd, const vae_model *m, const idx_dataset *d,
                              const char *path, int64_t n) {
    if (n > d->n) n = d->n;
    int64_t D = d->rows * d->cols, cols = n < GRID_COLS ? n : GRID_COLS;
    int64_t rows = (n + cols - 1) / cols;
    int64_t *index = nb_malloc((size_t)n * sizeof *index);
    int64_t *labels = nb_malloc((size_t)n * sizeof *labels);
    for (int64_t i = 0; i < n; i++) index[i] = i;
    Tensor *x = tensor_zeros(NB_SHAPE(n, D));
    idx_batch(d, index, n, x->data, labels);
    bool prev = ag_set_grad_enabled(false);
    Tensor *rec = vae_reconstruct(m, x, cli_labels(m, labels));
    real *r = nb_malloc((size_t)(n * D) * sizeof *r);
    tensor_to_array(rec, r);
    /* Row pairs: up to 8 originals, then their reconstructions; empty cells stay gray. */
    Tensor *grid = ag_full(NB_SHAPE(2 * rows * cols, D), (real)(PNG_GRID_SEP_GRAY / 255.0));
    for (int64_t i = 0; i < n; i++) {
        int64_t row = i / cols, col = i % cols;
        memcpy(grid->data + ((2 * row) * cols + col) * D, x->data + i * D,
               (size_t)D * sizeof(real));
        memcpy(grid->data + ((2 * row + 1) * cols + col) * D, r + i * D, (size_t)D * sizeof(real));
    }
    int rc = write_grid(cmd, m, path, grid, cols);
    ag_reset();
    ag_set_grad_enabled(prev);
    nb_free(r);
    tensor_free(x);
    nb_free(labels);
    nb_free(index);
    return rc;
}

int cli_write_interpolations(const char *cmd, const vae_model *m, const idx_dataset *d,
                             const char *path, int64_t pairs, int64_t steps) {
    if (pairs > d->n / 2) pairs = d->n / 2;
    if (pairs < 1) return cli_error(CLI_FAIL, cmd, "interpolation needs at least 2 test images");
    int64_t D = d->rows * d->cols, cols = steps + 2;
    Tensor *x1 = tensor_zeros(NB_SHAPE(1, D)), *x2 = tensor_zeros(NB_SHAPE(1, D));
    bool prev = ag_set_grad_enabled(false);
    Tensor *grid = ag_zeros(NB_SHAPE(pairs * cols, D));
    for (int64_t p = 0; p < pairs; p++) {
        int64_t i1 = 2 * p, i2 = 2 * p + 1;
        int64_t l1, l2;
        idx_batch(d, &i1, 1, x1->data, &l1);
        idx_batch(d, &i2, 1, x2->data, &l2);
        Tensor *line = vae_interpolate(m, x1, x2, m->cfg.num_classes > 0 ? l1 : 0, (int)steps);
        real *row = grid->data + p * cols * D;
        memcpy(row, x1->data, (size_t)D * sizeof(real));
        tensor_to_array(line, row + D);
        memcpy(row + (cols - 1) * D, x2->data, (size_t)D * sizeof(real));
    }
    int rc = write_grid(cmd, m, path, grid, cols);
    ag_reset();
    ag_set_grad_enabled(prev);
    tensor_free(x1);
    tensor_free(x2);
    return rc;
}

/* ---- the 2-D manifold --------------------------------------------------------------------------
 */

double cli_normal_quantile(double p) {
    double lo = -40, hi = 40; /* bisection on the CDF: exact to double precision */
    for (int i = 0; i < 200 && hi - lo > 1e-15; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

int cli_write_manifold(const char *cmd, const vae_model *m, const char *path, int64_t grid,
                       int label) {
    if (m->cfg.latent != 2)
        return cli_error(CLI_FAIL, cmd, "the manifold needs a 2-D latent space");
    int64_t n = grid * grid;
    real *z = nb_malloc((size_t)(2 * n) * sizeof *z);
    int64_t *labels = nb_malloc((size_t)n * sizeof *labels);
    /* Row r (top to bottom) has z1 from high to low; column c has z0 from low to high. */
    for (int64_t r = 0; r < grid; r++)
        for (int64_t c = 0; c < grid; c++) {
            z[2 * (r * grid + c)] = (real)cli_normal_quantile((c + 0.5) / (double)grid);
            z[2 * (r * grid + c) + 1] = (real)cli_normal_quantile(1 - (r + 0.5) / (double)grid);
            labels[r * grid + c] = label < 0 ? 0 : label;
        }
    bool prev = ag_set_grad_enabled(false);
    Tensor *imgs = vae_decode_image(m, ag_constant(NB_SHAPE(n, 2), z), cli_labels(m, labels));
    int rc = write_grid(cmd, m, path, imgs, grid);
    ag_reset();
    ag_set_grad_enabled(prev);
    nb_free(labels);
    nb_free(z);
    return rc;
}
