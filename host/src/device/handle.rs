//! Handles: an owned fd plus what fdbox must remember about it.

use crate::Error;
use rustix::fs::{FileType, OFlags};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// What kind of handle an entry holds (the WIT `handle-kind`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandleKind {
    /// An anonymous memory file (memfd).
    MemoryFile,
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A listening TCP socket.
    TcpListener,
    /// A connected TCP socket.
    TcpConnection,
}

impl HandleKind {
    /// The kind as fdbox's tools print it.
    pub fn as_str(self) -> &'static str {
        match self {
            HandleKind::MemoryFile => "memfd",
            HandleKind::File => "file",
            HandleKind::Directory => "dir",
            HandleKind::TcpListener => "tcp-listener",
            HandleKind::TcpConnection => "tcp-connection",
        }
    }

    /// Whether the kind is a file, directory or memory file: what a
    /// `wasi:filesystem` descriptor can be.
    pub fn is_descriptor(self) -> bool {
        matches!(
            self,
            HandleKind::MemoryFile | HandleKind::File | HandleKind::Directory
        )
    }
}

impl fmt::Display for HandleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandleKind::MemoryFile => "memory file",
            HandleKind::File => "file",
            HandleKind::Directory => "directory",
            HandleKind::TcpListener => "TCP listener",
            HandleKind::TcpConnection => "TCP connection",
        })
    }
}

/// What the holder of a handle may do with it beyond what the fd itself
/// allows. The kernel enforces read and write access on files through the fd's
/// open flags; a directory fd is always opened read-only, so whether the guest
/// may change what is inside it is wasmtime-wasi's policy and must travel with
/// the fd, or a box would be a way to escalate a read-only preopen.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    /// The handle was opened for reading.
    pub read: bool,
    /// The handle was opened for writing.
    pub write: bool,
    /// The holder may mutate the file or directory (wasmtime-wasi's
    /// `FsPerms::ReadWrite`).
    pub mutate: bool,
}

impl Access {
    /// Everything allowed.
    pub const ALL: Access = Access {
        read: true,
        write: true,
        mutate: true,
    };
}

/// An fd with its kind and access, as a device holds it.
#[derive(Debug)]
pub struct Handle {
    fd: OwnedFd,
    kind: HandleKind,
    access: Access,
}

impl Handle {
    /// Wrap an fd the host owns, learning its kind from the kernel and its
    /// access from its open flags (a directory gets full access: the host
    /// that owns the fd is trusted).
    pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
        let kind = kind_of(fd.as_fd())?;
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        let mode = flags & OFlags::RWMODE;
        let access = match kind {
            HandleKind::Directory | HandleKind::TcpListener | HandleKind::TcpConnection => {
                Access::ALL
            }
            _ => Access {
                read: mode != OFlags::WRONLY,
                write: mode != OFlags::RDONLY,
                mutate: true,
            },
        };
        Ok(Self { fd, kind, access })
    }

    /// Reassemble a handle from parts a device stored, as a device that keeps
    /// kind and access beside the fd (daemon, kernel manifest) must.
    pub fn from_parts(fd: OwnedFd, kind: HandleKind, access: Access) -> Self {
        Self { fd, kind, access }
    }

    /// A new anonymous memory file, readable and writable.
    pub fn new_memory_file(name: &crate::Name) -> Result<Self, Error> {
        use rustix::fs::MemfdFlags;
        let fd = rustix::fs::memfd_create(
            memfd_label(name.as_str()),
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        Ok(Self {
            fd,
            kind: HandleKind::MemoryFile,
            access: Access::ALL,
        })
    }

    /// The handle's kind.
    pub fn kind(&self) -> HandleKind {
        self.kind
    }

    /// What the holder may do with it.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The fd, borrowed.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Give up the wrapper and keep the fd.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// The longest label `memfd_create` takes (`NAME_MAX` less `memfd:`).
const MEMFD_LABEL_MAX: usize = 249;

/// `label` cut to what `memfd_create` takes, at a character boundary: a
/// memfd's label is only what `/proc` shows, so a valid name of 250-255
/// bytes must not make the create fail.
pub fn memfd_label(label: &str) -> &str {
    let mut cut = label.len().min(MEMFD_LABEL_MAX);
    while !label.is_char_boundary(cut) {
        cut -= 1;
    }
    &label[..cut]
}

/// What the kernel says the fd is. A memory file is a regular file of shmem
/// (the only files whose seals `F_GET_SEALS` can read) that has no name in any
/// filesystem: a memfd, or an unlinked tmpfs file, which is the same thing. A
/// named tmpfs file (in /dev/shm, say) is a file.
pub(crate) fn kind_of(fd: BorrowedFd<'_>) -> Result<HandleKind, Error> {
    let stat = rustix::fs::fstat(fd)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => Ok(HandleKind::Directory),
        FileType::RegularFile => Ok(
            if stat.st_nlink == 0 && rustix::fs::fcntl_get_seals(fd).is_ok() {
                HandleKind::MemoryFile
            } else {
                HandleKind::File
            },
        ),
        FileType::Socket => socket_kind(fd),
        FileType::Fifo => Err(Error::UnsupportedHandle("pipes cannot be boxed")),
        FileType::CharacterDevice | FileType::BlockDevice => {
            Err(Error::UnsupportedHandle("device files cannot be boxed"))
        }
        _ => Err(Error::UnsupportedHandle("unknown file type")),
    }
}

/// A TCP socket's kind: listening or not. Other sockets (UDP, Unix) are
/// refused.
fn socket_kind(fd: BorrowedFd<'_>) -> Result<HandleKind, Error> {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    let family = rustix::net::getsockname(fd)?.address_family();
    let tcp = matches!(family, AddressFamily::INET | AddressFamily::INET6)
        && sockopt::socket_type(fd)? == SocketType::STREAM;
    if !tcp {
        return Err(Error::UnsupportedHandle(
            "only TCP sockets can be boxed (not UDP or Unix sockets)",
        ));
    }
    Ok(if sockopt::socket_acceptconn(fd)? {
        HandleKind::TcpListener
    } else {
        HandleKind::TcpConnection
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Name;

    #[test]
    fn classifies_memfd_file_and_directory() {
        let memfd = Handle::new_memory_file(&Name::new("t").unwrap()).unwrap();
        assert_eq!(
            Handle::from_fd(memfd.into_fd()).unwrap().kind(),
            HandleKind::MemoryFile
        );
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let h = Handle::from_fd(file.into()).unwrap();
        assert_eq!(h.kind(), HandleKind::File);
        assert_eq!(
            h.access(),
            Access {
                read: true,
                write: false,
                mutate: true
            }
        );
        let dir = std::fs::File::open("/").unwrap();
        assert_eq!(
            Handle::from_fd(dir.into()).unwrap().kind(),
            HandleKind::Directory
        );
    }

    #[test]
    fn a_named_shmem_file_is_a_file_and_an_unlinked_one_a_memory_file() {
        let path = format!("/dev/shm/fdbox-handle-test-{}", std::process::id());
        let file = std::fs::File::create(&path).unwrap();
        let named = Handle::from_fd(file.try_clone().unwrap().into()).unwrap();
        assert_eq!(named.kind(), HandleKind::File);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            Handle::from_fd(file.into()).unwrap().kind(),
            HandleKind::MemoryFile
        );
    }

    #[test]
    fn classifies_tcp_listeners_and_connections_and_refuses_other_sockets() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        for (fd, kind) in [
            (OwnedFd::from(listener), HandleKind::TcpListener),
            (client.into(), HandleKind::TcpConnection),
            (server.into(), HandleKind::TcpConnection),
        ] {
            let handle = Handle::from_fd(fd).unwrap();
            assert_eq!(handle.kind(), kind);
            assert!(!kind.is_descriptor(), "a socket is no descriptor");
        }
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            Handle::from_fd(udp.into()).unwrap_err().code(),
            crate::ErrorCode::KindNotSupported
        );
    }

    #[test]
    fn memory_files_take_every_valid_name() {
        for len in [249, 250, 255] {
            let name = crate::Name::new("m".repeat(len)).unwrap();
            Handle::new_memory_file(&name).unwrap();
        }
        assert_eq!(memfd_label(&"é".repeat(125)).len(), 248);
    }

    #[test]
    fn refuses_pipes() {
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(
            Handle::from_fd(r).unwrap_err().code(),
            crate::ErrorCode::KindNotSupported
        );
    }
}
