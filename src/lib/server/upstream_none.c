/* upstream_none.c -- the NATS upstream in a build without libnats.
 *
 * libnats is an optional dependency (CMake: RINGCAST_NATS). Without it the
 * server is the same single-machine server, and an `upstream` setting is
 * refused when it is set -- in the config file, on the command line or
 * through the library -- with a message that says why, rather than being
 * accepted and ignored. INFO upstream says `upstream_support:no`.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include "upstream.h"

#include <errno.h>
#include <stdio.h>

#include "server.h"

bool rc_upstream_compiled(void)
{
    return false;
}

int rc_upstream_check_urls(const char *urls, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "this ringcast was built without NATS support (libnats was not found at build "
             "time; install libnats-dev and rebuild)");
    return -EINVAL;
}

void rc_upstream_interest(void *arg, enum rc_sub_kind kind, const char *name, size_t len, bool on)
{
}

int rc_upstream_start(struct rc_server *s)
{
    return 0;
}

void rc_upstream_free(struct rc_server *s)
{
}

void rc_upstream_library_exit(void)
{
}

const char *rc_upstream_refuse(struct rc_server *s, enum rc_sub_kind kind, const char *name,
                               size_t len, size_t payload_len)
{
    return NULL;
}

void rc_upstream_forward(struct rc_server *s, const char *chan, size_t clen, const char *payload,
                         size_t len)
{
}

bool rc_upstream_counters(struct rc_server *s, struct rc_upstream_counters *c)
{
    return false;
}

void rc_upstream_info(struct rc_server *s, struct rc_buf *b)
{
    rc_buf_appendf(b, "# Upstream\r\nupstream_support:no\r\nupstream_state:off\r\n\r\n");
}
