//! The supervisor: answers the calls the filter traps, from any process of
//! the emulated program's tree (children inherit the filter), until none is
//! left.

use super::driver::{Caller, Driver, Open, Outcome};
use super::listener::{Listener, Notification, Reply};
use super::target::{CAP_DAC_OVERRIDE, CAP_SYS_ADMIN, Target};
use rustix::event::{PollFd, PollFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The calling thread of one notification.
struct Call<'a> {
    listener: &'a Listener,
    notification: Notification,
    target: Target,
}

impl Caller for Call<'_> {
    fn read(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        self.target.read(addr, len)
    }
    fn get_fd(&self, fd: i32) -> io::Result<OwnedFd> {
        self.target.get_fd(fd)
    }
    fn still_pending(&self) -> bool {
        self.listener.is_pending(self.notification.id)
    }
}

/// Answers trapped calls with a [`Driver`].
pub struct Supervisor {
    listener: Listener,
    /// The emulated driver, kept for the state written at exit.
    pub driver: Driver,
}

impl Supervisor {
    /// Supervise the filter whose listener is `listener`.
    pub fn new(listener: Listener, driver: Driver) -> Self {
        Self { listener, driver }
    }

    /// Serve until every process under the filter is gone, reaping `child`
    /// (its exit status is the result). A zombie still holds the filter, so
    /// the child is reaped as soon as it exits; processes it left behind
    /// are served until they exit too. When `terminate` is set (SIGTERM),
    /// the child gets SIGTERM and the supervisor stops once it has exited,
    /// whatever it left behind.
    pub fn run(
        &mut self,
        child: &mut Child,
        terminate: &Arc<AtomicBool>,
    ) -> io::Result<ExitStatus> {
        let pid = rustix::process::Pid::from_child(child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        let mut status = None;
        let mut forwarded = false;
        loop {
            if terminate.load(Ordering::Relaxed) {
                match status {
                    // Told to stop: no waiting for what the program left
                    // behind (a daemon it started, say); their trapped
                    // calls fail with ENOSYS once the listener is closed.
                    Some(status) => return Ok(status),
                    None if !forwarded => {
                        let _ = rustix::process::pidfd_send_signal(
                            &pidfd,
                            rustix::process::Signal::TERM,
                        );
                        forwarded = true;
                    }
                    None => {}
                }
            }
            let mut fds = [
                PollFd::new(&self.listener, PollFlags::IN),
                PollFd::new(&pidfd, PollFlags::IN),
            ];
            let watched = if status.is_none() { 2 } else { 1 };
            match rustix::event::poll(&mut fds[..watched], None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let listener_events = fds[0].revents();
            let child_exited = watched == 2 && fds[1].revents().contains(PollFlags::IN);
            if child_exited {
                status = Some(child.wait()?);
            }
            if listener_events.contains(PollFlags::IN) {
                match self.listener.recv() {
                    // One call that cannot be answered must not take the
                    // device away from the others: the kernel fails it
                    // when the caller goes (or waits on it until then).
                    Ok(n) => {
                        if let Err(e) = self.answer(n) {
                            tracing::warn!("cannot answer {n:?}: {e}");
                        }
                    }
                    // The caller died, or a signal took the call back,
                    // between the wake-up and the receive.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => {}
                    Err(e) => return Err(e),
                }
            } else if listener_events.contains(PollFlags::HUP)
                && let Some(status) = status
            {
                return Ok(status);
            }
        }
    }

    fn answer(&mut self, notification: Notification) -> io::Result<()> {
        let Self { listener, driver } = self;
        let call = Call {
            listener,
            notification,
            target: Target::new(notification.pid),
        };
        let id = notification.id;
        let args = notification.args;
        let reply = match notification.nr {
            libc::SYS_openat => Self::open(driver, &call, args[1], args[2]),
            libc::SYS_open => Self::open(driver, &call, args[0], args[1]),
            // openat2's flags are the first u64 of its struct open_how.
            libc::SYS_openat2 => match call.target.read(args[2], 8) {
                Ok(how) => {
                    let flags = u64::from_ne_bytes(how.try_into().expect("8 bytes"));
                    Self::open(driver, &call, args[1], flags)
                }
                Err(_) => Ok(Some(Reply::Continue)),
            },
            libc::SYS_ioctl => Self::ioctl(driver, &call, args[0] as i32, args[1] as u32, args[2]),
            other => {
                tracing::warn!("unexpected system call {other} trapped; letting it run");
                Ok(Some(Reply::Continue))
            }
        };
        let reply = reply.unwrap_or_else(|e| {
            tracing::debug!("cannot answer {notification:?}: {e}");
            // The caller is probably gone (its /proc entry with it); if
            // not, the call fails rather than runs without its device.
            Some(Reply::Errno(libc::EIO))
        });
        tracing::debug!(
            pid = notification.pid,
            nr = notification.nr,
            ?reply,
            "answered"
        );
        match reply {
            Some(reply) => listener.reply(id, reply),
            // Answered with an fd (SECCOMP_ADDFD_FLAG_SEND) already.
            None => Ok(()),
        }
    }

    /// open / openat / openat2 of `path_addr` with `flags`: a device node is answered
    /// with its stand-in file, anything else opened by the kernel. `None`:
    /// answered already.
    fn open(
        driver: &mut Driver,
        call: &Call<'_>,
        path_addr: u64,
        flags: u64,
    ) -> io::Result<Option<Reply>> {
        // A path that cannot be read is the kernel's to fail (EFAULT).
        let Ok(Some(path)) = call.target.read_path(path_addr) else {
            return Ok(Some(Reply::Continue));
        };
        // The man page's rule: memory read from the caller is only its
        // memory if the call is still pending afterwards.
        if !call.still_pending() {
            return Ok(Some(Reply::Continue));
        }
        let node = match driver.open(&path) {
            Open::NotOurs => return Ok(Some(Reply::Continue)),
            Open::Errno(e) => return Ok(Some(Reply::Errno(e))),
            Open::Node(node) => node,
        };
        // The nodes are root's, mode 0600, as the RFC's misc device.
        let creds = call.target.credentials()?;
        if creds.fsuid != 0 && !creds.has(CAP_DAC_OVERRIDE) {
            return Ok(Some(Reply::Errno(libc::EACCES)));
        }
        let cloexec = flags & libc::O_CLOEXEC as u64 != 0;
        let file = driver.nodes.file(&node)?;
        Ok(send_fd(call.listener, call, file, cloexec).err())
    }

    /// An FDBox request on `fd`: the driver's if `fd` is one of its nodes,
    /// the kernel's (whatever `fd` is) otherwise.
    fn ioctl(
        driver: &mut Driver,
        call: &Call<'_>,
        fd: i32,
        request: u32,
        arg: u64,
    ) -> io::Result<Option<Reply>> {
        let theirs = match call.target.get_fd(fd) {
            Ok(theirs) => theirs,
            // No such fd (EBADF) or no such caller: the kernel says so.
            Err(_) => return Ok(Some(Reply::Continue)),
        };
        let node = driver.nodes.identify(theirs.as_fd());
        if !call.still_pending() {
            return Ok(Some(Reply::Continue));
        }
        let Some(node) = node else {
            return Ok(Some(Reply::Continue));
        };
        if !call.target.credentials()?.has(CAP_SYS_ADMIN) {
            return Ok(Some(Reply::Errno(libc::EPERM)));
        }
        Ok(match driver.ioctl(&node, request, arg, call) {
            Outcome::Done => Some(Reply::Value(0)),
            Outcome::Errno(e) => Some(Reply::Errno(e)),
            Outcome::Gone => Some(Reply::Continue),
            Outcome::Fd {
                box_name,
                entry,
                handle,
            } => {
                // GET_FD's fd is not close-on-exec, as the driver's.
                let failed = send_fd(call.listener, call, handle.fd(), false).err();
                if failed.is_some() {
                    driver.undo_get(&box_name, entry, handle);
                }
                failed
            }
        })
    }
}

/// Install `fd` in the caller as its call's result; on failure, the errno
/// reply to send instead (EMFILE, say). A caller that died meanwhile gets
/// the reply too, which the kernel drops.
fn send_fd(
    listener: &Listener,
    call: &Call<'_>,
    fd: BorrowedFd<'_>,
    cloexec: bool,
) -> Result<(), Reply> {
    match listener.reply_with_fd(call.notification.id, fd, cloexec) {
        Ok(_) => Ok(()),
        Err(e) => Err(Reply::Errno(e.raw_os_error().unwrap_or(libc::EIO))),
    }
}
