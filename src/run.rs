//! `fdbox run`: run a command component, restarting it on failure if asked,
//! with every instance sharing one fdbox device.

use crate::component;
use crate::grant_args;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use fdbox_host::{FdboxCtx, Grant, Quotas, WasiFdbox};
use std::path::PathBuf;
use std::process::ExitCode;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx};

/// Arguments of `fdbox run`.
#[derive(Args)]
pub struct RunArgs {
    /// Grant the guest one box: `NAME` or `NAME:PERMS`, PERMS a comma list
    /// of create, delete, put, get, seal, unseal (or all, none); default all.
    #[arg(long = "box", value_name = "NAME[:PERMS]", value_parser = grant_args::parse_box)]
    boxes: Vec<Grant>,

    /// Grant the guest every box whose name starts with PREFIX (it may create
    /// boxes there), with PERMS as for --box.
    #[arg(long = "box-prefix", value_name = "PREFIX[:PERMS]", value_parser = grant_args::parse_prefix)]
    prefixes: Vec<Grant>,

    /// Most boxes the guest may have at once.
    #[arg(long, default_value_t = Quotas::DEFAULT_MAX_BOXES)]
    max_boxes: usize,

    /// Most entries one box of the guest may hold.
    #[arg(long = "max-entries", default_value_t = Quotas::DEFAULT_MAX_ENTRIES_PER_BOX)]
    max_entries_per_box: usize,

    /// Give the guest a host directory: `HOST::GUEST`, or `HOST` at the same
    /// path.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dirs: Vec<(PathBuf, String)>,

    /// Set an environment variable for the guest: `NAME=VALUE`, or `NAME` to
    /// pass on the host's value.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    envs: Vec<(String, String)>,

    /// Run the guest again in the same host process after it exits: on a trap
    /// or non-zero exit, or always. The boxes stay, so it can recover.
    #[arg(long, value_enum, default_value_t = Restart::Never)]
    restart: Restart,

    /// How many times --restart may run the guest again.
    #[arg(long, default_value_t = 3)]
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

fn parse_dir(value: &str) -> Result<(PathBuf, String), String> {
    let (host, guest) = value.split_once("::").unwrap_or((value, value));
    if host.is_empty() || guest.is_empty() {
        return Err(format!("--dir {value:?}: expected HOST::GUEST or HOST"));
    }
    Ok((PathBuf::from(host), guest.to_string()))
}

fn parse_env(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, v)) if !name.is_empty() => Ok((name.to_string(), v.to_string())),
        Some(_) => Err(format!("--env {value:?}: the variable name is empty")),
        None => std::env::var(value)
            .map(|v| (value.to_string(), v))
            .map_err(|_| {
                format!("--env {value:?}: not set in the host's environment; use NAME=VALUE")
            }),
    }
}

/// How one instance ended.
enum Outcome {
    Exited(u8),
    Trapped(wasmtime::Error),
}

impl Outcome {
    fn failed(&self) -> bool {
        !matches!(self, Outcome::Exited(0))
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Outcome::Exited(code) => ExitCode::from(*code),
            // What a shell reports for a process killed by SIGABRT, as
            // `wasmtime run` does for a trap.
            Outcome::Trapped(_) => ExitCode::from(134),
        }
    }
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
    for (host, _) in &args.dirs {
        // Fail early and clearly; wasmtime-wasi opens it again per instance.
        cap_std::fs::Dir::open_ambient_dir(host, cap_std::ambient_authority())
            .with_context(|| format!("--dir {}: cannot open that directory", host.display()))?;
    }
    let engine = Engine::default();
    let component = component::load(&engine, &args.component)?;
    let mut linker = Linker::<WasiFdbox>::new(&engine);
    WasiFdbox::add_to_linker_async(&mut linker)?;
    let name = args.component.display().to_string();
    let pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{name} needs an import fdbox cannot provide"))?;
    let pre = CommandPre::new(pre)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!("{name} is not a wasi:cli command (it must export wasi:cli/run)")
        })?;

    let device = args.device.open()?;
    let fdbox = args
        .boxes
        .iter()
        .chain(&args.prefixes)
        .fold(FdboxCtx::builder(device), |b, g| b.grant(g.clone()))
        .quotas(Quotas {
            max_boxes: args.max_boxes,
            max_entries_per_box: args.max_entries_per_box,
        })
        .build();

    let mut restarts = 0;
    loop {
        let outcome = run_once(&pre, &engine, &args, fdbox.clone()).await?;
        let again = match args.restart {
            Restart::Never => false,
            Restart::OnFailure => outcome.failed(),
            Restart::Always => true,
        };
        match &outcome {
            Outcome::Trapped(trap) => {
                // The cause on one line; the wasm backtrace for those who ask.
                tracing::warn!("guest trapped: {}", trap.root_cause());
                tracing::debug!("{trap:?}");
            }
            Outcome::Exited(code) if *code != 0 => tracing::warn!("guest exited with code {code}"),
            Outcome::Exited(_) => {}
        }
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

async fn run_once(
    pre: &CommandPre<WasiFdbox>,
    engine: &Engine,
    args: &RunArgs,
    fdbox: FdboxCtx,
) -> Result<Outcome> {
    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio()
        .arg(args.component.display().to_string())
        .args(&args.args)
        .envs(&args.envs);
    for (host, guest) in &args.dirs {
        wasi.preopened_dir(host, guest, FsPerms::ReadWrite)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("--dir {}: cannot open that directory", host.display()))?;
    }
    let mut store = Store::new(engine, WasiFdbox::new(wasi.build(), fdbox));
    let result = async {
        let command = pre.instantiate_async(&mut store).await?;
        command.wasi_cli_run().call_run(&mut store).await
    }
    .await;
    Ok(match result {
        Ok(Ok(())) => Outcome::Exited(0),
        Ok(Err(())) => Outcome::Exited(1),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Outcome::Exited(exit.0 as u8),
            None => Outcome::Trapped(e),
        },
    })
}
