//! Paths of the example guest components in `guest-examples/rust`.
//!
//! The build script compiles them (`cargo build --release --target
//! wasm32-wasip2`) so that tests and benchmarks of the host only have to
//! depend on this crate to get fresh components:
//!
//! ```
//! // e.g. `Component::from_file(&engine, fdbox_guest_artifacts::PROBE)?`
//! let probe = std::path::Path::new(fdbox_guest_artifacts::PROBE);
//! assert!(probe.is_absolute() && probe.exists());
//! ```
//!
//! Each constant is the absolute path of a component binary.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
