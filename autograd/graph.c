/* autograd/graph.c: the tape, grad mode, backward, and the helpers every op uses. */
#include "autograd/autograd.h"

#include <math.h>
#include <string.h>

/* ---- the tape -------------------------------------------------------------------------------- */

/* The tape lists, in creation order, every step tensor that has a backward function. Its array
 * is heap memory kept across resets, so steady-state steps don't allocate. */
static Tensor **tape;
static int64_t tape_len, tape_cap;
static bool grad_enabled = true;
static FILE *trace; /* ag_set_backward_trace: where backward narrates its walk, or NULL */

static void tape_push(Tensor *t) {
    if (tape_len == tape_cap) {
        int64_t cap = tape_cap ? 2 * tape_cap : 1024;
        Tensor **grown = nb_malloc((size_t)cap * sizeof *grown);
        if (tape_len) memcpy(grown, tape, (size_t)tape_len * sizeof *grown);
        nb_free(tape);
        tape = grown;
        tape_cap = cap;
    }
    t->tape_index = tape_len;
    tape[tape_len++] = t;
}

int64_t ag_tape_length(void) {
    return tape_len;
}
Tensor *ag_tape_at(int64_t i) {
    return (i >= 0 && i < tape_len) ? tape[i] : NULL;
}

bool ag_set_grad_enabled(bool on) {
    bool prev = grad_enabled;
    grad_enabled = on;
    return prev;
}
bool ag_is_grad_enabled(void) {
    return grad_enabled;
}

ag_mark_t ag_mark(void) {
    ag_mark_t m = {arena_mark(), tape_len};
    return m;
}

void ag_release(ag_mark_t m) {
    if (m.tape_len < tape_len) tape_len = m.tape_len;
    arena_release(m.arena);
}

void ag_reset(void) {
    tape_len = 0;
    arena_reset();
}

/* ---- recording ------------------------------------------------------------------------------- */

void ag_record(Tensor *out, const char *op, ag_backward_fn backward, Tensor *const *parents,
               int n) {
    for (int i = 0; i < n; i++) tensor_check_live(op, parents[i]);
    out->op = op;
    if (!grad_enabled) return;
    bool needs = false;
    for (int i = 0; i < n; i++) needs = needs || parents[i]->requires_grad;
    if (!needs) return;
    out->requires_grad = true;
    out->backward = backward;
    out->parents = arena_alloc((size_t)n * sizeof(Tensor *));
    memcpy(out->parents, parents, (size_t)n * sizeof(Tensor *));
    out->nparents = n;
    tape_push(out);
}

void tensor_requires_grad(Tensor *t, bool on) {
    if (!t->kept || t->op)
        nb_fail("requires_grad", "only kept leaf tensors (made by tensor_*) can require grad");
    t->requires_grad = on;
}

void tensor_zero_grad(Tensor *t) {
    if (t->grad) tensor_fill(t->grad, 0);
}

void tensor_clear_grad(Tensor *t) {
    if (!t->grad) return;
    if (t->kept && !t->grad_spare)
        t->grad_spare = t->grad; /* keep the buffer for reuse */
    else if (t->kept)
        tensor_free(t->grad);
    t->grad = NULL;
}

/* A gradient buffer for t, not initialised: a kept tensor's spare, or new memory. */
static Tensor *new_grad(Tensor *t) {
    if (!t->kept) return tensor_step(t->ndim, t->shape);
    if (t->grad_spare) {
        Tensor *g = t->grad_spare;
        t->grad_spare = NULL;
        return g;
    }
    return tensor_empty(t->ndim, t->shape);
}

Tensor *ag_grad(Tensor *t) {
    if (!t->grad) {
        t->grad = new_grad(t);
        tensor_fill(t->grad, 0);
    }
    return t->grad;
}

/* True when a's shape broadcasts to b's exactly (NumPy rules), e.g. [N] to [M, N]. */
static bool broadcasts_to(const Tensor *a, const Tensor *b) {
    if (a->ndim > b->ndim) return false;
    for (int i = 1; i <= a->ndim; i++) {
        int64_t sa = a->shape[a->ndim - i], sb = b->shape[b->ndim - i];
        if (sa != sb && sa != 1) return false;
    }
    return true;
}

Tensor *ag_grad_begin(Tensor *t, bool *fresh) {
    *fresh = !t->grad;
    if (*fresh) t->grad = new_grad(t); /* the caller writes every element */
    return t->grad;
}

void ag_accumulate(Tensor *parent, const Tensor *g) {
    if (!parent->requires_grad) return;
    bool fresh;
    Tensor *pg = ag_grad_begin(parent, &fresh);
    if (broadcasts_to(g, pg))
        k_unary(K_COPY, g, pg, 0, 0, !fresh); /* same shape, or g repeats */
    else
        k_sum_to(g, pg, !fresh); /* the parent was broadcast */
}

void ag_accumulate_unary(Tensor *parent, k_unary_op op, const Tensor *g, real p0, real p1) {
    if (!parent->requires_grad) return;
    bool fresh;
    Tensor *pg = ag_grad_begin(parent, &fresh);
    if (tensor_same_shape(pg, g)) {
        k_unary(op, g, pg, p0, p1, !fresh);
        return;
    }
    ag_mark_t m = ag_mark();
    Tensor *tmp = tensor_step(g->ndim, g->shape);
    k_unary(op, g, tmp, p0, p1, false);
    k_sum_to(tmp, pg, !fresh); /* the parent was broadcast: sum back over those dims */
    ag_release(m);
}

void ag_accumulate_binary(Tensor *parent, k_binary_op op, const Tensor *g, const Tensor *other,
                          real p0, real p1) {
    if (!parent->requires_grad) return;
    bool fresh;
    Tensor *pg = ag_grad_begin(parent, &fresh);
    if (tensor_same_shape(pg, g)) {
        k_binary(op, g, other, pg, p0, p1, !fresh);
        return;
    }
    ag_mark_t m = ag_mark();
    Tensor *tmp = tensor_step(g->ndim, g->shape);
    k_binary(op, g, other, tmp, p0, p1, false);
    k_sum_to(tmp, pg, !fresh); /* the parent was broadcast: sum back over those dims */
    ag_release(m);
}

/* ---- backward -------------------------------------------------------------------------------- */

/* The 2-norm of t's gradient, in double; 0 when t has none. Gradients are contiguous. */
static double grad_norm(const Tensor *t) {
    double s = 0;
    if (t->grad)
        for (int64_t i = 0; i < t->grad->numel; i++) {
            double v = t->grad->data[t->grad->offset + i];
            s += v * v;
        }
    return sqrt(s);
}

/* What to call a node when printing: its name, else its op, else "leaf" (kept) or "constant". */
static const char *node_label(const Tensor *t) {
    if (t->name) return t->name;
    return t->op ? t->op : (t->kept ? "leaf" : "constant");
}

FILE *ag_set_backward_trace(FILE *f) {
    FILE *prev = trace;
    trace = f;
    return prev;
}

static void trace_begin(const Tensor *t, int64_t end) {
    char s[128];
    fprintf(trace, "backward from %s %s: %lld ops on the tape to walk, last first\n", node_label(t),
            nb_shape_str(s, t->ndim, t->shape), (long long)(end + 1));
}

/* One line per op backward has just run: which op, its output, d(loss)/d(output)'s norm, and
 * each input with the norm of the gradient it has received so far (a tensor used twice gets
 * its second share when its other consumer's turn comes). */
static void trace_step(const Tensor *n) {
    char s[128], who[64];
    snprintf(who, sizeof who, "%s%s%s", n->name ? n->name : "", n->name ? ": " : "", n->op);
    fprintf(trace, "  #%-4lld %-16s %-14s |grad| %-11.5g <-", (long long)n->tape_index, who,
            nb_shape_str(s, n->ndim, n->shape), grad_norm(n));
    for (int i = 0; i < n->nparents; i++) {
        const Tensor *p = n->parents[i];
        fprintf(trace, "%s %s %s", i ? "," : "", node_label(p), nb_shape_str(s, p->ndim, p->shape));
        if (p->requires_grad)
            fprintf(trace, " |grad| %.5g", grad_norm(p));
        else
            fprintf(trace, " (no grad)");
    }
    fputc('\n', trace);
}

void ag_backward_at(const char *file, int line, Tensor *t, const Tensor *grad) {
    char s1[128], s2[128];
    nb_site_push(file, line); /* so a stale t is reported at the caller's line */
    tensor_check_live("backward", t);
    tensor_check_live("backward", grad);
    nb_site_pop(NULL);
    if (!t->requires_grad)
        nb_fail_at(file, line, "backward",
                   "tensor of shape %s does not require grad (no input required grad, or it was "
                   "made with grad mode off)",
                   nb_shape_str(s1, t->ndim, t->shape));
    if (!grad && t->numel != 1)
        nb_fail_at(file, line, "backward",
                   "output of shape %s is not a scalar: pass its gradient with ag_backward_with",
                   nb_shape_str(s1, t->ndim, t->shape));
    if (grad && grad->numel != t->numel)
        nb_fail_at(file, line, "backward", "gradient of shape %s does not match output shape %s",
                   nb_shape_str(s1, grad->ndim, grad->shape), nb_shape_str(s2, t->ndim, t->shape));

    /* Gradients of step tensors belong to one backward pass: start them afresh. */
    int64_t end = t->kept ? -1 : t->tape_index;
    for (int64_t i = 0; i <= end; i++) tape[i]->grad = NULL;
    if (!t->kept && !t->backward) t->grad = NULL;

    Tensor *g = ag_grad(t);
    if (grad) { /* any layout of the right size: read it in row-major order */
        real *flat = arena_alloc((size_t)grad->numel * sizeof(real));
        tensor_to_array(grad, flat);
        for (int64_t i = 0; i < g->numel; i++) g->data[i] += flat[i];
    } else {
        g->data[g->offset] += 1;
    }
    /* The tape is in topological order: walking it backwards visits every node after all the
     * nodes that use it. A node without a gradient was not reached from t. */
    if (trace) trace_begin(t, end);
    for (int64_t i = end; i >= 0; i--) {
        Tensor *n = tape[i];
        if (n->grad && n->backward) {
            n->backward(n);
            if (trace) trace_step(n);
        }
    }
}

/* ---- constants ------------------------------------------------------------------------------- */

Tensor *ag_full(int ndim, const int64_t *shape, real value) {
    Tensor *t = tensor_step(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = value;
    return t;
}

Tensor *ag_zeros(int ndim, const int64_t *shape) {
    return ag_full(ndim, shape, 0);
}

Tensor *ag_constant(int ndim, const int64_t *shape, const real *values) {
    Tensor *t = tensor_step(ndim, shape);
    if (t->numel) memcpy(t->data, values, (size_t)t->numel * sizeof(real));
    return t;
}

Tensor *ag_randn(int ndim, const int64_t *shape, nb_rng *rng) {
    if (!rng) rng = nb_rng_global();
    Tensor *t = tensor_step(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (real)nb_rng_normal(rng);
    return t;
}

Tensor *ag_rand(int ndim, const int64_t *shape, nb_rng *rng) {
    if (!rng) rng = nb_rng_global();
    Tensor *t = tensor_step(ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (real)nb_rng_uniform(rng);
    return t;
}

/* ---- drawing the graph ----------------------------------------------------------------------- */

void ag_write_dot(FILE *f, const Tensor *root) {
    /* Depth-first over parents with an explicit stack; `seen` is a plain list (graphs worth
     * drawing are small). */
    int64_t cap = 64, nseen = 0, nstack = 0;
    const Tensor **seen = nb_malloc((size_t)cap * sizeof *seen);
    const Tensor **stack = nb_malloc((size_t)cap * sizeof *stack);
    fprintf(f, "digraph nabla {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n");
    stack[nstack++] = root;
    while (nstack) {
        const Tensor *t = stack[--nstack];
        bool dup = false;
        for (int64_t i = 0; i < nseen && !dup; i++) dup = seen[i] == t;
        if (dup) continue;
        if (nseen == cap || nstack + t->nparents >= cap) {
            while (nseen >= cap || nstack + t->nparents >= cap) cap *= 2;
            const Tensor **s2 = nb_malloc((size_t)cap * sizeof *s2),
                         **k2 = nb_malloc((size_t)cap * sizeof *k2);
            memcpy(s2, seen, (size_t)nseen * sizeof *s2);
            memcpy(k2, stack, (size_t)nstack * sizeof *k2);
            nb_free(seen);
            nb_free(stack);
            seen = s2;
            stack = k2;
        }
        seen[nseen++] = t;
        char s[128], g[48] = "";
        if (t->grad) snprintf(g, sizeof g, "\\n|grad| %.4g", grad_norm(t));
        fprintf(f, "  n%p [label=\"%s%s%s\\n%s%s%s\"%s];\n", (const void *)t,
                t->name ? t->name : "", t->name ? ": " : "",
                t->op ? t->op : (t->kept ? "leaf" : "constant"), nb_shape_str(s, t->ndim, t->shape),
                t->requires_grad ? " grad" : "", g,
                t->op ? "" : ", style=filled, fillcolor=\"#dde8ff\"");
        for (int i = 0; i < t->nparents; i++) {
            fprintf(f, "  n%p -> n%p;\n", (const void *)t->parents[i], (const void *)t);
            stack[nstack++] = t->parents[i];
        }
    }
    fprintf(f, "}\n");
    nb_free(seen);
    nb_free(stack);
}
