/* test_engine.c -- the core engine alone: fake sinks, a fake codec table, no socket, no RESP.
 *
 * The engine is driven the way any owner would drive it: sinks embedded in
 * test structs record what they are handed, and two made-up wire formats
 * ("A" and "B") stand in for the codec table, counting how often they
 * encode. What is checked is the engine's contract: one encoding per format
 * present among the receivers, the same bytes shared by every subscriber of
 * a format, Redis's receiver count, formats switched in place, sinks that
 * detach themselves in the middle of a fan-out, market-data state kept as
 * data and encoded per format, and engines that share nothing.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "mdata.h"

/* ---- Two fake wire formats ---- */

static int encodes[2];

/* "<tag><kind>|<pattern>|<channel>|<payload>[|<epoch>:<seq>]\n" */
static size_t fake_len(const struct rc_msgview *m)
{
    char tail[48] = "";
    if (m->has_seq)
        snprintf(tail, sizeof(tail), "|%llu:%llu", (unsigned long long)m->epoch,
                 (unsigned long long)m->seq);
    return 2 + 1 + m->plen + 1 + m->clen + 1 + m->len + strlen(tail) + 1;
}

static size_t fake_write(char tag, char *dst, const struct rc_msgview *m)
{
    char tail[48] = "";
    size_t n = 0;

    if (m->has_seq)
        snprintf(tail, sizeof(tail), "|%llu:%llu", (unsigned long long)m->epoch,
                 (unsigned long long)m->seq);
    dst[n++] = tag;
    dst[n++] = "mps"[m->kind];
    dst[n++] = '|';
    if (m->plen) /* pat is NULL for a channel's own message */
        memcpy(dst + n, m->pat, m->plen);
    n += m->plen;
    dst[n++] = '|';
    memcpy(dst + n, m->chan, m->clen);
    n += m->clen;
    dst[n++] = '|';
    memcpy(dst + n, m->payload, m->len);
    n += m->len;
    memcpy(dst + n, tail, strlen(tail));
    n += strlen(tail);
    dst[n++] = '\n';
    return n;
}

static size_t write_a(char *dst, const struct rc_msgview *m)
{
    encodes[0]++;
    return fake_write('A', dst, m);
}

static size_t write_b(char *dst, const struct rc_msgview *m)
{
    encodes[1]++;
    return fake_write('B', dst, m);
}

static const struct rc_codec codec_a = {0, "a", fake_len, write_a};
static const struct rc_codec codec_b = {1, "b", fake_len, write_b};
static const struct rc_codec *const codecs[] = {&codec_a, &codec_b};

/* ---- A fake sink ---- */

struct fsink {
    struct rc_sink k;
    struct rc_queue q; /* stays empty: the slow-consumer policy reads it */
    struct rc_engine *e;
    char got[4096];
    size_t n;
    int pushes;
    struct rc_slab *last_slab;
    uint32_t last_off;
    bool detach_on_push; /* act like an output limit that closes the client */
};

static void fake_push(struct rc_sink *k, struct rc_slab *slab, uint32_t off, uint32_t len,
                      bool limit)
{
    struct fsink *f = (struct fsink *)k;

    assert_true(f->n + len < sizeof(f->got));
    memcpy(f->got + f->n, slab->data + off, len);
    f->n += len;
    f->got[f->n] = '\0';
    f->pushes++;
    f->last_slab = slab;
    f->last_off = off;
    if (f->detach_on_push && limit)
        rc_engine_sink_detach(f->e, k);
}

static const struct rc_sink_ops fake_ops = {fake_push};

static void sink_init(struct fsink *f, struct rc_engine *e, uint8_t fmt, uint64_t id)
{
    memset(f, 0, sizeof(*f));
    f->e = e;
    rc_queue_init(&f->q, true);
    rc_sink_init(&f->k, &fake_ops, fmt, id, "fake", &f->q);
}

static void sink_done(struct fsink *f)
{
    rc_engine_sink_detach(f->e, &f->k);
    rc_sink_free(&f->k);
    rc_queue_free(&f->q);
}

static void take(struct fsink *f, const char *want)
{
    assert_string_equal(f->got, want);
    f->n = 0;
    f->got[0] = '\0';
}

static struct rc_mdata_cfg no_rules = {.max_channels = 1000, .queue_soft = 1 << 20};

static struct rc_engine *engine(const struct rc_mdata_cfg *md)
{
    return rc_engine_new(&(struct rc_engine_cfg){
        .codecs = codecs, .ncodecs = 2, .log = NULL, .md = md ? md : &no_rules});
}

static bool sub(struct rc_engine *e, struct fsink *f, enum rc_sub_kind kind, const char *name)
{
    return rc_engine_subscribe(e, &f->k, kind, name, strlen(name));
}

static uint64_t pub(struct rc_engine *e, const char *chan, const char *payload)
{
    return rc_engine_publish(e, false, chan, strlen(chan), payload, strlen(payload));
}

/* ---- Tests ---- */

/* One encoding per format present, shared by every subscriber of it. */
static void test_encode_once_per_format(void **state)
{
    struct rc_engine *e = engine(NULL);
    struct fsink a1, a2, b1;

    (void)state;
    sink_init(&a1, e, 0, 1);
    sink_init(&a2, e, 0, 2);
    sink_init(&b1, e, 1, 3);
    assert_true(sub(e, &a1, RC_SUB_CHANNEL, "q.x"));
    assert_false(sub(e, &a1, RC_SUB_CHANNEL, "q.x")); /* already */
    assert_true(sub(e, &a2, RC_SUB_CHANNEL, "q.x"));
    assert_true(sub(e, &b1, RC_SUB_CHANNEL, "q.x"));
    encodes[0] = encodes[1] = 0;
    assert_int_equal(pub(e, "q.x", "hi"), 3);
    assert_int_equal(encodes[0], 1);
    assert_int_equal(encodes[1], 1);
    assert_ptr_equal(a1.last_slab, a2.last_slab); /* the very same bytes */
    assert_int_equal(a1.last_off, a2.last_off);
    take(&a1, "Am||q.x|hi\n");
    take(&a2, "Am||q.x|hi\n");
    take(&b1, "Bm||q.x|hi\n");
    /* Only format A left: B is not encoded at all. */
    assert_true(rc_engine_unsubscribe(e, &b1.k, RC_SUB_CHANNEL, "q.x", 3));
    assert_false(rc_engine_unsubscribe(e, &b1.k, RC_SUB_CHANNEL, "q.x", 3));
    encodes[0] = encodes[1] = 0;
    assert_int_equal(pub(e, "q.x", "2"), 2);
    assert_int_equal(encodes[0], 1);
    assert_int_equal(encodes[1], 0);
    assert_int_equal(b1.n, 0);
    assert_int_equal(rc_engine_stats(e)->published, 2);
    assert_int_equal(rc_engine_stats(e)->deliveries, 5);
    sink_done(&a1);
    sink_done(&a2);
    sink_done(&b1);
    assert_int_equal(rc_engine_numsub(e, RC_SUB_CHANNEL, "q.x", 3), 0);
    rc_engine_free(e);
}

/* Redis's count: the channel and each matching pattern deliver separately. */
static void test_patterns_and_shards(void **state)
{
    struct rc_engine *e = engine(NULL);
    struct fsink a, s;

    (void)state;
    sink_init(&a, e, 0, 1);
    sink_init(&s, e, 1, 2);
    sub(e, &a, RC_SUB_CHANNEL, "q.a");
    sub(e, &a, RC_SUB_PATTERN, "q.*");
    sub(e, &a, RC_SUB_PATTERN, "x*");
    sub(e, &s, RC_SUB_SHARD, "q.a");
    assert_int_equal(rc_engine_numpat(e), 2);
    assert_int_equal(rc_sink_count(&a.k, RC_SUB_PATTERN), 2);
    assert_true(rc_sink_has(&a.k, RC_SUB_PATTERN, "x*", 2));
    assert_int_equal(pub(e, "q.a", "1"), 2);
    take(&a, "Am||q.a|1\nAp|q.*|q.a|1\n");
    assert_int_equal(s.n, 0); /* shard channels are their own namespace */
    assert_int_equal(rc_engine_publish(e, true, "q.a", 3, "2", 1), 1);
    take(&s, "Bs||q.a|2\n");
    assert_int_equal(a.n, 0);
    assert_int_equal(rc_engine_unsubscribe_kind(e, &a.k, RC_SUB_PATTERN, NULL, NULL), 2);
    assert_int_equal(rc_engine_numpat(e), 0);
    assert_int_equal(pub(e, "q.a", "3"), 1);
    take(&a, "Am||q.a|3\n");
    sink_done(&a);
    sink_done(&s);
    rc_engine_free(e);
}

/* A sink that switches format moves its subscriptions' counts with it. */
static void test_set_fmt(void **state)
{
    struct rc_engine *e = engine(NULL);
    struct fsink a;

    (void)state;
    sink_init(&a, e, 0, 1);
    sub(e, &a, RC_SUB_CHANNEL, "c");
    sub(e, &a, RC_SUB_PATTERN, "c*");
    rc_engine_sink_set_fmt(e, &a.k, 1);
    encodes[0] = encodes[1] = 0;
    assert_int_equal(pub(e, "c", "v"), 2);
    assert_int_equal(encodes[0], 0);
    assert_int_equal(encodes[1], 2);
    take(&a, "Bm||c|v\nBp|c*|c|v\n");
    sink_done(&a);
    rc_engine_free(e);
}

/* Sinks detached by their own push (an output limit) in the middle of a
 * fan-out: the others still receive, once each, and the channel goes away
 * when its last subscriber does. */
static void test_detach_during_fanout(void **state)
{
    struct rc_engine *e = engine(NULL);
    struct fsink f[6];

    (void)state;
    for (int i = 0; i < 6; i++) {
        sink_init(&f[i], e, (uint8_t)(i % 2), (uint64_t)i);
        f[i].detach_on_push = (i == 1 || i == 4);
        sub(e, &f[i], RC_SUB_CHANNEL, "ch");
        sub(e, &f[i], RC_SUB_PATTERN, "c*");
    }
    /* Counted as Redis does, per channel and pattern before its fan-out:
     * 6 on the channel, then 4 on the pattern (two detached meanwhile). */
    assert_int_equal(pub(e, "ch", "x"), 10);
    for (int i = 0; i < 6; i++) {
        /* A detached sink got the one frame that made it go over. */
        assert_int_equal(f[i].pushes, f[i].detach_on_push ? 1 : 2);
        assert_int_equal(rc_sink_subscribed(&f[i].k), !f[i].detach_on_push);
    }
    assert_int_equal(rc_engine_numsub(e, RC_SUB_CHANNEL, "ch", 2), 4);
    assert_int_equal(pub(e, "ch", "y"), 8);
    assert_false(rc_engine_subscribe(e, &f[1].k, RC_SUB_CHANNEL, "ch", 2)); /* detached */
    for (int i = 0; i < 6; i++)
        sink_done(&f[i]);
    assert_int_equal(rc_engine_numsub(e, RC_SUB_CHANNEL, "ch", 2), 0);
    assert_int_equal(rc_engine_numpat(e), 0);
    rc_engine_free(e);
}

/* Engines share nothing: patterns, counts and slabs are per instance, and
 * one engine freed leaves the other delivering. */
static void test_two_engines(void **state)
{
    struct rc_engine *e1 = engine(NULL), *e2 = engine(NULL);
    struct fsink a, b;

    (void)state;
    sink_init(&a, e1, 0, 1);
    sink_init(&b, e2, 0, 1);
    sub(e1, &a, RC_SUB_PATTERN, "p.*");
    sub(e2, &b, RC_SUB_PATTERN, "p.*");
    sub(e2, &b, RC_SUB_PATTERN, "z.*");
    assert_int_equal(rc_engine_numpat(e1), 1);
    assert_int_equal(rc_engine_numpat(e2), 2);
    assert_int_equal(pub(e1, "p.1", "one"), 1);
    take(&a, "Ap|p.*|p.1|one\n");
    assert_int_equal(b.n, 0);
    assert_ptr_not_equal(rc_engine_pool(e1), rc_engine_pool(e2));
    assert_true(rc_engine_pool(e1)->live > 0);
    sink_done(&a);
    rc_engine_free(e1);
    assert_int_equal(pub(e2, "p.2", "two"), 1);
    take(&b, "Ap|p.*|p.2|two\n");
    sink_done(&b);
    rc_engine_free(e2);
}

/* ---- The interest hook ---- */

static char interest_log[512];

static void on_interest(void *arg, enum rc_sub_kind kind, const char *name, size_t len, bool on)
{
    size_t n = strlen(interest_log);

    (*(int *)arg)++;
    snprintf(interest_log + n, sizeof(interest_log) - n, "%c%c%.*s ", on ? '+' : '-', "cps"[kind],
             (int)len, name);
}

/* The hook hears a name's first subscriber and its last one leaving --
 * whichever way it leaves (unsubscribe, unsubscribe-all, detach, and a
 * detach from inside a fan-out) -- and nothing in between. */
static void test_interest_hook(void **state)
{
    int calls = 0;
    struct rc_engine *e = rc_engine_new(&(struct rc_engine_cfg){.codecs = codecs,
                                                                .ncodecs = 2,
                                                                .md = &no_rules,
                                                                .interest = on_interest,
                                                                .interest_arg = &calls});
    struct fsink a, b;

    (void)state;
    interest_log[0] = '\0';
    sink_init(&a, e, 0, 1);
    sink_init(&b, e, 1, 2);
    sub(e, &a, RC_SUB_CHANNEL, "q.A");
    sub(e, &b, RC_SUB_CHANNEL, "q.A"); /* second subscriber: no call */
    assert_false(sub(e, &b, RC_SUB_CHANNEL, "q.A"));
    sub(e, &a, RC_SUB_PATTERN, "q.*");
    sub(e, &b, RC_SUB_SHARD, "s1");
    assert_string_equal(interest_log, "+cq.A +pq.* +ss1 ");
    assert_int_equal(calls, 3);
    interest_log[0] = '\0';
    assert_true(rc_engine_unsubscribe(e, &a.k, RC_SUB_CHANNEL, "q.A", 3));
    assert_string_equal(interest_log, ""); /* b still holds it */
    assert_int_equal(rc_engine_unsubscribe_kind(e, &b.k, RC_SUB_CHANNEL, NULL, NULL), 1);
    assert_string_equal(interest_log, "-cq.A ");
    interest_log[0] = '\0';
    b.detach_on_push = true;
    sub(e, &b, RC_SUB_PATTERN, "q.*");
    assert_int_equal(pub(e, "q.B", "x"), 2);    /* b detaches itself while being pushed to */
    assert_string_equal(interest_log, "-ss1 "); /* a still holds q.* */
    sink_done(&a);
    assert_string_equal(interest_log, "-ss1 -pq.* ");
    assert_int_equal(calls, 6);
    sink_done(&b);
    rc_engine_free(e);
}

/* Market-data state is data: the last value reaches a later subscriber in
 * its own format, with the sequence stamp when it asked for one. */
static void test_mdata_last_value_per_format(void **state)
{
    struct rc_mdata_rule rule = {.pattern = "q.*", .last = true, .seq = true, .history = 4};
    struct rc_mdata_cfg md = no_rules;
    struct rc_engine *e;
    struct fsink a, b;
    const char *p;
    size_t n;
    char want[128];

    (void)state;
    md.rules = &rule;
    md.nrules = 1;
    e = engine(&md);
    sink_init(&a, e, 0, 1);
    sink_init(&b, e, 1, 2);
    pub(e, "q.a", "100");
    pub(e, "q.a", "101");
    assert_true(rc_mdata_last(e, "q.a", 3, &p, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(p, "101", 3);
    assert_false(rc_mdata_last(e, "other", 5, &p, &n));
    sub(e, &a, RC_SUB_CHANNEL, "q.a");
    rc_mdata_snapshot(e, &a.k, "q.a", 3);
    take(&a, "Am||q.a|101\n");
    rc_mdata_set_seqmode(e, &b.k, true);
    sub(e, &b, RC_SUB_CHANNEL, "q.a");
    rc_mdata_snapshot(e, &b.k, "q.a", 3);
    /* The epoch is the engine's; read it back through RC.RESUME's query. */
    uint64_t epoch, seq;
    bool ok;
    assert_int_equal(rc_mdata_seq_state(e, "q.a", 3, 0, 0, &epoch, &seq, &ok), 0);
    assert_int_equal(seq, 2);
    snprintf(want, sizeof(want), "Bm||q.a|101|%llu:2\n", (unsigned long long)epoch);
    take(&b, want);
    /* Live: A plain, B stamped; each variant encoded once. */
    encodes[0] = encodes[1] = 0;
    assert_int_equal(pub(e, "q.a", "102"), 2);
    assert_int_equal(encodes[0] + encodes[1], 2);
    take(&a, "Am||q.a|102\n");
    snprintf(want, sizeof(want), "Bm||q.a|102|%llu:3\n", (unsigned long long)epoch);
    take(&b, want);
    /* Replay from history after seq 1. */
    assert_int_equal(rc_mdata_seq_state(e, "q.a", 3, epoch, 1, &epoch, &seq, &ok), 0);
    assert_true(ok);
    rc_mdata_resume_send(e, &b.k, "q.a", 3, ok, 1);
    snprintf(want, sizeof(want), "Bm||q.a|101|%llu:2\nBm||q.a|102|%llu:3\n",
             (unsigned long long)epoch, (unsigned long long)epoch);
    take(&b, want);
    assert_int_equal(rc_mdata_stats(e)->bytes, 3 + 3 + 3 + 3); /* last + 3 history payloads */
    assert_true(rc_mdata_del(e, "q.a", 3));
    assert_int_equal(rc_mdata_stats(e)->bytes, 0);
    sink_done(&a);
    sink_done(&b);
    rc_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_once_per_format),
        cmocka_unit_test(test_patterns_and_shards),
        cmocka_unit_test(test_set_fmt),
        cmocka_unit_test(test_detach_during_fanout),
        cmocka_unit_test(test_two_engines),
        cmocka_unit_test(test_interest_hook),
        cmocka_unit_test(test_mdata_last_value_per_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
