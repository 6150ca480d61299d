/* bench_sub.c -- ringcast-bench subscribers: one thread, epoll, a push-frame-only parser.
 *
 * Every subscriber connection lives in this one thread so the bench costs one
 * core at most, and it must keep up with servers that deliver several million
 * messages a second. Hence: level-triggered epoll, 256 KiB reads into one
 * shared buffer, and a hand-written parser that recognises only what a
 * subscriber can receive -- RESP2 arrays of bulk strings and integers
 * (message, pmessage, subscribe confirmations), simple strings and errors, or
 * NATS MSG/PING/PONG/+OK/-ERR/INFO lines. A frame cut by the end of a read is
 * carried in a small per-connection buffer and put in front of the next read;
 * nothing is allocated per message.
 *
 * Over ringcastd's HTTP port (--proto sse|ws) the parsers are in
 * bench_sub_http.c; the state and the per-delivery checks they share are in
 * bench_sub.h.
 *
 * Ordering is checked per (subscriber, publisher) against the next expected
 * sequence number: a higher number counts the skipped ones as gaps, the one
 * just before the expected number is a duplicate, anything older a reorder.
 * Latency takes one clock reading per read() (the time those bytes reached
 * user space) rather than one per message; it is recorded only inside the
 * measured window.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench_sub.h"

static void conn_close(struct sub *s, struct sconn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* "<digits>\r\n" at p. Returns 1 and sets *v, *after; 0 if incomplete; -1 if malformed. */
static int parse_num(const char *p, const char *end, int64_t *v, const char **after)
{
    int64_t x = 0;
    bool neg = false;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    for (int i = 0; i < 19; i++, p++) {
        if (p >= end)
            return 0;
        unsigned d = (unsigned)(*p - '0');
        if (d > 9)
            break;
        x = x * 10 + d;
    }
    if (p + 1 >= end)
        return 0;
    if (p[0] != '\r' || p[1] != '\n')
        return -1;
    *v = neg ? -x : x;
    *after = p + 2;
    return 1;
}

/* Parses RESP frames from p..end; returns bytes consumed or -1 on a protocol error. */
static ssize_t parse_resp(struct sub *s, struct sconn *c, const char *p0, const char *end)
{
    const char *p = p0;
    while (p < end) {
        const char *q;
        int64_t n;
        if (RC_LIKELY((size_t)(end - p) > c->hdrlen && memcmp(p, c->hdr, c->hdrlen) == 0)) {
            int r = parse_num(p + c->hdrlen, end, &n, &q);
            if (r == 0)
                return p - p0;
            if (r < 0 || n < 0)
                return -1;
            if ((size_t)(end - q) < (size_t)n + 2)
                return p - p0;
            rc_bsub_payload(s, c, q, (size_t)n);
            p = q + n + 2;
            continue;
        }
        if (RC_LIKELY(*p == '*')) {
            int r = parse_num(p + 1, end, &n, &q);
            if (r <= 0)
                return r == 0 ? p - p0 : -1;
            if (n < 1 || n > 4)
                return -1;
            const char *ep[4];
            size_t el[4];
            int i;
            for (i = 0; i < n; i++) {
                if (q >= end)
                    break;
                int64_t len;
                const char *d;
                if (*q == ':') {
                    r = parse_num(q + 1, end, &len, &d);
                    if (r <= 0)
                        break;
                    ep[i] = q + 1;
                    el[i] = (size_t)(d - q - 3);
                    q = d;
                    continue;
                }
                if (*q != '$')
                    return -1;
                r = parse_num(q + 1, end, &len, &d);
                if (r <= 0)
                    break;
                if (len < 0)
                    return -1;
                if ((size_t)(end - d) < (size_t)len + 2)
                    break;
                ep[i] = d;
                el[i] = (size_t)len;
                q = d + len + 2;
            }
            if (i < n) {
                if (r < 0)
                    return -1;
                return p - p0; /* incomplete */
            }
            p = q;
            if (n == 3 && el[0] == 7 && memcmp(ep[0], "message", 7) == 0)
                rc_bsub_message(s, c, ep[1], el[1], ep[2], el[2]);
            else if (n == 4 && el[0] == 8 && memcmp(ep[0], "pmessage", 8) == 0)
                rc_bsub_message(s, c, ep[2], el[2], ep[3], el[3]);
            else if (n == 3 && ((el[0] == 9 && memcmp(ep[0], "subscribe", 9) == 0) ||
                                (el[0] == 10 && memcmp(ep[0], "psubscribe", 10) == 0)))
                rc_bsub_subscribed(s, c);
            continue;
        }
        /* +simple, -error, :int: one line */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return p - p0;
        if (*p == '-') {
            s->res->proto_errors++;
            char line[160];
            size_t ll = RC_MIN((size_t)(nl - p), sizeof(line) - 1);
            memcpy(line, p, ll);
            line[ll] = '\0';
            rc_bsub_err(s, "subscriber %d got an error: %s", c->idx, line);
        } else if (*p != '+' && *p != ':') {
            return -1;
        }
        p = nl + 1;
    }
    return p - p0;
}

/* Parses NATS server lines from p..end; returns bytes consumed or -1 on a protocol error. */
static ssize_t parse_nats(struct sub *s, struct sconn *c, const char *p0, const char *end)
{
    const char *p = p0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return p - p0;
        if (nl == p || nl[-1] != '\r')
            return -1;
        const char *le = nl - 1; /* the '\r' */
        if (RC_LIKELY((size_t)(le - p) > c->hdrlen && memcmp(p, c->hdr, c->hdrlen) == 0)) {
            size_t len = 0;
            const char *x = p + c->hdrlen;
            for (int i = 0; i < 10 && x < le; i++, x++) {
                unsigned d = (unsigned)(*x - '0');
                if (d > 9)
                    return -1;
                len = len * 10 + d;
            }
            if (x != le)
                return -1;
            const char *pay = nl + 1;
            if ((size_t)(end - pay) < len + 2)
                return p - p0;
            rc_bsub_payload(s, c, pay, len);
            p = pay + len + 2;
            continue;
        }
        if (le - p > 4 && memcmp(p, "MSG ", 4) == 0) {
            /* MSG <subject> <sid> [reply-to] <#bytes> */
            const char *subj = p + 4;
            const char *sp = memchr(subj, ' ', (size_t)(le - subj));
            if (!sp)
                return -1;
            const char *d = le;
            while (d > sp && d[-1] >= '0' && d[-1] <= '9')
                d--;
            if (d == le || d[-1] != ' ' || le - d > 10)
                return -1;
            size_t len = 0;
            for (const char *x = d; x < le; x++)
                len = len * 10 + (size_t)(*x - '0');
            const char *pay = nl + 1;
            if ((size_t)(end - pay) < len + 2)
                return p - p0;
            rc_bsub_message(s, c, subj, (size_t)(sp - subj), pay, len);
            p = pay + len + 2;
            continue;
        }
        size_t ll = (size_t)(le - p);
        if (ll == 4 && memcmp(p, "PONG", 4) == 0) {
            rc_bsub_subscribed(s, c);
        } else if (ll == 4 && memcmp(p, "PING", 4) == 0) {
            if (rc_bench_write_all(c->fd, "PONG\r\n", 6, 1000) < 0)
                return -1;
        } else if (ll >= 4 && memcmp(p, "-ERR", 4) == 0) {
            s->res->proto_errors++;
            char line[160];
            ll = RC_MIN(ll, sizeof(line) - 1);
            memcpy(line, p, ll);
            line[ll] = '\0';
            rc_bsub_err(s, "subscriber %d got an error: %s", c->idx, line);
        } else if (!(ll >= 3 && memcmp(p, "+OK", 3) == 0) &&
                   !(ll >= 4 && memcmp(p, "INFO", 4) == 0)) {
            return -1;
        }
        p = nl + 1;
    }
    return p - p0;
}

static void on_readable(struct sub *s, struct sconn *c)
{
    /* bounded: a connection gets at most 8 full reads per wakeup, so one
     * fast connection cannot starve the others */
    for (int round = 0; round < 8 && !c->dead; round++) {
        size_t k = c->carry_len;
        if (k)
            memcpy(s->buf, c->carry, k);
        ssize_t n = read(c->fd, s->buf + k, s->bufsize);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            s->res->closed++;
            rc_bsub_err(s, "subscriber %d: server closed the connection (%s)", c->idx,
                        n == 0 ? "EOF" : strerror(errno));
            conn_close(s, c);
            return;
        }
        s->now = rc_bench_now_ns();
        const char *end = s->buf + k + (size_t)n;
        ssize_t used;
        switch (s->o->proto) {
        case RC_BENCH_NATS: used = parse_nats(s, c, s->buf, end); break;
        case RC_BENCH_SSE: used = rc_bsub_parse_sse(s, c, s->buf, end); break;
        case RC_BENCH_WS: used = rc_bsub_parse_ws(s, c, s->buf, end); break;
        default: used = parse_resp(s, c, s->buf, end); break;
        }
        size_t left = used < 0 ? 0 : (size_t)(end - s->buf - used);
        if (used < 0 || left > s->carry_max) {
            s->res->proto_errors++;
            rc_bsub_err(s, "subscriber %d: unexpected bytes from the server%s", c->idx,
                        used < 0 ? "" : " (frame too large)");
            conn_close(s, c);
            return;
        }
        if (left > c->carry_cap) {
            c->carry_cap = RC_MAX(left, 256u);
            c->carry = rc_xrealloc(c->carry, c->carry_cap);
        }
        if (left)
            memcpy(c->carry, s->buf + used, left);
        c->carry_len = left;
        if ((size_t)n < s->bufsize)
            return;
    }
}

/* The bytes before (and, over HTTP, after) the payload of every delivery to c. */
static void set_prefix(struct sub *s, struct sconn *c, int ch)
{
    const struct rc_bench_opts *o = s->o;
    char pat[32];
    int hl = 0;
    snprintf(pat, sizeof(pat), "ch.%d.*", ch);
    switch (o->proto) {
    case RC_BENCH_NATS:
        hl = snprintf(c->hdr, sizeof(c->hdr), "MSG %s %d ", c->chname, c->idx + 1);
        break;
    case RC_BENCH_SSE:
    case RC_BENCH_WS: rc_bsub_http_prefix(s, c, ch); return;
    default:
        if (o->psubscribe)
            hl = snprintf(c->hdr, sizeof(c->hdr),
                          "*4\r\n$8\r\npmessage\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n$", strlen(pat), pat,
                          c->chlen, c->chname);
        else
            hl = snprintf(c->hdr, sizeof(c->hdr), "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n$",
                          c->chlen, c->chname);
        break;
    }
    c->hdrlen = (size_t)hl;
}

/* What c sends first: a subscription, or the HTTP request. Returns the length in cmd. */
static int first_request(struct sub *s, struct sconn *c, int ch, char *cmd, size_t cap)
{
    const struct rc_bench_opts *o = s->o;
    char pat[32];
    int pl = snprintf(pat, sizeof(pat), "ch.%d.*", ch);
    switch (o->proto) {
    case RC_BENCH_NATS:
        return snprintf(cmd, cap,
                        "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"rcbench\"}\r\n"
                        "SUB %s %d\r\nPING\r\n",
                        o->psubscribe ? pat : c->chname, c->idx + 1);
    case RC_BENCH_SSE:
    case RC_BENCH_WS: return rc_bsub_http_request(s, c, ch, cmd, cap);
    default:
        if (o->psubscribe)
            return snprintf(cmd, cap, "*2\r\n$10\r\nPSUBSCRIBE\r\n$%d\r\n%s\r\n", pl, pat);
        return snprintf(cmd, cap, "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", c->chlen, c->chname);
    }
}

static int setup(struct sub *s)
{
    const struct rc_bench_opts *o = s->o;
    char cmd[512];
    bool http = rc_bench_over_http(o);
    for (int i = 0; i < o->subs; i++) {
        if (atomic_load(&rc_bench.stop_sub))
            return -EINTR;
        struct sconn *c = &s->conns[i];
        c->idx = i;
        c->fd = -1;
        c->dead = true;
        c->in_head = http;
        uint32_t key = 0x9e3779b9u * (uint32_t)(i + 1); /* any key will do */
        memcpy(c->mask, &key, 4);
        int ch = i % o->channels;
        c->chname = s->chnames[ch];
        c->chlen = s->chlens[ch];
        set_prefix(s, c, ch);
        int fd = rc_bench_connect(o, http, 5000);
        if (fd < 0) {
            rc_bsub_err(s, "subscriber %d: connect failed: %s", i, strerror(-fd));
            return fd;
        }
        c->fd = fd;
        c->dead = false;
        int len = first_request(s, c, ch, cmd, sizeof(cmd));
        int r = rc_bench_write_all(fd, cmd, (size_t)len, 5000);
        if (r < 0) {
            rc_bsub_err(s, "subscriber %d: subscribe failed: %s", i, strerror(-r));
            return r;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            return -errno;
    }
    return 0;
}

void *rc_bench_sub_main(void *arg)
{
    struct rc_bench_sub_ctx *ctx = arg;
    const struct rc_bench_opts *o = ctx->o;
    struct sub s = {.o = o, .res = &ctx->res, .text = rc_bench_over_http(o)};
    s.bufsize = RC_MAX((size_t)RC_BENCH_READ_SIZE, 4 * ((size_t)o->size + 256));
    s.carry_max = (size_t)o->size + 4096;
    s.buf = rc_xmalloc(s.bufsize + s.carry_max);
    s.conns = rc_xcalloc((size_t)RC_MAX(o->subs, 1), sizeof(*s.conns));
    s.chnames = rc_xcalloc((size_t)o->channels, sizeof(*s.chnames));
    s.chlens = rc_xcalloc((size_t)o->channels, sizeof(*s.chlens));
    for (int ch = 0; ch < o->channels; ch++)
        s.chlens[ch] = rc_bench_channel_name(o, ch, s.chnames[ch]);
    uint64_t *next =
        rc_xcalloc((size_t)RC_MAX(o->subs, 1) * (size_t)RC_MAX(o->pubs, 1), sizeof(uint64_t));
    for (int i = 0; i < o->subs; i++) {
        s.conns[i].next = next + (size_t)i * (size_t)RC_MAX(o->pubs, 1);
        s.conns[i].fd = -1;
        s.conns[i].dead = true;
    }
    s.ep = epoll_create1(EPOLL_CLOEXEC);

    int r = s.ep < 0 ? -errno : setup(&s);
    if (r < 0) {
        atomic_store(&rc_bench.sub_failed, true);
    } else {
        struct epoll_event evs[512];
        /* bounded by stop_sub, which main sets after at most setup + warm-up +
         * duration + drain; each wait is at most 50 ms */
        while (!atomic_load_explicit(&rc_bench.stop_sub, memory_order_acquire)) {
            s.measuring = atomic_load_explicit(&rc_bench.measuring, memory_order_relaxed);
            int n = epoll_wait(s.ep, evs, (int)RC_ARRAY_LEN(evs), 50);
            if (n < 0 && errno != EINTR)
                break;
            for (int i = 0; i < n; i++)
                on_readable(&s, evs[i].data.ptr);
            atomic_store_explicit(&rc_bench.deliveries, s.res->deliveries, memory_order_relaxed);
            if (s.res->closed || s.res->proto_errors)
                atomic_store(&rc_bench.sub_failed, true);
        }
    }
    for (int i = 0; i < o->subs; i++) {
        conn_close(&s, &s.conns[i]);
        free(s.conns[i].carry);
    }
    if (s.ep >= 0)
        close(s.ep);
    atomic_store(&rc_bench.deliveries, s.res->deliveries);
    free(next);
    free(s.chlens);
    free(s.chnames);
    free(s.conns);
    free(s.buf);
    atomic_store(&rc_bench.sub_exited, true);
    return NULL;
}
