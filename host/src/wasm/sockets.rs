//! TCP sockets a guest can box: the host types behind the WIT
//! `tcp-listener` and `tcp-connection`, and the `wasi:io` streams and
//! pollables over them.
//!
//! wasmtime-wasi's own `tcp-socket` keeps its fd private, and its streams
//! read ahead into a buffer on a background task: bytes read that way
//! would be lost when the connection moves into a box. These streams make
//! non-blocking calls on the socket only when the guest asks
//! ([`InputStream::read`] reads at most what it asked for), so whatever the
//! guest has not read is still in the kernel's socket buffer when the fd
//! goes into a box; output the guest has written is on the socket before
//! its stream is gone ([`OutputStream::cancel`] waits for it).
//!
//! Readiness comes from tokio's reactor ([`AsyncFd`]). A socket registers
//! with the current tokio runtime, that of an async Wasmtime host (the
//! `wasmtime_wasi::p2::add_to_linker_async` setup `fdbox run` uses), or,
//! in a sync host, with the runtime wasmtime-wasi keeps for itself
//! ([`wasmtime_wasi::runtime::with_ambient_tokio_runtime`]), which is also the
//! one its sync `wasi:io/poll` waits in: so the pollables work in both.

use crate::{Error, Handle, HandleKind};
use bytes::{Bytes, BytesMut};
use std::io::{self, Read, Write};
use std::net::{TcpListener as StdListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// The std socket types these wrappers register with tokio: each owns its
/// fd, and `as_raw_fd` returns that same fd for its whole life (what
/// [`AsyncFd::register`] requires). Implemented for those two only.
trait Socket: AsFd + AsRawFd + Into<OwnedFd> {}
impl Socket for StdListener {}
impl Socket for TcpStream {}

/// The most a read returns, and the most a write may buffer.
const CHUNK: usize = 64 * 1024;

/// Register `socket` with the reactor of the current tokio runtime, or of
/// wasmtime-wasi's own runtime where there is none (a sync host).
fn register<T: Socket>(socket: T) -> Result<Arc<AsyncFd<T>>, (Error, T)> {
    if let Err(e) = rustix::io::ioctl_fionbio(&socket, true) {
        return Err((e.into(), socket));
    }
    // SAFETY: `T` is one of the `Socket` types, which own their fd and
    // report it unchanged until they are dropped or taken back with
    // `into_inner`. On failure (no room in epoll, say) the socket comes back.
    wasmtime_wasi::runtime::with_ambient_tokio_runtime(|| unsafe { AsyncFd::register(socket) })
        .map(Arc::new)
        .map_err(|e| {
            let (socket, error) = e.into_parts();
            (Error::Device(error), socket)
        })
}

/// Whether `socket` has `events` now: tokio's readiness may be stale (an
/// edge seen before another reader took the data), so it is checked before
/// a pollable reports ready.
fn has_events(socket: impl AsFd, events: rustix::event::PollFlags) -> bool {
    let mut fds = [rustix::event::PollFd::new(&socket, events)];
    matches!(rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default())), Ok(n) if n > 0)
}

/// Wait until `socket` really has `events`, clearing stale readiness.
async fn wait_for<T: Socket>(socket: &AsyncFd<T>, interest: Interest) {
    use rustix::event::PollFlags;
    let events = if interest.is_readable() {
        PollFlags::IN | PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR
    } else {
        PollFlags::OUT | PollFlags::HUP | PollFlags::ERR
    };
    loop {
        let Ok(mut guard) = socket.ready(interest).await else {
            // The reactor is gone: say ready, so the next call reports it.
            return;
        };
        if has_events(socket.get_ref(), events) {
            return;
        }
        guard.clear_ready_matching(if interest.is_readable() {
            tokio::io::Ready::READABLE
        } else {
            tokio::io::Ready::WRITABLE
        });
    }
}

/// A duplicate of `socket` as a handle of `kind`, for a box: the guest's
/// resource (and its streams) stays as it is until the put succeeded.
fn boxed_copy<T: Socket>(socket: &AsyncFd<T>, kind: HandleKind) -> Result<Handle, Error> {
    let fd = rustix::io::fcntl_dupfd_cloexec(socket.get_ref(), 0)?;
    Ok(Handle::from_parts(fd, kind, crate::Access::ALL))
}

/// A socket of `kind` registered from `handle`, or the handle back.
fn from_handle<T: Socket>(
    handle: Handle,
    kind: HandleKind,
    wrap: fn(OwnedFd) -> T,
) -> Result<Arc<AsyncFd<T>>, (Error, Handle)> {
    if handle.kind() != kind {
        let error = Error::KindNotSupported(handle.kind());
        return Err((error, handle));
    }
    let access = handle.access();
    register(wrap(handle.into_fd()))
        .map_err(|(e, socket)| (e, Handle::from_parts(socket.into(), kind, access)))
}

/// The host side of a guest's `tcp-listener`.
pub struct TcpListener(Arc<AsyncFd<StdListener>>);

impl TcpListener {
    /// Wrap a listening socket for a guest.
    pub fn new(listener: StdListener) -> Result<Self, (Error, StdListener)> {
        register(listener).map(Self)
    }

    /// A duplicate of the listener, as a handle for a box.
    pub fn boxed_copy(&self) -> Result<Handle, Error> {
        boxed_copy(&self.0, HandleKind::TcpListener)
    }

    /// The shared registration, alive as long as the guest holds the
    /// listener (or a pollable on it).
    pub(crate) fn registration(&self) -> &Arc<AsyncFd<StdListener>> {
        &self.0
    }

    /// A listener of a handle of that kind, or the handle back.
    pub fn from_handle(handle: Handle) -> Result<Self, (Error, Handle)> {
        from_handle(handle, HandleKind::TcpListener, StdListener::from).map(Self)
    }

    /// Accept a waiting connection, if any.
    pub fn accept(&self) -> Result<Option<TcpConnection>, Error> {
        match self.0.get_ref().accept() {
            Ok((stream, _)) => TcpConnection::new(stream).map(Some).map_err(|(e, _)| e),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(Error::Device(e)),
        }
    }

    /// The local address, `ip:port`.
    pub fn local_address(&self) -> Result<String, Error> {
        Ok(self
            .0
            .get_ref()
            .local_addr()
            .map_err(Error::Device)?
            .to_string())
    }
}

#[async_trait::async_trait]
impl Pollable for TcpListener {
    async fn ready(&mut self) {
        wait_for(&self.0, Interest::READABLE).await
    }
}

/// The host side of a guest's `tcp-connection`.
pub struct TcpConnection(Arc<AsyncFd<TcpStream>>);

impl TcpConnection {
    /// Wrap a connected socket for a guest.
    pub fn new(stream: TcpStream) -> Result<Self, (Error, TcpStream)> {
        register(stream).map(Self)
    }

    /// A duplicate of the connection, as a handle for a box.
    pub fn boxed_copy(&self) -> Result<Handle, Error> {
        boxed_copy(&self.0, HandleKind::TcpConnection)
    }

    /// The shared registration, alive as long as the guest holds the
    /// connection or a stream on it.
    pub(crate) fn registration(&self) -> &Arc<AsyncFd<TcpStream>> {
        &self.0
    }

    /// A connection of a handle of that kind, or the handle back.
    pub fn from_handle(handle: Handle) -> Result<Self, (Error, Handle)> {
        from_handle(handle, HandleKind::TcpConnection, TcpStream::from).map(Self)
    }

    /// The peer's address, `ip:port`.
    pub fn peer_address(&self) -> Result<String, Error> {
        Ok(self
            .0
            .get_ref()
            .peer_addr()
            .map_err(Error::Device)?
            .to_string())
    }

    /// A new pair of streams over the connection.
    pub fn streams(&self) -> (ConnectionInput, ConnectionOutput) {
        (
            ConnectionInput {
                socket: self.0.clone(),
                closed: false,
            },
            ConnectionOutput {
                socket: self.0.clone(),
                pending: BytesMut::new(),
                failed: None,
            },
        )
    }

    /// Shut down the sending side.
    pub fn shutdown_send(&self) -> Result<(), Error> {
        self.0
            .get_ref()
            .shutdown(std::net::Shutdown::Write)
            .map_err(Error::Device)
    }
}

#[async_trait::async_trait]
impl Pollable for TcpConnection {
    async fn ready(&mut self) {
        wait_for(&self.0, Interest::READABLE).await
    }
}

/// Reads a connection on demand (see the module docs).
pub struct ConnectionInput {
    socket: Arc<AsyncFd<TcpStream>>,
    closed: bool,
}

#[async_trait::async_trait]
impl InputStream for ConnectionInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        let mut buf = BytesMut::zeroed(size.min(CHUNK));
        if buf.is_empty() {
            return Ok(Bytes::new());
        }
        match self.socket.get_ref().read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                Err(StreamError::Closed)
            }
            Ok(n) => {
                buf.truncate(n);
                Ok(buf.freeze())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Bytes::new()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                self.closed = true;
                Err(StreamError::Closed)
            }
            Err(e) => Err(StreamError::LastOperationFailed(e.into())),
        }
    }
}

#[async_trait::async_trait]
impl Pollable for ConnectionInput {
    async fn ready(&mut self) {
        if !self.closed {
            wait_for(&self.socket, Interest::READABLE).await
        }
    }
}

/// Writes to a connection, buffering what the socket does not take at once
/// (at most 64 KiB) and writing it before the stream is dropped.
pub struct ConnectionOutput {
    socket: Arc<AsyncFd<TcpStream>>,
    pending: BytesMut,
    failed: Option<StreamError>,
}

impl ConnectionOutput {
    /// Write what is pending without blocking.
    fn push(&mut self) -> StreamResult<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        while !self.pending.is_empty() {
            match self.socket.get_ref().write(&self.pending) {
                Ok(n) => {
                    let _ = self.pending.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    self.pending.clear();
                    return Err(StreamError::Closed);
                }
                Err(e) => {
                    self.pending.clear();
                    return Err(StreamError::LastOperationFailed(e.into()));
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl OutputStream for ConnectionOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if self.pending.len() + bytes.len() > CHUNK {
            return Err(StreamError::trap("write exceeded the permitted size"));
        }
        self.pending.extend_from_slice(&bytes);
        self.push()
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.push()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.push()?;
        Ok(CHUNK - self.pending.len())
    }

    async fn cancel(&mut self) {
        // What the guest wrote reaches the socket before the stream goes.
        self.ready().await;
    }
}

#[async_trait::async_trait]
impl Pollable for ConnectionOutput {
    async fn ready(&mut self) {
        loop {
            if let Err(e) = self.push() {
                self.failed = Some(e);
                return;
            }
            if self.pending.is_empty() {
                return;
            }
            wait_for(&self.socket, Interest::WRITABLE).await;
        }
    }
}
