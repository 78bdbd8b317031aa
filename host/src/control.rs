//! The control protocol of `fdbox serve`: the bytes `fdbox upgrade` and
//! `fdbox stop` send over the service's control socket, and the reply.
//!
//! One request line, one reply line, each ending in `\n`:
//!
//! | request             | meaning                                        |
//! |---------------------|------------------------------------------------|
//! | `upgrade PATH\n`    | upgrade to the component at PATH (absolute; any bytes but NUL and newline) |
//! | `stop\n`            | hand over and exit                             |
//!
//! | reply               |                                                |
//! |---------------------|------------------------------------------------|
//! | `ok MESSAGE\n`      | done; MESSAGE says how                         |
//! | `error MESSAGE\n`   | refused or failed; MESSAGE says why            |
//!
//! A line is at most [`MAX_LINE`] bytes, newline included. Parsing is exact:
//! whatever [`Request::parse`] or [`Reply::parse`] accepts encodes back to
//! the very same bytes (`host/fuzz/fuzz_targets/control_parse.rs`).
//!
//! Nothing here knows about Wasmtime, sockets or the service: the byte
//! format only, one copy for the server (`src/serve.rs`) and the clients
//! (`src/control.rs`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// The longest line, newline included: `upgrade `, a path of PATH_MAX
/// (4096) bytes, and the newline; a reply of that size too.
pub const MAX_LINE: usize = 8 + 4096 + 1;

/// A line that is no request or reply.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing came before the connection closed.
    #[error("no request line (the client sent nothing)")]
    Empty,
    /// The line does not end in a newline: cut short, or longer than
    /// [`MAX_LINE`].
    #[error("the line was cut short ({0} bytes without a newline)")]
    Unterminated(usize),
    /// Longer than [`MAX_LINE`] (or [`MAX_LINE`] bytes without a newline).
    #[error("the line is {0} bytes or more, more than the {MAX_LINE} allowed")]
    TooLong(usize),
    /// A newline before the end.
    #[error("more than one line")]
    ManyLines,
    /// No verb this protocol knows.
    #[error("unknown request {0:?}; expected `upgrade PATH` or `stop`")]
    Unknown(String),
    /// `upgrade` with a path that is empty, relative, or holds a NUL byte.
    #[error("`upgrade` needs an absolute path without NUL bytes, got {0:?}")]
    BadPath(String),
    /// A reply that is neither `ok` nor `error`.
    #[error("unexpected reply {0:?}")]
    UnknownReply(String),
}

/// The line without its newline, checked for length and a single newline.
fn line(bytes: &[u8]) -> Result<&[u8], ParseError> {
    if bytes.is_empty() {
        return Err(ParseError::Empty);
    }
    if bytes.len() > MAX_LINE {
        return Err(ParseError::TooLong(bytes.len()));
    }
    let Some(line) = bytes.strip_suffix(b"\n") else {
        // A reader stops at MAX_LINE bytes: a full one without a newline
        // was longer.
        return Err(if bytes.len() == MAX_LINE {
            ParseError::TooLong(bytes.len())
        } else {
            ParseError::Unterminated(bytes.len())
        });
    };
    if line.contains(&b'\n') {
        return Err(ParseError::ManyLines);
    }
    Ok(line)
}

/// Some of `bytes`, printable, for an error message.
fn shown(bytes: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned();
    if bytes.len() > 64 {
        text.push_str("...");
    }
    text
}

/// A request to a running service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Upgrade to the component at this absolute path.
    Upgrade(PathBuf),
    /// Hand over and exit.
    Stop,
}

impl Request {
    /// The request in `bytes`, one line with its newline.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let line = line(bytes)?;
        if line == b"stop" {
            return Ok(Request::Stop);
        }
        match line.strip_prefix(b"upgrade ") {
            Some(path) if path.starts_with(b"/") && !path.contains(&0) => {
                Ok(Request::Upgrade(PathBuf::from(OsStr::from_bytes(path))))
            }
            Some(path) => Err(ParseError::BadPath(shown(path))),
            None => Err(ParseError::Unknown(shown(line))),
        }
    }

    /// The request's line, or why it cannot be sent (a path that is not
    /// absolute, has a NUL or a newline, or is too long).
    pub fn encode(&self) -> Result<Vec<u8>, ParseError> {
        let bytes = match self {
            Request::Stop => b"stop\n".to_vec(),
            Request::Upgrade(path) => {
                let mut bytes = b"upgrade ".to_vec();
                bytes.extend_from_slice(path.as_os_str().as_bytes());
                bytes.push(b'\n');
                bytes
            }
        };
        // One rule: what cannot be parsed is not sent.
        Self::parse(&bytes).map(|_| bytes)
    }

    /// The path of an upgrade.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Request::Upgrade(path) => Some(path),
            Request::Stop => None,
        }
    }
}

/// A service's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done; how.
    Ok(String),
    /// Refused or failed; why.
    Error(String),
}

impl Reply {
    /// The reply in `bytes`, one line with its newline.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let line = line(bytes)?;
        let text = std::str::from_utf8(line).map_err(|_| ParseError::UnknownReply(shown(line)))?;
        match text.split_once(' ') {
            Some(("ok", message)) => Ok(Reply::Ok(message.to_owned())),
            Some(("error", message)) => Ok(Reply::Error(message.to_owned())),
            _ => Err(ParseError::UnknownReply(shown(line))),
        }
    }

    /// The reply's line: the message on one line (newlines become spaces),
    /// cut to fit [`MAX_LINE`] at a character boundary.
    pub fn encode(&self) -> Vec<u8> {
        let (word, message) = match self {
            Reply::Ok(m) => ("ok", m),
            Reply::Error(m) => ("error", m),
        };
        let mut line = format!("{word} {}", message.replace('\n', " "));
        if line.len() >= MAX_LINE {
            let mut end = MAX_LINE - 1;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        line.push('\n');
        line.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        let odd = PathBuf::from(OsStr::from_bytes(b"/a b/\xff\xfe c.wasm"));
        for request in [
            Request::Upgrade("/a b/c.wasm".into()),
            Request::Upgrade(odd),
            Request::Stop,
        ] {
            let bytes = request.encode().unwrap();
            assert_eq!(Request::parse(&bytes).unwrap(), request);
        }
        for reply in [
            Reply::Ok("upgraded".into()),
            Reply::Error("".into()),
            Reply::Error("a\nb".into()),
        ] {
            let back = Reply::parse(&reply.encode()).unwrap();
            assert_eq!(back.encode(), reply.encode());
        }
        let long = Reply::Ok("é".repeat(MAX_LINE)).encode();
        assert!(long.len() <= MAX_LINE);
        assert!(Reply::parse(&long).is_ok());
    }

    /// Malformed lines: a clear error each, never a panic.
    #[test]
    fn malformed_lines_are_refused_clearly() {
        let huge = [b"upgrade /".as_slice(), &vec![b'a'; 1 << 20], b"\n"].concat();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "no request line"),
            (b"stop", "cut short (4 bytes"),
            (b"upgrade /x", "cut short"),
            (&huge, "more than the 4105 allowed"),
            (&huge[..MAX_LINE], "more than the 4105 allowed"),
            (b"stop\nstop\n", "more than one line"),
            (b"\n", "unknown request \"\""),
            (b"reboot\n", "unknown request \"reboot\""),
            (b"STOP\n", "unknown request"),
            (b"stop \n", "unknown request"),
            (b"upgrade\n", "unknown request"),
            (b"upgrade \n", "absolute path"),
            (b"upgrade rel.wasm\n", "absolute path"),
            (b"upgrade /a\0b\n", "without NUL"),
            (b"\xff\xfe\n", "unknown request \"\u{fffd}\u{fffd}\""),
        ];
        for (bytes, expected) in cases {
            let error = Request::parse(bytes).unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "{:?}: {error:?} should say {expected:?}",
                shown(bytes)
            );
            assert_eq!(error.lines().count(), 1, "{error}");
        }
        assert!(Request::Upgrade("/a\nb".into()).encode().is_err());
        assert!(Request::Upgrade("rel".into()).encode().is_err());
        for bad in [
            b"".as_slice(),
            b"ok",
            b"okay\n",
            b"\xff \n",
            b"fine thanks\n",
        ] {
            assert!(Reply::parse(bad).is_err(), "{bad:?}");
        }
        // Every prefix of valid lines, and every single-byte change of
        // them: refused or round-tripped, never a panic.
        for valid in [b"stop\n".as_slice(), b"upgrade /a/b.wasm\n", b"ok done\n"] {
            for end in 0..=valid.len() {
                check_exact(&valid[..end]);
            }
            for i in 0..valid.len() {
                for byte in [0u8, b'\n', b' ', b'/', 0xff] {
                    let mut changed = valid.to_vec();
                    changed[i] = byte;
                    check_exact(&changed);
                }
            }
        }
    }

    /// The fuzz target's check on a few hundred thousand lines made of the
    /// protocol's own pieces, for a run without cargo-fuzz.
    #[test]
    fn random_lines_are_refused_or_exact() {
        let pieces: [&[u8]; 12] = [
            b"stop",
            b"upgrade",
            b"ok",
            b"error",
            b" ",
            b"/",
            b"\n",
            b"\0",
            b"\xff",
            b"a",
            b"\xc3\xa9",
            b"\r",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..200_000 {
            let mut line = Vec::new();
            for _ in 0..next() % 6 {
                line.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            if next() % 2 == 0 {
                line.push(b'\n');
            }
            check_exact(&line);
            accepted += usize::from(Request::parse(&line).is_ok() || Reply::parse(&line).is_ok());
        }
        assert!(
            accepted > 100,
            "only {accepted} lines parsed: the pieces miss the grammar"
        );
    }

    /// What the fuzz target asserts: accepted lines encode back exactly.
    fn check_exact(bytes: &[u8]) {
        if let Ok(request) = Request::parse(bytes) {
            assert_eq!(request.encode().unwrap(), bytes);
        }
        if let Ok(reply) = Reply::parse(bytes) {
            assert_eq!(reply.encode(), bytes);
        }
    }
}
