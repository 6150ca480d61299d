/* two_servers.c -- two embedded servers in one process, each on its own thread.
 *
 * Built by test_two_servers.py against the installed library (header,
 * archive and ringcast.pc only) and driven through stdin:
 *
 *   pub <1|2> <channel> <payload>   ringcast_publish() on that server
 *   stop <1|2>                      stop it, join its thread, free it
 *   quit                            stop and free what is left, exit 0
 *
 * At start it prints "ports <p1> <p2>"; after each command, "ok <command>".
 * The io backend comes from RINGCAST_IO (default: the library's default).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringcast.h>

struct srv {
    ringcast_server *s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int port; /* 0 until listening, -1 on failure */
    int rc;
    int running;
};

static struct srv srvs[2];

/* The loop thread: listen, run and free here -- ringcast.h wants every call
 * but publish and stop on the loop thread (the io_uring ring accepts work
 * from one task only). */
static void *loop(void *arg)
{
    struct srv *v = arg;
    int err = ringcast_server_listen(v->s);

    pthread_mutex_lock(&v->mu);
    v->port = err ? -1 : ringcast_server_port(v->s);
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->mu);
    if (!err)
        v->rc = ringcast_server_run(v->s);
    ringcast_server_free(v->s);
    return NULL;
}

static int start(struct srv *v)
{
    ringcast_config *cfg = ringcast_config_new();
    const char *io = getenv("RINGCAST_IO");

    if (ringcast_config_set(cfg, "port", "0") || ringcast_config_set(cfg, "loglevel", "warning") ||
        (io && *io && ringcast_config_set(cfg, "io", io))) {
        fprintf(stderr, "config: %s\n", ringcast_config_error(cfg));
        ringcast_config_free(cfg);
        return -1;
    }
    v->s = ringcast_server_new(cfg);
    ringcast_config_free(cfg);
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    if (pthread_create(&v->thread, NULL, loop, v))
        return -1;
    v->running = 1;
    pthread_mutex_lock(&v->mu);
    while (v->port == 0)
        pthread_cond_wait(&v->cv, &v->mu);
    pthread_mutex_unlock(&v->mu);
    return v->port > 0 ? 0 : -1;
}

static int stop(struct srv *v)
{
    if (!v->running)
        return -1;
    ringcast_server_stop(v->s);
    pthread_join(v->thread, NULL); /* the loop thread frees the server */
    v->s = NULL;
    v->running = 0;
    return v->rc;
}

int main(void)
{
    char line[1024];

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < 2; i++)
        if (start(&srvs[i])) {
            fprintf(stderr, "server %d did not start\n", i + 1);
            return 1;
        }
    printf("ports %d %d\n", srvs[0].port, srvs[1].port);
    while (fgets(line, sizeof(line), stdin)) {
        char cmd[16], chan[256], payload[512];
        int n = 0, k = sscanf(line, "%15s %d %255s %511s", cmd, &n, chan, payload);
        struct srv *v = (n == 1 || n == 2) ? &srvs[n - 1] : NULL;

        line[strcspn(line, "\n")] = '\0';
        if (k == 4 && !strcmp(cmd, "pub") && v && v->running) {
            int r = ringcast_publish(v->s, chan, strlen(chan), payload, strlen(payload));
            printf(r ? "error %s: %d\n" : "ok %s\n", line, r);
        } else if (k == 2 && !strcmp(cmd, "stop") && v) {
            int r = stop(v);
            printf(r ? "error %s: %d\n" : "ok %s\n", line, r);
        } else if (k >= 1 && !strcmp(cmd, "quit")) {
            break;
        } else {
            printf("error %s: bad command\n", line);
        }
    }
    for (int i = 0; i < 2; i++)
        if (srvs[i].running)
            stop(&srvs[i]);
    printf("ok quit\n");
    return 0;
}
