/* examples/vae/inpaint.c: vae inpaint: repairs images with missing pixels. The missing pixels
 * start as the mean training image; then encode -> decode is repeated --iters times, each time
 * putting the observed pixels back (the pseudo-Gibbs procedure of Rezende et al. 2014; by default
 * with the posterior mean instead of a draw, so the result is deterministic, with --sample with
 * z ~ q(z|x); the missing pixels always take the decoded mean).
 * It prints the mean squared error on the missing pixels of the iterated fill against two
 * baselines: the mean training image, and a single encode/decode pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "examples/vae/cli.h"
#include "io/png.h"

#define CMD "inpaint"

/* ---- masks -------------------------------------------------------------------------------------
 */

/* A mask from an 8-bit grayscale PNG of the model's image size: pixels below 128 (dark) are
 * missing, the others observed. */
static int read_mask(const char *path, int64_t rows, int64_t cols, real **keep_out,
                     bool *per_image) {
    uint8_t *px;
    int w, h;
    char err[512];
    if (png_read_gray(path, &px, &w, &h, err, sizeof err) != PNG_OK)
        return cli_error(CLI_FAIL, CMD, "--mask: %s", err);
    if (w != cols || h != rows) {
        nb_free(px);
        return cli_error(CLI_FAIL, CMD, "--mask %s: the mask is %dx%d but the images are %lldx%lld",
                         path, w, h, (long long)cols, (long long)rows);
    }
    real *keep = nb_malloc((size_t)(rows * cols) * sizeof *keep);
    for (int64_t k = 0; k < rows * cols; k++) keep[k] = px[k] >= 128 ? 1 : 0;
    nb_free(px);
    *keep_out = keep;
    *per_image = false;
    return 0;
}

/* Fills keep [rows * cols] with 1 where a pixel is observed and 0 where it is missing, from a
 * spec: center (the middle half in each direction), left (left half missing), top (top half
 * missing) or random:P (each pixel missing with probability P, drawn per image from rng: keep is
 * then [n, D]), or FILE.png (read_mask). Returns 0, or CLI_USAGE naming the spec (CLI_FAIL for
 * a bad mask file). *per_image tells which shape. */
static int make_mask(const char *spec, int64_t n, int64_t rows, int64_t cols, nb_rng *rng,
                     real **keep_out, bool *per_image) {
    int64_t D = rows * cols;
    size_t len = strlen(spec);
    if (len > 4 && !strcmp(spec + len - 4, ".png"))
        return read_mask(spec, rows, cols, keep_out, per_image);
    *per_image = !strncmp(spec, "random:", 7);
    real *keep = nb_malloc((size_t)((*per_image ? n : 1) * D) * sizeof *keep);
    if (*per_image) {
        char *end;
        double p = strtod(spec + 7, &end);
        if (end == spec + 7 || *end || !(p > 0 && p < 1)) {
            nb_free(keep);
            return cli_error(CLI_USAGE, CMD,
                             "--mask %s: random:P needs a probability P strictly between 0 and 1",
                             spec);
        }
        for (int64_t k = 0; k < n * D; k++) keep[k] = nb_rng_uniform(rng) < p ? 0 : 1;
    } else {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                bool miss;
                if (!strcmp(spec, "center"))
                    miss = r >= rows / 4 && r < rows - rows / 4 && c >= cols / 4 &&
                           c < cols - cols / 4;
                else if (!strcmp(spec, "left"))
                    miss = c < cols / 2;
                else if (!strcmp(spec, "top"))
                    miss = r < rows / 2;
                else {
                    nb_free(keep);
                    return cli_error(CLI_USAGE, CMD,
                                     "--mask: unknown mask '%s' (expected center, left, top, "
                                     "random:P or FILE.png)",
                                     spec);
                }
                keep[r * cols + c] = miss ? 0 : 1;
            }
    }
    *keep_out = keep;
    return 0;
}

/* ---- the fill ----------------------------------------------------------------------------------
 */

/* Mean squared error over the missing pixels of fill against x, both [n, D]. */
static double missing_mse(const real *fill, const real *x, const real *keep, bool per_image,
                          int64_t n, int64_t D) {
    double se = 0, count = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < D; k++) {
            real w = 1 - keep[(per_image ? i * D : 0) + k];
            double e = fill[i * D + k] - x[i * D + k];
            se += w * e * e;
            count += w;
        }
    return count > 0 ? se / count : NAN;
}

/* One pseudo-Gibbs step on cur [n, D]: decode(encode(cur)) on the missing pixels, x elsewhere.
 * The code is a draw z ~ q(z|cur) with rng, else the posterior mean. Scratch: mu, lv [n, Z],
 * dec [n, D]. */
static void fill_step(const vae_model *m, real *cur, const real *x, const int64_t *labels,
                      const real *keep, bool per_image, int64_t n, int64_t D, real *mu, real *lv,
                      real *dec, nb_rng *rng) {
    int64_t Z = m->cfg.latent;
    cli_encode_set(m, cur, labels, n, mu, lv);
    for (int64_t k = 0; rng && k < n * Z; k++)
        mu[k] += (real)(exp(0.5 * (double)lv[k]) * nb_rng_normal(rng));
    cli_decode_set(m, mu, labels, n, dec);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < D; k++) {
            real w = keep[(per_image ? i * D : 0) + k];
            cur[i * D + k] = w * x[i * D + k] + (1 - w) * dec[i * D + k];
        }
}

/* Rows of up to 8: originals, masked (missing pixels mid-gray), repaired; for the first n. */
static int write_picture(const char *path, const vae_model *m, const real *x, const real *keep,
                         bool per_image, const real *fill, int64_t n) {
    int64_t D = m->cfg.rows * m->cfg.cols, cols = n < 8 ? n : 8, blocks = (n + cols - 1) / cols;
    real *grid = nb_malloc((size_t)(3 * blocks * cols * D) * sizeof *grid);
    for (int64_t k = 0; k < 3 * blocks * cols * D; k++) grid[k] = (real)(128 / 255.0);
    for (int64_t i = 0; i < n; i++) {
        int64_t b = i / cols, c = i % cols;
        real *o = grid + ((3 * b) * cols + c) * D, *mk = o + cols * D, *rp = mk + cols * D;
        for (int64_t k = 0; k < D; k++) {
            real w = keep[(per_image ? i * D : 0) + k];
            o[k] = x[i * D + k];
            mk[k] = w > 0 ? x[i * D + k] : (real)0.5;
            rp[k] = fill[i * D + k];
        }
    }
    int rc = cli_write_grid(CMD, path, grid, 3 * blocks * cols, m->cfg.rows, m->cfg.cols, cols);
    nb_free(grid);
    return rc;
}

int cli_inpaint(int argc, char **argv) {
    const char *model = NULL, *data = "data/digits", *mask = "center", *out = NULL;
    int64_t iters = 20, limit = -1, shown = 8, seed = 1, threads = 0;
    bool sample = false;
    cli_opt o[] = {
        {"--model", CLI_STRING, &model, "FILE", "a checkpoint written by vae train", 0, 0, true,
         false},
        {"--data", CLI_STRING, &data, "DIR",
         "IDX data: its test images are repaired, its training mean is the baseline (default "
         "data/digits)",
         0, 0, false, false},
        {"--mask", CLI_STRING, &mask, "M",
         "missing pixels: center (default), left, top, random:P (each pixel with probability P) or "
         "FILE.png (8-bit gray, image-sized, dark = missing)",
         0, 0, false, false},
        {"--iters", CLI_INT, &iters, "N", "encode -> decode rounds (default 20)", 1, 10000, false,
         false},
        {"--sample", CLI_FLAG, &sample, NULL,
         "draw each round's code from q(z|x) instead of taking its mean", 0, 0, false, false},
        {"--out", CLI_STRING, &out, "FILE",
         "PNG grid: rows of originals, masked and repaired images", 0, 0, true, false},
        {"--n", CLI_INT, &shown, "N", "images in the grid, 8 to a row (default 8)", 1, 1000, false,
         false},
        {"--limit", CLI_INT, &limit, "N", "repair only the first N test images", 1, 1e12, false,
         false},
        {"--seed", CLI_INT, &seed, "S", "random seed of random:P masks and --sample (default 1)", 0,
         9e18, false, false},
        {"--threads", CLI_INT, &threads, "N", CLI_THREADS_HELP, 0, 1024, false, false},
    };
    int no = (int)(sizeof o / sizeof o[0]);
    int rc = cli_parse(CMD,
                       "Fills the missing pixels of test images by repeated encode -> decode with "
                       "the observed pixels held fixed.",
                       o, no, argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    cli_set_threads(CMD, threads);
    vae_model m;
    if (cli_model_load(CMD, model, &m, NULL, -1, NULL)) return CLI_FAIL;
    idx_dataset train = {0}, test = {0};
    bool cond = m.cfg.num_classes > 0;
    rc = cli_load_split_labels(CMD, data, 1, -1, cond, &train);
    if (!rc) rc = cli_load_split_labels(CMD, data, 0, limit, cond, &test);
    if (!rc) rc = cli_check_data(CMD, data, &test, &m.cfg);
    real *keep = NULL;
    bool per_image = false;
    nb_rng rng;
    nb_rng_seed(&rng, (uint64_t)seed);
    if (!rc) rc = make_mask(mask, test.n, m.cfg.rows, m.cfg.cols, &rng, &keep, &per_image);
    if (!rc) {
        int64_t n = test.n, D = m.cfg.rows * m.cfg.cols, Z = m.cfg.latent, *labels;
        real *x = cli_set_pixels(&test, &labels);
        real *tx = cli_set_pixels(&train, NULL);
        real *mean = nb_calloc((size_t)D * sizeof *mean);
        for (int64_t i = 0; i < train.n; i++)
            for (int64_t k = 0; k < D; k++) mean[k] += tx[i * D + k] / (real)train.n;
        real *cur = nb_malloc((size_t)(n * D) * sizeof *cur);
        real *mu = nb_malloc((size_t)(n * Z) * sizeof *mu),
             *lv = nb_malloc((size_t)(n * Z) * sizeof *lv),
             *dec = nb_malloc((size_t)(n * D) * sizeof *dec);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < D; k++) {
                real w = keep[(per_image ? i * D : 0) + k];
                cur[i * D + k] = w * x[i * D + k] + (1 - w) * mean[k];
            }
        printf("inpainting %lld test images of %s, mask %s\n", (long long)n, data, mask);
        double e_mean = missing_mse(cur, x, keep, per_image, n, D), e_one = NAN;
        printf("error on the missing pixels by iteration:");
        for (int64_t t = 1; t <= iters; t++) {
            fill_step(&m, cur, x, labels, keep, per_image, n, D, mu, lv, dec, sample ? &rng : NULL);
            double e = missing_mse(cur, x, keep, per_image, n, D);
            if (t == 1) e_one = e;
            if ((t & (t - 1)) == 0 || t == iters) printf(" %lld: %.4f", (long long)t, e);
        }
        double e_iter = missing_mse(cur, x, keep, per_image, n, D);
        printf("\nmean squared error on the missing pixels:\n");
        printf("  mean training image      %.6f\n", e_mean);
        printf("  one encode/decode pass   %.6f\n", e_one);
        printf("  %-4lld iterations          %.6f\n", (long long)iters, e_iter);
        rc = write_picture(out, &m, x, keep, per_image, cur, shown < n ? shown : n);
        if (!rc) printf("wrote %s\n", out);
        nb_free(x), nb_free(labels), nb_free(tx), nb_free(mean), nb_free(cur), nb_free(mu),
            nb_free(lv), nb_free(dec);
    }
    nb_free(keep);
    idx_free(&train);
    idx_free(&test);
    vae_free(&m);
    return rc;
}
