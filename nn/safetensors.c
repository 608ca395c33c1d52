/* nn/safetensors.c: the safetensors validating reader (the writer: nn/safetensors_write.c).
 *
 * Reading runs in passes over the header, each trusting only what the one before proved:
 *   1. the 8-byte length N against ST_MAX_HEADER and the file size;
 *   2. UTF-8 over the N header bytes;
 *   3. JSON syntax (with a nesting limit), allocating nothing;
 *   4. the schema, twice: once to count tensors, dims and metadata pairs (and to find every
 *      schema error), then, after allocating exactly that much, once more to fill the tables;
 *   5. names unique, then offsets contiguous from 0 to the exact end of the file.
 * Decoded strings go to one pool of N + 1 bytes: a JSON string never decodes to more bytes than
 * it occupies in the header, quotes included, so the pool cannot overflow. */
#include "nn/safetensors.h"

#include "nn/json.h"
#include "nn/safetensors_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

struct st_file {
    unsigned char *buf; /* the whole file (len bytes) */
    size_t len;
    char *pool;         /* decoded names and metadata strings (header length + 1 bytes) */
    st_tensor *tensors; /* (count) sorted by data offset */
    int64_t *dims;      /* every tensor's shape, back to back */
    int *by_name;       /* (count) indexes into tensors, sorted by name */
    st_meta *meta;      /* (nmeta) sorted by key */
    int count, nmeta;
};

/* ---- errors -------------------------------------------------------------------------------- */

static const char *const status_text[ST_STATUS_COUNT] = {
    [ST_OK] = "success",
    [ST_ERR_ARG] = "invalid argument",
    [ST_ERR_IO] = "input/output error",
    [ST_ERR_TOO_SHORT] = "file shorter than 8 bytes",
    [ST_ERR_HEADER_TOO_LARGE] = "header length larger than 100,000,000 bytes",
    [ST_ERR_HEADER_PAST_EOF] = "header runs past the end of the file",
    [ST_ERR_UTF8] = "header is not valid UTF-8",
    [ST_ERR_JSON] = "header is not valid JSON",
    [ST_ERR_TOO_DEEP] = "header JSON nested too deeply",
    [ST_ERR_NOT_OBJECT] = "header is not a JSON object",
    [ST_ERR_ENTRY_NOT_OBJECT] = "tensor entry is not an object",
    [ST_ERR_MISSING_FIELD] = "tensor entry lacks dtype, shape or data_offsets",
    [ST_ERR_FIELD_TYPE] = "tensor entry field has the wrong JSON type",
    [ST_ERR_UNKNOWN_FIELD] = "tensor entry has an unknown field",
    [ST_ERR_DTYPE] = "unknown dtype",
    [ST_ERR_SHAPE] = "shape value negative or not an integer",
    [ST_ERR_OFFSET_VALUE] = "data_offsets not two non-negative integers",
    [ST_ERR_OVERFLOW] = "shape product or byte size overflows",
    [ST_ERR_OFFSETS_BACKWARD] = "data_offsets end before they begin",
    [ST_ERR_SIZE_MISMATCH] = "data_offsets span differs from the shape's byte size",
    [ST_ERR_OFFSETS_OVERLAP] = "tensor data overlaps",
    [ST_ERR_OFFSETS_GAP] = "gap between tensor data",
    [ST_ERR_TRUNCATED] = "tensor data runs past the end of the file",
    [ST_ERR_TRAILING] = "trailing bytes after the last tensor",
    [ST_ERR_DUPLICATE] = "duplicate name",
    [ST_ERR_METADATA] = "__metadata__ is not a map of strings to strings",
    [ST_ERR_NUL] = "string contains a NUL character",
    [ST_ERR_NOT_FOUND] = "no such tensor",
    [ST_ERR_DTYPE_MISMATCH] = "tensor dtype does not match",
    [ST_ERR_SHAPE_MISMATCH] = "tensor shape does not match",
};

const char *st_strerror(st_status code) {
    if ((unsigned)code >= ST_STATUS_COUNT) return "unknown status";
    return status_text[code];
}

/* Fills err (if any) with code and "<label>: <formatted text>"; returns code. */
/* ---- dtypes and byte order ----------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},       [ST_U8] = {"U8", 1},           [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_I16] = {"I16", 2},
    [ST_U16] = {"U16", 2},         [ST_F16] = {"F16", 2},         [ST_BF16] = {"BF16", 2},
    [ST_I32] = {"I32", 4},         [ST_U32] = {"U32", 4},         [ST_F32] = {"F32", 4},
    [ST_I64] = {"I64", 8},         [ST_U64] = {"U64", 8},         [ST_F64] = {"F64", 8},
};

const char *st_dtype_name(st_dtype dtype) {
    return (unsigned)dtype < ST_DTYPE_COUNT ? dtypes[dtype].name : "?";
}

size_t st_dtype_size(st_dtype dtype) {
    return (unsigned)dtype < ST_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

/* ---- reading: the schema ------------------------------------------------------------------- */

typedef struct {
    json_reader r;     /* the header, already checked for UTF-8 and JSON syntax */
    const char *label; /* file name for messages */
    st_error *err;
} parser;

/* Reports a JSON-level failure at the reader's position. */
static st_status json_fail(parser *p, json_status js) {
    if (js == JSON_TOO_DEEP)
        return fail(p->err, ST_ERR_TOO_DEEP, p->label,
                    "header JSON: nested deeper than %d levels at byte %zu of the header",
                    ST_MAX_DEPTH, p->r.pos);
    return fail(p->err, ST_ERR_JSON, p->label,
                "header JSON: %s at byte %zu of the header (byte %zu of the file)",
                p->r.error ? p->r.error : "syntax error", p->r.pos, p->r.pos + 8);
}

/* What the schema pass gathers. In the counting pass the table pointers are NULL. */
typedef struct {
    st_tensor *tensors;
    int64_t *dims;
    st_meta *meta;
    uint64_t *begin; /* (count) data_offsets begin, parallel to tensors */
    int count, nmeta;
    size_t ndims;
    int seen_metadata;
} schema;

/* Parses a string value into the pool; NUL inside is an error naming `where`. */
static st_status pool_string(parser *p, const char **out, const char *where) {
    int has_nul;
    json_status js = json_string(&p->r, out, &has_nul);
    if (js) return json_fail(p, js);
    if (has_nul)
        return fail(p->err, ST_ERR_NUL, p->label, "%.160s: string contains \\u0000", where);
    return ST_OK;
}

/* "__metadata__": an object of string -> string. */
static st_status parse_metadata(parser *p, schema *sc) {
    st_status st;
    json_skip_ws(&p->r);
    if (json_peek(&p->r) != '{')
        return fail(p->err, ST_ERR_METADATA, p->label,
                    "__metadata__ is %s, not an object of strings", json_type_at(&p->r));
    p->r.pos++;
    json_skip_ws(&p->r);
    if (json_peek(&p->r) == '}') {
        p->r.pos++;
        return ST_OK;
    }
    for (;;) {
        json_skip_ws(&p->r);
        const char *key, *value;
        if ((st = pool_string(p, &key, "__metadata__ key"))) return st;
        json_skip_ws(&p->r);
        p->r.pos++; /* ':' (syntax already checked) */
        json_skip_ws(&p->r);
        if (json_peek(&p->r) != '"')
            return fail(p->err, ST_ERR_METADATA, p->label,
                        "__metadata__ '%.120s' is %s, not a string", key, json_type_at(&p->r));
        if ((st = pool_string(p, &value, "__metadata__ value"))) return st;
        if (sc->meta) sc->meta[sc->nmeta] = (st_meta){key, value};
        sc->nmeta++;
        json_skip_ws(&p->r);
        if (p->r.s[p->r.pos++] == '}') return ST_OK;
    }
}

/* Parses an array of non-negative integers ("shape" or "data_offsets") for tensor `name`. Values
 * go to out (room for `cap`) when out != NULL; *n gets the count. */
static st_status parse_uint_array(parser *p, const char *name, const char *field, int64_t *out,
                                  size_t cap, size_t *n) {
    int is_shape = field[0] == 's';
    st_status bad = is_shape ? ST_ERR_SHAPE : ST_ERR_OFFSET_VALUE;
    *n = 0;
    json_skip_ws(&p->r);
    if (json_peek(&p->r) != '[')
        return fail(p->err, ST_ERR_FIELD_TYPE, p->label, NAME_FMT ": %s is %s, not an array", name,
                    field, json_type_at(&p->r));
    p->r.pos++;
    json_skip_ws(&p->r);
    if (json_peek(&p->r) == ']') {
        p->r.pos++;
        return ST_OK;
    }
    for (;;) {
        json_skip_ws(&p->r);
        int c = json_peek(&p->r);
        if (c != '-' && (c < '0' || c > '9'))
            return fail(p->err, ST_ERR_FIELD_TYPE, p->label, NAME_FMT ": %s holds %s, not a number",
                        name, field, json_type_at(&p->r));
        size_t at = p->r.pos;
        json_number num;
        json_status js = json_number_at(&p->r, &num);
        if (js) return json_fail(p, js);
        if (!num.is_int)
            return fail(p->err, bad, p->label, NAME_FMT ": %s value '%.*s' is not an integer", name,
                        field, (int)(p->r.pos - at > 40 ? 40 : p->r.pos - at),
                        (const char *)p->r.s + at);
        if (num.negative && (num.value != 0 || num.too_big))
            return fail(p->err, bad, p->label, NAME_FMT ": %s value '%.*s' is negative", name,
                        field, (int)(p->r.pos - at > 40 ? 40 : p->r.pos - at),
                        (const char *)p->r.s + at);
        if (num.too_big || num.value > (uint64_t)INT64_MAX)
            return fail(p->err, ST_ERR_OVERFLOW, p->label,
                        NAME_FMT ": %s value '%.*s' does not fit in 63 bits", name, field,
                        (int)(p->r.pos - at > 40 ? 40 : p->r.pos - at), (const char *)p->r.s + at);
        if (*n >= cap) {
            if (is_shape)
                return fail(p->err, ST_ERR_SHAPE, p->label,
                            NAME_FMT ": shape has more than %d dimensions", name, ST_MAX_NDIM);
            return fail(p->err, ST_ERR_OFFSET_VALUE, p->label,
                        NAME_FMT ": data_offsets has more than 2 values", name);
        }
        if (out) out[*n] = (int64_t)num.value;
        (*n)++;
        json_skip_ws(&p->r);
        if (p->r.s[p->r.pos++] == ']') return ST_OK;
    }
}

/* One tensor entry: {"dtype": ..., "shape": [...], "data_offsets": [b, e]} for tensor `name`. */
static st_status parse_entry(parser *p, schema *sc, const char *name) {
    st_status st;
    json_skip_ws(&p->r);
    if (json_peek(&p->r) != '{')
        return fail(p->err, ST_ERR_ENTRY_NOT_OBJECT, p->label,
                    NAME_FMT ": entry is %s, not an object", name, json_type_at(&p->r));
    p->r.pos++;
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    st_dtype dtype = ST_U8;
    int64_t shape[ST_MAX_NDIM], offsets[2];
    size_t ndim = 0, noff = 0;
    json_skip_ws(&p->r);
    if (json_peek(&p->r) == '}')
        p->r.pos++;
    else
        for (;;) {
            json_skip_ws(&p->r);
            size_t mark = p->r.pool_used;
            const char *key;
            if ((st = pool_string(p, &key, name))) return st;
            json_skip_ws(&p->r);
            p->r.pos++; /* ':' */
            json_skip_ws(&p->r);
            int *have = !strcmp(key, "dtype")          ? &have_dtype
                        : !strcmp(key, "shape")        ? &have_shape
                        : !strcmp(key, "data_offsets") ? &have_offsets
                                                       : NULL;
            if (!have)
                return fail(p->err, ST_ERR_UNKNOWN_FIELD, p->label,
                            NAME_FMT ": unknown field '%.60s'", name, key);
            if (*have)
                return fail(p->err, ST_ERR_DUPLICATE, p->label,
                            NAME_FMT ": field '%s' appears twice", name, key);
            *have = 1;
            if (have == &have_dtype) {
                if (json_peek(&p->r) != '"')
                    return fail(p->err, ST_ERR_FIELD_TYPE, p->label,
                                NAME_FMT ": dtype is %s, not a string", name, json_type_at(&p->r));
                const char *dname;
                if ((st = pool_string(p, &dname, name))) return st;
                int d = 0;
                while (d < ST_DTYPE_COUNT && strcmp(dtypes[d].name, dname) != 0) d++;
                if (d == ST_DTYPE_COUNT)
                    return fail(p->err, ST_ERR_DTYPE, p->label, NAME_FMT ": unknown dtype '%.40s'",
                                name, dname);
                dtype = (st_dtype)d;
            } else if (have == &have_shape) {
                if ((st = parse_uint_array(p, name, "shape", shape, ST_MAX_NDIM, &ndim))) return st;
            } else {
                if ((st = parse_uint_array(p, name, "data_offsets", offsets, 2, &noff))) return st;
                if (noff != 2)
                    return fail(p->err, ST_ERR_OFFSET_VALUE, p->label,
                                NAME_FMT ": data_offsets has %zu values, not 2", name, noff);
            }
            p->r.pool_used = mark; /* field names and dtype strings need not be kept */
            json_skip_ws(&p->r);
            if (p->r.s[p->r.pos++] == '}') break;
        }
    const char *missing = !have_dtype     ? "dtype"
                          : !have_shape   ? "shape"
                          : !have_offsets ? "data_offsets"
                                          : NULL;
    if (missing)
        return fail(p->err, ST_ERR_MISSING_FIELD, p->label, NAME_FMT ": entry has no '%s'", name,
                    missing);

    /* Element count and byte size, with overflow checks (a zero dim makes the product 0). */
    char sbuf[128];
    uint64_t elems = 1;
    for (size_t i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && elems > UINT64_MAX / d)
            return fail(p->err, ST_ERR_OVERFLOW, p->label,
                        NAME_FMT ": shape %s has more than 2^64 elements", name,
                        nb_shape_str(sbuf, (int)ndim, shape));
        elems *= d;
    }
    uint64_t size = dtypes[dtype].size;
    if (elems > UINT64_MAX / size || elems * size > SIZE_MAX)
        return fail(p->err, ST_ERR_OVERFLOW, p->label,
                    NAME_FMT ": %s %s needs more bytes than fit in memory", name,
                    dtypes[dtype].name, nb_shape_str(sbuf, (int)ndim, shape));
    uint64_t nbytes = elems * size, begin = (uint64_t)offsets[0], end = (uint64_t)offsets[1];
    if (end < begin)
        return fail(p->err, ST_ERR_OFFSETS_BACKWARD, p->label,
                    NAME_FMT ": data_offsets [%llu, %llu] end before they begin", name,
                    (unsigned long long)begin, (unsigned long long)end);
    if (end - begin != nbytes)
        return fail(p->err, ST_ERR_SIZE_MISMATCH, p->label,
                    NAME_FMT ": data_offsets [%llu, %llu] hold %llu bytes but %s %s needs %llu",
                    name, (unsigned long long)begin, (unsigned long long)end,
                    (unsigned long long)(end - begin), dtypes[dtype].name,
                    nb_shape_str(sbuf, (int)ndim, shape), (unsigned long long)nbytes);
    if (sc->tensors) {
        st_tensor *t = &sc->tensors[sc->count];
        t->name = name;
        t->dtype = dtype;
        t->ndim = (int)ndim;
        t->shape = sc->dims + sc->ndims;
        t->nbytes = (size_t)nbytes;
        memcpy(sc->dims + sc->ndims, shape, ndim * sizeof *shape);
        sc->begin[sc->count] = begin;
    }
    sc->ndims += ndim;
    sc->count++;
    return ST_OK;
}

/* The whole header object (syntax already checked). */
static st_status parse_header(parser *p, schema *sc) {
    st_status st;
    p->r.pos = 0;
    p->r.pool_used = 0;
    int c = json_peek(&p->r);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
        return fail(p->err, ST_ERR_NOT_OBJECT, p->label,
                    "header starts with whitespace, not '{' (leading whitespace)");
    if (c != '{')
        return fail(p->err, ST_ERR_NOT_OBJECT, p->label,
                    "header is %s, not an object starting with '{'", json_type_at(&p->r));
    p->r.pos++;
    json_skip_ws(&p->r);
    if (json_peek(&p->r) == '}') return ST_OK;
    for (;;) {
        json_skip_ws(&p->r);
        const char *key;
        if ((st = pool_string(p, &key, "tensor name"))) return st;
        json_skip_ws(&p->r);
        p->r.pos++; /* ':' */
        if (!strcmp(key, "__metadata__")) {
            if (sc->seen_metadata)
                return fail(p->err, ST_ERR_DUPLICATE, p->label, "__metadata__ appears twice");
            sc->seen_metadata = 1;
            if ((st = parse_metadata(p, sc))) return st;
        } else if ((st = parse_entry(p, sc, key))) {
            return st;
        }
        json_skip_ws(&p->r);
        if (p->r.s[p->r.pos++] == '}') return ST_OK;
    }
}

/* ---- reading: tables and checks across entries --------------------------------------------- */

typedef struct {
    const char *name;
    int index;
} named;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

static int cmp_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

typedef struct {
    uint64_t begin;
    int index; /* position in the header, to keep zero-size tensors in a stable order */
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

void st_close(st_file *f) {
    if (!f) return;
    nb_free(f->buf);
    nb_free(f->pool);
    nb_free(f->tensors);
    nb_free(f->dims);
    nb_free(f->by_name);
    nb_free(f->meta);
    nb_free(f);
}

/* Checks the 8-byte header length at b against a file of len bytes; sets *n. */
static st_status check_length(const unsigned char *b, size_t len, const char *label, st_error *err,
                              uint64_t *n) {
    if (len < 8)
        return fail(err, ST_ERR_TOO_SHORT, label,
                    "file is %zu bytes, shorter than the 8-byte header length: not a "
                    "safetensors file",
                    len);
    *n = 0;
    for (int i = 7; i >= 0; i--) *n = *n << 8 | b[i];
    if (*n > ST_MAX_HEADER)
        return fail(err, ST_ERR_HEADER_TOO_LARGE, label,
                    "not a safetensors file: header length %llu (its first 8 bytes) is larger "
                    "than the limit of %u bytes",
                    (unsigned long long)*n, ST_MAX_HEADER);
    if (*n > len - 8)
        return fail(err, ST_ERR_HEADER_PAST_EOF, label,
                    "header length %llu runs past the end of the %zu-byte file: not a "
                    "safetensors file, or a truncated one",
                    (unsigned long long)*n, len);
    return ST_OK;
}

/* Passes 2 and 3: the header is UTF-8 and one JSON value, nested at most ST_MAX_DEPTH deep. */
static st_status check_syntax(parser *p) {
    size_t bad;
    if (json_check_utf8(p->r.s, p->r.len, &bad) != JSON_OK)
        return fail(p->err, ST_ERR_UTF8, p->label,
                    "header: invalid UTF-8 at byte %zu of the header (byte %zu of the file)", bad,
                    bad + 8);
    json_status js = json_skip_value(&p->r, 0, ST_MAX_DEPTH);
    if (js == JSON_OK) {
        json_skip_ws(&p->r);
        if (p->r.pos != p->r.len) {
            p->r.error = "unexpected text after the JSON value";
            js = JSON_SYNTAX;
        }
    }
    return js ? json_fail(p, js) : ST_OK;
}

/* Pass 5a: tensor names and metadata keys are unique; fills f->by_name and sorts f->meta. */
static st_status check_names(st_file *f, const char *label, st_error *err) {
    st_status st = ST_OK;
    named *names = nb_malloc(((size_t)f->count + 1) * sizeof *names);
    for (int i = 0; i < f->count; i++) names[i] = (named){f->tensors[i].name, i};
    qsort(names, (size_t)f->count, sizeof *names, cmp_named);
    for (int i = 0; i < f->count; i++) f->by_name[i] = names[i].index;
    for (int i = 1; st == ST_OK && i < f->count; i++)
        if (!strcmp(names[i].name, names[i - 1].name))
            st = fail(err, ST_ERR_DUPLICATE, label, NAME_FMT ": name appears twice in the header",
                      names[i].name);
    nb_free(names);
    qsort(f->meta, (size_t)f->nmeta, sizeof *f->meta, cmp_meta);
    for (int i = 1; st == ST_OK && i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, f->meta[i - 1].key))
            st = fail(err, ST_ERR_DUPLICATE, label, "__metadata__ key '%.120s' appears twice",
                      f->meta[i].key);
    return st;
}

/* Pass 5b: sorted by begin, the tensors' bytes tile [0, data_len) exactly. Sorts spans. */
static st_status check_offsets(const st_file *f, span *spans, size_t data_len, const char *label,
                               st_error *err) {
    qsort(spans, (size_t)f->count, sizeof *spans, cmp_span);
    uint64_t expect = 0;
    const char *prev = NULL;
    for (int i = 0; i < f->count; i++) {
        const st_tensor *t = &f->tensors[spans[i].index];
        unsigned long long bg = spans[i].begin, end = bg + t->nbytes; /* both below 2^63 */
        if (bg < expect)
            return fail(err, ST_ERR_OFFSETS_OVERLAP, label,
                        NAME_FMT ": data_offsets [%llu, %llu] overlap tensor '%.120s' (which "
                                 "ends at %llu)",
                        t->name, bg, end, prev, (unsigned long long)expect);
        if (bg > expect)
            return fail(err, ST_ERR_OFFSETS_GAP, label,
                        NAME_FMT ": data_offsets [%llu, %llu] leave a gap of %llu bytes after "
                                 "%s%.120s%s",
                        t->name, bg, end, bg - expect, prev ? "tensor '" : "the start of the data",
                        prev ? prev : "", prev ? "'" : "");
        if (end > data_len)
            return fail(err, ST_ERR_TRUNCATED, label,
                        NAME_FMT ": data_offsets [%llu, %llu] run past the end of the data (%zu "
                                 "bytes after the header): file truncated?",
                        t->name, bg, end, data_len);
        expect = end;
        prev = t->name;
    }
    if (expect != data_len)
        return fail(err, ST_ERR_TRAILING, label,
                    "%zu trailing bytes after the last tensor (data ends at %llu of %zu)",
                    data_len - (size_t)expect, (unsigned long long)expect, data_len);
    return ST_OK;
}

/* Validates the len bytes of f->buf (owned by f) and fills f's tables; frees f on error. */
static st_status parse_owned(st_file *f, const char *label, st_file **out, st_error *err) {
    uint64_t n = 0;
    st_status st = check_length(f->buf, f->len, label, err, &n);
    parser p = {.r = {.s = f->buf, .len = 0}, .label = label, .err = err};
    if (st == ST_OK) p.r = (json_reader){.s = f->buf + 8, .len = (size_t)n};
    if (st || (st = check_syntax(&p))) {
        st_close(f);
        return st;
    }
    f->pool = nb_malloc(p.r.len + 1);
    p.r.pool = f->pool;
    schema sc = {0};
    if ((st = parse_header(&p, &sc))) { /* counting pass: finds every schema error */
        st_close(f);
        return st;
    }
    f->tensors = nb_calloc(((size_t)sc.count + 1) * sizeof *f->tensors);
    f->dims = nb_malloc((sc.ndims + 1) * sizeof *f->dims);
    f->meta = nb_malloc(((size_t)sc.nmeta + 1) * sizeof *f->meta);
    f->by_name = nb_malloc(((size_t)sc.count + 1) * sizeof *f->by_name);
    uint64_t *begin = nb_malloc(((size_t)sc.count + 1) * sizeof *begin);
    schema fill = {.tensors = f->tensors, .dims = f->dims, .meta = f->meta, .begin = begin};
    st = parse_header(&p, &fill); /* the same bytes again: cannot fail, but checked all the same */
    f->count = fill.count;
    f->nmeta = fill.nmeta;
    span *spans = nb_malloc(((size_t)f->count + 1) * sizeof *spans);
    for (int i = 0; i < f->count; i++) spans[i] = (span){begin[i], i};
    nb_free(begin);
    if (st == ST_OK) st = check_names(f, label, err);
    if (st == ST_OK) st = check_offsets(f, spans, f->len - 8 - (size_t)n, label, err);
    if (st) {
        nb_free(spans);
        st_close(f);
        return st;
    }
    /* Reorder the tensors by offset, point them at their bytes and renumber by_name. */
    st_tensor *sorted = nb_malloc(((size_t)f->count + 1) * sizeof *sorted);
    int *rank = nb_malloc(((size_t)f->count + 1) * sizeof *rank);
    for (int i = 0; i < f->count; i++) {
        sorted[i] = f->tensors[spans[i].index];
        sorted[i].data = f->buf + 8 + n + spans[i].begin;
        rank[spans[i].index] = i;
    }
    for (int i = 0; i < f->count; i++) f->by_name[i] = rank[f->by_name[i]];
    nb_free(f->tensors);
    nb_free(rank);
    nb_free(spans);
    f->tensors = sorted;
    set_ok(err);
    *out = f;
    return ST_OK;
}

st_status st_parse(const void *buf, size_t len, const char *label, st_file **out, st_error *err) {
    if (!label) label = "<memory>";
    if (!out || (!buf && len)) return fail(err, ST_ERR_ARG, label, "st_parse: NULL argument");
    *out = NULL;
    st_file *f = nb_calloc(sizeof *f);
    f->buf = nb_malloc(len ? len : 1);
    if (len) memcpy(f->buf, buf, len);
    f->len = len;
    return parse_owned(f, label, out, err);
}

/* Reads exactly n bytes at fd into dst; returns 0, or -1 with errno set (0 for a short file). */
static int read_all(int fd, unsigned char *dst, size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, dst, n > (1u << 30) ? (1u << 30) : n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = 0;
            return -1;
        }
        dst += r;
        n -= (size_t)r;
    }
    return 0;
}

st_status st_open(const char *path, st_file **out, st_error *err) {
    if (!out || !path) return fail(err, ST_ERR_ARG, path, "st_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail(err, ST_ERR_IO, path, "cannot open: %s", strerror(errno));
    struct stat sb;
    st_status st = ST_OK;
    if (fstat(fd, &sb) != 0)
        st = fail(err, ST_ERR_IO, path, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = fail(err, ST_ERR_IO, path, "not a regular file");
    else if (sb.st_size < 0 || (uintmax_t)sb.st_size > SIZE_MAX / 2)
        st = fail(err, ST_ERR_IO, path, "file of %lld bytes is too large to read",
                  (long long)sb.st_size);
    size_t len = st ? 0 : (size_t)sb.st_size;
    /* The header length is checked against the size before the whole file is read. */
    unsigned char head[8] = {0};
    uint64_t n;
    if (!st && len >= 8 && read_all(fd, head, 8) != 0)
        st = fail(err, ST_ERR_IO, path, "cannot read: %s",
                  errno ? strerror(errno) : "file shrank while reading");
    if (!st) st = check_length(head, len, path, err, &n);
    st_file *f = NULL;
    if (!st) {
        f = nb_calloc(sizeof *f);
        f->buf = nb_malloc(len);
        f->len = len;
        memcpy(f->buf, head, 8);
        if (read_all(fd, f->buf + 8, len - 8) != 0)
            st = fail(err, ST_ERR_IO, path, "cannot read: %s",
                      errno ? strerror(errno) : "file shrank while reading");
    }
    close(fd);
    if (st) {
        st_close(f);
        return st;
    }
    return parse_owned(f, path, out, err);
}

/* ---- lookups ------------------------------------------------------------------------------- */

int st_count(const st_file *f) {
    return f ? f->count : 0;
}

const st_tensor *st_get(const st_file *f, int i) {
    return f && i >= 0 && i < f->count ? &f->tensors[i] : NULL;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->count - 1; /* binary search over by_name */
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int st_meta_count(const st_file *f) {
    return f ? f->nmeta : 0;
}

st_meta st_meta_at(const st_file *f, int i) {
    if (!f || i < 0 || i >= f->nmeta) return (st_meta){NULL, NULL};
    return f->meta[i];
}

const char *st_meta_get(const st_file *f, const char *key) {
    if (!f || !key) return NULL;
    const st_meta probe = {key, NULL};
    const st_meta *m = bsearch(&probe, f->meta, (size_t)f->nmeta, sizeof *f->meta, cmp_meta);
    return m ? m->value : NULL;
}

/* Finds `name` and checks it has the expected shape; the shared half of st_read_real/_i64. */
static st_status find_shaped(const st_file *f, const char *name, int ndim, const int64_t *shape,
                             const st_tensor **out, st_error *err) {
    if (!f || !name || ndim < 0 || (ndim > 0 && !shape))
        return fail(err, ST_ERR_ARG, name, "NULL or bad argument");
    const st_tensor *t = st_find(f, name);
    if (!t) return fail(err, ST_ERR_NOT_FOUND, name, "no such tensor in the file");
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[128], b[128];
        return fail(err, ST_ERR_SHAPE_MISMATCH, name, "shape %s in file, model expects %s",
                    nb_shape_str(a, t->ndim, t->shape), nb_shape_str(b, ndim, shape));
    }
    *out = t;
    return ST_OK;
}

st_status st_read_real(const st_file *f, const char *name, real *dst, int ndim,
                       const int64_t *shape, st_error *err) {
    const st_tensor *t;
    st_status st = find_shaped(f, name, ndim, shape, &t, err);
    if (st) return st;
    if (t->dtype != ST_F32 && t->dtype != ST_F64)
        return fail(err, ST_ERR_DTYPE_MISMATCH, name, "dtype %s in file, model expects F32 or F64",
                    dtypes[t->dtype].name);
    size_t size = dtypes[t->dtype].size, count = t->nbytes / size;
    if (count && !dst) return fail(err, ST_ERR_ARG, name, "NULL destination");
    const unsigned char *src = t->data;
    for (size_t i = 0; i < count; i++) {
        if (t->dtype == ST_F32) {
            float v;
            copy_le(&v, src + i * 4, 4);
            dst[i] = (real)v;
        } else {
            double v;
            copy_le(&v, src + i * 8, 8);
            dst[i] = (real)v;
        }
    }
    set_ok(err);
    return ST_OK;
}

st_status st_read_i64(const st_file *f, const char *name, int64_t *dst, int ndim,
                      const int64_t *shape, st_error *err) {
    const st_tensor *t;
    st_status st = find_shaped(f, name, ndim, shape, &t, err);
    if (st) return st;
    int is_signed =
        t->dtype == ST_I8 || t->dtype == ST_I16 || t->dtype == ST_I32 || t->dtype == ST_I64;
    int is_unsigned = t->dtype == ST_BOOL || t->dtype == ST_U8 || t->dtype == ST_U16 ||
                      t->dtype == ST_U32 || t->dtype == ST_U64;
    if (!is_signed && !is_unsigned)
        return fail(err, ST_ERR_DTYPE_MISMATCH, name, "dtype %s in file, expected an integer dtype",
                    dtypes[t->dtype].name);
    size_t size = dtypes[t->dtype].size, count = t->nbytes / size;
    if (count && !dst) return fail(err, ST_ERR_ARG, name, "NULL destination");
    const unsigned char *src = t->data;
    for (size_t i = 0; i < count; i++) {
        uint64_t u = 0; /* little-endian bytes, sign-extended below */
        for (size_t k = size; k-- > 0;) u = u << 8 | src[i * size + k];
        if (is_signed && size < 8 && (u >> (8 * size - 1)) & 1) u |= UINT64_MAX << (8 * size);
        if (!is_signed && u > (uint64_t)INT64_MAX)
            return fail(err, ST_ERR_DTYPE_MISMATCH, name, "U64 element %zu is %llu, beyond int64",
                        i, (unsigned long long)u);
        dst[i] = u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1; /* two's complement */
    }
    set_ok(err);
    return ST_OK;
}
