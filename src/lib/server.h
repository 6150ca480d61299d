/* server.h -- the server state, the connection, and what backends call.
 *
 * struct rc_server ties together the configuration, the engine (channel and
 * pattern tables, frame arenas), the connections and the chosen backend.
 * Everything runs on one loop thread. A connection's life:
 *
 *   backend accepts fd ........ rc_conn_accepted()
 *   bytes arrive .............. rc_conn_input(): parse, execute, queue replies
 *   output queued ............. conn goes on the dirty list; the backend's
 *                               next poll() hands it to the kernel
 *   server wants it closed .... RC_CONN_CLOSE_ASAP (or CLOSE_AFTER_REPLY once
 *                               its queue drains); it is also put on the
 *                               dirty list so the backend sees it
 *   backend tears it down ..... rc_conn_unlink() (idempotent: unsubscribes,
 *                               leaves the client list), closes the fd, and
 *                               when no send is in flight, rc_conn_free()
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_SERVER_H
#define RC_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "dict.h"
#include "msg.h"
#include "queue.h"
#include "resp.h"
#include "util.h"

/* System calls the server makes, by kind (INFO fanout). */
enum rc_sys {
    RC_SYS_IO_URING_ENTER,
    RC_SYS_EPOLL_WAIT,
    RC_SYS_EPOLL_CTL,
    RC_SYS_WRITE,
    RC_SYS_WRITEV,
    RC_SYS_SENDMSG,
    RC_SYS_READ,
    RC_SYS_ACCEPT,
    RC_SYS_CLOSE,
    RC_SYS_SETSOCKOPT,
    RC_SYS_OTHER,
    RC_SYS_RECVMMSG,
    RC_SYS__COUNT
};

extern const char *const rc_sys_names[RC_SYS__COUNT];

struct rc_stats {
    uint64_t conns_received;
    uint64_t conns_rejected; /* maxclients */
    uint64_t commands;
    uint64_t messages_published; /* PUBLISH + SPUBLISH calls */
    uint64_t deliveries;         /* message x receiving client */
    uint64_t bytes_in;
    uint64_t bytes_out;        /* handed to (and accepted by) the kernel */
    uint64_t sends;            /* send operations (iovec batches) */
    uint64_t sends_zc;         /* of which zero-copy (io_uring SEND_ZC) */
    uint64_t obuf_disconnects; /* clients dropped by the output limit */
    uint64_t proto_errors;
    uint64_t slab_bytes; /* bytes currently held in slabs */
    uint64_t sys[RC_SYS__COUNT];
};

static inline uint64_t rc_stats_syscalls(const struct rc_stats *st)
{
    uint64_t n = 0;
    for (int i = 0; i < RC_SYS__COUNT; i++)
        n += st->sys[i];
    return n;
}

/* Connection flags. */
#define RC_CONN_AUTHED            (1u << 0) /* passed AUTH (or no password set) */
#define RC_CONN_CLOSE_AFTER_REPLY (1u << 1) /* close once the queue drains */
#define RC_CONN_CLOSE_ASAP        (1u << 2) /* close now, drop what is queued */
#define RC_CONN_UNLINKED          (1u << 3) /* rc_conn_unlink() done */
#define RC_CONN_DIRTY             (1u << 4) /* on the dirty list */
#define RC_CONN_NO_EVICT          (1u << 5) /* unused for now */

struct rc_conn {
    uint64_t id;
    int fd;
    unsigned flags;
    int proto;      /* 2 or 3 */
    uint32_t slot;  /* backend's slot table index */
    uint32_t gen;   /* bumped when the slot is reused */
    bool send_busy; /* a send is in flight (uring) or blocked on EPOLLOUT (epoll) */
    struct rc_queue out;
    struct rc_buf qbuf;
    size_t qpos; /* bytes of qbuf already executed */
    struct rc_resp_parser parser;
    /* Subscriptions: key -> struct rc_sub *. Allocated on first use. */
    struct rc_dict *channels;
    struct rc_dict *patterns;
    struct rc_dict *shard_channels;
    char *name;
    char *lib_name;
    char *lib_ver;
    char addr[64];  /* "ip:port" of the peer */
    char laddr[64]; /* "ip:port" of our side */
    uint64_t ctime_ms;
    uint64_t last_ms;       /* last interaction */
    uint64_t soft_since_ms; /* over the soft output limit since, 0 = not */
    const char *last_cmd;   /* static name of the last command (CLIENT LIST cmd=) */
    uint64_t tot_cmds;
    struct rc_conn *prev, *next;   /* server's client list (creation order) */
    struct rc_conn *dprev, *dnext; /* dirty list */
    void *be;                      /* backend's per-connection state */
    struct rc_mconn *md;           /* mdata.c: seq mode, slow-consumer side table */
};

struct rc_server {
    struct rc_config cfg;
    const struct rc_backend_ops *be;
    void *be_state;
    /* Engine state. */
    struct rc_dict *channels;       /* name -> struct rc_chan */
    struct rc_dict *patterns;       /* pattern -> struct rc_chan (pattern subscribers) */
    struct rc_dict *shard_channels; /* name -> struct rc_chan */
    struct rc_arena frames;         /* shared message frames */
    struct rc_arena replies;        /* per-client replies */
    struct rc_buf rbuf;             /* reply being built for the current command */
    /* Connections. */
    struct rc_conn *clients_head, *clients_tail;
    uint64_t nclients;
    uint64_t npubsub_clients;
    uint64_t next_id;
    struct rc_conn *dirty_head, *dirty_tail;
    int listen_fds[RC_MAX_BIND];
    int nlisten;
    int port; /* actual port (when cfg.port is 0) */
    struct rc_stats stats;
    uint64_t start_ms;
    uint64_t start_wall_us;
    uint64_t last_cron_ms;
    bool stopping; /* shutdown in progress */
    volatile sig_atomic_t stop_requested;
    uint64_t stop_deadline_ms;
    char run_id[41];
    char *config_file; /* absolute path, for INFO */
    char *executable;
    struct rc_udp *udp;  /* UDP feed sources (udp.c), NULL when none */
    struct rc_mdata *md; /* mdata.c: last values, sequences (market-data extensions) */
};

/* ---- Server life ---- */

/* Creates a server for cfg (copied, strings included). Does not listen. */
struct rc_server *rc_server_new(const struct rc_config *cfg);
/* Binds and listens on every bind address; picks the backend (uring falls
 * back to epoll with one log line). Returns 0 or -errno, logging why. */
int rc_server_start(struct rc_server *s);
/* Runs the loop until a stop is requested and the shutdown has flushed. */
int rc_server_run(struct rc_server *s);
/* Async-signal-safe: asks the loop to shut down. */
void rc_server_request_stop(struct rc_server *s);
/* Tears everything down. NULL is a no-op. */
void rc_server_free(struct rc_server *s);

/* ---- For backends ---- */

/* A new connection on fd (non-blocking). Returns it; it may already be
 * marked CLOSE_AFTER_REPLY (maxclients reached). */
struct rc_conn *rc_conn_accepted(struct rc_server *s, int fd);
/* Bytes received on c: parsed and executed, replies queued. */
void rc_conn_input(struct rc_server *s, struct rc_conn *c, const char *buf, size_t n);
/* The kernel accepted n bytes of c's queue. */
void rc_conn_sent(struct rc_server *s, struct rc_conn *c, size_t n);
/* Detaches c from the server (subscriptions, client list, dirty list) and
 * drops its unsent output. Idempotent. reason is logged at verbose level. */
void rc_conn_unlink(struct rc_server *s, struct rc_conn *c, const char *reason);
/* Frees c. Requires unlink first and nothing in flight. */
void rc_conn_free(struct rc_server *s, struct rc_conn *c);
/* Pops the next connection from the dirty list, or NULL. */
struct rc_conn *rc_server_pop_dirty(struct rc_server *s);
/* Takes c off the dirty list (no-op when it is not on it). */
void rc_server_unmark_dirty(struct rc_server *s, struct rc_conn *c);
/* True when a backend should tear c down now. */
static inline bool rc_conn_should_close(const struct rc_conn *c)
{
    return (c->flags & RC_CONN_CLOSE_ASAP) ||
           ((c->flags & RC_CONN_CLOSE_AFTER_REPLY) && rc_queue_empty(&c->out));
}

/* ---- Inside the server ---- */

/* Puts c on the dirty list (if not there). */
void rc_conn_mark_dirty(struct rc_server *s, struct rc_conn *c);
/* Moves s->rbuf (the reply built so far) to c's queue. */
void rc_conn_flush_reply(struct rc_server *s, struct rc_conn *c);
/* Queues a shared frame reference for c and enforces its output limit. */
void rc_conn_push_frame(struct rc_server *s, struct rc_conn *c, struct rc_slab *slab, uint32_t off,
                        uint32_t len);
/* Schedules c to be closed as soon as possible (output dropped). */
void rc_conn_close_asap(struct rc_server *s, struct rc_conn *c, const char *why);

/* Periodic work (output-limit timers, idle timeouts); called about every 100 ms. */
void rc_server_cron(struct rc_server *s);

#endif
