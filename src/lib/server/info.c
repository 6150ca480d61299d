/* info.c -- the INFO command: server, clients, stats and fanout sections.
 *
 * Field names follow Redis where Redis has the same notion, so dashboards
 * and `redis-cli info` habits carry over. The fanout section is ringcast's
 * own: the counts behind the claim of the design -- messages published,
 * deliveries (message x subscriber), bytes handed to the kernel, and every
 * system call the server made, by kind, with syscalls per delivery.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cmd.h"
#include "mdata.h"
#include "udp.h"
#include "upstream.h"

static void section_server(struct rc_server *s, struct rc_buf *b)
{
    struct utsname u;
    uint64_t up = (rc_now_ms() - s->start_ms) / 1000;

    uname(&u);
    s->io.stats.sys[RC_SYS_OTHER]++;
    rc_buf_appendf(b,
                   "# Server\r\n"
                   "redis_version:" RC_REDIS_VERSION "\r\n"
                   "ringcast_version:%s\r\n"
                   "redis_mode:standalone\r\n"
                   "os:%s %s %s\r\n"
                   "arch_bits:%d\r\n"
                   "multiplexing_api:%s\r\n"
                   "io_backend:%s\r\n"
                   "process_id:%d\r\n"
                   "run_id:%s\r\n"
                   "tcp_port:%d\r\n"
                   "uptime_in_seconds:%llu\r\n"
                   "uptime_in_days:%llu\r\n"
                   "executable:%s\r\n"
                   "config_file:%s\r\n"
                   "\r\n",
                   RINGCAST_VERSION_STRING, u.sysname, u.release, u.machine,
                   (int)(sizeof(void *) * 8), s->io.be ? s->io.be->name : "none",
                   s->io.be ? s->io.be->name : "none", (int)getpid(), s->run_id, s->port,
                   (unsigned long long)up, (unsigned long long)(up / 86400),
                   s->executable ? s->executable : "", s->config_file ? s->config_file : "");
}

static void section_clients(struct rc_server *s, struct rc_buf *b)
{
    uint64_t pubsub = 0, max_out = 0;
    RC_FOR_EACH_CONN(s, c)
    {
        if (rc_conn_subscribed(c))
            pubsub++;
        if (c->io.out.bytes > max_out)
            max_out = c->io.out.bytes;
    }
    rc_buf_appendf(b,
                   "# Clients\r\n"
                   "connected_clients:%llu\r\n"
                   "pubsub_clients:%llu\r\n"
                   "maxclients:%llu\r\n"
                   "client_recent_max_output_buffer:%llu\r\n"
                   "blocked_clients:0\r\n"
                   "\r\n",
                   (unsigned long long)s->nclients, (unsigned long long)pubsub,
                   (unsigned long long)s->cfg.maxclients, (unsigned long long)max_out);
}

static void count_one(void *arg, const char *name, size_t len)
{
    (*(size_t *)arg)++;
}

static void section_stats(struct rc_server *s, struct rc_buf *b)
{
    size_t chans = 0, shards = 0;

    rc_engine_each(s->eng, RC_SUB_CHANNEL, count_one, &chans);
    rc_engine_each(s->eng, RC_SUB_SHARD, count_one, &shards);
    rc_buf_appendf(
        b,
        "# Stats\r\n"
        "total_connections_received:%llu\r\n"
        "total_commands_processed:%llu\r\n"
        "total_net_input_bytes:%llu\r\n"
        "total_net_output_bytes:%llu\r\n"
        "rejected_connections:%llu\r\n"
        "client_output_buffer_limit_disconnections:%llu\r\n"
        "total_error_replies_protocol:%llu\r\n"
        "pubsub_channels:%zu\r\n"
        "pubsub_patterns:%zu\r\n"
        "pubsub_shardchannels:%zu\r\n"
        "\r\n",
        (unsigned long long)s->stats.conns_received, (unsigned long long)s->stats.commands,
        (unsigned long long)s->stats.bytes_in, (unsigned long long)s->io.stats.bytes_out,
        (unsigned long long)s->stats.conns_rejected, (unsigned long long)s->stats.obuf_disconnects,
        (unsigned long long)s->stats.proto_errors, chans, rc_engine_numpat(s->eng), shards);
}

static void section_fanout(struct rc_server *s, struct rc_buf *b)
{
    const struct rc_io_stats *st = &s->io.stats;
    const struct rc_engine_stats *es = rc_engine_stats(s->eng);
    uint64_t sys = rc_io_syscalls(st);
    /* The calls that hand output to the kernel; on io_uring, the enter that
     * submits the sends (it also reaps receives: counted whole). Receives,
     * accepts, UDP feed reads and the rest are left out, so a server fed by
     * UDP with one subscriber does not look like it spends hundreds of
     * calls per delivery on sending. */
    uint64_t send_sys = st->sys[RC_SYS_WRITE] + st->sys[RC_SYS_WRITEV] + st->sys[RC_SYS_SENDMSG] +
                        st->sys[RC_SYS_IO_URING_ENTER];
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    s->io.stats.sys[RC_SYS_OTHER]++;
    rc_buf_appendf(b,
                   "# Fanout\r\n"
                   "io_backend:%s\r\n"
                   "messages_published:%llu\r\n"
                   "deliveries:%llu\r\n"
                   "bytes_out:%llu\r\n"
                   "sends:%llu\r\n"
                   "sends_zc:%llu\r\n"
                   "obuf_disconnects:%llu\r\n"
                   "slab_bytes:%llu\r\n"
                   "syscalls:%llu\r\n",
                   s->io.be ? s->io.be->name : "none", (unsigned long long)es->published,
                   (unsigned long long)es->deliveries, (unsigned long long)st->bytes_out,
                   (unsigned long long)st->sends, (unsigned long long)st->sends_zc,
                   (unsigned long long)s->stats.obuf_disconnects,
                   (unsigned long long)rc_engine_pool(s->eng)->bytes, (unsigned long long)sys);
    for (int i = 0; i < RC_SYS__COUNT; i++)
        rc_buf_appendf(b, "sys_%s:%llu\r\n", rc_sys_names[i], (unsigned long long)st->sys[i]);
    /* Encoded once per format present among the receivers: the shared frames. */
    for (int f = 0; f < RC_FMT__COUNT; f++)
        rc_buf_appendf(b, "encodes_%s:%llu\r\n", rc_codecs[f]->name,
                       (unsigned long long)es->encodes[f]);
    /* The accumulation policy (io/accum.c): how many deliveries share a
     * send, and how long subscribers' output waited for that. */
    rc_buf_appendf(b,
                   "accum_mode:%s\r\n"
                   "deliveries_per_send:%.3f\r\n"
                   "held_ticks:%llu\r\n"
                   "held_sends:%llu\r\n"
                   "held_us_total:%llu\r\n"
                   "held_us_avg:%.1f\r\n"
                   "held_us_max:%llu\r\n"
                   "held_late_us_max:%llu\r\n"
                   "accum_busy_permille:%u\r\n",
                   !s->io.be || !strcmp(s->io.be->name, "naive") ? "off"
                   : s->io.cfg.tick_us                           ? "fixed"
                   : s->io.cfg.budget_us                         ? "adaptive"
                                                                 : "off",
                   st->sends ? (double)es->deliveries / (double)st->sends : 0.0,
                   (unsigned long long)st->held_ticks, (unsigned long long)st->held_sends,
                   (unsigned long long)st->held_us,
                   st->held_sends ? (double)st->held_us / (double)st->held_sends : 0.0,
                   (unsigned long long)st->held_max_us, (unsigned long long)st->late_max_us,
                   s->io.acc.busy_permille);
    rc_buf_appendf(
        b,
        "syscalls_per_delivery:%.6f\r\n"
        "send_syscalls:%llu\r\n"
        "send_syscalls_per_delivery:%.6f\r\n"
        "used_cpu_sys:%ld.%06ld\r\n"
        "used_cpu_user:%ld.%06ld\r\n"
        "\r\n",
        es->deliveries ? (double)sys / (double)es->deliveries : 0.0, (unsigned long long)send_sys,
        es->deliveries ? (double)send_sys / (double)es->deliveries : 0.0, (long)ru.ru_stime.tv_sec,
        (long)ru.ru_stime.tv_usec, (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
}

static void section_mdata(struct rc_server *s, struct rc_buf *b)
{
    rc_buf_appendf(b, "# Mdata\r\n");
    rc_mdata_info(s->eng, b);
    rc_buf_appendf(b, "\r\n");
}

static const struct {
    const char *name;
    void (*fn)(struct rc_server *, struct rc_buf *);
} sections[] = {
    {"server", section_server}, {"clients", section_clients},   {"stats", section_stats},
    {"fanout", section_fanout}, {"memory", rc_mem_info},        {"mdata", section_mdata},
    {"sources", rc_udp_info},   {"upstream", rc_upstream_info},
};

void rc_cmd_info(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    struct rc_buf b = {0};
    bool want[RC_ARRAY_LEN(sections)];
    bool all = r->argc == 1;

    memset(want, 0, sizeof(want));
    for (int i = 1; i < r->argc; i++) {
        const char *a = r->argv[i];
        size_t al = r->argvlen[i];
        if (rc_strcaseeq(a, al, "all") || rc_strcaseeq(a, al, "default") ||
            rc_strcaseeq(a, al, "everything"))
            all = true;
        for (size_t k = 0; k < RC_ARRAY_LEN(sections); k++)
            if (rc_strcaseeq(a, al, sections[k].name))
                want[k] = true;
    }
    for (size_t k = 0; k < RC_ARRAY_LEN(sections); k++)
        if (all || want[k])
            sections[k].fn(s, &b);
    /* Redis ends the text without the blank line after the last section. */
    if (b.len >= 2)
        b.len -= 2;
    rc_resp_verbatim(&s->rbuf, c->proto, b.p ? b.p : "", b.len);
    rc_buf_free(&b);
}
