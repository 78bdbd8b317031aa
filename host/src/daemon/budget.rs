//! The daemon's fd budget and how its clients share it.
//!
//! Every fd the daemon holds for its peers counts against the budget
//! ([`super::Limits::max_held_fds`]): fds held in boxes (lent ones
//! included, until the peer acknowledges them) and fds of batches whose
//! last frame has not come yet. With one fd per connection served, they
//! must also fit in the fds the daemon may open
//! ([`super::Limits::max_open_fds`]; connections are capped at three
//! quarters of those by default, so a flood of them leaves a quarter for
//! boxes). Each held or staged fd also counts against the client that
//! sent it, identified by SO_PEERCRED when it connected:
//!
//! - its uid may have at most [`super::Limits::uid_share_percent`] of the
//!   budget (75 % by default, so the daemon's own user and root each always
//!   find a quarter free of the other's);
//! - its process (the peer's pid: one `fdbox run` or `fdbox serve`) may have
//!   at most [`super::Limits::process_share_percent`] (25 % by default, so
//!   one host that fills its share leaves three quarters to the others).
//!
//! An fd counts against the client that put it until it leaves the daemon
//! (taken out and acknowledged, or its box deleted), even after that client
//! exited: what a host boxed before a restart is still its own share until
//! the next one takes it out. Fds recovered from a hand-over count against
//! the budget only (nobody's share: who put them was not handed over).
//!
//! A refusal is `quota-exceeded` naming the budget that is full.

use crate::Error;
use std::collections::HashMap;

/// The peer of a connection, as SO_PEERCRED saw it when it connected.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client {
    /// Its effective uid.
    pub uid: u32,
    /// Its pid (in the daemon's pid namespace).
    pub pid: i32,
}

/// The budget and its shares, in fds.
#[derive(Copy, Clone, Debug)]
pub(super) struct Shares {
    /// The whole budget.
    pub max: usize,
    /// The fds the daemon may open for its peers, connections included.
    pub open: usize,
    /// Percent of it one uid may have.
    pub uid_percent: usize,
    /// Percent of it one process may have.
    pub process_percent: usize,
}

impl Shares {
    fn of(&self, percent: usize) -> usize {
        self.max.saturating_mul(percent.min(100)) / 100
    }
}

/// The fds counted against the budget, in all and per client.
pub(super) struct Budget {
    shares: Shares,
    held: usize,
    staged: usize,
    uids: HashMap<u32, usize>,
    processes: HashMap<i32, usize>,
}

impl Budget {
    pub fn new(shares: Shares) -> Self {
        Self {
            shares,
            held: 0,
            staged: 0,
            uids: HashMap::new(),
            processes: HashMap::new(),
        }
    }

    /// Whether `count` more fds of `client` fit: in its process's share, its
    /// uid's, the daemon's budget, and the fds it may open beside those of
    /// its `connections` (the first one full is named).
    pub fn check(
        &self,
        client: Option<Client>,
        count: usize,
        connections: usize,
    ) -> Result<(), Error> {
        let Shares { max, .. } = self.shares;
        if let Some(Client { uid, pid }) = client {
            self.check_share(
                || format!("process {pid} (uid {uid})"),
                self.processes.get(&pid).copied().unwrap_or(0),
                count,
                self.shares.process_percent,
                "--process-share",
            )?;
            self.check_share(
                || format!("uid {uid}"),
                self.uids.get(&uid).copied().unwrap_or(0),
                count,
                self.shares.uid_percent,
                "--uid-share",
            )?;
        }
        if self.held + self.staged + count > max {
            return Err(Error::QuotaExceeded(format!(
                "the daemon holds {} fds and {} more in unfinished batches, and {count} more would pass its fd budget, {max} (its RLIMIT_NOFILE less headroom, or systemd's FileDescriptorStoreMax); delete boxes, or raise the daemon's LimitNOFILE",
                self.held, self.staged
            )));
        }
        let open = self.shares.open;
        if self.held + self.staged + connections + count > open {
            return Err(Error::QuotaExceeded(format!(
                "the daemon holds {} fds, {} more in unfinished batches and {connections} connections, and {count} more would pass the fds it may open, {open} (its RLIMIT_NOFILE less headroom); close idle connections or delete boxes, or raise the daemon's LimitNOFILE",
                self.held, self.staged
            )));
        }
        Ok(())
    }

    /// Refuse if `who()` (named only in a refusal), with `has` fds in the
    /// daemon, would pass its share (`percent` of the budget, set by `fdbox
    /// daemon FLAG`) with `count` more.
    fn check_share(
        &self,
        who: impl FnOnce() -> String,
        has: usize,
        count: usize,
        percent: usize,
        flag: &str,
    ) -> Result<(), Error> {
        let (share, max) = (self.shares.of(percent), self.shares.max);
        if has + count > share {
            return Err(Error::QuotaExceeded(format!(
                "{} has {has} fds in the daemon and {count} more would pass its share, {share} ({percent}% of the daemon's {max}, fdbox daemon {flag}); take entries out or delete boxes first",
                who()
            )));
        }
        Ok(())
    }

    /// Count `count` fds of an unfinished batch of `client`'s in, if they
    /// fit ([`Budget::check`]).
    pub fn stage(
        &mut self,
        client: Option<Client>,
        count: usize,
        connections: usize,
    ) -> Result<(), Error> {
        self.check(client, count, connections)?;
        self.staged += count;
        self.add(client, count);
        Ok(())
    }

    /// Count staged fds out again (their batch ended).
    pub fn unstage(&mut self, client: Option<Client>, count: usize) {
        self.staged -= count;
        self.sub(client, count);
    }

    /// Count `count` fds held for `owner` in (checked before, with
    /// [`Budget::check`]; recovered fds have no owner).
    pub fn hold(&mut self, owner: Option<Client>, count: usize) {
        self.held += count;
        self.add(owner, count);
    }

    /// Count `count` fds held for `owner` out (they left the daemon).
    pub fn release(&mut self, owner: Option<Client>, count: usize) {
        self.held -= count;
        self.sub(owner, count);
    }

    /// The fds counted against process `pid`, and held in all.
    #[cfg(test)]
    pub fn of_process(&self, pid: i32) -> (usize, usize) {
        (self.processes.get(&pid).copied().unwrap_or(0), self.held)
    }

    fn add(&mut self, client: Option<Client>, count: usize) {
        if let Some(Client { uid, pid }) = client
            && count > 0
        {
            *self.uids.entry(uid).or_default() += count;
            *self.processes.entry(pid).or_default() += count;
        }
    }

    fn sub(&mut self, client: Option<Client>, count: usize) {
        fn less<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K, count: usize) {
            if let Some(n) = map.get_mut(&key) {
                *n -= count;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
        if let Some(Client { uid, pid }) = client
            && count > 0
        {
            less(&mut self.uids, uid, count);
            less(&mut self.processes, pid, count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    const A: Client = Client { uid: 1000, pid: 10 };
    const B: Client = Client { uid: 1000, pid: 11 };
    const ROOT: Client = Client { uid: 0, pid: 12 };

    fn budget() -> Budget {
        Budget::new(Shares {
            max: 100,
            open: 100,
            uid_percent: 75,
            process_percent: 25,
        })
    }

    fn refusal(result: Result<(), Error>) -> String {
        let error = result.unwrap_err();
        assert_eq!(error.code(), ErrorCode::QuotaExceeded);
        error.to_string()
    }

    #[test]
    fn one_process_filling_its_share_leaves_the_others_theirs() {
        let mut b = budget();
        b.stage(Some(A), 20, 0).unwrap();
        b.unstage(Some(A), 20);
        b.hold(Some(A), 25);
        let refused = refusal(b.check(Some(A), 1, 0));
        assert!(
            refused.contains("process 10 (uid 1000) has 25 fds"),
            "{refused}"
        );
        assert!(refused.contains("--process-share"), "{refused}");
        b.check(Some(B), 25, 0).unwrap();
        b.hold(Some(B), 25);
        b.hold(Some(Client { pid: 13, ..A }), 25);
        // Three processes of uid 1000 have 75: its share is full, root's
        // is not.
        let refused = refusal(b.check(Some(Client { pid: 14, ..A }), 1, 0));
        assert!(refused.contains("uid 1000 has 75 fds"), "{refused}");
        b.check(Some(ROOT), 25, 0).unwrap();
        // Staged fds count like held ones; the whole budget is named last.
        b.stage(Some(ROOT), 15, 0).unwrap();
        b.hold(None, 5);
        let refused = refusal(b.check(Some(Client { pid: 15, ..ROOT }), 1, 5));
        assert!(
            refused.contains("holds 80 fds, 15 more in unfinished batches and 5 connections"),
            "{refused}"
        );
        b.check(Some(Client { pid: 15, ..ROOT }), 1, 4).unwrap();
        // What leaves the daemon frees the share it counted against.
        b.release(Some(A), 25);
        b.unstage(Some(ROOT), 15);
        b.check(Some(A), 25, 0).unwrap();
        assert!(!b.processes.contains_key(&A.pid));
    }
}
