/* tensor/tensor.h: N-dimensional strided tensors over shared storage.
 *
 *   #include "tensor/tensor.h"
 *
 *   Tensor *a = tensor_arange(0, 6, 1);                  // kept: [0 1 2 3 4 5]
 *   Tensor *m = tensor_from_array(NB_SHAPE(2, 3), (real[]){1, 2, 3, 4, 5, 6});
 *   tensor_print(m, "m");                                // m = tensor([[1, 2, 3], [4, 5, 6]])
 *   tensor_free(a);
 *   tensor_free(m);
 *
 * ---- The ownership model (the one rule) -------------------------------------------------------
 * There are two kinds of tensor, and which one you hold says who frees it:
 *
 *  - KEPT tensors are made by the tensor_* creation functions below (tensor_zeros, tensor_randn,
 *    tensor_from_array, tensor_copy, ...). They live on the heap until the caller frees them with
 *    tensor_free (NULL is a no-op). Parameters, datasets, optimizer state: anything that outlives
 *    a training step. A kept tensor's .grad is owned by the tensor and freed with it.
 *
 *  - STEP tensors are everything an op returns (ag_add, ag_matmul, nn layers, losses, views such
 *    as ag_transpose), plus the constants forward code makes with ag_zeros/ag_full/ag_randn. They
 *    live in the tape's arena and are all released at once by ag_reset() at the end of a step
 *    (or by ag_release(mark) back to a mark). Never free one by hand; never use one after the
 *    reset that released it. A model's forward code therefore frees nothing.
 *
 * Using a released step tensor is caught: every op checks its inputs and fails with
 * "nabla: <op>: step tensor used after ag_reset (made at model.c:42)" (tensor_check_live). A step
 * tensor's header is not reused by the next step, so a pointer kept from the previous step (or
 * from before an ag_release) still finds its own header, stamped as released.
 *
 * The arena keeps its memory across resets, so after the first step a training loop that records
 * the same ops each step allocates nothing and its memory stays flat (tests/test_autograd.c).
 *
 * ---- Layout -----------------------------------------------------------------------------------
 * Element (i0, ..., i{n-1}) lives at data[offset + i0*strides[0] + ... ]; strides count elements
 * and may be 0 (a broadcast made by expand). Views share `data` and differ in shape, strides and
 * offset. A tensor with ndim 0 is a scalar with one element. At most NB_MAX_DIMS dimensions.
 *
 * Programmer errors (bad shapes, dims out of range) are reported with nb_fail (tensor/base.h). */
#ifndef NB_TENSOR_H
#define NB_TENSOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tensor/base.h"
#include "tensor/rng.h"

#define NB_MAX_DIMS 8

/* NB_SHAPE(2, 3) expands to the (ndim, shape) argument pair `2, (int64_t[]){2, 3}`. */
#define NB_SHAPE(...)                                                                              \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]) {                       \
        __VA_ARGS__                                                                                \
    }

typedef struct Tensor Tensor;

/* Adds this node's gradient (out->grad) into its parents' gradients; see autograd/autograd.h. */
typedef void (*ag_backward_fn)(Tensor *out);

struct Tensor {
    /* layout */
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t strides[NB_MAX_DIMS]; /* in elements; 0 on broadcast dims */
    int64_t offset;               /* element offset of index (0, ..., 0) in data */
    int64_t numel;                /* product of shape (1 for a scalar) */
    real *data;                   /* storage, shared with every view of it */

    /* ownership */
    bool kept;      /* true: heap, freed by tensor_free; false: step tensor on the tape */
    bool owns_data; /* kept tensors: data is freed with the tensor */

    /* autograd (autograd/): filled in by ops while grad mode is on */
    bool requires_grad; /* leaves: set by tensor_requires_grad; ops: any input requires it */
    Tensor *grad;       /* d(loss)/d(this): contiguous, same shape; NULL until backward */
    Tensor *grad_spare; /* kept tensors: a cleared gradient's buffer, reused by the next */
    const char *op;     /* the op that made this tensor; NULL for a leaf */
    const char *name;   /* optional label for printing and graph drawing */
    ag_backward_fn backward;
    Tensor **parents; /* [nparents] the op's inputs */
    int nparents;
    int64_t tape_index;            /* position on the tape (step tensors), -1 for kept tensors */
    real sarg[2];                  /* the op's scalar arguments (pow exponent, clamp bounds, ...) */
    int64_t iarg[NB_MAX_DIMS + 2]; /* the op's integer arguments (dims, sizes, ...) */
    void *saved;                   /* anything else backward needs (arena memory) */

    /* step tensors: which step made them, and where (see tensor_check_live) */
    uint64_t stamp;        /* 0: not a step tensor's header; else its serial number from the pool */
    const char *made_file; /* the user's call that made it (tensor/base.h, NB_AT), or NULL */
    int made_line;
};

/* ---- kept tensors: creation (caller frees with tensor_free) --------------------------------- */

Tensor *tensor_empty(int ndim, const int64_t *shape); /* uninitialised, contiguous */
Tensor *tensor_zeros(int ndim, const int64_t *shape);
Tensor *tensor_ones(int ndim, const int64_t *shape);
Tensor *tensor_full(int ndim, const int64_t *shape, real value);
Tensor *tensor_arange(real start, real stop, real step); /* 1-D, like numpy.arange */
Tensor *tensor_from_array(int ndim, const int64_t *shape, const real *values); /* copies */
Tensor *tensor_scalar(real value);                                             /* ndim 0 */
Tensor *tensor_copy(const Tensor *t); /* contiguous copy of data only: no grad, no graph */
Tensor *tensor_rand(int ndim, const int64_t *shape, nb_rng *rng);  /* U[0,1); rng NULL: global */
Tensor *tensor_randn(int ndim, const int64_t *shape, nb_rng *rng); /* N(0,1); rng NULL: global */
void tensor_free(Tensor *t); /* kept tensors only; NULL is a no-op; frees .grad too */

/* ---- step tensors (tape arena; released by ag_reset) ----------------------------------------- */

/* Uninitialised contiguous step tensor. Ops use it for their outputs; forward code normally uses
 * ag_zeros/ag_full/ag_randn (autograd/autograd.h) instead. */
Tensor *tensor_step(int ndim, const int64_t *shape);

/* ---- element access -------------------------------------------------------------------------- */

real *tensor_ptr(const Tensor *t, const int64_t *index); /* address of element `index` */
real tensor_get(const Tensor *t, const int64_t *index);
void tensor_set(Tensor *t, const int64_t *index, real value);
real tensor_item(const Tensor *t); /* the value of a one-element tensor; fails otherwise */
bool tensor_is_contiguous(const Tensor *t);
bool tensor_same_shape(const Tensor *a, const Tensor *b);
void tensor_fill(Tensor *t, real value);               /* every element, through strides */
void tensor_copy_into(Tensor *dst, const Tensor *src); /* same shape (src may broadcast) */
void tensor_to_array(const Tensor *t, real *out);      /* row-major copy of numel values */

/* ---- printing -------------------------------------------------------------------------------- */

/* NumPy-like nested brackets; tensors over 1000 elements show 3 items at each edge and "...". */
void tensor_fprint(FILE *f, const Tensor *t, const char *label);
void tensor_print(const Tensor *t, const char *label); /* to stdout */

/* ---- layout algebra (no data moves; used by the view ops in autograd/ops_view.c) -------------
 * Each fills *out with a view of `t` (same data) and reports errors through nb_fail with `op`.
 * *out receives only layout fields; autograd fields are left for the caller to set. */
void tensor_layout_contiguous(Tensor *t, int ndim, const int64_t *shape); /* sets shape+strides */
bool tensor_layout_reshape(const Tensor *t, int ndim, const int64_t *shape, Tensor *out);
void tensor_layout_permute(const Tensor *t, const int *dims, Tensor *out);
void tensor_layout_transpose(const Tensor *t, int d0, int d1, Tensor *out);
void tensor_layout_narrow(const Tensor *t, int dim, int64_t start, int64_t length, Tensor *out);
void tensor_layout_expand(const Tensor *t, int ndim, const int64_t *shape, Tensor *out);
void tensor_layout_squeeze(const Tensor *t, int dim, Tensor *out);   /* dim of size 1 */
void tensor_layout_unsqueeze(const Tensor *t, int dim, Tensor *out); /* 0 <= dim <= ndim */

/* Resolves a possibly negative dim against ndim (-1 is the last); fails if out of range. */
int tensor_dim(const char *op, const Tensor *t, int dim);

/* Broadcast shape of a and b (NumPy rules) into out_shape; returns its ndim; fails with `op`. */
int tensor_broadcast_shape(const char *op, const Tensor *a, const Tensor *b, int64_t *out_shape);

/* ---- the arena behind step tensors (autograd/ uses these; most code never calls them) ------- */

void *arena_alloc(size_t bytes); /* 64-byte aligned, released by arena_release/arena_reset */
typedef struct {
    int block;
    size_t used;
    unsigned generation;  /* arena_reset() count when the mark was taken */
    uint64_t serial;      /* the last header stamp given out */
    int64_t header_steps; /* how far the header pool's head had gone */
    int header_blocks;    /* the header pool's blocks */
} arena_mark_t;
arena_mark_t arena_mark(void);
void arena_release(arena_mark_t m); /* fails (nb_fail) on a mark from before the last reset */
void arena_reset(void);             /* release everything; blocks are kept for the next step */
void arena_free_all(void);          /* give the memory back (end of program, leak checks) */

/* A zeroed header for a step tensor, stamped live and with the current call site (tensor/base.h).
 * Every step tensor's header comes from here (tensor_step does it; a view op that builds its
 * own header calls this rather than arena_alloc), so a released one can be recognised. */
Tensor *arena_header(void);

/* Fails with "<op>: step tensor used after ag_reset (made at file:line)" (or "made by <op>" when
 * no call site was known) if t is a step tensor that ag_reset or ag_release has released. Kept
 * tensors, live step tensors and NULL pass. ag_record, tensor_broadcast_shape, tensor_dim, the
 * tensor_layout_* functions and element access call it, so an op that goes through any of them
 * is covered; one that reads an input by other means calls it first. */
void tensor_check_live(const char *op, const Tensor *t);

#endif
