//! What one kernel-device ioctl costs under `fdbox emulate`, next to the same
//! operation on the holder daemon, measured in the same process and run.
//!
//! The parent starts a holder daemon (this build's `fdbox daemon`), then
//! runs this binary twice more under `fdbox emulate --device fdbox` and
//! `--device liveupdate`, with `FDBOX_BENCH_CHILD` set. Each child measures,
//! in alternating rounds:
//!
//! - the raw ioctls of its device (FDBox: `SEAL`+`UNSEAL`, `PUT_FD`+`GET_FD`;
//!   Live Update: `CREATE_SESSION`+close, `PRESERVE_FD`), each a round trip
//!   through the seccomp supervisor;
//! - the same operations through the device's `Device` API
//!   (`FdboxDevice`, `LiveUpdateDevice`), which adds the manifest
//!   bookkeeping;
//! - the equivalent operations on the daemon (`DaemonDevice`: put+get,
//!   seal+unseal), one SCM_RIGHTS round trip each;
//! - `openat` + `close` of `/dev/null`: an open the filter sends to the
//!   supervisor and the supervisor lets through, the floor of any
//!   emulated call.
//!
//! `cargo bench --bench kernel_ioctl` prints a Markdown report (needs root:
//! the emulated FDBox checks CAP_SYS_ADMIN); BENCHMARKS.md holds the latest
//! one. Without `--bench` (as `cargo test --benches` runs it, unoptimized) it
//! runs every path a few times and prints one line and no figures.

use fdbox_host::DaemonDevice;
use fdbox_host::device::Device;
use fdbox_host::device::kernel::liveupdate_uapi::{
    LIVEUPDATE_DEVICE, LIVEUPDATE_IOCTL_CREATE_SESSION, LIVEUPDATE_SESSION_PRESERVE_FD,
    LiveupdateSession, LiveupdateSessionFd, session_name_field,
};
use fdbox_host::device::kernel::uapi::{
    CONTROL_DEVICE, DEVICE_DIR, FDBOX_CREATE_BOX, FDBOX_DELETE_BOX, FDBOX_GET_FD, FDBOX_PUT_FD,
    FDBOX_SEAL, FDBOX_UNSEAL, FdboxCreateBox, FdboxGetFd, FdboxPutFd, name_field,
};
use fdbox_host::device::kernel::{FdboxDevice, LiveUpdateDevice};
use fdbox_host::{Handle, Name};
use rustix::fs::{MemfdFlags, Mode, OFlags};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which device a child measures; unset in the parent.
const CHILD_ENV: &str = "FDBOX_BENCH_CHILD";
/// The daemon's socket.
const SOCKET_ENV: &str = "FDBOX_BENCH_SOCKET";
/// `full` or `quick`.
const MODE_ENV: &str = "FDBOX_BENCH_MODE";

/// Rounds and operations per measurement per round.
fn sizes(full: bool) -> (usize, usize) {
    if full { (11, 2000) } else { (1, 20) }
}

fn name(s: &str) -> Name {
    Name::new(s).expect("a valid name")
}

fn memfd() -> OwnedFd {
    rustix::fs::memfd_create("bench", MemfdFlags::CLOEXEC).expect("memfd_create")
}

/// A raw ioctl with a UAPI struct (or none); the result or the errno.
///
/// # Safety
/// `arg` must be null or point at the struct the request reads and writes.
unsafe fn raw_ioctl(fd: BorrowedFd<'_>, request: u32, arg: *mut libc::c_void) -> i32 {
    // SAFETY: the caller pairs `request` with its struct, per this fn's
    // contract; the fd is borrowed for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    assert!(
        r >= 0,
        "ioctl {request:#x} failed: {}",
        std::io::Error::last_os_error()
    );
    r
}

/// Nanoseconds per unit of `units` units of work done by `work`.
fn per_unit(units: usize, work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    start.elapsed().as_nanos() as f64 / units as f64
}

/// One round of measurements, by name, in ns per operation.
type Round = Vec<(&'static str, f64)>;

fn daemon_round(daemon: &DaemonDevice, ops: usize) -> Round {
    let b = name(&format!("bench-{}", std::process::id()));
    let _ = daemon.delete_box(&b);
    daemon.create_box(&b).unwrap();
    let entry = name("m");
    let mut handle = Some(Handle::from_fd(memfd()).unwrap());
    let put_get = per_unit(ops, || {
        for _ in 0..ops {
            daemon.put(&b, &entry, handle.take().unwrap()).unwrap();
            handle = Some(daemon.get(&b, &entry).unwrap());
        }
    });
    daemon.put(&b, &entry, handle.take().unwrap()).unwrap();
    let seal_unseal = per_unit(ops, || {
        for _ in 0..ops {
            daemon.seal(&b).unwrap();
            daemon.unseal(&b).unwrap();
        }
    });
    daemon.delete_box(&b).unwrap();
    vec![
        ("daemon put+get", put_get),
        ("daemon seal+unseal", seal_unseal),
    ]
}

fn passthrough_open(ops: usize) -> f64 {
    per_unit(ops, || {
        for _ in 0..ops {
            drop(
                rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                    .unwrap(),
            );
        }
    })
}

fn fdbox_round(ops: usize) -> Round {
    let control = rustix::fs::open(
        CONTROL_DEVICE,
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open /dev/fdbox/fdbox (run under fdbox emulate)");
    let box_name = format!("bench-raw-{}", std::process::id());
    let mut create = FdboxCreateBox {
        flags: 0,
        name: name_field(&box_name).unwrap(),
    };
    // SAFETY: FDBOX_CREATE_BOX takes a `struct fdbox_create_box`.
    unsafe { raw_ioctl(control.as_fd(), FDBOX_CREATE_BOX, (&raw mut create).cast()) };
    let node = rustix::fs::open(
        Path::new(DEVICE_DIR).join(&box_name),
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();

    let seal_unseal = per_unit(2 * ops, || {
        for _ in 0..ops {
            // SAFETY: SEAL and UNSEAL take no argument.
            unsafe {
                raw_ioctl(node.as_fd(), FDBOX_SEAL, std::ptr::null_mut());
                raw_ioctl(node.as_fd(), FDBOX_UNSEAL, std::ptr::null_mut());
            }
        }
    });

    let file = memfd();
    let put_get = per_unit(2 * ops, || {
        for _ in 0..ops {
            // The driver closes the fd it is given; the emulator cannot, and
            // leaves it open: give it a duplicate and close that either way
            // (EBADF under a real driver, harmless in this one thread).
            let dup = rustix::io::fcntl_dupfd_cloexec(&file, 0).unwrap();
            let mut put = FdboxPutFd {
                flags: 0,
                fd: dup.as_raw_fd() as u32,
                pad: 0,
                name: name_field("m").unwrap(),
            };
            // SAFETY: PUT_FD takes a `struct fdbox_put_fd`.
            unsafe { raw_ioctl(node.as_fd(), FDBOX_PUT_FD, (&raw mut put).cast()) };
            // SAFETY: the number is this thread's duplicate (see above).
            unsafe { libc::close(dup.into_raw_fd()) };
            let mut get = FdboxGetFd {
                flags: 0,
                pad: 0,
                name: name_field("m").unwrap(),
            };
            // SAFETY: GET_FD takes a `struct fdbox_get_fd` and returns a new fd.
            let got = unsafe { raw_ioctl(node.as_fd(), FDBOX_GET_FD, (&raw mut get).cast()) };
            // SAFETY: GET_FD's result is a new fd nothing else owns.
            drop(unsafe { OwnedFd::from_raw_fd(got) });
        }
    });
    let mut delete = FdboxCreateBox {
        flags: 0,
        name: name_field(&box_name).unwrap(),
    };
    // SAFETY: FDBOX_DELETE_BOX takes the create struct's layout.
    unsafe { raw_ioctl(control.as_fd(), FDBOX_DELETE_BOX, (&raw mut delete).cast()) };
    drop((node, control));

    let device = FdboxDevice::open_scoped(&format!("bench-{}.", std::process::id())).unwrap();
    let (api_put_get, api_seal_unseal) = device_round(&device, ops);
    vec![
        ("FDBox SEAL / UNSEAL ioctl", seal_unseal),
        ("FDBox PUT_FD / GET_FD ioctl", put_get),
        ("FdboxDevice put+get", api_put_get),
        ("FdboxDevice seal+unseal", api_seal_unseal),
        ("openat+close passed through", passthrough_open(ops)),
    ]
}

/// put+get and seal+unseal through the `Device` API, per pair.
fn device_round(device: &dyn Device, ops: usize) -> (f64, f64) {
    let b = name("api");
    device.create_box(&b).unwrap();
    let entry = name("m");
    let mut handle = Some(Handle::from_fd(memfd()).unwrap());
    let put_get = per_unit(ops, || {
        for _ in 0..ops {
            device.put(&b, &entry, handle.take().unwrap()).unwrap();
            handle = Some(device.get(&b, &entry).unwrap());
        }
    });
    device.put(&b, &entry, handle.take().unwrap()).unwrap();
    let seal_unseal = per_unit(ops, || {
        for _ in 0..ops {
            device.seal(&b).unwrap();
            device.unseal(&b).unwrap();
        }
    });
    device.delete_box(&b).unwrap();
    (put_get, seal_unseal)
}

fn session(device: BorrowedFd<'_>, name: &str) -> OwnedFd {
    let mut arg = LiveupdateSession {
        size: size_of::<LiveupdateSession>() as u32,
        fd: -1,
        name: session_name_field(name).unwrap(),
    };
    // SAFETY: CREATE_SESSION takes a `struct liveupdate_ioctl_create_session`.
    unsafe {
        raw_ioctl(
            device,
            LIVEUPDATE_IOCTL_CREATE_SESSION,
            (&raw mut arg).cast(),
        )
    };
    // SAFETY: the kernel wrote a new fd, which nothing else owns, to `fd`.
    unsafe { OwnedFd::from_raw_fd(arg.fd) }
}

fn liveupdate_round(ops: usize) -> Round {
    let device = rustix::fs::open(
        LIVEUPDATE_DEVICE,
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open /dev/liveupdate (run under fdbox emulate --device liveupdate)");
    let session_name = format!("bench-raw-{}", std::process::id());
    let create_close = per_unit(ops, || {
        for _ in 0..ops {
            drop(session(device.as_fd(), &session_name));
        }
    });
    // Sessions of at most FILES_PER_SESSION files (the emulator's limit is
    // 1024), each closed (un-preserving its files) before the next.
    const FILES_PER_SESSION: usize = 500;
    let files: Vec<OwnedFd> = (0..ops).map(|_| memfd()).collect();
    let mut preserving = Duration::ZERO;
    for chunk in files.chunks(FILES_PER_SESSION) {
        let s = session(device.as_fd(), &session_name);
        let start = Instant::now();
        for (token, file) in (1u64..).zip(chunk) {
            let mut arg = LiveupdateSessionFd {
                size: size_of::<LiveupdateSessionFd>() as u32,
                fd: file.as_raw_fd(),
                token,
            };
            // SAFETY: PRESERVE_FD takes a `struct liveupdate_session_preserve_fd`.
            unsafe {
                raw_ioctl(
                    s.as_fd(),
                    LIVEUPDATE_SESSION_PRESERVE_FD,
                    (&raw mut arg).cast(),
                )
            };
        }
        preserving += start.elapsed();
    }
    let preserve = preserving.as_nanos() as f64 / ops as f64;
    // Closing the session un-preserves the files; closing the device lets
    // the Device API open it (one open at a time).
    drop((files, device));

    let device = LiveUpdateDevice::open_scoped(&format!("b{}.", std::process::id())).unwrap();
    let (api_put_get, api_seal_unseal) = device_round(&device, ops);
    drop(device);
    vec![
        ("LUO CREATE_SESSION ioctl + close", create_close),
        ("LUO PRESERVE_FD ioctl", preserve),
        ("LiveUpdateDevice put+get", api_put_get),
        ("LiveUpdateDevice seal+unseal", api_seal_unseal),
        ("openat+close passed through", passthrough_open(ops)),
    ]
}

/// The child: rounds of its device's measurements and the daemon's,
/// alternating, one `name<TAB>ns` line per measurement per round.
fn child(kind: &str) {
    let full = std::env::var(MODE_ENV).is_ok_and(|m| m == "full");
    let (rounds, ops) = sizes(full);
    let socket = PathBuf::from(std::env::var_os(SOCKET_ENV).expect("the daemon's socket"));
    let daemon = DaemonDevice::connect(&socket).expect("connect to the bench's daemon");
    for _ in 0..rounds {
        let round = match kind {
            "fdbox" => fdbox_round(ops),
            "liveupdate" => liveupdate_round(ops),
            other => panic!("unknown device {other:?}"),
        };
        for (metric, ns) in round.into_iter().chain(daemon_round(&daemon, ops)) {
            println!("{metric}\t{ns}");
        }
    }
}

/// Kills and reaps the daemon on every exit path.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(fdbox: &Path, socket: &Path) -> Daemon {
    let daemon = Daemon(
        Command::new(fdbox)
            .arg("daemon")
            .arg("--socket")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fdbox daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while DaemonDevice::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "the daemon did not answer in 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[path = "../host/tests/support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

fn main() {
    if let Ok(kind) = std::env::var(CHILD_ENV) {
        child(&kind);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    if !rustix::process::geteuid().is_root() {
        println!("kernel_ioctl: skipped: the emulated FDBox checks CAP_SYS_ADMIN; run as root");
        return;
    }
    let fdbox = PathBuf::from(env!("CARGO_BIN_EXE_fdbox"));
    let dir = TempDir::new("bench-ioctl");
    // Every emulated call is two wake-ups (program to supervisor and back);
    // across CPUs, on a VM, each can cost tens of µs of idle-exit latency,
    // so the run is made twice: as the scheduler places the processes, and
    // with every process (daemon, emulator, program) on one CPU.
    let mut passes = Vec::new();
    for pinned in [false, true] {
        if pinned {
            pin_to_first_cpu();
        }
        passes.push((pinned, pass(&fdbox, &dir, full)));
    }
    if !full {
        let measured: usize = passes
            .iter()
            .flat_map(|(_, r)| r.values())
            .map(BTreeMap::len)
            .sum();
        println!(
            "kernel_ioctl: quick run: {measured} measurements on both emulated devices and the daemon, unpinned and pinned (no figures; run with --bench)"
        );
        return;
    }
    let (rounds, ops) = sizes(true);
    println!("### Per-ioctl cost under `fdbox emulate`, against the holder daemon\n");
    println!(
        "{rounds} alternating rounds of {ops} operations each; median µs per operation (min-max over rounds).\n"
    );
    for (pinned, mut results) in passes {
        println!(
            "#### {}\n",
            if pinned {
                "Every process on one CPU"
            } else {
                "Processes where the scheduler puts them"
            }
        );
        report(&mut results);
    }
}

/// Measurements by device and name, every round's value.
type Results = BTreeMap<&'static str, BTreeMap<String, Vec<f64>>>;

/// Start a daemon, run both children under the emulator, stop the daemon.
fn pass(fdbox: &Path, dir: &Path, full: bool) -> Results {
    let socket = dir.join("daemon.sock");
    let _ = std::fs::remove_file(&socket);
    let daemon = start_daemon(fdbox, &socket);
    let mut results = Results::new();
    for kind in ["fdbox", "liveupdate"] {
        let output = Command::new(fdbox)
            .args(["emulate", "--device", kind, "--"])
            .arg(std::env::current_exe().unwrap())
            .env(CHILD_ENV, kind)
            .env(SOCKET_ENV, &socket)
            .env(MODE_ENV, if full { "full" } else { "quick" })
            .stderr(Stdio::inherit())
            .output()
            .expect("run fdbox emulate");
        assert!(
            output.status.success(),
            "the {kind} child failed ({})",
            output.status
        );
        let lines = String::from_utf8(output.stdout).unwrap();
        for line in lines.lines() {
            let (metric, ns) = line.split_once('\t').expect("metric<TAB>ns");
            results
                .entry(kind)
                .or_default()
                .entry(metric.to_string())
                .or_default()
                .push(ns.parse().unwrap());
        }
    }
    drop(daemon);
    results
}

/// Run this process, and what it starts from now on, on the first CPU it
/// may use.
fn pin_to_first_cpu() {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set, filled by
    // sched_getaffinity and the CPU_* helpers, which touch only it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        let first = (0..libc::CPU_SETSIZE as usize)
            .find(|&cpu| libc::CPU_ISSET(cpu, &set))
            .expect("some CPU is allowed");
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(first, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn report(results: &mut Results) {
    for (kind, metrics) in results.iter_mut() {
        println!("`fdbox emulate --device {kind}`:\n");
        println!("| operation | µs | min-max |");
        println!("|---|---|---|");
        let mut medians = BTreeMap::new();
        for (metric, values) in metrics.iter_mut() {
            let m = median(values);
            let (lo, hi) = (values[0], values[values.len() - 1]);
            println!(
                "| {metric} | {:.2} | {:.2}-{:.2} |",
                m / 1000.0,
                lo / 1000.0,
                hi / 1000.0
            );
            medians.insert(metric.as_str(), m);
        }
        println!();
        let ratio = |a: &str, b: &str| medians[a] / medians[b];
        match *kind {
            "fdbox" => {
                println!(
                    "- PUT_FD+GET_FD (two ioctls) / daemon put+get (two round trips): {:.2}",
                    2.0 * medians["FDBox PUT_FD / GET_FD ioctl"] / medians["daemon put+get"]
                );
                println!(
                    "- SEAL+UNSEAL (two ioctls) / daemon seal+unseal: {:.2}",
                    2.0 * medians["FDBox SEAL / UNSEAL ioctl"] / medians["daemon seal+unseal"]
                );
                println!(
                    "- FdboxDevice put+get / daemon put+get: {:.2}",
                    ratio("FdboxDevice put+get", "daemon put+get")
                );
            }
            _ => {
                println!(
                    "- LiveUpdateDevice put+get (no ioctl: held in the process until sealed) / daemon put+get: {:.2}",
                    ratio("LiveUpdateDevice put+get", "daemon put+get")
                );
                println!(
                    "- LiveUpdateDevice seal+unseal / daemon seal+unseal: {:.2}",
                    ratio("LiveUpdateDevice seal+unseal", "daemon seal+unseal")
                );
            }
        }
        println!();
    }
}
