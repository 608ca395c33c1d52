/* io/idx.c: the IDX reader. A byte source (raw file or gzip stream, told apart by the first two
 * bytes) feeds one header parser; every check sits where the bytes it checks are read. */
#include "io/idx.h"

#include "tensor/parallel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ---- status texts and messages ------------------------------------------------------------- */

const char *idx_strerror(int status) {
    static const char *const text[IDX_NUM_STATUS] = {
        [IDX_OK] = "ok",
        [IDX_ERR_ARG] = "bad argument",
        [IDX_ERR_OPEN] = "cannot open the file",
        [IDX_ERR_READ] = "read error",
        [IDX_ERR_EMPTY] = "empty file",
        [IDX_ERR_GZIP_CORRUPT] = "corrupt gzip data",
        [IDX_ERR_GZIP_TRUNCATED] = "truncated gzip stream",
        [IDX_ERR_NOT_IDX] = "not an IDX file",
        [IDX_ERR_TYPE] = "unknown IDX type byte",
        [IDX_ERR_TYPE_UNSUPPORTED] = "IDX type other than u8",
        [IDX_ERR_NDIMS] = "wrong number of IDX dims",
        [IDX_ERR_HEADER_SHORT] = "IDX header cut short",
        [IDX_ERR_ZERO_DIM] = "an IDX dim is zero",
        [IDX_ERR_OVERFLOW] = "IDX dims product overflows",
        [IDX_ERR_PAYLOAD_SHORT] = "payload shorter than the dims say",
        [IDX_ERR_PAYLOAD_LONG] = "payload longer than the dims say",
        [IDX_ERR_LABEL_RANGE] = "label out of range",
        [IDX_ERR_COUNT_MISMATCH] = "images and labels counts differ",
    };
    if (status < 0 || status >= IDX_NUM_STATUS) return "unknown IDX status";
    return text[status];
}

/* Writes "<path>: <message>" into err (when err is not NULL) and returns status. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static idx_status
fail(char *err, size_t errlen, idx_status status, const char *path, const char *fmt, ...) {
    if (!err || errlen == 0) return status;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s", path ? path : "(null)", msg);
    return status;
}

/* The name of an IDX type byte, or NULL when IDX defines no such type. */
static const char *type_name(int type) {
    static const char *const names[0x0F] = {
        [0x08] = "u8",  [0x09] = "i8",  [0x0B] = "i16",
        [0x0C] = "i32", [0x0D] = "f32", [0x0E] = "f64",
    };
    return type >= 0 && type < 0x0F ? names[type] : NULL;
}

/* ---- the byte source: a raw file or a gzip stream ------------------------------------------ */

#define CHUNK (1 << 16)

typedef struct {
    FILE *f;
    const char *path;
    int gz;             /* 1 when the file starts with the gzip magic */
    int gz_done;        /* the last gzip member ended and no input follows */
    int z_live;         /* z was initialised (needs inflateEnd) */
    z_stream z;         /* gzip state; for raw files next_in/avail_in hold the peeked bytes */
    int64_t compressed; /* bytes read from the file so far */
    unsigned char in[CHUNK];
} source;

/* Reads up to CHUNK file bytes into s->in. Returns IDX_ERR_READ on an I/O error. */
static idx_status refill(source *s, char *err, size_t errlen) {
    size_t got = fread(s->in, 1, CHUNK, s->f);
    if (got == 0 && ferror(s->f))
        return fail(err, errlen, IDX_ERR_READ, s->path, "read error: %s", strerror(errno));
    s->z.next_in = s->in;
    s->z.avail_in = (uInt)got;
    s->compressed += (int64_t)got;
    return IDX_OK;
}

/* Opens path and looks at its first bytes to tell gzip from raw. IDX_ERR_OPEN when the file
 * cannot be opened or is a directory, IDX_ERR_EMPTY when it has no bytes. */
static idx_status source_open(source *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, offsetof(source, in));
    s->path = path;
    s->f = fopen(path, "rb");
    if (!s->f) return fail(err, errlen, IDX_ERR_OPEN, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(s->f), &st) == 0 && S_ISDIR(st.st_mode))
        return fail(err, errlen, IDX_ERR_OPEN, path, "is a directory, not a file");
    idx_status rc = refill(s, err, errlen);
    if (rc != IDX_OK) return rc;
    if (s->z.avail_in == 0) return fail(err, errlen, IDX_ERR_EMPTY, path, "the file is empty");
    if (s->z.avail_in >= 2 && s->in[0] == 0x1F && s->in[1] == 0x8B) {
        s->gz = 1;
        if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
            nb_fail("idx", "zlib: inflateInit2 failed");
        s->z_live = 1;
    }
    return IDX_OK;
}

static void source_close(source *s) {
    if (s->z_live) inflateEnd(&s->z);
    if (s->f) fclose(s->f);
    s->z_live = 0;
    s->f = NULL;
}

/* Reads up to n bytes of content into buf; *got < n only at the end of the content. Returns
 * IDX_ERR_READ, IDX_ERR_GZIP_CORRUPT or IDX_ERR_GZIP_TRUNCATED on damage. */
static idx_status source_read(source *s, unsigned char *buf, size_t n, size_t *got, char *err,
                              size_t errlen) {
    *got = 0;
    idx_status rc;
    if (!s->gz) {
        while (*got < n) {
            if (s->z.avail_in == 0) {
                if ((rc = refill(s, err, errlen)) != IDX_OK) return rc;
                if (s->z.avail_in == 0) break;
            }
            size_t take = n - *got < s->z.avail_in ? n - *got : s->z.avail_in;
            memcpy(buf + *got, s->z.next_in, take);
            s->z.next_in += take;
            s->z.avail_in -= (uInt)take;
            *got += take;
        }
        return IDX_OK;
    }
    while (*got < n && !s->gz_done) {
        if (s->z.avail_in == 0) {
            if ((rc = refill(s, err, errlen)) != IDX_OK) return rc;
            if (s->z.avail_in == 0)
                return fail(err, errlen, IDX_ERR_GZIP_TRUNCATED, s->path,
                            "the gzip stream is truncated: it ends after %lld compressed bytes, "
                            "before its end marker",
                            (long long)s->compressed);
        }
        size_t want = n - *got < (size_t)1 << 30 ? n - *got : (size_t)1 << 30;
        s->z.next_out = buf + *got;
        s->z.avail_out = (uInt)want;
        int zr = inflate(&s->z, Z_NO_FLUSH);
        *got += want - s->z.avail_out;
        if (zr == Z_STREAM_END) {
            /* Another gzip member may follow (as `cat a.gz b.gz` makes); anything else is junk. */
            if (s->z.avail_in == 0 && (rc = refill(s, err, errlen)) != IDX_OK) return rc;
            if (s->z.avail_in == 0) {
                s->gz_done = 1;
            } else if (s->z.next_in[0] != 0x1F) {
                return fail(err, errlen, IDX_ERR_GZIP_CORRUPT, s->path,
                            "corrupt gzip data: unexpected bytes after the end of the gzip stream");
            } else if (inflateReset(&s->z) != Z_OK) {
                nb_fail("idx", "zlib: inflateReset failed");
            }
        } else if (zr == Z_DATA_ERROR || zr == Z_NEED_DICT) {
            return fail(err, errlen, IDX_ERR_GZIP_CORRUPT, s->path, "corrupt gzip data: %s",
                        s->z.msg ? s->z.msg : "invalid deflate stream");
        } else if (zr == Z_MEM_ERROR) {
            nb_fail("idx", "zlib: out of memory");
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            nb_fail("idx", "zlib: inflate returned %d", zr);
        }
    }
    return IDX_OK;
}

/* ---- the IDX header and payload ------------------------------------------------------------ */

#define MAX_DIMS 3

/* Reads one IDX file of u8 with `ndims` dims: checks the magic, type, dims and payload size,
 * returns the dims in dims[] and the payload in *out (nb_malloc'd). On failure *out is NULL. */
static idx_status read_idx(const char *path, const char *what, int ndims, int64_t dims[MAX_DIMS],
                           uint8_t **out, char *err, size_t errlen) {
    static const char *const dim_names[2] = {"(n)", "(n, rows, cols)"};
    *out = NULL;
    source s;
    idx_status rc = source_open(&s, path, err, errlen);
    unsigned char hdr[4 * MAX_DIMS];
    uint8_t *buf = NULL;
    size_t got = 0;
    if (rc != IDX_OK) goto done;

    if ((rc = source_read(&s, hdr, 4, &got, err, errlen)) != IDX_OK) goto done;
    if (got == 0) {
        rc = fail(err, errlen, IDX_ERR_EMPTY, path, "the gzip content is empty");
        goto done;
    }
    if (got < 4 || hdr[0] != 0 || hdr[1] != 0) {
        char start[32] = "";
        for (size_t i = 0; i < got; i++) snprintf(start + 3 * i, 4, " %02X", hdr[i]);
        rc = fail(err, errlen, IDX_ERR_NOT_IDX, path,
                  "not an IDX file: it starts with%s; IDX starts with 00 00 <type> <dims>", start);
        goto done;
    }
    const char *tname = type_name(hdr[2]);
    if (!tname) {
        rc = fail(err, errlen, IDX_ERR_TYPE, path,
                  "unknown IDX type byte 0x%02X (IDX defines 0x08 u8, 0x09 i8, 0x0B i16, 0x0C "
                  "i32, 0x0D f32, 0x0E f64)",
                  hdr[2]);
        goto done;
    }
    if (hdr[2] != 0x08) {
        rc = fail(err, errlen, IDX_ERR_TYPE_UNSUPPORTED, path,
                  "IDX type is %s (0x%02X); %s must be u8 (0x08)", tname, hdr[2], what);
        goto done;
    }
    if (hdr[3] != ndims) {
        rc = fail(err, errlen, IDX_ERR_NDIMS, path, "has %d dim%s; %s need %d %s", hdr[3],
                  hdr[3] == 1 ? "" : "s", what, ndims, dim_names[ndims == 3]);
        goto done;
    }
    if ((rc = source_read(&s, hdr, 4 * (size_t)ndims, &got, err, errlen)) != IDX_OK) goto done;
    if (got < 4 * (size_t)ndims) {
        rc = fail(err, errlen, IDX_ERR_HEADER_SHORT, path,
                  "the header is cut short: %zu of its %d dim bytes are present", got, 4 * ndims);
        goto done;
    }
    /* The payload size is the product of the dims; the limit keeps it in int64_t and size_t. */
    uint64_t limit = (uint64_t)INT64_MAX < (uint64_t)SIZE_MAX ? (uint64_t)INT64_MAX : SIZE_MAX;
    uint64_t d[MAX_DIMS], total = 1;
    char dstr[64] = "";
    for (int i = 0; i < ndims; i++) {
        const unsigned char *p = hdr + 4 * i;
        d[i] = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
        size_t len = strlen(dstr);
        snprintf(dstr + len, sizeof dstr - len, "%s%llu", i ? " x " : "", (unsigned long long)d[i]);
    }
    for (int i = 0; i < ndims; i++) {
        if (d[i] == 0) {
            rc = fail(err, errlen, IDX_ERR_ZERO_DIM, path, "dims [%s]: dim %d is 0", dstr, i);
            goto done;
        }
    }
    for (int i = 0; i < ndims; i++) {
        if (total > limit / d[i]) {
            rc = fail(err, errlen, IDX_ERR_OVERFLOW, path,
                      "dims [%s]: their product overflows 64 bits", dstr);
            goto done;
        }
        total *= d[i];
        dims[i] = (int64_t)d[i];
    }

    /* Never allocate from the header alone: grow the buffer as the bytes arrive. */
    uint64_t have = 0, cap = 0;
    while (have < total) {
        uint64_t next = cap ? 2 * cap : (uint64_t)1 << 20;
        if (next > total) next = total;
        uint8_t *grown = nb_malloc((size_t)next);
        if (have) memcpy(grown, buf, (size_t)have);
        nb_free(buf);
        buf = grown;
        cap = next;
        if ((rc = source_read(&s, buf + have, (size_t)(cap - have), &got, err, errlen)) != IDX_OK)
            goto done;
        have += got;
        if (have < cap) break; /* end of content */
    }
    if (have < total) {
        rc = fail(err, errlen, IDX_ERR_PAYLOAD_SHORT, path,
                  "payload is %llu bytes, dims [%s] say %llu", (unsigned long long)have, dstr,
                  (unsigned long long)total);
        goto done;
    }
    /* Anything past the payload is damage; count it (up to a bound) to say how much. Reading on
     * to the end also makes zlib check the gzip CRC and length. */
    uint64_t extra = 0;
    unsigned char scratch[4096];
    const uint64_t count_limit = (uint64_t)1 << 28;
    do {
        if ((rc = source_read(&s, scratch, sizeof scratch, &got, err, errlen)) != IDX_OK) goto done;
        extra += got;
    } while (got == sizeof scratch && extra < count_limit);
    if (extra) {
        rc = fail(err, errlen, IDX_ERR_PAYLOAD_LONG, path,
                  "payload is %s%llu bytes, dims [%s] say %llu",
                  got == sizeof scratch ? "more than " : "", (unsigned long long)(total + extra),
                  dstr, (unsigned long long)total);
        goto done;
    }
    *out = buf;
    buf = NULL;
done:
    if (rc != IDX_OK)
        for (int i = 0; i < ndims; i++) dims[i] = 0;
    nb_free(buf);
    source_close(&s);
    return rc;
}

/* ---- public loaders ------------------------------------------------------------------------ */

idx_status idx_load_images(const char *path, uint8_t **out, int64_t *n, int64_t *rows,
                           int64_t *cols, char *err, size_t errlen) {
    if (!out || !n || !rows || !cols) return fail(err, errlen, IDX_ERR_ARG, path, "NULL output");
    *out = NULL;
    *n = *rows = *cols = 0;
    if (!path) return fail(err, errlen, IDX_ERR_ARG, path, "NULL path");
    int64_t dims[MAX_DIMS] = {0};
    idx_status rc = read_idx(path, "images", 3, dims, out, err, errlen);
    if (rc == IDX_OK) {
        *n = dims[0];
        *rows = dims[1];
        *cols = dims[2];
    }
    return rc;
}

idx_status idx_load_labels(const char *path, int num_classes, uint8_t **out, int64_t *n, char *err,
                           size_t errlen) {
    if (!out || !n) return fail(err, errlen, IDX_ERR_ARG, path, "NULL output");
    *out = NULL;
    *n = 0;
    if (!path) return fail(err, errlen, IDX_ERR_ARG, path, "NULL path");
    if (num_classes < 1 || num_classes > 256)
        return fail(err, errlen, IDX_ERR_ARG, path, "num_classes is %d; it must be 1..256",
                    num_classes);
    int64_t dims[MAX_DIMS] = {0};
    uint8_t *labels = NULL;
    idx_status rc = read_idx(path, "labels", 1, dims, &labels, err, errlen);
    if (rc != IDX_OK) return rc;
    for (int64_t i = 0; i < dims[0]; i++) {
        if (labels[i] >= num_classes) {
            rc = fail(err, errlen, IDX_ERR_LABEL_RANGE, path,
                      "label %d at index %lld is outside 0..%d", labels[i], (long long)i,
                      num_classes - 1);
            nb_free(labels);
            return rc;
        }
    }
    *out = labels;
    *n = dims[0];
    return IDX_OK;
}

idx_status idx_load(const char *images_path, const char *labels_path, int num_classes,
                    idx_dataset *out, char *err, size_t errlen) {
    if (!out) return fail(err, errlen, IDX_ERR_ARG, images_path, "NULL output");
    memset(out, 0, sizeof *out);
    idx_dataset d = {0};
    int64_t nl = 0;
    idx_status rc = idx_load_images(images_path, &d.images, &d.n, &d.rows, &d.cols, err, errlen);
    if (rc != IDX_OK) return rc;
    rc = idx_load_labels(labels_path, num_classes, &d.labels, &nl, err, errlen);
    if (rc == IDX_OK && nl != d.n)
        rc = fail(err, errlen, IDX_ERR_COUNT_MISMATCH, labels_path,
                  "has %lld labels, but %s has %lld images", (long long)nl, images_path,
                  (long long)d.n);
    if (rc != IDX_OK) {
        idx_free(&d);
        return rc;
    }
    d.num_classes = num_classes;
    *out = d;
    return IDX_OK;
}

/* Puts into path the first of "<dir>/<name>.gz" and "<dir>/<name>" that exists; if neither
 * does, returns IDX_ERR_OPEN with a message naming both. */
static idx_status find_file(const char *dir, const char *name, char *path, size_t size, char *err,
                            size_t errlen) {
    char gz[4096];
    int len = snprintf(gz, sizeof gz, "%s/%s.gz", dir, name);
    if (len < 0 || (size_t)len >= sizeof gz || (size_t)len >= size)
        return fail(err, errlen, IDX_ERR_ARG, dir, "directory name is too long");
    struct stat st;
    if (stat(gz, &st) == 0) {
        memcpy(path, gz, (size_t)len + 1);
        return IDX_OK;
    }
    snprintf(path, size, "%s/%s", dir, name);
    if (stat(path, &st) == 0) return IDX_OK;
    return fail(err, errlen, IDX_ERR_OPEN, dir, "no %s file: tried %s.gz and %s", name, name, name);
}

/* The split's images file into images and labels file into labels (each IDX_ERR_OPEN when
 * missing, under either name); *labels_rc is the labels file's status. */
static idx_status split_files(const char *dir, int train, char *images, char *labels, size_t size,
                              idx_status *labels_rc, char *err, size_t errlen) {
    if (!dir) return fail(err, errlen, IDX_ERR_ARG, dir, "NULL directory");
    const char *prefix = train ? "train" : "t10k";
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    idx_status rc = find_file(dir, name, images, size, err, errlen);
    if (rc != IDX_OK) return rc;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    *labels_rc = find_file(dir, name, labels, size, err, errlen);
    return IDX_OK;
}

idx_status idx_load_split(const char *dir, int train, int num_classes, idx_dataset *out, char *err,
                          size_t errlen) {
    if (!out) return fail(err, errlen, IDX_ERR_ARG, dir, "NULL output");
    memset(out, 0, sizeof *out);
    char images[4096], labels[4096];
    idx_status lrc = IDX_OK;
    idx_status rc = split_files(dir, train, images, labels, sizeof images, &lrc, err, errlen);
    if (rc != IDX_OK) return rc;
    if (lrc != IDX_OK) return lrc;
    return idx_load(images, labels, num_classes, out, err, errlen);
}

idx_status idx_load_split_unlabeled(const char *dir, int train, int num_classes, idx_dataset *out,
                                    bool *has_labels, char *err, size_t errlen) {
    if (!out || !has_labels) return fail(err, errlen, IDX_ERR_ARG, dir, "NULL output");
    memset(out, 0, sizeof *out);
    *has_labels = false;
    char images[4096], labels[4096];
    idx_status lrc = IDX_OK;
    idx_status rc = split_files(dir, train, images, labels, sizeof images, &lrc, err, errlen);
    if (rc != IDX_OK) return rc;
    if (lrc == IDX_OK) {
        rc = idx_load(images, labels, num_classes, out, err, errlen);
        *has_labels = rc == IDX_OK;
        return rc;
    }
    if (lrc != IDX_ERR_OPEN) return lrc;
    idx_dataset d = {0};
    rc = idx_load_images(images, &d.images, &d.n, &d.rows, &d.cols, err, errlen);
    if (rc != IDX_OK) return rc;
    d.labels = nb_calloc((size_t)(d.n > 0 ? d.n : 1));
    d.num_classes = 1;
    *out = d;
    return IDX_OK;
}

void idx_free(idx_dataset *d) {
    if (!d) return;
    nb_free(d->images);
    nb_free(d->labels);
    memset(d, 0, sizeof *d);
}

void idx_take(idx_dataset *d, int64_t n) {
    if (!d || n < 0) nb_fail("idx_take", "NULL dataset or negative count %lld", (long long)n);
    if (n < d->n) d->n = n;
}

/* ---- batches ------------------------------------------------------------------------------- */

void idx_batch(const idx_dataset *d, const int64_t *index, int64_t count, real *x,
               int64_t *labels) {
    if (!d || count < 0 || (count > 0 && (!index || !x)))
        nb_fail("idx_batch", "NULL argument or negative count %lld", (long long)count);
    int64_t pixels = d->rows * d->cols;
    for (int64_t i = 0; i < count; i++) /* all checked first: no thread below can fail */
        if (index[i] < 0 || index[i] >= d->n)
            nb_fail("idx_batch", "index[%lld] = %lld is outside the dataset's 0..%lld",
                    (long long)i, (long long)index[i], (long long)d->n - 1);
    /* the images sit at random places in the dataset: two threads wait on memory side by side */
    NB_PARALLEL_FOR(count * pixels)
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *src = d->images + index[i] * pixels;
        real *dst = x + i * pixels;
        for (int64_t j = 0; j < pixels; j++) dst[j] = (real)src[j] / (real)255; /* vectorizes */
        if (labels) labels[i] = d->labels[index[i]];
    }
}

void idx_shuffle(int64_t *perm, int64_t n, nb_rng *rng) {
    if (n < 0 || (n > 0 && (!perm || !rng)))
        nb_fail("idx_shuffle", "NULL argument or negative count %lld", (long long)n);
    nb_rng_permutation(rng, perm, n);
}
