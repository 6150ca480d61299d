/* pubsub.c -- channels, patterns, subscriptions and the fan-out of PUBLISH.
 *
 * Three tables map a name to a struct rc_chan holding its subscribers:
 * channels, patterns and shard channels (SSUBSCRIBE's namespace). Each
 * connection keeps the reverse map (name -> struct rc_sub) recording where
 * it sits in the subscriber array, so unsubscribing is O(1) and a disconnect
 * costs O(own subscriptions), not O(channels).
 *
 * PUBLISH encodes the message at most once per wire format (RESP2 array,
 * RESP3 push) into the shared frame arena and pushes a reference to every
 * subscriber's queue; patterns are tried one by one like Redis, each matching
 * pattern getting its own pmessage frame. The receiver count is Redis's: a
 * client subscribed to the channel and to two matching patterns counts, and
 * receives, three times.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "glob.h"
#include "mdata.h"

struct rc_subent {
    struct rc_conn *c;
    struct rc_sub *sub;
};

struct rc_chan {
    char *name;
    size_t len;
    struct rc_subent *subs;
    uint32_t n, cap;
    uint32_t n3;  /* RESP3 subscribers (they need push frames) */
    uint32_t idx; /* position in s->pattern_list (patterns only) */
};

struct rc_sub {
    struct rc_chan *chan;
    uint32_t idx; /* position in chan->subs */
    int proto;    /* protocol when subscribed (RESET/HELLO may change it) */
};

/* Patterns also live in a flat array: PUBLISH walks all of them. */
static struct rc_chan **pattern_list;
static uint32_t npatterns, patcap;

enum table { T_CHAN, T_PAT, T_SHARD };

static struct rc_dict **server_table(struct rc_server *s, enum table t)
{
    return t == T_CHAN ? &s->channels : t == T_PAT ? &s->patterns : &s->shard_channels;
}

static struct rc_dict **conn_table(struct rc_conn *c, enum table t)
{
    return t == T_CHAN ? &c->channels : t == T_PAT ? &c->patterns : &c->shard_channels;
}

void rc_pubsub_init(struct rc_server *s)
{
    s->channels = rc_dict_new();
    s->patterns = rc_dict_new();
    s->shard_channels = rc_dict_new();
}

static void free_table(struct rc_dict *d)
{
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    rc_dict_iter_init(&it);
    while (rc_dict_next(d, &it, &k, &kl, &v)) {
        struct rc_chan *ch = v;
        free(ch->subs);
        free(ch->name);
        free(ch);
    }
    rc_dict_free(d);
}

void rc_pubsub_free(struct rc_server *s)
{
    free_table(s->channels);
    free_table(s->patterns);
    free_table(s->shard_channels);
    s->channels = s->patterns = s->shard_channels = NULL;
    free(pattern_list);
    pattern_list = NULL;
    npatterns = patcap = 0;
}

size_t rc_pubsub_count(const struct rc_conn *c)
{
    return (c->channels ? rc_dict_size(c->channels) : 0) +
           (c->patterns ? rc_dict_size(c->patterns) : 0);
}

size_t rc_pubsub_count_shard(const struct rc_conn *c)
{
    return c->shard_channels ? rc_dict_size(c->shard_channels) : 0;
}

/* Adds c to name's subscribers; returns false when already subscribed. */
static bool sub_add(struct rc_server *s, struct rc_conn *c, enum table t, const char *name,
                    size_t len)
{
    struct rc_dict **ct = conn_table(c, t);
    struct rc_dict *st = *server_table(s, t);
    struct rc_chan *ch;
    struct rc_sub *sub;

    if (!*ct)
        *ct = rc_dict_new();
    if (rc_dict_get(*ct, name, len))
        return false;
    ch = rc_dict_get(st, name, len);
    if (!ch) {
        ch = rc_xcalloc(1, sizeof(*ch));
        ch->name = rc_xmemdup(name, len);
        ch->len = len;
        rc_dict_add(st, name, len, ch);
        if (t == T_PAT) {
            if (npatterns == patcap) {
                patcap = patcap ? patcap * 2 : 16;
                pattern_list = rc_xrealloc(pattern_list, patcap * sizeof(struct rc_chan *));
            }
            ch->idx = npatterns;
            pattern_list[npatterns++] = ch;
        }
    }
    if (ch->n == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 4;
        ch->subs = rc_xrealloc(ch->subs, ch->cap * sizeof(*ch->subs));
    }
    sub = rc_xmalloc(sizeof(*sub));
    sub->chan = ch;
    sub->idx = ch->n;
    sub->proto = c->proto;
    ch->subs[ch->n++] = (struct rc_subent){c, sub};
    if (c->proto == 3)
        ch->n3++;
    rc_dict_add(*ct, name, len, sub);
    return true;
}

/* Removes c from name's subscribers; returns false when not subscribed. */
static bool sub_del(struct rc_server *s, struct rc_conn *c, enum table t, const char *name,
                    size_t len)
{
    struct rc_dict *ct = *conn_table(c, t);
    struct rc_sub *sub = ct ? rc_dict_del(ct, name, len) : NULL;
    struct rc_chan *ch;

    if (!sub)
        return false;
    ch = sub->chan;
    if (sub->proto == 3)
        ch->n3--;
    /* Swap-remove, fixing the moved subscriber's back index. */
    ch->subs[sub->idx] = ch->subs[--ch->n];
    ch->subs[sub->idx].sub->idx = sub->idx;
    free(sub);
    if (ch->n == 0) {
        rc_dict_del(*server_table(s, t), ch->name, ch->len);
        if (t == T_PAT) {
            pattern_list[ch->idx] = pattern_list[--npatterns];
            pattern_list[ch->idx]->idx = ch->idx;
        }
        free(ch->subs);
        free(ch->name);
        free(ch);
    }
    return true;
}

static const char *kind_name(enum table t, bool sub)
{
    switch (t) {
    case T_CHAN: return sub ? "subscribe" : "unsubscribe";
    case T_PAT: return sub ? "psubscribe" : "punsubscribe";
    default: return sub ? "ssubscribe" : "sunsubscribe";
    }
}

static void confirm(struct rc_server *s, struct rc_conn *c, enum table t, bool sub,
                    const char *name, size_t len)
{
    const char *kind = kind_name(t, sub);
    rc_resp_push(&s->rbuf, c->proto, 3);
    rc_resp_bulkstr(&s->rbuf, kind);
    if (name)
        rc_resp_bulk(&s->rbuf, name, len);
    else
        rc_resp_null(&s->rbuf, c->proto);
    rc_resp_int(&s->rbuf, (int64_t)(t == T_SHARD ? rc_pubsub_count_shard(c) : rc_pubsub_count(c)));
}

static void do_subscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r,
                         enum table t)
{
    for (int i = 1; i < r->argc; i++) {
        bool added = sub_add(s, c, t, r->argv[i], r->argvlen[i]);
        confirm(s, c, t, true, r->argv[i], r->argvlen[i]);
        /* mdata last value: confirmation, then the cached frame, then live
         * messages -- one loop thread, so nothing can come in between. */
        if (added && t == T_CHAN && s->cfg.nmdata_rules) {
            rc_conn_flush_reply(s, c);
            rc_mdata_snapshot(s, c, r->argv[i], r->argvlen[i]);
        }
    }
}

bool rc_pubsub_subscribe_channel(struct rc_server *s, struct rc_conn *c, const char *name,
                                 size_t len)
{
    bool added = sub_add(s, c, T_CHAN, name, len);
    confirm(s, c, T_CHAN, true, name, len);
    return added;
}

/* Unsubscribes from every name in table t, replying for each when reply. */
static void unsubscribe_table(struct rc_server *s, struct rc_conn *c, enum table t, bool reply)
{
    struct rc_dict *ct = *conn_table(c, t);
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;
    bool any = false;

    if (ct) {
        rc_dict_iter_init(&it);
        while (rc_dict_next(ct, &it, &k, &kl, &v)) {
            /* k is the table's copy, freed by the delete: reply first. */
            char *name = rc_xmemdup(k, kl);
            sub_del(s, c, t, name, kl);
            if (reply)
                confirm(s, c, t, false, name, kl);
            free(name);
            any = true;
        }
    }
    if (reply && !any)
        confirm(s, c, t, false, NULL, 0);
}

static void do_unsubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r,
                           enum table t)
{
    if (r->argc == 1) {
        unsubscribe_table(s, c, t, true);
        return;
    }
    for (int i = 1; i < r->argc; i++) {
        sub_del(s, c, t, r->argv[i], r->argvlen[i]);
        confirm(s, c, t, false, r->argv[i], r->argvlen[i]);
    }
}

static void set_proto_table(struct rc_dict *ct, int proto)
{
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    if (!ct)
        return;
    rc_dict_iter_init(&it);
    while (rc_dict_next(ct, &it, &k, &kl, &v)) {
        struct rc_sub *sub = v;
        if (sub->proto == proto)
            continue;
        if (proto == 3)
            sub->chan->n3++;
        else
            sub->chan->n3--;
        sub->proto = proto;
    }
}

void rc_pubsub_set_proto(struct rc_server *s, struct rc_conn *c, int proto)
{
    set_proto_table(c->channels, proto);
    set_proto_table(c->patterns, proto);
    set_proto_table(c->shard_channels, proto);
    c->proto = proto;
}

void rc_pubsub_unsubscribe_all(struct rc_server *s, struct rc_conn *c)
{
    unsubscribe_table(s, c, T_CHAN, false);
    unsubscribe_table(s, c, T_PAT, false);
    unsubscribe_table(s, c, T_SHARD, false);
}

void rc_cmd_subscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_subscribe(s, c, r, T_CHAN);
}

void rc_cmd_psubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_subscribe(s, c, r, T_PAT);
}

void rc_cmd_ssubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_subscribe(s, c, r, T_SHARD);
}

void rc_cmd_unsubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_unsubscribe(s, c, r, T_CHAN);
}

void rc_cmd_punsubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_unsubscribe(s, c, r, T_PAT);
}

void rc_cmd_sunsubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_unsubscribe(s, c, r, T_SHARD);
}

/* ---- Fan-out ---- */

/* Sends one frame per wire format to all of ch's subscribers. */
static void fan_out(struct rc_server *s, struct rc_chan *ch, const char *kind, const char *pat,
                    size_t plen, const char *chan, size_t clen, const char *payload, size_t len,
                    struct rc_mdata_pub *md)
{
    struct rc_slab *slab[2] = {NULL, NULL};
    uint32_t off[2] = {0, 0}, flen[2] = {0, 0};
    uint32_t n = ch->n;

    for (int v = 0; v < 2; v++) {
        int proto = v + 2;
        if ((proto == 3 && ch->n3 == 0) || (proto == 2 && ch->n3 == n))
            continue;
        if (md && !pat)
            break; /* mdata encodes the channel's own variants (with or without seq) */
        size_t fl = rc_resp_msg_len(proto, kind, pat, plen, chan, clen, payload, len);
        char *dst = rc_arena_alloc(&s->frames, fl, &slab[v], &off[v]);
        rc_resp_msg_write(dst, proto, kind, pat, plen, chan, clen, payload, len);
        flen[v] = (uint32_t)fl;
        /* Hold our own reference while pushing: a push can disconnect a
         * client and allocate, but must not free this frame's slab. */
        rc_slab_ref(slab[v]);
    }
    /* Pushing can unsubscribe a client (output limit), which swap-removes
     * entries from ch->subs; walk backwards so no live entry is skipped. */
    for (uint32_t i = n; i-- > 0;) {
        if (i >= ch->n)
            continue;
        struct rc_subent *e = &ch->subs[i];
        int v = e->sub->proto == 3 ? 1 : 0;
        if (RC_UNLIKELY(md != NULL)) {
            rc_mdata_deliver(s, md, e->c, e->sub->proto, slab[v], off[v], flen[v], pat, plen);
            continue;
        }
        rc_conn_push_frame(s, e->c, slab[v], off[v], flen[v]);
    }
    for (int v = 0; v < 2; v++)
        if (slab[v])
            rc_slab_unref(slab[v]);
}

uint64_t rc_pubsub_publish(struct rc_server *s, bool shard, const char *chan, size_t clen,
                           const char *payload, size_t len)
{
    uint64_t receivers = 0;
    struct rc_chan *ch;
    struct rc_mdata_pub mdp, *md = NULL;

    s->stats.messages_published++;
    if (RC_UNLIKELY(s->cfg.nmdata_rules > 0) && !shard)
        md = rc_mdata_begin(s, &mdp, chan, clen, payload, len);
    ch = rc_dict_get(shard ? s->shard_channels : s->channels, chan, clen);
    if (ch && ch->n) {
        receivers += ch->n;
        fan_out(s, ch, shard ? "smessage" : "message", NULL, 0, chan, clen, payload, len, md);
    }
    if (!shard) {
        /* A delivery may disconnect a pattern's last subscriber, which
         * swap-removes it from pattern_list: walk backwards. */
        for (uint32_t i = npatterns; i-- > 0;) {
            if (i >= npatterns)
                continue;
            struct rc_chan *p = pattern_list[i];
            if (!rc_glob_match(p->name, p->len, chan, clen))
                continue;
            receivers += p->n;
            fan_out(s, p, "pmessage", p->name, p->len, chan, clen, payload, len, md);
        }
    }
    if (md)
        rc_mdata_end(s, md);
    s->stats.deliveries += receivers;
    return receivers;
}

void rc_cmd_publish(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    uint64_t n = rc_pubsub_publish(s, false, r->argv[1], r->argvlen[1], r->argv[2], r->argvlen[2]);
    rc_resp_int(&s->rbuf, (int64_t)n);
}

void rc_cmd_spublish(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    uint64_t n = rc_pubsub_publish(s, true, r->argv[1], r->argvlen[1], r->argv[2], r->argvlen[2]);
    rc_resp_int(&s->rbuf, (int64_t)n);
}

/* ---- PUBSUB ---- */

static void list_channels(struct rc_server *s, struct rc_conn *c, struct rc_dict *d,
                          const struct rc_req *r)
{
    const char *pat = r->argc == 3 ? r->argv[2] : NULL;
    size_t plen = r->argc == 3 ? r->argvlen[2] : 0;
    struct rc_dict_iter it;
    const char *k;
    size_t kl, n = 0;
    void *v;
    struct rc_buf items = {0};

    rc_dict_iter_init(&it);
    while (rc_dict_next(d, &it, &k, &kl, &v)) {
        if (pat && !rc_glob_match(pat, plen, k, kl))
            continue;
        rc_resp_bulk(&items, k, kl);
        n++;
    }
    rc_resp_array(&s->rbuf, (int64_t)n);
    rc_buf_append(&s->rbuf, items.p, items.len);
    rc_buf_free(&items);
}

static void numsub(struct rc_server *s, struct rc_conn *c, struct rc_dict *d,
                   const struct rc_req *r)
{
    rc_resp_array(&s->rbuf, 2 * (int64_t)(r->argc - 2));
    for (int i = 2; i < r->argc; i++) {
        struct rc_chan *ch = rc_dict_get(d, r->argv[i], r->argvlen[i]);
        rc_resp_bulk(&s->rbuf, r->argv[i], r->argvlen[i]);
        rc_resp_int(&s->rbuf, ch ? ch->n : 0);
    }
}

static const char *const pubsub_help[] = {
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
};

/* Redis's addReplySubcommandSyntaxError(): the subcommand as typed. */
static void syntax_error(struct rc_server *s, const char *sub, size_t sl)
{
    rc_resp_errorf(&s->rbuf,
                   "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try PUBSUB "
                   "HELP.",
                   (int)RC_MIN(sl, 128), sub);
}

void rc_cmd_pubsub(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    const char *sub = r->argv[1];
    size_t sl = r->argvlen[1];

    if (rc_strcaseeq(sub, sl, "help") && r->argc == 2) {
        rc_resp_array(&s->rbuf, (int64_t)RC_ARRAY_LEN(pubsub_help));
        for (size_t i = 0; i < RC_ARRAY_LEN(pubsub_help); i++)
            rc_resp_simple(&s->rbuf, pubsub_help[i]);
    } else if (rc_strcaseeq(sub, sl, "channels")) {
        if (r->argc > 3)
            return syntax_error(s, sub, sl);
        list_channels(s, c, s->channels, r);
    } else if (rc_strcaseeq(sub, sl, "shardchannels")) {
        if (r->argc > 3)
            return syntax_error(s, sub, sl);
        list_channels(s, c, s->shard_channels, r);
    } else if (rc_strcaseeq(sub, sl, "numsub")) {
        numsub(s, c, s->channels, r);
    } else if (rc_strcaseeq(sub, sl, "shardnumsub")) {
        numsub(s, c, s->shard_channels, r);
    } else if (rc_strcaseeq(sub, sl, "numpat")) {
        if (r->argc != 2)
            return rc_reply_arity(s, "pubsub|numpat");
        rc_resp_int(&s->rbuf, npatterns);
    } else {
        if (rc_strcaseeq(sub, sl, "help"))
            return rc_reply_arity(s, "pubsub|help");
        rc_reply_unknown_sub(s, "PUBSUB", sub, sl);
    }
}
