//! [`FdboxDevice`]: the [`Device`] over the FDBox RFC's `/dev/fdbox`.
//!
//! Boxes are the kernel's: [`Device::create_box`] and
//! [`Device::delete_box`] are `FDBOX_CREATE_BOX`/`FDBOX_DELETE_BOX` on the
//! control device `/dev/fdbox/fdbox`, and every other operation is an ioctl on
//! the box's own node `/dev/fdbox/<box>`, opened once and cached. The kernel
//! holds the fds; nothing of a box lives only in this process.
//!
//! # The manifest
//!
//! The UAPI has no ioctl to list a box's entries, report a seal or tell an
//! entry's kind, and an fd's access (the guest's read-only preopen, say) is
//! not the kernel's to know. The device keeps that bookkeeping in a
//! *manifest*: a memfd holding the box's seal and, per entry, its name, kind,
//! access and size when put, stored **in the box itself** under the reserved
//! entry name [`MANIFEST_ENTRY`] (a put under that name is refused with
//! invalid-name; no listing shows it). Because a put leaves other duplicates
//! of a file valid, the device puts a duplicate of the manifest and keeps the
//! original: it rewrites the manifest in place after every change, sealed
//! box or not, with no extra ioctl, and the box carries it wherever the box
//! goes (a host restart; a kexec, which takes only sealed boxes).
//!
//! A device that meets a box it did not create (a fresh host process) reads
//! its manifest with one `FDBOX_GET_FD` and puts a duplicate back. That is
//! impossible while the box is sealed (the kernel refuses every get): such a
//! box reports `sealed` and 0 entries, and [`Device::entries`] on it fails
//! with box-sealed, until it is unsealed, which reads the manifest. A box
//! with no manifest (made by another tool) gets an empty one; its entries
//! are invisible to listings but still refuse a clashing put (`EEXIST`).
//!
//! Entry sizes are the sizes when put: the kernel cannot stat a boxed file.
//!
//! [`Device::boxes`] lists `/dev/fdbox` (every node but `fdbox`). Where the
//! directory cannot be read though the control device opens (under
//! `fdbox emulate`, whose nodes can be opened but not listed), it lists the
//! boxes this device has created or opened.
//!
//! A put gives the fd to the driver, which closes the caller's copy on
//! success; a refused put returns it untouched. Under `fdbox emulate`, which
//! cannot close an fd in its program, the device closes it itself.
//!
//! One `FdboxDevice` is meant to manage a set of boxes at a time (as one
//! holder daemon does): two devices changing the same box each keep their
//! own manifest copy and the last writer wins. [`FdboxDevice::open_scoped`]
//! gives each user of a shared `/dev/fdbox` its own set of boxes.
//!
//! # What it can hold
//!
//! Memory files only, as in the RFC ([`Device::capabilities`]): a file or
//! directory is refused with kind-not-supported before the kernel sees it,
//! and the kernel's `EOPNOTSUPP` maps to the same.
//!
//! # Errors
//!
//! Each errno maps to the [`Error`] of the operation that got it:
//! `EEXIST` already-exists, `ENOENT` not-found, `EBUSY` box-sealed (or
//! box-not-sealed from unseal), `EOPNOTSUPP` kind-not-supported,
//! `EPERM`/`EACCES` access-denied, `EINVAL` on a name invalid-name,
//! `EMFILE`/`ENFILE`/`ENOSPC` quota-exceeded; a missing control device, and
//! anything else, device-unavailable.
//!
//! Why one long file: the device is one state machine (box nodes, their
//! manifests, the seal) whose every operation must keep the manifest and the
//! kernel's view in step; the UAPI, ioctl and manifest format are apart.

use super::ioctl::ioctl;
use super::manifest::{self, Entry};
use super::uapi::{
    self, CONTROL_DEVICE, DEVICE_DIR, FDBOX_CREATE_BOX, FDBOX_DELETE_BOX, FDBOX_GET_FD,
    FDBOX_PUT_FD, FDBOX_SEAL, FDBOX_UNSEAL, FdboxCreateBox, FdboxGetFd, FdboxPutFd,
};
use crate::device::rules::{PutTarget, check_put, guest_quota};
use crate::device::{BoxStatus, Capabilities, Device, EntryInfo, RefusedBatch};
use crate::{Error, Handle, HandleKind, Name};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// The entry under which each box holds its manifest.
pub const MANIFEST_ENTRY: &str = ".fdbox-manifest";

/// The kinds the FDBox RFC supports.
const KINDS: &[HandleKind] = &[HandleKind::MemoryFile];

/// A [`Device`] over the kernel's `/dev/fdbox` (see the module docs).
pub struct FdboxDevice {
    dir: PathBuf,
    control: OwnedFd,
    scope: String,
    boxes: Mutex<BTreeMap<Name, BoxState>>,
}

/// A box this device has opened.
struct BoxState {
    /// `/dev/fdbox/<box>`.
    node: OwnedFd,
    /// `None` while the box is sealed and was sealed before this device
    /// could read its manifest.
    manifest: Option<Manifest>,
}

/// What the kernel cannot report about a box.
struct Manifest {
    /// The original of the memfd whose duplicate is in the box.
    file: OwnedFd,
    sealed: bool,
    entries: BTreeMap<Name, Entry>,
}

/// `FDBOX_PUT_FD` of `fd` under `name`. On success the kernel has closed
/// `fd`'s number in this process.
fn put_fd(node: BorrowedFd<'_>, name: &str, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut arg = FdboxPutFd {
        flags: 0,
        fd: fd.as_raw_fd() as u32,
        pad: 0,
        name: uapi::name_field(name).ok_or(Errno::NAMETOOLONG)?,
    };
    ioctl(node, FDBOX_PUT_FD, Some(&mut arg)).map(drop)
}

/// `FDBOX_PUT_FD` of `fd` under `name`, giving up `fd` on success; the
/// refused `fd` comes back.
///
/// The driver closes the caller's fd when it takes the file. `fdbox emulate`
/// cannot close an fd in the program it supervises and leaves it open: if,
/// after the put, the number still names the same file, this closes it.
/// (With the driver, another thread could in that instant get the freed
/// number for a new fd, but not for this same file: nothing else in this
/// process holds it.)
fn put_owned(node: BorrowedFd<'_>, name: &str, fd: OwnedFd) -> Result<(), (Errno, OwnedFd)> {
    let identity = |fd: BorrowedFd<'_>| rustix::fs::fstat(fd).map(|s| (s.st_dev, s.st_ino));
    let before = identity(fd.as_fd());
    if let Err(e) = put_fd(node, name, fd.as_fd()) {
        return Err((e, fd));
    }
    let raw = fd.as_raw_fd();
    // The driver closed this number: never close it again from here.
    std::mem::forget(fd);
    // SAFETY: `raw` is only looked at (fstat), while this function runs.
    let now = identity(unsafe { BorrowedFd::borrow_raw(raw) });
    if let (Ok(before), Ok(now)) = (before, now)
        && before == now
    {
        // SAFETY: the number still names the file we owned before the put:
        // it was left open for us (under `fdbox emulate`), and is ours to
        // close.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
    }
    Ok(())
}

/// `FDBOX_GET_FD` of `name`: the entry's file, as a new close-on-exec fd.
fn get_fd(node: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, Errno> {
    let mut arg = FdboxGetFd {
        flags: 0,
        pad: 0,
        name: uapi::name_field(name).ok_or(Errno::NAMETOOLONG)?,
    };
    let raw = ioctl(node, FDBOX_GET_FD, Some(&mut arg))?;
    // SAFETY: a successful FDBOX_GET_FD returns a new fd that nothing else
    // in this process knows of; it is ours to own and close.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // The kernel's fd is not O_CLOEXEC; ours never leak into children.
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    Ok(fd)
}

fn no_arg(node: BorrowedFd<'_>, opcode: u32) -> Result<(), Errno> {
    ioctl::<()>(node, opcode, None).map(drop)
}

fn device_error(e: Errno) -> Error {
    Error::Device(e.into())
}

/// Errors every box operation shares.
fn common(e: Errno, operation: &'static str, box_name: &Name) -> Error {
    match e {
        Errno::PERM | Errno::ACCESS => Error::AccessDenied {
            operation,
            box_name: box_name.clone(),
        },
        Errno::NOSPC => Error::QuotaExceeded(format!(
            "the kernel has no room for more in box {box_name:?} ({operation})"
        )),
        // EMFILE/ENFILE count as quota-exceeded through Error::code.
        e => device_error(e),
    }
}

impl Manifest {
    fn new(file: OwnedFd) -> Self {
        Manifest {
            file,
            sealed: false,
            entries: BTreeMap::new(),
        }
    }

    /// Read a manifest back from its memfd; `file` becomes its original.
    fn decode(file: OwnedFd) -> Result<Self, (String, OwnedFd)> {
        match manifest::read_file(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| manifest::decode(&bytes))
        {
            Ok((sealed, entries)) => Ok(Manifest {
                file,
                sealed,
                entries,
            }),
            Err(reason) => Err((reason, file)),
        }
    }

    /// Rewrite the manifest in place (the box holds the same open file).
    fn save(&self) -> Result<(), Errno> {
        manifest::write_file(&self.file, &manifest::encode(self.sealed, &self.entries))
    }

    /// [`Manifest::save`], where the kernel has already done the change:
    /// a manifest that cannot be written is logged, not a failure of it.
    fn save_or_warn(&self, box_name: &Name) {
        if let Err(e) = self.save() {
            tracing::warn!(
                "cannot update the manifest of box {box_name:?}: {e}; a host that opens it afresh will see stale entries"
            );
        }
    }
}

/// Put a duplicate of `manifest`'s memfd into the box.
fn box_manifest(node: BorrowedFd<'_>, manifest: &Manifest) -> Result<(), Errno> {
    let dup = rustix::io::fcntl_dupfd_cloexec(&manifest.file, 0)?;
    put_owned(node, MANIFEST_ENTRY, dup).map_err(|(e, _dup)| e)
}

impl FdboxDevice {
    /// Open `/dev/fdbox/fdbox`; device-unavailable if the kernel has no
    /// FDBox (or it runs under no `fdbox emulate`).
    pub fn open() -> Result<Self, Error> {
        Self::open_scoped("")
    }

    /// Whether the control device exists on this machine.
    ///
    /// It opens the device to tell: `fdbox emulate` makes the node openable,
    /// not visible to `stat`.
    pub fn available() -> bool {
        super::node_opens(CONTROL_DEVICE)
    }

    /// [`FdboxDevice::open`], seeing only the kernel boxes whose names start
    /// with `scope`, by their names without it (box `b` is kernel box
    /// `<scope>b`): separate sets of boxes on one `/dev/fdbox`, for tests or
    /// for several hosts. A scope may not contain `/` or NUL.
    pub fn open_scoped(scope: &str) -> Result<Self, Error> {
        super::check_scope(scope)?;
        let control = super::open_node(
            CONTROL_DEVICE,
            "the FDBox control device",
            "this kernel has no FDBox; use another device (the holder daemon), or an emulation of /dev/fdbox",
        )?;
        Ok(FdboxDevice {
            dir: PathBuf::from(DEVICE_DIR),
            control,
            scope: scope.to_string(),
            boxes: Mutex::new(BTreeMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Name, BoxState>> {
        // Every change to a cached box is made after its ioctl succeeded, so
        // a panic cannot leave the cache ahead of the kernel.
        self.boxes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The kernel's name of box `name`, as a name field.
    fn kernel_name(&self, name: &Name) -> Result<(String, [u8; uapi::FDBOX_NAME_LEN]), Error> {
        let full = format!("{}{}", self.scope, name.as_str());
        if matches!(full.as_str(), "." | ".." | "fdbox") {
            return Err(Error::InvalidName {
                name: name.to_string(),
                reason: "the FDBox device reserves it (its control node, or not a node name)",
            });
        }
        let field = uapi::name_field(&full).ok_or(Error::NameTooLong {
            len: full.len(),
            limit: uapi::FDBOX_NAME_LEN - 1,
            context: " with the device scope prefix",
        })?;
        Ok((full, field))
    }

    /// `FDBOX_CREATE_BOX` or `FDBOX_DELETE_BOX` (one struct layout) of the
    /// kernel box whose name field is `field`.
    fn control(&self, opcode: u32, field: [u8; uapi::FDBOX_NAME_LEN]) -> Result<(), Errno> {
        let mut arg = FdboxCreateBox {
            flags: 0,
            name: field,
        };
        ioctl(self.control.as_fd(), opcode, Some(&mut arg)).map(drop)
    }

    /// Open the node of kernel box `full`.
    fn open_box_node(&self, full: &str) -> Result<OwnedFd, Errno> {
        rustix::fs::open(
            self.dir.join(full),
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    /// The cached state of box `name`, opening it (and reading its
    /// manifest) if this device has not yet.
    fn state<'a>(
        &self,
        boxes: &'a mut BTreeMap<Name, BoxState>,
        name: &Name,
    ) -> Result<&'a mut BoxState, Error> {
        if !boxes.contains_key(name) {
            let (full, _) = self.kernel_name(name)?;
            let node = self.open_box_node(&full).map_err(|e| match e {
                Errno::NOENT | Errno::NXIO | Errno::NODEV => Error::NoSuchBox(name.clone()),
                e => common(e, "open", name),
            })?;
            let manifest = adopt(node.as_fd(), name)?;
            boxes.insert(name.clone(), BoxState { node, manifest });
        }
        Ok(boxes.get_mut(name).expect("inserted above"))
    }
}

/// Read the manifest of a box this device did not create, and leave a
/// duplicate in the box; `None` if the box is sealed.
fn adopt(node: BorrowedFd<'_>, box_name: &Name) -> Result<Option<Manifest>, Error> {
    let manifest = match get_fd(node, MANIFEST_ENTRY) {
        Ok(file) => match Manifest::decode(file) {
            Ok(manifest) => manifest,
            Err((reason, file)) => {
                // Leave it where it was, for a fdbox that can read it.
                if let Err((e, _)) = put_owned(node, MANIFEST_ENTRY, file) {
                    tracing::error!("cannot put the manifest back into box {box_name:?}: {e}");
                }
                return Err(Error::Device(io::Error::other(format!(
                    "box {box_name:?} holds a manifest this fdbox cannot read ({reason})"
                ))));
            }
        },
        Err(Errno::BUSY) => return Ok(None),
        Err(Errno::NOENT) => {
            tracing::warn!(
                "box {box_name:?} has no fdbox manifest; entries put by other tools stay invisible"
            );
            Manifest::new(manifest::new_file()?)
        }
        Err(e) => return Err(common(e, "open", box_name)),
    };
    box_manifest(node, &manifest).map_err(|e| common(e, "open", box_name))?;
    Ok(Some(manifest))
}

fn status_of(name: &Name, state: &BoxState) -> BoxStatus {
    match &state.manifest {
        Some(m) => BoxStatus {
            name: name.clone(),
            sealed: m.sealed,
            entries: m.entries.len(),
        },
        None => BoxStatus {
            name: name.clone(),
            sealed: true,
            entries: 0,
        },
    }
}

impl Device for FdboxDevice {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            kinds: KINDS,
            survives_host_restart: true,
        }
    }

    fn create_box(&self, name: &Name) -> Result<(), Error> {
        let (full, field) = self.kernel_name(name)?;
        let mut boxes = self.lock();
        self.control(FDBOX_CREATE_BOX, field).map_err(|e| match e {
            Errno::EXIST => Error::BoxExists(name.clone()),
            Errno::INVAL => Error::InvalidName {
                name: name.to_string(),
                reason: "the kernel refused it",
            },
            e => common(e, "create", name),
        })?;
        // A box this device deleted and another recreated is a new box.
        boxes.remove(name);
        // Open the node and put the manifest; undo the create on failure.
        let opened = (|| {
            let node = self.open_box_node(&full).map_err(device_error)?;
            let manifest = Manifest::new(manifest::new_file().map_err(device_error)?);
            manifest.save().map_err(device_error)?;
            box_manifest(node.as_fd(), &manifest).map_err(|e| common(e, "create", name))?;
            Ok::<_, Error>(BoxState {
                node,
                manifest: Some(manifest),
            })
        })();
        match opened {
            Ok(state) => {
                boxes.insert(name.clone(), state);
                Ok(())
            }
            Err(e) => {
                if let Err(undo) = self.control(FDBOX_DELETE_BOX, field) {
                    tracing::warn!("cannot delete the half-made box {name:?}: {undo}");
                }
                Err(e)
            }
        }
    }

    fn delete_box(&self, name: &Name) -> Result<(), Error> {
        let (_, field) = self.kernel_name(name)?;
        let mut boxes = self.lock();
        self.control(FDBOX_DELETE_BOX, field).map_err(|e| match e {
            Errno::NOENT => Error::NoSuchBox(name.clone()),
            e => common(e, "delete", name),
        })?;
        // Our node fd and manifest original close here.
        boxes.remove(name);
        Ok(())
    }

    fn boxes(&self) -> Result<Vec<BoxStatus>, Error> {
        let dir = match std::fs::read_dir(&self.dir) {
            Ok(dir) => dir,
            // The control device opened, yet no directory: `fdbox emulate`,
            // whose nodes can be opened and not listed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let boxes = self.lock();
                return Ok(boxes
                    .iter()
                    .map(|(name, state)| status_of(name, state))
                    .collect());
            }
            Err(e) => return Err(Error::Device(e)),
        };
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(Error::Device)?;
            let file_name = entry.file_name();
            let Some(full) = file_name.to_str() else {
                continue;
            };
            if full == "fdbox" {
                continue;
            }
            if let Some(name) = full
                .strip_prefix(self.scope.as_str())
                .and_then(|n| Name::new(n).ok())
            {
                names.push(name);
            }
        }
        names.sort();
        let mut boxes = self.lock();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.state(&mut boxes, &name) {
                Ok(state) => out.push(status_of(&name, state)),
                // Deleted since the directory was read.
                Err(Error::NoSuchBox(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn status(&self, name: &Name) -> Result<BoxStatus, Error> {
        let mut boxes = self.lock();
        let state = self.state(&mut boxes, name)?;
        Ok(status_of(name, state))
    }

    fn put_many_within(
        &self,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        max_entries: usize,
    ) -> Result<(), RefusedBatch> {
        let mut boxes = self.lock();
        let checked = self.state(&mut boxes, box_name).and_then(|state| {
            let manifest = state.manifest.as_ref();
            let target = PutTarget {
                name: box_name,
                sealed: manifest.is_none_or(|m| m.sealed),
                entries: manifest.map_or(0, |m| m.entries.len()),
                has_entry: &|name| manifest.is_some_and(|m| m.entries.contains_key(name)),
            };
            check_put(
                &target,
                &entries,
                guest_quota(max_entries).as_slice(),
                &self.capabilities(),
            )?;
            // This device's own rule, after the common ones.
            if let Some((name, _)) = entries.iter().find(|(n, _)| n.as_str() == MANIFEST_ENTRY) {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: "the kernel device keeps its manifest under this name",
                });
            }
            Ok(state)
        });
        let state = match checked {
            Ok(state) => state,
            Err(error) => return Err(RefusedBatch { error, entries }),
        };
        let node = state.node.as_fd();
        let manifest = state.manifest.as_mut().expect("checked unsealed above");
        // Entries in the box so far, with what rebuilds their handles.
        let mut done: Vec<(Name, Entry)> = Vec::with_capacity(entries.len());
        let mut rest = entries.into_iter();
        let mut failure = None;
        for (name, handle) in rest.by_ref() {
            let entry = Entry::of(&handle);
            match put_owned(node, name.as_str(), handle.into_fd()) {
                Ok(()) => done.push((name, entry)),
                Err((e, fd)) => {
                    let error = match e {
                        Errno::BUSY => Error::BoxSealed(box_name.clone()),
                        Errno::EXIST => Error::EntryExists {
                            box_name: box_name.clone(),
                            entry: name.clone(),
                        },
                        Errno::OPNOTSUPP => Error::KindNotSupported(entry.kind),
                        e => common(e, "put", box_name),
                    };
                    failure = Some((
                        error,
                        name,
                        Handle::from_parts(fd, entry.kind, entry.access),
                    ));
                    break;
                }
            }
        }
        let Some((error, failed_name, failed_handle)) = failure else {
            manifest.entries.extend(done);
            manifest.save_or_warn(box_name);
            return Ok(());
        };
        // All or nothing: take back what this batch already put.
        let mut returned = Vec::new();
        let mut stuck = false;
        for (name, entry) in done {
            match get_fd(node, name.as_str()) {
                Ok(fd) => returned.push((name, Handle::from_parts(fd, entry.kind, entry.access))),
                Err(e) => {
                    tracing::error!(
                        "a refused batch left entry {name:?} in box {box_name:?}: cannot take it back: {e}"
                    );
                    manifest.entries.insert(name, entry);
                    stuck = true;
                }
            }
        }
        if stuck {
            manifest.save_or_warn(box_name);
        }
        returned.push((failed_name, failed_handle));
        returned.extend(rest);
        Err(RefusedBatch {
            error,
            entries: returned,
        })
    }

    fn get_many(&self, box_name: &Name, names: &[Name]) -> Result<Vec<Handle>, Error> {
        let mut boxes = self.lock();
        let BoxState { node, manifest } = self.state(&mut boxes, box_name)?;
        let node = node.as_fd();
        let manifest = match manifest {
            Some(m) if !m.sealed => m,
            _ => return Err(Error::BoxSealed(box_name.clone())),
        };
        let mut seen = HashSet::with_capacity(names.len());
        // A name asked twice is missing the second time (take-once).
        if let Some(missing) = names
            .iter()
            .find(|n| !manifest.entries.contains_key(*n) || !seen.insert(*n))
        {
            return Err(Error::NoSuchEntry {
                box_name: box_name.clone(),
                entry: missing.clone(),
            });
        }
        let mut taken: Vec<(&Name, OwnedFd)> = Vec::with_capacity(names.len());
        for name in names {
            match get_fd(node, name.as_str()) {
                Ok(fd) => taken.push((name, fd)),
                Err(e) => {
                    // All or nothing: put back what this batch took.
                    for (back, fd) in taken {
                        match put_owned(node, back.as_str(), fd) {
                            Ok(()) => {}
                            Err((undo, _lost)) => {
                                tracing::error!(
                                    "a failed batch get lost entry {back:?} of box {box_name:?}: cannot put it back: {undo}"
                                );
                                manifest.entries.remove(back);
                            }
                        }
                    }
                    manifest.save_or_warn(box_name);
                    return Err(match e {
                        Errno::BUSY => Error::BoxSealed(box_name.clone()),
                        Errno::NOENT => Error::NoSuchEntry {
                            box_name: box_name.clone(),
                            entry: name.clone(),
                        },
                        e => common(e, "get", box_name),
                    });
                }
            }
        }
        let handles = taken
            .into_iter()
            .map(|(name, fd)| {
                let e = manifest.entries.remove(name).expect("checked above");
                Handle::from_parts(fd, e.kind, e.access)
            })
            .collect();
        manifest.save_or_warn(box_name);
        Ok(handles)
    }

    fn entries(&self, box_name: &Name) -> Result<Vec<EntryInfo>, Error> {
        let mut boxes = self.lock();
        let state = self.state(&mut boxes, box_name)?;
        let Some(manifest) = &state.manifest else {
            return Err(Error::BoxSealed(box_name.clone()));
        };
        Ok(manifest
            .entries
            .iter()
            .map(|(name, e)| EntryInfo {
                name: name.clone(),
                kind: e.kind,
                size: e.size,
            })
            .collect())
    }

    fn seal(&self, box_name: &Name) -> Result<(), Error> {
        let mut boxes = self.lock();
        let state = self.state(&mut boxes, box_name)?;
        let Some(manifest) = &mut state.manifest else {
            return Err(Error::BoxSealed(box_name.clone()));
        };
        if manifest.sealed {
            return Err(Error::BoxSealed(box_name.clone()));
        }
        // The manifest says sealed before the seal, so a sealed box's
        // manifest (the one that travels) says so.
        manifest.sealed = true;
        manifest.save_or_warn(box_name);
        match no_arg(state.node.as_fd(), FDBOX_SEAL) {
            Ok(()) => Ok(()),
            Err(Errno::BUSY) => Err(Error::BoxSealed(box_name.clone())),
            Err(e) => {
                manifest.sealed = false;
                manifest.save_or_warn(box_name);
                Err(common(e, "seal", box_name))
            }
        }
    }

    fn unseal(&self, box_name: &Name) -> Result<(), Error> {
        let mut boxes = self.lock();
        let state = self.state(&mut boxes, box_name)?;
        if matches!(&state.manifest, Some(m) if !m.sealed) {
            return Err(Error::BoxNotSealed(box_name.clone()));
        }
        no_arg(state.node.as_fd(), FDBOX_UNSEAL).map_err(|e| match e {
            Errno::BUSY => Error::BoxNotSealed(box_name.clone()),
            e => common(e, "unseal", box_name),
        })?;
        match &mut state.manifest {
            Some(manifest) => {
                manifest.sealed = false;
                manifest.save_or_warn(box_name);
            }
            None => {
                let Some(mut manifest) = adopt(state.node.as_fd(), box_name)? else {
                    // Sealed again by someone else in between.
                    return Ok(());
                };
                manifest.sealed = false;
                manifest.save_or_warn(box_name);
                state.manifest = Some(manifest);
            }
        }
        Ok(())
    }
}
