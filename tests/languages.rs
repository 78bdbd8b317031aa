//! The two example scenarios in every guest language (Rust, C, Python,
//! JavaScript; `fdbox_guest_artifacts::scenario_guests`) through `fdbox
//! run`: each crashes and recovers for real, prints exactly what the Rust
//! guest prints, and leaves its box in a form every other language reads.

use fdbox_guest_artifacts::{ScenarioGuest, scenario_guests};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const LANGUAGES: [&str; 4] = ["Rust", "C", "Python", "JavaScript"];

fn fdbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fdbox"))
        .args(args)
        .env("FDBOX_LOG", "info")
        .output()
        .expect("run fdbox")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[path = "../host/tests/support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

fn tempdir(tag: &str) -> TempDir {
    TempDir::new(&format!("languages-{tag}"))
}

fn guests(scenario: &str) -> Vec<ScenarioGuest> {
    scenario_guests()
        .into_iter()
        .filter(|g| g.scenario == scenario)
        .collect()
}

#[test]
fn every_language_has_both_scenarios() {
    for scenario in ["counter", "boxed-file"] {
        let languages: Vec<&str> = guests(scenario).iter().map(|g| g.language).collect();
        for language in LANGUAGES {
            assert!(
                languages.contains(&language),
                "no {language} {scenario} among the built guests: {languages:?}"
            );
        }
    }
}

/// Each counter counts to 10 across two deliberate crashes (`--restart
/// on-failure`), losing and repeating nothing, and prints what the Rust
/// counter prints, byte for byte.
#[test]
fn counters_recover_every_count_and_print_the_same_in_every_language() {
    let mut outputs = Vec::new();
    for guest in guests("counter") {
        let out = fdbox(&[
            "run",
            "--device",
            "memory",
            "--box",
            "counter",
            "--restart",
            "on-failure",
            "--max-restarts",
            "5",
            guest.path,
            "--",
            "--until",
            "10",
            "--crash-every",
            "4",
        ]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "{} counter: {}\n{stdout}\n{stderr}",
            guest.language,
            out.status
        );
        assert_eq!(
            stderr.matches("restarting the guest").count(),
            2,
            "{} counter crashed twice and was restarted twice:\n{stderr}",
            guest.language
        );
        outputs.push((guest.language, stdout));
    }
    let (_, rust) = outputs
        .iter()
        .find(|(language, _)| *language == "Rust")
        .expect("the Rust counter");
    let expected: String = (1..=10)
        .map(|n| format!("count = {n}\n"))
        .collect::<String>()
        + "done at 10\n";
    assert_eq!(*rust, expected);
    for (language, stdout) in &outputs {
        assert_eq!(
            stdout, rust,
            "the {language} counter prints what the Rust one does"
        );
    }
}

/// Each boxed-file guest boxes an open host file in its first instance and
/// takes the same open file back in its second, which never opens it by
/// path; output and file content are the Rust guest's.
#[test]
fn boxed_files_come_back_the_same_in_every_language() {
    let mut outputs = Vec::new();
    for guest in guests("boxed-file") {
        let dir = tempdir(&format!("boxed-file-{}", guest.language));
        let dir_arg = format!("{}::/data", dir.display());
        let out = fdbox(&[
            "run",
            "--device",
            "memory",
            "--dir",
            &dir_arg,
            "--box",
            "files",
            "--restart",
            "always",
            "--max-restarts",
            "1",
            guest.path,
        ]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success(),
            "{} boxed-file: {}\n{stdout}\n{stderr}",
            guest.language,
            out.status
        );
        let on_disk = std::fs::read_to_string(dir.join("notes.txt")).unwrap();
        outputs.push((guest.language, stdout, on_disk));
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let (_, rust_out, rust_file) = outputs
        .iter()
        .find(|(language, _, _)| *language == "Rust")
        .expect("the Rust boxed-file");
    assert!(
        rust_out.contains("recovered: hello from the first instance"),
        "{rust_out}"
    );
    for (language, stdout, file) in &outputs {
        assert_eq!(
            stdout, rust_out,
            "the {language} boxed-file prints what the Rust one does"
        );
        assert_eq!(
            file, rust_file,
            "the {language} boxed-file leaves the same file"
        );
    }
}

/// A holder daemon of this test's own, killed and reaped when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    fn start(dir: &std::path::Path) -> Self {
        let socket = dir.join("daemon.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_fdbox"))
            .arg("daemon")
            .arg("--socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fdbox daemon");
        let daemon = Daemon { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while fdbox_host::DaemonDevice::connect(&daemon.socket).is_err() {
            assert!(Instant::now() < deadline, "the daemon did not answer");
            std::thread::sleep(Duration::from_millis(10));
        }
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The box format is the same in every language: on a holder daemon, each
/// language's counter, in its own host process, carries on the count the
/// previous language left.
#[test]
fn a_count_carries_over_from_each_language_to_the_next() {
    let dir = tempdir("carry");
    let daemon = Daemon::start(&dir);
    let socket = daemon.socket.to_str().unwrap().to_owned();
    let mut next = 1;
    for guest in guests("counter") {
        let until = (next + 2).to_string();
        let out = fdbox(&[
            "run", "--device", "daemon", "--socket", &socket, "--box", "counter", guest.path, "--",
            "--until", &until,
        ]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{} counter: {}\n{stdout}\n{}",
            guest.language,
            out.status,
            text(&out.stderr)
        );
        let expected: String = (next..next + 3)
            .map(|n| format!("count = {n}\n"))
            .collect::<String>()
            + &format!("done at {until}\n");
        assert_eq!(
            stdout, expected,
            "the {} counter continues where the previous language stopped",
            guest.language
        );
        next += 3;
    }
    drop(daemon);
    std::fs::remove_dir_all(&dir).unwrap();
}
