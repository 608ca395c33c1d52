/* tests/test_checkpoint.c: parameters, Adam state and metadata survive a save and a load bit for
 * bit (float build); a bad checkpoint (wrong shape, missing tensor, other optimizer, unexpected
 * tensor, negative step, missing file) is refused with a message naming the problem and leaves
 * the model and the optimizer untouched. */
#include "tests/check_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autograd/autograd.h"
#include "nn/checkpoint.h"

/* ---- a tiny model in a temporary directory --------------------------------------------------- */

static char dir[64];
static char path[128];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/nabla_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
}

static void teardown(void) {
    unlink(path);
    rmdir(dir);
}

typedef struct {
    Tensor *w; /* [3, 4] */
    Tensor *b; /* [4] */
    nn_params ps;
} model;

/* A model with w of shape [wr, wc] and b [4], values from seed (or all `fill` if seed is 0). */
static model model_new(int64_t wr, int64_t wc, uint64_t seed, real fill) {
    model m = {0};
    nb_rng r;
    nb_rng_seed(&r, seed);
    m.b = seed ? tensor_randn(NB_SHAPE(4), &r) : tensor_full(NB_SHAPE(4), fill);
    m.w = seed ? tensor_randn(NB_SHAPE(wr, wc), &r) : tensor_full(NB_SHAPE(wr, wc), fill);
    nn_params_add(&m.ps, "fc", "bias", m.b); /* the bias first: it checks out, w may not */
    nn_params_add(&m.ps, "fc", "weight", m.w);
    return m;
}

static void model_free(model *m) {
    nn_params_free(&m->ps);
    tensor_free(m->w);
    tensor_free(m->b);
}

/* A few Adam steps with random gradients, so every state buffer holds something. */
static void train(model *m, nn_optim *opt, int steps, uint64_t seed) {
    nb_rng r;
    nb_rng_seed(&r, seed);
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < m->ps.n; i++) {
            Tensor *g = ag_grad(m->ps.items[i].t);
            for (int64_t j = 0; j < g->numel; j++) g->data[j] = (real)nb_rng_normal(&r);
        }
        nn_optim_step(opt);
    }
}

static bool same_bits(const Tensor *a, const Tensor *b) {
    return a->numel == b->numel &&
           memcmp(a->data + a->offset, b->data + b->offset, (size_t)a->numel * sizeof(real)) == 0;
}

/* Every value of t equals v. */
static bool all_equal(const Tensor *t, real v) {
    for (int64_t j = 0; j < t->numel; j++)
        if (t->data[t->offset + j] != v) return false;
    return true;
}

/* Rounds t's values to float, as a checkpoint stores them (a no-op in the float build). */
static void round_to_f32(Tensor *t) {
    for (int64_t j = 0; j < t->numel; j++)
        t->data[t->offset + j] = (real)(float)t->data[t->offset + j];
}

/* Rounds every state buffer of opt to float. */
static void round_state(const nn_optim *opt) {
    for (int i = 0; i < nn_optim_state_count(opt); i++)
        if (nn_optim_state_at(opt, i).t) round_to_f32(nn_optim_state_at(opt, i).t);
}

/* ---- round trip ------------------------------------------------------------------------------ */

START_TEST(test_round_trip) {
    model a = model_new(3, 4, 1, 0);
    nn_adam_opts o = nn_adam_defaults(0.01);
    o.amsgrad = true;
    nn_optim *oa = nn_optim_adam(&a.ps, o);
    train(&a, oa, 3, 7);
    nn_optim_set_lr(oa, 0.0042);
    /* the double build stores F32: round first so the comparison below is exact in both */
    round_to_f32(a.w);
    round_to_f32(a.b);
    round_state(oa);

    nn_meta meta[] = {{"model", "fc 3x4"}, {"epoch", "12"}, {"rng", "0123456789abcdef"}};
    nn_ckpt_error err;
    ck_assert_int_eq(nn_checkpoint_save(path, &a.ps, oa, meta, 3, &err), NN_CKPT_OK);

    model b = model_new(3, 4, 0, 0);
    nn_optim *ob = nn_optim_adam(&b.ps, o);
    nn_checkpoint_meta *m = NULL;
    ck_assert_msg(nn_checkpoint_load(path, &b.ps, ob, &m, &err) == NN_CKPT_OK, "%s", err.message);
    ck_assert(same_bits(a.w, b.w) && same_bits(a.b, b.b));
    ck_assert_int_eq(nn_optim_state_count(ob), nn_optim_state_count(oa));
    for (int i = 0; i < nn_optim_state_count(oa); i++) {
        nn_optim_state sa = nn_optim_state_at(oa, i), sb = nn_optim_state_at(ob, i);
        ck_assert_str_eq(sa.name, sb.name);
        if (sa.t)
            ck_assert_msg(same_bits(sa.t, sb.t), "%s differs", sa.name);
        else
            ck_assert_int_eq(*sa.count, *sb.count);
    }
    ck_assert_int_eq(nn_optim_steps(ob), 3);
    ck_assert(nn_optim_get_lr(ob) == 0.0042);
    ck_assert_str_eq(nn_checkpoint_meta_get(m, "model"), "fc 3x4");
    ck_assert_str_eq(nn_checkpoint_meta_get(m, "epoch"), "12");
    ck_assert_str_eq(nn_checkpoint_meta_get(m, "rng"), "0123456789abcdef");
    ck_assert_str_eq(nn_checkpoint_meta_get(m, "optim.kind"), "adam");
    ck_assert_ptr_null(nn_checkpoint_meta_get(m, "absent"));
    ck_assert_int_eq(nn_checkpoint_meta_count(m), 5);
    nn_checkpoint_meta_free(m);

    /* resuming: the same gradients from here give the same parameters, bit for bit */
    train(&a, oa, 2, 99);
    train(&b, ob, 2, 99);
    ck_assert(same_bits(a.w, b.w) && same_bits(a.b, b.b));

    /* metadata alone, before building a model */
    ck_assert_int_eq(nn_checkpoint_read_meta(path, &m, &err), NN_CKPT_OK);
    ck_assert_str_eq(nn_checkpoint_meta_get(m, "epoch"), "12");
    nn_checkpoint_meta_free(m);

    /* without an optimizer the optim.* entries are ignored */
    model c = model_new(3, 4, 0, 0);
    ck_assert_int_eq(nn_checkpoint_load(path, &c.ps, NULL, NULL, &err), NN_CKPT_OK);
    nn_optim_free(oa);
    nn_optim_free(ob);
    model_free(&a);
    model_free(&b);
    model_free(&c);
}
END_TEST

/* Saving parameters only, and an SGD optimizer with momentum, round-trips too. */
START_TEST(test_round_trip_sgd_and_params_only) {
    model a = model_new(3, 4, 2, 0);
    nn_optim *oa = nn_optim_sgd(&a.ps, (nn_sgd_opts){.lr = 0.1, .momentum = 0.9});
    train(&a, oa, 2, 3);
    round_to_f32(a.w);
    round_to_f32(a.b);
    round_state(oa);
    nn_ckpt_error err;
    ck_assert_int_eq(nn_checkpoint_save(path, &a.ps, oa, NULL, 0, &err), NN_CKPT_OK);
    model b = model_new(3, 4, 0, 0);
    nn_optim *ob = nn_optim_sgd(&b.ps, (nn_sgd_opts){.lr = 0.1, .momentum = 0.9});
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, ob, NULL, &err), NN_CKPT_OK);
    train(&a, oa, 1, 4);
    train(&b, ob, 1, 4);
    ck_assert(same_bits(a.w, b.w) && same_bits(a.b, b.b));

    round_to_f32(a.w);
    ck_assert_int_eq(nn_checkpoint_save(path, &a.ps, NULL, NULL, 0, &err), NN_CKPT_OK);
    model c = model_new(3, 4, 0, 0);
    ck_assert_int_eq(nn_checkpoint_load(path, &c.ps, NULL, NULL, &err), NN_CKPT_OK);
    ck_assert(same_bits(a.w, c.w));
    /* ... but an optimizer asking for state finds none, and nothing is loaded */
    model d = model_new(3, 4, 0, 5);
    ck_assert_int_eq(nn_checkpoint_load(path, &d.ps, ob, NULL, &err), NN_CKPT_OPTIM);
    ck_assert_msg(strstr(err.message, "no optimizer state"), "%s", err.message);
    ck_assert(all_equal(d.w, 5) && all_equal(d.b, 5));
    nn_optim_free(oa);
    nn_optim_free(ob);
    model_free(&a);
    model_free(&b);
    model_free(&c);
    model_free(&d);
}
END_TEST

/* ---- refusals -------------------------------------------------------------------------------- */

START_TEST(test_wrong_shape) {
    model a = model_new(3, 4, 1, 0);
    nn_ckpt_error err;
    ck_assert_int_eq(nn_checkpoint_save(path, &a.ps, NULL, NULL, 0, &err), NN_CKPT_OK);
    model b = model_new(4, 3, 0, 7); /* w transposed; b (checked first) matches */
    nn_checkpoint_meta *m = (nn_checkpoint_meta *)&err; /* must be set to NULL */
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, NULL, &m, &err), NN_CKPT_SHAPE);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(err.code, NN_CKPT_SHAPE);
    ck_assert_msg(strstr(err.message, "fc.weight") && strstr(err.message, "[3, 4]") &&
                      strstr(err.message, "[4, 3]") && strstr(err.message, path),
                  "%s", err.message);
    ck_assert(all_equal(b.w, 7) && all_equal(b.b, 7));
    model_free(&a);
    model_free(&b);
}
END_TEST

START_TEST(test_missing_tensor_and_unexpected) {
    /* a file with only the bias */
    model a = model_new(3, 4, 1, 0);
    nn_params only_b = {0};
    nn_params_add(&only_b, "fc", "bias", a.b);
    nn_ckpt_error err;
    ck_assert_int_eq(nn_checkpoint_save(path, &only_b, NULL, NULL, 0, &err), NN_CKPT_OK);
    model b = model_new(3, 4, 0, 7);
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, NULL, NULL, &err), NN_CKPT_MISSING);
    ck_assert_msg(strstr(err.message, "'fc.weight' is missing"), "%s", err.message);
    ck_assert(all_equal(b.w, 7) && all_equal(b.b, 7));

    /* a file with a tensor the model lacks */
    ck_assert_int_eq(nn_checkpoint_save(path, &a.ps, NULL, NULL, 0, &err), NN_CKPT_OK);
    ck_assert_int_eq(nn_checkpoint_load(path, &only_b, NULL, NULL, &err), NN_CKPT_UNEXPECTED);
    ck_assert_msg(strstr(err.message, "'fc.weight' is not in the model"), "%s", err.message);
    nn_params_free(&only_b);
    model_free(&a);
    model_free(&b);
}
END_TEST

START_TEST(test_other_optimizer) {
    model a = model_new(3, 4, 1, 0);
    nn_optim *adam = nn_optim_adam(&a.ps, nn_adam_defaults(0.01));
    train(&a, adam, 1, 1);
    nn_ckpt_error err;
    ck_assert_int_eq(nn_checkpoint_save(path, &a.ps, adam, NULL, 0, &err), NN_CKPT_OK);

    model b = model_new(3, 4, 0, 7);
    nn_optim *rms = nn_optim_rmsprop(&b.ps, nn_rmsprop_defaults(0.01));
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, rms, NULL, &err), NN_CKPT_OPTIM);
    ck_assert_msg(strstr(err.message, "'adam'") && strstr(err.message, "'rmsprop'"), "%s",
                  err.message);
    ck_assert(all_equal(b.w, 7) && all_equal(b.b, 7));
    nn_optim_free(rms);

    /* same kind, other options: AMSGrad's extra buffer is missing; nothing changes */
    nn_adam_opts o = nn_adam_defaults(0.5);
    o.amsgrad = true;
    nn_optim *ams = nn_optim_adam(&b.ps, o);
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, ams, NULL, &err), NN_CKPT_MISSING);
    ck_assert_msg(strstr(err.message, "optim.max_exp_avg_sq.fc.bias"), "%s", err.message);
    ck_assert(all_equal(b.w, 7) && all_equal(b.b, 7));
    ck_assert_int_eq(nn_optim_steps(ams), 0);
    ck_assert(nn_optim_get_lr(ams) == 0.5);
    nn_optim_free(ams);

    /* and plain Adam over a model with fewer parameters sees an unexpected state entry */
    nn_params only_b = {0};
    nn_params_add(&only_b, "fc", "bias", b.b);
    nn_optim *small = nn_optim_adam(&only_b, nn_adam_defaults(0.01));
    ck_assert_int_eq(nn_checkpoint_load(path, &only_b, small, NULL, &err), NN_CKPT_UNEXPECTED);
    nn_optim_free(small);
    nn_params_free(&only_b);
    nn_optim_free(adam);
    model_free(&a);
    model_free(&b);
}
END_TEST

/* A file written by hand with a negative step count, or a float step, is refused. */
START_TEST(test_bad_step_counter) {
    model b = model_new(3, 4, 0, 7);
    nn_optim *sgd = nn_optim_sgd(&b.ps, nn_sgd_defaults(0.1));
    int64_t neg = -3, fine = 2;
    float f = 2;
    st_tensor ts[4] = {
        {.name = "fc.bias",
         .dtype = ST_F32,
         .ndim = 1,
         .shape = (int64_t[]){4},
         .data = (float[]){1, 2, 3, 4}},
        {.name = "fc.weight",
         .dtype = ST_F32,
         .ndim = 2,
         .shape = (int64_t[]){3, 4},
         .data = (float[12]){0}},
        {.name = "optim.step.fc.bias", .dtype = ST_I64, .ndim = 0, .data = &fine},
        {.name = "optim.step.fc.weight", .dtype = ST_I64, .ndim = 0, .data = &neg},
    };
    st_meta meta[2] = {{"optim.kind", "sgd"}, {"optim.lr", "0.1"}};
    ck_assert_int_eq(st_save(path, ts, 4, meta, 2, NULL), ST_OK);
    nn_ckpt_error err;
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, sgd, NULL, &err), NN_CKPT_OPTIM);
    ck_assert_msg(strstr(err.message, "optim.step.fc.weight") && strstr(err.message, "negative"),
                  "%s", err.message);
    ck_assert(all_equal(b.w, 7) && all_equal(b.b, 7));

    ts[3] = (st_tensor){.name = "optim.step.fc.weight", .dtype = ST_F32, .ndim = 0, .data = &f};
    ck_assert_int_eq(st_save(path, ts, 4, meta, 2, NULL), ST_OK);
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, sgd, NULL, &err), NN_CKPT_DTYPE);
    ts[3] = (st_tensor){.name = "optim.step.fc.weight", .dtype = ST_I64, .ndim = 0, .data = &fine};
    meta[1].value = "fast";
    ck_assert_int_eq(st_save(path, ts, 4, meta, 2, NULL), ST_OK);
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, sgd, NULL, &err), NN_CKPT_OPTIM);
    ck_assert_msg(strstr(err.message, "optim.lr"), "%s", err.message);
    ck_assert(all_equal(b.w, 7) && all_equal(b.b, 7));
    meta[1].value = "0.25";
    ck_assert_int_eq(st_save(path, ts, 4, meta, 2, NULL), ST_OK);
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, sgd, NULL, &err), NN_CKPT_OK);
    ck_assert(b.b->data[3] == 4 && nn_optim_get_lr(sgd) == 0.25 && nn_optim_steps(sgd) == 2);
    nn_optim_free(sgd);
    model_free(&b);
}
END_TEST

START_TEST(test_missing_file_and_bad_args) {
    model b = model_new(3, 4, 0, 7);
    nn_ckpt_error err;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no_such.safetensors", dir);
    ck_assert_int_eq(nn_checkpoint_load(missing, &b.ps, NULL, NULL, &err), NN_CKPT_FILE);
    ck_assert_int_eq(err.st, ST_ERR_IO);
    ck_assert_msg(strstr(err.message, missing), "%s", err.message);
    nn_checkpoint_meta *m;
    ck_assert_int_eq(nn_checkpoint_read_meta(missing, &m, &err), NN_CKPT_FILE);
    ck_assert_ptr_null(m);

    /* a damaged file: the safetensors status comes through */
    FILE *f = fopen(path, "wb");
    fputs("junk", f);
    fclose(f);
    ck_assert_int_eq(nn_checkpoint_load(path, &b.ps, NULL, NULL, &err), NN_CKPT_FILE);
    ck_assert_int_eq(err.st, ST_ERR_TOO_SHORT);
    ck_assert(all_equal(b.w, 7));

    /* reserved and duplicate metadata keys write nothing */
    unlink(path);
    nn_meta reserved[] = {{"optim.kind", "sgd"}};
    ck_assert_int_eq(nn_checkpoint_save(path, &b.ps, NULL, reserved, 1, &err), NN_CKPT_ARG);
    ck_assert_msg(strstr(err.message, "reserved"), "%s", err.message);
    nn_meta dup[] = {{"k", "1"}, {"k", "2"}};
    ck_assert_int_eq(nn_checkpoint_save(path, &b.ps, NULL, dup, 2, &err), NN_CKPT_ARG);
    ck_assert_int_ne(access(path, F_OK), 0);

    /* an unwritable place */
    ck_assert_int_eq(
        nn_checkpoint_save("/nonexistent_dir/x.safetensors", &b.ps, NULL, NULL, 0, &err),
        NN_CKPT_FILE);
    ck_assert_msg(strstr(err.message, "/nonexistent_dir/x.safetensors"), "%s", err.message);
    ck_assert_str_eq(nn_ckpt_strerror(NN_CKPT_SHAPE), "tensor shape differs from the model's");
    nn_checkpoint_meta_free(NULL);
    model_free(&b);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *t = tcase_create("checkpoint");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_round_trip);
    tcase_add_test(t, test_round_trip_sgd_and_params_only);
    tcase_add_test(t, test_wrong_shape);
    tcase_add_test(t, test_missing_tensor_and_unexpected);
    tcase_add_test(t, test_other_optimizer);
    tcase_add_test(t, test_bad_step_counter);
    tcase_add_test(t, test_missing_file_and_bad_args);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
