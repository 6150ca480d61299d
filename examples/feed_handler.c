/* feed_handler.c -- a feed handler that embeds the ringcast engine.
 *
 * The shape of a real one: worker threads turn some upstream feed into
 * quotes (here: random walks) and publish them with ringcast_publish(); the
 * main thread runs the server loop, which fans the quotes out to every Redis
 * client subscribed to quotes.<SYMBOL> or a matching pattern. Each worker
 * owns a share of the symbols, so every channel has a single publisher and
 * its messages arrive in order; the payload counts each symbol's updates
 * ("n") so a subscriber can check that nothing was lost or repeated.
 *
 * Build: cc feed_handler.c $(pkg-config --cflags --libs ringcast) -o feed_handler
 * Run:   ./feed_handler --port 6380 &  redis-cli -p 6380 psubscribe 'quotes.*'
 * Stop:  Ctrl-C (SIGINT) or SIGTERM; queued output is flushed first.
 *
 * Options: --port N (0: any free port) --threads T --symbols N --rate R (per
 * thread, 0: as fast as the inbox takes them) --count N (per thread, 0: no
 * end) --set NAME VALUE (any ringcastd setting, repeatable). It prints
 * "listening on 127.0.0.1:PORT" once ready, "published N" when every worker
 * is done, and the server's counters at exit.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

#include <ringcast.h>

#define MAX_THREADS 64

static ringcast_server *server;
static unsigned nthreads = 2, nsymbols = 8;
static unsigned long rate = 50, count;
static atomic_ulong published;
static atomic_uint workers_left;
static atomic_bool stopping;

static const char *const tickers[] = {"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META",
                                      "TSLA", "JPM",  "V",    "XOM",  "UNH",  "WMT"};

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stopping, true);
    ringcast_server_stop(server); /* async-signal-safe */
}

static void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

static void symbol_name(unsigned i, char *dst, size_t len)
{
    if (i < sizeof(tickers) / sizeof(tickers[0]))
        snprintf(dst, len, "%s", tickers[i]);
    else
        snprintf(dst, len, "SYM%04u", i);
}

static void *worker(void *arg)
{
    unsigned id = (unsigned)(unsigned long)arg, seed = id * 2654435761u + 1;
    unsigned mine[256], nmine = 0;
    unsigned long n[256] = {0}, sent = 0;
    double price[256];

    for (unsigned i = id; i < nsymbols && nmine < 256; i += nthreads) {
        mine[nmine] = i;
        price[nmine++] = 50.0 + 10.0 * i;
    }
    while (nmine && !atomic_load(&stopping) && (count == 0 || sent < count)) {
        unsigned k = (unsigned)(sent % nmine);
        char chan[64], sym[16], payload[128];
        int cl, pl, r;

        symbol_name(mine[k], sym, sizeof(sym));
        price[k] *= 1.0 + ((double)(rand_r(&seed) % 2001) - 1000.0) / 1e6;
        cl = snprintf(chan, sizeof(chan), "quotes.%s", sym);
        pl = snprintf(payload, sizeof(payload), "{\"sym\":\"%s\",\"n\":%lu,\"last\":%.2f}", sym,
                      n[k] + 1, price[k]);
        r = ringcast_publish(server, chan, (size_t)cl, payload, (size_t)pl);
        if (r == -ENOBUFS) {
            sleep_ns(1000000); /* the loop is behind: back off, then retry */
            continue;
        }
        if (r < 0)
            break; /* -ESHUTDOWN */
        n[k]++;
        sent++;
        atomic_fetch_add(&published, 1);
        if (rate)
            sleep_ns((long)(1000000000UL / rate));
    }
    if (atomic_fetch_sub(&workers_left, 1) == 1) {
        printf("published %lu\n", atomic_load(&published));
        fflush(stdout);
    }
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: feed_handler [--port N] [--threads T] [--symbols N] [--rate R] "
                    "[--count N] [--set NAME VALUE]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    ringcast_config *cfg = ringcast_config_new();
    pthread_t th[MAX_THREADS];
    struct ringcast_stats st;
    struct sigaction sa;
    int r, last = 0;

    ringcast_config_set(cfg, "port", "6380");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            break; /* an option without its value */
        if (!strcmp(a, "--port")) {
            r = ringcast_config_set(cfg, "port", argv[++i]);
        } else if (!strcmp(a, "--set") && i + 2 < argc) {
            r = ringcast_config_set(cfg, argv[i + 1], argv[i + 2]);
            i += 2;
        } else if (!strcmp(a, "--threads")) {
            nthreads = (unsigned)strtoul(argv[++i], NULL, 10);
            r = nthreads >= 1 && nthreads <= MAX_THREADS ? 0 : -EINVAL;
        } else if (!strcmp(a, "--symbols")) {
            nsymbols = (unsigned)strtoul(argv[++i], NULL, 10);
            r = nsymbols >= 1 ? 0 : -EINVAL;
        } else if (!strcmp(a, "--rate")) {
            rate = strtoul(argv[++i], NULL, 10);
            r = 0;
        } else if (!strcmp(a, "--count")) {
            count = strtoul(argv[++i], NULL, 10);
            r = 0;
        } else {
            break;
        }
        if (r < 0) {
            fprintf(stderr, "feed_handler: %s: %s\n", a,
                    ringcast_config_error(cfg)[0] ? ringcast_config_error(cfg) : "bad value");
            ringcast_config_free(cfg);
            return 2;
        }
        last = i;
    }
    if (last != argc - 1) {
        ringcast_config_free(cfg);
        return usage();
    }

    server = ringcast_server_new(cfg);
    ringcast_config_free(cfg); /* the server keeps its own copy */
    r = ringcast_server_listen(server);
    if (r < 0) {
        fprintf(stderr, "feed_handler: listen: %s\n", strerror(-r));
        ringcast_server_free(server);
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("listening on 127.0.0.1:%d\n", ringcast_server_port(server));
    fflush(stdout);

    atomic_store(&workers_left, nthreads);
    unsigned started = 0;
    for (; started < nthreads; started++) {
        /* The worker index travels in the pointer argument. */
        void *arg = (void *)(uintptr_t)started; /* NOLINT(performance-no-int-to-ptr) */
        if (pthread_create(&th[started], NULL, worker, arg) != 0)
            break;
    }
    if (started < nthreads) {
        fprintf(stderr, "feed_handler: started only %u of %u publisher threads\n", started,
                nthreads);
        atomic_fetch_sub(&workers_left, nthreads - started);
    }
    r = ringcast_server_run(server); /* this thread is the loop thread */
    atomic_store(&stopping, true);
    for (unsigned t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    ringcast_server_stats(server, &st);
    printf("stats published=%llu deliveries=%llu inbox_messages=%llu inbox_wakeups=%llu "
           "syscalls=%llu\n",
           (unsigned long long)st.messages_published, (unsigned long long)st.deliveries,
           (unsigned long long)st.inbox_messages, (unsigned long long)st.inbox_wakeups,
           (unsigned long long)st.syscalls);
    ringcast_server_free(server);
    return r < 0 ? 1 : 0;
}
