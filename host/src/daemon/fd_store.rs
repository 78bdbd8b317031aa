//! Handing a holder's boxes to its next process: systemd's fd store and the
//! daemon's in-place upgrade, one mechanism for both. This module names the
//! fds and keeps the store in line; [`super::manifest`] is what travels
//! with them; [`super::Holder`] decides when (under its op lock).
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

use super::manifest::{Manifest, ManifestBox, ManifestEntry, manifest_fd_name};
use crate::HeldBox;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Where a holder keeps a copy of its fds that outlives its process:
/// systemd's fd store, which `fdbox daemon` reaches over `NOTIFY_SOCKET`.
pub trait FdStore: Send {
    /// Keep `fd` under `name`. Names are never reused for another fd.
    fn store(&mut self, name: &str, fd: BorrowedFd<'_>) -> io::Result<()>;
    /// Drop whatever is kept under `name`.
    fn remove(&mut self, name: &str) -> io::Result<()>;
}

/// Fds with their fd names.
pub(crate) type NamedFds<'a> = Vec<(String, BorrowedFd<'a>)>;

/// The fd names of a holder's fds, and what the fd store has.
#[derive(Default)]
pub(crate) struct FdNames {
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

impl FdNames {
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
    pub(crate) fn sync(&mut self, boxes: &[HeldBox<'_>]) {
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
    pub(crate) fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// The manifest of `boxes` in a memfd with its generation, and every fd
    /// to hand over with its name.
    pub(crate) fn export<'a>(
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

impl FdNames {
    /// Take over the name `fd_name` for `fd`, a recovered fd, and go on
    /// naming after it, so no name is ever given to two fds.
    pub(crate) fn adopt(&mut self, fd: RawFd, fd_name: String) {
        if let Some(n) = name_number(&fd_name) {
            self.next_name = self.next_name.max(n + 1);
        }
        self.names.insert(fd, fd_name);
    }

    /// Go on after `generation`, the recovered manifest's.
    pub(crate) fn continue_after(&mut self, generation: u64) {
        self.generation = generation;
    }

    /// Keep `sink` in line from the next sync on. `inherited` names what the
    /// store held when this process started: names no longer needed are
    /// removed from it. The first sync stores every fd again, which systemd
    /// ignores for fds it already has.
    pub(crate) fn attach(&mut self, sink: Box<dyn FdStore>, inherited: Vec<String>) {
        self.store = Some(StoreSync {
            sink,
            stored: inherited.into_iter().collect(),
            manifest: None,
            last: None,
            full: true,
            failing: false,
        });
    }
}
