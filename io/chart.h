/* io/chart.h: line charts as PNG files, e.g. the train and test loss of each epoch.
 *
 *   double train[5] = {210.3, 160.2, 140.8, 131.0, 126.5};
 *   double test[5] = {180.1, 150.6, 137.2, 130.9, 127.7};
 *   chart_series s[2] = {{"train", train, 5}, {"test", test, 5}};
 *   char err[256];
 *   if (chart_write_png("out/loss.png", "VAE loss", "epoch", "loss", s, 2, 640, 400,
 *                       err, sizeof err) != PNG_OK)
 *       fprintf(stderr, "%s\n", err);
 *
 * Point i of a series (0-based) is drawn at x = i + 1. The chart has a white background, a
 * title, a legend of series names in their colours under it, axes with 4-8 ticks labelled by
 * "nice" numbers (1, 2 or 5 times a power of ten) and light grid lines, and the axis titles.
 * The y axis spans the finite values of all series rounded out to ticks; NaN and infinite
 * values are skipped (the line breaks there). A lone point, a constant series, no data at
 * all, and ranges from 1e-300 to 1e300 all draw without trouble. Labels use the 5x7 font of
 * io/font.h, doubled in size when the picture is at least 800 x 600.
 *
 * Failures never abort: functions return a png_status (io/png.h) and, when err is not NULL,
 * a one-line message. */
#ifndef NB_CHART_H
#define NB_CHART_H

#include <stddef.h>
#include <stdint.h>

#include "io/png.h"

typedef struct {
    const char *name; /* legend text; NULL shows as "series k" */
    const double *y;  /* n values; point i is drawn at x = i + 1 */
    int n;            /* number of values, >= 0 */
} chart_series;

/* Where the data went: the plot area in pixels and the data range it spans. */
typedef struct {
    int left, top, right, bottom; /* plot area, inclusive pixel bounds (top < bottom) */
    double xmin, xmax;            /* data x at the left and right edges */
    double ymin, ymax;            /* data y at the bottom and top edges */
} chart_frame;

#define CHART_MIN_SIZE 64   /* the smallest width or height accepted */
#define CHART_MAX_SIZE 8192 /* the largest width or height accepted */

/* Draws the chart into rgb (height rows of width * 3 bytes, overwritten entirely) and, if
 * frame is not NULL, stores the plot area and ranges there. Returns PNG_OK, or PNG_EARG for
 * a size outside CHART_MIN_SIZE..CHART_MAX_SIZE, a picture too small for its labels, or a
 * NULL rgb / series array / y with n > 0. title, xlabel, ylabel may be NULL (not drawn). */
int chart_render(uint8_t *rgb, int width, int height, const char *title, const char *xlabel,
                 const char *ylabel, const chart_series *s, int nseries, chart_frame *frame,
                 char *err, size_t errlen);

/* Renders the chart (as chart_render) and writes it as an RGB PNG to path (as png_write).
 * Returns PNG_OK or the status of whichever step failed, with a message in err. */
int chart_write_png(const char *path, const char *title, const char *xlabel, const char *ylabel,
                    const chart_series *s, int nseries, int width, int height, char *err,
                    size_t errlen);

/* The pixel at which data point (x, y) is drawn in a chart with this frame (rounded to the
 * nearest pixel; values outside the range land outside the plot area, clamped to the
 * picture's int range). */
void chart_pixel(const chart_frame *frame, double x, double y, int *px, int *py);

#endif
