/* mdata.c -- market-data extensions: last value, conflation, rate caps, sequence and resume.
 *
 * Channels matching an mdata rule get a struct rc_mchan, created on their
 * first publish (or RC.RESUME) and kept in a table plus an LRU list ordered
 * by last publish; the list is what mdata-max-channels and mdata-max-memory
 * evict from. State is data, not wire bytes: a channel with "last" or
 * "history" copies each payload once into an arena of its own, and the last
 * value and every history entry are references to that copy (with the
 * sequence number it got). A snapshot or a replay encodes the stored payload
 * for the receiving subscriber's wire format through the engine's codec
 * table, so any format the server speaks gets the same state. Live fan-out
 * encodes each variant it needs ([format][with sequence]) at most once per
 * publish, into the shared frame arena, which keeps subscribers' queues
 * mergeable.
 *
 * SUBSCRIBE is atomic with respect to publishers because an engine runs on
 * one thread: the caller queues the confirmation, then the last value, and
 * any later publish lands behind both -- no gap, no duplicate.
 *
 * Slow consumers. A delivery on a channel whose rule says policy=conflate or
 * policy=drop is diverted once the client's queue holds mdata-queue-soft
 * bytes: the client enters an "episode". The byte queue itself is never
 * edited (its entries may be merged with others and partly in flight);
 * instead the subscriber gets a side table {channel (or pattern+channel) ->
 * newest pending frame}, so its memory is O(channels), not O(backlog). Under
 * policy=drop, or once the pending frames pass mdata-pending-max, messages
 * are dropped and counted. When the kernel has drained the queue below
 * mdata-queue-low, the episode ends: a notice (a normal message on channel
 * __ringcast__:notice, "conflated=<n> dropped=<n>") is queued, then the
 * pending frames in the order their channels first fell behind. Clients
 * that never pass the soft bound never touch the side table, and channels
 * without a rule never reach this file.
 *
 * Rate caps (rate=<n>) reuse the side table: a delivery less than 1000/n ms
 * after the previous one to the same client on the same channel becomes
 * that channel's pending frame (replacing an older one), and the cron
 * flushes pending frames whose time has come.
 *
 * Sequences: each sequenced channel has an epoch (unique per channel state:
 * a server restart, RC.DEL, eviction or a change of its rule gives a new
 * one) and a sequence number starting at 1. RC.RESUME <chan> <epoch> <seq>
 * replays what the history ring still holds after <seq>, or says "resync".
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "mdata.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "engine_int.h"
#include "glob.h"

#define TTL_SWEEP_MS 1000 /* how often expired last values are swept */
#define RATE_GC_MS   2000 /* idle rate-cap entries are forgotten after this */

struct hist {
    uint64_t seq;
    struct rc_ref p; /* the payload */
};

struct rc_mchan {
    char *name;
    size_t len;
    struct rc_mdata_rule r; /* copy of the rule; r.pattern is not used */
    uint64_t epoch, seq;
    struct rc_ref last; /* payload of the last message; slab NULL = none */
    uint64_t last_seq;  /* its sequence number (0 when the channel has none) */
    uint64_t last_ms;   /* when last was set */
    struct hist *ring;  /* history, r.history entries */
    uint32_t hhead, hn;
    uint64_t bytes;               /* payload bytes held */
    struct rc_mchan *prev, *next; /* LRU: head = least recently published */
};

struct rc_mdata {
    struct rc_dict *chans;
    struct rc_mchan *head, *tail;
    struct rc_arena arena; /* stored payloads (last values and history) */
    uint64_t next_epoch;
    uint64_t last_sweep_ms;
    struct rc_msink *sinks; /* every sink with a side table */
    uint64_t nsinks;
    struct rc_buf key;
    struct rc_mdata_stats st;
};

/* One side-table entry of a subscriber. */
struct pend {
    struct rc_ref f;      /* pending frame; slab NULL = none */
    uint64_t last_ms;     /* last delivery on this key (rate cap) */
    uint32_t interval_ms; /* rate cap interval, 0 = none */
    bool listed;          /* on the pending list */
    struct pend *next;    /* pending list, in the order keys fell behind */
    char *key;            /* own copy of the table key */
    size_t klen;
};

struct rc_msink {
    struct rc_sink *k;
    struct rc_msink *prev, *next; /* e->md->sinks */
    bool seqmode;
    bool episode; /* over the soft bound: conflating/dropping */
    struct rc_dict *tab;
    struct pend *phead, *ptail;
    uint64_t pending_bytes;
    uint64_t conflated, dropped, rate_limited, episodes;
    uint64_t ep_conflated, ep_dropped;
};

/* ---- Helpers ---- */

static const struct rc_mdata_rule *match_rule(const struct rc_engine *e, const char *chan,
                                              size_t clen)
{
    for (int i = 0; i < e->mdcfg->nrules; i++) {
        const struct rc_mdata_rule *r = &e->mdcfg->rules[i];
        if (rc_glob_match(r->pattern, strlen(r->pattern), chan, clen))
            return r;
    }
    return NULL;
}

bool rc_mdata_applies(const struct rc_engine *e, const char *chan, size_t clen)
{
    return e->mdcfg && e->mdcfg->nrules > 0 && match_rule(e, chan, clen) != NULL;
}

static void ref_drop(struct rc_ref *f)
{
    if (f->slab)
        rc_slab_unref(f->slab);
    f->slab = NULL;
}

static void ref_take(struct rc_ref *dst, const struct rc_ref *src)
{
    rc_slab_ref(src->slab);
    *dst = *src;
}

void rc_mdata_key(struct rc_buf *b, const char *pat, size_t plen, const char *chan, size_t clen)
{
    b->len = 0;
    if (pat) {
        uint32_t l = (uint32_t)plen;
        rc_buf_appendc(b, 'p');
        rc_buf_append(b, &l, sizeof(l));
        rc_buf_append(b, pat, plen);
    } else {
        rc_buf_appendc(b, 'c');
    }
    rc_buf_append(b, chan, clen);
}

bool rc_mdata_can_resume(uint64_t epoch, uint64_t last, uint64_t cur_epoch, uint64_t cur_seq,
                         uint64_t hist_n)
{
    if (epoch != cur_epoch || last > cur_seq)
        return false;
    /* The ring holds cur_seq - hist_n + 1 .. cur_seq; the client needs last + 1. */
    return cur_seq - last <= hist_n;
}

/* ---- The engine's state ---- */

void rc_mdata_init(struct rc_engine *e)
{
    struct rc_mdata *md = rc_xcalloc(1, sizeof(*md));

    md->chans = rc_dict_new();
    rc_arena_init(&md->arena, &e->pool);
    md->next_epoch = rc_wall_us();
    e->md = md;
}

static void chan_free(struct rc_mdata *md, struct rc_mchan *mc)
{
    if (mc->last.slab)
        md->st.last_values--;
    ref_drop(&mc->last);
    for (uint32_t i = 0; i < mc->hn; i++)
        ref_drop(&mc->ring[(mc->hhead + i) % mc->r.history].p);
    md->st.bytes -= mc->bytes;
    md->st.channels--;
    if (mc->prev)
        mc->prev->next = mc->next;
    else
        md->head = mc->next;
    if (mc->next)
        mc->next->prev = mc->prev;
    else
        md->tail = mc->prev;
    rc_dict_del(md->chans, mc->name, mc->len);
    free(mc->ring);
    free(mc->name);
    free(mc);
}

void rc_mdata_free(struct rc_engine *e)
{
    struct rc_mdata *md = e->md;

    if (!md)
        return;
    while (md->sinks)
        rc_mdata_sink_free(e, md->sinks->k);
    while (md->head)
        chan_free(md, md->head);
    rc_dict_free(md->chans);
    rc_arena_free(&md->arena);
    rc_buf_free(&md->key);
    free(md);
    e->md = NULL;
}

const struct rc_mdata_stats *rc_mdata_stats(const struct rc_engine *e)
{
    return &e->md->st;
}

static void drop_last(struct rc_mdata *md, struct rc_mchan *mc)
{
    if (!mc->last.slab)
        return;
    mc->bytes -= mc->last.len;
    md->st.bytes -= mc->last.len;
    md->st.last_values--;
    ref_drop(&mc->last);
}

static struct rc_mchan *chan_new(struct rc_mdata *md, const char *chan, size_t clen,
                                 const struct rc_mdata_rule *r)
{
    struct rc_mchan *mc = rc_xcalloc(1, sizeof(*mc));

    mc->name = rc_xmemdup(chan, clen);
    mc->len = clen;
    mc->r = *r;
    mc->r.pattern = NULL;
    mc->epoch = md->next_epoch++;
    if (r->history)
        mc->ring = rc_xcalloc(r->history, sizeof(*mc->ring));
    rc_dict_add(md->chans, chan, clen, mc);
    mc->prev = md->tail;
    if (md->tail)
        md->tail->next = mc;
    else
        md->head = mc;
    md->tail = mc;
    md->st.channels++;
    return mc;
}

static void lru_touch(struct rc_mdata *md, struct rc_mchan *mc)
{
    if (md->tail == mc)
        return;
    if (mc->prev)
        mc->prev->next = mc->next;
    else
        md->head = mc->next;
    mc->next->prev = mc->prev;
    mc->prev = md->tail;
    mc->next = NULL;
    md->tail->next = mc;
    md->tail = mc;
}

/* Existing state of chan, or new state when create and a rule matches. */
static struct rc_mchan *chan_get(struct rc_engine *e, const char *chan, size_t clen, bool create)
{
    struct rc_mchan *mc = rc_dict_get(e->md->chans, chan, clen);
    const struct rc_mdata_rule *r;

    if (mc || !create || !e->mdcfg)
        return mc;
    r = match_rule(e, chan, clen);
    return r ? chan_new(e->md, chan, clen, r) : NULL;
}

static bool expired(const struct rc_mchan *mc, uint64_t now)
{
    return mc->last.slab && mc->r.ttl_ms && now - mc->last_ms >= mc->r.ttl_ms;
}

static void expire_check(struct rc_mdata *md, struct rc_mchan *mc, uint64_t now)
{
    if (expired(mc, now)) {
        drop_last(md, mc);
        md->st.expired++;
    }
}

/* Evicts least recently published states (never keep) until within bounds. */
static void enforce_bounds(struct rc_engine *e, struct rc_mchan *keep)
{
    struct rc_mdata *md = e->md;
    const struct rc_mdata_cfg *cfg = e->mdcfg;

    while (md->head && (md->st.channels > cfg->max_channels ||
                        (cfg->max_memory && md->st.bytes > cfg->max_memory))) {
        struct rc_mchan *victim = md->head == keep ? keep->next : md->head;
        if (!victim)
            break;
        md->st.evictions++;
        chan_free(md, victim);
    }
}

void rc_mdata_reconfigure(struct rc_engine *e)
{
    struct rc_mdata *md = e->md;
    struct rc_mchan *mc, *next;

    for (mc = md->head; mc; mc = next) {
        const struct rc_mdata_rule *r = match_rule(e, mc->name, mc->len);
        next = mc->next;
        if (!r || r->seq != mc->r.seq || r->history != mc->r.history) {
            /* Gone, or a different sequence: the state (and epoch) restarts. */
            chan_free(md, mc);
            continue;
        }
        mc->r = *r;
        mc->r.pattern = NULL;
        if (!r->last)
            drop_last(md, mc);
    }
    enforce_bounds(e, NULL);
}

/* ---- Frames ---- */

/* The frame of p's message for format fmt, with or without the sequence
 * stamp: encoded on first use, at most once per publish. */
static const struct rc_ref *variant(struct rc_engine *e, struct rc_mdata_pub *p, uint8_t fmt,
                                    bool seq)
{
    struct rc_ref *f = &p->v[fmt][seq];

    if (!f->slab) {
        struct rc_msgview m = {.kind = RC_MSG_MESSAGE,
                               .chan = p->chan,
                               .clen = p->clen,
                               .payload = p->payload,
                               .len = p->len,
                               .has_seq = seq,
                               .epoch = p->ch->epoch,
                               .seq = p->ch->seq};
        rc_engine_encode(e, fmt, &m, f);
    }
    return f;
}

/* Encodes a stored message of mc (payload pl, sequence seq) for k and queues
 * it, through the output limit like any delivery. */
static void push_stored(struct rc_engine *e, struct rc_sink *k, const struct rc_mchan *mc,
                        const struct rc_ref *pl, uint64_t seq)
{
    struct rc_msgview m = {.kind = RC_MSG_MESSAGE,
                           .chan = mc->name,
                           .clen = mc->len,
                           .payload = pl->slab->data + pl->off,
                           .len = pl->len,
                           .has_seq = mc->r.seq && k->md && k->md->seqmode,
                           .epoch = mc->epoch,
                           .seq = seq};
    struct rc_ref f;

    rc_engine_encode(e, k->fmt, &m, &f);
    k->ops->push(k, f.slab, f.off, f.len, true);
    rc_slab_unref(f.slab);
}

/* ---- Publish ---- */

struct rc_mdata_pub *rc_mdata_begin(struct rc_engine *e, struct rc_mdata_pub *p, const char *chan,
                                    size_t clen, const char *payload, size_t len,
                                    struct rc_stamp *st)
{
    struct rc_mchan *mc = chan_get(e, chan, clen, true);

    if (!mc)
        return NULL;
    if (st && st->set && mc->r.seq) {
        /* A copy of the owner's state: number the message as it did. */
        mc->epoch = st->epoch;
        mc->seq = st->seq - 1;
    }
    lru_touch(e->md, mc);
    memset(p, 0, sizeof(*p));
    p->ch = mc;
    p->chan = chan;
    p->clen = clen;
    p->payload = payload;
    p->len = len;
    if (mc->r.seq)
        mc->seq++;
    if (st) {
        st->mdata = true;
        if (mc->r.seq && !st->set) {
            st->epoch = mc->epoch;
            st->seq = mc->seq;
            st->set = true;
        }
    }
    if (mc->r.last || mc->r.rate || mc->r.ttl_ms)
        p->now_ms = rc_now_ms();
    return p;
}

void rc_mdata_end(struct rc_engine *e, struct rc_mdata_pub *p)
{
    struct rc_mdata *md = e->md;
    struct rc_mchan *mc = p->ch;
    struct rc_ref pl = {0};

    if (mc->r.last || mc->r.history) {
        /* One copy of the payload, shared by the last value and the history. */
        rc_arena_copy(&md->arena, p->payload, p->len, &pl.slab, &pl.off);
        pl.len = (uint32_t)p->len;
        rc_slab_ref(pl.slab);
    }
    if (mc->r.last) {
        drop_last(md, mc);
        ref_take(&mc->last, &pl);
        mc->last_seq = mc->seq;
        mc->last_ms = p->now_ms;
        mc->bytes += pl.len;
        md->st.bytes += pl.len;
        md->st.last_values++;
    }
    if (mc->r.history) {
        struct hist *h;
        if (mc->hn == mc->r.history) {
            h = &mc->ring[mc->hhead];
            mc->bytes -= h->p.len;
            md->st.bytes -= h->p.len;
            ref_drop(&h->p);
            mc->hhead = (mc->hhead + 1) % mc->r.history;
            mc->hn--;
        }
        h = &mc->ring[(mc->hhead + mc->hn) % mc->r.history];
        h->seq = mc->seq;
        ref_take(&h->p, &pl);
        mc->hn++;
        mc->bytes += pl.len;
        md->st.bytes += pl.len;
    }
    ref_drop(&pl);
    for (int v = 0; v < e->ncodecs; v++) {
        ref_drop(&p->v[v][0]);
        ref_drop(&p->v[v][1]);
    }
    enforce_bounds(e, mc);
}

/* ---- Per-subscriber side table ---- */

static struct rc_msink *sink_state(struct rc_engine *e, struct rc_sink *k)
{
    struct rc_mdata *md = e->md;
    struct rc_msink *cs = k->md;

    if (cs)
        return cs;
    cs = k->md = rc_xcalloc(1, sizeof(*cs));
    cs->k = k;
    cs->tab = rc_dict_new();
    cs->next = md->sinks;
    if (md->sinks)
        md->sinks->prev = cs;
    md->sinks = cs;
    md->nsinks++;
    return cs;
}

static struct pend *pend_get(struct rc_msink *cs, const struct rc_buf *key)
{
    struct pend *pe = rc_dict_get(cs->tab, key->p, key->len);

    if (pe)
        return pe;
    pe = rc_xcalloc(1, sizeof(*pe));
    pe->key = rc_xmemdup(key->p, key->len);
    pe->klen = key->len;
    rc_dict_add(cs->tab, key->p, key->len, pe);
    return pe;
}

static void pend_free(struct rc_msink *cs, struct pend *pe)
{
    rc_dict_del(cs->tab, pe->key, pe->klen);
    free(pe->key);
    free(pe);
}

/* Makes f the pending frame of pe; returns true when it replaced one. */
static bool pend_set(struct rc_msink *cs, struct pend *pe, const struct rc_ref *f)
{
    bool replaced = pe->f.slab != NULL;

    rc_slab_ref(f->slab);
    if (replaced) {
        cs->pending_bytes -= pe->f.len;
        rc_slab_unref(pe->f.slab);
    }
    pe->f = *f;
    cs->pending_bytes += f->len;
    if (!pe->listed) {
        pe->listed = true;
        pe->next = NULL;
        if (cs->ptail)
            cs->ptail->next = pe;
        else
            cs->phead = pe;
        cs->ptail = pe;
    }
    return replaced;
}

/* Is k still subscribed to what key names? */
static bool key_subscribed(const struct rc_sink *k, const char *key, size_t klen)
{
    uint32_t pl;

    if (key[0] == 'c')
        return rc_sink_has(k, RC_SUB_CHANNEL, key + 1, klen - 1);
    memcpy(&pl, key + 1, sizeof(pl));
    return rc_sink_has(k, RC_SUB_PATTERN, key + 1 + sizeof(pl), pl);
}

/* Pushes without the output-limit check: what is flushed here was already
 * bounded by mdata-pending-max, and a check could detach k (and free its
 * state) in the middle of the walk. */
static void push_raw(struct rc_sink *k, const struct rc_ref *f)
{
    k->ops->push(k, f->slab, f->off, f->len, false);
}

static void send_notice(struct rc_engine *e, struct rc_sink *k, const char *text)
{
    static const char ch[] = RC_MDATA_NOTICE_CHANNEL;
    struct rc_msgview m = {.kind = RC_MSG_MESSAGE,
                           .chan = ch,
                           .clen = sizeof(ch) - 1,
                           .payload = text,
                           .len = strlen(text)};
    struct rc_ref f;

    rc_engine_encode(e, k->fmt, &m, &f);
    push_raw(k, &f);
    rc_slab_unref(f.slab);
    e->md->st.notices++;
}

/* Sends the pending frames that are due; forgets conflation-only entries. */
static void flush_pending(struct rc_sink *k, uint64_t now)
{
    struct rc_msink *cs = k->md;
    struct pend *pe = cs->phead, *prev = NULL, *next;

    for (; pe; pe = next) {
        next = pe->next;
        if (pe->interval_ms && now - pe->last_ms < pe->interval_ms) {
            prev = pe;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            cs->phead = next;
        if (cs->ptail == pe)
            cs->ptail = prev;
        pe->listed = false;
        pe->next = NULL;
        cs->pending_bytes -= pe->f.len;
        if (key_subscribed(k, pe->key, pe->klen))
            push_raw(k, &pe->f);
        ref_drop(&pe->f);
        pe->last_ms = now;
        if (!pe->interval_ms)
            pend_free(cs, pe);
    }
}

static void start_episode(struct rc_engine *e, struct rc_sink *k, struct rc_msink *cs,
                          const struct rc_mchan *mc)
{
    cs->episode = true;
    cs->episodes++;
    e->md->st.slow_events++;
    rc_log(e->log, RC_LOG_NOTICE,
           "Client id=%llu addr=%s fell behind (%llu bytes queued, mdata-queue-soft %llu): "
           "%s channel '%.*s' and the others of its rules",
           (unsigned long long)k->id, k->label ? k->label : "", (unsigned long long)k->q->bytes,
           (unsigned long long)e->mdcfg->queue_soft,
           mc->r.policy == RC_MD_DROP ? "dropping" : "conflating", (int)RC_MIN(mc->len, 64),
           mc->name);
}

static void end_episode(struct rc_engine *e, struct rc_sink *k, uint64_t now)
{
    struct rc_msink *cs = k->md;
    char text[96];

    cs->episode = false;
    if (cs->ep_conflated || cs->ep_dropped) {
        snprintf(text, sizeof(text), "conflated=%llu dropped=%llu",
                 (unsigned long long)cs->ep_conflated, (unsigned long long)cs->ep_dropped);
        send_notice(e, k, text);
    }
    cs->ep_conflated = cs->ep_dropped = 0;
    flush_pending(k, now);
}

void rc_mdata_deliver(struct rc_engine *e, struct rc_mdata_pub *p, struct rc_sink *k,
                      const struct rc_ref *pf, const char *pat, size_t plen)
{
    const struct rc_mchan *mc = p->ch;
    struct rc_msink *cs = k->md;
    struct rc_ref f;
    struct pend *pe;
    bool slow;

    if (k->detached)
        return;
    if (pf)
        f = *pf;
    else
        f = *variant(e, p, k->fmt, cs && cs->seqmode && mc->r.seq);
    slow = mc->r.policy != RC_MD_STREAM &&
           ((cs && cs->episode) || k->q->bytes >= e->mdcfg->queue_soft);
    if (!slow && !mc->r.rate) {
        k->ops->push(k, f.slab, f.off, f.len, true);
        return;
    }
    cs = sink_state(e, k);
    if (slow && !cs->episode)
        start_episode(e, k, cs, mc);
    rc_mdata_key(&e->md->key, pat, plen, p->chan, p->clen);
    pe = pend_get(cs, &e->md->key);
    pe->interval_ms = mc->r.rate ? 1000 / mc->r.rate : 0;
    if (!slow) {
        /* Rate cap only. */
        if (!pe->f.slab && p->now_ms - pe->last_ms >= pe->interval_ms) {
            pe->last_ms = p->now_ms;
            k->ops->push(k, f.slab, f.off, f.len, true);
        } else if (pend_set(cs, pe, &f)) {
            cs->rate_limited++;
            e->md->st.rate_limited++;
        }
        return;
    }
    if (mc->r.policy == RC_MD_DROP ||
        (!pe->f.slab && cs->pending_bytes + f.len > e->mdcfg->pending_max)) {
        cs->dropped++;
        cs->ep_dropped++;
        e->md->st.dropped++;
        return;
    }
    if (pend_set(cs, pe, &f)) {
        cs->conflated++;
        cs->ep_conflated++;
        e->md->st.conflated++;
    }
}

bool rc_mdata_sink_conflate(struct rc_engine *e, struct rc_sink *k)
{
    struct rc_dict_iter it;
    const char *name = NULL;
    size_t nl = 0;
    bool any = false;

    if (k->detached || !e->mdcfg->nrules)
        return false;
    if (k->md && k->md->episode)
        return true;
    /* A pattern subscription counts when its text matches a rule, the
     * usual case of a rule written for the pattern clients use. */
    for (int t = RC_SUB_CHANNEL; t <= RC_SUB_PATTERN && !any; t++) {
        if (!k->subs[t])
            continue;
        rc_dict_iter_init(&it);
        while (rc_dict_next(k->subs[t], &it, &name, &nl, NULL)) {
            const struct rc_mdata_rule *r = match_rule(e, name, nl);
            if (r && r->policy != RC_MD_STREAM) {
                any = true;
                break;
            }
        }
    }
    if (!any)
        return false;
    struct rc_msink *cs = sink_state(e, k);
    cs->episode = true;
    cs->episodes++;
    e->md->st.slow_events++;
    rc_log(e->log, RC_LOG_NOTICE,
           "Client id=%llu addr=%s conflated early, memory is short (%llu bytes queued): "
           "channel '%.*s' and the others of its rules",
           (unsigned long long)k->id, k->label ? k->label : "", (unsigned long long)k->q->bytes,
           (int)RC_MIN(nl, 64), name);
    return true;
}

void rc_mdata_sink_drained(struct rc_engine *e, struct rc_sink *k)
{
    if (!k->md || !k->md->episode || k->q->bytes > e->mdcfg->queue_low || k->detached)
        return;
    end_episode(e, k, rc_now_ms());
}

void rc_mdata_sink_free(struct rc_engine *e, struct rc_sink *k)
{
    struct rc_msink *cs = k->md;
    struct rc_mdata *md = e->md;
    struct rc_dict_iter it;
    const char *key;
    size_t kl;
    void *v;

    if (!cs)
        return;
    rc_dict_iter_init(&it);
    while (rc_dict_next(cs->tab, &it, &key, &kl, &v)) {
        struct pend *pe = v;
        ref_drop(&pe->f);
        free(pe->key);
        free(pe);
    }
    rc_dict_free(cs->tab);
    if (cs->prev)
        cs->prev->next = cs->next;
    else
        md->sinks = cs->next;
    if (cs->next)
        cs->next->prev = cs->prev;
    md->nsinks--;
    free(cs);
    k->md = NULL;
}

void rc_mdata_client_fields(struct rc_engine *e, const struct rc_sink *k, struct rc_buf *b)
{
    const struct rc_msink *cs = k->md;

    if (!e->mdcfg->nrules && !cs)
        return;
    rc_buf_appendf(b,
                   " rc-conflated=%llu rc-dropped=%llu rc-ratelimited=%llu rc-slow=%llu "
                   "rc-pending=%llu rc-seqmode=%d",
                   (unsigned long long)(cs ? cs->conflated : 0),
                   (unsigned long long)(cs ? cs->dropped : 0),
                   (unsigned long long)(cs ? cs->rate_limited : 0),
                   (unsigned long long)(cs ? cs->episodes : 0),
                   (unsigned long long)(cs ? cs->pending_bytes : 0), cs && cs->seqmode ? 1 : 0);
}

void rc_mdata_set_seqmode(struct rc_engine *e, struct rc_sink *k, bool on)
{
    if (on || k->md)
        sink_state(e, k)->seqmode = on;
}

/* Drops the pending entry of key (a fresh snapshot supersedes it). */
static void pend_forget(struct rc_sink *k, const struct rc_buf *key)
{
    struct rc_msink *cs = k->md;
    struct pend *pe = rc_dict_get(cs->tab, key->p, key->len);
    struct pend *x, *prev = NULL;

    if (!pe || !pe->f.slab)
        return;
    for (x = cs->phead; x && x != pe; x = x->next)
        prev = x;
    if (x) {
        if (prev)
            prev->next = pe->next;
        else
            cs->phead = pe->next;
        if (cs->ptail == pe)
            cs->ptail = prev;
    }
    pe->listed = false;
    cs->pending_bytes -= pe->f.len;
    ref_drop(&pe->f);
}

void rc_mdata_snapshot(struct rc_engine *e, struct rc_sink *k, const char *chan, size_t clen)
{
    struct rc_mchan *mc = chan_get(e, chan, clen, false);

    if (!mc)
        return;
    if (k->md) {
        rc_mdata_key(&e->md->key, NULL, 0, chan, clen);
        pend_forget(k, &e->md->key);
    }
    expire_check(e->md, mc, rc_now_ms());
    if (!mc->last.slab)
        return;
    push_stored(e, k, mc, &mc->last, mc->last_seq);
    e->md->st.snapshots++;
}

/* ---- Cron ---- */

void rc_mdata_cron(struct rc_engine *e, uint64_t now)
{
    struct rc_mdata *md = e->md;
    struct rc_msink *cs, *next;

    for (cs = md->sinks; cs; cs = next) {
        struct rc_sink *k = cs->k;
        struct rc_dict_iter it;
        const char *key;
        size_t kl;
        void *v;

        next = cs->next;
        if (k->detached)
            continue;
        if (cs->episode) {
            if (k->q->bytes <= e->mdcfg->queue_low)
                end_episode(e, k, now);
            continue;
        }
        if (cs->phead)
            flush_pending(k, now);
        /* Forget rate-cap entries idle long enough that their cap cannot bite. */
        rc_dict_iter_init(&it);
        while (rc_dict_next(cs->tab, &it, &key, &kl, &v)) {
            struct pend *pe = v;
            if (!pe->f.slab && now - pe->last_ms > RATE_GC_MS)
                pend_free(cs, pe);
        }
    }
    if (md->head && now - md->last_sweep_ms >= TTL_SWEEP_MS) {
        md->last_sweep_ms = now;
        for (struct rc_mchan *mc = md->head; mc; mc = mc->next)
            expire_check(md, mc, now);
    }
}

/* ---- INFO ---- */

void rc_mdata_info_get(struct rc_engine *e, struct rc_mdata_info *mi)
{
    mi->st = e->md->st;
    mi->pending = mi->slow_now = 0;
    for (const struct rc_msink *cs = e->md->sinks; cs; cs = cs->next) {
        mi->pending += cs->pending_bytes;
        mi->slow_now += cs->episode;
    }
}

void rc_mdata_info(const struct rc_mdata_cfg *cfg, const struct rc_mdata_info *mi, struct rc_buf *b)
{
    const struct rc_mdata_stats *st = &mi->st;
    uint64_t pending = mi->pending, slow_now = mi->slow_now;

    rc_buf_appendf(b,
                   "mdata_rules:%d\r\n"
                   "mdata_channels:%llu\r\n"
                   "mdata_last_values:%llu\r\n"
                   "mdata_bytes:%llu\r\n"
                   "mdata_max_memory:%llu\r\n"
                   "mdata_evictions:%llu\r\n"
                   "mdata_expired:%llu\r\n"
                   "mdata_deleted:%llu\r\n"
                   "mdata_snapshots:%llu\r\n"
                   "mdata_conflated:%llu\r\n"
                   "mdata_dropped:%llu\r\n"
                   "mdata_rate_limited:%llu\r\n"
                   "mdata_slow_events:%llu\r\n"
                   "mdata_slow_clients:%llu\r\n"
                   "mdata_pending_bytes:%llu\r\n"
                   "mdata_notices:%llu\r\n"
                   "mdata_replayed:%llu\r\n"
                   "mdata_resyncs:%llu\r\n",
                   cfg->nrules, (unsigned long long)st->channels,
                   (unsigned long long)st->last_values, (unsigned long long)st->bytes,
                   (unsigned long long)cfg->max_memory, (unsigned long long)st->evictions,
                   (unsigned long long)st->expired, (unsigned long long)st->deleted,
                   (unsigned long long)st->snapshots, (unsigned long long)st->conflated,
                   (unsigned long long)st->dropped, (unsigned long long)st->rate_limited,
                   (unsigned long long)st->slow_events, (unsigned long long)slow_now,
                   (unsigned long long)pending, (unsigned long long)st->notices,
                   (unsigned long long)st->replayed, (unsigned long long)st->resyncs);
}

/* ---- Breaks from outside ---- */

size_t rc_mdata_gap(struct rc_engine *e, const char *chan, size_t clen, const char *text)
{
    struct rc_mchan *mc = chan_get(e, chan, clen, true);
    const struct rc_chan *ch;
    size_t told = 0;

    if (!mc || !mc->r.seq)
        return 0;
    for (uint32_t i = 0; i < mc->hn; i++) {
        struct hist *h = &mc->ring[(mc->hhead + i) % mc->r.history];
        mc->bytes -= h->p.len;
        e->md->st.bytes -= h->p.len;
        ref_drop(&h->p);
    }
    mc->hhead = mc->hn = 0;
    mc->epoch = e->md->next_epoch++;
    mc->seq = 0;
    mc->last_seq = 0;
    ch = rc_dict_get(e->tab[RC_SUB_CHANNEL], chan, clen);
    for (uint32_t i = 0; ch && i < ch->n; i++) {
        struct rc_sink *k = ch->subs[i].k;
        if (k->detached)
            continue;
        send_notice(e, k, text);
        told++;
    }
    return told;
}

/* ---- Queries and RC.* support ---- */

bool rc_mdata_last(struct rc_engine *e, const char *chan, size_t clen, const char **p, size_t *len)
{
    struct rc_mchan *mc = chan_get(e, chan, clen, false);

    if (mc)
        expire_check(e->md, mc, rc_now_ms());
    if (!mc || !mc->last.slab)
        return false;
    *p = mc->last.slab->data + mc->last.off;
    *len = mc->last.len;
    return true;
}

size_t rc_mdata_lastp(struct rc_engine *e, const char *pat, size_t plen, uint64_t count,
                      void (*fn)(void *arg, const char *chan, size_t clen, const char *p,
                                 size_t len),
                      void *arg)
{
    uint64_t now = rc_now_ms();
    size_t n = 0;

    if (count > e->mdcfg->lastp_max)
        count = e->mdcfg->lastp_max;
    for (struct rc_mchan *mc = e->md->tail; mc && n < count; mc = mc->prev) {
        if (!rc_glob_match(pat, plen, mc->name, mc->len))
            continue;
        expire_check(e->md, mc, now);
        if (!mc->last.slab)
            continue;
        fn(arg, mc->name, mc->len, mc->last.slab->data + mc->last.off, mc->last.len);
        n++;
    }
    return n;
}

bool rc_mdata_del(struct rc_engine *e, const char *chan, size_t clen)
{
    struct rc_mchan *mc = chan_get(e, chan, clen, false);

    if (!mc)
        return false;
    chan_free(e->md, mc);
    e->md->st.deleted++;
    return true;
}

int rc_mdata_seq_state(struct rc_engine *e, const char *chan, size_t clen, uint64_t epoch,
                       uint64_t last, uint64_t *cur_epoch, uint64_t *cur_seq, bool *can_resume)
{
    struct rc_mchan *mc = chan_get(e, chan, clen, true);

    if (!mc || !mc->r.seq)
        return -ENOENT;
    *cur_epoch = mc->epoch;
    *cur_seq = mc->seq;
    *can_resume = rc_mdata_can_resume(epoch, last, mc->epoch, mc->seq, mc->hn);
    return 0;
}

void rc_mdata_resume_send(struct rc_engine *e, struct rc_sink *k, const char *chan, size_t clen,
                          bool can_resume, uint64_t last)
{
    struct rc_mchan *mc = chan_get(e, chan, clen, false);

    if (!mc)
        return;
    if (!can_resume) {
        e->md->st.resyncs++;
        /* The current value, if kept, is where a resync starts from. */
        rc_mdata_snapshot(e, k, chan, clen);
        return;
    }
    for (uint32_t i = 0; i < mc->hn; i++) {
        const struct hist *h = &mc->ring[(mc->hhead + i) % mc->r.history];
        if (h->seq <= last)
            continue;
        push_stored(e, k, mc, &h->p, h->seq);
        e->md->st.replayed++;
    }
}
