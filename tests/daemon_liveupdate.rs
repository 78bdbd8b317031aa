//! `fdbox daemon --device liveupdate`: the holder daemon on Linux's Live
//! Update Orchestrator, here under `fdbox emulate --device liveupdate
//! --state-dir` (SIGTERM to the emulator is the kexec). Hosts come and go on
//! the daemon; a kexec carries the sealed boxes to the next daemon, which
//! adopts them. The VM lane (tests/vm/run.sh) does the same on a real kernel
//! across real kexecs.
//!
//! Needs root: the emulated device is root's, as the kernel's.

#[path = "../host/tests/support/temp_dir.rs"]
mod temp_dir;

use fdbox_host::device::daemon::DaemonDevice;
use fdbox_host::{Device, ErrorCode, Handle, HandleKind, Name};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use temp_dir::TempDir;

const FDBOX: &str = env!("CARGO_BIN_EXE_fdbox");

/// One boot: the daemon on the emulated /dev/liveupdate, its state (the
/// sessions a kexec carries) in `state`.
struct Boot {
    emulator: Child,
}

impl Boot {
    fn start(state: &Path, socket: &Path, log: &Path) -> Self {
        let emulator = Command::new(FDBOX)
            .args(["emulate", "--device", "liveupdate", "--state-dir"])
            .arg(state)
            .args(["--", FDBOX, "daemon", "--device", "liveupdate", "--socket"])
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while DaemonDevice::connect(socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "the daemon did not answer: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { emulator }
    }

    /// The kexec: SIGTERM to the emulator saves the sessions open now.
    fn kexec(mut self) {
        let pid = rustix::process::Pid::from_child(&self.emulator);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        self.emulator.wait().unwrap();
    }
}

/// One step of the counter guest on the daemon at `socket`: its count.
fn count(socket: &Path) -> String {
    let out = Command::new(FDBOX)
        .args(["run", "--device", "daemon", "--socket"])
        .arg(socket)
        .args(["--box", "counter", fdbox_guest_artifacts::COUNTER])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim().to_owned()
}

#[test]
fn the_daemon_on_live_update_keeps_a_guests_count_across_kexecs() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the emulated /dev/liveupdate is root's, as the kernel's; run as root");
        return;
    }
    let dir = TempDir::new("daemon-luo");
    let state = dir.join("kexec-state");
    let socket = dir.join("fdbox.sock");

    let boot = Boot::start(&state, &socket, &dir.join("boot-1.log"));
    // Hosts come and go; the daemon holds the box between them.
    assert_eq!(count(&socket), "count = 1");
    assert_eq!(count(&socket), "count = 2");
    // What LUO cannot preserve is refused at put, the handle returned, and
    // hosts are told so when they connect.
    let d = DaemonDevice::connect(&socket).unwrap();
    assert_eq!(d.capabilities().kinds, [HandleKind::MemoryFile]);
    let other = Name::new("other").unwrap();
    d.create_box(&other).unwrap();
    let dir_handle = Handle::from_fd(std::fs::File::open(&*dir).unwrap().into()).unwrap();
    let refused = d
        .put(&other, &Name::new("dir").unwrap(), dir_handle)
        .unwrap_err();
    assert_eq!(refused.error.code(), ErrorCode::KindNotSupported);
    assert_eq!(refused.handle.kind(), HandleKind::Directory);
    d.delete_box(&other).unwrap();
    drop(d);
    boot.kexec();

    // The next kernel: a new daemon adopts the sealed box.
    let log = dir.join("boot-2.log");
    let boot = Boot::start(&state, &socket, &log);
    assert_eq!(count(&socket), "count = 3");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("1 sealed boxes adopted"), "{log}");
    boot.kexec();

    let boot = Boot::start(&state, &socket, &dir.join("boot-3.log"));
    assert_eq!(count(&socket), "count = 4");
    boot.kexec();
}
