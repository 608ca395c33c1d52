/* examples/vae/graph.c: vae train --graph FILE: the training graph of one step as Graphviz DOT,
 * written right after that step's backward so every node carries |grad|.
 *
 *   build/vae train --epochs 1 --graph vae.dot && dot -Tpng vae.dot -o vae.png */
#include <errno.h>
#include <string.h>

#include "examples/vae/cli.h"

int cli_write_graph(const char *cmd, const char *path, const vae_model *m, Tensor *x,
                    const Tensor *objective) {
    /* Label the leaves with their checkpoint names for the drawing, then put the old ones back. */
    const char *old_x = x->name;
    const char **old = nb_malloc((size_t)(m->params.n + 1) * sizeof *old);
    for (int i = 0; i < m->params.n; i++) {
        old[i] = m->params.items[i].t->name;
        m->params.items[i].t->name = m->params.items[i].name;
    }
    x->name = "x (batch)";
    FILE *f = fopen(path, "w");
    int rc = 0;
    if (!f) {
        rc = cli_error(CLI_FAIL, cmd, "cannot write --graph %s: %s", path, strerror(errno));
    } else {
        ag_write_dot(f, objective);
        if (fclose(f) != 0)
            rc = cli_error(CLI_FAIL, cmd, "cannot write --graph %s: %s", path, strerror(errno));
    }
    for (int i = 0; i < m->params.n; i++) m->params.items[i].t->name = old[i];
    x->name = old_x;
    nb_free(old);
    return rc;
}
