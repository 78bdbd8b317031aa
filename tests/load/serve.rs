//! The processes a load runs against: a private holder daemon, `fdbox
//! serve` with the kv service (or the RESP or HTTP service, [`Guest`]) on a
//! free loopback port, and the `fdbox upgrade` / `fdbox stop` commands that
//! drive it ([`upgrades_and_a_restart`]: the cycle the RESP and HTTP tests
//! run their clients through).
//!
//! Every process is owned by a [`Proc`], which kills and reaps it when
//! dropped, so a failing test leaves nothing behind. A [`Service`] dropped
//! while panicking prints the tail of every log it kept.

use super::Client;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// This build's `fdbox`.
pub const FDBOX: &str = env!("CARGO_BIN_EXE_fdbox");

/// How long `fdbox serve` may take until the service answers (a debug
/// build compiles the component slowly).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `fdbox upgrade` and `fdbox stop` may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[path = "../../host/tests/support/temp_dir.rs"]
mod temp_dir;
pub use temp_dir::TempDir;

/// A child process that is killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub what: String,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout and stderr appended to
    /// `log`.
    pub fn spawn(what: &str, mut cmd: Command, log: &Path) -> Proc {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Proc {
            child,
            what: what.into(),
            log: log.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for it to exit; `None` if it has not within `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The tail of a log, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free loopback address: bound to port 0, then closed.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// What a finished command printed and how it exited.
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs `fdbox ARGS...` to completion (killed after [`COMMAND_TIMEOUT`]).
pub fn fdbox(args: &[OsString]) -> Outcome {
    let dir = std::env::temp_dir();
    let unique = format!(
        "fdbox-cmd-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )
    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
    let (out_path, err_path) = (
        dir.join(format!("{unique}.out")),
        dir.join(format!("{unique}.err")),
    );
    let start = Instant::now();
    let mut cmd = Command::new(FDBOX);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut proc = Proc {
        child: cmd.spawn().expect("cannot run fdbox"),
        what: format!("fdbox {args:?}"),
        log: err_path.clone(),
    };
    let status = proc
        .wait_timeout(COMMAND_TIMEOUT)
        .unwrap_or_else(|| panic!("fdbox {args:?} did not finish in {COMMAND_TIMEOUT:?}"));
    let elapsed = start.elapsed();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Outcome {
        status,
        stdout,
        stderr,
        elapsed,
    }
}

/// A successful `fdbox upgrade`.
pub struct Upgraded {
    /// How long the command took.
    pub elapsed: Duration,
    /// What it printed.
    pub message: String,
}

impl Upgraded {
    /// The figure in milliseconds that follows `label` in the message (as
    /// in `hand-over 3.1 ms`), if the host printed one.
    pub fn figure_ms(&self, label: &str) -> Option<f64> {
        self.message.match_indices(label).find_map(|(at, _)| {
            let rest = self.message[at + label.len()..].strip_prefix(' ')?;
            let (figure, unit) = rest.split_once(' ')?;
            unit.starts_with("ms").then(|| figure.parse().ok())?
        })
    }
}

/// Where `fdbox serve` keeps its boxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The service's private holder daemon: boxes outlive `fdbox serve`.
    Daemon,
    /// In the `fdbox serve` process: nothing outlives it.
    Memory,
}

/// Which service guest runs: the box it is granted, and how a test sees it
/// answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guest {
    /// `kv-service`, box `kv`.
    Kv,
    /// `resp-service`, box `resp`.
    Resp,
    /// `http-service`, box `http`.
    Http,
}

impl Guest {
    /// The box `fdbox serve` grants it.
    pub fn box_name(self) -> &'static str {
        match self {
            Guest::Kv => "kv",
            Guest::Resp => "resp",
            Guest::Http => "http",
        }
    }

    /// A request that shows it answers, and the first line of the answer
    /// (without the `\n`): `PING` for the kv and RESP services (the RESP
    /// one takes it as an inline command), `GET /` for the HTTP one.
    pub fn probe(self) -> (&'static str, &'static str) {
        match self {
            Guest::Kv => ("PING\n", "PONG"),
            Guest::Resp => ("PING\n", "+PONG\r"),
            Guest::Http => (
                "GET / HTTP/1.1\r\nHost: fdbox\r\nConnection: close\r\n\r\n",
                "HTTP/1.1 200 OK\r",
            ),
        }
    }
}

/// A service guest under `fdbox serve`, with its own daemon, port, control
/// socket and logs in a temp directory.
pub struct Service {
    /// Field order is drop order: the serve process, then the daemon, then
    /// the directory.
    serve: Option<Proc>,
    /// More `fdbox serve` arguments, for every start.
    extra: Vec<OsString>,
    /// RLIMIT_NOFILE (soft and hard) of every `fdbox serve`, if not the
    /// test's own.
    nofile: Option<u64>,
    guest: Guest,
    daemon: Proc,
    /// Every serve log so far, for failure messages.
    logs: Vec<PathBuf>,
    pub addr: SocketAddr,
    pub daemon_socket: PathBuf,
    pub control: PathBuf,
    pub dir: TempDir,
}

impl Service {
    /// Starts a daemon, then `fdbox serve component` on it, and waits until
    /// the service answers its probe ([`Guest::probe`]).
    pub fn start(tag: &str, component: &str) -> Service {
        Self::start_with(tag, component, &[])
    }

    /// [`Service::start`], with more `fdbox serve` arguments (for every
    /// later start too).
    pub fn start_with(tag: &str, component: &str, extra: &[&str]) -> Service {
        Self::start_limited(tag, component, extra, None)
    }

    /// [`Service::start_with`], every `fdbox serve` with at most `nofile`
    /// fds (`prlimit --nofile`, soft and hard) if given.
    pub fn start_limited(
        tag: &str,
        component: &str,
        extra: &[&str],
        nofile: Option<u64>,
    ) -> Service {
        Self::start_guest(tag, component, Guest::Kv, extra, nofile)
    }

    /// [`Service::start_limited`] for a service guest of another kind.
    pub fn start_guest(
        tag: &str,
        component: &str,
        guest: Guest,
        extra: &[&str],
        nofile: Option<u64>,
    ) -> Service {
        Self::start_with_daemon(tag, component, guest, extra, nofile, &[])
    }

    /// [`Service::start_guest`], the daemon started with more `fdbox
    /// daemon` arguments (`daemon_extra`: its limits, say).
    pub fn start_with_daemon(
        tag: &str,
        component: &str,
        guest: Guest,
        extra: &[&str],
        nofile: Option<u64>,
        daemon_extra: &[&str],
    ) -> Service {
        let dir = TempDir::new(tag);
        let daemon_socket = dir.join("daemon.sock");
        let mut cmd = Command::new(FDBOX);
        cmd.arg("daemon").arg("--socket").arg(&daemon_socket);
        cmd.args(daemon_extra);
        let mut daemon = Proc::spawn("fdbox daemon", cmd, &dir.join("daemon.log"));
        let deadline = Instant::now() + START_TIMEOUT;
        while fdbox_host::DaemonDevice::connect(&daemon_socket).is_err() {
            assert!(
                daemon.running() && Instant::now() < deadline,
                "fdbox daemon did not come up:\n{}",
                tail(&daemon.log, 20)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut service = Service {
            serve: None,
            extra: extra.iter().map(|a| a.into()).collect(),
            nofile,
            guest,
            daemon,
            logs: Vec::new(),
            addr: free_addr(),
            daemon_socket,
            control: dir.join("control.sock"),
            dir,
        };
        service.start_serve(component, Device::Daemon);
        service
    }

    /// The `fdbox serve` arguments for `component` on `device`.
    pub fn serve_args(&self, component: &str, device: Device) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "serve".into(),
            component.into(),
            "--listen".into(),
            format!("main={}", self.addr).into(),
            "--box".into(),
            self.guest.box_name().into(),
            "--control".into(),
            self.control.clone().into(),
        ];
        match device {
            Device::Daemon => args.extend([
                "--device".into(),
                "daemon".into(),
                "--socket".into(),
                self.daemon_socket.clone().into(),
            ]),
            Device::Memory => args.extend(["--device".into(), "memory".into()]),
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Starts `fdbox serve` (there must be none running) and waits until
    /// the service answers its probe ([`Guest::probe`]) on a new
    /// connection.
    pub fn start_serve(&mut self, component: &str, device: Device) {
        assert!(self.serve.is_none(), "fdbox serve is already running");
        let log = self.dir.join(format!("serve-{}.log", self.logs.len()));
        self.logs.push(log.clone());
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}")).arg("--").arg(FDBOX);
                cmd
            }
            None => Command::new(FDBOX),
        };
        cmd.args(self.serve_args(component, device));
        self.serve = Some(Proc::spawn("fdbox serve", cmd, &log));
        self.wait_answering(START_TIMEOUT);
        // The guest answers once it listens; the control socket appears a
        // moment later, once serve has its readiness (`fdbox upgrade` and
        // the tests that look at the socket need it).
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.control.exists() {
            assert!(
                Instant::now() < deadline,
                "fdbox serve answered but made no control socket within {START_TIMEOUT:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until a new connection gets its answer to the probe
    /// ([`Guest::probe`]).
    pub fn wait_answering(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (probe, answer) = self.guest.probe();
        loop {
            let answered = Client::connect(self.addr, Duration::from_secs(5))
                .ok()
                .and_then(|mut c| c.send(probe).ok().and_then(|()| c.answer().ok()));
            if answered.as_deref() == Some(answer) {
                return;
            }
            let serve = self.serve.as_mut().expect("no fdbox serve");
            assert!(
                serve.running(),
                "fdbox serve exited before it answered:\n{}",
                self.logs()
            );
            assert!(
                Instant::now() < deadline,
                "fdbox serve did not answer within {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `fdbox upgrade component`: on exit 0 how long it took and what it
    /// printed, else `Err` with what it printed (trimmed).
    pub fn upgrade(&self, component: &str) -> Result<Upgraded, String> {
        let outcome = fdbox(&[
            "upgrade".into(),
            component.into(),
            "--control".into(),
            self.control.clone().into(),
        ]);
        let printed = format!("{}{}", outcome.stderr.trim(), outcome.stdout.trim());
        if outcome.status.success() {
            Ok(Upgraded {
                elapsed: outcome.elapsed,
                message: printed,
            })
        } else {
            // One exit code for every refusal (README, "Exit codes").
            assert_eq!(
                outcome.status.code(),
                Some(2),
                "a refused upgrade exits 2: {printed}"
            );
            Err(printed)
        }
    }

    /// `fdbox stop`, then waits for `fdbox serve` to exit, which must be
    /// with status 0.
    pub fn stop(&mut self) -> Result<Duration, String> {
        let outcome = fdbox(&[
            "stop".into(),
            "--control".into(),
            self.control.clone().into(),
        ]);
        if !outcome.status.success() {
            return Err(format!(
                "fdbox stop exited with {}: {}",
                outcome.status,
                outcome.stderr.trim()
            ));
        }
        let mut serve = self.serve.take().expect("no fdbox serve");
        match serve.wait_timeout(COMMAND_TIMEOUT) {
            Some(status) if status.success() => Ok(outcome.elapsed),
            Some(status) => Err(format!("fdbox serve exited with {status} after fdbox stop")),
            None => Err("fdbox serve still runs after fdbox stop".into()),
        }
    }

    /// SIGKILL to `fdbox serve`: a restart without fdbox's hand-over.
    pub fn kill_serve(&mut self) {
        self.serve.take().expect("no fdbox serve").kill();
    }

    /// Whether `fdbox serve` still runs.
    pub fn serving(&mut self) -> bool {
        self.serve.as_mut().is_some_and(Proc::running)
    }

    /// The lines of every serve log and of the daemon's that hold a
    /// warning or an error.
    pub fn warnings(&self) -> Vec<String> {
        self.logs
            .iter()
            .chain([&self.daemon.log])
            .flat_map(|log| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                text.lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The tail of every serve log and of the daemon's.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for log in self.logs.iter().chain([&self.daemon.log]) {
            all += &format!("--- {} ---\n{}\n", log.display(), tail(log, 40));
        }
        all
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A hand-over a test made: when it began and ended.
pub struct Window {
    /// `upgrade 3`, `the restart`.
    pub what: String,
    pub from: Instant,
    pub to: Instant,
}

/// What [`upgrades_and_a_restart`] has just done.
pub enum Step {
    /// Upgrade `index` (0 to 9), to `v2` if `to_v2`, else to `v1`.
    Upgraded {
        index: usize,
        to_v2: bool,
        outcome: Upgraded,
    },
    /// `fdbox stop`, which took `stop`, then `fdbox serve v1` on the daemon
    /// device in a new host process, answering `back` after the stop began.
    Restarted { stop: Duration, back: Duration },
}

/// Upgrades `service` v1 -> v2 -> v1 ... ten times (it must be running
/// `v1`), then restarts it in a new host process on the daemon device
/// (`fdbox stop`, `fdbox serve v1`): the cycle `tests/resp.rs` and
/// `tests/http.rs` run their clients through. Calls `after` with the
/// service after each step, then sleeps `pause`; panics (with the logs) if a
/// step fails. Returns when each step began and ended, for [`super::covered`].
pub fn upgrades_and_a_restart(
    service: &mut Service,
    v1: &str,
    v2: &str,
    pause: Duration,
    mut after: impl FnMut(&Service, &Step),
) -> Vec<Window> {
    let name = |component: &str| {
        Path::new(component)
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
    };
    let mut windows = Vec::new();
    for index in 0..10 {
        let to_v2 = index % 2 == 0;
        let component = if to_v2 { v2 } else { v1 };
        let from = Instant::now();
        let outcome = service
            .upgrade(component)
            .unwrap_or_else(|e| panic!("upgrade {index} failed: {e}\n{}", service.logs()));
        windows.push(Window {
            what: format!("upgrade {index}"),
            from,
            to: Instant::now(),
        });
        eprintln!(
            "upgrade {index} to {}: {}",
            name(component),
            outcome.message
        );
        after(
            service,
            &Step::Upgraded {
                index,
                to_v2,
                outcome,
            },
        );
        std::thread::sleep(pause);
    }
    // A new host process: the listener, the connections and the state wait
    // in the daemon meanwhile.
    let from = Instant::now();
    let stop = service
        .stop()
        .unwrap_or_else(|e| panic!("{e}\n{}", service.logs()));
    service.start_serve(v1, Device::Daemon);
    let back = from.elapsed();
    windows.push(Window {
        what: "the restart".into(),
        from,
        to: Instant::now(),
    });
    eprintln!("restart: fdbox stop took {stop:?}, answering again {back:?} after it began");
    after(service, &Step::Restarted { stop, back });
    std::thread::sleep(pause);
    windows
}
