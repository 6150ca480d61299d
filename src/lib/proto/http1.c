/* http1.c -- the HTTP/1.1 request-head parser (see http1.h).
 *
 * A single pass over the received bytes: the caller passes the same bytes
 * again with more appended when 0 says "incomplete", and heads are small
 * (http-max-request, 16 KiB by default), so restarting is cheaper than
 * keeping state. Every length is bounded by what was received.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "http1.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* RFC 9110 tchar: the characters of a method or a header name. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A request-target: visible ASCII, no spaces or controls. */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

/* Field values: visible characters, spaces, tabs, and obs-text. */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Finds the end of the line starting at p: returns the index of its '\n'
 * (the line excludes a '\r' before it), or -1 when no '\n' is there yet. */
static long line_end(const char *buf, size_t from, size_t len)
{
    const char *nl = memchr(buf + from, '\n', len - from);
    return nl ? (long)(nl - buf) : -1;
}

static size_t trim_cr(const char *buf, size_t start, size_t nl)
{
    return (nl > start && buf[nl - 1] == '\r') ? nl - 1 : nl;
}

static int parse_request_line(const char *p, size_t n, struct rc_http_req *r)
{
    size_t i = 0;

    r->method = p;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    r->mlen = i;
    if (!r->mlen || i >= n || p[i] != ' ')
        return -EBADMSG;
    i++;
    r->target = p + i;
    while (i < n && is_target_char((unsigned char)p[i]))
        i++;
    r->tlen = (size_t)(p + i - r->target);
    if (!r->tlen || i >= n || p[i] != ' ')
        return -EBADMSG;
    i++;
    if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 6] != '.' || p[i + 5] < '0' ||
        p[i + 5] > '9' || p[i + 7] < '0' || p[i + 7] > '9')
        return -EBADMSG;
    if (p[i + 5] != '1')
        return -EPROTONOSUPPORT;
    r->minor = p[i + 7] - '0';
    return 0;
}

static int parse_header(const char *p, size_t n, struct rc_http_req *r)
{
    size_t i = 0, vs, ve;
    struct rc_http_header *h;

    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    /* No name, or whitespace before the colon (RFC 9112 5.1: reject). */
    if (!i || i >= n || p[i] != ':')
        return -EBADMSG;
    if (r->nh >= RC_HTTP_MAX_HEADERS)
        return -EMSGSIZE;
    h = &r->h[r->nh++];
    h->name = p;
    h->nlen = i;
    vs = i + 1;
    while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
        vs++;
    ve = n;
    while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    for (size_t k = vs; k < ve; k++)
        if (!is_value_char((unsigned char)p[k]))
            return -EBADMSG;
    h->value = p + vs;
    h->vlen = ve - vs;
    return 0;
}

int rc_http_parse(const char *buf, size_t len, size_t max, struct rc_http_req *r)
{
    size_t pos = 0;
    long nl;
    int err;

    memset(r, 0, sizeof(*r));
    /* RFC 9112 2.2: ignore empty lines before the request line. */
    while (pos < len && pos < 16 && (buf[pos] == '\r' || buf[pos] == '\n'))
        pos++;
    nl = line_end(buf, pos, RC_MIN(len, max));
    if (nl < 0)
        return len >= max ? -EMSGSIZE : 0;
    err = parse_request_line(buf + pos, trim_cr(buf, pos, (size_t)nl) - pos, r);
    if (err)
        return err;
    pos = (size_t)nl + 1;
    for (;;) {
        size_t end;
        nl = line_end(buf, pos, RC_MIN(len, max));
        if (nl < 0)
            return len >= max ? -EMSGSIZE : 0;
        end = trim_cr(buf, pos, (size_t)nl);
        if (end == pos)
            return (int)((size_t)nl + 1); /* the empty line: done */
        /* Obsolete line folding (a line starting with whitespace): reject. */
        if (buf[pos] == ' ' || buf[pos] == '\t')
            return -EBADMSG;
        err = parse_header(buf + pos, end - pos, r);
        if (err)
            return err;
        pos = (size_t)nl + 1;
    }
}

const char *rc_http_header(const struct rc_http_req *r, const char *name, size_t *vlen)
{
    size_t n = strlen(name);

    for (int i = 0; i < r->nh; i++)
        if (r->h[i].nlen == n && strncasecmp(r->h[i].name, name, n) == 0) {
            *vlen = r->h[i].vlen;
            return r->h[i].value;
        }
    return NULL;
}

bool rc_http_has_token(const struct rc_http_req *r, const char *name, const char *token)
{
    size_t tl = strlen(token), nl = strlen(name);

    for (int i = 0; i < r->nh; i++) {
        const char *v = r->h[i].value;
        size_t vl = r->h[i].vlen, k = 0;
        if (r->h[i].nlen != nl || strncasecmp(r->h[i].name, name, nl) != 0)
            continue;
        while (k < vl) {
            size_t s, e;
            while (k < vl && (v[k] == ' ' || v[k] == '\t' || v[k] == ','))
                k++;
            s = k;
            while (k < vl && v[k] != ',')
                k++;
            e = k;
            while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
                e--;
            if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
                return true;
        }
    }
    return false;
}

void rc_http_split_target(const struct rc_http_req *r, const char **path, size_t *plen,
                          const char **query, size_t *qlen)
{
    const char *q = memchr(r->target, '?', r->tlen);

    *path = r->target;
    *plen = q ? (size_t)(q - r->target) : r->tlen;
    *query = q ? q + 1 : r->target + r->tlen;
    *qlen = q ? r->tlen - *plen - 1 : 0;
}

/* Percent-decodes p[0..n) to out; returns the decoded length. A '%' not
 * followed by two hex digits stays as it is. */
static size_t decode(const char *p, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '+') {
            out[o++] = ' ';
        } else if (p[i] == '%' && i + 2 < n && rc_hexval(p[i + 1]) >= 0 &&
                   rc_hexval(p[i + 2]) >= 0) {
            out[o++] = (char)(rc_hexval(p[i + 1]) * 16 + rc_hexval(p[i + 2]));
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    return o;
}

bool rc_http_query_next(const char *q, size_t qlen, size_t *pos, char *out, const char **key,
                        size_t *klen, const char **val, size_t *vlen)
{
    while (*pos < qlen) {
        size_t s = *pos, e = s, eq;
        while (e < qlen && q[e] != '&')
            e++;
        *pos = e < qlen ? e + 1 : e;
        if (e == s)
            continue; /* "&&" */
        eq = s;
        while (eq < e && q[eq] != '=')
            eq++;
        /* Decoded key and value go to out at their own offsets: decoding
         * never grows a string, so [s, e) of out is room enough. */
        *klen = decode(q + s, eq - s, out + s);
        *key = out + s;
        *vlen = eq < e ? decode(q + eq + 1, e - eq - 1, out + eq + 1) : 0;
        *val = out + (eq < e ? eq + 1 : e);
        return true;
    }
    return false;
}

const char *rc_http_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
