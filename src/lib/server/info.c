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

/* ---- Views: one worker's numbers, and their sum ---- */

static void count_one(void *arg, const char *name, size_t len)
{
    (*(uint64_t *)arg)++;
}

void rc_view_fill(struct rc_server *s, struct rc_view *v)
{
    memset(v, 0, sizeof(*v));
    RC_FOR_EACH_CONN(s, c)
    {
        if (rc_conn_subscribed(c))
            v->pubsub_clients++;
        if (c->io.out.bytes > v->max_out)
            v->max_out = c->io.out.bytes;
        if (c->transport < RC_TRANSPORT__COUNT)
            v->by_transport[c->transport]++;
    }
    v->clients = s->nclients;
    v->stats = s->stats;
    v->io = s->io.stats;
    v->eng = *rc_engine_stats(s->eng);
    rc_mdata_info_get(s->eng, &v->md);
    rc_mem_usage(s, &v->mem);
    if (v->mem.used > s->mem_peak)
        s->mem_peak = v->mem.used;
    v->mem_peak = s->mem_peak;
    v->maxmemory = s->maxmemory;
    v->slab_bytes = rc_engine_pool(s->eng)->bytes;
    if (s->wk) {
        v->channels = rc_worker_owned(s, false);
        v->shardchannels = rc_worker_owned(s, true);
    } else {
        rc_engine_each(s->eng, RC_SUB_CHANNEL, count_one, &v->channels);
        rc_engine_each(s->eng, RC_SUB_SHARD, count_one, &v->shardchannels);
    }
    v->busy_permille = s->io.acc.busy_permille;
    v->load_permille = s->io.acc.load_permille;
    v->busy_loops = s->io.acc.busy;
    v->wc = *rc_worker_counters(s);
}

#define SUM(f) sum->f += v->f
#define MAX(f) sum->f = RC_MAX(sum->f, v->f)

void rc_view_add(struct rc_view *sum, const struct rc_view *v)
{
    const uint64_t *a;
    uint64_t *d;

    SUM(clients);
    SUM(pubsub_clients);
    MAX(max_out);
    for (int t = 0; t < RC_TRANSPORT__COUNT; t++)
        SUM(by_transport[t]);
    /* Counters are all uint64_t: add them field by field. */
    d = (uint64_t *)&sum->stats;
    a = (const uint64_t *)&v->stats;
    for (size_t i = 0; i < sizeof(v->stats) / sizeof(uint64_t); i++)
        d[i] += a[i];
    for (int i = 0; i < RC_SYS__COUNT; i++)
        SUM(io.sys[i]);
    SUM(io.bytes_out);
    SUM(io.sends);
    SUM(io.sends_zc);
    SUM(io.accept_errs);
    SUM(io.held_ticks);
    SUM(io.held_sends);
    SUM(io.held_us);
    MAX(io.held_max_us);
    MAX(io.late_max_us);
    SUM(io.kicks);
    SUM(io.iterations);
    SUM(eng.published);
    SUM(eng.deliveries);
    for (int f = 0; f < RC_FMT_MAX; f++)
        SUM(eng.encodes[f]);
    /* Market-data state is copied on every worker: the largest copy; what
     * happened to clients is summed. */
    MAX(md.st.channels);
    MAX(md.st.last_values);
    MAX(md.st.bytes);
    MAX(md.st.evictions);
    MAX(md.st.expired);
    MAX(md.st.deleted);
    SUM(md.st.snapshots);
    SUM(md.st.conflated);
    SUM(md.st.dropped);
    SUM(md.st.rate_limited);
    SUM(md.st.slow_events);
    SUM(md.st.notices);
    SUM(md.st.replayed);
    SUM(md.st.resyncs);
    SUM(md.pending);
    SUM(md.slow_now);
    SUM(mem.slabs);
    SUM(mem.free_slabs);
    SUM(mem.mdata);
    SUM(mem.qbuf);
    SUM(mem.clients);
    SUM(mem.used);
    SUM(mem_peak);
    SUM(maxmemory);
    SUM(slab_bytes);
    SUM(channels);
    SUM(shardchannels);
    MAX(busy_permille);
    MAX(load_permille);
    SUM(busy_loops);
    SUM(wc.posts_out);
    SUM(wc.posts_in);
    SUM(wc.owned_pubs);
    SUM(wc.forwarded_pubs);
}

#undef SUM
#undef MAX

void rc_view_part(struct rc_server *w, const struct rc_gather *g, struct rc_buf *out)
{
    struct rc_view v;

    rc_view_fill(w, &v);
    rc_buf_append(out, &v, sizeof(v));
}

void rc_view_sum(const struct rc_gather *g, struct rc_view *sum, struct rc_view *each)
{
    memset(sum, 0, sizeof(*sum));
    for (int i = 0; i < g->n; i++) {
        memset(&each[i], 0, sizeof(each[i]));
        if (g->parts[i].len == sizeof(struct rc_view))
            memcpy(&each[i], g->parts[i].p, sizeof(struct rc_view));
        rc_view_add(sum, &each[i]);
    }
}

/* ---- Sections ---- */

struct info_ctx {
    struct rc_server *s;
    const struct rc_view *v;    /* the sum */
    const struct rc_view *each; /* per worker */
    int n;
};

static void section_server(const struct info_ctx *x, struct rc_buf *b)
{
    struct rc_server *s = x->s;
    struct utsname u;
    struct rc_server *s0 = s->wk ? s->wk->w[0] : s;
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
                   "workers:%d\r\n"
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
                   s->io.be ? s->io.be->name : "none", x->n, (int)getpid(), s->run_id, s->port,
                   (unsigned long long)up, (unsigned long long)(up / 86400),
                   s0->executable ? s0->executable : "", s0->config_file ? s0->config_file : "");
}

static void section_clients(const struct info_ctx *x, struct rc_buf *b)
{
    rc_buf_appendf(b,
                   "# Clients\r\n"
                   "connected_clients:%llu\r\n"
                   "pubsub_clients:%llu\r\n"
                   "maxclients:%llu\r\n"
                   "client_recent_max_output_buffer:%llu\r\n"
                   "blocked_clients:0\r\n"
                   "\r\n",
                   (unsigned long long)x->v->clients, (unsigned long long)x->v->pubsub_clients,
                   (unsigned long long)x->s->cfg.maxclients, (unsigned long long)x->v->max_out);
}

static void section_stats(const struct info_ctx *x, struct rc_buf *b)
{
    const struct rc_view *v = x->v;

    rc_buf_appendf(b,
                   "# Stats\r\n"
                   "total_connections_received:%llu\r\n"
                   "total_commands_processed:%llu\r\n"
                   "total_net_input_bytes:%llu\r\n"
                   "total_net_output_bytes:%llu\r\n"
                   "rejected_connections:%llu\r\n"
                   "client_output_buffer_limit_disconnections:%llu\r\n"
                   "total_error_replies_protocol:%llu\r\n"
                   "pubsub_channels:%llu\r\n"
                   "pubsub_patterns:%zu\r\n"
                   "pubsub_shardchannels:%llu\r\n"
                   "\r\n",
                   (unsigned long long)v->stats.conns_received,
                   (unsigned long long)v->stats.commands, (unsigned long long)v->stats.bytes_in,
                   (unsigned long long)v->io.bytes_out, (unsigned long long)v->stats.conns_rejected,
                   (unsigned long long)v->stats.obuf_disconnects,
                   (unsigned long long)v->stats.proto_errors, (unsigned long long)v->channels,
                   rc_worker_numpat(x->s), (unsigned long long)v->shardchannels);
}

static void section_fanout(const struct info_ctx *x, struct rc_buf *b)
{
    struct rc_server *s = x->s;
    const struct rc_io_stats *st = &x->v->io;
    const struct rc_engine_stats *es = &x->v->eng;
    uint64_t sys = rc_io_syscalls(st);
    /* The calls that hand output to the kernel; on io_uring, the enter that
     * submits the sends (it also reaps receives: counted whole); on kmod,
     * the module's batch ioctl besides the enter. Receives,
     * accepts, UDP feed reads and the rest are left out, so a server fed by
     * UDP with one subscriber does not look like it spends hundreds of
     * calls per delivery on sending. */
    uint64_t send_sys = st->sys[RC_SYS_WRITE] + st->sys[RC_SYS_WRITEV] + st->sys[RC_SYS_SENDMSG] +
                        st->sys[RC_SYS_IO_URING_ENTER] + st->sys[RC_SYS_IOCTL];
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
                   "loop_iterations:%llu\r\n"
                   "syscalls:%llu\r\n",
                   s->io.be ? s->io.be->name : "none", (unsigned long long)es->published,
                   (unsigned long long)es->deliveries, (unsigned long long)st->bytes_out,
                   (unsigned long long)st->sends, (unsigned long long)st->sends_zc,
                   (unsigned long long)x->v->stats.obuf_disconnects,
                   (unsigned long long)x->v->slab_bytes, (unsigned long long)st->iterations,
                   (unsigned long long)sys);
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
                   "accum_busy_permille:%u\r\n"
                   "accum_load_permille:%u\r\n"
                   "accum_busy_loops:%u\r\n",
                   !s->io.be || !strcmp(s->io.be->name, "naive") ? "off"
                   : s->io.cfg.tick_us                           ? "fixed"
                   : s->io.cfg.budget_us                         ? "adaptive"
                                                                 : "off",
                   st->sends ? (double)es->deliveries / (double)st->sends : 0.0,
                   (unsigned long long)st->held_ticks, (unsigned long long)st->held_sends,
                   (unsigned long long)st->held_us,
                   st->held_sends ? (double)st->held_us / (double)st->held_sends : 0.0,
                   (unsigned long long)st->held_max_us, (unsigned long long)st->late_max_us,
                   x->v->busy_permille, x->v->load_permille, x->v->busy_loops);
    rc_buf_appendf(b,
                   "syscalls_per_delivery:%.6f\r\n"
                   "send_syscalls:%llu\r\n"
                   "send_syscalls_per_delivery:%.6f\r\n"
                   "worker_posts:%llu\r\n"
                   "worker_wakeups:%llu\r\n"
                   "used_cpu_sys:%ld.%06ld\r\n"
                   "used_cpu_user:%ld.%06ld\r\n"
                   "\r\n",
                   es->deliveries ? (double)sys / (double)es->deliveries : 0.0,
                   (unsigned long long)send_sys,
                   es->deliveries ? (double)send_sys / (double)es->deliveries : 0.0,
                   (unsigned long long)x->v->wc.posts_out, (unsigned long long)st->kicks,
                   (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, (long)ru.ru_utime.tv_sec,
                   (long)ru.ru_utime.tv_usec);
}

static void section_memory(const struct info_ctx *x, struct rc_buf *b)
{
    rc_mem_info(x->s, x->v, b);
}

static void section_mdata(const struct info_ctx *x, struct rc_buf *b)
{
    rc_buf_appendf(b, "# Mdata\r\n");
    rc_mdata_info(&x->s->cfg.md, &x->v->md, b);
    rc_buf_appendf(b, "\r\n");
}

static void section_sources(const struct info_ctx *x, struct rc_buf *b)
{
    rc_udp_info(x->s->wk ? x->s->wk->w[0] : x->s, b);
}

static void section_upstream(const struct info_ctx *x, struct rc_buf *b)
{
    rc_upstream_info(x->s->wk ? x->s->wk->w[0] : x->s, b);
}

/* One line per worker: what it holds and does. */
static void section_workers(const struct info_ctx *x, struct rc_buf *b)
{
    rc_buf_appendf(b, "# Workers\r\n");
    for (int i = 0; i < x->n; i++) {
        const struct rc_view *v = &x->each[i];
        rc_buf_appendf(
            b,
            "worker%d:clients=%llu,pubsub_clients=%llu,published=%llu,deliveries=%llu,"
            "syscalls=%llu,owned_publishes=%llu,forwarded_publishes=%llu,"
            "posts_out=%llu,posts_in=%llu,wakeups=%llu\r\n",
            i, (unsigned long long)v->clients, (unsigned long long)v->pubsub_clients,
            (unsigned long long)v->eng.published, (unsigned long long)v->eng.deliveries,
            (unsigned long long)rc_io_syscalls(&v->io), (unsigned long long)v->wc.owned_pubs,
            (unsigned long long)v->wc.forwarded_pubs, (unsigned long long)v->wc.posts_out,
            (unsigned long long)v->wc.posts_in, (unsigned long long)v->io.kicks);
    }
    rc_buf_appendf(b, "\r\n");
}

static const struct {
    const char *name;
    void (*fn)(const struct info_ctx *, struct rc_buf *);
} sections[] = {
    {"server", section_server},   {"clients", section_clients},   {"stats", section_stats},
    {"fanout", section_fanout},   {"memory", section_memory},     {"mdata", section_mdata},
    {"sources", section_sources}, {"upstream", section_upstream}, {"workers", section_workers},
};

/* The reply, once every worker's view is in. */
static void info_combine(struct rc_server *s, struct rc_conn *c, struct rc_gather *g)
{
    struct rc_view sum, each[RC_MAX_WORKERS];
    struct info_ctx x = {s, &sum, each, g->n};
    struct rc_buf b = {0};
    bool want[RC_ARRAY_LEN(sections)];
    bool all = g->argc == 1;

    rc_view_sum(g, &sum, each);
    memset(want, 0, sizeof(want));
    for (int i = 1; i < g->argc; i++) {
        const char *a = g->argv[i];
        size_t al = g->argvlen[i];
        if (rc_strcaseeq(a, al, "all") || rc_strcaseeq(a, al, "default") ||
            rc_strcaseeq(a, al, "everything"))
            all = true;
        for (size_t k = 0; k < RC_ARRAY_LEN(sections); k++)
            if (rc_strcaseeq(a, al, sections[k].name))
                want[k] = true;
    }
    for (size_t k = 0; k < RC_ARRAY_LEN(sections); k++)
        if (all || want[k])
            sections[k].fn(&x, &b);
    /* Redis ends the text without the blank line after the last section. */
    if (b.len >= 2)
        b.len -= 2;
    rc_resp_verbatim(&s->rbuf, c->proto, b.p ? b.p : "", b.len);
    rc_buf_free(&b);
}

void rc_cmd_info(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    rc_gather(s, c, r->argc, r->argv, r->argvlen, 0, rc_view_part, info_combine);
}
