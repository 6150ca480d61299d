/* test_mdata.c -- the market-data extensions (mdata.c), driven without any I/O.
 *
 * As in test_cmd_pubsub.c, clients sit on one end of socketpairs that no backend
 * reads: requests go in through rc_conn_input(), and what a client would
 * receive is read back from its queue, consuming it with the host's sent op as
 * a backend would (which is what ends a conflation episode). Covered: rule
 * parsing, the last-value snapshot on SUBSCRIBE (RESP2, RESP3, seq mode),
 * sequence frames and RC.RESUME within and beyond the history, conflation
 * and drop with their notice, the rate cap, and the channel-count bound.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "mdata.h"
#include "server.h"

#include "engine_fixture.h"

static void set(struct fixture *f, const char *name, const char *value)
{
    const char *argv[2] = {name, value};
    char err[256] = "";
    int r = rc_config_set(&f->s->cfg, 2, argv, err, sizeof(err));
    if (r)
        fail_msg("config %s %s: %s", name, value, err);
    rc_mdata_reconfigure(f->s->eng);
}

/* Takes everything queued for c, as a backend would (the host's sent op), as one
 * string; the caller frees it. Bounded: a queue refilled by the drain hook is
 * read again, at most 8 rounds. */
static char *drain(struct fixture *f, struct rc_conn *c)
{
    struct iovec iov[64];
    size_t bytes, len = 0, cap = 1;
    char *out = malloc(cap);

    for (int round = 0; round < 8 && !rc_queue_empty(&c->io.out); round++) {
        int n = rc_queue_iov(&c->io.out, iov, 64, SIZE_MAX, &bytes);
        char *grown = realloc(out, cap += bytes);
        assert_non_null(grown);
        out = grown;
        for (int i = 0; i < n; i++) {
            memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
            len += iov[i].iov_len;
        }
        f->s->io.host->sent(&f->s->io, &c->io, bytes);
    }
    out[len] = '\0';
    return out;
}

static void expect(struct fixture *f, struct rc_conn *c, const char *want)
{
    char *got = drain(f, c);
    assert_string_equal(got, want);
    free(got);
}

static void publish(struct fixture *f, const char *chan, const char *msg)
{
    rc_engine_publish(f->s->eng, false, chan, strlen(chan), msg, strlen(msg));
}

#define SUB_QA    "*2\r\n$9\r\nSUBSCRIBE\r\n$3\r\nq.a\r\n"
#define CONF_QA   "*3\r\n$9\r\nsubscribe\r\n$3\r\nq.a\r\n:1\r\n"
#define MSG_QA(v) "*3\r\n$7\r\nmessage\r\n$3\r\nq.a\r\n$2\r\n" v "\r\n"

static void test_rule_parsing(void **state)
{
    struct fixture *f = *state;
    struct rc_config *cfg = &f->s->cfg;
    const char *bad[2] = {"mdata-rule", "q.* last frobnicate"};
    char err[256] = "";

    set(f, "mdata-rule", "q.* last ttl=5 history=10 policy=conflate ; r.* rate=4");
    assert_int_equal(cfg->md.nrules, 2);
    assert_true(cfg->md.rules[0].last);
    assert_true(cfg->md.rules[0].seq); /* implied by history */
    assert_int_equal(cfg->md.rules[0].ttl_ms, 5000);
    assert_int_equal(cfg->md.rules[0].history, 10);
    assert_int_equal(cfg->md.rules[0].policy, RC_MD_CONFLATE);
    assert_int_equal(cfg->md.rules[1].rate, 4);
    /* Same pattern replaces, "off" removes, a refused rule changes nothing. */
    set(f, "mdata-rule", "r.* policy=drop");
    assert_int_equal(cfg->md.nrules, 2);
    assert_int_equal(cfg->md.rules[1].policy, RC_MD_DROP);
    assert_int_equal(cfg->md.rules[1].rate, 0);
    assert_int_equal(rc_config_set(cfg, 2, bad, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "frobnicate"));
    assert_int_equal(cfg->md.nrules, 2);
    set(f, "mdata-rule", "r.* off");
    assert_int_equal(cfg->md.nrules, 1);
    set(f, "mdata-rule", "");
    assert_int_equal(cfg->md.nrules, 0);
}

static void test_helpers(void **state)
{
    struct rc_buf b = {0};

    rc_mdata_key(&b, NULL, 0, "abc", 3);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.p, "cabc", 4);
    rc_mdata_key(&b, "a*", 2, "abc", 3);
    assert_int_equal(b.len, 1 + 4 + 2 + 3);
    assert_int_equal(b.p[0], 'p');
    rc_buf_free(&b);
    /* Ring holds 6..10 (5 entries, current 10). */
    assert_true(rc_mdata_can_resume(7, 10, 7, 10, 5));  /* nothing missed */
    assert_true(rc_mdata_can_resume(7, 5, 7, 10, 5));   /* needs 6..10: all there */
    assert_false(rc_mdata_can_resume(7, 4, 7, 10, 5));  /* needs 5: gone */
    assert_false(rc_mdata_can_resume(8, 10, 7, 10, 5)); /* other epoch */
    assert_false(rc_mdata_can_resume(7, 11, 7, 10, 5)); /* from the future */
    (void)state;
}

static void test_snapshot_then_stream(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *c = client(f), *c3 = client(f), *other = client(f);

    set(f, "mdata-rule", "q.* last");
    publish(f, "q.a", "v1");
    publish(f, "q.a", "v2");
    publish(f, "x.a", "zz"); /* no rule: nothing kept */
    send_cmd(f, c, SUB_QA);
    expect(f, c, CONF_QA MSG_QA("v2"));
    publish(f, "q.a", "v3");
    expect(f, c, MSG_QA("v3"));
    /* Subscribing again is not a new subscription: no second snapshot. */
    send_cmd(f, c, SUB_QA);
    expect(f, c, CONF_QA);
    /* RESP3: the same cached bytes behind a push header. */
    send_cmd(f, c3, "HELLO 3\r\n");
    free(drain(f, c3));
    send_cmd(f, c3, SUB_QA);
    expect(f, c3,
           ">3\r\n$9\r\nsubscribe\r\n$3\r\nq.a\r\n:1\r\n"
           ">3\r\n$7\r\nmessage\r\n$3\r\nq.a\r\n$2\r\nv3\r\n");
    send_cmd(f, other, "SUBSCRIBE x.a\r\n");
    expect(f, other, "*3\r\n$9\r\nsubscribe\r\n$3\r\nx.a\r\n:1\r\n");
    assert_int_equal(rc_mdata_stats(f->s->eng)->last_values, 1);
    assert_int_equal(rc_mdata_stats(f->s->eng)->snapshots, 2);
    /* RC.LAST / RC.DEL. */
    send_cmd(f, other, "RESET\r\nRC.LAST q.a\r\nRC.DEL q.a q.zz\r\nRC.LAST q.a\r\n");
    expect(f, other, "+RESET\r\n$2\r\nv3\r\n:1\r\n$-1\r\n");
}

static void test_sequence_and_resume(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *c = client(f), *r1 = client(f), *r2 = client(f);
    char want[512], epoch[32];
    char *got;

    set(f, "mdata-rule", "q.* last history=3");
    send_cmd(f, c, "RC.SEQMODE ON\r\n" SUB_QA);
    expect(f, c, "+OK\r\n" CONF_QA);
    publish(f, "q.a", "v1");
    got = drain(f, c);
    /* *5 message q.a v1 :<epoch> :1 */
    assert_memory_equal(got, "*5\r\n$7\r\nmessage\r\n$3\r\nq.a\r\n$2\r\nv1\r\n:", 35);
    snprintf(epoch, sizeof(epoch), "%.*s", (int)strcspn(got + 35, "\r"), got + 35);
    snprintf(want, sizeof(want), "*5\r\n$7\r\nmessage\r\n$3\r\nq.a\r\n$2\r\nv1\r\n:%s\r\n:1\r\n",
             epoch);
    assert_string_equal(got, want);
    free(got);
    for (int i = 2; i <= 5; i++) {
        char v[4];
        snprintf(v, sizeof(v), "v%d", i);
        publish(f, "q.a", v);
    }
    free(drain(f, c));
    /* Within the history (3..5 kept): last seen 3 -> replay 4 and 5. */
    snprintf(want, sizeof(want), "RC.RESUME q.a %s 3\r\n", epoch);
    send_cmd(f, r1, want);
    snprintf(want, sizeof(want),
             CONF_QA "*5\r\n$9\r\nrc.resume\r\n$3\r\nq.a\r\n$2\r\nok\r\n:%s\r\n:5\r\n"
                     "*5\r\n$7\r\nmessage\r\n$3\r\nq.a\r\n$2\r\nv4\r\n:%s\r\n:4\r\n"
                     "*5\r\n$7\r\nmessage\r\n$3\r\nq.a\r\n$2\r\nv5\r\n:%s\r\n:5\r\n",
             epoch, epoch, epoch);
    expect(f, r1, want);
    /* Beyond it (needs 2): resync, then the current value. */
    snprintf(want, sizeof(want), "RC.RESUME q.a %s 1\r\n", epoch);
    send_cmd(f, r2, want);
    snprintf(want, sizeof(want),
             CONF_QA "*5\r\n$9\r\nrc.resume\r\n$3\r\nq.a\r\n$6\r\nresync\r\n:%s\r\n:5\r\n"
                     "*5\r\n$7\r\nmessage\r\n$3\r\nq.a\r\n$2\r\nv5\r\n:%s\r\n:5\r\n",
             epoch, epoch);
    expect(f, r2, want);
    /* A plain subscriber of the same channel still gets 3 elements. */
    struct rc_conn *plain = client(f);
    send_cmd(f, plain, SUB_QA);
    expect(f, plain, CONF_QA MSG_QA("v5"));
    assert_int_equal(rc_mdata_stats(f->s->eng)->replayed, 2);
    assert_int_equal(rc_mdata_stats(f->s->eng)->resyncs, 1);
}

/* Publishes n messages "m<i>" without the subscriber reading. */
static void flood(struct fixture *f, const char *chan, int n)
{
    for (int i = 0; i < n; i++) {
        char v[16];
        snprintf(v, sizeof(v), "m%d", i);
        publish(f, chan, v);
    }
}

static void test_conflation_with_notice(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *slow = client(f), *fast = client(f);
    char *got;

    set(f, "mdata-rule", "q.* policy=conflate");
    set(f, "mdata-queue-soft", "100");
    set(f, "mdata-queue-low", "0");
    send_cmd(f, slow, "SUBSCRIBE q.a q.b\r\n");
    send_cmd(f, fast, "SUBSCRIBE q.a q.b\r\n");
    free(drain(f, fast));
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 50; i++) {
            char v[16], want[96];
            snprintf(v, sizeof(v), "m%d", i);
            publish(f, k ? "q.b" : "q.a", v);
            /* The fast client keeps up: it gets every message, in order. */
            snprintf(want, sizeof(want), "*3\r\n$7\r\nmessage\r\n$3\r\nq.%c\r\n$%zu\r\n%s\r\n",
                     k ? 'b' : 'a', strlen(v), v);
            expect(f, fast, want);
        }
    }
    assert_null(fast->sink.md);
    /* The slow one: its queue stopped growing past the soft bound. */
    assert_true(slow->io.out.bytes < 400);
    assert_non_null(slow->sink.md);
    got = drain(f, slow);
    /* The notice, then the newest of each channel, after what was queued. */
    const char *notice = strstr(got, "$19\r\n" RC_MDATA_NOTICE_CHANNEL "\r\n$");
    assert_non_null(notice);
    assert_non_null(strstr(notice, "conflated="));
    assert_non_null(strstr(notice, "dropped=0"));
    const char *qa = strstr(notice, "$3\r\nq.a\r\n$3\r\nm49\r\n");
    const char *qb = strstr(notice, "$3\r\nq.b\r\n$3\r\nm49\r\n");
    assert_non_null(qa);
    assert_non_null(qb);
    assert_true(qa < qb); /* q.a fell behind first */
    assert_null(strstr(got, "$3\r\nm48\r\n"));
    free(got);
    assert_true(rc_mdata_stats(f->s->eng)->conflated > 90);
    assert_int_equal(rc_mdata_stats(f->s->eng)->slow_events, 1);
    /* Episode over: the next message goes straight to the queue. */
    publish(f, "q.a", "nx");
    expect(f, slow, MSG_QA("nx"));
    struct rc_buf b = {0};
    rc_client_info_line(f->s, slow, &b);
    rc_buf_appendc(&b, '\0');
    assert_non_null(strstr(b.p, " rc-slow=1 "));
    assert_null(strstr(b.p, "rc-conflated=0 "));
    rc_buf_free(&b);
}

static void test_drop_policy(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *slow = client(f);
    char *got;

    set(f, "mdata-rule", "q.* policy=drop");
    set(f, "mdata-queue-soft", "100");
    set(f, "mdata-queue-low", "0");
    send_cmd(f, slow, "SUBSCRIBE q.a\r\n");
    flood(f, "q.a", 20);
    got = drain(f, slow);
    assert_non_null(strstr(got, "conflated=0 dropped="));
    assert_null(strstr(got, "$3\r\nm19\r\n")); /* dropped, not conflated */
    free(got);
    assert_true(rc_mdata_stats(f->s->eng)->dropped >= 15);
}

static void test_rate_cap(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *c = client(f);

    set(f, "mdata-rule", "q.* rate=4");
    send_cmd(f, c, SUB_QA);
    free(drain(f, c));
    publish(f, "q.a", "a1");
    publish(f, "q.a", "a2");
    publish(f, "q.a", "a3");
    expect(f, c, MSG_QA("a1")); /* a2 and a3 wait; a3 replaced a2 */
    assert_int_equal(rc_mdata_stats(f->s->eng)->rate_limited, 1);
    rc_engine_cron(f->s->eng, rc_now_ms() + 100);
    expect(f, c, "");
    rc_engine_cron(f->s->eng, rc_now_ms() + 300);
    expect(f, c, MSG_QA("a3"));
}

static void test_channel_bound(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *c = client(f);

    set(f, "mdata-rule", "q.* last");
    set(f, "mdata-max-channels", "2");
    publish(f, "q.a", "v1");
    publish(f, "q.b", "v2");
    publish(f, "q.a", "v3"); /* q.a is now the most recent */
    publish(f, "q.c", "v4"); /* evicts q.b */
    assert_int_equal(rc_mdata_stats(f->s->eng)->channels, 2);
    assert_int_equal(rc_mdata_stats(f->s->eng)->evictions, 1);
    send_cmd(f, c, "RC.LAST q.b\r\nRC.LAST q.a\r\nRC.LASTP q.* COUNT 5\r\n");
    expect(f, c, "$-1\r\n$2\r\nv3\r\n*4\r\n$3\r\nq.c\r\n$2\r\nv4\r\n$3\r\nq.a\r\n$2\r\nv3\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rule_parsing, setup, teardown),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test_setup_teardown(test_snapshot_then_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequence_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflation_with_notice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_bound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
