//! `fdbox`: run WebAssembly components whose live handles survive crashes,
//! upgrades and restarts.

#![deny(clippy::undocumented_unsafe_blocks)]

mod checkpoint;
mod component;
mod control;
mod daemon;
mod device;
mod emulate;
mod grant_args;
mod guest;
mod ls;
mod numbers;
mod run;
mod serve;
mod systemd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Run WebAssembly components that keep their live file handles in named,
/// sealable boxes across crashes, upgrades and restarts.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a `wasi:cli` command component with WASI and fdbox.
    Run(run::RunArgs),
    /// Run a service component that can be upgraded in place (`fdbox
    /// upgrade`) and handed to a new host process (`fdbox stop`).
    Serve(serve::ServeArgs),
    /// Upgrade the running service (`fdbox serve`) to a new component:
    /// its listener, connections and state move over; a version that fails
    /// before it serves is rolled back.
    Upgrade(control::UpgradeArgs),
    /// Ask the running service to hand over its boxes and exit.
    Stop(control::StopArgs),
    /// Hold boxes for hosts of this user, across their restarts.
    Daemon(daemon::DaemonArgs),
    /// Show the boxes the holder daemon holds.
    Ls(ls::LsArgs),
    /// Run a program as if the kernel had the FDBox device /dev/fdbox or
    /// Live Update's /dev/liveupdate.
    Emulate(emulate::EmulateArgs),
}

fn main() -> ExitCode {
    // Colour only on a terminal (not in a log file: the daemon's log, a
    // journal), and never with NO_COLOR set (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FDBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("fdbox=info,warn")),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::serve(args),
        Command::Upgrade(args) => control::upgrade(args),
        Command::Stop(args) => control::stop(args),
        Command::Daemon(args) => daemon::run(args).map(|()| ExitCode::SUCCESS),
        Command::Ls(args) => ls::run(args).map(|()| ExitCode::SUCCESS),
        Command::Emulate(args) => emulate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("fdbox: error: {error:#}");
            refused()
        }
    }
}

/// The exit code of every `fdbox` command that refused or failed what it was
/// asked (a bad command line, a missing file, a request the service or the
/// daemon refused), with one `fdbox: error: ...` line on stderr. The same as
/// clap's for a bad command line. `fdbox run` and `serve` otherwise exit
/// with the guest's code (134 for a trap), `emulate` with the program's.
pub fn refused() -> ExitCode {
    ExitCode::from(2)
}

/// Let quotas, not the kernel's soft fd limit, decide how many fds boxes may
/// hold: a receive past RLIMIT_NOFILE silently drops fds.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("cannot raise RLIMIT_NOFILE: {e}");
        }
    }
}
