//! Names of boxes and entries.

use crate::Error;
use std::fmt;

/// The longest name, in bytes. The kernel's `FDBOX_NAME_LEN` is 256 including
/// the terminating NUL.
pub const MAX_NAME_LEN: usize = 255;

/// A validated box or entry name: 1 to [`MAX_NAME_LEN`] bytes of UTF-8, no NUL
/// and no `/`, and not `.` or `..` (a box becomes a device node
/// `/dev/fdbox/<name>`, and those two name directories). The one rule every
/// device follows.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Check `name` against the fdbox name rules.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let problem = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_NAME_LEN {
            return Err(Error::NameTooLong {
                len: name.len(),
                limit: MAX_NAME_LEN,
                context: "",
            });
        } else if name.contains('\0') {
            Some("it contains a NUL byte")
        } else if name.contains('/') {
            Some("it contains '/'")
        } else if name == "." || name == ".." {
            Some("'.' and '..' name directories, not boxes or entries")
        } else {
            None
        };
        match problem {
            Some(reason) => Err(Error::InvalidName { name, reason }),
            None => Ok(Self(name)),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for Name {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn accepts_the_extremes() {
        assert!(Name::new("a").is_ok());
        assert!(Name::new("x".repeat(255)).is_ok());
        assert!(Name::new("ünïcode:名前 with spaces").is_ok());
    }

    #[test]
    fn rejects_what_the_kernel_cannot_name() {
        for (bad, code) in [
            (String::new(), ErrorCode::InvalidName),
            ("x".repeat(256), ErrorCode::NameTooLong),
            ("a\0b".to_string(), ErrorCode::InvalidName),
            ("a/b".to_string(), ErrorCode::InvalidName),
            ("/".to_string(), ErrorCode::InvalidName),
            (".".to_string(), ErrorCode::InvalidName),
            ("..".to_string(), ErrorCode::InvalidName),
        ] {
            assert_eq!(Name::new(bad.clone()).unwrap_err().code(), code, "{bad:?}");
        }
    }
}
