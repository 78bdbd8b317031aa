//! Running the suite on the kernel devices ([`FdboxDevice`] and
//! [`LiveUpdateDevice`]), used by the root crate's `tests/kernel_device.rs`,
//! which knows where this build's `fdbox` binary is (the host crate alone
//! has no emulator to run it under).
//!
//! The suite runs on the real device node when it exists. When it does not,
//! the test [`rerun_under_emulator`] runs this very test binary again under
//! `fdbox emulate --device ...` (which makes the node exist for the program
//! it runs) if it knows an `fdbox` binary, and skips, saying why, if it does
//! not. `FDBOX_REAL_DEVICE=1` demands the real node: no emulator, and a
//! missing node fails.

use fdbox_host::device::kernel::{FdboxDevice, LiveUpdateDevice};
use fdbox_host::device::{BoxStatus, Capabilities, EntryInfo, RefusedBatch};
use fdbox_host::{Device, Error, Handle, Name};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

/// Set in the environment of a test binary run under `fdbox emulate`, to
/// the emulated device's name: there that device must exist, and a missing
/// one fails instead of skipping.
pub const UNDER_EMULATOR: &str = "FDBOX_TEST_UNDER_EMULATE";

/// Set to 1 to run the suite on the machine's real kernel device only.
pub const REAL_DEVICE: &str = "FDBOX_REAL_DEVICE";

/// A kernel device the suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The FDBox RFC's /dev/fdbox.
    Fdbox,
    /// Linux's Live Update Orchestrator, /dev/liveupdate.
    Liveupdate,
}

impl Kernel {
    /// Its `fdbox emulate --device` name.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Fdbox => "fdbox",
            Kernel::Liveupdate => "liveupdate",
        }
    }

    /// The node whose presence says the kernel has it.
    pub fn node(self) -> &'static str {
        match self {
            Kernel::Fdbox => fdbox_host::device::kernel::uapi::CONTROL_DEVICE,
            Kernel::Liveupdate => fdbox_host::device::kernel::liveupdate_uapi::LIVEUPDATE_DEVICE,
        }
    }

    /// Whether the node opens here.
    pub fn available(self) -> bool {
        match self {
            Kernel::Fdbox => FdboxDevice::available(),
            Kernel::Liveupdate => LiveUpdateDevice::available(),
        }
    }

    /// The device, seeing only the boxes under `scope`.
    pub fn open_scoped(self, scope: &str) -> Result<Box<dyn Device>, Error> {
        Ok(match self {
            Kernel::Fdbox => Box::new(FdboxDevice::open_scoped(scope)?),
            Kernel::Liveupdate => Box::new(LiveUpdateDevice::open_scoped(scope)?),
        })
    }

    fn under_emulator(self) -> bool {
        std::env::var(UNDER_EMULATOR).is_ok_and(|d| d == self.name())
    }
}

/// Whether the machine's real device is asked for (no emulator).
fn real_device_only() -> bool {
    std::env::var(REAL_DEVICE).is_ok_and(|v| v == "1")
}

/// Whether a missing `kernel` fails rather than skips: under
/// `FDBOX_REAL_DEVICE=1` for Live Update, the kernel device that exists
/// (6.19+); FDBox was never merged, so it is run only where it exists.
fn real_device_demanded(kernel: Kernel) -> bool {
    real_device_only() && kernel == Kernel::Liveupdate
}

/// Generate, in the current module, the conformance tests on the kernel
/// device `$kernel` (a [`Kernel`]), its own rules, and the test that re-runs
/// them under `fdbox emulate` (`$emulator`: an `Option<PathBuf>`, the
/// `fdbox` binary to run them under). The module must see the suite as
/// `crate::conformance`.
#[macro_export]
macro_rules! kernel_device_tests {
    ($kernel:expr, $emulator:expr) => {
        $crate::kernel_device_tests!(@suite conformance::kernel::kernel_device($kernel), $kernel, $emulator);

        #[test]
        fn the_kernel_devices_own_rules() {
            let _alone = conformance::alone();
            if let Some(scope) = conformance::kernel::scope($kernel) {
                conformance::kernel::own_rules($kernel, &scope);
            }
        }
    };
    // The holder daemon serving the kernel device (`fdbox daemon --device
    // liveupdate`), reached through its socket as hosts reach it.
    (daemon $kernel:expr, $emulator:expr) => {
        $crate::kernel_device_tests!(@suite conformance::kernel::daemon_over($kernel), $kernel, $emulator);
    };
    (@suite $make:expr, $kernel:expr, $emulator:expr) => {
        use $crate::conformance;

        $crate::conformance_suite!(optional || $make);

        #[test]
        fn conformance_under_the_emulator() {
            // This module's tests, by name ("fdbox::", say).
            let filter = module_path!()
                .split_once("::")
                .map(|(_, m)| format!("{m}::"))
                .unwrap_or_default();
            conformance::kernel::rerun_under_emulator($kernel, $emulator, &filter);
        }
    };
}

/// A scoped kernel device of its own for one test: it sees only the boxes
/// it created, whatever else the kernel holds, and deletes them when the
/// test drops it; then it drops what serves the device, if anything does
/// ([`daemon_over`]).
pub struct Scratch(Box<dyn Device>, Option<Server>);

impl Scratch {
    /// `device`, scratched on drop.
    pub fn new(device: Box<dyn Device>) -> Self {
        Self(device, None)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(boxes) = self.0.boxes() {
            for b in boxes {
                let _ = self.0.delete_box(&b.name);
            }
        }
        // Then the fields: the device (a daemon's connection) before the
        // server.
    }
}

impl Device for Scratch {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn create_box(&self, name: &Name) -> Result<(), Error> {
        self.0.create_box(name)
    }
    fn delete_box(&self, name: &Name) -> Result<(), Error> {
        self.0.delete_box(name)
    }
    fn boxes(&self) -> Result<Vec<BoxStatus>, Error> {
        self.0.boxes()
    }
    fn status(&self, name: &Name) -> Result<BoxStatus, Error> {
        self.0.status(name)
    }
    fn put_many_within(
        &self,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        max_entries: usize,
    ) -> Result<(), RefusedBatch> {
        self.0.put_many_within(box_name, entries, max_entries)
    }
    fn get_many(&self, box_name: &Name, entries: &[Name]) -> Result<Vec<Handle>, Error> {
        self.0.get_many(box_name, entries)
    }
    fn entries(&self, box_name: &Name) -> Result<Vec<EntryInfo>, Error> {
        self.0.entries(box_name)
    }
    fn seal(&self, box_name: &Name) -> Result<(), Error> {
        self.0.seal(box_name)
    }
    fn unseal(&self, box_name: &Name) -> Result<(), Error> {
        self.0.unseal(box_name)
    }
}

/// A holder daemon serving a fresh scoped kernel device, in this process on
/// a socket of its own, and the [`fdbox_host::device::daemon::DaemonDevice`]
/// connected to it; `None` (said why) without the kernel device. Dropped, it
/// deletes its boxes, stops the daemon and closes the kernel device (Live
/// Update allows one open at a time).
pub fn daemon_over(kernel: Kernel) -> Option<Arc<dyn Device>> {
    use fdbox_host::daemon::{Holder, Limits};
    use fdbox_host::device::daemon::{DaemonDevice, transport};
    use std::sync::atomic::AtomicBool;
    let scope = scope(kernel)?;
    let device = kernel
        .open_scoped(&scope)
        .unwrap_or_else(|e| panic!("{} exists but cannot be opened: {e}", kernel.node()));
    let dir = super::tempdir();
    let path = dir.join("fdbox.sock");
    let listener = transport::listen(&path).unwrap();
    let holder = Holder::with_device(Limits::from_rlimit(), kernel.name(), device);
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::os::fd::AsFd;
            fdbox_host::daemon::serve_until(&holder, listener.as_fd(), &stop).unwrap();
        })
    };
    let client = DaemonDevice::connect(&path).unwrap();
    Some(Arc::new(Scratch(
        Box::new(client),
        Some(Server {
            stop,
            thread: Some(server),
            _dir: dir,
        }),
    )))
}

/// The daemon [`daemon_over`] runs: dropped, it stops, and with it goes the
/// kernel device (Live Update allows one open at a time).
pub struct Server {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: super::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// A fresh scoped kernel device, or `None` (said why) without one.
pub fn kernel_device(kernel: Kernel) -> Option<Arc<dyn Device>> {
    let scope = scope(kernel)?;
    let device = kernel
        .open_scoped(&scope)
        .unwrap_or_else(|e| panic!("{} exists but cannot be opened: {e}", kernel.node()));
    Some(Arc::new(Scratch::new(device)))
}

/// A scope of kernel box names no other test uses, or `None` (said why)
/// without the kernel device.
pub fn scope(kernel: Kernel) -> Option<String> {
    if !kernel.available() {
        assert!(
            !kernel.under_emulator(),
            "running under `fdbox emulate --device {}`, yet {} does not open",
            kernel.name(),
            kernel.node()
        );
        assert!(
            !real_device_demanded(kernel),
            "{REAL_DEVICE}=1, yet {} does not open on this machine",
            kernel.node()
        );
        println!(
            "skipped: {} does not open (no such kernel device); \
             conformance_under_the_emulator runs this suite under `fdbox emulate` instead",
            kernel.node()
        );
        return None;
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    // Short: Live Update session names are at most 63 bytes.
    Some(format!(
        "c{}.{}.",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Each kernel device's own rules, beyond the suite.
pub fn own_rules(kernel: Kernel, scope: &str) {
    match kernel {
        Kernel::Fdbox => {
            a_fresh_device_reads_what_an_earlier_one_boxed(scope);
            the_longest_names_work(scope);
        }
        Kernel::Liveupdate => liveupdate_rules(scope),
    }
}

/// Every name up to the limit works (the WIT promises 1 to 255 bytes; the
/// device's scope takes its share), and one byte more is name-too-long
/// naming the limit, not device-unavailable.
pub fn the_longest_names_work(scope: &str) {
    use fdbox_host::ErrorCode;
    let name = |s: &str| Name::new(s).unwrap();
    let device = Scratch::new(Box::new(FdboxDevice::open_scoped(scope).unwrap()));
    for len in [200, 236, 237, 255 - scope.len()] {
        let b = name(&"n".repeat(len));
        device
            .create_box(&b)
            .unwrap_or_else(|e| panic!("a {len}-byte name: {e}"));
        device.put(&b, &name("state"), super::memfd("x")).unwrap();
        device.seal(&b).unwrap();
        device.unseal(&b).unwrap();
        device.delete_box(&b).unwrap();
    }
    if !scope.is_empty() {
        let too_long = device
            .create_box(&name(&"n".repeat(256 - scope.len())))
            .unwrap_err();
        assert_eq!(too_long.code(), ErrorCode::NameTooLong, "{too_long}");
    }
}

/// The kernel device's own rule: what the kernel cannot report (entries,
/// kinds, access, seal) travels in the box's manifest, so a new device (a
/// restarted host) sees it, once the box is unsealed.
pub fn a_fresh_device_reads_what_an_earlier_one_boxed(scope: &str) {
    use fdbox_host::{Access, ErrorCode, HandleKind};
    let name = |s: &str| Name::new(s).unwrap();
    let (open, sealed) = (name("open"), name("sealed"));
    let read_only = {
        let h = super::memfd("read-only");
        let access = Access {
            write: false,
            ..h.access()
        };
        Handle::from_parts(h.into_fd(), HandleKind::MemoryFile, access)
    };
    {
        let first = Scratch::new(Box::new(FdboxDevice::open_scoped(scope).unwrap()));
        for b in [&open, &sealed] {
            first.create_box(b).unwrap();
            first.put(b, &name("state"), super::memfd("12345")).unwrap();
        }
        first.put(&open, &name("ro"), read_only).unwrap();
        let refused = first
            .put(
                &open,
                &name(fdbox_host::device::kernel::MANIFEST_ENTRY),
                super::memfd("x"),
            )
            .unwrap_err();
        assert_eq!(refused.error.code(), ErrorCode::InvalidName);
        first.seal(&sealed).unwrap();
        // The host restarts: its device goes, the boxes stay.
        std::mem::forget(first);
    }
    let second = Scratch::new(Box::new(FdboxDevice::open_scoped(scope).unwrap()));
    let status = second.status(&open).unwrap();
    assert_eq!((status.sealed, status.entries), (false, 2));
    let entries: Vec<_> = second
        .entries(&open)
        .unwrap()
        .into_iter()
        .map(|e| (e.name.to_string(), e.kind, e.size))
        .collect();
    assert_eq!(
        entries,
        [
            ("ro".to_string(), HandleKind::MemoryFile, Some(9)),
            ("state".to_string(), HandleKind::MemoryFile, Some(5)),
        ]
    );
    let ro = second.get(&open, &name("ro")).unwrap();
    assert!(!ro.access().write, "access travels in the manifest");
    assert_eq!(super::content(ro), "read-only");
    // A sealed box keeps its manifest until it is unsealed.
    let status = second.status(&sealed).unwrap();
    assert!(status.sealed);
    assert_eq!(
        second.entries(&sealed).unwrap_err().code(),
        ErrorCode::BoxSealed
    );
    second.unseal(&sealed).unwrap();
    assert_eq!(second.status(&sealed).unwrap().entries, 1);
    assert_eq!(
        super::content(second.get(&sealed, &name("state")).unwrap()),
        "12345"
    );
    // `second` deletes both boxes: it opened them.
}

/// The Live Update device's own rules: session names are at most 63
/// bytes, scope included; one open file is in one place; one process has
/// the device at a time; a sealed box's files are preserved and a refused
/// seal keeps the box as it was.
fn liveupdate_rules(scope: &str) {
    use fdbox_host::ErrorCode;
    let name = |s: &str| Name::new(s).unwrap();
    let device = Scratch::new(Kernel::Liveupdate.open_scoped(scope).unwrap());

    let longest = "n".repeat(63 - scope.len());
    device.create_box(&name(&longest)).unwrap();
    let too_long = device
        .create_box(&name(&format!("{longest}n")))
        .unwrap_err();
    assert_eq!(too_long.code(), ErrorCode::NameTooLong);
    assert!(
        too_long.to_string().contains("limit is 63 bytes"),
        "{too_long}"
    );
    // Opening (status) and deleting such a name give the same answer as
    // creating it, not not-found.
    let long = name(&format!("{longest}n"));
    assert_eq!(
        device.status(&long).unwrap_err().code(),
        ErrorCode::NameTooLong
    );
    assert_eq!(
        device.delete_box(&long).unwrap_err().code(),
        ErrorCode::NameTooLong
    );

    let (a, b) = (name("a"), name("b"));
    device.create_box(&a).unwrap();
    device.create_box(&b).unwrap();
    let state = super::memfd("state");
    let dup = Handle::from_parts(
        state.fd().try_clone_to_owned().unwrap(),
        state.kind(),
        state.access(),
    );
    device.put(&a, &name("state"), state).unwrap();
    let refused = device.put(&b, &name("copy"), dup).unwrap_err();
    assert_eq!(refused.error.code(), ErrorCode::AlreadyExists);
    assert!(
        refused.error.to_string().contains("already in box \"a\""),
        "{}",
        refused.error
    );
    // The refused duplicate comes back whole, and the entry is untouched.
    assert_eq!(super::content(refused.handle), "state");

    let second = Kernel::Liveupdate
        .open_scoped(scope)
        .err()
        .expect("a second open is refused");
    assert_eq!(second.code(), ErrorCode::DeviceUnavailable);
    assert!(
        second.to_string().contains("one open at a time"),
        "{second}"
    );

    device.seal(&a).unwrap();
    assert!(device.status(&a).unwrap().sealed);
    assert_eq!(
        device.entries(&a).unwrap().len(),
        1,
        "a sealed box still lists its entries"
    );
    device.unseal(&a).unwrap();
    // Unsealing closed the session, un-preserving the file: it seals again.
    device.seal(&a).unwrap();
    device.unseal(&a).unwrap();
    assert_eq!(
        super::content(device.get(&a, &name("state")).unwrap()),
        "state"
    );

    a_sealed_boxs_memory_files_have_a_fixed_size(&device);
}

/// The Live Update device's rule for a sealed box's memory files: the
/// kernel freezes a preserved memfd's size (Linux 7.2, memfd_luo_preserve),
/// so while the box is sealed, whoever still shares the file (here a dup;
/// for a guest, a stream it opened before the put) writes within it, and
/// those bytes travel, but cannot resize it (EPERM); the manifest and
/// `entries` give the size at seal; unsealing lifts the freeze.
fn a_sealed_boxs_memory_files_have_a_fixed_size(device: &Scratch) {
    use std::os::unix::fs::FileExt as _;
    let name = |s: &str| Name::new(s).unwrap();
    let sized = name("sized");
    device.create_box(&sized).unwrap();
    let state = super::memfd("12");
    let kept = std::fs::File::from(state.fd().try_clone_to_owned().unwrap());
    device.put(&sized, &name("state"), state).unwrap();
    // Written after the put, before the seal: the size at seal counts.
    kept.write_all_at(b"345", 2).unwrap();
    device.seal(&sized).unwrap();
    let eperm = |r: std::io::Result<()>| r.unwrap_err().raw_os_error() == Some(libc::EPERM);
    assert!(eperm(kept.set_len(100)), "growing a sealed box's memfd");
    assert!(eperm(kept.set_len(2)), "shrinking a sealed box's memfd");
    kept.write_all_at(b"X", 0).unwrap();
    if !Kernel::Liveupdate.under_emulator() {
        // `fdbox emulate` does not trap writes (its --help says so).
        assert!(
            eperm(kept.write_all_at(b"6", 5)),
            "a write past the end of a sealed box's memfd"
        );
    }
    let sizes = |device: &Scratch| -> Vec<Option<u64>> {
        device
            .entries(&sized)
            .unwrap()
            .into_iter()
            .map(|e| e.size)
            .collect()
    };
    assert_eq!(sizes(device), [Some(5)]);
    device.unseal(&sized).unwrap();
    kept.set_len(100).unwrap();
    assert_eq!(sizes(device), [Some(100)], "entries gives the size now");
    kept.set_len(5).unwrap();
    assert_eq!(
        super::content(device.get(&sized, &name("state")).unwrap()),
        "X2345"
    );
    device.delete_box(&sized).unwrap();
}

/// Without the kernel device, run this test binary's tests matching
/// `filter` again under `$emulator emulate --device ...`, and fail if the
/// suite fails there; skip (saying why) if there is no emulator to run it
/// under, or the real device is demanded.
pub fn rerun_under_emulator(kernel: Kernel, emulator: Option<PathBuf>, filter: &str) {
    if kernel.available() {
        println!(
            "{} exists: the conformance tests ran on it directly",
            kernel.node()
        );
        return;
    }
    assert!(
        !kernel.under_emulator(),
        "running under `fdbox emulate`, yet {} does not open",
        kernel.node()
    );
    if real_device_only() {
        assert!(
            !real_device_demanded(kernel),
            "{REAL_DEVICE}=1, yet {} does not open on this machine",
            kernel.node()
        );
        println!(
            "skipped: {REAL_DEVICE}=1 asks for the real device only, and {} does not exist",
            kernel.node()
        );
        return;
    }
    let Some(fdbox) = emulator else {
        println!(
            "skipped: no {}, and no emulator to provide one: set \
             FDBOX_EMULATE_BIN to an `fdbox` binary that has `fdbox emulate` \
             (the root crate's tests/kernel_device.rs does) to run the kernel \
             device's conformance suite under it",
            kernel.node()
        );
        return;
    };
    let me = std::env::current_exe().unwrap();
    let mut command = Command::new(&fdbox);
    command
        .args(["emulate", "--device", kernel.name(), "--"])
        .arg(&me)
        // Under the emulator a missing device fails (UNDER_EMULATOR), so no
        // test there can skip.
        .args([
            "--test-threads=1",
            "--skip",
            "conformance_under_the_emulator",
            filter,
        ])
        .env(UNDER_EMULATOR, kernel.name());
    println!(
        "no {}: running the kernel device's conformance suite under the emulator: {command:?}",
        kernel.node()
    );
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", fdbox.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the kernel device's conformance suite failed under `{} emulate --device {}` ({}); its output is above",
        fdbox.display(),
        kernel.name(),
        output.status
    );
    // A filter that matched nothing would pass vacuously.
    assert!(
        !stdout.contains("running 0 tests"),
        "no test matched {filter:?} under the emulator"
    );
}
