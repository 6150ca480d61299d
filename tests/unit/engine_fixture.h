/* engine_fixture.h -- a server with no backend, for server-level unit tests without I/O.
 *
 * Connections are one end of socketpairs that no backend ever reads:
 * requests go in through rc_conn_input() and each test reads back what a
 * client would receive from its queue. Included by the test files that
 * drive the server without I/O (test_cmd_pubsub.c, test_mdata.c); include cmocka first.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_ENGINE_FIXTURE_H
#define RC_ENGINE_FIXTURE_H

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server.h"

struct fixture {
    struct rc_server *s;
    int peers[8];
    int n;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct rc_config cfg;
    rc_config_init(&cfg);
    cfg.workers = 1; /* one loop: the tests drive it */
    f->s = rc_server_new(&cfg);
    rc_config_free(&cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rc_server_free(f->s);
    for (int i = 0; i < f->n; i++)
        close(f->peers[i]);
    free(f);
    return 0;
}

/* A new connection; at most 8 per test. */
static struct rc_conn *client(struct fixture *f)
{
    int sv[2];
    assert_true(f->n < 8);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    f->peers[f->n++] = sv[1];
    return rc_conn_accepted(f->s, sv[0]);
}

static void send_cmd(struct fixture *f, struct rc_conn *c, const char *text)
{
    rc_conn_input(f->s, c, text, strlen(text));
}

#endif
