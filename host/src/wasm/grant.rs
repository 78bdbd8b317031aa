//! Capability scoping: which boxes a guest may touch, and how.
//!
//! Deny by default: a guest with no grants sees no box at all. A grant names
//! one box or a prefix of box names, and the operations allowed on them.

use crate::{Error, Name};
use std::fmt;
use std::str::FromStr;

/// An operation a grant can allow.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Create a box.
    Create,
    /// Delete a box.
    Delete,
    /// Put a handle into a box.
    Put,
    /// Get a handle out of a box.
    Get,
    /// Seal a box.
    Seal,
    /// Unseal a box.
    Unseal,
}

impl Operation {
    const ALL: [Operation; 6] = [
        Self::Create,
        Self::Delete,
        Self::Put,
        Self::Get,
        Self::Seal,
        Self::Unseal,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The operation's name as `--box` permissions spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Delete => "delete",
            Self::Put => "put",
            Self::Get => "get",
            Self::Seal => "seal",
            Self::Unseal => "unseal",
        }
    }
}

/// A set of allowed operations.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// Every operation.
    pub const ALL: Permissions = Permissions(0b11_1111);
    /// No operation: the box is visible (open, list, is-sealed) but nothing
    /// can be changed.
    pub const NONE: Permissions = Permissions(0);

    /// Whether `op` is allowed.
    pub fn allows(self, op: Operation) -> bool {
        self.0 & op.bit() != 0
    }

    /// These permissions plus `op`.
    pub fn with(self, op: Operation) -> Self {
        Self(self.0 | op.bit())
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("all");
        }
        let names: Vec<_> = Operation::ALL
            .into_iter()
            .filter(|op| self.allows(*op))
            .map(Operation::as_str)
            .collect();
        f.write_str(&if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        })
    }
}

/// A permission list that did not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown permission {0:?}; use a comma-separated list of create, delete, put, get, seal, unseal, or all, or none"
)]
pub struct BadPermission(String);

impl FromStr for Permissions {
    type Err = BadPermission;
    fn from_str(list: &str) -> Result<Self, BadPermission> {
        list.split(',').try_fold(Self::NONE, |perms, word| {
            let word = word.trim();
            match word {
                "all" => Ok(Self::ALL),
                "none" => Ok(perms),
                _ => Operation::ALL
                    .into_iter()
                    .find(|op| op.as_str() == word)
                    .map(|op| perms.with(op))
                    .ok_or_else(|| BadPermission(word.to_string())),
            }
        })
    }
}

/// Which box names a grant covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Exactly one box.
    Box(Name),
    /// Every box whose name starts with this (non-empty) prefix.
    Prefix(String),
}

impl Scope {
    fn covers(&self, name: &Name) -> bool {
        match self {
            Scope::Box(b) => b == name,
            Scope::Prefix(p) => name.as_str().starts_with(p.as_str()),
        }
    }
}

/// One grant: a scope and what may be done in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The boxes it covers.
    pub scope: Scope,
    /// The operations it allows on them.
    pub permissions: Permissions,
}

impl Grant {
    /// Every operation on the one box `name`.
    pub fn one_box(name: Name) -> Self {
        Self {
            scope: Scope::Box(name),
            permissions: Permissions::ALL,
        }
    }

    /// Every operation on boxes whose names start with `prefix`; the prefix
    /// must be a valid name itself, so an empty prefix (every box) cannot be
    /// granted by accident.
    pub fn prefix(prefix: &str) -> Result<Self, Error> {
        Name::new(prefix)?;
        Ok(Self {
            scope: Scope::Prefix(prefix.to_string()),
            permissions: Permissions::ALL,
        })
    }

    /// The same grant with other permissions.
    pub fn with_permissions(self, permissions: Permissions) -> Self {
        Self {
            permissions,
            ..self
        }
    }
}

/// Limits on one guest, so it cannot exhaust the host's fds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// How many boxes the guest may see at once (boxes within its grants).
    pub max_boxes: usize,
    /// How many entries one of its boxes may hold.
    pub max_entries_per_box: usize,
    /// How many bytes its memory files may hold together: checked when it
    /// puts a memory file (the bytes in its boxes, which a box pins after
    /// the guest is gone) and when it creates one (the bytes in its boxes
    /// and in the memory files it holds must leave room).
    pub max_memory_file_bytes: u64,
    /// How many descriptors and sockets fdbox gave it (memory files, gets
    /// from boxes, accepted connections) it may hold at once.
    pub max_descriptors: usize,
}

impl Quotas {
    /// Default boxes per guest.
    pub const DEFAULT_MAX_BOXES: usize = 64;
    /// Default entries per box.
    pub const DEFAULT_MAX_ENTRIES_PER_BOX: usize = 1024;
    /// Default bytes of memory files: 256 MiB.
    pub const DEFAULT_MAX_MEMORY_FILE_BYTES: u64 = 256 << 20;
    /// Default descriptors held at once.
    pub const DEFAULT_MAX_DESCRIPTORS: usize = 4096;
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_boxes: Self::DEFAULT_MAX_BOXES,
            max_entries_per_box: Self::DEFAULT_MAX_ENTRIES_PER_BOX,
            max_memory_file_bytes: Self::DEFAULT_MAX_MEMORY_FILE_BYTES,
            max_descriptors: Self::DEFAULT_MAX_DESCRIPTORS,
        }
    }
}

/// Everything one guest was granted.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    grants: Vec<Grant>,
}

impl Grants {
    /// No grants: the guest sees no box.
    pub fn none() -> Self {
        Self::default()
    }

    /// Add a grant.
    pub fn add(&mut self, grant: Grant) -> &mut Self {
        self.grants.push(grant);
        self
    }

    /// Whether the box is visible to the guest at all.
    pub fn covers(&self, name: &Name) -> bool {
        self.grants.iter().any(|g| g.scope.covers(name))
    }

    /// The union of the permissions of every grant covering `name`.
    pub fn permissions(&self, name: &Name) -> Permissions {
        self.grants
            .iter()
            .filter(|g| g.scope.covers(name))
            .fold(Permissions::NONE, |p, g| Permissions(p.0 | g.permissions.0))
    }

    /// Refuse unless `op` on `name` was granted.
    pub fn check(&self, name: &Name, op: Operation) -> Result<(), Error> {
        if self.permissions(name).allows(op) {
            Ok(())
        } else {
            Err(Error::AccessDenied {
                operation: op.as_str(),
                box_name: name.clone(),
            })
        }
    }

    /// Refuse unless the box is covered by some grant.
    pub fn check_visible(&self, name: &Name) -> Result<(), Error> {
        if self.covers(name) {
            Ok(())
        } else {
            Err(Error::AccessDenied {
                operation: "open",
                box_name: name.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn deny_by_default() {
        let g = Grants::none();
        assert!(!g.covers(&name("anything")));
        assert!(g.check(&name("anything"), Operation::Get).is_err());
    }

    #[test]
    fn prefix_and_box_grants_union() {
        let mut g = Grants::none();
        g.add(
            Grant::prefix("app.")
                .unwrap()
                .with_permissions("put,get".parse().unwrap()),
        );
        g.add(Grant::one_box(name("app.state")).with_permissions("seal".parse().unwrap()));
        assert!(g.check(&name("app.x"), Operation::Put).is_ok());
        assert!(g.check(&name("app.x"), Operation::Seal).is_err());
        assert!(g.check(&name("app.state"), Operation::Seal).is_ok());
        assert!(!g.covers(&name("app")));
        assert!(!g.covers(&name("other")));
    }

    #[test]
    fn permissions_parse_and_print() {
        assert_eq!("all".parse::<Permissions>().unwrap(), Permissions::ALL);
        assert_eq!("none".parse::<Permissions>().unwrap(), Permissions::NONE);
        assert_eq!(
            "get,put".parse::<Permissions>().unwrap().to_string(),
            "put,get"
        );
        assert!(
            "get,steal"
                .parse::<Permissions>()
                .unwrap_err()
                .to_string()
                .contains("\"steal\"")
        );
        assert!(Grant::prefix("").is_err());
    }
}
