/* http1.h -- HTTP/1.1 request heads: a parser that never touches a socket.
 *
 * The parser reads the request line and the header fields of one request
 * from the bytes received so far and points into them (no copy). It accepts
 * what RFC 9112 asks a server to accept and nothing looser: CRLF line ends
 * (a bare LF too, as the RFC allows), no obsolete line folding, no spaces
 * before a header's colon, a bounded number of headers and a bounded head
 * size. The server only serves GET and HEAD without a body, so a request
 * that declares one is refused by the caller.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_HTTP1_H
#define RC_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_HTTP_MAX_HEADERS 48

struct rc_http_header {
    const char *name, *value; /* value without surrounding whitespace */
    size_t nlen, vlen;
};

struct rc_http_req {
    const char *method, *target; /* target: path and query as sent */
    size_t mlen, tlen;
    int minor; /* HTTP/1.<minor> */
    struct rc_http_header h[RC_HTTP_MAX_HEADERS];
    int nh;
};

/* Parses the head of one request from buf[0..len). Returns its size in bytes
 * (request line and headers, through the empty line) when complete, 0 when
 * more bytes are needed, -EMSGSIZE when the head is longer than max or has
 * more than RC_HTTP_MAX_HEADERS fields (431), -EBADMSG when it is not HTTP/1.x
 * (400), -EPROTONOSUPPORT for another HTTP major version (505). */
int rc_http_parse(const char *buf, size_t len, size_t max, struct rc_http_req *r);

/* The value of header name (case-insensitive), or NULL; *vlen its length.
 * With several fields of that name, the first. */
const char *rc_http_header(const struct rc_http_req *r, const char *name, size_t *vlen);

/* Does the comma-separated header list name contain token (case-insensitive)? */
bool rc_http_has_token(const struct rc_http_req *r, const char *name, const char *token);

/* Splits target into path and query (after '?'). */
void rc_http_split_target(const struct rc_http_req *r, const char **path, size_t *plen,
                          const char **query, size_t *qlen);

/* Iterates the query's key=value pairs: starts at *pos = 0; returns false at
 * the end. Keys and values are percent-decoded ('+' is a space) into out
 * (at least qlen bytes), and *key, *val point there. */
bool rc_http_query_next(const char *q, size_t qlen, size_t *pos, char *out, const char **key,
                        size_t *klen, const char **val, size_t *vlen);

/* The reason phrase of a status code ("Not Found"). */
const char *rc_http_reason(int status);

#endif
