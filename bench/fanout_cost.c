/* fanout_cost.c -- the user-space cost of fan-out, without sockets, for callgrind.
 *
 * Builds a server in-process (no backend: clients are socketpairs nobody
 * reads), subscribes S clients to C channels, publishes M messages through
 * the real command path (rc_conn_input: parse, PUBLISH, fan-out into every
 * subscriber's queue) and drains every queue the way a backend does after a
 * send completes. Run under `valgrind --tool=callgrind`, the instruction
 * count is exact and repeatable: bench/instr.sh compiles this file against
 * two builds of the library and compares instructions per delivery. The
 * kernel's send cost is not in it -- only what user-space code does per
 * message and per delivery.
 *
 * Built against the layered library (default) or, with -DRC_FLAT_LIB, the
 * flat one of commit cbc1778, whose connection fields had other names.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

#ifdef RC_FLAT_LIB
#define OUTQ(c)       (&(c)->out)
#define SENT(s, c, n) rc_conn_sent((s), (c), (n))
#define DELIVERIES(s) ((s)->stats.deliveries)
#define NO_HTTP(cfg)  ((void)0)
#else
#define OUTQ(c)       (&(c)->io.out)
#define SENT(s, c, n) (s)->io.host->sent(&(s)->io, &(c)->io, (n))
#define DELIVERIES(s) (rc_engine_stats((s)->eng)->deliveries)
#define NO_HTTP(cfg)  ((cfg)->http_port = 0)
#endif

static void drain(struct rc_server *s, struct rc_conn *c)
{
    struct iovec iov[64];
    size_t bytes;

    while (!rc_queue_empty(OUTQ(c))) {
        rc_queue_iov(OUTQ(c), iov, 64, SIZE_MAX, &bytes);
        SENT(s, c, bytes);
    }
}

int main(int argc, char **argv)
{
    int subs = argc > 1 ? atoi(argv[1]) : 100;
    int chans = argc > 2 ? atoi(argv[2]) : 1;
    int msgs = argc > 3 ? atoi(argv[3]) : 20000;
    int batch = argc > 4 ? atoi(argv[4]) : 64; /* publishes per tick */
    struct rc_config cfg;
    struct rc_server *s;
    struct rc_conn **c, *pub;
    int sv[2];
    char cmd[256], payload[129];

    rc_config_init(&cfg);
    cfg.obuf_pubsub.hard = cfg.obuf_pubsub.soft = 0;
    NO_HTTP(&cfg);
    s = rc_server_new(&cfg);
    rc_config_free(&cfg);
    c = calloc((size_t)subs, sizeof(*c));
    for (int i = 0; i < subs; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
            return 1;
        c[i] = rc_conn_accepted(s, sv[0]);
        snprintf(cmd, sizeof(cmd), "SUBSCRIBE ch.%d\r\n", i % chans);
        rc_conn_input(s, c[i], cmd, strlen(cmd));
        drain(s, c[i]);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return 1;
    pub = rc_conn_accepted(s, sv[0]);
    memset(payload, 'p', 128);
    payload[128] = '\0';
    for (int m = 0; m < msgs; m++) {
        int n = snprintf(cmd, sizeof(cmd), "*3\r\n$7\r\nPUBLISH\r\n$%d\r\nch.%d\r\n$128\r\n%s\r\n",
                         m % chans >= 10 ? 5 : 4, m % chans, payload);
        rc_conn_input(s, pub, cmd, (size_t)n);
        if ((m + 1) % batch == 0) { /* a tick: the kernel took everything */
            drain(s, pub);
            for (int i = 0; i < subs; i++)
                drain(s, c[i]);
        }
    }
    printf("deliveries %llu\n", (unsigned long long)DELIVERIES(s));
    rc_server_free(s);
    free(c);
    return 0;
}
