/* tensor/base.c: counted memory and the programmer-error handler. */
#include "tensor/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- counted memory ------------------------------------------------------------------------ */

/* Each block carries a 64-byte header holding its size, so nb_free can keep live_bytes exact and
 * the payload stays 64-byte aligned. */
#define NB_ALIGN 64

static nb_mem_stats_t stats;

void *nb_malloc(size_t bytes) {
    if (bytes > SIZE_MAX - 2 * NB_ALIGN)
        nb_fail("nb_malloc", "request of %zu bytes is too large", bytes);
    unsigned char *base = aligned_alloc(NB_ALIGN, (bytes + 2 * NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN);
    if (!base) nb_fail("nb_malloc", "out of memory allocating %zu bytes", bytes);
    memcpy(base, &bytes, sizeof bytes);
#ifdef _OPENMP
#pragma omp critical(nb_mem)
#endif
    {
        stats.allocs++;
        stats.live++;
        stats.live_bytes += (int64_t)bytes;
        if (stats.live_bytes > stats.peak_bytes) stats.peak_bytes = stats.live_bytes;
    }
    return base + NB_ALIGN;
}

void *nb_calloc(size_t bytes) {
    void *p = nb_malloc(bytes);
    memset(p, 0, bytes);
    return p;
}

void nb_free(void *p) {
    if (!p) return;
    unsigned char *base = (unsigned char *)p - NB_ALIGN;
    size_t bytes;
    memcpy(&bytes, base, sizeof bytes);
#ifdef _OPENMP
#pragma omp critical(nb_mem)
#endif
    {
        stats.frees++;
        stats.live--;
        stats.live_bytes -= (int64_t)bytes;
    }
    free(base);
}

nb_mem_stats_t nb_mem_stats(void) {
    return stats;
}

/* ---- errors -------------------------------------------------------------------------------- */

static char last_error[1024];

static void default_handler(const char *message) {
    fprintf(stderr, "%s\n", message);
}

static nb_error_handler handler = default_handler;

nb_error_handler nb_set_error_handler(nb_error_handler h) {
    nb_error_handler old = handler;
    handler = h ? h : default_handler;
    return old;
}

/* The call sites of the wrapped public ops under way, innermost last. */
#define MAX_SITES 64
static struct {
    const char *file;
    int line;
} sites[MAX_SITES];
static int nsites;

void nb_site_push(const char *file, int line) {
    if (nsites < MAX_SITES) sites[nsites].file = file, sites[nsites].line = line;
    nsites++;
}

void *nb_site_pop(void *result) {
    if (nsites > 0) nsites--;
    return result;
}

bool nb_site_current(const char **file, int *line) {
    if (nsites == 0) return false;
    int k = (nsites < MAX_SITES ? nsites : MAX_SITES) - 1;
    *file = sites[k].file;
    *line = sites[k].line;
    return true;
}

void nb_fail_at(const char *file, int line, const char *op, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (nsites > 0) { /* the user's call of a wrapped op, then where the library found it */
        int k = (nsites < MAX_SITES ? nsites : MAX_SITES) - 1;
        snprintf(last_error, sizeof last_error, "nabla: %s: %s (at %s:%d; found in %s:%d)", op, msg,
                 sites[k].file, sites[k].line, file, line);
    } else {
        snprintf(last_error, sizeof last_error, "nabla: %s: %s (at %s:%d)", op, msg, file, line);
    }
    nsites = 0; /* the failed computation is abandoned, whatever the handler does next */
    handler(last_error);
    abort();
}

const char *nb_last_error(void) {
    return last_error;
}

char *nb_shape_str(char *buf, int ndim, const int64_t *shape) {
    int n = snprintf(buf, 128, "[");
    for (int i = 0; i < ndim && n < 100; i++)
        n += snprintf(buf + n, 128 - (size_t)n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    snprintf(buf + n, 128 - (size_t)n, "]");
    return buf;
}
