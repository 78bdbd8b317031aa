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
