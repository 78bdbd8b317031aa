//! The holder daemon's wire format: frames of UAPI-like records.
//!
//! A frame is one `SOCK_SEQPACKET` message, so message boundaries are the
//! kernel's and a frame's fds (SCM_RIGHTS) arrive with exactly that frame.
//! In the primitives of `device/bytes.rs`: little-endian integers; a `str8`
//! or `str16` is a `u8` or `u16` length and that many bytes.
//!
//! ```text
//! frame   = op:u8 flags:u8 count:u16 arg:u32 box:name record{count} detail
//! record  = name:name kind:u8 bits:u8 value:u64
//! name    = str8                         (empty = absent)
//! detail  = str16                        (UTF-8, a human-readable detail)
//! ```
//!
//! `op` is a request [`Op`] or, in a reply, a [`Status`]. `flags` bit 0
//! (`MORE`) says the same batch continues in the next frame: a batch of more
//! than [`MAX_FDS_PER_FRAME`] fds spans several frames and the daemon applies
//! it only when the last arrives, all or nothing. `arg` is the protocol
//! version in `HELLO`; in `PUT` the most entries the box may hold after the
//! put, the caller's own quota (0: none but the daemon's; the last frame of a
//! batch counts); zero elsewhere. A `PUT` or `GET` reply frame carries
//! one fd per record, in record order; no other frame carries fds.
//!
//! Decoding is a pure function of the bytes and the number of fds that came
//! with them ([`Frame::decode_request`], [`Frame::decode_reply`]), so it is
//! fuzzed on its own.

use crate::device::bytes::{Reader, Truncated, Writer};
use crate::{Access, ErrorCode, HandleKind};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// At most this many fds travel in one message (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS_PER_FRAME: usize = 253;

/// The largest frame: a full batch of the longest names, with room to spare.
pub const MAX_FRAME_LEN: usize = 1 << 17;

/// `flags` bit: the batch continues in the next frame.
pub const MORE: u8 = 1;

/// What a request asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Handshake: `arg` is the client's protocol version.
    Hello = 1,
    /// Create `box`.
    Create = 2,
    /// Delete `box`.
    Delete = 3,
    /// List every box: one record per box, `bits` 1 if sealed, `value` its
    /// number of entries.
    Boxes = 4,
    /// One box, as a one-record `Boxes` reply.
    Status = 5,
    /// Put one fd per record into `box` (records: name, kind, access);
    /// `arg`, if not 0, is the caller's limit on the box's entries.
    Put = 6,
    /// Get the records' names out of `box`; the reply carries the fds.
    Get = 7,
    /// List the entries of `box` (records: name, kind, `value` size+1 or 0).
    Entries = 8,
    /// Seal `box`.
    Seal = 9,
    /// Unseal `box`.
    Unseal = 10,
    /// The client received every fd of the last `Get` reply: the daemon may
    /// close its copies. Without it (the client vanished) they go back into
    /// the box.
    GetAck = 11,
}

impl Op {
    fn from_u8(b: u8) -> Option<Op> {
        use Op::*;
        [
            Hello, Create, Delete, Boxes, Status, Put, Get, Entries, Seal, Unseal, GetAck,
        ]
        .into_iter()
        .find(|op| *op as u8 == b)
    }

    /// Whether a request of this op carries one fd per record.
    pub fn carries_fds(self) -> bool {
        self == Op::Put
    }
}

/// How a request went: the `op` byte of a reply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// It worked.
    Ok,
    /// It failed with this fdbox error.
    Failed(ErrorCode),
    /// The request was malformed; the daemon closes the connection.
    ProtocolError,
}

const STATUS_OK: u8 = 0;
const STATUS_PROTOCOL_ERROR: u8 = 0xff;

impl Status {
    fn to_u8(self) -> u8 {
        match self {
            Status::Ok => STATUS_OK,
            Status::Failed(code) => {
                1 + ErrorCode::ALL.iter().position(|c| *c == code).unwrap() as u8
            }
            Status::ProtocolError => STATUS_PROTOCOL_ERROR,
        }
    }

    fn from_u8(b: u8) -> Option<Status> {
        match b {
            STATUS_OK => Some(Status::Ok),
            STATUS_PROTOCOL_ERROR => Some(Status::ProtocolError),
            n => ErrorCode::ALL
                .get(n as usize - 1)
                .map(|c| Status::Failed(*c)),
        }
    }
}

/// One record of a frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// An entry or box name (unvalidated bytes: the receiver checks).
    pub name: Vec<u8>,
    /// A [`HandleKind`] code, or 0.
    pub kind: u8,
    /// [`Access`] bits, or the sealed bit in a box listing.
    pub bits: u8,
    /// A size or a count.
    pub value: u64,
}

impl Record {
    /// The record of a handle travelling under `name`.
    pub fn entry(name: &crate::Name, handle: &crate::Handle) -> Self {
        Record {
            name: name.as_str().as_bytes().to_vec(),
            kind: kind_code(handle.kind()),
            bits: access_bits(handle.access()),
            value: 0,
        }
    }
}

/// The op byte of a frame: a request op or a reply status.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// A request.
    Request(Op),
    /// A reply.
    Reply(Status),
}

/// A decoded frame, before its meaning is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Request op or reply status.
    pub head: Head,
    /// `MORE` and future flags.
    pub flags: u8,
    /// The version in `HELLO`, an entries limit in `PUT`, else 0.
    pub arg: u32,
    /// The box the request is about (empty when none).
    pub box_name: Vec<u8>,
    /// The records.
    pub records: Vec<Record>,
    /// A human-readable detail (error messages).
    pub detail: String,
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The frame ended inside a field.
    #[error("truncated frame: {0} missing")]
    Truncated(&'static str),
    /// Bytes after the last field.
    #[error("{0} bytes after the end of the frame")]
    TrailingBytes(usize),
    /// Unknown op or status.
    #[error("unknown op {0}")]
    UnknownOp(u8),
    /// Flags this version does not know.
    #[error("unknown flags {0:#x}")]
    UnknownFlags(u8),
    /// A field that must be zero was not.
    #[error("reserved field is {0}, must be 0")]
    Reserved(u32),
    /// Wrong number of fds for the frame.
    #[error("{fds} fds attached to a frame that takes {expected}")]
    FdCount {
        /// Attached.
        fds: usize,
        /// Allowed.
        expected: usize,
    },
    /// More records than one frame may hold.
    #[error("{0} records in one frame; the limit is {MAX_FDS_PER_FRAME}")]
    TooManyRecords(usize),
    /// The detail was not UTF-8.
    #[error("detail is not UTF-8")]
    BadDetail,
}

/// How the kinds travel.
pub fn kind_code(kind: HandleKind) -> u8 {
    match kind {
        HandleKind::MemoryFile => 1,
        HandleKind::File => 2,
        HandleKind::Directory => 3,
        HandleKind::TcpListener => 4,
        HandleKind::TcpConnection => 5,
    }
}

/// The kind of a code, if it is one.
pub fn kind_from_code(code: u8) -> Option<HandleKind> {
    match code {
        1 => Some(HandleKind::MemoryFile),
        2 => Some(HandleKind::File),
        3 => Some(HandleKind::Directory),
        4 => Some(HandleKind::TcpListener),
        5 => Some(HandleKind::TcpConnection),
        _ => None,
    }
}

/// The HELLO reply's detail: the kinds of handle the daemon's device holds,
/// as their codes (`kinds=1,2,3,4,5`). A reply without it (an older daemon)
/// means every kind.
pub fn hello_detail(kinds: &[HandleKind]) -> String {
    let codes: Vec<String> = kinds.iter().map(|k| kind_code(*k).to_string()).collect();
    format!("kinds={}", codes.join(","))
}

/// The kinds a HELLO reply's detail names, if it names any (unknown codes,
/// from a newer daemon, are left out).
pub fn kinds_of_hello(detail: &str) -> Option<&'static [HandleKind]> {
    let codes = detail.strip_prefix("kinds=")?;
    let mut mask = 0u8;
    for code in codes.split(',').filter(|c| !c.is_empty()) {
        if let Some(kind) = code.parse().ok().and_then(kind_from_code) {
            mask |= 1 << kind_code(kind);
        }
    }
    Some(kinds_of_mask(mask))
}

/// One `'static` slice per set of kinds (at most 32, made once each), for
/// [`crate::device::Capabilities::kinds`].
fn kinds_of_mask(mask: u8) -> &'static [HandleKind] {
    use std::sync::{Mutex, OnceLock};
    type Sets = Mutex<Vec<(u8, &'static [HandleKind])>>;
    static SETS: OnceLock<Sets> = OnceLock::new();
    let mut sets = SETS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, kinds)) = sets.iter().find(|(m, _)| *m == mask) {
        return kinds;
    }
    let kinds: Vec<HandleKind> = (1..=5)
        .filter(|code| mask & (1 << code) != 0)
        .filter_map(kind_from_code)
        .collect();
    // Leaked once per distinct set: bounded by the 32 sets of 5 kinds.
    let kinds: &'static [HandleKind] = Box::leak(kinds.into_boxed_slice());
    sets.push((mask, kinds));
    kinds
}

/// How access travels: read, write, mutate as bits 0, 1, 2.
pub fn access_bits(a: Access) -> u8 {
    a.read as u8 | (a.write as u8) << 1 | (a.mutate as u8) << 2
}

/// The access of bits.
pub fn access_from_bits(b: u8) -> Access {
    Access {
        read: b & 1 != 0,
        write: b & 2 != 0,
        mutate: b & 4 != 0,
    }
}

impl From<Truncated> for WireError {
    fn from(Truncated(what): Truncated) -> Self {
        WireError::Truncated(what)
    }
}

impl Frame {
    /// A request frame.
    pub fn request(op: Op, box_name: &str, records: Vec<Record>) -> Self {
        Self {
            head: Head::Request(op),
            flags: 0,
            arg: 0,
            box_name: box_name.as_bytes().to_vec(),
            records,
            detail: String::new(),
        }
    }

    /// A reply frame.
    pub fn reply(status: Status, records: Vec<Record>, detail: String) -> Self {
        Self {
            head: Head::Reply(status),
            flags: 0,
            arg: 0,
            box_name: Vec::new(),
            records,
            detail,
        }
    }

    /// How many fds must come with this frame.
    pub fn fds_expected(&self) -> usize {
        match self.head {
            Head::Request(op) if op.carries_fds() => self.records.len(),
            Head::Reply(Status::Ok) => usize::MAX, // checked by the client against its request
            _ => 0,
        }
    }

    /// Encode into `out` (cleared first).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let head = match self.head {
            Head::Request(op) => op as u8,
            Head::Reply(status) => status.to_u8(),
        };
        encode_parts(
            head,
            self.flags,
            self.arg,
            &self.box_name,
            Records::Built(&self.records),
            &self.detail,
            out,
        );
    }

    /// Encode into `out` (cleared first) the frame
    /// `Frame { flags, ..Frame::request(op, box_name, records) }`, without
    /// copying the records into a frame first.
    pub fn encode_request(
        op: Op,
        flags: u8,
        arg: u32,
        box_name: &str,
        records: Records<'_>,
        out: &mut Vec<u8>,
    ) {
        encode_parts(op as u8, flags, arg, box_name.as_bytes(), records, "", out);
    }

    /// Decode a request frame that arrived with `fds` fds.
    pub fn decode_request(bytes: &[u8], fds: usize) -> Result<Frame, WireError> {
        let frame = Self::decode(bytes, true, true)?;
        let expected = frame.fds_expected();
        if fds != expected {
            return Err(WireError::FdCount { fds, expected });
        }
        Ok(frame)
    }

    /// Decode a request frame whose fds the kernel dropped (MSG_CTRUNC):
    /// the frame is whole, its fds are not, so their count is not checked.
    pub fn decode_request_without_fds(bytes: &[u8]) -> Result<Frame, WireError> {
        Self::decode(bytes, true, true)
    }

    /// Decode a reply frame.
    pub fn decode_reply(bytes: &[u8]) -> Result<Frame, WireError> {
        Self::decode(bytes, false, true)
    }

    /// Decode a reply frame, checked as [`Frame::decode_reply`] does, but
    /// leave each record's name empty (a GET's reply: the caller knows
    /// what it asked for, and copies no name it would drop).
    pub fn decode_reply_without_names(bytes: &[u8]) -> Result<Frame, WireError> {
        Self::decode(bytes, false, false)
    }

    fn decode(bytes: &[u8], request: bool, names: bool) -> Result<Frame, WireError> {
        let mut r = Reader::new(bytes);
        let op = r.u8("op")?;
        let head = if request {
            Head::Request(Op::from_u8(op).ok_or(WireError::UnknownOp(op))?)
        } else {
            Head::Reply(Status::from_u8(op).ok_or(WireError::UnknownOp(op))?)
        };
        let flags = r.u8("flags")?;
        if flags & !MORE != 0 {
            return Err(WireError::UnknownFlags(flags));
        }
        let count = r.u16("record count")? as usize;
        if count > MAX_FDS_PER_FRAME && request {
            return Err(WireError::TooManyRecords(count));
        }
        let arg = r.u32("arg")?;
        if arg != 0 && !matches!(head, Head::Request(Op::Hello | Op::Put)) {
            return Err(WireError::Reserved(arg));
        }
        let box_name = r.str8("box name")?.to_vec();
        let mut records = Vec::with_capacity(count.min(MAX_FDS_PER_FRAME));
        for _ in 0..count {
            let name = r.str8("record name")?;
            records.push(Record {
                name: if names { name.to_vec() } else { Vec::new() },
                kind: r.u8("record kind")?,
                bits: r.u8("record bits")?,
                value: r.u64("record value")?,
            });
        }
        let detail =
            String::from_utf8(r.str16("detail")?.to_vec()).map_err(|_| WireError::BadDetail)?;
        r.finish().map_err(WireError::TrailingBytes)?;
        Ok(Frame {
            head,
            flags,
            arg,
            box_name,
            records,
            detail,
        })
    }
}

/// The records of a frame to encode, as the caller has them: built
/// records, or entries and names encoded straight from where they are held
/// (no copy of each name into a [`Record`] first).
#[derive(Copy, Clone, Debug)]
pub enum Records<'a> {
    /// Records.
    Built(&'a [Record]),
    /// The records of handles travelling under their names
    /// ([`Record::entry`]).
    Entries(&'a [(crate::Name, crate::Handle)]),
    /// Records that only name an entry (a GET's).
    Names(&'a [crate::Name]),
}

impl<'a> Records<'a> {
    /// How many.
    pub fn len(&self) -> usize {
        match self {
            Self::Built(r) => r.len(),
            Self::Entries(e) => e.len(),
            Self::Names(n) => n.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `range` of these.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Records<'a> {
        match *self {
            Self::Built(r) => Self::Built(&r[range]),
            Self::Entries(e) => Self::Entries(&e[range]),
            Self::Names(n) => Self::Names(&n[range]),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        match self {
            Self::Built(records) => {
                for r in *records {
                    w.str8(&r.name).u8(r.kind).u8(r.bits).u64(r.value);
                }
            }
            Self::Entries(entries) => {
                for (name, handle) in *entries {
                    w.str8(name.as_str().as_bytes())
                        .u8(kind_code(handle.kind()))
                        .u8(access_bits(handle.access()))
                        .u64(0);
                }
            }
            Self::Names(names) => {
                for name in *names {
                    w.str8(name.as_str().as_bytes()).u8(0).u8(0).u64(0);
                }
            }
        }
    }
}

/// Encode into `out` (cleared first) an OK reply whose records are
/// `entries` ([`Record::entry`] of each), without copying their names.
pub fn encode_entries_reply(
    flags: u8,
    entries: &[(crate::Name, crate::Handle)],
    out: &mut Vec<u8>,
) {
    encode_parts(
        Status::Ok.to_u8(),
        flags,
        0,
        b"",
        Records::Entries(entries),
        "",
        out,
    );
}

fn encode_parts(
    head: u8,
    flags: u8,
    arg: u32,
    box_name: &[u8],
    records: Records<'_>,
    detail: &str,
    out: &mut Vec<u8>,
) {
    out.clear();
    let mut w = Writer::new(out);
    // Names are at most 255 bytes: `Name`s, or names decoded from a frame.
    w.u8(head)
        .u8(flags)
        .u16(records.len() as u16)
        .u32(arg)
        .str8(box_name);
    records.write(&mut w);
    // A detail too long for a frame is cut, at a character's boundary.
    let mut end = detail.len().min(u16::MAX as usize);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    w.str16(&detail.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Frame {
        Frame::request(
            Op::Put,
            "box",
            vec![Record {
                name: b"a".to_vec(),
                kind: 1,
                bits: 7,
                value: 0,
            }],
        )
    }

    #[test]
    fn round_trips() {
        let mut bytes = Vec::new();
        let frame = sample();
        frame.encode(&mut bytes);
        assert_eq!(Frame::decode_request(&bytes, 1).unwrap(), frame);
        let reply = Frame::reply(
            Status::Failed(ErrorCode::BoxSealed),
            vec![],
            "sealed".into(),
        );
        reply.encode(&mut bytes);
        assert_eq!(Frame::decode_reply(&bytes).unwrap(), reply);
    }

    #[test]
    fn the_layout_is_pinned() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        assert_eq!(
            bytes,
            b"\x06\0\x01\0\0\0\0\0\x03box\x01a\x01\x07\0\0\0\0\0\0\0\0\0\0"
        );
    }

    #[test]
    fn a_long_detail_is_cut_at_a_character() {
        let mut bytes = Vec::new();
        let detail = format!("x{}", "é".repeat(40_000));
        Frame::reply(Status::ProtocolError, vec![], detail.clone()).encode(&mut bytes);
        let decoded = Frame::decode_reply(&bytes).unwrap();
        assert_eq!(decoded.detail.len(), u16::MAX as usize);
        assert!(detail.starts_with(&decoded.detail));
    }

    #[test]
    fn encode_request_matches_encode() {
        let frame = Frame {
            flags: MORE,
            ..sample()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        frame.encode(&mut a);
        Frame::encode_request(
            Op::Put,
            MORE,
            0,
            "box",
            Records::Built(&frame.records),
            &mut b,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn entries_and_names_encode_as_their_records() {
        let name = crate::Name::new("e1").unwrap();
        let handle = crate::Handle::new_memory_file(&name).unwrap();
        let entries = vec![(name.clone(), handle)];
        let records: Vec<Record> = entries.iter().map(|(n, h)| Record::entry(n, h)).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        Frame {
            flags: MORE,
            ..Frame::reply(Status::Ok, records.clone(), String::new())
        }
        .encode(&mut a);
        encode_entries_reply(MORE, &entries, &mut b);
        assert_eq!(a, b);
        let nameless = Frame::decode_reply_without_names(&b).unwrap();
        assert_eq!(nameless.records[0].name, b"");
        assert_eq!(nameless.records[0].kind, records[0].kind);
        let named: Vec<Record> = vec![Record {
            name: b"e1".to_vec(),
            ..Record::default()
        }];
        Frame::encode_request(Op::Get, 0, 0, "box", Records::Built(&named), &mut a);
        Frame::encode_request(Op::Get, 0, 0, "box", Records::Names(&[name]), &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn every_prefix_of_a_frame_is_truncated() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    Frame::decode_request(&bytes[..len], 1),
                    Err(WireError::Truncated(_))
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn bad_frames_are_named() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        assert_eq!(
            Frame::decode_request(&bytes, 0),
            Err(WireError::FdCount {
                fds: 0,
                expected: 1
            })
        );
        let mut unknown = bytes.clone();
        unknown[0] = 99;
        assert_eq!(
            Frame::decode_request(&unknown, 1),
            Err(WireError::UnknownOp(99))
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            Frame::decode_request(&trailing, 1),
            Err(WireError::TrailingBytes(1))
        );
        let mut too_many = bytes.clone();
        too_many[2..4].copy_from_slice(&300u16.to_le_bytes());
        assert_eq!(
            Frame::decode_request(&too_many, 1),
            Err(WireError::TooManyRecords(300))
        );
        let mut get = Frame::request(Op::Get, "b", vec![Record::default()]);
        get.encode(&mut bytes);
        assert_eq!(
            Frame::decode_request(&bytes, 1),
            Err(WireError::FdCount {
                fds: 1,
                expected: 0
            })
        );
        get.flags = 0x80;
        get.encode(&mut bytes);
        assert_eq!(
            Frame::decode_request(&bytes, 0),
            Err(WireError::UnknownFlags(0x80))
        );
    }
}
