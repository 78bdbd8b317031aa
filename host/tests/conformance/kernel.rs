//! Running the suite on the kernel device ([`FdboxDevice`]), used by the root
//! crate's `tests/kernel_device.rs`, which knows where this build's `fdbox`
//! binary is (the host crate alone has no emulator to run it under).
//!
//! The suite runs on `/dev/fdbox/fdbox` when it exists. When it does not,
//! the test [`rerun_under_emulator`] runs this very test binary again under
//! `fdbox emulate` (which makes `/dev/fdbox` exist for the program it runs)
//! if it knows an `fdbox` binary, and skips, saying why, if it does not.

use fdbox_host::device::{BoxStatus, Capabilities, EntryInfo, RefusedBatch};
use fdbox_host::kernel::FdboxDevice;
use fdbox_host::{Device, Error, Handle, Name};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

/// Set in the environment of a test binary run under `fdbox emulate`: there
/// the device must exist, and a missing one fails instead of skipping.
pub const UNDER_EMULATOR: &str = "FDBOX_TEST_UNDER_EMULATE";

/// Generate the conformance tests on the kernel device, and the test that
/// re-runs them under `fdbox emulate` (`$emulator`: an
/// `Option<PathBuf>`, the `fdbox` binary to run them under).
#[macro_export]
macro_rules! kernel_device_tests {
    ($emulator:expr) => {
        $crate::conformance_suite!(optional conformance::kernel::kernel_device);

        #[test]
        fn a_fresh_device_reads_what_an_earlier_one_boxed() {
            let _alone = conformance::alone();
            if let Some(scope) = conformance::kernel::scope() {
                conformance::kernel::a_fresh_device_reads_what_an_earlier_one_boxed(&scope);
            }
        }

        #[test]
        fn conformance_under_the_emulator() {
            conformance::kernel::rerun_under_emulator($emulator);
        }
    };
}

/// A scoped [`FdboxDevice`] of its own for one test: it sees only the boxes
/// it created, whatever else `/dev/fdbox` holds, and deletes them when the
/// test drops it.
pub struct Scratch(FdboxDevice);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(boxes) = self.0.boxes() {
            for b in boxes {
                let _ = self.0.delete_box(&b.name);
            }
        }
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

/// A fresh scoped kernel device, or `None` (said why) without one.
pub fn kernel_device() -> Option<Arc<dyn Device>> {
    let scope = scope()?;
    let device = FdboxDevice::open_scoped(&scope)
        .unwrap_or_else(|e| panic!("/dev/fdbox/fdbox exists but cannot be opened: {e}"));
    Some(Arc::new(Scratch(device)))
}

/// A scope of kernel box names no other test uses, or `None` (said why)
/// without a kernel device.
pub fn scope() -> Option<String> {
    if !FdboxDevice::available() {
        assert!(
            std::env::var_os(UNDER_EMULATOR).is_none(),
            "running under `fdbox emulate`, yet /dev/fdbox/fdbox does not exist"
        );
        println!(
            "skipped: /dev/fdbox/fdbox does not exist (no FDBox kernel); \
             conformance_under_the_emulator runs this suite under `fdbox emulate` instead"
        );
        return None;
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    Some(format!(
        "fdbox-conformance-{}-{}.",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
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
        let first = Scratch(FdboxDevice::open_scoped(scope).unwrap());
        for b in [&open, &sealed] {
            first.create_box(b).unwrap();
            first.put(b, &name("state"), super::memfd("12345")).unwrap();
        }
        first.put(&open, &name("ro"), read_only).unwrap();
        let refused = first
            .put(
                &open,
                &name(fdbox_host::kernel::MANIFEST_ENTRY),
                super::memfd("x"),
            )
            .unwrap_err();
        assert_eq!(refused.error.code(), ErrorCode::InvalidName);
        first.seal(&sealed).unwrap();
        // The host restarts: its device goes, the boxes stay.
        std::mem::forget(first);
    }
    let second = Scratch(FdboxDevice::open_scoped(scope).unwrap());
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

/// Without `/dev/fdbox/fdbox`, run this test binary again under
/// `$emulator emulate`, and fail if the suite fails there; skip (saying
/// why) if there is no emulator to run it under.
pub fn rerun_under_emulator(emulator: Option<PathBuf>) {
    if FdboxDevice::available() {
        println!("/dev/fdbox/fdbox exists: the conformance tests ran on it directly");
        return;
    }
    assert!(
        std::env::var_os(UNDER_EMULATOR).is_none(),
        "running under `fdbox emulate`, yet /dev/fdbox/fdbox does not exist"
    );
    let Some(fdbox) = emulator else {
        println!(
            "skipped: no /dev/fdbox/fdbox, and no emulator to provide one: set \
             FDBOX_EMULATE_BIN to an `fdbox` binary that has `fdbox emulate` \
             (the root crate's tests/kernel_device.rs does) to run the kernel \
             device's conformance suite under it"
        );
        return;
    };
    let me = std::env::current_exe().unwrap();
    let mut command = Command::new(&fdbox);
    command
        .arg("emulate")
        .arg("--")
        .arg(&me)
        // Under the emulator a missing device fails (UNDER_EMULATOR), so no
        // test there can skip.
        .args([
            "--test-threads=1",
            "--skip",
            "conformance_under_the_emulator",
        ])
        .env(UNDER_EMULATOR, "1");
    println!(
        "no /dev/fdbox/fdbox: running the kernel device's conformance suite under the emulator: {command:?}"
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
        "the kernel device's conformance suite failed under `{} emulate` ({}); its output is above",
        fdbox.display(),
        output.status
    );
}
