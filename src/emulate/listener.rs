//! The supervisor's end of the seccomp filter: the notification fd and its
//! ioctls (receive a trapped call, check it is still pending, answer it,
//! install an fd in the caller).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// A trapped system call.
#[derive(Clone, Copy, Debug)]
pub struct Notification {
    /// The kernel's cookie for this call.
    pub id: u64,
    /// The calling thread, in this process's pid namespace.
    pub pid: i32,
    /// The system call number (x86_64: the filter kills other ABIs).
    pub nr: i64,
    /// Its six arguments.
    pub args: [u64; 6],
}

/// How to answer a trapped call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Let the kernel run it as if there were no filter.
    Continue,
    /// Return this value.
    Value(i64),
    /// Fail with this errno.
    Errno(i32),
}

/// The notification fd.
pub struct Listener(OwnedFd);

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// `ioctl(fd, request, arg)`, as an io::Result.
///
/// # Safety
/// `arg` must point at the structure `request` reads or writes.
unsafe fn ioctl<T>(fd: BorrowedFd<'_>, request: libc::Ioctl, arg: *mut T) -> io::Result<i32> {
    // SAFETY: the caller vouches for `arg`; the fd is borrowed, so open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Listener {
    /// Wrap the fd seccomp returned for the filter.
    ///
    /// It asks for synchronous wake-ups (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`,
    /// Linux 6.6+): the kernel then runs the supervisor and the trapped
    /// thread one after the other on one CPU instead of waking an idle one
    /// for each hand-off, which on a VM costs tens of µs per emulated call
    /// (BENCHMARKS.md). Without it (an older kernel) calls are slower, not
    /// wrong.
    pub fn new(fd: OwnedFd) -> Self {
        const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;
        // SAFETY: SECCOMP_IOCTL_NOTIF_SET_FLAGS takes its flags as the
        // argument's value and reads no memory; the fd is borrowed.
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        };
        if rc < 0 {
            tracing::debug!(
                "no synchronous seccomp wake-ups ({}); emulated calls take longer",
                io::Error::last_os_error()
            );
        }
        Self(fd)
    }

    /// Wait for the next trapped call. Fails with ENOENT if the caller died
    /// between the wake-up and the receive; just try again.
    pub fn recv(&self) -> io::Result<Notification> {
        // SAFETY: seccomp_notif is plain integers, for which zero is valid;
        // the kernel requires it zeroed on input.
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: NOTIF_RECV writes one seccomp_notif.
        unsafe { ioctl(self.as_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif) }?;
        Ok(Notification {
            id: notif.id,
            pid: notif.pid as i32,
            nr: i64::from(notif.data.nr),
            args: notif.data.args,
        })
    }

    /// Whether the call is still waiting for its answer. The pid in a
    /// notification may be reused once the caller dies; anything learnt
    /// about it (its memory, its fds) is only trustworthy if the call was
    /// still pending afterwards.
    pub fn is_pending(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: NOTIF_ID_VALID reads one u64.
        unsafe { ioctl(self.as_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) }.is_ok()
    }

    /// Answer a call. An answer to a caller that died meanwhile is dropped
    /// by the kernel (ENOENT), which is not an error here.
    pub fn reply(&self, id: u64, reply: Reply) -> io::Result<()> {
        let (val, error, flags) = match reply {
            Reply::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
            Reply::Value(v) => (v, 0, 0),
            Reply::Errno(e) => (0, -e, 0),
        };
        let mut resp = libc::seccomp_notif_resp {
            id,
            val,
            error,
            flags,
        };
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp.
        match unsafe { ioctl(self.as_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) } {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Install a duplicate of `fd` in the caller and answer its call with
    /// the new fd's number, in one step (SECCOMP_ADDFD_FLAG_SEND), so the
    /// fd cannot be installed without the caller learning its number.
    pub fn reply_with_fd(&self, id: u64, fd: BorrowedFd<'_>, cloexec: bool) -> io::Result<i32> {
        self.addfd(id, fd, cloexec, libc::SECCOMP_ADDFD_FLAG_SEND as u32)
    }

    /// Install a duplicate of `fd` in the caller, leaving its call pending,
    /// and return the new fd's number: for a call whose result goes into a
    /// struct (LUO's), written before the call is answered.
    pub fn add_fd(&self, id: u64, fd: BorrowedFd<'_>, cloexec: bool) -> io::Result<i32> {
        self.addfd(id, fd, cloexec, 0)
    }

    fn addfd(&self, id: u64, fd: BorrowedFd<'_>, cloexec: bool, flags: u32) -> io::Result<i32> {
        let mut addfd = libc::seccomp_notif_addfd {
            id,
            flags,
            srcfd: fd.as_raw_fd() as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: NOTIF_ADDFD reads one seccomp_notif_addfd.
        unsafe { ioctl(self.as_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut addfd) }
    }
}
