/* msg.h -- slabs: the immutable, refcounted bytes every client's queue points into.
 *
 * A published message is encoded once, per wire format, into the current
 * frame slab (a 64 KiB block carved sequentially). Every subscriber's queue
 * then holds a reference {slab, offset, length} to those bytes; nobody copies
 * them again in user space. Because a tick's frames are carved one after
 * another, a subscriber that receives consecutive messages ends up with one
 * contiguous range per slab, which the backends send with a single SEND or a
 * short iovec. A slab's bytes never change once written, and the slab is
 * freed when the last reference (queue entry, in-flight send or the arena's
 * "current" pointer) is dropped: a buffer handed to the kernel is the
 * kernel's until its completion.
 *
 * Replies to one client (command results, subscribe confirmations) go to a
 * separate reply arena so they do not break the contiguity of shared frames.
 *
 * Every slab belongs to a pool (struct rc_slab_pool) that keeps its free list
 * and its byte counts, one pool per engine instance: two servers in one
 * process share nothing. Reference counts are plain integers: one loop
 * thread owns a pool and every slab in it.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_MSG_H
#define RC_MSG_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define RC_SLAB_SIZE (64u * 1024u)

#define RC_SLAB_POOL_FREE 64 /* standard slabs kept for reuse */

struct rc_slab_pool;

struct rc_slab {
    uint32_t refs;
    uint32_t cap;
    uint32_t used;
    /* Scratch for a backend building one batch (io/kmod_batch.c), on the
     * thread that owns the slab; 0 between batches. */
    uint32_t mark;
    struct rc_slab_pool *pool;
    char data[];
};

/* Where slabs come from and go back to; counts what is live. */
struct rc_slab_pool {
    struct rc_slab *free[RC_SLAB_POOL_FREE];
    size_t nfree;
    uint64_t live;  /* slabs allocated and not yet released */
    uint64_t bytes; /* their bytes, headers included */
};

void rc_slab_pool_init(struct rc_slab_pool *p);
/* Frees the recycled slabs. Slabs still live stay valid and come back to
 * free() when released. */
void rc_slab_pool_clear(struct rc_slab_pool *p);

/* A slab allocator handing out write-once ranges from a pool. */
struct rc_arena {
    struct rc_slab_pool *pool;
    struct rc_slab *cur; /* the slab being filled; the arena holds one reference */
    struct rc_slab *big; /* last large slab handed out; held until the next alloc */
    size_t slab_size;
};

/* pool is borrowed and must outlive every slab the arena hands out. */
void rc_arena_init(struct rc_arena *a, struct rc_slab_pool *pool);
/* Drops the arena's references. */
void rc_arena_free(struct rc_arena *a);

/* Reserves n bytes. Returns where to write them; *slab and *off say where
 * they live. The slab is borrowed: take a reference (rc_slab_ref) for each
 * place that keeps it. Large requests get a slab of their own. */
char *rc_arena_alloc(struct rc_arena *a, size_t n, struct rc_slab **slab, uint32_t *off);

/* Copies p[0..n) into the arena (rc_arena_alloc + memcpy). */
char *rc_arena_copy(struct rc_arena *a, const void *p, size_t n, struct rc_slab **slab,
                    uint32_t *off);

static inline void rc_slab_ref(struct rc_slab *s)
{
    assert(s->refs > 0);
    s->refs++;
}

/* Drops one reference; the slab goes back to its pool's free list or to free() at zero. */
void rc_slab_unref(struct rc_slab *s);

#endif
