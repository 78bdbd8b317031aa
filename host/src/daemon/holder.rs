//! The holder: the boxes and their fds, kept in the daemon's own process so
//! they outlive every host process that uses them, and every invariant that
//! keeps them whole:
//!
//! - one op lock ([`Holder::change`]): every change to what is held, and the
//!   fd store's sync after it, happen under it, so the store and a hand-over
//!   only ever see whole ops;
//! - the count of held fds against [`Limits::max_held_fds`] and each
//!   client's shares of it ([`super::budget`]), kept with every put, take,
//!   loan and delete, with who put each entry;
//! - loans: entries taken out for a peer stay the box's (for the store and a
//!   hand-over) until the peer acknowledges them, and go back if it vanishes;
//! - the gate an in-place upgrade closes ([`Holder::quiesce`]);
//! - recovery from a hand-over ([`Holder::recover`]).
//!
//! The per-connection protocol ([`super::session`]) uses the holder only
//! through its op methods; it never touches these directly.
//!
//! Why one long file: every invariant above is kept by code that must be
//! read together (the op lock, the held count, loans, the gate, recovery);
//! splitting it would spread them over files again. A fifth is tests.

use super::budget::{Budget, Client, Shares};
use super::fd_store::{FdNames, FdStore};
use super::manifest::{MANIFEST_FD_PREFIX, Manifest, ManifestError, manifest_fd_name};
use super::owners::{BoxOwners, release_each};
use crate::device::daemon::wire::MAX_FDS_PER_FRAME;
use crate::device::rules::EntriesQuota;
use crate::device::{Device, RefusedBatch};
use crate::{Error, Handle, HandleKind, HeldBox, MemoryDevice, Name};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Limits the daemon enforces, whoever the peer is.
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    /// Most boxes at once.
    pub max_boxes: usize,
    /// Most entries in one box.
    pub max_entries_per_box: usize,
    /// Most fds the daemon holds in boxes at once (and in unfinished
    /// batches): at most `max_open_fds` (and at most what systemd's fd
    /// store keeps, under systemd).
    pub max_held_fds: usize,
    /// Most fds the daemon has open for its peers, held ones and one per
    /// connection together: its RLIMIT_NOFILE less headroom, so a put is
    /// refused with quota-exceeded before the kernel would drop fds.
    pub max_open_fds: usize,
    /// Percent of `max_held_fds` the peers of one uid may have (the held
    /// and staged fds they put; see `budget.rs`).
    pub uid_share_percent: usize,
    /// Percent of `max_held_fds` one peer process may have.
    pub process_share_percent: usize,
    /// Most connections served at once, all peers together.
    pub max_connections: usize,
    /// Most connections served at once for one uid (root's count too).
    pub max_connections_per_uid: usize,
    /// How long a new connection may take to say HELLO before it is closed.
    pub hello_timeout: Duration,
}

impl Limits {
    /// Default boxes.
    pub const DEFAULT_MAX_BOXES: usize = 4096;
    /// Default entries per box.
    pub const DEFAULT_MAX_ENTRIES_PER_BOX: usize = 65536;
    /// Most connections by default, all peers together: three quarters of
    /// the fds RLIMIT_NOFILE leaves (so at least a quarter stays for boxes
    /// however many peers connect), and no more than this.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 16384;
    /// Default connections of one uid, in percent of all connections: the
    /// daemon's own user and root each always find a quarter free of the
    /// other's.
    pub const DEFAULT_CONNECTIONS_PER_UID_PERCENT: usize = 75;
    /// Default share of the fd budget one uid may have, in percent (100 for
    /// a daemon running as root, whose only peers are root's).
    pub const DEFAULT_UID_SHARE_PERCENT: usize = 75;
    /// Default share of the fd budget one peer process may have, in percent.
    pub const DEFAULT_PROCESS_SHARE_PERCENT: usize = 25;
    /// Default wait for a new connection's HELLO.
    pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(5);

    /// Defaults for this process's RLIMIT_NOFILE ([`Limits::for_nofile`]).
    pub fn from_rlimit() -> Self {
        Self::for_nofile(Self::nofile(), None)
    }

    /// This process's RLIMIT_NOFILE (its soft limit).
    pub fn nofile() -> usize {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        limit.current.map_or(1 << 20, |n| n as usize)
    }

    /// Defaults for a daemon that may open `nofile` fds: an fd budget of
    /// `nofile` less headroom, shared by connections (one fd each) and the
    /// fds held; at most `max_connections` connections (by default three
    /// quarters of the budget, up to [`Limits::DEFAULT_MAX_CONNECTIONS`]),
    /// three quarters of them of one uid.
    pub fn for_nofile(nofile: usize, max_connections: Option<usize>) -> Self {
        let max_held_fds = nofile.saturating_sub(HEADROOM_FDS);
        let max_connections = max_connections
            .unwrap_or((max_held_fds / 4 * 3).clamp(64, Self::DEFAULT_MAX_CONNECTIONS));
        Self {
            max_boxes: Self::DEFAULT_MAX_BOXES,
            max_entries_per_box: Self::DEFAULT_MAX_ENTRIES_PER_BOX,
            max_held_fds,
            max_open_fds: max_held_fds,
            uid_share_percent: if rustix::process::geteuid().is_root() {
                100
            } else {
                Self::DEFAULT_UID_SHARE_PERCENT
            },
            process_share_percent: Self::DEFAULT_PROCESS_SHARE_PERCENT,
            max_connections,
            max_connections_per_uid: (max_connections * Self::DEFAULT_CONNECTIONS_PER_UID_PERCENT
                / 100)
                .max(1),
            hello_timeout: Self::DEFAULT_HELLO_TIMEOUT,
        }
    }

    fn shares(&self) -> Shares {
        Shares {
            max: self.max_held_fds,
            open: self.max_open_fds,
            uid_percent: self.uid_share_percent,
            process_percent: self.process_share_percent,
        }
    }
}

/// Fds kept free for the listener, connections when the boxes fill the
/// budget, the frame being received (its fds are in the process before
/// they can be counted) and the fd store's manifests.
const HEADROOM_FDS: usize = 2 * MAX_FDS_PER_FRAME + 64;

/// The daemon's state: the boxes, shared by every connection.
pub struct Holder {
    /// The device that holds the boxes: in this process (the default), or
    /// Live Update, which carries them across a kexec.
    boxes: Box<dyn Device>,
    /// What the device is, for logs and refusals ("memory", "liveupdate").
    device_name: String,
    limits: Limits,
    /// Connections served: each takes one fd of the budget.
    connected: AtomicUsize,
    /// Taken by every op that changes what the holder holds, from the change
    /// to the end of the fd store's sync: the store and a hand-over only ever
    /// see whole ops.
    shared: Mutex<Shared>,
    gate: Mutex<Gate>,
    gate_changed: Condvar,
}

/// What changes with the boxes, under the op lock.
struct Shared {
    /// Entries taken out by a GET whose peer has not acknowledged them yet,
    /// by loan number. They are still the box's for the fd store and go
    /// back into it if the peer vanishes.
    loans: BTreeMap<u64, Arc<Lent>>,
    next_loan: u64,
    handover: FdNames,
    /// The fds held and staged, in all and per client.
    budget: Budget,
    /// Who put each entry held, by box (entries recovered from a hand-over
    /// have nobody; a box without a record holds only those).
    owners: HashMap<Name, BoxOwners>,
}

/// Who is inside the holder, for an upgrade that must wait until nobody is.
#[derive(Default)]
struct Gate {
    /// An upgrade is under way: no new op starts and no connection is
    /// served.
    quiescing: bool,
    /// Ops started and not finished; a GET lasts until its acknowledgement.
    in_flight: usize,
    /// Connections being served.
    sessions: usize,
    /// Each served connection, to shut it down on upgrade (the last
    /// reference: the connection closes when it is counted out), with its
    /// peer's uid.
    conns: BTreeMap<u64, (Arc<OwnedFd>, u32)>,
    next_conn: u64,
    /// Connections served, per peer uid.
    per_uid: std::collections::HashMap<u32, usize>,
}

/// Why a connection was not served.
#[derive(Debug, thiserror::Error)]
pub(super) enum NotServed {
    /// The holder is being upgraded.
    #[error("the daemon is upgrading")]
    Quiescing,
    /// A limit on connections was reached.
    #[error("{0}")]
    Limit(String),
}

/// An op in flight; the upgrade waits for it.
pub(super) struct OpGuard<'a> {
    holder: &'a Holder,
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        let mut gate = self.holder.gate();
        gate.in_flight -= 1;
        // Only an upgrade waits (and it sets `quiescing` before it does):
        // no wake-up call per op otherwise.
        if gate.quiescing {
            self.holder.gate_changed.notify_all();
        }
    }
}

/// A connection being served; the upgrade waits for it to end.
pub(super) struct Registered<'a> {
    holder: &'a Holder,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut gate = self.holder.gate();
        let conn = gate.conns.remove(&self.id);
        if conn.is_some() {
            self.holder.connected.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some((_, uid)) = conn
            && let Some(n) = gate.per_uid.get_mut(&uid)
        {
            *n -= 1;
            if *n == 0 {
                gate.per_uid.remove(&uid);
            }
        }
        gate.sessions -= 1;
        if gate.quiescing {
            self.holder.gate_changed.notify_all();
        }
    }
}

/// The holder, with every op finished and every connection closed: nothing
/// changes until it drops (which lets service resume).
pub struct Quiesced<'a> {
    holder: &'a Holder,
}

/// Why a holder could not be quiesced.
#[derive(Debug, thiserror::Error)]
pub enum QuiesceError {
    /// Connections still served after being shut down.
    #[error("{0} connections were still being served after {1:?}")]
    Stuck(usize, Duration),
}

impl Holder {
    /// An empty holder, its boxes in this process.
    pub fn new(limits: Limits) -> Arc<Self> {
        Self::with_device(limits, "memory", Box::new(MemoryDevice::new()))
    }

    /// A holder serving the boxes of `device` (named `name` in logs and
    /// refusals), including those it holds already (a Live Update device
    /// that adopted the boxes of the kernel before a kexec). The hand-overs
    /// that copy every fd elsewhere (systemd's fd store, the in-place
    /// upgrade) need a device whose handles are in this process
    /// ([`Device::inspect_held`]); with another one they are refused, saying
    /// so, and the boxes live as long as the device keeps them.
    pub fn with_device(limits: Limits, name: &str, device: Box<dyn Device>) -> Arc<Self> {
        let held = device
            .boxes()
            .map(|boxes| boxes.iter().map(|b| b.entries).sum())
            .unwrap_or(0);
        // What the device held already (adopted after a kexec) is in the
        // budget, as recovered fds are: in the total, no peer's share.
        let mut budget = Budget::new(limits.shares());
        budget.hold(None, held);
        Arc::new(Self {
            boxes: device,
            device_name: name.to_owned(),
            limits,
            connected: AtomicUsize::new(0),
            shared: Mutex::new(Shared {
                loans: BTreeMap::new(),
                next_loan: 0,
                handover: FdNames::default(),
                budget,
                owners: HashMap::new(),
            }),
            gate: Mutex::new(Gate::default()),
            gate_changed: Condvar::new(),
        })
    }

    /// The boxes, as a device (for tests; a change made through it is not
    /// seen by the fd store until the next change made by a peer).
    pub fn boxes(&self) -> &dyn Device {
        &*self.boxes
    }

    /// The name of the device that holds the boxes.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// Whether the device's handles are in this process, so that systemd's
    /// fd store and the in-place upgrade can be given copies of them.
    pub fn can_hand_over(&self) -> bool {
        self.boxes.inspect_held(&mut |_| ())
    }

    fn cannot_hand_over(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the daemon's device ({}) keeps its fds in the kernel, not in the daemon: they cannot be handed to systemd's fd store or to a new daemon image (its boxes live as long as that device keeps them)",
                self.device_name
            ),
        )
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // Every change under this lock is one call into the device and one
        // map insert or remove: a panic cannot leave it half done.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run a change under the op lock, then bring the fd store in line.
    fn change<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut shared = self.shared();
        let result = f(&mut shared);
        self.sync(&mut shared);
        result
    }

    /// Every box with its entries, lent ones included, as `f` sees them;
    /// `None` if the device cannot show its handles ([`Device::inspect_held`]).
    fn inspect<R>(
        &self,
        loans: &BTreeMap<u64, Arc<Lent>>,
        f: impl FnOnce(&[HeldBox<'_>]) -> R,
    ) -> Option<R> {
        let mut f = Some(f);
        let mut result = None;
        self.boxes.inspect_held(&mut |boxes| {
            if let Some(f) = f.take() {
                result = Some(f(&with_loans(boxes, loans)));
            }
        });
        result
    }

    fn sync(&self, shared: &mut Shared) {
        let Shared {
            loans, handover, ..
        } = shared;
        if handover.has_store() {
            self.inspect(loans, |boxes| handover.sync(boxes));
        }
    }

    /// Count an op in, unless an upgrade is under way.
    pub(super) fn enter(&self) -> Option<OpGuard<'_>> {
        let mut gate = self.gate();
        if gate.quiescing {
            return None;
        }
        gate.in_flight += 1;
        Some(OpGuard { holder: self })
    }

    /// Count a connection in, unless an upgrade is under way; its
    /// [`Holder::registered`] guard counts it out.
    pub(super) fn register(&self, conn: Arc<OwnedFd>, uid: u32) -> Result<u64, NotServed> {
        let mut gate = self.gate();
        if gate.quiescing {
            return Err(NotServed::Quiescing);
        }
        if gate.sessions >= self.limits.max_connections {
            return Err(NotServed::Limit(format!(
                "{} connections are served, the daemon's limit",
                gate.sessions
            )));
        }
        let of_uid = gate.per_uid.get(&uid).copied().unwrap_or(0);
        if of_uid >= self.limits.max_connections_per_uid {
            return Err(NotServed::Limit(format!(
                "uid {uid} has {of_uid} connections, the daemon's limit per uid"
            )));
        }
        let id = gate.next_conn;
        gate.next_conn += 1;
        gate.conns.insert(id, (conn, uid));
        self.connected.fetch_add(1, Ordering::Relaxed);
        *gate.per_uid.entry(uid).or_default() += 1;
        gate.sessions += 1;
        Ok(id)
    }

    /// Count in an event loop that serves connections, as one more session
    /// (with no connection): an upgrade waits until it is gone (its
    /// [`Holder::registered`] guard dropped) as it waits for the
    /// connections, so nothing the loop owns is closed after the upgrade
    /// started moving fds around.
    pub(super) fn register_loop(&self) -> u64 {
        let mut gate = self.gate();
        let id = gate.next_conn;
        gate.next_conn += 1;
        gate.sessions += 1;
        id
    }

    /// How long a new connection may take to say HELLO.
    pub(super) fn hello_timeout(&self) -> Duration {
        self.limits.hello_timeout
    }

    /// The guard of a connection [`Holder::register`] counted in: dropped
    /// last by its session, once what it lent is back in its box and its
    /// connection closed (an upgrade reuses fd numbers: a close after that
    /// would close another fd).
    pub(super) fn registered(&self, id: u64) -> Registered<'_> {
        Registered { holder: self, id }
    }

    /// The most entries one batch may carry: no quota allows more.
    pub(super) fn max_batch(&self) -> usize {
        self.limits.max_entries_per_box
    }

    /// Create an empty box, within [`Limits::max_boxes`].
    pub(super) fn create_box(&self, name: &Name) -> Result<(), Error> {
        self.change(|_| {
            if self.boxes.boxes()?.len() >= self.limits.max_boxes {
                return Err(Error::QuotaExceeded(format!(
                    "the daemon holds {} boxes, its limit",
                    self.limits.max_boxes
                )));
            }
            self.boxes.create_box(name)
        })
    }

    /// Delete a box and what it holds.
    pub(super) fn delete_box(&self, name: &Name) -> Result<(), Error> {
        self.change(|shared| {
            let released = self.boxes.status(name)?.entries;
            self.boxes.delete_box(name)?;
            let owners = shared.owners.remove(name).unwrap_or_default();
            owners.release_all(released, &mut shared.budget);
            Ok(())
        })
    }

    /// Seal a box.
    pub(super) fn seal(&self, name: &Name) -> Result<(), Error> {
        self.change(|_| self.boxes.seal(name))
    }

    /// Unseal a box.
    pub(super) fn unseal(&self, name: &Name) -> Result<(), Error> {
        self.change(|_| self.boxes.unseal(name))
    }

    /// Put `client`'s `entries` into `box_name`, all or nothing: the
    /// device's rules ([`crate::device::rules`]) with the peer's quota (if
    /// it sent one) and the daemon's own, then the fd budget and the
    /// client's shares of it ([`super::budget`]). A refused batch is dropped
    /// here: the peer keeps its own fds until the reply.
    pub(super) fn put(
        &self,
        client: Client,
        box_name: &Name,
        entries: Vec<(Name, Handle)>,
        caller_limit: Option<usize>,
    ) -> Result<(), Error> {
        let count = entries.len();
        let mut quotas = vec![EntriesQuota::Holder(self.limits.max_entries_per_box)];
        quotas.extend(caller_limit.map(EntriesQuota::Guest));
        self.change(|shared| {
            shared
                .budget
                .check(Some(client), count, self.connections())?;
            // Whatever a box without a record holds is recovered: nobody's.
            let unowned = match shared.owners.get(box_name) {
                Some(_) => 0,
                None => self.boxes.status(box_name).map_or(0, |s| s.entries),
            };
            let mut owners = shared
                .owners
                .remove(box_name)
                .unwrap_or_else(|| BoxOwners::with_unowned(unowned));
            // Copied only if the box holds entries of someone else's: then
            // each of this batch's owner is recorded by name.
            let names: Vec<Name> = if owners.counts(Some(client)) {
                Vec::new()
            } else {
                entries.iter().map(|(name, _)| name.clone()).collect()
            };
            let put = self
                .boxes
                .put_within_quotas(box_name, entries, &quotas)
                .map_err(|refused| refused.error);
            if put.is_ok() {
                shared.budget.hold(Some(client), count);
                owners.add_batch(Some(client), count, &names);
            }
            if !owners.is_empty() {
                shared.owners.insert(box_name.clone(), owners);
            }
            put
        })
    }

    /// Count `count` fds of an unfinished batch of `client`'s into the fd
    /// budget, or refuse them (quota-exceeded) if the budget or the
    /// client's share of it has no room for them.
    pub(super) fn stage(&self, client: Client, count: usize) -> Result<(), Error> {
        let connections = self.connections();
        self.shared().budget.stage(Some(client), count, connections)
    }

    /// Connections served now.
    fn connections(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Count `count` staged fds of `client`'s out again (their batch ended).
    pub(super) fn unstage(&self, client: Client, count: usize) {
        if count > 0 {
            self.shared().budget.unstage(Some(client), count);
        }
    }

    /// Take `names` out of `box_name` for a peer, as a loan: they stay the
    /// box's for the fd store and a hand-over until [`Holder::acknowledge`],
    /// and go back with [`Holder::give_back`] if the peer vanishes first.
    pub(super) fn lend(&self, box_name: Name, names: Vec<Name>) -> Result<(u64, Arc<Lent>), Error> {
        self.change(|shared| {
            let handles = self.boxes.get_many(&box_name, &names)?;
            let id = shared.next_loan;
            shared.next_loan += 1;
            // Who put them goes with them: a put under the same name while
            // they are out is someone else's entry.
            let owners = match shared.owners.get_mut(&box_name) {
                Some(of_box) => {
                    let owners = names.iter().map(|name| of_box.take(name)).collect();
                    if of_box.is_empty() {
                        shared.owners.remove(&box_name);
                    }
                    owners
                }
                None => vec![None; names.len()],
            };
            let entries = names.into_iter().zip(handles).collect();
            let lent = Arc::new(Lent {
                box_name,
                entries,
                owners,
            });
            shared.loans.insert(id, lent.clone());
            Ok((id, lent))
        })
    }

    /// The peer has the loan `id`: it is no longer held (its fds close when
    /// the session drops its reference).
    pub(super) fn acknowledge(&self, id: u64) {
        self.change(|shared| {
            if let Some(lent) = shared.loans.remove(&id) {
                release_each(&lent.owners, &mut shared.budget);
            }
        });
    }

    /// Put the loan `id`, which its peer never acknowledged, back where it
    /// was.
    pub(super) fn give_back(&self, id: u64) {
        self.change(|shared| {
            let Some(lent) = shared.loans.remove(&id) else {
                return;
            };
            // The session's own reference went with its reply.
            let Ok(Lent {
                box_name,
                entries,
                owners,
            }) = Arc::try_unwrap(lent)
            else {
                unreachable!("a loan is shared only while its reply is sent")
            };
            let count = entries.len();
            let mut owner_of: HashMap<Name, Option<Client>> = entries
                .iter()
                .zip(owners)
                .map(|((name, _), owner)| (name.clone(), owner))
                .collect();
            let lost = self.boxes.put_back(&box_name, entries);
            for (name, _) in &lost {
                shared.budget.release(owner_of.remove(name).flatten(), 1);
            }
            if !owner_of.is_empty() {
                let of_box = match shared.owners.entry(box_name.clone()) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        // What the box held without a record is nobody's.
                        let held = self.boxes.status(&box_name).map_or(0, |s| s.entries);
                        v.insert(BoxOwners::with_unowned(
                            held.saturating_sub(owner_of.len()),
                        ))
                    }
                };
                for (name, owner) in &owner_of {
                    of_box.add(name, *owner);
                }
            }
            if !lost.is_empty() {
                tracing::error!(
                    "{} of {count} entries taken from box {box_name:?} by a peer that vanished could not be put back (box deleted or names reused)",
                    lost.len()
                );
            }
        });
    }

    /// Let every op in flight finish, close every connection, and wait for
    /// their sessions to end (what they lent goes back into its box) and
    /// for the event loop that served them to be gone with its fds, all
    /// within about twice `patience`. Call it from the thread that ran
    /// [`super::serve_until`], once that returned: no connection is
    /// accepted meanwhile. A peer whose request was cut off this way finds
    /// its connection closed before any reply, and may send it again.
    pub fn quiesce(&self, patience: Duration) -> Result<Quiesced<'_>, QuiesceError> {
        let mut gate = self.gate();
        gate.quiescing = true;
        let quiesced = Quiesced { holder: self };
        // Ops in flight end with their reply (a GET with its
        // acknowledgement, so nothing the peer received is given back).
        let deadline = Instant::now() + patience;
        while gate.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    "{} ops still in flight after {patience:?}: cutting their connections",
                    gate.in_flight
                );
                break;
            }
            gate = self
                .gate_changed
                .wait_timeout(gate, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        // Shut down, not closed: the sessions own their fds. Each wakes up
        // with its peer gone (its pending frames are still read first, so an
        // acknowledgement that arrived is honoured), gives back what it
        // lent, and ends; a peer sending from now on gets EPIPE.
        for (conn, _) in gate.conns.values() {
            let _ = rustix::net::shutdown(conn, rustix::net::Shutdown::Both);
        }
        let deadline = Instant::now() + patience;
        while gate.sessions > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let stuck = gate.sessions;
                // Unlocked before `quiesced` drops and reopens the gate.
                drop(gate);
                return Err(QuiesceError::Stuck(stuck, patience));
            }
            gate = self
                .gate_changed
                .wait_timeout(gate, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        drop(gate);
        Ok(quiesced)
    }
}

/// `boxes` with the entries of `loans` back in them. A loan whose box is
/// gone, or whose names were taken again meanwhile, would not go back: it is
/// not the box's any more.
fn with_loans<'a>(
    mut boxes: Vec<HeldBox<'a>>,
    loans: &'a BTreeMap<u64, Arc<Lent>>,
) -> Vec<HeldBox<'a>> {
    for lent in loans.values() {
        let Ok(i) = boxes.binary_search_by(|b| b.name.cmp(&lent.box_name)) else {
            continue;
        };
        let held = &mut boxes[i];
        for (name, handle) in &lent.entries {
            if let Err(at) = held.entries.binary_search_by(|(n, _)| (*n).cmp(name)) {
                held.entries.insert(at, (name, handle));
            }
        }
    }
    boxes
}

impl Quiesced<'_> {
    /// Hand the holder's state over: `f` gets every fd to pass on with its
    /// fd name, the manifest first (in a new sealed memfd), then one per
    /// entry. The fds are borrowed from the boxes, which do not change
    /// while `f` runs.
    pub fn export<R>(&self, f: impl FnOnce(&[(String, BorrowedFd<'_>)]) -> R) -> io::Result<R> {
        let holder = self.holder;
        let mut shared = holder.shared();
        let Shared {
            loans, handover, ..
        } = &mut *shared;
        holder
            .inspect(loans, |boxes| {
                let (generation, manifest, fds) = handover.export(boxes)?;
                let mut all = Vec::with_capacity(fds.len() + 1);
                all.push((manifest_fd_name(generation), manifest.as_fd()));
                all.extend(fds);
                Ok(f(&all))
            })
            .unwrap_or_else(|| Err(holder.cannot_hand_over()))
    }
}

impl Drop for Quiesced<'_> {
    fn drop(&mut self) {
        self.holder.gate().quiescing = false;
        self.holder.gate_changed.notify_all();
    }
}

/// Handles taken out for a peer, kept until it acknowledges receiving them.
pub(super) struct Lent {
    box_name: Name,
    entries: Vec<(Name, Handle)>,
    /// Who put each entry, in the same order (none if recovered).
    owners: Vec<Option<Client>>,
}

impl Lent {
    /// The entries lent, in the order asked.
    pub(super) fn entries(&self) -> &[(Name, Handle)] {
        &self.entries
    }
}

/// Why [`Holder::recover`] refused a hand-over. Nothing was recovered and
/// the fds were closed (systemd keeps its own copies of what it stored).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// The holder's device cannot take fds handed over.
    #[error("{0}")]
    CannotHandOver(io::Error),
    /// The holder already holds boxes.
    #[error("the holder already holds boxes; recover into a new one")]
    NotEmpty,
    /// A manifest could not be read.
    #[error("the manifest {fd_name:?} cannot be used: {error}")]
    Manifest {
        /// Its fd name.
        fd_name: String,
        /// What is wrong with it (in the message, so not a `source()`).
        error: ManifestError,
    },
    /// Two manifests claim to be the newest.
    #[error("two manifests have generation {0}: the hand-over is inconsistent")]
    SameGeneration(u64),
    /// An fd is not of the kind the manifest says.
    #[error(
        "the fd {fd_name:?} of entry {box_name:?}/{entry:?} is not the {expected} the manifest says: the hand-over is inconsistent"
    )]
    KindMismatch {
        /// The fd name.
        fd_name: String,
        /// The box.
        box_name: Name,
        /// The entry.
        entry: Name,
        /// What the manifest says it is.
        expected: HandleKind,
    },
    /// An fd could not be examined.
    #[error("cannot examine the fd {fd_name:?}: {error}")]
    Fd {
        /// The fd name.
        fd_name: String,
        /// Why (in the message, so not a `source()`).
        error: io::Error,
    },
}

/// What [`Holder::recover`] rebuilt.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The generation of the manifest used, if there was one.
    pub generation: Option<u64>,
    /// Boxes rebuilt.
    pub boxes: usize,
    /// Entries rebuilt.
    pub entries: usize,
    /// Fds that the manifest does not mention (closed).
    pub unknown: Vec<String>,
    /// Older manifests (closed): left over when a daemon died between
    /// storing a new manifest and removing the old one.
    pub superseded: Vec<String>,
    /// Entries the manifest lists whose fd was not handed over, as (box,
    /// entry, fd name): lost.
    pub missing: Vec<(Name, Name, String)>,
}

impl Holder {
    /// Rebuild the boxes an earlier holder handed over: `fds` with their
    /// names (`LISTEN_FDS` and `LISTEN_FDNAMES`, less the listening socket).
    /// The newest manifest among them says which fd is which entry; fds it
    /// does not mention are closed with a warning, and an entry whose fd is
    /// missing is reported and skipped. A manifest that cannot be read, or
    /// an fd of another kind than its entry's, refuses the whole hand-over
    /// (see the module doc for why). Call it on a new holder, before it
    /// serves.
    pub fn recover(&self, fds: Vec<(String, OwnedFd)>) -> Result<Recovery, RecoverError> {
        if !self.can_hand_over() {
            return Err(RecoverError::CannotHandOver(self.cannot_hand_over()));
        }
        let mut shared = self.shared();
        if !self.boxes().boxes().map(|b| b.is_empty()).unwrap_or(false) {
            return Err(RecoverError::NotEmpty);
        }
        let (manifests, others): (Vec<_>, Vec<_>) = fds
            .into_iter()
            .partition(|(name, _)| name.starts_with(MANIFEST_FD_PREFIX));
        let mut newest: Option<(String, Manifest)> = None;
        let mut superseded = Vec::new();
        for (fd_name, fd) in &manifests {
            let manifest = Manifest::read(fd.as_fd()).map_err(|error| RecoverError::Manifest {
                fd_name: fd_name.clone(),
                error,
            })?;
            match &newest {
                Some((_, best)) if best.generation == manifest.generation => {
                    return Err(RecoverError::SameGeneration(manifest.generation));
                }
                Some((_, best)) if best.generation > manifest.generation => {
                    superseded.push(fd_name.clone());
                }
                _ => {
                    if let Some((old, _)) = newest.replace((fd_name.clone(), manifest)) {
                        superseded.push(old);
                    }
                }
            }
        }
        let manifest = newest.map(|(_, m)| m).unwrap_or_default();

        let mut by_name: BTreeMap<String, OwnedFd> = BTreeMap::new();
        let mut unknown = Vec::new();
        for (name, fd) in others {
            match by_name.entry(name) {
                // systemd keeps every fd sent under a name; this module never
                // sends two under one.
                std::collections::btree_map::Entry::Occupied(taken) => {
                    unknown.push(taken.key().clone())
                }
                std::collections::btree_map::Entry::Vacant(free) => {
                    free.insert(fd);
                }
            }
        }
        // Check every fd before taking any, so a refusal leaves them all.
        for e in &manifest.entries {
            if let Some(fd) = by_name.get(&e.fd_name) {
                let stat = rustix::fs::fstat(fd).map_err(|err| RecoverError::Fd {
                    fd_name: e.fd_name.clone(),
                    error: err.into(),
                })?;
                let is_dir = rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir();
                if is_dir != (e.kind == HandleKind::Directory) {
                    return Err(RecoverError::KindMismatch {
                        fd_name: e.fd_name.clone(),
                        box_name: e.box_name.clone(),
                        entry: e.name.clone(),
                        expected: e.kind,
                    });
                }
            }
        }

        let mut recovery = Recovery {
            generation: (!manifests.is_empty()).then_some(manifest.generation),
            superseded,
            ..Recovery::default()
        };
        let mut entries: BTreeMap<Name, Vec<(Name, Handle)>> = BTreeMap::new();
        let state = &mut shared.handover;
        for e in manifest.entries {
            let Some(fd) = by_name.remove(&e.fd_name) else {
                tracing::error!(
                    "entry {:?} of box {:?} is lost: its fd {:?} was not handed over",
                    e.name.as_str(),
                    e.box_name.as_str(),
                    e.fd_name
                );
                recovery.missing.push((e.box_name, e.name, e.fd_name));
                continue;
            };
            state.adopt(fd.as_raw_fd(), e.fd_name);
            entries
                .entry(e.box_name)
                .or_default()
                .push((e.name, Handle::from_parts(fd, e.kind, e.access)));
        }
        for b in manifest.boxes {
            let contents = entries.remove(&b.name).unwrap_or_default();
            let count = contents.len();
            // The manifest has no duplicates and the holder was empty, so
            // this holds only while a peer creates boxes meanwhile (which
            // `recover` before serving rules out).
            if let Err(RefusedBatch { error, entries }) =
                self.boxes.rebuild_box(b.name.clone(), b.sealed, contents)
            {
                tracing::error!("box {:?} cannot be rebuilt: {error}", b.name.as_str());
                recovery.missing.extend(
                    entries
                        .into_iter()
                        .map(|(name, _)| (b.name.clone(), name, String::new())),
                );
                continue;
            }
            recovery.boxes += 1;
            recovery.entries += count;
        }
        debug_assert!(entries.is_empty(), "the manifest lists every entry's box");
        state.continue_after(manifest.generation);
        shared.budget.hold(None, recovery.entries);
        for name in by_name.into_keys() {
            tracing::warn!("closing the fd {name:?} handed over: no manifest mentions it");
            unknown.push(name);
        }
        recovery.unknown = unknown;
        Ok(recovery)
    }

    /// Keep `store` in line with the boxes from now on, after every change.
    /// `inherited` names what the store held when this process started
    /// (`LISTEN_FDNAMES` less the listener): names no longer needed are
    /// removed from it. The first sync stores every fd again, which systemd
    /// ignores for fds it already has.
    /// Refused (Unsupported) if the device's fds are not in this process.
    pub fn attach_store(&self, store: Box<dyn FdStore>, inherited: Vec<String>) -> io::Result<()> {
        if !self.can_hand_over() {
            return Err(self.cannot_hand_over());
        }
        let mut shared = self.shared();
        shared.handover.attach(store, inherited);
        self.sync(&mut shared);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::manifest::tests::sample;
    use std::io::Write;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn holder() -> std::sync::Arc<Holder> {
        Holder::new(super::super::Limits::from_rlimit())
    }

    fn memfd(text: &str) -> OwnedFd {
        let fd = Handle::new_memory_file(&name("t")).unwrap().into_fd();
        let mut file = std::fs::File::from(fd);
        file.write_all(text.as_bytes()).unwrap();
        file.into()
    }

    #[test]
    fn entries_count_against_whoever_put_them_until_they_leave() {
        let holder = holder();
        let (a, b) = (Client { uid: 1, pid: 10 }, Client { uid: 1, pid: 11 });
        let of = |pid| holder.shared().budget.of_process(pid);
        let entries = |names: &[&str]| -> Vec<(Name, Handle)> {
            names
                .iter()
                .map(|n| (name(n), Handle::new_memory_file(&name(n)).unwrap()))
                .collect()
        };
        let bx = name("box");
        holder.create_box(&bx).unwrap();
        holder
            .put(a, &bx, entries(&["a1", "a2", "a3"]), None)
            .unwrap();
        holder.put(b, &bx, entries(&["b1", "b2"]), None).unwrap();
        // A refused batch (a name taken) counts nothing in.
        let refused = holder.put(b, &bx, entries(&["b3", "a1"]), None);
        assert_eq!(refused.unwrap_err().code(), crate::ErrorCode::AlreadyExists);
        assert_eq!((of(10), of(11)), ((3, 5), (2, 5)));
        // Lent entries still count until acknowledged.
        let (id, _) = holder
            .lend(bx.clone(), vec![name("b1"), name("a1")])
            .unwrap();
        assert_eq!((of(10), of(11)), ((3, 5), (2, 5)));
        holder.acknowledge(id);
        assert_eq!((of(10), of(11)), ((2, 3), (1, 3)));
        // A loan given back is its putter's again, and goes with the box.
        let (id, _) = holder
            .lend(bx.clone(), vec![name("a2"), name("b2")])
            .unwrap();
        holder.give_back(id);
        assert_eq!((of(10), of(11)), ((2, 3), (1, 3)));
        let (id, _) = holder.lend(bx.clone(), vec![name("b2")]).unwrap();
        holder.acknowledge(id);
        assert_eq!((of(10), of(11)), ((2, 2), (0, 2)));
        holder.put(b, &bx, entries(&["b4"]), None).unwrap();
        holder.delete_box(&bx).unwrap();
        assert_eq!((of(10), of(11)), ((0, 0), (0, 0)));
    }

    #[test]
    fn recovery_skips_a_missing_fd_and_closes_unknown_ones() {
        let mut manifest = sample();
        manifest.boxes[0].sealed = false;
        let mut lost = manifest.entries[0].clone();
        lost.fd_name = "e9".into();
        lost.name = name("lost");
        manifest.entries.push(lost);
        let fds = vec![
            (manifest_fd_name(7), manifest.to_memfd().unwrap()),
            ("e3".to_owned(), memfd("kept")),
            ("stray".to_owned(), memfd("stray")),
        ];
        let holder = holder();
        let recovery = holder.recover(fds).unwrap();
        assert_eq!(recovery.generation, Some(7));
        assert_eq!((recovery.boxes, recovery.entries), (2, 1));
        assert_eq!(recovery.unknown, ["stray"]);
        assert_eq!(
            recovery.missing,
            [(name("a"), name("lost"), "e9".to_owned())]
        );
        let h = holder.boxes().get(&name("a"), &name("x")).unwrap();
        assert_eq!(h.kind(), HandleKind::MemoryFile);
        assert!(!h.access().write, "access comes from the manifest");
        assert_eq!(holder.boxes().status(&name("empty")).unwrap().entries, 0);
        assert!(matches!(
            holder.recover(Vec::new()),
            Err(RecoverError::NotEmpty)
        ));
    }

    #[test]
    fn recovery_takes_the_newest_manifest_and_refuses_inconsistent_ones() {
        let old = Manifest {
            generation: 3,
            ..Manifest::default()
        };
        let fds = vec![
            (manifest_fd_name(3), old.to_memfd().unwrap()),
            (manifest_fd_name(7), sample().to_memfd().unwrap()),
            ("e3".to_owned(), memfd("x")),
        ];
        let recovery = holder().recover(fds).unwrap();
        assert_eq!(recovery.generation, Some(7));
        assert_eq!(recovery.superseded, [manifest_fd_name(3)]);
        assert_eq!(recovery.entries, 1);

        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        let fds = vec![
            (manifest_fd_name(7), sample().to_memfd().unwrap()),
            ("e3".to_owned(), dir.into()),
        ];
        assert!(matches!(
            holder().recover(fds),
            Err(RecoverError::KindMismatch { .. })
        ));

        let fds = vec![(manifest_fd_name(1), memfd("not a manifest"))];
        let err = holder().recover(fds).unwrap_err();
        assert!(err.to_string().contains("fdbox-manifest-1"), "{err}");
        assert!(err.to_string().contains("bad magic"), "{err}");
    }
}
