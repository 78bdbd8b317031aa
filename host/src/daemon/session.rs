//! Serving the holder: the accept loop (one thread per connection, peers
//! checked with SO_PEERCRED) and the per-connection session that speaks the
//! protocol of [`crate::device::daemon::wire`] and turns each request into
//! one of [`Holder`]'s ops.

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

/// How often [`serve_until`] looks at its stop flag when no peer connects.
const STOP_POLL: Duration = Duration::from_millis(100);

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

/// Accept connections on `listener` forever, one thread each. Peers of
/// another user (other than root) are refused before anything is read.
pub fn serve(holder: &Arc<Holder>, listener: OwnedFd) -> io::Result<()> {
    serve_until(holder, listener.as_fd(), &AtomicBool::new(false))
}

/// Accept connections on `listener`, one thread each, until `stop` is
/// set (it is looked at least every 100 ms, and when a signal interrupts
/// the wait). Connections accepted so far go on being served. The
/// listener may be non-blocking (systemd passes its sockets so).
pub fn serve_until(
    holder: &Arc<Holder>,
    listener: BorrowedFd<'_>,
    stop: &AtomicBool,
) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    use rustix::io::Errno;
    let me = rustix::process::geteuid();
    let wait = Timespec::try_from(STOP_POLL).expect("a short timeout");
    let mut refusals = Refusals::default();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut ready = [PollFd::new(&listener, PollFlags::IN)];
        match rustix::event::poll(&mut ready, Some(&wait)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let conn = match rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC) {
            Ok(conn) => conn,
            Err(Errno::INTR | Errno::CONNABORTED | Errno::AGAIN) => continue,
            Err(Errno::MFILE | Errno::NFILE) => {
                refusals.note("out of fds: cannot accept a connection");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match rustix::net::sockopt::socket_peercred(&conn) {
            Ok(cred) if cred.uid == me || cred.uid.is_root() => {
                tracing::debug!(pid = cred.pid.as_raw_nonzero().get(), "peer connected");
                // Counted in before the thread exists, so an upgrade
                // that starts now waits for it.
                let id = match holder.register(&conn, cred.uid.as_raw()) {
                    Ok(id) => id,
                    Err(NotServed::Quiescing) => continue,
                    Err(e) => {
                        refusals.note(&format!("refused a connection: {e}"));
                        continue;
                    }
                };
                let served = holder.clone();
                // Out of threads (RLIMIT_NPROC, a cgroup's pids.max,
                // TasksMax) refuses this connection; the daemon and what it
                // holds carry on.
                let spawned = std::thread::Builder::new()
                    .name("fdbox-session".into())
                    .spawn(move || serve_registered(&served, conn, id));
                if let Err(e) = spawned {
                    // The closure, and the connection in it, are dropped.
                    drop(holder.registered(id));
                    refusals.note(&format!("refused a connection: cannot start a thread: {e}"));
                }
            }
            Ok(cred) => tracing::warn!(
                uid = cred.uid.as_raw(),
                pid = cred.pid.as_raw_nonzero().get(),
                "refused a peer of another user"
            ),
            Err(e) => tracing::warn!("refused a peer whose credentials are unknown: {e}"),
        }
    }
}

/// Serve one connection until the peer leaves or breaks the protocol
/// (or the holder quiesces for an upgrade).
pub fn serve_connection(holder: &Holder, conn: OwnedFd) {
    let uid = rustix::net::sockopt::socket_peercred(&conn).map_or(u32::MAX, |c| c.uid.as_raw());
    match holder.register(&conn, uid) {
        Ok(id) => serve_registered(holder, conn, id),
        Err(e) => tracing::debug!("not serving a connection: {e}"),
    }
}

fn serve_registered(holder: &Holder, conn: OwnedFd, id: u64) {
    // Dropped last: the upgrade sees the session end only once what it
    // lent is back in its box and its connection is closed.
    let _registered = holder.registered(id);
    serve_session(holder, conn);
}

fn serve_session(holder: &Holder, conn: OwnedFd) {
    let mut session = Session {
        holder,
        conn: conn.as_fd(),
        buf: Vec::new(),
        out: Vec::new(),
        staged_put: Vec::new(),
        batch_records: 0,
        refused_batch: None,
        staged_get: Vec::new(),
        lent: None,
        op: None,
    };
    match session.run() {
        Ok(()) | Err(SessionEnd::Closed) => tracing::debug!("peer left"),
        Err(SessionEnd::Upgrading) => {
            tracing::debug!("closing a connection: the daemon is upgrading")
        }
        Err(SessionEnd::Protocol(e)) => {
            tracing::warn!("closing a connection that broke the protocol: {e}");
            session.reply(Status::ProtocolError, Vec::new(), e.to_string());
        }
        Err(SessionEnd::Io(e)) => tracing::warn!("connection failed: {e}"),
        Err(SessionEnd::NoHello) => {
            tracing::debug!("closing a connection that sent no HELLO in time")
        }
    }
    session.give_back_lent();
    // A batch cut off midway: its fds close with the session.
    holder.unstage(session.staged_put.len());
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
    conn: BorrowedFd<'a>,
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

impl<'a> Session<'a> {
    fn recv(&mut self) -> Result<(Frame, Vec<OwnedFd>), SessionEnd> {
        match transport::recv(self.conn, &mut self.buf) {
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
        self.holder.unstage(self.staged_put.len());
        self.staged_put.clear();
        self.refused_batch.get_or_insert(error);
    }

    fn run(&mut self) -> Result<(), SessionEnd> {
        // A connection that never says HELLO is dropped: it would hold a
        // connection slot (and a thread) for nothing.
        use rustix::net::sockopt::{Timeout, set_socket_timeout};
        set_socket_timeout(self.conn, Timeout::Recv, Some(self.holder.hello_timeout()))
            .map_err(|e| SessionEnd::Io(e.into()))?;
        let (hello, _) = match self.recv() {
            Err(SessionEnd::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(SessionEnd::NoHello);
            }
            other => other?,
        };
        set_socket_timeout(self.conn, Timeout::Recv, None).map_err(|e| SessionEnd::Io(e.into()))?;
        if hello.head != Head::Request(Op::Hello) {
            return Err(ProtocolError::NoHello.into());
        }
        if hello.arg != wire::VERSION {
            return Err(ProtocolError::Version(hello.arg).into());
        }
        let kinds = self.holder.boxes().capabilities().kinds;
        self.reply(Status::Ok, Vec::new(), wire::hello_detail(kinds));
        loop {
            let (frame, fds) = self.recv()?;
            let Head::Request(op) = frame.head else {
                unreachable!("decode_request")
            };
            if self.lent.is_some() != (op == Op::GetAck) {
                return Err(ProtocolError::AckExpected(op).into());
            }
            self.handle(op, frame, fds)?;
        }
    }

    fn handle(&mut self, op: Op, frame: Frame, fds: Vec<OwnedFd>) -> Result<(), SessionEnd> {
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
                    match self.holder.stage(fds.len()) {
                        Ok(()) => self.staged_put.extend(frame.records.into_iter().zip(fds)),
                        Err(e) => self.refuse_batch(e),
                    }
                }
                if more {
                    return Ok(());
                }
                self.batch_records = 0;
                let staged = std::mem::take(&mut self.staged_put);
                self.holder.unstage(staged.len());
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
                let result = self.get(&frame.box_name, names);
                if self.lent.is_none() {
                    self.op = None;
                }
                return result;
            }
            _ => self.simple(op, &frame.box_name),
        };
        match result {
            Ok(records) => self.reply_all(records),
            Err(e) => self.reply(Status::Failed(e.code()), Vec::new(), e.to_string()),
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
                Ok((name(&record.name)?, handle))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.holder.put(&box_name, entries, caller_limit)
    }

    fn get(&mut self, box_name: &[u8], records: Vec<Record>) -> Result<(), SessionEnd> {
        let holder = self.holder;
        let taken = name(box_name).and_then(|box_name| {
            let names = records
                .iter()
                .map(|r| name(&r.name))
                .collect::<Result<Vec<_>, _>>()?;
            // Lent until the peer acknowledges: if it vanishes first, the
            // entries go back into the box; meanwhile the fd store keeps
            // them in it.
            holder.lend(box_name, names)
        });
        let (id, lent) = match taken {
            Ok(taken) => taken,
            Err(e) => {
                self.reply(Status::Failed(e.code()), Vec::new(), e.to_string());
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
            .map_err(SessionEnd::Io)?;
        }
        for (i, chunk) in chunks.into_iter().enumerate() {
            let records = chunk
                .iter()
                .map(|(name, h)| Record::entry(name, h))
                .collect();
            let mut frame = Frame::reply(Status::Ok, records, String::new());
            frame.flags = if i == last { 0 } else { MORE };
            let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|(_, h)| h.fd()).collect();
            send_frame(self.conn, &mut self.out, &frame, &fds).map_err(SessionEnd::Io)?;
        }
        Ok(())
    }

    /// Put what the peer never acknowledged back where it was.
    fn give_back_lent(&mut self) {
        if let Some(id) = self.lent.take() {
            self.holder.give_back(id);
        }
    }

    fn reply(&mut self, status: Status, records: Vec<Record>, detail: String) {
        let frame = Frame::reply(status, records, detail);
        if let Err(e) = send_frame(self.conn, &mut self.out, &frame, &[]) {
            tracing::debug!("cannot reply: {e}");
        }
    }

    /// A reply of any length: split into frames of at most
    /// `MAX_FDS_PER_FRAME` records.
    fn reply_all(&mut self, mut records: Vec<Record>) {
        while records.len() > MAX_FDS_PER_FRAME {
            let rest = records.split_off(MAX_FDS_PER_FRAME);
            let mut frame = Frame::reply(
                Status::Ok,
                std::mem::replace(&mut records, rest),
                String::new(),
            );
            frame.flags = MORE;
            if send_frame(self.conn, &mut self.out, &frame, &[]).is_err() {
                return;
            }
        }
        self.reply(Status::Ok, records, String::new());
    }
}

fn send_frame(
    conn: BorrowedFd<'_>,
    out: &mut Vec<u8>,
    frame: &Frame,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    frame.encode(out);
    transport::send(conn, out, fds)
}

fn name(bytes: &[u8]) -> Result<Name, Error> {
    let s = std::str::from_utf8(bytes).map_err(|_| Error::InvalidName {
        name: String::from_utf8_lossy(bytes).into_owned(),
        reason: "it is not UTF-8",
    })?;
    Name::new(s)
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
