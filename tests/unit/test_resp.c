/* test_resp.c -- unit tests for the RESP parser and encoders (resp.c).
 *
 * Parser tests compare "transcripts": every request a parser yields, written
 * as argc and length-prefixed arguments, and the error text if it failed. The
 * same input fed whole, in two pieces at every split point, byte by byte and
 * through a buffer that moves between calls must give the same transcript.
 * The expected replies and error texts were checked against redis-server 7.0.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resp.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers ---- */

static void describe(struct rc_buf *t, const struct rc_resp_parser *p)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "[%d]", p->argc);
    rc_buf_append(t, num, (size_t)n);
    for (int i = 0; i < p->argc; i++) {
        n = snprintf(num, sizeof(num), "%zu:", p->argvlen[i]);
        rc_buf_append(t, num, (size_t)n);
        /* Escape so that transcripts are plain C strings. */
        for (size_t k = 0; k < p->argvlen[i]; k++) {
            unsigned char c = (unsigned char)p->argv[i][k];
            if (c < 0x20 || c >= 0x7f || c == '\\')
                rc_buf_appendf(t, "\\x%02x", c);
            else
                rc_buf_appendc(t, (char)c);
        }
        rc_buf_appendc(t, ';');
    }
    rc_buf_appendc(t, '\n');
}

/* Feeds data in chunks of the given size (0 = whole) through a connection
 * buffer that is reallocated after every chunk, so the parser sees its input
 * move; returns the transcript (caller frees). Every argv must point inside
 * the buffer passed or the parser's scratch. */
static char *run_chunks(const char *data, size_t len, size_t chunk,
                        const struct rc_resp_limits *lim)
{
    struct rc_resp_parser p;
    struct rc_buf t = {0};
    char *conn = NULL;
    size_t clen = 0, fed = 0;
    bool done = false;

    rc_resp_parser_init(&p, lim);
    while (!done && fed < len) {
        size_t n = chunk ? RC_MIN(chunk, len - fed) : len;
        char *moved = malloc(clen + n + 1);
        assert_non_null(moved);
        if (clen)
            memcpy(moved, conn, clen);
        memcpy(moved + clen, data + fed, n);
        free(conn);
        conn = moved;
        clen += n;
        fed += n;
        for (int guard = 0; guard < 100000; guard++) {
            size_t used = 12345;
            int r = rc_resp_parse(&p, conn, clen, &used);
            if (r == 0) {
                assert_int_equal(used, 0);
                break;
            }
            if (r < 0) {
                assert_int_equal(r, -EPROTO);
                assert_non_null(p.err);
                rc_buf_append(&t, "E:", 2);
                rc_buf_append(&t, p.err, strlen(p.err));
                rc_buf_appendc(&t, '\n');
                done = true;
                break;
            }
            assert_int_equal(r, 1);
            assert_true(used > 0 && used <= clen);
            for (int i = 0; i < p.argc; i++) {
                const char *a = p.argv[i];
                bool in_buf = a >= conn && a + p.argvlen[i] <= conn + used;
                bool in_scr = a >= p.scratch.p && a + p.argvlen[i] <= p.scratch.p + p.scratch.cap;
                assert_true(in_buf || in_scr);
            }
            describe(&t, &p);
            memmove(conn, conn + used, clen - used);
            clen -= used;
        }
    }
    if (!done && clen)
        rc_buf_append(&t, "MORE\n", 5);
    rc_buf_appendc(&t, '\0');
    free(conn);
    rc_resp_parser_free(&p);
    return t.p;
}

static char *run(const char *data, size_t len)
{
    return run_chunks(data, len, 0, NULL);
}

static void expect_transcript(const char *data, size_t len, const char *want)
{
    char *got = run(data, len);
    assert_string_equal(got, want);
    free(got);
}

/* Parses exactly one request and expects the error text. */
static void expect_error(const char *data, size_t len, const struct rc_resp_limits *lim,
                         const char *err)
{
    struct rc_resp_parser p;
    size_t used;
    rc_resp_parser_init(&p, lim);
    int r = rc_resp_parse(&p, data, len, &used);
    if (r != -EPROTO)
        fail_msg("input '%.*s': expected -EPROTO, got %d", (int)len, data, r);
    assert_string_equal(p.err, err);
    rc_resp_parser_free(&p);
}

/* ---- parser ---- */

static void test_limits_default(void **state)
{
    (void)state;
    struct rc_resp_limits lim;
    rc_resp_limits_default(&lim);
    assert_int_equal(lim.max_bulk, 512ull * 1024 * 1024);
    assert_int_equal(lim.max_multibulk, 2147483647ull);
    assert_int_equal(lim.max_inline, 65536);
}

static void test_multibulk_basic(void **state)
{
    (void)state;
    static const char req[] = "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$5\r\nhello\r\n";
    struct rc_resp_parser p;
    size_t used = 99;

    rc_resp_parser_init(&p, NULL);
    assert_int_equal(rc_resp_parse(&p, req, sizeof(req) - 1, &used), 1);
    assert_int_equal(used, sizeof(req) - 1);
    assert_int_equal(p.argc, 3);
    /* Multibulk arguments point into the caller's bytes: no copy. */
    assert_ptr_equal(p.argv[0], req + 8);
    assert_ptr_equal(p.argv[1], req + 21);
    assert_ptr_equal(p.argv[2], req + 29);
    assert_memory_equal(p.argv[0], "PUBLISH", 7);
    assert_int_equal(p.argvlen[0], 7);
    assert_int_equal(p.argvlen[1], 2);
    assert_int_equal(p.argvlen[2], 5);

    /* Empty buffer: need more, nothing consumed. */
    assert_int_equal(rc_resp_parse(&p, req, 0, &used), 0);
    assert_int_equal(used, 0);
    rc_resp_parser_free(&p);
    rc_resp_parser_free(&p); /* second free is harmless */

    expect_transcript(S("*1\r\n$0\r\n\r\n"), "[1]0:;\n");
    expect_transcript(S("*2\r\n$4\r\nECHO\r\n$12\r\n\0a\r\nb\r\n\0\0\0\0\0\r\n"),
                      "[2]4:ECHO;12:\\x00a\\x0d\\x0ab\\x0d\\x0a\\x00\\x00\\x00\\x00\\x00;\n");
}

static void test_multibulk_binary(void **state)
{
    (void)state;
    /* Payload with every byte value, including NUL, CR and LF. */
    char payload[256], req[300];
    for (int i = 0; i < 256; i++)
        payload[i] = (char)i;
    int n = snprintf(req, sizeof(req), "*1\r\n$256\r\n");
    memcpy(req + n, payload, 256);
    memcpy(req + n + 256, "\r\n", 2);
    struct rc_resp_parser p;
    size_t used;
    rc_resp_parser_init(&p, NULL);
    assert_int_equal(rc_resp_parse(&p, req, (size_t)n + 258, &used), 1);
    assert_int_equal(used, (size_t)n + 258);
    assert_int_equal(p.argc, 1);
    assert_int_equal(p.argvlen[0], 256);
    assert_memory_equal(p.argv[0], payload, 256);
    rc_resp_parser_free(&p);
}

static void test_multibulk_many_args(void **state)
{
    (void)state;
    struct rc_buf b = {0};
    rc_buf_append(&b, S("*1000\r\n"));
    for (int i = 0; i < 1000; i++) {
        char arg[16];
        int n = snprintf(arg, sizeof(arg), "a%d", i);
        rc_resp_bulk(&b, arg, (size_t)n);
    }
    struct rc_resp_parser p;
    size_t used;
    rc_resp_parser_init(&p, NULL);
    assert_int_equal(rc_resp_parse(&p, b.p, b.len, &used), 1);
    assert_int_equal(used, b.len);
    assert_int_equal(p.argc, 1000);
    assert_int_equal(p.argvlen[999], 4);
    assert_memory_equal(p.argv[999], "a999", 4);
    assert_memory_equal(p.argv[0], "a0", 2);
    rc_resp_parser_free(&p);
    rc_buf_free(&b);
}

static void test_multibulk_empty(void **state)
{
    (void)state;
    /* "*0", "*-1" and any negative count are empty requests (argc 0), as Redis. */
    expect_transcript(S("*0\r\n"), "[0]\n");
    expect_transcript(S("*-1\r\n"), "[0]\n");
    expect_transcript(S("*-5\r\n*1\r\n$4\r\nPING\r\n"), "[0]\n[1]4:PING;\n");
}

static void test_multibulk_quirks(void **state)
{
    (void)state;
    /* Redis 7.0 skips the two bytes after a payload and the byte after a
     * count line's '\r' without looking at them. */
    expect_transcript(S("*1\r\n$4\r\nPINGXY"), "[1]4:PING;\n");
    expect_transcript(S("*1\rX$4\r\nPING\r\n"), "[1]4:PING;\n");
    /* "*1\r" alone is not yet a line: Redis waits for one more byte. */
    expect_transcript(S("*1\r"), "MORE\n");
    /* Numbers follow string2ll: leading zeros, '+', "-0" are invalid. */
    expect_transcript(S("*01\r\n"), "E:ERR Protocol error: invalid multibulk length\n");
    expect_transcript(S("*+1\r\n"), "E:ERR Protocol error: invalid multibulk length\n");
    expect_transcript(S("*1\r\n$-0\r\n"), "E:ERR Protocol error: invalid bulk length\n");
    expect_transcript(S("*1\r\n$04\r\nPING\r\n"), "E:ERR Protocol error: invalid bulk length\n");
    expect_transcript(S("*1\r\n$ 4\r\nPING\r\n"), "E:ERR Protocol error: invalid bulk length\n");
    expect_transcript(S("*\r\n"), "E:ERR Protocol error: invalid multibulk length\n");
    expect_transcript(S("*1 \r\n"), "E:ERR Protocol error: invalid multibulk length\n");
    /* A NUL in a count line hides the line (Redis scans with strchr). */
    expect_transcript(S("*1\0\r\n$4\r\nPING\r\n"), "MORE\n");
}

static void test_inline_basic(void **state)
{
    (void)state;
    static const char req[] = "SUBSCRIBE a  bb\tccc \r\n";
    struct rc_resp_parser p;
    size_t used;

    rc_resp_parser_init(&p, NULL);
    assert_int_equal(rc_resp_parse(&p, req, sizeof(req) - 1, &used), 1);
    assert_int_equal(used, sizeof(req) - 1);
    assert_int_equal(p.argc, 4);
    assert_memory_equal(p.argv[0], "SUBSCRIBE", 9);
    assert_int_equal(p.argvlen[3], 3);
    assert_memory_equal(p.argv[3], "ccc", 3);
    /* Inline arguments live in the parser's scratch, not in the input. */
    for (int i = 0; i < p.argc; i++)
        assert_true(p.argv[i] < req || p.argv[i] >= req + sizeof(req));
    rc_resp_parser_free(&p);

    expect_transcript(S("PING\r\n"), "[1]4:PING;\n");
    expect_transcript(S("PING\n"), "[1]4:PING;\n");     /* LF alone ends a line */
    expect_transcript(S("PING\r\r\n"), "[1]4:PING;\n"); /* CR is a separator */
    expect_transcript(S("  PING  \r\n"), "[1]4:PING;\n");
    expect_transcript(S("\r\n"), "[0]\n"); /* empty line: argc 0 */
    expect_transcript(S("\n"), "[0]\n");
    expect_transcript(S("   \t \r\n"), "[0]\n");
    expect_transcript(S("PING"), "MORE\n");
    expect_transcript(S("PING\r"), "MORE\n");
    /* \v and \f are skipped between arguments but belong to a bare token. */
    expect_transcript(S("\v\fECHO a\vb\r\n"), "[2]4:ECHO;3:a\\x0bb;\n");
    /* A backslash outside quotes is literal. */
    expect_transcript(S("ECHO a\\nb\r\n"), "[2]4:ECHO;4:a\\x5cnb;\n");
}

static void test_inline_quotes(void **state)
{
    (void)state;
    expect_transcript(S("ECHO \"a\\x41\"\r\n"), "[2]4:ECHO;2:aA;\n");
    expect_transcript(S("ECHO \"\\xfF\\x00z\"\r\n"), "[2]4:ECHO;3:\\xff\\x00z;\n");
    expect_transcript(S("ECHO \"\\n\\r\\t\\b\\a\\\\\\\"\\q\"\n"),
                      "[2]4:ECHO;8:\\x0a\\x0d\\x09\\x08\\x07\\x5c\"q;\n");
    /* \x without two hex digits is an ordinary escape of 'x'. */
    expect_transcript(S("ECHO \"\\x4\"\r\n"), "[2]4:ECHO;2:x4;\n");
    expect_transcript(S("ECHO \"\\xg1\"\r\n"), "[2]4:ECHO;3:xg1;\n");
    expect_transcript(S("ECHO \"a b\"  'c d'\r\n"), "[3]4:ECHO;3:a b;3:c d;\n");
    /* Single quotes know only \' */
    expect_transcript(S("ECHO 'a\\'b\\n'\r\n"), "[2]4:ECHO;5:a'b\\x5cn;\n");
    expect_transcript(S("ECHO \"\" ''\r\n"), "[3]4:ECHO;0:;0:;\n");
    /* A quote inside a bare token opens quoting (sdssplitargs). */
    expect_transcript(S("ECHO a\"b c\"\r\n"), "[2]4:ECHO;4:ab c;\n");
    /* The closing quote may be followed by any space, including \v. */
    expect_transcript(S("ECHO \"a\"\vb\r\n"), "[3]4:ECHO;1:a;1:b;\n");
    expect_transcript(S("ECHO \"a\"\r\n"), "[2]4:ECHO;1:a;\n");
}

static void test_inline_unbalanced(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "ECHO \"abc\r\n", "ECHO 'abc\r\n",      "ECHO \"a\"b\r\n", "ECHO 'a'b\r\n",
        "\"\r\n",         "ECHO \"abc\\\"\r\n", "ECHO \"a\\\r\n",  "x \"a\"\"b\"\n",
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++)
        expect_error(bad[i], strlen(bad[i]), NULL,
                     "ERR Protocol error: unbalanced quotes in request");
}

static void test_inline_nul(void **state)
{
    (void)state;
    /* Redis finds the end of an inline line with strchr(): a NUL before the
     * LF hides it, and the connection waits until the inline limit trips. */
    expect_transcript(S("ECHO a\0b\nPING\r\n"), "MORE\n");
    struct rc_resp_limits lim;
    rc_resp_limits_default(&lim);
    lim.max_inline = 16;
    char *t = run_chunks(S("ECHO a\0b\nPING\r\nPING\r\n"), 0, &lim);
    assert_string_equal(t, "E:ERR Protocol error: too big inline request\n");
    free(t);
}

static void test_pipelined(void **state)
{
    (void)state;
    static const char req[] = "*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n"
                              "PING\r\n"
                              "\r\n"
                              "*0\r\n"
                              "*3\r\n$7\r\nPUBLISH\r\n$1\r\na\r\n$3\r\nx\r\n\r\n"
                              "ECHO \"q q\"\n"
                              "*1\r\n$4\r\nPI";
    expect_transcript(req, sizeof(req) - 1,
                      "[2]9:SUBSCRIBE;1:a;\n"
                      "[1]4:PING;\n"
                      "[0]\n"
                      "[0]\n"
                      "[3]7:PUBLISH;1:a;3:x\\x0d\\x0a;\n"
                      "[2]4:ECHO;3:q q;\n"
                      "MORE\n");
}

/* Every way of cutting the input gives the same requests. */
static void check_splits(const char *data, size_t len)
{
    char *whole = run(data, len);

    for (size_t cut = 1; cut < len; cut++) {
        /* Two pieces: [0, cut) then the rest. */
        struct rc_resp_parser p;
        struct rc_buf t = {0};
        char *conn = malloc(len + 1);
        size_t clen = 0, fed = 0;
        bool failed = false;
        assert_non_null(conn);
        rc_resp_parser_init(&p, NULL);
        for (int step = 0; step < 2 && !failed; step++) {
            size_t n = step == 0 ? cut : len - cut;
            memcpy(conn + clen, data + fed, n);
            clen += n;
            fed += n;
            for (int guard = 0; guard < 1000; guard++) {
                size_t used;
                int r = rc_resp_parse(&p, conn, clen, &used);
                if (r == 0)
                    break;
                if (r < 0) {
                    rc_buf_append(&t, "E:", 2);
                    rc_buf_append(&t, p.err, strlen(p.err));
                    rc_buf_appendc(&t, '\n');
                    failed = true;
                    break;
                }
                describe(&t, &p);
                memmove(conn, conn + used, clen - used);
                clen -= used;
            }
        }
        if (!failed && clen)
            rc_buf_append(&t, "MORE\n", 5);
        rc_buf_appendc(&t, '\0');
        if (strcmp(t.p, whole) != 0)
            fail_msg("split at %zu: got\n%s\nwant\n%s", cut, t.p, whole);
        rc_buf_free(&t);
        free(conn);
        rc_resp_parser_free(&p);
    }
    for (size_t chunk = 1; chunk <= 7; chunk++) {
        char *got = run_chunks(data, len, chunk, NULL);
        if (strcmp(got, whole) != 0)
            fail_msg("chunk %zu: got\n%s\nwant\n%s", chunk, got, whole);
        free(got);
    }
    /* Every prefix parses to a prefix of the whole transcript. */
    for (size_t plen = 0; plen <= len; plen++) {
        char *got = run(data, plen);
        char *more = strstr(got, "MORE\n");
        size_t keep = more ? (size_t)(more - got) : strlen(got);
        if (strncmp(got, whole, keep) != 0)
            fail_msg("prefix %zu: got\n%s\nwant a prefix of\n%s", plen, got, whole);
        free(got);
    }
    free(whole);
}

static void test_split_points(void **state)
{
    (void)state;
    static const char ok[] = "*3\r\n$7\r\nPUBLISH\r\n$4\r\nnews\r\n$10\r\nhel\r\nlo\0wor\r\n"
                             "SUBSCRIBE \"a b\" 'c\\'d' e\r\n"
                             "\n"
                             "*-1\r\n"
                             "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
                             "PING\n"
                             "*1\r\n$4\r\nQUIT\r\n";
    check_splits(ok, sizeof(ok) - 1);
    static const char bad1[] = "PING\r\n*2\r\n$4\r\nECHO\r\n:3\r\nabc\r\n";
    check_splits(bad1, sizeof(bad1) - 1);
    static const char bad2[] = "*1\r\n$1\r\na\r\nECHO \"x\r\n";
    check_splits(bad2, sizeof(bad2) - 1);
}

static void test_errors(void **state)
{
    (void)state;
    struct rc_resp_limits lim;
    rc_resp_limits_default(&lim);

    expect_error(S("*abc\r\n"), NULL, "ERR Protocol error: invalid multibulk length");
    expect_error(S("*2147483648\r\n"), NULL, "ERR Protocol error: invalid multibulk length");
    expect_error(S("*99999999999999999999\r\n"), NULL,
                 "ERR Protocol error: invalid multibulk length");
    expect_error(S("*1\r\n$abc\r\n"), NULL, "ERR Protocol error: invalid bulk length");
    expect_error(S("*1\r\n$-1\r\n"), NULL, "ERR Protocol error: invalid bulk length");
    expect_error(S("*1\r\n$536870913\r\n"), NULL, "ERR Protocol error: invalid bulk length");
    expect_error(S("*1\r\nx\r\n"), NULL, "ERR Protocol error: expected '$', got 'x'");
    expect_error(S("*1\r\n:1\r\n"), NULL, "ERR Protocol error: expected '$', got ':'");
    /* CR and LF in the message become spaces, as in addReplyErrorFormat. */
    expect_error(S("*1\r\n\r\n"), NULL, "ERR Protocol error: expected '$', got ' '");
    expect_error(S("*1\r\n\n\r\n"), NULL, "ERR Protocol error: expected '$', got ' '");
    expect_error(S("*1\r\n\x01\r\n"), NULL, "ERR Protocol error: expected '$', got '\x01'");
    expect_error(S("GET \"x\r\n"), NULL, "ERR Protocol error: unbalanced quotes in request");

    /* The "too big" errors: no terminator within max_inline bytes. */
    size_t big = lim.max_inline + 1;
    char *buf = malloc(big + 16);
    assert_non_null(buf);
    memset(buf, 'a', big + 16);
    expect_error(buf, big, NULL, "ERR Protocol error: too big inline request");
    buf[0] = '*';
    expect_error(buf, big, NULL, "ERR Protocol error: too big mbulk count string");
    memcpy(buf, "*1\r\n", 4);
    expect_error(buf, big + 4, NULL, "ERR Protocol error: too big bulk count string");
    /* Exactly max_inline bytes without a terminator is not yet an error. */
    struct rc_resp_parser p;
    size_t used;
    memset(buf, 'a', big);
    rc_resp_parser_init(&p, NULL);
    assert_int_equal(rc_resp_parse(&p, buf, lim.max_inline, &used), 0);
    rc_resp_parser_free(&p);
    free(buf);
}

static void test_limits(void **state)
{
    (void)state;
    struct rc_resp_limits lim = {.max_bulk = 10, .max_multibulk = 3, .max_inline = 8};

    char *t = run_chunks(S("*1\r\n$10\r\n0123456789\r\n"), 0, &lim);
    assert_string_equal(t, "[1]10:0123456789;\n");
    free(t);
    expect_error(S("*1\r\n$11\r\n"), &lim, "ERR Protocol error: invalid bulk length");
    t = run_chunks(S("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"), 0, &lim);
    assert_string_equal(t, "[3]1:a;1:b;1:c;\n");
    free(t);
    expect_error(S("*4\r\n"), &lim, "ERR Protocol error: invalid multibulk length");

    /* Inline: 8 bytes before the LF are fine, 9 are too many. */
    t = run_chunks(S("ECHO abc\n"), 0, &lim);
    assert_string_equal(t, "[2]4:ECHO;3:abc;\n");
    free(t);
    t = run_chunks(S("ECHO abcd\n"), 0, &lim);
    assert_string_equal(t, "E:ERR Protocol error: too big inline request\n");
    free(t);
    /* Same verdict however the bytes arrive. */
    for (size_t c = 1; c <= 10; c++) {
        t = run_chunks(S("ECHO abcd\n"), c, &lim);
        assert_string_equal(t, "E:ERR Protocol error: too big inline request\n");
        free(t);
        t = run_chunks(S("ECHO abc\n"), c, &lim);
        assert_string_equal(t, "[2]4:ECHO;3:abc;\n");
        free(t);
    }
    /* Count lines: "*" plus 7 digits is 8 bytes before the CR. */
    lim.max_multibulk = 100000000;
    t = run_chunks(S("*0000001\r\n"), 0, &lim);
    assert_string_equal(t, "E:ERR Protocol error: invalid multibulk length\n");
    free(t);
    t = run_chunks(S("*00000001\r\n"), 0, &lim);
    assert_string_equal(t, "E:ERR Protocol error: too big mbulk count string\n");
    free(t);
    t = run_chunks(S("*1\r\n$00000001\r\n"), 1, &lim);
    assert_string_equal(t, "E:ERR Protocol error: too big bulk count string\n");
    free(t);
}

/* Redis's pre-authentication limits: 10 arguments, 16384-byte bulks. */
static void test_unauth_limits(void **state)
{
    (void)state;
    struct rc_resp_parser p;
    struct rc_buf b = {0};
    size_t used;

    rc_resp_parser_init(&p, NULL);
    p.unauth = true;
    rc_buf_append(&b, "*11\r\n", 5);
    assert_int_equal(rc_resp_parse(&p, b.p, b.len, &used), -EPROTO);
    assert_string_equal(p.err, "ERR Protocol error: unauthenticated multibulk length");
    rc_resp_parser_free(&p);

    /* The invalid-length check comes first, as in Redis. */
    rc_resp_parser_init(&p, NULL);
    p.unauth = true;
    b.len = 0;
    rc_buf_append(&b, "*2147483648\r\n", 13);
    assert_int_equal(rc_resp_parse(&p, b.p, b.len, &used), -EPROTO);
    assert_string_equal(p.err, "ERR Protocol error: invalid multibulk length");
    rc_resp_parser_free(&p);

    rc_resp_parser_init(&p, NULL);
    p.unauth = true;
    b.len = 0;
    rc_buf_append(&b, "*1\r\n$16385\r\n", 12);
    assert_int_equal(rc_resp_parse(&p, b.p, b.len, &used), -EPROTO);
    assert_string_equal(p.err, "ERR Protocol error: unauthenticated bulk length");
    rc_resp_parser_free(&p);

    /* At the limits: 10 arguments of 16384 bytes parse. */
    rc_resp_parser_init(&p, NULL);
    p.unauth = true;
    b.len = 0;
    rc_buf_append(&b, "*10\r\n", 5);
    for (int i = 0; i < 10; i++) {
        rc_buf_append(&b, "$16384\r\n", 8);
        rc_buf_reserve(&b, 16386);
        memset(b.p + b.len, 'x', 16384);
        b.len += 16384;
        rc_buf_append(&b, "\r\n", 2);
    }
    assert_int_equal(rc_resp_parse(&p, b.p, b.len, &used), 1);
    assert_int_equal(p.argc, 10);
    assert_int_equal(used, b.len);
    /* Authenticated: the same parser takes more. */
    p.unauth = false;
    b.len = 0;
    rc_buf_append(&b, "*11\r\n", 5);
    assert_int_equal(rc_resp_parse(&p, b.p, b.len, &used), 0);
    rc_resp_parser_free(&p);
    rc_buf_free(&b);
}

static void test_large_bulk_incremental(void **state)
{
    (void)state;
    /* A 4 MiB payload fed 64 bytes at a time and a 60 KB inline line fed one
     * byte at a time: quadratic rescanning would make this test time out. */
    const size_t n = 4u << 20;
    struct rc_buf b = {0};
    rc_buf_append(&b, S("*2\r\n$7\r\nPUBLISH\r\n$4194304\r\n"));
    size_t hdr = b.len;
    rc_buf_reserve(&b, n + 2);
    for (size_t i = 0; i < n; i++)
        b.p[hdr + i] = (char)(i * 7);
    b.len += n;
    rc_buf_append(&b, "\r\n", 2);

    struct rc_resp_parser p;
    size_t used;
    int r = 0;
    rc_resp_parser_init(&p, NULL);
    size_t have;
    for (have = 64; have < b.len; have += 64) {
        r = rc_resp_parse(&p, b.p, have, &used);
        assert_int_equal(r, 0);
        assert_int_equal(used, 0);
    }
    r = rc_resp_parse(&p, b.p, b.len, &used);
    assert_int_equal(r, 1);
    assert_int_equal(used, b.len);
    assert_int_equal(p.argc, 2);
    assert_int_equal(p.argvlen[1], n);
    assert_ptr_equal(p.argv[1], b.p + hdr);

    /* An inline line that arrives one byte per call. */
    struct rc_buf line = {0};
    rc_buf_append(&line, "ECHO ", 5);
    while (line.len < 60000)
        rc_buf_appendc(&line, 'z');
    rc_buf_appendc(&line, '\n');
    for (have = 1; have < line.len; have++)
        assert_int_equal(rc_resp_parse(&p, line.p, have, &used), 0);
    assert_int_equal(rc_resp_parse(&p, line.p, line.len, &used), 1);
    assert_int_equal(p.argc, 2);
    assert_int_equal(p.argvlen[1], 60000 - 5);
    rc_buf_free(&line);
    rc_buf_free(&b);
    rc_resp_parser_free(&p);
}

/* ---- encoders ---- */

static void expect_buf(struct rc_buf *b, const char *want, size_t n)
{
    if (b->len != n || memcmp(b->p, want, n) != 0)
        fail_msg("got '%.*s' want '%.*s'", (int)b->len, b->p, (int)n, want);
    b->len = 0;
}

static void test_encoders(void **state)
{
    (void)state;
    struct rc_buf b = {0};

    rc_resp_simple(&b, "OK");
    expect_buf(&b, S("+OK\r\n"));
    rc_resp_error(&b, "ERR bad");
    expect_buf(&b, S("-ERR bad\r\n"));
    rc_resp_errorf(&b, "ERR unknown command '%s'", "x\r\ny");
    expect_buf(&b, S("-ERR unknown command 'x  y'\r\n"));
    /* Longer than any internal stack buffer. */
    char longs[600];
    memset(longs, 'e', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    rc_resp_errorf(&b, "ERR %s!", longs);
    assert_int_equal(b.len, 1 + 4 + 599 + 1 + 2);
    assert_memory_equal(b.p + 5 + 599, "!\r\n", 3);
    b.len = 0;
    rc_resp_int(&b, 0);
    rc_resp_int(&b, -42);
    rc_resp_int(&b, INT64_MIN);
    rc_resp_int(&b, INT64_MAX);
    expect_buf(&b, S(":0\r\n:-42\r\n:-9223372036854775808\r\n:9223372036854775807\r\n"));
    rc_resp_bulk(&b, "a\0b", 3);
    rc_resp_bulk(&b, NULL, 0);
    rc_resp_bulkstr(&b, "hello");
    expect_buf(&b, S("$3\r\na\0b\r\n$0\r\n\r\n$5\r\nhello\r\n"));
    rc_resp_array(&b, 3);
    rc_resp_array(&b, 0);
    expect_buf(&b, S("*3\r\n*0\r\n"));

    rc_resp_null(&b, 2);
    rc_resp_null_array(&b, 2);
    rc_resp_map(&b, 2, 3);
    rc_resp_set(&b, 2, 4);
    rc_resp_push(&b, 2, 3);
    rc_resp_bool(&b, 2, true);
    rc_resp_bool(&b, 2, false);
    rc_resp_verbatim(&b, 2, "abc", 3);
    expect_buf(&b, S("$-1\r\n*-1\r\n*6\r\n*4\r\n*3\r\n:1\r\n:0\r\n$3\r\nabc\r\n"));

    rc_resp_null(&b, 3);
    rc_resp_null_array(&b, 3);
    rc_resp_map(&b, 3, 3);
    rc_resp_set(&b, 3, 4);
    rc_resp_push(&b, 3, 3);
    rc_resp_bool(&b, 3, true);
    rc_resp_bool(&b, 3, false);
    rc_resp_verbatim(&b, 3, "abc", 3);
    rc_resp_verbatim(&b, 3, "", 0);
    expect_buf(&b, S("_\r\n_\r\n%3\r\n~4\r\n>3\r\n#t\r\n#f\r\n=7\r\ntxt:abc\r\n=4\r\ntxt:\r\n"));

    /* Numbers across every digit-count boundary. */
    uint64_t v = 1;
    for (int d = 0; d < 19; d++, v *= 10) {
        char want[128];
        int n = snprintf(want, sizeof(want), ":%lld\r\n:%lld\r\n$%llu\r\n", (long long)(v - 1),
                         (long long)v, (unsigned long long)(v - 1));
        rc_resp_int(&b, (int64_t)(v - 1));
        rc_resp_int(&b, (int64_t)v);
        rc_buf_append(&b, "$", 1);
        rc_buf_append_u64(&b, v - 1);
        rc_buf_append(&b, "\r\n", 2);
        expect_buf(&b, want, (size_t)n);
    }
    rc_buf_free(&b);
}

/* The message codecs (rc_codec_resp2/3) behind the old call shape. */
static struct rc_msgview view(const char *kind, const char *pat, size_t plen, const char *chan,
                              size_t clen, const char *payload, size_t len)
{
    struct rc_msgview m = {.kind = !strcmp(kind, "pmessage")   ? RC_MSG_PMESSAGE
                                   : !strcmp(kind, "smessage") ? RC_MSG_SMESSAGE
                                                               : RC_MSG_MESSAGE,
                           .pat = pat,
                           .plen = plen,
                           .chan = chan,
                           .clen = clen,
                           .payload = payload,
                           .len = len};
    return m;
}

static const struct rc_codec *codec_of(int proto)
{
    return rc_codecs[proto == 3 ? RC_FMT_RESP3 : RC_FMT_RESP2];
}

static size_t msg_len(int proto, const char *kind, const char *pat, size_t plen, const char *chan,
                      size_t clen, const char *payload, size_t len)
{
    struct rc_msgview m = view(kind, pat, plen, chan, clen, payload, len);
    return codec_of(proto)->len(&m);
}

static size_t msg_write(char *dst, int proto, const char *kind, const char *pat, size_t plen,
                        const char *chan, size_t clen, const char *payload, size_t len)
{
    struct rc_msgview m = view(kind, pat, plen, chan, clen, payload, len);
    return codec_of(proto)->write(dst, &m);
}

/* A sequenced message carries [.., epoch, seq]: five elements. */
static void test_msg_seq_frames(void **state)
{
    (void)state;
    char buf[256];
    struct rc_msgview m = view("message", NULL, 0, "q.A", 3, "1.5", 3);
    static const char want2[] =
        "*5\r\n$7\r\nmessage\r\n$3\r\nq.A\r\n$3\r\n1.5\r\n:1700000000000000\r\n:42\r\n";

    m.has_seq = true;
    m.epoch = 1700000000000000ull;
    m.seq = 42;
    assert_int_equal(rc_codec_resp2.len(&m), sizeof(want2) - 1);
    assert_int_equal(rc_codec_resp2.write(buf, &m), sizeof(want2) - 1);
    assert_memory_equal(buf, want2, sizeof(want2) - 1);
    assert_int_equal(rc_codec_resp3.write(buf, &m), sizeof(want2) - 1);
    assert_int_equal(buf[0], '>');
    assert_memory_equal(buf + 1, want2 + 1, sizeof(want2) - 2);
    assert_int_equal(rc_codecs[RC_FMT_RESP2]->id, RC_FMT_RESP2);
    assert_int_equal(rc_codecs[RC_FMT_RESP3]->id, RC_FMT_RESP3);
}

static void test_msg_frames(void **state)
{
    (void)state;
    char buf[256];
    size_t n;

    n = msg_write(buf, 2, "message", NULL, 0, "news", 4, "hi", 2);
    assert_int_equal(n, msg_len(2, "message", NULL, 0, "news", 4, "hi", 2));
    static const char m2[] = "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n";
    assert_int_equal(n, sizeof(m2) - 1);
    assert_memory_equal(buf, m2, n);

    n = msg_write(buf, 3, "pmessage", "n*", 2, "news", 4, "", 0);
    static const char p3[] = ">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$0\r\n\r\n";
    assert_int_equal(n, sizeof(p3) - 1);
    assert_memory_equal(buf, p3, n);
    assert_int_equal(n, msg_len(3, "pmessage", "n*", 2, "news", 4, "", 0));

    n = msg_write(buf, 3, "smessage", NULL, 0, "s", 1, "x", 1);
    static const char s3[] = ">3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$1\r\nx\r\n";
    assert_int_equal(n, sizeof(s3) - 1);
    assert_memory_equal(buf, s3, n);
}

static void test_msg_len_matches_write(void **state)
{
    (void)state;
    static const size_t sizes[] = {0,    1,    9,    10,   11,    99,    100,   101,    999,
                                   1000, 1001, 4095, 9999, 10000, 65536, 99999, 100000, 1000000};
    size_t maxn = 1000000;
    char *payload = malloc(maxn);
    char *chan = malloc(maxn);
    char *dst = malloc(3 * maxn + 256);
    assert_non_null(payload);
    assert_non_null(chan);
    assert_non_null(dst);
    for (size_t i = 0; i < maxn; i++) {
        payload[i] = (char)(i * 31 + 7);
        chan[i] = (char)('a' + i % 26);
    }
    struct rc_resp_parser p;
    rc_resp_parser_init(&p, NULL);
    for (int proto = 2; proto <= 3; proto++) {
        for (size_t i = 0; i < RC_ARRAY_LEN(sizes); i++) {
            for (size_t j = 0; j < RC_ARRAY_LEN(sizes); j += 3) {
                size_t len = sizes[i], clen = sizes[j];
                const char *pat = (i + j) % 2 ? chan : NULL;
                const char *kind = pat ? "pmessage" : "message";
                size_t plen = pat ? sizes[(i + 1) % RC_ARRAY_LEN(sizes)] : 0;
                size_t want = msg_len(proto, kind, pat, plen, chan, clen, payload, len);
                memset(dst, 0x55, want + 1);
                size_t got = msg_write(dst, proto, kind, pat, plen, chan, clen, payload, len);
                assert_int_equal(got, want);
                assert_int_equal((unsigned char)dst[want], 0x55); /* no overrun */
                /* The frame reads back as the same fields. */
                dst[0] = '*';
                size_t used;
                assert_int_equal(rc_resp_parse(&p, dst, got, &used), 1);
                assert_int_equal(used, got);
                assert_int_equal(p.argc, pat ? 4 : 3);
                assert_memory_equal(p.argv[0], kind, strlen(kind));
                int k = 1;
                if (pat) {
                    assert_int_equal(p.argvlen[k], plen);
                    assert_memory_equal(p.argv[k], pat, plen);
                    k++;
                }
                assert_int_equal(p.argvlen[k], clen);
                assert_memory_equal(p.argv[k], chan, clen);
                assert_int_equal(p.argvlen[k + 1], len);
                assert_memory_equal(p.argv[k + 1], payload, len);
            }
        }
    }
    rc_resp_parser_free(&p);
    free(payload);
    free(chan);
    free(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_multibulk_basic),
        cmocka_unit_test(test_multibulk_binary),
        cmocka_unit_test(test_multibulk_many_args),
        cmocka_unit_test(test_multibulk_empty),
        cmocka_unit_test(test_multibulk_quirks),
        cmocka_unit_test(test_inline_basic),
        cmocka_unit_test(test_inline_quotes),
        cmocka_unit_test(test_inline_unbalanced),
        cmocka_unit_test(test_inline_nul),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_split_points),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_unauth_limits),
        cmocka_unit_test(test_large_bulk_incremental),
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_msg_frames),
        cmocka_unit_test(test_msg_seq_frames),
        cmocka_unit_test(test_msg_len_matches_write),
    };
    return cmocka_run_group_tests_name("resp", tests, NULL, NULL);
}
