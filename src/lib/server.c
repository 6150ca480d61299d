/* server.c -- server life cycle, connections and the main loop.
 *
 * The server owns the configuration, the engine tables and the client list;
 * the backend owns the sockets. Input from a backend is parsed in place
 * (no copy when a read holds whole requests) and executed at once; PUBLISH
 * appends references to shared frames to every subscriber's queue, replies go
 * to the replying client's queue, and each touched connection lands on the
 * dirty list. When the backend next polls, it hands the whole dirty list to
 * the kernel in one batch -- that batch is the "tick" of the design.
 *
 * Closing is two-phase so that a backend with sends in flight (io_uring)
 * never frees memory the kernel may still read: rc_conn_unlink() detaches a
 * connection from everything the server knows (it can no longer receive
 * messages), and rc_conn_free() is called by the backend once the kernel is
 * done with it.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "mdata.h"
#include "udp.h"

const char *const rc_sys_names[RC_SYS__COUNT] = {
    "io_uring_enter", "epoll_wait", "epoll_ctl", "write",      "writev", "sendmsg",
    "read",           "accept",     "close",     "setsockopt", "other",  "recvmmsg",
};

/* ---- Server life ---- */

static void copy_config(struct rc_config *dst, const struct rc_config *src)
{
    *dst = *src;
    for (int i = 0; i < src->nbind; i++)
        dst->bind[i] = rc_xstrdup(src->bind[i]);
    dst->requirepass = src->requirepass ? rc_xstrdup(src->requirepass) : NULL;
    dst->logfile = src->logfile ? rc_xstrdup(src->logfile) : NULL;
    rc_config_dup_rules(dst);
}

/* Frames above a quarter slab get a slab of their own, freed when the last
 * send completes. With glibc's default dynamic thresholds a stream of
 * 100 KB messages made it shrink and regrow the heap with brk on nearly
 * every message (27% of the uring backend's CPU in BENCHMARKS.md, "Problems
 * found"): keep freed memory up to a bound and serve large blocks from it. */
static void tune_malloc(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

struct rc_server *rc_server_new(const struct rc_config *cfg)
{
    struct rc_server *s = rc_xcalloc(1, sizeof(*s));
    unsigned char rnd[20];

    tune_malloc();
    copy_config(&s->cfg, cfg);
    rc_pubsub_init(s);
    rc_mdata_init(s);
    rc_arena_init(&s->frames);
    rc_arena_init(&s->replies);
    s->next_id = 1;
    s->start_ms = rc_now_ms();
    s->start_wall_us = rc_wall_us();
    s->last_cron_ms = s->start_ms;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = rc_wall_us() ^ (uint64_t)getpid();
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)i;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(s->run_id + 2 * i, 3, "%02x", rnd[i]);
    for (int i = 0; i < RC_MAX_BIND; i++)
        s->listen_fds[i] = -1;
    rc_log_level = s->cfg.loglevel;
    return s;
}

static int listen_one(struct rc_server *s, const char *addr, int port)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    int one = 1, fd, family;

    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        family = a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, addr, &a6->sin6_addr) != 1)
            goto bad_addr;
        slen = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        family = a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, addr, &a4->sin_addr) != 1)
            goto bad_addr;
        slen = sizeof(*a4);
    }
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = errno;
        rc_log(RC_LOG_WARNING, "Could not create server TCP listening socket %s:%d: socket: %s",
               addr, port, strerror(err));
        return -err;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* Accepted sockets inherit TCP_NODELAY from the listener. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, s->cfg.tcp_backlog) < 0) {
        int err = errno;
        rc_log(RC_LOG_WARNING, "Could not create server TCP listening socket %s:%d: bind: %s", addr,
               port, strerror(err));
        close(fd);
        return -err;
    }
    return fd;

bad_addr:
    rc_log(RC_LOG_WARNING, "Could not create server TCP listening socket %s:%d: invalid address",
           addr, port);
    return -EINVAL;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int pick_backend(struct rc_server *s)
{
    const struct rc_backend_ops *be;
    int err;

    switch (s->cfg.io) {
    case RC_IO_NAIVE: be = &rc_backend_naive; break;
    case RC_IO_EPOLL: be = &rc_backend_epoll; break;
    default: be = &rc_backend_uring; break;
    }
    err = be->init(s);
    if (err == 0) {
        s->be = be;
        return 0;
    }
    if (be != &rc_backend_uring) {
        rc_log(RC_LOG_WARNING, "Could not start the %s backend: %s", be->name, strerror(-err));
        return err;
    }
    rc_log(RC_LOG_WARNING, "io_uring unavailable (%s), falling back to the epoll backend",
           strerror(-err));
    err = rc_backend_epoll.init(s);
    if (err) {
        rc_log(RC_LOG_WARNING, "Could not start the epoll backend: %s", strerror(-err));
        return err;
    }
    s->be = &rc_backend_epoll;
    return 0;
}

int rc_server_start(struct rc_server *s)
{
    int port = s->cfg.port, err;

    for (int i = 0; i < s->cfg.nbind; i++) {
        int fd = listen_one(s, s->cfg.bind[i], port);
        if (fd < 0) {
            err = fd;
            goto fail;
        }
        s->listen_fds[s->nlisten++] = fd;
        /* With port 0 every address shares the port the first one got. */
        if (port == 0)
            port = bound_port(fd);
    }
    s->port = port;
    err = pick_backend(s);
    if (err)
        goto fail;
    for (int i = 0; i < s->nlisten; i++) {
        err = s->be->listen(s, s->listen_fds[i]);
        if (err) {
            rc_log(RC_LOG_WARNING, "Could not listen with the %s backend: %s", s->be->name,
                   strerror(-err));
            goto fail;
        }
    }
    /* The backend owns the listeners now; rc_server_free() closes them. */
    return rc_udp_start(s);

fail:
    for (int i = 0; i < s->nlisten; i++)
        close(s->listen_fds[i]);
    s->nlisten = 0;
    return err;
}

void rc_server_request_stop(struct rc_server *s)
{
    s->stop_requested = 1;
}

static bool all_flushed(struct rc_server *s)
{
    for (struct rc_conn *c = s->clients_head; c; c = c->next)
        if (!rc_queue_empty(&c->out))
            return false;
    return true;
}

int rc_server_run(struct rc_server *s)
{
    for (;;) {
        s->be->poll(s, s->stopping ? 10 : 100);
        uint64_t now = rc_now_ms();
        if (now - s->last_cron_ms >= 100) {
            s->last_cron_ms = now;
            rc_server_cron(s);
        }
        if (s->stop_requested && !s->stopping) {
            s->stopping = true;
            s->stop_deadline_ms = now + s->cfg.shutdown_timeout * 1000;
            rc_log(RC_LOG_WARNING, "Received signal, scheduling shutdown...");
            s->be->unlisten(s);
            s->nlisten = 0;
        }
        if (s->stopping) {
            if (all_flushed(s))
                break;
            if (now >= s->stop_deadline_ms) {
                rc_log(RC_LOG_WARNING, "Shutdown deadline reached with output still queued");
                break;
            }
        }
    }
    rc_log(RC_LOG_WARNING, "ringcastd is now ready to exit, bye bye...");
    return 0;
}

void rc_server_free(struct rc_server *s)
{
    if (!s)
        return;
    rc_udp_free(s);
    /* Listening sockets belong to the backend once it has them. */
    if (s->be)
        s->be->destroy(s);
    else
        for (int i = 0; i < s->nlisten; i++)
            close(s->listen_fds[i]);
    /* The backend tore every connection down; anything left was never
     * handed to a backend (start failed). */
    while (s->clients_head) {
        struct rc_conn *c = s->clients_head;
        rc_conn_unlink(s, c, "server stopped");
        if (c->fd >= 0)
            close(c->fd);
        c->out.inflight = 0;
        rc_conn_free(s, c);
    }
    rc_mdata_free(s);
    rc_pubsub_free(s);
    rc_arena_free(&s->frames);
    rc_arena_free(&s->replies);
    rc_buf_free(&s->rbuf);
    rc_config_free(&s->cfg);
    free(s->config_file);
    free(s->executable);
    free(s);
    rc_slab_cache_clear();
}

/* ---- Connections ---- */

static void format_addr(const struct sockaddr_storage *ss, char *dst, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    }
    snprintf(dst, len, "%s:%d", ip, port);
}

/* Loopback peers (and non-IP sockets) count as local for protected mode. */
static bool is_local(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127;
    }
    return true;
}

/* Redis 7.0's protected-mode refusal, word for word (typo included). */
static const char protected_msg[] =
    "DENIED Redis is running in protected mode because protected mode is enabled and no password "
    "is set for the default user. In this mode connections are only accepted from the loopback "
    "interface. If you want to connect from external computers to Redis you may adopt one of the "
    "following solutions: 1) Just disable protected mode sending the command 'CONFIG SET "
    "protected-mode no' from the loopback interface by connecting to Redis from the same host "
    "the server is running, however MAKE SURE Redis is not publicly accessible from internet if "
    "you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just "
    "disable the protected mode by editing the Redis configuration file, and setting the "
    "protected mode option to 'no', and then restarting the server. 3) If you started the server "
    "manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an "
    "authentication password for the default user. NOTE: You only need to do one of the above "
    "things in order for the server to start accepting connections from the outside.";

struct rc_conn *rc_conn_accepted(struct rc_server *s, int fd)
{
    bool local;
    struct rc_conn *c = rc_xcalloc(1, sizeof(*c));
    struct rc_resp_limits lim;
    struct sockaddr_storage ss;
    socklen_t sl;

    c->fd = fd;
    c->id = s->next_id++;
    c->proto = 2;
    c->ctime_ms = c->last_ms = rc_now_ms();
    c->last_cmd = "NULL";
    rc_queue_init(&c->out, s->be != &rc_backend_naive);
    rc_resp_limits_default(&lim);
    lim.max_bulk = s->cfg.proto_max_bulk_len;
    lim.max_multibulk = s->cfg.proto_max_multibulk_len;
    rc_resp_parser_init(&c->parser, &lim);
    if (!s->cfg.requirepass)
        c->flags |= RC_CONN_AUTHED;

    sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    getpeername(fd, (struct sockaddr *)&ss, &sl);
    format_addr(&ss, c->addr, sizeof(c->addr));
    local = is_local(&ss);
    sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    format_addr(&ss, c->laddr, sizeof(c->laddr));
    s->stats.sys[RC_SYS_OTHER] += 2;
    if (s->cfg.so_sndbuf) {
        int v = (int)s->cfg.so_sndbuf;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
        s->stats.sys[RC_SYS_SETSOCKOPT]++;
    }

    /* Client list, in creation order. */
    c->prev = s->clients_tail;
    if (s->clients_tail)
        s->clients_tail->next = c;
    else
        s->clients_head = c;
    s->clients_tail = c;
    s->nclients++;
    s->stats.conns_received++;

    if (s->cfg.protected_mode && !s->cfg.requirepass && !local) {
        rc_resp_error(&s->rbuf, protected_msg);
        rc_conn_flush_reply(s, c);
        c->flags |= RC_CONN_CLOSE_AFTER_REPLY;
        s->stats.conns_rejected++;
        rc_log(RC_LOG_WARNING, "Refused non-loopback client %s: protected mode, no password set",
               c->addr);
    } else if (s->nclients > s->cfg.maxclients) {
        rc_resp_error(&s->rbuf, "ERR max number of clients reached");
        rc_conn_flush_reply(s, c);
        c->flags |= RC_CONN_CLOSE_AFTER_REPLY;
        s->stats.conns_rejected++;
        rc_log(RC_LOG_VERBOSE, "Rejected client id=%llu addr=%s: max number of clients reached",
               (unsigned long long)c->id, c->addr);
    } else {
        rc_log(RC_LOG_VERBOSE, "Accepted %s (id=%llu)", c->addr, (unsigned long long)c->id);
    }
    return c;
}

static void query_limit_exceeded(struct rc_server *s, struct rc_conn *c, size_t pending)
{
    rc_log(RC_LOG_WARNING,
           "Closing client that reached max query buffer length: id=%llu addr=%s qbuf=%zu",
           (unsigned long long)c->id, c->addr, pending);
    rc_conn_close_asap(s, c, "query buffer limit");
}

/* Parses and runs every complete request in buf[0..len); returns the bytes used. */
static size_t process(struct rc_server *s, struct rc_conn *c, const char *buf, size_t len)
{
    size_t pos = 0;

    while (pos < len && !(c->flags & (RC_CONN_CLOSE_ASAP | RC_CONN_CLOSE_AFTER_REPLY))) {
        size_t used = 0;
        int r = rc_resp_parse(&c->parser, buf + pos, len - pos, &used);
        if (r == 0)
            break;
        if (r < 0) {
            s->stats.proto_errors++;
            rc_log(RC_LOG_VERBOSE, "Protocol error (%s) from client: id=%llu addr=%s",
                   c->parser.err, (unsigned long long)c->id, c->addr);
            rc_resp_error(&s->rbuf, c->parser.err);
            rc_conn_flush_reply(s, c);
            c->flags |= RC_CONN_CLOSE_AFTER_REPLY;
            rc_conn_mark_dirty(s, c);
            pos = len;
            break;
        }
        pos += used;
        if (c->parser.argc > 0) {
            struct rc_req req = {c->parser.argc, c->parser.argv, c->parser.argvlen};
            rc_cmd_execute(s, c, &req);
        }
    }
    return pos;
}

void rc_conn_input(struct rc_server *s, struct rc_conn *c, const char *buf, size_t n)
{
    if (c->flags & (RC_CONN_CLOSE_ASAP | RC_CONN_CLOSE_AFTER_REPLY | RC_CONN_UNLINKED))
        return;
    /* Shutting down: run no new requests, so that a steady publisher cannot
     * keep the queues from draining until shutdown-timeout cuts off
     * messages whose PUBLISH was already acknowledged. */
    if (s->stopping)
        return;
    s->stats.bytes_in += n;
    c->last_ms = rc_now_ms();
    if (c->qbuf.len == 0) {
        /* Common case: parse straight from the backend's buffer. */
        size_t used = process(s, c, buf, n);
        if (used < n && !(c->flags & RC_CONN_CLOSE_ASAP))
            rc_buf_append(&c->qbuf, buf + used, n - used);
    } else {
        rc_buf_append(&c->qbuf, buf, n);
        size_t used = process(s, c, c->qbuf.p, c->qbuf.len);
        rc_buf_consume(&c->qbuf, used);
    }
    if (c->qbuf.len > s->cfg.client_query_buffer_limit)
        query_limit_exceeded(s, c, c->qbuf.len);
    else if (c->qbuf.len == 0 && c->qbuf.cap > 4 * 1024 * 1024)
        rc_buf_free(&c->qbuf); /* give back the memory of a very large request */
}

void rc_conn_sent(struct rc_server *s, struct rc_conn *c, size_t n)
{
    rc_queue_consume(&c->out, n);
    s->stats.bytes_out += n;
    s->stats.sends++;
    if (RC_UNLIKELY(c->md != NULL))
        rc_mdata_conn_drained(s, c);
    if (c->soft_since_ms && c->out.bytes < s->cfg.obuf_pubsub.soft)
        c->soft_since_ms = 0;
}

void rc_conn_mark_dirty(struct rc_server *s, struct rc_conn *c)
{
    if (c->flags & RC_CONN_DIRTY)
        return;
    c->flags |= RC_CONN_DIRTY;
    c->dnext = NULL;
    c->dprev = s->dirty_tail;
    if (s->dirty_tail)
        s->dirty_tail->dnext = c;
    else
        s->dirty_head = c;
    s->dirty_tail = c;
}

static void dirty_remove(struct rc_server *s, struct rc_conn *c)
{
    if (!(c->flags & RC_CONN_DIRTY))
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        s->dirty_head = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        s->dirty_tail = c->dprev;
    c->dprev = c->dnext = NULL;
    c->flags &= ~RC_CONN_DIRTY;
}

void rc_server_unmark_dirty(struct rc_server *s, struct rc_conn *c)
{
    dirty_remove(s, c);
}

struct rc_conn *rc_server_pop_dirty(struct rc_server *s)
{
    struct rc_conn *c = s->dirty_head;
    if (c)
        dirty_remove(s, c);
    return c;
}

void rc_conn_unlink(struct rc_server *s, struct rc_conn *c, const char *reason)
{
    if (c->flags & RC_CONN_UNLINKED)
        return;
    c->flags |= RC_CONN_UNLINKED;
    rc_log(RC_LOG_VERBOSE, "Client closed connection id=%llu addr=%s (%s)",
           (unsigned long long)c->id, c->addr, reason ? reason : "closed");
    rc_pubsub_unsubscribe_all(s, c);
    dirty_remove(s, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->clients_tail = c->prev;
    c->prev = c->next = NULL;
    s->nclients--;
    rc_queue_drop_unsent(&c->out);
    rc_mdata_conn_free(s, c);
}

void rc_conn_free(struct rc_server *s, struct rc_conn *c)
{
    assert(c->flags & RC_CONN_UNLINKED);
    rc_mdata_conn_free(s, c);
    rc_queue_free(&c->out);
    rc_buf_free(&c->qbuf);
    rc_resp_parser_free(&c->parser);
    rc_dict_free(c->channels);
    rc_dict_free(c->patterns);
    rc_dict_free(c->shard_channels);
    free(c->name);
    free(c->lib_name);
    free(c->lib_ver);
    free(c);
}

void rc_conn_close_asap(struct rc_server *s, struct rc_conn *c, const char *why)
{
    if (c->flags & RC_CONN_CLOSE_ASAP)
        return;
    c->flags |= RC_CONN_CLOSE_ASAP;
    /* Stop it receiving anything more right now; the backend closes it. */
    rc_pubsub_unsubscribe_all(s, c);
    rc_queue_drop_unsent(&c->out);
    rc_mdata_conn_free(s, c);
    rc_conn_mark_dirty(s, c);
}

/* ---- Output ---- */

static bool is_pubsub(const struct rc_conn *c)
{
    return (c->channels && rc_dict_size(c->channels)) ||
           (c->patterns && rc_dict_size(c->patterns)) ||
           (c->shard_channels && rc_dict_size(c->shard_channels));
}

/* Redis's client-output-buffer-limit check, run whenever c's queue grows. */
static void check_output_limit(struct rc_server *s, struct rc_conn *c)
{
    const struct rc_obuf_limit *lim = is_pubsub(c) ? &s->cfg.obuf_pubsub : &s->cfg.obuf_normal;
    uint64_t used = c->out.bytes;
    const char *which = NULL;

    if (lim->hard && used >= lim->hard) {
        which = "hard";
    } else if (lim->soft && used >= lim->soft) {
        uint64_t now = rc_now_ms();
        if (!c->soft_since_ms)
            c->soft_since_ms = now;
        else if (now - c->soft_since_ms > lim->soft_secs * 1000)
            which = "soft";
    } else {
        c->soft_since_ms = 0;
    }
    if (!which)
        return;
    s->stats.obuf_disconnects++;
    rc_log(RC_LOG_WARNING,
           "Client id=%llu addr=%s name=%s closed for overcoming of output buffer limits "
           "(%s limit, %llu bytes queued)",
           (unsigned long long)c->id, c->addr, c->name ? c->name : "", which,
           (unsigned long long)used);
    rc_conn_close_asap(s, c, "output buffer limit");
}

static void push_output(struct rc_server *s, struct rc_conn *c, struct rc_slab *slab, uint32_t off,
                        uint32_t len)
{
    rc_queue_push(&c->out, slab, off, len);
    rc_conn_mark_dirty(s, c);
    check_output_limit(s, c);
}

void rc_conn_push_frame(struct rc_server *s, struct rc_conn *c, struct rc_slab *slab, uint32_t off,
                        uint32_t len)
{
    /* Like Redis, a client closing after its reply (QUIT, half-closed peer)
     * gets no more messages: a subscriber on a busy channel would otherwise
     * never drain its queue and never close. */
    if (c->flags & (RC_CONN_CLOSE_ASAP | RC_CONN_UNLINKED | RC_CONN_CLOSE_AFTER_REPLY))
        return;
    push_output(s, c, slab, off, len);
}

void rc_conn_flush_reply(struct rc_server *s, struct rc_conn *c)
{
    struct rc_slab *slab;
    uint32_t off;

    if (!s->rbuf.len)
        return;
    if (!(c->flags & (RC_CONN_CLOSE_ASAP | RC_CONN_UNLINKED))) {
        rc_arena_copy(&s->replies, s->rbuf.p, s->rbuf.len, &slab, &off);
        push_output(s, c, slab, off, (uint32_t)s->rbuf.len);
    }
    s->rbuf.len = 0;
}

/* ---- Periodic work ---- */

void rc_server_cron(struct rc_server *s)
{
    uint64_t now = rc_now_ms();
    struct rc_conn *c, *next;

    rc_mdata_cron(s, now);
    for (c = s->clients_head; c; c = next) {
        next = c->next;
        /* A client parked over the soft limit gets no new pushes to trigger
         * the check, so time it out here. */
        if (c->soft_since_ms && !(c->flags & RC_CONN_CLOSE_ASAP))
            check_output_limit(s, c);
        /* Like Redis, a query buffer grown by a large request is given
         * back once the client has been idle for a while. */
        if (c->qbuf.len == 0 && c->qbuf.cap > 64 * 1024 && now - c->last_ms > 2000)
            rc_buf_free(&c->qbuf);
        if (s->cfg.timeout && !is_pubsub(c) && !(c->flags & RC_CONN_CLOSE_ASAP) &&
            now - c->last_ms > s->cfg.timeout * 1000) {
            rc_log(RC_LOG_VERBOSE, "Closing idle client id=%llu addr=%s", (unsigned long long)c->id,
                   c->addr);
            rc_conn_close_asap(s, c, "idle timeout");
        }
    }
}
