#!/usr/bin/env bash
# Installs what the non-Rust guest examples are built with, once:
#   C           Debian's clang 19 and wasi-libc (apt)
#   Python      componentize-py, in a venv at target/guest-toolchains/venv (pip)
#   JavaScript  @bytecodealliance/componentize-js, in
#               target/guest-toolchains/node_modules (npm)
# The build of the guests (guest-examples/artifacts/build.rs, run by
# `cargo build`/`cargo test`) finds them there. Rust needs only
# `rustup target add wasm32-wasip2`. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/guest-toolchains
mkdir -p "$tools"

rustup target add wasm32-wasip2

# Debian packages, only those missing (a newer Node.js from elsewhere is
# kept: Debian's npm would conflict with it).
packages=()
for p in clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc python3-venv; do
    dpkg -s "$p" >/dev/null 2>&1 || packages+=("$p")
done
command -v npm >/dev/null || packages+=(nodejs npm)
if [ ${#packages[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

if [ ! -x "$tools/venv/bin/componentize-py" ]; then
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q componentize-py==0.25.1
fi

if [ ! -x "$tools/node_modules/.bin/componentize-js" ]; then
    npm install --silent --prefix "$tools" @bytecodealliance/componentize-js@0.23.0
fi
echo "guest toolchains ready in $tools"
