/* mdata.c -- market-data extensions: last value, conflation, rate caps, sequence and resume.
 *
 * Channels matching an "mdata-rule" pattern get a struct rc_mchan, created on
 * their first PUBLISH (or RC.RESUME) and kept in a table plus an LRU list
 * ordered by last publish; the list is what mdata-max-channels and
 * mdata-max-memory evict from. A channel with "last", "seq" or "history" has
 * each message encoded once more, into the shared frame arena, in one
 * canonical form: the RESP2 array, with two extra elements (epoch and
 * sequence) when the channel is sequenced:
 *
 *     *5\r\n $7 message $<n> chan $<n> payload :<epoch>\r\n :<seq>\r\n
 *
 * The last value and the history ring are references to that frame
 * (rc_slab_ref), never copies. Every other form of the same message is the
 * same bytes behind another 4-byte header ("*3\r\n", ">3\r\n", "*5\r\n",
 * ">5\r\n", kept in a slab of our own) and, for the 3-element forms, without
 * the sequence tail -- so a snapshot or a replay is two queue references and
 * no encoding. Live fan-out instead encodes each variant it needs at most
 * once per publish into a single contiguous frame, which keeps subscribers'
 * queues mergeable.
 *
 * SUBSCRIBE is atomic with respect to publishers because the loop is single
 * threaded: the handler queues the confirmation, then the cached frame, and
 * any later publish lands behind both -- no gap, no duplicate.
 *
 * Slow consumers. A delivery on a channel whose rule says policy=conflate or
 * policy=drop is diverted once the client's queue holds mdata-queue-soft
 * bytes: the client enters an "episode". The byte queue itself is never
 * edited (its entries may be merged with others and partly in flight);
 * instead the client gets a side table {channel (or pattern+channel) ->
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "glob.h"

#define HDR_PLAIN2 0 /* "*3\r\n" */
#define HDR_PLAIN3 1 /* ">3\r\n" */
#define HDR_SEQ2   2 /* "*5\r\n" */
#define HDR_SEQ3   3 /* ">5\r\n" */
#define HDR_LEN    4

#define TTL_SWEEP_MS 1000 /* how often expired last values are swept */
#define RATE_GC_MS   2000 /* idle rate-cap entries are forgotten after this */

struct hist {
    uint64_t seq;
    struct rc_ref f; /* canonical frame */
    uint32_t tail;   /* bytes of its ":epoch\r\n:seq\r\n" tail */
};

struct rc_mchan {
    char *name;
    size_t len;
    struct rc_mdata_rule r; /* copy of the rule; r.pattern is not used */
    uint64_t epoch, seq;
    struct rc_ref last; /* canonical frame of the last message; slab NULL = none */
    uint32_t last_tail; /* bytes of the ":epoch\r\n:seq\r\n" tail in last, 0 = none */
    uint64_t last_ms;   /* when last was set */
    struct hist *ring;  /* history, r.history entries */
    uint32_t hhead, hn;
    uint64_t bytes;               /* frame bytes held */
    struct rc_mchan *prev, *next; /* LRU: head = least recently published */
};

struct rc_mdata {
    struct rc_dict *chans;
    struct rc_mchan *head, *tail;
    struct rc_arena arena; /* canonical frames (kept as last values and history) */
    struct rc_arena hdr_arena;
    struct rc_slab *hdr; /* the four headers, HDR_LEN bytes each */
    uint32_t hdr_off;
    uint64_t next_epoch;
    uint64_t last_sweep_ms;
    uint64_t nconns; /* connections with a struct rc_mconn */
    struct rc_buf key;
    struct rc_mdata_stats st;
};

/* One side-table entry of a client. */
struct pend {
    struct rc_ref f;      /* pending frame; slab NULL = none */
    uint64_t last_ms;     /* last delivery on this key (rate cap) */
    uint32_t interval_ms; /* rate cap interval, 0 = none */
    bool listed;          /* on the pending list */
    struct pend *next;    /* pending list, in the order keys fell behind */
    char *key;            /* own copy of the table key */
    size_t klen;
};

struct rc_mconn {
    bool seqmode;
    bool episode; /* over the soft bound: conflating/dropping */
    struct rc_dict *tab;
    struct pend *phead, *ptail;
    uint64_t pending_bytes;
    uint64_t conflated, dropped, rate_limited, episodes;
    uint64_t ep_conflated, ep_dropped;
};

/* ---- Helpers ---- */

static size_t u64_digits(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static const struct rc_mdata_rule *match_rule(const struct rc_server *s, const char *chan,
                                              size_t clen)
{
    for (int i = 0; i < s->cfg.nmdata_rules; i++) {
        const struct rc_mdata_rule *r = &s->cfg.mdata_rules[i];
        if (rc_glob_match(r->pattern, strlen(r->pattern), chan, clen))
            return r;
    }
    return NULL;
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

/* ---- Global state ---- */

void rc_mdata_init(struct rc_server *s)
{
    struct rc_mdata *md = rc_xcalloc(1, sizeof(*md));
    static const char hdrs[] = "*3\r\n>3\r\n*5\r\n>5\r\n";
    char *p;

    md->chans = rc_dict_new();
    rc_arena_init(&md->arena);
    rc_arena_init(&md->hdr_arena);
    p = rc_arena_alloc(&md->hdr_arena, 4 * HDR_LEN, &md->hdr, &md->hdr_off);
    memcpy(p, hdrs, 4 * HDR_LEN);
    rc_slab_ref(md->hdr);
    md->next_epoch = rc_wall_us();
    s->md = md;
}

static void chan_free(struct rc_mdata *md, struct rc_mchan *mc)
{
    if (mc->last.slab)
        md->st.last_values--;
    ref_drop(&mc->last);
    for (uint32_t i = 0; i < mc->hn; i++)
        ref_drop(&mc->ring[(mc->hhead + i) % mc->r.history].f);
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

void rc_mdata_free(struct rc_server *s)
{
    struct rc_mdata *md = s->md;

    if (!md)
        return;
    while (md->head)
        chan_free(md, md->head);
    rc_dict_free(md->chans);
    rc_slab_unref(md->hdr);
    rc_arena_free(&md->hdr_arena);
    rc_arena_free(&md->arena);
    rc_buf_free(&md->key);
    free(md);
    s->md = NULL;
}

const struct rc_mdata_stats *rc_mdata_stats(const struct rc_server *s)
{
    static const struct rc_mdata_stats none;
    return s->md ? &s->md->st : &none;
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
static struct rc_mchan *chan_get(struct rc_server *s, const char *chan, size_t clen, bool create)
{
    struct rc_mchan *mc;
    const struct rc_mdata_rule *r;

    if (!s->md)
        return NULL;
    mc = rc_dict_get(s->md->chans, chan, clen);
    if (mc || !create)
        return mc;
    r = match_rule(s, chan, clen);
    return r ? chan_new(s->md, chan, clen, r) : NULL;
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
static void enforce_bounds(struct rc_server *s, struct rc_mchan *keep)
{
    struct rc_mdata *md = s->md;

    while (md->head && (md->st.channels > s->cfg.mdata_max_channels ||
                        (s->cfg.mdata_max_memory && md->st.bytes > s->cfg.mdata_max_memory))) {
        struct rc_mchan *victim = md->head == keep ? keep->next : md->head;
        if (!victim)
            break;
        md->st.evictions++;
        chan_free(md, victim);
    }
}

void rc_mdata_reconfigure(struct rc_server *s)
{
    struct rc_mdata *md = s->md;
    struct rc_mchan *mc, *next;

    if (!md)
        return;
    for (mc = md->head; mc; mc = next) {
        const struct rc_mdata_rule *r = match_rule(s, mc->name, mc->len);
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
    enforce_bounds(s, NULL);
}

/* ---- Frames ---- */

/* Encodes p's message as variant v (see struct rc_mdata_pub). The canonical
 * frame goes to an arena of its own: cached frames then pin only slabs of
 * cached frames, and the live variants stay contiguous in the frame arena,
 * so subscribers' queue entries keep merging. */
static struct rc_ref *variant(struct rc_server *s, struct rc_mdata_pub *p, int v)
{
    struct rc_ref *f = &p->v[v];
    const struct rc_mchan *mc = p->ch;
    int proto = (v & 1) ? 3 : 2;
    struct rc_arena *a = v == p->canon ? &s->md->arena : &s->frames;

    if (f->slab)
        return f;
    if (v & 2) {
        size_t base =
            rc_resp_msg_len(proto, "message", NULL, 0, p->chan, p->clen, p->payload, p->len);
        size_t tail = 1 + u64_digits(mc->epoch) + 2 + 1 + u64_digits(mc->seq) + 2;
        char t[48];
        char *w = rc_arena_alloc(a, base + tail, &f->slab, &f->off);
        rc_resp_msg_write(w, proto, "message", NULL, 0, p->chan, p->clen, p->payload, p->len);
        w[1] = '5';
        snprintf(t, sizeof(t), ":%llu\r\n:%llu\r\n", (unsigned long long)mc->epoch,
                 (unsigned long long)mc->seq);
        memcpy(w + base, t, tail);
        f->len = (uint32_t)(base + tail);
    } else {
        size_t n = rc_resp_msg_len(proto, "message", NULL, 0, p->chan, p->clen, p->payload, p->len);
        char *w = rc_arena_alloc(a, n, &f->slab, &f->off);
        rc_resp_msg_write(w, proto, "message", NULL, 0, p->chan, p->clen, p->payload, p->len);
        f->len = (uint32_t)n;
    }
    rc_slab_ref(f->slab);
    return f;
}

/* Queues a cached canonical frame (tail: its sequence tail, 0 = none) as the
 * variant for (proto, seq): the frame itself when that is the variant, else
 * one of our headers plus the body -- no encoding. Goes through the output
 * limit like any push. */
static void push_cached(struct rc_server *s, struct rc_conn *c, const struct rc_ref *f,
                        uint32_t tail, int proto, bool seq)
{
    bool with_seq = seq && tail;
    int h = (proto == 3 ? 1 : 0) | (with_seq ? 2 : 0);

    if (h == (tail ? HDR_SEQ2 : HDR_PLAIN2)) {
        rc_conn_push_frame(s, c, f->slab, f->off, f->len);
        return;
    }
    rc_conn_push_frame(s, c, s->md->hdr, s->md->hdr_off + (uint32_t)h * HDR_LEN, HDR_LEN);
    rc_conn_push_frame(s, c, f->slab, f->off + HDR_LEN, f->len - HDR_LEN - (with_seq ? 0 : tail));
}

/* Reads the bulk header "$<n>\r\n" at f[*pos]; returns n and moves *pos to the data. */
static size_t bulk_at(const char *f, size_t *pos)
{
    size_t q = *pos + 1, n = 0;

    while (f[q] != '\r')
        n = n * 10 + (size_t)(f[q++] - '0');
    *pos = q + 2;
    return n;
}

/* The payload of the cached last frame: after the kind and the channel. */
static const char *frame_payload(const struct rc_mchan *mc, size_t *len)
{
    const char *f = mc->last.slab->data + mc->last.off;
    size_t pos = HDR_LEN;

    for (int k = 0; k < 2; k++) {
        size_t n = bulk_at(f, &pos);
        pos += n + 2;
    }
    *len = bulk_at(f, &pos);
    return f + pos;
}

/* ---- Publish ---- */

struct rc_mdata_pub *rc_mdata_begin(struct rc_server *s, struct rc_mdata_pub *p, const char *chan,
                                    size_t clen, const char *payload, size_t len)
{
    struct rc_mchan *mc = chan_get(s, chan, clen, true);

    if (!mc)
        return NULL;
    lru_touch(s->md, mc);
    memset(p, 0, sizeof(*p));
    p->ch = mc;
    p->chan = chan;
    p->clen = clen;
    p->payload = payload;
    p->len = len;
    if (mc->r.seq)
        mc->seq++;
    if (mc->r.last || mc->r.rate || mc->r.ttl_ms)
        p->now_ms = rc_now_ms();
    p->canon = (mc->r.last || mc->r.seq) ? (mc->r.seq ? 2 : 0) : -1;
    if (p->canon >= 0)
        variant(s, p, p->canon);
    return p;
}

void rc_mdata_end(struct rc_server *s, struct rc_mdata_pub *p)
{
    struct rc_mdata *md = s->md;
    struct rc_mchan *mc = p->ch;
    const struct rc_ref *canon = &p->v[mc->r.seq ? 2 : 0];

    if (canon->slab) {
        uint32_t tail = mc->r.seq
                            ? canon->len - (uint32_t)rc_resp_msg_len(2, "message", NULL, 0, p->chan,
                                                                     p->clen, p->payload, p->len)
                            : 0;
        if (mc->r.last) {
            if (mc->last.slab)
                drop_last(md, mc);
            ref_take(&mc->last, canon);
            mc->last_tail = tail;
            mc->last_ms = p->now_ms;
            mc->bytes += canon->len;
            md->st.bytes += canon->len;
            md->st.last_values++;
        }
        if (mc->r.history) {
            struct hist *h;
            if (mc->hn == mc->r.history) {
                h = &mc->ring[mc->hhead];
                mc->bytes -= h->f.len;
                md->st.bytes -= h->f.len;
                ref_drop(&h->f);
                mc->hhead = (mc->hhead + 1) % mc->r.history;
                mc->hn--;
            }
            h = &mc->ring[(mc->hhead + mc->hn) % mc->r.history];
            h->seq = mc->seq;
            h->tail = tail;
            ref_take(&h->f, canon);
            mc->hn++;
            mc->bytes += canon->len;
            md->st.bytes += canon->len;
        }
    }
    for (int v = 0; v < 4; v++)
        ref_drop(&p->v[v]);
    enforce_bounds(s, mc);
}

/* ---- Per-client side table ---- */

static struct rc_mconn *conn_state(struct rc_server *s, struct rc_conn *c)
{
    if (!c->md) {
        c->md = rc_xcalloc(1, sizeof(*c->md));
        c->md->tab = rc_dict_new();
        s->md->nconns++;
    }
    return c->md;
}

static struct pend *pend_get(struct rc_mconn *cs, const struct rc_buf *key)
{
    struct pend *e = rc_dict_get(cs->tab, key->p, key->len);

    if (e)
        return e;
    e = rc_xcalloc(1, sizeof(*e));
    e->key = rc_xmemdup(key->p, key->len);
    e->klen = key->len;
    rc_dict_add(cs->tab, key->p, key->len, e);
    return e;
}

static void pend_free(struct rc_mconn *cs, struct pend *e)
{
    rc_dict_del(cs->tab, e->key, e->klen);
    free(e->key);
    free(e);
}

/* Makes f the pending frame of e; returns true when it replaced one. */
static bool pend_set(struct rc_mconn *cs, struct pend *e, const struct rc_ref *f)
{
    bool replaced = e->f.slab != NULL;

    rc_slab_ref(f->slab);
    if (replaced) {
        cs->pending_bytes -= e->f.len;
        rc_slab_unref(e->f.slab);
    }
    e->f = *f;
    cs->pending_bytes += f->len;
    if (!e->listed) {
        e->listed = true;
        e->next = NULL;
        if (cs->ptail)
            cs->ptail->next = e;
        else
            cs->phead = e;
        cs->ptail = e;
    }
    return replaced;
}

/* Is c still subscribed to what key names? */
static bool key_subscribed(const struct rc_conn *c, const char *key, size_t klen)
{
    if (key[0] == 'c')
        return c->channels && rc_dict_get(c->channels, key + 1, klen - 1);
    uint32_t pl;
    memcpy(&pl, key + 1, sizeof(pl));
    return c->patterns && rc_dict_get(c->patterns, key + 1 + sizeof(pl), pl);
}

/* Pushes straight to the queue, skipping the output-limit check: what is
 * flushed here was already bounded by mdata-pending-max, and a check could
 * close c (and free its state) in the middle of the walk. */
static void push_raw(struct rc_server *s, struct rc_conn *c, struct rc_slab *slab, uint32_t off,
                     uint32_t len)
{
    rc_queue_push(&c->out, slab, off, len);
    rc_conn_mark_dirty(s, c);
}

static void send_notice(struct rc_server *s, struct rc_conn *c, const char *text)
{
    static const char ch[] = RC_MDATA_NOTICE_CHANNEL;
    size_t tl = strlen(text);
    size_t n = rc_resp_msg_len(c->proto, "message", NULL, 0, ch, sizeof(ch) - 1, text, tl);
    struct rc_slab *slab;
    uint32_t off;
    char *w = rc_arena_alloc(&s->replies, n, &slab, &off);

    rc_resp_msg_write(w, c->proto, "message", NULL, 0, ch, sizeof(ch) - 1, text, tl);
    push_raw(s, c, slab, off, (uint32_t)n);
    s->md->st.notices++;
}

/* Sends the pending frames that are due; forgets conflation-only entries. */
static void flush_pending(struct rc_server *s, struct rc_conn *c, uint64_t now)
{
    struct rc_mconn *cs = c->md;
    struct pend *e = cs->phead, *prev = NULL, *next;

    for (; e; e = next) {
        next = e->next;
        if (e->interval_ms && now - e->last_ms < e->interval_ms) {
            prev = e;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            cs->phead = next;
        if (cs->ptail == e)
            cs->ptail = prev;
        e->listed = false;
        e->next = NULL;
        cs->pending_bytes -= e->f.len;
        if (key_subscribed(c, e->key, e->klen))
            push_raw(s, c, e->f.slab, e->f.off, e->f.len);
        ref_drop(&e->f);
        e->last_ms = now;
        if (!e->interval_ms)
            pend_free(cs, e);
    }
}

static void start_episode(struct rc_server *s, struct rc_conn *c, struct rc_mconn *cs,
                          const struct rc_mchan *mc)
{
    cs->episode = true;
    cs->episodes++;
    s->md->st.slow_events++;
    rc_log(RC_LOG_NOTICE,
           "Client id=%llu addr=%s fell behind (%llu bytes queued, mdata-queue-soft %llu): "
           "%s channel '%.*s' and the others of its rules",
           (unsigned long long)c->id, c->addr, (unsigned long long)c->out.bytes,
           (unsigned long long)s->cfg.mdata_queue_soft,
           mc->r.policy == RC_MD_DROP ? "dropping" : "conflating", (int)RC_MIN(mc->len, 64),
           mc->name);
}

static void end_episode(struct rc_server *s, struct rc_conn *c, uint64_t now)
{
    struct rc_mconn *cs = c->md;
    char text[96];

    cs->episode = false;
    if (cs->ep_conflated || cs->ep_dropped) {
        snprintf(text, sizeof(text), "conflated=%llu dropped=%llu",
                 (unsigned long long)cs->ep_conflated, (unsigned long long)cs->ep_dropped);
        send_notice(s, c, text);
    }
    cs->ep_conflated = cs->ep_dropped = 0;
    flush_pending(s, c, now);
}

void rc_mdata_deliver(struct rc_server *s, struct rc_mdata_pub *p, struct rc_conn *c, int proto,
                      struct rc_slab *slab, uint32_t off, uint32_t len, const char *pat,
                      size_t plen)
{
    const struct rc_mchan *mc = p->ch;
    struct rc_mconn *cs = c->md;
    struct rc_ref f;
    struct pend *e;
    bool slow;

    if (c->flags & (RC_CONN_CLOSE_ASAP | RC_CONN_UNLINKED))
        return;
    if (slab)
        f = (struct rc_ref){slab, off, len};
    else
        f = *variant(s, p, (proto == 3 ? 1 : 0) | (cs && cs->seqmode && mc->r.seq ? 2 : 0));
    slow = mc->r.policy != RC_MD_STREAM &&
           ((cs && cs->episode) || c->out.bytes >= s->cfg.mdata_queue_soft);
    if (!slow && !mc->r.rate) {
        rc_conn_push_frame(s, c, f.slab, f.off, f.len);
        return;
    }
    cs = conn_state(s, c);
    if (slow && !cs->episode)
        start_episode(s, c, cs, mc);
    rc_mdata_key(&s->md->key, pat, plen, p->chan, p->clen);
    e = pend_get(cs, &s->md->key);
    e->interval_ms = mc->r.rate ? 1000 / mc->r.rate : 0;
    if (!slow) {
        /* Rate cap only. */
        if (!e->f.slab && p->now_ms - e->last_ms >= e->interval_ms) {
            e->last_ms = p->now_ms;
            rc_conn_push_frame(s, c, f.slab, f.off, f.len);
        } else if (pend_set(cs, e, &f)) {
            cs->rate_limited++;
            s->md->st.rate_limited++;
        }
        return;
    }
    if (mc->r.policy == RC_MD_DROP ||
        (!e->f.slab && cs->pending_bytes + f.len > s->cfg.mdata_pending_max)) {
        cs->dropped++;
        cs->ep_dropped++;
        s->md->st.dropped++;
        return;
    }
    if (pend_set(cs, e, &f)) {
        cs->conflated++;
        cs->ep_conflated++;
        s->md->st.conflated++;
    }
}

void rc_mdata_conn_drained(struct rc_server *s, struct rc_conn *c)
{
    if (!s->md || !c->md || !c->md->episode || c->out.bytes > s->cfg.mdata_queue_low ||
        (c->flags & (RC_CONN_CLOSE_ASAP | RC_CONN_UNLINKED)))
        return;
    end_episode(s, c, rc_now_ms());
}

void rc_mdata_conn_free(struct rc_server *s, struct rc_conn *c)
{
    struct rc_mconn *cs = c->md;
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    if (!cs)
        return;
    rc_dict_iter_init(&it);
    while (rc_dict_next(cs->tab, &it, &k, &kl, &v)) {
        struct pend *e = v;
        ref_drop(&e->f);
        free(e->key);
        free(e);
    }
    rc_dict_free(cs->tab);
    free(cs);
    c->md = NULL;
    s->md->nconns--;
}

void rc_mdata_client_fields(struct rc_server *s, struct rc_conn *c, struct rc_buf *b)
{
    const struct rc_mconn *cs = c->md;

    if (!s->cfg.nmdata_rules && !cs)
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

/* Drops the pending entry of key (a fresh snapshot supersedes it). */
static void pend_forget(struct rc_conn *c, const struct rc_buf *key)
{
    struct rc_mconn *cs = c->md;
    struct pend *e = rc_dict_get(cs->tab, key->p, key->len);
    struct pend *x, *prev = NULL;

    if (!e || !e->f.slab)
        return;
    for (x = cs->phead; x && x != e; x = x->next)
        prev = x;
    if (x) {
        if (prev)
            prev->next = e->next;
        else
            cs->phead = e->next;
        if (cs->ptail == e)
            cs->ptail = prev;
    }
    e->listed = false;
    cs->pending_bytes -= e->f.len;
    ref_drop(&e->f);
}

void rc_mdata_snapshot(struct rc_server *s, struct rc_conn *c, const char *chan, size_t clen)
{
    struct rc_mchan *mc = chan_get(s, chan, clen, false);

    if (!mc)
        return;
    if (c->md) {
        rc_mdata_key(&s->md->key, NULL, 0, chan, clen);
        pend_forget(c, &s->md->key);
    }
    expire_check(s->md, mc, rc_now_ms());
    if (!mc->last.slab)
        return;
    push_cached(s, c, &mc->last, mc->last_tail, c->proto, c->md && c->md->seqmode);
    s->md->st.snapshots++;
}

/* ---- Cron ---- */

void rc_mdata_cron(struct rc_server *s, uint64_t now)
{
    struct rc_mdata *md = s->md;

    if (!md || (!md->nconns && !md->head))
        return;
    for (struct rc_conn *c = md->nconns ? s->clients_head : NULL; c; c = c->next) {
        struct rc_mconn *cs = c->md;
        struct rc_dict_iter it;
        const char *k;
        size_t kl;
        void *v;

        if (!cs || (c->flags & (RC_CONN_CLOSE_ASAP | RC_CONN_UNLINKED)))
            continue;
        if (cs->episode) {
            if (c->out.bytes <= s->cfg.mdata_queue_low)
                end_episode(s, c, now);
            continue;
        }
        if (cs->phead)
            flush_pending(s, c, now);
        /* Forget rate-cap entries idle long enough that their cap cannot bite. */
        rc_dict_iter_init(&it);
        while (rc_dict_next(cs->tab, &it, &k, &kl, &v)) {
            struct pend *e = v;
            if (!e->f.slab && now - e->last_ms > RATE_GC_MS)
                pend_free(cs, e);
        }
    }
    if (now - md->last_sweep_ms >= TTL_SWEEP_MS) {
        md->last_sweep_ms = now;
        for (struct rc_mchan *mc = md->head; mc; mc = mc->next)
            expire_check(md, mc, now);
    }
}

/* ---- INFO ---- */

void rc_mdata_info(struct rc_server *s, struct rc_buf *b)
{
    const struct rc_mdata_stats *st = rc_mdata_stats(s);
    uint64_t pending = 0, slow_now = 0;

    for (struct rc_conn *c = s->clients_head; c; c = c->next) {
        if (!c->md)
            continue;
        pending += c->md->pending_bytes;
        slow_now += c->md->episode;
    }
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
                   s->cfg.nmdata_rules, (unsigned long long)st->channels,
                   (unsigned long long)st->last_values, (unsigned long long)st->bytes,
                   (unsigned long long)s->cfg.mdata_max_memory, (unsigned long long)st->evictions,
                   (unsigned long long)st->expired, (unsigned long long)st->deleted,
                   (unsigned long long)st->snapshots, (unsigned long long)st->conflated,
                   (unsigned long long)st->dropped, (unsigned long long)st->rate_limited,
                   (unsigned long long)st->slow_events, (unsigned long long)slow_now,
                   (unsigned long long)pending, (unsigned long long)st->notices,
                   (unsigned long long)st->replayed, (unsigned long long)st->resyncs);
}

/* ---- Commands ---- */

/* RC.LAST <channel>: the cached last message, or nil. */
void rc_cmd_rc_last(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    struct rc_mchan *mc = chan_get(s, r->argv[1], r->argvlen[1], false);
    size_t n;
    const char *p;

    if (mc)
        expire_check(s->md, mc, rc_now_ms());
    if (!mc || !mc->last.slab) {
        rc_resp_null(&s->rbuf, c->proto);
        return;
    }
    p = frame_payload(mc, &n);
    rc_resp_bulk(&s->rbuf, p, n);
}

/* RC.LASTP <pattern> [COUNT <n>]: [channel, message, ...] for cached channels matching. */
void rc_cmd_rc_lastp(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    int64_t count = 100;
    struct rc_buf items = {0};
    uint64_t now = rc_now_ms();
    int64_t n = 0;

    if (r->argc == 4 && rc_strcaseeq(r->argv[2], r->argvlen[2], "count")) {
        if (!rc_parse_i64(r->argv[3], r->argvlen[3], &count) || count < 1) {
            rc_resp_error(&s->rbuf, "ERR value is out of range, must be positive");
            return;
        }
    } else if (r->argc != 2) {
        rc_resp_error(&s->rbuf, "ERR syntax error");
        return;
    }
    if ((uint64_t)count > s->cfg.mdata_lastp_max)
        count = (int64_t)s->cfg.mdata_lastp_max;
    for (struct rc_mchan *mc = s->md ? s->md->tail : NULL; mc && n < count; mc = mc->prev) {
        size_t pl;
        const char *p;
        if (!rc_glob_match(r->argv[1], r->argvlen[1], mc->name, mc->len))
            continue;
        expire_check(s->md, mc, now);
        if (!mc->last.slab)
            continue;
        p = frame_payload(mc, &pl);
        rc_resp_bulk(&items, mc->name, mc->len);
        rc_resp_bulk(&items, p, pl);
        n++;
    }
    rc_resp_array(&s->rbuf, 2 * n);
    rc_buf_append(&s->rbuf, items.p, items.len);
    rc_buf_free(&items);
}

/* RC.DEL <channel>...: drops the channels' state (last value, history, sequence). */
void rc_cmd_rc_del(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    int64_t n = 0;

    for (int i = 1; i < r->argc; i++) {
        struct rc_mchan *mc = chan_get(s, r->argv[i], r->argvlen[i], false);
        if (!mc)
            continue;
        chan_free(s->md, mc);
        s->md->st.deleted++;
        n++;
    }
    rc_resp_int(&s->rbuf, n);
}

/* RC.SEQMODE ON|OFF: messages on sequenced channels carry [.., epoch, seq]. */
void rc_cmd_rc_seqmode(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    bool on;

    if (rc_strcaseeq(r->argv[1], r->argvlen[1], "on"))
        on = true;
    else if (rc_strcaseeq(r->argv[1], r->argvlen[1], "off"))
        on = false;
    else {
        rc_resp_error(&s->rbuf, "ERR syntax error, expected ON or OFF");
        return;
    }
    if (on || c->md)
        conn_state(s, c)->seqmode = on;
    rc_resp_simple(&s->rbuf, "OK");
}

static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
    int64_t v;
    if (!rc_parse_i64(p, n, &v) || v < 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* RC.RESUME <channel> <epoch> <seq>: subscribe, then replay after seq or say resync. */
void rc_cmd_rc_resume(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    const char *chan = r->argv[1];
    size_t clen = r->argvlen[1];
    uint64_t epoch, last;
    struct rc_mchan *mc;
    bool ok;

    if (!parse_u64(r->argv[2], r->argvlen[2], &epoch) ||
        !parse_u64(r->argv[3], r->argvlen[3], &last)) {
        rc_resp_error(&s->rbuf, "ERR epoch and sequence must be non-negative integers");
        return;
    }
    mc = chan_get(s, chan, clen, true);
    if (!mc || !mc->r.seq) {
        rc_resp_errorf(&s->rbuf,
                       "ERR no sequence for channel '%.*s' (no mdata-rule with seq or "
                       "history matches it)",
                       (int)RC_MIN(clen, 128), chan);
        return;
    }
    if (c->channels && rc_dict_get(c->channels, chan, clen)) {
        rc_resp_errorf(&s->rbuf, "ERR already subscribed to '%.*s'; UNSUBSCRIBE first",
                       (int)RC_MIN(clen, 128), chan);
        return;
    }
    conn_state(s, c)->seqmode = true;
    rc_pubsub_subscribe_channel(s, c, chan, clen);
    ok = rc_mdata_can_resume(epoch, last, mc->epoch, mc->seq, mc->hn);
    rc_resp_push(&s->rbuf, c->proto, 5);
    rc_resp_bulkstr(&s->rbuf, "rc.resume");
    rc_resp_bulk(&s->rbuf, chan, clen);
    rc_resp_bulkstr(&s->rbuf, ok ? "ok" : "resync");
    rc_resp_int(&s->rbuf, (int64_t)mc->epoch);
    rc_resp_int(&s->rbuf, (int64_t)mc->seq);
    rc_conn_flush_reply(s, c);
    if (!ok) {
        s->md->st.resyncs++;
        /* The current value, if kept, is where a resync starts from. */
        rc_mdata_snapshot(s, c, chan, clen);
        return;
    }
    for (uint32_t i = 0; i < mc->hn; i++) {
        const struct hist *h = &mc->ring[(mc->hhead + i) % mc->r.history];
        if (h->seq <= last)
            continue;
        push_cached(s, c, &h->f, h->tail, c->proto, true);
        s->md->st.replayed++;
    }
}
