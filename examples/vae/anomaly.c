/* examples/vae/anomaly.c: vae anomaly: scores in-distribution and out-of-distribution test
 * examples by negative ELBO, reconstruction error and the negated IWAE bound, and reports the
 * AUROC of each score with OOD as the positive class (Nalisnick et al. 2019: likelihood alone
 * is a poor OOD score, so several are shown). */
#include <math.h>
#include <string.h>

#include "examples/vae/cli.h"
#include "tensor/gemm.h"

#define CMD "anomaly"

enum { S_ELBO, S_RECON, S_IWAE, NSCORES };
static const char *score_name[NSCORES] = {"neg_elbo", "recon", "neg_iwae"};

typedef struct {
    int64_t n;
    int64_t *labels;        /* [n] */
    double *score[NSCORES]; /* [n] each, higher = more anomalous */
} scored_set;

/* Scores every example of d: the one-sample negative ELBO and its reconstruction term from
 * vae_loss one example at a time (nats), and -log p(x) bounded with k importance samples. */
static void score_set(const vae_model *m, const idx_dataset *d, int k, nb_rng *rng, scored_set *s) {
    s->n = d->n;
    s->labels = nb_malloc((size_t)d->n * sizeof *s->labels);
    for (int i = 0; i < NSCORES; i++) s->score[i] = nb_malloc((size_t)d->n * sizeof(double));
    cli_batches one, many;
    cli_batches_init(&one, d, 1, false);
    cli_batches_init(&many, d, 100, false);
    bool prev = ag_set_grad_enabled(false);
    while (cli_batches_next(&one)) {
        int64_t i = one.pos - 1;
        vae_terms t = vae_loss(m, one.x, cli_labels(m, one.labels), 0, rng);
        s->labels[i] = one.labels[0];
        s->score[S_ELBO][i] = t.elbo_loss;
        s->score[S_RECON][i] = t.recon;
        ag_reset();
    }
    ag_set_grad_enabled(prev);
    while (cli_batches_next(&many)) {
        double *ll = s->score[S_IWAE] + many.pos - many.count;
        vae_log_likelihood(m, many.x, cli_labels(m, many.labels), k, rng, ll);
        for (int64_t i = 0; i < many.count; i++) ll[i] = -ll[i];
    }
    cli_batches_free(&one);
    cli_batches_free(&many);
}

static void free_set(scored_set *s) {
    nb_free(s->labels);
    for (int i = 0; i < NSCORES; i++) nb_free(s->score[i]);
}

static int write_csv(const char *path, const scored_set *in, const scored_set *ood) {
    FILE *f = fopen(path, "w");
    if (!f) return cli_error(CLI_FAIL, CMD, "cannot write %s", path);
    fprintf(f, "set,index,label,neg_elbo,recon,neg_iwae\n");
    const scored_set *sets[2] = {in, ood};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < sets[s]->n; i++)
            fprintf(f, "%s,%lld,%lld,%.9g,%.9g,%.9g\n", s ? "ood" : "in", (long long)i,
                    (long long)sets[s]->labels[i], sets[s]->score[S_ELBO][i],
                    sets[s]->score[S_RECON][i], sets[s]->score[S_IWAE][i]);
    if (fclose(f) != 0) return cli_error(CLI_FAIL, CMD, "cannot write %s", path);
    return 0;
}

static double mean(const double *v, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return n ? s / (double)n : NAN;
}

int cli_anomaly(int argc, char **argv) {
    const char *model = NULL, *data = "data/digits", *ood_dir = NULL, *csv = NULL;
    int64_t k = 500, limit = -1, seed = 1, threads = 0;
    cli_opt o[] = {
        {"--model", CLI_STRING, &model, "FILE", "a checkpoint written by vae train", 0, 0, true,
         false},
        {"--data", CLI_STRING, &data, "DIR",
         "in-distribution IDX data (test set; default data/digits)", 0, 0, false, false},
        {"--ood", CLI_STRING, &ood_dir, "DIR", "out-of-distribution IDX data (test set)", 0, 0,
         true, false},
        {"--iw", CLI_INT, &k, "K", "importance samples for the IWAE score (default 500)", 1, 1e6,
         false, false},
        {"--csv", CLI_STRING, &csv, "FILE",
         "write every score: set,index,label,neg_elbo,recon,neg_iwae", 0, 0, false, false},
        {"--limit", CLI_INT, &limit, "N", "use only the first N examples of each test set", 1, 1e12,
         false, false},
        {"--seed", CLI_INT, &seed, "S", "random seed (default 1)", 0, 9e18, false, false},
        {"--threads", CLI_INT, &threads, "N", CLI_THREADS_HELP, 0, 1024, false, false},
    };
    int no = (int)(sizeof o / sizeof o[0]);
    int rc =
        cli_parse(CMD, "Scores in- and out-of-distribution examples and prints each score's AUROC.",
                  o, no, argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    cli_set_threads(CMD, threads);
    vae_model m;
    if (cli_model_load(CMD, model, &m, NULL, -1, NULL)) return CLI_FAIL;
    idx_dataset in = {0}, ood = {0};
    rc = cli_load_split(CMD, data, 0, limit, &in);
    if (!rc) rc = cli_load_split(CMD, ood_dir, 0, limit, &ood);
    if (!rc) rc = cli_check_data(CMD, data, &in, &m.cfg);
    if (!rc) rc = cli_check_data(CMD, ood_dir, &ood, &m.cfg);
    if (!rc) {
        nb_rng rng;
        nb_rng_seed(&rng, (uint64_t)seed);
        scored_set a = {0}, b = {0};
        score_set(&m, &in, (int)k, &rng, &a);
        score_set(&m, &ood, (int)k, &rng, &b);
        int64_t n = a.n + b.n;
        double *all = nb_malloc((size_t)n * sizeof *all);
        bool *pos = nb_malloc((size_t)n * sizeof *pos);
        for (int64_t i = 0; i < n; i++) pos[i] = i >= a.n;
        printf("in: %lld examples from %s; ood: %lld examples from %s; IWAE K=%lld\n",
               (long long)a.n, data, (long long)b.n, ood_dir, (long long)k);
        printf("%-10s %12s %12s %8s\n", "score", "mean in", "mean ood", "AUROC");
        for (int s = 0; s < NSCORES; s++) {
            memcpy(all, a.score[s], (size_t)a.n * sizeof *all);
            memcpy(all + a.n, b.score[s], (size_t)b.n * sizeof *all);
            printf("%-10s %12.4f %12.4f %8.4f\n", score_name[s], mean(a.score[s], a.n),
                   mean(b.score[s], b.n), cli_auroc(all, pos, n));
        }
        if (csv) {
            rc = write_csv(csv, &a, &b);
            if (!rc) printf("wrote %s\n", csv);
        }
        nb_free(all);
        nb_free(pos);
        free_set(&a);
        free_set(&b);
    }
    idx_free(&in);
    idx_free(&ood);
    vae_free(&m);
    return rc;
}
