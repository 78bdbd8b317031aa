//! Kernel devices: the FDBox RFC's `/dev/fdbox` (and, later, Linux's Live
//! Update Orchestrator).

pub mod uapi;
