//! Serving the holder: one event loop (tokio, on one thread) accepts
//! connections, checks each peer with SO_PEERCRED before anything is read,
//! and serves every connection as a task of its own that speaks the
//! protocol of [`crate::device::daemon::wire`] and turns each request into
//! one of [`Holder`]'s ops. An idle connection costs a socket and a few
//! hundred bytes, not a thread.
//!
//! The holder's ops run on the loop's thread: they are in-process and
//! short (an op on the boxes under the op lock, and one message to
//! systemd's fd store after a change), and a peer that is slow to send or
//! to read only ever waits in its own task.

use super::budget::Client;
use super::holder::{Holder, NotServed, OpGuard};
use crate::device::daemon::transport::{self, RecvError};
use crate::device::daemon::wire::{
    self, Frame, Head, MAX_FDS_PER_FRAME, MORE, Op, Record, Status, WireError,
};
use crate::device::{BoxStatus, EntryInfo};
use crate::{Error, Handle, Name};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// How often [`serve_until`] looks at its stop flag when no peer connects.
const STOP_POLL: Duration = Duration::from_millis(100);

/// The most buffer space a connection keeps between requests.
const IDLE_BUFFER: usize = 4096;

/// Connections accepted in a row before the sessions get a turn.
const ACCEPT_BURST: usize = 64;

/// How long accepting pauses when the daemon is out of fds (the
/// connections already served go on meanwhile).
const OUT_OF_FDS_PAUSE: Duration = Duration::from_millis(50);

/// Refusals of connections, logged once per interval with how many there
/// were, not once per attempt: a flood must not flood the log too.
#[derive(Default)]
struct Refusals {
    last: Option<std::time::Instant>,
    since: usize,
}

impl Refusals {
    const INTERVAL: Duration = Duration::from_secs(10);

    fn note(&mut self, what: &str) {
        self.since += 1;
        if self.last.is_none_or(|at| at.elapsed() >= Self::INTERVAL) {
            tracing::warn!(
                "{what} ({} refused in the last {} s)",
                self.since,
                Self::INTERVAL.as_secs()
            );
            self.last = Some(std::time::Instant::now());
            self.since = 0;
        }
    }
}

/// Serve connections on `listener` forever. Peers of another user (other
/// than root) are refused before anything is read.
pub fn serve(holder: &Arc<Holder>, listener: OwnedFd) -> io::Result<()> {
    serve_until(holder, listener.as_fd(), &AtomicBool::new(false))
}

/// Serve connections on `listener` on this thread until `stop` is set (it
/// is looked at at least every 100 ms). Connections accepted so far go on
/// being served, on a thread of their own once this returns, until they
/// end or [`Holder::quiesce`] closes them. The listener is made
/// non-blocking (systemd passes its sockets so anyway).
pub fn serve_until(
    holder: &Arc<Holder>,
    listener: BorrowedFd<'_>,
    stop: &AtomicBool,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    // Counted as a session until the runtime (and every fd it has) is gone.
    let loop_id = holder.register_loop();
    let (alive, mut sessions_ended) = mpsc::channel::<()>(1);
    let served = runtime.block_on(accept_until(holder, listener, stop, alive));
    // Every session task holds a sender: all gone, no session is left.
    let no_sessions = matches!(
        sessions_ended.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    );
    let finish = {
        let holder = holder.clone();
        move || {
            runtime.block_on(sessions_ended.recv());
            drop(runtime);
            drop(holder.registered(loop_id));
        }
    };
    if no_sessions {
        finish();
    } else if let Err(e) = std::thread::Builder::new()
        .name("fdbox-sessions".into())
        .spawn(finish)
    {
        // The closure, and the runtime with every session in it, were
        // dropped: their loans went back, their connections closed.
        tracing::warn!("closed every connection: cannot start a thread to go on serving them: {e}");
        drop(holder.registered(loop_id));
    }
    served
}

async fn accept_until(
    holder: &Arc<Holder>,
    listener: BorrowedFd<'_>,
    stop: &AtomicBool,
    alive: mpsc::Sender<()>,
) -> io::Result<()> {
    use rustix::io::Errno;
    use rustix::net::SocketFlags;
    let listener = listener.try_clone_to_owned()?;
    rustix::io::ioctl_fionbio(&listener, true)?;
    // SAFETY: the AsyncFd owns the fd, which stays open and the same until
    // it drops.
    let listener = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }?;
    let me = rustix::process::geteuid();
    let mut refusals = Refusals::default();
    while !stop.load(Ordering::SeqCst) {
        let mut ready = match tokio::time::timeout(STOP_POLL, listener.readable()).await {
            Ok(ready) => ready?,
            Err(_) => continue,
        };
        for _ in 0..ACCEPT_BURST {
            match rustix::net::accept_with(
                listener.get_ref(),
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            ) {
                Ok(conn) => admit(holder, conn, me, &mut refusals, &alive),
                Err(Errno::AGAIN) => {
                    ready.clear_ready();
                    break;
                }
                Err(Errno::INTR | Errno::CONNABORTED) => {}
                // Out of fds or memory: the connection waits in the
                // backlog; what is served goes on.
                Err(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => {
                    refusals.note("out of fds: cannot accept a connection");
                    tokio::time::sleep(OUT_OF_FDS_PAUSE).await;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        drop(ready);
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Serve `conn` as a task of its own, if its peer is this user or root and
/// the connection limits let it in.
fn admit(
    holder: &Arc<Holder>,
    conn: OwnedFd,
    me: rustix::process::Uid,
    refusals: &mut Refusals,
    alive: &mpsc::Sender<()>,
) {
    let cred = match rustix::net::sockopt::socket_peercred(&conn) {
        Ok(cred) if cred.uid == me || cred.uid.is_root() => cred,
        Ok(cred) => {
            return refusals.note(&format!(
                "refused a peer of another user (uid {}, pid {})",
                cred.uid.as_raw(),
                cred.pid.as_raw_nonzero().get()
            ));
        }
        Err(e) => {
            return refusals.note(&format!(
                "refused a peer whose credentials are unknown: {e}"
            ));
        }
    };
    let client = Client {
        uid: cred.uid.as_raw(),
        pid: cred.pid.as_raw_nonzero().get(),
    };
    tracing::debug!(pid = client.pid, "peer connected");
    let conn = Arc::new(conn);
    // Counted in before its task exists, so an upgrade that starts now
    // waits for it.
    let id = match holder.register(conn.clone(), client.uid) {
        Ok(id) => id,
        Err(NotServed::Quiescing) => return,
        Err(e) => return refusals.note(&format!("refused a connection: {e}")),
    };
    let registration = Registration {
        holder: holder.clone(),
        id,
    };
    let alive = alive.clone();
    tokio::spawn(async move {
        serve_session(&registration.holder, conn, client).await;
        // Counted out (and the connection closed) only now, with what it
        // lent back in its box; dropped with the task if it never ran.
        drop(registration);
        drop(alive);
    });
}

/// A connection [`Holder::register`] counted in, counted out when dropped.
struct Registration {
    holder: Arc<Holder>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        drop(self.holder.registered(self.id));
    }
}

/// Serve one connection on this thread until the peer leaves or breaks the
/// protocol (or the holder quiesces for an upgrade).
pub fn serve_connection(holder: &Holder, conn: OwnedFd) {
    let client = match rustix::net::sockopt::socket_peercred(&conn) {
        Ok(cred) => Client {
            uid: cred.uid.as_raw(),
            pid: cred.pid.as_raw_nonzero().get(),
        },
        Err(e) => return tracing::warn!("not serving a connection whose peer is unknown: {e}"),
    };
    let runtime = rustix::io::ioctl_fionbio(&conn, true)
        .map_err(io::Error::from)
        .and_then(|()| {
            tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
        });
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return tracing::warn!("not serving a connection: {e}"),
    };
    let conn = Arc::new(conn);
    match holder.register(conn.clone(), client.uid) {
        Ok(id) => {
            // Dropped last: the upgrade sees the session end only once what
            // it lent is back in its box and its connection is closed.
            let _registered = holder.registered(id);
            runtime.block_on(serve_session(holder, conn, client));
        }
        Err(e) => tracing::debug!("not serving a connection: {e}"),
    }
}

async fn serve_session(holder: &Holder, conn: Arc<OwnedFd>, client: Client) {
    // SAFETY: the AsyncFd holds a reference to the fd, which therefore stays
    // open and the same until it drops (the holder's other reference is
    // only ever shut down, never closed before this one goes).
    let conn = match unsafe { AsyncFd::register(conn) } {
        Ok(conn) => conn,
        Err(e) => return tracing::warn!("cannot serve a connection: {e}"),
    };
    let mut session = Session {
        holder,
        client,
        conn: &conn,
        buf: Vec::new(),
        out: Vec::new(),
        staged_put: Vec::new(),
        batch_records: 0,
        refused_batch: None,
        staged_get: Vec::new(),
        lent: None,
        op: None,
    };
    match session.run().await {
        Ok(()) | Err(SessionEnd::Closed) => tracing::debug!("peer left"),
        Err(SessionEnd::Upgrading) => {
            tracing::debug!("closing a connection: the daemon is upgrading")
        }
        Err(SessionEnd::Protocol(e)) => {
            tracing::warn!("closing a connection that broke the protocol: {e}");
            // Once, without waiting: a peer that does not read gets nothing.
            let frame = Frame::reply(Status::ProtocolError, Vec::new(), e.to_string());
            frame.encode(&mut session.out);
            if let Err(e) = transport::send(conn.get_ref().as_fd(), &session.out, &[]) {
                tracing::debug!("cannot reply: {e}");
            }
        }
        Err(SessionEnd::Io(e)) => tracing::warn!("connection failed: {e}"),
        Err(SessionEnd::NoHello) => {
            tracing::debug!("closing a connection that sent no HELLO in time")
        }
    }
    // `session` drops first: what it lent goes back, what it staged is
    // counted out; then the connection stops being watched.
}

/// Why a session ended.
enum SessionEnd {
    Closed,
    /// No HELLO within the holder's timeout.
    NoHello,
    /// The holder quiesces for an upgrade: the request just read is dropped
    /// unapplied and unanswered, so the peer may send it again.
    Upgrading,
    Protocol(ProtocolError),
    Io(io::Error),
}

/// A request that breaks the protocol (as opposed to one the device refuses).
#[derive(Debug, thiserror::Error)]
enum ProtocolError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the first frame must be HELLO")]
    NoHello,
    #[error("protocol version {0} is not supported; this daemon speaks version {v}", v = wire::VERSION)]
    Version(u32),
    #[error("{0:?} must follow a GET reply and nothing else may")]
    AckExpected(Op),
    #[error("a batch changed op or box midway")]
    BatchChanged,
    #[error("a batch of {0} entries is larger than any quota")]
    BatchTooLarge(usize),
    #[error(transparent)]
    Recv(RecvError),
}

impl From<RecvError> for SessionEnd {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Closed => SessionEnd::Closed,
            RecvError::Io(e) => SessionEnd::Io(e),
            other => SessionEnd::Protocol(ProtocolError::Recv(other)),
        }
    }
}

impl From<ProtocolError> for SessionEnd {
    fn from(e: ProtocolError) -> Self {
        SessionEnd::Protocol(e)
    }
}

struct Session<'a> {
    holder: &'a Holder,
    /// Who the peer is (for its shares of the fd budget).
    client: Client,
    conn: &'a AsyncFd<Arc<OwnedFd>>,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// Frames of a batch put whose last frame has not arrived (their fds
    /// counted in the holder's budget: [`Holder::stage`]).
    staged_put: Vec<(Record, OwnedFd)>,
    /// Records of the batch so far, refused or not.
    batch_records: usize,
    /// The batch put under way is refused (its fds did not fit): later
    /// frames of it are read and dropped, and its last frame gets this.
    refused_batch: Option<Error>,
    /// Names of a batch get whose last frame has not arrived.
    staged_get: Vec<Record>,
    /// The loan of the last GET, until the peer acknowledges it.
    lent: Option<u64>,
    /// The op being served (a GET until its acknowledgement).
    op: Option<OpGuard<'a>>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.give_back_lent();
        // A batch cut off midway: its fds close with the session.
        self.holder.unstage(self.client, self.staged_put.len());
    }
}

/// Receive one frame from `conn` into `buf`, waiting for it.
async fn recv_frame(
    conn: &AsyncFd<Arc<OwnedFd>>,
    buf: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, RecvError> {
    loop {
        let mut ready = conn.readable().await?;
        match transport::recv(conn.get_ref().as_fd(), buf) {
            Err(RecvError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
            received => return received,
        }
    }
}

impl<'a> Session<'a> {
    async fn recv(&mut self) -> Result<(Frame, Vec<OwnedFd>), SessionEnd> {
        match recv_frame(self.conn, &mut self.buf).await {
            Ok(fds) => {
                let frame =
                    Frame::decode_request(&self.buf, fds.len()).map_err(ProtocolError::from)?;
                Ok((frame, fds))
            }
            // The daemon is out of fds: a PUT frame's fds were dropped by
            // the kernel. The batch is refused with quota-exceeded (the
            // peer still has its own fds); anything else ends the session.
            Err(RecvError::FdsTruncated) => {
                let frame = Frame::decode_request_without_fds(&self.buf)
                    .map_err(|_| SessionEnd::from(RecvError::FdsTruncated))?;
                if frame.head != Head::Request(Op::Put) {
                    return Err(RecvError::FdsTruncated.into());
                }
                self.refuse_batch(Error::QuotaExceeded(
                    "the daemon ran out of fds receiving this batch (its RLIMIT_NOFILE); nothing was put"
                        .into(),
                ));
                Ok((frame, Vec::new()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Refuse the batch put under way with `error`: what it staged is
    /// dropped now, and its last frame is answered with `error`.
    fn refuse_batch(&mut self, error: Error) {
        self.holder.unstage(self.client, self.staged_put.len());
        self.staged_put.clear();
        self.refused_batch.get_or_insert(error);
    }

    async fn run(&mut self) -> Result<(), SessionEnd> {
        // A connection that never says HELLO is dropped: it would hold a
        // connection slot for nothing.
        let (hello, _) = tokio::time::timeout(self.holder.hello_timeout(), self.recv())
            .await
            .map_err(|_| SessionEnd::NoHello)??;
        if hello.head != Head::Request(Op::Hello) {
            return Err(ProtocolError::NoHello.into());
        }
        if hello.arg != wire::VERSION {
            return Err(ProtocolError::Version(hello.arg).into());
        }
        let kinds = self.holder.boxes().capabilities().kinds;
        self.reply(Status::Ok, Vec::new(), wire::hello_detail(kinds))
            .await;
        loop {
            let (frame, fds) = self.recv().await?;
            let Head::Request(op) = frame.head else {
                unreachable!("decode_request")
            };
            if self.lent.is_some() != (op == Op::GetAck) {
                return Err(ProtocolError::AckExpected(op).into());
            }
            self.handle(op, frame, fds).await?;
            // An idle connection keeps no large buffer (a frame may be 64
            // KiB, and there may be thousands of connections).
            for buf in [&mut self.buf, &mut self.out] {
                if buf.capacity() > IDLE_BUFFER {
                    *buf = Vec::new();
                }
            }
        }
    }

    async fn handle(&mut self, op: Op, frame: Frame, fds: Vec<OwnedFd>) -> Result<(), SessionEnd> {
        let batching = self.batch_records > 0 || !self.staged_get.is_empty();
        if batching && !matches!(op, Op::Put | Op::Get) {
            return Err(ProtocolError::BatchChanged.into());
        }
        if op == Op::GetAck {
            let id = self.lent.take().expect("checked by run");
            // Forgotten by the store with the loan; the fds close here.
            self.holder.acknowledge(id);
            self.op = None;
            return Ok(());
        }
        let more = frame.flags & MORE != 0;
        let last_frame = !(more && matches!(op, Op::Put | Op::Get));
        if last_frame {
            self.op = Some(self.holder.enter().ok_or(SessionEnd::Upgrading)?);
        }
        let result = match op {
            Op::Hello => return Err(ProtocolError::NoHello.into()),
            Op::Put => {
                if !self.staged_get.is_empty() {
                    return Err(ProtocolError::BatchChanged.into());
                }
                self.batch_records += frame.records.len();
                self.check_batch_size(self.batch_records)?;
                if self.refused_batch.is_none() {
                    match self.holder.stage(self.client, fds.len()) {
                        Ok(()) => self.staged_put.extend(frame.records.into_iter().zip(fds)),
                        Err(e) => self.refuse_batch(e),
                    }
                }
                if more {
                    return Ok(());
                }
                self.batch_records = 0;
                let staged = std::mem::take(&mut self.staged_put);
                self.holder.unstage(self.client, staged.len());
                match self.refused_batch.take() {
                    Some(error) => Err(error),
                    None => {
                        let caller_limit = (frame.arg != 0).then_some(frame.arg as usize);
                        self.put(&frame.box_name, staged, caller_limit)
                            .map(|()| Vec::new())
                    }
                }
            }
            Op::Get => {
                if self.batch_records > 0 {
                    return Err(ProtocolError::BatchChanged.into());
                }
                self.staged_get.extend(frame.records);
                self.check_batch_size(self.staged_get.len())?;
                if more {
                    return Ok(());
                }
                let names = std::mem::take(&mut self.staged_get);
                let result = self.get(&frame.box_name, names).await;
                if self.lent.is_none() {
                    self.op = None;
                }
                return result;
            }
            _ => self.simple(op, &frame.box_name),
        };
        match result {
            Ok(records) => self.reply_all(records).await,
            Err(e) => {
                self.reply(Status::Failed(e.code()), Vec::new(), e.to_string())
                    .await
            }
        }
        self.op = None;
        Ok(())
    }

    fn check_batch_size(&self, len: usize) -> Result<(), ProtocolError> {
        if len > self.holder.max_batch() {
            return Err(ProtocolError::BatchTooLarge(len));
        }
        Ok(())
    }

    /// Every op that moves no fd.
    fn simple(&mut self, op: Op, box_name: &[u8]) -> Result<Vec<Record>, Error> {
        let holder = self.holder;
        let device = holder.boxes();
        if op == Op::Boxes {
            return Ok(device.boxes()?.iter().map(box_record).collect());
        }
        let name = name(box_name)?;
        match op {
            Op::Status => return Ok(vec![box_record(&device.status(&name)?)]),
            Op::Entries => return Ok(device.entries(&name)?.iter().map(entry_record).collect()),
            Op::Create => holder.create_box(&name)?,
            Op::Delete => holder.delete_box(&name)?,
            Op::Seal => holder.seal(&name)?,
            Op::Unseal => holder.unseal(&name)?,
            Op::Hello | Op::Boxes | Op::Put | Op::Get | Op::GetAck => {
                unreachable!("handled by the caller")
            }
        }
        Ok(Vec::new())
    }

    fn put(
        &mut self,
        box_name: &[u8],
        staged: Vec<(Record, OwnedFd)>,
        caller_limit: Option<usize>,
    ) -> Result<(), Error> {
        let box_name = name(box_name)?;
        let entries = staged
            .into_iter()
            .map(|(record, fd)| {
                let kind = wire::kind_from_code(record.kind)
                    .ok_or(Error::UnsupportedHandle("unknown handle kind code"))?;
                let handle = Handle::from_parts(fd, kind, wire::access_from_bits(record.bits));
                Ok((owned_name(record.name)?, handle))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.holder
            .put(self.client, &box_name, entries, caller_limit)
    }

    async fn get(&mut self, box_name: &[u8], records: Vec<Record>) -> Result<(), SessionEnd> {
        let holder = self.holder;
        let taken = name(box_name).and_then(|box_name| {
            let names = records
                .into_iter()
                .map(|r| owned_name(r.name))
                .collect::<Result<Vec<_>, _>>()?;
            // Lent until the peer acknowledges: if it vanishes first, the
            // entries go back into the box; meanwhile the fd store keeps
            // them in it.
            holder.lend(box_name, names)
        });
        let (id, lent) = match taken {
            Ok(taken) => taken,
            Err(e) => {
                self.reply(Status::Failed(e.code()), Vec::new(), e.to_string())
                    .await;
                return Ok(());
            }
        };
        self.lent = Some(id);
        let chunks = lent.entries().chunks(MAX_FDS_PER_FRAME).collect::<Vec<_>>();
        let last = chunks.len().saturating_sub(1);
        if chunks.is_empty() {
            send_frame(
                self.conn,
                &mut self.out,
                &Frame::reply(Status::Ok, Vec::new(), String::new()),
                &[],
            )
            .await
            .map_err(SessionEnd::Io)?;
        }
        for (i, chunk) in chunks.into_iter().enumerate() {
            let flags = if i == last { 0 } else { MORE };
            wire::encode_entries_reply(flags, chunk, &mut self.out);
            let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|(_, h)| h.fd()).collect();
            send_encoded(self.conn, &self.out, &fds)
                .await
                .map_err(SessionEnd::Io)?;
        }
        Ok(())
    }

    /// Put what the peer never acknowledged back where it was.
    fn give_back_lent(&mut self) {
        if let Some(id) = self.lent.take() {
            self.holder.give_back(id);
        }
    }

    async fn reply(&mut self, status: Status, records: Vec<Record>, detail: String) {
        let frame = Frame::reply(status, records, detail);
        if let Err(e) = send_frame(self.conn, &mut self.out, &frame, &[]).await {
            tracing::debug!("cannot reply: {e}");
        }
    }

    /// A reply of any length: split into frames of at most
    /// `MAX_FDS_PER_FRAME` records.
    async fn reply_all(&mut self, mut records: Vec<Record>) {
        while records.len() > MAX_FDS_PER_FRAME {
            let rest = records.split_off(MAX_FDS_PER_FRAME);
            let mut frame = Frame::reply(
                Status::Ok,
                std::mem::replace(&mut records, rest),
                String::new(),
            );
            frame.flags = MORE;
            if send_frame(self.conn, &mut self.out, &frame, &[])
                .await
                .is_err()
            {
                return;
            }
        }
        self.reply(Status::Ok, records, String::new()).await;
    }
}

/// Send one frame, waiting while the peer's socket is full.
async fn send_frame(
    conn: &AsyncFd<Arc<OwnedFd>>,
    out: &mut Vec<u8>,
    frame: &Frame,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    frame.encode(out);
    send_encoded(conn, out, fds).await
}

/// Send one frame already encoded, waiting while the peer's socket is full.
async fn send_encoded(
    conn: &AsyncFd<Arc<OwnedFd>>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    loop {
        let mut ready = conn.writable().await?;
        match transport::send(conn.get_ref().as_fd(), bytes, fds) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
            sent => return sent,
        }
    }
}

fn name(bytes: &[u8]) -> Result<Name, Error> {
    let s = std::str::from_utf8(bytes).map_err(|_| Error::InvalidName {
        name: String::from_utf8_lossy(bytes).into_owned(),
        reason: "it is not UTF-8",
    })?;
    Name::new(s)
}

/// [`name`] of bytes the caller is done with (no copy).
fn owned_name(bytes: Vec<u8>) -> Result<Name, Error> {
    match String::from_utf8(bytes) {
        Ok(s) => Name::new(s),
        Err(e) => name(e.as_bytes()),
    }
}

fn box_record(b: &BoxStatus) -> Record {
    Record {
        name: b.name.as_str().as_bytes().to_vec(),
        kind: 0,
        bits: b.sealed as u8,
        value: b.entries as u64,
    }
}

fn entry_record(e: &EntryInfo) -> Record {
    Record {
        name: e.name.as_str().as_bytes().to_vec(),
        kind: wire::kind_code(e.kind),
        bits: 0,
        value: e.size.map_or(0, |s| s + 1),
    }
}
