/* cmd_pubsub.c -- the pub/sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, (S)PUBLISH, PUBSUB.
 *
 * The engine keeps the tables and does the fan-out; this file speaks RESP
 * around it: the confirmations Redis sends (one per name, with the client's
 * subscription count), the receiver count of PUBLISH, and PUBSUB's
 * introspection. A SUBSCRIBE to a channel with a kept last value queues the
 * confirmation first and the value right after it (mdata.h), so nothing a
 * publisher sends can come in between.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "glob.h"
#include "mdata.h"
#include "upstream.h"

static const char *kind_name(enum rc_sub_kind t, bool sub)
{
    switch (t) {
    case RC_SUB_CHANNEL: return sub ? "subscribe" : "unsubscribe";
    case RC_SUB_PATTERN: return sub ? "psubscribe" : "punsubscribe";
    default: return sub ? "ssubscribe" : "sunsubscribe";
    }
}

/* Redis counts channels and patterns together, shard channels apart. */
static size_t sub_count(const struct rc_conn *c, enum rc_sub_kind t)
{
    if (t == RC_SUB_SHARD)
        return rc_sink_count(&c->sink, RC_SUB_SHARD);
    return rc_sink_count(&c->sink, RC_SUB_CHANNEL) + rc_sink_count(&c->sink, RC_SUB_PATTERN);
}

static void confirm(struct rc_server *s, struct rc_conn *c, enum rc_sub_kind t, bool sub,
                    const char *name, size_t len)
{
    rc_resp_push(&s->rbuf, c->proto, 3);
    rc_resp_bulkstr(&s->rbuf, kind_name(t, sub));
    if (name)
        rc_resp_bulk(&s->rbuf, name, len);
    else
        rc_resp_null(&s->rbuf, c->proto);
    rc_resp_int(&s->rbuf, (int64_t)sub_count(c, t));
}

bool rc_pubsub_name_ok(struct rc_server *s, const char *name, size_t len)
{
    if (!s->cfg.max_name_len || len <= s->cfg.max_name_len)
        return true;
    rc_resp_errorf(&s->rbuf, "ERR channel or pattern name longer than max-name-len (%llu bytes)",
                   (unsigned long long)s->cfg.max_name_len);
    return false;
}

static void do_subscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r,
                         enum rc_sub_kind t)
{
    /* All or nothing: one name too long refuses the whole command. */
    for (int i = 1; i < r->argc; i++)
        if (!rc_pubsub_name_ok(s, r->argv[i], r->argvlen[i]))
            return;
    /* At the edge of a NATS cluster, a name NATS cannot carry fails the
     * whole command before anything changes, like Redis's NOPERM. */
    for (int i = 1; s->up && i < r->argc; i++) {
        const char *why = rc_upstream_refuse(s, t, r->argv[i], r->argvlen[i], 0);
        if (why)
            return rc_resp_error(&s->rbuf, why);
    }
    for (int i = 1; i < r->argc; i++) {
        bool added = rc_engine_subscribe(s->eng, &c->sink, t, r->argv[i], r->argvlen[i]);
        confirm(s, c, t, true, r->argv[i], r->argvlen[i]);
        /* mdata last value: confirmation, then the cached value, then live
         * messages -- one loop thread, so nothing can come in between. */
        if (added && t == RC_SUB_CHANNEL && s->cfg.md.nrules) {
            rc_conn_flush_reply(s, c);
            rc_mdata_snapshot(s->eng, &c->sink, r->argv[i], r->argvlen[i]);
        }
    }
}

bool rc_pubsub_subscribe_channel(struct rc_server *s, struct rc_conn *c, const char *name,
                                 size_t len)
{
    bool added = rc_engine_subscribe(s->eng, &c->sink, RC_SUB_CHANNEL, name, len);
    confirm(s, c, RC_SUB_CHANNEL, true, name, len);
    return added;
}

struct unsub_reply {
    struct rc_server *s;
    struct rc_conn *c;
    enum rc_sub_kind t;
};

static void unsub_confirm(void *arg, const char *name, size_t len)
{
    struct unsub_reply *u = arg;
    confirm(u->s, u->c, u->t, false, name, len);
}

static void do_unsubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r,
                           enum rc_sub_kind t)
{
    if (r->argc == 1) {
        struct unsub_reply u = {s, c, t};
        if (!rc_engine_unsubscribe_kind(s->eng, &c->sink, t, unsub_confirm, &u))
            confirm(s, c, t, false, NULL, 0);
        return;
    }
    for (int i = 1; i < r->argc; i++) {
        rc_engine_unsubscribe(s->eng, &c->sink, t, r->argv[i], r->argvlen[i]);
        confirm(s, c, t, false, r->argv[i], r->argvlen[i]);
    }
}

void rc_cmd_subscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_subscribe(s, c, r, RC_SUB_CHANNEL);
}

void rc_cmd_psubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_subscribe(s, c, r, RC_SUB_PATTERN);
}

void rc_cmd_ssubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_subscribe(s, c, r, RC_SUB_SHARD);
}

void rc_cmd_unsubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_unsubscribe(s, c, r, RC_SUB_CHANNEL);
}

void rc_cmd_punsubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_unsubscribe(s, c, r, RC_SUB_PATTERN);
}

void rc_cmd_sunsubscribe(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    do_unsubscribe(s, c, r, RC_SUB_SHARD);
}

void rc_cmd_publish(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    int64_t n;

    if (!rc_pubsub_name_ok(s, r->argv[1], r->argvlen[1]))
        return;
    if (s->up) {
        const char *why =
            rc_upstream_refuse(s, RC_SUB_CHANNEL, r->argv[1], r->argvlen[1], r->argvlen[2]);
        if (why)
            return rc_resp_error(&s->rbuf, why);
    }
    /* The reply counts this server's receivers only (docs/cluster.md);
     * with workers it may come later, from the channel's owner. */
    n = rc_route_publish(s, c, false, r->argv[1], r->argvlen[1], r->argv[2], r->argvlen[2]);
    rc_upstream_forward(s, r->argv[1], r->argvlen[1], r->argv[2], r->argvlen[2]);
    if (n >= 0)
        rc_resp_int(&s->rbuf, n);
}

void rc_cmd_spublish(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    if (!rc_pubsub_name_ok(s, r->argv[1], r->argvlen[1]))
        return;
    int64_t n = rc_route_publish(s, c, true, r->argv[1], r->argvlen[1], r->argv[2], r->argvlen[2]);
    if (n >= 0)
        rc_resp_int(&s->rbuf, n);
}

/* ---- PUBSUB ---- */

struct list_ctx {
    const char *pat;
    size_t plen;
    uint64_t n;
    struct rc_buf items;
};

static void list_one(void *arg, const char *name, size_t len)
{
    struct list_ctx *l = arg;
    if (l->pat && !rc_glob_match(l->pat, l->plen, name, len))
        return;
    rc_resp_bulk(&l->items, name, len);
    l->n++;
}

/* One worker's channels (those it owns: each channel is listed once):
 * a count, then the names as RESP bulk strings. */
static void channels_part(struct rc_server *w, const struct rc_gather *g, struct rc_buf *out)
{
    bool shard = g->arg;
    struct list_ctx l = {
        g->argc == 3 ? g->argv[2] : NULL, g->argc == 3 ? g->argvlen[2] : 0, 0, {0}};

    if (w->wk)
        rc_worker_each_owned(w, shard, list_one, &l);
    else
        rc_engine_each(w->eng, shard ? RC_SUB_SHARD : RC_SUB_CHANNEL, list_one, &l);
    rc_buf_append(out, &l.n, sizeof(l.n));
    rc_buf_append(out, l.items.p ? l.items.p : "", l.items.len);
    rc_buf_free(&l.items);
}

static void channels_combine(struct rc_server *s, struct rc_conn *c, struct rc_gather *g)
{
    uint64_t n = 0, k;

    for (int i = 0; i < g->n; i++)
        if (g->parts[i].len >= sizeof(k)) {
            memcpy(&k, g->parts[i].p, sizeof(k));
            n += k;
        }
    rc_resp_array(&s->rbuf, (int64_t)n);
    for (int i = 0; i < g->n; i++)
        if (g->parts[i].len > sizeof(k))
            rc_buf_append(&s->rbuf, g->parts[i].p + sizeof(k), g->parts[i].len - sizeof(k));
}

/* One worker's subscriber counts of the channels asked for. */
static void numsub_part(struct rc_server *w, const struct rc_gather *g, struct rc_buf *out)
{
    enum rc_sub_kind t = g->arg ? RC_SUB_SHARD : RC_SUB_CHANNEL;

    for (int i = 2; i < g->argc; i++) {
        uint64_t n = rc_engine_numsub(w->eng, t, g->argv[i], g->argvlen[i]);
        rc_buf_append(out, &n, sizeof(n));
    }
}

static void numsub_combine(struct rc_server *s, struct rc_conn *c, struct rc_gather *g)
{
    rc_resp_array(&s->rbuf, 2 * (int64_t)(g->argc - 2));
    for (int i = 2; i < g->argc; i++) {
        uint64_t n = 0, k;
        for (int w = 0; w < g->n; w++)
            if (g->parts[w].len >= (size_t)(i - 1) * sizeof(k)) {
                memcpy(&k, g->parts[w].p + (size_t)(i - 2) * sizeof(k), sizeof(k));
                n += k;
            }
        rc_resp_bulk(&s->rbuf, g->argv[i], g->argvlen[i]);
        rc_resp_int(&s->rbuf, (int64_t)n);
    }
}

static void list_channels(struct rc_server *s, struct rc_conn *c, enum rc_sub_kind t,
                          const struct rc_req *r)
{
    rc_gather(s, c, r->argc, r->argv, r->argvlen, t == RC_SUB_SHARD, channels_part,
              channels_combine);
}

static void numsub(struct rc_server *s, struct rc_conn *c, enum rc_sub_kind t,
                   const struct rc_req *r)
{
    rc_gather(s, c, r->argc, r->argv, r->argvlen, t == RC_SUB_SHARD, numsub_part, numsub_combine);
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
        list_channels(s, c, RC_SUB_CHANNEL, r);
    } else if (rc_strcaseeq(sub, sl, "shardchannels")) {
        if (r->argc > 3)
            return syntax_error(s, sub, sl);
        list_channels(s, c, RC_SUB_SHARD, r);
    } else if (rc_strcaseeq(sub, sl, "numsub")) {
        numsub(s, c, RC_SUB_CHANNEL, r);
    } else if (rc_strcaseeq(sub, sl, "shardnumsub")) {
        numsub(s, c, RC_SUB_SHARD, r);
    } else if (rc_strcaseeq(sub, sl, "numpat")) {
        if (r->argc != 2)
            return rc_reply_arity(s, "pubsub|numpat");
        rc_resp_int(&s->rbuf, (int64_t)rc_worker_numpat(s));
    } else {
        if (rc_strcaseeq(sub, sl, "help"))
            return rc_reply_arity(s, "pubsub|help");
        rc_reply_unknown_sub(s, "PUBSUB", sub, sl);
    }
}
