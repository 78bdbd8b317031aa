#!/usr/bin/env bash
# Installs what the non-Rust guest examples are built with, once:
#   C           Debian's clang 19 and wasi-libc (apt; needs root or sudo)
#   Python      componentize-py, in a venv (pip, from PyPI)
#   JavaScript  @bytecodealliance/componentize-js (npm, from the npm registry)
#   Rust        the wasm32-wasip2 target (rustup)
# and the clients the service tests drive: redis-tools (redis-cli and
# redis-benchmark, apt) for tests/resp.rs, and redis-server, its baseline;
# wrk (apt) for tests/http.rs.
# into one directory outside any cargo target directory, so that a shared
# CARGO_TARGET_DIR, `cargo clean` or a fresh clone changes nothing:
#   $FDBOX_GUEST_TOOLCHAINS, else ${XDG_CACHE_HOME:-$HOME/.cache}/fdbox/guest-toolchains
# Safe to run again; about 1 minute the first time, under a second after.
#
# This script is the one place that decides where the tools are: the guest
# build (guest-examples/artifacts/build.rs) asks it with `--paths`, which
# prints `componentize-py=PATH` and `componentize-js=PATH` and installs
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY_VERSION=0.25.1
JS_VERSION=0.23.0
tools="${FDBOX_GUEST_TOOLCHAINS:-${XDG_CACHE_HOME:-$HOME/.cache}/fdbox/guest-toolchains}"
# One directory per tool version: a new version installs beside the old one.
venv="$tools/componentize-py-$PY_VERSION"
node_prefix="$tools/componentize-js-$JS_VERSION"
componentize_py="$venv/bin/componentize-py"
componentize_js="$node_prefix/node_modules/@bytecodealliance/componentize-js"

case "${1:-}" in
    --paths)
        echo "componentize-py=$componentize_py"
        echo "componentize-js=$componentize_js"
        exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--paths]" >&2; exit 2 ;;
esac

step() { echo "toolchains: $*"; }

step "Rust target wasm32-wasip2"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2

# Debian packages, only those missing (a newer Node.js from elsewhere is
# kept: Debian's npm would conflict with it).
packages=()
for p in clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc python3-venv redis-tools redis-server wrk; do
    dpkg -s "$p" >/dev/null 2>&1 || packages+=("$p")
done
command -v npm >/dev/null || packages+=(nodejs npm)
if [ ${#packages[@]} -gt 0 ]; then
    step "apt-get install ${packages[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove "${packages[@]}" >/dev/null
fi

mkdir -p "$tools"
if [ ! -x "$componentize_py" ]; then
    step "componentize-py $PY_VERSION into $venv"
    python3 -m venv "$venv"
    # componentize-py appears only when the install is complete.
    "$venv/bin/pip" install -q "componentize-py==$PY_VERSION"
fi

if [ ! -f "$componentize_js/src/cli.js" ]; then
    step "componentize-js $JS_VERSION into $node_prefix"
    mkdir -p "$node_prefix"
    npm install --silent --prefix "$node_prefix" "@bytecodealliance/componentize-js@$JS_VERSION"
fi
echo "guest toolchains ready in $tools"
