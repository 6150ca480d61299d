/* codecs.h -- the table of wire formats the server speaks.
 *
 * Each entry is a struct rc_codec (core/codec.h): an id and "encode this
 * message into these bytes". The engine is created with this table and
 * encodes every message once per format present among its receivers. Adding
 * a format is one file with its encoder and one entry here.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_CODECS_H
#define RC_CODECS_H

#include "codec.h"

/* Format ids: indexes into rc_codecs[]. */
enum rc_fmt {
    RC_FMT_RESP2, /* RESP2 array: Redis clients before HELLO 3 */
    RC_FMT_RESP3, /* RESP3 push: clients after HELLO 3 */
    RC_FMT_SSE,   /* Server-Sent Events: GET /events */
    RC_FMT_WS,    /* WebSocket text frame: GET /ws */
    RC_FMT__COUNT
};

extern const struct rc_codec *const rc_codecs[RC_FMT__COUNT];

/* codec_http.c */
extern const struct rc_codec rc_codec_sse;
extern const struct rc_codec rc_codec_ws;

#endif
