//! A load client for the kv service (`guest-examples/rust/kv-service`) or
//! the RESP service (`guest-examples/rust/resp-service`,
//! [`LoadConfig::guest`]), and (in [`serve`]) the processes it runs
//! against: shared by `tests/upgrade.rs`, `benches/upgrade_gap.rs` and
//! `benches/upgrade_scaling.rs`.
//!
//! [`Load`] runs, until stopped:
//!
//! - `persistent` connections, one thread each, that send one request at a
//!   time (`SET`, `GET`, `INCR`, `COUNT` on keys of their own) and check every
//!   answer exactly against a model of what the service must hold, `COUNT`
//!   included: a connection that the service carried across a hand-over
//!   keeps its count (the RESP service has no `COUNT`: it gets the same
//!   requests as inline commands, `GET` of the `INCR` key in its place);
//! - one thread that opens short connections, one after the other: connect,
//!   `PING` and `COUNT` in one write, expect `PONG` and `VALUE 2`, close
//!   (RESP: two `PING`s, two `+PONG`).
//!
//! It counts refused connections, resets (a reset, a broken pipe, or end of
//! file where an answer was due), wrong answers, lost answers (none within
//! [`LoadConfig::answer_timeout`]), and times every request. After a failure
//! a connection reconnects and starts on fresh keys, so the model stays
//! exact even when the service lost its state (the bench's baseline); the
//! request's time then runs from its first attempt until an answer comes,
//! which makes the time a request waited through an outage its latency.

#![allow(dead_code)]

pub mod serve;

use serve::Guest;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Sub;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a [`Load`] runs.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The service's address.
    pub addr: SocketAddr,
    /// Persistent connections.
    pub persistent: usize,
    /// Whether a thread opens short connections.
    pub short: bool,
    /// Pause after each answer on a persistent connection, and after each
    /// short connection.
    pub pause: Duration,
    /// An answer that takes longer is lost.
    pub answer_timeout: Duration,
    /// Which service it talks to.
    pub guest: Guest,
}

impl LoadConfig {
    /// `persistent` connections and the short-connection thread, 2 ms
    /// between requests, 10 s for an answer.
    pub fn new(addr: SocketAddr, persistent: usize) -> Self {
        LoadConfig {
            addr,
            persistent,
            short: true,
            pause: Duration::from_millis(2),
            answer_timeout: Duration::from_secs(10),
            guest: Guest::Kv,
        }
    }
}

/// Failure and request counters, cumulative since the load started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections refused (`ECONNREFUSED`) or failing otherwise; one that
    /// succeeded after retries counts once.
    pub refused: u64,
    /// Connections reset, broken, or closed by the service while an answer
    /// was due.
    pub reset: u64,
    /// Answers that differ from what the service must answer.
    pub wrong: u64,
    /// Answers that did not come within the timeout.
    pub lost: u64,
    /// Requests answered correctly on persistent connections.
    pub answered: u64,
    /// Short connections that completed correctly.
    pub short: u64,
}

impl Counts {
    /// Refused + reset + wrong + lost.
    pub fn failures(&self) -> u64 {
        self.refused + self.reset + self.wrong + self.lost
    }
}

impl Sub for Counts {
    type Output = Counts;
    fn sub(self, earlier: Counts) -> Counts {
        Counts {
            refused: self.refused - earlier.refused,
            reset: self.reset - earlier.reset,
            wrong: self.wrong - earlier.wrong,
            lost: self.lost - earlier.lost,
            answered: self.answered - earlier.answered,
            short: self.short - earlier.short,
        }
    }
}

/// One request (persistent) or one short connection, timed.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When it was first sent (or, for a short connection, first tried).
    pub start: Instant,
    /// From `start` until the (correct) answer.
    pub latency: Duration,
}

/// What a stopped [`Load`] measured.
pub struct LoadReport {
    pub counts: Counts,
    /// Requests on persistent connections, in no particular order.
    pub samples: Vec<Sample>,
    /// Short connections, in order.
    pub short_samples: Vec<Sample>,
    /// The first failures, described.
    pub failures: Vec<String>,
}

impl LoadReport {
    /// The latencies of the persistent requests first sent in `[from, to)`,
    /// sorted.
    pub fn latencies(&self, from: Instant, to: Instant) -> Vec<Duration> {
        let mut v: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.start >= from && s.start < to)
            .map(|s| s.latency)
            .collect();
        v.sort();
        v
    }

    /// The longest a request first sent in `[from, to)` waited beyond
    /// `median` (the steady median): the gap of that window.
    pub fn gap(&self, from: Instant, to: Instant, median: Duration) -> Duration {
        let worst = self
            .samples
            .iter()
            .filter(|s| s.start >= from && s.start < to)
            .map(|s| s.latency)
            .max();
        worst.unwrap_or_default().saturating_sub(median)
    }

    /// The gap ([`LoadReport::gap`]) of each window of length `len` cut
    /// from `[from, to)`, sorted: what the gap of an event reads when
    /// nothing happens (the noise floor).
    pub fn window_gaps(
        &self,
        from: Instant,
        to: Instant,
        len: Duration,
        median: Duration,
    ) -> Vec<Duration> {
        let mut gaps = Vec::new();
        let mut start = from;
        while !len.is_zero() && start + len <= to {
            gaps.push(self.gap(start, start + len, median));
            start += len;
        }
        gaps.sort();
        gaps
    }
}

/// The `p`-quantile (0.0 to 1.0) of sorted durations; zero if empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Whether the spans (start, end) of a client's runs cover every instant
/// from `from` to `to`: that something was running through a hand-over.
pub fn covered(spans: &[(Instant, Instant)], from: Instant, to: Instant) -> bool {
    let mut reached = from;
    let mut spans = spans.to_vec();
    spans.sort();
    for (start, end) in spans {
        if start <= reached && end > reached {
            reached = end;
        }
    }
    reached >= to
}

/// How many failures [`LoadReport::failures`] keeps.
const KEPT_FAILURES: usize = 50;

struct Shared {
    stop: AtomicBool,
    refused: AtomicU64,
    reset: AtomicU64,
    wrong: AtomicU64,
    lost: AtomicU64,
    answered: AtomicU64,
    short: AtomicU64,
    /// Per persistent connection: requests answered correctly.
    progress: Vec<AtomicU64>,
    failures: Mutex<Vec<String>>,
    epoch: Instant,
}

impl Shared {
    fn fail(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < KEPT_FAILURES {
            let at = self.epoch.elapsed().as_secs_f64();
            failures.push(format!("at {at:.3} s: {what}"));
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A running load; [`Load::stop`] ends it and returns what it measured.
pub struct Load {
    shared: Arc<Shared>,
    persistent: Vec<JoinHandle<Vec<Sample>>>,
    short: Option<JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// Starts the threads; returns at once.
    pub fn start(config: LoadConfig) -> Load {
        assert!(
            config.guest != Guest::Http,
            "the load client speaks the kv and RESP protocols only; tests/http.rs drives wrk"
        );
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            reset: AtomicU64::new(0),
            wrong: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            short: AtomicU64::new(0),
            progress: (0..config.persistent).map(|_| AtomicU64::new(0)).collect(),
            failures: Mutex::new(Vec::new()),
            epoch: Instant::now(),
        });
        let persistent = (0..config.persistent)
            .map(|index| {
                let (shared, config) = (shared.clone(), config.clone());
                std::thread::Builder::new()
                    .name(format!("load-{index}"))
                    .spawn(move || persistent(&shared, &config, index))
                    .unwrap()
            })
            .collect();
        let short = config.short.then(|| {
            let (shared, config) = (shared.clone(), config.clone());
            std::thread::Builder::new()
                .name("load-short".into())
                .spawn(move || short(&shared, &config))
                .unwrap()
        });
        Load {
            shared,
            persistent,
            short,
        }
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            refused: get(&s.refused),
            reset: get(&s.reset),
            wrong: get(&s.wrong),
            lost: get(&s.lost),
            answered: get(&s.answered),
            short: get(&s.short),
        }
    }

    /// The failures so far, described (the first [`KEPT_FAILURES`]).
    pub fn failures(&self) -> Vec<String> {
        self.shared.failures.lock().unwrap().clone()
    }

    /// Waits until every persistent connection, and the short-connection
    /// thread, has completed at least one more request than when called;
    /// false if that takes longer than `timeout`.
    pub fn wait_all_progress(&self, timeout: Duration) -> bool {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let before: Vec<u64> = self.shared.progress.iter().map(load).collect();
        let short_before = load(&self.shared.short);
        let deadline = Instant::now() + timeout;
        loop {
            let all = self
                .shared
                .progress
                .iter()
                .zip(&before)
                .all(|(now, &then)| load(now) > then)
                && (self.short.is_none() || load(&self.shared.short) > short_before);
            if all {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops every thread (each finishes the request it is on) and returns
    /// what they measured.
    pub fn stop(mut self) -> LoadReport {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut samples = Vec::new();
        for thread in std::mem::take(&mut self.persistent) {
            samples.extend(thread.join().expect("a load thread panicked"));
        }
        let short_samples = self
            .short
            .take()
            .map(|t| t.join().expect("the short-connection thread panicked"))
            .unwrap_or_default();
        let counts = Counts {
            refused: self.shared.refused.load(Ordering::Relaxed),
            reset: self.shared.reset.load(Ordering::Relaxed),
            wrong: self.shared.wrong.load(Ordering::Relaxed),
            lost: self.shared.lost.load(Ordering::Relaxed),
            answered: self.shared.answered.load(Ordering::Relaxed),
            short: self.shared.short.load(Ordering::Relaxed),
        };
        LoadReport {
            counts,
            samples,
            short_samples,
            failures: self.shared.failures.lock().unwrap().clone(),
        }
    }
}

impl Drop for Load {
    /// A load dropped without `stop` (a failed assertion) stops its threads
    /// without waiting for them.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum AskError {
    /// Reset, broken pipe, or end of file before the answer.
    Reset(String),
    /// No answer within the timeout.
    Lost,
}

/// One client connection to the service, counting its requests for
/// `COUNT`.
pub struct Client {
    reader: BufReader<TcpStream>,
    /// Requests sent (complete lines), for `COUNT`.
    pub sent: u64,
}

impl Client {
    /// Connects, with `timeout` for connecting and for each answer.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(Client {
            reader: BufReader::new(stream),
            sent: 0,
        })
    }

    /// Sends `line` and a newline, and returns the answer without its
    /// newline.
    pub fn ask(&mut self, line: &str) -> Result<String, AskError> {
        self.send(&format!("{line}\n"))?;
        self.answer()
    }

    /// Sends `line` as an inline RESP command (with `\r\n`) and returns
    /// the reply's lines, each without its `\n` and joined by `\n`: one
    /// line, or two for a bulk string that is not nil.
    pub fn ask_resp(&mut self, line: &str) -> Result<String, AskError> {
        self.send(&format!("{line}\r\n"))?;
        let first = self.answer()?;
        if first.starts_with('$') && first != "$-1\r" {
            Ok(format!("{first}\n{}", self.answer()?))
        } else {
            Ok(first)
        }
    }

    /// Like [`Client::ask`], panicking on a failure.
    pub fn must_ask(&mut self, line: &str) -> String {
        self.ask(line)
            .unwrap_or_else(|e| panic!("no answer to {line:?}: {e:?}"))
    }

    /// Sends `bytes` as they are (maybe a partial line); counts the newlines
    /// in it as requests.
    pub fn send(&mut self, bytes: &str) -> Result<(), AskError> {
        self.sent += bytes.matches('\n').count() as u64;
        self.reader
            .get_mut()
            .write_all(bytes.as_bytes())
            .map_err(|e| AskError::Reset(e.to_string()))
    }

    /// Reads one answer line, without its newline.
    pub fn answer(&mut self) -> Result<String, AskError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(AskError::Reset("end of file".into())),
            Ok(_) if line.ends_with('\n') => {
                line.pop();
                Ok(line)
            }
            Ok(_) => Err(AskError::Reset(format!("end of file after {line:?}"))),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(AskError::Lost)
            }
            Err(e) => Err(AskError::Reset(e.to_string())),
        }
    }

    /// Whether the service closed the connection (end of file) within
    /// `timeout`, with nothing to read before it.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let stream = self.reader.get_ref();
        stream.set_read_timeout(Some(timeout)).unwrap();
        let mut line = String::new();
        matches!(self.reader.read_line(&mut line), Ok(0))
    }
}

/// What one persistent connection must see: its keys and its count.
struct Model {
    /// Unique to the connection and its generation (one per reconnect).
    prefix: String,
    values: [Option<u64>; 4],
    counter: u64,
    /// Requests sent on this connection.
    sent: u64,
}

impl Model {
    fn new(index: usize, generation: u64) -> Self {
        Model {
            prefix: format!("c{index}g{generation}"),
            values: [None; 4],
            counter: 0,
            sent: 0,
        }
    }

    /// The next request and the answer it must get.
    fn next(&mut self) -> (String, String) {
        self.sent += 1;
        let i = self.sent;
        let slot = ((i / 4) % 4) as usize;
        let key = format!("{}k{slot}", self.prefix);
        match i % 4 {
            0 => {
                self.values[slot] = Some(i);
                (format!("SET {key} v{i}"), "OK".into())
            }
            1 => {
                let expected = match self.values[slot] {
                    Some(v) => format!("VALUE v{v}"),
                    None => "NONE".into(),
                };
                (format!("GET {key}"), expected)
            }
            2 => {
                self.counter += 1;
                (
                    format!("INCR {}n", self.prefix),
                    format!("VALUE {}", self.counter),
                )
            }
            _ => ("COUNT".into(), format!("VALUE {i}")),
        }
    }

    /// [`Model::next`] for the RESP service, as inline commands; the reply
    /// as [`Client::ask_resp`] returns it. `GET` of the `INCR` key takes the
    /// place of `COUNT`.
    fn next_resp(&mut self) -> (String, String) {
        fn bulk(value: Option<String>) -> String {
            match value {
                Some(v) => format!("${}\r\n{v}\r", v.len()),
                None => "$-1\r".into(),
            }
        }
        let (request, _) = self.next();
        let i = self.sent;
        let slot = ((i / 4) % 4) as usize;
        let key = format!("{}k{slot}", self.prefix);
        match i % 4 {
            0 => (request, "+OK\r".into()),
            1 => (
                format!("GET {key}"),
                bulk(self.values[slot].map(|v| format!("v{v}"))),
            ),
            2 => (request, format!(":{}\r", self.counter)),
            _ => (
                format!("GET {}n", self.prefix),
                bulk((self.counter > 0).then(|| self.counter.to_string())),
            ),
        }
    }
}

/// Connects, retrying every millisecond; a connection that needed retries
/// counts once as refused. `None` if stopped first.
fn connect(shared: &Shared, config: &LoadConfig, who: &str) -> Option<Client> {
    let mut refused = false;
    loop {
        if shared.stopped() {
            return None;
        }
        match Client::connect(config.addr, config.answer_timeout) {
            Ok(client) => return Some(client),
            Err(e) => {
                if !refused {
                    shared.fail(&shared.refused, format!("{who}: connect: {e}"));
                    refused = true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn persistent(shared: &Shared, config: &LoadConfig, index: usize) -> Vec<Sample> {
    let who = format!("connection {index}");
    let mut samples = Vec::new();
    let mut generation = 0;
    // A request that failed: when it was first sent; its replacement's
    // latency runs from then.
    let mut failed_since: Option<Instant> = None;
    'connection: while let Some(mut client) = connect(shared, config, &who) {
        let mut model = Model::new(index, generation);
        generation += 1;
        while !shared.stopped() {
            let (request, expected) = match config.guest {
                Guest::Kv => model.next(),
                Guest::Resp => model.next_resp(),
                Guest::Http => unreachable!("Load::start refuses the HTTP guest"),
            };
            let start = failed_since.unwrap_or_else(Instant::now);
            let asked = match config.guest {
                Guest::Kv => client.ask(&request),
                Guest::Resp => client.ask_resp(&request),
                Guest::Http => unreachable!("Load::start refuses the HTTP guest"),
            };
            let failure = match asked {
                Ok(answer) if answer == expected => {
                    samples.push(Sample {
                        start,
                        latency: start.elapsed(),
                    });
                    failed_since = None;
                    shared.answered.fetch_add(1, Ordering::Relaxed);
                    shared.progress[index].fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(config.pause);
                    continue;
                }
                Ok(answer) => (
                    &shared.wrong,
                    format!("{who}: {request:?} got {answer:?}, expected {expected:?}"),
                ),
                Err(AskError::Lost) => (&shared.lost, format!("{who}: {request:?} got no answer")),
                Err(AskError::Reset(e)) => (&shared.reset, format!("{who}: {request:?}: {e}")),
            };
            shared.fail(failure.0, failure.1);
            failed_since = Some(start);
            continue 'connection;
        }
        break;
    }
    samples
}

fn short(shared: &Shared, config: &LoadConfig) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut failed_since: Option<Instant> = None;
    let mut n = 0u64;
    while !shared.stopped() {
        let start = failed_since.unwrap_or_else(Instant::now);
        n += 1;
        let who = format!("short connection {n}");
        let Some(mut client) = connect(shared, config, &who) else {
            break;
        };
        let pong = config.guest.probe().1;
        let (request, second) = match config.guest {
            Guest::Kv => ("PING\nCOUNT\n", "VALUE 2"),
            Guest::Resp => ("PING\r\nPING\r\n", pong),
            Guest::Http => unreachable!("Load::start refuses the HTTP guest"),
        };
        let outcome = client.send(request).and_then(|()| {
            let first = client.answer()?;
            Ok((first, client.answer()?))
        });
        let failure = match outcome {
            Ok((first, count)) if first == pong && count == second => {
                samples.push(Sample {
                    start,
                    latency: start.elapsed(),
                });
                failed_since = None;
                shared.short.fetch_add(1, Ordering::Relaxed);
                drop(client);
                std::thread::sleep(config.pause);
                continue;
            }
            Ok(answers) => (
                &shared.wrong,
                format!("{who}: got {answers:?}, expected ({pong:?}, {second:?})"),
            ),
            Err(AskError::Lost) => (&shared.lost, format!("{who}: no answer")),
            Err(AskError::Reset(e)) => (&shared.reset, format!("{who}: {e}")),
        };
        shared.fail(failure.0, failure.1);
        failed_since = Some(start);
    }
    samples
}
