/* server.h -- the server: configuration, connections, and the wiring of the layers.
 *
 * struct rc_server ties an engine (core: channels, fan-out), an I/O backend
 * (io: sockets, the batch per tick) and the connection layer together. A
 * struct rc_conn is all three views of one client: its io part (socket and
 * send queue, what the backend sees), its sink (subscriptions and wire
 * format, what the engine sees) and the rest (parser, auth, names). Everything
 * of one server runs on its loop thread. A connection's life:
 *
 *   backend accepts fd ........ host op accepted -> rc_conn_accepted()
 *   bytes arrive .............. host op input: parse, execute, queue replies
 *   output queued ............. conn goes on the io dirty list; the backend's
 *                               next poll() hands it to the kernel
 *   server wants it closed .... RC_IO_CLOSE_ASAP (or CLOSE_AFTER_REPLY once
 *                               its queue drains); it is also put on the
 *                               dirty list so the backend sees it
 *   backend tears it down ..... host op unlink (idempotent: unsubscribes,
 *                               leaves the lists), closes the fd, and when no
 *                               send is in flight, host op free
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_SERVER_H
#define RC_SERVER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "codecs.h"
#include "config.h"
#include "engine.h"
#include "io.h"
#include "mdata.h"
#include "msg.h"
#include "queue.h"
#include "resp.h"
#include "util.h"
#include "worker.h"

/* Counters of the connection layer (the engine and the backend keep their own). */
struct rc_stats {
    uint64_t conns_received;
    uint64_t conns_rejected; /* maxclients, protected mode */
    uint64_t commands;
    uint64_t bytes_in;
    uint64_t obuf_disconnects; /* clients dropped by the output limit */
    uint64_t proto_errors;
    uint64_t maxmemory_disconnects; /* clients dropped by the memory ceiling */
    uint64_t maxmemory_conflations; /* clients left to conflation by it */
};

/* Connection flags beyond the io ones (io.h keeps bits below 16). */
#define RC_CONN_AUTHED    (1u << 16) /* passed AUTH (or no password set) */
#define RC_CONN_RELEASING (1u << 17) /* subscriptions still being released in slices */
#define RC_CONN_FREE_WAIT (1u << 18) /* the backend is done with it: free once released */
#define RC_CONN_PAUSED    (1u << 19) /* input waits for its holes to fill (worker.h) */

/* Subscriptions released per loop iteration for closing clients, in all:
 * about 1.5 us each, so one client's exit holds the others up for a few
 * milliseconds at most (docs/robustness.md, "Teardown"). */
#define RC_TEARDOWN_SLICE 2048

/* How a connection speaks: RESP, or HTTP and what a request upgraded it to. */
enum rc_transport {
    RC_TRANSPORT_RESP, /* the RESP port */
    RC_TRANSPORT_HTTP, /* the HTTP port, between requests */
    RC_TRANSPORT_SSE,  /* GET /events: a Server-Sent Events stream */
    RC_TRANSPORT_WS,   /* GET /ws: a WebSocket */
    RC_TRANSPORT__COUNT
};

struct rc_conn {
    struct rc_io_conn io; /* first: the backend's view */
    uint8_t transport;    /* enum rc_transport */
    struct rc_sink sink;  /* the engine's view: subscriptions, wire format */
    struct rc_server *srv;
    struct rc_http *http; /* http.c: state on the HTTP port, NULL on the RESP port */
    int proto;            /* 2 or 3 */
    struct rc_buf qbuf;
    struct rc_resp_parser parser;
    char *name;
    char *lib_name;
    char *lib_ver;
    char addr[64];  /* "ip:port" of the peer */
    char laddr[64]; /* "ip:port" of our side */
    uint64_t ctime_ms;
    uint64_t last_ms;          /* last interaction */
    uint64_t soft_since_ms;    /* over the soft output limit since, 0 = not */
    const char *last_cmd;      /* static name of the last command (CLIENT LIST cmd=) */
    uint64_t mem_conflated_at; /* queued bytes when maxmemory left it to conflation, 0 = not */
    struct rc_conn *rel_next;  /* on the server's release list (RC_CONN_RELEASING) */
    uint64_t tot_cmds;
    /* Output waiting behind replies other workers compute (worker.h). */
    struct rc_hold *hold_head, *hold_tail;
    uint32_t nholes; /* holes not yet filled; the connection is not freed before */
    uint32_t posted; /* its publishes posted to an owner, not yet acknowledged (nor freed) */
    struct rc_conn *hw_prev, *hw_next; /* on the server's hole_waiters list */
};

static inline struct rc_conn *rc_conn_of(struct rc_io_conn *ic)
{
    return (struct rc_conn *)ic; /* io is the first member */
}

struct rc_server {
    struct rc_config cfg;
    struct rc_logger log;
    struct rc_io io;         /* backend, connection lists, syscall counters */
    struct rc_engine *eng;   /* channels, patterns, fan-out, market data */
    struct rc_arena replies; /* per-client replies, from the engine's slab pool */
    struct rc_buf rbuf;      /* reply being built for the current command */
    uint64_t nclients;
    uint64_t next_id;
    int listen_fds[RC_MAX_LISTEN];
    int nlisten;
    int port;      /* actual port (when cfg.port is 0) */
    int http_port; /* the HTTP port, 0 when off */
    struct rc_stats stats;
    uint64_t start_ms;
    uint64_t start_wall_us;
    uint64_t last_cron_ms;
    bool stopping;              /* shutdown in progress */
    atomic_bool stop_requested; /* set from signal handlers and other threads */
    uint64_t stop_deadline_ms;
    bool stop_by_user; /* SHUTDOWN rather than a signal (for the log) */
    bool stop_now;     /* SHUTDOWN NOW: exit without draining queued output */
    char run_id[41];
    char *config_file; /* absolute path, for INFO */
    char *executable;
    struct rc_udp *udp;           /* UDP feed sources (udp.c), NULL when none */
    struct rc_http_scratch *http; /* http.c: scratch for the HTTP port */
    struct rc_upstream *up;       /* the NATS upstream (upstream.c), NULL when none */
    /* The memory ceiling (memory.c). */
    uint64_t maxmemory;        /* effective ceiling in bytes */
    uint64_t machine_mem;      /* RAM (or cgroup limit) seen at start, for the automatic ceiling */
    uint64_t mem_peak;         /* highest used_memory seen */
    uint64_t mem_scan_at;      /* used_memory of the last scan that found nothing to cut */
    uint64_t mem_qbuf;         /* bytes allocated for query buffers */
    struct rc_conn *releasing; /* closed clients whose subscriptions go in slices */
    /* Workers (worker.h): NULL with one worker. */
    struct rc_workers *wk;
    int widx;                     /* this worker's index */
    struct rc_wstate *ws;         /* its inbox, owner tables, pattern copy */
    struct rc_conn *fill_conn;    /* a hole of this connection is being filled... */
    struct rc_hold *fill_hole;    /* ...this one */
    bool quiet_counted;           /* counted in wk->quiet (shutdown) */
    struct rc_conn *hole_waiters; /* closed clients waiting for replies to their holes */
};

static inline struct rc_server *rc_server_of(struct rc_io *io)
{
    return (struct rc_server *)((char *)io - offsetof(struct rc_server, io));
}

/* ---- Server life ---- */

/* Creates a server for cfg (copied, strings included). Does not listen. */
struct rc_server *rc_server_new(const struct rc_config *cfg);
/* Binds and listens on every bind address; picks the backend (uring falls
 * back to epoll with one log line). Returns 0 or -errno, logging why. */
int rc_server_start(struct rc_server *s);
/* Runs the loop until a stop is requested and the shutdown has flushed
 * (every worker's, each on its own thread). */
int rc_server_run(struct rc_server *s);
/* One worker's loop (rc_server_run runs one per worker). */
void rc_server_loop(struct rc_server *s);
/* Worker i of the server whose worker 0 is s (worker.c), and its end. */
struct rc_server *rc_server_new_worker(struct rc_server *s, int i);
void rc_server_free_worker(struct rc_server *w);
/* Worker w's backend takes its listeners (on w's own thread). */
int rc_server_listen_worker(struct rc_server *w);
/* Tears down worker s's backend and its connections (on the thread that ran it). */
void rc_server_teardown_io(struct rc_server *s);
/* CONFIG RESETSTAT's work on one worker. */
void rc_server_resetstat(struct rc_server *s);
/* Async-signal-safe: asks the loop to shut down. */
void rc_server_request_stop(struct rc_server *s);
/* Tears everything down. NULL is a no-op. */
void rc_server_free(struct rc_server *s);

/* ---- Connections ---- */

/* A new connection on fd (the backend's accepted op). It may already be
 * marked CLOSE_AFTER_REPLY (maxclients, protected mode). */
struct rc_conn *rc_conn_accepted(struct rc_server *s, int fd);
/* Bytes received on c: parsed and executed, replies queued. */
void rc_conn_input(struct rc_server *s, struct rc_conn *c, const char *buf, size_t n);
/* Detaches c from the server (subscriptions, lists) and drops its unsent
 * output. Idempotent. reason is logged at verbose level. */
void rc_conn_unlink(struct rc_server *s, struct rc_conn *c, const char *reason);
/* Frees c. Requires unlink first and nothing in flight. */
void rc_conn_free(struct rc_server *s, struct rc_conn *c);
/* Copies the settings the backend reads into s->io.cfg (after CONFIG SET). */
void rc_server_sync_io_cfg(struct rc_server *s);

/* ---- Inside the server ---- */

/* Puts c on the dirty list (if not there). */
void rc_conn_mark_dirty(struct rc_server *s, struct rc_conn *c);
/* Does c hold any subscription (Redis's "pubsub client")? */
static inline bool rc_conn_subscribed(const struct rc_conn *c)
{
    return rc_sink_subscribed(&c->sink);
}
/* The engine's format id of c's transport and protocol. */
static inline uint8_t rc_conn_fmt(const struct rc_conn *c)
{
    if (c->transport == RC_TRANSPORT_SSE)
        return RC_FMT_SSE;
    if (c->transport == RC_TRANSPORT_WS)
        return RC_FMT_WS;
    return c->proto == 3 ? RC_FMT_RESP3 : RC_FMT_RESP2;
}
/* Switches c to RESP proto (2 or 3), and its subscriptions to that format. */
void rc_conn_set_proto(struct rc_server *s, struct rc_conn *c, int proto);
/* Moves s->rbuf (the reply built so far) to c's queue. */
void rc_conn_flush_reply(struct rc_server *s, struct rc_conn *c);
/* Queues a copy of p[0..n) for c (from the reply arena), through the output
 * limit: raw bytes, whatever c's transport. */
void rc_conn_push_bytes(struct rc_server *s, struct rc_conn *c, const void *p, size_t n);
/* Queues slab[off..off+len) for c now (no hold list), through the output
 * limit: the hold list releasing what waited (worker.c). */
void rc_conn_queue(struct rc_server *s, struct rc_conn *c, struct rc_slab *slab, uint32_t off,
                   uint32_t len);
/* Commands that wait, unparsed, for the connection's holes to fill: those
 * whose replies are pushes a subscriber must see in order with its
 * messages (SUBSCRIBE and the like; messages pass holes). */
struct rc_req;
bool rc_req_waits_for_holes(const struct rc_req *r);
/* c's last hole was filled: runs the input it held back, or frees it if
 * it was only waiting for that. */
void rc_conn_holes_done(struct rc_server *s, struct rc_conn *c);
/* Schedules c to be closed as soon as possible (output dropped). */
void rc_conn_close_asap(struct rc_server *s, struct rc_conn *c, const char *why);

/* ---- Memory ceiling (memory.c) ---- */

/* What used_memory is made of. */
struct rc_mem_usage {
    uint64_t slabs, free_slabs, mdata, qbuf, clients;
    uint64_t used; /* their sum */
};
void rc_mem_usage(struct rc_server *s, struct rc_mem_usage *u);
/* used_memory (also updates the peak). */
uint64_t rc_mem_used(struct rc_server *s);
/* Computes the effective ceiling from cfg.maxmemory (0 = half the RAM). */
void rc_mem_apply_cfg(struct rc_server *s);
/* Enforces the ceiling: past it, the largest backlogs are conflated or cut.
 * force: scan even if the last scan found nothing (cron). */
void rc_mem_check(struct rc_server *s, bool force);
/* INFO "memory" section. */
struct rc_view;
void rc_mem_info(struct rc_server *s, const struct rc_view *v, struct rc_buf *b);

/* ---- A worker's numbers, for INFO and /metrics (info.c) ---- */

struct rc_view {
    uint64_t clients, pubsub_clients, max_out;
    uint64_t by_transport[RC_TRANSPORT__COUNT];
    struct rc_stats stats;
    struct rc_io_stats io;
    struct rc_engine_stats eng;
    struct rc_mdata_info md;
    struct rc_mem_usage mem;
    uint64_t mem_peak, maxmemory;
    uint64_t slab_bytes, channels, shardchannels;
    uint32_t busy_permille, load_permille, busy_loops;
    struct rc_worker_counters wc;
};
/* Worker s's numbers. */
void rc_view_fill(struct rc_server *s, struct rc_view *v);
/* Adds v into sum (counters add, peaks take the larger). */
void rc_view_add(struct rc_view *sum, const struct rc_view *v);
/* A gather part (worker.h) carrying the worker's view... */
void rc_view_part(struct rc_server *w, const struct rc_gather *g, struct rc_buf *out);
/* ...and the sum of g's parts (each: per worker, g->n of them). */
void rc_view_sum(const struct rc_gather *g, struct rc_view *sum, struct rc_view *each);

/* Releases the next slice of closed clients' subscriptions; true while any
 * is left (the loop then does not sleep). */
bool rc_server_release_tick(struct rc_server *s);

/* Periodic work (output-limit timers, idle timeouts); called about every 100 ms. */
void rc_server_cron(struct rc_server *s);

/* Iterates the live connections in creation order. */
/* NOLINTBEGIN(bugprone-macro-parentheses): c names the loop variable */
#define RC_FOR_EACH_CONN(s, c)                                                                     \
    for (struct rc_conn *c = rc_conn_of((s)->io.head); c;                                          \
         c = c->io.next ? rc_conn_of(c->io.next) : NULL)
/* NOLINTEND(bugprone-macro-parentheses) */

#endif
