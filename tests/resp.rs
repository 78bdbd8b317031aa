//! The RESP service (`guest-examples/rust/resp-service`) under clients
//! nobody here wrote: Debian's `redis-benchmark` and `redis-cli`
//! (`redis-tools`, installed by `guest-examples/toolchains.sh`).
//!
//! Two `redis-benchmark -c 50 -t set,get,incr` loops, one with `-P 16`, run
//! back to back while the service is upgraded v1 -> v2 -> v1 ... ten times
//! and restarted once in a new host process on the holder daemon: every run
//! must end with status 0 and no `Error` line (redis-benchmark 7 stops at
//! the first error reply or connection error, saying `Error from server:
//! ...` or `Error: Connection reset by peer` on stderr, and exits 1), and
//! afterwards `redis-cli` finds every key, and the INCR counter equals the
//! INCRs the runs sent. A client of the test's own sends `PING` every
//! millisecond on one connection throughout: it must see no error, and its
//! longest wait for an answer around each upgrade is the gap printed.
//!
//! Then, in the same run and under the same load, the baselines the README
//! compares with (printed as a Markdown table): the same guest killed with
//! SIGKILL and started afresh without boxes, and Debian's `redis-server`
//! (installed by `toolchains.sh` too) restarted with its keys saved on the
//! way down. Both must show what fdbox avoids: the probe's connection
//! breaks, and (for the guest) every key is gone.
//!
//! Every process is owned by a `load::serve::Proc`, killed and reaped on
//! every path; everything is on loopback.

#[path = "load/mod.rs"]
mod load;

use fdbox_guest_artifacts::{RESP_V1, RESP_V2};
use load::serve::{Device, Guest, Proc, Service, Step, upgrades_and_a_restart};
use load::{Client, covered};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Requests per test per run of each loop (divisible by 50 clients × 16,
/// so a pipelined run sends exactly this many).
const PLAIN_REQUESTS: u64 = 8_000;
const PIPELINED_REQUESTS: u64 = 40_000;
/// How long one redis-benchmark run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Keys the test sets itself before the load (more than the store's first
/// table holds: it grows under the test).
const SEEDS: usize = 1000;

/// `redis-cli -p PORT ARGS...`: its output, trimmed, or why it failed.
fn redis_cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli: {e} (install redis-tools)"));
    if !out.status.success() {
        return Err(format!(
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// [`redis_cli`] on the service; it must succeed.
fn cli(service: &Service, args: &[&str]) -> String {
    redis_cli(service.addr.port(), args).unwrap_or_else(|e| panic!("{e}\n{}", service.logs()))
}

/// One line of a reply, without its `\r\n`.
fn line(client: &mut Client) -> String {
    let line = client.answer().expect("a reply line");
    line.strip_suffix('\r')
        .unwrap_or_else(|| panic!("reply line {line:?} does not end in CRLF"))
        .to_string()
}

/// Sets the test's own keys, `seed:I` to `value-I`, in one pipelined
/// write.
fn seed(client: &mut Client) {
    let seeds: String = (0..SEEDS)
        .map(|i| command(&["SET", &format!("seed:{i}"), &format!("value-{i}")]))
        .collect();
    client.send(&seeds).unwrap();
    for _ in 0..SEEDS {
        assert_eq!(line(client), "+OK");
    }
}

/// A RESP array of bulk strings.
fn command(args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        out += &format!("${}\r\n{arg}\r\n", arg.len());
    }
    out
}

/// One finished redis-benchmark run.
struct Run {
    pipelined: bool,
    started: Instant,
    ended: Instant,
    ok: bool,
    output: String,
}

/// Loops of redis-benchmark runs, back to back until stopped.
struct Bench {
    stop: Arc<AtomicBool>,
    loops: Vec<JoinHandle<Vec<Run>>>,
}

impl Bench {
    /// Both loops against the server on `port`, logging into `dir`.
    fn start(port: u16, dir: &Path) -> Bench {
        let stop = Arc::new(AtomicBool::new(false));
        let loops = [false, true]
            .into_iter()
            .map(|pipelined| {
                let stop = stop.clone();
                let port = port.to_string();
                let log = dir.join(format!("redis-benchmark-{port}-{pipelined}.log"));
                std::thread::spawn(move || {
                    let mut runs = Vec::new();
                    // At least one run; none after a failure.
                    while runs.is_empty()
                        || !stop.load(Ordering::SeqCst) && runs.iter().all(|r: &Run| r.ok)
                    {
                        runs.push(run(&port, pipelined, &log));
                    }
                    runs
                })
            })
            .collect();
        Bench { stop, loops }
    }

    /// Lets the running runs finish; every run.
    fn finish(mut self) -> Vec<Run> {
        self.stop.store(true, Ordering::SeqCst);
        self.loops
            .drain(..)
            .flat_map(|l| l.join().expect("a redis-benchmark loop panicked"))
            .collect()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for l in self.loops.drain(..) {
            let _ = l.join();
        }
    }
}

/// One `redis-benchmark -c 50 -t set,get,incr --csv` run (with `-P 16` if
/// `pipelined`).
fn run(port: &str, pipelined: bool, log: &Path) -> Run {
    let _ = std::fs::remove_file(log);
    let requests = if pipelined {
        PIPELINED_REQUESTS
    } else {
        PLAIN_REQUESTS
    };
    let mut cmd = Command::new("redis-benchmark");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-c",
        "50",
        "-t",
        "set,get,incr",
    ])
    .args(["-n", &requests.to_string(), "--csv"]);
    if pipelined {
        cmd.args(["-P", "16"]);
    }
    let started = Instant::now();
    let mut proc = Proc::spawn("redis-benchmark", cmd, log);
    let status = proc.wait_timeout(RUN_TIMEOUT);
    let ended = Instant::now();
    let output = std::fs::read_to_string(log).unwrap_or_default();
    let ok = status.is_some_and(|s| s.success()) && !output.contains("Error");
    Run {
        pipelined,
        started,
        ended,
        ok,
        output: if status.is_none() {
            format!("did not finish within {RUN_TIMEOUT:?}\n{output}")
        } else {
            output
        },
    }
}

/// The requests per second a `--csv` output gives for `test`.
fn rps(output: &str, test: &str) -> f64 {
    output
        .lines()
        .find_map(|l| {
            let mut fields = l.split(',').map(|f| f.trim_matches('"'));
            (fields.next()? == test).then(|| fields.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {test} line in {output:?}"))
}

/// A client of its own sending `PING` every millisecond on one connection,
/// reconnecting when it breaks: when the service answered, and what failed.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Probed>>,
}

/// What a [`Probe`] saw.
#[derive(Default)]
struct Probed {
    answers: Vec<Instant>,
    errors: Vec<String>,
}

impl Probe {
    fn start(addr: SocketAddr) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Probed::default();
            let mut client = None;
            while !flag.load(Ordering::SeqCst) {
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => match Client::connect(addr, Duration::from_secs(5)) {
                        Ok(c) => client.insert(c),
                        Err(e) => {
                            seen.errors.push(format!("connect: {e}"));
                            std::thread::sleep(Duration::from_millis(1));
                            continue;
                        }
                    },
                };
                match c.ask("PING") {
                    Ok(answer) if answer == "+PONG\r" => seen.answers.push(Instant::now()),
                    Ok(answer) => seen.errors.push(format!("PING answered {answer:?}")),
                    Err(e) => {
                        seen.errors.push(format!("PING: {e:?}"));
                        client = None;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        });
        Probe {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Probed {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().unwrap();
        thread.join().expect("the PING probe panicked")
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Probed {
    /// The longest time without an answer around `from`..`to`: the longest
    /// interval between two answers that overlaps it.
    fn gap(&self, from: Instant, to: Instant) -> Duration {
        self.answers
            .windows(2)
            .filter(|w| w[1] >= from && w[0] <= to)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_else(|| panic!("the probe got no answer around an event"))
    }
}

/// One restart of a baseline under the same load, for the comparison.
struct Baseline {
    what: &'static str,
    /// The first `Error` line of the redis-benchmark runs, if any failed.
    error: Option<String>,
    runs_failed: usize,
    probe_errors: usize,
    gap: Duration,
    keys_before: String,
    keys_after: String,
}

impl Baseline {
    /// Runs both redis-benchmark loops and a probe against `port`,
    /// `restart`s the server 1.5 s in, and lets the load go on 1 s more.
    fn measure(
        what: &'static str,
        port: u16,
        dir: &Path,
        restart: impl FnOnce() -> (Instant, Instant),
    ) -> Baseline {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let keys_before = redis_cli(port, &["DBSIZE"]).unwrap();
        let probe = Probe::start(addr);
        let bench = Bench::start(port, dir);
        std::thread::sleep(Duration::from_millis(1500));
        let (from, to) = restart();
        std::thread::sleep(Duration::from_millis(1000));
        let runs = bench.finish();
        let probed = probe.finish();
        let failed: Vec<&Run> = runs.iter().filter(|r| !r.ok).collect();
        Baseline {
            what,
            error: failed.first().map(|r| {
                r.output
                    .lines()
                    .find(|l| l.contains("Error"))
                    .unwrap_or("exited with a failure")
                    .trim()
                    .to_string()
            }),
            runs_failed: failed.len(),
            probe_errors: probed.errors.len(),
            gap: probed.gap(from, to),
            keys_before,
            keys_after: redis_cli(port, &["DBSIZE"]).unwrap(),
        }
    }

    fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {:.0} ms | {} -> {} |",
            self.what,
            match &self.error {
                Some(e) => format!("{} run(s) failed: `{e}`", self.runs_failed),
                None => "0 errors".into(),
            },
            self.probe_errors,
            self.gap.as_secs_f64() * 1e3,
            self.keys_before,
            self.keys_after
        )
    }
}

/// Debian's redis-server on `port` (no persistence but what `SHUTDOWN
/// SAVE` writes into `dir`), answering.
fn redis_server(port: u16, dir: &Path, log: &Path) -> Proc {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--logfile", ""]);
    let mut server = Proc::spawn("redis-server", cmd, log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while redis_cli(port, &["PING"]).as_deref() != Ok("PONG") {
        assert!(
            server.running() && Instant::now() < deadline,
            "redis-server did not come up:\n{}",
            load::serve::tail(log, 20)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    server
}

#[test]
fn redis_benchmark_through_ten_upgrades_and_a_restart_sees_no_error() {
    let began = Instant::now();
    if Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!(
            "redis-benchmark is not installed: run guest-examples/toolchains.sh \
             (or apt-get install redis-tools)"
        );
    }
    let mut service = Service::start_guest("resp-bench", RESP_V1, Guest::Resp, &[], None);
    assert!(cli(&service, &["INFO"]).contains("version:resp-v1"));

    // Keys of the test's own, set in one pipelined write.
    let mut seeder = Client::connect(service.addr, Duration::from_secs(30)).unwrap();
    seed(&mut seeder);
    // A command sent in part now, finished after the first upgrade; the
    // next one is finished after the restart.
    let mut half = Client::connect(service.addr, Duration::from_secs(30)).unwrap();
    let first = command(&["SET", "half", "across-an-upgrade"]);
    let second = command(&["SET", "restart", "across-a-restart"]);
    half.send(&first[..20]).unwrap();

    let probe = Probe::start(service.addr);
    let bench = Bench::start(service.addr.port(), &service.dir);
    // The last second before the first upgrade: the probe's steady waits.
    let steady_from = Instant::now() + Duration::from_millis(500);
    std::thread::sleep(Duration::from_millis(1500));
    let steady_to = Instant::now();
    let windows = upgrades_and_a_restart(
        &mut service,
        RESP_V1,
        RESP_V2,
        Duration::from_millis(700),
        |service, step| match step {
            Step::Upgraded { index, to_v2, .. } => {
                let version = if *to_v2 { "resp-v2" } else { "resp-v1" };
                assert!(
                    cli(service, &["INFO", "server"]).contains(&format!("version:{version}")),
                    "after upgrade {index}"
                );
                // STRLEN is v2's.
                let strlen = cli(service, &["STRLEN", "seed:7"]);
                if *to_v2 {
                    assert_eq!(strlen, "7");
                } else {
                    assert!(strlen.contains("unknown command 'STRLEN'"), "{strlen}");
                }
                if *index == 0 {
                    half.send(&first[20..]).unwrap();
                    assert_eq!(line(&mut half), "+OK");
                    half.send(&second[..25]).unwrap();
                }
            }
            Step::Restarted { .. } => {
                half.send(&second[25..]).unwrap();
                assert_eq!(line(&mut half), "+OK");
            }
        },
    );

    let runs = bench.finish();
    let probed = probe.finish();
    assert!(
        probed.errors.is_empty(),
        "the PING probe's connection saw errors: {:?}",
        probed.errors
    );
    let mut gaps: Vec<Duration> = windows[..10]
        .iter()
        .map(|w| probed.gap(w.from, w.to))
        .collect();
    gaps.sort();
    let restart_gap = probed.gap(windows[10].from, windows[10].to);
    let steady_gap = probed.gap(steady_from, steady_to);
    for r in &runs {
        assert!(
            r.ok,
            "a redis-benchmark run (pipelined: {}) failed:\n{}\n{}",
            r.pipelined,
            r.output,
            service.logs()
        );
    }
    // Each upgrade and the restart happened while redis-benchmark ran:
    // at every instant, a run of one loop or the other was going on.
    let spans: Vec<_> = runs.iter().map(|r| (r.started, r.ended)).collect();
    for window in &windows {
        assert!(
            covered(&spans, window.from, window.to),
            "{} happened while no redis-benchmark run was going on",
            window.what
        );
    }
    let (plain, pipelined): (Vec<&Run>, Vec<&Run>) = runs.iter().partition(|r| !r.pipelined);
    for (kind, runs) in [("plain", &plain), ("-P 16", &pipelined)] {
        for test in ["SET", "GET", "INCR"] {
            let all: Vec<String> = runs
                .iter()
                .map(|r| format!("{:.0}", rps(&r.output, test)))
                .collect();
            eprintln!("{kind} {test} requests/s per run: {}", all.join(" "));
        }
    }

    // Every key: the seeds, redis-benchmark's two, the two sent in parts.
    assert_eq!(
        cli(&service, &["DBSIZE"]),
        (SEEDS + 4).to_string(),
        "{}",
        service.logs()
    );
    let gets: String = (0..SEEDS)
        .map(|i| command(&["GET", &format!("seed:{i}")]))
        .collect();
    seeder.send(&gets).unwrap();
    for i in 0..SEEDS {
        let value = format!("value-{i}");
        assert_eq!(line(&mut seeder), format!("${}", value.len()));
        assert_eq!(line(&mut seeder), value);
    }
    assert_eq!(cli(&service, &["GET", "seed:999"]), "value-999");
    assert_eq!(cli(&service, &["GET", "half"]), "across-an-upgrade");
    assert_eq!(cli(&service, &["GET", "restart"]), "across-a-restart");
    // redis-benchmark's SET value (3 bytes, -d absent).
    assert_eq!(cli(&service, &["GET", "key:__rand_int__"]), "VXK");
    let incrs = plain.len() as u64 * PLAIN_REQUESTS + pipelined.len() as u64 * PIPELINED_REQUESTS;
    assert_eq!(
        cli(&service, &["GET", "counter:__rand_int__"]),
        incrs.to_string(),
        "the INCR counter after {} plain and {} pipelined runs",
        plain.len(),
        pipelined.len()
    );
    assert!(cli(&service, &["INFO"]).contains("version:resp-v1"));

    // Values that change length leave garbage in the memory file: past
    // 1 MiB (and more than the live records) the store is rebuilt.
    let rewrites: String = (0..2500)
        .map(|i| command(&["SET", "big", &"v".repeat(1000 + i % 2)]))
        .collect();
    seeder.send(&rewrites).unwrap();
    for _ in 0..2500 {
        assert_eq!(line(&mut seeder), "+OK");
    }
    assert_eq!(cli(&service, &["GET", "big"]), "v".repeat(1001));
    assert_eq!(cli(&service, &["GET", "seed:0"]), "value-0");
    assert_eq!(cli(&service, &["DBSIZE"]), (SEEDS + 5).to_string());
    assert_eq!(cli(&service, &["FLUSHDB"]), "OK");
    assert_eq!(cli(&service, &["DBSIZE"]), "0");
    assert_eq!(cli(&service, &["GET", "seed:0"]), "");
    eprintln!(
        "{} plain and {} pipelined redis-benchmark runs, {incrs} INCRs, 0 errors, through 10 \
         upgrades and a restart; the test took {:?}",
        plain.len(),
        pipelined.len(),
        began.elapsed()
    );

    // The baselines, under the same two loops and probe: the same guest
    // killed and started afresh without boxes, then Debian's redis-server
    // restarted (its keys saved on the way down).
    seed(&mut seeder);
    let dir = service.dir.to_path_buf();
    let killed = Baseline::measure(
        "resp-service killed (`kill -9`), started again without boxes (`--device memory`)",
        service.addr.port(),
        &dir,
        || {
            let from = Instant::now();
            service.kill_serve();
            service.start_serve(RESP_V1, Device::Memory);
            (from, Instant::now())
        },
    );
    assert!(
        killed.probe_errors > 0 && killed.keys_after == "0",
        "a kill -9 without boxes went unnoticed: {}",
        killed.row()
    );
    let redis_dir = dir.join("redis");
    std::fs::create_dir(&redis_dir).unwrap();
    let port = load::serve::free_addr().port();
    let log = dir.join("redis-server.log");
    let mut server = redis_server(port, &redis_dir, &log);
    let mut redis =
        Client::connect(([127, 0, 0, 1], port).into(), Duration::from_secs(30)).unwrap();
    seed(&mut redis);
    let restarted = Baseline::measure(
        "Debian redis-server 7 restarted (`SHUTDOWN SAVE`, started again)",
        port,
        &dir,
        || {
            let from = Instant::now();
            let _ = redis_cli(port, &["SHUTDOWN", "SAVE"]);
            assert!(
                server.wait_timeout(Duration::from_secs(30)).is_some(),
                "redis-server did not shut down"
            );
            server = redis_server(port, &redis_dir, &log);
            (from, Instant::now())
        },
    );
    assert!(
        restarted.probe_errors > 0,
        "redis-server's restart went unnoticed: {}",
        restarted.row()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "\n| under both redis-benchmark loops | redis-benchmark | probe errors | longest PING \
         wait | keys before -> after |\n|---|---|---|---|---|\n\
         | nothing (the second before the first upgrade) | 0 errors | 0 | {:.0} ms | |\n\
         | 10 `fdbox upgrade`s v1 <-> v2 | 0 errors | 0 | {:.0} ms median, {:.0} ms max | \
         {} kept |\n\
         | `fdbox stop`, new `fdbox serve` on the daemon | 0 errors | 0 | {:.0} ms | kept |\n\
         {}\n{}\n",
        ms(steady_gap),
        ms(gaps[gaps.len() / 2]),
        ms(gaps[gaps.len() - 1]),
        SEEDS + 4,
        ms(restart_gap),
        killed.row(),
        restarted.row()
    );
    drop(server);
    if let Err(e) = service.stop() {
        panic!("{e}\n{}", service.logs());
    }
}
