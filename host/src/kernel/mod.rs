//! Kernel devices: the FDBox RFC's `/dev/fdbox` ([`FdboxDevice`], over the
//! UAPI in [`uapi`]) and Linux's Live Update Orchestrator `/dev/liveupdate`
//! (over the UAPI in [`liveupdate_uapi`]).

mod fdbox_device;
pub mod liveupdate_uapi;
pub mod uapi;

pub use fdbox_device::{FdboxDevice, MANIFEST_ENTRY};
