//! What the supervisor learns about the thread whose call it answers: its
//! memory, its fds and its credentials, all through /proc and pidfds.
//!
//! The thread may die, and its pid be reused, at any moment; callers check
//! that the notification is still pending after using anything read here.

use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt as _;

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for a thread that need not lead its
/// thread group; the notifying thread may be any thread of the program.
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// Linux's `PATH_MAX`, the longest path the kernel reads, NUL included.
const PATH_MAX: usize = 4096;

/// `CAP_DAC_OVERRIDE` and `CAP_SYS_ADMIN`, bit numbers in a capability set.
pub const CAP_DAC_OVERRIDE: u32 = 1;
/// See [`CAP_DAC_OVERRIDE`].
pub const CAP_SYS_ADMIN: u32 = 21;

/// One thread of the emulated program.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pid: i32,
}

impl Target {
    /// The thread `pid` (a notification's pid).
    pub fn new(pid: i32) -> Self {
        Self { pid }
    }

    /// Its memory, for reading (/proc/PID/mem reads what it can and stops at
    /// an unmapped page, which process_vm_readv only does per iovec).
    fn memory(&self) -> io::Result<File> {
        File::open(format!("/proc/{}/mem", self.pid))
    }

    /// `len` bytes at `addr`, or EFAULT if any of them cannot be read, as
    /// the kernel's copy_from_user.
    pub fn read(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let efault = || io::Error::from_raw_os_error(libc::EFAULT);
        self.memory()?
            .read_exact_at(&mut buf, addr)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => efault(),
                _ if e.raw_os_error() == Some(libc::EIO) => efault(),
                _ => e,
            })?;
        Ok(buf)
    }

    /// Write `bytes` at `addr`, or EFAULT if any of them cannot be written,
    /// as the kernel's copy_to_user. Unlike copy_to_user, /proc/PID/mem
    /// writes into read-only mappings too (as a debugger does).
    pub fn write(&self, addr: u64, bytes: &[u8]) -> io::Result<()> {
        let efault = || io::Error::from_raw_os_error(libc::EFAULT);
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{}/mem", self.pid))?
            .write_all_at(bytes, addr)
            .map_err(|e| match e.kind() {
                io::ErrorKind::WriteZero => efault(),
                _ if e.raw_os_error() == Some(libc::EIO) => efault(),
                _ => e,
            })
    }

    /// The NUL-terminated string at `addr`, without its NUL; `None` if it
    /// cannot be read or has no NUL within PATH_MAX bytes (the kernel then
    /// fails the call itself, EFAULT or ENAMETOOLONG).
    pub fn read_path(&self, addr: u64) -> io::Result<Option<Vec<u8>>> {
        let mem = self.memory()?;
        let mut buf = vec![0u8; PATH_MAX];
        let mut have = 0;
        while have < PATH_MAX {
            // A read stops short at the first unmapped page; a path ends
            // before it or the call fails anyway.
            let n = match mem.read_at(&mut buf[have..], addr + have as u64) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Some(end) = buf[have..have + n].iter().position(|b| *b == 0) {
                buf.truncate(have + end);
                return Ok(Some(buf));
            }
            have += n;
        }
        Ok(None)
    }

    /// A copy of its fd `fd` (close-on-exec), as pidfd_getfd(2) makes it:
    /// the same open file. EBADF if it has no such fd.
    pub fn get_fd(&self, fd: i32) -> io::Result<OwnedFd> {
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        let pid =
            Pid::from_raw(self.pid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        let pidfd =
            match rustix::process::pidfd_open(pid, PidfdFlags::from_bits_retain(PIDFD_THREAD)) {
                // Before 6.9 a pidfd names a process: fine for a leader.
                Err(rustix::io::Errno::INVAL) => {
                    rustix::process::pidfd_open(pid, PidfdFlags::empty())
                }
                other => other,
            }?;
        Ok(rustix::process::pidfd_getfd(
            &pidfd,
            fd,
            PidfdGetfdFlags::empty(),
        )?)
    }

    /// Its RLIMIT_FSIZE soft limit (the largest file size it may make),
    /// from /proc/PID/limits; `None` if unlimited.
    pub fn file_size_limit(&self) -> io::Result<Option<u64>> {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid))?;
        let soft = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max file size"))
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or_else(|| io::Error::other("no Max file size in /proc/PID/limits"))?;
        match soft {
            "unlimited" => Ok(None),
            n => n
                .parse()
                .map(Some)
                .map_err(|_| io::Error::other(format!("bad Max file size {n:?}"))),
        }
    }

    /// Its credentials from /proc/PID/status: the filesystem uid and the
    /// effective capability set.
    pub fn credentials(&self) -> io::Result<Credentials> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .ok_or_else(|| io::Error::other(format!("no {name} in /proc/PID/status")))
        };
        let fsuid = field("Uid:")?
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other("bad Uid: line"))?;
        let cap_eff = u64::from_str_radix(field("CapEff:")?, 16)
            .map_err(|_| io::Error::other("bad CapEff: line"))?;
        Ok(Credentials { fsuid, cap_eff })
    }
}

/// The credentials the kernel checks for the calls fdbox emulates.
#[derive(Clone, Copy, Debug)]
pub struct Credentials {
    /// The uid file permissions are checked against.
    pub fsuid: u32,
    /// Effective capabilities, bit N for capability N.
    pub cap_eff: u64,
}

impl Credentials {
    /// Whether capability `cap` is effective.
    pub fn has(&self, cap: u32) -> bool {
        self.cap_eff & (1 << cap) != 0
    }
}
