/* test_upstream_map.c -- channel names and Redis globs as NATS subjects (upstream_map.c).
 *
 * The mapping must be a superset of the glob: every subject a pattern
 * matches under Redis's rules must be matched by the NATS subject it maps
 * to, since the engine filters locally but cannot get back what NATS never
 * sent. Besides the table of expected mappings, a brute-force check walks a
 * set of subjects and asserts that superset property for every pattern.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "glob.h"
#include "upstream.h"

static const char *map(const char *pat, char *out, size_t n)
{
    const char *why = rc_upstream_map_pattern(pat, strlen(pat), out, n);
    return why ? NULL : out;
}

static void test_channels(void **state)
{
    static const char *const ok[] = {"quotes.AAPL", "a", "a.b.c", "x*y", "a>", "ü.ß", "-_:/#"};
    static const char *const bad[] = {"",  ".a",  "a.", "a..b",  "a b",    "a\tb",
                                      "*", "a.*", ">",  "a.>.b", "a\r\nb", "\x7f"};
    char big[RC_UPSTREAM_MAX_SUBJECT + 2];

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_null(rc_upstream_check_channel(ok[i], strlen(ok[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_non_null(rc_upstream_check_channel(bad[i], strlen(bad[i])));
    assert_non_null(rc_upstream_check_channel("a\0b", 3)); /* NUL: a C string would cut it */
    memset(big, 'x', sizeof(big));
    assert_null(rc_upstream_check_channel(big, RC_UPSTREAM_MAX_SUBJECT));
    assert_non_null(rc_upstream_check_channel(big, RC_UPSTREAM_MAX_SUBJECT + 1));
}

static void test_patterns(void **state)
{
    static const char *const table[][2] = {
        {"quotes.*", "quotes.>"},       /* Redis '*' spans dots */
        {"quotes.AAPL", "quotes.AAPL"}, /* no glob at all */
        {"*", ">"},
        {"quotes*", ">"},
        {"quotes.A*", "quotes.>"},
        {"q.?", "q.>"},
        {"q.[AB].bid", "q.*.bid"}, /* a class without '.' is one token */
        {"q.x[0-9].bid", "q.*.bid"},
        {"q.[^A].bid", "q.>"}, /* negated: admits '.' */
        {"q.[.A].bid", "q.>"},
        {"q.[+-/].x", "q.>"}, /* the range holds '.' */
        {"q\\.a.b", "q.a.b"}, /* an escaped '.' is still a token boundary */
        {"q.\\*x", "q.*x"},   /* an escaped '*' is a literal byte */
        {"a.[AB].*.c", "a.*.>"},
    };
    static const char *const bad[] = {"", "q..*", "q.", ".q.*", "q.\\*", "q.>.*", "my q.*"};
    char out[RC_UPSTREAM_MAX_SUBJECT + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const char *got = map(table[i][0], out, sizeof(out));
        assert_non_null(got);
        assert_string_equal(got, table[i][1]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(map(bad[i], out, sizeof(out)));
    assert_null(map("abcdef", out, 4)); /* does not fit: refused, not cut */
}

static bool match(const char *sub, const char *subject)
{
    return rc_upstream_subject_match(sub, subject, strlen(subject));
}

static void test_subject_match(void **state)
{
    (void)state;
    assert_true(match("a.b", "a.b"));
    assert_false(match("a.b", "a.bc"));
    assert_false(match("a.b", "a"));
    assert_false(match("a", "a.b"));
    assert_true(match("a.*", "a.b"));
    assert_false(match("a.*", "a.b.c"));
    assert_false(match("a.*", "a"));
    assert_true(match("a.>", "a.b.c"));
    assert_true(match("a.>", "a.b"));
    assert_false(match("a.>", "a"));
    assert_true(match(">", "x"));
    assert_true(match("*.b.>", "a.b.c.d"));
    assert_false(match("*.b.>", "a.c.c.d"));
    assert_true(match("*", "abc"));
    assert_false(match("*", "a.b"));
}

/* Every valid subject a pattern matches under Redis's rules is matched by
 * the pattern's NATS subject. */
static void test_superset(void **state)
{
    static const char *const pats[] = {"quotes.*", "q.[AB].bid", "q.x[0-9].bid", "a.[AB].*.c",
                                       "*",        "q.?",        "q*.b",         "q.[^A].b",
                                       "q\\.a.b",  "?.b"};
    static const char *const subjects[] = {
        "quotes.A",   "quotes.A.B", "quotes",  "q.A.bid",   "q.C.bid", "q.x1.bid",
        "q.x1.x.bid", "a.A.c",      "a.A.x.c", "a.B.y.z.c", "q.a",     "q.ab",
        "q.a.b",      "q.B.b",      "qq.b",    "q.b",       "x.b",     "q.a.b.c"};
    char out[RC_UPSTREAM_MAX_SUBJECT + 1];

    (void)state;
    for (size_t p = 0; p < sizeof(pats) / sizeof(pats[0]); p++) {
        const char *sub = map(pats[p], out, sizeof(out));
        assert_non_null(sub);
        for (size_t k = 0; k < sizeof(subjects) / sizeof(subjects[0]); k++) {
            const char *subj = subjects[k];
            if (rc_glob_match(pats[p], strlen(pats[p]), subj, strlen(subj)) && !match(sub, subj))
                fail_msg("'%s' matches '%s' but its NATS subject '%s' does not", pats[p], subj,
                         sub);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_subject_match),
        cmocka_unit_test(test_superset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
