//! `fdbox emulate`: an unmodified C program talks to /dev/fdbox with raw
//! open and ioctl calls (tests/c/emulate_checks.c) and gets the RFC
//! driver's answers, including across a simulated kexec.
//!
//! Needs root (the driver requires CAP_SYS_ADMIN, which the emulator checks)
//! and a C compiler; CI runs it as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fdbox-emulate-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The C program, compiled once per test binary.
fn checks_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/emulate_checks.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("emulate_checks");
        let status = Command::new("cc")
            .args(["-Wall", "-Werror", "-o"])
            .arg(&out)
            .arg(&source)
            .status()
            .expect("run cc");
        assert!(status.success(), "cc failed on {}", source.display());
        out
    })
}

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: fdbox emulate checks CAP_SYS_ADMIN, as the driver; run as root");
    false
}

fn emulate(state_dir: Option<&Path>, mode: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fdbox"));
    command.arg("emulate");
    if let Some(dir) = state_dir {
        command.arg("--state-dir").arg(dir);
    }
    command
        .arg("--")
        .arg(checks_program())
        .arg(mode)
        .output()
        .expect("run fdbox emulate")
}

/// Assert the program succeeded and printed every line of `expected`.
fn assert_checks(out: &Output, expected: &[&str]) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the program failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in expected {
        assert!(
            stdout.lines().any(|l| l == format!("ok {line}")),
            "no `ok {line}` in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn the_driver_answers_as_the_rfc() {
    if !is_root() {
        return;
    }
    let out = emulate(None, "checks");
    assert_checks(
        &out,
        &[
            "create box b1",
            "create b1 again: EEXIST",
            "create with flags: EINVAL",
            "create empty name: EINVAL",
            "create a/b: EINVAL",
            "create unterminated name: EINVAL",
            "delete unknown box: ENOENT",
            "openat2 /dev/fdbox/b1",
            "open /dev/fdbox/b1",
            "put memfd as m1",
            "put a bad fd: EINVAL",
            "put a pipe: EOPNOTSUPP",
            "an FDBox request on a pipe is the kernel's: ENOTTY",
            "unseal not sealed: EBUSY",
            "seal again: EBUSY",
            "put into sealed box: EBUSY",
            "get from sealed box: EBUSY",
            "get with flags: EINVAL",
            "it holds the memfd's content",
            "get m1 again: ENOENT (take-once)",
            "a child process is served too",
            "open deleted box: ENOENT",
            "an ordinary open still works",
        ],
    );
}

#[test]
fn sealed_boxes_survive_a_simulated_kexec() {
    if !is_root() {
        return;
    }
    let dir = tempdir("kexec");
    let before = emulate(Some(&dir), "kexec-before");
    assert_checks(&before, &["put state", "seal kx"]);
    assert!(dir.join("manifest.json").exists());
    let after = emulate(Some(&dir), "kexec-after");
    assert_checks(
        &after,
        &[
            "the unsealed box is gone",
            "it is sealed: put EBUSY",
            "unseal kx",
            "its content survived",
        ],
    );
    // The box was emptied and left unsealed: nothing travels further.
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["boxes"], serde_json::json!([]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exit_codes_and_capabilities_are_the_programs() {
    if !is_root() {
        return;
    }
    let fdbox = env!("CARGO_BIN_EXE_fdbox");
    let status = |args: &[&str]| {
        Command::new(fdbox)
            .arg("emulate")
            .arg("--")
            .args(args)
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(status(&["sh", "-c", "exit 7"]), Some(7));
    assert_eq!(status(&["sh", "-c", "kill -9 $$"]), Some(128 + 9));
    // Without CAP_SYS_ADMIN every FDBox ioctl is EPERM.
    let program = checks_program().to_str().unwrap();
    if Path::new("/usr/bin/setpriv").exists() {
        let out = Command::new(fdbox)
            .args(["emulate", "--", "setpriv", "--inh-caps=-sys_admin"])
            .args(["--bounding-set=-sys_admin", program, "eperm"])
            .output()
            .unwrap();
        assert_checks(&out, &["create without CAP_SYS_ADMIN: EPERM"]);
    }
}

#[test]
fn sigterm_reaches_the_program_and_ends_the_emulation() {
    if !is_root() {
        return;
    }
    // The background sleep is left behind; without SIGTERM the emulator
    // would serve it until it exits.
    let mut emulate = Command::new(env!("CARGO_BIN_EXE_fdbox"))
        .args(["emulate", "--", "sh", "-c", "sleep 5 & exec sleep 60"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = rustix::process::Pid::from_child(&emulate);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let started = std::time::Instant::now();
    let status = emulate.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

/// A Rust guest's memory file, boxed on the kernel device, survives an
/// emulated kexec: the emulator (the "kernel") stops and starts again with
/// the same state directory, and a new host process and instance resume.
#[test]
fn a_guest_memory_file_survives_an_emulated_kexec() {
    if !is_root() {
        return;
    }
    let dir = tempdir("guest-kexec");
    let boot = |until: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_fdbox"))
            .arg("emulate")
            .arg("--state-dir")
            .arg(&dir)
            .args([
                "--",
                env!("CARGO_BIN_EXE_fdbox"),
                "run",
                "--device",
                "kernel",
                "--box",
                "counter",
            ])
            .args([fdbox_guest_artifacts::COUNTER, "--", "--until", until])
            .output()
            .expect("run fdbox emulate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = boot("3");
    assert_eq!(first, "count = 1\ncount = 2\ncount = 3\ndone at 3\n");
    assert!(
        dir.join("manifest.json").exists(),
        "the sealed box was written out"
    );
    let second = boot("6");
    assert_eq!(
        second, "count = 4\ncount = 5\ncount = 6\ndone at 6\n",
        "resumed after the kexec"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
