/* models/vae.c: the VAE as a composition of an encoder, a decoder, a likelihood and the prior;
 * the objectives and evaluations written once over those parts. See vae.h.
 *
 * Dimension glossary: B batch, D input pixels, Z latent, K classes, S samples.
 *
 *   encoder:  [x | onehot(y)] (B, D+K) -> (B, 2Z) -> mu, logvar (B, Z)     any nn_module
 *   sample:   z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)                (B, Z)
 *   decoder:  [z | onehot(y)] (B, Z+K) -> (B, D): logits or means          any nn_module
 *   loss:     recon = -log p(x | z), KL = KL(q(z | x) || N(0, I)), both in nats per example
 *
 * The config's fields live in one table (name, kind, place, range): formatting, parsing and
 * range checks walk it, so a new field is one row there plus its default. */
#include "models/vae.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dist.h"
#include "nn/layers.h"
#include "nn/loss.h"

/* ---- the config's fields ------------------------------------------------------------------- */

typedef enum { F_I64, F_INT, F_REAL, F_SIZES, F_LIKELIHOOD, F_NAME } field_kind;

typedef struct {
    const char *key;  /* in the config string */
    field_kind kind;  /* F_I64 int64_t, F_INT int, F_REAL double, F_SIZES int + int64_t[] */
    size_t off;       /* the value's offset in vae_config (F_SIZES: the array) */
    size_t count_off; /* F_SIZES: the offset of its int count */
    double min, max;  /* accepted range (F_SIZES: of each size; F_REAL: finite as well) */
    const char *what; /* the field in messages */
} field;

#define AT(f) offsetof(vae_config, f)
static const field fields[] = {
    {"arch", F_NAME, AT(arch), 0, 0, 0, "architecture"},
    {"rows", F_I64, AT(rows), 0, 1, 1 << 24, "image rows"},
    {"cols", F_I64, AT(cols), 0, 1, 1 << 24, "image columns"},
    {"hidden", F_SIZES, AT(hidden), AT(nhidden), 1, 100000, "hidden layer size"},
    {"channels", F_SIZES, AT(channels), AT(nchannels), 1, 4096, "channel count"},
    {"latent", F_I64, AT(latent), 0, 1, 10000, "latent size"},
    {"likelihood", F_LIKELIHOOD, AT(likelihood), 0, 0, 0, "likelihood"},
    {"beta", F_REAL, AT(beta), 0, 0, DBL_MAX, "beta"},
    {"gamma", F_REAL, AT(gamma), 0, 0, DBL_MAX, "gamma"},
    {"capacity", F_REAL, AT(capacity), 0, 0, DBL_MAX, "capacity"},
    {"capacity_steps", F_I64, AT(capacity_steps), 0, 0, 9e18, "capacity steps"},
    {"warmup", F_I64, AT(warmup_steps), 0, 0, 9e18, "warm-up steps"},
    {"free_bits", F_REAL, AT(free_bits), 0, 0, DBL_MAX, "free bits"},
    {"classes", F_INT, AT(num_classes), 0, 0, 1000, "classes"},
    {"iw", F_INT, AT(iw_samples), 0, 1, 10000, "importance samples"},
};
#undef AT
#define NFIELDS (int)(sizeof fields / sizeof fields[0])

static const char *likelihood_names[] = {"bernoulli", "gaussian", "gaussian_fixed"};
#define NLIKELIHOODS (int)(sizeof likelihood_names / sizeof likelihood_names[0])

int vae_likelihood_parse(const char *name, vae_likelihood *out) {
    for (int l = 0; l < NLIKELIHOODS; l++)
        if (!strcmp(name, likelihood_names[l])) return *out = (vae_likelihood)l, 0;
    return -1;
}

const char *vae_likelihood_names(void) {
    static char names[96];
    if (!names[0])
        for (int i = 0, used = 0; i < NLIKELIHOODS; i++)
            used += snprintf(names + used, sizeof names - (size_t)used, "%s%s", i ? ", " : "",
                             likelihood_names[i]);
    return names;
}

#define FIELD(c, f, type)  ((type *)((char *)(c) + (f)->off))
#define CFIELD(c, f, type) ((const type *)((const char *)(c) + (f)->off))
#define COUNT(c, f)        ((int *)((char *)(c) + (f)->count_off))
#define CCOUNT(c, f)       ((const int *)((const char *)(c) + (f)->count_off))

void vae_config_default(vae_config *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->arch, "mlp");
    c->rows = c->cols = 28;
    c->nhidden = 1;
    c->hidden[0] = 400;
    c->nchannels = 2;
    c->channels[0] = 32;
    c->channels[1] = 64;
    c->latent = 20;
    c->likelihood = VAE_BERNOULLI;
    c->beta = 1;
    c->iw_samples = 1;
}

/* Checks one field's value against its range; 0, or -1 with a message. */
static int check_field(const vae_config *c, const field *f, char *err, size_t n) {
    switch (f->kind) {
    case F_I64: {
        int64_t v = *CFIELD(c, f, int64_t);
        if ((double)v < f->min || (double)v > f->max)
            return snprintf(err, n, "%s %lld must be %.0f..%.0f", f->what, (long long)v, f->min,
                            f->max),
                   -1;
        return 0;
    }
    case F_INT: {
        int v = *CFIELD(c, f, int);
        if (v < f->min || v > f->max)
            return snprintf(err, n, "%s %d must be %.0f..%.0f", f->what, v, f->min, f->max), -1;
        return 0;
    }
    case F_REAL: {
        double v = *CFIELD(c, f, double);
        if (!(v >= f->min && v <= f->max))
            return snprintf(err, n, "%s %g must be a finite number >= %g", f->what, v, f->min), -1;
        return 0;
    }
    case F_SIZES: {
        int k = *CCOUNT(c, f);
        const int64_t *v = CFIELD(c, f, int64_t);
        if (k < 1 || k > VAE_MAX_HIDDEN)
            return snprintf(err, n, "between 1 and %d %ss are supported, not %d", VAE_MAX_HIDDEN,
                            f->what, k),
                   -1;
        for (int i = 0; i < k; i++)
            if ((double)v[i] < f->min || (double)v[i] > f->max)
                return snprintf(err, n, "%s %d is %lld (must be %.0f..%.0f)", f->what, i + 1,
                                (long long)v[i], f->min, f->max),
                       -1;
        return 0;
    }
    case F_LIKELIHOOD: {
        int v = (int)*CFIELD(c, f, vae_likelihood);
        return v >= 0 && v < NLIKELIHOODS ? 0 : (snprintf(err, n, "unknown likelihood"), -1);
    }
    case F_NAME:
        return 0; /* the architecture is checked against the table */
    }
    return -1;
}

/* Everything but the architecture: the ranges and the fields that exclude each other. */
static int check_fields(const vae_config *c, char *err, size_t n) {
    if (c->rows < 1 || c->cols < 1 || c->rows > (1 << 24) || c->cols > (1 << 24) ||
        c->rows * c->cols > (1 << 24))
        return snprintf(err, n, "image size %lldx%lld is out of range", (long long)c->rows,
                        (long long)c->cols),
               -1;
    for (int i = 0; i < NFIELDS; i++)
        if (check_field(c, &fields[i], err, n)) return -1;
    if (c->iw_samples > 1 &&
        (c->beta != 1 || c->gamma > 0 || c->warmup_steps > 0 || c->free_bits > 0))
        return snprintf(err, n,
                        "the IWAE objective (iw %d) does not combine with beta, capacity, "
                        "warm-up or free bits",
                        c->iw_samples),
               -1;
    return 0;
}

int vae_config_check(const vae_config *c, char *err, size_t n) {
    if (check_fields(c, err, n)) return -1;
    const vae_arch *a = vae_arch_find(c->arch);
    if (!a)
        return snprintf(err, n, "unknown architecture '%.*s' (known: %s)", VAE_ARCH_MAX - 1,
                        c->arch, vae_arch_names()),
               -1;
    if (a->check && a->check(c, err, n)) return -1;
    /* every parameter is allocated by vae_init: bound the total before trusting a config that
     * came from a file (a 200-byte config must not ask for terabytes) */
    double params = a->count(c);
    if (params > (double)(1 << 27))
        return snprintf(err, n, "the model would have %.3g parameters (at most %d)", params,
                        1 << 27),
               -1;
    return 0;
}

void vae_config_format(const vae_config *c, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < NFIELDS && used < len; i++) {
        const field *f = &fields[i];
        char v[160] = "";
        switch (f->kind) {
        case F_I64:
            snprintf(v, sizeof v, "%lld", (long long)*CFIELD(c, f, int64_t));
            break;
        case F_INT:
            snprintf(v, sizeof v, "%d", *CFIELD(c, f, int));
            break;
        case F_REAL:
            snprintf(v, sizeof v, "%.17g", *CFIELD(c, f, double));
            break;
        case F_SIZES:
            for (int k = 0, m = 0; k < *CCOUNT(c, f) && k < VAE_MAX_HIDDEN; k++)
                m += snprintf(v + m, sizeof v - (size_t)m, "%s%lld", k ? "," : "",
                              (long long)CFIELD(c, f, int64_t)[k]);
            break;
        case F_LIKELIHOOD: {
            int l = (int)*CFIELD(c, f, vae_likelihood);
            snprintf(v, sizeof v, "%s", l >= 0 && l < NLIKELIHOODS ? likelihood_names[l] : "?");
            break;
        }
        case F_NAME:
            snprintf(v, sizeof v, "%.*s", VAE_ARCH_MAX - 1, CFIELD(c, f, char));
            break;
        }
        int w = snprintf(buf + used, len - used, "%s%s=%s", i ? ";" : "", f->key, v);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* Copies s into buf (size n) with anything but printable ASCII shown as '?', so text from a
 * file can go into an error message without reaching the terminal raw. */
static const char *printable(const char *s, char *buf, size_t n) {
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) buf[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

/* Parses one whole-string integer or number; 0 or -1. */
static int parse_ll(const char *v, long long *out) {
    char *end;
    *out = strtoll(v, &end, 10);
    return (end != v && *end == '\0') ? 0 : -1;
}
static int parse_d(const char *v, double *out) {
    char *end;
    *out = strtod(v, &end);
    return (end != v && *end == '\0' && isfinite(*out)) ? 0 : -1;
}

/* Stores the text v into field f of c; 0, or -1 when it is malformed (ranges come later). */
static int parse_field(const field *f, const char *v, vae_config *c) {
    long long i;
    switch (f->kind) {
    case F_I64:
        if (parse_ll(v, &i)) return -1;
        *FIELD(c, f, int64_t) = i;
        return 0;
    case F_INT: /* an int field's range is small: anything outside int is out of it */
        if (parse_ll(v, &i) || i < f->min || i > f->max) return -1;
        *FIELD(c, f, int) = (int)i;
        return 0;
    case F_REAL:
        return parse_d(v, FIELD(c, f, double));
    case F_SIZES: {
        int k = 0;
        int64_t *dst = FIELD(c, f, int64_t);
        for (const char *p = v;;) {
            char *end;
            long long h = strtoll(p, &end, 10);
            if (end == p || k == VAE_MAX_HIDDEN || (*end && *end != ',')) return -1;
            dst[k++] = h;
            if (!*end) break;
            p = end + 1;
        }
        *COUNT(c, f) = k;
        return 0;
    }
    case F_LIKELIHOOD:
        return vae_likelihood_parse(v, FIELD(c, f, vae_likelihood));
    case F_NAME:
        if (strlen(v) >= VAE_ARCH_MAX) return -1;
        strcpy(FIELD(c, f, char), v);
        return 0;
    }
    return -1;
}

int vae_config_parse(const char *s, vae_config *c, char *err, size_t n) {
    vae_config_default(c);
    char buf[1024], p1[64], p2[64];
    if (strlen(s) >= sizeof buf) return snprintf(err, n, "model config is too long"), -1;
    strcpy(buf, s);
    for (char *save = NULL, *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return snprintf(err, n, "model config: '%s' is not key=value",
                            printable(kv, p1, sizeof p1)),
                   -1;
        *eq = '\0';
        const field *f = NULL;
        for (int i = 0; i < NFIELDS; i++)
            if (!strcmp(kv, fields[i].key)) f = &fields[i];
        if (!f)
            return snprintf(err, n, "model config: unknown key '%s'", printable(kv, p1, sizeof p1)),
                   -1;
        if (parse_field(f, eq + 1, c))
            return snprintf(err, n, "model config: bad value '%s' for '%s'",
                            printable(eq + 1, p1, sizeof p1), printable(kv, p2, sizeof p2)),
                   -1;
    }
    return vae_config_check(c, err, n);
}

/* ---- the model ------------------------------------------------------------------------------- */

void vae_init(vae_model *m, const vae_config *c, nb_rng *rng) {
    char err[256];
    if (vae_config_check(c, err, sizeof err)) nb_fail("vae_init", "%s", err);
    nn_module *enc, *dec;
    vae_arch_find(c->arch)->build(c, rng, &enc, &dec);
    vae_compose(m, c, enc, dec);
}

void vae_compose(vae_model *m, const vae_config *c, nn_module *encoder, nn_module *decoder) {
    char err[256];
    if (check_fields(c, err, sizeof err)) nb_fail("vae_compose", "%s", err);
    if (!encoder || !decoder) nb_fail("vae_compose", "needs an encoder and a decoder");
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->encoder = encoder;
    m->decoder = decoder;
    nn_module_params(encoder, "encoder", &m->params);
    nn_module_params(decoder, "decoder", &m->params);
    if (c->likelihood == VAE_GAUSSIAN) {
        int64_t D = c->rows * c->cols;
        m->dec_logvar = tensor_zeros(1, &D);
        nn_params_add(&m->params, NULL, "decoder.logvar", m->dec_logvar);
    }
}

void vae_free(vae_model *m) {
    nn_module_free(m->encoder);
    nn_module_free(m->decoder);
    tensor_free(m->dec_logvar);
    nn_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

/* h (B, F) joined with the one-hot labels (B, K) -> (B, F+K); h itself when unconditional. */
static Tensor *with_labels(const vae_model *m, Tensor *h, const int64_t *labels) {
    int K = m->cfg.num_classes;
    if (K == 0) return h;
    if (!labels) nb_fail("vae", "a conditional model (%d classes) needs labels", K);
    int64_t B = h->shape[0];
    Tensor *y = ag_zeros(NB_SHAPE(B, K));
    for (int64_t b = 0; b < B; b++) {
        if (labels[b] < 0 || labels[b] >= K)
            nb_fail("vae", "label %lld is outside 0..%d", (long long)labels[b], K - 1);
        y->data[b * K + labels[b]] = 1;
    }
    return ag_concat((Tensor *[]){h, y}, 2, 1);
}

/* Fails unless the network's output t is [B, cols]: a user's module is told what was expected. */
static void expect_shape(const char *part, const Tensor *t, int64_t B, int64_t cols) {
    char got[128];
    if (t->ndim != 2 || t->shape[0] != B || t->shape[1] != cols)
        nb_fail("vae", "the %s gave %s, expected [%lld, %lld]", part,
                nb_shape_str(got, t->ndim, t->shape), (long long)B, (long long)cols);
}

void vae_encode(const vae_model *m, Tensor *x, const int64_t *labels, Tensor **mu,
                Tensor **logvar) {
    int64_t Z = m->cfg.latent;
    Tensor *out = nn_forward(m->encoder, with_labels(m, x, labels)); /* (B, 2Z) */
    expect_shape("encoder", out, x->shape[0], 2 * Z);
    *mu = ag_narrow(out, 1, 0, Z);
    *logvar = ag_narrow(out, 1, Z, Z);
}

Tensor *vae_decode(const vae_model *m, Tensor *z, const int64_t *labels) {
    Tensor *out = nn_forward(m->decoder, with_labels(m, z, labels)); /* (B, D) */
    expect_shape("decoder", out, z->shape[0], m->cfg.rows * m->cfg.cols);
    return out;
}

Tensor *vae_decode_image(const vae_model *m, Tensor *z, const int64_t *labels) {
    Tensor *out = vae_decode(m, z, labels);
    return m->cfg.likelihood == VAE_BERNOULLI ? nn_sigmoid(out) : ag_clamp(out, 0, 1);
}

/* -log p(x | decoder output): per element (B, D) with NN_NONE, else summed or averaged. */
static Tensor *neg_log_lik(const vae_model *m, Tensor *out, Tensor *x, nn_reduction red) {
    switch (m->cfg.likelihood) {
    case VAE_BERNOULLI:
        return nn_bce_with_logits(out, x, red);
    case VAE_GAUSSIAN:
        return nn_gaussian_nll(x, out, m->dec_logvar, red);
    case VAE_GAUSSIAN_FIXED:
        return nn_gaussian_nll(x, out, ag_zeros(NB_SHAPE(1)), red);
    }
    nb_fail("vae", "unknown likelihood %d", (int)m->cfg.likelihood);
}

/* ---- the objectives ------------------------------------------------------------------------ */

/* log importance weights (S, B): log p(x|z_s) + log p(z_s) - log q(z_s|x) for S samples each. */
static Tensor *log_weights(const vae_model *m, Tensor *x, Tensor *mu, Tensor *logvar,
                           const int64_t *labels, int S, nb_rng *rng) {
    int64_t B = x->shape[0], Z = m->cfg.latent, D = x->shape[1];
    nn_normal q = nn_normal_from_logvar(mu, logvar);
    Tensor *eps = ag_randn(NB_SHAPE(S, B, Z), rng);
    Tensor *z = nn_normal_rsample_eps(&q, eps); /* (S, B, Z) */
    int64_t *rep = NULL;
    if (labels) { /* labels repeated for each sample */
        rep = arena_alloc((size_t)(S * B) * sizeof *rep);
        for (int s = 0; s < S; s++) memcpy(rep + s * B, labels, (size_t)B * sizeof *rep);
    }
    Tensor *out = vae_decode(m, ag_reshape(z, NB_SHAPE(S * B, Z)), rep); /* (S*B, D) */
    Tensor *xs = ag_reshape(ag_expand(x, NB_SHAPE(S, B, D)), NB_SHAPE(S * B, D));
    Tensor *logpx = ag_neg(ag_sum_dims(neg_log_lik(m, out, xs, NN_NONE), (int[]){1}, 1, false));
    Tensor *std = ag_full(NB_SHAPE(1), 0);
    nn_normal p = nn_normal_from_logvar(std, std);
    Tensor *logpz = ag_sum_dims(nn_normal_log_prob(&p, z), (int[]){2}, 1, false); /* (S, B) */
    Tensor *logqz = ag_sum_dims(nn_normal_log_prob(&q, z), (int[]){2}, 1, false); /* (S, B) */
    return ag_add(ag_reshape(logpx, NB_SHAPE(S, B)), ag_sub(logpz, logqz));
}

/* The KL term of the objective: beta * KL with warm-up (H form) or gamma |KL - C(t)| (B form),
 * over the analytic KL per element (B, Z), floored per dimension with free bits. */
static Tensor *kl_term(const vae_config *c, Tensor *kl_elem, Tensor *kl, int64_t step) {
    if (c->free_bits > 0) /* floor each dim's batch-mean KL at free_bits */
        kl = ag_sum(
            ag_clamp(ag_mean_dims(kl_elem, (int[]){0}, 1, false), (real)c->free_bits, INFINITY));
    if (c->gamma > 0) { /* B form: gamma |KL - C(t)| */
        double C = c->capacity_steps > 0
                       ? c->capacity * fmin(1.0, (double)step / (double)c->capacity_steps)
                       : c->capacity;
        return ag_mul_scalar(ag_abs(ag_add_scalar(kl, (real)-C)), (real)c->gamma);
    }
    double w = c->warmup_steps > 0 ? fmin(1.0, (double)(step + 1) / (double)c->warmup_steps) : 1.0;
    return c->beta * w == 1.0 ? kl : ag_mul_scalar(kl, (real)(c->beta * w));
}

/* The objective with z = mu + sigma * eps; eps NULL draws it from rng. */
static vae_terms loss_with(const vae_model *m, Tensor *x, const int64_t *labels, int64_t step,
                           nb_rng *rng, Tensor *eps) {
    const vae_config *c = &m->cfg;
    real invB = (real)(1.0 / (double)x->shape[0]);
    Tensor *mu, *logvar;
    vae_encode(m, x, labels, &mu, &logvar);
    Tensor *kl_elem = nn_kl_normal_std(mu, logvar); /* (B, Z) */
    Tensor *kl = ag_mul_scalar(ag_sum(kl_elem), invB);
    vae_terms t = {0};
    t.kl = tensor_item(kl);

    if (c->iw_samples > 1) { /* IWAE: -mean_b (logsumexp_s log w - log S) */
        Tensor *lw = log_weights(m, x, mu, logvar, labels, c->iw_samples, rng);
        Tensor *bound =
            ag_add_scalar(ag_logsumexp(lw, 0, false), (real)-log((double)c->iw_samples));
        t.objective = ag_neg(ag_mean(bound));
        t.elbo_loss = -tensor_item(ag_mean(lw)); /* mean log w is the ELBO estimate */
        t.recon = t.elbo_loss - t.kl;
        return t;
    }

    nn_normal q = nn_normal_from_logvar(mu, logvar);
    Tensor *z = eps ? nn_normal_rsample_eps(&q, eps) : nn_normal_rsample(&q, rng);
    /* summed where it is computed: the fused BCE never stores the 784 losses per image */
    Tensor *recon = ag_mul_scalar(neg_log_lik(m, vae_decode(m, z, labels), x, NN_SUM), invB);
    t.recon = tensor_item(recon);
    t.elbo_loss = t.recon + t.kl;
    t.objective = ag_add(recon, kl_term(c, kl_elem, kl, step));
    return t;
}

vae_terms vae_loss(const vae_model *m, Tensor *x, const int64_t *labels, int64_t step,
                   nb_rng *rng) {
    return loss_with(m, x, labels, step, rng, NULL);
}

vae_terms vae_loss_eps(const vae_model *m, Tensor *x, const int64_t *labels, int64_t step,
                       Tensor *eps) {
    if (m->cfg.iw_samples > 1)
        nb_fail("vae_loss_eps", "takes one eps per example; the model uses IWAE");
    return loss_with(m, x, labels, step, NULL, eps);
}

/* ---- evaluations --------------------------------------------------------------------------- */

void vae_log_likelihood(const vae_model *m, Tensor *x, const int64_t *labels, int samples,
                        nb_rng *rng, double *out) {
    if (samples < 1) nb_fail("vae_log_likelihood", "needs at least one sample, got %d", samples);
    bool prev = ag_set_grad_enabled(false);
    int64_t B = x->shape[0];
    /* running logsumexp per example: max and scaled sum, in double */
    double *mx = nb_malloc((size_t)B * sizeof *mx), *acc = nb_malloc((size_t)B * sizeof *acc);
    for (int64_t b = 0; b < B; b++) mx[b] = -INFINITY, acc[b] = 0;
    ag_mark_t outer = ag_mark();
    Tensor *mu, *logvar;
    vae_encode(m, x, labels, &mu, &logvar);
    int chunk = (int)(4096 / (B > 0 ? B : 1));
    if (chunk < 1) chunk = 1;
    for (int s0 = 0; s0 < samples; s0 += chunk) {
        int S = samples - s0 < chunk ? samples - s0 : chunk;
        ag_mark_t mk = ag_mark();
        Tensor *lw = ag_contiguous(log_weights(m, x, mu, logvar, labels, S, rng)); /* (S, B) */
        for (int s = 0; s < S; s++)
            for (int64_t b = 0; b < B; b++) {
                double v = lw->data[lw->offset + s * B + b];
                if (v == -INFINITY) continue; /* weight 0; exp(-inf - -inf) would be NaN */
                if (v > mx[b]) {
                    acc[b] = acc[b] * exp(mx[b] - v) + 1;
                    mx[b] = v;
                } else {
                    acc[b] += exp(v - mx[b]);
                }
            }
        ag_release(mk);
    }
    for (int64_t b = 0; b < B; b++) out[b] = mx[b] + log(acc[b]) - log((double)samples);
    ag_release(outer);
    nb_free(mx);
    nb_free(acc);
    ag_set_grad_enabled(prev);
}

void vae_latent_stats_init(vae_latent_stats *s, const vae_model *m) {
    int64_t Z = m->cfg.latent;
    s->latent = Z;
    s->n = 0;
    s->mu_sum = nb_calloc((size_t)Z * sizeof(double));
    s->mu_sq = nb_calloc((size_t)Z * sizeof(double));
    s->kl_sum = nb_calloc((size_t)Z * sizeof(double));
}

void vae_latent_stats_add(vae_latent_stats *s, const vae_model *m, Tensor *x,
                          const int64_t *labels) {
    bool prev = ag_set_grad_enabled(false);
    ag_mark_t mk = ag_mark();
    Tensor *mu, *lv;
    vae_encode(m, x, labels, &mu, &lv);
    mu = ag_contiguous(mu), lv = ag_contiguous(lv);
    int64_t B = mu->shape[0], Z = s->latent;
    for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < Z; j++) {
            double u = (double)mu->data[mu->offset + i * Z + j];
            double v = (double)lv->data[lv->offset + i * Z + j];
            s->mu_sum[j] += u;
            s->mu_sq[j] += u * u;
            s->kl_sum[j] += 0.5 * (u * u + exp(v) - 1 - v);
        }
    s->n += B;
    ag_release(mk);
    ag_set_grad_enabled(prev);
}

int64_t vae_latent_stats_result(const vae_latent_stats *s, double threshold, double *kl,
                                double *mu_var) {
    int64_t active = 0;
    double n = (double)(s->n > 0 ? s->n : 1);
    for (int64_t j = 0; j < s->latent; j++) {
        double mean = s->mu_sum[j] / n, var = fmax(0, s->mu_sq[j] / n - mean * mean);
        if (kl) kl[j] = s->kl_sum[j] / n;
        if (mu_var) mu_var[j] = var;
        active += var > threshold;
    }
    return active;
}

void vae_latent_stats_free(vae_latent_stats *s) {
    nb_free(s->mu_sum);
    nb_free(s->mu_sq);
    nb_free(s->kl_sum);
    memset(s, 0, sizeof *s);
}

/* ---- pictures ------------------------------------------------------------------------------ */

Tensor *vae_sample(const vae_model *m, int64_t n, const int64_t *labels, nb_rng *rng) {
    Tensor *z = ag_randn(NB_SHAPE(n, m->cfg.latent), rng);
    return vae_decode_image(m, z, labels);
}

Tensor *vae_reconstruct(const vae_model *m, Tensor *x, const int64_t *labels) {
    Tensor *mu, *logvar;
    vae_encode(m, x, labels, &mu, &logvar);
    return vae_decode_image(m, mu, labels);
}

Tensor *vae_interpolate(const vae_model *m, Tensor *x1, Tensor *x2, int64_t label, int steps) {
    if (steps < 2) nb_fail("vae_interpolate", "needs at least 2 steps, got %d", steps);
    Tensor *mu1, *mu2, *lv;
    int64_t *labels = arena_alloc((size_t)steps * sizeof *labels);
    for (int i = 0; i < steps; i++) labels[i] = label;
    const int64_t *lab = m->cfg.num_classes ? labels : NULL;
    vae_encode(m, x1, lab, &mu1, &lv);
    vae_encode(m, x2, lab, &mu2, &lv);
    Tensor *alpha = ag_zeros(NB_SHAPE(steps, 1)); /* 0 .. 1 */
    for (int i = 0; i < steps; i++) alpha->data[i] = (real)i / (real)(steps - 1);
    Tensor *z = ag_add(mu1, ag_mul(alpha, ag_sub(mu2, mu1))); /* (steps, Z) */
    return vae_decode_image(m, z, lab);
}
