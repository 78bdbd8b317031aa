//! [`LiveUpdateDevice`]: the [`Device`] over Linux's Live Update
//! Orchestrator, `/dev/liveupdate` (6.19+; the rules it follows are Linux
//! 7.2's), through the UAPI in [`super::liveupdate_uapi`].
//!
//! # How boxes map to LUO
//!
//! LUO has *sessions*: a named set of files preserved under 64-bit tokens,
//! carried across a kexec and retrieved by name in the next kernel. It has
//! no operation to take one file back out of a session before the kexec,
//! and a session exists only while its fd is open. So:
//!
//! - A box is held by this device: its entries' fds live in this process
//!   while the box is unsealed. [`Device::put`] checks the kind at put time
//!   (LUO preserves memfds only: anything else is kind-not-supported there,
//!   not at seal), and that the same open file is in no other entry
//!   ([`Error::AlreadyBoxed`]; LUO preserves a file once).
//! - [`Device::seal`] is `CREATE_SESSION` under the box's name (1 to 63
//!   bytes, with the scope; longer is name-too-long) and `PRESERVE_FD` of
//!   every entry: token 0 is a memfd *manifest* (the format the FDBox
//!   device uses: names, kinds, access, sizes; the scheme systemd uses for
//!   its fd store), and the entries, in name order, are tokens 1, 2, ...
//!   All or nothing: on any failure the session is closed, which
//!   un-preserves what it had, and the box stays unsealed.
//! - [`Device::unseal`] closes the session, which un-preserves the files;
//!   [`Device::delete_box`] closes it and the entries' fds.
//! - An *index* session (`<scope>fdbox/index.0` or `.1`, a name no box can
//!   have as box names hold no '/') preserves at token 0 the list of sealed
//!   boxes, so the next kernel's device can find them: LUO cannot list
//!   sessions. It is replaced on every seal, unseal and delete, the new one
//!   created (under the other of the two names, with a higher generation)
//!   before the old one is closed, so a kexec at any moment finds one.
//! - After a kexec, [`LiveUpdateDevice::open`] retrieves the index, then
//!   each listed session (`RETRIEVE_SESSION`), its manifest and its files
//!   (`RETRIEVE_FD`), `FINISH`es it, and seals the box again under a new
//!   outgoing session: sealed boxes come back sealed, and keep going to
//!   the kexec after.
//!
//! # What differs from the FDBox semantics, and why
//!
//! - Sealed boxes survive a kexec, not the exit of the process that holds
//!   the device: closing a session fd un-preserves it, and the kernel closes
//!   them all when the process exits ([`Capabilities::survives_host_restart`]
//!   is false). Boxes that must outlive a host process belong in the holder
//!   daemon.
//! - `/dev/liveupdate` allows one open at a time: one process (one host, or
//!   one holder daemon) owns every box. A second gets device-unavailable,
//!   saying so.
//! - Contents, size and file offset survive the kexec, and so do the memfd
//!   seals an entry had when its box was sealed (Linux 7.2 re-applies
//!   them); the memfd's name does not (the kernel's new memfd has none).
//! - **A sealed box's memory files have a fixed size.** The kernel freezes
//!   a preserved memfd's size (memfd_luo_preserve): while the box is
//!   sealed, anything that still shares one of its files (a stream the
//!   guest opened before the put, a dup the host kept) can write within
//!   the file, and those bytes travel, but growing or shrinking it fails
//!   with `EPERM` (ftruncate, fallocate, a write past the end); unsealing
//!   lifts that. The box's entry sizes are therefore the sizes at seal,
//!   which is what the manifest records; [`Device::entries`] reports each
//!   file's size now. Under `fdbox emulate --device liveupdate`, a write
//!   past the end is not refused, but only the size at seal travels.
//!
//! Why one long file: the device is one state machine (boxes as sessions,
//! the index session, adoption after a kexec) whose operations must keep the
//! index and the sessions in step; the UAPI, ioctl and manifest are apart.

use super::ioctl::ioctl;
use super::liveupdate_uapi::{
    LIVEUPDATE_DEVICE, LIVEUPDATE_IOCTL_CREATE_SESSION, LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
    LIVEUPDATE_SESSION_FINISH, LIVEUPDATE_SESSION_NAME_LENGTH, LIVEUPDATE_SESSION_PRESERVE_FD,
    LIVEUPDATE_SESSION_RETRIEVE_FD, LiveupdateSession, LiveupdateSessionFd,
    LiveupdateSessionFinish, session_name_field,
};
use super::manifest::{self, Entry, text_field};
use crate::device::bytes::{Header, Reader, VersionCoding, Writer};
use crate::device::rules::{PutTarget, check_put, guest_quota};
use crate::device::{BoxStatus, Capabilities, Device, EntryInfo, RefusedBatch};
use crate::{Error, Handle, HandleKind, Name};
use rustix::io::Errno;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};

/// The kinds LUO preserves.
const KINDS: &[HandleKind] = &[HandleKind::MemoryFile];

/// The index session's name, after the scope, before `.0` / `.1`.
const INDEX_SESSION: &str = "fdbox/index";

/// The index's magic and version. An index is text, in NUL-terminated
/// fields (the primitives of [`crate::device::bytes`], whose versioning
/// rule it follows, the version in decimal):
///
/// ```text
/// index = magic:"fdbox-index\0" version:"1\0" generation "\0" (box "\0")*
/// ```
///
/// `generation` is decimal; each `box` is the name of a sealed box.
static INDEX_HEADER: Header = Header {
    format: "fdbox index",
    magic: b"fdbox-index\0",
    coding: VersionCoding::Decimal,
    oldest: 1,
    newest: 1,
};

/// The manifest's token; entries follow from 1.
const MANIFEST_TOKEN: u64 = 0;

/// A [`Device`] over `/dev/liveupdate` (see the module docs).
pub struct LiveUpdateDevice {
    device: OwnedFd,
    scope: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    boxes: BTreeMap<Name, BoxState>,
    /// Which box and entry holds each open file (st_dev, st_ino), since LUO
    /// preserves a file once.
    held: HashMap<(u64, u64), (Name, Name)>,
    /// The outgoing index session, and its generation.
    index: Option<(OwnedFd, u64)>,
    /// The generation of the last index written (or read).
    generation: u64,
}

impl State {
    fn get(&self, name: &Name) -> Result<&BoxState, Error> {
        self.boxes
            .get(name)
            .ok_or_else(|| Error::NoSuchBox(name.clone()))
    }

    fn get_mut(&mut self, name: &Name) -> Result<&mut BoxState, Error> {
        self.boxes
            .get_mut(name)
            .ok_or_else(|| Error::NoSuchBox(name.clone()))
    }
}

#[derive(Default)]
struct BoxState {
    sealed: bool,
    /// While sealed: the outgoing session preserving the box. `None` in a
    /// sealed box means sealed here but not preserved (a box adopted after a
    /// kexec that could not be preserved again, logged).
    session: Option<OwnedFd>,
    entries: BTreeMap<Name, Held>,
}

struct Held {
    entry: Entry,
    fd: OwnedFd,
}

fn identity(fd: BorrowedFd<'_>) -> Result<(u64, u64), Errno> {
    rustix::fs::fstat(fd).map(|s| (s.st_dev, s.st_ino))
}

/// `CREATE_SESSION` or `RETRIEVE_SESSION` of `name`: the session's fd.
fn session(device: BorrowedFd<'_>, opcode: u32, name: &str) -> Result<OwnedFd, Errno> {
    let mut arg = LiveupdateSession {
        size: size_of::<LiveupdateSession>() as u32,
        fd: -1,
        name: session_name_field(name).ok_or(Errno::NAMETOOLONG)?,
    };
    ioctl(device, opcode, Some(&mut arg))?;
    // SAFETY: on success the kernel installed a new fd and wrote its number
    // into `arg.fd`; nothing else in this process knows it.
    Ok(unsafe { OwnedFd::from_raw_fd(arg.fd) })
}

/// `PRESERVE_FD` of `fd` under `token`; the caller's fd stays open.
fn preserve(session: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> Result<(), Errno> {
    let mut arg = LiveupdateSessionFd {
        size: size_of::<LiveupdateSessionFd>() as u32,
        fd: fd.as_raw_fd(),
        token,
    };
    ioctl(session, LIVEUPDATE_SESSION_PRESERVE_FD, Some(&mut arg)).map(drop)
}

/// `RETRIEVE_FD` of `token`: the file, as a new close-on-exec fd.
fn retrieve(session: BorrowedFd<'_>, token: u64) -> Result<OwnedFd, Errno> {
    let mut arg = LiveupdateSessionFd {
        size: size_of::<LiveupdateSessionFd>() as u32,
        fd: -1,
        token,
    };
    ioctl(session, LIVEUPDATE_SESSION_RETRIEVE_FD, Some(&mut arg))?;
    // SAFETY: as in `session`: a new fd the kernel wrote into the struct.
    Ok(unsafe { OwnedFd::from_raw_fd(arg.fd) })
}

fn finish(session: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut arg = LiveupdateSessionFinish {
        size: size_of::<LiveupdateSessionFinish>() as u32,
        reserved: 0,
    };
    ioctl(session, LIVEUPDATE_SESSION_FINISH, Some(&mut arg)).map(drop)
}

fn device_error(context: String, e: Errno) -> Error {
    Error::Device(io::Error::new(
        io::Error::from(e).kind(),
        format!("{context}: {e}"),
    ))
}

/// A memfd holding `bytes`.
fn memfd_with(bytes: &[u8]) -> Result<OwnedFd, Errno> {
    let file = manifest::new_file()?;
    manifest::write_file(&file, bytes)?;
    Ok(file)
}

fn encode_index(generation: u64, names: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out);
    INDEX_HEADER.write(&mut w);
    w.nul_field(generation.to_string().as_bytes());
    // Names hold no NUL (`Name`).
    for name in names {
        w.nul_field(name.as_bytes());
    }
    out
}

fn decode_index(bytes: &[u8]) -> Result<(u64, Vec<Name>), String> {
    let mut r = Reader::new(bytes);
    // Version 1 is the only one yet: it is the one read.
    INDEX_HEADER.read(&mut r).map_err(|e| e.to_string())?;
    let generation = text_field(&mut r, "generation")?;
    let generation = generation
        .parse()
        .map_err(|_| format!("bad generation {generation:?}"))?;
    let mut names = Vec::new();
    while !r.is_empty() {
        names.push(Name::new(text_field(&mut r, "box name")?).map_err(|e| e.to_string())?);
    }
    Ok((generation, names))
}

impl LiveUpdateDevice {
    /// Open `/dev/liveupdate` and adopt the boxes the previous kernel
    /// preserved; device-unavailable if there is no LUO (or no
    /// `fdbox emulate --device liveupdate`), or another process has it open.
    pub fn open() -> Result<Self, Error> {
        Self::open_scoped("")
    }

    /// Whether `/dev/liveupdate` opens here (it is then closed again).
    pub fn available() -> bool {
        super::node_opens(LIVEUPDATE_DEVICE)
    }

    /// [`LiveUpdateDevice::open`], seeing only the sessions whose names start
    /// with `scope`, by their names without it: separate sets of boxes over
    /// the machine's sessions, for tests. A scope may not contain `/` or
    /// NUL.
    pub fn open_scoped(scope: &str) -> Result<Self, Error> {
        super::check_scope(scope)?;
        let device = super::open_node(
            LIVEUPDATE_DEVICE,
            "the Live Update device",
            "this kernel has no Live Update Orchestrator (Linux 6.19+ booted with liveupdate=on); use another device (the holder daemon), or an emulation of /dev/liveupdate",
        )?;
        let device = LiveUpdateDevice {
            device,
            scope: scope.to_string(),
            state: Mutex::new(State::default()),
        };
        device.adopt_incoming()?;
        Ok(device)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state changes only after the kernel calls it mirrors succeeded.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session name of box `name`, or name-too-long.
    fn session_name(&self, name: &Name) -> Result<String, Error> {
        let full = format!("{}{}", self.scope, name.as_str());
        if full.len() >= LIVEUPDATE_SESSION_NAME_LENGTH {
            return Err(Error::NameTooLong {
                len: full.len(),
                limit: LIVEUPDATE_SESSION_NAME_LENGTH - 1,
                context: " (a Live Update session name, the device scope included)",
            });
        }
        Ok(full)
    }

    /// The session names of the two index slots.
    fn index_names(&self) -> [String; 2] {
        [0, 1].map(|slot| format!("{}{INDEX_SESSION}.{slot}", self.scope))
    }

    /// Adopt what the previous kernel preserved: the newest index, and the
    /// boxes it lists, sealed again here.
    fn adopt_incoming(&self) -> Result<(), Error> {
        let mut newest: Option<(u64, Vec<Name>)> = None;
        for index in self.index_names() {
            let Some(found) = self.read_incoming_index(&index)? else {
                continue;
            };
            if newest.as_ref().is_none_or(|(g, _)| found.0 > *g) {
                newest = Some(found);
            }
        }
        let Some((generation, names)) = newest else {
            return Ok(());
        };
        let mut state = self.lock();
        state.generation = generation;
        for name in names {
            match self.adopt_box(&mut state, &name) {
                Ok(()) => {}
                Err(e) => tracing::warn!(
                    "box {name:?}, preserved by the previous kernel, cannot be adopted: {e}"
                ),
            }
        }
        if let Err(e) = self.save_index(&mut state) {
            tracing::warn!(
                "cannot preserve the index of sealed boxes: they will not be found after the next kexec: {e}"
            );
        }
        Ok(())
    }

    /// Retrieve and finish incoming index session `index`: its generation
    /// and box names, or `None` if the previous kernel had none such.
    fn read_incoming_index(&self, index: &str) -> Result<Option<(u64, Vec<Name>)>, Error> {
        let session = match session(
            self.device.as_fd(),
            LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
            index,
        ) {
            Ok(session) => session,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => {
                return Err(device_error(
                    format!("cannot retrieve session {index:?}"),
                    e,
                ));
            }
        };
        let read = retrieve(session.as_fd(), MANIFEST_TOKEN)
            .and_then(manifest::read_file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| decode_index(&bytes));
        if let Err(e) = finish(session.as_fd()) {
            tracing::warn!("cannot finish session {index:?}: {e}");
        }
        match read {
            Ok(found) => Ok(Some(found)),
            Err(e) => {
                tracing::warn!("session {index:?} holds no index fdbox can read ({e}); ignored");
                Ok(None)
            }
        }
    }

    /// Take box `name`'s files out of its incoming session, finish it, and
    /// seal the box again (a new outgoing session).
    fn adopt_box(&self, state: &mut State, name: &Name) -> Result<(), Error> {
        let full = self.session_name(name)?;
        let session = session(
            self.device.as_fd(),
            LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
            &full,
        )
        .map_err(|e| match e {
            Errno::NOENT => Error::NoSuchBox(name.clone()),
            e => device_error(format!("cannot retrieve session {full:?}"), e),
        })?;
        let (_, entries) = retrieve(session.as_fd(), MANIFEST_TOKEN)
            .map_err(|e| e.to_string())
            .and_then(|m| manifest::read_file(m).map_err(|e| e.to_string()))
            .and_then(|bytes| manifest::decode(&bytes))
            .map_err(|e| {
                Error::Device(io::Error::other(format!(
                    "session {full:?} holds no manifest fdbox can read ({e})"
                )))
            })?;
        let mut adopted = BoxState {
            sealed: true,
            ..BoxState::default()
        };
        for (token, (entry_name, entry)) in (MANIFEST_TOKEN + 1..).zip(entries) {
            match retrieve(session.as_fd(), token) {
                Ok(fd) => {
                    if let Ok(id) = identity(fd.as_fd()) {
                        state.held.insert(id, (name.clone(), entry_name.clone()));
                    }
                    adopted.entries.insert(entry_name, Held { entry, fd });
                }
                Err(e) => tracing::warn!(
                    "entry {entry_name:?} of box {name:?} did not survive the kexec: {e}"
                ),
            }
        }
        // FINISH before preserving them again: a retrieved file counts as
        // preserved until its session finishes (PRESERVE_FD: EBUSY).
        if let Err(e) = finish(session.as_fd()) {
            tracing::warn!("cannot finish session {full:?}: {e}");
        }
        drop(session);
        match self.preserve_box(name, &adopted.entries) {
            Ok(outgoing) => adopted.session = Some(outgoing),
            Err(e) => tracing::warn!(
                "box {name:?} stays sealed but is not preserved for the next kexec: {e}"
            ),
        }
        state.boxes.insert(name.clone(), adopted);
        Ok(())
    }

    /// A new outgoing session for box `name` preserving `entries` behind
    /// their manifest; nothing stays preserved on failure (the session
    /// closes).
    fn preserve_box(&self, name: &Name, entries: &BTreeMap<Name, Held>) -> Result<OwnedFd, Error> {
        let full = self.session_name(name)?;
        let session = session(self.device.as_fd(), LIVEUPDATE_IOCTL_CREATE_SESSION, &full)
            .map_err(|e| {
                device_error(
                    format!("cannot create session {full:?} for box {name:?}"),
                    e,
                )
            })?;
        let listed = manifest::encode(true, entries.iter().map(|(n, h)| (n, &h.entry)));
        let manifest = memfd_with(&listed).map_err(Error::from)?;
        preserve(session.as_fd(), manifest.as_fd(), MANIFEST_TOKEN).map_err(|e| {
            device_error(format!("cannot preserve the manifest of box {name:?}"), e)
        })?;
        for (token, (entry_name, held)) in (MANIFEST_TOKEN + 1..).zip(entries) {
            preserve(session.as_fd(), held.fd.as_fd(), token).map_err(|e| match e {
                Errno::NOSPC => Error::QuotaExceeded(format!(
                    "the kernel's session for box {name:?} is full at entry {entry_name:?}"
                )),
                Errno::NOENT => Error::KindNotSupported(held.entry.kind),
                e => device_error(
                    format!("cannot preserve entry {entry_name:?} of box {name:?}"),
                    e,
                ),
            })?;
        }
        Ok(session)
    }

    /// Preserve the list of preserved boxes in a new index session, then
    /// close the old one; with no such box, close it only.
    fn save_index(&self, state: &mut State) -> Result<(), Error> {
        let names: Vec<&str> = state
            .boxes
            .iter()
            .filter(|(_, b)| b.session.is_some())
            .map(|(n, _)| n.as_str())
            .collect();
        if names.is_empty() {
            state.index = None;
            return Ok(());
        }
        let generation = state.generation + 1;
        let index = &self.index_names()[(generation % 2) as usize];
        let session = session(self.device.as_fd(), LIVEUPDATE_IOCTL_CREATE_SESSION, index)
            .map_err(|e| device_error(format!("cannot create the index session {index:?}"), e))?;
        let list = memfd_with(&encode_index(generation, &names)).map_err(Error::from)?;
        preserve(session.as_fd(), list.as_fd(), MANIFEST_TOKEN)
            .map_err(|e| device_error(format!("cannot preserve the index in {index:?}"), e))?;
        // The old index closes (un-preserved) only now that the new one is.
        state.index = Some((session, generation));
        state.generation = generation;
        Ok(())
    }

    /// [`LiveUpdateDevice::save_index`] after a change the caller keeps
    /// either way.
    fn save_index_or_warn(&self, state: &mut State) {
        if let Err(e) = self.save_index(state) {
            tracing::warn!(
                "cannot update the index of sealed boxes; the next kernel may look for boxes that are gone: {e}"
            );
        }
    }
}

fn status_of(name: &Name, b: &BoxState) -> BoxStatus {
    BoxStatus {
        name: name.clone(),
        sealed: b.sealed,
        entries: b.entries.len(),
    }
}

impl Device for LiveUpdateDevice {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kinds: KINDS,
            survives_host_restart: false,
        }
    }

    fn create_box(&self, name: &Name) -> Result<(), Error> {
        self.session_name(name)?;
        let mut state = self.lock();
        if state.boxes.contains_key(name) {
            return Err(Error::BoxExists(name.clone()));
        }
        state.boxes.insert(name.clone(), BoxState::default());
        Ok(())
    }

    fn delete_box(&self, name: &Name) -> Result<(), Error> {
        // A name no session can have is refused as create refuses it.
        self.session_name(name)?;
        let mut state = self.lock();
        // The session (if sealed) and the entries' fds close here.
        let gone = state
            .boxes
            .remove(name)
            .ok_or_else(|| Error::NoSuchBox(name.clone()))?;
        state.held.retain(|_, (b, _)| b != name);
        if gone.session.is_some() {
            self.save_index_or_warn(&mut state);
        }
        Ok(())
    }

    fn boxes(&self) -> Result<Vec<BoxStatus>, Error> {
        let state = self.lock();
        Ok(state.boxes.iter().map(|(n, b)| status_of(n, b)).collect())
    }

    fn status(&self, name: &Name) -> Result<BoxStatus, Error> {
        self.session_name(name)?;
        let state = self.lock();
        state.get(name).map(|b| status_of(name, b))
    }

    fn put_many_within(
        &self,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        max_entries: usize,
    ) -> Result<(), RefusedBatch> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let checked = (|| {
            let b = state.get(box_name)?;
            let target = PutTarget {
                name: box_name,
                sealed: b.sealed,
                entries: b.entries.len(),
                has_entry: &|name| b.entries.contains_key(name),
            };
            check_put(
                &target,
                &entries,
                guest_quota(max_entries).as_slice(),
                &self.capabilities(),
            )?;
            // This device's own rule: LUO preserves a file in one place.
            // (identity, size) per handle: one fstat gives both.
            let mut ids: Vec<((u64, u64), u64)> = Vec::with_capacity(entries.len());
            for (name, handle) in &entries {
                let stat = rustix::fs::fstat(handle.fd())?;
                let id = (stat.st_dev, stat.st_ino);
                if let Some((other_box, other_entry)) = state.held.get(&id) {
                    return Err(Error::AlreadyBoxed {
                        box_name: other_box.clone(),
                        entry: other_entry.clone(),
                    });
                }
                if ids.iter().any(|(seen, _)| *seen == id) {
                    return Err(Error::AlreadyBoxed {
                        box_name: box_name.clone(),
                        entry: name.clone(),
                    });
                }
                ids.push((id, stat.st_size as u64));
            }
            Ok(ids)
        })();
        let ids = match checked {
            Ok(ids) => ids,
            Err(error) => return Err(RefusedBatch { error, entries }),
        };
        let b = state.boxes.get_mut(box_name).expect("checked above");
        for ((name, handle), (id, size)) in entries.into_iter().zip(ids) {
            state.held.insert(id, (box_name.clone(), name.clone()));
            let entry = Entry {
                kind: handle.kind(),
                access: handle.access(),
                size: Some(size),
            };
            b.entries.insert(
                name,
                Held {
                    entry,
                    fd: handle.into_fd(),
                },
            );
        }
        Ok(())
    }

    fn get_many(&self, box_name: &Name, names: &[Name]) -> Result<Vec<Handle>, Error> {
        let mut guard = self.lock();
        let State { boxes, held, .. } = &mut *guard;
        let b = boxes
            .get_mut(box_name)
            .ok_or_else(|| Error::NoSuchBox(box_name.clone()))?;
        if b.sealed {
            return Err(Error::BoxSealed(box_name.clone()));
        }
        let mut seen = HashSet::with_capacity(names.len());
        // A name asked twice is missing the second time (take-once).
        if let Some(missing) = names
            .iter()
            .find(|n| !b.entries.contains_key(*n) || !seen.insert(*n))
        {
            return Err(Error::NoSuchEntry {
                box_name: box_name.clone(),
                entry: missing.clone(),
            });
        }
        Ok(names
            .iter()
            .map(|name| {
                let taken = b.entries.remove(name).expect("checked above");
                if let Ok(id) = identity(taken.fd.as_fd()) {
                    held.remove(&id);
                }
                Handle::from_parts(taken.fd, taken.entry.kind, taken.entry.access)
            })
            .collect())
    }

    fn entries(&self, box_name: &Name) -> Result<Vec<EntryInfo>, Error> {
        let state = self.lock();
        let b = state.get(box_name)?;
        Ok(b.entries
            .iter()
            .map(|(name, held)| EntryInfo {
                name: name.clone(),
                kind: held.entry.kind,
                // The file is here: its size now, as the memory device's.
                size: rustix::fs::fstat(&held.fd)
                    .map(|s| s.st_size as u64)
                    .ok()
                    .or(held.entry.size),
            })
            .collect())
    }

    fn seal(&self, box_name: &Name) -> Result<(), Error> {
        let mut state = self.lock();
        let b = state.get_mut(box_name)?;
        if b.sealed {
            return Err(Error::BoxSealed(box_name.clone()));
        }
        // The sizes the kernel is about to freeze are the ones the manifest
        // records (writes since the put may have changed them).
        for held in b.entries.values_mut() {
            if let Ok(stat) = rustix::fs::fstat(&held.fd) {
                held.entry.size = Some(stat.st_size as u64);
            }
        }
        let session = self.preserve_box(box_name, &b.entries)?;
        let b = state.boxes.get_mut(box_name).expect("checked above");
        b.session = Some(session);
        b.sealed = true;
        // A sealed box the next kernel cannot find is not sealed: undo.
        if let Err(e) = self.save_index(&mut state) {
            let b = state.boxes.get_mut(box_name).expect("checked above");
            b.session = None;
            b.sealed = false;
            return Err(e);
        }
        Ok(())
    }

    fn unseal(&self, box_name: &Name) -> Result<(), Error> {
        let mut state = self.lock();
        let b = state.get_mut(box_name)?;
        if !b.sealed {
            return Err(Error::BoxNotSealed(box_name.clone()));
        }
        b.sealed = false;
        // Closing the session un-preserves its files; they stay here.
        if b.session.take().is_some() {
            self.save_index_or_warn(&mut state);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_round_trip() {
        let bytes = encode_index(7, &["a", "b c"]);
        let (generation, names) = decode_index(&bytes).unwrap();
        assert_eq!(generation, 7);
        assert_eq!(names, [Name::new("a").unwrap(), Name::new("b c").unwrap()]);
        assert!(decode_index(b"other").is_err());
        assert_eq!(bytes, b"fdbox-index\x001\x007\x00a\x00b c\x00");
        assert_eq!(encode_index(0, &[]), b"fdbox-index\x001\x000\x00");
        let reason = decode_index(b"fdbox-index\x009\x007\x00").unwrap_err();
        assert!(reason.contains("fdbox index version 9"), "{reason}");
        let reason = decode_index(b"fdbox-index\x001\x00x\x00").unwrap_err();
        assert!(reason.contains("bad generation"), "{reason}");
    }
}
