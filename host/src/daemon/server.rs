//! The holder daemon: keeps boxes and their fds in its own process so they
//! outlive every host process that uses them.

use super::transport::{self, RecvError};
use super::wire::{self, Frame, Head, MAX_FDS_PER_FRAME, MORE, Op, Record, Status, WireError};
use crate::device::{BoxStatus, Device, EntryInfo};
use crate::{Error, Handle, MemoryDevice, Name};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Limits the daemon enforces, whoever the peer is.
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    /// Most boxes at once.
    pub max_boxes: usize,
    /// Most entries in one box.
    pub max_entries_per_box: usize,
    /// Most fds the daemon holds in boxes at once: below RLIMIT_NOFILE, so a
    /// put is refused with quota-exceeded before the kernel would drop fds.
    pub max_held_fds: usize,
}

impl Limits {
    /// Default boxes.
    pub const DEFAULT_MAX_BOXES: usize = 4096;
    /// Default entries per box.
    pub const DEFAULT_MAX_ENTRIES_PER_BOX: usize = 65536;

    /// Defaults, with the fd budget taken from this process's RLIMIT_NOFILE
    /// (less headroom for connections and frames in flight).
    pub fn from_rlimit() -> Self {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let nofile = limit.current.unwrap_or(1 << 20) as usize;
        Self {
            max_boxes: Self::DEFAULT_MAX_BOXES,
            max_entries_per_box: Self::DEFAULT_MAX_ENTRIES_PER_BOX,
            max_held_fds: nofile.saturating_sub(HEADROOM_FDS),
        }
    }
}

/// Fds kept free for listening, connections and one frame in flight each.
const HEADROOM_FDS: usize = 2 * MAX_FDS_PER_FRAME + 64;

/// The daemon's state: the boxes, shared by every connection.
pub struct Holder {
    boxes: MemoryDevice,
    limits: Limits,
    held: AtomicUsize,
}

impl Holder {
    /// An empty holder.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            boxes: MemoryDevice::new(),
            limits,
            held: AtomicUsize::new(0),
        })
    }

    /// The boxes, as a device (for the daemon's own hand-over and tests).
    pub fn boxes(&self) -> &MemoryDevice {
        &self.boxes
    }

    /// Accept connections on `listener` forever, one thread each. Peers of
    /// another user (other than root) are refused before anything is read.
    pub fn serve(self: &Arc<Self>, listener: OwnedFd) -> io::Result<()> {
        let me = rustix::process::geteuid();
        loop {
            let conn = match rustix::net::accept_with(&listener, rustix::net::SocketFlags::CLOEXEC)
            {
                Ok(conn) => conn,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => continue,
                Err(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE) => {
                    tracing::error!("out of fds: cannot accept a connection");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match rustix::net::sockopt::socket_peercred(&conn) {
                Ok(cred) if cred.uid == me || cred.uid.is_root() => {
                    tracing::debug!(pid = cred.pid.as_raw_nonzero().get(), "peer connected");
                    let holder = self.clone();
                    std::thread::spawn(move || holder.serve_connection(conn));
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

    /// Serve one connection until the peer leaves or breaks the protocol.
    pub fn serve_connection(&self, conn: OwnedFd) {
        let mut session = Session {
            holder: self,
            conn: conn.as_fd(),
            buf: Vec::new(),
            out: Vec::new(),
            staged_put: Vec::new(),
            staged_get: Vec::new(),
            lent: None,
        };
        match session.run() {
            Ok(()) | Err(SessionEnd::Closed) => tracing::debug!("peer left"),
            Err(SessionEnd::Protocol(e)) => {
                tracing::warn!("closing a connection that broke the protocol: {e}");
                session.reply(Status::ProtocolError, Vec::new(), e.to_string());
            }
            Err(SessionEnd::Io(e)) => tracing::warn!("connection failed: {e}"),
        }
        session.give_back_lent();
    }

    fn check_put(&self, box_name: &Name, adding: usize) -> Result<(), Error> {
        let status = self.boxes.status(box_name)?;
        if status.sealed {
            return Err(Error::BoxSealed(box_name.clone()));
        }
        if status.entries + adding > self.limits.max_entries_per_box {
            return Err(Error::QuotaExceeded(format!(
                "box {box_name:?} would hold {} entries; the daemon's limit is {} (fdbox daemon --max-entries)",
                status.entries + adding,
                self.limits.max_entries_per_box
            )));
        }
        let held = self.held.load(Ordering::Relaxed);
        if held + adding > self.limits.max_held_fds {
            return Err(Error::QuotaExceeded(format!(
                "the daemon holds {held} fds and may hold {} (its RLIMIT_NOFILE less headroom)",
                self.limits.max_held_fds
            )));
        }
        Ok(())
    }
}

/// Why a session ended.
enum SessionEnd {
    Closed,
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

/// Handles taken out for a peer, kept until it acknowledges receiving them.
struct Lent {
    box_name: Name,
    entries: Vec<(Name, Handle)>,
}

struct Session<'a> {
    holder: &'a Holder,
    conn: BorrowedFd<'a>,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// Frames of a batch put whose last frame has not arrived.
    staged_put: Vec<(Record, OwnedFd)>,
    /// Names of a batch get whose last frame has not arrived.
    staged_get: Vec<Record>,
    lent: Option<Lent>,
}

impl Session<'_> {
    fn recv(&mut self) -> Result<(Frame, Vec<OwnedFd>), SessionEnd> {
        let fds = transport::recv(self.conn, &mut self.buf)?;
        let frame = Frame::decode_request(&self.buf, fds.len()).map_err(ProtocolError::from)?;
        Ok((frame, fds))
    }

    fn run(&mut self) -> Result<(), SessionEnd> {
        let (hello, _) = self.recv()?;
        if hello.head != Head::Request(Op::Hello) {
            return Err(ProtocolError::NoHello.into());
        }
        if hello.arg != wire::VERSION {
            return Err(ProtocolError::Version(hello.arg).into());
        }
        self.reply(Status::Ok, Vec::new(), String::new());
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
        let batching = !self.staged_put.is_empty() || !self.staged_get.is_empty();
        if batching && !matches!(op, Op::Put | Op::Get) {
            return Err(ProtocolError::BatchChanged.into());
        }
        if op == Op::GetAck {
            let lent = self.lent.take().expect("checked by run");
            self.holder
                .held
                .fetch_sub(lent.entries.len(), Ordering::Relaxed);
            return Ok(());
        }
        let more = frame.flags & MORE != 0;
        let result = match op {
            Op::Hello => return Err(ProtocolError::NoHello.into()),
            Op::Put => {
                if !self.staged_get.is_empty() {
                    return Err(ProtocolError::BatchChanged.into());
                }
                self.staged_put.extend(frame.records.into_iter().zip(fds));
                self.check_batch_size(self.staged_put.len())?;
                if more {
                    return Ok(());
                }
                let staged = std::mem::take(&mut self.staged_put);
                self.put(&frame.box_name, staged).map(|()| Vec::new())
            }
            Op::Get => {
                if !self.staged_put.is_empty() {
                    return Err(ProtocolError::BatchChanged.into());
                }
                self.staged_get.extend(frame.records);
                self.check_batch_size(self.staged_get.len())?;
                if more {
                    return Ok(());
                }
                let names = std::mem::take(&mut self.staged_get);
                return self.get(&frame.box_name, names);
            }
            _ => self.simple(op, &frame.box_name),
        };
        match result {
            Ok(records) => self.reply_all(records),
            Err(e) => self.reply(Status::Failed(e.code()), Vec::new(), e.to_string()),
        }
        Ok(())
    }

    fn check_batch_size(&self, len: usize) -> Result<(), ProtocolError> {
        if len > self.holder.limits.max_entries_per_box {
            return Err(ProtocolError::BatchTooLarge(len));
        }
        Ok(())
    }

    /// Every op that moves no fd.
    fn simple(&mut self, op: Op, box_name: &[u8]) -> Result<Vec<Record>, Error> {
        let device = &self.holder.boxes;
        if op == Op::Boxes {
            return Ok(device.boxes()?.iter().map(box_record).collect());
        }
        let name = name(box_name)?;
        match op {
            Op::Create => {
                if device.boxes()?.len() >= self.holder.limits.max_boxes {
                    return Err(Error::QuotaExceeded(format!(
                        "the daemon holds {} boxes, its limit (fdbox daemon --max-boxes)",
                        self.holder.limits.max_boxes
                    )));
                }
                device.create_box(&name)?;
            }
            Op::Delete => {
                let released = device.status(&name)?.entries;
                device.delete_box(&name)?;
                self.holder.held.fetch_sub(released, Ordering::Relaxed);
            }
            Op::Status => return Ok(vec![box_record(&device.status(&name)?)]),
            Op::Entries => return Ok(device.entries(&name)?.iter().map(entry_record).collect()),
            Op::Seal => device.seal(&name)?,
            Op::Unseal => device.unseal(&name)?,
            Op::Hello | Op::Boxes | Op::Put | Op::Get | Op::GetAck => {
                unreachable!("handled by the caller")
            }
        }
        Ok(Vec::new())
    }

    fn put(&mut self, box_name: &[u8], staged: Vec<(Record, OwnedFd)>) -> Result<(), Error> {
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
        let count = entries.len();
        self.holder.check_put(&box_name, count)?;
        // The peer keeps its own fds until this reply: a refused batch is
        // simply dropped here and nothing is lost.
        self.holder
            .boxes
            .put_many(&box_name, entries)
            .map_err(|refused| refused.error)?;
        self.holder.held.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    fn get(&mut self, box_name: &[u8], records: Vec<Record>) -> Result<(), SessionEnd> {
        let taken = name(box_name).and_then(|box_name| {
            let names = records
                .iter()
                .map(|r| name(&r.name))
                .collect::<Result<Vec<_>, _>>()?;
            let handles = self.holder.boxes.get_many(&box_name, &names)?;
            Ok((box_name, names.into_iter().zip(handles).collect::<Vec<_>>()))
        });
        let (box_name, entries) = match taken {
            Ok(taken) => taken,
            Err(e) => {
                self.reply(Status::Failed(e.code()), Vec::new(), e.to_string());
                return Ok(());
            }
        };
        // Lent until the peer acknowledges: if it vanishes first, the
        // entries go back into the box.
        let lent = self.lent.insert(Lent { box_name, entries });
        let chunks = lent.entries.chunks(MAX_FDS_PER_FRAME).collect::<Vec<_>>();
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
                .map(|(name, h)| Record {
                    name: name.as_str().as_bytes().to_vec(),
                    kind: wire::kind_code(h.kind()),
                    bits: wire::access_bits(h.access()),
                    value: 0,
                })
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
        if let Some(Lent { box_name, entries }) = self.lent.take() {
            let count = entries.len();
            let lost = self.holder.boxes.restore(&box_name, entries);
            if !lost.is_empty() {
                self.holder.held.fetch_sub(lost.len(), Ordering::Relaxed);
                tracing::error!(
                    "{} of {count} entries taken from box {box_name:?} by a peer that vanished could not be put back (box deleted or names reused)",
                    lost.len()
                );
            }
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
