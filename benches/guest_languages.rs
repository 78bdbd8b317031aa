//! What a guest's language costs the host: each example guest's component
//! size, and how long it takes to get it running, with and without
//! Wasmtime's help:
//!
//! - **compile**: `Component::from_file` on an engine without a cache (what
//!   `fdbox run --no-cache` does every time);
//! - **cache hit**: the same on an engine with Wasmtime's compilation cache
//!   (a directory of this run's own), once the cache holds it (what `fdbox
//!   run` does from the second run on);
//! - **.cwasm**: `Component::deserialize_file` of a component precompiled
//!   with `Engine::precompile_component`;
//! - **instantiate**: `instantiate_async` of the ready component with WASI
//!   and fdbox linked (what every restart of an instance costs).
//!
//! The guests are the two scenarios, `counter` and `boxed-file`, in every
//! language the examples have (Rust, C, Python, JavaScript), from
//! `fdbox_guest_artifacts::ALL`.
//!
//! `cargo bench --bench guest_languages` prints a Markdown report;
//! BENCHMARKS.md holds the latest one. Without `--bench` (as `cargo test
//! --benches` runs it, unoptimized, where compiling a 20 MB component
//! takes minutes) it measures the sizes and the Rust guests only, and prints
//! one line.

use fdbox_guest_artifacts::{ScenarioGuest as Guest, scenario_guests as guests};
use fdbox_host::{FdboxCtx, MemoryDevice, WasiFdbox};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, CacheConfig, Config, Engine, Store};
use wasmtime_wasi::WasiCtx;

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// The median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    times.sort();
    times[times.len() / 2]
}

struct Row {
    compile: Duration,
    cache_hit: Duration,
    cwasm: Duration,
    instantiate: Duration,
}

fn measure(guest: &Guest, scratch: &Path, runtime: &tokio::runtime::Runtime) -> Row {
    let plain = Engine::new(&Config::new()).unwrap();
    let (component, compile) = timed(|| Component::from_file(&plain, guest.path).unwrap());

    let mut cache = CacheConfig::new();
    cache.with_directory(scratch.join("cache"));
    let mut config = Config::new();
    config.cache(Some(Cache::new(cache).unwrap()));
    let cached = Engine::new(&config).unwrap();
    drop(Component::from_file(&cached, guest.path).unwrap()); // fills the cache
    let cache_hit = median(5, || {
        timed(|| Component::from_file(&cached, guest.path).unwrap()).1
    });

    let cwasm = scratch.join("guest.cwasm");
    let bytes = plain
        .precompile_component(&std::fs::read(guest.path).unwrap())
        .unwrap();
    std::fs::write(&cwasm, bytes).unwrap();
    let cwasm_time = median(5, || {
        // SAFETY: the file was written just above by this same engine's
        // `precompile_component`, and nothing else writes it.
        timed(|| unsafe { Component::deserialize_file(&plain, &cwasm) }.unwrap()).1
    });

    let mut linker = Linker::<WasiFdbox>::new(&plain);
    WasiFdbox::add_to_linker_async(&mut linker).unwrap();
    let pre = linker.instantiate_pre(&component).unwrap();
    let device = Arc::new(MemoryDevice::new());
    let instantiate = median(5, || {
        let fdbox = FdboxCtx::builder(device.clone()).build();
        let mut store = Store::new(&plain, WasiFdbox::new(WasiCtx::builder().build(), fdbox));
        runtime.block_on(async {
            let start = Instant::now();
            pre.instantiate_async(&mut store).await.unwrap();
            start.elapsed()
        })
    });
    Row {
        compile,
        cache_hit,
        cwasm: cwasm_time,
        instantiate,
    }
}

#[path = "../host/tests/support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scratch = TempDir::new("bench-languages");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guests = guests();
    assert!(
        guests.iter().any(|g| g.language == "Rust"),
        "no Rust counter among the artifacts"
    );
    if !full {
        let rust: Vec<&Guest> = guests.iter().filter(|g| g.language == "Rust").collect();
        for guest in &rust {
            measure(guest, &scratch, &runtime);
        }
        println!(
            "guest_languages: quick run: {} guests sized, {} Rust guests timed (no figures; run with --bench)",
            guests.len(),
            rust.len()
        );
        return;
    }
    println!("### Guest languages: size and time to a running instance\n");
    println!(
        "Release host; ms; cache hit, .cwasm and instantiate are medians of 5 runs. Compile is one cold run.\n"
    );
    println!(
        "| scenario | language | size (KB) | compile, no cache | cache hit | .cwasm load | instantiate |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for guest in &guests {
        let size = std::fs::metadata(guest.path).unwrap().len();
        let row = measure(guest, &scratch, &runtime);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            guest.scenario,
            guest.language,
            size / 1024,
            ms(row.compile),
            ms(row.cache_hit),
            ms(row.cwasm),
            ms(row.instantiate)
        );
    }
}
