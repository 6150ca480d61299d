/* upstream_map.c -- channel names and Redis globs as NATS subjects.
 *
 * A channel maps to the NATS subject of the same bytes, so `quotes.AAPL` is
 * `quotes.AAPL` to every NATS client too. NATS is stricter than Redis about
 * names: a subject is '.'-separated tokens, none empty, with no whitespace,
 * and the tokens "*" and ">" are wildcards. A name that breaks those rules
 * cannot be carried, and the edge says so instead of dropping it silently.
 *
 * Patterns differ in meaning, not just syntax. A Redis '*' matches any bytes,
 * dots included ("quotes.*" matches "quotes.A.B"), and so does '?'; a NATS
 * '*' matches exactly one token. So the mapping must be a superset, never a
 * subset, of what the glob matches -- the engine filters every delivery by
 * the glob anyway, so a wider upstream subscription costs only traffic:
 *
 *   - literal tokens stay literal ('\' escapes resolved);
 *   - a token that can only ever match one token -- literal bytes and
 *     character classes that do not admit '.', e.g. "[AB]" or "x[0-9]" --
 *     becomes the NATS '*';
 *   - from the first token that can span a '.' ('*', '?', a class admitting
 *     '.'), everything is covered by ">".
 *
 * Whether a class admits '.' is asked of the glob matcher itself, so the
 * answer follows Redis's class rules (ranges, escapes, negation) exactly.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "upstream.h"

#include <string.h>

#include "glob.h"

static bool bad_byte(unsigned char c)
{
    return c <= ' ' || c == 0x7f;
}

/* One literal token (no glob meaning left): NULL or why NATS refuses it. */
static const char *check_token(const char *t, size_t n)
{
    if (n == 0)
        return "it has an empty token (a leading, trailing or double '.')";
    if (n == 1 && (t[0] == '*' || t[0] == '>'))
        return "'*' and '>' alone are NATS wildcards, not names";
    for (size_t i = 0; i < n; i++)
        if (bad_byte((unsigned char)t[i]))
            return "NATS subjects cannot hold spaces or control characters";
    return NULL;
}

const char *rc_upstream_check_channel(const char *name, size_t len)
{
    size_t start = 0;

    if (len == 0)
        return "NATS subjects cannot be empty";
    if (len > RC_UPSTREAM_MAX_SUBJECT)
        return "longer than the 1024 bytes the edge sends as a NATS subject";
    for (size_t i = 0; i <= len; i++) {
        if (i == len || name[i] == '.') {
            const char *why = check_token(name + start, i - start);
            if (why)
                return why;
            start = i + 1;
        }
    }
    return NULL;
}

/* The end of the class that opens at pat[i] == '[' (one past its ']', or
 * len when unterminated), scanned as glob.c scans it. */
static size_t class_end(const char *pat, size_t len, size_t i)
{
    i++;
    if (i < len && pat[i] == '^')
        i++;
    while (i < len) {
        if (pat[i] == '\\' && len - i >= 2) {
            i += 2;
        } else if (pat[i] == ']') {
            return i + 1;
        } else if (len - i >= 3 && pat[i + 1] == '-') {
            i += 3;
        } else {
            i++;
        }
    }
    return len;
}

/* Appends n bytes to out[*o] within outlen (one byte kept for the NUL). */
static bool put(char *out, size_t outlen, size_t *o, const char *p, size_t n)
{
    if (*o + n + 1 > outlen)
        return false;
    memcpy(out + *o, p, n);
    *o += n;
    return true;
}

const char *rc_upstream_map_pattern(const char *pat, size_t len, char *out, size_t outlen)
{
    static const char too_long[] = "longer than the 1024 bytes the edge sends as a NATS subject";
    char tok[RC_UPSTREAM_MAX_SUBJECT];
    size_t i = 0, o = 0;

    if (outlen > RC_UPSTREAM_MAX_SUBJECT + 1)
        outlen = RC_UPSTREAM_MAX_SUBJECT + 1;
    if (len == 0)
        return "NATS subjects cannot be empty";
    for (;;) {
        size_t n = 0;         /* literal bytes of this token, unescaped */
        bool one_tok = false; /* holds a class that matches exactly one non-'.' byte */
        bool spans = false;   /* may match across a '.' */

        while (i < len && pat[i] != '.' && !spans) {
            char c = pat[i];
            if (c == '*' || c == '?') {
                spans = true;
            } else if (c == '[') {
                size_t e = class_end(pat, len, i);
                if (rc_glob_match(pat + i, e - i, ".", 1))
                    spans = true;
                one_tok = true;
                i = e;
                continue;
            } else if (c == '\\' && len - i >= 2) {
                /* An escaped '.' is a '.' in the subject: a token boundary,
                 * which a literal-only token handles like any other. */
                if (pat[i + 1] == '.')
                    break;
                c = pat[++i];
            }
            if (!spans) {
                if (n == sizeof(tok))
                    return too_long;
                tok[n++] = c;
            }
            i++;
        }
        if (spans) {
            if (!put(out, outlen, &o, ">", 1))
                return too_long;
            break;
        }
        if (one_tok) {
            if (!put(out, outlen, &o, "*", 1))
                return too_long;
        } else {
            const char *why = check_token(tok, n);
            if (why)
                return why;
            if (!put(out, outlen, &o, tok, n))
                return too_long;
        }
        if (i >= len)
            break;
        /* pat[i] is '.', or '\' before an escaped '.'. */
        i += pat[i] == '\\' ? 2 : 1;
        if (!put(out, outlen, &o, ".", 1))
            return too_long;
        if (i == len)
            return check_token(pat + i, 0); /* "quotes." */
    }
    out[o] = '\0';
    return NULL;
}

bool rc_upstream_subject_match(const char *sub, const char *subject, size_t slen)
{
    size_t i = 0; /* start of the subject's current token */

    for (;;) {
        size_t tl = strcspn(sub, ".");
        size_t j = i;

        if (i >= slen)
            return false; /* the subscription has a token more than the subject */
        if (tl == 1 && sub[0] == '>' && sub[1] == '\0')
            return true; /* one or more tokens left */
        while (j < slen && subject[j] != '.')
            j++;
        if (!(tl == 1 && sub[0] == '*') && (tl != j - i || memcmp(sub, subject + i, tl) != 0))
            return false;
        sub += tl;
        if (*sub == '\0')
            return j == slen;
        if (j == slen)
            return false;
        sub++;
        i = j + 1;
    }
}
