//! Where the tests find a Linux source tree (the version the Live Update
//! emulator follows), to build the kernel's own LUO selftests and check the
//! UAPI against its header. Nothing from the tree is copied into this
//! repository: tests read it where it is.

use std::path::{Path, PathBuf};

/// The Debian kernel package version whose source the VM lane
/// (`tests/vm/kernel.sh`) downloads, and the emulator follows.
pub const KERNEL_SOURCE_VERSION: &str = "7.2.13-1";

/// The kernel source tree to build Linux's own LUO selftests from:
/// `$FDBOX_KERNEL_SOURCE_TREE`, else where the VM lane keeps it,
/// `${FDBOX_VM_CACHE:-$HOME/.cache/fdbox/vm}/build-<version>/src`. `Err`:
/// why there is none. A tree named by `FDBOX_KERNEL_SOURCE_TREE` must be
/// there (the test fails otherwise); the default one may be missing.
pub fn kernel_source_tree() -> Result<PathBuf, String> {
    let selftests = |tree: &Path| tree.join("tools/testing/selftests/liveupdate/liveupdate.c");
    if let Some(tree) = std::env::var_os("FDBOX_KERNEL_SOURCE_TREE") {
        let tree = PathBuf::from(tree);
        assert!(
            selftests(&tree).exists(),
            "FDBOX_KERNEL_SOURCE_TREE={} has no {}",
            tree.display(),
            selftests(&tree).display()
        );
        return Ok(tree);
    }
    let cache = std::env::var_os("FDBOX_VM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/fdbox/vm")))
        .ok_or("neither FDBOX_VM_CACHE nor HOME is set")?;
    let tree = cache.join(format!("build-{KERNEL_SOURCE_VERSION}/src"));
    if selftests(&tree).exists() {
        Ok(tree)
    } else {
        Err(format!(
            "no Linux source tree at {} (the VM lane, tests/vm/kernel.sh, downloads it there; \
             or set FDBOX_KERNEL_SOURCE_TREE to one)",
            tree.display()
        ))
    }
}
