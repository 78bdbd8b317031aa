//! What the emulated drivers ([`super::driver`] for FDBox,
//! [`super::liveupdate`] for LUO) need of the thread whose call they answer,
//! and the helpers both use to read its arguments.
//!
//! The drivers reach the caller only through [`Caller`], so they know
//! nothing of seccomp; the supervisor does the answering.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

/// The calling thread, as a driver needs it.
pub trait Caller {
    /// `len` bytes of its memory at `addr` (EFAULT if unreadable).
    fn read(&self, addr: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Write `bytes` into its memory at `addr` (EFAULT if unwritable).
    fn write(&self, addr: u64, bytes: &[u8]) -> io::Result<()>;
    /// A copy of its fd `fd` (EBADF if it has none).
    fn get_fd(&self, fd: i32) -> io::Result<OwnedFd>;
    /// Install a duplicate of `fd` in it without answering its call, and
    /// return the new fd's number (for a result the call writes into a
    /// struct rather than returns).
    fn add_fd(&self, fd: BorrowedFd<'_>, cloexec: bool) -> io::Result<i32>;
    /// Whether its call still waits for an answer: what was read from it is
    /// only valid if so, and nothing may change before this is checked.
    fn still_pending(&self) -> bool;
}

/// Not an errno: the caller went away.
pub const GONE: i32 = -1;

/// `Err(GONE)` unless the caller's call is still pending.
pub fn pending(caller: &dyn Caller) -> Result<(), i32> {
    if caller.still_pending() {
        Ok(())
    } else {
        Err(GONE)
    }
}

/// The errno of an I/O error (EIO if it has none).
pub fn os_errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `len` bytes of the caller's memory at `arg`, or the errno (EFAULT).
pub fn read_struct(caller: &dyn Caller, arg: u64, len: usize) -> Result<Vec<u8>, i32> {
    caller.read(arg, len).map_err(|e| os_errno(&e))
}

/// The native-endian u64 at `offset` of `bytes`.
pub fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_ne_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

/// The native-endian u32 at `offset` of `bytes`.
pub fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_ne_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}
