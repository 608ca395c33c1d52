/* tests/test_vae_apps.c: the uses of a trained VAE, run through build/vae on the shipped digits:
 * encode/decode (codes file contents, quantization error, compression figures, IDX round trip),
 * arithmetic (moved images read as the target class by a classifier), inpaint (the iterated fill
 * beats the mean image), on MLP and conv checkpoints; and their error messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/png.h"
#include "nn/safetensors.h"
#include "tests/check_main.h"
#include "tests/testutil.h"

#define MLP           "--epochs 3 --hidden 256 --latent 8 --threads 2"
#define CONV          "--arch conv --limit 256 --epochs 1 --channels 4,8 --latent 4 --batch 64 --threads 2"
#define GRID(n, cell) ((n) * (cell) + ((n) + 1) * 2) /* png_write_grid's size, 2 px separators */

static char tmp[256];
static char mlp[600], conv[600]; /* trained tiny models */
static int mlp_status = -1, conv_status = -1;
static char train_output[1 << 16];

#define vae(out, len, ...) nbt_run("vae", out, len, __VA_ARGS__)

static void suite_setup(void) {
    nbt_mkdtemp(tmp, sizeof tmp, "vae_apps");
    snprintf(mlp, sizeof mlp, "%s/mlp/model.safetensors", tmp);
    snprintf(conv, sizeof conv, "%s/conv/model.safetensors", tmp);
    mlp_status = vae(train_output, sizeof train_output, "train " MLP " --out %s/mlp", tmp);
    if (mlp_status == 0)
        conv_status = vae(train_output, sizeof train_output, "train " CONV " --out %s/conv", tmp);
}

static void suite_teardown(void) {
    nbt_rmdir(tmp);
}

static void check_models(void) {
    ck_assert_msg(mlp_status == 0 && conv_status == 0, "training the fixtures failed:\n%s",
                  train_output);
}

/* Checks the PNG signature and the IHDR width and height of path. */
static void check_png(const char *path, int width, int height) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s was not written", path);
    unsigned char h[24];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    ck_assert_msg(n == 24 && memcmp(h + 1, "PNG", 3) == 0 && memcmp(h + 12, "IHDR", 4) == 0,
                  "%s is not a PNG", path);
    int w = (h[16] << 24) | (h[17] << 16) | (h[18] << 8) | h[19];
    int hh = (h[20] << 24) | (h[21] << 16) | (h[22] << 8) | h[23];
    ck_assert_msg(w == width && hh == height, "%s is %dx%d, expected %dx%d", path, w, hh, width,
                  height);
}

/* The test digits as pixels [n, 784] and labels. */
static real *test_digits(idx_dataset *d, int64_t **labels) {
    char err[512];
    ck_assert_msg(idx_load_split("data/digits", 0, 10, d, err, sizeof err) == IDX_OK, "%s", err);
    int64_t *index = nb_malloc((size_t)d->n * sizeof *index);
    for (int64_t i = 0; i < d->n; i++) index[i] = i;
    real *x = nb_malloc((size_t)(d->n * 784) * sizeof *x);
    *labels = nb_malloc((size_t)d->n * sizeof **labels);
    idx_batch(d, index, d->n, x, *labels);
    nb_free(index);
    return x;
}

/* ---- encode / decode ---------------------------------------------------------------------------
 */

/* The row of encode's table for `bits`: bytes per image, pixel MSE and NLL. */
static void table_row(const char *out, int bits, double *bytes, double *mse, double *nll) {
    char pat[16];
    snprintf(pat, sizeof pat, "\n%5d ", bits);
    const char *p = strstr(out, pat);
    ck_assert_msg(p != NULL, "no row for %d bits in:\n%s", bits, out);
    double raw, gz;
    int b;
    ck_assert_int_eq(sscanf(p + 1, "%d %lf %lfx %lfx %lf %lf", &b, bytes, &raw, &gz, mse, nll), 6);
    ck_assert_msg(isfinite(*mse) && *mse > 0 && isfinite(*nll) && *nll > 0, "%s", out);
    ck_assert_msg(fabs(raw - 784 / *bytes) < 0.1 * raw, "%s", out);
}

/* Reads the codes file: mu as stored (dequantized here), its dtype, and the labels. */
static st_dtype read_codes(const char *path, int64_t n, int64_t Z, real *mu, int64_t *labels,
                           bool *has_logvar) {
    st_file *f;
    st_error err;
    ck_assert_msg(st_open(path, &f, &err) == ST_OK, "%s", err.message);
    const st_tensor *t = st_find(f, "mu");
    ck_assert(t && t->ndim == 2 && t->shape[0] == n && t->shape[1] == Z);
    st_dtype dt = t->dtype;
    int64_t shape[2] = {n, Z};
    if (dt == ST_F32) {
        ck_assert(st_read_real(f, "mu", mu, 2, shape, &err) == ST_OK);
    } else {
        int64_t *q = nb_malloc((size_t)(n * Z) * sizeof *q);
        real off[64], sc[64];
        ck_assert(st_read_i64(f, "mu", q, 2, shape, &err) == ST_OK);
        ck_assert(st_read_real(f, "mu.offset", off, 1, &Z, &err) == ST_OK);
        ck_assert(st_read_real(f, "mu.scale", sc, 1, &Z, &err) == ST_OK);
        for (int64_t k = 0; k < n * Z; k++) mu[k] = off[k % Z] + sc[k % Z] * (real)q[k];
        nb_free(q);
    }
    ck_assert(st_read_i64(f, "labels", labels, 1, &n, &err) == ST_OK);
    *has_logvar = st_find(f, "logvar") != NULL;
    st_close(f);
    return dt;
}

START_TEST(test_encode_decode) {
    check_models();
    char out[8192], codes[700], dir[700], png[700];
    idx_dataset d;
    int64_t *labels, n = 1000, Z = 8;
    real *x = test_digits(&d, &labels);
    real *mu32 = nb_malloc((size_t)(n * Z) * sizeof *mu32), *mu = nb_malloc(sizeof *mu * n * Z);
    int64_t *lab = nb_malloc((size_t)n * sizeof *lab);
    bool has_logvar;
    const int bits[3] = {32, 16, 8};
    const st_dtype want[3] = {ST_F32, ST_U16, ST_U8};
    double mse[3], nll[3], bytes[3];
    for (int b = 0; b < 3; b++) {
        snprintf(codes, sizeof codes, "%s/codes%d.safetensors", tmp, bits[b]);
        int rc = vae(out, sizeof out, "encode --model %s --bits %d %s --out %s", mlp, bits[b],
                     b == 0 ? "--with-logvar" : "", codes);
        ck_assert_msg(rc == 0, "%s", out);
        ck_assert_msg(strstr(out, "raw image 784 bytes") && strstr(out, "gzip"), "%s", out);
        table_row(out, bits[b], &bytes[b], &mse[b], &nll[b]);
        ck_assert_double_eq_tol(bytes[b], Z * bits[b] / 8.0 + (bits[b] < 32 ? 8.0 * Z / n : 0),
                                1e-2);
        ck_assert_int_eq(read_codes(codes, n, Z, b == 0 ? mu32 : mu, lab, &has_logvar), want[b]);
        ck_assert(has_logvar == (b == 0));
        for (int64_t i = 0; i < n; i++) ck_assert_int_eq(lab[i], labels[i]);
        if (b > 0) { /* quantized: within half a step of the float code */
            double range = 0, worst = 0;
            for (int64_t k = 0; k < n * Z; k++) worst = fmax(worst, fabs(mu[k] - mu32[k]));
            for (int64_t j = 0; j < Z; j++) {
                double lo = INFINITY, hi = -INFINITY;
                for (int64_t i = 0; i < n; i++)
                    lo = fmin(lo, mu32[i * Z + j]), hi = fmax(hi, mu32[i * Z + j]);
                range = fmax(range, hi - lo);
            }
            ck_assert_msg(worst <= 0.5 * range / ((1 << bits[b]) - 1) + 1e-5,
                          "%d bits: error %g for range %g", bits[b], worst, range);
        }
    }
    /* the same table in every run; fewer bits never reconstruct better than the float codes by
     * more than noise, and 16 bits are as good as 32 */
    ck_assert_double_eq_tol(mse[1], mse[0], 1e-5);
    ck_assert_msg(mse[2] < mse[0] * 1.2 + 1e-4, "8-bit MSE %g vs float %g", mse[2], mse[0]);
    /* a trained model reconstructs better than predicting gray everywhere (MSE ~0.1 on digits) */
    ck_assert_msg(mse[0] < 0.08, "float MSE %g", mse[0]);

    /* decode: the IDX split reads back and matches the encoder's reconstruction error */
    snprintf(codes, sizeof codes, "%s/codes32.safetensors", tmp);
    snprintf(dir, sizeof dir, "%s/decoded", tmp);
    snprintf(png, sizeof png, "%s/decoded.png", tmp);
    int rc = vae(out, sizeof out, "decode --model %s --codes %s --out %s --idx %s --n 16", mlp,
                 codes, png, dir);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(png, GRID(8, 28), GRID(2, 28));
    idx_dataset back;
    char err[512];
    ck_assert_msg(idx_load_split(dir, 0, 10, &back, err, sizeof err) == IDX_OK, "%s", err);
    ck_assert_int_eq(back.n, n);
    double se = 0;
    for (int64_t k = 0; k < n * 784; k++) {
        double e = back.images[k] / 255.0 - x[k];
        se += e * e;
    }
    for (int64_t i = 0; i < n; i++) ck_assert_int_eq(back.labels[i], labels[i]);
    ck_assert_msg(fabs(se / (double)(n * 784) - mse[0]) < 2e-4, "IDX MSE %g, encode said %g",
                  se / (double)(n * 784), mse[0]);
    rc = vae(out, sizeof out, "eval --model %s --data %s --iw 2 --json", mlp, dir);
    ck_assert_msg(rc == 0 && strstr(out, "\"examples\": 1000"), "%s", out);
    idx_free(&back);
    nb_free(x), nb_free(labels), nb_free(mu32), nb_free(mu), nb_free(lab);
    idx_free(&d);
}
END_TEST

/* ---- arithmetic --------------------------------------------------------------------------------
 */

START_TEST(test_arithmetic_moves_to_the_class) {
    check_models();
    char out[8192], png[700], dir[700], err[512];
    snprintf(png, sizeof png, "%s/arith.png", tmp);
    snprintf(dir, sizeof dir, "%s/arith", tmp);
    int rc = vae(out, sizeof out,
                 "arithmetic --model %s --from 1 --to 7 --rows 50 --steps 5 "
                 "--out %s --idx %s",
                 mlp, png, dir);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(png, GRID(6, 28), GRID(50, 28));

    idx_dataset train, moved, test;
    ck_assert_msg(idx_load_split("data/digits", 1, 10, &train, err, sizeof err) == IDX_OK, "%s",
                  err);
    ck_assert_msg(idx_load_split(dir, 0, 10, &moved, err, sizeof err) == IDX_OK, "%s", err);
    ck_assert_int_eq(moved.n, 50);
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nbt_classifier clf;
    nbt_classifier_train(&clf, &train, 10, 2, &rng);
    /* the first 50 test ones, as the command picked them, and their moved versions */
    int64_t *labels;
    real *x = test_digits(&test, &labels);
    real *ones = nb_malloc(50 * 784 * sizeof *ones), *mx = nb_malloc(50 * 784 * sizeof *mx);
    int64_t k = 0, idx[50], read_o[50], read_m[50];
    for (int64_t i = 0; i < test.n && k < 50; i++)
        if (labels[i] == 1) memcpy(ones + 784 * k++, x + 784 * i, 784 * sizeof *x);
    for (int64_t i = 0; i < 50; i++) idx[i] = i;
    idx_batch(&moved, idx, 50, mx, NULL);
    nbt_classifier_predict(&clf, ones, 50, 784, read_o);
    nbt_classifier_predict(&clf, mx, 50, 784, read_m);
    int was7 = 0, now7 = 0, was1 = 0;
    for (int i = 0; i < 50; i++) {
        was7 += read_o[i] == 7, now7 += read_m[i] == 7, was1 += read_o[i] == 1;
        ck_assert_int_eq(moved.labels[i], 7);
    }
    fprintf(stderr,
            "arithmetic 1 -> 7: originals read as 1: %d/50, as 7: %d/50; moved as 7: %d/50\n", was1,
            was7, now7);
    ck_assert_msg(was1 >= 40, "the classifier reads only %d of 50 ones as 1", was1);
    ck_assert_msg(now7 >= 25 && now7 >= was7 + 20,
                  "moved images read as 7: %d of 50 (originals %d)", now7, was7);
    nbt_classifier_free(&clf);
    nb_free(x), nb_free(labels), nb_free(ones), nb_free(mx);
    idx_free(&train), idx_free(&moved), idx_free(&test);
}
END_TEST

/* ---- inpaint -----------------------------------------------------------------------------------
 */

static double after(const char *out, const char *key) {
    const char *p = strstr(out, key);
    ck_assert_msg(p != NULL, "no '%s' in:\n%s", key, out);
    double v = strtod(p + strlen(key), NULL);
    ck_assert_msg(isfinite(v) && v >= 0, "%s", out);
    return v;
}

START_TEST(test_inpaint_beats_the_mean_image) {
    check_models();
    char out[8192], png[700];
    snprintf(png, sizeof png, "%s/inpaint.png", tmp);
    int rc =
        vae(out, sizeof out, "inpaint --model %s --mask random:0.5 --iters 10 --out %s", mlp, png);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(png, GRID(8, 28), GRID(3, 28));
    double mean = after(out, "mean training image"), one = after(out, "one encode/decode pass"),
           iter = after(out, "10   iterations");
    fprintf(stderr, "inpaint random:0.5: mean image %.4f, one pass %.4f, 10 iterations %.4f\n",
            mean, one, iter);
    ck_assert_msg(iter < 0.8 * mean, "iterated %g vs mean image %g", iter, mean);
    ck_assert_msg(strstr(out, "1000 test images"), "%s", out);
    /* --sample draws each round's code: reproducible for a seed, another fill, still better
     * than the mean image */
    char again[8192];
    const char *fmt = "inpaint --model %s --mask random:0.5 --iters 10 --limit 200 %s --out %s";
    rc = vae(out, sizeof out, fmt, mlp, "--sample --seed 5", png);
    ck_assert_msg(rc == 0, "%s", out);
    rc = vae(again, sizeof again, fmt, mlp, "--sample --seed 5", png);
    ck_assert_msg(rc == 0 && !strcmp(out, again), "%s\n---\n%s", out, again);
    double sampled = after(out, "10   iterations");
    rc = vae(again, sizeof again, fmt, mlp, "--seed 5", png);
    ck_assert_msg(rc == 0 && sampled != after(again, "10   iterations"), "%s", out);
    ck_assert_msg(sampled < 0.8 * after(out, "mean training image"), "%s", out);
    /* the block masks run and print the same table */
    const char *masks[3] = {"center", "left", "top"};
    for (int i = 0; i < 3; i++) {
        rc = vae(out, sizeof out,
                 "inpaint --model %s --mask %s --iters 2 --limit 100 --n 12 --out %s", mlp,
                 masks[i], png);
        ck_assert_msg(rc == 0 && strstr(out, "100 test images"), "%s", out);
        ck_assert(after(out, "mean training image") > 0);
        check_png(png, GRID(8, 28), GRID(6, 28));
    }
    /* a PNG mask: the same square as center reads as the same mask */
    uint8_t sq[784];
    char mask[700], err[256], ref[8192];
    for (int k = 0; k < 784; k++)
        sq[k] = (k / 28 >= 7 && k / 28 < 21 && k % 28 >= 7 && k % 28 < 21) ? 0 : 255;
    snprintf(mask, sizeof mask, "%s/mask.png", tmp);
    ck_assert_int_eq(png_write(mask, sq, 28, 28, 1, err, sizeof err), PNG_OK);
    rc = vae(out, sizeof out, "inpaint --model %s --mask %s --iters 2 --limit 100 --out %s", mlp,
             mask, png);
    ck_assert_msg(rc == 0, "%s", out);
    rc = vae(ref, sizeof ref, "inpaint --model %s --mask center --iters 2 --limit 100 --out %s",
             mlp, png);
    ck_assert_msg(rc == 0, "%s", ref);
    ck_assert_double_eq(after(out, "2    iterations"), after(ref, "2    iterations"));
    ck_assert_double_eq(after(out, "mean training image"), after(ref, "mean training image"));
    /* masks the reader refuses, by name */
    uint8_t rgb[28 * 28 * 3] = {0};
    ck_assert_int_eq(png_write(mask, rgb, 28, 28, 3, err, sizeof err), PNG_OK);
    rc = vae(out, sizeof out, "inpaint --model %s --mask %s --out %s", mlp, mask, png);
    ck_assert_msg(rc == 1 && strstr(out, "8-bit grayscale") && strstr(out, "mask.png"), "%s", out);
    ck_assert_int_eq(png_write(mask, sq, 14, 56, 1, err, sizeof err), PNG_OK);
    rc = vae(out, sizeof out, "inpaint --model %s --mask %s --out %s", mlp, mask, png);
    ck_assert_msg(rc == 1 && strstr(out, "14x56"), "%s", out);
}
END_TEST

/* ---- conv checkpoints --------------------------------------------------------------------------
 */

START_TEST(test_conv_checkpoint) {
    check_models();
    char out[8192], codes[700], png[700], dir[700];
    snprintf(codes, sizeof codes, "%s/conv_codes.safetensors", tmp);
    snprintf(png, sizeof png, "%s/conv.png", tmp);
    snprintf(dir, sizeof dir, "%s/conv_dec", tmp);
    int rc = vae(out, sizeof out, "encode --model %s --bits 8 --limit 200 --out %s", conv, codes);
    ck_assert_msg(rc == 0 && strstr(out, "encoded 200 test images"), "%s", out);
    double bytes, mse, nll;
    table_row(out, 8, &bytes, &mse, &nll);
    ck_assert_double_eq_tol(bytes, 4 + 8.0 * 4 / 200, 1e-2); /* latent 4 */
    rc = vae(out, sizeof out, "decode --model %s --codes %s --idx %s", conv, codes, dir);
    ck_assert_msg(rc == 0, "%s", out);
    idx_dataset back;
    char err[512];
    ck_assert_msg(idx_load_split(dir, 0, 10, &back, err, sizeof err) == IDX_OK, "%s", err);
    ck_assert_int_eq(back.n, 200);
    idx_free(&back);
    rc = vae(out, sizeof out, "arithmetic --model %s --from 0 --to 1 --rows 3 --out %s", conv, png);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(png, GRID(7, 28), GRID(3, 28));
    rc = vae(out, sizeof out, "inpaint --model %s --mask top --iters 3 --limit 50 --out %s", conv,
             png);
    ck_assert_msg(rc == 0 && strstr(out, "50 test images"), "%s", out);
    check_png(png, GRID(8, 28), GRID(3, 28));
    /* codes of the MLP (latent 8) do not fit the conv model (latent 4) */
    snprintf(codes, sizeof codes, "%s/codes32.safetensors", tmp);
    rc = vae(out, sizeof out, "encode --model %s --out %s --limit 10", mlp, codes);
    ck_assert_msg(rc == 0, "%s", out);
    rc = vae(out, sizeof out, "decode --model %s --codes %s --out %s", conv, codes, png);
    ck_assert_msg(rc == 1 && strstr(out, "8 dimensions") && strstr(out, "has 4"), "%s", out);
}
END_TEST

/* ---- errors and help ---------------------------------------------------------------------------
 */

static void expect_fail(int want, const char *needle, const char *fmt, const char *a) {
    char out[8192], args[1400];
    snprintf(args, sizeof args, fmt, a, tmp);
    int rc = vae(out, sizeof out, "%s", args);
    ck_assert_msg(rc == want && strstr(out, needle), "'vae %s' exited %d (want %d), no '%s':\n%s",
                  args, rc, want, needle, out);
}

START_TEST(test_errors) {
    check_models();
    expect_fail(2, "--bits", "encode --model %s --bits 12 --out %s/x", mlp);
    expect_fail(2, "--split", "encode --model %s --split valid --out %s/x", mlp);
    expect_fail(2, "unknown mask 'diagonal'", "inpaint --model %s --mask diagonal --out %s/x.png",
                mlp);
    expect_fail(2, "random:P", "inpaint --model %s --mask random:1.5 --out %s/x.png", mlp);
    expect_fail(2, "random:P", "inpaint --model %s --mask random: --out %s/x.png", mlp);
    expect_fail(1, "--to 12", "arithmetic --model %s --from 1 --to 12 --out %s/x.png", mlp);
    expect_fail(2, "--from", "arithmetic --model %s --to 1 --out %s/x.png", mlp);
    expect_fail(2, "--idx", "decode --model %s --codes x%s", mlp);
    expect_fail(1, "not a file of vae encode",
                "decode --model %s --codes %s/mlp/model.safetensors --out x.png", mlp);
    expect_fail(1, "missing.safetensors",
                "decode --model %s --codes %s/missing.safetensors --out "
                "x.png",
                mlp);
    expect_fail(1, "nodir", "inpaint --model %s --data %s/nodir --out x.png", mlp);
}
END_TEST

START_TEST(test_conditional_model) {
    /* encode, decode and inpaint pass each image's label to the model; arithmetic refuses it */
    char out[8192], dir[400], codes[800], png[800];
    snprintf(dir, sizeof dir, "%s/cvae", tmp);
    int rc = vae(out, sizeof out,
                 "train --conditional --limit 256 --epochs 1 --hidden 32 --latent 4 --threads 2 "
                 "--out %s",
                 dir);
    ck_assert_msg(rc == 0, "%s", out);
    snprintf(codes, sizeof codes, "%s/codes.safetensors", dir);
    snprintf(png, sizeof png, "%s/x.png", dir);
    rc =
        vae(out, sizeof out, "encode --model %s/model.safetensors --limit 20 --out %s", dir, codes);
    ck_assert_msg(rc == 0, "%s", out);
    rc = vae(out, sizeof out, "decode --model %s/model.safetensors --codes %s --out %s", dir, codes,
             png);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(png, GRID(8, 28), GRID(3, 28));
    rc = vae(out, sizeof out, "inpaint --model %s/model.safetensors --limit 20 --iters 2 --out %s",
             dir, png);
    ck_assert_msg(rc == 0, "%s", out);
    rc = vae(out, sizeof out, "arithmetic --model %s/model.safetensors --from 1 --to 7 --out %s",
             dir, png);
    ck_assert_msg(rc == 1 && strstr(out, "conditional"), "%s", out);
}
END_TEST

START_TEST(test_help) {
    const char *cmds[] = {"encode", "decode", "arithmetic", "inpaint"};
    char out[8192];
    for (int i = 0; i < 4; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: vae %s", cmds[i]);
        int rc = vae(out, sizeof out, "%s --help", cmds[i]);
        ck_assert_msg(rc == 0 && strstr(out, want) && strstr(out, "--model"), "%s", out);
    }
    ck_assert_int_eq(vae(out, sizeof out, "--help"), 0);
    for (int i = 0; i < 4; i++) ck_assert_msg(strstr(out, cmds[i]), "%s", out);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("vae_apps");
    TCase *tc = tcase_create("apps");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_encode_decode);
    tcase_add_test(tc, test_arithmetic_moves_to_the_class);
    tcase_add_test(tc, test_inpaint_beats_the_mean_image);
    tcase_add_test(tc, test_conv_checkpoint);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_conditional_model);
    tcase_add_test(tc, test_help);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
