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
use crate::device::{BoxStatus, Device, EntryInfo, RefusedBatch};
use crate::{Error, Handle, Name};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use wire::{Frame, Head, MAX_FDS_PER_FRAME, MORE, Op, Record, Status};

/// A [`Device`] whose boxes live in an `fdbox daemon` process, so they
/// survive the host process. One connection, shared by every guest of the
/// host. A connection that breaks before its request is answered (the
/// daemon restarted, or is upgrading in place) is opened again and the
/// request sent once more: an upgrading daemon applies no request it does not
/// answer. A daemon that *dies* between applying a request and answering it
/// leaves the retry to find it done (a put or create then fails with
/// "exists", a seal with "sealed", ...); no fd is lost either way, and a
/// `get` whose fds never arrived finds them back in their box.
pub struct DaemonDevice {
    path: PathBuf,
    conn: Mutex<Connection>,
}

struct Connection {
    socket: Option<OwnedFd>,
    buf: Vec<u8>,
}

/// The replies to one request, with the fds they carried.
struct Reply {
    records: Vec<Record>,
    fds: Vec<OwnedFd>,
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
fn send_failed(what: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::NotConnected => broken(what, e),
        _ => unavailable(what, e),
    }
}

/// A receive failed: broken if the peer is gone.
fn recv_failed(e: transport::RecvError) -> Error {
    match e {
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
        let device = Self {
            path: path.as_ref().to_path_buf(),
            conn: Mutex::new(Connection {
                socket: None,
                buf: Vec::new(),
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
        records: Vec<Record>,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply, Error> {
        let mut conn = self.lock();
        let mut result = conn.exchange(&self.path, op, arg, box_name, &records, fds);
        if is_broken(&result) {
            tracing::debug!("the connection to the fdbox daemon broke: sending {op:?} again");
            conn.socket = None;
            result = conn.exchange(&self.path, op, arg, box_name, &records, fds);
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
            let mut hello = Frame::request(Op::Hello, "", Vec::new());
            hello.arg = wire::VERSION;
            hello.encode(&mut self.buf);
            transport::send(socket.as_fd(), &self.buf, &[])
                .map_err(|e| send_failed("handshake", e))?;
            recv_reply(socket.as_fd(), &mut self.buf, 0)?;
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
        records: &[Record],
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply, Error> {
        self.socket(path)?;
        // Borrow the socket and the buffer apart (no dup per request).
        let Connection { socket, buf } = self;
        let socket = socket.as_ref().expect("connected").as_fd();
        // Batches travel in frames of at most MAX_FDS_PER_FRAME records.
        let frames = records.len().div_ceil(MAX_FDS_PER_FRAME).max(1);
        for i in 0..frames {
            let start = (i * MAX_FDS_PER_FRAME).min(records.len());
            let chunk = &records[start..(start + MAX_FDS_PER_FRAME).min(records.len())];
            let chunk_fds = if op.carries_fds() {
                &fds[start..][..chunk.len()]
            } else {
                &[]
            };
            let flags = if i + 1 < frames { MORE } else { 0 };
            Frame::encode_request(op, flags, arg, box_name, chunk, buf);
            transport::send(socket, buf, chunk_fds).map_err(|e| send_failed("send", e))?;
        }
        let reply = recv_reply(socket, buf, if op == Op::Get { usize::MAX } else { 0 })?;
        if op == Op::Get {
            let ack = Frame::request(Op::GetAck, "", Vec::new());
            ack.encode(buf);
            // Should this fail, the daemon never learns the fds arrived and
            // puts them back into their box: the retry gets them again.
            transport::send(socket, buf, &[]).map_err(|e| send_failed("send", e))?;
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
) -> Result<Reply, Error> {
    let mut reply = Reply {
        records: Vec::new(),
        fds: Vec::new(),
    };
    loop {
        let fds = transport::recv(socket, buf).map_err(recv_failed)?;
        let frame =
            Frame::decode_reply(buf).map_err(|e| unavailable("bad reply from the daemon", e))?;
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
    fn create_box(&self, name: &Name) -> Result<(), Error> {
        self.request(Op::Create, 0, name.as_str(), Vec::new(), &[])
            .map(drop)
    }

    fn delete_box(&self, name: &Name) -> Result<(), Error> {
        self.request(Op::Delete, 0, name.as_str(), Vec::new(), &[])
            .map(drop)
    }

    fn boxes(&self) -> Result<Vec<BoxStatus>, Error> {
        let reply = self.request(Op::Boxes, 0, "", Vec::new(), &[])?;
        reply.records.into_iter().map(box_status).collect()
    }

    fn status(&self, name: &Name) -> Result<BoxStatus, Error> {
        let reply = self.request(Op::Status, 0, name.as_str(), Vec::new(), &[])?;
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
        let records = entries
            .iter()
            .map(|(name, h)| Record::entry(name, h))
            .collect();
        let fds: Vec<BorrowedFd<'_>> = entries.iter().map(|(_, h)| h.fd()).collect();
        // The daemon received duplicates; ours close when `entries` drops on
        // success, and go back to the caller on refusal.
        match self.request(Op::Put, limit, box_name.as_str(), records, &fds) {
            Ok(_) => Ok(()),
            Err(error) => Err(RefusedBatch { error, entries }),
        }
    }

    fn get_many(&self, box_name: &Name, entries: &[Name]) -> Result<Vec<Handle>, Error> {
        let records = entries
            .iter()
            .map(|n| Record {
                name: n.as_str().as_bytes().to_vec(),
                ..Record::default()
            })
            .collect();
        let reply = self.request(Op::Get, 0, box_name.as_str(), records, &[])?;
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
        let reply = self.request(Op::Entries, 0, box_name.as_str(), Vec::new(), &[])?;
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
        self.request(Op::Seal, 0, box_name.as_str(), Vec::new(), &[])
            .map(drop)
    }

    fn unseal(&self, box_name: &Name) -> Result<(), Error> {
        self.request(Op::Unseal, 0, box_name.as_str(), Vec::new(), &[])
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
