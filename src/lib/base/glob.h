/* glob.h -- Redis-compatible glob matching for PSUBSCRIBE and PUBSUB CHANNELS.
 *
 * Semantics follow Redis's stringmatchlen(): '*' any run, '?' one byte,
 * '[abc]', '[^abc]', '[a-z]' (reversed ranges allowed), '\' escapes the next
 * byte, all binary safe. Matching is bounded: a pattern with many stars cannot
 * make one match take exponential time.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_GLOB_H
#define RC_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* True when str[0..slen) matches pat[0..plen). */
bool rc_glob_match(const char *pat, size_t plen, const char *str, size_t slen);

#endif
