#!/usr/bin/env bash
# run-demo.sh -- `make run`: ringcastd in the foreground, fed live quotes by ringcast-feed.
#
# Usage: scripts/run-demo.sh BUILD_DIR PORT [ringcastd flags...]
# The server listens on 127.0.0.1:PORT (TCP) and takes the simulator's UDP
# datagrams on 127.0.0.1:PORT (UDP; a separate port space). The simulator runs
# as a background child: it is stopped when the server exits, however that
# happens (Ctrl-C reaches the server directly; a non-interactive shell's
# background jobs ignore SIGINT, so the EXIT trap stops the feed), and it
# also exits by itself if this script dies (--exit-with-parent).
# It prints the dashboard's URL (the HTTP port: 8380 unless --http-port says).
# Environment: FEED_SYMBOLS (8), FEED_RATE (40 msg/s in total).
set -u
build=${1:?usage: run-demo.sh BUILD_DIR PORT [flags...]}
port=${2:?usage: run-demo.sh BUILD_DIR PORT [flags...]}
shift 2

# The dashboard's port: ringcastd's default unless the flags change it.
http_port=8380
prev=""
for a in "$@"; do
    [ "$prev" = "--http-port" ] && http_port=$a
    prev=$a
done

feed_pid=""
stop_feed() {
    if [ -n "$feed_pid" ]; then
        kill -TERM "$feed_pid" 2>/dev/null
        wait "$feed_pid" 2>/dev/null
        feed_pid=""
    fi
}
trap stop_feed EXIT

if [ "$http_port" = "0" ]; then
    dashboard="off (--http-port 0)"
else
    dashboard="http://127.0.0.1:$http_port/   (Prometheus: http://127.0.0.1:$http_port/metrics)"
fi
cat >&2 <<MSG
ringcast demo: ringcastd on 127.0.0.1:$port, live quotes from ringcast-feed over UDP.
  Dashboard: $dashboard
  redis-cli -p $port subscribe quotes.AAPL      # one symbol
  redis-cli -p $port psubscribe 'quotes.*'      # all of them
  redis-cli -p $port info sources               # feed sequence, gaps, duplicates
Ctrl-C stops both. The bare server: make run DEMO=0
MSG

"$build/ringcast-feed" --udp "127.0.0.1:$port" --symbols "${FEED_SYMBOLS:-8}" \
    --rate "${FEED_RATE:-40}" --quiet --exit-with-parent &
feed_pid=$!
"$build/ringcastd" --port "$port" --udp-source demo "127.0.0.1:$port" "$@"
rc=$?
stop_feed
exit $rc
