/* resp.c -- incremental RESP request parser and RESP2/RESP3 reply encoders.
 *
 * The parser follows Redis 7.0's processMultibulkBuffer / processInlineBuffer
 * and sdssplitargs closely, down to their quirks, so that a client sees the
 * same replies and the same protocol errors from ringcast as from Redis: the
 * two bytes after a bulk payload are skipped unchecked, the byte after a count
 * line's '\r' is skipped unchecked, a NUL byte before the end of a count line
 * or inline line hides that line (Redis scans them with strchr) until the
 * "too big" limit trips, and numbers follow string2ll (no '+', no leading
 * zeros, no "-0"). The one deliberate difference: the "too big" limits are
 * judged on the position of the line terminator rather than on how many bytes
 * one read() happened to return, so the outcome never depends on how the input
 * was split into reads.
 *
 * Progress is kept between calls (state, position, argument offsets, how far
 * a line was already scanned), so a request that arrives in many pieces costs
 * O(total bytes), not O(pieces * bytes). Multibulk arguments are recorded as
 * offsets and turned into pointers only when the request completes, because
 * the caller's buffer may move between calls. Inline arguments need unquoting
 * and are written into the parser's scratch buffer.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "resp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    ST_START = 0, /* no request begun */
    ST_MB_COUNT,  /* "*<n>\r\n" line; bulk_len = bytes scanned, -1 after a NUL */
    ST_BULK_LEN,  /* "$<n>\r\n" line; bulk_len as above */
    ST_BULK_DATA, /* payload of bulk_len bytes plus two */
    ST_INLINE,    /* inline line; bulk_len as above */
};

#define ERR_MB_LEN     "ERR Protocol error: invalid multibulk length"
#define ERR_BULK_LEN   "ERR Protocol error: invalid bulk length"
#define ERR_UNAUTH_MB  "ERR Protocol error: unauthenticated multibulk length"
#define ERR_UNAUTH_BLK "ERR Protocol error: unauthenticated bulk length"
#define ERR_QUOTES     "ERR Protocol error: unbalanced quotes in request"
#define ERR_BIG_INLINE "ERR Protocol error: too big inline request"
#define ERR_BIG_MBULK  "ERR Protocol error: too big mbulk count string"
#define ERR_BIG_BULK   "ERR Protocol error: too big bulk count string"

#define ARGCAP_MIN 8

void rc_resp_limits_default(struct rc_resp_limits *lim)
{
    lim->max_bulk = 512ull * 1024 * 1024;
    lim->max_multibulk = 2147483647ull;
    lim->max_inline = 64 * 1024;
}

void rc_resp_parser_init(struct rc_resp_parser *p, const struct rc_resp_limits *lim)
{
    memset(p, 0, sizeof(*p));
    if (lim)
        p->lim = *lim;
    else
        rc_resp_limits_default(&p->lim);
    p->state = ST_START;
}

void rc_resp_parser_free(struct rc_resp_parser *p)
{
    if (!p)
        return;
    free(p->argv);
    free(p->argvlen);
    free(p->argoff);
    p->argv = NULL;
    p->argvlen = NULL;
    p->argoff = NULL;
    p->argcap = 0;
    p->argc = 0;
    rc_buf_free(&p->scratch);
}

static void reset(struct rc_resp_parser *p)
{
    p->state = ST_START;
    p->pos = 0;
    p->bulk_len = 0;
    p->mb_left = 0;
}

static int fail(struct rc_resp_parser *p, const char *err)
{
    p->err = err;
    p->argc = 0;
    reset(p);
    return -EPROTO;
}

/* Makes room for argument number n (0-based). Growth is driven by arguments
 * actually received, never by the announced count, so "*2147483647\r\n"
 * costs nothing until the bytes arrive. */
static void need_arg(struct rc_resp_parser *p, int n)
{
    if (RC_LIKELY(n < p->argcap))
        return;
    size_t cap = p->argcap ? (size_t)p->argcap * 2 : ARGCAP_MIN;
    p->argv = rc_xrealloc(p->argv, cap * sizeof(*p->argv));
    p->argvlen = rc_xrealloc(p->argvlen, cap * sizeof(*p->argvlen));
    p->argoff = rc_xrealloc(p->argoff, cap * sizeof(*p->argoff));
    p->argcap = (int)cap;
}

/* Redis's string2ll: optional '-', then "0" alone or a digit 1-9 followed by
 * digits, at most 20 bytes, no overflow. A bounded loop over counted bytes. */
static bool parse_ll(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v;

    if (n == 0 || n >= 21)
        return false;
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (s[0] == '-') {
        neg = true;
        if (++i == n)
            return false;
    }
    if (s[i] < '1' || s[i] > '9')
        return false;
    v = (uint64_t)(s[i++] - '0');
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return false;
        if (v > UINT64_MAX / 10 || v * 10 > UINT64_MAX - d)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        *out = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

/* Looks for the terminator of the line that starts at p->pos, resuming where
 * the previous call stopped (p->bulk_len). Returns 1 with *at set to the
 * terminator's index, 0 if more bytes are needed, -1 if the line is too long.
 * A NUL before the terminator makes the line unterminable, as strchr() does
 * in Redis: only the length limit can end it then. */
static int find_eol(struct rc_resp_parser *p, const char *buf, size_t len, char term, size_t *at)
{
    size_t start = p->pos, avail = len - start;
    size_t max = p->lim.max_inline;

    if (p->bulk_len >= 0) {
        size_t i = start + (size_t)p->bulk_len;
        /* No terminator within max+1 bytes means the line exceeds max. */
        size_t end = avail > max ? start + max + 1 : len;
        for (; i < end; i++) {
            char c = buf[i];
            if (c == term) {
                *at = i;
                p->bulk_len = (int64_t)(i - start);
                return 1;
            }
            if (RC_UNLIKELY(c == '\0')) {
                p->bulk_len = -1;
                break;
            }
        }
        if (p->bulk_len >= 0)
            p->bulk_len = (int64_t)(i - start);
    }
    return avail > max ? -1 : 0;
}

/* ---- Inline requests (sdssplitargs) ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int rc_resp_splitargs(const char *line, size_t n, char *out,
                      void (*word)(void *arg, size_t off, size_t len), void *arg)
{
    size_t i = 0, o = 0;
    int argc = 0;

#define CH(k) ((k) < n ? line[k] : '\0')
    for (;;) {
        while (i < n && is_space(line[i]))
            i++;
        if (i == n)
            break;
        size_t off = o;
        int mode = 0; /* 0 bare, 1 "double", 2 'single' */
        bool done = false;
        while (!done) {
            char c = CH(i);
            if (mode == 1) {
                if (c == '\\' && CH(i + 1) == 'x' && rc_hexval(CH(i + 2)) >= 0 &&
                    rc_hexval(CH(i + 3)) >= 0) {
                    out[o++] = (char)(rc_hexval(CH(i + 2)) * 16 + rc_hexval(CH(i + 3)));
                    i += 4;
                } else if (c == '\\' && CH(i + 1) != '\0') {
                    char e = CH(i + 1);
                    switch (e) {
                    case 'n': e = '\n'; break;
                    case 'r': e = '\r'; break;
                    case 't': e = '\t'; break;
                    case 'b': e = '\b'; break;
                    case 'a': e = '\a'; break;
                    default: break;
                    }
                    out[o++] = e;
                    i += 2;
                } else if (c == '"') {
                    /* The closing quote must be followed by a space or the end. */
                    if (CH(i + 1) != '\0' && !is_space(CH(i + 1)))
                        return -EINVAL;
                    done = true;
                    i++;
                } else if (c == '\0') {
                    return -EINVAL;
                } else {
                    out[o++] = c;
                    i++;
                }
            } else if (mode == 2) {
                if (c == '\\' && CH(i + 1) == '\'') {
                    out[o++] = '\'';
                    i += 2;
                } else if (c == '\'') {
                    if (CH(i + 1) != '\0' && !is_space(CH(i + 1)))
                        return -EINVAL;
                    done = true;
                    i++;
                } else if (c == '\0') {
                    return -EINVAL;
                } else {
                    out[o++] = c;
                    i++;
                }
            } else {
                switch (c) {
                case ' ':
                case '\n':
                case '\r':
                case '\t':
                    i++;
                    done = true;
                    break;
                case '\0': done = true; break;
                case '"':
                    mode = 1;
                    i++;
                    break;
                case '\'':
                    mode = 2;
                    i++;
                    break;
                default:
                    out[o++] = c;
                    i++;
                    break;
                }
            }
        }
        word(arg, off, o - off);
        argc++;
    }
#undef CH
    return argc;
}

static void inline_word(void *arg, size_t off, size_t len)
{
    struct rc_resp_parser *p = arg;
    need_arg(p, p->argc);
    p->argoff[p->argc] = off;
    p->argvlen[p->argc] = len;
    p->argc++;
}

/* Splits line[0..n) into arguments in p->scratch. Returns false on
 * unbalanced quotes. */
static bool split_inline(struct rc_resp_parser *p, const char *line, size_t n)
{
    p->argc = 0;
    p->scratch.len = 0;
    rc_buf_reserve(&p->scratch, n + 1);
    if (rc_resp_splitargs(line, n, p->scratch.p, inline_word, p) < 0) {
        p->argc = 0;
        return false;
    }
    if (p->argc)
        p->scratch.len = p->argoff[p->argc - 1] + p->argvlen[p->argc - 1];
    for (int k = 0; k < p->argc; k++)
        p->argv[k] = p->scratch.p + p->argoff[k];
    return true;
}

static int parse_inline(struct rc_resp_parser *p, const char *buf, size_t len, size_t *consumed)
{
    size_t nl, end;
    int r = find_eol(p, buf, len, '\n', &nl);

    if (r < 0)
        return fail(p, ERR_BIG_INLINE);
    if (r == 0)
        return 0;
    end = nl;
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    if (!split_inline(p, buf, end))
        return fail(p, ERR_QUOTES);
    *consumed = nl + 1;
    reset(p);
    return 1;
}

/* ---- Multibulk requests ---- */

static int parse_multibulk(struct rc_resp_parser *p, const char *buf, size_t len, size_t *consumed)
{
    size_t cr;
    int64_t ll;
    int r;

    if (p->state == ST_MB_COUNT) {
        r = find_eol(p, buf, len, '\r', &cr);
        if (r < 0)
            return fail(p, ERR_BIG_MBULK);
        /* Redis wants one more byte after '\r' and skips it unchecked. */
        if (r == 0 || cr + 1 >= len)
            return 0;
        if (!parse_ll(buf + 1, cr - 1, &ll) || (ll > 0 && (uint64_t)ll > p->lim.max_multibulk))
            return fail(p, ERR_MB_LEN);
        if (p->unauth && ll > RC_RESP_UNAUTH_MULTIBULK)
            return fail(p, ERR_UNAUTH_MB);
        p->pos = cr + 2;
        if (ll <= 0) {
            *consumed = p->pos;
            p->argc = 0;
            reset(p);
            return 1;
        }
        p->mb_left = ll;
        p->argc = 0;
        p->state = ST_BULK_LEN;
        p->bulk_len = 0;
    }

    while (p->mb_left > 0) {
        if (p->state == ST_BULK_LEN) {
            r = find_eol(p, buf, len, '\r', &cr);
            if (r < 0)
                return fail(p, ERR_BIG_BULK);
            if (r == 0 || cr + 1 >= len)
                return 0;
            char c = buf[p->pos];
            if (c != '$') {
                /* Redis's addReplyErrorFormat turns CR and LF into spaces. */
                if (c == '\r' || c == '\n')
                    c = ' ';
                p->scratch.len = 0;
                static const char pre[] = "ERR Protocol error: expected '$', got '";
                rc_buf_append(&p->scratch, pre, sizeof(pre) - 1);
                rc_buf_appendc(&p->scratch, c);
                rc_buf_appendc(&p->scratch, '\'');
                rc_buf_appendc(&p->scratch, '\0');
                return fail(p, p->scratch.p);
            }
            if (!parse_ll(buf + p->pos + 1, cr - p->pos - 1, &ll) || ll < 0 ||
                (uint64_t)ll > p->lim.max_bulk)
                return fail(p, ERR_BULK_LEN);
            if (p->unauth && ll > RC_RESP_UNAUTH_BULK)
                return fail(p, ERR_UNAUTH_BLK);
            p->pos = cr + 2;
            p->bulk_len = ll;
            p->state = ST_BULK_DATA;
        }
        /* ST_BULK_DATA: the payload and two more bytes, not checked (as Redis). */
        if (len - p->pos < (uint64_t)p->bulk_len + 2)
            return 0;
        need_arg(p, p->argc);
        p->argoff[p->argc] = p->pos;
        p->argvlen[p->argc] = (size_t)p->bulk_len;
        p->argc++;
        p->pos += (size_t)p->bulk_len + 2;
        p->mb_left--;
        p->state = ST_BULK_LEN;
        p->bulk_len = 0;
    }

    for (int k = 0; k < p->argc; k++)
        p->argv[k] = buf + p->argoff[k];
    *consumed = p->pos;
    reset(p);
    return 1;
}

int rc_resp_parse(struct rc_resp_parser *p, const char *buf, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (p->state == ST_START) {
        if (len == 0)
            return 0;
        p->pos = 0;
        p->bulk_len = 0;
        p->mb_left = 0;
        p->argc = 0;
        p->state = buf[0] == '*' ? ST_MB_COUNT : ST_INLINE;
    }
    if (p->state == ST_INLINE)
        return parse_inline(p, buf, len, consumed);
    return parse_multibulk(p, buf, len, consumed);
}

/* ---- Integer formatting for the encoders ---- */

static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

static inline size_t u64_len(uint64_t v)
{
    size_t n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

/* Writes v at dst without a terminator; returns the end. */
static inline char *put_u64(char *dst, uint64_t v)
{
    size_t n = u64_len(v);
    char *end = dst + n, *w = end;
    while (v >= 100) {
        unsigned i = (unsigned)(v % 100) * 2;
        v /= 100;
        *--w = digit_pairs[i + 1];
        *--w = digit_pairs[i];
    }
    if (v >= 10) {
        *--w = digit_pairs[v * 2 + 1];
        *--w = digit_pairs[v * 2];
    } else {
        *--w = (char)('0' + v);
    }
    return end;
}

/* Appends "<prefix><v>\r\n". */
static void put_hdr(struct rc_buf *b, char prefix, int64_t v)
{
    char tmp[32], *w = tmp;
    *w++ = prefix;
    if (v < 0) {
        *w++ = '-';
        w = put_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        w = put_u64(w, (uint64_t)v);
    }
    *w++ = '\r';
    *w++ = '\n';
    rc_buf_append(b, tmp, (size_t)(w - tmp));
}

/* ---- Reply encoders ---- */

void rc_resp_simple(struct rc_buf *b, const char *s)
{
    size_t n = strlen(s);
    rc_buf_reserve(b, n + 3);
    b->p[b->len++] = '+';
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

void rc_resp_error(struct rc_buf *b, const char *s)
{
    size_t n = strlen(s);
    rc_buf_reserve(b, n + 3);
    b->p[b->len++] = '-';
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

void rc_resp_errorf(struct rc_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    size_t start;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    rc_buf_reserve(b, (size_t)n + 4);
    b->p[b->len++] = '-';
    start = b->len;
    if ((size_t)n < sizeof(small)) {
        memcpy(b->p + start, small, (size_t)n);
    } else {
        va_start(ap, fmt);
        vsnprintf(b->p + start, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    /* A newline inside an error would break the protocol (Redis does the same). */
    for (size_t i = start; i < start + (size_t)n; i++)
        if (b->p[i] == '\r' || b->p[i] == '\n')
            b->p[i] = ' ';
    b->len += (size_t)n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

void rc_resp_int(struct rc_buf *b, int64_t v)
{
    put_hdr(b, ':', v);
}

void rc_resp_bulk(struct rc_buf *b, const void *p, size_t n)
{
    char *w;
    rc_buf_reserve(b, n + 26);
    w = b->p + b->len;
    *w++ = '$';
    w = put_u64(w, n);
    *w++ = '\r';
    *w++ = '\n';
    if (n)
        memcpy(w, p, n);
    w += n;
    *w++ = '\r';
    *w++ = '\n';
    b->len = (size_t)(w - b->p);
}

void rc_resp_bulkstr(struct rc_buf *b, const char *s)
{
    rc_resp_bulk(b, s, strlen(s));
}

void rc_resp_null(struct rc_buf *b, int proto)
{
    if (proto >= 3)
        rc_buf_append(b, "_\r\n", 3);
    else
        rc_buf_append(b, "$-1\r\n", 5);
}

void rc_resp_null_array(struct rc_buf *b, int proto)
{
    if (proto >= 3)
        rc_buf_append(b, "_\r\n", 3);
    else
        rc_buf_append(b, "*-1\r\n", 5);
}

void rc_resp_array(struct rc_buf *b, int64_t n)
{
    put_hdr(b, '*', n);
}

void rc_resp_map(struct rc_buf *b, int proto, int64_t pairs)
{
    if (proto >= 3)
        put_hdr(b, '%', pairs);
    else
        put_hdr(b, '*', pairs * 2);
}

void rc_resp_set(struct rc_buf *b, int proto, int64_t n)
{
    put_hdr(b, proto >= 3 ? '~' : '*', n);
}

void rc_resp_push(struct rc_buf *b, int proto, int64_t n)
{
    put_hdr(b, proto >= 3 ? '>' : '*', n);
}

void rc_resp_bool(struct rc_buf *b, int proto, bool v)
{
    if (proto >= 3)
        rc_buf_append(b, v ? "#t\r\n" : "#f\r\n", 4);
    else
        rc_buf_append(b, v ? ":1\r\n" : ":0\r\n", 4);
}

void rc_resp_verbatim(struct rc_buf *b, int proto, const char *p, size_t n)
{
    if (proto < 3) {
        rc_resp_bulk(b, p, n);
        return;
    }
    char *w;
    rc_buf_reserve(b, n + 30);
    w = b->p + b->len;
    *w++ = '=';
    w = put_u64(w, (uint64_t)n + 4);
    memcpy(w, "\r\ntxt:", 6); /* NOLINT(bugprone-not-null-terminated-result): RESP, not C */
    w += 6;
    if (n)
        memcpy(w, p, n);
    w += n;
    *w++ = '\r';
    *w++ = '\n';
    b->len = (size_t)(w - b->p);
}

/* ---- Subscriber message frames (hot path: no stdio) ---- */

static inline size_t bulk_size(size_t n)
{
    return 1 + u64_len(n) + 2 + n + 2;
}

static inline char *put_bulk(char *w, const char *s, size_t n)
{
    *w++ = '$';
    w = put_u64(w, n);
    *w++ = '\r';
    *w++ = '\n';
    if (n)
        memcpy(w, s, n);
    w += n;
    *w++ = '\r';
    *w++ = '\n';
    return w;
}

/* ---- The RESP codecs (core/codec.h) ---- */

static const char *const kind_names[] = {"message", "pmessage", "smessage"};
static const size_t kind_lens[] = {7, 8, 8};

static size_t int_size(uint64_t v)
{
    char tmp[24];
    return 3 + rc_u64_to_str(tmp, v); /* ":<v>\r\n" */
}

static size_t msg_len(const struct rc_msgview *m)
{
    size_t n = 4 + bulk_size(kind_lens[m->kind]) + bulk_size(m->clen) + bulk_size(m->len);
    if (m->kind == RC_MSG_PMESSAGE)
        n += bulk_size(m->plen);
    if (m->has_seq)
        n += int_size(m->epoch) + int_size(m->seq);
    return n;
}

static char *put_int(char *w, uint64_t v)
{
    *w++ = ':';
    w += rc_u64_to_str(w, v);
    *w++ = '\r';
    *w++ = '\n';
    return w;
}

/* [kind, (pattern,) channel, payload (, epoch, seq)] as an array or a push. */
static size_t msg_write(char *dst, const struct rc_msgview *m, char type)
{
    char *w = dst;
    bool pat = m->kind == RC_MSG_PMESSAGE;

    *w++ = type;
    *w++ = (char)('0' + 3 + pat + (m->has_seq ? 2 : 0));
    *w++ = '\r';
    *w++ = '\n';
    w = put_bulk(w, kind_names[m->kind], kind_lens[m->kind]);
    if (pat)
        w = put_bulk(w, m->pat, m->plen);
    w = put_bulk(w, m->chan, m->clen);
    w = put_bulk(w, m->payload, m->len);
    if (m->has_seq) {
        w = put_int(w, m->epoch);
        w = put_int(w, m->seq);
    }
    return (size_t)(w - dst);
}

static size_t resp2_write(char *dst, const struct rc_msgview *m)
{
    return msg_write(dst, m, '*');
}

static size_t resp3_write(char *dst, const struct rc_msgview *m)
{
    return msg_write(dst, m, '>');
}

const struct rc_codec rc_codec_resp2 = {RC_FMT_RESP2, "resp2", msg_len, resp2_write};
const struct rc_codec rc_codec_resp3 = {RC_FMT_RESP3, "resp3", msg_len, resp3_write};
