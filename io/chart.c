/* io/chart.c: line charts drawn into an RGB buffer (axes, ticks, legend, title) and saved as
 * PNG. Sections: drawing primitives, axis ranges and tick labels, layout and rendering. */
#include "io/chart.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/font.h"

#define MAX_TICKS       16
#define LABEL_LEN       32
#define MAX_LEGEND_ROWS 3
#define MARKERS_UP_TO   50 /* series with at most this many points get a marker on each point */

static const uint8_t WHITE[3] = {255, 255, 255};
static const uint8_t BLACK[3] = {0, 0, 0};
static const uint8_t GRID[3] = {228, 228, 228};
static const uint8_t TEXT[3] = {40, 40, 40};
/* Eight colours that stay apart from each other and from the gray grid. */
static const uint8_t PALETTE[8][3] = {
    {31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
    {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
};

/* ---- drawing primitives -------------------------------------------------------------------- */

typedef struct {
    uint8_t *rgb; /* (height, width, 3) */
    int width, height;
} canvas;

/* Fills the rectangle with corners (x0, y0) and (x1, y1), inclusive, clipped to the canvas. */
static void fill_rect(const canvas *c, int x0, int y0, int x1, int y1, const uint8_t color[3]) {
    if (x0 > x1) {
        int t = x0;
        x0 = x1;
        x1 = t;
    }
    if (y0 > y1) {
        int t = y0;
        y0 = y1;
        y1 = t;
    }
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 >= c->width) x1 = c->width - 1;
    if (y1 >= c->height) y1 = c->height - 1;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            memcpy(c->rgb + ((size_t)y * (size_t)c->width + (size_t)x) * 3, color, 3);
}

/* Draws a line `thick` pixels wide from (x0, y0) to (x1, y1) by stamping a square at each
 * step of Bresenham's walk. */
static void draw_line(const canvas *c, int x0, int y0, int x1, int y1, int thick,
                      const uint8_t color[3]) {
    int dx = x1 > x0 ? x1 - x0 : x0 - x1, sx = x0 < x1 ? 1 : -1;
    int dy = y1 > y0 ? y0 - y1 : y1 - y0, sy = y0 < y1 ? 1 : -1; /* dy <= 0 */
    int e = dx + dy, lo = -(thick / 2), hi = lo + thick - 1;
    for (;;) {
        fill_rect(c, x0 + lo, y0 + lo, x0 + hi, y0 + hi, color);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) {
            e += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            e += dx;
            y0 += sy;
        }
    }
}

/* ---- ranges and ticks ---------------------------------------------------------------------- */

/* 1, 2 or 5 times a power of ten, the nearest to raw (> 0). */
static double nice_step(double raw) {
    double p = pow(10.0, floor(log10(raw)));
    double f = raw / p;
    double step = (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * p;
    return isfinite(step) && step > 0 ? step : raw;
}

typedef struct {
    double lo, hi;                    /* the axis range */
    int n;                            /* number of ticks */
    double at[MAX_TICKS];             /* tick positions in data units */
    char label[MAX_TICKS][LABEL_LEN]; /* their labels */
} axis;

/* A tick label: fixed-point with as many decimals as the step needs, or scientific notation
 * (with a short exponent, "1.5e-7") for very large or very small numbers. */
static void format_tick(char *buf, double v, double step, double maxabs) {
    if (fabs(v) < step * 1e-6) v = 0.0; /* no "-0" or "1e-17" for a tick at zero */
    int smag = (int)floor(log10(step) + 1e-9);
    int mag = maxabs > 0 ? (int)floor(log10(maxabs) + 1e-9) : 0;
    if (smag >= -4 && mag < 6) {
        snprintf(buf, LABEL_LEN, "%.*f", smag < 0 ? -smag : 0, v);
        return;
    }
    if (v == 0.0) {
        snprintf(buf, LABEL_LEN, "0");
        return;
    }
    int digits = mag - smag;
    digits = digits < 0 ? 0 : digits > 10 ? 10 : digits;
    char mant[24]; /* "-1.0123456789e+308" at most */
    snprintf(mant, sizeof mant, "%.*e", digits, v);
    char *e = strchr(mant, 'e'); /* printf's "1.50e+07" becomes "1.50e7", "2e-05" "2e-5" */
    int exponent = e ? atoi(e + 1) : 0;
    if (e) *e = '\0';
    snprintf(buf, LABEL_LEN, "%se%d", mant, exponent);
}

/* Fills ticks for the y range [lo, hi] (finite, lo < hi): a nice step giving 4-8 ticks, and the
 * range widened to whole steps. Works in halves so hi - lo never overflows. */
static void y_axis(axis *a, double lo, double hi) {
    double half_span = hi / 2 - lo / 2;
    double step = nice_step(half_span / 2.5);
    double k0 = floor(lo / step), k1 = ceil(hi / step);
    double wlo = k0 * step, whi = k1 * step;
    if (isfinite(wlo) && isfinite(whi) && k1 - k0 < MAX_TICKS) {
        a->lo = wlo;
        a->hi = whi;
    } else { /* at the very ends of the double range: keep the data range */
        a->lo = lo;
        a->hi = hi;
        k0 = ceil(lo / step);
        k1 = floor(hi / step);
    }
    double maxabs = fmax(fabs(a->lo), fabs(a->hi));
    a->n = 0;
    for (double k = k0; k <= k1 && a->n < MAX_TICKS; k += 1.0) {
        a->at[a->n] = k * step;
        format_tick(a->label[a->n], a->at[a->n], step, maxabs);
        a->n++;
    }
}

/* Ticks for x = 1..npoints: whole numbers at a nice step; one point gets the range [0, 2]. */
static void x_axis(axis *a, int npoints) {
    if (npoints <= 1) {
        a->lo = 0.0;
        a->hi = 2.0;
    } else {
        a->lo = 1.0;
        a->hi = (double)npoints;
    }
    double step = nice_step((a->hi - a->lo) / 5.0);
    if (step < 1.0) step = 1.0;
    a->n = 0;
    for (double k = ceil(a->lo / step); k * step <= a->hi && a->n < MAX_TICKS; k += 1.0) {
        a->at[a->n] = k * step;
        snprintf(a->label[a->n], LABEL_LEN, "%.0f", k * step);
        a->n++;
    }
}

/* ---- layout and rendering ------------------------------------------------------------------ */

void chart_pixel(const chart_frame *f, double x, double y, int *px, int *py) {
    double fx = (x - f->xmin) / (f->xmax - f->xmin);
    double fy = (y / 2 - f->ymin / 2) / (f->ymax / 2 - f->ymin / 2);
    double X = f->left + fx * (f->right - f->left);
    double Y = f->bottom - fy * (f->bottom - f->top);
    X = isnan(X) ? 0.0 : fmax(-1e9, fmin(1e9, X));
    Y = isnan(Y) ? 0.0 : fmax(-1e9, fmin(1e9, Y));
    if (px) *px = (int)lround(X);
    if (py) *py = (int)lround(Y);
}

static const char *series_name(const chart_series *s, int k, char *buf) {
    if (s[k].name) return s[k].name;
    snprintf(buf, LABEL_LEN, "series %d", k + 1);
    return buf;
}

/* Draws the legend items in rows starting at (x, y), wrapping at x_end; returns the number of
 * rows used (at most MAX_LEGEND_ROWS; items that do not fit are left out). With draw == 0 it
 * only measures. */
static int legend(const canvas *c, const chart_series *s, int nseries, int x, int y, int x_end,
                  int scale, int draw) {
    int swatch = 14 * scale, gap = 4 * scale, spacing = 14 * scale, row_h = (FONT_H + 5) * scale;
    int cx = x, rows = nseries > 0 ? 1 : 0;
    for (int k = 0; k < nseries; k++) {
        char buf[LABEL_LEN];
        const char *name = series_name(s, k, buf);
        int item = swatch + gap + font_text_width(name, scale);
        if (cx > x && cx + item > x_end) {
            if (rows == MAX_LEGEND_ROWS) break;
            rows++;
            cx = x;
        }
        if (draw) {
            int ty = y + (rows - 1) * row_h, mid = ty + 3 * scale; /* the middle of a capital */
            const uint8_t *col = PALETTE[k % 8];
            fill_rect(c, cx, mid - scale, cx + swatch - 1, mid + scale - 1, col);
            font_draw(c->rgb, c->width, c->height, cx + swatch + gap, ty, name, scale, TEXT);
        }
        cx += item + spacing;
    }
    return rows;
}

int chart_render(uint8_t *rgb, int width, int height, const char *title, const char *xlabel,
                 const char *ylabel, const chart_series *s, int nseries, chart_frame *frame,
                 char *err, size_t errlen) {
    if (!rgb) return png_fail(PNG_EARG, err, errlen, "chart: the pixel buffer is NULL");
    if (width < CHART_MIN_SIZE || height < CHART_MIN_SIZE || width > CHART_MAX_SIZE ||
        height > CHART_MAX_SIZE)
        return png_fail(PNG_EARG, err, errlen, "chart: size %d x %d is not in %d..%d a side", width,
                        height, CHART_MIN_SIZE, CHART_MAX_SIZE);
    if (nseries < 0 || (nseries > 0 && !s))
        return png_fail(PNG_EARG, err, errlen, "chart: %d series at %p", nseries, (const void *)s);
    for (int k = 0; k < nseries; k++)
        if (s[k].n < 0 || (s[k].n > 0 && !s[k].y))
            return png_fail(PNG_EARG, err, errlen, "chart: series %d has n = %d and y = %p", k,
                            s[k].n, (const void *)s[k].y);

    /* Data ranges: x from the longest series, y from every finite value. */
    int npoints = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < nseries; k++) {
        if (s[k].n > npoints) npoints = s[k].n;
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].y[i])) {
                lo = fmin(lo, s[k].y[i]);
                hi = fmax(hi, s[k].y[i]);
            }
    }
    if (!(lo <= hi)) { /* no finite values at all */
        lo = 0.0;
        hi = 1.0;
    } else if (hi - lo <= 1e-9 * fmax(fabs(lo), fabs(hi))) { /* constant (or nearly) */
        double mid = lo / 2 + hi / 2, d = mid == 0.0 ? 1.0 : fabs(mid) * 0.1;
        lo = isfinite(mid - d) ? mid - d : -DBL_MAX;
        hi = isfinite(mid + d) ? mid + d : DBL_MAX;
    }
    axis xa, ya;
    x_axis(&xa, npoints);
    y_axis(&ya, lo, hi);

    /* Layout: title, legend rows, plot; y labels and title to the left, x labels below. */
    int sc = width >= 800 && height >= 600 ? 2 : 1;
    int tsc = width >= 300 ? 2 * sc : sc;
    int pad = 8 * sc, tick = 4 * sc, ch = FONT_H * sc;
    int ylab_w = 0;
    for (int i = 0; i < ya.n; i++) {
        int w = font_text_width(ya.label[i], sc);
        if (w > ylab_w) ylab_w = w;
    }
    canvas cv = {rgb, width, height};
    chart_frame f;
    f.left = pad + (ylabel && *ylabel ? ch + pad : 0) + ylab_w + sc * 3 + tick;
    f.right = width - 1 - pad - font_text_width(xa.label[xa.n - 1], sc) / 2;
    int legend_top = pad + (title && *title ? FONT_H * tsc + pad : 0);
    int rows = legend(&cv, s, nseries, f.left, legend_top, f.right, sc, 0);
    f.top = legend_top + rows * (FONT_H + 5) * sc + (rows > 0 ? pad : 0);
    f.bottom = height - 1 - pad - (xlabel && *xlabel ? ch + pad / 2 : 0) - ch - sc * 3 - tick;
    f.xmin = xa.lo;
    f.xmax = xa.hi;
    f.ymin = ya.lo;
    f.ymax = ya.hi;
    if (f.right - f.left < 16 || f.bottom - f.top < 16)
        return png_fail(PNG_EARG, err, errlen, "chart: %d x %d is too small for the labels", width,
                        height);
    if (frame) *frame = f;

    fill_rect(&cv, 0, 0, width - 1, height - 1, WHITE);

    /* Grid lines, ticks and tick labels. */
    for (int i = 0; i < ya.n; i++) {
        int py;
        chart_pixel(&f, f.xmin, ya.at[i], NULL, &py);
        fill_rect(&cv, f.left, py, f.right, py, GRID);
        fill_rect(&cv, f.left - tick, py, f.left - 1, py, BLACK);
        int w = font_text_width(ya.label[i], sc);
        font_draw(rgb, width, height, f.left - tick - sc * 3 - w, py - 3 * sc, ya.label[i], sc,
                  TEXT);
    }
    for (int i = 0; i < xa.n; i++) {
        int px;
        chart_pixel(&f, xa.at[i], f.ymin, &px, NULL);
        fill_rect(&cv, px, f.top, px, f.bottom, GRID);
        fill_rect(&cv, px, f.bottom + 1, px, f.bottom + tick, BLACK);
        int w = font_text_width(xa.label[i], sc);
        font_draw(rgb, width, height, px - w / 2, f.bottom + tick + sc * 3, xa.label[i], sc, TEXT);
    }
    fill_rect(&cv, f.left, f.top, f.left, f.bottom, BLACK);     /* y axis */
    fill_rect(&cv, f.left, f.bottom, f.right, f.bottom, BLACK); /* x axis */

    /* Titles and legend. */
    if (title && *title)
        font_draw(rgb, width, height, (width - font_text_width(title, tsc)) / 2, pad, title, tsc,
                  BLACK);
    if (xlabel && *xlabel)
        font_draw(rgb, width, height, (f.left + f.right - font_text_width(xlabel, sc)) / 2,
                  height - 1 - pad - ch + 1, xlabel, sc, TEXT);
    if (ylabel && *ylabel)
        font_draw_up(rgb, width, height, pad, (f.top + f.bottom + font_text_width(ylabel, sc)) / 2,
                     ylabel, sc, TEXT);
    legend(&cv, s, nseries, f.left, legend_top, f.right, sc, 1);

    /* The series: lines between consecutive finite points, markers on short series and on
     * points with no finite neighbour (which would otherwise not show at all). */
    int thick = 2 * sc;
    for (int k = 0; k < nseries; k++) {
        const uint8_t *col = PALETTE[k % 8];
        const double *y = s[k].y;
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(y[i])) continue;
            int px, py;
            chart_pixel(&f, i + 1.0, y[i], &px, &py);
            int prev_ok = i > 0 && isfinite(y[i - 1]);
            int next_ok = i + 1 < s[k].n && isfinite(y[i + 1]);
            if (prev_ok) {
                int qx, qy;
                chart_pixel(&f, (double)i, y[i - 1], &qx, &qy);
                draw_line(&cv, qx, qy, px, py, thick, col);
            }
            if (s[k].n <= MARKERS_UP_TO || (!prev_ok && !next_ok)) {
                int r = thick;
                fill_rect(&cv, px - r, py - r, px + r, py + r, col);
            }
        }
    }
    return PNG_OK;
}

int chart_write_png(const char *path, const char *title, const char *xlabel, const char *ylabel,
                    const chart_series *s, int nseries, int width, int height, char *err,
                    size_t errlen) {
    if (width < CHART_MIN_SIZE || height < CHART_MIN_SIZE || width > CHART_MAX_SIZE ||
        height > CHART_MAX_SIZE)
        return png_fail(PNG_EARG, err, errlen, "chart: %s: size %d x %d is not in %d..%d a side",
                        path ? path : "(null)", width, height, CHART_MIN_SIZE, CHART_MAX_SIZE);
    uint8_t *rgb = nb_malloc((size_t)width * (size_t)height * 3);
    int status =
        chart_render(rgb, width, height, title, xlabel, ylabel, s, nseries, NULL, err, errlen);
    if (status == PNG_OK) status = png_write(path, rgb, width, height, 3, err, errlen);
    nb_free(rgb);
    return status;
}
