//! The control socket of `fdbox serve`, and the commands that use it
//! (`fdbox upgrade`, `fdbox stop`).
//!
//! A client connects, sends one request line (`upgrade PATH` or `stop`),
//! and reads one reply line: `ok MESSAGE` or `error MESSAGE`; the bytes are
//! [`fdbox_host::control`]'s.

use anyhow::{Context, Result, bail};
use clap::Args;
pub use fdbox_host::control::Request;
use fdbox_host::control::{MAX_LINE, Reply};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The control socket flag shared by `serve`, `upgrade` and `stop`.
#[derive(Args, Clone)]
pub struct ControlArgs {
    /// The service's control socket [default: serve.sock next to the
    /// holder daemon's socket: /run/fdbox/serve.sock for root, else
    /// $XDG_RUNTIME_DIR/fdbox/serve.sock]
    #[arg(long = "control", env = "FDBOX_CONTROL", value_name = "PATH")]
    pub path: Option<PathBuf>,
}

impl ControlArgs {
    /// The socket's path.
    pub fn path(&self) -> PathBuf {
        self.path.clone().unwrap_or_else(|| {
            fdbox_host::device::daemon::default_socket_path().with_file_name("serve.sock")
        })
    }
}

/// The reply line to a request.
pub fn reply(result: &Result<String>) -> Vec<u8> {
    match result {
        Ok(message) => Reply::Ok(message.clone()),
        // The whole chain on one line: what failed and why.
        Err(e) => Reply::Error(format!("{e:#}")),
    }
    .encode()
}

/// Send `request` to the service at `socket` and print its reply.
fn send(socket: &Path, request: Request) -> Result<ExitCode> {
    use fdbox_host::device::daemon::private;
    if let Some(dir) = socket.parent() {
        private::check_private_dir(dir)?;
    }
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "no fdbox serve answers at {} (start one with `fdbox serve`, or pass its --control)",
            socket.display()
        )
    })?;
    private::check_peer(&stream, &format!("the service at {}", socket.display()))?;
    let line = request
        .encode()
        .map_err(|e| anyhow::anyhow!("cannot send this request: {e}"))?;
    stream.write_all(&line).context("cannot send the request")?;
    let mut line = Vec::new();
    BufReader::new(stream)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .context("cannot read the service's reply")?;
    if line.is_empty() {
        bail!("the service closed the control connection without a reply");
    }
    match Reply::parse(&line).context("the service's reply")? {
        Reply::Ok(message) => {
            println!("{message}");
            Ok(ExitCode::SUCCESS)
        }
        // Refused by the service: the same exit code as a refusal here
        // (`crate::refused`), and the same one-line form.
        Reply::Error(message) => {
            eprintln!("fdbox: error: {message}");
            Ok(crate::refused())
        }
    }
}

/// Arguments of `fdbox upgrade`.
#[derive(Args)]
pub struct UpgradeArgs {
    /// The new version of the service's component.
    component: PathBuf,

    #[command(flatten)]
    control: ControlArgs,
}

/// `fdbox upgrade`: ask the running service to move to a new component.
pub fn upgrade(args: UpgradeArgs) -> Result<ExitCode> {
    // The service resolves nothing against its own directory.
    let path = std::path::absolute(&args.component)
        .with_context(|| format!("cannot resolve {}", args.component.display()))?;
    if !path.is_file() {
        bail!("{}: no such file", args.component.display());
    }
    send(&args.control.path(), Request::Upgrade(path))
}

/// Arguments of `fdbox stop`.
#[derive(Args)]
pub struct StopArgs {
    #[command(flatten)]
    control: ControlArgs,
}

/// `fdbox stop`: ask the running service to hand over and exit.
pub fn stop(args: StopArgs) -> Result<ExitCode> {
    send(&args.control.path(), Request::Stop)
}
