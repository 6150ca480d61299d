/* fuzz_ws.c -- libFuzzer harness for the WebSocket frame parser and the JSON code.
 *
 * The first byte picks what the rest is fed to:
 *   0  rc_ws_parse_header (two size limits), then unmasking the payload
 *      when it is complete, and the server framing of the same length;
 *   1  rc_json_parse_args: arguments inside the output, and each string
 *      argument written back with rc_json_str_write parses to itself;
 *   2  rc_resp_to_json: consumes within the input, emits valid UTF-8;
 *   3  the SSE and WebSocket codecs: len() equals what write() writes, for
 *      a message cut from the input.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codecs.h"
#include "json.h"
#include "ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ws: check failed at line %d: %s\n", __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void frames(const unsigned char *p, size_t n)
{
    static const uint64_t limits[] = {125, 1u << 20};

    for (size_t l = 0; l < 2; l++) {
        struct rc_ws_frame f;
        int r = rc_ws_parse_header(p, n, limits[l], &f);
        CHECK(r == 0 || r == 1 || r == -RC_WS_PROTOCOL_ERR || r == -RC_WS_TOO_BIG);
        if (r != 1)
            continue;
        CHECK(f.hdr <= n && f.len <= limits[l]);
        CHECK(f.op < RC_WS_CLOSE || (f.fin && f.len <= 125));
        if (n - f.hdr >= f.len) {
            unsigned char *pl = malloc(f.len ? (size_t)f.len : 1);
            unsigned char hdr[10];
            memcpy(pl, p + f.hdr, (size_t)f.len);
            rc_ws_unmask(pl, (size_t)f.len, f.key, 0);
            rc_ws_unmask(pl, (size_t)f.len, f.key, 0); /* twice: the original again */
            CHECK(!f.len || !memcmp(pl, p + f.hdr, (size_t)f.len));
            CHECK(rc_ws_header_write(hdr, RC_WS_TEXT, f.len) == rc_ws_header_len(f.len));
            free(pl);
        }
    }
}

static void args(const char *p, size_t n)
{
    struct rc_buf out = {0}, again = {0};
    size_t offs[64], lens[64], offs2[1], lens2[1];
    const char *err = NULL;
    int argc = rc_json_parse_args(p, n, &out, offs, lens, 64, &err);

    CHECK(argc == -EINVAL ? err != NULL : (argc >= 0 && argc <= 64));
    for (int i = 0; i < argc; i++) {
        char *w;
        size_t len;
        CHECK(offs[i] + lens[i] <= out.len);
        if (!rc_utf8_valid(out.p + offs[i], lens[i]))
            continue;
        /* ["<arg>"] parses back to the same argument. */
        len = rc_json_str_len(out.p + offs[i], lens[i]);
        w = malloc(len + 2);
        w[0] = '[';
        CHECK(rc_json_str_write(w + 1, out.p + offs[i], lens[i]) == w + 1 + len);
        w[len + 1] = ']';
        CHECK(rc_json_parse_args(w, len + 2, &again, offs2, lens2, 1, &err) == 1);
        CHECK(lens2[0] == lens[i] && !memcmp(again.p + offs2[0], out.p + offs[i], lens[i]));
        free(w);
    }
    rc_buf_free(&out);
    rc_buf_free(&again);
}

static void resp(const char *p, size_t n)
{
    struct rc_buf out = {0};
    long r = rc_resp_to_json(p, n, &out);

    CHECK(r == 0 || r == -EBADMSG || (r > 0 && (size_t)r <= n));
    if (r > 0)
        CHECK(rc_utf8_valid(out.p, out.len));
    else
        CHECK(out.len == 0);
    rc_buf_free(&out);
}

static void codecs(const char *p, size_t n)
{
    struct rc_msgview m = {0};
    size_t a = n / 3, b = n / 2;
    const struct rc_codec *cs[] = {&rc_codec_sse, &rc_codec_ws};

    m.kind = n % 3 == 0 ? RC_MSG_MESSAGE : n % 3 == 1 ? RC_MSG_PMESSAGE : RC_MSG_SMESSAGE;
    if (m.kind == RC_MSG_PMESSAGE) {
        m.pat = p;
        m.plen = a;
    }
    m.chan = p + a;
    m.clen = b - a;
    m.payload = p + b;
    m.len = n - b;
    m.has_seq = n & 1;
    m.epoch = n * 7919u;
    m.seq = n;
    for (size_t i = 0; i < 2; i++) {
        size_t want = cs[i]->len(&m);
        char *dst = malloc(want + 1);
        dst[want] = 0x55;
        CHECK(cs[i]->write(dst, &m) == want);
        CHECK((unsigned char)dst[want] == 0x55);
        free(dst);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf;

    if (size < 1)
        return 0;
    buf = malloc(size - 1 ? size - 1 : 1);
    memcpy(buf, data + 1, size - 1);
    switch (data[0] & 3) {
    case 0: frames((const unsigned char *)buf, size - 1); break;
    case 1: args(buf, size - 1); break;
    case 2: resp(buf, size - 1); break;
    default: codecs(buf, size - 1); break;
    }
    free(buf);
    return 0;
}
