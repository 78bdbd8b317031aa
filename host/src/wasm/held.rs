//! The host fds one guest holds through fdbox, counted without a drop hook.
//!
//! wasmtime-wasi tells nobody when a guest drops a descriptor, so fdbox
//! keeps a `Weak` to the shared allocation behind everything it hands out
//! (a descriptor's `std::fs::File`, a socket's registration): the guest
//! holds the fd exactly as long as that allocation is alive. Counting the
//! live ones is a sweep over the list, made only when the list is full, so
//! a hand-out far from the limit costs a push.
//!
//! [`Held::admit`] is asked before fdbox makes new fds for a guest
//! (`memory-files.create`, a get, an accept); [`Held::record`] notes what was
//! handed out, and never refuses (a refused put hands the guest back what
//! it had). Granted listeners are the host's, not the guest's, and are not
//! counted; neither are descriptors the guest opens through
//! `wasi:filesystem` itself, which fdbox never sees.

use super::grant::Quotas;
use crate::{Error, HandleKind};
use std::any::Any;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Fds fdbox keeps free in the host process, below its RLIMIT_NOFILE, for
/// everything that is not a guest's: `fdbox serve`'s control connection, the
/// component an upgrade loads, the device's own sockets. A hand-out whose fd
/// would be among them is refused whatever the guest's own quota.
pub const HOST_RESERVED_FDS: u64 = 64;

/// What one guest holds: a `Weak` to each thing fdbox handed it, and its
/// kind.
#[derive(Default)]
pub(crate) struct Held {
    inner: Mutex<Vec<(Weak<dyn Any + Send + Sync>, HandleKind)>>,
}

impl Held {
    fn entries(&self) -> MutexGuard<'_, Vec<(Weak<dyn Any + Send + Sync>, HandleKind)>> {
        // Each operation is a push or a retain: a panic cannot leave it torn.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Note that the guest now holds `thing`, of `kind`, until it drops it.
    pub fn record<T: Any + Send + Sync>(&self, thing: &Arc<T>, kind: HandleKind) {
        let weak: Weak<dyn Any + Send + Sync> = Arc::downgrade(thing) as _;
        self.entries().push((weak, kind));
    }

    /// How many fds the guest holds through fdbox now.
    pub fn live(&self) -> usize {
        let mut entries = self.entries();
        entries.retain(|(held, _)| held.strong_count() > 0);
        entries.len()
    }

    /// Refuse unless the guest may hold `adding` more fds within
    /// [`Quotas::max_descriptors`].
    pub fn admit(&self, adding: usize, quotas: &Quotas) -> Result<(), Error> {
        let limit = quotas.max_descriptors;
        let mut entries = self.entries();
        if entries.len().saturating_add(adding) > limit {
            entries.retain(|(held, _)| held.strong_count() > 0);
        }
        let live = entries.len();
        if live.saturating_add(adding) > limit {
            return Err(Error::QuotaExceeded(format!(
                "this guest holds {live} descriptors fdbox gave it and asked for {adding} more; its limit is {limit} (Quotas::max_descriptors): drop some first"
            )));
        }
        Ok(())
    }

    /// The bytes of the memory files the guest holds now.
    pub fn memory_file_bytes(&self) -> u64 {
        let live: Vec<_> = {
            let mut entries = self.entries();
            entries.retain(|(held, _)| held.strong_count() > 0);
            entries
                .iter()
                .filter(|(_, kind)| *kind == HandleKind::MemoryFile)
                .filter_map(|(held, _)| held.upgrade())
                .collect()
        };
        live.iter()
            .filter_map(|held| held.downcast_ref::<std::fs::File>())
            .filter_map(|file| rustix::fs::fstat(file).ok())
            .map(|stat| stat.st_size as u64)
            .sum()
    }
}

/// Refuse an fd fdbox just made for a guest if it lies within
/// [`HOST_RESERVED_FDS`] of the process's RLIMIT_NOFILE. The kernel hands
/// out the lowest free number, so every fd below `fd` is open: the process
/// is that near its limit.
///
/// The limit is read again only when an fd comes near the one last read, so
/// a hand-out far from it costs no syscall.
pub(crate) fn check_host_room(fd: BorrowedFd<'_>) -> Result<(), Error> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LIMIT: AtomicU64 = AtomicU64::new(0);
    let number = fd.as_fd().as_raw_fd() as u64;
    let near = |limit: u64| number.saturating_add(HOST_RESERVED_FDS) >= limit;
    if !near(LIMIT.load(Ordering::Relaxed)) {
        return Ok(());
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    LIMIT.store(limit, Ordering::Relaxed);
    if near(limit) {
        return Err(Error::QuotaExceeded(format!(
            "the host process has {number} fds open, within {HOST_RESERVED_FDS} of its limit (RLIMIT_NOFILE {limit}), which it keeps for itself: drop descriptors, or raise the host's limit"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(max_descriptors: usize) -> Quotas {
        Quotas {
            max_descriptors,
            ..Quotas::default()
        }
    }

    #[test]
    fn counts_what_is_alive_and_refuses_past_the_limit() {
        let held = Held::default();
        let q = quotas(3);
        let kept: Vec<_> = (0..2).map(Arc::new).collect();
        for k in &kept {
            held.record(k, HandleKind::File);
        }
        held.admit(1, &q).unwrap();
        let error = held.admit(2, &q).unwrap_err().to_string();
        assert!(error.contains("holds 2 descriptors"), "{error}");
        assert!(error.contains("max_descriptors"), "{error}");
        // Dropped ones are swept out when it matters.
        for _ in 0..100 {
            let gone = Arc::new(0);
            held.record(&gone, HandleKind::File);
        }
        held.admit(1, &q).unwrap();
        assert_eq!(held.live(), 2);
        drop(kept);
        assert_eq!(held.live(), 0);
    }

    #[test]
    fn memory_file_bytes_of_live_files() {
        let held = Held::default();
        let memfd = crate::Handle::new_memory_file(&crate::Name::new("m").unwrap()).unwrap();
        let file = Arc::new(std::fs::File::from(memfd.into_fd()));
        file.set_len(1000).unwrap();
        held.record(&file, HandleKind::MemoryFile);
        let other = Arc::new(std::fs::File::open("/proc/self/status").unwrap());
        held.record(&other, HandleKind::File);
        assert_eq!(held.memory_file_bytes(), 1000);
        drop(file);
        assert_eq!(held.memory_file_bytes(), 0);
    }
}
