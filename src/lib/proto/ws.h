/* ws.h -- WebSocket (RFC 6455): the opening handshake's key, frame parsing and framing.
 *
 * Our own frame codec rather than wslay's: the server's frames must be
 * encoded once and shared by every subscriber (a server-to-client frame is
 * unmasked, so its bytes are the same for all), which means writing a frame
 * header straight in front of the message in a shared slab -- a few lines
 * here, where a general library would want to own the buffers. Client frames
 * are parsed in place from the received bytes and unmasked there. The
 * handshake's SHA-1 and base64 are OpenSSL's.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_WS_H
#define RC_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rc_ws_op {
    RC_WS_CONT = 0x0,
    RC_WS_TEXT = 0x1,
    RC_WS_BINARY = 0x2,
    RC_WS_CLOSE = 0x8,
    RC_WS_PING = 0x9,
    RC_WS_PONG = 0xa,
};

/* Close status codes (RFC 6455 7.4.1). */
#define RC_WS_NORMAL       1000
#define RC_WS_GOING_AWAY   1001
#define RC_WS_PROTOCOL_ERR 1002
#define RC_WS_UNSUPPORTED  1003
#define RC_WS_BAD_DATA     1007
#define RC_WS_TOO_BIG      1009

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)),
 * 28 characters written to out (at least 29 bytes, NUL-terminated). Returns
 * false when the key is not the base64 of 16 bytes. */
bool rc_ws_accept_key(const char *key, size_t klen, char out[29]);

struct rc_ws_frame {
    bool fin;
    uint8_t op;
    uint64_t len;         /* payload length */
    size_t hdr;           /* header bytes (payload starts there) */
    unsigned char key[4]; /* masking key */
};

/* Parses the frame header at buf[0..n) of a client frame. Returns 1 when the
 * header is complete (*f filled; the payload may not be), 0 when more bytes
 * are needed, or -status: -RC_WS_PROTOCOL_ERR for a frame a client must not
 * send (unmasked, reserved bits or opcodes, a fragmented or over-125-byte
 * control frame), -RC_WS_TOO_BIG when the payload exceeds max. */
int rc_ws_parse_header(const unsigned char *buf, size_t n, uint64_t max, struct rc_ws_frame *f);

/* Unmasks payload[0..len) in place; off is the payload offset it starts at
 * (for payloads unmasked in pieces). */
void rc_ws_unmask(unsigned char *payload, size_t len, const unsigned char key[4], uint64_t off);

/* The header of an unmasked server frame (FIN set) for a payload of len
 * bytes: its size (2, 4 or 10), and writing it (returns the size). */
size_t rc_ws_header_len(uint64_t len);
size_t rc_ws_header_write(unsigned char *dst, enum rc_ws_op op, uint64_t len);

#endif
