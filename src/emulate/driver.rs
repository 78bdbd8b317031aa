//! The FDBox driver's behaviour (drivers/misc/fdbox.c of the RFC, as
//! `shared/spec/KERNEL-UAPI.md` section 1 describes it) on top of a
//! [`MemoryDevice`]: which open and which ioctl succeeds, and with which
//! errno each fails.
//!
//! The driver reads its arguments from the caller through [`Caller`], so it
//! knows nothing of seccomp; the supervisor does the answering.

use super::caller::{Caller, GONE, pending, read_struct, u32_at, u64_at};
use super::nodes::{Node, Nodes, components};
use fdbox_host::device::kernel::uapi::{
    FDBOX_CREATE_BOX, FDBOX_DELETE_BOX, FDBOX_GET_FD, FDBOX_NAME_LEN, FDBOX_PUT_FD, FDBOX_SEAL,
    FDBOX_UNSEAL, FdboxCreateBox, FdboxGetFd, FdboxPutFd, field_name,
};
use fdbox_host::{Device, ErrorCode, Handle, HandleKind, MemoryDevice, Name};
use std::mem::{offset_of, size_of};
use std::os::fd::AsFd;

/// The name of the control device in `/dev/fdbox`, which no box can take.
const CONTROL_NAME: &str = "fdbox";

/// What an open of a path is.
#[derive(Debug, PartialEq, Eq)]
pub enum Open {
    /// Not a path of the emulated device: the kernel opens it.
    NotOurs,
    /// The device node to open.
    Node(Node),
    /// Fails with this errno.
    Errno(i32),
}

/// What an ioctl did.
#[derive(Debug)]
pub enum Outcome {
    /// Succeeded; the call returns 0.
    Done,
    /// Fails with this errno.
    Errno(i32),
    /// GET_FD took this handle out of the box: the call returns it as a new
    /// fd, and it goes back into the box (see [`Driver::undo_get`]) if that
    /// fails.
    Fd {
        /// The box it came from.
        box_name: Name,
        /// Its entry name.
        entry: Name,
        /// The handle.
        handle: Handle,
    },
    /// The caller went away before anything changed.
    Gone,
}

/// The emulated driver: boxes and the stand-in device files.
#[derive(Default)]
pub struct Driver {
    /// The boxes.
    pub device: MemoryDevice,
    /// The files the program holds for device nodes.
    pub nodes: Nodes,
}

fn errno(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::InvalidName | ErrorCode::NameTooLong => libc::EINVAL,
        ErrorCode::AlreadyExists => libc::EEXIST,
        ErrorCode::NotFound => libc::ENOENT,
        ErrorCode::BoxSealed | ErrorCode::BoxNotSealed => libc::EBUSY,
        ErrorCode::KindNotSupported => libc::EOPNOTSUPP,
        ErrorCode::AccessDenied => libc::EPERM,
        ErrorCode::QuotaExceeded => libc::ENOSPC,
        ErrorCode::DeviceUnavailable => libc::EIO,
    }
}

/// A name field at `offset` of `bytes`: EINVAL without its NUL, as the
/// driver; EINVAL too for names the driver took but fdbox does not (empty,
/// with '/', which cannot be a device node; not UTF-8, a limit of this
/// emulator). `invalid` is the errno for those: EINVAL where a name is
/// created, ENOENT where one is looked up (no box or entry can have it).
fn name_at(bytes: &[u8], offset: usize, invalid: i32) -> Result<Name, i32> {
    let field: &[u8; FDBOX_NAME_LEN] = bytes[offset..offset + FDBOX_NAME_LEN]
        .try_into()
        .expect("the structs hold a whole name field");
    let name = field_name(field).ok_or(libc::EINVAL)?;
    let name = std::str::from_utf8(name).map_err(|_| invalid)?;
    Name::new(name).map_err(|_| invalid)
}

impl Driver {
    /// What opening `path` means. Only absolute paths naming
    /// `/dev/fdbox/<node>` are recognised (repeated '/' and '.' components
    /// allowed); relative paths, '..' and symbolic links reach the kernel,
    /// where /dev/fdbox does not exist.
    pub fn open(&self, path: &[u8]) -> Open {
        let Some(parts) = components(path) else {
            return Open::NotOurs;
        };
        let [b"dev", b"fdbox", node] = parts.as_slice() else {
            return Open::NotOurs;
        };
        if *node == CONTROL_NAME.as_bytes() {
            return Open::Node(Node::Control);
        }
        let name = std::str::from_utf8(node)
            .ok()
            .and_then(|n| Name::new(n).ok());
        match name {
            Some(name) if self.device.status(&name).is_ok() => Open::Node(Node::Box(name)),
            _ => Open::Errno(libc::ENOENT),
        }
    }

    /// Run ioctl `request` with argument `arg` on `node`. The caller's
    /// CAP_SYS_ADMIN is checked before (EPERM).
    pub fn ioctl(&mut self, node: &Node, request: u32, arg: u64, caller: &dyn Caller) -> Outcome {
        let result = match (node, request) {
            (Node::Control, FDBOX_CREATE_BOX) => self.create_box(arg, caller),
            (Node::Control, FDBOX_DELETE_BOX) => self.delete_box(arg, caller),
            (Node::Box(b), FDBOX_PUT_FD) => self.put_fd(b, arg, caller),
            (Node::Box(b), FDBOX_GET_FD) => self.get_fd(b, arg, caller),
            (Node::Box(b), FDBOX_SEAL) => self.seal(b, true, caller),
            (Node::Box(b), FDBOX_UNSEAL) => self.seal(b, false, caller),
            // A box request on the control device or the reverse: the
            // driver's "unknown ioctl".
            _ => Err(libc::EINVAL),
        };
        result.unwrap_or_else(|errno| match errno {
            GONE => Outcome::Gone,
            e => Outcome::Errno(e),
        })
    }

    /// Put back what a GET_FD took when the caller could not receive it.
    pub fn undo_get(&self, box_name: &Name, entry: Name, handle: Handle) {
        let lost = self.device.restore(box_name, vec![(entry, handle)]);
        if !lost.is_empty() {
            tracing::warn!("box {box_name:?} went away; a handle taken from it is dropped");
        }
    }

    fn create_box(&mut self, arg: u64, caller: &dyn Caller) -> Result<Outcome, i32> {
        let bytes = read_struct(caller, arg, size_of::<FdboxCreateBox>())?;
        pending(caller)?;
        if u64_at(&bytes, offset_of!(FdboxCreateBox, flags)) != 0 {
            return Err(libc::EINVAL);
        }
        let name = name_at(&bytes, offset_of!(FdboxCreateBox, name), libc::EINVAL)?;
        if name.as_str() == CONTROL_NAME {
            // The control device's node already has that name.
            return Err(libc::EEXIST);
        }
        self.device.create_box(&name).map_err(|e| errno(e.code()))?;
        Ok(Outcome::Done)
    }

    fn delete_box(&mut self, arg: u64, caller: &dyn Caller) -> Result<Outcome, i32> {
        let bytes = read_struct(caller, arg, size_of::<FdboxCreateBox>())?;
        pending(caller)?;
        if u64_at(&bytes, offset_of!(FdboxCreateBox, flags)) != 0 {
            return Err(libc::EINVAL);
        }
        // A name no box can have names no box: ENOENT.
        let name = name_at(&bytes, offset_of!(FdboxCreateBox, name), libc::ENOENT)?;
        // Sealed boxes can be deleted; their fds close with the box.
        self.device.delete_box(&name).map_err(|e| errno(e.code()))?;
        self.nodes.forget(&Node::Box(name));
        Ok(Outcome::Done)
    }

    fn sealed(&self, box_name: &Name) -> Result<bool, i32> {
        self.device
            .status(box_name)
            .map(|s| s.sealed)
            .map_err(|e| errno(e.code()))
    }

    /// PUT_FD, in the driver's order: copy the struct (EFAULT), sealed
    /// (EBUSY), the fd (EINVAL), its kind (EOPNOTSUPP), the name (EINVAL),
    /// a taken name (EEXIST). The RFC checks no flags on PUT_FD, so neither
    /// does this.
    fn put_fd(&mut self, box_name: &Name, arg: u64, caller: &dyn Caller) -> Result<Outcome, i32> {
        let bytes = read_struct(caller, arg, size_of::<FdboxPutFd>())?;
        if self.sealed(box_name)? {
            return Err(libc::EBUSY);
        }
        let fd = u32_at(&bytes, offset_of!(FdboxPutFd, fd));
        let fd = i32::try_from(fd)
            .map_err(|_| libc::EINVAL)
            .and_then(|fd| caller.get_fd(fd).map_err(|_| libc::EINVAL))?;
        pending(caller)?;
        // Only memfds (shmem files) had FDBox support in the RFC; anything
        // else, this emulator's own device files included, is refused.
        if self.nodes.identify(fd.as_fd()).is_some() {
            return Err(libc::EOPNOTSUPP);
        }
        let handle = Handle::from_fd(fd).map_err(|_| libc::EOPNOTSUPP)?;
        if handle.kind() != HandleKind::MemoryFile {
            return Err(libc::EOPNOTSUPP);
        }
        let entry = name_at(&bytes, offset_of!(FdboxPutFd, name), libc::EINVAL)?;
        // The caller's fd stays open: a supervisor cannot close an fd in
        // another process. The box holds the same open file.
        self.device
            .put(box_name, &entry, handle)
            .map_err(|refused| errno(refused.error.code()))?;
        Ok(Outcome::Done)
    }

    /// GET_FD, in the driver's order: sealed (EBUSY), flags (EINVAL), name
    /// (EINVAL), unknown name (ENOENT).
    fn get_fd(&mut self, box_name: &Name, arg: u64, caller: &dyn Caller) -> Result<Outcome, i32> {
        let bytes = read_struct(caller, arg, size_of::<FdboxGetFd>())?;
        pending(caller)?;
        if self.sealed(box_name)? {
            return Err(libc::EBUSY);
        }
        if u64_at(&bytes, offset_of!(FdboxGetFd, flags)) != 0 {
            return Err(libc::EINVAL);
        }
        let entry = name_at(&bytes, offset_of!(FdboxGetFd, name), libc::ENOENT)?;
        let handle = self
            .device
            .get(box_name, &entry)
            .map_err(|e| errno(e.code()))?;
        Ok(Outcome::Fd {
            box_name: box_name.clone(),
            entry,
            handle,
        })
    }

    fn seal(&mut self, box_name: &Name, seal: bool, caller: &dyn Caller) -> Result<Outcome, i32> {
        pending(caller)?;
        let result = if seal {
            self.device.seal(box_name)
        } else {
            self.device.unseal(box_name)
        };
        result.map_err(|e| errno(e.code()))?;
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_device_paths_are_the_device() {
        let driver = Driver::default();
        let name = Name::new("b").unwrap();
        driver.device.create_box(&name).unwrap();
        let node = |n: Node| Open::Node(n);
        assert_eq!(driver.open(b"/dev/fdbox/fdbox"), node(Node::Control));
        assert_eq!(driver.open(b"//dev/./fdbox//b"), node(Node::Box(name)));
        assert_eq!(driver.open(b"/dev/fdbox/c"), Open::Errno(libc::ENOENT));
        assert_eq!(driver.open(b"/dev/fdbox/\xff"), Open::Errno(libc::ENOENT));
        for other in [
            &b"dev/fdbox/fdbox"[..],
            b"/dev/fdbox",
            b"/dev/fdbox/b/x",
            b"/dev/null",
        ] {
            assert_eq!(driver.open(other), Open::NotOurs, "{other:?}");
        }
    }
}
