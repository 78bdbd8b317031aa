//! The rules of a put, in one place: every device checks a put against
//! [`check_put`] before it holds anything, so each refuses the same batch
//! with the same error, in the same order.
//!
//! 1. the box is not sealed ([`Error::BoxSealed`]);
//! 2. the box stays within the caller's entries quota
//!    ([`Error::QuotaExceeded`]);
//! 3. every handle is of a kind the device holds
//!    ([`Error::KindNotSupported`]);
//! 4. no entry name is taken in the box, or given twice in the batch
//!    ([`Error::EntryExists`]).
//!
//! (That the box exists is each device's own lookup, before these.) A device
//! may refuse more after these (a Live Update file held elsewhere), never
//! less.

use super::{BoxStatus, Capabilities, Error, Handle, Name};
use std::collections::HashSet;

/// The box a put goes into, as the rules need to see it.
pub struct PutTarget<'a> {
    /// The box's name.
    pub name: &'a Name,
    /// Whether it is sealed.
    pub sealed: bool,
    /// How many entries it holds.
    pub entries: usize,
    /// Whether an entry of this name is in it.
    pub has_entry: &'a dyn Fn(&Name) -> bool,
}

/// Which limit an entries quota is, for the refusal's message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EntriesQuota {
    /// The guest's (`Quotas::max_entries_per_box`).
    Guest(usize),
    /// The holder daemon's own, for every peer
    /// (`daemon::Limits::max_entries_per_box`).
    Holder(usize),
}

impl EntriesQuota {
    /// The most entries it allows.
    pub fn limit(self) -> usize {
        match self {
            Self::Guest(n) | Self::Holder(n) => n,
        }
    }
}

/// Check a put of `batch` into `target` (see the module doc for the rules
/// and their order), within `quotas` and the kinds of `capabilities`.
pub fn check_put(
    target: &PutTarget<'_>,
    batch: &[(Name, Handle)],
    quotas: &[EntriesQuota],
    capabilities: &Capabilities,
) -> Result<(), Error> {
    check_put_but_names(target, batch.len(), batch, quotas, capabilities)?;
    let mut seen = HashSet::with_capacity(batch.len());
    if let Some((name, _)) = batch
        .iter()
        .find(|(name, _)| (target.has_entry)(name) || !seen.insert(name))
    {
        return Err(Error::EntryExists {
            box_name: target.name.clone(),
            entry: name.clone(),
        });
    }
    Ok(())
}

/// Rules 1 to 3 of [`check_put`], for a device that checks rule 4 itself
/// as it puts (one lookup per entry), refusing with [`Error::EntryExists`]
/// naming the first entry of the batch taken or given twice.
pub fn check_put_but_names<'a>(
    target: &PutTarget<'_>,
    adding: usize,
    batch: impl IntoIterator<Item = &'a (Name, Handle)>,
    quotas: &[EntriesQuota],
    capabilities: &Capabilities,
) -> Result<(), Error> {
    if target.sealed {
        return Err(Error::BoxSealed(target.name.clone()));
    }
    for quota in quotas {
        check_entries_quota(target.name, target.entries, adding, *quota)?;
    }
    if let Some((_, handle)) = batch
        .into_iter()
        .find(|(_, h)| !capabilities.holds(h.kind()))
    {
        return Err(Error::KindNotSupported(handle.kind()));
    }
    Ok(())
}

/// Refuse adding `adding` entries to a box of `held` entries if it would
/// then hold more than the quota allows.
pub fn check_entries_quota(
    box_name: &Name,
    held: usize,
    adding: usize,
    quota: EntriesQuota,
) -> Result<(), Error> {
    let limit = quota.limit();
    if held + adding <= limit {
        return Ok(());
    }
    Err(Error::QuotaExceeded(match quota {
        EntriesQuota::Guest(_) => format!(
            "box {box_name:?} holds {held} entries and may hold {limit} for this guest (its entries-per-box quota)"
        ),
        EntriesQuota::Holder(_) => format!(
            "box {box_name:?} would hold {} entries; the holder daemon's limit is {limit} entries per box",
            held + adding
        ),
    }))
}

/// A put's quota: the caller's, unless it has none (`usize::MAX`); pass it
/// to [`check_put`] with `.as_slice()`.
pub fn guest_quota(max_entries: usize) -> Option<EntriesQuota> {
    (max_entries != usize::MAX).then_some(EntriesQuota::Guest(max_entries))
}

impl BoxStatus {
    /// Whether a put of `adding` entries stays within `quota` (a sealed box
    /// is left to refuse with box-sealed, the more useful answer).
    pub fn check_quota(&self, adding: usize, quota: EntriesQuota) -> Result<(), Error> {
        if self.sealed {
            return Ok(());
        }
        check_entries_quota(&self.name, self.entries, adding, quota)
    }
}
