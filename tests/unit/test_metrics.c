/* test_metrics.c -- GET /metrics' text (metrics.c), rendered from a server driven without I/O.
 *
 * Clients sit on socketpairs no backend reads (engine_fixture.h); after real
 * SUBSCRIBEs and PUBLISHes through rc_conn_input(), the rendered text must
 * carry exactly the server's counters: messages, deliveries, bytes, syscalls
 * by kind and per delivery, clients by transport, market-data conflation.
 * The format itself is checked twice: here (every sample follows its
 * family's HELP and TYPE, counters and only counters end in _total) and by
 * the real `promtool check metrics` when it is installed (CI installs it
 * through scripts/deps.sh --all, and there a missing promtool is a failure).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd.h"
#include "mdata.h"
#include "metrics.h"
#include "server.h"

#include "engine_fixture.h"

/* The rendered text, NUL-terminated; the caller frees it. */
static char *render(struct fixture *f)
{
    struct rc_buf b = {0};
    rc_metrics_render(f->s, &b);
    rc_buf_appendc(&b, '\0');
    return b.p;
}

/* The value of the sample written exactly as `series` (name and labels), or NAN. */
static double value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return NAN;
}

static void check_sample(const char *text, const char *series, double want)
{
    double got = value(text, series);
    double d = got > want ? got - want : want - got, scale = want > 1.0 ? want : 1.0;
    if (!(d <= 1e-9 * scale)) /* also when got is NAN: no such sample */
        fail_msg("%s: expected %.9g, got %.9g\n%s", series, want, got, text);
}

static void drop_output(struct rc_conn *c)
{
    rc_queue_consume(&c->io.out, c->io.out.bytes);
}

static void test_counts_after_publishes(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *a = client(f), *b = client(f), *p = client(f);
    const char *sub_a = "SUBSCRIBE quotes.AAPL quotes.MSFT\r\n";
    const char *sub_b = "PSUBSCRIBE quotes.*\r\n";
    const char *pubs = "PUBLISH quotes.AAPL 1\r\nPUBLISH quotes.MSFT 2\r\nPUBLISH quotes.IBM 3\r\n"
                       "PUBLISH other x\r\n";
    char *text;

    send_cmd(f, a, sub_a);
    send_cmd(f, b, sub_b);
    send_cmd(f, p, pubs);
    /* quotes.AAPL and .MSFT reach a and b, quotes.IBM only b, other nobody. */
    assert_int_equal(rc_engine_stats(f->s->eng)->deliveries, 5);
    /* As if the backend had made these calls. */
    f->s->io.stats.sys[RC_SYS_IO_URING_ENTER] = 7;
    f->s->io.stats.sys[RC_SYS_ACCEPT] = 3;
    f->s->io.stats.bytes_out = 12345;
    f->s->io.stats.held_sends = 4;
    f->s->io.stats.held_us = 1500;
    f->s->io.stats.held_max_us = 700;
    text = render(f);

    check_sample(text, "ringcast_messages_published_total", 4);
    check_sample(text, "ringcast_deliveries_total", 5);
    check_sample(text, "ringcast_net_input_bytes_total",
                 (double)(strlen(sub_a) + strlen(sub_b) + strlen(pubs)));
    check_sample(text, "ringcast_net_output_bytes_total", 12345);
    check_sample(text, "ringcast_output_held_sends_total", 4);
    check_sample(text, "ringcast_output_held_seconds_total", 0.0015);
    check_sample(text, "ringcast_output_held_max_seconds", 0.0007);
    check_sample(text, "ringcast_commands_processed_total", 6);
    check_sample(text, "ringcast_syscalls_total{kind=\"io_uring_enter\"}", 7);
    check_sample(text, "ringcast_syscalls_total{kind=\"accept\"}", 3);
    check_sample(text, "ringcast_syscalls_total{kind=\"sendmsg\"}", 0);
    /* Rendering counts its own getrusage() before it writes the syscalls. */
    double other = value(text, "ringcast_syscalls_total{kind=\"other\"}");
    assert_true(other >= 1);
    assert_int_equal((uint64_t)other, f->s->io.stats.sys[RC_SYS_OTHER]);
    check_sample(text, "ringcast_syscalls_per_delivery", (7 + 3 + other) / 5.0);
    check_sample(text, "ringcast_channels", 2);
    check_sample(text, "ringcast_patterns", 1);
    check_sample(text, "ringcast_subscribed_clients", 2);
    check_sample(text, "ringcast_connected_clients{transport=\"resp\"}", 3);
    check_sample(text, "ringcast_connected_clients{transport=\"sse\"}", 0);
    check_sample(text, "ringcast_output_limit_disconnects_total", 0);
    check_sample(text, "ringcast_slab_bytes", (double)rc_engine_pool(f->s->eng)->bytes);
    assert_true(value(text, "ringcast_slab_bytes") > 0);
    assert_true(value(text, "ringcast_uptime_seconds") >= 0);
    char info[128];
    snprintf(info, sizeof(info), "ringcast_info{version=\"%s\",io_backend=\"none\"}",
             RINGCAST_VERSION_STRING);
    check_sample(text, info, 1);
    free(text);

    /* Counters move with the next publish; nothing is cached. */
    send_cmd(f, p, "PUBLISH quotes.AAPL 4\r\n");
    text = render(f);
    check_sample(text, "ringcast_messages_published_total", 5);
    check_sample(text, "ringcast_deliveries_total", 7);
    free(text);
    drop_output(a);
    drop_output(b);
    drop_output(p);
}

/* Each message is encoded once per wire format present, however many
 * subscribers of that format receive it. */
static void test_encodes_by_format(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *a = client(f), *b = client(f), *c3 = client(f), *p = client(f);
    char *text;

    send_cmd(f, a, "SUBSCRIBE ch\r\n");
    send_cmd(f, b, "SUBSCRIBE ch\r\n");
    send_cmd(f, c3, "HELLO 3\r\nSUBSCRIBE ch\r\n");
    send_cmd(f, p, "PUBLISH ch 1\r\nPUBLISH ch 2\r\nPUBLISH ch 3\r\n");
    text = render(f);
    check_sample(text, "ringcast_deliveries_total", 9);
    check_sample(text, "ringcast_encodes_total{format=\"resp2\"}", 3);
    check_sample(text, "ringcast_encodes_total{format=\"resp3\"}", 3);
    check_sample(text, "ringcast_encodes_total{format=\"sse\"}", 0);
    check_sample(text, "ringcast_encodes_total{format=\"ws\"}", 0);
    free(text);
    drop_output(a);
    drop_output(b);
    drop_output(c3);
    drop_output(p);
}

static void test_memory(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *a = client(f);
    char *text = render(f);

    /* The ceiling in force, and what INFO memory calls used_memory. */
    check_sample(text, "ringcast_maxmemory_bytes", (double)f->s->maxmemory);
    assert_true(f->s->maxmemory > 0);
    check_sample(text, "ringcast_memory_used_bytes", (double)rc_mem_used(f->s));
    assert_true(value(text, "ringcast_memory_used_bytes") >= sizeof(struct rc_conn));
    check_sample(text, "ringcast_maxmemory_disconnects_total", 0);
    free(text);
    drop_output(a);
}

static void test_clients_by_transport(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *c[6];
    char *text;

    for (int i = 0; i < 6; i++)
        c[i] = client(f);
    /* What the HTTP layer sets when a request upgrades a connection. */
    c[1]->transport = RC_TRANSPORT_SSE;
    c[2]->transport = RC_TRANSPORT_SSE;
    c[3]->transport = RC_TRANSPORT_WS;
    c[4]->transport = RC_TRANSPORT_HTTP;
    text = render(f);
    check_sample(text, "ringcast_connected_clients{transport=\"resp\"}", 2);
    check_sample(text, "ringcast_connected_clients{transport=\"sse\"}", 2);
    check_sample(text, "ringcast_connected_clients{transport=\"ws\"}", 1);
    check_sample(text, "ringcast_connected_clients{transport=\"http\"}", 1);
    free(text);

    rc_conn_unlink(f->s, c[1], "test");
    close(c[1]->io.fd); /* what the backend does between unlink and free */
    rc_conn_free(f->s, c[1]);
    text = render(f);
    check_sample(text, "ringcast_connected_clients{transport=\"sse\"}", 1);
    free(text);
}

static void set(struct fixture *f, const char *name, const char *val)
{
    const char *argv[2] = {name, val};
    char err[256] = "";
    if (rc_config_set(&f->s->cfg, 2, argv, err, sizeof(err)))
        fail_msg("config %s %s: %s", name, val, err);
    rc_mdata_reconfigure(f->s->eng);
}

static void test_mdata_conflation(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *slow = client(f);
    char *text;

    set(f, "mdata-rule", "q.* policy=conflate");
    set(f, "mdata-queue-soft", "100");
    set(f, "mdata-queue-low", "0");
    send_cmd(f, slow, "SUBSCRIBE q.a\r\n");
    for (int i = 0; i < 50; i++) {
        char v[16];
        snprintf(v, sizeof(v), "m%d", i);
        rc_engine_publish(f->s->eng, false, "q.a", 3, v, strlen(v));
    }
    uint64_t conflated = rc_mdata_stats(f->s->eng)->conflated;
    assert_true(conflated > 40); /* the slow client never read: most were replaced */
    text = render(f);
    check_sample(text, "ringcast_mdata_conflated_total", (double)conflated);
    check_sample(text, "ringcast_mdata_dropped_total", 0);
    free(text);
    drop_output(slow);
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The format's rules, without promtool: HELP then TYPE once per family, every
 * sample after its family's TYPE, `_total` exactly on counters, a final newline. */
static void test_format(void **state)
{
    struct fixture *f = *state;
    char *text = render(f), *orig = strdup(text);
    char family[128] = "", type[16] = "";
    int families = 0, samples = 0;
    size_t len = strlen(text);

    assert_true(len > 0 && text[len - 1] == '\n');
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[128];
            assert_int_equal(sscanf(line + 7, "%127s", name), 1);
            assert_int_equal(strncmp(name, "ringcast_", 9), 0);
            char help[160];
            snprintf(help, sizeof(help), "# HELP %s ", name);
            /* A family appears once: its HELP's first occurrence is this one. */
            assert_ptr_equal(strstr(orig, help), orig + (line - text));
            snprintf(family, sizeof(family), "%s", name);
            type[0] = '\0';
            families++;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128];
            assert_int_equal(sscanf(line + 7, "%127s %15s", name, type), 2);
            assert_string_equal(name, family);
            bool counter = strcmp(type, "counter") == 0;
            assert_true(counter || strcmp(type, "gauge") == 0);
            assert_int_equal(ends_with(name, strlen(name), "_total"), counter);
        } else {
            size_t n = strcspn(line, "{ ");
            assert_true(type[0] != '\0'); /* after its TYPE line */
            assert_int_equal(n, strlen(family));
            assert_memory_equal(line, family, n);
            assert_non_null(strchr(line, ' '));
            samples++;
        }
    }
    assert_true(families >= 25);
    assert_true(samples >= families);
    free(text);
    free(orig);
}

/* `promtool check metrics` (Debian's prometheus package) reads the text on
 * stdin and prints nothing when it finds nothing to complain about. */
static void test_promtool(void **state)
{
    struct fixture *f = *state;
    struct rc_conn *a = client(f), *p = client(f);
    char path[] = "/tmp/rc-metrics-XXXXXX", cmd[256], out[4096];
    size_t n;
    FILE *fp;
    int fd, status;

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        if (getenv("CI") && strcmp(getenv("CI"), "true") == 0)
            fail_msg("promtool is missing (CI installs it: scripts/deps.sh --all)");
        skip();
    }
    send_cmd(f, a, "SUBSCRIBE x\r\n");
    send_cmd(f, p, "PUBLISH x y\r\n");
    char *text = render(f);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    free(text);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    fp = popen(cmd, "r");
    assert_non_null(fp);
    n = fread(out, 1, sizeof(out) - 1, fp);
    out[n] = '\0';
    status = pclose(fp);
    unlink(path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n != 0)
        fail_msg("promtool check metrics (exit %d) said:\n%s", WEXITSTATUS(status), out);
    drop_output(a);
    drop_output(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_after_publishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encodes_by_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clients_by_transport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mdata_conflation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promtool, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
