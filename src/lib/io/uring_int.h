/* uring_int.h -- the io_uring backend's machinery, for backends built on it.
 *
 * The kmod backend (backend_kmod.c) is the uring backend with one change:
 * clients' output goes to the kernel through the ringcast module's batch
 * ioctl instead of one send SQE per client. Accepts, receives, watches,
 * timers and wake-ups stay exactly as backend_uring.c does them, so that file
 * exports its loop and its life cycle here, and takes a *sender*: when one is
 * set, every connection that may send is offered to it instead of getting a
 * send SQE, and the sender hands the lot to the kernel once per iteration,
 * before the enter. A sender settles each connection through the functions
 * below (a connection to close, to wait for writability, to send the uring
 * way after all).
 *
 * Internal to the io layer; not part of backend.h.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_URING_INT_H
#define RC_URING_INT_H

#include <stdint.h>

#include "backend.h"

struct rc_uring_sender {
    /* c may send now: it is live, has output pending and nothing in flight. */
    void (*add)(struct rc_io *io, void *arg, struct rc_io_conn *c);
    /* Every connection of this iteration was added: hand them to the kernel.
     * Runs once per iteration, before the enter that waits. */
    void (*flush)(struct rc_io *io, void *arg);
    /* The backend is going away (every connection is torn down). */
    void (*free)(struct rc_io *io, void *arg);
};

/* The uring backend's ops, shared by the backends built on it. */
int rc_uring_init(struct rc_io *io);
int rc_uring_listen(struct rc_io *io, int fd);
void rc_uring_unlisten(struct rc_io *io);
void rc_uring_poll(struct rc_io *io, int timeout_ms);
void rc_uring_destroy(struct rc_io *io);
int rc_uring_watch(struct rc_io *io, int fd, rc_watch_fn cb, void *arg);
void rc_uring_unwatch(struct rc_io *io, int fd);
void rc_uring_adopt(struct rc_io *io, int fd);
void rc_uring_kick(struct rc_io *io, struct rc_io *target);

/* Installs snd (borrowed, static) with its arg (owned: snd->free releases it)
 * on a backend rc_uring_init set up. */
void rc_uring_set_sender(struct rc_io *io, const struct rc_uring_sender *snd, void *arg);

/* A tag naming c until it is torn down (its slot and the slot's generation). */
uint64_t rc_uring_tag(const struct rc_io_conn *c);
/* The live connection tag names, or NULL when it was torn down since. */
struct rc_io_conn *rc_uring_conn(struct rc_io *io, uint64_t tag);
/* Sends the head of c's queue with one SEND/SENDMSG SQE, as the uring
 * backend does (c live, nothing in flight). */
void rc_uring_send(struct rc_io *io, struct rc_io_conn *c);
/* c's socket is full: arms a one-shot POLL_ADD(POLLOUT) and keeps c
 * send_busy until it completes; c then goes back on the dirty list. */
void rc_uring_wait_writable(struct rc_io *io, struct rc_io_conn *c);
/* Tears c down (unlink now, free once nothing is in flight); why is logged
 * at verbose level. */
void rc_uring_close(struct rc_io *io, struct rc_io_conn *c, const char *why);

#endif
