//! The WIT interfaces implemented over an [`Fdbox`] view.

use crate::device::EntryInfo;
use crate::lifecycle::Request;
use crate::sockets::{TcpConnection, TcpListener};
use crate::{Error, ErrorCode, Fdbox, Handle, HandleKind, Name};
use wasmtime::component::Resource;
use wasmtime_wasi::filesystem::Descriptor;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};

/// The bindings of `wit/`, made by `build.rs` (see there why not `bindgen!`).
#[allow(missing_docs, dead_code, unused_variables, clippy::all)]
pub(crate) mod generated {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use generated::fdbox::fdbox::{boxes, lifecycle, memory_files, sockets, types};

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

type GuestResult<T> = wasmtime::Result<Result<T, types::ErrorCode>>;

impl Fdbox<'_> {
    fn box_name(&self, this: &Resource<BoxRef>) -> wasmtime::Result<Name> {
        Ok(self.table.get(this)?.0.clone())
    }

    fn push_box(&mut self, name: Result<Name, Error>) -> GuestResult<Resource<BoxRef>> {
        match name {
            Ok(name) => Ok(Ok(self.table.push(BoxRef(name))?)),
            Err(e) => Ok(Err(code(e))),
        }
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

    /// Put what the guest offers into `box_name`; a refused handle comes back
    /// as the guest had it.
    fn put_guest(
        &self,
        box_name: &Name,
        name: &str,
        offered: GuestHandle,
    ) -> Result<EntryInfo, (Error, GuestHandle)> {
        let copy = match &offered {
            GuestHandle::Descriptor(_) => {
                let GuestHandle::Descriptor(d) = offered else {
                    unreachable!("matched above")
                };
                let handle = self
                    .ctx
                    .handle_from_guest(d)
                    .map_err(|(e, d)| (e, GuestHandle::Descriptor(d)))?;
                return self.ctx.put(box_name, name, handle).map_err(|refused| {
                    let d = self
                        .ctx
                        .descriptor_for_guest(refused.handle)
                        .expect("a descriptor's handle is a descriptor again");
                    (refused.error, GuestHandle::Descriptor(d))
                });
            }
            // A socket: the box gets a duplicate, and the guest's socket
            // closes only once the put succeeded, so a refusal hands it back
            // exactly as it was (registered, streams working).
            GuestHandle::Listener(l) => l.boxed_copy(),
            GuestHandle::Connection(c) => c.boxed_copy(),
        };
        let copy = match copy {
            Ok(copy) => copy,
            Err(e) => return Err((e, offered)),
        };
        self.ctx
            .put(box_name, name, copy)
            .map_err(|refused| (refused.error, offered))
    }

    /// The guest's value for `handle`, just taken out of `box_name` as
    /// `entry`; one that cannot become one (a socket asked for as a
    /// descriptor) goes back into the box.
    fn for_guest(
        &self,
        box_name: &Name,
        entry: &str,
        handle: Handle,
        descriptors_only: bool,
    ) -> Result<GuestHandle, Error> {
        let kind = handle.kind();
        let converted = match kind {
            HandleKind::TcpListener if !descriptors_only => {
                TcpListener::from_handle(handle).map(GuestHandle::Listener)
            }
            HandleKind::TcpConnection if !descriptors_only => {
                TcpConnection::from_handle(handle).map(GuestHandle::Connection)
            }
            _ => self
                .ctx
                .descriptor_for_guest(handle)
                .map(GuestHandle::Descriptor)
                .map_err(|handle| {
                    let error = Error::NotADescriptor {
                        entry: entry.to_owned(),
                        kind,
                    };
                    (error, handle)
                }),
        };
        converted.map_err(|(error, handle)| {
            let back = Name::new(entry).map(|entry| self.ctx.device().put(box_name, &entry, handle));
            if let Ok(Err(refused)) = back {
                tracing::error!(
                    "entry {entry:?} of box {box_name:?} could not be handed to the guest ({error}) nor put back ({}); it is closed",
                    refused.error
                );
            }
            error
        })
    }

    fn push_handle(&mut self, handle: Handle) -> wasmtime::Result<Resource<Descriptor>> {
        let descriptor = self
            .ctx
            .descriptor_for_guest(handle)
            .map_err(|h| wasmtime::format_err!("a {} is no descriptor", h.kind()))?;
        Ok(self.table.push(descriptor)?)
    }
}

impl types::Host for Fdbox<'_> {}

impl boxes::Host for Fdbox<'_> {
    fn list_boxes(&mut self) -> GuestResult<Vec<String>> {
        Ok(self
            .ctx
            .list_boxes()
            .map(|names| names.into_iter().map(|n| n.as_str().to_owned()).collect())
            .map_err(code))
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
        Ok(self.ctx.delete_box(&name).map_err(code))
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
        let box_name = self.box_name(&this)?;
        let offered = GuestHandle::Descriptor(self.table.delete(handle)?);
        match self.put_guest(&box_name, &name, offered) {
            Ok(entry) => Ok(Ok(self.push_entry(entry, box_name)?)),
            Err((error, GuestHandle::Descriptor(d))) => Ok(Err(boxes::RefusedPut {
                code: code(error),
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
        let box_name = self.box_name(&this)?;
        let offered = self.take_guest(handle)?;
        match self.put_guest(&box_name, &name, offered) {
            Ok(entry) => Ok(Ok(self.push_entry(entry, box_name)?)),
            Err((error, back)) => Ok(Err(boxes::RefusedHandle {
                code: code(error),
                handle: self.push_guest(back)?,
            })),
        }
    }

    fn get(&mut self, this: Resource<BoxRef>, name: String) -> GuestResult<Resource<Descriptor>> {
        let box_name = self.box_name(&this)?;
        let taken = self
            .ctx
            .get(&box_name, &name)
            .and_then(|handle| self.for_guest(&box_name, &name, handle, true));
        match taken {
            Ok(GuestHandle::Descriptor(d)) => Ok(Ok(self.table.push(d)?)),
            Ok(_) => unreachable!("descriptors only"),
            Err(e) => Ok(Err(code(e))),
        }
    }

    fn get_handle(&mut self, this: Resource<BoxRef>, name: String) -> GuestResult<boxes::Handle> {
        let box_name = self.box_name(&this)?;
        let taken = self
            .ctx
            .get(&box_name, &name)
            .and_then(|handle| self.for_guest(&box_name, &name, handle, false));
        match taken {
            Ok(handle) => Ok(Ok(self.push_guest(handle)?)),
            Err(e) => Ok(Err(code(e))),
        }
    }

    fn entries(&mut self, this: Resource<BoxRef>) -> GuestResult<Vec<Resource<BoxFdRef>>> {
        let box_name = self.box_name(&this)?;
        let entries = match self.ctx.entries(&box_name) {
            Ok(entries) => entries,
            Err(e) => return Ok(Err(code(e))),
        };
        let resources = entries
            .into_iter()
            .map(|entry| self.push_entry(entry, box_name.clone()))
            .collect::<wasmtime::Result<_>>()?;
        Ok(Ok(resources))
    }

    fn seal(&mut self, this: Resource<BoxRef>) -> GuestResult<()> {
        let box_name = self.box_name(&this)?;
        Ok(self.ctx.seal(&box_name).map_err(code))
    }

    fn unseal(&mut self, this: Resource<BoxRef>) -> GuestResult<()> {
        let box_name = self.box_name(&this)?;
        Ok(self.ctx.unseal(&box_name).map_err(code))
    }

    fn is_sealed(&mut self, this: Resource<BoxRef>) -> GuestResult<bool> {
        let box_name = self.box_name(&this)?;
        Ok(self.ctx.is_sealed(&box_name).map_err(code))
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
        match Name::new(name).and_then(|name| Handle::new_memory_file(&name)) {
            Ok(handle) => Ok(Ok(self.push_handle(handle)?)),
            Err(e) => Ok(Err(code(e))),
        }
    }
}

impl sockets::Host for Fdbox<'_> {
    fn listener(&mut self, name: String) -> GuestResult<Resource<TcpListener>> {
        match self.ctx.listener(&name) {
            Ok(listener) => Ok(Ok(self.table.push(listener)?)),
            Err(e) => Ok(Err(code(e))),
        }
    }
}

impl sockets::HostTcpListener for Fdbox<'_> {
    fn accept(
        &mut self,
        this: Resource<TcpListener>,
    ) -> GuestResult<Option<Resource<TcpConnection>>> {
        match self.table.get(&this)?.accept() {
            Ok(Some(connection)) => Ok(Ok(Some(self.table.push(connection)?))),
            Ok(None) => Ok(Ok(None)),
            Err(e) => Ok(Err(code(e))),
        }
    }

    fn local_address(&mut self, this: Resource<TcpListener>) -> GuestResult<String> {
        Ok(self.table.get(&this)?.local_address().map_err(code))
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
        Ok(self.table.get(&this)?.peer_address().map_err(code))
    }

    fn streams(
        &mut self,
        this: Resource<TcpConnection>,
    ) -> GuestResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
        let (input, output) = self.table.get(&this)?.streams();
        let input: DynInputStream = Box::new(input);
        let output: DynOutputStream = Box::new(output);
        Ok(Ok((self.table.push(input)?, self.table.push(output)?)))
    }

    fn shutdown_send(&mut self, this: Resource<TcpConnection>) -> GuestResult<()> {
        Ok(self.table.get(&this)?.shutdown_send().map_err(code))
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
