/* examples/vae/cli.h: the pieces of the `vae` command line, shared between its files.
 *
 *   vae train --epochs 10 --out out          (train.c)
 *   vae sample|reconstruct|interpolate ...   (show.c, drawing in pictures.c)
 *   vae eval ... / vae anomaly ...           (eval.c, anomaly.c)
 *   vae encode|decode / arithmetic / inpaint (encode.c, arithmetic.c, inpaint.c; sets.c)
 *
 * Every command function takes the arguments after its name and returns the process exit
 * status: 0 success, CLI_FAIL (1) a runtime failure (missing file, corrupt checkpoint, disk
 * full), CLI_USAGE (2) a bad command line. Messages go to stderr and name the flag or file. */
#ifndef NB_VAE_CLI_H
#define NB_VAE_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "io/idx.h"
#include "models/vae.h"
#include "nn/checkpoint.h"
#include "nn/data.h"

#define CLI_FAIL  1
#define CLI_USAGE 2
#define CLI_HELP  (-1) /* cli_parse printed --help: exit 0 */

/* ---- the commands ------------------------------------------------------------------------- */

int cli_train(int argc, char **argv);
int cli_sample(int argc, char **argv);
int cli_reconstruct(int argc, char **argv);
int cli_interpolate(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_anomaly(int argc, char **argv);
int cli_encode(int argc, char **argv);
int cli_decode(int argc, char **argv);
int cli_arithmetic(int argc, char **argv);
int cli_inpaint(int argc, char **argv);

/* ---- flags (args.c) -------------------------------------------------------------------------- */

typedef enum {
    CLI_FLAG,       /* bool, no value */
    CLI_INT,        /* int64_t in [min, max] */
    CLI_REAL,       /* finite double in [min, max] */
    CLI_STRING,     /* const char * (points into argv) */
    CLI_HIDDEN,     /* "400" or "512,256": cli_hidden */
    CLI_LIKELIHOOD, /* a name vae_likelihood_parse knows: vae_likelihood */
} cli_kind;

typedef struct {
    int n;                        /* layers */
    int64_t size[VAE_MAX_HIDDEN]; /* H per layer, encoder order */
} cli_hidden;

typedef struct {
    const char *name; /* "--epochs" */
    cli_kind kind;
    void *dst;        /* where the value goes: bool, int64_t, double, const char *, ... */
    const char *arg;  /* value placeholder in --help ("N"), NULL for flags */
    const char *help; /* one line, with the default */
    double min, max;  /* accepted range (CLI_INT, CLI_REAL; CLI_HIDDEN per size) */
    bool required;
    bool seen; /* set by cli_parse when the flag was given */
} cli_opt;

/* Parses argv[0..argc) ("--name value" or "--name=value") into opts. Prints the usage and
 * returns CLI_HELP on --help or -h; on an unknown flag, a missing or bad value, a stray
 * argument or a missing required flag prints "vae <cmd>: <problem>" and returns CLI_USAGE. */
int cli_parse(const char *cmd, const char *summary, cli_opt *opts, int nopts, int argc,
              char **argv);
/* The option called name (programmer error if absent). */
cli_opt *cli_find(cli_opt *opts, int nopts, const char *name);
/* Prints "vae <cmd>: <message>" to stderr and returns status (for `return cli_error(...)`). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int cli_error(int status, const char *cmd, const char *fmt, ...);

/* ---- data (data.c) ------------------------------------------------------------------------------
 */

/* Loads the train (train = 1) or test split of dir, keeps the first `limit` examples (limit
 * < 0: all). Labels may be any byte. Prints the loader's message and returns CLI_FAIL. */
int cli_load_split(const char *cmd, const char *dir, int train, int64_t limit, idx_dataset *out);
/* As cli_load_split; with need_labels false a split without a labels file loads too (every
 * label 0), for an unconditional model. */
int cli_load_split_labels(const char *cmd, const char *dir, int train, int64_t limit,
                          bool need_labels, idx_dataset *out);
/* The class count K of a conditional model into *out: `classes` when > 0 (--classes), else the
 * largest training label + 1, provided every class below it occurs in the training set. Every
 * label of both sets must lie in 0..K-1. Else CLI_FAIL naming the set, the example and label. */
int cli_count_classes(const char *cmd, const char *dir, const idx_dataset *train,
                      const idx_dataset *test, int64_t classes, int64_t *out);
/* CLI_FAIL with a message unless d's images are cfg's size and, for a conditional model,
 * every label is below cfg->num_classes. */
int cli_check_data(const char *cmd, const char *dir, const idx_dataset *d, const vae_config *cfg);

/* Walks a dataset in batches of at most `batch` examples (the last one partial), in order or
 * shuffled (nn/data.h): x (kept [b, D]) and labels [b] of the current one. */
typedef struct {
    const idx_dataset *d;
    nn_batches it;             /* the order and the current batch's indices */
    int64_t batch, pos, count; /* pos: examples walked this pass; count: in the current batch */
    Tensor *x_full, *x_last;   /* kept [batch, D] and [n % batch, D] (or NULL) */
    Tensor *x;                 /* the current one of the two */
    int64_t *labels;           /* [batch] */
} cli_batches;

void cli_batches_init(cli_batches *b, const idx_dataset *d, int64_t batch, bool shuffle);
/* Starts a pass over the set, in a new order drawn from rng when shuffling (unused otherwise). */
void cli_batches_start(cli_batches *b, nb_rng *rng);
/* Fills the next batch; false once the pass is done. */
bool cli_batches_next(cli_batches *b);
void cli_batches_free(cli_batches *b);

/* ---- models and checkpoints (model.c) ----------------------------------------------------------
 */

#define CLI_META_CONFIG "vae.config"

/* Builds the model a checkpoint describes (its "vae.config" metadata) and loads its parameters
 * (and, when opt_lr >= 0, also creates an Adam optimizer with that lr and loads its state into
 * *opt, unless the file holds weights only: then the optimizer starts fresh). *meta (may be
 * NULL) receives the metadata. Prints a message naming the file and returns CLI_FAIL. */
int cli_model_load(const char *cmd, const char *path, vae_model *m, nn_optim **opt, double opt_lr,
                   nn_checkpoint_meta **meta);
/* The model's labels argument: labels for a conditional model, NULL otherwise. */
const int64_t *cli_labels(const vae_model *m, const int64_t *labels);
/* Formats/parses an rng state as hex words (exact). Parse returns false on a bad string. */
void cli_rng_format(const nb_rng *r, char *buf, size_t len);
bool cli_rng_parse(const char *s, nb_rng *r);

/* ---- pictures (pictures.c) ------------------------------------------------------------------- */

/* Each writes one PNG and returns 0, or CLI_FAIL with a message naming the path. */
/* n samples from the prior, 8 to a row; a conditional model with label < 0 draws one row of
 * per_class samples for each class instead. */
int cli_write_samples(const char *cmd, const vae_model *m, const char *path, int64_t n, int label,
                      int64_t per_class, nb_rng *rng);
/* The first n test images, each row of up to 8 above a row of their reconstructions. */
int cli_write_reconstructions(const char *cmd, const vae_model *m, const idx_dataset *d,
                              const char *path, int64_t n);
/* `pairs` rows: test image 2i, steps decoded points from its posterior mean to that of test
 * image 2i+1, then that image. */
int cli_write_interpolations(const char *cmd, const vae_model *m, const idx_dataset *d,
                             const char *path, int64_t pairs, int64_t steps);
/* 2-D latent only: decoded images over a grid x grid lattice of normal quantiles. */
int cli_write_manifold(const char *cmd, const vae_model *m, const char *path, int64_t grid,
                       int label);
/* The standard normal quantile of p in (0, 1). */
double cli_normal_quantile(double p);

/* ---- the graph (graph.c) ----------------------------------------------------------------------
 */

/* Writes the graph behind objective (after its backward: with gradient norms) as Graphviz DOT
 * to path, the parameters labelled with their names and x as the batch. 0 or CLI_FAIL. */
int cli_write_graph(const char *cmd, const char *path, const vae_model *m, Tensor *x,
                    const Tensor *objective);

/* Writes imgs [n, rows*cols] (values in [0, 1]) as a PNG grid of `cols` columns. */
int cli_write_grid(const char *cmd, const char *path, const real *imgs, int64_t n, int64_t rows,
                   int64_t cols, int64_t grid_cols);

/* ---- whole sets through the model (sets.c) -------------------------------------------------- */

/* Every image of d as pixel/255: [d->n, rows*cols], and its labels [d->n] into *labels (may
 * be NULL). Free both with nb_free. */
real *cli_set_pixels(const idx_dataset *d, int64_t **labels);
/* x [n, D] -> posterior means mu [n, Z] and, when logvar is not NULL, log-variances [n, Z], in
 * batches with grad mode off. labels [n] (used by conditional models only). */
void cli_encode_set(const vae_model *m, const real *x, const int64_t *labels, int64_t n, real *mu,
                    real *logvar);
/* z [n, Z] -> decoded images [n, D] in [0, 1], in batches with grad mode off. */
void cli_decode_set(const vae_model *m, const real *z, const int64_t *labels, int64_t n, real *img);
/* Per-pixel mean squared error and Bernoulli negative log-likelihood (nats per image, p clamped
 * to [1e-6, 1 - 1e-6]) of images p against x, both [n, D]. */
void cli_image_errors(const real *p, const real *x, int64_t n, int64_t D, double *mse, double *nll);
/* Writes images [n, rows*cols] in [0, 1] (rounded to bytes) and labels [n] (NULL: all 0) as
 * dir/t10k-images-idx3-ubyte and dir/t10k-labels-idx1-ubyte, the test split every command reads
 * (creates dir). Returns 0 or CLI_FAIL naming the file. */
int cli_write_idx_split(const char *cmd, const char *dir, const real *imgs, const int64_t *labels,
                        int64_t n, int64_t rows, int64_t cols);

/* ---- progress (progress.c) ---------------------------------------------------------------------
 */

typedef struct {
    bool tty;            /* stdout is a terminal: draw a bar, else stay quiet until the end */
    const char *label;   /* "epoch 3/10" */
    int64_t total, done; /* examples */
    double start, last;  /* seconds (monotonic) */
} cli_progress;

double cli_now(void); /* monotonic seconds */
void cli_progress_begin(cli_progress *p, const char *label, int64_t total);
/* Redraws the bar (at most ~10 times a second) with the running loss (NaN: none). */
void cli_progress_update(cli_progress *p, int64_t done, double loss);
/* Clears the bar (terminal only). */
void cli_progress_end(cli_progress *p);

/* ---- metrics (metrics.c) -----------------------------------------------------------------------
 */

typedef struct {
    int64_t epoch;
    double train_loss, train_elbo; /* objective and beta = 1 negative ELBO, nats per example */
    double test_loss, test_recon, test_kl;
    double epoch_seconds, samples_per_second;
    int64_t step;
} cli_epoch_metrics;

/* Keeps the lines of path whose "epoch" is <= keep_epochs (0: none), so a resumed run's file
 * has no stale epochs. A missing file is fine. Returns 0 or CLI_FAIL. */
int cli_metrics_truncate(const char *cmd, const char *path, int64_t keep_epochs);
/* Appends one JSON line. Returns 0 or CLI_FAIL. */
int cli_metrics_append(const char *cmd, const char *path, const cli_epoch_metrics *e);
/* Writes a double as JSON: %.9g, or null when not finite. */
void cli_json_number(FILE *f, double v);

/* AUROC of scores with positive[i] marking the positive class, exact: the Mann-Whitney U from
 * ranks with ties averaged, over n_pos * n_neg. NaN when either class is empty. */
double cli_auroc(const double *score, const bool *positive, int64_t n);

/* Joins dir and name into buf; false (with a message) when it does not fit. */
bool cli_path(const char *cmd, char *buf, size_t len, const char *dir, const char *name);

/* ---- guards (guard.c) ----------------------------------------------------------------------- */

/* The divergence rule: a negative ELBO (nats per example) that is not finite or whose magnitude
 * exceeds CLI_DIVERGED_PER_VALUE nats per input value (7.84e6 for a 28x28 image) means the run
 * diverged. A healthy model stays below 1 nat per value (Bernoulli at init: ln 2), so the bound
 * only catches blow-ups (1e35 nats after --lr 10), never slow or noisy training. */
#define CLI_DIVERGED_PER_VALUE 1e4
bool cli_loss_diverged(double loss, int64_t values);
/* The name of the first parameter holding a NaN or an infinity, or NULL when all are finite. */
const char *cli_nonfinite_param(const nn_params *ps);

/* --threads n: n > 0 sets the thread count, with a warning on stderr when it is more than the
 * online cores; 0 keeps the default of one thread per core. */
#define CLI_THREADS_HELP "threads (default 0: one per core; more than the cores warns)"
void cli_set_threads(const char *cmd, int64_t n);

/* One finished epoch, before its checkpoint replaces the previous one. */
typedef struct {
    int64_t epoch;                 /* 1-based */
    double train_loss, train_elbo; /* objective and negative ELBO, nats per example */
    double test_elbo;              /* negative ELBO on the test set */
    int64_t values;                /* D: input values per example */
    const nn_params *params;       /* the model after the epoch */
    double lr;                     /* the learning rate used */
    const char *good;              /* the last finite checkpoint of this run (NULL: none) */
    int64_t good_epoch;            /* the epoch it holds */
} cli_epoch_check;
/* 0 when the epoch may be saved; else prints why the run diverged (which loss or parameter),
 * which checkpoint still holds the last good epoch, and an --lr to try, and returns CLI_FAIL. */
int cli_check_epoch(const char *cmd, const cli_epoch_check *c);

#endif
