//! The holder's manifest: what it knows about the fds it hands to its next
//! process (systemd's fd store, or its own re-executed image), in a sealed
//! memfd that travels with them. [`crate::daemon::fd_store`] keeps it up to
//! date in the store; [`crate::daemon::Holder::recover`] reads it back.
//!
//!
//! # Format, version 1
//!
//! In the primitives of `device/bytes.rs` (little-endian integers;
//! `str8` is a length byte and that many bytes, here of UTF-8):
//!
//! ```text
//! manifest = magic:"FDBOXMAN" version:u32 generation:u64
//!            box_count:u32 entry_count:u32 box{box_count} entry{entry_count}
//! box      = name:str8 flags:u8                (bit 0: sealed; others 0)
//! entry    = fd:str8 box:str8 name:str8 kind:u8 access:u8
//! ```
//!
//! `kind` and `access` are coded as on the wire ([`wire::kind_code`],
//! [`wire::access_bits`]). Every name must pass the [`Name`] rules, every fd
//! name [`valid_fd_name`]; an entry's box must be listed; no box, entry of a
//! box, or fd name may appear twice; nothing follows the last entry. The
//! magic and version follow the versioning rule of
//! `device/bytes.rs`: a new version may add fields; a reader refuses
//! versions it does not know, and a new fdbox reads every older version.
//!
//!
//! # A manifest that cannot be read
//!
//! [`crate::daemon::Holder::recover`] refuses it, naming the problem, and recovers nothing:
//! the daemon then refuses to start. Starting with part of the state would
//! be worse: the first change would store a new manifest and remove from
//! systemd's store every fd the daemon did not understand, losing them for
//! good, where a daemon that refuses to start leaves the store as it is for a
//! fixed (or matching) fdbox to recover. An fd that the manifest names but
//! that was not handed over is the one loss recovery survives: that entry is
//! reported and skipped.

use crate::device::bytes::{Header, HeaderError, Reader, Truncated, VersionCoding, Writer};
use crate::device::daemon::wire;
use crate::{Access, HandleKind, Name};
use std::collections::HashSet;
use std::io::{self, Write};
use std::os::fd::{BorrowedFd, OwnedFd};

/// The fd name the daemon's listening socket travels under (the `.socket`
/// unit's `FileDescriptorName=`).
pub const LISTENER_FD_NAME: &str = "fdbox.sock";

/// Every manifest's fd name starts with this.
pub const MANIFEST_FD_PREFIX: &str = "fdbox-manifest";

/// The manifest version this build writes (and the newest it reads).
pub const MANIFEST_VERSION: u32 = 1;

/// The manifest's magic and version.
static HEADER: Header = Header {
    format: "fdbox manifest",
    magic: b"FDBOXMAN",
    coding: VersionCoding::Le32,
    oldest: 1,
    newest: MANIFEST_VERSION,
};

/// The largest manifest read back: far above any holder's limits, and low
/// enough that a corrupt length cannot exhaust memory.
const MAX_MANIFEST_LEN: u64 = 1 << 28;

/// The fd name of the manifest of `generation`.
pub fn manifest_fd_name(generation: u64) -> String {
    format!("{MANIFEST_FD_PREFIX}-{generation}")
}

/// Whether systemd accepts `name` as an `FDNAME`: printable ASCII without
/// `:` (which separates `LISTEN_FDNAMES`), 1 to 255 characters.
pub fn valid_fd_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 256
        && name.bytes().all(|b| (b' '..0x7f).contains(&b) && b != b':')
}

/// A box as a manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestBox {
    /// Its name.
    pub name: Name,
    /// Whether it is sealed.
    pub sealed: bool,
}

/// An entry as a manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The name its fd travels under.
    pub fd_name: String,
    /// Its box.
    pub box_name: Name,
    /// Its name in the box.
    pub name: Name,
    /// What the fd is.
    pub kind: HandleKind,
    /// What its holder may do with it.
    pub access: Access,
}

/// What a holder held, less the fds themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Grows with every manifest a holder and its successors write: the
    /// newest of several wins.
    pub generation: u64,
    /// Every box, in name order, empty ones too.
    pub boxes: Vec<ManifestBox>,
    /// Every entry, by box and name.
    pub entries: Vec<ManifestEntry>,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// It does not start with the manifest magic.
    #[error("{}", HeaderError::BadMagic(&HEADER))]
    NotAManifest,
    /// A version this build does not know.
    #[error("{}", HeaderError::UnknownVersion(&HEADER, *.0))]
    UnsupportedVersion(u32),
    /// It ended inside a field.
    #[error("truncated manifest: {0} missing")]
    Truncated(&'static str),
    /// Bytes after the last entry.
    #[error("{0} bytes after the end of the manifest")]
    TrailingBytes(usize),
    /// Larger than any holder writes.
    #[error("manifest of {0} bytes is larger than any fdbox writes")]
    TooLarge(u64),
    /// A box or entry name that breaks the name rules.
    #[error("bad {what} {name:?} in the manifest: {reason}")]
    BadName {
        /// Which name.
        what: &'static str,
        /// The name, lossily decoded.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An fd name systemd would not accept, or one reserved for the manifest
    /// and the listener.
    #[error("bad fd name {0:?} in the manifest")]
    BadFdName(String),
    /// Box flags this version does not know.
    #[error("box {box_name:?} has unknown flags {flags:#x}")]
    UnknownFlags {
        /// The box.
        box_name: Name,
        /// Its flags.
        flags: u8,
    },
    /// A kind code this version does not know.
    #[error("entry {box_name:?}/{entry:?} has unknown kind code {code}")]
    UnknownKind {
        /// The box.
        box_name: Name,
        /// The entry.
        entry: Name,
        /// The code.
        code: u8,
    },
    /// Access bits this version does not know.
    #[error("entry {box_name:?}/{entry:?} has unknown access bits {bits:#x}")]
    UnknownAccess {
        /// The box.
        box_name: Name,
        /// The entry.
        entry: Name,
        /// The bits.
        bits: u8,
    },
    /// A box listed twice.
    #[error("box {0:?} is listed twice")]
    DuplicateBox(Name),
    /// An entry listed twice in one box.
    #[error("entry {entry:?} is listed twice in box {box_name:?}")]
    DuplicateEntry {
        /// The box.
        box_name: Name,
        /// The entry.
        entry: Name,
    },
    /// Two entries with the same fd.
    #[error("fd name {0:?} is given to two entries")]
    DuplicateFdName(String),
    /// An entry of a box that is not listed.
    #[error("entry {entry:?} is in box {box_name:?}, which the manifest does not list")]
    UnknownBox {
        /// The box.
        box_name: Name,
        /// The entry.
        entry: Name,
    },
    /// The memfd could not be read.
    #[error("cannot read the manifest: {0}")]
    Io(io::Error),
}

// Not `#[from]`, which would also make the cause the `source()`, printed
// twice by a chain printer.
impl From<io::Error> for ManifestError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<Truncated> for ManifestError {
    fn from(Truncated(what): Truncated) -> Self {
        Self::Truncated(what)
    }
}

impl From<HeaderError> for ManifestError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::Truncated(Truncated(what)) => Self::Truncated(what),
            HeaderError::BadMagic(_) | HeaderError::BadVersion(_) => Self::NotAManifest,
            HeaderError::UnknownVersion(_, version) => Self::UnsupportedVersion(version),
        }
    }
}

/// A box or entry name, read as `what`.
fn read_name(r: &mut Reader<'_>, what: &'static str) -> Result<Name, ManifestError> {
    let bytes = r.str8(what)?;
    let bad = |reason: String| ManifestError::BadName {
        what,
        name: String::from_utf8_lossy(bytes).into_owned(),
        reason,
    };
    let s = std::str::from_utf8(bytes).map_err(|_| bad("it is not UTF-8".into()))?;
    Name::new(s).map_err(|e| bad(e.to_string()))
}

/// An entry's fd name.
fn read_fd_name(r: &mut Reader<'_>) -> Result<String, ManifestError> {
    let name = String::from_utf8_lossy(r.str8("fd name")?).into_owned();
    if !valid_fd_name(&name) || reserved_fd_name(&name) {
        return Err(ManifestError::BadFdName(name));
    }
    Ok(name)
}

/// Names that only the listener and manifests may have.
fn reserved_fd_name(name: &str) -> bool {
    name == LISTENER_FD_NAME || name.starts_with(MANIFEST_FD_PREFIX)
}

impl Manifest {
    /// The manifest's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28 + self.boxes.len() * 16 + self.entries.len() * 40);
        let mut w = Writer::new(&mut out);
        HEADER.write(&mut w);
        w.u64(self.generation)
            .u32(self.boxes.len() as u32)
            .u32(self.entries.len() as u32);
        // Names are at most 255 bytes (`Name`, `valid_fd_name`).
        for b in &self.boxes {
            w.str8(b.name.as_str().as_bytes()).u8(b.sealed as u8);
        }
        for e in &self.entries {
            w.str8(e.fd_name.as_bytes())
                .str8(e.box_name.as_str().as_bytes())
                .str8(e.name.as_str().as_bytes())
                .u8(wire::kind_code(e.kind))
                .u8(wire::access_bits(e.access));
        }
        out
    }

    /// Read a manifest from its bytes, checking everything the format says.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut r = Reader::new(bytes);
        // Version 1 is the only one yet: it is the one read.
        HEADER.read(&mut r)?;
        let generation = r.u64("generation")?;
        let box_count = r.u32("box count")? as usize;
        let entry_count = r.u32("entry count")? as usize;
        // Each box takes at least 2 bytes and each entry 5: a count larger
        // than the rest of the bytes allows is a truncated manifest, found
        // before it allocates anything.
        if box_count.saturating_mul(2) > r.rest().len() {
            return Err(ManifestError::Truncated("boxes"));
        }
        if entry_count.saturating_mul(5) > r.rest().len() {
            return Err(ManifestError::Truncated("entries"));
        }
        let mut boxes = Vec::with_capacity(box_count);
        let mut box_names = HashSet::with_capacity(box_count);
        for _ in 0..box_count {
            let name = read_name(&mut r, "box name")?;
            let flags = r.u8("box flags")?;
            if flags & !1 != 0 {
                return Err(ManifestError::UnknownFlags {
                    box_name: name,
                    flags,
                });
            }
            if !box_names.insert(name.clone()) {
                return Err(ManifestError::DuplicateBox(name));
            }
            boxes.push(ManifestBox {
                name,
                sealed: flags & 1 != 0,
            });
        }
        let mut entries = Vec::with_capacity(entry_count);
        let mut fd_names = HashSet::with_capacity(entry_count);
        let mut entry_names = HashSet::with_capacity(entry_count);
        for _ in 0..entry_count {
            let fd_name = read_fd_name(&mut r)?;
            let box_name = read_name(&mut r, "entry's box name")?;
            let name = read_name(&mut r, "entry name")?;
            let code = r.u8("entry kind")?;
            let bits = r.u8("entry access")?;
            let Some(kind) = wire::kind_from_code(code) else {
                return Err(ManifestError::UnknownKind {
                    box_name,
                    entry: name,
                    code,
                });
            };
            if bits & !7 != 0 {
                return Err(ManifestError::UnknownAccess {
                    box_name,
                    entry: name,
                    bits,
                });
            }
            if !box_names.contains(&box_name) {
                return Err(ManifestError::UnknownBox {
                    box_name,
                    entry: name,
                });
            }
            if !entry_names.insert((box_name.clone(), name.clone())) {
                return Err(ManifestError::DuplicateEntry {
                    box_name,
                    entry: name,
                });
            }
            if !fd_names.insert(fd_name.clone()) {
                return Err(ManifestError::DuplicateFdName(fd_name));
            }
            entries.push(ManifestEntry {
                fd_name,
                box_name,
                name,
                kind,
                access: wire::access_from_bits(bits),
            });
        }
        r.finish().map_err(ManifestError::TrailingBytes)?;
        Ok(Self {
            generation,
            boxes,
            entries,
        })
    }

    /// The manifest in a new sealed memfd, ready to hand over.
    pub fn to_memfd(&self) -> io::Result<OwnedFd> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let fd = rustix::fs::memfd_create(
            MANIFEST_FD_PREFIX,
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        file.write_all(&self.encode())?;
        // Sealed: whoever else gets a copy (systemd) cannot change it.
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )?;
        Ok(file.into())
    }

    /// Read the manifest held by `fd` (from its start, whatever its offset).
    pub fn read(fd: BorrowedFd<'_>) -> Result<Self, ManifestError> {
        let len = rustix::fs::fstat(fd).map_err(io::Error::from)?.st_size as u64;
        if len > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge(len));
        }
        let mut bytes = vec![0; len as usize];
        let mut done = 0;
        while done < bytes.len() {
            match rustix::io::pread(fd, &mut bytes[done..], done as u64) {
                Ok(0) => return Err(ManifestError::Truncated("bytes the file claims")),
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        Self::decode(&bytes)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    pub(in crate::daemon) fn sample() -> Manifest {
        Manifest {
            generation: 7,
            boxes: vec![
                ManifestBox {
                    name: name("a"),
                    sealed: true,
                },
                ManifestBox {
                    name: name("empty"),
                    sealed: false,
                },
            ],
            entries: vec![ManifestEntry {
                fd_name: "e3".into(),
                box_name: name("a"),
                name: name("x"),
                kind: HandleKind::MemoryFile,
                access: Access {
                    read: true,
                    write: false,
                    mutate: true,
                },
            }],
        }
    }

    #[test]
    fn round_trips_through_a_sealed_memfd() {
        let manifest = sample();
        assert_eq!(Manifest::decode(&manifest.encode()).unwrap(), manifest);
        let fd = manifest.to_memfd().unwrap();
        assert_eq!(Manifest::read(fd.as_fd()).unwrap(), manifest);
        let mut file = std::fs::File::from(fd);
        assert!(file.write_all(b"more").is_err(), "sealed");
    }

    #[test]
    fn the_layout_is_version_1() {
        let mut expected = b"FDBOXMAN\x01\0\0\0\x07\0\0\0\0\0\0\0\x02\0\0\0\x01\0\0\0".to_vec();
        expected.extend_from_slice(b"\x01a\x01\x05empty\x00");
        expected.extend_from_slice(b"\x02e3\x01a\x01x\x01\x05");
        assert_eq!(sample().encode(), expected);
    }

    #[test]
    fn every_prefix_is_truncated() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    Manifest::decode(&bytes[..len]),
                    Err(ManifestError::Truncated(_))
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn bad_manifests_are_named() {
        let bytes = sample().encode();
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(matches!(
            Manifest::decode(&magic),
            Err(ManifestError::NotAManifest)
        ));
        let mut version = bytes.clone();
        version[8] = 9;
        let err = Manifest::decode(&version).unwrap_err();
        assert!(matches!(err, ManifestError::UnsupportedVersion(9)));
        assert!(err.to_string().contains("version 9"), "{err}");
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Manifest::decode(&trailing),
            Err(ManifestError::TrailingBytes(1))
        ));

        let mut m = sample();
        m.entries[0].box_name = name("nowhere");
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::UnknownBox { .. })
        ));
        let mut m = sample();
        m.boxes.push(m.boxes[0].clone());
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::DuplicateBox(_))
        ));
        let mut m = sample();
        let mut twice = m.entries[0].clone();
        twice.fd_name = "e4".into();
        m.entries.push(twice);
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::DuplicateEntry { .. })
        ));
        let mut m = sample();
        let mut shared_fd = m.entries[0].clone();
        shared_fd.name = name("y");
        m.entries.push(shared_fd);
        assert!(matches!(
            Manifest::decode(&m.encode()),
            Err(ManifestError::DuplicateFdName(_))
        ));
        for bad in ["a:b", "", "fdbox-manifest-1", "fdbox.sock", "tab\t"] {
            let mut m = sample();
            m.entries[0].fd_name = bad.into();
            assert!(
                matches!(
                    Manifest::decode(&m.encode()),
                    Err(ManifestError::BadFdName(_))
                ),
                "{bad:?}"
            );
        }
        // Box flags, kind and access are the bytes after the names.
        let mut flags = bytes.clone();
        flags[28 + 2] = 2;
        assert!(matches!(
            Manifest::decode(&flags),
            Err(ManifestError::UnknownFlags { flags: 2, .. })
        ));
        let len = bytes.len();
        let mut kind = bytes.clone();
        kind[len - 2] = 99;
        assert!(matches!(
            Manifest::decode(&kind),
            Err(ManifestError::UnknownKind { code: 99, .. })
        ));
        let mut access = bytes.clone();
        access[len - 1] = 8;
        assert!(matches!(
            Manifest::decode(&access),
            Err(ManifestError::UnknownAccess { bits: 8, .. })
        ));
        let mut bad_name = bytes.clone();
        bad_name[28 + 1] = b'/';
        assert!(matches!(
            Manifest::decode(&bad_name),
            Err(ManifestError::BadName { .. })
        ));
    }

    #[test]
    fn fd_names_follow_systemd_rules() {
        assert!(valid_fd_name("e12345"));
        assert!(valid_fd_name(&manifest_fd_name(u64::MAX)));
        assert!(!valid_fd_name("a:b"));
        assert!(!valid_fd_name(""));
        assert!(!valid_fd_name("é"));
        assert!(!valid_fd_name(&"x".repeat(256)));
    }
}
