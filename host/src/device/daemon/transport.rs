//! Frames over a `SOCK_SEQPACKET` Unix socket, fds with SCM_RIGHTS.

use super::wire::{MAX_FDS_PER_FRAME, MAX_FRAME_LEN};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Why a frame could not be received.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// The frame was longer than any valid frame.
    #[error("frame longer than {MAX_FRAME_LEN} bytes")]
    TooLong,
    /// The kernel dropped fds (over RLIMIT_NOFILE, or too many).
    #[error(
        "fds attached to the frame were dropped by the kernel (MSG_CTRUNC): is RLIMIT_NOFILE too low?"
    )]
    FdsTruncated,
    /// A socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Send one frame with `fds` attached.
pub fn send(socket: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS_PER_FRAME {
        // The kernel would refuse with EINVAL (SCM_MAX_FD); say why instead.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} fds in one message; at most {MAX_FDS_PER_FRAME} travel together",
                fds.len()
            ),
        ));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        let pushed = control.push(SendAncillaryMessage::ScmRights(fds));
        debug_assert!(pushed);
    }
    loop {
        match rustix::net::sendmsg(
            socket,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

thread_local! {
    /// Where frames land: room for the longest frame and one byte more (to
    /// see a longer one), zeroed once per thread rather than once per frame.
    static RECV_SPACE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Receive one frame into `buf` (which then holds exactly the frame); returns
/// its fds (all close-on-exec, so held fds never leak into children).
pub fn recv(socket: BorrowedFd<'_>, buf: &mut Vec<u8>) -> Result<Vec<OwnedFd>, RecvError> {
    RECV_SPACE.with_borrow_mut(|space| {
        space.resize(MAX_FRAME_LEN + 1, 0);
        recv_into(socket, space, buf)
    })
}

fn recv_into(
    socket: BorrowedFd<'_>,
    space: &mut [u8],
    buf: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, RecvError> {
    let mut cmsg_space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME))];
    let mut control = RecvAncillaryBuffer::new(&mut cmsg_space);
    let msg = loop {
        match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(space)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(io::Error::from(e).into()),
        }
    };
    // Take the fds first, so that they are owned (and closed on any error).
    let fds = take_fds(&mut control);
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        // The bytes are whole: keep them, so the receiver can say what it
        // could not take.
        if msg.bytes <= MAX_FRAME_LEN && !msg.flags.contains(ReturnFlags::TRUNC) {
            buf.clear();
            buf.extend_from_slice(&space[..msg.bytes]);
        }
        return Err(RecvError::FdsTruncated);
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Err(RecvError::Closed);
    }
    if msg.bytes > MAX_FRAME_LEN || msg.flags.contains(ReturnFlags::TRUNC) {
        return Err(RecvError::TooLong);
    }
    buf.clear();
    buf.extend_from_slice(&space[..msg.bytes]);
    Ok(fds)
}

/// Every fd a received message carried (SCM_RIGHTS), owned: whatever the
/// caller does next, none of them can leak.
pub fn take_fds(control: &mut RecvAncillaryBuffer<'_>) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    fds
}

/// A new seqpacket socket.
fn socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Connect to the daemon at `path`.
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket()?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(fd)
}

/// Listen at `path` (which must not exist).
pub fn listen(path: &Path) -> io::Result<OwnedFd> {
    let fd = socket()?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&fd, 128)?;
    Ok(fd)
}

/// A connected pair, for tests and in-process daemons.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Borrow every fd of a slice.
pub fn borrow_all<T: AsFd>(fds: &[T]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(AsFd::as_fd).collect()
}
