//! Who put each entry the holder holds, so that every fd counts against
//! the client that sent it ([`super::budget`]) until it leaves the daemon.
//!
//! Nearly every box is filled by one client, so a box's record is one
//! owner with a count of the entries that are its, plus a map of the
//! entries of anyone else (or of nobody: recovered from a hand-over). A
//! batch of one client costs two counter updates, not a name copy and a
//! hash-map insert per entry (BENCHMARKS.md).

use super::budget::{Budget, Client};
use crate::Name;
use std::collections::HashMap;

/// The owners of one box's entries. Every entry the box holds is counted
/// once: `usual` owns `usual_count` of them, `others` names the rest.
/// (Entries out on loan are not the box's: their owners travel with them.)
#[derive(Debug, Default)]
pub(super) struct BoxOwners {
    usual: Option<Client>,
    usual_count: usize,
    others: HashMap<Name, Option<Client>>,
}

impl BoxOwners {
    /// The record of a box that holds `unowned` entries nobody is known to
    /// have put (recovered ones), and no other.
    pub fn with_unowned(unowned: usize) -> Self {
        Self {
            usual: None,
            usual_count: unowned,
            others: HashMap::new(),
        }
    }

    /// Entry `name`, now in the box, is `owner`'s.
    pub fn add(&mut self, name: &Name, owner: Option<Client>) {
        if self.usual_count == 0 {
            self.usual = owner;
        }
        if self.usual == owner {
            self.usual_count += 1;
        } else {
            self.others.insert(name.clone(), owner);
        }
    }

    /// Whether entries of `owner` put now would only be counted, not
    /// recorded by name ([`BoxOwners::add_batch`] needs no names then).
    pub fn counts(&self, owner: Option<Client>) -> bool {
        self.usual_count == 0 || self.usual == owner
    }

    /// `count` entries, now in the box, are `owner`'s: `names` gives them
    /// unless [`BoxOwners::counts`] said it needs none.
    pub fn add_batch<'a>(
        &mut self,
        owner: Option<Client>,
        count: usize,
        names: impl IntoIterator<Item = &'a Name>,
    ) {
        if self.usual_count == 0 {
            self.usual = owner;
        }
        if self.usual == owner {
            self.usual_count += count;
        } else {
            self.others
                .extend(names.into_iter().map(|name| (name.clone(), owner)));
        }
    }

    /// Entry `name` left the box: whose it was.
    pub fn take(&mut self, name: &Name) -> Option<Client> {
        if !self.others.is_empty()
            && let Some(owner) = self.others.remove(name)
        {
            return owner;
        }
        if self.usual_count == 0 {
            // Not recorded (the box was changed behind the holder's back):
            // nobody's, as a recovered entry is.
            return None;
        }
        self.usual_count -= 1;
        self.usual
    }

    /// Whether no entry is recorded.
    pub fn is_empty(&self) -> bool {
        self.usual_count == 0 && self.others.is_empty()
    }

    /// The box is gone with its `held` entries: count each out of the
    /// budget against its owner (any not recorded against nobody).
    pub fn release_all(self, held: usize, budget: &mut Budget) {
        let mut recorded = self.usual_count;
        budget.release(self.usual, self.usual_count);
        for owner in self.others.into_values() {
            budget.release(owner, 1);
            recorded += 1;
        }
        budget.release(None, held.saturating_sub(recorded));
    }
}

/// Count out of `budget` the fds of `owners`, one per entry, grouping runs
/// of the same owner into one update.
pub(super) fn release_each(owners: &[Option<Client>], budget: &mut Budget) {
    let mut rest = owners;
    while let Some(&first) = rest.first() {
        let run = rest.iter().take_while(|&&o| o == first).count();
        budget.release(first, run);
        rest = &rest[run..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Client = Client { uid: 1000, pid: 10 };
    const B: Client = Client { uid: 1000, pid: 11 };

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn one_owner_is_counted_others_are_named() {
        let mut o = BoxOwners::default();
        let names = [n("a"), n("b")];
        o.add_batch(Some(A), 2, &names);
        assert!(o.others.is_empty());
        o.add(&n("c"), Some(B));
        o.add(&n("d"), None);
        assert_eq!(o.take(&n("c")), Some(B));
        assert_eq!(o.take(&n("d")), None);
        assert_eq!(o.take(&n("a")), Some(A));
        assert_eq!(o.take(&n("b")), Some(A));
        assert!(o.is_empty());
        // Empty again: the next owner becomes the usual one.
        o.add(&n("e"), Some(B));
        assert!(o.others.is_empty());
        assert_eq!(o.take(&n("e")), Some(B));
    }

    #[test]
    fn recovered_entries_stay_nobodys() {
        let mut o = BoxOwners::with_unowned(3);
        o.add_batch(Some(A), 1, &[n("x")]);
        assert_eq!(o.take(&n("x")), Some(A));
        assert_eq!(o.take(&n("r1")), None);
        assert_eq!(o.usual_count, 2);
    }
}
