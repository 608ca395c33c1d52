/* nn/module.h: modules: a forward, named parameters and buffers, a train/eval mode, a free.
 *
 *   // a small CNN, from examples/cnn_digits.c (C1 = 16, C2 = 32, K = 10)
 *   nb_conv2d_opts pad1 = nb_conv2d_defaults();
 *   pad1.padding[0] = pad1.padding[1] = 1;
 *   nn_module *net = nn_sequential(
 *       nn_conv2d(1, C1, 3, 3, pad1, true, &rng), nn_relu_module(), nn_max_pool2d_module(2, 0, 0),
 *       nn_conv2d(C1, C2, 3, 3, pad1, true, &rng), nn_relu_module(), nn_max_pool2d_module(2, 0, 0),
 *       nn_flatten(1, -1), nn_linear_module(C2 * 7 * 7, K, true, &rng), NULL);
 *   nn_params ps = {0};
 *   nn_module_params(net, "net", &ps);    // net.0.weight, net.0.bias, net.3.weight, ...
 *   Tensor *loss =             // x [B, 1, 28, 28] -> logits [count, K]
 *       nn_cross_entropy(nn_forward(net, ag_narrow(x, 0, 0, count)), labels, NN_MEAN);
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
 *    nn_module_params_child on each child. Names follow PyTorch's state_dict, so a checkpoint
 *    written through nn/checkpoint.h loads in PyTorch with load_state_dict. NULL: no parameters.
 *  - train(m, on): optional (NULL: only m->training is set); containers pass it to children.
 *  - free(m): frees what the module owns, children included, and the module itself. NULL: the
 *    module owns nothing else and nb_free(m) frees it (as for one made by nn_module_alloc).
 * A user's own module fills in the same table (tests/test_module.c has one; docs/DESIGN.md).
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
    Tensor *(*forward)(nn_module *m, Tensor *x);                      /* required */
    void (*collect)(nn_module *m, const char *prefix, nn_params *ps); /* NULL: no parameters */
    void (*train)(nn_module *m, bool on); /* NULL: only m->training is set */
    void (*free)(nn_module *m);           /* NULL: nb_free(m) */
} nn_module_ops;

struct nn_module {
    const nn_module_ops *ops;
    bool training; /* true when made; nn_module_train changes it */
};

/* A zeroed module struct of `size` bytes (size >= sizeof(nn_module)) with ops set and training
 * on; for constructors, the library's and a user's. ops must outlive the module. */
void *nn_module_alloc(size_t size, const nn_module_ops *ops);
Tensor *nn_forward(nn_module *m, Tensor *x); /* m->ops->forward(m, x) */
/* m's forward and a ReLU after it as one op (the same values and gradients, one activation fewer
 * kept), or NULL when m has no fused form (today: Conv2d and ConvTranspose2d have one). A
 * Sequential uses it for each child followed by a ReLU. */
Tensor *nn_forward_relu(nn_module *m, Tensor *x);
/* Adds every parameter and buffer of m (and its children) to ps under prefix (NULL or "": none). */
void nn_module_params(nn_module *m, const char *prefix, nn_params *ps);
/* For a container's collect: nn_module_params(child, "prefix.name", ps) ("name" when prefix is
 * NULL or ""); fails when the joined name is longer than NN_NAME_MAX - 1. */
void nn_module_params_child(nn_module *child, const char *prefix, const char *name, nn_params *ps);
void nn_module_train(nn_module *m, bool on); /* true: training mode; false: evaluation mode */
void nn_module_free(nn_module *m);           /* NULL is a no-op */

/* ---- containers ------------------------------------------------------------------------------
 * Sequential: children applied in order (no children: the identity). Children are named "0",
 * "1", ... by position (PyTorch's nn.Sequential), or by the name given to nn_sequential_add
 * (nn.Sequential(OrderedDict)): names are unique, non-empty, without '.'. The container owns
 * its children. Functions other than nn_sequential fail when seq is not a Sequential. */

nn_module *nn_sequential(nn_module *first, ...);             /* NULL-terminated list of children */
void nn_sequential_append(nn_module *seq, nn_module *child); /* named by its position */
void nn_sequential_add(nn_module *seq, const char *name, nn_module *child);
int nn_sequential_len(const nn_module *seq);
nn_module *nn_sequential_at(const nn_module *seq, int i); /* 0 <= i < len; seq still owns it */

/* ---- layers (nn/module.c, nn/module_conv.c, nn/module_norm.c, nn/module_more.c) -------------
 * PyTorch's default initializations, drawn from rng (NULL: the global generator) in PyTorch's
 * order (weight, then bias); state names as PyTorch's state_dict. */

/* Linear: x [..., in] -> [..., out] (nn_linear_forward); "weight" [out, in], "bias" [out]. */
nn_module *nn_linear_module(int64_t in, int64_t out, bool bias, nb_rng *rng);

/* Conv1d: x [N, in, L] -> [N, out, L'] with index 0 of each option; "weight" [out,
 * in/groups, k], "bias" [out]. Init: kaiming_uniform_(a = sqrt(5)), bias U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)), fan_in = in/groups * k. Fails unless groups divides in and out. */
nn_module *nn_conv1d(int64_t in, int64_t out, int k, nb_conv2d_opts o, bool bias, nb_rng *rng);
/* Conv2d: x [N, in, H, W] -> [N, out, H', W']; "weight" [out, in/groups, kh, kw], "bias" [out];
 * init as Conv1d with fan_in = in/groups * kh * kw. */
nn_module *nn_conv2d(int64_t in, int64_t out, int kh, int kw, nb_conv2d_opts o, bool bias,
                     nb_rng *rng);
/* ConvTranspose2d: x [N, in, H, W] -> [N, out, H', W']; "weight" [in, out/groups, kh, kw],
 * "bias" [out]; init as PyTorch computes it from that weight: fan_in = out/groups * kh * kw. */
nn_module *nn_conv_transpose2d(int64_t in, int64_t out, int kh, int kw, nb_conv2d_opts o, bool bias,
                               nb_rng *rng);

/* BatchNorm1d: x [N, C] or [N, C, L]; BatchNorm2d: x [N, C, H, W]. Parameters "weight" (ones)
 * and "bias" (zeros) [C]; buffers "running_mean" (zeros), "running_var" (ones) [C] and
 * "num_batches_tracked" (a scalar, counted in training). Training normalizes with the batch's
 * statistics and updates the running ones with momentum (PyTorch's 0.1 is usual; momentum < 0
 * is PyTorch's momentum=None: a cumulative average, 1 / num_batches_tracked); evaluation uses the
 * running statistics. eps: PyTorch's 1e-5. */
nn_module *nn_batch_norm1d(int64_t C, real eps, real momentum);
nn_module *nn_batch_norm2d(int64_t C, real eps, real momentum);
/* LayerNorm over the last ndim dims, whose sizes are shape[0..ndim): "weight" (ones) and "bias"
 * (zeros) of that shape. */
nn_module *nn_layer_norm(int ndim, const int64_t *shape, real eps);
/* Dropout(p): ag_dropout in training, the identity in evaluation; draws from rng (NULL: the
 * global generator), which must outlive the module. 0 <= p <= 1. */
nn_module *nn_dropout(real p, nb_rng *rng);
/* Embedding: "weight" [V, E] ~ N(0, 1). Forward takes ids, a tensor of any shape whose values are
 * integers in [0, V) (stored as real, e.g. tensor_from_array of 0, 3, 1), and returns ids.shape +
 * [E]; no gradient flows to ids. Fails on a value that is not an integer or out of range. */
nn_module *nn_embedding(int64_t V, int64_t E, nb_rng *rng);

/* ---- activations, pooling, reshaping: no parameters, any shape unless said ------------------ */

/* Any element-wise function as a module; type is the class name reported (e.g. "Softplus"), a
 * string that outlives the module (it is not copied). */
nn_module *nn_activation_module(const char *type, Tensor *(*fn)(Tensor *x));
/* The same for a function of x and one real argument (ELU's alpha, LeakyReLU's slope). */
nn_module *nn_activation_arg_module(const char *type, Tensor *(*fn)(Tensor *x, real a), real arg);
nn_module *nn_relu_module(void);
nn_module *nn_sigmoid_module(void);
nn_module *nn_tanh_module(void);
nn_module *nn_gelu_module(void); /* the exact (erf) GELU */
nn_module *nn_silu_module(void);
nn_module *nn_elu_module(real alpha);        /* PyTorch's default alpha: 1 */
nn_module *nn_leaky_relu_module(real slope); /* PyTorch's default slope: 0.01 */

/* x [N, C, H, W]: ag_max_pool2d / ag_avg_pool2d (stride 0 means stride = k, PyTorch's default),
 * ag_upsample_nearest2d. */
nn_module *nn_max_pool2d_module(int k, int stride, int padding);
nn_module *nn_avg_pool2d_module(int k, int stride, int padding);
nn_module *nn_upsample_nearest2d_module(int scale);

/* Flatten: dims start_dim..end_dim (negative counts from the end) into one, as a reshape
 * (PyTorch's defaults: 1, -1). Unflatten: dim into ndim dims of sizes shape[0..ndim) (one may be
 * -1: inferred); fails at forward when the product does not match. */
nn_module *nn_flatten(int start_dim, int end_dim);
nn_module *nn_unflatten(int dim, int ndim, const int64_t *shape);

#endif
