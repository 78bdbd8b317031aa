//! `fdbox emulate`: unmodified C programs talk to /dev/fdbox
//! (tests/c/emulate_checks.c) and to /dev/liveupdate
//! (tests/c/liveupdate_checks.c) with raw open and ioctl calls and get the
//! RFC driver's and the Live Update Orchestrator's answers, including across
//! a simulated kexec.
//!
//! Needs root (the driver requires CAP_SYS_ADMIN, which the emulator checks;
//! /dev/liveupdate is root's, mode 0600) and a C compiler; CI runs it as
//! root.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

#[path = "../host/tests/support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

#[path = "support/kernel_source.rs"]
mod kernel_source;
use kernel_source::kernel_source_tree;

fn tempdir(tag: &str) -> TempDir {
    TempDir::new(&format!("emulate-{tag}"))
}

/// tests/c/`name`.c, compiled (once per test binary, in `cell`).
fn c_program(cell: &'static OnceLock<PathBuf>, name: &str) -> &'static Path {
    cell.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
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

/// The FDBox C program.
fn checks_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    c_program(&PROGRAM, "emulate_checks")
}

/// The LUO C program.
fn liveupdate_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    c_program(&PROGRAM, "liveupdate_checks")
}

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: fdbox emulate checks CAP_SYS_ADMIN, as the driver; run as root");
    false
}

/// `fdbox emulate [--device DEVICE] [--state-dir DIR] -- PROGRAM MODE`.
fn emulate_command(device: &str, state_dir: Option<&Path>, program: &Path, mode: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fdbox"));
    command.args(["emulate", "--device", device]);
    if let Some(dir) = state_dir {
        command.arg("--state-dir").arg(dir);
    }
    command.arg("--").arg(program).arg(mode);
    command
}

fn emulate(state_dir: Option<&Path>, mode: &str) -> Output {
    emulate_command("fdbox", state_dir, checks_program(), mode)
        .output()
        .expect("run fdbox emulate")
}

fn emulate_liveupdate(state_dir: Option<&Path>, mode: &str) -> Output {
    emulate_command("liveupdate", state_dir, liveupdate_program(), mode)
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

#[test]
fn liveupdate_answers_as_the_kernel() {
    if !is_root() {
        return;
    }
    let out = emulate_liveupdate(None, "checks");
    assert_checks(
        &out,
        &[
            "a second open: EBUSY",
            "a child's open: EBUSY too",
            "a dup keeps it open: EBUSY",
            "closed, it opens again",
            "create session a: fd in the struct",
            "the session fd is close-on-exec",
            "create a again: EEXIST",
            "create empty name: EINVAL",
            "create unterminated name: EINVAL",
            "size too small: EINVAL",
            "non-zero tail bytes: E2BIG",
            "zero tail bytes: accepted",
            "a struct two pages long, zero tail: accepted",
            "a tail into an unmapped page: EFAULT",
            "a non-zero byte before the unmapped page: E2BIG",
            "retrieve unknown session: ENOENT",
            "an unknown session request: EINVAL",
            "an unknown session request, NULL argument: EINVAL",
            "an unknown device request, NULL argument: EINVAL",
            "a known request, NULL argument: EFAULT",
            "a known number with direction and size bits: ENOTTY",
            "GET_NAME on outgoing session a: \"a\"",
            "GET_NAME with reserved set: EINVAL",
            "GET_NAME with a short struct: EINVAL",
            "GET_NAME of a 63-byte name",
            "retrieve an empty name: ENOENT",
            "retrieve an unterminated name: ENOENT",
            "preserve a pipe: ENOENT",
            "a LUO request on a pipe is the kernel's: ENOTTY",
            "preserve a bad fd: EBADF",
            "preserve token 1 again: EEXIST",
            "preserve the same file (a dup) again: EBUSY",
            "a new open of the memfd, same inode: EBUSY",
            "preserve a file of session a in b: EBUSY",
            "RETRIEVE_FD on an outgoing session: EINVAL",
            "FINISH on an outgoing session: EINVAL",
            "FINISH on an outgoing session, non-zero tail: EINVAL",
            "GET_NAME with a non-zero tail: E2BIG",
            "ftruncate a preserved memfd larger: EPERM",
            "ftruncate it smaller: EPERM",
            "ftruncate it to its size: allowed",
            "fallocate it: EPERM",
            "fallocate it, KEEP_SIZE: EPERM",
            "punch a hole in it: EPERM",
            "fallocate it with a bad mode: EOPNOTSUPP",
            "write inside it: allowed",
            "ftruncate it through a read-only open: EINVAL",
            "other memfds still grow",
            "a write past its end: accepted (emulator: writes are not trapped; Linux 7.2: EPERM)",
            "closing its session unfreezes it",
            "F_SEAL_WRITE on it: EBUSY (its pages are pinned)",
            "F_SEAL_FUTURE_WRITE on it: allowed",
            "F_SEAL_WRITE on the empty one: allowed",
            "F_SEAL_WRITE once its session is closed: allowed",
            "preserve 1024 memfds in a session",
            "the 1025th: ENOSPC (emulator limit)",
            "closing session a frees its name",
            "and un-preserves its files",
            "an ordinary open still works",
        ],
    );
    if Path::new("/usr/bin/setpriv").exists() {
        let out = Command::new(env!("CARGO_BIN_EXE_fdbox"))
            .args(["emulate", "--device", "liveupdate", "--", "setpriv"])
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(liveupdate_program())
            .arg("eacces")
            .output()
            .unwrap();
        assert_checks(&out, &["open as another uid: EACCES"]);
    }
}

/// SIGTERM to the emulator is the kexec moment: the outgoing sessions open
/// then travel, and come back once as incoming sessions.
#[test]
fn liveupdate_sessions_survive_a_sigterm_kexec() {
    if !is_root() {
        return;
    }
    let dir = tempdir("luo-kexec");
    let before = emulate_command(
        "liveupdate",
        Some(&dir),
        liveupdate_program(),
        "kexec-before",
    );
    let (status, _, stderr) = kexec_when(before, |seen| seen.lines().any(|l| l == "ok ready"));
    // The program died of the SIGTERM passed on to it.
    assert_eq!(status.code(), Some(128 + 15), "{stderr}");
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["device"], "liveupdate");
    assert_eq!(
        manifest["sessions"].as_array().unwrap().len(),
        1,
        "{manifest}"
    );
    // The seals each memfd had when it was preserved travel: F_SEAL_SEAL
    // (made without MFD_ALLOW_SEALING), F_SEAL_SHRINK | F_SEAL_GROW.
    let seals: Vec<(u64, u64)> = manifest["sessions"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["token"].as_u64().unwrap(), f["seals"].as_u64().unwrap()))
        .collect();
    assert_eq!(seals, [(7, 0x1), (8, 0x2 | 0x4), (9, 0x1)], "{manifest}");
    // The write past token 9's end was dropped, and said so.
    assert!(
        stderr.contains("not the 4 it had when preserved"),
        "{stderr}"
    );

    let after = emulate_liveupdate(Some(&dir), "kexec-after");
    assert_checks(
        &after,
        &[
            "retrieve session s",
            "retrieve s again: EINVAL",
            "the closed session did not travel: ENOENT",
            "an outgoing session may take the incoming one's name",
            "GET_NAME on incoming session s: \"s\"",
            "retrieve token 7",
            "its content survived",
            "its offset survived",
            "it is close-on-exec",
            "its seals survived (F_SEAL_SEAL: made without MFD_ALLOW_SEALING)",
            "its name is not its label",
            "its size is not frozen",
            "PRESERVE_FD on an incoming session: EINVAL",
            "PRESERVE_FD on an incoming session, non-zero tail: EINVAL",
            "retrieve token 7 again: the same file",
            "retrieve token 8",
            "its seals at PRESERVE_FD survived, not those added after",
            "token 9 has its size at PRESERVE_FD, and the write within it",
            "preserve a retrieved file before FINISH: EBUSY",
            "FINISH",
            "retrieve token 7 after FINISH: ENOENT",
            "FINISH again: 0",
            "preserve the retrieved file after FINISH",
            "its size is frozen now",
            "retrieve s after FINISH: still EINVAL",
        ],
    );
    let third = emulate_liveupdate(Some(&dir), "kexec-third");
    assert_checks(&third, &["s did not travel again: ENOENT"]);

    // The state of one device is not the other's.
    let fdbox = emulate(Some(&dir), "kexec-after");
    assert_eq!(fdbox.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&fdbox.stderr).contains("--device liveupdate"),
        "{}",
        String::from_utf8_lossy(&fdbox.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Run `emulator` (an `fdbox emulate` command) until what its program has
/// printed is `ready`, then send the emulator SIGTERM, the kexec moment of
/// the emulated Live Update device; its exit status, stdout and stderr.
fn kexec_when(
    mut emulator: Command,
    ready: impl Fn(&str) -> bool,
) -> (std::process::ExitStatus, String, String) {
    let mut child = emulator
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fdbox emulate");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !ready(&seen) {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("the program ended before it was ready:\n{seen}\n{stderr}");
        }
        assert!(!line.starts_with("FAIL"), "{seen}{line}");
        seen.push_str(&line);
    }
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, seen, stderr)
}

/// A Rust guest's memory file, boxed and sealed on the Live Update device,
/// survives an emulated kexec taken while its host runs (the device
/// preserves only while the host holds it, as LUO), and the next boot's
/// host adopts the sealed box: the guest unseals it and reads its content.
#[test]
fn a_guest_memory_file_survives_a_liveupdate_kexec() {
    if !is_root() {
        return;
    }
    let dir = tempdir("guest-luo-kexec");
    let host = |steps: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fdbox"));
        command
            .args(["emulate", "--device", "liveupdate", "--state-dir"])
            .arg(&dir)
            .args([
                "--",
                env!("CARGO_BIN_EXE_fdbox"),
                "run",
                "--device",
                "liveupdate",
                "--box",
                "kv",
                fdbox_guest_artifacts::PROBE,
                "--",
            ])
            .args(steps);
        command
    };
    let (status, stdout, stderr) = kexec_when(
        host(&[
            "create",
            "kv",
            "put-memfd",
            "kv",
            "state",
            "count=41",
            "seal",
            "kv",
            "hang",
        ]),
        |seen| seen.lines().count() == 4,
    );
    // Four steps, four OKs; the kexec (SIGTERM) came during `hang`.
    assert!(stdout.starts_with("OK\nOK\nOK\nOK\n"), "{stdout}\n{stderr}");
    assert_eq!(status.code(), Some(128 + 15), "{stderr}");

    let out = host(&[
        "sealed", "kv", "entries", "kv", "unseal", "kv", "get", "kv", "state",
    ])
    .output()
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "OK true\nOK state:memory-file\nOK\nOK count=41\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());

    // That boot ended without a kexec: its sessions closed with the host,
    // and nothing travels to the next.
    let out = host(&["open", "kv"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ERR not-found\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Linux's own LUO selftests (`tools/testing/selftests/liveupdate/`),
/// compiled from `tree` into this test's scratch directory (never copied
/// into this repository): `liveupdate`, `luo_kexec_simple` and
/// `luo_multi_session`, each with `luo_test_utils.c`.
fn kernel_selftests(tree: &Path) -> PathBuf {
    let source = tree.join("tools/testing/selftests");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel-selftests");
    // The UAPI header alone, from the tree: the system's headers may predate
    // it, and the tree's include/uapi as a whole shadows libc's.
    let include = out.join("include/linux");
    std::fs::create_dir_all(&include).unwrap();
    std::fs::copy(
        tree.join("include/uapi/linux/liveupdate.h"),
        include.join("liveupdate.h"),
    )
    .unwrap();
    for program in ["liveupdate", "luo_kexec_simple", "luo_multi_session"] {
        let status = Command::new("cc")
            .args(["-O2", "-D_GNU_SOURCE", "-isystem"])
            .arg(out.join("include"))
            .arg("-I")
            .arg(&source)
            .arg("-o")
            .arg(out.join(program))
            .arg(source.join(format!("liveupdate/{program}.c")))
            .arg(source.join("liveupdate/luo_test_utils.c"))
            .stderr(Stdio::null())
            .status()
            .expect("run cc");
        assert!(status.success(), "cc failed on the kernel's {program}.c");
    }
    out
}

/// The kselftest harness's `# Totals: pass:N fail:N xfail:N xpass:N skip:N
/// error:N` line, as (name, count) pairs.
fn kselftest_totals(stdout: &str) -> Vec<(String, u32)> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# Totals: "))
        .unwrap_or_else(|| panic!("no `# Totals:` line in:\n{stdout}"));
    line.split_whitespace()
        .map(|pair| {
            let (name, count) = pair.split_once(':').unwrap();
            (name.to_string(), count.parse().unwrap())
        })
        .collect()
}

/// The kernel's own LUO selftests pass under the emulator: all 15 of
/// `liveupdate` (a skip counts as a failure: the harness says PASSED when
/// every test skipped), and the two-stage `luo_kexec_simple` and
/// `luo_multi_session` across a simulated kexec (SIGTERM, `--state-dir`).
/// Built from a Linux 7.2 source tree when there is one (see
/// [`kernel_source_tree`]); skipped, saying why, when there is none.
#[test]
fn the_kernels_own_liveupdate_selftests_pass() {
    if !is_root() {
        return;
    }
    let tree = match kernel_source_tree() {
        Ok(tree) => tree,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let programs = kernel_selftests(&tree);
    let run = |program: &str, state_dir: Option<&Path>, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fdbox"));
        command.args(["emulate", "--device", "liveupdate"]);
        if let Some(dir) = state_dir {
            command.arg("--state-dir").arg(dir);
        }
        command.arg("--").arg(programs.join(program)).args(args);
        command
    };

    let out = run("liveupdate", None, &[]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let totals = kselftest_totals(&stdout);
    let expected: Vec<(String, u32)> = [
        ("pass", 15),
        ("fail", 0),
        ("xfail", 0),
        ("xpass", 0),
        ("skip", 0),
        ("error", 0),
    ]
    .iter()
    .map(|(n, c)| (n.to_string(), *c))
    .collect();
    assert_eq!(totals, expected, "{stdout}");
    assert!(out.status.success(), "{stdout}");

    for program in ["luo_kexec_simple", "luo_multi_session"] {
        let dir = tempdir(program);
        // Stage 1 leaves a child holding the sessions (it says its pid) and
        // exits: the kexec comes while the child holds them.
        let (status, stdout, stderr) =
            kexec_when(run(program, Some(&dir), &["--stage", "1"]), |seen| {
                seen.contains("You may now perform kexec reboot")
            });
        if let Some(pid) = stdout
            .lines()
            .find_map(|l| l.split_once("Child PID: "))
            .and_then(|(_, rest)| rest.split('.').next()?.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        // Its parent exits after saying so: the SIGTERM finds it still
        // there (and ends it) or gone.
        assert!(
            status.success() || status.code() == Some(128 + 15),
            "{program} --stage 1 ({status}):\n{stdout}\n{stderr}"
        );
        let out = run(program, Some(&dir), &["--stage", "2"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("TEST PASSED"),
            "{program} --stage 2 ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
