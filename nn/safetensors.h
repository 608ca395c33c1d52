/* nn/safetensors.h: checkpoints in the safetensors format, written atomically and read by a
 * strict validating parser.
 *
 *   int64_t wshape[2] = {400, 784};
 *   st_tensor out[1] = {{.name = "encoder.fc1.weight", .dtype = ST_F32, .ndim = 2,
 *                        .shape = wshape, .data = weights}};
 *   st_meta meta[1] = {{"epoch", "3"}};
 *   st_error err;
 *   if (st_save("vae.safetensors", out, 1, meta, 1, &err) != ST_OK)
 *       fprintf(stderr, "%s\n", err.message);
 *
 *   st_file *f;
 *   if (st_open("vae.safetensors", &f, &err) != ST_OK) {
 *       fprintf(stderr, "%s\n", err.message);
 *       ...
 *   }
 *   if (st_read_real(f, "encoder.fc1.weight", w, 2, wshape, &err) != ST_OK) ...
 *   const char *epoch = st_meta_get(f, "epoch");   // NULL when absent
 *   st_close(f);
 *
 * The format: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON, then the tensor bytes.
 * Each JSON entry is "name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}
 * with offsets relative to the start of the data; "__metadata__" maps strings to strings.
 * Data is row-major and little-endian, with no holes and no overlaps.
 *
 * Writing: st_save writes "<path>.tmp.<pid>" in the same directory, fsyncs it, renames it over
 * the target and fsyncs the directory. On any failure the temporary file is removed and an
 * existing target is left untouched.
 *
 * Reading: st_open/st_parse check every field before trusting it and return a distinct
 * st_status for each kind of damage, with a message naming the file, the place (tensor name or
 * byte offset) and the problem. They never abort on bad bytes and never allocate from a size
 * that has not been checked against the bytes actually present.
 *
 * Ownership: an st_file owns a copy of the whole file; every pointer it hands out (names,
 * shapes, data, metadata strings) lives until st_close. Tensor data pointers may be unaligned
 * and point at little-endian bytes: use st_read_real/st_read_i64 or memcpy. */
#ifndef NB_SAFETENSORS_H
#define NB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/base.h"

/* ---- errors -------------------------------------------------------------------------------- */

typedef enum {
    ST_OK = 0,
    ST_ERR_ARG,              /* bad argument to st_save or a lookup (NULL, bad dtype, ...) */
    ST_ERR_IO,               /* open, read, write, fsync or rename failed (errno in message) */
    ST_ERR_TOO_SHORT,        /* file shorter than the 8-byte header length */
    ST_ERR_HEADER_TOO_LARGE, /* header length N > ST_MAX_HEADER */
    ST_ERR_HEADER_PAST_EOF,  /* 8 + N runs past the end of the file */
    ST_ERR_UTF8,             /* header is not valid UTF-8 */
    ST_ERR_JSON,             /* header is not valid JSON (message gives the byte offset) */
    ST_ERR_TOO_DEEP,         /* JSON nested deeper than ST_MAX_DEPTH */
    ST_ERR_NOT_OBJECT,       /* header is not a JSON object starting with '{' */
    ST_ERR_ENTRY_NOT_OBJECT, /* a tensor entry is not an object */
    ST_ERR_MISSING_FIELD,    /* an entry lacks dtype, shape or data_offsets */
    ST_ERR_FIELD_TYPE,       /* dtype not a string, shape/data_offsets not arrays of numbers */
    ST_ERR_UNKNOWN_FIELD,    /* an entry has a field other than the three above */
    ST_ERR_DTYPE,            /* unknown dtype name */
    ST_ERR_SHAPE,            /* a shape value is negative or not an integer; too many dims */
    ST_ERR_OFFSET_VALUE,     /* an offset is negative, not an integer, or not two of them */
    ST_ERR_OVERFLOW,         /* shape product or byte size does not fit in 64 bits */
    ST_ERR_OFFSETS_BACKWARD, /* data_offsets end < begin */
    ST_ERR_SIZE_MISMATCH,    /* end - begin differs from shape x dtype size */
    ST_ERR_OFFSETS_OVERLAP,  /* two tensors share bytes */
    ST_ERR_OFFSETS_GAP,      /* bytes between tensors (or before the first) belong to none */
    ST_ERR_TRUNCATED,        /* tensor data runs past the end of the file */
    ST_ERR_TRAILING,         /* bytes after the last tensor: 8 + N + last end < file size */
    ST_ERR_DUPLICATE,        /* a tensor name, metadata key or entry field appears twice */
    ST_ERR_METADATA,         /* __metadata__ is not an object of string -> string */
    ST_ERR_NUL,              /* a name or metadata string contains \u0000 */
    ST_ERR_NOT_FOUND,        /* lookup: no tensor of that name */
    ST_ERR_DTYPE_MISMATCH,   /* lookup: the tensor's dtype cannot be read as asked */
    ST_ERR_SHAPE_MISMATCH,   /* lookup: the tensor's shape differs from the expected one */
    ST_STATUS_COUNT
} st_status;

/* A status and a message of the form "<file>: <where>: <problem>". */
typedef struct {
    st_status code;
    char message[512];
} st_error;

/* A short constant description of a status ("header is not valid JSON"); never NULL. */
const char *st_strerror(st_status code);

#define ST_MAX_HEADER 100000000u /* largest header length N accepted, as in the reference */
#define ST_MAX_DEPTH  64         /* deepest JSON nesting accepted in a header */
#define ST_MAX_NDIM   64         /* most dimensions a tensor may have */

/* ---- dtypes -------------------------------------------------------------------------------- */

typedef enum {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E5M2,
    ST_F8_E4M3,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_I64,
    ST_U64,
    ST_F64,
    ST_DTYPE_COUNT
} st_dtype;

/* The format's name ("F32"), or "?" for a value out of range. */
const char *st_dtype_name(st_dtype dtype);
/* Bytes per element (1, 2, 4 or 8), or 0 for a value out of range. */
size_t st_dtype_size(st_dtype dtype);

/* ---- tensors and metadata ------------------------------------------------------------------ */

/* One tensor. For st_save the caller fills name, dtype, ndim, shape (ndim values) and data
 * (host-order elements, row-major); nbytes is ignored. From a reader every field is set and the
 * pointers are owned by the st_file; data points at nbytes little-endian, possibly unaligned bytes.
 */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    const int64_t *shape; /* (ndim) */
    const void *data;     /* (product of shape) elements */
    size_t nbytes;
} st_tensor;

/* One "__metadata__" pair: UTF-8 strings without NUL. */
typedef struct {
    const char *key;
    const char *value;
} st_meta;

/* ---- writing ------------------------------------------------------------------------------- */

/* Writes n tensors (in the order given) and nmeta metadata pairs to path, atomically (see top).
 * Names must be unique, non-empty UTF-8 and not "__metadata__"; metadata keys must be unique.
 * Returns ST_OK, ST_ERR_ARG for bad input (nothing is written), or ST_ERR_IO; err may be NULL. */
st_status st_save(const char *path, const st_tensor *tensors, int n, const st_meta *meta, int nmeta,
                  st_error *err);

/* Removes the "<path>.tmp.<pid>" files that st_save leaves when process <pid> is killed mid-write,
 * but only those whose process is gone (kill(pid, 0) fails with ESRCH): never this process's or a
 * live writer's. Returns how many were removed; a directory that cannot be read gives 0. */
int st_remove_stale_temps(const char *path);

/* ---- reading ------------------------------------------------------------------------------- */

typedef struct st_file st_file;

/* Reads and validates the file at path. On ST_OK *out is a new st_file (free with st_close);
 * on error *out is NULL and err (may be NULL) says what and where. */
st_status st_open(const char *path, st_file **out, st_error *err);

/* Validates len bytes at buf (copied: the caller keeps buf). label names the source in error
 * messages (NULL gives "<memory>"). Results as st_open. */
st_status st_parse(const void *buf, size_t len, const char *label, st_file **out, st_error *err);

/* Frees f and everything it handed out. NULL is a harmless no-op. */
void st_close(st_file *f);

/* Number of tensors in f. */
int st_count(const st_file *f);
/* Tensor i (0 <= i < st_count, in file order of data offsets), or NULL when out of range. */
const st_tensor *st_get(const st_file *f, int i);
/* The tensor called name, or NULL when there is none. */
const st_tensor *st_find(const st_file *f, const char *name);

/* Copies tensor `name` (F32 or F64, converted to real) into dst, which holds the product of the
 * expected shape (ndim values). Returns ST_ERR_NOT_FOUND, ST_ERR_DTYPE_MISMATCH or
 * ST_ERR_SHAPE_MISMATCH ("w: shape [400, 784] in file, model expects [400, 700]") otherwise. */
st_status st_read_real(const st_file *f, const char *name, real *dst, int ndim,
                       const int64_t *shape, st_error *err);
/* As st_read_real for integer tensors (I64, I32, U8, ...; U64 above INT64_MAX is refused with
 * ST_ERR_DTYPE_MISMATCH) into int64_t. */
st_status st_read_i64(const st_file *f, const char *name, int64_t *dst, int ndim,
                      const int64_t *shape, st_error *err);

/* Number of "__metadata__" pairs, and pair i (NULL key when out of range). */
int st_meta_count(const st_file *f);
st_meta st_meta_at(const st_file *f, int i);
/* The metadata value for key, or NULL when absent. */
const char *st_meta_get(const st_file *f, const char *key);

#endif
