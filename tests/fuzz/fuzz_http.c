/* fuzz_http.c -- libFuzzer harness for the HTTP/1.1 request-head parser.
 *
 * Each input is parsed under two head limits (64 bytes and 16 KiB). For a
 * complete head the harness checks the contract: the size is within the
 * input, every pointer (method, target, header names and values) lies inside
 * it, the same bytes cut one short are "incomplete" rather than another
 * request, and the query iterator decodes within its bounds. Any input must
 * end in a result, never a crash or a read past the buffer (ASan).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool inside(const char *p, size_t n, const char *buf, size_t size)
{
    return p >= buf && p + n <= buf + size;
}

static void one(const char *buf, size_t size, size_t max)
{
    struct rc_http_req r;
    int n = rc_http_parse(buf, size, max, &r);

    CHECK(n == 0 || n == -EMSGSIZE || n == -EBADMSG || n == -EPROTONOSUPPORT || n > 0);
    if (n <= 0)
        return;
    CHECK((size_t)n <= size && (size_t)n <= max + 2);
    CHECK(inside(r.method, r.mlen, buf, (size_t)n) && r.mlen > 0);
    CHECK(inside(r.target, r.tlen, buf, (size_t)n) && r.tlen > 0);
    CHECK(r.nh >= 0 && r.nh <= RC_HTTP_MAX_HEADERS);
    for (int i = 0; i < r.nh; i++) {
        CHECK(inside(r.h[i].name, r.h[i].nlen, buf, (size_t)n));
        CHECK(inside(r.h[i].value, r.h[i].vlen, buf, (size_t)n));
    }
    /* One byte short of a complete head is not a complete head. */
    {
        struct rc_http_req r2;
        int m = rc_http_parse(buf, (size_t)n - 1, max, &r2);
        CHECK(m <= 0);
    }
    /* The query: every pair decodes inside its own room. */
    {
        const char *path, *q, *k, *v;
        size_t pl, ql, kl, vl, pos = 0;
        char *dec;
        int pairs = 0;

        rc_http_split_target(&r, &path, &pl, &q, &ql);
        CHECK(pl + (ql ? ql + 1 : 0) <= r.tlen);
        dec = malloc(ql + 1);
        while (rc_http_query_next(q, ql, &pos, dec, &k, &kl, &v, &vl)) {
            CHECK(k >= dec && k + kl <= dec + ql);
            CHECK(v >= dec && v + vl <= dec + ql);
            CHECK(pos <= ql);
            CHECK(++pairs <= (int)ql);
        }
        free(dec);
    }
    (void)rc_http_has_token(&r, "connection", "upgrade");
    (void)rc_http_reason(n % 600);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);

    memcpy(buf, data, size);
    one(buf, size, 64);
    one(buf, size, 16384);
    free(buf);
    return 0;
}
