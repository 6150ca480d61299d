/* kmod_batch.c -- builds one RCK_IOC_SEND call, each slab range copied once (kmod_batch.h).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "kmod_batch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A span as it was before the target being added widened it. */
struct rc_kundo {
    uint32_t span;
    uint32_t lo, hi;
};

void rc_kbatch_init(struct rc_kbatch *b, const struct rc_kbatch_limits *lim)
{
    memset(b, 0, sizeof(*b));
    b->lim = *lim;
}

/* Clears the stamps of spans [from, nspans): their slabs are free for the
 * next call (or for another span table). */
static void unstamp(struct rc_kbatch *b, uint32_t from)
{
    for (uint32_t i = from; i < b->nspans; i++)
        b->spans[i].slab->mark = 0;
    b->nspans = from;
}

void rc_kbatch_free(struct rc_kbatch *b)
{
    if (!b)
        return;
    if (!b->finished)
        unstamp(b, 0);
    free(b->buf);
    free(b->spans);
    free(b->slices);
    free(b->slice_span);
    free(b->targets);
    free(b->info);
    free(b->undo);
    memset(b, 0, sizeof(*b));
}

/* Grows an array of *cap elements of size sz to hold at least want. */
static void *reserve(void *p, uint32_t *cap, uint32_t want, size_t sz)
{
    uint32_t n = *cap ? *cap : 16;

    if (want <= *cap)
        return p;
    while (n < want)
        n = n > UINT32_MAX / 2 ? want : n * 2;
    *cap = n;
    return rc_xrealloc(p, sz * n);
}

/* Puts back what adding a target changed: the spans it widened (from its
 * undo log, newest first) and the spans it created. */
static void roll_back(struct rc_kbatch *b, uint32_t nundo, uint32_t nspans, uint64_t bytes)
{
    while (nundo--) {
        const struct rc_kundo *u = &b->undo[nundo];
        b->spans[u->span].lo = u->lo;
        b->spans[u->span].hi = u->hi;
    }
    unstamp(b, nspans);
    b->bytes = bytes;
}

int rc_kbatch_add(struct rc_kbatch *b, int fd, uint64_t tag, const struct rc_ref *refs, uint32_t n)
{
    const uint32_t nspans0 = b->nspans;
    const uint64_t bytes0 = b->bytes;
    uint32_t nundo = 0;
    uint64_t total = 0;

    if (n == 0)
        return -EINVAL;
    if (n > b->lim.max_slices || b->lim.max_targets == 0)
        return -EMSGSIZE;
    if (b->ntargets + 1 > b->lim.max_targets || b->nslices + n > b->lim.max_slices)
        return -ENOSPC;
    if (b->nslices + n > b->slices_cap) {
        b->slices = reserve(b->slices, &b->slices_cap, b->nslices + n, sizeof(*b->slices));
        b->slice_span = rc_xrealloc(b->slice_span, sizeof(*b->slice_span) * b->slices_cap);
    }
    b->spans = reserve(b->spans, &b->spans_cap, b->nspans + n, sizeof(*b->spans));
    b->undo = reserve(b->undo, &b->undo_cap, n, sizeof(*b->undo));

    for (uint32_t i = 0; i < n; i++) {
        const struct rc_ref *r = &refs[i];
        struct rc_slab *s = r->slab;
        uint32_t lo = r->off, hi = r->off + r->len, k;

        if (s->mark) {
            struct rc_kspan *sp = &b->spans[s->mark - 1];
            k = s->mark - 1;
            if (lo < sp->lo || hi > sp->hi) {
                /* Only spans of earlier targets need restoring; ones this
                 * target created go whole. */
                if (k < nspans0)
                    b->undo[nundo++] = (struct rc_kundo){k, sp->lo, sp->hi};
                b->bytes -= sp->hi - sp->lo;
                sp->lo = RC_MIN(sp->lo, lo);
                sp->hi = RC_MAX(sp->hi, hi);
                b->bytes += sp->hi - sp->lo;
            }
        } else {
            k = b->nspans++;
            b->spans[k] = (struct rc_kspan){s, lo, hi, 0};
            s->mark = k + 1;
            b->bytes += r->len;
        }
        b->slices[b->nslices + i] = (struct rck_slice){.off = lo, .len = r->len};
        b->slice_span[b->nslices + i] = k;
        total += r->len;
    }
    if (total > INT_MAX || b->bytes > b->lim.max_buf) {
        roll_back(b, nundo, nspans0, bytes0);
        if (total > INT_MAX)
            return -EINVAL;
        return b->ntargets ? -ENOSPC : -EMSGSIZE;
    }

    if (b->ntargets == b->targets_cap) {
        b->targets = reserve(b->targets, &b->targets_cap, b->ntargets + 1, sizeof(*b->targets));
        b->info = rc_xrealloc(b->info, sizeof(*b->info) * b->targets_cap);
    }
    b->targets[b->ntargets] =
        (struct rck_target){.fd = fd, .first = b->nslices, .nslices = n, .reserved = 0};
    b->info[b->ntargets] = (struct rc_ktarget){.tag = tag, .bytes = (uint32_t)total};
    b->ntargets++;
    b->nslices += n;
    return 0;
}

void rc_kbatch_finish(struct rc_kbatch *b, uint32_t flags, struct rck_send *req)
{
    uint32_t at = 0;

    if (b->bytes > b->buf_cap) {
        /* Whole doublings up to the limit, so a growing feed reallocates a
         * few times, not on every call. */
        uint64_t cap = b->buf_cap ? b->buf_cap : 64 * 1024;
        while (cap < b->bytes)
            cap *= 2;
        b->buf_cap = (uint32_t)RC_MIN(cap, (uint64_t)b->lim.max_buf);
        free(b->buf);
        b->buf = rc_xmalloc(b->buf_cap);
    }
    for (uint32_t i = 0; i < b->nspans; i++) {
        struct rc_kspan *sp = &b->spans[i];
        sp->at = at;
        memcpy(b->buf + at, sp->slab->data + sp->lo, sp->hi - sp->lo);
        at += sp->hi - sp->lo;
        sp->slab->mark = 0;
    }
    b->copied += at;
    for (uint32_t i = 0; i < b->nslices; i++) {
        const struct rc_kspan *sp = &b->spans[b->slice_span[i]];
        b->slices[i].off = sp->at + (b->slices[i].off - sp->lo);
    }
    b->finished = true;
    memset(req, 0, sizeof(*req));
    req->buf = (uint64_t)(uintptr_t)b->buf;
    req->buf_len = at;
    req->flags = flags;
    req->slices = (uint64_t)(uintptr_t)b->slices;
    req->nslices = b->nslices;
    req->targets = (uint64_t)(uintptr_t)b->targets;
    req->ntargets = b->ntargets;
}

void rc_kbatch_reset(struct rc_kbatch *b)
{
    if (b->finished)
        b->nspans = 0; /* stamps cleared by finish; the slabs may be gone */
    else
        unstamp(b, 0);
    b->bytes = 0;
    b->nslices = 0;
    b->ntargets = 0;
    b->finished = false;
}
