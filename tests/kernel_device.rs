//! The host crate's kernel-device conformance suite
//! (`host/tests/conformance/kernel.rs`) for both kernel devices, built here
//! because this crate's tests know where this build's `fdbox` binary is:
//! without the device node, each suite runs again under `fdbox emulate
//! --device ...` of that binary (or of `$FDBOX_EMULATE_BIN`, if set).
//! `FDBOX_REAL_DEVICE=1` runs them on the machine's real devices only.

#[path = "../host/tests/conformance/mod.rs"]
mod conformance;

fn emulator() -> Option<std::path::PathBuf> {
    if std::env::var_os(conformance::kernel::REAL_DEVICE).is_some_and(|v| v == "1") {
        return None;
    }
    Some(
        std::env::var_os("FDBOX_EMULATE_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_fdbox").into()),
    )
}

/// The FDBox RFC's /dev/fdbox.
mod fdbox {
    crate::kernel_device_tests!(crate::conformance::kernel::Kernel::Fdbox, crate::emulator());
}

/// Linux's Live Update Orchestrator, /dev/liveupdate.
mod liveupdate {
    crate::kernel_device_tests!(
        crate::conformance::kernel::Kernel::Liveupdate,
        crate::emulator()
    );
}

/// The holder daemon over Live Update (`fdbox daemon --device liveupdate`),
/// through its socket.
mod daemon_over_liveupdate {
    crate::kernel_device_tests!(
        daemon crate::conformance::kernel::Kernel::Liveupdate,
        crate::emulator()
    );
}
