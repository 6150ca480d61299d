/* ceiling.c -- ringcast-ceiling: what the kernel allows for loopback fan-out, without a server.
 *
 * ringcastd's cost per delivery only means something next to what the same
 * machine can do at best. This program measures that limit directly: it opens
 * N loopback TCP connections, forks a child that drains all of them (epoll
 * and 256 KiB reads, pinned to its own CPU if asked), and then sends the same
 * B-byte message to every connection in batches of K messages per socket,
 * three ways in turn:
 *   write   one write() per message per socket (N*K system calls per round);
 *   writev  one writev() per socket per round, K iovecs all pointing at the
 *           same bytes, as a server with shared frames would (N per round);
 *   uring   one SENDMSG SQE per socket (the same K iovecs, MSG_WAITALL), all
 *           N submitted and waited for with one io_uring_enter per round.
 * There is no protocol, no parsing and no bookkeeping: whatever a real server
 * spends beyond these figures is its own overhead. The sender's CPU comes
 * from getrusage(RUSAGE_SELF) of the sending process only (its io-wq workers
 * included, the draining child excluded); note that on loopback the sender
 * also pays for most of the receiving TCP stack, just as a server would. The
 * system calls counted are the sender's own, counted in the program.
 *
 * Output: one `CEILING {json}` line per mode (and a short human line unless
 * --json-only). Every loop is bounded by the duration, and the child dies
 * with its parent (PR_SET_PDEATHSIG) or on EOF from every connection.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MAX_CONNS  20000
#define MAX_BATCH  1024
#define MAX_SIZE   (1 << 20)
#define READ_BUFSZ (256 * 1024)
#define RING_MAX   4096u

struct opts {
    int conns;
    int size;
    int batch;
    double duration;
    int send_cpu;
    int recv_cpu;
    bool json_only;
    const char *modes;
    const char *label;
};

struct result {
    uint64_t deliveries;
    uint64_t syscalls;
    double wall_s;
    double cpu_s;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_self_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void pin(int cpu)
{
    cpu_set_t set;

    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
        fprintf(stderr, "ceiling: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}

/* Connects n client sockets to a fresh loopback listener and accepts them:
 * cli[i] and srv[i] are the two ends of connection i. Returns 0 or -errno. */
static int open_pairs(int n, int *cli, int *srv)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int lfd, one = 1;

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return -errno;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
        goto fail;
    /* Connect and accept in steps of at most 512 so the backlog never fills. */
    for (int done = 0; done < n;) {
        int step = n - done < 512 ? n - done : 512;

        for (int i = done; i < done + step; i++) {
            cli[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (cli[i] < 0 || connect(cli[i], (struct sockaddr *)&sa, sizeof(sa)) < 0)
                goto fail;
            setsockopt(cli[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        for (int i = done; i < done + step; i++) {
            srv[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (srv[i] < 0)
                goto fail;
        }
        done += step;
    }
    close(lfd);
    return 0;
fail:;
    int err = -errno;

    close(lfd);
    return err ? err : -EIO;
}

/* The draining child: reads every connection until EOF on all of them. */
static void drain(int n, const int *fds, int cpu)
{
    struct epoll_event *evs = rc_xcalloc(256, sizeof(*evs));
    char *buf = rc_xmalloc(READ_BUFSZ);
    int ep = epoll_create1(EPOLL_CLOEXEC), open_fds = n;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(0);
    pin(cpu);
    if (ep < 0)
        _exit(1);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};

        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
            _exit(1);
    }
    /* Bounded: each connection ends with EOF when the parent closes it or
     * dies; the parent's runs are bounded by the duration. */
    while (open_fds > 0) {
        int k = epoll_wait(ep, evs, 256, 60000);

        if (k == 0)
            _exit(3); /* a minute without data: the parent is stuck; give up */
        for (int i = 0; i < k; i++) {
            ssize_t r = read(evs[i].data.fd, buf, READ_BUFSZ);

            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, evs[i].data.fd, NULL);
                close(evs[i].data.fd);
                open_fds--;
            }
        }
    }
    _exit(0);
}

/* Writes all of len bytes, counting every call. Returns 0 or -errno. */
static int write_all(int fd, const char *p, size_t len, uint64_t *calls)
{
    while (len > 0) {
        ssize_t r = write(fd, p, len);

        (*calls)++;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* writev() of the whole iovec array, resuming after short writes. The array
 * is modified only in a private copy when a write comes back short. */
static int writev_all(int fd, const struct iovec *iov, int cnt, uint64_t *calls)
{
    struct iovec tmp[MAX_BATCH];
    const struct iovec *v = iov;
    size_t left = 0;

    for (int i = 0; i < cnt; i++)
        left += iov[i].iov_len;
    while (left > 0) {
        ssize_t r = writev(fd, v, cnt);

        (*calls)++;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        left -= (size_t)r;
        if (left == 0)
            break;
        /* Short write: rebuild the rest in tmp (j <= i, so rebuilding tmp
         * from itself never overwrites an entry not yet read). */
        int j = 0;

        for (int i = 0; i < cnt; i++) {
            if ((size_t)r >= v[i].iov_len) {
                r -= (ssize_t)v[i].iov_len;
                continue;
            }
            tmp[j].iov_base = (char *)v[i].iov_base + r;
            tmp[j].iov_len = v[i].iov_len - (size_t)r;
            r = 0;
            j++;
        }
        v = tmp;
        cnt = j;
    }
    return 0;
}

static int run_write(const struct opts *o, const int *fds, const char *msg, struct result *res)
{
    double end = now_s() + o->duration;

    do {
        for (int i = 0; i < o->conns; i++) {
            for (int k = 0; k < o->batch; k++) {
                int err = write_all(fds[i], msg, (size_t)o->size, &res->syscalls);

                if (err)
                    return err;
            }
        }
        res->deliveries += (uint64_t)o->conns * (uint64_t)o->batch;
    } while (now_s() < end);
    return 0;
}

static int run_writev(const struct opts *o, const int *fds, const struct iovec *iov,
                      struct result *res)
{
    double end = now_s() + o->duration;

    do {
        for (int i = 0; i < o->conns; i++) {
            int err = writev_all(fds[i], iov, o->batch, &res->syscalls);

            if (err)
                return err;
        }
        res->deliveries += (uint64_t)o->conns * (uint64_t)o->batch;
    } while (now_s() < end);
    return 0;
}

/* One SENDMSG per socket per round, all in one io_uring_enter that also waits
 * for every completion (rings smaller than N take ceil(N/ring) enters). */
static int run_uring(const struct opts *o, const int *fds, struct msghdr *mh, struct result *res)
{
    struct io_uring ring;
    unsigned entries = (unsigned)o->conns < RING_MAX ? (unsigned)o->conns : RING_MAX;
    size_t want = (size_t)o->size * (size_t)o->batch;
    double end;
    int ret;

    ret = io_uring_queue_init(entries, &ring,
                              IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    if (ret == -EINVAL)
        ret = io_uring_queue_init(entries, &ring, 0);
    if (ret < 0)
        return ret;
    end = now_s() + o->duration;
    do {
        for (int base = 0; base < o->conns; base += (int)entries) {
            int cnt = o->conns - base < (int)entries ? o->conns - base : (int)entries;
            int seen = 0;

            for (int i = 0; i < cnt; i++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

                io_uring_prep_sendmsg(sqe, fds[base + i], mh, MSG_WAITALL | MSG_NOSIGNAL);
            }
            ret = io_uring_submit_and_wait(&ring, (unsigned)cnt);
            res->syscalls++;
            /* Bounded: every SQE completes (MSG_WAITALL, blocking peer drains). */
            while (ret >= 0 || ret == -EINTR) {
                struct io_uring_cqe *cqe;
                unsigned head, n = 0;

                io_uring_for_each_cqe(&ring, head, cqe)
                {
                    if (cqe->res < 0 || (size_t)cqe->res != want) {
                        ret = cqe->res < 0 ? cqe->res : -EIO;
                        break;
                    }
                    n++;
                }
                io_uring_cq_advance(&ring, n);
                seen += (int)n;
                if (ret < 0 && ret != -EINTR)
                    break;
                if (seen >= cnt)
                    break;
                ret = io_uring_wait_cqe_nr(&ring, &cqe, (unsigned)(cnt - seen));
                res->syscalls++;
            }
            if (ret < 0 && ret != -EINTR) {
                io_uring_queue_exit(&ring);
                return ret;
            }
        }
        res->deliveries += (uint64_t)o->conns * (uint64_t)o->batch;
    } while (now_s() < end);
    io_uring_queue_exit(&ring);
    return 0;
}

static void report(const struct opts *o, const char *mode, const struct result *r)
{
    double dps = r->wall_s > 0 ? (double)r->deliveries / r->wall_s : 0;
    double ns = r->deliveries ? r->cpu_s * 1e9 / (double)r->deliveries : 0;
    double spd = r->deliveries ? (double)r->syscalls / (double)r->deliveries : 0;

    printf("CEILING {\"kind\":\"ceiling\",\"label\":\"%s\",\"mode\":\"%s\",\"conns\":%d,"
           "\"size\":%d,\"batch\":%d,\"duration\":%.3f,\"deliveries\":%llu,"
           "\"deliveries_per_sec\":%.0f,\"bytes_per_sec\":%.0f,\"cpu_s\":%.3f,"
           "\"cpu_util\":%.3f,\"cpu_ns_per_delivery\":%.1f,\"syscalls\":%llu,"
           "\"syscalls_per_delivery\":%.6g,\"send_cpu\":%d,\"recv_cpu\":%d}\n",
           o->label, mode, o->conns, o->size, o->batch, r->wall_s,
           (unsigned long long)r->deliveries, dps, dps * o->size, r->cpu_s,
           r->wall_s > 0 ? r->cpu_s / r->wall_s : 0, ns, (unsigned long long)r->syscalls, spd,
           o->send_cpu, o->recv_cpu);
    if (!o->json_only)
        printf("  %-6s %d conns, %d B x %d: %.0f deliveries/s, %.1f CPU ns/delivery "
               "(%.0f%% of a CPU), %.4f syscalls/delivery\n",
               mode, o->conns, o->size, o->batch, dps, ns,
               r->wall_s > 0 ? 100 * r->cpu_s / r->wall_s : 0, spd);
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: ringcast-ceiling [--conns N] [--size B] [--batch K] [--duration T]\n"
               "         [--modes write,writev,uring] [--send-cpu C] [--recv-cpu C]\n"
               "         [--label NAME] [--json-only]\n"
               "Sends the same B-byte message to N loopback TCP connections in batches of K\n"
               "per socket with write(), writev() and io_uring, and prints the sender's\n"
               "deliveries/s, CPU ns per delivery and system calls per delivery.\n"
               "Defaults: --conns 100 --size 128 --batch 64 --duration 2.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"conns", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 'b'},
        {"batch", required_argument, NULL, 'k'},
        {"duration", required_argument, NULL, 't'},
        {"modes", required_argument, NULL, 'm'},
        {"send-cpu", required_argument, NULL, 's'},
        {"recv-cpu", required_argument, NULL, 'r'},
        {"label", required_argument, NULL, 'l'},
        {"json-only", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, err = 0;

    *o = (struct opts){.conns = 100,
                       .size = 128,
                       .batch = 64,
                       .duration = 2,
                       .send_cpu = -1,
                       .recv_cpu = -1,
                       .modes = "write,writev,uring",
                       .label = "ceiling"};
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case 'n': err = parse_int(optarg, 1, MAX_CONNS, &o->conns); break;
        case 'b': err = parse_int(optarg, 1, MAX_SIZE, &o->size); break;
        case 'k': err = parse_int(optarg, 1, MAX_BATCH, &o->batch); break;
        case 't': {
            char *end;

            o->duration = strtod(optarg, &end);
            if (*end || end == optarg || !(o->duration > 0 && o->duration <= 600))
                err = -EINVAL;
            break;
        }
        case 'm': o->modes = optarg; break;
        case 's': err = parse_int(optarg, 0, CPU_SETSIZE - 1, &o->send_cpu); break;
        case 'r': err = parse_int(optarg, 0, CPU_SETSIZE - 1, &o->recv_cpu); break;
        case 'l': o->label = optarg; break;
        case 'j': o->json_only = true; break;
        case 'h': usage(stdout); exit(0);
        default: return -EINVAL;
        }
        if (err) {
            fprintf(stderr, "ceiling: bad value: %s\n", optarg);
            return err;
        }
    }
    if (optind != argc)
        return -EINVAL;
    return 0;
}

/* true when mode appears as a whole item of the comma-separated list. */
static bool wanted(const char *list, const char *mode)
{
    size_t n = strlen(mode);

    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);

        if (len == n && !memcmp(p, mode, n))
            return true;
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct iovec *iov;
    struct msghdr mh;
    int *cli, *srv, err, status = 0;
    char *msg;
    pid_t child;

    if (parse_opts(argc, argv, &o) < 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    cli = rc_xcalloc((size_t)o.conns, sizeof(int));
    srv = rc_xcalloc((size_t)o.conns, sizeof(int));
    err = open_pairs(o.conns, cli, srv);
    if (err) {
        fprintf(stderr, "ceiling: cannot open %d loopback connections: %s (ulimit -n?)\n", o.conns,
                strerror(-err));
        return 1;
    }
    fflush(stdout);
    child = fork();
    if (child < 0) {
        perror("ceiling: fork");
        return 1;
    }
    if (child == 0) {
        for (int i = 0; i < o.conns; i++)
            close(cli[i]);
        drain(o.conns, srv, o.recv_cpu);
    }
    for (int i = 0; i < o.conns; i++)
        close(srv[i]);
    pin(o.send_cpu);

    /* The same bytes for every delivery: one message, K iovecs pointing at it. */
    msg = rc_xmalloc((size_t)o.size);
    memset(msg, 'x', (size_t)o.size);
    iov = rc_xcalloc((size_t)o.batch, sizeof(*iov));
    for (int k = 0; k < o.batch; k++)
        iov[k] = (struct iovec){.iov_base = msg, .iov_len = (size_t)o.size};
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)o.batch;

    if (!o.json_only)
        printf("ringcast-ceiling: %d loopback connections, %d-byte messages, batches of %d, "
               "%.1f s per mode\n",
               o.conns, o.size, o.batch, o.duration);
    static const char *const modes[] = {"write", "writev", "uring"};
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        struct result r = {0};
        double t0, c0;

        if (!wanted(o.modes, modes[m]))
            continue;
        t0 = now_s();
        c0 = cpu_self_s();
        if (m == 0)
            err = run_write(&o, cli, msg, &r);
        else if (m == 1)
            err = run_writev(&o, cli, iov, &r);
        else
            err = run_uring(&o, cli, &mh, &r);
        r.wall_s = now_s() - t0;
        r.cpu_s = cpu_self_s() - c0;
        if (err) {
            fprintf(stderr, "ceiling: mode %s failed: %s\n", modes[m], strerror(-err));
            status = 1;
            break;
        }
        report(&o, modes[m], &r);
    }
    for (int i = 0; i < o.conns; i++)
        close(cli[i]);
    waitpid(child, NULL, 0);
    free(iov);
    free(msg);
    free(cli);
    free(srv);
    return status;
}
