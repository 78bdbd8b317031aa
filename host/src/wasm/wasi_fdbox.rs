//! Ready-made store data for a guest that imports WASI and fdbox only.

use crate::{Fdbox, FdboxCtx};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The `T` of a `Store<T>` for a guest that needs WASI and fdbox and nothing
/// else, as `fdbox run` runs. An embedder with more interfaces keeps these
/// three fields in its own store data instead, as the crate example shows.
pub struct WasiFdbox {
    /// The resource table WASI and fdbox share.
    pub table: ResourceTable,
    /// The guest's WASI context.
    pub wasi: WasiCtx,
    /// The guest's fdbox context.
    pub fdbox: FdboxCtx,
}

impl WasiFdbox {
    /// Store data with an empty resource table.
    pub fn new(wasi: WasiCtx, fdbox: FdboxCtx) -> Self {
        Self {
            table: ResourceTable::new(),
            wasi,
            fdbox,
        }
    }

    fn fdbox(&mut self) -> Fdbox<'_> {
        Fdbox::new(&self.fdbox, &mut self.table)
    }

    /// Add WASI 0.2 (async) and fdbox to `linker`.
    pub fn add_to_linker_async(linker: &mut Linker<Self>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        crate::add_to_linker(linker, Self::fdbox)
    }

    /// Add WASI 0.2 (sync) and fdbox to `linker`.
    pub fn add_to_linker_sync(linker: &mut Linker<Self>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_sync(linker)?;
        crate::add_to_linker(linker, Self::fdbox)
    }
}

impl WasiView for WasiFdbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
