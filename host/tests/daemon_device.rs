//! The conformance suite on the holder daemon's device, each test against a
//! fresh holder serving a socket in this process.

mod conformance;

use fdbox_host::daemon::{Holder, Limits};
use fdbox_host::device::daemon::{DaemonDevice, transport};
use std::sync::Arc;

fn daemon_device() -> Arc<DaemonDevice> {
    let dir = conformance::tempdir();
    let path = dir.join("fdbox.sock");
    let listener = transport::listen(&path).unwrap();
    let holder = Holder::new(Limits::from_rlimit());
    std::thread::spawn(move || fdbox_host::daemon::serve(&holder, listener));
    Arc::new(DaemonDevice::connect(&path).unwrap())
}

conformance_suite!(daemon_device);
