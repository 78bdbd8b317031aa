#!/usr/bin/env bash
# The fdbox demo: a counter guest keeps its count in a boxed memory file,
# traps on purpose every 4 counts, and is restarted by the host; each new
# instance unseals the box and carries on from the last count.
#
# Needs: a Rust toolchain (rust-toolchain.toml). The first run builds fdbox
# (about 12 minutes on 2 cores; the tests share that build) and the guests;
# later runs take a second.
set -euo pipefail
cd "$(dirname "$0")/.."

source guest-examples/demo-build.sh

set -x
"$fdbox" run --device memory --box counter --restart on-failure --max-restarts 5 \
    "$guests/counter.wasm" -- --until 10 --crash-every 4
