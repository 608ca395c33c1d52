/* nn/optim.h: optimizers (SGD, Adam, AdamW, RMSprop), gradient clipping and learning-rate
 * schedules, with PyTorch's update rules.
 *
 *   // from examples/spirals.c
 *   nn_optim *opt = nn_optim_adam(&m.ps, nn_adam_defaults(LR));
 *   for (int step = 0; step < STEPS; step++) {
 *       nn_optim_zero_grad(opt);
 *       Tensor *loss = nn_cross_entropy(mlp_forward(&m, d.x), d.labels, NN_MEAN);
 *       ag_backward(loss);
 *       bool finite;
 *       nn_clip_grad_norm(&m.ps, 5.0, &finite);
 *       // 50 warm-up steps from lr/10, then a cosine down to lr/100
 *       nn_optim_set_lr(opt, nn_lr_warmup(nn_lr_cosine(LR, step, STEPS, LR / 100), step, 50, 0.1));
 *       nn_optim_step(opt);
 *       ag_reset();
 *   }
 *   nn_optim_free(opt);
 *
 * Each optimizer updates every parameter's data in place from its .grad, exactly as the
 * corresponding torch.optim class (single tensor, maximize=False) does for a float32 (or, with
 * -DNB_DOUBLE, float64) parameter: the element math runs in `real`, the scalars (bias
 * corrections, step size) in double. A parameter whose .grad is NULL is skipped and its step
 * count does not advance, as in PyTorch. Each parameter keeps its own step count.
 *
 * Memory: the optimizer copies the parameter list (not the tensors: they stay the model's) and
 * allocates all its state tensors, zeroed, when it is created; nn_optim_step never allocates.
 * Parameters must be contiguous kept tensors (every tensor_* creation function makes one).
 *
 * State: the buffers are named as PyTorch's state_dict names them, followed by the parameter's
 * name ("exp_avg.encoder.fc1.weight"), plus one counter per parameter ("step.encoder.fc1.weight").
 * nn_optim_state_count/nn_optim_state_at enumerate them, which is how nn/checkpoint.h saves and
 * restores an optimizer.
 *
 * Programmer errors (bad hyperparameters, a non-contiguous parameter, a grad of the wrong shape)
 * go through nb_fail. */
#ifndef NB_NN_OPTIM_H
#define NB_NN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/params.h"

/* ---- hyperparameters (PyTorch's names and meanings) ---------------------------------------- */

typedef struct {
    double lr;
    double momentum;     /* 0: plain SGD */
    double dampening;    /* momentum buffer adds (1 - dampening) * grad after the first step */
    double weight_decay; /* L2: adds weight_decay * p to the gradient */
    bool nesterov;       /* needs momentum > 0 and dampening == 0 */
} nn_sgd_opts;

typedef struct {
    double lr;
    double beta1, beta2; /* running-average coefficients of the gradient and its square */
    double eps;          /* added to the bias-corrected sqrt(v) */
    double weight_decay; /* Adam: L2 added to the gradient; AdamW: p *= 1 - lr * weight_decay */
    bool amsgrad;        /* use the running maximum of v */
} nn_adam_opts;

typedef struct {
    double lr;
    double alpha;        /* running-average coefficient of the squared gradient */
    double eps;          /* added to the root of the average */
    double weight_decay; /* L2 added to the gradient */
    double momentum;     /* 0: no momentum buffer */
    bool centered;       /* divide by the estimated standard deviation instead */
} nn_rmsprop_opts;

/* PyTorch's defaults: SGD everything 0; Adam betas (0.9, 0.999), eps 1e-8, weight_decay 0;
 * AdamW the same with weight_decay 0.01; RMSprop alpha 0.99, eps 1e-8, the rest 0. */
nn_sgd_opts nn_sgd_defaults(double lr);
nn_adam_opts nn_adam_defaults(double lr);
nn_adam_opts nn_adamw_defaults(double lr);
nn_rmsprop_opts nn_rmsprop_defaults(double lr);

/* ---- optimizers ---------------------------------------------------------------------------- */

/* The built-in optimizers; NN_OPTIM_CUSTOM for one made with nn_optim_new outside nn/optim.c. */
typedef enum {
    NN_OPTIM_SGD,
    NN_OPTIM_ADAM,
    NN_OPTIM_ADAMW,
    NN_OPTIM_RMSPROP,
    NN_OPTIM_CUSTOM
} nn_optim_kind;

typedef struct nn_optim nn_optim;

/* Each makes an optimizer over the parameters now in ps (a copy of the list is taken; buffer
 * entries, such as batch norm's running statistics, are left out). Fails
 * (nb_fail) on a negative lr, eps or weight decay, a beta or alpha outside [0, 1), nesterov
 * without momentum or with dampening, or a non-contiguous parameter. Free with nn_optim_free. */
nn_optim *nn_optim_sgd(const nn_params *ps, nn_sgd_opts o);
nn_optim *nn_optim_adam(const nn_params *ps, nn_adam_opts o);
nn_optim *nn_optim_adamw(const nn_params *ps, nn_adam_opts o);
nn_optim *nn_optim_rmsprop(const nn_params *ps, nn_rmsprop_opts o);
void nn_optim_free(nn_optim *opt); /* the state and the list, not the parameters; NULL is a no-op */

/* One update of every parameter that has a .grad. Allocates nothing. */
void nn_optim_step(nn_optim *opt);
/* Clears every parameter's .grad to NULL, as PyTorch's zero_grad() (set_to_none=True) does:
 * the next backward writes the gradient afresh into the kept buffer (tensor_clear_grad), and
 * a parameter that backward doesn't reach keeps a NULL .grad, so nn_optim_step skips it. */
void nn_optim_zero_grad(nn_optim *opt);

void nn_optim_set_lr(nn_optim *opt, double lr); /* fails on lr < 0 */
double nn_optim_get_lr(const nn_optim *opt);
nn_optim_kind nn_optim_get_kind(const nn_optim *opt);
/* "sgd", "adam", "adamw", "rmsprop", "custom" */
const char *nn_optim_kind_name(nn_optim_kind kind);
/* The optimizer's name from its table ("adam", or a user optimizer's own): what a checkpoint
 * stores as optim.kind and checks on load. */
const char *nn_optim_name(const nn_optim *opt);
/* The number of steps taken so far: the largest per-parameter step count. */
int64_t nn_optim_steps(const nn_optim *opt);

/* ---- writing an optimizer -------------------------------------------------------------------
 * An optimizer is a table of functions over one parameter at a time; nn_optim_new makes an
 * nn_optim from it, and nn_optim_step, nn_optim_zero_grad, the learning rate, the state
 * enumeration and checkpoints work for it unchanged (tests/test_optim_open.c defines signSGD
 * with momentum in the test file; docs/DESIGN.md, "Adding an optimizer"). */

#define NN_OPTIM_MAX_STATE 3 /* state buffers per parameter, at most */

typedef struct {
    const char *name;   /* saved as a checkpoint's "optim.kind" ("adam"); a static string */
    nn_optim_kind kind; /* NN_OPTIM_CUSTOM outside nn/optim.c */
    /* Writes the names of the buffers each parameter keeps (PyTorch's state names, static
     * strings) into names[0..n) and returns n <= NN_OPTIM_MAX_STATE, given the hyperparameters.
     * NULL: no buffers. */
    int (*state_names)(const void *hyper, const char **names);
    /* Optional: fills one parameter's buffers (state[0..n), zeros) before its first update. */
    void (*init_state)(const void *hyper, const Tensor *p, Tensor *const *state);
    /* One update of one parameter: p, grad and state[0..n) are contiguous arrays of `count`
     * elements; step is this parameter's update count including this one (1 on the first). */
    void (*update)(const void *hyper, double lr, int64_t step, real *p, const real *grad,
                   real *const *state, int64_t count);
} nn_optim_ops;

/* An optimizer over the parameters in ps (buffer entries left out) from ops, a copy of the
 * hyper_size bytes at hyper (passed to ops' functions; NULL with 0 for none) and a learning rate.
 * ops must outlive the optimizer. Fails on lr < 0, an ops without name or update, or a
 * non-contiguous parameter. Free with nn_optim_free. */
nn_optim *nn_optim_new(const nn_params *ps, const nn_optim_ops *ops, const void *hyper,
                       size_t hyper_size, double lr);
const void *nn_optim_hyper(const nn_optim *opt); /* the optimizer's copy of its hyperparameters */

/* ---- state, for checkpoints ------------------------------------------------------------------ */

#define NN_OPTIM_NAME_MAX (NN_NAME_MAX + 24)

/* One piece of optimizer state: a buffer of its parameter's shape, or a step counter. */
typedef struct {
    char name[NN_OPTIM_NAME_MAX]; /* "exp_avg.encoder.fc1.weight", "step.encoder.fc1.weight" */
    Tensor *t;                    /* the buffer (kept, contiguous, the optimizer's), or NULL */
    int64_t *count;               /* the counter when t is NULL; writable */
} nn_optim_state;

/* How many state entries there are; the same for the life of the optimizer. */
int nn_optim_state_count(const nn_optim *opt);
/* Entry i (0 <= i < count; fails otherwise). The pointers stay valid until nn_optim_free;
 * writing through them (as a checkpoint load does) changes the optimizer's state. */
nn_optim_state nn_optim_state_at(const nn_optim *opt, int i);

/* ---- gradient clipping --------------------------------------------------------------------- */

/* torch.nn.utils.clip_grad_norm_: the 2-norm of all gradients together (computed in double;
 * parameters without a .grad and buffer entries are skipped). If max_norm / (norm + 1e-6) < 1 every
 * gradient is multiplied by that factor. A NaN or infinite norm scales nothing and sets *finite
 * (may be NULL) to false. Returns the norm before clipping. Fails on max_norm < 0. */
double nn_clip_grad_norm(const nn_params *ps, double max_norm, bool *finite);

/* ---- learning-rate schedules: closed forms of torch.optim.lr_scheduler ----------------------
 * Pure functions of the epoch (or step) counted from 0; they return the learning rate to pass
 * to nn_optim_set_lr. Fail (nb_fail) on the arguments noted. */

/* StepLR: base_lr * gamma^floor(epoch / step_size). step_size > 0, epoch >= 0. */
double nn_lr_step(double base_lr, int64_t epoch, int64_t step_size, double gamma);
/* CosineAnnealingLR: eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2.
 * t_max > 0, epoch >= 0 (beyond t_max the cosine continues, as torch's closed form does). */
double nn_lr_cosine(double base_lr, int64_t epoch, int64_t t_max, double eta_min);
/* LinearLR: base_lr * (start + (end - start) * min(epoch, total) / total). total > 0. */
double nn_lr_linear(double base_lr, int64_t epoch, double start_factor, double end_factor,
                    int64_t total);
/* Linear warm-up: lr * LinearLR's factor from start_factor to 1 over `warmup` steps. With a
 * constant lr it warms up to that lr and stays; passing another schedule's value as lr chains
 * them as torch's ChainedScheduler does (the factors multiply), e.g.
 * nn_lr_warmup(nn_lr_cosine(base, step, T, 0), step, 100, 0.01). warmup > 0. */
double nn_lr_warmup(double lr, int64_t step, int64_t warmup, double start_factor);

#endif
