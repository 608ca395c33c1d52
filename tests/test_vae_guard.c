/* tests/test_vae_guard.c: runs build/vae (or $NABLA_BUILD/vae) where a run can go wrong and
 * checks that it stops with a message naming the problem and leaves good files alone: a
 * diverging run never replaces the last finite checkpoint, a checkpoint with NaN parameters is
 * refused by every command, a resume with nothing left to do writes nothing. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/idx.h"
#include "models/vae.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tests/check_main.h"
#include "tests/testutil.h"

#define SMALL "--limit 256 --epochs 1 --hidden 32 --latent 4 --threads 2"

static char tmp[256];  /* the suite's temp dir */
static char base[512]; /* a trained tiny model: base/model.safetensors, 1 epoch */
static char model[600];
static int train_status = -1;
static char train_output[1 << 16];

#define vae(out, len, ...) nbt_run("vae", out, len, __VA_ARGS__)

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The whole file at path in a new buffer (free with free); *len its size. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert(b != NULL);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *b = slurp(from, &n);
    FILE *f = fopen(to, "wb");
    ck_assert(f != NULL);
    ck_assert_int_eq(fwrite(b, 1, n, f), n);
    ck_assert(fclose(f) == 0);
    free(b);
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static int count_lines(const char *path) {
    size_t n;
    char *b = slurp(path, &n);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += b[i] == '\n';
    free(b);
    return lines;
}

static void make_data(const char *dir, int64_t n, int64_t ntest, int64_t at, int label,
                      int test_label, bool labels);

static void suite_setup(void) {
    nbt_mkdtemp(tmp, sizeof tmp, "vae_guard");
    snprintf(base, sizeof base, "%s/base", tmp);
    snprintf(model, sizeof model, "%s/model.safetensors", base);
    train_status = vae(train_output, sizeof train_output, "train " SMALL " --out %s", base);
}

static void suite_teardown(void) {
    nbt_rmdir(tmp);
}

/* ---- divergence ------------------------------------------------------------------------------ */

START_TEST(test_divergence_keeps_last_good_checkpoint) {
    ck_assert_msg(train_status == 0, "%s", train_output);
    /* Epoch 1 at lr 1e-3 is good; resumed at lr 10 the loss blows up to ~1e10 nats (finite). */
    char dir[600], ck[700], keep[700], metrics[700], out[16384];
    snprintf(dir, sizeof dir, "%s/blowup", tmp);
    mkdir(dir, 0755);
    snprintf(ck, sizeof ck, "%s/model.safetensors", dir);
    snprintf(keep, sizeof keep, "%s/epoch1", dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    copy_file(model, ck);
    copy_file(model, keep);
    snprintf(out, sizeof out, "%s/metrics.jsonl", base);
    copy_file(out, metrics);
    int rc =
        vae(out, sizeof out, "train --resume %s --lr 10 --epochs 4 --threads 2 --out %s", ck, dir);
    ck_assert_msg(rc == 1, "a diverging run exited %d:\n%s", rc, out);
    ck_assert_msg(strstr(out, "diverged at epoch 2") && strstr(out, "holds epoch 1") &&
                      strstr(out, "--lr 1\n") && strstr(out, "was 10"),
                  "the message does not say what happened and what to do:\n%s", out);
    ck_assert_msg(same_file(ck, keep), "the epoch-1 checkpoint was replaced by a diverged one");
    ck_assert_int_eq(count_lines(metrics), 1);
    ck_assert_msg(!exists(strcat(strcpy(keep, dir), "/samples.png")), "pictures of a failed run");
}
END_TEST

START_TEST(test_divergence_in_the_first_epoch_writes_no_model) {
    char dir[600], path[700], out[16384];
    snprintf(dir, sizeof dir, "%s/first", tmp);
    int rc = vae(out, sizeof out,
                 "train --limit 100 --epochs 3 --hidden 200 --likelihood gaussian --lr 10 "
                 "--threads 2 --out %s",
                 dir);
    ck_assert_msg(rc == 1 && strstr(out, "diverged at epoch 1") &&
                      strstr(out, "no checkpoint was written") && strstr(out, "--lr 1\n"),
                  "exit %d:\n%s", rc, out);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(!exists(path), "a diverged model was saved");
}
END_TEST

/* ---- resume ------------------------------------------------------------------------------- */

START_TEST(test_resume_with_nothing_to_do_writes_nothing) {
    ck_assert_msg(train_status == 0, "%s", train_output);
    char dir[600], out[8192];
    snprintf(dir, sizeof dir, "%s/nothing", tmp);
    const char *outs[2] = {dir, base}; /* a new directory, and the run's own */
    for (int i = 0; i < 2; i++) {
        int rc = vae(out, sizeof out, "train --resume %s --epochs 1 --out %s", model, outs[i]);
        ck_assert_msg(rc == 0 && strstr(out, "nothing to do") && !strstr(out, "wrote"),
                      "exit %d:\n%s", rc, out);
    }
    ck_assert_msg(!exists(dir), "a resume with nothing to do made %s", dir);
    char path[700];
    snprintf(path, sizeof path, "%s/metrics.jsonl", base);
    ck_assert_int_eq(count_lines(path), 1); /* the original run's file is untouched */
}
END_TEST

/* The values of `key` on each line of dir/metrics.jsonl into v (at most max); returns the count. */
static int metric(const char *dir, const char *key, double *v, int max) {
    char path[700], pat[64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    size_t n;
    char *b = slurp(path, &n), *line = b;
    int k = 0;
    for (char *nl; k < max && (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        const char *p = strstr(line, pat);
        ck_assert_msg(p != NULL, "%s lacks %s: %s", path, key, line);
        v[k++] = strtod(p + strlen(pat), NULL);
    }
    free(b);
    return k;
}

/* An epoch draws 101 x 3 normals in training and 60 x 3 in the test pass, an odd count: the
 * checkpoint must carry the generator's cached second normal, or the resumed run's noise shifts
 * by one draw. */
START_TEST(test_resume_after_an_odd_number_of_normals) {
    char a[600], b[600], data[600], path[700], out[16384], odd[800];
    snprintf(a, sizeof a, "%s/odd_a", tmp);
    snprintf(b, sizeof b, "%s/odd_b", tmp);
    snprintf(data, sizeof data, "%s/odd_data", tmp);
    make_data(data, 101, 60, -1, 0, -1, true);
    snprintf(odd, sizeof odd, "--data %s --batch 101 --hidden 16 --latent 3 --threads 2", data);
    int rc = vae(out, sizeof out, "train %s --epochs 1 --out %s", odd, a);
    ck_assert_msg(rc == 0, "%s", out);
    snprintf(path, sizeof path, "%s/model.safetensors", a);
    rc = vae(out, sizeof out, "train --resume %s --epochs 3 --threads 2 --out %s", path, a);
    ck_assert_msg(rc == 0, "%s", out);
    rc = vae(out, sizeof out, "train %s --epochs 3 --out %s", odd, b);
    ck_assert_msg(rc == 0, "%s", out);
    const char *keys[2] = {"train_loss", "test_loss"};
    for (int k = 0; k < 2; k++) {
        double ra[3], rb[3];
        ck_assert_int_eq(metric(a, keys[k], ra, 3), 3);
        ck_assert_int_eq(metric(b, keys[k], rb, 3), 3);
#ifdef NB_DOUBLE
        const double tol =
            1e-5; /* checkpoints hold F32: a double run resumes from rounded values */
#else
        const double tol = 0;
#endif
        for (int e = 0; e < 3; e++)
            ck_assert_msg(fabs(ra[e] - rb[e]) <= tol * fabs(rb[e]),
                          "epoch %d %s: resumed %.9g, straight %.9g", e + 1, keys[k], ra[e], rb[e]);
    }
}
END_TEST

/* A run killed while saving leaves model.safetensors.tmp.<pid>; the next run there removes it. */
START_TEST(test_next_run_removes_stale_temporaries) {
    char dir[600], stale[700], out[16384];
    snprintf(dir, sizeof dir, "%s/stale", tmp);
    mkdir(dir, 0755);
    pid_t child = fork(); /* a pid that belongs to no process once reaped */
    ck_assert_int_ge(child, 0);
    if (child == 0) _exit(0);
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    snprintf(stale, sizeof stale, "%s/model.safetensors.tmp.%ld", dir, (long)child);
    FILE *f = fopen(stale, "wb");
    ck_assert(f != NULL);
    fputs("half a checkpoint", f);
    ck_assert(fclose(f) == 0);
    int rc = vae(out, sizeof out, "train " SMALL " --out %s", dir);
    ck_assert_msg(rc == 0 && strstr(out, "removed 1 temporary file"), "exit %d:\n%s", rc, out);
    ck_assert_msg(!exists(stale), "%s is still there", stale);
}
END_TEST

/* The checkpoint keeps the data directory as an absolute path: resuming from elsewhere works. */
START_TEST(test_resume_from_another_directory) {
    ck_assert_msg(train_status == 0, "%s", train_output);
    char build[8200], here[4096], out[8192];
    const char *b = getenv("NABLA_BUILD");
    b = b && *b ? b : "build";
    ck_assert(getcwd(here, sizeof here) != NULL);
    snprintf(build, sizeof build, "%s%s%s", b[0] == '/' ? "" : here, b[0] == '/' ? "" : "/", b);
    setenv("NABLA_BUILD", build, 1); /* this test runs in its own process (CK_FORK) */
    ck_assert_int_eq(chdir(tmp), 0);
    int rc = vae(out, sizeof out, "train --resume %s --epochs 2 --threads 2 --out %s/elsewhere",
                 model, tmp);
    ck_assert_int_eq(chdir(here), 0);
    ck_assert_msg(rc == 0 && strstr(out, "epoch 2/2"), "resume from %s failed (%d):\n%s", tmp, rc,
                  out);
}
END_TEST

/* --threads above the core count warns; --threads 0 is the default and documented. */
START_TEST(test_threads_flag) {
    char out[8192];
    int rc = vae(out, sizeof out, "train " SMALL " --threads 1000 --out %s/threads", tmp);
    ck_assert_msg(rc == 0 && strstr(out, "warning: --threads 1000 is more than the"),
                  "exit %d:\n%s", rc, out);
    rc = vae(out, sizeof out, "train --help");
    ck_assert_msg(rc == 0 && strstr(out, "default 0: one per core"), "%s", out);
}
END_TEST

START_TEST(test_a_text_file_is_not_a_checkpoint) {
    char out[8192];
    int rc = vae(out, sizeof out, "sample --model README.md --out %s/x.png", tmp);
    ck_assert_msg(rc == 1 && strstr(out, "README.md: not a safetensors file"), "exit %d:\n%s", rc,
                  out);
}
END_TEST

/* ---- labels and data ------------------------------------------------------------------------ */

/* Writes the first n shipped digits of each split (ntest of the test split) into dir; train label
 * `at` (if >= 0) becomes `label`, test label 0 becomes `test_label` (if >= 0); no labels files when
 * labels is false. */
static void make_data(const char *dir, int64_t n, int64_t ntest, int64_t at, int label,
                      int test_label, bool labels) {
    mkdir(dir, 0755);
    for (int train = 0; train < 2; train++) {
        idx_dataset d;
        char err[256], path[700];
        ck_assert_msg(idx_load_split("data/digits", train, 10, &d, err, sizeof err) == IDX_OK, "%s",
                      err);
        idx_take(&d, train ? n : ntest);
        if (train && at >= 0) d.labels[at] = (uint8_t)label;
        if (!train && test_label >= 0) d.labels[0] = (uint8_t)test_label;
        const char *prefix = train ? "train" : "t10k";
        snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
        nbt_write_idx(path, d.images, 3,
                      (uint32_t[]){(uint32_t)d.n, (uint32_t)d.rows, (uint32_t)d.cols});
        snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
        if (labels) nbt_write_idx(path, d.labels, 1, (uint32_t[]){(uint32_t)d.n});
        idx_free(&d);
    }
}

START_TEST(test_an_outlying_label_stops_a_conditional_run) {
    char data[600], out[8192];
    snprintf(data, sizeof data, "%s/label200", tmp);
    make_data(data, 256, 256, 17, 200, -1, true);
    /* by default K = 201 would need classes 10..199 to occur: the run names the example */
    int rc = vae(out, sizeof out, "train " SMALL " --conditional --data %s --out %s/l1", data, tmp);
    ck_assert_msg(rc == 1 && strstr(out, "example 17 of the training set has label 200") &&
                      strstr(out, "class 10 never occurs"),
                  "exit %d:\n%s", rc, out);
    rc = vae(out, sizeof out, "train " SMALL " --conditional --classes 10 --data %s --out %s/l2",
             data, tmp);
    ck_assert_msg(rc == 1 && strstr(out, "example 17 of the training set has label 200") &&
                      strstr(out, "--classes 10"),
                  "exit %d:\n%s", rc, out);
    /* a test label the training set does not have */
    snprintf(data, sizeof data, "%s/testlabel", tmp);
    make_data(data, 256, 256, -1, 0, 12, true);
    rc = vae(out, sizeof out, "train " SMALL " --conditional --data %s --out %s/l3", data, tmp);
    ck_assert_msg(rc == 1 && strstr(out, "example 0 of the test set has label 12"), "exit %d:\n%s",
                  rc, out);
    /* --classes 13 makes room for it and for unseen classes; the model says classes=13 */
    rc = vae(out, sizeof out, "train " SMALL " --conditional --classes 13 --data %s --out %s/l4",
             data, tmp);
    ck_assert_msg(rc == 0 && strstr(out, "classes=13"), "exit %d:\n%s", rc, out);
    rc = vae(out, sizeof out, "train " SMALL " --classes 12 --out %s/l5", tmp);
    ck_assert_msg(rc == 2 && strstr(out, "--classes needs --conditional"), "exit %d:\n%s", rc, out);
    /* the normal digits still give 10 classes */
    rc = vae(out, sizeof out, "train " SMALL " --conditional --out %s/l6", tmp);
    ck_assert_msg(rc == 0 && strstr(out, "classes=10"), "exit %d:\n%s", rc, out);
}
END_TEST

START_TEST(test_unconditional_training_needs_no_labels) {
    char data[600], out[8192];
    snprintf(data, sizeof data, "%s/nolabels", tmp);
    make_data(data, 256, 256, -1, 0, -1, false);
    int rc = vae(out, sizeof out, "train " SMALL " --data %s --out %s/u1", data, tmp);
    ck_assert_msg(rc == 0, "unconditional training without labels files failed (%d):\n%s", rc, out);
    rc = vae(out, sizeof out, "train " SMALL " --conditional --data %s --out %s/u2", data, tmp);
    ck_assert_msg(rc == 1 && strstr(out, "labels-idx1-ubyte"), "exit %d:\n%s", rc, out);
}
END_TEST

/* Copies the checkpoint src to dst with one element of its last parameter set to value. */
static const char *poison(const char *src, const char *dst, double value) {
    static char name[NN_NAME_MAX];
    nn_checkpoint_meta *meta;
    nn_ckpt_error e;
    ck_assert_msg(nn_checkpoint_read_meta(src, &meta, &e) == NN_CKPT_OK, "%s", e.message);
    vae_config cfg;
    char err[256];
    ck_assert_msg(
        vae_config_parse(nn_checkpoint_meta_get(meta, "vae.config"), &cfg, err, sizeof err) == 0,
        "%s", err);
    vae_model m;
    vae_init(&m, &cfg, NULL);
    nn_optim *opt = nn_optim_adam(&m.params, nn_adam_defaults(1e-3));
    ck_assert_msg(nn_checkpoint_load(src, &m.params, opt, NULL, &e) == NN_CKPT_OK, "%s", e.message);
    nn_param *p = &m.params.items[m.params.n - 1];
    p->t->data[p->t->offset] = (real)value;
    snprintf(name, sizeof name, "%s", p->name);
    int n = nn_checkpoint_meta_count(meta);
    nn_meta *pairs = calloc((size_t)n, sizeof *pairs);
    int k = 0;
    for (int i = 0; i < n; i++) /* the optimizer's own keys are written by the save */
        if (strncmp(nn_checkpoint_meta_at(meta, i).key, "optim.", 6))
            pairs[k++] = nn_checkpoint_meta_at(meta, i);
    ck_assert_msg(nn_checkpoint_save(dst, &m.params, opt, pairs, k, &e) == NN_CKPT_OK, "%s",
                  e.message);
    free(pairs);
    nn_optim_free(opt);
    vae_free(&m);
    nn_checkpoint_meta_free(meta);
    return name;
}

START_TEST(test_nonfinite_checkpoint_is_refused) {
    ck_assert_msg(train_status == 0, "%s", train_output);
    char bad[600], out[8192];
    snprintf(bad, sizeof bad, "%s/nan.safetensors", tmp);
    const double values[] = {NAN, INFINITY};
    for (int v = 0; v < 2; v++) {
        const char *name = poison(model, bad, values[v]);
        /* each takes the model and the temp dir (eval ignores the second) */
        const char *cmds[] = {
            "sample --model %s --out %s/s.png", "reconstruct --model %s --out %s/r.png",
            "eval --model %s --iw 2 --limit 32", "train --resume %s --epochs 3 --out %s/resumed"};
        for (int c = 0; c < 4; c++) {
            int rc = vae(out, sizeof out, cmds[c], bad, tmp);
            ck_assert_msg(rc == 1 && strstr(out, name) && strstr(out, "not finite") &&
                              strstr(out, "nan.safetensors"),
                          "'%s' on a checkpoint with a non-finite %s exited %d:\n%s", cmds[c], name,
                          rc, out);
        }
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("vae_guard");
    TCase *tc = tcase_create("guard");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, test_divergence_keeps_last_good_checkpoint);
    tcase_add_test(tc, test_divergence_in_the_first_epoch_writes_no_model);
    tcase_add_test(tc, test_nonfinite_checkpoint_is_refused);
    tcase_add_test(tc, test_resume_with_nothing_to_do_writes_nothing);
    tcase_add_test(tc, test_next_run_removes_stale_temporaries);
    tcase_add_test(tc, test_an_outlying_label_stops_a_conditional_run);
    tcase_add_test(tc, test_unconditional_training_needs_no_labels);
    tcase_add_test(tc, test_a_text_file_is_not_a_checkpoint);
    tcase_add_test(tc, test_resume_from_another_directory);
    tcase_add_test(tc, test_threads_flag);
    tcase_add_test(tc, test_resume_after_an_odd_number_of_normals);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
