//! Embedding fdbox in a Wasmtime host: run a `wasi:cli` command component
//! with a prefix grant and quotas, once with the sync linker and once with
//! the async one, each in a new `Store` on the same device, and get the
//! guest's exit code (`I32Exit`) out of it.
//!
//! ```sh
//! cargo run -p fdbox-host --example embed -- COMPONENT.wasm [ARGS...]
//! ```
//!
//! Without arguments it runs the test suite's probe guest, which creates
//! `app.state`, boxes a memory file in it and seals it (sync), then opens the
//! box again and takes the file back (async): what survives one instance is
//! there for the next. `tests/library.rs` runs this example's functions.

use fdbox_host::{
    Device, FdboxCtx, Grant, MemoryDevice, Operation, Permissions, Quotas, WasiFdbox,
};
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{I32Exit, WasiCtx};

/// The probe's steps without arguments: the first instance boxes a memory
/// file holding `41` in `app.state` and seals it...
pub const PROBE_FIRST: &[&str] = &[
    "create",
    "app.state",
    "put-memfd",
    "app.state",
    "n",
    "41",
    "seal",
    "app.state",
];
/// ...the second takes it back and exits with 7 (`exit-with-code`).
pub const PROBE_SECOND: &[&str] = &["unseal", "app.state", "get", "app.state", "n", "exit", "7"];

/// One guest's view of `device`: every box whose name starts with `app.`,
/// with every operation but `delete`, at most 4 boxes of 16 entries.
pub fn guest_view(device: Arc<dyn Device>) -> wasmtime::Result<FdboxCtx> {
    let permissions: Permissions = "create,put,get,seal,unseal".parse()?;
    debug_assert!(!permissions.allows(Operation::Delete));
    Ok(FdboxCtx::builder(device)
        .grant(Grant::prefix("app.")?.with_permissions(permissions))
        .quotas(Quotas {
            max_boxes: 4,
            max_entries_per_box: 16,
            ..Quotas::default()
        })
        .build())
}

/// The exit code of a finished `run`: 0 or 1 from its result, or the code
/// it passed to `exit-with-code` (which arrives as an `I32Exit` error); a
/// trap stays an error.
fn exit_code(result: wasmtime::Result<Result<(), ()>>) -> wasmtime::Result<i32> {
    match result {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(I32Exit(code)) => Ok(*code),
            None => Err(e),
        },
    }
}

fn wasi(args: &[&str]) -> WasiCtx {
    WasiCtx::builder()
        .inherit_stdio()
        .arg("guest")
        .args(args)
        .build()
}

/// Run `component` to completion with the sync linker.
pub fn run_sync(component: &str, args: &[&str], fdbox: FdboxCtx) -> wasmtime::Result<i32> {
    use wasmtime_wasi::p2::bindings::sync::Command;
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    WasiFdbox::add_to_linker_sync(&mut linker)?;
    let component = Component::from_file(&engine, component)?;
    let mut store = Store::new(&engine, WasiFdbox::new(wasi(args), fdbox));
    let command = Command::instantiate(&mut store, &component, &linker)?;
    exit_code(command.wasi_cli_run().call_run(&mut store))
}

/// Run `component` to completion with the async linker.
pub async fn run_async(component: &str, args: &[&str], fdbox: FdboxCtx) -> wasmtime::Result<i32> {
    use wasmtime_wasi::p2::bindings::Command;
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    WasiFdbox::add_to_linker_async(&mut linker)?;
    let component = Component::from_file(&engine, component)?;
    let mut store = Store::new(&engine, WasiFdbox::new(wasi(args), fdbox));
    let command = Command::instantiate_async(&mut store, &component, &linker).await?;
    exit_code(command.wasi_cli_run().call_run(&mut store).await)
}

#[allow(dead_code)] // tests/library.rs includes this file for its functions.
fn main() -> wasmtime::Result<()> {
    // One device for the host: it outlives every Store.
    let device: Arc<dyn Device> = Arc::new(MemoryDevice::new());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (component, first, second): (&str, Vec<&str>, Vec<&str>) = match args.split_first() {
        Some((component, rest)) => {
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            (component, rest.clone(), rest)
        }
        None => (
            fdbox_guest_artifacts::PROBE,
            PROBE_FIRST.to_vec(),
            PROBE_SECOND.to_vec(),
        ),
    };
    let code = run_sync(component, &first, guest_view(device.clone())?)?;
    println!("sync instance exited with {code}");
    let code = runtime.block_on(run_async(component, &second, guest_view(device)?))?;
    println!("async instance exited with {code}");
    Ok(())
}
