//! The kinds of the descriptors fdbox handed to guests, so that putting one
//! back into a box needs no syscall to classify it.
//!
//! Classifying an fd costs `fstat` plus `F_GET_SEALS`, about 40% of a guest's
//! whole put+get on this project's machines (BENCHMARKS.md). Nearly every
//! descriptor a guest puts is one fdbox gave it (a memory file, or a handle
//! it got back from a box), so fdbox remembers what it handed out.

use crate::HandleKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use wasmtime_wasi::filesystem::Descriptor;

/// Remembered kinds, keyed by the address of the descriptor's shared
/// `std::fs::File`. Each entry holds a `Weak` to that allocation, which keeps
/// the address from being reused by another file while the entry exists: a
/// hit is always the very file that was remembered.
#[derive(Default)]
pub(crate) struct DescriptorKinds {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_file: HashMap<usize, (Weak<std::fs::File>, HandleKind)>,
    /// Size at which entries of dropped descriptors are swept out, so the map
    /// stays within twice the number of live descriptors.
    sweep_at: usize,
}

const MIN_SWEEP: usize = 64;

fn shared_file(descriptor: &Descriptor) -> &Arc<std::fs::File> {
    match descriptor {
        Descriptor::File(f) => &f.file,
        Descriptor::Dir(d) => &d.dir,
    }
}

impl DescriptorKinds {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Each operation is a single map update: a panic cannot leave it torn.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remember that `descriptor`, about to be handed to a guest, is `kind`.
    pub fn remember(&self, descriptor: &Descriptor, kind: HandleKind) {
        let file = shared_file(descriptor);
        let mut entries = self.entries();
        entries
            .by_file
            .insert(Arc::as_ptr(file) as usize, (Arc::downgrade(file), kind));
        if entries.by_file.len() >= entries.sweep_at.max(MIN_SWEEP) {
            entries
                .by_file
                .retain(|_, (file, _)| file.strong_count() > 0);
            entries.sweep_at = 2 * entries.by_file.len();
        }
    }

    /// The kind of `descriptor` if fdbox handed it out, forgetting it: the
    /// descriptor is being taken apart.
    pub fn take(&self, descriptor: &Descriptor) -> Option<HandleKind> {
        let file = shared_file(descriptor);
        let (_, kind) = self
            .entries()
            .by_file
            .remove(&(Arc::as_ptr(file) as usize))?;
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi::filesystem::File;
    use wasmtime_wasi::{FsPerms, OpenMode};

    fn descriptor() -> Descriptor {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        Descriptor::File(File::new(file, FsPerms::ReadOnly, OpenMode::READ, false))
    }

    #[test]
    fn recalls_only_what_it_was_told_once() {
        let kinds = DescriptorKinds::default();
        let (a, b) = (descriptor(), descriptor());
        kinds.remember(&a, HandleKind::MemoryFile);
        assert_eq!(kinds.take(&b), None);
        assert_eq!(kinds.take(&a), Some(HandleKind::MemoryFile));
        assert_eq!(kinds.take(&a), None);
    }

    #[test]
    fn dropped_descriptors_are_swept() {
        let kinds = DescriptorKinds::default();
        for _ in 0..10 * MIN_SWEEP {
            kinds.remember(&descriptor(), HandleKind::File);
        }
        let kept = descriptor();
        kinds.remember(&kept, HandleKind::File);
        assert!(kinds.entries().by_file.len() <= MIN_SWEEP);
        assert_eq!(kinds.take(&kept), Some(HandleKind::File));
    }
}
