//! fdbox-host used as a library by an embedder, with the real probe guest.

use fdbox_host::{Device, FdboxCtx, Grant, MemoryDevice, Name, WasiFdbox};
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

struct Host {
    engine: Engine,
    linker: Linker<WasiFdbox>,
    probe: Component,
    fdbox: FdboxCtx,
}

impl Host {
    fn new(device: Arc<dyn Device>) -> Self {
        let engine = Engine::default();
        let mut linker = Linker::new(&engine);
        WasiFdbox::add_to_linker_sync(&mut linker).unwrap();
        let probe = Component::from_file(&engine, fdbox_guest_artifacts::PROBE).unwrap();
        let fdbox = FdboxCtx::builder(device)
            .grant(Grant::one_box(Name::new("b").unwrap()))
            .build();
        Self {
            engine,
            linker,
            probe,
            fdbox,
        }
    }

    /// Run the probe in a new Store (a new instance) and return its lines.
    fn probe(&self, steps: &[&str]) -> Vec<String> {
        let stdout = MemoryOutputPipe::new(1 << 20);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .arg("probe")
            .args(steps)
            .build();
        let mut store = Store::new(&self.engine, WasiFdbox::new(wasi, self.fdbox.clone()));
        let command = Command::instantiate(&mut store, &self.probe, &self.linker).unwrap();
        command
            .wasi_cli_run()
            .call_run(&mut store)
            .unwrap()
            .unwrap();
        drop(store);
        String::from_utf8(stdout.contents().to_vec())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// One test at a time: one of them counts this process's open fds.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_sealed_box_outlives_the_store_that_filled_it() {
    let _alone = alone();
    let device = Arc::new(MemoryDevice::new());
    let host = Host::new(device.clone());
    assert_eq!(
        host.probe(&[
            "create",
            "b",
            "put-memfd",
            "b",
            "state",
            "kept state",
            "seal",
            "b"
        ]),
        ["OK", "OK", "OK"]
    );
    // The Store is gone; the fd lives on in the device.
    let status = device.status(&Name::new("b").unwrap()).unwrap();
    assert!(status.sealed && status.entries == 1);
    assert_eq!(
        host.probe(&["sealed", "b", "unseal", "b", "get", "b", "state"]),
        ["OK true", "OK", "OK kept state"]
    );
}

#[test]
fn ten_thousand_guest_put_get_cycles_leak_no_fd() {
    let _alone = alone();
    let host = Host::new(Arc::new(MemoryDevice::new()));
    host.probe(&["create", "b"]);
    // Warm up once so lazily opened host fds are counted in both samples.
    host.probe(&["cycles", "b", "10"]);
    let before = open_fds();
    assert_eq!(host.probe(&["cycles", "b", "10000"]), ["OK 10000"]);
    assert_eq!(
        open_fds(),
        before,
        "fds open in this process before and after"
    );
}
