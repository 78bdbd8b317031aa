//! Kernel devices: the FDBox RFC's `/dev/fdbox` ([`FdboxDevice`], over the
//! UAPI in [`uapi`]) and, later, Linux's Live Update Orchestrator.

mod fdbox_device;
pub mod uapi;

pub use fdbox_device::{FdboxDevice, MANIFEST_ENTRY};
