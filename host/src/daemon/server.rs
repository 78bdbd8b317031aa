//! The holder daemon: keeps boxes and their fds in its own process so they
//! outlive every host process that uses them.

use super::handover::{HandoverState, manifest_fd_name};
use super::transport::{self, RecvError};
use super::wire::{self, Frame, Head, MAX_FDS_PER_FRAME, MORE, Op, Record, Status, WireError};
use crate::device::{BoxStatus, Device, EntryInfo};
use crate::{Error, Handle, HeldBox, MemoryDevice, Name};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// Taken by every op that changes what the holder holds, from the change
    /// to the end of the fd store's sync: the store and a hand-over only ever
    /// see whole ops.
    shared: Mutex<Shared>,
    gate: Mutex<Gate>,
    gate_changed: Condvar,
}

/// What changes with the boxes, under the op lock.
pub(super) struct Shared {
    /// Entries taken out by a GET whose peer has not acknowledged them yet,
    /// by loan number. They are still the box's for the fd store and go
    /// back into it if the peer vanishes.
    loans: BTreeMap<u64, Arc<Lent>>,
    next_loan: u64,
    pub(super) handover: HandoverState,
}

/// Who is inside the holder, for an upgrade that must wait until nobody is.
#[derive(Default)]
struct Gate {
    /// An upgrade is under way: no new op starts and no connection is
    /// served.
    quiescing: bool,
    /// Ops started and not finished; a GET lasts until its acknowledgement.
    in_flight: usize,
    /// Connections being served.
    sessions: usize,
    /// A duplicate of each served connection, to shut it down on upgrade.
    conns: BTreeMap<u64, OwnedFd>,
    next_conn: u64,
}

/// An op in flight; the upgrade waits for it.
struct OpGuard<'a> {
    holder: &'a Holder,
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        let mut gate = self.holder.gate();
        gate.in_flight -= 1;
        // Only an upgrade waits (and it sets `quiescing` before it does):
        // no wake-up call per op otherwise.
        if gate.quiescing {
            self.holder.gate_changed.notify_all();
        }
    }
}

/// A connection being served; the upgrade waits for it to end.
struct Registered<'a> {
    holder: &'a Holder,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut gate = self.holder.gate();
        gate.conns.remove(&self.id);
        gate.sessions -= 1;
        if gate.quiescing {
            self.holder.gate_changed.notify_all();
        }
    }
}

/// The holder, with every op finished and every connection closed: nothing
/// changes until it drops (which lets service resume).
pub struct Quiesced<'a> {
    holder: &'a Holder,
}

/// Why a holder could not be quiesced.
#[derive(Debug, thiserror::Error)]
pub enum QuiesceError {
    /// Connections still served after being shut down.
    #[error("{0} connections were still being served after {1:?}")]
    Stuck(usize, Duration),
}

/// How often [`Holder::serve_until`] looks at its stop flag when no peer
/// connects.
const STOP_POLL: Duration = Duration::from_millis(100);

impl Holder {
    /// An empty holder.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            boxes: MemoryDevice::new(),
            limits,
            held: AtomicUsize::new(0),
            shared: Mutex::new(Shared {
                loans: BTreeMap::new(),
                next_loan: 0,
                handover: HandoverState::default(),
            }),
            gate: Mutex::new(Gate::default()),
            gate_changed: Condvar::new(),
        })
    }

    /// The boxes, as a device (for tests; a change made through it is not
    /// seen by the fd store until the next change made by a peer).
    pub fn boxes(&self) -> &MemoryDevice {
        &self.boxes
    }

    pub(super) fn shared(&self) -> MutexGuard<'_, Shared> {
        // Every change under this lock is one call into the device and one
        // map insert or remove: a panic cannot leave it half done.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn held_add(&self, count: usize) {
        self.held.fetch_add(count, Ordering::Relaxed);
    }

    /// Run a change under the op lock, then bring the fd store in line.
    fn change<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut shared = self.shared();
        let result = f(&mut shared);
        self.sync(&mut shared);
        result
    }

    /// Every box with its entries, lent ones included, as `f` sees them.
    fn inspect<R>(
        &self,
        loans: &BTreeMap<u64, Arc<Lent>>,
        f: impl FnOnce(&[HeldBox<'_>]) -> R,
    ) -> R {
        self.boxes.inspect(|boxes| f(&with_loans(boxes, loans)))
    }

    pub(super) fn sync(&self, shared: &mut Shared) {
        let Shared {
            loans, handover, ..
        } = shared;
        if handover.has_store() {
            self.inspect(loans, |boxes| handover.sync(boxes));
        }
    }

    /// Count an op in, unless an upgrade is under way.
    fn enter(&self) -> Option<OpGuard<'_>> {
        let mut gate = self.gate();
        if gate.quiescing {
            return None;
        }
        gate.in_flight += 1;
        Some(OpGuard { holder: self })
    }

    /// Count a connection in, unless an upgrade is under way.
    fn register(&self, conn: &OwnedFd) -> Option<u64> {
        let dup = match conn.try_clone() {
            Ok(dup) => dup,
            Err(e) => {
                tracing::error!("cannot serve a connection: {e}");
                return None;
            }
        };
        let mut gate = self.gate();
        if gate.quiescing {
            return None;
        }
        let id = gate.next_conn;
        gate.next_conn += 1;
        gate.conns.insert(id, dup);
        gate.sessions += 1;
        Some(id)
    }

    /// Accept connections on `listener` forever, one thread each. Peers of
    /// another user (other than root) are refused before anything is read.
    pub fn serve(self: &Arc<Self>, listener: OwnedFd) -> io::Result<()> {
        self.serve_until(listener.as_fd(), &AtomicBool::new(false))
    }

    /// Accept connections on `listener`, one thread each, until `stop` is
    /// set (it is looked at least every 100 ms, and when a signal interrupts
    /// the wait). Connections accepted so far go on being served. The
    /// listener may be non-blocking (systemd passes its sockets so).
    pub fn serve_until(
        self: &Arc<Self>,
        listener: BorrowedFd<'_>,
        stop: &AtomicBool,
    ) -> io::Result<()> {
        use rustix::event::{PollFd, PollFlags, Timespec};
        use rustix::io::Errno;
        let me = rustix::process::geteuid();
        let wait = Timespec::try_from(STOP_POLL).expect("a short timeout");
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
                    tracing::error!("out of fds: cannot accept a connection");
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
                    let Some(id) = self.register(&conn) else {
                        continue;
                    };
                    let holder = self.clone();
                    std::thread::spawn(move || holder.serve_registered(conn, id));
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
    pub fn serve_connection(&self, conn: OwnedFd) {
        if let Some(id) = self.register(&conn) {
            self.serve_registered(conn, id);
        }
    }

    fn serve_registered(&self, conn: OwnedFd, id: u64) {
        // Dropped last: the upgrade sees the session end only once what it
        // lent is back in its box and its connection is closed (an upgrade
        // reuses fd numbers: a close after that would close another fd).
        let _registered = Registered { holder: self, id };
        self.serve_session(conn);
    }

    fn serve_session(&self, conn: OwnedFd) {
        let mut session = Session {
            holder: self,
            conn: conn.as_fd(),
            buf: Vec::new(),
            out: Vec::new(),
            staged_put: Vec::new(),
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
        }
        session.give_back_lent();
    }

    /// Let every op in flight finish, close every connection, and wait for
    /// their sessions to end (what they lent goes back into its box), all
    /// within about twice `patience`. Call it from the thread that ran
    /// [`Holder::serve_until`], once that returned: no connection is
    /// accepted meanwhile. A peer whose request was cut off this way finds
    /// its connection closed before any reply, and may send it again.
    pub fn quiesce(&self, patience: Duration) -> Result<Quiesced<'_>, QuiesceError> {
        let mut gate = self.gate();
        gate.quiescing = true;
        let quiesced = Quiesced { holder: self };
        // Ops in flight end with their reply (a GET with its
        // acknowledgement, so nothing the peer received is given back).
        let deadline = Instant::now() + patience;
        while gate.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    "{} ops still in flight after {patience:?}: cutting their connections",
                    gate.in_flight
                );
                break;
            }
            gate = self
                .gate_changed
                .wait_timeout(gate, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        // Shut down, not closed: the sessions own their fds. Each wakes up
        // with its peer gone (its pending frames are still read first, so an
        // acknowledgement that arrived is honoured), gives back what it
        // lent, and ends; a peer sending from now on gets EPIPE.
        for conn in gate.conns.values() {
            let _ = rustix::net::shutdown(conn, rustix::net::Shutdown::Both);
        }
        let deadline = Instant::now() + patience;
        while gate.sessions > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let stuck = gate.sessions;
                // Unlocked before `quiesced` drops and reopens the gate.
                drop(gate);
                return Err(QuiesceError::Stuck(stuck, patience));
            }
            gate = self
                .gate_changed
                .wait_timeout(gate, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        drop(gate);
        Ok(quiesced)
    }

    fn check_put(
        &self,
        box_name: &Name,
        adding: usize,
        caller_limit: Option<usize>,
    ) -> Result<(), Error> {
        let status = self.boxes.status(box_name)?;
        if status.sealed {
            return Err(Error::BoxSealed(box_name.clone()));
        }
        if let Some(limit) = caller_limit {
            crate::device::check_entries_quota(&status, adding, limit)?;
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

/// `boxes` with the entries of `loans` back in them. A loan whose box is
/// gone, or whose names were taken again meanwhile, would not go back: it is
/// not the box's any more.
fn with_loans<'a>(
    mut boxes: Vec<HeldBox<'a>>,
    loans: &'a BTreeMap<u64, Arc<Lent>>,
) -> Vec<HeldBox<'a>> {
    for lent in loans.values() {
        let Ok(i) = boxes.binary_search_by(|b| b.name.cmp(&lent.box_name)) else {
            continue;
        };
        let held = &mut boxes[i];
        for (name, handle) in &lent.entries {
            if let Err(at) = held.entries.binary_search_by(|(n, _)| (*n).cmp(name)) {
                held.entries.insert(at, (name, handle));
            }
        }
    }
    boxes
}

impl Quiesced<'_> {
    /// Hand the holder's state over: `f` gets every fd to pass on with its
    /// fd name, the manifest first (in a new sealed memfd), then one per
    /// entry. The fds are borrowed from the boxes, which do not change
    /// while `f` runs.
    pub fn export<R>(&self, f: impl FnOnce(&[(String, BorrowedFd<'_>)]) -> R) -> io::Result<R> {
        let holder = self.holder;
        let mut shared = holder.shared();
        let Shared {
            loans, handover, ..
        } = &mut *shared;
        holder.inspect(loans, |boxes| {
            let (generation, manifest, fds) = handover.export(boxes)?;
            let mut all = Vec::with_capacity(fds.len() + 1);
            all.push((manifest_fd_name(generation), manifest.as_fd()));
            all.extend(fds);
            Ok(f(&all))
        })
    }
}

impl Drop for Quiesced<'_> {
    fn drop(&mut self) {
        self.holder.gate().quiescing = false;
        self.holder.gate_changed.notify_all();
    }
}

/// Why a session ended.
enum SessionEnd {
    Closed,
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

/// Handles taken out for a peer, kept until it acknowledges receiving them.
pub(super) struct Lent {
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
    /// The loan of the last GET, until the peer acknowledges it.
    lent: Option<u64>,
    /// The op being served (a GET until its acknowledgement).
    op: Option<OpGuard<'a>>,
}

impl<'a> Session<'a> {
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
            let id = self.lent.take().expect("checked by run");
            // Forgotten by the store with the loan; the fds close here.
            if let Some(lent) = self.holder.change(|shared| shared.loans.remove(&id)) {
                self.holder
                    .held
                    .fetch_sub(lent.entries.len(), Ordering::Relaxed);
            }
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
                self.staged_put.extend(frame.records.into_iter().zip(fds));
                self.check_batch_size(self.staged_put.len())?;
                if more {
                    return Ok(());
                }
                let staged = std::mem::take(&mut self.staged_put);
                let caller_limit = (frame.arg != 0).then_some(frame.arg as usize);
                self.put(&frame.box_name, staged, caller_limit)
                    .map(|()| Vec::new())
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
        let holder = self.holder;
        match op {
            Op::Status => return Ok(vec![box_record(&device.status(&name)?)]),
            Op::Entries => return Ok(device.entries(&name)?.iter().map(entry_record).collect()),
            Op::Create => holder.change(|_| {
                if device.boxes()?.len() >= holder.limits.max_boxes {
                    return Err(Error::QuotaExceeded(format!(
                        "the daemon holds {} boxes, its limit (fdbox daemon --max-boxes)",
                        holder.limits.max_boxes
                    )));
                }
                device.create_box(&name)
            })?,
            Op::Delete => holder.change(|_| {
                let released = device.status(&name)?.entries;
                device.delete_box(&name)?;
                holder.held.fetch_sub(released, Ordering::Relaxed);
                Ok::<_, Error>(())
            })?,
            Op::Seal => holder.change(|_| device.seal(&name))?,
            Op::Unseal => holder.change(|_| device.unseal(&name))?,
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
        let count = entries.len();
        let holder = self.holder;
        holder.change(|_| {
            holder.check_put(&box_name, count, caller_limit)?;
            // The peer keeps its own fds until this reply: a refused batch
            // is simply dropped here and nothing is lost.
            holder
                .boxes
                .put_many(&box_name, entries)
                .map_err(|refused| refused.error)?;
            holder.held.fetch_add(count, Ordering::Relaxed);
            Ok(())
        })
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
            holder.change(|shared| {
                let handles = holder.boxes.get_many(&box_name, &names)?;
                let id = shared.next_loan;
                shared.next_loan += 1;
                let entries = names.into_iter().zip(handles).collect();
                let lent = Arc::new(Lent { box_name, entries });
                shared.loans.insert(id, lent.clone());
                Ok::<_, Error>((id, lent))
            })
        });
        let (id, lent) = match taken {
            Ok(taken) => taken,
            Err(e) => {
                self.reply(Status::Failed(e.code()), Vec::new(), e.to_string());
                return Ok(());
            }
        };
        self.lent = Some(id);
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
        let Some(id) = self.lent.take() else {
            return;
        };
        let holder = self.holder;
        holder.change(|shared| {
            let Some(lent) = shared.loans.remove(&id) else {
                return;
            };
            // The session's own reference went with its reply.
            let Ok(Lent { box_name, entries }) = Arc::try_unwrap(lent) else {
                unreachable!("a loan is shared only while its reply is sent")
            };
            let count = entries.len();
            let lost = holder.boxes.restore(&box_name, entries);
            if !lost.is_empty() {
                holder.held.fetch_sub(lost.len(), Ordering::Relaxed);
                tracing::error!(
                    "{} of {count} entries taken from box {box_name:?} by a peer that vanished could not be put back (box deleted or names reused)",
                    lost.len()
                );
            }
        });
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
