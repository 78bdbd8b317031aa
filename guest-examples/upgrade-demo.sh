#!/usr/bin/env bash
# The upgrade demo: a key/value service (kv-service, v1) serves on
# 127.0.0.1:7070; one client connection stays open the whole time while the
# service is upgraded to v2, refused an upgrade to a broken version (rolled
# back), and moved to a new host process. The connection, the data and the
# connection's own request count survive every step.
#
# Needs: a Rust toolchain (rust-toolchain.toml), port 7070 free
# (FDBOX_DEMO_PORT picks another). The first
# run builds fdbox (about 12 minutes on 2 cores; shared with the tests' build)
# and the guests; later runs take a few seconds. Leaves nothing running and
# nothing in the temp directory, whether it succeeds or fails.
set -euo pipefail
cd "$(dirname "$0")/.."

source guest-examples/demo-build.sh

kv=$guests
port=${FDBOX_DEMO_PORT:-7070}
run=$(mktemp -d "${TMPDIR:-/tmp}/fdbox-upgrade-demo.XXXXXX")
export FDBOX_SOCKET=$run/daemon.sock FDBOX_CONTROL=$run/serve.sock

daemon_pid="" serve_pid=""
# Stop what this script started, by the pids it knows, and remove its
# directory: on success, on failure and on Ctrl-C alike.
cleanup() {
    local status=$?
    set +e
    exec 3>&- 2>/dev/null
    for pid in $serve_pid $daemon_pid; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if [ "$status" != 0 ] && [ -s "$run/serve.log" ]; then
        echo "the service's log:" >&2
        sed 's/^/  /' "$run/serve.log" >&2
    fi
    rm -rf "$run"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The holder daemon keeps the boxes between host processes.
"$fdbox" daemon --socket "$FDBOX_SOCKET" 2>"$run/daemon.log" &
daemon_pid=$!
until [ -S "$FDBOX_SOCKET" ]; do
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$run/daemon.log" >&2; exit 1; }
    sleep 0.1
done

# The service's own log goes to a file, as it would go to the journal: the
# operator reads the answers of `fdbox upgrade` and `fdbox stop`.
serve() {
    echo "+ fdbox serve --device daemon --box kv --listen main=127.0.0.1:$port $1.wasm &"
    "$fdbox" serve --device daemon --box kv --listen main=127.0.0.1:$port "$kv/$1.wasm" \
        2>>"$run/serve.log" &
    serve_pid=$!
    until [ -S "$FDBOX_CONTROL" ]; do
        kill -0 "$serve_pid" 2>/dev/null || { echo "fdbox serve exited" >&2; exit 1; }
        sleep 0.1
    done
}
# `fdbox ARGS`, shown as it runs.
fdbox() { echo "+ fdbox $*"; "$fdbox" "$@"; }
# One request on the long-lived connection (fd 3), and its answer.
ask() { echo "$1" >&3; read -r answer <&3; echo "  $1 -> $answer"; }
# The service has handed over and exited.
stopped() { wait "$serve_pid"; serve_pid=""; }

serve kv-v1
echo "+ exec 3<>/dev/tcp/127.0.0.1/$port   (one connection, kept open to the end)"
exec 3<>/dev/tcp/127.0.0.1/$port
ask "SET greeting hello"; ask "VERSION"; ask "COUNT"
fdbox upgrade "$kv/kv-v2.wasm"
ask "GET greeting"; ask "VERSION"; ask "COUNT"
fdbox upgrade "$kv/kv-broken.wasm" || echo "  (refused, exit $?: v2 serves on)"
ask "VERSION"; ask "COUNT"
fdbox stop
stopped
serve kv-v1
ask "GET greeting"; ask "VERSION"; ask "COUNT"
fdbox stop
stopped
