//! # fdbox-host
//!
//! The Wasmtime host side of [fdbox]: components name live file handles, put
//! them in a named *box*, *seal* it, and take them back by name after the
//! instance crashed, was upgraded, or (with a device that outlives the host
//! process) after the host restarted. It follows the Linux FDBox model
//! (`/dev/fdbox`) and implements the `fdbox:fdbox` WIT package next to
//! [`wasmtime_wasi`]: the handles are real `wasi:filesystem` descriptors.
//!
//! The pieces:
//!
//! - a [`Device`] holds the boxes and their fds outside any `Store`
//!   ([`MemoryDevice`] in this process; other devices implement the same
//!   trait);
//! - an [`FdboxCtx`] is one guest's view of a device: its [`Grant`]s (deny by
//!   default) and [`Quotas`];
//! - [`add_to_linker`] adds the WIT interfaces to a [`Linker`], reaching the
//!   context and the store's [`ResourceTable`] through an [`Fdbox`] view;
//! - boxes hold TCP listeners and connections too ([`sockets`]): a host
//!   grants listeners by name ([`ListenerGrants`]), and a service hands them
//!   over to its next version through the [`lifecycle`] channel the host
//!   drives ([`Lifecycle`]).
//!
//! # Example
//!
//! ```
//! use fdbox_host::{Fdbox, FdboxCtx, Grant, MemoryDevice, Name};
//! use std::sync::Arc;
//! use wasmtime::component::{Component, Linker, ResourceTable};
//! use wasmtime::{Engine, Result, Store};
//! use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
//!
//! struct Ctx {
//!     table: ResourceTable,
//!     wasi: WasiCtx,
//!     fdbox: FdboxCtx,
//! }
//!
//! impl WasiView for Ctx {
//!     fn ctx(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<()> {
//!     // One device for the whole host: it outlives every Store.
//!     let device = Arc::new(MemoryDevice::new());
//!     let fdbox = FdboxCtx::builder(device)
//!         .grant(Grant::one_box(Name::new("counter")?))
//!         .build();
//!
//!     let engine = Engine::default();
//!     let mut store = Store::new(
//!         &engine,
//!         Ctx { table: ResourceTable::new(), wasi: WasiCtx::builder().build(), fdbox },
//!     );
//!
//!     let mut linker = Linker::<Ctx>::new(&engine);
//!     wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
//!     fdbox_host::add_to_linker(&mut linker, |c| Fdbox::new(&c.fdbox, &mut c.table))?;
//!
//!     // A component that imports fdbox and WASI; it uses neither here.
//!     let component = Component::new(&engine, r#"
//!         (component
//!             (import "fdbox:fdbox/boxes@0.1.0" (instance))
//!             (import "wasi:cli/environment@0.2.0" (instance))
//!         )
//!     "#)?;
//!     let _instance = linker.instantiate_async(&mut store, &component).await?;
//!     Ok(())
//! }
//! ```
//!
//! [fdbox]: https://crates.io/crates/fdbox
//! [`Linker`]: wasmtime::component::Linker
//! [`ResourceTable`]: wasmtime::component::ResourceTable

#![deny(missing_docs)]

mod bindings;
mod ctx;
pub mod daemon;
mod descriptor_kinds;
pub mod device;
mod error;
pub mod grant;
mod handle;
pub mod kernel;
pub mod lifecycle;
mod listeners;
mod memory;
mod name;
pub mod sockets;
mod wasi_fdbox;

pub use bindings::{BoxFdRef, BoxRef};
pub use ctx::{FdboxCtx, FdboxCtxBuilder};
pub use device::Device;
pub use error::{Error, ErrorCode};
pub use grant::{Grant, Grants, Permissions, Quotas};
pub use handle::{Access, Handle, HandleKind};
pub use lifecycle::Lifecycle;
pub use listeners::ListenerGrants;
pub use memory::{HeldBox, MemoryDevice};
pub use name::{MAX_NAME_LEN, Name};
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
/// both `wasmtime_wasi::p2::add_to_linker_sync` and `_async` linkers; the
/// sockets ([`sockets`]) and their pollables need the tokio runtime of an
/// async host (without one, `listener` fails with device-unavailable,
/// saying so).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> Fdbox<'_>,
) -> wasmtime::Result<()> {
    use bindings::generated::fdbox::fdbox::{boxes, lifecycle, memory_files, sockets, types};
    types::add_to_linker::<_, HasFdbox>(linker, view)?;
    sockets::add_to_linker::<_, HasFdbox>(linker, view)?;
    boxes::add_to_linker::<_, HasFdbox>(linker, view)?;
    memory_files::add_to_linker::<_, HasFdbox>(linker, view)?;
    lifecycle::add_to_linker::<_, HasFdbox>(linker, view)?;
    Ok(())
}
