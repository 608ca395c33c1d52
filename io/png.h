/* io/png.h: writing pictures as PNG files: one image, or a grid of many small ones.
 *
 *   char err[256];
 *   // 16 decoded digits, probabilities in [0, 1], shape [16, 28*28], as a 4 x 4 grid:
 *   if (png_write_grid("out/samples.png", probs, 16, 28, 28, 4, err, sizeof err) != PNG_OK)
 *       fprintf(stderr, "%s\n", err);   // e.g. "png: cannot create out/samples.png: ..."
 *
 *   uint8_t rgb[48 * 64 * 3];             // row-major, 3 bytes a pixel
 *   ...
 *   int rc = png_write("plot.png", rgb, 64, 48, 3, err, sizeof err);
 *
 * Files are 8-bit grayscale (1 channel) or 8-bit RGB (3 channels), non-interlaced, with each
 * row given the PNG filter that makes it smallest (a cheap standard heuristic) and the data
 * compressed by zlib. A file is written to "<path>.tmp" and renamed over `path` only when
 * complete, so a reader never sees half an image; on failure the .tmp file is removed.
 *
 * Failures never abort: each function returns a png_status and, when `err` is not NULL, writes
 * a one-line message (at most errlen bytes, NUL-terminated) naming the problem and the path.
 * Memory for rows and grids comes from nb_malloc; sizes are checked against PNG_MAX_DIM and
 * PNG_MAX_BYTES before anything is allocated. */
#ifndef NB_PNG_H
#define NB_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/base.h"

typedef enum {
    PNG_OK = 0,
    PNG_EARG,         /* bad argument: NULL pointer, size <= 0 or too large, channels not 1 or 3 */
    PNG_EOPEN,        /* the temporary file could not be created (missing directory, permissions) */
    PNG_EWRITE,       /* writing, closing or renaming the file failed (disk full, path is a dir) */
    PNG_EZLIB,        /* zlib reported an error while compressing */
    PNG_EREAD,        /* png_read_gray: the file cannot be opened or read */
    PNG_EFORMAT,      /* png_read_gray: not a PNG, or damaged (bad CRC, truncated, bad data) */
    PNG_EUNSUPPORTED, /* png_read_gray: a valid PNG other than 8-bit gray, non-interlaced */
} png_status;

#define PNG_MAX_DIM       32768             /* the largest width or height accepted */
#define PNG_MAX_BYTES     ((size_t)1 << 28) /* the largest width * height * channels accepted */
#define PNG_GRID_SEP      2                 /* pixels between grid cells and around the border */
#define PNG_GRID_SEP_GRAY 128               /* gray level of separators and of empty cells */

/* A short name for a status ("ok", "bad argument", ...); never NULL. */
const char *png_status_str(int status);

/* Formats a message into err (when err is not NULL and errlen > 0, truncated to fit) and
 * returns status: the error path of every writer in io/ (PNG and chart). */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int png_fail(int status, char *err, size_t errlen, const char *fmt, ...);

/* Writes `pixels` (height rows of width * channels bytes, top row first) to `path`.
 * channels is 1 (gray) or 3 (RGB). Returns PNG_OK or an error status (see above). */
int png_write(const char *path, const uint8_t *pixels, int width, int height, int channels,
              char *err, size_t errlen);

/* The size of the grid png_write_grid draws for n images of h x w in `cols` columns:
 * ceil(n / c) rows of c = min(cols, n) cells, PNG_GRID_SEP pixels between cells and around
 * the edge. Returns PNG_OK, or PNG_EARG when an argument is <= 0 or the grid is too large. */
int png_grid_size(int n, int h, int w, int cols, int *grid_h, int *grid_w);

/* Tiles n grayscale images of h x w (imgs has shape [n, h*w], values in [0, 1]) into a grid
 * and writes it as a gray PNG. Image k goes to row k / c, column k % c (c as above), its
 * top-left pixel at (PNG_GRID_SEP + row*(h + PNG_GRID_SEP), PNG_GRID_SEP + col*(w + ...)).
 * Values are clamped to [0, 1] and rounded to round(255 * v); NaN becomes 0. */
int png_write_grid(const char *path, const real *imgs, int n, int h, int w, int cols, char *err,
                   size_t errlen);

/* Reads an 8-bit grayscale non-interlaced PNG (what png_write writes with 1 channel; the only
 * kind supported: any other color type, bit depth or interlacing gives PNG_EUNSUPPORTED naming
 * it). On PNG_OK *pixels owns height rows of width bytes (free with nb_free); on failure
 * *pixels is NULL. Every chunk's CRC is checked; sizes are limited as for writing. */
int png_read_gray(const char *path, uint8_t **pixels, int *width, int *height, char *err,
                  size_t errlen);
/* As png_write_grid, for images of bytes (shape [n, h*w], 0 black .. 255 white). */
int png_write_grid_u8(const char *path, const uint8_t *imgs, int n, int h, int w, int cols,
                      char *err, size_t errlen);

#endif
