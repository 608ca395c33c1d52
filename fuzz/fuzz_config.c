/* fuzz/fuzz_config.c: libFuzzer harness for the text a checkpoint's metadata carries: the model
 * config (vae_config_parse) and the rng state (cli_rng_parse).
 *
 *   make fuzz
 *   build/fuzz/fuzz_config fuzz/corpus/config
 *
 * Whatever parses must survive a round trip: format(parse(s)) parses to the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "examples/vae/cli.h"
#include "models/vae.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    vae_config c, d;
    char err[256], text[1024];
    if (vae_config_parse(s, &c, err, sizeof err) == 0) {
        vae_config_format(&c, text, sizeof text);
        if (vae_config_parse(text, &d, err, sizeof err) != 0) abort();
        char again[1024];
        vae_config_format(&d, again, sizeof again);
        if (strcmp(text, again) != 0) abort();
    } else if (!err[0]) {
        abort();
    }
    nb_rng r;
    if (cli_rng_parse(s, &r)) {
        cli_rng_format(&r, text, sizeof text);
        if (strcmp(text, s) != 0) abort(); /* the form is strict: one spelling per state */
    }
    free(s);
    return 0;
}
