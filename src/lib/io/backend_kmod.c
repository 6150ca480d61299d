/* backend_kmod.c -- the kmod backend: every client's output in one ioctl per loop iteration.
 *
 * The literal form of the design (docs/design.md, "Backends"): the ringcast
 * kernel module (kmod/, docs/kmod.md) takes a whole tick's output -- one
 * buffer holding each byte once, slices of it, and (socket, run of slices)
 * targets -- in one RCK_IOC_SEND and sends each socket its part from one
 * kernel copy of the buffer (include/ringcast_kmod.h).
 *
 * Everything but the clients' sends is the uring backend's (uring_int.h):
 * accepts, receives, watches, timers and wake-ups between workers ride the
 * same io_uring_enter per iteration. What changes is the sender: each
 * connection the accumulation policy lets send is added to a batch
 * (kmod_batch.c copies each shared frame once into a staging buffer reused
 * from tick to tick), and before the enter the batch goes to the module in
 * one ioctl -- more than one only when a tick exceeds the module's limits
 * (RCK_MAX_BUF, RCK_MAX_SLICES, RCK_MAX_TARGETS), each counted as sys_ioctl.
 *
 * The ioctl is synchronous and sends without blocking, so each target's
 * result settles its connection at once:
 *  - all bytes taken: they are consumed as after a send completion, and a
 *    connection with more queued goes back on the dirty list;
 *  - some or none taken (a partial send, -EAGAIN): the rest stays queued and
 *    the connection waits for POLLOUT on an io_uring POLL_ADD, send_busy
 *    until it fires, so a full socket is never retried in a loop;
 *  - another error: the connection is torn down with the reason, as a failed
 *    send on the uring backend is.
 * No buffer outlives the call (the module copies buf, or with RCK_F_ZEROCOPY
 * references its own copy's pages), so nothing is kept in flight.
 *
 * Falling back: init opens the device and checks RCK_IOC_VERSION before it
 * sets up a ring; when either fails it logs one line saying why and returns
 * -errno, and the server runs the uring backend instead (server.c). If the
 * module ever refuses a call as a whole (anything but ENOMEM or EINTR: a bug
 * on one side), that call's connections are sent the uring way, a line is
 * logged, and this loop uses io_uring sends from then on.
 *
 * Per instance: each worker runs its own backend and opens its own device fd.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kmod_batch.h"
#include "uring_int.h"

/* One target's share of a call, like one uring send. */
#define TARGET_MAX_REFS  64
#define TARGET_MAX_BYTES (1u << 20)

/* A target always fits an empty call: its ranges lie in at most
 * TARGET_MAX_REFS standard slabs plus TARGET_MAX_BYTES of large ones. */
_Static_assert(TARGET_MAX_REFS *(uint64_t)RC_SLAB_SIZE + TARGET_MAX_BYTES <= RCK_MAX_BUF,
               "a kmod target must fit one call");

struct kmod_state {
    int fd; /* the device, this loop's own */
    struct rc_kbatch batch;
    struct rc_ref refs[TARGET_MAX_REFS]; /* one connection's ranges, while adding it */
    bool broken;                         /* the device refused a call: io_uring sends now */
};

/* Settles target i of the call just made (kmod_state.batch). */
static void settle(struct rc_io *io, const struct rc_kbatch *b, uint32_t i)
{
    struct rc_io_conn *c = rc_uring_conn(io, b->info[i].tag);
    int64_t res = b->targets[i].result;

    if (!c)
        return; /* torn down while an earlier target was settled */
    if (res < 0 && res != -EAGAIN) {
        char why[80];
        snprintf(why, sizeof(why), "send error: %s", strerror((int)-res));
        rc_uring_close(io, c, why);
        return;
    }
    if (res > (int64_t)b->info[i].bytes) {
        /* Never from a module that keeps the contract; consuming it would
         * drop output the socket never took. */
        char why[96];
        snprintf(why, sizeof(why), "kmod result %lld beyond the %u bytes asked", (long long)res,
                 b->info[i].bytes);
        rc_uring_close(io, c, why);
        return;
    }
    if (res > 0)
        io->host->sent(io, c, (size_t)res);
    if (res < (int64_t)b->info[i].bytes)
        rc_uring_wait_writable(io, c); /* full: the rest waits for room */
    else if (rc_io_should_close(c))
        rc_uring_close(io, c,
                       c->flags & RC_IO_CLOSE_ASAP ? "closed by server" : "closed after reply");
    else if (rc_queue_pending(&c->out))
        rc_io_mark_dirty(io, c); /* more than one call takes: the next iteration sends it */
}

/* The module refused the whole call (errno e): nothing was sent, so every
 * target goes out the uring way now. */
static void call_failed(struct rc_io *io, struct kmod_state *k, int e)
{
    for (uint32_t i = 0; i < k->batch.ntargets; i++) {
        struct rc_io_conn *c = rc_uring_conn(io, k->batch.info[i].tag);
        if (c)
            rc_uring_send(io, c);
    }
    if (e == ENOMEM || e == EINTR)
        return; /* passing: the next call may well succeed */
    rc_log(io->log, RC_LOG_WARNING, "kmod: %s: RCK_IOC_SEND: %s; sending through io_uring now",
           io->cfg.kmod_device, strerror(e));
    k->broken = true;
}

/* Hands the batch to the module (one ioctl) and settles every target. */
static void send_batch(struct rc_io *io, struct kmod_state *k)
{
    struct rck_send req;

    if (rc_kbatch_empty(&k->batch))
        return;
    rc_kbatch_finish(&k->batch, io->cfg.kmod_zerocopy ? RCK_F_ZEROCOPY : 0, &req);
    io->stats.sys[RC_SYS_IOCTL]++;
    if (ioctl(k->fd, RCK_IOC_SEND, &req) < 0)
        call_failed(io, k, errno);
    else
        for (uint32_t i = 0; i < k->batch.ntargets; i++)
            settle(io, &k->batch, i);
    rc_kbatch_reset(&k->batch);
}

/* The sender's add: c may send now. */
static void kmod_add(struct rc_io *io, void *arg, struct rc_io_conn *c)
{
    struct kmod_state *k = arg;
    size_t bytes;
    int n, ret;

    if (k->broken || c->fd < 0) {
        rc_uring_send(io, c);
        return;
    }
    n = rc_queue_refs(&c->out, k->refs, TARGET_MAX_REFS, TARGET_MAX_BYTES, &bytes);
    if (n <= 0 || bytes == 0)
        return;
    ret = rc_kbatch_add(&k->batch, c->fd, rc_uring_tag(c), k->refs, (uint32_t)n);
    if (ret == -ENOSPC) {
        /* This tick outgrew one call: send what it has, start another. */
        send_batch(io, k);
        ret = rc_kbatch_add(&k->batch, c->fd, rc_uring_tag(c), k->refs, (uint32_t)n);
    }
    if (ret < 0)
        rc_uring_send(io, c); /* cannot happen (the static assert above); never lose it */
}

static void kmod_flush(struct rc_io *io, void *arg)
{
    send_batch(io, arg);
}

static void kmod_free(struct rc_io *io, void *arg)
{
    struct kmod_state *k = arg;

    rc_kbatch_free(&k->batch);
    close(k->fd);
    io->stats.sys[RC_SYS_CLOSE]++;
    free(k);
}

static const struct rc_uring_sender kmod_sender = {
    .add = kmod_add,
    .flush = kmod_flush,
    .free = kmod_free,
};

/* Opens the device and checks that it speaks our interface. Returns the fd,
 * or -errno after logging why (and that the server goes on with uring). */
static int open_device(struct rc_io *io)
{
    const char *path = io->cfg.kmod_device;
    int fd, v, err;

    io->stats.sys[RC_SYS_OTHER]++;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        err = errno;
        rc_log(io->log, RC_LOG_WARNING, "kmod: %s: %s; using uring", path, strerror(err));
        return -err;
    }
    io->stats.sys[RC_SYS_IOCTL]++;
    v = ioctl(fd, RCK_IOC_VERSION);
    if (v == RCK_VERSION)
        return fd;
    err = v < 0 ? errno : EPROTONOSUPPORT;
    if (v < 0)
        rc_log(io->log, RC_LOG_WARNING,
               "kmod: %s: RCK_IOC_VERSION: %s (not the ringcast device?); using uring", path,
               strerror(err));
    else
        rc_log(io->log, RC_LOG_WARNING,
               "kmod: %s: interface version %d, this build speaks %d; using uring", path, v,
               RCK_VERSION);
    close(fd);
    io->stats.sys[RC_SYS_CLOSE]++;
    return -err;
}

static int kmod_init(struct rc_io *io)
{
    struct kmod_state *k;
    int fd = open_device(io), err;

    if (fd < 0)
        return fd;
    err = rc_uring_init(io);
    if (err) {
        close(fd);
        io->stats.sys[RC_SYS_CLOSE]++;
        return err;
    }
    k = rc_xcalloc(1, sizeof(*k));
    k->fd = fd;
    rc_kbatch_init(&k->batch, &RC_KBATCH_DEVICE_LIMITS);
    rc_uring_set_sender(io, &kmod_sender, k);
    rc_log(io->log, RC_LOG_VERBOSE, "kmod backend: %s, interface version %d%s", io->cfg.kmod_device,
           RCK_VERSION, io->cfg.kmod_zerocopy ? ", zero copy" : "");
    return 0;
}

const struct rc_backend_ops rc_backend_kmod = {
    .name = "kmod",
    .init = kmod_init,
    .listen = rc_uring_listen,
    .unlisten = rc_uring_unlisten,
    .poll = rc_uring_poll,
    .destroy = rc_uring_destroy,
    .watch = rc_uring_watch,
    .unwatch = rc_uring_unwatch,
    .adopt = rc_uring_adopt,
    .kick = rc_uring_kick,
};
