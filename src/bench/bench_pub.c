/* bench_pub.c -- ringcast-bench publishers: one thread, pipelined PUBLISH/PUB.
 *
 * All publisher connections share one thread and one epoll set. Each keeps at
 * most --pipeline messages unacknowledged: over RESP a message is acknowledged
 * by its integer reply (the receiver count, checked against the workload's
 * known count); NATS core has no per-message reply, so each burst of PUBs is
 * followed by a PING and acknowledged by the matching PONG. Messages are
 * built straight into the connection's output buffer from a per-channel
 * command prefix and a payload template, with one clock reading per burst
 * (every message of a burst leaves in the same write()).
 *
 * With --proto sse or ws the publishers are RESP publishers like any other
 * (only the subscribers change transport); the payload then carries the
 * text form of the header (bench.h).
 *
 * With --rate R each publisher follows its own schedule of R/P messages per
 * second from the moment publishing starts (a token bucket without a burst
 * cap beyond the pipeline bound); without it publishers refill the pipeline
 * as soon as replies arrive. After stop_pub nothing new is sent; the thread
 * flushes what is buffered and collects replies for at most 2 s.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"
#include "util.h"

struct pconn {
    int fd;
    uint32_t id;
    bool dead;
    bool want_out;
    uint64_t seq;   /* messages queued so far */
    uint64_t acked; /* messages acknowledged */
    char *out;
    size_t out_len, out_off, out_cap;
    char in[64]; /* partial reply line */
    size_t in_len;
    /* NATS: sizes of the bursts awaiting their PONG (ring) */
    uint32_t *burst;
    size_t burst_cap, burst_head, burst_n;
};

struct pub {
    const struct rc_bench_opts *o;
    struct rc_bench_pub_result *res;
    struct pconn *conns;
    int ep;
    char (*prefix)[64];
    size_t *prefix_len;
    int *receivers;
    char *payload;
    size_t msg_max;
    double rate_per_pub;
    uint64_t t0;
    char rbuf[65536];
};

static void set_err(struct pub *s, const char *fmt, unsigned a, const char *b)
{
    if (s->res->err[0] == '\0')
        snprintf(s->res->err, sizeof(s->res->err), fmt, a, b);
}

static void conn_close(struct pub *s, struct pconn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void set_out(struct pub *s, struct pconn *c, bool want)
{
    if (c->want_out == want || c->dead)
        return;
    c->want_out = want;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush(struct pub *s, struct pconn *c)
{
    while (!c->dead && c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            set_out(s, c, true);
            return;
        }
        s->res->closed++;
        set_err(s, "publisher %u: write failed: %s", c->id, n < 0 ? strerror(errno) : "EOF");
        conn_close(s, c);
        return;
    }
    c->out_off = c->out_len = 0;
    set_out(s, c, false);
}

/* Appends the messages due now (bounded by the pipeline) to c's output buffer. */
static void refill(struct pub *s, struct pconn *c, uint64_t now)
{
    const struct rc_bench_opts *o = s->o;
    if (c->dead)
        return;
    uint64_t inflight = c->seq - c->acked;
    if (inflight >= (uint64_t)o->pipeline)
        return;
    uint64_t n = (uint64_t)o->pipeline - inflight;
    if (s->rate_per_pub > 0) {
        double el = (double)(now - s->t0) / 1e9;
        uint64_t target = (uint64_t)(el * s->rate_per_pub) + 1;
        if (target <= c->seq)
            return;
        n = RC_MIN(n, target - c->seq);
    }
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    uint64_t published = 0, expected = 0;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t n_all = c->seq++;
        int ch = (int)((c->id + n_all) % (uint64_t)o->channels);
        /* messages of one publisher on one channel are every C-th: number them 0, 1, 2... */
        uint64_t seq = n_all / (uint64_t)o->channels;
        char *w = c->out + c->out_len;
        memcpy(w, s->prefix[ch], s->prefix_len[ch]);
        w += s->prefix_len[ch];
        memcpy(w, s->payload, (size_t)o->size);
        rc_bench_stamp(w, rc_bench_over_http(o), c->id, seq, now);
        w += o->size;
        *w++ = '\r';
        *w++ = '\n';
        c->out_len = (size_t)(w - c->out);
        published++;
        expected += (uint64_t)s->receivers[ch];
    }
    if (o->proto == RC_BENCH_NATS) {
        memcpy(c->out + c->out_len, "PING\r\n", 6);
        c->out_len += 6;
        c->burst[(c->burst_head + c->burst_n) % c->burst_cap] = (uint32_t)n;
        c->burst_n++;
    }
    s->res->published += published;
    s->res->expected += expected;
}

static void on_line(struct pub *s, struct pconn *c, const char *p, size_t len)
{
    const struct rc_bench_opts *o = s->o;
    if (o->proto != RC_BENCH_NATS && len > 0 && p[0] == ':') {
        int64_t v;
        if (!rc_parse_i64(p + 1, len - 1, &v))
            goto bad;
        int ch = (int)((c->id + c->acked) % (uint64_t)o->channels);
        if (v != s->receivers[ch])
            s->res->reply_mismatch++;
        c->acked++;
        s->res->acked++;
        return;
    }
    if (o->proto == RC_BENCH_NATS && len == 4 && memcmp(p, "PONG", 4) == 0) {
        if (c->burst_n == 0)
            goto bad;
        uint32_t b = c->burst[c->burst_head];
        c->burst_head = (c->burst_head + 1) % c->burst_cap;
        c->burst_n--;
        c->acked += b;
        s->res->acked += b;
        return;
    }
    if (o->proto == RC_BENCH_NATS && len == 4 && memcmp(p, "PING", 4) == 0) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        memcpy(c->out + c->out_len, "PONG\r\n", 6);
        c->out_len += 6;
        return;
    }
    if (len > 0 && p[0] == '+')
        return;
    if (o->proto == RC_BENCH_NATS && len >= 4 && memcmp(p, "INFO", 4) == 0)
        return;
bad:
    s->res->proto_errors++;
    char line[160];
    size_t ll = RC_MIN(len, sizeof(line) - 1);
    memcpy(line, p, ll);
    line[ll] = '\0';
    set_err(s, "publisher %u got: %s", c->id, line);
}

static void on_readable(struct pub *s, struct pconn *c)
{
    for (int round = 0; round < 4 && !c->dead; round++) {
        ssize_t n = read(c->fd, s->rbuf, sizeof(s->rbuf));
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            s->res->closed++;
            set_err(s, "publisher %u: server closed the connection (%s)", c->id,
                    n == 0 ? "EOF" : strerror(errno));
            conn_close(s, c);
            return;
        }
        const char *p = s->rbuf, *end = s->rbuf + n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t take = nl ? (size_t)(nl - p + 1) : (size_t)(end - p);
            /* lines longer than the carry (NATS INFO) keep only their start */
            size_t room = sizeof(c->in) - c->in_len;
            memcpy(c->in + c->in_len, p, RC_MIN(take, room));
            c->in_len += RC_MIN(take, room);
            p += take;
            if (!nl)
                break;
            size_t ll = c->in_len;
            if (c->in[ll - 1] == '\n')
                ll--;
            if (ll > 0 && c->in[ll - 1] == '\r')
                ll--;
            on_line(s, c, c->in, ll);
            c->in_len = 0;
        }
        if ((size_t)n < sizeof(s->rbuf))
            return;
    }
}

static int setup(struct pub *s)
{
    const struct rc_bench_opts *o = s->o;
    for (int i = 0; i < o->pubs; i++) {
        struct pconn *c = &s->conns[i];
        int fd = rc_bench_connect(o, false, 5000);
        if (fd < 0) {
            set_err(s, "publisher %u: connect failed: %s", (unsigned)i, strerror(-fd));
            return fd;
        }
        c->fd = fd;
        c->dead = false;
        if (o->proto == RC_BENCH_NATS) {
            static const char hello[] =
                "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"rcbench-pub\"}\r\n";
            int r = rc_bench_write_all(fd, hello, sizeof(hello) - 1, 5000);
            if (r < 0) {
                set_err(s, "publisher %u: CONNECT failed: %s", (unsigned)i, strerror(-r));
                return r;
            }
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            return -errno;
    }
    return 0;
}

static bool all_done(struct pub *s)
{
    for (int i = 0; i < s->o->pubs; i++) {
        struct pconn *c = &s->conns[i];
        if (!c->dead && (c->acked < c->seq || c->out_off < c->out_len))
            return false;
    }
    return true;
}

static void run(struct pub *s)
{
    const struct rc_bench_opts *o = s->o;
    struct epoll_event evs[256];
    /* wait for the go signal (main bounds this by its own setup deadline) */
    while (!atomic_load(&rc_bench.go)) {
        if (atomic_load(&rc_bench.stop_pub))
            return;
        int n = epoll_wait(s->ep, evs, (int)RC_ARRAY_LEN(evs), 1);
        for (int i = 0; i < n; i++)
            on_readable(s, evs[i].data.ptr);
    }
    s->t0 = rc_bench_now_ns();
    int timeout = s->rate_per_pub > 0 ? 1 : 50;
    uint64_t drain_deadline = 0;
    /* bounded: main sets stop_pub after warm-up + duration; the drain after
     * it is bounded by RC_BENCH_DRAIN_MS */
    for (;;) {
        bool stopping = atomic_load_explicit(&rc_bench.stop_pub, memory_order_acquire);
        uint64_t now = rc_bench_now_ns();
        if (stopping) {
            if (drain_deadline == 0)
                drain_deadline = now + (uint64_t)RC_BENCH_DRAIN_MS * 1000000u;
            if (all_done(s) || now >= drain_deadline)
                break;
        } else {
            for (int i = 0; i < o->pubs; i++)
                refill(s, &s->conns[i], now);
        }
        for (int i = 0; i < o->pubs; i++)
            if (!s->conns[i].want_out)
                flush(s, &s->conns[i]);
        atomic_store_explicit(&rc_bench.published, s->res->published, memory_order_relaxed);
        atomic_store_explicit(&rc_bench.expected, s->res->expected, memory_order_relaxed);
        int n = epoll_wait(s->ep, evs, (int)RC_ARRAY_LEN(evs), timeout);
        for (int i = 0; i < n; i++) {
            struct pconn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(s, c);
            if (evs[i].events & EPOLLOUT)
                flush(s, c);
        }
        if (s->res->closed || s->res->proto_errors)
            atomic_store(&rc_bench.pub_failed, true);
    }
}

void *rc_bench_pub_main(void *arg)
{
    struct rc_bench_pub_ctx *ctx = arg;
    const struct rc_bench_opts *o = ctx->o;
    struct pub *s = rc_xcalloc(1, sizeof(*s));
    s->o = o;
    s->res = &ctx->res;
    s->rate_per_pub = o->rate > 0 ? o->rate / o->pubs : 0;
    s->prefix = rc_xcalloc((size_t)o->channels, sizeof(*s->prefix));
    s->prefix_len = rc_xcalloc((size_t)o->channels, sizeof(*s->prefix_len));
    s->receivers = rc_xcalloc((size_t)o->channels, sizeof(*s->receivers));
    size_t pmax = 0;
    for (int ch = 0; ch < o->channels; ch++) {
        char name[32];
        size_t nl = rc_bench_channel_name(o, ch, name);
        int n;
        if (o->proto == RC_BENCH_NATS)
            n = snprintf(s->prefix[ch], 64, "PUB %s %d\r\n", name, o->size);
        else
            n = snprintf(s->prefix[ch], 64, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%d\r\n", nl,
                         name, o->size);
        s->prefix_len[ch] = (size_t)n;
        pmax = RC_MAX(pmax, (size_t)n);
        s->receivers[ch] = rc_bench_receivers(o, ch);
    }
    s->payload = rc_xmalloc((size_t)o->size);
    memset(s->payload, 'x', (size_t)o->size);
    s->msg_max = pmax + (size_t)o->size + 2;
    s->conns = rc_xcalloc((size_t)o->pubs, sizeof(*s->conns));
    for (int i = 0; i < o->pubs; i++) {
        struct pconn *c = &s->conns[i];
        c->fd = -1;
        c->dead = true;
        c->id = (uint32_t)i;
        /* pipeline messages plus PINGs/PONGs: the bound on what is ever buffered */
        c->out_cap = ((size_t)o->pipeline + 1) * s->msg_max + 4096;
        c->out = rc_xmalloc(c->out_cap);
        c->burst_cap = (size_t)o->pipeline + 1;
        c->burst = rc_xcalloc(c->burst_cap, sizeof(*c->burst));
    }
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    int r = s->ep < 0 ? -errno : setup(s);
    if (r < 0) {
        atomic_store(&rc_bench.pub_failed, true);
    } else {
        atomic_store(&rc_bench.pubs_ready, o->pubs);
        run(s);
    }
    atomic_store(&rc_bench.published, s->res->published);
    atomic_store(&rc_bench.expected, s->res->expected);
    for (int i = 0; i < o->pubs; i++) {
        conn_close(s, &s->conns[i]);
        free(s->conns[i].out);
        free(s->conns[i].burst);
    }
    if (s->ep >= 0)
        close(s->ep);
    free(s->conns);
    free(s->payload);
    free(s->receivers);
    free(s->prefix_len);
    free(s->prefix);
    free(s);
    atomic_store(&rc_bench.pub_exited, true);
    return NULL;
}
