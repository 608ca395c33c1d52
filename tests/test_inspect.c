/* tests/test_inspect.c: seeing inside a graph: ag_write_dot's gradient norms, the backward
 * trace, and `vae train --graph FILE`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/check_main.h"
#include "tests/testutil.h"

/* L = (x y + x)^2 / 2 at x = 2, y = 3: dL/dx = 32, dL/dy = 16 (examples/tut_scalar.c). */
static Tensor *scalar_graph(Tensor *x, Tensor *y) {
    return ag_mul_scalar(ag_pow(ag_add(ag_mul(x, y), x), 2), 0.5);
}

START_TEST(dot_shows_gradient_norms_after_backward) {
    Tensor *x = tensor_scalar(2), *y = tensor_from_array(NB_SHAPE(2), (real[]){3, 3});
    tensor_requires_grad(x, true);
    tensor_requires_grad(y, true);
    x->name = "x", y->name = "y";
    Tensor *L = ag_sum(scalar_graph(x, y)); /* twice the scalar graph: dL/dx = 64 */
    char buf[8192] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    ag_write_dot(f, L);
    fclose(f);
    ck_assert_msg(!strstr(buf, "|grad|"), "no gradient norms before backward:\n%s", buf);
    ag_backward(L);
    memset(buf, 0, sizeof buf);
    f = fmemopen(buf, sizeof buf - 1, "w");
    ag_write_dot(f, L);
    fclose(f);
    /* |dL/dx| = 64; dL/dy = [16, 16], norm 16 sqrt 2 = 22.63 */
    ck_assert_msg(strstr(buf, "x: leaf\\n[] grad\\n|grad| 64\""), "%s", buf);
    ck_assert_msg(strstr(buf, "y: leaf\\n[2] grad\\n|grad| 22.63\""), "%s", buf);
    ck_assert_msg(strstr(buf, "sum\\n[] grad\\n|grad| 1\""), "%s", buf);
    tensor_free(x);
    tensor_free(y);
    ag_reset();
}
END_TEST

START_TEST(backward_trace_narrates_each_step) {
    Tensor *x = tensor_scalar(2), *y = tensor_scalar(3);
    tensor_requires_grad(x, true);
    tensor_requires_grad(y, true);
    x->name = "x";
    Tensor *L = scalar_graph(x, y);
    char buf[4096] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    ck_assert_ptr_null(ag_set_backward_trace(f));
    ag_backward(L);
    ck_assert_ptr_eq(ag_set_backward_trace(NULL), f);
    fclose(f);
    /* a header, then one line per op, last first: mul_scalar, pow, add, mul */
    const char *want[] = {"backward from mul_scalar []: 4 ops",
                          "#3    mul_scalar",
                          "#2    pow",
                          "#1    add",
                          "x [] |grad| 8", /* x's share through the add */
                          "#0    mul",
                          "x [] |grad| 32",
                          "leaf [] |grad| 16"};
    const char *at = buf;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *hit = strstr(at, want[i]);
        ck_assert_msg(hit, "trace lacks \"%s\" (in order):\n%s", want[i], buf);
        at = hit;
    }
    int lines = 0;
    for (const char *p = buf; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 5);
    ag_reset();
    /* off again: a second backward prints nothing more */
    L = scalar_graph(x, y);
    ag_backward(L);
    ck_assert_double_eq_tol((double)tensor_item(x->grad), 64, 1e-9);
    tensor_free(x);
    tensor_free(y);
    ag_reset();
}
END_TEST

START_TEST(vae_train_writes_its_graph) {
    char dir[] = "/tmp/nabla_graph_XXXXXX", path[128], out[1 << 14];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/vae.dot", dir);
    int st = nbt_run("vae", out, sizeof out,
                     "train --limit 256 --epochs 1 --hidden 32 --latent 4 --threads 1 --out %s "
                     "--graph %s",
                     dir, path);
    ck_assert_msg(st == 0, "vae train --graph failed (%d):\n%s", st, out);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "%s was not written", path);
    static char dot[1 << 16];
    size_t n = fread(dot, 1, sizeof dot - 1, f);
    dot[n] = '\0';
    fclose(f);
    const char *want[] = {
        "digraph nabla",          "encoder.fc1.weight: leaf\\n[32, 784] grad\\n|grad| ",
        "decoder.out.bias: leaf", "x (batch): leaf\\n[128, 784]",
        "bce_with_logits",        "exp"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(dot, want[i]), "the graph lacks \"%s\":\n%s", want[i], dot);
    ck_assert(dot[n - 2] == '}');
    /* an unwritable path fails the command with a message naming it */
    st =
        nbt_run("vae", out, sizeof out,
                "train --limit 64 --epochs 1 --hidden 8 --latent 2 --out %s --graph %s/no/such.dot",
                dir, dir);
    ck_assert_int_eq(st, 1);
    ck_assert_msg(strstr(out, "cannot write --graph") && strstr(out, "no/such.dot"), "%s", out);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("inspect");
    TCase *t = tcase_create("inspect");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, dot_shows_gradient_norms_after_backward);
    tcase_add_test(t, backward_trace_narrates_each_step);
    tcase_add_test(t, vae_train_writes_its_graph);
    suite_add_tcase(s, t);
    return s;
}

NB_CHECK_MAIN(suite)
