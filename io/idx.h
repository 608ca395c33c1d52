/* io/idx.h: MNIST-style IDX datasets (raw or gzip-compressed), checked byte by byte.
 *
 *   idx_dataset train;
 *   char err[256];
 *   if (idx_load_split("data/digits", 1, 10, &train, err, sizeof err) != IDX_OK) {
 *       fprintf(stderr, "%s\n", err);          // "data/digits/train-labels-idx1-ubyte.gz: ..."
 *       return 1;
 *   }
 *   nn_batches it;                                         // nn/data.h: shuffled batches
 *   nn_batches_init(&it, train.n, 128, true, false, 1);
 *   while (nn_batches_next(&it))
 *       idx_batch(&train, it.index, it.count, x, labels);  // x: [count, 784] in [0, 1]
 *   nn_batches_free(&it);
 *   idx_free(&train);
 *
 * The format (big-endian): two zero bytes, a type byte (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32,
 * 0x0D f32, 0x0E f64), a byte with the number of dims, one u32 per dim, then the payload. Images
 * are u8 with 3 dims (n, rows, cols); labels are u8 with 1 dim (n). A file is read as gzip when
 * it starts with 0x1F 0x8B, whatever its name. Every damage a file can have gets its own
 * status code and a message naming the file and the problem; nothing is allocated from a header
 * value before the data proves it (the payload, raw or decompressed, is read in chunks that start
 * at 1 MiB and double, capped at what the header implies; anything past that is an error).
 * Images stay u8 in memory; idx_batch turns a batch into reals. The example above is compiled
 * and run by test_header_example in tests/test_idx.c.
 *
 * Memory comes from nb_malloc (tensor/base.h). On failure nothing is left allocated and the
 * outputs are zeroed. `err` may be NULL; messages are cut to `errlen` bytes. Needs zlib (-lz). */
#ifndef NB_IDX_H
#define NB_IDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/base.h"
#include "tensor/rng.h"

typedef enum {
    IDX_OK = 0,
    IDX_ERR_ARG,              /* bad argument (NULL path or output, num_classes outside 1..256) */
    IDX_ERR_OPEN,             /* the file cannot be opened (missing, permissions, a directory) */
    IDX_ERR_READ,             /* an I/O error while reading */
    IDX_ERR_EMPTY,            /* the file (or its gzip content) has no bytes */
    IDX_ERR_GZIP_CORRUPT,     /* the gzip stream is damaged (bad header, data, CRC or length) */
    IDX_ERR_GZIP_TRUNCATED,   /* the gzip stream ends before its end marker */
    IDX_ERR_NOT_IDX,          /* no IDX magic: the first two bytes are not zero, or < 4 bytes */
    IDX_ERR_TYPE,             /* the type byte is not one IDX defines */
    IDX_ERR_TYPE_UNSUPPORTED, /* a valid IDX type other than u8 */
    IDX_ERR_NDIMS,            /* the wrong number of dims (images need 3, labels 1) */
    IDX_ERR_HEADER_SHORT,     /* the file ends inside the list of dims */
    IDX_ERR_ZERO_DIM,         /* a dim is 0: no examples, or images with no pixels */
    IDX_ERR_OVERFLOW,         /* the product of the dims overflows 64 bits (or size_t) */
    IDX_ERR_PAYLOAD_SHORT,    /* fewer payload bytes than the dims say */
    IDX_ERR_PAYLOAD_LONG,     /* more payload bytes than the dims say */
    IDX_ERR_LABEL_RANGE,      /* a label outside 0..num_classes-1 */
    IDX_ERR_COUNT_MISMATCH,   /* the images and labels files hold different numbers of examples */
    IDX_NUM_STATUS            /* the number of codes above; not a status */
} idx_status;

/* A short fixed description of a status ("payload shorter than the dims say"); never NULL,
 * "unknown IDX status" for a value outside the enum. */
const char *idx_strerror(int status);

/* Loads an images file: 3 dims (n, rows, cols), type u8. On success *out owns n*rows*cols bytes
 * (row-major, [n, rows*cols]; free with nb_free). On failure returns the status, writes
 * "<path>: <what was wrong>" to err, and leaves *out NULL and the dims 0. */
idx_status idx_load_images(const char *path, uint8_t **out, int64_t *n, int64_t *rows,
                           int64_t *cols, char *err, size_t errlen);

/* Loads a labels file: 1 dim (n), type u8, every label in 0..num_classes-1 (1..256 classes).
 * On success *out owns n bytes (free with nb_free); on failure as idx_load_images. */
idx_status idx_load_labels(const char *path, int num_classes, uint8_t **out, int64_t *n, char *err,
                           size_t errlen);

typedef struct {
    int64_t n;       /* examples */
    int64_t rows;    /* image height (28 for MNIST) */
    int64_t cols;    /* image width (28) */
    uint8_t *images; /* [n, rows*cols], 0..255 */
    uint8_t *labels; /* [n], 0..num_classes-1 */
    int num_classes; /* labels range over 0..num_classes-1 */
} idx_dataset;

/* Loads an images file and its labels file into *out and checks that their counts agree
 * (IDX_ERR_COUNT_MISMATCH otherwise). On failure *out is zeroed and nothing stays allocated. */
idx_status idx_load(const char *images_path, const char *labels_path, int num_classes,
                    idx_dataset *out, char *err, size_t errlen);

/* Loads the standard files from `dir`: train-{images-idx3,labels-idx1}-ubyte (train = 1) or
 * t10k-... (train = 0), each tried first with ".gz" and then without. A file found under neither
 * name gives IDX_ERR_OPEN with a message listing both names tried. Otherwise as idx_load. */
idx_status idx_load_split(const char *dir, int train, int num_classes, idx_dataset *out, char *err,
                          size_t errlen);

/* As idx_load_split, but the labels file may be absent (under both names): then every label is 0,
 * num_classes is 1 and *has_labels is false. A labels file that exists must still be valid. */
idx_status idx_load_split_unlabeled(const char *dir, int train, int num_classes, idx_dataset *out,
                                    bool *has_labels, char *err, size_t errlen);

/* Frees the dataset's arrays and zeroes it; NULL and an already freed dataset are fine. */
void idx_free(idx_dataset *d);

/* Keeps the first min(n, d->n) examples (n >= 0); memory is not returned until idx_free. The
 * shipped digits are ordered so that any prefix is close to class-balanced. */
void idx_take(idx_dataset *d, int64_t n);

/* Gathers examples index[0..count) into x: [count, rows*cols] as pixel/255 in [0, 1], and their
 * labels into labels: [count], int64_t as nn_cross_entropy takes them (labels may be NULL). An
 * index outside 0..n-1 is a programmer error (nb_fail). */
void idx_batch(const idx_dataset *d, const int64_t *index, int64_t count, real *x, int64_t *labels);

/* nb_rng_permutation(rng, perm, n) (tensor/rng.h), kept for older callers; nn/data.h's
 * nn_batches walks a dataset in shuffled batches. NULL arguments with n > 0 are programmer
 * errors. */
void idx_shuffle(int64_t *perm, int64_t n, nb_rng *rng);

#endif
