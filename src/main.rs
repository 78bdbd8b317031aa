//! `fdbox`: run WebAssembly components whose live handles survive crashes,
//! upgrades and restarts.

mod component;
mod grant_args;
mod run;

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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
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
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("fdbox: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
