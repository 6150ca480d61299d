/* test_config.c -- unit tests for config.c: defaults, setters, files, CONFIG GET.
 *
 * Each setting type is set through rc_config_set() and refused with the
 * exact text Redis 7.0 gives for the same mistake (checked against
 * redis-server 7.0.15 by hand: CONFIG SET and config files), and a refused
 * value must leave the old one in place. Config texts exercise comments,
 * quoting, CRLF and the line-numbered errors; CONFIG GET is checked against
 * the strings redis-server prints.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "upstream.h"

/* ---- Helpers ---- */

static char err[1024];

/* Sets one setting from a name and a single value word. */
static int set1(struct rc_config *c, const char *name, const char *value)
{
    const char *argv[2] = {name, value};

    err[0] = '\0';
    return rc_config_set(c, 2, argv, err, sizeof(err));
}

static int setv(struct rc_config *c, int argc, const char *const *argv)
{
    err[0] = '\0';
    return rc_config_set(c, argc, argv, err, sizeof(err));
}

static int load(struct rc_config *c, const char *text)
{
    err[0] = '\0';
    return rc_config_load_string(c, text, strlen(text), err, sizeof(err));
}

/* Collects CONFIG GET output as "name=value\n" lines. */
struct got {
    char text[4096];
    int n;
};

static void collect(void *arg, const char *name, const char *value)
{
    struct got *g = arg;
    size_t len = strlen(g->text);

    snprintf(g->text + len, sizeof(g->text) - len, "%s=%s\n", name, value);
    g->n++;
}

static struct got get(const struct rc_config *c, const char *pattern)
{
    struct got g = {.n = 0};

    g.text[0] = '\0';
    rc_config_get(c, pattern, strlen(pattern), collect, &g);
    return g;
}

/* The value CONFIG GET shows for one exact name, or NULL. */
static const char *getval(const struct rc_config *c, const char *name)
{
    static struct got g;
    char *eq;

    g = get(c, name);
    if (g.n != 1)
        return NULL;
    eq = strchr(g.text, '=');
    g.text[strlen(g.text) - 1] = '\0';
    return eq + 1;
}

static int setup(void **state)
{
    struct rc_config *c = calloc(1, sizeof(*c));

    if (!c)
        return -1;
    rc_config_init(c);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    rc_config_free(*state);
    free(*state);
    return 0;
}

/* ---- Defaults ---- */

static void test_defaults(void **state)
{
    struct rc_config *c = *state;

    assert_int_equal(c->port, 6380);
    assert_int_equal(c->nbind, 1);
    assert_string_equal(c->bind[0], "127.0.0.1");
    assert_null(c->bind[1]);
    assert_int_equal(c->tcp_backlog, 511);
    assert_int_equal(c->maxclients, 10000);
    assert_null(c->requirepass);
    assert_true(c->protected_mode);
    assert_int_equal(c->obuf_normal.hard, 0);
    assert_int_equal(c->obuf_normal.soft, 0);
    assert_int_equal(c->obuf_normal.soft_secs, 0);
    assert_int_equal(c->obuf_pubsub.hard, 32 * 1024 * 1024);
    assert_int_equal(c->obuf_pubsub.soft, 8 * 1024 * 1024);
    assert_int_equal(c->obuf_pubsub.soft_secs, 60);
    assert_int_equal(c->proto_max_bulk_len, 512ull * 1024 * 1024);
    assert_int_equal(c->proto_max_multibulk_len, 2147483647);
    assert_int_equal(c->client_query_buffer_limit, 1024ull * 1024 * 1024);
    assert_int_equal(c->timeout, 0);
    assert_int_equal(c->io, RC_IO_URING);
    assert_int_equal(c->tick_us, 0);
    assert_int_equal(c->tick_bytes, 1024 * 1024);
    assert_int_equal(c->so_sndbuf, 0);
    assert_int_equal(c->uring_entries, 4096);
    assert_int_equal(c->zc_threshold, 0);
    assert_int_equal(c->loglevel, RC_LOG_NOTICE);
    assert_non_null(c->logfile);
    assert_string_equal(c->logfile, "");
    assert_int_equal(c->shutdown_timeout, 2);
}

/* Every setting, in table order, as CONFIG GET * shows it. */
static void test_get_all_defaults(void **state)
{
    struct got g = get(*state, "*");

    assert_string_equal(g.text,
                        "port=6380\n"
                        "bind=127.0.0.1\n"
                        "tcp-backlog=511\n"
                        "maxclients=10000\n"
                        "requirepass=\n"
                        "protected-mode=yes\n"
                        "http-port=8380\n"
                        "http-allowed-origins=\n"
                        "http-max-request=16384\n"
                        "ws-max-frame=1048576\n"
                        "http-idle-timeout=30\n"
                        "client-output-buffer-limit=normal 0 0 0 slave 268435456 67108864 60 "
                        "pubsub 33554432 8388608 60\n"
                        "proto-max-bulk-len=536870912\n"
                        "proto-max-multibulk-len=2147483647\n"
                        "client-query-buffer-limit=1073741824\n"
                        "maxmemory=0\n"
                        "max-name-len=1024\n"
                        "timeout=0\n"
                        "io=uring\n"
                        "tick-us=0\n"
                        "accum-budget-us=500\n"
                        "tick-bytes=1048576\n"
                        "so-sndbuf=0\n"
                        "uring-entries=4096\n"
                        "send-zc-threshold=0\n"
                        "kmod-device=/dev/ringcast\n"
                        "kmod-zerocopy=no\n"
                        "loglevel=notice\n"
                        "logfile=\n"
                        "shutdown-timeout=2\n"
                        "workers=0\n"
                        "udp-source=\n"
                        "udp-arbitrate=\n"
                        "mdata-rule=\n"
                        "mdata-max-channels=100000\n"
                        "mdata-max-memory=67108864\n"
                        "mdata-queue-soft=1048576\n"
                        "mdata-queue-low=262144\n"
                        "mdata-pending-max=4194304\n"
                        "mdata-lastp-max=1000\n"
                        "upstream=\n"
                        "upstream-user=\n"
                        "upstream-password=\n"
                        "upstream-creds=\n"
                        "upstream-tls=no\n"
                        "upstream-tls-ca=\n");
    assert_int_equal(g.n, 46);
}

static void test_io_name(void **state)
{
    assert_string_equal(rc_io_name(RC_IO_URING), "uring");
    assert_string_equal(rc_io_name(RC_IO_EPOLL), "epoll");
    assert_string_equal(rc_io_name(RC_IO_NAIVE), "naive");
    assert_string_equal(rc_io_name(RC_IO_KMOD), "kmod");
}

/* ---- Integers ---- */

static void test_int_set(void **state)
{
    struct rc_config *c = *state;

    assert_int_equal(set1(c, "port", "0"), 0);
    assert_int_equal(c->port, 0);
    assert_int_equal(set1(c, "port", "65535"), 0);
    assert_int_equal(c->port, 65535);
    assert_int_equal(set1(c, "PORT", "7000"), 0); /* names are case-insensitive */
    assert_int_equal(c->port, 7000);
    assert_int_equal(set1(c, "timeout", "300"), 0);
    assert_int_equal(c->timeout, 300);
    assert_int_equal(set1(c, "maxclients", "4294967295"), 0);
    assert_int_equal(c->maxclients, 4294967295ull);
    assert_int_equal(set1(c, "uring-entries", "32768"), 0);
    assert_int_equal(c->uring_entries, 32768);
    assert_int_equal(set1(c, "tick-us", "250"), 0);
    assert_int_equal(c->tick_us, 250);
    assert_string_equal(getval(c, "tick-us"), "250");
}

static void test_int_reject(void **state)
{
    struct rc_config *c = *state;
    /* Redis's string2ll refuses all of these. */
    const char *bad[] = {
        "abc", "", "08", "+8", " 1", "1 ", "-0", "1k", "1.5", "-", "99999999999999999999"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(set1(c, "port", bad[i]), -EINVAL);
        assert_string_equal(err, "argument couldn't be parsed into an integer");
    }
    assert_int_equal(set1(c, "port", "65536"), -EINVAL);
    assert_string_equal(err, "argument must be between 0 and 65535 inclusive");
    assert_int_equal(set1(c, "port", "-1"), -EINVAL);
    assert_string_equal(err, "argument must be between 0 and 65535 inclusive");
    assert_int_equal(set1(c, "maxclients", "0"), -EINVAL);
    assert_string_equal(err, "argument must be between 1 and 4294967295 inclusive");
    assert_int_equal(set1(c, "timeout", "-1"), -EINVAL);
    assert_string_equal(err, "argument must be between 0 and 2147483647 inclusive");
    assert_int_equal(set1(c, "uring-entries", "0"), -EINVAL);
    assert_string_equal(err, "argument must be between 1 and 32768 inclusive");
    /* Nothing changed. */
    assert_int_equal(c->port, 6380);
    assert_int_equal(c->maxclients, 10000);
    assert_int_equal(c->timeout, 0);
    assert_int_equal(c->uring_entries, 4096);
}

/* ---- Memory values ---- */

static void test_memory_set(void **state)
{
    struct rc_config *c = *state;

    assert_int_equal(set1(c, "tick-bytes", "1k"), 0);
    assert_int_equal(c->tick_bytes, 1000);
    assert_int_equal(set1(c, "tick-bytes", "1kb"), 0);
    assert_int_equal(c->tick_bytes, 1024);
    assert_int_equal(set1(c, "tick-bytes", "3M"), 0);
    assert_int_equal(c->tick_bytes, 3000000);
    assert_int_equal(set1(c, "tick-bytes", "3MB"), 0);
    assert_int_equal(c->tick_bytes, 3 * 1024 * 1024);
    assert_int_equal(set1(c, "tick-bytes", "0"), 0); /* 0: no size limit */
    assert_int_equal(c->tick_bytes, 0);
    assert_int_equal(set1(c, "client-query-buffer-limit", "2G"), 0);
    assert_int_equal(c->client_query_buffer_limit, 2000000000ull);
    assert_string_equal(getval(c, "client-query-buffer-limit"), "2000000000");
    assert_int_equal(set1(c, "proto-max-bulk-len", "1gb"), 0);
    assert_int_equal(c->proto_max_bulk_len, 1ull << 30);
    assert_string_equal(getval(c, "proto-max-bulk-len"), "1073741824");
    assert_int_equal(set1(c, "send-zc-threshold", "16384"), 0);
    assert_int_equal(c->zc_threshold, 16384);
    assert_int_equal(set1(c, "so-sndbuf", "4mb"), 0);
    assert_int_equal(c->so_sndbuf, 4 * 1024 * 1024);
}

static void test_memory_reject(void **state)
{
    struct rc_config *c = *state;
    const char *bad[] = {"1.5mb", "-1", " 2mb", "2 mb", "", "mb", "1tb", "abc", "+1"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(set1(c, "client-query-buffer-limit", bad[i]), -EINVAL);
        assert_string_equal(err, "argument must be a memory value");
    }
    assert_int_equal(set1(c, "client-query-buffer-limit", "1"), -EINVAL);
    assert_string_equal(err, "argument must be between 1048576 and 9223372036854775807 inclusive");
    assert_int_equal(set1(c, "proto-max-bulk-len", "1048575"), -EINVAL);
    assert_string_equal(err, "argument must be between 1048576 and 9223372036854775807 inclusive");
    /* 2^63: representable by the parser, beyond every range. */
    assert_int_equal(set1(c, "send-zc-threshold", "8589934592gb"), -EINVAL);
    assert_string_equal(err, "argument must be between 0 and 9223372036854775807 inclusive");
    assert_int_equal(set1(c, "so-sndbuf", "2gb"), -EINVAL);
    assert_string_equal(err, "argument must be between 0 and 2147483647 inclusive");
    assert_int_equal(set1(c, "tick-bytes", "-5"), -EINVAL);
    assert_string_equal(err, "argument must be a memory value");
    assert_int_equal(c->client_query_buffer_limit, 1ull << 30);
    assert_int_equal(c->proto_max_bulk_len, 512ull << 20);
    assert_int_equal(c->zc_threshold, 0);
    assert_int_equal(c->so_sndbuf, 0);
    assert_int_equal(c->tick_bytes, 1 << 20);
}

/* ---- Booleans, enums, strings ---- */

static void test_bool(void **state)
{
    struct rc_config *c = *state;

    assert_int_equal(set1(c, "protected-mode", "no"), 0);
    assert_false(c->protected_mode);
    assert_string_equal(getval(c, "protected-mode"), "no");
    assert_int_equal(set1(c, "protected-mode", "YES"), 0);
    assert_true(c->protected_mode);
    assert_string_equal(getval(c, "protected-mode"), "yes");
    assert_int_equal(set1(c, "protected-mode", "no"), 0);
    const char *bad[] = {"maybe", "", "1", "true", "yess"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(set1(c, "protected-mode", bad[i]), -EINVAL);
        assert_string_equal(err, "argument must be 'yes' or 'no'");
        assert_false(c->protected_mode);
    }
}

static void test_enum(void **state)
{
    struct rc_config *c = *state;

    assert_int_equal(set1(c, "io", "epoll"), 0);
    assert_int_equal(c->io, RC_IO_EPOLL);
    assert_string_equal(getval(c, "io"), "epoll");
    assert_int_equal(set1(c, "io", "NAIVE"), 0);
    assert_int_equal(c->io, RC_IO_NAIVE);
    assert_string_equal(getval(c, "io"), "naive");
    assert_int_equal(set1(c, "io", "kqueue"), -EINVAL);
    assert_string_equal(err, "argument(s) must be one of the following: uring, epoll, naive, kmod");
    assert_int_equal(set1(c, "io", ""), -EINVAL);
    assert_int_equal(c->io, RC_IO_NAIVE);
    assert_int_equal(set1(c, "io", "kmod"), 0);
    assert_int_equal(c->io, RC_IO_KMOD);
    assert_string_equal(getval(c, "io"), "kmod");

    assert_int_equal(set1(c, "loglevel", "WARNING"), 0);
    assert_int_equal(c->loglevel, RC_LOG_WARNING);
    assert_string_equal(getval(c, "loglevel"), "warning");
    assert_int_equal(set1(c, "loglevel", "debug"), 0);
    assert_int_equal(c->loglevel, RC_LOG_DEBUG);
    assert_int_equal(set1(c, "loglevel", "loud"), -EINVAL);
    assert_string_equal(err, "argument(s) must be one of the following: "
                             "debug, verbose, notice, warning");
    assert_int_equal(c->loglevel, RC_LOG_DEBUG);
    /* Far longer than any enum word. */
    char big[300];
    memset(big, 'e', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(set1(c, "loglevel", big), -EINVAL);
}

static void test_strings(void **state)
{
    struct rc_config *c = *state;

    assert_int_equal(set1(c, "requirepass", "s3cret pass"), 0);
    assert_string_equal(c->requirepass, "s3cret pass");
    assert_string_equal(getval(c, "requirepass"), "s3cret pass");
    assert_int_equal(set1(c, "requirepass", ""), 0); /* "" means no password, like Redis */
    assert_null(c->requirepass);
    assert_string_equal(getval(c, "requirepass"), "");

    assert_int_equal(set1(c, "logfile", "/var/log/ringcast.log"), 0);
    assert_string_equal(c->logfile, "/var/log/ringcast.log");
    assert_string_equal(getval(c, "logfile"), "/var/log/ringcast.log");
    assert_int_equal(set1(c, "logfile", ""), 0);
    assert_non_null(c->logfile);
    assert_string_equal(c->logfile, "");

    /* A fixed-size path with a default; a refused value leaves it as it was. */
    char longpath[RC_KMOD_DEVICE_CFG + 1];
    memset(longpath, 'p', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_string_equal(c->kmod_device, "/dev/ringcast");
    assert_int_equal(set1(c, "kmod-device", "/dev/ringcast1"), 0);
    assert_string_equal(getval(c, "kmod-device"), "/dev/ringcast1");
    assert_int_equal(set1(c, "kmod-device", longpath), -EINVAL);
    assert_string_equal(err, "argument is too long (at most 255 bytes)");
    assert_string_equal(c->kmod_device, "/dev/ringcast1");
    assert_false(c->kmod_zerocopy);
    assert_int_equal(set1(c, "kmod-zerocopy", "yes"), 0);
    assert_true(c->kmod_zerocopy);
    assert_string_equal(getval(c, "kmod-zerocopy"), "yes");
}

/* ---- bind ---- */

static void test_bind(void **state)
{
    struct rc_config *c = *state;
    const char *three[] = {"bind", "127.0.0.1", "::1", "10.0.0.1"};
    const char *spaced[] = {"bind", "192.168.1.1  ::1"};
    const char *empty[] = {"bind"};
    const char *blank[] = {"bind", " "};
    const char *many[] = {"bind", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"};
    const char *sixteen[] = {"bind", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", "16"};

    assert_int_equal(setv(c, 4, three), 0);
    assert_int_equal(c->nbind, 3);
    assert_string_equal(c->bind[0], "127.0.0.1");
    assert_string_equal(c->bind[1], "::1");
    assert_string_equal(c->bind[2], "10.0.0.1");
    assert_string_equal(getval(c, "bind"), "127.0.0.1 ::1 10.0.0.1");

    /* One word holding several addresses (`--bind "a b"`, CONFIG SET). */
    assert_int_equal(setv(c, 2, spaced), 0);
    assert_int_equal(c->nbind, 2);
    assert_null(c->bind[2]);
    assert_string_equal(getval(c, "bind"), "192.168.1.1 ::1");

    assert_int_equal(setv(c, 1, empty), -EINVAL);
    assert_string_equal(err, "argument must list at least one address");
    assert_int_equal(setv(c, 2, blank), -EINVAL);
    assert_int_equal(setv(c, 2, many), -EINVAL);
    assert_string_equal(err, "Too many bind addresses specified.");
    assert_string_equal(getval(c, "bind"), "192.168.1.1 ::1");

    assert_int_equal(setv(c, 3, sixteen), 0);
    assert_int_equal(c->nbind, RC_MAX_BIND);
    assert_string_equal(c->bind[15], "16");
}

/* ---- client-output-buffer-limit ---- */

static void test_obuf(void **state)
{
    struct rc_config *c = *state;

    assert_int_equal(load(c, "client-output-buffer-limit pubsub 1kb 1k 5\n"), 0);
    assert_int_equal(c->obuf_pubsub.hard, 1024);
    assert_int_equal(c->obuf_pubsub.soft, 1000);
    assert_int_equal(c->obuf_pubsub.soft_secs, 5);
    assert_string_equal(getval(c, "client-output-buffer-limit"),
                        "normal 0 0 0 slave 268435456 67108864 60 pubsub 1024 1000 5");

    /* Several classes in one line, any case; replica/slave accepted, ignored. */
    assert_int_equal(load(c, "client-output-buffer-limit pubsub 1gb 1mb 1 NORMAL 1 2 3 "
                             "replica 1 1 1 slave 2 2 2\n"),
                     0);
    assert_int_equal(c->obuf_normal.hard, 1);
    assert_int_equal(c->obuf_normal.soft, 2);
    assert_int_equal(c->obuf_normal.soft_secs, 3);
    assert_string_equal(getval(c, "client-output-buffer-limit"),
                        "normal 1 2 3 slave 268435456 67108864 60 pubsub 1073741824 1048576 1");
}

static void test_obuf_reject(void **state)
{
    struct rc_config *c = *state;
    const char *before = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60";
    struct {
        const char *line, *msg;
    } cases[] = {
        {"client-output-buffer-limit normal 0 0",
         "Wrong number of arguments in buffer limit configuration."},
        {"client-output-buffer-limit master 1 1 1",
         "Invalid client class specified in buffer limit configuration."},
        {"client-output-buffer-limit bogus 1 1 1",
         "Invalid client class specified in buffer limit configuration."},
        {"client-output-buffer-limit normal 1x 1 1",
         "Error in hard, soft or soft_seconds setting in buffer limit configuration."},
        {"client-output-buffer-limit normal -1 1 1",
         "Error in hard, soft or soft_seconds setting in buffer limit configuration."},
        {"client-output-buffer-limit normal 1 1 -1",
         "Error in hard, soft or soft_seconds setting in buffer limit configuration."},
        {"client-output-buffer-limit normal 1 1 1.5",
         "Error in hard, soft or soft_seconds setting in buffer limit configuration."},
        /* All or nothing: the valid normal group is not applied either. */
        {"client-output-buffer-limit normal 5 5 5 pubsub 1 x 1",
         "Error in hard, soft or soft_seconds setting in buffer limit configuration."},
    };
    char want[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(load(c, cases[i].line), -EINVAL);
        snprintf(want, sizeof(want), "line 1: %s", cases[i].msg);
        assert_string_equal(err, want);
        assert_string_equal(getval(c, "client-output-buffer-limit"), before);
    }
}

/* ---- Names and arity ---- */

static void test_unknown_and_arity(void **state)
{
    struct rc_config *c = *state;
    const char *two[] = {"port", "1", "2"};
    const char *none[] = {"loglevel"};

    assert_int_equal(set1(c, "no-such-thing", "1"), -ENOENT);
    assert_string_equal(err, "Bad directive or wrong number of arguments");
    assert_int_equal(setv(c, 3, two), -EINVAL);
    assert_string_equal(err, "wrong number of arguments");
    assert_int_equal(setv(c, 1, none), -EINVAL);
    assert_string_equal(err, "wrong number of arguments");
    assert_int_equal(setv(c, 0, none), -EINVAL);
    assert_int_equal(c->port, 6380);
    /* A NULL error buffer is allowed. */
    assert_int_equal(rc_config_set(c, 3, two, NULL, 0), -EINVAL);
}

/* ---- Config text ---- */

static void test_load_text(void **state)
{
    struct rc_config *c = *state;
    const char *text = "# ringcast test config\n"
                       "\n"
                       "   # indented comment\n"
                       "port 7001\r\n"
                       "\t bind   127.0.0.1    ::1   \n"
                       "requirepass \"pa ss\\\"word\\x41\\n\"\n"
                       "logfile '/tmp/it''s'\n"
                       "loglevel \"warning\"\n"
                       "io epoll\n"
                       "client-output-buffer-limit normal 0 0 0 pubsub 64mb 16mb 30\n"
                       "protected-mode no"; /* no final newline */

    assert_int_equal(load(c, text), -EINVAL); /* '...''s' is unbalanced, as in Redis */
    assert_string_equal(err, "line 7: Unbalanced quotes in configuration line");
    /* The lines before the bad one took effect. */
    assert_int_equal(c->port, 7001);

    text = "# ringcast test config\n"
           "\n"
           "   # indented comment\n"
           "port 7002\r\n"
           "\t bind   127.0.0.1    ::1   \n"
           "requirepass \"pa ss\\\"word\\x41\\n\"\n"
           "logfile 'it\\'s'\n"
           "loglevel \"warning\"\n"
           "IO epoll\n"
           "client-output-buffer-limit normal 0 0 0 pubsub 64mb 16mb 30\n"
           "protected-mode no";
    assert_int_equal(load(c, text), 0);
    assert_int_equal(c->port, 7002);
    assert_int_equal(c->nbind, 2);
    assert_string_equal(c->bind[1], "::1");
    assert_string_equal(c->requirepass, "pa ss\"wordA\n");
    assert_string_equal(c->logfile, "it's");
    assert_int_equal(c->loglevel, RC_LOG_WARNING);
    assert_int_equal(c->io, RC_IO_EPOLL);
    assert_int_equal(c->obuf_pubsub.hard, 64 << 20);
    assert_int_equal(c->obuf_pubsub.soft_secs, 30);
    assert_false(c->protected_mode);

    /* Quotes in the middle of a word join, as sdssplitargs does. */
    assert_int_equal(load(c, "logfile a\"b c\"\n"), 0);
    assert_string_equal(c->logfile, "ab c");
    /* An empty quoted value. */
    assert_int_equal(load(c, "requirepass \"\"\n"), 0);
    assert_null(c->requirepass);
    /* Only the first len bytes count: the text need not end in NUL. */
    char buf[] = "port 7003\nport 9";
    err[0] = '\0';
    assert_int_equal(rc_config_load_string(c, buf, 10, err, sizeof(err)), 0);
    assert_int_equal(c->port, 7003);
    /* Empty text and whitespace only. */
    assert_int_equal(load(c, ""), 0);
    assert_int_equal(load(c, "\n\r\n  \t \n"), 0);
    assert_int_equal(c->port, 7003);
}

static void test_load_errors(void **state)
{
    struct rc_config *c = *state;
    struct {
        const char *text, *msg;
    } cases[] = {
        {"port 1\n\nfoo bar\n", "line 3: Bad directive or wrong number of arguments"},
        {"port 1 2\n", "line 1: wrong number of arguments"},
        {"# x\nport 70000\n", "line 2: argument must be between 0 and 65535 inclusive"},
        {"maxclients 0", "line 1: argument must be between 1 and 4294967295 inclusive"},
        {"timeout abc", "line 1: argument couldn't be parsed into an integer"},
        {"\n\n\n\nproto-max-bulk-len 1.5mb\n", "line 5: argument must be a memory value"},
        {"protected-mode 1\n", "line 1: argument must be 'yes' or 'no'"},
        {"io poll\n",
         "line 1: argument(s) must be one of the following: uring, epoll, naive, kmod"},
        {"requirepass \"abc\n", "line 1: Unbalanced quotes in configuration line"},
        {"requirepass \"abc\"def\n", "line 1: Unbalanced quotes in configuration line"},
        {"requirepass 'abc\n", "line 1: Unbalanced quotes in configuration line"},
        {"requirepass \"abc\\\"\n", "line 1: Unbalanced quotes in configuration line"},
        {"requirepass \"a\\x00b\"\n", "line 1: NUL byte (\\x00) in an argument"},
        {"port 1 # trailing comments are not comments\n", "line 1: wrong number of arguments"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(load(c, cases[i].text), -EINVAL);
        assert_string_equal(err, cases[i].msg);
    }
    assert_null(c->requirepass);

    /* A NUL byte inside a line. */
    const char nul[] = "port 1\nport 2\0 3\n";
    assert_int_equal(rc_config_load_string(c, nul, sizeof(nul) - 1, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "line 2: NUL byte in line");
    assert_int_equal(c->port, 1);

    /* A short error buffer is truncated, not overrun. */
    char small[8];
    memset(small, 'x', sizeof(small));
    assert_int_equal(rc_config_load_string(c, "bogus 1", 7, small, sizeof(small)), -EINVAL);
    assert_string_equal(small, "line 1:");
}

static void test_load_long_lines(void **state)
{
    struct rc_config *c = *state;
    size_t max = 64 * 1024;
    char *text = malloc(max + 64);

    assert_non_null(text);
    /* Exactly 64 KiB: accepted. */
    memcpy(text, "logfile ", 8);
    memset(text + 8, 'a', max - 8);
    text[max] = '\n';
    assert_int_equal(rc_config_load_string(c, text, max + 1, err, sizeof(err)), 0);
    assert_int_equal(strlen(c->logfile), max - 8);
    /* One byte more, as line 2. */
    memcpy(text, "port 9\n", 7);
    memcpy(text + 7, "logfile ", 8);
    memset(text + 15, 'b', max - 7);
    assert_int_equal(rc_config_load_string(c, text, max + 8, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "line 2: line too long (more than 65536 bytes)");
    assert_int_equal(c->port, 9);
    assert_int_equal(c->logfile[0], 'a');
    free(text);
}

static void test_load_file(void **state)
{
    struct rc_config *c = *state;
    char path[] = "/tmp/rc_test_config_XXXXXX";
    const char *text = "port 7100\nio naive\n";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(rc_config_load_file(c, path, err, sizeof(err)), 0);
    assert_int_equal(c->port, 7100);
    assert_int_equal(c->io, RC_IO_NAIVE);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    text = "port 7200\nio none\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(rc_config_load_file(c, path, err, sizeof(err)), -EINVAL);
    assert_string_equal(
        err, "line 2: argument(s) must be one of the following: uring, epoll, naive, kmod");
    unlink(path);

    assert_int_equal(rc_config_load_file(c, path, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "can't open config file"));
    assert_non_null(strstr(err, path));
    assert_int_equal(rc_config_load_file(c, "/", err, sizeof(err)), -EISDIR);
}

/* ---- CONFIG GET patterns ---- */

static void test_get_glob(void **state)
{
    struct rc_config *c = *state;
    struct got g;

    g = get(c, "*buffer*");
    assert_string_equal(g.text, "client-output-buffer-limit=normal 0 0 0 slave 268435456 "
                                "67108864 60 pubsub 33554432 8388608 60\n"
                                "client-query-buffer-limit=1073741824\n");
    g = get(c, "tick-*");
    assert_string_equal(g.text, "tick-us=0\ntick-bytes=1048576\n");
    g = get(c, "PORT"); /* case-insensitive, like Redis */
    assert_string_equal(g.text, "port=6380\n");
    g = get(c, "p?rt");
    assert_string_equal(g.text, "port=6380\n");
    g = get(c, "[bt]i*");
    assert_string_equal(g.text, "bind=127.0.0.1\ntimeout=0\ntick-us=0\ntick-bytes=1048576\n");
    g = get(c, "nosuch");
    assert_int_equal(g.n, 0);
    assert_string_equal(g.text, "");
    g = get(c, "port*x");
    assert_int_equal(g.n, 0);
    /* The pattern is counted: bytes past plen are not part of it. */
    g.text[0] = '\0';
    g.n = 0;
    rc_config_get(c, "portXYZ", 4, collect, &g);
    assert_string_equal(g.text, "port=6380\n");
    g.text[0] = '\0';
    g.n = 0;
    rc_config_get(c, "", 0, collect, &g);
    assert_int_equal(g.n, 0);
}

/* ---- The example file ---- */

struct names {
    char name[64][48];
    bool seen[64];
    int n;
};

static void collect_name(void *arg, const char *name, const char *value)
{
    struct names *ns = arg;

    if (ns->n < (int)RC_ARRAY_LEN(ns->name))
        snprintf(ns->name[ns->n++], sizeof(ns->name[0]), "%s", name);
}

/* ringcast.conf at the repository root must load as shipped, mention every
 * setting, and still load with every commented-out setting line enabled. */
static void test_example_file(void **state)
{
    struct rc_config *c = *state;
    struct names ns = {.n = 0};
    char path[4096], *slash, *text, *on;
    struct got defaults = get(c, "*");
    FILE *f;
    long size;

    /* CMake compiles with absolute paths: tests/unit/test_config.c -> root. */
    snprintf(path, sizeof(path), "%s", __FILE__);
    slash = strstr(path, "/tests/unit/");
    if (path[0] != '/' || !slash)
        skip();
    strcpy(slash, "/ringcast.conf");
    assert_int_equal(rc_config_load_file(c, path, err, sizeof(err)), 0);
    /* Everything in it is commented out: still the defaults. */
    assert_string_equal(get(c, "*").text, defaults.text);

    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size > 0 && size < 1 << 20);
    rewind(f);
    text = calloc(1, (size_t)size + 1);
    on = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    assert_non_null(on);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);

    /* Enable each "# <setting> ..." line and note which settings had one. */
    rc_config_get(c, "*", 1, collect_name, &ns);
    assert_int_equal(ns.n, 46);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        const char *body = line;

        for (int i = 0; i < ns.n && !strncmp(line, "# ", 2); i++) {
            size_t len = strlen(ns.name[i]);
            if (!strncmp(line + 2, ns.name[i], len) && line[2 + len] == ' ') {
                ns.seen[i] = true;
                /* A build without libnats refuses `upstream` (upstream_none.c). */
                if (rc_upstream_compiled() || strcmp(ns.name[i], "upstream") != 0)
                    body = line + 2;
            }
        }
        strcat(on, body);
        strcat(on, "\n");
    }
    for (int i = 0; i < ns.n; i++)
        if (!ns.seen[i])
            fail_msg("setting missing from ringcast.conf: %s", ns.name[i]);

    err[0] = '\0';
    assert_int_equal(rc_config_load_string(c, on, strlen(on), err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_string_equal(c->requirepass, "change me");
    free(text);
    free(on);
}

static void test_release(void **state)
{
    struct rc_config c;

    rc_config_init(&c);
    assert_int_equal(set1(&c, "requirepass", "x"), 0);
    rc_config_free(&c);
    assert_null(c.requirepass);
    assert_null(c.logfile);
    assert_int_equal(c.nbind, 0);
    rc_config_free(&c); /* twice is fine */
    rc_config_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_all_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obuf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_obuf_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_arity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_glob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_file, setup, teardown),
        cmocka_unit_test(test_release),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
