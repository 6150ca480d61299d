/* upstream.c -- the NATS connection of an edge: interest up, publishes out, messages in.
 *
 * One libnats connection per server. libnats runs its own threads (a reader
 * per connection, a flusher, one shared message-delivery thread because the
 * options ask for global delivery -- otherwise every subscription would get
 * a thread of its own -- and one for connection events). None of them ever
 * touches the engine. Like ringcast_publish() (api.c), a message callback
 * copies subject and payload into one heap block, appends it to an inbox
 * under a mutex and, when the inbox was empty, writes an eventfd once; the
 * loop watches that eventfd like a socket, takes the whole inbox in one lock
 * and publishes each message through rc_engine_publish(), so upstream
 * messages join the same tick as local PUBLISHes and are encoded once per
 * wire format. The inbox is bounded in bytes: past the bound, messages are
 * dropped and counted (core NATS is at-most-once anyway), never queued
 * without limit. Connection events (lost, reconnected) travel the same way
 * and are logged by the loop.
 *
 * What the loop does itself: subscribing and unsubscribing (the engine's
 * interest hook, on the first local subscriber and after the last) and
 * publishing local messages (natsConnection_Publish copies into libnats's
 * buffer; its flusher thread writes). libnats keeps subscriptions across a
 * reconnect and re-sends them, and buffers publishes while disconnected (up
 * to its reconnect buffer, 8 MiB by default; beyond that they are dropped
 * and counted).
 *
 * One message, several subscriptions: NATS delivers a message once per
 * matching subscription of a connection, and an edge holding `quotes.AAPL`
 * (a channel) and `quotes.>` (a pattern) would hear every AAPL quote twice,
 * and publish it twice into the engine. The engine delivers to channel and
 * pattern subscribers from one publish, so a message is taken only from one
 * of the edge's subscriptions that match its subject: the oldest one (lowest
 * subscription id) the edge still holds. Copies that arrive through the
 * others are counted as duplicates and dropped.
 *
 * Lifetime: libnats may call back after the server has gone (the closed
 * event arrives on its own thread, after natsConnection_Destroy() returns).
 * So the part the callbacks touch (struct up_shared: inbox, eventfd,
 * counters) is reference-counted: one reference for the loop, one for the
 * connection (dropped by the closed callback), one per subscription (dropped
 * by libnats's on-complete callback, which runs after the subscription's
 * last message callback).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "upstream.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dict.h"
#include "mdata.h"
#include "server.h"

#define INBOX_MAX      (64u * 1024 * 1024) /* bytes waiting for the loop */
#define RECONNECT_WAIT 500                 /* ms between rounds over the servers */
#define PING_INTERVAL  5000                /* ms: a silent server is noticed in ~15 s */
#define MAX_PINGS_OUT  3
#define MAX_URLS       16
#define LOG_EVERY_MS   10000 /* repeated per-message warnings, at most this often */

enum { EV_CONNECTED = 1, EV_DISCONNECTED = 2, EV_RECONNECTED = 4, EV_CLOSED = 8, EV_ERROR = 16 };

struct up_msg {
    struct up_msg *next;
    int64_t sid; /* the subscription it came through */
    uint32_t slen;
    uint32_t len;
    char data[]; /* subject, then payload */
};

/* What libnats's threads touch. */
struct up_shared {
    atomic_int refs;
    int efd;
    pthread_mutex_t mu;
    /* Guarded by mu. */
    struct up_msg *head, *tail;
    size_t queued;
    bool wake_pending;
    bool loop_gone; /* the server is gone: no more wakes */
    unsigned events;
    bool down;             /* not connected (at start: not yet) */
    uint64_t down_since;   /* wall ms */
    uint64_t outage_start; /* wall ms of the last outage that ended, 0 = none */
    uint64_t outage_ms;
    uint64_t in_msgs, in_bytes, in_dropped, wakeups;
    uint64_t disconnects, reconnects, async_errors;
    char last_error[160];
};

struct up_sub {
    natsSubscription *sub; /* NULL when libnats refused it */
    int64_t sid;
    uint32_t refs; /* engine entries mapped to this subject */
    bool wild;
    size_t widx; /* place in up->wild */
    char subject[];
};

struct rc_upstream {
    struct rc_server *s;
    struct up_shared *sh;
    natsConnection *nc;
    struct rc_dict *subs; /* NATS subject -> struct up_sub */
    struct up_sub **wild; /* the wildcard ones, walked per message */
    size_t nwild, wildcap;
    char errbuf[RC_UPSTREAM_MAX_SUBJECT + 256];
    uint64_t in_delivered, in_duplicates;
    uint64_t out_msgs, out_bytes, out_errors, out_refused;
    uint64_t sub_errors, interest_refused;
    uint64_t last_warn_ms;
    bool connected_once;
    bool watching;
};

bool rc_upstream_compiled(void)
{
    return true;
}

/* ---- Settings ---- */

int rc_upstream_check_urls(const char *urls, char *err, size_t errlen)
{
    const char *p = urls;
    int n = 0;

    while (*p) {
        size_t len = strcspn(p, ", ");
        if (len) {
            bool nats = len > 7 && !strncmp(p, "nats://", 7);
            bool tls = len > 6 && !strncmp(p, "tls://", 6);
            if (!nats && !tls) {
                snprintf(err, errlen, "upstream URLs must look like nats://host:port (got '%.*s')",
                         (int)RC_MIN(len, 200), p);
                return -EINVAL;
            }
            if (++n > MAX_URLS) {
                snprintf(err, errlen, "at most %d upstream URLs", MAX_URLS);
                return -EINVAL;
            }
        }
        p += len;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (!n) {
        snprintf(err, errlen, "no upstream URL given");
        return -EINVAL;
    }
    return 0;
}

/* ---- The shared part (any thread) ---- */

static void sh_release(struct up_shared *sh)
{
    if (atomic_fetch_sub(&sh->refs, 1) != 1)
        return;
    struct up_msg *m = sh->head;
    while (m) {
        struct up_msg *next = m->next;
        free(m);
        m = next;
    }
    close(sh->efd);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

/* Under mu: does the caller have to write the eventfd after unlocking? */
static bool sh_want_wake(struct up_shared *sh)
{
    if (sh->loop_gone || sh->wake_pending)
        return false;
    sh->wake_pending = true;
    sh->wakeups++;
    return true;
}

static void sh_wake(struct up_shared *sh)
{
    uint64_t one = 1;
    ssize_t r = write(sh->efd, &one, sizeof(one));
    (void)r; /* EAGAIN only past 2^64-2 unread wakes: the loop is awake anyway */
}

static void sh_event(struct up_shared *sh, unsigned ev, const char *err)
{
    uint64_t now = rc_wall_us() / 1000;
    bool wake;

    pthread_mutex_lock(&sh->mu);
    sh->events |= ev;
    if (ev & EV_DISCONNECTED) {
        sh->disconnects++;
        if (!sh->down) {
            sh->down = true;
            sh->down_since = now;
        }
    }
    if (ev & (EV_RECONNECTED | EV_CONNECTED)) {
        if (ev & EV_RECONNECTED)
            sh->reconnects++;
        if (sh->down) {
            sh->outage_start = sh->down_since;
            sh->outage_ms = now - sh->down_since;
        }
        sh->down = false;
    }
    if (err) {
        sh->async_errors++;
        snprintf(sh->last_error, sizeof(sh->last_error), "%s", err);
    }
    wake = sh_want_wake(sh);
    pthread_mutex_unlock(&sh->mu);
    if (wake)
        sh_wake(sh);
}

/* libnats's delivery thread: one message of subscription sub. */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    struct up_shared *sh = closure;
    const char *subj = natsMsg_GetSubject(msg);
    size_t slen = strlen(subj);
    int len = natsMsg_GetDataLength(msg);
    size_t bytes = slen + (size_t)(len > 0 ? len : 0);
    struct up_msg *m = rc_xmalloc(sizeof(*m) + bytes);
    bool wake = false;

    m->next = NULL;
    m->sid = natsSubscription_GetID(sub);
    m->slen = (uint32_t)slen;
    m->len = (uint32_t)(bytes - slen);
    memcpy(m->data, subj, slen);
    if (m->len)
        memcpy(m->data + slen, natsMsg_GetData(msg), m->len);
    natsMsg_Destroy(msg);

    pthread_mutex_lock(&sh->mu);
    sh->in_msgs++;
    sh->in_bytes += m->len;
    if (sh->loop_gone || (sh->queued + bytes > INBOX_MAX && sh->head)) {
        sh->in_dropped++;
        pthread_mutex_unlock(&sh->mu);
        free(m);
        return;
    }
    if (sh->tail)
        sh->tail->next = m;
    else
        sh->head = m;
    sh->tail = m;
    sh->queued += bytes;
    wake = sh_want_wake(sh);
    pthread_mutex_unlock(&sh->mu);
    if (wake)
        sh_wake(sh);
}

static void on_sub_complete(void *closure)
{
    sh_release(closure);
}

/* libnats's event thread. */
static void on_disconnected(natsConnection *nc, void *closure)
{
    sh_event(closure, EV_DISCONNECTED, NULL);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    sh_event(closure, EV_RECONNECTED, NULL);
}

static void on_connected(natsConnection *nc, void *closure)
{
    sh_event(closure, EV_CONNECTED, NULL);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    sh_event(closure, EV_ERROR, natsStatus_GetText(err));
}

static void on_closed(natsConnection *nc, void *closure)
{
    struct up_shared *sh = closure;

    pthread_mutex_lock(&sh->mu);
    sh->events |= EV_CLOSED;
    pthread_mutex_unlock(&sh->mu);
    sh_release(sh); /* the connection's reference */
}

/* ---- Subscriptions (loop) ---- */

static void warn_rl(struct rc_upstream *up, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A warning that may repeat per message: logged at most every 10 s. */
static void warn_rl(struct rc_upstream *up, const char *fmt, ...)
{
    uint64_t now = rc_now_ms();
    char line[512];
    va_list ap;

    if (up->last_warn_ms && now - up->last_warn_ms < LOG_EVERY_MS)
        return;
    up->last_warn_ms = now;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    rc_log(&up->s->log, RC_LOG_WARNING, "upstream: %s", line);
}

/* The NATS subject of an engine entry, or NULL (why in *why). */
static const char *subject_of(enum rc_sub_kind kind, const char *name, size_t len, char *out,
                              size_t outlen, const char **why)
{
    if (kind == RC_SUB_PATTERN) {
        *why = rc_upstream_map_pattern(name, len, out, outlen);
        return *why ? NULL : out;
    }
    *why = rc_upstream_check_channel(name, len);
    if (*why)
        return NULL;
    memcpy(out, name, len);
    out[len] = '\0';
    return out;
}

/* Does subject hold a "*" or ">" token? */
static bool has_wildcard(const char *subject)
{
    for (const char *t = subject;; t++) {
        if ((t[0] == '*' || t[0] == '>') && (t[1] == '.' || t[1] == '\0'))
            return true;
        t = strchr(t, '.');
        if (!t)
            return false;
    }
}

static void sub_add(struct rc_upstream *up, const char *subject)
{
    size_t slen = strlen(subject);
    struct up_sub *us = rc_dict_get(up->subs, subject, slen);
    natsStatus st;

    if (us) {
        us->refs++;
        return;
    }
    us = rc_xcalloc(1, sizeof(*us) + slen + 1);
    memcpy(us->subject, subject, slen + 1);
    us->refs = 1;
    us->wild = has_wildcard(subject);
    atomic_fetch_add(&up->sh->refs, 1); /* the subscription's, until it completes */
    st = natsConnection_Subscribe(&us->sub, up->nc, subject, on_msg, up->sh);
    if (st == NATS_OK)
        st = natsSubscription_SetPendingLimits(us->sub, -1, -1); /* the inbox bounds it */
    if (st == NATS_OK)
        st = natsSubscription_SetOnCompleteCB(us->sub, on_sub_complete, up->sh);
    if (st != NATS_OK) {
        up->sub_errors++;
        rc_log(&up->s->log, RC_LOG_WARNING, "upstream: cannot subscribe to '%s': %s", subject,
               natsStatus_GetText(st));
        if (us->sub) {
            natsSubscription_Unsubscribe(us->sub);
            natsSubscription_Destroy(us->sub);
            us->sub = NULL;
        }
        sh_release(up->sh);
    } else {
        us->sid = natsSubscription_GetID(us->sub);
    }
    rc_dict_add(up->subs, subject, slen, us);
    if (us->wild) {
        if (up->nwild == up->wildcap) {
            up->wildcap = up->wildcap ? 2 * up->wildcap : 16;
            up->wild = rc_xrealloc(up->wild, up->wildcap * sizeof(struct up_sub *));
        }
        us->widx = up->nwild;
        up->wild[up->nwild++] = us;
    }
    rc_log(&up->s->log, RC_LOG_VERBOSE, "upstream: subscribed to '%s'", subject);
}

static void sub_drop(struct rc_upstream *up, struct up_sub *us)
{
    if (us->sub) {
        /* Unsubscribe closes it: no message callback after its on-complete. */
        natsSubscription_Unsubscribe(us->sub);
        natsSubscription_Destroy(us->sub);
    }
    if (us->wild) {
        up->wild[us->widx] = up->wild[--up->nwild];
        up->wild[us->widx]->widx = us->widx;
    }
    free(us);
}

static void sub_del(struct rc_upstream *up, const char *subject)
{
    size_t slen = strlen(subject);
    struct up_sub *us = rc_dict_get(up->subs, subject, slen);

    if (!us || --us->refs > 0)
        return;
    rc_dict_del(up->subs, subject, slen);
    rc_log(&up->s->log, RC_LOG_VERBOSE, "upstream: unsubscribed from '%s'", subject);
    sub_drop(up, us);
}

void rc_upstream_interest(void *arg, enum rc_sub_kind kind, const char *name, size_t len, bool on)
{
    struct rc_server *s = arg;
    struct rc_upstream *up = s->up;
    char subject[RC_UPSTREAM_MAX_SUBJECT + 1];
    const char *why;

    if (!up || kind == RC_SUB_SHARD)
        return;
    if (!subject_of(kind, name, len, subject, sizeof(subject), &why)) {
        /* Commands refuse these (rc_upstream_refuse); count any other way in. */
        if (on) {
            up->interest_refused++;
            warn_rl(up, "not subscribing upstream to a %s NATS cannot carry: %s",
                    kind == RC_SUB_PATTERN ? "pattern" : "channel", why);
        }
        return;
    }
    if (on)
        sub_add(up, subject);
    else
        sub_del(up, subject);
}

/* ---- Messages in (loop) ---- */

/* Take m only from the oldest of the edge's subscriptions matching it. */
static bool first_copy(struct rc_upstream *up, const struct up_msg *m)
{
    const struct up_sub *ex = rc_dict_get(up->subs, m->data, m->slen);
    int64_t best = ex && ex->sub ? ex->sid : INT64_MAX;

    for (size_t i = 0; i < up->nwild; i++) {
        const struct up_sub *w = up->wild[i];
        if (w->sub && w->sid < best && rc_upstream_subject_match(w->subject, m->data, m->slen))
            best = w->sid;
    }
    return best == m->sid;
}

static const char *conn_url(struct rc_upstream *up, char *buf, size_t n)
{
    buf[0] = '\0';
    if (natsConnection_GetConnectedUrl(up->nc, buf, n) != NATS_OK || !buf[0])
        snprintf(buf, n, "(none)");
    return buf;
}

static void log_events(struct rc_upstream *up, unsigned ev, uint64_t outage_ms, const char *err)
{
    struct rc_logger *log = &up->s->log;
    char url[256];

    if (ev & EV_DISCONNECTED)
        rc_log(log, RC_LOG_WARNING,
               "upstream: lost the connection to NATS; reconnecting (local pub/sub goes on, "
               "publishes are buffered up to libnats's reconnect buffer)");
    if (ev & EV_CONNECTED) {
        up->connected_once = true;
        rc_log(log, RC_LOG_NOTICE, "upstream: connected to %s after %llu ms",
               conn_url(up, url, sizeof(url)), (unsigned long long)outage_ms);
    }
    if (ev & EV_RECONNECTED)
        rc_log(log, RC_LOG_WARNING,
               "upstream: reconnected to %s after an outage of %llu ms; %zu subscriptions "
               "restored",
               conn_url(up, url, sizeof(url)), (unsigned long long)outage_ms,
               rc_dict_size(up->subs));
    if (ev & EV_ERROR)
        rc_log(log, RC_LOG_WARNING, "upstream: NATS reported an error: %s", err);
}

struct gap_ctx {
    struct rc_server *s;
    uint64_t outage_ms;
    size_t channels, told;
};

static void gap_one(void *arg, const char *name, size_t len)
{
    struct gap_ctx *g = arg;
    char text[96];
    size_t n;

    snprintf(text, sizeof(text), "upstream-gap outage_ms=%llu", (unsigned long long)g->outage_ms);
    n = rc_mdata_gap(g->s->eng, name, len, text);
    g->told += n;
    g->channels += n > 0;
}

/* After an outage, messages published elsewhere in the cluster may never
 * have reached this edge (core NATS is at-most-once). Sequenced channels
 * start a new epoch, so stamps, SSE ids and RC.RESUME show the break, and
 * their subscribers get a notice. */
static void tell_gap(struct rc_upstream *up, uint64_t outage_ms)
{
    struct gap_ctx g = {up->s, outage_ms, 0, 0};

    if (!up->s->cfg.md.nrules)
        return;
    rc_engine_each(up->s->eng, RC_SUB_CHANNEL, gap_one, &g);
    if (g.channels)
        rc_log(&up->s->log, RC_LOG_WARNING,
               "upstream: %zu sequenced channels start a new epoch after the outage; %zu "
               "subscribers told on " RC_MDATA_NOTICE_CHANNEL,
               g.channels, g.told);
}

/* The eventfd is readable: events first, then every message waiting. */
static bool drain(void *arg)
{
    struct rc_upstream *up = arg;
    struct up_shared *sh = up->sh;
    struct up_msg *m;
    unsigned ev;
    uint64_t v, outage_ms;
    char err[sizeof(sh->last_error)];

    /* Read first: a callback that finds wake_pending cleared below writes
     * again, and that write must not be swallowed by this read. */
    if (read(sh->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        rc_log(&up->s->log, RC_LOG_WARNING, "upstream: reading the inbox eventfd: %s",
               strerror(errno));
    up->s->io.stats.sys[RC_SYS_READ]++;
    pthread_mutex_lock(&sh->mu);
    m = sh->head;
    sh->head = sh->tail = NULL;
    sh->queued = 0;
    sh->wake_pending = false;
    ev = sh->events;
    sh->events = 0;
    outage_ms = sh->outage_ms;
    memcpy(err, sh->last_error, sizeof(err));
    pthread_mutex_unlock(&sh->mu);
    if (ev)
        log_events(up, ev, outage_ms, err);
    if (ev & EV_RECONNECTED)
        tell_gap(up, outage_ms);
    while (m) {
        struct up_msg *next = m->next;
        if (first_copy(up, m)) {
            up->in_delivered++;
            rc_engine_publish(up->s->eng, false, m->data, m->slen, m->data + m->slen, m->len);
        } else {
            up->in_duplicates++;
        }
        free(m);
        m = next;
    }
    return false;
}

/* ---- Messages out (loop) ---- */

const char *rc_upstream_refuse(struct rc_server *s, enum rc_sub_kind kind, const char *name,
                               size_t len, size_t payload_len)
{
    struct rc_upstream *up = s->up;
    char subject[RC_UPSTREAM_MAX_SUBJECT + 1], shown[68];
    const char *why;
    size_t n = 0;

    if (!up || kind == RC_SUB_SHARD)
        return NULL;
    if (subject_of(kind, name, len, subject, sizeof(subject), &why)) {
        int64_t maxp = payload_len ? natsConnection_GetMaxPayload(up->nc) : 0;
        if (maxp <= 0 || payload_len <= (size_t)maxp)
            return NULL;
        snprintf(up->errbuf, sizeof(up->errbuf),
                 "ERR message of %zu bytes is larger than the upstream's max_payload (%lld "
                 "bytes)",
                 payload_len, (long long)maxp);
        return up->errbuf;
    }
    /* The name, printable bytes only, for the error line. */
    for (size_t i = 0; i < len && n < 64; i++)
        shown[n++] = (name[i] >= ' ' && name[i] < 0x7f) ? name[i] : '?';
    shown[n] = '\0';
    snprintf(up->errbuf, sizeof(up->errbuf),
             "ERR %s '%s%s' cannot be carried upstream: %s (docs/cluster.md)",
             kind == RC_SUB_PATTERN ? "pattern" : "channel", shown, len > 64 ? "..." : "", why);
    return up->errbuf;
}

void rc_upstream_forward(struct rc_server *s, const char *chan, size_t clen, const char *payload,
                         size_t len)
{
    struct rc_upstream *up = s->up;
    char subject[RC_UPSTREAM_MAX_SUBJECT + 1];
    const char *why;
    natsStatus st;

    if (!up)
        return;
    if (!subject_of(RC_SUB_CHANNEL, chan, clen, subject, sizeof(subject), &why)) {
        up->out_refused++;
        warn_rl(up, "a message published locally was not sent upstream: %s", why);
        return;
    }
    if (len > INT32_MAX) {
        st = NATS_MAX_PAYLOAD;
    } else {
        st = natsConnection_Publish(up->nc, subject, payload, (int)len);
    }
    if (st != NATS_OK) {
        up->out_errors++;
        warn_rl(up, "a message on '%s' was not sent upstream: %s", subject, natsStatus_GetText(st));
        return;
    }
    up->out_msgs++;
    up->out_bytes += len;
}

/* ---- Life (loop) ---- */

static natsStatus set_options(struct rc_server *s, natsOptions *o, struct up_shared *sh)
{
    const struct rc_config *c = &s->cfg;
    char urls[sizeof(c->upstream)], *save = NULL, name[80];
    const char *list[MAX_URLS];
    int n = 0;
    natsStatus st;

    memcpy(urls, c->upstream, sizeof(urls));
    for (char *u = strtok_r(urls, ", ", &save); u && n < MAX_URLS; u = strtok_r(NULL, ", ", &save))
        list[n++] = u;
    snprintf(name, sizeof(name), "ringcastd %s", s->run_id);
    st = natsOptions_SetServers(o, list, n);
    /* The order given is the order of preference. */
    if (st == NATS_OK)
        st = natsOptions_SetNoRandomize(o, true);
    if (st == NATS_OK)
        st = natsOptions_SetName(o, name);
    if (st == NATS_OK)
        st = natsOptions_SetNoEcho(o, true);
    if (st == NATS_OK)
        st = natsOptions_UseGlobalMessageDelivery(o, true);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectWait(o, RECONNECT_WAIT);
    if (st == NATS_OK)
        st = natsOptions_SetPingInterval(o, PING_INTERVAL);
    if (st == NATS_OK)
        st = natsOptions_SetMaxPingsOut(o, MAX_PINGS_OUT);
    if (st == NATS_OK)
        st = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, sh);
    if (st == NATS_OK)
        st = natsOptions_SetDisconnectedCB(o, on_disconnected, sh);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectedCB(o, on_reconnected, sh);
    if (st == NATS_OK)
        st = natsOptions_SetClosedCB(o, on_closed, sh);
    if (st == NATS_OK)
        st = natsOptions_SetErrorHandler(o, on_error, sh);
    if (st == NATS_OK && (c->upstream_user[0] || c->upstream_password[0]))
        st = natsOptions_SetUserInfo(o, c->upstream_user, c->upstream_password);
    if (st == NATS_OK && c->upstream_creds[0])
        st = natsOptions_SetUserCredentialsFromFiles(o, c->upstream_creds, NULL);
    if (st == NATS_OK && (c->upstream_tls || c->upstream_tls_ca[0]))
        st = natsOptions_SetSecure(o, true);
    if (st == NATS_OK && c->upstream_tls_ca[0])
        st = natsOptions_LoadCATrustedCertificates(o, c->upstream_tls_ca);
    return st;
}

int rc_upstream_start(struct rc_server *s)
{
    struct rc_upstream *up;
    struct up_shared *sh;
    natsOptions *o = NULL;
    natsStatus st;
    int err;

    if (!s->cfg.upstream[0])
        return 0;
    /* libnats reads these files on every connect and, retrying, would keep
     * failing quietly: check them once, now. */
    for (int i = 0; i < 2; i++) {
        const char *f = i ? s->cfg.upstream_tls_ca : s->cfg.upstream_creds;
        if (f[0] && access(f, R_OK) < 0) {
            err = -errno;
            rc_log(&s->log, RC_LOG_WARNING, "upstream: cannot read %s %s: %s",
                   i ? "upstream-tls-ca" : "upstream-creds", f, strerror(-err));
            return err;
        }
    }
    sh = rc_xcalloc(1, sizeof(*sh));
    atomic_init(&sh->refs, 1); /* the loop's */
    pthread_mutex_init(&sh->mu, NULL);
    sh->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sh->efd < 0) {
        err = -errno;
        rc_log(&s->log, RC_LOG_WARNING, "upstream: eventfd: %s", strerror(-err));
        pthread_mutex_destroy(&sh->mu);
        free(sh);
        return err;
    }
    sh->down = true;
    sh->down_since = rc_wall_us() / 1000;
    up = rc_xcalloc(1, sizeof(*up));
    up->s = s;
    up->sh = sh;
    up->subs = rc_dict_new();
    s->up = up;

    st = natsOptions_Create(&o);
    if (st == NATS_OK)
        st = set_options(s, o, sh);
    if (st == NATS_OK) {
        atomic_fetch_add(&sh->refs, 1); /* the connection's, until on_closed */
        st = natsConnection_Connect(&up->nc, o);
        if (st != NATS_OK && st != NATS_NOT_YET_CONNECTED) {
            if (up->nc) {
                natsConnection_Destroy(up->nc); /* on_closed releases */
                up->nc = NULL;
            } else {
                sh_release(sh);
            }
        }
    }
    natsOptions_Destroy(o);
    if (st != NATS_OK && st != NATS_NOT_YET_CONNECTED) {
        const char *detail = nats_GetLastError(NULL);
        rc_log(&s->log, RC_LOG_WARNING, "upstream: cannot start the NATS connection to %s: %s",
               s->cfg.upstream, detail && detail[0] ? detail : natsStatus_GetText(st));
        rc_upstream_free(s);
        return -EINVAL;
    }
    err = s->io.be->watch(&s->io, sh->efd, drain, up);
    if (err) {
        rc_log(&s->log, RC_LOG_WARNING, "upstream: cannot watch the inbox eventfd: %s",
               strerror(-err));
        rc_upstream_free(s);
        return err;
    }
    up->watching = true;
    if (st == NATS_OK) {
        char url[256];
        pthread_mutex_lock(&sh->mu);
        sh->down = false;
        pthread_mutex_unlock(&sh->mu);
        up->connected_once = true;
        rc_log(&s->log, RC_LOG_NOTICE, "upstream: connected to %s", conn_url(up, url, sizeof(url)));
    } else {
        rc_log(&s->log, RC_LOG_WARNING,
               "upstream: NATS at %s is not reachable yet; serving locally and retrying",
               s->cfg.upstream);
    }
    return 0;
}

void rc_upstream_free(struct rc_server *s)
{
    struct rc_upstream *up = s->up;
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    if (!up)
        return;
    if (up->watching)
        s->io.be->unwatch(&s->io, up->sh->efd);
    pthread_mutex_lock(&up->sh->mu);
    up->sh->loop_gone = true;
    pthread_mutex_unlock(&up->sh->mu);
    /* Close first (flushes buffered publishes for up to 0.5 s and closes
     * every subscription), then drop our handles. */
    if (up->nc)
        natsConnection_Close(up->nc);
    rc_dict_iter_init(&it);
    while (rc_dict_next(up->subs, &it, &k, &kl, &v))
        sub_drop(up, v);
    rc_dict_free(up->subs);
    free(up->wild);
    natsConnection_Destroy(up->nc);
    sh_release(up->sh);
    free(up);
    s->up = NULL;
}

void rc_upstream_library_exit(void)
{
    nats_CloseAndWait(2000);
}

/* ---- INFO upstream ---- */

static const char *state_name(natsConnStatus st)
{
    switch (st) {
    case NATS_CONN_STATUS_CONNECTED: return "connected";
    case NATS_CONN_STATUS_CONNECTING: return "connecting";
    case NATS_CONN_STATUS_RECONNECTING: return "reconnecting";
    case NATS_CONN_STATUS_CLOSED: return "closed";
    case NATS_CONN_STATUS_DISCONNECTED: return "disconnected";
    default: return "draining";
    }
}

bool rc_upstream_counters(struct rc_server *s, struct rc_upstream_counters *c)
{
    struct rc_upstream *up = s->up;
    struct up_shared *sh;

    if (!up)
        return false;
    sh = up->sh;
    memset(c, 0, sizeof(*c));
    c->subscriptions = rc_dict_size(up->subs);
    c->in_delivered = up->in_delivered;
    c->in_duplicates = up->in_duplicates;
    c->out_msgs = up->out_msgs;
    c->out_errors = up->out_errors;
    c->out_refused = up->out_refused;
    pthread_mutex_lock(&sh->mu);
    c->connected = !sh->down;
    c->disconnects = sh->disconnects;
    c->reconnects = sh->reconnects;
    c->in_msgs = sh->in_msgs;
    c->in_dropped = sh->in_dropped;
    pthread_mutex_unlock(&sh->mu);
    return true;
}

void rc_upstream_info(struct rc_server *s, struct rc_buf *b)
{
    struct rc_upstream *up = s->up;
    struct up_shared *sh;
    char url[256];
    const char *state;
    uint64_t now = rc_wall_us() / 1000, out_start, out_ms;
    bool down;

    rc_buf_appendf(b, "# Upstream\r\nupstream_support:yes\r\nupstream_servers:%s\r\n",
                   s->cfg.upstream);
    if (!up) {
        rc_buf_appendf(b, "upstream_state:off\r\n\r\n");
        return;
    }
    sh = up->sh;
    state = up->nc ? state_name(natsConnection_Status(up->nc)) : "closed";
    if (!up->connected_once && strcmp(state, "connected") != 0)
        state = "connecting";
    conn_url(up, url, sizeof(url)); /* takes libnats's lock: not under ours */
    pthread_mutex_lock(&sh->mu);
    down = sh->down;
    out_start = down ? sh->down_since : sh->outage_start;
    out_ms = down ? now - sh->down_since : sh->outage_ms;
    rc_buf_appendf(b,
                   "upstream_state:%s\r\n"
                   "upstream_connected_to:%s\r\n"
                   "upstream_outage_in_progress:%d\r\n"
                   "upstream_last_outage_start_ms:%llu\r\n"
                   "upstream_last_outage_ms:%llu\r\n"
                   "upstream_disconnects:%llu\r\n"
                   "upstream_reconnects:%llu\r\n"
                   "upstream_subscriptions:%zu\r\n"
                   "upstream_interest_refused:%llu\r\n"
                   "upstream_subscribe_errors:%llu\r\n"
                   "upstream_in_msgs:%llu\r\n"
                   "upstream_in_bytes:%llu\r\n"
                   "upstream_in_delivered:%llu\r\n"
                   "upstream_in_duplicates:%llu\r\n"
                   "upstream_in_dropped:%llu\r\n"
                   "upstream_in_wakeups:%llu\r\n"
                   "upstream_inbox_bytes:%zu\r\n"
                   "upstream_out_msgs:%llu\r\n"
                   "upstream_out_bytes:%llu\r\n"
                   "upstream_out_errors:%llu\r\n"
                   "upstream_out_refused:%llu\r\n"
                   "upstream_async_errors:%llu\r\n"
                   "upstream_last_error:%s\r\n"
                   "\r\n",
                   state, down ? "(none)" : url, down ? 1 : 0, (unsigned long long)out_start,
                   (unsigned long long)out_ms, (unsigned long long)sh->disconnects,
                   (unsigned long long)sh->reconnects, rc_dict_size(up->subs),
                   (unsigned long long)up->interest_refused, (unsigned long long)up->sub_errors,
                   (unsigned long long)sh->in_msgs, (unsigned long long)sh->in_bytes,
                   (unsigned long long)up->in_delivered, (unsigned long long)up->in_duplicates,
                   (unsigned long long)sh->in_dropped, (unsigned long long)sh->wakeups, sh->queued,
                   (unsigned long long)up->out_msgs, (unsigned long long)up->out_bytes,
                   (unsigned long long)up->out_errors, (unsigned long long)up->out_refused,
                   (unsigned long long)sh->async_errors, sh->last_error);
    pthread_mutex_unlock(&sh->mu);
}
