//! `kv-service`: a key/value service over TCP that `fdbox serve` can upgrade
//! and restart without dropping a connection, a request or a byte.
//!
//! It is a `wasi:cli` command whose `main` serves until the host asks it to
//! hand over (`fdbox:fdbox/lifecycle`). Everything the next instance needs is
//! then in one fdbox box: the listening socket, every open connection (with
//! the input the service has not read still in the kernel's socket buffer),
//! the key/value map, and for each connection what the socket cannot carry
//! (its request count and the start of a line it has not finished).
//!
//! The binaries are thin: `kv-v1` and `kv-v2` call [`main`] with their
//! [`Version`], `kv-broken` traps before it starts. The protocol itself is
//! [`respond`].
//!
//! # Configuration
//!
//! - The box is named by the environment variable `KV_BOX` (default `kv`):
//!   grant it with `fdbox serve --box kv`.
//! - The listener is the host's grant `main` (`fdbox serve --listen
//!   main=127.0.0.1:PORT`).
//! - `KV_STUBBORN=spin` makes the service misbehave for the host's tests:
//!   asked to hand over, it computes forever instead (without a single
//!   host call), so only the host's deadline (epoch interruption) stops it.
//! - `KV_HOARD=memory-files`, `files` or `memory-files,files` makes it
//!   hostile in another way, for the host's tests: once it has accepted its
//!   first connection, it creates memory files (`memory-files.create`), then
//!   opens its first preopened directory (`fdbox serve --dir`) again and
//!   again through `wasi:filesystem`, until the host refuses one, holds them
//!   all while it serves, and says on stderr how many it got and why the
//!   next one failed. It lets them go when asked to hand over.
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
//! | entry         | kind           | content                                              |
//! |---------------|----------------|------------------------------------------------------|
//! | `listener`    | tcp-listener   | the listening socket                                 |
//! | `conn-<id>`   | tcp-connection | one open connection each                             |
//! | `connections` | memory file    | one line per boxed connection: `<id> <count> <hex>`, `<hex>` the bytes of its unfinished line (maybe empty) |
//! | `state`       | memory file    | one line per key: `<hex key> <hex value>`            |
//!
//! Hex keeps every byte of a key, value or partial line safe in a
//! line-and-space format.
//!
//! # Start and hand-over
//!
//! At start the service opens (or creates) the box, unseals it if sealed,
//! takes the listener (or, on the very first start, asks the host for the
//! grant `main`), the state, and every connection, then calls
//! `lifecycle.ready`: from then on the host counts the upgrade as done. An
//! entry a crashed instance left behind unsealed is taken the same way, and
//! a `conn-<id>` that `connections` does not list is resumed with a count
//! of 0 and no partial line.
//!
//! It then waits with `wasi:io/poll.poll` on the lifecycle, the listener and
//! every connection. It answers with `blocking-write-and-flush`: a peer that
//! sends much and reads nothing stalls the whole service (this is an
//! example, not a hardened server). When the host asks for an upgrade or a stop, it flushes
//! and drops each connection's streams, boxes each connection, writes and
//! boxes `connections` and `state`, boxes the listener, seals the box, calls
//! `lifecycle.handed-over` and returns from `main`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::process::ExitCode;

use fdbox_guest::fdbox::fdbox::sockets::{self, TcpConnection, TcpListener};
use fdbox_guest::fdbox::fdbox::{boxes, lifecycle, memory_files, types};
use fdbox_guest::wasi::filesystem::types as fs;
use fdbox_guest::wasi::io::poll::{self, Pollable};
use fdbox_guest::wasi::io::streams::{InputStream, OutputStream, StreamError};
use fdbox_guest::{open_or_create, read_to_end, write_all};

/// The environment variable that names the box.
pub const BOX_ENV: &str = "KV_BOX";
/// Set to `spin` to ignore hand-over requests (see the crate docs).
pub const STUBBORN_ENV: &str = "KV_STUBBORN";
/// Set to what to hoard (see the crate docs).
pub const HOARD_ENV: &str = "KV_HOARD";
/// The box used when [`BOX_ENV`] is not set.
pub const DEFAULT_BOX: &str = "kv";
/// The host's listener grant (`fdbox serve --listen main=ADDR`).
pub const LISTENER_GRANT: &str = "main";

/// Box entry of the listening socket.
const LISTENER: &str = "listener";
/// Box entry of the memory file with the key/value map.
const STATE: &str = "state";
/// Box entry of the memory file that lists the boxed connections.
const CONNECTIONS: &str = "connections";
/// Prefix of a boxed connection's entry; the connection's id follows.
const CONN_PREFIX: &str = "conn-";

/// The longest unfinished line a connection may hold, in bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// How much one `input-stream.read` asks for.
const READ_CHUNK: u64 = 64 * 1024;
/// Reads per connection per wake-up, so one busy peer cannot starve the
/// others: what is left is read after the next `poll`.
const READS_PER_WAKEUP: usize = 4;
/// The most `blocking-write-and-flush` accepts in one call (WASI: 4096).
const WRITE_CHUNK: usize = 4096;

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
    match Service::take_over(version).and_then(Service::serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("kv-service: {failure}");
            ExitCode::FAILURE
        }
    }
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

/// A running instance: the box, the listener, the map and the connections.
struct Service {
    version: Version,
    bx: boxes::Box,
    listener: TcpListener,
    store: Store,
    conns: Vec<Conn>,
    /// The id the next accepted connection gets.
    next_id: u64,
    /// What it hoards ([`HOARD_ENV`]), once it has accepted a connection.
    hoard: Option<Hoard>,
}

/// Host resources held for nothing but to hold them ([`HOARD_ENV`]).
#[derive(Default)]
struct Hoard {
    _memory_files: Vec<fs::Descriptor>,
    _files: Vec<fs::Descriptor>,
}

impl Hoard {
    /// The most of each kind it takes, should the host set no limit.
    const MOST: usize = 1 << 20;

    /// Take what [`HOARD_ENV`] asks for, as much as the host gives.
    fn take() -> Hoard {
        let what = std::env::var(HOARD_ENV).unwrap_or_default();
        let mut hoard = Hoard::default();
        if what.split(',').any(|w| w == "memory-files") {
            let why = loop {
                if hoard._memory_files.len() == Self::MOST {
                    break "none".to_string();
                }
                match memory_files::create("hoard") {
                    Ok(fd) => hoard._memory_files.push(fd),
                    Err(code) => break code.name().to_string(),
                }
            };
            eprintln!(
                "kv-service: hoarding {} memory files; the next create failed: {why}",
                hoard._memory_files.len()
            );
        }
        if what.split(',').any(|w| w == "files") {
            let dirs = fdbox_guest::wasi::filesystem::preopens::get_directories();
            let why = match dirs.first() {
                None => "no preopened directory".to_string(),
                Some((dir, _)) => loop {
                    if hoard._files.len() == Self::MOST {
                        break "none".to_string();
                    }
                    match dir.open_at(
                        fs::PathFlags::empty(),
                        ".",
                        fs::OpenFlags::DIRECTORY,
                        fs::DescriptorFlags::READ,
                    ) {
                        Ok(fd) => hoard._files.push(fd),
                        Err(code) => break code.name().to_string(),
                    }
                },
            };
            eprintln!(
                "kv-service: hoarding {} files; the next open failed: {why}",
                hoard._files.len()
            );
        }
        hoard
    }
}

/// One open connection and what the socket does not carry itself.
///
/// Fields drop in declaration order: the pollable and the streams (children
/// of the connection resource) before the connection.
struct Conn {
    ready: Pollable,
    input: InputStream,
    output: OutputStream,
    tcp: TcpConnection,
    id: u64,
    /// Requests answered on this connection, across instances.
    count: u64,
    /// Bytes read after the last complete line.
    partial: Vec<u8>,
}

impl Conn {
    fn new(tcp: TcpConnection, id: u64, count: u64, partial: Vec<u8>) -> Result<Self, Failure> {
        let (input, output) = tcp.streams().or_fail("connection streams")?;
        Ok(Conn {
            ready: tcp.subscribe(),
            input,
            output,
            tcp,
            id,
            count,
            partial,
        })
    }

    /// Reads what is waiting, answers every complete line, keeps the rest.
    /// Returns whether the connection stays open.
    fn serve(&mut self, version: Version, store: &mut Store) -> bool {
        let mut open = true;
        for _ in 0..READS_PER_WAKEUP {
            match self.input.read(READ_CHUNK) {
                Ok(bytes) if bytes.is_empty() => break,
                Ok(bytes) => self.partial.extend_from_slice(&bytes),
                // The peer closed (or the socket broke): still answer what
                // it sent, in case it only shut down its sending side.
                Err(StreamError::Closed | StreamError::LastOperationFailed(_)) => {
                    open = false;
                    break;
                }
            }
        }
        let mut out = String::new();
        let mut start = 0;
        while let Some(end) = self.partial[start..].iter().position(|&b| b == b'\n') {
            self.count += 1;
            out += &respond(
                version,
                store,
                self.count,
                &self.partial[start..start + end],
            );
            start += end + 1;
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_LINE {
            out += "ERR line too long\n";
            open = false;
        }
        self.write(out.as_bytes()) && open
    }

    /// Writes and flushes `bytes`, blocking; false if the connection broke.
    fn write(&self, bytes: &[u8]) -> bool {
        bytes
            .chunks(WRITE_CHUNK)
            .all(|chunk| self.output.blocking_write_and_flush(chunk).is_ok())
    }
}

impl Service {
    /// Takes everything the previous instance boxed (or starts afresh), then
    /// tells the host this instance is ready.
    fn take_over(version: Version) -> Result<Self, Failure> {
        let box_name = std::env::var(BOX_ENV).unwrap_or_else(|_| DEFAULT_BOX.to_string());
        let bx = open_or_create(&box_name).map_err(|e| Failure(e.to_string()))?;
        if bx.is_sealed().or_fail("is-sealed")? {
            bx.unseal().or_fail("unseal")?;
        }

        // Everything in one request (one round trip to a holder daemon):
        // what is in the box, then all of it.
        let present: Vec<String> = bx
            .entries()
            .or_fail("entries")?
            .iter()
            .map(|e| e.name())
            .collect();
        let handles = if present.is_empty() {
            Vec::new()
        } else {
            bx.get_handles(&present).or_fail("get-handles")?
        };
        let mut taken: HashMap<String, boxes::Handle> = present.into_iter().zip(handles).collect();

        let listener = match taken.remove(LISTENER) {
            Some(boxes::Handle::TcpListener(listener)) => listener,
            Some(_) => return Err(Failure::wrong_kind(LISTENER)),
            None => sockets::listener(LISTENER_GRANT).map_err(|code| match code {
                types::ErrorCode::AccessDenied => Failure(format!(
                    "listener {LISTENER_GRANT:?} failed: access-denied (the host granted no \
                     listener of that name: run it with fdbox serve --listen \
                     {LISTENER_GRANT}=ADDR)"
                )),
                code => Failure::code("listener", code.name()),
            })?,
        };
        let store = match read_memory_file(taken.remove(STATE), STATE)? {
            Some(bytes) => decode_state(&bytes).ok_or(Failure::corrupt(STATE))?,
            None => Store::new(),
        };
        let listed = match read_memory_file(taken.remove(CONNECTIONS), CONNECTIONS)? {
            Some(bytes) => decode_connections(&bytes).ok_or(Failure::corrupt(CONNECTIONS))?,
            None => Vec::new(),
        };
        let mut conns = Vec::new();
        for saved in listed {
            let name = format!("{CONN_PREFIX}{}", saved.id);
            match taken.remove(&name) {
                Some(boxes::Handle::TcpConnection(tcp)) => {
                    conns.push(Conn::new(tcp, saved.id, saved.count, saved.partial)?)
                }
                Some(_) => return Err(Failure::wrong_kind(&name)),
                None => eprintln!(
                    "kv-service: connection {} is listed but not boxed",
                    saved.id
                ),
            }
        }
        // Connections boxed by an instance that died before it wrote
        // `connections`: resumed without their count and partial line.
        for (name, handle) in taken {
            let id = name
                .strip_prefix(CONN_PREFIX)
                .and_then(|id| id.parse().ok());
            match (id, handle) {
                (Some(id), boxes::Handle::TcpConnection(tcp)) => {
                    conns.push(Conn::new(tcp, id, 0, Vec::new())?)
                }
                _ => eprintln!("kv-service: entry {name:?} is not one of this service's; dropped"),
            }
        }

        let next_id = conns.iter().map(|c| c.id + 1).max().unwrap_or(0);
        lifecycle::ready();
        Ok(Service {
            version,
            bx,
            listener,
            store,
            conns,
            next_id,
            hoard: None,
        })
    }

    /// Serves until the host asks for a hand-over, then hands over.
    fn serve(mut self) -> Result<(), Failure> {
        let request = {
            let asked = lifecycle::subscribe();
            let incoming = self.listener.subscribe();
            loop {
                let mut waiting: Vec<&Pollable> = vec![&asked, &incoming];
                waiting.extend(self.conns.iter().map(|c| &c.ready));
                let ready = poll::poll(&waiting);
                drop(waiting);

                // Input nobody has read stays in the sockets, so handing over
                // at once loses nothing.
                if ready.contains(&0) {
                    match lifecycle::requested() {
                        lifecycle::Request::None => {}
                        request if std::env::var(STUBBORN_ENV).as_deref() == Ok("spin") => {
                            eprintln!("kv-service: asked for {request:?}; spinning instead");
                            spin()
                        }
                        request => break request,
                    }
                }
                let mut closed = Vec::new();
                for &index in &ready {
                    match index {
                        0 => {}
                        1 => self.accept_all()?,
                        n => {
                            let conn = &mut self.conns[n as usize - 2];
                            if !conn.serve(self.version, &mut self.store) {
                                closed.push(conn.id);
                            }
                        }
                    }
                }
                self.conns.retain(|c| !closed.contains(&c.id));
            }
            // `asked` and `incoming` drop here: `incoming` is a child of the
            // listener, which is boxed next.
        };
        eprintln!(
            "kv-service: handing over ({request:?}) with {} connections",
            self.conns.len()
        );
        self.hoard = None;
        self.hand_over()
    }

    /// Accepts every connection that is waiting.
    fn accept_all(&mut self) -> Result<(), Failure> {
        loop {
            match self.listener.accept() {
                Ok(Some(tcp)) => {
                    let conn = Conn::new(tcp, self.next_id, 0, Vec::new())?;
                    self.next_id += 1;
                    self.conns.push(conn);
                    if self.hoard.is_none() {
                        self.hoard = Some(Hoard::take());
                    }
                }
                Ok(None) => return Ok(()),
                // Out of fds: the connection waits in the backlog; serve the
                // others meanwhile.
                Err(types::ErrorCode::QuotaExceeded) => {
                    eprintln!("kv-service: accept: quota-exceeded");
                    return Ok(());
                }
                Err(code) => return Err(Failure::code("accept", code.name())),
            }
        }
    }

    /// Boxes the connections, `connections`, `state` and the listener, seals
    /// the box and tells the host.
    fn hand_over(self) -> Result<(), Failure> {
        let Service {
            bx,
            listener,
            store,
            conns,
            ..
        } = self;
        let mut listing = String::new();
        let mut batch = Vec::with_capacity(conns.len() + 3);
        for conn in conns {
            let Conn {
                ready,
                input,
                output,
                tcp,
                id,
                count,
                partial,
            } = conn;
            drop(ready);
            // Everything written must be on the socket before it is boxed.
            let _ = output.blocking_flush();
            drop(output);
            drop(input);
            listing += &format!("{id} {count} {}\n", hex(&partial));
            batch.push((
                format!("{CONN_PREFIX}{id}"),
                boxes::Handle::TcpConnection(tcp),
            ));
        }
        batch.push((
            CONNECTIONS.to_string(),
            memory_file(CONNECTIONS, listing.as_bytes())?,
        ));
        batch.push((
            STATE.to_string(),
            memory_file(STATE, encode_state(&store).as_bytes())?,
        ));
        batch.push((LISTENER.to_string(), boxes::Handle::TcpListener(listener)));
        // One request for everything (one round trip to a holder daemon).
        // Should the batch be refused, each handle is tried alone, so what
        // can be kept is kept.
        let names: Vec<String> = batch.iter().map(|(name, _)| name.clone()).collect();
        if let Err(refused) = bx.put_handles(batch) {
            eprintln!(
                "kv-service: put-handles refused ({}); putting one by one",
                refused.code.name()
            );
            for (name, handle) in names.into_iter().zip(refused.handles) {
                if let Err(refused) = bx.put_handle(&name, handle) {
                    // The handle comes back and closes when it drops here;
                    // a peer sees its connection close, nothing is silently
                    // kept half-open.
                    eprintln!("kv-service: put {name} failed: {}", refused.code.name());
                }
            }
        }
        bx.seal().or_fail("seal")?;
        lifecycle::handed_over();
        Ok(())
    }
}

/// Compute forever, never calling the host: what only epoch interruption
/// can stop.
fn spin() -> ! {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// The content of a memory file the previous instance boxed, or `None` if
/// it boxed none.
fn read_memory_file(handle: Option<boxes::Handle>, name: &str) -> Result<Option<Vec<u8>>, Failure> {
    match handle {
        Some(boxes::Handle::Descriptor(fd)) => {
            Ok(Some(read_to_end(&fd, 0).or_fail("read memory file")?))
        }
        Some(_) => Err(Failure::wrong_kind(name)),
        None => Ok(None),
    }
}

/// A new memory file holding `content`, as a handle to box.
fn memory_file(name: &str, content: &[u8]) -> Result<boxes::Handle, Failure> {
    let fd = memory_files::create(name).or_fail("create memory file")?;
    write_all(&fd, content, 0).or_fail("write memory file")?;
    Ok(boxes::Handle::Descriptor(fd))
}

/// A connection as listed in `connections`.
struct SavedConn {
    id: u64,
    count: u64,
    partial: Vec<u8>,
}

fn decode_connections(bytes: &[u8]) -> Option<Vec<SavedConn>> {
    lines(bytes)?
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            Some(SavedConn {
                id: fields.next()?.parse().ok()?,
                count: fields.next()?.parse().ok()?,
                partial: unhex(fields.next()?)?,
            })
        })
        .collect()
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Why taking over or handing over failed.
struct Failure(String);

impl Failure {
    /// `op` failed with the WIT error code `code`.
    fn code(op: &str, code: &str) -> Self {
        Failure(format!("{op} failed: {code}"))
    }
    fn wrong_kind(entry: &str) -> Self {
        Failure(format!("box entry {entry} holds the wrong kind of handle"))
    }
    fn corrupt(entry: &str) -> Self {
        Failure(format!("box entry {entry} is not in the expected format"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Attaches the operation to both error-code enums (fdbox's and
/// `wasi:filesystem`'s), which each know their kebab-case WIT name.
trait OrFail<T> {
    fn or_fail(self, op: &str) -> Result<T, Failure>;
}

impl<T> OrFail<T> for Result<T, types::ErrorCode> {
    fn or_fail(self, op: &str) -> Result<T, Failure> {
        self.map_err(|code| Failure::code(op, code.name()))
    }
}

impl<T> OrFail<T> for Result<T, fs::ErrorCode> {
    fn or_fail(self, op: &str) -> Result<T, Failure> {
        self.map_err(|code| Failure::code(op, code.name()))
    }
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
        let saved = decode_connections(b"3 10 5345\n4 0 \n").unwrap();
        assert_eq!(
            saved
                .iter()
                .map(|c| (c.id, c.count, c.partial.as_slice()))
                .collect::<Vec<_>>(),
            [(3, 10, &b"SE"[..]), (4, 0, &b""[..])]
        );
        assert!(decode_connections(b"3 x 00\n").is_none());
        assert_eq!(unhex(&hex(&[0, 0xff, b'\n'])), Some(vec![0, 0xff, b'\n']));
    }
}
