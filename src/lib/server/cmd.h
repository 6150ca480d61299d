/* cmd.h -- the command table and the handlers that live in several files.
 *
 * A command is looked up by name (case-insensitive), its arity checked, the
 * connection's state checked (authentication, RESP2 subscribed context), and
 * then its handler runs with the request's arguments. Handlers write their
 * reply to s->rbuf with the rc_resp_* encoders; the dispatcher moves it to the
 * connection's queue afterwards, so a handler never touches a socket.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_CMD_H
#define RC_CMD_H

#include <stddef.h>

#include "server.h"

/* The Redis version we answer as (HELLO, INFO): the one whose replies we match. */
#define RC_REDIS_VERSION "7.0.15"

struct rc_req {
    int argc;
    const char **argv;
    size_t *argvlen;
};

typedef void rc_cmd_fn(struct rc_server *s, struct rc_conn *c, const struct rc_req *r);

/* Command flags. */
#define RC_CMD_NOAUTH    (1u << 0) /* allowed before authentication */
#define RC_CMD_PUBSUBCTX (1u << 1) /* allowed in a RESP2 subscribed context */

struct rc_cmd {
    const char *name; /* lower case */
    int arity;        /* Redis convention: N exact, -N at least N */
    unsigned flags;
    rc_cmd_fn *fn;
    const char *summary;
    const char *since;
    const char *group;
    const char *cmdflags;      /* COMMAND INFO flags, space-separated */
    const struct rc_cmd *subs; /* subcommands (container commands), NULL-name terminated */
};

extern const struct rc_cmd rc_cmds[];
extern const size_t rc_ncmds;

const struct rc_cmd *rc_cmd_lookup(const char *name, size_t len);
/* Parses, checks and runs one request on c. */
void rc_cmd_execute(struct rc_server *s, struct rc_conn *c, const struct rc_req *r);

/* Is p[0..len) the requirepass password? Constant time in len. False when
 * no password is set. */
bool rc_password_ok(const struct rc_server *s, const char *p, size_t len);
/* Replies "ERR wrong number of arguments for '<name>' command". */
void rc_reply_arity(struct rc_server *s, const char *name);
/* Replies "ERR unknown subcommand '<sub>'. Try <CMD> HELP." */
void rc_reply_unknown_sub(struct rc_server *s, const char *cmd, const char *sub, size_t sublen);

/* cmd_pubsub.c */
rc_cmd_fn rc_cmd_subscribe, rc_cmd_unsubscribe, rc_cmd_psubscribe, rc_cmd_punsubscribe;
rc_cmd_fn rc_cmd_ssubscribe, rc_cmd_sunsubscribe, rc_cmd_publish, rc_cmd_spublish, rc_cmd_pubsub;
/* max-name-len: true when name may be subscribed or published to, else
 * replies with the error and returns false. */
bool rc_pubsub_name_ok(struct rc_server *s, const char *name, size_t len);
/* Subscribes c to one channel and queues the confirmation (no mdata
 * snapshot); returns false when it already was. */
bool rc_pubsub_subscribe_channel(struct rc_server *s, struct rc_conn *c, const char *name,
                                 size_t len);

/* cmd_mdata.c: the RC.* market-data extension commands (docs/extensions.md). */
rc_cmd_fn rc_cmd_rc_last, rc_cmd_rc_lastp, rc_cmd_rc_del, rc_cmd_rc_seqmode, rc_cmd_rc_resume;

/* info.c */
rc_cmd_fn rc_cmd_info;

/* commands.c */
rc_cmd_fn rc_cmd_ping, rc_cmd_echo, rc_cmd_quit, rc_cmd_reset, rc_cmd_hello, rc_cmd_auth;
rc_cmd_fn rc_cmd_select, rc_cmd_client, rc_cmd_command, rc_cmd_config, rc_cmd_shutdown;
/* Appends the CLIENT LIST line of c (with trailing '\n') to b. */
void rc_client_info_line(struct rc_server *s, struct rc_conn *c, struct rc_buf *b);

#endif
