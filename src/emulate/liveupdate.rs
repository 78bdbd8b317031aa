//! The Live Update Orchestrator's behaviour (`/dev/liveupdate`, as of Linux
//! 7.2: kernel/liveupdate/luo_core.c, luo_session.c and luo_file.c, and
//! mm/memfd_luo.c, as `shared/spec/KERNEL-UAPI.md` section 2 describes
//! them): which open and which ioctl succeeds, and with which errno each
//! fails. Each function names the kernel function it follows.
//!
//! - `/dev/liveupdate` opens once at a time (EBUSY while the program holds
//!   an open of it); its ioctls create *outgoing* sessions, which the next
//!   kernel will get, and retrieve *incoming* ones, which the previous kernel
//!   left; each lives in a session fd.
//! - On an outgoing session, PRESERVE_FD keeps a memfd under a token and
//!   freezes its size; on an incoming one, RETRIEVE_FD gives it back (the
//!   same file each time) and FINISH drops what is left. GET_NAME works on
//!   both.
//! - A memfd is preserved once, keyed by its inode: from PRESERVE_FD until
//!   its session closes, and from RETRIEVE_FD until FINISH.
//! - Closing a session fd's last copy ends the session: an outgoing one
//!   un-preserves its files and frees its name, an incoming one is
//!   finished.
//! - Every argument struct starts with the caller's struct size; see
//!   [`read_sized`].
//!
//! The emulation: the files installed in the program for the device and
//! for each session are one end of a fresh socketpair ([`StandIn`]), not
//! anonymous inodes, so that a close in the program shows as POLLHUP on
//! the end the emulator keeps ([`Luo::reap`]). Preserved files are kept as
//! copies of the program's fds (the same open files). Results are written
//! into the caller's struct through /proc/PID/mem after the fd is installed
//! (SECCOMP_IOCTL_NOTIF_ADDFD without SEND). The frozen size is enforced
//! where the program resizes through ftruncate and fallocate, which the
//! filter traps ([`Luo::ftruncate`], [`Luo::fallocate`]; writes are not
//! trapped), and F_SEAL_WRITE is refused on it ([`Luo::add_seals`]). The kexec moment is the emulator's SIGTERM
//! ([`Luo::kexec_moment`]): the outgoing sessions open then travel
//! ([`super::state`]) and come back as incoming ones ([`Luo::restore`]).
//!
//! Where this differs from the kernel: see `LIMITS` in [`super`], which
//! `fdbox emulate --help` prints.

use super::caller::{Caller, GONE, os_errno, pending, read_struct, u32_at, u64_at};
use super::driver::Outcome;
use super::nodes::{components, identity};
use super::state::{SavedFile, SavedSession, read_all};
use fdbox_host::device::kernel::liveupdate_uapi::{
    LIVEUPDATE_IOCTL_CREATE_SESSION, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, LIVEUPDATE_SESSION_FINISH,
    LIVEUPDATE_SESSION_GET_NAME, LIVEUPDATE_SESSION_NAME_LENGTH, LIVEUPDATE_SESSION_PRESERVE_FD,
    LIVEUPDATE_SESSION_RETRIEVE_FD, LiveupdateSession, LiveupdateSessionFd,
    LiveupdateSessionFinish, LiveupdateSessionGetName,
};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::{FileType, MemfdFlags, OFlags, SealFlags, SeekFrom};
use std::fs::File;
use std::io::{self, Write as _};
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Files one session may preserve: this emulator's limit, beyond which
/// PRESERVE_FD fails with ENOSPC (the kernel's depends on its KHO memory).
pub const MAX_FILES_PER_SESSION: usize = 1024;

/// `TMPFS_MAGIC`, statfs(2)'s `f_type` of shmem, where memfds live unless
/// created with MFD_HUGETLB (on hugetlbfs, which LUO does not preserve).
/// The type is `f_type`'s on x86_64, the one ABI the filter lets through.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The seals a preserved memfd may have: `MEMFD_LUO_ALL_SEALS`
/// (include/linux/kho/abi/memfd.h), SEAL, SHRINK, GROW, WRITE,
/// FUTURE_WRITE and EXEC; a file with another is refused (EOPNOTSUPP).
const MEMFD_LUO_ALL_SEALS: u32 = 0x3F;

/// The largest memfd the kernel preserves: memfd_luo_preserve refuses one
/// of more than `u32::MAX` pages (EFBIG).
const MAX_PRESERVED_SIZE: u64 = u32::MAX as u64 * PAGE_SIZE;
const PAGE_SIZE: u64 = 4096;

/// `FALLOC_FL_KEEP_SIZE` and `FALLOC_FL_PUNCH_HOLE`, the only fallocate
/// modes shmem has (any other: EOPNOTSUPP).
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;

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
    /// Outgoing: the preserved files. Incoming: those FINISH has not
    /// released (retrieved or not).
    files: Vec<Preserved>,
}

struct Preserved {
    token: u64,
    /// Outgoing: a copy of the program's fd, the same open file. Incoming:
    /// the file RETRIEVE_FD gives out, every time.
    file: OwnedFd,
    /// Its inode (st_dev, st_ino): the kernel keys "preserved already" by
    /// inode (memfd_luo_get_id), so a dup, a re-open through /proc and a
    /// file retrieved but not finished all count.
    inode: (u64, u64),
    /// Outgoing: the size at PRESERVE_FD, which the kernel freezes
    /// (memfd_luo_preserve's shmem_freeze) while the file is preserved.
    size: u64,
    /// The memfd seals: outgoing, those at PRESERVE_FD (memfd_luo_preserve
    /// reads them then); incoming, those the kernel re-applied.
    seals: u32,
    /// Incoming: RETRIEVE_FD has given it out; from then until FINISH its
    /// inode counts as preserved (luo_retrieve_file's xa_insert).
    retrieved: bool,
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

/// The `size` an ioctl's struct starts with (EFAULT if unreadable): read
/// once the request number is known to be in the table, as the kernel's
/// get_user in luo_ioctl and luo_session_ioctl.
fn struct_size(caller: &dyn Caller, arg: u64) -> Result<u32, i32> {
    Ok(u32_at(&read_struct(caller, arg, 4)?, 0))
}

/// The struct an ioctl's `arg` points at, as the kernel's
/// copy_struct_from_user reads it; `size` is its first u32, the caller's
/// struct size. Below `known` bytes (the offset-end of the last field the
/// kernel uses, which is every struct's whole size) EINVAL; bytes past
/// `known` must be zero (else E2BIG, or EFAULT where unreadable, page by
/// page as check_zeroed_user). Returns the `known` bytes.
fn read_sized(caller: &dyn Caller, arg: u64, size: u32, known: usize) -> Result<Vec<u8>, i32> {
    let size = u64::from(size);
    if size < known as u64 {
        return Err(libc::EINVAL);
    }
    // A MiB at a time, page by page where that cannot be read: the first
    // non-zero byte (E2BIG) or unreadable page (EFAULT) decides, as in
    // check_zeroed_user.
    const CHUNK: u64 = 256 * PAGE_SIZE;
    let zero = |at: u64, end: u64| -> Result<(), i32> {
        let bytes = read_struct(caller, at, (end - at) as usize)?;
        match bytes.iter().any(|b| *b != 0) {
            true => Err(libc::E2BIG),
            false => Ok(()),
        }
    };
    let mut at = arg.saturating_add(known as u64);
    let end = arg.saturating_add(size);
    while at < end {
        let chunk_end = ((at / CHUNK + 1) * CHUNK).min(end);
        match zero(at, chunk_end) {
            Err(libc::EFAULT) => {
                while at < chunk_end {
                    let page_end = ((at / PAGE_SIZE + 1) * PAGE_SIZE).min(chunk_end);
                    zero(at, page_end)?;
                    at = page_end;
                }
            }
            other => other?,
        }
        at = chunk_end;
    }
    read_struct(caller, arg, known)
}

/// The bytes of a session name field before its first NUL, all 64 if it
/// has none.
fn name_field(bytes: &[u8], offset: usize) -> &[u8] {
    let field = &bytes[offset..offset + LIVEUPDATE_SESSION_NAME_LENGTH];
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

/// The name CREATE_SESSION makes: EINVAL if empty or without a NUL in its
/// 64 bytes (luo_session_create's strnlen check).
fn new_session_name(bytes: &[u8]) -> Result<Vec<u8>, i32> {
    let name = name_field(bytes, offset_of!(LiveupdateSession, name));
    if name.is_empty() || name.len() >= LIVEUPDATE_SESSION_NAME_LENGTH {
        return Err(libc::EINVAL);
    }
    Ok(name.to_vec())
}

/// Whether `fd` is a file LUO can preserve: a memfd on shmem (a regular
/// file with no name whose seals can be read, on tmpfs: not hugetlbfs),
/// as memfd_luo_can_preserve (shmem_file, i_nlink 0).
fn is_memfd(fd: BorrowedFd<'_>) -> bool {
    let Ok(stat) = rustix::fs::fstat(fd) else {
        return false;
    };
    FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
        && stat.st_nlink == 0
        && rustix::fs::fcntl_get_seals(fd).is_ok()
        && rustix::fs::fstatfs(fd).is_ok_and(|fs| fs.f_type == TMPFS_MAGIC)
}

/// Whether `fd` is open for writing.
fn writable(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fcntl_getfl(fd).is_ok_and(|flags| {
        let mode = flags & OFlags::ACCMODE;
        mode == OFlags::WRONLY || mode == OFlags::RDWR
    })
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

/// Which sessions a session request applies to (luo_session.c's
/// `enum luo_ioctl_type`); another is EINVAL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Applies {
    Outgoing,
    Incoming,
    All,
}

impl Luo {
    /// Sessions saved at the last kexec moment, as incoming sessions; each
    /// file a new memfd with its content, size, offset and seals, as
    /// memfd_luo_retrieve makes it. Its label is empty, so its name is
    /// `memfd:`; the kernel's has an empty name (memfd_alloc_file("")),
    /// which memfd_create cannot make.
    pub fn restore(&mut self, saved: Vec<SavedSession>) -> io::Result<()> {
        for session in saved {
            let mut files = Vec::new();
            for SavedFile {
                token,
                content,
                offset,
                seals,
            } in session.files
            {
                let memfd =
                    rustix::fs::memfd_create("", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
                let mut writer = File::from(memfd.try_clone()?);
                writer.write_all(&content)?;
                rustix::fs::seek(&memfd, SeekFrom::Start(offset))?;
                // After the content: a seal may forbid writing it.
                if seals != 0 {
                    rustix::fs::fcntl_add_seals(&memfd, SealFlags::from_bits_retain(seals))?;
                }
                let inode = identity(memfd.as_fd())?;
                files.push(Preserved {
                    token,
                    file: memfd,
                    inode,
                    size: content.len() as u64,
                    seals,
                    retrieved: false,
                });
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
        let saved_file = |name: &[u8], p: &Preserved| -> io::Result<SavedFile> {
            // The copy shares the program's file offset.
            let offset = rustix::fs::seek(&p.file, SeekFrom::Current(0))?;
            let mut content = read_all(p.file.as_fd())?;
            // The kernel carries the folios it pinned at PRESERVE_FD, the
            // size then: a write past it was EPERM there, which the
            // emulator does not see (see `fdbox emulate --help`).
            if content.len() as u64 != p.size {
                tracing::warn!(
                    "session {:?}, token {}: the memfd is {} bytes, not the {} it had when \
                     preserved; Linux 7.2 refuses a preserved memfd's growth (EPERM) and \
                     carries {} bytes, so does this emulation",
                    String::from_utf8_lossy(name),
                    p.token,
                    content.len(),
                    p.size,
                    p.size
                );
                content.resize(p.size as usize, 0);
            }
            Ok(SavedFile {
                token: p.token,
                content,
                offset,
                seals: p.seals,
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
                        saved_file(&s.name, p)
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

    /// Whether the inode `inode` is preserved: in an outgoing session, or
    /// retrieved from an incoming one not finished yet (the kernel's
    /// luo_preserved_files).
    fn in_use(&self, inode: (u64, u64)) -> bool {
        self.sessions.iter().any(|s| {
            s.files
                .iter()
                .any(|p| p.inode == inode && (!s.incoming || p.retrieved))
        })
    }

    /// The outgoing preserved file of inode `inode`, whose size the kernel
    /// freezes.
    fn frozen(&self, inode: (u64, u64)) -> Option<&Preserved> {
        self.sessions
            .iter()
            .filter(|s| !s.incoming)
            .flat_map(|s| &s.files)
            .find(|p| p.inode == inode)
    }

    /// The caller's `fd`, if it is a frozen (preserved) memfd, and its
    /// frozen size.
    fn frozen_fd(&self, caller: &dyn Caller, fd: i32) -> Option<(OwnedFd, u64)> {
        let file = caller.get_fd(fd).ok()?;
        let size = self.frozen(identity(file.as_fd()).ok()?)?.size;
        Some((file, size))
    }

    /// ftruncate(`fd`, `length`) in the caller: the errno to fail it with
    /// when `fd` is a preserved memfd whose size it would change (EPERM:
    /// shmem_setattr on an inode memfd_luo_preserve froze); `None` lets the
    /// kernel run it, where it gives the same answer (any other file, the
    /// same size, or a failure the kernel finds first: a negative length or
    /// an fd not open for writing, EINVAL; past RLIMIT_FSIZE, EFBIG).
    pub fn ftruncate(
        &self,
        caller: &dyn Caller,
        fd: i32,
        length: i64,
        file_size_limit: impl FnOnce() -> Option<u64>,
    ) -> Option<i32> {
        let length = u64::try_from(length).ok()?;
        let (file, size) = self.frozen_fd(caller, fd)?;
        if !writable(file.as_fd()) || length == size {
            return None;
        }
        if length > size && file_size_limit().is_some_and(|limit| length > limit) {
            return None;
        }
        Some(libc::EPERM)
    }

    /// fallocate(`fd`, `mode`, `offset`, `len`) in the caller: EPERM when
    /// `fd` is a preserved memfd and vfs_fallocate's checks pass, as
    /// shmem_fallocate on a frozen inode (any mode shmem has: allocate,
    /// KEEP_SIZE, PUNCH_HOLE); `None` lets the kernel run it, where it
    /// fails the same way (EINVAL, EOPNOTSUPP, EBADF, EFBIG) or it is not
    /// a preserved file.
    pub fn fallocate(
        &self,
        caller: &dyn Caller,
        fd: i32,
        mode: i32,
        offset: i64,
        len: i64,
    ) -> Option<i32> {
        if offset < 0 || len <= 0 || offset.checked_add(len).is_none() {
            return None;
        }
        let shmem_modes = [
            0,
            FALLOC_FL_KEEP_SIZE,
            FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
        ];
        if !shmem_modes.contains(&mode) {
            return None;
        }
        let (file, _) = self.frozen_fd(caller, fd)?;
        writable(file.as_fd()).then_some(libc::EPERM)
    }

    /// fcntl(`fd`, F_ADD_SEALS, `seals`) in the caller: EBUSY when `fd` is a
    /// preserved memfd with pages (its size at PRESERVE_FD not 0) and the
    /// seals add F_SEAL_WRITE (or F_SEAL_EXEC on an executable file, which
    /// implies it): memfd_add_seals waits for pinned pages, which
    /// memfd_luo_preserve pinned, and gives up. `None` lets the kernel run
    /// it, where it gives the same answer (EPERM not writable or sealed,
    /// EINVAL unknown seals; any other seal is added, as the kernel does).
    pub fn add_seals(&self, caller: &dyn Caller, fd: i32, seals: u32) -> Option<i32> {
        const F_SEAL_SEAL: u32 = 0x1;
        const F_SEAL_SHRINK_GROW: u32 = 0x2 | 0x4;
        const F_SEAL_WRITE: u32 = 0x8;
        const F_SEAL_FUTURE_WRITE: u32 = 0x10;
        const F_SEAL_EXEC: u32 = 0x20;
        let (file, size) = self.frozen_fd(caller, fd)?;
        let current = rustix::fs::fcntl_get_seals(&file).ok()?.bits();
        if size == 0
            || !writable(file.as_fd())
            || seals & !MEMFD_LUO_ALL_SEALS != 0
            || current & (F_SEAL_SEAL | F_SEAL_WRITE) != 0
        {
            return None;
        }
        let executable = rustix::fs::fstat(&file).ok()?.st_mode & 0o111 != 0;
        let mut seals = seals;
        if seals & F_SEAL_EXEC != 0 && executable {
            seals |= F_SEAL_SHRINK_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
        }
        (seals & F_SEAL_WRITE != 0).then_some(libc::EBUSY)
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
        let result = match node {
            Node::Device => self.device_ioctl(request, arg, caller),
            Node::Session(id) => self.session_ioctl(id, request, arg, caller),
        };
        match result {
            Ok(()) => Outcome::Done,
            Err(GONE) => Outcome::Gone,
            Err(e) => Outcome::Errno(e),
        }
    }

    /// A request on `/dev/liveupdate`, checked in luo_core.c luo_ioctl's
    /// order: the number (`_IOC_NR`) in the table, else EINVAL, before the
    /// argument is read; the struct's size (EFAULT); the whole request, else
    /// ENOTTY (the kernel's ENOIOCTLCMD: same number, other type, direction
    /// or size bits); the struct (EINVAL, E2BIG, EFAULT).
    fn device_ioctl(&mut self, request: u32, arg: u64, caller: &dyn Caller) -> Result<(), i32> {
        let op = match request & 0xFF {
            0x00 => LIVEUPDATE_IOCTL_CREATE_SESSION,
            0x01 => LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
            _ => return Err(libc::EINVAL),
        };
        let size = struct_size(caller, arg)?;
        if request != op {
            return Err(libc::ENOTTY);
        }
        let bytes = read_sized(caller, arg, size, size_of::<LiveupdateSession>())?;
        if op == LIVEUPDATE_IOCTL_CREATE_SESSION {
            self.create_session(&bytes, arg, caller)
        } else {
            self.retrieve_session(&bytes, arg, caller)
        }
    }

    /// A request on a session fd, checked in luo_session.c
    /// luo_session_ioctl's order: the number (0x40..=0x43), else EINVAL,
    /// before the argument is read; the size (EFAULT); the whole request
    /// (ENOTTY); the session's direction (EINVAL: RETRIEVE_FD and FINISH
    /// on an outgoing session, PRESERVE_FD on an incoming one, whatever the
    /// struct holds); the struct (EINVAL, E2BIG, EFAULT).
    fn session_ioctl(
        &mut self,
        id: u64,
        request: u32,
        arg: u64,
        caller: &dyn Caller,
    ) -> Result<(), i32> {
        let (op, known, applies) = match request & 0xFF {
            0x40 => (
                LIVEUPDATE_SESSION_PRESERVE_FD,
                size_of::<LiveupdateSessionFd>(),
                Applies::Outgoing,
            ),
            0x41 => (
                LIVEUPDATE_SESSION_RETRIEVE_FD,
                size_of::<LiveupdateSessionFd>(),
                Applies::Incoming,
            ),
            0x42 => (
                LIVEUPDATE_SESSION_FINISH,
                size_of::<LiveupdateSessionFinish>(),
                Applies::Incoming,
            ),
            0x43 => (
                LIVEUPDATE_SESSION_GET_NAME,
                size_of::<LiveupdateSessionGetName>(),
                Applies::All,
            ),
            _ => return Err(libc::EINVAL),
        };
        let size = struct_size(caller, arg)?;
        if request != op {
            return Err(libc::ENOTTY);
        }
        let incoming = self.session(id)?.incoming;
        let valid = match applies {
            Applies::Outgoing => !incoming,
            Applies::Incoming => incoming,
            Applies::All => true,
        };
        if !valid {
            return Err(libc::EINVAL);
        }
        let bytes = read_sized(caller, arg, size, known)?;
        match op {
            LIVEUPDATE_SESSION_PRESERVE_FD => self.preserve_fd(id, &bytes, caller),
            LIVEUPDATE_SESSION_RETRIEVE_FD => self.retrieve_fd(id, &bytes, arg, caller),
            LIVEUPDATE_SESSION_FINISH => self.finish(id, &bytes, caller),
            _ => self.get_name(id, bytes, arg, caller),
        }
    }

    fn session(&mut self, id: u64) -> Result<&mut Session, i32> {
        // A session lives as long as its stand-in, which the call came on.
        self.sessions
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(libc::EINVAL)
    }

    /// CREATE_SESSION: the name (EINVAL), a name an outgoing session has
    /// (EEXIST); then the session fd.
    fn create_session(&mut self, bytes: &[u8], arg: u64, caller: &dyn Caller) -> Result<(), i32> {
        let name = new_session_name(bytes)?;
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

    /// RETRIEVE_SESSION: no incoming session of that name (ENOENT: the
    /// kernel checks no length, so an empty or unterminated name is simply
    /// not found, luo_session_retrieve), retrieved already (EINVAL); then
    /// the session fd.
    fn retrieve_session(&mut self, bytes: &[u8], arg: u64, caller: &dyn Caller) -> Result<(), i32> {
        let name = name_field(bytes, offset_of!(LiveupdateSession, name));
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

    /// PRESERVE_FD, in luo_preserve_file's order: a token in use (EEXIST);
    /// a full session (ENOSPC); no such fd (EBADF); not a memfd (ENOENT); an
    /// inode preserved already, in any session, or retrieved and not
    /// finished (EBUSY); then memfd_luo_preserve's checks: seals it does not
    /// know (EOPNOTSUPP), over `u32::MAX` pages (EFBIG). The caller's fd
    /// stays open, as in the kernel; the file's size and seals now are the
    /// ones that travel.
    fn preserve_fd(&mut self, id: u64, bytes: &[u8], caller: &dyn Caller) -> Result<(), i32> {
        let fd = u32_at(bytes, offset_of!(LiveupdateSessionFd, fd)) as i32;
        let token = u64_at(bytes, offset_of!(LiveupdateSessionFd, token));
        let session = self.session(id)?;
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
        let stat = rustix::fs::fstat(&file).map_err(|e| e.raw_os_error())?;
        let inode = (stat.st_dev, stat.st_ino);
        if self.in_use(inode) {
            return Err(libc::EBUSY);
        }
        let seals = rustix::fs::fcntl_get_seals(&file)
            .map_err(|e| e.raw_os_error())?
            .bits();
        if seals & !MEMFD_LUO_ALL_SEALS != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        let size = stat.st_size as u64;
        if size > MAX_PRESERVED_SIZE {
            return Err(libc::EFBIG);
        }
        self.session(id)?.files.push(Preserved {
            token,
            file,
            inode,
            size,
            seals,
            retrieved: false,
        });
        Ok(())
    }

    /// RETRIEVE_FD: no such token, or FINISH came (ENOENT); then a new
    /// close-on-exec fd of the file in the struct: the same file each time
    /// the token is retrieved, until FINISH (luo_retrieve_file).
    fn retrieve_fd(
        &mut self,
        id: u64,
        bytes: &[u8],
        arg: u64,
        caller: &dyn Caller,
    ) -> Result<(), i32> {
        let token = u64_at(bytes, offset_of!(LiveupdateSessionFd, token));
        pending(caller)?;
        let session = self.session(id)?;
        let file = session
            .files
            .iter_mut()
            .find(|p| p.token == token)
            .ok_or(libc::ENOENT)?;
        let field = offset_of!(LiveupdateSessionFd, fd) as u64;
        let written = install(caller, file.file.as_fd(), arg + field)?;
        file.retrieved = true;
        written
    }

    /// FINISH: reserved not 0 (EINVAL); then the session's files are
    /// released, retrieved or not (the retrieved ones stay the program's),
    /// and RETRIEVE_FD finds none.
    fn finish(&mut self, id: u64, bytes: &[u8], caller: &dyn Caller) -> Result<(), i32> {
        if u32_at(bytes, offset_of!(LiveupdateSessionFinish, reserved)) != 0 {
            return Err(libc::EINVAL);
        }
        pending(caller)?;
        self.session(id)?.files.clear();
        Ok(())
    }

    /// GET_NAME (Linux 7.2), on any session: reserved not 0 (EINVAL); then
    /// the struct comes back with the session's name, NUL-terminated, in
    /// its name field (luo_session_get_name's strscpy; the bytes after the
    /// NUL are the caller's).
    fn get_name(
        &mut self,
        id: u64,
        mut bytes: Vec<u8>,
        arg: u64,
        caller: &dyn Caller,
    ) -> Result<(), i32> {
        if u32_at(&bytes, offset_of!(LiveupdateSessionGetName, reserved)) != 0 {
            return Err(libc::EINVAL);
        }
        pending(caller)?;
        let name = &self.session(id)?.name;
        let at = offset_of!(LiveupdateSessionGetName, name);
        bytes[at..at + name.len()].copy_from_slice(name);
        bytes[at + name.len()] = 0;
        caller.write(arg, &bytes).map_err(|e| os_errno(&e))
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
        // CREATE_SESSION refuses an empty or unterminated name...
        assert_eq!(new_session_name(&bytes), Err(libc::EINVAL));
        bytes[8..10].copy_from_slice(b"ab");
        assert_eq!(new_session_name(&bytes), Ok(b"ab".to_vec()));
        bytes[8..].fill(b'x');
        assert_eq!(new_session_name(&bytes), Err(libc::EINVAL));
        // ...which RETRIEVE_SESSION simply looks up (and does not find).
        assert_eq!(name_field(&bytes, 8).len(), 64);
    }

    #[test]
    fn memfds_are_preservable_and_reopens_are_one_inode() {
        use std::os::fd::AsRawFd as _;
        let memfd = rustix::fs::memfd_create("t", MemfdFlags::CLOEXEC).unwrap();
        assert!(is_memfd(memfd.as_fd()));
        assert!(writable(memfd.as_fd()));
        let reopened = File::open(format!("/proc/self/fd/{}", memfd.as_raw_fd())).unwrap();
        assert!(!writable(reopened.as_fd()));
        assert_eq!(
            identity(memfd.as_fd()).unwrap(),
            identity(reopened.as_fd()).unwrap()
        );
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert!(!is_memfd(r.as_fd()));
        assert!(!is_memfd(File::open("/proc/self/status").unwrap().as_fd()));
    }
}
