/* metrics.h -- the server's counters in the Prometheus text exposition format (GET /metrics).
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_METRICS_H
#define RC_METRICS_H

#include "server.h"
#include "util.h"

/* The Content-Type of what rc_metrics_render() writes. */
#define RC_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends every metric family of s to out (borrowed, grown as needed) in the
 * Prometheus text format 0.0.4: `# HELP` and `# TYPE` per family, names
 * prefixed `ringcast_`, counters suffixed `_total`. Reads the counters of the
 * connection layer, the backend, the engine, market data and the UDP sources;
 * counts the getrusage() it makes like INFO does. Runs on s's loop thread. */
/* The page from v, the numbers of every worker summed (INFO's view). */
void rc_metrics_render_view(struct rc_server *s, struct rc_view *v, struct rc_buf *out);
/* The page of s alone (one worker). */
void rc_metrics_render(struct rc_server *s, struct rc_buf *out);

#endif
