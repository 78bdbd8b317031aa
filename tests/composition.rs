//! A composed component: `probe` with the `scoped-box` wrapper plugged into
//! its import of `fdbox:fdbox/boxes` (`fdbox_guest_artifacts::PROBE_SCOPED`,
//! made by `guest-examples/artifacts/build/compose.rs`), run by `fdbox run`
//! like any command.
//!
//! The host grants the composition more than its scope; the wrapper keeps
//! the probe inside `tenant-a.` all the same, and an unwrapped probe (or
//! `fdbox ls`) on the same holder daemon sees what it did under the
//! prefixed names.

use fdbox_host::DaemonDevice;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const FDBOX: &str = env!("CARGO_BIN_EXE_fdbox");

/// The wrapper's prefix: the build's `FDBOX_SCOPE` (the artifacts' build
/// script passes it on to the wrapper), else the wrapper's default.
const SCOPE: &str = match option_env!("FDBOX_SCOPE") {
    Some(scope) => scope,
    None => "tenant-a.",
};

/// The grant these tests give: every `tenant-` box, so `tenant-b.` boxes
/// are granted too (broader than the scope), plus box `other`.
const BROAD_GRANT: &[&str] = &["--box-prefix", "tenant-", "--box", "other"];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lines(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "fdbox failed ({}): {}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[path = "../host/tests/support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

fn tempdir(tag: &str) -> TempDir {
    TempDir::new(&format!("composition-{tag}"))
}

/// `fdbox run HOST_ARGS COMPONENT -- STEPS`: the probe's lines.
fn run(component: &str, host_args: &[&str], steps: &[&str]) -> Vec<String> {
    let out = Command::new(FDBOX)
        .arg("run")
        .args(host_args)
        .arg(component)
        .arg("--")
        .args(steps)
        .env("FDBOX_LOG", "info")
        .output()
        .expect("run fdbox");
    lines(&out)
}

/// A probe session as (step, expected line) pairs: runs every step in one
/// `fdbox run` and compares the lines, step by step.
fn script(component: &str, host_args: &[&str], script: &[(&[&str], &str)]) {
    let steps: Vec<&str> = script.iter().flat_map(|(step, _)| *step).copied().collect();
    let got = run(component, host_args, &steps);
    let expected: Vec<&str> = script.iter().map(|(_, line)| *line).collect();
    assert_eq!(got, expected, "steps: {steps:?}");
}

/// An `fdbox daemon` on a private socket, killed when dropped: boxes that
/// outlive each `fdbox run`, so a second run (or `fdbox ls`) sees them.
struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: TempDir,
}

impl Daemon {
    fn start(tag: &str) -> Self {
        let dir = tempdir(tag);
        let socket = dir.join("run/fdbox.sock");
        let child = Command::new(FDBOX)
            .args(["daemon", "--socket"])
            .arg(&socket)
            .env("FDBOX_LOG", "warn")
            .spawn()
            .unwrap();
        // Listening once a client gets through (the socket file appears at
        // bind, a moment before listen).
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(e) = DaemonDevice::connect(&socket) {
            assert!(Instant::now() < deadline, "daemon not listening: {e}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child,
            socket,
            _dir: dir,
        }
    }

    /// `--device daemon --socket S` then `grant`.
    fn host_args<'a>(&'a self, grant: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--device", "daemon", "--socket", self.socket()];
        args.extend_from_slice(grant);
        args
    }

    fn socket(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// `fdbox ls --json`: (box name, sealed, entry names) per box.
    fn ls(&self) -> Vec<(String, bool, Vec<String>)> {
        let out = Command::new(FDBOX)
            .args(["ls", "--json", "--socket", self.socket()])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&lines(&out).join("\n")).unwrap();
        json.as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let entries = b["entries"].as_array().unwrap();
                (
                    b["name"].as_str().unwrap().to_owned(),
                    b["sealed"].as_bool().unwrap(),
                    entries
                        .iter()
                        .map(|e| e["name"].as_str().unwrap().to_owned())
                        .collect(),
                )
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scoped(name: &str) -> String {
    format!("{SCOPE}{name}")
}

#[test]
fn the_scope_is_the_default_the_grants_assume() {
    // BROAD_GRANT covers the scope and more only for a `tenant-` scope.
    assert!(
        SCOPE.starts_with("tenant-") && SCOPE.len() > "tenant-".len(),
        "these tests assume a scope under `tenant-`, not {SCOPE:?}"
    );
    assert!(Path::new(fdbox_guest_artifacts::PROBE_SCOPED).is_file());
    assert!(Path::new(fdbox_guest_artifacts::SCOPED_BOX).is_file());
}

/// The composed probe works in its scope (create, put, get, seal, list),
/// its boxes are the host's `SCOPE`-prefixed boxes, it cannot reach a box
/// the host granted outside its scope, and handles pass through the
/// wrapper unchanged.
#[test]
fn a_plugged_probe_lives_under_its_prefix_and_nowhere_else() {
    let daemon = Daemon::start("scope");
    let host = daemon.host_args(BROAD_GRANT);
    let (x, tenant_b) = (scoped("x"), "tenant-b.y");

    // Boxes outside the scope, made by a plain probe with the same grant.
    script(
        fdbox_guest_artifacts::PROBE,
        &host,
        &[
            (&["create", "other"], "OK"),
            (&["put-memfd", "other", "secret", "s3cret"], "OK"),
            (&["create", tenant_b], "OK"),
        ],
    );

    script(
        fdbox_guest_artifacts::PROBE_SCOPED,
        &host,
        &[
            // In scope: box `x` is the host's `tenant-a.x`.
            (&["create", "x"], "OK"),
            // A memory file made by the probe itself (memory-files is not
            // wrapped) goes into the box through the wrapper and comes back
            // out with its content: the same host resource both ways.
            (&["put-memfd", "x", "m", "hello"], "OK"),
            (&["get", "x", "m"], "OK hello"),
            (&["put-memfd", "x", "kept", "still here"], "OK"),
            // The box-fds name the box `x`, not `tenant-a.x` (the probe
            // checks each box-name against its argument).
            (&["entries", "x"], "OK kept:memory-file"),
            (&["seal", "x"], "OK"),
            (&["sealed", "x"], "OK true"),
            // Errors pass through.
            (&["get", "x", "kept"], "ERR box-sealed"),
            // Only its own boxes, without the prefix: not `other`, not
            // `tenant-b.y`.
            (&["list"], "OK x"),
            // `other` is granted by the host, but the wrapper asks for
            // `tenant-a.other`, which the `tenant-` grant covers and which
            // does not exist: not-found. The host's `other` is out of reach.
            (&["open", "other"], "ERR not-found"),
            (&["get", "other", "secret"], "ERR not-found"),
            (&["delete", "other"], "ERR not-found"),
            // Nor can it climb into `tenant-b.`: that is `tenant-a.tenant-b.y`.
            (&["open", tenant_b], "ERR not-found"),
            // Names are checked before the prefix goes on: an empty name
            // must not become the valid name `tenant-a.`.
            (&["create", ""], "ERR invalid-name"),
            (&["create", "a/b"], "ERR invalid-name"),
        ],
    );

    // The host's view: the box is `tenant-a.x`, sealed, with `kept`;
    // `other` still holds its secret.
    let entries = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        daemon.ls(),
        [
            ("other".to_owned(), false, entries(&["secret"])),
            (x.clone(), true, entries(&["kept"])),
            (tenant_b.to_owned(), false, entries(&[])),
        ]
    );
    // An unwrapped probe on the same device sees the prefixed names and
    // takes back what the composed one boxed.
    script(
        fdbox_guest_artifacts::PROBE,
        &host,
        &[
            (&["list"], &format!("OK other,{x},{tenant_b}")),
            (&["entries", &x], "OK kept:memory-file"),
            (&["sealed", &x], "OK true"),
            (&["unseal", &x], "OK"),
            (&["get", &x, "kept"], "OK still here"),
            (&["get", "other", "secret"], "OK s3cret"),
        ],
    );

    // A second composed run finds its box again as `x`.
    script(
        fdbox_guest_artifacts::PROBE_SCOPED,
        &host,
        &[
            (&["list"], "OK x"),
            (&["sealed", "x"], "OK false"),
            (&["delete", "x"], "OK"),
            (&["list"], "OK "),
        ],
    );
    assert!(!daemon.ls().iter().any(|(name, ..)| *name == x));
}

/// With grants that do not cover `tenant-a.other`, the same reach outside
/// the scope is `access-denied` instead of `not-found`: the wrapper asks
/// for the prefixed name, and the host judges that name.
#[test]
fn outside_the_scope_is_access_denied_when_the_prefixed_name_is_not_granted() {
    let x = scoped("x");
    let grant = ["--device", "memory", "--box", &x, "--box", "other"];
    script(
        fdbox_guest_artifacts::PROBE_SCOPED,
        &grant,
        &[
            (&["create", "x"], "OK"),
            (&["create", "other"], "ERR access-denied"),
            (&["open", "other"], "ERR access-denied"),
            (&["list"], "OK x"),
        ],
    );
    // Unwrapped, the same grant reaches `other`.
    script(
        fdbox_guest_artifacts::PROBE,
        &grant,
        &[(&["create", "other"], "OK"), (&["list"], "OK other")],
    );
}

/// A name that fits the host's 255 bytes only without the prefix fails
/// with `name-too-long` (the wrapper's check, as the host would); one byte
/// shorter it reaches the host.
#[test]
fn names_longer_than_255_bytes_after_the_prefix_are_too_long() {
    let fits = "n".repeat(255 - SCOPE.len());
    let too_long = "n".repeat(255 - SCOPE.len() + 1);
    script(
        fdbox_guest_artifacts::PROBE_SCOPED,
        &["--device", "memory", "--box-prefix", "tenant-"],
        &[
            (&["create", &too_long], "ERR name-too-long"),
            (&["create", &fits], "OK"),
            (&["open", &too_long], "ERR name-too-long"),
            (&["list"], &format!("OK {fits}")),
        ],
    );
}

/// Open files and directories pass through the wrapper too: a file put
/// through it comes back as the same open file (a write to it lands in the
/// host's file), and a directory comes back listable.
#[test]
fn files_and_directories_pass_through_unchanged() {
    let dir = tempdir("files");
    std::fs::write(dir.join("notes.txt"), "first").unwrap();
    let preopen = format!("{}::/data", dir.display());
    script(
        fdbox_guest_artifacts::PROBE_SCOPED,
        &[
            "--device",
            "memory",
            "--box-prefix",
            "tenant-",
            "--dir",
            &preopen,
        ],
        &[
            (&["create", "f"], "OK"),
            (&["put-file", "f", "notes", "notes.txt"], "OK"),
            (&["write-file", "f", "notes", "second"], "OK"),
            (&["entries", "f"], "OK notes:file"),
            (&["get", "f", "notes"], "OK second"),
            (&["put-dir", "f", "root"], "OK"),
            (&["entries", "f"], "OK root:directory"),
            (&["get", "f", "root"], "OK dir:notes.txt"),
            (&["entries", "f"], "OK "),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "second"
    );
}
