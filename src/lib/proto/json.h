/* json.h -- the little JSON the HTTP transports need: strings out, string arrays in, RESP to JSON.
 *
 * Server-Sent Events and WebSocket messages carry channel names and payloads
 * as JSON strings. A payload is bytes, a JSON string is Unicode: a payload
 * that is valid UTF-8 goes as a string; one that is not goes base64-encoded
 * under another key ("data_b64"), so nothing is ever altered in transit.
 * Channel and pattern names that are not valid UTF-8 have each invalid byte
 * written as the code point of the same value (\u00XX), which keeps the JSON
 * valid; such names are rare and the mapping is documented (docs/http.md).
 *
 * WebSocket clients send commands as JSON arrays (["PUBLISH","ch","msg"]);
 * rc_json_parse_args() turns one into arguments. Replies are built by the
 * ordinary RESP command handlers and turned into JSON by rc_resp_to_json().
 * Nothing here touches a socket.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_JSON_H
#define RC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, at most U+10FFFF. */
bool rc_utf8_valid(const char *p, size_t n);

/* A JSON string literal of p[0..n), quotes included: its exact length, and
 * writing it to dst (returns the end). Invalid UTF-8 bytes become \u00XX. */
size_t rc_json_str_len(const char *p, size_t n);
char *rc_json_str_write(char *dst, const char *p, size_t n);

/* Base64 (RFC 4648, with padding) of n bytes: its length, and writing it to
 * dst (exactly that many bytes, no terminator; returns the end). */
static inline size_t rc_b64_len(size_t n)
{
    return 4 * ((n + 2) / 3);
}
char *rc_b64_write(char *dst, const void *p, size_t n);

/* A payload as a JSON member: "data":"<text>" when p is valid UTF-8, else
 * "data_b64":"<base64>". Length, and writing (returns the end). */
size_t rc_json_data_len(const char *p, size_t n);
char *rc_json_data_write(char *dst, const char *p, size_t n);

/* Parses a JSON array of strings, numbers, booleans and nulls (a command:
 * ["SUBSCRIBE","quotes.AAPL"]) into arguments: strings are unescaped, other
 * values keep their JSON text. The arguments are written back to back to
 * out; offs[i]/lens[i] say where. Returns the count (at most max), or
 * -EINVAL with *err set to a static message. */
int rc_json_parse_args(const char *p, size_t n, struct rc_buf *out, size_t *offs, size_t *lens,
                       int max, const char **err);

/* Converts the RESP value at p[0..n) (a reply our encoders made, RESP2 or
 * RESP3) to JSON appended to out: simple and bulk strings to strings (bulk
 * strings that are not UTF-8 to {"data_b64":...}), errors to {"error":"..."},
 * integers and doubles to numbers, nulls to null, arrays, sets and pushes to
 * arrays, maps to objects, booleans to true/false. Returns the RESP bytes
 * consumed, 0 when the value is incomplete, -EBADMSG when it is not RESP. */
long rc_resp_to_json(const char *p, size_t n, struct rc_buf *out);

#endif
