/* queue.h -- a client's send queue: references into shared slabs, in order.
 *
 * Each entry is {slab, offset, length}: 16 bytes however large the message.
 * A new reference that starts where the tail entry ends (same slab) extends
 * that entry instead of adding one, so a subscriber that gets every message
 * of a tick has one range to send. The backends read the head of the queue as
 * an iovec array and consume it by byte count once the kernel is done, which
 * also makes short sends trivial to resume.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_QUEUE_H
#define RC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "msg.h"

struct rc_ref {
    struct rc_slab *slab;
    uint32_t off;
    uint32_t len;
};

struct rc_queue {
    struct rc_ref *r;  /* ring of cap entries */
    uint32_t cap;      /* power of two, 0 until the first push */
    uint32_t head;     /* index of the first entry (mod cap) */
    uint32_t n;        /* entries */
    bool merge;        /* extend the tail entry when contiguous */
    uint64_t bytes;    /* bytes queued, including those in flight */
    uint64_t inflight; /* leading bytes handed to the kernel, not yet completed */
};

void rc_queue_init(struct rc_queue *q, bool merge);
/* Releases every reference. Must not be called while bytes are in flight. */
void rc_queue_free(struct rc_queue *q);

/* Appends slab[off..off+len); takes a new reference on slab unless merged. */
void rc_queue_push(struct rc_queue *q, struct rc_slab *slab, uint32_t off, uint32_t len);

/* Fills up to max iovecs from the head of the queue, stopping before
 * max_bytes would be exceeded (at least one entry's worth is always given,
 * possibly cut to max_bytes). Returns the iovec count; *bytes is their total. */
int rc_queue_iov(const struct rc_queue *q, struct iovec *iov, int max, size_t max_bytes,
                 size_t *bytes);

/* The same ranges as rc_queue_iov, as references: for a backend that needs to
 * know which slab each range lies in (io/kmod_batch.c). The slabs are
 * borrowed from the queue. */
int rc_queue_refs(const struct rc_queue *q, struct rc_ref *out, int max, size_t max_bytes,
                  size_t *bytes);

/* The kernel took n bytes from the head: drops fully sent references and
 * trims a partially sent one. Also lowers inflight by up to n. */
void rc_queue_consume(struct rc_queue *q, size_t n);

/* Drops everything that is not in flight (the first `inflight` bytes stay). */
void rc_queue_drop_unsent(struct rc_queue *q);

static inline bool rc_queue_empty(const struct rc_queue *q)
{
    return q->n == 0;
}

/* Bytes queued but not handed to the kernel. */
static inline uint64_t rc_queue_pending(const struct rc_queue *q)
{
    return q->bytes - q->inflight;
}

#endif
