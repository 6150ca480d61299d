# bench/lib.sh -- helpers the benchmark scripts share (sourced, not run).
#
# SPDX-License-Identifier: BSD-3-Clause

# A free TCP port on 127.0.0.1 (for the next server to bind).
free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# wait_ports PORT...: waits until every port accepts a connection, at most 5 s in all.
# Returns 1 when one did not.
wait_ports() {
    /usr/bin/python3 - "$@" <<'PY'
import socket, sys, time
end = time.monotonic() + 5
for port in map(int, sys.argv[1:]):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.monotonic() > end:
                sys.exit(1)
            time.sleep(0.05)
PY
}

# Prints the running script's "# Usage:" comment block (down to its SPDX line).
usage() {
    sed -n '/^# Usage:/,/^# SPDX/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

# Stops the server whose PID is in SERVER_PID (TERM, up to 5 s, then KILL), and clears it.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
