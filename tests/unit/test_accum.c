/* test_accum.c -- the accumulation policy's decisions on synthetic histories.
 *
 * io/accum.c is a pure function of a connection's history, the server's CPU
 * sample and a clock passed in, so these tests replay histories of ticks on
 * a made-up clock: a lone message goes out in the tick that queued it, a
 * steady stream or a saturated server holds output but never past the
 * budget, a stream that stops is sent when its next tick is overdue, and the
 * fixed window (tick-us) keeps its meaning.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "accum.h"

#define T0             1000000u /* the made-up clock starts here (0 means "never") */
#define BUDGET         500u
#define RC_MIN_U(a, b) ((a) < (b) ? (a) : (b))

static const struct rc_accum_cfg adaptive = {.tick_us = 0, .budget_us = BUDGET};

/* Output arrives for a at each of the given times (a tick each). */
static void arrive(struct rc_accum_conn *a, uint64_t t)
{
    rc_accum_note(a, BUDGET, t);
}

/* The first output a subscriber ever gets has no history: it goes now. */
static void test_lone_message_goes_at_once(void **state)
{
    struct rc_accum_conn a = {0};
    uint64_t until = 0;

    (void)state;
    arrive(&a, T0);
    assert_false(rc_accum_hold(&adaptive, &a, false, T0, &until));
    /* Not even on a saturated server: nothing says more is coming for it. */
    assert_false(rc_accum_hold(&adaptive, &a, true, T0, &until));
}

/* One message every 50 ms (and every 1 ms, D1k's rate): each is sent in the
 * tick that queued it, whatever the history says. */
static void test_slow_stream_never_held(void **state)
{
    static const uint64_t periods[] = {50000, 1000};
    uint64_t until;

    (void)state;
    for (size_t p = 0; p < sizeof(periods) / sizeof(periods[0]); p++) {
        struct rc_accum_conn a = {0};
        uint64_t t = T0;
        for (int i = 0; i < 200; i++, t += periods[p]) {
            arrive(&a, t);
            assert_false(rc_accum_hold(&adaptive, &a, false, t, &until));
            a.first_us = 0; /* sent */
        }
        /* Its gaps are known (clamped), they just never fit the budget. */
        assert_true(a.gap_us >= RC_MIN_U(periods[p], BUDGET * RC_ACCUM_GAP_CAP) / 2);
    }
}

/* A stream every 20 us: held from its second tick on, looked at again when
 * the next tick is due, and sent no later than first + budget even though
 * the stream never stops. */
static void test_stream_held_within_budget(void **state)
{
    struct rc_accum_conn a = {0};
    uint64_t t = T0, first, until = 0, sent_at = 0;

    (void)state;
    arrive(&a, t);
    assert_false(rc_accum_hold(&adaptive, &a, false, t, &until));
    a.first_us = 0;
    for (int batch = 0; batch < 5; batch++) {
        t += 20;
        arrive(&a, t);
        first = a.first_us;
        assert_int_equal(first, t);
        sent_at = 0;
        while (!sent_at) {
            if (!rc_accum_hold(&adaptive, &a, false, t, &until)) {
                sent_at = t;
                break;
            }
            assert_true(until > t);
            assert_true(until <= first + BUDGET);
            t += 20;
            arrive(&a, t);
        }
        /* Batches grow to most of the budget: the rule stops when two more
         * ticks no longer fit. */
        assert_true(sent_at <= first + BUDGET);
        assert_true(sent_at >= first + BUDGET - 4 * 20);
        a.first_us = 0;
    }
}

/* A burst that stops: the output goes when the next tick is overdue (two
 * average gaps after the last), not at the end of the budget. */
static void test_stopped_burst_goes_early(void **state)
{
    struct rc_accum_conn a = {0};
    uint64_t t = T0, until = 0;

    (void)state;
    for (int i = 0; i < 10; i++, t += 10) {
        arrive(&a, t);
        a.first_us = 0;
    }
    t -= 10;
    arrive(&a, t + 10);
    t += 10;
    assert_true(rc_accum_hold(&adaptive, &a, false, t, &until));
    assert_int_equal(until, a.last_us + 2 * a.gap_us);
    assert_true(until < a.first_us + BUDGET / 4);
    /* Nothing more came: at the planned time it is sent. */
    assert_false(rc_accum_hold(&adaptive, &a, false, until, &until));
}

/* A saturated server holds a subscriber that hears every 2 ms (C's shape:
 * its own next message is not due within the budget) until the budget ends,
 * and not a subscriber that hears once a second; an idle one holds neither. */
static void test_busy_server_holds_regular_subscribers(void **state)
{
    struct rc_accum_conn reg = {0}, rare = {0};
    uint64_t t = T0, until = 0;

    (void)state;
    for (int i = 0; i < 20; i++, t += 2000) {
        arrive(&reg, t);
        reg.first_us = 0;
    }
    arrive(&reg, t);
    assert_false(rc_accum_hold(&adaptive, &reg, false, t, &until));
    assert_true(rc_accum_hold(&adaptive, &reg, true, t, &until));
    assert_int_equal(until, t + BUDGET);
    assert_true(rc_accum_hold(&adaptive, &reg, true, t + BUDGET - 1, &until));
    assert_false(rc_accum_hold(&adaptive, &reg, true, t + BUDGET, &until));

    for (int i = 0; i < 20; i++, t += 1000000) {
        arrive(&rare, t);
        rare.first_us = 0;
    }
    arrive(&rare, t);
    assert_false(rc_accum_hold(&adaptive, &rare, true, t, &until));
}

/* Whatever the history and the load, no decision holds past first + budget,
 * and every hold names a time to look again within it. */
static void test_budget_is_a_hard_bound(void **state)
{
    uint32_t seed = 12345;
    uint64_t until;

    (void)state;
    for (int run = 0; run < 2000; run++) {
        struct rc_accum_conn a = {0};
        uint64_t t = T0;
        int n = 1 + run % 50;
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            t += 1 + (seed >> 16) % 3000;
            arrive(&a, t);
        }
        for (uint64_t now = t; now < a.first_us + 2 * BUDGET; now += 7) {
            bool busy = (now / 7) % 2;
            if (rc_accum_hold(&adaptive, &a, busy, now, &until)) {
                assert_true(now < a.first_us + BUDGET);
                assert_true(until > now && until <= a.first_us + BUDGET);
            }
        }
        assert_false(rc_accum_hold(&adaptive, &a, true, a.first_us + BUDGET, &until));
    }
}

/* A long silence is forgotten within a few ticks (gaps are clamped). */
static void test_silence_is_forgotten(void **state)
{
    struct rc_accum_conn a = {0};
    uint64_t t = T0, until;
    int ticks = 0;

    (void)state;
    arrive(&a, t);
    a.first_us = 0;
    t += 3600ull * 1000000; /* an hour */
    arrive(&a, t);
    a.first_us = 0;
    assert_true(a.gap_us <= BUDGET * RC_ACCUM_GAP_CAP);
    for (;;) {
        t += 20;
        arrive(&a, t);
        ticks++;
        if (rc_accum_hold(&adaptive, &a, false, t, &until) || ticks >= 100)
            break;
        a.first_us = 0; /* sent */
    }
    assert_true(ticks <= 20);
}

/* Budget 0 never holds; tick-us is a fixed window from the first output,
 * history or not. */
static void test_fixed_window_and_off(void **state)
{
    const struct rc_accum_cfg off = {.tick_us = 0, .budget_us = 0};
    const struct rc_accum_cfg fixed = {.tick_us = 300, .budget_us = BUDGET};
    struct rc_accum_conn a = {0};
    uint64_t t = T0, until = 0;

    (void)state;
    for (int i = 0; i < 20; i++, t += 10)
        arrive(&a, t);
    assert_false(rc_accum_hold(&off, &a, true, t, &until));
    assert_true(rc_accum_hold(&fixed, &a, false, a.first_us + 299, &until));
    assert_int_equal(until, a.first_us + 300);
    assert_false(rc_accum_hold(&fixed, &a, true, a.first_us + 300, &until));

    struct rc_accum_conn lone = {0};
    arrive(&lone, t);
    assert_true(rc_accum_hold(&fixed, &lone, false, t, &until));
}

/* Takes one sample: period_us of wall clock in which the loop used permille
 * of a CPU. Returns the verdict. */
static bool sample(struct rc_accum *g, uint64_t *t, uint64_t *cpu, uint64_t period_us,
                   uint64_t permille)
{
    *t += period_us;
    *cpu += period_us * permille / 1000;
    return rc_accum_busy(g, *t, *cpu);
}

/* The CPU load: sampled at most every RC_ACCUM_SAMPLE_US, averaged, and with
 * a gap between becoming busy and ceasing to be. */
static void test_busy_load(void **state)
{
    struct rc_accum g = {0};
    uint64_t t = T0, cpu = 5000000;
    int n;

    (void)state;
    assert_false(rc_accum_busy(&g, t, cpu)); /* first sample: a baseline */
    /* One sample at 90 % of a CPU is not yet a load: about four are. */
    assert_false(sample(&g, &t, &cpu, RC_ACCUM_SAMPLE_US, 900));
    assert_int_equal(g.busy_permille, 900);
    assert_int_equal(g.load_permille, 225);
    for (n = 1; n < 10 && !sample(&g, &t, &cpu, RC_ACCUM_SAMPLE_US, 900); n++)
        ;
    assert_int_equal(n, 3); /* 225, 393, 519, 614: busy at the fourth */
    assert_true(g.busy);
    /* Too soon for a new sample: the verdict stands, whatever the CPU did. */
    assert_true(rc_accum_busy(&g, t + 10, cpu));
    /* Holding made the loop cheaper: at 55 % it stays busy (above IDLE) ... */
    for (n = 0; n < 20; n++)
        assert_true(sample(&g, &t, &cpu, RC_ACCUM_SAMPLE_US, 550));
    assert_true(g.load_permille >= RC_ACCUM_IDLE_PERMILLE);
    /* ... and a single quiet sample does not end it either ... */
    assert_true(sample(&g, &t, &cpu, RC_ACCUM_SAMPLE_US, 100));
    /* ... but a load that stays low does. */
    for (n = 0; n < 10 && sample(&g, &t, &cpu, RC_ACCUM_SAMPLE_US, 200); n++)
        ;
    assert_true(n < 10);
    assert_false(g.busy);
    assert_true(g.load_permille < RC_ACCUM_IDLE_PERMILLE);
    /* 50 % never makes it busy: the load sits between the two thresholds. */
    for (n = 0; n < 50; n++)
        assert_false(sample(&g, &t, &cpu, RC_ACCUM_SAMPLE_US, 500));
    /* A long quiet spell (nothing sampled for 4 periods or more) replaces
     * the past at once: busy before it, not busy after it. */
    for (n = 0; n < 20; n++)
        sample(&g, &t, &cpu, RC_ACCUM_SAMPLE_US, 1000);
    assert_true(g.busy);
    assert_false(sample(&g, &t, &cpu, 60 * 1000000ull, 1));
    assert_int_equal(g.load_permille, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lone_message_goes_at_once),
        cmocka_unit_test(test_slow_stream_never_held),
        cmocka_unit_test(test_stream_held_within_budget),
        cmocka_unit_test(test_stopped_burst_goes_early),
        cmocka_unit_test(test_busy_server_holds_regular_subscribers),
        cmocka_unit_test(test_budget_is_a_hard_bound),
        cmocka_unit_test(test_silence_is_forgotten),
        cmocka_unit_test(test_fixed_window_and_off),
        cmocka_unit_test(test_busy_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
