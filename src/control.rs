//! The control socket of `fdbox serve`, and the commands that use it
//! (`fdbox upgrade`, `fdbox stop`).
//!
//! A client connects, sends one request line (`upgrade PATH` or `stop`),
//! and reads one reply line: `ok MESSAGE` or `error MESSAGE`.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{BufRead, BufReader, Write};
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

/// A request to a running service.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Upgrade to the component at this (absolute) path.
    Upgrade(PathBuf),
    /// Hand over and exit.
    Stop,
}

impl Request {
    /// The request in a line, or why not.
    pub fn parse(line: &str) -> Result<Self, String> {
        match line.trim_end_matches('\n').split_once(' ') {
            Some(("upgrade", path)) if !path.is_empty() => Ok(Request::Upgrade(path.into())),
            None if line.trim_end() == "stop" => Ok(Request::Stop),
            _ => Err(format!("unknown request {:?}", line.trim_end())),
        }
    }

    fn line(&self) -> String {
        match self {
            Request::Upgrade(path) => format!("upgrade {}\n", path.display()),
            Request::Stop => "stop\n".to_owned(),
        }
    }
}

/// The reply line to a request.
pub fn reply(result: &Result<String>) -> String {
    match result {
        Ok(message) => format!("ok {message}\n"),
        // The whole chain on one line: what failed and why.
        Err(e) => format!("error {}\n", format!("{e:#}").replace('\n', " ")),
    }
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
    stream
        .write_all(request.line().as_bytes())
        .context("cannot send the request")?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .context("cannot read the service's reply")?;
    match line.trim_end().split_once(' ') {
        Some(("ok", message)) => {
            println!("{message}");
            Ok(ExitCode::SUCCESS)
        }
        // Refused by the service: the same exit code as a refusal here
        // (`crate::refused`), and the same one-line form.
        Some(("error", message)) => {
            eprintln!("fdbox: error: {message}");
            Ok(crate::refused())
        }
        _ if line.is_empty() => bail!("the service closed the control connection without a reply"),
        _ => bail!("unexpected reply from the service: {:?}", line.trim_end()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_are_named() {
        for request in [Request::Upgrade("/a b/c.wasm".into()), Request::Stop] {
            assert_eq!(Request::parse(&request.line()).unwrap(), request);
        }
        assert!(Request::parse("reboot\n").unwrap_err().contains("reboot"));
        assert!(Request::parse("upgrade \n").is_err());
    }
}
