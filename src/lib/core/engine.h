/* engine.h -- the fan-out engine: channels, patterns, subscribers, and publish.
 *
 * An engine is an instance: everything it uses (tables, pattern list, slab
 * pool, market-data state, counters) hangs off its struct rc_engine, so any
 * number of engines can live in one process, each driven by one thread. It
 * knows nothing of connections, sockets or wire protocols:
 *
 *   - a subscriber is a struct rc_sink, embedded in whatever its owner calls
 *     a client. The sink says which wire format it wants (a codec id), where
 *     its output queue is (read only, for the slow-consumer policy) and how
 *     to queue bytes for it (ops->push);
 *   - a wire format is a struct rc_codec (codec.h) in the table the engine
 *     was created with. A publish encodes the message once per format present
 *     among the receiving subscribers, into a shared slab, and pushes a
 *     reference to each subscriber of that format.
 *
 * Subscriptions come in three kinds with Redis's semantics: channels,
 * patterns (Redis globs, matched on every publish) and shard channels
 * (SSUBSCRIBE's namespace). Channels matching an mdata rule also get the
 * market-data behaviour of mdata.h.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_ENGINE_H
#define RC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "dict.h"
#include "msg.h"
#include "queue.h"
#include "util.h"

struct rc_dict;
struct rc_engine;
struct rc_msink;
struct rc_mdata_cfg;
struct rc_sink;

enum rc_sub_kind { RC_SUB_CHANNEL, RC_SUB_PATTERN, RC_SUB_SHARD, RC_SUB__COUNT };

struct rc_sink_ops {
    /* Queues slab[off..off+len) for k (the slab is borrowed: take a reference
     * to keep it). limit: apply the owner's output limit, which may detach k
     * (rc_engine_sink_detach) from inside the call; the engine allows that. */
    void (*push)(struct rc_sink *k, struct rc_slab *slab, uint32_t off, uint32_t len, bool limit);
};

/* A subscriber. The owner embeds it, fills it with rc_sink_init() and must
 * call rc_engine_sink_detach() then rc_sink_free() before freeing it. */
struct rc_sink {
    const struct rc_sink_ops *ops;
    uint64_t id;              /* the owner's id, for logs */
    const char *label;        /* the owner's description (peer address), for logs; borrowed */
    const struct rc_queue *q; /* the owner's output queue; read to judge a slow consumer */
    uint8_t fmt;              /* codec id */
    bool detached;            /* no deliveries any more */
    uint32_t nsubs;           /* subscriptions of every kind */
    struct rc_dict *subs[RC_SUB__COUNT]; /* name -> its place in the channel, created lazily */
    struct rc_msink *md;                 /* market-data side table (mdata.c), NULL when none */
    /* rc_engine_sink_release's progress: the kind and place it resumes at. */
    int rel_kind;
    struct rc_dict_iter rel_it;
};

void rc_sink_init(struct rc_sink *k, const struct rc_sink_ops *ops, uint8_t fmt, uint64_t id,
                  const char *label, const struct rc_queue *q);
/* Frees the sink's tables; call after rc_engine_sink_detach(). */
void rc_sink_free(struct rc_sink *k);
/* Subscriptions of one kind. */
size_t rc_sink_count(const struct rc_sink *k, enum rc_sub_kind kind);
/* Is k subscribed to name (of kind)? */
bool rc_sink_has(const struct rc_sink *k, enum rc_sub_kind kind, const char *name, size_t len);
/* Does k hold any subscription at all (Redis's "pubsub client")? */
static inline bool rc_sink_subscribed(const struct rc_sink *k)
{
    return k->nsubs > 0;
}

struct rc_engine_cfg {
    const struct rc_codec *const *codecs; /* codecs[id]->id == id; borrowed, must outlive */
    int ncodecs;                          /* at most RC_FMT_MAX */
    const struct rc_logger *log;          /* borrowed */
    const struct rc_mdata_cfg *md;        /* borrowed and read live (CONFIG SET) */
    /* Optional. Called when name (of kind) gets its first subscriber (on)
     * and when its last one leaves (!on), after the table has changed; name
     * is valid during the call only. It may not call back into the engine.
     * The server uses it to make interest follow its subscribers upstream. */
    void (*interest)(void *arg, enum rc_sub_kind kind, const char *name, size_t len, bool on);
    void *interest_arg;
    /* Optional. Called after every subscription added (delta +1) or removed
     * (-1), with the same rules as interest. Workers use it to keep each
     * channel's owner told how many subscribers it has elsewhere. */
    void (*count)(void *arg, enum rc_sub_kind kind, const char *name, size_t len, int delta);
    void *count_arg;
};

/* A market-data stamp: the epoch and sequence number a sequenced channel
 * gave a message. The engine that first publishes a message fills it in
 * (set: a sequenced rule matched; mdata: any rule matched); a copy of the
 * engine relaying it (another worker) adopts it, so every copy of the
 * channel's state numbers the message alike. */
struct rc_stamp {
    uint64_t epoch, seq;
    bool set;   /* epoch and seq are valid */
    bool mdata; /* an mdata rule matched the channel */
};

struct rc_engine_stats {
    uint64_t published;           /* publish calls */
    uint64_t deliveries;          /* message x receiving subscriber */
    uint64_t encodes[RC_FMT_MAX]; /* messages encoded, by wire format */
};

struct rc_engine *rc_engine_new(const struct rc_engine_cfg *cfg);
/* Frees e. Every sink must have been detached. NULL is a no-op. */
void rc_engine_free(struct rc_engine *e);
/* The pool e's slabs come from; owners may carve their own arenas from it
 * (it is freed with e, so they must be released first). */
struct rc_slab_pool *rc_engine_pool(struct rc_engine *e);
const struct rc_codec *rc_engine_codec(const struct rc_engine *e, uint8_t fmt);
const struct rc_engine_stats *rc_engine_stats(const struct rc_engine *e);
/* Zeroes the counters (CONFIG RESETSTAT). */
void rc_engine_stats_reset(struct rc_engine *e);

/* Adds k to name's subscribers; false when it already was. */
bool rc_engine_subscribe(struct rc_engine *e, struct rc_sink *k, enum rc_sub_kind kind,
                         const char *name, size_t len);
/* Removes k from name's subscribers; false when it was not subscribed. */
bool rc_engine_unsubscribe(struct rc_engine *e, struct rc_sink *k, enum rc_sub_kind kind,
                           const char *name, size_t len);
/* Removes every subscription of kind, calling fn(arg, name, len) after
 * each (name is valid during the call; fn may be NULL). Returns how many. */
size_t rc_engine_unsubscribe_kind(struct rc_engine *e, struct rc_sink *k, enum rc_sub_kind kind,
                                  void (*fn)(void *arg, const char *name, size_t len), void *arg);
/* Stops every delivery to k: drops its subscriptions and its market-data
 * state. Idempotent. */
void rc_engine_sink_detach(struct rc_engine *e, struct rc_sink *k);
/* Detaches k in bounded work: it receives nothing from now on (its market-
 * data state goes at once), and at most budget of its subscriptions are
 * removed. Returns true when none is left; otherwise call
 * rc_engine_sink_release() until it returns true before freeing k. Channels
 * may still count k among their subscribers (PUBLISH's receivers, NUMSUB)
 * until its subscriptions are gone. */
bool rc_engine_sink_detach_some(struct rc_engine *e, struct rc_sink *k, size_t budget);
/* Removes up to budget more subscriptions of a detached k; true when none is left. */
bool rc_engine_sink_release(struct rc_engine *e, struct rc_sink *k, size_t budget);
/* Drops every subscription and the market-data state of k, which stays
 * usable (RESET). */
void rc_engine_sink_reset(struct rc_engine *e, struct rc_sink *k);
/* Switches k to another wire format (RESP2 <-> RESP3 on HELLO or RESET). */
void rc_engine_sink_set_fmt(struct rc_engine *e, struct rc_sink *k, uint8_t fmt);

/* Publishes payload on chan (shard: the shard namespace) to every
 * subscriber of the channel and of every matching pattern. Returns the
 * receivers as Redis counts them (a client on the channel and on two
 * matching patterns counts three times). Buffers are borrowed. */
uint64_t rc_engine_publish(struct rc_engine *e, bool shard, const char *chan, size_t clen,
                           const char *payload, size_t len);

/* rc_engine_publish with a stamp: st NULL, or st->set false, stamps the
 * message here (and fills *st in when given); st->set true adopts st. relay:
 * this engine delivers a message published elsewhere (another worker's),
 * which its "published" counter leaves out. */
uint64_t rc_engine_publish_ex(struct rc_engine *e, bool shard, const char *chan, size_t clen,
                              const char *payload, size_t len, struct rc_stamp *st, bool relay);

/* Subscribers of name (channel or shard channel; patterns: of that pattern). */
size_t rc_engine_numsub(const struct rc_engine *e, enum rc_sub_kind kind, const char *name,
                        size_t len);
/* Distinct patterns with subscribers (PUBSUB NUMPAT). */
size_t rc_engine_numpat(const struct rc_engine *e);
/* Calls fn(arg, name, len) for every name of kind with subscribers. */
void rc_engine_each(const struct rc_engine *e, enum rc_sub_kind kind,
                    void (*fn)(void *arg, const char *name, size_t len), void *arg);

/* Periodic work (~100 ms): market-data rate caps, TTLs, drained episodes. */
void rc_engine_cron(struct rc_engine *e, uint64_t now_ms);

#endif
