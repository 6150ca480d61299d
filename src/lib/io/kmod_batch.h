/* kmod_batch.h -- one tick's output as one RCK_IOC_SEND call: one buffer, slices, targets.
 *
 * The kmod backend (backend_kmod.c) hands the kernel the output of every
 * connection that may send in one ioctl, and the module wants every byte in
 * one user buffer, each byte once (include/ringcast_kmod.h). A message's
 * frame is one slab range that hundreds of queues reference; this builder
 * turns those queues into the module's shape and copies each frame once per
 * call, however many targets receive it.
 *
 * Two passes. Adding a target records its ranges as slices (slab, offset,
 * length) and widens its slab's *span*: the smallest range of the slab that
 * covers every slice of the call lying in it. The slab is stamped with its
 * span (struct rc_slab's mark: the span's index + 1), so finding the span is
 * one load, not a lookup. Finishing lays the spans out back to back in the
 * staging buffer, copies each one, rewrites every slice as an offset into the
 * buffer, and clears the stamps. A span may hold a few bytes that no target
 * of the call receives (a frame for a format or a channel nobody here gets,
 * between two that somebody does); never more than the slab itself.
 *
 * Limits: a call holds at most max_buf bytes, max_slices slices and
 * max_targets targets (RCK_MAX_* for the device, smaller in the unit tests).
 * A target that would take the call past one of them is refused whole --
 * the spans it widened are put back -- so the caller sends the call it has,
 * resets, and adds the target again to the next one.
 *
 * The buffer and the arrays are kept from one call to the next and only grow.
 * Not thread-safe: one builder per loop, on the thread that owns the slabs.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_KMOD_BATCH_H
#define RC_KMOD_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "queue.h"
#include "ringcast_kmod.h"

struct rc_kbatch_limits {
    uint32_t max_buf;     /* bytes of the staging buffer */
    uint32_t max_slices;  /* slices in one call */
    uint32_t max_targets; /* targets in one call */
};

/* The module's own limits (a call past them fails whole with E2BIG). */
#define RC_KBATCH_DEVICE_LIMITS                                                                    \
    ((struct rc_kbatch_limits){RCK_MAX_BUF, RCK_MAX_SLICES, RCK_MAX_TARGETS})

/* One slab's part in the call. */
struct rc_kspan {
    struct rc_slab *slab; /* borrowed: the queues that referenced it keep it */
    uint32_t lo, hi;      /* the slab's bytes [lo, hi) this call covers */
    uint32_t at;          /* where they start in the staging buffer (after finish) */
};

/* What the caller needs back for target i after the call. */
struct rc_ktarget {
    uint64_t tag;   /* the caller's, given to rc_kbatch_add */
    uint32_t bytes; /* what the target was to receive: its slices' total */
};

struct rc_kbatch {
    struct rc_kbatch_limits lim;
    char *buf; /* the staging buffer (buf_cap bytes), filled by finish */
    uint32_t buf_cap;
    uint64_t bytes; /* the spans' total size: the buffer's length once finished */
    struct rc_kspan *spans;
    uint32_t nspans, spans_cap;
    struct rck_slice *slices; /* slab offsets until finish, buffer offsets after */
    uint32_t *slice_span;     /* each slice's span, until finish */
    uint32_t nslices, slices_cap;
    struct rck_target *targets; /* what the module reads (and writes results into) */
    struct rc_ktarget *info;    /* what the caller reads back, same index */
    uint32_t ntargets, targets_cap;
    struct rc_kundo *undo; /* spans widened by the target being added */
    uint32_t undo_cap;
    bool finished;
    uint64_t copied; /* bytes copied into staging buffers, over every call */
};

/* An empty builder for calls within lim. */
void rc_kbatch_init(struct rc_kbatch *b, const struct rc_kbatch_limits *lim);
/* Frees the buffer and the arrays (and clears any stamp left). NULL is a no-op. */
void rc_kbatch_free(struct rc_kbatch *b);

/* Adds one target: socket fd is to receive refs[0..n) in order (borrowed;
 * each non-empty). tag comes back in b->info[i]. Returns 0; -ENOSPC when the
 * call is too full to take it (nothing of it was added: finish and send the
 * call, reset, add it again); -EMSGSIZE when it would not fit even alone;
 * -EINVAL for n == 0 or a target of more than INT_MAX bytes. */
int rc_kbatch_add(struct rc_kbatch *b, int fd, uint64_t tag, const struct rc_ref *refs, uint32_t n);

/* True when no target was added since the last reset. */
static inline bool rc_kbatch_empty(const struct rc_kbatch *b)
{
    return b->ntargets == 0;
}

/* Lays the call out: copies every span once into the staging buffer, points
 * the slices into it and fills *req for RCK_IOC_SEND with flags. The slabs
 * are not looked at again: the queues may drop them once this returns.
 * Reset before adding targets for the next call. */
void rc_kbatch_finish(struct rc_kbatch *b, uint32_t flags, struct rck_send *req);

/* Empties the call (keeps the memory). */
void rc_kbatch_reset(struct rc_kbatch *b);

#endif
