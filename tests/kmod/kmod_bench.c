/* kmod_bench.c -- one frame to N sockets: send() per socket, io_uring, and the module.
 *
 * Runs in the qemu guest of scripts/test-kmod.sh when KMOD_BENCH=1. For N
 * loopback TCP targets and a frame size, each round hands the same frame
 * to every target in one of four ways and times it (the receivers are
 * drained between rounds, untimed):
 *   send       one send() per socket (what the epoll backend does)
 *   uring      N IORING_OP_SEND in one io_uring_enter (the uring backend)
 *   kmod       one RCK_IOC_SEND, copy mode
 *   kmod-zc    one RCK_IOC_SEND with RCK_F_ZEROCOPY
 * It prints system calls per round and the median time per round. Under
 * TCG every instruction is emulated: the times compare the methods with
 * each other inside one guest and say nothing about real hardware.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ringcast_kmod.h"

#define ROUNDS 41
#define MAXN   512

static int tx[MAXN], rx[MAXN];
static int dev;
static struct io_uring ring;

static void die(const char *what)
{
    fprintf(stderr, "kmod_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void pairs(int n)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, alen) < 0 || listen(l, MAXN) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) < 0) {
        die("listen");
    }
    for (int i = 0; i < n; i++) {
        rx[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (rx[i] < 0 || connect(rx[i], (struct sockaddr *)&a, alen) < 0) {
            die("connect");
        }
        tx[i] = accept(l, NULL, NULL);
        if (tx[i] < 0) {
            die("accept");
        }
        fcntl(rx[i], F_SETFL, O_NONBLOCK);
        fcntl(tx[i], F_SETFL, O_NONBLOCK);
    }
    close(l);
}

static void drain(int n, size_t want)
{
    static char sink[65536];
    for (int i = 0; i < n; i++) {
        size_t got = 0;
        while (got < want) {
            ssize_t r = read(rx[i], sink, sizeof(sink));
            if (r > 0) {
                got += (size_t)r;
            } else if (r < 0 && errno != EAGAIN) {
                die("read");
            }
        }
    }
}

static void round_send(int n, const char *frame, size_t len)
{
    for (int i = 0; i < n; i++) {
        if (send(tx[i], frame, len, MSG_NOSIGNAL) != (ssize_t)len) {
            die("send");
        }
    }
}

static void round_uring(int n, const char *frame, size_t len)
{
    for (int i = 0; i < n; i++) {
        io_uring_prep_send(io_uring_get_sqe(&ring), tx[i], frame, len, MSG_NOSIGNAL);
    }
    if (io_uring_submit_and_wait(&ring, (unsigned)n) < 0) {
        die("io_uring_submit_and_wait");
    }
    struct io_uring_cqe *cqe;
    for (int i = 0; i < n; i++) {
        if (io_uring_peek_cqe(&ring, &cqe) < 0 || cqe->res != (int)len) {
            errno = EIO;
            die("io_uring send");
        }
        io_uring_cqe_seen(&ring, cqe);
    }
}

static void round_kmod(int n, const char *frame, size_t len, uint32_t flags)
{
    static struct rck_target tg[MAXN];
    struct rck_slice s = {0, (uint32_t)len};
    for (int i = 0; i < n; i++) {
        tg[i] = (struct rck_target){.fd = tx[i], .first = 0, .nslices = 1};
    }
    struct rck_send a = {.buf = (uintptr_t)frame,
                         .buf_len = (uint32_t)len,
                         .flags = flags,
                         .slices = (uintptr_t)&s,
                         .nslices = 1,
                         .ntargets = (uint32_t)n,
                         .targets = (uintptr_t)tg};
    if (ioctl(dev, RCK_IOC_SEND, &a) < 0 || a.sent != (uint64_t)len * (uint64_t)n) {
        die("RCK_IOC_SEND");
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    static const int ns[] = {64, 512};
    static const size_t lens[] = {128, 4096};
    static const char *const names[] = {"send", "uring", "kmod", "kmod-zc"};
    static char frame[4096];
    memset(frame, 'f', sizeof(frame));
    struct rlimit rl = {4 * MAXN, 4 * MAXN};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        die("setrlimit");
    }
    dev = open(RCK_DEVICE_PATH, O_RDWR);
    if (dev < 0) {
        die("open " RCK_DEVICE_PATH);
    }
    if (io_uring_queue_init(2 * MAXN, &ring, 0) < 0) {
        die("io_uring_queue_init");
    }
    pairs(MAXN);
    printf("BENCH %-8s %7s %6s %14s %14s %10s\n", "method", "targets", "frame", "syscalls/round",
           "median us", "us/target");
    for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
        int n = ns[ni];
        for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
            size_t len = lens[li];
            for (int m = 0; m < 4; m++) {
                double t[ROUNDS];
                for (int r = 0; r < ROUNDS; r++) {
                    double t0 = now_us();
                    if (m == 0) {
                        round_send(n, frame, len);
                    } else if (m == 1) {
                        round_uring(n, frame, len);
                    } else {
                        round_kmod(n, frame, len, m == 3 ? RCK_F_ZEROCOPY : 0);
                    }
                    t[r] = now_us() - t0;
                    drain(n, len);
                }
                qsort(t, ROUNDS, sizeof(t[0]), cmp);
                printf("BENCH %-8s %7d %6zu %14d %14.0f %10.2f\n", names[m], n, len, m == 0 ? n : 1,
                       t[ROUNDS / 2], t[ROUNDS / 2] / n);
            }
        }
    }
    return 0;
}
