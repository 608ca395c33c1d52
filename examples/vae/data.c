/* examples/vae/data.c: loading the IDX splits a command needs and walking them in batches. */
#include <string.h>

#include "examples/vae/cli.h"

int cli_load_split(const char *cmd, const char *dir, int train, int64_t limit, idx_dataset *out) {
    char err[512];
    /* 256 classes: any byte is a valid label here; conditional models check theirs later. */
    if (idx_load_split(dir, train, 256, out, err, sizeof err) != IDX_OK)
        return cli_error(CLI_FAIL, cmd, "cannot load the %s set from %s: %s",
                         train ? "training" : "test", dir, err);
    if (limit >= 0) idx_take(out, limit);
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
