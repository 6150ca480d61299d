/* memory.c -- the server's memory ceiling (maxmemory): what is counted, and what gives way.
 *
 * A stalled subscriber with no output limit grows the server by whatever the
 * publishers send. The ceiling bounds the memory the server itself holds for
 * clients, counted from its own counters rather than by polling RSS (which
 * lags, and includes what malloc keeps after a free):
 *
 *   slabs          frames and replies live in the engine's slab pool
 *                  (struct rc_slab_pool.bytes): every queued message, in
 *                  flight or not, is a reference into one of them, so this
 *                  is all queued output, shared or not
 *   free slabs     the pool's recycled 64 KiB slabs (nfree)
 *   mdata          payloads of last values and history (mdata-max-memory
 *                  bounds them by itself)
 *   query buffers  partial requests kept per client (s->mem_qbuf)
 *   clients        sizeof(struct rc_conn) per connection
 *
 * Not counted: queue entry arrays (16 bytes per non-merged entry), the
 * subscription tables, the io_uring receive pool (4 MiB, fixed), malloc's
 * own overhead and kernel socket buffers. Those are why RSS sits above
 * used_memory; docs/robustness.md gives the measured slack.
 *
 * Past the ceiling, the client with the largest backlog gives way, then the
 * next, until the count is back under it. A client subscribed to a channel
 * whose market-data rule says policy=conflate (or drop) is put into a
 * conflation episode at once (rc_mdata_sink_conflate: its newer messages on
 * those channels wait in its side table, it is told when it catches up) and
 * is left alone as long as its queue stops growing; any other client, or
 * one whose queue still grows, is disconnected, counted
 * (maxmemory_disconnects) and logged with its id.
 * Only backlogs of at least RC_MEM_VICTIM_MIN bytes are considered, so a
 * subscriber that keeps up -- whose queue holds about one tick -- is never
 * touched: it sees no gap.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "mdata.h"

#define RC_MEM_VICTIM_MIN  (256u * 1024u) /* smallest backlog that may be cut */
#define RC_MEM_RESCAN      (1u << 20)     /* growth before a fruitless scan is retried */
#define RC_MEM_MAX_VICTIMS 64             /* clients cut per check */

/* Physical memory, or the cgroup's memory.max when that is lower. */
static uint64_t machine_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    uint64_t total = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "re");

    if (f) {
        char line[64];
        char *end;
        unsigned long long v;
        if (fgets(line, sizeof(line), f)) {
            errno = 0;
            v = strtoull(line, &end, 10);
            /* "max" (no limit) does not parse, and is left alone. */
            if (!errno && end != line && v > 0 && (total == 0 || v < total))
                total = v;
        }
        fclose(f);
    }
    return total;
}

void rc_mem_apply_cfg(struct rc_server *s)
{
    /* Each worker enforces its share of the ceiling over what it holds. */
    uint64_t n = s->cfg.workers > 1 ? s->cfg.workers : 1;

    if (s->cfg.maxmemory) {
        s->maxmemory = s->cfg.maxmemory / n;
        return;
    }
    /* Automatic: half of what the machine (or the cgroup) has. */
    if (!s->machine_mem)
        s->machine_mem = machine_memory();
    s->maxmemory = s->machine_mem / 2 / n;
}

void rc_mem_usage(struct rc_server *s, struct rc_mem_usage *u)
{
    const struct rc_slab_pool *p = rc_engine_pool(s->eng);

    u->slabs = p->bytes;
    u->free_slabs = p->nfree * (uint64_t)(offsetof(struct rc_slab, data) + RC_SLAB_SIZE);
    u->mdata = rc_mdata_stats(s->eng)->bytes;
    u->qbuf = s->mem_qbuf;
    u->clients = s->nclients * sizeof(struct rc_conn);
    u->used = u->slabs + u->free_slabs + u->mdata + u->qbuf + u->clients;
}

uint64_t rc_mem_used(struct rc_server *s)
{
    struct rc_mem_usage u;

    rc_mem_usage(s, &u);
    if (u.used > s->mem_peak)
        s->mem_peak = u.used;
    return u.used;
}

static struct rc_conn *largest_backlog(struct rc_server *s)
{
    struct rc_conn *best = NULL;
    uint64_t most = RC_MEM_VICTIM_MIN - 1;

    RC_FOR_EACH_CONN(s, c)
    {
        if (c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_UNLINKED))
            continue;
        /* A client the rules are conflating gave way already: its queue
         * only drains from here (its newer messages wait in its side table). */
        if (c->mem_conflated_at && c->io.out.bytes <= c->mem_conflated_at)
            continue;
        if (c->io.out.bytes > most) {
            most = c->io.out.bytes;
            best = c;
        }
    }
    return best;
}

void rc_mem_check(struct rc_server *s, bool force)
{
    uint64_t used = rc_mem_used(s);
    int cut = 0;

    if (used <= s->maxmemory) {
        s->mem_scan_at = 0;
        return;
    }
    /* Nothing worth cutting was found at about this figure: wait for growth
     * (or the cron) before walking the clients again. */
    if (!force && s->mem_scan_at && used < s->mem_scan_at + RC_MEM_RESCAN)
        return;
    while (used > s->maxmemory && cut < RC_MEM_MAX_VICTIMS) {
        struct rc_conn *c = largest_backlog(s);
        if (!c) {
            s->mem_scan_at = used;
            return;
        }
        if (!c->mem_conflated_at && rc_mdata_sink_conflate(s->eng, &c->sink)) {
            /* The rules conflate it now; it is cut if its queue still grows. */
            c->mem_conflated_at = c->io.out.bytes;
            s->stats.maxmemory_conflations++;
            rc_log(&s->log, RC_LOG_WARNING,
                   "maxmemory: client id=%llu addr=%s conflated (%llu bytes queued, "
                   "used %llu of %llu)",
                   (unsigned long long)c->io.id, c->addr, (unsigned long long)c->io.out.bytes,
                   (unsigned long long)used, (unsigned long long)s->maxmemory);
        } else {
            s->stats.maxmemory_disconnects++;
            rc_log(&s->log, RC_LOG_WARNING,
                   "Client id=%llu addr=%s name=%s closed: maxmemory reached (%llu bytes "
                   "queued, used %llu of %llu)",
                   (unsigned long long)c->io.id, c->addr, c->name ? c->name : "",
                   (unsigned long long)c->io.out.bytes, (unsigned long long)used,
                   (unsigned long long)s->maxmemory);
            rc_conn_close_asap(s, c, "maxmemory");
        }
        cut++;
        used = rc_mem_used(s);
    }
    s->mem_scan_at = used > s->maxmemory ? used : 0;
}

static void human(char *out, size_t n, uint64_t v)
{
    if (v >= (1ull << 30))
        snprintf(out, n, "%.2fG", (double)v / (1ull << 30));
    else if (v >= (1ull << 20))
        snprintf(out, n, "%.2fM", (double)v / (1ull << 20));
    else if (v >= 1024)
        snprintf(out, n, "%.2fK", (double)v / 1024);
    else
        snprintf(out, n, "%lluB", (unsigned long long)v);
}

void rc_mem_info(struct rc_server *s, const struct rc_view *v, struct rc_buf *b)
{
    const struct rc_mem_usage u = v->mem;
    char h1[32], h2[32], h3[32];
    uint64_t rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");

    if (f) {
        char line[128];
        char *end;
        if (fgets(line, sizeof(line), f)) {
            /* "size resident shared ...", in pages */
            errno = 0;
            (void)strtoull(line, &end, 10);
            unsigned long long res = strtoull(end, &end, 10);
            if (!errno)
                rss = res * (uint64_t)sysconf(_SC_PAGESIZE);
        }
        fclose(f);
    }
    s->io.stats.sys[RC_SYS_OTHER] += 3;
    human(h1, sizeof(h1), u.used);
    human(h2, sizeof(h2), v->mem_peak);
    human(h3, sizeof(h3), v->maxmemory);
    rc_buf_appendf(b,
                   "# Memory\r\n"
                   "used_memory:%llu\r\n"
                   "used_memory_human:%s\r\n"
                   "used_memory_rss:%llu\r\n"
                   "used_memory_peak:%llu\r\n"
                   "used_memory_peak_human:%s\r\n"
                   "maxmemory:%llu\r\n"
                   "maxmemory_human:%s\r\n"
                   "maxmemory_auto:%d\r\n"
                   "maxmemory_policy:ringcast\r\n"
                   "mem_slabs:%llu\r\n"
                   "mem_slabs_free:%llu\r\n"
                   "mem_mdata:%llu\r\n"
                   "mem_query_buffers:%llu\r\n"
                   "mem_clients:%llu\r\n"
                   "maxmemory_disconnects:%llu\r\n"
                   "maxmemory_conflations:%llu\r\n"
                   "\r\n",
                   (unsigned long long)u.used, h1, (unsigned long long)rss,
                   (unsigned long long)v->mem_peak, h2, (unsigned long long)v->maxmemory, h3,
                   s->cfg.maxmemory ? 0 : 1, (unsigned long long)u.slabs,
                   (unsigned long long)u.free_slabs, (unsigned long long)u.mdata,
                   (unsigned long long)u.qbuf, (unsigned long long)u.clients,
                   (unsigned long long)v->stats.maxmemory_disconnects,
                   (unsigned long long)v->stats.maxmemory_conflations);
}
