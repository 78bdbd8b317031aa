//! The seccomp filter the emulated program runs under, and its installation
//! in the child between fork and exec.
//!
//! The filter sends to the supervisor (SECCOMP_RET_USER_NOTIF) every `openat`,
//! `open` and `openat2`, because the path is in the program's memory where a filter
//! cannot look, and every `ioctl` whose request is the emulated device's
//! (the six FDBox requests; for LUO, every request of its type 0xBA,
//! whatever its number, direction and size bits, as the kernel's LUO
//! decodes them all); for LUO also every `ftruncate` and `fallocate`,
//! which the kernel refuses on a preserved memfd, and every `fcntl`
//! F_ADD_SEALS, since F_SEAL_WRITE waits for pages LUO pins. Everything
//! else, the
//! other device's requests included, runs as usual. The supervisor lets
//! the calls that are not on the device's paths or files continue.

use super::EmulatedDevice;
use fdbox_host::device::kernel::liveupdate_uapi::LIVEUPDATE_IOCTL_CREATE_SESSION;
use fdbox_host::device::kernel::uapi::{FDBOX_CREATE_BOX, FDBOX_UNSEAL};
use libc::{
    BPF_ABS, BPF_ALU, BPF_AND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W,
    sock_filter,
};
use std::io;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `AUDIT_ARCH_X86_64` (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`),
/// which libc does not export.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// x32 system calls reach the kernel as x86_64 ones with this bit set in the
/// number; the filter does not know them, so it kills them.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Offsets in `struct seccomp_data`, which is what a seccomp filter reads.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// `args[1]`'s low 32 bits on a little-endian machine: the ioctl request is
/// an `unsigned int` and the kernel ignores the upper half.
const OFFSET_ARG1_LOW: u32 = 16 + 8;

const fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A conditional jump: `jt` / `jf` instructions forward when true / false.
const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The ioctl requests trapped for `device`: those whose request, masked
/// with the first value, is in the range of the other two. LUO's: the type
/// byte 0xBA (`_IOC_TYPE`), whatever the rest.
const fn requests(device: EmulatedDevice) -> (u32, u32, u32) {
    match device {
        EmulatedDevice::Fdbox => (u32::MAX, FDBOX_CREATE_BOX, FDBOX_UNSEAL),
        EmulatedDevice::Liveupdate => (
            0xFF00,
            LIVEUPDATE_IOCTL_CREATE_SESSION,
            LIVEUPDATE_IOCTL_CREATE_SESSION,
        ),
    }
}

/// A system call number no x86_64 call has (the filter kills numbers from
/// `X32_SYSCALL_BIT` up before it compares).
const NO_CALL: u32 = u32::MAX;

/// The memfd calls trapped for `device`: ftruncate, fallocate and fcntl
/// (F_ADD_SEALS only) for LUO, which freezes a preserved memfd's size and
/// pins its pages; none for FDBox.
const fn memfd_calls(device: EmulatedDevice) -> (u32, u32, u32) {
    match device {
        EmulatedDevice::Fdbox => (NO_CALL, NO_CALL, NO_CALL),
        EmulatedDevice::Liveupdate => (
            libc::SYS_ftruncate as u32,
            libc::SYS_fallocate as u32,
            libc::SYS_fcntl as u32,
        ),
    }
}

/// The filter for `device`, instruction by instruction; jumps are relative
/// to the next instruction (classic BPF only jumps forward). Built before
/// fork: the child only passes it to the kernel.
pub const fn program(device: EmulatedDevice) -> [sock_filter; 23] {
    let (mask, first, last) = requests(device);
    let (ftruncate, fallocate, fcntl) = memfd_calls(device);
    [
        // 0-2: only x86_64 system calls; kill the process otherwise, since the
        // numbers below mean other calls on other ABIs.
        stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        // 3-5: no x32 calls.
        stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_NR),
        jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        // 6-13: openat, open, openat2 and the device's ftruncate and
        // fallocate go to the supervisor (22), fcntl (14) and ioctl (17)
        // are looked at, everything else is allowed.
        jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_openat as u32, 15, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_open as u32, 14, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_openat2 as u32, 13, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, ftruncate, 12, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, fallocate, 11, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, fcntl, 2, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_ioctl as u32, 4, 0),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        // 14-16: fcntl F_ADD_SEALS goes to the supervisor, any other
        // command is allowed (the command is an unsigned int).
        stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_ARG1_LOW),
        jump(BPF_JMP | BPF_JEQ | BPF_K, libc::F_ADD_SEALS as u32, 6, 0),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        // 17-21: an ioctl request that, masked, is in first..=last goes to
        // the supervisor, any other is allowed.
        stmt(BPF_LD | BPF_W | BPF_ABS, OFFSET_ARG1_LOW),
        stmt(BPF_ALU | BPF_AND | BPF_K, mask),
        jump(BPF_JMP | BPF_JGE | BPF_K, first, 0, 1),
        jump(BPF_JMP | BPF_JGT | BPF_K, last, 0, 1),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        // 22
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_USER_NOTIF),
    ]
}

/// Install `program` in this process and send its listener fd over
/// `channel`. Runs in the child between fork and exec (`pre_exec`), so it
/// allocates nothing and only makes system calls.
pub fn install_and_send_listener(program: &[sock_filter], channel: RawFd) -> io::Result<()> {
    // SAFETY: prctl with these integer arguments reads no memory; it only
    // sets this process's no_new_privs bit, which unprivileged seccomp
    // filters require and which also keeps a setuid program from gaining
    // privileges under a filter it did not ask for.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let program = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // NEW_LISTENER returns the notification fd. WAIT_KILLABLE_RECV (5.19+)
    // keeps a signal from interrupting a call the supervisor has already
    // received: otherwise the call would restart and the supervisor would
    // apply it twice (a second CREATE_BOX answering EEXIST, say).
    let flags =
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    // SAFETY: `program` points at the caller's slice of `len` instructions, which the kernel copies before seccomp returns.
    let listener = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &program as *const libc::sock_fprog,
        )
    };
    if listener < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: seccomp just returned this fd, and nothing else owns it.
    let listener = unsafe { OwnedFd::from_raw_fd(listener as RawFd) };
    // SAFETY: `channel` is the child's end of the socketpair, open until
    // exec (close-on-exec); it is only borrowed for this call.
    let channel = unsafe { BorrowedFd::borrow_raw(channel) };
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    let fds = [std::os::fd::AsFd::as_fd(&listener)];
    control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        channel,
        &[IoSlice::new(b"L")],
        &mut control,
        rustix::net::SendFlags::empty(),
    )?;
    // The listener closes here: the program must not hold its own
    // supervisor's fd.
    Ok(())
}

/// Receive the listener the child sent over `channel`.
pub fn receive_listener(channel: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        channel,
        &mut [io::IoSliceMut::new(&mut byte)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )?;
    fdbox_host::device::daemon::transport::take_fds(&mut control)
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::other("the child sent no seccomp listener"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions [`program`] uses.
    fn run_on(program: &[sock_filter], nr: u32, arch: u32, arg1: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        data[24..32].copy_from_slice(&arg1.to_ne_bytes());
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = program[pc];
            pc += 1;
            let code = u32::from(i.code);
            if code == BPF_LD | BPF_W | BPF_ABS {
                let k = i.k as usize;
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
            } else if code == BPF_RET | BPF_K {
                return i.k;
            } else if code == BPF_ALU | BPF_AND | BPF_K {
                acc &= i.k;
            } else {
                let taken = match code & 0xf0 {
                    c if c == BPF_JEQ => acc == i.k,
                    c if c == BPF_JGE => acc >= i.k,
                    c if c == BPF_JGT => acc > i.k,
                    _ => panic!("unexpected instruction {code:#x}"),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
        }
    }

    fn run(nr: u32, arch: u32, arg1: u64) -> u32 {
        run_on(&program(EmulatedDevice::Fdbox), nr, arch, arg1)
    }

    #[test]
    fn notifies_opens_and_fdbox_ioctls_only() {
        let x86 = AUDIT_ARCH_X86_64;
        let notif = libc::SECCOMP_RET_USER_NOTIF;
        let allow = libc::SECCOMP_RET_ALLOW;
        assert_eq!(run(libc::SYS_openat as u32, x86, 0), notif);
        assert_eq!(run(libc::SYS_open as u32, x86, 0), notif);
        assert_eq!(run(libc::SYS_openat2 as u32, x86, 0), notif);
        assert_eq!(run(libc::SYS_read as u32, x86, 0), allow);
        assert_eq!(run(libc::SYS_ftruncate as u32, x86, 0), allow);
        assert_eq!(run(libc::SYS_fallocate as u32, x86, 0), allow);
        let fcntl = libc::SYS_fcntl as u32;
        assert_eq!(run(fcntl, x86, libc::F_ADD_SEALS as u64), allow);
        let ioctl = libc::SYS_ioctl as u32;
        for request in 0x2E00..=0x2E05u64 {
            assert_eq!(run(ioctl, x86, request), notif);
            // The upper half of the request is ignored, as by the kernel.
            assert_eq!(run(ioctl, x86, request | 0xffff_ffff_0000_0000), notif);
        }
        for request in [0x2DFF, 0x2E06, 0x5401, 0] {
            assert_eq!(run(ioctl, x86, request), allow);
        }
        assert_eq!(run(0, 0x4000_0003, 0), libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(
            run(X32_SYSCALL_BIT | 257, x86, 0),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn notifies_opens_and_liveupdate_ioctls_only() {
        let program = program(EmulatedDevice::Liveupdate);
        let run = |nr: i64, arg1: u64| run_on(&program, nr as u32, AUDIT_ARCH_X86_64, arg1);
        let notif = libc::SECCOMP_RET_USER_NOTIF;
        let allow = libc::SECCOMP_RET_ALLOW;
        for nr in [
            libc::SYS_openat,
            libc::SYS_open,
            libc::SYS_openat2,
            libc::SYS_ftruncate,
            libc::SYS_fallocate,
        ] {
            assert_eq!(run(nr, 0), notif);
        }
        assert_eq!(run(libc::SYS_read, 0xBA00), allow);
        assert_eq!(run(libc::SYS_truncate, 0), allow);
        // fcntl only for F_ADD_SEALS.
        let add_seals = libc::F_ADD_SEALS as u64;
        assert_eq!(run(libc::SYS_fcntl, add_seals), notif);
        for cmd in [
            libc::F_GETFL,
            libc::F_SETFD,
            libc::F_GET_SEALS,
            libc::F_DUPFD_CLOEXEC,
        ] {
            assert_eq!(run(libc::SYS_fcntl, cmd as u64), allow, "{cmd}");
        }
        assert_eq!(run(libc::SYS_ioctl, add_seals), allow);
        // Every request of type 0xBA: the kernel's table decodes them all.
        for request in [
            0xBA00,
            0xBA01,
            0xBA40,
            0xBA41,
            0xBA42,
            0xBA43,
            0xBA4F,
            0xBAFF,
            0xC048_BA43,
        ] {
            assert_eq!(run(libc::SYS_ioctl, request), notif, "{request:#x}");
            assert_eq!(run(libc::SYS_ioctl, request | 0xffff_ffff_0000_0000), notif);
        }
        // FDBox's requests are not the emulated device's now.
        for request in [0xB9FF, 0xBB00, 0x2E00, 0x2E05, 0x5401, 0xC048_B943] {
            assert_eq!(run(libc::SYS_ioctl, request), allow, "{request:#x}");
        }
    }
}
