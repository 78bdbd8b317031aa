//! The holder daemon's costs, each next to a baseline measured in the same
//! run:
//!
//! 1. moving 10,000 memfds from one host process to another through the
//!    daemon (`put_many` + `seal` in A, `unseal` + `get_many` in B) versus raw
//!    SCM_RIGHTS between the same two processes, 253 fds per message;
//! 2. one put+get round trip of one fd through the daemon versus a raw
//!    SCM_RIGHTS ping-pong of one fd between two processes;
//! 3. the daemon's memory holding 100,000 fds versus an empty daemon;
//! 4. the guest path: a component puts 10,000 memfds one by one and a new
//!    instance gets them back, on the daemon device, next to the same guest
//!    on the in-process device and the native calls it makes.
//!
//! Every process involved is this binary: the parent re-executes itself
//! (`std::env::current_exe()`) with `FDBOX_BENCH_ROLE` set to `daemon`,
//! `producer`, `consumer` or `echo`, and drives the workers with one-line
//! commands on their stdin, read back from their stdout. Children die with
//! the parent (`PR_SET_PDEATHSIG`), are killed and reaped on every exit path
//! of the parent, and every wait is bounded (a watchdog kills the children of
//! a phase that overruns, which makes the parent's blocked call fail).
//!
//! `cargo bench -p fdbox-host --bench daemon` prints a Markdown report;
//! BENCHMARKS.md holds the latest one. Without `--bench` (as `cargo test
//! --benches` runs it, unoptimized) it runs every path on 300 fds and prints
//! one line and no figures.

use fdbox_host::daemon::{Holder, Limits};
use fdbox_host::device::Device;
use fdbox_host::device::daemon::{DaemonDevice, transport};
use fdbox_host::{FdboxCtx, Grant, Handle, MemoryDevice, Name, Quotas, WasiFdbox};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use rustix::process::{Pid, Resource, Rlimit, Signal};
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, TypedFunc};
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtx;

/// Selects the role of a re-executed child.
const ROLE_ENV: &str = "FDBOX_BENCH_ROLE";
/// The daemon's socket.
const SOCKET_ENV: &str = "FDBOX_BENCH_SOCKET";
/// The raw (baseline) socket a consumer or echo child listens on.
const RAW_ENV: &str = "FDBOX_BENCH_RAW";
/// The RLIMIT_NOFILE a child raises itself to.
const NOFILE_ENV: &str = "FDBOX_BENCH_NOFILE";
/// The parent's pid, so a child whose parent is already gone exits.
const PARENT_ENV: &str = "FDBOX_BENCH_PARENT";

/// The kernel's SCM_MAX_FD.
const FDS_PER_MESSAGE: usize = 253;
/// Longest wait for one answer of a child.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a whole phase may take before the watchdog kills the children.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// The sizes of one run.
struct Config {
    /// Fds per move (measurement 1) and per guest pass (measurement 4).
    move_fds: usize,
    /// Moves per path.
    move_reps: usize,
    /// Round trips per path (measurement 2), over `rt_rounds` alternating rounds.
    rt_iters: usize,
    rt_rounds: usize,
    /// Fds the daemon holds (measurement 3), put `hold_chunk` at a time into
    /// boxes of `hold_per_box`.
    held_fds: usize,
    hold_chunk: usize,
    hold_per_box: usize,
    /// Guest passes per device, and native breakdown passes.
    guest_reps: usize,
}

impl Config {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                move_fds: 300,
                move_reps: 1,
                rt_iters: 200,
                rt_rounds: 1,
                held_fds: 300,
                hold_chunk: 100,
                hold_per_box: 200,
                guest_reps: 1,
            }
        } else {
            Self {
                move_fds: 10_000,
                move_reps: 11,
                rt_iters: 20_000,
                rt_rounds: 5,
                held_fds: 100_000,
                hold_chunk: 1_000,
                hold_per_box: 10_000,
                guest_reps: 5,
            }
        }
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child_main(&role);
        return;
    }
    // `cargo test --benches` runs this without `--bench`: a smoke run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let cfg = Config::new(quick);
    let load_before = load_average();
    raise_nofile((4 * cfg.move_fds + 4096) as u64);
    start_watchdog();
    // `cargo bench -p fdbox-host --bench daemon -- move` (or `round-trip`,
    // `guest`, `memory`) runs only the measurements named.
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |section: &str| named.is_empty() || named.iter().any(|a| a == section);
    let dir = TempDir::new();
    let mut report = Vec::new();
    // The batch path's µs per fd (put side, get side), for measurement 4.
    let mut batch = None;
    if run("move") {
        let (section, per_fd) = move_fds(&cfg, &dir);
        report.push((1, section));
        batch = Some(per_fd);
    }
    if run("round-trip") || run("guest") {
        let (daemon, _) = spawn_daemon(&dir, "main.sock", (4 * cfg.move_fds + 8192) as u64);
        if run("round-trip") {
            report.push((2, round_trip(&cfg, &dir, &daemon)));
        }
        if run("guest") {
            report.push((4, guest_path(&cfg, &daemon, batch)));
        }
    }
    if run("memory") {
        report.push((3, daemon_memory(&cfg, &dir)));
    }
    phase_done();
    if quick {
        // `cargo test --benches`: an unoptimized smoke run, not a measurement.
        let ran: Vec<&str> = ["move", "round-trip", "memory", "guest"]
            .into_iter()
            .filter(|section| run(section))
            .collect();
        println!(
            "daemon: ran {} on {} fds each; measure with `cargo bench -p fdbox-host --bench daemon`",
            ran.join(", "),
            cfg.move_fds,
        );
        return;
    }
    let proc_file = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    println!(
        "# fdbox holder daemon benchmark\n\n{} cores, kernel {}, RLIMIT_NOFILE of the parent {}, \
         load average before / after: {} / {}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        proc_file("/proc/sys/kernel/osrelease").trim(),
        rustix::process::getrlimit(Resource::Nofile)
            .current
            .map_or("unlimited".into(), |n| n.to_string()),
        load_before,
        load_average(),
    );
    report.sort_by_key(|(number, _)| *number);
    for (_, section) in report {
        println!("{section}");
    }
}

// ---------------------------------------------------------------------------
// 1. Moving many memfds between two processes.

/// The report, and the daemon path's median µs per fd: A's side, B's side.
fn move_fds(cfg: &Config, dir: &TempDir) -> (String, (f64, f64)) {
    phase("move");
    let n = cfg.move_fds;
    let nofile = (3 * n + 4096) as u64;
    let (daemon, _) = spawn_daemon(dir, "move.sock", nofile);
    let socket = &daemon.socket;
    let raw = dir.path("raw.sock");
    let mut consumer = Proc::spawn(
        "consumer",
        &[(SOCKET_ENV, socket.as_os_str()), (RAW_ENV, raw.as_os_str())],
        nofile,
    );
    consumer.expect("listening");
    let mut producer = Proc::spawn(
        "producer",
        &[(SOCKET_ENV, socket.as_os_str()), (RAW_ENV, raw.as_os_str())],
        nofile,
    );
    producer.expect("ready");
    consumer.expect("ready");

    // A's put_many + seal and B's unseal + get_many, in ns.
    let daemon_move = |producer: &mut Proc, consumer: &mut Proc, rep: usize| -> (f64, f64) {
        let put = producer.ask(&format!("daemon move-{rep} {n}"))[0];
        let get = consumer.ask(&format!("daemon move-{rep} {n}"))[0];
        (put, get)
    };
    // A sends, B receives and closes, timed in B, in ns.
    let raw_move = |producer: &mut Proc, consumer: &mut Proc| -> f64 {
        producer.send(&format!("raw {n}"));
        producer.expect("ready");
        let total = consumer.ask(&format!("raw {n}"))[0];
        producer.answer();
        producer.ask("release");
        total
    };
    // Warm up (page faults, fd tables, allocator); not reported.
    daemon_move(&mut producer, &mut consumer, 0);
    raw_move(&mut producer, &mut consumer);
    let (mut put_seal, mut unseal_get, mut raw_total) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 1..=cfg.move_reps {
        // Alternate which path goes first, so both see the same noise.
        if rep % 2 == 0 {
            raw_total.push(raw_move(&mut producer, &mut consumer));
        }
        let (put, get) = daemon_move(&mut producer, &mut consumer, rep);
        put_seal.push(put);
        unseal_get.push(get);
        if rep % 2 == 1 {
            raw_total.push(raw_move(&mut producer, &mut consumer));
        }
    }
    let totals: Vec<f64> = put_seal
        .iter()
        .zip(&unseal_get)
        .map(|(a, b)| a + b)
        .collect();
    let ratios: Vec<f64> = totals.iter().zip(&raw_total).map(|(d, r)| d / r).collect();
    let (raw, total) = (Stats::of(&raw_total), Stats::of(&totals));
    let ratio = total.median / raw.median;
    let ms = |ns: f64| ns / 1e6;
    let row = |what: &str, s: &Stats| {
        format!(
            "| {what} | {:.2} | {:.2} | {:.2} | {:.3} | {:.2} |\n",
            ms(s.median),
            ms(s.min),
            ms(s.max),
            s.median / n as f64 / 1e3,
            s.median / raw.median,
        )
    };
    let mut out = format!(
        "## 1. Move {n} memfds from process A to process B\n\n\
         Daemon: A `put_many` + `seal`, then B `unseal` + `get_many` (separate processes, \
         the daemon a third; contents checked in B). Raw: A sends the same {n} fds in \
         {FDS_PER_MESSAGE}-fd SCM_RIGHTS messages over a SOCK_SEQPACKET socket, B receives \
         all and closes them (timed in B from its go message to the last close). \
         {} moves per path, alternating.\n\n\
         | path | median ms | min ms | max ms | median µs per fd | ratio vs raw |\n|---|---|---|---|---|---|\n",
        cfg.move_reps
    );
    out += &row("raw SCM_RIGHTS, A → B", &raw);
    let (put_seal, unseal_get) = (Stats::of(&put_seal), Stats::of(&unseal_get));
    out += &row("daemon: A put_many + seal", &put_seal);
    out += &row("daemon: B unseal + get_many", &unseal_get);
    out += &row("daemon: total per move (A + B)", &total);
    let paired = Stats::of(&ratios);
    out += &format!(
        "\nPer-move ratio daemon / raw (paired moves): median {:.2}, range {:.2} to {:.2}.\n\n\
         Targets: within 3x of raw: {} ({ratio:.2}x); under 15 ms per move: {} ({:.2} ms).\n",
        paired.median,
        paired.min,
        paired.max,
        met(ratio <= 3.0),
        met(ms(total.median) < 15.0),
        ms(total.median),
    );
    let per_fd = |s: &Stats| s.median / n as f64 / 1e3;
    (out, (per_fd(&put_seal), per_fd(&unseal_get)))
}

// ---------------------------------------------------------------------------
// 2. One fd, put and got back: latency per round trip.

fn round_trip(cfg: &Config, dir: &TempDir, daemon: &Daemon) -> String {
    phase("round trip");
    let echo_path = dir.path("echo.sock");
    let mut echo = Proc::spawn("echo", &[(RAW_ENV, echo_path.as_os_str())], 1024);
    echo.expect("ready");
    let echo_sock = seqpacket_connect(&echo_path);
    rustix::net::sockopt::set_socket_timeout(
        &echo_sock,
        rustix::net::sockopt::Timeout::Recv,
        Some(ANSWER_TIMEOUT),
    )
    .unwrap();
    let device = DaemonDevice::connect(&daemon.socket).unwrap();
    let box_name = Name::new("round-trip").unwrap();
    let entry = Name::new("x").unwrap();
    device.create_box(&box_name).unwrap();
    let mut handle = Some(Handle::new_memory_file(&entry).unwrap());
    let memfd = Handle::new_memory_file(&entry).unwrap();

    let mut daemon_loop = |iters: usize, samples: &mut Vec<f64>| {
        for _ in 0..iters {
            let start = Instant::now();
            device
                .put(&box_name, &entry, handle.take().unwrap())
                .unwrap();
            handle = Some(device.get(&box_name, &entry).unwrap());
            samples.push(start.elapsed().as_nanos() as f64);
        }
    };
    let raw_loop = |iters: usize, samples: &mut Vec<f64>| {
        let mut back = Vec::with_capacity(1);
        for _ in 0..iters {
            let start = Instant::now();
            raw_send(echo_sock.as_fd(), 1, &[memfd.fd()]);
            let bytes = raw_recv(echo_sock.as_fd(), &mut back);
            assert!(bytes == 1 && back.len() == 1, "echo answered wrongly");
            back.clear();
            samples.push(start.elapsed().as_nanos() as f64);
        }
    };
    let warm = (cfg.rt_iters / 20).max(10);
    let per_round = cfg.rt_iters / cfg.rt_rounds;
    let peers = [echo.pid(), daemon.pid()];
    let mut rows = Vec::new();
    for placement in Placement::all() {
        if !placement.apply(&peers) {
            continue;
        }
        daemon_loop(warm, &mut Vec::new());
        raw_loop(warm, &mut Vec::new());
        let (mut daemon_ns, mut raw_ns) = (Vec::new(), Vec::new());
        for round in 0..cfg.rt_rounds {
            if round % 2 == 0 {
                raw_loop(per_round, &mut raw_ns);
                daemon_loop(per_round, &mut daemon_ns);
            } else {
                daemon_loop(per_round, &mut daemon_ns);
                raw_loop(per_round, &mut raw_ns);
            }
        }
        rows.push((placement, Stats::of(&raw_ns), Stats::of(&daemon_ns)));
    }
    Placement::AsScheduled.apply(&peers);
    device.delete_box(&box_name).unwrap();
    drop(echo_sock); // the echo child exits on end of file
    let us = |ns: f64| ns / 1e3;
    let mut out = format!(
        "## 2. One fd: put + get round trip\n\n\
         Daemon: `DaemonDevice::put` then `get` of the same memfd, one entry, from this \
         process to the daemon process (a put is one request/reply with the fd; a get \
         is one request/reply carrying the fd back plus a one-way ack). Raw: the same \
         memfd sent over a SOCK_SEQPACKET socket to another process that sends it \
         straight back (and closes its copy); the returned copy is closed. \
         {} iterations per path and placement, timed one by one, in {} alternating \
         rounds. Placement: the client thread and the peer process (echo or daemon, \
         every thread) pinned to one CPU, pinned to two different CPUs, or left to \
         the scheduler.\n\n\
         | placement | raw median µs | raw p99 µs | daemon median µs | daemon p99 µs | daemon min µs | ratio (medians) |\n\
         |---|---|---|---|---|---|---|\n",
        cfg.rt_iters, cfg.rt_rounds,
    );
    for (placement, r, d) in &rows {
        out += &format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            placement.describe(),
            us(r.median),
            us(r.p99),
            us(d.median),
            us(d.p99),
            us(d.min),
            d.median / r.median,
        );
    }
    out
}

/// Where the client thread and its peer processes run.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Placement {
    SameCpu,
    TwoCpus,
    AsScheduled,
}

impl Placement {
    /// The scheduler's own choice first, before any pinning disturbs it.
    fn all() -> [Placement; 3] {
        [
            Placement::AsScheduled,
            Placement::SameCpu,
            Placement::TwoCpus,
        ]
    }

    fn describe(self) -> &'static str {
        match self {
            Placement::SameCpu => "same CPU",
            Placement::TwoCpus => "two CPUs",
            Placement::AsScheduled => "as scheduled",
        }
    }

    /// Pin the calling thread and every thread of `peers`; false if this
    /// placement is impossible here (one CPU).
    fn apply(self, peers: &[u32]) -> bool {
        let cpus = allowed_cpus();
        let (mine, theirs) = match self {
            Placement::SameCpu => (&cpus[..1], &cpus[..1]),
            Placement::TwoCpus if cpus.len() >= 2 => (&cpus[..1], &cpus[1..2]),
            Placement::TwoCpus => return false,
            Placement::AsScheduled => (&cpus[..], &cpus[..]),
        };
        assert!(
            set_affinity(0, mine),
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
        for pid in peers {
            pin_process(*pid, theirs);
        }
        true
    }
}

/// The CPUs this process could run on when it started.
fn allowed_cpus() -> Vec<usize> {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| {
        // SAFETY: a zeroed cpu_set_t is an empty set; the kernel writes at
        // most its size.
        let set = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return vec![0];
            }
            set
        };
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE.
            .filter(|cpu| unsafe { libc::CPU_ISSET(*cpu, &set) })
            .collect()
    })
    .clone()
}

/// Pin thread `tid` (0: the calling thread) to `cpus`.
fn set_affinity(tid: i32, cpus: &[usize]) -> bool {
    // SAFETY: a zeroed cpu_set_t is an empty set; every cpu is below
    // CPU_SETSIZE (they came from sched_getaffinity).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in cpus {
            libc::CPU_SET(*cpu, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Pin every thread of process `pid` to `cpus` (a thread that ended
/// meanwhile is skipped).
fn pin_process(pid: u32, cpus: &[usize]) {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
            set_affinity(tid, cpus);
        }
    }
}

// ---------------------------------------------------------------------------
// 3. The daemon's memory with many held fds.

fn daemon_memory(cfg: &Config, dir: &TempDir) -> String {
    phase("memory");
    let want = cfg.held_fds;
    let (daemon, nofile) = spawn_daemon(dir, "hold.sock", (want + 8192) as u64);
    // What `Limits::from_rlimit` leaves the daemon (its RLIMIT_NOFILE less
    // its headroom of 2 x 253 + 64), less a margin for its connections.
    let budget = (nofile as usize).saturating_sub(2 * FDS_PER_MESSAGE + 64 + 64);
    let held = want.min(budget);
    let device = DaemonDevice::connect(&daemon.socket).unwrap();
    let boxes: Vec<Name> = (0..held.div_ceil(cfg.hold_per_box))
        .map(|i| Name::new(format!("hold-{i}")).unwrap())
        .collect();
    for b in &boxes {
        device.create_box(b).unwrap();
    }
    // A request of each kind once, so the baseline has the daemon's buffers.
    device.status(&boxes[0]).unwrap();
    let mut readings = vec![(0, proc_status(daemon.pid()))];
    let mut put = 0;
    while put < held {
        let box_name = &boxes[put / cfg.hold_per_box];
        let chunk = cfg
            .hold_chunk
            .min(held - put)
            .min(cfg.hold_per_box - put % cfg.hold_per_box);
        let entries: Vec<(Name, Handle)> = (put..put + chunk)
            .map(|i| {
                let name = Name::new(format!("e{i}")).unwrap();
                let handle = Handle::new_memory_file(&name).unwrap();
                (name, handle)
            })
            .collect();
        // Our copies close when the batch is accepted.
        device.put_many(box_name, entries).unwrap();
        put += chunk;
        if put % cfg.hold_per_box == 0 || put == held {
            readings.push((put, proc_status(daemon.pid())));
        }
    }
    let total: usize = boxes
        .iter()
        .map(|b| device.status(b).unwrap().entries)
        .sum();
    assert_eq!(total, held, "the daemon does not hold every fd put");
    let open = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid())).map_or(0, |d| d.count());
    for b in &boxes {
        device.delete_box(b).unwrap();
    }
    let deleted = proc_status(daemon.pid());
    drop(device);
    drop(daemon);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let (empty, full) = (&readings[0].1, &readings[readings.len() - 1].1);
    let mut out = format!(
        "## 3. Daemon memory holding {held} fds\n\n\
         A fresh daemon process (RLIMIT_NOFILE {nofile}); one client puts {held} memfds in \
         batches of {} (`put_many`, closing its copies) into {} boxes of up to {}, reading \
         the daemon's /proc/PID/status after each box. The daemon had {open} fds open when \
         full. Kernel memory of the memfds themselves (inodes, files, the fd table) is not \
         in VmRSS.\n\n\
         | daemon state | VmRSS MiB | VmHWM MiB |\n|---|---|---|\n",
        cfg.hold_chunk,
        boxes.len(),
        cfg.hold_per_box,
    );
    for (n, status) in &readings {
        let state = if *n == 0 {
            "empty (boxes created, one client connected)".to_string()
        } else {
            format!("holding {n} fds")
        };
        out += &format!(
            "| {state} | {:.1} | {:.1} |\n",
            mib(status.rss),
            mib(status.hwm)
        );
    }
    let per_fd = (full.rss.saturating_sub(empty.rss) * 1024) as f64 / held as f64;
    out += &format!(
        "| after deleting every box | {:.1} | {:.1} |\n\n\
         Per held fd: {per_fd:.0} bytes of VmRSS over the empty daemon.\n\n",
        mib(deleted.rss),
        mib(deleted.hwm),
    );
    if held >= 100_000 {
        out += &format!(
            "Target: under 64 MiB with 100,000 fds: {} (VmHWM {:.1} MiB).\n",
            met(mib(full.hwm.max(full.rss)) < 64.0),
            mib(full.hwm),
        );
    } else {
        // Linear in the fds held (one map entry each): extrapolate.
        let at_100k = mib(full.hwm.max(full.rss)) + per_fd * (100_000 - held) as f64 / 1048576.0;
        out += &format!(
            "Only {held} of {want} fds: RLIMIT_NOFILE could not be raised above {nofile} \
             (its hard limit; raising it needs CAP_SYS_RESOURCE). Target: under 64 MiB with \
             100,000 fds: not measured; extrapolated at {per_fd:.0} bytes per fd from VmHWM: \
             {at_100k:.1} MiB ({}).\n",
            if at_100k < 64.0 {
                "would be met"
            } else {
                "would NOT be met"
            },
        );
    }
    out
}

struct ProcStatus {
    rss: u64,
    hwm: u64,
}

/// VmRSS and VmHWM of `pid`, in KiB.
fn proc_status(pid: u32) -> ProcStatus {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    ProcStatus {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
    }
}

// ---------------------------------------------------------------------------
// 4. The guest path: one put and one get per fd.

/// One guest pass: a store and instance for the putting guest and a new one
/// for the getting guest, each timed on its call only.
struct Guest {
    engine: Engine,
    linker: Linker<WasiFdbox>,
    component: Component,
}

impl Guest {
    fn new() -> Self {
        let engine = Engine::default();
        let mut linker = Linker::<WasiFdbox>::new(&engine);
        WasiFdbox::add_to_linker_sync(&mut linker).unwrap();
        let component = Component::from_file(&engine, fdbox_guest_artifacts::BENCH).unwrap();
        Self {
            engine,
            linker,
            component,
        }
    }

    fn call(&self, ctx: FdboxCtx, func: &str, box_name: &str, n: u32) -> f64 {
        let mut store = Store::new(
            &self.engine,
            WasiFdbox::new(WasiCtx::builder().build(), ctx),
        );
        let instance = self
            .linker
            .instantiate(&mut store, &self.component)
            .unwrap();
        let f: TypedFunc<(&str, u32), (u32,)> = instance.get_typed_func(&mut store, func).unwrap();
        let start = Instant::now();
        let (done,) = f.call(&mut store, (box_name, n)).unwrap();
        let ns = start.elapsed().as_nanos() as f64;
        assert_eq!(done, n, "{func} did {done} of {n}");
        ns
    }

    /// Put `n` memfds from one instance, get them from a new one: ns per fd.
    fn pass(&self, make_ctx: &dyn Fn() -> FdboxCtx, box_name: &str, n: u32) -> (f64, f64) {
        let ctx = make_ctx();
        let name = ctx.create_box(box_name).unwrap();
        let put = self.call(ctx.clone(), "put-memfds", box_name, n);
        // The getter is another instance, with its own context (and, on the
        // daemon, its own connection), as after a restart.
        let getter = make_ctx();
        let get = self.call(getter, "get-all", box_name, n);
        assert_eq!(ctx.device().status(&name).unwrap().entries, 0);
        ctx.delete_box(box_name).unwrap();
        (put / n as f64, get / n as f64)
    }
}

fn guest_ctx(device: Arc<dyn Device>, entries: usize) -> FdboxCtx {
    FdboxCtx::builder(device)
        .grant(Grant::prefix("guest").unwrap())
        .quotas(Quotas {
            max_boxes: Quotas::DEFAULT_MAX_BOXES,
            max_entries_per_box: entries,
            ..Quotas::default()
        })
        .build()
}

fn guest_path(cfg: &Config, daemon: &Daemon, batch: Option<(f64, f64)>) -> String {
    phase("guest path");
    let n = cfg.move_fds;
    let guest = Guest::new();
    let socket = daemon.socket.clone();
    let on_daemon = move || {
        let device: Arc<dyn Device> = Arc::new(DaemonDevice::connect(&socket).unwrap());
        guest_ctx(device, n)
    };
    let memory: Arc<dyn Device> = Arc::new(MemoryDevice::new());
    let on_memory = move || guest_ctx(memory.clone(), n);
    // Warm up both (compiled code, page faults).
    guest.pass(&on_daemon, "guest-warm", n as u32);
    guest.pass(&on_memory, "guest-warm", n as u32);
    // The daemon path where the scheduler puts it, then everything else with
    // this thread and the daemon on one CPU (see measurement 2: in this VM a
    // wake-up across CPUs costs tens of µs, which would swamp the rest).
    let (mut s_put, mut s_get) = (vec![], vec![]);
    for rep in 0..cfg.guest_reps {
        let (p, g) = guest.pass(&on_daemon, &format!("guest-s{rep}"), n as u32);
        s_put.push(p);
        s_get.push(g);
    }
    Placement::SameCpu.apply(&[daemon.pid()]);
    let (mut d_put, mut d_get, mut m_put, mut m_get) = (vec![], vec![], vec![], vec![]);
    for rep in 0..cfg.guest_reps {
        let (p, g) = guest.pass(&on_daemon, &format!("guest-d{rep}"), n as u32);
        d_put.push(p);
        d_get.push(g);
        let (p, g) = guest.pass(&on_memory, &format!("guest-m{rep}"), n as u32);
        m_put.push(p);
        m_get.push(g);
    }

    // The native calls the guest's put and get make, on the same daemon.
    let ctx = on_daemon();
    let device = ctx.device().clone();
    let names: Vec<Name> = (0..n).map(|i| Name::new(i.to_string()).unwrap()).collect();
    let memfds = || -> Vec<Handle> {
        names
            .iter()
            .map(|name| Handle::new_memory_file(name).unwrap())
            .collect()
    };
    let (mut create, mut status, mut ctx_put, mut dev_put, mut ctx_get, mut dev_get) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for rep in 0..cfg.guest_reps {
        let box_name = ctx.create_box(&format!("guest-native{rep}")).unwrap();
        let start = Instant::now();
        for name in &names {
            drop(Handle::new_memory_file(name).unwrap());
        }
        create.push(start.elapsed().as_nanos() as f64 / n as f64);
        let start = Instant::now();
        for _ in 0..n {
            device.status(&box_name).unwrap();
        }
        status.push(start.elapsed().as_nanos() as f64 / n as f64);
        // FdboxCtx::put: grant check, status (quota), put.
        let handles = memfds();
        let start = Instant::now();
        for (name, h) in names.iter().zip(handles) {
            ctx.put(&box_name, name.as_str(), h).unwrap();
        }
        ctx_put.push(start.elapsed().as_nanos() as f64 / n as f64);
        let start = Instant::now();
        let got: Vec<Handle> = names
            .iter()
            .map(|name| ctx.get(&box_name, name.as_str()).unwrap())
            .collect();
        ctx_get.push(start.elapsed().as_nanos() as f64 / n as f64);
        drop(got);
        // The device alone: one request per put, no status.
        let handles = memfds();
        let start = Instant::now();
        for (name, h) in names.iter().zip(handles) {
            device.put(&box_name, name, h).unwrap();
        }
        dev_put.push(start.elapsed().as_nanos() as f64 / n as f64);
        let start = Instant::now();
        let got: Vec<Handle> = names
            .iter()
            .map(|name| device.get(&box_name, name).unwrap())
            .collect();
        dev_get.push(start.elapsed().as_nanos() as f64 / n as f64);
        drop(got);
        device.delete_box(&box_name).unwrap();
    }
    Placement::AsScheduled.apply(&[daemon.pid()]);

    let med = |v: &[f64]| Stats::of(v).median / 1e3;
    let (dp, dg, mp, mg) = (med(&d_put), med(&d_get), med(&m_put), med(&m_get));
    let (sp, sg) = (med(&s_put), med(&s_get));
    let (cr, st, cp, vp, cg, vg) = (
        med(&create),
        med(&status),
        med(&ctx_put),
        med(&dev_put),
        med(&ctx_get),
        med(&dev_get),
    );
    let mut out = format!(
        "## 4. Guest path: {n} memfds, one put and one get per fd\n\n\
         A `bench` component instance creates {n} memory files and puts each \
         (`put-memfds`); a new instance, with its own context (and its own daemon \
         connection), gets them all back by name (`get-all`, descriptors closed when the \
         call returns). Only the calls are timed, not instantiation. {} passes per device, \
         alternating; medians. This thread and the daemon run pinned to one CPU, except \
         in the row \"as scheduled\".\n\n\
         | path | µs per fd: put side | µs per fd: get side | µs per fd: total |\n|---|---|---|---|\n\
         | guest, daemon device | {dp:.2} | {dg:.2} | {:.2} |\n\
         | guest, daemon device, as scheduled | {sp:.2} | {sg:.2} | {:.2} |\n\
         | guest, in-process `MemoryDevice` | {mp:.2} | {mg:.2} | {:.2} |\n\
         | native `FdboxCtx` on the daemon (no memfd creation) | {cp:.2} | {cg:.2} | {:.2} |\n\
         | native `DaemonDevice::put` / `get` (no quota check) | {vp:.2} | {vg:.2} | {:.2} |\n\n\
         Parts, µs per call: `memfd_create` + close {cr:.2}; `DaemonDevice::status` (one \
         request/reply without fds) {st:.2}.\n\n\
         Where the guest's time per fd goes on the daemon: put side {dp:.2} = memfd \
         creation and component boundary (the same guest on `MemoryDevice`: {mp:.2}) + \
         daemon requests {:.2} (native `FdboxCtx::put`: {cp:.2}, of which the quota \
         `status` request {:.2} and the put request {vp:.2}); get side {dg:.2} = \
         component boundary ({mg:.2}) + daemon request {:.2} (native `FdboxCtx::get`: \
         {cg:.2}).\n",
        cfg.guest_reps,
        dp + dg,
        sp + sg,
        mp + mg,
        cp + cg,
        vp + vg,
        dp - mp,
        cp - vp,
        dg - mg,
    );
    if let Some((bp, bg)) = batch {
        out += &format!(
            "\nThe library batch path of measurement 1 (A `put_many` + `seal`, B `unseal` + \
             `get_many`, 253 fds per frame), µs per fd: put side {bp:.2}, get side {bg:.2}, \
             total {:.2}; the guest path on the daemon costs {:.1}x as much per fd.\n",
            bp + bg,
            (dp + dg) / (bp + bg),
        );
    }
    out += "\n";
    out
}

// ---------------------------------------------------------------------------
// Children.

fn child_main(role: &str) {
    // Die with the parent, and exit now if it is already gone.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL)).unwrap();
    let parent: i32 = env(PARENT_ENV).parse().unwrap();
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(parent) {
        return;
    }
    raise_nofile(env(NOFILE_ENV).parse().unwrap());
    match role {
        "daemon" => daemon_role(),
        "producer" => producer_role(),
        "consumer" => consumer_role(),
        "echo" => echo_role(),
        other => panic!("unknown role {other:?}"),
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// The holder daemon, as `fdbox daemon` runs it (but for the shares).
fn daemon_role() {
    let listener = transport::listen(Path::new(&env(SOCKET_ENV))).unwrap();
    let nofile = rustix::process::getrlimit(Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    println!("ready {nofile}");
    // One client fills the budget here (measurement 3): no per-client
    // shares.
    let limits = Limits {
        uid_share_percent: 100,
        process_share_percent: 100,
        ..Limits::from_rlimit()
    };
    fdbox_host::daemon::serve(&Holder::new(limits), listener).unwrap();
}

/// `n` memfds named `e0`..., each holding its index.
fn make_memfds(n: usize) -> Vec<(Name, Handle)> {
    (0..n)
        .map(|i| {
            let name = Name::new(format!("e{i}")).unwrap();
            let handle = Handle::new_memory_file(&name).unwrap();
            rustix::io::pwrite(handle.fd(), &(i as u64).to_le_bytes(), 0).unwrap();
            (name, handle)
        })
        .collect()
}

/// Process A: puts memfds into the daemon, or sends them raw to B.
fn producer_role() {
    let device = DaemonDevice::connect(env(SOCKET_ENV)).unwrap();
    let raw = seqpacket_connect(Path::new(&env(RAW_ENV)));
    // The memfds sent raw, kept until B is done: closing them while B still
    // receives would leave B the last reference of each and make B pay for
    // freeing the files, which no path of the daemon's measurement does.
    let mut sent = Vec::new();
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["daemon", box_name, n] => {
                let box_name = Name::new(box_name).unwrap();
                device.create_box(&box_name).unwrap();
                let entries = make_memfds(n.parse().unwrap());
                let start = Instant::now();
                device.put_many(&box_name, entries).unwrap();
                device.seal(&box_name).unwrap();
                println!("ok {}", start.elapsed().as_nanos());
            }
            ["raw", n] => {
                let memfds = make_memfds(n.parse().unwrap());
                println!("ready");
                let mut go = Vec::new();
                assert_eq!(raw_recv(raw.as_fd(), &mut go), 1, "no go from B");
                let start = Instant::now();
                for chunk in memfds.chunks(FDS_PER_MESSAGE) {
                    let fds: Vec<BorrowedFd<'_>> = chunk.iter().map(|(_, h)| h.fd()).collect();
                    raw_send(raw.as_fd(), 0, &fds);
                }
                println!("ok {}", start.elapsed().as_nanos());
                sent = memfds;
            }
            ["release"] => {
                sent.clear();
                println!("ok");
            }
            _ => panic!("producer: unknown command {line:?}"),
        }
    }
}

/// Process B: gets memfds from the daemon, or receives them raw from A.
fn consumer_role() {
    let raw_path = PathBuf::from(env(RAW_ENV));
    let listener = seqpacket_listen(&raw_path);
    println!("listening");
    let raw = rustix::net::accept_with(&listener, SocketFlags::CLOEXEC).unwrap();
    drop(listener);
    let device = DaemonDevice::connect(env(SOCKET_ENV)).unwrap();
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["daemon", box_name, n] => {
                let n: usize = n.parse().unwrap();
                let box_name = Name::new(box_name).unwrap();
                let names: Vec<Name> = (0..n)
                    .map(|i| Name::new(format!("e{i}")).unwrap())
                    .collect();
                let start = Instant::now();
                device.unseal(&box_name).unwrap();
                let handles = device.get_many(&box_name, &names).unwrap();
                let ns = start.elapsed().as_nanos();
                assert_eq!(handles.len(), n);
                for i in [0, n / 3, n / 2, n - 1] {
                    let mut bytes = [0u8; 8];
                    rustix::io::pread(handles[i].fd(), &mut bytes, 0).unwrap();
                    assert_eq!(u64::from_le_bytes(bytes), i as u64, "contents of e{i}");
                }
                device.delete_box(&box_name).unwrap();
                drop(handles);
                println!("ok {ns}");
            }
            ["raw", n] => {
                let n: usize = n.parse().unwrap();
                let mut fds = Vec::with_capacity(FDS_PER_MESSAGE);
                let mut received = 0;
                let start = Instant::now();
                raw_send(raw.as_fd(), 1, &[]);
                while received < n {
                    let bytes = raw_recv(raw.as_fd(), &mut fds);
                    assert_eq!(bytes, 1, "A closed the raw socket");
                    received += fds.len();
                    fds.clear(); // closes them
                }
                let ns = start.elapsed().as_nanos();
                assert_eq!(received, n);
                println!("ok {ns}");
            }
            _ => panic!("consumer: unknown command {line:?}"),
        }
    }
}

/// The raw ping-pong's peer: sends every fd straight back.
fn echo_role() {
    let listener = seqpacket_listen(Path::new(&env(RAW_ENV)));
    println!("ready");
    let conn = rustix::net::accept_with(&listener, SocketFlags::CLOEXEC).unwrap();
    let mut fds = Vec::with_capacity(1);
    loop {
        let bytes = raw_recv(conn.as_fd(), &mut fds);
        if bytes == 0 && fds.is_empty() {
            return;
        }
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        raw_send(conn.as_fd(), 1, &borrowed);
        drop(borrowed);
        fds.clear();
    }
}

// ---------------------------------------------------------------------------
// Raw SCM_RIGHTS, straight on rustix (the baseline: no framing, no daemon).

fn raw_send(socket: BorrowedFd<'_>, byte: u8, fds: &[BorrowedFd<'_>]) {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    loop {
        match rustix::net::sendmsg(
            socket,
            &[IoSlice::new(&[byte])],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return,
            Err(Errno::INTR) => continue,
            Err(e) => panic!("sendmsg: {e}"),
        }
    }
}

/// Receive one message; its fds are appended to `fds`. Returns its length.
fn raw_recv(socket: BorrowedFd<'_>, fds: &mut Vec<OwnedFd>) -> usize {
    let mut buf = [0u8; 16];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(msg) => break msg,
            Err(Errno::INTR) => continue,
            Err(e) => panic!("recvmsg: {e}"),
        }
    };
    fds.extend(transport::take_fds(&mut control));
    assert!(
        !msg.flags.contains(ReturnFlags::CTRUNC),
        "fds dropped by the kernel: RLIMIT_NOFILE too low"
    );
    msg.bytes
}

fn seqpacket_socket() -> OwnedFd {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap()
}

fn seqpacket_listen(path: &Path) -> OwnedFd {
    let fd = seqpacket_socket();
    rustix::net::bind(&fd, &SocketAddrUnix::new(path).unwrap()).unwrap();
    rustix::net::listen(&fd, 8).unwrap();
    fd
}

fn seqpacket_connect(path: &Path) -> OwnedFd {
    let fd = seqpacket_socket();
    rustix::net::connect(&fd, &SocketAddrUnix::new(path).unwrap())
        .unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    fd
}

// ---------------------------------------------------------------------------
// Process management: children, the watchdog, the temporary directory.

/// Pids of live children, killed by the watchdog.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// The running phase and when it must be over.
static DEADLINE: Mutex<Option<(&str, Instant)>> = Mutex::new(None);

fn phase(name: &'static str) {
    *DEADLINE.lock().unwrap() = Some((name, Instant::now() + PHASE_TIMEOUT));
}

fn phase_done() {
    *DEADLINE.lock().unwrap() = None;
}

fn kill_children() {
    for pid in CHILDREN.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        if let Some(pid) = Pid::from_raw(*pid as i32) {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
    }
}

/// Kills the children of a phase that overran, so that the parent's blocked
/// call fails and it unwinds (cleaning up); exits if even that hangs.
fn start_watchdog() {
    std::thread::spawn(|| {
        let mut overran: Option<Instant> = None;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if let Some(since) = overran {
                if since.elapsed() > Duration::from_secs(30) {
                    eprintln!("daemon bench: still stuck after killing its children; exiting");
                    kill_children();
                    std::process::exit(2);
                }
                continue;
            }
            let deadline = *DEADLINE.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((name, at)) = deadline
                && Instant::now() > at
            {
                eprintln!(
                    "daemon bench: phase {name:?} overran {PHASE_TIMEOUT:?}; killing its children"
                );
                kill_children();
                overran = Some(Instant::now());
            }
        }
    });
}

/// A child running one role, answering one line per command.
struct Proc {
    role: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    fn spawn(role: &'static str, envs: &[(&str, &std::ffi::OsStr)], nofile: u64) -> Proc {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env(ROLE_ENV, role)
            .env(PARENT_ENV, std::process::id().to_string())
            .env(NOFILE_ENV, nofile.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {role}: {e}"));
        CHILDREN.lock().unwrap().push(child.id());
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            role,
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("the {} is gone: {e}", self.role));
    }

    /// The next line, within `ANSWER_TIMEOUT`.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(ANSWER_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("the {} did not answer within {ANSWER_TIMEOUT:?}", self.role)
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Give it a moment to be reaped, without waiting for good.
                std::thread::sleep(Duration::from_millis(100));
                let status = self.child.try_wait();
                panic!("the {} closed its output ({status:?})", self.role)
            }
        }
    }

    fn expect(&mut self, word: &str) -> Vec<String> {
        let line = self.line();
        let mut words = line.split_whitespace().map(str::to_string);
        assert_eq!(
            words.next().as_deref(),
            Some(word),
            "the {} said {line:?}",
            self.role
        );
        words.collect()
    }

    /// The numbers of an `ok` line.
    fn answer(&mut self) -> Vec<f64> {
        self.expect("ok")
            .iter()
            .map(|w| w.parse().unwrap())
            .collect()
    }

    fn ask(&mut self, command: &str) -> Vec<f64> {
        self.send(command);
        self.answer()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        CHILDREN
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| *p != pid);
    }
}

/// A daemon child and its socket.
struct Daemon {
    proc: Proc,
    socket: PathBuf,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The child is killed by `Proc`'s drop; its socket file stays behind.
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Start a daemon listening at `dir/name` with RLIMIT_NOFILE raised towards
/// `nofile`; returns it once it listens, with the limit it got.
fn spawn_daemon(dir: &TempDir, name: &str, nofile: u64) -> (Daemon, u64) {
    let socket = dir.path(name);
    let mut proc = Proc::spawn("daemon", &[(SOCKET_ENV, socket.as_os_str())], nofile);
    let got = proc.expect("ready")[0].parse().unwrap();
    (Daemon { proc, socket }, got)
}

/// Raise this process's RLIMIT_NOFILE to `want` (the hard limit too, which
/// needs CAP_SYS_RESOURCE), else as far as the hard limit allows.
fn raise_nofile(want: u64) {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|cur| cur >= want) {
        return;
    }
    let raised = Rlimit {
        current: Some(want),
        maximum: Some(limit.maximum.map_or(want, |max| max.max(want))),
    };
    if rustix::process::setrlimit(Resource::Nofile, raised).is_err() {
        let _ = rustix::process::setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
}

/// A directory under `std::env::temp_dir()` for the sockets, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    const PREFIX: &str = "fdbox-bench-daemon-";

    fn new() -> Self {
        Self::remove_stale();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("{}{}-{nanos}", Self::PREFIX, std::process::id()));
        // Private: fdbox uses no socket in a directory others may enter.
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Remove the directories of runs killed by a signal (no unwinding, so
    /// no drop), recognised by the pid in their name being gone.
    fn remove_stale() {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(Self::PREFIX)) else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or_default();
            if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Statistics.

struct Stats {
    median: f64,
    min: f64,
    max: f64,
    p99: f64,
}

impl Stats {
    fn of(values: &[f64]) -> Self {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Self {
            median: at(0.5),
            min: v[0],
            max: v[v.len() - 1],
            p99: at(0.99),
        }
    }
}

/// The 1, 5 and 15 minute load averages: other work on the machine.
fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
