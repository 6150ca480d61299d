/* bench.c -- ringcast-bench: fan-out load generator for RESP pub/sub servers and NATS.
 *
 * The main thread parses flags, starts the subscriber thread (bench_sub.c) and
 * the publisher thread (bench_pub.c), and walks the run through bounded
 * phases: setup (connect and subscribe, at most RC_BENCH_SETUP_MS), warm-up,
 * the measured window, and the drain (publishers flush and collect replies,
 * subscribers receive what is still expected; at most RC_BENCH_DRAIN_MS each).
 * At the edges of the window it samples the delivery counters, its own CPU
 * time, and -- given --server-pid -- the server's CPU time from
 * /proc/PID/stat and its RSS from /proc/PID/status. With --perf it runs
 * `perf stat -e raw_syscalls:sys_enter -p PID` started with events disabled
 * and switches counting on and off through perf's control pipe exactly at
 * the window's edges, so perf's start-up time does not eat into the window.
 *
 * With --proto sse or ws the subscribers connect to ringcastd's HTTP port
 * (--http-port) as Server-Sent Events streams or WebSockets while the
 * publishers keep speaking RESP to --port: only the subscribers' transport
 * changes, so the three runs compare what fan-out costs the server per
 * delivery in each wire format.
 *
 * The output is one line `RESULT {json}` for scripts and a short summary for
 * people. Only loopback addresses are accepted: this is a local benchmark and
 * must never be pointed at someone else's server.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "util.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: ringcast-bench [options]\n"
            "\n"
            "Fan-out load generator for RESP pub/sub servers (ringcastd, redis-server) and\n"
            "nats-server, and for ringcastd's SSE and WebSocket subscribers. S subscribers\n"
            "over C channels, P publishers, B-byte messages.\n"
            "Subscriber i listens on channel ch.<i%%C>; publisher p sends its n-th message\n"
            "to channel ch.<(p+n)%%C>. Prints one line `RESULT {json}` and a summary.\n"
            "\n"
            "Target:\n"
            "  --host ADDR        server address, loopback only (default 127.0.0.1)\n"
            "  --port N           server port (default 6379; 4222 with --proto nats)\n"
            "  --proto P          resp, nats, sse or ws (default resp); sse and ws are\n"
            "                     ringcastd's HTTP port: subscribers read Server-Sent\n"
            "                     Events or WebSocket frames there, publishers speak RESP\n"
            "                     to --port\n"
            "  --http-port N      ringcastd's HTTP port for sse and ws (default 8380)\n"
            "Workload:\n"
            "  --subs S           subscriber connections (default 100)\n"
            "  --channels C       channels (default 1)\n"
            "  --psubscribe       subscribe by pattern ch.<k>.* (channels become ch.<k>.m)\n"
            "  --pubs P           publisher connections (default 1)\n"
            "  --size B           message size in bytes, >= 24, >= 44 with sse and ws\n"
            "                     (default 128)\n"
            "  --rate R           total messages/s over all publishers; 0 = max (default 0)\n"
            "  --pipeline D       max unacknowledged messages per publisher (default 64);\n"
            "                     NATS bursts are acknowledged by PING/PONG\n"
            "  --duration T       measured seconds (default 10)\n"
            "  --warmup W         seconds of publishing before measuring (default 2)\n"
            "  --idle             connect and subscribe only, no publishing; report the\n"
            "                     server's memory (scenario M)\n"
            "Server metrics:\n"
            "  --server-pid PID   read the server's CPU time and RSS from /proc/PID\n"
            "  --perf             count the server's system calls in the window with\n"
            "                     `perf stat -e raw_syscalls:sys_enter -p PID` (needs PID;\n"
            "                     skipped with a note if perf is missing or not allowed)\n"
            "Output:\n"
            "  --label NAME       label copied into the result (default \"run\")\n"
            "  --json-only        print only the RESULT line\n"
            "  -h, --help         this text\n"
            "\n"
            "Every phase is bounded: setup %u s, drain %u s.\n"
            "Example:\n"
            "  ringcast-bench --port 6380 --subs 100 --channels 1 --pubs 1 --size 128 \\\n"
            "      --pipeline 64 --duration 10 --server-pid $(pidof ringcastd) --perf\n",
            RC_BENCH_SETUP_MS / 1000, RC_BENCH_DRAIN_MS / 1000);
}

/* ---- flags ---- */

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    int64_t v;
    if (!rc_parse_i64(s, strlen(s), &v) || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_dbl(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* Accepts only loopback: 127.0.0.0/8, ::1 (and v4-mapped 127/8), "localhost". */
static int resolve_loopback(struct rc_bench_opts *o)
{
    const char *h = o->host;
    if (strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    struct sockaddr_in *a4 = (struct sockaddr_in *)&o->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&o->addr;
    memset(&o->addr, 0, sizeof(o->addr));
    if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
            return -EPERM;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)o->port);
        o->addrlen = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        const uint8_t *b = a6->sin6_addr.s6_addr;
        bool ok = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ||
                  (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && b[12] == 127);
        if (!ok)
            return -EPERM;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)o->port);
        o->addrlen = sizeof(*a6);
        return 0;
    }
    return -EINVAL;
}

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_PROTO,
    OPT_HTTP_PORT,
    OPT_SUBS,
    OPT_CHANNELS,
    OPT_PSUB,
    OPT_PUBS,
    OPT_SIZE,
    OPT_RATE,
    OPT_PIPELINE,
    OPT_DURATION,
    OPT_WARMUP,
    OPT_PID,
    OPT_PERF,
    OPT_LABEL,
    OPT_IDLE,
    OPT_JSON
};

static int parse_args(int argc, char **argv, struct rc_bench_opts *o)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, OPT_HOST},
        {"port", required_argument, NULL, OPT_PORT},
        {"proto", required_argument, NULL, OPT_PROTO},
        {"http-port", required_argument, NULL, OPT_HTTP_PORT},
        {"subs", required_argument, NULL, OPT_SUBS},
        {"channels", required_argument, NULL, OPT_CHANNELS},
        {"psubscribe", no_argument, NULL, OPT_PSUB},
        {"pubs", required_argument, NULL, OPT_PUBS},
        {"size", required_argument, NULL, OPT_SIZE},
        {"rate", required_argument, NULL, OPT_RATE},
        {"pipeline", required_argument, NULL, OPT_PIPELINE},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"server-pid", required_argument, NULL, OPT_PID},
        {"perf", no_argument, NULL, OPT_PERF},
        {"label", required_argument, NULL, OPT_LABEL},
        {"idle", no_argument, NULL, OPT_IDLE},
        {"json-only", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct rc_bench_opts){.host = "127.0.0.1",
                                .port = -1,
                                .http_port = 8380,
                                .proto = RC_BENCH_RESP,
                                .subs = 100,
                                .channels = 1,
                                .pubs = 1,
                                .size = 128,
                                .pipeline = 64,
                                .duration = 10,
                                .warmup = 2,
                                .label = "run"};
    int c, idx = -1;
    bool ok = true;
    const char *bad = NULL;
    while (ok && (c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        switch (c) {
        case OPT_HOST: o->host = optarg; break;
        case OPT_PORT: ok = parse_int(optarg, 1, 65535, &o->port); break;
        case OPT_PROTO:
            if (strcmp(optarg, "resp") == 0)
                o->proto = RC_BENCH_RESP;
            else if (strcmp(optarg, "nats") == 0)
                o->proto = RC_BENCH_NATS;
            else if (strcmp(optarg, "sse") == 0)
                o->proto = RC_BENCH_SSE;
            else if (strcmp(optarg, "ws") == 0)
                o->proto = RC_BENCH_WS;
            else
                ok = false;
            break;
        case OPT_HTTP_PORT: ok = parse_int(optarg, 1, 65535, &o->http_port); break;
        case OPT_SUBS: ok = parse_int(optarg, 0, 1000000, &o->subs); break;
        case OPT_CHANNELS: ok = parse_int(optarg, 1, 1000000, &o->channels); break;
        case OPT_PSUB: o->psubscribe = true; break;
        case OPT_PUBS: ok = parse_int(optarg, 1, 10000, &o->pubs); break;
        case OPT_SIZE: ok = parse_int(optarg, RC_BENCH_HDR, 64 << 20, &o->size); break;
        case OPT_RATE: ok = parse_dbl(optarg, 0, 1e9, &o->rate); break;
        case OPT_PIPELINE: ok = parse_int(optarg, 1, 100000, &o->pipeline); break;
        case OPT_DURATION: ok = parse_dbl(optarg, 0.01, 86400, &o->duration); break;
        case OPT_WARMUP: ok = parse_dbl(optarg, 0, 3600, &o->warmup); break;
        case OPT_PID: ok = parse_int(optarg, 1, 1 << 30, &o->server_pid); break;
        case OPT_PERF: o->perf = true; break;
        case OPT_LABEL: o->label = optarg; break;
        case OPT_IDLE: o->idle = true; break;
        case OPT_JSON: o->json_only = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -EINVAL;
        }
        if (!ok && idx >= 0)
            bad = opts[idx].name;
        idx = -1;
    }
    if (!ok) {
        fprintf(stderr, "ringcast-bench: invalid value '%s' for --%s (see --help)\n", optarg,
                bad ? bad : "?");
        return -EINVAL;
    }
    if (optind < argc) {
        fprintf(stderr, "ringcast-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -EINVAL;
    }
    if (o->port < 0)
        o->port = o->proto == RC_BENCH_NATS ? 4222 : 6379;
    for (const char *p = o->label; *p; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
            fprintf(stderr, "ringcast-bench: --label must not contain quotes, backslashes "
                            "or control characters\n");
            return -EINVAL;
        }
    }
    if (rc_bench_over_http(o) && o->size < (int)RC_BENCH_TEXT_HDR) {
        fprintf(stderr,
                "ringcast-bench: --size must be at least %u with --proto %s (the payload "
                "carries a text header so that it stays valid UTF-8)\n",
                RC_BENCH_TEXT_HDR, rc_bench_proto_name(o->proto));
        return -EINVAL;
    }
    if (o->perf && !o->server_pid) {
        fprintf(stderr, "ringcast-bench: --perf needs --server-pid\n");
        return -EINVAL;
    }
    int r = resolve_loopback(o);
    if (r == 0) {
        o->http_addr = o->addr;
        uint16_t hp = htons((uint16_t)o->http_port);
        if (o->addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&o->http_addr)->sin_port = hp;
        else
            ((struct sockaddr_in6 *)&o->http_addr)->sin6_port = hp;
    }
    if (r == -EPERM) {
        fprintf(stderr,
                "ringcast-bench: refusing non-loopback host '%s': only 127.0.0.0/8, ::1 "
                "and localhost are allowed\n",
                o->host);
        return r;
    }
    if (r < 0) {
        fprintf(stderr, "ringcast-bench: --host '%s' is not an IP address or 'localhost'\n",
                o->host);
        return r;
    }
    return 0;
}

/* ---- /proc and perf ---- */

/* Server CPU time (user + system, all threads) in seconds, or -1. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* after ")": state(3) ... utime(14) stime(15) */
    /* A kernel file, not network input; the field count check catches garbage. */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, /* NOLINT */
               &st) != 2)
        return -1;
    long tck = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(tck > 0 ? tck : 100);
}

/* VmRSS and VmHWM in KiB from /proc/PID/status; 0 or -errno. */
static int proc_rss_kb(int pid, long *rss, long *hwm)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    *rss = *hwm = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return 0;
}

struct perf_run {
    pid_t pid;
    int ctl;
    int ack;
    bool enabled;
    char out[64];
    char note[160];
};

static void perf_note(struct perf_run *p, const char *why)
{
    if (!p->note[0])
        snprintf(p->note, sizeof(p->note), "%s", why);
}

static int perf_start(struct perf_run *p, int server_pid)
{
    int ctl[2], ack[2];
    snprintf(p->out, sizeof(p->out), "/tmp/rcbench-perf-XXXXXX");
    int fd = mkstemp(p->out);
    if (fd < 0) {
        perf_note(p, "cannot create a temporary file for perf");
        p->out[0] = '\0';
        return -errno;
    }
    close(fd);
    if (pipe2(ctl, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(ack, O_CLOEXEC) < 0) {
        close(ctl[0]);
        close(ctl[1]);
        return -errno;
    }
    pid_t pid = fork();
    if (pid == 0) {
        fcntl(ctl[0], F_SETFD, 0);
        fcntl(ack[1], F_SETFD, 0);
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) {
            dup2(dn, 0);
            dup2(dn, 1);
            dup2(dn, 2);
        }
        char pidstr[16], control[48];
        snprintf(pidstr, sizeof(pidstr), "%d", server_pid);
        snprintf(control, sizeof(control), "fd:%d,%d", ctl[0], ack[1]);
        execlp("perf", "perf", "stat", "-e", "raw_syscalls:sys_enter", "-p", pidstr, "-x,", "-o",
               p->out, "-D", "-1", "--control", control, (char *)NULL);
        _exit(127);
    }
    close(ctl[0]);
    close(ack[1]);
    if (pid < 0) {
        close(ctl[1]);
        close(ack[0]);
        return -errno;
    }
    p->pid = pid;
    p->ctl = ctl[1];
    p->ack = ack[0];
    return 0;
}

/* Sends "enable"/"disable" and waits up to timeout_ms for perf's "ack". */
static int perf_command(struct perf_run *p, const char *cmd, unsigned timeout_ms)
{
    if (p->pid <= 0)
        return -ESRCH;
    char line[16];
    int n = snprintf(line, sizeof(line), "%s\n", cmd);
    if (write(p->ctl, line, (size_t)n) != n)
        return -EPIPE;
    uint64_t deadline = rc_now_ms() + timeout_ms;
    char buf[16];
    size_t got = 0;
    while (got < 4) {
        uint64_t now = rc_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = p->ack, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -ETIMEDOUT;
        ssize_t m = read(p->ack, buf + got, sizeof(buf) - got);
        if (m <= 0)
            return -EPIPE;
        got += (size_t)m;
    }
    return strncmp(buf, "ack", 3) == 0 ? 0 : -EPROTO;
}

/* Stops perf (SIGINT, then SIGKILL after 3 s) and returns the syscall count or -1. */
static double perf_finish(struct perf_run *p)
{
    double count = -1;
    if (p->pid > 0) {
        kill(p->pid, SIGINT);
        int st = 0;
        bool reaped = false;
        for (int i = 0; i < 300; i++) {
            if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
                reaped = true;
                break;
            }
            usleep(10000);
        }
        if (!reaped) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            perf_note(p, "perf did not stop within 3 s");
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
            perf_note(p, "perf is not installed");
        }
        close(p->ctl);
        close(p->ack);
        p->pid = 0;
    }
    if (p->out[0]) {
        FILE *f = fopen(p->out, "re");
        char line[512];
        while (f && fgets(line, sizeof(line), f)) {
            if (line[0] == '#' || line[0] == '\n' || !strstr(line, "raw_syscalls:sys_enter"))
                continue;
            char *end;
            double v = strtod(line, &end);
            if (end != line && *end == ',')
                count = v;
            else
                perf_note(p, "perf could not count raw_syscalls:sys_enter (permissions?)");
        }
        if (f)
            fclose(f);
        unlink(p->out);
    }
    if (count < 0)
        perf_note(p, "perf gave no count");
    return count;
}

/* ---- timing ---- */

static double thread_cpu_s(pthread_t t)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(t, &cid) != 0 || clock_gettime(cid, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double process_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool failed(void)
{
    return atomic_load(&rc_bench.sub_failed) || atomic_load(&rc_bench.pub_failed);
}

/* Sleeps up to seconds, in 10 ms steps; stops early on failure or a signal. */
static void nap(double seconds)
{
    uint64_t end = rc_now_us() + (uint64_t)(seconds * 1e6);
    for (;;) {
        uint64_t now = rc_now_us();
        if (now >= end || interrupted || failed())
            return;
        usleep((useconds_t)RC_MIN(end - now, 10000u));
    }
}

/* ---- output ---- */

struct snap {
    double t, server_cpu, bench_cpu, sub_cpu, pub_cpu;
    uint64_t deliveries, published;
};

static void jnum(struct rc_buf *b, const char *key, double v, bool valid)
{
    if (!valid || !isfinite(v))
        rc_buf_appendf(b, ",\"%s\":null", key);
    else if (v == floor(v) && fabs(v) < 9e15)
        rc_buf_appendf(b, ",\"%s\":%.0f", key, v);
    else
        rc_buf_appendf(b, ",\"%s\":%.6g", key, v);
}

static int count_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 1;
    return RC_MAX(CPU_COUNT(&set), 1);
}

int main(int argc, char **argv)
{
    static struct rc_bench_opts o; /* the worker threads keep a pointer to it */
    if (parse_args(argc, argv, &o) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = (rlim_t)o.subs + (rlim_t)o.pubs + 64;
        if (rl.rlim_cur < want) {
            rl.rlim_cur = RC_MIN(want, rl.rlim_max);
            setrlimit(RLIMIT_NOFILE, &rl);
            if (rl.rlim_cur < want)
                fprintf(stderr,
                        "ringcast-bench: warning: open file limit %lu is below the %lu "
                        "connections needed\n",
                        (unsigned long)rl.rlim_cur, (unsigned long)want);
        }
    }

    long rss_before = -1, hwm = -1;
    if (o.server_pid && proc_rss_kb(o.server_pid, &rss_before, &hwm) < 0) {
        fprintf(stderr, "ringcast-bench: cannot read /proc/%d/status: no such server process\n",
                o.server_pid);
        return 2;
    }

    struct perf_run perf = {.pid = 0};
    if (o.perf && !o.idle && perf_start(&perf, o.server_pid) < 0)
        perf_note(&perf, "could not start perf");

    static struct rc_bench_sub_ctx sctx;
    static struct rc_bench_pub_ctx pctx;
    sctx.o = &o;
    pctx.o = &o;
    pthread_t st, pt = 0;
    bool have_pub = !o.idle;
    if (pthread_create(&st, NULL, rc_bench_sub_main, &sctx) != 0) {
        fprintf(stderr, "ringcast-bench: cannot start the subscriber thread\n");
        return 1;
    }
    if (have_pub && pthread_create(&pt, NULL, rc_bench_pub_main, &pctx) != 0) {
        fprintf(stderr, "ringcast-bench: cannot start the publisher thread\n");
        return 1;
    }

    /* Phase 1: setup, bounded. */
    const char *error = NULL;
    uint64_t setup_end = rc_now_ms() + RC_BENCH_SETUP_MS;
    while (!interrupted && !failed()) {
        bool subs_ok = atomic_load(&rc_bench.subs_ready) >= o.subs;
        bool pubs_ok = !have_pub || atomic_load(&rc_bench.pubs_ready) >= o.pubs;
        if (subs_ok && pubs_ok)
            break;
        if (rc_now_ms() >= setup_end) {
            error = "setup timed out: not every subscriber got its subscription confirmed";
            break;
        }
        usleep(2000);
    }
    if (!error && failed())
        error = "setup failed";
    if (!error && interrupted)
        error = "interrupted";

    struct snap s0 = {0}, s1 = {0};
    double syscalls = -1;
    long rss = -1;
    bool perf_on = false;
    if (!error && !o.idle) {
        atomic_store(&rc_bench.go, true);
        nap(o.warmup);
        /* Phase 2: the measured window. */
        if (perf.pid > 0) {
            int r = perf_command(&perf, "enable", 5000);
            perf_on = r == 0;
            if (!perf_on)
                perf_note(&perf, "perf did not accept 'enable' on its control pipe");
        }
        atomic_store(&rc_bench.measuring, true);
        s0 = (struct snap){.t = (double)rc_now_us() / 1e6,
                           .server_cpu = o.server_pid ? proc_cpu_s(o.server_pid) : -1,
                           .bench_cpu = process_cpu_s(),
                           .sub_cpu = thread_cpu_s(st),
                           .pub_cpu = thread_cpu_s(pt),
                           .deliveries = atomic_load(&rc_bench.deliveries),
                           .published = atomic_load(&rc_bench.published)};
        nap(o.duration);
        s1 = (struct snap){.t = (double)rc_now_us() / 1e6,
                           .server_cpu = o.server_pid ? proc_cpu_s(o.server_pid) : -1,
                           .bench_cpu = process_cpu_s(),
                           .sub_cpu = thread_cpu_s(st),
                           .pub_cpu = thread_cpu_s(pt),
                           .deliveries = atomic_load(&rc_bench.deliveries),
                           .published = atomic_load(&rc_bench.published)};
        atomic_store(&rc_bench.measuring, false);
        if (perf_on && perf_command(&perf, "disable", 3000) < 0)
            perf_note(&perf, "perf did not accept 'disable'; count may include the drain");
        if (failed())
            error = "a connection failed during the run";
        else if (interrupted)
            error = "interrupted";
    } else if (!error && o.idle) {
        /* Scenario M: subscribed and idle; let the server settle, then read memory. */
        s0.t = (double)rc_now_us() / 1e6;
        s0.server_cpu = o.server_pid ? proc_cpu_s(o.server_pid) : -1;
        nap(RC_MIN(o.duration, 1.0));
        s1.t = (double)rc_now_us() / 1e6;
        s1.server_cpu = o.server_pid ? proc_cpu_s(o.server_pid) : -1;
    }
    if (perf.pid > 0 || perf.out[0]) {
        double c = perf_finish(&perf);
        if (perf_on)
            syscalls = c;
    }
    hwm = -1;
    if (o.server_pid && proc_rss_kb(o.server_pid, &rss, &hwm) < 0)
        rss = hwm = -1;

    /* Phase 3: drain, bounded. */
    atomic_store(&rc_bench.stop_pub, true);
    uint64_t drain_end = rc_now_ms() + RC_BENCH_DRAIN_MS + 1000;
    while (have_pub && !atomic_load(&rc_bench.pub_exited) && rc_now_ms() < drain_end)
        usleep(2000);
    drain_end = rc_now_ms() + RC_BENCH_DRAIN_MS;
    while (!error && !atomic_load(&rc_bench.sub_failed) &&
           atomic_load(&rc_bench.deliveries) < atomic_load(&rc_bench.expected) &&
           rc_now_ms() < drain_end)
        usleep(2000);
    atomic_store(&rc_bench.stop_sub, true);
    pthread_join(st, NULL);
    if (have_pub)
        pthread_join(pt, NULL);

    const struct rc_bench_sub_result *sr = &sctx.res;
    const struct rc_bench_pub_result *pr = &pctx.res;
    if (!error && (sr->err[0] || pr->err[0]))
        error = "a connection reported an error";
    double win = s1.t - s0.t;
    double wdeliv = (double)(s1.deliveries - s0.deliveries);
    double wpub = (double)(s1.published - s0.published);
    bool has_win = !o.idle && win > 0;
    double scpu = s1.server_cpu - s0.server_cpu;
    bool has_scpu = o.server_pid && s0.server_cpu >= 0 && s1.server_cpu >= 0 && win > 0;
    double lost = (double)pr->expected - (double)sr->deliveries;
    double bench_cpu = s1.bench_cpu - s0.bench_cpu;
    double p50 = (double)rc_hist_quantile(&sr->hist, 0.50) / 1e3;
    double p99 = (double)rc_hist_quantile(&sr->hist, 0.99) / 1e3;
    double p999 = (double)rc_hist_quantile(&sr->hist, 0.999) / 1e3;
    double pmax = (double)sr->hist.max / 1e3;
    bool has_lat = sr->hist.count > 0;

    struct rc_buf b = {0};
    rc_buf_appendf(&b, "{\"label\":\"%s\",\"proto\":\"%s\"", o.label, rc_bench_proto_name(o.proto));
    if (rc_bench_over_http(&o))
        jnum(&b, "http_port", o.http_port, true);
    rc_buf_appendf(&b, ",\"payload\":\"%s\"", rc_bench_over_http(&o) ? "text" : "binary");
    jnum(&b, "subs", o.subs, true);
    jnum(&b, "channels", o.channels, true);
    rc_buf_appendf(&b, ",\"psubscribe\":%s,\"idle\":%s", o.psubscribe ? "true" : "false",
                   o.idle ? "true" : "false");
    jnum(&b, "pubs", o.idle ? 0 : o.pubs, true);
    jnum(&b, "size", o.size, true);
    jnum(&b, "rate", o.rate, true);
    jnum(&b, "pipeline", o.pipeline, true);
    jnum(&b, "duration", round(win * 1000) / 1000, has_win);
    jnum(&b, "published", (double)pr->published, true);
    jnum(&b, "deliveries", (double)sr->deliveries, true);
    jnum(&b, "expected", (double)pr->expected, true);
    jnum(&b, "lost", lost > 0 ? lost : 0, true);
    jnum(&b, "window_published", wpub, has_win);
    jnum(&b, "window_deliveries", wdeliv, has_win);
    jnum(&b, "publish_per_sec", round(wpub / win), has_win);
    jnum(&b, "deliveries_per_sec", round(wdeliv / win), has_win);
    jnum(&b, "gaps", (double)sr->gaps, true);
    jnum(&b, "dups", (double)sr->dups, true);
    jnum(&b, "reorders", (double)sr->reorders, true);
    jnum(&b, "misrouted", (double)sr->misrouted, true);
    jnum(&b, "reply_mismatch", (double)pr->reply_mismatch, true);
    jnum(&b, "lat_p50_us", p50, has_lat);
    jnum(&b, "lat_p99_us", p99, has_lat);
    jnum(&b, "lat_p999_us", p999, has_lat);
    jnum(&b, "lat_max_us", pmax, has_lat);
    jnum(&b, "server_cpu_s", scpu, has_scpu);
    jnum(&b, "cpu_s_per_million", scpu / (wdeliv / 1e6), has_scpu && has_win && wdeliv > 0);
    jnum(&b, "syscalls", syscalls, syscalls >= 0);
    jnum(&b, "syscalls_per_delivery", syscalls / wdeliv, syscalls >= 0 && wdeliv > 0);
    jnum(&b, "server_rss_kb", (double)rss, rss >= 0);
    jnum(&b, "server_peak_rss_kb", (double)hwm, hwm >= 0);
    jnum(&b, "server_rss_before_kb", (double)rss_before, rss_before >= 0);
    jnum(&b, "server_rss_per_sub_bytes", round((double)(rss - rss_before) * 1024 / o.subs),
         rss >= 0 && rss_before >= 0 && o.subs > 0);
    jnum(&b, "bench_cpu_s", bench_cpu, has_win);
    jnum(&b, "bench_sub_cpu_s", s1.sub_cpu - s0.sub_cpu, has_win);
    jnum(&b, "bench_pub_cpu_s", s1.pub_cpu - s0.pub_cpu, has_win);
    jnum(&b, "bench_cpus", count_cpus(), true);
    if (error)
        rc_buf_appendf(&b, ",\"error\":\"%s\"", error);
    rc_buf_appendc(&b, '}');
    printf("RESULT %.*s\n", (int)b.len, b.p);
    rc_buf_free(&b);

    if (!o.json_only) {
        printf("%s: %s%s, %d subs on %d channel(s)%s, %d pub(s), %d B, %s", o.label,
               rc_bench_proto_name(o.proto),
               rc_bench_over_http(&o) ? " subscribers (publishers: resp)" : "", o.subs, o.channels,
               o.psubscribe ? " (patterns)" : "", o.idle ? 0 : o.pubs, o.size,
               o.idle ? "idle" : (o.rate > 0 ? "fixed rate" : "max rate"));
        if (o.rate > 0)
            printf(" %.0f msg/s", o.rate);
        printf(", pipeline %d\n", o.pipeline);
        if (has_win) {
            printf("  deliveries  %.0f/s over %.2f s (published %.0f/s)\n", wdeliv / win, win,
                   wpub / win);
            printf("  correctness delivered %llu of %llu expected, lost %.0f, gaps %llu, dups "
                   "%llu, reorders %llu, misrouted %llu\n",
                   (unsigned long long)sr->deliveries, (unsigned long long)pr->expected,
                   lost > 0 ? lost : 0, (unsigned long long)sr->gaps, (unsigned long long)sr->dups,
                   (unsigned long long)sr->reorders, (unsigned long long)sr->misrouted);
            if (has_lat)
                printf("  latency     p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n", p50,
                       p99, p999, pmax);
            printf("  bench CPU   %.2f s (%.0f%% of %d CPU(s); subscriber thread %.0f%%, "
                   "publisher thread %.0f%%)\n",
                   bench_cpu, 100 * bench_cpu / win, count_cpus(),
                   100 * (s1.sub_cpu - s0.sub_cpu) / win, 100 * (s1.pub_cpu - s0.pub_cpu) / win);
            if ((s1.sub_cpu - s0.sub_cpu) / win > 0.9 || bench_cpu / win > 0.9 * count_cpus())
                printf("  WARNING     the bench itself is near saturation; the server may "
                       "not be the bottleneck\n");
        }
        if (has_scpu && has_win)
            printf("  server CPU  %.2f s, %.3f s per million deliveries\n", scpu,
                   wdeliv > 0 ? scpu / (wdeliv / 1e6) : 0);
        if (syscalls >= 0)
            printf("  syscalls    %.0f, %.4f per delivery\n", syscalls,
                   wdeliv > 0 ? syscalls / wdeliv : 0);
        else if (o.perf)
            printf("  syscalls    not measured: %s\n", perf.note[0] ? perf.note : "unknown");
        if (rss >= 0)
            printf("  server RSS  %ld KiB now (was %ld KiB before connecting), peak %ld KiB\n", rss,
                   rss_before, hwm);
    }
    if (error) {
        fprintf(stderr, "ringcast-bench: %s\n", error);
        if (sr->err[0])
            fprintf(stderr, "ringcast-bench: %s\n", sr->err);
        if (pr->err[0])
            fprintf(stderr, "ringcast-bench: %s\n", pr->err);
        return 1;
    }
    return 0;
}
