/* tensor/base.c: counted memory and the programmer-error handler. */
#include "tensor/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- counted memory ------------------------------------------------------------------------ */

/* Each block carries a 64-byte header holding its size, so nb_free can keep live_bytes exact and
 * the payload stays 64-byte aligned. The block is rounded up to 64 bytes; under AddressSanitizer
 * the header and the rounding tail are poisoned, so ASan sees the exact size asked for and a
 * one-byte over- or under-read of any buffer is reported (without it, up to 63 bytes past the
 * end would go unseen). */
#define NB_ALIGN 64

#if defined(__SANITIZE_ADDRESS__)
#define NB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NB_ASAN 1
#endif
#endif
#ifdef NB_ASAN
#include <sanitizer/asan_interface.h>
#define NB_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define NB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define NB_POISON(p, n)   ((void)(p), (void)(n))
#define NB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static nb_mem_stats_t stats;

void *nb_malloc(size_t bytes) {
    if (bytes > SIZE_MAX - 2 * NB_ALIGN)
        nb_fail("nb_malloc", "request of %zu bytes is too large", bytes);
    size_t total = (bytes + 2 * NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN;
    unsigned char *base = aligned_alloc(NB_ALIGN, total);
    if (!base) nb_fail("nb_malloc", "out of memory allocating %zu bytes", bytes);
    memcpy(base, &bytes, sizeof bytes);
    NB_POISON(base, NB_ALIGN);                                    /* the header */
    NB_POISON(base + NB_ALIGN + bytes, total - NB_ALIGN - bytes); /* the rounding tail */
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
    NB_UNPOISON(base, sizeof bytes);
    memcpy(&bytes, base, sizeof bytes);
    NB_UNPOISON(base, (bytes + 2 * NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN); /* as it was given */
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
