/* tests/test_png.c: the PNG writer, image grids, the bitmap font and line charts.
 *
 * Every file written is read back by a small independent PNG reader below: it parses the
 * chunks, checks each CRC with zlib's crc32, inflates the IDAT stream with zlib and undoes the
 * row filters, so a test compares the decoded pixels with what was meant to be written. */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io/chart.h"
#include "io/font.h"
#include "io/png.h"
#include "tensor/base.h"
#include "tensor/rng.h"
#include "tests/check_main.h"

/* ---- a temporary directory per test -------------------------------------------------------- */

#define MAX_FILES 32
static char tmp_dir[64];
static char tmp_files[MAX_FILES][128];
static int tmp_nfiles;

static void setup(void) {
    strcpy(tmp_dir, "/tmp/nabla_png_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
    tmp_nfiles = 0;
}

static void teardown(void) {
    for (int i = 0; i < tmp_nfiles; i++) remove(tmp_files[i]);
    rmdir(tmp_dir);
}

/* A path inside the test's directory; it (and its .tmp twin) is removed at teardown. */
static const char *tmp_path(const char *name) {
    ck_assert_int_lt(tmp_nfiles + 2, MAX_FILES);
    snprintf(tmp_files[tmp_nfiles], sizeof tmp_files[0], "%s/%s", tmp_dir, name);
    snprintf(tmp_files[tmp_nfiles + 1], sizeof tmp_files[0], "%s/%s.tmp", tmp_dir, name);
    tmp_nfiles += 2;
    return tmp_files[tmp_nfiles - 2];
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- an independent PNG reader ------------------------------------------------------------- */

typedef struct {
    int width, height, channels;
    uint8_t *pixels;     /* (height, width, channels), malloc'd */
    int idat_chunks;     /* how many IDAT chunks carried the stream */
    int filters_used[5]; /* how many rows used each filter type */
} decoded;

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    ck_assert_int_gt(n, 0);
    uint8_t *buf = malloc((size_t)n);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int unpaeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Decodes a PNG written by png_write, failing the test on any deviation from the format. */
static decoded read_png(const char *path) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    size_t len;
    uint8_t *buf = read_all(path, &len);
    ck_assert_msg(len >= 8 && memcmp(buf, sig, 8) == 0, "%s: bad signature", path);
    decoded d;
    memset(&d, 0, sizeof d);
    uint8_t *z = NULL;
    size_t zlen = 0, pos = 8;
    int seen_ihdr = 0, seen_iend = 0;
    while (pos < len) {
        ck_assert_msg(!seen_iend, "%s: data after IEND", path);
        ck_assert_uint_ge(len - pos, 12);
        uint32_t n = get_u32(buf + pos);
        ck_assert_uint_le(n, len - pos - 12);
        const uint8_t *type = buf + pos + 4, *data = buf + pos + 8;
        uLong crc = crc32(crc32(0L, type, 4), data, n);
        ck_assert_msg(crc == get_u32(data + n), "%s: bad CRC on chunk %.4s", path, type);
        if (memcmp(type, "IHDR", 4) == 0) {
            ck_assert(!seen_ihdr && pos == 8 && n == 13);
            d.width = (int)get_u32(data);
            d.height = (int)get_u32(data + 4);
            ck_assert_int_eq(data[8], 8);
            ck_assert(data[9] == 0 || data[9] == 2);
            d.channels = data[9] == 2 ? 3 : 1;
            ck_assert(data[10] == 0 && data[11] == 0 && data[12] == 0);
            seen_ihdr = 1;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            ck_assert(seen_ihdr);
            z = realloc(z, zlen + n + 1);
            memcpy(z + zlen, data, n);
            zlen += n;
            d.idat_chunks++;
        } else if (memcmp(type, "IEND", 4) == 0) {
            ck_assert_uint_eq(n, 0);
            seen_iend = 1;
        } else {
            ck_abort_msg("%s: unexpected chunk %.4s", path, type);
        }
        pos += 12 + n;
    }
    ck_assert(seen_ihdr && seen_iend && d.idat_chunks > 0);

    size_t rowbytes = (size_t)d.width * (size_t)d.channels;
    uLongf rawlen = (uLongf)((rowbytes + 1) * (size_t)d.height);
    uint8_t *raw = malloc(rawlen + 1);
    uLongf got = rawlen + 1;
    ck_assert_int_eq(uncompress(raw, &got, z, (uLong)zlen), Z_OK);
    ck_assert_uint_eq(got, rawlen);

    d.pixels = malloc(rowbytes * (size_t)d.height);
    int bpp = d.channels;
    for (int y = 0; y < d.height; y++) {
        const uint8_t *in = raw + (size_t)y * (rowbytes + 1);
        uint8_t *out = d.pixels + (size_t)y * rowbytes;
        const uint8_t *up = y > 0 ? out - rowbytes : NULL;
        ck_assert_int_le(in[0], 4);
        d.filters_used[in[0]]++;
        for (size_t i = 0; i < rowbytes; i++) {
            int a = i >= (size_t)bpp ? out[i - (size_t)bpp] : 0;
            int b = up ? up[i] : 0;
            int c = up && i >= (size_t)bpp ? up[i - (size_t)bpp] : 0;
            int pred = in[0] == 1   ? a
                       : in[0] == 2 ? b
                       : in[0] == 3 ? (a + b) / 2
                       : in[0] == 4 ? unpaeth(a, b, c)
                                    : 0;
            out[i] = (uint8_t)(in[1 + i] + pred);
        }
    }
    free(raw);
    free(z);
    free(buf);
    return d;
}

/* ---- PNG writer ---------------------------------------------------------------------------- */

/* Writes img and checks that reading it back gives exactly the same pixels. */
static decoded roundtrip(const char *name, const uint8_t *img, int w, int h, int ch) {
    const char *path = tmp_path(name);
    char err[256] = "";
    int rc = png_write(path, img, w, h, ch, err, sizeof err);
    ck_assert_msg(rc == PNG_OK, "png_write: %s", err);
    ck_assert_msg(!file_exists(tmp_files[tmp_nfiles - 1]), ".tmp file left behind");
    decoded d = read_png(path);
    ck_assert_int_eq(d.width, w);
    ck_assert_int_eq(d.height, h);
    ck_assert_int_eq(d.channels, ch);
    ck_assert_msg(memcmp(d.pixels, img, (size_t)w * (size_t)h * (size_t)ch) == 0,
                  "%s: pixels differ", name);
    return d;
}

/* An image with smooth gradients, noise and flat areas, so every filter type gets chosen. */
static uint8_t *test_image(int w, int h, int ch, uint64_t seed) {
    nb_rng r;
    nb_rng_seed(&r, seed);
    uint8_t *img = malloc((size_t)w * (size_t)h * (size_t)ch);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                size_t i = ((size_t)y * (size_t)w + (size_t)x) * (size_t)ch + (size_t)c;
                int band = (y / 8) % 4;
                int v = band == 0   ? x * 3 + c * 40                         /* horizontal ramp */
                        : band == 1 ? y * 5 + c * 20                         /* vertical ramp */
                        : band == 2 ? (x + y) * 2 + (int)nb_rng_below(&r, 6) /* noisy slope */
                                    : (int)nb_rng_below(&r, 256);            /* noise */
                img[i] = (uint8_t)v;
            }
    return img;
}

START_TEST(png_roundtrip_gray) {
    int sizes[][2] = {{1, 1}, {1, 9}, {9, 1}, {37, 23}, {64, 64}};
    int filters[5] = {0};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int w = sizes[k][0], h = sizes[k][1];
        uint8_t *img = test_image(w, h, 1, 10 + k);
        char name[32];
        snprintf(name, sizeof name, "gray%zu.png", k);
        decoded d = roundtrip(name, img, w, h, 1);
        for (int f = 0; f < 5; f++) filters[f] += d.filters_used[f];
        free(d.pixels);
        free(img);
    }
    for (int f = 1; f < 5; f++) ck_assert_msg(filters[f] > 0, "filter %d never used", f);
}
END_TEST

START_TEST(png_roundtrip_rgb) {
    int filters[5] = {0};
    uint8_t *img = test_image(50, 40, 3, 7);
    decoded d = roundtrip("rgb.png", img, 50, 40, 3);
    for (int f = 0; f < 5; f++) filters[f] += d.filters_used[f];
    free(d.pixels);
    free(img);
    for (int f = 1; f < 5; f++) ck_assert_msg(filters[f] > 0, "filter %d never used", f);

    /* Noise does not compress, so 300 x 200 x 3 bytes need several 64 KiB IDAT chunks. */
    nb_rng r;
    nb_rng_seed(&r, 3);
    img = malloc(300 * 200 * 3);
    for (int i = 0; i < 300 * 200 * 3; i++) img[i] = (uint8_t)nb_rng_below(&r, 256);
    d = roundtrip("noise.png", img, 300, 200, 3);
    ck_assert_int_ge(d.idat_chunks, 3);
    free(d.pixels);
    free(img);
}
END_TEST

START_TEST(png_overwrites_existing) {
    uint8_t a[4] = {1, 2, 3, 4}, b[6] = {9, 8, 7, 6, 5, 4};
    free(roundtrip("same.png", a, 2, 2, 1).pixels);
    tmp_nfiles -= 2; /* the same name again */
    free(roundtrip("same.png", b, 3, 2, 1).pixels);
}
END_TEST

START_TEST(png_missing_directory) {
    nb_mem_stats_t before = nb_mem_stats();
    char path[256], err[256] = "";
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", tmp_dir);
    uint8_t px[4] = {0};
    ck_assert_int_eq(png_write(path, px, 2, 2, 1, err, sizeof err), PNG_EOPEN);
    ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name the path", err);
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
    ck_assert_int_eq(png_write(path, px, 2, 2, 1, NULL, 0), PNG_EOPEN); /* err may be NULL */
    ck_assert_int_eq(nb_mem_stats().live, before.live);

    real imgs[4] = {0};
    err[0] = '\0';
    ck_assert_int_eq(png_write_grid(path, imgs, 1, 2, 2, 1, err, sizeof err), PNG_EOPEN);
    ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name the path", err);
    ck_assert_int_eq(nb_mem_stats().live, before.live);
}
END_TEST

START_TEST(png_rename_fails) {
    /* The target is a directory: the .tmp file is written, the rename fails, and the .tmp
     * file must be gone afterwards. */
    const char *path = tmp_path("adir");
    ck_assert_int_eq(mkdir(path, 0700), 0);
    char err[256] = "";
    uint8_t px[3] = {1, 2, 3};
    ck_assert_int_eq(png_write(path, px, 1, 1, 3, err, sizeof err), PNG_EWRITE);
    ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name the path", err);
    ck_assert(!file_exists(tmp_files[tmp_nfiles - 1]));
    rmdir(path);
}
END_TEST

START_TEST(png_write_fails) {
    /* A full disk: the .tmp name is a symlink to /dev/full, where every write fails with
     * ENOSPC. The error names the path, and the .tmp name is removed (the symlink, not the
     * device). */
    if (!file_exists("/dev/full")) return;
    const char *path = tmp_path("full.png");
    const char *tmp = tmp_files[tmp_nfiles - 1];
    ck_assert_int_eq(symlink("/dev/full", tmp), 0);
    uint8_t px[64 * 64] = {0};
    char err[256] = "";
    ck_assert_int_eq(png_write(path, px, 64, 64, 1, err, sizeof err), PNG_EWRITE);
    ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name the path", err);
    ck_assert_msg(strstr(err, "No space") != NULL, "message '%s' does not say why", err);
    ck_assert(!file_exists(path));
    struct stat st;
    ck_assert_int_ne(lstat(tmp, &st), 0);
    ck_assert(file_exists("/dev/full"));
}
END_TEST

START_TEST(png_bad_arguments) {
    const char *path = tmp_path("bad.png");
    uint8_t px[16] = {0};
    char err[256];
    struct {
        const uint8_t *px;
        int w, h, ch;
    } cases[] = {{NULL, 2, 2, 1},
                 {px, 0, 2, 1},
                 {px, 2, -1, 1},
                 {px, 2, 2, 2},
                 {px, 2, 2, 4},
                 {px, PNG_MAX_DIM + 1, 1, 1},
                 {px, PNG_MAX_DIM, PNG_MAX_DIM, 3}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        err[0] = '\0';
        ck_assert_int_eq(
            png_write(path, cases[k].px, cases[k].w, cases[k].h, cases[k].ch, err, sizeof err),
            PNG_EARG);
        ck_assert_msg(err[0] != '\0', "case %zu: no message", k);
        ck_assert(!file_exists(path));
    }
    ck_assert_int_eq(png_write(NULL, px, 2, 2, 1, err, sizeof err), PNG_EARG);
    char tiny[8];
    ck_assert_int_eq(png_write(path, px, 2, 2, 2, tiny, sizeof tiny), PNG_EARG);
    ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1); /* truncated, terminated */
    ck_assert_str_eq(png_status_str(PNG_EOPEN), "cannot open file");
    ck_assert_str_eq(png_status_str(12345), "unknown status");
}
END_TEST

/* ---- grids --------------------------------------------------------------------------------- */

/* Checks a decoded grid: cell k holds image k (as given by expect(k, y, x)), everything else
 * is separator gray. */
static void check_grid(const decoded *d, int n, int h, int w, int cols,
                       uint8_t (*expect)(int k, int y, int x)) {
    int c = cols < n ? cols : n, rows = (n + c - 1) / c, s = PNG_GRID_SEP;
    ck_assert_int_eq(d->channels, 1);
    ck_assert_int_eq(d->width, c * w + (c + 1) * s);
    ck_assert_int_eq(d->height, rows * h + (rows + 1) * s);
    for (int y = 0; y < d->height; y++)
        for (int x = 0; x < d->width; x++) {
            int gy = y - s, gx = x - s, k = -1, iy = 0, ix = 0;
            if (gy >= 0 && gx >= 0 && gy % (h + s) < h && gx % (w + s) < w) {
                k = (gy / (h + s)) * c + gx / (w + s);
                iy = gy % (h + s);
                ix = gx % (w + s);
            }
            uint8_t want = k >= 0 && k < n ? expect(k, iy, ix) : PNG_GRID_SEP_GRAY;
            ck_assert_msg(d->pixels[(size_t)y * (size_t)d->width + (size_t)x] == want,
                          "pixel (%d, %d): got %d, want %d (image %d)", y, x,
                          d->pixels[(size_t)y * (size_t)d->width + (size_t)x], want, k);
        }
}

static uint8_t u8_pattern(int k, int y, int x) {
    return (uint8_t)(k * 40 + y * 4 + x);
}

START_TEST(grid_u8_layout) {
    int n = 5, h = 3, w = 4, cols = 2;
    uint8_t imgs[5 * 12];
    for (int k = 0; k < n; k++)
        for (int i = 0; i < h * w; i++) imgs[k * h * w + i] = u8_pattern(k, i / w, i % w);
    const char *path = tmp_path("grid.png");
    char err[256];
    ck_assert_int_eq(png_write_grid_u8(path, imgs, n, h, w, cols, err, sizeof err), PNG_OK);
    decoded d = read_png(path);
    check_grid(&d, n, h, w, cols, u8_pattern); /* 3 rows of 2; the 6th cell stays gray */
    int gh, gw;
    ck_assert_int_eq(png_grid_size(n, h, w, cols, &gh, &gw), PNG_OK);
    ck_assert_int_eq(gh, d.height);
    ck_assert_int_eq(gw, d.width);
    free(d.pixels);

    /* More columns than images: one row of n. */
    ck_assert_int_eq(png_write_grid_u8(path, imgs, 3, h, w, 10, err, sizeof err), PNG_OK);
    d = read_png(path);
    check_grid(&d, 3, h, w, 10, u8_pattern);
    ck_assert_int_eq(d.width, 3 * w + 4 * PNG_GRID_SEP);
    free(d.pixels);
}
END_TEST

static real real_value(int k, int y, int x) {
    return (real)((k * 12 + y * 3 + x) / 40.0);
}
static uint8_t real_expect(int k, int y, int x) {
    return (uint8_t)floor(real_value(k, y, x) * 255.0 + 0.5);
}

START_TEST(grid_real_layout) {
    int n = 3, h = 4, w = 3, cols = 3;
    real imgs[3 * 12];
    for (int k = 0; k < n; k++)
        for (int i = 0; i < h * w; i++) imgs[k * h * w + i] = real_value(k, i / w, i % w);
    const char *path = tmp_path("gridr.png");
    char err[256];
    ck_assert_int_eq(png_write_grid(path, imgs, n, h, w, cols, err, sizeof err), PNG_OK);
    decoded d = read_png(path);
    check_grid(&d, n, h, w, cols, real_expect);
    free(d.pixels);
}
END_TEST

START_TEST(grid_clamps_and_rounds) {
    real v[8] = {-0.5f, 1.5f, (real)NAN, 0.5f, 1.0f, 0.0f, (real)(100.0 / 255.0), (real)INFINITY};
    uint8_t want[8] = {0, 255, 0, 128, 255, 0, 100, 255};
    const char *path = tmp_path("clamp.png");
    char err[256];
    ck_assert_int_eq(png_write_grid(path, v, 2, 2, 2, 1, err, sizeof err), PNG_OK);
    decoded d = read_png(path);
    int s = PNG_GRID_SEP;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++) {
            int y = s + k * (2 + s) + i / 2, x = s + i % 2;
            ck_assert_int_eq(d.pixels[y * d.width + x], want[k * 4 + i]);
        }
    free(d.pixels);
}
END_TEST

START_TEST(grid_bad_arguments) {
    const char *path = tmp_path("g.png");
    uint8_t px[4] = {0};
    char err[256];
    int args[][4] = {{0, 2, 2, 1}, {1, 0, 2, 1},           {1, 2, -2, 1},
                     {1, 2, 2, 0}, {1, PNG_MAX_DIM, 1, 1}, {2000000000, 28, 28, 1}};
    for (size_t k = 0; k < sizeof args / sizeof args[0]; k++) {
        err[0] = '\0';
        ck_assert_int_eq(png_write_grid_u8(path, px, args[k][0], args[k][1], args[k][2], args[k][3],
                                           err, sizeof err),
                         PNG_EARG);
        ck_assert_msg(strstr(err, path) != NULL, "case %zu: '%s'", k, err);
        ck_assert_int_eq(png_grid_size(args[k][0], args[k][1], args[k][2], args[k][3], NULL, NULL),
                         PNG_EARG);
    }
    ck_assert_int_eq(png_write_grid_u8(path, NULL, 1, 2, 2, 1, err, sizeof err), PNG_EARG);
    ck_assert(!file_exists(path));
}
END_TEST

/* ---- font ---------------------------------------------------------------------------------- */

START_TEST(font_draws_and_clips) {
    ck_assert_int_eq(font_text_width("", 1), 0);
    ck_assert_int_eq(font_text_width("7", 1), FONT_W);
    ck_assert_int_eq(font_text_width("loss", 2), 46);
    enum { W = 40, H = 30 };
    uint8_t a[W * H * 3], b[W * H * 3];
    const uint8_t ink[3] = {1, 2, 3};
    memset(a, 255, sizeof a);
    memset(b, 255, sizeof b);
    font_draw(a, W, H, 2, 3, "-", 1, ink); /* '-' is the middle row: a 5-pixel bar */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int on = y == 6 && x >= 2 && x < 7;
            ck_assert_int_eq(a[(y * W + x) * 3] == 1, on);
        }
    /* Rotated text is the same glyph turned: column c of row r goes to (x + r, y - c). */
    memset(a, 255, sizeof a);
    font_draw(a, W, H, 5, 5, "R", 2, ink);
    font_draw_up(b, W, H, 5, 25, "R", 2, ink);
    int inked = 0;
    for (int r = 0; r < FONT_H * 2; r++)
        for (int c = 0; c < FONT_W * 2; c++) {
            int on_a = a[((5 + r) * W + 5 + c) * 3] == 1;
            int on_b = b[((25 - c) * W + 5 + r) * 3] == 1;
            ck_assert_int_eq(on_a, on_b);
            inked += on_a;
        }
    ck_assert_int_gt(inked, 20);
    /* Off the edges, non-ASCII bytes: clipped, drawn as '?', no out-of-bounds writes. */
    font_draw(a, W, H, -7, -3, "\x01\xff hello", 3, ink);
    font_draw(a, W, H, W - 2, H - 2, "8", 4, ink);
    font_draw_up(a, W, H, -4, 3, "long text that runs off", 2, ink);
    font_draw(a, W, H, 0, 0, NULL, 1, ink);
}
END_TEST

/* ---- charts -------------------------------------------------------------------------------- */

static int saturated(const uint8_t *p) {
    int mx = p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]);
    int mn = p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
    return mx - mn > 60;
}

/* Checks that a coloured (series) pixel lies at the data point (x, y) of the chart. */
static void check_point(const decoded *d, const chart_frame *f, double x, double y) {
    int px, py;
    chart_pixel(f, x, y, &px, &py);
    ck_assert_msg(px >= f->left && px <= f->right && py >= f->top && py <= f->bottom,
                  "point (%g, %g) maps to (%d, %d), outside the plot area", x, y, px, py);
    const uint8_t *p = d->pixels + ((size_t)py * (size_t)d->width + (size_t)px) * 3;
    ck_assert_msg(saturated(p), "no series colour at (%d, %d) for point (%g, %g): %d %d %d", px, py,
                  x, y, p[0], p[1], p[2]);
}

/* Writes the chart, reads it back, checks its size, that it equals chart_render's picture,
 * and that every finite point has a coloured pixel on it. */
static void check_chart(const char *name, const chart_series *s, int nseries, int w, int h) {
    const char *path = tmp_path(name);
    char err[256] = "";
    int rc = chart_write_png(path, "title", "epoch", "loss", s, nseries, w, h, err, sizeof err);
    ck_assert_msg(rc == PNG_OK, "%s: %s", name, err);
    decoded d = read_png(path);
    ck_assert_int_eq(d.width, w);
    ck_assert_int_eq(d.height, h);
    ck_assert_int_eq(d.channels, 3);

    uint8_t *rgb = malloc((size_t)w * (size_t)h * 3);
    chart_frame f;
    ck_assert_int_eq(
        chart_render(rgb, w, h, "title", "epoch", "loss", s, nseries, &f, err, sizeof err), PNG_OK);
    ck_assert(memcmp(rgb, d.pixels, (size_t)w * (size_t)h * 3) == 0);
    ck_assert(0 <= f.left && f.left < f.right && f.right < w);
    ck_assert(0 <= f.top && f.top < f.bottom && f.bottom < h);
    ck_assert(f.xmin < f.xmax && f.ymin < f.ymax);
    ck_assert(isfinite(f.ymin) && isfinite(f.ymax));
    int px, py; /* the range's corners are the plot area's: ymin at the bottom, ymax on top */
    chart_pixel(&f, f.xmin, f.ymin, &px, &py);
    ck_assert(px == f.left && py == f.bottom);
    chart_pixel(&f, f.xmax, f.ymax, &px, &py);
    ck_assert(px == f.right && py == f.top);
    for (int k = 0; k < nseries; k++)
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].y[i])) check_point(&d, &f, i + 1.0, s[k].y[i]);
    /* The corners are background. */
    ck_assert(d.pixels[0] == 255 && d.pixels[1] == 255 && d.pixels[2] == 255);
    free(rgb);
    free(d.pixels);
}

START_TEST(chart_loss_curves) {
    double train[12], test[12];
    for (int i = 0; i < 12; i++) {
        train[i] = 100.0 + 150.0 * exp(-i / 3.0);
        test[i] = 105.0 + 140.0 * exp(-i / 3.5);
    }
    chart_series s[2] = {{"train", train, 12}, {"test", test, 12}};
    check_chart("loss.png", s, 2, 640, 400);
    check_chart("loss_big.png", s, 2, 1000, 700); /* the doubled font */
    check_chart("loss_small.png", s, 2, 200, 120);

    /* The lowest point sits near the bottom and the highest near the top of the plot. */
    chart_frame f;
    uint8_t *rgb = malloc(640 * 400 * 3);
    ck_assert_int_eq(chart_render(rgb, 640, 400, NULL, NULL, NULL, s, 2, &f, NULL, 0), PNG_OK);
    ck_assert(f.ymin <= 100.0 + 150.0 * exp(-11 / 3.0) && f.ymin > 50.0);
    ck_assert(f.ymax >= 250.0 && f.ymax < 300.0);
    ck_assert(f.xmin == 1.0 && f.xmax == 12.0);
    free(rgb);
}
END_TEST

START_TEST(chart_degenerate_inputs) {
    nb_mem_stats_t before = nb_mem_stats();
    double one[1] = {3.5}, flat[6] = {2, 2, 2, 2, 2, 2}, zeros[3] = {0, 0, 0};
    double gaps[7] = {1.0, NAN, 3.0, INFINITY, -INFINITY, 2.0, 4.0};
    double nans[3] = {NAN, NAN, NAN};
    double huge[4] = {-1.7e308, 1.7e308, 0.0, 1e300};
    double tiny[4] = {1e-300, 3e-300, 2e-300, 5e-301};
    double near[3] = {1.0, 1.0 + 1e-13, 1.0 - 1e-13};
    double mixed[5] = {1e-3, 1e6, 5.0, -2e5, 7e5};
    chart_series s1[1] = {{"one", one, 1}};
    chart_series s2[1] = {{"flat", flat, 6}};
    chart_series s3[2] = {{"zeros", zeros, 3}, {NULL, gaps, 7}};
    chart_series s4[2] = {{"nan", nans, 3}, {"empty", NULL, 0}};
    chart_series s5[1] = {{"huge", huge, 4}};
    chart_series s6[1] = {{"tiny", tiny, 4}};
    chart_series s7[1] = {{"near", near, 3}};
    chart_series s8[1] = {{"mixed", mixed, 5}};
    chart_series many[12];
    for (int k = 0; k < 12; k++) many[k] = (chart_series){"a long series name", mixed, 5};
    check_chart("one.png", s1, 1, 300, 200);
    check_chart("flat.png", s2, 1, 300, 200);
    check_chart("gaps.png", s3, 2, 300, 200);
    check_chart("nans.png", s4, 2, 300, 200);
    check_chart("none.png", NULL, 0, 300, 200);
    check_chart("huge.png", s5, 1, 400, 300);
    check_chart("tiny.png", s6, 1, 400, 300);
    check_chart("near.png", s7, 1, 400, 300);
    check_chart("mixed.png", s8, 1, 400, 300);
    check_chart("many.png", many, 12, 400, 300);
    check_chart("min.png", s8, 1, CHART_MIN_SIZE * 3, CHART_MIN_SIZE * 2);

    /* The y range hugs the finite data (rounded out to ticks), whatever else is in it. */
    struct {
        const chart_series *s;
        int n;
        double lo_min, lo_max, hi_min, hi_max; /* bounds on ymin and ymax */
    } ranges[] = {
        {s1, 1, 2.0, 3.5, 3.5, 5.0},
        {s2, 1, 1.5, 2.0, 2.0, 2.5},
        {s3, 2, -1.0, 0.0, 4.0, 5.0},
        {s4, 2, 0.0, 0.0, 1.0, 1.0},
        {s5, 1, -DBL_MAX, -1.7e308, 1.7e308, DBL_MAX},
        {s6, 1, 0.0, 5e-301, 3e-300, 4e-300},
        {s7, 1, 0.8, 1.0 - 1e-13, 1.0 + 1e-13, 1.2},
        {s8, 1, -3e5, -2e5, 1e6, 1.5e6},
    };
    uint8_t *rgb = nb_malloc(400 * 300 * 3);
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        chart_frame f;
        ck_assert_int_eq(
            chart_render(rgb, 400, 300, "t", "x", "y", ranges[k].s, ranges[k].n, &f, NULL, 0),
            PNG_OK);
        ck_assert_msg(f.ymin >= ranges[k].lo_min && f.ymin <= ranges[k].lo_max &&
                          f.ymax >= ranges[k].hi_min && f.ymax <= ranges[k].hi_max,
                      "case %zu: y range [%g, %g]", k, f.ymin, f.ymax);
    }
    nb_free(rgb);
    ck_assert_int_eq(nb_mem_stats().live, before.live);
}
END_TEST

START_TEST(chart_bad_arguments) {
    double y[2] = {1, 2};
    chart_series ok[1] = {{"y", y, 2}}, bad_n[1] = {{"y", y, -1}}, bad_y[1] = {{"y", NULL, 2}};
    const char *path = tmp_path("bad.png");
    char err[256];
    ck_assert_int_eq(chart_write_png(path, "t", "x", "y", ok, 1, 10, 200, err, sizeof err),
                     PNG_EARG);
    ck_assert_int_eq(chart_write_png(path, "t", "x", "y", ok, 1, 200, 100000, err, sizeof err),
                     PNG_EARG);
    ck_assert_int_eq(chart_write_png(path, "t", "x", "y", NULL, 1, 200, 200, err, sizeof err),
                     PNG_EARG);
    ck_assert_int_eq(chart_write_png(path, "t", "x", "y", ok, -1, 200, 200, err, sizeof err),
                     PNG_EARG);
    ck_assert_int_eq(chart_write_png(path, "t", "x", "y", bad_n, 1, 200, 200, err, sizeof err),
                     PNG_EARG);
    ck_assert_int_eq(chart_write_png(path, "t", "x", "y", bad_y, 1, 200, 200, err, sizeof err),
                     PNG_EARG);
    ck_assert_ptr_nonnull(strstr(err, "series 0"));
    /* Too small for its labels. */
    ck_assert_int_eq(chart_write_png(path, "t", "x", "y", ok, 1, CHART_MIN_SIZE, CHART_MIN_SIZE,
                                     err, sizeof err),
                     PNG_EARG);
    ck_assert(!file_exists(path));

    char missing[256];
    snprintf(missing, sizeof missing, "%s/nowhere/loss.png", tmp_dir);
    ck_assert_int_eq(chart_write_png(missing, "t", "x", "y", ok, 1, 200, 200, err, sizeof err),
                     PNG_EOPEN);
    ck_assert_msg(strstr(err, missing) != NULL, "message '%s' does not name the path", err);
}
END_TEST

/* ---- the reader ------------------------------------------------------------------------------
 */

START_TEST(png_read_gray_roundtrip) {
    /* what the writer wrote (every filter type appears across these) reads back exactly */
    int sizes[][2] = {{1, 1}, {9, 1}, {37, 23}, {64, 64}, {300, 200}};
    char err[256];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int w = sizes[k][0], h = sizes[k][1], rw = 0, rh = 0;
        uint8_t *img = test_image(w, h, 1, 40 + k), *back = NULL;
        char name[32];
        snprintf(name, sizeof name, "read%zu.png", k);
        const char *path = tmp_path(name);
        ck_assert_int_eq(png_write(path, img, w, h, 1, err, sizeof err), PNG_OK);
        ck_assert_msg(png_read_gray(path, &back, &rw, &rh, err, sizeof err) == PNG_OK, "%s", err);
        ck_assert(rw == w && rh == h);
        ck_assert_msg(memcmp(back, img, (size_t)(w * h)) == 0, "%dx%d differs", w, h);
        nb_free(back);
        free(img);
    }
}
END_TEST

START_TEST(png_read_gray_refuses) {
    char err[256];
    uint8_t *px = (uint8_t *)1;
    int w, h;
    uint8_t *rgb = test_image(8, 4, 3, 1);
    const char *path = tmp_path("rgb.png");
    ck_assert_int_eq(png_write(path, rgb, 8, 4, 3, err, sizeof err), PNG_OK);
    free(rgb);
    ck_assert_int_eq(png_read_gray(path, &px, &w, &h, err, sizeof err), PNG_EUNSUPPORTED);
    ck_assert_msg(strstr(err, "color type 2") && strstr(err, "8-bit grayscale"), "%s", err);
    ck_assert_ptr_null(px);
    /* damaged copies of a good file: cut short, a flipped data byte (CRC), no signature */
    uint8_t *img = test_image(16, 16, 1, 2);
    const char *good = tmp_path("good.png");
    ck_assert_int_eq(png_write(good, img, 16, 16, 1, err, sizeof err), PNG_OK);
    free(img);
    size_t len;
    uint8_t *buf = read_all(good, &len);
    struct {
        const char *name, *needle;
        size_t cut, flip;
    } cases[] = {{"cut.png", "truncated", len - 20, 0},
                 {"crc.png", "bad CRC", len, 40},
                 {"sig.png", "not a PNG", len, 1}};
    for (int i = 0; i < 3; i++) {
        const char *p = tmp_path(cases[i].name);
        FILE *f = fopen(p, "wb");
        ck_assert(f != NULL);
        if (cases[i].flip) buf[cases[i].flip] ^= 0x5a;
        fwrite(buf, 1, cases[i].cut, f);
        if (cases[i].flip) buf[cases[i].flip] ^= 0x5a;
        fclose(f);
        ck_assert_int_eq(png_read_gray(p, &px, &w, &h, err, sizeof err), PNG_EFORMAT);
        ck_assert_msg(strstr(err, cases[i].needle) && strstr(err, p), "%s: %s", cases[i].name, err);
    }
    free(buf);
    ck_assert_int_eq(png_read_gray(tmp_path("none.png"), &px, &w, &h, err, sizeof err), PNG_EREAD);
    ck_assert_msg(strstr(err, "none.png") != NULL, "%s", err);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("png");
    TCase *tc = tcase_create("png");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, png_roundtrip_gray);
    tcase_add_test(tc, png_roundtrip_rgb);
    tcase_add_test(tc, png_read_gray_roundtrip);
    tcase_add_test(tc, png_read_gray_refuses);
    tcase_add_test(tc, png_overwrites_existing);
    tcase_add_test(tc, png_missing_directory);
    tcase_add_test(tc, png_rename_fails);
    tcase_add_test(tc, png_write_fails);
    tcase_add_test(tc, png_bad_arguments);
    tcase_add_test(tc, grid_u8_layout);
    tcase_add_test(tc, grid_real_layout);
    tcase_add_test(tc, grid_clamps_and_rounds);
    tcase_add_test(tc, grid_bad_arguments);
    tcase_add_test(tc, font_draws_and_clips);
    tcase_add_test(tc, chart_loss_curves);
    tcase_add_test(tc, chart_degenerate_inputs);
    tcase_add_test(tc, chart_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

NB_CHECK_MAIN(suite)
