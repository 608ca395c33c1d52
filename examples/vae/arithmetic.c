/* examples/vae/arithmetic.c: vae arithmetic: attribute vectors in the latent space. The vector
 * from class A to class B is the mean posterior mean of B's images minus that of A's (over the
 * training set); each row of the grid is a test image of class A, then its code moved along the
 * vector in --steps steps from 0 to 1 and decoded. Without labels, --from and --to are test image
 * indices and the vector joins their two codes. */
#include <math.h>
#include <string.h>

#include "examples/vae/cli.h"

#define CMD "arithmetic"

/* The mean code of d's images of class `label` into mean [Z]; false when there are none. */
static bool class_mean(const real *mu, const int64_t *labels, int64_t n, int64_t Z, int64_t label,
                       real *mean) {
    int64_t count = 0;
    memset(mean, 0, (size_t)Z * sizeof *mean);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] == label) {
            for (int64_t j = 0; j < Z; j++) mean[j] += mu[i * Z + j];
            count++;
        }
    for (int64_t j = 0; j < Z; j++) mean[j] /= (real)(count ? count : 1);
    return count > 0;
}

/* The codes of a whole split: mu [n, Z] (nb_malloc) and labels [n]. */
static real *split_codes(const vae_model *m, const idx_dataset *d, int64_t **labels) {
    real *x = cli_set_pixels(d, labels);
    real *mu = nb_malloc((size_t)(d->n * m->cfg.latent) * sizeof *mu);
    cli_encode_set(m, x, *labels, d->n, mu, NULL);
    nb_free(x);
    return mu;
}

int cli_arithmetic(int argc, char **argv) {
    const char *model = NULL, *data = "data/digits", *out = NULL, *idx = NULL;
    int64_t from = -1, to = -1, steps = 6, rows = 8, threads = 0;
    double scale = 1;
    cli_opt o[] = {
        {"--model", CLI_STRING, &model, "FILE", "a checkpoint written by vae train", 0, 0, true,
         false},
        {"--data", CLI_STRING, &data, "DIR", "IDX data (default data/digits)", 0, 0, false, false},
        {"--from", CLI_INT, &from, "A",
         "the class to start from (a test image index without labels)", 0, 1e12, true, false},
        {"--to", CLI_INT, &to, "B", "the class to move towards (an index without labels)", 0, 1e12,
         true, false},
        {"--steps", CLI_INT, &steps, "N", "points along the vector, 0 to --scale (default 6)", 2,
         100, false, false},
        {"--scale", CLI_REAL, &scale, "S", "how far to go along the vector (default 1)", -100, 100,
         false, false},
        {"--rows", CLI_INT, &rows, "N", "test images of class A, one per row (default 8)", 1, 1000,
         false, false},
        {"--out", CLI_STRING, &out, "FILE", "the PNG grid", 0, 0, true, false},
        {"--idx", CLI_STRING, &idx, "DIR",
         "also write the rows' last column (moved the whole way) as DIR's IDX test split, "
         "labelled B",
         0, 0, false, false},
        {"--threads", CLI_INT, &threads, "N", CLI_THREADS_HELP, 0, 1024, false, false},
    };
    int no = (int)(sizeof o / sizeof o[0]);
    int rc = cli_parse(CMD,
                       "Moves test images of class A along the latent vector from class A to class "
                       "B (mean code of B minus mean code of A) and draws each step.",
                       o, no, argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    cli_set_threads(CMD, threads);
    vae_model m;
    if (cli_model_load(CMD, model, &m, NULL, -1, NULL)) return CLI_FAIL;
    if (m.cfg.num_classes > 0) {
        vae_free(&m);
        return cli_error(CLI_FAIL, CMD,
                         "%s is a conditional model: its label, not its latent "
                         "code, carries the class; use vae sample --label instead",
                         model);
    }
    idx_dataset train = {0}, test = {0};
    bool labeled = true;
    char err[512];
    if (idx_load_split_unlabeled(data, 0, 256, &test, &labeled, err, sizeof err) != IDX_OK)
        rc = cli_error(CLI_FAIL, CMD, "cannot load the test set from %s: %s", data, err);
    if (!rc && labeled) rc = cli_load_split(CMD, data, 1, -1, &train);
    if (!rc) rc = cli_check_data(CMD, data, &test, &m.cfg);
    int64_t Z = m.cfg.latent, D = m.cfg.rows * m.cfg.cols;
    real *tmu = NULL, *vec = nb_calloc((size_t)Z * sizeof *vec), *a = NULL, *b = NULL;
    int64_t *tlab = NULL, *pick = nb_malloc((size_t)rows * sizeof *pick), n = 0;
    if (!rc) {
        tmu = split_codes(&m, &test, &tlab);
        a = nb_malloc((size_t)Z * sizeof *a), b = nb_malloc((size_t)Z * sizeof *b);
    }
    if (!rc && labeled) { /* classes: the training set's class means, test images of class A */
        int64_t *lab;
        real *mu = split_codes(&m, &train, &lab);
        if (!class_mean(mu, lab, train.n, Z, from, a))
            rc = cli_error(CLI_FAIL, CMD, "--from %lld: no training image of %s has that label",
                           (long long)from, data);
        else if (!class_mean(mu, lab, train.n, Z, to, b))
            rc = cli_error(CLI_FAIL, CMD, "--to %lld: no training image of %s has that label",
                           (long long)to, data);
        for (int64_t i = 0; !rc && i < test.n && n < rows; i++)
            if (tlab[i] == from) pick[n++] = i;
        if (!rc && n == 0)
            rc = cli_error(CLI_FAIL, CMD, "--from %lld: no test image of %s has that label",
                           (long long)from, data);
        nb_free(mu), nb_free(lab);
    } else if (!rc) { /* no labels: two test images */
        if (from >= test.n || to >= test.n)
            rc = cli_error(CLI_FAIL, CMD,
                           "--%s %lld: %s has no labels, so --from and --to are "
                           "test image indices, 0..%lld",
                           from >= test.n ? "from" : "to", (long long)(from >= test.n ? from : to),
                           data, (long long)test.n - 1);
        else {
            memcpy(a, tmu + from * Z, (size_t)Z * sizeof *a);
            memcpy(b, tmu + to * Z, (size_t)Z * sizeof *b);
            pick[n++] = from;
        }
    }
    if (!rc) {
        for (int64_t j = 0; j < Z; j++) vec[j] = b[j] - a[j];
        /* row r: the test image, then its code + t * scale * vec for t = 0 .. 1 */
        int64_t cols = steps + 1;
        real *z = nb_malloc((size_t)(n * steps * Z) * sizeof *z);
        real *img = nb_malloc((size_t)(n * steps * D) * sizeof *img);
        real *grid = nb_malloc((size_t)(n * cols * D) * sizeof *grid);
        real *last = nb_malloc((size_t)(n * D) * sizeof *last);
        int64_t *lab = nb_malloc((size_t)n * sizeof *lab);
        for (int64_t r = 0; r < n; r++)
            for (int64_t s = 0; s < steps; s++)
                for (int64_t j = 0; j < Z; j++)
                    z[(r * steps + s) * Z + j] =
                        tmu[pick[r] * Z + j] + (real)(scale * s / (steps - 1)) * vec[j];
        cli_decode_set(&m, z, NULL, n * steps, img);
        for (int64_t r = 0; r < n; r++) {
            idx_batch(&test, &pick[r], 1, grid + r * cols * D, NULL);
            memcpy(grid + (r * cols + 1) * D, img + r * steps * D,
                   (size_t)(steps * D) * sizeof *img);
            memcpy(last + r * D, img + (r * steps + steps - 1) * D, (size_t)D * sizeof *img);
            lab[r] = to;
        }
        double norm = 0;
        for (int64_t j = 0; j < Z; j++) norm += (double)vec[j] * vec[j];
        printf("attribute vector %s %lld -> %lld: |v| = %.4f; %lld rows of %lld steps (scale "
               "%g)\n",
               labeled ? "class" : "image", (long long)from, (long long)to, sqrt(norm),
               (long long)n, (long long)steps, scale);
        rc = cli_write_grid(CMD, out, grid, n * cols, m.cfg.rows, m.cfg.cols, cols);
        if (!rc && idx) rc = cli_write_idx_split(CMD, idx, last, lab, n, m.cfg.rows, m.cfg.cols);
        if (!rc) printf("wrote %s%s%s\n", out, idx ? " and " : "", idx ? idx : "");
        nb_free(z), nb_free(img), nb_free(grid), nb_free(last), nb_free(lab);
    }
    nb_free(tmu), nb_free(tlab), nb_free(vec), nb_free(a), nb_free(b), nb_free(pick);
    idx_free(&train);
    idx_free(&test);
    vae_free(&m);
    return rc;
}
