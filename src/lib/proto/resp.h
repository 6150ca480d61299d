/* resp.h -- the Redis protocol (RESP2 and RESP3): request parser and reply encoders.
 *
 * Nothing here touches a socket. The parser takes the bytes a connection has
 * received so far and yields one request at a time; argument pointers point
 * into the caller's bytes (multibulk) or into the parser's own scratch
 * (inline commands, which need unquoting), so a request costs no copy on the
 * hot PUBLISH path. The encoders append to a struct rc_buf.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_RESP_H
#define RC_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "codecs.h"
#include "util.h"

/* Limits; Redis's defaults in brackets. */
struct rc_resp_limits {
    uint64_t max_bulk;      /* proto-max-bulk-len [512 MiB] */
    uint64_t max_multibulk; /* largest accepted array count [INT_MAX, as Redis 7] */
    size_t max_inline;      /* longest inline request / count line [64 KiB] */
};

void rc_resp_limits_default(struct rc_resp_limits *lim);

/* Redis's limits for a client that has not authenticated yet (networking.c,
 * processMultibulkBuffer, since 6.2.6): larger requests are refused before
 * their bytes are buffered, so a client without the password cannot make
 * the server hold more than about 10 x 16 KiB for it. */
#define RC_RESP_UNAUTH_MULTIBULK 10
#define RC_RESP_UNAUTH_BULK      16384

struct rc_resp_parser {
    struct rc_resp_limits lim;
    /* Set by the caller while the client has not authenticated: the
     * RC_RESP_UNAUTH_* limits apply, with Redis's "unauthenticated" errors. */
    bool unauth;
    /* Result of the last rc_resp_parse() that returned 1. */
    int argc;
    const char **argv;
    size_t *argvlen;
    /* Set when rc_resp_parse() returned -EPROTO: Redis's error text without
     * the leading '-' and trailing CRLF, e.g. "ERR Protocol error: invalid bulk length". */
    const char *err;
    /* Private incremental state. */
    int argcap;
    int state;
    int64_t mb_left;
    int64_t bulk_len;
    size_t pos;
    size_t *argoff;
    struct rc_buf scratch;
};

void rc_resp_parser_init(struct rc_resp_parser *p, const struct rc_resp_limits *lim);
void rc_resp_parser_free(struct rc_resp_parser *p);

/* Parses one request from buf[0..len).
 * Returns 1 when a request is complete: p->argc/argv/argvlen hold it (argc may
 *   be 0 for an empty inline line or "*0\r\n", which the caller skips) and
 *   *consumed is its size in bytes; argv stays valid until the next call or
 *   until buf changes.
 * Returns 0 when more bytes are needed; *consumed is 0. The parser remembers
 *   its progress: the next call must pass the same bytes again with more
 *   appended (the buffer may have moved).
 * Returns -EPROTO on a protocol error (p->err says which); the caller replies
 *   with the error and closes the connection, as Redis does. */
int rc_resp_parse(struct rc_resp_parser *p, const char *buf, size_t len, size_t *consumed);

/* Splits line[0..n) into words exactly as Redis's sdssplitargs() does (used
 * for inline requests and for config lines): whitespace-separated, "double
 * quotes" with \n \r \t \b \a \xHH escapes, 'single quotes' with \', a
 * closing quote that must end the word. The words are written back to back
 * to out (at least n bytes) and reported in order through word(arg, offset
 * in out, length). Returns the number of words, or -EINVAL on unbalanced
 * quotes. */
int rc_resp_splitargs(const char *line, size_t n, char *out,
                      void (*word)(void *arg, size_t off, size_t len), void *arg);

/* ---- Reply encoders (proto is 2 or 3) ---- */

void rc_resp_simple(struct rc_buf *b, const char *s); /* +s */
void rc_resp_error(struct rc_buf *b, const char *s);  /* -s (s has no '-') */
void rc_resp_errorf(struct rc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rc_resp_int(struct rc_buf *b, int64_t v);                               /* :v */
void rc_resp_bulk(struct rc_buf *b, const void *p, size_t n);                /* $n p */
void rc_resp_bulkstr(struct rc_buf *b, const char *s);                       /* $strlen(s) s */
void rc_resp_null(struct rc_buf *b, int proto);                              /* $-1 or _ */
void rc_resp_null_array(struct rc_buf *b, int proto);                        /* *-1 or _ */
void rc_resp_array(struct rc_buf *b, int64_t n);                             /* *n */
void rc_resp_map(struct rc_buf *b, int proto, int64_t pairs);                /* *2n or %n */
void rc_resp_set(struct rc_buf *b, int proto, int64_t n);                    /* *n or ~n */
void rc_resp_push(struct rc_buf *b, int proto, int64_t n);                   /* *n or >n */
void rc_resp_bool(struct rc_buf *b, int proto, bool v);                      /* :1/:0 or #t/#f */
void rc_resp_verbatim(struct rc_buf *b, int proto, const char *p, size_t n); /* $ or =n txt: */

/* The message frames fanned out to subscribers, as two codecs of the
 * engine's table (codecs.h): [kind, (pattern,) channel, payload] -- with
 * [.., epoch, seq] appended when the message carries a sequence stamp -- as a
 * RESP2 array or a RESP3 push. */
extern const struct rc_codec rc_codec_resp2;
extern const struct rc_codec rc_codec_resp3;

#endif
