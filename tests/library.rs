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

/// The `kv-service` guest under `WasiFdbox::add_to_linker_sync` on a thread
/// with no tokio runtime: its listener, connection, streams and pollables
/// come from wasmtime-wasi's own runtime, and it hands them over to a second
/// sync instance through the box.
#[test]
fn a_sync_host_serves_sockets_and_hands_them_over() {
    use fdbox_host::ListenerGrants;
    use fdbox_host::wasm::lifecycle::{Lifecycle, Request};
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    let _alone = alone();
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    WasiFdbox::add_to_linker_sync(&mut linker).unwrap();
    let kv = Component::from_file(&engine, fdbox_guest_artifacts::KV_V1).unwrap();
    let device: Arc<dyn Device> = Arc::new(MemoryDevice::new());
    let listeners = ListenerGrants::new();
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    listeners.bound("main", socket);

    // One instance on its own thread, as a sync embedder runs it.
    let start = |lifecycle: Arc<Lifecycle>| {
        let (engine, linker, kv) = (engine.clone(), linker.clone(), kv.clone());
        let fdbox = FdboxCtx::builder(device.clone())
            .grant(Grant::one_box(Name::new("kv").unwrap()))
            .listeners(listeners.clone())
            .lifecycle(lifecycle)
            .build();
        std::thread::spawn(move || {
            assert!(tokio::runtime::Handle::try_current().is_err());
            let wasi = WasiCtx::builder().inherit_stderr().build();
            let mut store = Store::new(&engine, WasiFdbox::new(wasi, fdbox));
            let command = Command::instantiate(&mut store, &kv, &linker).unwrap();
            command.wasi_cli_run().call_run(&mut store)
        })
    };
    let ask = |reader: &mut BufReader<TcpStream>, request: &str| {
        reader
            .get_mut()
            .write_all(format!("{request}\n").as_bytes())
            .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    };

    let first = Lifecycle::new();
    let running = start(first.clone());
    let client = TcpStream::connect(address).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut client = BufReader::new(client);
    assert_eq!(ask(&mut client, "PING"), "PONG");
    assert_eq!(ask(&mut client, "SET k v"), "OK");

    first.request(Request::Stop);
    let outcome = running.join().unwrap();
    assert!(matches!(outcome, Ok(Ok(()))), "first instance: {outcome:?}");
    assert!(first.progress().handed_over);

    // The same connection, now served by the next instance.
    let second = Lifecycle::new();
    let running = start(second.clone());
    assert_eq!(ask(&mut client, "GET k"), "VALUE v");
    assert_eq!(ask(&mut client, "COUNT"), "VALUE 4");
    second.request(Request::Stop);
    let outcome = running.join().unwrap();
    assert!(
        matches!(outcome, Ok(Ok(()))),
        "second instance: {outcome:?}"
    );
}

#[path = "../host/examples/embed.rs"]
mod embed;

#[test]
fn the_embedding_example_runs_a_command_sync_then_async() {
    use fdbox_guest_artifacts::PROBE;
    let _alone = alone();
    let device: Arc<dyn Device> = Arc::new(MemoryDevice::new());
    let view = || embed::guest_view(device.clone()).unwrap();
    let state = Name::new("app.state").unwrap();
    let code = embed::run_sync(PROBE, embed::PROBE_FIRST, view()).unwrap();
    assert_eq!(code, 0);
    assert!(device.status(&state).unwrap().sealed);
    // Outside the prefix, and `delete` is not granted: refused, nothing
    // changes.
    embed::run_sync(PROBE, &["create", "other", "delete", "app.state"], view()).unwrap();
    assert_eq!(device.boxes().unwrap().len(), 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = runtime
        .block_on(embed::run_async(PROBE, embed::PROBE_SECOND, view()))
        .unwrap();
    assert_eq!(code, 7, "exit-with-code arrives as I32Exit");
    assert_eq!(
        device.status(&state).unwrap().entries,
        0,
        "the async instance took it"
    );
    // The quota: 4 boxes at most for this guest.
    let many: Vec<String> = (0..5)
        .flat_map(|i| ["create".to_owned(), format!("app.{i}")])
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    embed::run_sync(PROBE, &many, view()).unwrap();
    assert_eq!(device.boxes().unwrap().len(), 4);
}
