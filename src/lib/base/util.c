/* util.c -- allocation, logging, clocks and the growable byte buffer.
 *
 * Small helpers every module uses. Allocation aborts on failure with the size
 * it wanted, so callers never carry half-built state around; logging writes
 * one line per event to stderr (or the configured log file) in Redis's format
 * so operators can read ringcast's logs with the habits they already have.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
    fprintf(stderr, "ringcast: out of memory allocating %zu bytes\n", n);
    abort();
}

void *rc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *rc_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *rc_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *rc_xstrdup(const char *s)
{
    return rc_xmemdup(s, strlen(s) + 1);
}

void *rc_xmemdup(const void *p, size_t n)
{
    void *q = rc_xmalloc(n + 1);
    memcpy(q, p, n);
    ((char *)q)[n] = '\0';
    return q;
}

/* ---- Logging ---- */

static const char *const level_names[] = {"debug", "verbose", "notice", "warning"};

int rc_log_level_parse(const char *name)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(level_names); i++)
        if (!strcasecmp(name, level_names[i]))
            return (int)i;
    return -EINVAL;
}

const char *rc_log_level_name(int level)
{
    if (level < 0 || level >= (int)RC_ARRAY_LEN(level_names))
        return "notice";
    return level_names[level];
}

void rc_log(const struct rc_logger *lg, int level, const char *fmt, ...)
{
    static const char marks[] = ".-*#";
    static _Atomic int pid; /* the same value for every server: set once, raced harmlessly */
    char msg[1024], ts[64];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    if (lg && level < lg->level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    size_t off = strftime(ts, sizeof(ts), "%d %b %Y %H:%M:%S.", &tm);
    snprintf(ts + off, sizeof(ts) - off, "%03d", (int)(tv.tv_usec / 1000));
    if (!pid)
        pid = (int)getpid(); /* once: the server counts its own system calls */
    fprintf(stderr, "%d:M %s %c %s\n", pid, ts, marks[level & 3], msg);
}

/* ---- Time ---- */

uint64_t rc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t rc_now_ms(void)
{
    return rc_now_us() / 1000u;
}

uint64_t rc_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- Growable byte buffer ---- */

void rc_buf_reserve(struct rc_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra)
        cap *= 2;
    b->p = rc_xrealloc(b->p, cap);
    b->cap = cap;
}

void rc_buf_append(struct rc_buf *b, const void *p, size_t n)
{
    if (!n)
        return;
    rc_buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void rc_buf_appendc(struct rc_buf *b, char c)
{
    rc_buf_reserve(b, 1);
    b->p[b->len++] = c;
}

void rc_buf_appendf(struct rc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    rc_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rc_buf_append_u64(struct rc_buf *b, uint64_t v)
{
    rc_buf_reserve(b, 21);
    b->len += rc_u64_to_str(b->p + b->len, v);
}

void rc_buf_append_i64(struct rc_buf *b, int64_t v)
{
    rc_buf_reserve(b, 21);
    b->len += rc_i64_to_str(b->p + b->len, v);
}

void rc_buf_consume(struct rc_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void rc_buf_free(struct rc_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

size_t rc_u64_to_str(char *dst, uint64_t v)
{
    char tmp[21];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

size_t rc_i64_to_str(char *dst, int64_t v)
{
    if (v < 0) {
        dst[0] = '-';
        return 1 + rc_u64_to_str(dst + 1, (uint64_t)0 - (uint64_t)v);
    }
    return rc_u64_to_str(dst, (uint64_t)v);
}

bool rc_parse_i64(const char *s, size_t len, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0, limit;
    size_t i = 0;

    if (len == 0)
        return false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (len == 1)
            return false;
    }
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

bool rc_parse_memory(const char *s, uint64_t *out)
{
    size_t len = strlen(s), digits = 0;
    uint64_t mul = 1;
    int64_t v;

    while (digits < len && ((s[digits] >= '0' && s[digits] <= '9') || (digits == 0 && s[0] == '-')))
        digits++;
    const char *u = s + digits;
    if (!*u || !strcasecmp(u, "b"))
        mul = 1;
    else if (!strcasecmp(u, "k"))
        mul = 1000;
    else if (!strcasecmp(u, "kb"))
        mul = 1024;
    else if (!strcasecmp(u, "m"))
        mul = 1000ull * 1000;
    else if (!strcasecmp(u, "mb"))
        mul = 1024ull * 1024;
    else if (!strcasecmp(u, "g"))
        mul = 1000ull * 1000 * 1000;
    else if (!strcasecmp(u, "gb"))
        mul = 1024ull * 1024 * 1024;
    else
        return false;
    if (!rc_parse_i64(s, digits, &v) || v < 0)
        return false;
    if (v != 0 && (uint64_t)v > UINT64_MAX / mul)
        return false;
    *out = (uint64_t)v * mul;
    return true;
}

void rc_format_sockaddr(const struct sockaddr_storage *ss, char *dst, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    /* Redis's anetFormatAddr(): IPv6 addresses in brackets. */
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(dst, len, "%s:%d", ip, ntohs(a->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(dst, len, "[%s]:%d", ip, ntohs(a->sin6_port));
    } else {
        snprintf(dst, len, "?:0");
    }
}

int rc_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool rc_strcaseeq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}
