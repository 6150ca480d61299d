/* fuzz_glob.c -- libFuzzer harness for rc_glob_match(), checked against a reference.
 *
 * Input layout: the first byte is the pattern length (clamped to what is
 * left), then the pattern, then the string. Both are copied into buffers of
 * exactly their length so ASan reports any read past plen or slen (Redis's
 * matcher relies on a NUL after the pattern; ours must not).
 *
 * The answer is compared with a second matcher written here the obvious
 * way: a transcription of Redis's recursive stringmatchlen() structure
 * (recursion at every star, nesting cut at 1000, no skip-ahead) with classes
 * parsed into a 256-entry table. It is exponential, so it runs under a step
 * budget (loop passes, star positions and class work all count) and the
 * comparison is skipped when the budget runs out. A second property needs
 * no reference: a pattern made of the string with every byte escaped
 * matches that string.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REF_STEPS    (1L << 16)
#define REF_NEST_MAX 1000

static long ref_budget;

/* Parses a class whose body starts at p[i] (just after '['); marks the bytes
 * it accepts in set[] and returns the index just past the class. */
static size_t ref_class(const uint8_t *p, size_t n, size_t i, bool set[256])
{
    bool neg = false;

    /* Filling the table is charged to the step budget too. */
    ref_budget -= 8;
    memset(set, 0, 256 * sizeof(bool));
    if (i < n && p[i] == '^') {
        neg = true;
        i++;
    }
    while (i < n) {
        ref_budget--;
        if (p[i] == '\\' && i + 1 < n) {
            set[p[i + 1]] = true;
            i += 2;
        } else if (p[i] == ']') {
            i++;
            break;
        } else if (i + 2 < n && p[i + 1] == '-') {
            /* Redis compares plain (signed) chars. */
            int a = (int8_t)p[i], b = (int8_t)p[i + 2];

            if (a > b) {
                int t = a;
                a = b;
                b = t;
            }
            for (int v = a; v <= b; v++)
                set[(uint8_t)v] = true;
            ref_budget -= (b - a) / 8;
            i += 3;
        } else {
            set[p[i]] = true;
            i++;
        }
    }
    if (neg) {
        for (int v = 0; v < 256; v++)
            set[v] = !set[v];
    }
    return i;
}

/* Returns 1 on a match, 0 on none, -1 when the step budget ran out. */
static int ref_match(const uint8_t *p, size_t pn, const uint8_t *s, size_t sn, int nest)
{
    size_t pi = 0, si = 0;

    if (nest > REF_NEST_MAX)
        return 0;
    while (pi < pn && si < sn) {
        bool ok;

        if (--ref_budget < 0)
            return -1;
        if (p[pi] == '*') {
            while (pi + 1 < pn && p[pi + 1] == '*')
                pi++;
            if (pi + 1 == pn)
                return 1;
            for (size_t k = si; k < sn; k++) {
                int r;

                if (--ref_budget < 0)
                    return -1;
                r = ref_match(p + pi + 1, pn - pi - 1, s + k, sn - k, nest + 1);

                if (r != 0)
                    return r;
            }
            return 0;
        }
        if (p[pi] == '?') {
            ok = true;
            pi++;
        } else if (p[pi] == '[') {
            bool set[256];

            pi = ref_class(p, pn, pi + 1, set);
            ok = set[s[si]];
        } else if (p[pi] == '\\' && pi + 1 < pn) {
            ok = p[pi + 1] == s[si];
            pi += 2;
        } else {
            ok = p[pi] == s[si];
            pi++;
        }
        if (!ok)
            return 0;
        si++;
        if (si == sn) {
            while (pi < pn && p[pi] == '*')
                pi++;
        }
    }
    return pi == pn && si == sn;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t plen, slen;
    char *pat, *str;
    bool got;
    int want;

    if (size == 0)
        return 0;
    plen = data[0] < size - 1 ? data[0] : size - 1;
    slen = size - 1 - plen;
    /* malloc(0) may return NULL; the matcher must cope with NULL, 0. */
    pat = plen ? malloc(plen) : NULL;
    str = slen ? malloc(slen) : NULL;
    if ((plen && !pat) || (slen && !str))
        abort();
    if (plen)
        memcpy(pat, data + 1, plen);
    if (slen)
        memcpy(str, data + 1 + plen, slen);

    got = rc_glob_match(pat, plen, str, slen);
    ref_budget = REF_STEPS;
    want = ref_match((const uint8_t *)pat, plen, (const uint8_t *)str, slen, 0);
    if (want >= 0 && got != (want == 1))
        abort();

    /* Escaping every byte of the string gives a pattern that matches it. */
    if (slen <= 4096) {
        char *esc = malloc(2 * slen + 1);

        if (!esc)
            abort();
        for (size_t i = 0; i < slen; i++) {
            esc[2 * i] = '\\';
            esc[2 * i + 1] = str[i];
        }
        if (!rc_glob_match(esc, 2 * slen, str, slen))
            abort();
        free(esc);
    }
    free(pat);
    free(str);
    return 0;
}
