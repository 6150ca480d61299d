/* main.c -- ringcastd: command line, config file, signals, and the loop.
 *
 * The command line works like redis-server's: an optional config file path
 * first, then `--name value...` pairs that are applied after the file, each
 * exactly like a config line (`--port 6390` is `port 6390`). Everything is
 * validated before the server binds anything, so a bad flag or an unreadable
 * file exits 1 with one clear message and nothing half-started.
 *
 * Under systemd (Type=notify) it reports readiness once it listens, by the
 * sd_notify(3) protocol: one datagram to $NOTIFY_SOCKET, no libsystemd.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <malloc.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "server.h"
#include "upstream.h"

static struct rc_server *the_server;

static void on_signal(int sig)
{
    (void)sig;
    if (the_server)
        rc_server_request_stop(the_server);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: ringcastd [/path/to/ringcast.conf] [--<setting> <value>...]\n"
               "       ringcastd --help | --version\n"
               "\n"
               "A Redis-compatible pub/sub fan-out server. Every setting of the config file\n"
               "can be given as a flag, and flags override the file. Common settings:\n"
               "  --port <n>                 TCP port (default 6380; 0 picks a free port)\n"
               "  --bind <addr> [<addr>...]  listen addresses (default 127.0.0.1)\n"
               "  --io uring|epoll|naive|kmod\n"
               "                             I/O backend (default uring, falls back to epoll;\n"
               "                             kmod falls back to uring; docs/kmod.md)\n"
               "  --kmod-device <path>       the kmod backend's device (default /dev/ringcast)\n"
               "  --kmod-zerocopy yes|no     kmod: send from shared kernel pages (default no)\n"
               "  --workers <n>              loop threads (default: one per CPU; 1 = one loop)\n"
               "  --maxclients <n>           connection limit (default 10000)\n"
               "  --requirepass <password>   require AUTH (default: none)\n"
               "  --http-port <n>            SSE, WebSocket, /metrics and the dashboard\n"
               "                             (default 8380; 0 turns it off)\n"
               "  --client-output-buffer-limit \"pubsub <hard> <soft> <seconds>\"\n"
               "                             slow-subscriber limit (default pubsub 32mb 8mb 60)\n"
               "  --tick-us <n>              accumulate output up to n microseconds (default 0)\n"
               "  --udp-source <name> <addr:port> [group <mcast> [iface <if>]]\n"
               "                             take a UDP feed (docs/udp.md; repeatable)\n"
               "  --udp-arbitrate <a> <b>    sources a and b carry the same feed (A/B)\n"
               "  --upstream nats://<host:port>[,...]\n"
               "                             be the edge of a NATS cluster (docs/cluster.md)\n"
               "  --loglevel debug|verbose|notice|warning   (default notice)\n"
               "  --logfile <path>           log file (default: standard error)\n"
               "\n"
               "Examples:\n"
               "  ringcastd --port 6380\n"
               "  ringcastd /etc/ringcast/ringcast.conf --loglevel verbose\n"
               "  redis-cli -p 6380 subscribe news\n"
               "\n"
               "All settings: man ringcast.conf, docs/config.md. Example file: ringcast.conf.\n");
}

/* Tells the service manager that the server is ready, if one asked (sd_notify(3):
 * "READY=1" to the AF_UNIX datagram socket in $NOTIFY_SOCKET; '@' means an
 * abstract address). Without the variable there is nothing to do. */
static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = path ? strlen(path) : 0;

    if (len < 2 || len >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    char msg[64];
    int n = snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d", (int)getpid());
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
                         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
        rc_log(&the_server->log, RC_LOG_WARNING, "Cannot notify the service manager at %s: %s",
               path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static bool is_flag(const char *a)
{
    return a[0] == '-' && a[1] == '-' && a[2];
}

/* Frames above a quarter slab get a slab of their own, freed when the last
 * send completes. With glibc's default dynamic thresholds a stream of
 * 100 KB messages made it shrink and regrow the heap with brk on nearly
 * every message (27% of the uring backend's CPU in BENCHMARKS.md, "Problems
 * found"): keep freed memory up to a bound and serve large blocks from it.
 * This is ringcastd's choice for its own process; the library never touches
 * a host program's allocator. */
static void tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    /* No fastbins: freeing a client's half a million subscriptions parks as
     * many small chunks there, and the next free of a large block
     * consolidates them all at once -- a 100-250 ms stall of the loop
     * (bench/stall.py). tcache still serves the hot small sizes. */
    mallopt(M_MXFAST, 0);
    /* Grow the heaps in large steps: each worker thread's malloc arena
     * otherwise grows a page run at a time, one mprotect() per step, which
     * no INFO counter sees (perf does). */
    mallopt(M_TOP_PAD, 16 * 1024 * 1024);
}

int main(int argc, char **argv)
{
    struct rc_config cfg;
    char err[512];
    int i = 1, rc;

    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[k], "--version") || !strcmp(argv[k], "-v")) {
            printf("ringcastd %s\n", RINGCAST_VERSION_STRING);
            return 0;
        }
    }
    rc_config_init(&cfg);
    char *config_path = NULL;
    if (i < argc && !is_flag(argv[i])) {
        if (rc_config_load_file(&cfg, argv[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "ringcastd: %s: %s\n", argv[i], err);
            rc_config_free(&cfg);
            return 1;
        }
        config_path = realpath(argv[i], NULL);
        i++;
    }
    while (i < argc) {
        if (!is_flag(argv[i])) {
            fprintf(stderr, "ringcastd: unexpected argument '%s' (try --help)\n", argv[i]);
            goto fail;
        }
        /* A flag takes every following word up to the next flag. A single
         * quoted word holding spaces ("pubsub 32mb 8mb 60") is split, as a
         * config line would be, except for values that are free text. */
        const char *words[64];
        char *dup = NULL;
        int n = 0;
        words[n++] = argv[i] + 2;
        for (i++; i < argc && !is_flag(argv[i]) && n < (int)RC_ARRAY_LEN(words); i++)
            words[n++] = argv[i];
        if (n == 2 && strchr(words[1], ' ') && strcmp(words[0], "requirepass") != 0 &&
            strcmp(words[0], "logfile") != 0) {
            dup = strdup(words[1]);
            n = 1;
            for (char *save = NULL, *w = strtok_r(dup, " ", &save);
                 w && n < (int)RC_ARRAY_LEN(words); w = strtok_r(NULL, " ", &save))
                words[n++] = w;
        }
        rc = rc_config_set(&cfg, n, words, err, sizeof(err));
        free(dup);
        if (rc < 0) {
            fprintf(stderr, "ringcastd: --%s: %s (try --help)\n", words[0], err);
            goto fail;
        }
    }

    if (cfg.logfile && cfg.logfile[0] && !freopen(cfg.logfile, "a", stderr)) {
        fprintf(stdout, "ringcastd: cannot open log file %s: %s\n", cfg.logfile, strerror(errno));
        goto fail;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    tune_malloc();
    the_server = rc_server_new(&cfg);
    the_server->config_file = config_path;
    the_server->executable = realpath("/proc/self/exe", NULL);
    rc_config_free(&cfg);
    rc_log(&the_server->log, RC_LOG_NOTICE, "ringcastd %s starting, pid=%d",
           RINGCAST_VERSION_STRING, (int)getpid());
    if (rc_server_start(the_server) < 0) {
        rc_server_free(the_server);
        rc_upstream_library_exit();
        return 1;
    }
    rc_log(&the_server->log, RC_LOG_NOTICE, "Listening on %s port %d, io backend %s",
           the_server->cfg.bind[0], the_server->port, the_server->io.be->name);
    rc_log(&the_server->log, RC_LOG_NOTICE, "Ready to accept connections");
    notify_ready();
    rc = rc_server_run(the_server);
    rc_server_free(the_server);
    the_server = NULL;
    rc_upstream_library_exit();
    return rc;

fail:
    free(config_path);
    rc_config_free(&cfg);
    return 1;
}
