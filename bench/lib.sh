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
