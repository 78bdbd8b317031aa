//! Handing a holder's boxes to its next process: systemd's fd store and the
//! daemon's in-place upgrade, one mechanism for both.
//!
//! A holder's state is its fds plus what fdbox knows about them. The fds
//! travel as themselves, each under an fd *name* (`e` and a number, unique for
//! the life of a holder and its successors, never reused); what is known
//! about them travels in one more fd, a sealed memfd holding a [`Manifest`]:
//! every box with its seal (empty boxes too) and, for every entry, its box,
//! its name, its kind, its access, and the name of its fd.
//!
//! The next process gets all of them as `LISTEN_FDS`, named by
//! `LISTEN_FDNAMES`: from systemd, which kept them in the service's fd store
//! (`FDSTORE=1`), or from the previous image of the same process (`fdbox
//! daemon` re-executing itself on SIGHUP). Either way [`Holder::recover`]
//! rebuilds the boxes from them.
//!
//! # Keeping the fd store in sync
//!
//! With an [`FdStore`] attached ([`Holder::attach_store`]), the holder brings
//! the store in line with its boxes after every change, before the peer hears
//! of the change, in an order that leaves the store consistent if the daemon
//! dies at any point:
//!
//! 1. new fds are stored, one message each (systemd gives a message's fds one
//!    `FDNAME`, and hands fds back in no particular order, so one name per fd
//!    means one fd per message);
//! 2. a new manifest is stored under a new name, `fdbox-manifest-<generation>`
//!    (systemd does not replace an fd stored under a name already in use, and
//!    `FDSTOREREMOVE` and `FDSTORE` cannot share a message, so a manifest
//!    under a fixed name could not be replaced without a moment with none);
//! 3. the previous manifest is removed;
//! 4. fds no longer held are removed.
//!
//! Recovery takes the manifest of the highest generation and closes every fd
//! it does not mention. Entries lent to a peer that has not yet acknowledged
//! them stay in the store, so a daemon that dies mid-`get` gives them back
//! on its next start, as a live daemon does when the peer vanishes.
//!
//! # Manifest format, version 1
//!
//! Little-endian; `str8` is a length byte and that many bytes of UTF-8.
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
//! box, or fd name may appear twice. A new version may add fields; a reader
//! refuses versions it does not know, and a new fdbox reads every older
//! version.
//!
//! # A manifest that cannot be read
//!
//! [`Holder::recover`] refuses it, naming the problem, and recovers nothing:
//! the daemon then refuses to start. Starting with part of the state would
//! be worse: the first change would store a new manifest and remove from
//! systemd's store every fd the daemon did not understand, losing them for
//! good, where a daemon that refuses to start leaves the store as it is for a
//! fixed (or matching) fdbox to recover. An fd that the manifest names but
//! that was not handed over is the one loss recovery survives: that entry is
//! reported and skipped.

use super::server::Holder;
use super::wire;
use crate::device::{Device, RefusedBatch};
use crate::{Access, Handle, HandleKind, HeldBox, Name};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// The fd name the daemon's listening socket travels under (the `.socket`
/// unit's `FileDescriptorName=`).
pub const LISTENER_FD_NAME: &str = "fdbox.sock";

/// Every manifest's fd name starts with this.
pub const MANIFEST_FD_PREFIX: &str = "fdbox-manifest";

/// The manifest version this build writes (and the newest it reads).
pub const MANIFEST_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"FDBOXMAN";

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
    #[error("not an fdbox manifest (bad magic)")]
    NotAManifest,
    /// A version this build does not know.
    #[error(
        "manifest version {0} is newer than this fdbox reads ({MANIFEST_VERSION}): run the fdbox that wrote it"
    )]
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

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ManifestError> {
        if self.bytes.len() < n {
            return Err(ManifestError::Truncated(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, ManifestError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, ManifestError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, ManifestError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn str8(&mut self, what: &'static str) -> Result<&'a [u8], ManifestError> {
        let len = self.u8(what)? as usize;
        self.take(len, what)
    }
    fn name(&mut self, what: &'static str) -> Result<Name, ManifestError> {
        let bytes = self.str8(what)?;
        let bad = |reason: String| ManifestError::BadName {
            what,
            name: String::from_utf8_lossy(bytes).into_owned(),
            reason,
        };
        let s = std::str::from_utf8(bytes).map_err(|_| bad("it is not UTF-8".into()))?;
        Name::new(s).map_err(|e| bad(e.to_string()))
    }
    fn fd_name(&mut self) -> Result<String, ManifestError> {
        let bytes = self.str8("fd name")?;
        let name = String::from_utf8_lossy(bytes).into_owned();
        if !valid_fd_name(&name) || reserved_fd_name(&name) {
            return Err(ManifestError::BadFdName(name));
        }
        Ok(name)
    }
}

/// Names that only the listener and manifests may have.
fn reserved_fd_name(name: &str) -> bool {
    name == LISTENER_FD_NAME || name.starts_with(MANIFEST_FD_PREFIX)
}

fn push_str8(out: &mut Vec<u8>, s: &str) {
    // Names are at most 255 bytes (`Name`, `valid_fd_name`).
    debug_assert!(s.len() <= 255);
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

impl Manifest {
    /// The manifest's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28 + self.boxes.len() * 16 + self.entries.len() * 40);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&(self.boxes.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for b in &self.boxes {
            push_str8(&mut out, b.name.as_str());
            out.push(b.sealed as u8);
        }
        for e in &self.entries {
            push_str8(&mut out, &e.fd_name);
            push_str8(&mut out, e.box_name.as_str());
            push_str8(&mut out, e.name.as_str());
            out.push(wire::kind_code(e.kind));
            out.push(wire::access_bits(e.access));
        }
        out
    }

    /// Read a manifest from its bytes, checking everything the format says.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut r = Reader { bytes };
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(ManifestError::NotAManifest);
        }
        let version = r.u32("version")?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        let generation = r.u64("generation")?;
        let box_count = r.u32("box count")? as usize;
        let entry_count = r.u32("entry count")? as usize;
        // Each box takes at least 2 bytes and each entry 5: a count larger
        // than the rest of the bytes allows is a truncated manifest, found
        // before it allocates anything.
        if box_count.saturating_mul(2) > r.bytes.len() {
            return Err(ManifestError::Truncated("boxes"));
        }
        if entry_count.saturating_mul(5) > r.bytes.len() {
            return Err(ManifestError::Truncated("entries"));
        }
        let mut boxes = Vec::with_capacity(box_count);
        let mut box_names = HashSet::with_capacity(box_count);
        for _ in 0..box_count {
            let name = r.name("box name")?;
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
            let fd_name = r.fd_name()?;
            let box_name = r.name("entry's box name")?;
            let name = r.name("entry name")?;
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
        if !r.bytes.is_empty() {
            return Err(ManifestError::TrailingBytes(r.bytes.len()));
        }
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

/// Where a holder keeps a copy of its fds that outlives its process:
/// systemd's fd store, which `fdbox daemon` reaches over `NOTIFY_SOCKET`.
pub trait FdStore: Send {
    /// Keep `fd` under `name`. Names are never reused for another fd.
    fn store(&mut self, name: &str, fd: BorrowedFd<'_>) -> io::Result<()>;
    /// Drop whatever is kept under `name`.
    fn remove(&mut self, name: &str) -> io::Result<()>;
}

/// Why [`Holder::recover`] refused a hand-over. Nothing was recovered and
/// the fds were closed (systemd keeps its own copies of what it stored).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// The holder already holds boxes.
    #[error("the holder already holds boxes; recover into a new one")]
    NotEmpty,
    /// A manifest could not be read.
    #[error("the manifest {fd_name:?} cannot be used: {error}")]
    Manifest {
        /// Its fd name.
        fd_name: String,
        /// What is wrong with it (in the message, so not a `source()`).
        error: ManifestError,
    },
    /// Two manifests claim to be the newest.
    #[error("two manifests have generation {0}: the hand-over is inconsistent")]
    SameGeneration(u64),
    /// An fd is not of the kind the manifest says.
    #[error(
        "the fd {fd_name:?} of entry {box_name:?}/{entry:?} is not the {expected} the manifest says: the hand-over is inconsistent"
    )]
    KindMismatch {
        /// The fd name.
        fd_name: String,
        /// The box.
        box_name: Name,
        /// The entry.
        entry: Name,
        /// What the manifest says it is.
        expected: HandleKind,
    },
    /// An fd could not be examined.
    #[error("cannot examine the fd {fd_name:?}: {error}")]
    Fd {
        /// The fd name.
        fd_name: String,
        /// Why (in the message, so not a `source()`).
        error: io::Error,
    },
}

/// What [`Holder::recover`] rebuilt.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The generation of the manifest used, if there was one.
    pub generation: Option<u64>,
    /// Boxes rebuilt.
    pub boxes: usize,
    /// Entries rebuilt.
    pub entries: usize,
    /// Fds that the manifest does not mention (closed).
    pub unknown: Vec<String>,
    /// Older manifests (closed): left over when a daemon died between
    /// storing a new manifest and removing the old one.
    pub superseded: Vec<String>,
    /// Entries the manifest lists whose fd was not handed over, as (box,
    /// entry, fd name): lost.
    pub missing: Vec<(Name, Name, String)>,
}

/// Fds with their fd names.
type NamedFds<'a> = Vec<(String, BorrowedFd<'a>)>;

/// The fd names of a holder's fds, and what the fd store has.
#[derive(Default)]
pub(super) struct HandoverState {
    /// The name of every held fd, by its number in this process. Each op
    /// that closes held fds syncs before the next op can hold new ones, so a
    /// number is never mistaken for an earlier fd of the same number.
    names: HashMap<RawFd, String>,
    next_name: u64,
    generation: u64,
    store: Option<StoreSync>,
}

struct StoreSync {
    sink: Box<dyn FdStore>,
    /// Names the store holds, as far as this process knows.
    stored: HashSet<String>,
    /// The manifest's name in the store.
    manifest: Option<String>,
    /// The last manifest stored, less its generation: an op that changed
    /// nothing stores nothing.
    last: Option<Vec<u8>>,
    /// Store every fd on the next sync, whether or not it is known to be
    /// stored (systemd ignores an fd it already has).
    full: bool,
    /// A failure was logged; the next success says so.
    failing: bool,
}

impl HandoverState {
    fn name_of(&mut self, fd: RawFd) -> &str {
        let next = &mut self.next_name;
        self.names.entry(fd).or_insert_with(|| {
            let name = format!("e{next}");
            *next += 1;
            name
        })
    }

    /// The manifest of `boxes` and the fd of each entry with its name;
    /// forgets the names of fds no longer held.
    fn describe<'a>(&mut self, boxes: &[HeldBox<'a>], generation: u64) -> (Manifest, NamedFds<'a>) {
        let mut manifest = Manifest {
            generation,
            ..Manifest::default()
        };
        let mut fds = Vec::new();
        let mut held = HashSet::new();
        for b in boxes {
            manifest.boxes.push(ManifestBox {
                name: b.name.clone(),
                sealed: b.sealed,
            });
            for (name, handle) in &b.entries {
                let raw = handle.fd().as_raw_fd();
                held.insert(raw);
                let fd_name = self.name_of(raw).to_owned();
                manifest.entries.push(ManifestEntry {
                    fd_name: fd_name.clone(),
                    box_name: b.name.clone(),
                    name: (*name).clone(),
                    kind: handle.kind(),
                    access: handle.access(),
                });
                fds.push((fd_name, handle.fd()));
            }
        }
        self.names.retain(|raw, _| held.contains(raw));
        (manifest, fds)
    }

    /// Bring the fd store, if any, in line with `boxes` (see the module
    /// doc for the order and why).
    pub(super) fn sync(&mut self, boxes: &[HeldBox<'_>]) {
        if self.store.is_none() {
            return;
        }
        let (mut manifest, fds) = self.describe(boxes, 0);
        let store = self.store.as_mut().expect("checked above");
        let mut failed = None;
        for (name, fd) in &fds {
            if store.full || !store.stored.contains(name) {
                match store.sink.store(name, *fd) {
                    Ok(()) => {
                        store.stored.insert(name.clone());
                    }
                    Err(e) => {
                        failed.get_or_insert(format!("cannot store fd {name}: {e}"));
                    }
                }
            }
        }
        let body = manifest.encode();
        // Until every fd is stored, the last manifest stays: it describes
        // an older state whose fds are all there.
        if failed.is_none() && (store.full || store.last.as_ref() != Some(&body)) {
            self.generation += 1;
            manifest.generation = self.generation;
            let name = manifest_fd_name(self.generation);
            match manifest
                .to_memfd()
                .and_then(|memfd| store.sink.store(&name, memfd.as_fd()))
            {
                Ok(()) => {
                    store.stored.insert(name.clone());
                    store.last = Some(body);
                    if let Some(old) = store.manifest.replace(name) {
                        remove(store, &old, &mut failed);
                    }
                }
                Err(e) => {
                    failed.get_or_insert(format!("cannot store the manifest {name}: {e}"));
                }
            }
        }
        if failed.is_none() {
            let current: HashSet<&str> = fds.iter().map(|(name, _)| name.as_str()).collect();
            let gone: Vec<String> = store
                .stored
                .iter()
                .filter(|name| {
                    !current.contains(name.as_str()) && Some(*name) != store.manifest.as_ref()
                })
                .cloned()
                .collect();
            for name in gone {
                remove(store, &name, &mut failed);
            }
            store.full = false;
        }
        match failed {
            Some(e) if !store.failing => {
                store.failing = true;
                tracing::error!("the fd store is out of date, retrying at the next change: {e}");
            }
            Some(e) => tracing::debug!("the fd store is still out of date: {e}"),
            None if store.failing => {
                store.failing = false;
                tracing::info!("the fd store is up to date again");
            }
            None => {}
        }
    }

    /// Whether an fd store is attached.
    pub(super) fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// The manifest of `boxes` in a memfd with its generation, and every fd
    /// to hand over with its name.
    pub(super) fn export<'a>(
        &mut self,
        boxes: &[HeldBox<'a>],
    ) -> io::Result<(u64, OwnedFd, NamedFds<'a>)> {
        self.generation += 1;
        let (manifest, fds) = self.describe(boxes, self.generation);
        let memfd = manifest.to_memfd()?;
        // The next image learns what the store holds from what it is
        // handed: the store gets this manifest too, in place of its last.
        if let Some(store) = self.store.as_mut() {
            let name = manifest_fd_name(self.generation);
            match store.sink.store(&name, memfd.as_fd()) {
                Ok(()) => {
                    if let Some(old) = store.manifest.replace(name) {
                        let mut failed = None;
                        remove(store, &old, &mut failed);
                        if let Some(e) = failed {
                            tracing::warn!("{e}");
                        }
                    }
                }
                Err(e) => tracing::warn!("cannot store the manifest {name}: {e}"),
            }
        }
        Ok((self.generation, memfd, fds))
    }
}

fn remove(store: &mut StoreSync, name: &str, failed: &mut Option<String>) {
    match store.sink.remove(name) {
        Ok(()) => {
            store.stored.remove(name);
        }
        Err(e) => {
            failed.get_or_insert(format!("cannot remove fd {name} from the store: {e}"));
        }
    }
}

/// The number in an fd name this module gives (`e12`), if it is one.
fn name_number(name: &str) -> Option<u64> {
    name.strip_prefix('e')?.parse().ok()
}

impl Holder {
    /// Rebuild the boxes an earlier holder handed over: `fds` with their
    /// names (`LISTEN_FDS` and `LISTEN_FDNAMES`, less the listening socket).
    /// The newest manifest among them says which fd is which entry; fds it
    /// does not mention are closed with a warning, and an entry whose fd is
    /// missing is reported and skipped. A manifest that cannot be read, or
    /// an fd of another kind than its entry's, refuses the whole hand-over
    /// (see the module doc for why). Call it on a new holder, before it
    /// serves.
    pub fn recover(&self, fds: Vec<(String, OwnedFd)>) -> Result<Recovery, RecoverError> {
        let mut shared = self.shared();
        if !self.boxes().boxes().map(|b| b.is_empty()).unwrap_or(false) {
            return Err(RecoverError::NotEmpty);
        }
        let (manifests, others): (Vec<_>, Vec<_>) = fds
            .into_iter()
            .partition(|(name, _)| name.starts_with(MANIFEST_FD_PREFIX));
        let mut newest: Option<(String, Manifest)> = None;
        let mut superseded = Vec::new();
        for (fd_name, fd) in &manifests {
            let manifest = Manifest::read(fd.as_fd()).map_err(|error| RecoverError::Manifest {
                fd_name: fd_name.clone(),
                error,
            })?;
            match &newest {
                Some((_, best)) if best.generation == manifest.generation => {
                    return Err(RecoverError::SameGeneration(manifest.generation));
                }
                Some((_, best)) if best.generation > manifest.generation => {
                    superseded.push(fd_name.clone());
                }
                _ => {
                    if let Some((old, _)) = newest.replace((fd_name.clone(), manifest)) {
                        superseded.push(old);
                    }
                }
            }
        }
        let manifest = newest.map(|(_, m)| m).unwrap_or_default();

        let mut by_name: BTreeMap<String, OwnedFd> = BTreeMap::new();
        let mut unknown = Vec::new();
        for (name, fd) in others {
            match by_name.entry(name) {
                // systemd keeps every fd sent under a name; this module never
                // sends two under one.
                std::collections::btree_map::Entry::Occupied(taken) => {
                    unknown.push(taken.key().clone())
                }
                std::collections::btree_map::Entry::Vacant(free) => {
                    free.insert(fd);
                }
            }
        }
        // Check every fd before taking any, so a refusal leaves them all.
        for e in &manifest.entries {
            if let Some(fd) = by_name.get(&e.fd_name) {
                let stat = rustix::fs::fstat(fd).map_err(|err| RecoverError::Fd {
                    fd_name: e.fd_name.clone(),
                    error: err.into(),
                })?;
                let is_dir = rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir();
                if is_dir != (e.kind == HandleKind::Directory) {
                    return Err(RecoverError::KindMismatch {
                        fd_name: e.fd_name.clone(),
                        box_name: e.box_name.clone(),
                        entry: e.name.clone(),
                        expected: e.kind,
                    });
                }
            }
        }

        let mut recovery = Recovery {
            generation: (!manifests.is_empty()).then_some(manifest.generation),
            superseded,
            ..Recovery::default()
        };
        let mut entries: BTreeMap<Name, Vec<(Name, Handle)>> = BTreeMap::new();
        let state = &mut shared.handover;
        for e in manifest.entries {
            let Some(fd) = by_name.remove(&e.fd_name) else {
                tracing::error!(
                    "entry {:?} of box {:?} is lost: its fd {:?} was not handed over",
                    e.name.as_str(),
                    e.box_name.as_str(),
                    e.fd_name
                );
                recovery.missing.push((e.box_name, e.name, e.fd_name));
                continue;
            };
            // Go on naming fds after the highest name handed over, so no
            // name is ever given to two fds.
            if let Some(n) = name_number(&e.fd_name) {
                state.next_name = state.next_name.max(n + 1);
            }
            state.names.insert(fd.as_raw_fd(), e.fd_name);
            entries
                .entry(e.box_name)
                .or_default()
                .push((e.name, Handle::from_parts(fd, e.kind, e.access)));
        }
        for b in manifest.boxes {
            let contents = entries.remove(&b.name).unwrap_or_default();
            let count = contents.len();
            // The manifest has no duplicates and the holder was empty, so
            // this holds only while a peer creates boxes meanwhile (which
            // `recover` before serving rules out).
            if let Err(RefusedBatch { error, entries }) =
                self.boxes().insert_box(b.name.clone(), b.sealed, contents)
            {
                tracing::error!("box {:?} cannot be rebuilt: {error}", b.name.as_str());
                recovery.missing.extend(
                    entries
                        .into_iter()
                        .map(|(name, _)| (b.name.clone(), name, String::new())),
                );
                continue;
            }
            recovery.boxes += 1;
            recovery.entries += count;
        }
        debug_assert!(entries.is_empty(), "the manifest lists every entry's box");
        self.held_add(recovery.entries);
        state.generation = manifest.generation;
        for name in by_name.into_keys() {
            tracing::warn!("closing the fd {name:?} handed over: no manifest mentions it");
            unknown.push(name);
        }
        recovery.unknown = unknown;
        Ok(recovery)
    }

    /// Keep `store` in line with the boxes from now on, after every change.
    /// `inherited` names what the store held when this process started
    /// (`LISTEN_FDNAMES` less the listener): names no longer needed are
    /// removed from it. The first sync stores every fd again, which systemd
    /// ignores for fds it already has.
    pub fn attach_store(&self, store: Box<dyn FdStore>, inherited: Vec<String>) {
        let mut shared = self.shared();
        shared.handover.store = Some(StoreSync {
            sink: store,
            stored: inherited.into_iter().collect(),
            manifest: None,
            last: None,
            full: true,
            failing: false,
        });
        self.sync(&mut shared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn sample() -> Manifest {
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

    fn holder() -> std::sync::Arc<Holder> {
        Holder::new(super::super::Limits::from_rlimit())
    }

    fn memfd(text: &str) -> OwnedFd {
        let fd = Handle::new_memory_file(&name("t")).unwrap().into_fd();
        let mut file = std::fs::File::from(fd);
        file.write_all(text.as_bytes()).unwrap();
        file.into()
    }

    #[test]
    fn recovery_skips_a_missing_fd_and_closes_unknown_ones() {
        let mut manifest = sample();
        manifest.boxes[0].sealed = false;
        let mut lost = manifest.entries[0].clone();
        lost.fd_name = "e9".into();
        lost.name = name("lost");
        manifest.entries.push(lost);
        let fds = vec![
            (manifest_fd_name(7), manifest.to_memfd().unwrap()),
            ("e3".to_owned(), memfd("kept")),
            ("stray".to_owned(), memfd("stray")),
        ];
        let holder = holder();
        let recovery = holder.recover(fds).unwrap();
        assert_eq!(recovery.generation, Some(7));
        assert_eq!((recovery.boxes, recovery.entries), (2, 1));
        assert_eq!(recovery.unknown, ["stray"]);
        assert_eq!(
            recovery.missing,
            [(name("a"), name("lost"), "e9".to_owned())]
        );
        let h = holder.boxes().get(&name("a"), &name("x")).unwrap();
        assert_eq!(h.kind(), HandleKind::MemoryFile);
        assert!(!h.access().write, "access comes from the manifest");
        assert_eq!(holder.boxes().status(&name("empty")).unwrap().entries, 0);
        assert!(matches!(
            holder.recover(Vec::new()),
            Err(RecoverError::NotEmpty)
        ));
    }

    #[test]
    fn recovery_takes_the_newest_manifest_and_refuses_inconsistent_ones() {
        let old = Manifest {
            generation: 3,
            ..Manifest::default()
        };
        let fds = vec![
            (manifest_fd_name(3), old.to_memfd().unwrap()),
            (manifest_fd_name(7), sample().to_memfd().unwrap()),
            ("e3".to_owned(), memfd("x")),
        ];
        let recovery = holder().recover(fds).unwrap();
        assert_eq!(recovery.generation, Some(7));
        assert_eq!(recovery.superseded, [manifest_fd_name(3)]);
        assert_eq!(recovery.entries, 1);

        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        let fds = vec![
            (manifest_fd_name(7), sample().to_memfd().unwrap()),
            ("e3".to_owned(), dir.into()),
        ];
        assert!(matches!(
            holder().recover(fds),
            Err(RecoverError::KindMismatch { .. })
        ));

        let fds = vec![(manifest_fd_name(1), memfd("not a manifest"))];
        let err = holder().recover(fds).unwrap_err();
        assert!(err.to_string().contains("fdbox-manifest-1"), "{err}");
        assert!(err.to_string().contains("bad magic"), "{err}");
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
