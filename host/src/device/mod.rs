//! The device layer: what holds boxes of fds, independent of Wasmtime.
//!
//! The [`Device`] trait is the seam every backend implements: in this
//! process ([`MemoryDevice`]), in the holder daemon ([`daemon`]), or in the
//! kernel ([`kernel`]). Names ([`Name`]), handles ([`Handle`]) and errors
//! ([`Error`]) are the vocabulary they share. Nothing here depends on
//! Wasmtime (`tests/layers.rs` checks).

pub(crate) mod bytes;
pub mod daemon;
mod error;
mod handle;
pub mod kernel;
mod memory;
mod name;
pub mod rules;

pub use error::{Error, ErrorCode};
pub(crate) use handle::kind_of;
pub use handle::{Access, Handle, HandleKind, memfd_label};
pub use memory::MemoryDevice;
pub use name::{MAX_NAME_LEN, Name};

/// A box as a device reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoxStatus {
    /// The box's name.
    pub name: Name,
    /// Whether it is sealed.
    pub sealed: bool,
    /// How many entries it holds.
    pub entries: usize,
}

/// An entry as a device reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// The entry's name.
    pub name: Name,
    /// The kind of handle it holds.
    pub kind: HandleKind,
    /// The file's size in bytes, for files and memory files.
    pub size: Option<u64>,
}

/// What a device can do, for callers (and the conformance suite) that must
/// tell a device's declared limits from its bugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The kinds of handle the device holds; a put of any other kind is
    /// refused with [`Error::KindNotSupported`] and the handle returned.
    pub kinds: &'static [HandleKind],
    /// Whether boxes outlive the host process that filled them (the holder
    /// daemon, the kernel), not only its guests (the in-process device).
    pub survives_host_restart: bool,
}

impl Capabilities {
    /// Every kind, and boxes that outlive the host: the default.
    pub const ALL: Capabilities = Capabilities {
        kinds: &[
            HandleKind::MemoryFile,
            HandleKind::File,
            HandleKind::Directory,
            HandleKind::TcpListener,
            HandleKind::TcpConnection,
        ],
        survives_host_restart: true,
    };

    /// Whether the device holds handles of `kind`.
    pub fn holds(&self, kind: HandleKind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// A refused put: why, and the handle, returned unharmed to the caller.
#[derive(Debug)]
pub struct Refused {
    /// Why the put was refused.
    pub error: Error,
    /// The handle that was offered.
    pub handle: Handle,
}

/// A refused batch put: why, and every handle, returned to the caller.
#[derive(Debug)]
pub struct RefusedBatch {
    /// Why the batch was refused.
    pub error: Error,
    /// The entries that were offered, in the order they were offered.
    pub entries: Vec<(Name, Handle)>,
}

impl RefusedBatch {
    /// The refusal of a batch of one, as a [`Refused`].
    pub fn into_single(mut self) -> Refused {
        Refused {
            error: self.error,
            handle: self
                .entries
                .pop()
                .expect("a refused batch returns its handles")
                .1,
        }
    }
}

/// A store of named boxes of fds, with the FDBox semantics.
///
/// Implementations are shared by every guest of a host (`Send + Sync`) and
/// outlive each guest's `Store`, which is what lets a new instance recover
/// what an old one boxed. The rules every implementation follows, checked by
/// the conformance suite in `host/tests/conformance`:
///
/// - names are already validated ([`Name`]); box names are unique per device,
///   entry names per box;
/// - `put` and `get` on a sealed box fail with [`Error::BoxSealed`], `seal` of
///   a sealed box too, `unseal` of an unsealed one with
///   [`Error::BoxNotSealed`];
/// - `put` moves the handle in and `get` moves it out (take-once); a refused
///   `put` hands the handle back in [`Refused`], and a failed call never loses
///   or leaks an fd already in a box;
/// - batches (`put_many`, `get_many`) apply all or nothing;
/// - deleting a box, sealed or not, releases its handles;
/// - a handle of a kind outside [`Device::capabilities`] is refused with
///   [`Error::KindNotSupported`], the handle returned.
pub trait Device: Send + Sync {
    /// What this device can hold and how long it keeps it (default:
    /// [`Capabilities::ALL`]).
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }
    /// Create an empty, unsealed box.
    fn create_box(&self, name: &Name) -> Result<(), Error>;
    /// Delete a box and release what it holds.
    fn delete_box(&self, name: &Name) -> Result<(), Error>;
    /// Every box, in name order.
    fn boxes(&self) -> Result<Vec<BoxStatus>, Error>;
    /// One box.
    fn status(&self, name: &Name) -> Result<BoxStatus, Error>;
    /// Move `handle` into `box_name` under `entry`.
    fn put(&self, box_name: &Name, entry: &Name, handle: Handle) -> Result<(), Refused> {
        self.put_many(box_name, vec![(entry.clone(), handle)])
            .map_err(RefusedBatch::into_single)
    }
    /// Move the handle named `entry` out of `box_name`.
    fn get(&self, box_name: &Name, entry: &Name) -> Result<Handle, Error> {
        let mut handles = self.get_many(box_name, std::slice::from_ref(entry))?;
        Ok(handles
            .pop()
            .expect("a batch get returns one handle per name"))
    }
    /// Move every handle into `box_name` under its name, all or nothing: a
    /// name taken in the box, or twice in the batch, refuses the whole batch.
    fn put_many(&self, box_name: &Name, entries: Vec<(Name, Handle)>) -> Result<(), RefusedBatch> {
        self.put_many_within(box_name, entries, usize::MAX)
    }
    /// [`Device::put_many`], also refused with [`Error::QuotaExceeded`] (and
    /// nothing put) if the box would then hold more than `max_entries`, a
    /// guest's quota: checked and put in one step (for the daemon, one round
    /// trip), see [`rules`].
    fn put_many_within(
        &self,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        max_entries: usize,
    ) -> Result<(), RefusedBatch>;
    /// Move the handles named `entries` out of `box_name`, in that order, all
    /// or nothing.
    fn get_many(&self, box_name: &Name, entries: &[Name]) -> Result<Vec<Handle>, Error>;
    /// The entries of a box, in name order.
    fn entries(&self, box_name: &Name) -> Result<Vec<EntryInfo>, Error>;
    /// Seal a box.
    fn seal(&self, box_name: &Name) -> Result<(), Error>;
    /// Unseal a box.
    fn unseal(&self, box_name: &Name) -> Result<(), Error>;

    // What a holder that serves the device to other processes (the holder
    // daemon) needs besides the calls above. The defaults are made of those
    // calls; a device that can do better overrides them.

    /// [`Device::put_many_within`] within several entries quotas at once (the
    /// holder daemon's own and its peer's). Default: the smallest of them,
    /// so the refusal names the guest's quota; a device that checks each
    /// ([`MemoryDevice`]) names the one reached.
    fn put_within_quotas(
        &self,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        quotas: &[rules::EntriesQuota],
    ) -> Result<(), RefusedBatch> {
        let max = quotas.iter().map(|q| q.limit()).min().unwrap_or(usize::MAX);
        self.put_many_within(box_name, entries, max)
    }

    /// Put back entries a get took out of `box_name` on behalf of a peer
    /// that vanished before it had them. Those that cannot go back (the box
    /// is gone, the name taken again, or, where the device cannot put into
    /// a sealed box, sealed meanwhile) are returned. Default: a put of each.
    fn put_back(&self, box_name: &Name, entries: Vec<(Name, Handle)>) -> Vec<(Name, Handle)> {
        entries
            .into_iter()
            .filter_map(|(name, handle)| {
                self.put(box_name, &name, handle)
                    .err()
                    .map(|refused| (name, refused.handle))
            })
            .collect()
    }

    /// Add a whole box as an earlier holder had it, sealed or not, with its
    /// entries: how a holder rebuilds what a previous process handed over
    /// (fds copied out through [`Device::inspect_held`], so only a device
    /// that lends its handles takes them back). All or nothing: a refusal
    /// leaves no box and hands the entries back. Default: refused, the
    /// entries returned.
    fn rebuild_box(
        &self,
        name: Name,
        sealed: bool,
        entries: Vec<(Name, Handle)>,
    ) -> Result<(), RefusedBatch> {
        let _ = sealed;
        Err(RefusedBatch {
            error: Error::Device(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "box {name:?} cannot be rebuilt on this device: it does not take fds handed over"
                ),
            )),
            entries,
        })
    }

    /// Show `f` every box with its entries' handles, borrowed, all at once
    /// and unchanging while `f` runs, for a holder that copies its whole
    /// state elsewhere (systemd's fd store, the next image of an upgrading
    /// daemon). `false` (the default), without calling `f`: the device's
    /// handles are not in this process to lend (the kernel holds them), and
    /// such a hand-over cannot be made of them.
    fn inspect_held(&self, f: &mut dyn FnMut(Vec<HeldBox<'_>>)) -> bool {
        let _ = f;
        false
    }
}

/// A box as [`Device::inspect_held`] shows it: its seal and its entries,
/// borrowed from the device.
#[derive(Debug)]
pub struct HeldBox<'a> {
    /// The box's name.
    pub name: &'a Name,
    /// Whether it is sealed.
    pub sealed: bool,
    /// Its entries, in name order.
    pub entries: Vec<(&'a Name, &'a Handle)>,
}
