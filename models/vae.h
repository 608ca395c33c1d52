/* models/vae.h: the VAE family as a composition: an encoder, a decoder, a likelihood and the
 * N(0, I) prior; the objectives (ELBO, beta-VAE H and B forms, KL warm-up, free bits, IWAE) and
 * the evaluations (IWAE log-likelihood, active units, KL per dimension) are written once over
 * those parts, so they work for any encoder and decoder, a user's own included.
 *
 *   vae_config cfg;
 *   vae_config_default(&cfg);                 // 784-400-20 MLP, Bernoulli, beta 1
 *   vae_model m;
 *   vae_init(&m, &cfg, NULL);                 // the networks of cfg.arch ("mlp" or "conv")
 *   nn_optim *opt = nn_optim_adam(&m.params, nn_adam_defaults(1e-3));
 *   for (...) {                                // x: kept [B, D] batch in [0, 1]
 *       vae_terms t = vae_loss(&m, x, NULL, step, NULL);
 *       ag_backward(t.objective);
 *       nn_optim_step(opt);
 *       nn_optim_zero_grad(opt);
 *       ag_reset();
 *   }
 *   vae_free(&m);
 *
 * A user's own networks: vae_compose(&m, &cfg, my_encoder, my_decoder) (examples/vae_custom.c).
 *
 * Dimension glossary: B batch, D input pixels (rows * cols), H hidden, Z latent, K classes
 * (0 for an unconditional model), S importance samples.
 *
 * The parts' contract (nn/module.h modules, one input each):
 *  - encoder: [B, D + K] -> [B, 2Z]: the image's pixels flattened row-major, then (conditional
 *    models) the one-hot label; columns 0..Z-1 of the output are mu, Z..2Z-1 logvar.
 *  - decoder: [B, Z + K] -> [B, D]: z, then the one-hot label; logits (Bernoulli) or means
 *    (Gaussian) of the pixels.
 *  - likelihood: Bernoulli on logits; Gaussian with a learned per-pixel log-variance
 *    (decoder.logvar [D]) or with variance 1 (gaussian_fixed).
 *  - prior: N(0, I); the posterior q(z | x) = N(mu, exp(logvar)).
 *
 * The architectures (a table in models/vae_nets.c; cfg.arch names one):
 *  - "mlp": encoder.fc1 .. encoder.fcN (Linear, ReLU), encoder.out ([2Z, H]); decoder.fc1 ..
 *    decoder.fcN mirroring them, decoder.out ([D, H]). The label joins the input and z.
 *  - "conv" (channels C1, C2): encoder.conv1 Conv2d 1->C1 3x3 stride 2 pad 1, ReLU; encoder.conv2
 *    C1->C2 the same, ReLU; flatten; encoder.out Linear -> 2Z. decoder.fc Linear Z -> C2 (rows/4)
 *    (cols/4), ReLU; decoder.deconv1 ConvTranspose2d C2->C2 3x3 stride 2 pad 1 output pad 1,
 *    ReLU; decoder.deconv2 C2->C1 the same, ReLU; decoder.out Conv2d C1->1 3x3 pad 1. Names and
 *    weight layouts are PyTorch's. Conditional: the one-hot label joins the flattened features
 *    before encoder.out and z before decoder.fc. With N channel sizes there are N stride-2
 *    convolutions (rows and cols divisible by 2^N).
 *
 * The objectives are chosen by the config:
 *  - beta-VAE H form: objective = recon + beta * KL.
 *  - beta-VAE B form (gamma > 0): objective = recon + gamma * |KL - C(t)|, C ramped linearly
 *    from 0 to `capacity` over `capacity_steps`.
 *  - KL warm-up: the KL weight ramps 0 -> 1 over `warmup_steps` (Bowman et al.).
 *  - free bits: each latent dim's batch-mean KL is floored at `free_bits` nats (Kingma et al.).
 *  - conditional (num_classes K > 0): the one-hot label goes to both networks (Sohn et al.).
 *  - IWAE (iw_samples S > 1): the objective is the S-sample importance-weighted bound.
 * Whatever the objective, vae_terms also reports the beta = 1 ELBO's parts in nats per example.
 *
 * All returned tensors are step tensors (freed by ag_reset). Config errors go through nb_fail;
 * validate user input with vae_config_check first. Labels are class ids in 0..K-1. */
#ifndef NB_VAE_H
#define NB_VAE_H

#include "autograd/autograd.h"
#include "nn/module.h"
#include "nn/params.h"

#define VAE_MAX_HIDDEN 4
#define VAE_ARCH_MAX   16

typedef enum { VAE_BERNOULLI, VAE_GAUSSIAN, VAE_GAUSSIAN_FIXED } vae_likelihood;

typedef struct {
    char arch[VAE_ARCH_MAX];          /* "mlp" (the default) or "conv": the networks' builder */
    int64_t rows, cols;               /* image size; D = rows * cols */
    int nhidden;                      /* mlp: hidden layers (the decoder mirrors them) */
    int64_t hidden[VAE_MAX_HIDDEN];   /* mlp: H sizes, encoder order: e.g. {512, 256} */
    int nchannels;                    /* conv: stride-2 convolutions */
    int64_t channels[VAE_MAX_HIDDEN]; /* conv: their output channels, e.g. {32, 64} */
    int64_t latent;                   /* Z */
    vae_likelihood likelihood;        /* Bernoulli from logits, or Gaussian */
    double beta;                      /* H form KL weight (1: plain VAE) */
    double gamma;                     /* B form weight; 0 turns the B form off */
    double capacity;                  /* B form C_max in nats */
    int64_t capacity_steps;           /* steps over which C ramps from 0 to C_max */
    int64_t warmup_steps;             /* KL warm-up steps (0: none) */
    double free_bits;                 /* per-dim KL floor in nats (0: none) */
    int num_classes;                  /* K: 0 unconditional */
    int iw_samples;                   /* S: 1 is the ELBO */
} vae_config;

typedef struct {
    vae_config cfg;
    nn_module *encoder; /* [B, D+K] -> [B, 2Z], owned */
    nn_module *decoder; /* [B, Z+K] -> [B, D], owned */
    Tensor *dec_logvar; /* [D] learned Gaussian log-variance (VAE_GAUSSIAN), else NULL; owned */
    nn_params params;   /* every parameter: encoder.*, decoder.*, decoder.logvar */
} vae_model;

typedef struct {
    Tensor *objective; /* scalar to minimise (per example), with beta/capacity/warm-up/IW */
    double elbo_loss;  /* recon + KL: the beta = 1 negative ELBO, nats per example */
    double recon;      /* -E_q log p(x|z), nats per example (one z sample) */
    double kl;         /* KL(q(z|x) || p(z)), nats per example */
} vae_terms;

/* ---- config ---------------------------------------------------------------------------------- */

/* "bernoulli", "gaussian" (learned variance), "gaussian_fixed" (variance 1) -> *out: 0, or -1
 * when the name is unknown. vae_likelihood_names lists them for messages. */
int vae_likelihood_parse(const char *name, vae_likelihood *out);
const char *vae_likelihood_names(void);

void vae_config_default(vae_config *c); /* mlp, 28x28, 400, 20, channels 32,64, Bernoulli */
/* Returns 0 if the config is usable (the architecture known, every field in range, the model
 * not too big), else -1 with a message naming the bad field in err. */
int vae_config_check(const vae_config *c, char *err, size_t errlen);
/* Serialises a config to/from a "key=value;..." string (checkpoint metadata). Keys missing from
 * the string keep their defaults, so strings written before a key existed still parse (an old
 * string has no arch: the MLP). vae_config_parse returns 0 or -1 with a message in err. */
void vae_config_format(const vae_config *c, char *buf, size_t len);
int vae_config_parse(const char *s, vae_config *c, char *err, size_t errlen);

/* ---- architectures (models/vae_nets.c) ---------------------------------------------------- */

typedef struct {
    const char *name; /* the config's arch */
    /* Makes c's encoder and decoder, drawing PyTorch's default init from rng (NULL: global). */
    void (*build)(const vae_config *c, nb_rng *rng, nn_module **encoder, nn_module **decoder);
    /* The number of parameters build makes (bounds a config read from a file before any
     * allocation). */
    double (*count)(const vae_config *c);
    /* 0, or -1 with a message when c's sizes don't suit the architecture; may be NULL. */
    int (*check)(const vae_config *c, char *err, size_t errlen);
} vae_arch;

const vae_arch *vae_arch_find(const char *name); /* NULL when unknown */
const char *vae_arch_names(void);                /* "mlp, conv": for messages */

/* ---- model ----------------------------------------------------------------------------------- */

/* Builds the config's architecture (PyTorch default init from rng; NULL: global generator). */
void vae_init(vae_model *m, const vae_config *c, nb_rng *rng);
/* A VAE from the caller's encoder and decoder (ownership passes to m; they must follow the
 * parts' contract above for c's sizes). c->arch is only recorded. */
void vae_compose(vae_model *m, const vae_config *c, nn_module *encoder, nn_module *decoder);
void vae_free(vae_model *m); /* frees the networks and parameters; zeroes m */

/* x [B, D]; labels [B] class ids (conditional models; NULL otherwise). */
void vae_encode(const vae_model *m, Tensor *x, const int64_t *labels, Tensor **mu, Tensor **logvar);
/* z [B, Z] -> logits (Bernoulli) or means (Gaussian) [B, D]. */
Tensor *vae_decode(const vae_model *m, Tensor *z, const int64_t *labels);
/* Decoder output as pixel intensities in [0, 1] (sigmoid of logits, or the clamped mean). */
Tensor *vae_decode_image(const vae_model *m, Tensor *z, const int64_t *labels);

/* ---- objectives ------------------------------------------------------------------------------ */

/* The training objective and the ELBO's parts for a batch; `step` drives warm-up and capacity.
 * rng NULL: the global generator. */
vae_terms vae_loss(const vae_model *m, Tensor *x, const int64_t *labels, int64_t step, nb_rng *rng);
/* The same with a given eps [B, Z] (z = mu + sigma * eps): deterministic, for tests and for
 * comparing against a reference implementation. Not for IWAE models. */
vae_terms vae_loss_eps(const vae_model *m, Tensor *x, const int64_t *labels, int64_t step,
                       Tensor *eps);

/* ---- evaluations ----------------------------------------------------------------------------- */

/* log p(x) estimates, one per example: logsumexp_s(log p(x|z_s) + log p(z_s) - log q(z_s|x))
 * - log S with S samples (Burda et al.), computed in chunks so memory stays bounded. With S = 1
 * it is a one-sample ELBO. out [B] in nats. Runs with grad mode off; releases what it makes. */
void vae_log_likelihood(const vae_model *m, Tensor *x, const int64_t *labels, int samples,
                        nb_rng *rng, double *out);

/* Statistics of the posterior over a data set, batch by batch: active units (Burda et al.: the
 * variance over x of E_q[z_i] above a threshold, 0.01 in the paper) and the mean analytic KL of
 * each latent dimension. */
typedef struct {
    int64_t latent, n;      /* Z; examples added */
    double *mu_sum, *mu_sq; /* [Z] sums of mu and mu^2 */
    double *kl_sum;         /* [Z] summed KL per dimension */
} vae_latent_stats;

void vae_latent_stats_init(vae_latent_stats *s, const vae_model *m);
/* Adds the batch x [B, D] (grad mode off; releases what it makes). */
void vae_latent_stats_add(vae_latent_stats *s, const vae_model *m, Tensor *x,
                          const int64_t *labels);
/* kl [Z] mean KL per dimension, mu_var [Z] variance of each posterior mean (either may be
 * NULL); returns the number of dimensions whose mu_var exceeds threshold. */
int64_t vae_latent_stats_result(const vae_latent_stats *s, double threshold, double *kl,
                                double *mu_var);
void vae_latent_stats_free(vae_latent_stats *s);

/* ---- pictures -------------------------------------------------------------------------------- */

/* Decoded images [n, D] in [0, 1] from z ~ N(0, I); labels [n] for conditional models. */
Tensor *vae_sample(const vae_model *m, int64_t n, const int64_t *labels, nb_rng *rng);
/* Decoded images [B, D] of the posterior means of x. */
Tensor *vae_reconstruct(const vae_model *m, Tensor *x, const int64_t *labels);
/* Decoded images [steps, D] along the line between the posterior means of x1 and x2 ([1, D]). */
Tensor *vae_interpolate(const vae_model *m, Tensor *x1, Tensor *x2, int64_t label, int steps);

#endif
