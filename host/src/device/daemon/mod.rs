//! The `daemon` device: boxes held by an `fdbox daemon` process
//! ([`crate::daemon::Holder`]), reached over its Unix socket with the
//! versioned protocol of [`wire`] (`SOCK_SEQPACKET`, fds travelling with
//! SCM_RIGHTS, up to 253 per message, [`transport`]).
//!
//! This is the client; the server is [`crate::daemon`], which depends on
//! this module for the protocol, never the other way round.
//! [`wire`] and [`transport`] are public for the fuzz target, the tests
//! that speak the raw protocol, and the CLI's hand-off of fds.

pub mod private;
pub mod transport;
pub mod wire;

use crate::device::rules::EntriesQuota;
use crate::device::{BoxStatus, Capabilities, Device, EntryInfo, RefusedBatch};
use crate::{Error, Handle, Name};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use wire::{Frame, Head, MAX_FDS_PER_FRAME, MORE, Op, Record, Records, Status};

/// A [`Device`] whose boxes live in an `fdbox daemon` process, so they
/// survive the host process. One connection, shared by every guest of the
/// host. A connection that breaks before its request is answered (the
/// daemon restarted, or is upgrading in place) is opened again and the
/// request sent once more: an upgrading daemon applies no request it does not
/// answer. A daemon that *dies* between applying a request and answering it
/// leaves the retry to find it done (a put or create then fails with
/// "exists", a seal with "sealed", ...); no fd is lost either way, and a
/// `get` whose fds never arrived finds them back in their box.
///
/// Every send and receive has a deadline ([`DaemonDevice::DEFAULT_TIMEOUT`],
/// or [`DaemonDevice::connect_with_timeout`]): a daemon that stalls makes a
/// call fail with `device-unavailable` saying what timed out, instead of
/// freezing every guest of the host behind the connection's lock. A put
/// that timed out hands the guest its handles back; the daemon may still
/// apply it (with its own duplicates of the fds), so nothing is lost either
/// way, and a get whose reply timed out is given back to its box by the
/// daemon when the connection closes.
pub struct DaemonDevice {
    path: PathBuf,
    conn: Mutex<Connection>,
}

struct Connection {
    socket: Option<OwnedFd>,
    buf: Vec<u8>,
    /// The deadline of every send and receive.
    timeout: std::time::Duration,
    /// The kinds the daemon's device holds, as its HELLO said.
    kinds: &'static [crate::HandleKind],
}

/// The replies to one request, with the fds they carried.
struct Reply {
    records: Vec<Record>,
    fds: Vec<OwnedFd>,
    /// The last frame's detail.
    detail: String,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Device(io::Error::other(format!("{what}: {e}")))
}

/// The connection broke before the reply was complete: the daemon closed
/// it, died, or is being upgraded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Broken(String);

fn broken(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Device(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        Broken(format!("{what}: {e}")),
    ))
}

fn is_broken(result: &Result<Reply, Error>) -> bool {
    matches!(result, Err(Error::Device(e)) if e.get_ref().is_some_and(|inner| inner.is::<Broken>()))
}

/// A send failed: broken if the peer is gone.
fn send_failed(what: &str, e: io::Error, timeout: std::time::Duration) -> Error {
    if is_timeout(&e) {
        return timed_out("take the request", timeout);
    }
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::NotConnected => broken(what, e),
        _ => unavailable(what, e),
    }
}

/// A send or receive that waited past the deadline: kind `TimedOut`, so a
/// caller can tell a stalled daemon from a missing one.
fn timed_out(what: &str, timeout: std::time::Duration) -> Error {
    Error::Device(io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "the fdbox daemon did not {what} within {:.1} s (a stalled daemon; see its log, or raise the timeout)",
            timeout.as_secs_f64()
        ),
    ))
}

/// Whether `error` is a daemon that did not answer in time (a stalled
/// daemon, as opposed to none).
pub fn is_stalled(error: &Error) -> bool {
    matches!(error, Error::Device(e) if e.kind() == io::ErrorKind::TimedOut)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A receive failed: broken if the peer is gone.
fn recv_failed(e: transport::RecvError, timeout: std::time::Duration) -> Error {
    match e {
        transport::RecvError::Io(e) if is_timeout(&e) => timed_out("answer", timeout),
        transport::RecvError::Closed => broken("receive", e),
        transport::RecvError::Io(e) if e.kind() == io::ErrorKind::ConnectionReset => {
            broken("receive", e)
        }
        e => unavailable("receive", e),
    }
}

impl DaemonDevice {
    /// Connect to the daemon listening at `path` and check it speaks this
    /// protocol.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::connect_with_timeout(path, Self::DEFAULT_TIMEOUT)
    }

    /// How long a send or a receive may wait by default.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

    /// [`DaemonDevice::connect`], with `timeout` for every send and receive
    /// instead of [`DaemonDevice::DEFAULT_TIMEOUT`].
    pub fn connect_with_timeout(
        path: impl AsRef<Path>,
        timeout: std::time::Duration,
    ) -> Result<Self, Error> {
        let device = Self {
            path: path.as_ref().to_path_buf(),
            conn: Mutex::new(Connection {
                socket: None,
                buf: Vec::new(),
                timeout,
                kinds: Capabilities::ALL.kinds,
            }),
        };
        device.lock().socket(&device.path)?;
        Ok(device)
    }

    /// Where the daemon listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-request leaves the socket mid-conversation: drop it.
        self.conn.lock().unwrap_or_else(|poisoned| {
            let mut conn = poisoned.into_inner();
            conn.socket = None;
            conn
        })
    }

    /// One request of one or more frames, and its reply.
    fn request(
        &self,
        op: Op,
        arg: u32,
        box_name: &str,
        records: Records<'_>,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply, Error> {
        let mut conn = self.lock();
        let mut result = conn.exchange(&self.path, op, arg, box_name, records, fds);
        if is_broken(&result) {
            tracing::debug!("the connection to the fdbox daemon broke: sending {op:?} again");
            conn.socket = None;
            result = conn.exchange(&self.path, op, arg, box_name, records, fds);
        }
        if matches!(&result, Err(Error::Device(_))) {
            conn.socket = None;
        }
        result
    }
}

impl Connection {
    fn socket(&mut self, path: &Path) -> Result<BorrowedFd<'_>, Error> {
        if self.socket.is_none() {
            // Nothing is sent to a daemon this user does not control: the
            // socket's directory must be private and the listener ours.
            if let Some(dir) = path.parent() {
                private::check_private_dir(dir)?;
            }
            let socket = transport::connect(path).map_err(|e| {
                unavailable(
                    &format!("cannot reach the fdbox daemon at {}", path.display()),
                    e,
                )
            })?;
            private::check_peer(&socket, &format!("the fdbox daemon at {}", path.display()))?;
            use rustix::net::sockopt::{Timeout, set_socket_timeout};
            for direction in [Timeout::Recv, Timeout::Send] {
                set_socket_timeout(&socket, direction, Some(self.timeout))
                    .map_err(|e| unavailable("cannot set the daemon connection's timeout", e))?;
            }
            let mut hello = Frame::request(Op::Hello, "", Vec::new());
            hello.arg = wire::VERSION;
            hello.encode(&mut self.buf);
            transport::send(socket.as_fd(), &self.buf, &[])
                .map_err(|e| send_failed("handshake", e, self.timeout))?;
            let hello = recv_reply(socket.as_fd(), &mut self.buf, 0, self.timeout)?;
            self.kinds = wire::kinds_of_hello(&hello.detail).unwrap_or(Capabilities::ALL.kinds);
            self.socket = Some(socket);
        }
        Ok(self.socket.as_ref().unwrap().as_fd())
    }

    fn exchange(
        &mut self,
        path: &Path,
        op: Op,
        arg: u32,
        box_name: &str,
        records: Records<'_>,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply, Error> {
        self.socket(path)?;
        // Borrow the socket and the buffer apart (no dup per request).
        let Connection {
            socket,
            buf,
            timeout,
            ..
        } = self;
        let timeout = *timeout;
        let socket = socket.as_ref().expect("connected").as_fd();
        // Batches travel in frames of at most MAX_FDS_PER_FRAME records.
        let frames = records.len().div_ceil(MAX_FDS_PER_FRAME).max(1);
        for i in 0..frames {
            let start = (i * MAX_FDS_PER_FRAME).min(records.len());
            let chunk = records.slice(start..(start + MAX_FDS_PER_FRAME).min(records.len()));
            let chunk_fds = if op.carries_fds() {
                &fds[start..][..chunk.len()]
            } else {
                &[]
            };
            let flags = if i + 1 < frames { MORE } else { 0 };
            Frame::encode_request(op, flags, arg, box_name, chunk, buf);
            transport::send(socket, buf, chunk_fds).map_err(|e| send_failed("send", e, timeout))?;
        }
        let reply = recv_reply(
            socket,
            buf,
            if op == Op::Get { usize::MAX } else { 0 },
            timeout,
        )?;
        if op == Op::Get {
            let ack = Frame::request(Op::GetAck, "", Vec::new());
            ack.encode(buf);
            // Should this fail, the daemon never learns the fds arrived and
            // puts them back into their box: the retry gets them again.
            transport::send(socket, buf, &[]).map_err(|e| send_failed("send", e, timeout))?;
        }
        Ok(reply)
    }
}

/// Receive reply frames until one without MORE; each may carry up to
/// `max_fds_per_frame` fds, one per record.
fn recv_reply(
    socket: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max_fds_per_frame: usize,
    timeout: std::time::Duration,
) -> Result<Reply, Error> {
    let mut reply = Reply {
        records: Vec::new(),
        fds: Vec::new(),
        detail: String::new(),
    };
    loop {
        let fds = transport::recv(socket, buf).map_err(|e| recv_failed(e, timeout))?;
        // A GET's records only say each handle's kind and access: it knows
        // the names it asked for.
        let frame = if max_fds_per_frame == 0 {
            Frame::decode_reply(buf)
        } else {
            Frame::decode_reply_without_names(buf)
        };
        let frame = frame.map_err(|e| unavailable("bad reply from the daemon", e))?;
        match frame.head {
            Head::Reply(Status::Ok) => {}
            Head::Reply(Status::Failed(code)) => {
                return Err(Error::Remote {
                    code,
                    message: frame.detail,
                });
            }
            _ => return Err(unavailable("the daemon refused the request", frame.detail)),
        }
        let expected = if max_fds_per_frame == 0 {
            0
        } else {
            frame.records.len()
        };
        if fds.len() != expected {
            return Err(unavailable(
                "bad reply from the daemon",
                format!("{} fds for {expected} records", fds.len()),
            ));
        }
        reply.records.extend(frame.records);
        reply.fds.extend(fds);
        reply.detail = frame.detail;
        if frame.flags & MORE == 0 {
            return Ok(reply);
        }
    }
}

fn name(bytes: Vec<u8>) -> Result<Name, Error> {
    String::from_utf8(bytes)
        .map_err(|_| unavailable("bad reply from the daemon", "a name is not UTF-8"))
        .and_then(Name::new)
}

fn box_status(r: Record) -> Result<BoxStatus, Error> {
    Ok(BoxStatus {
        sealed: r.bits & 1 != 0,
        entries: r.value as usize,
        name: name(r.name)?,
    })
}

impl Device for DaemonDevice {
    /// The kinds of the daemon's device (every kind on memory, memory files
    /// on Live Update), as it said when this device connected; boxes
    /// outlive the host, as the daemon holds them.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kinds: self.lock().kinds,
            survives_host_restart: true,
        }
    }

    fn create_box(&self, name: &Name) -> Result<(), Error> {
        self.request(Op::Create, 0, name.as_str(), Records::Built(&[]), &[])
            .map(drop)
    }

    fn delete_box(&self, name: &Name) -> Result<(), Error> {
        self.request(Op::Delete, 0, name.as_str(), Records::Built(&[]), &[])
            .map(drop)
    }

    fn boxes(&self) -> Result<Vec<BoxStatus>, Error> {
        let reply = self.request(Op::Boxes, 0, "", Records::Built(&[]), &[])?;
        reply.records.into_iter().map(box_status).collect()
    }

    fn status(&self, name: &Name) -> Result<BoxStatus, Error> {
        let reply = self.request(Op::Status, 0, name.as_str(), Records::Built(&[]), &[])?;
        let record = reply
            .records
            .into_iter()
            .next()
            .ok_or_else(|| unavailable("bad reply", "no status"))?;
        box_status(record)
    }

    fn put_many_within(
        &self,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        max_entries: usize,
    ) -> Result<(), RefusedBatch> {
        // The daemon checks the limit with the put, in one round trip; 0
        // means no limit on the wire, so a zero quota is refused here.
        let limit = match max_entries {
            0 => {
                let refused = self
                    .status(box_name)
                    .and_then(|status| status.check_quota(entries.len(), EntriesQuota::Guest(0)));
                let error = refused.err().unwrap_or_else(|| {
                    Error::QuotaExceeded(format!(
                        "box {box_name:?} may hold no entries for this guest"
                    ))
                });
                return Err(RefusedBatch { error, entries });
            }
            n => u32::try_from(n).unwrap_or(0),
        };
        let fds: Vec<BorrowedFd<'_>> = entries.iter().map(|(_, h)| h.fd()).collect();
        // The daemon received duplicates; ours close when `entries` drops on
        // success, and go back to the caller on refusal.
        let records = Records::Entries(&entries);
        match self.request(Op::Put, limit, box_name.as_str(), records, &fds) {
            Ok(_) => Ok(()),
            Err(error) => Err(RefusedBatch { error, entries }),
        }
    }

    fn get_many(&self, box_name: &Name, entries: &[Name]) -> Result<Vec<Handle>, Error> {
        let reply = self.request(Op::Get, 0, box_name.as_str(), Records::Names(entries), &[])?;
        if reply.records.len() != entries.len() {
            return Err(unavailable(
                "bad reply from the daemon",
                "wrong number of handles",
            ));
        }
        reply
            .records
            .into_iter()
            .zip(reply.fds)
            .map(|(r, fd)| {
                let kind = wire::kind_from_code(r.kind)
                    .ok_or_else(|| unavailable("bad reply", "unknown kind"))?;
                Ok(Handle::from_parts(fd, kind, wire::access_from_bits(r.bits)))
            })
            .collect()
    }

    fn entries(&self, box_name: &Name) -> Result<Vec<EntryInfo>, Error> {
        let reply = self.request(Op::Entries, 0, box_name.as_str(), Records::Built(&[]), &[])?;
        reply
            .records
            .into_iter()
            .map(|r| {
                Ok(EntryInfo {
                    kind: wire::kind_from_code(r.kind)
                        .ok_or_else(|| unavailable("bad reply", "unknown kind"))?,
                    size: r.value.checked_sub(1),
                    name: name(r.name)?,
                })
            })
            .collect()
    }

    fn seal(&self, box_name: &Name) -> Result<(), Error> {
        self.request(Op::Seal, 0, box_name.as_str(), Records::Built(&[]), &[])
            .map(drop)
    }

    fn unseal(&self, box_name: &Name) -> Result<(), Error> {
        self.request(Op::Unseal, 0, box_name.as_str(), Records::Built(&[]), &[])
            .map(drop)
    }
}

/// Where the daemon of this user listens by default: `/run/fdbox/fdbox.sock`
/// for root; else in `fdbox/` under `$XDG_RUNTIME_DIR`, else under
/// `/run/user/$UID` when that exists and is this user's, else
/// `/tmp/fdbox-$UID/fdbox.sock`. Wherever it is, the directory must be
/// private to this user ([`private::check_private_dir`]) or fdbox refuses
/// it.
pub fn default_socket_path() -> PathBuf {
    let uid = rustix::process::geteuid();
    let runtime_dir = PathBuf::from(format!("/run/user/{}", uid.as_raw()));
    let dir = if uid.is_root() {
        PathBuf::from("/run/fdbox")
    } else if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        PathBuf::from(runtime).join("fdbox")
    } else if private::check_private_dir(&runtime_dir).is_ok() {
        runtime_dir.join("fdbox")
    } else {
        PathBuf::from(format!("/tmp/fdbox-{}", uid.as_raw()))
    };
    dir.join("fdbox.sock")
}
