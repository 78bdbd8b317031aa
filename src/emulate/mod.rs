//! `fdbox emulate`: run an unmodified program as if the kernel had the FDBox
//! RFC's `/dev/fdbox` device.
//!
//! The program runs under a seccomp filter ([`filter`]) that traps its opens
//! and its FDBox ioctls; this process, the supervisor ([`supervisor`]),
//! answers them with the driver's behaviour ([`driver`]) on a
//! [`fdbox_host::MemoryDevice`], standing in memfds for the device nodes
//! ([`nodes`]), and reaches into the program through /proc and pidfds
//! ([`target`]). `--state-dir` simulates a kexec ([`state`]).

mod driver;
mod filter;
mod listener;
mod nodes;
mod state;
mod supervisor;
mod target;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The kernel device to emulate.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum EmulatedDevice {
    /// The FDBox RFC's /dev/fdbox/fdbox and /dev/fdbox/<box>.
    #[default]
    Fdbox,
}

/// Arguments of `fdbox emulate`.
#[derive(Args)]
#[command(after_long_help = LIMITS)]
pub struct EmulateArgs {
    /// The device to emulate.
    #[arg(long, value_enum, default_value_t)]
    device: EmulatedDevice,

    /// Simulate a kexec: restore the sealed boxes saved here at start,
    /// already sealed, and save the sealed boxes' memfds here at exit
    /// (unsealed boxes, and anything but memfds, are dropped, as KHO would).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Where the emulation is not the kernel driver, for `--help`.
const LIMITS: &str = "\
Where the emulation differs from the RFC driver:
  - The device nodes exist only for open()/openat()/openat2() of the
    absolute paths /dev/fdbox/fdbox and /dev/fdbox/<box> ('//' and '.'
    allowed); stat(), access(), readdir, relative paths and '..' see no
    /dev/fdbox.
    The fd an open returns is a sealed empty memfd, not a character device.
  - PUT_FD does not close the caller's fd (a supervisor cannot close an fd in
    another process): the box holds the same open file, and the caller's fd
    stays valid until the program closes it.
  - PUT_FD accepts memfds (shmem files) only, as the RFC: anything else is
    EOPNOTSUPP. Box and entry names must be UTF-8 (else EINVAL); empty names
    and names with '/' are EINVAL, as the RFC should have done.
  - CAP_SYS_ADMIN is checked in the calling thread's effective set
    (/proc/PID/status); the nodes act as root-owned, mode 0600.
  - An ioctl on the fd of a deleted box reaches the kernel (ENOTTY).
  - The program runs with no_new_privs (setuid bits do not apply) and must be
    x86_64 (other ABIs are killed).
  - The emulator exits when the program and every process it left behind have
    exited, with the program's exit code (128+N for signal N). SIGTERM is
    passed to the program, and the emulator then exits when the program has,
    leaving processes it started without a device (their opens and FDBox
    ioctls fail with ENOSYS).
  - --state-dir keeps memfd contents, not file offsets or memfd seals; if the
    emulator itself dies, the directory keeps the state of the last exit.";

/// Run the program under the emulated device.
pub fn run(args: EmulateArgs) -> Result<ExitCode> {
    let EmulatedDevice::Fdbox = args.device;
    let driver = driver::Driver::default();
    if let Some(dir) = &args.state_dir {
        let restored = state::restore(dir, &driver.device)
            .with_context(|| format!("cannot restore the state in {}", dir.display()))?;
        tracing::debug!("restored {restored} sealed boxes from {}", dir.display());
    }

    // SIGINT and SIGQUIT from a terminal reach the whole process group: the
    // program decides, and the emulator serves it until it exits. SIGTERM
    // is passed on to the program. The handlers (flags) are reset by exec
    // in the program.
    let ignored = Arc::new(AtomicBool::new(false));
    let terminate = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT] {
        signal_hook::flag::register(signal, ignored.clone()).context("cannot handle signals")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGTERM, terminate.clone())
        .context("cannot handle SIGTERM")?;

    let (ours, theirs): (OwnedFd, OwnedFd) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .context("cannot create a socketpair")?;
    let channel = theirs.as_raw_fd();
    let mut command = std::process::Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe work is allowed: it makes system calls on
    // stack data and allocates nothing. `channel` stays open in the child
    // until exec (close-on-exec), as `theirs` outlives spawn here.
    unsafe {
        command.pre_exec(move || filter::install_and_send_listener(channel));
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {:?}", args.command[0]))?;
    drop(theirs);
    let listener = match filter::receive_listener(rustix::fd::AsFd::as_fd(&ours)) {
        Ok(fd) => listener::Listener::new(fd),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cannot receive the program's seccomp listener: {e}");
        }
    };
    drop(ours);

    let mut supervisor = supervisor::Supervisor::new(listener, driver);
    let status = supervisor
        .run(&mut child, &terminate)
        .context("the supervisor failed")?;

    if let Some(dir) = &args.state_dir {
        let saved = state::save(dir, &supervisor.driver.device)
            .with_context(|| format!("cannot save the state in {}", dir.display()))?;
        tracing::debug!("saved {saved} sealed boxes to {}", dir.display());
    }
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
}
