//! One put+get of a memory file: a guest through the component boundary
//! versus the same calls made natively from Rust, on the same device, in the
//! same run.
//!
//! `cargo bench -p fdbox-host --bench put_get` prints a Markdown table;
//! BENCHMARKS.md holds the latest one. Rounds alternate native and guest so
//! both see the same machine noise; medians over rounds are reported.

use fdbox_host::{FdboxCtx, Grant, Handle, MemoryDevice, Name, WasiFdbox};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtx;

const ROUNDS: usize = 31;
const PAIRS_PER_ROUND: u32 = 20_000;
const BOX: &str = "bench";

fn native_round(ctx: &FdboxCtx, box_name: &Name, handle: &mut Option<Handle>) -> Duration {
    let start = Instant::now();
    for _ in 0..PAIRS_PER_ROUND {
        let h = handle.take().unwrap();
        let entry = ctx.put(box_name, "x", h).unwrap();
        std::hint::black_box(entry);
        *handle = Some(ctx.get(box_name, "x").unwrap());
    }
    start.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: one round only.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };

    let device = Arc::new(MemoryDevice::new());
    let ctx = FdboxCtx::builder(device)
        .grant(Grant::one_box(Name::new(BOX).unwrap()))
        .build();
    let box_name = ctx.create_box(BOX).unwrap();

    let engine = Engine::default();
    let mut linker = Linker::<WasiFdbox>::new(&engine);
    WasiFdbox::add_to_linker_sync(&mut linker).unwrap();
    let component = Component::from_file(&engine, fdbox_guest_artifacts::BENCH).unwrap();
    let mut store = Store::new(
        &engine,
        WasiFdbox::new(WasiCtx::builder().build(), ctx.clone()),
    );
    let instance = linker.instantiate(&mut store, &component).unwrap();
    let cycles = instance
        .get_typed_func::<(&str, u32), (u32,)>(&mut store, "put-get-cycles")
        .unwrap();

    let mut handle = Some(Handle::new_memory_file(&Name::new("native").unwrap()).unwrap());
    // Warm up both paths (page faults, allocator, lazy init).
    native_round(&ctx, &box_name, &mut handle);
    cycles.call(&mut store, (BOX, 1000)).unwrap();

    let (mut native, mut guest) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        native.push(
            native_round(&ctx, &box_name, &mut handle).as_nanos() as f64 / PAIRS_PER_ROUND as f64,
        );
        let start = Instant::now();
        let (done,) = cycles.call(&mut store, (BOX, PAIRS_PER_ROUND)).unwrap();
        assert_eq!(done, PAIRS_PER_ROUND);
        guest.push(start.elapsed().as_nanos() as f64 / PAIRS_PER_ROUND as f64);
    }
    let (n, g) = (median(native), median(guest));
    if quick {
        // `cargo test --benches`: an unoptimized smoke run, not a measurement.
        println!(
            "put_get: both paths ran {PAIRS_PER_ROUND} put+get pairs; measure with `cargo bench -p fdbox-host --bench put_get`"
        );
        return;
    }
    println!("| path | ns per put+get pair (median of {rounds} rounds x {PAIRS_PER_ROUND}) |");
    println!("|---|---|");
    println!("| native Rust, `FdboxCtx` on `MemoryDevice` | {n:.0} |");
    println!("| guest component, through the component boundary | {g:.0} |");
    println!("| difference (component overhead) | {:.0} |", g - n);
    println!("| ratio guest / native | {:.2} |", g / n);
    println!();
    println!(
        "targets: overhead < 1000 ns: {}; guest < 10000 ns per pair: {}",
        if g - n < 1000.0 { "met" } else { "NOT met" },
        if g < 10_000.0 { "met" } else { "NOT met" }
    );
}
