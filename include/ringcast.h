/* ringcast.h -- the embeddable ringcast engine: a pub/sub fan-out server inside your program.
 *
 * A host program builds a configuration (the same settings as ringcastd's
 * config file), creates a server from it, starts it listening, and runs its
 * loop on one thread. Redis clients connect and subscribe as they would to
 * ringcastd; the host publishes from any of its threads with
 * ringcast_publish(), and those messages join the same accumulation tick as
 * PUBLISH commands and UDP feed datagrams: encoded once per wire format, one
 * batch of sends per loop iteration.
 *
 * Conventions: handles are opaque; functions that act return 0 or -errno;
 * constructors abort on out-of-memory (like the server itself). Each pointer
 * parameter says whether it is borrowed (the call keeps no reference) or
 * taken. Threads: everything except ringcast_publish() and
 * ringcast_server_stop() must be called from the loop thread -- the thread
 * that calls ringcast_server_listen() must also call ringcast_server_run()
 * (the io_uring backend's ring accepts submissions from one task only).
 *
 * Link with `pkg-config --cflags --libs ringcast`. Documentation:
 * docs/library.md; a complete program: examples/feed_handler.c.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RINGCAST_H
#define RINGCAST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ringcast_config ringcast_config;
typedef struct ringcast_server ringcast_server;

/* Most bytes ringcast_publish() lets wait for the loop thread (payloads plus
 * channel names) before it refuses with -ENOBUFS. */
#define RINGCAST_INBOX_MAX (64u * 1024u * 1024u)

/* The library's version, e.g. "0.1.0". Static string. */
const char *ringcast_version(void);

/* ---- Configuration ---- */

/* A new configuration holding ringcastd's defaults (port 6380 on 127.0.0.1,
 * io uring falling back to epoll, ...). Free it with ringcast_config_free(). */
ringcast_config *ringcast_config_new(void);

/* Sets one setting; value is parsed as the rest of a config-file line, so
 * ringcast_config_set(cfg, "client-output-buffer-limit", "pubsub 32mb 8mb 60")
 * and ringcast_config_set(cfg, "udp-source", "a 127.0.0.1:9000") work as in
 * ringcast.conf. name and value are borrowed. Returns 0, -ENOENT for an
 * unknown setting or -EINVAL for a bad value; ringcast_config_error() says
 * why. Settings: docs/config.md. */
int ringcast_config_set(ringcast_config *cfg, const char *name, const char *value);

/* Loads a ringcast.conf-style file (path borrowed). Returns 0 or -errno. */
int ringcast_config_load_file(ringcast_config *cfg, const char *path);

/* The message of the last failed call on cfg ("" when none). Owned by cfg,
 * valid until its next call. */
const char *ringcast_config_error(const ringcast_config *cfg);

/* Frees cfg. NULL is a no-op. A server keeps its own copy of the settings. */
void ringcast_config_free(ringcast_config *cfg);

/* ---- Server ---- */

/* A new server with a copy of cfg's settings (cfg is borrowed and may be
 * freed at once). Does not listen yet. Free it with ringcast_server_free(). */
ringcast_server *ringcast_server_new(const ringcast_config *cfg);

/* Binds the TCP listeners and the UDP sources and starts the I/O backend.
 * The calling thread becomes the loop thread. Returns 0 or -errno (the
 * reason is also logged on standard error, like ringcastd's). */
int ringcast_server_listen(ringcast_server *srv);

/* The TCP port the server listens on (useful with port 0), or -1 before a
 * successful ringcast_server_listen(). */
int ringcast_server_port(const ringcast_server *srv);

/* Runs the loop on the calling (loop) thread until ringcast_server_stop();
 * then flushes queued output (up to shutdown-timeout seconds) and returns 0.
 * -EINVAL when the server is not listening. A stopped server cannot run
 * again; free it. */
int ringcast_server_run(ringcast_server *srv);

/* Asks the loop to stop; run() returns shortly after. Safe from any thread
 * and from a signal handler. */
void ringcast_server_stop(ringcast_server *srv);

/* Frees srv: closes every connection and socket, drops messages still in
 * the publish inbox. Call it on the loop thread after run() has returned
 * (or instead of run); a ringcast_server_stop() still running on another
 * thread is waited for. No call may start on srv once free has begun.
 * NULL is a no-op. */
void ringcast_server_free(ringcast_server *srv);

/* ---- Publishing ---- */

/* Publishes payload[0..len) on channel[0..clen) to every subscriber of the
 * channel and of every matching pattern, exactly like PUBLISH. Both buffers
 * are borrowed: they are copied before the call returns.
 *
 * Thread-safe: any thread may call it, any time after ringcast_server_new().
 * The message goes into the server's inbox (one mutex lock and one copy of
 * channel and payload); the first message into an empty inbox also writes
 * the loop's eventfd (one system call), later ones ride on the same wake-up.
 * The loop drains the whole inbox once per iteration, so the messages join
 * that iteration's tick, in the order each thread published them. Returns 0,
 * -EMSGSIZE when the payload is larger than proto-max-bulk-len or the channel
 * larger than 64 KiB, -ENOBUFS when RINGCAST_INBOX_MAX bytes are already
 * waiting (the loop is not keeping up; retry later), -ESHUTDOWN once stop
 * was requested. It does not say how many subscribers received the message. */
int ringcast_publish(ringcast_server *srv, const char *channel, size_t clen, const void *payload,
                     size_t len);

/* Counters, read on the loop thread or while the loop is not running. With
 * `workers` above 1 (the library runs one unless set), they count worker 0
 * (the loop thread's) while the loop runs, and every worker once
 * ringcast_server_run() has returned. */
struct ringcast_stats {
    uint64_t clients;            /* connected clients */
    uint64_t messages_published; /* PUBLISH, UDP and ringcast_publish() messages */
    uint64_t deliveries;         /* message x receiving client */
    uint64_t bytes_out;          /* bytes handed to the kernel */
    uint64_t syscalls;           /* system calls the loop made */
    uint64_t inbox_messages;     /* messages that came through ringcast_publish() */
    uint64_t inbox_wakeups;      /* eventfd writes those cost */
};

/* Fills *st (taken by value into the caller's struct). Returns 0. */
int ringcast_server_stats(const ringcast_server *srv, struct ringcast_stats *st);

#ifdef __cplusplus
}
#endif

#endif
