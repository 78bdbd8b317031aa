//! The device conformance suite: the FDBox rules, written once over the
//! [`Device`] trait (and over [`FdboxCtx`], the per-guest policy every device
//! is used through). Each device's test file runs it with
//! `conformance_suite!(|| make_device())`; a new device must pass it unchanged.
//! A rule that a device's declared [`Device::capabilities`] exclude (a kind
//! it does not hold) checks the refusal instead, and says so.

#![allow(dead_code)]

pub mod kernel;

#[path = "../support/temp_dir.rs"]
mod temp_dir;
pub use temp_dir::TempDir;

use fdbox_host::device::{Device, Refused};
use fdbox_host::{ErrorCode, FdboxCtx, Grant, Handle, HandleKind, Name, Permissions, Quotas};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// Generate one `#[test]` per rule for the device `make` builds.
#[macro_export]
macro_rules! conformance_suite {
    // `make` returns `None` for a device that is not there (it says why):
    // every rule passes without running.
    (optional $make:expr) => {
        $crate::conformance_suite!(@tests $make;
            boxes_are_created_listed_and_deleted,
            put_moves_in_and_get_moves_out,
            entry_names_are_unique_and_a_refused_put_returns_the_handle,
            sealed_boxes_refuse_put_get_and_reseal,
            operations_on_a_missing_box_are_not_found,
            deleting_a_box_releases_its_handles,
            every_kind_round_trips_or_is_refused_intact,
            file_content_and_offset_survive_the_round_trip,
            ten_thousand_cycles_leak_no_fd,
            bad_names_are_refused_before_the_device,
            ungranted_boxes_are_denied_whether_or_not_they_exist,
            permissions_are_checked_per_operation,
            prefix_grants_scope_creation_and_listing,
            quotas_limit_boxes_and_entries,
            concurrent_puts_all_land,
            batch_puts_are_all_or_nothing,
            batch_gets_are_all_or_nothing,
            batches_larger_than_one_message_move_whole,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let _alone = conformance::alone();
                let device: Option<std::sync::Arc<dyn fdbox_host::Device>> = ($make)();
                if let Some(device) = device {
                    conformance::$name(device);
                }
            }
        )*
    };
    ($make:expr) => {
        $crate::conformance_suite!(optional || {
            let device: std::sync::Arc<dyn fdbox_host::Device> = ($make)();
            Some(device)
        });
    };
}

/// Tests count the process's open fds, so they run one at a time.
pub fn alone() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A name the test knows is valid.
pub fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// A memory file holding `text`.
pub fn memfd(text: &str) -> Handle {
    let handle = Handle::new_memory_file(&name("conformance")).unwrap();
    let mut file = std::fs::File::from(handle.into_fd());
    file.write_all(text.as_bytes()).unwrap();
    Handle::from_fd(file.into()).unwrap()
}

/// The whole content of a file handle, read from its start.
pub fn content(handle: Handle) -> String {
    let mut file = std::fs::File::from(handle.into_fd());
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    file.read_to_string(&mut s).unwrap();
    s
}

fn code(r: Result<impl std::fmt::Debug, fdbox_host::Error>) -> ErrorCode {
    r.unwrap_err().code()
}

fn refused(r: Result<(), Refused>) -> (ErrorCode, Handle) {
    let refused = r.unwrap_err();
    (refused.error.code(), refused.handle)
}

/// Whether this process's open fds come down to at most `limit` within a
/// few seconds: a device in another thread or process may close its copies
/// a moment after the call that gave them away returned (the holder daemon
/// closes a lent fd when the client's acknowledgement arrives).
fn open_fds_settle_at(limit: usize) -> bool {
    settles(|| open_fds() <= limit)
}

/// Whether `condition` holds within a few seconds: what a device in
/// another process releases (the daemon, the emulator's supervisor of a
/// kernel device) it may release a moment after the call returned.
fn settles(condition: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

pub fn boxes_are_created_listed_and_deleted(d: Arc<dyn Device>) {
    d.create_box(&name("b")).unwrap();
    d.create_box(&name("a")).unwrap();
    let boxes = d.boxes().unwrap();
    let names: Vec<_> = boxes.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "boxes are listed in name order");
    assert!(
        boxes.iter().all(|b| !b.sealed && b.entries == 0),
        "new boxes are empty and unsealed"
    );
    assert_eq!(code(d.create_box(&name("a"))), ErrorCode::AlreadyExists);
    d.delete_box(&name("a")).unwrap();
    assert_eq!(code(d.delete_box(&name("a"))), ErrorCode::NotFound);
    assert_eq!(code(d.status(&name("a"))), ErrorCode::NotFound);
    assert_eq!(d.boxes().unwrap().len(), 1);
}

pub fn put_moves_in_and_get_moves_out(d: Arc<dyn Device>) {
    let b = name("box");
    d.create_box(&b).unwrap();
    d.put(&b, &name("state"), memfd("hello")).unwrap();
    let entries = d.entries(&b).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].name, name("state"));
    assert_eq!(entries[0].kind, HandleKind::MemoryFile);
    assert_eq!(entries[0].size, Some(5));
    assert_eq!(d.status(&b).unwrap().entries, 1);
    assert_eq!(content(d.get(&b, &name("state")).unwrap()), "hello");
    assert_eq!(
        code(d.get(&b, &name("state"))),
        ErrorCode::NotFound,
        "get is take-once"
    );
    assert!(d.entries(&b).unwrap().is_empty());
}

pub fn entry_names_are_unique_and_a_refused_put_returns_the_handle(d: Arc<dyn Device>) {
    let b = name("box");
    d.create_box(&b).unwrap();
    d.put(&b, &name("x"), memfd("first")).unwrap();
    let (c, handle) = refused(d.put(&b, &name("x"), memfd("second")));
    assert_eq!(c, ErrorCode::AlreadyExists);
    assert_eq!(
        content(handle),
        "second",
        "the refused handle comes back intact"
    );
    assert_eq!(
        content(d.get(&b, &name("x")).unwrap()),
        "first",
        "the boxed one is untouched"
    );
}

pub fn sealed_boxes_refuse_put_get_and_reseal(d: Arc<dyn Device>) {
    let b = name("box");
    d.create_box(&b).unwrap();
    d.put(&b, &name("kept"), memfd("kept")).unwrap();
    assert_eq!(code(d.unseal(&b)), ErrorCode::BoxNotSealed);
    d.seal(&b).unwrap();
    assert!(d.status(&b).unwrap().sealed);
    let (c, handle) = refused(d.put(&b, &name("new"), memfd("new")));
    assert_eq!(c, ErrorCode::BoxSealed);
    assert_eq!(content(handle), "new");
    assert_eq!(code(d.get(&b, &name("kept"))), ErrorCode::BoxSealed);
    assert_eq!(code(d.seal(&b)), ErrorCode::BoxSealed);
    assert_eq!(
        d.entries(&b).unwrap().len(),
        1,
        "a sealed box can be listed"
    );
    d.unseal(&b).unwrap();
    assert!(!d.status(&b).unwrap().sealed);
    assert_eq!(
        content(d.get(&b, &name("kept")).unwrap()),
        "kept",
        "a failed get lost nothing"
    );
}

pub fn operations_on_a_missing_box_are_not_found(d: Arc<dyn Device>) {
    let b = name("missing");
    let (c, handle) = refused(d.put(&b, &name("x"), memfd("back")));
    assert_eq!(c, ErrorCode::NotFound);
    assert_eq!(content(handle), "back");
    assert_eq!(code(d.get(&b, &name("x"))), ErrorCode::NotFound);
    assert_eq!(code(d.entries(&b)), ErrorCode::NotFound);
    assert_eq!(code(d.seal(&b)), ErrorCode::NotFound);
    assert_eq!(code(d.unseal(&b)), ErrorCode::NotFound);
    assert_eq!(code(d.delete_box(&b)), ErrorCode::NotFound);
}

/// A file under an exclusive `flock`: the lock belongs to the open file
/// description, so it is released exactly when the last fd of it closes,
/// in whatever process the device keeps it.
fn locked_file(dir: &std::path::Path) -> (std::path::PathBuf, OwnedFd) {
    let path = dir.join("locked");
    let file = std::fs::File::create(&path).unwrap();
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    (path, file.into())
}

fn is_locked(path: &std::path::Path) -> bool {
    let other = std::fs::File::open(path).unwrap();
    rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockShared).is_err()
}

/// A memory file under an exclusive `flock`, and a second open file of it
/// (through `/proc/self/fd`) to test the lock with: for devices that hold
/// memory files only.
fn locked_memfd() -> (std::fs::File, OwnedFd) {
    let fd = memfd("locked").into_fd();
    rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let other = std::fs::File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    (other, fd)
}

fn is_locked_file(other: &std::fs::File) -> bool {
    rustix::fs::flock(other, rustix::fs::FlockOperation::NonBlockingLockShared)
        .map(|()| rustix::fs::flock(other, rustix::fs::FlockOperation::Unlock).unwrap())
        .is_err()
}

pub fn deleting_a_box_releases_its_handles(d: Arc<dyn Device>) {
    let tmp = tempdir();
    let files = d.capabilities().holds(HandleKind::File);
    if !files {
        println!("the device holds no files (capabilities): checking with a locked memory file");
    }
    for sealed in [false, true] {
        let b = name("box");
        d.create_box(&b).unwrap();
        let (check, fd): (Box<dyn Fn() -> bool>, OwnedFd) = if files {
            let (path, fd) = locked_file(&tmp);
            (Box::new(move || is_locked(&path)), fd)
        } else {
            let (other, fd) = locked_memfd();
            (Box::new(move || is_locked_file(&other)), fd)
        };
        d.put(&b, &name("locked"), Handle::from_fd(fd).unwrap())
            .unwrap();
        if sealed {
            d.seal(&b).unwrap();
        }
        assert!(check(), "the box holds the file open");
        d.delete_box(&b).unwrap();
        assert!(
            settles(|| !check()),
            "deleting the box (sealed: {sealed}) closed the file"
        );
    }
}

pub fn every_kind_round_trips_or_is_refused_intact(d: Arc<dyn Device>) {
    let tmp = tempdir();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    std::fs::write(tmp.join("f"), "file").unwrap();
    let b = name("box");
    d.create_box(&b).unwrap();
    let handles = [
        (HandleKind::MemoryFile, memfd("memfd")),
        (
            HandleKind::File,
            Handle::from_fd(std::fs::File::open(tmp.join("f")).unwrap().into()).unwrap(),
        ),
        (
            HandleKind::Directory,
            Handle::from_fd(std::fs::File::open(&tmp).unwrap().into()).unwrap(),
        ),
        (
            HandleKind::TcpListener,
            Handle::from_fd(listener.try_clone().unwrap().into()).unwrap(),
        ),
        (
            HandleKind::TcpConnection,
            Handle::from_fd(accepted.into()).unwrap(),
        ),
    ];
    for (kind, handle) in handles {
        let entry = name(kind.as_str());
        let access = handle.access();
        let held = d.capabilities().holds(kind);
        if !held {
            println!("the device holds no {kind} (capabilities): expecting kind-not-supported");
        }
        match d.put(&b, &entry, handle) {
            Ok(()) => {
                assert!(
                    held,
                    "a {kind} was put into a device that declares it cannot hold one"
                );
                let listed = d.entries(&b).unwrap();
                assert!(listed.iter().any(|e| e.name == entry && e.kind == kind));
                let back = d.get(&b, &entry).unwrap();
                assert_eq!(back.kind(), kind);
                assert_eq!(back.access(), access, "access travels with the handle");
                if kind == HandleKind::TcpConnection {
                    // Still the same connection: the client's bytes arrive.
                    use std::io::{Read as _, Write as _};
                    client.write_all(b"ping").unwrap();
                    let mut stream = std::net::TcpStream::from(back.into_fd());
                    let mut got = [0u8; 4];
                    stream.read_exact(&mut got).unwrap();
                    assert_eq!(&got, b"ping");
                }
            }
            Err(Refused { error, handle }) => {
                assert!(
                    !held,
                    "a {kind} was refused by a device that holds them: {error}"
                );
                assert_eq!(error.code(), ErrorCode::KindNotSupported, "{kind}: {error}");
                assert_eq!(handle.kind(), kind);
            }
        }
    }
}

pub fn file_content_and_offset_survive_the_round_trip(d: Arc<dyn Device>) {
    let b = name("box");
    d.create_box(&b).unwrap();
    let mut file = std::fs::File::from(memfd("0123456789").into_fd());
    file.seek(SeekFrom::Start(4)).unwrap();
    d.put(&b, &name("f"), Handle::from_fd(file.into()).unwrap())
        .unwrap();
    d.seal(&b).unwrap();
    d.unseal(&b).unwrap();
    let mut file = std::fs::File::from(d.get(&b, &name("f")).unwrap().into_fd());
    let mut rest = String::new();
    file.read_to_string(&mut rest).unwrap();
    assert_eq!(
        rest, "456789",
        "the file position is the open file's, and travels with it"
    );
}

pub fn ten_thousand_cycles_leak_no_fd(d: Arc<dyn Device>) {
    let b = name("box");
    d.create_box(&b).unwrap();
    let mut handle = memfd("cycle");
    let before = open_fds();
    for _ in 0..10_000 {
        d.put(&b, &name("x"), handle).unwrap();
        handle = d.get(&b, &name("x")).unwrap();
    }
    assert!(
        open_fds_settle_at(before),
        "{} fds open, {before} before",
        open_fds()
    );
    assert_eq!(content(handle), "cycle");
}

/// A guest context over `d` with `grants`.
fn guest(d: &Arc<dyn Device>, grants: &[Grant]) -> FdboxCtx {
    grants
        .iter()
        .fold(FdboxCtx::builder(d.clone()), |b, g| b.grant(g.clone()))
        .build()
}

pub fn bad_names_are_refused_before_the_device(d: Arc<dyn Device>) {
    let g = guest(&d, &[Grant::prefix("p").unwrap()]);
    let long = "p".repeat(256);
    for (bad, expected) in [
        ("", ErrorCode::InvalidName),
        (long.as_str(), ErrorCode::NameTooLong),
        ("p\0x", ErrorCode::InvalidName),
        ("p/x", ErrorCode::InvalidName),
    ] {
        assert_eq!(code(g.create_box(bad)), expected, "create {bad:?}");
        assert_eq!(code(g.open_box(bad)), expected, "open {bad:?}");
        assert_eq!(code(g.delete_box(bad)), expected, "delete {bad:?}");
    }
    let b = g.create_box("pbox").unwrap();
    for (bad, expected) in [
        ("", ErrorCode::InvalidName),
        (long.as_str(), ErrorCode::NameTooLong),
        ("a/b", ErrorCode::InvalidName),
        ("a\0", ErrorCode::InvalidName),
    ] {
        let refused = g.put(&b, bad, memfd("kept")).unwrap_err();
        assert_eq!(refused.error.code(), expected, "put {bad:?}");
        assert_eq!(content(refused.handle), "kept");
        assert_eq!(code(g.get(&b, bad)), expected, "get {bad:?}");
    }
    assert!(d.entries(&b).unwrap().is_empty());
    assert_eq!(
        d.boxes().unwrap().len(),
        1,
        "no bad name reached the device"
    );
}

pub fn ungranted_boxes_are_denied_whether_or_not_they_exist(d: Arc<dyn Device>) {
    d.create_box(&name("secret")).unwrap();
    d.put(&name("secret"), &name("key"), memfd("secret"))
        .unwrap();
    let g = guest(&d, &[Grant::one_box(name("mine"))]);
    for other in ["secret", "nonexistent"] {
        assert_eq!(
            code(g.open_box(other)),
            ErrorCode::AccessDenied,
            "open {other}"
        );
        assert_eq!(
            code(g.create_box(other)),
            ErrorCode::AccessDenied,
            "create {other}"
        );
        assert_eq!(
            code(g.delete_box(other)),
            ErrorCode::AccessDenied,
            "delete {other}"
        );
        let b = name(other);
        assert_eq!(code(g.get(&b, "key")), ErrorCode::AccessDenied);
        assert_eq!(code(g.entries(&b)), ErrorCode::AccessDenied);
        assert_eq!(code(g.seal(&b)), ErrorCode::AccessDenied);
        assert_eq!(code(g.unseal(&b)), ErrorCode::AccessDenied);
        assert_eq!(code(g.is_sealed(&b)), ErrorCode::AccessDenied);
        let refused = g.put(&b, "x", memfd("mine")).unwrap_err();
        assert_eq!(refused.error.code(), ErrorCode::AccessDenied);
        assert_eq!(content(refused.handle), "mine");
    }
    assert!(
        g.list_boxes().unwrap().is_empty(),
        "ungranted boxes are not listed"
    );
    assert_eq!(
        code(g.open_box("mine")),
        ErrorCode::NotFound,
        "a granted box may be missing"
    );
    g.create_box("mine").unwrap();
    assert_eq!(g.list_boxes().unwrap(), [name("mine")]);
    assert_eq!(
        content(d.get(&name("secret"), &name("key")).unwrap()),
        "secret"
    );
}

pub fn permissions_are_checked_per_operation(d: Arc<dyn Device>) {
    d.create_box(&name("ro")).unwrap();
    d.put(&name("ro"), &name("x"), memfd("x")).unwrap();
    let perms: Permissions = "get,unseal".parse().unwrap();
    let g = guest(&d, &[Grant::one_box(name("ro")).with_permissions(perms)]);
    let b = g.open_box("ro").unwrap();
    assert_eq!(code(g.create_box("ro")), ErrorCode::AccessDenied);
    assert_eq!(code(g.delete_box("ro")), ErrorCode::AccessDenied);
    assert_eq!(code(g.seal(&b)), ErrorCode::AccessDenied);
    assert_eq!(
        g.put(&b, "y", memfd("y")).unwrap_err().error.code(),
        ErrorCode::AccessDenied
    );
    assert_eq!(
        g.entries(&b).unwrap().len(),
        1,
        "a visible box can be listed"
    );
    d.seal(&b).unwrap();
    assert!(g.is_sealed(&b).unwrap());
    g.unseal(&b).unwrap();
    assert_eq!(content(g.get(&b, "x").unwrap()), "x");
}

pub fn prefix_grants_scope_creation_and_listing(d: Arc<dyn Device>) {
    d.create_box(&name("other")).unwrap();
    let g = guest(&d, &[Grant::prefix("app.").unwrap()]);
    g.create_box("app.one").unwrap();
    g.create_box("app.two").unwrap();
    assert_eq!(code(g.create_box("app")), ErrorCode::AccessDenied);
    assert_eq!(code(g.create_box("ap.three")), ErrorCode::AccessDenied);
    assert_eq!(g.list_boxes().unwrap(), [name("app.one"), name("app.two")]);
    g.delete_box("app.one").unwrap();
    assert_eq!(g.list_boxes().unwrap(), [name("app.two")]);
}

pub fn quotas_limit_boxes_and_entries(d: Arc<dyn Device>) {
    let g = FdboxCtx::builder(d.clone())
        .grant(Grant::prefix("q").unwrap())
        .quotas(Quotas {
            max_boxes: 2,
            max_entries_per_box: 3,
            ..Quotas::default()
        })
        .build();
    let b = g.create_box("q1").unwrap();
    g.create_box("q2").unwrap();
    assert_eq!(code(g.create_box("q3")), ErrorCode::QuotaExceeded);
    for i in 0..3 {
        g.put(&b, &format!("e{i}"), memfd("e")).unwrap();
    }
    let refused = g.put(&b, "e3", memfd("over")).unwrap_err();
    assert_eq!(refused.error.code(), ErrorCode::QuotaExceeded);
    assert_eq!(content(refused.handle), "over");
    g.get(&b, "e0").unwrap();
    g.put(&b, "e3", memfd("fits")).unwrap();
}

pub fn concurrent_puts_all_land(d: Arc<dyn Device>) {
    let b = name("box");
    d.create_box(&b).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (d, b) = (&d, &b);
            s.spawn(move || {
                for i in 0..100 {
                    d.put(b, &name(&format!("t{t}-{i}")), memfd("c")).unwrap();
                }
            });
        }
    });
    assert_eq!(d.status(&b).unwrap().entries, 400);
}

pub fn batch_puts_are_all_or_nothing(d: Arc<dyn Device>) {
    let b = name("box");
    d.create_box(&b).unwrap();
    d.put(&b, &name("taken"), memfd("old")).unwrap();
    for clash in ["taken", "a"] {
        let batch = vec![
            (name("a"), memfd("a")),
            (name("b"), memfd("b")),
            (name(clash), memfd("c")),
        ];
        let refused = d.put_many(&b, batch).unwrap_err();
        assert_eq!(
            refused.error.code(),
            ErrorCode::AlreadyExists,
            "clash with {clash}"
        );
        let back: Vec<_> = refused
            .entries
            .into_iter()
            .map(|(n, h)| (n.to_string(), content(h)))
            .collect();
        assert_eq!(
            back,
            [
                ("a".into(), "a".into()),
                ("b".into(), "b".into()),
                (clash.to_string(), "c".into())
            ]
        );
        assert_eq!(
            d.entries(&b).unwrap().len(),
            1,
            "nothing of a refused batch landed"
        );
    }
    d.put_many(&b, vec![(name("a"), memfd("a")), (name("b"), memfd("b"))])
        .unwrap();
    assert_eq!(d.status(&b).unwrap().entries, 3);
}

pub fn batch_gets_are_all_or_nothing(d: Arc<dyn Device>) {
    let b = name("box");
    d.create_box(&b).unwrap();
    d.put_many(&b, vec![(name("a"), memfd("a")), (name("b"), memfd("b"))])
        .unwrap();
    assert_eq!(
        code(d.get_many(&b, &[name("a"), name("missing")])),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(d.get_many(&b, &[name("a"), name("a")])),
        ErrorCode::NotFound
    );
    assert_eq!(
        d.status(&b).unwrap().entries,
        2,
        "a failed batch took nothing"
    );
    let got: Vec<_> = d
        .get_many(&b, &[name("b"), name("a")])
        .unwrap()
        .into_iter()
        .map(content)
        .collect();
    assert_eq!(got, ["b", "a"], "handles come back in the order asked");
    assert_eq!(d.status(&b).unwrap().entries, 0);
}

pub fn batches_larger_than_one_message_move_whole(d: Arc<dyn Device>) {
    let b = name("box");
    d.create_box(&b).unwrap();
    let names: Vec<Name> = (0..1000).map(|i| name(&format!("fd{i:04}"))).collect();
    let batch = names
        .iter()
        .map(|n| (n.clone(), memfd(n.as_str())))
        .collect();
    let before = open_fds();
    d.put_many(&b, batch).unwrap();
    assert_eq!(d.entries(&b).unwrap().len(), 1000);
    d.seal(&b).unwrap();
    d.unseal(&b).unwrap();
    let handles = d.get_many(&b, &names).unwrap();
    assert!(
        handles
            .into_iter()
            .zip(&names)
            .all(|(h, n)| content(h) == n.as_str())
    );
    assert!(open_fds_settle_at(before), "every fd moved and was closed");
}

/// A fresh directory for one test, removed when dropped.
pub fn tempdir() -> TempDir {
    TempDir::new("conformance")
}
