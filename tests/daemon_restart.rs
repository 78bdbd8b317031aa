//! The holder daemon restarting without losing a box: through systemd's fd
//! store (this test plays systemd: socket activation, the notification
//! socket, the store), and in place on SIGHUP.

use fdbox_host::daemon::manifest::{MANIFEST_FD_PREFIX, Manifest};
use fdbox_host::device::daemon::{DaemonDevice, transport};
use fdbox_host::{Access, Device, Handle, HandleKind, Name};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::collections::BTreeMap;
use std::io::{IoSliceMut, Read, Seek, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const FDBOX: &str = env!("CARGO_BIN_EXE_fdbox");

#[path = "../host/tests/conformance/mod.rs"]
mod conformance;

use conformance::{memfd, name};

use conformance::TempDir;

fn tempdir(tag: &str) -> TempDir {
    TempDir::new(&format!("restart-{tag}"))
}

fn content(handle: &Handle) -> String {
    let mut file = std::fs::File::from(handle.fd().try_clone_to_owned().unwrap());
    file.rewind().unwrap();
    let mut s = String::new();
    file.read_to_string(&mut s).unwrap();
    s
}

/// A daemon process with its log.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// `fdbox daemon --socket <socket>`, with `passed` at fds 3.. as
    /// `LISTEN_FDS` (named by `LISTEN_FDNAMES`), and `NOTIFY_SOCKET` if
    /// given.
    fn start(
        dir: &Path,
        socket: &Path,
        passed: &[(String, BorrowedFd<'_>)],
        notify: Option<&Path>,
    ) -> Self {
        // One log per start, numbered.
        let log = (0..)
            .map(|n| dir.join(format!("daemon-{n}.log")))
            .find(|log| !log.exists())
            .unwrap();
        let sources: Vec<RawFd> = passed.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
        let names: Vec<&str> = passed.iter().map(|(name, _)| name.as_str()).collect();
        let count = sources.len() as RawFd;
        let mut copies = vec![-1; sources.len()];
        let mut cmd = Command::new("/bin/sh");
        // LISTEN_PID must be the daemon's pid, which is the shell's: it
        // execs the daemon.
        cmd.arg("-c")
            .arg(r#"LISTEN_PID=$$ exec "$0" "$@""#)
            .arg(FDBOX)
            .args(["daemon", "--socket"])
            .arg(socket)
            .env("FDBOX_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if !passed.is_empty() {
            cmd.env("LISTEN_FDS", count.to_string())
                .env("LISTEN_FDNAMES", names.join(":"));
        }
        if let Some(notify) = notify {
            cmd.env("NOTIFY_SOCKET", notify);
        }
        // SAFETY: runs in the forked child before exec, and only makes
        // async-signal-safe calls (fcntl, dup2) on memory allocated before
        // the fork. The fds go to 3.. as LISTEN_FDS says: first copied above
        // that range (close-on-exec), so that placing one never overwrites
        // another not yet placed; then put in place without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                for (copy, &source) in copies.iter_mut().zip(&sources) {
                    *copy = libc::fcntl(source, libc::F_DUPFD_CLOEXEC, 3 + count);
                    if *copy < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (i, &copy) in copies.iter().enumerate() {
                    if libc::dup2(copy, 3 + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        Self { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Wait until the log has `n` lines containing `what`.
    fn logged(&mut self, what: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log().matches(what).count() < n {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the daemon exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {n}th {what:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client, waiting for the daemon to listen.
fn device(socket: &Path) -> DaemonDevice {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match DaemonDevice::connect(socket) {
            Ok(device) => return device,
            Err(e) if Instant::now() > deadline => panic!("daemon not listening: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// What systemd does for a `Type=notify` service with a `.socket` unit and
/// an fd store: the listening socket, the notification socket (read all the
/// time, as systemd does: the daemon waits when its queue is full), and the
/// store (the latest fd under each name, as FDSTORE and FDSTOREREMOVE say).
struct FakeSystemd {
    listener: OwnedFd,
    notify_path: PathBuf,
    state: Arc<Mutex<Notified>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

struct Notified {
    notify: OwnedFd,
    store: BTreeMap<String, OwnedFd>,
    ready: usize,
}

impl Notified {
    /// Apply every notification received so far.
    fn drain(&mut self) {
        let mut buf = vec![0u8; 4096];
        loop {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(253))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let msg = match rustix::net::recvmsg(
                &self.notify,
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(msg) => msg,
                Err(rustix::io::Errno::AGAIN) => return,
                Err(e) => panic!("notify socket: {e}"),
            };
            let fds = transport::take_fds(&mut control);
            let text = String::from_utf8(buf[..msg.bytes].to_vec()).unwrap();
            let fields: BTreeMap<&str, &str> =
                text.lines().filter_map(|l| l.split_once('=')).collect();
            let fdname = fields.get("FDNAME").map(|n| n.to_string());
            if fields.get("READY") == Some(&"1") {
                self.ready += 1;
            }
            if fields.get("FDSTOREREMOVE") == Some(&"1") {
                self.store
                    .remove(&fdname.expect("FDSTOREREMOVE names its fd"));
            } else if fields.get("FDSTORE") == Some(&"1") {
                let fdname = fdname.expect("every stored fd is named");
                assert!(
                    !fdname.contains(':') && fdname.len() < 255,
                    "{fdname:?} is no FDNAME"
                );
                assert_eq!(fds.len(), 1, "one fd per name: {text:?}");
                self.store.insert(fdname, fds.into_iter().next().unwrap());
            } else {
                assert!(fds.is_empty(), "fds without FDSTORE=1: {text:?}");
            }
        }
    }
}

impl FakeSystemd {
    fn new(dir: &Path, socket: &Path) -> Self {
        let listener = fdbox_host::device::daemon::transport::listen(socket).unwrap();
        let notify_path = dir.join("notify.sock");
        let notify = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::bind(&notify, &SocketAddrUnix::new(&notify_path).unwrap()).unwrap();
        let state = Arc::new(Mutex::new(Notified {
            notify,
            store: BTreeMap::new(),
            ready: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    state.lock().unwrap().drain();
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Self {
            listener,
            notify_path,
            state,
            stop,
            reader: Some(reader),
        }
    }

    /// Every notification sent so far, applied.
    fn state(&self) -> MutexGuard<'_, Notified> {
        let mut state = self.state.lock().unwrap();
        state.drain();
        state
    }

    fn wait_ready(&self, n: usize, daemon: &mut Daemon) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.state().ready < n {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("the daemon exited ({status}):\n{}", daemon.log());
            }
            assert!(Instant::now() < deadline, "no READY=1:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The listener and every stored fd, as systemd passes them.
    fn passed(&self) -> Vec<(String, OwnedFd)> {
        let mut passed = vec![("fdbox.sock".to_owned(), self.listener.try_clone().unwrap())];
        passed.extend(
            self.state()
                .store
                .iter()
                .map(|(name, fd)| (name.clone(), fd.try_clone().unwrap())),
        );
        passed
    }

    fn start(&self, dir: &Path, socket: &Path) -> Daemon {
        let passed = self.passed();
        let borrowed: Vec<(String, BorrowedFd<'_>)> = passed
            .iter()
            .map(|(name, fd)| (name.clone(), fd.as_fd()))
            .collect();
        let mut daemon = Daemon::start(dir, socket, &borrowed, Some(&self.notify_path));
        let ready = self.state().ready;
        self.wait_ready(ready + 1, &mut daemon);
        daemon
    }

    fn manifests(&self) -> Vec<Manifest> {
        self.state()
            .store
            .iter()
            .filter(|(name, _)| name.starts_with(MANIFEST_FD_PREFIX))
            .map(|(_, fd)| Manifest::read(fd.as_fd()).unwrap())
            .collect()
    }

    fn stored(&self) -> Vec<String> {
        self.state().store.keys().cloned().collect()
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

const MANY: usize = 300;

/// Boxes of every shape: sealed and not, empty, memfds with content, files
/// (one read-only), a directory, a batch larger than one message; and a box
/// and an entry that come and go.
fn fill(d: &DaemonDevice, dir: &Path) {
    let file_path = dir.join("file.txt");
    std::fs::write(&file_path, "on disk").unwrap();
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file_path)
        .unwrap();
    let ro = std::fs::File::open(&file_path).unwrap();

    d.create_box(&name("alpha")).unwrap();
    d.put(&name("alpha"), &name("note"), memfd("hello, alpha"))
        .unwrap();
    d.put(
        &name("alpha"),
        &name("file"),
        Handle::from_fd(rw.into()).unwrap(),
    )
    .unwrap();
    d.put(
        &name("alpha"),
        &name("ro"),
        Handle::from_fd(ro.into()).unwrap(),
    )
    .unwrap();
    d.seal(&name("alpha")).unwrap();

    d.create_box(&name("beta")).unwrap();
    d.put(&name("beta"), &name("m1"), memfd("beta one"))
        .unwrap();
    let dir_fd = std::fs::File::open(dir).unwrap();
    d.put(
        &name("beta"),
        &name("dir"),
        Handle::from_fd(dir_fd.into()).unwrap(),
    )
    .unwrap();
    d.put(&name("beta"), &name("tmp"), memfd("temporary"))
        .unwrap();
    assert_eq!(
        content(&d.get(&name("beta"), &name("tmp")).unwrap()),
        "temporary"
    );

    d.create_box(&name("empty")).unwrap();
    d.create_box(&name("vault")).unwrap();
    d.seal(&name("vault")).unwrap();

    d.create_box(&name("gone")).unwrap();
    d.put(&name("gone"), &name("x"), memfd("doomed")).unwrap();
    d.delete_box(&name("gone")).unwrap();

    d.create_box(&name("many")).unwrap();
    let batch = (0..MANY)
        .map(|i| (name(&format!("n{i:03}")), memfd(&format!("number {i}"))))
        .collect();
    d.put_many(&name("many"), batch).unwrap();
}

/// Everything `fill` left is there, intact; checking leaves it as it was.
fn check(d: &DaemonDevice) {
    let boxes: Vec<(String, bool, usize)> = d
        .boxes()
        .unwrap()
        .into_iter()
        .map(|b| (b.name.as_str().to_owned(), b.sealed, b.entries))
        .collect();
    assert_eq!(
        boxes,
        [
            ("alpha".to_owned(), true, 3),
            ("beta".to_owned(), false, 2),
            ("empty".to_owned(), false, 0),
            ("many".to_owned(), false, MANY),
            ("vault".to_owned(), true, 0),
        ]
    );
    let kinds: Vec<(String, HandleKind, Option<u64>)> = d
        .entries(&name("alpha"))
        .unwrap()
        .into_iter()
        .map(|e| (e.name.as_str().to_owned(), e.kind, e.size))
        .collect();
    assert_eq!(
        kinds,
        [
            ("file".to_owned(), HandleKind::File, Some(7)),
            ("note".to_owned(), HandleKind::MemoryFile, Some(12)),
            ("ro".to_owned(), HandleKind::File, Some(7)),
        ]
    );

    // Sealed still: nothing comes out until it is unsealed.
    assert!(d.get(&name("alpha"), &name("note")).is_err());
    d.unseal(&name("alpha")).unwrap();
    let names = [name("file"), name("note"), name("ro")];
    let handles = d.get_many(&name("alpha"), &names).unwrap();
    assert_eq!(content(&handles[0]), "on disk");
    assert_eq!(handles[0].access(), Access::ALL);
    assert_eq!(content(&handles[1]), "hello, alpha");
    assert_eq!(
        handles[2].access(),
        Access {
            read: true,
            write: false,
            mutate: true
        },
        "a read-only file stays read-only"
    );
    d.put_many(&name("alpha"), names.into_iter().zip(handles).collect())
        .unwrap();
    d.seal(&name("alpha")).unwrap();

    let names = [name("dir"), name("m1")];
    let handles = d.get_many(&name("beta"), &names).unwrap();
    assert_eq!(handles[0].kind(), HandleKind::Directory);
    assert!(rustix::fs::statat(handles[0].fd(), "file.txt", rustix::fs::AtFlags::empty()).is_ok());
    assert_eq!(content(&handles[1]), "beta one");
    d.put_many(&name("beta"), names.into_iter().zip(handles).collect())
        .unwrap();

    let names: Vec<Name> = (0..MANY).map(|i| name(&format!("n{i:03}"))).collect();
    let handles = d.get_many(&name("many"), &names).unwrap();
    for (i, handle) in handles.iter().enumerate() {
        assert_eq!(content(handle), format!("number {i}"));
    }
    d.put_many(&name("many"), names.into_iter().zip(handles).collect())
        .unwrap();
}

#[test]
fn a_daemon_killed_with_sigkill_gets_everything_back_from_the_fd_store() {
    let dir = tempdir("fdstore");
    let socket = dir.join("fdbox.sock");
    let systemd = FakeSystemd::new(&dir, &socket);

    let mut first = systemd.start(&dir, &socket);
    let d = device(&socket);
    fill(&d, &dir);
    // Each op synced the store before its reply: it is complete now.
    let manifests = systemd.manifests();
    assert_eq!(manifests.len(), 1, "one manifest: {:?}", systemd.stored());
    let manifest = &manifests[0];
    assert_eq!(manifest.boxes.len(), 5, "empty boxes listed too");
    assert_eq!(manifest.entries.len(), 3 + 2 + MANY);
    let stored = systemd.stored();
    assert_eq!(
        stored.len(),
        manifest.entries.len() + 1,
        "every held fd and the manifest, nothing removed left behind: {stored:?}"
    );
    for e in &manifest.entries {
        assert!(stored.contains(&e.fd_name), "{}", e.fd_name);
    }

    first.child.kill().unwrap();
    first.child.wait().unwrap();

    // A stray fd in the store (no manifest mentions it) is dropped.
    systemd
        .state()
        .store
        .insert("stray".into(), memfd("stray").into_fd());
    let second = systemd.start(&dir, &socket);
    // The client of the killed daemon carries on with the new one.
    check(&d);
    check(&device(&socket));
    assert!(
        second.log().contains("recovered 5 boxes and 305 entries"),
        "{}",
        second.log()
    );
    assert!(
        second.log().contains("\"stray\""),
        "the stray fd is named in a warning:\n{}",
        second.log()
    );

    assert!(!systemd.stored().contains(&"stray".to_owned()));
    let manifests = systemd.manifests();
    assert_eq!(manifests.len(), 1, "the old manifest was replaced");
    assert!(manifests[0].generation > manifest.generation);
    assert_eq!(systemd.stored().len(), 3 + 2 + MANY + 1);

    // Once more, after the second daemon changed things.
    d.delete_box(&name("vault")).unwrap();
    d.create_box(&name("vault")).unwrap();
    d.seal(&name("vault")).unwrap();
    drop(second);
    let _third = systemd.start(&dir, &socket);
    check(&d);
}

#[test]
fn a_manifest_that_cannot_be_read_stops_the_daemon_and_names_the_problem() {
    let dir = tempdir("badmanifest");
    let socket = dir.join("fdbox.sock");
    let systemd = FakeSystemd::new(&dir, &socket);
    let bad = memfd("FDBOXMAN\u{9}\0\0\0 not version 1");
    let kept = memfd("kept");
    let passed = systemd.passed();
    let mut passed: Vec<(String, BorrowedFd<'_>)> = passed
        .iter()
        .map(|(name, fd)| (name.clone(), fd.as_fd()))
        .collect();
    passed.push((format!("{MANIFEST_FD_PREFIX}-3"), bad.fd()));
    passed.push(("e1".into(), kept.fd()));
    let mut daemon = Daemon::start(&dir, &socket, &passed, None);
    let status = daemon.child.wait().unwrap();
    assert!(!status.success());
    let log = daemon.log();
    assert!(
        log.contains("fdbox-manifest-3") && log.contains("manifest version 9"),
        "{log}"
    );
    assert!(log.contains("refusing to start"), "{log}");
}

fn hangup(pid: u32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
}

#[test]
fn sighup_upgrades_in_place_losing_nothing_and_leaking_no_fd() {
    let dir = tempdir("sighup");
    let socket = dir.join("run/fdbox.sock");
    let mut daemon = Daemon::start(&dir, &socket, &[], None);
    let d = device(&socket);
    fill(&d, &dir);
    let fds = daemon.open_fds();
    let exe = std::fs::read_link(format!("/proc/{}/exe", daemon.pid())).unwrap();

    // Fds the daemon inherited and does not know (the test harness's) may
    // be overwritten by the first hand-over: after that, the count is
    // steady.
    let mut steady = None;
    for round in 1..=3 {
        hangup(daemon.pid());
        daemon.logged("recovered 5 boxes and 305 entries", round);
        // The client connected before the upgrade goes on working.
        check(&d);
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "the same process serves"
        );
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/exe", daemon.pid())).unwrap(),
            exe
        );
        let expected = *steady.get_or_insert_with(|| daemon.open_fds());
        let deadline = Instant::now() + Duration::from_secs(5);
        while daemon.open_fds() != expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let now = daemon.open_fds();
        assert!(
            now == expected && now <= fds,
            "round {round}: {now} fds, {expected} after the first upgrade, {fds} before: {:?}",
            std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
                .unwrap()
                .map(|e| std::fs::read_link(e.unwrap().path()).ok())
                .collect::<Vec<_>>()
        );
    }
    // A new client too.
    check(&device(&socket));
    assert!(!daemon.log().contains("ERROR"), "{}", daemon.log());
}

#[test]
fn a_sighup_in_the_middle_of_requests_loses_and_duplicates_nothing() {
    let dir = tempdir("sighup-busy");
    let socket = dir.join("run/fdbox.sock");
    let mut daemon = Daemon::start(&dir, &socket, &[], None);
    let d = device(&socket);
    d.create_box(&name("busy")).unwrap();
    d.put(&name("busy"), &name("x"), memfd("0")).unwrap();
    // Clients keep taking the entry out, incrementing it, and putting it
    // back while the daemon upgrades under them.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        let socket = socket.clone();
        std::thread::spawn(move || {
            let d = device(&socket);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let h = d.get(&name("busy"), &name("x")).unwrap();
                let value: u64 = content(&h).parse().unwrap();
                assert_eq!(value, n, "no increment lost or repeated");
                n += 1;
                let mut file = std::fs::File::from(h.fd().try_clone_to_owned().unwrap());
                file.set_len(0).unwrap();
                file.rewind().unwrap();
                file.write_all(n.to_string().as_bytes()).unwrap();
                d.put(&name("busy"), &name("x"), h).unwrap();
            }
            n
        })
    };
    for round in 1..=3 {
        std::thread::sleep(Duration::from_millis(50));
        hangup(daemon.pid());
        daemon.logged("recovered 1 boxes and", round);
    }
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    let n = worker.join().unwrap();
    assert!(n > 0);
    let h = d.get(&name("busy"), &name("x")).unwrap();
    assert_eq!(content(&h), n.to_string());
    assert_eq!(d.entries(&name("busy")).unwrap().len(), 0);
}

#[test]
fn an_upgrade_under_systemd_keeps_the_fd_store_in_line() {
    let dir = tempdir("sighup-fdstore");
    let socket = dir.join("fdbox.sock");
    let systemd = FakeSystemd::new(&dir, &socket);
    let mut daemon = systemd.start(&dir, &socket);
    let d = device(&socket);
    fill(&d, &dir);
    let before = systemd.manifests();
    for round in 1..=2 {
        hangup(daemon.pid());
        daemon.logged("recovered 5 boxes and 305 entries", round);
        systemd.wait_ready(round + 1, &mut daemon);
        check(&d);
    }
    let manifests = systemd.manifests();
    assert_eq!(
        manifests.len(),
        1,
        "no manifest left behind: {:?}",
        systemd.stored()
    );
    assert!(manifests[0].generation > before[0].generation);
    assert_eq!(systemd.stored().len(), 3 + 2 + MANY + 1);
    // And the store alone still rebuilds everything.
    drop(daemon);
    let _next = systemd.start(&dir, &socket);
    check(&d);
}
