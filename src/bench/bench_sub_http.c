/* bench_sub_http.c -- ringcast-bench subscribers on ringcastd's HTTP port: SSE and WebSocket.
 *
 * With --proto sse|ws the subscriber thread (bench_sub.c) connects to the
 * HTTP port and hands every read to these parsers. A connection first reads
 * the response head: 200 text/event-stream, or 101 with the
 * Sec-WebSocket-Accept that belongs to our fixed key, after which the
 * WebSocket sends its masked ["SUBSCRIBE","ch.k"] frame. The bench's text
 * payload needs no JSON escaping, so every delivery to a connection has fixed
 * bytes before and after the payload, and the fast path is two memcmps:
 * `event: message\ndata: {"channel":"ch.k","data":"` ... `"}\n\n` for SSE,
 * the frame header and `["message","ch.k","` ... `"]` for WebSocket.
 * Anything else -- confirmations, pings, close frames, errors, a payload that
 * came escaped or base64-encoded -- goes through a small general parser that
 * understands only the shapes docs/http.md describes; a delivery it cannot
 * match to what was sent counts as misrouted.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bench_sub.h"

/* RFC 6455's example key and its accept value: every connection uses it (the key only
 * proves that the server understood the handshake, it is no secret). */
#define WS_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Does the head (status line and headers, CRLF-separated) have header name (lowercase)
 * whose value starts with value? */
static bool head_has(const char *h, size_t hl, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    const char *end = h + hl;
    /* bounded by the head's length: every pass moves past one line */
    for (const char *line = h; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            if ((size_t)(eol - v) >= vl && memcmp(v, value, vl) == 0)
                return true;
        }
        line = eol + 1;
    }
    return false;
}

/* One masked client frame of at most 125 bytes (ours are short commands and pongs). */
static int ws_send(struct sconn *c, unsigned op, const char *body, size_t n)
{
    char f[2 + 4 + 125];
    if (n > 125)
        return -EMSGSIZE;
    f[0] = (char)(0x80u | op);
    f[1] = (char)(0x80u | n);
    memcpy(f + 2, c->mask, 4);
    for (size_t i = 0; i < n; i++)
        f[6 + i] = (char)(body[i] ^ (char)c->mask[i & 3]);
    return rc_bench_write_all(c->fd, f, 6 + n, 1000);
}

/* The response head. Returns its length once complete, 0 while incomplete, -1 if the server
 * did not accept the stream or the upgrade. */
static ssize_t parse_head(struct sub *s, struct sconn *c, const char *p, const char *end)
{
    size_t n = (size_t)(end - p);
    if (memcmp(p, "HTTP/", RC_MIN(n, 5u)) != 0) {
        /* e.g. --http-port names a RESP port, which answers -ERR: say so at once */
        char got[40];
        size_t gl = 0;
        for (; gl < RC_MIN(n, sizeof(got) - 1) && p[gl] >= ' ' && p[gl] <= '~'; gl++)
            got[gl] = p[gl];
        got[gl] = '\0';
        rc_bsub_err(s, "subscriber %d: the server at --http-port does not speak HTTP ('%s')",
                    c->idx, got);
        return -1;
    }
    const char *e = memmem(p, n, "\r\n\r\n", 4);
    if (!e)
        return n > 8192 ? -1 : 0;
    size_t hl = (size_t)(e + 4 - p);
    bool ws = s->o->proto == RC_BENCH_WS;
    const char *want = ws ? "HTTP/1.1 101 " : "HTTP/1.1 200 ";
    char line[120];
    const char *eol = memchr(p, '\r', hl);
    size_t ll = RC_MIN((size_t)(eol - p), sizeof(line) - 1);
    memcpy(line, p, ll);
    line[ll] = '\0';
    if (hl < 13 || memcmp(p, want, 13) != 0) {
        rc_bsub_err(s, "subscriber %d: the HTTP port answered '%s'", c->idx, line);
        return -1;
    }
    if (ws ? !head_has(p, hl, "sec-websocket-accept", WS_ACCEPT)
           : !head_has(p, hl, "content-type", "text/event-stream")) {
        rc_bsub_err(s, "subscriber %d: %s", c->idx,
                    ws ? "the 101 response lacks the right Sec-WebSocket-Accept"
                       : "the 200 response is not text/event-stream");
        return -1;
    }
    c->in_head = false;
    if (ws) {
        char cmd[96];
        int cl;
        if (s->o->psubscribe)
            cl =
                snprintf(cmd, sizeof(cmd), "[\"PSUBSCRIBE\",\"ch.%d.*\"]", c->idx % s->o->channels);
        else
            cl = snprintf(cmd, sizeof(cmd), "[\"SUBSCRIBE\",\"%s\"]", c->chname);
        int r = ws_send(c, 1, cmd, (size_t)cl);
        if (r < 0) {
            rc_bsub_err(s, "subscriber %d: sending SUBSCRIBE failed: %s", c->idx, strerror(-r));
            return -1;
        }
    }
    return (ssize_t)hl;
}

/* A JSON string that starts at p (after the opening quote) and ends before end: sets its
 * contents and returns the position after the closing quote, or NULL. *escaped is set when
 * the string holds an escape (the workload never needs one). */
static const char *json_str(const char *p, const char *end, const char **v, size_t *vl,
                            bool *escaped)
{
    const char *q = p;
    while (q < end && *q != '"') {
        if (*q == '\\') {
            *escaped = true;
            q++;
        }
        q++;
    }
    if (q >= end)
        return NULL;
    *v = p;
    *vl = (size_t)(q - p);
    return q + 1;
}

/* The string value of "key" in a flat JSON object p..end; false if absent or not a plain
 * string. */
static bool json_field(const char *p, const char *end, const char *key, const char **v, size_t *vl)
{
    char pat[24];
    int n = snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *k = memmem(p, (size_t)(end - p), pat, (size_t)n);
    bool esc = false;
    return k && json_str(k + n, end, v, vl, &esc) && !esc;
}

/* One event p..end (its lines, without the blank line that ended it). 0 or -1. */
static int sse_event(struct sub *s, struct sconn *c, const char *p, const char *end)
{
    const char *ev = "message", *data = NULL;
    size_t evl = 7, dl = 0;
    /* bounded by the event's length: every pass moves past one line */
    for (const char *line = p; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        size_t ll = (size_t)(eol - line);
        if (ll > 7 && memcmp(line, "event: ", 7) == 0) {
            ev = line + 7;
            evl = ll - 7;
        } else if (ll >= 6 && memcmp(line, "data: ", 6) == 0) {
            data = line + 6;
            dl = ll - 6;
        }
        /* "id:" lines and ":" comments carry nothing the bench checks */
        line = eol + 1;
    }
    if ((evl == 9 && memcmp(ev, "subscribe", 9) == 0) ||
        (evl == 10 && memcmp(ev, "psubscribe", 10) == 0)) {
        rc_bsub_subscribed(s, c);
        return 0;
    }
    if ((evl == 7 && memcmp(ev, "message", 7) == 0) ||
        (evl == 8 && memcmp(ev, "pmessage", 8) == 0)) {
        const char *ch, *pay;
        size_t cl, pl;
        if (!data || !json_field(data, data + dl, "channel", &ch, &cl) ||
            !json_field(data, data + dl, "data", &pay, &pl)) {
            /* "data_b64", an escaped payload, or no data line: not what was sent */
            s->res->deliveries++;
            s->res->misrouted++;
            return 0;
        }
        rc_bsub_message(s, c, ch, cl, pay, pl);
        return 0;
    }
    char name[64];
    size_t nl = RC_MIN(evl, sizeof(name) - 1);
    memcpy(name, ev, nl);
    name[nl] = '\0';
    rc_bsub_err(s, "subscriber %d got an unexpected event '%s'", c->idx, name);
    return -1;
}

/* The common case of both transports: the next message is exactly the
 * expected bytes (this connection's header, a payload of --size bytes, its
 * tail). Delivers it and returns its length, or 0 for the general parser. */
static size_t expected_message(struct sub *s, struct sconn *c, const char *p, size_t avail,
                               size_t size)
{
    size_t n = c->hdrlen + size + c->taillen;

    if (avail < n || memcmp(p, c->hdr, c->hdrlen) != 0 ||
        memcmp(p + c->hdrlen + size, c->tail, c->taillen) != 0)
        return 0;
    rc_bsub_payload(s, c, p + c->hdrlen, size);
    return n;
}

ssize_t rc_bsub_parse_sse(struct sub *s, struct sconn *c, const char *p0, const char *end)
{
    const char *p = p0;
    size_t size = (size_t)s->o->size;
    if (c->in_head) {
        ssize_t h = parse_head(s, c, p, end);
        if (h <= 0)
            return h;
        p += h;
    }
    while (p < end) {
        size_t avail = (size_t)(end - p);
        size_t fast = expected_message(s, c, p, avail, size);
        if (RC_LIKELY(fast)) {
            p += fast;
            continue;
        }
        const char *e = memmem(p, avail, "\n\n", 2);
        if (!e)
            return p - p0; /* incomplete */
        if (sse_event(s, c, p, e + 1) < 0)
            return -1;
        p = e + 2;
    }
    return p - p0;
}

/* One text frame's JSON array: a delivery, a confirmation or an error. 0 or -1. */
static int ws_text(struct sub *s, struct sconn *c, const char *p, size_t n)
{
    const char *end = p + n;
    if (n >= 9 && memcmp(p, "{\"error\":", 9) == 0) {
        s->res->proto_errors++;
        char line[160];
        size_t ll = RC_MIN(n, sizeof(line) - 1);
        memcpy(line, p, ll);
        line[ll] = '\0';
        rc_bsub_err(s, "subscriber %d got an error: %s", c->idx, line);
        return 0;
    }
    if (n < 2 || p[0] != '[' || end[-1] != ']')
        return -1;
    const char *el[5];
    size_t len[5];
    bool str[5], esc[5];
    int k = 0;
    const char *q = p + 1;
    /* at most 5 elements; each pass moves past one */
    while (q < end - 1 && k < 5) {
        esc[k] = false;
        str[k] = *q == '"';
        if (str[k]) {
            q = json_str(q + 1, end - 1, &el[k], &len[k], &esc[k]);
            if (!q)
                return -1;
        } else {
            /* a number, or {"data_b64":"..."} in place of a payload */
            const char *stop = *q == '{' ? memchr(q, '}', (size_t)(end - 1 - q)) : q;
            if (!stop)
                return -1;
            el[k] = q;
            while (stop < end - 1 && *stop != ',')
                stop++;
            len[k] = (size_t)(stop - q);
            q = stop;
        }
        k++;
        if (q < end - 1 && *q++ != ',')
            return -1;
    }
    if (k < 3 || !str[0])
        return -1;
    int pay = -1, ch = -1;
    if (k == 3 && len[0] == 7 && memcmp(el[0], "message", 7) == 0) {
        ch = 1;
        pay = 2;
    } else if (k == 4 && len[0] == 8 && memcmp(el[0], "pmessage", 8) == 0) {
        ch = 2;
        pay = 3;
    } else if (k == 3 && ((len[0] == 9 && memcmp(el[0], "subscribe", 9) == 0) ||
                          (len[0] == 10 && memcmp(el[0], "psubscribe", 10) == 0))) {
        rc_bsub_subscribed(s, c);
        return 0;
    } else {
        return -1;
    }
    if (!str[ch] || !str[pay] || esc[ch] || esc[pay]) {
        s->res->deliveries++;
        s->res->misrouted++;
        return 0;
    }
    rc_bsub_message(s, c, el[ch], len[ch], el[pay], len[pay]);
    return 0;
}

ssize_t rc_bsub_parse_ws(struct sub *s, struct sconn *c, const char *p0, const char *end)
{
    const char *p = p0;
    size_t size = (size_t)s->o->size;
    if (c->in_head) {
        ssize_t h = parse_head(s, c, p, end);
        if (h <= 0)
            return h;
        p += h;
    }
    while (p < end) {
        size_t avail = (size_t)(end - p);
        size_t fast = expected_message(s, c, p, avail, size);
        if (RC_LIKELY(fast)) {
            p += fast;
            continue;
        }
        if (avail < 2)
            return p - p0;
        const unsigned char *u = (const unsigned char *)p;
        if (u[1] & 0x80u) {
            rc_bsub_err(s, "subscriber %d: a masked frame from the server%s", c->idx, "");
            return -1;
        }
        uint64_t blen = u[1] & 0x7fu;
        size_t hl = 2;
        if (blen == 126) {
            if (avail < 4)
                return p - p0;
            blen = (uint64_t)u[2] << 8 | u[3];
            hl = 4;
        } else if (blen == 127) {
            if (avail < 10)
                return p - p0;
            blen = 0;
            for (int i = 0; i < 8; i++)
                blen = blen << 8 | u[2 + i];
            hl = 10;
        }
        if (blen > s->carry_max) {
            rc_bsub_err(s, "subscriber %d: a frame larger than the bench expects%s", c->idx, "");
            return -1;
        }
        if (avail < hl + blen)
            return p - p0;
        const char *body = p + hl;
        unsigned op = u[0] & 0x0fu;
        if (op == 1 && (u[0] & 0x80u)) {
            if (ws_text(s, c, body, (size_t)blen) < 0) {
                rc_bsub_err(s, "subscriber %d: unexpected text frame%s", c->idx, "");
                return -1;
            }
        } else if (op == 8) {
            char code[8] = "none";
            if (blen >= 2)
                snprintf(code, sizeof(code), "%u", (unsigned)(u[hl] << 8 | u[hl + 1]));
            s->res->closed++;
            rc_bsub_err(s, "subscriber %d: the server closed the WebSocket (status %s)", c->idx,
                        code);
            return -1;
        } else if (op == 9) {
            if (ws_send(c, 10, body, (size_t)blen) < 0)
                return -1;
        } else if (op != 10) {
            rc_bsub_err(s, "subscriber %d: unexpected frame (opcode %s, or fragmented)", c->idx,
                        op == 2   ? "binary"
                        : op == 0 ? "continuation"
                                  : "other");
            return -1;
        }
        p += hl + blen;
    }
    return p - p0;
}

void rc_bsub_http_prefix(struct sub *s, struct sconn *c, int ch)
{
    const struct rc_bench_opts *o = s->o;
    char pat[32], body[96];
    int hl, bl;
    snprintf(pat, sizeof(pat), "ch.%d.*", ch);
    if (o->proto == RC_BENCH_SSE) {
        if (o->psubscribe)
            hl = snprintf(c->hdr, sizeof(c->hdr),
                          "event: pmessage\ndata: {\"pattern\":\"%s\",\"channel\":\"%s\","
                          "\"data\":\"",
                          pat, c->chname);
        else
            hl = snprintf(c->hdr, sizeof(c->hdr),
                          "event: message\ndata: {\"channel\":\"%s\",\"data\":\"", c->chname);
        memcpy(c->tail, "\"}\n\n", 4);
        c->taillen = 4;
        c->hdrlen = (size_t)hl;
        return;
    }
    if (o->psubscribe)
        bl = snprintf(body, sizeof(body), "[\"pmessage\",\"%s\",\"%s\",\"", pat, c->chname);
    else
        bl = snprintf(body, sizeof(body), "[\"message\",\"%s\",\"", c->chname);
    uint64_t n = (uint64_t)bl + (uint64_t)o->size + 2; /* the frame's payload length */
    unsigned char *h = (unsigned char *)c->hdr;
    h[0] = 0x81; /* FIN, text */
    if (n < 126) {
        h[1] = (unsigned char)n;
        hl = 2;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)(n >> (56 - 8 * i));
        hl = 10;
    }
    memcpy(c->hdr + hl, body, (size_t)bl);
    c->hdrlen = (size_t)hl + (size_t)bl;
    memcpy(c->tail, "\"]", 2);
    c->taillen = 2;
}

int rc_bsub_http_request(struct sub *s, struct sconn *c, int ch, char *cmd, size_t cap)
{
    const struct rc_bench_opts *o = s->o;
    char host[80];
    /* an IPv6 literal goes in brackets in Host */
    snprintf(host, sizeof(host), strchr(o->host, ':') ? "[%s]:%d" : "%s:%d", o->host, o->http_port);
    if (o->proto == RC_BENCH_WS) /* SUBSCRIBE follows once the 101 has arrived (parse_head) */
        return snprintf(cmd, cap,
                        "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n",
                        host);
    if (o->psubscribe)
        return snprintf(cmd, cap,
                        "GET /events?pattern=ch.%d.%%2A HTTP/1.1\r\nHost: %s\r\n"
                        "Accept: text/event-stream\r\n\r\n",
                        ch, host);
    return snprintf(cmd, cap,
                    "GET /events?channel=%s HTTP/1.1\r\nHost: %s\r\n"
                    "Accept: text/event-stream\r\n\r\n",
                    c->chname, host);
}
