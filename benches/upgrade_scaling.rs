//! How the cost of `fdbox upgrade` grows with what the service holds: open
//! connections, and the bytes of its state.
//!
//! Each row is one run: a fresh private holder daemon and `fdbox serve
//! --device daemon`, the load of `tests/load` (persistent connections
//! sending one request at a time, every answer checked, and a thread of
//! short connections), a steady window, then several upgrades v1 ⇄ v2 (a
//! pause after each); figures are medians over the upgrades.
//!
//! - **Open connections** (the kv service): 50, 500, 5,000, 10,000 open
//!   connections, of which 50 carry the load and the rest are idle ones
//!   this process opened (each answered a `PING` first, so the service
//!   holds it, and must answer one again after the upgrades: carried, not
//!   dropped).
//! - **State size** (the RESP service, `guest-examples/rust/resp-service`,
//!   whose key space lives in a memory file that a take-over uses as it is):
//!   1 MiB, 100 MiB, 1 GiB of values `SET` over RESP (pipelined, values of
//!   up to 4 MiB), then one upgrade that is not measured (the instance that
//!   took the `SET`s keeps copies of the values in its cache; the measured
//!   upgrades start from one that did not), then the measured upgrades and
//!   a check of the values (every 16th key and the last one, byte for byte).
//!
//! The figures per row: what `fdbox upgrade` took, what the host reports
//! (the old version's hand-over, and the new one serving, after the old one
//! was asked), the *added gap* as in `benches/upgrade_gap.rs` (the median
//! over the upgrades of the longest wait beyond the steady median within
//! each upgrade's window, minus the same measure over steady windows as
//! long: the noise floor), and p50/p99 of requests sent steady and during
//! the upgrades (while `fdbox upgrade` ran). The limits are raised so that
//! fdbox's quotas do not stop a row: `fdbox serve --max-descriptors`,
//! `--max-entries` (a boxed connection is one entry), `--max-memory-file-
//! bytes`, the hand-over and ready timeouts, and `fdbox daemon
//! --process-share 100` (one peer process may fill the daemon's fd budget);
//! what is left is each process's RLIMIT_NOFILE (a row that fails says
//! why).
//!
//! `cargo bench --bench upgrade_scaling` prints a Markdown report and
//! writes its charts to `docs/bench/`. Without `--bench` (as `cargo test
//! --benches` runs it, unoptimized) it runs one small row of each kind (50
//! open connections; 1 MiB of state), one upgrade each, checks that
//! nothing failed and everything was carried, and prints one line; it
//! writes nothing.

#[path = "../tests/load/mod.rs"]
mod load;
#[path = "support/svg.rs"]
mod svg;

use anyhow::{Context, Result, bail, ensure};
use fdbox_guest_artifacts::{KV_V1, KV_V2, RESP_V1, RESP_V2};
use load::serve::{Guest, Service};
use load::{Counts, Load, LoadConfig, LoadReport, percentile};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// The largest value the fill sets (the RESP service takes requests of up
/// to 8 MiB).
const VALUE_BYTES: u64 = 4 * MIB;
/// Bytes one instance takes by `SET` before an upgrade that is not
/// measured: its cache keeps a copy of each value in guest memory.
const FILL_PER_INSTANCE: u64 = 256 * MIB;
/// Idle connections opened, then `PING`ed, at a time.
const IDLE_BATCH: usize = 500;
/// Where the full run writes its charts, under the crate's directory.
const FIGURES: &str = "docs/bench";

/// `fdbox serve` arguments of every row: limits high enough that fdbox's
/// quotas do not decide.
const SERVE_LIMITS: &[&str] = &[
    "--max-descriptors",
    "16000",
    "--max-entries",
    "16000",
    "--max-memory-file-bytes",
    "2147483648",
    "--handover-timeout",
    "60",
    "--ready-timeout",
    "60",
];
/// `fdbox daemon` arguments of every row.
const DAEMON_LIMITS: &[&str] = &["--process-share", "100"];

/// What one row measures.
#[derive(Clone, Copy)]
struct Spec {
    guest: Guest,
    /// Connections open during the upgrades: `active` with the load, the
    /// rest idle (the short-connection thread's one comes and goes).
    open: usize,
    active: usize,
    /// Bytes of values set before the upgrades (RESP only).
    state: u64,
    upgrades: usize,
    steady: Duration,
    pause: Duration,
}

impl Spec {
    fn idle(&self) -> usize {
        self.open - self.active
    }

    fn label(&self) -> String {
        match self.guest {
            Guest::Kv => thousands(self.open as u64),
            Guest::Resp => size(self.state),
            Guest::Http => unreachable!("the bench's rows are kv and RESP ones"),
        }
    }

    fn versions(&self) -> [&'static str; 2] {
        match self.guest {
            Guest::Kv => [KV_V1, KV_V2],
            Guest::Resp => [RESP_V1, RESP_V2],
            Guest::Http => unreachable!("the bench's rows are kv and RESP ones"),
        }
    }
}

/// One upgrade: when the command ran, and what it said.
struct Upgrade {
    start: Instant,
    end: Instant,
    compile_ms: Option<f64>,
    handover_ms: Option<f64>,
    serving_ms: Option<f64>,
}

/// What one row measured.
struct Outcome {
    spec: Spec,
    report: LoadReport,
    counts: Counts,
    steady: (Instant, Instant),
    upgrades: Vec<Upgrade>,
    /// Each upgrade's window: from its start to the next one's.
    events: Vec<(Instant, Instant)>,
    /// How long the `SET`s of the state took (RESP).
    fill: Option<Duration>,
    /// Idle connections that answered after the upgrades.
    idle_carried: usize,
    /// Keys of the state checked byte for byte after the upgrades.
    keys_checked: usize,
    /// The warnings and errors in the host's logs.
    warnings: Vec<String>,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

fn median_f(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = v.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn median_d(v: impl IntoIterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = v.into_iter().collect();
    v.sort();
    percentile(&v, 0.5)
}

/// RLIMIT_NOFILE's soft limit raised to the hard one; the limit now.
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The load average, as `/proc/loadavg` gives its first three fields.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The `PING` a guest takes on a fresh connection, and its exact answer.
fn ping(guest: Guest) -> (&'static [u8], Vec<u8>) {
    assert!(guest != Guest::Http, "idle connections are kv or RESP ones");
    let (request, answer) = guest.probe();
    (request.as_bytes(), format!("{answer}\n").into_bytes())
}

/// `PING`s every connection, then reads every answer; how many answered
/// exactly.
fn ping_all(conns: &mut [TcpStream], guest: Guest) -> usize {
    let (request, answer) = ping(guest);
    let sent: Vec<bool> = conns
        .iter_mut()
        .map(|c| c.write_all(request).is_ok())
        .collect();
    let mut buf = vec![0; answer.len()];
    let mut answered = 0;
    for (c, sent) in conns.iter_mut().zip(sent) {
        if sent && c.read_exact(&mut buf).is_ok() && buf == answer {
            answered += 1;
        }
    }
    answered
}

/// Opens `n` connections, each answering a `PING` (so the service has
/// accepted it), in batches.
fn open_idle(service: &Service, guest: Guest, n: usize) -> Result<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        let batch = IDLE_BATCH.min(n - conns.len());
        let mut fresh = Vec::with_capacity(batch);
        for _ in 0..batch {
            let c = TcpStream::connect_timeout(&service.addr, Duration::from_secs(10))
                .with_context(|| format!("idle connection {}", conns.len() + fresh.len()))?;
            c.set_read_timeout(Some(Duration::from_secs(30)))?;
            fresh.push(c);
        }
        let answered = ping_all(&mut fresh, guest);
        ensure!(
            answered == batch,
            "only {answered} of {batch} idle connections (after {}) answered PING",
            conns.len()
        );
        conns.extend(fresh);
    }
    Ok(conns)
}

/// Values whose bytes are known from their key's index: value `j` is
/// `base[j % 23..][..len]`.
struct Pattern {
    base: Vec<u8>,
}

impl Pattern {
    fn new() -> Self {
        Pattern {
            base: (0..VALUE_BYTES + 23)
                .map(|k| b'a' + (k % 23) as u8)
                .collect(),
        }
    }

    fn value(&self, j: u64, len: u64) -> &[u8] {
        let at = (j % 23) as usize;
        &self.base[at..at + len as usize]
    }
}

/// The keys of a state of `bytes`: (count, value length).
fn keys_for(bytes: u64) -> (u64, u64) {
    let len = VALUE_BYTES.min(bytes);
    (bytes / len, len)
}

/// `SET big:J value` for keys `from..to`, pipelined on one connection (a
/// thread writes while this one reads the `+OK`s).
fn set_values(service: &Service, pattern: &Pattern, from: u64, to: u64, len: u64) -> Result<()> {
    let stream = TcpStream::connect(service.addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = stream.try_clone()?;
    std::thread::scope(|scope| {
        let written = scope.spawn(move || -> std::io::Result<()> {
            for j in from..to {
                let key = format!("big:{j}");
                write!(
                    writer,
                    "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${len}\r\n",
                    key.len()
                )?;
                writer.write_all(pattern.value(j, len))?;
                writer.write_all(b"\r\n")?;
            }
            writer.flush()
        });
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        for j in from..to {
            line.clear();
            reader.read_line(&mut line)?;
            ensure!(line == "+OK\r\n", "SET big:{j} got {line:?}");
        }
        written
            .join()
            .map_err(|_| anyhow::anyhow!("the writer panicked"))?
            .context("writing the SETs")
    })
}

/// `GET big:J` for each `j`: the value must be the pattern's.
fn check_values(service: &Service, pattern: &Pattern, keys: &[u64], len: u64) -> Result<()> {
    let stream = TcpStream::connect(service.addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut value = vec![0; len as usize + 2];
    for &j in keys {
        let key = format!("big:{j}");
        write!(writer, "*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len())?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        ensure!(line == format!("${len}\r\n"), "GET {key} got {line:?}");
        reader.read_exact(&mut value)?;
        ensure!(
            &value[..len as usize] == pattern.value(j, len) && value.ends_with(b"\r\n"),
            "GET {key}: the value differs from what was set"
        );
    }
    Ok(())
}

/// `fdbox upgrade` to `component`, timed, with the host's figures.
fn upgrade(service: &Service, component: &str) -> Result<Upgrade> {
    let start = Instant::now();
    let upgraded = service
        .upgrade(component)
        .map_err(|e| anyhow::anyhow!("fdbox upgrade: {e}"))?;
    Ok(Upgrade {
        start,
        end: Instant::now(),
        compile_ms: upgraded.figure_ms("compiled in"),
        handover_ms: upgraded.figure_ms("hand-over"),
        serving_ms: upgraded.figure_ms("serving"),
    })
}

/// Runs one row; a panic of the harness (an assertion on a process) is an
/// error of the row too.
fn run(spec: Spec, tag: &str, nofile: u64) -> Result<Outcome> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_row(spec, tag, nofile)))
        .unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            bail!("panicked: {why}")
        })
}

fn run_row(spec: Spec, tag: &str, nofile: u64) -> Result<Outcome> {
    // Every idle connection and its answer buffer, the load's, and some
    // room.
    let needed = spec.open as u64 + 200;
    ensure!(
        nofile >= needed,
        "this process may open {nofile} fds (RLIMIT_NOFILE), {needed} needed"
    );
    let [v1, v2] = spec.versions();
    let mut service =
        Service::start_with_daemon(tag, v1, spec.guest, SERVE_LIMITS, None, DAEMON_LIMITS);
    let mut version = 0;
    let pattern = Pattern::new();
    let (keys, value_len) = if spec.state > 0 {
        keys_for(spec.state)
    } else {
        (0, 0)
    };
    let mut fill = None;
    if keys > 0 {
        let start = Instant::now();
        let per_instance = (FILL_PER_INSTANCE / value_len).max(1);
        let mut from = 0;
        while from < keys {
            let to = keys.min(from + per_instance);
            set_values(&service, &pattern, from, to, value_len)
                .with_context(|| format!("SET big:{from}..{to}"))?;
            from = to;
            // Not measured: the next instance starts without the values in
            // its cache.
            version = 1 - version;
            upgrade(&service, [v1, v2][version]).context("the upgrade after the SETs")?;
        }
        fill = Some(start.elapsed());
    }

    let mut idle = open_idle(&service, spec.guest, spec.idle())?;
    let mut config = LoadConfig::new(service.addr, spec.active);
    config.guest = spec.guest;
    let load = Load::start(config);
    ensure!(
        load.wait_all_progress(Duration::from_secs(60)),
        "the load did not start: {:#?}",
        load.failures()
    );
    std::thread::sleep(spec.steady / 4);
    let before = load.counts();
    let steady_from = Instant::now();
    std::thread::sleep(spec.steady);
    let steady_to = Instant::now();

    let mut upgrades = Vec::new();
    for i in 0..spec.upgrades {
        version = 1 - version;
        let done = upgrade(&service, [v1, v2][version])
            .with_context(|| format!("upgrade {i}\n{}", service.logs()))?;
        upgrades.push(done);
        ensure!(
            load.wait_all_progress(Duration::from_secs(60)),
            "upgrade {i}: the load did not recover: {:#?}",
            load.failures()
        );
        std::thread::sleep(spec.pause);
    }
    let to = Instant::now();
    let counts = load.counts() - before;
    let report = load.stop();
    let idle_carried = ping_all(&mut idle, spec.guest);
    drop(idle);

    let mut checked: Vec<u64> = (0..keys).step_by(16).collect();
    if keys > 0 && checked.last() != Some(&(keys - 1)) {
        checked.push(keys - 1);
    }
    check_values(&service, &pattern, &checked, value_len).context("the state after")?;
    service
        .stop()
        .map_err(|e| anyhow::anyhow!("fdbox stop: {e}"))?;
    let warnings = service.warnings();

    let events = upgrades
        .iter()
        .map(|u| u.start)
        .zip(upgrades.iter().skip(1).map(|u| u.start).chain([to]))
        .collect();
    Ok(Outcome {
        spec,
        report,
        counts,
        steady: (steady_from, steady_to),
        upgrades,
        events,
        fill,
        idle_carried,
        keys_checked: checked.len(),
        warnings,
    })
}

/// The figures of a row.
struct Figures {
    command: Duration,
    compile: Option<f64>,
    handover: Option<f64>,
    serving: Option<f64>,
    steady_p50: Duration,
    steady_p99: Duration,
    during_p50: Duration,
    during_p99: Duration,
    during_requests: usize,
    noise: Duration,
    event_gap: Duration,
    added: Duration,
    worst: Duration,
}

impl Outcome {
    fn figures(&self) -> Figures {
        let r = &self.report;
        let steady = r.latencies(self.steady.0, self.steady.1);
        let steady_median = percentile(&steady, 0.5);
        let mut during: Vec<Duration> = self
            .upgrades
            .iter()
            .flat_map(|u| r.latencies(u.start, u.end))
            .collect();
        during.sort();
        let event_gaps: Vec<Duration> = self
            .events
            .iter()
            .map(|&(a, b)| r.gap(a, b, steady_median))
            .collect();
        let event_len = median_d(self.events.iter().map(|(a, b)| *b - *a));
        let noise = percentile(
            &r.window_gaps(self.steady.0, self.steady.1, event_len, steady_median),
            0.5,
        );
        let event_gap = median_d(event_gaps.iter().copied());
        Figures {
            command: median_d(self.upgrades.iter().map(|u| u.end - u.start)),
            compile: median_f(self.upgrades.iter().filter_map(|u| u.compile_ms)),
            handover: median_f(self.upgrades.iter().filter_map(|u| u.handover_ms)),
            serving: median_f(self.upgrades.iter().filter_map(|u| u.serving_ms)),
            steady_p50: steady_median,
            steady_p99: percentile(&steady, 0.99),
            during_p50: percentile(&during, 0.5),
            during_p99: percentile(&during, 0.99),
            during_requests: during.len(),
            noise,
            event_gap,
            added: event_gap.saturating_sub(noise),
            worst: event_gaps.iter().max().copied().unwrap_or_default(),
        }
    }

    /// Latency per `bucket` of send time around the middle upgrade: (ms
    /// from the command's start, p50, p99, max in ms) per bucket (NaN if no
    /// request was sent in it), and that upgrade.
    fn timeline(&self, bucket: Duration) -> (Vec<(f64, f64, f64, f64)>, &Upgrade) {
        let u = &self.upgrades[self.upgrades.len() / 2];
        let from = u.start - Duration::from_millis(300).min(self.spec.pause);
        let to = (u.end + self.spec.pause.min(Duration::from_millis(500))).max(u.end);
        let mut out = Vec::new();
        let mut at = from;
        while at < to {
            let lat = self.report.latencies(at, at + bucket);
            let f = |d: Duration| d.as_secs_f64() * 1e3;
            let mid = at + bucket / 2;
            let x = mid
                .checked_duration_since(u.start)
                .map(f)
                .unwrap_or_else(|| -f(u.start - mid));
            out.push(match lat.last() {
                Some(&max) => (
                    x,
                    f(percentile(&lat, 0.5)),
                    f(percentile(&lat, 0.99)),
                    f(max),
                ),
                None => (x, f64::NAN, f64::NAN, f64::NAN),
            });
            at += bucket;
        }
        (out, u)
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

/// The least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn table(title: &str, rows: &[(Spec, Result<Outcome>)]) {
    println!(
        "| {title} | upgrades | `fdbox upgrade` | compile (host) | hand-over (host) | \
         serving after the ask (host) | noise | median gap per upgrade | added gap | \
         worst gap | p50 / p99 steady | p50 / p99 during upgrades | failures | carried |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (spec, outcome) in rows {
        match outcome {
            Ok(o) => {
                let f = o.figures();
                let carried = match spec.guest {
                    Guest::Kv => format!(
                        "{} of {} idle connections",
                        thousands(o.idle_carried as u64),
                        thousands(spec.idle() as u64)
                    ),
                    Guest::Resp => format!(
                        "{} of {} keys checked",
                        o.keys_checked,
                        keys_for(spec.state).0
                    ),
                    Guest::Http => unreachable!("the bench's rows are kv and RESP ones"),
                };
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {} / {} | {} / {} ({} requests) | {} | {carried} |",
                    spec.label(),
                    o.upgrades.len(),
                    ms(f.command),
                    opt_ms(f.compile),
                    opt_ms(f.handover),
                    opt_ms(f.serving),
                    ms(f.noise),
                    ms(f.event_gap),
                    ms(f.added),
                    ms(f.worst),
                    ms(f.steady_p50),
                    ms(f.steady_p99),
                    ms(f.during_p50),
                    ms(f.during_p99),
                    f.during_requests,
                    o.counts.failures(),
                );
            }
            Err(e) => {
                let first = format!("{e:#}");
                let first = first.lines().next().unwrap_or_default().to_string();
                println!(
                    "| {} | failed: {} | | | | | | | | | | | | |",
                    spec.label(),
                    first.replace('|', "/")
                );
            }
        }
    }
}

/// The scaling chart of some rows: host figures and the added gap against
/// `x`.
fn scaling_chart(title: &str, x_label: &str, points: &[(f64, String, &Outcome)]) -> String {
    let f: Vec<(f64, Figures)> = points.iter().map(|(x, _, o)| (*x, o.figures())).collect();
    let series = |name: &str, color, get: &dyn Fn(&Figures) -> Option<f64>| svg::Series {
        name: name.into(),
        color,
        points: f
            .iter()
            .filter_map(|(x, f)| get(f).map(|y| (*x, y)))
            .collect(),
        dashed: false,
    };
    svg::Chart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: "ms (median over the upgrades)".into(),
        log_x: true,
        x_ticks: Some(points.iter().map(|(x, l, _)| (*x, l.clone())).collect()),
        series: vec![
            series("serving after the ask (host)", "#1f77b4", &|f| f.serving),
            series("hand-over (host)", "#2ca02c", &|f| f.handover),
            series("added gap (clients)", "#d62728", &|f| {
                Some(f.added.as_secs_f64() * 1e3)
            }),
        ],
        markers: Vec::new(),
        spans: Vec::new(),
    }
    .render()
}

/// The latency-over-time chart of a row's middle upgrade.
fn timeline_chart(o: &Outcome, what: &str) -> String {
    let (buckets, u) = o.timeline(Duration::from_millis(10));
    let line = |name: &str, color, dashed, get: fn(&(f64, f64, f64, f64)) -> f64| svg::Series {
        name: name.into(),
        color,
        points: buckets.iter().map(|b| (b.0, get(b))).collect(),
        dashed,
    };
    let end = (u.end - u.start).as_secs_f64() * 1e3;
    let mut spans = Vec::new();
    if let Some(serving) = u.serving_ms {
        spans.push((
            (end - serving).max(0.0),
            end,
            "old asked → new serving".to_string(),
        ));
    }
    svg::Chart {
        title: format!("Request latency across one upgrade: {what}"),
        x_label: "ms since `fdbox upgrade` started; requests by send time, 10 ms buckets \
                  (no line: none sent)"
            .into(),
        y_label: "latency, ms".into(),
        log_x: false,
        x_ticks: None,
        series: vec![
            line("max", "#d62728", true, |b| b.3),
            line("p99", "#ff7f0e", false, |b| b.2),
            line("p50", "#1f77b4", false, |b| b.1),
        ],
        markers: vec![
            svg::Marker {
                x: 0.0,
                label: "upgrade".into(),
            },
            svg::Marker {
                x: end,
                label: "returned".into(),
            },
        ],
        spans,
    }
    .render()
}

fn write_figure(name: &str, svg: &str) -> Result<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIGURES);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), svg)?;
    Ok(format!("{FIGURES}/{name}"))
}

fn main() -> Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let nofile = raise_nofile();
    let (connections, states, active, upgrades, steady, pause): (&[usize], &[u64], _, _, _, _) =
        if full {
            (
                &[50, 500, 5_000, 10_000],
                &[MIB, 100 * MIB, 1 << 30],
                50,
                7,
                Duration::from_secs(4),
                Duration::from_millis(500),
            )
        } else {
            (
                &[50],
                &[MIB],
                10,
                1,
                Duration::from_millis(300),
                Duration::from_millis(100),
            )
        };
    let started = Instant::now();
    let load_before = load_average();
    let base = Spec {
        guest: Guest::Kv,
        open: active,
        active,
        state: 0,
        upgrades,
        steady,
        pause,
    };
    let mut conn_rows = Vec::new();
    for &open in connections {
        let spec = Spec {
            open: open.max(active),
            ..base
        };
        let outcome = run(spec, &format!("bench-scaling-conns-{open}"), nofile);
        if let Err(e) = &outcome {
            eprintln!("{open} connections: {e:#}");
        }
        conn_rows.push((spec, outcome));
    }
    let mut state_rows = Vec::new();
    for &state in states {
        let spec = Spec {
            guest: Guest::Resp,
            state,
            ..base
        };
        let outcome = run(
            spec,
            &format!("bench-scaling-state-{}", state / MIB),
            nofile,
        );
        if let Err(e) = &outcome {
            eprintln!("{}: {e:#}", size(state));
        }
        state_rows.push((spec, outcome));
    }

    if !full {
        let mut upgrades = 0;
        for (spec, outcome) in conn_rows.iter().chain(&state_rows) {
            let o = match outcome {
                Ok(o) => o,
                Err(e) => bail!("{}: {e:#}", spec.label()),
            };
            ensure!(
                o.counts.failures() == 0,
                "{}: {:#?}",
                spec.label(),
                o.report.failures
            );
            ensure!(o.idle_carried == spec.idle(), "idle connections lost");
            ensure!(
                o.warnings.is_empty(),
                "{}: the host warned: {:#?}",
                spec.label(),
                o.warnings
            );
            upgrades += o.upgrades.len();
        }
        println!(
            "upgrade_scaling: quick run: {} upgrades with {} open connections and with {} of state, \
             no failures, every idle connection and the state carried, in {:.1} s \
             (no figures; run with --bench)",
            upgrades,
            connections[0],
            size(states[0]),
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    println!(
        "## How the cost grows: upgrades vs open connections and state size \
         (`benches/upgrade_scaling.rs`)\n"
    );
    println!(
        "Each row is one run: a fresh `fdbox daemon` and `fdbox serve --device daemon`, \
         {active} persistent connections of `tests/load` (one request at a time, {} ms \
         pause after each answer, every answer checked) and its thread of short \
         connections; {} s steady, then {upgrades} upgrades v1 ⇄ v2, {} ms apart. Figures \
         are medians over the upgrades, in ms. *Open connections*: the kv service; the \
         connections beyond the {active} loaded ones are idle, opened by the bench (each \
         answered a `PING`), and must answer a `PING` after the upgrades. *State size*: \
         the RESP service, its key space (a memory file) filled with values `SET` over \
         RESP before the load (4 MiB values, pipelined), then one upgrade not measured \
         (so that the measured ones start from an instance without the values in its \
         cache), and every 16th key and the last one read back byte for byte after the \
         upgrades. *Hand-over* and *serving after the ask* are what `fdbox upgrade` \
         prints (the old version asked until it handed over and returned; until the new \
         one said ready); *added gap*: the median over the upgrades of the longest wait \
         beyond the steady median within each upgrade's window (its start to the next \
         one's), minus the *noise*, the same measure over steady windows as long; p50 / \
         p99 *during upgrades*: requests sent while `fdbox upgrade` ran. Limits raised \
         for every row: `fdbox serve {}`, `fdbox daemon {}`.\n",
        LoadConfig::new(load::serve::free_addr(), 1)
            .pause
            .as_millis(),
        steady.as_secs(),
        pause.as_millis(),
        SERVE_LIMITS.join(" "),
        DAEMON_LIMITS.join(" "),
    );
    table("open connections", &conn_rows);
    println!();
    table("state", &state_rows);
    println!();
    for (spec, outcome) in &state_rows {
        if let Ok(Outcome {
            fill: Some(fill), ..
        }) = outcome
        {
            println!(
                "- {}: the `SET`s and the upgrade(s) not measured after them ({}) took {} ms.",
                size(spec.state),
                spec.state.div_ceil(FILL_PER_INSTANCE),
                ms(*fill)
            );
        }
    }
    for (spec, outcome) in conn_rows.iter().chain(&state_rows) {
        if let Ok(o) = outcome {
            println!(
                "- {}: {} warnings or errors in the host's logs{}",
                spec.label(),
                o.warnings.len(),
                o.warnings
                    .first()
                    .map_or(".".into(), |w| format!("; the first: `{}`", w.trim()))
            );
        }
    }

    // Growth.
    let conn_ok: Vec<(f64, String, &Outcome)> = conn_rows
        .iter()
        .filter_map(|(s, o)| o.as_ref().ok().map(|o| (s.open as f64, s.label(), o)))
        .collect();
    let state_ok: Vec<(f64, String, &Outcome)> = state_rows
        .iter()
        .filter_map(|(s, o)| {
            o.as_ref()
                .ok()
                .map(|o| (s.state as f64 / MIB as f64, s.label(), o))
        })
        .collect();
    let fit = |rows: &[(f64, String, &Outcome)], get: fn(&Figures) -> Option<f64>| {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|(x, _, o)| get(&o.figures()).map(|y| (*x, y)))
            .collect();
        slope(&points)
    };
    println!();
    if let (Some(serving), Some(handover)) =
        (fit(&conn_ok, |f| f.serving), fit(&conn_ok, |f| f.handover))
    {
        let added = fit(&conn_ok, |f| Some(f.added.as_secs_f64() * 1e3)).unwrap_or(0.0);
        println!(
            "Least-squares slopes over the connection rows that ran: serving after the ask \
             {:.1} µs per open connection, hand-over {:.1} µs, added gap {:.1} µs.",
            serving * 1e3,
            handover * 1e3,
            added * 1e3
        );
    }
    if let (Some(first), Some(last)) = (state_ok.first(), state_ok.last()) {
        let (a, b) = (first.2.figures(), last.2.figures());
        println!(
            "From {} to {} of state: serving after the ask {} → {} ms, hand-over {} → {} ms, \
             added gap {} → {} ms.",
            first.1,
            last.1,
            opt_ms(a.serving),
            opt_ms(b.serving),
            opt_ms(a.handover),
            opt_ms(b.handover),
            ms(a.added),
            ms(b.added)
        );
    }

    let mut figures = Vec::new();
    if !conn_ok.is_empty() {
        figures.push((
            "Hand-over and added gap vs open connections",
            write_figure(
                "upgrade-scaling-connections.svg",
                &scaling_chart(
                    "fdbox upgrade vs open connections (kv service)",
                    "open connections (log scale)",
                    &conn_ok,
                ),
            )?,
        ));
    }
    if !state_ok.is_empty() {
        figures.push((
            "Hand-over and added gap vs state size",
            write_figure(
                "upgrade-scaling-state.svg",
                &scaling_chart(
                    "fdbox upgrade vs state size (RESP service)",
                    "bytes in the memory file (log scale)",
                    &state_ok,
                ),
            )?,
        ));
    }
    for (x, label, o) in [conn_ok.first(), conn_ok.last()].into_iter().flatten() {
        let what = format!("{label} open connections");
        let name = format!("upgrade-timeline-{}.svg", *x as u64);
        figures.push((
            "Request latency across one upgrade",
            write_figure(&name, &timeline_chart(o, &what))?,
        ));
        if conn_ok.len() == 1 {
            break;
        }
    }
    println!();
    for (alt, path) in &figures {
        println!("![{alt}]({path})\n");
    }
    println!(
        "Load average {} before, {} after; {:.0} s in all; RLIMIT_NOFILE {nofile} in the \
         bench (fdbox raises its own to the hard limit).",
        load_before,
        load_average(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
