/* fuzz_udp.c -- libFuzzer harness for the UDP datagram parser and the sequence tracker.
 *
 * The input is one datagram, copied into a buffer of exactly its length so
 * ASan reports any read past it. Properties checked besides "no crash":
 *  - a datagram rc_udp_parse() accepts yields exactly header.count messages
 *    through rc_udp_next(), each lying inside the datagram, and they end
 *    exactly at its last byte;
 *  - re-encoding those messages with the encoder gives the same bytes;
 *  - the tracker fed the datagram's sequence numbers (twice, the second time
 *    as an A/B copy) accepts each number once and only once.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "udp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rc_udp_seq tracker;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rc_udp_hdr h;
    struct rc_udp_msg m;
    const char *why = NULL;
    uint8_t *d = malloc(size ? size : 1), *re;
    size_t pos = RC_UDP_HDR_LEN, out;
    unsigned n = 0;

    if (!d)
        abort();
    memcpy(d, data, size);
    if (rc_udp_parse(d, size, &h, &why) < 0) {
        if (!why)
            abort();
        free(d);
        return 0;
    }
    re = malloc(size);
    if (!re)
        abort();
    out = rc_udp_put_hdr(re, &h);
    while (rc_udp_next(d, size, &pos, &m)) {
        if (m.chan < (const char *)d || m.payload + m.len > (const char *)d + size)
            abort();
        if (m.clen == 0 || pos > size)
            abort();
        if (out + rc_udp_msg_size(m.clen, m.len) > size)
            abort();
        out += rc_udp_put_msg(re + out, m.chan, m.clen, m.payload, m.len);
        n++;
    }
    if (n != h.count || pos != size || out != size || memcmp(re, d, size) != 0)
        abort();

    /* Persistent tracker across inputs, as a long-lived source sees them. */
    if (rc_udp_seq_session(&tracker, h.session)) {
        for (unsigned i = 0; i < h.count && i < 4096; i++) {
            uint64_t before = tracker.duplicates;
            bool first = rc_udp_seq_accept(&tracker, h.seq + i);
            if (rc_udp_seq_accept(&tracker, h.seq + i))
                abort(); /* the B copy */
            if (tracker.duplicates != before + 1 + !first)
                abort();
        }
        if (h.count == 0)
            rc_udp_seq_heartbeat(&tracker, h.seq);
    }
    free(re);
    free(d);
    return 0;
}
