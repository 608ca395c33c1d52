/* nn/params.h: a model's parameters as a flat list of (hierarchical name, kept tensor).
 *
 *   nn_params ps = {0};
 *   nn_linear_params(&enc_fc1, "encoder.fc1", &ps);   // adds encoder.fc1.weight, .bias
 *   nn_params_zero_grad(&ps);
 *   ...
 *   nn_params_free(&ps);                               // the list only; tensors stay the model's
 *
 * Optimizers, gradient clipping and checkpoints take an nn_params, so they work for any model
 * without model-specific code. The list refers to tensors; it never owns them. */
#ifndef NB_NN_PARAMS_H
#define NB_NN_PARAMS_H

#include "tensor/tensor.h"

#define NN_NAME_MAX 96

typedef struct {
    char name[NN_NAME_MAX]; /* "encoder.fc1.weight" */
    Tensor *t;              /* kept tensor, requires_grad (parameters) */
    bool buffer;            /* true: state saved with the model but not trained (batch norm's
                               running statistics); optimizers and clipping skip it */
} nn_param;

typedef struct {
    nn_param *items; /* [n] in the order added */
    int n, cap;
} nn_params;

/* Appends prefix + "." + name (or just name when prefix is NULL or ""); fails (nb_fail) on a
 * duplicate or too-long name. Marks t as requiring grad. */
void nn_params_add(nn_params *ps, const char *prefix, const char *name, Tensor *t);
/* The same for a buffer: listed and saved with the model, not marked requires_grad. */
void nn_params_add_buffer(nn_params *ps, const char *prefix, const char *name, Tensor *t);
Tensor *nn_params_find(const nn_params *ps, const char *name); /* NULL if absent */
int64_t nn_params_count(const nn_params *ps);                  /* total elements */
/* Fills every existing .grad with zeros (tensor_zero_grad), unlike nn_optim_zero_grad, which
 * sets them to NULL as PyTorch's set_to_none does: a zero gradient still moves Adam's state. */
void nn_params_zero_grad(const nn_params *ps);
void nn_params_free(nn_params *ps); /* frees the list, not the tensors; NULL-safe */

#endif
