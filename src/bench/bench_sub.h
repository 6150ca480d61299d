/* bench_sub.h -- ringcast-bench subscriber thread: its state and the per-delivery checks.
 *
 * Private to the subscriber thread's two files: bench_sub.c (epoll loop, setup,
 * RESP and NATS parsers) and bench_sub_http.c (ringcastd's HTTP port: the
 * Server-Sent Events and WebSocket parsers). The checks every parser ends in
 * are inline here because they run once per delivery.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_BENCH_SUB_H
#define RC_BENCH_SUB_H

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "bench.h"
#include "util.h"

struct sconn {
    int fd;
    int idx;
    bool subscribed;
    bool dead;
    bool in_head; /* sse, ws: the HTTP response head has not been read yet */
    char *carry;
    size_t carry_len;
    size_t carry_cap;
    uint64_t *next; /* next expected sequence per publisher */
    const char *chname;
    size_t chlen;
    /* every message frame for this connection starts with these bytes, up to
     * the payload length: the fast path compares them in one memcmp */
    char hdr[128];
    size_t hdrlen;
    /* sse, ws: the bytes that follow the payload of a delivery */
    char tail[8];
    size_t taillen;
    unsigned char mask[4]; /* ws: masking key of our frames */
};

struct sub {
    const struct rc_bench_opts *o;
    struct rc_bench_sub_result *res;
    struct sconn *conns;
    char (*chnames)[32];
    size_t *chlens;
    char *buf;
    size_t bufsize;
    size_t carry_max;
    int ep;
    bool text; /* payloads carry the text header (sse, ws) */
    bool measuring;
    uint64_t now;
    int ready;
};

static inline void rc_bsub_err(struct sub *s, const char *fmt, int a, const char *b)
{
    if (s->res->err[0] == '\0')
        snprintf(s->res->err, sizeof(s->res->err), fmt, a, b);
}

/* A message whose channel has been checked; pay holds plen bytes. */
static inline void rc_bsub_payload(struct sub *s, struct sconn *c, const char *pay, size_t plen)
{
    struct rc_bench_sub_result *r = s->res;
    r->deliveries++;
    if (RC_UNLIKELY(plen != (size_t)s->o->size)) {
        r->misrouted++;
        return;
    }
    uint32_t pub;
    uint64_t seq, sent;
    if (RC_UNLIKELY(!rc_bench_unstamp(pay, s->text, &pub, &seq, &sent) ||
                    pub >= (uint32_t)s->o->pubs)) {
        r->misrouted++;
        return;
    }
    uint64_t *nx = &c->next[pub];
    if (RC_LIKELY(seq == *nx)) {
        *nx = seq + 1;
    } else if (seq > *nx) {
        r->gaps += seq - *nx;
        *nx = seq + 1;
    } else if (seq + 1 == *nx) {
        r->dups++;
    } else {
        r->reorders++;
    }
    if (s->measuring)
        rc_hist_add(&r->hist, s->now > sent ? s->now - sent : 0);
}

static inline void rc_bsub_message(struct sub *s, struct sconn *c, const char *chan, size_t clen,
                                   const char *pay, size_t plen)
{
    if (RC_UNLIKELY(clen != c->chlen || memcmp(chan, c->chname, clen) != 0)) {
        s->res->deliveries++;
        s->res->misrouted++;
        return;
    }
    rc_bsub_payload(s, c, pay, plen);
}

static inline void rc_bsub_subscribed(struct sub *s, struct sconn *c)
{
    if (!c->subscribed) {
        c->subscribed = true;
        s->ready++;
        atomic_store_explicit(&rc_bench.subs_ready, s->ready, memory_order_release);
    }
}

/* ---- bench_sub_http.c: --proto sse and ws ---- */

/* Sets c->hdr and c->tail: the bytes around the payload of every delivery to c on channel
 * (or pattern) ch. */
void rc_bsub_http_prefix(struct sub *s, struct sconn *c, int ch);

/* Writes c's HTTP request (event stream or WebSocket upgrade) to cmd; returns its length. */
int rc_bsub_http_request(struct sub *s, struct sconn *c, int ch, char *cmd, size_t cap);

/* Parse an event stream / WebSocket frames from p..end, the response head first; return the
 * bytes consumed (the rest is an incomplete frame) or -1 on a protocol error. */
ssize_t rc_bsub_parse_sse(struct sub *s, struct sconn *c, const char *p0, const char *end);
ssize_t rc_bsub_parse_ws(struct sub *s, struct sconn *c, const char *p0, const char *end);

#endif
