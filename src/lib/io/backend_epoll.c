/* backend_epoll.c -- the readiness-loop backends: epoll and naive.
 *
 * epoll: level-triggered EPOLLIN on every client, one read per ready client
 * per iteration into a shared scratch buffer, and for every client on the
 * dirty list one send -- send() for one contiguous range, sendmsg() with an
 * iovec over the shared frames otherwise (MSG_NOSIGNAL: a vanished peer must
 * not raise SIGPIPE). A short write means the socket buffer is full: the
 * client waits for EPOLLOUT and the rest goes out then, so a slow reader
 * costs nobody else anything.
 *
 * naive: the same loop, but one write() per message per client -- what a
 * server that neither accumulates nor batches does. It is the baseline that
 * every benchmark compares against, kept on the same build for fairness.
 * Its queues do not merge adjacent frames, so each entry is one message.
 *
 * Which connections send on an iteration is the accumulation policy's call
 * (accum.c), as on io_uring; naive never holds anything.
 *
 * Connections torn down while the current batch of events is being handled
 * are kept on a graveyard list and freed after it, so a stale event never
 * touches freed memory.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS    256
#define MAX_IOV       64
#define MAX_SEND      (1u << 20)
#define READ_BUF      (64u * 1024u)
#define ACCEPT_BATCH  64
#define LISTENER_TAGS 64 /* epoll data values below this are listener indexes */
#define WATCH_TAG     32 /* ... and from here up, watch indexes (udp.c, api.c) */

_Static_assert(RC_MAX_LISTEN <= WATCH_TAG && WATCH_TAG + RC_MAX_WATCH <= LISTENER_TAGS,
               "epoll tags: listeners, then watches, then connection pointers");

/* A watched fd (backend.h: ops->watch): level-triggered EPOLLIN. */
struct ep_watch {
    int fd; /* -1: free */
    rc_watch_fn cb;
    void *arg;
};

struct ep_state {
    int epfd;
    bool naive;
    int lfds[RC_MAX_LISTEN];
    int nl;
    uint64_t paused_until_ms; /* accept paused after EMFILE */
    bool paused;
    bool no_pwait2; /* the kernel has no epoll_pwait2: millisecond waits */
    struct rc_io_conn *graveyard;
    char *rbuf;
    struct epoll_event ev[MAX_EVENTS];
    struct ep_watch wat[RC_MAX_WATCH];
};

static int ep_init_mode(struct rc_io *io, bool naive)
{
    struct ep_state *st = rc_xcalloc(1, sizeof(*st));

    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int err = -errno;
        free(st);
        return err;
    }
    st->naive = naive;
    st->rbuf = rc_xmalloc(READ_BUF);
    for (int i = 0; i < RC_MAX_WATCH; i++)
        st->wat[i].fd = -1;
    io->be_state = st;
    return 0;
}

static int ep_init(struct rc_io *io)
{
    return ep_init_mode(io, false);
}

static int naive_init(struct rc_io *io)
{
    return ep_init_mode(io, true);
}

static int ctl(struct rc_io *io, int op, int fd, uint32_t events, uint64_t data)
{
    struct ep_state *st = io->be_state;
    struct epoll_event ev = {.events = events, .data.u64 = data};

    io->stats.sys[RC_SYS_EPOLL_CTL]++;
    return epoll_ctl(st->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static int ep_listen(struct rc_io *io, int fd)
{
    struct ep_state *st = io->be_state;
    if (st->nl >= RC_MAX_LISTEN)
        return -ENOSPC;
    st->lfds[st->nl] = fd;
    int err = ctl(io, EPOLL_CTL_ADD, fd, EPOLLIN, (uint64_t)st->nl);
    if (!err)
        st->nl++;
    return err;
}

static void ep_unlisten(struct rc_io *io)
{
    struct ep_state *st = io->be_state;
    for (int i = 0; i < st->nl; i++)
        rc_io_close_listener(io, st->lfds[i]);
    st->nl = 0;
}

static void teardown(struct rc_io *io, struct rc_io_conn *c, const char *why)
{
    struct ep_state *st = io->be_state;

    if (c->fd < 0)
        return;
    io->host->unlink(io, c, why);
    close(c->fd); /* also removes it from the epoll set */
    io->stats.sys[RC_SYS_CLOSE]++;
    c->fd = -1;
    c->next = st->graveyard;
    st->graveyard = c;
}

static void bury(struct rc_io *io)
{
    struct ep_state *st = io->be_state;
    while (st->graveyard) {
        struct rc_io_conn *c = st->graveyard;
        st->graveyard = c->next;
        io->host->free(io, c);
    }
}

/* Waits for EPOLLOUT on c (its socket buffer is full). A connection that
 * is to close after its reply is no longer watched for input: its peer may
 * have closed its side, and that end of input must not tear it down while
 * its output is still on the way. */
static void want_write(struct rc_io *io, struct rc_io_conn *c, bool on)
{
    uint32_t in = (c->flags & RC_IO_CLOSE_AFTER_REPLY) ? 0 : EPOLLIN;

    if (c->send_busy == on)
        return;
    c->send_busy = on;
    if (ctl(io, EPOLL_CTL_MOD, c->fd, in | (on ? EPOLLOUT : 0), (uint64_t)(uintptr_t)c) < 0)
        teardown(io, c, "epoll_ctl failed");
}

/* Returns bytes written, 0 when the socket is full, -1 when c is gone. */
static ssize_t send_iov(struct rc_io *io, struct rc_io_conn *c, struct iovec *iov, int n)
{
    ssize_t r;

    for (;;) {
        if (n == 1) {
            r = send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
            io->stats.sys[RC_SYS_WRITE]++;
        } else {
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            r = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
            io->stats.sys[RC_SYS_SENDMSG]++;
        }
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        teardown(io, c, strerror(errno));
        return -1;
    }
}

/* Hands c's queue to the kernel: one send per call (naive: one per message). */
static void flush(struct rc_io *io, struct rc_io_conn *c)
{
    struct ep_state *st = io->be_state;
    struct iovec iov[MAX_IOV];

    if (c->fd < 0)
        return;
    if (rc_io_should_close(c)) {
        teardown(io, c, c->flags & RC_IO_CLOSE_ASAP ? "closed by server" : "closed after reply");
        return;
    }
    while (!rc_queue_empty(&c->out)) {
        size_t bytes;
        int n = rc_queue_iov(&c->out, iov, st->naive ? 1 : MAX_IOV, MAX_SEND, &bytes);
        ssize_t r = send_iov(io, c, iov, n);
        if (r < 0)
            return;
        if (r > 0)
            io->host->sent(io, c, (size_t)r);
        if ((size_t)r < bytes) {
            want_write(io, c, true);
            return;
        }
        /* epoll sends once per client per iteration; more than MAX_SEND
         * queued waits for the next one. naive goes on message by message. */
        if (!st->naive) {
            if (!rc_queue_empty(&c->out))
                rc_io_mark_dirty(io, c);
            break;
        }
    }
    if (rc_queue_empty(&c->out)) {
        want_write(io, c, false);
        if (c->fd >= 0 && rc_io_should_close(c))
            teardown(io, c, "closed after reply");
    }
}

static void ep_adopt(struct rc_io *io, int fd)
{
    struct rc_io_conn *c = io->host->accepted(io, fd);
    if (ctl(io, EPOLL_CTL_ADD, fd, EPOLLIN, (uint64_t)(uintptr_t)c) < 0)
        teardown(io, c, "epoll_ctl failed");
}

static void do_accept(struct rc_io *io, int lfd)
{
    struct ep_state *st = io->be_state;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        io->stats.sys[RC_SYS_ACCEPT]++;
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: stop watching the listeners for a
                 * moment instead of spinning on a level-triggered event. */
                rc_log(io->log, RC_LOG_WARNING, "accept: %s; pausing accepts for 100 ms",
                       strerror(errno));
                for (int k = 0; k < st->nl; k++)
                    ctl(io, EPOLL_CTL_DEL, st->lfds[k], 0, 0);
                st->paused = true;
                st->paused_until_ms = rc_now_ms() + 100;
            }
            return;
        }
        if (io->host->hand_off && io->host->hand_off(io, fd))
            continue;
        ep_adopt(io, fd);
    }
}

static void do_read(struct rc_io *io, struct rc_io_conn *c)
{
    struct ep_state *st = io->be_state;
    ssize_t r;

    do {
        r = read(c->fd, st->rbuf, READ_BUF);
        io->stats.sys[RC_SYS_READ]++;
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
        io->host->input(io, c, st->rbuf, (size_t)r);
    } else if (r == 0 && !(c->flags & RC_IO_CLOSE_AFTER_REPLY) &&
               (!rc_queue_empty(&c->out) || c->held)) {
        /* End of input with replies still queued (or still to come from the
         * host): the peer may only have shut down its sending side, so
         * deliver them, then close. Stop watching for input (EOF stays
         * readable); flush() closes it once nothing is left. */
        bool out = !rc_queue_empty(&c->out);
        c->flags |= RC_IO_CLOSE_AFTER_REPLY;
        c->send_busy = out;
        if (ctl(io, EPOLL_CTL_MOD, c->fd, out ? EPOLLOUT : 0, (uint64_t)(uintptr_t)c) < 0)
            teardown(io, c, "epoll_ctl failed");
    } else if (r == 0) {
        teardown(io, c, "client closed connection");
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        teardown(io, c, strerror(errno));
    }
}

/* Waits up to wait_ns (negative: no limit). Sub-millisecond waits -- the
 * end of an accumulation hold -- need epoll_pwait2 (5.11); where it is
 * missing the wait rounds up to the next millisecond. */
static int ep_wait(struct rc_io *io, struct ep_state *st, int64_t wait_ns)
{
    int n;

    io->stats.sys[RC_SYS_EPOLL_WAIT]++;
    if (wait_ns >= 0 && wait_ns % 1000000 && !st->no_pwait2) {
        struct timespec ts = {.tv_sec = wait_ns / 1000000000, .tv_nsec = wait_ns % 1000000000};
        n = epoll_pwait2(st->epfd, st->ev, MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        st->no_pwait2 = true;
    }
    n = epoll_wait(st->epfd, st->ev, MAX_EVENTS,
                   wait_ns < 0 ? -1 : (int)RC_MIN((wait_ns + 999999) / 1000000, INT32_MAX));
    return n;
}

static void ep_poll(struct rc_io *io, int timeout_ms)
{
    struct ep_state *st = io->be_state;
    struct rc_io_conn *c;
    int64_t wait_ns = timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000;
    int n;

    if (st->naive) {
        /* The baseline never holds anything: one write per message, now. */
        while ((c = rc_io_pop_dirty(io)))
            flush(io, c);
        if (io->dirty_head)
            wait_ns = 0;
    } else {
        rc_accum_flush(io, flush, &wait_ns);
    }
    bury(io);
    if (st->paused && rc_now_ms() >= st->paused_until_ms) {
        st->paused = false;
        for (int k = 0; k < st->nl; k++)
            ctl(io, EPOLL_CTL_ADD, st->lfds[k], EPOLLIN, (uint64_t)k);
    }
    if (st->paused && (wait_ns < 0 || wait_ns > 100 * 1000000))
        wait_ns = 100 * 1000000;
    n = ep_wait(io, st, wait_ns);
    rc_io_tick(io);
    for (int i = 0; i < n; i++) {
        uint64_t tag = st->ev[i].data.u64;
        uint32_t e = st->ev[i].events;
        if (tag < LISTENER_TAGS) {
            if (tag >= WATCH_TAG) {
                /* Level-triggered: input a callback left is reported again. */
                struct ep_watch *w = &st->wat[tag - WATCH_TAG];
                if (w->fd >= 0)
                    w->cb(w->arg);
            } else if ((int)tag < st->nl)
                do_accept(io, st->lfds[tag]);
            continue;
        }
        c = (struct rc_io_conn *)(uintptr_t)tag; /* NOLINT(performance-no-int-to-ptr) */
        if (c->fd < 0)
            continue; /* torn down earlier in this batch */
        if (e & EPOLLOUT) {
            flush(io, c);
            if (c->fd < 0)
                continue;
        }
        if (e & (EPOLLIN | EPOLLHUP | EPOLLERR))
            do_read(io, c);
    }
    bury(io);
}

static void ep_destroy(struct rc_io *io)
{
    struct ep_state *st = io->be_state;
    if (!st)
        return;
    while (io->head)
        teardown(io, io->head, "server stopped");
    bury(io);
    ep_unlisten(io);
    close(st->epfd);
    free(st->rbuf);
    free(st);
    io->be_state = NULL;
}

static int ep_watch(struct rc_io *io, int fd, rc_watch_fn cb, void *arg)
{
    struct ep_state *st = io->be_state;

    for (int i = 0; i < RC_MAX_WATCH; i++) {
        struct ep_watch *w = &st->wat[i];
        if (w->fd >= 0)
            continue;
        int err = ctl(io, EPOLL_CTL_ADD, fd, EPOLLIN, (uint64_t)(WATCH_TAG + i));
        if (err)
            return err;
        w->fd = fd;
        w->cb = cb;
        w->arg = arg;
        return 0;
    }
    return -ENOSPC;
}

static void ep_unwatch(struct rc_io *io, int fd)
{
    struct ep_state *st = io->be_state;

    for (int i = 0; st && i < RC_MAX_WATCH; i++) {
        if (st->wat[i].fd == fd) {
            ctl(io, EPOLL_CTL_DEL, fd, 0, 0);
            st->wat[i].fd = -1;
        }
    }
}

const struct rc_backend_ops rc_backend_epoll = {
    .name = "epoll",
    .init = ep_init,
    .listen = ep_listen,
    .unlisten = ep_unlisten,
    .poll = ep_poll,
    .destroy = ep_destroy,
    .watch = ep_watch,
    .unwatch = ep_unwatch,
    .adopt = ep_adopt,
};

const struct rc_backend_ops rc_backend_naive = {
    .name = "naive",
    .init = naive_init,
    .listen = ep_listen,
    .unlisten = ep_unlisten,
    .poll = ep_poll,
    .destroy = ep_destroy,
    .watch = ep_watch,
    .unwatch = ep_unwatch,
    .adopt = ep_adopt,
};
