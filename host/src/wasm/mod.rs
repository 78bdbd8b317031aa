//! The Wasmtime layer: the `fdbox:fdbox` WIT interfaces implemented for
//! guests over a [`Device`](crate::Device), in the manner of Wasmtime's own
//! interface crates (`wasmtime-wasi-keyvalue`, `wasmtime-wasi-config`): a view
//! ([`Fdbox`]) over the store's shared [`ResourceTable`] and one guest's
//! context ([`FdboxCtx`]), and [`add_to_linker`].
//!
//! Everything that knows about Wasmtime is here; the devices below
//! ([`crate::device`]) and the holder daemon ([`crate::daemon`]) do not.

mod bindings;
mod ctx;
mod descriptor;
mod descriptor_kinds;
/// The bindings of `wit/`: what `bindgen!` makes of it, committed and kept
/// current by `tests/bindings_current.rs` (see there why not `bindgen!`).
#[rustfmt::skip]
#[allow(missing_docs, dead_code, unused_variables, clippy::all)]
mod generated;
pub mod grant;
mod held;
pub mod lifecycle;
mod listeners;
pub mod sockets;
mod wasi_fdbox;

pub use bindings::{BoxFdRef, BoxRef};
pub use ctx::{FdboxCtx, FdboxCtxBuilder};
pub use grant::{Grant, Grants, Permissions, Quotas};
pub use held::HOST_RESERVED_FDS;
pub use lifecycle::Lifecycle;
pub use listeners::ListenerGrants;
pub use wasi_fdbox::WasiFdbox;

use wasmtime::component::{HasData, Linker, ResourceTable};

/// A guest's fdbox state borrowed from its store: the context and the
/// store's resource table (shared with `wasmtime_wasi`, which is where the
/// descriptors fdbox takes and returns live).
pub struct Fdbox<'a> {
    ctx: &'a FdboxCtx,
    table: &'a mut ResourceTable,
}

impl<'a> Fdbox<'a> {
    /// The view of `ctx` through `table`.
    pub fn new(ctx: &'a FdboxCtx, table: &'a mut ResourceTable) -> Self {
        Self { ctx, table }
    }
}

struct HasFdbox;

impl HasData for HasFdbox {
    type Data<'a> = Fdbox<'a>;
}

/// Add every `fdbox:fdbox` interface to `linker`.
///
/// `view` picks the guest's [`Fdbox`] out of the store's data. The functions
/// are synchronous and never block for long, so they serve stores driven by
/// both `wasmtime_wasi::p2::add_to_linker_sync` and `_async` linkers,
/// sockets ([`sockets`]) included: they register with the current tokio
/// runtime (an async host's), or where there is none (a sync host, no
/// runtime entered) with wasmtime-wasi's own, through
/// [`wasmtime_wasi::runtime::with_ambient_tokio_runtime`], which is the one
/// the sync `wasi:io/poll` waits in; so listeners, connections, their streams
/// and their pollables work in either.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> Fdbox<'_>,
) -> wasmtime::Result<()> {
    use generated::fdbox::fdbox::{boxes, lifecycle, memory_files, sockets, types};
    types::add_to_linker::<_, HasFdbox>(linker, view)?;
    sockets::add_to_linker::<_, HasFdbox>(linker, view)?;
    boxes::add_to_linker::<_, HasFdbox>(linker, view)?;
    memory_files::add_to_linker::<_, HasFdbox>(linker, view)?;
    lifecycle::add_to_linker::<_, HasFdbox>(linker, view)?;
    Ok(())
}
