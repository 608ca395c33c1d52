/* dist/dist.c: data-parallel training over MPI (see dist/dist.h).
 *
 * The flat buffer of one contribution, [len] reals:
 *   [0, np)          one count per parameter: 1 if the contribution has a .grad for it, else 0
 *   [np + off_k, ...) parameter k's gradient, numel_k values (zeros when absent)
 * The sums of the counts stay small integers, exact in float. */
#include "dist/dist.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"

#define CHUNK    (1 << 16) /* elements per pipeline message: 256 KB in float */
#define TAG_SUM  71
#define TAG_GRAD 72

/* ---- processes --------------------------------------------------------------------------- */

static void abort_on_fail(const char *message) {
    dist_abort(1, "%s", message);
}

void dist_init(int *argc, char ***argv) {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) MPI_Init(argc, argv);
    nb_set_error_handler(abort_on_fail);
}

void dist_finalize(void) {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
}

static dist_group group_of(MPI_Comm comm) {
    dist_group g = {.comm = comm};
    MPI_Comm_rank(comm, &g.rank);
    MPI_Comm_size(comm, &g.size);
    return g;
}

dist_group dist_world(void) {
    return group_of(MPI_COMM_WORLD);
}

dist_group dist_self(void) {
    return group_of(MPI_COMM_SELF);
}

void dist_abort(int code, const char *fmt, ...) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "nabla[rank %d]: %s\n", rank, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    abort(); /* MPI_Abort does not return; this tells the compiler so */
}

/* ---- parameters and data ------------------------------------------------------------------ */

/* FNV-1a over the names and shapes of ps: equal lists give equal hashes. */
static uint64_t params_signature(const nn_params *ps) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = ps->items[i].t;
        for (const char *c = ps->items[i].name; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ull;
        for (int d = 0; d < t->ndim; d++) h = (h ^ (uint64_t)t->shape[d]) * 1099511628211ull;
        h = (h ^ (uint64_t)ps->items[i].buffer) * 1099511628211ull;
    }
    return h;
}

void dist_broadcast_params(const dist_group *g, const nn_params *ps) {
    unsigned long long mine = params_signature(ps), root = mine;
    MPI_Bcast(&root, 1, MPI_UNSIGNED_LONG_LONG, 0, g->comm);
    if (root != mine)
        dist_abort(1,
                   "dist_broadcast_params: this rank's parameter list (%d tensors) differs from "
                   "rank 0's in names or shapes",
                   ps->n);
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->items[i].t;
        if (!tensor_is_contiguous(t) || t->numel > INT_MAX)
            nb_fail("dist_broadcast_params", "%s is not contiguous or has over 2^31 values",
                    ps->items[i].name);
        MPI_Bcast(t->data + t->offset, (int)t->numel, DIST_MPI_REAL, 0, g->comm);
    }
}

void dist_broadcast_optim(const dist_group *g, nn_optim *opt) {
    int n = nn_optim_state_count(opt), root = n;
    MPI_Bcast(&root, 1, MPI_INT, 0, g->comm);
    if (root != n)
        dist_abort(1, "dist_broadcast_optim: %d state entries here, %d on rank 0", n, root);
    for (int i = 0; i < n; i++) {
        nn_optim_state e = nn_optim_state_at(opt, i);
        if (e.t)
            MPI_Bcast(e.t->data + e.t->offset, (int)e.t->numel, DIST_MPI_REAL, 0, g->comm);
        else {
            long long c = *e.count;
            MPI_Bcast(&c, 1, MPI_LONG_LONG, 0, g->comm);
            *e.count = c;
        }
    }
}

void dist_shard(int64_t n, int64_t unit, int rank, int size, int64_t *start, int64_t *count) {
    if (n < 0 || unit < 1 || size < 1 || rank < 0 || rank >= size)
        nb_fail("dist_shard", "n %lld, unit %lld, rank %d of %d", (long long)n, (long long)unit,
                rank, size);
    int64_t units = (n + unit - 1) / unit, base = units / size, extra = units % size;
    int64_t first = rank * base + (rank < extra ? rank : extra);
    int64_t mine = base + (rank < extra);
    int64_t lo = first * unit, hi = (first + mine) * unit;
    *start = lo < n ? lo : n;
    *count = (hi < n ? hi : n) - *start;
}

void dist_sum(const dist_group *g, double *v, int n) {
    enum { BLOCK = 64 };
    double in[BLOCK];
    for (int lo = 0; lo < n; lo += BLOCK) {
        int len = n - lo < BLOCK ? n - lo : BLOCK;
        if (g->rank > 0) {
            MPI_Recv(in, len, MPI_DOUBLE, g->rank - 1, TAG_SUM, g->comm, MPI_STATUS_IGNORE);
            for (int i = 0; i < len; i++) v[lo + i] = in[i] + v[lo + i];
        }
        if (g->rank < g->size - 1) MPI_Send(v + lo, len, MPI_DOUBLE, g->rank + 1, TAG_SUM, g->comm);
    }
    MPI_Bcast(v, n, MPI_DOUBLE, g->size - 1, g->comm);
}

/* ---- gradients ---------------------------------------------------------------------------- */

struct dist_grads {
    dist_group g;
    const nn_params *ps;
    int list_n;   /* ps->n when created: the list must not change */
    int np;       /* parameters (buffers excluded) */
    int *item;    /* [np] their positions in ps */
    int64_t *off; /* [np + 1] where each gradient starts in the element part */
    int64_t len;  /* np + off[np]: reals in one contribution */
    int max_micro, nstash;
    real *stash;       /* [max_micro][len] this step's contributions, in order */
    real *sum;         /* [len] the running sum, then the result */
    bool *had;         /* [np] the running sum holds a gradient for k (before this rank adds) */
    MPI_Request *reqs; /* [chunks] sends down the pipeline */
    int chunks;
    dist_reduce how;
    dist_stats stats;
};

dist_grads *dist_grads_new(const dist_group *g, const nn_params *ps, int max_micro,
                           dist_reduce how) {
    if (max_micro < 1) nb_fail("dist_grads_new", "max_micro %d (must be >= 1)", max_micro);
    dist_grads *s = nb_calloc(sizeof *s);
    s->g = *g;
    s->ps = ps;
    s->list_n = ps->n;
    s->how = how;
    s->max_micro = max_micro;
    s->item = nb_malloc(sizeof *s->item * (size_t)(ps->n + 1));
    s->off = nb_malloc(sizeof *s->off * (size_t)(ps->n + 1));
    s->off[0] = 0;
    for (int i = 0; i < ps->n; i++) {
        if (ps->items[i].buffer) continue;
        s->item[s->np] = i;
        s->off[s->np + 1] = s->off[s->np] + ps->items[i].t->numel;
        s->np++;
    }
    s->len = s->np + s->off[s->np];
    if (s->len > INT_MAX) /* MPI counts are ints */
        nb_fail("dist_grads_new", "%lld gradient values: more than one MPI message holds",
                (long long)s->len);
    s->stash = nb_malloc(sizeof(real) * (size_t)(s->len * max_micro));
    s->sum = nb_malloc(sizeof(real) * (size_t)s->len);
    s->had = nb_malloc(sizeof *s->had * (size_t)(s->np + 1));
    /* chunk 0 is the counts; the elements follow in CHUNK-sized pieces */
    s->chunks = 1 + (int)((s->off[s->np] + CHUNK - 1) / CHUNK);
    s->reqs = nb_malloc(sizeof *s->reqs * (size_t)s->chunks);
    s->stats.bytes = (int64_t)sizeof(real) * s->len;
    return s;
}

void dist_grads_free(dist_grads *s) {
    if (!s) return;
    nb_free(s->item);
    nb_free(s->off);
    nb_free(s->stash);
    nb_free(s->sum);
    nb_free(s->had);
    nb_free(s->reqs);
    nb_free(s);
}

/* Packs the current .grad of every parameter into dst [len]. */
static void pack(const dist_grads *s, real *dst) {
    if (s->ps->n != s->list_n)
        nb_fail("dist_grads", "the parameter list changed size (%d, was %d)", s->ps->n, s->list_n);
    real *el = dst + s->np;
    for (int k = 0; k < s->np; k++) {
        const Tensor *gr = s->ps->items[s->item[k]].t->grad;
        int64_t n = s->off[k + 1] - s->off[k];
        dst[k] = gr ? 1 : 0;
        if (gr)
            memcpy(el + s->off[k], gr->data + gr->offset, sizeof(real) * (size_t)n);
        else
            memset(el + s->off[k], 0, sizeof(real) * (size_t)n);
    }
}

void dist_grads_stash(dist_grads *s) {
    if (s->nstash == s->max_micro)
        nb_fail("dist_grads_stash", "more than max_micro = %d stashes in one step", s->max_micro);
    pack(s, s->stash + s->len * s->nstash);
    s->nstash++;
    for (int k = 0; k < s->np; k++) tensor_clear_grad(s->ps->items[s->item[k]].t);
}

/* Folds this rank's stashed contributions, in order, into the running sum's elements [lo, hi)
 * (offsets in the element part). A contribution without a gradient for k adds nothing to it;
 * the first one with a gradient is copied, so the sum is exactly what adding the present
 * gradients one after another gives. had[k] says whether the sum held k before this rank. */
static void fold_elements(dist_grads *s, int64_t lo, int64_t hi) {
    real *sum = s->sum + s->np;
    int k = 0;
    while (k < s->np && s->off[k + 1] <= lo) k++;
    for (; k < s->np && s->off[k] < hi; k++) {
        int64_t a = s->off[k] > lo ? s->off[k] : lo, b = s->off[k + 1] < hi ? s->off[k + 1] : hi;
        bool present = s->had[k];
        for (int j = 0; j < s->nstash; j++) {
            const real *c = s->stash + s->len * j;
            if (c[k] == 0) continue;
            const real *ce = c + s->np;
            if (present)
                for (int64_t i = a; i < b; i++) sum[i] += ce[i];
            else
                memcpy(sum + a, ce + a, sizeof(real) * (size_t)(b - a));
            present = true;
        }
        if (!present) memset(sum + a, 0, sizeof(real) * (size_t)(b - a));
    }
}

/* Counts: remember which the sum held, then add this rank's. */
static void fold_counts(dist_grads *s, bool first) {
    for (int k = 0; k < s->np; k++) {
        if (first) s->sum[k] = 0;
        s->had[k] = s->sum[k] > 0;
        for (int j = 0; j < s->nstash; j++) s->sum[k] += s->stash[s->len * j + k];
    }
}

/* Rank order: receive the sum of ranks 0..r-1 chunk by chunk, add this rank's contributions,
 * pass it on; the last rank's sum is everyone's result. */
static void exchange_ordered(dist_grads *s) {
    const dist_group *g = &s->g;
    bool first = g->rank == 0, last = g->rank == g->size - 1;
    int64_t nel = s->off[s->np];
    for (int c = 0; c < s->chunks; c++) {
        real *buf = c == 0 ? s->sum : s->sum + s->np + (int64_t)(c - 1) * CHUNK;
        int64_t lo = (int64_t)(c - 1) * CHUNK, hi = lo + CHUNK < nel ? lo + CHUNK : nel;
        int n = c == 0 ? s->np : (int)(hi - lo);
        if (!first)
            MPI_Recv(buf, n, DIST_MPI_REAL, g->rank - 1, TAG_GRAD, g->comm, MPI_STATUS_IGNORE);
        if (c == 0)
            fold_counts(s, first);
        else
            fold_elements(s, lo, hi);
        if (!last) MPI_Isend(buf, n, DIST_MPI_REAL, g->rank + 1, TAG_GRAD, g->comm, &s->reqs[c]);
    }
    if (!last) MPI_Waitall(s->chunks, s->reqs, MPI_STATUSES_IGNORE);
    if (g->size > 1) MPI_Bcast(s->sum, (int)s->len, DIST_MPI_REAL, g->size - 1, g->comm);
}

static void exchange_allreduce(dist_grads *s) {
    fold_counts(s, true);
    fold_elements(s, 0, s->off[s->np]);
    if (s->g.size > 1)
        MPI_Allreduce(MPI_IN_PLACE, s->sum, (int)s->len, DIST_MPI_REAL, MPI_SUM, s->g.comm);
}

void dist_grads_sync(dist_grads *s, double scale) {
    double t0 = MPI_Wtime();
    if (s->nstash == 0) {
        pack(s, s->stash);
        s->nstash = 1;
    }
    double t1 = MPI_Wtime();
    if (s->how == DIST_ORDERED)
        exchange_ordered(s);
    else
        exchange_allreduce(s);
    double t2 = MPI_Wtime();
    real f = (real)scale;
    const real *el = s->sum + s->np;
    for (int k = 0; k < s->np; k++) {
        Tensor *t = s->ps->items[s->item[k]].t;
        if (s->sum[k] == 0) {
            tensor_clear_grad(t);
            continue;
        }
        Tensor *gt = ag_grad(t);
        real *gd = gt->data + gt->offset;
        const real *src = el + s->off[k];
        int64_t n = s->off[k + 1] - s->off[k];
        if (scale == 1)
            memcpy(gd, src, sizeof(real) * (size_t)n);
        else
            for (int64_t i = 0; i < n; i++) gd[i] = src[i] * f;
    }
    s->nstash = 0;
    double t3 = MPI_Wtime();
    s->stats.sync_seconds += t3 - t0;
    s->stats.exchange_seconds += t2 - t1;
    s->stats.syncs++;
}

dist_stats dist_grads_stats(const dist_grads *s) {
    return s->stats;
}
