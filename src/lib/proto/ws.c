/* ws.c -- WebSocket handshake key, client frame headers, server frame headers (see ws.h).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "ws.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool rc_ws_accept_key(const char *key, size_t klen, char out[29])
{
    unsigned char raw[19], digest[SHA_DIGEST_LENGTH];
    char cat[24 + sizeof(guid)];

    /* The key is base64 of 16 random bytes: 24 characters, "==" at the end. */
    if (klen != 24 || key[22] != '=' || key[23] != '=' ||
        EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18)
        return false;
    memcpy(cat, key, 24);
    memcpy(cat + 24, guid, sizeof(guid) - 1);
    SHA1((const unsigned char *)cat, 24 + sizeof(guid) - 1, digest);
    return EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH) == 28;
}

int rc_ws_parse_header(const unsigned char *buf, size_t n, uint64_t max, struct rc_ws_frame *f)
{
    size_t pos = 2;
    uint64_t len;

    if (n < 2)
        return 0;
    f->fin = buf[0] & 0x80;
    f->op = buf[0] & 0x0f;
    /* No extension was negotiated: the reserved bits must be 0. */
    if (buf[0] & 0x70)
        return -RC_WS_PROTOCOL_ERR;
    if (!(f->op <= RC_WS_BINARY || (f->op >= RC_WS_CLOSE && f->op <= RC_WS_PONG)))
        return -RC_WS_PROTOCOL_ERR;
    /* Client frames are masked (RFC 6455 5.1). */
    if (!(buf[1] & 0x80))
        return -RC_WS_PROTOCOL_ERR;
    len = buf[1] & 0x7f;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)buf[2] << 8 | buf[3];
        if (len < 126)
            return -RC_WS_PROTOCOL_ERR; /* not the minimal encoding */
        pos = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | buf[2 + i];
        if (len >> 63 || len <= 0xffff)
            return -RC_WS_PROTOCOL_ERR;
        pos = 10;
    }
    if (f->op >= RC_WS_CLOSE && (!f->fin || len > 125))
        return -RC_WS_PROTOCOL_ERR;
    if (len > max)
        return -RC_WS_TOO_BIG;
    if (n < pos + 4)
        return 0;
    memcpy(f->key, buf + pos, 4);
    f->len = len;
    f->hdr = pos + 4;
    return 1;
}

void rc_ws_unmask(unsigned char *payload, size_t len, const unsigned char key[4], uint64_t off)
{
    for (size_t i = 0; i < len; i++)
        payload[i] ^= key[(off + i) & 3];
}

size_t rc_ws_header_len(uint64_t len)
{
    return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

size_t rc_ws_header_write(unsigned char *dst, enum rc_ws_op op, uint64_t len)
{
    dst[0] = (unsigned char)(0x80 | op);
    if (len < 126) {
        dst[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        dst[1] = 126;
        dst[2] = (unsigned char)(len >> 8);
        dst[3] = (unsigned char)len;
        return 4;
    }
    dst[1] = 127;
    for (int i = 0; i < 8; i++)
        dst[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}
