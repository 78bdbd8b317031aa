//! Handles to and from wasmtime-wasi descriptors: where a guest's
//! `wasi:filesystem` descriptor becomes a device's [`Handle`] and back, with
//! its access (read, write, and wasmtime-wasi's mutate permission) kept.

use crate::device::{Access, Error, Handle, HandleKind, kind_of};
use std::os::fd::{AsFd, OwnedFd};
use wasmtime_wasi::filesystem::{Descriptor, Dir, File};
use wasmtime_wasi::{FsPerms, OpenMode};

/// Take a guest's wasmtime-wasi descriptor apart into a handle, trusting
/// `known` as the kind (remembered when the descriptor was made) instead of
/// asking the kernel.
///
/// If streams opened on it still share the file, the box gets a duplicate
/// of the fd and the streams keep working, as other duplicates of an fd
/// put into `/dev/fdbox` stay valid. On failure the descriptor comes back
/// untouched.
pub(crate) fn into_handle(
    descriptor: Descriptor,
    known: Option<HandleKind>,
) -> Result<Handle, (Error, Descriptor)> {
    let (file, perms, open_mode) = match &descriptor {
        Descriptor::File(f) => (&f.file, f.perms, f.open_mode),
        Descriptor::Dir(d) => (&d.dir, d.perms, d.open_mode),
    };
    let shared = std::sync::Arc::strong_count(file) > 1;
    let kind = match known {
        Some(kind) => Ok(kind),
        None => kind_of(file.as_fd()),
    };
    let checked = kind.and_then(|kind| {
        let dup = if shared {
            Some(rustix::io::fcntl_dupfd_cloexec(&**file, 0)?)
        } else {
            None
        };
        Ok((kind, dup))
    });
    let (kind, dup) = match checked {
        Ok(checked) => checked,
        Err(e) => return Err((e, descriptor)),
    };
    let fd = match dup {
        Some(fd) => fd,
        None => {
            let file = match descriptor {
                Descriptor::File(f) => f.file,
                Descriptor::Dir(d) => d.dir,
            };
            // Sole owner (checked above, and the descriptor was ours).
            match std::sync::Arc::try_unwrap(file) {
                Ok(file) => OwnedFd::from(file),
                Err(_) => {
                    unreachable!("a descriptor's file gained an owner while fdbox held it")
                }
            }
        }
    };
    let access = Access {
        read: open_mode.contains(OpenMode::READ),
        write: open_mode.contains(OpenMode::WRITE),
        mutate: perms == FsPerms::ReadWrite,
    };
    Ok(Handle::from_parts(fd, kind, access))
}

/// Build a wasmtime-wasi descriptor around `handle` for a guest, with
/// exactly the access the handle carries; a socket, which no descriptor can
/// be, comes back.
pub(crate) fn from_handle(
    handle: Handle,
    allow_blocking_current_thread: bool,
) -> Result<Descriptor, Handle> {
    let kind = handle.kind();
    if !kind.is_descriptor() {
        return Err(handle);
    }
    let Access {
        read,
        write,
        mutate,
    } = handle.access();
    let mut open_mode = OpenMode::empty();
    open_mode.set(OpenMode::READ, read);
    open_mode.set(OpenMode::WRITE, write);
    let perms = if mutate {
        FsPerms::ReadWrite
    } else {
        FsPerms::ReadOnly
    };
    let file = std::fs::File::from(handle.into_fd());
    Ok(match kind {
        HandleKind::Directory => Descriptor::Dir(Dir::new(
            file,
            perms,
            open_mode,
            allow_blocking_current_thread,
        )),
        _ => Descriptor::File(File::new(
            file,
            perms,
            open_mode,
            allow_blocking_current_thread,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_directory_stays_read_only_through_a_descriptor() {
        let dir = std::fs::File::open("/").unwrap();
        let d = Descriptor::Dir(Dir::new(dir, FsPerms::ReadOnly, OpenMode::READ, false));
        let h = into_handle(d, None).map_err(|(e, _)| e).unwrap();
        assert!(!h.access().mutate && !h.access().write);
        match from_handle(h, false).unwrap() {
            Descriptor::Dir(d) => {
                assert_eq!(d.perms, FsPerms::ReadOnly);
                assert_eq!(d.open_mode, OpenMode::READ);
            }
            Descriptor::File(_) => panic!("directory came back as a file"),
        }
    }

    #[test]
    fn a_socket_is_no_descriptor() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let handle = Handle::from_fd(listener.into()).unwrap();
        assert!(from_handle(handle, false).is_err());
    }
}
