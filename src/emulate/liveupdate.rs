//! The Live Update Orchestrator's behaviour (`/dev/liveupdate`, Linux 6.19+,
//! kernel/liveupdate/luo_session.c and luo_file.c, as
//! `shared/spec/KERNEL-UAPI.md` section 2 describes it): which open and which
//! ioctl succeeds, and with which errno each fails.
//!
//! - `/dev/liveupdate` opens once at a time (EBUSY while the program holds
//!   an open of it); its ioctls create *outgoing* sessions, which the next
//!   kernel will get, and retrieve *incoming* ones, which the previous kernel
//!   left; each lives in a session fd.
//! - On an outgoing session, PRESERVE_FD keeps a memfd under a token; on an
//!   incoming one, RETRIEVE_FD gives it back (take-once) and FINISH drops
//!   what was not taken.
//! - Closing a session fd's last copy ends the session: an outgoing one
//!   un-preserves its files and frees its name, an incoming one is gone.
//! - Every argument struct starts with the caller's struct size; see
//!   [`read_sized`].
//!
//! The emulation: the files installed in the program for the device and
//! for each session are one end of a fresh socketpair ([`StandIn`]), not
//! anonymous inodes, so that a close in the program shows as POLLHUP on
//! the end the emulator keeps ([`Luo::reap`]). Preserved files are kept as
//! copies of the program's fds (the same open files). Results are written
//! into the caller's struct through /proc/PID/mem after the fd is installed
//! (SECCOMP_IOCTL_NOTIF_ADDFD without SEND). The kexec moment is the
//! emulator's SIGTERM ([`Luo::kexec_moment`]): the outgoing sessions open then
//! travel ([`super::state`]) and come back as incoming ones
//! ([`Luo::restore`]).
//!
//! Where this differs from the kernel (also in `fdbox emulate --help`):
//! - the device and session files are sockets, not anon inodes (fstat shows
//!   a socket, read finds end-of-file, write is accepted, and shutdown of
//!   both directions counts as a close);
//! - the kexec moment is SIGTERM to the emulator; at any other exit the
//!   outgoing sessions still open are saved (normally none);
//! - a session holds at most [`MAX_FILES_PER_SESSION`] files (ENOSPC), each
//!   an fd of the emulator (EMFILE past its fd limit), and a struct `size`
//!   over [`MAX_STRUCT_SIZE`] is E2BIG;
//! - "memfd" is a nameless shmem file with readable seals, so an unlinked
//!   tmpfs file counts; hugetlb memfds are refused (ENOENT) as by the kernel;
//! - results are written through /proc/PID/mem after the fd is installed:
//!   read-only memory is written anyway, and an unwritable struct fails the
//!   call (EFAULT) with the fd installed;
//! - RETRIEVE_FD is take-once (ENOENT for a token retrieved already);
//! - the order of the checks where several fail at once is this module's
//!   (each function's doc gives it), not necessarily the kernel's.

use super::caller::{Caller, GONE, os_errno, pending, read_struct, u32_at, u64_at};
use super::driver::Outcome;
use super::nodes::{components, identity};
use super::state::{SavedFile, SavedSession, read_all};
use fdbox_host::device::kernel::liveupdate_uapi::{
    LIVEUPDATE_IOCTL_CREATE_SESSION, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, LIVEUPDATE_SESSION_FINISH,
    LIVEUPDATE_SESSION_NAME_LENGTH, LIVEUPDATE_SESSION_PRESERVE_FD, LIVEUPDATE_SESSION_RETRIEVE_FD,
    LiveupdateSession, LiveupdateSessionFd, LiveupdateSessionFinish,
};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::{FileType, MemfdFlags, SeekFrom};
use std::fs::File;
use std::io::{self, Write as _};
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Files one session may preserve: this emulator's limit, beyond which
/// PRESERVE_FD fails with ENOSPC (the kernel's depends on its KHO memory).
pub const MAX_FILES_PER_SESSION: usize = 1024;

/// The largest struct `size` whose tail the emulator reads to check it is
/// zero; a larger one is E2BIG (the kernel reads any size).
pub const MAX_STRUCT_SIZE: usize = 4096;

/// `TMPFS_MAGIC`, statfs(2)'s `f_type` of shmem, where memfds live unless
/// created with MFD_HUGETLB (on hugetlbfs, which LUO does not preserve).
/// The type is `f_type`'s on x86_64, the one ABI the filter lets through.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// `KCMP_FILE`: kcmp(2) compares two fds' open files.
const KCMP_FILE: libc::c_int = 0;

/// What one of the program's fds is to the emulated device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// An open of `/dev/liveupdate`.
    Device,
    /// A session fd; the session's id.
    Session(u64),
}

/// The file the program holds for a [`Node`]: the peer of `ours`, whose
/// (st_dev, st_ino) is `id`. The emulator keeps only `ours`, so the
/// program's close of the last copy of the peer hangs `ours` up.
struct StandIn {
    node: Node,
    ours: OwnedFd,
    id: (u64, u64),
}

impl StandIn {
    /// A new stand-in for `node`, and the end to install in the program
    /// (to drop once installed).
    fn new(node: Node) -> io::Result<(Self, OwnedFd)> {
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        // A read in the program finds end-of-file rather than blocking
        // forever; the emulator's end still hangs up only on the close.
        rustix::net::shutdown(&ours, rustix::net::Shutdown::Write)?;
        let id = identity(theirs.as_fd())?;
        Ok((Self { node, ours, id }, theirs))
    }
}

/// A session, outgoing (created here) or incoming (restored).
struct Session {
    id: u64,
    name: Vec<u8>,
    incoming: bool,
    /// Incoming: RETRIEVE_SESSION has given it out.
    retrieved: bool,
    /// Outgoing: the preserved files. Incoming: those neither retrieved nor
    /// released by FINISH.
    files: Vec<Preserved>,
}

struct Preserved {
    token: u64,
    /// Outgoing: a copy of the program's fd, the same open file.
    file: OwnedFd,
    /// Its inode (st_dev, st_ino): only files of one inode can be one open
    /// file, so PRESERVE_FD's "preserved already" check compares open files
    /// (kcmp) within an inode, not across every preserved file.
    inode: (u64, u64),
}

impl Preserved {
    fn new(token: u64, file: OwnedFd) -> rustix::io::Result<Self> {
        let stat = rustix::fs::fstat(&file)?;
        Ok(Preserved {
            token,
            file,
            inode: (stat.st_dev, stat.st_ino),
        })
    }
}

/// The emulated orchestrator: sessions and the stand-ins the program holds.
#[derive(Default)]
pub struct Luo {
    standins: Vec<StandIn>,
    sessions: Vec<Session>,
    next_id: u64,
    /// The outgoing sessions at the kexec moment, once it came.
    snapshot: Option<Vec<SavedSession>>,
}

/// Whether `path` names `/dev/liveupdate` (absolute; repeated '/' and '.'
/// allowed, as for FDBox's nodes).
pub fn is_device_path(path: &[u8]) -> bool {
    matches!(components(path).as_deref(), Some([b"dev", b"liveupdate"]))
}

/// The struct an ioctl's `arg` points at, as the kernel's
/// copy_struct_from_user reads it; `size` is its first u32, the caller's
/// struct size. Below `known` bytes (the offset-end of the last field the
/// kernel uses, which is every struct's whole size) EINVAL; bytes past
/// `known` must be zero (else E2BIG), and are only read up to
/// [`MAX_STRUCT_SIZE`] (E2BIG beyond). Returns the `known` bytes.
fn read_sized(caller: &dyn Caller, arg: u64, size: u32, known: usize) -> Result<Vec<u8>, i32> {
    let size = usize::try_from(size).map_err(|_| libc::E2BIG)?;
    if size < known {
        return Err(libc::EINVAL);
    }
    if size > MAX_STRUCT_SIZE {
        return Err(libc::E2BIG);
    }
    let mut bytes = read_struct(caller, arg, size)?;
    if bytes[known..].iter().any(|b| *b != 0) {
        return Err(libc::E2BIG);
    }
    bytes.truncate(known);
    Ok(bytes)
}

/// The session name in a [`LiveupdateSession`]: the bytes before the first
/// NUL of its field; EINVAL if there is none or the name is empty.
fn session_name(bytes: &[u8]) -> Result<Vec<u8>, i32> {
    let start = offset_of!(LiveupdateSession, name);
    let field = &bytes[start..start + LIVEUPDATE_SESSION_NAME_LENGTH];
    match field.iter().position(|b| *b == 0) {
        Some(0) | None => Err(libc::EINVAL),
        Some(end) => Ok(field[..end].to_vec()),
    }
}

/// Whether `fd` is a file LUO can preserve: a memfd on shmem (a regular
/// file with no name whose seals can be read, on tmpfs: not hugetlbfs).
fn is_memfd(fd: BorrowedFd<'_>) -> bool {
    let Ok(stat) = rustix::fs::fstat(fd) else {
        return false;
    };
    FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
        && stat.st_nlink == 0
        && rustix::fs::fcntl_get_seals(fd).is_ok()
        && rustix::fs::fstatfs(fd).is_ok_and(|fs| fs.f_type == TMPFS_MAGIC)
}

/// Whether `a` and `b` are one open file (struct file): dup'd fds are, two
/// opens of one inode are not.
fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    // Variadic arguments are passed at full width: the fds are unsigned
    // longs to kcmp.
    let me = libc::c_long::from(std::process::id());
    let fd = |f: BorrowedFd<'_>| libc::c_ulong::from(f.as_raw_fd().unsigned_abs());
    // SAFETY: kcmp takes integers only (two pids, a type, two fds) and
    // reads no memory of this process.
    let rc = unsafe { libc::syscall(libc::SYS_kcmp, me, me, KCMP_FILE, fd(a), fd(b)) };
    rc == 0
}

/// Install `fd` in the caller as a new close-on-exec fd and write its number
/// at `addr` (the `fd` field of its struct). `Err`: not installed. `Ok(Err)`:
/// installed, but the number could not be written (EFAULT); the fd is the
/// program's all the same (the kernel checks before it installs).
fn install(caller: &dyn Caller, fd: BorrowedFd<'_>, addr: u64) -> Result<Result<(), i32>, i32> {
    let number = caller.add_fd(fd, true).map_err(|e| os_errno(&e))?;
    Ok(caller
        .write(addr, &number.to_ne_bytes())
        .map_err(|e| os_errno(&e)))
}

impl Luo {
    /// Sessions saved at the last kexec moment, as incoming sessions.
    pub fn restore(&mut self, saved: Vec<SavedSession>) -> io::Result<()> {
        for session in saved {
            let mut files = Vec::new();
            for SavedFile {
                token,
                content,
                offset,
            } in session.files
            {
                let memfd = rustix::fs::memfd_create(
                    "fdbox-liveupdate",
                    MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
                )?;
                let mut writer = File::from(memfd.try_clone()?);
                writer.write_all(&content)?;
                rustix::fs::seek(&memfd, SeekFrom::Start(offset))?;
                files.push(Preserved::new(token, memfd)?);
            }
            let id = self.new_id();
            self.sessions.push(Session {
                id,
                name: session.name,
                incoming: true,
                retrieved: false,
                files,
            });
        }
        Ok(())
    }

    /// The outgoing sessions to save at exit: those of the kexec moment if
    /// it came (SIGTERM), else those open now (normally none: the program's
    /// exit closed them).
    pub fn saved(&mut self) -> Vec<SavedSession> {
        match self.snapshot.take() {
            Some(snapshot) => snapshot,
            None => {
                self.reap();
                self.outgoing()
            }
        }
    }

    /// The kexec moment: remember the outgoing sessions open now, with
    /// each file's content and offset as they are now.
    pub fn kexec_moment(&mut self) {
        self.reap();
        self.snapshot = Some(self.outgoing());
    }

    fn outgoing(&self) -> Vec<SavedSession> {
        let saved_file = |p: &Preserved| -> io::Result<SavedFile> {
            // The copy shares the program's file offset.
            let offset = rustix::fs::seek(&p.file, SeekFrom::Current(0))?;
            Ok(SavedFile {
                token: p.token,
                content: read_all(p.file.as_fd())?,
                offset,
            })
        };
        self.sessions
            .iter()
            .filter(|s| !s.incoming)
            .map(|s| SavedSession {
                name: s.name.clone(),
                files: s
                    .files
                    .iter()
                    .filter_map(|p| {
                        saved_file(p)
                            .inspect_err(|e| tracing::warn!("cannot save token {}: {e}", p.token))
                            .ok()
                    })
                    .collect(),
            })
            .collect()
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The emulator's ends of the stand-ins, to watch for hang-ups.
    pub fn watched(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.standins.iter().map(|s| s.ours.as_fd())
    }

    /// Process the program's closes: a stand-in whose peer is gone frees
    /// the one open of the device, or ends its session (an outgoing one
    /// un-preserves its files, an incoming one is finished). Called before
    /// each answer, so a close followed by a call is seen in that order,
    /// as the kernel's synchronous release.
    pub fn reap(&mut self) {
        let mut fds: Vec<PollFd<'_>> = self
            .standins
            .iter()
            .map(|s| PollFd::new(&s.ours, PollFlags::empty()))
            .collect();
        if fds.is_empty() {
            return;
        }
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if rustix::event::poll(&mut fds, Some(&zero)).is_err() {
            // EINTR, say: the next call sees them.
            return;
        }
        let closed: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().intersects(PollFlags::HUP | PollFlags::ERR))
            .collect();
        drop(fds);
        let mut closed = closed.into_iter();
        let mut ended = Vec::new();
        self.standins.retain(|s| {
            let gone = closed.next().unwrap_or(false);
            if gone && let Node::Session(id) = s.node {
                ended.push(id);
            }
            !gone
        });
        self.sessions.retain(|s| !ended.contains(&s.id));
    }

    /// An open of `/dev/liveupdate`: EBUSY while the program holds one;
    /// else a new stand-in, which `send` installs in the caller as its
    /// call's result (or returns the errno to fail it with).
    pub fn open(
        &mut self,
        send: impl FnOnce(BorrowedFd<'_>) -> Result<(), i32>,
    ) -> Result<(), i32> {
        if self.standins.iter().any(|s| s.node == Node::Device) {
            return Err(libc::EBUSY);
        }
        let (standin, theirs) = StandIn::new(Node::Device).map_err(|e| os_errno(&e))?;
        send(theirs.as_fd())?;
        self.standins.push(standin);
        Ok(())
    }

    /// Which node `fd` (a copy of one of the program's fds) is, if any.
    pub fn identify(&self, fd: BorrowedFd<'_>) -> Option<Node> {
        let id = identity(fd).ok()?;
        self.standins.iter().find(|s| s.id == id).map(|s| s.node)
    }

    /// Run ioctl `request` with argument `arg` on `node`. No capability is
    /// checked: the device's mode (root, 0600) guards it.
    pub fn ioctl(&mut self, node: Node, request: u32, arg: u64, caller: &dyn Caller) -> Outcome {
        let result = (|| {
            // The kernel reads the size before it looks the request up.
            let size = u32_at(&read_struct(caller, arg, 4)?, 0);
            match (node, request) {
                (Node::Device, LIVEUPDATE_IOCTL_CREATE_SESSION) => {
                    self.create_session(arg, size, caller)
                }
                (Node::Device, LIVEUPDATE_IOCTL_RETRIEVE_SESSION) => {
                    self.retrieve_session(arg, size, caller)
                }
                (Node::Session(id), LIVEUPDATE_SESSION_PRESERVE_FD) => {
                    self.preserve_fd(id, arg, size, caller)
                }
                (Node::Session(id), LIVEUPDATE_SESSION_RETRIEVE_FD) => {
                    self.retrieve_fd(id, arg, size, caller)
                }
                (Node::Session(id), LIVEUPDATE_SESSION_FINISH) => {
                    self.finish(id, arg, size, caller)
                }
                // Not in the device's (or the session's) table of requests.
                _ => Err(libc::EINVAL),
            }
        })();
        match result {
            Ok(()) => Outcome::Done,
            Err(GONE) => Outcome::Gone,
            Err(e) => Outcome::Errno(e),
        }
    }

    fn session(&mut self, id: u64) -> Result<&mut Session, i32> {
        // A session lives as long as its stand-in, which the call came on.
        self.sessions
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(libc::EINVAL)
    }

    /// CREATE_SESSION: the struct (EINVAL, E2BIG), the name (EINVAL), a name
    /// an outgoing session has (EEXIST); then the session fd.
    fn create_session(&mut self, arg: u64, size: u32, caller: &dyn Caller) -> Result<(), i32> {
        let bytes = read_sized(caller, arg, size, size_of::<LiveupdateSession>())?;
        let name = session_name(&bytes)?;
        pending(caller)?;
        // Incoming sessions are another list: the next kernel's session may
        // take the name of the previous kernel's.
        if self.sessions.iter().any(|s| !s.incoming && s.name == name) {
            return Err(libc::EEXIST);
        }
        let id = self.new_id();
        let written = self.new_session_fd(id, arg, caller)?;
        self.sessions.push(Session {
            id,
            name,
            incoming: false,
            retrieved: false,
            files: Vec::new(),
        });
        written
    }

    /// RETRIEVE_SESSION: the struct, the name (EINVAL), no such incoming
    /// session (ENOENT), retrieved already (EINVAL); then the session fd.
    fn retrieve_session(&mut self, arg: u64, size: u32, caller: &dyn Caller) -> Result<(), i32> {
        let bytes = read_sized(caller, arg, size, size_of::<LiveupdateSession>())?;
        let name = session_name(&bytes)?;
        pending(caller)?;
        let session = self
            .sessions
            .iter()
            .position(|s| s.incoming && s.name == name)
            .ok_or(libc::ENOENT)?;
        if self.sessions[session].retrieved {
            return Err(libc::EINVAL);
        }
        let id = self.sessions[session].id;
        let written = self.new_session_fd(id, arg, caller)?;
        self.sessions[session].retrieved = true;
        written
    }

    /// Install a session fd for session `id` in the caller, its number in
    /// the struct at `arg` (see [`install`]); once installed, its stand-in
    /// is watched.
    fn new_session_fd(
        &mut self,
        id: u64,
        arg: u64,
        caller: &dyn Caller,
    ) -> Result<Result<(), i32>, i32> {
        let (standin, theirs) = StandIn::new(Node::Session(id)).map_err(|e| os_errno(&e))?;
        let field = offset_of!(LiveupdateSession, fd) as u64;
        let written = install(caller, theirs.as_fd(), arg + field)?;
        self.standins.push(standin);
        Ok(written)
    }

    /// PRESERVE_FD: the struct; an incoming session (EINVAL); a token in use
    /// (EEXIST); a full session (ENOSPC); no such fd (EBADF); not a memfd
    /// (ENOENT); an open file preserved already, in any session (EBUSY). The
    /// caller's fd stays open, as in the kernel.
    fn preserve_fd(
        &mut self,
        id: u64,
        arg: u64,
        size: u32,
        caller: &dyn Caller,
    ) -> Result<(), i32> {
        let bytes = read_sized(caller, arg, size, size_of::<LiveupdateSessionFd>())?;
        let fd = u32_at(&bytes, offset_of!(LiveupdateSessionFd, fd)) as i32;
        let token = u64_at(&bytes, offset_of!(LiveupdateSessionFd, token));
        let session = self.session(id)?;
        if session.incoming {
            return Err(libc::EINVAL);
        }
        if session.files.iter().any(|p| p.token == token) {
            return Err(libc::EEXIST);
        }
        if session.files.len() >= MAX_FILES_PER_SESSION {
            return Err(libc::ENOSPC);
        }
        let file = caller.get_fd(fd).map_err(|e| match os_errno(&e) {
            // No such caller any more: the pending check says so.
            libc::ESRCH => libc::EBADF,
            e => e,
        })?;
        pending(caller)?;
        if !is_memfd(file.as_fd()) {
            return Err(libc::ENOENT);
        }
        let file = Preserved::new(token, file).map_err(|e| e.raw_os_error())?;
        let preserved = self
            .sessions
            .iter()
            .filter(|s| !s.incoming)
            .flat_map(|s| &s.files)
            .any(|p| p.inode == file.inode && same_file(p.file.as_fd(), file.file.as_fd()));
        if preserved {
            return Err(libc::EBUSY);
        }
        self.session(id)?.files.push(file);
        Ok(())
    }

    /// RETRIEVE_FD: the struct; an outgoing session (EINVAL); no such token,
    /// retrieved or finished already (ENOENT); then a new close-on-exec fd
    /// of the file, in the struct.
    fn retrieve_fd(
        &mut self,
        id: u64,
        arg: u64,
        size: u32,
        caller: &dyn Caller,
    ) -> Result<(), i32> {
        let bytes = read_sized(caller, arg, size, size_of::<LiveupdateSessionFd>())?;
        let token = u64_at(&bytes, offset_of!(LiveupdateSessionFd, token));
        pending(caller)?;
        let session = self.session(id)?;
        if !session.incoming {
            return Err(libc::EINVAL);
        }
        let index = session
            .files
            .iter()
            .position(|p| p.token == token)
            .ok_or(libc::ENOENT)?;
        let field = offset_of!(LiveupdateSessionFd, fd) as u64;
        let written = install(caller, session.files[index].file.as_fd(), arg + field)?;
        // Installed: the file is the program's now (take-once).
        session.files.remove(index);
        written
    }

    /// FINISH: the struct; reserved not 0 or an outgoing session (EINVAL);
    /// then the files not retrieved are released.
    fn finish(&mut self, id: u64, arg: u64, size: u32, caller: &dyn Caller) -> Result<(), i32> {
        let bytes = read_sized(caller, arg, size, size_of::<LiveupdateSessionFinish>())?;
        if u32_at(&bytes, offset_of!(LiveupdateSessionFinish, reserved)) != 0 {
            return Err(libc::EINVAL);
        }
        pending(caller)?;
        let session = self.session(id)?;
        if !session.incoming {
            return Err(libc::EINVAL);
        }
        session.files.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_device_paths_are_the_device() {
        assert!(is_device_path(b"/dev/liveupdate"));
        assert!(is_device_path(b"//dev/./liveupdate"));
        for other in [
            &b"dev/liveupdate"[..],
            b"/dev/liveupdate/x",
            b"/dev/fdbox/fdbox",
            b"/dev",
        ] {
            assert!(!is_device_path(other), "{other:?}");
        }
    }

    #[test]
    fn session_names_end_at_their_nul() {
        let mut bytes = [0u8; 72];
        assert_eq!(session_name(&bytes), Err(libc::EINVAL));
        bytes[8..10].copy_from_slice(b"ab");
        assert_eq!(session_name(&bytes), Ok(b"ab".to_vec()));
        bytes[8..].fill(b'x');
        assert_eq!(session_name(&bytes), Err(libc::EINVAL));
    }

    #[test]
    fn memfds_are_preservable_and_dups_are_one_file() {
        let memfd = rustix::fs::memfd_create("t", MemfdFlags::CLOEXEC).unwrap();
        assert!(is_memfd(memfd.as_fd()));
        let dup = memfd.try_clone().unwrap();
        assert!(same_file(memfd.as_fd(), dup.as_fd()));
        let reopened = File::open(format!("/proc/self/fd/{}", memfd.as_raw_fd())).unwrap();
        assert!(!same_file(memfd.as_fd(), reopened.as_fd()));
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert!(!is_memfd(r.as_fd()));
        assert!(!is_memfd(File::open("/proc/self/status").unwrap().as_fd()));
    }
}
