//! What an upgrade under `fdbox serve` costs the clients of a service, next
//! to a restart without fdbox, measured in one run with the same load.
//!
//! The kv service (`guest-examples/rust/kv-service`) runs under `fdbox
//! serve --device daemon` (a private holder daemon), loaded by
//! `tests/load` (50 persistent connections sending one request at a time,
//! every answer checked, and a thread of short connections). In turn:
//!
//! 1. **steady**: nothing happens; its median latency is the reference;
//! 2. **upgrades**: `fdbox upgrade` v1 → v2 → v1 ..., a pause after each;
//! 3. **fdbox restarts**: `fdbox stop`, then a new `fdbox serve` with the
//!    same arguments, which takes everything back from the daemon;
//! 4. **baseline**: what a service without fdbox gets: `fdbox serve` is
//!    killed (SIGKILL) and a fresh one started with `--device memory`, so
//!    nothing is carried; the clients reconnect after refused connects and
//!    resets, and start over on fresh keys.
//!
//! For each phase it reports latency percentiles of the requests first sent
//! during it, and the **gap**: the longest time a request waited beyond the
//! steady median (a request that failed and was retried on a new connection
//! counts from its first attempt), overall and per event (median of the
//! events), with the failures the clients saw. Scheduling alone makes some
//! request wait a few ms now and then, so the per-event gap has a noise
//! floor: the same measure over steady windows as long as an upgrade's. The
//! *added* gap of a typical upgrade is its median per-event gap minus that
//! floor. The target is zero failures and an added gap under 5 ms during
//! upgrades with 50 connections; the report also gives the worst request
//! and what the host itself reports (`fdbox upgrade` prints its hand-over
//! and serving times).
//!
//! The load is heavy for a small machine: each connection sends its next
//! request 2 ms after an answer (`FDBOX_BENCH_PAUSE_MS` changes that), so
//! the clients, the daemon and `fdbox serve` compete for the CPUs, as does
//! the compilation of the new version that `fdbox upgrade` does first.
//!
//! `cargo bench --bench upgrade_gap` prints a Markdown report. Without
//! `--bench` (as `cargo test --benches` runs it, unoptimized) it runs every
//! phase once, briefly, with 10 connections, and prints one line and no
//! figures.

#[path = "../tests/load/mod.rs"]
mod load;

use fdbox_guest_artifacts::{KV_V1, KV_V2};
use load::serve::{Device, Service};
use load::{Counts, Load, LoadConfig, LoadReport, percentile};
use std::time::{Duration, Instant};

/// Milliseconds each connection pauses after an answer (default 2): a
/// lighter or heavier load than the default.
const PAUSE_ENV: &str = "FDBOX_BENCH_PAUSE_MS";

/// How much of everything one run does.
struct Sizes {
    connections: usize,
    warm_up: Duration,
    steady: Duration,
    upgrades: usize,
    restarts: usize,
    kills: usize,
    /// After each event, before the next.
    pause: Duration,
}

impl Sizes {
    fn new(full: bool) -> Self {
        if full {
            Sizes {
                connections: 50,
                warm_up: Duration::from_secs(2),
                steady: Duration::from_secs(8),
                upgrades: 20,
                restarts: 3,
                kills: 3,
                pause: Duration::from_millis(500),
            }
        } else {
            Sizes {
                connections: 10,
                warm_up: Duration::from_millis(200),
                steady: Duration::from_millis(300),
                upgrades: 2,
                restarts: 1,
                kills: 1,
                pause: Duration::from_millis(100),
            }
        }
    }
}

/// One phase: its window, its events' windows, and the failures in it.
struct Phase {
    name: &'static str,
    from: Instant,
    to: Instant,
    /// Each event's window: from its start until the next one's.
    events: Vec<(Instant, Instant)>,
    /// How long each event's command(s) took.
    command_times: Vec<Duration>,
    counts: Counts,
}

/// Runs `event` `n` times, `pause` after each (the load recovered first),
/// and returns the phase.
fn phase(
    name: &'static str,
    load: &Load,
    n: usize,
    pause: Duration,
    mut event: impl FnMut(usize) -> Duration,
) -> Phase {
    let before = load.counts();
    let from = Instant::now();
    let mut starts = Vec::new();
    let mut command_times = Vec::new();
    for i in 0..n {
        starts.push(Instant::now());
        command_times.push(event(i));
        assert!(
            load.wait_all_progress(Duration::from_secs(60)),
            "{name} {i}: the load did not recover: {:#?}",
            load.failures()
        );
        std::thread::sleep(pause);
    }
    let to = Instant::now();
    let events = starts
        .iter()
        .zip(starts.iter().skip(1).chain([&to]))
        .map(|(&a, &b)| (a, b))
        .collect();
    Phase {
        name,
        from,
        to,
        events,
        command_times,
        counts: load.counts() - before,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// One row of figures for a phase.
struct Row {
    requests: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    gap: Duration,
    median_event_gap: Duration,
}

fn row(report: &LoadReport, phase: &Phase, steady_median: Duration) -> Row {
    let all = report.latencies(phase.from, phase.to);
    let max = all.last().copied().unwrap_or_default();
    let mut event_gaps: Vec<Duration> = phase
        .events
        .iter()
        .map(|&(a, b)| report.gap(a, b, steady_median))
        .collect();
    event_gaps.sort();
    Row {
        requests: all.len(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        max,
        gap: max.saturating_sub(steady_median),
        median_event_gap: percentile(&event_gaps, 0.5),
    }
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = Sizes::new(full);

    let mut service = Service::start("bench-upgrade-gap", KV_V1);
    let mut config = LoadConfig::new(service.addr, sizes.connections);
    if let Some(pause) = std::env::var(PAUSE_ENV).ok().and_then(|ms| ms.parse().ok()) {
        config.pause = Duration::from_millis(pause);
    }
    let load = Load::start(config.clone());
    assert!(load.wait_all_progress(Duration::from_secs(60)));
    std::thread::sleep(sizes.warm_up);

    let steady = phase("steady", &load, 1, sizes.steady, |_| Duration::ZERO);

    // What the host says each upgrade took: (hand-over, serving again after
    // the old version was asked), in ms.
    let mut host_figures: Vec<(f64, f64)> = Vec::new();
    let upgrades = phase(
        "upgrades (v1 ⇄ v2)",
        &load,
        sizes.upgrades,
        sizes.pause,
        |i| {
            let next = if i % 2 == 0 { KV_V2 } else { KV_V1 };
            let upgraded = service
                .upgrade(next)
                .unwrap_or_else(|e| panic!("upgrade {i}: {e}\n{}", service.logs()));
            if let (Some(handover), Some(serving)) = (
                upgraded.figure_ms("hand-over"),
                upgraded.figure_ms("serving"),
            ) {
                host_figures.push((handover, serving));
            }
            upgraded.elapsed
        },
    );
    // Back on v1 for what follows.
    if sizes.upgrades % 2 == 1 {
        if let Err(e) = service.upgrade(KV_V1) {
            panic!("upgrade back to v1: {e}");
        }
        std::thread::sleep(sizes.pause);
    }

    let restarts = phase(
        "fdbox restarts (stop + serve)",
        &load,
        sizes.restarts,
        sizes.pause,
        |_| {
            let start = Instant::now();
            service
                .stop()
                .unwrap_or_else(|e| panic!("{e}\n{}", service.logs()));
            service.start_serve(KV_V1, Device::Daemon);
            start.elapsed()
        },
    );

    let kills = phase(
        "baseline: kill -9 + fresh serve, nothing carried",
        &load,
        sizes.kills,
        sizes.pause,
        |_| {
            let start = Instant::now();
            service.kill_serve();
            service.start_serve(KV_V1, Device::Memory);
            start.elapsed()
        },
    );

    let report = load.stop();
    let _ = service.stop();

    let steady_all = report.latencies(steady.from, steady.to);
    let steady_median = percentile(&steady_all, 0.5);
    let phases = [&steady, &upgrades, &restarts, &kills];
    let rows: Vec<Row> = phases
        .iter()
        .map(|p| row(&report, p, steady_median))
        .collect();

    let fdbox_failures =
        steady.counts.failures() + upgrades.counts.failures() + restarts.counts.failures();
    if !full {
        println!(
            "upgrade_gap: quick run: {} requests, {} upgrades, {} fdbox restarts, {} kills, \
             {} failures with fdbox, {} in the baseline (no figures; run with --bench)",
            report.counts.answered,
            sizes.upgrades,
            sizes.restarts,
            sizes.kills,
            fdbox_failures,
            kills.counts.failures(),
        );
        assert_eq!(fdbox_failures, 0, "{:#?}", report.failures);
        return;
    }

    // The noise floor of the per-event gap: steady windows as long as one
    // upgrade's window.
    let event_len = percentile(
        &sorted(upgrades.events.iter().map(|(a, b)| *b - *a).collect()),
        0.5,
    );
    let noise = report.window_gaps(steady.from, steady.to, event_len, steady_median);
    let noise_median = percentile(&noise, 0.5);
    let added = rows[1].median_event_gap.saturating_sub(noise_median);
    let added_worst = rows[1].gap.saturating_sub(rows[0].gap);

    println!("## Upgrade gap: `fdbox upgrade` under load (`benches/upgrade_gap.rs`)\n");
    println!(
        "The kv service under `fdbox serve --device daemon`, {} persistent connections \
         (one request at a time, {} ms pause after each answer, every answer checked) \
         and one thread of short connections (connect, `PING` + `COUNT`, close). \
         Latencies in ms; a request that failed counts from its first attempt until \
         a new connection answered it. *Gap*: the longest a request waited beyond \
         the steady median ({} ms); *per event*: the same within each event's window \
         (from its start to the next one's), median over the events.\n",
        sizes.connections,
        config.pause.as_millis(),
        ms(steady_median),
    );
    println!(
        "| phase | events | requests | p50 | p99 | max | gap | median gap per event | \
         refused connections | resets | wrong | lost | short connections |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (phase, row) in phases.iter().zip(&rows) {
        let (events, event_gap) = if phase.name == "steady" {
            ("–".to_string(), format!("{} (noise)", ms(noise_median)))
        } else {
            (phase.events.len().to_string(), ms(row.median_event_gap))
        };
        let c = phase.counts;
        println!(
            "| {} | {events} | {} | {} | {} | {} | {} | {event_gap} | {} | {} | {} | {} | {} |",
            phase.name,
            row.requests,
            ms(row.p50),
            ms(row.p99),
            ms(row.max),
            ms(row.gap),
            c.refused,
            c.reset,
            c.wrong,
            c.lost,
            c.short,
        );
    }
    println!(
        "\n*Noise*: the steady phase cut into {} windows as long as an upgrade's ({} ms); \
         the median of their gaps is what the per-event gap reads when nothing happens.",
        noise.len(),
        ms(event_len),
    );

    let times = sorted(upgrades.command_times.clone());
    let restart_times = sorted(restarts.command_times.clone());
    let kill_times = sorted(kills.command_times.clone());
    println!(
        "\n`fdbox upgrade` took {} ms (median; max {}), compiling the new version before \
         the hand-over included; `fdbox stop` + a new `fdbox serve` answering: {} ms; \
         kill + a fresh `fdbox serve` answering: {} ms.",
        ms(percentile(&times, 0.5)),
        ms(times.last().copied().unwrap_or_default()),
        ms(percentile(&restart_times, 0.5)),
        ms(percentile(&kill_times, 0.5)),
    );
    if !host_figures.is_empty() {
        let handover = sorted(
            host_figures
                .iter()
                .map(|f| Duration::from_secs_f64(f.0 / 1e3))
                .collect(),
        );
        let serving = sorted(
            host_figures
                .iter()
                .map(|f| Duration::from_secs_f64(f.1 / 1e3))
                .collect(),
        );
        println!(
            "As the host reports it: the old version handed over in {} ms (median; max {}), \
             and the new one served {} ms (median; max {}) after the old one was asked.",
            ms(percentile(&handover, 0.5)),
            ms(handover.last().copied().unwrap_or_default()),
            ms(percentile(&serving, 0.5)),
            ms(serving.last().copied().unwrap_or_default()),
        );
    }

    let met = fdbox_failures == 0 && added < Duration::from_millis(5);
    println!(
        "\nTarget (zero failures, added gap under 5 ms with {} connections during upgrades): \
         **{}**: {} failures; a typical upgrade added {} ms (median per-upgrade gap {} ms \
         minus the noise {} ms); the worst request during upgrades waited {} ms beyond the \
         steady median, {} ms more than the worst steady one.",
        sizes.connections,
        if met { "met" } else { "not met" },
        fdbox_failures,
        ms(added),
        ms(rows[1].median_event_gap),
        ms(noise_median),
        ms(rows[1].gap),
        ms(added_worst),
    );
    if !report.failures.is_empty() {
        println!("\nFirst failures seen by the clients (the baseline's are expected):\n");
        for failure in report.failures.iter().take(5) {
            println!("- {failure}");
        }
    }
}
