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
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_BENCH_H
#define RC_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RC_BENCH_MAGIC     0x52434231u /* "RCB1" */
#define RC_BENCH_HDR       24u
#define RC_BENCH_READ_SIZE (256u * 1024u)
#define RC_BENCH_DRAIN_MS  2000u
#define RC_BENCH_SETUP_MS  20000u

enum rc_bench_proto { RC_BENCH_RESP, RC_BENCH_NATS };

struct rc_bench_opts {
    const char *host;
    int port;
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
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

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

/* Non-blocking TCP connection to o->addr within timeout_ms; returns the fd or -errno. */
int rc_bench_connect(const struct rc_bench_opts *o, unsigned timeout_ms);

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
