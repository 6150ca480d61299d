/* config.h -- server settings: defaults, Redis-style config files, flags, CONFIG GET.
 *
 * One table describes every setting (name, type, default, limits), so the
 * config file, the command-line flags (`--port 6380` is the line `port 6380`)
 * and CONFIG GET all read the same definitions and agree on names and
 * formats. Values are validated when set; errors say which line and why.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_CONFIG_H
#define RC_CONFIG_H

#define RC_MAX_WORKERS 64 /* loop threads; a bit each in 64-bit masks */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"
#include "mdata.h"
#include "util.h"

#define RC_MAX_UDP  16 /* udp-source lines */
#define RC_UDP_NAME 32 /* longest source name + 1 */
#define RC_UDP_ADDR 64

/* Longest upstream-* value + 1. */
#define RC_UPSTREAM_CFG 1024
/* Longest kmod-device path + 1. */
#define RC_KMOD_DEVICE_CFG 256

/* One "udp-source <name> <addr:port> [group <mcast-addr> [iface <ifname|addr>]]"
 * (udp.c, docs/udp.md). Fixed-size strings: a config copies by value. */
struct rc_udp_source_cfg {
    char name[RC_UDP_NAME];
    char addr[RC_UDP_ADDR];  /* bind address, without brackets */
    int port;                /* 0 = any free port (INFO sources shows it) */
    char group[RC_UDP_ADDR]; /* multicast group, "" = unicast */
    char iface[RC_UDP_ADDR]; /* interface name or address, "" = any */
};

enum rc_io_kind { RC_IO_URING, RC_IO_EPOLL, RC_IO_NAIVE, RC_IO_KMOD };

struct rc_obuf_limit {
    uint64_t hard;      /* bytes; 0 = none */
    uint64_t soft;      /* bytes; 0 = none */
    uint64_t soft_secs; /* how long over soft before disconnecting */
};

struct rc_config {
    int port;                /* "port" [6380]; 0 = any free port */
    char *bind[RC_MAX_BIND]; /* "bind" ["127.0.0.1"], space-separated list */
    int nbind;
    int tcp_backlog;            /* "tcp-backlog" [511] */
    uint64_t maxclients;        /* "maxclients" [10000] */
    char *requirepass;          /* "requirepass" [NULL = none] */
    bool protected_mode;        /* "protected-mode" [yes] */
    int http_port;              /* "http-port" SSE, WebSocket, /metrics [8380]; 0 = off */
    char *http_allowed_origins; /* "http-allowed-origins" ["" = the request's own host] */
    uint64_t http_max_request;  /* "http-max-request" request line + headers [16kb] */
    uint64_t ws_max_frame;      /* "ws-max-frame" largest client message [1mb] */
    uint64_t http_idle_timeout; /* "http-idle-timeout" s, plain HTTP connections [30]; 0 = never */
    struct rc_obuf_limit obuf_normal;   /* "client-output-buffer-limit normal 0 0 0" */
    struct rc_obuf_limit obuf_pubsub;   /* "client-output-buffer-limit pubsub 32mb 8mb 60" */
    uint64_t proto_max_bulk_len;        /* "proto-max-bulk-len" [512mb] */
    uint64_t proto_max_multibulk_len;   /* "proto-max-multibulk-len" [2147483647] */
    uint64_t client_query_buffer_limit; /* "client-query-buffer-limit" [1gb] */
    uint64_t maxmemory;                 /* "maxmemory" bytes, 0 = half the RAM [0] */
    uint64_t max_name_len;              /* "max-name-len" channel/pattern bytes, 0 = none [1024] */
    uint64_t timeout;                   /* "timeout" idle seconds, 0 = never [0] */
    enum rc_io_kind io;                 /* "io" uring|epoll|naive|kmod [uring] */
    uint64_t tick_us;                   /* "tick-us" accumulation window [0] */
    uint64_t accum_budget_us;           /* "accum-budget-us" adaptive hold at most [500] */
    uint64_t tick_bytes;    /* "tick-bytes" flush early past this many queued bytes [1mb] */
    uint64_t so_sndbuf;     /* "so-sndbuf" per client socket, 0 = kernel default [0] */
    uint64_t uring_entries; /* "uring-entries" submission queue size [4096] */
    uint64_t zc_threshold;  /* "send-zc-threshold" bytes, 0 = off [0] */
    char kmod_device[RC_KMOD_DEVICE_CFG]; /* "kmod-device" [/dev/ringcast] */
    bool kmod_zerocopy;                   /* "kmod-zerocopy" [no] */
    int loglevel;                         /* "loglevel" debug|verbose|notice|warning [notice] */
    char *logfile;                        /* "logfile" ["" = stderr] */
    uint64_t shutdown_timeout;            /* "shutdown-timeout" seconds to flush on SIGTERM [2] */
    uint64_t workers; /* "workers" loop threads, 0 = one per CPU of the affinity mask [0] */
    /* Market-data extensions (core/mdata.h, docs/extensions.md); none by default:
     * "mdata-rule <pattern> <option>..." [none], "mdata-max-channels" [100000],
     * "mdata-max-memory" payload bytes [64mb], "mdata-queue-soft" [1mb],
     * "mdata-queue-low" [256kb], "mdata-pending-max" [4mb], "mdata-lastp-max" [1000] */
    struct rc_mdata_cfg md;
    struct rc_udp_source_cfg udp[RC_MAX_UDP]; /* "udp-source", repeatable [none] */
    int nudp;
    char udp_arb[RC_MAX_UDP][2][RC_UDP_NAME]; /* "udp-arbitrate <a> <b>", repeatable [none] */
    int nudp_arb;
    /* NATS upstream (upstream.h, docs/cluster.md); fixed-size strings so a
     * config still copies by value. "" = unset. */
    char upstream[RC_UPSTREAM_CFG];          /* "upstream" nats:// URLs, comma-separated [""] */
    char upstream_user[RC_UPSTREAM_CFG];     /* "upstream-user" [""] */
    char upstream_password[RC_UPSTREAM_CFG]; /* "upstream-password" [""] */
    char upstream_creds[RC_UPSTREAM_CFG];    /* "upstream-creds" .creds file [""] */
    bool upstream_tls;                       /* "upstream-tls" [no] */
    char upstream_tls_ca[RC_UPSTREAM_CFG];   /* "upstream-tls-ca" CA file [""] */
};

/* Replaces c->md.rules (a shallow copy of another config's) by a deep copy. */
void rc_config_dup_rules(struct rc_config *c);
/* Frees c->md.rules and empties the list. */
void rc_config_free_rules(struct rc_config *c);
/* True for the settings CONFIG SET may change at run time. */
bool rc_config_runtime(const char *name);
/* True for any setting of the table (case-insensitive). */
bool rc_config_exists(const char *name);

/* Fills defaults. */
void rc_config_init(struct rc_config *c);
/* Frees strings. NULL is a no-op. */
void rc_config_free(struct rc_config *c);

/* Sets one setting from its words (argv[0] is the name, case-insensitive,
 * the rest its value words). Returns 0, or -EINVAL / -ENOENT with a message
 * in err (like Redis: "Bad directive or wrong number of arguments",
 * "argument must be a memory value", ...). */
int rc_config_set(struct rc_config *c, int argc, const char *const *argv, char *err, size_t errlen);

/* Parses a whole Redis-style config text: one `name value...` per line,
 * '#' comments, blank lines, double-quoted values with escapes. On error
 * returns -EINVAL and writes "line N: <reason>" to err. */
int rc_config_load_string(struct rc_config *c, const char *text, size_t len, char *err,
                          size_t errlen);
/* Reads and loads a file; -errno (with err set) when it cannot be read. */
int rc_config_load_file(struct rc_config *c, const char *path, char *err, size_t errlen);

/* Calls fn(name, value) for every setting whose name matches the glob
 * pattern, in table order, with the value formatted as CONFIG GET shows it. */
void rc_config_get(const struct rc_config *c, const char *pattern, size_t plen,
                   void (*fn)(void *arg, const char *name, const char *value), void *arg);

const char *rc_io_name(enum rc_io_kind io);

#endif
