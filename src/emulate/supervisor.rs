//! The supervisor: answers the calls the filter traps, from any process of
//! the emulated program's tree (children inherit the filter), until none is
//! left, with the emulated device's driver ([`Emulation`]).

use super::caller::Caller;
use super::driver::{Driver, Open, Outcome};
use super::listener::{Listener, Notification, Reply};
use super::liveupdate::{self, Luo};
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
    fn write(&self, addr: u64, bytes: &[u8]) -> io::Result<()> {
        self.target.write(addr, bytes)
    }
    fn get_fd(&self, fd: i32) -> io::Result<OwnedFd> {
        self.target.get_fd(fd)
    }
    fn add_fd(&self, fd: BorrowedFd<'_>, cloexec: bool) -> io::Result<i32> {
        self.listener.add_fd(self.notification.id, fd, cloexec)
    }
    fn still_pending(&self) -> bool {
        self.listener.is_pending(self.notification.id)
    }
}

/// The emulated device's driver.
pub enum Emulation {
    /// FDBox (`--device fdbox`).
    Fdbox(Driver),
    /// The Live Update Orchestrator (`--device liveupdate`).
    Liveupdate(Luo),
}

impl Emulation {
    /// Process the program's closes of device files the driver watches
    /// (LUO's): before each answer, so a close and then a call are seen in
    /// that order.
    fn reap(&mut self) {
        if let Self::Liveupdate(luo) = self {
            luo.reap();
        }
    }

    /// The files whose hang-up is a close in the program.
    fn watched(&self) -> Vec<BorrowedFd<'_>> {
        match self {
            Self::Fdbox(_) => Vec::new(),
            Self::Liveupdate(luo) => luo.watched().collect(),
        }
    }

    /// The emulator got SIGTERM, which plays the kexec.
    fn kexec_moment(&mut self) {
        if let Self::Liveupdate(luo) = self {
            luo.kexec_moment();
        }
    }
}

/// Answers trapped calls with an [`Emulation`].
pub struct Supervisor {
    listener: Listener,
    /// The emulated driver, kept for the state written at exit.
    pub emulation: Emulation,
}

impl Supervisor {
    /// Supervise the filter whose listener is `listener`.
    pub fn new(listener: Listener, emulation: Emulation) -> Self {
        Self {
            listener,
            emulation,
        }
    }

    /// Serve until every process under the filter is gone, reaping `child`
    /// (its exit status is the result). A zombie still holds the filter, so
    /// the child is reaped as soon as it exits; processes it left behind
    /// are served until they exit too. When `terminate` is set (SIGTERM),
    /// the moment is the kexec's (see [`Emulation::kexec_moment`]), then the
    /// child gets SIGTERM and the supervisor stops once it has exited,
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
                        self.emulation.kexec_moment();
                        let _ = rustix::process::pidfd_send_signal(
                            &pidfd,
                            rustix::process::Signal::TERM,
                        );
                        forwarded = true;
                    }
                    None => {}
                }
            }
            let watched = self.emulation.watched();
            let mut fds = vec![PollFd::new(&self.listener, PollFlags::IN)];
            if status.is_none() {
                fds.push(PollFd::new(&pidfd, PollFlags::IN));
            }
            let first_watched = fds.len();
            // No events asked: a hang-up is always reported.
            fds.extend(watched.iter().map(|fd| PollFd::new(fd, PollFlags::empty())));
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let listener_events = fds[0].revents();
            let child_exited = first_watched == 2 && fds[1].revents().contains(PollFlags::IN);
            let closed = fds[first_watched..].iter().any(|f| !f.revents().is_empty());
            drop(fds);
            drop(watched);
            if closed {
                self.emulation.reap();
            }
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
        let Self {
            listener,
            emulation,
        } = self;
        emulation.reap();
        let call = Call {
            listener,
            notification,
            target: Target::new(notification.pid),
        };
        let id = notification.id;
        let args = notification.args;
        let reply = match notification.nr {
            libc::SYS_openat => Self::open(emulation, &call, args[1], args[2]),
            libc::SYS_open => Self::open(emulation, &call, args[0], args[1]),
            // openat2's flags are the first u64 of its struct open_how.
            libc::SYS_openat2 => match call.target.read(args[2], 8) {
                Ok(how) => {
                    let flags = u64::from_ne_bytes(how.try_into().expect("8 bytes"));
                    Self::open(emulation, &call, args[1], flags)
                }
                Err(_) => Ok(Some(Reply::Continue)),
            },
            libc::SYS_ioctl => {
                Self::ioctl(emulation, &call, args[0] as i32, args[1] as u32, args[2])
            }
            libc::SYS_ftruncate | libc::SYS_fallocate | libc::SYS_fcntl => Ok(Some(
                Self::memfd_call(emulation, &call, notification.nr, args),
            )),
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
        emulation: &mut Emulation,
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
        let cloexec = flags & libc::O_CLOEXEC as u64 != 0;
        let sent = match emulation {
            Emulation::Fdbox(driver) => {
                let node = match driver.open(&path) {
                    Open::NotOurs => return Ok(Some(Reply::Continue)),
                    Open::Errno(e) => return Ok(Some(Reply::Errno(e))),
                    Open::Node(node) => node,
                };
                if let Some(denied) = Self::permission(call)? {
                    return Ok(Some(denied));
                }
                let file = driver.nodes.file(&node)?;
                send_fd(call, file, cloexec)
            }
            Emulation::Liveupdate(luo) => {
                if !liveupdate::is_device_path(&path) {
                    return Ok(Some(Reply::Continue));
                }
                // The permission check comes before the device's open
                // (and its EBUSY), as in the kernel.
                if let Some(denied) = Self::permission(call)? {
                    return Ok(Some(denied));
                }
                luo.open(|file| send_fd(call, file, cloexec))
            }
        };
        Ok(sent.err().map(Reply::Errno))
    }

    /// The file permission check of an open of a device node: the nodes are
    /// root's, mode 0600, as the RFC's misc device and /dev/liveupdate.
    fn permission(call: &Call<'_>) -> io::Result<Option<Reply>> {
        let creds = call.target.credentials()?;
        Ok(
            (creds.fsuid != 0 && !creds.has(CAP_DAC_OVERRIDE))
                .then_some(Reply::Errno(libc::EACCES)),
        )
    }

    /// What the caller's `fd` is to the driver (`identify` tells), if it is
    /// one of the driver's files and the call is still pending; `None`
    /// (the kernel's call, whatever `fd` is) otherwise.
    fn node<N>(
        call: &Call<'_>,
        fd: i32,
        identify: impl FnOnce(BorrowedFd<'_>) -> Option<N>,
    ) -> Option<N> {
        // No such fd (EBADF) or no such caller: the kernel says so.
        let theirs = call.target.get_fd(fd).ok()?;
        let node = identify(theirs.as_fd());
        drop(theirs);
        if !call.still_pending() {
            return None;
        }
        node
    }

    /// A request of the device's range on `fd`: the driver's if `fd` is one
    /// of its files, the kernel's (whatever `fd` is) otherwise.
    fn ioctl(
        emulation: &mut Emulation,
        call: &Call<'_>,
        fd: i32,
        request: u32,
        arg: u64,
    ) -> io::Result<Option<Reply>> {
        let outcome = match emulation {
            Emulation::Fdbox(driver) => {
                let Some(node) = Self::node(call, fd, |fd| driver.nodes.identify(fd)) else {
                    return Ok(Some(Reply::Continue));
                };
                if !call.target.credentials()?.has(CAP_SYS_ADMIN) {
                    return Ok(Some(Reply::Errno(libc::EPERM)));
                }
                driver.ioctl(&node, request, arg, call)
            }
            // No capability check: the device's mode guards LUO.
            Emulation::Liveupdate(luo) => {
                let Some(node) = Self::node(call, fd, |fd| luo.identify(fd)) else {
                    return Ok(Some(Reply::Continue));
                };
                luo.ioctl(node, request, arg, call)
            }
        };
        Ok(match outcome {
            Outcome::Done => Some(Reply::Value(0)),
            Outcome::Errno(e) => Some(Reply::Errno(e)),
            Outcome::Gone => Some(Reply::Continue),
            Outcome::Fd {
                box_name,
                entry,
                handle,
            } => {
                // GET_FD's fd is not close-on-exec, as the driver's.
                let failed = send_fd(call, handle.fd(), false).err();
                if failed.is_some()
                    && let Emulation::Fdbox(driver) = emulation
                {
                    driver.undo_get(&box_name, entry, handle);
                }
                failed.map(Reply::Errno)
            }
        })
    }
}

impl Supervisor {
    /// ftruncate, fallocate or fcntl F_ADD_SEALS (`nr`, with `args`):
    /// refused on a memfd the emulated LUO preserves where the kernel
    /// refuses it (see [`Luo::ftruncate`], [`Luo::fallocate`],
    /// [`Luo::add_seals`]); anything else runs in the kernel.
    fn memfd_call(emulation: &Emulation, call: &Call<'_>, nr: i64, args: [u64; 6]) -> Reply {
        let Emulation::Liveupdate(luo) = emulation else {
            return Reply::Continue;
        };
        // The kernel's int and loff_t arguments, as the caller passed them.
        let fd = args[0] as i32;
        let refused = match nr {
            libc::SYS_ftruncate => luo.ftruncate(call, fd, args[1] as i64, || {
                call.target.file_size_limit().ok().flatten()
            }),
            libc::SYS_fallocate => {
                luo.fallocate(call, fd, args[1] as i32, args[2] as i64, args[3] as i64)
            }
            // The filter traps fcntl for F_ADD_SEALS only; the command and
            // the seals are unsigned ints.
            _ if args[1] as u32 == libc::F_ADD_SEALS as u32 => {
                luo.add_seals(call, fd, args[2] as u32)
            }
            _ => None,
        };
        match refused {
            // What was read is the caller's only if its call still waits.
            Some(errno) if call.still_pending() => Reply::Errno(errno),
            _ => Reply::Continue,
        }
    }
}

/// Install `fd` in the caller as its call's result; on failure, the errno
/// to fail the call with instead (EMFILE, say). A caller that died
/// meanwhile gets the reply too, which the kernel drops.
fn send_fd(call: &Call<'_>, fd: BorrowedFd<'_>, cloexec: bool) -> Result<(), i32> {
    match call
        .listener
        .reply_with_fd(call.notification.id, fd, cloexec)
    {
        Ok(_) => Ok(()),
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}
