/* codec.h -- what the engine needs from a wire format: "encode this message into these bytes".
 *
 * The engine knows messages as data (kind, pattern, channel, payload, and a
 * sequence stamp where the channel has one) and subscribers by a small
 * integer, their format id. It asks the codec registered under that id for
 * the exact size of a message and then for the bytes, written once into a
 * shared slab that every subscriber of that format references. The codecs
 * themselves live in the proto layer (proto/codecs.c: the table), so the
 * engine depends on this interface only, never on RESP or HTTP.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_CODEC_H
#define RC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most formats one engine can serve at once (ids 0 .. RC_FMT_MAX - 1). */
#define RC_FMT_MAX 8

enum rc_msg_kind {
    RC_MSG_MESSAGE,  /* a channel subscriber's delivery */
    RC_MSG_PMESSAGE, /* a pattern subscriber's delivery (pat is set) */
    RC_MSG_SMESSAGE, /* a shard channel subscriber's delivery */
};

/* One delivery as data. Every pointer is borrowed for the call. */
struct rc_msgview {
    enum rc_msg_kind kind;
    const char *pat; /* RC_MSG_PMESSAGE only */
    size_t plen;
    const char *chan;
    size_t clen;
    const char *payload;
    size_t len;
    bool has_seq; /* the subscriber asked for sequence stamps and the channel has them */
    uint64_t epoch, seq;
};

struct rc_codec {
    uint8_t id;       /* index in the table the engine was given */
    const char *name; /* "resp2", "resp3", ... (INFO, logs) */
    /* Exact encoded size of m. */
    size_t (*len)(const struct rc_msgview *m);
    /* Writes m's encoding (len(m) bytes) to dst; returns the bytes written. */
    size_t (*write)(char *dst, const struct rc_msgview *m);
};

#endif
