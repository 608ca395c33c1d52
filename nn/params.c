/* nn/params.c: the named parameter list. */
#include "nn/params.h"

#include "autograd/autograd.h"

#include <stdio.h>
#include <string.h>

static void params_add(nn_params *ps, const char *prefix, const char *name, Tensor *t,
                       bool buffer) {
    char full[NN_NAME_MAX];
    int len = (prefix && *prefix) ? snprintf(full, sizeof full, "%s.%s", prefix, name)
                                  : snprintf(full, sizeof full, "%s", name);
    if (len < 0 || len >= NN_NAME_MAX)
        nb_fail("nn_params_add", "parameter name '%s.%s' is longer than %d characters",
                prefix ? prefix : "", name, NN_NAME_MAX - 1);
    if (nn_params_find(ps, full))
        nb_fail("nn_params_add", "parameter '%s' is already listed", full);
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        nn_param *items = nb_malloc((size_t)cap * sizeof *items);
        if (ps->n) memcpy(items, ps->items, (size_t)ps->n * sizeof *items);
        nb_free(ps->items);
        ps->items = items;
        ps->cap = cap;
    }
    memcpy(ps->items[ps->n].name, full, (size_t)len + 1);
    ps->items[ps->n].t = t;
    ps->items[ps->n].buffer = buffer;
    ps->n++;
    if (!buffer) tensor_requires_grad(t, true);
}

void nn_params_add(nn_params *ps, const char *prefix, const char *name, Tensor *t) {
    params_add(ps, prefix, name, t, false);
}

void nn_params_add_buffer(nn_params *ps, const char *prefix, const char *name, Tensor *t) {
    params_add(ps, prefix, name, t, true);
}

Tensor *nn_params_find(const nn_params *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->items[i].name, name) == 0) return ps->items[i].t;
    return NULL;
}

int64_t nn_params_count(const nn_params *ps) {
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++) n += ps->items[i].t->numel;
    return n;
}

void nn_params_zero_grad(const nn_params *ps) {
    for (int i = 0; i < ps->n; i++) tensor_zero_grad(ps->items[i].t);
}

void nn_params_free(nn_params *ps) {
    if (!ps) return;
    nb_free(ps->items);
    ps->items = NULL;
    ps->n = ps->cap = 0;
}
