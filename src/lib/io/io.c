/* io.c -- the connection and dirty lists shared by the host and the backends.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "io.h"

#include <sys/socket.h>
#include <unistd.h>

const char *const rc_sys_names[RC_SYS__COUNT] = {
    "io_uring_enter", "epoll_wait", "epoll_ctl",  "write", "writev",   "sendmsg", "read",
    "accept",         "close",      "setsockopt", "other", "recvmmsg", "ioctl",
};

void rc_io_link(struct rc_io *io, struct rc_io_conn *c)
{
    c->next = NULL;
    c->prev = io->tail;
    if (io->tail)
        io->tail->next = c;
    else
        io->head = c;
    io->tail = c;
}

void rc_io_unlink(struct rc_io *io, struct rc_io_conn *c)
{
    rc_io_unmark_dirty(io, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        io->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        io->tail = c->prev;
    c->prev = c->next = NULL;
}

void rc_io_dirty_append(struct rc_io *io, struct rc_io_conn *c)
{
    c->flags |= RC_IO_DIRTY;
    c->dnext = NULL;
    c->dprev = io->dirty_tail;
    if (io->dirty_tail)
        io->dirty_tail->dnext = c;
    else
        io->dirty_head = c;
    io->dirty_tail = c;
    io->ndirty++;
}

void rc_io_unmark_dirty(struct rc_io *io, struct rc_io_conn *c)
{
    if (!(c->flags & RC_IO_DIRTY))
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        io->dirty_head = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        io->dirty_tail = c->dprev;
    c->dprev = c->dnext = NULL;
    c->flags &= ~RC_IO_DIRTY;
    io->ndirty--;
}

struct rc_io_conn *rc_io_pop_dirty(struct rc_io *io)
{
    struct rc_io_conn *c = io->dirty_head;
    if (c)
        rc_io_unmark_dirty(io, c);
    return c;
}

void rc_io_close_listener(struct rc_io *io, int fd)
{
    /* A socket that is no longer listening (and was bound with SO_REUSEADDR)
     * does not block a new bind of its port; close() alone leaves it
     * listening until the last file reference goes, which for io_uring is
     * the ring's asynchronous teardown, after the process has exited. */
    shutdown(fd, SHUT_RDWR);
    close(fd);
    io->stats.sys[RC_SYS_OTHER]++;
    io->stats.sys[RC_SYS_CLOSE]++;
}
