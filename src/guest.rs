//! What `fdbox run` and `fdbox serve` share: the flags that shape a guest
//! (grants, quotas, directories, environment), loading a command component,
//! and running one instance of it.

use crate::{component, grant_args};
use anyhow::{Context, Result};
use clap::Args;
use fdbox_host::{Device, FdboxCtxBuilder, Grant, Quotas, WasiFdbox};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx};

/// The flags that shape a guest.
#[derive(Args)]
pub struct GuestArgs {
    /// Grant the guest one box: `NAME` or `NAME:PERMS`, PERMS a comma list
    /// of create, delete, put, get, seal, unseal (or all, none); default all.
    #[arg(long = "box", value_name = "NAME[:PERMS]", value_parser = grant_args::parse_box)]
    boxes: Vec<Grant>,

    /// Grant the guest every box whose name starts with PREFIX (it may create
    /// boxes there), with PERMS as for --box.
    #[arg(long = "box-prefix", value_name = "PREFIX[:PERMS]", value_parser = grant_args::parse_prefix)]
    prefixes: Vec<Grant>,

    /// Most boxes the guest may have at once.
    #[arg(long, default_value_t = Quotas::DEFAULT_MAX_BOXES, allow_negative_numbers = true, value_parser = crate::numbers::count::<usize>)]
    max_boxes: usize,

    /// Most entries one box of the guest may hold.
    #[arg(long = "max-entries", default_value_t = Quotas::DEFAULT_MAX_ENTRIES_PER_BOX, allow_negative_numbers = true, value_parser = crate::numbers::count::<usize>)]
    max_entries_per_box: usize,

    /// Most bytes the guest's memory files may hold together: checked when
    /// it puts one (the bytes in its boxes) and when it creates one (the
    /// bytes in its boxes and in the memory files it holds must leave room).
    #[arg(long, value_name = "BYTES", default_value_t = Quotas::DEFAULT_MAX_MEMORY_FILE_BYTES, allow_negative_numbers = true, value_parser = crate::numbers::count::<u64>)]
    max_memory_file_bytes: u64,

    /// Most descriptors and sockets fdbox gave the guest (memory files,
    /// gets from boxes, accepted connections) it may hold at once.
    #[arg(long, value_name = "COUNT", default_value_t = Quotas::DEFAULT_MAX_DESCRIPTORS, allow_negative_numbers = true, value_parser = crate::numbers::count::<usize>)]
    max_descriptors: usize,

    /// Give the guest a host directory: `HOST::GUEST`, or `HOST` at the same
    /// path.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dirs: Vec<(PathBuf, String)>,

    /// Set an environment variable for the guest: `NAME=VALUE`, or `NAME` to
    /// pass on the host's value.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    envs: Vec<(String, String)>,

    /// Compile without Wasmtime's compilation cache, which is on by default
    /// as for `wasmtime run` (a component compiled once loads from the cache
    /// directory, $HOME/.cache/wasmtime, afterwards; configured by
    /// $HOME/.config/wasmtime/config.toml).
    #[arg(long)]
    no_cache: bool,
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

impl GuestArgs {
    /// The engine's configuration: the compilation cache unless
    /// `--no-cache`. A cache that cannot be set up is logged and skipped:
    /// it only saves time.
    pub fn engine_config(&self) -> Config {
        let mut config = Config::new();
        if !self.no_cache {
            match wasmtime::Cache::from_file(None) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                Err(e) => tracing::warn!("no compilation cache: {e:#}"),
            }
        }
        config
    }

    /// Fail early and clearly on a `--dir` that does not open; wasmtime-wasi
    /// opens it again per instance.
    pub fn check_dirs(&self) -> Result<()> {
        for (host, _) in &self.dirs {
            cap_std::fs::Dir::open_ambient_dir(host, cap_std::ambient_authority())
                .with_context(|| format!("--dir {}: cannot open that directory", host.display()))?;
        }
        Ok(())
    }

    /// The fdbox context of every instance: the grants and quotas.
    pub fn fdbox(&self, device: Arc<dyn Device>) -> FdboxCtxBuilder {
        self.boxes
            .iter()
            .chain(&self.prefixes)
            .fold(fdbox_host::FdboxCtx::builder(device), |b, g| {
                b.grant(g.clone())
            })
            .quotas(Quotas {
                max_boxes: self.max_boxes,
                max_entries_per_box: self.max_entries_per_box,
                max_memory_file_bytes: self.max_memory_file_bytes,
                max_descriptors: self.max_descriptors,
            })
    }

    /// The WASI context of one instance: stdio inherited, `argv0` and
    /// `args`, the environment and the directories.
    pub fn wasi(&self, argv0: &Path, args: &[String]) -> Result<WasiCtx> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdio()
            .arg(argv0.display().to_string())
            .args(args)
            .envs(&self.envs);
        for (host, guest) in &self.dirs {
            wasi.preopened_dir(host, guest, FsPerms::ReadWrite)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("--dir {}: cannot open that directory", host.display()))?;
        }
        Ok(wasi.build())
    }
}

/// Load the command component at `path` and prepare its instances, with
/// errors that say what is wrong with it.
pub fn command_pre(
    engine: &Engine,
    linker: &Linker<WasiFdbox>,
    path: &Path,
) -> Result<(Component, CommandPre<WasiFdbox>)> {
    let component = component::load(engine, path)?;
    let name = path.display();
    let pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{name} needs an import fdbox cannot provide"))?;
    let pre = CommandPre::new(pre)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!("{name} is not a wasi:cli command (it must export wasi:cli/run)")
        })?;
    Ok((component, pre))
}

/// How one instance ended.
pub enum Outcome {
    /// It returned from `run`, or exited, with this code.
    Exited(u8),
    /// It trapped.
    Trapped(wasmtime::Error),
}

impl Outcome {
    /// Whether it failed (a trap, or a non-zero exit).
    pub fn failed(&self) -> bool {
        !matches!(self, Outcome::Exited(0))
    }

    /// The host's exit code for it.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Outcome::Exited(code) => ExitCode::from(*code),
            // What a shell reports for a process killed by SIGABRT, as
            // `wasmtime run` does for a trap.
            Outcome::Trapped(_) => ExitCode::from(134),
        }
    }

    /// Log how the instance ended, if not well.
    pub fn log(&self) {
        match self {
            Outcome::Trapped(trap) => {
                // The cause on one line; the wasm backtrace for those who ask.
                tracing::warn!("guest trapped: {}", trap.root_cause());
                tracing::debug!("{trap:?}");
            }
            Outcome::Exited(code) if *code != 0 => tracing::warn!("guest exited with code {code}"),
            Outcome::Exited(_) => {}
        }
    }
}

/// Instantiate `pre` in `store` and run it to its end.
pub async fn run_instance(pre: &CommandPre<WasiFdbox>, mut store: Store<WasiFdbox>) -> Outcome {
    let result = async {
        let command = pre.instantiate_async(&mut store).await?;
        command.wasi_cli_run().call_run(&mut store).await
    }
    .await;
    match result {
        Ok(Ok(())) => Outcome::Exited(0),
        Ok(Err(())) => Outcome::Exited(1),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Outcome::Exited(exit.0 as u8),
            None => Outcome::Trapped(e),
        },
    }
}
