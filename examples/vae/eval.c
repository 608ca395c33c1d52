/* examples/vae/eval.c: vae eval: the test negative ELBO and its parts, the importance-weighted
 * log-likelihood bound, active units and the KL of each latent dimension. */
#include <math.h>
#include <string.h>

#include "examples/vae/cli.h"
#include "tensor/gemm.h"

#define CMD              "eval"
#define ACTIVE_THRESHOLD 0.01 /* Burda et al.: Var_x(E_q[z_i]) above this counts as active */

typedef struct {
    double neg_elbo, recon, kl; /* nats per example */
    double log_likelihood;      /* mean IWAE bound, nats per example */
    int64_t active;             /* active units */
    double *kl_dim;             /* [Z] mean analytic KL per latent dimension */
    double *mu_var;             /* [Z] variance over the set of each posterior mean dimension */
} eval_result;

/* The ELBO's parts over the set, and the posterior statistics (vae_latent_stats). */
static void elbo_and_latents(const vae_model *m, cli_batches *b, nb_rng *rng, eval_result *r) {
    int64_t n = b->d->n;
    vae_latent_stats st;
    vae_latent_stats_init(&st, m);
    bool prev = ag_set_grad_enabled(false);
    cli_batches_start(b, NULL);
    while (cli_batches_next(b)) {
        const int64_t *labels = cli_labels(m, b->labels);
        vae_terms t = vae_loss(m, b->x, labels, 0, rng);
        r->neg_elbo += (double)b->count * t.elbo_loss;
        r->recon += (double)b->count * t.recon;
        r->kl += (double)b->count * t.kl;
        vae_latent_stats_add(&st, m, b->x, labels);
        ag_reset();
    }
    ag_set_grad_enabled(prev);
    r->active = vae_latent_stats_result(&st, ACTIVE_THRESHOLD, r->kl_dim, r->mu_var);
    vae_latent_stats_free(&st);
    r->neg_elbo /= (double)n;
    r->recon /= (double)n;
    r->kl /= (double)n;
}

/* The mean over the set of the K-sample importance-weighted bound on log p(x). */
static double iwae_bound(const vae_model *m, cli_batches *b, int k, nb_rng *rng) {
    double *ll = nb_malloc((size_t)b->batch * sizeof *ll), sum = 0;
    cli_progress bar;
    char label[64];
    snprintf(label, sizeof label, "IWAE bound, %d samples", k);
    cli_progress_begin(&bar, label, b->d->n);
    cli_batches_start(b, NULL);
    while (cli_batches_next(b)) {
        vae_log_likelihood(m, b->x, cli_labels(m, b->labels), k, rng, ll);
        for (int64_t i = 0; i < b->count; i++) sum += ll[i];
        cli_progress_update(&bar, b->pos, NAN);
    }
    cli_progress_end(&bar);
    nb_free(ll);
    return sum / (double)b->d->n;
}

static void print_json(const vae_model *m, const eval_result *r, int64_t n, int64_t k) {
    printf("{\"examples\": %lld, \"test_loss\": ", (long long)n);
    cli_json_number(stdout, r->neg_elbo);
    printf(", \"test_recon\": ");
    cli_json_number(stdout, r->recon);
    printf(", \"test_kl\": ");
    cli_json_number(stdout, r->kl);
    printf(", \"iw_samples\": %lld, \"iwae_log_likelihood\": ", (long long)k);
    cli_json_number(stdout, r->log_likelihood);
    printf(", \"iwae_nll\": ");
    cli_json_number(stdout, -r->log_likelihood);
    printf(", \"active_units\": %lld, \"latent\": %lld, \"kl_per_dim\": [", (long long)r->active,
           (long long)m->cfg.latent);
    for (int64_t j = 0; j < m->cfg.latent; j++) {
        if (j) printf(", ");
        cli_json_number(stdout, r->kl_dim[j]);
    }
    printf("], \"posterior_mean_variance\": [");
    for (int64_t j = 0; j < m->cfg.latent; j++) {
        if (j) printf(", ");
        cli_json_number(stdout, r->mu_var[j]);
    }
    printf("]}\n");
}

static void print_text(const vae_model *m, const eval_result *r, int64_t n, int64_t k) {
    printf("test examples          %lld\n", (long long)n);
    printf("negative ELBO          %.4f nats (recon %.4f, KL %.4f)\n", r->neg_elbo, r->recon,
           r->kl);
    printf("IWAE bound, K=%-8lld log p(x) >= %.4f (NLL <= %.4f)\n", (long long)k, r->log_likelihood,
           -r->log_likelihood);
    printf("active units           %lld of %lld (Var[E_q z_i] > %g)\n", (long long)r->active,
           (long long)m->cfg.latent, ACTIVE_THRESHOLD);
    printf("dim   KL (nats)   Var[E_q z]\n");
    for (int64_t j = 0; j < m->cfg.latent; j++)
        printf("%3lld  %10.4f  %11.4f%s\n", (long long)j, r->kl_dim[j], r->mu_var[j],
               r->mu_var[j] > ACTIVE_THRESHOLD ? "" : "  (inactive)");
}

int cli_eval(int argc, char **argv) {
    const char *model = NULL, *data = "data/digits";
    int64_t k = 5000, limit = -1, seed = 1, batch = 100, threads = 0;
    bool json = false;
    cli_opt o[] = {
        {"--model", CLI_STRING, &model, "FILE", "a checkpoint written by vae train", 0, 0, true,
         false},
        {"--data", CLI_STRING, &data, "DIR", "IDX data; its test set is used (default data/digits)",
         0, 0, false, false},
        {"--iw", CLI_INT, &k, "K", "importance samples for the log-likelihood bound (default 5000)",
         1, 1e6, false, false},
        {"--json", CLI_FLAG, &json, NULL, "print one JSON object instead of a table", 0, 0, false,
         false},
        {"--limit", CLI_INT, &limit, "N", "use only the first N test examples", 1, 1e12, false,
         false},
        {"--batch", CLI_INT, &batch, "N", "examples per batch (default 100)", 1, 1 << 20, false,
         false},
        {"--seed", CLI_INT, &seed, "S", "random seed (default 1)", 0, 9e18, false, false},
        {"--threads", CLI_INT, &threads, "N", CLI_THREADS_HELP, 0, 1024, false, false},
    };
    int no = (int)(sizeof o / sizeof o[0]);
    int rc = cli_parse(CMD, "Evaluates a model on a test set: ELBO, IWAE bound, active units.", o,
                       no, argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    cli_set_threads(CMD, threads);
    vae_model m;
    if (cli_model_load(CMD, model, &m, NULL, -1, NULL)) return CLI_FAIL;
    idx_dataset test;
    rc = cli_load_split(CMD, data, 0, limit, &test);
    if (!rc) rc = cli_check_data(CMD, data, &test, &m.cfg);
    if (!rc) {
        nb_rng rng;
        nb_rng_seed(&rng, (uint64_t)seed);
        eval_result r = {0};
        r.kl_dim = nb_calloc((size_t)m.cfg.latent * sizeof(double));
        r.mu_var = nb_calloc((size_t)m.cfg.latent * sizeof(double));
        cli_batches b;
        cli_batches_init(&b, &test, batch, false);
        elbo_and_latents(&m, &b, &rng, &r);
        r.log_likelihood = iwae_bound(&m, &b, (int)k, &rng);
        if (json)
            print_json(&m, &r, test.n, k);
        else
            print_text(&m, &r, test.n, k);
        cli_batches_free(&b);
        nb_free(r.kl_dim);
        nb_free(r.mu_var);
    }
    idx_free(&test);
    vae_free(&m);
    return rc;
}
