/* bench_util.c -- ringcast-bench helpers: workload model, connecting, histogram.
 *
 * Small pieces both worker threads share: the channel naming and receiver
 * counts that define the workload (see bench.h), a bounded non-blocking
 * connect, a bounded blocking-style write used only during setup, and the
 * quantile read-out of the log-bucketed latency histogram.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "util.h"

struct rc_bench_shared rc_bench;

uint64_t rc_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *rc_bench_proto_name(int proto)
{
    switch (proto) {
    case RC_BENCH_NATS: return "nats";
    case RC_BENCH_SSE: return "sse";
    case RC_BENCH_WS: return "ws";
    default: return "resp";
    }
}

int rc_bench_receivers(const struct rc_bench_opts *o, int ch)
{
    if (o->idle || ch >= o->channels)
        return 0;
    /* subscribers ch, ch + C, ch + 2C, ... below S */
    if (ch >= o->subs)
        return 0;
    return (o->subs - 1 - ch) / o->channels + 1;
}

size_t rc_bench_channel_name(const struct rc_bench_opts *o, int ch, char *dst)
{
    int n = snprintf(dst, 32, o->psubscribe ? "ch.%d.m" : "ch.%d", ch);
    return (size_t)n;
}

static int wait_fd(int fd, short ev, uint64_t deadline_ns)
{
    for (int i = 0; i < 1000000; i++) {
        uint64_t now = rc_bench_now_ns();
        if (now >= deadline_ns)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = ev};
        int ms = (int)((deadline_ns - now) / 1000000u) + 1;
        int r = poll(&pfd, 1, ms);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
    return -ETIMEDOUT;
}

int rc_bench_connect(const struct rc_bench_opts *o, bool http, unsigned timeout_ms)
{
    const struct sockaddr_storage *addr = http ? &o->http_addr : &o->addr;
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint64_t deadline = rc_bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    if (connect(fd, (const struct sockaddr *)addr, o->addrlen) < 0) {
        if (errno != EINPROGRESS) {
            int e = -errno;
            close(fd);
            return e;
        }
        int r = wait_fd(fd, POLLOUT, deadline);
        if (r < 0) {
            close(fd);
            return r;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            close(fd);
            return err ? -err : -EIO;
        }
    }
    return fd;
}

int rc_bench_write_all(int fd, const char *buf, size_t len, unsigned timeout_ms)
{
    uint64_t deadline = rc_bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        int r = wait_fd(fd, POLLOUT, deadline);
        if (r < 0)
            return r;
    }
    return 0;
}

uint64_t rc_hist_quantile(const struct rc_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < RC_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank) {
            uint64_t hi;
            if (i < (1u << RC_HIST_SUB_BITS)) {
                hi = i;
            } else {
                unsigned shift = (i >> RC_HIST_SUB_BITS) - 1;
                uint64_t sub = i & ((1u << RC_HIST_SUB_BITS) - 1);
                hi = (((1u << RC_HIST_SUB_BITS) + sub + 1) << shift) - 1;
            }
            return RC_MIN(hi, h->max);
        }
    }
    return h->max;
}
