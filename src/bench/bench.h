/* bench.h -- shared state of ringcast-bench: options, counters, histogram, threads.
 *
 * ringcast-bench runs two worker threads besides the controlling main thread:
 * one owns every subscriber connection (bench_sub.c), one owns every publisher
 * connection (bench_pub.c). They share nothing per message; each keeps its own
 * counters and publishes running totals through relaxed atomics that the main
 * thread (bench.c) samples at the edges of the measured window. The main
 * thread also reads the server's /proc entries and runs `perf stat`.
 *
 * Workload model: channel k is named "ch.<k>" (with --psubscribe "ch.<k>.m",
 * subscribed through the pattern "ch.<k>.*", which matches no other channel in
 * both Redis glob and NATS wildcard syntax). Subscriber i takes channel i % C,
 * so the receivers of every channel are known in advance. Publisher p sends
 * its n-th message (n from 0) to channel (p + n) % C, numbered n / C: the
 * sequence numbers each subscriber sees from one publisher are 0, 1, 2...
 *
 * Payload: B bytes, a 24-byte binary header {u32 magic, u32 publisher id,
 * u64 sequence on that channel, u64 CLOCK_MONOTONIC send time in ns} (host byte order: the
 * bench talks only to itself through the server), then 'x' padding.
 *
 * Subscribers over HTTP (--proto sse|ws): publishers still speak RESP to
 * --port, only the subscribers' transport changes. A binary header would not
 * be valid UTF-8, and the server would carry it base64-encoded ("data_b64"),
 * so these modes use a text header with the same fields instead: "RCB1",
 * then the publisher id (8 hex digits), the sequence (16) and the send time
 * (16), 44 bytes, then 'x' padding. RESP and NATS keep the binary header, so
 * their figures stay comparable with earlier runs (their servers never look
 * at payload bytes, only at the length, which is --size either way).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_BENCH_H
#define RC_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define RC_BENCH_MAGIC     0x52434231u /* "RCB1" */
#define RC_BENCH_HDR       24u
#define RC_BENCH_TEXT_HDR  44u /* "RCB1" + 8 + 16 + 16 hex digits */
#define RC_BENCH_READ_SIZE (256u * 1024u)
#define RC_BENCH_DRAIN_MS  2000u
#define RC_BENCH_SETUP_MS  20000u

/* The subscribers' wire protocol; publishers speak RESP for sse and ws. */
enum rc_bench_proto { RC_BENCH_RESP, RC_BENCH_NATS, RC_BENCH_SSE, RC_BENCH_WS };

struct rc_bench_opts {
    const char *host;
    int port;      /* publishers (and RESP/NATS subscribers) */
    int http_port; /* SSE and WebSocket subscribers */
    int proto;
    int subs;
    int channels;
    bool psubscribe;
    int pubs;
    int size;
    double rate; /* messages/s over all publishers; 0 = as fast as possible */
    int pipeline;
    double duration;
    double warmup;
    int server_pid; /* 0 = unknown */
    bool perf;
    const char *label;
    bool idle;
    bool json_only;
    struct sockaddr_storage addr;      /* host:port */
    struct sockaddr_storage http_addr; /* host:http_port */
    socklen_t addrlen;
};

static inline bool rc_bench_over_http(const struct rc_bench_opts *o)
{
    return o->proto == RC_BENCH_SSE || o->proto == RC_BENCH_WS;
}

const char *rc_bench_proto_name(int proto);

/* ---- Payload header: binary (resp, nats) or text (sse, ws), see the top ---- */

/* Writes the header into the first RC_BENCH_HDR or RC_BENCH_TEXT_HDR bytes of dst. */
static inline void rc_bench_stamp(char *dst, bool text, uint32_t pub, uint64_t seq, uint64_t sent)
{
    static const char hex[] = "0123456789abcdef";
    uint32_t magic = RC_BENCH_MAGIC;
    if (!text) {
        memcpy(dst, &magic, 4);
        memcpy(dst + 4, &pub, 4);
        memcpy(dst + 8, &seq, 8);
        memcpy(dst + 16, &sent, 8);
        return;
    }
    static const char tmagic[4] = {'R', 'C', 'B', '1'};
    memcpy(dst, tmagic, sizeof(tmagic));
    for (int i = 0; i < 8; i++)
        dst[4 + i] = hex[(pub >> (28 - 4 * i)) & 15];
    for (int i = 0; i < 16; i++) {
        dst[12 + i] = hex[(seq >> (60 - 4 * i)) & 15];
        dst[28 + i] = hex[(sent >> (60 - 4 * i)) & 15];
    }
}

/* n lowercase or uppercase hex digits at p; false if any is not one. */
static inline bool rc_bench_unhex(const char *p, int n, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        unsigned c = (unsigned char)p[i];
        unsigned d = c - '0';
        if (d > 9) {
            d = (c | 0x20u) - 'a';
            if (d > 5)
                return false;
            d += 10;
        }
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

/* Reads a header written by rc_bench_stamp from a payload of at least the header's size;
 * false if it is not one (wrong magic or, in text, a non-hex digit). */
static inline bool rc_bench_unstamp(const char *p, bool text, uint32_t *pub, uint64_t *seq,
                                    uint64_t *sent)
{
    if (!text) {
        uint32_t magic;
        memcpy(&magic, p, 4);
        memcpy(pub, p + 4, 4);
        memcpy(seq, p + 8, 8);
        memcpy(sent, p + 16, 8);
        return magic == RC_BENCH_MAGIC;
    }
    uint64_t v;
    if (memcmp(p, "RCB1", 4) != 0 || !rc_bench_unhex(p + 4, 8, &v) ||
        !rc_bench_unhex(p + 12, 16, seq) || !rc_bench_unhex(p + 28, 16, sent))
        return false;
    *pub = (uint32_t)v;
    return true;
}

/* ---- Latency histogram: log-bucketed, ~3% resolution, ns values ---- */

#define RC_HIST_SUB_BITS 5
#define RC_HIST_BUCKETS  (64 * (1 << RC_HIST_SUB_BITS))

struct rc_hist {
    uint64_t count;
    uint64_t max;
    uint64_t b[RC_HIST_BUCKETS];
};

static inline unsigned rc_hist_index(uint64_t v)
{
    if (v < (1u << RC_HIST_SUB_BITS))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - RC_HIST_SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) & ((1u << RC_HIST_SUB_BITS) - 1);
    return ((shift + 1) << RC_HIST_SUB_BITS) + sub;
}

static inline void rc_hist_add(struct rc_hist *h, uint64_t v)
{
    h->b[rc_hist_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

/* Value at quantile q (0..1): the upper edge of the bucket holding it, capped at max. */
uint64_t rc_hist_quantile(const struct rc_hist *h, double q);

/* ---- Shared counters (written by one thread, read by main) ---- */

struct rc_bench_shared {
    /* control, set by main */
    atomic_bool go;        /* publishers may start */
    atomic_bool measuring; /* inside the measured window: record latency */
    atomic_bool stop_pub;  /* stop publishing, flush, collect replies */
    atomic_bool stop_sub;  /* subscribers exit */
    /* subscriber thread */
    atomic_int subs_ready;  /* subscriptions confirmed */
    atomic_bool sub_failed; /* a connection failed during setup */
    atomic_uint_fast64_t deliveries;
    atomic_bool sub_exited;
    /* publisher thread */
    atomic_int pubs_ready;
    atomic_bool pub_failed;
    atomic_uint_fast64_t published;
    atomic_uint_fast64_t expected;
    atomic_bool pub_exited;
};

/* Final per-thread results, valid after the thread has exited. */
struct rc_bench_sub_result {
    uint64_t deliveries;
    uint64_t gaps, dups, reorders;
    uint64_t misrouted; /* wrong channel or unparsable payload */
    uint64_t proto_errors;
    uint64_t closed; /* connections closed by the server */
    struct rc_hist hist;
    char err[256];
};

struct rc_bench_pub_result {
    uint64_t published;
    uint64_t expected;
    uint64_t acked;
    uint64_t reply_mismatch; /* PUBLISH reply != known receiver count */
    uint64_t proto_errors;
    uint64_t closed;
    char err[256];
};

extern struct rc_bench_shared rc_bench;

/* Receivers per channel, derived from the options. */
int rc_bench_receivers(const struct rc_bench_opts *o, int ch);
/* Writes the name of channel ch to dst (>= 32 bytes); returns its length. */
size_t rc_bench_channel_name(const struct rc_bench_opts *o, int ch, char *dst);

/* Non-blocking TCP connection to o->addr (o->http_addr if http) within timeout_ms;
 * returns the fd or -errno. */
int rc_bench_connect(const struct rc_bench_opts *o, bool http, unsigned timeout_ms);

/* Writes all of buf to a non-blocking fd, polling, within timeout_ms. 0 or -errno. */
int rc_bench_write_all(int fd, const char *buf, size_t len, unsigned timeout_ms);

uint64_t rc_bench_now_ns(void);

/* Thread bodies; arg is the struct rc_bench_sub_ctx / rc_bench_pub_ctx. */
struct rc_bench_sub_ctx {
    const struct rc_bench_opts *o;
    struct rc_bench_sub_result res;
};

struct rc_bench_pub_ctx {
    const struct rc_bench_opts *o;
    struct rc_bench_pub_result res;
};

void *rc_bench_sub_main(void *arg);
void *rc_bench_pub_main(void *arg);

#endif
