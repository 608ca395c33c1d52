/* examples/vae/sets.c: whole data sets through the model (encode every image, decode every
 * code), the image error measures, and writing images back as an IDX split: the pieces that
 * encode, decode, arithmetic and inpaint share. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "examples/vae/cli.h"

#define SET_BATCH 100 /* examples per forward pass */

real *cli_set_pixels(const idx_dataset *d, int64_t **labels) {
    int64_t D = d->rows * d->cols;
    real *x = nb_malloc((size_t)(d->n * D) * sizeof *x);
    int64_t *lab = nb_malloc((size_t)d->n * sizeof *lab);
    int64_t *index = nb_malloc((size_t)d->n * sizeof *index);
    for (int64_t i = 0; i < d->n; i++) index[i] = i;
    idx_batch(d, index, d->n, x, lab);
    nb_free(index);
    if (labels)
        *labels = lab;
    else
        nb_free(lab);
    return x;
}

void cli_encode_set(const vae_model *m, const real *x, const int64_t *labels, int64_t n, real *mu,
                    real *logvar) {
    int64_t D = m->cfg.rows * m->cfg.cols, Z = m->cfg.latent;
    bool prev = ag_set_grad_enabled(false);
    for (int64_t i = 0; i < n; i += SET_BATCH) {
        int64_t b = n - i < SET_BATCH ? n - i : SET_BATCH;
        Tensor *mu_t, *lv_t;
        vae_encode(m, ag_constant(NB_SHAPE(b, D), x + i * D),
                   cli_labels(m, labels ? labels + i : NULL), &mu_t, &lv_t);
        tensor_to_array(mu_t, mu + i * Z);
        if (logvar) tensor_to_array(lv_t, logvar + i * Z);
        ag_reset();
    }
    ag_set_grad_enabled(prev);
}

void cli_decode_set(const vae_model *m, const real *z, const int64_t *labels, int64_t n,
                    real *img) {
    int64_t D = m->cfg.rows * m->cfg.cols, Z = m->cfg.latent;
    bool prev = ag_set_grad_enabled(false);
    for (int64_t i = 0; i < n; i += SET_BATCH) {
        int64_t b = n - i < SET_BATCH ? n - i : SET_BATCH;
        Tensor *p = vae_decode_image(m, ag_constant(NB_SHAPE(b, Z), z + i * Z),
                                     cli_labels(m, labels ? labels + i : NULL));
        tensor_to_array(p, img + i * D);
        ag_reset();
    }
    ag_set_grad_enabled(prev);
}

void cli_image_errors(const real *p, const real *x, int64_t n, int64_t D, double *mse,
                      double *nll) {
    double se = 0, ll = 0;
    for (int64_t k = 0; k < n * D; k++) {
        double pk = fmin(fmax((double)p[k], 1e-6), 1 - 1e-6), xk = x[k];
        se += (pk - xk) * (pk - xk);
        ll -= xk * log(pk) + (1 - xk) * log(1 - pk);
    }
    *mse = n ? se / (double)(n * D) : NAN;
    *nll = n ? ll / (double)n : NAN;
}

/* ---- IDX output --------------------------------------------------------------------------------
 */

/* Writes one IDX u8 file: the magic 00 00 08 ndims, big-endian u32 dims, then the bytes. */
static int write_idx(const char *cmd, const char *path, const uint8_t *data, int ndims,
                     const int64_t *dims) {
    FILE *f = fopen(path, "wb");
    if (!f) return cli_error(CLI_FAIL, cmd, "cannot write %s: %s", path, strerror(errno));
    unsigned char head[4 + 4 * 3] = {0, 0, 0x08, (unsigned char)ndims};
    size_t bytes = 1;
    for (int i = 0; i < ndims; i++) {
        uint32_t v = (uint32_t)dims[i];
        for (int k = 0; k < 4; k++) head[4 + 4 * i + k] = (unsigned char)(v >> (24 - 8 * k));
        bytes *= (size_t)dims[i];
    }
    bool ok = fwrite(head, 1, 4 + 4 * (size_t)ndims, f) == 4 + 4 * (size_t)ndims &&
              fwrite(data, 1, bytes, f) == bytes;
    if (fclose(f) != 0) ok = false;
    if (!ok) return cli_error(CLI_FAIL, cmd, "cannot write %s", path);
    return 0;
}

int cli_write_idx_split(const char *cmd, const char *dir, const real *imgs, const int64_t *labels,
                        int64_t n, int64_t rows, int64_t cols) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return cli_error(CLI_FAIL, cmd, "cannot create %s: %s", dir, strerror(errno));
    int64_t D = rows * cols;
    uint8_t *px = nb_malloc((size_t)(n * D));
    uint8_t *lab = nb_malloc((size_t)(n > 0 ? n : 1));
    for (int64_t k = 0; k < n * D; k++) {
        double v = isnan(imgs[k]) ? 0 : fmin(fmax((double)imgs[k], 0), 1);
        px[k] = (uint8_t)lround(255 * v);
    }
    for (int64_t i = 0; i < n; i++) lab[i] = labels ? (uint8_t)labels[i] : 0;
    char path[1024];
    int rc = CLI_FAIL;
    if (cli_path(cmd, path, sizeof path, dir, "t10k-images-idx3-ubyte") &&
        !write_idx(cmd, path, px, 3, (int64_t[]){n, rows, cols}) &&
        cli_path(cmd, path, sizeof path, dir, "t10k-labels-idx1-ubyte"))
        rc = write_idx(cmd, path, lab, 1, (int64_t[]){n});
    nb_free(px);
    nb_free(lab);
    return rc;
}
