#!/usr/bin/env bash
# The fdbox demo: a counter guest keeps its count in a boxed memory file,
# traps on purpose every 4 counts, and is restarted by the host; each new
# instance unseals the box and carries on from the last count.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
cargo build --release --bin fdbox
cargo build --release --target wasm32-wasip2 \
    --manifest-path guest-examples/rust/Cargo.toml --target-dir target/guest-examples

set -x
target/release/fdbox run --device memory --box counter --restart on-failure --max-restarts 5 \
    target/guest-examples/wasm32-wasip2/release/counter.wasm -- --until 10 --crash-every 4
