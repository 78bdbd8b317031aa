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
//! A whole embedder (a command component, a prefix grant, quotas, the sync
//! and the async linker, the guest's exit code) is `examples/embed.rs`:
//! `cargo run -p fdbox-host --example embed`. The smallest one:
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
#![deny(clippy::undocumented_unsafe_blocks)]

// The layers, bottom up: what holds boxes (`device`: the trait, the in-process,
// daemon-client and kernel devices; no Wasmtime), the holder daemon that
// serves a device to other processes (`daemon`), and the guest-facing
// Wasmtime layer (`wasm`); beside them, `fdbox serve`'s control protocol
// (`control`: bytes only). docs/architecture.md is the map.
pub mod control;
pub mod daemon;
pub mod device;
pub mod wasm;

pub use device::daemon::DaemonDevice;
pub use device::{
    Access, Device, Error, ErrorCode, Handle, HandleKind, HeldBox, MAX_NAME_LEN, MemoryDevice, Name,
};
pub use wasm::grant::Operation;
pub use wasm::{
    BoxFdRef, BoxRef, Fdbox, FdboxCtx, FdboxCtxBuilder, Grant, Grants, Lifecycle, ListenerGrants,
    Permissions, Quotas, WasiFdbox, add_to_linker,
};
