/* nn/checkpoint.h: save and restore a model's parameters, its optimizer's state and the caller's
 * metadata in one safetensors file (nn/safetensors.h).
 *
 *   // from examples/spirals.c
 *   nn_meta meta[] = {{"model", "mlp 2-H-H-2 relu"},
 *                     {"hidden", hidden},
 *                     {"step", steps},
 *                     ...
 *   nn_ckpt_error err;
 *   if (nn_checkpoint_save(path, &m.ps, opt, meta, 5, &err) != NN_CKPT_OK) {
 *       fprintf(stderr, "spirals: %s\n", err.message);
 *       ...
 *   nn_checkpoint_meta *meta;   // the config first, to build the model
 *   if (nn_checkpoint_read_meta(path, &meta, &err) != NN_CKPT_OK) {
 *       ...
 *   int64_t hidden = parse_hidden(nn_checkpoint_meta_get(meta, "hidden"));   // NULL when absent
 *   nn_checkpoint_meta_free(meta);
 *   ...
 *   if (nn_checkpoint_load(path, &m.ps, NULL, &meta, &err) != NN_CKPT_OK) {
 *       ...
 *   nn_checkpoint_meta_free(meta);
 *
 * The file: each parameter under its name ("encoder.fc1.weight") as F32 (converted from double
 * when real is double); with an optimizer, each state buffer under "optim." + its state name
 * ("optim.exp_avg.encoder.fc1.weight", F32) and each step counter as an I64 scalar
 * ("optim.step.encoder.fc1.weight"), plus the metadata keys "optim.kind" (nn_optim_name: "adam")
 * and "optim.lr" (%.17g). The caller's metadata (model config, epoch, step, rng state, ...) is
 * stored as given; keys starting with "optim." are reserved. The write is atomic: a crash
 * leaves the old file or the new one, never half of one.
 *
 * Loading is strict, like PyTorch's load_state_dict(strict=True): every parameter and (when an
 * optimizer is given) every state entry must be present with the same shape, the optimizer's
 * kind must match, and a tensor the model does not expect is an error (the "optim." entries are
 * ignored when no optimizer is given). Values may be F32 or F64 in the file, and a buffer's also
 * I64 (PyTorch's num_batches_tracked), converted to real. Buffers (nn_params_add_buffer) are saved
 * and loaded as parameters are. Everything is checked before anything is copied, so on
 * any error the model and the optimizer are left exactly as they were. Errors from the file or
 * its contents come back as a status and a message naming the path, the tensor and the shapes;
 * they never abort. */
#ifndef NB_NN_CHECKPOINT_H
#define NB_NN_CHECKPOINT_H

#include "nn/optim.h"
#include "nn/params.h"
#include "nn/safetensors.h"

typedef enum {
    NN_CKPT_OK = 0,
    NN_CKPT_ARG,        /* bad argument (NULL path, reserved or duplicate metadata key, ...) */
    NN_CKPT_FILE,       /* the file could not be written, read or parsed; .st has the detail */
    NN_CKPT_MISSING,    /* a parameter or optimizer state tensor is not in the file */
    NN_CKPT_SHAPE,      /* a tensor's shape in the file differs from the model's */
    NN_CKPT_DTYPE,      /* a tensor's dtype cannot be read (not F32/F64, or a step not I64) */
    NN_CKPT_UNEXPECTED, /* the file holds a tensor the model does not have */
    NN_CKPT_OPTIM,      /* optimizer state absent, of another kind, or a bad lr or step count */
} nn_ckpt_status;

typedef struct {
    nn_ckpt_status code;
    st_status st;      /* the safetensors status behind NN_CKPT_FILE, else ST_OK */
    char message[640]; /* "<path>: <tensor>: <problem>" */
} nn_ckpt_error;

/* One metadata pair: UTF-8 strings without NUL. */
typedef struct {
    const char *key;
    const char *value;
} nn_meta;

/* Writes ps (and opt's state when opt is not NULL) and the nmeta pairs to path, atomically.
 * Returns NN_CKPT_OK, NN_CKPT_ARG (nothing written) or NN_CKPT_FILE; err may be NULL. */
nn_ckpt_status nn_checkpoint_save(const char *path, const nn_params *ps, const nn_optim *opt,
                                  const nn_meta *meta, int nmeta, nn_ckpt_error *err);

/* The metadata of a loaded checkpoint: a copy, owned by the caller. */
typedef struct nn_checkpoint_meta nn_checkpoint_meta;

/* Reads path and copies its parameters into ps (and its optimizer state into opt when opt is
 * not NULL) after checking all of them (see top). On NN_CKPT_OK, if meta is not NULL, *meta
 * receives the file's metadata (free with nn_checkpoint_meta_free); on error *meta is NULL and
 * nothing was modified. err may be NULL. */
nn_ckpt_status nn_checkpoint_load(const char *path, nn_params *ps, nn_optim *opt,
                                  nn_checkpoint_meta **meta, nn_ckpt_error *err);

/* Reads only the metadata of path (to learn a model's configuration before building it).
 * Same statuses as loading the file; *meta is NULL on error. */
nn_ckpt_status nn_checkpoint_read_meta(const char *path, nn_checkpoint_meta **meta,
                                       nn_ckpt_error *err);

/* The value for key, or NULL when absent (or m is NULL); valid until nn_checkpoint_meta_free. */
const char *nn_checkpoint_meta_get(const nn_checkpoint_meta *m, const char *key);
int nn_checkpoint_meta_count(const nn_checkpoint_meta *m);
nn_meta nn_checkpoint_meta_at(const nn_checkpoint_meta *m, int i); /* {NULL, NULL} out of range */
void nn_checkpoint_meta_free(nn_checkpoint_meta *m);               /* NULL is a no-op */

/* A short constant description of a status; never NULL. */
const char *nn_ckpt_strerror(nn_ckpt_status code);

#endif
