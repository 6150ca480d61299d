/* api.c -- the public library API (include/ringcast.h) over the server core.
 *
 * A ringcast_server wraps a struct rc_server and adds what a host program
 * needs that ringcastd does not: a thread-safe way in. Publishing threads
 * never touch the engine; they append a copy of each message to an inbox (a
 * singly linked list behind a mutex) and, when the inbox was empty, write the
 * server's eventfd once. The loop watches that eventfd like any socket
 * (backend.h: ops->watch); when it fires, the loop takes the whole list in one
 * lock and publishes every message through rc_engine_publish(), so host
 * messages join the same tick as RESP PUBLISHes and UDP datagrams. The cost
 * per message is one lock and one allocation plus copy; the cost per wake-up
 * one eventfd write on the publishing side and one read on the loop, however
 * many messages the wake-up carries. The inbox is bounded in bytes, so a loop
 * that falls behind turns into -ENOBUFS for publishers rather than unbounded
 * memory.
 *
 * Stopping is async-signal-safe: a flag the loop checks after every
 * iteration, plus an eventfd write so a loop blocked in its wait wakes now.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "ringcast.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cmd.h"
#include "server.h"
#include "upstream.h"

#define MAX_CHANNEL 65535u

struct ringcast_config {
    struct rc_config c;
    char err[512];
};

struct inbox_msg {
    struct inbox_msg *next;
    size_t clen;
    size_t len;
    char data[]; /* channel, then payload */
};

struct ringcast_server {
    struct rc_server *s;
    int efd;
    bool listening;
    bool ran;
    atomic_bool stop;
    atomic_int stoppers; /* ringcast_server_stop() calls still running */
    pthread_mutex_t mu;
    /* Guarded by mu. */
    struct inbox_msg *head, *tail;
    size_t queued;     /* bytes waiting */
    bool wake_pending; /* an eventfd write is outstanding */
    uint64_t inbox_messages;
    uint64_t inbox_wakeups;
};

const char *ringcast_version(void)
{
    return RINGCAST_VERSION_STRING;
}

/* ---- Configuration ---- */

ringcast_config *ringcast_config_new(void)
{
    ringcast_config *cfg = rc_xcalloc(1, sizeof(*cfg));
    rc_config_init(&cfg->c);
    /* A host program opens an HTTP port only when it asks for one, and
     * runs one loop thread (its own) unless it sets workers. */
    cfg->c.http_port = 0;
    cfg->c.workers = 1;
    return cfg;
}

int ringcast_config_set(ringcast_config *cfg, const char *name, const char *value)
{
    struct rc_buf line = {0};
    char err[512];
    int r;

    if (!name || !value || strchr(name, '\n') || strchr(value, '\n')) {
        snprintf(cfg->err, sizeof(cfg->err), "name and value must be one line each");
        return -EINVAL;
    }
    /* The value is the rest of a config line: same words, same quoting. */
    rc_buf_appendf(&line, "%s %s", name, value);
    err[0] = '\0';
    r = rc_config_load_string(&cfg->c, line.p, line.len, err, sizeof(err));
    rc_buf_free(&line);
    if (r < 0) {
        /* Drop the "line 1: " that a one-line text gets. */
        const char *why = strncmp(err, "line 1: ", 8) ? err : err + 8;
        snprintf(cfg->err, sizeof(cfg->err), "%s", why);
        return strstr(why, "Bad directive") ? -ENOENT : -EINVAL;
    }
    cfg->err[0] = '\0';
    return 0;
}

int ringcast_config_load_file(ringcast_config *cfg, const char *path)
{
    int r = rc_config_load_file(&cfg->c, path, cfg->err, sizeof(cfg->err));
    if (r == 0)
        cfg->err[0] = '\0';
    return r;
}

const char *ringcast_config_error(const ringcast_config *cfg)
{
    return cfg->err;
}

void ringcast_config_free(ringcast_config *cfg)
{
    if (!cfg)
        return;
    rc_config_free(&cfg->c);
    free(cfg);
}

/* ---- Server ---- */

ringcast_server *ringcast_server_new(const ringcast_config *cfg)
{
    ringcast_server *srv = rc_xcalloc(1, sizeof(*srv));

    srv->s = rc_server_new(&cfg->c);
    srv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->efd < 0) {
        /* Only under descriptor exhaustion; like malloc failure, fatal. */
        fprintf(stderr, "ringcast: eventfd: %s\n", strerror(errno));
        abort();
    }
    pthread_mutex_init(&srv->mu, NULL);
    atomic_init(&srv->stop, false);
    atomic_init(&srv->stoppers, 0);
    return srv;
}

/* The loop's side of the inbox: runs when the eventfd is readable. */
static bool drain_inbox(void *arg)
{
    ringcast_server *srv = arg;
    struct rc_server *s = srv->s;
    struct inbox_msg *m;
    uint64_t v;

    /* Read first: a publisher that finds wake_pending cleared below writes
     * again, and that write must not be swallowed by this read. */
    if (read(srv->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        rc_log(&srv->s->log, RC_LOG_WARNING, "ringcast: reading the publish eventfd: %s",
               strerror(errno));
    s->io.stats.sys[RC_SYS_READ]++;
    pthread_mutex_lock(&srv->mu);
    m = srv->head;
    srv->head = srv->tail = NULL;
    srv->queued = 0;
    srv->wake_pending = false;
    pthread_mutex_unlock(&srv->mu);
    while (m) {
        struct inbox_msg *next = m->next;
        rc_route_publish(s, NULL, false, m->data, m->clen, m->data + m->clen, m->len);
        rc_upstream_forward(s, m->data, m->clen, m->data + m->clen, m->len);
        free(m);
        m = next;
    }
    return false;
}

int ringcast_server_listen(ringcast_server *srv)
{
    int err;

    if (srv->listening)
        return -EALREADY;
    err = rc_server_start(srv->s);
    if (err)
        return err;
    err = srv->s->io.be->watch(&srv->s->io, srv->efd, drain_inbox, srv);
    if (err) {
        rc_log(&srv->s->log, RC_LOG_WARNING, "ringcast: cannot watch the publish eventfd: %s",
               strerror(-err));
        return err;
    }
    srv->listening = true;
    rc_log(&srv->s->log, RC_LOG_NOTICE,
           "ringcast %s embedded: listening on %s port %d, io backend %s", RINGCAST_VERSION_STRING,
           srv->s->cfg.bind[0], srv->s->port, srv->s->io.be->name);
    return 0;
}

int ringcast_server_port(const ringcast_server *srv)
{
    return srv->listening ? srv->s->port : -1;
}

int ringcast_server_run(ringcast_server *srv)
{
    if (!srv->listening || srv->ran)
        return -EINVAL;
    srv->ran = true;
    if (atomic_load(&srv->stop))
        rc_server_request_stop(srv->s);
    return rc_server_run(srv->s);
}

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "stop() counts itself from signal handlers too");

void ringcast_server_stop(ringcast_server *srv)
{
    uint64_t one = 1;
    ssize_t r;

    /* Counted before the flag is set: the loop can return from run() (and
     * its thread free srv) as soon as it sees the flag, while this call is
     * still writing the eventfd; free waits for the count to drop. Lock-free
     * atomics keep this async-signal-safe. */
    atomic_fetch_add(&srv->stoppers, 1);
    atomic_store(&srv->stop, true);
    rc_server_request_stop(srv->s);
    /* Wakes a loop blocked in its wait. */
    r = write(srv->efd, &one, sizeof(one));
    (void)r;
    atomic_fetch_sub(&srv->stoppers, 1);
}

void ringcast_server_free(ringcast_server *srv)
{
    struct inbox_msg *m;

    if (!srv)
        return;
    /* A stop() from another thread may still be between its flag and its
     * eventfd write: a few instructions to wait for. */
    while (atomic_load(&srv->stoppers))
        sched_yield();
    if (srv->listening && srv->s->io.be && srv->s->io.be_state)
        srv->s->io.be->unwatch(&srv->s->io, srv->efd);
    rc_server_free(srv->s);
    close(srv->efd);
    m = srv->head;
    while (m) {
        struct inbox_msg *next = m->next;
        free(m);
        m = next;
    }
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

/* ---- Publishing ---- */

int ringcast_publish(ringcast_server *srv, const char *channel, size_t clen, const void *payload,
                     size_t len)
{
    struct inbox_msg *m;
    bool wake = false;
    size_t bytes = clen + len;

    if (clen > MAX_CHANNEL || len > srv->s->cfg.proto_max_bulk_len)
        return -EMSGSIZE;
    if (atomic_load(&srv->stop))
        return -ESHUTDOWN;
    /* Copy outside the lock: the lock covers two pointer updates. */
    m = rc_xmalloc(sizeof(*m) + bytes);
    m->next = NULL;
    m->clen = clen;
    m->len = len;
    if (clen)
        memcpy(m->data, channel, clen);
    if (len)
        memcpy(m->data + clen, payload, len);

    pthread_mutex_lock(&srv->mu);
    if (srv->queued + bytes > RINGCAST_INBOX_MAX && srv->head) {
        pthread_mutex_unlock(&srv->mu);
        free(m);
        return -ENOBUFS;
    }
    if (srv->tail)
        srv->tail->next = m;
    else
        srv->head = m;
    srv->tail = m;
    srv->queued += bytes;
    srv->inbox_messages++;
    if (!srv->wake_pending) {
        srv->wake_pending = true;
        srv->inbox_wakeups++;
        wake = true;
    }
    pthread_mutex_unlock(&srv->mu);
    if (wake) {
        uint64_t one = 1;
        ssize_t r = write(srv->efd, &one, sizeof(one));
        (void)r; /* EAGAIN only past 2^64-2 unread wakes: the loop is awake anyway */
    }
    return 0;
}

int ringcast_server_stats(const ringcast_server *srv, struct ringcast_stats *st)
{
    ringcast_server *w = (ringcast_server *)srv; /* the mutex is not part of the value */
    const struct rc_workers *wk = srv->s->wk;
    /* Other workers' counters are theirs while they run: read them only
     * once their threads have ended (after ringcast_server_run). */
    int n = wk && wk->nthreads == 0 && wk->go ? wk->n : 1;

    memset(st, 0, sizeof(*st));
    for (int i = 0; i < n; i++) {
        const struct rc_server *s = wk ? wk->w[i] : srv->s;
        const struct rc_engine_stats *es = rc_engine_stats(s->eng);
        st->clients += s->nclients;
        st->messages_published += es->published;
        st->deliveries += es->deliveries;
        st->bytes_out += s->io.stats.bytes_out;
        st->syscalls += rc_io_syscalls(&s->io.stats);
    }
    pthread_mutex_lock(&w->mu);
    st->inbox_messages = w->inbox_messages;
    st->inbox_wakeups = w->inbox_wakeups;
    pthread_mutex_unlock(&w->mu);
    return 0;
}
