//! One guest's fdbox context: the shared device seen through that guest's
//! grants and quotas.

use super::descriptor_kinds::DescriptorKinds;
use super::grant::{Grant, Grants, Operation, Quotas};
use super::held::{Held, check_host_room};
use super::sockets::{TcpConnection, TcpListener};
use crate::device::{Device, EntryInfo, Refused};
use crate::{Error, Handle, HandleKind, Lifecycle, ListenerGrants, Name};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use wasmtime_wasi::filesystem::Descriptor;

/// What one guest may do with fdbox: a device shared by every guest of the
/// host, and this guest's grants and quotas.
///
/// Cheap to clone; clone it for each `Store` of the same guest (for example
/// each restart) so every instance sees the same boxes.
#[derive(Clone)]
pub struct FdboxCtx {
    device: Arc<dyn Device>,
    grants: Grants,
    quotas: Quotas,
    allow_blocking_current_thread: bool,
    kinds: Arc<DescriptorKinds>,
    listeners: ListenerGrants,
    lifecycle: Arc<Lifecycle>,
    /// At least the bytes of memory files in the guest's boxes, as last
    /// counted plus what it put since (never less: gets are not
    /// subtracted), or `None` before the first count. Shared by the clones.
    memory_file_bytes: Arc<std::sync::Mutex<Option<u64>>>,
    /// What fdbox handed the guest that it still holds. Shared by the
    /// clones.
    held: Arc<Held>,
}

/// A socket about to be handed to a guest.
pub(crate) enum SocketRef<'a> {
    Listener(&'a TcpListener),
    Connection(&'a TcpConnection),
}

/// Builds an [`FdboxCtx`]: no grants, default quotas.
pub struct FdboxCtxBuilder {
    ctx: FdboxCtx,
}

impl FdboxCtxBuilder {
    /// Grant the guest `grant`.
    pub fn grant(mut self, grant: Grant) -> Self {
        self.ctx.grants.add(grant);
        self
    }

    /// Set the guest's quotas.
    pub fn quotas(mut self, quotas: Quotas) -> Self {
        self.ctx.quotas = quotas;
        self
    }

    /// Let file I/O on descriptors fdbox hands out run on the calling thread
    /// (fast for memory files) instead of tokio's blocking pool, as
    /// `WasiCtxBuilder::allow_blocking_current_thread` does for WASI's own.
    pub fn allow_blocking_current_thread(mut self, enable: bool) -> Self {
        self.ctx.allow_blocking_current_thread = enable;
        self
    }

    /// Grant the guest the listeners in `listeners` (shared with every
    /// context made with the same grants: one bound socket each).
    pub fn listeners(mut self, listeners: ListenerGrants) -> Self {
        self.ctx.listeners = listeners;
        self
    }

    /// The instance's lifecycle channel (by default one nobody asks
    /// anything on).
    pub fn lifecycle(mut self, lifecycle: Arc<Lifecycle>) -> Self {
        self.ctx.lifecycle = lifecycle;
        self
    }

    /// The finished context.
    pub fn build(self) -> FdboxCtx {
        self.ctx
    }
}

impl FdboxCtx {
    /// Start building a context over `device`. Deny by default: without a
    /// grant the guest sees no box.
    pub fn builder(device: Arc<dyn Device>) -> FdboxCtxBuilder {
        FdboxCtxBuilder {
            ctx: FdboxCtx {
                device,
                grants: Grants::none(),
                quotas: Quotas::default(),
                allow_blocking_current_thread: false,
                kinds: Arc::default(),
                listeners: ListenerGrants::new(),
                lifecycle: Lifecycle::new(),
                memory_file_bytes: Arc::default(),
                held: Arc::default(),
            },
        }
    }

    /// The device behind this context.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.device
    }

    /// The guest's grants.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The guest's quotas.
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    /// The instance's lifecycle channel.
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    /// The listener granted under `name`.
    pub fn listener(&self, name: &str) -> Result<TcpListener, Error> {
        self.listeners.take(name)
    }

    /// Build the guest's descriptor around `handle`, remembering its kind
    /// and counting it among what the guest holds; a socket, which is no
    /// descriptor, comes back.
    pub(crate) fn descriptor_for_guest(&self, handle: Handle) -> Result<Descriptor, Handle> {
        let kind = handle.kind();
        let descriptor =
            super::descriptor::from_handle(handle, self.allow_blocking_current_thread)?;
        self.kinds.remember(&descriptor, kind);
        match &descriptor {
            Descriptor::File(f) => self.held.record(&f.file, kind),
            Descriptor::Dir(d) => self.held.record(&d.dir, kind),
        }
        Ok(descriptor)
    }

    /// Count a socket handed to the guest among what it holds.
    pub(crate) fn socket_for_guest(&self, socket: &SocketRef<'_>) {
        match socket {
            SocketRef::Listener(l) => self.held.record(l.registration(), HandleKind::TcpListener),
            SocketRef::Connection(c) => self
                .held
                .record(c.registration(), HandleKind::TcpConnection),
        }
    }

    /// How many descriptors and sockets fdbox gave the guest that it still
    /// holds (granted listeners, the host's, are not among them).
    pub fn held_descriptors(&self) -> usize {
        self.held.live()
    }

    /// Refuse unless the guest may hold `adding` more descriptors
    /// ([`Quotas::max_descriptors`]).
    pub(crate) fn admit(&self, adding: usize) -> Result<(), Error> {
        self.held.admit(adding, &self.quotas)
    }

    /// A new, empty memory file for the guest (`memory-files.create`),
    /// within its descriptor quota, its memory-file byte quota (the bytes
    /// in its boxes and in the memory files it holds must not already reach
    /// the limit) and the fds the host keeps for itself.
    pub(crate) fn new_memory_file(&self, name: &str) -> Result<Descriptor, Error> {
        let name = Name::new(name)?;
        self.admit(1)?;
        let holding = self.held.memory_file_bytes();
        let limit = self.quotas.max_memory_file_bytes;
        let boxed = self.boxed_memory_file_bytes(holding)?;
        let total = boxed.saturating_add(holding);
        if total >= limit {
            return Err(Error::QuotaExceeded(format!(
                "this guest's memory files already hold {total} bytes ({holding} in files it holds, {boxed} in its boxes) and its limit is {limit} (Quotas::max_memory_file_bytes), so it may create no more: drop, shrink or delete some first"
            )));
        }
        let handle = Handle::new_memory_file(&name)?;
        check_host_room(handle.fd())?;
        Ok(self
            .descriptor_for_guest(handle)
            .unwrap_or_else(|_| unreachable!("a memory file is a descriptor")))
    }

    /// Take a guest's descriptor apart into a handle; on failure it comes back.
    pub(crate) fn handle_from_guest(
        &self,
        descriptor: Descriptor,
    ) -> Result<Handle, (Error, Descriptor)> {
        let known = self.kinds.take(&descriptor);
        super::descriptor::into_handle(descriptor, known)
    }

    /// Create a box, within the guest's grants and box quota.
    pub fn create_box(&self, name: &str) -> Result<Name, Error> {
        let name = Name::new(name)?;
        self.grants.check(&name, Operation::Create)?;
        let visible = self.list_boxes()?.len();
        if visible >= self.quotas.max_boxes {
            return Err(Error::QuotaExceeded(format!(
                "this guest already has {visible} boxes, its limit (Quotas::max_boxes)"
            )));
        }
        self.device.create_box(&name)?;
        Ok(name)
    }

    /// Open an existing, granted box.
    pub fn open_box(&self, name: &str) -> Result<Name, Error> {
        let name = Name::new(name)?;
        self.grants.check_visible(&name)?;
        self.device.status(&name)?;
        Ok(name)
    }

    /// Delete a granted box.
    pub fn delete_box(&self, name: &str) -> Result<(), Error> {
        let name = Name::new(name)?;
        self.grants.check(&name, Operation::Delete)?;
        self.device.delete_box(&name)
    }

    /// The existing boxes the guest may see, in name order.
    pub fn list_boxes(&self) -> Result<Vec<Name>, Error> {
        Ok(self
            .device
            .boxes()?
            .into_iter()
            .map(|b| b.name)
            .filter(|name| self.grants.covers(name))
            .collect())
    }

    /// Put `handle` into a granted box, within the entries quota.
    pub fn put(&self, box_name: &Name, entry: &str, handle: Handle) -> Result<EntryInfo, Refused> {
        match self.put_many(box_name, vec![(entry.to_owned(), handle)]) {
            Ok(mut entries) => Ok(entries.pop().expect("one entry per handle")),
            Err((error, mut handles)) => Err(Refused {
                error,
                handle: handles.pop().expect("a refusal returns every handle"),
            }),
        }
    }

    /// Put every handle into a granted box, all or nothing, within the
    /// entries quota: one request to the device. A refusal returns every
    /// handle, in order.
    pub fn put_many(
        &self,
        box_name: &Name,
        entries: Vec<(String, Handle)>,
    ) -> Result<Vec<EntryInfo>, (Error, Vec<Handle>)> {
        let checked = self.grants.check(box_name, Operation::Put).and_then(|()| {
            entries
                .iter()
                .map(|(entry, _)| Name::new(entry.as_str()))
                .collect::<Result<Vec<_>, _>>()
        });
        let checked = checked.and_then(|names| {
            self.check_memory_file_bytes(&entries)?;
            Ok(names)
        });
        let names = match checked {
            Ok(names) => names,
            Err(error) => return Err((error, entries.into_iter().map(|(_, h)| h).collect())),
        };
        let infos = names
            .iter()
            .zip(&entries)
            .map(|(name, (_, handle))| EntryInfo {
                name: name.clone(),
                kind: handle.kind(),
                size: None,
            })
            .collect();
        let batch = names
            .into_iter()
            .zip(entries.into_iter().map(|(_, h)| h))
            .collect();
        self.device
            .put_many_within(box_name, batch, self.quotas.max_entries_per_box)
            .map_err(|refused| {
                let handles = refused.entries.into_iter().map(|(_, h)| h).collect();
                (refused.error, handles)
            })?;
        Ok(infos)
    }

    /// Refuse a put whose memory files would take the guest's boxes past
    /// [`Quotas::max_memory_file_bytes`]. The boxes are counted (one device
    /// call per visible box) at the first such put and whenever the running
    /// figure, which only grows, would pass the limit; so a refusal is
    /// always made on a fresh count, and a put far from the limit costs one
    /// `fstat`.
    fn check_memory_file_bytes(&self, entries: &[(String, Handle)]) -> Result<(), Error> {
        let mut adding = 0u64;
        for (_, handle) in entries {
            if handle.kind() == HandleKind::MemoryFile {
                adding += rustix::fs::fstat(handle.fd())?.st_size as u64;
            }
        }
        if adding == 0 {
            return Ok(());
        }
        let limit = self.quotas.max_memory_file_bytes;
        let mut counted = self
            .memory_file_bytes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let held = match *counted {
            Some(held) if held.saturating_add(adding) <= limit => held,
            _ => self.count_memory_file_bytes()?,
        };
        if held.saturating_add(adding) > limit {
            *counted = Some(held);
            return Err(Error::QuotaExceeded(format!(
                "this guest's memory files would hold {} bytes in its boxes; its limit is {limit} (Quotas::max_memory_file_bytes)",
                held + adding
            )));
        }
        // Counted in before the put: a put that then fails leaves the
        // figure high, which only brings the next count sooner.
        *counted = Some(held + adding);
        Ok(())
    }

    /// At least the bytes of memory files in the guest's boxes, counted
    /// afresh if the running figure plus `also` reaches the limit (so a
    /// refusal is made on a fresh count, as at put).
    fn boxed_memory_file_bytes(&self, also: u64) -> Result<u64, Error> {
        let mut counted = self
            .memory_file_bytes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let held = match *counted {
            Some(held) if held.saturating_add(also) < self.quotas.max_memory_file_bytes => held,
            _ => self.count_memory_file_bytes()?,
        };
        *counted = Some(held);
        Ok(held)
    }

    /// The bytes of the memory files in the boxes this guest sees.
    fn count_memory_file_bytes(&self) -> Result<u64, Error> {
        let mut held = 0u64;
        for name in self.list_boxes()? {
            held += self
                .device
                .entries(&name)
                .unwrap_or_default()
                .iter()
                .filter(|e| e.kind == HandleKind::MemoryFile)
                .filter_map(|e| e.size)
                .sum::<u64>();
        }
        Ok(held)
    }

    /// Take the handle `entry` out of a granted box.
    pub fn get(&self, box_name: &Name, entry: &str) -> Result<Handle, Error> {
        let mut handles = self.get_many(box_name, &[entry])?;
        Ok(handles.pop().expect("one handle per name"))
    }

    /// Take the handles named `entries` out of a granted box, all or
    /// nothing: one request to the device. Refused, and the box left as it
    /// was, if the guest would then hold more descriptors than
    /// [`Quotas::max_descriptors`] or the host process would come within
    /// [`HOST_RESERVED_FDS`](crate::wasm::HOST_RESERVED_FDS) of its fd limit.
    pub fn get_many(&self, box_name: &Name, entries: &[&str]) -> Result<Vec<Handle>, Error> {
        let names = entries
            .iter()
            .map(|e| Name::new(*e))
            .collect::<Result<Vec<_>, _>>()?;
        self.grants.check(box_name, Operation::Get)?;
        self.admit(names.len())?;
        let handles = self.device.get_many(box_name, &names)?;
        let highest = handles.iter().max_by_key(|h| h.fd().as_raw_fd());
        if let Some(Err(error)) = highest.map(|h| check_host_room(h.fd())) {
            self.put_back(box_name, names.into_iter().zip(handles).collect());
            return Err(error);
        }
        Ok(handles)
    }

    /// Put handles just taken out of `box_name` back under their names.
    pub(crate) fn put_back(&self, box_name: &Name, entries: Vec<(Name, Handle)>) {
        if let Err(refused) = self.device.put_many(box_name, entries) {
            tracing::error!(
                "entries of box {box_name:?} could not be put back ({}); they are closed",
                refused.error
            );
        }
    }

    /// The entries of a granted box.
    pub fn entries(&self, box_name: &Name) -> Result<Vec<EntryInfo>, Error> {
        self.grants.check_visible(box_name)?;
        self.device.entries(box_name)
    }

    /// Seal a granted box.
    pub fn seal(&self, box_name: &Name) -> Result<(), Error> {
        self.grants.check(box_name, Operation::Seal)?;
        self.device.seal(box_name)
    }

    /// Unseal a granted box.
    pub fn unseal(&self, box_name: &Name) -> Result<(), Error> {
        self.grants.check(box_name, Operation::Unseal)?;
        self.device.unseal(box_name)
    }

    /// Whether a granted box is sealed.
    pub fn is_sealed(&self, box_name: &Name) -> Result<bool, Error> {
        self.grants.check_visible(box_name)?;
        Ok(self.device.status(box_name)?.sealed)
    }
}
