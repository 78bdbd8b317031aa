//! Which device a host command uses, and reaching (or starting) the holder
//! daemon.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use fdbox_host::device::daemon::{DaemonDevice, default_socket_path};
use fdbox_host::device::kernel::{FdboxDevice, LiveUpdateDevice};
use fdbox_host::{Device, MemoryDevice};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The device flags shared by the host commands.
#[derive(Args, Clone)]
pub struct DeviceArgs {
    /// Where boxes live: `kernel` (the FDBox kernel's /dev/fdbox: survives
    /// this process and, sealed, a kexec; memory files only), `liveupdate`
    /// (Linux 6.19+'s /dev/liveupdate: sealed boxes survive a kexec, not
    /// this process's exit; memory files only; one process at a time),
    /// `daemon` (the holder daemon: survives this process; started if none
    /// runs) or `memory` (this process only: survives guest crashes and
    /// restarts, not the host) [default: kernel if /dev/fdbox/fdbox opens,
    /// else daemon if one runs (on any device), else liveupdate if
    /// /dev/liveupdate opens, else daemon]
    #[arg(long, value_enum, env = "FDBOX_DEVICE")]
    pub device: Option<DeviceKind>,

    /// The holder daemon's socket [default: /run/fdbox/fdbox.sock for root,
    /// else $XDG_RUNTIME_DIR/fdbox/fdbox.sock]
    #[arg(long, env = "FDBOX_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// How long a request to the holder daemon may wait for it before it
    /// fails with device-unavailable (a stalled daemon)
    #[arg(long, env = "FDBOX_DAEMON_TIMEOUT", value_name = "SECONDS", default_value_t = 30.0, allow_negative_numbers = true, value_parser = crate::numbers::seconds)]
    pub daemon_timeout: f64,
}

/// A kind of device.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// The holder daemon.
    Daemon,
    /// In this process.
    Memory,
    /// The kernel's FDBox device, /dev/fdbox.
    Kernel,
    /// The kernel's Live Update Orchestrator, /dev/liveupdate.
    Liveupdate,
}

impl DeviceArgs {
    /// The daemon's socket path.
    pub fn socket_path(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(default_socket_path)
    }

    /// The chosen device: `--device`, else the kernel's FDBox if
    /// /dev/fdbox/fdbox opens, else the holder daemon if one answers at the
    /// socket (over memory or over Live Update), else Live Update if
    /// /dev/liveupdate opens (not while another process, systemd say, holds
    /// it), else the daemon (started if none runs).
    pub fn kind(&self) -> DeviceKind {
        self.device.unwrap_or_else(|| {
            if FdboxDevice::available() {
                DeviceKind::Kernel
            } else if self.daemon_answers() {
                // A daemon runs (perhaps on /dev/liveupdate, which it then
                // holds): every host shares it.
                DeviceKind::Daemon
            } else if LiveUpdateDevice::available() {
                DeviceKind::Liveupdate
            } else {
                DeviceKind::Daemon
            }
        })
    }

    /// Whether a holder daemon answers at the socket.
    fn daemon_answers(&self) -> bool {
        let socket = self.socket_path();
        socket.exists()
            && DaemonDevice::connect_with_timeout(&socket, Duration::from_secs(2)).is_ok()
    }

    /// Open the chosen device, starting the daemon if it is chosen and none
    /// runs.
    pub fn open(&self) -> Result<Arc<dyn Device>> {
        Ok(match self.kind() {
            DeviceKind::Memory => Arc::new(MemoryDevice::new()),
            DeviceKind::Kernel => Arc::new(FdboxDevice::open().context(
                "--device kernel: run under `fdbox emulate` to emulate it, or use --device daemon",
            )?),
            DeviceKind::Liveupdate => Arc::new(LiveUpdateDevice::open().context(
                "--device liveupdate: run under `fdbox emulate --device liveupdate` to emulate it, or use --device daemon",
            )?),
            DeviceKind::Daemon => Arc::new(connect_or_start(
                &self.socket_path(),
                Duration::from_secs_f64(self.daemon_timeout),
            )?),
        })
    }
}

/// Connect to the daemon at `socket`, starting one in the background (as
/// ssh-agent-style tools do) if nothing listens there.
fn connect_or_start(socket: &Path, timeout: Duration) -> Result<DaemonDevice> {
    match DaemonDevice::connect_with_timeout(socket, timeout) {
        Ok(device) => return Ok(device),
        // A place or a listener that is not this user's: refused, never
        // replaced by a daemon of our own; nor is one that is there but
        // stalled.
        Err(e)
            if fdbox_host::device::daemon::private::is_refusal(&e)
                || fdbox_host::device::daemon::is_stalled(&e) =>
        {
            return Err(e.into());
        }
        Err(_) => {}
    }
    let log = socket.with_file_name("daemon.log");
    if let Some(dir) = socket.parent() {
        crate::daemon::private_dir(dir)?;
    }
    use std::os::unix::fs::OpenOptionsExt as _;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&log)
        .with_context(|| format!("cannot open the daemon's log {}", log.display()))?;
    let exe =
        std::env::current_exe().context("cannot find the fdbox executable to start the daemon")?;
    let mut child = Command::new(exe)
        .arg("daemon")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        // The host's own socket activation and service manager are not the
        // daemon's: it would take their fds, or fill their fd store.
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("NOTIFY_SOCKET")
        // Its own process group: a Ctrl-C meant for this host must not
        // take down the holder of everyone's boxes.
        .process_group(0)
        .spawn()
        .context("cannot start the fdbox daemon")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match DaemonDevice::connect_with_timeout(socket, timeout) {
            Ok(device) => {
                eprintln!(
                    "fdbox: started the holder daemon (pid {}) at {}; its log is {}",
                    child.id(),
                    socket.display(),
                    log.display()
                );
                return Ok(device);
            }
            Err(e) => {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the fdbox daemon exited at start ({status}); see {}",
                        log.display()
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "the fdbox daemon did not answer at {} in 10 s: {e}",
                        socket.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
