/* nn/module.h: modules: a forward, named parameters and buffers, a train/eval mode, a free.
 *
 *   // a small CNN, from examples/cnn_digits.c
 *   nb_conv2d_opts o = nb_conv2d_defaults();
 *   o.padding[0] = o.padding[1] = 1;
 *   nn_module *net = nn_sequential(
 *       nn_conv2d(1, 16, 3, 3, o, true, rng), nn_relu_module(), nn_max_pool2d_module(2, 2, 0),
 *       nn_flatten(1, -1), nn_linear_module(16 * 14 * 14, 10, true, rng), NULL);
 *   nn_params ps = {0};
 *   nn_module_params(net, "net", &ps);    // net.0.weight, net.0.bias, net.4.weight, ...
 *   Tensor *logits = nn_forward(net, x);  // x [B, 1, 28, 28] -> [B, 10]
 *   nn_module_train(net, false);          // evaluation mode: dropout off, batch norm running stats
 *   ...
 *   nn_params_free(&ps);
 *   nn_module_free(net);                  // frees the children, their parameters and buffers
 *
 * A module is any struct whose FIRST member is an nn_module, so a pointer to the struct is a
 * pointer to its nn_module. Its ops table says what the module does:
 *  - forward(m, x): x -> y, both step tensors; no backward needed (the ops record it).
 *  - collect(m, prefix, ps): adds the module's parameters (nn_params_add) and buffers
 *    (nn_params_add_buffer) under `prefix` ("encoder.0" -> "encoder.0.weight"); containers call
 *    nn_module_params on each child with "prefix.childname". Names follow PyTorch's state_dict,
 *    so a checkpoint written through nn/checkpoint.h loads in PyTorch with load_state_dict.
 *  - train(m, on): optional (NULL: only m->training is set); containers pass it to children.
 *  - free(m): frees what the module owns, children included, and the module itself.
 * A user's own module fills in the same table (examples/ show one).
 *
 * Ownership: constructors return heap modules; nn_module_free frees one and everything it owns.
 * A container takes ownership of the children given to it. Parameters and buffers are kept
 * tensors owned by their module; an nn_params list only refers to them.
 * Errors: bad sizes go through nb_fail naming the module type and the sizes. */
#ifndef NB_NN_MODULE_H
#define NB_NN_MODULE_H

#include "autograd/autograd.h"
#include "nn/params.h"

typedef struct nn_module nn_module;

typedef struct {
    const char *type; /* PyTorch's class name: "Linear", "Conv2d", "Sequential", ... */
    Tensor *(*forward)(nn_module *m, Tensor *x);
    void (*collect)(nn_module *m, const char *prefix, nn_params *ps);
    void (*train)(nn_module *m, bool on); /* may be NULL */
    void (*free)(nn_module *m);
} nn_module_ops;

struct nn_module {
    const nn_module_ops *ops;
    bool training; /* true when made; nn_module_train changes it */
};

Tensor *nn_forward(nn_module *m, Tensor *x); /* m->ops->forward(m, x) */
/* Adds every parameter and buffer of m (and its children) to ps under prefix (NULL or "": none). */
void nn_module_params(nn_module *m, const char *prefix, nn_params *ps);
void nn_module_train(nn_module *m, bool on); /* true: training mode; false: evaluation mode */
void nn_module_free(nn_module *m);           /* NULL is a no-op */

#endif
