#!/usr/bin/env bash
# The upgrade demo: a key/value service (kv-service, v1) serves on
# 127.0.0.1:7070; one client connection stays open the whole time while the
# service is upgraded to v2, refused an upgrade to a broken version (rolled
# back), and moved to a new host process. The connection, the data and the
# connection's own request count survive every step.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
cargo build --release --bin fdbox
cargo build --release --target wasm32-wasip2 \
    --manifest-path guest-examples/rust/Cargo.toml --target-dir target/guest-examples

fdbox=target/release/fdbox
kv=target/guest-examples/wasm32-wasip2/release
run=$(mktemp -d)
export FDBOX_SOCKET=$run/daemon.sock FDBOX_CONTROL=$run/serve.sock
# The holder daemon `fdbox serve` starts keeps the boxes between host
# processes; it goes with the demo.
trap 'kill $(jobs -p) 2>/dev/null; pkill -f "daemon --socket $FDBOX_SOCKET" || true; rm -rf "$run"' EXIT

serve() {
    "$fdbox" serve --device daemon --box kv --listen main=127.0.0.1:7070 "$kv/$1.wasm" &
    until [ -S "$FDBOX_CONTROL" ]; do sleep 0.1; done
}
# One request on the long-lived connection (fd 3), and its answer.
ask() { echo "$1" >&3; read -r answer <&3; echo "  $1 -> $answer"; }

set -x
serve kv-v1
exec 3<>/dev/tcp/127.0.0.1/7070
{ set +x; } 2>/dev/null
ask "SET greeting hello"; ask "VERSION"; ask "COUNT"
set -x
"$fdbox" upgrade "$kv/kv-v2.wasm"
{ set +x; } 2>/dev/null
ask "GET greeting"; ask "VERSION"; ask "COUNT"
set -x
"$fdbox" upgrade "$kv/kv-broken.wasm" || true
{ set +x; } 2>/dev/null
ask "VERSION"; ask "COUNT"
set -x
"$fdbox" stop
serve kv-v1
{ set +x; } 2>/dev/null
ask "GET greeting"; ask "VERSION"; ask "COUNT"
"$fdbox" stop
