/* commands.c -- the command table, dispatch, and connection-level commands.
 *
 * Dispatch follows Redis 7's processCommand() so that clients see the same
 * errors in the same order: unknown command (or unknown subcommand of a
 * container command), wrong arity, NOAUTH, then the RESP2 subscribed-context
 * rule. QUIT answers +OK and closes after the reply. The pub/sub commands live
 * in cmd_pubsub.c and INFO in info.c; this file holds the rest: PING, ECHO, QUIT,
 * RESET, HELLO, AUTH, SELECT, CLIENT, COMMAND, CONFIG and SHUTDOWN.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"
#include "glob.h"
#include "mdata.h"

#define PS RC_CMD_PUBSUBCTX
#define NA RC_CMD_NOAUTH

static const struct rc_cmd pubsub_subs[] = {
    {"pubsub|channels", -2, 0, rc_cmd_pubsub, "Returns the active channels.", "2.8.0", "pubsub",
     "pubsub loading stale", NULL},
    {"pubsub|help", 2, 0, rc_cmd_pubsub, "Returns helpful text about the different subcommands.",
     "6.2.0", "pubsub", "loading stale", NULL},
    {"pubsub|numpat", 2, 0, rc_cmd_pubsub, "Returns a count of unique pattern subscriptions.",
     "2.8.0", "pubsub", "pubsub loading stale", NULL},
    {"pubsub|numsub", -2, 0, rc_cmd_pubsub, "Returns a count of subscribers to channels.", "2.8.0",
     "pubsub", "pubsub loading stale", NULL},
    {"pubsub|shardchannels", -2, 0, rc_cmd_pubsub, "Returns the active shard channels.", "7.0.0",
     "pubsub", "pubsub loading stale", NULL},
    {"pubsub|shardnumsub", -2, 0, rc_cmd_pubsub,
     "Returns the count of subscribers of shard channels.", "7.0.0", "pubsub",
     "pubsub loading stale", NULL},
    {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
};

static const struct rc_cmd client_subs[] = {
    {"client|getname", 2, 0, rc_cmd_client, "Returns the name of the connection.", "2.6.9",
     "connection", "noscript loading stale", NULL},
    {"client|help", 2, 0, rc_cmd_client, "Returns helpful text about the different subcommands.",
     "5.0.0", "connection", "loading stale", NULL},
    {"client|id", 2, 0, rc_cmd_client, "Returns the unique client ID of the connection.", "5.0.0",
     "connection", "noscript loading stale", NULL},
    {"client|info", 2, 0, rc_cmd_client, "Returns information about the connection.", "6.2.0",
     "connection", "noscript loading stale", NULL},
    {"client|kill", -3, 0, rc_cmd_client, "Terminates open connections.", "2.4.0", "connection",
     "admin noscript loading stale", NULL},
    {"client|list", -2, 0, rc_cmd_client, "Lists open connections.", "2.4.0", "connection",
     "admin noscript loading stale", NULL},
    {"client|setinfo", 4, 0, rc_cmd_client,
     "Sets information specific to the client or connection.", "7.2.0", "connection",
     "noscript loading stale", NULL},
    {"client|setname", 3, 0, rc_cmd_client, "Sets the connection name.", "2.6.9", "connection",
     "noscript loading stale", NULL},
    {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
};

static const struct rc_cmd command_subs[] = {
    {"command|count", 2, 0, rc_cmd_command, "Returns a count of commands.", "2.8.13", "server",
     "loading stale", NULL},
    {"command|docs", -2, 0, rc_cmd_command,
     "Returns documentary information about one, multiple or all commands.", "7.0.0", "server",
     "loading stale", NULL},
    {"command|help", 2, 0, rc_cmd_command, "Returns helpful text about the different subcommands.",
     "5.0.0", "server", "loading stale", NULL},
    {"command|info", -2, 0, rc_cmd_command,
     "Returns information about one, multiple or all commands.", "2.8.13", "server",
     "loading stale", NULL},
    {"command|list", -2, 0, rc_cmd_command, "Returns a list of command names.", "7.0.0", "server",
     "loading stale", NULL},
    {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
};

static const struct rc_cmd config_subs[] = {
    {"config|get", -3, 0, rc_cmd_config,
     "Returns the effective values of configuration parameters.", "2.0.0", "server",
     "admin noscript loading stale", NULL},
    {"config|help", 2, 0, rc_cmd_config, "Returns helpful text about the different subcommands.",
     "5.0.0", "server", "loading stale", NULL},
    {"config|resetstat", 2, 0, rc_cmd_config, "Resets the server's statistics.", "2.0.0", "server",
     "admin noscript loading stale", NULL},
    {"config|set", -4, 0, rc_cmd_config, "Sets configuration parameters in-flight.", "2.0.0",
     "server", "admin noscript loading stale", NULL},
    {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
};

const struct rc_cmd rc_cmds[] = {
    {"auth", -2, NA | PS, rc_cmd_auth, "Authenticates the connection.", "1.0.0", "connection",
     "noscript loading stale fast no_auth allow_busy", NULL},
    {"client", -2, 0, rc_cmd_client, "A container for client connection commands.", "2.4.0",
     "connection", "", client_subs},
    {"command", -1, 0, rc_cmd_command, "Returns detailed information about all commands.", "2.8.13",
     "server", "loading stale", command_subs},
    {"config", -2, 0, rc_cmd_config, "A container for server configuration commands.", "2.0.0",
     "server", "", config_subs},
    {"echo", 2, 0, rc_cmd_echo, "Returns the given string.", "1.0.0", "connection", "fast", NULL},
    {"hello", -1, NA, rc_cmd_hello, "Handshakes with the Redis server.", "6.0.0", "connection",
     "noscript loading stale fast no_auth allow_busy", NULL},
    {"info", -1, 0, rc_cmd_info, "Returns information and statistics about the server.", "1.0.0",
     "server", "loading stale", NULL},
    {"ping", -1, PS, rc_cmd_ping, "Returns the server's liveliness response.", "1.0.0",
     "connection", "fast", NULL},
    {"psubscribe", -2, PS, rc_cmd_psubscribe,
     "Listens for messages published to channels that match one or more patterns.", "2.0.0",
     "pubsub", "pubsub noscript loading stale", NULL},
    {"publish", 3, 0, rc_cmd_publish, "Posts a message to a channel.", "2.0.0", "pubsub",
     "pubsub loading stale fast may_replicate", NULL},
    {"pubsub", -2, 0, rc_cmd_pubsub, "A container for Pub/Sub commands.", "2.8.0", "pubsub", "",
     pubsub_subs},
    {"punsubscribe", -1, PS, rc_cmd_punsubscribe,
     "Stops listening to messages published to channels that match one or more patterns.", "2.0.0",
     "pubsub", "pubsub noscript loading stale", NULL},
    {"quit", -1, NA | PS, rc_cmd_quit, "Closes the connection.", "1.0.0", "connection",
     "allow_busy noscript loading stale fast no_auth", NULL},
    {"rc.del", -2, 0, rc_cmd_rc_del,
     "Drops the market-data state (last value, history, sequence) of channels.", "ringcast",
     "pubsub", "write", NULL},
    {"rc.last", 2, 0, rc_cmd_rc_last, "Returns the cached last message of a channel.", "ringcast",
     "pubsub", "readonly fast", NULL},
    {"rc.lastp", -2, 0, rc_cmd_rc_lastp,
     "Returns the cached last messages of channels matching a pattern.", "ringcast", "pubsub",
     "readonly", NULL},
    {"rc.resume", 4, PS, rc_cmd_rc_resume,
     "Subscribes to a channel, replaying the messages after a sequence number.", "ringcast",
     "pubsub", "pubsub", NULL},
    {"rc.seqmode", 2, PS, rc_cmd_rc_seqmode,
     "Makes messages on sequenced channels carry their epoch and sequence.", "ringcast", "pubsub",
     "pubsub fast", NULL},
    {"reset", 1, NA | PS, rc_cmd_reset, "Resets the connection.", "6.2.0", "connection",
     "noscript loading stale fast no_auth allow_busy", NULL},
    {"select", 2, 0, rc_cmd_select, "Changes the selected database.", "1.0.0", "connection",
     "loading stale fast", NULL},
    {"shutdown", -1, 0, rc_cmd_shutdown,
     "Stops accepting work, flushes queued output and shuts down the server.", "1.0.0", "server",
     "admin noscript loading stale no_multi allow_busy", NULL},
    {"spublish", 3, 0, rc_cmd_spublish, "Post a message to a shard channel", "7.0.0", "pubsub",
     "pubsub loading stale fast may_replicate", NULL},
    {"ssubscribe", -2, PS, rc_cmd_ssubscribe, "Listens for messages published to shard channels.",
     "7.0.0", "pubsub", "pubsub noscript loading stale", NULL},
    {"subscribe", -2, PS, rc_cmd_subscribe, "Listens for messages published to channels.", "2.0.0",
     "pubsub", "pubsub noscript loading stale", NULL},
    {"sunsubscribe", -1, PS, rc_cmd_sunsubscribe,
     "Stops listening to messages posted to shard channels.", "7.0.0", "pubsub",
     "pubsub noscript loading stale", NULL},
    {"unsubscribe", -1, PS, rc_cmd_unsubscribe, "Stops listening to messages posted to channels.",
     "2.0.0", "pubsub", "pubsub noscript loading stale", NULL},
};
const size_t rc_ncmds = RC_ARRAY_LEN(rc_cmds);

static const struct rc_cmd *find_in(const struct rc_cmd *t, size_t n, const char *name, size_t len,
                                    size_t skip)
{
    for (size_t i = 0; i < n && t[i].name; i++) {
        const char *nm = t[i].name + skip;
        if (strlen(nm) == len && !strncasecmp(nm, name, len))
            return &t[i];
    }
    return NULL;
}

const struct rc_cmd *rc_cmd_lookup(const char *name, size_t len)
{
    return find_in(rc_cmds, rc_ncmds, name, len, 0);
}

/* Redis prints arguments with %s, so they stop at a NUL byte, and maps CR
 * and LF to spaces to keep the error on one line. */
static void add_arg(struct rc_buf *b, const char *p, size_t len, size_t max)
{
    const char *nul = memchr(p, '\0', len);
    if (nul)
        len = (size_t)(nul - p);
    if (len > max)
        len = max;
    for (size_t i = 0; i < len; i++)
        rc_buf_appendc(b, (p[i] == '\r' || p[i] == '\n') ? ' ' : p[i]);
}

static void reply_error_buf(struct rc_server *s, struct rc_buf *msg)
{
    rc_buf_appendc(msg, '\0');
    rc_resp_error(&s->rbuf, msg->p);
    rc_buf_free(msg);
}

static void reply_unknown(struct rc_server *s, const struct rc_req *r)
{
    struct rc_buf m = {0}, args = {0};

    for (int i = 1; i < r->argc && args.len < 128; i++) {
        size_t room = 128 - args.len; /* Redis's precision is taken before the quote */
        rc_buf_appendc(&args, '\'');
        add_arg(&args, r->argv[i], r->argvlen[i], room);
        rc_buf_append(&args, "' ", 2);
    }
    rc_buf_append(&m, "ERR unknown command '", 21);
    add_arg(&m, r->argv[0], r->argvlen[0], 128);
    rc_buf_append(&m, "', with args beginning with: ", 29);
    rc_buf_append(&m, args.p, args.len);
    rc_buf_free(&args);
    reply_error_buf(s, &m);
}

void rc_reply_unknown_sub(struct rc_server *s, const char *cmd, const char *sub, size_t sublen)
{
    struct rc_buf m = {0};
    rc_buf_append(&m, "ERR unknown subcommand '", 24);
    add_arg(&m, sub, sublen, 128);
    rc_buf_appendf(&m, "'. Try %s HELP.", cmd);
    reply_error_buf(s, &m);
}

void rc_reply_arity(struct rc_server *s, const char *name)
{
    rc_resp_errorf(&s->rbuf, "ERR wrong number of arguments for '%s' command", name);
}

void rc_cmd_execute(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    const struct rc_cmd *cmd = rc_cmd_lookup(r->argv[0], r->argvlen[0]);

    s->stats.commands++;
    c->tot_cmds++;
    if (cmd && cmd->subs && r->argc >= 2) {
        const struct rc_cmd *sub =
            find_in(cmd->subs, SIZE_MAX, r->argv[1], r->argvlen[1], strlen(cmd->name) + 1);
        if (!sub) {
            char up[16];
            size_t i;
            for (i = 0; i < sizeof(up) - 1 && cmd->name[i]; i++)
                up[i] = (char)toupper((unsigned char)cmd->name[i]);
            up[i] = '\0';
            rc_reply_unknown_sub(s, up, r->argv[1], r->argvlen[1]);
            goto done;
        }
        cmd = sub;
    }
    if (!cmd) {
        reply_unknown(s, r);
        goto done;
    }
    c->last_cmd = cmd->name;
    if ((cmd->arity > 0 && r->argc != cmd->arity) || r->argc < -cmd->arity) {
        rc_reply_arity(s, cmd->name);
    } else if (!(c->io.flags & RC_CONN_AUTHED) && !(cmd->flags & RC_CMD_NOAUTH)) {
        rc_resp_error(&s->rbuf, "NOAUTH Authentication required.");
    } else if (c->proto == 2 && !(cmd->flags & RC_CMD_PUBSUBCTX) && rc_conn_subscribed(c)) {
        rc_resp_errorf(&s->rbuf,
                       "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                       "QUIT / RESET are allowed in this context",
                       cmd->name);
    } else {
        cmd->fn(s, c, r);
    }
done:
    rc_conn_flush_reply(s, c);
}

/* ---- Connection commands ---- */

void rc_cmd_ping(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    if (r->argc > 2)
        return rc_reply_arity(s, "ping");
    if (c->proto == 2 && rc_conn_subscribed(c)) {
        rc_resp_array(&s->rbuf, 2);
        rc_resp_bulkstr(&s->rbuf, "pong");
        if (r->argc == 2)
            rc_resp_bulk(&s->rbuf, r->argv[1], r->argvlen[1]);
        else
            rc_resp_bulk(&s->rbuf, "", 0);
    } else if (r->argc == 2) {
        rc_resp_bulk(&s->rbuf, r->argv[1], r->argvlen[1]);
    } else {
        rc_resp_simple(&s->rbuf, "PONG");
    }
}

void rc_cmd_echo(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    rc_resp_bulk(&s->rbuf, r->argv[1], r->argvlen[1]);
}

void rc_cmd_quit(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    rc_resp_simple(&s->rbuf, "OK");
    c->io.flags |= RC_IO_CLOSE_AFTER_REPLY;
}

void rc_cmd_reset(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    rc_engine_sink_reset(s->eng, &c->sink);
    rc_conn_set_proto(s, c, 2);
    free(c->name);
    c->name = NULL;
    if (s->cfg.requirepass)
        c->io.flags &= ~RC_CONN_AUTHED;
    rc_resp_simple(&s->rbuf, "RESET");
}

/* SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT], parsed as Redis 7.0 does.
 * ringcast keeps no data on disk, so SAVE and NOSAVE are accepted and do
 * nothing, and FORCE has no error to ignore. The server then shuts down as
 * on SIGTERM: it stops accepting and running requests and drains queued
 * output for up to shutdown-timeout; NOW skips the drain. Like Redis, the
 * client gets no reply: the connection closes when the server exits. ABORT
 * can never find a shutdown to cancel, because no request runs once one
 * has begun. */
void rc_cmd_shutdown(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    bool save = false, nosave = false, now = false, force = false, abort_req = false;

    for (int i = 1; i < r->argc; i++) {
        const char *a = r->argv[i];
        size_t n = r->argvlen[i];
        if (rc_strcaseeq(a, n, "nosave"))
            nosave = true;
        else if (rc_strcaseeq(a, n, "save"))
            save = true;
        else if (rc_strcaseeq(a, n, "now"))
            now = true;
        else if (rc_strcaseeq(a, n, "force"))
            force = true;
        else if (rc_strcaseeq(a, n, "abort"))
            abort_req = true;
        else
            return rc_resp_error(&s->rbuf, "ERR syntax error");
    }
    if ((abort_req && (save || nosave || now || force)) || (save && nosave))
        return rc_resp_error(&s->rbuf, "ERR syntax error");
    if (abort_req)
        return rc_resp_error(&s->rbuf, "ERR No shutdown in progress.");
    rc_log(&s->log, RC_LOG_WARNING, "User requested shutdown... (client id=%llu addr=%s%s)",
           (unsigned long long)c->io.id, c->addr, now ? ", NOW: no drain" : "");
    s->stop_now = now;
    s->stop_by_user = true;
    if (s->wk)
        atomic_store(&s->wk->by_user, true);
    rc_workers_request_stop(s, now);
}

/* Constant-time comparison so the reply time does not leak the password. */
bool rc_password_ok(const struct rc_server *s, const char *p, size_t len)
{
    const char *want = s->cfg.requirepass;
    size_t wl = want ? strlen(want) : 0;
    unsigned char diff = (unsigned char)(wl != len);

    if (!want)
        return false;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(p[i] ^ want[i % (wl ? wl : 1)]);
    return diff == 0;
}

/* AUTH semantics shared with HELLO: returns true when authenticated. */
static bool try_auth(struct rc_server *s, struct rc_conn *c, const char *user, size_t ulen,
                     const char *pass, size_t plen)
{
    bool user_ok = !user || rc_strcaseeq(user, ulen, "default");
    bool ok = rc_password_ok(s, pass, plen);
    if (user_ok && ok) {
        c->io.flags |= RC_CONN_AUTHED;
        return true;
    }
    rc_resp_error(&s->rbuf, "WRONGPASS invalid username-password pair or user is disabled.");
    return false;
}

void rc_cmd_auth(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    if (r->argc > 3) {
        rc_resp_error(&s->rbuf, "ERR syntax error");
        return;
    }
    if (r->argc == 2 && !s->cfg.requirepass) {
        rc_resp_error(&s->rbuf, "ERR AUTH <password> called without any password configured for "
                                "the default user. Are you sure your configuration is correct?");
        return;
    }
    if (r->argc == 3 && !s->cfg.requirepass) {
        /* The default user has no password: any password works for it. */
        if (rc_strcaseeq(r->argv[1], r->argvlen[1], "default")) {
            rc_resp_simple(&s->rbuf, "OK");
            return;
        }
        rc_resp_error(&s->rbuf, "WRONGPASS invalid username-password pair or user is disabled.");
        return;
    }
    if (r->argc == 3 ? try_auth(s, c, r->argv[1], r->argvlen[1], r->argv[2], r->argvlen[2])
                     : try_auth(s, c, NULL, 0, r->argv[1], r->argvlen[1]))
        rc_resp_simple(&s->rbuf, "OK");
}

void rc_cmd_hello(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    int64_t ver = c->proto;
    int i = 1;

    if (r->argc >= 2) {
        if (!rc_parse_i64(r->argv[1], r->argvlen[1], &ver)) {
            rc_resp_error(&s->rbuf, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver < 2 || ver > 3) {
            rc_resp_error(&s->rbuf, "NOPROTO unsupported protocol version");
            return;
        }
        i = 2;
    }
    const char *user = NULL, *pass = NULL, *name = NULL;
    size_t ulen = 0, plen = 0, nlen = 0;
    for (; i < r->argc; i++) {
        int left = r->argc - i - 1;
        if (rc_strcaseeq(r->argv[i], r->argvlen[i], "auth") && left >= 2) {
            user = r->argv[i + 1];
            ulen = r->argvlen[i + 1];
            pass = r->argv[i + 2];
            plen = r->argvlen[i + 2];
            i += 2;
        } else if (rc_strcaseeq(r->argv[i], r->argvlen[i], "setname") && left >= 1) {
            name = r->argv[i + 1];
            nlen = r->argvlen[i + 1];
            i += 1;
        } else {
            struct rc_buf m = {0};
            rc_buf_append(&m, "ERR Syntax error in HELLO option '", 34);
            add_arg(&m, r->argv[i], r->argvlen[i], 128);
            rc_buf_appendc(&m, '\'');
            reply_error_buf(s, &m);
            return;
        }
    }
    if (user && s->cfg.requirepass && !try_auth(s, c, user, ulen, pass, plen))
        return;
    if (user && !s->cfg.requirepass && !rc_strcaseeq(user, ulen, "default")) {
        rc_resp_error(&s->rbuf, "WRONGPASS invalid username-password pair or user is disabled.");
        return;
    }
    if (!(c->io.flags & RC_CONN_AUTHED)) {
        rc_resp_error(&s->rbuf,
                      "NOAUTH HELLO must be called with the client already authenticated, "
                      "otherwise the HELLO AUTH <user> <pass> option can be used to "
                      "authenticate the client and select the RESP protocol version at the same "
                      "time");
        return;
    }
    if (name) {
        for (size_t k = 0; k < nlen; k++) {
            if (name[k] < '!' || name[k] > '~') {
                rc_resp_error(&s->rbuf, "ERR Client names cannot contain spaces, newlines or "
                                        "special characters.");
                return;
            }
        }
        free(c->name);
        c->name = nlen ? rc_xmemdup(name, nlen) : NULL;
    }
    rc_conn_set_proto(s, c, (int)ver);
    rc_resp_map(&s->rbuf, c->proto, 7);
    rc_resp_bulkstr(&s->rbuf, "server");
    rc_resp_bulkstr(&s->rbuf, "redis");
    rc_resp_bulkstr(&s->rbuf, "version");
    rc_resp_bulkstr(&s->rbuf, RC_REDIS_VERSION);
    rc_resp_bulkstr(&s->rbuf, "proto");
    rc_resp_int(&s->rbuf, c->proto);
    rc_resp_bulkstr(&s->rbuf, "id");
    rc_resp_int(&s->rbuf, (int64_t)c->io.id);
    rc_resp_bulkstr(&s->rbuf, "mode");
    rc_resp_bulkstr(&s->rbuf, "standalone");
    rc_resp_bulkstr(&s->rbuf, "role");
    rc_resp_bulkstr(&s->rbuf, "master");
    rc_resp_bulkstr(&s->rbuf, "modules");
    rc_resp_array(&s->rbuf, 0);
}

void rc_cmd_select(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    int64_t db;
    if (!rc_parse_i64(r->argv[1], r->argvlen[1], &db) || db < INT32_MIN || db > INT32_MAX) {
        rc_resp_error(&s->rbuf, "ERR value is not an integer or out of range");
        return;
    }
    if (db != 0) {
        rc_resp_error(&s->rbuf, "ERR DB index is out of range");
        return;
    }
    rc_resp_simple(&s->rbuf, "OK");
}

/* ---- CLIENT ---- */

void rc_client_info_line(struct rc_server *s, struct rc_conn *c, struct rc_buf *b)
{
    uint64_t now = rc_now_ms();
    size_t nsub = rc_sink_count(&c->sink, RC_SUB_CHANNEL);
    size_t npsub = rc_sink_count(&c->sink, RC_SUB_PATTERN);
    size_t nssub = rc_sink_count(&c->sink, RC_SUB_SHARD);
    const char *flags = (nsub + npsub + nssub) ? "P" : "N";

    rc_buf_appendf(b,
                   "id=%llu addr=%s laddr=%s fd=%d name=%s age=%llu idle=%llu flags=%s db=0 "
                   "sub=%zu psub=%zu ssub=%zu multi=-1 qbuf=%zu qbuf-free=%zu argv-mem=0 "
                   "multi-mem=0 rbs=0 rbp=0 obl=0 oll=%u omem=%llu tot-mem=%zu events=r%s "
                   "cmd=%s user=default redir=-1 resp=%d",
                   (unsigned long long)c->io.id, c->addr, c->laddr, c->io.fd,
                   c->name ? c->name : "", (unsigned long long)((now - c->ctime_ms) / 1000),
                   (unsigned long long)((now - c->last_ms) / 1000), flags, nsub, npsub, nssub,
                   c->qbuf.len, c->qbuf.cap - c->qbuf.len, c->io.out.n,
                   (unsigned long long)c->io.out.bytes,
                   sizeof(*c) + c->qbuf.cap + (size_t)c->io.out.cap * sizeof(struct rc_ref),
                   rc_queue_empty(&c->io.out) ? "" : "w", c->last_cmd, c->proto);
    rc_mdata_client_fields(s->eng, &c->sink, b);
    if (s->wk)
        rc_buf_appendf(b, " rc-worker=%d", s->widx);
    rc_buf_appendc(b, '\n');
}

static const char *const client_help[] = {
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set the client library name or version.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Prints this help.",
};

static void reply_help(struct rc_server *s, const char *const *lines, size_t n)
{
    rc_resp_array(&s->rbuf, (int64_t)n);
    for (size_t i = 0; i < n; i++)
        rc_resp_simple(&s->rbuf, lines[i]);
}

static bool valid_name(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '!' || p[i] > '~')
            return false;
    return true;
}

/* CLIENT KILL's filter. */
struct kill_filter {
    const char *addr, *laddr;
    size_t al, ll;
    int64_t id, type; /* type: -1 any, 0 normal, 1 pubsub, 2 replication (none here) */
    bool skipme, old;
};

/* Parses CLIENT KILL's arguments (argv[0] is "client"); false with the
 * error in s->rbuf when they are wrong. */
static bool kill_parse(struct rc_server *s, int argc, const char *const *argv,
                       const size_t *argvlen, struct kill_filter *f)
{
    memset(f, 0, sizeof(*f));
    f->type = -1;
    f->skipme = true;
    f->old = argc == 3;
    if (f->old) {
        f->addr = argv[2];
        f->al = argvlen[2];
        f->skipme = false;
        return true;
    }
    for (int i = 2; i < argc; i += 2) {
        const char *o = argv[i], *v;
        size_t ol = argvlen[i], vl;
        if (i + 1 >= argc) {
            rc_resp_error(&s->rbuf, "ERR syntax error");
            return false;
        }
        v = argv[i + 1];
        vl = argvlen[i + 1];
        if (rc_strcaseeq(o, ol, "id")) {
            if (!rc_parse_i64(v, vl, &f->id) || f->id < 1) {
                rc_resp_error(&s->rbuf, "ERR client-id should be greater than 0");
                return false;
            }
        } else if (rc_strcaseeq(o, ol, "type")) {
            if (rc_strcaseeq(v, vl, "normal"))
                f->type = 0;
            else if (rc_strcaseeq(v, vl, "pubsub"))
                f->type = 1;
            else if (rc_strcaseeq(v, vl, "master") || rc_strcaseeq(v, vl, "replica") ||
                     rc_strcaseeq(v, vl, "slave"))
                f->type = 2;
            else {
                rc_resp_errorf(&s->rbuf, "ERR Unknown client type '%.*s'", (int)RC_MIN(vl, 128), v);
                return false;
            }
        } else if (rc_strcaseeq(o, ol, "addr")) {
            f->addr = v;
            f->al = vl;
        } else if (rc_strcaseeq(o, ol, "laddr")) {
            f->laddr = v;
            f->ll = vl;
        } else if (rc_strcaseeq(o, ol, "user")) {
            if (!rc_strcaseeq(v, vl, "default")) { /* no ACL users but default */
                rc_resp_errorf(&s->rbuf, "ERR No such user '%.*s'", (int)RC_MIN(vl, 128), v);
                return false;
            }
        } else if (rc_strcaseeq(o, ol, "skipme")) {
            if (rc_strcaseeq(v, vl, "yes"))
                f->skipme = true;
            else if (rc_strcaseeq(v, vl, "no"))
                f->skipme = false;
            else {
                rc_resp_error(&s->rbuf, "ERR syntax error");
                return false;
            }
        } else {
            rc_resp_error(&s->rbuf, "ERR syntax error");
            return false;
        }
    }
    return true;
}

/* One worker's share of CLIENT KILL: closes its matching clients; the part
 * is how many (the asking client, g->arg, is closed after the reply). */
static void kill_part(struct rc_server *w, const struct rc_gather *g, struct rc_buf *out)
{
    struct kill_filter f;
    uint64_t killed = 0;

    if (!kill_parse(w, g->argc, (const char *const *)g->argv, g->argvlen, &f)) {
        w->rbuf.len = 0; /* checked by the asking worker already */
        return;
    }
    RC_FOR_EACH_CONN(w, x)
    {
        bool self = x->io.id == g->arg;
        if ((f.id && x->io.id != (uint64_t)f.id) ||
            (f.addr && (strlen(x->addr) != f.al || memcmp(x->addr, f.addr, f.al) != 0)) ||
            (f.laddr && (strlen(x->laddr) != f.ll || memcmp(x->laddr, f.laddr, f.ll) != 0)) ||
            (f.type >= 0 && f.type != (rc_conn_subscribed(x) ? 1 : 0)) || (self && f.skipme) ||
            (x->io.flags & RC_IO_CLOSE_ASAP))
            continue;
        killed++;
        if (self)
            x->io.flags |= RC_IO_CLOSE_AFTER_REPLY; /* once it has its reply */
        else
            rc_conn_close_asap(w, x, "CLIENT KILL");
    }
    rc_buf_append(out, &killed, sizeof(killed));
}

static uint64_t sum_parts(const struct rc_gather *g)
{
    uint64_t n = 0, v;

    for (int i = 0; i < g->n; i++)
        if (g->parts[i].len == sizeof(v)) {
            memcpy(&v, g->parts[i].p, sizeof(v));
            n += v;
        }
    return n;
}

static void kill_combine(struct rc_server *s, struct rc_conn *c, struct rc_gather *g)
{
    uint64_t killed = sum_parts(g);

    if (g->argc == 3 && !killed)
        rc_resp_error(&s->rbuf, "ERR No such client");
    else if (g->argc == 3)
        rc_resp_simple(&s->rbuf, "OK");
    else
        rc_resp_int(&s->rbuf, (int64_t)killed);
}

/* CLIENT KILL, as Redis 7.0: the old form (one address, +OK or an error)
 * and the filter form (ID, ADDR, LADDR, TYPE, USER, SKIPME; replies how
 * many), on every worker. The caller, when it is a victim, is closed after
 * this reply. */
static void client_kill(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    struct kill_filter f;

    if (!kill_parse(s, r->argc, r->argv, r->argvlen, &f))
        return;
    rc_gather(s, c, r->argc, r->argv, r->argvlen, c->io.id, kill_part, kill_combine);
}

/* CLIENT LIST's filter: TYPE, or the IDs asked for. */
static void list_part(struct rc_server *w, const struct rc_gather *g, struct rc_buf *out)
{
    bool typed = g->argc == 4 && rc_strcaseeq(g->argv[2], g->argvlen[2], "type");
    bool only_pubsub = typed && rc_strcaseeq(g->argv[3], g->argvlen[3], "pubsub");
    bool ids = g->argc > 3 && rc_strcaseeq(g->argv[2], g->argvlen[2], "id");

    RC_FOR_EACH_CONN(w, x)
    {
        if (typed && rc_conn_subscribed(x) != only_pubsub)
            continue;
        if (ids) {
            bool want = false;
            for (int k = 3; k < g->argc && !want; k++) {
                int64_t id = 0;
                want = rc_parse_i64(g->argv[k], g->argvlen[k], &id) && (uint64_t)id == x->io.id;
            }
            if (!want)
                continue;
        }
        rc_client_info_line(w, x, out);
    }
}

static uint64_t line_id(const char *line)
{
    return strtoull(line + 3, NULL, 10); /* "id=<n> ..." */
}

static int by_id(const void *a, const void *b)
{
    uint64_t x = line_id(*(const char *const *)a), y = line_id(*(const char *const *)b);
    return x < y ? -1 : x > y;
}

/* Every worker's lines, by id (or in the order of the IDs asked for, like Redis). */
static void list_combine(struct rc_server *s, struct rc_conn *c, struct rc_gather *g)
{
    bool ids = g->argc > 3 && rc_strcaseeq(g->argv[2], g->argvlen[2], "id");
    struct rc_buf all = {0}, b = {0};
    char **lines = NULL;
    size_t n = 0, cap = 0;

    for (int i = 0; i < g->n; i++)
        rc_buf_append(&all, g->parts[i].p ? g->parts[i].p : "", g->parts[i].len);
    rc_buf_appendc(&all, '\0');
    for (char *p = all.p, *nl; p && *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            lines = rc_xrealloc(lines, cap * sizeof(*lines));
        }
        lines[n++] = p;
    }
    if (!ids) {
        if (n)
            qsort(lines, n, sizeof(*lines), by_id);
        for (size_t i = 0; i < n; i++)
            rc_buf_appendf(&b, "%s\n", lines[i]);
    } else {
        for (int k = 3; k < g->argc; k++) {
            int64_t id = 0;
            rc_parse_i64(g->argv[k], g->argvlen[k], &id);
            for (size_t i = 0; i < n; i++)
                if (line_id(lines[i]) == (uint64_t)id)
                    rc_buf_appendf(&b, "%s\n", lines[i]);
        }
    }
    rc_resp_verbatim(&s->rbuf, c->proto, b.p ? b.p : "", b.len);
    free(lines);
    rc_buf_free(&all);
    rc_buf_free(&b);
}

void rc_cmd_client(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    const char *sub = r->argv[1];
    size_t sl = r->argvlen[1];

    if (rc_strcaseeq(sub, sl, "id")) {
        rc_resp_int(&s->rbuf, (int64_t)c->io.id);
    } else if (rc_strcaseeq(sub, sl, "kill")) {
        client_kill(s, c, r);
    } else if (rc_strcaseeq(sub, sl, "getname")) {
        if (c->name)
            rc_resp_bulkstr(&s->rbuf, c->name);
        else
            rc_resp_null(&s->rbuf, c->proto);
    } else if (rc_strcaseeq(sub, sl, "setname")) {
        if (!valid_name(r->argv[2], r->argvlen[2])) {
            rc_resp_error(
                &s->rbuf,
                "ERR Client names cannot contain spaces, newlines or special characters.");
            return;
        }
        free(c->name);
        c->name = r->argvlen[2] ? rc_xmemdup(r->argv[2], r->argvlen[2]) : NULL;
        rc_resp_simple(&s->rbuf, "OK");
    } else if (rc_strcaseeq(sub, sl, "setinfo")) {
        char **dst;
        if (rc_strcaseeq(r->argv[2], r->argvlen[2], "lib-name"))
            dst = &c->lib_name;
        else if (rc_strcaseeq(r->argv[2], r->argvlen[2], "lib-ver"))
            dst = &c->lib_ver;
        else {
            struct rc_buf m = {0};
            rc_buf_append(&m, "ERR Unrecognized option '", 25);
            add_arg(&m, r->argv[2], r->argvlen[2], 128);
            rc_buf_appendc(&m, '\'');
            reply_error_buf(s, &m);
            return;
        }
        if (!valid_name(r->argv[3], r->argvlen[3])) {
            rc_resp_errorf(&s->rbuf,
                           "ERR %s cannot contain spaces, newlines or special characters.",
                           dst == &c->lib_name ? "lib-name" : "lib-ver");
            return;
        }
        free(*dst);
        *dst = rc_xmemdup(r->argv[3], r->argvlen[3]);
        rc_resp_simple(&s->rbuf, "OK");
    } else if (rc_strcaseeq(sub, sl, "info")) {
        struct rc_buf b = {0};
        rc_client_info_line(s, c, &b);
        rc_resp_verbatim(&s->rbuf, c->proto, b.p, b.len);
        rc_buf_free(&b);
    } else if (rc_strcaseeq(sub, sl, "list")) {
        const char *const *ids = NULL;
        const size_t *idlens = NULL;
        int nids = 0;
        if (r->argc == 4 && rc_strcaseeq(r->argv[2], r->argvlen[2], "type")) {
            if (!rc_strcaseeq(r->argv[3], r->argvlen[3], "pubsub") &&
                !rc_strcaseeq(r->argv[3], r->argvlen[3], "normal")) {
                rc_resp_errorf(&s->rbuf, "ERR Unknown client type '%.*s'",
                               (int)RC_MIN(r->argvlen[3], 128), r->argv[3]);
                return;
            }
        } else if (r->argc > 3 && rc_strcaseeq(r->argv[2], r->argvlen[2], "id")) {
            ids = &r->argv[3];
            idlens = &r->argvlen[3];
            nids = r->argc - 3;
            for (int k = 0; k < nids; k++) {
                int64_t id;
                if (!rc_parse_i64(ids[k], idlens[k], &id) || id <= 0) {
                    rc_resp_error(&s->rbuf, "ERR Invalid client ID");
                    return;
                }
            }
        } else if (r->argc != 2) {
            rc_resp_error(&s->rbuf, "ERR syntax error");
            return;
        }
        rc_gather(s, c, r->argc, r->argv, r->argvlen, 0, list_part, list_combine);
    } else {
        reply_help(s, client_help, RC_ARRAY_LEN(client_help));
    }
}

/* ---- COMMAND ---- */

static void add_flags(struct rc_buf *b, int proto, const char *flags)
{
    char tmp[128];
    const char *words[16];
    size_t n = 0;

    snprintf(tmp, sizeof(tmp), "%s", flags);
    for (char *save = NULL, *w = strtok_r(tmp, " ", &save); w && n < RC_ARRAY_LEN(words);
         w = strtok_r(NULL, " ", &save))
        words[n++] = w;
    rc_resp_set(b, proto, (int64_t)n);
    for (size_t i = 0; i < n; i++)
        rc_resp_simple(b, words[i]);
}

static size_t count_subs(const struct rc_cmd *cmd)
{
    size_t n = 0;
    while (cmd->subs && cmd->subs[n].name)
        n++;
    return n;
}

static void command_info(struct rc_buf *b, int proto, const struct rc_cmd *cmd)
{
    char cat[32];
    size_t nsub = count_subs(cmd);

    rc_resp_array(b, 10);
    rc_resp_bulkstr(b, cmd->name);
    rc_resp_int(b, cmd->arity);
    add_flags(b, proto, cmd->cmdflags);
    rc_resp_int(b, 0);
    rc_resp_int(b, 0);
    rc_resp_int(b, 0);
    snprintf(cat, sizeof(cat), "@%s", cmd->group);
    rc_resp_set(b, proto, 1);
    rc_resp_simple(b, cat);
    rc_resp_set(b, proto, 0);
    rc_resp_array(b, 0);
    rc_resp_array(b, (int64_t)nsub);
    for (size_t i = 0; i < nsub; i++)
        command_info(b, proto, &cmd->subs[i]);
}

static void command_doc(struct rc_buf *b, int proto, const struct rc_cmd *cmd)
{
    size_t nsub = count_subs(cmd);

    rc_resp_bulkstr(b, cmd->name);
    rc_resp_map(b, proto, nsub ? 4 : 3);
    rc_resp_bulkstr(b, "summary");
    rc_resp_bulkstr(b, cmd->summary);
    rc_resp_bulkstr(b, "since");
    rc_resp_bulkstr(b, cmd->since);
    rc_resp_bulkstr(b, "group");
    rc_resp_bulkstr(b, cmd->group);
    if (nsub) {
        rc_resp_bulkstr(b, "subcommands");
        rc_resp_map(b, proto, (int64_t)nsub);
        for (size_t i = 0; i < nsub; i++)
            command_doc(b, proto, &cmd->subs[i]);
    }
}

/* Looks a name up among commands and "container|sub" names. */
static const struct rc_cmd *lookup_full(const char *name, size_t len)
{
    const char *bar = memchr(name, '|', len);
    if (!bar)
        return rc_cmd_lookup(name, len);
    const struct rc_cmd *cmd = rc_cmd_lookup(name, (size_t)(bar - name));
    if (!cmd || !cmd->subs)
        return NULL;
    return find_in(cmd->subs, SIZE_MAX, name, len, 0);
}

static const char *const command_help[] = {
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "HELP",
    "    Prints this help.",
};

void rc_cmd_command(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    if (r->argc == 1 || rc_strcaseeq(r->argv[1], r->argvlen[1], "info")) {
        if (r->argc <= 2) {
            rc_resp_array(&s->rbuf, (int64_t)rc_ncmds);
            for (size_t i = 0; i < rc_ncmds; i++)
                command_info(&s->rbuf, c->proto, &rc_cmds[i]);
            return;
        }
        rc_resp_array(&s->rbuf, r->argc - 2);
        for (int i = 2; i < r->argc; i++) {
            const struct rc_cmd *cmd = lookup_full(r->argv[i], r->argvlen[i]);
            if (cmd)
                command_info(&s->rbuf, c->proto, cmd);
            else
                rc_resp_null_array(&s->rbuf, c->proto);
        }
    } else if (rc_strcaseeq(r->argv[1], r->argvlen[1], "count")) {
        rc_resp_int(&s->rbuf, (int64_t)rc_ncmds);
    } else if (rc_strcaseeq(r->argv[1], r->argvlen[1], "list")) {
        rc_resp_array(&s->rbuf, (int64_t)rc_ncmds);
        for (size_t i = 0; i < rc_ncmds; i++)
            rc_resp_bulkstr(&s->rbuf, rc_cmds[i].name);
    } else if (rc_strcaseeq(r->argv[1], r->argvlen[1], "docs")) {
        struct rc_buf b = {0};
        int64_t n = 0;
        if (r->argc == 2) {
            for (size_t i = 0; i < rc_ncmds; i++, n++)
                command_doc(&b, c->proto, &rc_cmds[i]);
        } else {
            for (int i = 2; i < r->argc; i++) {
                const struct rc_cmd *cmd = lookup_full(r->argv[i], r->argvlen[i]);
                if (cmd) {
                    command_doc(&b, c->proto, cmd);
                    n++;
                }
            }
        }
        rc_resp_map(&s->rbuf, c->proto, n);
        rc_buf_append(&s->rbuf, b.p, b.len);
        rc_buf_free(&b);
    } else {
        reply_help(s, command_help, RC_ARRAY_LEN(command_help));
    }
}

/* ---- CONFIG ---- */

struct config_reply {
    struct rc_buf items;
    int64_t n;
    const char *seen[64];
    size_t nseen;
};

static void config_item(void *arg, const char *name, const char *value)
{
    struct config_reply *cr = arg;
    for (size_t i = 0; i < cr->nseen; i++)
        if (cr->seen[i] == name || !strcmp(cr->seen[i], name))
            return;
    if (cr->nseen < RC_ARRAY_LEN(cr->seen))
        cr->seen[cr->nseen++] = name;
    rc_resp_bulkstr(&cr->items, name);
    rc_resp_bulkstr(&cr->items, value);
    cr->n++;
}

static const char *const config_help[] = {
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "HELP",
    "    Prints this help.",
};

/* CONFIG SET <name> <value> [<name> <value> ...]: only the settings
 * rc_config_runtime() allows (the mdata-* family); the others need a restart.
 * All pairs are checked on a copy first, so a bad one changes nothing. */
static void config_set(struct rc_server *s, const struct rc_req *r)
{
    struct rc_config tmp;
    char err[256];
    bool mdata = false;

    if ((r->argc - 2) % 2) {
        rc_reply_arity(s, "config|set");
        return;
    }
    for (int i = 2; i < r->argc; i += 2) {
        char name[64];
        size_t nl = RC_MIN(r->argvlen[i], sizeof(name) - 1);
        memcpy(name, r->argv[i], nl);
        name[nl] = '\0';
        if (!memchr(r->argv[i], '\0', r->argvlen[i]) && rc_config_exists(name) &&
            !rc_config_runtime(name)) {
            /* Redis 7.0's reply for an immutable setting. */
            rc_resp_errorf(&s->rbuf,
                           "ERR CONFIG SET failed (possibly related to argument '%s') - can't "
                           "set immutable config",
                           name);
            return;
        }
        if (memchr(r->argv[i], '\0', r->argvlen[i]) || !rc_config_runtime(name)) {
            rc_resp_errorf(&s->rbuf,
                           "ERR Unknown option or number of arguments for CONFIG SET - "
                           "'%s'",
                           name);
            return;
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        struct rc_config *dst = pass ? &s->cfg : &tmp;
        if (!pass) {
            tmp = s->cfg;
            rc_config_dup_rules(&tmp);
        }
        for (int i = 2; i < r->argc; i += 2) {
            char *name = rc_xmalloc(r->argvlen[i] + 1);
            char *val = rc_xmalloc(r->argvlen[i + 1] + 1);
            const char *argv[2] = {name, val};
            int rv;
            memcpy(name, r->argv[i], r->argvlen[i]);
            name[r->argvlen[i]] = '\0';
            memcpy(val, r->argv[i + 1], r->argvlen[i + 1]);
            val[r->argvlen[i + 1]] = '\0';
            rv = rc_config_set(dst, 2, argv, err, sizeof(err));
            mdata = true;
            if (rv && !pass) {
                rc_resp_errorf(&s->rbuf,
                               "ERR CONFIG SET failed (possibly related to argument "
                               "'%s') - %s",
                               name, err);
                free(name);
                free(val);
                rc_config_free_rules(&tmp);
                return;
            }
            free(name);
            free(val);
        }
    }
    rc_config_free_rules(&tmp);
    if (mdata)
        rc_mdata_reconfigure(s->eng);
    rc_mem_apply_cfg(s);
    /* The other workers apply the same pairs before they run anything the
     * client sends after this reply (worker.c, "Causality"). */
    rc_workers_config_set(s, r->argc - 2, (const char *const *)r->argv + 2, r->argvlen + 2);
    rc_resp_simple(&s->rbuf, "OK");
}

void rc_cmd_config(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    if (rc_strcaseeq(r->argv[1], r->argvlen[1], "get")) {
        struct config_reply cr = {0};
        for (int i = 2; i < r->argc; i++) {
            char pat[256];
            size_t pl = RC_MIN(r->argvlen[i], sizeof(pat) - 1);
            for (size_t k = 0; k < pl; k++)
                pat[k] = (char)tolower((unsigned char)r->argv[i][k]);
            pat[pl] = '\0';
            rc_config_get(&s->cfg, pat, pl, config_item, &cr);
        }
        rc_resp_map(&s->rbuf, c->proto, cr.n);
        rc_buf_append(&s->rbuf, cr.items.p, cr.items.len);
        rc_buf_free(&cr.items);
    } else if (rc_strcaseeq(r->argv[1], r->argvlen[1], "set")) {
        config_set(s, r);
    } else if (rc_strcaseeq(r->argv[1], r->argvlen[1], "resetstat")) {
        rc_server_resetstat(s);
        rc_workers_resetstat(s);
        rc_resp_simple(&s->rbuf, "OK");
    } else {
        reply_help(s, config_help, RC_ARRAY_LEN(config_help));
    }
}
