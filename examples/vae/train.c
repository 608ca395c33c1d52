/* examples/vae/train.c: vae train: the training loop, per-epoch test loss, metrics, resumable
 * checkpoints and the final pictures.
 *
 * The loop is the reference VAE's: each epoch a fresh permutation from the seeded generator,
 * batches of --batch (the last one partial), vae_loss -> ag_backward -> Adam step -> zero_grad
 * -> ag_reset. The same generator draws the latent noise, and its state goes into every
 * checkpoint with the epoch and step, so --resume continues exactly where the run stopped.
 *
 * Under mpirun (make MPI=1, par.h) each rank computes its rows of every global batch, the ranks'
 * gradients are summed after backward, and rank 0 alone writes --out; one rank runs as before. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "examples/vae/cli.h"
#include "examples/vae/par.h"
#include "io/chart.h"
#include "tensor/gemm.h"

#define CMD "train"

/* Metadata keys of the training position (besides CLI_META_CONFIG). */
#define META_EPOCH "train.epoch"
#define META_STEP  "train.step"
#define META_RNG   "train.rng"
#define META_BATCH "train.batch"
#define META_DATA  "train.data"
#define META_LIMIT "train.limit"
#define META_TRAIN "train.history.train_loss"
#define META_TEST  "train.history.test_loss"

typedef struct {
    const char *data, *out, *resume, *graph, *arch;
    char *data_abs; /* data as an absolute path (saved in checkpoints), or NULL */
    int64_t epochs, batch, latent, warmup, limit, seed, threads, iw, capacity_steps;
    int64_t classes; /* --classes K (0: from the training labels) */
    double lr, beta, capacity, gamma, free_bits;
    cli_hidden hidden, channels;
    vae_likelihood likelihood;
    bool conditional;
    bool capacity_given; /* --capacity seen: the B form */
} train_flags;

/* Where a run is: everything a checkpoint must carry besides parameters and optimizer. */
typedef struct {
    int64_t epoch, step; /* completed epochs, optimizer steps */
    nb_rng rng;
    double *train_hist, *test_hist; /* [epochs] per-epoch losses, for loss.png */
    const char *graph;              /* --graph: written after the next backward, then NULL */
    int graph_rc;                   /* cli_write_graph's status */
    int64_t normals_per_row;        /* several ranks: vae_loss's draws per example, or -1 */
} run_state;

/* ---- checkpoints --------------------------------------------------------------------------- */

/* "v1,v2,..." of n doubles (%.9g) in a new string (free with nb_free). */
static char *join(const double *v, int64_t n) {
    size_t cap = 24 * (size_t)n + 1, used = 0;
    char *s = nb_malloc(cap);
    s[0] = '\0';
    for (int64_t i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, cap - used, "%s%.9g", i ? "," : "", v[i]);
    return s;
}

/* Parses up to n comma-separated numbers into v; false when malformed or of another count. */
static bool split(const char *s, double *v, int64_t n) {
    if (!s) return false;
    const char *p = s;
    for (int64_t i = 0; i < n; i++) {
        char *end;
        v[i] = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || (*end == '\0') != (i == n - 1))
            return false;
        p = end + 1;
    }
    return n > 0 || *s == '\0';
}

static int save_checkpoint(const char *path, const vae_model *m, const nn_optim *opt,
                           const run_state *st, const train_flags *f) {
    char config[1024], epoch[32], step[32], rng[160], batch[32], limit[32];
    vae_config_format(&m->cfg, config, sizeof config);
    snprintf(epoch, sizeof epoch, "%lld", (long long)st->epoch);
    snprintf(step, sizeof step, "%lld", (long long)st->step);
    snprintf(batch, sizeof batch, "%lld", (long long)f->batch);
    snprintf(limit, sizeof limit, "%lld", (long long)f->limit);
    cli_rng_format(&st->rng, rng, sizeof rng);
    char *train = join(st->train_hist, st->epoch), *test = join(st->test_hist, st->epoch);
    nn_meta meta[] = {{CLI_META_CONFIG, config}, {META_EPOCH, epoch},
                      {META_STEP, step},         {META_RNG, rng},
                      {META_BATCH, batch},       {META_DATA, f->data_abs ? f->data_abs : f->data},
                      {META_LIMIT, limit},       {META_TRAIN, train},
                      {META_TEST, test}};
    nn_ckpt_error e;
    nn_ckpt_status s =
        nn_checkpoint_save(path, &m->params, opt, meta, (int)(sizeof meta / sizeof meta[0]), &e);
    nb_free(train);
    nb_free(test);
    if (s != NN_CKPT_OK) return cli_error(CLI_FAIL, CMD, "cannot save checkpoint: %s", e.message);
    return 0;
}

/* Reads an integer metadata value in [0, max]; false when absent or malformed. */
static bool meta_int(const nn_checkpoint_meta *meta, const char *key, int64_t max, int64_t *out) {
    const char *s = nn_checkpoint_meta_get(meta, key);
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v < 0 || v > max) return false;
    *out = v;
    return true;
}

/* Restores the training position of a checkpoint and the settings it was trained with (data,
 * limit, batch: only those the command line did not give). A file with weights only (no
 * training position, e.g. written from PyTorch) starts at epoch 1 with the --seed generator. */
static int load_position(const char *path, const nn_checkpoint_meta *meta, run_state *st,
                         train_flags *f, const cli_opt *o_data, const cli_opt *o_limit,
                         const cli_opt *o_batch) {
    int64_t batch, limit;
    if (!nn_checkpoint_meta_get(meta, META_EPOCH) && !nn_checkpoint_meta_get(meta, META_STEP) &&
        !nn_checkpoint_meta_get(meta, META_RNG)) {
        nb_rng_seed(&st->rng, (uint64_t)f->seed);
        printf("%s holds weights only: training them from epoch 1 with a fresh optimizer\n", path);
        return 0;
    }
    const char *rng = nn_checkpoint_meta_get(meta, META_RNG);
    const char *lim = nn_checkpoint_meta_get(meta, META_LIMIT);
    bool all = lim && !strcmp(lim, "-1"); /* the run used every example */
    if (!meta_int(meta, META_EPOCH, 10000000, &st->epoch) ||
        !meta_int(meta, META_STEP, INT64_MAX / 2, &st->step) || !rng ||
        !cli_rng_parse(rng, &st->rng) || !meta_int(meta, META_BATCH, 1 << 20, &batch) ||
        batch < 1 || !(all || meta_int(meta, META_LIMIT, INT64_MAX, &limit)))
        return cli_error(CLI_FAIL, CMD,
                         "%s: cannot resume: the training position (epoch, step, rng, batch, "
                         "limit) in its metadata is missing or damaged",
                         path);
    if (all) limit = -1;
    if (!o_batch->seen) f->batch = batch;
    if (!o_limit->seen) f->limit = limit;
    if (!o_data->seen && nn_checkpoint_meta_get(meta, META_DATA))
        f->data = nn_checkpoint_meta_get(meta, META_DATA);
    return 0;
}

/* ---- configuration ------------------------------------------------------------------------- */

/* The model config the flags ask for. */
static vae_config config_from_flags(const train_flags *f, const idx_dataset *train, int64_t classes,
                                    int64_t total_steps) {
    vae_config c;
    vae_config_default(&c);
    snprintf(c.arch, sizeof c.arch, "%s", f->arch);
    c.rows = train->rows;
    c.cols = train->cols;
    c.nhidden = f->hidden.n;
    for (int i = 0; i < f->hidden.n; i++) c.hidden[i] = f->hidden.size[i];
    c.nchannels = f->channels.n;
    for (int i = 0; i < f->channels.n; i++) c.channels[i] = f->channels.size[i];
    c.latent = f->latent;
    c.likelihood = f->likelihood;
    c.beta = f->beta;
    c.capacity = f->capacity;
    c.gamma = f->capacity_given ? f->gamma : 0; /* the B form only with --capacity */
    c.capacity_steps = f->capacity_steps >= 0 ? f->capacity_steps : total_steps;
    c.warmup_steps = f->warmup;
    c.free_bits = f->free_bits;
    c.iw_samples = (int)f->iw;
    if (f->conditional) c.num_classes = classes > 0 ? (int)classes : 1; /* cli_count_classes */
    return c;
}

/* A resumed run keeps the checkpoint's model: a flag that asks for another one is an error. */
static int check_conflicts(const char *path, const vae_config *ck, const vae_config *want,
                           cli_opt *o, int no) {
    struct {
        const char *flag;
        bool differs;
    } fields[] = {
        {"--arch", strcmp(ck->arch, want->arch) != 0},
        {"--channels",
         ck->nchannels != want->nchannels ||
             memcmp(ck->channels, want->channels, (size_t)ck->nchannels * sizeof ck->channels[0])},
        {"--hidden",
         ck->nhidden != want->nhidden ||
             memcmp(ck->hidden, want->hidden, (size_t)ck->nhidden * sizeof ck->hidden[0])},
        {"--latent", ck->latent != want->latent},
        {"--likelihood", ck->likelihood != want->likelihood},
        {"--beta", ck->beta != want->beta},
        {"--capacity", ck->capacity != want->capacity},
        {"--gamma", ck->gamma != want->gamma},
        {"--capacity-steps", ck->capacity_steps != want->capacity_steps},
        {"--warmup", ck->warmup_steps != want->warmup_steps},
        {"--free-bits", ck->free_bits != want->free_bits},
        {"--conditional", (ck->num_classes > 0) != (want->num_classes > 0)},
        {"--classes", ck->num_classes != want->num_classes},
        {"--iw", ck->iw_samples != want->iw_samples},
    };
    char have[1024];
    vae_config_format(ck, have, sizeof have);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (cli_find(o, no, fields[i].flag)->seen && fields[i].differs)
            return cli_error(CLI_USAGE, CMD,
                             "%s conflicts with the model in %s (%s); a resumed run keeps its "
                             "model: drop the flag or start a new run",
                             fields[i].flag, path, have);
    return 0;
}

/* ---- one epoch ----------------------------------------------------------------------------- */

typedef struct {
    double loss, elbo; /* objective and negative ELBO, summed over examples / N */
    double recon, kl;
    double seconds;
} pass_result;

/* ---- several ranks (par.h) ------------------------------------------------------------------ */

static bool same_rng(const nb_rng *a, const nb_rng *b) {
    return !memcmp(a->s, b->s, sizeof a->s) && a->has_cached == b->has_cached &&
           (!a->has_cached || a->cached_normal == b->cached_normal);
}

static void skip_normals(nb_rng *r, int64_t n) {
    for (int64_t i = 0; i < n; i++) nb_rng_normal(r);
}

/* How many normals vae_loss draws per example when that is a fixed count (2 rows draw twice
 * what 1 row draws, and nothing else), else -1. With it, each rank draws exactly the noise one
 * process draws for the same rows (shard_of), so N ranks train as one process does. */
static int64_t normals_per_row(const vae_model *m, const cli_batches *b, const run_state *st) {
    if (par_size() == 1 || b->count < 2) return -1;
    int64_t per[2] = {-1, -1};
    bool prev = ag_set_grad_enabled(false);
    for (int k = 0; k < 2; k++) {
        nb_rng used = st->rng, walk = st->rng;
        vae_loss(m, ag_narrow(b->x, 0, 0, k + 1), cli_labels(m, b->labels), st->step, &used);
        ag_reset();
        for (int64_t n = 0; n <= 1000000 && per[k] < 0; n++) {
            if (same_rng(&walk, &used)) per[k] = n;
            nb_rng_normal(&walk);
        }
    }
    ag_set_grad_enabled(prev);
    return per[0] >= 0 && per[1] == 2 * per[0] ? per[0] : -1;
}

/* This rank's rows [start, start + count) of the current batch (all of it on one rank), and the
 * generator for their noise: on one rank the shared one; on several, `own`, placed where one
 * process would be at row `start`, while the shared one moves past the whole batch (or, when
 * the draws per row are unknown, a stream of the rank's own: par_noise). */
typedef struct {
    int64_t start, count;
    Tensor *x;             /* b->x or a view of this rank's rows */
    const int64_t *labels; /* for vae_loss (NULL unless conditional) */
    nb_rng *noise;
} shard;

static shard shard_of(const vae_model *m, const cli_batches *b, run_state *st, nb_rng *own) {
    shard s;
    par_shard(b->count, &s.start, &s.count);
    s.x = s.count == b->count ? b->x : s.count ? ag_narrow(b->x, 0, s.start, s.count) : NULL;
    s.labels = cli_labels(m, b->labels + s.start);
    if (par_size() == 1) {
        s.noise = &st->rng;
    } else if (st->normals_per_row < 0) {
        s.noise = par_noise(&st->rng, own);
    } else {
        *own = st->rng;
        skip_normals(own, s.start * st->normals_per_row);
        skip_normals(&st->rng, b->count * st->normals_per_row);
        s.noise = own;
    }
    return s;
}

/* ---- one epoch ----------------------------------------------------------------------------- */

/* One pass of training over the set, in an order drawn from the run's generator. */
static pass_result train_epoch(const vae_model *m, nn_optim *opt, par_sync *sync, cli_batches *b,
                               run_state *st, const char *label) {
    pass_result r = {0};
    cli_progress bar;
    cli_progress_begin(&bar, label, b->d->n);
    cli_batches_start(b, &st->rng);
    int64_t mine = 0; /* examples this rank computed */
    while (cli_batches_next(b)) {
        nb_rng own;
        shard s = shard_of(m, b, st, &own);
        if (s.count > 0) {
            vae_terms t = vae_loss(m, s.x, s.labels, st->step, s.noise);
            /* weighted by the shard's share, the ranks' gradients sum to the batch mean's */
            ag_backward(s.count == b->count ? t.objective
                                            : ag_mul_scalar(t.objective, (real)((double)s.count /
                                                                                (double)b->count)));
            if (st->graph) st->graph_rc = cli_write_graph(CMD, st->graph, m, s.x, t.objective);
            r.loss += (double)s.count * (double)tensor_item(t.objective);
            r.elbo += (double)s.count * t.elbo_loss;
            mine += s.count;
        }
        st->graph = NULL;
        par_sync_grads(sync);
        nn_optim_step(opt);
        nn_optim_zero_grad(opt);
        ag_reset();
        st->step++;
        cli_progress_update(&bar, b->pos, r.loss / (double)(mine ? mine : 1));
    }
    cli_progress_end(&bar);
    r.seconds = cli_now() - bar.start;
    double sums[2] = {r.loss, r.elbo};
    par_sum(sums, 2);
    r.loss = sums[0] / (double)b->d->n;
    r.elbo = sums[1] / (double)b->d->n;
    return r;
}

/* The beta = 1 negative ELBO and its parts over a whole set, grad mode off. */
static pass_result test_pass(const vae_model *m, cli_batches *b, run_state *st) {
    pass_result r = {0};
    bool prev = ag_set_grad_enabled(false);
    cli_batches_start(b, NULL);
    while (cli_batches_next(b)) {
        nb_rng own;
        shard s = shard_of(m, b, st, &own);
        if (s.count == 0) continue;
        vae_terms t = vae_loss(m, s.x, s.labels, st->step, s.noise);
        double bs = (double)s.count;
        r.elbo += bs * t.elbo_loss;
        r.recon += bs * t.recon;
        r.kl += bs * t.kl;
        ag_reset();
    }
    ag_set_grad_enabled(prev);
    double sums[3] = {r.elbo, r.recon, r.kl}, n = (double)(b->d->n > 0 ? b->d->n : 1);
    par_sum(sums, 3);
    r.elbo = sums[0] / n;
    r.recon = sums[1] / n;
    r.kl = sums[2] / n;
    r.loss = r.elbo;
    return r;
}

/* ---- the end of a run ------------------------------------------------------------------------ */

static int write_pictures(const vae_model *m, const idx_dataset *test, const run_state *st,
                          const char *out) {
    char path[4096];
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    if (!cli_path(CMD, path, sizeof path, out, "samples.png") ||
        cli_write_samples(CMD, m, path, 64, -1, 8, &rng))
        return CLI_FAIL;
    if (!cli_path(CMD, path, sizeof path, out, "reconstructions.png") ||
        cli_write_reconstructions(CMD, m, test, path, 32))
        return CLI_FAIL;
    if (m->cfg.latent == 2 && (!cli_path(CMD, path, sizeof path, out, "manifold.png") ||
                               cli_write_manifold(CMD, m, path, 20, 0)))
        return CLI_FAIL;
    if (!cli_path(CMD, path, sizeof path, out, "loss.png")) return CLI_FAIL;
    chart_series s[2] = {{"train", st->train_hist, (int)st->epoch},
                         {"test", st->test_hist, (int)st->epoch}};
    char err[512];
    if (chart_write_png(path, "VAE loss (nats per example)", "epoch", "loss", s, 2, 640, 400, err,
                        sizeof err) != PNG_OK)
        return cli_error(CLI_FAIL, CMD, "%s", err);
    return 0;
}

/* path made absolute against the working directory, in a new string (free with free); NULL when
 * the working directory is unknown. */
static char *absolute_path(const char *path) {
    if (path[0] == '/') return strdup(path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", cwd, path);
    return s;
}

/* Makes dir (and its parents) unless it exists. */
static int make_dir(const char *dir) {
    char p[4096];
    if (strlen(dir) >= sizeof p) return cli_error(CLI_USAGE, CMD, "--out is too long");
    strcpy(p, dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return cli_error(CLI_FAIL, CMD, "cannot create directory %s: %s", p, strerror(errno));
        *s = c;
        if (c == '\0') break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cli_error(CLI_FAIL, CMD, "--out %s is not a directory", dir);
    return 0;
}

/* ---- the command --------------------------------------------------------------------------- */

static int run(train_flags *f, cli_opt *o, int no);

int cli_train(int argc, char **argv) {
    train_flags f = {.data = "data/digits",
                     .out = "out",
                     .epochs = 10,
                     .batch = 128,
                     .latent = 20,
                     .limit = -1,
                     .seed = 1,
                     .iw = 1,
                     .capacity_steps = -1,
                     .lr = 1e-3,
                     .beta = 1,
                     .gamma = 1000,
                     .arch = "mlp",
                     .hidden = {1, {400}},
                     .channels = {2, {32, 64}},
                     .likelihood = VAE_BERNOULLI};
    cli_opt o[] = {
        {"--data", CLI_STRING, &f.data, "DIR", "IDX data directory (default data/digits)", 0, 0,
         false, false},
        {"--epochs", CLI_INT, &f.epochs, "N", "train until this many epochs are done (default 10)",
         1, 1e7, false, false},
        {"--batch", CLI_INT, &f.batch, "N", "batch size (default 128)", 1, 1 << 20, false, false},
        {"--lr", CLI_REAL, &f.lr, "X", "Adam learning rate (default 1e-3)", 0, 10, false, false},
        {"--arch", CLI_STRING, &f.arch, "A", "networks: mlp (default) or conv", 0, 0, false, false},
        {"--hidden", CLI_HIDDEN, &f.hidden, "H[,H..]", "mlp: hidden layer sizes (default 400)", 1,
         100000, false, false},
        {"--channels", CLI_HIDDEN, &f.channels, "C[,C..]",
         "conv: channels of the stride-2 convolutions (default 32,64)", 1, 4096, false, false},
        {"--latent", CLI_INT, &f.latent, "N", "latent dimensions (default 20; conv: 16)", 1, 10000,
         false, false},
        {"--beta", CLI_REAL, &f.beta, "X", "KL weight, beta-VAE H form (default 1)", 0, 1e6, false,
         false},
        {"--capacity", CLI_REAL, &f.capacity, "C", "beta-VAE B form: target KL in nats", 0, 1e6,
         false, false},
        {"--gamma", CLI_REAL, &f.gamma, "G", "B form weight (default 1000 with --capacity)", 0, 1e9,
         false, false},
        {"--capacity-steps", CLI_INT, &f.capacity_steps, "N",
         "steps over which C ramps up (default: the whole run)", 0, 1e15, false, false},
        {"--warmup", CLI_INT, &f.warmup, "N", "KL warm-up steps (default 0)", 0, 1e15, false,
         false},
        {"--free-bits", CLI_REAL, &f.free_bits, "X", "per-dimension KL floor in nats (default 0)",
         0, 1e6, false, false},
        {"--conditional", CLI_FLAG, &f.conditional, NULL, "condition on the labels (CVAE)", 0, 0,
         false, false},
        {"--classes", CLI_INT, &f.classes, "K",
         "classes of --conditional (default: largest label + 1, every class present)", 1, 1000,
         false, false},
        {"--likelihood", CLI_LIKELIHOOD, &f.likelihood, "L",
         "bernoulli (default), gaussian or gaussian_fixed", 0, 0, false, false},
        {"--iw", CLI_INT, &f.iw, "K", "importance samples: K > 1 trains the IWAE bound (default 1)",
         1, 10000, false, false},
        {"--seed", CLI_INT, &f.seed, "N", "random seed (default 1)", 0, 9e18, false, false},
        {"--threads", CLI_INT, &f.threads, "N", CLI_THREADS_HELP, 0, 1024, false, false},
        {"--out", CLI_STRING, &f.out, "DIR", "output directory (default out)", 0, 0, false, false},
        {"--resume", CLI_STRING, &f.resume, "FILE",
         "continue from a checkpoint (model.safetensors)", 0, 0, false, false},
        {"--limit", CLI_INT, &f.limit, "N", "use only the first N train and N test examples", 1,
         1e12, false, false},
        {"--graph", CLI_STRING, &f.graph, "FILE",
         "write the first step's graph, with gradient norms, as Graphviz DOT", 0, 0, false, false},
    };
    int no = (int)(sizeof o / sizeof o[0]);
    int rc = cli_parse(CMD,
                       "Trains a VAE on an IDX dataset; writes metrics.jsonl, model.safetensors, "
                       "samples.png, reconstructions.png and loss.png into --out.",
                       o, no, argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    if (cli_find(o, no, "--gamma")->seen && !cli_find(o, no, "--capacity")->seen)
        return cli_error(CLI_USAGE, CMD, "--gamma needs --capacity (the B form's target KL)");
    f.capacity_given = cli_find(o, no, "--capacity")->seen;
    if (f.classes && !f.conditional)
        return cli_error(CLI_USAGE, CMD, "--classes needs --conditional");
    if (!vae_arch_find(f.arch))
        return cli_error(CLI_USAGE, CMD, "--arch: expected one of %s, got '%s'", vae_arch_names(),
                         f.arch);
    if (!strcmp(f.arch, "conv") && !cli_find(o, no, "--latent")->seen) f.latent = 16;
    cli_set_threads(CMD, f.threads);
    return run(&f, o, no);
}

static int run(train_flags *f, cli_opt *o, int no) {
    vae_model m;
    nn_optim *opt = NULL;
    nn_checkpoint_meta *meta = NULL;
    run_state st = {0};
    idx_dataset train = {0}, test = {0};
    bool have_model = false;
    int rc = 0;

    if (f->resume) { /* the model, optimizer and position come from the checkpoint */
        if (cli_model_load(CMD, f->resume, &m, &opt, f->lr, &meta)) return CLI_FAIL;
        have_model = true;
        rc = load_position(f->resume, meta, &st, f, cli_find(o, no, "--data"),
                           cli_find(o, no, "--limit"), cli_find(o, no, "--batch"));
        if (!rc && cli_find(o, no, "--lr")->seen) nn_optim_set_lr(opt, f->lr);
        if (!rc && st.epoch >= f->epochs) { /* nothing to train: write nothing at all */
            printf("vae train: %s already holds %lld epochs (--epochs %lld): nothing to do; "
                   "nothing was written\n",
                   f->resume, (long long)st.epoch, (long long)f->epochs);
            nn_checkpoint_meta_free(meta);
            nn_optim_free(opt);
            vae_free(&m);
            return 0;
        }
    } else {
        nb_rng_seed(&st.rng, (uint64_t)f->seed);
    }
    st.graph = f->graph;
    bool labels = f->conditional || (have_model && m.cfg.num_classes > 0); /* else optional */
    if (!rc) rc = cli_load_split_labels(CMD, f->data, 1, f->limit, labels, &train);
    if (!rc) rc = cli_load_split_labels(CMD, f->data, 0, f->limit, labels, &test);
    /* checkpoints keep the absolute path, so --resume works from any working directory */
    if (!rc) f->data_abs = absolute_path(f->data);
    int64_t classes = f->classes ? f->classes : have_model ? m.cfg.num_classes : 0;
    if (!rc && f->conditional && !have_model)
        rc = cli_count_classes(CMD, f->data, &train, &test, f->classes, &classes);
    if (!rc) {
        int64_t per_epoch = (train.n + f->batch - 1) / f->batch;
        vae_config want = config_from_flags(f, &train, classes, per_epoch * f->epochs);
        char err[256];
        if (have_model) {
            rc = check_conflicts(f->resume, &m.cfg, &want, o, no);
        } else if (vae_config_check(&want, err, sizeof err)) {
            rc = cli_error(CLI_USAGE, CMD, "bad model: %s", err);
        } else {
            nb_manual_seed((uint64_t)f->seed);
            vae_init(&m, &want, &st.rng);
            opt = nn_optim_adam(&m.params, nn_adam_defaults(f->lr));
            have_model = true;
        }
    }
    if (!rc) rc = cli_check_data(CMD, f->data, &train, &m.cfg);
    if (!rc) rc = cli_check_data(CMD, f->data, &test, &m.cfg);
    bool writer = par_rank() == 0; /* rank 0 alone writes --out */
    if (!rc && writer) rc = make_dir(f->out);

    char ckpt[4096], metrics[4096];
    if (!rc && (!cli_path(CMD, ckpt, sizeof ckpt, f->out, "model.safetensors") ||
                !cli_path(CMD, metrics, sizeof metrics, f->out, "metrics.jsonl")))
        rc = CLI_USAGE;
    if (!rc && writer) rc = cli_metrics_truncate(CMD, metrics, st.epoch);
    int stale =
        rc || !writer ? 0 : st_remove_stale_temps(ckpt); /* left by runs killed while saving */
    if (stale) printf("removed %d temporary file(s) left in %s by killed runs\n", stale, f->out);

    int64_t nhist = st.epoch > f->epochs ? st.epoch : f->epochs;
    st.train_hist = nb_calloc((size_t)(nhist + 1) * sizeof(double));
    st.test_hist = nb_calloc((size_t)(nhist + 1) * sizeof(double));
    if (!rc && meta && st.epoch > 0 &&
        (!split(nn_checkpoint_meta_get(meta, META_TRAIN), st.train_hist, st.epoch) ||
         !split(nn_checkpoint_meta_get(meta, META_TEST), st.test_hist, st.epoch)))
        rc = cli_error(CLI_FAIL, CMD, "%s: the loss history in its metadata is damaged", f->resume);

    if (!rc) {
        char desc[1024];
        vae_config_format(&m.cfg, desc, sizeof desc);
        printf("vae train: %lld train / %lld test examples from %s; %s; %lld parameters; %d "
               "threads\n",
               (long long)train.n, (long long)test.n, f->data, desc,
               (long long)nn_params_count(&m.params), nb_get_num_threads());
        if (f->resume)
            printf("resuming from %s at epoch %lld (step %lld)\n", f->resume,
                   (long long)st.epoch + 1, (long long)st.step);
        fflush(stdout);
    }

    cli_batches tb, vb;
    const char *good = f->resume; /* the last finite checkpoint, and its epoch */
    int64_t good_epoch = st.epoch;
    bool have_batches = !rc;
    if (have_batches) {
        cli_batches_init(&tb, &train, f->batch, true);
        cli_batches_init(&vb, &test, f->batch, false);
    }
    par_sync *sync = NULL; /* several ranks: start from rank 0's model and optimizer */
    if (have_batches) {
        par_broadcast(&m.params, opt);
        sync = par_sync_new(&m.params);
        cli_batches_start(&vb, NULL);
        st.normals_per_row = cli_batches_next(&vb) ? normals_per_row(&m, &vb, &st) : -1;
        if (!writer) st.graph = NULL;
        if (par_size() > 1)
            printf("%d ranks, each on its part of every batch of %lld; latent noise: %s\n",
                   par_size(), (long long)f->batch,
                   st.normals_per_row >= 0 ? "one process's draws for the same rows"
                                           : "a stream per rank");
    }
    while (!rc && st.epoch < f->epochs) {
        int64_t epoch = st.epoch + 1;
        char label[64];
        snprintf(label, sizeof label, "epoch %lld/%lld", (long long)epoch, (long long)f->epochs);
        double t0 = cli_now();
        double sync0 = par_sync_seconds(sync);
        pass_result tr = train_epoch(&m, opt, sync, &tb, &st, label);
        if ((rc = st.graph_rc) != 0) break; /* --graph could not be written */
        pass_result te = test_pass(&m, &vb, &st);
        st.train_hist[st.epoch] = tr.loss;
        st.test_hist[st.epoch] = te.loss;
        st.epoch = epoch;
        cli_epoch_check chk = {.epoch = epoch,
                               .train_loss = tr.loss,
                               .train_elbo = tr.elbo,
                               .test_elbo = te.elbo,
                               .values = m.cfg.rows * m.cfg.cols,
                               .params = &m.params,
                               .lr = nn_optim_get_lr(opt),
                               .good = good,
                               .good_epoch = good_epoch};
        cli_epoch_metrics e = {.epoch = epoch,
                               .step = st.step,
                               .train_loss = tr.loss,
                               .train_elbo = tr.elbo,
                               .test_loss = te.loss,
                               .test_recon = te.recon,
                               .test_kl = te.kl,
                               .epoch_seconds = cli_now() - t0,
                               .samples_per_second =
                                   tr.seconds > 0 ? (double)train.n / tr.seconds : 0};
        printf("%s  train %.3f  test %.3f (recon %.3f, kl %.3f)  %.1fs  %.0f samples/s\n", label,
               tr.loss, te.loss, te.recon, te.kl, e.epoch_seconds, e.samples_per_second);
        if (par_size() > 1) {
            double ex = par_sync_seconds(sync) - sync0;
            int64_t steps = (train.n + f->batch - 1) / f->batch;
            printf("  %d ranks: gradient exchange %.2f ms per step, %.1f%% of the training time\n",
                   par_size(), 1e3 * ex / (double)(steps ? steps : 1),
                   tr.seconds > 0 ? 100 * ex / tr.seconds : 0);
        }
        fflush(stdout);
        /* A diverged epoch never replaces the last good checkpoint (see cli_check_epoch). */
        rc = cli_check_epoch(CMD, &chk);
        if (!rc && writer) rc = save_checkpoint(ckpt, &m, opt, &st, f);
        if (!rc) {
            good = ckpt;
            good_epoch = epoch;
            if (writer) rc = cli_metrics_append(CMD, metrics, &e);
        }
    }
    if (!rc && writer) rc = write_pictures(&m, &test, &st, f->out);
    if (!rc)
        printf("wrote %s/{metrics.jsonl, model.safetensors, samples.png, reconstructions.png, "
               "loss.png}\n",
               f->out);
    par_sync_free(sync);
    if (have_batches) {
        cli_batches_free(&tb);
        cli_batches_free(&vb);
    }
    free(f->data_abs);
    nb_free(st.train_hist);
    nb_free(st.test_hist);
    nn_checkpoint_meta_free(meta);
    nn_optim_free(opt);
    if (have_model) vae_free(&m);
    idx_free(&train);
    idx_free(&test);
    return rc;
}
