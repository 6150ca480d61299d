/* fuzz_resp.c -- libFuzzer harness for the RESP request parser.
 *
 * Each input is parsed twice under two sets of limits (Redis's defaults and
 * tiny ones, so the "too big" paths are reachable): once as a whole buffer,
 * and once fed in pieces whose sizes are drawn from a hash of the input,
 * through a connection buffer that is reallocated on every piece so that a
 * parser keeping a stale pointer trips AddressSanitizer. Both runs must yield
 * the same requests, the same error and the same unconsumed tail; every
 * result must respect the contract (consumed within the bytes given, nothing
 * consumed when more is needed, arguments inside the input or the scratch).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_resp: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Appends one parse result to the transcript. */
static void record(struct rc_buf *t, const struct rc_resp_parser *p, const char *buf, size_t used)
{
    uint32_t argc = (uint32_t)p->argc;
    size_t sum = 0;

    CHECK(p->argc >= 0);
    rc_buf_append(t, "R", 1);
    rc_buf_append(t, &argc, sizeof(argc));
    for (int i = 0; i < p->argc; i++) {
        const char *a = p->argv[i];
        size_t n = p->argvlen[i];
        bool in_buf = a >= buf && n <= used && a <= buf + used - n;
        bool in_scr = p->scratch.p && a >= p->scratch.p && n <= p->scratch.len &&
                      a <= p->scratch.p + p->scratch.len - n;
        CHECK(in_buf || in_scr);
        sum += n;
        rc_buf_append(t, &n, sizeof(n));
        rc_buf_append(t, a, n);
    }
    /* Arguments never add up to more than the request that carried them. */
    CHECK(sum <= used);
}

static void record_err(struct rc_buf *t, const struct rc_resp_parser *p)
{
    CHECK(p->err != NULL);
    CHECK(strncmp(p->err, "ERR Protocol error: ", 20) == 0);
    rc_buf_append(t, "E", 1);
    rc_buf_append(t, p->err, strlen(p->err) + 1);
}

/* Parses data as one buffer; returns the number of bytes left unconsumed. */
static size_t parse_whole(const struct rc_resp_limits *lim, const uint8_t *data, size_t size,
                          struct rc_buf *t)
{
    struct rc_resp_parser p;
    const char *buf = (const char *)data;
    size_t off = 0;

    rc_resp_parser_init(&p, lim);
    while (off < size) { /* each round consumes at least one byte or stops */
        size_t used = (size_t)-1;
        int r = rc_resp_parse(&p, buf + off, size - off, &used);
        if (r == 0) {
            CHECK(used == 0);
            break;
        }
        if (r < 0) {
            CHECK(r == -EPROTO);
            record_err(t, &p);
            break;
        }
        CHECK(r == 1);
        CHECK(used > 0 && used <= size - off);
        record(t, &p, buf + off, used);
        off += used;
    }
    rc_resp_parser_free(&p);
    return size - off;
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* Feeds data in pieces through a buffer that moves every time. */
static size_t parse_pieces(const struct rc_resp_limits *lim, const uint8_t *data, size_t size,
                           struct rc_buf *t)
{
    struct rc_resp_parser p;
    char *conn = NULL;
    size_t clen = 0, fed = 0;
    uint64_t seed = 1469598103934665603ull;
    bool stop = false;

    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ull;
    seed |= 1;

    rc_resp_parser_init(&p, lim);
    while (!stop && fed < size) {
        uint64_t r = next_rand(&seed);
        /* Mostly tiny pieces (they hit every boundary), sometimes big ones. */
        size_t n = (r & 3) ? 1 + (size_t)((r >> 8) % 8) : 1 + (size_t)((r >> 8) % 512);
        n = n < size - fed ? n : size - fed;
        char *moved = malloc(clen + n);
        CHECK(moved != NULL);
        if (clen)
            memcpy(moved, conn, clen);
        memcpy(moved + clen, data + fed, n);
        free(conn);
        conn = moved;
        clen += n;
        fed += n;
        while (clen > 0) {
            size_t used = (size_t)-1;
            int rc = rc_resp_parse(&p, conn, clen, &used);
            if (rc == 0) {
                CHECK(used == 0);
                break;
            }
            if (rc < 0) {
                CHECK(rc == -EPROTO);
                record_err(t, &p);
                stop = true;
                break;
            }
            CHECK(rc == 1);
            CHECK(used > 0 && used <= clen);
            record(t, &p, conn, used);
            memmove(conn, conn + used, clen - used);
            clen -= used;
        }
    }
    free(conn);
    rc_resp_parser_free(&p);
    /* After an error the rest of the input is never looked at. */
    return clen + (size - fed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rc_resp_limits lims[2];
    rc_resp_limits_default(&lims[0]);
    lims[1].max_bulk = 64;
    lims[1].max_multibulk = 8;
    lims[1].max_inline = 24;

    for (size_t k = 0; k < 2; k++) {
        struct rc_buf a = {0}, b = {0};
        size_t left_a = parse_whole(&lims[k], data, size, &a);
        size_t left_b = parse_pieces(&lims[k], data, size, &b);
        CHECK(left_a == left_b);
        CHECK(a.len == b.len);
        CHECK(a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
        rc_buf_free(&a);
        rc_buf_free(&b);
    }
    return 0;
}
