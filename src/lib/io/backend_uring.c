/* backend_uring.c -- the io_uring backend: one io_uring_enter per loop iteration.
 *
 * This is the backend ringcast exists for. Each poll() prepares one send SQE
 * for every connection on the dirty list that has output and no send in
 * flight (SEND for one contiguous range, SENDMSG with up to 64 iovecs
 * otherwise; the iovecs point straight into the shared frame slabs), then
 * makes exactly one io_uring_submit_and_wait_timeout() call, which hands the
 * whole batch to the kernel, waits for events and runs the deferred
 * completions (SINGLE_ISSUER | DEFER_TASKRUN). Completions are then
 * dispatched: accepts become connections, receives feed the parser, sends
 * release their slab references. Work created while dispatching (the next
 * send of a client whose send just completed, re-armed receives) rides on
 * the next iteration's enter, so a busy fan-out costs one system call per
 * loop iteration however many clients it serves.
 *
 * Rules kept:
 *  - at most one send in flight per socket, with MSG_WAITALL: the kernel may
 *    reorder two outstanding sends on one socket when one of them has to
 *    wait for poll (io_uring(7); two unlinked SENDs corrupted the stream in
 *    every run we measured), and with MSG_WAITALL the kernel retries until
 *    all is queued, so a short result can only mean the connection broke;
 *  - a buffer handed to the kernel is the kernel's until its CQE: a
 *    connection torn down with a send in flight becomes a zombie (unlinked,
 *    its requests cancelled) and is freed only once its last CQE arrives;
 *  - a slot of the registered file table is reused only after every request
 *    that named it has completed and its file was closed (close_direct), and
 *    user_data carries the slot's generation, so no stale completion can
 *    touch a newer connection.
 * Connections are accepted as normal fds (multishot accept: the server needs
 * real fds for getpeername and SO_SNDBUF) and registered into slot
 * conn->slot; sends and receives use the fixed file. Receives are multishot
 * with one provided-buffer ring for the whole server. Which connections send
 * on an iteration is the accumulation policy's call (accum.c): subscribers'
 * output may stay on the dirty list for a while so that more messages share
 * each send, and the wait timeout wakes the loop in time for it.
 *
 * The kmod backend (backend_kmod.c) is this one with another way of sending:
 * a *sender* (uring_int.h) takes the connections that may send instead of
 * start_send(), and may leave one waiting for writability on a POLL_ADD.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "uring_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uring_compat.h"

#define SEND_MAX_IOV    64
#define SEND_MAX_BYTES  (1u << 20)
#define RECV_BGID       0
#define RECV_NBUFS      1024u /* power of two */
#define RECV_BUFSZ      4096u
#define SLOT_SPARE      64u /* beyond maxclients: rejected clients, closing slots */
#define SQ_MIN          64u
#define SQ_MAX          32768u
#define CQ_MAX          65536u /* kernel limit: 2 x the largest SQ */
#define CQ_SLACK        1024u
#define INIT_TRIES      4
#define ACCEPT_RETRY_MS 100
#define DESTROY_WAIT_MS 2000
#define OVERFLOW_ROUNDS 4
#define SLOT_NONE       UINT32_MAX

/* What a CQE belongs to; the low byte of user_data. */
enum uop {
    UOP_NOP = 1,
    UOP_ACCEPT,
    UOP_RECV,
    UOP_SEND,
    UOP_CLOSE,
    UOP_CANCEL,
    UOP_WATCH,
    UOP_WAKE,
    UOP_WRITABLE
};

/* user_data = slot (or listener index) << 32 | generation (24 bits) << 8 | op. */
#define GEN_MASK 0xffffffu

static uint64_t pack(uint32_t slot, uint32_t gen, enum uop op)
{
    return ((uint64_t)slot << 32) | ((uint64_t)(gen & GEN_MASK) << 8) | (uint64_t)op;
}

enum slot_state {
    SLOT_FREE,    /* on the free list, file table entry empty */
    SLOT_LIVE,    /* a connection the server knows */
    SLOT_ZOMBIE,  /* unlinked; waiting for in-flight requests to complete */
    SLOT_CLOSING, /* connection freed; close_direct of the table entry in flight */
};

#define OP_SEND 1u /* a send is in flight */
#define OP_RECV 2u /* the multishot receive is armed */
#define OP_POLL 4u /* a POLL_ADD waits for the socket to be writable (a sender's) */

struct uslot {
    struct rc_io_conn *c;
    uint32_t gen;
    uint8_t state;
    uint8_t ops; /* OP_* requests that will still post a final CQE */
    uint32_t next_free;
    uint32_t send_len; /* bytes of the in-flight send */
    bool zc;           /* the in-flight send is a SEND_ZC: done at its notification */
    int zc_res;        /* its result, kept until the notification arrives */
    struct iovec *iov; /* SEND_MAX_IOV entries, allocated on first use, kept with the slot */
    struct msghdr msg;
};

struct ulistener {
    int fd;
    bool armed;
    bool closed;
    uint64_t retry_ms; /* after a resource error, re-arm no earlier than this */
};

/* A watched fd (backend.h: ops->watch): a multishot POLL_ADD, re-armed when
 * the kernel ends it; the callback drains the fd (multishot poll reports new
 * readiness, not a level), and asks to be called again when it stopped early. */
struct uwatch {
    bool used;
    bool armed;
    bool again; /* callback left input behind: call it again, do not wait */
    bool dead;  /* the poll failed for good (logged once) */
    uint32_t gen;
    int fd;
    rc_watch_fn cb;
    void *arg;
};

struct uring_state {
    struct io_uring ring;
    struct uwatch wat[RC_MAX_WATCH];
    struct uslot *slots;
    uint32_t nslots;
    uint32_t free_head;
    uint32_t nbusy; /* slots not free */
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned buf_returns; /* buffers put back since the last advance */
    struct ulistener lis[RC_MAX_LISTEN];
    int nlis;
    const struct rc_uring_sender *snd; /* NULL: one send SQE per connection */
    void *snd_arg;
};

/* ---- Small helpers ---- */

/* Returns an SQE. When the SQ is full mid-batch, what is queued goes to the
 * kernel first (one more enter, counted) and the batch goes on. */
static struct io_uring_sqe *get_sqe(struct rc_io *io, struct uring_state *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

    for (int i = 0; !sqe && i < 3; i++) {
        io->stats.sys[RC_SYS_IO_URING_ENTER]++;
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    if (!sqe) {
        /* Unreachable short of the kernel refusing every submission: the
         * state machine cannot lose a request and stay correct. */
        rc_log(io->log, RC_LOG_WARNING, "io_uring: submission queue stuck full, aborting");
        abort();
    }
    return sqe;
}

static void count_close(struct rc_io *io, int fd)
{
    close(fd);
    io->stats.sys[RC_SYS_CLOSE]++;
}

static uint32_t slot_alloc(struct uring_state *u)
{
    uint32_t i = u->free_head;
    if (i == SLOT_NONE)
        return SLOT_NONE;
    u->free_head = u->slots[i].next_free;
    u->nbusy++;
    return i;
}

static void slot_release(struct uring_state *u, uint32_t i)
{
    struct uslot *sl = &u->slots[i];
    sl->state = SLOT_FREE;
    sl->c = NULL;
    sl->ops = 0;
    sl->gen = (sl->gen + 1) & GEN_MASK;
    sl->next_free = u->free_head;
    u->free_head = i;
    u->nbusy--;
}

static void return_buf(struct uring_state *u, unsigned bid)
{
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * RECV_BUFSZ, RECV_BUFSZ,
                          (unsigned short)bid, io_uring_buf_ring_mask(RECV_NBUFS),
                          (int)u->buf_returns);
    u->buf_returns++;
}

/* ---- Requests ---- */

static void arm_accept(struct rc_io *io, struct uring_state *u, int i)
{
    struct io_uring_sqe *sqe = get_sqe(io, u);

    io_uring_prep_multishot_accept(sqe, u->lis[i].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, pack((uint32_t)i, 0, UOP_ACCEPT));
    u->lis[i].armed = true;
}

static void arm_recv(struct rc_io *io, struct uring_state *u, uint32_t i)
{
    struct io_uring_sqe *sqe = get_sqe(io, u);

    io_uring_prep_recv_multishot(sqe, (int)i, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = RECV_BGID;
    io_uring_sqe_set_data64(sqe, pack(i, u->slots[i].gen, UOP_RECV));
    u->slots[i].ops |= OP_RECV;
}

/* Hands the head of c's queue to the kernel: one SEND or SENDMSG, never a
 * second one while this is in flight. */
static void start_send(struct rc_io *io, struct uring_state *u, struct uslot *sl)
{
    struct rc_io_conn *c = sl->c;
    struct io_uring_sqe *sqe;
    struct iovec iov[SEND_MAX_IOV];
    size_t bytes = 0;
    int n;

    n = rc_queue_iov(&c->out, iov, SEND_MAX_IOV, SEND_MAX_BYTES, &bytes);
    if (n <= 0 || bytes == 0)
        return;
    if (n > 1) {
        /* Only SENDMSG needs a lasting iovec array; a connection that never
         * gets more than one range per send (an idle subscriber) saves it. */
        if (!sl->iov)
            sl->iov = rc_xmalloc(sizeof(*sl->iov) * SEND_MAX_IOV);
        memcpy(sl->iov, iov, sizeof(*iov) * (size_t)n);
    }
    sqe = get_sqe(io, u);
    sl->zc = false;
    if (n == 1 && io->cfg.zc_threshold && bytes >= io->cfg.zc_threshold) {
        /* Zero copy: the kernel sends from the slab's pages, which stay in
         * use until the notification CQE (after the peer's ACK), so the
         * send only counts as done then. On loopback the kernel copies
         * anyway and this costs more (research note, section 2): opt-in. */
        io_uring_prep_send_zc(sqe, (int)c->slot, iov[0].iov_base, bytes, MSG_WAITALL, 0);
        sl->zc = true;
        sl->zc_res = 0;
        io->stats.sends_zc++;
    } else if (n == 1) {
        io_uring_prep_send(sqe, (int)c->slot, iov[0].iov_base, bytes, MSG_WAITALL);
    } else {
        /* The iovec array stays untouched until the CQE, although the kernel
         * copies it at submit time (IORING_FEAT_SUBMIT_STABLE). */
        memset(&sl->msg, 0, sizeof(sl->msg));
        sl->msg.msg_iov = sl->iov;
        sl->msg.msg_iovlen = (size_t)n;
        io_uring_prep_sendmsg(sqe, (int)c->slot, &sl->msg, MSG_WAITALL);
    }
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, pack(c->slot, sl->gen, UOP_SEND));
    sl->ops |= OP_SEND;
    sl->send_len = (uint32_t)bytes;
    c->send_busy = true;
    c->out.inflight = bytes;
}

/* A zombie whose last request completed: free the connection, then empty
 * its file table entry; the slot is reusable once that close completes. */
static void maybe_release(struct rc_io *io, struct uring_state *u, uint32_t i)
{
    struct uslot *sl = &u->slots[i];
    struct io_uring_sqe *sqe;

    if (sl->state != SLOT_ZOMBIE || sl->ops)
        return;
    io->host->free(io, sl->c);
    sl->c = NULL;
    sqe = get_sqe(io, u);
    io_uring_prep_close_direct(sqe, i);
    io_uring_sqe_set_data64(sqe, pack(i, sl->gen, UOP_CLOSE));
    sl->state = SLOT_CLOSING;
}

/* Detaches the connection in slot i from the server and closes its fd; the
 * requests still in flight are cancelled and the slot lingers as a zombie
 * until their completions arrive. */
static void teardown(struct rc_io *io, struct uring_state *u, uint32_t i, const char *why)
{
    struct uslot *sl = &u->slots[i];
    struct rc_io_conn *c = sl->c;

    if (sl->state != SLOT_LIVE)
        return;
    io->host->unlink(io, c, why);
    sl->state = SLOT_ZOMBIE;
    if (sl->ops) {
        /* One cancel covers the receive and a send stuck on a full socket. */
        struct io_uring_sqe *sqe = get_sqe(io, u);
        io_uring_prep_cancel_fd(sqe, (int)i,
                                IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_FD_FIXED);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, pack(i, sl->gen, UOP_CANCEL));
    }
    /* The file table still holds the socket; it really closes with close_direct. */
    if (c->fd >= 0) {
        count_close(io, c->fd);
        c->fd = -1;
    }
    maybe_release(io, u, i);
}

/* ---- Completions ---- */

/* offer: let the host hand it to another loop first (not for one it adopts). */
static void accept_fd(struct rc_io *io, struct uring_state *u, int fd, bool offer)
{
    uint32_t i;
    struct uslot *sl;
    struct rc_io_conn *c;
    int ret;

    if (offer && io->host->hand_off && io->host->hand_off(io, fd))
        return;
    i = slot_alloc(u);
    if (i == SLOT_NONE) {
        rc_log(io->log, RC_LOG_WARNING,
               "io_uring: all %u connection slots in use, dropping a new connection", u->nslots);
        count_close(io, fd);
        io->stats.accept_errs++;
        return;
    }
    sl = &u->slots[i];
    io->stats.sys[RC_SYS_OTHER]++;
    ret = io_uring_register_files_update(&u->ring, i, &fd, 1);
    if (ret < 0) {
        rc_log(io->log, RC_LOG_WARNING, "io_uring: cannot register accepted socket in slot %u: %s",
               i, strerror(-ret));
        count_close(io, fd);
        sl->next_free = u->free_head;
        u->free_head = i;
        u->nbusy--;
        return;
    }
    c = io->host->accepted(io, fd);
    sl->c = c;
    sl->state = SLOT_LIVE;
    sl->ops = 0;
    c->slot = i;
    c->gen = sl->gen;
    c->be = sl;
    arm_recv(io, u, i);
}

static void on_accept(struct rc_io *io, struct uring_state *u, uint32_t li, int res, unsigned flags)
{
    struct ulistener *l;

    if (li >= (uint32_t)u->nlis)
        return;
    l = &u->lis[li];
    if (!(flags & IORING_CQE_F_MORE))
        l->armed = false;
    if (res >= 0) {
        if (l->closed)
            count_close(io, res); /* raced with unlisten */
        else
            accept_fd(io, u, res, true);
        return;
    }
    if (l->closed || res == -ECANCELED)
        return;
    if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        /* Out of descriptors or memory: back off instead of spinning. */
        rc_log(io->log, RC_LOG_WARNING, "Accepting client connection: %s", strerror(-res));
        l->retry_ms = rc_now_ms() + ACCEPT_RETRY_MS;
    }
    /* Unarmed listeners are re-armed at the start of the next poll. */
}

static void on_recv(struct rc_io *io, struct uring_state *u, struct uslot *sl, uint32_t i, int res,
                    unsigned flags)
{
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && sl->state == SLOT_LIVE && bid < RECV_NBUFS)
            io->host->input(io, sl->c, u->bufs + (size_t)bid * RECV_BUFSZ, (size_t)res);
        if (bid < RECV_NBUFS)
            return_buf(u, bid);
    }
    if (flags & IORING_CQE_F_MORE)
        return;
    sl->ops &= (uint8_t)~OP_RECV;
    if (sl->state != SLOT_LIVE) {
        maybe_release(io, u, i);
        return;
    }
    if (res > 0 || res == -ENOBUFS) {
        /* The multishot ended (ring ran dry, or the kernel's own reasons);
         * the buffers come back at the end of this reap, before the next
         * enter submits the new receive. */
        arm_recv(io, u, i);
        return;
    }
    if (res == 0 && !(sl->c->flags & RC_IO_CLOSE_AFTER_REPLY) &&
        (!rc_queue_empty(&sl->c->out) || sl->c->held)) {
        /* End of input with replies still queued (or still to come from the
         * host): the peer may only have shut down its sending side. Deliver
         * them without re-arming the receive; the send completion closes
         * the connection once the queue is empty. */
        sl->c->flags |= RC_IO_CLOSE_AFTER_REPLY;
        rc_io_mark_dirty(io, sl->c);
    } else if (res == 0) {
        teardown(io, u, i, "client closed connection");
    } else {
        char why[80];
        snprintf(why, sizeof(why), "receive error: %s", strerror(-res));
        teardown(io, u, i, why);
    }
}

static void on_send(struct rc_io *io, struct uring_state *u, struct uslot *sl, uint32_t i, int res)
{
    struct rc_io_conn *c = sl->c;

    sl->ops &= (uint8_t)~OP_SEND;
    c->send_busy = false;
    if (sl->state != SLOT_LIVE) {
        /* The kernel is done with the references; the zombie can go. */
        rc_queue_consume(&c->out, c->out.inflight);
        maybe_release(io, u, i);
        return;
    }
    if (res < 0 || (uint32_t)res != sl->send_len) {
        char why[80];
        if (res < 0)
            snprintf(why, sizeof(why), "send error: %s", strerror(-res));
        else
            snprintf(why, sizeof(why), "short send (%d of %u bytes)", res, sl->send_len);
        rc_queue_consume(&c->out, c->out.inflight);
        teardown(io, u, i, why);
        return;
    }
    io->host->sent(io, c, (size_t)res);
    if (rc_io_should_close(c))
        teardown(io, u, i, c->flags & RC_IO_CLOSE_ASAP ? "closed by server" : "closed after reply");
    else if (rc_queue_pending(&c->out))
        rc_io_mark_dirty(io, c); /* coalesced: the next iteration sends, or holds, the rest */
}

/* The POLL_ADD of rc_uring_wait_writable completed: the socket has room
 * (or an error, which the next send reports), so c's output is due again. */
static void on_writable(struct rc_io *io, struct uring_state *u, struct uslot *sl, uint32_t i,
                        int res)
{
    struct rc_io_conn *c = sl->c;

    sl->ops &= (uint8_t)~OP_POLL;
    c->send_busy = false;
    if (sl->state != SLOT_LIVE) {
        maybe_release(io, u, i);
        return;
    }
    if (res < 0) {
        char why[80];
        snprintf(why, sizeof(why), "poll error: %s", strerror(-res));
        teardown(io, u, i, why);
    } else if (rc_io_should_close(c)) {
        teardown(io, u, i, c->flags & RC_IO_CLOSE_ASAP ? "closed by server" : "closed after reply");
    } else if (rc_queue_pending(&c->out)) {
        rc_io_mark_dirty(io, c);
    }
}

static void on_watch(struct rc_io *io, struct uring_state *u, uint32_t i, uint32_t gen, int res,
                     unsigned flags)
{
    struct uwatch *w;

    if (i >= RC_MAX_WATCH)
        return;
    w = &u->wat[i];
    if (!w->used || w->gen != gen)
        return; /* unwatched meanwhile */
    if (!(flags & IORING_CQE_F_MORE))
        w->armed = false;
    if (res < 0) {
        if (res != -ECANCELED && !w->dead) {
            rc_log(io->log, RC_LOG_WARNING, "io_uring: poll on watched fd %d failed: %s", w->fd,
                   strerror(-res));
            w->dead = true;
        }
        return;
    }
    w->again = w->cb(w->arg);
}

/* Arms the watches the kernel is not polling; lowers *wait_ns to 0 when a
 * callback still has input to handle. */
static void arm_watches(struct rc_io *io, struct uring_state *u, int64_t *wait_ns)
{
    for (uint32_t i = 0; i < RC_MAX_WATCH; i++) {
        struct uwatch *w = &u->wat[i];
        if (!w->used || w->dead)
            continue;
        if (!w->armed) {
            struct io_uring_sqe *sqe = get_sqe(io, u);
            io_uring_prep_poll_multishot(sqe, w->fd, POLLIN);
            io_uring_sqe_set_data64(sqe, pack(i, w->gen, UOP_WATCH));
            w->armed = true;
        }
        if (w->again)
            *wait_ns = 0;
    }
}

/* Calls again the callbacks that stopped early in the previous round. */
static void rerun_watches(struct rc_io *io, struct uring_state *u)
{
    for (uint32_t i = 0; i < RC_MAX_WATCH; i++) {
        struct uwatch *w = &u->wat[i];
        if (w->used && w->again)
            w->again = w->cb(w->arg);
    }
}

static void dispatch(struct rc_io *io, struct uring_state *u, const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    uint32_t i = (uint32_t)(ud >> 32), gen = (uint32_t)(ud >> 8) & GEN_MASK;
    enum uop op = (enum uop)(ud & 0xff);
    struct uslot *sl;

    if (op == UOP_ACCEPT) {
        on_accept(io, u, i, cqe->res, cqe->flags);
        return;
    }
    if (op == UOP_WATCH) {
        on_watch(io, u, i, gen, cqe->res, cqe->flags);
        return;
    }
    if (op != UOP_RECV && op != UOP_SEND && op != UOP_CLOSE && op != UOP_WRITABLE)
        return; /* NOP, failed cancels: nothing to do */
    if (i >= u->nslots)
        return;
    sl = &u->slots[i];
    if (sl->state == SLOT_FREE || sl->gen != gen) {
        /* Cannot happen by construction (slots wait for their last CQE);
         * still, never let a stale completion touch a reused slot. */
        if (op == UOP_RECV && (cqe->flags & IORING_CQE_F_BUFFER) &&
            (cqe->flags >> IORING_CQE_BUFFER_SHIFT) < RECV_NBUFS)
            return_buf(u, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        return;
    }
    switch (op) {
    case UOP_RECV: on_recv(io, u, sl, i, cqe->res, cqe->flags); break;
    case UOP_SEND:
        if (!(sl->ops & OP_SEND))
            break;
        if (sl->zc) {
            /* SEND_ZC posts its result (F_MORE set when a notification
             * follows), then the notification (F_NOTIF) once the kernel has
             * let go of the pages; the references drop only then. */
            if (!(cqe->flags & IORING_CQE_F_NOTIF)) {
                sl->zc_res = cqe->res;
                if (cqe->flags & IORING_CQE_F_MORE)
                    break;
            }
            sl->zc = false;
            on_send(io, u, sl, i, sl->zc_res);
            break;
        }
        on_send(io, u, sl, i, cqe->res);
        break;
    case UOP_WRITABLE:
        if (sl->ops & OP_POLL)
            on_writable(io, u, sl, i, cqe->res);
        break;
    case UOP_CLOSE:
        if (sl->state == SLOT_CLOSING)
            slot_release(u, i);
        break;
    default: break;
    }
}

/* Dispatches every CQE in the ring; returns how many. */
static unsigned reap(struct rc_io *io, struct uring_state *u)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;

    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        dispatch(io, u, cqe);
        n++;
    }
    io_uring_cq_advance(&u->ring, n);
    if (u->buf_returns) {
        io_uring_buf_ring_advance(u->br, (int)u->buf_returns);
        u->buf_returns = 0;
    }
    return n;
}

/* Enters the kernel once: submits what is queued and waits up to wait_ns
 * (negative: no limit) for at least one completion. */
static int enter(struct rc_io *io, struct uring_state *u, int64_t wait_ns)
{
    struct __kernel_timespec ts;
    struct io_uring_cqe *cqe;

    /* liburing skips the syscall when nothing is to be submitted and a CQE
     * is already waiting; count only real entries. */
    if (io_uring_sq_ready(&u->ring) || !io_uring_cq_ready(&u->ring))
        io->stats.sys[RC_SYS_IO_URING_ENTER]++;
    if (wait_ns < 0)
        return io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, NULL, NULL);
    ts.tv_sec = wait_ns / 1000000000;
    ts.tv_nsec = wait_ns % 1000000000;
    return io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
}

/* ---- The loop ---- */

static void flush_one(struct rc_io *io, struct uring_state *u, struct rc_io_conn *c)
{
    struct uslot *sl = c->be;

    if (!sl || sl->c != c || sl->state != SLOT_LIVE)
        return;
    if (rc_io_should_close(c))
        teardown(io, u, c->slot,
                 c->flags & RC_IO_CLOSE_ASAP ? "closed by server" : "closed after reply");
    else if (c->send_busy || !rc_queue_pending(&c->out))
        return;
    else if (u->snd)
        u->snd->add(io, u->snd_arg, c); /* the sender's batch, not an SQE */
    else
        start_send(io, u, sl);
}

/* rc_accum_flush's send(): c may send now. */
static void flush_cb(struct rc_io *io, struct rc_io_conn *c)
{
    flush_one(io, io->be_state, c);
}

static void arm_listeners(struct rc_io *io, struct uring_state *u, int64_t *wait_ns)
{
    uint64_t now = 0;

    for (int i = 0; i < u->nlis; i++) {
        struct ulistener *l = &u->lis[i];
        if (l->armed || l->closed)
            continue;
        if (l->retry_ms) {
            if (!now)
                now = rc_now_ms();
            if (now < l->retry_ms) {
                int64_t left = (int64_t)(l->retry_ms - now) * 1000000;
                if (*wait_ns < 0 || left < *wait_ns)
                    *wait_ns = left;
                continue;
            }
            l->retry_ms = 0;
        }
        arm_accept(io, u, i);
    }
}

void rc_uring_poll(struct rc_io *io, int timeout_ms)
{
    struct uring_state *u = io->be_state;
    int64_t wait_ns = timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000;
    int ret;

    /* (1) This tick's work for every client: one SQE per sendable client. */
    arm_listeners(io, u, &wait_ns);
    arm_watches(io, u, &wait_ns);
    /* What may wait for more (subscribers' output, accum.c) stays dirty. */
    rc_accum_flush(io, flush_cb, &wait_ns);
    if (u->snd) {
        /* The sender's batch goes to the kernel now; what it leaves to
         * io_uring (POLL_ADDs, teardowns, sends) rides the enter. A
         * connection it put back on the dirty list (more output than one
         * call takes) is due at once. */
        uint32_t ndirty = io->ndirty;
        u->snd->flush(io, u->snd_arg);
        if (io->ndirty > ndirty)
            wait_ns = 0;
    }
    /* (2) One system call submits it all and waits. */
    ret = enter(io, u, wait_ns);
    rc_io_tick(io);
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
        rc_log(io->log, RC_LOG_WARNING, "io_uring_enter: %s", strerror(-ret));
    /* (3) Dispatch; whatever this queues goes out with the next enter. */
    reap(io, u);
    rerun_watches(io, u);
    /* Completions the CQ had no room for wait in a kernel list (FEAT_NODROP). */
    for (int i = 0; i < OVERFLOW_ROUNDS && io_uring_cq_has_overflow(&u->ring); i++) {
        io->stats.sys[RC_SYS_IO_URING_ENTER]++;
        io_uring_get_events(&u->ring);
        reap(io, u);
    }
}

/* ---- Life cycle ---- */

/* Ring sizes: the SQ covers one batch (larger batches submit early); the CQ
 * must never overflow: two CQEs per client (a send and a receive) twice
 * over, plus slack. */
static void ring_sizes(const struct rc_io_cfg *cfg, unsigned *sq, unsigned *cq)
{
    uint64_t want_sq = cfg->uring_entries ? cfg->uring_entries : 4096;
    uint64_t want_cq = 2 * (cfg->maxclients * 2) + CQ_SLACK;

    want_sq = RC_MIN(RC_MAX(want_sq, SQ_MIN), SQ_MAX);
    want_cq = RC_MIN(RC_MAX(want_cq, 2 * want_sq), CQ_MAX);
    *sq = (unsigned)want_sq;
    *cq = (unsigned)want_cq;
}

static int setup_ring(struct uring_state *u, unsigned sq, unsigned cq)
{
    struct io_uring_params p;
    int ret = -ENOMEM;

    for (int i = 0; i < INIT_TRIES; i++) {
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
                  IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = cq;
        ret = io_uring_queue_init_params(sq, &u->ring, &p);
        if (ret != -ENOMEM)
            break;
        /* Ring pages are charged to RLIMIT_MEMLOCK (still on 6.18), per uid
         * and released asynchronously by earlier rings: try smaller. */
        sq = RC_MAX(sq / 2, SQ_MIN);
        cq = RC_MAX(cq / 2, 2 * sq);
    }
    if (ret < 0)
        return ret;
    /* One enter per iteration needs the timeout passed to enter itself (5.11),
     * and completions must never be dropped (5.5). */
    if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) {
        io_uring_queue_exit(&u->ring);
        return -EOPNOTSUPP;
    }
    return 0;
}

/* A NOP through the ring proves submission and completion work (seccomp
 * filters may allow io_uring_setup but not io_uring_enter). */
static int nop_round_trip(struct rc_io *io, struct uring_state *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    struct io_uring_cqe *cqe;
    int ret;

    if (!sqe)
        return -EBUSY;
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, pack(0, 0, UOP_NOP));
    io->stats.sys[RC_SYS_IO_URING_ENTER]++;
    ret = io_uring_submit_and_wait(&u->ring, 1);
    if (ret < 0)
        return ret;
    ret = io_uring_peek_cqe(&u->ring, &cqe);
    if (ret < 0)
        return ret;
    if (cqe->user_data != pack(0, 0, UOP_NOP))
        ret = -EPROTO;
    else
        ret = cqe->res;
    io_uring_cqe_seen(&u->ring, cqe);
    return ret;
}

static uint32_t slot_count(const struct rc_io_cfg *cfg)
{
    uint64_t n = cfg->maxclients + SLOT_SPARE;
    struct rlimit rl;

    /* The kernel refuses a file table larger than RLIMIT_NOFILE, and more
     * connections than that could not be accepted anyway. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && n > rl.rlim_cur)
        n = rl.rlim_cur;
    return (uint32_t)RC_MIN(RC_MAX(n, 1), 1u << 20);
}

static void free_state(struct uring_state *u, bool ring_up)
{
    if (ring_up) {
        compat_free_buf_ring(&u->ring, u->br, RECV_NBUFS, RECV_BGID);
        io_uring_queue_exit(&u->ring);
    }
    if (u->slots)
        for (uint32_t i = 0; i < u->nslots; i++)
            free(u->slots[i].iov);
    free(u->slots);
    free(u->bufs);
    free(u);
}

int rc_uring_init(struct rc_io *io)
{
    const char *fail = getenv("RINGCAST_URING_FAIL");
    struct uring_state *u;
    unsigned sq, cq;
    int ret;

    /* Lets the tests exercise the fallback to epoll on any machine. */
    if (fail && strcmp(fail, "1") == 0)
        return -EPERM;
    u = rc_xcalloc(1, sizeof(*u));
    ring_sizes(&io->cfg, &sq, &cq);
    ret = setup_ring(u, sq, cq);
    if (ret < 0) {
        free_state(u, false);
        return ret;
    }
    ret = nop_round_trip(io, u);
    if (ret < 0)
        goto fail;

    u->nslots = slot_count(&io->cfg);
    io->stats.sys[RC_SYS_OTHER]++;
    ret = io_uring_register_files_sparse(&u->ring, u->nslots);
    if (ret < 0)
        goto fail;
    u->slots = rc_xcalloc(u->nslots, sizeof(*u->slots));
    for (uint32_t i = 0; i < u->nslots; i++)
        u->slots[i].next_free = i + 1 < u->nslots ? i + 1 : SLOT_NONE;
    u->free_head = 0;

    io->stats.sys[RC_SYS_OTHER]++;
    ret = compat_setup_buf_ring(&u->ring, RECV_NBUFS, RECV_BGID, &u->br);
    if (ret < 0)
        goto fail;
    u->bufs = rc_xmalloc((size_t)RECV_NBUFS * RECV_BUFSZ);
    for (unsigned i = 0; i < RECV_NBUFS; i++)
        return_buf(u, i);
    io_uring_buf_ring_advance(u->br, (int)u->buf_returns);
    u->buf_returns = 0;

    /* Saves the fd lookup on every enter; optional. */
    io->stats.sys[RC_SYS_OTHER]++;
    io_uring_register_ring_fd(&u->ring);

    io->be_state = u;
    rc_log(io->log, RC_LOG_VERBOSE,
           "io_uring backend: sq %u, cq %u, %u connection slots, %u x %u B receive buffers",
           u->ring.sq.ring_entries, u->ring.cq.ring_entries, u->nslots, RECV_NBUFS, RECV_BUFSZ);
    return 0;

fail:
    free_state(u, true);
    return ret;
}

int rc_uring_listen(struct rc_io *io, int fd)
{
    struct uring_state *u = io->be_state;
    struct ulistener *l;

    if (u->nlis >= RC_MAX_LISTEN)
        return -ENOSPC;
    l = &u->lis[u->nlis++];
    memset(l, 0, sizeof(*l));
    l->fd = fd;
    /* Armed by the next poll, whose enter submits it. */
    return 0;
}

/* Cancels the multishot accepts; close_fds also closes the sockets. */
static void stop_accepting(struct rc_io *io, struct uring_state *u, bool close_fds)
{
    bool queued = false;

    for (int i = 0; i < u->nlis; i++) {
        struct ulistener *l = &u->lis[i];
        if (l->closed)
            continue;
        if (l->armed) {
            struct io_uring_sqe *sqe = get_sqe(io, u);
            io_uring_prep_cancel64(sqe, pack((uint32_t)i, 0, UOP_ACCEPT), 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data64(sqe, pack((uint32_t)i, 0, UOP_CANCEL));
            queued = true;
        }
        if (close_fds)
            rc_io_close_listener(io, l->fd);
        l->closed = true;
    }
    if (queued) {
        /* Now, not at the next poll: the multishot accept holds the
         * listening socket open and would keep accepting. */
        io->stats.sys[RC_SYS_IO_URING_ENTER]++;
        io_uring_submit(&u->ring);
    }
}

void rc_uring_unlisten(struct rc_io *io)
{
    stop_accepting(io, io->be_state, true);
}

static bool any_zombie(const struct uring_state *u)
{
    for (uint32_t i = 0; i < u->nslots; i++)
        if (u->slots[i].state == SLOT_ZOMBIE)
            return true;
    return false;
}

void rc_uring_destroy(struct rc_io *io)
{
    struct uring_state *u = io->be_state;
    uint64_t deadline;

    if (!u)
        return;
    /* The backend owns the listening sockets it was given. */
    stop_accepting(io, u, true);
    for (uint32_t i = 0; i < u->nslots; i++)
        if (u->slots[i].state == SLOT_LIVE)
            teardown(io, u, i, "server stopped");
    /* Wait (bounded) for the cancelled requests so their memory can go. */
    deadline = rc_now_ms() + DESTROY_WAIT_MS;
    while (any_zombie(u) && rc_now_ms() < deadline) {
        enter(io, u, 50 * 1000000LL);
        reap(io, u);
    }
    for (uint32_t i = 0; i < u->nslots; i++) {
        if (u->slots[i].state == SLOT_ZOMBIE) {
            /* The kernel still owns its send buffers: leak them rather than
             * free memory a request may read. */
            rc_log(io->log, RC_LOG_WARNING, "io_uring: connection id=%llu still busy at exit",
                   (unsigned long long)u->slots[i].c->id);
        }
    }
    if (u->snd)
        u->snd->free(io, u->snd_arg);
    free_state(u, true);
    io->be_state = NULL;
}

int rc_uring_watch(struct rc_io *io, int fd, rc_watch_fn cb, void *arg)
{
    struct uring_state *u = io->be_state;

    for (uint32_t i = 0; i < RC_MAX_WATCH; i++) {
        struct uwatch *w = &u->wat[i];
        if (w->used)
            continue;
        w->used = true;
        w->armed = w->again = w->dead = false;
        w->gen = (w->gen + 1) & GEN_MASK;
        w->fd = fd;
        w->cb = cb;
        w->arg = arg;
        /* Armed by the next poll, whose enter submits it. */
        return 0;
    }
    return -ENOSPC;
}

void rc_uring_unwatch(struct rc_io *io, int fd)
{
    struct uring_state *u = io->be_state;

    for (uint32_t i = 0; u && i < RC_MAX_WATCH; i++) {
        struct uwatch *w = &u->wat[i];
        if (!w->used || w->fd != fd)
            continue;
        if (w->armed) {
            /* The poll holds its own file reference: cancel it now, so the
             * socket really closes when the caller closes fd. */
            struct io_uring_sqe *sqe = get_sqe(io, u);
            io_uring_prep_cancel64(sqe, pack(i, w->gen, UOP_WATCH), 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data64(sqe, pack(i, 0, UOP_CANCEL));
            io->stats.sys[RC_SYS_IO_URING_ENTER]++;
            io_uring_submit(&u->ring);
        }
        w->used = false;
    }
}

void rc_uring_adopt(struct rc_io *io, int fd)
{
    accept_fd(io, io->be_state, fd, false);
}

/* A wake-up for another worker's ring: an IORING_OP_MSG_RING posts a CQE
 * (UOP_WAKE, ignored by dispatch) to target's ring, which ends its wait. It
 * goes out with this ring's next enter, among the sends; no CQE comes back
 * here on success. */
void rc_uring_kick(struct rc_io *io, struct rc_io *target)
{
    struct uring_state *u = io->be_state, *t = target->be_state;
    struct io_uring_sqe *sqe = get_sqe(io, u);

    io_uring_prep_msg_ring(sqe, t->ring.ring_fd, 0, pack(0, 0, UOP_WAKE), 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, pack(0, 0, UOP_NOP));
    io->stats.kicks++;
}

/* ---- For the backends built on this one (uring_int.h) ---- */

void rc_uring_set_sender(struct rc_io *io, const struct rc_uring_sender *snd, void *arg)
{
    struct uring_state *u = io->be_state;

    u->snd = snd;
    u->snd_arg = arg;
}

uint64_t rc_uring_tag(const struct rc_io_conn *c)
{
    return pack(c->slot, c->gen, UOP_NOP);
}

struct rc_io_conn *rc_uring_conn(struct rc_io *io, uint64_t tag)
{
    struct uring_state *u = io->be_state;
    uint32_t i = (uint32_t)(tag >> 32), gen = (uint32_t)(tag >> 8) & GEN_MASK;

    if (i >= u->nslots || u->slots[i].state != SLOT_LIVE || u->slots[i].gen != gen)
        return NULL;
    return u->slots[i].c;
}

void rc_uring_send(struct rc_io *io, struct rc_io_conn *c)
{
    struct uring_state *u = io->be_state;

    if (c->be && !c->send_busy)
        start_send(io, u, c->be);
}

void rc_uring_wait_writable(struct rc_io *io, struct rc_io_conn *c)
{
    struct uring_state *u = io->be_state;
    struct uslot *sl = c->be;
    struct io_uring_sqe *sqe = get_sqe(io, u);

    io_uring_prep_poll_add(sqe, (int)c->slot, POLLOUT);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, pack(c->slot, sl->gen, UOP_WRITABLE));
    sl->ops |= OP_POLL;
    c->send_busy = true;
}

void rc_uring_close(struct rc_io *io, struct rc_io_conn *c, const char *why)
{
    teardown(io, io->be_state, c->slot, why);
}

const struct rc_backend_ops rc_backend_uring = {
    .name = "uring",
    .init = rc_uring_init,
    .listen = rc_uring_listen,
    .unlisten = rc_uring_unlisten,
    .poll = rc_uring_poll,
    .destroy = rc_uring_destroy,
    .watch = rc_uring_watch,
    .unwatch = rc_uring_unwatch,
    .adopt = rc_uring_adopt,
    .kick = rc_uring_kick,
};
