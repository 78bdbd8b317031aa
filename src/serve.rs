//! `fdbox serve`: run a service component and upgrade it in place.
//!
//! A service is a `wasi:cli` command that imports `fdbox:fdbox/lifecycle`:
//! it serves until the host asks it to hand over, then boxes its listener,
//! its connections and its state, seals the box, says `handed-over` and
//! returns. `fdbox upgrade NEW.wasm` (over the control socket,
//! [`crate::control`]) then does, in this order:
//!
//! 1. compile NEW and check it is a service; on any error the running
//!    version is not touched;
//! 2. ask the running instance to hand over; one that has not within
//!    `--handover-timeout` is stopped (epoch interruption bounds guest work
//!    between polls, so even a busy guest stops), and its boxes are as it
//!    last sealed them;
//! 3. checkpoint the sealed boxes ([`Checkpoint`]), start NEW, and wait for
//!    its `ready`; if no checkpoint can be made (a second fd for every
//!    boxed one does not fit under RLIMIT_NOFILE, say), NEW is not started:
//!    the old version takes its boxes back and the upgrade is refused;
//! 4. if NEW traps, exits or is not ready within `--ready-timeout`, restore
//!    the checkpoint and start the old version again: the upgrade is
//!    rolled back and the operator told why.
//!
//! `fdbox stop` asks for a hand-over and exits, so a new `fdbox serve` (a
//! new host binary, say) resumes from the boxes, which outlive this process
//! on a device that does (the holder daemon). SIGTERM and SIGINT do the
//! same.

use crate::checkpoint::Checkpoint;
use crate::control::{self, ControlArgs, Request};
use crate::guest::{self, GuestArgs, Outcome};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use fdbox_host::control::MAX_LINE;
use fdbox_host::wasm::lifecycle::{self, Lifecycle, Progress};
use fdbox_host::{Device, FdboxCtx, HandleKind, ListenerGrants, WasiFdbox};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;

/// How often the epoch ticks: the longest a guest runs without yielding.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Arguments of `fdbox serve`.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    guest: GuestArgs,

    /// Grant the guest a TCP listener `NAME=ADDR` (say main=127.0.0.1:8080),
    /// bound when the guest first asks for it and kept across upgrades.
    /// Listening sockets passed by systemd (LISTEN_FDS) are granted under
    /// their LISTEN_FDNAMES names.
    #[arg(long = "listen", value_name = "NAME=ADDR", value_parser = parse_listen)]
    listen: Vec<(String, SocketAddr)>,

    /// How long an instance asked to hand over may take before it is
    /// stopped.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, allow_negative_numbers = true, value_parser = crate::numbers::seconds)]
    handover_timeout: f64,

    /// How long a new version may take to say it is ready before the
    /// upgrade is rolled back.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, allow_negative_numbers = true, value_parser = crate::numbers::seconds)]
    ready_timeout: f64,

    #[command(flatten)]
    control: ControlArgs,

    /// The service component (a `wasi:cli` command importing
    /// fdbox:fdbox/lifecycle).
    component: PathBuf,

    #[command(flatten)]
    device: crate::device::DeviceArgs,

    /// Arguments for the guest (every version gets the same).
    #[arg(last = true)]
    args: Vec<String>,
}

fn parse_listen(value: &str) -> Result<(String, SocketAddr), String> {
    let (name, address) = value
        .split_once('=')
        .ok_or_else(|| format!("--listen {value:?}: expected NAME=ADDR"))?;
    if name.is_empty() {
        return Err(format!("--listen {value:?}: the name is empty"));
    }
    let address = address
        .parse()
        .map_err(|e| format!("--listen {value:?}: {address:?} is not IP:PORT ({e})"))?;
    Ok((name.to_owned(), address))
}

/// A version of the service, ready to instantiate.
#[derive(Clone)]
struct Version {
    path: PathBuf,
    pre: CommandPre<WasiFdbox>,
}

/// The instance that serves now.
struct Running {
    version: Version,
    lifecycle: Arc<Lifecycle>,
    task: JoinHandle<Outcome>,
}

/// What waiting on an instance came to.
enum Waited {
    /// It said what was waited for.
    Said,
    /// It ended first.
    Ended(Outcome),
    /// Neither, in time.
    TimedOut,
}

/// The outcome of a task whose instance has ended (or was aborted).
fn outcome(joined: Result<Outcome, tokio::task::JoinError>) -> Outcome {
    joined.unwrap_or_else(|e| Outcome::Trapped(wasmtime::Error::msg(format!("stopped: {e}"))))
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Exited(code) => format!("exited with code {code}"),
        Outcome::Trapped(trap) => format!("trapped: {}", trap.root_cause()),
    }
}

/// A running service and what it needs to start new instances.
struct Service {
    args: ServeArgs,
    engine: Engine,
    linker: Linker<WasiFdbox>,
    device: Arc<dyn Device>,
    listeners: ListenerGrants,
    reserve: Mutex<Reserve>,
}

/// Fds kept open (on /dev/null) for the control channel: when the process
/// is out of fds (a guest holding every one it could open, say), they are
/// closed so that the control socket can accept, and while a request is
/// handled, so that it has fds to work with (an upgrade reads and compiles
/// a component); they are opened again once it is answered and before an
/// instance starts (when the old one's fds are free).
///
/// fdbox's own hand-outs to guests stop [`fdbox_host::wasm::HOST_RESERVED_FDS`]
/// short of the limit; this covers what fdbox does not see (descriptors and
/// sockets a guest opens through WASI itself).
#[derive(Default)]
struct Reserve {
    fds: Vec<std::os::fd::OwnedFd>,
}

impl Reserve {
    /// Enough for the connection, the component an upgrade loads and its
    /// compilation cache.
    const FDS: usize = 16;

    /// Open what is missing, as far as the process may.
    fn fill(&mut self) {
        use rustix::fs::{Mode, OFlags, open};
        while self.fds.len() < Self::FDS {
            match open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => self.fds.push(fd),
                Err(_) => break,
            }
        }
    }

    /// Close them all; whether there were any.
    fn release(&mut self) -> bool {
        let had = !self.fds.is_empty();
        self.fds.clear();
        had
    }
}

impl Service {
    /// A context for a new instance.
    fn fdbox(&self, lifecycle: Arc<Lifecycle>) -> FdboxCtx {
        self.args
            .guest
            .fdbox(self.device.clone())
            .listeners(self.listeners.clone())
            .lifecycle(lifecycle)
            .build()
    }

    /// Compile `path` and check it is a service.
    fn load(&self, path: &Path) -> Result<Version> {
        let (component, pre) = guest::command_pre(&self.engine, &self.linker, path)?;
        check_service(&self.engine, &component, path)?;
        Ok(Version {
            path: path.to_owned(),
            pre,
        })
    }

    /// Start an instance of `version`.
    fn start(&self, version: Version) -> Result<Running> {
        // Before the instance can take them.
        lock(&self.reserve).fill();
        let lifecycle = Lifecycle::new();
        let wasi = self.args.guest.wasi(&version.path, &self.args.args)?;
        let mut store = Store::new(
            &self.engine,
            WasiFdbox::new(wasi, self.fdbox(lifecycle.clone())),
        );
        // Yield to the runtime at every tick: a guest busy between polls
        // still lets the host stop it (a task is aborted at a yield).
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        let pre = version.pre.clone();
        let task = tokio::spawn(async move { guest::run_instance(&pre, store).await });
        Ok(Running {
            version,
            lifecycle,
            task,
        })
    }

    /// Wait until `running` says what `done` looks for, ends, or `timeout`
    /// passes.
    async fn wait(running: &mut Running, done: fn(&Progress) -> bool, timeout: Duration) -> Waited {
        let lifecycle = running.lifecycle.clone();
        tokio::select! {
            biased;
            _ = lifecycle.wait_for(done) => Waited::Said,
            joined = &mut running.task => Waited::Ended(outcome(joined)),
            _ = tokio::time::sleep(timeout) => Waited::TimedOut,
        }
    }

    /// Ask `running` for `request` and see it gone: handed over, ended, or
    /// stopped after the hand-over timeout. A note for the operator if it
    /// did not hand over.
    async fn retire(&self, mut running: Running, request: lifecycle::Request) -> Option<String> {
        let timeout = Duration::from_secs_f64(self.args.handover_timeout);
        let asked = Instant::now();
        running.lifecycle.request(request);
        let name = running.version.path.display().to_string();
        let note = match Self::wait(&mut running, |p| p.handed_over, timeout).await {
            Waited::Said => {
                tracing::debug!("{name} handed over after {:?}", asked.elapsed());
                // It returns from `run` next; it may still flush.
                match tokio::time::timeout(timeout, &mut running.task).await {
                    Ok(joined) => {
                        tracing::debug!("{name} returned after {:?}", asked.elapsed());
                        outcome(joined).log()
                    }
                    Err(_) => {
                        running.task.abort();
                        tracing::warn!("{name} handed over but did not return; stopped");
                    }
                }
                return None;
            }
            Waited::Ended(outcome) => format!(
                "{name} {} without handing over; its boxes are as it last sealed them",
                describe(&outcome)
            ),
            Waited::TimedOut => {
                running.task.abort();
                let _ = (&mut running.task).await;
                format!(
                    "{name} did not hand over within {timeout:?} and was stopped; its boxes are as it last sealed them"
                )
            }
        };
        tracing::warn!("{note}");
        Some(note)
    }

    /// Start `version` and wait for its `ready`; the instance, or why it
    /// is not serving (it is gone then).
    async fn start_ready(&self, version: Version) -> Result<Running> {
        let mut running = self.start(version)?;
        let timeout = Duration::from_secs_f64(self.args.ready_timeout);
        match Self::wait(&mut running, |p| p.ready, timeout).await {
            Waited::Said => Ok(running),
            Waited::Ended(outcome) => bail!("it {} before it was ready", describe(&outcome)),
            Waited::TimedOut => {
                running.task.abort();
                let _ = (&mut running.task).await;
                bail!("it was not ready within {timeout:?} and was stopped")
            }
        }
    }

    /// `fdbox upgrade`: move from `running` to the component at `path`;
    /// what serves afterwards (the new version, or the old one again) and
    /// the message for the operator.
    async fn upgrade(&self, running: Running, path: &Path) -> (Running, Result<String>) {
        let began = Instant::now();
        let new = match self.load(path) {
            Ok(new) => new,
            Err(e) => return (running, Err(e.context("upgrade refused; nothing changed"))),
        };
        let compiled = began.elapsed();
        let old = running.version.clone();
        let asked = Instant::now();
        let note = self.retire(running, lifecycle::Request::Upgrade).await;
        let handed_over = asked.elapsed();
        // A version that fails before it serves must not take the boxes down
        // with it. Without a checkpoint the new version does not start: the
        // boxes are as the old version sealed them, and it takes them back.
        let checkpoint = match Checkpoint::take(&self.fdbox(Lifecycle::new())) {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                let why = format!(
                    "upgrade to {} refused: no checkpoint to roll back to: {e:#} (a checkpoint holds a second fd for every boxed one: raise fdbox serve's RLIMIT_NOFILE, e.g. LimitNOFILE=, to upgrade a service this large, or move to it without a rollback point: fdbox stop, then fdbox serve it)",
                    path.display()
                );
                tracing::warn!("{why}");
                return self.serve_again(old, why).await;
            }
        };
        match self.start_ready(new).await {
            Ok(running) => {
                let mut message = format!(
                    "upgraded to {} (compiled in {} ms before the hand-over; hand-over {:.1} ms; serving {:.1} ms after the old version was asked)",
                    path.display(),
                    compiled.as_millis(),
                    handed_over.as_secs_f64() * 1e3,
                    asked.elapsed().as_secs_f64() * 1e3,
                );
                if let Some(note) = note {
                    message.push_str(&format!("; {note}"));
                }
                (running, Ok(message))
            }
            Err(why) => {
                if let Err(e) = checkpoint.restore(self.device.as_ref()) {
                    tracing::error!("cannot restore the boxes as they were: {e:#}");
                }
                let why = format!("{} failed: {why:#}", path.display());
                self.serve_again(old, why).await
            }
        }
    }

    /// Roll back: start `old` again on the boxes as they are; what serves,
    /// and the operator's message, `why` the upgrade did not happen.
    async fn serve_again(&self, old: Version, why: String) -> (Running, Result<String>) {
        let old_name = old.path.display().to_string();
        match self.start_ready(old).await {
            Ok(running) => (
                running,
                Err(anyhow!(
                    "{why}; rolled back to {old_name}, which serves again"
                )),
            ),
            Err(again) => {
                // Nothing serves: the caller exits.
                let failed = anyhow!("{why}; rolling back, {old_name} failed too: {again:#}");
                tracing::error!("{failed:#}");
                std::process::exit(1);
            }
        }
    }
}

/// The reserve, whatever a panic left: opening and closing fds leaves it
/// whole.
fn lock(reserve: &Mutex<Reserve>) -> std::sync::MutexGuard<'_, Reserve> {
    reserve
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Accept the next connection on the control socket. Out of fds (a guest
/// holding every one it could open, say), free the reserve and accept again
/// at once; otherwise, or with the reserve already spent, back off 100 ms
/// between attempts instead of spinning, and warn once a minute, not once
/// per attempt.
async fn accept_control(
    listener: &tokio::net::UnixListener,
    reserve: &Mutex<Reserve>,
    last_warning: &mut Option<Instant>,
) -> tokio::net::UnixStream {
    loop {
        let e = match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(e) => e,
        };
        let exhausted = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
        if exhausted && lock(reserve).release() {
            tracing::debug!("control socket: {e}; accepting on the reserved fds");
            continue;
        }
        if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
            tracing::warn!("control socket: {e}; retrying every 100 ms (warned once a minute)");
            *last_warning = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Refuse a component that cannot take part in upgrades.
fn check_service(engine: &Engine, component: &Component, path: &Path) -> Result<()> {
    let imports_lifecycle = component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("fdbox:fdbox/lifecycle@"));
    if !imports_lifecycle {
        bail!(
            "{} does not import fdbox:fdbox/lifecycle, so it cannot hand over: it is no service (run a plain command with `fdbox run`)",
            path.display()
        );
    }
    Ok(())
}

/// The listeners systemd passed (socket activation), by name.
fn inherited_listeners(grants: &ListenerGrants) -> Result<()> {
    for (name, fd) in crate::systemd::take_listen_fds()? {
        match fdbox_host::Handle::from_fd(fd) {
            Ok(handle) if handle.kind() == HandleKind::TcpListener => {
                grants.bound(&name, std::net::TcpListener::from(handle.into_fd()));
                tracing::info!("granting the listener systemd passed as {name:?}");
            }
            _ => tracing::warn!("systemd passed fd {name:?}, which is no TCP listener; ignored"),
        }
    }
    Ok(())
}

/// Refuse to start where a live service answers at the control socket.
fn check_control_free(path: &Path) -> Result<()> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!(
            "a service already answers at {} (stop it, or give this one another --control)",
            path.display()
        );
    }
    Ok(())
}

/// Bind the control socket at `path` (replacing a stale one). It appears
/// once the service serves, so its presence tells a script it may connect.
fn bind_control(path: &Path) -> Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        crate::daemon::private_dir(dir)?;
    }
    check_control_free(path)?;
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private (0600)", path.display()))?;
    Ok(listener)
}

/// Run the service as `args` says.
pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    crate::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve_async(args))
}

async fn serve_async(args: ServeArgs) -> Result<ExitCode> {
    args.guest.check_dirs()?;
    let mut config = args.guest.engine_config();
    config.epoch_interruption(true);
    let engine = Engine::new(&config)?;
    let ticker = engine.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EPOCH_TICK);
        loop {
            tick.tick().await;
            ticker.increment_epoch();
        }
    });
    let mut linker = Linker::<WasiFdbox>::new(&engine);
    WasiFdbox::add_to_linker_async(&mut linker)?;
    let listeners = ListenerGrants::new();
    for (name, address) in &args.listen {
        listeners.address(name, *address);
    }
    inherited_listeners(&listeners)?;
    let control_path = args.control.path();
    check_control_free(&control_path)?;
    let device = args.device.open()?;
    let service = Service {
        engine,
        linker,
        device,
        listeners,
        args,
        reserve: Default::default(),
    };
    let first = service.load(&service.args.component)?;
    let mut running = service
        .start_ready(first)
        .await
        .with_context(|| format!("{} did not start", service.args.component.display()))?;
    let control = bind_control(&control_path)?;
    eprintln!(
        "fdbox: serving {} (control socket {})",
        service.args.component.display(),
        control_path.display()
    );
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut last_accept_warning = None;
    let code = loop {
        let stream = tokio::select! {
            stream = accept_control(&control, &service.reserve, &mut last_accept_warning) => {
                // Only this user (or root) may upgrade or stop the service:
                // checked before the request is read.
                match fdbox_host::device::daemon::private::check_peer(&stream, "a control client") {
                    Ok(()) => {
                        // The request gets the reserved fds (to load an
                        // upgrade with, say); refilled once it is answered.
                        lock(&service.reserve).release();
                        Some(stream)
                    }
                    Err(e) => {
                        tracing::warn!("{e}");
                        continue;
                    }
                }
            }
            joined = &mut running.task => {
                let outcome = outcome(joined);
                tracing::warn!("{} {} on its own; stopping", running.version.path.display(), describe(&outcome));
                break outcome.exit_code();
            }
            // As `fdbox stop`: a service manager's stop, or Ctrl-C.
            _ = terminate.recv() => None,
            _ = interrupt.recv() => None,
        };
        let Some(stream) = stream else {
            service.retire(running, lifecycle::Request::Stop).await;
            break ExitCode::SUCCESS;
        };
        let (reader, mut writer) = stream.into_split();
        let mut line = Vec::new();
        let mut reader = BufReader::new(reader.take(MAX_LINE as u64));
        let read =
            tokio::time::timeout(Duration::from_secs(5), reader.read_until(b'\n', &mut line));
        let request = match read.await {
            Ok(Ok(_)) => Request::parse(&line).map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(format!("cannot read the request: {e}")),
            Err(_) => Err("no request line within 5 s".to_owned()),
        };
        let reply = match request {
            Ok(Request::Upgrade(path)) => {
                let (now, result) = service.upgrade(running, &path).await;
                running = now;
                match &result {
                    Ok(message) => tracing::info!("{message}"),
                    Err(e) => tracing::warn!("{e:#}"),
                }
                control::reply(&result)
            }
            Ok(Request::Stop) => {
                let note = service.retire(running, lifecycle::Request::Stop).await;
                let message = note.unwrap_or_else(|| "handed over; stopped".to_owned());
                let _ = writer.write_all(&control::reply(&Ok(message))).await;
                break ExitCode::SUCCESS;
            }
            Err(why) => control::reply(&Err(anyhow!(why))),
        };
        let _ = writer.write_all(&reply).await;
        drop(writer);
        // Where the instance has not taken them meanwhile.
        lock(&service.reserve).fill();
    };
    let _ = std::fs::remove_file(&control_path);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    const CHILD: &str = "FDBOX_TEST_OUT_OF_FDS";

    /// The control socket accepts with every fd of the process in use (the
    /// reserve makes room), and with the reserve spent it backs off with
    /// one warning instead of spinning. In a process of its own: it uses up
    /// every fd.
    #[test]
    fn the_control_socket_accepts_when_the_process_is_out_of_fds() {
        let name = "serve::tests::the_control_socket_accepts_when_the_process_is_out_of_fds";
        if std::env::var_os(CHILD).is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", name, "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let printed = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{printed}");
            assert!(printed.contains("1 passed"), "{printed}");
            return;
        }
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let hard = getrlimit(Resource::Nofile).maximum;
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(256),
                maximum: hard,
            },
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = std::env::temp_dir().join(format!("fdbox-out-of-fds-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("control.sock");
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path).unwrap();
            let reserve = Mutex::new(Reserve::default());
            lock(&reserve).fill();
            assert_eq!(lock(&reserve).fds.len(), Reserve::FDS);
            // The clients' sockets, made while there are fds.
            use rustix::net::{AddressFamily, SocketAddrUnix, SocketType, connect, socket};
            let client = || socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
            let (first, second) = (client(), client());
            // Every other fd.
            let mut filler: Vec<OwnedFd> = Vec::new();
            while let Ok(fd) = rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) {
                filler.push(fd);
            }
            assert!(filler.len() > 100, "{} fds filled", filler.len());
            let address = SocketAddrUnix::new(&path).unwrap();
            connect(&first, &address).unwrap();
            let mut warned = None;
            let accepted = tokio::time::timeout(
                Duration::from_secs(5),
                accept_control(&listener, &reserve, &mut warned),
            )
            .await
            .expect("no accept within 5 s with every fd in use");
            assert!(lock(&reserve).fds.is_empty(), "the reserve was spent");
            assert!(warned.is_none(), "no warning when the reserve made room");
            // Filled again by what the reserve left, a second client finds
            // no reserve: backed off, warned once, no spinning.
            while let Ok(fd) = rustix::fs::open(
                "/dev/null",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) {
                filler.push(fd);
            }
            connect(&second, &address).unwrap();
            let waited = tokio::time::timeout(
                Duration::from_millis(550),
                accept_control(&listener, &reserve, &mut warned),
            )
            .await;
            assert!(waited.is_err(), "accepted without an fd");
            assert!(warned.is_some(), "warned once");
            // Fds again: the waiting client is accepted.
            drop(filler);
            drop(accepted);
            tokio::time::timeout(
                Duration::from_secs(5),
                accept_control(&listener, &reserve, &mut warned),
            )
            .await
            .expect("no accept once fds were free");
            let _ = std::fs::remove_dir_all(&dir);
        });
    }
}
