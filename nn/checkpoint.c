/* nn/checkpoint.c: parameters, optimizer state and metadata in one safetensors file. */
#include "nn/checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPTIM_PREFIX  "optim."
#define KEY_KIND      "optim.kind"
#define KEY_LR        "optim.lr"
#define FILE_NAME_MAX (NN_OPTIM_NAME_MAX + 8) /* "optim." + a state name */

static nn_ckpt_status fail(nn_ckpt_error *err, nn_ckpt_status code, st_status st, const char *fmt,
                           ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static nn_ckpt_status fail(nn_ckpt_error *err, nn_ckpt_status code, st_status st, const char *fmt,
                           ...) {
    if (err) {
        err->code = code;
        err->st = st;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

static nn_ckpt_status ok(nn_ckpt_error *err) {
    if (err) {
        err->code = NN_CKPT_OK;
        err->st = ST_OK;
        err->message[0] = '\0';
    }
    return NN_CKPT_OK;
}

const char *nn_ckpt_strerror(nn_ckpt_status code) {
    switch (code) {
    case NN_CKPT_OK:
        return "ok";
    case NN_CKPT_ARG:
        return "bad argument";
    case NN_CKPT_FILE:
        return "checkpoint file unreadable or unwritable";
    case NN_CKPT_MISSING:
        return "tensor missing from the checkpoint";
    case NN_CKPT_SHAPE:
        return "tensor shape differs from the model's";
    case NN_CKPT_DTYPE:
        return "tensor dtype cannot be read";
    case NN_CKPT_UNEXPECTED:
        return "checkpoint holds a tensor the model does not have";
    case NN_CKPT_OPTIM:
        return "optimizer state absent or of another kind";
    }
    return "unknown status";
}

static bool has_prefix(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void require_contiguous(const char *op, const char *name, const Tensor *t) {
    if (!tensor_is_contiguous(t)) nb_fail(op, "tensor '%s' is not contiguous", name);
}

/* ---- saving ---------------------------------------------------------------------------------- */

/* Points ts at t's values as F32: t's own data when real is float, else a converted copy taken
 * from *pool (which advances). */
static void put_real(st_tensor *ts, const char *name, const Tensor *t, float **pool) {
    ts->name = name;
    ts->dtype = ST_F32;
    ts->ndim = t->ndim;
    ts->shape = t->shape;
#ifdef NB_DOUBLE
    float *dst = *pool;
    for (int64_t j = 0; j < t->numel; j++) dst[j] = (float)t->data[t->offset + j];
    ts->data = dst;
    *pool += t->numel;
#else
    (void)pool;
    ts->data = t->data + t->offset;
#endif
}

nn_ckpt_status nn_checkpoint_save(const char *path, const nn_params *ps, const nn_optim *opt,
                                  const nn_meta *meta, int nmeta, nn_ckpt_error *err) {
    if (!path || !ps || nmeta < 0 || (nmeta > 0 && !meta))
        return fail(err, NN_CKPT_ARG, ST_OK, "nn_checkpoint_save: NULL or bad argument");
    for (int i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value)
            return fail(err, NN_CKPT_ARG, ST_OK, "%s: metadata pair %d has a NULL key or value",
                        path, i);
        if (has_prefix(meta[i].key, OPTIM_PREFIX))
            return fail(err, NN_CKPT_ARG, ST_OK, "%s: metadata key '%s' is reserved (optim.*)",
                        path, meta[i].key);
    }
    int nstate = opt ? nn_optim_state_count(opt) : 0;
    int n = ps->n + nstate;
    int64_t nreal = 0; /* elements that go through the F32 pool */
    for (int i = 0; i < ps->n; i++) {
        require_contiguous("nn_checkpoint_save", ps->items[i].name, ps->items[i].t);
        nreal += ps->items[i].t->numel;
    }
    for (int i = 0; i < nstate; i++) {
        nn_optim_state s = nn_optim_state_at(opt, i);
        if (s.t) nreal += s.t->numel;
    }
#ifndef NB_DOUBLE
    nreal = 0; /* float data is written from the tensors themselves */
#endif
    st_tensor *ts = nb_calloc((size_t)(n ? n : 1) * sizeof *ts);
    char(*names)[FILE_NAME_MAX] = nb_malloc((size_t)(nstate ? nstate : 1) * sizeof *names);
    float *pool = nb_malloc((size_t)(nreal ? nreal : 1) * sizeof(float)), *next = pool;
    st_meta *sm = nb_malloc((size_t)(nmeta + 2) * sizeof *sm);

    for (int i = 0; i < ps->n; i++) put_real(&ts[i], ps->items[i].name, ps->items[i].t, &next);
    for (int i = 0; i < nstate; i++) {
        nn_optim_state s = nn_optim_state_at(opt, i);
        snprintf(names[i], FILE_NAME_MAX, OPTIM_PREFIX "%s", s.name);
        st_tensor *t = &ts[ps->n + i];
        if (s.t) {
            put_real(t, names[i], s.t, &next);
        } else { /* a step counter: an I64 scalar */
            *t = (st_tensor){.name = names[i], .dtype = ST_I64, .ndim = 0, .data = s.count};
        }
    }
    for (int i = 0; i < nmeta; i++) sm[i] = (st_meta){meta[i].key, meta[i].value};
    char lr[32];
    int nm = nmeta;
    if (opt) {
        snprintf(lr, sizeof lr, "%.17g", nn_optim_get_lr(opt));
        sm[nm++] = (st_meta){KEY_KIND, nn_optim_name(opt)};
        sm[nm++] = (st_meta){KEY_LR, lr};
    }

    st_error se;
    st_status st = st_save(path, ts, n, sm, nm, &se);
    nb_free(sm);
    nb_free(pool);
    nb_free(names);
    nb_free(ts);
    if (st != ST_OK)
        return fail(err, st == ST_ERR_ARG ? NN_CKPT_ARG : NN_CKPT_FILE, st, "%s", se.message);
    return ok(err);
}

/* ---- metadata -------------------------------------------------------------------------------- */

struct nn_checkpoint_meta {
    int n;
    nn_meta *pairs; /* [n], pointing into text */
    char *text;     /* the keys and values, NUL-terminated, back to back */
};

static nn_checkpoint_meta *meta_copy(const st_file *f) {
    int n = st_meta_count(f);
    size_t bytes = 1;
    for (int i = 0; i < n; i++) {
        st_meta m = st_meta_at(f, i);
        bytes += strlen(m.key) + strlen(m.value) + 2;
    }
    nn_checkpoint_meta *m = nb_malloc(sizeof *m);
    m->n = n;
    m->pairs = nb_malloc((size_t)(n ? n : 1) * sizeof *m->pairs);
    m->text = nb_malloc(bytes);
    char *p = m->text;
    for (int i = 0; i < n; i++) {
        st_meta s = st_meta_at(f, i);
        size_t k = strlen(s.key) + 1, v = strlen(s.value) + 1;
        memcpy(p, s.key, k);
        memcpy(p + k, s.value, v);
        m->pairs[i] = (nn_meta){p, p + k};
        p += k + v;
    }
    return m;
}

const char *nn_checkpoint_meta_get(const nn_checkpoint_meta *m, const char *key) {
    if (!m || !key) return NULL;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->pairs[i].key, key) == 0) return m->pairs[i].value;
    return NULL;
}

int nn_checkpoint_meta_count(const nn_checkpoint_meta *m) {
    return m ? m->n : 0;
}

nn_meta nn_checkpoint_meta_at(const nn_checkpoint_meta *m, int i) {
    if (!m || i < 0 || i >= m->n) return (nn_meta){NULL, NULL};
    return m->pairs[i];
}

void nn_checkpoint_meta_free(nn_checkpoint_meta *m) {
    if (!m) return;
    nb_free(m->pairs);
    nb_free(m->text);
    nb_free(m);
}

/* ---- loading --------------------------------------------------------------------------------- */

static nn_ckpt_status open_file(const char *path, st_file **f, nn_ckpt_error *err) {
    if (!path) return fail(err, NN_CKPT_ARG, ST_OK, "nn_checkpoint_load: NULL path");
    st_error se;
    st_status st = st_open(path, f, &se);
    if (st != ST_OK) return fail(err, NN_CKPT_FILE, st, "%s", se.message);
    return NN_CKPT_OK;
}

/* Checks that tensor `name` is in f as F32 or F64 (or, for a buffer, I64) with t's shape. */
static nn_ckpt_status check_real(const char *path, const st_file *f, const char *name,
                                 const Tensor *t, bool buffer, nn_ckpt_error *err) {
    const st_tensor *s = st_find(f, name);
    if (!s) return fail(err, NN_CKPT_MISSING, ST_OK, "%s: tensor '%s' is missing", path, name);
    if (s->dtype != ST_F32 && s->dtype != ST_F64 && !(buffer && s->dtype == ST_I64))
        return fail(err, NN_CKPT_DTYPE, ST_OK,
                    "%s: tensor '%s' has dtype %s, expected F32 or F64%s", path, name,
                    st_dtype_name(s->dtype), buffer ? " or I64" : "");
    bool same = s->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == t->shape[d];
    if (!same) {
        char a[128], b[128];
        return fail(err, NN_CKPT_SHAPE, ST_OK,
                    "%s: tensor '%s' has shape %s in the file, the model expects %s", path, name,
                    nb_shape_str(a, s->ndim, s->shape), nb_shape_str(b, t->ndim, t->shape));
    }
    return NN_CKPT_OK;
}

/* Checks the optimizer's kind, lr and every state entry; reads the lr into *lr and the step
 * counters (state entries whose t is NULL, in state order) into steps. */
static nn_ckpt_status check_optim(const char *path, const st_file *f, const nn_optim *opt,
                                  double *lr, int64_t *steps, nn_ckpt_error *err) {
    const char *kind = st_meta_get(f, KEY_KIND);
    const char *want = nn_optim_name(opt);
    if (!kind) return fail(err, NN_CKPT_OPTIM, ST_OK, "%s: holds no optimizer state", path);
    if (strcmp(kind, want) != 0)
        return fail(err, NN_CKPT_OPTIM, ST_OK,
                    "%s: optimizer state is '%.40s', the optimizer is '%s'", path, kind, want);
    const char *lr_text = st_meta_get(f, KEY_LR);
    char *end = NULL;
    errno = 0;
    *lr = lr_text ? strtod(lr_text, &end) : -1;
    if (!lr_text || end == lr_text || *end != '\0' || errno || !isfinite(*lr) || *lr < 0)
        return fail(err, NN_CKPT_OPTIM, ST_OK,
                    "%s: metadata '%s' is missing or not a learning rate", path, KEY_LR);
    int nsteps = 0;
    for (int i = 0; i < nn_optim_state_count(opt); i++) {
        nn_optim_state s = nn_optim_state_at(opt, i);
        char name[FILE_NAME_MAX];
        snprintf(name, sizeof name, OPTIM_PREFIX "%s", s.name);
        if (s.t) {
            nn_ckpt_status c = check_real(path, f, name, s.t, false, err);
            if (c != NN_CKPT_OK) return c;
            continue;
        }
        const st_tensor *t = st_find(f, name);
        if (!t) return fail(err, NN_CKPT_MISSING, ST_OK, "%s: tensor '%s' is missing", path, name);
        if (t->dtype != ST_I64 || t->ndim != 0)
            return fail(err, NN_CKPT_DTYPE, ST_OK,
                        "%s: tensor '%s' must be an I64 scalar (it is %s with %d dims)", path, name,
                        st_dtype_name(t->dtype), t->ndim);
        st_error se;
        int64_t v;
        st_status st = st_read_i64(f, name, &v, 0, NULL, &se);
        if (st != ST_OK) return fail(err, NN_CKPT_DTYPE, st, "%s", se.message);
        if (v < 0)
            return fail(err, NN_CKPT_OPTIM, ST_OK, "%s: tensor '%s': step count %lld is negative",
                        path, name, (long long)v);
        steps[nsteps++] = v;
    }
    return NN_CKPT_OK;
}

/* Checks that every tensor in f is a parameter or (with an optimizer) a state entry. */
static nn_ckpt_status check_unexpected(const char *path, const st_file *f, const nn_params *ps,
                                       const nn_optim *opt, nn_ckpt_error *err) {
    for (int i = 0; i < st_count(f); i++) {
        const char *name = st_get(f, i)->name;
        bool known;
        if (has_prefix(name, OPTIM_PREFIX)) {
            known = !opt; /* without an optimizer its entries are ignored */
            for (int k = 0; !known && k < nn_optim_state_count(opt); k++)
                known = strcmp(name + strlen(OPTIM_PREFIX), nn_optim_state_at(opt, k).name) == 0;
        } else {
            known = nn_params_find(ps, name) != NULL;
        }
        if (!known)
            return fail(err, NN_CKPT_UNEXPECTED, ST_OK, "%s: tensor '%s' is not in the %s", path,
                        name, has_prefix(name, OPTIM_PREFIX) ? "optimizer's state" : "model");
    }
    return NN_CKPT_OK;
}

/* Copies a checked tensor into t (cannot fail after check_real); an I64 buffer (PyTorch's
 * num_batches_tracked) is converted. */
static void copy_real(const st_file *f, const char *name, Tensor *t) {
    st_error se;
    real *dst = t->data + t->offset;
    st_status c;
    if (st_find(f, name)->dtype == ST_I64) {
        int64_t *v = nb_malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
        c = st_read_i64(f, name, v, t->ndim, t->shape, &se);
        for (int64_t i = 0; c == ST_OK && i < t->numel; i++) dst[i] = (real)v[i];
        nb_free(v);
    } else {
        c = st_read_real(f, name, dst, t->ndim, t->shape, &se);
    }
    if (c != ST_OK) nb_fail("nn_checkpoint_load", "%s", se.message); /* unreachable */
}

nn_ckpt_status nn_checkpoint_load(const char *path, nn_params *ps, nn_optim *opt,
                                  nn_checkpoint_meta **meta, nn_ckpt_error *err) {
    if (meta) *meta = NULL;
    if (!ps) return fail(err, NN_CKPT_ARG, ST_OK, "nn_checkpoint_load: NULL parameter list");
    st_file *f;
    nn_ckpt_status c = open_file(path, &f, err);
    if (c != NN_CKPT_OK) return c;

    /* check everything first */
    int64_t *steps = NULL;
    double lr = 0;
    for (int i = 0; c == NN_CKPT_OK && i < ps->n; i++) {
        require_contiguous("nn_checkpoint_load", ps->items[i].name, ps->items[i].t);
        c = check_real(path, f, ps->items[i].name, ps->items[i].t, ps->items[i].buffer, err);
    }
    if (c == NN_CKPT_OK && opt) {
        steps = nb_malloc((size_t)(nn_optim_state_count(opt) + 1) * sizeof *steps);
        c = check_optim(path, f, opt, &lr, steps, err);
    }
    if (c == NN_CKPT_OK) c = check_unexpected(path, f, ps, opt, err);

    /* then copy */
    if (c == NN_CKPT_OK) {
        for (int i = 0; i < ps->n; i++) copy_real(f, ps->items[i].name, ps->items[i].t);
        if (opt) {
            int nsteps = 0;
            for (int i = 0; i < nn_optim_state_count(opt); i++) {
                nn_optim_state s = nn_optim_state_at(opt, i);
                char name[FILE_NAME_MAX];
                snprintf(name, sizeof name, OPTIM_PREFIX "%s", s.name);
                if (s.t)
                    copy_real(f, name, s.t);
                else
                    *s.count = steps[nsteps++];
            }
            nn_optim_set_lr(opt, lr);
        }
        if (meta) *meta = meta_copy(f);
        ok(err);
    }
    nb_free(steps);
    st_close(f);
    return c;
}

nn_ckpt_status nn_checkpoint_read_meta(const char *path, nn_checkpoint_meta **meta,
                                       nn_ckpt_error *err) {
    if (!meta) return fail(err, NN_CKPT_ARG, ST_OK, "nn_checkpoint_read_meta: NULL meta");
    *meta = NULL;
    st_file *f;
    nn_ckpt_status c = open_file(path, &f, err);
    if (c != NN_CKPT_OK) return c;
    *meta = meta_copy(f);
    st_close(f);
    return ok(err);
}
