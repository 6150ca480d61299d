/* guest_fanout.c -- ringcastd --io kmod against real RESP subscribers, in the qemu guest.
 *
 * Usage: guest_fanout <host> <port> no|yes|uring  (the kmod-zerocopy setting, or uring)
 *
 * Opens NSUBS subscribers (SUBSCRIBE ch) and one publisher, publishes NMSGS
 * messages of varied lengths and binary content in pipelined bursts, and
 * checks that every subscriber receives every message byte-exact and in
 * order: its whole stream is compared with the RESP pushes it must get.
 * Then INFO fanout must say io_backend:kmod, sys_ioctl > 0, and no more
 * ioctls than loop iterations: the kmod backend sends a tick's output for
 * every subscriber in one call, however many subscribers there are.
 *
 * With the label "uring" the server runs --io uring instead: the same
 * delivery checks, and the system call counts to compare (docs/kmod.md).
 *
 * Prints "FANOUT ok"/"FANOUT not ok" lines and a last line "FANOUT: PASS"
 * or "FANOUT: FAIL"; exits 0 on PASS.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSUBS 50
#define NMSGS 400
#define BURST 25

static int failures;
static const char *label = "";

static void check(bool ok, const char *what)
{
    printf("FANOUT %s - [%s] %s\n", ok ? "ok" : "not ok", label, what);
    fflush(stdout);
    if (!ok) {
        failures++;
    }
}

static void die(const char *what)
{
    printf("FANOUT not ok - [%s] %s: %s\nFANOUT: FAIL\n", label, what, strerror(errno));
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A growable byte string. */
struct bytes {
    char *p;
    size_t len, cap;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            die("realloc");
        }
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void putf(struct bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct bytes *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)n);
}

/* A RESP command from argv-style parts. */
static void command(struct bytes *b, int argc, const char *const *argv, const size_t *lens)
{
    putf(b, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        putf(b, "$%zu\r\n", lens[i]);
        put(b, argv[i], lens[i]);
        put(b, "\r\n", 2);
    }
}

static int dial(const char *host, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    double end = now() + 15;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            die("socket");
        }
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return fd;
        }
        close(fd);
        if (now() > end) {
            die("connect to ringcastd");
        }
        usleep(50000);
    }
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            die("write");
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Reads until b holds at least want bytes (blocking fd), or dies after 20 s. */
static void read_at_least(int fd, struct bytes *b, size_t want)
{
    double end = now() + 20;
    while (b->len < want) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0) {
            if (now() > end) {
                errno = ETIMEDOUT;
                die("reading a reply");
            }
            continue;
        }
        char tmp[65536];
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r <= 0) {
            errno = r == 0 ? ECONNRESET : errno;
            die("read");
        }
        put(b, tmp, (size_t)r);
    }
}

/* Message i: a header with its number, then bytes of every value (\r\n and 0 included). */
static void payload(struct bytes *b, int i)
{
    b->len = 0;
    putf(b, "msg-%d-", i);
    size_t n = 1 + ((size_t)i * 7919u) % 3000u;
    for (size_t k = 0; k < n; k++) {
        char c = (char)((k * 31u + (size_t)i) & 0xff);
        put(b, &c, 1);
    }
}

/* The value of "name:" in an INFO reply, or -1. */
static long long info_field(const char *info, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = info; p && *p;) {
        if (!strncmp(p, name, n) && p[n] == ':') {
            return strtoll(p + n + 1, NULL, 10);
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: guest_fanout <host> <port> no|yes|uring\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    label = argv[3];
    /* "uring": the same traffic through --io uring, for the syscall counts beside kmod's. */
    bool uring = !strcmp(label, "uring");
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Subscribe everyone and wait for each confirmation. */
    static const char sub_reply[] = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
    int subs[NSUBS];
    struct bytes got[NSUBS] = {{0}};
    struct bytes cmd = {0};
    const char *sub_argv[] = {"SUBSCRIBE", "ch"};
    const size_t sub_lens[] = {9, 2};
    command(&cmd, 2, sub_argv, sub_lens);
    for (int s = 0; s < NSUBS; s++) {
        subs[s] = dial(host, port);
        write_all(subs[s], cmd.p, cmd.len);
    }
    bool subscribed = true;
    for (int s = 0; s < NSUBS; s++) {
        read_at_least(subs[s], &got[s], sizeof(sub_reply) - 1);
        subscribed = subscribed && got[s].len == sizeof(sub_reply) - 1 &&
                     !memcmp(got[s].p, sub_reply, got[s].len);
        got[s].len = 0;
        fcntl(subs[s], F_SETFL, fcntl(subs[s], F_GETFL) | O_NONBLOCK);
    }
    check(subscribed, "50 subscribers confirmed");

    /* Publish in pipelined bursts; subscribers are read as the data comes. */
    int pub = dial(host, port);
    struct bytes want = {0}; /* the stream every subscriber must get */
    struct bytes msg = {0};
    struct bytes replies = {0};
    size_t replies_want = 0;
    char num[32];
    snprintf(num, sizeof(num), ":%d\r\n", NSUBS);
    for (int i = 0; i < NMSGS; i += BURST) {
        cmd.len = 0;
        for (int k = i; k < i + BURST && k < NMSGS; k++) {
            payload(&msg, k);
            const char *pub_argv[] = {"PUBLISH", "ch", msg.p};
            const size_t pub_lens[] = {7, 2, msg.len};
            command(&cmd, 3, pub_argv, pub_lens);
            putf(&want, "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$%zu\r\n", msg.len);
            put(&want, msg.p, msg.len);
            put(&want, "\r\n", 2);
            replies_want += strlen(num);
        }
        write_all(pub, cmd.p, cmd.len);
        read_at_least(pub, &replies, replies_want);
        for (int s = 0; s < NSUBS; s++) {
            char tmp[65536];
            ssize_t r;
            while ((r = read(subs[s], tmp, sizeof(tmp))) > 0) {
                put(&got[s], tmp, (size_t)r);
            }
        }
    }
    bool counted = replies.len == replies_want;
    for (size_t off = 0; counted && off < replies.len; off += strlen(num)) {
        counted = !memcmp(replies.p + off, num, strlen(num));
    }
    check(counted, "every PUBLISH answered with 50 receivers");

    /* Read until every subscriber has the whole stream (or 30 s). */
    double end = now() + 30;
    for (;;) {
        bool done = true;
        for (int s = 0; s < NSUBS; s++) {
            char tmp[65536];
            ssize_t r;
            while ((r = read(subs[s], tmp, sizeof(tmp))) > 0) {
                put(&got[s], tmp, (size_t)r);
            }
            done = done && got[s].len >= want.len;
        }
        if (done || now() > end) {
            break;
        }
        usleep(2000);
    }
    usleep(50000);
    int exact = 0;
    for (int s = 0; s < NSUBS; s++) {
        char tmp[4096];
        ssize_t r;
        while ((r = read(subs[s], tmp, sizeof(tmp))) > 0) {
            put(&got[s], tmp, (size_t)r);
        }
        bool ok = got[s].len == want.len && !memcmp(got[s].p, want.p, want.len);
        if (!ok) {
            size_t at = 0;
            while (at < got[s].len && at < want.len && got[s].p[at] == want.p[at]) {
                at++;
            }
            printf("# subscriber %d: %zu bytes, want %zu, first difference at %zu\n", s, got[s].len,
                   want.len, at);
        }
        exact += ok;
    }
    char line[200];
    snprintf(line, sizeof(line), "%d of %d subscribers got all %d messages (%zu bytes) byte-exact",
             exact, NSUBS, NMSGS, want.len);
    check(exact == NSUBS, line);

    /* INFO fanout: the backend, and one ioctl per loop iteration at most. */
    cmd.len = 0;
    const char *info_argv[] = {"INFO", "fanout"};
    const size_t info_lens[] = {4, 6};
    command(&cmd, 2, info_argv, info_lens);
    write_all(pub, cmd.p, cmd.len);
    struct bytes info = {0};
    read_at_least(pub, &info, 4);
    char *nl = memchr(info.p, '\n', info.len);
    while (!nl) {
        read_at_least(pub, &info, info.len + 1);
        nl = memchr(info.p, '\n', info.len);
    }
    size_t body = (size_t)strtoul(info.p + 1, NULL, 10);
    size_t head = (size_t)(nl - info.p) + 1;
    read_at_least(pub, &info, head + body + 2);
    put(&info, "", 1);
    char *text = info.p + head;
    char backend[64];
    snprintf(backend, sizeof(backend), "io_backend:%s\r\n", uring ? "uring" : "kmod");
    bool backend_ok = strstr(text, backend) != NULL;
    long long ioctls = info_field(text, "sys_ioctl");
    long long iters = info_field(text, "loop_iterations");
    printf("# %s: deliveries %lld, loop_iterations %lld, sends %lld, syscalls %lld, "
           "sys_io_uring_enter %lld, sys_ioctl %lld\n",
           label, info_field(text, "deliveries"), iters, info_field(text, "sends"),
           info_field(text, "syscalls"), info_field(text, "sys_io_uring_enter"), ioctls);
    snprintf(line, sizeof(line), "INFO fanout: %.*s", (int)strlen(backend) - 2, backend);
    check(backend_ok, line);
    if (uring) {
        check(ioctls == 0, "INFO fanout: sys_ioctl 0 without the kmod backend");
    } else {
        check(ioctls > 0, "INFO fanout: sys_ioctl > 0");
        snprintf(line, sizeof(line),
                 "INFO fanout: %lld ioctls <= %lld loop iterations (%d deliveries)", ioctls, iters,
                 NSUBS * NMSGS);
        check(iters > 0 && ioctls <= iters, line);
    }

    for (int s = 0; s < NSUBS; s++) {
        close(subs[s]);
        free(got[s].p);
    }
    close(pub);
    printf("FANOUT: %s [%s]\n", failures ? "FAIL" : "PASS", label);
    return failures ? 1 : 0;
}
