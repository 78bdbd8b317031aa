//! The conformance suite on the in-process device.

mod conformance;

conformance_suite!(|| std::sync::Arc::new(fdbox_host::MemoryDevice::new()));
