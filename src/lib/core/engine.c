/* engine.c -- channels, patterns, subscriptions and the fan-out of a publish.
 *
 * Three tables map a name to a struct rc_chan holding its subscribers:
 * channels, patterns and shard channels (SSUBSCRIBE's namespace). Each sink
 * keeps the reverse map (name -> struct rc_sub) recording where it sits in
 * the subscriber array, so unsubscribing is O(1) and a disconnect costs
 * O(own subscriptions), not O(channels). Patterns also sit in a flat array
 * of this engine's, walked on every publish like Redis does.
 *
 * A publish encodes the message at most once per wire format present among
 * the channel's subscribers (each channel counts its subscribers per format),
 * through the codec table the engine was given, into the shared frame arena,
 * and hands a reference to every subscriber through its sink. Each matching
 * pattern gets its own pmessage frame. The receiver count is Redis's: a
 * client subscribed to the channel and to two matching patterns counts, and
 * receives, three times.
 *
 * An optional interest hook (struct rc_engine_cfg) hears when a table entry
 * is created or removed -- the first subscriber of a name and the last one
 * leaving -- so an owner can mirror the engine's interest elsewhere without
 * the engine knowing where.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "glob.h"

/* ---- Life ---- */

struct rc_engine *rc_engine_new(const struct rc_engine_cfg *cfg)
{
    struct rc_engine *e = rc_xcalloc(1, sizeof(*e));

    assert(cfg->ncodecs > 0 && cfg->ncodecs <= RC_FMT_MAX);
    for (int i = 0; i < cfg->ncodecs; i++) {
        assert(cfg->codecs[i]->id == i);
        e->codecs[i] = cfg->codecs[i];
    }
    e->ncodecs = cfg->ncodecs;
    e->log = cfg->log;
    e->mdcfg = cfg->md;
    e->interest = cfg->interest;
    e->interest_arg = cfg->interest_arg;
    e->count = cfg->count;
    e->count_arg = cfg->count_arg;
    for (int t = 0; t < RC_SUB__COUNT; t++)
        e->tab[t] = rc_dict_new();
    rc_slab_pool_init(&e->pool);
    rc_arena_init(&e->frames, &e->pool);
    rc_mdata_init(e);
    return e;
}

static void chan_free(struct rc_chan *ch)
{
    free(ch->subs);
    free(ch->name);
    free(ch);
}

void rc_engine_free(struct rc_engine *e)
{
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    if (!e)
        return;
    rc_mdata_free(e);
    for (int t = 0; t < RC_SUB__COUNT; t++) {
        rc_dict_iter_init(&it);
        while (rc_dict_next(e->tab[t], &it, &k, &kl, &v))
            chan_free(v);
        rc_dict_free(e->tab[t]);
    }
    free(e->patlist);
    rc_arena_free(&e->frames);
    rc_slab_pool_clear(&e->pool);
    free(e);
}

struct rc_slab_pool *rc_engine_pool(struct rc_engine *e)
{
    return &e->pool;
}

const struct rc_codec *rc_engine_codec(const struct rc_engine *e, uint8_t fmt)
{
    return fmt < e->ncodecs ? e->codecs[fmt] : NULL;
}

const struct rc_engine_stats *rc_engine_stats(const struct rc_engine *e)
{
    return &e->st;
}

void rc_engine_stats_reset(struct rc_engine *e)
{
    memset(&e->st, 0, sizeof(e->st));
}

/* ---- Sinks ---- */

void rc_sink_init(struct rc_sink *k, const struct rc_sink_ops *ops, uint8_t fmt, uint64_t id,
                  const char *label, const struct rc_queue *q)
{
    memset(k, 0, sizeof(*k));
    k->ops = ops;
    k->fmt = fmt;
    k->id = id;
    k->label = label;
    k->q = q;
}

void rc_sink_free(struct rc_sink *k)
{
    for (int t = 0; t < RC_SUB__COUNT; t++) {
        rc_dict_free(k->subs[t]);
        k->subs[t] = NULL;
    }
}

size_t rc_sink_count(const struct rc_sink *k, enum rc_sub_kind kind)
{
    return k->subs[kind] ? rc_dict_size(k->subs[kind]) : 0;
}

bool rc_sink_has(const struct rc_sink *k, enum rc_sub_kind kind, const char *name, size_t len)
{
    return k->subs[kind] && rc_dict_get(k->subs[kind], name, len);
}

/* ---- Subscriptions ---- */

bool rc_engine_subscribe(struct rc_engine *e, struct rc_sink *k, enum rc_sub_kind kind,
                         const char *name, size_t len)
{
    struct rc_chan *ch;
    struct rc_sub *sub;

    if (k->detached)
        return false;
    if (!k->subs[kind])
        k->subs[kind] = rc_dict_new();
    if (rc_dict_get(k->subs[kind], name, len))
        return false;
    ch = rc_dict_get(e->tab[kind], name, len);
    if (!ch) {
        ch = rc_xcalloc(1, sizeof(*ch));
        ch->name = rc_xmemdup(name, len);
        ch->len = len;
        rc_dict_add(e->tab[kind], name, len, ch);
        if (kind == RC_SUB_PATTERN) {
            if (e->npat == e->patcap) {
                e->patcap = e->patcap ? e->patcap * 2 : 16;
                e->patlist = rc_xrealloc(e->patlist, e->patcap * sizeof(struct rc_chan *));
            }
            ch->idx = e->npat;
            e->patlist[e->npat++] = ch;
        }
    }
    if (ch->n == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 4;
        ch->subs = rc_xrealloc(ch->subs, ch->cap * sizeof(*ch->subs));
    }
    sub = rc_xmalloc(sizeof(*sub));
    sub->chan = ch;
    sub->idx = ch->n;
    sub->fmt = k->fmt;
    ch->subs[ch->n++] = (struct rc_subent){k, sub};
    ch->nfmt[k->fmt]++;
    k->nsubs++;
    rc_dict_add(k->subs[kind], name, len, sub);
    if (ch->n == 1 && e->interest)
        e->interest(e->interest_arg, kind, name, len, true);
    if (e->count)
        e->count(e->count_arg, kind, name, len, 1);
    return true;
}

bool rc_engine_unsubscribe(struct rc_engine *e, struct rc_sink *k, enum rc_sub_kind kind,
                           const char *name, size_t len)
{
    struct rc_sub *sub = k->subs[kind] ? rc_dict_del(k->subs[kind], name, len) : NULL;
    struct rc_chan *ch;

    if (!sub)
        return false;
    ch = sub->chan;
    ch->nfmt[sub->fmt]--;
    k->nsubs--;
    /* Swap-remove, fixing the moved subscriber's back index. */
    ch->subs[sub->idx] = ch->subs[--ch->n];
    ch->subs[sub->idx].sub->idx = sub->idx;
    free(sub);
    if (e->count)
        e->count(e->count_arg, kind, ch->name, ch->len, -1);
    if (ch->n == 0) {
        rc_dict_del(e->tab[kind], ch->name, ch->len);
        if (kind == RC_SUB_PATTERN) {
            e->patlist[ch->idx] = e->patlist[--e->npat];
            e->patlist[ch->idx]->idx = ch->idx;
        }
        if (e->interest)
            e->interest(e->interest_arg, kind, ch->name, ch->len, false);
        chan_free(ch);
    }
    return true;
}

size_t rc_engine_unsubscribe_kind(struct rc_engine *e, struct rc_sink *k, enum rc_sub_kind kind,
                                  void (*fn)(void *arg, const char *name, size_t len), void *arg)
{
    struct rc_dict_iter it;
    const char *key;
    size_t kl, n = 0;
    void *v;

    if (!k->subs[kind])
        return 0;
    rc_dict_iter_init(&it);
    while (rc_dict_next(k->subs[kind], &it, &key, &kl, &v)) {
        /* key is the table's copy, freed by the delete. */
        char *name = rc_xmemdup(key, kl);
        rc_engine_unsubscribe(e, k, kind, name, kl);
        if (fn)
            fn(arg, name, kl);
        free(name);
        n++;
    }
    rc_dict_shrink(e->tab[kind]);
    return n;
}

void rc_engine_sink_reset(struct rc_engine *e, struct rc_sink *k)
{
    for (int t = 0; t < RC_SUB__COUNT; t++) {
        rc_engine_unsubscribe_kind(e, k, (enum rc_sub_kind)t, NULL, NULL);
        rc_dict_shrink(e->tab[t]);
    }
    rc_mdata_sink_free(e, k);
}

bool rc_engine_sink_release(struct rc_engine *e, struct rc_sink *k, size_t budget)
{
    const char *key;
    size_t kl;
    void *v;

    /* The sink is detached: nothing but this function changes its tables,
     * so the saved iterator stays valid between calls (deleting the entry
     * just returned is allowed) and no slice rescans emptied buckets. */
    while (k->rel_kind < RC_SUB__COUNT) {
        struct rc_dict *d = k->subs[k->rel_kind];
        while (d && budget > 0 && rc_dict_next(d, &k->rel_it, &key, &kl, &v)) {
            char *name = rc_xmemdup(key, kl); /* key is freed by the delete */
            rc_engine_unsubscribe(e, k, (enum rc_sub_kind)k->rel_kind, name, kl);
            free(name);
            budget--;
        }
        if (budget == 0 && d && rc_dict_size(d) > 0)
            return false;
        rc_dict_shrink(e->tab[k->rel_kind]);
        k->rel_kind++;
        rc_dict_iter_init(&k->rel_it);
    }
    return true;
}

bool rc_engine_sink_detach_some(struct rc_engine *e, struct rc_sink *k, size_t budget)
{
    if (!k->detached) {
        rc_mdata_sink_free(e, k);
        k->detached = true;
        k->rel_kind = 0;
        rc_dict_iter_init(&k->rel_it);
    }
    return rc_engine_sink_release(e, k, budget);
}

void rc_engine_sink_detach(struct rc_engine *e, struct rc_sink *k)
{
    rc_engine_sink_reset(e, k);
    k->detached = true;
}

void rc_engine_sink_set_fmt(struct rc_engine *e, struct rc_sink *k, uint8_t fmt)
{
    struct rc_dict_iter it;
    const char *key;
    size_t kl;
    void *v;

    assert(fmt < e->ncodecs);
    for (int t = 0; t < RC_SUB__COUNT; t++) {
        if (!k->subs[t])
            continue;
        rc_dict_iter_init(&it);
        while (rc_dict_next(k->subs[t], &it, &key, &kl, &v)) {
            struct rc_sub *sub = v;
            sub->chan->nfmt[sub->fmt]--;
            sub->chan->nfmt[fmt]++;
            sub->fmt = fmt;
        }
    }
    k->fmt = fmt;
}

/* ---- Fan-out ---- */

void rc_engine_encode(struct rc_engine *e, uint8_t fmt, const struct rc_msgview *m,
                      struct rc_ref *f)
{
    const struct rc_codec *cd = e->codecs[fmt];
    size_t n = cd->len(m);
    char *dst = rc_arena_alloc(&e->frames, n, &f->slab, &f->off);

    f->len = (uint32_t)cd->write(dst, m);
    assert(f->len == n);
    e->st.encodes[fmt]++;
    rc_slab_ref(f->slab);
}

/* Delivers m to all of ch's subscribers: one frame per format present. */
static void fan_out(struct rc_engine *e, struct rc_chan *ch, const struct rc_msgview *m,
                    struct rc_mdata_pub *md)
{
    struct rc_ref f[RC_FMT_MAX];
    uint32_t n = ch->n;
    const int nc = e->ncodecs;

    /* mdata encodes the channel's own message lazily (variants with and
     * without a sequence stamp); pattern deliveries are plain frames. */
    for (int v = 0; v < nc; v++) {
        f[v].slab = NULL;
        /* Our own reference keeps the frame alive while pushing: a push
         * can disconnect a client and allocate, not free this slab. */
        if (ch->nfmt[v] && (!md || m->kind == RC_MSG_PMESSAGE))
            rc_engine_encode(e, (uint8_t)v, m, &f[v]);
    }
    /* Pushing can detach a sink (output limit), which swap-removes entries
     * from ch->subs: walk backwards so no live entry is skipped. A channel
     * emptied that way is freed only by the unsubscribe that empties it,
     * after which ch->n is 0 and the loop ends; the caller does not touch
     * ch again. */
    for (uint32_t i = n; i-- > 0;) {
        if (i >= ch->n)
            continue;
        struct rc_subent *se = &ch->subs[i];
        if (RC_UNLIKELY(se->k->detached))
            continue; /* being released in slices (rc_engine_sink_release) */
        if (RC_UNLIKELY(md != NULL)) {
            rc_mdata_deliver(e, md, se->k, m->pat ? &f[se->sub->fmt] : NULL, m->pat, m->plen);
            continue;
        }
        const struct rc_ref *r = &f[se->sub->fmt];
        se->k->ops->push(se->k, r->slab, r->off, r->len, true);
    }
    for (int v = 0; v < nc; v++)
        if (f[v].slab)
            rc_slab_unref(f[v].slab);
}

uint64_t rc_engine_publish(struct rc_engine *e, bool shard, const char *chan, size_t clen,
                           const char *payload, size_t len)
{
    return rc_engine_publish_ex(e, shard, chan, clen, payload, len, NULL, false);
}

uint64_t rc_engine_publish_ex(struct rc_engine *e, bool shard, const char *chan, size_t clen,
                              const char *payload, size_t len, struct rc_stamp *st, bool relay)
{
    struct rc_msgview m = {.kind = shard ? RC_MSG_SMESSAGE : RC_MSG_MESSAGE,
                           .chan = chan,
                           .clen = clen,
                           .payload = payload,
                           .len = len};
    struct rc_mdata_pub mdp, *md = NULL;
    uint64_t receivers = 0;
    struct rc_chan *ch;

    if (!relay)
        e->st.published++;
    if (RC_UNLIKELY(e->mdcfg && e->mdcfg->nrules > 0) && !shard)
        md = rc_mdata_begin(e, &mdp, chan, clen, payload, len, st);
    ch = rc_dict_get(e->tab[shard ? RC_SUB_SHARD : RC_SUB_CHANNEL], chan, clen);
    if (ch && ch->n) {
        receivers += ch->n;
        fan_out(e, ch, &m, md);
    }
    if (!shard) {
        m.kind = RC_MSG_PMESSAGE;
        /* A delivery may disconnect a pattern's last subscriber, which
         * swap-removes it from patlist: walk backwards. */
        for (uint32_t i = e->npat; i-- > 0;) {
            if (i >= e->npat)
                continue;
            struct rc_chan *p = e->patlist[i];
            if (!rc_glob_match(p->name, p->len, chan, clen))
                continue;
            receivers += p->n;
            m.pat = p->name;
            m.plen = p->len;
            fan_out(e, p, &m, md);
        }
    }
    if (md)
        rc_mdata_end(e, md);
    e->st.deliveries += receivers;
    return receivers;
}

/* ---- Queries ---- */

size_t rc_engine_numsub(const struct rc_engine *e, enum rc_sub_kind kind, const char *name,
                        size_t len)
{
    const struct rc_chan *ch = rc_dict_get(e->tab[kind], name, len);
    return ch ? ch->n : 0;
}

size_t rc_engine_numpat(const struct rc_engine *e)
{
    return e->npat;
}

void rc_engine_each(const struct rc_engine *e, enum rc_sub_kind kind,
                    void (*fn)(void *arg, const char *name, size_t len), void *arg)
{
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    rc_dict_iter_init(&it);
    while (rc_dict_next(e->tab[kind], &it, &k, &kl, &v))
        fn(arg, k, kl);
}

void rc_engine_cron(struct rc_engine *e, uint64_t now_ms)
{
    rc_mdata_cron(e, now_ms);
}
