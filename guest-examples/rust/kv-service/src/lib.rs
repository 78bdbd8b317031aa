//! `kv-service`: a key/value service over TCP that `fdbox serve` can upgrade
//! and restart without dropping a connection, a request or a byte.
//!
//! It is a `wasi:cli` command whose `main` serves until the host asks it to
//! hand over (`fdbox:fdbox/lifecycle`). Everything the next instance needs is
//! then in one fdbox box: the listening socket, every open connection (with
//! the input the service has not read still in the kernel's socket buffer),
//! the key/value map, and for each connection what the socket cannot carry
//! (its request count and the start of a line it has not finished). The
//! hand-over is `fdbox_guest::service`'s, which `resp-service` and
//! `http-service` share; this crate adds the protocol and the map.
//!
//! The binaries are thin: `kv-v1` and `kv-v2` call [`main`] with their
//! [`Version`], `kv-broken` traps before it starts. The protocol itself is
//! [`respond`].
//!
//! # Configuration
//!
//! The box is named by the environment variable `KV_BOX` (default `kv`):
//! grant it with `fdbox serve --box kv`; the listener is the host's grant
//! `main` (`fdbox serve --listen main=127.0.0.1:PORT`). `KV_STUBBORN` and
//! `KV_HOARD` make it misbehave for the host's tests (see
//! `fdbox_guest::service`).
//!
//! # Protocol
//!
//! One request per line, one response line per request, both ending in
//! `\n` (a `\r` before it is ignored); tokens are separated by one space.
//!
//! | request    | response                                                     |
//! |------------|--------------------------------------------------------------|
//! | `PING`     | `PONG`                                                       |
//! | `SET k v`  | `OK`                                                         |
//! | `GET k`    | `VALUE v`, or `NONE` if `k` is not set                       |
//! | `INCR k`   | `VALUE n`: the integer in `k` plus one (a missing key is 0)  |
//! | `COUNT`    | `VALUE n`: the requests this connection sent, this one included, across every hand-over |
//! | `VERSION`  | `VERSION 1` or `VERSION 2`                                   |
//! | `DEL k`    | v2: `OK`, or `NONE` if `k` was not set; v1: `ERR unknown command DEL` |
//! | other      | `ERR unknown command <word>`                                 |
//!
//! A known command with the wrong number of arguments gets
//! `ERR wrong number of arguments for <word>`; `INCR` of a value that is not
//! a 64-bit integer (or would overflow) gets `ERR not an integer`. A line
//! longer than [`MAX_LINE`] bytes gets `ERR line too long` and the
//! connection is closed.
//!
//! # What the box holds between two instances
//!
//! What `fdbox_guest::service` boxes (the listener, `conn-<id>` each, and
//! `connections`, in which a connection's state is its request count), and:
//!
//! | entry         | kind           | content                                              |
//! |---------------|----------------|------------------------------------------------------|
//! | `state`       | memory file    | one line per key: `<hex key> <hex value>`            |
//!
//! Hex keeps every byte of a key or value safe in a line-and-space format.

use std::collections::BTreeMap;
use std::process::ExitCode;

use fdbox_guest::fdbox::fdbox::boxes;
use fdbox_guest::service::{
    self, Answered, Failure, Protocol, Taken, hex, memory_file, read_memory_file, unhex,
};

/// The environment variable that names the box.
pub const BOX_ENV: &str = "KV_BOX";
/// The box used when [`BOX_ENV`] is not set.
pub const DEFAULT_BOX: &str = "kv";

/// Box entry of the memory file with the key/value map.
const STATE: &str = "state";

/// The longest unfinished line a connection may hold, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// The protocol version a binary speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `VERSION 1`; no `DEL`.
    V1,
    /// `VERSION 2`; adds `DEL`.
    V2,
}

/// Runs the service: takes over from the box, serves until asked to hand
/// over, hands over. Exits 0 after a hand-over, 1 (with a message on
/// stderr) if taking over or handing over failed.
pub fn main(version: Version) -> ExitCode {
    service::main(|taken| Kv::take_over(version, taken))
}

/// The key/value map.
pub type Store = BTreeMap<String, String>;

/// The response line (with its `\n`) to the request `line` (without its
/// `\n`), `count` being this connection's request count, this request
/// included.
pub fn respond(version: Version, store: &mut Store, count: u64, line: &[u8]) -> String {
    let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
    let words: Vec<&str> = line.split(' ').collect();
    let mut response = match (words[0], &words[1..], version) {
        ("PING", [], _) => "PONG".to_string(),
        ("SET", [key, value], _) => {
            store.insert(key.to_string(), value.to_string());
            "OK".to_string()
        }
        ("GET", [key], _) => match store.get(*key) {
            Some(value) => format!("VALUE {value}"),
            None => "NONE".to_string(),
        },
        ("INCR", [key], _) => {
            let old = store.get(*key).map_or(Some(0), |v| v.parse::<i64>().ok());
            match old.and_then(|n| n.checked_add(1)) {
                Some(n) => {
                    store.insert(key.to_string(), n.to_string());
                    format!("VALUE {n}")
                }
                None => "ERR not an integer".to_string(),
            }
        }
        ("COUNT", [], _) => format!("VALUE {count}"),
        ("VERSION", [], Version::V1) => "VERSION 1".to_string(),
        ("VERSION", [], Version::V2) => "VERSION 2".to_string(),
        ("DEL", [key], Version::V2) => match store.remove(*key) {
            Some(_) => "OK".to_string(),
            None => "NONE".to_string(),
        },
        ("PING" | "SET" | "GET" | "INCR" | "COUNT" | "VERSION", _, _) | ("DEL", _, Version::V2) => {
            format!("ERR wrong number of arguments for {}", words[0])
        }
        (word, _, _) => format!("ERR unknown command {word}"),
    };
    response.push('\n');
    response
}

/// The kv protocol and its map, as `fdbox_guest::service` runs it.
struct Kv {
    version: Version,
    store: Store,
}

impl Kv {
    fn take_over(version: Version, taken: &mut Taken) -> Result<Self, Failure> {
        let store = match read_memory_file(taken.remove(STATE), STATE)? {
            Some(bytes) => decode_state(&bytes).ok_or(Failure::corrupt(STATE))?,
            None => Store::new(),
        };
        Ok(Kv { version, store })
    }
}

impl Protocol for Kv {
    const NAME: &'static str = "kv-service";
    const ENV_PREFIX: &'static str = "KV";
    const DEFAULT_BOX: &'static str = DEFAULT_BOX;
    /// The requests answered on the connection, across instances.
    type ConnState = u64;

    /// Answers every complete line; a line longer than [`MAX_LINE`] gets
    /// `ERR line too long` and closes the connection.
    fn answer(&mut self, count: &mut u64, input: &[u8], out: &mut Vec<u8>) -> Answered {
        let mut start = 0;
        while let Some(end) = input[start..].iter().position(|&b| b == b'\n') {
            *count += 1;
            let response = respond(
                self.version,
                &mut self.store,
                *count,
                &input[start..start + end],
            );
            out.extend_from_slice(response.as_bytes());
            start += end + 1;
        }
        let close = input.len() - start > MAX_LINE;
        if close {
            out.extend_from_slice(b"ERR line too long\n");
        }
        Answered {
            consumed: start,
            close,
        }
    }

    fn encode_conn(count: &u64) -> String {
        count.to_string()
    }

    fn decode_conn(token: &str) -> Option<u64> {
        token.parse().ok()
    }

    fn hand_over(self) -> Result<Vec<(String, boxes::Handle)>, Failure> {
        Ok(vec![(
            STATE.to_string(),
            memory_file(STATE, encode_state(&self.store).as_bytes())?,
        )])
    }
}

fn encode_state(store: &Store) -> String {
    store
        .iter()
        .map(|(key, value)| format!("{} {}\n", hex(key.as_bytes()), hex(value.as_bytes())))
        .collect()
}

fn decode_state(bytes: &[u8]) -> Option<Store> {
    lines(bytes)?
        .map(|line| {
            let (key, value) = line.split_once(' ')?;
            let text = |h| String::from_utf8(unhex(h)?).ok();
            Some((text(key)?, text(value)?))
        })
        .collect()
}

/// The `\n`-terminated lines of a memory file we wrote.
fn lines(bytes: &[u8]) -> Option<impl Iterator<Item = &str>> {
    let text = std::str::from_utf8(bytes).ok()?;
    Some(text.lines())
}

// The protocol and the box formats are plain Rust: these run natively with
// `cargo test -p kv-service --target x86_64-unknown-linux-gnu` (or the
// host's triple) from `guest-examples/rust`; the service itself is tested
// against `fdbox serve` by the root crate's `tests/upgrade.rs`.
#[cfg(test)]
mod tests {
    use super::*;

    fn ask(version: Version, store: &mut Store, line: &str) -> String {
        respond(version, store, 7, line.as_bytes())
    }

    #[test]
    fn protocol() {
        let mut store = Store::new();
        let v1 = Version::V1;
        assert_eq!(ask(v1, &mut store, "PING"), "PONG\n");
        assert_eq!(ask(v1, &mut store, "PING\r"), "PONG\n");
        assert_eq!(ask(v1, &mut store, "GET a"), "NONE\n");
        assert_eq!(ask(v1, &mut store, "SET a 1"), "OK\n");
        assert_eq!(ask(v1, &mut store, "GET a"), "VALUE 1\n");
        assert_eq!(ask(v1, &mut store, "INCR a"), "VALUE 2\n");
        assert_eq!(ask(v1, &mut store, "INCR b"), "VALUE 1\n");
        assert_eq!(ask(v1, &mut store, "SET c x"), "OK\n");
        assert_eq!(ask(v1, &mut store, "INCR c"), "ERR not an integer\n");
        assert_eq!(ask(v1, &mut store, "COUNT"), "VALUE 7\n");
        assert_eq!(ask(v1, &mut store, "VERSION"), "VERSION 1\n");
        assert_eq!(ask(v1, &mut store, "DEL a"), "ERR unknown command DEL\n");
        assert_eq!(ask(v1, &mut store, "NOPE x"), "ERR unknown command NOPE\n");
        assert_eq!(
            ask(v1, &mut store, "SET a"),
            "ERR wrong number of arguments for SET\n"
        );
        let v2 = Version::V2;
        assert_eq!(ask(v2, &mut store, "VERSION"), "VERSION 2\n");
        assert_eq!(ask(v2, &mut store, "DEL a"), "OK\n");
        assert_eq!(ask(v2, &mut store, "DEL a"), "NONE\n");
        assert_eq!(ask(v2, &mut store, "GET a"), "NONE\n");
    }

    #[test]
    fn formats_round_trip() {
        let store: Store = [("k 1", "v\n2"), ("", ""), ("é", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(decode_state(encode_state(&store).as_bytes()), Some(store));
        assert_eq!(decode_state(b"6 00\n"), None);
    }

    #[test]
    fn lines_across_reads() {
        let mut kv = Kv {
            version: Version::V1,
            store: Store::new(),
        };
        let (mut count, mut out) = (0, Vec::new());
        let answered = kv.answer(&mut count, b"PING\nSET a 1\nGE", &mut out);
        assert_eq!((answered.consumed, answered.close), (13, false));
        assert_eq!((count, &out[..]), (2, &b"PONG\nOK\n"[..]));
        let long = vec![b'x'; MAX_LINE + 1];
        assert!(kv.answer(&mut count, &long, &mut out).close);
    }
}
