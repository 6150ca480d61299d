/* mdata.h -- market-data extensions: last value, conflation, rate caps, sequence and resume.
 *
 * Everything here is opt-in per channel pattern through "mdata-rule" lines
 * (config file or CONFIG SET); a channel no rule matches takes none of these
 * paths, so plain Redis semantics are unchanged by default. See mdata.c for
 * the design and docs/extensions.md for the user's view.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_MDATA_H
#define RC_MDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "queue.h"

struct rc_server;
struct rc_conn;
struct rc_buf;
struct rc_mchan;

/* The reserved channel in-band notices arrive on (as a normal message). */
#define RC_MDATA_NOTICE_CHANNEL "__ringcast__:notice"

/* One PUBLISH on a channel that has mdata state, between rc_mdata_begin()
 * and rc_mdata_end(). Frame variants are encoded lazily, at most once each:
 * index (proto == 3) | (with sequence ? 2 : 0). */
struct rc_mdata_pub {
    struct rc_mchan *ch;
    const char *chan, *payload;
    size_t clen, len;
    uint64_t now_ms;
    int canon; /* index of the canonical variant (cached), -1 when none */
    struct rc_ref v[4];
};

/* Global state; NULL-safe accessors below. */
void rc_mdata_init(struct rc_server *s);
void rc_mdata_free(struct rc_server *s);
/* Re-reads the mdata settings after CONFIG SET: drops state no rule covers
 * any more, restarts the sequence of channels whose seq/history changed. */
void rc_mdata_reconfigure(struct rc_server *s);

/* Starts a publish on chan: returns p filled in, or NULL when no rule
 * matches (the caller then takes the plain path). Assigns the sequence. */
struct rc_mdata_pub *rc_mdata_begin(struct rc_server *s, struct rc_mdata_pub *p, const char *chan,
                                    size_t clen, const char *payload, size_t len);
/* Delivers one message of p to c. slab == NULL: the channel's own message
 * (the variant is picked here); otherwise a pmessage frame for pattern pat.
 * Applies the conflation/drop policy and the rate cap; else pushes. */
void rc_mdata_deliver(struct rc_server *s, struct rc_mdata_pub *p, struct rc_conn *c, int proto,
                      struct rc_slab *slab, uint32_t off, uint32_t len, const char *pat,
                      size_t plen);
/* Ends the publish: stores the last value and the history entry, drops
 * the temporary references, enforces the memory bounds. */
void rc_mdata_end(struct rc_server *s, struct rc_mdata_pub *p);

/* c just subscribed to chan (new subscription): queues the cached last value. */
void rc_mdata_snapshot(struct rc_server *s, struct rc_conn *c, const char *chan, size_t clen);

/* Per-connection hooks. */
/* c's queue shrank (the kernel took bytes): ends a conflation episode when low enough. */
void rc_mdata_conn_drained(struct rc_server *s, struct rc_conn *c);
/* Drops c's pending frames and state (unlink, close). NULL state is a no-op. */
void rc_mdata_conn_free(struct rc_server *s, struct rc_conn *c);
/* Appends " rc-conflated=.. rc-dropped=.. rc-ratelimited=.. rc-seqmode=.." when rules exist. */
void rc_mdata_client_fields(struct rc_server *s, struct rc_conn *c, struct rc_buf *b);

/* Periodic work (~100 ms): rate-capped flushes, TTL expiry, drained episodes. */
void rc_mdata_cron(struct rc_server *s, uint64_t now_ms);

/* INFO "mdata" section body. */
void rc_mdata_info(struct rc_server *s, struct rc_buf *b);

/* Totals (also for tests). */
struct rc_mdata_stats {
    uint64_t channels;     /* channels with state */
    uint64_t last_values;  /* of which hold a last value */
    uint64_t bytes;        /* frame bytes held (last values + history) */
    uint64_t evictions;    /* states dropped by mdata-max-channels / -memory */
    uint64_t expired;      /* last values dropped by ttl */
    uint64_t deleted;      /* states dropped by RC.DEL */
    uint64_t snapshots;    /* last values sent on SUBSCRIBE */
    uint64_t conflated;    /* messages replaced by a newer one in a slow client's table */
    uint64_t dropped;      /* messages dropped for a slow client */
    uint64_t rate_limited; /* messages replaced under a rate cap */
    uint64_t slow_events;  /* conflation/drop episodes started */
    uint64_t notices;      /* notices sent */
    uint64_t replayed;     /* history messages sent by RC.RESUME */
    uint64_t resyncs;      /* RC.RESUME answered "resync" */
};
const struct rc_mdata_stats *rc_mdata_stats(const struct rc_server *s);

/* Helpers exposed for the unit tests. */
/* Builds the side-table key of a delivery into b (reset first). */
void rc_mdata_key(struct rc_buf *b, const char *pat, size_t plen, const char *chan, size_t clen);
/* What RC.RESUME does for a client at (epoch, last) given the channel's
 * (cur_epoch, cur_seq) and history count: returns true to replay from
 * last + 1, false to answer "resync". */
bool rc_mdata_can_resume(uint64_t epoch, uint64_t last, uint64_t cur_epoch, uint64_t cur_seq,
                         uint64_t hist_n);

#endif
