/* io/png.c: a PNG writer (gray and RGB, 8 bits, zlib-compressed rows) and image grids.
 *
 * A PNG file is an 8-byte signature and a list of chunks, each: 4-byte big-endian length,
 * 4-byte type, the data, and a CRC-32 of type + data. We write IHDR (size and pixel format),
 * one or more IDAT (the zlib stream of all rows, each row prefixed by its filter byte) and
 * IEND. The zlib stream is produced row by row and cut into IDAT chunks as the output buffer
 * fills, so memory stays at a few rows whatever the image size. */
#include "io/png.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define OUT_CHUNK 65536 /* bytes of compressed data per IDAT chunk (at most) */

const char *png_status_str(int status) {
    switch (status) {
    case PNG_OK:
        return "ok";
    case PNG_EARG:
        return "bad argument";
    case PNG_EOPEN:
        return "cannot open file";
    case PNG_EWRITE:
        return "write failed";
    case PNG_EZLIB:
        return "compression failed";
    case PNG_EREAD:
        return "cannot read file";
    case PNG_EFORMAT:
        return "not a valid PNG";
    case PNG_EUNSUPPORTED:
        return "unsupported PNG";
    default:
        return "unknown status";
    }
}

int png_fail(int status, char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* ---- chunks -------------------------------------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes one chunk (length, type, data, CRC of type + data); returns 0, or -1 if fwrite
 * failed. */
static int write_chunk(FILE *f, const char *type, const uint8_t *data, size_t len) {
    uint8_t head[8], tail[4];
    put_u32(head, (uint32_t)len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (len > 0) crc = crc32(crc, data, (uInt)len);
    put_u32(tail, (uint32_t)crc);
    if (fwrite(head, 1, 8, f) != 8) return -1;
    if (len > 0 && fwrite(data, 1, len, f) != len) return -1;
    if (fwrite(tail, 1, 4, f) != 4) return -1;
    return 0;
}

/* ---- row filters --------------------------------------------------------------------------- */

/* The Paeth predictor of the PNG spec: whichever of left, up, up-left is closest to
 * left + up - upleft (ties prefer left, then up). */
static int paeth(int a, int b, int c) {
    int p = a + b - c;
    int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

/* The value filter `type` (0 none, 1 sub, 2 up, 3 average, 4 paeth; 0..4 only) predicts from
 * the byte to the left (a), above (b) and above-left (c): the writer subtracts it, the reader
 * adds it back. */
static int predict(int type, int a, int b, int c) {
    switch (type) {
    case 1:
        return a;
    case 2:
        return b;
    case 3:
        return (a + b) / 2;
    case 4:
        return paeth(a, b, c);
    default:
        return 0;
    }
}

/* Applies filter `type` (0 none, 1 sub, 2 up, 3 average, 4 paeth) to row `cur` given the
 * previous row `prev` (all zeros for the first row); out gets the filter byte then n bytes.
 * Returns the row's cost: the sum of the filtered bytes read as signed magnitudes. */
static long filter_row(uint8_t *out, int type, const uint8_t *cur, const uint8_t *prev, size_t n,
                       int bpp) {
    long cost = 0;
    out[0] = (uint8_t)type;
    for (size_t i = 0; i < n; i++) {
        int a = i >= (size_t)bpp ? cur[i - (size_t)bpp] : 0;
        int b = prev[i];
        int c = i >= (size_t)bpp ? prev[i - (size_t)bpp] : 0;
        uint8_t v = (uint8_t)(cur[i] - predict(type, a, b, c));
        out[1 + i] = v;
        cost += v < 128 ? v : 256 - v;
    }
    return cost;
}

/* ---- the writer ---------------------------------------------------------------------------- */

/* Writes signature, IHDR, IDAT chunks and IEND to an open file. Returns PNG_OK, PNG_EWRITE
 * or PNG_EZLIB; `work` must hold rowbytes + 2 * (1 + rowbytes) + OUT_CHUNK bytes. */
static int write_stream(FILE *f, const uint8_t *pixels, int width, int height, int channels,
                        uint8_t *work) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    size_t rowbytes = (size_t)width * (size_t)channels;
    uint8_t *zero = work;                 /* the row above the first row (rowbytes) */
    uint8_t *best = zero + rowbytes;      /* the cheapest filtered row so far (1 + rowbytes) */
    uint8_t *trial = best + 1 + rowbytes; /* a candidate filtered row (1 + rowbytes) */
    uint8_t *out = trial + 1 + rowbytes;  /* compressed bytes waiting for an IDAT (OUT_CHUNK) */
    memset(zero, 0, rowbytes);

    uint8_t ihdr[13];
    put_u32(ihdr, (uint32_t)width);
    put_u32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8;                        /* bit depth */
    ihdr[9] = channels == 3 ? 2 : 0;    /* colour type: 2 truecolour, 0 grayscale */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    if (fwrite(signature, 1, 8, f) != 8 || write_chunk(f, "IHDR", ihdr, 13) != 0) return PNG_EWRITE;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit(&zs, Z_DEFAULT_COMPRESSION) != Z_OK) return PNG_EZLIB;
    zs.next_out = out;
    zs.avail_out = OUT_CHUNK;
    int status = PNG_OK;
    for (int y = 0; y <= height && status == PNG_OK; y++) {
        int flush = y == height ? Z_FINISH : Z_NO_FLUSH;
        if (y < height) {
            const uint8_t *cur = pixels + (size_t)y * rowbytes;
            const uint8_t *prev = y > 0 ? cur - rowbytes : zero;
            long best_cost = filter_row(best, 0, cur, prev, rowbytes, channels);
            for (int type = 1; type <= 4; type++) {
                long cost = filter_row(trial, type, cur, prev, rowbytes, channels);
                if (cost < best_cost) {
                    uint8_t *t = best;
                    best = trial;
                    trial = t;
                    best_cost = cost;
                }
            }
            zs.next_in = best;
            zs.avail_in = (uInt)(1 + rowbytes);
        }
        for (;;) { /* run deflate until it has taken this row (or finished the stream) */
            int zr = deflate(&zs, flush);
            if (zr == Z_STREAM_ERROR) {
                status = PNG_EZLIB;
                break;
            }
            if (zs.avail_out == 0 || zr == Z_STREAM_END) {
                if (write_chunk(f, "IDAT", out, OUT_CHUNK - zs.avail_out) != 0) {
                    status = PNG_EWRITE;
                    break;
                }
                zs.next_out = out;
                zs.avail_out = OUT_CHUNK;
            }
            if (zr == Z_STREAM_END) break;
            if (flush == Z_NO_FLUSH && zs.avail_in == 0 && zs.avail_out > 0) break;
        }
    }
    deflateEnd(&zs);
    if (status != PNG_OK) return status;
    return write_chunk(f, "IEND", NULL, 0) == 0 ? PNG_OK : PNG_EWRITE;
}

int png_write(const char *path, const uint8_t *pixels, int width, int height, int channels,
              char *err, size_t errlen) {
    if (!path || !pixels)
        return png_fail(PNG_EARG, err, errlen, "png: %s is NULL", path ? "pixels" : "path");
    if (channels != 1 && channels != 3)
        return png_fail(PNG_EARG, err, errlen, "png: %s: channels is %d, want 1 (gray) or 3 (RGB)",
                        path, channels);
    if (width <= 0 || height <= 0 || width > PNG_MAX_DIM || height > PNG_MAX_DIM ||
        (size_t)width * (size_t)height * (size_t)channels > PNG_MAX_BYTES)
        return png_fail(PNG_EARG, err, errlen,
                        "png: %s: size %d x %d x %d is not in 1..%d a side, "
                        "%zu bytes at most",
                        path, width, height, channels, PNG_MAX_DIM, PNG_MAX_BYTES);

    size_t rowbytes = (size_t)width * (size_t)channels;
    size_t plen = strlen(path);
    char *tmp = nb_malloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    int status = PNG_OK;
    uint8_t *work = NULL;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        status = png_fail(PNG_EOPEN, err, errlen, "png: cannot create %s (writing %s): %s", path,
                          tmp, strerror(errno));
        goto done;
    }
    work = nb_malloc(rowbytes + 2 * (1 + rowbytes) + OUT_CHUNK);
    status = write_stream(f, pixels, width, height, channels, work);
    int write_errno = errno;
    if (status == PNG_OK && fflush(f) != 0) {
        status = PNG_EWRITE;
        write_errno = errno;
    }
    if (fclose(f) != 0 && status == PNG_OK) {
        status = PNG_EWRITE;
        write_errno = errno;
    }
    if (status == PNG_OK && rename(tmp, path) != 0) {
        png_fail(PNG_EWRITE, err, errlen, "png: cannot rename %s to %s: %s", tmp, path,
                 strerror(errno));
        remove(tmp);
        status = PNG_EWRITE;
        goto done;
    }
    if (status != PNG_OK) {
        if (status == PNG_EZLIB)
            png_fail(status, err, errlen, "png: %s: zlib failed while compressing", path);
        else
            png_fail(status, err, errlen, "png: cannot write %s (writing %s): %s", path, tmp,
                     strerror(write_errno));
        remove(tmp);
    }
done:
    nb_free(work);
    nb_free(tmp);
    return status;
}

/* ---- grids --------------------------------------------------------------------------------- */

int png_grid_size(int n, int h, int w, int cols, int *grid_h, int *grid_w) {
    if (n <= 0 || h <= 0 || w <= 0 || cols <= 0) return PNG_EARG;
    int64_t c = cols < n ? cols : n;
    int64_t rows = ((int64_t)n + c - 1) / c;
    int64_t gw = c * w + (c + 1) * PNG_GRID_SEP;
    int64_t gh = rows * h + (rows + 1) * PNG_GRID_SEP;
    if (gw > PNG_MAX_DIM || gh > PNG_MAX_DIM || (size_t)(gw * gh) > PNG_MAX_BYTES) return PNG_EARG;
    if (grid_h) *grid_h = (int)gh;
    if (grid_w) *grid_w = (int)gw;
    return PNG_OK;
}

/* Checks the grid arguments and returns a canvas of grid_h x grid_w bytes filled with the
 * separator gray (caller frees with nb_free), or NULL with a message in err. */
static uint8_t *grid_canvas(const char *path, const void *imgs, int n, int h, int w, int cols,
                            int *grid_h, int *grid_w, char *err, size_t errlen) {
    if (!path || !imgs) {
        png_fail(PNG_EARG, err, errlen, "png: grid: %s is NULL", path ? "imgs" : "path");
        return NULL;
    }
    if (png_grid_size(n, h, w, cols, grid_h, grid_w) != PNG_OK) {
        png_fail(PNG_EARG, err, errlen,
                 "png: %s: cannot tile %d images of %d x %d in %d columns "
                 "(all must be > 0 and the grid at most %d pixels a side)",
                 path, n, h, w, cols, PNG_MAX_DIM);
        return NULL;
    }
    size_t bytes = (size_t)*grid_h * (size_t)*grid_w;
    uint8_t *canvas = nb_malloc(bytes);
    memset(canvas, PNG_GRID_SEP_GRAY, bytes);
    return canvas;
}

/* The offset in the canvas of the top-left pixel of cell k. */
static size_t cell_origin(int k, int h, int w, int cols, int n, int grid_w) {
    int c = cols < n ? cols : n;
    size_t y = (size_t)PNG_GRID_SEP + (size_t)(k / c) * (size_t)(h + PNG_GRID_SEP);
    size_t x = (size_t)PNG_GRID_SEP + (size_t)(k % c) * (size_t)(w + PNG_GRID_SEP);
    return y * (size_t)grid_w + x;
}

/* A value in [0, 1] as a byte: clamped, rounded half up, NaN to 0. */
static uint8_t to_byte(real v) {
    double d = (double)v;
    if (!(d > 0.0)) return 0;
    if (d >= 1.0) return 255;
    return (uint8_t)(d * 255.0 + 0.5);
}

int png_write_grid(const char *path, const real *imgs, int n, int h, int w, int cols, char *err,
                   size_t errlen) {
    int gh, gw;
    uint8_t *canvas = grid_canvas(path, imgs, n, h, w, cols, &gh, &gw, err, errlen);
    if (!canvas) return PNG_EARG;
    for (int k = 0; k < n; k++) {
        const real *img = imgs + (size_t)k * (size_t)h * (size_t)w;
        uint8_t *cell = canvas + cell_origin(k, h, w, cols, n, gw);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                cell[(size_t)y * (size_t)gw + (size_t)x] =
                    to_byte(img[(size_t)y * (size_t)w + (size_t)x]);
    }
    int status = png_write(path, canvas, gw, gh, 1, err, errlen);
    nb_free(canvas);
    return status;
}

int png_write_grid_u8(const char *path, const uint8_t *imgs, int n, int h, int w, int cols,
                      char *err, size_t errlen) {
    int gh, gw;
    uint8_t *canvas = grid_canvas(path, imgs, n, h, w, cols, &gh, &gw, err, errlen);
    if (!canvas) return PNG_EARG;
    for (int k = 0; k < n; k++) {
        const uint8_t *img = imgs + (size_t)k * (size_t)h * (size_t)w;
        uint8_t *cell = canvas + cell_origin(k, h, w, cols, n, gw);
        for (int y = 0; y < h; y++)
            memcpy(cell + (size_t)y * (size_t)gw, img + (size_t)y * (size_t)w, (size_t)w);
    }
    int status = png_write(path, canvas, gw, gh, 1, err, errlen);
    nb_free(canvas);
    return status;
}

/* ---- reading ----------------------------------------------------------------------------------
 */

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads the whole file into *buf (nb_malloc); -1 when it cannot be read or exceeds max. */
static long read_file(const char *path, uint8_t **buf, size_t max) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, len = 0;
    uint8_t *b = nb_malloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= max) {
                nb_free(b), fclose(f);
                return -1;
            }
            uint8_t *nb = nb_malloc(cap * 2);
            memcpy(nb, b, len);
            nb_free(b);
            b = nb, cap *= 2;
        }
        size_t got = fread(b + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        nb_free(b);
        return -1;
    }
    *buf = b;
    return (long)len;
}

/* Undoes the row filters in place: raw holds height rows of 1 filter byte + width bytes; out
 * gets height * width bytes. Returns false on a filter type outside 0..4. */
static bool unfilter(const uint8_t *raw, uint8_t *out, int width, int height) {
    size_t w = (size_t)width;
    for (int y = 0; y < height; y++) {
        const uint8_t *in = raw + (size_t)y * (w + 1) + 1;
        int type = in[-1];
        if (type > 4) return false;
        uint8_t *cur = out + (size_t)y * w, *prev = y > 0 ? cur - w : NULL;
        for (size_t i = 0; i < w; i++) {
            int a = i > 0 ? cur[i - 1] : 0, b = prev ? prev[i] : 0,
                c = prev && i > 0 ? prev[i - 1] : 0;
            cur[i] = (uint8_t)(in[i] + predict(type, a, b, c));
        }
    }
    return true;
}

int png_read_gray(const char *path, uint8_t **pixels, int *width, int *height, char *err,
                  size_t errlen) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (!path || !pixels || !width || !height)
        return png_fail(PNG_EARG, err, errlen, "png: NULL argument");
    *pixels = NULL;
    uint8_t *buf = NULL;
    errno = 0;
    long len = read_file(path, &buf, PNG_MAX_BYTES * 2);
    if (len < 0)
        return png_fail(PNG_EREAD, err, errlen, "png: cannot read %s: %s", path,
                        errno ? strerror(errno) : "too large");
    int rc = PNG_OK;
    uint8_t *idat = NULL, *raw = NULL;
    size_t nidat = 0, pos = 8;
    uint32_t w = 0, h = 0;
    bool ended = false;
    if (len < 8 || memcmp(buf, sig, 8) != 0)
        rc = png_fail(PNG_EFORMAT, err, errlen, "png: %s is not a PNG file (no signature)", path);
    idat = nb_malloc((size_t)len + 1);
    while (rc == PNG_OK && !ended) {
        if ((size_t)len - pos < 12) {
            rc = png_fail(PNG_EFORMAT, err, errlen, "png: %s is truncated (no IEND chunk)", path);
            break;
        }
        uint32_t n = get_u32(buf + pos);
        const uint8_t *type = buf + pos + 4, *data = buf + pos + 8;
        if (n > (size_t)len - pos - 12) {
            rc = png_fail(PNG_EFORMAT, err, errlen, "png: %s is truncated inside chunk %.4s", path,
                          (const char *)type);
            break;
        }
        uLong crc = crc32(crc32(0L, type, 4), data, n);
        if (crc != get_u32(data + n)) {
            rc = png_fail(PNG_EFORMAT, err, errlen, "png: %s: bad CRC in chunk %.4s", path,
                          (const char *)type);
            break;
        }
        if (pos == 8 && (memcmp(type, "IHDR", 4) != 0 || n != 13)) {
            rc = png_fail(PNG_EFORMAT, err, errlen, "png: %s: the first chunk is not IHDR", path);
        } else if (!memcmp(type, "IHDR", 4)) {
            w = get_u32(data), h = get_u32(data + 4);
            int depth = data[8], color = data[9], interlace = data[12];
            if (w == 0 || h == 0 || w > PNG_MAX_DIM || h > PNG_MAX_DIM)
                rc = png_fail(PNG_EFORMAT, err, errlen, "png: %s: bad size %ux%u", path, w, h);
            else if (depth != 8 || color != 0 || interlace != 0)
                rc = png_fail(PNG_EUNSUPPORTED, err, errlen,
                              "png: %s: bit depth %d, color type %d%s: only 8-bit grayscale "
                              "(color type 0) non-interlaced PNGs are read",
                              path, depth, color, interlace ? ", interlaced" : "");
        } else if (!memcmp(type, "IDAT", 4)) {
            memcpy(idat + nidat, data, n);
            nidat += n;
        } else if (!memcmp(type, "IEND", 4)) {
            ended = true;
        } else if (!(type[0] & 0x20)) { /* an unknown critical chunk (PLTE in gray is an error) */
            rc = png_fail(PNG_EUNSUPPORTED, err, errlen, "png: %s: unsupported chunk %.4s", path,
                          (const char *)type);
        }
        pos += 12 + (size_t)n;
    }
    if (rc == PNG_OK) {
        size_t want = (size_t)h * ((size_t)w + 1);
        raw = nb_malloc(want + 1);
        uLongf got = (uLongf)want + 1;
        int z = uncompress(raw, &got, idat, (uLong)nidat);
        if (z != Z_OK || got != want)
            rc = png_fail(PNG_EFORMAT, err, errlen,
                          "png: %s: the image data does not inflate to %ux%u pixels", path, w, h);
    }
    if (rc == PNG_OK) {
        *pixels = nb_malloc((size_t)w * h);
        if (!unfilter(raw, *pixels, (int)w, (int)h)) {
            nb_free(*pixels);
            *pixels = NULL;
            rc = png_fail(PNG_EFORMAT, err, errlen, "png: %s: bad row filter type", path);
        } else {
            *width = (int)w, *height = (int)h;
        }
    }
    nb_free(buf), nb_free(idat), nb_free(raw);
    return rc;
}
