//! `fdbox run`: run a command component, restarting it on failure if asked,
//! with every instance sharing one fdbox device.

use crate::guest::{self, GuestArgs};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use fdbox_host::WasiFdbox;
use std::path::PathBuf;
use std::process::ExitCode;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store};

/// Arguments of `fdbox run`.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    guest: GuestArgs,

    /// Run the guest again in the same host process after it exits: on a trap
    /// or non-zero exit, or always. The boxes stay, so it can recover.
    #[arg(long, value_enum, default_value_t = Restart::Never)]
    restart: Restart,

    /// How many times --restart may run the guest again.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = crate::numbers::count::<u32>)]
    max_restarts: u32,

    /// The component to run (a `wasi:cli` command).
    component: PathBuf,

    #[command(flatten)]
    device: crate::device::DeviceArgs,

    /// Arguments for the guest.
    #[arg(last = true)]
    args: Vec<String>,
}

/// When to run the guest again.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Restart {
    /// Never.
    Never,
    /// After a trap or a non-zero exit code.
    OnFailure,
    /// After every exit.
    Always,
}

/// Run the component as `args` says; the guest's exit code is returned.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    crate::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> Result<ExitCode> {
    args.guest.check_dirs()?;
    let engine = Engine::new(&args.guest.engine_config())?;
    let mut linker = Linker::<WasiFdbox>::new(&engine);
    WasiFdbox::add_to_linker_async(&mut linker)?;
    let (_, pre) = guest::command_pre(&engine, &linker, &args.component)?;
    let fdbox = args.guest.fdbox(args.device.open()?).build();

    let mut restarts = 0;
    loop {
        let wasi = args.guest.wasi(&args.component, &args.args)?;
        let store = Store::new(&engine, WasiFdbox::new(wasi, fdbox.clone()));
        let outcome = guest::run_instance(&pre, store).await;
        let again = match args.restart {
            Restart::Never => false,
            Restart::OnFailure => outcome.failed(),
            Restart::Always => true,
        };
        outcome.log();
        if !again {
            return Ok(outcome.exit_code());
        }
        if restarts == args.max_restarts {
            if args.restart == Restart::OnFailure {
                tracing::warn!("giving up after {restarts} restarts (--max-restarts)");
            }
            return Ok(outcome.exit_code());
        }
        restarts += 1;
        tracing::info!(
            "restarting the guest ({restarts} of {}); its boxes are kept",
            args.max_restarts
        );
    }
}
