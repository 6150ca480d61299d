/* kmod_emul.c -- the ringcast module's ioctl interface, emulated in user space (LD_PRELOAD).
 *
 * The kmod backend's send path can only run against /dev/ringcast, which a
 * host that cannot load modules never has. This preload library stands in
 * for it in test_kmod_emul.py: open() of the path in $RC_KMOD_EMUL_DEVICE
 * returns a descriptor of /dev/null that it remembers, and ioctl() on such a
 * descriptor answers RCK_IOC_VERSION and RCK_IOC_SEND by the contract of
 * include/ringcast_kmod.h -- every check of the call as a whole (flags,
 * reserved fields, limits, pointers), every check of a target's slice run,
 * and each target sent with one non-blocking sendmsg() of its slices, its
 * result the bytes the socket took or -errno (-EAGAIN when it took none).
 * It is not the module (which copies buf into the kernel once); it is the
 * module's contract, so the server's side of it is exercised for real.
 *
 * Environment:
 *   RC_KMOD_EMUL_DEVICE   the path that opens the emulated device
 *   RC_KMOD_EMUL_LOG      file to append one line per RCK_IOC_SEND:
 *                         "send <ntargets> <nslices> <buf_len> <bytes wanted> <sent> <flags>"
 *   RC_KMOD_EMUL_VERSION  what RCK_IOC_VERSION returns (default RCK_VERSION)
 *   RC_KMOD_EMUL_FAIL     errno number every RCK_IOC_SEND fails with (0: none)
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#undef _FORTIFY_SOURCE /* open() is defined here, not wrapped */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ringcast_kmod.h"

#define MAX_DEV_FDS 64
#define MAX_IOV     1024

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int dev_fds[MAX_DEV_FDS];
static int ndev;

static bool is_dev(int fd)
{
    bool yes = false;

    pthread_mutex_lock(&mu);
    for (int i = 0; i < ndev; i++)
        yes |= dev_fds[i] == fd;
    pthread_mutex_unlock(&mu);
    return yes;
}

static int open_dev(int fd)
{
    pthread_mutex_lock(&mu);
    if (fd >= 0 && ndev < MAX_DEV_FDS)
        dev_fds[ndev++] = fd;
    pthread_mutex_unlock(&mu);
    return fd;
}

static void forget(int fd)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < ndev; i++)
        if (dev_fds[i] == fd)
            dev_fds[i] = dev_fds[--ndev];
    pthread_mutex_unlock(&mu);
}

static bool is_device_path(const char *path)
{
    const char *dev = getenv("RC_KMOD_EMUL_DEVICE");
    return path && dev && *dev && strcmp(path, dev) == 0;
}

typedef int (*open_fn)(const char *, int, ...);

static int do_open(const char *sym, const char *path, int flags, mode_t mode)
{
    open_fn real = (open_fn)dlsym(RTLD_NEXT, sym);

    if (is_device_path(path))
        return open_dev(real("/dev/null", O_RDWR | (flags & O_CLOEXEC)));
    return real(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    return do_open("open", path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    return do_open("open64", path, flags, mode);
}

int close(int fd)
{
    static int (*real)(int);

    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "close");
    forget(fd);
    return real(fd);
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

/* One target: its slices as one non-blocking sendmsg. */
static int64_t send_target(const struct rck_send *req, const struct rck_slice *slices,
                           const struct rck_target *t, uint64_t *want)
{
    struct iovec iov[MAX_IOV];
    struct msghdr msg = {0};
    uint64_t total = 0;
    ssize_t n;

    if (t->first > req->nslices || t->nslices > req->nslices - t->first || t->nslices > MAX_IOV)
        return -EINVAL;
    for (uint32_t i = 0; i < t->nslices; i++) {
        const struct rck_slice *s = &slices[t->first + i];
        if ((uint64_t)s->off + s->len > req->buf_len)
            return -EINVAL;
        iov[i].iov_base = (char *)(uintptr_t)req->buf + s->off;
        iov[i].iov_len = s->len;
        total += s->len;
    }
    if (total > INT_MAX)
        return -EINVAL;
    *want += total;
    msg.msg_iov = iov;
    msg.msg_iovlen = t->nslices;
    n = sendmsg(t->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static int emul_send(struct rck_send *req)
{
    const struct rck_slice *slices = (const struct rck_slice *)(uintptr_t)req->slices;
    struct rck_target *targets = (struct rck_target *)(uintptr_t)req->targets;
    const char *logpath = getenv("RC_KMOD_EMUL_LOG");
    int fail = env_int("RC_KMOD_EMUL_FAIL", 0);
    uint64_t want = 0;

    if (fail) {
        errno = fail;
        return -1;
    }
    /* The module's checks, in its order (kmod/ringcast_kmod.c, rck_ioctl_send). */
    if ((req->flags & ~RCK_F_ALL) || req->reserved) {
        errno = EINVAL;
        return -1;
    }
    if (req->buf_len > RCK_MAX_BUF || req->nslices > RCK_MAX_SLICES ||
        req->ntargets > RCK_MAX_TARGETS) {
        errno = E2BIG;
        return -1;
    }
    if ((!req->nslices && req->slices) || (!req->ntargets && req->targets)) {
        errno = EINVAL;
        return -1;
    }
    if ((req->nslices && !req->slices) || (req->ntargets && !req->targets) ||
        (req->buf_len && !req->buf)) {
        errno = EFAULT; /* the module's copy_from_user of a NULL pointer */
        return -1;
    }
    for (uint32_t i = 0; i < req->ntargets; i++) {
        if (targets[i].reserved) {
            errno = EINVAL; /* a target's reserved field fails the whole call */
            return -1;
        }
    }
    req->sent = 0;
    req->nerrors = 0;
    for (uint32_t i = 0; i < req->ntargets; i++) {
        struct rck_target *t = &targets[i];
        t->result = send_target(req, slices, t, &want);
        if (t->result > 0)
            req->sent += (uint64_t)t->result;
        else if (t->result < 0 && t->result != -EAGAIN)
            req->nerrors++;
    }
    if (logpath) {
        FILE *f = fopen(logpath, "a");
        if (f) {
            fprintf(f, "send %u %u %u %llu %llu %u\n", req->ntargets, req->nslices, req->buf_len,
                    (unsigned long long)want, (unsigned long long)req->sent, req->flags);
            fclose(f);
        }
    }
    return 0;
}

int ioctl(int fd, unsigned long request, ...)
{
    static int (*real)(int, unsigned long, ...);
    va_list ap;
    void *arg;

    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (!real)
        real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    if (!is_dev(fd))
        return real(fd, request, arg);
    if (request == RCK_IOC_VERSION)
        return env_int("RC_KMOD_EMUL_VERSION", RCK_VERSION);
    if (request == RCK_IOC_SEND)
        return emul_send(arg);
    errno = ENOTTY;
    return -1;
}
