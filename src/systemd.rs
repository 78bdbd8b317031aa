//! What systemd (or the daemon's own previous image) hands `fdbox daemon`:
//! fds in `LISTEN_FDS`, and the notification socket in `NOTIFY_SOCKET`
//! through which the daemon reports readiness and keeps systemd's fd store in
//! line with its boxes.

use anyhow::{Context, Result, bail};
use fdbox_host::daemon::FdStore;
use rustix::io::FdFlags;
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use std::ffi::OsString;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// How long a notification may wait for room in the manager's queue.
const NOTIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The first fd of `LISTEN_FDS` (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Read an environment variable and remove it, so that nothing this process
/// starts inherits it.
fn take_var(name: &str) -> Option<OsString> {
    let value = std::env::var_os(name)?;
    // SAFETY: `fdbox daemon` calls this first thing, before it starts any
    // thread, so nothing reads the environment concurrently.
    unsafe { std::env::remove_var(name) };
    Some(value)
}

/// Take the fds passed with `LISTEN_FDS`, each with its name from
/// `LISTEN_FDNAMES` (`unknown` without it), as `sd_listen_fds_with_names`
/// does: only if `LISTEN_PID` is this process, and removing the variables
/// either way. The fds become close-on-exec. Call it before any thread
/// starts and before this process opens any fd.
pub fn take_listen_fds() -> Result<Vec<(String, OwnedFd)>> {
    let pid = take_var("LISTEN_PID");
    let count = take_var("LISTEN_FDS");
    let names = take_var("LISTEN_FDNAMES");
    let Some(count) = count else {
        return Ok(Vec::new());
    };
    let me = rustix::process::getpid().as_raw_nonzero().get();
    match pid.as_ref().and_then(|p| p.to_str()?.parse::<i32>().ok()) {
        Some(pid) if pid == me => {}
        _ => {
            tracing::warn!(
                "ignoring LISTEN_FDS: LISTEN_PID={:?} is not this process ({me})",
                pid.unwrap_or_default()
            );
            return Ok(Vec::new());
        }
    }
    let count: RawFd = count
        .to_str()
        .and_then(|c| c.parse().ok())
        .filter(|c| (0..=1 << 20).contains(c))
        .with_context(|| format!("LISTEN_FDS={count:?} is not a count of fds"))?;
    let names: Vec<String> = match names {
        Some(names) => names
            .to_str()
            .context("LISTEN_FDNAMES is not UTF-8")?
            .split(':')
            .map(str::to_owned)
            .collect(),
        None => vec!["unknown".to_owned(); count as usize],
    };
    if names.len() != count as usize {
        bail!(
            "LISTEN_FDNAMES names {} fds and LISTEN_FDS says {count}",
            names.len()
        );
    }
    let mut fds = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let raw = LISTEN_FDS_START + i as RawFd;
        if !is_open(raw) {
            bail!("LISTEN_FDS says fd {raw} ({name}) was passed, but it is not open");
        }
        // SAFETY: the fd is open (listed above), and LISTEN_FDS hands it to
        // this process to own; nothing in it has taken these numbers, as this
        // runs before the daemon opens anything.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Passed without close-on-exec; kept with it, so neither a child nor
        // the next image of an upgrade inherits it by accident.
        rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC)
            .with_context(|| format!("cannot make fd {raw} ({name}) close-on-exec"))?;
        fds.push((name, fd));
    }
    Ok(fds)
}

/// Whether this process has an fd numbered `raw` open.
pub fn is_open(raw: RawFd) -> bool {
    std::fs::symlink_metadata(format!("/proc/self/fd/{raw}")).is_ok()
}

/// How many fds this process has open.
pub fn count_open() -> io::Result<usize> {
    // Less the directory's own fd, listed while it is read.
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}

/// Whether `fd` is a listening `SOCK_SEQPACKET` Unix socket.
pub fn is_seqpacket_listener(fd: BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::socket_domain(fd).ok() == Some(AddressFamily::UNIX)
        && rustix::net::sockopt::socket_type(fd).ok() == Some(SocketType::SEQPACKET)
        && rustix::net::sockopt::socket_acceptconn(fd).unwrap_or(false)
}

/// The service manager's notification socket (`NOTIFY_SOCKET`).
pub struct Notifier {
    socket: OwnedFd,
    addr: SocketAddrUnix,
    /// The variable's value, to hand to the next image of an upgrade.
    value: OsString,
}

impl Notifier {
    /// The socket named by `NOTIFY_SOCKET`, removing the variable; none if
    /// it is unset.
    pub fn take_from_env() -> Result<Option<Arc<Self>>> {
        let Some(value) = take_var("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddrUnix::new_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddrUnix::new(bytes),
            _ => bail!("NOTIFY_SOCKET={value:?} is neither a socket path nor an abstract name"),
        }
        .with_context(|| format!("NOTIFY_SOCKET={value:?} is not a usable socket address"))?;
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .context("cannot open a socket to notify the service manager")?;
        // Every change waits for its fd store messages: a manager that stops
        // reading must not stop the daemon for good (the store then lags
        // and catches up at a later change).
        rustix::net::sockopt::set_socket_timeout(
            &socket,
            rustix::net::sockopt::Timeout::Send,
            Some(NOTIFY_TIMEOUT),
        )
        .context("cannot set a send timeout on the notification socket")?;
        Ok(Some(Arc::new(Self {
            socket,
            addr,
            value,
        })))
    }

    /// `NOTIFY_SOCKET`'s value.
    pub fn env_value(&self) -> &OsString {
        &self.value
    }

    /// Send one notification, with `fds` attached.
    pub fn send(&self, text: &str, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut heap;
        let space: &mut [MaybeUninit<u8>] = if fds.len() <= 1 {
            &mut space
        } else {
            heap = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
            &mut heap
        };
        let mut control = SendAncillaryBuffer::new(space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(io::Error::other("too many fds for one notification"));
        }
        loop {
            match rustix::net::sendmsg_addr(
                &self.socket,
                &self.addr,
                &[IoSlice::new(text.as_bytes())],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// systemd's fd store, reached through the notification socket.
pub struct SystemdFdStore(pub Arc<Notifier>);

impl FdStore for SystemdFdStore {
    fn store(&mut self, name: &str, fd: BorrowedFd<'_>) -> io::Result<()> {
        // FDPOLL=0: the daemon removes what it stops holding itself, and a
        // stored fd must not vanish because a poll says it hung up.
        self.0.send(
            &format!("FDSTORE=1\nFDNAME={name}\nFDPOLL=0"),
            &[fd.as_fd()],
        )
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.0.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}"), &[])
    }
}

/// The service's `FileDescriptorStoreMax=`, which systemd 254 and later
/// pass as `$FDSTORE`.
pub fn fd_store_max() -> Option<usize> {
    std::env::var("FDSTORE").ok()?.parse().ok()
}
