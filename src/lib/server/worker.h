/* worker.h -- workers: one loop per core, one order per channel.
 *
 * With `workers N` (N > 1) the server is N struct rc_server instances, the
 * workers, each run by its own thread with its own backend (io_uring or
 * epoll instance), connections, engine and slab pool. They share nothing but
 * the group below and talk only through posts: small messages appended to
 * the target's inbox, whose wake-up rides the sender's next submission
 * (io_uring: an IORING_OP_MSG_RING among the sends; epoll: an eventfd).
 *
 * Every channel (and shard channel) has an owner worker, picked by hashing
 * its name. A publish received by any worker goes to the owner, which
 * stamps it (market-data sequence and last value), delivers it to its own
 * subscribers and posts one reference-counted copy to every other worker
 * with local interest, in the order it stamped them: every subscriber on
 * every worker sees the channel's messages in one order. Each worker tells
 * every other one how many subscribers it has of each channel and pattern
 * (count deltas), so every worker keeps a tally of them all: the owner
 * knows which workers to post to, and the worker that took the PUBLISH
 * knows the receiver count to reply with at once. The owner acknowledges
 * each forwarded publish; a connection with too many unacknowledged ones,
 * or one that receives its own message, gets the reply from the owner
 * instead, through a hole: its later output waits in order behind it,
 * while the connection goes on being read.
 *
 * Server-wide answers (PUBSUB, CLIENT LIST/KILL, INFO, /metrics) are
 * gathered: each worker computes its part on its own thread, the asking
 * worker combines them, and the reply fills a hole the same way.
 *
 * With one worker none of this runs: no posts, no holes, no hashing.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_WORKER_H
#define RC_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "util.h"

struct rc_server;
struct rc_conn;
struct rc_req;
struct rc_wstate;
struct rc_slab;

/* Publishes one connection may have posted to owners and not yet had
 * acknowledged before its replies wait for them (worker.c). */
#define RC_PUB_WINDOW 1024

/* Posts waiting for one worker (its inbox, plus what a sender has still to
 * hand it) past which publishes nobody waits for -- a UDP feed's -- are
 * dropped rather than queued to it (rc_worker_backlogged). */
#define RC_OWNER_BACKLOG 65536

/* What the workers of one server share. */
struct rc_workers {
    int n;
    struct rc_server *w[RC_MAX_WORKERS];
    pthread_t threads[RC_MAX_WORKERS];
    atomic_uint_fast64_t next_id;  /* client ids, server-wide */
    atomic_uint_fast64_t nclients; /* connected clients, server-wide (maxclients) */
    atomic_int quiet;              /* shutdown: workers with nothing left to do */
    atomic_bool stop_now;          /* SHUTDOWN NOW: no draining on any worker */
    atomic_bool by_user;           /* SHUTDOWN rather than a signal (for the log) */
    /* Start-up: each worker thread creates its own ring (io_uring rings are
     * single-issuer, and a registered ring fd is per thread), reports, and
     * waits for go. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nready;   /* threads that reported */
    int failed;   /* first -errno a thread reported, 0 = none */
    bool go;      /* run (or, with stop requested, just tear down) */
    int nthreads; /* threads started, joined by rc_workers_free */
    bool freeing; /* every thread has ended: posts are no longer handed over */
};

/* An entry of a connection's hold list (struct rc_conn.hold_head): output
 * that must wait for a hole before it -- a reply another worker computes. */
struct rc_hold {
    struct rc_hold *next;
    struct rc_slab *slab; /* output bytes (one reference), NULL for a hole */
    uint32_t off, len;
    bool ready;                          /* a hole: filled */
    struct rc_hold *sub_head, *sub_tail; /* a hole: what filled it */
};

/* The number of workers cfg asks for (0: the CPUs of the affinity mask). */
int rc_workers_wanted(const struct rc_config *cfg);

/* Creates the other workers of s (worker 0) when s->cfg.workers > 1. */
void rc_workers_new(struct rc_server *s);
/* Starts worker 1..n-1's threads, each of which sets up its backend (the
 * one worker 0 picked) and listens on its sockets, bound already. Returns 0
 * once all are ready, or the first -errno (every thread then ends). */
int rc_workers_start(struct rc_server *s);
/* Lets the workers run and runs worker 0 on this thread; returns when all
 * have stopped. */
int rc_workers_run(struct rc_server *s);
/* Frees the other workers and whatever posts were still in flight. */
void rc_workers_free(struct rc_server *s);

/* The worker's state (inbox, owner tables, pattern copy), for s->ws. */
void rc_worker_state_new(struct rc_server *s);
void rc_worker_state_free(struct rc_server *s);
/* Sets up s's wake-up path once its backend runs (an eventfd when the
 * backend has no kick). Returns 0 or -errno. */
int rc_worker_start(struct rc_server *s);
/* After each poll: clears s's wake-up flag and handles its inbox. */
void rc_worker_woken(struct rc_server *s);
/* Channels (shard: shard channels) with subscribers this worker owns. */
uint64_t rc_worker_owned(struct rc_server *s, bool shard);
/* Calls fn for every channel (shard: shard channel) this worker owns. */
void rc_worker_each_owned(struct rc_server *s, bool shard,
                          void (*fn)(void *arg, const char *name, size_t len), void *arg);
/* Distinct patterns with subscribers on any worker (PUBSUB NUMPAT). */
size_t rc_worker_numpat(struct rc_server *s);
/* Before each poll: hands this worker's posts to their targets and wakes them. */
void rc_worker_flush(struct rc_server *s);
/* timeout_ms, lowered so that the loop is back when a deferred wake-up
 * of another worker is due. */
int rc_worker_wait_ms(struct rc_server *s, int timeout_ms);
/* Handles every post in s's inbox (cheap when empty). */
void rc_worker_drain(struct rc_server *s);
/* True when s has no post in or out, no hole and no gather pending. */
bool rc_worker_idle(struct rc_server *s);

/* Deals a connection worker 0 accepted to the next worker in turn; true
 * when it went to another one (which adopts it). */
bool rc_worker_hand_off(struct rc_server *s, int fd);

/* The engine's count hook (engine.h): tells the owner, or every worker for
 * a pattern, that this worker gained or lost a subscriber. */
void rc_worker_count(void *arg, enum rc_sub_kind kind, const char *name, size_t len, int delta);

/* Publishes on the channel's owner. Returns the receiver count when it is
 * known now (this worker owns the channel, or there is one worker), or -1
 * when c's reply will come back from the owner (c got a hole). c may be
 * NULL (UDP, the library, no reply wanted). */
int64_t rc_route_publish(struct rc_server *s, struct rc_conn *c, bool shard, const char *chan,
                         size_t clen, const char *payload, size_t len);

/* True when chan's owner is another worker that has RC_OWNER_BACKLOG posts
 * or more waiting for it, counting those s has yet to hand over: a source
 * that nothing paces (a UDP feed) drops the publish instead of growing that
 * worker's inbox without bound. False with one worker. */
bool rc_worker_backlogged(struct rc_server *s, const char *chan, size_t clen);

/* ---- Gathering server-wide answers ---- */

struct rc_gather;
/* Computes worker w's part of g into out (on w's thread). */
typedef void (*rc_part_fn)(struct rc_server *w, const struct rc_gather *g, struct rc_buf *out);
/* Writes the reply from the parts (on the asking worker's thread), into
 * s->rbuf or through the connection's output functions. */
typedef void (*rc_combine_fn)(struct rc_server *s, struct rc_conn *c, struct rc_gather *g);

struct rc_gather {
    struct rc_gather *next; /* on the home worker's pending list */
    struct rc_server *home;
    struct rc_conn *c;
    struct rc_hold *hole;
    rc_part_fn part;
    rc_combine_fn combine;
    int argc;
    char **argv;
    size_t *argvlen;
    uint64_t arg; /* a number for part() (e.g. the asking client's id) */
    int waiting;  /* parts still to come */
    int n;        /* workers */
    struct rc_buf parts[RC_MAX_WORKERS];
};

/* Runs part on every worker and combine on s once all parts are in: at
 * once with one worker, otherwise later, through a hole in c's output.
 * argv (argc words, may be 0) is copied for the parts to read. */
void rc_gather(struct rc_server *s, struct rc_conn *c, int argc, const char *const *argv,
               const size_t *argvlen, uint64_t arg, rc_part_fn part, rc_combine_fn combine);

/* CONFIG SET's pairs, applied by every other worker to its own copy. */
void rc_workers_config_set(struct rc_server *s, int argc, const char *const *argv,
                           const size_t *argvlen);
/* RC.DEL on every other worker's copy of the market-data state. */
void rc_workers_mdata_del(struct rc_server *s, int argc, const char *const *argv,
                          const size_t *argvlen);
/* CONFIG RESETSTAT on every other worker. */
void rc_workers_resetstat(struct rc_server *s);
/* Asks every worker to stop (async-signal-safe). */
void rc_workers_request_stop(struct rc_server *s, bool now);

/* Worker counters for INFO's workers section. */
struct rc_worker_counters {
    uint64_t posts_out, posts_in; /* posts sent to and taken from other workers */
    uint64_t owned_pubs;          /* publishes this worker stamped as a channel's owner */
    uint64_t forwarded_pubs;      /* publishes it sent to another owner */
};
const struct rc_worker_counters *rc_worker_counters(const struct rc_server *s);

/* ---- Holes in a connection's output ---- */

/* Appends a hole to c's output: what c gets from now on waits for it. */
struct rc_hold *rc_hold_hole(struct rc_server *s, struct rc_conn *c);
/* c's output while it has holes: slab[off..off+len) joins the hold list
 * (or the hole being filled). */
void rc_hold_push(struct rc_server *s, struct rc_conn *c, struct rc_slab *slab, uint32_t off,
                  uint32_t len);
/* Starts and ends filling hole h of c: output for c in between goes into it. */
void rc_hold_fill_begin(struct rc_server *s, struct rc_conn *c, struct rc_hold *h);
void rc_hold_fill_end(struct rc_server *s, struct rc_conn *c, struct rc_hold *h);
/* Drops c's whole hold list (c is going away). */
void rc_hold_free(struct rc_conn *c);

#endif
