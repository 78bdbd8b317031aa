//! `fdbox serve`, `fdbox upgrade` and `fdbox stop` with the kv service
//! (`guest-examples/rust/kv-service`) under load: upgrades, a restart of the
//! host process and a rolled-back upgrade lose no connection, request or
//! byte, and bad upgrades are refused with one clear line while the service
//! keeps serving.
//!
//! Each test runs its own holder daemon (`--device daemon --socket` in a
//! temp directory, so boxes outlive `fdbox serve`), its own control socket
//! and a free loopback port; every process it starts is killed and reaped
//! on every path (`load::serve::Proc`).

#[path = "load/mod.rs"]
mod load;

use fdbox_guest_artifacts::{BENCH, KV_BROKEN, KV_V1, KV_V2, PROBE};
use load::serve::{Device, FDBOX, Service, fdbox};
use load::{Client, Load, LoadConfig, LoadReport, percentile};
use std::time::Duration;

/// How long a request may wait for its answer, and every persistent
/// connection for its next answer after an upgrade.
const PATIENCE: Duration = Duration::from_secs(30);

fn client(service: &Service) -> Client {
    Client::connect(service.addr, PATIENCE).expect("connect to the service")
}

/// Every persistent connection answers again, and nothing failed so far.
fn assert_load_healthy(load: &Load, service: &Service, after: &str) {
    assert!(
        load.wait_all_progress(PATIENCE),
        "after {after}, not every connection was answered within {PATIENCE:?}; failures: {:#?}\n{}",
        load.failures(),
        service.logs()
    );
    let counts = load.counts();
    assert_eq!(
        counts.failures(),
        0,
        "after {after}: {counts:?}\n{:#?}",
        load.failures()
    );
}

/// `fdbox stop`, which must succeed.
fn stop(service: &mut Service) {
    if let Err(e) = service.stop() {
        panic!("{e}\n{}", service.logs());
    }
}

fn assert_no_failures(report: &LoadReport) {
    assert_eq!(
        report.counts.failures(),
        0,
        "{:?}\n{:#?}",
        report.counts,
        report.failures
    );
    assert!(report.counts.answered > 0 && report.counts.short > 0);
}

fn summary(report: &LoadReport) -> String {
    let mut all: Vec<Duration> = report.samples.iter().map(|s| s.latency).collect();
    all.sort();
    format!(
        "{} requests on persistent connections (p50 {:?}, p99 {:?}, max {:?}), {} short connections",
        report.counts.answered,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or_default(),
        report.counts.short,
    )
}

/// A single-line, non-empty error message.
fn assert_one_line(what: &str, message: &str) {
    assert!(
        !message.is_empty() && message.lines().count() == 1,
        "{what}: expected a one-line error, got {message:?}"
    );
}

#[test]
fn upgrades_and_a_restart_under_load_lose_nothing() {
    let mut service = Service::start("upgrade-load", KV_V1);
    // Connections of the test's own, opened before the load: one asks
    // VERSION after each upgrade, one carries unfinished lines across.
    let mut watcher = client(&service);
    assert_eq!(watcher.must_ask("VERSION"), "VERSION 1");
    let mut half = client(&service);
    half.send("SET half").unwrap();

    let load = Load::start(LoadConfig::new(service.addr, 50));
    assert_load_healthy(&load, &service, "the start");

    for i in 0..10 {
        let (component, version) = if i % 2 == 0 {
            (KV_V2, "VERSION 2")
        } else {
            (KV_V1, "VERSION 1")
        };
        let upgraded = service
            .upgrade(component)
            .unwrap_or_else(|e| panic!("upgrade {i} failed: {e}\n{}", service.logs()));
        eprintln!(
            "upgrade {i} to {version} in {:?}: {}",
            upgraded.elapsed, upgraded.message
        );
        assert_eq!(watcher.must_ask("VERSION"), version, "after upgrade {i}");
        if i == 0 {
            // Started before the upgrade, finished after it.
            half.send(" done\n").unwrap();
            assert_eq!(half.answer().unwrap(), "OK");
            assert_eq!(half.must_ask("GET half"), "VALUE done");
            // DEL is v2's.
            assert_eq!(half.must_ask("DEL nothing"), "NONE");
            // The next one is finished after the restart.
            half.send("SET across").unwrap();
        }
        assert_load_healthy(&load, &service, &format!("upgrade {i}"));
    }
    assert_eq!(
        watcher.must_ask("COUNT"),
        format!("VALUE {}", watcher.sent),
        "the watcher's count across ten upgrades"
    );

    // A restart of the host process: the listener, the connections and the
    // map wait in the daemon meanwhile.
    let stopped = service
        .stop()
        .unwrap_or_else(|e| panic!("{e}\n{}", service.logs()));
    eprintln!("fdbox stop took {stopped:?}");
    service.start_serve(KV_V1, Device::Daemon);
    assert_eq!(
        watcher.must_ask("VERSION"),
        "VERSION 1",
        "after the restart"
    );
    half.send(" restart\n").unwrap();
    assert_eq!(half.answer().unwrap(), "OK");
    assert_eq!(half.must_ask("GET across"), "VALUE restart");
    assert_eq!(half.must_ask("GET half"), "VALUE done");
    assert_eq!(half.must_ask("COUNT"), format!("VALUE {}", half.sent));
    assert_load_healthy(&load, &service, "the restart");
    std::thread::sleep(Duration::from_secs(1));

    let report = load.stop();
    eprintln!("{}", summary(&report));
    assert_no_failures(&report);
    stop(&mut service);
}

#[test]
fn a_broken_upgrade_rolls_back() {
    let mut service = Service::start("upgrade-rollback", KV_V1);
    let mut c = client(&service);
    assert_eq!(c.must_ask("SET kept 1"), "OK");
    assert_eq!(c.must_ask("INCR n"), "VALUE 1");
    c.send("SET partial").unwrap();
    let load = Load::start(LoadConfig::new(service.addr, 10));
    assert_load_healthy(&load, &service, "the start");

    let error = service
        .upgrade(KV_BROKEN)
        .map(|upgraded| format!("the upgrade to kv-broken succeeded: {}", upgraded.message))
        .expect_err("an upgrade to a component that traps at start must fail");
    eprintln!("fdbox upgrade kv-broken: {error}");
    assert_one_line("fdbox upgrade kv-broken", &error);
    assert!(service.serving(), "fdbox serve exited:\n{}", service.logs());

    // The old version serves on, with its state, its connections and the
    // line it had half read.
    c.send(" yes\n").unwrap();
    assert_eq!(c.answer().unwrap(), "OK");
    assert_eq!(c.must_ask("VERSION"), "VERSION 1");
    assert_eq!(c.must_ask("GET partial"), "VALUE yes");
    assert_eq!(c.must_ask("GET kept"), "VALUE 1");
    assert_eq!(c.must_ask("INCR n"), "VALUE 2");
    assert_eq!(c.must_ask("COUNT"), format!("VALUE {}", c.sent));
    assert_eq!(client(&service).must_ask("GET kept"), "VALUE 1");
    assert_load_healthy(&load, &service, "the rolled-back upgrade");

    // And it still upgrades.
    service
        .upgrade(KV_V2)
        .unwrap_or_else(|e| panic!("upgrade after the rollback failed: {e}\n{}", service.logs()));
    assert_eq!(c.must_ask("VERSION"), "VERSION 2");
    assert_eq!(c.must_ask("GET kept"), "VALUE 1");
    assert_load_healthy(&load, &service, "the upgrade after the rollback");

    let report = load.stop();
    eprintln!("{}", summary(&report));
    assert_no_failures(&report);
    stop(&mut service);
}

/// A version that ignores the hand-over request and computes forever,
/// making no host call, is stopped at the deadline by epoch interruption;
/// the operator is told, and the new version starts from the box as the
/// old one last sealed it (here: never) and from the host's listener grant,
/// which the host kept bound.
#[test]
fn a_guest_that_ignores_the_handover_is_stopped_at_the_deadline() {
    let mut service = Service::start_with(
        "upgrade-deadline",
        KV_V1,
        &["--env", "KV_STUBBORN=spin", "--handover-timeout", "1"],
    );
    let mut c = client(&service);
    assert_eq!(c.must_ask("SET unsealed 1"), "OK");
    let began = std::time::Instant::now();
    let upgraded = service
        .upgrade(KV_V2)
        .unwrap_or_else(|e| panic!("the upgrade failed: {e}\n{}", service.logs()));
    eprintln!("fdbox upgrade: {}", upgraded.message);
    assert!(
        upgraded
            .message
            .contains("did not hand over within 1s and was stopped"),
        "the operator is told: {}",
        upgraded.message
    );
    assert!(began.elapsed() >= Duration::from_secs(1));
    let mut fresh = client(&service);
    assert_eq!(fresh.must_ask("VERSION"), "VERSION 2");
    // What the stopped version never sealed is gone, as the message says,
    // and so is its connection.
    assert_eq!(fresh.must_ask("GET unsealed"), "NONE");
    assert!(
        c.ask("PING").is_err(),
        "the stopped version's connection closed"
    );
    // v2 spins too when asked to stop: stopped again, and `fdbox stop`
    // still ends the service.
    stop(&mut service);
}

#[test]
fn bad_upgrades_are_refused_and_change_nothing() {
    let mut service = Service::start("upgrade-bad", KV_V1);
    let mut c = client(&service);
    assert_eq!(c.must_ask("SET kept 2"), "OK");
    let load = Load::start(LoadConfig::new(service.addr, 10));
    assert_load_healthy(&load, &service, "the start");

    let text = service.dir.join("not-a-component.wasm");
    std::fs::write(&text, "this is not a component\n").unwrap();
    let missing = service.dir.join("missing.wasm");
    let cases = [
        ("a missing file", missing.to_str().unwrap()),
        ("a text file", text.to_str().unwrap()),
        ("a component that is not a command (bench)", BENCH),
        ("a command that does not import lifecycle (probe)", PROBE),
    ];
    for (what, path) in cases {
        let error = service
            .upgrade(path)
            .map(|upgraded| format!("the upgrade succeeded: {}", upgraded.message))
            .expect_err(&format!("an upgrade to {what} must be refused"));
        eprintln!("fdbox upgrade with {what}: {error}");
        assert_one_line(what, &error);
        assert!(
            service.serving(),
            "fdbox serve exited after an upgrade to {what}:\n{}",
            service.logs()
        );
        assert_eq!(c.must_ask("VERSION"), "VERSION 1", "after {what}");
    }

    // No service behind the control socket.
    let absent = service.dir.join("absent.sock");
    for args in [
        vec![
            "upgrade".into(),
            KV_V2.into(),
            "--control".into(),
            absent.clone().into_os_string(),
        ],
        vec![
            "stop".into(),
            "--control".into(),
            absent.clone().into_os_string(),
        ],
    ] {
        let outcome = fdbox(&args);
        let error = outcome.stderr.trim();
        eprintln!("{FDBOX} {args:?} without a service: {error}");
        assert_eq!(
            outcome.status.code(),
            Some(2),
            "{args:?} without a service must exit 2"
        );
        assert_one_line("no service", error);
    }

    assert_eq!(c.must_ask("GET kept"), "VALUE 2");
    assert_eq!(c.must_ask("COUNT"), format!("VALUE {}", c.sent));
    assert_eq!(client(&service).must_ask("PING"), "PONG");
    assert_load_healthy(&load, &service, "the refused upgrades");
    let report = load.stop();
    eprintln!("{}", summary(&report));
    assert_no_failures(&report);
    stop(&mut service);
}

/// A process of another user: `python3 -c SCRIPT ARGS...` as uid 65534.
fn as_nobody(script: &str, args: &[&std::path::Path]) -> std::process::Output {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap()
}

#[test]
fn only_this_user_may_upgrade_or_stop_a_service() {
    use std::os::unix::fs::PermissionsExt as _;
    if !rustix::process::geteuid().is_root() {
        panic!("this test plays another user with setuid: run the tests as root");
    }
    let mut service = Service::start("control-peer", KV_V1);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&service.control), 0o600, "the control socket");
    assert_eq!(
        mode(service.control.parent().unwrap()),
        0o700,
        "its directory"
    );

    // Opened up by hand, so that only SO_PEERCRED stands in the way: another
    // user connects and asks the service to stop; it is refused unread.
    let open = |p: &std::path::Path, m| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    let dir = service.control.parent().unwrap().to_path_buf();
    open(&dir, 0o755);
    open(&service.control, 0o666);
    let out = as_nobody(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.settimeout(5)\ntry:\n  s.sendall(b'stop\\n')\n  n=len(s.recv(100))\nexcept (ConnectionResetError, BrokenPipeError):\n  n=0\nprint(n)",
        &[&service.control],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "another user got a reply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        service.serving(),
        "the service stopped for another user:\n{}",
        service.logs()
    );
    assert_eq!(client(&service).must_ask("PING"), "PONG");

    // fdbox's own client refuses a control directory others may enter.
    let refused = fdbox(&[
        "stop".into(),
        "--control".into(),
        service.control.clone().into(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(refused.stderr.contains("chmod 700"), "{}", refused.stderr);
    open(&dir, 0o700);
    stop(&mut service);
}

/// Waits until `log` has `count` lines containing `needle`; those lines.
fn log_lines(service: &Service, log: &std::path::Path, needle: &str, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {count} lines with {needle:?} in {}:\n{}",
            log.display(),
            service.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number in `line` after `word ` ("hoarding 499 memory files").
fn count_after(line: &str, word: &str) -> usize {
    line.split(&format!("{word} "))
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count after {word:?} in {line:?}"))
}

/// `fdbox upgrade` and `fdbox stop` on a service whose guest holds as many
/// fds as it could get: each answers within a few seconds, and the log
/// stays a few lines long (issue 12 saw no reply in 30 s and 8.8 million
/// lines of `control socket: Too many open files`).
fn upgrade_and_stop_answer(mut service: Service, hoarding: &str) {
    let log = service.dir.join("serve-0.log");
    let began = std::time::Instant::now();
    let upgraded = service
        .upgrade(KV_V2)
        .unwrap_or_else(|e| panic!("the upgrade failed: {e}\n{}", service.logs()));
    let upgrade_took = began.elapsed();
    eprintln!("fdbox upgrade: {}", upgraded.message);
    assert!(
        upgraded.message.starts_with("upgraded to"),
        "{}",
        upgraded.message
    );
    // The new version hoards too, once a connection came.
    assert_eq!(client(&service).must_ask("VERSION"), "VERSION 2");
    log_lines(&service, &log, hoarding, 2);
    let began = std::time::Instant::now();
    stop(&mut service);
    let stop_took = began.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    eprintln!(
        "with the guest hoarding: fdbox upgrade answered in {upgrade_took:?}, fdbox stop in {stop_took:?}; serve log {} lines, {} bytes",
        text.lines().count(),
        text.len()
    );
    assert!(
        upgrade_took < Duration::from_secs(20),
        "upgrade took {upgrade_took:?}"
    );
    assert!(
        stop_took < Duration::from_secs(10),
        "stop took {stop_took:?}"
    );
    assert!(
        text.lines().count() < 40,
        "the serve log grew to {} lines:\n{text}",
        text.lines().count()
    );
}

/// Issue 12, item 6: a guest that creates memory files in a loop gets
/// `quota-exceeded` at its descriptor quota (`--max-descriptors`), and the
/// service still answers.
#[test]
fn a_guest_creating_memory_files_in_a_loop_hits_its_descriptor_quota() {
    let service = Service::start_with(
        "hoard-quota",
        KV_V1,
        &["--env", "KV_HOARD=memory-files", "--max-descriptors", "500"],
    );
    let log = service.dir.join("serve-0.log");
    let hoarded = log_lines(&service, &log, "memory files; the next create failed", 1);
    eprintln!("{}", hoarded[0]);
    assert!(
        hoarded[0].ends_with("failed: quota-exceeded"),
        "{}",
        hoarded[0]
    );
    // 500, less the connection it accepted (and whatever else it holds).
    let n = count_after(&hoarded[0], "hoarding");
    assert!((490..500).contains(&n), "{}", hoarded[0]);
    upgrade_and_stop_answer(
        service,
        "memory files; the next create failed: quota-exceeded",
    );
}

/// Issue 12, item 6: a guest that takes every fd of the host process it can
/// (memory files until fdbox keeps the host's reserve, then its `--dir`
/// opened again and again through `wasi:filesystem`, which fdbox does not
/// see, until the kernel refuses: the process then has at most one fd free,
/// too few to read and compile a new version) cannot keep `fdbox serve`
/// from answering on its control socket, nor an upgrade from working: the
/// control channel's reserved fds are freed for the request. (The accept
/// itself with no fd free at all: `serve::tests` in `src/serve.rs`.)
#[test]
fn serve_answers_while_its_guest_holds_every_fd() {
    let dir = load::serve::TempDir::new("hoard-fds-dir");
    let service = Service::start_limited(
        "hoard-fds",
        KV_V1,
        &[
            "--env",
            "KV_HOARD=memory-files,files",
            "--max-descriptors",
            "1000000",
            "--dir",
            dir.to_str().unwrap(),
        ],
        Some(512),
    );
    let log = service.dir.join("serve-0.log");
    let files = log_lines(&service, &log, "memory files; the next create failed", 1);
    let opened = log_lines(&service, &log, "files; the next open failed", 1);
    eprintln!("{}\n{}", files[0], opened[0]);
    // fdbox stopped at the host's reserve, with the reason in the log.
    assert!(files[0].ends_with("failed: quota-exceeded"), "{}", files[0]);
    let n = count_after(&files[0], "hoarding");
    assert!(
        n < 512 - fdbox_host::wasm::HOST_RESERVED_FDS as usize && n > 300,
        "{}",
        files[0]
    );
    // The directory took what was left, up to the kernel's limit.
    assert!(count_after(&opened[0], "hoarding") > 0, "{}", opened[0]);
    assert!(opened[0].contains("failed: "), "{}", opened[0]);
    upgrade_and_stop_answer(service, "files; the next open failed");
}

/// An upgrade whose checkpoint cannot be made (`fdbox serve` has too few
/// fds left to hold a second one for every boxed fd) is refused before the
/// new version starts: the old version takes its boxes back, and every
/// connection and key is there.
#[test]
fn an_upgrade_without_room_for_its_checkpoint_is_refused_and_loses_nothing() {
    // 300 fds: the guest's 150 connections fit (with the host's reserve of
    // 64), a second fd for each of them does not.
    const CONNECTIONS: usize = 150;
    let mut service = Service::start_limited("no-checkpoint", KV_V1, &[], Some(300));
    let mut clients: Vec<Client> = (0..CONNECTIONS).map(|_| client(&service)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.must_ask(&format!("SET k{i} v{i}")), "OK");
    }
    let refused = service
        .upgrade(KV_V2)
        .err()
        .unwrap_or_else(|| panic!("an upgrade with no room for its checkpoint went ahead"));
    eprintln!("fdbox upgrade: {refused}");
    assert!(
        refused.contains("refused: no checkpoint to roll back to")
            && refused.contains("RLIMIT_NOFILE")
            && refused.contains("rolled back to"),
        "{refused}\n{}",
        service.logs()
    );
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.must_ask(&format!("GET k{i}")), format!("VALUE v{i}"));
        assert_eq!(c.must_ask("COUNT"), "VALUE 3");
    }
    assert_eq!(client(&service).must_ask("VERSION"), "VERSION 1");
    stop(&mut service);
}
