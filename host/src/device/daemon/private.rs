//! Private places: a daemon's socket is trusted only in a directory of this
//! user's own, and only when the process behind it is this user's (or
//! root's), as ssh-agent and systemd do. Otherwise another user could
//! pre-create the directory, listen there, and be handed this user's fds, or
//! hand back fds of its choosing.
//!
//! Both ends use these checks: the client before it sends anything
//! ([`super::DaemonDevice`]), the daemon and `fdbox serve` for the
//! directories they create and the peers they accept.

use crate::Error;
use rustix::fs::{AtFlags, Mode};
use rustix::process::{Uid, geteuid};
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

/// Whether `error` is one of these refusals (a place or a peer that is not
/// private), as opposed to nothing being there yet.
pub fn is_refusal(error: &Error) -> bool {
    matches!(error, Error::Device(e) if e.kind() == io::ErrorKind::PermissionDenied)
}

fn refuse(message: String) -> Error {
    Error::Device(io::Error::new(io::ErrorKind::PermissionDenied, message))
}

/// Check that `dir` is a directory (not a symlink to one), owned by this
/// process's user, that no other user may enter or change (no group or
/// other permission bits).
pub fn check_private_dir(dir: &Path) -> Result<(), Error> {
    let stat =
        rustix::fs::statat(rustix::fs::CWD, dir, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
            // Not a refusal: a directory that is not there yet (kind NotFound).
            let e = io::Error::from(e);
            Error::Device(io::Error::new(
                e.kind(),
                format!("cannot use the directory {}: {e}", dir.display()),
            ))
        })?;
    let file_type = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    if file_type == rustix::fs::FileType::Symlink {
        return Err(refuse(format!(
            "refusing {}: it is a symbolic link, and fdbox's sockets live only in a private directory of this user's own; remove it or choose another path",
            dir.display()
        )));
    }
    if !file_type.is_dir() {
        return Err(refuse(format!(
            "refusing {}: it is not a directory",
            dir.display()
        )));
    }
    let me = geteuid();
    let owner = Uid::from_raw(stat.st_uid);
    if owner != me {
        return Err(refuse(format!(
            "refusing {}: it belongs to uid {}, not to this user (uid {}), so another user may control what listens there; remove it or choose another path",
            dir.display(),
            owner.as_raw(),
            me.as_raw()
        )));
    }
    let mode = Mode::from_raw_mode(stat.st_mode) & Mode::RWXG.union(Mode::RWXO);
    if !mode.is_empty() {
        return Err(refuse(format!(
            "refusing {}: its mode {:o} lets other users in; make it private (chmod 700) or choose another path",
            dir.display(),
            stat.st_mode & 0o7777
        )));
    }
    Ok(())
}

/// Make `dir` exist as a private directory (mode 0700, created if it is
/// missing, but not its parents: a missing parent is refused, naming it),
/// then [`check_private_dir`] it, whether it was created or was there.
pub fn create_private_dir(dir: &Path) -> Result<(), Error> {
    create_dir(dir, 0o700)?;
    check_private_dir(dir)
}

/// Create `dir` with exactly `mode` if it does not exist, but not its
/// parents: a mistyped path is refused, naming the missing parent, instead
/// of silently becoming a tree of directories. An existing `dir` is left as
/// it is.
pub fn create_dir(dir: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        // The umask may have taken bits away; never added any.
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| refuse(format!("cannot set the mode of {}: {e}", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = dir.parent().unwrap_or(Path::new("/"));
            Err(refuse(format!(
                "cannot create {}: its parent directory {} does not exist (create it first, or choose another path)",
                dir.display(),
                parent.display()
            )))
        }
        Err(e) => Err(refuse(format!("cannot create {}: {e}", dir.display()))),
    }
}

/// Check that the process at the other end of the Unix socket `socket` runs
/// as this user or as root (SO_PEERCRED); `what` names it for the message.
pub fn check_peer(socket: impl AsFd, what: &str) -> Result<(), Error> {
    let cred = rustix::net::sockopt::socket_peercred(socket)
        .map_err(|e| refuse(format!("cannot learn who runs {what}: {e}")))?;
    let me = geteuid();
    if cred.uid == me || cred.uid.is_root() {
        return Ok(());
    }
    Err(refuse(format!(
        "refusing {what}: it runs as uid {} (pid {}), not as this user (uid {}) or root; someone else is listening there",
        cred.uid.as_raw(),
        cred.pid.as_raw_nonzero(),
        me.as_raw()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fdbox-private-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn only_a_private_directory_of_ones_own_is_used() {
        let dir = scratch("mode");
        create_private_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_private_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("755") && err.contains("chmod 700"), "{err}");

        let link = scratch("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = check_private_dir(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir(&dir).unwrap();

        let err = create_private_dir(&dir.join("a/b"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn a_peer_of_this_user_is_accepted() {
        let (a, _b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        check_peer(&a, "the test peer").unwrap();
    }
}
