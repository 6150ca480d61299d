/* udpframe.c -- the UDP feed datagram framing and the per-source sequence tracker.
 *
 * Both are pure functions of their input (no sockets, no server): the
 * parser checks a whole datagram before any message in it is trusted, and
 * the tracker says which sequence numbers are new, counting gaps and
 * duplicates. server/udp.c runs the sockets on top; docs/udp.md has the
 * byte layout.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "udpframe.h"

#include <errno.h>
#include <string.h>

/* ---- Framing ---- */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

int rc_udp_parse(const void *data, size_t n, struct rc_udp_hdr *h, const char **why)
{
    const uint8_t *p = data;
    size_t pos = RC_UDP_HDR_LEN;

#define BAD(text)                                                                                  \
    do {                                                                                           \
        *why = text;                                                                               \
        return -EBADMSG;                                                                           \
    } while (0)
    if (n < RC_UDP_HDR_LEN)
        BAD("shorter than the 16-byte header");
    if (n > RC_UDP_MAX_DGRAM)
        BAD("longer than 65535 bytes");
    h->version = p[0];
    h->flags = p[1];
    h->count = get16(p + 2);
    h->session = get32(p + 4);
    h->seq = get64(p + 8);
    if (h->version != RC_UDP_VERSION)
        BAD("unknown framing version");
    if (h->flags != 0)
        BAD("unknown flags");
    if (h->count && h->seq > UINT64_MAX - h->count)
        BAD("sequence number overflows");
    for (unsigned i = 0; i < h->count; i++) {
        size_t clen, len;
        if (n - pos < 2)
            BAD("message cut short before its channel length");
        clen = get16(p + pos);
        pos += 2;
        if (clen == 0)
            BAD("empty channel name");
        if (n - pos < clen)
            BAD("channel name longer than the datagram");
        pos += clen;
        if (n - pos < 4)
            BAD("message cut short before its payload length");
        len = get32(p + pos);
        pos += 4;
        if (n - pos < len)
            BAD("payload longer than the datagram");
        pos += len;
    }
    if (pos != n)
        BAD("bytes after the last message");
#undef BAD
    return 0;
}

bool rc_udp_next(const void *data, size_t n, size_t *pos, struct rc_udp_msg *m)
{
    const uint8_t *p = data;
    size_t at = *pos;

    /* The datagram was checked whole; the bounds are checked again anyway,
     * so a caller's mistake costs a false, not a read past the end. */
    if (at > n || n - at < RC_UDP_MSG_OVER)
        return false;
    m->clen = get16(p + at);
    at += 2;
    if (n - at < m->clen + 4u)
        return false;
    m->chan = (const char *)p + at;
    at += m->clen;
    m->len = get32(p + at);
    at += 4;
    if (n - at < m->len)
        return false;
    m->payload = (const char *)p + at;
    *pos = at + m->len;
    return true;
}

size_t rc_udp_put_hdr(void *dst, const struct rc_udp_hdr *h)
{
    uint8_t *p = dst;

    p[0] = h->version;
    p[1] = h->flags;
    put16(p + 2, h->count);
    put32(p + 4, h->session);
    put64(p + 8, h->seq);
    return RC_UDP_HDR_LEN;
}

size_t rc_udp_put_msg(void *dst, const char *chan, size_t clen, const void *payload, size_t len)
{
    uint8_t *p = dst;

    put16(p, (uint16_t)clen);
    memcpy(p + 2, chan, clen);
    put32(p + 2 + clen, (uint32_t)len);
    if (len)
        memcpy(p + 6 + clen, payload, len);
    return rc_udp_msg_size(clen, len);
}

/* ---- Sequence tracking ---- */

static bool bit_get(const struct rc_udp_seq *t, uint64_t seq)
{
    uint64_t k = seq % RC_UDP_WINDOW;
    return (t->bits[k / 64] >> (k % 64)) & 1;
}

static void bit_set(struct rc_udp_seq *t, uint64_t seq, bool on)
{
    uint64_t k = seq % RC_UDP_WINDOW, m = 1ull << (k % 64);
    if (on)
        t->bits[k / 64] |= m;
    else
        t->bits[k / 64] &= ~m;
}

/* Moves next forward to `to`: [next, to) were skipped, and their window bits
 * (which still describe numbers WINDOW older) are cleared. */
static void advance(struct rc_udp_seq *t, uint64_t to)
{
    uint64_t skipped = to - t->next;

    if (skipped >= RC_UDP_WINDOW) {
        memset(t->bits, 0, sizeof(t->bits));
    } else {
        for (uint64_t q = t->next; q < to; q++)
            bit_set(t, q, false);
    }
    t->gaps += skipped;
    t->next = to;
}

static void start(struct rc_udp_seq *t, uint64_t next)
{
    t->started = true;
    t->next = next;
    memset(t->bits, 0, sizeof(t->bits));
}

bool rc_udp_seq_session(struct rc_udp_seq *t, uint32_t session)
{
    if (!t->started || session == t->session) {
        t->session = session;
        return true;
    }
    if (t->has_prev && session == t->prev_session) {
        t->stale++;
        return false;
    }
    t->prev_session = t->session;
    t->has_prev = true;
    t->session = session;
    t->started = false;
    t->resets++;
    return true;
}

bool rc_udp_seq_accept(struct rc_udp_seq *t, uint64_t seq)
{
    if (!t->started) {
        start(t, seq);
    } else if (seq < t->next) {
        if (t->next - seq > RC_UDP_WINDOW || bit_get(t, seq)) {
            t->duplicates++;
            return false;
        }
        /* A late message filling a gap (reordering, or the other line of
         * an A/B pair). */
        bit_set(t, seq, true);
        if (t->gaps)
            t->gaps--;
        t->reordered++;
        return true;
    } else {
        advance(t, seq);
    }
    /* The parser guarantees seq + count fits, so seq + 1 does. */
    bit_set(t, seq, true);
    t->next = seq + 1;
    return true;
}

void rc_udp_seq_heartbeat(struct rc_udp_seq *t, uint64_t next)
{
    if (!t->started)
        start(t, next);
    else if (next > t->next)
        advance(t, next);
}
