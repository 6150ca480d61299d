/* test_cmd_pubsub.c -- the pub/sub commands over the engine, driven without any I/O.
 *
 * Connections are created on one end of socketpairs but never read by a
 * backend: requests go in through rc_conn_input() and what each client would
 * receive is read back from its queue of slab references. This checks the
 * engine's bookkeeping (subscriber sets, receiver counts, shared frames)
 * independently of the protocol tests run against the real server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "server.h"

#include "engine_fixture.h"

/* Takes everything queued for c as one string (the caller frees it). */
static char *drain(struct rc_conn *c)
{
    struct iovec iov[64];
    size_t bytes, len = 0;
    char *out = malloc(c->io.out.bytes + 1);

    while (!rc_queue_empty(&c->io.out)) {
        int n = rc_queue_iov(&c->io.out, iov, 64, SIZE_MAX, &bytes);
        for (int i = 0; i < n; i++) {
            memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
            len += iov[i].iov_len;
        }
        rc_queue_consume(&c->io.out, bytes);
    }
    out[len] = '\0';
    return out;
}

static void count_one(void *arg, const char *name, size_t len)
{
    (*(size_t *)arg)++;
}

/* Channels (or patterns) with subscribers, as PUBSUB CHANNELS lists them. */
static size_t names(struct fixture *f, enum rc_sub_kind kind)
{
    size_t n = 0;
    rc_engine_each(f->s->eng, kind, count_one, &n);
    return n;
}

static void expect(struct rc_conn *c, const char *want)
{
    char *got = drain(c);
    assert_string_equal(got, want);
    free(got);
}

static void test_subscribe_publish(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *a = client(f), *b = client(f), *p = client(f);

    send_cmd(f, a, "SUBSCRIBE news sport\r\n");
    expect(a, "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
              "*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n");
    send_cmd(f, b, "SUBSCRIBE news\r\n");
    expect(b, "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    send_cmd(f, p, "PUBLISH news hi\r\nPUBLISH sport go\r\nPUBLISH none x\r\n");
    expect(p, ":2\r\n:1\r\n:0\r\n");
    expect(a, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
              "*3\r\n$7\r\nmessage\r\n$5\r\nsport\r\n$2\r\ngo\r\n");
    expect(b, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
    assert_int_equal(rc_engine_stats(f->s->eng)->deliveries, 3);
    assert_int_equal(rc_engine_stats(f->s->eng)->published, 3);
}

static void test_frame_shared_not_copied(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *a = client(f), *b = client(f), *p = client(f);

    send_cmd(f, a, "SUBSCRIBE ch\r\n");
    send_cmd(f, b, "SUBSCRIBE ch\r\n");
    free(drain(a));
    free(drain(b));
    send_cmd(f, p, "PUBLISH ch payload\r\n");
    /* Both queues point at the very same bytes. */
    assert_int_equal(a->io.out.n, 1);
    assert_int_equal(b->io.out.n, 1);
    struct rc_ref *ra = &a->io.out.r[a->io.out.head], *rb = &b->io.out.r[b->io.out.head];
    assert_ptr_equal(ra->slab, rb->slab);
    assert_int_equal(ra->off, rb->off);
    assert_int_equal(ra->len, rb->len);
    free(drain(a));
    free(drain(b));
    free(drain(p));
}

static void test_patterns_count_twice(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *a = client(f), *p = client(f);

    send_cmd(f, a, "SUBSCRIBE q.a\r\nPSUBSCRIBE q.* q.?\r\n");
    expect(a, "*3\r\n$9\r\nsubscribe\r\n$3\r\nq.a\r\n:1\r\n"
              "*3\r\n$10\r\npsubscribe\r\n$3\r\nq.*\r\n:2\r\n"
              "*3\r\n$10\r\npsubscribe\r\n$3\r\nq.?\r\n:3\r\n");
    send_cmd(f, p, "PUBLISH q.a 1\r\nPUBLISH q.bb 2\r\n");
    expect(p, ":3\r\n:1\r\n");
    char *got = drain(a);
    /* One message, and one pmessage per matching pattern (order of patterns
     * is unspecified, as in Redis). */
    assert_non_null(strstr(got, "*3\r\n$7\r\nmessage\r\n$3\r\nq.a\r\n$1\r\n1\r\n"));
    assert_non_null(strstr(got, "*4\r\n$8\r\npmessage\r\n$3\r\nq.*\r\n$3\r\nq.a\r\n$1\r\n1\r\n"));
    assert_non_null(strstr(got, "*4\r\n$8\r\npmessage\r\n$3\r\nq.?\r\n$3\r\nq.a\r\n$1\r\n1\r\n"));
    assert_non_null(strstr(got, "*4\r\n$8\r\npmessage\r\n$3\r\nq.*\r\n$4\r\nq.bb\r\n$1\r\n2\r\n"));
    free(got);
}

static void test_unsubscribe_and_cleanup(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *a = client(f), *b = client(f);

    send_cmd(f, a, "SUBSCRIBE x y\r\nPSUBSCRIBE z*\r\n");
    free(drain(a));
    assert_int_equal(names(f, RC_SUB_CHANNEL), 2);
    send_cmd(f, a, "UNSUBSCRIBE x\r\n");
    expect(a, "*3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:2\r\n");
    assert_int_equal(names(f, RC_SUB_CHANNEL), 1);
    send_cmd(f, a, "UNSUBSCRIBE\r\n");
    expect(a, "*3\r\n$11\r\nunsubscribe\r\n$1\r\ny\r\n:1\r\n");
    send_cmd(f, a, "UNSUBSCRIBE\r\n");
    expect(a, "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:1\r\n");
    assert_int_equal(names(f, RC_SUB_CHANNEL), 0);
    /* A disconnect drops the pattern too. */
    send_cmd(f, b, "PSUBSCRIBE z*\r\n");
    free(drain(b));
    rc_conn_unlink(f->s, a, "test");
    rc_conn_free(f->s, a);
    assert_int_equal(names(f, RC_SUB_PATTERN), 1);
    rc_conn_unlink(f->s, b, "test");
    rc_conn_free(f->s, b);
    assert_int_equal(names(f, RC_SUB_PATTERN), 0);
    assert_int_equal(f->s->nclients, 0);
}

static void test_many_subscribers_swap_remove(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *c[6];
    struct rc_conn *p = client(f);

    for (int i = 0; i < 6; i++) {
        c[i] = client(f);
        send_cmd(f, c[i], "SUBSCRIBE ch\r\n");
        free(drain(c[i]));
    }
    /* Remove from the middle and the ends; the rest must still receive. */
    send_cmd(f, c[0], "UNSUBSCRIBE ch\r\n");
    send_cmd(f, c[3], "UNSUBSCRIBE ch\r\n");
    send_cmd(f, c[5], "UNSUBSCRIBE ch\r\n");
    send_cmd(f, p, "PUBLISH ch m\r\n");
    expect(p, ":3\r\n");
    for (int i = 0; i < 6; i++) {
        char *got = drain(c[i]);
        bool gets = (i == 1 || i == 2 || i == 4);
        assert_int_equal(strstr(got, "$7\r\nmessage") != NULL, gets);
        free(got);
    }
}

static void test_resp3_push_frames(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *a = client(f), *b = client(f), *p = client(f);

    send_cmd(f, a, "HELLO 3\r\nSUBSCRIBE ch\r\n");
    send_cmd(f, b, "SUBSCRIBE ch\r\n");
    free(drain(a));
    free(drain(b));
    send_cmd(f, p, "PUBLISH ch v\r\n");
    expect(a, ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nv\r\n");
    expect(b, "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nv\r\n");
    /* RESP3 may run any command while subscribed; RESP2 may not. */
    send_cmd(f, a, "ECHO ok\r\n");
    expect(a, "$2\r\nok\r\n");
    send_cmd(f, b, "ECHO ok\r\n");
    expect(b, "-ERR Can't execute 'echo': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
              "RESET are allowed in this context\r\n");
    expect(p, ":2\r\n");
}

static void test_output_limit_disconnects(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *slow = client(f), *fast = client(f), *p = client(f);
    char cmd[256];

    f->s->cfg.obuf_pubsub.hard = 1000;
    send_cmd(f, slow, "SUBSCRIBE ch\r\n");
    send_cmd(f, fast, "SUBSCRIBE ch\r\n");
    free(drain(fast));
    for (int i = 0; i < 40; i++) {
        snprintf(cmd, sizeof(cmd), "PUBLISH ch message-%02d\r\n", i);
        send_cmd(f, p, cmd);
        free(drain(fast)); /* the fast client keeps up */
    }
    assert_true(slow->io.flags & RC_IO_CLOSE_ASAP);
    assert_int_equal(f->s->stats.obuf_disconnects, 1);
    assert_false(rc_conn_subscribed(slow));
    free(drain(p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_subscribe_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_shared_not_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patterns_count_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe_and_cleanup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_subscribers_swap_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resp3_push_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit_disconnects, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
