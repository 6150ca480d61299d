/* test_msg.c -- slab arenas and frame reference counts (msg.c, queue.c).
 *
 * The invariant under test is rule 2 of the design: a slab lives exactly as
 * long as something references it -- the arena while it is current, every
 * queue entry, every in-flight range -- and is released when the last one
 * lets go. Queues are checked for merging, iovec and reference building, partial consumes
 * and dropping unsent data while a prefix is in flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "msg.h"
#include "queue.h"

/* The tests share one pool, as one engine's slabs do. */
static struct rc_slab_pool pool;

static void test_arena_sequential(void **state)
{
    struct rc_arena a;
    struct rc_slab *s1, *s2;
    uint32_t o1, o2;
    uint64_t live = pool.live;

    rc_arena_init(&a, &pool);
    char *p1 = rc_arena_copy(&a, "hello", 5, &s1, &o1);
    char *p2 = rc_arena_copy(&a, "world", 5, &s2, &o2);
    assert_ptr_equal(s1, s2);
    assert_int_equal(o1 + 5, o2);
    assert_ptr_equal(p1 + 5, p2);
    assert_memory_equal(s1->data, "helloworld", 10);
    assert_int_equal(s1->refs, 1); /* only the arena */
    assert_int_equal(pool.live, live + 1);
    rc_arena_free(&a);
    assert_int_equal(pool.live, live);
}

static void test_slab_outlives_arena_while_queued(void **state)
{
    struct rc_arena a;
    struct rc_queue q;
    struct rc_slab *s;
    uint32_t off;
    uint64_t live = pool.live;

    rc_arena_init(&a, &pool);
    rc_queue_init(&q, true);
    rc_arena_copy(&a, "abc", 3, &s, &off);
    rc_queue_push(&q, s, off, 3);
    assert_int_equal(s->refs, 2);
    rc_arena_free(&a);
    assert_int_equal(s->refs, 1);
    assert_int_equal(pool.live, live + 1);
    rc_queue_consume(&q, 3);
    assert_int_equal(pool.live, live);
    assert_true(rc_queue_empty(&q));
    rc_queue_free(&q);
}

static void test_slab_rollover_and_large(void **state)
{
    struct rc_arena a;
    struct rc_queue q;
    struct rc_slab *first = NULL, *s;
    uint32_t off;
    char buf[1000];
    uint64_t live = pool.live;

    memset(buf, 'x', sizeof(buf));
    rc_arena_init(&a, &pool);
    rc_queue_init(&q, true);
    /* Fill more than one slab: the first must stay alive through the queue. */
    for (int i = 0; i < 100; i++) {
        rc_arena_copy(&a, buf, sizeof(buf), &s, &off);
        if (!first)
            first = s;
        rc_queue_push(&q, s, off, sizeof(buf));
    }
    assert_true(pool.live >= live + 2);
    assert_int_equal(first->refs, 1); /* arena moved on; the queue holds it */
    /* A large frame gets its own slab. */
    char *big = rc_arena_alloc(&a, RC_SLAB_SIZE, &s, &off);
    memset(big, 'y', RC_SLAB_SIZE);
    assert_int_equal(off, 0);
    assert_int_equal(s->cap, RC_SLAB_SIZE);
    rc_queue_push(&q, s, off, RC_SLAB_SIZE);
    rc_arena_free(&a);
    assert_int_equal(s->refs, 1);
    rc_queue_consume(&q, q.bytes);
    rc_queue_free(&q);
    assert_int_equal(pool.live, live);
}

static void test_queue_merge_and_iov(void **state)
{
    struct rc_arena a;
    struct rc_queue q, nm;
    struct rc_slab *s;
    uint32_t off;
    struct iovec iov[8];
    size_t bytes;

    rc_arena_init(&a, &pool);
    rc_queue_init(&q, true);
    rc_queue_init(&nm, false);
    for (int i = 0; i < 5; i++) {
        rc_arena_copy(&a, "0123456789", 10, &s, &off);
        rc_queue_push(&q, s, off, 10);
        rc_queue_push(&nm, s, off, 10);
    }
    assert_int_equal(q.n, 1);  /* contiguous frames merged */
    assert_int_equal(nm.n, 5); /* naive keeps one entry per message */
    assert_int_equal(q.bytes, 50);
    assert_int_equal(rc_queue_iov(&q, iov, 8, 1 << 20, &bytes), 1);
    assert_int_equal(bytes, 50);
    assert_int_equal(rc_queue_iov(&nm, iov, 3, 1 << 20, &bytes), 3);
    assert_int_equal(bytes, 30);
    /* A byte cap cuts the first entry when nothing else fits. */
    assert_int_equal(rc_queue_iov(&q, iov, 8, 7, &bytes), 1);
    assert_int_equal(bytes, 7);
    assert_int_equal(iov[0].iov_len, 7);
    /* A non-contiguous push is a new entry. */
    rc_arena_copy(&a, "gap", 3, &s, &off); /* not queued: leaves a hole */
    rc_arena_copy(&a, "zz", 2, &s, &off);
    rc_queue_push(&q, s, off, 2);
    assert_int_equal(q.n, 2);
    /* The same ranges as references (the kmod backend's view), same caps. */
    {
        struct rc_ref refs[8];
        assert_int_equal(rc_queue_refs(&q, refs, 8, 1 << 20, &bytes), 2);
        assert_int_equal(bytes, 52);
        assert_ptr_equal(refs[1].slab, s);
        assert_int_equal(refs[1].off, off);
        assert_int_equal(refs[1].len, 2);
        assert_int_equal(rc_queue_iov(&q, iov, 8, 1 << 20, &bytes), 2);
        assert_ptr_equal(iov[0].iov_base, refs[0].slab->data + refs[0].off);
        assert_int_equal(rc_queue_refs(&q, refs, 8, 7, &bytes), 1);
        assert_int_equal(refs[0].len, 7);
        assert_int_equal(rc_queue_refs(&q, refs, 1, 1 << 20, &bytes), 1);
        assert_int_equal(bytes, 50);
    }
    rc_queue_consume(&q, q.bytes);
    rc_queue_consume(&nm, nm.bytes);
    rc_queue_free(&q);
    rc_queue_free(&nm);
    rc_arena_free(&a);
}

static void test_queue_partial_consume(void **state)
{
    struct rc_arena a;
    struct rc_queue q;
    struct rc_slab *s;
    uint32_t off;
    struct iovec iov[4];
    size_t bytes;

    rc_arena_init(&a, &pool);
    rc_queue_init(&q, false);
    rc_arena_copy(&a, "aaaa", 4, &s, &off);
    rc_queue_push(&q, s, off, 4);
    rc_arena_copy(&a, "bbbb", 4, &s, &off);
    rc_queue_push(&q, s, off, 4);
    rc_queue_consume(&q, 6); /* a short send: 4 + 2 */
    assert_int_equal(q.n, 1);
    assert_int_equal(q.bytes, 2);
    rc_queue_iov(&q, iov, 4, 100, &bytes);
    assert_int_equal(bytes, 2);
    assert_memory_equal(iov[0].iov_base, "bb", 2);
    rc_queue_consume(&q, 2);
    assert_true(rc_queue_empty(&q));
    rc_queue_free(&q);
    rc_arena_free(&a);
}

static void test_queue_drop_unsent_keeps_inflight(void **state)
{
    struct rc_arena a;
    struct rc_queue q;
    struct rc_slab *s, *first;
    uint32_t off;
    uint64_t live = pool.live;

    rc_arena_init(&a, &pool);
    rc_queue_init(&q, true);
    rc_arena_copy(&a, "inflight", 8, &first, &off);
    rc_queue_push(&q, first, off, 8);
    q.inflight = 5; /* the kernel holds the first 5 bytes */
    rc_arena_copy(&a, "more", 4, &s, &off);
    rc_queue_push(&q, s, off, 4); /* merges with the in-flight entry */
    rc_arena_free(&a);
    rc_queue_drop_unsent(&q);
    assert_int_equal(q.bytes, 5);
    assert_int_equal(q.n, 1);
    assert_int_equal(first->refs, 1); /* still alive for the kernel */
    rc_queue_consume(&q, 5);          /* the completion arrives */
    assert_int_equal(q.inflight, 0);
    assert_true(rc_queue_empty(&q));
    rc_queue_free(&q);
    assert_int_equal(pool.live, live);
}

static void test_queue_grows_in_order(void **state)
{
    struct rc_arena a;
    struct rc_queue q;
    struct rc_slab *s;
    uint32_t off;
    struct iovec iov[64];
    size_t bytes;
    char c;

    rc_arena_init(&a, &pool);
    rc_queue_init(&q, false);
    /* Interleave pushes and consumes so the ring wraps while growing. */
    for (int i = 0; i < 1000; i++) {
        c = (char)('a' + i % 26);
        rc_arena_copy(&a, &c, 1, &s, &off);
        rc_queue_push(&q, s, off, 1);
        if (i % 3 == 2)
            rc_queue_consume(&q, 1);
    }
    int expect = 333; /* index of the oldest unconsumed push */
    while (!rc_queue_empty(&q)) {
        int n = rc_queue_iov(&q, iov, 64, 1 << 20, &bytes);
        for (int k = 0; k < n; k++, expect++)
            assert_int_equal(*(char *)iov[k].iov_base, 'a' + expect % 26);
        rc_queue_consume(&q, bytes);
    }
    assert_int_equal(expect, 1000);
    rc_queue_free(&q);
    rc_arena_free(&a);
}

/* Pools are independent: slabs go back to the pool they came from. */
static void test_pools_are_separate(void **state)
{
    struct rc_slab_pool p1, p2;
    struct rc_arena a1, a2;
    struct rc_slab *s1, *s2;
    uint32_t off;

    rc_slab_pool_init(&p1);
    rc_slab_pool_init(&p2);
    rc_arena_init(&a1, &p1);
    rc_arena_init(&a2, &p2);
    rc_arena_copy(&a1, "a", 1, &s1, &off);
    rc_arena_copy(&a2, "b", 1, &s2, &off);
    assert_ptr_equal(s1->pool, &p1);
    assert_ptr_equal(s2->pool, &p2);
    assert_int_equal(p1.live, 1);
    assert_int_equal(p2.live, 1);
    rc_arena_free(&a1);
    assert_int_equal(p1.live, 0);
    assert_int_equal(p1.nfree, 1); /* recycled into its own pool */
    assert_int_equal(p2.live, 1);
    assert_int_equal(p2.nfree, 0);
    rc_arena_free(&a2);
    assert_int_equal(p2.nfree, 1);
    rc_slab_pool_clear(&p1);
    rc_slab_pool_clear(&p2);
    assert_int_equal(p1.nfree + p2.nfree, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_sequential),
        cmocka_unit_test(test_slab_outlives_arena_while_queued),
        cmocka_unit_test(test_pools_are_separate),
        cmocka_unit_test(test_slab_rollover_and_large),
        cmocka_unit_test(test_queue_merge_and_iov),
        cmocka_unit_test(test_queue_partial_consume),
        cmocka_unit_test(test_queue_drop_unsent_keeps_inflight),
        cmocka_unit_test(test_queue_grows_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
