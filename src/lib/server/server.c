/* server.c -- server life cycle, connections and the main loop.
 *
 * The server owns the configuration, the engine and the connections; the
 * backend owns the sockets. This file is the wiring: it is the io layer's
 * host (io.h ops: accepted, input, sent, unlink, free) and each connection's
 * sink owner for the engine (engine.h: push). Input from a backend is parsed in place
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "http.h"
#include "mdata.h"
#include "udp.h"
#include "upstream.h"

static const struct rc_io_host_ops host_ops;
static void conn_free_now(struct rc_server *s, struct rc_conn *c);
static void hole_wait(struct rc_server *s, struct rc_conn *c);

/* ---- Server life ---- */

static void copy_config(struct rc_config *dst, const struct rc_config *src)
{
    *dst = *src;
    for (int i = 0; i < src->nbind; i++)
        dst->bind[i] = rc_xstrdup(src->bind[i]);
    dst->requirepass = src->requirepass ? rc_xstrdup(src->requirepass) : NULL;
    dst->logfile = src->logfile ? rc_xstrdup(src->logfile) : NULL;
    dst->http_allowed_origins =
        src->http_allowed_origins ? rc_xstrdup(src->http_allowed_origins) : NULL;
    rc_config_dup_rules(dst);
}

/* The settings the backend reads, copied into its struct rc_io. */
void rc_server_sync_io_cfg(struct rc_server *s)
{
    s->io.cfg = (struct rc_io_cfg){.maxclients = s->cfg.maxclients,
                                   .uring_entries = s->cfg.uring_entries,
                                   .tick_us = s->cfg.tick_us,
                                   .budget_us = s->cfg.accum_budget_us,
                                   .tick_bytes = s->cfg.tick_bytes,
                                   .zc_threshold = s->cfg.zc_threshold,
                                   .kmod_device = s->cfg.kmod_device,
                                   .kmod_zerocopy = s->cfg.kmod_zerocopy};
}

/* The engine of worker s (all but the connection layer's wiring). */
static void new_engine(struct rc_server *s)
{
    s->eng = rc_engine_new(
        &(struct rc_engine_cfg){.codecs = rc_codecs,
                                .ncodecs = RC_FMT__COUNT,
                                .log = &s->log,
                                .md = &s->cfg.md,
                                .interest = s->cfg.upstream[0] ? rc_upstream_interest : NULL,
                                .interest_arg = s,
                                .count = s->cfg.workers > 1 ? rc_worker_count : NULL,
                                .count_arg = s});
    rc_arena_init(&s->replies, rc_engine_pool(s->eng));
}

struct rc_server *rc_server_new(const struct rc_config *cfg)
{
    struct rc_server *s = rc_xcalloc(1, sizeof(*s));
    unsigned char rnd[20];

    copy_config(&s->cfg, cfg);
    s->log.level = s->cfg.loglevel;
    s->cfg.workers = (uint64_t)rc_workers_wanted(&s->cfg);
    if (s->cfg.workers > 1 && s->cfg.upstream[0]) {
        rc_log(&s->log, RC_LOG_NOTICE,
               "upstream is set: running one worker instead of %llu (docs/cluster.md)",
               (unsigned long long)s->cfg.workers);
        s->cfg.workers = 1;
    }
    new_engine(s);
    s->io.host = &host_ops;
    s->io.log = &s->log;
    rc_server_sync_io_cfg(s);
    rc_mem_apply_cfg(s);
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
    for (int i = 0; i < RC_MAX_LISTEN; i++)
        s->listen_fds[i] = -1;
    rc_workers_new(s);
    return s;
}

struct rc_server *rc_server_new_worker(struct rc_server *s0, int i)
{
    struct rc_server *s = rc_xcalloc(1, sizeof(*s));

    copy_config(&s->cfg, &s0->cfg);
    s->log = s0->log;
    s->wk = s0->wk;
    s->widx = i;
    rc_worker_state_new(s);
    new_engine(s);
    s->io.host = &host_ops;
    s->io.log = &s->log;
    rc_server_sync_io_cfg(s);
    s->machine_mem = s0->machine_mem;
    rc_mem_apply_cfg(s);
    s->next_id = 1;
    s->start_ms = s0->start_ms;
    s->start_wall_us = s0->start_wall_us;
    s->last_cron_ms = s->start_ms;
    memcpy(s->run_id, s0->run_id, sizeof(s->run_id));
    for (int k = 0; k < RC_MAX_LISTEN; k++)
        s->listen_fds[k] = -1;
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
        rc_log(&s->log, RC_LOG_WARNING,
               "Could not create server TCP listening socket %s:%d: socket: %s", addr, port,
               strerror(err));
        return -err;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* Accepted sockets inherit TCP_NODELAY from the listener. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, s->cfg.tcp_backlog) < 0) {
        int err = errno;
        rc_log(&s->log, RC_LOG_WARNING,
               "Could not create server TCP listening socket %s:%d: bind: %s", addr, port,
               strerror(err));
        close(fd);
        return -err;
    }
    return fd;

bad_addr:
    rc_log(&s->log, RC_LOG_WARNING,
           "Could not create server TCP listening socket %s:%d: invalid address", addr, port);
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

/* Starts the configured backend, or what it falls back to when it cannot
 * run here: kmod (no device, or not ours) runs uring, which (no io_uring)
 * runs epoll. Each step is one log line: kmod's says which device and why
 * (backend_kmod.c), uring's is here. */
static int pick_backend(struct rc_server *s)
{
    const struct rc_backend_ops *be;
    int err;

    switch (s->cfg.io) {
    case RC_IO_NAIVE: be = &rc_backend_naive; break;
    case RC_IO_EPOLL: be = &rc_backend_epoll; break;
    case RC_IO_KMOD: be = &rc_backend_kmod; break;
    default: be = &rc_backend_uring; break;
    }
    for (;;) {
        err = be->init(&s->io);
        if (err == 0) {
            s->io.be = be;
            return 0;
        }
        if (be == &rc_backend_kmod) {
            be = &rc_backend_uring;
        } else if (be == &rc_backend_uring) {
            rc_log(&s->log, RC_LOG_WARNING,
                   "io_uring unavailable (%s), falling back to the epoll backend", strerror(-err));
            be = &rc_backend_epoll;
        } else {
            rc_log(&s->log, RC_LOG_WARNING, "Could not start the %s backend: %s", be->name,
                   strerror(-err));
            return err;
        }
    }
}

/* Binds the listening sockets. Worker 0 accepts for all workers and deals
 * the connections out (rc_worker_hand_off). */
static int bind_all(struct rc_server *s, struct rc_server *w)
{
    int port = s->cfg.port, err;

    for (int i = 0; i < s->cfg.nbind; i++) {
        int fd = listen_one(w, s->cfg.bind[i], port);
        if (fd < 0) {
            err = fd;
            goto fail;
        }
        s->listen_fds[s->nlisten++] = fd;
        /* With port 0 every address shares the port the first one got. */
        if (port == 0)
            port = bound_port(fd);
    }
    w->port = port;
    if (s->cfg.http_port) {
        /* The HTTP port, on the same addresses. Which port a connection
         * came in on (getsockname) tells its transport: rc_conn_accepted. */
        if (s->cfg.http_port == port) {
            rc_log(&s->log, RC_LOG_WARNING,
                   "http-port %d is the RESP port: choose another or set http-port 0", port);
            err = -EINVAL;
            goto fail;
        }
        for (int i = 0; i < s->cfg.nbind; i++) {
            int fd = listen_one(w, s->cfg.bind[i], s->cfg.http_port);
            if (fd < 0) {
                err = fd;
                goto fail;
            }
            w->listen_fds[w->nlisten++] = fd;
        }
        w->http_port = s->cfg.http_port;
    }
    return 0;

fail:
    for (int i = 0; i < w->nlisten; i++)
        close(w->listen_fds[i]);
    w->nlisten = 0;
    return err;
}

/* Hands w's listeners to its backend (worker 0's choice, for every worker). */
int rc_server_listen_worker(struct rc_server *w)
{
    int err = 0;

    for (int i = 0; i < w->nlisten; i++) {
        err = w->io.be->listen(&w->io, w->listen_fds[i]);
        if (err) {
            rc_log(&w->log, RC_LOG_WARNING, "Could not listen with the %s backend: %s",
                   w->io.be->name, strerror(-err));
            return err;
        }
    }
    return rc_worker_start(w);
}

int rc_server_start(struct rc_server *s)
{
    int n = s->wk ? s->wk->n : 1, err;

    err = bind_all(s, s);
    if (err)
        goto fail;
    for (int i = 1; i < n; i++) {
        s->wk->w[i]->port = s->port;
        s->wk->w[i]->http_port = s->http_port;
    }
    err = pick_backend(s);
    if (err)
        goto fail;
    /* The backends own the listeners from here; rc_server_free() closes them. */
    err = rc_server_listen_worker(s);
    if (!err && s->wk)
        err = rc_workers_start(s); /* the others, each on its thread */
    if (err)
        return err;
    if (s->wk)
        rc_log(&s->log, RC_LOG_NOTICE, "%d workers, each with its own %s loop", n, s->io.be->name);
    err = rc_udp_start(s);
    return err ? err : rc_upstream_start(s);

fail:
    for (int i = 0; i < n; i++) {
        struct rc_server *w = s->wk ? s->wk->w[i] : s;
        if (w->io.be)
            continue; /* closed with its backend */
        for (int k = 0; k < w->nlisten; k++)
            close(w->listen_fds[k]);
        w->nlisten = 0;
    }
    return err;
}

/* A lock-free atomic is what makes the store async-signal-safe. */
_Static_assert(ATOMIC_BOOL_LOCK_FREE == 2, "stop_requested must be lock-free");

void rc_server_request_stop(struct rc_server *s)
{
    rc_workers_request_stop(s, false);
}

static bool all_flushed(struct rc_server *s)
{
    for (struct rc_io_conn *c = s->io.head; c; c = c->next)
        if (!rc_queue_empty(&c->out) || c->held)
            return false;
    return rc_worker_idle(s);
}

/* Shutdown with workers: each stops once every worker has nothing left to
 * send, receive or answer, so that no post is lost to a worker gone. */
static bool may_exit(struct rc_server *s, bool flushed)
{
    struct rc_workers *wk = s->wk;

    if (!wk)
        return flushed;
    if (flushed != s->quiet_counted) {
        atomic_fetch_add(&wk->quiet, flushed ? 1 : -1);
        s->quiet_counted = flushed;
    }
    return flushed && atomic_load(&wk->quiet) == wk->n;
}

int rc_server_run(struct rc_server *s)
{
    if (s->wk)
        return rc_workers_run(s);
    rc_server_loop(s);
    return 0;
}

void rc_server_loop(struct rc_server *s)
{
    for (;;) {
        bool releasing = rc_server_release_tick(s);
        int wait_ms = releasing ? 0 : s->stopping ? 10 : 100;
        if (s->wk) {
            rc_worker_flush(s); /* their wake-ups ride this poll's submission */
            wait_ms = rc_worker_wait_ms(s, wait_ms);
        }
        s->io.be->poll(&s->io, wait_ms);
        rc_worker_woken(s);
        rc_mem_check(s, false); /* UDP sources publish outside rc_conn_input */
        uint64_t now = rc_now_ms();
        if (now - s->last_cron_ms >= 100) {
            s->last_cron_ms = now;
            rc_server_cron(s);
        }
        if (!s->stopping && atomic_load_explicit(&s->stop_requested, memory_order_relaxed)) {
            if (s->wk && atomic_load(&s->wk->stop_now))
                s->stop_now = true;
            s->stopping = s->io.stopping = true;
            s->stop_deadline_ms = s->stop_now ? now : now + s->cfg.shutdown_timeout * 1000;
            if (!s->stop_by_user && s->widx == 0 && !(s->wk && atomic_load(&s->wk->by_user)))
                rc_log(&s->log, RC_LOG_WARNING, "Received signal, scheduling shutdown...");
            s->io.be->unlisten(&s->io);
            s->nlisten = 0;
        }
        if (s->stopping) {
            if (may_exit(s, all_flushed(s)))
                break;
            if (now >= s->stop_deadline_ms) {
                if (!s->stop_now)
                    rc_log(&s->log, RC_LOG_WARNING,
                           "Shutdown deadline reached with output still queued");
                break;
            }
        }
    }
    if (s->widx == 0)
        rc_log(&s->log, RC_LOG_WARNING, "ringcastd is now ready to exit, bye bye...");
}

void rc_server_teardown_io(struct rc_server *s)
{
    /* Output still waiting for other workers' replies goes. */
    RC_FOR_EACH_CONN(s, c)
    rc_hold_free(c);
    /* Listening sockets belong to the backend once it has them. */
    if (s->io.be)
        s->io.be->destroy(&s->io);
    else
        for (int i = 0; i < s->nlisten; i++)
            close(s->listen_fds[i]);
    s->io.be = NULL;
    s->nlisten = 0;
}

/* Frees what one worker has (worker 0's UDP sources and upstream apart). */
static void free_one(struct rc_server *s)
{
    rc_server_teardown_io(s);
    /* Clients whose subscriptions were still being released in slices. */
    while (rc_server_release_tick(s))
        ;
    /* The backend tore every connection down; anything left was never
     * handed to a backend (start failed). */
    while (s->io.head) {
        struct rc_io_conn *ic = s->io.head;
        struct rc_conn *c = rc_conn_of(ic);
        rc_conn_unlink(s, c, "server stopped");
        if (s->io.head == ic) /* unlink takes it off the list; never left on it */
            rc_io_unlink(&s->io, ic);
        if (c->io.fd >= 0)
            close(c->io.fd);
        c->io.out.inflight = 0;
        rc_conn_free(s, c);
    }
    /* Closed clients still waiting for other workers' replies: none come. */
    while (s->hole_waiters) {
        struct rc_conn *c = s->hole_waiters;
        s->hole_waiters = c->hw_next;
        conn_free_now(s, c);
    }
    rc_http_server_free(s);
    rc_arena_free(&s->replies);
    rc_engine_free(s->eng);
    rc_buf_free(&s->rbuf);
    rc_config_free(&s->cfg);
    free(s->config_file);
    free(s->executable);
}

void rc_server_free_worker(struct rc_server *w)
{
    free_one(w);
    rc_worker_state_free(w);
    free(w);
}

void rc_server_free(struct rc_server *s)
{
    struct rc_workers *wk;

    if (!s)
        return;
    rc_udp_free(s);
    rc_upstream_free(s);
    wk = s->wk;
    rc_workers_free(s); /* the other workers, and the posts in flight */
    free_one(s);
    rc_worker_state_free(s);
    free(wk);
    free(s);
}

/* ---- Connections ---- */

static int local_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return -1;
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

static const struct rc_sink_ops sink_ops;

struct rc_conn *rc_conn_accepted(struct rc_server *s, int fd)
{
    bool local;
    struct rc_conn *c = rc_xcalloc(1, sizeof(*c));
    struct rc_resp_limits lim;
    struct sockaddr_storage ss;
    socklen_t sl;

    c->srv = s;
    c->io.fd = fd;
    c->io.id = s->wk ? atomic_fetch_add(&s->wk->next_id, 1) : s->next_id++;
    c->proto = 2;
    c->ctime_ms = c->last_ms = rc_now_ms();
    c->last_cmd = "NULL";
    rc_queue_init(&c->io.out, s->io.be != &rc_backend_naive);
    rc_sink_init(&c->sink, &sink_ops, RC_FMT_RESP2, c->io.id, c->addr, &c->io.out);
    rc_resp_limits_default(&lim);
    lim.max_bulk = s->cfg.proto_max_bulk_len;
    lim.max_multibulk = s->cfg.proto_max_multibulk_len;
    rc_resp_parser_init(&c->parser, &lim);
    if (!s->cfg.requirepass)
        c->io.flags |= RC_CONN_AUTHED;
    c->parser.unauth = !(c->io.flags & RC_CONN_AUTHED);

    sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    getpeername(fd, (struct sockaddr *)&ss, &sl);
    rc_format_sockaddr(&ss, c->addr, sizeof(c->addr));
    local = is_local(&ss);
    sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    rc_format_sockaddr(&ss, c->laddr, sizeof(c->laddr));
    if (s->http_port && local_port(&ss) == s->http_port)
        c->transport = RC_TRANSPORT_HTTP;
    s->io.stats.sys[RC_SYS_OTHER] += 2;
    if (s->cfg.so_sndbuf) {
        int v = (int)s->cfg.so_sndbuf;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
        s->io.stats.sys[RC_SYS_SETSOCKOPT]++;
    }

    rc_io_link(&s->io, &c->io);
    s->nclients++;
    s->stats.conns_received++;
    /* maxclients is server-wide. */
    uint64_t clients = s->wk ? atomic_fetch_add(&s->wk->nclients, 1) + 1 : s->nclients;

    if (s->cfg.protected_mode && !s->cfg.requirepass && !local) {
        if (c->transport == RC_TRANSPORT_HTTP) {
            rc_http_refuse(s, c, 403, protected_msg + 7); /* without "DENIED " */
        } else {
            rc_resp_error(&s->rbuf, protected_msg);
            rc_conn_flush_reply(s, c);
        }
        c->io.flags |= RC_IO_CLOSE_AFTER_REPLY;
        s->stats.conns_rejected++;
        rc_log(&s->log, RC_LOG_WARNING,
               "Refused non-loopback client %s: protected mode, no password set", c->addr);
    } else if (clients > s->cfg.maxclients) {
        if (c->transport == RC_TRANSPORT_HTTP) {
            rc_http_refuse(s, c, 503, "max number of clients reached");
        } else {
            rc_resp_error(&s->rbuf, "ERR max number of clients reached");
            rc_conn_flush_reply(s, c);
        }
        c->io.flags |= RC_IO_CLOSE_AFTER_REPLY;
        s->stats.conns_rejected++;
        rc_log(&s->log, RC_LOG_VERBOSE,
               "Rejected client id=%llu addr=%s: max number of clients reached",
               (unsigned long long)c->io.id, c->addr);
    } else {
        rc_log(&s->log, RC_LOG_VERBOSE, "Accepted %s (id=%llu)", c->addr,
               (unsigned long long)c->io.id);
    }
    return c;
}

static void query_limit_exceeded(struct rc_server *s, struct rc_conn *c, size_t pending)
{
    rc_log(&s->log, RC_LOG_WARNING,
           "Closing client that reached max query buffer length: id=%llu addr=%s qbuf=%zu",
           (unsigned long long)c->io.id, c->addr, pending);
    rc_conn_close_asap(s, c, "query buffer limit");
}

/* Commands whose replies are pushes a subscriber must see in order with its
 * messages. Messages never wait behind a hole (worker.h), so with a hole
 * pending these wait for it instead: nothing can come before a SUBSCRIBE
 * confirmation, or after an UNSUBSCRIBE one. */
bool rc_req_waits_for_holes(const struct rc_req *r)
{
    static const char *const names[] = {"subscribe",    "psubscribe",   "ssubscribe", "unsubscribe",
                                        "punsubscribe", "sunsubscribe", "reset",      "hello",
                                        "rc.resume",    "rc.seqmode"};
    for (size_t i = 0; i < RC_ARRAY_LEN(names); i++)
        if (rc_strcaseeq(r->argv[0], r->argvlen[0], names[i]))
            return true;
    return false;
}

/* Parses and runs every complete request in buf[0..len); returns the bytes used. */
static size_t process(struct rc_server *s, struct rc_conn *c, const char *buf, size_t len)
{
    size_t pos = 0;

    if (c->transport != RC_TRANSPORT_RESP)
        return rc_http_process(s, c, buf, len);

    while (pos < len && !(c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_CLOSE_AFTER_REPLY))) {
        size_t used = 0;
        int r = rc_resp_parse(&c->parser, buf + pos, len - pos, &used);
        if (r == 0)
            break;
        if (r < 0) {
            s->stats.proto_errors++;
            rc_log(&s->log, RC_LOG_VERBOSE, "Protocol error (%s) from client: id=%llu addr=%s",
                   c->parser.err, (unsigned long long)c->io.id, c->addr);
            rc_resp_error(&s->rbuf, c->parser.err);
            rc_conn_flush_reply(s, c);
            c->io.flags |= RC_IO_CLOSE_AFTER_REPLY;
            rc_conn_mark_dirty(s, c);
            pos = len;
            break;
        }
        if (c->parser.argc > 0 && RC_UNLIKELY(c->nholes > 0)) {
            struct rc_req req = {c->parser.argc, c->parser.argv, c->parser.argvlen};
            if (rc_req_waits_for_holes(&req)) {
                /* Parsed again, from the query buffer, once the holes fill. */
                c->io.flags |= RC_CONN_PAUSED;
                break;
            }
        }
        pos += used;
        if (c->parser.argc > 0) {
            struct rc_req req = {c->parser.argc, c->parser.argv, c->parser.argvlen};
            rc_cmd_execute(s, c, &req);
            /* AUTH, HELLO AUTH and RESET change it between two requests. */
            c->parser.unauth = !(c->io.flags & RC_CONN_AUTHED);
        }
    }
    return pos;
}

/* Frees c's query buffer, keeping the server's count of them. */
static void qbuf_release(struct rc_server *s, struct rc_conn *c)
{
    s->mem_qbuf -= c->qbuf.cap;
    rc_buf_free(&c->qbuf);
}

void rc_conn_input(struct rc_server *s, struct rc_conn *c, const char *buf, size_t n)
{
    size_t qcap = c->qbuf.cap;

    if (c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_CLOSE_AFTER_REPLY | RC_IO_UNLINKED))
        return;
    /* Posts made before this input was sent come first (worker.c). */
    rc_worker_drain(s);
    if (RC_UNLIKELY(c->io.flags & RC_CONN_PAUSED)) {
        /* Waiting for a hole: keep the bytes for later (still bounded). */
        size_t qcap0 = c->qbuf.cap;
        rc_buf_append(&c->qbuf, buf, n);
        s->mem_qbuf += c->qbuf.cap - qcap0;
        s->stats.bytes_in += n;
        if (c->qbuf.len > s->cfg.client_query_buffer_limit)
            query_limit_exceeded(s, c, c->qbuf.len);
        return;
    }
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
        if (used < n && !(c->io.flags & RC_IO_CLOSE_ASAP))
            rc_buf_append(&c->qbuf, buf + used, n - used);
    } else {
        rc_buf_append(&c->qbuf, buf, n);
        size_t used = process(s, c, c->qbuf.p, c->qbuf.len);
        rc_buf_consume(&c->qbuf, used);
    }
    s->mem_qbuf += c->qbuf.cap - qcap;
    if (c->qbuf.len > s->cfg.client_query_buffer_limit)
        query_limit_exceeded(s, c, c->qbuf.len);
    else if (c->qbuf.len == 0 && c->qbuf.cap > 4 * 1024 * 1024)
        qbuf_release(s, c); /* give back the memory of a very large request */
    /* Publishing is what allocates: check the ceiling after each read. */
    rc_mem_check(s, false);
    /* What this input told other workers (subscription counts, publishes)
     * reaches their inboxes before any reply to it can leave: a backend
     * may send in the same dispatch (worker.c, "Causality"). */
    if (s->wk)
        rc_worker_flush(s);
}

static void conn_sent(struct rc_server *s, struct rc_conn *c, size_t n)
{
    rc_queue_consume(&c->io.out, n);
    s->io.stats.bytes_out += n;
    s->io.stats.sends++;
    if (RC_UNLIKELY(c->sink.md != NULL))
        rc_mdata_sink_drained(s->eng, &c->sink);
    if (c->soft_since_ms && c->io.out.bytes < s->cfg.obuf_pubsub.soft)
        c->soft_since_ms = 0;
}

void rc_conn_mark_dirty(struct rc_server *s, struct rc_conn *c)
{
    /* On the list already and this iteration's push recorded: nothing to do
     * (one flag test and one compare per delivery). */
    if ((c->io.flags & RC_IO_DIRTY) && c->io.acc.tick == s->io.acc.tick)
        return;
    /* Subscribers' output may be held to batch it (io/accum.c); replies to
     * everyone else go out at once: they are what lets a pipelining
     * publisher go on, and holding them would slow the feed instead of
     * growing the subscribers' batches. */
    if (rc_conn_subscribed(c))
        c->io.flags |= RC_IO_HOLDABLE;
    else
        c->io.flags &= ~RC_IO_HOLDABLE;
    rc_io_note_output(&s->io, &c->io);
}

/* Detaches c from the engine, leaving what one slice cannot do to
 * rc_server_release_tick. */
static void conn_detach(struct rc_server *s, struct rc_conn *c)
{
    if (c->io.flags & RC_CONN_RELEASING)
        return;
    if (rc_engine_sink_detach_some(s->eng, &c->sink, RC_TEARDOWN_SLICE))
        return;
    c->io.flags |= RC_CONN_RELEASING;
    c->rel_next = s->releasing;
    s->releasing = c;
}

bool rc_server_release_tick(struct rc_server *s)
{
    size_t budget = RC_TEARDOWN_SLICE;
    struct rc_conn **pp = &s->releasing;

    while (*pp && budget > 0) {
        struct rc_conn *c = *pp;
        size_t before = c->sink.nsubs;
        bool done = rc_engine_sink_release(s->eng, &c->sink, budget);
        size_t did = before - c->sink.nsubs;
        budget = did >= budget ? 0 : budget - did;
        if (!done)
            break;
        *pp = c->rel_next;
        c->io.flags &= ~RC_CONN_RELEASING;
        if ((c->io.flags & RC_CONN_FREE_WAIT) && (c->nholes || c->posted))
            hole_wait(s, c);
        else if (c->io.flags & RC_CONN_FREE_WAIT)
            conn_free_now(s, c);
    }
    return s->releasing != NULL;
}

void rc_conn_unlink(struct rc_server *s, struct rc_conn *c, const char *reason)
{
    if (c->io.flags & RC_IO_UNLINKED)
        return;
    c->io.flags |= RC_IO_UNLINKED;
    rc_log(&s->log, RC_LOG_VERBOSE, "Client closed connection id=%llu addr=%s (%s)",
           (unsigned long long)c->io.id, c->addr, reason ? reason : "closed");
    conn_detach(s, c);
    /* The owners hear of the subscriptions gone before the peer can see
     * the connection close. */
    if (s->wk)
        rc_worker_flush(s);
    rc_io_unlink(&s->io, &c->io);
    s->nclients--;
    if (s->wk)
        atomic_fetch_sub(&s->wk->nclients, 1);
    rc_queue_drop_unsent(&c->io.out);
}

void rc_conn_free(struct rc_server *s, struct rc_conn *c)
{
    assert(c->io.flags & RC_IO_UNLINKED);
    if ((c->io.flags & RC_CONN_RELEASING) || c->nholes || c->posted) {
        /* Channels still point at its sink, or other workers' replies at
         * its holes: free it with the last slice, or the last reply. */
        c->io.flags |= RC_CONN_FREE_WAIT;
        if (!(c->io.flags & RC_CONN_RELEASING))
            hole_wait(s, c);
        return;
    }
    conn_free_now(s, c);
}

/* c waits for the replies to its holes before it can be freed. */
static void hole_wait(struct rc_server *s, struct rc_conn *c)
{
    c->hw_prev = NULL;
    c->hw_next = s->hole_waiters;
    if (c->hw_next)
        c->hw_next->hw_prev = c;
    s->hole_waiters = c;
}

void rc_conn_holes_done(struct rc_server *s, struct rc_conn *c)
{
    if (c->nholes == 0 && (c->io.flags & RC_CONN_PAUSED) && !(c->io.flags & RC_IO_UNLINKED)) {
        /* Run what it held back: its next command waited for the holes. */
        size_t qcap = c->qbuf.cap, used;
        c->io.flags &= ~RC_CONN_PAUSED;
        if (!(c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_CLOSE_AFTER_REPLY)) && !s->stopping)
            rc_http_ws_resume(s, c); /* a WebSocket command held back whole */
        if (!(c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_CLOSE_AFTER_REPLY | RC_CONN_PAUSED)) &&
            !s->stopping && c->qbuf.len) {
            used = process(s, c, c->qbuf.p, c->qbuf.len);
            rc_buf_consume(&c->qbuf, used);
            s->mem_qbuf += c->qbuf.cap - qcap;
        }
        return;
    }
    if (c->nholes || c->posted || !(c->io.flags & RC_CONN_FREE_WAIT) ||
        (c->io.flags & RC_CONN_RELEASING))
        return;
    if (c->hw_prev)
        c->hw_prev->hw_next = c->hw_next;
    else if (s->hole_waiters == c)
        s->hole_waiters = c->hw_next;
    if (c->hw_next)
        c->hw_next->hw_prev = c->hw_prev;
    conn_free_now(s, c);
}

static void conn_free_now(struct rc_server *s, struct rc_conn *c)
{
    rc_hold_free(c);
    rc_sink_free(&c->sink);
    rc_http_free(c);
    rc_queue_free(&c->io.out);
    qbuf_release(s, c);
    rc_resp_parser_free(&c->parser);
    free(c->name);
    free(c->lib_name);
    free(c->lib_ver);
    free(c);
}

void rc_conn_close_asap(struct rc_server *s, struct rc_conn *c, const char *why)
{
    if (c->io.flags & RC_IO_CLOSE_ASAP)
        return;
    c->io.flags |= RC_IO_CLOSE_ASAP;
    /* Stop it receiving anything more right now; the backend closes it. */
    conn_detach(s, c);
    rc_queue_drop_unsent(&c->io.out);
    rc_conn_mark_dirty(s, c);
}

/* ---- The io layer's host ---- */

static struct rc_io_conn *host_accepted(struct rc_io *io, int fd)
{
    return &rc_conn_accepted(rc_server_of(io), fd)->io;
}

static bool host_hand_off(struct rc_io *io, int fd)
{
    return rc_worker_hand_off(rc_server_of(io), fd);
}

static void host_input(struct rc_io *io, struct rc_io_conn *c, const char *buf, size_t n)
{
    rc_conn_input(rc_server_of(io), rc_conn_of(c), buf, n);
}

static void host_sent(struct rc_io *io, struct rc_io_conn *c, size_t n)
{
    conn_sent(rc_server_of(io), rc_conn_of(c), n);
}

static void host_unlink(struct rc_io *io, struct rc_io_conn *c, const char *why)
{
    rc_conn_unlink(rc_server_of(io), rc_conn_of(c), why);
}

static void host_free(struct rc_io *io, struct rc_io_conn *c)
{
    rc_conn_free(rc_server_of(io), rc_conn_of(c));
}

static const struct rc_io_host_ops host_ops = {
    .accepted = host_accepted,
    .hand_off = host_hand_off,
    .input = host_input,
    .sent = host_sent,
    .unlink = host_unlink,
    .free = host_free,
};

/* ---- Output ---- */

/* Redis's client-output-buffer-limit check, run whenever c's queue grows. */
static void check_output_limit(struct rc_server *s, struct rc_conn *c)
{
    const struct rc_obuf_limit *lim =
        rc_conn_subscribed(c) ? &s->cfg.obuf_pubsub : &s->cfg.obuf_normal;
    uint64_t used = c->io.out.bytes;
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
    rc_log(&s->log, RC_LOG_WARNING,
           "Client id=%llu addr=%s name=%s closed for overcoming of output buffer limits "
           "(%s limit, %llu bytes queued)",
           (unsigned long long)c->io.id, c->addr, c->name ? c->name : "", which,
           (unsigned long long)used);
    rc_conn_close_asap(s, c, "output buffer limit");
}

void rc_conn_queue(struct rc_server *s, struct rc_conn *c, struct rc_slab *slab, uint32_t off,
                   uint32_t len)
{
    if (c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_UNLINKED))
        return;
    rc_queue_push(&c->io.out, slab, off, len);
    rc_conn_mark_dirty(s, c);
    check_output_limit(s, c);
}

static void push_output(struct rc_server *s, struct rc_conn *c, struct rc_slab *slab, uint32_t off,
                        uint32_t len)
{
    /* Behind a hole: wait for it, in order (worker.c). */
    if (RC_UNLIKELY(c->hold_head != NULL)) {
        rc_hold_push(s, c, slab, off, len);
        return;
    }
    rc_queue_push(&c->io.out, slab, off, len);
    rc_conn_mark_dirty(s, c);
    check_output_limit(s, c);
}

/* The engine's way in (struct rc_sink_ops): a frame for subscriber k. */
static void sink_push(struct rc_sink *k, struct rc_slab *slab, uint32_t off, uint32_t len,
                      bool limit)
{
    struct rc_conn *c = (struct rc_conn *)((char *)k - offsetof(struct rc_conn, sink));
    struct rc_server *s = c->srv;

    /* Like Redis, a client closing after its reply (QUIT, half-closed peer)
     * gets no more messages: a subscriber on a busy channel would otherwise
     * never drain its queue and never close. */
    if (c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_UNLINKED | RC_IO_CLOSE_AFTER_REPLY))
        return;
    /* Messages go straight to the queue, past any hole (worker.h): they
     * are not replies, and a client subscribed to the channel it publishes
     * on gets the message before the PUBLISH reply, as from Redis. */
    if (!limit) {
        rc_queue_push(&c->io.out, slab, off, len);
        rc_conn_mark_dirty(s, c);
        return;
    }
    rc_queue_push(&c->io.out, slab, off, len);
    rc_conn_mark_dirty(s, c);
    check_output_limit(s, c);
}

static const struct rc_sink_ops sink_ops = {.push = sink_push};

void rc_conn_set_proto(struct rc_server *s, struct rc_conn *c, int proto)
{
    c->proto = proto;
    rc_engine_sink_set_fmt(s->eng, &c->sink, rc_conn_fmt(c));
}

void rc_conn_push_bytes(struct rc_server *s, struct rc_conn *c, const void *p, size_t n)
{
    struct rc_slab *slab;
    uint32_t off;

    if (!n || (c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_UNLINKED)))
        return;
    rc_arena_copy(&s->replies, p, n, &slab, &off);
    push_output(s, c, slab, off, (uint32_t)n);
}

void rc_conn_flush_reply(struct rc_server *s, struct rc_conn *c)
{
    if (!s->rbuf.len)
        return;
    if (c->transport == RC_TRANSPORT_WS) {
        rc_http_ws_flush(s, c); /* replies as JSON text frames */
        return;
    }
    rc_conn_push_bytes(s, c, s->rbuf.p, s->rbuf.len);
    s->rbuf.len = 0;
}

void rc_server_resetstat(struct rc_server *s)
{
    memset(&s->stats, 0, sizeof(s->stats));
    memset(&s->io.stats, 0, sizeof(s->io.stats));
    rc_engine_stats_reset(s->eng);
}

/* ---- Periodic work ---- */

void rc_server_cron(struct rc_server *s)
{
    uint64_t now = rc_now_ms();
    struct rc_io_conn *ic, *next;

    rc_engine_cron(s->eng, now);
    rc_mem_check(s, true);
    for (ic = s->io.head; ic; ic = next) {
        struct rc_conn *c = rc_conn_of(ic);
        next = ic->next;
        /* A client parked over the soft limit gets no new pushes to trigger
         * the check, so time it out here. */
        if (c->soft_since_ms && !(c->io.flags & RC_IO_CLOSE_ASAP))
            check_output_limit(s, c);
        /* Like Redis, a query buffer grown by a large request is given
         * back once the client has been idle for a while. */
        if (c->qbuf.len == 0 && c->qbuf.cap > 64 * 1024 && now - c->last_ms > 2000)
            qbuf_release(s, c);
        if (c->transport == RC_TRANSPORT_HTTP)
            rc_http_cron(s, c, now);
        if (s->cfg.timeout && !rc_conn_subscribed(c) && !(c->io.flags & RC_IO_CLOSE_ASAP) &&
            now - c->last_ms > s->cfg.timeout * 1000) {
            rc_log(&s->log, RC_LOG_VERBOSE, "Closing idle client id=%llu addr=%s",
                   (unsigned long long)c->io.id, c->addr);
            rc_conn_close_asap(s, c, "idle timeout");
        }
    }
}
