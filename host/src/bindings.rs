//! The WIT interfaces implemented over an [`Fdbox`] view.

use crate::device::EntryInfo;
use crate::{Error, ErrorCode, Fdbox, Handle, HandleKind, Name};
use wasmtime::component::Resource;
use wasmtime_wasi::filesystem::Descriptor;

/// The bindings of `wit/`, made by `build.rs` (see there why not `bindgen!`).
#[allow(missing_docs, dead_code, unused_variables, clippy::all)]
pub(crate) mod generated {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use generated::fdbox::fdbox::{boxes, memory_files, types};

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
        }
    }
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

    fn push_handle(&mut self, handle: Handle) -> wasmtime::Result<Resource<Descriptor>> {
        Ok(self.table.push(self.ctx.descriptor_for_guest(handle))?)
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
        let descriptor = self.table.delete(handle)?;
        let (error, descriptor) = match self.ctx.handle_from_guest(descriptor) {
            Ok(handle) => match self.ctx.put(&box_name, &name, handle) {
                Ok(entry) => return Ok(Ok(self.push_entry(entry, box_name)?)),
                Err(refused) => (refused.error, self.ctx.descriptor_for_guest(refused.handle)),
            },
            Err(refused) => refused,
        };
        Ok(Err(boxes::RefusedPut {
            code: code(error),
            handle: self.table.push(descriptor)?,
        }))
    }

    fn get(&mut self, this: Resource<BoxRef>, name: String) -> GuestResult<Resource<Descriptor>> {
        let box_name = self.box_name(&this)?;
        match self.ctx.get(&box_name, &name) {
            Ok(handle) => Ok(Ok(self.push_handle(handle)?)),
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
