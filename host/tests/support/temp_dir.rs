//! A directory of its own for one test, removed when dropped: after a pass
//! and after a failure alike, so a test run leaves nothing in the temp
//! directory. `FDBOX_KEEP_TEST_DIRS=1` keeps the directory of a failed test
//! (its logs, sockets, state) and says where it is.
//!
//! The one copy, included by every test crate that needs it with
//! `#[path = ".../host/tests/support/temp_dir.rs"] mod temp_dir;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system's temp directory, removed on drop.
/// It derefs to its path, so `dir.join("x")` and `&dir` as a `&Path` work.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<temp>/fdbox-<tag>-<pid>-<n>`, new and empty.
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fdbox-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        // Private, as fdbox wants any directory it puts a socket in.
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TempDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("FDBOX_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {} (FDBOX_KEEP_TEST_DIRS)", self.0.display());
            return;
        }
        // Sockets and read-only files inside are no obstacle for the owner.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
