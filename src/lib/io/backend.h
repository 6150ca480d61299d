/* backend.h -- the I/O backends behind one batch-shaped interface.
 *
 * A backend owns the sockets and the wait for events. Each loop iteration it
 * is asked to hand the kernel "this tick's work for all clients" -- every
 * connection on the server's dirty list -- then to wait for and dispatch
 * events (accepts, input, send completions) back into the host through
 * the ops of io.h (accepted, input, sent, unlink, free).
 *
 *   uring  one io_uring_enter per iteration submits every client's send and
 *          reaps completions (backend_uring.c)
 *   epoll  readiness loop, one writev per client per iteration (backend_epoll.c)
 *   naive  one write per message per client, the baseline (also in
 *          backend_epoll.c: the same loop with per-message writes)
 *   kmod   the uring loop, but every client's output goes to the ringcast
 *          kernel module in one ioctl per iteration (backend_kmod.c)
 *
 * The host never calls the kernel for socket I/O itself; everything the
 * backends do is counted in io->stats.sys[] so INFO can report syscalls per
 * delivery.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_BACKEND_H
#define RC_BACKEND_H

#include <stdbool.h>

#include "io.h"

struct rc_backend_ops {
    const char *name;
    /* Prepares the backend. Returns 0, or -errno when it cannot run on this
     * machine (the server then falls back, kmod to uring and uring to epoll,
     * logging why). */
    int (*init)(struct rc_io *io);
    /* Starts accepting on a bound, listening, non-blocking socket. */
    int (*listen)(struct rc_io *io, int fd);
    /* Stops accepting (shutdown): closes the listening sockets. */
    void (*unlisten)(struct rc_io *io);
    /* One iteration: flush the dirty list, wait up to timeout_ms, dispatch. */
    void (*poll)(struct rc_io *io, int timeout_ms);
    /* Frees everything: every connection is torn down and the listening
     * sockets still open are closed (they belong to the backend once given
     * to listen()). */
    void (*destroy)(struct rc_io *io);
    /* Watches fd (not a client) for readability: cb(arg) runs on the loop
     * thread when it is readable. Returns 0 or -errno (-ENOSPC past
     * RC_MAX_WATCH watches). */
    int (*watch)(struct rc_io *io, int fd, rc_watch_fn cb, void *arg);
    /* Stops watching fd; call before closing it. */
    void (*unwatch)(struct rc_io *io, int fd);
    /* Takes fd, a connection another loop accepted, as if it had accepted it. */
    void (*adopt)(struct rc_io *io, int fd);
    /* Optional: wakes target's loop (another instance of this backend, on
     * another thread) with no system call of its own -- the wake-up rides
     * io's next submission (uring: an IORING_OP_MSG_RING). NULL: the host
     * wakes loops through an eventfd each one watches. */
    void (*kick)(struct rc_io *io, struct rc_io *target);
};

extern const struct rc_backend_ops rc_backend_epoll;
extern const struct rc_backend_ops rc_backend_kmod;
extern const struct rc_backend_ops rc_backend_naive;
extern const struct rc_backend_ops rc_backend_uring;

#endif
