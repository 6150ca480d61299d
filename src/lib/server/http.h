/* http.h -- the HTTP port: requests, Server-Sent Events streams and WebSockets.
 *
 * A connection accepted on http-port starts as RC_TRANSPORT_HTTP and serves
 * HTTP/1.1 requests (keep-alive) until one of them turns it into an SSE
 * stream (GET /events) or a WebSocket (GET /ws). From then on it is a
 * subscriber like any other: its sink carries the SSE or WebSocket format id,
 * so the engine encodes each message once for all such subscribers
 * (proto/codec_http.c). docs/http.md is the user's view.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_HTTP_H
#define RC_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "server.h"

/* Answers a connection refused at accept (protected mode 403, maxclients
 * 503) with status and text, then closes it. */
void rc_http_refuse(struct rc_server *s, struct rc_conn *c, int status, const char *text);
/* Parses and serves what buf[0..len) holds; returns the bytes used (the
 * rest is kept by the caller until more arrives). */
size_t rc_http_process(struct rc_server *s, struct rc_conn *c, const char *buf, size_t len);
/* A WebSocket's command reply: turns the RESP in s->rbuf into JSON text
 * frames and queues them (rc_conn_flush_reply calls it). */
void rc_http_ws_flush(struct rc_server *s, struct rc_conn *c);
/* Runs the WebSocket command that waited for c's holes to fill (worker.h). */
void rc_http_ws_resume(struct rc_server *s, struct rc_conn *c);
/* Periodic check of a plain HTTP connection (not a stream or a WebSocket):
 * idle past http-idle-timeout it is closed; a request head incomplete that
 * long gets 408 first, however slowly its bytes trickle in. */
void rc_http_cron(struct rc_server *s, struct rc_conn *c, uint64_t now);
/* Frees c's HTTP state. */
void rc_http_free(struct rc_conn *c);
/* The server's scratch space for the HTTP port. */
void rc_http_server_free(struct rc_server *s);

#endif
