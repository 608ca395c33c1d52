/* examples/vae/show.c: the picture commands: vae sample, vae reconstruct, vae interpolate. */
#include <string.h>

#include "examples/vae/cli.h"

#define OPT_END(o) ((int)(sizeof(o) / sizeof((o)[0])))

int cli_sample(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    int64_t n = 64, label = -1, seed = 1;
    cli_opt o[] = {
        {"--model", CLI_STRING, &model, "FILE", "a checkpoint written by vae train", 0, 0, true,
         false},
        {"--out", CLI_STRING, &out, "PNG", "the picture to write", 0, 0, true, false},
        {"--n", CLI_INT, &n, "N",
         "samples (default 64, 8 to a row; a conditional model without --label: N/K per class, "
         "default 8)",
         1, 10000, false, false},
        {"--label", CLI_INT, &label, "K", "class to draw (conditional models)", 0, 999, false,
         false},
        {"--seed", CLI_INT, &seed, "S", "random seed (default 1)", 0, 9e18, false, false},
    };
    int rc = cli_parse("sample", "Draws samples from the prior and writes them as a grid.", o,
                       OPT_END(o), argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    vae_model m;
    if (cli_model_load("sample", model, &m, NULL, -1, NULL)) return CLI_FAIL;
    int K = m.cfg.num_classes;
    if (label >= 0 && label >= K) {
        vae_free(&m);
        return K == 0 ? cli_error(CLI_USAGE, "sample", "--label needs a conditional model")
                      : cli_error(CLI_USAGE, "sample", "--label %lld: the model has classes 0..%d",
                                  (long long)label, K - 1);
    }
    int64_t per_class = cli_find(o, OPT_END(o), "--n")->seen && K > 0 ? (n + K - 1) / K : 8;
    nb_rng rng;
    nb_rng_seed(&rng, (uint64_t)seed);
    rc = cli_write_samples("sample", &m, out, n, (int)label, per_class, &rng);
    if (!rc) printf("wrote %s\n", out);
    vae_free(&m);
    return rc;
}

int cli_reconstruct(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *data = "data/digits";
    int64_t n = 32;
    cli_opt o[] = {
        {"--model", CLI_STRING, &model, "FILE", "a checkpoint written by vae train", 0, 0, true,
         false},
        {"--data", CLI_STRING, &data, "DIR", "IDX data; its test set is used (default data/digits)",
         0, 0, false, false},
        {"--out", CLI_STRING, &out, "PNG", "the picture to write", 0, 0, true, false},
        {"--n", CLI_INT, &n, "N", "test images (default 32)", 1, 10000, false, false},
    };
    int rc = cli_parse("reconstruct", "Writes test images above their reconstructions.", o,
                       OPT_END(o), argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    vae_model m;
    if (cli_model_load("reconstruct", model, &m, NULL, -1, NULL)) return CLI_FAIL;
    idx_dataset test;
    rc = cli_load_split("reconstruct", data, 0, n, &test);
    if (!rc) rc = cli_check_data("reconstruct", data, &test, &m.cfg);
    if (!rc) rc = cli_write_reconstructions("reconstruct", &m, &test, out, n);
    if (!rc) printf("wrote %s\n", out);
    idx_free(&test);
    vae_free(&m);
    return rc;
}

int cli_interpolate(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *data = "data/digits";
    int64_t steps = 10, pairs = 8, label = -1;
    cli_opt o[] = {
        {"--model", CLI_STRING, &model, "FILE", "a checkpoint written by vae train", 0, 0, true,
         false},
        {"--data", CLI_STRING, &data, "DIR", "IDX data; its test set is used (default data/digits)",
         0, 0, false, false},
        {"--out", CLI_STRING, &out, "PNG",
         "the picture to write; a 2-D latent space also gets <out>-manifold.png", 0, 0, true,
         false},
        {"--steps", CLI_INT, &steps, "N", "decoded points between each pair (default 10)", 1, 1000,
         false, false},
        {"--pairs", CLI_INT, &pairs, "N", "rows: pairs of test images (default 8)", 1, 1000, false,
         false},
        {"--label", CLI_INT, &label, "K",
         "class of the manifold (conditional 2-D models; default 0)", 0, 999, false, false},
    };
    int rc = cli_parse("interpolate",
                       "Decodes the line between the latent codes of pairs of test images.", o,
                       OPT_END(o), argc, argv);
    if (rc) return rc == CLI_HELP ? 0 : rc;
    vae_model m;
    if (cli_model_load("interpolate", model, &m, NULL, -1, NULL)) return CLI_FAIL;
    if (label >= 0 && label >= m.cfg.num_classes) {
        vae_free(&m);
        return cli_error(CLI_USAGE, "interpolate", "--label %lld: the model has %d classes",
                         (long long)label, m.cfg.num_classes);
    }
    idx_dataset test;
    rc = cli_load_split("interpolate", data, 0, 2 * pairs, &test);
    if (!rc) rc = cli_check_data("interpolate", data, &test, &m.cfg);
    if (!rc) rc = cli_write_interpolations("interpolate", &m, &test, out, pairs, steps);
    if (!rc) printf("wrote %s\n", out);
    if (!rc && m.cfg.latent == 2) {
        char path[4096];
        size_t len = strlen(out);
        if (len > 4 && !strcmp(out + len - 4, ".png")) len -= 4;
        if (len + 14 > sizeof path)
            rc = cli_error(CLI_USAGE, "interpolate", "--out is too long");
        else {
            snprintf(path, sizeof path, "%.*s-manifold.png", (int)len, out);
            rc = cli_write_manifold("interpolate", &m, path, 20, (int)label);
            if (!rc) printf("wrote %s\n", path);
        }
    }
    idx_free(&test);
    vae_free(&m);
    return rc;
}
