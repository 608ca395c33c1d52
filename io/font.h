/* io/font.h: a 5x7 bitmap font for labels on pictures (chart axes, titles, legends).
 *
 *   uint8_t rgb[H * W * 3];                      // an RGB buffer, row-major, 3 bytes a pixel
 *   const uint8_t black[3] = {0, 0, 0};
 *   font_draw(rgb, W, H, 10, 10, "loss 1.5e-3", 2, black);
 *   int px = font_text_width("loss", 2);          // 46: four cells of 12 less the last gap
 *
 * Every printable ASCII character (32..126) has a glyph; anything else is drawn as '?'.
 * Each glyph is 5 pixels wide and 7 high, plus one row below for the tails of g, j, p, q, y
 * (FONT_H = 8 in all); characters advance by 6 (one blank column). `scale` multiplies all of
 * that (scale 2 draws 10x16 cells). Drawing clips to the buffer,
 * so text that runs off the edge is cut, never written out of bounds. */
#ifndef NB_FONT_H
#define NB_FONT_H

#include <stdint.h>

#define FONT_W       5 /* glyph width in pixels at scale 1 */
#define FONT_H       8 /* glyph height in pixels at scale 1, with the descender row */
#define FONT_ADVANCE 6 /* distance from one character to the next at scale 1 */

/* Width in pixels of `s` drawn at `scale` (0 for an empty string or scale < 1). */
int font_text_width(const char *s, int scale);

/* Draws `s` left to right with its top-left corner at (x, y) into an RGB buffer of
 * width x height pixels; only glyph pixels are written (the background shows through). */
void font_draw(uint8_t *rgb, int width, int height, int x, int y, const char *s, int scale,
               const uint8_t color[3]);

/* Draws `s` rotated a quarter turn counter-clockwise (reading bottom to top, as a y-axis
 * title), with the text's baseline-start corner at (x, y): the text occupies columns
 * x .. x + FONT_H*scale - 1 and rows y - font_text_width(s, scale) + 1 .. y. */
void font_draw_up(uint8_t *rgb, int width, int height, int x, int y, const char *s, int scale,
                  const uint8_t color[3]);

#endif
