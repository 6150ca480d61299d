/* udpframe.h -- UDP feed framing (parser and encoder) and sequence tracking.
 *
 * A feed sends datagrams of one or more messages (docs/udp.md has the byte
 * layout). The parser never trusts a length: a datagram is checked whole
 * before any of its messages is published, so a malformed one is dropped
 * entirely. Every datagram carries a session id and the sequence number of
 * its first message; a tracker per source (and one shared by an A/B pair)
 * says which messages are new, counting gaps and duplicates. Parser and
 * tracker are pure functions of their input, tested and fuzzed on their own.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_UDPFRAME_H
#define RC_UDPFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Framing ---- */

#define RC_UDP_VERSION   1
#define RC_UDP_HDR_LEN   16
#define RC_UDP_MSG_OVER  6u /* per message: u16 channel length + u32 payload length */
#define RC_UDP_FLAG_NONE 0
#define RC_UDP_MAX_DGRAM 65535u /* largest datagram the parser accepts */

struct rc_udp_hdr {
    uint8_t version;
    uint8_t flags;
    uint16_t count;   /* messages; 0 = heartbeat (seq is the next one to come) */
    uint32_t session; /* chosen by the sender at start; a new one restarts seq */
    uint64_t seq;     /* sequence number of the first message */
};

struct rc_udp_msg {
    const char *chan;
    size_t clen;
    const char *payload;
    size_t len;
};

/* Checks a whole datagram: header, every message's lengths against what is
 * left, nothing after the last message, seq + count without overflow, no
 * empty channel. Returns 0 and fills *h, or -EBADMSG with *why (static text)
 * set. Reads only p[0..n). */
int rc_udp_parse(const void *data, size_t n, struct rc_udp_hdr *h, const char **why);
/* Returns the message at *pos (start at RC_UDP_HDR_LEN) and advances *pos;
 * false after the last. Only for datagrams rc_udp_parse() accepted. */
bool rc_udp_next(const void *p, size_t n, size_t *pos, struct rc_udp_msg *m);

/* Encoding, for senders (ringcast-feed, tests): writes the header / one
 * message at dst and returns its length. rc_udp_msg_size() is what a message
 * takes. The caller sizes dst. */
size_t rc_udp_put_hdr(void *dst, const struct rc_udp_hdr *h);
size_t rc_udp_put_msg(void *dst, const char *chan, size_t clen, const void *payload, size_t len);
static inline size_t rc_udp_msg_size(size_t clen, size_t len)
{
    return RC_UDP_MSG_OVER + clen + len;
}

/* ---- Sequence tracking ---- */

#define RC_UDP_WINDOW 8192 /* sequence numbers remembered behind the highest */

struct rc_udp_seq {
    bool started;
    bool has_prev; /* prev_session is meaningful */
    uint32_t session, prev_session;
    uint64_t next;                     /* highest sequence number seen + 1 */
    uint64_t bits[RC_UDP_WINDOW / 64]; /* seen, for [next - WINDOW, next) */
    uint64_t gaps;                     /* sequence numbers skipped and not (yet) filled */
    uint64_t duplicates; /* messages dropped as already seen (or older than the window) */
    uint64_t reordered;  /* late messages that filled a gap */
    uint64_t resets;     /* session changes */
    uint64_t stale;      /* datagrams of the previous session, dropped */
};

/* Starts a datagram of session: false when it belongs to the session before
 * the current one (a late packet from before a sender restart: drop it). A
 * new session restarts the sequence (counted in resets). */
bool rc_udp_seq_session(struct rc_udp_seq *t, uint32_t session);
/* True when seq is new (publish it), false for a duplicate. */
bool rc_udp_seq_accept(struct rc_udp_seq *t, uint64_t seq);
/* A heartbeat: the next message will be next; what was skipped is a gap. */
void rc_udp_seq_heartbeat(struct rc_udp_seq *t, uint64_t next);

#endif
