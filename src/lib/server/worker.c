/* worker.c -- workers: threads, posts between them, channel owners, holes and gathers.
 *
 * See worker.h for the model. The pieces:
 *
 *  - Posts. A worker appends posts for worker t to its own outbox for t
 *    (no lock: only this thread touches it). Before each poll, every
 *    non-empty outbox is spliced onto the target's inbox under the target's
 *    mutex, one lock per target per iteration, and the target is woken --
 *    unless a wake-up is already pending (one atomic flag per worker, cleared
 *    by the target before it drains). io_uring workers wake each other with
 *    an IORING_OP_MSG_RING queued in the sender's ring: it goes to the kernel
 *    in the same io_uring_enter as the sends. epoll workers write an eventfd.
 *
 *  - Causality. A post is in the target's inbox before any output the sender
 *    produced after making it leaves the sender (outboxes are spliced after
 *    each client's input is handled, when a client is closed, and before
 *    every poll). A worker drains its inbox after every
 *    wait and before it parses any client input. So if a client saw the
 *    effect of a post (a SUBSCRIBE's confirmation, a CONFIG SET's OK) and
 *    then sends a command to any worker, that worker has the post: every
 *    worker agrees on who subscribed before a PUBLISH, as Redis's one thread
 *    does.
 *
 *  - Owners. owner(name) = hash(name) mod N. Every worker keeps a tally of
 *    every channel and pattern with subscribers (subscribers per worker),
 *    kept by DELTA / PATDELTA posts that the engine's count hook sends to
 *    all on every subscribe and unsubscribe. A publish goes to the owner
 *    (PUB), which stamps it in its engine (market-data epoch and sequence)
 *    and posts one reference-counted blob to each other worker with interest
 *    (DELIVER); market-data channels go to every worker, so that each keeps
 *    a full copy of the last value and history for SUBSCRIBE snapshots and
 *    RC.RESUME. A worker receiving a blob publishes it into its own engine
 *    with the owner's stamp; its engine encodes once per wire format present
 *    there, into its own slabs, whose reference counts stay plain integers.
 *    Only the blob's count is atomic, touched once per worker, not once per
 *    subscriber. The worker that took the PUBLISH replies from its own tally
 *    and the owner acknowledges the post (REPLY), which bounds how many one
 *    connection has in flight (RC_PUB_WINDOW).
 *
 *  - Holes. A reply another worker computes (a PUBLISH past the window, or
 *    whose publisher receives the message itself; a gather) gets a hole in
 *    its connection's output; the REPLY or the last PART post fills it.
 *    Replies to later pipelined commands wait in the hold list, in order;
 *    messages do not (they are not replies), and a subscription command
 *    behind a hole waits for it instead. The connection is never blocked
 *    from being read.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "worker.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend.h"
#include "cmd.h"
#include "dict.h"
#include "glob.h"
#include "mdata.h"
#include "server.h"

enum post_type {
    P_PUB,      /* publish on a channel this worker owns; reply to (c, hole) on `from` */
    P_DELIVER,  /* a stamped message for this worker's subscribers */
    P_REPLY,    /* a P_PUB done: its acknowledgement, and the receiver count for a hole */
    P_DELTA,    /* subscribers of a (shard) channel on `from` changed */
    P_PATDELTA, /* subscribers of a pattern on `from` changed */
    P_GATHER,   /* compute a part of g */
    P_PART,     /* a part of g, computed by `from` */
    P_CONFIG,   /* CONFIG SET pairs */
    P_RESETSTAT,
    P_ADOPT, /* a connection (fd in count) dealt to this worker */
    P_MDEL,  /* RC.DEL: drop these channels' market-data state */
};

/* A message delivered to other workers: one allocation, shared. */
struct blob {
    atomic_uint refs;
    bool shard;
    struct rc_stamp st;
    size_t clen, len;
    char data[]; /* channel, then payload */
};

struct post {
    struct post *next;
    uint8_t type;
    uint8_t kind; /* enum rc_sub_kind (deltas); shard flag (P_PUB) */
    int16_t from;
    int32_t delta;
    struct rc_conn *c;
    struct rc_hold *hole;
    uint64_t count;
    struct blob *blob;
    struct rc_gather *g;
    struct rc_buf part;
    size_t clen, len;
    char data[]; /* P_PUB: channel, payload; deltas: the name; P_CONFIG: NUL-separated words */
};

/* Subscribers of one owned channel, or of one pattern, on each worker. */
struct tally {
    char *name; /* patterns only: for matching */
    size_t len;
    uint32_t idx; /* patterns: position in the flat list */
    uint64_t total;
    uint64_t mask; /* workers with a subscriber */
    uint32_t cnt[];
};

struct outq {
    struct post *head, *tail;
    uint64_t n;  /* posts in it */
    bool urgent; /* holds something a client waits for (not only deliveries) */
};

/* The inbox lock: held for a list splice, a few instructions, so a spin
 * (no futex system calls, which no counter would see); a holder that was
 * preempted gets the CPU back through sched_yield(), counted. */
struct spin {
    atomic_flag f;
};

static void spin_lock(struct rc_server *s, struct spin *l)
{
    for (unsigned n = 0; atomic_flag_test_and_set_explicit(&l->f, memory_order_acquire); n++) {
        if (n < 128) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
            s->io.stats.sys[RC_SYS_OTHER]++;
        }
    }
}

static void spin_unlock(struct spin *l)
{
    atomic_flag_clear_explicit(&l->f, memory_order_release);
}

/* ---- Cross-worker memory ----
 *
 * Posts and blobs are made on one worker and freed on another. Through
 * malloc alone, the freeing thread returns the chunk to the allocating
 * thread's arena under that arena's lock, and the two contend on it: in
 * scenario B with two workers that was about 1,700 futex calls in 3 s, a
 * third of the server's system calls and none of them in its counters. So
 * each worker keeps free lists of its own chunks by size class, and a chunk
 * freed on another worker goes back to its owner's return stack: a
 * lock-free push; the owner takes the whole stack with one exchange when a
 * free list runs dry (a pop-all has no ABA problem).
 */
#define XC_SHIFT   6          /* smallest class: 64 bytes */
#define XC_CLASSES 7          /* 64 B .. 4 KiB; larger chunks are plain malloc */
#define XC_KEEP    (1u << 20) /* bytes a free list keeps; more are given back to malloc */

struct xchunk {
    union {
        struct {
            struct xchunk *next;
            int16_t owner; /* worker index, -1 = a plain allocation */
            uint8_t cls;
        };
        max_align_t align;
    };
    char mem[];
};

struct xpool {
    _Atomic(struct xchunk *) back; /* freed by other workers */
    struct xchunk *free[XC_CLASSES];
    uint32_t nfree[XC_CLASSES];
};

struct rc_wstate {
    struct xpool pool;
    struct spin mu;
    struct post *in_head, *in_tail; /* guarded by mu */
    atomic_bool in_any;             /* the inbox may hold something */
    atomic_uint_fast64_t in_n;      /* posts handed to this worker and not yet handled */
    atomic_bool wake_pending;       /* a wake-up is on its way */
    int efd;                        /* woken through this when the backend has no kick */
    bool draining;
    struct outq out[RC_MAX_WORKERS];
    struct rc_dict *own[2]; /* [shard] every channel with a subscriber -> struct tally */
    uint64_t nowned[2];     /* of which this worker owns */
    struct rc_dict *pats;   /* pattern -> struct tally */
    struct tally **patlist; /* every pattern with a subscriber anywhere */
    uint32_t npat, patcap;
    struct rc_gather *gathers;             /* this worker's, waiting for parts */
    struct rc_buf spare;                   /* s->rbuf while a hole is filled */
    uint64_t dealt;                        /* connections dealt out (worker 0) */
    uint64_t last_kick_us[RC_MAX_WORKERS]; /* when each target was last woken */
    uint64_t kick_due_us[RC_MAX_WORKERS];  /* a deferred wake-up is due then, 0 = none */
    uint64_t pending; /* targets with posts in their outbox or a deferred wake-up (bits) */
    struct rc_worker_counters ctr;
};

/* ---- How many ---- */

int rc_workers_wanted(const struct rc_config *cfg)
{
    cpu_set_t set;
    int n;

    if (cfg->workers)
        return (int)RC_MIN(cfg->workers, RC_MAX_WORKERS);
    if (sched_getaffinity(0, sizeof(set), &set) < 0)
        return 1;
    n = CPU_COUNT(&set);
    return RC_MAX(1, RC_MIN(n, RC_MAX_WORKERS));
}

static int owner_of(const struct rc_server *s, const char *name, size_t len)
{
    return (int)(rc_dict_hash(name, len) % (size_t)s->wk->n);
}

static uint64_t bit(int w)
{
    return 1ull << w;
}

/* ---- Cross-worker memory ---- */

static void *xalloc(struct rc_server *s, size_t n)
{
    struct xpool *pl = &s->ws->pool;
    unsigned cls = 0;
    struct xchunk *c;

    while (cls < XC_CLASSES && ((size_t)1 << (XC_SHIFT + cls)) < sizeof(*c) + n)
        cls++;
    if (cls == XC_CLASSES) {
        c = rc_xmalloc(sizeof(*c) + n);
        c->owner = -1;
        return c->mem;
    }
    if (!pl->free[cls]) {
        /* Take back what the other workers freed, sorted into the lists. */
        c = atomic_exchange_explicit(&pl->back, NULL, memory_order_acquire);
        while (c) {
            struct xchunk *next = c->next;
            if (pl->nfree[c->cls] >= XC_KEEP >> (XC_SHIFT + c->cls)) {
                free(c);
            } else {
                c->next = pl->free[c->cls];
                pl->free[c->cls] = c;
                pl->nfree[c->cls]++;
            }
            c = next;
        }
    }
    c = pl->free[cls];
    if (c) {
        pl->free[cls] = c->next;
        pl->nfree[cls]--;
    } else {
        c = rc_xmalloc((size_t)1 << (XC_SHIFT + cls));
        c->owner = (int16_t)s->widx;
        c->cls = (uint8_t)cls;
    }
    return c->mem;
}

/* Frees mem (from xalloc) on worker s; s NULL: at teardown, every thread ended. */
static void xfree(struct rc_server *s, void *mem)
{
    struct xchunk *c = (struct xchunk *)((char *)mem - offsetof(struct xchunk, mem));

    if (c->owner < 0 || !s || s->wk->freeing) {
        free(c);
    } else if (c->owner == s->widx) {
        struct xpool *pl = &s->ws->pool;
        if (pl->nfree[c->cls] >= XC_KEEP >> (XC_SHIFT + c->cls)) {
            free(c);
            return;
        }
        c->next = pl->free[c->cls];
        pl->free[c->cls] = c;
        pl->nfree[c->cls]++;
    } else {
        struct xpool *pl = &s->wk->w[c->owner]->ws->pool;
        c->next = atomic_load_explicit(&pl->back, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(&pl->back, &c->next, c, memory_order_release,
                                                      memory_order_relaxed))
            ;
    }
}

static void xpool_free(struct xpool *pl)
{
    struct xchunk *c = atomic_exchange(&pl->back, NULL);

    while (c) {
        struct xchunk *next = c->next;
        free(c);
        c = next;
    }
    for (int i = 0; i < XC_CLASSES; i++) {
        for (c = pl->free[i]; c;) {
            struct xchunk *next = c->next;
            free(c);
            c = next;
        }
        pl->free[i] = NULL;
        pl->nfree[i] = 0;
    }
}

/* ---- Posts ---- */

static struct post *post_new(enum post_type type, struct rc_server *s, size_t extra)
{
    struct post *p = xalloc(s, sizeof(*p) + extra);
    memset(p, 0, sizeof(*p));
    p->type = (uint8_t)type;
    p->from = (int16_t)s->widx;
    return p;
}

static void post_to(struct rc_server *s, int t, struct post *p)
{
    struct outq *q = &s->ws->out[t];

    s->ws->pending |= bit(t);
    if (p->type != P_DELIVER && p->type != P_DELTA && p->type != P_PATDELTA)
        q->urgent = true;
    p->next = NULL;
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
    q->n++;
    s->ws->ctr.posts_out++;
}

static void blob_unref(struct rc_server *s, struct blob *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        xfree(s, b);
}

/* Frees a post once handled on worker s, or one that will not be (teardown:
 * s NULL). */
static void post_discard(struct rc_server *s, struct post *p)
{
    if (p->type == P_ADOPT && p->count != UINT64_MAX)
        close((int)p->count); /* a connection nobody took */
    if (p->blob)
        blob_unref(s, p->blob);
    rc_buf_free(&p->part);
    xfree(s, p);
}

static void kick(struct rc_server *s, struct rc_server *t)
{
    if (s->io.be->kick) {
        s->io.be->kick(&s->io, &t->io);
        return;
    }
    uint64_t one = 1;
    if (write(t->ws->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        rc_log(&s->log, RC_LOG_WARNING, "workers: waking worker %d: %s", t->widx, strerror(errno));
    s->io.stats.sys[RC_SYS_WRITE]++;
    s->io.stats.kicks++;
}

bool rc_worker_hand_off(struct rc_server *s, int fd)
{
    int t;

    if (!s->wk)
        return false;
    /* Round robin: balanced whatever the peers' addresses, and the same
     * order every run (which the tests use). */
    t = (int)(s->ws->dealt++ % (uint64_t)s->wk->n);
    if (t == s->widx)
        return false;
    struct post *p = post_new(P_ADOPT, s, 0);
    p->count = (uint64_t)fd;
    post_to(s, t, p);
    return true;
}

/* How long a target's wake-up for deliveries alone may wait: the window
 * subscribers' output is held for anyway (accum.h). */
static uint64_t kick_window_us(const struct rc_server *s)
{
    return s->io.cfg.tick_us ? s->io.cfg.tick_us : s->io.cfg.budget_us;
}

/* Wakes target t unless a wake-up is on its way already. */
static void kick_now(struct rc_server *s, int t, uint64_t now)
{
    struct rc_server *ts = s->wk->w[t];

    s->ws->last_kick_us[t] = now;
    s->ws->kick_due_us[t] = 0;
    /* The target clears the flag before it drains: a post appended after
     * its drain began either finds the flag clear (and wakes it) or set by
     * a sender whose wake-up is still to come. */
    if (!atomic_exchange(&ts->ws->wake_pending, true))
        kick(s, ts);
}

void rc_worker_flush(struct rc_server *s)
{
    struct rc_wstate *ws = s->ws;
    uint64_t now, window, todo = ws->pending;

    /* Called after every client's input: nothing to hand over is the
     * common case, and costs one test. */
    if (!todo || s->wk->freeing)
        return; /* freeing: the targets may be gone; the outboxes are dropped */
    now = rc_now_us();
    window = kick_window_us(s);
    for (; todo; todo &= todo - 1) {
        int t = __builtin_ctzll(todo);
        struct outq *q = &ws->out[t];
        struct rc_server *ts = s->wk->w[t];
        struct rc_wstate *tw = ts->ws;
        if (ws->kick_due_us[t] && now >= ws->kick_due_us[t]) {
            /* A deferred wake-up: still needed if the target has not
             * drained its inbox meanwhile. */
            ws->kick_due_us[t] = 0;
            if (atomic_load(&tw->in_any))
                kick_now(s, t, now);
        }
        if (!q->head) {
            if (!ws->kick_due_us[t])
                ws->pending &= ~bit(t);
            continue;
        }
        spin_lock(s, &tw->mu);
        if (tw->in_tail)
            tw->in_tail->next = q->head;
        else
            tw->in_head = q->head;
        tw->in_tail = q->tail;
        atomic_fetch_add_explicit(&tw->in_n, q->n, memory_order_relaxed);
        atomic_store(&tw->in_any, true);
        spin_unlock(&tw->mu);
        q->head = q->tail = NULL;
        q->n = 0;
        /* Deliveries (and subscription counts) for a target woken less
         * than a window ago wait for the window to end, so that under load
         * a worker is woken once per window, not once per sender iteration,
         * and its subscribers' sends batch like a single loop's. Anything a
         * client waits for (a publish to stamp, a reply, a part) goes now.
         * Causality does not depend on it: the posts are in the inbox
         * already, and a worker drains it before it reads any input. */
        if (q->urgent || !window || now - ws->last_kick_us[t] >= window)
            kick_now(s, t, now);
        else if (!ws->kick_due_us[t])
            ws->kick_due_us[t] = ws->last_kick_us[t] + window;
        q->urgent = false;
        if (!ws->kick_due_us[t])
            ws->pending &= ~bit(t);
    }
}

int rc_worker_wait_ms(struct rc_server *s, int timeout_ms)
{
    uint64_t now = 0;

    if (!s->ws)
        return timeout_ms;
    for (uint64_t todo = s->ws->pending; todo; todo &= todo - 1) {
        uint64_t due = s->ws->kick_due_us[__builtin_ctzll(todo)];
        if (!due)
            continue;
        if (!now)
            now = rc_now_us();
        int ms = due <= now ? 0 : (int)((due - now + 999) / 1000);
        if (timeout_ms < 0 || ms < timeout_ms)
            timeout_ms = ms;
    }
    return timeout_ms;
}

/* The eventfd's watch callback (backends without kick). */
static bool on_wake_fd(void *arg)
{
    struct rc_server *s = arg;
    uint64_t v;

    if (read(s->ws->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        rc_log(&s->log, RC_LOG_WARNING, "workers: reading the wake-up eventfd: %s",
               strerror(errno));
    s->io.stats.sys[RC_SYS_READ]++;
    return false;
}

/* ---- Tallies: owned channels and the pattern copy ---- */

static struct tally *tally_new(struct rc_server *s, const char *name, size_t len, bool keep_name)
{
    struct tally *t = rc_xcalloc(1, sizeof(*t) + sizeof(uint32_t) * (size_t)s->wk->n);
    if (keep_name) {
        t->name = rc_xmemdup(name, len);
        t->len = len;
    }
    return t;
}

static void tally_add(struct tally *t, int w, int delta)
{
    if (delta < 0 && t->cnt[w] < (uint32_t)-delta)
        delta = -(int)t->cnt[w]; /* never below zero */
    t->cnt[w] = (uint32_t)((int64_t)t->cnt[w] + delta);
    t->total = (uint64_t)((int64_t)t->total + delta);
    if (t->cnt[w])
        t->mask |= bit(w);
    else
        t->mask &= ~bit(w);
}

static void own_apply(struct rc_server *s, bool shard, int from, const char *name, size_t len,
                      int delta)
{
    struct rc_dict *d = s->ws->own[shard];
    struct tally *t = rc_dict_get(d, name, len);

    if (!t) {
        if (delta <= 0)
            return;
        t = tally_new(s, name, len, false);
        rc_dict_add(d, name, len, t);
        if (owner_of(s, name, len) == s->widx)
            s->ws->nowned[shard]++;
    }
    tally_add(t, from, delta);
    if (t->total == 0) {
        rc_dict_del(d, name, len);
        free(t);
        if (owner_of(s, name, len) == s->widx)
            s->ws->nowned[shard]--;
    }
}

static void pat_apply(struct rc_server *s, int from, const char *name, size_t len, int delta)
{
    struct rc_wstate *ws = s->ws;
    struct tally *t = rc_dict_get(ws->pats, name, len);

    if (!t) {
        if (delta <= 0)
            return;
        t = tally_new(s, name, len, true);
        rc_dict_add(ws->pats, name, len, t);
        if (ws->npat == ws->patcap) {
            ws->patcap = ws->patcap ? ws->patcap * 2 : 16;
            ws->patlist = rc_xrealloc(ws->patlist, ws->patcap * sizeof(struct tally *));
        }
        t->idx = ws->npat;
        ws->patlist[ws->npat++] = t;
    }
    tally_add(t, from, delta);
    if (t->total == 0) {
        rc_dict_del(ws->pats, name, len);
        ws->patlist[t->idx] = ws->patlist[--ws->npat];
        ws->patlist[t->idx]->idx = t->idx;
        free(t->name);
        free(t);
    }
}

void rc_worker_count(void *arg, enum rc_sub_kind kind, const char *name, size_t len, int delta)
{
    struct rc_server *s = arg;
    bool pat = kind == RC_SUB_PATTERN;

    /* Every worker keeps every channel's and pattern's tally: the owner to
     * know where to post, the others to answer PUBLISH at once
     * (rc_route_publish). */
    if (pat)
        pat_apply(s, s->widx, name, len, delta);
    else
        own_apply(s, kind == RC_SUB_SHARD, s->widx, name, len, delta);
    for (int t = 0; t < s->wk->n; t++) {
        if (t == s->widx)
            continue;
        struct post *p = post_new(pat ? P_PATDELTA : P_DELTA, s, len);
        memcpy(p->data, name, len);
        p->clen = len;
        p->kind = (uint8_t)kind;
        p->delta = delta;
        post_to(s, t, p);
    }
}

uint64_t rc_worker_owned(struct rc_server *s, bool shard)
{
    return s->ws->nowned[shard];
}

void rc_worker_each_owned(struct rc_server *s, bool shard,
                          void (*fn)(void *arg, const char *name, size_t len), void *arg)
{
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    rc_dict_iter_init(&it);
    while (rc_dict_next(s->ws->own[shard], &it, &k, &kl, &v))
        if (owner_of(s, k, kl) == s->widx)
            fn(arg, k, kl);
}

size_t rc_worker_numpat(struct rc_server *s)
{
    return s->ws ? s->ws->npat : rc_engine_numpat(s->eng);
}

/* ---- Publishing ---- */

/* Subscribers of chan on every worker (Redis's count: pattern subscribers
 * once per matching pattern), and the workers holding them. */
static uint64_t tally_of(struct rc_server *s, bool shard, const char *chan, size_t clen,
                         uint64_t *mask)
{
    struct rc_wstate *ws = s->ws;
    struct tally *t = rc_dict_get(ws->own[shard], chan, clen);
    uint64_t receivers = 0;

    *mask = 0;
    if (t) {
        receivers += t->total;
        *mask |= t->mask;
    }
    for (uint32_t i = 0; !shard && i < ws->npat; i++) {
        const struct tally *p = ws->patlist[i];
        if (rc_glob_match(p->name, p->len, chan, clen)) {
            receivers += p->total;
            *mask |= p->mask;
        }
    }
    return receivers;
}

/* The owner's side of a publish: stamp, deliver here, post to the others. */
static uint64_t owner_publish(struct rc_server *s, bool shard, const char *chan, size_t clen,
                              const char *payload, size_t len)
{
    struct rc_wstate *ws = s->ws;
    uint64_t mask, receivers = tally_of(s, shard, chan, clen, &mask);
    struct rc_stamp st = {0};

    ws->ctr.owned_pubs++;
    /* Always through this engine: it counts the publish and keeps the
     * market-data state (and stamp) of channels it owns. */
    rc_engine_publish_ex(s->eng, shard, chan, clen, payload, len, &st, false);
    if (st.mdata)
        mask = s->wk->n >= 64 ? ~0ull : bit(s->wk->n) - 1; /* every copy of the state */
    mask &= ~bit(s->widx);
    if (mask) {
        struct blob *b = xalloc(s, sizeof(*b) + clen + len);
        atomic_init(&b->refs, (unsigned)__builtin_popcountll(mask));
        b->shard = shard;
        b->st = st;
        b->clen = clen;
        b->len = len;
        memcpy(b->data, chan, clen);
        memcpy(b->data + clen, payload, len);
        for (int w = 0; w < s->wk->n; w++) {
            if (!(mask & bit(w)))
                continue;
            struct post *p = post_new(P_DELIVER, s, 0);
            p->blob = b;
            post_to(s, w, p);
        }
    }
    return receivers;
}

/* Does c itself receive a publish on chan? */
static bool conn_receives(const struct rc_conn *c, bool shard, const char *chan, size_t clen)
{
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    if (rc_sink_has(&c->sink, shard ? RC_SUB_SHARD : RC_SUB_CHANNEL, chan, clen))
        return true;
    if (shard || !c->sink.subs[RC_SUB_PATTERN])
        return false;
    rc_dict_iter_init(&it);
    while (rc_dict_next(c->sink.subs[RC_SUB_PATTERN], &it, &k, &kl, &v))
        if (rc_glob_match(k, kl, chan, clen))
            return true;
    return false;
}

int64_t rc_route_publish(struct rc_server *s, struct rc_conn *c, bool shard, const char *chan,
                         size_t clen, const char *payload, size_t len)
{
    if (!s->wk)
        return (int64_t)rc_engine_publish(s->eng, shard, chan, clen, payload, len);
    int o = owner_of(s, chan, clen);
    if (o == s->widx)
        return (int64_t)owner_publish(s, shard, chan, clen, payload, len);
    struct post *p = post_new(P_PUB, s, clen + len);
    memcpy(p->data, chan, clen);
    memcpy(p->data + clen, payload, len);
    p->clen = clen;
    p->len = len;
    p->kind = shard;
    post_to(s, o, p);
    s->ws->ctr.forwarded_pubs++;
    if (!c)
        return 0;
    /* The owner acknowledges each post (P_REPLY), which bounds what one
     * connection can have in flight to owners. */
    p->c = c;
    c->posted++;
    /* This worker's tallies count the receivers as the owner's do (every
     * subscription change reaches every worker before its confirmation
     * leaves), so the reply goes now and the publisher's pipeline does not
     * wait for the owner. Unless the publisher receives the message itself
     * (a RESP3 client subscribed to the channel): then, as from Redis, the
     * message comes first and the reply follows it, from the owner, through
     * a hole. Past RC_PUB_WINDOW unacknowledged publishes the reply waits
     * too: a publisher faster than the owners can fan out is held back by
     * its own pipeline, instead of filling their inboxes without bound. */
    if (c->posted > RC_PUB_WINDOW ||
        (RC_UNLIKELY(rc_sink_subscribed(&c->sink)) && conn_receives(c, shard, chan, clen)) ||
        /* A market-data channel: what the client asks next (RC.LAST, a
         * SUBSCRIBE's snapshot) must see this message in its worker's copy,
         * which the owner's delivery reaches before its reply does. */
        (RC_UNLIKELY(s->cfg.md.nrules > 0) && !shard && rc_mdata_applies(s->eng, chan, clen))) {
        p->hole = rc_hold_hole(s, c);
        return -1;
    }
    uint64_t mask;
    return (int64_t)tally_of(s, shard, chan, clen, &mask);
}

bool rc_worker_backlogged(struct rc_server *s, const char *chan, size_t clen)
{
    int o;

    if (!s->wk)
        return false;
    o = owner_of(s, chan, clen);
    if (o == s->widx)
        return false;
    return s->ws->out[o].n + atomic_load_explicit(&s->wk->w[o]->ws->in_n, memory_order_relaxed) >=
           RC_OWNER_BACKLOG;
}

/* ---- Holes ---- */

struct rc_hold *rc_hold_hole(struct rc_server *s, struct rc_conn *c)
{
    struct rc_hold *h = rc_xcalloc(1, sizeof(*h));

    if (c->hold_tail)
        c->hold_tail->next = h;
    else
        c->hold_head = h;
    c->hold_tail = h;
    c->nholes++;
    c->io.held = true;
    return h;
}

void rc_hold_push(struct rc_server *s, struct rc_conn *c, struct rc_slab *slab, uint32_t off,
                  uint32_t len)
{
    struct rc_hold *e = rc_xcalloc(1, sizeof(*e));

    e->slab = slab;
    e->off = off;
    e->len = len;
    rc_slab_ref(slab);
    if (s->fill_conn == c && s->fill_hole) {
        struct rc_hold *h = s->fill_hole;
        if (h->sub_tail)
            h->sub_tail->next = e;
        else
            h->sub_head = e;
        h->sub_tail = e;
        return;
    }
    if (c->hold_tail)
        c->hold_tail->next = e;
    else
        c->hold_head = e;
    c->hold_tail = e;
}

void rc_hold_fill_begin(struct rc_server *s, struct rc_conn *c, struct rc_hold *h)
{
    s->fill_conn = c;
    s->fill_hole = h;
    /* The reply is built in s->rbuf: keep what is there (nothing, between
     * commands) aside. */
    struct rc_buf t = s->rbuf;
    s->rbuf = s->ws->spare;
    s->ws->spare = t;
    s->rbuf.len = 0;
}

static void hold_entry_out(struct rc_server *s, struct rc_conn *c, struct rc_hold *e)
{
    rc_conn_queue(s, c, e->slab, e->off, e->len);
    rc_slab_unref(e->slab);
    free(e);
}

void rc_hold_fill_end(struct rc_server *s, struct rc_conn *c, struct rc_hold *h)
{
    struct rc_buf t = s->rbuf;

    s->rbuf = s->ws->spare;
    s->ws->spare = t;
    s->fill_conn = NULL;
    s->fill_hole = NULL;
    h->ready = true;
    c->nholes--;
    /* Release what no hole holds back any more, in order. */
    while (c->hold_head) {
        struct rc_hold *e = c->hold_head;
        if (!e->slab && !e->ready)
            break;
        c->hold_head = e->next;
        if (!c->hold_head)
            c->hold_tail = NULL;
        if (e->slab) {
            hold_entry_out(s, c, e);
            continue;
        }
        for (struct rc_hold *x = e->sub_head, *nx; x; x = nx) {
            nx = x->next;
            hold_entry_out(s, c, x);
        }
        free(e);
    }
    if (!c->hold_head) {
        c->io.held = false;
        rc_conn_mark_dirty(s, c); /* the backend may now close it after its reply */
    }
    if (c->nholes == 0)
        rc_conn_holes_done(s, c);
}

static void hold_list_free(struct rc_hold *e)
{
    while (e) {
        struct rc_hold *next = e->next;
        if (e->slab)
            rc_slab_unref(e->slab);
        hold_list_free(e->sub_head);
        free(e);
        e = next;
    }
}

void rc_hold_free(struct rc_conn *c)
{
    hold_list_free(c->hold_head);
    c->hold_head = c->hold_tail = NULL;
    c->nholes = 0;
    c->posted = 0; /* teardown: the acknowledgements will not come */
    c->io.held = false;
}

/* ---- Gathers ---- */

static void gather_free(struct rc_gather *g)
{
    for (int i = 0; i < g->argc; i++)
        free(g->argv[i]);
    free(g->argv);
    free(g->argvlen);
    for (int i = 0; i < RC_MAX_WORKERS; i++)
        rc_buf_free(&g->parts[i]);
    free(g);
}

void rc_gather(struct rc_server *s, struct rc_conn *c, int argc, const char *const *argv,
               const size_t *argvlen, uint64_t arg, rc_part_fn part, rc_combine_fn combine)
{
    struct rc_gather *g = rc_xcalloc(1, sizeof(*g));

    g->home = s;
    g->c = c;
    g->part = part;
    g->combine = combine;
    g->arg = arg;
    g->argc = argc;
    g->argv = rc_xcalloc((size_t)argc + 1, sizeof(char *));
    g->argvlen = rc_xcalloc((size_t)argc + 1, sizeof(size_t));
    for (int i = 0; i < argc; i++) {
        g->argv[i] = rc_xmalloc(argvlen[i] + 1);
        memcpy(g->argv[i], argv[i], argvlen[i]);
        g->argv[i][argvlen[i]] = '\0';
        g->argvlen[i] = argvlen[i];
    }
    g->n = s->wk ? s->wk->n : 1;
    if (!s->wk) {
        part(s, g, &g->parts[0]);
        combine(s, c, g);
        gather_free(g);
        return;
    }
    part(s, g, &g->parts[s->widx]);
    g->waiting = g->n - 1;
    g->hole = rc_hold_hole(s, c);
    g->next = s->ws->gathers;
    s->ws->gathers = g;
    for (int t = 0; t < g->n; t++) {
        if (t == s->widx)
            continue;
        struct post *p = post_new(P_GATHER, s, 0);
        p->g = g;
        post_to(s, t, p);
    }
}

static void gather_done(struct rc_server *s, struct rc_gather *g)
{
    struct rc_gather **pp = &s->ws->gathers;

    while (*pp && *pp != g)
        pp = &(*pp)->next;
    if (*pp)
        *pp = g->next;
    rc_hold_fill_begin(s, g->c, g->hole);
    g->combine(s, g->c, g);
    rc_conn_flush_reply(s, g->c);
    rc_hold_fill_end(s, g->c, g->hole);
    gather_free(g);
}

/* ---- Config ---- */

static void broadcast_words(struct rc_server *s, enum post_type type, int argc,
                            const char *const *argv, const size_t *argvlen)
{
    size_t total = 0;

    /* Each word: its length (a size_t), its bytes, a NUL. */
    for (int i = 0; i < argc; i++)
        total += sizeof(size_t) + argvlen[i] + 1;
    for (int t = 0; s->wk && t < s->wk->n; t++) {
        if (t == s->widx)
            continue;
        struct post *p = post_new(type, s, total);
        char *d = p->data;
        for (int i = 0; i < argc; i++) {
            memcpy(d, &argvlen[i], sizeof(size_t));
            d += sizeof(size_t);
            memcpy(d, argv[i], argvlen[i]);
            d[argvlen[i]] = '\0';
            d += argvlen[i] + 1;
        }
        p->count = (uint64_t)argc;
        p->len = total;
        post_to(s, t, p);
    }
}

void rc_workers_config_set(struct rc_server *s, int argc, const char *const *argv,
                           const size_t *argvlen)
{
    broadcast_words(s, P_CONFIG, argc, argv, argvlen);
}

void rc_workers_resetstat(struct rc_server *s)
{
    broadcast_words(s, P_RESETSTAT, 0, NULL, NULL);
}

void rc_workers_mdata_del(struct rc_server *s, int argc, const char *const *argv,
                          const size_t *argvlen)
{
    broadcast_words(s, P_MDEL, argc, argv, argvlen);
}

/* The next word of a broadcast post (NUL-terminated too); advances *d. */
static const char *next_word(const char **d, size_t *len)
{
    const char *w;

    memcpy(len, *d, sizeof(size_t));
    w = *d + sizeof(size_t);
    *d = w + *len + 1;
    return w;
}

/* Applies name/value pairs another worker's CONFIG SET checked already. */
static void apply_config(struct rc_server *s, const struct post *p)
{
    const char *d = p->data;
    char err[256];
    size_t l;

    for (uint64_t i = 0; i + 1 < p->count; i += 2) {
        const char *argv[2];
        argv[0] = next_word(&d, &l);
        argv[1] = next_word(&d, &l);
        if (rc_config_set(&s->cfg, 2, argv, err, sizeof(err)) < 0)
            rc_log(&s->log, RC_LOG_WARNING, "workers: CONFIG SET %s on worker %d: %s", argv[0],
                   s->widx, err);
    }
    rc_mdata_reconfigure(s->eng);
    rc_mem_apply_cfg(s);
}

static void apply_mdel(struct rc_server *s, const struct post *p)
{
    const char *d = p->data;
    size_t l;

    for (uint64_t i = 0; i < p->count; i++) {
        const char *w = next_word(&d, &l);
        rc_mdata_del(s->eng, w, l);
    }
}

/* ---- The inbox ---- */

static void reply_count(struct rc_server *s, struct rc_conn *c, struct rc_hold *h, uint64_t n)
{
    rc_hold_fill_begin(s, c, h);
    rc_resp_int(&s->rbuf, (int64_t)n);
    rc_conn_flush_reply(s, c);
    rc_hold_fill_end(s, c, h);
}

static void handle(struct rc_server *s, struct post *p)
{
    switch ((enum post_type)p->type) {
    case P_PUB: {
        uint64_t n = owner_publish(s, p->kind, p->data, p->clen, p->data + p->clen, p->len);
        if (p->c) {
            struct post *r = post_new(P_REPLY, s, 0);
            r->c = p->c;
            r->hole = p->hole;
            r->count = n;
            post_to(s, p->from, r);
        }
        break;
    }
    case P_DELIVER: {
        struct blob *b = p->blob;
        struct rc_stamp st = b->st;
        rc_engine_publish_ex(s->eng, b->shard, b->data, b->clen, b->data + b->clen, b->len, &st,
                             true);
        blob_unref(s, b);
        p->blob = NULL;
        break;
    }
    case P_REPLY:
        p->c->posted--;
        if (p->hole)
            reply_count(s, p->c, p->hole, p->count);
        else
            rc_conn_holes_done(s, p->c); /* frees it if only this was left */
        break;
    case P_DELTA: own_apply(s, p->kind == RC_SUB_SHARD, p->from, p->data, p->clen, p->delta); break;
    case P_PATDELTA: pat_apply(s, p->from, p->data, p->clen, p->delta); break;
    case P_GATHER: {
        struct post *r = post_new(P_PART, s, 0);
        p->g->part(s, p->g, &r->part);
        r->g = p->g;
        post_to(s, p->g->home->widx, r);
        break;
    }
    case P_PART: {
        struct rc_gather *g = p->g;
        g->parts[p->from] = p->part;
        p->part = (struct rc_buf){0};
        if (--g->waiting == 0)
            gather_done(s, g);
        break;
    }
    case P_CONFIG: apply_config(s, p); break;
    case P_RESETSTAT: rc_server_resetstat(s); break;
    case P_MDEL: apply_mdel(s, p); break;
    case P_ADOPT:
        if (s->io.be && !s->stopping) {
            s->io.be->adopt(&s->io, (int)p->count);
            p->count = UINT64_MAX; /* taken */
        }
        break;
    }
    s->ws->ctr.posts_in++;
    post_discard(s, p);
}

void rc_worker_drain(struct rc_server *s)
{
    struct rc_wstate *ws = s->ws;
    struct post *p;

    if (!ws || ws->draining || !atomic_load_explicit(&ws->in_any, memory_order_acquire))
        return;
    ws->draining = true;
    /* Handling a post can produce posts for this worker itself (none
     * today) or new input: take batches until the inbox stays empty. */
    for (;;) {
        spin_lock(s, &ws->mu);
        p = ws->in_head;
        ws->in_head = ws->in_tail = NULL;
        atomic_store(&ws->in_any, false);
        spin_unlock(&ws->mu);
        if (!p)
            break;
        uint64_t handled = 0;
        while (p) {
            struct post *next = p->next;
            handle(s, p);
            p = next;
            handled++;
        }
        atomic_fetch_sub_explicit(&ws->in_n, handled, memory_order_relaxed);
    }
    ws->draining = false;
}

bool rc_worker_idle(struct rc_server *s)
{
    struct rc_wstate *ws = s->ws;

    if (!ws)
        return true;
    if (atomic_load(&ws->in_any) || ws->gathers)
        return false;
    for (int t = 0; t < s->wk->n; t++)
        if (ws->out[t].head)
            return false;
    RC_FOR_EACH_CONN(s, c)
    if (c->nholes || c->posted)
        return false;
    return true;
}

const struct rc_worker_counters *rc_worker_counters(const struct rc_server *s)
{
    static const struct rc_worker_counters none;
    return s->ws ? &s->ws->ctr : &none;
}

/* ---- Life ---- */

void rc_worker_state_new(struct rc_server *s)
{
    struct rc_wstate *ws = rc_xcalloc(1, sizeof(*ws));

    atomic_init(&ws->pool.back, NULL);
    atomic_flag_clear(&ws->mu.f);
    atomic_init(&ws->in_any, false);
    atomic_init(&ws->in_n, 0);
    atomic_init(&ws->wake_pending, false);
    ws->efd = -1;
    ws->own[0] = rc_dict_new();
    ws->own[1] = rc_dict_new();
    ws->pats = rc_dict_new();
    s->ws = ws;
}

static void free_tallies(struct rc_dict *d)
{
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    rc_dict_iter_init(&it);
    while (rc_dict_next(d, &it, &k, &kl, &v)) {
        struct tally *t = v;
        free(t->name);
        free(t);
    }
    rc_dict_free(d);
}

/* Drops the posts in ws's inbox and outboxes (teardown: no thread runs). */
static void discard_posts(struct rc_wstate *ws)
{
    struct post *p = ws->in_head;

    while (p) {
        struct post *next = p->next;
        post_discard(NULL, p);
        p = next;
    }
    ws->in_head = ws->in_tail = NULL;
    atomic_store(&ws->in_n, 0);
    for (int t = 0; t < RC_MAX_WORKERS; t++) {
        for (p = ws->out[t].head; p;) {
            struct post *next = p->next;
            post_discard(NULL, p);
            p = next;
        }
        ws->out[t].head = ws->out[t].tail = NULL;
        ws->out[t].n = 0;
    }
}

void rc_worker_state_free(struct rc_server *s)
{
    struct rc_wstate *ws = s->ws;

    if (!ws)
        return;
    discard_posts(ws); /* made while tearing down (unsubscribes) */
    xpool_free(&ws->pool);
    if (ws->efd >= 0)
        close(ws->efd);
    free_tallies(ws->own[0]);
    free_tallies(ws->own[1]);
    free_tallies(ws->pats);
    free(ws->patlist);
    rc_buf_free(&ws->spare);
    free(ws);
    s->ws = NULL;
}

/* Sets up worker s's wake-up path once its backend runs. */
int rc_worker_start(struct rc_server *s)
{
    if (!s->wk || s->io.be->kick)
        return 0;
    s->ws->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->ws->efd < 0)
        return -errno;
    return s->io.be->watch(&s->io, s->ws->efd, on_wake_fd, s);
}

/* Clears the wake-up flag and handles the inbox (after each poll). */
void rc_worker_woken(struct rc_server *s)
{
    if (!s->ws)
        return;
    atomic_store(&s->ws->wake_pending, false);
    rc_worker_drain(s);
}

static void *worker_main(void *arg)
{
    struct rc_server *s = arg, *s0 = s->wk->w[0];
    struct rc_workers *wk = s->wk;
    int err = s0->io.be->init(&s->io);

    if (err)
        rc_log(&s->log, RC_LOG_WARNING, "Could not start the %s backend for worker %d: %s",
               s0->io.be->name, s->widx, strerror(-err));
    else {
        s->io.be = s0->io.be;
        err = rc_server_listen_worker(s);
    }
    pthread_mutex_lock(&wk->mu);
    wk->nready++;
    if (err && !wk->failed)
        wk->failed = err;
    pthread_cond_broadcast(&wk->cv);
    while (!wk->go)
        pthread_cond_wait(&wk->cv, &wk->mu);
    pthread_mutex_unlock(&wk->mu);
    if (!err && !wk->failed)
        rc_server_loop(s);
    /* The ring is this thread's: it goes with it. */
    rc_server_teardown_io(s);
    return NULL;
}

int rc_workers_start(struct rc_server *s)
{
    struct rc_workers *wk = s->wk;
    int err = 0;

    for (int i = 1; i < wk->n; i++) {
        int e = pthread_create(&wk->threads[i], NULL, worker_main, wk->w[i]);
        if (e) {
            rc_log(&s->log, RC_LOG_WARNING, "workers: cannot start worker %d: %s", i, strerror(e));
            err = -e;
            break;
        }
        wk->nthreads++;
    }
    pthread_mutex_lock(&wk->mu);
    while (wk->nready < wk->nthreads)
        pthread_cond_wait(&wk->cv, &wk->mu);
    if (!err)
        err = wk->failed;
    if (err) {
        wk->failed = err;
        wk->go = true; /* they tear down and end */
        pthread_cond_broadcast(&wk->cv);
    }
    pthread_mutex_unlock(&wk->mu);
    return err;
}

/* Joins the worker threads (after a run, or to end threads never run). */
static void join_all(struct rc_server *s)
{
    struct rc_workers *wk = s->wk;

    pthread_mutex_lock(&wk->mu);
    if (!wk->go) {
        /* Never run: they stop at once. */
        for (int i = 1; i < wk->n; i++)
            atomic_store(&wk->w[i]->stop_requested, true);
        atomic_store(&wk->stop_now, true);
        wk->go = true;
        pthread_cond_broadcast(&wk->cv);
    }
    pthread_mutex_unlock(&wk->mu);
    for (int i = 1; i <= wk->nthreads; i++)
        pthread_join(wk->threads[i], NULL);
    wk->nthreads = 0;
}

void rc_workers_new(struct rc_server *s)
{
    int n = (int)s->cfg.workers;
    struct rc_workers *wk;

    if (n <= 1)
        return;
    wk = rc_xcalloc(1, sizeof(*wk));
    wk->n = n;
    atomic_init(&wk->next_id, 1);
    atomic_init(&wk->nclients, 0);
    atomic_init(&wk->quiet, 0);
    atomic_init(&wk->stop_now, false);
    atomic_init(&wk->by_user, false);
    pthread_mutex_init(&wk->mu, NULL);
    pthread_cond_init(&wk->cv, NULL);
    wk->w[0] = s;
    s->wk = wk;
    s->widx = 0;
    rc_worker_state_new(s);
    for (int i = 1; i < n; i++) {
        struct rc_server *w = rc_server_new_worker(s, i);
        wk->w[i] = w;
    }
}

int rc_workers_run(struct rc_server *s)
{
    struct rc_workers *wk = s->wk;

    pthread_mutex_lock(&wk->mu);
    wk->go = true;
    pthread_cond_broadcast(&wk->cv);
    pthread_mutex_unlock(&wk->mu);
    rc_server_loop(s);
    join_all(s);
    return 0;
}

void rc_workers_request_stop(struct rc_server *s, bool now)
{
    struct rc_workers *wk = s->wk;

    if (!wk) {
        atomic_store_explicit(&s->stop_requested, true, memory_order_relaxed);
        return;
    }
    if (now)
        atomic_store(&wk->stop_now, true);
    for (int i = 0; i < wk->n; i++)
        atomic_store_explicit(&wk->w[i]->stop_requested, true, memory_order_relaxed);
}

void rc_workers_free(struct rc_server *s)
{
    struct rc_workers *wk = s->wk;

    if (!wk)
        return;
    join_all(s);
    wk->freeing = true;
    /* Every thread has stopped: what is still in flight is dropped. */
    for (int i = 0; i < wk->n; i++)
        discard_posts(wk->w[i]->ws);
    for (int i = 0; i < wk->n; i++) {
        struct rc_wstate *ws = wk->w[i]->ws;
        while (ws->gathers) {
            struct rc_gather *g = ws->gathers;
            ws->gathers = g->next;
            gather_free(g);
        }
    }
    for (int i = 1; i < wk->n; i++)
        rc_server_free_worker(wk->w[i]);
}
