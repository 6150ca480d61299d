/* io.h -- what the backends see: connections as queues to send, and the host that owns them.
 *
 * The io layer moves bytes between sockets and a host (the server's
 * connection layer) and counts every system call it makes. It never sees a
 * subscription table or a wire format: each connection is a struct
 * rc_io_conn -- a socket, a send queue of slab references and a few state
 * bits -- embedded first in the host's own connection struct. The host
 * tells the backend what to send by putting connections on the dirty list
 * (rc_io_mark_dirty); the backend hands the whole list to the kernel in one
 * batch per iteration and reports back through the host's ops (accepted,
 * input, sent, unlink, free).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_IO_H
#define RC_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "accum.h"
#include "queue.h"
#include "util.h"

#define RC_MAX_BIND   16                /* addresses to listen on */
#define RC_MAX_LISTEN (2 * RC_MAX_BIND) /* listening sockets: the RESP and the HTTP port */

/* Connection state bits the backends act on. Bits 16 and up are the host's. */
#define RC_IO_CLOSE_AFTER_REPLY (1u << 0) /* close once the queue drains */
#define RC_IO_CLOSE_ASAP        (1u << 1) /* close now, drop what is queued */
#define RC_IO_UNLINKED          (1u << 2) /* the host let go of it (ops->unlink done) */
#define RC_IO_DIRTY             (1u << 3) /* on the dirty list */
#define RC_IO_HOLDABLE          (1u << 4) /* output may be held to batch it (subscribers) */

struct rc_io_conn {
    uint64_t id;
    int fd;
    unsigned flags;
    uint32_t slot;  /* backend's slot table index */
    uint32_t gen;   /* bumped when the slot is reused */
    bool send_busy; /* a send in flight (uring), blocked on EPOLLOUT (epoll) or POLLOUT (kmod) */
    bool held;      /* the host holds output for it elsewhere, still to come (worker.h) */
    struct rc_queue out;
    struct rc_io_conn *prev, *next;   /* every live connection, in creation order */
    struct rc_io_conn *dprev, *dnext; /* dirty list */
    void *be;                         /* backend's per-connection state */
    struct rc_accum_conn acc;         /* its output's recent history (accum.h) */
};

/* True when a backend should tear c down now. */
static inline bool rc_io_should_close(const struct rc_io_conn *c)
{
    return (c->flags & RC_IO_CLOSE_ASAP) ||
           ((c->flags & RC_IO_CLOSE_AFTER_REPLY) && rc_queue_empty(&c->out) && !c->held);
}

/* System calls, by kind (INFO fanout). */
enum rc_sys {
    RC_SYS_IO_URING_ENTER,
    RC_SYS_EPOLL_WAIT,
    RC_SYS_EPOLL_CTL,
    RC_SYS_WRITE,
    RC_SYS_WRITEV,
    RC_SYS_SENDMSG,
    RC_SYS_READ,
    RC_SYS_ACCEPT,
    RC_SYS_CLOSE,
    RC_SYS_SETSOCKOPT,
    RC_SYS_OTHER,
    RC_SYS_RECVMMSG,
    RC_SYS_IOCTL, /* kmod: RCK_IOC_SEND (and the version check) */
    RC_SYS__COUNT
};

extern const char *const rc_sys_names[RC_SYS__COUNT];

struct rc_io_stats {
    uint64_t sys[RC_SYS__COUNT];
    uint64_t bytes_out;   /* handed to (and accepted by) the kernel */
    uint64_t sends;       /* send operations (iovec batches) */
    uint64_t sends_zc;    /* of which zero-copy (io_uring SEND_ZC) */
    uint64_t accept_errs; /* accepts refused for lack of resources (EMFILE, ...) */
    uint64_t held_ticks;  /* iterations that held some subscriber's output back */
    uint64_t held_sends;  /* sends of output that had been held */
    uint64_t held_us;     /* total time that output was held, over those sends */
    uint64_t held_max_us; /* the longest one */
    uint64_t late_max_us; /* the most the loop came back after the time it planned to */
    uint64_t kicks;       /* wake-ups sent to other loops (workers) */
    uint64_t iterations;  /* loop iterations (each hands the kernel that tick's output) */
};

static inline uint64_t rc_io_syscalls(const struct rc_io_stats *st)
{
    uint64_t n = 0;
    for (int i = 0; i < RC_SYS__COUNT; i++)
        n += st->sys[i];
    return n;
}

struct rc_io;

/* What the host (the connection layer) does for a backend. */
struct rc_io_host_ops {
    /* A new connection on fd (non-blocking): the host allocates it, links it
     * (rc_io_link) and returns it; it may already be CLOSE_AFTER_REPLY. */
    struct rc_io_conn *(*accepted)(struct rc_io *io, int fd);
    /* Optional: offered every accepted fd first; true when the host took it
     * (to hand to another loop, which adopts it), and the backend forgets it. */
    bool (*hand_off)(struct rc_io *io, int fd);
    /* Bytes received on c. */
    void (*input)(struct rc_io *io, struct rc_io_conn *c, const char *buf, size_t n);
    /* The kernel accepted n bytes of c's queue (the backend has not consumed them). */
    void (*sent)(struct rc_io *io, struct rc_io_conn *c, size_t n);
    /* Detach c (its subscriptions, the lists) and drop its unsent output.
     * Idempotent; sets RC_IO_UNLINKED. why is logged at verbose level. */
    void (*unlink)(struct rc_io *io, struct rc_io_conn *c, const char *why);
    /* Free c: after unlink, with nothing in flight. */
    void (*free)(struct rc_io *io, struct rc_io_conn *c);
};

/* Settings a backend reads (the host keeps them current on CONFIG SET). */
struct rc_io_cfg {
    uint64_t maxclients;     /* sizes the uring slot table */
    uint64_t uring_entries;  /* submission queue size, 0 = default */
    uint64_t tick_us;        /* fixed window: hold subscribers' output this long, 0 = adaptive */
    uint64_t budget_us;      /* adaptive: hold at most this long, 0 = never (accum.h) */
    uint64_t tick_bytes;     /* ... or until this much is pending, 0 = no bound */
    uint64_t zc_threshold;   /* SEND_ZC for single sends at least this large, 0 = off */
    const char *kmod_device; /* kmod: the module's device (borrowed from the host's config) */
    bool kmod_zerocopy;      /* kmod: RCK_F_ZEROCOPY on every call */
};

/* Called on the loop thread when a watched fd is readable. Returns true when
 * it stopped early with input left: the backend then calls it again on the
 * next iteration without waiting for a new readiness event. */
typedef bool (*rc_watch_fn)(void *arg);

/* Extra descriptors a backend watches besides clients and listeners. */
#define RC_MAX_WATCH 32

struct rc_io {
    const struct rc_io_host_ops *host;
    const struct rc_logger *log;
    struct rc_io_cfg cfg;
    bool stopping;                              /* shutdown: flush now, never hold output */
    struct rc_io_conn *head, *tail;             /* every live connection */
    struct rc_io_conn *dirty_head, *dirty_tail; /* what to hand the kernel next */
    uint32_t ndirty;                            /* connections on the dirty list */
    struct rc_accum acc;                        /* iteration clock, CPU sample (accum.h) */
    struct rc_io_stats stats;
    const struct rc_backend_ops *be; /* backend.h */
    void *be_state;
};

/* Adds c to io's connection list (the host, in ops->accepted). */
void rc_io_link(struct rc_io *io, struct rc_io_conn *c);
/* Takes c off the connection and dirty lists (the host, in ops->unlink). */
void rc_io_unlink(struct rc_io *io, struct rc_io_conn *c);
void rc_io_dirty_append(struct rc_io *io, struct rc_io_conn *c);
/* Puts c on the dirty list (if not there). Inline: it runs once per delivery. */
static inline void rc_io_mark_dirty(struct rc_io *io, struct rc_io_conn *c)
{
    if (!(c->flags & RC_IO_DIRTY))
        rc_io_dirty_append(io, c);
}
/* New output for c was queued (the host, on every push): c goes on the
 * dirty list, and for a holdable c the first push of an iteration is
 * recorded in its history. */
static inline void rc_io_note_output(struct rc_io *io, struct rc_io_conn *c)
{
    if ((c->flags & RC_IO_HOLDABLE) && c->acc.tick != io->acc.tick) {
        c->acc.tick = io->acc.tick;
        rc_accum_note(&c->acc, io->cfg.budget_us, io->acc.now_us);
    }
    rc_io_mark_dirty(io, c);
}
/* A backend, once per iteration, after waiting and before dispatching events. */
static inline void rc_io_tick(struct rc_io *io)
{
    io->acc.tick++;
    io->acc.now_us = rc_now_us();
    io->stats.iterations++;
}
/* Takes c off the dirty list (no-op when it is not on it). */
void rc_io_unmark_dirty(struct rc_io *io, struct rc_io_conn *c);
/* Pops the next connection from the dirty list, or NULL. */
struct rc_io_conn *rc_io_pop_dirty(struct rc_io *io);
/* Closes a listening socket so that its port is free at once: shutdown()
 * takes it out of the LISTEN state even while another reference to the file
 * lives on (an io_uring request not yet torn down), then close(). */
void rc_io_close_listener(struct rc_io *io, int fd);

#endif
