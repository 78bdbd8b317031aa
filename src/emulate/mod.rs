//! `fdbox emulate`: run an unmodified program as if the kernel had the FDBox
//! RFC's `/dev/fdbox` device, or Linux's Live Update Orchestrator
//! `/dev/liveupdate` (`--device liveupdate`).
//!
//! The program runs under a seccomp filter ([`filter`]) that traps its opens
//! and the device's ioctls; this process, the supervisor ([`supervisor`]),
//! answers them with the driver's behaviour, reading and writing the
//! caller through [`caller::Caller`]: FDBox's ([`driver`]) on a
//! [`fdbox_host::MemoryDevice`], standing in memfds for the device nodes
//! ([`nodes`]), or LUO's ([`liveupdate`]), standing in sockets for the
//! device and session files so that it sees their closes. It reaches into
//! the program through /proc and pidfds ([`target`]). `--state-dir`
//! simulates a kexec ([`state`]); for LUO, the emulator's SIGTERM is the
//! kexec moment. `--help` lists where each emulation differs from the
//! kernel ([`LIMITS`]).

mod caller;
mod driver;
mod filter;
mod listener;
mod liveupdate;
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum EmulatedDevice {
    /// The FDBox RFC's /dev/fdbox/fdbox and /dev/fdbox/<box>.
    #[default]
    Fdbox,
    /// Linux's Live Update Orchestrator, /dev/liveupdate, as Linux 7.2 has it.
    Liveupdate,
}

/// Arguments of `fdbox emulate`.
#[derive(Args)]
#[command(after_long_help = LIMITS)]
pub struct EmulateArgs {
    /// The device to emulate.
    #[arg(long, value_enum, default_value_t)]
    device: EmulatedDevice,

    /// Simulate a kexec. fdbox: restore the sealed boxes saved here at
    /// start, already sealed, and save the sealed boxes' memfds here at exit
    /// (unsealed boxes, and anything but memfds, are dropped, as KHO would).
    /// liveupdate: restore the sessions saved here as incoming sessions, and
    /// save the outgoing sessions open at SIGTERM (the kexec moment), or
    /// at exit without one.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Where the emulation is not the kernel driver, for `--help`.
const LIMITS: &str = "\
Where --device fdbox differs from the RFC driver:
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
    emulator itself dies, the directory keeps the state of the last exit.

Where --device liveupdate differs from the kernel's LUO (Linux 7.2, the
version it follows: kernel/liveupdate/ and mm/memfd_luo.c of 7.2.13):
  - /dev/liveupdate exists only for open()/openat()/openat2() of that
    absolute path ('//' and '.' allowed), as for fdbox; it acts as
    root-owned, mode 0600 (EACCES unless fsuid 0 or CAP_DAC_OVERRIDE), and
    no capability is checked on ioctls.
  - The device and session fds are one end of a Unix socketpair, not anon
    inodes: fstat() shows a socket, read() finds end-of-file, write() is
    accepted until a socket buffer fills (then blocks), shutdown() of both
    directions counts as a close, and ioctls of another type than 0xBA
    that the VFS does not answer for every file are the socket's (FIONREAD,
    say, where the kernel's LUO answers EINVAL). A close
    is seen when the program's last copy of the fd goes (as the kernel's
    release), including copies in other processes. The one-open rule and
    the sessions are per emulator (the program's process tree), not per
    machine.
  - A preserved memfd's size is frozen, as by the kernel, where the
    program resizes through ftruncate() (EPERM for another size) and
    fallocate() (EPERM), which the emulator traps. Writes are not trapped:
    a write past the end of a preserved memfd (write, pwrite, writev,
    sendfile, splice, copy_file_range, io_uring; EPERM on the kernel) and
    truncate() by path succeed under the emulator, and resizes by
    processes outside it are not seen (trapping every write would cost
    each one a round trip to this process, some 15 us). What travels is
    the size at PRESERVE_FD, as with the kernel: bytes past it are dropped
    at the kexec moment, with a warning. Writes within the size are
    allowed and travel, as with the kernel. fcntl(F_ADD_SEALS) of
    F_SEAL_WRITE on a preserved memfd that has pages is EBUSY, as the
    kernel's, whose pages LUO pinned; here at once, where the kernel first
    waits about 150 ms for the pins to go.
  - The kexec moment is the emulator's SIGTERM: the outgoing sessions open
    then are saved (memfd contents, the sizes and seals they had when
    preserved, and file offsets; not FD_CLOEXEC), then SIGTERM goes on to
    the program. At any other exit, the sessions still open then are saved
    (normally none). Without --state-dir nothing travels. Saved sessions
    come back as incoming ones at the next start (each file a new memfd
    with its seals re-applied, as the kernel's, but named memfd: where the
    kernel's name is empty); incoming sessions not carried on
    in an open outgoing session do not travel again.
  - A session preserves at most 1024 files (ENOSPC beyond), an emulator
    limit. Each preserved file is an fd in the emulator, which raises its
    soft fd limit to the hard one (after starting the program); past that,
    PRESERVE_FD fails with EMFILE.
  - Only memfds on shmem are preserved (hugetlb memfds and any other file:
    ENOENT); an unlinked tmpfs file counts as a memfd, as in the kernel.
  - Results are written into the caller's struct through /proc/PID/mem
    after the fd is installed: a struct in read-only memory is written
    anyway, and one that cannot be written fails the call (EFAULT) with the
    fd installed.
  - The checks follow the kernel's order (request number, then the struct
    size, the request's other bits, the session's direction, the struct),
    except that an fd the call would install is taken last, so EMFILE comes
    after the other failures of CREATE_SESSION, RETRIEVE_SESSION and
    RETRIEVE_FD, not before.
  - No-new-privs, x86_64 only, exit codes and SIGTERM as for fdbox.";

/// Run the program under the emulated device.
pub fn run(args: EmulateArgs) -> Result<ExitCode> {
    // Refused now, not at the kexec moment when the state is saved.
    if let Some(dir) = &args.state_dir {
        fdbox_host::device::daemon::private::create_dir(dir, 0o700)?;
    }
    let restore_failed = || match &args.state_dir {
        Some(dir) => format!("cannot restore the state in {}", dir.display()),
        None => String::new(),
    };
    let emulation = match args.device {
        EmulatedDevice::Fdbox => {
            let driver = driver::Driver::default();
            if let Some(dir) = &args.state_dir {
                let restored = state::restore(dir, &driver.device).with_context(restore_failed)?;
                tracing::debug!("restored {restored} sealed boxes from {}", dir.display());
            }
            supervisor::Emulation::Fdbox(driver)
        }
        EmulatedDevice::Liveupdate => {
            let mut luo = liveupdate::Luo::default();
            if let Some(dir) = &args.state_dir {
                let sessions = state::restore_sessions(dir).with_context(restore_failed)?;
                tracing::debug!(
                    "restored {} sessions from {}",
                    sessions.len(),
                    dir.display()
                );
                luo.restore(sessions).with_context(restore_failed)?;
            }
            supervisor::Emulation::Liveupdate(luo)
        }
    };
    let program = filter::program(args.device);

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
    // stack data (the filter, built here before fork) and allocates
    // nothing. `channel` stays open in the child until exec
    // (close-on-exec), as `theirs` outlives spawn here.
    unsafe {
        command.pre_exec(move || filter::install_and_send_listener(&program, channel));
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {:?}", args.command[0]))?;
    drop(theirs);
    // Every preserved file or boxed memfd is an fd here: the device's
    // limits, not this process's soft fd limit, decide. Raised after the
    // spawn, so the program keeps the limits it was given.
    crate::raise_fd_limit();
    let listener = match filter::receive_listener(rustix::fd::AsFd::as_fd(&ours)) {
        Ok(fd) => listener::Listener::new(fd),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cannot receive the program's seccomp listener: {e}");
        }
    };
    drop(ours);

    let mut supervisor = supervisor::Supervisor::new(listener, emulation);
    let status = supervisor
        .run(&mut child, &terminate)
        .context("the supervisor failed")?;

    if let Some(dir) = &args.state_dir {
        let failed = || format!("cannot save the state in {}", dir.display());
        match &mut supervisor.emulation {
            supervisor::Emulation::Fdbox(driver) => {
                let saved = state::save(dir, &driver.device).with_context(failed)?;
                tracing::debug!("saved {saved} sealed boxes to {}", dir.display());
            }
            supervisor::Emulation::Liveupdate(luo) => {
                let sessions = luo.saved();
                state::save_sessions(dir, &sessions).with_context(failed)?;
                tracing::debug!("saved {} sessions to {}", sessions.len(), dir.display());
            }
        }
    }
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_states_the_emulators_limits() {
        let limit = liveupdate::MAX_FILES_PER_SESSION;
        assert!(LIMITS.contains(&format!(" {limit} ")), "{limit}");
        assert!(
            LIMITS.contains("(Linux 7.2,"),
            "the kernel version it follows"
        );
    }
}
