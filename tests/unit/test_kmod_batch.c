/* test_kmod_batch.c -- the kmod backend's call builder without a device (kmod_batch.c).
 *
 * What the module is promised (include/ringcast_kmod.h) and what the server
 * relies on: each target's slices, read from the staging buffer in order,
 * are exactly the bytes of its queue ranges; a frame shared by many targets
 * is in the buffer once; slices of a target are one consecutive run; a
 * target that would take the call past a limit is refused whole (-ENOSPC,
 * the call as it was) and fits the next call; one that can never fit says
 * so (-EMSGSIZE); slab stamps are cleared by finish and by reset; the
 * staging buffer is reused from call to call.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kmod_batch.h"
#include "msg.h"

static struct rc_slab_pool pool;

static const struct rc_kbatch_limits wide = {1u << 20, 1u << 16, 1u << 12};

/* Writes n bytes of a recognisable pattern into a; returns the reference. */
static struct rc_ref frame(struct rc_arena *a, size_t n, char seed)
{
    struct rc_ref r;
    char *p = rc_arena_alloc(a, n, &r.slab, &r.off);

    for (size_t i = 0; i < n; i++)
        p[i] = (char)(seed + (char)(i % 23));
    r.len = (uint32_t)n;
    return r;
}

/* refs[0..n) joined into one range of the same slab (what a queue's merge does). */
static struct rc_ref join(struct rc_ref a, struct rc_ref b)
{
    assert_ptr_equal(a.slab, b.slab);
    assert_int_equal(a.off + a.len, b.off);
    return (struct rc_ref){a.slab, a.off, a.len + b.len};
}

/* Target i of a finished call receives exactly refs[0..n), through one run of slices. */
static void check_target(const struct rc_kbatch *b, const struct rck_send *req, uint32_t i,
                         const struct rc_ref *refs, uint32_t n)
{
    const struct rck_target *t = &((const struct rck_target *)(uintptr_t)req->targets)[i];
    const struct rck_slice *sl = (const struct rck_slice *)(uintptr_t)req->slices;
    const char *buf = (const char *)(uintptr_t)req->buf;
    uint32_t total = 0;

    assert_int_equal(t->nslices, n);
    assert_int_equal(t->reserved, 0);
    assert_true(t->first + t->nslices <= req->nslices);
    for (uint32_t k = 0; k < n; k++) {
        const struct rck_slice *s = &sl[t->first + k];
        assert_int_equal(s->len, refs[k].len);
        assert_true((uint64_t)s->off + s->len <= req->buf_len);
        assert_memory_equal(buf + s->off, refs[k].slab->data + refs[k].off, s->len);
        total += s->len;
    }
    assert_int_equal(b->info[i].bytes, total);
}

/* 300 subscribers of one channel receive the same two frames: the buffer
 * holds them once, and every slice points at that one copy. */
static void test_shared_frames_copied_once(void **state)
{
    struct rc_arena a;
    struct rc_kbatch b;
    struct rck_send req;
    struct rc_ref f1, f2, both;

    (void)state;
    rc_arena_init(&a, &pool);
    rc_kbatch_init(&b, &wide);
    f1 = frame(&a, 100, 'a');
    f2 = frame(&a, 50, 'A');
    both = join(f1, f2);
    for (int i = 0; i < 300; i++)
        assert_int_equal(rc_kbatch_add(&b, 1000 + i, (uint64_t)i, &both, 1), 0);
    assert_int_equal(b.bytes, 150);
    rc_kbatch_finish(&b, RCK_F_ZEROCOPY, &req);
    assert_int_equal(req.buf_len, 150);
    assert_int_equal(req.nslices, 300);
    assert_int_equal(req.ntargets, 300);
    assert_int_equal(req.flags, RCK_F_ZEROCOPY);
    assert_int_equal(req.reserved, 0);
    for (uint32_t i = 0; i < 300; i++) {
        const struct rck_target *t = &b.targets[i];
        assert_int_equal(t->fd, 1000 + (int)i);
        assert_int_equal(t->first, i);
        assert_int_equal(b.info[i].tag, i);
        assert_int_equal(b.slices[i].off, 0);
        check_target(&b, &req, i, &both, 1);
    }
    assert_int_equal(b.copied, 150);
    assert_int_equal(both.slab->mark, 0);
    rc_kbatch_reset(&b);
    rc_kbatch_free(&b);
    rc_arena_free(&a);
}

/* Targets that start at different points of the same frames (one was cut
 * by a partial send, one does not get the second frame) share one span. */
static void test_overlapping_ranges_share_a_span(void **state)
{
    struct rc_arena a;
    struct rc_kbatch b;
    struct rck_send req;
    struct rc_ref f1, f2, whole, tail, head;

    (void)state;
    rc_arena_init(&a, &pool);
    rc_kbatch_init(&b, &wide);
    f1 = frame(&a, 120, 'k');
    f2 = frame(&a, 80, 'K');
    whole = join(f1, f2);
    tail = (struct rc_ref){f1.slab, f1.off + 70, 130}; /* 70 bytes already sent */
    head = f1;
    assert_int_equal(rc_kbatch_add(&b, 3, 0, &tail, 1), 0);
    assert_int_equal(rc_kbatch_add(&b, 4, 1, &head, 1), 0);
    assert_int_equal(rc_kbatch_add(&b, 5, 2, &whole, 1), 0);
    assert_int_equal(b.nspans, 1);
    assert_int_equal(b.bytes, 200);
    rc_kbatch_finish(&b, 0, &req);
    assert_int_equal(req.buf_len, 200);
    check_target(&b, &req, 0, &tail, 1);
    check_target(&b, &req, 1, &head, 1);
    check_target(&b, &req, 2, &whole, 1);
    rc_kbatch_reset(&b);
    rc_kbatch_free(&b);
    rc_arena_free(&a);
}

/* A target with ranges in several slabs (frames, then a reply from another
 * arena, then frames again) gets one consecutive run, in queue order; two
 * targets of the same feed share every span. */
static void test_slice_runs_across_slabs(void **state)
{
    struct rc_arena frames, replies;
    struct rc_kbatch b;
    struct rck_send req;
    struct rc_ref x[3], y[2];

    (void)state;
    rc_arena_init(&frames, &pool);
    rc_arena_init(&replies, &pool);
    rc_kbatch_init(&b, &wide);
    x[0] = frame(&frames, 40, '0');
    x[1] = frame(&replies, 9, 'r');
    x[2] = frame(&frames, 33, '5');
    y[0] = x[0];
    y[1] = x[2];
    assert_int_equal(rc_kbatch_add(&b, 7, 70, x, 3), 0);
    assert_int_equal(rc_kbatch_add(&b, 8, 80, y, 2), 0);
    assert_int_equal(b.nspans, 2);
    assert_int_equal(b.bytes, 40 + 33 + 9);
    rc_kbatch_finish(&b, 0, &req);
    assert_int_equal(req.nslices, 5);
    assert_int_equal(b.targets[0].first, 0);
    assert_int_equal(b.targets[1].first, 3);
    check_target(&b, &req, 0, x, 3);
    check_target(&b, &req, 1, y, 2);
    assert_int_equal(b.copied, 82);
    rc_kbatch_reset(&b);
    rc_kbatch_free(&b);
    rc_arena_free(&frames);
    rc_arena_free(&replies);
}

/* The target and slice limits split a tick into calls: the target that does
 * not fit is refused whole, the call is as it was, and it fits the next one. */
static void test_split_at_target_and_slice_limits(void **state)
{
    const struct rc_kbatch_limits lim = {1u << 20, 5, 2};
    struct rc_arena a, other;
    struct rc_kbatch b;
    struct rck_send req;
    struct rc_ref f[4], lone;

    (void)state;
    rc_arena_init(&a, &pool);
    rc_arena_init(&other, &pool);
    rc_kbatch_init(&b, &lim);
    for (int i = 0; i < 4; i++)
        f[i] = frame(&a, 10, (char)('a' + i));
    lone = frame(&other, 16, 'z');
    assert_int_equal(rc_kbatch_add(&b, 1, 1, &f[0], 1), 0);
    assert_int_equal(rc_kbatch_add(&b, 2, 2, f, 4), 0);
    /* Third target: over max_targets. */
    assert_int_equal(rc_kbatch_add(&b, 3, 3, &lone, 1), -ENOSPC);
    assert_int_equal(b.ntargets, 2);
    assert_int_equal(b.nslices, 5);
    assert_int_equal(b.nspans, 1);
    assert_int_equal(lone.slab->mark, 0);
    rc_kbatch_finish(&b, 0, &req);
    check_target(&b, &req, 0, &f[0], 1);
    check_target(&b, &req, 1, f, 4);
    rc_kbatch_reset(&b);

    assert_int_equal(rc_kbatch_add(&b, 3, 3, &lone, 1), 0);
    /* Second target: 1 + 4 fits max_slices 5, 1 + 1 + 4 would not. */
    assert_int_equal(rc_kbatch_add(&b, 4, 4, &f[0], 1), 0);
    assert_int_equal(rc_kbatch_add(&b, 5, 5, f, 4), -ENOSPC);
    /* More slices than a whole call takes: never fits. */
    {
        struct rc_ref six[6] = {f[0], f[1], f[2], f[3], f[0], f[1]};
        assert_int_equal(rc_kbatch_add(&b, 6, 6, six, 6), -EMSGSIZE);
    }
    assert_int_equal(rc_kbatch_add(&b, 7, 7, &lone, 0), -EINVAL);
    rc_kbatch_finish(&b, 0, &req);
    assert_int_equal(req.ntargets, 2);
    check_target(&b, &req, 0, &lone, 1);
    check_target(&b, &req, 1, &f[0], 1);
    rc_kbatch_reset(&b);
    rc_kbatch_free(&b);
    rc_arena_free(&a);
    rc_arena_free(&other);
}

/* The byte limit: a target that would widen an earlier target's span past
 * max_buf is refused and the span is put back as it was. */
static void test_split_at_byte_limit_restores_spans(void **state)
{
    const struct rc_kbatch_limits lim = {1000, 64, 64};
    struct rc_arena a, other;
    struct rc_kbatch b;
    struct rck_send req;
    struct rc_ref f1, f2, f3, g, wide_ref[2];

    (void)state;
    rc_arena_init(&a, &pool);
    rc_arena_init(&other, &pool);
    rc_kbatch_init(&b, &lim);
    f1 = frame(&a, 300, 'a');
    f2 = frame(&a, 300, 'b');
    f3 = frame(&a, 300, 'c');
    g = frame(&other, 500, 'g');
    assert_int_equal(rc_kbatch_add(&b, 1, 1, &f2, 1), 0); /* span [300, 600) */
    /* Widens the span to [0, 900) and adds 500 bytes of another slab: 1400. */
    wide_ref[0] = join(f1, join(f2, f3));
    wide_ref[1] = g;
    assert_int_equal(rc_kbatch_add(&b, 2, 2, wide_ref, 2), -ENOSPC);
    assert_int_equal(b.bytes, 300);
    assert_int_equal(b.nspans, 1);
    assert_int_equal(b.spans[0].lo, f2.off);
    assert_int_equal(b.spans[0].hi, f2.off + 300);
    assert_int_equal(g.slab->mark, 0);
    assert_int_equal(f1.slab->mark, 1);
    /* Within the limit it widens: [0, 900) is 900 bytes. */
    assert_int_equal(rc_kbatch_add(&b, 3, 3, &wide_ref[0], 1), 0);
    assert_int_equal(b.bytes, 900);
    rc_kbatch_finish(&b, 0, &req);
    assert_int_equal(req.buf_len, 900);
    check_target(&b, &req, 0, &f2, 1);
    check_target(&b, &req, 1, &wide_ref[0], 1);
    assert_int_equal(f1.slab->mark, 0);
    rc_kbatch_reset(&b);
    /* Alone it is still too big for one call. */
    assert_int_equal(rc_kbatch_add(&b, 2, 2, wide_ref, 2), -EMSGSIZE);
    assert_true(rc_kbatch_empty(&b));
    assert_int_equal(f1.slab->mark, 0);
    assert_int_equal(g.slab->mark, 0);
    rc_kbatch_free(&b);
    rc_arena_free(&a);
    rc_arena_free(&other);
}

/* A call abandoned before finish leaves no stamp behind; the staging buffer
 * is kept from one call to the next. */
static void test_reset_unstamps_and_buffer_is_reused(void **state)
{
    struct rc_arena a;
    struct rc_kbatch b;
    struct rck_send req;
    struct rc_ref f;
    char *buf;

    (void)state;
    rc_arena_init(&a, &pool);
    rc_kbatch_init(&b, &wide);
    f = frame(&a, 1000, 'q');
    assert_int_equal(rc_kbatch_add(&b, 1, 1, &f, 1), 0);
    assert_int_not_equal(f.slab->mark, 0);
    rc_kbatch_reset(&b);
    assert_int_equal(f.slab->mark, 0);
    assert_true(rc_kbatch_empty(&b));

    assert_int_equal(rc_kbatch_add(&b, 1, 1, &f, 1), 0);
    rc_kbatch_finish(&b, 0, &req);
    buf = b.buf;
    rc_kbatch_reset(&b);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(rc_kbatch_add(&b, 1, 1, &f, 1), 0);
        rc_kbatch_finish(&b, 0, &req);
        assert_ptr_equal(b.buf, buf);
        check_target(&b, &req, 0, &f, 1);
        rc_kbatch_reset(&b);
    }
    assert_int_equal(b.copied, 11 * 1000);
    rc_kbatch_free(&b);
    rc_kbatch_free(NULL);
    rc_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_frames_copied_once),
        cmocka_unit_test(test_overlapping_ranges_share_a_span),
        cmocka_unit_test(test_slice_runs_across_slabs),
        cmocka_unit_test(test_split_at_target_and_slice_limits),
        cmocka_unit_test(test_split_at_byte_limit_restores_spans),
        cmocka_unit_test(test_reset_unstamps_and_buffer_is_reused),
    };
    int r;

    rc_slab_pool_init(&pool);
    r = cmocka_run_group_tests(tests, NULL, NULL);
    rc_slab_pool_clear(&pool);
    return r;
}
