/* msg.c -- slab arenas for shared frames and replies.
 *
 * Frames are carved sequentially out of 64 KiB slabs so that consecutive
 * messages are contiguous in memory and a subscriber's queue can describe a
 * whole tick with one range. A slab is reference counted: the arena holds one
 * reference while it is the current slab, every queue entry (and therefore
 * every in-flight send) holds one. Released standard-size slabs are kept on
 * their pool's short free list to spare malloc the churn of a busy feed.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SLAB_HDR offsetof(struct rc_slab, data)

void rc_slab_pool_init(struct rc_slab_pool *p)
{
    memset(p, 0, sizeof(*p));
}

void rc_slab_pool_clear(struct rc_slab_pool *p)
{
    while (p->nfree)
        free(p->free[--p->nfree]);
}

static struct rc_slab *slab_new(struct rc_slab_pool *p, size_t cap)
{
    struct rc_slab *s;

    if (cap == RC_SLAB_SIZE && p->nfree > 0) {
        s = p->free[--p->nfree];
    } else {
        s = rc_xmalloc(SLAB_HDR + cap);
        s->cap = (uint32_t)cap;
        s->pool = p;
    }
    s->refs = 1;
    s->used = 0;
    s->mark = 0;
    p->live++;
    p->bytes += SLAB_HDR + s->cap;
    return s;
}

void rc_slab_unref(struct rc_slab *s)
{
    struct rc_slab_pool *p = s->pool;

    assert(s->refs > 0);
    if (--s->refs)
        return;
    p->live--;
    p->bytes -= SLAB_HDR + s->cap;
    if (s->cap == RC_SLAB_SIZE && p->nfree < RC_SLAB_POOL_FREE) {
        p->free[p->nfree++] = s;
        return;
    }
    free(s);
}

void rc_arena_init(struct rc_arena *a, struct rc_slab_pool *pool)
{
    memset(a, 0, sizeof(*a));
    a->pool = pool;
    a->slab_size = RC_SLAB_SIZE;
}

void rc_arena_free(struct rc_arena *a)
{
    if (a->cur)
        rc_slab_unref(a->cur);
    if (a->big)
        rc_slab_unref(a->big);
    a->cur = a->big = NULL;
}

char *rc_arena_alloc(struct rc_arena *a, size_t n, struct rc_slab **slab, uint32_t *off)
{
    struct rc_slab *s = a->cur;

    /* Callers take their references before the next allocation, so the
     * previous large slab no longer needs the arena's. */
    if (a->big) {
        rc_slab_unref(a->big);
        a->big = NULL;
    }
    if (n > a->slab_size / 4) {
        /* Large frames get a slab of their own: they would waste a shared
         * one, and they are freed as soon as their last reader is done. */
        s = a->big = slab_new(a->pool, n);
        s->used = (uint32_t)n;
        *slab = s;
        *off = 0;
        return s->data;
    }
    if (!s || s->cap - s->used < n) {
        if (s)
            rc_slab_unref(s);
        s = a->cur = slab_new(a->pool, a->slab_size);
    }
    *slab = s;
    *off = s->used;
    s->used += (uint32_t)n;
    return s->data + *off;
}

char *rc_arena_copy(struct rc_arena *a, const void *p, size_t n, struct rc_slab **slab,
                    uint32_t *off)
{
    char *dst = rc_arena_alloc(a, n, slab, off);
    memcpy(dst, p, n);
    return dst;
}
