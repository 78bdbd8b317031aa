//! The holder daemon: a userspace fdbox device that keeps boxes alive across
//! host restarts, on any kernel.
//!
//! [`Holder`] is the daemon (`fdbox daemon` runs one); [`DaemonDevice`] is
//! the [`Device`](crate::Device) a host uses to reach it. They speak the
//! versioned protocol of [`wire`] over a `SOCK_SEQPACKET` Unix socket, fds
//! travelling with SCM_RIGHTS, up to 253 per message.

mod client;
pub mod handover;
mod server;
pub mod transport;
pub mod wire;

pub use client::DaemonDevice;
pub use server::{Holder, Limits, QuiesceError, Quiesced};

use std::path::PathBuf;

/// Where the daemon of this user listens by default: `/run/fdbox/fdbox.sock`
/// for root, else `$XDG_RUNTIME_DIR/fdbox/fdbox.sock`, else
/// `/tmp/fdbox-$UID/fdbox.sock`.
pub fn default_socket_path() -> PathBuf {
    let uid = rustix::process::geteuid();
    let dir = if uid.is_root() {
        PathBuf::from("/run/fdbox")
    } else if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(runtime).join("fdbox")
    } else {
        PathBuf::from(format!("/tmp/fdbox-{}", uid.as_raw()))
    };
    dir.join("fdbox.sock")
}
