/* examples/vae/main.c: `vae`, the command line of nabla's VAE: train a model on IDX images,
 * draw from it, evaluate it, and use it to spot out-of-distribution inputs.
 *
 *   build/vae train --epochs 10 --out out
 *   build/vae sample --model out/model.safetensors --out samples.png
 *   build/vae eval --model out/model.safetensors --iw 5000
 *   build/vae --version       nabla's version, the gemm kernel this CPU runs, the thread count
 *
 * Built with `make MPI=1`, `mpirun -np N build/mpi/vae train ...` trains on N ranks (par.h).
 *
 * Exit status: 0 success, 1 a runtime failure, 2 a bad command line. */
#include <string.h>

#include "examples/vae/cli.h"
#include "examples/vae/par.h"
#include "tensor/gemm.h"

#ifndef NB_VERSION
#define NB_VERSION "unknown"
#endif

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"train", cli_train, "train a VAE (beta-VAE, conditional, IWAE) on IDX images"},
    {"sample", cli_sample, "draw samples from the prior into a PNG grid"},
    {"reconstruct", cli_reconstruct, "test images above their reconstructions"},
    {"interpolate", cli_interpolate, "latent interpolations (and the 2-D manifold)"},
    {"eval", cli_eval, "test ELBO, IWAE log-likelihood bound, active units, KL per dimension"},
    {"anomaly", cli_anomaly, "out-of-distribution scores and their AUROC"},
    {"encode", cli_encode, "images to codes (posterior means, optionally 8/16-bit) and sizes"},
    {"decode", cli_decode, "codes back to images (PNG grid, IDX split)"},
    {"arithmetic", cli_arithmetic, "move images along a class-to-class latent vector"},
    {"inpaint", cli_inpaint, "fill missing pixels by repeated encode -> decode"},
};
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: vae <command> [flags]\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun 'vae <command> --help' for its flags; 'vae --version' for the build.\n");
}

static int run(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vae (nabla %s): %s elements, gemm kernel %s, %d threads\n", NB_VERSION,
               NB_REAL_NAME, nb_gemm_kernel_name(), nb_get_num_threads());
        return 0;
    }
    if (par_size() > 1 && strcmp(argv[1], "train")) {
        fprintf(stderr, "vae: only 'train' runs on several ranks (mpirun -np 1 for '%s')\n",
                argv[1]);
        return CLI_USAGE;
    }
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].run(argc - 2, argv + 2);
            ag_reset();
            arena_free_all();
            return rc;
        }
    fprintf(stderr, "vae: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}

int main(int argc, char **argv) {
    par_init(&argc, &argv);
    return par_finish(run(argc, argv));
}
