/* nn/safetensors_impl.h: what the safetensors reader (nn/safetensors.c) and writer
 * (nn/safetensors_write.c) share; private to those two files, not part of the API.
 *
 *   return fail(err, ST_ERR_ARG, path, NAME_FMT ": bad ndim %d", name, ndim);
 */
#ifndef NB_SAFETENSORS_IMPL_H
#define NB_SAFETENSORS_IMPL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nn/safetensors.h"

/* How messages name a tensor. */
#define NAME_FMT "tensor '%.120s'"

/* Fills err (if not NULL) with code and "label: message"; returns code. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static inline st_status
fail(st_error *err, st_status code, const char *label, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    int n = snprintf(err->message, sizeof err->message, "%.200s: ", label ? label : "safetensors");
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof err->message) n = (int)sizeof err->message - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

static inline void set_ok(st_error *err) {
    if (!err) return;
    err->code = ST_OK;
    err->message[0] = '\0';
}

static inline int host_is_little(void) {
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* Copies one element of `size` bytes between host order and little-endian (either way). */
static inline void copy_le(void *dst, const void *src, size_t size) {
    if (host_is_little()) {
        memcpy(dst, src, size);
        return;
    }
    const unsigned char *s = src;
    unsigned char *d = dst;
    for (size_t i = 0; i < size; i++) d[i] = s[size - 1 - i];
}

#endif
