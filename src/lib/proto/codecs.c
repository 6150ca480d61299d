/* codecs.c -- the codec table: one entry per wire format, indexed by its id.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "codecs.h"

#include "resp.h"

_Static_assert(RC_FMT__COUNT <= RC_FMT_MAX, "more formats than the engine can hold");

const struct rc_codec *const rc_codecs[RC_FMT__COUNT] = {
    [RC_FMT_RESP2] = &rc_codec_resp2,
    [RC_FMT_RESP3] = &rc_codec_resp3,
    [RC_FMT_SSE] = &rc_codec_sse,
    [RC_FMT_WS] = &rc_codec_ws,
};
