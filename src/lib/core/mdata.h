/* mdata.h -- market-data extensions: last value, conflation, rate caps, sequence and resume.
 *
 * Everything here is opt-in per channel pattern through rules (the server's
 * "mdata-rule" lines); a channel no rule matches takes none of these paths,
 * so plain Redis semantics are unchanged by default. State is kept as data
 * -- channel, payload, sequence -- and encoded through the engine's codec
 * table for each subscriber's wire format when it is sent. See mdata.c for
 * the design and docs/extensions.md for the user's view.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_MDATA_H
#define RC_MDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* The reserved channel in-band notices arrive on (as a normal message). */
#define RC_MDATA_NOTICE_CHANNEL "__ringcast__:notice"

/* Slow-consumer policy of a rule. */
enum rc_mdata_policy { RC_MD_STREAM, RC_MD_CONFLATE, RC_MD_DROP };

/* One rule: what channels matching pattern get. */
struct rc_mdata_rule {
    char *pattern;
    bool last;        /* "last": keep the last message, sent first on SUBSCRIBE */
    bool seq;         /* "seq": sequence numbers (implied by history) */
    uint64_t ttl_ms;  /* "ttl=<secs>": drop the last value this long after it was set */
    uint32_t history; /* "history=<n>": keep the last n messages for RC.RESUME */
    int policy;       /* "policy=stream|conflate|drop" */
    uint32_t rate;    /* "rate=<n>": at most n messages per second per client */
};

/* The settings, owned by the server's configuration and read live. */
struct rc_mdata_cfg {
    struct rc_mdata_rule *rules; /* first match wins */
    int nrules;
    uint64_t max_channels; /* channels with state */
    uint64_t max_memory;   /* payload bytes held (last values and history), 0 = no bound */
    uint64_t queue_soft;   /* conflate/drop once a client's queue holds this many bytes */
    uint64_t queue_low;    /* ... until it drains below this */
    uint64_t pending_max;  /* per-client conflated bytes */
    uint64_t lastp_max;    /* most values RC.LASTP returns */
};

/* Re-reads the settings after a change: drops state no rule covers any more,
 * restarts the sequence of channels whose seq/history changed. */
void rc_mdata_reconfigure(struct rc_engine *e);

/* k just subscribed to chan (a new subscription): queues the last value. */
void rc_mdata_snapshot(struct rc_engine *e, struct rc_sink *k, const char *chan, size_t clen);

/* The last payload of chan, when one is kept (RC.LAST). *p stays valid until
 * the next publish or command. */
bool rc_mdata_last(struct rc_engine *e, const char *chan, size_t clen, const char **p, size_t *len);
/* Calls fn for at most count channels matching pat that hold a last value,
 * most recently published first (RC.LASTP; count is capped by lastp_max).
 * Returns how many. */
size_t rc_mdata_lastp(struct rc_engine *e, const char *pat, size_t plen, uint64_t count,
                      void (*fn)(void *arg, const char *chan, size_t clen, const char *p,
                                 size_t len),
                      void *arg);
/* Drops chan's state (last value, history, sequence); false when it had none. */
bool rc_mdata_del(struct rc_engine *e, const char *chan, size_t clen);
/* Does an mdata rule match chan (a channel with market-data state)? */
bool rc_mdata_applies(const struct rc_engine *e, const char *chan, size_t clen);

/* chan's stream broke outside the engine (messages may have been lost
 * before they reached it: an upstream outage). When chan is sequenced, it
 * starts a new epoch with its sequence at 0 and drops its history, which
 * cannot bridge the break (the last value stays), and queues text on
 * RC_MDATA_NOTICE_CHANNEL to each subscriber of chan. Returns how many were
 * told (0 when chan has no sequence). */
size_t rc_mdata_gap(struct rc_engine *e, const char *chan, size_t clen, const char *text);

/* Sequence stamps on k's messages from sequenced channels (RC.SEQMODE). */
void rc_mdata_set_seqmode(struct rc_engine *e, struct rc_sink *k, bool on);

/* RC.RESUME, in two steps around the caller's subscribe and reply.
 * rc_mdata_seq_state: the channel's (epoch, seq) and whether a client at
 * (epoch, last) can be replayed; -ENOENT when no rule gives chan a sequence.
 * rc_mdata_resume_send: replays what follows last to k, or counts a resync
 * and sends the last value. */
int rc_mdata_seq_state(struct rc_engine *e, const char *chan, size_t clen, uint64_t epoch,
                       uint64_t last, uint64_t *cur_epoch, uint64_t *cur_seq, bool *can_resume);
void rc_mdata_resume_send(struct rc_engine *e, struct rc_sink *k, const char *chan, size_t clen,
                          bool can_resume, uint64_t last);

/* Memory is short: starts a conflation (or drop) episode for k now if one of
 * its subscriptions has a rule with policy=conflate or drop, so its queue
 * stops growing with those channels. True when k is (now) in an episode. */
bool rc_mdata_sink_conflate(struct rc_engine *e, struct rc_sink *k);
/* k's queue shrank (the kernel took bytes): ends a conflation episode when low enough. */
void rc_mdata_sink_drained(struct rc_engine *e, struct rc_sink *k);
/* Appends " rc-conflated=.. rc-dropped=.. ..." for CLIENT LIST when rules exist. */
void rc_mdata_client_fields(struct rc_engine *e, const struct rc_sink *k, struct rc_buf *b);

/* Totals (also for tests). */
struct rc_mdata_stats {
    uint64_t channels;     /* channels with state */
    uint64_t last_values;  /* of which hold a last value */
    uint64_t bytes;        /* payload bytes held (last values + history) */
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
const struct rc_mdata_stats *rc_mdata_stats(const struct rc_engine *e);
/* What INFO's "mdata" section shows, of one engine (or several, summed). */
struct rc_mdata_info {
    struct rc_mdata_stats st;
    uint64_t pending;  /* bytes slow clients have waiting in their side tables */
    uint64_t slow_now; /* clients in a conflation/drop episode now */
};
void rc_mdata_info_get(struct rc_engine *e, struct rc_mdata_info *mi);
/* INFO "mdata" section body. */
void rc_mdata_info(const struct rc_mdata_cfg *cfg, const struct rc_mdata_info *mi,
                   struct rc_buf *b);

/* Helpers exposed for the unit tests. */
/* Builds the side-table key of a delivery into b (reset first). */
void rc_mdata_key(struct rc_buf *b, const char *pat, size_t plen, const char *chan, size_t clen);
/* What RC.RESUME does for a client at (epoch, last) given the channel's
 * (cur_epoch, cur_seq) and history count: returns true to replay from
 * last + 1, false to answer "resync". */
bool rc_mdata_can_resume(uint64_t epoch, uint64_t last, uint64_t cur_epoch, uint64_t cur_seq,
                         uint64_t hist_n);

#endif
