//! Errors of fdbox operations.

use crate::{HandleKind, Name};
use std::io;

/// The kind of an fdbox failure, one for each case of the WIT `error-code`.
///
/// Each names the errno the Linux FDBox UAPI uses for the same failure.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Empty name, NUL or `/` in it (`EINVAL`).
    InvalidName,
    /// Name longer than 255 bytes (`EINVAL` in the kernel).
    NameTooLong,
    /// Box or entry exists (`EEXIST`).
    AlreadyExists,
    /// No such box or entry (`ENOENT`).
    NotFound,
    /// Box is sealed (`EBUSY`).
    BoxSealed,
    /// Box is not sealed (`EBUSY` from unseal).
    BoxNotSealed,
    /// The device cannot hold this kind of handle (`EOPNOTSUPP`).
    KindNotSupported,
    /// Not granted (`EPERM`).
    AccessDenied,
    /// A limit was reached (`ENOSPC`, `EMFILE`).
    QuotaExceeded,
    /// The device failed or is gone (`ENODEV`, `EIO`).
    DeviceUnavailable,
}

impl ErrorCode {
    /// Every error code, in WIT order.
    pub const ALL: [ErrorCode; 10] = [
        Self::InvalidName,
        Self::NameTooLong,
        Self::AlreadyExists,
        Self::NotFound,
        Self::BoxSealed,
        Self::BoxNotSealed,
        Self::KindNotSupported,
        Self::AccessDenied,
        Self::QuotaExceeded,
        Self::DeviceUnavailable,
    ];
}

/// An fdbox failure: what failed and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name broke the name rules.
    #[error("invalid name {name:?}: {reason}; names are 1 to 255 bytes without NUL or '/'")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A name is too long.
    #[error("name is {len} bytes long; the limit is {limit} bytes{context}")]
    NameTooLong {
        /// Its length in bytes (with any prefix the device adds).
        len: usize,
        /// The longest name allowed.
        limit: usize,
        /// Why the limit is what it is, when it is not the WIT's 255 (a
        /// device's own limit), starting with "; ".
        context: &'static str,
    },
    /// A box of that name exists.
    #[error("box {0:?} already exists; open it instead, or pick another name")]
    BoxExists(Name),
    /// An entry of that name is in the box.
    #[error(
        "box {box_name:?} already has an entry {entry:?}; get it out first or use another name"
    )]
    EntryExists {
        /// The box.
        box_name: Name,
        /// The entry.
        entry: Name,
    },
    /// The same open file is in a box already, on a device that holds each
    /// file once (Live Update preserves a file in one place).
    #[error(
        "this file is already in box {box_name:?} as entry {entry:?}, and this device holds each open file once; get it out of there first"
    )]
    AlreadyBoxed {
        /// The box holding it.
        box_name: Name,
        /// Its entry there.
        entry: Name,
    },
    /// No such box.
    #[error("no box named {0:?}; create it first")]
    NoSuchBox(Name),
    /// No such entry.
    #[error("box {box_name:?} has no entry {entry:?}")]
    NoSuchEntry {
        /// The box.
        box_name: Name,
        /// The entry.
        entry: Name,
    },
    /// The box is sealed.
    #[error("box {0:?} is sealed; unseal it before putting or getting handles")]
    BoxSealed(Name),
    /// The box is not sealed.
    #[error("box {0:?} is not sealed")]
    BoxNotSealed(Name),
    /// The handle is of a kind the device cannot hold.
    #[error("this device cannot hold a {0}")]
    KindNotSupported(HandleKind),
    /// The fd is of a kind fdbox does not know.
    #[error("cannot box this handle: {0}")]
    UnsupportedHandle(&'static str),
    /// The guest was not granted this box or this operation.
    #[error("access denied: {operation} on box {box_name:?} was not granted to this guest")]
    AccessDenied {
        /// The operation.
        operation: &'static str,
        /// The box.
        box_name: Name,
    },
    /// `box.get` of an entry that is no descriptor (a socket).
    #[error("entry {entry:?} is a {kind}, not a file or directory: take it with get-handle")]
    NotADescriptor {
        /// The entry.
        entry: String,
        /// What it is.
        kind: HandleKind,
    },
    /// No listener of that name was granted to the guest.
    #[error(
        "no listener named {0:?} was granted to this guest (the host grants listeners by name: ListenerGrants)"
    )]
    ListenerNotGranted(String),
    /// A granted listener's address is taken.
    #[error(
        "cannot listen on {address} for listener {name:?}: the address is in use (by another process, or by a listener a previous instance left in a box: take that one)"
    )]
    AddressInUse {
        /// The listener's name.
        name: String,
        /// Its address.
        address: std::net::SocketAddr,
    },
    /// A quota was reached.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The device failed. The cause is part of the message, not a separate
    /// `source()`: a guest sees the message alone, and a chain printer
    /// (`anyhow`'s `{:#}`) would print the cause twice.
    #[error("fdbox device unavailable: {0}")]
    Device(io::Error),
    /// A device in another process (the holder daemon) refused, and said why.
    #[error("{message}")]
    Remote {
        /// The refusal's code.
        code: ErrorCode,
        /// The holder's own description.
        message: String,
    },
}

impl Error {
    /// The error's code, as a guest sees it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidName { .. } => ErrorCode::InvalidName,
            Error::NameTooLong { .. } => ErrorCode::NameTooLong,
            Error::BoxExists(_) | Error::EntryExists { .. } | Error::AlreadyBoxed { .. } => {
                ErrorCode::AlreadyExists
            }
            Error::NoSuchBox(_) | Error::NoSuchEntry { .. } => ErrorCode::NotFound,
            Error::BoxSealed(_) => ErrorCode::BoxSealed,
            Error::BoxNotSealed(_) => ErrorCode::BoxNotSealed,
            Error::KindNotSupported(_)
            | Error::UnsupportedHandle(_)
            | Error::NotADescriptor { .. } => ErrorCode::KindNotSupported,
            Error::AccessDenied { .. } | Error::ListenerNotGranted(_) => ErrorCode::AccessDenied,
            Error::AddressInUse { .. } => ErrorCode::AlreadyExists,
            Error::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            Error::Device(e) if is_fd_exhaustion(e) => ErrorCode::QuotaExceeded,
            Error::Device(_) => ErrorCode::DeviceUnavailable,
            Error::Remote { code, .. } => *code,
        }
    }
}

/// Running out of fds is a limit the operator can raise, not a broken device.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NFILE.raw_os_error())
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Device(e.into())
    }
}
