/* tests/test_vae_cli.c: runs build/vae (or $NABLA_BUILD/vae) on a small slice of the shipped
 * digits for every subcommand and checks what it writes: metrics.jsonl, PNG sizes, checkpoints
 * that reload and resume exactly, eval's JSON and bound, anomaly's CSV and AUROC; and that bad
 * command lines and bad files exit non-zero with a message naming the problem. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/idx.h"
#include "tests/check_main.h"
#include "tests/testutil.h"

#define SMALL         "--limit 256 --epochs 1 --hidden 32 --latent 4 --threads 2"
#define GRID(n, cell) ((n) * (cell) + ((n) + 1) * 2) /* png_write_grid's size, 2 px separators */

static char tmp[256];     /* the suite's temp dir */
static char out_dir[512]; /* a trained tiny model: out_dir/model.safetensors */
static char model[600];
static int train_status = -1; /* exit status of the fixture's training run */
static char train_output[1 << 16];

/* ---- running the binary ---------------------------------------------------------------------- */

/* Runs "$NABLA_BUILD/vae <args>" (tests/testutil.h). */
#define vae(out, len, ...) nbt_run("vae", out, len, __VA_ARGS__)

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Checks the PNG signature and the IHDR width and height of path. */
static void check_png(const char *path, int width, int height) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s was not written", path);
    unsigned char h[24];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    ck_assert_msg(n == 24, "%s is too short for a PNG", path);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ck_assert_msg(memcmp(h, sig, 8) == 0, "%s lacks the PNG signature", path);
    ck_assert_msg(memcmp(h + 12, "IHDR", 4) == 0, "%s: first chunk is not IHDR", path);
    int w = (h[16] << 24) | (h[17] << 16) | (h[18] << 8) | h[19];
    int hh = (h[20] << 24) | (h[21] << 16) | (h[22] << 8) | h[23];
    ck_assert_msg(w == width && hh == height, "%s is %dx%d, expected %dx%d", path, w, hh, width,
                  height);
}

/* ---- a minimal reader of flat JSON objects of numbers ---------------------------------------- */

/* Parses one line `{"k": number, ...}`; stores up to max keys/values; returns the count or -1
 * when the line is not such an object (null counts as NaN). */
static int parse_flat(const char *s, char keys[][32], double *vals, int max) {
    int n = 0;
    while (*s == ' ') s++;
    if (*s++ != '{') return -1;
    for (;;) {
        while (*s == ' ') s++;
        if (*s++ != '"') return -1;
        const char *end = strchr(s, '"');
        if (!end || end - s >= 32 || n == max) return -1;
        memcpy(keys[n], s, (size_t)(end - s));
        keys[n][end - s] = '\0';
        s = end + 1;
        while (*s == ' ') s++;
        if (*s++ != ':') return -1;
        while (*s == ' ') s++;
        char *after;
        if (!strncmp(s, "null", 4)) {
            vals[n] = NAN;
            after = (char *)s + 4;
        } else {
            vals[n] = strtod(s, &after);
            if (after == s) return -1;
        }
        n++;
        s = after;
        while (*s == ' ') s++;
        if (*s == '}') break;
        if (*s++ != ',') return -1;
    }
    s++;
    while (*s == ' ' || *s == '\n') s++;
    return *s == '\0' ? n : -1;
}

static double get(char keys[][32], const double *vals, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (!strcmp(keys[i], key)) return vals[i];
    ck_abort_msg("key %s missing", key);
    return NAN;
}

/* Reads metrics.jsonl, checks every line, returns the number of lines; line i's values go to
 * train[i], test[i] when not NULL. */
static int check_metrics(const char *dir, double *train, double *test, int max) {
    char path[700], line[2048];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s was not written", path);
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        char keys[16][32];
        double vals[16];
        int n = parse_flat(line, keys, vals, 16);
        ck_assert_msg(n > 0, "%s line %d is not a flat JSON object: %s", path, lines + 1, line);
        const char *need[] = {"epoch",   "train_loss",    "test_loss",         "test_recon",
                              "test_kl", "epoch_seconds", "samples_per_second"};
        for (size_t k = 0; k < sizeof need / sizeof need[0]; k++)
            ck_assert_msg(isfinite(get(keys, vals, n, need[k])), "%s: %s is not finite", path,
                          need[k]);
        ck_assert_int_eq((int)get(keys, vals, n, "epoch"), lines + 1);
        double tl = get(keys, vals, n, "test_loss");
        double parts = get(keys, vals, n, "test_recon") + get(keys, vals, n, "test_kl");
        ck_assert_msg(fabs(tl - parts) < 1e-3 * fabs(tl) + 1e-3, "test_loss %g != recon + kl %g",
                      tl, parts);
        if (lines < max && train) train[lines] = get(keys, vals, n, "train_loss");
        if (lines < max && test) test[lines] = tl;
        lines++;
    }
    fclose(f);
    return lines;
}

/* ---- fixture: one tiny model for the read-only tests ----------------------------------------- */

static void suite_setup(void) {
    nbt_mkdtemp(tmp, sizeof tmp, "vae_cli");
    snprintf(out_dir, sizeof out_dir, "%s/base", tmp);
    snprintf(model, sizeof model, "%s/model.safetensors", out_dir);
    train_status = vae(train_output, sizeof train_output, "train " SMALL " --out %s", out_dir);
}

static void suite_teardown(void) {
    nbt_rmdir(tmp);
}

/* ---- train ----------------------------------------------------------------------------------- */

/* --version names the gemm kernel this CPU runs (NABLA_KERNEL chooses another one). */
START_TEST(test_version_names_the_kernel) {
    char out[512];
    ck_assert_int_eq(vae(out, sizeof out, "--version"), 0);
    ck_assert_msg(strstr(out, "gemm kernel ") && strstr(out, NB_REAL_NAME), "%s", out);
    setenv("NABLA_KERNEL", "generic", 1);
    ck_assert_int_eq(vae(out, sizeof out, "--version"), 0);
    unsetenv("NABLA_KERNEL");
    ck_assert_msg(strstr(out, "gemm kernel generic 4x8 " NB_REAL_NAME), "%s", out);
}
END_TEST

START_TEST(test_train_outputs) {
    ck_assert_msg(train_status == 0, "vae train failed (%d):\n%s", train_status, train_output);
    ck_assert_int_eq(check_metrics(out_dir, NULL, NULL, 0), 1);
    char path[700];
    snprintf(path, sizeof path, "%s/samples.png", out_dir);
    check_png(path, GRID(8, 28), GRID(8, 28)); /* 64 samples, 8 x 8 */
    snprintf(path, sizeof path, "%s/reconstructions.png", out_dir);
    check_png(path, GRID(8, 28), GRID(8, 28)); /* 32 images: 4 rows above 4 rows */
    snprintf(path, sizeof path, "%s/loss.png", out_dir);
    check_png(path, 640, 400);
    ck_assert(exists(model));
    ck_assert_msg(strstr(train_output, "epoch 1/1") != NULL, "%s", train_output);
}
END_TEST

START_TEST(test_train_variants) {
    /* Conditional: one row per class; the B form, warm-up, free bits, Gaussian, IWAE: run. */
    char out[8192], dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/cond", tmp);
    int rc = vae(out, sizeof out, "train " SMALL " --conditional --out %s", dir);
    ck_assert_msg(rc == 0, "conditional train failed (%d):\n%s", rc, out);
    snprintf(path, sizeof path, "%s/samples.png", dir);
    check_png(path, GRID(8, 28), GRID(10, 28));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = vae(out, sizeof out, "sample --model %s --out %s/c3.png --label 3 --n 16", path, dir);
    ck_assert_msg(rc == 0, "%s", out);
    snprintf(path, sizeof path, "%s/c3.png", dir);
    check_png(path, GRID(8, 28), GRID(2, 28));

    snprintf(dir, sizeof dir, "%s/variants", tmp);
    rc = vae(out, sizeof out,
             "train " SMALL " --capacity 5 --gamma 100 --warmup 3 --free-bits 0.1 "
             "--likelihood gaussian --hidden 24,16 --batch 100 --out %s",
             dir);
    ck_assert_msg(rc == 0, "variant train failed (%d):\n%s", rc, out);
    ck_assert_int_eq(check_metrics(dir, NULL, NULL, 0), 1);
    ck_assert_msg(strstr(out, "hidden=24,16") && strstr(out, "likelihood=gaussian") &&
                      strstr(out, "capacity=5"),
                  "config not shown:\n%s", out);

    snprintf(dir, sizeof dir, "%s/iwae", tmp);
    rc = vae(out, sizeof out, "train " SMALL " --iw 3 --hidden 24,16 --batch 100 --out %s", dir);
    ck_assert_msg(rc == 0, "IWAE train failed (%d):\n%s", rc, out);
    ck_assert_int_eq(check_metrics(dir, NULL, NULL, 0), 1);
    ck_assert_msg(strstr(out, "iw=3"), "config not shown:\n%s", out);
    /* IWAE's objective has no beta: asking for both is refused, not silently ignored */
    rc = vae(out, sizeof out, "train " SMALL " --iw 3 --beta 4 --out %s/iwbeta", tmp);
    ck_assert_msg(rc != 0 && strstr(out, "IWAE"), "iw with beta was accepted (%d):\n%s", rc, out);
}
END_TEST

START_TEST(test_resume_continues_exactly) {
    char out[16384], a[600], b[600], path[700];
    snprintf(a, sizeof a, "%s/resume_a", tmp);
    snprintf(b, sizeof b, "%s/resume_b", tmp);
    int rc = vae(out, sizeof out, "train " SMALL " --batch 100 --out %s", a);
    ck_assert_msg(rc == 0, "%s", out);
    snprintf(path, sizeof path, "%s/model.safetensors", a);
    rc = vae(out, sizeof out, "train --resume %s --epochs 2 --threads 2 --out %s", path, a);
    ck_assert_msg(rc == 0, "resume failed (%d):\n%s", rc, out);
    ck_assert_msg(strstr(out, "at epoch 2") && strstr(out, "epoch 2/2") &&
                      !strstr(out, "epoch 1/2"),
                  "resume did not continue at epoch 2:\n%s", out);
    rc = vae(out, sizeof out,
             "train --limit 256 --epochs 2 --hidden 32 --latent 4 --threads 2 --batch 100 --out %s",
             b);
    ck_assert_msg(rc == 0, "%s", out);
    double ta[2], sa[2], tb[2], sb[2];
    ck_assert_int_eq(check_metrics(a, ta, sa, 2), 2);
    ck_assert_int_eq(check_metrics(b, tb, sb, 2), 2);
#ifdef NB_DOUBLE
    const double tol = 1e-5; /* checkpoints hold F32: a double run resumes from rounded values */
#else
    const double tol = 0; /* a float run resumes bit for bit */
#endif
    for (int i = 0; i < 2; i++) { /* the resumed run is the straight run, step for step */
        ck_assert_msg(fabs(ta[i] - tb[i]) <= tol * fabs(tb[i]) &&
                          fabs(sa[i] - sb[i]) <= tol * fabs(sb[i]),
                      "epoch %d: resumed train %.9g test %.9g, straight %.9g %.9g", i + 1, ta[i],
                      sa[i], tb[i], sb[i]);
    }
    snprintf(path, sizeof path, "%s/loss.png", a);
    check_png(path, 640, 400);

    /* A resumed run keeps its model: --latent 8 conflicts. */
    snprintf(path, sizeof path, "%s/model.safetensors", a);
    rc = vae(out, sizeof out, "train --resume %s --epochs 3 --latent 8 --out %s", path, a);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(out, "--latent") && strstr(out, "conflicts"), "%s", out);
}
END_TEST

/* ---- sample, reconstruct, interpolate -------------------------------------------------------- */

START_TEST(test_sample_reconstruct_interpolate) {
    ck_assert_int_eq(train_status, 0);
    char out[4096], path[700];
    snprintf(path, sizeof path, "%s/s.png", tmp);
    int rc = vae(out, sizeof out, "sample --model %s --out %s --n 16 --seed 3", model, path);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(path, GRID(8, 28), GRID(2, 28));
    snprintf(path, sizeof path, "%s/r.png", tmp);
    rc = vae(out, sizeof out, "reconstruct --model %s --out %s --n 12", model, path);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(path, GRID(8, 28), GRID(4, 28)); /* 8 + 4 images: two row pairs */
    snprintf(path, sizeof path, "%s/i.png", tmp);
    rc = vae(out, sizeof out, "interpolate --model %s --out %s --steps 6 --pairs 3", model, path);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(path, GRID(8, 28), GRID(3, 28)); /* each row: image, 6 steps, image */
    snprintf(path, sizeof path, "%s/i-manifold.png", tmp);
    ck_assert_msg(!exists(path), "a 4-D latent space has no manifold picture");
    /* --label on an unconditional model is a usage error */
    rc = vae(out, sizeof out, "sample --model %s --out %s/x.png --label 2", model, tmp);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(out, "--label"), "%s", out);
}
END_TEST

START_TEST(test_manifold_for_2d_latent) {
    char out[8192], dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/two", tmp);
    int rc =
        vae(out, sizeof out, "train --limit 256 --epochs 1 --hidden 32 --latent 2 --out %s", dir);
    ck_assert_msg(rc == 0, "%s", out);
    snprintf(path, sizeof path, "%s/manifold.png", dir);
    check_png(path, GRID(20, 28), GRID(20, 28));
    rc = vae(out, sizeof out, "interpolate --model %s/model.safetensors --out %s/lerp.png", dir,
             dir);
    ck_assert_msg(rc == 0, "%s", out);
    snprintf(path, sizeof path, "%s/lerp.png", dir);
    check_png(path, GRID(12, 28), GRID(8, 28));
    snprintf(path, sizeof path, "%s/lerp-manifold.png", dir);
    check_png(path, GRID(20, 28), GRID(20, 28));
}
END_TEST

/* ---- eval ------------------------------------------------------------------------------------ */

START_TEST(test_eval_json_and_bound) {
    ck_assert_int_eq(train_status, 0);
    char out[8192];
    int rc = vae(out, sizeof out, "eval --model %s --iw 64 --limit 256 --json", model);
    ck_assert_msg(rc == 0, "%s", out);
    const char *keys[] = {"\"test_loss\": ",           "\"test_recon\": ",   "\"test_kl\": ",
                          "\"iwae_log_likelihood\": ", "\"active_units\": ", "\"kl_per_dim\": ["};
    double v[6];
    for (int i = 0; i < 6; i++) {
        const char *p = strstr(out, keys[i]);
        ck_assert_msg(p != NULL, "eval --json lacks %s:\n%s", keys[i], out);
        v[i] = strtod(p + strlen(keys[i]), NULL);
        ck_assert_msg(isfinite(v[i]), "%s is not a finite number:\n%s", keys[i], out);
    }
    ck_assert_msg(out[0] == '{' && strchr(out, '}') && strchr(out, '\n') == strrchr(out, '\n'),
                  "not one JSON object on one line:\n%s", out);
    /* log p(x) >= IWAE bound >= ELBO: allow a little sampling noise. */
    ck_assert_msg(v[3] >= -v[0] - 1.0, "IWAE bound %g below the ELBO %g", v[3], -v[0]);
    ck_assert_msg(fabs(v[0] - v[1] - v[2]) < 1e-3 * v[0], "ELBO parts do not add up");
    /* active units: the dims whose posterior-mean variance exceeds 0.01 (Burda et al.) */
    const char *pv = strstr(out, "\"posterior_mean_variance\": [");
    ck_assert_msg(pv != NULL, "eval --json lacks posterior_mean_variance:\n%s", out);
    char *q = (char *)pv + strlen("\"posterior_mean_variance\": [");
    int active = 0;
    for (int d = 0; d < 4; d++) {
        double var = strtod(q, &q);
        ck_assert_msg(var >= 0 && isfinite(var), "variance %d: %g", d, var);
        active += var > 0.01;
        q += strspn(q, ", ");
    }
    ck_assert_msg(*q == ']', "more than 4 variances:\n%s", out);
    ck_assert_msg(v[4] == active, "active units %g, but %d variances exceed 0.01", v[4], active);
    /* kl_per_dim has 4 entries */
    const char *p = strstr(out, "\"kl_per_dim\": [");
    int commas = 0;
    for (p += 15; *p && *p != ']'; p++) commas += *p == ',';
    ck_assert_int_eq(commas, 3);
    rc = vae(out, sizeof out, "eval --model %s --iw 4 --limit 32", model);
    ck_assert_msg(rc == 0 && strstr(out, "active units") && strstr(out, "IWAE"), "%s", out);
}
END_TEST

/* ---- anomaly --------------------------------------------------------------------------------- */

START_TEST(test_anomaly_csv_and_auroc) {
    ck_assert_int_eq(train_status, 0);
    /* OOD: the first 100 test digits with their intensities inverted. */
    idx_dataset d;
    char err[256], ood[600], csv[700], out[8192];
    ck_assert(idx_load_split("data/digits", 0, 10, &d, err, sizeof err) == IDX_OK);
    idx_take(&d, 100);
    for (int64_t i = 0; i < d.n * d.rows * d.cols; i++) d.images[i] = (uint8_t)(255 - d.images[i]);
    snprintf(ood, sizeof ood, "%s/inverted", tmp);
    mkdir(ood, 0755);
    snprintf(csv, sizeof csv, "%s/t10k-images-idx3-ubyte", ood);
    nbt_write_idx(csv, d.images, 3,
                  (uint32_t[]){(uint32_t)d.n, (uint32_t)d.rows, (uint32_t)d.cols});
    snprintf(csv, sizeof csv, "%s/t10k-labels-idx1-ubyte", ood);
    nbt_write_idx(csv, d.labels, 1, (uint32_t[]){(uint32_t)d.n});
    idx_free(&d);

    snprintf(csv, sizeof csv, "%s/scores.csv", tmp);
    int rc = vae(out, sizeof out, "anomaly --model %s --ood %s --iw 8 --limit 60 --csv %s", model,
                 ood, csv);
    ck_assert_msg(rc == 0, "%s", out);

    /* 1 header + 60 in + 60 ood rows; recompute each AUROC by counting pairs. */
    FILE *f = fopen(csv, "r");
    ck_assert(f != NULL);
    char line[512];
    ck_assert(fgets(line, sizeof line, f) != NULL);
    ck_assert_str_eq(line, "set,index,label,neg_elbo,recon,neg_iwae\n");
    double s[120][3];
    bool pos[120];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        ck_assert_int_lt(rows, 120);
        char set[8];
        int index, label;
        ck_assert_int_eq(sscanf(line, "%7[a-z],%d,%d,%lf,%lf,%lf", set, &index, &label, &s[rows][0],
                                &s[rows][1], &s[rows][2]),
                         6);
        pos[rows] = !strcmp(set, "ood");
        ck_assert_int_eq(index, pos[rows] ? rows - 60 : rows);
        rows++;
    }
    fclose(f);
    ck_assert_int_eq(rows, 120);
    const char *names[3] = {"neg_elbo", "recon", "neg_iwae"};
    for (int k = 0; k < 3; k++) {
        double wins = 0;
        for (int i = 0; i < 120; i++)
            for (int j = 0; j < 120; j++)
                if (pos[i] && !pos[j]) wins += s[i][k] > s[j][k] ? 1 : s[i][k] == s[j][k] ? 0.5 : 0;
        double auroc = wins / (60.0 * 60.0);
        const char *p = strstr(out, names[k]);
        ck_assert_msg(p != NULL, "no %s line:\n%s", names[k], out);
        double mi, mo, printed;
        ck_assert_int_eq(sscanf(p + strlen(names[k]), "%lf %lf %lf", &mi, &mo, &printed), 3);
        ck_assert_msg(fabs(printed - auroc) < 6e-5, "%s AUROC printed %g, pairs give %g", names[k],
                      printed, auroc);
        /* inverted digits are far from anything the model saw: each score must rank them high */
        ck_assert_msg(auroc > 0.9, "%s: AUROC %g of inverted digits against digits", names[k],
                      auroc);
    }
}
END_TEST

/* ---- the convolutional VAE ------------------------------------------------------------------ */

#define CONV "--arch conv --limit 128 --epochs 1 --channels 4,8 --latent 4 --batch 64 --threads 2"

/* The number after "key": in a JSON text; fails the test when absent or not finite. */
static double json_number(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(json, pat);
    ck_assert_msg(p != NULL, "no %s in:\n%s", key, json);
    double v = strtod(p + strlen(pat), NULL);
    ck_assert_msg(isfinite(v), "%s is not a finite number in:\n%s", key, json);
    return v;
}

START_TEST(test_conv_every_subcommand) {
    char out[16384], dir[600], ck[700], path[700];
    snprintf(dir, sizeof dir, "%s/conv", tmp);
    snprintf(ck, sizeof ck, "%s/model.safetensors", dir);
    int rc = vae(out, sizeof out, "train " CONV " --out %s", dir);
    ck_assert_msg(rc == 0, "conv train failed (%d):\n%s", rc, out);
    ck_assert_msg(strstr(out, "arch=conv") && strstr(out, "channels=4,8"), "%s", out);
    ck_assert_int_eq(check_metrics(dir, NULL, NULL, 0), 1);
    snprintf(path, sizeof path, "%s/samples.png", dir);
    check_png(path, GRID(8, 28), GRID(8, 28));

    /* the pictures, eval and anomaly rebuild the model from the file alone */
    snprintf(path, sizeof path, "%s/s.png", dir);
    rc = vae(out, sizeof out, "sample --model %s --out %s --n 16", ck, path);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(path, GRID(8, 28), GRID(2, 28));
    snprintf(path, sizeof path, "%s/r.png", dir);
    rc = vae(out, sizeof out, "reconstruct --model %s --out %s --n 8", ck, path);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(path, GRID(8, 28), GRID(2, 28));
    snprintf(path, sizeof path, "%s/i.png", dir);
    rc = vae(out, sizeof out, "interpolate --model %s --out %s --steps 4 --pairs 2", ck, path);
    ck_assert_msg(rc == 0, "%s", out);
    check_png(path, GRID(6, 28), GRID(2, 28));
    rc = vae(out, sizeof out, "eval --model %s --iw 8 --limit 64 --json", ck);
    ck_assert_msg(rc == 0, "%s", out);
    double loss = json_number(out, "test_loss");
    ck_assert_msg(json_number(out, "iwae_log_likelihood") >= -loss - 1.0, "%s", out);
    ck_assert_int_eq((int)json_number(out, "latent"), 4);
    rc = vae(out, sizeof out, "anomaly --model %s --ood data/digits --iw 4 --limit 16", ck);
    ck_assert_msg(rc == 0 && strstr(out, "neg_iwae"), "%s", out);

    /* --resume continues the conv run exactly: one epoch + one equals two straight */
    rc = vae(out, sizeof out, "train --resume %s --epochs 2 --threads 2 --out %s", ck, dir);
    ck_assert_msg(rc == 0 && strstr(out, "at epoch 2"), "conv resume failed (%d):\n%s", rc, out);
    char straight[600];
    snprintf(straight, sizeof straight, "%s/conv2", tmp);
    rc = vae(out, sizeof out, "train " CONV " --epochs 2 --out %s", straight);
    ck_assert_msg(rc == 0, "%s", out);
    double ta[2], sa[2], tb[2], sb[2];
    ck_assert_int_eq(check_metrics(dir, ta, sa, 2), 2);
    ck_assert_int_eq(check_metrics(straight, tb, sb, 2), 2);
#ifdef NB_DOUBLE
    const double tol = 1e-5; /* checkpoints hold F32 */
#else
    const double tol = 0;
#endif
    for (int i = 0; i < 2; i++)
        ck_assert_msg(
            fabs(ta[i] - tb[i]) <= tol * fabs(tb[i]) && fabs(sa[i] - sb[i]) <= tol * fabs(sb[i]),
            "epoch %d: resumed %.9g %.9g, straight %.9g %.9g", i + 1, ta[i], sa[i], tb[i], sb[i]);
    /* the architecture is the checkpoint's: asking for another one is a conflict */
    rc = vae(out, sizeof out, "train --resume %s --epochs 3 --arch mlp --out %s", ck, dir);
    ck_assert_msg(rc == 2 && strstr(out, "--arch") && strstr(out, "conflicts"), "%s", out);
}
END_TEST

START_TEST(test_conv_variants) {
    /* conditional (one row per class), the B form with warm-up and free bits under a Gaussian
     * likelihood, and IWAE: each trains and its checkpoint samples */
    const char *variants[] = {"--conditional",
                              "--capacity 5 --gamma 100 --warmup 3 --free-bits 0.1 "
                              "--likelihood gaussian",
                              "--iw 3", "--beta 4 --likelihood gaussian_fixed"};
    for (int v = 0; v < 4; v++) {
        char out[16384], dir[600], path[700];
        snprintf(dir, sizeof dir, "%s/convvar%d", tmp, v);
        int rc = vae(out, sizeof out, "train " CONV " %s --out %s", variants[v], dir);
        ck_assert_msg(rc == 0, "conv %s failed (%d):\n%s", variants[v], rc, out);
        ck_assert_int_eq(check_metrics(dir, NULL, NULL, 0), 1);
        snprintf(path, sizeof path, "%s/samples.png", dir);
        check_png(path, GRID(8, 28), GRID(v == 0 ? 10 : 8, 28));
        rc = vae(out, sizeof out, "sample --model %s/model.safetensors --out %s/s.png %s", dir, dir,
                 v == 0 ? "--label 7 --n 8" : "--n 8");
        ck_assert_msg(rc == 0, "%s", out);
    }
}
END_TEST

/* ---- checkpoints written before the composition ------------------------------------------- */

/* tests/data/vae_old_*.safetensors were written by the MLP-only vae (commit f8df311; see the
 * commit that added them). They load, evaluate to the numbers that build printed for
 * `eval --iw 16 --limit 64 --seed 3 --json --threads 1`, sample, and resume. */
START_TEST(test_old_checkpoints_load_and_give_the_same_numbers) {
    static const struct {
        const char *file;
        double loss, recon, kl, iwae, kl0, kl1;
    } old[] = {
        {"tests/data/vae_old_mlp.safetensors", 548.462275, 548.33313, 0.129145116, -546.183356,
         0.0723838965, 0.0567612214},
        {"tests/data/vae_old_cvae_gaussian.safetensors", 787.681259, 787.473083, 0.208175853,
         -786.785386, 0.0280069724, 0.18016888},
    };
    for (int i = 0; i < 2; i++) {
        char out[8192];
        int rc = vae(out, sizeof out,
                     "eval --model %s --iw 16 --limit 64 --seed 3 --json --threads 1", old[i].file);
        ck_assert_msg(rc == 0, "%s", out);
        const char *keys[] = {"test_loss", "test_recon", "test_kl", "iwae_log_likelihood"};
        double want[] = {old[i].loss, old[i].recon, old[i].kl, old[i].iwae};
        for (int k = 0; k < 4; k++) {
            double got = json_number(out, keys[k]);
            ck_assert_msg(fabs(got - want[k]) <= 1e-5 * fabs(want[k]) + 1e-6,
                          "%s %s: %.9g, the old build printed %.9g", old[i].file, keys[k], got,
                          want[k]);
        }
        const char *p = strstr(out, "\"kl_per_dim\": [");
        ck_assert(p != NULL);
        double k0, k1;
        ck_assert_int_eq(sscanf(p + 15, "%lf, %lf", &k0, &k1), 2);
        ck_assert_msg(fabs(k0 - old[i].kl0) < 1e-5 * old[i].kl0 &&
                          fabs(k1 - old[i].kl1) < 1e-5 * old[i].kl1,
                      "kl per dim %.9g %.9g", k0, k1);
    }
    char out[8192], dir[600];
    int rc = vae(out, sizeof out, "sample --model %s --out %s/old.png --label 3 --n 8", old[1].file,
                 tmp);
    ck_assert_msg(rc == 0, "%s", out);
    snprintf(dir, sizeof dir, "%s/oldresume", tmp);
    rc = vae(out, sizeof out, "train --resume %s --epochs 2 --out %s", old[0].file, dir);
    ck_assert_msg(rc == 0 && strstr(out, "epoch 2/2") && strstr(out, "arch=mlp"),
                  "resuming an old checkpoint failed (%d):\n%s", rc, out);
}
END_TEST

/* A file of PyTorch weights only (tools/ref_torch_conv_weights.py: the architecture in its
 * metadata, no optimizer state, no training position): sample, eval and --resume load it. */
START_TEST(test_pytorch_weights_file) {
    const char *w = "tests/data/torch_conv_weights.safetensors";
    char out[8192], dir[600];
    int rc = vae(out, sizeof out, "sample --model %s --out %s/torch.png --n 8", w, tmp);
    ck_assert_msg(rc == 0, "%s", out);
    rc = vae(out, sizeof out, "eval --model %s --iw 4 --limit 16 --json", w);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_int_eq((int)json_number(out, "latent"), 4);
    snprintf(dir, sizeof dir, "%s/torchresume", tmp);
    rc = vae(out, sizeof out, "train --resume %s --epochs 1 --limit 64 --out %s", w, dir);
    ck_assert_msg(rc == 0 && strstr(out, "weights only") && strstr(out, "epoch 1/1"),
                  "--resume from PyTorch weights failed (%d):\n%s", rc, out);
    ck_assert_int_eq(check_metrics(dir, NULL, NULL, 0), 1);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------------- */

/* Runs args and expects exit status `want` and every NULL-terminated needle in the output. */
static void expect_fail(int want, const char *args, ...) {
    char out[8192];
    int rc = vae(out, sizeof out, "%s", args);
    ck_assert_msg(rc == want, "'vae %s' exited %d, expected %d:\n%s", args, rc, want, out);
    va_list ap;
    va_start(ap, args);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        ck_assert_msg(strstr(out, n) != NULL, "'vae %s' does not mention '%s':\n%s", args, n, out);
    va_end(ap);
}

START_TEST(test_usage_errors) {
    expect_fail(2, "train --bogus 3", "--bogus", NULL);
    expect_fail(2, "train --epochs -1", "--epochs", "-1", NULL);
    expect_fail(2, "train --epochs 2x", "--epochs", NULL);
    expect_fail(2, "train --likelihood foo", "--likelihood", "foo", NULL);
    expect_fail(2, "train --hidden 512,,256", "--hidden", NULL);
    expect_fail(2, "train --lr nan", "--lr", NULL);
    expect_fail(2, "train --epochs", "--epochs", NULL);
    expect_fail(2, "train --gamma 10", "--capacity", NULL);
    expect_fail(2, "train --arch resnet", "--arch", "resnet", "conv", NULL);
    expect_fail(2, "train --arch conv --channels 8,,16", "--channels", NULL);
    expect_fail(2, "sample --out x.png", "--model", NULL);
    expect_fail(2, "eval --model m --iw 0", "--iw", NULL);
    expect_fail(2, "anomaly --model m", "--ood", NULL);
    expect_fail(2, "frobnicate", "frobnicate", NULL);
    expect_fail(2, "", "usage", NULL);
}
END_TEST

START_TEST(test_runtime_errors) {
    char args[1200], bad[700];
    snprintf(args, sizeof args, "train --data %s/no_such_dir " SMALL " --out %s/x", tmp, tmp);
    expect_fail(1, args, "no_such_dir", NULL);
    snprintf(args, sizeof args, "sample --model %s/missing.safetensors --out %s/x.png", tmp, tmp);
    expect_fail(1, args, "missing.safetensors", NULL);
    /* A corrupt model: garbage bytes, then a real checkpoint cut short. */
    snprintf(bad, sizeof bad, "%s/garbage.safetensors", tmp);
    FILE *f = fopen(bad, "wb");
    ck_assert(f != NULL);
    fputs("this is not a checkpoint at all", f);
    fclose(f);
    snprintf(args, sizeof args, "sample --model %s --out %s/x.png", bad, tmp);
    expect_fail(1, args, "garbage.safetensors", NULL);
    snprintf(args, sizeof args, "eval --model %s --iw 2", bad);
    expect_fail(1, args, "garbage.safetensors", NULL);
    ck_assert_int_eq(train_status, 0);
    FILE *in = fopen(model, "rb");
    ck_assert(in != NULL);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    snprintf(bad, sizeof bad, "%s/truncated.safetensors", tmp);
    f = fopen(bad, "wb");
    ck_assert(f != NULL);
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    snprintf(args, sizeof args, "reconstruct --model %s --out %s/x.png", bad, tmp);
    expect_fail(1, args, "truncated.safetensors", NULL);
    snprintf(args, sizeof args, "train --resume %s --epochs 2 --out %s/y", bad, tmp);
    expect_fail(1, args, "truncated.safetensors", NULL);
    /* Missing data for a command that needs it, and a model whose images differ in size. */
    snprintf(args, sizeof args, "reconstruct --model %s --data %s/nodata --out %s/x.png", model,
             tmp, tmp);
    expect_fail(1, args, "nodata", NULL);
    /* An output directory that cannot be made. */
    snprintf(args, sizeof args, "sample --model %s --out %s/no/such/dir/x.png", model, tmp);
    expect_fail(1, args, "no/such/dir", NULL);
}
END_TEST

START_TEST(test_help) {
    const char *cmds[] = {"train", "sample", "reconstruct", "interpolate", "eval", "anomaly"};
    char out[8192];
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int rc = vae(out, sizeof out, "%s --help", cmds[i]);
        char want[64];
        snprintf(want, sizeof want, "usage: vae %s", cmds[i]);
        ck_assert_msg(rc == 0 && strstr(out, want) && strstr(out, "--help"), "%s --help:\n%s",
                      cmds[i], out);
    }
    ck_assert_int_eq(vae(out, sizeof out, "--help"), 0);
    ck_assert_msg(strstr(out, "anomaly") != NULL, "%s", out);
    ck_assert_int_eq(vae(out, sizeof out, "train --help"), 0);
    const char *flags[] = {"--data",      "--epochs",      "--batch",      "--lr",    "--hidden",
                           "--latent",    "--beta",        "--capacity",   "--gamma", "--warmup",
                           "--free-bits", "--conditional", "--likelihood", "--iw",    "--seed",
                           "--threads",   "--out",         "--resume",     "--limit", "--arch",
                           "--channels"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        ck_assert_msg(strstr(out, flags[i]) != NULL, "train --help lacks %s", flags[i]);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("vae_cli");
    TCase *tc = tcase_create("cli");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_version_names_the_kernel);
    tcase_add_test(tc, test_train_outputs);
    tcase_add_test(tc, test_train_variants);
    tcase_add_test(tc, test_resume_continues_exactly);
    tcase_add_test(tc, test_sample_reconstruct_interpolate);
    tcase_add_test(tc, test_manifold_for_2d_latent);
    tcase_add_test(tc, test_eval_json_and_bound);
    tcase_add_test(tc, test_anomaly_csv_and_auroc);
    tcase_add_test(tc, test_conv_every_subcommand);
    tcase_add_test(tc, test_conv_variants);
    tcase_add_test(tc, test_old_checkpoints_load_and_give_the_same_numbers);
    tcase_add_test(tc, test_pytorch_weights_file);
    tcase_add_test(tc, test_usage_errors);
    tcase_add_test(tc, test_runtime_errors);
    tcase_add_test(tc, test_help);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
