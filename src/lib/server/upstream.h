/* upstream.h -- ringcastd as the edge of a NATS cluster (docs/cluster.md).
 *
 * With `upstream nats://host:port[,...]` set, the server keeps one libnats
 * connection to a NATS cluster and mirrors its engine's interest there:
 * the first local subscriber of a channel or pattern subscribes upstream
 * (through the engine's interest hook), the last one leaving unsubscribes.
 * Local publishes are delivered locally at once and published upstream once;
 * messages from upstream are fanned out locally through the same engine and
 * never published back. libnats does discovery, reconnect and failover.
 *
 * Two halves: a pure one (upstream_map.c, always built) that says how a
 * channel or a Redis glob becomes a NATS subject and which names NATS cannot
 * carry; and the connection (upstream.c with libnats, upstream_none.c when
 * the build has no libnats, where setting `upstream` is refused).
 *
 * Everything here runs on the loop thread except libnats's callbacks, which
 * touch only a mutex-guarded inbox and an eventfd (like ringcast_publish()).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_UPSTREAM_H
#define RC_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"
#include "util.h"

struct rc_server;

/* Longest NATS subject the edge sends (nats-server's control line is 4 KiB
 * by default; this leaves room for the rest of a PUB or SUB line). */
#define RC_UPSTREAM_MAX_SUBJECT 1024

/* ---- The mapping (upstream_map.c) ---- */

/* Checks that a channel name is a NATS subject the edge can publish and
 * subscribe to as it is: 1 to RC_UPSTREAM_MAX_SUBJECT bytes, tokens
 * separated by '.', none empty, none exactly "*" or ">" (NATS wildcards), no
 * space, control character or DEL. Returns NULL when it is, or why not. */
const char *rc_upstream_check_channel(const char *name, size_t len);

/* Maps a Redis glob pattern to the narrowest NATS subject whose matches
 * include every NATS subject the glob matches (the engine then filters by
 * the glob). Literal tokens stay; a token whose glob can match exactly one
 * token (a character class without '.', e.g. "[AB]") becomes "*"; from the
 * first token that can span a '.' ('*', '?', a class that admits '.') on,
 * the rest is ">". So "quotes.*" -> "quotes.>", "q.[AB].bid" -> "q.*.bid",
 * "*" -> ">". Writes the NUL-terminated subject to out (outlen bytes) and
 * returns NULL, or returns why the pattern cannot be carried. */
const char *rc_upstream_map_pattern(const char *pat, size_t len, char *out, size_t outlen);

/* NATS subject matching: does the (literal) subject match sub, which may
 * hold "*" and ">" tokens? */
bool rc_upstream_subject_match(const char *sub, const char *subject, size_t slen);

/* ---- The connection (upstream.c / upstream_none.c) ---- */

/* True when this build can connect upstream (libnats was found). */
bool rc_upstream_compiled(void);

/* Checks an `upstream` value: comma- or space-separated nats:// or tls://
 * URLs. Returns 0 or -EINVAL with err set. Refuses any value when the build
 * has no libnats. */
int rc_upstream_check_urls(const char *urls, char *err, size_t errlen);

/* The engine's interest hook (struct rc_engine_cfg); arg is the server. */
void rc_upstream_interest(void *arg, enum rc_sub_kind kind, const char *name, size_t len, bool on);

/* Connects (in the background: the server starts even when NATS is down)
 * and watches the inbox's eventfd. No-op without `upstream`. Returns 0 or
 * -errno, logging why (bad credentials file, bad URL). */
int rc_upstream_start(struct rc_server *s);
/* Closes the connection (flushing what is buffered, briefly) and frees the
 * loop's side; libnats's threads release the rest. NULL s->up is a no-op. */
void rc_upstream_free(struct rc_server *s);
/* Process exit (ringcastd's main only, never the library): lets libnats
 * join its threads and free its global state, so leak checkers see none. */
void rc_upstream_library_exit(void);

/* Checks a name a client wants to SUBSCRIBE (kind channel) or PSUBSCRIBE
 * (kind pattern) to, or PUBLISH on (kind channel) of len payload bytes.
 * Returns NULL when the upstream is off or the name can be carried,
 * otherwise a complete error reply text ("ERR ..."), valid until the next
 * call. Shard channels are local to the edge and always pass. */
const char *rc_upstream_refuse(struct rc_server *s, enum rc_sub_kind kind, const char *name,
                               size_t len, size_t payload_len);

/* Publishes a message that was just published locally upstream too (once;
 * never one that came from upstream). Names NATS cannot carry are counted
 * and logged, not sent. */
void rc_upstream_forward(struct rc_server *s, const char *chan, size_t clen, const char *payload,
                         size_t len);

/* INFO upstream. */
void rc_upstream_info(struct rc_server *s, struct rc_buf *b);

/* The upstream's counters, for /metrics. */
struct rc_upstream_counters {
    bool connected;
    uint64_t disconnects, reconnects, subscriptions;
    uint64_t in_msgs, in_delivered, in_duplicates, in_dropped;
    uint64_t out_msgs, out_errors, out_refused;
};
/* Fills *c; false (and nothing filled) when no upstream is configured. */
bool rc_upstream_counters(struct rc_server *s, struct rc_upstream_counters *c);

#endif
