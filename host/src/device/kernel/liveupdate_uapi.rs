//! The Live Update Orchestrator's user API (`include/uapi/linux/liveupdate.h`,
//! Linux 6.19+; `LIVEUPDATE_SESSION_GET_NAME` as of 7.2), written from the
//! facts in `shared/spec/KERNEL-UAPI.md` section 2: request numbers and C
//! struct layouts for x86_64.
//! `tests/uapi_layout.rs` checks them against a C compiler.
//!
//! Every argument struct starts with its own `size`, which the caller sets
//! to the size it knows: the kernel refuses a size below the fields it
//! needs (`EINVAL`) and non-zero bytes past the struct it knows (`E2BIG`),
//! and writes output fields (`fd`) back into the caller's struct.

/// The ioctl type byte.
pub const LIVEUPDATE_IOCTL_TYPE: u8 = 0xBA;
/// Bytes in a session name field, the terminating NUL included: names are
/// 1 to 63 bytes.
pub const LIVEUPDATE_SESSION_NAME_LENGTH: usize = 64;

/// `_IO(LIVEUPDATE_IOCTL_TYPE, nr)`: like the FDBox RFC, the header declares
/// its requests with plain `_IO` numbers (no size or direction bits).
const fn io(nr: u8) -> u32 {
    ((LIVEUPDATE_IOCTL_TYPE as u32) << 8) | nr as u32
}

/// On `/dev/liveupdate`: create an outgoing session ([`LiveupdateSession`]);
/// its fd comes back in the struct.
pub const LIVEUPDATE_IOCTL_CREATE_SESSION: u32 = io(0x00);
/// On `/dev/liveupdate`: retrieve an incoming session (one the previous
/// kernel preserved) by name ([`LiveupdateSession`]).
pub const LIVEUPDATE_IOCTL_RETRIEVE_SESSION: u32 = io(0x01);
/// On an outgoing session: preserve an fd under a token
/// ([`LiveupdateSessionFd`]).
pub const LIVEUPDATE_SESSION_PRESERVE_FD: u32 = io(0x40);
/// On an incoming session: retrieve the file preserved under a token, as a
/// new close-on-exec fd in the struct ([`LiveupdateSessionFd`]).
pub const LIVEUPDATE_SESSION_RETRIEVE_FD: u32 = io(0x41);
/// On an incoming session: finish it; files not retrieved are released
/// ([`LiveupdateSessionFinish`]).
pub const LIVEUPDATE_SESSION_FINISH: u32 = io(0x42);
/// On any session (Linux 7.2): its name, into the struct
/// ([`LiveupdateSessionGetName`]).
pub const LIVEUPDATE_SESSION_GET_NAME: u32 = io(0x43);

/// The device.
pub const LIVEUPDATE_DEVICE: &str = "/dev/liveupdate";

/// `struct liveupdate_ioctl_create_session` (and `..._retrieve_session`):
/// 72 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LiveupdateSession {
    /// `size_of::<Self>()`.
    pub size: u32,
    /// Out: the session's fd.
    pub fd: i32,
    /// NUL-terminated session name.
    pub name: [u8; LIVEUPDATE_SESSION_NAME_LENGTH],
}

/// `struct liveupdate_session_preserve_fd` (and `..._retrieve_fd`): 16 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LiveupdateSessionFd {
    /// `size_of::<Self>()`.
    pub size: u32,
    /// In for preserve, out for retrieve.
    pub fd: i32,
    /// The caller's key for the file within the session.
    pub token: u64,
}

/// `struct liveupdate_session_finish`: 8 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LiveupdateSessionFinish {
    /// `size_of::<Self>()`.
    pub size: u32,
    /// Must be 0.
    pub reserved: u32,
}

/// `struct liveupdate_session_get_name`: 72 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LiveupdateSessionGetName {
    /// `size_of::<Self>()`.
    pub size: u32,
    /// Must be 0.
    pub reserved: u32,
    /// Out: the session's name, NUL-terminated.
    pub name: [u8; LIVEUPDATE_SESSION_NAME_LENGTH],
}

/// A session name field holding `name`, NUL-terminated; `None` if it is
/// empty or longer than 63 bytes.
pub fn session_name_field(name: &str) -> Option<[u8; LIVEUPDATE_SESSION_NAME_LENGTH]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= LIVEUPDATE_SESSION_NAME_LENGTH {
        return None;
    }
    let mut field = [0u8; LIVEUPDATE_SESSION_NAME_LENGTH];
    field[..bytes.len()].copy_from_slice(bytes);
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn request_numbers_and_layouts_are_the_spec_table() {
        assert_eq!(
            [
                LIVEUPDATE_IOCTL_CREATE_SESSION,
                LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
                LIVEUPDATE_SESSION_PRESERVE_FD,
                LIVEUPDATE_SESSION_RETRIEVE_FD,
                LIVEUPDATE_SESSION_FINISH,
                LIVEUPDATE_SESSION_GET_NAME,
            ],
            [0xBA00, 0xBA01, 0xBA40, 0xBA41, 0xBA42, 0xBA43]
        );
        assert_eq!(
            (
                size_of::<LiveupdateSessionGetName>(),
                offset_of!(LiveupdateSessionGetName, reserved),
                offset_of!(LiveupdateSessionGetName, name)
            ),
            (72, 4, 8)
        );
        assert_eq!(
            (
                size_of::<LiveupdateSession>(),
                offset_of!(LiveupdateSession, fd),
                offset_of!(LiveupdateSession, name)
            ),
            (72, 4, 8)
        );
        assert_eq!(
            (
                size_of::<LiveupdateSessionFd>(),
                offset_of!(LiveupdateSessionFd, fd),
                offset_of!(LiveupdateSessionFd, token)
            ),
            (16, 4, 8)
        );
        assert_eq!(
            (
                size_of::<LiveupdateSessionFinish>(),
                offset_of!(LiveupdateSessionFinish, reserved)
            ),
            (8, 4)
        );
    }

    #[test]
    fn session_names_are_1_to_63_bytes() {
        assert!(session_name_field("").is_none());
        assert!(session_name_field(&"x".repeat(63)).is_some());
        assert!(session_name_field(&"x".repeat(64)).is_none());
    }
}
