/* udp.c -- UDP feed ingest: framing parser, sequence tracking, and the sources.
 *
 * Each `udp-source` is one socket (unicast, or bound to a port and joined to
 * a multicast group on a given interface) watched by the backend like a
 * client. When it is readable, recvmmsg() takes up to 64 datagrams at a time
 * into one preallocated buffer (64 x 64 KiB, shared by every source since
 * callbacks run one at a time on the loop thread; pages never written are
 * never resident). Each datagram is checked whole (rc_udp_parse: every length
 * is bounded by what is left, nothing is trusted) and then its messages go to
 * rc_engine_publish() exactly like a RESP PUBLISH, so they join the same tick:
 * frames are encoded once and handed to the kernel with the next batch.
 *
 * Sequence numbers: a datagram carries its sender's session id and the
 * sequence number of its first message. A tracker per source remembers the
 * last RC_UDP_WINDOW numbers it saw: a number seen before is a duplicate, a
 * jump forward leaves a gap (counted until a late copy fills it), and a new
 * session restarts the count. `udp-arbitrate a b` gives two sources one
 * shared tracker as well, which alone decides what is published: whichever
 * line delivers a message first wins, the other copy is a duplicate, and a
 * message lost on one line but carried by the other is not lost at all. The
 * per-line trackers still count each line's own gaps, which is what an
 * operator watching two feeds wants to see.
 *
 * A malformed datagram is dropped and counted; the log says why at most once
 * a second per source, with the number of drops it did not report.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "udp.h"
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "server.h"
#include "worker.h"

#define BATCH        64     /* datagrams per recvmmsg */
#define SLOT_BYTES   65536u /* a datagram never exceeds this (IPv4: 65507) */
#define ROUNDS       16     /* recvmmsg calls per wake-up before yielding */
#define LOG_EVERY_MS 1000
#define RCVBUF       (4 << 20) /* asked for; the kernel caps it at rmem_max */

/* ---- Configuration ---- */

static bool valid_name(const char *w)
{
    size_t n = strlen(w);

    if (n == 0 || n >= RC_UDP_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = w[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* "1.2.3.4:5", "[::1]:5" -> addr, port. */
static int split_hostport(const char *w, char *addr, int *port)
{
    const char *colon, *host = w;
    size_t hl;
    int64_t v;

    if (w[0] == '[') {
        const char *close = strchr(w, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        host = w + 1;
        hl = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(w, ':');
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - w);
        if (memchr(w, ':', hl))
            return -EINVAL; /* IPv6 needs brackets */
    }
    if (hl == 0 || hl >= RC_UDP_ADDR)
        return -EINVAL;
    memcpy(addr, host, hl);
    addr[hl] = '\0';
    if (!rc_parse_i64(colon + 1, strlen(colon + 1), &v) || v < 0 || v > 65535)
        return -EINVAL;
    *port = (int)v;
    return 0;
}

static int family_of(const char *addr, void *bin)
{
    if (inet_pton(AF_INET, addr, bin) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, addr, bin) == 1)
        return AF_INET6;
    return -1;
}

int rc_udp_source_parse(struct rc_udp_source_cfg *out, int argc, const char *const *argv, char *err,
                        size_t errlen)
{
    unsigned char bin[16], gbin[16];
    int fam;

    memset(out, 0, sizeof(*out));
    if (argc < 2 || argc % 2) {
        snprintf(err, errlen,
                 "usage: udp-source <name> <addr:port> [group <mcast-addr>] "
                 "[iface <ifname|addr>]");
        return -EINVAL;
    }
    if (!valid_name(argv[0])) {
        snprintf(err, errlen, "udp-source name must be 1-%d characters of [A-Za-z0-9_.-]",
                 RC_UDP_NAME - 1);
        return -EINVAL;
    }
    snprintf(out->name, sizeof(out->name), "%s", argv[0]);
    if (split_hostport(argv[1], out->addr, &out->port) < 0 ||
        (fam = family_of(out->addr, bin)) < 0) {
        snprintf(err, errlen,
                 "invalid udp-source address '%.64s' (expected ip:port or [ipv6]:port)", argv[1]);
        return -EINVAL;
    }
    for (int i = 2; i < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcasecmp(k, "group")) {
            int gf = family_of(v, gbin);
            bool mc = (gf == AF_INET && gbin[0] >= 224 && gbin[0] <= 239) ||
                      (gf == AF_INET6 && gbin[0] == 0xff);
            if (!mc || gf != fam || strlen(v) >= RC_UDP_ADDR) {
                snprintf(err, errlen,
                         "udp-source group '%.64s' is not a multicast address of the bind "
                         "address's family",
                         v);
                return -EINVAL;
            }
            snprintf(out->group, sizeof(out->group), "%s", v);
        } else if (!strcasecmp(k, "iface")) {
            if (!v[0] || strlen(v) >= RC_UDP_ADDR) {
                snprintf(err, errlen, "invalid udp-source iface '%.64s'", v);
                return -EINVAL;
            }
            snprintf(out->iface, sizeof(out->iface), "%s", v);
        } else {
            snprintf(err, errlen, "unknown udp-source option '%.32s' (expected group or iface)", k);
            return -EINVAL;
        }
    }
    if (out->iface[0] && !out->group[0]) {
        snprintf(err, errlen, "udp-source iface needs a multicast group");
        return -EINVAL;
    }
    return 0;
}

/* ---- Sources ---- */

struct udp_source {
    struct rc_server *s;
    struct rc_udp *u;
    const struct rc_udp_source_cfg *cfg; /* in s->cfg */
    int fd;
    int arb;                /* index into u->arbs, or -1 */
    char addr[80];          /* bound "ip:port" */
    struct rc_udp_seq line; /* this line's own sequence */
    uint64_t datagrams;
    uint64_t messages;
    uint64_t published;
    uint64_t malformed;
    uint64_t backlog_drops; /* messages dropped: their channel's owner worker was too far behind */
    uint64_t bytes;
    bool logged;
    uint64_t log_ms;
    uint64_t unlogged; /* malformed drops since the last log line */
    uint64_t drop_log_ms;
    uint64_t drop_unlogged; /* backlog drops since the last log line */
};

struct rc_udp {
    struct rc_server *s;
    int n;
    struct udp_source src[RC_MAX_UDP];
    int narb;
    struct rc_udp_seq arbs[RC_MAX_UDP];
    int arb_src[RC_MAX_UDP][2];
    char *bufs;
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage from[BATCH];
};

static void malformed(struct udp_source *src, const struct sockaddr_storage *from, const char *why)
{
    struct rc_server *s = src->u->s;
    uint64_t now = rc_now_ms();
    char addr[80];

    src->malformed++;
    if (src->logged && now - src->log_ms < LOG_EVERY_MS) {
        src->unlogged++;
        return;
    }
    rc_format_sockaddr(from, addr, sizeof(addr));
    if (src->unlogged)
        rc_log(&s->log, RC_LOG_WARNING,
               "UDP source '%s': dropped a malformed datagram from %s: %s (and %llu more "
               "since the last report)",
               src->cfg->name, addr, why, (unsigned long long)src->unlogged);
    else
        rc_log(&s->log, RC_LOG_WARNING, "UDP source '%s': dropped a malformed datagram from %s: %s",
               src->cfg->name, addr, why);
    src->logged = true;
    src->log_ms = now;
    src->unlogged = 0;
}

/* A message this source could not hand to its channel's owner worker,
 * which has RC_OWNER_BACKLOG posts waiting: a feed faster than that worker
 * fans out loses messages here, counted and logged, as it would in the
 * kernel's socket buffer behind a single slow loop, instead of growing the
 * worker's inbox without bound. */
static void backlog_drop(struct udp_source *src, const char *chan, size_t clen)
{
    struct rc_server *s = src->u->s;
    uint64_t now = rc_now_ms();

    src->backlog_drops++;
    if (src->drop_log_ms && now - src->drop_log_ms < LOG_EVERY_MS) {
        src->drop_unlogged++;
        return;
    }
    rc_log(&s->log, RC_LOG_WARNING,
           "UDP source '%s': dropped a message on '%.*s': the worker that owns the channel has "
           "%d posts waiting (%llu more dropped since the last report)",
           src->cfg->name, (int)RC_MIN(clen, 64), chan, RC_OWNER_BACKLOG,
           (unsigned long long)src->drop_unlogged);
    src->drop_log_ms = now;
    src->drop_unlogged = 0;
}

static void datagram(struct rc_server *s, struct udp_source *src, const char *p, size_t n,
                     int mflags, const struct sockaddr_storage *from)
{
    struct rc_udp_seq *arb = src->arb >= 0 ? &src->u->arbs[src->arb] : NULL;
    struct rc_udp_hdr h;
    struct rc_udp_msg m;
    const char *why = NULL;
    size_t pos = RC_UDP_HDR_LEN;
    bool line_ok, ok;
    uint64_t q;

    src->datagrams++;
    src->bytes += n;
    s->stats.bytes_in += n;
    if (mflags & MSG_TRUNC) {
        malformed(src, from, "larger than the receive buffer");
        return;
    }
    if (rc_udp_parse(p, n, &h, &why) < 0) {
        malformed(src, from, why);
        return;
    }
    line_ok = rc_udp_seq_session(&src->line, h.session);
    ok = arb ? rc_udp_seq_session(arb, h.session) : line_ok;
    if (!ok)
        return;
    if (h.count == 0) {
        if (line_ok)
            rc_udp_seq_heartbeat(&src->line, h.seq);
        if (arb)
            rc_udp_seq_heartbeat(arb, h.seq);
        return;
    }
    for (q = h.seq; rc_udp_next(p, n, &pos, &m); q++) {
        bool fresh = line_ok && rc_udp_seq_accept(&src->line, q);
        if (arb)
            fresh = rc_udp_seq_accept(arb, q);
        src->messages++;
        if (fresh && RC_UNLIKELY(s->wk != NULL) && rc_worker_backlogged(s, m.chan, m.clen)) {
            backlog_drop(src, m.chan, m.clen);
        } else if (fresh) {
            rc_route_publish(s, NULL, false, m.chan, m.clen, m.payload, m.len);
            rc_upstream_forward(s, m.chan, m.clen, m.payload, m.len);
            src->published++;
        }
    }
}

/* The backend's callback: drains the socket in recvmmsg batches. */
static bool on_readable(void *arg)
{
    struct udp_source *src = arg;
    struct rc_udp *u = src->u;
    struct rc_server *s = u->s;

    for (int round = 0; round < ROUNDS; round++) {
        int r;

        for (int i = 0; i < BATCH; i++) {
            u->mm[i].msg_hdr.msg_name = &u->from[i];
            u->mm[i].msg_hdr.msg_namelen = sizeof(u->from[i]);
            u->mm[i].msg_hdr.msg_iov = &u->iov[i];
            u->mm[i].msg_hdr.msg_iovlen = 1;
            u->mm[i].msg_hdr.msg_control = NULL;
            u->mm[i].msg_hdr.msg_controllen = 0;
            u->mm[i].msg_hdr.msg_flags = 0;
            u->mm[i].msg_len = 0;
        }
        r = recvmmsg(src->fd, u->mm, BATCH, MSG_DONTWAIT, NULL);
        s->io.stats.sys[RC_SYS_RECVMMSG]++;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                rc_log(&s->log, RC_LOG_WARNING, "UDP source '%s': recvmmsg: %s", src->cfg->name,
                       strerror(errno));
            return false;
        }
        for (int i = 0; i < r; i++)
            datagram(s, src, u->bufs + (size_t)i * SLOT_BYTES, u->mm[i].msg_len,
                     u->mm[i].msg_hdr.msg_flags, &u->from[i]);
        if (r < BATCH)
            return false; /* MSG_DONTWAIT stopped short: the socket is drained */
    }
    return true;
}

static int join_group(struct rc_server *s, int fd, int fam, const struct rc_udp_source_cfg *c)
{
    int r;

    s->io.stats.sys[RC_SYS_SETSOCKOPT]++;
    if (fam == AF_INET) {
        struct ip_mreqn mr;
        int zero = 0;

        memset(&mr, 0, sizeof(mr));
        inet_pton(AF_INET, c->group, &mr.imr_multiaddr);
        if (c->iface[0] && inet_pton(AF_INET, c->iface, &mr.imr_address) != 1) {
            mr.imr_ifindex = (int)if_nametoindex(c->iface);
            if (!mr.imr_ifindex)
                return -ENODEV;
        }
        r = setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr));
        if (r == 0) {
            /* Only the groups this socket joined, not every group any socket
             * on the host joined on this port (Linux's default). */
            s->io.stats.sys[RC_SYS_SETSOCKOPT]++;
            setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero));
        }
    } else {
        struct ipv6_mreq mr;

        memset(&mr, 0, sizeof(mr));
        inet_pton(AF_INET6, c->group, &mr.ipv6mr_multiaddr);
        if (c->iface[0]) {
            mr.ipv6mr_interface = if_nametoindex(c->iface);
            if (!mr.ipv6mr_interface)
                return -ENODEV;
        }
        r = setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof(mr));
    }
    return r < 0 ? -errno : 0;
}

static int open_source(struct rc_server *s, struct udp_source *src)
{
    const struct rc_udp_source_cfg *c = src->cfg;
    struct sockaddr_storage ss;
    socklen_t slen;
    int fd, fam, one = 1, rcvbuf = RCVBUF, err;
    const char *step = "socket";

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, c->addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        fam = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)c->port);
        slen = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, c->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        fam = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)c->port);
        slen = sizeof(struct sockaddr_in6);
    } else {
        return -EINVAL; /* refused by the config parser already */
    }
    ss.ss_family = (sa_family_t)fam;
    fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    s->io.stats.sys[RC_SYS_OTHER]++;
    if (fd < 0)
        goto fail;
    s->io.stats.sys[RC_SYS_SETSOCKOPT] += 2;
    /* Several receivers of one group on a host share its port. */
    if (c->group[0])
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    step = "bind";
    s->io.stats.sys[RC_SYS_OTHER]++;
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0)
        goto fail;
    if (c->group[0]) {
        step = "join group";
        err = join_group(s, fd, fam, c);
        if (err) {
            errno = -err;
            goto fail;
        }
    }
    slen = sizeof(ss);
    s->io.stats.sys[RC_SYS_OTHER]++;
    getsockname(fd, (struct sockaddr *)&ss, &slen);
    rc_format_sockaddr(&ss, src->addr, sizeof(src->addr));
    step = "watch";
    err = s->io.be->watch(&s->io, fd, on_readable, src);
    if (err) {
        errno = -err;
        goto fail;
    }
    src->fd = fd;
    if (c->group[0])
        rc_log(&s->log, RC_LOG_NOTICE, "UDP source '%s' on %s, group %s%s%s", c->name, src->addr,
               c->group, c->iface[0] ? " on " : "", c->iface);
    else
        rc_log(&s->log, RC_LOG_NOTICE, "UDP source '%s' on %s", c->name, src->addr);
    return 0;

fail:
    err = -errno;
    rc_log(&s->log, RC_LOG_WARNING, "Could not open UDP source '%s' %s:%d: %s: %s", c->name,
           c->addr, c->port, step, strerror(-err));
    if (fd >= 0) {
        close(fd);
        s->io.stats.sys[RC_SYS_CLOSE]++;
    }
    return err;
}

static int find_source(struct rc_udp *u, const char *name)
{
    for (int i = 0; i < u->n; i++)
        if (!strcmp(u->src[i].cfg->name, name))
            return i;
    return -1;
}

int rc_udp_start(struct rc_server *s)
{
    struct rc_udp *u;
    int err;

    if (s->cfg.nudp == 0) {
        if (s->cfg.nudp_arb) {
            rc_log(&s->log, RC_LOG_WARNING,
                   "udp-arbitrate names sources, but no udp-source is set");
            return -EINVAL;
        }
        return 0;
    }
    u = rc_xcalloc(1, sizeof(*u));
    s->udp = u;
    u->s = s;
    for (int i = 0; i < s->cfg.nudp; i++) {
        struct udp_source *src = &u->src[i];
        src->s = s;
        src->u = u;
        src->cfg = &s->cfg.udp[i];
        src->fd = -1;
        src->arb = -1;
    }
    u->n = s->cfg.nudp;
    for (int k = 0; k < s->cfg.nudp_arb; k++) {
        for (int j = 0; j < 2; j++) {
            int i = find_source(u, s->cfg.udp_arb[k][j]);
            if (i < 0 || u->src[i].arb >= 0) {
                rc_log(&s->log, RC_LOG_WARNING, "udp-arbitrate: %s '%s'",
                       i < 0 ? "no udp-source named" : "already arbitrated:", s->cfg.udp_arb[k][j]);
                return -EINVAL;
            }
            u->src[i].arb = k;
            u->arb_src[k][j] = i;
        }
    }
    u->narb = s->cfg.nudp_arb;
    u->bufs = rc_xmalloc((size_t)BATCH * SLOT_BYTES);
    for (int i = 0; i < BATCH; i++) {
        u->iov[i].iov_base = u->bufs + (size_t)i * SLOT_BYTES;
        u->iov[i].iov_len = SLOT_BYTES;
    }
    for (int i = 0; i < u->n; i++) {
        err = open_source(s, &u->src[i]);
        if (err)
            return err;
    }
    return 0;
}

void rc_udp_free(struct rc_server *s)
{
    struct rc_udp *u = s->udp;

    if (!u)
        return;
    for (int i = 0; i < u->n; i++) {
        if (u->src[i].fd < 0)
            continue;
        if (s->io.be && s->io.be_state)
            s->io.be->unwatch(&s->io, u->src[i].fd);
        close(u->src[i].fd);
        s->io.stats.sys[RC_SYS_CLOSE]++;
    }
    free(u->bufs);
    free(u);
    s->udp = NULL;
}

const char *rc_udp_source_addr(const struct rc_server *s, int i)
{
    if (!s->udp || i < 0 || i >= s->udp->n || s->udp->src[i].fd < 0)
        return NULL;
    return s->udp->src[i].addr;
}

int rc_udp_nsources(const struct rc_server *s)
{
    return s->udp ? s->udp->n : 0;
}

bool rc_udp_source_stats(const struct rc_server *s, int i, struct rc_udp_source_stats *out)
{
    const struct udp_source *src;

    if (!s->udp || i < 0 || i >= s->udp->n)
        return false;
    src = &s->udp->src[i];
    *out = (struct rc_udp_source_stats){
        .name = src->cfg->name,
        .datagrams = src->datagrams,
        .bytes = src->bytes,
        .messages = src->messages,
        .published = src->published,
        .malformed = src->malformed,
        .backlog_drops = src->backlog_drops,
        .gaps = src->line.gaps,
        .duplicates = src->line.duplicates,
        .reordered = src->line.reordered,
    };
    return true;
}

void rc_udp_info(struct rc_server *s, struct rc_buf *b)
{
    struct rc_udp *u = s->udp;
    int n = u ? u->n : 0;

    rc_buf_appendf(b, "# Sources\r\nudp_sources:%d\r\nudp_arbitrated_pairs:%d\r\n", n,
                   u ? u->narb : 0);
    for (int i = 0; i < n; i++) {
        const struct udp_source *src = &u->src[i];
        const struct rc_udp_seq *t = &src->line;
        rc_buf_appendf(b,
                       "udp_source%d:name=%s,addr=%s,group=%s,datagrams=%llu,bytes=%llu,"
                       "messages=%llu,published=%llu,malformed=%llu,backlog_drops=%llu,gaps=%llu,"
                       "duplicates=%llu,reordered=%llu,resets=%llu,stale=%llu,next_seq=%llu\r\n",
                       i, src->cfg->name, src->addr, src->cfg->group,
                       (unsigned long long)src->datagrams, (unsigned long long)src->bytes,
                       (unsigned long long)src->messages, (unsigned long long)src->published,
                       (unsigned long long)src->malformed, (unsigned long long)src->backlog_drops,
                       (unsigned long long)t->gaps, (unsigned long long)t->duplicates,
                       (unsigned long long)t->reordered, (unsigned long long)t->resets,
                       (unsigned long long)t->stale, (unsigned long long)t->next);
    }
    for (int k = 0; u && k < u->narb; k++) {
        const struct rc_udp_seq *t = &u->arbs[k];
        const struct udp_source *a = &u->src[u->arb_src[k][0]], *c = &u->src[u->arb_src[k][1]];
        rc_buf_appendf(b,
                       "udp_arbitrate%d:sources=%s|%s,published=%llu,gaps=%llu,duplicates=%llu,"
                       "reordered=%llu,resets=%llu,next_seq=%llu\r\n",
                       k, a->cfg->name, c->cfg->name,
                       (unsigned long long)a->published + (unsigned long long)c->published,
                       (unsigned long long)t->gaps, (unsigned long long)t->duplicates,
                       (unsigned long long)t->reordered, (unsigned long long)t->resets,
                       (unsigned long long)t->next);
    }
    rc_buf_appendf(b, "\r\n");
}
