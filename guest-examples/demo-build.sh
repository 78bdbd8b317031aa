# Sourced by the demos (from the repository root): builds fdbox (the dev
# profile the tests share) and the Rust guests, and sets $fdbox and $guests.
# FDBOX_BIN and FDBOX_GUESTS (tests/demos.rs) use what is already built.
target=${CARGO_TARGET_DIR:-target}
if [ -z "${FDBOX_BIN:-}" ]; then
    rustup target add wasm32-wasip2 >/dev/null
    cargo build --bin fdbox
    cargo build --release --target wasm32-wasip2 \
        --manifest-path guest-examples/rust/Cargo.toml --target-dir "$target/guest-examples"
fi
fdbox=${FDBOX_BIN:-$target/debug/fdbox}
guests=${FDBOX_GUESTS:-$target/guest-examples/wasm32-wasip2/release}
