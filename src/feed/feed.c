/* feed.c -- ringcast-feed: a quote simulator that publishes over UDP or RESP.
 *
 * N symbols follow random walks (a well-known ticker list first, then
 * SYM0009-style names); each update is one JSON message on channel
 * <prefix><symbol>, e.g. quotes.AAPL:
 *   {"sym":"AAPL","bid":187.41,"ask":187.43,"last":187.42,"size":300,"n":17,"ts":...}
 * where n counts that symbol's updates from 1 (so a subscriber can see a
 * gap) and ts is the wall clock in milliseconds.
 *
 * Messages go out at a steady --rate (all symbols together), grouped into
 * batches of at most --batch: over UDP one datagram per batch in ringcast's
 * framing (docs/udp.md) with a session id and sequence numbers per source;
 * over RESP one pipelined write of PUBLISH commands per batch. Several
 * sources split the symbols between them (--udp repeated, or --sources K
 * RESP connections); with --ab every UDP destination gets the same datagrams,
 * an A/B pair for `udp-arbitrate`. `make run` starts it next to ringcastd.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "udp.h"
#include "util.h"

#define MAX_DEST     16
#define MAX_SYMBOLS  100000
#define DGRAM_TARGET 1400 /* stay under a typical MTU */
#define CONNECT_MS   10000
#define DRAIN_MS     3000

static const struct {
    const char *sym;
    double price;
} known[] = {
    {"AAPL", 187.40}, {"MSFT", 415.20}, {"GOOG", 172.60}, {"AMZN", 183.10}, {"NVDA", 121.80},
    {"META", 497.30}, {"TSLA", 178.90}, {"JPM", 198.50},  {"V", 274.30},    {"XOM", 112.70},
    {"UNH", 491.20},  {"WMT", 67.40},   {"MA", 446.80},   {"PG", 166.90},   {"JNJ", 147.60},
    {"HD", 343.20},   {"KO", 62.80},    {"PEP", 168.30},  {"CSCO", 46.50},  {"ORCL", 124.10},
    {"INTC", 30.70},  {"AMD", 158.40},  {"NFLX", 647.10}, {"ADBE", 468.90}, {"CRM", 245.30},
};

struct symbol {
    char name[24];
    double last;
    double spread;
    uint64_t n;
};

/* One destination: a UDP address or a RESP connection. */
struct dest {
    int fd;
    struct sockaddr_in addr;
    uint32_t session;
    uint64_t seq; /* next sequence number */
    uint64_t sent_cmds, replies;
    struct rc_buf out; /* the batch being built */
    int nmsg;
};

static volatile sig_atomic_t stop_flag;
static uint64_t rng_state;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static uint64_t rnd(void)
{
    /* xorshift64*: plenty for a price walk. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static double unit(void)
{
    return (double)(rnd() >> 11) / (double)(1ull << 53);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: ringcast-feed [--udp HOST:PORT]... [--ab] | --resp HOST:PORT [--sources K]\n"
               "                     [--symbols N] [--rate R] [--batch B] [--prefix P]\n"
               "                     [--count N] [--seed S] [--quiet] [--exit-with-parent]\n"
               "\n"
               "Simulates quotes for N symbols (random walks) and publishes them on\n"
               "<prefix><symbol> channels (default quotes.AAPL, quotes.MSFT, ...).\n"
               "  --udp HOST:PORT   send datagrams (docs/udp.md framing); repeat for more\n"
               "                    sources, each carrying a share of the symbols\n"
               "  --ab              every --udp destination gets the same datagrams (A/B lines)\n"
               "  --resp HOST:PORT  PUBLISH over RESP instead (default 127.0.0.1:6380)\n"
               "  --sources K       RESP publisher connections sharing the symbols [1]\n"
               "  --symbols N       number of symbols [8]\n"
               "  --rate R          messages per second, all symbols together [50]\n"
               "  --batch B         most messages per datagram or pipelined write [16]\n"
               "  --prefix P        channel prefix [quotes.]\n"
               "  --count N         stop after N messages (0: until SIGINT/SIGTERM) [0]\n"
               "  --seed S          random seed [from the clock]\n"
               "  --quiet           no start and summary lines\n"
               "  --exit-with-parent  exit when the parent process dies\n"
               "\n"
               "Example: ringcastd --udp-source demo 127.0.0.1:6380 &\n"
               "         ringcast-feed --udp 127.0.0.1:6380 --rate 100\n");
}

static bool parse_u64(const char *w, uint64_t lo, uint64_t hi, uint64_t *out)
{
    int64_t v;
    if (!rc_parse_i64(w, strlen(w), &v) || v < 0 || (uint64_t)v < lo || (uint64_t)v > hi)
        return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_addr(const char *w, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(w, ':');
    uint64_t port;
    size_t hl;

    if (!colon || (hl = (size_t)(colon - w)) == 0 || hl >= sizeof(host))
        return false;
    memcpy(host, w, hl);
    host[hl] = '\0';
    if (!strcmp(host, "localhost"))
        strcpy(host, "127.0.0.1");
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || !parse_u64(colon + 1, 1, 65535, &port))
        return false;
    sa->sin_port = htons((uint16_t)port);
    return true;
}

static void sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int resp_connect(struct dest *d)
{
    uint64_t deadline = rc_now_ms() + CONNECT_MS;
    int one = 1;

    while (!stop_flag) {
        d->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (d->fd < 0)
            return -errno;
        if (connect(d->fd, (struct sockaddr *)&d->addr, sizeof(d->addr)) == 0) {
            setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return 0;
        }
        int err = errno;
        close(d->fd);
        d->fd = -1;
        /* The server may still be starting (make run starts both at once). */
        if (rc_now_ms() >= deadline)
            return -err;
        sleep_us(100000);
    }
    return -EINTR;
}

/* Reads RESP replies without blocking (block: wait up to DRAIN_MS for all);
 * each reply to PUBLISH is one ":n\r\n" line. Returns -1 on a lost connection. */
static int resp_drain(struct dest *d, bool block)
{
    char buf[65536];
    uint64_t deadline = rc_now_ms() + DRAIN_MS;

    while (d->replies < d->sent_cmds) {
        ssize_t r = recv(d->fd, buf, sizeof(buf), block ? 0 : MSG_DONTWAIT);
        if (r == 0)
            return -1;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!block || rc_now_ms() >= deadline)
                    return 0;
                continue;
            }
            return -1;
        }
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] == '-' && (i == 0 || buf[i - 1] == '\n'))
                fprintf(stderr, "ringcast-feed: server error: %.*s\n", (int)RC_MIN(r - i, 120),
                        buf + i);
            if (buf[i] == '\n')
                d->replies++;
        }
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

struct feed {
    struct symbol *sym;
    uint64_t nsym;
    struct dest dest[MAX_DEST];
    int ndest;
    bool udp, ab;
    uint64_t batch;
    const char *prefix;
    uint64_t messages, datagrams, send_errors;
};

/* Sends d's pending batch. */
static int flush(struct feed *f, struct dest *d)
{
    if (!d->nmsg)
        return 0;
    if (f->udp) {
        struct rc_udp_hdr h = {RC_UDP_VERSION, 0, (uint16_t)d->nmsg, d->session, d->seq};
        rc_udp_put_hdr(d->out.p, &h);
        /* --ab: the same bytes to every destination. */
        int first = f->ab ? 0 : (int)(d - f->dest), last = f->ab ? f->ndest : first + 1;
        for (int i = first; i < last; i++) {
            if (sendto(f->dest[i].fd, d->out.p, d->out.len, 0, (struct sockaddr *)&f->dest[i].addr,
                       sizeof(f->dest[i].addr)) < 0)
                f->send_errors++; /* nobody listening yet: UDP drops, so do we */
            f->datagrams++;
        }
        d->seq += (uint64_t)d->nmsg;
        d->out.len = RC_UDP_HDR_LEN;
    } else {
        if (write_all(d->fd, d->out.p, d->out.len) < 0)
            return -1;
        d->sent_cmds += (uint64_t)d->nmsg;
        d->out.len = 0;
        if (resp_drain(d, false) < 0)
            return -1;
    }
    d->nmsg = 0;
    return 0;
}

static void step(struct symbol *s)
{
    /* Sum of three uniforms: a cheap bell-shaped step of about 5 bp. */
    double z = unit() + unit() + unit() - 1.5;
    s->last *= 1.0 + 0.001 * z;
    if (s->last < 1.0)
        s->last = 1.0;
    s->n++;
}

static int emit(struct feed *f, uint64_t i)
{
    struct symbol *s = &f->sym[i];
    struct dest *d = &f->dest[f->ab ? 0 : (int)(i % (uint64_t)f->ndest)];
    char chan[64], payload[256];
    int cl, pl;

    step(s);
    cl = snprintf(chan, sizeof(chan), "%s%s", f->prefix, s->name);
    pl = snprintf(payload, sizeof(payload),
                  "{\"sym\":\"%s\",\"bid\":%.2f,\"ask\":%.2f,\"last\":%.2f,\"size\":%u,"
                  "\"n\":%llu,\"ts\":%llu}",
                  s->name, s->last - s->spread / 2, s->last + s->spread / 2, s->last,
                  (unsigned)(100 * (1 + rnd() % 20)), (unsigned long long)s->n,
                  (unsigned long long)(rc_wall_us() / 1000));
    if (f->udp) {
        if (d->out.len + rc_udp_msg_size((size_t)cl, (size_t)pl) > DGRAM_TARGET && d->nmsg)
            flush(f, d);
        rc_buf_reserve(&d->out, rc_udp_msg_size((size_t)cl, (size_t)pl));
        d->out.len += rc_udp_put_msg(d->out.p + d->out.len, chan, (size_t)cl, payload, (size_t)pl);
    } else {
        rc_buf_appendf(&d->out, "*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", cl, chan, pl,
                       payload);
    }
    d->nmsg++;
    f->messages++;
    if ((uint64_t)d->nmsg >= f->batch)
        return flush(f, d);
    return 0;
}

int main(int argc, char **argv)
{
    struct feed f;
    uint64_t nsym = 8, rate = 50, count = 0, sources = 1, seed = 0;
    bool quiet = false, have_seed = false, parent = false;
    const char *resp = NULL;
    struct sockaddr_in udp_addr[MAX_DEST];
    int nudp = 0;

    memset(&f, 0, sizeof(f));
    f.batch = 16;
    f.prefix = "quotes.";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--ab")) {
            f.ab = true;
        } else if (!strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "--exit-with-parent")) {
            parent = true;
        } else if (!v) { /* NOLINT(bugprone-branch-clone): a flag missing its value */
            ok = false;
        } else if (!strcmp(a, "--udp")) {
            ok = nudp < MAX_DEST && parse_addr(v, &udp_addr[nudp++]);
            i++;
        } else if (!strcmp(a, "--resp")) {
            resp = v;
            i++;
        } else if (!strcmp(a, "--sources")) {
            ok = parse_u64(v, 1, MAX_DEST, &sources);
            i++;
        } else if (!strcmp(a, "--symbols")) {
            ok = parse_u64(v, 1, MAX_SYMBOLS, &nsym);
            i++;
        } else if (!strcmp(a, "--rate")) {
            ok = parse_u64(v, 1, 10000000, &rate);
            i++;
        } else if (!strcmp(a, "--batch")) {
            ok = parse_u64(v, 1, 1000, &f.batch);
            i++;
        } else if (!strcmp(a, "--prefix")) {
            f.prefix = v;
            ok = strlen(v) < 32;
            i++;
        } else if (!strcmp(a, "--count")) {
            ok = parse_u64(v, 0, UINT64_MAX >> 1, &count);
            i++;
        } else if (!strcmp(a, "--seed")) {
            ok = parse_u64(v, 0, UINT64_MAX >> 1, &seed);
            have_seed = true;
            i++;
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "ringcast-feed: bad or incomplete option '%s' (try --help)\n", a);
            return 1;
        }
    }
    if (nudp && resp) {
        fprintf(stderr, "ringcast-feed: choose --udp or --resp, not both\n");
        return 1;
    }
    if (f.ab && nudp < 2) {
        fprintf(stderr, "ringcast-feed: --ab needs at least two --udp destinations\n");
        return 1;
    }
    if (parent)
        prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    if (!have_seed)
        seed = rc_wall_us() ^ ((uint64_t)getpid() << 32);
    rng_state = seed | 1;
    f.nsym = nsym;
    f.sym = rc_xcalloc(nsym, sizeof(*f.sym));
    for (uint64_t i = 0; i < nsym; i++) {
        struct symbol *s = &f.sym[i];
        if (i < RC_ARRAY_LEN(known)) {
            snprintf(s->name, sizeof(s->name), "%s", known[i].sym);
            s->last = known[i].price;
        } else {
            snprintf(s->name, sizeof(s->name), "SYM%04llu", (unsigned long long)i);
            s->last = 10.0 + 490.0 * unit();
        }
        s->spread = 0.01 * (double)(1 + rnd() % 5);
    }

    f.udp = nudp > 0;
    if (f.udp) {
        uint32_t session;
        f.ndest = nudp;
        for (int i = 0; i < nudp; i++) {
            struct dest *d = &f.dest[i];
            d->addr = udp_addr[i];
            d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (d->fd < 0) {
                perror("ringcast-feed: socket");
                return 1;
            }
            /* A fresh session per run tells receivers the sequence restarted. */
            if (getrandom(&session, sizeof(session), 0) != sizeof(session))
                session = (uint32_t)rnd();
            d->session = f.ab && i ? f.dest[0].session : session;
            d->seq = 1;
            rc_buf_reserve(&d->out, DGRAM_TARGET + 512);
            d->out.len = RC_UDP_HDR_LEN;
        }
    } else {
        struct sockaddr_in sa;
        if (!parse_addr(resp ? resp : "127.0.0.1:6380", &sa)) {
            fprintf(stderr, "ringcast-feed: bad --resp address '%s'\n", resp);
            return 1;
        }
        f.ndest = (int)sources;
        for (int i = 0; i < f.ndest; i++) {
            f.dest[i].addr = sa;
            int err = resp_connect(&f.dest[i]);
            if (err < 0) {
                fprintf(stderr, "ringcast-feed: cannot connect to %s: %s\n",
                        resp ? resp : "127.0.0.1:6380", strerror(-err));
                return 1;
            }
        }
    }
    if (!quiet)
        fprintf(stderr, "ringcast-feed: %llu symbols, %llu msg/s, %s to %d destination(s)%s\n",
                (unsigned long long)nsym, (unsigned long long)rate, f.udp ? "UDP" : "RESP", f.ndest,
                f.ab ? " (A/B copies)" : "");

    uint64_t start = rc_now_us(), next_sym = 0;
    int rc = 0;
    while (!stop_flag && (count == 0 || f.messages < count)) {
        uint64_t elapsed = rc_now_us() - start;
        uint64_t due = (uint64_t)((double)elapsed * (double)rate / 1e6);
        if (count && due > count)
            due = count;
        if (due <= f.messages) {
            uint64_t next_us = (uint64_t)((double)(f.messages + 1) * 1e6 / (double)rate);
            sleep_us(RC_MIN(next_us > elapsed ? next_us - elapsed : 0, 50000));
            continue;
        }
        /* More than a second behind (suspended?): skip ahead, do not burst. */
        if (due - f.messages > rate)
            f.messages = due - rate;
        while (f.messages < due && rc == 0) {
            rc = emit(&f, next_sym);
            next_sym = (next_sym + 1 + rnd() % 3) % nsym;
        }
        for (int i = 0; i < f.ndest && rc == 0; i++)
            rc = flush(&f, &f.dest[i]);
        if (rc) {
            fprintf(stderr, "ringcast-feed: lost the connection to the server\n");
            break;
        }
    }
    for (int i = 0; i < f.ndest; i++) {
        if (!f.udp && rc == 0)
            resp_drain(&f.dest[i], true); /* every PUBLISH answered: all were applied */
        close(f.dest[i].fd);
        rc_buf_free(&f.dest[i].out);
    }
    if (!quiet && f.udp)
        fprintf(stderr, "ringcast-feed: sent %llu messages in %llu datagrams in %.1f s\n",
                (unsigned long long)f.messages, (unsigned long long)f.datagrams,
                (double)(rc_now_us() - start) / 1e6);
    else if (!quiet)
        fprintf(stderr, "ringcast-feed: published %llu messages in %.1f s\n",
                (unsigned long long)f.messages, (double)(rc_now_us() - start) / 1e6);
    free(f.sym);
    return rc ? 1 : 0;
}
