/* nn/optim.c: SGD, Adam, AdamW and RMSprop with PyTorch's update rules; gradient clipping;
 * learning-rate schedules.
 *
 * Each update is written as torch.optim's single-tensor loop writes it (PyTorch 1.13,
 * torch/optim/{sgd,adam,adamw,rmsprop}.py), one element at a time: `x.add_(y, alpha=a)` is
 * x + a*y, `x.addcmul_(y, z, value=a)` is x + a*y*z, `x.addcdiv_(y, z, value=a)` is x + a*y/z,
 * all in `real` with the Python scalars rounded to `real`, as a float32 tensor op rounds them. */
#include "nn/optim.h"

#include "tensor/parallel.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autograd/autograd.h"

/* ---- the optimizer --------------------------------------------------------------------------- */

/* One parameter and its state. */
typedef struct {
    char name[NN_NAME_MAX];          /* the parameter's name in the list */
    Tensor *p;                       /* the parameter (the model's) */
    Tensor *buf[NN_OPTIM_MAX_STATE]; /* state buffers of p's shape (the optimizer's) [nbuf] */
    int64_t step;                    /* updates applied to this parameter */
} slot;

struct nn_optim {
    const nn_optim_ops *ops;
    void *hyper; /* the hyperparameters (a copy, the optimizer's), given to ops */
    double lr;
    const char *buf_names[NN_OPTIM_MAX_STATE]; /* PyTorch's state names of buf[0..nbuf) */
    int nbuf;
    slot *slots; /* [n]: the parameters of the list, buffers left out */
    int n;
};

/* Buffer indices, in PyTorch's state_dict names. */
enum { SGD_MOMENTUM = 0 };
enum { ADAM_EXP_AVG = 0, ADAM_EXP_AVG_SQ = 1, ADAM_MAX_EXP_AVG_SQ = 2 };
enum { RMS_SQUARE_AVG = 0 };

nn_sgd_opts nn_sgd_defaults(double lr) {
    return (nn_sgd_opts){.lr = lr};
}

nn_adam_opts nn_adam_defaults(double lr) {
    return (nn_adam_opts){.lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

nn_adam_opts nn_adamw_defaults(double lr) {
    nn_adam_opts o = nn_adam_defaults(lr);
    o.weight_decay = 0.01;
    return o;
}

nn_rmsprop_opts nn_rmsprop_defaults(double lr) {
    return (nn_rmsprop_opts){.lr = lr, .alpha = 0.99, .eps = 1e-8};
}

static void check_lr(const char *op, double lr) {
    if (!(lr >= 0)) nb_fail(op, "learning rate %g must be >= 0", lr);
}

static void check_unit(const char *op, const char *what, double v) {
    if (!(v >= 0 && v < 1)) nb_fail(op, "%s = %g must be in [0, 1)", what, v);
}

static void check_nonneg(const char *op, const char *what, double v) {
    if (!(v >= 0)) nb_fail(op, "%s = %g must be >= 0", what, v);
}

nn_optim *nn_optim_new(const nn_params *ps, const nn_optim_ops *ops, const void *hyper,
                       size_t hyper_size, double lr) {
    const char *op = ops && ops->name ? ops->name : "nn_optim_new";
    if (!ops || !ops->name || !ops->update || (hyper_size && !hyper))
        nb_fail(op, "need ops with a name and an update, and hyperparameters when hyper_size > 0");
    check_lr(op, lr);
    nn_optim *opt = nb_calloc(sizeof *opt);
    opt->ops = ops;
    opt->lr = lr;
    opt->hyper = nb_calloc(hyper_size ? hyper_size : 1);
    if (hyper_size) memcpy(opt->hyper, hyper, hyper_size);
    opt->nbuf = ops->state_names ? ops->state_names(opt->hyper, opt->buf_names) : 0;
    if (opt->nbuf < 0 || opt->nbuf > NN_OPTIM_MAX_STATE)
        nb_fail(op, "%d state buffers per parameter; at most %d", opt->nbuf, NN_OPTIM_MAX_STATE);
    opt->slots = nb_calloc((size_t)(ps->n ? ps->n : 1) * sizeof *opt->slots);
    for (int i = 0; i < ps->n; i++) {
        if (ps->items[i].buffer) continue; /* running statistics are not trained */
        slot *s = &opt->slots[opt->n++];
        Tensor *p = ps->items[i].t;
        if (!p->kept || !tensor_is_contiguous(p))
            nb_fail(op, "parameter '%s' must be a contiguous kept tensor", ps->items[i].name);
        memcpy(s->name, ps->items[i].name, NN_NAME_MAX);
        s->p = p;
        for (int b = 0; b < opt->nbuf; b++) s->buf[b] = tensor_zeros(p->ndim, p->shape);
        if (ops->init_state) ops->init_state(opt->hyper, p, s->buf);
    }
    return opt;
}

const void *nn_optim_hyper(const nn_optim *opt) {
    return opt->hyper;
}

void nn_optim_free(nn_optim *opt) {
    if (!opt) return;
    for (int i = 0; i < opt->n; i++)
        for (int b = 0; b < opt->nbuf; b++) tensor_free(opt->slots[i].buf[b]);
    nb_free(opt->slots);
    nb_free(opt->hyper);
    nb_free(opt);
}

/* ---- the optimizers: each a table of functions (nn_optim_ops) ----------------------------------
 * In the updates p, grad and the buffers are contiguous arrays of n elements; step counts this
 * update. */

/* SGD, with momentum, dampening, Nesterov and L2 weight decay. */
static int sgd_state_names(const void *hyper, const char **names) {
    const nn_sgd_opts *o = hyper;
    names[SGD_MOMENTUM] = "momentum_buffer";
    return o->momentum != 0;
}

static void sgd_update(const void *hyper, double lr, int64_t step, real *p, const real *grad,
                       real *const *state, int64_t n) {
    const nn_sgd_opts *o = hyper;
    const real wd = (real)o->weight_decay, mom = (real)o->momentum;
    const real keep = (real)(1 - o->dampening), neg_lr = (real)-lr;
    real *buf = o->momentum != 0 ? state[SGD_MOMENTUM] : NULL;
    for (int64_t j = 0; j < n; j++) {
        real d = grad[j];
        if (o->weight_decay != 0) d = d + wd * p[j];
        if (buf) {
            /* the buffer starts as a copy of the first gradient (torch.clone(d_p)) */
            buf[j] = step == 1 ? d : buf[j] * mom + keep * d;
            d = o->nesterov ? d + mom * buf[j] : buf[j];
        }
        p[j] = p[j] + neg_lr * d;
    }
}

static const nn_optim_ops sgd_ops = {"sgd", NN_OPTIM_SGD, sgd_state_names, NULL, sgd_update};

nn_optim *nn_optim_sgd(const nn_params *ps, nn_sgd_opts o) {
    const char *op = "nn_optim_sgd";
    check_lr(op, o.lr);
    check_nonneg(op, "momentum", o.momentum);
    check_nonneg(op, "weight_decay", o.weight_decay);
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
        nb_fail(op, "nesterov needs momentum > 0 and dampening 0 (momentum %g, dampening %g)",
                o.momentum, o.dampening);
    return nn_optim_new(ps, &sgd_ops, &o, sizeof o, o.lr);
}

/* Adam and AdamW: one update, the weight decay L2 (Adam) or decoupled (AdamW). */
static int adam_state_names(const void *hyper, const char **names) {
    const nn_adam_opts *o = hyper;
    names[ADAM_EXP_AVG] = "exp_avg";
    names[ADAM_EXP_AVG_SQ] = "exp_avg_sq";
    names[ADAM_MAX_EXP_AVG_SQ] = "max_exp_avg_sq";
    return o->amsgrad ? 3 : 2;
}

static inline void adam_update(const nn_adam_opts *o, bool decoupled, double lr, int64_t step,
                               real *p, const real *grad, real *const *state, int64_t n) {
    double bc1 = 1 - pow(o->beta1, (double)step);
    double bc2 = 1 - pow(o->beta2, (double)step);
    /* PyTorch divides sqrt(v) by sqrt(bc2); multiplying by its reciprocal differs by at most an
     * ulp and saves a division per element, which is what bounds this loop on one core */
    const real neg_step_size = (real)(-(lr / bc1)), inv_bc2_sqrt = (real)(1 / sqrt(bc2));
    const real b1 = (real)o->beta1, b2 = (real)o->beta2;
    const real one_b1 = (real)(1 - o->beta1), one_b2 = (real)(1 - o->beta2);
    const real eps = (real)o->eps, wd = (real)o->weight_decay;
    const real decay = (real)(1 - lr * o->weight_decay);
    real *m = state[ADAM_EXP_AVG], *v = state[ADAM_EXP_AVG_SQ];
    real *vmax = o->amsgrad ? state[ADAM_MAX_EXP_AVG_SQ] : NULL;
    if (!vmax) {
        /* without amsgrad: no branch that depends on the data, and restrict pointers, so it
         * vectorizes (the decay and L2 choices are the same for every element) */
        const bool l2 = !decoupled && o->weight_decay != 0;
        real *restrict pr = p, *restrict mr = m, *restrict vr = v;
        const real *restrict gr = grad;
        NB_PARALLEL_FOR(n)
        for (int64_t j = 0; j < n; j++) {
            real pj = decoupled ? pr[j] * decay : pr[j]; /* AdamW */
            real g = l2 ? gr[j] + wd * pj : gr[j];       /* Adam: L2 */
            mr[j] = mr[j] * b1 + one_b1 * g;
            vr[j] = vr[j] * b2 + one_b2 * g * g;
            pr[j] = pj + neg_step_size * mr[j] / (NB_REAL_FN(sqrt)(vr[j]) * inv_bc2_sqrt + eps);
        }
        return;
    }
    for (int64_t j = 0; j < n; j++) { /* amsgrad: the same, with the running maximum of v */
        real g = grad[j];
        if (decoupled)
            p[j] = p[j] * decay;
        else if (o->weight_decay != 0)
            g = g + wd * p[j];
        m[j] = m[j] * b1 + one_b1 * g;
        v[j] = v[j] * b2 + one_b2 * g * g;
        if (v[j] > vmax[j]) vmax[j] = v[j];
        p[j] = p[j] + neg_step_size * m[j] / (NB_REAL_FN(sqrt)(vmax[j]) * inv_bc2_sqrt + eps);
    }
}

static void adam_l2_update(const void *hyper, double lr, int64_t step, real *p, const real *grad,
                           real *const *state, int64_t n) {
    adam_update(hyper, false, lr, step, p, grad, state, n);
}

static void adamw_update(const void *hyper, double lr, int64_t step, real *p, const real *grad,
                         real *const *state, int64_t n) {
    adam_update(hyper, true, lr, step, p, grad, state, n);
}

static const nn_optim_ops adam_ops = {"adam", NN_OPTIM_ADAM, adam_state_names, NULL,
                                      adam_l2_update};
static const nn_optim_ops adamw_ops = {"adamw", NN_OPTIM_ADAMW, adam_state_names, NULL,
                                       adamw_update};

static nn_optim *adam_new(const char *op, const nn_params *ps, nn_adam_opts o,
                          const nn_optim_ops *ops) {
    check_lr(op, o.lr);
    check_unit(op, "beta1", o.beta1);
    check_unit(op, "beta2", o.beta2);
    check_nonneg(op, "eps", o.eps);
    check_nonneg(op, "weight_decay", o.weight_decay);
    return nn_optim_new(ps, ops, &o, sizeof o, o.lr);
}

nn_optim *nn_optim_adam(const nn_params *ps, nn_adam_opts o) {
    return adam_new("nn_optim_adam", ps, o, &adam_ops);
}

nn_optim *nn_optim_adamw(const nn_params *ps, nn_adam_opts o) {
    return adam_new("nn_optim_adamw", ps, o, &adamw_ops);
}

/* RMSprop. Buffers: square_avg, then momentum_buffer (with momentum), then grad_avg
 * (centered). */
static int rmsprop_state_names(const void *hyper, const char **names) {
    const nn_rmsprop_opts *o = hyper;
    int n = 0;
    names[n++] = "square_avg";
    if (o->momentum > 0) names[n++] = "momentum_buffer";
    if (o->centered) names[n++] = "grad_avg";
    return n;
}

static void rmsprop_update(const void *hyper, double lr, int64_t step, real *p, const real *grad,
                           real *const *state, int64_t n) {
    (void)step;
    const nn_rmsprop_opts *o = hyper;
    const real alpha = (real)o->alpha, one_alpha = (real)(1 - o->alpha);
    const real eps = (real)o->eps, wd = (real)o->weight_decay, mom = (real)o->momentum;
    const real neg_lr = (real)-lr;
    real *sq = state[RMS_SQUARE_AVG];
    bool has_mom = o->momentum > 0;
    real *buf = has_mom ? state[1] : NULL;
    real *gavg = o->centered ? state[has_mom ? 2 : 1] : NULL;
    for (int64_t j = 0; j < n; j++) {
        real g = grad[j];
        if (o->weight_decay != 0) g = g + wd * p[j];
        sq[j] = sq[j] * alpha + one_alpha * g * g;
        real avg;
        if (gavg) {
            gavg[j] = gavg[j] * alpha + one_alpha * g;
            avg = (real)sqrt(sq[j] + (real)-1 * gavg[j] * gavg[j]);
        } else {
            avg = (real)sqrt(sq[j]);
        }
        avg = avg + eps;
        if (buf) {
            buf[j] = buf[j] * mom + g / avg;
            p[j] = p[j] + neg_lr * buf[j];
        } else {
            p[j] = p[j] + neg_lr * g / avg;
        }
    }
}

static const nn_optim_ops rmsprop_ops = {"rmsprop", NN_OPTIM_RMSPROP, rmsprop_state_names, NULL,
                                         rmsprop_update};

nn_optim *nn_optim_rmsprop(const nn_params *ps, nn_rmsprop_opts o) {
    const char *op = "nn_optim_rmsprop";
    check_lr(op, o.lr);
    check_unit(op, "alpha", o.alpha);
    check_nonneg(op, "eps", o.eps);
    check_nonneg(op, "weight_decay", o.weight_decay);
    check_nonneg(op, "momentum", o.momentum);
    return nn_optim_new(ps, &rmsprop_ops, &o, sizeof o, o.lr);
}

/* ---- stepping, whatever the optimizer -------------------------------------------------------- */

void nn_optim_step(nn_optim *opt) {
    for (int i = 0; i < opt->n; i++) { /* every gradient checked before any parameter moves */
        Tensor *p = opt->slots[i].p, *g = p->grad;
        if (g && (g->numel != p->numel || !tensor_is_contiguous(g)))
            nb_fail("nn_optim_step", "the grad of '%s' is not a contiguous tensor of its shape",
                    opt->slots[i].name);
    }
    for (int i = 0; i < opt->n; i++) {
        slot *s = &opt->slots[i];
        Tensor *p = s->p, *g = p->grad;
        if (!g) continue;
        real *state[NN_OPTIM_MAX_STATE] = {NULL};
        for (int b = 0; b < opt->nbuf; b++) state[b] = s->buf[b]->data;
        s->step++;
        opt->ops->update(opt->hyper, opt->lr, s->step, p->data + p->offset, g->data + g->offset,
                         state, p->numel);
    }
}

void nn_optim_zero_grad(nn_optim *opt) {
    for (int i = 0; i < opt->n; i++) tensor_clear_grad(opt->slots[i].p);
}

void nn_optim_set_lr(nn_optim *opt, double lr) {
    check_lr("nn_optim_set_lr", lr);
    opt->lr = lr;
}

double nn_optim_get_lr(const nn_optim *opt) {
    return opt->lr;
}

nn_optim_kind nn_optim_get_kind(const nn_optim *opt) {
    return opt->ops->kind;
}

const char *nn_optim_name(const nn_optim *opt) {
    return opt->ops->name;
}

const char *nn_optim_kind_name(nn_optim_kind kind) {
    static const char *const names[] = {"sgd", "adam", "adamw", "rmsprop", "custom"};
    return (int)kind >= 0 && (int)kind <= (int)NN_OPTIM_CUSTOM ? names[kind] : "?";
}

int64_t nn_optim_steps(const nn_optim *opt) {
    int64_t most = 0;
    for (int i = 0; i < opt->n; i++)
        if (opt->slots[i].step > most) most = opt->slots[i].step;
    return most;
}

/* ---- state ----------------------------------------------------------------------------------- */

/* Entries run buffer by buffer (all parameters' exp_avg, then all exp_avg_sq, ...), then the
 * step counters. */
int nn_optim_state_count(const nn_optim *opt) {
    return opt->n * (opt->nbuf + 1);
}

nn_optim_state nn_optim_state_at(const nn_optim *opt, int i) {
    if (i < 0 || i >= nn_optim_state_count(opt))
        nb_fail("nn_optim_state_at", "index %d out of range [0, %d)", i, nn_optim_state_count(opt));
    int b = i / opt->n;
    slot *s = &opt->slots[i % opt->n];
    nn_optim_state st = {{0}, NULL, NULL};
    if (b < opt->nbuf) {
        snprintf(st.name, sizeof st.name, "%s.%s", opt->buf_names[b], s->name);
        st.t = s->buf[b];
    } else {
        snprintf(st.name, sizeof st.name, "step.%s", s->name);
        st.count = &s->step;
    }
    return st;
}

/* ---- gradient clipping ----------------------------------------------------------------------- */

double nn_clip_grad_norm(const nn_params *ps, double max_norm, bool *finite) {
    if (!(max_norm >= 0)) nb_fail("nn_clip_grad_norm", "max_norm %g must be >= 0", max_norm);
    double sum = 0;
    for (int i = 0; i < ps->n; i++) {
        const Tensor *g = ps->items[i].t->grad;
        if (!g || ps->items[i].buffer) continue;
        const real *d = g->data + g->offset;
        for (int64_t j = 0; j < g->numel; j++) sum += (double)d[j] * (double)d[j];
    }
    double norm = sqrt(sum);
    bool ok = isfinite(norm);
    if (finite) *finite = ok;
    double coef = max_norm / (norm + 1e-6);
    if (ok && coef < 1) {
        const real c = (real)coef;
        for (int i = 0; i < ps->n; i++) {
            Tensor *g = ps->items[i].t->grad;
            if (!g || ps->items[i].buffer) continue;
            real *d = g->data + g->offset;
            for (int64_t j = 0; j < g->numel; j++) d[j] = d[j] * c;
        }
    }
    return norm;
}

/* ---- learning-rate schedules ----------------------------------------------------------------- */

double nn_lr_step(double base_lr, int64_t epoch, int64_t step_size, double gamma) {
    if (step_size <= 0 || epoch < 0)
        nb_fail("nn_lr_step", "need step_size > 0 and epoch >= 0 (got %lld, %lld)",
                (long long)step_size, (long long)epoch);
    return base_lr * pow(gamma, (double)(epoch / step_size));
}

double nn_lr_cosine(double base_lr, int64_t epoch, int64_t t_max, double eta_min) {
    if (t_max <= 0 || epoch < 0)
        nb_fail("nn_lr_cosine", "need t_max > 0 and epoch >= 0 (got %lld, %lld)", (long long)t_max,
                (long long)epoch);
    const double pi = 3.14159265358979323846;
    return eta_min + (base_lr - eta_min) * (1 + cos(pi * (double)epoch / (double)t_max)) / 2;
}

double nn_lr_linear(double base_lr, int64_t epoch, double start_factor, double end_factor,
                    int64_t total) {
    if (total <= 0 || epoch < 0)
        nb_fail("nn_lr_linear", "need total > 0 and epoch >= 0 (got %lld, %lld)", (long long)total,
                (long long)epoch);
    int64_t e = epoch < total ? epoch : total;
    return base_lr * (start_factor + (end_factor - start_factor) * (double)e / (double)total);
}

double nn_lr_warmup(double lr, int64_t step, int64_t warmup, double start_factor) {
    return nn_lr_linear(lr, step, start_factor, 1.0, warmup);
}
