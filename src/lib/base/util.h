/* util.h -- allocation, logging, time and a growable byte buffer.
 *
 * Allocation failure is fatal (like Redis's zmalloc): the process prints the
 * size it wanted and aborts. Resource limits, not malloc failure, are the
 * errors the rest of ringcast recovers from.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_UTIL_H
#define RC_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_LIKELY(x)    __builtin_expect(!!(x), 1)
#define RC_UNLIKELY(x)  __builtin_expect(!!(x), 0)
#define RC_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define RC_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define RC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *rc_xmalloc(size_t n);
void *rc_xcalloc(size_t n, size_t size);
void *rc_xrealloc(void *p, size_t n);
char *rc_xstrdup(const char *s);
void *rc_xmemdup(const void *p, size_t n);

/* ---- Logging ----
 *
 * Each server (and the engine it owns) logs through its own struct
 * rc_logger, so two servers in one process keep their own levels. Lines go
 * to stderr in Redis's style: "pid:M dd Mon yyyy hh:mm:ss.mmm * text". */

enum rc_log_level { RC_LOG_DEBUG, RC_LOG_VERBOSE, RC_LOG_NOTICE, RC_LOG_WARNING };

struct rc_logger {
    int level; /* messages below it are dropped; RC_LOG_NOTICE by default */
};

/* Parses "debug", "verbose", "notice" or "warning"; returns the level or -EINVAL. */
int rc_log_level_parse(const char *name);
const char *rc_log_level_name(int level);

/* Writes one line when level is at least lg's level. lg NULL: always written. */
void rc_log(const struct rc_logger *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Time ---- */

/* Monotonic clock in microseconds / milliseconds. */
uint64_t rc_now_us(void);
uint64_t rc_now_ms(void);
/* Wall clock in microseconds since the epoch. */
uint64_t rc_wall_us(void);

/* ---- Growable byte buffer ---- */

struct rc_buf {
    char *p;
    size_t len;
    size_t cap;
};

void rc_buf_reserve(struct rc_buf *b, size_t extra);
void rc_buf_append(struct rc_buf *b, const void *p, size_t n);
void rc_buf_appendc(struct rc_buf *b, char c);
void rc_buf_appendf(struct rc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rc_buf_append_u64(struct rc_buf *b, uint64_t v);
void rc_buf_append_i64(struct rc_buf *b, int64_t v);
/* Drops the first n bytes. */
void rc_buf_consume(struct rc_buf *b, size_t n);
void rc_buf_free(struct rc_buf *b);

/* Writes the decimal form of v to dst (at least 21 bytes); returns its length. */
size_t rc_u64_to_str(char *dst, uint64_t v);
size_t rc_i64_to_str(char *dst, int64_t v);

/* Parses a whole decimal integer (optional leading '-') with a bounded digit
 * loop; returns false on anything else, including overflow and empty input. */
bool rc_parse_i64(const char *s, size_t len, int64_t *out);

/* Parses a memory size like Redis: "1024", "8mb", "1gb", "64k" (case-insensitive,
 * k/kb/m/mb/g/gb: k=1000 kb=1024 as in Redis). Returns false on bad input. */
bool rc_parse_memory(const char *s, uint64_t *out);

/* Formats an address as Redis does: "ip:port", "[ip6]:port", "?:0" for anything else. */
struct sockaddr_storage;
void rc_format_sockaddr(const struct sockaddr_storage *ss, char *dst, size_t len);

/* The value of a hex digit, or -1. */
int rc_hexval(char c);

/* Case-insensitive comparison of a counted string against a C string. */
bool rc_strcaseeq(const char *s, size_t len, const char *lit);

#endif
