/* http.c -- the HTTP port: requests, Server-Sent Events streams and WebSockets.
 *
 * Requests are parsed in place (proto/http1.c) and answered at once; the
 * port serves GET and HEAD only. Two requests change what a connection is:
 *
 *   GET /events?channel=C&pattern=P  answers a text/event-stream head and
 *       makes the connection an SSE subscriber: its sink takes the SSE
 *       format, every delivery is one event encoded once for all SSE
 *       subscribers (proto/codec_http.c). Subscriptions are confirmed with
 *       "subscribe"/"psubscribe" events. The stream is delimited by the
 *       connection's close (no chunked framing, so the event bytes stay
 *       shareable).
 *   GET /ws  completes a WebSocket handshake and makes the connection a
 *       WebSocket: client text frames carry JSON command arrays, which run
 *       through the ordinary RESP command table (so every command, reply
 *       and error text is Redis's), and the RESP replies are turned into
 *       JSON text frames (rc_http_ws_flush). Deliveries are WebSocket frames
 *       encoded once for all WebSocket subscribers.
 *
 * Security is the RESP port's: with requirepass set, /events, /ws and
 * /metrics need the password (Authorization: Bearer, or ?auth= for
 * EventSource, which cannot set headers); protected mode refuses
 * non-loopback clients when there is no password. A browser page may open a
 * WebSocket or an event stream only from an allowed Origin (the server's own
 * host by default), which stops cross-site WebSocket hijacking.
 *
 * Resuming an event stream: an event of a sequenced channel carries
 * "id: <epoch>-<seq>". Epochs are unique per channel state, so a reconnect's
 * Last-Event-ID names the channel it came from; that channel is replayed
 * from history exactly as RC.RESUME does (or gets a "resync" event). The
 * other sequenced channels of the stream cannot be placed -- the id holds one
 * position -- so each gets a "resync" event and its last value when kept.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"
#include "http1.h"
#include "json.h"
#include "mdata.h"
#include "metrics.h"
#include "webassets.h"
#include "ws.h"

#define WS_MAX_ARGS 1024

/* A connection's state on the HTTP port. */
struct rc_http {
    uint64_t partial_since_ms; /* a request head has been incomplete since, 0 = none */
    struct rc_buf msg;         /* WebSocket message being assembled, unmasked */
    uint8_t msg_op;            /* its opcode (text or binary), 0 when none */
    bool close_sent;           /* a close frame is queued */
    bool msg_waiting;          /* msg is a command waiting for a hole (worker.h) */
};

/* Scratch space shared by the server's HTTP connections (one loop thread). */
struct rc_http_scratch {
    struct rc_buf args;
    struct rc_buf out;
    size_t offs[WS_MAX_ARGS], lens[WS_MAX_ARGS];
    const char *argv[WS_MAX_ARGS];
    size_t argvlen[WS_MAX_ARGS];
};

static struct rc_http_scratch *scratch(struct rc_server *s)
{
    if (!s->http)
        s->http = rc_xcalloc(1, sizeof(*s->http));
    return s->http;
}

void rc_http_server_free(struct rc_server *s)
{
    if (!s->http)
        return;
    rc_buf_free(&s->http->args);
    rc_buf_free(&s->http->out);
    free(s->http);
    s->http = NULL;
}

void rc_http_free(struct rc_conn *c)
{
    if (!c->http)
        return;
    rc_buf_free(&c->http->msg);
    free(c->http);
    c->http = NULL;
}

/* ---- Responses ---- */

static void respond(struct rc_server *s, struct rc_conn *c, int status, const char *ctype,
                    const char *extra, const char *body, size_t blen, bool head_only, bool close)
{
    struct rc_buf b = {0};

    rc_buf_appendf(&b, "HTTP/1.1 %d %s\r\nServer: ringcast\r\nContent-Length: %zu\r\n", status,
                   rc_http_reason(status), blen);
    if (ctype)
        rc_buf_appendf(&b, "Content-Type: %s\r\n", ctype);
    if (extra)
        rc_buf_append(&b, extra, strlen(extra));
    if (close)
        rc_buf_append(&b, "Connection: close\r\n", 19);
    rc_buf_append(&b, "\r\n", 2);
    if (!head_only && blen)
        rc_buf_append(&b, body, blen);
    rc_conn_push_bytes(s, c, b.p, b.len);
    rc_buf_free(&b);
    if (close)
        c->io.flags |= RC_IO_CLOSE_AFTER_REPLY;
}

/* An error page: the status and one line of text; the connection closes. */
static void fail(struct rc_server *s, struct rc_conn *c, int status, const char *extra,
                 const char *text)
{
    char body[1024];
    int n = snprintf(body, sizeof(body), "%s\n", text);

    rc_log(&s->log, RC_LOG_VERBOSE, "HTTP %d to client id=%llu addr=%s: %s", status,
           (unsigned long long)c->io.id, c->addr, text);
    respond(s, c, status, "text/plain; charset=utf-8", extra, body,
            (size_t)RC_MIN(n, (int)sizeof(body) - 1), false, true);
}

void rc_http_refuse(struct rc_server *s, struct rc_conn *c, int status, const char *text)
{
    fail(s, c, status, NULL, text);
}

/* ---- Checks ---- */

static bool query_param(const char *q, size_t ql, const char *name, char *dec, const char **v,
                        size_t *vl)
{
    size_t pos = 0, kl, nl = strlen(name);
    const char *k;

    while (rc_http_query_next(q, ql, &pos, dec, &k, &kl, v, vl))
        if (kl == nl && !memcmp(k, name, nl))
            return true;
    return false;
}

/* requirepass, as "Authorization: Bearer <pw>" or "?auth=<pw>". */
static bool authorized(struct rc_server *s, const struct rc_http_req *r, const char *q, size_t ql,
                       char *dec)
{
    const char *v;
    size_t vl;

    if (!s->cfg.requirepass)
        return true;
    v = rc_http_header(r, "authorization", &vl);
    if (v && vl > 7 && !strncasecmp(v, "bearer ", 7)) {
        v += 7;
        vl -= 7;
        while (vl && *v == ' ') {
            v++;
            vl--;
        }
        if (rc_password_ok(s, v, vl))
            return true;
    }
    return query_param(q, ql, "auth", dec, &v, &vl) && rc_password_ok(s, v, vl);
}

/* The Origin a browser sent is allowed: listed in http-allowed-origins ("*"
 * for any), or -- with no list -- naming this server's own Host. Requests
 * without an Origin (not from a browser page) pass. */
static bool origin_ok(struct rc_server *s, const struct rc_http_req *r)
{
    size_t ol, hl;
    const char *o = rc_http_header(r, "origin", &ol), *h;
    const char *list = s->cfg.http_allowed_origins;

    if (!o)
        return true;
    if (list) {
        for (const char *p = list; *p;) {
            size_t n;
            while (*p == ' ')
                p++;
            n = strcspn(p, " ");
            if ((n == 1 && *p == '*') || (n == ol && !strncasecmp(p, o, n)))
                return true;
            p += n;
        }
        return false;
    }
    h = rc_http_header(r, "host", &hl);
    if (!h)
        return false;
    if (ol > 7 && !strncasecmp(o, "http://", 7)) {
        o += 7;
        ol -= 7;
    } else if (ol > 8 && !strncasecmp(o, "https://", 8)) {
        o += 8;
        ol -= 8;
    } else {
        return false;
    }
    return ol == hl && !strncasecmp(o, h, hl);
}

static void deny_auth(struct rc_server *s, struct rc_conn *c)
{
    fail(s, c, 401, "WWW-Authenticate: Bearer realm=\"ringcast\"\r\n",
         "NOAUTH Authentication required: Authorization: Bearer <password> or ?auth=<password>");
}

/* Access-Control-Allow-Origin for an allowed browser Origin. */
static void cors_headers(const struct rc_http_req *r, struct rc_buf *b)
{
    size_t ol;
    const char *o = rc_http_header(r, "origin", &ol);

    if (o)
        rc_buf_appendf(b, "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n", (int)ol, o);
}

/* ---- Server-Sent Events ---- */

/* A confirmation or notice event: "event: <kind>\ndata: {"channel":..,<more>}\n\n". */
static void sse_event(struct rc_server *s, struct rc_conn *c, const char *kind, const char *key,
                      const char *name, size_t len, const char *more)
{
    struct rc_buf b = {0};

    rc_buf_appendf(&b, "event: %s\ndata: {\"%s\":", kind, key);
    rc_buf_reserve(&b, rc_json_str_len(name, len));
    b.len = (size_t)(rc_json_str_write(b.p + b.len, name, len) - b.p);
    rc_buf_appendf(&b, "%s}\n\n", more);
    rc_conn_push_bytes(s, c, b.p, b.len);
    rc_buf_free(&b);
}

static void sse_confirm(struct rc_server *s, struct rc_conn *c, enum rc_sub_kind kind,
                        const char *name, size_t len)
{
    char more[48];

    snprintf(more, sizeof(more), ",\"count\":%zu",
             rc_sink_count(&c->sink, RC_SUB_CHANNEL) + rc_sink_count(&c->sink, RC_SUB_PATTERN));
    sse_event(s, c, kind == RC_SUB_PATTERN ? "psubscribe" : "subscribe",
              kind == RC_SUB_PATTERN ? "pattern" : "channel", name, len, more);
}

/* "<epoch>-<seq>" */
static bool parse_event_id(const char *v, size_t vl, uint64_t *epoch, uint64_t *seq)
{
    const char *dash = memchr(v, '-', vl);
    int64_t e, q;

    if (!dash || !rc_parse_i64(v, (size_t)(dash - v), &e) ||
        !rc_parse_i64(dash + 1, vl - (size_t)(dash - v) - 1, &q) || e < 0 || q < 0)
        return false;
    *epoch = (uint64_t)e;
    *seq = (uint64_t)q;
    return true;
}

/* One channel of a stream: subscribed, confirmed, then its history replayed
 * (Last-Event-ID from this channel), a resync, or its last value. */
static void sse_channel(struct rc_server *s, struct rc_conn *c, const char *ch, size_t cl,
                        bool resuming, uint64_t epoch, uint64_t seq)
{
    uint64_t cur_epoch = 0, cur_seq = 0;
    bool ok = false, sequenced = false;
    bool added;

    if (s->cfg.md.nrules)
        sequenced = rc_mdata_seq_state(s->eng, ch, cl, epoch, seq, &cur_epoch, &cur_seq, &ok) == 0;
    added = rc_engine_subscribe(s->eng, &c->sink, RC_SUB_CHANNEL, ch, cl);
    sse_confirm(s, c, RC_SUB_CHANNEL, ch, cl);
    if (!added)
        return;
    if (resuming && sequenced && cur_epoch == epoch) {
        if (!ok) {
            char more[96];
            snprintf(more, sizeof(more), ",\"epoch\":%llu,\"seq\":%llu",
                     (unsigned long long)cur_epoch, (unsigned long long)cur_seq);
            sse_event(s, c, "resync", "channel", ch, cl, more);
        }
        rc_mdata_resume_send(s->eng, &c->sink, ch, cl, ok, seq);
        return;
    }
    if (resuming && sequenced) {
        char more[96];
        snprintf(more, sizeof(more), ",\"epoch\":%llu,\"seq\":%llu", (unsigned long long)cur_epoch,
                 (unsigned long long)cur_seq);
        sse_event(s, c, "resync", "channel", ch, cl, more);
    }
    if (s->cfg.md.nrules)
        rc_mdata_snapshot(s->eng, &c->sink, ch, cl);
}

static void sse_start(struct rc_server *s, struct rc_conn *c, const struct rc_http_req *r,
                      const char *q, size_t ql, char *dec)
{
    struct rc_buf head = {0};
    size_t pos = 0, kl, vl, nsub = 0;
    const char *k, *v;
    uint64_t epoch = 0, seq = 0;
    bool resuming = false;

    while (rc_http_query_next(q, ql, &pos, dec, &k, &kl, &v, &vl)) {
        if (!(kl == 7 && (!memcmp(k, "channel", 7) || !memcmp(k, "pattern", 7))))
            continue;
        if (s->cfg.max_name_len && vl > s->cfg.max_name_len)
            return fail(s, c, 400, NULL, "a channel or pattern name is longer than max-name-len");
        nsub++;
    }
    if (!nsub)
        return fail(s, c, 400, NULL,
                    "GET /events needs at least one channel=<name> or pattern=<glob>");
    if (!origin_ok(s, r))
        return fail(s, c, 403, NULL, "Origin not allowed (http-allowed-origins)");
    if (!authorized(s, r, q, ql, dec))
        return deny_auth(s, c);
    v = rc_http_header(r, "last-event-id", &vl);
    if (v && vl)
        resuming = parse_event_id(v, vl, &epoch, &seq);

    static const char sse_head[] =
        "HTTP/1.1 200 OK\r\nServer: ringcast\r\nContent-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n";
    rc_buf_append(&head, sse_head, sizeof(sse_head) - 1);
    cors_headers(r, &head);
    rc_buf_append(&head, "\r\n", 2);
    rc_conn_push_bytes(s, c, head.p, head.len);
    rc_buf_free(&head);

    c->transport = RC_TRANSPORT_SSE;
    c->io.flags |= RC_CONN_AUTHED;
    rc_conn_set_proto(s, c, 3);
    if (s->cfg.md.nrules)
        rc_mdata_set_seqmode(s->eng, &c->sink, true); /* event ids */
    /* dec is overwritten by each decode: copy every name out first. */
    pos = 0;
    while (rc_http_query_next(q, ql, &pos, dec, &k, &kl, &v, &vl)) {
        bool chan = kl == 7 && !memcmp(k, "channel", 7);
        bool pat = kl == 7 && !memcmp(k, "pattern", 7);
        char *name;
        if (!chan && !pat)
            continue;
        name = rc_xmemdup(v, vl);
        if (chan) {
            sse_channel(s, c, name, vl, resuming, epoch, seq);
        } else {
            rc_engine_subscribe(s->eng, &c->sink, RC_SUB_PATTERN, name, vl);
            sse_confirm(s, c, RC_SUB_PATTERN, name, vl);
        }
        free(name);
    }
    rc_log(&s->log, RC_LOG_VERBOSE, "Client id=%llu addr=%s: event stream, %zu subscriptions",
           (unsigned long long)c->io.id, c->addr, nsub);
}

/* ---- WebSocket ---- */

static void ws_frame(struct rc_server *s, struct rc_conn *c, enum rc_ws_op op, const void *p,
                     size_t n)
{
    struct rc_buf *b = &scratch(s)->out;
    unsigned char hdr[10];
    size_t hl = rc_ws_header_write(hdr, op, n);

    b->len = 0;
    rc_buf_append(b, hdr, hl);
    rc_buf_append(b, p, n);
    rc_conn_push_bytes(s, c, b->p, b->len);
}

/* Sends a close frame with status and reason, then closes after it. */
static void ws_close(struct rc_server *s, struct rc_conn *c, int status, const char *reason)
{
    unsigned char p[125];
    size_t rl = RC_MIN(strlen(reason), sizeof(p) - 2);

    if (c->http->close_sent)
        return;
    c->http->close_sent = true;
    p[0] = (unsigned char)(status >> 8);
    p[1] = (unsigned char)status;
    memcpy(p + 2, reason, rl); /* NOLINT(bugprone-not-null-terminated-result): a frame */
    ws_frame(s, c, RC_WS_CLOSE, p, 2 + rl);
    c->io.flags |= RC_IO_CLOSE_AFTER_REPLY;
    if (status != RC_WS_NORMAL)
        rc_log(&s->log, RC_LOG_VERBOSE, "Closing WebSocket id=%llu addr=%s: %d %s",
               (unsigned long long)c->io.id, c->addr, status, reason);
}

void rc_http_ws_flush(struct rc_server *s, struct rc_conn *c)
{
    struct rc_buf json = {0};
    size_t pos = 0;

    while (pos < s->rbuf.len) {
        long used;
        json.len = 0;
        used = rc_resp_to_json(s->rbuf.p + pos, s->rbuf.len - pos, &json);
        if (used <= 0) {
            /* Our own encoders made it: this is a bug, not bad input. */
            rc_log(&s->log, RC_LOG_WARNING, "WebSocket id=%llu: reply is not RESP (%ld)",
                   (unsigned long long)c->io.id, used);
            break;
        }
        ws_frame(s, c, RC_WS_TEXT, json.p, json.len);
        pos += (size_t)used;
    }
    rc_buf_free(&json);
    s->rbuf.len = 0;
}

/* One complete text message: a JSON command array, run like a RESP request. */
static void ws_command(struct rc_server *s, struct rc_conn *c, const char *p, size_t n)
{
    struct rc_http_scratch *h = scratch(s);
    const char *err = NULL;
    int argc = rc_json_parse_args(p, n, &h->args, h->offs, h->lens, WS_MAX_ARGS, &err);
    struct rc_req req;

    if (argc < 0) {
        rc_resp_errorf(&s->rbuf, "ERR Protocol error: %s", err);
        rc_conn_flush_reply(s, c);
        s->stats.proto_errors++;
        return;
    }
    if (argc == 0)
        return;
    for (int i = 0; i < argc; i++) {
        h->argv[i] = h->args.p + h->offs[i];
        h->argvlen[i] = h->lens[i];
    }
    req = (struct rc_req){argc, h->argv, h->argvlen};
    if (RC_UNLIKELY(c->nholes > 0) && rc_req_waits_for_holes(&req)) {
        /* Run again, from c->http->msg, once the holes fill. */
        c->io.flags |= RC_CONN_PAUSED;
        c->http->msg_waiting = true;
        return;
    }
    rc_cmd_execute(s, c, &req);
    if ((c->io.flags & RC_IO_CLOSE_AFTER_REPLY) && !c->http->close_sent)
        ws_close(s, c, RC_WS_NORMAL, "bye"); /* QUIT */
}

static void ws_message(struct rc_server *s, struct rc_conn *c)
{
    struct rc_http *h = c->http;

    if (h->msg_op == RC_WS_BINARY)
        ws_close(s, c, RC_WS_UNSUPPORTED, "binary messages are not supported; send JSON text");
    else if (!rc_utf8_valid(h->msg.p, h->msg.len))
        ws_close(s, c, RC_WS_BAD_DATA, "text message is not valid UTF-8");
    else
        ws_command(s, c, h->msg.p, h->msg.len);
    if (h->msg_waiting)
        return; /* kept for rc_http_ws_resume() */
    h->msg.len = 0;
    h->msg_op = 0;
    if (h->msg.cap > 64 * 1024)
        rc_buf_free(&h->msg);
}

void rc_http_ws_resume(struct rc_server *s, struct rc_conn *c)
{
    if (c->transport != RC_TRANSPORT_WS || !c->http || !c->http->msg_waiting)
        return;
    c->http->msg_waiting = false;
    ws_message(s, c);
}

/* Serves the frames in buf; returns the bytes used. */
static size_t ws_process(struct rc_server *s, struct rc_conn *c, const char *buf, size_t len)
{
    struct rc_http *h = c->http;
    size_t pos = 0;

    while (pos < len &&
           !(c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_CLOSE_AFTER_REPLY | RC_CONN_PAUSED))) {
        const unsigned char *u = (const unsigned char *)buf + pos;
        struct rc_ws_frame f;
        int r = rc_ws_parse_header(u, len - pos, s->cfg.ws_max_frame, &f);
        size_t start;

        if (r == 0)
            break;
        if (r < 0) {
            ws_close(s, c, -r,
                     r == -RC_WS_TOO_BIG ? "frame larger than ws-max-frame"
                                         : "protocol error (masking, opcode or control frame)");
            return len;
        }
        if (len - pos - f.hdr < f.len)
            break; /* the payload is still coming */
        start = pos + f.hdr;
        pos = start + (size_t)f.len;
        if (f.op >= RC_WS_CLOSE) {
            unsigned char ctl[125];
            memcpy(ctl, buf + start, (size_t)f.len);
            rc_ws_unmask(ctl, (size_t)f.len, f.key, 0);
            if (f.op == RC_WS_PING) {
                ws_frame(s, c, RC_WS_PONG, ctl, (size_t)f.len);
            } else if (f.op == RC_WS_CLOSE) {
                int code = f.len >= 2 ? (ctl[0] << 8 | ctl[1]) : RC_WS_NORMAL;
                ws_close(s, c, code == RC_WS_NORMAL || code == RC_WS_GOING_AWAY ? code : 1000, "");
            }
            continue;
        }
        if ((f.op == RC_WS_CONT) != (h->msg_op != 0)) {
            ws_close(s, c, RC_WS_PROTOCOL_ERR,
                     f.op == RC_WS_CONT ? "continuation without a message"
                                        : "new message inside a fragmented one");
            return len;
        }
        if (h->msg.len + f.len > s->cfg.ws_max_frame) {
            ws_close(s, c, RC_WS_TOO_BIG, "message larger than ws-max-frame");
            return len;
        }
        if (f.op != RC_WS_CONT)
            h->msg_op = f.op;
        rc_buf_reserve(&h->msg, (size_t)f.len);
        memcpy(h->msg.p + h->msg.len, buf + start, (size_t)f.len);
        rc_ws_unmask((unsigned char *)h->msg.p + h->msg.len, (size_t)f.len, f.key, 0);
        h->msg.len += (size_t)f.len;
        if (f.fin)
            ws_message(s, c);
    }
    return pos;
}

static void ws_start(struct rc_server *s, struct rc_conn *c, const struct rc_http_req *r,
                     const char *q, size_t ql, char *dec)
{
    size_t vl;
    const char *v;
    char accept[29], head[256];
    int n;

    if (!rc_http_has_token(r, "upgrade", "websocket") ||
        !rc_http_has_token(r, "connection", "upgrade"))
        return fail(s, c, 400, NULL,
                    "GET /ws is a WebSocket endpoint: send Upgrade: websocket and "
                    "Connection: Upgrade");
    v = rc_http_header(r, "sec-websocket-version", &vl);
    if (!v || vl != 2 || memcmp(v, "13", 2) != 0)
        return fail(s, c, 426, "Sec-WebSocket-Version: 13\r\n",
                    "unsupported WebSocket version (13 only)");
    v = rc_http_header(r, "sec-websocket-key", &vl);
    if (!v || !rc_ws_accept_key(v, vl, accept))
        return fail(s, c, 400, NULL, "missing or malformed Sec-WebSocket-Key");
    if (!origin_ok(s, r))
        return fail(s, c, 403, NULL, "Origin not allowed (http-allowed-origins)");
    if (!authorized(s, r, q, ql, dec))
        return deny_auth(s, c);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 101 Switching Protocols\r\nServer: ringcast\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 accept);
    rc_conn_push_bytes(s, c, head, (size_t)n);
    c->transport = RC_TRANSPORT_WS;
    c->io.flags |= RC_CONN_AUTHED;
    rc_conn_set_proto(s, c, 3);
    rc_log(&s->log, RC_LOG_VERBOSE, "Client id=%llu addr=%s: WebSocket",
           (unsigned long long)c->io.id, c->addr);
}

#define METRICS_HEAD  1u
#define METRICS_CLOSE 2u

/* The page, once every worker's numbers are in (worker.h: rc_gather). */
static void metrics_combine(struct rc_server *s, struct rc_conn *c, struct rc_gather *g)
{
    struct rc_view sum, each[RC_MAX_WORKERS];
    struct rc_buf b = {0};

    rc_view_sum(g, &sum, each);
    rc_metrics_render_view(s, &sum, &b);
    respond(s, c, 200, RC_METRICS_CONTENT_TYPE, "Cache-Control: no-store\r\n", b.p, b.len,
            g->arg & METRICS_HEAD, g->arg & METRICS_CLOSE);
    rc_buf_free(&b);
}

/* GET /metrics: the Prometheus text (metrics.c), behind requirepass. */
static void metrics(struct rc_server *s, struct rc_conn *c, const struct rc_http_req *r,
                    const char *q, size_t ql, char *dec, bool head, bool close)
{
    if (!authorized(s, r, q, ql, dec))
        return deny_auth(s, c);
    rc_gather(s, c, 0, NULL, NULL, (head ? METRICS_HEAD : 0) | (close ? METRICS_CLOSE : 0),
              rc_view_part, metrics_combine);
}

/* ---- Requests ---- */

static void route(struct rc_server *s, struct rc_conn *c, const struct rc_http_req *r, bool head,
                  bool close)
{
    const struct rc_web_asset *asset;
    const char *path, *q;
    size_t pl, ql;
    char *dec;

    rc_http_split_target(r, &path, &pl, &q, &ql);
    dec = rc_xmalloc(ql + 1);
    if (pl == 8 && !memcmp(path, "/healthz", 8)) {
        respond(s, c, 200, "text/plain; charset=utf-8", NULL, "ok\n", 3, head, close);
    } else if (pl == 7 && !memcmp(path, "/events", 7)) {
        if (head)
            fail(s, c, 405, "Allow: GET\r\n", "GET /events only");
        else
            sse_start(s, c, r, q, ql, dec);
    } else if (pl == 3 && !memcmp(path, "/ws", 3)) {
        if (head)
            fail(s, c, 405, "Allow: GET\r\n", "GET /ws only");
        else
            ws_start(s, c, r, q, ql, dec);
    } else if (pl == 8 && !memcmp(path, "/metrics", 8)) {
        metrics(s, c, r, q, ql, dec, head, close);
    } else if ((asset = rc_web_asset_find(path, pl)) != NULL) {
        /* The dashboard's files (web/, embedded at build time): public, like
         * any page; what they fetch (/events, /metrics) asks for the password. */
        respond(s, c, 200, asset->type,
                "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n",
                (const char *)asset->data, asset->len, head, close);
    } else {
        static const char nf[] = "not found: try /events, /ws, /metrics, /healthz or /\n";
        respond(s, c, 404, "text/plain; charset=utf-8", NULL, nf, sizeof(nf) - 1, head, close);
    }
    free(dec);
}

/* Serves one request from buf; returns the bytes used, 0 when incomplete. */
static size_t serve_request(struct rc_server *s, struct rc_conn *c, const char *buf, size_t len)
{
    struct rc_http_req r;
    int n = rc_http_parse(buf, len, s->cfg.http_max_request, &r);
    bool head, close;
    size_t vl;
    const char *v;

    if (n == 0)
        return 0;
    if (n < 0) {
        s->stats.proto_errors++;
        fail(s, c,
             n == -EMSGSIZE          ? 431
             : n == -EPROTONOSUPPORT ? 505
                                     : 400,
             NULL,
             n == -EMSGSIZE          ? "request head larger than http-max-request"
             : n == -EPROTONOSUPPORT ? "HTTP/1.x only"
                                     : "malformed HTTP request");
        return len;
    }
    close = r.minor == 0 ? !rc_http_has_token(&r, "connection", "keep-alive")
                         : rc_http_has_token(&r, "connection", "close");
    v = rc_http_header(&r, "content-length", &vl);
    if ((v && !(vl == 1 && v[0] == '0')) || rc_http_header(&r, "transfer-encoding", &vl)) {
        fail(s, c, 413, NULL, "request bodies are not accepted here");
        return len;
    }
    head = r.mlen == 4 && !memcmp(r.method, "HEAD", 4);
    if (!head && !(r.mlen == 3 && !memcmp(r.method, "GET", 3))) {
        fail(s, c, 405, "Allow: GET, HEAD\r\n", "GET and HEAD only");
        return len;
    }
    c->last_cmd = "http";
    c->tot_cmds++;
    s->stats.commands++;
    route(s, c, &r, head, close);
    return (size_t)n;
}

size_t rc_http_process(struct rc_server *s, struct rc_conn *c, const char *buf, size_t len)
{
    size_t pos = 0;

    if (!c->http)
        c->http = rc_xcalloc(1, sizeof(*c->http));
    while (pos < len && !(c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_CLOSE_AFTER_REPLY))) {
        size_t used;
        switch (c->transport) {
        case RC_TRANSPORT_HTTP: used = serve_request(s, c, buf + pos, len - pos); break;
        case RC_TRANSPORT_WS: used = ws_process(s, c, buf + pos, len - pos); break;
        default: used = len - pos; /* an event stream's client has nothing to say */
        }
        if (!used)
            break;
        pos += used;
    }
    /* A request head still incomplete: from when (http-idle-timeout, below). */
    if (c->transport != RC_TRANSPORT_HTTP || pos == len)
        c->http->partial_since_ms = 0;
    else if (!c->http->partial_since_ms)
        c->http->partial_since_ms = rc_now_ms();
    return pos;
}

void rc_http_cron(struct rc_server *s, struct rc_conn *c, uint64_t now)
{
    uint64_t lim = s->cfg.http_idle_timeout * 1000, partial;

    if (c->transport != RC_TRANSPORT_HTTP || !lim ||
        (c->io.flags & (RC_IO_CLOSE_ASAP | RC_IO_CLOSE_AFTER_REPLY)))
        return;
    /* A head that trickles in byte by byte does not renew the clock: it is
     * measured from the request's first byte. */
    partial = c->http ? c->http->partial_since_ms : 0;
    if (now - (partial ? partial : c->last_ms) <= lim)
        return;
    if (partial)
        fail(s, c, 408, NULL, "request not completed within http-idle-timeout");
    else
        rc_conn_close_asap(s, c, "HTTP idle timeout");
}
