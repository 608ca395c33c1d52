/* tensor/arena.c: the bump allocator behind step tensors, and the pool of their headers.
 *
 * Memory comes in blocks; an allocation takes the next aligned bytes of the current block, or
 * moves to the next block (making one when needed). A mark is (block, bytes used) and releasing
 * to it rewinds. arena_reset() rewinds to the start and, if the last step needed more than one
 * block, replaces them by a single block large enough for all of it, so the next identical step
 * allocates nothing. The replaced blocks are freed one reset later, so the data of a tensor kept
 * by mistake from the step before is still memory while its header is being checked.
 *
 * Headers (struct Tensor) of step tensors come from a separate pool, a ring of slots, so that a
 * header released by ag_reset or ag_release is not handed out again at once: a stale pointer
 * keeps finding its own old header, whose stamp says it was released (tensor_check_live).
 * Stamps are serial numbers from a counter that only grows. ag_reset raises a floor to the last
 * stamp given out, which releases every header at once; ag_release stamps the headers made since
 * the mark as STAMP_RELEASED. The ring's head always moves forward, skipping slots still live; the
 * ring is kept at least twice as large as the headers live at once, and grown at a reset to twice
 * the headers the step made (up to HEADER_SOFT_CAP slots), so the headers of one step survive the
 * whole of the next. */
#include "tensor/tensor.h"

#include <string.h>

#define ARENA_ALIGN      64
#define ARENA_MIN_BLOCK  ((size_t)1 << 20)
#define ARENA_MAX_BLOCKS 64

typedef struct {
    unsigned char *mem;
    size_t size;
} block_t;

static block_t blocks[ARENA_MAX_BLOCKS];
static int nblocks;
static int cur;             /* block being filled */
static size_t used;         /* bytes used in blocks[cur] */
static size_t total;        /* bytes asked for since the last reset (high-water mark of the step) */
static size_t high;         /* largest `total` seen */
static unsigned generation; /* counts resets, so a stale mark is caught */
static void *retired[ARENA_MAX_BLOCKS]; /* blocks replaced at the last reset, freed at the next */
static int nretired;

/* ---- the header pool ------------------------------------------------------------------------ */

#define STAMP_RELEASED   1 /* a header released by ag_release (0: not a pool header) */
#define HEADER_MIN_BLOCK 256
#define HEADER_SOFT_CAP  ((int64_t)1 << 16) /* slots; past this a reset no longer grows the ring */

typedef struct {
    Tensor *slot;
    int64_t n;
} header_block_t;

static header_block_t hblocks[ARENA_MAX_BLOCKS];
static int nhblocks;
static int hb; /* the head: the next slot to try is hblocks[hb].slot[hs] */
static int64_t hs;
static int64_t hsteps;                    /* slots the head has moved over, ever */
static int64_t hcap;                      /* slots in all blocks */
static int64_t hlive;                     /* headers made since the last reset and not released */
static int64_t hmade;                     /* headers made since the last reset */
static uint64_t hserial = STAMP_RELEASED; /* the last stamp given out */
static uint64_t hfloor = STAMP_RELEASED;  /* stamps at or below it are released */

/* Adds a block of n zeroed slots (stamp 0: free) and moves the head to its start. */
static void grow_headers(int64_t n) {
    if (nhblocks == ARENA_MAX_BLOCKS)
        nb_fail("arena_header", "more than %d header blocks; call ag_reset() each step",
                ARENA_MAX_BLOCKS);
    hblocks[nhblocks].slot = nb_calloc((size_t)n * sizeof(Tensor));
    hblocks[nhblocks].n = n;
    hb = nhblocks++;
    hs = 0;
    hcap += n;
}

Tensor *arena_header(void) {
    if (2 * hlive >= hcap) grow_headers(hcap > HEADER_MIN_BLOCK ? hcap : HEADER_MIN_BLOCK);
    Tensor *t;
    do { /* at least half the slots are free, so this ends */
        if (hs == hblocks[hb].n) {
            hb = (hb + 1) % nhblocks;
            hs = 0;
        }
        t = &hblocks[hb].slot[hs++];
        hsteps++;
    } while (t->stamp > hfloor);
    memset(t, 0, sizeof *t);
    t->stamp = ++hserial;
    nb_site_current(&t->made_file, &t->made_line);
    hlive++;
    hmade++;
    return t;
}

/* Stamps every header made since m as released: they lie among the last slots the head moved
 * over (all of the ring if it went round or grew since). */
static void release_headers(arena_mark_t m) {
    int64_t n = hsteps - m.header_steps;
    if (n >= hcap || m.header_blocks != nhblocks) n = hcap;
    int b = hb;
    int64_t s = hs;
    for (int64_t k = 0; k < n; k++) {
        if (s == 0) {
            b = (b + nhblocks - 1) % nhblocks;
            s = hblocks[b].n;
        }
        Tensor *t = &hblocks[b].slot[--s];
        if (t->stamp > m.serial) {
            t->stamp = STAMP_RELEASED;
            hlive--;
        }
    }
}

void tensor_check_live(const char *op, const Tensor *t) {
    if (!t || t->stamp == 0 || t->stamp > hfloor) return;
    const char *released = t->stamp == STAMP_RELEASED ? "; released by ag_release" : "";
    if (t->made_file)
        nb_fail(op, "step tensor used after ag_reset (made at %s:%d%s)", t->made_file, t->made_line,
                released);
    nb_fail(op, "step tensor used after ag_reset (made by %s%s)", t->op ? t->op : "tensor_step",
            released);
}

/* ---- the arena ------------------------------------------------------------------------------ */

void *arena_alloc(size_t bytes) {
    bytes = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (bytes == 0) bytes = ARENA_ALIGN;
    while (cur < nblocks && used + bytes > blocks[cur].size) {
        cur++;
        used = 0;
    }
    if (cur == nblocks) {
        if (nblocks == ARENA_MAX_BLOCKS)
            nb_fail("arena_alloc", "step memory exceeds %d blocks; call ag_reset() each step",
                    ARENA_MAX_BLOCKS);
        size_t size = ARENA_MIN_BLOCK;
        while (size < bytes || size < total / 2) size *= 2;
        blocks[nblocks].mem = nb_malloc(size);
        blocks[nblocks].size = size;
        nblocks++;
        used = 0;
    }
    void *p = blocks[cur].mem + used;
    used += bytes;
    total += bytes;
    if (total > high) high = total;
    return p;
}

arena_mark_t arena_mark(void) {
    arena_mark_t m = {cur, used, generation, hserial, hsteps, nhblocks};
    return m;
}

void arena_release(arena_mark_t m) {
    if (m.generation != generation || m.block > cur || (m.block == cur && m.used > used))
        nb_fail("ag_release", "the mark was taken before the last ag_reset() or is out of order");
    /* `total` only feeds block sizing, so an estimate is fine: subtract what this release frees. */
    size_t freed = 0;
    for (int b = m.block; b <= cur && b < nblocks; b++)
        freed += (b == cur ? used : blocks[b].size) - (b == m.block ? m.used : 0);
    total = freed > total ? 0 : total - freed;
    cur = m.block;
    used = m.used;
    if (m.serial < hserial) release_headers(m);
}

void arena_reset(void) {
    for (int b = 0; b < nretired; b++) nb_free(retired[b]);
    nretired = 0;
    if (nblocks > 1) {
        size_t need = 0;
        for (int b = 0; b < nblocks; b++) need += blocks[b].size;
        if (need < high) need = high;
        for (int b = 0; b < nblocks; b++) {
            retired[nretired++] = blocks[b].mem;
            blocks[b].mem = NULL;
            blocks[b].size = 0;
        }
        blocks[0].mem = nb_malloc(need);
        blocks[0].size = need;
        nblocks = 1;
    }
    cur = 0;
    used = 0;
    total = 0;
    generation++;

    if (2 * hmade > hcap && hcap < HEADER_SOFT_CAP)
        grow_headers(2 * hmade - hcap > hcap ? 2 * hmade - hcap : hcap);
    hfloor = hserial;
    hlive = hmade = 0;
}

void arena_free_all(void) {
    for (int b = 0; b < nblocks; b++) nb_free(blocks[b].mem);
    for (int b = 0; b < nretired; b++) nb_free(retired[b]);
    for (int b = 0; b < nhblocks; b++) nb_free(hblocks[b].slot);
    memset(blocks, 0, sizeof blocks);
    memset(hblocks, 0, sizeof hblocks);
    nblocks = cur = nretired = nhblocks = hb = 0;
    used = total = high = 0;
    hs = hcap = hlive = hmade = 0;
    hfloor = hserial;
    generation++;
}
