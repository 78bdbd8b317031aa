//! `resp-service`: a Redis-protocol (RESP2) service for `fdbox serve`,
//! enough of it for `redis-cli` and `redis-benchmark`, that is upgraded and
//! restarted without dropping a connection, a request or a byte.
//!
//! The hand-over (the listener, every connection with the bytes it sent
//! that are not answered yet, the lifecycle) is `fdbox_guest::service`'s,
//! the one `kv-service` uses; this crate adds the protocol ([`Resp`]) and
//! uses the key space of `fdbox_guest::store` ([`store`]), which lives in a
//! memory file the next instance uses as it is: taking it over reads a 64-byte header, for 1 KiB of data as
//! for 1 GiB.
//!
//! The binaries are thin: `resp-v1` and `resp-v2` call [`main`] with their
//! [`Version`].
//!
//! # Configuration
//!
//! The box is named by the environment variable `RESP_BOX` (default
//! `resp`): grant it with `fdbox serve --box resp`; the listener is the
//! host's grant `main` (`fdbox serve --listen main=127.0.0.1:PORT`).
//!
//! # Protocol
//!
//! Requests are RESP arrays of bulk strings (what clients send) or inline
//! commands (a line of words separated by spaces, as typed into `telnet`);
//! any number may come in one read (pipelining) and one may be split across
//! reads, and across an upgrade. Command names are case-insensitive.
//!
//! | command                    | reply                                                      |
//! |----------------------------|------------------------------------------------------------|
//! | `PING [msg]`               | `+PONG`, or `msg` as a bulk string                         |
//! | `ECHO msg`                 | `msg`                                                      |
//! | `GET k`                    | the value, or nil                                          |
//! | `SET k v`                  | `+OK` (no options: any is a syntax error)                  |
//! | `DEL k...`, `EXISTS k...`  | how many of the keys were there                            |
//! | `INCR k`, `INCRBY k n`     | the new value (a missing key counts as 0)                  |
//! | `DBSIZE`                   | the number of keys                                         |
//! | `FLUSHDB`, `FLUSHALL`      | `+OK`, every key gone (`ASYNC`/`SYNC` accepted)            |
//! | `INFO [section]`           | `# Server` with `version:resp-v1` (or `resp-v2`), `# Keyspace` |
//! | `COMMAND ...`              | an empty array (no command table; clients go on without)   |
//! | `CONFIG GET p`             | `save` → `""`, `appendonly` → `no` (what `redis-benchmark` asks at start), else an empty array |
//! | `SELECT 0`                 | `+OK` (there is one database)                              |
//! | `QUIT`                     | `+OK`, then the connection is closed                       |
//! | `STRLEN k`                 | v2 only: the value's length (0 if missing)                 |
//!
//! Errors are Redis's: `-ERR unknown command ...`, `-ERR wrong number of
//! arguments for '...' command`, `-ERR value is not an integer or out of
//! range`, `-ERR increment or decrement would overflow`. A malformed request
//! gets `-ERR Protocol error: ...` and the connection is closed, as Redis
//! does; so does a request larger than [`MAX_REQUEST`] bytes.
//!
//! # What the box holds between two instances
//!
//! What `fdbox_guest::service` boxes (the listener, `conn-<id>` each, and
//! `connections`; a connection has no state of its own here, `-`), and
//! `store`, the memory file of [`store`].
//!
//! The memory file is written in place, not copied: the host's checkpoint
//! before an upgrade duplicates its fd, not its bytes, so a new version
//! that wrote to the store and then failed to start leaves its writes there
//! when the old version is rolled back (it serves them as they are: the
//! layout is the same in every version).

pub use fdbox_guest::store;

use std::process::ExitCode;

use fdbox_guest::fdbox::fdbox::boxes;
use fdbox_guest::service::{self, Answered, Failure, Protocol, Taken};
use store::{Store, StoreError};

/// The environment variable that names the box.
pub const BOX_ENV: &str = "RESP_BOX";
/// The box used when [`BOX_ENV`] is not set.
pub const DEFAULT_BOX: &str = "resp";
/// The largest request (one command with its arguments, or an inline line)
/// a connection may send, in bytes.
pub const MAX_REQUEST: usize = 8 << 20;
/// The most arguments one command may have.
const MAX_ARGS: usize = 1 << 20;

/// The protocol version a binary speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `version:resp-v1` in `INFO`.
    V1,
    /// `version:resp-v2` in `INFO`; adds `STRLEN`.
    V2,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::V1 => "resp-v1",
            Version::V2 => "resp-v2",
        }
    }
}

/// Runs the service: takes over from the box, serves until asked to hand
/// over, hands over. Exits 0 after a hand-over, 1 (with a message on
/// stderr) if taking over or handing over failed.
pub fn main(version: Version) -> ExitCode {
    service::main(|taken| Resp::take_over(version, taken))
}

/// The protocol and the key space, as `fdbox_guest::service` runs them.
pub struct Resp {
    version: Version,
    store: Store,
}

impl Resp {
    fn take_over(version: Version, taken: &mut Taken) -> Result<Self, Failure> {
        let store = Store::take_over(taken)?;
        Ok(Resp { version, store })
    }

    /// The reply to one command (`args` not empty), appended to `out`;
    /// whether the connection is to be closed after it.
    pub fn execute(&mut self, args: &[Vec<u8>], out: &mut Vec<u8>) -> bool {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        match self.command(&name, &args[1..], out) {
            Ok(close) => close,
            Err(Reply::Arity) => {
                error(
                    out,
                    &format!(
                        "wrong number of arguments for '{}' command",
                        name.to_ascii_lowercase()
                    ),
                );
                false
            }
            Err(Reply::Error(message)) => {
                error(out, &message);
                false
            }
        }
    }

    fn command(&mut self, name: &str, args: &[Vec<u8>], out: &mut Vec<u8>) -> Result<bool, Reply> {
        let store = &mut self.store;
        match (name, args) {
            ("PING", []) => simple(out, "PONG"),
            ("PING", [msg]) | ("ECHO", [msg]) => bulk(out, Some(msg)),
            ("GET", [key]) => bulk(out, store.get(key)?.as_deref()),
            ("SET", [key, value]) => {
                store.set(key, value)?;
                simple(out, "OK");
            }
            ("SET", [_, _, ..]) => return Err(Reply::Error("syntax error".into())),
            ("DEL", [_, ..]) => {
                let mut n = 0;
                for key in args {
                    n += i64::from(store.del(key)?);
                }
                integer(out, n);
            }
            ("EXISTS", [_, ..]) => {
                let mut n = 0;
                for key in args {
                    n += i64::from(store.get(key)?.is_some());
                }
                integer(out, n);
            }
            ("INCR", [key]) => integer(out, incr_by(store, key, 1)?),
            ("INCRBY", [key, by]) => {
                let by = parse_int(by).ok_or_else(not_an_integer)?;
                integer(out, incr_by(store, key, by)?);
            }
            ("DBSIZE", []) => integer(out, store.len() as i64),
            ("FLUSHDB" | "FLUSHALL", [] | [_]) => {
                if let [mode] = args
                    && !matches!(upper(mode).as_str(), "ASYNC" | "SYNC")
                {
                    return Err(Reply::Error("syntax error".into()));
                }
                store.flush()?;
                simple(out, "OK");
            }
            ("INFO", [] | [_]) => {
                let info = format!(
                    "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\n\
                     fdbox_service:resp-service\r\nversion:{}\r\n\r\n\
                     # Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\n",
                    self.version.name(),
                    store.len()
                );
                bulk(out, Some(info.as_bytes()));
            }
            ("COMMAND", _) => out.extend_from_slice(b"*0\r\n"),
            ("CONFIG", [sub, param]) if upper(sub) == "GET" => {
                let value = match String::from_utf8_lossy(param).to_ascii_lowercase().as_str() {
                    "save" => Some(""),
                    "appendonly" => Some("no"),
                    _ => None,
                };
                match value {
                    Some(value) => {
                        out.extend_from_slice(b"*2\r\n");
                        bulk(out, Some(param));
                        bulk(out, Some(value.as_bytes()));
                    }
                    None => out.extend_from_slice(b"*0\r\n"),
                }
            }
            ("CONFIG", [sub, ..]) => {
                return Err(Reply::Error(format!(
                    "unknown subcommand '{}'",
                    String::from_utf8_lossy(sub)
                )));
            }
            ("SELECT", [db]) => match parse_int(db) {
                Some(0) => simple(out, "OK"),
                Some(_) => return Err(Reply::Error("DB index is out of range".into())),
                None => return Err(not_an_integer()),
            },
            ("QUIT", _) => {
                simple(out, "OK");
                return Ok(true);
            }
            ("STRLEN", [key]) if self.version == Version::V2 => {
                integer(out, store.get(key)?.map_or(0, |v| v.len() as i64));
            }
            (
                "PING" | "ECHO" | "GET" | "SET" | "DEL" | "EXISTS" | "INCR" | "INCRBY" | "DBSIZE"
                | "FLUSHDB" | "FLUSHALL" | "INFO" | "CONFIG" | "SELECT",
                _,
            ) => return Err(Reply::Arity),
            ("STRLEN", _) if self.version == Version::V2 => return Err(Reply::Arity),
            _ => {
                let mut message = format!("unknown command '{name}', with args beginning with: ");
                for arg in args {
                    message += &format!("'{}' ", String::from_utf8_lossy(arg));
                }
                return Err(Reply::Error(message));
            }
        }
        Ok(false)
    }
}

impl Protocol for Resp {
    const NAME: &'static str = "resp-service";
    const ENV_PREFIX: &'static str = "RESP";
    const DEFAULT_BOX: &'static str = DEFAULT_BOX;
    type ConnState = ();

    fn answer(&mut self, _: &mut (), input: &[u8], out: &mut Vec<u8>) -> Answered {
        let mut consumed = 0;
        loop {
            match parse(&input[consumed..]) {
                Parsed::Request { args, len } => {
                    consumed += len;
                    if !args.is_empty() && self.execute(&args, out) {
                        return Answered {
                            consumed,
                            close: true,
                        };
                    }
                }
                Parsed::Incomplete => {
                    let close = input.len() - consumed > MAX_REQUEST;
                    if close {
                        error(out, "Protocol error: request too large");
                    }
                    return Answered { consumed, close };
                }
                Parsed::Malformed(why) => {
                    error(out, &format!("Protocol error: {why}"));
                    return Answered {
                        consumed: input.len(),
                        close: true,
                    };
                }
            }
        }
    }

    fn encode_conn(_: &()) -> String {
        "-".to_string()
    }

    fn decode_conn(token: &str) -> Option<()> {
        (token == "-").then_some(())
    }

    fn hand_over(self) -> Result<Vec<(String, boxes::Handle)>, Failure> {
        Ok(vec![self.store.hand_over()?])
    }
}

/// Why a command failed, before it is a reply.
enum Reply {
    /// The command exists but not with this many arguments.
    Arity,
    /// `-ERR <message>`.
    Error(String),
}

impl From<StoreError> for Reply {
    fn from(e: StoreError) -> Self {
        Reply::Error(format!("store: {}", e.0))
    }
}

fn not_an_integer() -> Reply {
    Reply::Error("value is not an integer or out of range".into())
}

fn incr_by(store: &mut Store, key: &[u8], by: i64) -> Result<i64, Reply> {
    let old = match store.get(key)? {
        Some(value) => parse_int(&value).ok_or_else(not_an_integer)?,
        None => 0,
    };
    let new = old
        .checked_add(by)
        .ok_or_else(|| Reply::Error("increment or decrement would overflow".into()))?;
    store.set(key, new.to_string().as_bytes())?;
    Ok(new)
}

/// A 64-bit integer in Redis's strict form (no `+`, spaces or leading
/// zeros).
fn parse_int(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

fn upper(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_uppercase()
}

fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn error(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(b"-ERR ");
    // A reply line may hold no newline.
    out.extend(
        message
            .bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

fn integer(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(format!(":{n}\r\n").as_bytes());
}

fn bulk(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(value) => {
            out.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"$-1\r\n"),
    }
}

/// What [`parse`] found at the start of a connection's input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request of `len` bytes (maybe no argument: an empty line).
    Request { args: Vec<Vec<u8>>, len: usize },
    /// The start of a request; more bytes are needed.
    Incomplete,
    /// Not RESP.
    Malformed(String),
}

/// The first request in `input`: a RESP array of bulk strings, or an inline
/// command.
pub fn parse(input: &[u8]) -> Parsed {
    if input.is_empty() {
        return Parsed::Incomplete;
    }
    if input[0] != b'*' {
        return parse_inline(input);
    }
    let Some((count, mut at)) = number_line(input, 1) else {
        return line_state(input, 1, "invalid multibulk length");
    };
    if count > MAX_ARGS as i64 {
        return Parsed::Malformed("invalid multibulk length".into());
    }
    let mut args = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count.max(0) {
        match input.get(at) {
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(&other) => {
                return Parsed::Malformed(format!("expected '$', got '{}'", other as char));
            }
        }
        let Some((len, start)) = number_line(input, at + 1) else {
            return line_state(input, at + 1, "invalid bulk length");
        };
        if len < 0 || len as usize > MAX_REQUEST {
            return Parsed::Malformed("invalid bulk length".into());
        }
        let end = start + len as usize;
        if input.len() < end + 2 {
            return Parsed::Incomplete;
        }
        if &input[end..end + 2] != b"\r\n" {
            return Parsed::Malformed("bulk string not followed by CRLF".into());
        }
        args.push(input[start..end].to_vec());
        at = end + 2;
    }
    Parsed::Request { args, len: at }
}

/// The integer on the line that starts at `from`, and where the next line
/// starts; `None` if the line is unfinished or not an integer.
fn number_line(input: &[u8], from: usize) -> Option<(i64, usize)> {
    let end = from + input.get(from..)?.windows(2).position(|w| w == b"\r\n")?;
    let n = std::str::from_utf8(&input[from..end]).ok()?.parse().ok()?;
    Some((n, end + 2))
}

/// Why [`number_line`] found no number at `from`: an unfinished line (more
/// to come, unless it is already too long) or a malformed one.
fn line_state(input: &[u8], from: usize, why: &str) -> Parsed {
    let rest = &input[from.min(input.len())..];
    if rest.windows(2).any(|w| w == b"\r\n") || rest.len() > 32 {
        Parsed::Malformed(why.into())
    } else {
        Parsed::Incomplete
    }
}

fn parse_inline(input: &[u8]) -> Parsed {
    let Some(end) = input.iter().position(|&b| b == b'\n') else {
        return Parsed::Incomplete;
    };
    let line = &input[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args = line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|word| !word.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Parsed::Request { args, len: end + 1 }
}

// The parser is plain Rust: these run natively with `cargo test -p
// resp-service --target x86_64-unknown-linux-gnu` (or the host's triple)
// from `guest-examples/rust`; the store needs a host (memory files), and the
// service is tested with redis-benchmark and redis-cli under `fdbox serve`
// by the root crate's `tests/resp.rs`.
#[cfg(test)]
mod tests {
    use super::*;

    fn request(args: &[&str], len: usize) -> Parsed {
        Parsed::Request {
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            len,
        }
    }

    #[test]
    fn arrays_of_bulk_strings() {
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv\n\r\n";
        assert_eq!(parse(set), request(&["SET", "k", "v\n"], set.len()));
        // Every prefix is incomplete: a request split anywhere waits.
        for cut in 0..set.len() {
            assert_eq!(parse(&set[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        // Pipelined: the first only.
        let two = [&set[..], b"*1\r\n$4\r\nPING\r\n"].concat();
        assert_eq!(parse(&two), request(&["SET", "k", "v\n"], set.len()));
        assert_eq!(parse(b"*0\r\n"), request(&[], 4));
        assert!(matches!(parse(b"*1\r\n+PING\r\n"), Parsed::Malformed(_)));
        assert!(matches!(parse(b"*x\r\n"), Parsed::Malformed(_)));
        assert!(matches!(
            parse(b"*1\r\n$2\r\nabc\r\n"),
            Parsed::Malformed(_)
        ));
        assert!(matches!(parse(b"*1\r\n$-3\r\n"), Parsed::Malformed(_)));
        assert!(matches!(parse(&[b'*'; 40]), Parsed::Malformed(_)));
    }

    #[test]
    fn inline_commands() {
        assert_eq!(parse(b"PING\r\n"), request(&["PING"], 6));
        assert_eq!(parse(b"set  a\t1\nGET a\n"), request(&["set", "a", "1"], 9));
        assert_eq!(parse(b"\r\n"), request(&[], 2));
        assert_eq!(parse(b"GET a"), Parsed::Incomplete);
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_int(b"-12"), Some(-12));
        assert_eq!(parse_int(b"+1"), None);
        assert_eq!(parse_int(b"01"), None);
        assert_eq!(parse_int(b"9223372036854775808"), None);
    }
}
