/* models/vae.c: the VAE family as compositions of nn parts; see vae.h.
 *
 * Dimension glossary: B batch, D input pixels, H hidden, Z latent, K classes, S samples.
 *
 *   encoder:  [x | onehot(y)] (B, D+K) -> relu(fc1) ... -> out (B, 2Z) -> mu, logvar (B, Z)
 *   sample:   z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)                             (B, Z)
 *   decoder:  [z | onehot(y)] (B, Z+K) -> relu(fc1) ... -> out (B, D): logits or means
 *   loss:     recon = -log p(x | z), KL = KL(q(z | x) || N(0, I)), both in nats per example */
#include "models/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/dist.h"
#include "nn/loss.h"

#define LOG_2PI 1.8378770664093453

/* ---- config ------------------------------------------------------------------------------------
 */

void vae_config_default(vae_config *c) {
    memset(c, 0, sizeof *c);
    c->rows = c->cols = 28;
    c->nhidden = 1;
    c->hidden[0] = 400;
    c->latent = 20;
    c->likelihood = VAE_BERNOULLI;
    c->beta = 1;
    c->iw_samples = 1;
}

int vae_config_check(const vae_config *c, char *err, size_t n) {
#define BAD(...) return snprintf(err, n, __VA_ARGS__), -1
    if (c->rows < 1 || c->cols < 1 || c->rows > (1 << 24) || c->cols > (1 << 24) ||
        c->rows * c->cols > (1 << 24))
        BAD("image size %lldx%lld is out of range", (long long)c->rows, (long long)c->cols);
    if (c->nhidden < 1 || c->nhidden > VAE_MAX_HIDDEN)
        BAD("between 1 and %d hidden layers are supported, not %d", VAE_MAX_HIDDEN, c->nhidden);
    for (int i = 0; i < c->nhidden; i++)
        if (c->hidden[i] < 1 || c->hidden[i] > 100000)
            BAD("hidden layer %d has size %lld (must be 1..100000)", i + 1,
                (long long)c->hidden[i]);
    if (c->latent < 1 || c->latent > 10000)
        BAD("latent size %lld must be 1..10000", (long long)c->latent);
    if (!(c->beta >= 0) || !isfinite(c->beta)) BAD("beta %g must be a finite number >= 0", c->beta);
    if (!(c->gamma >= 0) || !isfinite(c->gamma))
        BAD("gamma %g must be a finite number >= 0", c->gamma);
    if (!(c->capacity >= 0) || !isfinite(c->capacity)) BAD("capacity %g must be >= 0", c->capacity);
    if (c->capacity_steps < 0 || c->warmup_steps < 0) BAD("step counts must be >= 0");
    if (!(c->free_bits >= 0) || !isfinite(c->free_bits))
        BAD("free bits %g must be >= 0", c->free_bits);
    if (c->num_classes < 0 || c->num_classes > 1000)
        BAD("classes %d must be 0..1000", c->num_classes);
    if (c->iw_samples < 1 || c->iw_samples > 10000)
        BAD("importance samples %d must be 1..10000", c->iw_samples);
    if (c->likelihood != VAE_BERNOULLI && c->likelihood != VAE_GAUSSIAN) BAD("unknown likelihood");
    if (c->iw_samples > 1 &&
        (c->beta != 1 || c->gamma > 0 || c->warmup_steps > 0 || c->free_bits > 0))
        BAD("the IWAE objective (iw %d) does not combine with beta, capacity, warm-up or free bits",
            c->iw_samples);
    /* every parameter is allocated by vae_init: bound the total before trusting a config that
     * came from a file (a 200-byte config must not ask for terabytes) */
    double params = 0, in = (double)(c->rows * c->cols + c->num_classes);
    for (int i = 0; i < c->nhidden; i++) {
        params += 2 * (in + 1) * (double)c->hidden[i]; /* the encoder layer and its mirror */
        in = (double)c->hidden[i];
    }
    params += (in + 1) * 2.0 * (double)c->latent + ((double)(c->latent + c->num_classes) + 1) * in;
    if (params > (double)(1 << 27))
        BAD("the model would have %.3g parameters (at most %d)", params, 1 << 27);
    return 0;
#undef BAD
}

void vae_config_format(const vae_config *c, char *buf, size_t len) {
    char hidden[128] = "";
    for (int i = 0; i < c->nhidden; i++) {
        size_t k = strlen(hidden);
        snprintf(hidden + k, sizeof hidden - k, "%s%lld", i ? "," : "", (long long)c->hidden[i]);
    }
    snprintf(buf, len,
             "rows=%lld;cols=%lld;hidden=%s;latent=%lld;likelihood=%s;beta=%.17g;gamma=%.17g;"
             "capacity=%.17g;capacity_steps=%lld;warmup=%lld;free_bits=%.17g;classes=%d;iw=%d",
             (long long)c->rows, (long long)c->cols, hidden, (long long)c->latent,
             c->likelihood == VAE_GAUSSIAN ? "gaussian" : "bernoulli", c->beta, c->gamma,
             c->capacity, (long long)c->capacity_steps, (long long)c->warmup_steps, c->free_bits,
             c->num_classes, c->iw_samples);
}

/* Copies s into buf (size n) with anything but printable ASCII shown as '?', so text from a
 * file can go into an error message without reaching the terminal raw. */
static const char *printable(const char *s, char *buf, size_t n) {
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) buf[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

/* Parses one integer or number value, whole-string, into *out. */
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

int vae_config_parse(const char *s, vae_config *c, char *err, size_t n) {
    vae_config_default(c);
    char buf[1024];
    if (strlen(s) >= sizeof buf) return snprintf(err, n, "model config is too long"), -1;
    strcpy(buf, s);
    for (char *save = NULL, *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        char p1[64], p2[64];
        if (!eq)
            return snprintf(err, n, "model config: '%s' is not key=value",
                            printable(kv, p1, sizeof p1)),
                   -1;
        *eq = '\0';
        const char *k = kv, *v = eq + 1;
        long long i = 0;
        int bad = 0;
        if (!strcmp(k, "rows"))
            bad = parse_ll(v, &i), c->rows = i;
        else if (!strcmp(k, "cols"))
            bad = parse_ll(v, &i), c->cols = i;
        else if (!strcmp(k, "latent"))
            bad = parse_ll(v, &i), c->latent = i;
        else if (!strcmp(k, "capacity_steps"))
            bad = parse_ll(v, &i), c->capacity_steps = i;
        else if (!strcmp(k, "warmup"))
            bad = parse_ll(v, &i), c->warmup_steps = i;
        else if (!strcmp(k, "classes"))
            bad = parse_ll(v, &i) || i < 0 || i > 1000, c->num_classes = (int)i;
        else if (!strcmp(k, "iw"))
            bad = parse_ll(v, &i) || i < 1 || i > 10000, c->iw_samples = (int)i;
        else if (!strcmp(k, "beta"))
            bad = parse_d(v, &c->beta);
        else if (!strcmp(k, "gamma"))
            bad = parse_d(v, &c->gamma);
        else if (!strcmp(k, "capacity"))
            bad = parse_d(v, &c->capacity);
        else if (!strcmp(k, "free_bits"))
            bad = parse_d(v, &c->free_bits);
        else if (!strcmp(k, "likelihood")) {
            if (!strcmp(v, "bernoulli"))
                c->likelihood = VAE_BERNOULLI;
            else if (!strcmp(v, "gaussian"))
                c->likelihood = VAE_GAUSSIAN;
            else
                bad = 1;
        } else if (!strcmp(k, "hidden")) {
            c->nhidden = 0;
            const char *p = v;
            while (*p && !bad) {
                char *end;
                long long h = strtoll(p, &end, 10);
                if (end == p || c->nhidden == VAE_MAX_HIDDEN)
                    bad = 1;
                else
                    c->hidden[c->nhidden++] = h;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') bad = 1;
            }
        } else {
            return snprintf(err, n, "model config: unknown key '%s'", printable(k, p1, sizeof p1)),
                   -1;
        }
        if (bad)
            return snprintf(err, n, "model config: bad value '%s' for '%s'",
                            printable(v, p1, sizeof p1), printable(k, p2, sizeof p2)),
                   -1;
    }
    return vae_config_check(c, err, n);
}

/* ---- model -------------------------------------------------------------------------------------
 */

void vae_init(vae_model *m, const vae_config *c, nb_rng *rng) {
    char err[256];
    if (vae_config_check(c, err, sizeof err)) nb_fail("vae_init", "%s", err);
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    int64_t D = c->rows * c->cols, K = c->num_classes, Z = c->latent;
    int nh = c->nhidden;
    char name[32];
    int64_t in = D + K;
    for (int i = 0; i < nh; i++) { /* encoder.fc1: D+K -> H1, ... */
        nn_linear_init(&m->enc[i], in, c->hidden[i], true, rng);
        snprintf(name, sizeof name, "encoder.fc%d", i + 1);
        nn_linear_params(&m->enc[i], name, &m->params);
        in = c->hidden[i];
    }
    nn_linear_init(&m->enc_out, in, 2 * Z, true, rng);
    nn_linear_params(&m->enc_out, "encoder.out", &m->params);
    in = Z + K;
    for (int i = 0; i < nh; i++) { /* decoder.fc1: Z+K -> H_last, ... mirrored */
        nn_linear_init(&m->dec[i], in, c->hidden[nh - 1 - i], true, rng);
        snprintf(name, sizeof name, "decoder.fc%d", i + 1);
        nn_linear_params(&m->dec[i], name, &m->params);
        in = c->hidden[nh - 1 - i];
    }
    nn_linear_init(&m->dec_out, in, D, true, rng);
    nn_linear_params(&m->dec_out, "decoder.out", &m->params);
    if (c->likelihood == VAE_GAUSSIAN) {
        m->dec_logvar = tensor_zeros(1, &D);
        nn_params_add(&m->params, NULL, "decoder.logvar", m->dec_logvar);
    }
}

void vae_free(vae_model *m) {
    for (int i = 0; i < m->cfg.nhidden; i++) {
        nn_linear_free(&m->enc[i]);
        nn_linear_free(&m->dec[i]);
    }
    nn_linear_free(&m->enc_out);
    nn_linear_free(&m->dec_out);
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

void vae_encode(const vae_model *m, Tensor *x, const int64_t *labels, Tensor **mu,
                Tensor **logvar) {
    Tensor *h = with_labels(m, x, labels);
    for (int i = 0; i < m->cfg.nhidden; i++) h = nn_relu(nn_linear_forward(&m->enc[i], h));
    Tensor *out = nn_linear_forward(&m->enc_out, h); /* (B, 2Z) */
    *mu = ag_narrow(out, 1, 0, m->cfg.latent);
    *logvar = ag_narrow(out, 1, m->cfg.latent, m->cfg.latent);
}

Tensor *vae_decode(const vae_model *m, Tensor *z, const int64_t *labels) {
    Tensor *h = with_labels(m, z, labels);
    for (int i = 0; i < m->cfg.nhidden; i++) h = nn_relu(nn_linear_forward(&m->dec[i], h));
    return nn_linear_forward(&m->dec_out, h); /* (B, D) */
}

Tensor *vae_decode_image(const vae_model *m, Tensor *z, const int64_t *labels) {
    Tensor *out = vae_decode(m, z, labels);
    return m->cfg.likelihood == VAE_BERNOULLI ? nn_sigmoid(out) : ag_clamp(out, 0, 1);
}

/* -log p(x | decoder output): per element (B, D) with NN_NONE, else summed or averaged. */
static Tensor *neg_log_lik(const vae_model *m, Tensor *out, Tensor *x, nn_reduction red) {
    if (m->cfg.likelihood == VAE_BERNOULLI) return nn_bce_with_logits(out, x, red);
    return nn_gaussian_nll(x, out, m->dec_logvar, red);
}

/* ---- the objective
 * ------------------------------------------------------------------------------- */

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

/* The objective with z = mu + sigma * eps; eps NULL draws it from rng. */
static vae_terms loss_with(const vae_model *m, Tensor *x, const int64_t *labels, int64_t step,
                           nb_rng *rng, Tensor *eps) {
    const vae_config *c = &m->cfg;
    int64_t B = x->shape[0];
    double invB = 1.0 / (double)B;
    Tensor *mu, *logvar;
    vae_encode(m, x, labels, &mu, &logvar);
    Tensor *kl_elem = nn_kl_normal_std(mu, logvar); /* (B, Z) */
    Tensor *kl = ag_mul_scalar(ag_sum(kl_elem), (real)invB);
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
    Tensor *recon = ag_mul_scalar(neg_log_lik(m, vae_decode(m, z, labels), x, NN_SUM), (real)invB);
    t.recon = tensor_item(recon);
    t.elbo_loss = t.recon + t.kl;

    Tensor *kl_term = kl;
    if (c->free_bits > 0) /* floor each dim's batch-mean KL at free_bits */
        kl_term = ag_sum(
            ag_clamp(ag_mean_dims(kl_elem, (int[]){0}, 1, false), (real)c->free_bits, INFINITY));
    if (c->gamma > 0) { /* B form: gamma |KL - C(t)| */
        double C = c->capacity_steps > 0
                       ? c->capacity * fmin(1.0, (double)step / (double)c->capacity_steps)
                       : c->capacity;
        t.objective =
            ag_add(recon, ag_mul_scalar(ag_abs(ag_add_scalar(kl_term, (real)-C)), (real)c->gamma));
    } else {
        double w =
            c->warmup_steps > 0 ? fmin(1.0, (double)(step + 1) / (double)c->warmup_steps) : 1.0;
        t.objective = (c->beta * w == 1.0)
                          ? ag_add(recon, kl_term)
                          : ag_add(recon, ag_mul_scalar(kl_term, (real)(c->beta * w)));
    }
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

/* ---- evaluation and pictures
 * ----------------------------------------------------------------------- */

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
