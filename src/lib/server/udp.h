/* udp.h -- UDP feed ingest: the datagram framing, sequence tracking, and the sources.
 *
 * A feed sends datagrams of one or more messages (docs/udp.md has the byte
 * layout). The parser never trusts a length: a datagram is checked whole
 * before any of its messages is published, so a malformed one is dropped
 * entirely. Every datagram carries a session id and the sequence number of
 * its first message; a tracker per source (and one shared by an A/B pair)
 * says which messages are new, counting gaps and duplicates. Parser and
 * tracker are pure functions of their input, tested and fuzzed on their own;
 * the sources (sockets, recvmmsg, INFO) sit on top.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_UDP_H
#define RC_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "udpframe.h"

struct rc_server;

/* ---- Configuration ---- */

/* Parses the value words of a udp-source line into *out. Returns 0 or
 * -EINVAL with err set. */
int rc_udp_source_parse(struct rc_udp_source_cfg *out, int argc, const char *const *argv, char *err,
                        size_t errlen);

/* ---- Sources (in the server) ---- */

/* Opens, binds (and joins) every configured source and hands the sockets to
 * the backend; checks the arbitration pairs. Returns 0 or -errno, logging
 * why. Called by rc_server_start() once the backend runs. */
int rc_udp_start(struct rc_server *s);
/* Closes every source. NULL s->udp is a no-op. */
void rc_udp_free(struct rc_server *s);
/* INFO sources: one line per source and per arbitrated pair. */
void rc_udp_info(struct rc_server *s, struct rc_buf *b);
/* The bound address of source i as "ip:port" (tests, INFO), or NULL. */
const char *rc_udp_source_addr(const struct rc_server *s, int i);

/* Counters of one source's own line (the per-line tracker), for /metrics. */
struct rc_udp_source_stats {
    const char *name; /* borrowed from the server's config */
    uint64_t datagrams, bytes, messages, published, malformed;
    uint64_t backlog_drops; /* dropped: the channel's owner worker was too far behind */
    uint64_t gaps;          /* skipped and not (yet) filled: falls when a late one fills a gap */
    uint64_t duplicates;    /* dropped as already seen */
    uint64_t reordered;     /* late messages that filled a gap */
};
/* How many sources the server has (0 when none). */
int rc_udp_nsources(const struct rc_server *s);
/* Fills *out with source i's counters; false when there is no source i. */
bool rc_udp_source_stats(const struct rc_server *s, int i, struct rc_udp_source_stats *out);

#endif
