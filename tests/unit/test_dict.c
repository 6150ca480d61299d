/* test_dict.c -- unit tests for dict.c: the table contract, iteration and scale.
 *
 * Covers add/get/del and -EEXIST, binary keys (NULs, the empty key, keys that
 * are prefixes of each other), the stable key copy across rehashes, deleting
 * during iteration, 100k keys through growth and back to empty, the seeded
 * hash, and the memory a tiny table costs (every client owns one).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dict.h"

#define S(lit) lit, sizeof(lit) - 1

/* Distinct non-NULL values without allocating. */
static char vals[8];

static size_t key_of(char *buf, size_t i)
{
    return (size_t)snprintf(buf, 32, "channel:%zu", i);
}

static void test_empty(void **state)
{
    struct rc_dict *d = rc_dict_new();
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    assert_int_equal(rc_dict_size(d), 0);
    assert_null(rc_dict_get(d, S("x")));
    assert_null(rc_dict_del(d, S("x")));
    assert_null(rc_dict_get(d, "", 0));
    rc_dict_iter_init(&it);
    assert_false(rc_dict_next(d, &it, &k, &kl, &v));
    rc_dict_free(d);
    rc_dict_free(NULL);
}

static void test_add_get_del(void **state)
{
    struct rc_dict *d = rc_dict_new();

    assert_int_equal(rc_dict_add(d, S("a"), &vals[0]), 0);
    assert_int_equal(rc_dict_add(d, S("b"), &vals[1]), 0);
    assert_int_equal(rc_dict_size(d), 2);
    assert_ptr_equal(rc_dict_get(d, S("a")), &vals[0]);
    assert_ptr_equal(rc_dict_get(d, S("b")), &vals[1]);
    assert_null(rc_dict_get(d, S("c")));

    /* A duplicate is refused and leaves the old value in place. */
    assert_int_equal(rc_dict_add(d, S("a"), &vals[2]), -EEXIST);
    assert_ptr_equal(rc_dict_get(d, S("a")), &vals[0]);
    assert_int_equal(rc_dict_size(d), 2);

    assert_ptr_equal(rc_dict_del(d, S("a")), &vals[0]);
    assert_null(rc_dict_get(d, S("a")));
    assert_null(rc_dict_del(d, S("a")));
    assert_int_equal(rc_dict_size(d), 1);
    assert_ptr_equal(rc_dict_get(d, S("b")), &vals[1]);

    /* Back to empty, then usable again. */
    assert_ptr_equal(rc_dict_del(d, S("b")), &vals[1]);
    assert_int_equal(rc_dict_size(d), 0);
    assert_int_equal(rc_dict_add(d, S("a"), &vals[3]), 0);
    assert_ptr_equal(rc_dict_get(d, S("a")), &vals[3]);
    rc_dict_free(d);
}

/* The key is copied: the caller's buffer may change or go away. */
static void test_key_copied(void **state)
{
    struct rc_dict *d = rc_dict_new();
    char buf[8] = "topic";
    struct rc_dict_iter it;
    const char *k;
    size_t kl;

    assert_int_equal(rc_dict_add(d, buf, 5, &vals[0]), 0);
    memcpy(buf, "xxxxx", 5);
    assert_null(rc_dict_get(d, buf, 5));
    assert_ptr_equal(rc_dict_get(d, S("topic")), &vals[0]);
    rc_dict_iter_init(&it);
    assert_true(rc_dict_next(d, &it, &k, &kl, NULL));
    assert_ptr_not_equal(k, buf);
    assert_int_equal(kl, 5);
    assert_memory_equal(k, "topic", 5);
    rc_dict_free(d);
}

static void test_binary_keys(void **state)
{
    static const struct {
        const char *k;
        size_t len;
    } keys[] = {
        {S("")},       {S("a")},        {S("a\0")},       {S("a\0b")}, {S("a\0c")},
        {S("\0")},     {S("\0\0")},     {S("\xff")},      {S("ab")},   {S("a\0b\0")},
        {S("\0a\0b")}, {S("12345678")}, {S("123456789")},
    };
    size_t n = sizeof(keys) / sizeof(keys[0]);
    struct rc_dict *d = rc_dict_new();
    bool seen[sizeof(keys) / sizeof(keys[0])] = {false};
    struct rc_dict_iter it;
    const char *k;
    size_t kl;
    void *v;

    for (size_t i = 0; i < n; i++)
        assert_int_equal(rc_dict_add(d, keys[i].k, keys[i].len, (void *)&keys[i]), 0);
    assert_int_equal(rc_dict_size(d), n);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(rc_dict_get(d, keys[i].k, keys[i].len), &keys[i]);

    rc_dict_iter_init(&it);
    while (rc_dict_next(d, &it, &k, &kl, &v)) {
        size_t i = (size_t)((const char *)v - (const char *)keys) / sizeof(keys[0]);

        assert_true(i < n);
        assert_false(seen[i]);
        seen[i] = true;
        assert_int_equal(kl, keys[i].len);
        assert_memory_equal(k, keys[i].k, kl);
    }
    for (size_t i = 0; i < n; i++)
        assert_true(seen[i]);

    /* Deleting "a\0b" leaves its prefix and its siblings alone. */
    assert_ptr_equal(rc_dict_del(d, S("a\0b")), &keys[3]);
    assert_null(rc_dict_get(d, S("a\0b")));
    assert_ptr_equal(rc_dict_get(d, S("a\0")), &keys[2]);
    assert_ptr_equal(rc_dict_get(d, S("a\0c")), &keys[4]);
    assert_ptr_equal(rc_dict_get(d, S("a\0b\0")), &keys[9]);
    assert_ptr_equal(rc_dict_get(d, "", 0), &keys[0]);
    assert_ptr_equal(rc_dict_get(d, NULL, 0), &keys[0]);
    rc_dict_free(d);
}

/* rc_dict_add's promise: the copied key does not move while its entry lives,
 * however much the table grows around it. */
static void test_stable_key_address(void **state)
{
    struct rc_dict *d = rc_dict_new();
    struct rc_dict_iter it;
    const char *first = NULL, *k;
    size_t kl;
    char buf[32];

    assert_int_equal(rc_dict_add(d, S("pinned"), &vals[0]), 0);
    rc_dict_iter_init(&it);
    assert_true(rc_dict_next(d, &it, &first, &kl, NULL));
    for (size_t i = 0; i < 5000; i++)
        assert_int_equal(rc_dict_add(d, buf, key_of(buf, i), &vals[1]), 0);
    for (size_t i = 0; i < 4000; i++)
        assert_ptr_equal(rc_dict_del(d, buf, key_of(buf, i)), &vals[1]);

    rc_dict_iter_init(&it);
    bool found = false;
    while (rc_dict_next(d, &it, &k, &kl, NULL)) {
        if (kl == 6 && memcmp(k, "pinned", 6) == 0) {
            assert_ptr_equal(k, first);
            found = true;
        }
    }
    assert_true(found);
    rc_dict_free(d);
}

/* Iterate while deleting each entry as it is returned (all of them, or every
 * other one): every key is visited exactly once and the survivors remain. */
static void iterate_deleting(size_t n, bool delete_all)
{
    struct rc_dict *d = rc_dict_new();
    bool *seen = calloc(n, sizeof(bool));
    struct rc_dict_iter it;
    const char *k;
    size_t kl, visited = 0, deleted = 0;
    void *v;
    char buf[32];

    assert_non_null(seen);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rc_dict_add(d, buf, key_of(buf, i), (void *)(uintptr_t)(i + 1)), 0);

    rc_dict_iter_init(&it);
    while (rc_dict_next(d, &it, &k, &kl, &v)) {
        size_t i = (size_t)(uintptr_t)v - 1;

        assert_true(i < n);
        assert_false(seen[i]);
        seen[i] = true;
        visited++;
        assert_int_equal(kl, key_of(buf, i));
        assert_memory_equal(k, buf, kl);
        if (delete_all || i % 2 == 0) {
            /* k points into the entry: copy before it is freed. */
            assert_ptr_equal(rc_dict_del(d, buf, kl), v);
            deleted++;
        }
        assert_true(visited <= n);
    }
    assert_int_equal(visited, n);
    assert_int_equal(rc_dict_size(d), n - deleted);
    for (size_t i = 0; i < n; i++) {
        void *want = (delete_all || i % 2 == 0) ? NULL : (void *)(uintptr_t)(i + 1);

        assert_ptr_equal(rc_dict_get(d, buf, key_of(buf, i)), want);
    }
    free(seen);
    rc_dict_free(d);
}

static void test_iterate_with_delete(void **state)
{
    iterate_deleting(1, true);
    iterate_deleting(2, true);
    iterate_deleting(7, false);
    iterate_deleting(1000, true);
    iterate_deleting(1000, false);
    iterate_deleting(4096, false);
}

/* 100k keys: growth through many doublings, every key reachable, removal
 * back to empty, then a regrow. */
static void test_large(void **state)
{
    const size_t n = 100000;
    struct rc_dict *d = rc_dict_new();
    char buf[32];

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rc_dict_add(d, buf, key_of(buf, i), (void *)(uintptr_t)(i + 1)), 0);
        assert_int_equal(rc_dict_size(d), i + 1);
    }
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(rc_dict_get(d, buf, key_of(buf, i)), (void *)(uintptr_t)(i + 1));
    assert_null(rc_dict_get(d, S("channel:100000")));
    assert_int_equal(rc_dict_add(d, S("channel:99999"), &vals[0]), -EEXIST);

    /* Remove all but 10: the survivors stay reachable, and the next insert
     * (which may shrink the bucket array) keeps them so. */
    for (size_t i = 10; i < n; i++)
        assert_ptr_equal(rc_dict_del(d, buf, key_of(buf, i)), (void *)(uintptr_t)(i + 1));
    assert_int_equal(rc_dict_size(d), 10);
    assert_int_equal(rc_dict_add(d, S("late"), &vals[0]), 0);
    for (size_t i = 0; i < 10; i++)
        assert_ptr_equal(rc_dict_get(d, buf, key_of(buf, i)), (void *)(uintptr_t)(i + 1));
    assert_ptr_equal(rc_dict_get(d, S("late")), &vals[0]);

    size_t count = 0;
    struct rc_dict_iter it;
    rc_dict_iter_init(&it);
    while (rc_dict_next(d, &it, NULL, NULL, NULL) && count <= 11)
        count++;
    assert_int_equal(count, 11);

    for (size_t i = 0; i < 10; i++)
        assert_non_null(rc_dict_del(d, buf, key_of(buf, i)));
    assert_ptr_equal(rc_dict_del(d, S("late")), &vals[0]);
    assert_int_equal(rc_dict_size(d), 0);
    for (size_t i = 0; i < n; i += 7)
        assert_int_equal(rc_dict_add(d, buf, key_of(buf, i), &vals[1]), 0);
    assert_int_equal(rc_dict_size(d), (n + 6) / 7);
    rc_dict_free(d);
}

static void test_hash(void **state)
{
    size_t h = rc_dict_hash(S("channel"));

    assert_int_equal(rc_dict_hash(S("channel")), h);
    assert_int_not_equal(rc_dict_hash(S("channel1")), h);
    /* Length is hashed, so trailing NULs and the empty key are distinct. */
    assert_int_not_equal(rc_dict_hash("", 0), rc_dict_hash(S("\0")));
    assert_int_not_equal(rc_dict_hash(S("\0")), rc_dict_hash(S("\0\0")));
    assert_int_not_equal(rc_dict_hash(S("a")), rc_dict_hash(S("a\0")));

    /* Spread: 64k sequential names into 256 bins by the low bits (the bits
     * the table indexes with) stay within a loose bound of the mean of 256. */
    enum { BINS = 256, KEYS = 65536 };
    static unsigned bins[BINS];
    char buf[32];
    memset(bins, 0, sizeof(bins));
    for (size_t i = 0; i < KEYS; i++)
        bins[rc_dict_hash(buf, key_of(buf, i)) % BINS]++;
    for (size_t i = 0; i < BINS; i++) {
        assert_true(bins[i] > KEYS / BINS / 2);
        assert_true(bins[i] < KEYS / BINS * 2);
    }
}

#if defined(__SANITIZE_ADDRESS__)
#define RC_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RC_TEST_ASAN 1
#endif
#endif

/* Most clients hold one or two subscriptions: such a table, malloc overhead
 * included, must stay within a few hundred bytes. */
static void test_small_table_memory(void **state)
{
#ifdef RC_TEST_ASAN
    skip(); /* ASan's allocator does not feed mallinfo2() */
#else
    enum { N = 1000 };
    static struct rc_dict *ds[N];
    struct mallinfo2 before, after;
    size_t per_empty, per_two;

    before = mallinfo2();
    for (size_t i = 0; i < N; i++)
        ds[i] = rc_dict_new();
    after = mallinfo2();
    per_empty = (after.uordblks - before.uordblks) / N;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(rc_dict_add(ds[i], S("news.tech"), &vals[0]), 0);
        assert_int_equal(rc_dict_add(ds[i], S("news.sports"), &vals[1]), 0);
    }
    after = mallinfo2();
    per_two = (after.uordblks - before.uordblks) / N;
    for (size_t i = 0; i < N; i++)
        rc_dict_free(ds[i]);
    print_message("empty dict %zu bytes, with two keys %zu bytes\n", per_empty, per_two);
    assert_true(per_empty > 0);
    assert_true(per_empty <= 64);
    assert_true(per_two <= 320);
#endif
}

/* A table that emptied out to a few entries gives its buckets back. */
static void test_shrink(void **state)
{
#ifdef RC_TEST_ASAN
    skip(); /* ASan's allocator does not feed mallinfo2() */
#else
    enum { N = 100000 };
    struct rc_dict *d = rc_dict_new();
    struct mallinfo2 full, shrunk;
    char key[32];

    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(rc_dict_add(d, key, (size_t)n, &vals[0]), 0);
    }
    for (int i = 10; i < N; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_ptr_equal(rc_dict_del(d, key, (size_t)n), &vals[0]);
    }
    full = mallinfo2();
    rc_dict_shrink(d);
    shrunk = mallinfo2();
    /* 131072 buckets of 8 bytes go; 10 entries need a handful. */
    assert_true(full.uordblks - shrunk.uordblks >= 1000000);
    assert_int_equal(rc_dict_size(d), 10);
    for (int i = 0; i < 10; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_ptr_equal(rc_dict_get(d, key, (size_t)n), &vals[0]);
    }
    rc_dict_free(d);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_add_get_del),
        cmocka_unit_test(test_key_copied),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_stable_key_address),
        cmocka_unit_test(test_iterate_with_delete),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_small_table_memory),
        cmocka_unit_test(test_shrink),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
