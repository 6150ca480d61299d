/* test_udp.c -- unit tests for udp.c: datagram framing, sequence tracking, source config.
 *
 * Datagrams are built byte by byte here (not with the encoder under test)
 * where the point is the exact layout of docs/udp.md; the encoder is checked
 * against those bytes. Every malformation the parser must refuse gets its
 * own datagram, and each is also checked at every truncated length, which
 * must all be refused without reading past the end (the buffers are heap
 * copies of exactly that length, so ASan builds catch a stray read).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "udp.h"

/* version 1, flags 0, count 2, session 0x01020304, seq 7; "ab"/"xyz" and "c"/"". */
static const uint8_t two_msgs[] = {
    1, 0,   0,   2, 1, 2, 3, 4,   0,   0,   0, 0, 0,   0, 0, 7, 0,
    2, 'a', 'b', 0, 0, 0, 3, 'x', 'y', 'z', 0, 1, 'c', 0, 0, 0, 0,
};

static int parse_copy(const uint8_t *p, size_t n, struct rc_udp_hdr *h, const char **why)
{
    uint8_t *c = malloc(n ? n : 1);
    int r;

    memcpy(c, p, n);
    r = rc_udp_parse(c, n, h, why);
    free(c);
    return r;
}

static void test_parse_two_messages(void **state)
{
    struct rc_udp_hdr h;
    struct rc_udp_msg m;
    const char *why = NULL;
    size_t pos = RC_UDP_HDR_LEN;

    assert_int_equal(rc_udp_parse(two_msgs, sizeof(two_msgs), &h, &why), 0);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.count, 2);
    assert_int_equal(h.session, 0x01020304);
    assert_int_equal(h.seq, 7);
    assert_true(rc_udp_next(two_msgs, sizeof(two_msgs), &pos, &m));
    assert_int_equal(m.clen, 2);
    assert_memory_equal(m.chan, "ab", 2);
    assert_int_equal(m.len, 3);
    assert_memory_equal(m.payload, "xyz", 3);
    assert_true(rc_udp_next(two_msgs, sizeof(two_msgs), &pos, &m));
    assert_int_equal(m.clen, 1);
    assert_memory_equal(m.chan, "c", 1);
    assert_int_equal(m.len, 0);
    assert_false(rc_udp_next(two_msgs, sizeof(two_msgs), &pos, &m));
    assert_int_equal(pos, sizeof(two_msgs));
}

static void test_every_truncation_refused(void **state)
{
    struct rc_udp_hdr h;
    const char *why;

    for (size_t n = 0; n < sizeof(two_msgs); n++) {
        why = NULL;
        assert_int_equal(parse_copy(two_msgs, n, &h, &why), -EBADMSG);
        assert_non_null(why);
    }
}

static void expect_bad(const uint8_t *p, size_t n, const char *want)
{
    struct rc_udp_hdr h;
    const char *why = NULL;

    assert_int_equal(parse_copy(p, n, &h, &why), -EBADMSG);
    assert_non_null(why);
    assert_non_null(strstr(why, want));
}

static void test_malformed(void **state)
{
    uint8_t d[sizeof(two_msgs) + 1];

    memcpy(d, two_msgs, sizeof(two_msgs));
    d[0] = 2;
    expect_bad(d, sizeof(two_msgs), "version");
    memcpy(d, two_msgs, sizeof(two_msgs));
    d[1] = 0x80;
    expect_bad(d, sizeof(two_msgs), "flags");
    /* trailing byte */
    memcpy(d, two_msgs, sizeof(two_msgs));
    d[sizeof(two_msgs)] = 0;
    expect_bad(d, sizeof(two_msgs) + 1, "after the last");
    /* count says 3 */
    memcpy(d, two_msgs, sizeof(two_msgs));
    d[3] = 3;
    expect_bad(d, sizeof(two_msgs), "cut short");
    /* count says 1: the second message is trailing junk */
    memcpy(d, two_msgs, sizeof(two_msgs));
    d[3] = 1;
    expect_bad(d, sizeof(two_msgs), "after the last");
    /* empty channel */
    memcpy(d, two_msgs, sizeof(two_msgs));
    d[27] = 0;
    d[28] = 0;
    expect_bad(d, sizeof(two_msgs), "empty channel");
    /* channel length past the end */
    memcpy(d, two_msgs, sizeof(two_msgs));
    d[16] = 0xff;
    expect_bad(d, sizeof(two_msgs), "channel name longer");
    /* payload length 4 GiB - 1 */
    memcpy(d, two_msgs, sizeof(two_msgs));
    d[20] = d[21] = d[22] = d[23] = 0xff;
    expect_bad(d, sizeof(two_msgs), "payload longer");
    /* seq + count overflows */
    memcpy(d, two_msgs, sizeof(two_msgs));
    memset(d + 8, 0xff, 8);
    expect_bad(d, sizeof(two_msgs), "overflow");
}

static void test_heartbeat_and_limits(void **state)
{
    static const uint8_t hb[16] = {1, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 1, 0};
    struct rc_udp_hdr h;
    const char *why;
    uint8_t *big = calloc(1, RC_UDP_MAX_DGRAM + 1);

    assert_int_equal(rc_udp_parse(hb, sizeof(hb), &h, &why), 0);
    assert_int_equal(h.count, 0);
    assert_int_equal(h.seq, 256);
    /* seq UINT64_MAX with no message is fine: nothing overflows. */
    memcpy(big, hb, 16);
    memset(big + 8, 0xff, 8);
    assert_int_equal(rc_udp_parse(big, 16, &h, &why), 0);
    assert_int_equal(rc_udp_parse(big, RC_UDP_MAX_DGRAM + 1, &h, &why), -EBADMSG);
    free(big);
}

static void test_encoder_matches_layout(void **state)
{
    uint8_t out[64];
    struct rc_udp_hdr h = {RC_UDP_VERSION, 0, 2, 0x01020304, 7};
    size_t n = rc_udp_put_hdr(out, &h);

    n += rc_udp_put_msg(out + n, "ab", 2, "xyz", 3);
    n += rc_udp_put_msg(out + n, "c", 1, NULL, 0);
    assert_int_equal(n, sizeof(two_msgs));
    assert_memory_equal(out, two_msgs, sizeof(two_msgs));
    assert_int_equal(rc_udp_msg_size(2, 3), 11);
}

/* ---- Sequence tracking ---- */

static void test_seq_in_order_gaps_dups(void **state)
{
    struct rc_udp_seq t;

    memset(&t, 0, sizeof(t));
    assert_true(rc_udp_seq_session(&t, 42));
    for (uint64_t q = 100; q < 110; q++)
        assert_true(rc_udp_seq_accept(&t, q));
    assert_int_equal(t.gaps, 0);
    assert_int_equal(t.next, 110);
    /* duplicates */
    assert_false(rc_udp_seq_accept(&t, 105));
    assert_false(rc_udp_seq_accept(&t, 109));
    assert_int_equal(t.duplicates, 2);
    /* a gap of 5 (110..114) */
    assert_true(rc_udp_seq_accept(&t, 115));
    assert_int_equal(t.gaps, 5);
    /* a late 112 fills one */
    assert_true(rc_udp_seq_accept(&t, 112));
    assert_int_equal(t.gaps, 4);
    assert_int_equal(t.reordered, 1);
    assert_false(rc_udp_seq_accept(&t, 112));
    assert_int_equal(t.duplicates, 3);
}

static void test_seq_window(void **state)
{
    struct rc_udp_seq t;

    memset(&t, 0, sizeof(t));
    rc_udp_seq_session(&t, 1);
    assert_true(rc_udp_seq_accept(&t, 0));
    assert_true(rc_udp_seq_accept(&t, 2));                 /* 1 missing */
    assert_true(rc_udp_seq_accept(&t, 2 + RC_UDP_WINDOW)); /* jump: 1 + WINDOW - 1 missing */
    assert_int_equal(t.gaps, RC_UDP_WINDOW);
    /* 1 is now older than the window: refused, whatever it was */
    assert_false(rc_udp_seq_accept(&t, 1));
    /* the bit of 2 + WINDOW - 1 must not be inherited from an older number */
    assert_true(rc_udp_seq_accept(&t, 1 + RC_UDP_WINDOW));
    assert_false(rc_udp_seq_accept(&t, 1 + RC_UDP_WINDOW));
    /* a huge jump clears everything */
    assert_true(rc_udp_seq_accept(&t, 1000000));
    assert_true(rc_udp_seq_accept(&t, 999999));
    assert_false(rc_udp_seq_accept(&t, 999999));
}

static void test_seq_sessions(void **state)
{
    struct rc_udp_seq t;

    memset(&t, 0, sizeof(t));
    assert_true(rc_udp_seq_session(&t, 7));
    assert_true(rc_udp_seq_accept(&t, 1000));
    /* the sender restarted: new session, numbers start again */
    assert_true(rc_udp_seq_session(&t, 8));
    assert_int_equal(t.resets, 1);
    assert_true(rc_udp_seq_accept(&t, 1));
    assert_int_equal(t.gaps, 0);
    assert_int_equal(t.duplicates, 0);
    /* a late datagram of the old session is dropped, not a new restart */
    assert_false(rc_udp_seq_session(&t, 7));
    assert_int_equal(t.stale, 1);
    assert_int_equal(t.resets, 1);
    assert_true(rc_udp_seq_session(&t, 8));
    assert_false(rc_udp_seq_accept(&t, 1));
}

static void test_seq_heartbeat(void **state)
{
    struct rc_udp_seq t;

    memset(&t, 0, sizeof(t));
    rc_udp_seq_session(&t, 1);
    assert_true(rc_udp_seq_accept(&t, 1));
    rc_udp_seq_heartbeat(&t, 2); /* nothing missing */
    assert_int_equal(t.gaps, 0);
    rc_udp_seq_heartbeat(&t, 5); /* 2, 3, 4 never came */
    assert_int_equal(t.gaps, 3);
    rc_udp_seq_heartbeat(&t, 4); /* backwards: ignored */
    assert_int_equal(t.next, 5);
    assert_true(rc_udp_seq_accept(&t, 3)); /* late, fills one */
    assert_int_equal(t.gaps, 2);
}

/* A/B: two lines feeding one tracker, each losing different messages. */
static void test_seq_arbitration(void **state)
{
    struct rc_udp_seq t;
    int published = 0;

    memset(&t, 0, sizeof(t));
    rc_udp_seq_session(&t, 5);
    for (uint64_t q = 1; q <= 100; q++) {
        bool a_lost = q % 7 == 0, b_lost = q % 11 == 0;
        if (!a_lost)
            published += rc_udp_seq_accept(&t, q);
        if (!b_lost)
            published += rc_udp_seq_accept(&t, q);
    }
    /* 77 was lost on both lines */
    assert_int_equal(published, 99);
    assert_int_equal(t.gaps, 1);
}

/* ---- Config ---- */

static int set(struct rc_config *c, const char *line, char *err)
{
    return rc_config_load_string(c, line, strlen(line), err, 256);
}

static void test_config_sources(void **state)
{
    struct rc_config c;
    char err[256];

    rc_config_init(&c);
    assert_int_equal(c.nudp, 0);
    assert_int_equal(set(&c, "udp-source a 127.0.0.1:9000", err), 0);
    assert_int_equal(set(&c, "udp-source b 0.0.0.0:9001 group 239.1.2.3 iface lo", err), 0);
    assert_int_equal(set(&c, "udp-source c [::1]:0", err), 0);
    assert_int_equal(c.nudp, 3);
    assert_string_equal(c.udp[1].group, "239.1.2.3");
    assert_string_equal(c.udp[1].iface, "lo");
    assert_int_equal(c.udp[1].port, 9001);
    assert_string_equal(c.udp[2].addr, "::1");
    assert_int_equal(set(&c, "udp-arbitrate a b", err), 0);
    assert_int_equal(c.nudp_arb, 1);

    assert_int_not_equal(set(&c, "udp-source a 127.0.0.1:9002", err), 0);
    assert_non_null(strstr(err, "duplicate"));
    assert_int_not_equal(set(&c, "udp-source d 127.0.0.1", err), 0);
    assert_int_not_equal(set(&c, "udp-source d 127.0.0.1:70000", err), 0);
    assert_int_not_equal(set(&c, "udp-source d ::1:5", err), 0);
    assert_int_not_equal(set(&c, "udp-source d 127.0.0.1:5 group 10.0.0.1", err), 0);
    assert_int_not_equal(set(&c, "udp-source d 127.0.0.1:5 group ff02::1", err), 0);
    assert_int_not_equal(set(&c, "udp-source d 127.0.0.1:5 iface lo", err), 0);
    assert_int_not_equal(set(&c, "udp-source bad/name 127.0.0.1:5", err), 0);
    assert_int_not_equal(set(&c, "udp-source d 127.0.0.1:5 colour red", err), 0);
    assert_int_not_equal(set(&c, "udp-arbitrate a a", err), 0);
    assert_int_not_equal(set(&c, "udp-arbitrate a", err), 0);
    assert_int_equal(c.nudp, 3);
    assert_int_equal(set(&c, "udp-source \"\"", err), 0);
    assert_int_equal(c.nudp, 0);
    rc_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_two_messages),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_heartbeat_and_limits),
        cmocka_unit_test(test_encoder_matches_layout),
        cmocka_unit_test(test_seq_in_order_gaps_dups),
        cmocka_unit_test(test_seq_window),
        cmocka_unit_test(test_seq_sessions),
        cmocka_unit_test(test_seq_heartbeat),
        cmocka_unit_test(test_seq_arbitration),
        cmocka_unit_test(test_config_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
