/* examples/vae/guard.c: what keeps a bad run from damaging a good one: finite parameters, the
 * divergence rule, and the words of advice when a run diverges. */
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "examples/vae/cli.h"
#include "tensor/gemm.h"

const char *cli_nonfinite_param(const nn_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = ps->items[i].t;
        real *v = nb_malloc((size_t)t->numel * sizeof *v);
        tensor_to_array(t, v); /* any layout */
        int64_t k = 0;
        while (k < t->numel && isfinite((double)v[k])) k++;
        nb_free(v);
        if (k < t->numel) return ps->items[i].name;
    }
    return NULL;
}

bool cli_loss_diverged(double loss, int64_t d) {
    return !isfinite(loss) || fabs(loss) > CLI_DIVERGED_PER_VALUE * (double)d;
}

int cli_check_epoch(const char *cmd, const cli_epoch_check *c) {
    const char *what = NULL;
    double value = 0;
    if (!isfinite(c->train_loss)) {
        what = "training objective";
        value = c->train_loss;
    } else if (cli_loss_diverged(c->train_elbo, c->values)) {
        what = "training loss";
        value = c->train_elbo;
    } else if (cli_loss_diverged(c->test_elbo, c->values)) {
        what = "test loss";
        value = c->test_elbo;
    }
    const char *param = what ? NULL : cli_nonfinite_param(c->params);
    if (!what && !param) return 0;
    char problem[256], kept[700];
    if (what && isfinite(value))
        snprintf(problem, sizeof problem,
                 "the %s is %g nats, beyond the divergence limit of %g (%g per input value)", what,
                 value, CLI_DIVERGED_PER_VALUE * (double)c->values, CLI_DIVERGED_PER_VALUE);
    else if (what)
        snprintf(problem, sizeof problem, "the %s is %g", what, value);
    else
        snprintf(problem, sizeof problem, "parameter %s is not finite", param);
    if (c->good)
        snprintf(kept, sizeof kept,
                 "this epoch was not saved; %s holds epoch %lld. The learning rate was %g: "
                 "resume with --resume %s --lr %g",
                 c->good, (long long)c->good_epoch, c->lr, c->good, c->lr / 10);
    else
        snprintf(kept, sizeof kept,
                 "no checkpoint was written. The learning rate was %g: start again with a smaller "
                 "one, e.g. --lr %g",
                 c->lr, c->lr / 10);
    return cli_error(CLI_FAIL, cmd, "training diverged at epoch %lld: %s; %s", (long long)c->epoch,
                     problem, kept);
}

void cli_set_threads(const char *cmd, int64_t n) {
    if (n <= 0) return; /* 0: the default, one per core */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && n > cores)
        fprintf(stderr,
                "vae %s: warning: --threads %lld is more than the %ld cores here; the threads will "
                "take turns and run slower than --threads %ld\n",
                cmd, (long long)n, cores, cores);
    nb_set_num_threads((int)n);
}
