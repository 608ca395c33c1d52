/* fuzz/fuzz_safetensors.c: libFuzzer harness for the safetensors reader (st_parse) and the
 * lookups a checkpoint load makes on whatever it accepts.
 *
 *   make fuzz                        (builds with clang, replays fuzz/corpus/safetensors, fuzzes)
 *   build/fuzz/fuzz_safetensors fuzz/corpus/safetensors
 *
 * Every input must give ST_OK with consistent tables or an error with a message naming the
 * label; anything else (a crash, a sanitizer report, a leak, nb_fail) is a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file *f = NULL;
    st_error err;
    st_status st = st_parse(data, size, "fuzz", &f, &err);
    if (st != ST_OK) {
        if (f || err.code != st || strncmp(err.message, "fuzz: ", 6) != 0) abort();
        return 0;
    }
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        if (st_find(f, t->name) != t) abort();
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
        if (n * st_dtype_size(t->dtype) != t->nbytes) abort();
        if (n > (1u << 20)) continue; /* reading is linear: a few big tensors say nothing new */
        void *dst = malloc((n ? n : 1) * sizeof(int64_t));
        st_status r = t->dtype == ST_F32 || t->dtype == ST_F64
                          ? st_read_real(f, t->name, dst, t->ndim, t->shape, &err)
                          : st_read_i64(f, t->name, dst, t->ndim, t->shape, &err);
        (void)r;
        free(dst);
    }
    for (int i = 0; i < st_meta_count(f); i++) {
        st_meta m = st_meta_at(f, i);
        if (!m.key || st_meta_get(f, m.key) != m.value) abort();
    }
    st_close(f);
    return 0;
}
