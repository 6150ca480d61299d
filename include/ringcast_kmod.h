/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause */
/* ringcast_kmod.h -- the user/kernel interface of the ringcast fan-out module.
 *
 * The module (kmod/, GPL-2.0) exposes one misc device, /dev/ringcast, with one
 * ioctl, RCK_IOC_SEND: one tick's output for every client in one call.
 *
 *   buf          the tick's frames, in one user buffer: every byte that any
 *                target is to receive, each byte once;
 *   slices       (offset, length) ranges of buf;
 *   targets      (socket fd, a run of consecutive slices): what that socket
 *                receives, in slice order.
 *
 * The module copies buf into the kernel once, then sends each target its
 * slices without blocking (MSG_DONTWAIT | MSG_NOSIGNAL). In copy mode each
 * socket's data is copied from that one kernel copy; with RCK_F_ZEROCOPY
 * every socket's packets reference the same kernel pages (MSG_SPLICE_PAGES
 * on Linux 6.5 and later, sendpage before), so buf is copied exactly once
 * however many sockets receive it.
 *
 * Results. The call returns 0 when the batch was taken apart (each target
 * then has its own result), or -1 with errno for the call as a whole:
 *   EFAULT  a pointer (buf, slices, targets) is not readable/writable
 *           (targets' results are cleared before anything is sent, so an
 *           unwritable targets array fails the call with nothing sent)
 *   EINVAL  unknown flags, a non-zero reserved field (of struct rck_send or
 *           of any target), nslices/ntargets of 0 with a non-NULL pointer,
 *           or a size that overflows
 *   E2BIG   buf_len > RCK_MAX_BUF, nslices > RCK_MAX_SLICES or
 *           ntargets > RCK_MAX_TARGETS
 *   ENOMEM  no kernel memory for the copy of buf
 * Per target, result is the number of bytes the socket accepted (it may be
 * fewer than the target's total: a partial send, the caller resumes on a
 * later tick), or a negative errno:
 *   -EAGAIN       the socket's send buffer is full, nothing was sent
 *   -EBADF        fd is not an open descriptor
 *   -ENOTSOCK     fd is not a socket
 *   -EPROTOTYPE   the socket is not a connected-mode TCP socket (UDP, Unix, ...)
 *   -ENOTCONN     the socket is not connected (listening, never connected)
 *   -EPIPE        the connection was closed (peer reset or shut down)
 *   -EINVAL       the target's slice run or one of its slices lies outside
 *                 the arrays / outside buf, or its total exceeds INT_MAX
 *   other -errno  what the socket layer returned
 * A target whose result is an error was sent nothing. Targets are processed
 * in order; an error on one does not stop the others.
 *
 * Who may use it: the device is created mode 0600 (root); a host grants it to
 * the service's user with a udev rule (docs/kmod.md). A caller can only send
 * on sockets that are open in its own file table.
 */
#ifndef RINGCAST_KMOD_H
#define RINGCAST_KMOD_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define RCK_DEVICE_NAME "ringcast"
#define RCK_DEVICE_PATH "/dev/ringcast"

/* Interface version, returned by RCK_IOC_VERSION. */
#define RCK_VERSION 1

/* Limits of one call. */
#define RCK_MAX_BUF     (16u << 20) /* bytes of buf */
#define RCK_MAX_SLICES  (1u << 20)  /* slices in the call */
#define RCK_MAX_TARGETS (1u << 16)  /* targets in the call */

/* flags of struct rck_send */
#define RCK_F_ZEROCOPY (1u << 0) /* every socket's packets reference the same pages */
#define RCK_F_ALL      RCK_F_ZEROCOPY

struct rck_slice {
    __u32 off; /* offset in buf */
    __u32 len; /* bytes; 0 is allowed (sends nothing) */
};

struct rck_target {
    __s32 fd;       /* in: a connected TCP socket of the caller */
    __u32 first;    /* in: index of its first slice */
    __u32 nslices;  /* in: how many consecutive slices, from first */
    __u32 reserved; /* in: must be 0 */
    __s64 result;   /* out: bytes accepted (>= 0) or -errno */
};

struct rck_send {
    __u64 buf;      /* in: user pointer to the tick's frames */
    __u32 buf_len;  /* in: bytes at buf */
    __u32 flags;    /* in: RCK_F_* */
    __u64 slices;   /* in: user pointer to struct rck_slice[nslices] */
    __u32 nslices;  /* in */
    __u32 ntargets; /* in */
    __u64 targets;  /* in/out: user pointer to struct rck_target[ntargets] */
    __u64 sent;     /* out: total bytes accepted over all targets */
    __u32 nerrors;  /* out: targets whose result is an error other than -EAGAIN */
    __u32 reserved; /* in: must be 0 */
};

#define RCK_IOC_MAGIC   0xb7
#define RCK_IOC_VERSION _IO(RCK_IOC_MAGIC, 0)
#define RCK_IOC_SEND    _IOWR(RCK_IOC_MAGIC, 1, struct rck_send)

#endif /* RINGCAST_KMOD_H */
