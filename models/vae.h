/* models/vae.h: the VAE family: VAE, beta-VAE (H and B forms), conditional VAE, IWAE.
 *
 *   vae_config cfg;
 *   vae_config_default(&cfg);                 // 784-400-20, Bernoulli, beta 1: the reference VAE
 *   vae_model m;
 *   vae_init(&m, &cfg, NULL);
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
 * Dimension glossary: B batch, D input pixels (rows * cols), H hidden, Z latent, K classes
 * (0 for an unconditional model), S importance samples.
 *
 * The variants are compositions chosen by the config, never copies of the model:
 *  - beta-VAE H form: objective = recon + beta * KL.
 *  - beta-VAE B form (gamma > 0): objective = recon + gamma * |KL - C(t)|, C ramped linearly
 *    from 0 to `capacity` over `capacity_steps`.
 *  - KL warm-up: the KL weight ramps 0 -> 1 over `warmup_steps` (Bowman et al.).
 *  - free bits: each latent dim's batch-mean KL is floored at `free_bits` nats (Kingma et al.).
 *  - conditional (num_classes K > 0): a one-hot label joins the encoder input and z (Sohn et al.).
 *  - IWAE (iw_samples S > 1): the objective is the S-sample importance-weighted bound.
 * Whatever the objective, vae_terms also reports the beta = 1 ELBO's parts in nats per example.
 *
 * Parameter names (checkpoints): encoder.fc1 .. encoder.fcN (hidden layers), encoder.out
 * ([2Z, H]: rows 0..Z-1 give mu, rows Z..2Z-1 give logvar), decoder.fc1 .. decoder.fcN,
 * decoder.out ([D, H]), and decoder.logvar ([D], Gaussian likelihood only).
 * All returned tensors are step tensors (freed by ag_reset). Config errors go through nb_fail;
 * validate user input with vae_config_check first. */
#ifndef NB_VAE_H
#define NB_VAE_H

#include "autograd/autograd.h"
#include "nn/layers.h"
#include "nn/params.h"

#define VAE_MAX_HIDDEN 4

typedef enum { VAE_BERNOULLI, VAE_GAUSSIAN } vae_likelihood;

typedef struct {
    int64_t rows, cols;             /* image size; D = rows * cols */
    int nhidden;                    /* hidden layers in the encoder (the decoder mirrors them) */
    int64_t hidden[VAE_MAX_HIDDEN]; /* H sizes, encoder order: e.g. {512, 256} */
    int64_t latent;                 /* Z */
    vae_likelihood likelihood;      /* Bernoulli from logits, or Gaussian with a learned var */
    double beta;                    /* H form KL weight (1: plain VAE) */
    double gamma;                   /* B form weight; 0 turns the B form off */
    double capacity;                /* B form C_max in nats */
    int64_t capacity_steps;         /* steps over which C ramps from 0 to C_max */
    int64_t warmup_steps;           /* KL warm-up steps (0: none) */
    double free_bits;               /* per-dim KL floor in nats (0: none) */
    int num_classes;                /* K: 0 unconditional */
    int iw_samples;                 /* S: 1 is the ELBO */
} vae_config;

typedef struct {
    vae_config cfg;
    nn_linear enc[VAE_MAX_HIDDEN]; /* [D(+K) -> H1], [H1 -> H2], ... */
    nn_linear enc_out;             /* [H_last -> 2Z] */
    nn_linear dec[VAE_MAX_HIDDEN]; /* [Z(+K) -> H_last], ... mirrored */
    nn_linear dec_out;             /* [H1 -> D] */
    Tensor *dec_logvar;            /* [D] Gaussian likelihood only, else NULL */
    nn_params params;              /* every parameter, named as above */
} vae_model;

typedef struct {
    Tensor *objective; /* scalar to minimise (per example), with beta/capacity/warm-up/IW */
    double elbo_loss;  /* recon + KL: the beta = 1 negative ELBO, nats per example */
    double recon;      /* -E_q log p(x|z), nats per example (one z sample) */
    double kl;         /* KL(q(z|x) || p(z)), nats per example */
} vae_terms;

void vae_config_default(vae_config *c); /* 28x28, 400, 20, Bernoulli, beta 1 */
/* Returns 0 if the config is usable, else -1 with a message naming the bad field in err. */
int vae_config_check(const vae_config *c, char *err, size_t errlen);
/* Serialises a config to/from a short "key=value;..." string (checkpoint metadata).
 * vae_config_parse returns 0 or -1 with a message in err. */
void vae_config_format(const vae_config *c, char *buf, size_t len);
int vae_config_parse(const char *s, vae_config *c, char *err, size_t errlen);

void vae_init(vae_model *m, const vae_config *c, nb_rng *rng); /* PyTorch default init */
void vae_free(vae_model *m);

/* x [B, D]; labels [B] class ids (conditional models; NULL otherwise). */
void vae_encode(const vae_model *m, Tensor *x, const int64_t *labels, Tensor **mu, Tensor **logvar);
/* z [B, Z] -> logits (Bernoulli) or means (Gaussian) [B, D]. */
Tensor *vae_decode(const vae_model *m, Tensor *z, const int64_t *labels);
/* Decoder output as pixel intensities in [0, 1] (sigmoid of logits, or the clamped mean). */
Tensor *vae_decode_image(const vae_model *m, Tensor *z, const int64_t *labels);

/* The training objective and the ELBO's parts for a batch; `step` drives warm-up and capacity.
 * rng NULL: the global generator. */
vae_terms vae_loss(const vae_model *m, Tensor *x, const int64_t *labels, int64_t step, nb_rng *rng);
/* The same with a given eps [B, Z] (z = mu + sigma * eps): deterministic, for tests and for
 * comparing against a reference implementation. Not for IWAE models. */
vae_terms vae_loss_eps(const vae_model *m, Tensor *x, const int64_t *labels, int64_t step,
                       Tensor *eps);

/* log p(x) estimates, one per example: logsumexp_s(log p(x|z_s) + log p(z_s) - log q(z_s|x))
 * - log S with S samples (Burda et al.), computed in chunks so memory stays bounded. With S = 1
 * it is a one-sample ELBO. out [B] in nats. Runs with grad mode off; releases what it makes. */
void vae_log_likelihood(const vae_model *m, Tensor *x, const int64_t *labels, int samples,
                        nb_rng *rng, double *out);

/* Decoded images [n, D] in [0, 1] from z ~ N(0, I); labels [n] for conditional models. */
Tensor *vae_sample(const vae_model *m, int64_t n, const int64_t *labels, nb_rng *rng);
/* Decoded images [B, D] of the posterior means of x. */
Tensor *vae_reconstruct(const vae_model *m, Tensor *x, const int64_t *labels);
/* Decoded images [steps, D] along the line between the posterior means of x1 and x2 ([1, D]). */
Tensor *vae_interpolate(const vae_model *m, Tensor *x1, Tensor *x2, int64_t label, int steps);

#endif
