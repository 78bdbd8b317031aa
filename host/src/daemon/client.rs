//! The `daemon` device: boxes held by an `fdbox daemon` process, reached over
//! its Unix socket.

use super::transport;
use super::wire::{self, Frame, Head, MAX_FDS_PER_FRAME, MORE, Op, Record, Status};
use crate::device::{BoxStatus, Device, EntryInfo, RefusedBatch};
use crate::{Error, Handle, Name};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// A [`Device`] whose boxes live in an `fdbox daemon` process, so they
/// survive the host process. One connection, shared by every guest of the
/// host; a broken connection is opened again on the next call.
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
        box_name: &str,
        records: Vec<Record>,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply, Error> {
        let mut conn = self.lock();
        let result = conn.exchange(&self.path, op, box_name, records, fds);
        if matches!(&result, Err(Error::Device(_))) {
            conn.socket = None;
        }
        result
    }
}

impl Connection {
    fn socket(&mut self, path: &Path) -> Result<BorrowedFd<'_>, Error> {
        if self.socket.is_none() {
            let socket = transport::connect(path).map_err(|e| {
                unavailable(
                    &format!("cannot reach the fdbox daemon at {}", path.display()),
                    e,
                )
            })?;
            let mut hello = Frame::request(Op::Hello, "", Vec::new());
            hello.arg = wire::VERSION;
            hello.encode(&mut self.buf);
            transport::send(socket.as_fd(), &self.buf, &[])
                .map_err(|e| unavailable("handshake", e))?;
            self.socket = Some(socket);
            self.recv_reply(0)?;
        }
        Ok(self.socket.as_ref().unwrap().as_fd())
    }

    fn exchange(
        &mut self,
        path: &Path,
        op: Op,
        box_name: &str,
        records: Vec<Record>,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply, Error> {
        let socket = self
            .socket(path)?
            .try_clone_to_owned()
            .map_err(|e| unavailable("dup", e))?;
        // Batches travel in frames of at most MAX_FDS_PER_FRAME records.
        let frames = records.len().div_ceil(MAX_FDS_PER_FRAME).max(1);
        let mut records = records.into_iter();
        for i in 0..frames {
            let chunk: Vec<Record> = records.by_ref().take(MAX_FDS_PER_FRAME).collect();
            let chunk_fds = if op.carries_fds() {
                &fds[i * MAX_FDS_PER_FRAME..][..chunk.len()]
            } else {
                &[]
            };
            let mut frame = Frame::request(op, box_name, chunk);
            frame.flags = if i + 1 < frames { MORE } else { 0 };
            frame.encode(&mut self.buf);
            transport::send(socket.as_fd(), &self.buf, chunk_fds)
                .map_err(|e| unavailable("send", e))?;
        }
        let reply = self.recv_reply(if op == Op::Get { usize::MAX } else { 0 })?;
        if op == Op::Get {
            let ack = Frame::request(Op::GetAck, "", Vec::new());
            ack.encode(&mut self.buf);
            transport::send(socket.as_fd(), &self.buf, &[]).map_err(|e| unavailable("send", e))?;
        }
        Ok(reply)
    }

    /// Receive reply frames until one without MORE; each may carry up to
    /// `max_fds_per_frame` fds, one per record.
    fn recv_reply(&mut self, max_fds_per_frame: usize) -> Result<Reply, Error> {
        let socket = self
            .socket
            .as_ref()
            .expect("connected")
            .try_clone()
            .map_err(|e| unavailable("dup", e))?;
        let mut reply = Reply {
            records: Vec::new(),
            fds: Vec::new(),
        };
        loop {
            let fds = transport::recv(socket.as_fd(), &mut self.buf)
                .map_err(|e| unavailable("receive", e))?;
            let frame = Frame::decode_reply(&self.buf)
                .map_err(|e| unavailable("bad reply from the daemon", e))?;
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
        self.request(Op::Create, name.as_str(), Vec::new(), &[])
            .map(drop)
    }

    fn delete_box(&self, name: &Name) -> Result<(), Error> {
        self.request(Op::Delete, name.as_str(), Vec::new(), &[])
            .map(drop)
    }

    fn boxes(&self) -> Result<Vec<BoxStatus>, Error> {
        let reply = self.request(Op::Boxes, "", Vec::new(), &[])?;
        reply.records.into_iter().map(box_status).collect()
    }

    fn status(&self, name: &Name) -> Result<BoxStatus, Error> {
        let reply = self.request(Op::Status, name.as_str(), Vec::new(), &[])?;
        let record = reply
            .records
            .into_iter()
            .next()
            .ok_or_else(|| unavailable("bad reply", "no status"))?;
        box_status(record)
    }

    fn put_many(&self, box_name: &Name, entries: Vec<(Name, Handle)>) -> Result<(), RefusedBatch> {
        let records = entries
            .iter()
            .map(|(name, h)| Record {
                name: name.as_str().as_bytes().to_vec(),
                kind: wire::kind_code(h.kind()),
                bits: wire::access_bits(h.access()),
                value: 0,
            })
            .collect();
        let fds: Vec<BorrowedFd<'_>> = entries.iter().map(|(_, h)| h.fd()).collect();
        // The daemon received duplicates; ours close when `entries` drops on
        // success, and go back to the caller on refusal.
        match self.request(Op::Put, box_name.as_str(), records, &fds) {
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
        let reply = self.request(Op::Get, box_name.as_str(), records, &[])?;
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
        let reply = self.request(Op::Entries, box_name.as_str(), Vec::new(), &[])?;
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
        self.request(Op::Seal, box_name.as_str(), Vec::new(), &[])
            .map(drop)
    }

    fn unseal(&self, box_name: &Name) -> Result<(), Error> {
        self.request(Op::Unseal, box_name.as_str(), Vec::new(), &[])
            .map(drop)
    }
}
