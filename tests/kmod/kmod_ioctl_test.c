/* kmod_ioctl_test.c -- RCK_IOC_SEND against the module, inside a qemu guest.
 *
 * Runs as PID 1's child in the guest that scripts/test-kmod.sh boots, with
 * ringcast_kmod.ko loaded and /dev/ringcast present. Every socket is a TCP
 * pair over 127.0.0.1: the accepted end is the sender (as in the server), the
 * connecting end the receiver whose bytes are checked.
 *
 *   fan-out      64 targets, each its own subset and order of the frames
 *                (plus shared runs, empty and partial slices); one call sends
 *                everything; every receiver gets exactly its bytes.
 *   resume       16 targets of 1 MiB each through small socket buffers: the
 *                first call is partial, more calls before reading end in
 *                -EAGAIN, and resuming the rest on later calls (the way a
 *                server does) delivers every byte once and in order.
 *   control      a deliberately wrong slice offset must make the byte check
 *                fail: the checker is shown to catch what it is there for.
 *   errors       each bad argument gets the errno that include/ringcast_kmod.h
 *                documents, for the call or for the one target.
 * The first three run in copy mode and in zero-copy mode.
 *
 * Prints one "ok"/"not ok" line per check and a last line
 * "KMOD-IOCTL-TEST: PASS" or "KMOD-IOCTL-TEST: FAIL"; exits 0 on PASS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringcast_kmod.h"

#define NPAIRS   64
#define NFRAMES  48
#define NRESUME  16
#define RESUME_B (1u << 20)

static int failures;
static int dev = -1;
static int lfd = -1; /* the listener every pair is accepted from */

static void check(bool ok, const char *what)
{
    printf("%s - %s\n", ok ? "ok" : "not ok", what);
    fflush(stdout);
    if (!ok) {
        failures++;
    }
}

static void die(const char *what)
{
    printf("not ok - %s: %s\nKMOD-IOCTL-TEST: FAIL\n", what, strerror(errno));
    exit(1);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state >> 16);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 0 or -errno, like the rest of our C API. */
static int rck_send(struct rck_send *a)
{
    return ioctl(dev, RCK_IOC_SEND, a) == 0 ? 0 : -errno;
}

static void set_buf(int fd, int opt, int bytes)
{
    if (setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes)) < 0) {
        die("setsockopt");
    }
}

static int listen_on_loopback(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 256) < 0) {
        die("listen");
    }
    return fd;
}

/* A connected pair: *tx is the accepted end, *rx the connecting one. */
static void tcp_pair(int *tx, int *rx, int sndbuf, int rcvbuf)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    if (getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
        die("getsockname");
    }
    *rx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*rx < 0) {
        die("socket");
    }
    if (rcvbuf) {
        set_buf(*rx, SO_RCVBUF, rcvbuf);
    }
    if (connect(*rx, (struct sockaddr *)&a, alen) < 0) {
        die("connect");
    }
    *tx = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (*tx < 0) {
        die("accept");
    }
    if (sndbuf) {
        set_buf(*tx, SO_SNDBUF, sndbuf);
    }
    int fl = fcntl(*rx, F_GETFL);
    fcntl(*rx, F_SETFL, fl | O_NONBLOCK);
}

/* One target as the test sees it: what it must receive and what it got. */
struct peer {
    int tx, rx;
    struct rck_slice *run; /* the slices still to send, in order */
    uint32_t nrun;
    uint8_t *want; /* every byte it must receive, in order */
    size_t want_len;
    uint8_t *got;
    size_t got_len;
};

static void peer_expect(struct peer *p, const uint8_t *buf, const struct rck_slice *s, uint32_t n)
{
    p->run = malloc(sizeof(*s) * (n ? n : 1));
    memcpy(p->run, s, sizeof(*s) * n);
    p->nrun = n;
    p->want_len = 0;
    for (uint32_t i = 0; i < n; i++) {
        p->want_len += s[i].len;
    }
    p->want = malloc(p->want_len + 1);
    p->got = malloc(p->want_len + 65536);
    p->got_len = 0;
    size_t at = 0;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(p->want + at, buf + s[i].off, s[i].len);
        at += s[i].len;
    }
}

static void peer_free(struct peer *p)
{
    close(p->tx);
    close(p->rx);
    free(p->run);
    free(p->want);
    free(p->got);
}

static size_t run_bytes(const struct peer *p)
{
    size_t n = 0;
    for (uint32_t i = 0; i < p->nrun; i++) {
        n += p->run[i].len;
    }
    return n;
}

/* Drops the first `done` bytes of the run: what a server does after a partial send. */
static void run_advance(struct peer *p, uint64_t done)
{
    uint32_t i = 0;
    while (i < p->nrun && done >= p->run[i].len) {
        done -= p->run[i].len;
        i++;
    }
    if (i < p->nrun) {
        p->run[i].off += (uint32_t)done;
        p->run[i].len -= (uint32_t)done;
    }
    memmove(p->run, p->run + i, sizeof(*p->run) * (p->nrun - i));
    p->nrun -= i;
}

/* Reads what is waiting; keeps at most want_len + 64 KiB (excess shows as a mismatch). */
static void peer_drain(struct peer *p)
{
    for (;;) {
        size_t room = p->want_len + 65536 - p->got_len;
        if (room == 0) {
            return;
        }
        ssize_t n = read(p->rx, p->got + p->got_len, room);
        if (n <= 0) {
            return;
        }
        p->got_len += (size_t)n;
    }
}

/* The checker: exactly the expected bytes, in order, nothing more. */
static bool peer_exact(const struct peer *p)
{
    return p->got_len == p->want_len && memcmp(p->got, p->want, p->want_len) == 0;
}

struct call_stats {
    int calls;
    int partial; /* results > 0 but short of what the target had left */
    int eagain;
    int errors; /* any other negative result */
};

/*
 * One RCK_IOC_SEND for every peer that has bytes left; each run is advanced
 * by its result. Returns the ioctl's 0 or -errno.
 */
static int send_round(struct peer *ps, int n, const uint8_t *buf, uint32_t buf_len, uint32_t flags,
                      struct call_stats *st)
{
    uint32_t nsl = 0;
    for (int i = 0; i < n; i++) {
        nsl += ps[i].nrun;
    }
    struct rck_slice *sl = malloc(sizeof(*sl) * (nsl ? nsl : 1));
    struct rck_target *tg = calloc((size_t)n, sizeof(*tg));
    int *who = calloc((size_t)n, sizeof(*who));
    uint32_t at = 0;
    int nt = 0;
    for (int i = 0; i < n; i++) {
        if (ps[i].nrun == 0 || run_bytes(&ps[i]) == 0) {
            continue;
        }
        tg[nt] = (struct rck_target){.fd = ps[i].tx, .first = at, .nslices = ps[i].nrun};
        memcpy(sl + at, ps[i].run, sizeof(*sl) * ps[i].nrun);
        at += ps[i].nrun;
        who[nt++] = i;
    }
    struct rck_send a = {.buf = (uintptr_t)buf,
                         .buf_len = buf_len,
                         .flags = flags,
                         .slices = nsl ? (uintptr_t)sl : 0,
                         .nslices = nsl,
                         .ntargets = (uint32_t)nt,
                         .targets = nt ? (uintptr_t)tg : 0};
    int ret = rck_send(&a);
    st->calls++;
    uint64_t sent = 0;
    uint32_t nerr = 0;
    for (int k = 0; ret == 0 && k < nt; k++) {
        struct peer *p = &ps[who[k]];
        int64_t r = tg[k].result;
        if (r >= 0) {
            if ((size_t)r < run_bytes(p)) {
                st->partial++;
            }
            run_advance(p, (uint64_t)r);
            sent += (uint64_t)r;
        } else if (r == -EAGAIN) {
            st->eagain++;
        } else {
            st->errors++;
            nerr++;
            printf("# target %d: %s\n", who[k], strerror((int)-r));
        }
    }
    if (ret == 0 && (a.sent != sent || a.nerrors != nerr)) {
        printf("# sent %llu (want %llu), nerrors %u (want %u)\n", (unsigned long long)a.sent,
               (unsigned long long)sent, a.nerrors, nerr);
        st->errors++;
    }
    free(sl);
    free(tg);
    free(who);
    return ret;
}

static bool all_sent(const struct peer *ps, int n)
{
    for (int i = 0; i < n; i++) {
        if (run_bytes(&ps[i]) != 0) {
            return false;
        }
    }
    return true;
}

static void drain_all(struct peer *ps, int n)
{
    for (int i = 0; i < n; i++) {
        peer_drain(&ps[i]);
    }
}

/* Reads until every peer has its bytes (or 20 s), then a little longer for any excess. */
static void receive_all(struct peer *ps, int n)
{
    double end = now() + 20;
    for (;;) {
        drain_all(ps, n);
        bool done = true;
        for (int i = 0; i < n; i++) {
            done = done && ps[i].got_len >= ps[i].want_len;
        }
        if (done || now() > end) {
            break;
        }
        usleep(1000);
    }
    usleep(20000);
    drain_all(ps, n);
}

static uint8_t *make_frames(uint32_t len)
{
    uint8_t *buf = malloc(len);
    for (uint32_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)rnd();
    }
    return buf;
}

/*
 * 64 targets, one call. Target i's run: up to 12 frames in random order,
 * sometimes with a repeat, an empty slice or a piece of a frame; every
 * eighth gets every frame in order; every fourth shares the run of the one
 * before it.
 */
static void test_fanout(uint32_t flags, const char *mode, int break_target)
{
    struct rck_slice frames[NFRAMES];
    uint32_t len = 0;
    for (int f = 0; f < NFRAMES; f++) {
        frames[f].off = len;
        frames[f].len = 1 + rnd() % 5000;
        len += frames[f].len;
    }
    uint8_t *buf = make_frames(len);
    struct peer ps[NPAIRS];
    struct rck_slice sl[NPAIRS * NFRAMES];
    struct rck_target tg[NPAIRS];
    uint32_t nsl = 0;
    for (int i = 0; i < NPAIRS; i++) {
        tcp_pair(&ps[i].tx, &ps[i].rx, 1 << 20, 1 << 20);
        if (i % 4 == 3) {
            tg[i] = tg[i - 1];
            tg[i].fd = ps[i].tx;
        } else if (i % 8 == 0) {
            /* Every frame in order: adjacent slices that cross pages. */
            tg[i] = (struct rck_target){.fd = ps[i].tx, .first = nsl, .nslices = NFRAMES};
            memcpy(sl + nsl, frames, sizeof(frames));
            nsl += NFRAMES;
        } else {
            uint32_t k = 1 + rnd() % 12;
            tg[i] = (struct rck_target){.fd = ps[i].tx, .first = nsl, .nslices = k};
            for (uint32_t j = 0; j < k; j++) {
                struct rck_slice s = frames[rnd() % NFRAMES];
                uint32_t kind = rnd() % 8;
                if (kind == 0) {
                    s.len = 0;
                } else if (kind == 1 && s.len > 2) {
                    s.off += 1;
                    s.len -= 2;
                }
                sl[nsl++] = s;
            }
        }
        peer_expect(&ps[i], buf, sl + tg[i].first, tg[i].nslices);
    }
    /* The negative control sends one target a slice one byte off. */
    struct rck_slice wrong[NPAIRS * NFRAMES];
    memcpy(wrong, sl, sizeof(sl[0]) * nsl);
    if (break_target >= 0) {
        struct rck_slice *s = &wrong[tg[break_target].first];
        for (uint32_t j = 0; j < tg[break_target].nslices; j++, s++) {
            if (s->len > 0 && s->off + s->len < len) {
                s->off += 1;
                break;
            }
        }
    }
    struct rck_send a = {.buf = (uintptr_t)buf,
                         .buf_len = len,
                         .flags = flags,
                         .slices = (uintptr_t)(break_target >= 0 ? wrong : sl),
                         .nslices = nsl,
                         .ntargets = NPAIRS,
                         .targets = (uintptr_t)tg};
    char what[160];
    int ret = rck_send(&a);
    bool whole = ret == 0 && a.nerrors == 0;
    uint64_t total = 0;
    for (int i = 0; i < NPAIRS; i++) {
        whole = whole && tg[i].result == (int64_t)ps[i].want_len;
        total += ps[i].want_len;
    }
    whole = whole && a.sent == total;
    receive_all(ps, NPAIRS);
    int exact = 0;
    for (int i = 0; i < NPAIRS; i++) {
        exact += peer_exact(&ps[i]);
    }
    if (break_target < 0) {
        snprintf(what, sizeof(what), "%s: one call sends all %d targets their %llu bytes", mode,
                 NPAIRS, (unsigned long long)total);
        check(whole, what);
        snprintf(what, sizeof(what), "%s: every receiver got exactly its bytes, in order", mode);
        check(exact == NPAIRS, what);
    } else {
        snprintf(what, sizeof(what),
                 "%s: negative control: a slice one byte off fails the check (target %d), "
                 "the other %d pass",
                 mode, break_target, NPAIRS - 1);
        check(!peer_exact(&ps[break_target]) && exact == NPAIRS - 1, what);
    }
    for (int i = 0; i < NPAIRS; i++) {
        peer_free(&ps[i]);
    }
    free(buf);
}

/*
 * 16 targets x 1 MiB through 16 KiB socket buffers: the first call is
 * partial, an immediate second one finds every buffer full, and resuming on
 * later calls (reading in between) delivers everything once, in order.
 */
static void test_resume(uint32_t flags, const char *mode)
{
    const uint32_t len = 256 * 1024 + 123; /* not a multiple of the page size */
    uint8_t *buf = make_frames(len);
    struct peer ps[NRESUME];
    /* Random pieces of buf (up to 64 KiB each) until the run holds 1 MiB. */
    static struct rck_slice run[4096];
    uint32_t nrun = 0;
    uint32_t total = 0;
    while (total < RESUME_B && nrun < 4096) {
        uint32_t off = rnd() % len;
        uint32_t l = 1 + rnd() % 65536;
        if (l > len - off) {
            l = len - off;
        }
        if (l > RESUME_B - total) {
            l = RESUME_B - total;
        }
        run[nrun++] = (struct rck_slice){off, l};
        total += l;
    }
    for (int i = 0; i < NRESUME; i++) {
        tcp_pair(&ps[i].tx, &ps[i].rx, 16384, 16384);
        peer_expect(&ps[i], buf, run, nrun);
    }
    char what[160];
    struct call_stats st = {0};
    int ret = send_round(ps, NRESUME, buf, len, flags, &st);
    snprintf(what, sizeof(what),
             "%s: the first call of 16 x 1 MiB is partial (%d of %d targets short)", mode,
             st.partial, NRESUME);
    check(ret == 0 && st.partial > 0 && st.errors == 0 && !all_sent(ps, NRESUME), what);
    /* Without reading, the buffers fill: within a few calls a target is refused outright. */
    struct call_stats st2 = {0};
    while (ret == 0 && st2.eagain == 0 && st2.calls < 100) {
        ret = send_round(ps, NRESUME, buf, len, flags, &st2);
    }
    snprintf(what, sizeof(what),
             "%s: calls before reading end in -EAGAIN (call %d: %d targets -EAGAIN)", mode,
             st2.calls, st2.eagain);
    check(ret == 0 && st2.eagain > 0 && st2.errors == 0, what);
    double end = now() + 60;
    while (ret == 0 && !all_sent(ps, NRESUME) && now() < end) {
        drain_all(ps, NRESUME);
        ret = send_round(ps, NRESUME, buf, len, flags, &st);
    }
    receive_all(ps, NRESUME);
    int exact = 0;
    for (int i = 0; i < NRESUME; i++) {
        exact += peer_exact(&ps[i]);
    }
    snprintf(what, sizeof(what),
             "%s: resuming delivers 16 x 1 MiB exactly once, in order (%d calls, %d partial, "
             "%d -EAGAIN)",
             mode, st.calls + st2.calls, st.partial, st.eagain + st2.eagain);
    check(ret == 0 && st.errors == 0 && exact == NRESUME, what);
    for (int i = 0; i < NRESUME; i++) {
        peer_free(&ps[i]);
    }
    free(buf);
}

/* One target on fd with one slice; returns its result (or the call's -errno, tagged). */
static int64_t one_target(int fd, uint32_t flags)
{
    static uint8_t buf[100] = "hello";
    struct rck_slice s = {0, 5};
    struct rck_target t = {.fd = fd, .first = 0, .nslices = 1};
    struct rck_send a = {.buf = (uintptr_t)buf,
                         .buf_len = sizeof(buf),
                         .flags = flags,
                         .slices = (uintptr_t)&s,
                         .nslices = 1,
                         .ntargets = 1,
                         .targets = (uintptr_t)&t};
    int ret = rck_send(&a);
    if (ret < 0) {
        return 1000000 + ret;
    }
    return t.result;
}

static void check_target(int64_t got, int want, const char *what)
{
    char line[200];
    snprintf(line, sizeof(line), "%s: %s (got %lld)", what, strerror(-want), (long long)got);
    check(got == want, line);
}

static void check_call(int got, int want, const char *what)
{
    char line[200];
    snprintf(line, sizeof(line), "%s: call fails with %s (got %d)", what, strerror(-want), got);
    check(got == want, line);
}

static void test_bad_fds(uint32_t flags)
{
    int p[2];
    if (pipe(p) < 0) {
        die("pipe");
    }
    check_target(one_target(p[1], flags), -ENOTSOCK, "pipe");
    close(p[0]);
    close(p[1]);

    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    connect(u, (struct sockaddr *)&a, alen);
    check_target(one_target(u, flags), -EPROTOTYPE, "connected UDP socket");
    close(u);

    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
    check_target(one_target(sp[0], flags), -EPROTOTYPE, "unix stream socket");
    close(sp[0]);
    close(sp[1]);

    check_target(one_target(lfd, flags), -ENOTCONN, "listening socket");
    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    check_target(one_target(fresh, flags), -ENOTCONN, "never connected TCP socket");
    close(fresh);

    int tx, rx;
    tcp_pair(&tx, &rx, 0, 0);
    struct linger lg = {1, 0};
    setsockopt(rx, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(rx); /* a reset */
    usleep(50000);
    check_target(one_target(tx, flags), -EPIPE, "peer reset");
    close(tx);

    tcp_pair(&tx, &rx, 0, 0);
    close(rx); /* FIN; our first bytes then draw a reset */
    int64_t r = 0;
    for (int i = 0; i < 20 && r >= 0; i++) {
        r = one_target(tx, flags);
        usleep(20000);
    }
    check_target(r, -EPIPE, "peer closed, then gone");
    close(tx);

    tcp_pair(&tx, &rx, 0, 0);
    shutdown(tx, SHUT_WR);
    check_target(one_target(tx, flags), -EPIPE, "shut down for writing");
    close(tx);
    close(rx);

    int gone = socket(AF_INET, SOCK_STREAM, 0);
    close(gone);
    check_target(one_target(gone, flags), -EBADF, "closed descriptor");
    check_target(one_target(-1, flags), -EBADF, "fd -1");
    check_target(one_target(1 << 30, flags), -EBADF, "fd 2^30");
}

/* A call with a good target around a bad one: the bad one alone fails. */
static void test_bad_slices(void)
{
    uint8_t buf[4096];
    memset(buf, 'x', sizeof(buf));
    int tx[2], rx[2];
    tcp_pair(&tx[0], &rx[0], 0, 0);
    tcp_pair(&tx[1], &rx[1], 0, 0);
    struct {
        const char *what;
        struct rck_slice s[2];
        uint32_t first, n;
    } cases[] = {
        {"slice past the end of buf", {{4090, 10}, {0, 1}}, 0, 1},
        {"slice offset past buf", {{5000, 0}, {0, 1}}, 0, 1},
        {"off + len wraps u32", {{0xfffffff0u, 0x20}, {0, 1}}, 0, 1},
        {"first + nslices past the slices array", {{0, 1}, {0, 1}}, 1, 2},
        {"first + nslices wraps u32", {{0, 1}, {0, 1}}, 0xffffffffu, 2},
        {"first past the slices array", {{0, 1}, {0, 1}}, 7, 0},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct rck_target t[3] = {
            {.fd = tx[0], .first = 1, .nslices = 1},
            {.fd = tx[1], .first = cases[c].first, .nslices = cases[c].n},
            {.fd = tx[0], .first = 1, .nslices = 1},
        };
        struct rck_send a = {.buf = (uintptr_t)buf,
                             .buf_len = sizeof(buf),
                             .slices = (uintptr_t)cases[c].s,
                             .nslices = 2,
                             .ntargets = 3,
                             .targets = (uintptr_t)t};
        int ret = rck_send(&a);
        char line[200];
        snprintf(line, sizeof(line),
                 "%s: that target gets EINVAL, the others are sent (%lld %lld %lld, sent %llu, "
                 "nerrors %u)",
                 cases[c].what, (long long)t[0].result, (long long)t[1].result,
                 (long long)t[2].result, (unsigned long long)a.sent, a.nerrors);
        check(ret == 0 && t[0].result == 1 && t[1].result == -EINVAL && t[2].result == 1 &&
                  a.sent == 2 && a.nerrors == 1,
              line);
    }
    /* Nothing but the good targets' bytes reached the receivers. */
    usleep(20000);
    char got[64];
    ssize_t n0 = read(rx[0], got, sizeof(got));
    ssize_t n1 = read(rx[1], got, sizeof(got));
    check(n0 == 12 && n1 < 0 && errno == EAGAIN, "a target with an error was sent nothing");
    for (int i = 0; i < 2; i++) {
        close(tx[i]);
        close(rx[i]);
    }

    /* A run whose total exceeds INT_MAX: 130 slices of the whole 16 MiB. */
    uint8_t *big = calloc(1, RCK_MAX_BUF);
    struct rck_slice s[130];
    for (int i = 0; i < 130; i++) {
        s[i] = (struct rck_slice){0, RCK_MAX_BUF};
    }
    int t0, r0;
    tcp_pair(&t0, &r0, 0, 0);
    struct rck_target t = {.fd = t0, .first = 0, .nslices = 130};
    struct rck_send a = {.buf = (uintptr_t)big,
                         .buf_len = RCK_MAX_BUF,
                         .slices = (uintptr_t)s,
                         .nslices = 130,
                         .ntargets = 1,
                         .targets = (uintptr_t)&t};
    int ret = rck_send(&a);
    check_target(ret == 0 ? t.result : ret, -EINVAL, "a target's total past INT_MAX");
    close(t0);
    close(r0);
    free(big);
}

static void test_bad_calls(void)
{
    uint8_t buf[64] = "frame";
    struct rck_slice s = {0, 5};
    int tx, rx;
    tcp_pair(&tx, &rx, 0, 0);
    struct rck_target t = {.fd = tx, .first = 0, .nslices = 1};
    const struct rck_send good = {.buf = (uintptr_t)buf,
                                  .buf_len = sizeof(buf),
                                  .slices = (uintptr_t)&s,
                                  .nslices = 1,
                                  .ntargets = 1,
                                  .targets = (uintptr_t)&t};
    struct rck_send a;

    a = good;
    check(rck_send(&a) == 0 && t.result == 5 && a.sent == 5, "the good call sends 5 bytes");

    a = good;
    a.flags = 1u << 1;
    check_call(rck_send(&a), -EINVAL, "unknown flag");
    a = good;
    a.flags = 1u << 31;
    check_call(rck_send(&a), -EINVAL, "flag bit 31");
    a = good;
    a.reserved = 1;
    check_call(rck_send(&a), -EINVAL, "non-zero reserved field of the call");
    a = good;
    t.reserved = 7;
    check_call(rck_send(&a), -EINVAL, "non-zero reserved field of a target");
    t.reserved = 0;
    a = good;
    a.nslices = 0;
    check_call(rck_send(&a), -EINVAL, "nslices 0 with a slices pointer");
    a = good;
    a.ntargets = 0;
    check_call(rck_send(&a), -EINVAL, "ntargets 0 with a targets pointer");

    a = good;
    a.buf_len = RCK_MAX_BUF + 1;
    check_call(rck_send(&a), -E2BIG, "buf_len past RCK_MAX_BUF");
    a = good;
    a.buf_len = 0xffffffffu;
    check_call(rck_send(&a), -E2BIG, "buf_len 2^32-1");
    a = good;
    a.nslices = RCK_MAX_SLICES + 1;
    check_call(rck_send(&a), -E2BIG, "nslices past RCK_MAX_SLICES");
    a = good;
    a.ntargets = RCK_MAX_TARGETS + 1;
    check_call(rck_send(&a), -E2BIG, "ntargets past RCK_MAX_TARGETS");
    a = good;
    a.nslices = 0xffffffffu;
    a.ntargets = 0xffffffffu;
    check_call(rck_send(&a), -E2BIG, "counts 2^32-1");

    /* An unmapped page: a pointer that looks fine but is not. */
    long pg = sysconf(_SC_PAGESIZE);
    uint8_t *hole =
        mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(hole, (size_t)pg);
    a = good;
    a.buf = (uintptr_t)hole;
    check_call(rck_send(&a), -EFAULT, "unmapped buf");
    a = good;
    a.buf = 0;
    check_call(rck_send(&a), -EFAULT, "NULL buf with buf_len 64");
    a = good;
    a.buf = (uintptr_t)-64;
    check_call(rck_send(&a), -EFAULT, "buf at the top of the address space");
    a = good;
    a.slices = (uintptr_t)hole;
    check_call(rck_send(&a), -EFAULT, "unmapped slices");
    a = good;
    a.slices = 0;
    check_call(rck_send(&a), -EFAULT, "NULL slices with nslices 1");
    a = good;
    a.targets = (uintptr_t)hole;
    check_call(rck_send(&a), -EFAULT, "unmapped targets");
    a = good;
    a.targets = 0xffff800000000000ull;
    check_call(rck_send(&a), -EFAULT, "targets in kernel space");

    /* Read-only targets: results cannot be written, so nothing is sent. */
    struct rck_target *ro =
        mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *ro = t;
    mprotect(ro, (size_t)pg, PROT_READ);
    a = good;
    a.targets = (uintptr_t)ro;
    check_call(rck_send(&a), -EFAULT, "read-only targets");
    munmap(ro, (size_t)pg);

    check_call(ioctl(dev, RCK_IOC_SEND, (void *)8) == 0 ? 0 : -errno, -EFAULT,
               "the ioctl argument itself unmapped");
    check_call(ioctl(dev, _IO(RCK_IOC_MAGIC, 9), 0) == 0 ? 0 : -errno, -ENOTTY, "an unknown ioctl");

    struct rck_send empty = {0};
    check(rck_send(&empty) == 0 && empty.sent == 0 && empty.nerrors == 0,
          "an empty call succeeds and sends nothing");

    /* Only the 5 bytes of the good call arrived. */
    usleep(20000);
    char got[256];
    ssize_t n = read(rx, got, sizeof(got));
    check(n == 5 && memcmp(got, "frame", 5) == 0, "failed calls sent nothing");
    close(tx);
    close(rx);
}

/*
 * The most work one call can ask for: 2^16 targets, each over all 2^20
 * slices (2^36 slice checks). It must not hold the CPU or resist SIGKILL.
 */
static void test_huge_call_killable(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        die("fork");
    }
    if (pid == 0) {
        static uint8_t buf[16];
        struct rck_slice *s = calloc(RCK_MAX_SLICES, sizeof(*s));
        struct rck_target *t = calloc(RCK_MAX_TARGETS, sizeof(*t));
        for (uint32_t i = 0; i < RCK_MAX_TARGETS; i++) {
            t[i] = (struct rck_target){.fd = -1, .first = 0, .nslices = RCK_MAX_SLICES};
        }
        struct rck_send a = {.buf = (uintptr_t)buf,
                             .buf_len = sizeof(buf),
                             .slices = (uintptr_t)s,
                             .nslices = RCK_MAX_SLICES,
                             .ntargets = RCK_MAX_TARGETS,
                             .targets = (uintptr_t)t};
        rck_send(&a);
        _exit(0);
    }
    usleep(300000);
    double t0 = now();
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    char line[160];
    snprintf(line, sizeof(line), "a call of 2^36 slice checks ends on SIGKILL (%.2f s)",
             now() - t0);
    check(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && now() - t0 < 5, line);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    dev = open(RCK_DEVICE_PATH, O_RDWR | O_CLOEXEC);
    if (dev < 0) {
        die("open " RCK_DEVICE_PATH);
    }
    struct stat sb;
    check(fstat(dev, &sb) == 0 && S_ISCHR(sb.st_mode) && (sb.st_mode & 0777) == 0600 &&
              sb.st_uid == 0,
          RCK_DEVICE_PATH " is a character device, mode 0600, owned by root");
    check(ioctl(dev, RCK_IOC_VERSION) == RCK_VERSION, "RCK_IOC_VERSION is RCK_VERSION");
    lfd = listen_on_loopback();

    static const struct {
        uint32_t flags;
        const char *name;
    } modes[] = {{0, "copy"}, {RCK_F_ZEROCOPY, "zerocopy"}};
    for (int m = 0; m < 2; m++) {
        double t0 = now();
        test_fanout(modes[m].flags, modes[m].name, -1);
        test_fanout(modes[m].flags, modes[m].name, 5);
        test_resume(modes[m].flags, modes[m].name);
        test_bad_fds(modes[m].flags);
        printf("# %s mode: %.2f s\n", modes[m].name, now() - t0);
    }
    test_bad_slices();
    test_bad_calls();
    test_huge_call_killable();
    close(lfd);
    close(dev);
    printf("KMOD-IOCTL-TEST: %s (%d failed)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
