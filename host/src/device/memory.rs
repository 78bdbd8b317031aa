//! The in-process device: boxes owned by the host process itself.

use crate::device::rules::{EntriesQuota, PutTarget, check_put_but_names, guest_quota};
use crate::device::{BoxStatus, Capabilities, Device, EntryInfo, HeldBox, RefusedBatch};
use crate::{Error, Handle, HandleKind, Name};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, MutexGuard};

/// Boxes and their fds owned by the host process.
///
/// They outlive every guest `Store`, so a guest that traps or exits and is
/// instantiated again (`fdbox run --restart`) recovers what it boxed; they do
/// not outlive the host process (use the holder daemon or a kernel device for
/// that).
#[derive(Default)]
pub struct MemoryDevice {
    boxes: Mutex<BTreeMap<Name, BoxContents>>,
}

#[derive(Default)]
struct BoxContents {
    sealed: bool,
    /// Unordered: one hash per lookup instead of a dozen string compares
    /// down a tree (BENCHMARKS.md), with std's keyed hasher, so names a peer
    /// chooses cannot be made to collide. Listings sort by name.
    entries: HashMap<Name, Handle>,
}

impl BoxContents {
    fn status(&self, name: &Name) -> BoxStatus {
        BoxStatus {
            name: name.clone(),
            sealed: self.sealed,
            entries: self.entries.len(),
        }
    }
}

impl MemoryDevice {
    /// An empty device.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Name, BoxContents>> {
        // A panic while holding the lock cannot leave a box half-changed:
        // every operation changes it with one map insert or remove.
        self.boxes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run `op` on an existing box, under the lock.
    fn with_box<R>(
        &self,
        name: &Name,
        op: impl FnOnce(&mut BoxContents) -> Result<R, Error>,
    ) -> Result<R, Error> {
        match self.lock().get_mut(name) {
            Some(contents) => op(contents),
            None => Err(Error::NoSuchBox(name.clone())),
        }
    }
}

/// The first name of `batch` already in `entries` or repeated in the batch.
fn first_taken(entries: &HashMap<Name, Handle>, batch: &[(Name, Handle)]) -> Option<Name> {
    let mut seen = std::collections::HashSet::with_capacity(batch.len());
    batch
        .iter()
        .find(|(name, _)| entries.contains_key(name) || !seen.insert(name))
        .map(|(name, _)| name.clone())
}

/// The entries of a box, by name.
fn sorted(entries: &HashMap<Name, Handle>) -> Vec<(&Name, &Handle)> {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_unstable_by_key(|(name, _)| *name);
    sorted
}

/// Why `names` cannot all be taken from a box holding `entries`: the first
/// name missing, or else the first asked twice (the second time it is
/// missing too).
fn missing_or_twice(box_name: &Name, entries: &HashMap<Name, Handle>, names: &[Name]) -> Error {
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    let entry = names
        .iter()
        .find(|n| !entries.contains_key(*n))
        .or_else(|| names.iter().find(|n| !seen.insert(*n)))
        .expect("a name was missing or asked twice");
    Error::NoSuchEntry {
        box_name: box_name.clone(),
        entry: entry.clone(),
    }
}

impl MemoryDevice {
    /// [`Device::put_many_within`] with any number of entries quotas (the
    /// holder daemon adds its own to the guest's): the rules of
    /// [`check_put`](crate::device::rules::check_put), then all or nothing.
    pub fn put_within(
        &self,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        quotas: &[EntriesQuota],
    ) -> Result<(), RefusedBatch> {
        let mut boxes = self.lock();
        let b = match boxes.get_mut(box_name) {
            None => {
                let error = Error::NoSuchBox(box_name.clone());
                return Err(RefusedBatch { error, entries });
            }
            Some(b) => b,
        };
        let target = PutTarget {
            name: box_name,
            sealed: b.sealed,
            entries: b.entries.len(),
            has_entry: &|name| b.entries.contains_key(name),
        };
        if let Err(error) =
            check_put_but_names(&target, entries.len(), &entries, quotas, &Capabilities::ALL)
        {
            return Err(RefusedBatch { error, entries });
        }
        // The last rule (no name taken or given twice) as the entries go
        // in, one lookup each. The first name found taken takes what this
        // batch put back out (told apart by fd: no two handles share one),
        // and the box is as it was.
        b.entries.reserve(entries.len());
        let fds: Vec<RawFd> = entries.iter().map(|(_, h)| h.fd().as_raw_fd()).collect();
        let mut entries = entries.into_iter();
        while let Some((name, handle)) = entries.next() {
            let taken = match b.entries.entry(name) {
                std::collections::hash_map::Entry::Vacant(free) => {
                    free.insert(handle);
                    continue;
                }
                std::collections::hash_map::Entry::Occupied(taken) => taken.key().clone(),
            };
            let ours: HashMap<RawFd, usize> =
                fds.iter().enumerate().map(|(i, fd)| (*fd, i)).collect();
            let mut back: Vec<(usize, (Name, Handle))> = b
                .entries
                .extract_if(|_, h| ours.contains_key(&h.fd().as_raw_fd()))
                .map(|entry| (ours[&entry.1.fd().as_raw_fd()], entry))
                .collect();
            back.sort_unstable_by_key(|(i, _)| *i);
            let mut refused: Vec<(Name, Handle)> = back.into_iter().map(|(_, e)| e).collect();
            refused.push((taken.clone(), handle));
            refused.extend(entries);
            let error = Error::EntryExists {
                box_name: box_name.clone(),
                entry: taken,
            };
            return Err(RefusedBatch {
                error,
                entries: refused,
            });
        }
        Ok(())
    }

    /// Put entries back into a box whatever its seal, for a holder that took
    /// them out on a peer's behalf and must undo it (the peer vanished before
    /// it had them). Entries whose names were taken meanwhile, or whose box
    /// is gone, are returned.
    pub fn restore(&self, box_name: &Name, entries: Vec<(Name, Handle)>) -> Vec<(Name, Handle)> {
        let mut boxes = self.lock();
        let Some(b) = boxes.get_mut(box_name) else {
            return entries;
        };
        let mut lost = Vec::new();
        for (name, handle) in entries {
            match b.entries.entry(name) {
                std::collections::hash_map::Entry::Occupied(taken) => {
                    lost.push((taken.key().clone(), handle))
                }
                std::collections::hash_map::Entry::Vacant(free) => {
                    free.insert(handle);
                }
            }
        }
        lost
    }
}

impl MemoryDevice {
    /// Look at every box and every entry at once, under the device's lock,
    /// for a holder that copies its whole state elsewhere (systemd's fd
    /// store, the next image of an upgrading daemon). Nothing changes while
    /// `f` runs, and every other call on the device waits: keep `f` short.
    pub fn inspect<R>(&self, f: impl FnOnce(Vec<HeldBox<'_>>) -> R) -> R {
        let boxes = self.lock();
        f(boxes
            .iter()
            .map(|(name, b)| HeldBox {
                name,
                sealed: b.sealed,
                entries: sorted(&b.entries),
            })
            .collect())
    }

    /// Add a whole box as an earlier holder had it, sealed or not, with its
    /// entries: how a holder rebuilds what a previous process held. A box of
    /// that name, or an entry name given twice, refuses the whole box and
    /// hands the entries back.
    pub fn insert_box(
        &self,
        name: Name,
        sealed: bool,
        entries: Vec<(Name, Handle)>,
    ) -> Result<(), RefusedBatch> {
        let mut boxes = self.lock();
        let error = match boxes.entry(name) {
            std::collections::btree_map::Entry::Occupied(taken) => {
                Error::BoxExists(taken.key().clone())
            }
            std::collections::btree_map::Entry::Vacant(free) => {
                match first_taken(&HashMap::new(), &entries) {
                    Some(entry) => Error::EntryExists {
                        box_name: free.key().clone(),
                        entry,
                    },
                    None => {
                        free.insert(BoxContents {
                            sealed,
                            entries: entries.into_iter().collect(),
                        });
                        return Ok(());
                    }
                }
            }
        };
        Err(RefusedBatch { error, entries })
    }
}

impl Device for MemoryDevice {
    fn put_within_quotas(
        &self,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        quotas: &[EntriesQuota],
    ) -> Result<(), RefusedBatch> {
        self.put_within(box_name, entries, quotas)
    }

    fn put_back(&self, box_name: &Name, entries: Vec<(Name, Handle)>) -> Vec<(Name, Handle)> {
        self.restore(box_name, entries)
    }

    fn rebuild_box(
        &self,
        name: Name,
        sealed: bool,
        entries: Vec<(Name, Handle)>,
    ) -> Result<(), RefusedBatch> {
        self.insert_box(name, sealed, entries)
    }

    fn inspect_held(&self, f: &mut dyn FnMut(Vec<HeldBox<'_>>)) -> bool {
        self.inspect(f);
        true
    }

    fn capabilities(&self) -> crate::device::Capabilities {
        crate::device::Capabilities {
            survives_host_restart: false,
            ..crate::device::Capabilities::ALL
        }
    }

    fn create_box(&self, name: &Name) -> Result<(), Error> {
        let mut boxes = self.lock();
        if boxes.contains_key(name) {
            return Err(Error::BoxExists(name.clone()));
        }
        boxes.insert(name.clone(), BoxContents::default());
        Ok(())
    }

    fn delete_box(&self, name: &Name) -> Result<(), Error> {
        let removed = self.lock().remove(name);
        // The fds close here, outside the lock.
        match removed {
            Some(_) => Ok(()),
            None => Err(Error::NoSuchBox(name.clone())),
        }
    }

    fn boxes(&self) -> Result<Vec<BoxStatus>, Error> {
        Ok(self.lock().iter().map(|(name, b)| b.status(name)).collect())
    }

    fn status(&self, name: &Name) -> Result<BoxStatus, Error> {
        self.with_box(name, |b| Ok(b.status(name)))
    }

    fn put_many_within(
        &self,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        max_entries: usize,
    ) -> Result<(), RefusedBatch> {
        self.put_within(box_name, entries, guest_quota(max_entries).as_slice())
    }

    fn get_many(&self, box_name: &Name, names: &[Name]) -> Result<Vec<Handle>, Error> {
        self.with_box(box_name, |b| {
            if b.sealed {
                return Err(Error::BoxSealed(box_name.clone()));
            }
            // One lookup per name: take them out in order, and on the first
            // name that is not there (missing, or asked twice) put back what
            // was taken, so the box is as it was, and name the problem.
            let mut taken = Vec::with_capacity(names.len());
            for name in names {
                match b.entries.remove_entry(name) {
                    Some(entry) => taken.push(entry),
                    None => {
                        b.entries.extend(taken);
                        return Err(missing_or_twice(box_name, &b.entries, names));
                    }
                }
            }
            Ok(taken.into_iter().map(|(_, handle)| handle).collect())
        })
    }

    fn get(&self, box_name: &Name, entry: &Name) -> Result<Handle, Error> {
        self.with_box(box_name, |b| {
            if b.sealed {
                return Err(Error::BoxSealed(box_name.clone()));
            }
            b.entries.remove(entry).ok_or_else(|| Error::NoSuchEntry {
                box_name: box_name.clone(),
                entry: entry.clone(),
            })
        })
    }

    fn entries(&self, box_name: &Name) -> Result<Vec<EntryInfo>, Error> {
        self.with_box(box_name, |b| {
            Ok(sorted(&b.entries)
                .into_iter()
                .map(|(name, handle)| EntryInfo {
                    name: name.clone(),
                    kind: handle.kind(),
                    size: match handle.kind() {
                        HandleKind::MemoryFile | HandleKind::File => rustix::fs::fstat(handle.fd())
                            .ok()
                            .map(|s| s.st_size as u64),
                        _ => None,
                    },
                })
                .collect())
        })
    }

    fn seal(&self, box_name: &Name) -> Result<(), Error> {
        self.with_box(box_name, |b| {
            if b.sealed {
                return Err(Error::BoxSealed(box_name.clone()));
            }
            b.sealed = true;
            Ok(())
        })
    }

    fn unseal(&self, box_name: &Name) -> Result<(), Error> {
        self.with_box(box_name, |b| {
            if !b.sealed {
                return Err(Error::BoxNotSealed(box_name.clone()));
            }
            b.sealed = false;
            Ok(())
        })
    }
}
