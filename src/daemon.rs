//! `fdbox daemon`: the holder daemon.

use anyhow::{Context, Result, bail};
use clap::Args;
use fdbox_host::daemon::{DaemonDevice, Holder, Limits, default_socket_path, transport};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Arguments of `fdbox daemon`.
#[derive(Args)]
pub struct DaemonArgs {
    /// Where to listen [default: /run/fdbox/fdbox.sock for root, else
    /// $XDG_RUNTIME_DIR/fdbox/fdbox.sock]
    #[arg(long, env = "FDBOX_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Most boxes the daemon holds.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_BOXES)]
    max_boxes: usize,

    /// Most entries in one box.
    #[arg(long = "max-entries", default_value_t = Limits::DEFAULT_MAX_ENTRIES_PER_BOX)]
    max_entries_per_box: usize,
}

/// Make `dir` exist, owned by us and private (0700).
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private (0700)", dir.display()))
}

/// Run the daemon until killed.
pub fn run(args: DaemonArgs) -> Result<()> {
    crate::raise_fd_limit();
    let socket = args.socket.unwrap_or_else(default_socket_path);
    let listener = bind(&socket)?;
    let limits = Limits {
        max_boxes: args.max_boxes,
        max_entries_per_box: args.max_entries_per_box,
        ..Limits::from_rlimit()
    };
    tracing::info!(
        "holding boxes at {} (pid {}; up to {} fds)",
        socket.display(),
        std::process::id(),
        limits.max_held_fds
    );
    Holder::new(limits)
        .serve(listener)
        .context("the daemon's listening socket failed")
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
