/* metrics.c -- GET /metrics: the server's counters in the Prometheus text format.
 *
 * The same numbers as INFO (info.c), written as the text exposition format
 * version 0.0.4 that every Prometheus server scrapes: per family one `# HELP`
 * line, one `# TYPE` line, then its samples. Names follow Prometheus's
 * conventions (and `promtool check metrics`): the `ringcast_` prefix, base
 * units in the name (`_bytes`, `_seconds`), `_total` on every counter and on
 * nothing else, and one family with a label instead of many names where the
 * values add up (syscalls by kind, clients by transport, UDP counters by
 * source). There is no maintained Prometheus client library for C in Debian,
 * and the format is a few lines of text, so it is written here by hand (as
 * HAProxy's promex does).
 *
 * Counters are cumulative since start or since CONFIG RESETSTAT, which
 * Prometheus's rate() treats as a counter reset. The text is rendered on
 * the loop thread from live counters: one scrape costs one pass over the
 * connection list (for clients by transport) and one getrusage(), no locks.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "codecs.h"
#include "mdata.h"
#include "udp.h"
#include "upstream.h"

enum kind { COUNTER, GAUGE };

/* `# HELP` and `# TYPE` of one family. help is a literal without '\\' or newline. */
static void family(struct rc_buf *b, const char *name, enum kind k, const char *help)
{
    rc_buf_appendf(b, "# HELP ringcast_%s %s\n# TYPE ringcast_%s %s\n", name, help, name,
                   k == COUNTER ? "counter" : "gauge");
}

static void sample_u64(struct rc_buf *b, const char *name, uint64_t v)
{
    rc_buf_appendf(b, "ringcast_%s %llu\n", name, (unsigned long long)v);
}

static void counter(struct rc_buf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, COUNTER, help);
    sample_u64(b, name, v);
}

static void gauge(struct rc_buf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, GAUGE, help);
    sample_u64(b, name, v);
}

/* A label value, escaped as the format requires (backslash, quote, newline). */
static void label_value(struct rc_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            rc_buf_appendc(b, '\\');
        if (*v == '\n') {
            rc_buf_append(b, "\\n", 2);
            continue;
        }
        rc_buf_appendc(b, *v);
    }
}

/* ringcast_<name>{<label>="<value>"} v */
static void labelled_u64(struct rc_buf *b, const char *name, const char *label, const char *value,
                         uint64_t v)
{
    rc_buf_appendf(b, "ringcast_%s{%s=\"", name, label);
    label_value(b, value);
    rc_buf_appendf(b, "\"} %llu\n", (unsigned long long)v);
}

static double seconds_of(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void render_server(struct rc_server *s, struct rc_view *v, struct rc_buf *b)
{
    struct rusage ru;
    uint64_t now = rc_now_ms();

    family(b, "info", GAUGE, "Always 1; the labels say which build and backend this is.");
    rc_buf_appendf(b, "ringcast_info{version=\"%s\",io_backend=\"", RINGCAST_VERSION_STRING);
    label_value(b, s->io.be ? s->io.be->name : "none");
    rc_buf_appendf(b, "\"} 1\n");
    family(b, "uptime_seconds", GAUGE, "Seconds since the server started.");
    rc_buf_appendf(b, "ringcast_uptime_seconds %.3f\n",
                   now > s->start_ms ? (double)(now - s->start_ms) / 1000.0 : 0.0);

    getrusage(RUSAGE_SELF, &ru);
    s->io.stats.sys[RC_SYS_OTHER]++;
    v->io.sys[RC_SYS_OTHER]++; /* the page counts its own call */
    family(b, "cpu_seconds_total", COUNTER, "CPU time the server process used, by mode.");
    rc_buf_appendf(b, "ringcast_cpu_seconds_total{mode=\"user\"} %.6f\n", seconds_of(&ru.ru_utime));
    rc_buf_appendf(b, "ringcast_cpu_seconds_total{mode=\"system\"} %.6f\n",
                   seconds_of(&ru.ru_stime));
}

/* Connected clients by transport: HTTP connections between requests (a
 * keep-alive, or a scrape of this page) are counted as "http", apart from the
 * SSE streams and WebSockets they may turn into. */
static void render_clients(struct rc_server *s, const struct rc_view *v, struct rc_buf *b)
{
    static const char *const names[RC_TRANSPORT__COUNT] = {
        [RC_TRANSPORT_RESP] = "resp",
        [RC_TRANSPORT_HTTP] = "http",
        [RC_TRANSPORT_SSE] = "sse",
        [RC_TRANSPORT_WS] = "ws",
    };
    const uint64_t *n = v->by_transport;
    uint64_t subscribed = v->pubsub_clients;

    family(b, "connected_clients", GAUGE,
           "Client connections now open, by transport (http: HTTP between requests).");
    for (int t = 0; t < RC_TRANSPORT__COUNT; t++)
        labelled_u64(b, "connected_clients", "transport", names[t], n[t]);
    gauge(b, "subscribed_clients", "Clients holding at least one subscription.", subscribed);
    counter(b, "connections_received_total", "Connections accepted.", v->stats.conns_received);
    counter(b, "connections_rejected_total", "Connections refused (maxclients, protected mode).",
            v->stats.conns_rejected);
    counter(b, "commands_processed_total", "Commands executed.", v->stats.commands);
    counter(b, "protocol_errors_total", "Requests refused as malformed.", v->stats.proto_errors);
    counter(b, "output_limit_disconnects_total",
            "Slow clients disconnected by client-output-buffer-limit.", v->stats.obuf_disconnects);
}

static void render_fanout(struct rc_server *s, const struct rc_view *v, struct rc_buf *b)
{
    const struct rc_io_stats *st = &v->io;
    const struct rc_engine_stats *es = &v->eng;
    uint64_t sys = 0;

    gauge(b, "channels", "Channels with at least one subscriber.", v->channels);
    gauge(b, "patterns", "Patterns with at least one subscriber.", rc_worker_numpat(s));
    counter(b, "messages_published_total", "Messages published (PUBLISH, UDP, the library API).",
            es->published);
    counter(b, "deliveries_total", "Deliveries: messages times the subscribers receiving each.",
            es->deliveries);
    counter(b, "net_input_bytes_total", "Bytes received from clients and UDP sources.",
            v->stats.bytes_in);
    counter(b, "net_output_bytes_total", "Bytes handed to (and accepted by) the kernel.",
            st->bytes_out);
    counter(b, "sends_total", "Send operations (one iovec batch each).", st->sends);
    counter(b, "zerocopy_sends_total", "Sends made with io_uring's zero-copy SEND_ZC.",
            st->sends_zc);
    counter(b, "output_held_sends_total",
            "Sends of subscriber output that had been held back to batch it (accumulation).",
            st->held_sends);
    family(b, "output_held_seconds_total", COUNTER,
           "Time output was held before those sends, summed over them.");
    rc_buf_appendf(b, "ringcast_output_held_seconds_total %.6f\n", (double)st->held_us / 1e6);
    family(b, "output_held_max_seconds", GAUGE, "The longest time one send's output was held.");
    rc_buf_appendf(b, "ringcast_output_held_max_seconds %.6f\n", (double)st->held_max_us / 1e6);
    counter(b, "loop_iterations_total",
            "Backend loop iterations: each hands the kernel that tick's output.", st->iterations);
    family(b, "syscalls_total", COUNTER, "System calls the server made, by kind.");
    for (int i = 0; i < RC_SYS__COUNT; i++) {
        labelled_u64(b, "syscalls_total", "kind", rc_sys_names[i], st->sys[i]);
        sys += st->sys[i];
    }
    family(b, "syscalls_per_delivery", GAUGE,
           "All system calls divided by all deliveries since start (0 before the first).");
    rc_buf_appendf(b, "ringcast_syscalls_per_delivery %.9g\n",
                   es->deliveries ? (double)sys / (double)es->deliveries : 0.0);
    family(b, "encodes_total", COUNTER,
           "Messages encoded, by wire format: once per format present among the receivers.");
    for (int f = 0; f < RC_FMT__COUNT; f++)
        labelled_u64(b, "encodes_total", "format", rc_codecs[f]->name, es->encodes[f]);
    gauge(b, "slab_bytes", "Bytes of live message slabs, headers included (not the free list).",
          v->slab_bytes);
    gauge(b, "workers", "Worker loops (threads), each with its own ring and connections.",
          s->wk ? (uint64_t)s->wk->n : 1);
    counter(b, "worker_posts_total", "Posts between workers (publishes, deliveries, counts).",
            v->wc.posts_out);
    counter(b, "worker_wakeups_total",
            "Wake-ups sent between workers (io_uring MSG_RING or eventfd writes).", st->kicks);
}

static void render_memory(const struct rc_view *v, struct rc_buf *b)
{
    gauge(b, "memory_used_bytes", "What the server holds for clients (INFO memory used_memory).",
          v->mem.used);
    gauge(b, "maxmemory_bytes", "The memory ceiling in force (maxmemory, or half the RAM).",
          v->maxmemory);
    counter(b, "maxmemory_disconnects_total", "Clients disconnected by the memory ceiling.",
            v->stats.maxmemory_disconnects);
    counter(b, "maxmemory_conflations_total", "Clients left to conflation by the memory ceiling.",
            v->stats.maxmemory_conflations);
}

static void render_mdata(const struct rc_view *v, struct rc_buf *b)
{
    const struct rc_mdata_stats *md = &v->md.st;

    counter(b, "mdata_conflated_total",
            "Messages replaced by a newer one for a slow client (policy conflate).", md->conflated);
    counter(b, "mdata_dropped_total", "Messages dropped for a slow client (policy drop).",
            md->dropped);
    counter(b, "mdata_rate_limited_total", "Messages replaced under a per-client rate cap.",
            md->rate_limited);
    gauge(b, "mdata_bytes", "Payload bytes held as last values and history.", md->bytes);
}

/* One family per UDP counter, a sample per source (none when no source).
 * Gaps are a gauge: the tracker takes one back when a late message fills it. */
static void render_udp(struct rc_server *s, struct rc_buf *b)
{
    static const struct {
        const char *name, *help;
        enum kind kind;
        size_t off;
    } fams[] = {
        {"udp_datagrams_total", "Datagrams received, by source.", COUNTER,
         offsetof(struct rc_udp_source_stats, datagrams)},
        {"udp_malformed_datagrams_total", "Datagrams dropped as malformed, by source.", COUNTER,
         offsetof(struct rc_udp_source_stats, malformed)},
        {"udp_published_total", "Messages published from datagrams, by source.", COUNTER,
         offsetof(struct rc_udp_source_stats, published)},
        {"udp_backlog_drops_total",
         "Messages dropped because the worker owning their channel was too far behind, by source.",
         COUNTER, offsetof(struct rc_udp_source_stats, backlog_drops)},
        {"udp_gaps", "Sequence numbers skipped and not (yet) filled by a late copy, by source.",
         GAUGE, offsetof(struct rc_udp_source_stats, gaps)},
        {"udp_reordered_total", "Late messages that filled a gap, by source.", COUNTER,
         offsetof(struct rc_udp_source_stats, reordered)},
        {"udp_duplicates_total", "Messages dropped as already seen, by source.", COUNTER,
         offsetof(struct rc_udp_source_stats, duplicates)},
    };
    int n = rc_udp_nsources(s);

    for (size_t f = 0; f < RC_ARRAY_LEN(fams); f++) {
        family(b, fams[f].name, fams[f].kind, fams[f].help);
        for (int i = 0; i < n; i++) {
            struct rc_udp_source_stats us;
            uint64_t v;
            if (!rc_udp_source_stats(s, i, &us))
                continue;
            memcpy(&v, (const char *)&us + fams[f].off, sizeof(v));
            labelled_u64(b, fams[f].name, "source", us.name, v);
        }
    }
}

/* The NATS upstream (docs/cluster.md), when one is configured. */
static void render_upstream(struct rc_server *s, struct rc_buf *b)
{
    struct rc_upstream_counters c;

    if (!rc_upstream_counters(s, &c))
        return;
    gauge(b, "upstream_connected", "1 while connected to the NATS upstream.", c.connected);
    counter(b, "upstream_disconnects_total", "Times the upstream connection was lost.",
            c.disconnects);
    counter(b, "upstream_reconnects_total", "Times it was regained.", c.reconnects);
    gauge(b, "upstream_subscriptions", "NATS subscriptions held for local interest.",
          c.subscriptions);
    counter(b, "upstream_in_messages_total", "Messages received from the upstream.", c.in_msgs);
    counter(b, "upstream_in_delivered_total", "Of which published to local subscribers.",
            c.in_delivered);
    counter(b, "upstream_in_duplicates_total",
            "Of which dropped as copies for an overlapping subscription.", c.in_duplicates);
    counter(b, "upstream_in_dropped_total", "Of which dropped with the inbox full.", c.in_dropped);
    counter(b, "upstream_out_messages_total", "Local publishes forwarded upstream.", c.out_msgs);
    counter(b, "upstream_out_errors_total", "Forwards libnats refused.", c.out_errors);
    counter(b, "upstream_out_refused_total", "Publishes whose name NATS cannot carry.",
            c.out_refused);
}

void rc_metrics_render_view(struct rc_server *s, struct rc_view *v, struct rc_buf *out)
{
    struct rc_server *s0 = s->wk ? s->wk->w[0] : s; /* UDP sources, upstream */

    render_server(s, v, out);
    render_clients(s, v, out);
    render_fanout(s, v, out);
    render_memory(v, out);
    render_mdata(v, out);
    render_udp(s0, out);
    render_upstream(s0, out);
}

void rc_metrics_render(struct rc_server *s, struct rc_buf *out)
{
    struct rc_view v;

    rc_view_fill(s, &v);
    rc_metrics_render_view(s, &v, out);
}
