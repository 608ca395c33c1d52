/* tests/test_safetensors.c: safetensors round trips (bit-exact), every malformed-file case in
 * tests/data/safetensors/ (made by tools/make_bad_safetensors.py), atomic writes that fail
 * without touching the old checkpoint, a mutation loop that must never crash, and a
 * cross-check with tools/st_read.py (plain json + struct). Run from the repository root. */
#include "nn/safetensors.h"
#include "tensor/base.h"
#include "tensor/rng.h"
#include "tests/check_main.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DATA_DIR "tests/data/safetensors/"

/* ---- helpers ------------------------------------------------------------------------------- */

/* A fresh directory under /tmp; removed by rm_dir. */
static char *make_dir(char *buf) {
    strcpy(buf, "/tmp/nabla-st-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(buf));
    return buf;
}

static void rm_dir(const char *dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "chmod -R u+w '%s' 2>/dev/null; rm -rf '%s'", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Reads a whole file into a malloc'd buffer; *len gets its size. NULL if it cannot. */
static unsigned char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, fp);
    fclose(fp);
    return b;
}

/* Number of entries in dir other than . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_from(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double f64_from(uint64_t u) {
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* A checkpoint with every interesting value: NaN payloads, -0.0, denormals, infinities. */
enum { NF = 9, ND = 7 };
static float fvals[NF];
static double dvals[ND];
static const int64_t ivals[4] = {INT64_MIN, -1, 0, INT64_MAX};
static const int32_t i32vals[3] = {-7, 0, 2147483647};
static const uint8_t u8vals[5] = {0, 1, 127, 128, 255};
static const int64_t fshape[2] = {3, 3}, dshape[1] = {ND}, ishape[1] = {4}, i32shape[1] = {3},
                     u8shape[2] = {1, 5}, zshape[2] = {0, 3};
static const int64_t step = 123456789012345LL;

static void fill_values(void) {
    float f[NF] = {1.0f,     -0.0f,     FLT_TRUE_MIN,          FLT_MIN / 3,
                   INFINITY, -INFINITY, f32_from(0x7fc12345u), f32_from(0xffa00001u),
                   FLT_MAX};
    double d[ND] = {0.1,
                    -0.0,
                    DBL_TRUE_MIN,
                    f64_from(0x7ff8dead0000beefULL),
                    f64_from(0xfff0000000000001ULL),
                    -DBL_MAX,
                    1e-310};
    memcpy(fvals, f, sizeof f);
    memcpy(dvals, d, sizeof d);
}

static int make_tensors(st_tensor *t) {
    fill_values();
    int n = 0;
    t[n++] = (st_tensor){
        .name = "enc.weight", .dtype = ST_F32, .ndim = 2, .shape = fshape, .data = fvals};
    t[n++] =
        (st_tensor){.name = "dec.bias", .dtype = ST_F64, .ndim = 1, .shape = dshape, .data = dvals};
    t[n++] =
        (st_tensor){.name = "ints", .dtype = ST_I64, .ndim = 1, .shape = ishape, .data = ivals};
    t[n++] =
        (st_tensor){.name = "i32", .dtype = ST_I32, .ndim = 1, .shape = i32shape, .data = i32vals};
    t[n++] =
        (st_tensor){.name = "bytes", .dtype = ST_U8, .ndim = 2, .shape = u8shape, .data = u8vals};
    t[n++] =
        (st_tensor){.name = "empty", .dtype = ST_F32, .ndim = 2, .shape = zshape, .data = NULL};
    t[n++] = (st_tensor){.name = "step", .dtype = ST_I64, .ndim = 0, .shape = NULL, .data = &step};
    return n;
}

static const st_meta meta[] = {
    {"format", "pt"},
    {"quote\"back\\slash", "line\nbreak\ttab\x01 ctrl"},
    {"unicode \xce\xbc\xcf\x83", "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"},
    {"empty", ""},
};
#define NMETA ((int)(sizeof meta / sizeof meta[0]))

/* ---- round trips --------------------------------------------------------------------------- */

START_TEST(test_roundtrip_bit_exact) {
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    st_tensor t[16];
    int n = make_tensors(t);
    st_error err;
    ck_assert_msg(st_save(path, t, n, meta, NMETA, &err) == ST_OK, "%s", err.message);
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary file left behind */

    int64_t live = nb_mem_stats().live;
    st_file *f;
    ck_assert_msg(st_open(path, &f, &err) == ST_OK, "%s", err.message);
    ck_assert_int_eq(st_count(f), n);
    for (int i = 0; i < n; i++) {
        const st_tensor *r = st_find(f, t[i].name);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r->name, t[i].name);
        ck_assert_int_eq(r->dtype, t[i].dtype);
        ck_assert_int_eq(r->ndim, t[i].ndim);
        size_t bytes = st_dtype_size(t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) {
            ck_assert_int_eq(r->shape[d], t[i].shape[d]);
            bytes *= (size_t)t[i].shape[d];
        }
        ck_assert_uint_eq(r->nbytes, bytes);
        if (bytes) ck_assert_msg(memcmp(r->data, t[i].data, bytes) == 0, "%s differs", t[i].name);
        ck_assert_ptr_eq(st_get(f, i), r); /* written in order, so file order is ours */
    }
    ck_assert_ptr_null(st_find(f, "missing"));
    ck_assert_ptr_null(st_get(f, n));
    ck_assert_ptr_null(st_get(f, -1));

    /* st_read_real: exact for every value, NaNs stay NaN (their payload is checked above). */
    real w[9];
    ck_assert_msg(st_read_real(f, "enc.weight", w, 2, fshape, &err) == ST_OK, "%s", err.message);
    for (int i = 0; i < NF; i++) {
        if (isnan(fvals[i]))
            ck_assert(isnan(w[i]));
        else
            ck_assert(w[i] == (real)fvals[i] && !signbit(w[i]) == !signbit(fvals[i]));
    }
    real d[ND];
    ck_assert_msg(st_read_real(f, "dec.bias", d, 1, dshape, &err) == ST_OK, "%s", err.message);
    for (int i = 0; i < ND; i++) {
        if (isnan(dvals[i]))
            ck_assert(isnan(d[i]));
        else
            ck_assert(d[i] == (real)dvals[i] && !signbit(d[i]) == !signbit(dvals[i]));
    }
#ifndef NB_DOUBLE
    for (int i = 0; i < NF; i++)
        if (!isnan(fvals[i])) ck_assert_uint_eq(f32_bits(w[i]), f32_bits(fvals[i]));
#endif
    int64_t iv[4], s, i32[3], u8[5];
    ck_assert(st_read_i64(f, "ints", iv, 1, ishape, &err) == ST_OK);
    ck_assert(memcmp(iv, ivals, sizeof iv) == 0);
    ck_assert(st_read_i64(f, "step", &s, 0, NULL, &err) == ST_OK);
    ck_assert(s == step);
    ck_assert(st_read_i64(f, "i32", i32, 1, i32shape, &err) == ST_OK);
    for (int i = 0; i < 3; i++) ck_assert(i32[i] == i32vals[i]);
    ck_assert(st_read_i64(f, "bytes", u8, 2, u8shape, &err) == ST_OK);
    for (int i = 0; i < 5; i++) ck_assert(u8[i] == u8vals[i]);
    ck_assert(st_read_real(f, "empty", NULL, 2, zshape, &err) == ST_OK);

    /* Metadata, with escapes and unicode, comes back byte for byte. */
    ck_assert_int_eq(st_meta_count(f), NMETA);
    for (int i = 0; i < NMETA; i++) {
        const char *v = st_meta_get(f, meta[i].key);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v, meta[i].value);
    }
    ck_assert_ptr_null(st_meta_get(f, "absent"));
    ck_assert_ptr_null(st_meta_at(f, NMETA).key);
    ck_assert_ptr_nonnull(st_meta_at(f, 0).key);
    st_close(f);
    ck_assert_int_eq(nb_mem_stats().live, live);
    st_close(NULL);

    /* The file's header is a '{' and padded to 8 with spaces; st_parse agrees with st_open. */
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = hn << 8 | b[i];
    ck_assert_uint_eq(hn % 8, 0);
    ck_assert_int_eq(b[8], '{');
    ck_assert(st_parse(b, len, "mem", &f, &err) == ST_OK);
    ck_assert_int_eq(st_count(f), n);
    st_close(f);
    free(b);
    rm_dir(dir);
}
END_TEST

START_TEST(test_lookup_errors) {
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    int64_t shape[2] = {400, 784}, want[2] = {400, 700};
    float *w = calloc(400 * 784, sizeof *w);
    int64_t step1 = 5;
    st_tensor t[2] = {
        {.name = "encoder.fc1.weight", .dtype = ST_F32, .ndim = 2, .shape = shape, .data = w},
        {.name = "step", .dtype = ST_I64, .ndim = 0, .data = &step1}};
    st_error err;
    ck_assert(st_save(path, t, 2, NULL, 0, &err) == ST_OK);
    st_file *f;
    ck_assert(st_open(path, &f, &err) == ST_OK);
    real *dst = nb_malloc(400 * 784 * sizeof *dst);
    ck_assert_int_eq(st_read_real(f, "encoder.fc1.weight", dst, 2, want, &err),
                     ST_ERR_SHAPE_MISMATCH);
    ck_assert_int_eq(err.code, ST_ERR_SHAPE_MISMATCH);
    ck_assert_str_eq(err.message,
                     "encoder.fc1.weight: shape [400, 784] in file, model expects [400, 700]");
    ck_assert_int_eq(st_read_real(f, "encoder.fc1.weight", dst, 1, want, &err),
                     ST_ERR_SHAPE_MISMATCH);
    ck_assert_int_eq(st_read_real(f, "encoder.fc2.weight", dst, 2, shape, &err), ST_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(err.message, "encoder.fc2.weight"));
    ck_assert_int_eq(st_read_real(f, "step", dst, 0, NULL, &err), ST_ERR_DTYPE_MISMATCH);
    ck_assert_ptr_nonnull(strstr(err.message, "I64"));
    int64_t s;
    ck_assert_int_eq(st_read_i64(f, "encoder.fc1.weight", &s, 2, shape, &err),
                     ST_ERR_DTYPE_MISMATCH);
    ck_assert_int_eq(st_read_real(f, "encoder.fc1.weight", dst, 2, shape, &err), ST_OK);
    ck_assert_int_eq(err.code, ST_OK);
    nb_free(dst);
    free(w);
    st_close(f);
    rm_dir(dir);
}
END_TEST

/* Bad arguments to st_save are refused before anything is written. */
START_TEST(test_save_rejects_bad_arguments) {
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    float v[2] = {1, 2};
    int64_t s2[1] = {2}, neg[1] = {-1};
    st_tensor a = {.name = "a", .dtype = ST_F32, .ndim = 1, .shape = s2, .data = v};
    st_error err;
    st_tensor dup[2] = {a, a};
    ck_assert_int_eq(st_save(path, dup, 2, NULL, 0, &err), ST_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "twice"));
    st_tensor bad = a;
    bad.name = "__metadata__";
    ck_assert_int_eq(st_save(path, &bad, 1, NULL, 0, &err), ST_ERR_ARG);
    bad = a;
    bad.shape = neg;
    ck_assert_int_eq(st_save(path, &bad, 1, NULL, 0, &err), ST_ERR_ARG);
    bad = a;
    bad.name = "bad\xff";
    ck_assert_int_eq(st_save(path, &bad, 1, NULL, 0, &err), ST_ERR_ARG);
    bad = a;
    bad.data = NULL;
    ck_assert_int_eq(st_save(path, &bad, 1, NULL, 0, &err), ST_ERR_ARG);
    bad = a;
    bad.dtype = ST_DTYPE_COUNT;
    ck_assert_int_eq(st_save(path, &bad, 1, NULL, 0, &err), ST_ERR_ARG);
    st_meta m2[2] = {{"k", "1"}, {"k", "2"}};
    ck_assert_int_eq(st_save(path, &a, 1, m2, 2, &err), ST_ERR_ARG);
    int64_t huge[3] = {INT64_MAX, INT64_MAX, 4};
    bad = a;
    bad.ndim = 3;
    bad.shape = huge;
    ck_assert_int_eq(st_save(path, &bad, 1, NULL, 0, &err), ST_ERR_OVERFLOW);
    ck_assert_int_eq(count_entries(dir), 0);
    /* An empty checkpoint is fine: "{}" padded, no data. */
    ck_assert_int_eq(st_save(path, NULL, 0, NULL, 0, &err), ST_OK);
    st_file *f;
    ck_assert_int_eq(st_open(path, &f, &err), ST_OK);
    ck_assert_int_eq(st_count(f), 0);
    st_close(f);
    rm_dir(dir);
}
END_TEST

/* ---- malformed files ----------------------------------------------------------------------- */

static const struct {
    const char *file;
    st_status code;
    const char *fragment;
} bad_files[] = {
    {"too_short", ST_ERR_TOO_SHORT, "5 bytes, shorter than the 8-byte header length: not a"},
    {"header_too_large", ST_ERR_HEADER_TOO_LARGE,
     "not a safetensors file: header length 100000001 (its first 8 bytes) is larger than the "
     "limit"},
    {"header_past_eof", ST_ERR_HEADER_PAST_EOF,
     "header length 64 runs past the end of the 16-byte file: not a safetensors file"},
    {"bad_utf8", ST_ERR_UTF8, "invalid UTF-8 at byte 3 of the header (byte 11 of the file)"},
    {"overlong_utf8", ST_ERR_UTF8, "invalid UTF-8 at byte 3"},
    {"bad_json", ST_ERR_JSON,
     "expected a string key at byte 20 of the header (byte 28 of the file)"},
    {"trailing_comma", ST_ERR_JSON, "expected a string key at byte"},
    {"lone_surrogate", ST_ERR_JSON, "high surrogate not followed by a low one"},
    {"too_deep", ST_ERR_TOO_DEEP, "nested deeper than 64 levels"},
    {"not_object", ST_ERR_NOT_OBJECT, "header is an array"},
    {"leading_space", ST_ERR_NOT_OBJECT, "leading whitespace"},
    {"entry_not_object", ST_ERR_ENTRY_NOT_OBJECT, "tensor 'w': entry is an array, not an object"},
    {"missing_field", ST_ERR_MISSING_FIELD, "tensor 'w': entry has no 'data_offsets'"},
    {"dtype_not_string", ST_ERR_FIELD_TYPE, "tensor 'w': dtype is a number, not a string"},
    {"shape_not_array", ST_ERR_FIELD_TYPE, "tensor 'w': shape is a string, not an array"},
    {"unknown_field", ST_ERR_UNKNOWN_FIELD, "tensor 'w': unknown field 'strides'"},
    {"duplicate_field", ST_ERR_DUPLICATE, "tensor 'w': field 'dtype' appears twice"},
    {"unknown_dtype", ST_ERR_DTYPE, "tensor 'w': unknown dtype 'F33'"},
    {"negative_shape", ST_ERR_SHAPE, "tensor 'w': shape value '-2' is negative"},
    {"fractional_shape", ST_ERR_SHAPE, "tensor 'w': shape value '2.5' is not an integer"},
    {"offsets_three", ST_ERR_OFFSET_VALUE, "tensor 'w': data_offsets has more than 2 values"},
    {"offsets_negative", ST_ERR_OFFSET_VALUE, "tensor 'w': data_offsets value '-8' is negative"},
    {"shape_overflow", ST_ERR_OVERFLOW, "has more than 2^64 elements"},
    {"bytes_overflow", ST_ERR_OVERFLOW, "tensor 'w': F64 [4611686018427387904] needs more bytes"},
    {"offsets_backward", ST_ERR_OFFSETS_BACKWARD,
     "tensor 'w': data_offsets [8, 0] end before they begin"},
    {"size_mismatch", ST_ERR_SIZE_MISMATCH,
     "tensor 'w': data_offsets [0, 12] hold 12 bytes but F32 [2] needs 8"},
    {"offsets_overlap", ST_ERR_OFFSETS_OVERLAP,
     "tensor 'b': data_offsets [4, 12] overlap tensor 'a'"},
    {"offsets_gap", ST_ERR_OFFSETS_GAP,
     "tensor 'b': data_offsets [12, 20] leave a gap of 4 bytes after tensor 'a'"},
    {"offsets_past_end", ST_ERR_TRUNCATED,
     "tensor 'w': data_offsets [0, 16] run past the end of the data (8 bytes"},
    {"truncated", ST_ERR_TRUNCATED, "tensor 'b': data_offsets [8, 16] run past the end"},
    {"trailing_bytes", ST_ERR_TRAILING, "4 trailing bytes after the last tensor"},
    {"duplicate_name", ST_ERR_DUPLICATE, "tensor 'a': name appears twice"},
    {"duplicate_meta_key", ST_ERR_DUPLICATE, "__metadata__ key 'k' appears twice"},
    {"metadata_not_strings", ST_ERR_METADATA, "__metadata__ 'epoch' is a number, not a string"},
    {"metadata_not_object", ST_ERR_METADATA, "__metadata__ is a string, not an object"},
    {"nul_in_name", ST_ERR_NUL, "string contains \\u0000"},
};
#define NBAD ((int)(sizeof bad_files / sizeof bad_files[0]))

START_TEST(test_malformed_file) {
    char path[256];
    snprintf(path, sizeof path, DATA_DIR "%s.safetensors", bad_files[_i].file);
    struct stat sb;
    ck_assert_msg(stat(path, &sb) == 0,
                  "%s missing: run from the repository root (or tools/make_bad_safetensors.py)",
                  path);
    int64_t live = nb_mem_stats().live;
    st_file *f = (st_file *)&sb; /* must be set to NULL on failure */
    st_error err;
    st_status st = st_open(path, &f, &err);
    ck_assert_msg(st == bad_files[_i].code, "%s: got %d (%s: %s), want %d (%s)", path, st,
                  st_strerror(st), err.message, bad_files[_i].code,
                  st_strerror(bad_files[_i].code));
    ck_assert_int_eq(err.code, st);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err.message, bad_files[_i].fragment), "%s: message '%s' lacks '%s'", path,
                  err.message, bad_files[_i].fragment);
    ck_assert_msg(strncmp(err.message, path, strlen(path)) == 0,
                  "message does not name the file: %s", err.message);
    ck_assert_int_eq(nb_mem_stats().live, live);
    /* The same bytes through st_parse give the same answer. */
    size_t len = 0;
    unsigned char *b = slurp(path, &len);
    ck_assert_int_eq(st_parse(b, len, "buf", &f, &err), bad_files[_i].code);
    ck_assert_ptr_nonnull(strstr(err.message, bad_files[_i].fragment));
    free(b);
}
END_TEST

/* Every code has its own text, and each malformed case above has its own code where the brief
 * asks for one (the exceptions share a code on purpose: two files per kind of damage). */
START_TEST(test_codes_distinct) {
    for (int a = 0; a < ST_STATUS_COUNT; a++) {
        ck_assert_ptr_nonnull(st_strerror((st_status)a));
        for (int b = 0; b < a; b++)
            ck_assert_str_ne(st_strerror((st_status)a), st_strerror((st_status)b));
    }
    ck_assert_str_eq(st_strerror((st_status)999), "unknown status");
    ck_assert_str_eq(st_dtype_name(ST_BF16), "BF16");
    ck_assert_uint_eq(st_dtype_size(ST_I64), 8);
    ck_assert_uint_eq(st_dtype_size((st_dtype)99), 0);
}
END_TEST

START_TEST(test_good_file_and_open_errors) {
    st_file *f;
    st_error err;
    ck_assert_msg(st_open(DATA_DIR "good.safetensors", &f, &err) == ST_OK, "%s", err.message);
    ck_assert_int_eq(st_count(f), 2);
    ck_assert_str_eq(st_meta_get(f, "epoch"), "1");
    int64_t two[1] = {2}, one[1] = {1}, seven;
    real a[2];
    ck_assert(st_read_real(f, "a", a, 1, two, &err) == ST_OK);
    ck_assert(a[0] == 1.5 && a[1] == -2.0);
    ck_assert(st_read_i64(f, "b", &seven, 1, one, &err) == ST_OK);
    ck_assert(seven == 7);
    st_close(f);
    ck_assert_int_eq(st_open("/nonexistent/x.safetensors", &f, &err), ST_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "cannot open"));
    ck_assert_int_eq(st_open("/tmp", &f, &err), ST_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "not a regular file"));
    ck_assert_int_eq(st_parse(NULL, 0, NULL, &f, &err), ST_ERR_TOO_SHORT);
    ck_assert_ptr_nonnull(strstr(err.message, "<memory>"));
}
END_TEST

/* A header length that ends exactly at the end of the file is read; one byte more (len - 7) runs
 * past it. A text file (README.md) is "not a safetensors file", not a header length of 7.5e18. */
START_TEST(test_header_length_edges) {
    static const char json[] = "{\"__metadata__\":{\"k\":\"v\"}}";
    size_t hn = sizeof json - 1, len = 8 + hn;
    unsigned char buf[64];
    memcpy(buf + 8, json, hn);
    st_file *f;
    st_error err;
    for (uint64_t n = len - 8; n <= len - 6; n++) { /* len - 8 fits; len - 7, len - 6 do not */
        for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
        st_status st = st_parse(buf, len, "edge", &f, &err);
        if (n == len - 8) {
            ck_assert_msg(st == ST_OK, "a header that ends at the end of the file: %s",
                          err.message);
            ck_assert_str_eq(st_meta_get(f, "k"), "v");
            st_close(f);
        } else {
            ck_assert_msg(st == ST_ERR_HEADER_PAST_EOF, "header length len - %d: got %s",
                          (int)(len - n), st_strerror(st));
            ck_assert_ptr_null(f);
        }
    }
    ck_assert_int_eq(st_open("README.md", &f, &err), ST_ERR_HEADER_TOO_LARGE);
    ck_assert_msg(strstr(err.message, "README.md: not a safetensors file"), "%s", err.message);
}
END_TEST

/* ---- atomic writes ------------------------------------------------------------------------- */

/* Saves a small "old" checkpoint at path and returns its bytes. */
static unsigned char *save_old(const char *path, size_t *len) {
    float v[3] = {1, 2, 3};
    int64_t s[1] = {3};
    st_tensor t = {.name = "old", .dtype = ST_F32, .ndim = 1, .shape = s, .data = v};
    st_error err;
    ck_assert(st_save(path, &t, 1, NULL, 0, &err) == ST_OK);
    return slurp(path, len);
}

static void assert_unchanged(const char *path, const unsigned char *old, size_t len) {
    size_t now_len;
    unsigned char *now = slurp(path, &now_len);
    ck_assert_ptr_nonnull(now);
    ck_assert_uint_eq(now_len, len);
    ck_assert(memcmp(now, old, len) == 0);
    free(now);
}

START_TEST(test_failed_save_keeps_old_file) {
    char dir[64], path[128], tmp[192];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    size_t len = 0;
    unsigned char *old = save_old(path, &len);
    float big[64];
    memset(big, 0, sizeof big);
    int64_t s[1] = {64};
    st_tensor t = {.name = "new", .dtype = ST_F32, .ndim = 1, .shape = s, .data = big};
    st_error err;

    /* 1. The temporary file cannot be created (a directory sits at its name; fails even as root).
     */
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    ck_assert_int_eq(st_save(path, &t, 1, NULL, 0, &err), ST_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "cannot create"));
    ck_assert_ptr_nonnull(strstr(err.message, path));
    assert_unchanged(path, old, len);
    ck_assert_int_eq(rmdir(tmp), 0);

    /* 2. The directory is not writable. Permissions do not bind root, so as root a directory of
     * a file system nobody can create files in stands in: /proc (its /proc/version stays). */
    if (geteuid() != 0) {
        ck_assert_int_eq(chmod(dir, 0500), 0);
        ck_assert_int_eq(st_save(path, &t, 1, NULL, 0, &err), ST_ERR_IO);
        ck_assert_int_eq(chmod(dir, 0700), 0);
        assert_unchanged(path, old, len);
    } else {
        unsigned char before[1024], after[1024];
        FILE *v = fopen("/proc/version", "rb"); /* procfs files have no size: read, not stat */
        ck_assert_msg(v != NULL, "as root this case needs /proc/version (Linux procfs)");
        size_t vlen = fread(before, 1, sizeof before, v);
        fclose(v);
        ck_assert_uint_gt(vlen, 0);
        ck_assert_int_eq(st_save("/proc/version", &t, 1, NULL, 0, &err), ST_ERR_IO);
        ck_assert_msg(strstr(err.message, "cannot create"), "%s", err.message);
        v = fopen("/proc/version", "rb");
        ck_assert_ptr_nonnull(v);
        ck_assert_uint_eq(fread(after, 1, sizeof after, v), vlen);
        fclose(v);
        ck_assert(memcmp(before, after, vlen) == 0);
    }

    /* 3. Writing fails half way (file size limit, like a full disk): temp file removed. */
    struct rlimit saved, small = {.rlim_cur = 100, .rlim_max = RLIM_INFINITY};
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small.rlim_max = saved.rlim_max;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    st_status st = st_save(path, &t, 1, NULL, 0, &err);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);
    ck_assert_int_eq(st, ST_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "cannot write"));
    assert_unchanged(path, old, len);
    ck_assert_int_eq(count_entries(dir), 1);

    /* 4. The target's directory does not exist. */
    char nodir[160];
    snprintf(nodir, sizeof nodir, "%s/missing/ckpt.safetensors", dir);
    ck_assert_int_eq(st_save(nodir, &t, 1, NULL, 0, &err), ST_ERR_IO);

    /* And a save that works replaces the file whole. */
    ck_assert_int_eq(st_save(path, &t, 1, NULL, 0, &err), ST_OK);
    st_file *f;
    ck_assert_int_eq(st_open(path, &f, &err), ST_OK);
    ck_assert_ptr_nonnull(st_find(f, "new"));
    ck_assert_ptr_null(st_find(f, "old"));
    st_close(f);
    ck_assert_int_eq(count_entries(dir), 1);
    free(old);
    rm_dir(dir);
}
END_TEST

/* A killed writer's "<path>.tmp.<pid>" is removed by the next st_remove_stale_temps; a live
 * writer's, this process's, another target's and a name that is not a pid are kept. */
START_TEST(test_stale_temps_removed) {
    char dir[64], path[128], name[192];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    pid_t child = fork(); /* a pid that surely belongs to no process once reaped */
    ck_assert_int_ge(child, 0);
    if (child == 0) _exit(0);
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    const struct {
        const char *fmt;
        long pid;
        bool removed;
    } files[] = {
        {"%s.tmp.%ld", (long)child, true},     {"%s.tmp.%ld", (long)getppid(), false},
        {"%s.tmp.%ld", (long)getpid(), false}, {"%s.tmp.%ldx", (long)child, false},
        {"%s.tmpx.%ld", (long)child, false},   {"%s2.tmp.%ld", (long)child, false},
    };
    int n = (int)(sizeof files / sizeof files[0]);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, files[i].fmt, path, files[i].pid);
        FILE *f = fopen(name, "wb");
        ck_assert_ptr_nonnull(f);
        fputs("partial", f);
        ck_assert_int_eq(fclose(f), 0);
    }
    ck_assert_int_eq(st_remove_stale_temps(path), 1);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, files[i].fmt, path, files[i].pid);
        ck_assert_msg(access(name, F_OK) == (files[i].removed ? -1 : 0), "%s %s", name,
                      files[i].removed ? "was kept" : "was removed");
    }
    ck_assert_int_eq(st_remove_stale_temps(path), 0);
    ck_assert_int_eq(st_remove_stale_temps("/nonexistent/dir/x.safetensors"), 0);
    rm_dir(dir);
}
END_TEST

/* ---- mutations ----------------------------------------------------------------------------- */

/* Random flips, truncations, insertions and JSON-ish bytes over a valid file: every outcome is
 * ST_OK with consistent tables or an error with a message; no crash, no leak. */
START_TEST(test_mutations_never_crash) {
    char dir[64], path[128];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    st_tensor t[16];
    int n = make_tensors(t);
    st_error err;
    ck_assert(st_save(path, t, n, meta, NMETA, &err) == ST_OK);
    size_t len = 0;
    unsigned char *good = slurp(path, &len);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = hn << 8 | good[i];
    unsigned char *buf = malloc(len + 64);
    static const char tokens[] = "{}[]\":,-0123456789.eE\\u \x00\xff\xc3tfn";
    nb_rng rng;
    nb_rng_seed(&rng, 1234);
    int64_t live = nb_mem_stats().live;
    int ok = 0, failed = 0;
    for (int iter = 0; iter < 5000; iter++) {
        memcpy(buf, good, len);
        size_t blen = len;
        int kind = (int)nb_rng_below(&rng, 5);
        int edits = 1 + (int)nb_rng_below(&rng, 4);
        for (int e = 0; e < edits; e++) {
            /* Most edits land in the header, where the parser is. */
            size_t at =
                nb_rng_below(&rng, 4) ? 8 + nb_rng_below(&rng, hn) : nb_rng_below(&rng, blen);
            if (at >= blen) at = blen - 1;
            if (kind == 0)
                buf[at] ^= (unsigned char)(1u << nb_rng_below(&rng, 8));
            else if (kind == 1)
                buf[at] = (unsigned char)tokens[nb_rng_below(&rng, sizeof tokens - 1)];
            else if (kind == 2)
                buf[at] = (unsigned char)nb_rng_below(&rng, 256);
            else if (kind == 3 && blen + 1 < len + 64) { /* insert a byte */
                memmove(buf + at + 1, buf + at, blen - at);
                buf[at] = (unsigned char)tokens[nb_rng_below(&rng, sizeof tokens - 1)];
                blen++;
            }
        }
        if (kind == 4) blen = nb_rng_below(&rng, len + 1); /* truncate */
        if (nb_rng_below(&rng, 8) == 0)
            buf[nb_rng_below(&rng, 8)] ^= (unsigned char)(1u << nb_rng_below(&rng, 8));
        st_file *f;
        st_status st = st_parse(buf, blen, "fuzz", &f, &err);
        if (st == ST_OK) {
            ok++;
            unsigned sum = 0;
            for (int i = 0; i < st_count(f); i++) {
                const st_tensor *r = st_get(f, i);
                size_t bytes = st_dtype_size(r->dtype);
                for (int d = 0; d < r->ndim; d++) bytes *= (size_t)r->shape[d];
                ck_assert_uint_eq(bytes, r->nbytes);
                for (size_t k = 0; k < r->nbytes; k++) sum += ((const unsigned char *)r->data)[k];
                ck_assert_ptr_eq(st_find(f, r->name), r);
            }
            for (int i = 0; i < st_meta_count(f); i++)
                sum += (unsigned)strlen(st_meta_at(f, i).value);
            (void)sum;
            st_close(f);
        } else {
            failed++;
            ck_assert_ptr_null(f);
            ck_assert_int_eq(err.code, st);
            ck_assert(st > ST_OK && st < ST_STATUS_COUNT);
            ck_assert_msg(strncmp(err.message, "fuzz: ", 6) == 0 && strlen(err.message) > 8, "%s",
                          err.message);
        }
    }
    ck_assert_int_eq(nb_mem_stats().live, live);
    ck_assert_int_gt(failed, 1000);
    ck_assert_int_gt(ok, 0); /* flips in the data part leave a valid file */
    free(buf);
    free(good);
    rm_dir(dir);
}
END_TEST

/* ---- the file as another reader sees it ---------------------------------------------------- */

START_TEST(test_python_reader) {
    /* any python3 will do (the reader uses json and struct only) */
    const char *py = system("command -v python3 >/dev/null 2>&1") == 0 ? "python3"
                     : access("/usr/bin/python3", X_OK) == 0           ? "/usr/bin/python3"
                                                                       : NULL;
    if (!py) {
        printf("test_safetensors: SKIPPED test_python_reader: no python3 on PATH or at "
               "/usr/bin/python3, so files were not cross-checked with tools/st_read.py\n");
        return;
    }
    char dir[64], path[128], cmd[256];
    make_dir(dir);
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    float w[6] = {0.1f, -0.0f, FLT_TRUE_MIN, 3.5f, -1e30f, 65504.0f};
    double b[2] = {1.0 / 3.0, -DBL_TRUE_MIN};
    int64_t st[1] = {987654321012LL};
    int64_t s23[2] = {2, 3}, s2[1] = {2};
    st_tensor t[3] = {{.name = "layer.w", .dtype = ST_F32, .ndim = 2, .shape = s23, .data = w},
                      {.name = "layer.b", .dtype = ST_F64, .ndim = 1, .shape = s2, .data = b},
                      {.name = "step", .dtype = ST_I64, .ndim = 0, .data = st}};
    st_meta m[1] = {{"note", "say \"hi\""}};
    st_error err;
    ck_assert(st_save(path, t, 3, m, 1, &err) == ST_OK);
    snprintf(cmd, sizeof cmd, "%s tools/st_read.py '%s' 2>&1", py, path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char line[1024];
    int lines = 0;
    while (fgets(line, sizeof line, p)) {
        lines++;
        char *rest;
        if (lines == 1) {
            ck_assert_str_eq(line, "meta \"note\" \"say \\\"hi\\\"\"\n");
        } else if (lines == 2) {
            ck_assert_msg(strncmp(line, "\"layer.w\" F32 [2, 3] ", 21) == 0, "%s", line);
            rest = line + 21;
            for (int i = 0; i < 6; i++) {
                float v = (float)strtod(rest, &rest);
                ck_assert_msg(f32_bits(v) == f32_bits(w[i]), "layer.w[%d]: %s", i, line);
            }
        } else if (lines == 3) {
            ck_assert_msg(strncmp(line, "\"layer.b\" F64 [2] ", 18) == 0, "%s", line);
            rest = line + 18;
            for (int i = 0; i < 2; i++) {
                double v = strtod(rest, &rest);
                ck_assert_msg(memcmp(&v, &b[i], 8) == 0, "layer.b[%d]: %s", i, line);
            }
        } else if (lines == 4) {
            ck_assert_str_eq(line, "\"step\" I64 [] 987654321012\n");
        }
    }
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_int_eq(lines, 4);
    rm_dir(dir);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roundtrip_bit_exact);
    tcase_add_test(tc, test_lookup_errors);
    tcase_add_test(tc, test_save_rejects_bad_arguments);
    tcase_add_loop_test(tc, test_malformed_file, 0, NBAD);
    tcase_add_test(tc, test_codes_distinct);
    tcase_add_test(tc, test_good_file_and_open_errors);
    tcase_add_test(tc, test_failed_save_keeps_old_file);
    tcase_add_test(tc, test_stale_temps_removed);
    tcase_add_test(tc, test_header_length_edges);
    tcase_add_test(tc, test_mutations_never_crash);
    tcase_add_test(tc, test_python_reader);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
