//! The FDBox RFC's user API (`include/uapi/linux/fdbox.h` of the March 2025
//! series), written from the facts in `shared/spec/KERNEL-UAPI.md`: request
//! numbers and C struct layouts for x86_64. `tests/uapi_layout.rs` checks
//! them against a C compiler.

/// Bytes in a name field, the terminating NUL included.
pub const FDBOX_NAME_LEN: usize = 256;
/// The ioctl type byte.
pub const FDBOX_TYPE: u8 = b'.';
/// The first ioctl number.
pub const FDBOX_BASE: u8 = 0;

/// `_IO(FDBOX_TYPE, FDBOX_BASE + n)`. The RFC declares every request with
/// plain `_IO` (no size or direction bits) although most take a struct
/// pointer: a defect of the RFC, reproduced because it is the ABI.
const fn io(n: u8) -> u32 {
    ((FDBOX_TYPE as u32) << 8) | (FDBOX_BASE + n) as u32
}

/// On `/dev/fdbox/fdbox`: create a box (`struct fdbox_create_box`).
pub const FDBOX_CREATE_BOX: u32 = io(0);
/// On `/dev/fdbox/fdbox`: delete a box (`struct fdbox_delete_box`).
pub const FDBOX_DELETE_BOX: u32 = io(1);
/// On a box: put an fd (`struct fdbox_put_fd`).
pub const FDBOX_PUT_FD: u32 = io(2);
/// On a box: get an fd (`struct fdbox_get_fd`); the new fd is the result.
pub const FDBOX_GET_FD: u32 = io(3);
/// On a box: seal it (no argument).
pub const FDBOX_SEAL: u32 = io(4);
/// On a box: unseal it (no argument).
pub const FDBOX_UNSEAL: u32 = io(5);

/// The control device.
pub const CONTROL_DEVICE: &str = "/dev/fdbox/fdbox";
/// Where box devices appear.
pub const DEVICE_DIR: &str = "/dev/fdbox";

/// `struct fdbox_create_box`: 264 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FdboxCreateBox {
    /// Must be 0.
    pub flags: u64,
    /// NUL-terminated box name.
    pub name: [u8; FDBOX_NAME_LEN],
}

/// `struct fdbox_delete_box`: the same layout as create.
pub type FdboxDeleteBox = FdboxCreateBox;

/// `struct fdbox_put_fd`: 272 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FdboxPutFd {
    /// Must be 0.
    pub flags: u64,
    /// The fd to put; the caller's fd is closed on success.
    pub fd: u32,
    /// Padding.
    pub pad: u32,
    /// NUL-terminated entry name.
    pub name: [u8; FDBOX_NAME_LEN],
}

/// `struct fdbox_get_fd`: 272 bytes (4 of tail padding). The RFC's
/// documentation shows no `pad` (name at offset 8); the driver's header has
/// it (name at offset 12), and the header is the ABI.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FdboxGetFd {
    /// Must be 0.
    pub flags: u64,
    /// Padding.
    pub pad: u32,
    /// NUL-terminated entry name.
    pub name: [u8; FDBOX_NAME_LEN],
}

/// A name field holding `name`, NUL-terminated; `None` if it does not fit.
pub fn name_field(name: &str) -> Option<[u8; FDBOX_NAME_LEN]> {
    let bytes = name.as_bytes();
    if bytes.len() >= FDBOX_NAME_LEN {
        return None;
    }
    let mut field = [0u8; FDBOX_NAME_LEN];
    field[..bytes.len()].copy_from_slice(bytes);
    Some(field)
}

/// The name in a name field: the bytes before the first NUL, or `None` if
/// there is no NUL within the field (the driver's EINVAL).
pub fn field_name(field: &[u8; FDBOX_NAME_LEN]) -> Option<&[u8]> {
    field.iter().position(|b| *b == 0).map(|end| &field[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn request_numbers_and_layouts_are_the_spec_table() {
        assert_eq!(
            [
                FDBOX_CREATE_BOX,
                FDBOX_DELETE_BOX,
                FDBOX_PUT_FD,
                FDBOX_GET_FD,
                FDBOX_SEAL,
                FDBOX_UNSEAL
            ],
            [0x2E00, 0x2E01, 0x2E02, 0x2E03, 0x2E04, 0x2E05]
        );
        assert_eq!(
            (
                size_of::<FdboxCreateBox>(),
                offset_of!(FdboxCreateBox, name)
            ),
            (264, 8)
        );
        assert_eq!(
            (
                size_of::<FdboxPutFd>(),
                offset_of!(FdboxPutFd, fd),
                offset_of!(FdboxPutFd, pad),
                offset_of!(FdboxPutFd, name)
            ),
            (272, 8, 12, 16)
        );
        assert_eq!(
            (
                size_of::<FdboxGetFd>(),
                offset_of!(FdboxGetFd, pad),
                offset_of!(FdboxGetFd, name)
            ),
            (272, 8, 12)
        );
    }

    #[test]
    fn names_need_their_nul() {
        assert_eq!(field_name(&name_field("box").unwrap()), Some(&b"box"[..]));
        assert!(name_field(&"x".repeat(256)).is_none());
        assert!(name_field(&"x".repeat(255)).is_some());
        assert_eq!(field_name(&[b'x'; FDBOX_NAME_LEN]), None);
    }
}
