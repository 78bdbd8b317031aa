//! The files that stand in for `/dev/fdbox/fdbox` and `/dev/fdbox/<box>` in
//! the emulated program.
//!
//! There is no driver behind these paths, so an open of one installs, in
//! the program, a duplicate of a file the supervisor keeps: one empty,
//! sealed memfd per device node. When the program later calls an FDBox
//! ioctl on an fd, the supervisor copies that fd out (pidfd_getfd) and
//! compares its (st_dev, st_ino) with its own files to know which node, if
//! any, it is. A memfd is used because it needs no filesystem and no
//! privilege, and its inode number is unique while anyone holds it.

use fdbox_host::Name;
use rustix::fs::{MemfdFlags, SealFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// A device node of the emulated driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// `/dev/fdbox/fdbox`.
    Control,
    /// `/dev/fdbox/<name>`.
    Box(Name),
}

struct NodeFile {
    node: Node,
    fd: OwnedFd,
    id: (u64, u64),
}

/// The stand-in files, created on first open.
#[derive(Default)]
pub struct Nodes {
    files: Vec<NodeFile>,
}

/// The components of an absolute `path`, as the emulated devices recognise
/// their nodes: repeated '/' and '.' components are dropped; `None` for a
/// relative path (relative paths, '..' and symbolic links reach the kernel,
/// where the emulated device does not exist).
pub fn components(path: &[u8]) -> Option<Vec<&[u8]>> {
    if path.first() != Some(&b'/') {
        return None;
    }
    Some(
        path.split(|b| *b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .collect(),
    )
}

/// `(st_dev, st_ino)` of `fd`: which file it is, while anyone holds it.
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let stat = rustix::fs::fstat(fd)?;
    Ok((stat.st_dev, stat.st_ino))
}

impl Nodes {
    /// The file standing for `node`, created if it is the first open.
    pub fn file(&mut self, node: &Node) -> io::Result<BorrowedFd<'_>> {
        let index = match self.files.iter().position(|f| f.node == *node) {
            Some(i) => i,
            None => {
                let label = match node {
                    Node::Control => "fdbox-device:fdbox".to_owned(),
                    Node::Box(name) => format!("fdbox-device:{name}"),
                };
                // Only a label (in /proc): cut to what memfd_create takes,
                // or a box name over 236 bytes could not open.
                let fd = rustix::fs::memfd_create(
                    fdbox_host::device::memfd_label(&label),
                    MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
                )?;
                // Sealed empty and read-only: a program that writes to its
                // "device" gets EPERM instead of storing data nowhere.
                rustix::fs::fcntl_add_seals(
                    &fd,
                    SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
                )?;
                let id = identity(fd.as_fd())?;
                self.files.push(NodeFile {
                    node: node.clone(),
                    fd,
                    id,
                });
                self.files.len() - 1
            }
        };
        Ok(self.files[index].fd.as_fd())
    }

    /// Which node `fd` (a copy of one of the program's fds) is, if any.
    pub fn identify(&self, fd: BorrowedFd<'_>) -> Option<Node> {
        let id = identity(fd).ok()?;
        self.files
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.node.clone())
    }

    /// Forget a deleted box's node: fds the program still has on it are no
    /// longer recognised (and a new box of the same name gets a new file).
    pub fn forget(&mut self, node: &Node) {
        self.files.retain(|f| f.node != *node);
    }
}
