/* codec_http.c -- the browser wire formats: a Server-Sent Events event and a WebSocket frame.
 *
 * Both are entries of the codec table (codecs.h), so a message is encoded
 * once per format and the same bytes go to every subscriber of that format:
 *
 *   SSE    id: <epoch>-<seq>            (only with a sequence stamp)
 *          event: message               (pmessage, smessage)
 *          data: {"channel":"quotes.AAPL","data":"<payload>"}
 *                                        (pmessage: "pattern" first)
 *          <empty line>
 *
 *   WS     one unmasked text frame holding the RESP3 push as JSON:
 *          ["message","quotes.AAPL","<payload>"] or
 *          ["pmessage","quotes.*","quotes.AAPL","<payload>"], with epoch and
 *          sequence appended when stamped (as RESP's five-element form).
 *
 * A payload that is not valid UTF-8 is carried base64-encoded: "data_b64"
 * instead of "data" in SSE, {"data_b64":"..."} in place of the string in WS
 * (json.h). JSON never holds a raw newline, so an SSE data line stays one line.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <stdio.h>
#include <string.h>

#include "codecs.h"
#include "json.h"
#include "ws.h"

static const char *const kinds[] = {"message", "pmessage", "smessage"};

static size_t u64_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static char *put_u64(char *dst, uint64_t v)
{
    char tmp[24];
    size_t n = rc_u64_to_str(tmp, v);
    memcpy(dst, tmp, n);
    return dst + n;
}

static char *put(char *dst, const char *s)
{
    size_t n = strlen(s);
    memcpy(dst, s, n); /* NOLINT(bugprone-not-null-terminated-result): frame bytes, no NUL */
    return dst + n;
}

/* ---- SSE ---- */

static size_t sse_len(const struct rc_msgview *m)
{
    size_t n = 0;

    if (m->has_seq)
        n += 4 + u64_len(m->epoch) + 1 + u64_len(m->seq) + 1; /* "id: E-S\n" */
    n += 7 + strlen(kinds[m->kind]) + 1;                      /* "event: K\n" */
    n += 6 + 1;                                               /* "data: {" */
    if (m->kind == RC_MSG_PMESSAGE)
        n += 10 + rc_json_str_len(m->pat, m->plen) + 1; /* "pattern":P, */
    n += 10 + rc_json_str_len(m->chan, m->clen) + 1;    /* "channel":C, */
    n += rc_json_data_len(m->payload, m->len);
    return n + 3; /* "}\n\n" */
}

static size_t sse_write(char *dst, const struct rc_msgview *m)
{
    char *w = dst;

    if (m->has_seq) {
        w = put(w, "id: ");
        w = put_u64(w, m->epoch);
        *w++ = '-';
        w = put_u64(w, m->seq);
        *w++ = '\n';
    }
    w = put(w, "event: ");
    w = put(w, kinds[m->kind]);
    w = put(w, "\ndata: {");
    if (m->kind == RC_MSG_PMESSAGE) {
        w = put(w, "\"pattern\":");
        w = rc_json_str_write(w, m->pat, m->plen);
        *w++ = ',';
    }
    w = put(w, "\"channel\":");
    w = rc_json_str_write(w, m->chan, m->clen);
    *w++ = ',';
    w = rc_json_data_write(w, m->payload, m->len);
    w = put(w, "}\n\n");
    return (size_t)(w - dst);
}

/* ---- WebSocket ---- */

static size_t payload_len(const char *p, size_t n)
{
    return rc_utf8_valid(p, n) ? rc_json_str_len(p, n) : 2 + rc_json_data_len(p, n);
}

static char *payload_write(char *w, const char *p, size_t n)
{
    if (rc_utf8_valid(p, n))
        return rc_json_str_write(w, p, n);
    *w++ = '{';
    w = rc_json_data_write(w, p, n);
    *w++ = '}';
    return w;
}

static size_t ws_body_len(const struct rc_msgview *m)
{
    size_t n = 1 + 2 + strlen(kinds[m->kind]) + 1; /* ["kind", */
    if (m->kind == RC_MSG_PMESSAGE)
        n += rc_json_str_len(m->pat, m->plen) + 1;
    n += rc_json_str_len(m->chan, m->clen) + 1;
    n += payload_len(m->payload, m->len);
    if (m->has_seq)
        n += 1 + u64_len(m->epoch) + 1 + u64_len(m->seq);
    return n + 1; /* ] */
}

static size_t ws_len(const struct rc_msgview *m)
{
    size_t body = ws_body_len(m);
    return rc_ws_header_len(body) + body;
}

static size_t ws_write(char *dst, const struct rc_msgview *m)
{
    size_t body = ws_body_len(m);
    char *w = dst + rc_ws_header_write((unsigned char *)dst, RC_WS_TEXT, body);

    *w++ = '[';
    *w++ = '"';
    w = put(w, kinds[m->kind]);
    *w++ = '"';
    *w++ = ',';
    if (m->kind == RC_MSG_PMESSAGE) {
        w = rc_json_str_write(w, m->pat, m->plen);
        *w++ = ',';
    }
    w = rc_json_str_write(w, m->chan, m->clen);
    *w++ = ',';
    w = payload_write(w, m->payload, m->len);
    if (m->has_seq) {
        *w++ = ',';
        w = put_u64(w, m->epoch);
        *w++ = ',';
        w = put_u64(w, m->seq);
    }
    *w++ = ']';
    return (size_t)(w - dst);
}

const struct rc_codec rc_codec_sse = {RC_FMT_SSE, "sse", sse_len, sse_write};
const struct rc_codec rc_codec_ws = {RC_FMT_WS, "ws", ws_len, ws_write};
