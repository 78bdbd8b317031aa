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
