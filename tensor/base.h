/* tensor/base.h: what every nabla file stands on: the element type, counted memory, errors.
 *
 *   real *buf = nb_malloc(n * sizeof(real));   // counted: nb_mem_stats() sees it
 *   ...
 *   nb_free(buf);                              // NULL is a harmless no-op
 *
 * The element type `real` is float, or double when built with -DNB_DOUBLE (`make DOUBLE=1`);
 * the double build exists so gradient checks can be run with tight tolerances.
 *
 * Errors come in two tiers (see docs/DESIGN.md):
 *  - programmer errors (a shape mismatch, backward on a non-scalar) call nb_fail(), which
 *    formats "nabla: <op>: <message> (at file:line)" (the user's call site when known, see
 *    NB_AT below, then the library's) and hands it to the error handler; the
 *    default handler prints it to stderr and aborts. A program (or a test) may install its own
 *    handler with nb_set_error_handler(); if the handler returns, nb_fail longjmps nowhere: it
 *    aborts, so a replacement handler that wants to carry on must longjmp out itself.
 *  - anything read from a file or the command line returns a status the caller handles; nabla
 *    never aborts on bad data. */
#ifndef NB_BASE_H
#define NB_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef NB_DOUBLE
typedef double real;
#define NB_REAL_NAME   "double"
#define NB_REAL_FN(fn) fn /* the libm function for real: NB_REAL_FN(sqrt) is sqrt or sqrtf */
#else
typedef float real;
#define NB_REAL_NAME   "float"
#define NB_REAL_FN(fn) fn##f
#endif

/* ---- counted memory ------------------------------------------------------------------------ */

/* malloc/calloc/free that keep counters. nb_malloc never returns NULL: running out of memory is
 * reported through nb_fail. Memory is aligned to 64 bytes (one cache line, one AVX-512 vector). */
void *nb_malloc(size_t bytes);
void *nb_calloc(size_t bytes);
void nb_free(void *p);

typedef struct {
    int64_t allocs;     /* nb_malloc/nb_calloc calls since the start of the program */
    int64_t frees;      /* nb_free calls with a non-NULL pointer */
    int64_t live;       /* blocks allocated and not yet freed */
    int64_t live_bytes; /* bytes in those blocks */
    int64_t peak_bytes; /* the largest live_bytes seen */
} nb_mem_stats_t;

nb_mem_stats_t nb_mem_stats(void);

/* ---- errors -------------------------------------------------------------------------------- */

typedef void (*nb_error_handler)(const char *message);

/* Installs a handler for programmer errors and returns the previous one (NULL restores the
 * default, which prints and aborts). The message is valid only during the call. */
nb_error_handler nb_set_error_handler(nb_error_handler handler);

/* Reports a programmer error in `op` at the caller's file and line; never returns. */
#define nb_fail(op, ...) nb_fail_at(__FILE__, __LINE__, op, __VA_ARGS__)
#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 4, 5)))
#endif
void nb_fail_at(const char *file, int line, const char *op, const char *fmt, ...);

/* The text of the last programmer error (handy in tests whose handler longjmps). */
const char *nb_last_error(void);

/* ---- call sites ------------------------------------------------------------------------------
 * The public ops that can fail on bad shapes are wrapped, in code outside the library, by
 * macros that record the caller's file and line around the call:
 *   #define ag_matmul(a, b) NB_AT(Tensor *, ag_matmul(a, b))
 * so an error names the line of the user's code ("at model.c:42") as well as the place in the
 * library that found it. The library itself is built with NB_INTERNAL, which turns the macros
 * off, so its own calls never cover the user's site. */
void nb_site_push(const char *file, int line);
void *nb_site_pop(void *result); /* returns result */
/* The innermost call site under way: true and *file, *line set, or false when there is none. */
bool nb_site_current(const char **file, int *line);
#ifndef NB_INTERNAL
#define NB_AT(T, call) ((T)nb_site_pop((nb_site_push(__FILE__, __LINE__), (call))))
#endif

/* Formats a shape as "[2, 3, 4]" into buf (at least 128 bytes); returns buf. */
char *nb_shape_str(char *buf, int ndim, const int64_t *shape);

#endif
