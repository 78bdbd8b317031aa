//! The `fdbox` CLI running the real guest components.

use std::path::Path;
use std::process::{Command, Output};

fn fdbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fdbox"))
        .args(args)
        .env("FDBOX_LOG", "info")
        // These tests are about fdbox run itself: the in-process device.
        // tests/daemon.rs covers the holder daemon.
        .env("FDBOX_DEVICE", "memory")
        .output()
        .expect("run fdbox")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Run the probe guest with `host_args` before the component and `steps`
/// after it; each step prints one line.
fn probe(host_args: &[&str], steps: &[&str]) -> Vec<String> {
    let mut args = vec!["run"];
    args.extend_from_slice(host_args);
    args.push(fdbox_guest_artifacts::PROBE);
    args.push("--");
    args.extend_from_slice(steps);
    let out = fdbox(&args);
    assert!(
        out.status.success(),
        "probe failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out).lines().map(str::to_owned).collect()
}

#[path = "../host/tests/support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

fn tempdir(tag: &str) -> TempDir {
    TempDir::new(&format!("cli-{tag}"))
}

#[test]
fn counter_recovers_every_count_after_crashes() {
    let out = fdbox(&[
        "run",
        "--box",
        "counter",
        "--restart",
        "on-failure",
        "--max-restarts",
        "5",
        fdbox_guest_artifacts::COUNTER,
        "--",
        "--until",
        "10",
        "--crash-every",
        "4",
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let counts: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| l.starts_with("count = "))
        .map(str::to_owned)
        .collect();
    let expected: Vec<String> = (1..=10).map(|n| format!("count = {n}")).collect();
    assert_eq!(counts, expected, "no count lost or repeated across crashes");
    assert!(stdout(&out).contains("done at 10"));
    assert_eq!(
        stderr(&out).matches("crashing on purpose").count(),
        2,
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stderr(&out).matches("restarting the guest").count(),
        2,
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_trap_without_restart_fails_the_process() {
    let out = fdbox(&[
        "run",
        "--box",
        "counter",
        fdbox_guest_artifacts::COUNTER,
        "--",
        "--until",
        "10",
        "--crash-every",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(134), "{}", stderr(&out));
    assert!(stderr(&out).contains("guest trapped"), "{}", stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("count = "))
            .count(),
        2
    );
}

#[test]
fn restarts_stop_at_max_restarts() {
    let out = fdbox(&[
        "run",
        "--box",
        "c",
        "--restart",
        "on-failure",
        "--max-restarts",
        "2",
        fdbox_guest_artifacts::COUNTER,
        "--",
        "--box",
        "c",
        "--until",
        "100",
        "--crash-every",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(134));
    assert!(
        stderr(&out).contains("giving up after 2 restarts"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("count = 3") && !stdout(&out).contains("count = 4"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_host_file_is_boxed_and_recovered_by_the_next_instance() {
    let dir = tempdir("boxed-file");
    let dir_arg = format!("{}::/data", dir.display());
    let out = fdbox(&[
        "run",
        "--dir",
        &dir_arg,
        "--box",
        "files",
        "--restart",
        "always",
        "--max-restarts",
        "1",
        fdbox_guest_artifacts::BOXED_FILE,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("boxed notes.txt"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("recovered: hello from the first instance"),
        "{}",
        stdout(&out)
    );
    let on_disk = std::fs::read_to_string(dir.join("notes.txt")).unwrap();
    assert_eq!(
        on_disk,
        "hello from the first instance\nand the second instance\n"
    );
}

#[test]
fn the_guest_exit_code_is_the_process_exit_code() {
    let out = fdbox(&["run", fdbox_guest_artifacts::PROBE, "--", "exit", "7"]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn a_guest_sees_only_granted_boxes() {
    let lines = probe(
        &["--box", "mine", "--box-prefix", "app.:create,put,get"],
        &[
            "create",
            "mine",
            "create",
            "theirs",
            "open",
            "theirs",
            "create",
            "app.one",
            "seal",
            "app.one",
            "delete",
            "app.one",
            "list",
            "put-memfd",
            "app.one",
            "x",
            "hi",
            "get",
            "app.one",
            "x",
            "entries",
            "theirs",
            "sealed",
            "theirs",
        ],
    );
    assert_eq!(
        lines,
        [
            "OK",
            "ERR access-denied",
            "ERR access-denied",
            "OK",
            "ERR access-denied",
            "ERR access-denied",
            "OK app.one,mine",
            "OK",
            "OK hi",
            "ERR access-denied",
            "ERR access-denied",
        ]
    );
}

#[test]
fn an_ungranted_box_that_exists_looks_like_one_that_does_not() {
    // The same guest run twice in one host: the first creates "secret" under
    // its grant; a guest without the grant cannot tell it from a missing box.
    let lines = probe(
        &["--box", "mine"],
        &["open", "secret", "open", "nonexistent", "delete", "secret"],
    );
    assert_eq!(
        lines,
        [
            "ERR access-denied",
            "ERR access-denied",
            "ERR access-denied"
        ]
    );
}

#[test]
fn bad_names_get_their_error_codes() {
    let long = "n".repeat(256);
    let max = "n".repeat(255);
    let lines = probe(
        &["--box-prefix", "n"],
        &[
            "create",
            "",
            "create",
            &long,
            "create",
            "n/x",
            "create",
            "n\\0x",
            "create",
            &max,
            "put-memfd",
            &max,
            "",
            "t",
            "put-memfd",
            &max,
            &long,
            "t",
            "put-memfd",
            &max,
            "a/b",
            "t",
            "put-memfd",
            &max,
            "a\\0b",
            "t",
            "get",
            &max,
            "",
            // '.' and '..' are no names on any device.
            "put-memfd",
            &max,
            ".",
            "t",
            "put-memfd",
            &max,
            "..",
            "t",
            // A memory file takes every valid name, up to 255 bytes (its
            // label is cut to what memfd_create takes).
            "put-memfd",
            &max,
            &max,
            "t",
        ],
    );
    assert_eq!(
        lines,
        [
            "ERR invalid-name",
            "ERR name-too-long",
            "ERR invalid-name",
            "ERR invalid-name",
            "OK",
            "ERR invalid-name",
            "ERR name-too-long",
            "ERR invalid-name",
            "ERR invalid-name",
            "ERR invalid-name",
            "ERR invalid-name",
            "ERR invalid-name",
            "OK"
        ]
    );
}

#[test]
fn sealed_boxes_refuse_and_keep_everything() {
    let lines = probe(
        &["--box", "s"],
        &[
            "create",
            "s",
            "put-memfd",
            "s",
            "a",
            "alpha",
            "unseal",
            "s",
            "seal",
            "s",
            "seal",
            "s",
            "sealed",
            "s",
            "put-memfd",
            "s",
            "b",
            "beta",
            "get",
            "s",
            "a",
            "entries",
            "s",
            "unseal",
            "s",
            "get",
            "s",
            "a",
            "get",
            "s",
            "a",
            "put-memfd",
            "s",
            "a",
            "again",
            "put-memfd",
            "s",
            "a",
            "dup",
        ],
    );
    assert_eq!(
        lines,
        [
            "OK",
            "OK",
            "ERR box-not-sealed",
            "OK",
            "ERR box-sealed",
            "OK true",
            "ERR box-sealed",
            "ERR box-sealed",
            "OK a:memory-file",
            "OK",
            "OK alpha",
            "ERR not-found",
            "OK",
            "ERR already-exists",
        ]
    );
}

#[test]
fn files_and_directories_round_trip_through_a_box() {
    let dir = tempdir("kinds");
    std::fs::write(dir.join("f.txt"), "file content").unwrap();
    let dir_arg = format!("{}::/data", dir.display());
    let lines = probe(
        &["--dir", &dir_arg, "--box", "k"],
        &[
            "create", "k", "put-file", "k", "f", "f.txt", "put-dir", "k", "d", "entries", "k",
            "get", "k", "f", "get", "k", "d",
        ],
    );
    assert_eq!(
        lines,
        [
            "OK",
            "OK",
            "OK",
            "OK d:directory,f:file",
            "OK file content",
            "OK dir:f.txt"
        ]
    );
}

#[test]
fn quotas_are_enforced_for_guests() {
    let lines = probe(
        &[
            "--box-prefix",
            "q",
            "--max-boxes",
            "1",
            "--max-entries",
            "1",
        ],
        &[
            "create",
            "q1",
            "create",
            "q2",
            "put-memfd",
            "q1",
            "a",
            "x",
            "put-memfd",
            "q1",
            "b",
            "y",
        ],
    );
    assert_eq!(
        lines,
        ["OK", "ERR quota-exceeded", "OK", "ERR quota-exceeded"]
    );
}

fn error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", stderr(out));
    let err = stderr(out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn clear_errors_for_bad_components_and_flags() {
    let dir = tempdir("bad");
    let missing = dir.join("missing.wasm");
    let err = error_line(&fdbox(&["run", missing.to_str().unwrap()]));
    assert!(
        err.contains("cannot read") && err.contains("missing.wasm"),
        "{err}"
    );

    let text = write(&dir, "text.wasm", b"hello, not wasm");
    let err = error_line(&fdbox(&["run", &text]));
    assert!(err.contains("not a WebAssembly component"), "{err}");

    let core = write(&dir, "core.wasm", b"\0asm\x01\0\0\0");
    let err = error_line(&fdbox(&["run", &core]));
    assert!(
        err.contains("core WebAssembly module, not a component"),
        "{err}"
    );

    let foreign = write(
        &dir,
        "foreign.wat",
        br#"(component (import "acme:rockets/launch@1.0.0" (instance (export "go" (func)))))"#,
    );
    let err = error_line(&fdbox(&["run", &foreign]));
    assert!(
        err.contains("needs an import fdbox cannot provide") && err.contains("acme:rockets/launch"),
        "{err}"
    );

    let library = write(&dir, "lib.wat", b"(component)");
    let err = error_line(&fdbox(&["run", &library]));
    assert!(err.contains("not a wasi:cli command"), "{err}");

    for (flag, value, expect) in [
        ("--box", "a/b", "'/'"),
        ("--box", "", "empty"),
        ("--box", "a:steal", "unknown permission \"steal\""),
        ("--box-prefix", "", "empty"),
        ("--dir", "::/x", "HOST::GUEST"),
    ] {
        let out = fdbox(&["run", flag, value, fdbox_guest_artifacts::PROBE]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains(expect),
            "{flag} {value:?}: {}",
            stderr(&out)
        );
    }
    let err = error_line(&fdbox(&[
        "run",
        "--dir",
        "/nonexistent-dir-fdbox",
        fdbox_guest_artifacts::PROBE,
    ]));
    assert!(err.contains("--dir /nonexistent-dir-fdbox"), "{err}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Each cause once: a chain printer must not repeat a cause that a message
/// already contains.
fn assert_no_repeated_clause(err: &str) {
    let clauses: Vec<&str> = err
        .trim()
        .split(": ")
        .map(str::trim)
        .filter(|c| c.len() > 12)
        .collect();
    for (i, clause) in clauses.iter().enumerate() {
        assert!(
            !clauses[i + 1..].contains(clause),
            "{clause:?} is printed twice in: {err}"
        );
    }
}

#[test]
fn errors_print_each_cause_once() {
    let dir = tempdir("once");
    let socket = dir.join("nobody.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_fdbox"))
        .args(["ls", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    let err = error_line(&out);
    assert!(err.contains("nobody.sock"), "{err}");
    assert_no_repeated_clause(&err);

    for device in ["kernel", "liveupdate"] {
        let out = fdbox(&["run", "--device", device, fdbox_guest_artifacts::PROBE]);
        let err = error_line(&out);
        assert_no_repeated_clause(&err);
    }
}

#[test]
fn negative_numbers_get_a_plain_message() {
    for (flag, value) in [
        ("--max-entries", "-1"),
        ("--max-boxes", "-5"),
        ("--max-restarts", "-1"),
        ("--max-descriptors", "-1"),
    ] {
        let out = fdbox(&["run", flag, value, fdbox_guest_artifacts::PROBE]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("{value} is negative")), "{err}");
        assert!(!err.contains("'-- "), "no tip to pass it after --: {err}");
    }
    let out = fdbox(&["serve", "--handover-timeout", "-1", "x.wasm"]);
    assert!(stderr(&out).contains("-1 is negative"), "{}", stderr(&out));
}

#[test]
fn a_missing_parent_directory_is_named_not_created() {
    let dir = tempdir("parents");
    let missing = dir.join("no/such");
    let out = Command::new(env!("CARGO_BIN_EXE_fdbox"))
        .args(["daemon", "--socket"])
        .arg(missing.join("fdbox.sock"))
        .output()
        .unwrap();
    let err = error_line(&out);
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !dir.join("no").exists(),
        "created {}",
        dir.join("no").display()
    );

    let out = Command::new(env!("CARGO_BIN_EXE_fdbox"))
        .args(["emulate", "--state-dir"])
        .arg(&missing)
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = error_line(&out);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!dir.join("no").exists());

    // The last component alone is created, private.
    let out = Command::new(env!("CARGO_BIN_EXE_fdbox"))
        .args(["emulate", "--state-dir"])
        .arg(dir.join("state"))
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.join("state"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn no_colour_when_the_log_is_not_a_terminal() {
    let out = Command::new(env!("CARGO_BIN_EXE_fdbox"))
        .args(["run", "--device", "memory", fdbox_guest_artifacts::COUNTER])
        .env("FDBOX_LOG", "debug")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("INFO") || err.contains("DEBUG"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes in a log: {err:?}");
}

#[test]
fn guest_examples_name_what_the_host_must_grant() {
    // No --box grant: the counter says which box and which flag.
    let out = fdbox(&[
        "run",
        fdbox_guest_artifacts::COUNTER,
        "--",
        "--box",
        "tally",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("open box \"tally\" failed: access-denied") && err.contains("--box tally"),
        "{err}"
    );
    // No --listen grant: kv-service says which listener and which flag.
    let out = fdbox(&["run", "--box", "kv", fdbox_guest_artifacts::KV_V1]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--listen main=ADDR"), "{err}");
}

#[test]
fn one_place_says_where_the_guest_toolchains_are() {
    // With and without a shared target directory, the script that installs
    // the toolchains names the same place, and it is the place the guest
    // build used.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-examples/toolchains.sh");
    let expected = format!(
        "componentize-py={}\ncomponentize-js={}\n",
        fdbox_guest_artifacts::COMPONENTIZE_PY,
        fdbox_guest_artifacts::COMPONENTIZE_JS
    );
    for target_dir in [None, Some("/tmp/some-shared-target")] {
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg("--paths");
        match target_dir {
            Some(dir) => cmd.env("CARGO_TARGET_DIR", dir),
            None => cmd.env_remove("CARGO_TARGET_DIR"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), expected, "CARGO_TARGET_DIR={target_dir:?}");
    }
    assert!(Path::new(fdbox_guest_artifacts::COMPONENTIZE_PY).is_file());
    assert!(!Path::new("/tmp/some-shared-target").exists());
}

#[test]
fn descriptors_a_guest_holds_have_a_quota() {
    // One held at a time: a memory file moved into a box and back a hundred
    // times is always the one.
    let lines = probe(
        &["--box-prefix", "d", "--max-descriptors", "1"],
        &["create", "d1", "cycles", "d1", "100"],
    );
    assert_eq!(lines, ["OK", "OK 100"]);
    // None: not even one memory file.
    let lines = probe(
        &["--box-prefix", "d", "--max-descriptors", "0"],
        &["create", "d1", "put-memfd", "d1", "a", "x"],
    );
    assert_eq!(lines, ["OK", "ERR quota-exceeded"]);
}

#[test]
fn memory_files_have_a_byte_quota_per_guest() {
    // 10 bytes for this guest's memory files, whichever box they are in.
    let lines = probe(
        &["--box-prefix", "m", "--max-memory-file-bytes", "10"],
        &[
            "create",
            "m1",
            "create",
            "m2",
            "put-memfd",
            "m1",
            "a",
            "12345",
            "put-memfd",
            "m2",
            "b",
            "123456",
            "put-memfd",
            "m2",
            "c",
            "12345",
            "put-memfd",
            "m1",
            "d",
            "1",
        ],
    );
    // The refused memory file came back working (no handle-lost); the last
    // one is refused at create, the boxes holding the whole quota.
    assert_eq!(
        lines,
        [
            "OK",
            "OK",
            "OK",
            "ERR quota-exceeded",
            "OK",
            "ERR quota-exceeded"
        ]
    );
}
