//! The host crate's kernel-device conformance suite
//! (`host/tests/conformance/kernel.rs`), built here too because this crate's
//! tests know where this build's `fdbox` binary is: without
//! `/dev/fdbox/fdbox`, the suite runs again under `fdbox emulate` of that
//! binary (or of `$FDBOX_EMULATE_BIN`, if set).

#[path = "../host/tests/conformance/mod.rs"]
mod conformance;

kernel_device_tests!(Some(
    std::env::var_os("FDBOX_EMULATE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_fdbox").into())
));
