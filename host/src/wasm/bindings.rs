//! The WIT interfaces implemented over an [`Fdbox`] view.

use super::ctx::SocketRef;
use super::held::check_host_room;
use super::lifecycle::Request;
use super::sockets::{TcpConnection, TcpListener};
use crate::device::EntryInfo;
use crate::{Error, ErrorCode, Fdbox, Handle, HandleKind, Name};
use std::os::fd::AsFd;
use wasmtime::component::{Resource, ResourceTableError};
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};

use super::generated::fdbox::fdbox::{boxes, lifecycle, memory_files, sockets, types};

/// The host side of a guest's `box` resource: the name of a box the guest
/// created or opened. Every operation checks the grant again, so a handle
/// grants nothing by itself.
pub struct BoxRef(Name);

/// The host side of a guest's `box-fd` resource: a snapshot of one entry.
pub struct BoxFdRef {
    box_name: Name,
    entry: EntryInfo,
}

impl From<ErrorCode> for types::ErrorCode {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::InvalidName => Self::InvalidName,
            ErrorCode::NameTooLong => Self::NameTooLong,
            ErrorCode::AlreadyExists => Self::AlreadyExists,
            ErrorCode::NotFound => Self::NotFound,
            ErrorCode::BoxSealed => Self::BoxSealed,
            ErrorCode::BoxNotSealed => Self::BoxNotSealed,
            ErrorCode::KindNotSupported => Self::KindNotSupported,
            ErrorCode::AccessDenied => Self::AccessDenied,
            ErrorCode::QuotaExceeded => Self::QuotaExceeded,
            ErrorCode::DeviceUnavailable => Self::DeviceUnavailable,
        }
    }
}

impl From<HandleKind> for types::HandleKind {
    fn from(kind: HandleKind) -> Self {
        match kind {
            HandleKind::MemoryFile => Self::MemoryFile,
            HandleKind::File => Self::File,
            HandleKind::Directory => Self::Directory,
            HandleKind::TcpListener => Self::TcpListener,
            HandleKind::TcpConnection => Self::TcpConnection,
        }
    }
}

/// A handle as a guest holds it: the host value behind its resource.
enum GuestHandle {
    Descriptor(Descriptor),
    Listener(TcpListener),
    Connection(TcpConnection),
}

/// The guest sees the code; the host's log keeps the whole story.
fn code(error: Error) -> types::ErrorCode {
    tracing::debug!(%error, "fdbox call refused");
    error.code().into()
}

/// Why a function that fails with `error-code` failed: the bindings'
/// trappable error type for `fdbox:fdbox/types.error-code` (as
/// wasmtime-wasi's `FsError` is for `wasi:filesystem`). A library [`Error`]
/// becomes the code the guest sees; a failure of the host itself (its
/// resource table, say) traps the guest instead.
pub enum FdboxError {
    /// Returned to the guest.
    Code(types::ErrorCode),
    /// Traps the guest.
    Trap(wasmtime::Error),
}

impl FdboxError {
    /// Trap the guest with `error`.
    pub fn trap(error: impl Into<wasmtime::Error>) -> Self {
        Self::Trap(error.into())
    }
}

impl From<Error> for FdboxError {
    fn from(error: Error) -> Self {
        Self::Code(code(error))
    }
}

impl From<ResourceTableError> for FdboxError {
    fn from(error: ResourceTableError) -> Self {
        Self::trap(error)
    }
}

impl From<wasmtime::Error> for FdboxError {
    fn from(error: wasmtime::Error) -> Self {
        Self::Trap(error)
    }
}

type GuestResult<T> = Result<T, FdboxError>;

impl Fdbox<'_> {
    fn box_name(&self, this: &Resource<BoxRef>) -> wasmtime::Result<Name> {
        Ok(self.table.get(this)?.0.clone())
    }

    fn push_box(&mut self, name: Result<Name, Error>) -> GuestResult<Resource<BoxRef>> {
        Ok(self.table.push(BoxRef(name?))?)
    }

    fn push_entry(
        &mut self,
        entry: EntryInfo,
        box_name: Name,
    ) -> wasmtime::Result<Resource<BoxFdRef>> {
        Ok(self.table.push(BoxFdRef { box_name, entry })?)
    }

    fn take_guest(&mut self, handle: boxes::Handle) -> wasmtime::Result<GuestHandle> {
        Ok(match handle {
            boxes::Handle::Descriptor(d) => GuestHandle::Descriptor(self.table.delete(d)?),
            boxes::Handle::TcpListener(l) => GuestHandle::Listener(self.table.delete(l)?),
            boxes::Handle::TcpConnection(c) => GuestHandle::Connection(self.table.delete(c)?),
        })
    }

    fn push_guest(&mut self, handle: GuestHandle) -> wasmtime::Result<boxes::Handle> {
        Ok(match handle {
            GuestHandle::Descriptor(d) => boxes::Handle::Descriptor(self.table.push(d)?),
            GuestHandle::Listener(l) => boxes::Handle::TcpListener(self.table.push(l)?),
            GuestHandle::Connection(c) => boxes::Handle::TcpConnection(self.table.push(c)?),
        })
    }

    /// Put what the guest offers into `box_name`, all or nothing; refused
    /// handles come back as the guest had them, in order.
    fn put_guests(
        &self,
        box_name: &Name,
        offered: Vec<(String, GuestHandle)>,
    ) -> Result<Vec<EntryInfo>, (Error, Vec<GuestHandle>)> {
        // Sockets: the box gets a duplicate, and the guest's socket closes
        // only once the put succeeded, so a refusal hands it back exactly as
        // it was (registered, streams working). Descriptors move.
        let mut batch = Vec::with_capacity(offered.len());
        let mut kept: Vec<Option<GuestHandle>> = Vec::with_capacity(offered.len());
        let mut failure = None;
        let mut rest = offered.into_iter();
        for (name, guest) in rest.by_ref() {
            let converted = match guest {
                GuestHandle::Descriptor(d) => self
                    .ctx
                    .handle_from_guest(d)
                    .map(|h| (h, None))
                    .map_err(|(e, d)| (e, GuestHandle::Descriptor(d))),
                socket => {
                    let copy = match &socket {
                        GuestHandle::Listener(l) => l.boxed_copy(),
                        GuestHandle::Connection(c) => c.boxed_copy(),
                        GuestHandle::Descriptor(_) => unreachable!("matched above"),
                    };
                    match copy {
                        Ok(copy) => Ok((copy, Some(socket))),
                        Err(e) => Err((e, socket)),
                    }
                }
            };
            match converted {
                Ok((handle, original)) => {
                    batch.push((name, handle));
                    kept.push(original);
                }
                Err((error, guest)) => {
                    failure = Some((error, guest));
                    break;
                }
            }
        }
        let (error, handles, failed) = match failure {
            None => match self.ctx.put_many(box_name, batch) {
                Ok(entries) => return Ok(entries),
                Err((error, handles)) => (error, handles, None),
            },
            Some((error, guest)) => (
                error,
                batch.into_iter().map(|(_, h)| h).collect(),
                Some(guest),
            ),
        };
        let mut back: Vec<GuestHandle> = handles
            .into_iter()
            .zip(kept)
            .map(|(handle, original)| {
                original.unwrap_or_else(|| {
                    GuestHandle::Descriptor(
                        self.ctx
                            .descriptor_for_guest(handle)
                            .expect("a descriptor's handle is a descriptor again"),
                    )
                })
            })
            .collect();
        back.extend(failed);
        back.extend(rest.map(|(_, g)| g));
        Err((error, back))
    }

    /// Take `entries` out of `box_name` for the guest, all or nothing. With
    /// `descriptors_only`, an entry that is no descriptor (a socket) refuses
    /// the whole call and stays in the box.
    fn get_guests(
        &self,
        box_name: &Name,
        entries: &[&str],
        descriptors_only: bool,
    ) -> Result<Vec<GuestHandle>, Error> {
        let handles = self.ctx.get_many(box_name, entries)?;
        let misfit = handles
            .iter()
            .zip(entries)
            .find(|(h, _)| descriptors_only && !h.kind().is_descriptor());
        if let Some((handle, entry)) = misfit {
            let error = Error::NotADescriptor {
                entry: entry.to_string(),
                kind: handle.kind(),
            };
            self.put_back(box_name, entries.iter().copied().zip(handles).collect());
            return Err(error);
        }
        let mut taken = Vec::with_capacity(handles.len());
        let mut handles = entries.iter().copied().zip(handles);
        for (entry, handle) in handles.by_ref() {
            let converted = match handle.kind() {
                HandleKind::TcpListener => {
                    TcpListener::from_handle(handle).map(GuestHandle::Listener)
                }
                HandleKind::TcpConnection => {
                    TcpConnection::from_handle(handle).map(GuestHandle::Connection)
                }
                _ => Ok(GuestHandle::Descriptor(
                    self.ctx
                        .descriptor_for_guest(handle)
                        .expect("checked to be a descriptor"),
                )),
            };
            match converted {
                Ok(guest) => {
                    match &guest {
                        GuestHandle::Listener(l) => {
                            self.ctx.socket_for_guest(&SocketRef::Listener(l))
                        }
                        GuestHandle::Connection(c) => {
                            self.ctx.socket_for_guest(&SocketRef::Connection(c))
                        }
                        GuestHandle::Descriptor(_) => {}
                    }
                    taken.push((entry, guest))
                }
                Err((error, failed)) => {
                    // The reactor refused a socket (out of memory, say):
                    // all or nothing, so everything goes back in the box.
                    let back = taken
                        .into_iter()
                        .filter_map(|(entry, g)| Some((entry, self.handle_of(g)?)))
                        .chain(std::iter::once((entry, failed)))
                        .chain(handles)
                        .collect();
                    self.put_back(box_name, back);
                    return Err(error);
                }
            }
        }
        Ok(taken.into_iter().map(|(_, guest)| guest).collect())
    }

    /// A handle for what the guest was about to get, to put it back.
    fn handle_of(&self, guest: GuestHandle) -> Option<Handle> {
        match guest {
            GuestHandle::Descriptor(d) => self.ctx.handle_from_guest(d).ok(),
            GuestHandle::Listener(l) => l.boxed_copy().ok(),
            GuestHandle::Connection(c) => c.boxed_copy().ok(),
        }
    }

    /// `put` and `put-handle`: one entry.
    fn put_one(
        &mut self,
        this: Resource<BoxRef>,
        name: String,
        offered: GuestHandle,
    ) -> wasmtime::Result<Result<Resource<BoxFdRef>, (types::ErrorCode, GuestHandle)>> {
        let box_name = self.box_name(&this)?;
        match self.put_guests(&box_name, vec![(name, offered)]) {
            Ok(mut entries) => {
                let entry = entries.pop().expect("one entry per handle");
                Ok(Ok(self.push_entry(entry, box_name)?))
            }
            Err((error, mut back)) => Ok(Err((
                code(error),
                back.pop().expect("a refusal returns every handle"),
            ))),
        }
    }

    /// `get` and `get-handle`: one entry.
    fn get_one(
        &mut self,
        this: Resource<BoxRef>,
        name: &str,
        descriptors_only: bool,
    ) -> GuestResult<GuestHandle> {
        // Borrowed from the table, not copied: nothing here changes it.
        let box_name = &self.table.get(&this)?.0;
        let mut handles = self.get_guests(box_name, &[name], descriptors_only)?;
        Ok(handles.pop().expect("one handle per name"))
    }

    /// Put handles just taken out of `box_name` back under their names.
    fn put_back(&self, box_name: &Name, entries: Vec<(&str, Handle)>) {
        let batch = entries
            .into_iter()
            .filter_map(|(entry, handle)| Some((Name::new(entry).ok()?, handle)))
            .collect();
        self.ctx.put_back(box_name, batch);
    }
}

impl types::Host for Fdbox<'_> {
    fn convert_error_code(&mut self, error: FdboxError) -> wasmtime::Result<types::ErrorCode> {
        match error {
            FdboxError::Code(code) => Ok(code),
            FdboxError::Trap(error) => Err(error),
        }
    }
}

impl boxes::Host for Fdbox<'_> {
    fn list_boxes(&mut self) -> GuestResult<Vec<String>> {
        let names = self.ctx.list_boxes()?;
        Ok(names.into_iter().map(|n| n.as_str().to_owned()).collect())
    }
}

impl boxes::HostBox for Fdbox<'_> {
    fn create(&mut self, name: String) -> GuestResult<Resource<BoxRef>> {
        let name = self.ctx.create_box(&name);
        self.push_box(name)
    }

    fn open(&mut self, name: String) -> GuestResult<Resource<BoxRef>> {
        let name = self.ctx.open_box(&name);
        self.push_box(name)
    }

    fn delete(&mut self, name: String) -> GuestResult<()> {
        Ok(self.ctx.delete_box(&name)?)
    }

    fn name(&mut self, this: Resource<BoxRef>) -> wasmtime::Result<String> {
        Ok(self.box_name(&this)?.as_str().to_owned())
    }

    fn put(
        &mut self,
        this: Resource<BoxRef>,
        name: String,
        handle: Resource<Descriptor>,
    ) -> wasmtime::Result<Result<Resource<BoxFdRef>, boxes::RefusedPut>> {
        let offered = GuestHandle::Descriptor(self.table.delete(handle)?);
        match self.put_one(this, name, offered)? {
            Ok(entry) => Ok(Ok(entry)),
            Err((code, GuestHandle::Descriptor(d))) => Ok(Err(boxes::RefusedPut {
                code,
                handle: self.table.push(d)?,
            })),
            Err(_) => unreachable!("a refused descriptor comes back a descriptor"),
        }
    }

    fn put_handle(
        &mut self,
        this: Resource<BoxRef>,
        name: String,
        handle: boxes::Handle,
    ) -> wasmtime::Result<Result<Resource<BoxFdRef>, boxes::RefusedHandle>> {
        let offered = self.take_guest(handle)?;
        match self.put_one(this, name, offered)? {
            Ok(entry) => Ok(Ok(entry)),
            Err((code, back)) => Ok(Err(boxes::RefusedHandle {
                code,
                handle: self.push_guest(back)?,
            })),
        }
    }

    fn put_handles(
        &mut self,
        this: Resource<BoxRef>,
        entries: Vec<(String, boxes::Handle)>,
    ) -> wasmtime::Result<Result<Vec<Resource<BoxFdRef>>, boxes::RefusedHandles>> {
        let box_name = self.box_name(&this)?;
        let offered = entries
            .into_iter()
            .map(|(name, handle)| Ok((name, self.take_guest(handle)?)))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        match self.put_guests(&box_name, offered) {
            Ok(entries) => Ok(Ok(entries
                .into_iter()
                .map(|entry| self.push_entry(entry, box_name.clone()))
                .collect::<wasmtime::Result<_>>()?)),
            Err((error, back)) => Ok(Err(boxes::RefusedHandles {
                code: code(error),
                handles: back
                    .into_iter()
                    .map(|g| self.push_guest(g))
                    .collect::<wasmtime::Result<_>>()?,
            })),
        }
    }

    fn get(&mut self, this: Resource<BoxRef>, name: String) -> GuestResult<Resource<Descriptor>> {
        match self.get_one(this, &name, true)? {
            GuestHandle::Descriptor(d) => Ok(self.table.push(d)?),
            _ => unreachable!("descriptors only"),
        }
    }

    fn get_handle(&mut self, this: Resource<BoxRef>, name: String) -> GuestResult<boxes::Handle> {
        let handle = self.get_one(this, &name, false)?;
        Ok(self.push_guest(handle)?)
    }

    fn get_handles(
        &mut self,
        this: Resource<BoxRef>,
        names: Vec<String>,
    ) -> GuestResult<Vec<boxes::Handle>> {
        let box_name = self.box_name(&this)?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let handles = self.get_guests(&box_name, &names, false)?;
        Ok(handles
            .into_iter()
            .map(|g| self.push_guest(g))
            .collect::<wasmtime::Result<_>>()?)
    }

    fn entries(&mut self, this: Resource<BoxRef>) -> GuestResult<Vec<Resource<BoxFdRef>>> {
        let box_name = self.box_name(&this)?;
        let entries = self.ctx.entries(&box_name)?;
        Ok(entries
            .into_iter()
            .map(|entry| self.push_entry(entry, box_name.clone()))
            .collect::<wasmtime::Result<_>>()?)
    }

    fn seal(&mut self, this: Resource<BoxRef>) -> GuestResult<()> {
        let box_name = self.box_name(&this)?;
        Ok(self.ctx.seal(&box_name)?)
    }

    fn unseal(&mut self, this: Resource<BoxRef>) -> GuestResult<()> {
        let box_name = self.box_name(&this)?;
        Ok(self.ctx.unseal(&box_name)?)
    }

    fn is_sealed(&mut self, this: Resource<BoxRef>) -> GuestResult<bool> {
        let box_name = self.box_name(&this)?;
        Ok(self.ctx.is_sealed(&box_name)?)
    }

    fn drop(&mut self, this: Resource<BoxRef>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl boxes::HostBoxFd for Fdbox<'_> {
    fn name(&mut self, this: Resource<BoxFdRef>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.entry.name.as_str().to_owned())
    }

    fn kind(&mut self, this: Resource<BoxFdRef>) -> wasmtime::Result<types::HandleKind> {
        Ok(self.table.get(&this)?.entry.kind.into())
    }

    fn box_name(&mut self, this: Resource<BoxFdRef>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.box_name.as_str().to_owned())
    }

    fn drop(&mut self, this: Resource<BoxFdRef>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl memory_files::Host for Fdbox<'_> {
    fn create(&mut self, name: String) -> GuestResult<Resource<Descriptor>> {
        let descriptor = self.ctx.new_memory_file(&name)?;
        Ok(self.table.push(descriptor)?)
    }
}

impl sockets::Host for Fdbox<'_> {
    fn listener(&mut self, name: String) -> GuestResult<Resource<TcpListener>> {
        let listener = self.ctx.listener(&name)?;
        Ok(self.table.push(listener)?)
    }
}

impl sockets::HostTcpListener for Fdbox<'_> {
    fn accept(
        &mut self,
        this: Resource<TcpListener>,
    ) -> GuestResult<Option<Resource<TcpConnection>>> {
        self.ctx.admit(1)?;
        match self.table.get(&this)?.accept()? {
            Some(connection) => {
                // Near the host's fd limit the connection is closed again:
                // its client sees a reset, the guest `quota-exceeded`.
                check_host_room(connection.registration().as_fd())?;
                self.ctx
                    .socket_for_guest(&SocketRef::Connection(&connection));
                Ok(Some(self.table.push(connection)?))
            }
            None => Ok(None),
        }
    }

    fn local_address(&mut self, this: Resource<TcpListener>) -> GuestResult<String> {
        Ok(self.table.get(&this)?.local_address()?)
    }

    fn subscribe(
        &mut self,
        this: Resource<TcpListener>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn drop(&mut self, this: Resource<TcpListener>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl sockets::HostTcpConnection for Fdbox<'_> {
    fn peer_address(&mut self, this: Resource<TcpConnection>) -> GuestResult<String> {
        Ok(self.table.get(&this)?.peer_address()?)
    }

    fn streams(
        &mut self,
        this: Resource<TcpConnection>,
    ) -> GuestResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
        let (input, output) = self.table.get(&this)?.streams();
        let input: DynInputStream = Box::new(input);
        let output: DynOutputStream = Box::new(output);
        Ok((self.table.push(input)?, self.table.push(output)?))
    }

    fn shutdown_send(&mut self, this: Resource<TcpConnection>) -> GuestResult<()> {
        Ok(self.table.get(&this)?.shutdown_send()?)
    }

    fn subscribe(
        &mut self,
        this: Resource<TcpConnection>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, this)
    }

    fn drop(&mut self, this: Resource<TcpConnection>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl lifecycle::Host for Fdbox<'_> {
    fn subscribe(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let watch = self.table.push(self.ctx.lifecycle().watch())?;
        wasmtime_wasi::p2::subscribe(self.table, watch)
    }

    fn requested(&mut self) -> wasmtime::Result<lifecycle::Request> {
        Ok(match self.ctx.lifecycle().requested() {
            Request::None => lifecycle::Request::None,
            Request::Upgrade => lifecycle::Request::Upgrade,
            Request::Stop => lifecycle::Request::Stop,
        })
    }

    fn handed_over(&mut self) -> wasmtime::Result<()> {
        self.ctx.lifecycle().mark_handed_over();
        Ok(())
    }

    fn ready(&mut self) -> wasmtime::Result<()> {
        self.ctx.lifecycle().mark_ready();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The quotas on what a guest holds, driven through the bindings as a
    //! guest's calls reach them.

    use super::*;
    use crate::{FdboxCtx, Grant, MemoryDevice, Quotas};
    use boxes::HostBox as _;
    use std::sync::Arc;
    use wasmtime::component::ResourceTable;

    fn ctx(quotas: Quotas) -> FdboxCtx {
        FdboxCtx::builder(Arc::new(MemoryDevice::new()))
            .grant(Grant::prefix("q").unwrap())
            .quotas(quotas)
            .build()
    }

    fn memfd(fdbox: &mut Fdbox<'_>) -> GuestResult<Resource<Descriptor>> {
        memory_files::Host::create(fdbox, "m".into())
    }

    fn refused<T>(result: GuestResult<T>) -> types::ErrorCode {
        match result {
            Ok(_) => panic!("not refused"),
            Err(FdboxError::Code(code)) => code,
            Err(FdboxError::Trap(trap)) => panic!("trapped: {trap}"),
        }
    }

    fn ok<T>(result: GuestResult<T>) -> T {
        match result {
            Ok(value) => value,
            Err(FdboxError::Code(code)) => panic!("refused: {code:?}"),
            Err(FdboxError::Trap(trap)) => panic!("trapped: {trap}"),
        }
    }

    fn set_len(table: &ResourceTable, d: &Resource<Descriptor>, len: u64) {
        match table.get(d).unwrap() {
            Descriptor::File(f) => f.file.set_len(len).unwrap(),
            Descriptor::Dir(_) => unreachable!(),
        }
    }

    #[test]
    fn memory_files_past_the_descriptor_quota_are_refused() {
        let ctx = ctx(Quotas {
            max_descriptors: 8,
            ..Quotas::default()
        });
        let mut table = ResourceTable::new();
        let mut fdbox = Fdbox::new(&ctx, &mut table);
        let mut files: Vec<_> = (0..8).map(|_| ok(memfd(&mut fdbox))).collect();
        for _ in 0..100 {
            assert_eq!(refused(memfd(&mut fdbox)), types::ErrorCode::QuotaExceeded);
        }
        assert_eq!(ctx.held_descriptors(), 8, "a refused create makes no fd");
        // Dropping one makes room for one.
        fdbox.table.delete(files.pop().unwrap()).unwrap();
        files.push(ok(memfd(&mut fdbox)));
        assert_eq!(refused(memfd(&mut fdbox)), types::ErrorCode::QuotaExceeded);
        // A memory file put in a box is the box's, no longer the guest's.
        let b = ok(boxes::HostBox::create(&mut fdbox, "q".into()));
        let f = files.pop().unwrap();
        let b2 = Resource::new_borrow(b.rep());
        assert!(fdbox.put(b2, "e".into(), f).unwrap().is_ok());
        assert_eq!(ctx.held_descriptors(), 7);
        // A get past the quota is refused and leaves the box as it was.
        files.push(ok(memfd(&mut fdbox)));
        let b2 = Resource::new_borrow(b.rep());
        assert_eq!(
            refused(fdbox.get(b2, "e".into())),
            types::ErrorCode::QuotaExceeded
        );
        assert_eq!(ctx.entries(&Name::new("q").unwrap()).unwrap().len(), 1);
        drop(files);
    }

    #[test]
    fn memory_files_past_the_byte_quota_are_refused_at_create() {
        let ctx = ctx(Quotas {
            max_memory_file_bytes: 1000,
            ..Quotas::default()
        });
        let mut table = ResourceTable::new();
        let mut fdbox = Fdbox::new(&ctx, &mut table);
        let first = ok(memfd(&mut fdbox));
        set_len(fdbox.table, &first, 999);
        let second = ok(memfd(&mut fdbox));
        set_len(fdbox.table, &second, 1);
        // The guest's memory files hold its 1000 bytes: no more files.
        assert_eq!(refused(memfd(&mut fdbox)), types::ErrorCode::QuotaExceeded);
        assert_eq!(ctx.held_descriptors(), 2, "a refused create makes no fd");
        // Boxed bytes count as much as held ones.
        let b = ok(boxes::HostBox::create(&mut fdbox, "q".into()));
        let put = fdbox
            .put(Resource::new_borrow(b.rep()), "big".into(), first)
            .unwrap();
        assert!(put.is_ok());
        assert_eq!(refused(memfd(&mut fdbox)), types::ErrorCode::QuotaExceeded);
        // Shrinking a file makes room again.
        set_len(fdbox.table, &second, 0);
        let third = ok(memfd(&mut fdbox));
        // ... and growing it past the quota is caught when it is boxed.
        set_len(fdbox.table, &third, 2);
        match fdbox
            .put(Resource::new_borrow(b.rep()), "more".into(), third)
            .unwrap()
        {
            Err(refused) => {
                assert_eq!(refused.code, types::ErrorCode::QuotaExceeded);
                // Handed back, still the guest's.
                assert!(fdbox.table.get(&refused.handle).is_ok());
            }
            Ok(_) => panic!("a put past the byte quota was accepted"),
        }
    }
}
