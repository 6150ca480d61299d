/* glob.c -- Redis-compatible glob matching without exponential backtracking.
 *
 * The result is meant to be byte-for-byte what Redis 7's stringmatchlen()
 * answers (nocase off), quirks included, because clients see it through
 * PSUBSCRIBE and PUBSUB CHANNELS. Redis matches by recursing at every '*';
 * here the same language is matched with the classic two-cursor loop that
 * only ever backtracks to the most recent star: every token other than '*'
 * consumes exactly one byte, so if the rest of the pattern after the latest
 * star cannot match from any later position, giving an earlier star more
 * bytes cannot help either (this is the argument behind Redis's own
 * skipLongerMatches guard). The cost is O(pattern * string) in the worst case
 * and linear for the usual "prefix.*" pattern.
 *
 * Quirks reproduced on purpose (the unit test holds a table checked against a
 * real redis-server 7.0):
 *   - an empty string matches only the empty pattern, so "*" does not match "";
 *   - '\' escapes the next byte; a trailing '\' matches a literal '\';
 *   - in a class, "\x" is the literal x; "a-z" is a range whose ends may be
 *     reversed; a range end may be ']' ("[a-]" is the range ']'..'a');
 *     ranges compare bytes as signed chars, as Redis does on x86-64 and
 *     arm64-with-signed-char builds, so bytes >= 0x80 sort below 0x00;
 *   - an unterminated class ("[abc" at the end of the pattern) acts as if it
 *     were closed at the end of the pattern; "[" alone never matches and
 *     "[^" matches any one byte;
 *   - Redis gives up when '*' recursion nests deeper than 1000, which means a
 *     pattern whose 1001st star (runs of stars count once) is followed by
 *     anything never matches. The same rule is applied here explicitly.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "glob.h"

#include <stdint.h>

/* Redis refuses to recurse past this many nested stars. */
#define STAR_NEST_MAX 1000

/* Matches the single-byte token starting at pat[*ip] (anything but '*')
 * against byte c and moves *ip past the token. How far the token reaches
 * depends only on the pattern, never on c. */
static bool match_one(const unsigned char *pat, size_t plen, size_t *ip, unsigned char c)
{
    size_t i = *ip;
    bool hit = false;

    switch (pat[i]) {
    case '?':
        hit = true;
        i++;
        break;
    case '[': {
        bool neg;

        i++;
        neg = i < plen && pat[i] == '^';
        if (neg)
            i++;
        /* Each pass moves i forward by at least one, so this ends. */
        for (;;) {
            if (i >= plen) {
                /* Unterminated class: it ends with the pattern. */
                break;
            }
            if (pat[i] == '\\' && plen - i >= 2) {
                i++;
                if (pat[i] == c)
                    hit = true;
            } else if (pat[i] == ']') {
                i++;
                break;
            } else if (plen - i >= 3 && pat[i + 1] == '-') {
                /* Redis reads these through plain (signed) char. */
                int lo = (signed char)pat[i];     /* NOLINT(bugprone-signed-char-misuse) */
                int hi = (signed char)pat[i + 2]; /* NOLINT(bugprone-signed-char-misuse) */
                int v = (signed char)c;           /* NOLINT(bugprone-signed-char-misuse) */

                if (lo > hi) {
                    int t = lo;
                    lo = hi;
                    hi = t;
                }
                if (v >= lo && v <= hi)
                    hit = true;
                i += 2;
            } else if (pat[i] == c) {
                hit = true;
            }
            i++;
        }
        if (neg)
            hit = !hit;
        break;
    }
    case '\\':
        if (plen - i >= 2)
            i++;
        hit = pat[i] == c;
        i++;
        break;
    default:
        hit = pat[i] == c;
        i++;
        break;
    }
    *ip = i;
    return hit;
}

bool rc_glob_match(const char *pattern, size_t plen, const char *string, size_t slen)
{
    const unsigned char *pat = (const unsigned char *)pattern;
    const unsigned char *str = (const unsigned char *)string;
    size_t pi = 0, si = 0;
    size_t star_pi = SIZE_MAX; /* pattern index just after the latest star run */
    size_t star_si = 0;        /* string index that star run currently stops at */
    unsigned stars = 0;

    /* Redis's loop needs a byte of string to look at before it reads any
     * pattern, so nothing but the empty pattern matches the empty string. */
    if (slen == 0)
        return plen == 0;

    /* Every pass advances si, pi or star_si, each bounded by its length. */
    for (;;) {
        if (si == slen) {
            /* The string ran out right after a token: only stars may remain. */
            while (pi < plen && pat[pi] == '*')
                pi++;
            if (pi == plen)
                return true;
        } else if (pi < plen && pat[pi] == '*') {
            while (pi + 1 < plen && pat[pi + 1] == '*')
                pi++;
            if (pi + 1 == plen)
                return true;
            /* Stars are entered in order and never twice, so this counts
             * Redis's recursion depth at this point. */
            if (++stars > STAR_NEST_MAX)
                return false;
            star_pi = pi + 1;
            star_si = si;
            pi = star_pi;
            continue;
        } else if (pi < plen) {
            size_t next = pi;

            if (match_one(pat, plen, &next, str[si])) {
                pi = next;
                si++;
                continue;
            }
        }
        /* Mismatch: let the latest star swallow one more byte. A star never
         * leaves the rest of the pattern an empty string to match. */
        if (star_pi == SIZE_MAX || star_si + 1 >= slen)
            return false;
        star_si++;
        si = star_si;
        pi = star_pi;
    }
}
