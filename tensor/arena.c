/* tensor/arena.c: the bump allocator behind step tensors.
 *
 * Memory comes in blocks; an allocation takes the next aligned bytes of the current block, or
 * moves to the next block (making one when needed). A mark is (block, bytes used) and releasing
 * to it rewinds. arena_reset() rewinds to the start and, if the last step needed more than one
 * block, replaces them by a single block large enough for all of it, so the next identical step
 * allocates nothing. */
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
    arena_mark_t m = {cur, used, generation};
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
}

void arena_reset(void) {
    if (nblocks > 1) {
        size_t need = 0;
        for (int b = 0; b < nblocks; b++) need += blocks[b].size;
        if (need < high) need = high;
        for (int b = 0; b < nblocks; b++) {
            nb_free(blocks[b].mem);
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
}

void arena_free_all(void) {
    for (int b = 0; b < nblocks; b++) nb_free(blocks[b].mem);
    memset(blocks, 0, sizeof blocks);
    nblocks = cur = 0;
    used = total = high = 0;
    generation++;
}
