/* cmd_mdata.c -- the RC.* market-data commands (docs/extensions.md) over core/mdata.h.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <string.h>

#include "cmd.h"
#include "mdata.h"
#include "upstream.h"

/* RC.LAST <channel>: the cached last message, or nil. */
void rc_cmd_rc_last(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    const char *p;
    size_t n;

    if (rc_mdata_last(s->eng, r->argv[1], r->argvlen[1], &p, &n))
        rc_resp_bulk(&s->rbuf, p, n);
    else
        rc_resp_null(&s->rbuf, c->proto);
}

static void lastp_item(void *arg, const char *chan, size_t clen, const char *p, size_t len)
{
    struct rc_buf *items = arg;
    rc_resp_bulk(items, chan, clen);
    rc_resp_bulk(items, p, len);
}

/* RC.LASTP <pattern> [COUNT <n>]: [channel, message, ...] for cached channels matching. */
void rc_cmd_rc_lastp(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    int64_t count = 100;
    struct rc_buf items = {0};
    size_t n;

    if (r->argc == 4 && rc_strcaseeq(r->argv[2], r->argvlen[2], "count")) {
        if (!rc_parse_i64(r->argv[3], r->argvlen[3], &count)) {
            rc_resp_error(&s->rbuf, "ERR value is not an integer or out of range");
            return;
        }
        if (count < 1) {
            rc_resp_error(&s->rbuf, "ERR value is out of range, must be positive");
            return;
        }
    } else if (r->argc != 2) {
        rc_resp_error(&s->rbuf, "ERR syntax error");
        return;
    }
    n = rc_mdata_lastp(s->eng, r->argv[1], r->argvlen[1], (uint64_t)count, lastp_item, &items);
    rc_resp_array(&s->rbuf, 2 * (int64_t)n);
    rc_buf_append(&s->rbuf, items.p, items.len);
    rc_buf_free(&items);
}

/* RC.DEL <channel>...: drops the channels' state (last value, history, sequence). */
void rc_cmd_rc_del(struct rc_server *s, struct rc_conn *c, const struct rc_req *r)
{
    int64_t n = 0;

    for (int i = 1; i < r->argc; i++)
        n += rc_mdata_del(s->eng, r->argv[i], r->argvlen[i]);
    /* Every worker keeps a copy of the state (worker.c): all drop it. */
    rc_workers_mdata_del(s, r->argc - 1, r->argv + 1, r->argvlen + 1);
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
    rc_mdata_set_seqmode(s->eng, &c->sink, on);
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
    uint64_t epoch, last, cur_epoch, cur_seq;
    bool ok;

    if (!rc_pubsub_name_ok(s, chan, clen))
        return;
    if (!parse_u64(r->argv[2], r->argvlen[2], &epoch) ||
        !parse_u64(r->argv[3], r->argvlen[3], &last)) {
        rc_resp_error(&s->rbuf, "ERR epoch and sequence must be non-negative integers");
        return;
    }
    if (rc_mdata_seq_state(s->eng, chan, clen, epoch, last, &cur_epoch, &cur_seq, &ok) < 0) {
        rc_resp_errorf(&s->rbuf,
                       "ERR no sequence for channel '%.*s' (no mdata-rule with seq or "
                       "history matches it)",
                       (int)RC_MIN(clen, 128), chan);
        return;
    }
    if (s->up) {
        const char *why = rc_upstream_refuse(s, RC_SUB_CHANNEL, chan, clen, 0);
        if (why) {
            rc_resp_error(&s->rbuf, why);
            return;
        }
    }
    if (rc_sink_has(&c->sink, RC_SUB_CHANNEL, chan, clen)) {
        rc_resp_errorf(&s->rbuf, "ERR already subscribed to '%.*s'; UNSUBSCRIBE first",
                       (int)RC_MIN(clen, 128), chan);
        return;
    }
    rc_mdata_set_seqmode(s->eng, &c->sink, true);
    rc_pubsub_subscribe_channel(s, c, chan, clen);
    rc_resp_push(&s->rbuf, c->proto, 5);
    rc_resp_bulkstr(&s->rbuf, "rc.resume");
    rc_resp_bulk(&s->rbuf, chan, clen);
    rc_resp_bulkstr(&s->rbuf, ok ? "ok" : "resync");
    rc_resp_int(&s->rbuf, (int64_t)cur_epoch);
    rc_resp_int(&s->rbuf, (int64_t)cur_seq);
    rc_conn_flush_reply(s, c);
    rc_mdata_resume_send(s->eng, &c->sink, chan, clen, ok, last);
}
