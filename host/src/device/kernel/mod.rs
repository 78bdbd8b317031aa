//! Kernel devices: the FDBox RFC's `/dev/fdbox` ([`FdboxDevice`], over the
//! UAPI in [`uapi`]) and Linux's Live Update Orchestrator `/dev/liveupdate`
//! (over the UAPI in [`liveupdate_uapi`]).

mod fdbox_device;
mod ioctl;
mod liveupdate_device;
pub mod liveupdate_uapi;
mod manifest;
pub mod uapi;

pub use fdbox_device::{FdboxDevice, MANIFEST_ENTRY};
pub use liveupdate_device::LiveUpdateDevice;

use crate::Error;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::OwnedFd;

/// Refuse a device scope that cannot prefix a node or session name.
fn check_scope(scope: &str) -> Result<(), Error> {
    if scope.contains(['/', '\0']) {
        return Err(Error::InvalidName {
            name: scope.to_string(),
            reason: "a device scope contains '/' or NUL",
        });
    }
    Ok(())
}

fn open_rw(path: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
}

/// Whether device node `path` opens (it is closed again). Opening is the
/// test, not `stat`: `fdbox emulate` makes its nodes openable, not visible.
fn node_opens(path: &str) -> bool {
    open_rw(path).is_ok()
}

/// Open device node `path` (the `what`), or device-unavailable saying why;
/// `absent` says what to do on a kernel without it.
fn open_node(path: &str, what: &str, absent: &str) -> Result<OwnedFd, Error> {
    open_rw(path).map_err(|e| {
        let why = match e {
            Errno::BUSY => {
                "another process has it open, and it allows one open at a time; stop that process, or share one holder daemon"
            }
            Errno::ACCESS | Errno::PERM => "it is root's (mode 0600)",
            _ => absent,
        };
        Error::Device(std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("cannot open {what} {path}: {e} ({why})"),
        ))
    })
}
