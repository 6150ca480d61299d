/* queue.c -- a client's send queue of slab references.
 *
 * A power-of-two ring of {slab, off, len}. Pushing a range that continues the
 * tail entry in the same slab just lengthens it (when merging is on: the
 * naive backend turns it off to keep one entry per message). Consumption is
 * by byte count, which covers short sends and in-flight ranges that were
 * extended by a later merge: the kernel took the first n bytes, whatever
 * entries they span.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void rc_queue_init(struct rc_queue *q, bool merge)
{
    memset(q, 0, sizeof(*q));
    q->merge = merge;
}

void rc_queue_free(struct rc_queue *q)
{
    assert(q->inflight == 0);
    for (uint32_t i = 0; i < q->n; i++)
        rc_slab_unref(q->r[(q->head + i) & (q->cap - 1)].slab);
    free(q->r);
    q->r = NULL;
    q->cap = q->n = q->head = 0;
    q->bytes = 0;
}

static void grow(struct rc_queue *q)
{
    uint32_t cap = q->cap ? q->cap * 2 : 4;
    struct rc_ref *r = rc_xmalloc(sizeof(*r) * cap);
    for (uint32_t i = 0; i < q->n; i++)
        r[i] = q->r[(q->head + i) & (q->cap - 1)];
    free(q->r);
    q->r = r;
    q->cap = cap;
    q->head = 0;
}

void rc_queue_push(struct rc_queue *q, struct rc_slab *slab, uint32_t off, uint32_t len)
{
    if (!len)
        return;
    q->bytes += len;
    if (q->merge && q->n) {
        struct rc_ref *t = &q->r[(q->head + q->n - 1) & (q->cap - 1)];
        if (t->slab == slab && t->off + t->len == off) {
            t->len += len;
            return;
        }
    }
    if (q->n == q->cap)
        grow(q);
    rc_slab_ref(slab);
    q->r[(q->head + q->n) & (q->cap - 1)] = (struct rc_ref){slab, off, len};
    q->n++;
}

/* The head of the queue as at most max ranges of at most max_bytes in all
 * (the first one cut to max_bytes when it alone is larger). Returns the
 * count; the ranges go to fn. */
static int head_ranges(const struct rc_queue *q, int max, size_t max_bytes, size_t *bytes,
                       void (*fn)(void *arg, int i, const struct rc_ref *r, uint32_t len),
                       void *arg)
{
    size_t total = 0;
    int n = 0;

    for (uint32_t i = 0; i < q->n && n < max; i++) {
        const struct rc_ref *r = &q->r[(q->head + i) & (q->cap - 1)];
        size_t len = r->len;
        if (total + len > max_bytes) {
            if (n > 0)
                break;
            len = max_bytes;
        }
        fn(arg, n, r, (uint32_t)len);
        n++;
        total += len;
    }
    *bytes = total;
    return n;
}

static void put_iov(void *arg, int i, const struct rc_ref *r, uint32_t len)
{
    struct iovec *iov = arg;

    iov[i].iov_base = r->slab->data + r->off;
    iov[i].iov_len = len;
}

static void put_ref(void *arg, int i, const struct rc_ref *r, uint32_t len)
{
    struct rc_ref *out = arg;

    out[i] = (struct rc_ref){r->slab, r->off, len};
}

int rc_queue_iov(const struct rc_queue *q, struct iovec *iov, int max, size_t max_bytes,
                 size_t *bytes)
{
    return head_ranges(q, max, max_bytes, bytes, put_iov, iov);
}

int rc_queue_refs(const struct rc_queue *q, struct rc_ref *out, int max, size_t max_bytes,
                  size_t *bytes)
{
    return head_ranges(q, max, max_bytes, bytes, put_ref, out);
}

void rc_queue_consume(struct rc_queue *q, size_t n)
{
    assert(n <= q->bytes);
    q->bytes -= n;
    q->inflight = q->inflight > n ? q->inflight - n : 0;
    while (n && q->n) {
        struct rc_ref *r = &q->r[q->head];
        if (n < r->len) {
            r->off += (uint32_t)n;
            r->len -= (uint32_t)n;
            return;
        }
        n -= r->len;
        rc_slab_unref(r->slab);
        q->head = (q->head + 1) & (q->cap - 1);
        q->n--;
    }
}

void rc_queue_drop_unsent(struct rc_queue *q)
{
    uint64_t keep = q->inflight, seen = 0;
    uint32_t i = 0;

    /* Find the entry holding the last in-flight byte; trim it there. */
    for (; i < q->n && seen < keep; i++) {
        struct rc_ref *r = &q->r[(q->head + i) & (q->cap - 1)];
        if (seen + r->len > keep)
            r->len = (uint32_t)(keep - seen);
        seen += r->len;
    }
    for (uint32_t j = i; j < q->n; j++)
        rc_slab_unref(q->r[(q->head + j) & (q->cap - 1)].slab);
    q->n = i;
    q->bytes = keep;
}
