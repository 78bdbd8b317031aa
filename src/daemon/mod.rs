//! `fdbox daemon`: the holder daemon.
//!
//! It loses nothing when it restarts. Under systemd (`contrib/systemd/`) it
//! takes its listening socket from socket activation and keeps a copy of
//! every fd it holds, with a manifest, in the service's fd store, so a new
//! daemon (after a crash, `systemctl restart`, a reboot of the daemon alone)
//! rebuilds every box. On SIGHUP it upgrades in place: it re-executes its
//! executable, same pid, handing everything over the same way.

use crate::systemd::{self, Notifier, SystemdFdStore};
mod reexec;

use anyhow::{Context, Result, bail};
use clap::Args;
use fdbox_host::daemon::LISTENER_FD_NAME;
use fdbox_host::daemon::{Holder, Limits};
use fdbox_host::device::daemon::{DaemonDevice, default_socket_path, transport};
use reexec::Upgrade;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Arguments of `fdbox daemon`.
///
/// Socket activation: a listening seqpacket socket passed in `LISTEN_FDS`
/// (named `fdbox.sock`, or the first one) is used instead of `--socket`, and
/// the other fds passed are boxes handed over by systemd's fd store or by
/// the daemon's previous image. With `NOTIFY_SOCKET` set, the daemon reports
/// readiness and keeps the fd store in line with its boxes. SIGHUP upgrades
/// the daemon in place (re-executes its executable, same pid), losing
/// nothing.
#[derive(Args)]
pub struct DaemonArgs {
    /// Where to listen, unless a socket is passed [default:
    /// /run/fdbox/fdbox.sock for root, else $XDG_RUNTIME_DIR/fdbox/fdbox.sock]
    #[arg(long, env = "FDBOX_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Most boxes the daemon holds.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_BOXES, allow_negative_numbers = true, value_parser = crate::numbers::count::<usize>)]
    max_boxes: usize,

    /// Most entries in one box.
    #[arg(long = "max-entries", default_value_t = Limits::DEFAULT_MAX_ENTRIES_PER_BOX, allow_negative_numbers = true, value_parser = crate::numbers::count::<usize>)]
    max_entries_per_box: usize,

    /// Most connections served at once, all peers together (more are
    /// refused, logged once per 10 s); each takes one of the daemon's fds
    /// [default: three quarters of RLIMIT_NOFILE less 570, at most 16384]
    #[arg(long, allow_negative_numbers = true, value_parser = crate::numbers::count::<usize>)]
    max_connections: Option<usize>,

    /// Most connections served at once for one uid [default: 75% of
    /// --max-connections]
    #[arg(long, allow_negative_numbers = true, value_parser = crate::numbers::count::<usize>)]
    max_connections_per_uid: Option<usize>,

    /// Percent of the daemon's fd budget the peers of one uid may fill
    /// together [default: 75, or 100 for a daemon running as root, whose
    /// only peers are root's]
    #[arg(long, value_name = "PERCENT", allow_negative_numbers = true, value_parser = crate::numbers::percent)]
    uid_share: Option<usize>,

    /// Percent of the daemon's fd budget one peer process (an `fdbox run`
    /// or `fdbox serve`) may fill.
    #[arg(long, value_name = "PERCENT", default_value_t = Limits::DEFAULT_PROCESS_SHARE_PERCENT, allow_negative_numbers = true, value_parser = crate::numbers::percent)]
    process_share: usize,

    /// How long a new connection may take to say HELLO before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::DEFAULT_HELLO_TIMEOUT.as_secs_f64(), allow_negative_numbers = true, value_parser = crate::numbers::seconds)]
    hello_timeout: f64,

    /// Where the daemon keeps the boxes: `memory` (in the daemon: they
    /// survive hosts, and the daemon's own restarts through systemd's fd
    /// store and SIGHUP upgrades) or `liveupdate` (Linux's /dev/liveupdate,
    /// which the daemon then holds: sealed boxes also survive a kexec, and
    /// the daemon adopts them in the next kernel; memory files only; no fd
    /// store or in-place upgrade, as the kernel holds the fds)
    #[arg(long, value_enum, default_value = "memory")]
    device: HolderDevice,
}

/// The devices the daemon can hold boxes on.
#[derive(Copy, Clone, PartialEq, Eq, clap::ValueEnum)]
pub enum HolderDevice {
    /// In the daemon's process.
    Memory,
    /// Linux's Live Update Orchestrator, /dev/liveupdate.
    Liveupdate,
}

/// Make `dir` exist as a private directory (0700) of this user's, or refuse
/// it: one that is someone else's, a symlink, or open to other users
/// (`--socket /tmp/x.sock`) is never used for a socket.
///
/// Only the last component is created: a mistyped path
/// (`--socket /nonexistent/dir/x.sock`) is refused, naming the missing
/// parent, instead of silently creating a tree of directories.
pub fn private_dir(dir: &Path) -> Result<()> {
    Ok(fdbox_host::device::daemon::private::create_private_dir(
        dir,
    )?)
}

/// Run the daemon until killed.
pub fn run(args: DaemonArgs) -> Result<()> {
    // What the environment hands over is taken first, while this is the only
    // thread and before anything opens an fd that could take their numbers.
    let passed = systemd::take_listen_fds()?;
    let notify = Notifier::take_from_env()?;
    let hangup = reexec::hangup_flag()?;
    let upgrade = Upgrade::capture()?;
    crate::raise_fd_limit();

    let (listener, handed) = pick_listener(passed)?;
    let socket = args.socket.unwrap_or_else(default_socket_path);
    let (listener, at) = match listener {
        Some(listener) => (listener, "the socket passed in LISTEN_FDS".to_owned()),
        None => (bind(&socket)?, socket.display().to_string()),
    };
    let defaults = Limits::for_nofile(Limits::nofile(), args.max_connections);
    let mut limits = Limits {
        max_boxes: args.max_boxes,
        max_entries_per_box: args.max_entries_per_box,
        max_connections_per_uid: args
            .max_connections_per_uid
            .unwrap_or(defaults.max_connections_per_uid),
        uid_share_percent: args.uid_share.unwrap_or(defaults.uid_share_percent),
        process_share_percent: args.process_share,
        hello_timeout: std::time::Duration::from_secs_f64(args.hello_timeout),
        ..defaults
    };
    if let (Some(_), Some(store_max)) = (&notify, systemd::fd_store_max()) {
        // Past FileDescriptorStoreMax, systemd drops what it is sent: hold
        // no more than it keeps (less two manifests, old and new).
        limits.max_held_fds = limits.max_held_fds.min(store_max.saturating_sub(2));
    }

    let holder = match args.device {
        HolderDevice::Memory => Holder::new(limits),
        HolderDevice::Liveupdate => {
            // Opening it adopts what the kernel carried across a kexec:
            // every sealed box, retrieved, finished and preserved again.
            let started = std::time::Instant::now();
            let device = fdbox_host::device::kernel::LiveUpdateDevice::open().context(
                "--device liveupdate: the daemon needs /dev/liveupdate to itself (Linux 6.19+ with CONFIG_LIVEUPDATE; or run it under `fdbox emulate --device liveupdate`)",
            )?;
            let took = started.elapsed();
            let holder = Holder::with_device(limits, "liveupdate", Box::new(device));
            let boxes = holder.boxes().boxes().unwrap_or_default();
            let entries: usize = boxes.iter().map(|b| b.entries).sum();
            tracing::info!(
                "on /dev/liveupdate: {} sealed boxes adopted ({entries} entries) in {:.1} ms",
                boxes.len(),
                took.as_secs_f64() * 1e3
            );
            holder
        }
    };
    let inherited: Vec<String> = handed.iter().map(|(name, _)| name.clone()).collect();
    if !handed.is_empty() {
        let recovery = holder.recover(handed).context(
            "cannot recover the boxes handed over; refusing to start rather than lose them (systemd's fd store still holds them)",
        )?;
        tracing::info!(
            "recovered {} boxes and {} entries (manifest generation {}){}",
            recovery.boxes,
            recovery.entries,
            recovery.generation.map_or("none".into(), |g| g.to_string()),
            if recovery.missing.is_empty() {
                String::new()
            } else {
                format!("; {} entries lost", recovery.missing.len())
            }
        );
    }
    if let Some(notify) = &notify {
        if let Err(e) = holder.attach_store(Box::new(SystemdFdStore(notify.clone())), inherited) {
            tracing::warn!("systemd's fd store is not used: {e}");
        }
        let boxes = holder.boxes().boxes().map(|b| b.len()).unwrap_or(0);
        notify
            .send(&format!("READY=1\nSTATUS=holding {boxes} boxes"), &[])
            .context("cannot notify the service manager")?;
    }
    tracing::info!(
        "holding boxes at {at} (pid {}; up to {} fds, {}% per uid, {}% per process; up to {} connections, {} per uid)",
        std::process::id(),
        limits.max_held_fds,
        limits.uid_share_percent,
        limits.process_share_percent,
        limits.max_connections,
        limits.max_connections_per_uid
    );
    loop {
        fdbox_host::daemon::serve_until(&holder, listener.as_fd(), &hangup)
            .context("the daemon's listening socket failed")?;
        hangup.store(false, Ordering::SeqCst);
        let error = upgrade.exec(&holder, &listener, notify.as_ref());
        tracing::error!("the in-place upgrade failed, serving on: {error:#}");
    }
}

/// The listening socket among the fds passed: the one named `fdbox.sock`,
/// else (systemd names sockets after their unit when the unit does not say)
/// the first listening seqpacket Unix socket; none if no socket was passed.
/// The other fds are boxes handed over.
#[allow(clippy::type_complexity)]
fn pick_listener(
    mut passed: Vec<(String, OwnedFd)>,
) -> Result<(Option<OwnedFd>, Vec<(String, OwnedFd)>)> {
    let at = passed
        .iter()
        .position(|(name, _)| name == LISTENER_FD_NAME)
        .or_else(|| {
            passed
                .iter()
                .position(|(_, fd)| systemd::is_seqpacket_listener(fd.as_fd()))
        });
    let Some(at) = at else {
        return Ok((None, passed));
    };
    let (name, listener) = passed.remove(at);
    if !systemd::is_seqpacket_listener(listener.as_fd()) {
        bail!("the fd passed as {name:?} is not a listening SOCK_SEQPACKET Unix socket");
    }
    Ok((Some(listener), passed))
}

/// Listen at `socket`: a private directory, a 0600 socket, and no second
/// daemon on the same path.
fn bind(socket: &Path) -> Result<std::os::fd::OwnedFd> {
    let dir = socket
        .parent()
        .context("the socket path has no directory")?;
    private_dir(dir)?;
    if socket.exists() {
        if DaemonDevice::connect(socket).is_ok() {
            bail!("a daemon already listens at {}", socket.display());
        }
        // Left by a daemon that died: nothing listens there.
        std::fs::remove_file(socket)
            .with_context(|| format!("cannot remove the stale socket {}", socket.display()))?;
    }
    let listener = transport::listen(socket)
        .with_context(|| format!("cannot listen at {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private (0600)", socket.display()))?;
    Ok(listener)
}
