/* examples/vae/metrics.c: the metrics.jsonl log (one JSON object per epoch) and the AUROC. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "examples/vae/cli.h"

void cli_json_number(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

int cli_metrics_append(const char *cmd, const char *path, const cli_epoch_metrics *e) {
    FILE *f = fopen(path, "a");
    if (!f) return cli_error(CLI_FAIL, cmd, "cannot write %s", path);
    fprintf(f, "{\"epoch\": %lld, \"step\": %lld", (long long)e->epoch, (long long)e->step);
    const char *keys[] = {"train_loss", "train_elbo",    "test_loss",         "test_recon",
                          "test_kl",    "epoch_seconds", "samples_per_second"};
    double vals[] = {e->train_loss, e->train_elbo,    e->test_loss,         e->test_recon,
                     e->test_kl,    e->epoch_seconds, e->samples_per_second};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        fprintf(f, ", \"%s\": ", keys[i]);
        cli_json_number(f, vals[i]);
    }
    fputs("}\n", f);
    if (fclose(f) != 0) return cli_error(CLI_FAIL, cmd, "cannot write %s", path);
    return 0;
}

/* The value of "epoch" in one of our lines, or -1. */
static long long line_epoch(const char *line) {
    const char *p = strstr(line, "\"epoch\": ");
    return p ? strtoll(p + 9, NULL, 10) : -1;
}

int cli_metrics_truncate(const char *cmd, const char *path, int64_t keep_epochs) {
    FILE *f = fopen(path, "r");
    char *kept = NULL;
    size_t used = 0, cap = 0;
    if (f) {
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            long long ep = line_epoch(line);
            if (ep < 1 || ep > keep_epochs) continue;
            size_t len = strlen(line);
            if (used + len + 1 > cap) {
                cap = 2 * (used + len + 1);
                char *grown = realloc(kept, cap);
                if (!grown) {
                    free(kept);
                    fclose(f);
                    return cli_error(CLI_FAIL, cmd, "out of memory reading %s", path);
                }
                kept = grown;
            }
            memcpy(kept + used, line, len);
            used += len;
        }
        fclose(f);
    }
    f = fopen(path, "w");
    if (!f) {
        free(kept);
        return cli_error(CLI_FAIL, cmd, "cannot write %s", path);
    }
    if (used) fwrite(kept, 1, used, f);
    free(kept);
    if (fclose(f) != 0) return cli_error(CLI_FAIL, cmd, "cannot write %s", path);
    return 0;
}

/* ---- AUROC ----------------------------------------------------------------------------------- */

typedef struct {
    double score;
    bool positive;
} scored;

/* Ascending by score; NaN sorts above everything (and ties with NaN). */
static int by_score(const void *pa, const void *pb) {
    double a = ((const scored *)pa)->score, b = ((const scored *)pb)->score;
    if (isnan(a) || isnan(b)) return isnan(a) - isnan(b);
    return (a > b) - (a < b);
}

static bool same_score(double a, double b) {
    return a == b || (isnan(a) && isnan(b));
}

double cli_auroc(const double *score, const bool *positive, int64_t n) {
    scored *s = nb_malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    int64_t npos = 0;
    for (int64_t i = 0; i < n; i++) {
        s[i] = (scored){score[i], positive[i]};
        npos += positive[i];
    }
    qsort(s, (size_t)n, sizeof *s, by_score);
    double rank_sum = 0; /* of the positives, ranks from 1, ties get their average rank */
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && same_score(s[j].score, s[i].score)) j++;
        double avg = 0.5 * (double)(i + 1 + j); /* mean of ranks i+1 .. j */
        for (int64_t k = i; k < j; k++)
            if (s[k].positive) rank_sum += avg;
        i = j;
    }
    nb_free(s);
    int64_t nneg = n - npos;
    if (npos == 0 || nneg == 0) return NAN;
    return (rank_sum - 0.5 * (double)npos * (double)(npos + 1)) / ((double)npos * (double)nneg);
}
