/* fuzz/fuzz_idx.c: libFuzzer harness for the IDX reader (raw and gzip) through its public
 * loaders. The reader takes a path, so each input is written to one temporary file first.
 *
 *   make fuzz
 *   build/fuzz/fuzz_idx fuzz/corpus/idx
 *
 * Every input must load or fail with a status and a message; never crash or leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/idx.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    snprintf(path, sizeof path, "/tmp/nabla-fuzz-idx-%ld", (long)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    char err[512];
    uint8_t *img = NULL, *lab = NULL;
    int64_t n, rows, cols, nl;
    idx_status s = idx_load_images(path, &img, &n, &rows, &cols, err, sizeof err);
    if (s == IDX_OK) {
        int64_t sum = 0; /* touch every byte: the sanitizer checks the size claimed */
        for (int64_t i = 0; i < n * rows * cols; i++) sum += img[i];
        (void)sum;
        nb_free(img);
    } else if (img || !err[0]) {
        abort();
    }
    s = idx_load_labels(path, 10, &lab, &nl, err, sizeof err);
    if (s == IDX_OK) {
        for (int64_t i = 0; i < nl; i++)
            if (lab[i] > 9) abort();
        nb_free(lab);
    } else if (lab || !err[0]) {
        abort();
    }
    unlink(path);
    return 0;
}
