/* json.c -- JSON strings out, JSON argument arrays in, RESP replies to JSON (see json.h).
 *
 * Everything is bounded by the input length; the parsers keep no state
 * between calls and fail cleanly on anything unexpected. Base64 is
 * OpenSSL's (EVP_EncodeBlock), fed in blocks so it never writes past the
 * exact length the caller reserved.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "json.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* Length of the UTF-8 sequence at p[0..n), or 0 when it is not valid there. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (n >= 2 && (p[1] & 0xc0) == 0x80) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return (n >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80) ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return (n >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
                (p[3] & 0xc0) == 0x80)
                   ? 4
                   : 0;
    }
    return 0;
}

bool rc_utf8_valid(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;

    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

/* ---- Strings out ---- */

static size_t esc_len(unsigned char c)
{
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
        return 2;
    return c < 0x20 ? 6 : 1;
}

size_t rc_json_str_len(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t len = 2;

    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (k == 1)
            len += esc_len(u[i]);
        else if (k)
            len += k;
        else
            len += 6; /* \u00XX for an invalid byte */
        i += k ? k : 1;
    }
    return len;
}

char *rc_json_str_write(char *dst, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)p;

    *dst++ = '"';
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        unsigned char c = u[i];
        if (k > 1) {
            memcpy(dst, u + i, k);
            dst += k;
            i += k;
            continue;
        }
        i++;
        if (k == 1 && esc_len(c) == 1) {
            *dst++ = (char)c;
            continue;
        }
        *dst++ = '\\';
        switch (k ? c : 0x100) {
        case '"': *dst++ = '"'; break;
        case '\\': *dst++ = '\\'; break;
        case '\b': *dst++ = 'b'; break;
        case '\f': *dst++ = 'f'; break;
        case '\n': *dst++ = 'n'; break;
        case '\r': *dst++ = 'r'; break;
        case '\t': *dst++ = 't'; break;
        default:
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[c >> 4];
            *dst++ = hex[c & 15];
        }
    }
    *dst++ = '"';
    return dst;
}

char *rc_b64_write(char *dst, const void *p, size_t n)
{
    const unsigned char *u = p;
    unsigned char tmp[4 * 1024 + 1];

    /* 3 KiB of input at a time: 4 KiB of output plus OpenSSL's NUL. */
    while (n) {
        size_t take = n > 3 * 1024 ? 3 * 1024 : n;
        int w = EVP_EncodeBlock(tmp, u, (int)take);
        memcpy(dst, tmp, (size_t)w);
        dst += w;
        u += take;
        n -= take;
    }
    return dst;
}

size_t rc_json_data_len(const char *p, size_t n)
{
    if (rc_utf8_valid(p, n))
        return 7 + rc_json_str_len(p, n); /* "data": */
    return 11 + 2 + rc_b64_len(n);        /* "data_b64":"..." */
}

char *rc_json_data_write(char *dst, const char *p, size_t n)
{
    if (rc_utf8_valid(p, n)) {
        memcpy(dst, "\"data\":", 7); /* NOLINT(bugprone-not-null-terminated-result) */
        return rc_json_str_write(dst + 7, p, n);
    }
    memcpy(dst, "\"data_b64\":\"", 12); /* NOLINT(bugprone-not-null-terminated-result) */
    dst = rc_b64_write(dst + 12, p, n);
    *dst++ = '"';
    return dst;
}

/* ---- Arguments in ---- */

struct jp {
    const char *p;
    size_t n, i;
    const char *err;
};

static void skip_ws(struct jp *j)
{
    while (j->i < j->n &&
           (j->p[j->i] == ' ' || j->p[j->i] == '\t' || j->p[j->i] == '\n' || j->p[j->i] == '\r'))
        j->i++;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        int d = rc_hexval(p[k]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static void put_utf8(struct rc_buf *out, uint32_t cp)
{
    char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    rc_buf_append(out, b, n);
}

/* A string starting at the opening quote: unescaped onto out. */
static bool parse_string(struct jp *j, struct rc_buf *out)
{
    j->i++; /* '"' */
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->p[j->i];
        if (c == '"') {
            j->i++;
            return true;
        }
        if (c < 0x20) {
            j->err = "control character in a string";
            return false;
        }
        if (c != '\\') {
            size_t k = utf8_seq((const unsigned char *)j->p + j->i, j->n - j->i);
            if (!k) {
                j->err = "invalid UTF-8 in a string";
                return false;
            }
            rc_buf_append(out, j->p + j->i, k);
            j->i += k;
            continue;
        }
        if (++j->i >= j->n)
            break;
        c = (unsigned char)j->p[j->i++];
        switch (c) {
        case '"': rc_buf_appendc(out, '"'); break;
        case '\\': rc_buf_appendc(out, '\\'); break;
        case '/': rc_buf_appendc(out, '/'); break;
        case 'b': rc_buf_appendc(out, '\b'); break;
        case 'f': rc_buf_appendc(out, '\f'); break;
        case 'n': rc_buf_appendc(out, '\n'); break;
        case 'r': rc_buf_appendc(out, '\r'); break;
        case 't': rc_buf_appendc(out, '\t'); break;
        case 'u': {
            int hi = j->i + 4 <= j->n ? hex4(j->p + j->i) : -1;
            uint32_t cp;
            if (hi < 0) {
                j->err = "bad \\u escape";
                return false;
            }
            j->i += 4;
            cp = (uint32_t)hi;
            if (hi >= 0xd800 && hi <= 0xdbff) {
                int lo = (j->i + 6 <= j->n && j->p[j->i] == '\\' && j->p[j->i + 1] == 'u')
                             ? hex4(j->p + j->i + 2)
                             : -1;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    j->err = "unpaired surrogate in a \\u escape";
                    return false;
                }
                j->i += 6;
                cp = 0x10000 + (((uint32_t)hi - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
            } else if (hi >= 0xdc00 && hi <= 0xdfff) {
                j->err = "unpaired surrogate in a \\u escape";
                return false;
            }
            put_utf8(out, cp);
            break;
        }
        default: j->err = "bad escape in a string"; return false;
        }
    }
    j->err = "unterminated string";
    return false;
}

/* A number, true, false or null: its text as it is. */
static bool parse_scalar(struct jp *j, struct rc_buf *out)
{
    static const char *const words[] = {"true", "false", "null"};
    size_t s = j->i;

    for (size_t w = 0; w < RC_ARRAY_LEN(words); w++) {
        size_t l = strlen(words[w]);
        if (j->n - j->i >= l && !memcmp(j->p + j->i, words[w], l)) {
            rc_buf_append(out, words[w], l);
            j->i += l;
            return true;
        }
    }
    if (j->i < j->n && j->p[j->i] == '-')
        j->i++;
    if (j->i >= j->n || j->p[j->i] < '0' || j->p[j->i] > '9') {
        j->err = "expected a string, a number, true, false or null";
        return false;
    }
    while (j->i < j->n &&
           ((j->p[j->i] >= '0' && j->p[j->i] <= '9') || j->p[j->i] == '.' || j->p[j->i] == 'e' ||
            j->p[j->i] == 'E' || j->p[j->i] == '+' || j->p[j->i] == '-'))
        j->i++;
    rc_buf_append(out, j->p + s, j->i - s);
    return true;
}

int rc_json_parse_args(const char *p, size_t n, struct rc_buf *out, size_t *offs, size_t *lens,
                       int max, const char **err)
{
    struct jp j = {p, n, 0, NULL};
    int argc = 0;

    out->len = 0;
    skip_ws(&j);
    if (j.i >= n || p[j.i] != '[') {
        *err = "a command is a JSON array, e.g. [\"PING\"]";
        return -EINVAL;
    }
    j.i++;
    skip_ws(&j);
    if (j.i < n && p[j.i] == ']') {
        j.i++;
        goto end;
    }
    for (;;) {
        size_t start = out->len;
        skip_ws(&j);
        if (j.i >= n)
            break;
        if (argc >= max) {
            *err = "too many arguments";
            return -EINVAL;
        }
        if (p[j.i] == '"' ? !parse_string(&j, out) : !parse_scalar(&j, out)) {
            *err = j.err;
            return -EINVAL;
        }
        offs[argc] = start;
        lens[argc] = out->len - start;
        argc++;
        skip_ws(&j);
        if (j.i < n && p[j.i] == ',') {
            j.i++;
            continue;
        }
        if (j.i < n && p[j.i] == ']') {
            j.i++;
            goto end;
        }
        *err = "expected ',' or ']' in the command array";
        return -EINVAL;
    }
    *err = "unterminated command array";
    return -EINVAL;
end:
    skip_ws(&j);
    if (j.i != n) {
        *err = "text after the command array";
        return -EINVAL;
    }
    return argc;
}

/* ---- RESP to JSON ---- */

#define MAX_DEPTH 32

/* The line at p[0..n) up to CRLF: its length, or -1 when incomplete. */
static long resp_line(const char *p, size_t n)
{
    const char *cr = memchr(p, '\r', n);
    if (!cr || (size_t)(cr - p) + 1 >= n)
        return -1;
    return cr[1] == '\n' ? cr - p : -2;
}

static bool parse_len(const char *p, size_t n, int64_t *v)
{
    return rc_parse_i64(p, n, v);
}

/* A JSON number (RFC 8259): -?int frac? exp? */
static bool json_number(const char *p, size_t n)
{
    size_t i = 0;

    if (i < n && p[i] == '-')
        i++;
    if (i >= n || p[i] < '0' || p[i] > '9')
        return false;
    if (p[i] == '0')
        i++;
    else
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    if (i < n && p[i] == '.') {
        if (++i >= n || p[i] < '0' || p[i] > '9')
            return false;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        if (++i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || p[i] < '0' || p[i] > '9')
            return false;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    return i == n;
}

static void json_str(struct rc_buf *out, const char *p, size_t n)
{
    size_t l = rc_json_str_len(p, n);
    rc_buf_reserve(out, l);
    out->len = (size_t)(rc_json_str_write(out->p + out->len, p, n) - out->p);
}

static long to_json(const char *p, size_t n, struct rc_buf *out, int depth)
{
    long l;
    int64_t v;
    size_t pos;

    if (n < 1)
        return 0;
    if (depth > MAX_DEPTH)
        return -EBADMSG;
    l = resp_line(p + 1, n - 1);
    if (l == -1)
        return 0;
    if (l < 0)
        return -EBADMSG;
    pos = 1 + (size_t)l + 2;
    switch (p[0]) {
    case '+': json_str(out, p + 1, (size_t)l); return (long)pos;
    case '-':
        rc_buf_append(out, "{\"error\":", 9);
        json_str(out, p + 1, (size_t)l);
        rc_buf_appendc(out, '}');
        return (long)pos;
    case ':':
        if (!parse_len(p + 1, (size_t)l, &v))
            return -EBADMSG;
        rc_buf_append(out, p + 1, (size_t)l);
        return (long)pos;
    case '(':
    case ',':
        /* Big numbers and doubles as JSON numbers when they are plain
         * numbers; anything else (inf, nan, junk) as a string. */
        if (json_number(p + 1, (size_t)l))
            rc_buf_append(out, p + 1, (size_t)l);
        else
            json_str(out, p + 1, (size_t)l);
        return (long)pos;
    case '_': rc_buf_append(out, "null", 4); return (long)pos;
    case '#':
        if (l != 1 || (p[1] != 't' && p[1] != 'f'))
            return -EBADMSG;
        rc_buf_append(out, p[1] == 't' ? "true" : "false", p[1] == 't' ? 4 : 5);
        return (long)pos;
    case '$':
    case '=': {
        size_t body;
        if (!parse_len(p + 1, (size_t)l, &v) || v < -1)
            return -EBADMSG;
        if (v == -1) {
            rc_buf_append(out, "null", 4);
            return (long)pos;
        }
        if (n - pos < (size_t)v + 2)
            return 0;
        if (p[pos + (size_t)v] != '\r' || p[pos + (size_t)v + 1] != '\n')
            return -EBADMSG;
        body = pos;
        if (p[0] == '=') { /* verbatim: "txt:" prefix */
            if (v < 4)
                return -EBADMSG;
            body += 4;
            v -= 4;
        }
        if (rc_utf8_valid(p + body, (size_t)v)) {
            json_str(out, p + body, (size_t)v);
        } else {
            rc_buf_append(out, "{\"data_b64\":\"", 13);
            rc_buf_reserve(out, rc_b64_len((size_t)v));
            out->len = (size_t)(rc_b64_write(out->p + out->len, p + body, (size_t)v) - out->p);
            rc_buf_append(out, "\"}", 2);
        }
        return (long)(body + (size_t)v + 2);
    }
    case '*':
    case '>':
    case '~':
    case '%': {
        bool map = p[0] == '%';
        int64_t items;
        if (!parse_len(p + 1, (size_t)l, &v) || v < -1 || v > (int64_t)n)
            return -EBADMSG;
        if (v == -1) {
            rc_buf_append(out, "null", 4);
            return (long)pos;
        }
        items = map ? 2 * v : v;
        rc_buf_appendc(out, map ? '{' : '[');
        for (int64_t k = 0; k < items; k++) {
            long used;
            if (k)
                rc_buf_appendc(out, (map && (k & 1)) ? ':' : ',');
            if (map && !(k & 1) && pos < n && p[pos] != '+' && p[pos] != '$') {
                /* A JSON key must be a string: quote whatever it is. */
                struct rc_buf key = {0};
                used = to_json(p + pos, n - pos, &key, depth + 1);
                if (used > 0)
                    json_str(out, key.p, key.len);
                rc_buf_free(&key);
            } else {
                used = to_json(p + pos, n - pos, out, depth + 1);
            }
            if (used <= 0)
                return used;
            pos += (size_t)used;
        }
        rc_buf_appendc(out, map ? '}' : ']');
        return (long)pos;
    }
    default: return -EBADMSG;
    }
}

long rc_resp_to_json(const char *p, size_t n, struct rc_buf *out)
{
    size_t mark = out->len;
    long r = to_json(p, n, out, 0);

    if (r <= 0)
        out->len = mark;
    return r;
}
