/* test_glob.c -- unit tests for glob.c: Redis stringmatchlen() parity and bounded time.
 *
 * The table below was produced by asking a real redis-server 7.0.15 (Debian
 * 12): each string was SUBSCRIBEd as a channel and every pattern sent as
 * PUBSUB CHANNELS <pattern>, which runs stringmatchlen() with nocase off;
 * "true" means Redis listed the string. It covers every construct: '*', '?',
 * classes, negation, ranges (reversed, ']' as a range end, signed bytes),
 * '\' inside and outside classes, unterminated classes, a trailing '\' and
 * NUL bytes. The star-nesting cases were checked the same way with KEYS.
 * Pathological patterns are asserted by answer: an exponential matcher would
 * not finish them within the test's timeout.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "glob.h"

#define S(lit) lit, sizeof(lit) - 1

struct glob_case {
    const char *pat;
    size_t plen;
    const char *str;
    size_t slen;
    bool want;
};

/* Verified against redis-server 7.0.15 (see the file comment). */
static const struct glob_case redis_cases[] = {
    /* empty */
    {S(""), S(""), true},
    {S(""), S("a"), false},
    {S("a"), S(""), false},
    {S("*"), S(""), false},
    {S("**"), S(""), false},
    {S("?"), S(""), false},
    {S("[a]"), S(""), false},
    {S("\\"), S(""), false},
    /* literal */
    {S("abc"), S("abc"), true},
    {S("abc"), S("abd"), false},
    {S("abc"), S("ab"), false},
    {S("ab"), S("abc"), false},
    /* star */
    {S("*"), S("abc"), true},
    {S("*"), S("a"), true},
    {S("a*"), S("a"), true},
    {S("a*"), S("abc"), true},
    {S("a*"), S("ba"), false},
    {S("*c"), S("abc"), true},
    {S("*c"), S("abd"), false},
    {S("a*c"), S("ac"), true},
    {S("a*c"), S("abbbc"), true},
    {S("a*c"), S("abbbd"), false},
    {S("a**c"), S("abc"), true},
    {S("*a*"), S("bab"), true},
    {S("*a*"), S("bbb"), false},
    {S("a*b*c"), S("aXbYc"), true},
    {S("a*b*c"), S("aXcYb"), false},
    {S("h*llo"), S("hllo"), true},
    {S("h*llo"), S("heeeello"), true},
    {S("*.*"), S("news.tech"), true},
    {S("*.*"), S("news"), false},
    {S("*ab"), S("aab"), true},
    {S("*ab*ab"), S("abab"), true},
    {S("*ab*ab"), S("abaab"), true},
    {S("*ab*ab"), S("aba"), false},
    /* trailing stars after the last byte */
    {S("a*"), S("a"), true},
    {S("a**"), S("a"), true},
    {S("a*?"), S("a"), false},
    {S("a*?"), S("ab"), true},
    {S("*?*"), S("a"), true},
    {S("?*"), S("a"), true},
    {S("*?"), S("a"), true},
    {S("a*b"), S("a"), false},
    /* question */
    {S("?"), S("a"), true},
    {S("?"), S("ab"), false},
    {S("h?llo"), S("hello"), true},
    {S("h?llo"), S("hllo"), false},
    {S("?\?"), S("ab"), true},
    {S("?"), S("\000"), true},
    /* class */
    {S("h[ae]llo"), S("hello"), true},
    {S("h[ae]llo"), S("hallo"), true},
    {S("h[ae]llo"), S("hillo"), false},
    {S("h[^e]llo"), S("hallo"), true},
    {S("h[^e]llo"), S("hello"), false},
    {S("h[a-b]llo"), S("hbllo"), true},
    {S("h[a-b]llo"), S("hcllo"), false},
    {S("[a-z0-9]"), S("5"), true},
    {S("[a-z0-9]"), S("Q"), false},
    {S("[^a-z]"), S("Q"), true},
    {S("[^a-z]"), S("q"), false},
    {S("[abc]"), S("ab"), false},
    {S("[ab]*"), S("axyz"), true},
    {S("[*]"), S("*"), true},
    {S("[*]"), S("a"), false},
    {S("[?]"), S("a"), false},
    {S("[[]"), S("["), true},
    /* reversed range */
    {S("[z-a]"), S("m"), true},
    {S("[z-a]"), S("A"), false},
    {S("[z-a]"), S("z"), true},
    {S("[z-a]"), S("a"), true},
    {S("[9-0]x"), S("5x"), true},
    /* class edge cases */
    {S("[]"), S("]"), false},
    {S("[]]"), S("]"), false},
    {S("[]a]"), S("]"), false},
    {S("[]a]"), S("a"), false},
    {S("[^]"), S("a"), true},
    {S("[^]"), S("]"), true},
    {S("[^]]"), S("]"), false},
    {S("[a-]"), S("^"), true},
    {S("[a-]"), S("]"), true},
    {S("[a-]"), S("-"), false},
    {S("[a-]"), S("b"), false},
    {S("[-a]"), S("-"), true},
    {S("[-a]"), S("b"), false},
    {S("[a-c-e]"), S("d"), false},
    {S("[a-c-e]"), S("-"), true},
    {S("[^-]"), S("-"), false},
    {S("[a^]"), S("^"), true},
    /* escape */
    {S("\\*"), S("*"), true},
    {S("\\*"), S("a"), false},
    {S("\\?"), S("?"), true},
    {S("\\?"), S("a"), false},
    {S("\\[a]"), S("[a]"), true},
    {S("\\[a]"), S("a"), false},
    {S("\\a"), S("a"), true},
    {S("\\\\"), S("\\"), true},
    {S("a\\*b"), S("a*b"), true},
    {S("a\\*b"), S("axb"), false},
    /* trailing backslash */
    {S("\\"), S("\\"), true},
    {S("a\\"), S("a\\"), true},
    {S("a\\"), S("a"), false},
    {S("a\\"), S("ab"), false},
    /* escape in class */
    {S("[\\]]"), S("]"), true},
    {S("[\\]]"), S("\\"), false},
    {S("[\\^a]"), S("^"), true},
    {S("[\\-]"), S("-"), true},
    {S("[a\\-z]"), S("m"), false},
    {S("[a\\-z]"), S("-"), true},
    {S("[\\a-c]"), S("b"), false},
    {S("[\\"), S("\\"), true},
    {S("[a-\\]"), S("\\"), true},
    {S("[a-\\]"), S("_"), true},
    /* unterminated class */
    {S("[abc"), S("b"), true},
    {S("[abc"), S("d"), false},
    {S("["), S("["), false},
    {S("["), S("a"), false},
    {S("[^"), S("x"), true},
    {S("[^"), S("xy"), false},
    {S("a["), S("a["), false},
    {S("a["), S("a"), false},
    {S("[a-"), S("-"), true},
    {S("[a-"), S("b"), false},
    {S("[a-b"), S("b"), true},
    {S("x[ab"), S("xa"), true},
    {S("[ab*"), S("*"), true},
    {S("[ab*"), S("ab"), false},
    {S("[^a"), S("b"), true},
    {S("[^a"), S("a"), false},
    /* binary */
    {S("a\000b"), S("a\000b"), true},
    {S("a\000b"), S("a\000c"), false},
    {S("a?b"), S("a\000b"), true},
    {S("a*"), S("a\000\000"), true},
    {S("[\000-\005]"), S("\003"), true},
    {S("[\000-\005]"), S("\006"), false},
    {S("*\377"), S("ab\377"), true},
    {S("\351t\351"), S("\351t\351"), true},
    /* signed-char ranges */
    {S("[\001-\377]"), S("\200"), false},
    {S("[\001-\377]"), S("\000"), true},
    {S("[\001-\377]"), S("a"), false},
    {S("[a-\377]"), S("0"), true},
    {S("[a-\377]"), S("\200"), false},
    {S("[a-\377]"), S("\377"), true},
    {S("[\200-\377]"), S("\220"), true},
    {S("[\200-\377]"), S("a"), false},
    {S("[^\200-\377]"), S("a"), true},
};

static void print_bytes(const char *what, const char *p, size_t n)
{
    fprintf(stderr, "%s \"", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "\"\n");
}

static void test_redis_table(void **state)
{
    size_t bad = 0;

    for (size_t i = 0; i < sizeof(redis_cases) / sizeof(redis_cases[0]); i++) {
        const struct glob_case *c = &redis_cases[i];
        bool got = rc_glob_match(c->pat, c->plen, c->str, c->slen);

        if (got != c->want) {
            fprintf(stderr, "case %zu: want %d got %d\n", i, c->want, got);
            print_bytes("  pattern", c->pat, c->plen);
            print_bytes("  string ", c->str, c->slen);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* The length arguments, not NUL terminators, bound what is read. */
static void test_lengths_not_terminators(void **state)
{
    assert_true(rc_glob_match("abXXX", 2, "abYYY", 2));
    assert_false(rc_glob_match("abc", 3, "abcd", 4));
    assert_true(rc_glob_match("a*", 2, "a\0b", 3));
    /* A class cut short by plen is unterminated even if ']' follows in memory. */
    assert_true(rc_glob_match("[ab]", 2, "a", 1));
    assert_false(rc_glob_match("[ab]", 2, "]", 1));
    /* A '\' cut short by plen is a trailing backslash. */
    assert_true(rc_glob_match("\\*", 1, "\\", 1));
    assert_false(rc_glob_match("\\*", 1, "*", 1));
    /* An empty string matches only the empty pattern (a NULL pointer too). */
    assert_true(rc_glob_match(NULL, 0, NULL, 0));
    assert_false(rc_glob_match("*", 1, NULL, 0));
}

static char *repeat(const char *unit, size_t times, const char *tail)
{
    size_t ul = strlen(unit), tl = strlen(tail);
    char *p = malloc(ul * times + tl + 1);

    assert_non_null(p);
    for (size_t i = 0; i < times; i++)
        memcpy(p + i * ul, unit, ul);
    memcpy(p + ul * times, tail, tl + 1);
    return p;
}

static bool match_cstr(const char *pat, const char *str)
{
    return rc_glob_match(pat, strlen(pat), str, strlen(str));
}

/* Patterns that take a backtracking matcher exponential time. */
static void test_pathological(void **state)
{
    char *as = repeat("a", 200000, "");
    char *asb = repeat("a", 200000, "b");
    char *many = repeat("*a", 500, "b");

    assert_false(match_cstr("a*a*a*a*a*a*a*b", as));
    assert_true(match_cstr("a*a*a*a*a*a*a*b", asb));
    assert_true(match_cstr("a*a*a*a*a*a*a*a", as));
    assert_false(match_cstr("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c", as));
    assert_false(match_cstr(many, as));
    assert_true(match_cstr(many, asb));
    assert_false(match_cstr("*?*?*?*?*?*?*?*?*?*?*?*?*?*?*?*[b]", as));
    free(as);
    free(asb);
    free(many);
}

/* Redis stops recursing 1000 stars deep: the 1001st star run must be the end
 * of the pattern or nothing matches. Answers taken from redis-server 7.0.15
 * (KEYS), string lengths as there. */
static void test_star_nesting_limit(void **state)
{
    static const struct {
        const char *unit;
        size_t times;
        const char *tail;
        size_t slen;
        bool want;
    } cases[] = {
        {"a*", 1000, "a", 1005, true},  {"a*", 1000, "", 1005, true},
        {"*a", 1000, "", 1005, true},   {"*a", 1000, "*", 1005, true},
        {"**a", 1000, "", 1005, true},  {"a*", 1000, "b", 30, false},
        {"a*", 1001, "a", 1006, false}, {"a*", 1001, "", 1006, true},
        {"*a", 1001, "", 1006, false},  {"*a", 1001, "*", 1006, false},
        {"**a", 1001, "", 1006, false}, {"a*", 1002, "", 1007, false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *pat = repeat(cases[i].unit, cases[i].times, cases[i].tail);
        char *str = repeat("a", cases[i].slen, "");

        if (match_cstr(pat, str) != cases[i].want)
            fail_msg("nesting case %zu: want %d", i, cases[i].want);
        free(pat);
        free(str);
    }
}

/* Typical PSUBSCRIBE shapes, as a sanity check of the common path. */
static void test_common_patterns(void **state)
{
    assert_true(match_cstr("news.*", "news.tech"));
    assert_true(match_cstr("news.*", "news."));
    assert_false(match_cstr("news.*", "news"));
    assert_false(match_cstr("news.*", "sports.tech"));
    assert_true(match_cstr("*.tech", "news.tech"));
    assert_true(match_cstr("user:[0-9]*:events", "user:42:events"));
    assert_false(match_cstr("user:[0-9]*:events", "user:x2:events"));
    assert_true(match_cstr("__keyspace@0__:*", "__keyspace@0__:foo"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_table),     cmocka_unit_test(test_lengths_not_terminators),
        cmocka_unit_test(test_pathological),    cmocka_unit_test(test_star_nesting_limit),
        cmocka_unit_test(test_common_patterns),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
