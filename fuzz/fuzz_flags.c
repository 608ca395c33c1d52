/* fuzz/fuzz_flags.c: libFuzzer harness for the vae command line's flag parser (cli_parse) over a
 * table with one option of every kind. The input is split at NUL bytes into argv.
 *
 *   make fuzz
 *   build/fuzz/fuzz_flags fuzz/corpus/flags
 *
 * A command line that parses must leave every value inside its declared range. The parser's
 * messages are noise here: make fuzz runs with -close_fd_mask=3. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/vae/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[64];
    int argc = 0;
    for (size_t i = 0; i <= size && argc < 64; i++) { /* NUL-separated words */
        argv[argc++] = buf + i;
        i += strlen(buf + i);
    }
    int64_t n = 7;
    double x = 0.5;
    const char *str = NULL;
    bool flag = false;
    cli_hidden h = {1, {400}};
    vae_likelihood lik = VAE_BERNOULLI;
    cli_opt o[] = {
        {"--n", CLI_INT, &n, "N", "an int", 1, 1e6, false, false},
        {"--x", CLI_REAL, &x, "X", "a real", 0, 10, false, false},
        {"--s", CLI_STRING, &str, "S", "a string", 0, 0, false, false},
        {"--f", CLI_FLAG, &flag, NULL, "a flag", 0, 0, false, false},
        {"--hidden", CLI_HIDDEN, &h, "H", "sizes", 1, 100000, false, false},
        {"--likelihood", CLI_LIKELIHOOD, &lik, "L", "likelihood", 0, 0, false, false},
    };
    int rc = cli_parse("fuzz", "fuzzing", o, 6, argc, argv);
    if (rc == 0) {
        if (n < 1 || n > 1000000 || !(x >= 0 && x <= 10)) abort();
        if (h.n < 1 || h.n > VAE_MAX_HIDDEN) abort();
        for (int i = 0; i < h.n; i++)
            if (h.size[i] < 1 || h.size[i] > 100000) abort();
        if (str && !*str) abort();
    } else if (rc != CLI_USAGE && rc != CLI_HELP) {
        abort();
    }
    free(buf);
    return 0;
}
