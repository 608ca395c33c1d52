/* examples/vae/data.c: loading the IDX splits a command needs and walking them in batches. */
#include <string.h>

#include "examples/vae/cli.h"

int cli_load_split(const char *cmd, const char *dir, int train, int64_t limit, idx_dataset *out) {
    return cli_load_split_labels(cmd, dir, train, limit, true, out);
}

int cli_load_split_labels(const char *cmd, const char *dir, int train, int64_t limit,
                          bool need_labels, idx_dataset *out) {
    char err[512];
    bool labeled = true;
    /* 256 classes: any byte is a valid label here; conditional models check theirs later. */
    idx_status s = need_labels
                       ? idx_load_split(dir, train, 256, out, err, sizeof err)
                       : idx_load_split_unlabeled(dir, train, 256, out, &labeled, err, sizeof err);
    if (s != IDX_OK)
        return cli_error(CLI_FAIL, cmd, "cannot load the %s set from %s: %s",
                         train ? "training" : "test", dir, err);
    if (limit >= 0) idx_take(out, limit);
    return 0;
}

/* The first example of d whose label is `label`, or -1. */
static int64_t find_label(const idx_dataset *d, int64_t label) {
    for (int64_t i = 0; i < d->n; i++)
        if (d->labels[i] == label) return i;
    return -1;
}

int cli_count_classes(const char *cmd, const char *dir, const idx_dataset *train,
                      const idx_dataset *test, int64_t classes, int64_t *out) {
    const idx_dataset *sets[2] = {train, test};
    const char *names[2] = {"training", "test"};
    if (classes > 0) { /* --classes K: every label of both sets in 0..K-1 */
        for (int s = 0; s < 2; s++)
            for (int64_t i = 0; i < sets[s]->n; i++)
                if (sets[s]->labels[i] >= classes)
                    return cli_error(CLI_FAIL, cmd,
                                     "%s: example %lld of the %s set has label %d, outside "
                                     "--classes %lld (labels 0..%lld)",
                                     dir, (long long)i, names[s], sets[s]->labels[i],
                                     (long long)classes, (long long)classes - 1);
        *out = classes;
        return 0;
    }
    /* By default K is the largest training label + 1, but only when every class below it
     * occurs: a gap means an outlying label (a 200 among digits), not 201 classes. */
    int64_t seen[256] = {0}, k = 0;
    for (int64_t i = 0; i < train->n; i++) seen[train->labels[i]]++;
    for (int c = 0; c < 256; c++)
        if (seen[c]) k = c + 1;
    for (int c = 0; c < k; c++)
        if (!seen[c])
            return cli_error(CLI_FAIL, cmd,
                             "%s: example %lld of the training set has label %lld, but class %d "
                             "never occurs: a damaged label? Give --classes K if there really "
                             "are K classes",
                             dir, (long long)find_label(train, k - 1), (long long)k - 1, c);
    for (int64_t i = 0; i < test->n; i++)
        if (test->labels[i] >= k)
            return cli_error(CLI_FAIL, cmd,
                             "%s: example %lld of the test set has label %d, but the training set "
                             "has classes 0..%lld only",
                             dir, (long long)i, test->labels[i], (long long)k - 1);
    if (k < 1) return cli_error(CLI_FAIL, cmd, "%s: the training set is empty", dir);
    *out = k;
    return 0;
}

int cli_check_data(const char *cmd, const char *dir, const idx_dataset *d, const vae_config *cfg) {
    if (d->rows != cfg->rows || d->cols != cfg->cols)
        return cli_error(CLI_FAIL, cmd, "%s: images are %lldx%lld but the model expects %lldx%lld",
                         dir, (long long)d->rows, (long long)d->cols, (long long)cfg->rows,
                         (long long)cfg->cols);
    for (int64_t i = 0; cfg->num_classes > 0 && i < d->n; i++)
        if (d->labels[i] >= cfg->num_classes)
            return cli_error(CLI_FAIL, cmd,
                             "%s: example %lld has label %d but the model knows %d classes", dir,
                             (long long)i, d->labels[i], cfg->num_classes);
    return 0;
}

/* ---- batches -----------------------------------------------------------------------------------
 */

void cli_batches_init(cli_batches *b, const idx_dataset *d, int64_t batch, bool shuffle) {
    memset(b, 0, sizeof *b);
    int64_t D = d->rows * d->cols;
    b->d = d;
    b->batch = batch < d->n ? batch : d->n;
    if (b->batch < 1) b->batch = 1;
    nn_batches_init(&b->it, d->n, b->batch, shuffle, false, 0);
    b->labels = nb_malloc((size_t)b->batch * sizeof *b->labels);
    b->x_full = tensor_zeros(NB_SHAPE(b->batch, D));
    if (d->n % b->batch) b->x_last = tensor_zeros(NB_SHAPE(d->n % b->batch, D));
}

void cli_batches_start(cli_batches *b, nb_rng *rng) {
    nn_batches_epoch(&b->it, rng);
    b->pos = b->count = 0;
}

bool cli_batches_next(cli_batches *b) {
    if (!nn_batches_next(&b->it)) return false;
    b->count = b->it.count;
    b->pos = b->it.pos;
    b->x = b->count == b->batch ? b->x_full : b->x_last;
    idx_batch(b->d, b->it.index, b->count, b->x->data, b->labels);
    return true;
}

void cli_batches_free(cli_batches *b) {
    nn_batches_free(&b->it);
    nb_free(b->labels);
    tensor_free(b->x_full);
    tensor_free(b->x_last);
    memset(b, 0, sizeof *b);
}
