//! The daemon's in-place upgrade on SIGHUP (the nginx pattern): the process
//! re-executes its executable with the same pid and arguments, handing its
//! listening socket, a manifest and every held fd to the new image as
//! `LISTEN_FDS`, which recovers them exactly as it would from systemd's fd
//! store.

use crate::systemd::{self, LISTEN_FDS_START, Notifier};
use anyhow::{Context, Result, bail};
use fdbox_host::daemon::Holder;
use fdbox_host::daemon::LISTENER_FD_NAME;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// How long an upgrade waits for ops in flight, and then for connections
/// to close, before it gives up (and the daemon goes on serving).
const PATIENCE: Duration = Duration::from_secs(2);

/// A flag SIGHUP sets. The handler does nothing else: no fd is touched
/// while the upgrade moves fds around.
///
/// An upgrade execs with SIGHUP blocked, so one sent while the new image
/// starts waits instead of killing it (SIGHUP's default action); it is
/// unblocked here, once the handler is in place.
pub fn hangup_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, flag.clone())
        .context("cannot handle SIGHUP")?;
    block_sighup(false);
    Ok(flag)
}

/// Block or unblock SIGHUP in this thread (a blocked signal stays blocked
/// across execve, and std's `exec` keeps the mask).
fn block_sighup(block: bool) {
    let how = if block {
        libc::SIG_BLOCK
    } else {
        libc::SIG_UNBLOCK
    };
    // SAFETY: the set is initialised by sigemptyset before use, and
    // pthread_sigmask only changes this thread's signal mask.
    let rc = unsafe {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGHUP);
        libc::pthread_sigmask(how, set.as_ptr(), std::ptr::null_mut())
    };
    if rc != 0 {
        tracing::warn!(
            "cannot change the SIGHUP mask: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
}

/// How to start this process again.
pub struct Upgrade {
    /// The executable's path, read at start: after an upgrade installs a new
    /// binary there, exec'ing the path runs the new one (`/proc/self/exe`
    /// would run the old image again).
    exe: PathBuf,
    argv0: OsString,
    args: Vec<OsString>,
}

impl Upgrade {
    /// Remember the executable and arguments of this process.
    pub fn capture() -> Result<Self> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_else(|| exe.clone().into());
        Ok(Self {
            exe,
            argv0,
            args: args.collect(),
        })
    }

    /// Quiesce `holder` and re-execute this executable with its state. Only
    /// returns on failure, with the daemon as it was (it may serve again).
    pub fn exec(
        &self,
        holder: &Holder,
        listener: &OwnedFd,
        notify: Option<&Arc<Notifier>>,
    ) -> anyhow::Error {
        match self.try_exec(holder, listener, notify) {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    fn try_exec(
        &self,
        holder: &Holder,
        listener: &OwnedFd,
        notify: Option<&Arc<Notifier>>,
    ) -> Result<std::convert::Infallible> {
        // An upgrade installed by renaming a new binary over the old path
        // leaves /proc/self/exe at the old one; a removed path leaves only it.
        let exe = if self.exe.exists() {
            self.exe.clone()
        } else {
            PathBuf::from("/proc/self/exe")
        };
        let quiet = holder
            .quiesce(PATIENCE)
            .context("the daemon did not quiesce")?;
        if let Some(notify) = notify {
            let _ = notify.send("STATUS=upgrading in place", &[]);
        }
        let result = quiet.export(|fds| -> Result<std::convert::Infallible> {
            let mut names = vec![LISTENER_FD_NAME];
            let mut pass = vec![listener.as_fd()];
            for (name, fd) in fds {
                names.push(name);
                pass.push(*fd);
            }
            // Each fd is open twice for a moment (where it is, and where the
            // next image wants it), and nothing may fail for want of fds
            // half way.
            let open = systemd::count_open().context("cannot count open fds")?;
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(u64::MAX);
            if (open + pass.len() + 16) as u64 > limit {
                bail!(
                    "cannot upgrade in place: {open} fds are open and {} more are needed, over RLIMIT_NOFILE ({limit}); restart through systemd instead, or raise LimitNOFILE",
                    pass.len()
                );
            }
            tracing::info!(
                "upgrading in place: re-executing {} with {} boxed fds",
                exe.display(),
                pass.len() - 2
            );
            block_sighup(true);
            let placed = match Placed::at_listen_fds(&pass) {
                Ok(placed) => placed,
                Err(e) => {
                    block_sighup(false);
                    return Err(e).context("cannot arrange the fds for the new image");
                }
            };
            let pid = rustix::process::getpid().as_raw_nonzero().get();
            let mut command = std::process::Command::new(&exe);
            command
                .arg0(&self.argv0)
                .args(&self.args)
                .env("LISTEN_FDS", pass.len().to_string())
                .env("LISTEN_PID", pid.to_string())
                .env("LISTEN_FDNAMES", names.join(":"));
            if let Some(notify) = notify {
                command.env("NOTIFY_SOCKET", notify.env_value());
            }
            let error = command.exec();
            // Still here: the fds go back where they were.
            drop(placed);
            block_sighup(false);
            Err(error).with_context(|| format!("cannot execute {}", exe.display()))
        });
        if let Some(notify) = notify {
            let _ = notify.send("READY=1\nSTATUS=upgrade failed; serving on", &[]);
        }
        match result {
            Ok(inner) => inner,
            Err(e) => Err(e).context("cannot write the manifest"),
        }
    }
}

/// Fds put at `LISTEN_FDS_START..` without close-on-exec, and what was at
/// those numbers before, to put back if the exec fails.
///
/// This deliberately replaces fds owned elsewhere in the process (whatever
/// had those numbers), which is only sound because no other thread runs:
/// the holder is quiesced, and the event loop that served it is gone with
/// every fd it had (`Holder::quiesce` waits for it, and `serve_until`
/// returned), and because dropping this puts everything back before anyone
/// uses them.
struct Placed {
    /// For each number from `LISTEN_FDS_START`: a close-on-exec copy of
    /// what was there, with whether it was close-on-exec.
    saved: Vec<Option<(OwnedFd, bool)>>,
    /// How many numbers were filled.
    filled: usize,
}

impl Placed {
    fn at_listen_fds(fds: &[BorrowedFd<'_>]) -> Result<Self> {
        let end = LISTEN_FDS_START + fds.len() as RawFd;
        let mut placed = Placed {
            saved: Vec::with_capacity(fds.len()),
            filled: 0,
        };
        // Copies above the range of whatever is in it, so that nothing is
        // lost when it is overwritten (the passed fds themselves included).
        for raw in LISTEN_FDS_START..end {
            if !systemd::is_open(raw) {
                placed.saved.push(None);
                continue;
            }
            // SAFETY: the fd is open (just checked) and stays so until this
            // returns: no other thread runs.
            let fd = unsafe { BorrowedFd::borrow_raw(raw) };
            let cloexec = rustix::io::fcntl_getfd(fd)?.contains(rustix::io::FdFlags::CLOEXEC);
            let copy = rustix::io::fcntl_dupfd_cloexec(fd, end)?;
            placed.saved.push(Some((copy, cloexec)));
        }
        for (i, fd) in fds.iter().enumerate() {
            let target = LISTEN_FDS_START + i as RawFd;
            let raw = fd.as_raw_fd();
            let source = if (LISTEN_FDS_START..end).contains(&raw) {
                let (copy, _) = placed.saved[(raw - LISTEN_FDS_START) as usize]
                    .as_ref()
                    .expect("an fd in the range was open");
                copy.as_raw_fd()
            } else {
                raw
            };
            dup_onto(source, target, false)?;
            placed.filled += 1;
        }
        Ok(placed)
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        for (i, saved) in self.saved.iter().enumerate().take(self.filled) {
            let target = LISTEN_FDS_START + i as RawFd;
            let restored = match saved {
                Some((copy, cloexec)) => dup_onto(copy.as_raw_fd(), target, *cloexec),
                // SAFETY: the number was free before; what is there now is
                // the copy this put there.
                None => match unsafe { libc::close(target) } {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                },
            };
            if let Err(e) = restored {
                tracing::error!("cannot put fd {target} back after a failed upgrade: {e}");
            }
        }
    }
}

/// Make `target` refer to what `source` refers to (closing what `target`
/// was), close-on-exec or not.
fn dup_onto(source: RawFd, target: RawFd, cloexec: bool) -> std::io::Result<()> {
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: plain syscall on numbers; replacing `target` is what the
    // caller wants (see `Placed`), and `source` is open.
    if unsafe { libc::dup3(source, target, flags) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
