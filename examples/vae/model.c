/* examples/vae/model.c: building a VAE from a checkpoint, and the rng state as text. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "examples/vae/cli.h"

int cli_model_load(const char *cmd, const char *path, vae_model *m, nn_optim **opt, double opt_lr,
                   nn_checkpoint_meta **meta_out) {
    nn_ckpt_error e;
    nn_checkpoint_meta *meta = NULL;
    if (nn_checkpoint_read_meta(path, &meta, &e) != NN_CKPT_OK)
        return cli_error(CLI_FAIL, cmd, "cannot read model %s", e.message);
    const char *cs = nn_checkpoint_meta_get(meta, CLI_META_CONFIG);
    if (!cs) {
        nn_checkpoint_meta_free(meta);
        return cli_error(CLI_FAIL, cmd, "%s: not a vae checkpoint (no \"%s\" in its metadata)",
                         path, CLI_META_CONFIG);
    }
    vae_config cfg;
    char err[256];
    if (vae_config_parse(cs, &cfg, err, sizeof err) != 0) {
        nn_checkpoint_meta_free(meta);
        return cli_error(CLI_FAIL, cmd, "%s: bad model config: %s", path, err);
    }
    vae_init(m, &cfg, NULL);
    if (opt_lr >= 0) *opt = nn_optim_adam(&m->params, nn_adam_defaults(opt_lr));
    /* a weights-only file (e.g. written from PyTorch) gives a fresh optimizer */
    bool with_state = opt_lr >= 0 && nn_checkpoint_meta_get(meta, "optim.kind");
    const char *bad = NULL;
    nn_ckpt_status ls = nn_checkpoint_load(path, &m->params, with_state ? *opt : NULL, NULL, &e);
    if (ls != NN_CKPT_OK)
        cli_error(CLI_FAIL, cmd, "cannot load model %s", e.message);
    else if ((bad = cli_nonfinite_param(&m->params)) != NULL)
        cli_error(CLI_FAIL, cmd,
                  "%s: parameter %s is not finite (NaN or infinity): the model diverged and "
                  "cannot be used; train again from an earlier checkpoint or with a smaller --lr",
                  path, bad);
    if (ls != NN_CKPT_OK || bad) {
        if (opt_lr >= 0) {
            nn_optim_free(*opt);
            *opt = NULL;
        }
        vae_free(m);
        nn_checkpoint_meta_free(meta);
        return CLI_FAIL;
    }
    if (meta_out)
        *meta_out = meta;
    else
        nn_checkpoint_meta_free(meta);
    return 0;
}

const int64_t *cli_labels(const vae_model *m, const int64_t *labels) {
    return m->cfg.num_classes > 0 ? labels : NULL;
}

/* ---- rng state ---------------------------------------------------------------------------------
 */

void cli_rng_format(const nb_rng *r, char *buf, size_t len) {
    uint64_t cached;
    memcpy(&cached, &r->cached_normal, sizeof cached);
    snprintf(buf, len,
             "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %d",
             r->s[0], r->s[1], r->s[2], r->s[3], cached, r->has_cached ? 1 : 0);
}

bool cli_rng_parse(const char *s, nb_rng *r) {
    uint64_t w[5];
    const char *p = s;
    for (int i = 0; i < 5; i++) {
        char *end;
        if (*p != ' ' && i > 0) return false;
        if (i > 0) p++;
        if (strspn(p, "0123456789abcdef") != 16) return false;
        char word[17]; /* exactly 16 digits: strtoull alone would read on ("...0F" was taken) */
        memcpy(word, p, 16);
        word[16] = '\0';
        w[i] = strtoull(word, &end, 16);
        p += 16;
    }
    if (strcmp(p, " 0") != 0 && strcmp(p, " 1") != 0) return false;
    if ((w[0] | w[1] | w[2] | w[3]) == 0) return false; /* xoshiro's one invalid state */
    nb_rng t;
    memcpy(t.s, w, sizeof t.s);
    memcpy(&t.cached_normal, &w[4], sizeof t.cached_normal);
    t.has_cached = p[1] == '1';
    *r = t;
    return true;
}
