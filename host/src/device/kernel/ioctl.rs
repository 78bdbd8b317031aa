//! The one place kernel devices issue ioctls.

use rustix::io::Errno;
use std::os::fd::BorrowedFd;

/// One ioctl: its request number and its argument struct, if any.
struct Request<'a, T> {
    opcode: u32,
    arg: Option<&'a mut T>,
}

// SAFETY: every `Request` is built by `ioctl` below, whose callers pair a
// request number with the argument its UAPI gives it (a `#[repr(C)]`
// struct checked against a C compiler by tests/uapi_layout.rs, or none);
// the driver reads and writes the struct during the call only, and keeps
// no pointer to it. The result is the plain return value.
unsafe impl<T> rustix::ioctl::Ioctl for Request<'_, T> {
    type Output = rustix::ioctl::IoctlOutput;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> rustix::ioctl::Opcode {
        // Both UAPIs use plain `_IO` numbers: no size or direction bits to
        // encode.
        self.opcode as rustix::ioctl::Opcode
    }

    fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        match &mut self.arg {
            Some(arg) => (*arg as *mut T).cast(),
            None => std::ptr::null_mut(),
        }
    }

    unsafe fn output_from_ptr(
        out: rustix::ioctl::IoctlOutput,
        _arg: *mut std::ffi::c_void,
    ) -> rustix::io::Result<Self::Output> {
        Ok(out)
    }
}

/// ioctl `opcode` on `fd` with `arg`, which must be the struct the UAPI
/// gives that request (or `None` where it takes none): callers in this
/// module's parent pass only the pairs of `uapi` and `liveupdate_uapi`.
pub(super) fn ioctl<T>(fd: BorrowedFd<'_>, opcode: u32, arg: Option<&mut T>) -> Result<i32, Errno> {
    // SAFETY: see the `Ioctl` impl: callers pass only the UAPI's pairs.
    unsafe { rustix::ioctl::ioctl(fd, Request { opcode, arg }) }
}
