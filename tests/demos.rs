//! The README's two demos, run as a user runs them (with the fdbox and the
//! guests this test build made, instead of building their own): each exits
//! 0, prints what the README shows, and leaves no process running and
//! nothing in the temp directory.

#[path = "../host/tests/support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

use std::path::Path;
use std::process::{Command, Output};

const FDBOX: &str = env!("CARGO_BIN_EXE_fdbox");

/// `bash guest-examples/SCRIPT` with `TMPDIR` a directory of its own.
fn demo(script: &str, tmp: &Path, port: Option<u16>) -> Output {
    let guests = Path::new(fdbox_guest_artifacts::COUNTER).parent().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("guest-examples")
            .join(script),
    )
    .env("FDBOX_BIN", FDBOX)
    .env("FDBOX_GUESTS", guests)
    .env("TMPDIR", tmp)
    .env_remove("FDBOX_SOCKET")
    .env_remove("FDBOX_CONTROL")
    .env_remove("FDBOX_DEVICE");
    if let Some(port) = port {
        cmd.env("FDBOX_DEMO_PORT", port.to_string());
    }
    cmd.output().unwrap()
}

/// Processes (other than this one) whose command line or environment
/// mentions `dir`.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        for file in ["cmdline", "environ"] {
            let Ok(bytes) = std::fs::read(entry.path().join(file)) else {
                continue;
            };
            if bytes.windows(needle.len()).any(|w| w == needle) {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                found.push(format!(
                    "{pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                ));
                break;
            }
        }
    }
    found
}

fn assert_nothing_left(tmp: &TempDir, output: &Output) {
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(
        left.is_empty(),
        "left in the temp directory: {left:?}\n{}",
        text(&output.stderr)
    );
    // The daemon and the service are killed and reaped before the script
    // exits: nothing may still run.
    let running = processes_using(tmp.path());
    assert!(running.is_empty(), "still running: {running:?}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_demo_counts_to_ten_through_two_crashes() {
    let tmp = TempDir::new("demo");
    let out = demo("demo.sh", &tmp, None);
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let mut expected: Vec<String> = (1..=10).map(|n| format!("count = {n}")).collect();
    expected.push("done at 10".into());
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines, expected);
    assert_eq!(
        text(&out.stderr).matches("restarting the guest").count(),
        2,
        "{}",
        text(&out.stderr)
    );
    assert_nothing_left(&tmp, &out);
}

#[test]
fn the_upgrade_demo_exits_0_and_leaves_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = TempDir::new("upgrade-demo");
    let out = demo("upgrade-demo.sh", &tmp, Some(port));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    // What the README shows: data, version and the connection's own count
    // survive each step; the broken version is refused and v2 serves on.
    for line in [
        "  SET greeting hello -> OK",
        "  VERSION -> VERSION 1",
        "  GET greeting -> VALUE hello",
        "  VERSION -> VERSION 2",
        "  (refused, exit 2: v2 serves on)",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let counts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  COUNT ->"))
        .collect();
    assert_eq!(
        counts,
        [
            "  COUNT -> VALUE 3",
            "  COUNT -> VALUE 6",
            "  COUNT -> VALUE 8",
            "  COUNT -> VALUE 11"
        ],
        "{stdout}"
    );
    // One line per fdbox command for the operator, not the service's log
    // too: one "upgraded", one refusal, two "stopped".
    let all = format!("{stdout}{}", text(&out.stderr));
    assert_eq!(all.matches("upgraded to").count(), 1, "{all}");
    assert_eq!(all.matches("rolled back").count(), 1, "{all}");
    assert_eq!(all.matches("handed over; stopped").count(), 2, "{all}");
    assert_nothing_left(&tmp, &out);
}
