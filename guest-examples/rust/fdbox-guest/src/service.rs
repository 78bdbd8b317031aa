//! The hand-over of a TCP service under `fdbox serve`, written once for
//! every service guest (`kv-service`, `resp-service`, `http-service`): each
//! brings only its [`Protocol`] (how it answers the bytes a connection sent,
//! and what state it boxes), and [`main`] does the rest.
//!
//! # Start and hand-over
//!
//! At start the service opens (or creates) its box, unseals it if sealed,
//! takes the listener (or, on the very first start, asks the host for the
//! grant [`LISTENER_GRANT`]), lets the protocol take its state
//! ([`Protocol`]'s constructor, given every other entry), takes every
//! connection, then calls `lifecycle.ready`: from then on the host counts the
//! upgrade as done. An entry a crashed instance left behind unsealed is taken
//! the same way, and a `conn-<id>` that `connections` does not list is
//! resumed with a default state and no unfinished request.
//!
//! It then waits with `wasi:io/poll.poll` on the lifecycle, the listener and
//! every connection. It answers with `blocking-write-and-flush`: a peer that
//! sends much and reads nothing stalls the whole service (this is an
//! example, not a hardened server). When the host asks for an upgrade or a
//! stop, it flushes and drops each connection's streams, boxes each
//! connection, writes and boxes `connections`, boxes what the protocol hands
//! over ([`Protocol::hand_over`]) and the listener in the same request, seals
//! the box, calls `lifecycle.handed-over` and returns from `main`.
//!
//! # What the box holds between two instances
//!
//! | entry         | kind           | content                                              |
//! |---------------|----------------|------------------------------------------------------|
//! | `listener`    | tcp-listener   | the listening socket                                 |
//! | `conn-<id>`   | tcp-connection | one open connection each (input the service has not read stays in its kernel buffer) |
//! | `connections` | memory file    | one line per boxed connection: `<id> <state> <hex>`, `<state>` the protocol's per-connection state ([`Protocol::encode_conn`], no space), `<hex>` the bytes it read but did not answer yet (maybe empty) |
//! | others        | the protocol's | [`Protocol::hand_over`]                              |
//!
//! # Configuration (environment; `P` is [`Protocol::ENV_PREFIX`])
//!
//! - `P_BOX` names the box (default [`Protocol::DEFAULT_BOX`]): grant it with
//!   `fdbox serve --box NAME`.
//! - `P_STUBBORN=spin` makes the service misbehave for the host's tests:
//!   asked to hand over, it computes forever instead (without a single host
//!   call), so only the host's deadline (epoch interruption) stops it.
//! - `P_HOARD=memory-files`, `files` or `memory-files,files` makes it hostile
//!   in another way, for the host's tests: once it has accepted its first
//!   connection, it creates memory files (`memory-files.create`), then opens
//!   its first preopened directory (`fdbox serve --dir`) again and again
//!   through `wasi:filesystem`, until the host refuses one, holds them all
//!   while it serves, and says on stderr how many it got and why the next
//!   one failed. It lets them go when asked to hand over.

use std::collections::HashMap;
use std::fmt;
use std::process::ExitCode;

use crate::fdbox::fdbox::sockets::{self, TcpConnection, TcpListener};
use crate::fdbox::fdbox::{boxes, lifecycle, memory_files, types};
use crate::wasi::filesystem::types as fs;
use crate::wasi::io::poll::{self, Pollable};
use crate::wasi::io::streams::{InputStream, OutputStream, StreamError};
use crate::{open_or_create, read_to_end, write_all};

/// The host's listener grant (`fdbox serve --listen main=ADDR`).
pub const LISTENER_GRANT: &str = "main";

/// Box entry of the listening socket.
const LISTENER: &str = "listener";
/// Box entry of the memory file that lists the boxed connections.
const CONNECTIONS: &str = "connections";
/// Prefix of a boxed connection's entry; the connection's id follows.
const CONN_PREFIX: &str = "conn-";

/// How much one `input-stream.read` asks for.
const READ_CHUNK: u64 = 64 * 1024;
/// Reads per connection per wake-up, so one busy peer cannot starve the
/// others: what is left is read after the next `poll`.
const READS_PER_WAKEUP: usize = 4;
/// The most `blocking-write-and-flush` accepts in one call (WASI: 4096).
const WRITE_CHUNK: usize = 4096;

/// The entries the previous instance boxed that the hand-over itself does
/// not take (the listener, `connections` and the connections), by name.
pub type Taken = HashMap<String, boxes::Handle>;

/// What a service adds to the hand-over: how it answers, what it keeps.
pub trait Protocol: Sized {
    /// Its name, which starts each line it writes on stderr.
    const NAME: &'static str;
    /// The prefix of its environment variables (`KV` for `KV_BOX`, ...).
    const ENV_PREFIX: &'static str;
    /// The box used when `<ENV_PREFIX>_BOX` is not set.
    const DEFAULT_BOX: &'static str;
    /// What a connection carries besides its socket and its unanswered
    /// bytes (kv-service: its request count).
    type ConnState: Default;

    /// Answers every complete request at the start of `input` (the bytes
    /// the connection sent that are not answered yet), appending the
    /// answers to `out`.
    fn answer(&mut self, conn: &mut Self::ConnState, input: &[u8], out: &mut Vec<u8>) -> Answered;

    /// `state` as one token without space or newline, for `connections`.
    fn encode_conn(state: &Self::ConnState) -> String;
    /// The inverse of [`Protocol::encode_conn`]; `None` if malformed.
    fn decode_conn(token: &str) -> Option<Self::ConnState>;

    /// Its state as box entries, put in the same request as the
    /// connections and the listener.
    fn hand_over(self) -> Result<Vec<(String, boxes::Handle)>, Failure>;
}

/// What [`Protocol::answer`] did with a connection's input.
pub struct Answered {
    /// The bytes it answered (a prefix of the input), dropped from it.
    pub consumed: usize,
    /// Whether to close the connection once the answers are written.
    pub close: bool,
}

/// Runs a service: takes over from the box (`take_state` makes the
/// protocol from the entries the hand-over does not take itself; it removes
/// those it takes), serves until asked to hand over, hands over. Exits 0
/// after a hand-over, 1 (with a message on stderr) if taking over or handing
/// over failed.
pub fn main<P: Protocol>(take_state: impl FnOnce(&mut Taken) -> Result<P, Failure>) -> ExitCode {
    match Service::take_over(take_state).and_then(Service::serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}: {failure}", P::NAME);
            ExitCode::FAILURE
        }
    }
}

/// A running instance: the box, the listener, the protocol and the
/// connections.
struct Service<P: Protocol> {
    bx: boxes::Box,
    listener: TcpListener,
    protocol: P,
    conns: Vec<Conn<P::ConnState>>,
    /// The id the next accepted connection gets.
    next_id: u64,
    /// What it hoards (`<ENV_PREFIX>_HOARD`), once it has accepted a
    /// connection.
    hoard: Option<Hoard>,
}

/// `<ENV_PREFIX>_<suffix>` of protocol `P`, if set.
fn env<P: Protocol>(suffix: &str) -> Option<String> {
    std::env::var(format!("{}_{suffix}", P::ENV_PREFIX)).ok()
}

/// Host resources held for nothing but to hold them (`<ENV_PREFIX>_HOARD`).
#[derive(Default)]
struct Hoard {
    _memory_files: Vec<fs::Descriptor>,
    _files: Vec<fs::Descriptor>,
}

impl Hoard {
    /// The most of each kind it takes, should the host set no limit.
    const MOST: usize = 1 << 20;

    /// Take what `<ENV_PREFIX>_HOARD` asks for, as much as the host gives.
    fn take<P: Protocol>() -> Hoard {
        let what = env::<P>("HOARD").unwrap_or_default();
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
                "{}: hoarding {} memory files; the next create failed: {why}",
                P::NAME,
                hoard._memory_files.len()
            );
        }
        if what.split(',').any(|w| w == "files") {
            let dirs = crate::wasi::filesystem::preopens::get_directories();
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
                "{}: hoarding {} files; the next open failed: {why}",
                P::NAME,
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
struct Conn<S> {
    ready: Pollable,
    input: InputStream,
    output: OutputStream,
    tcp: TcpConnection,
    id: u64,
    /// The protocol's per-connection state, across instances.
    state: S,
    /// Bytes read and not answered yet: the start of a request.
    partial: Vec<u8>,
}

impl<S> Conn<S> {
    fn new(tcp: TcpConnection, id: u64, state: S, partial: Vec<u8>) -> Result<Self, Failure> {
        let (input, output) = tcp.streams().or_fail("connection streams")?;
        Ok(Conn {
            ready: tcp.subscribe(),
            input,
            output,
            tcp,
            id,
            state,
            partial,
        })
    }

    /// Reads what is waiting, answers every complete request, keeps the
    /// rest. Returns whether the connection stays open.
    fn serve<P: Protocol<ConnState = S>>(&mut self, protocol: &mut P) -> bool {
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
        let mut out = Vec::new();
        let answered = protocol.answer(&mut self.state, &self.partial, &mut out);
        self.partial.drain(..answered.consumed);
        self.write(&out) && open && !answered.close
    }

    /// Writes and flushes `bytes`, blocking; false if the connection broke.
    fn write(&self, bytes: &[u8]) -> bool {
        bytes
            .chunks(WRITE_CHUNK)
            .all(|chunk| self.output.blocking_write_and_flush(chunk).is_ok())
    }
}

impl<P: Protocol> Service<P> {
    /// Takes everything the previous instance boxed (or starts afresh), then
    /// tells the host this instance is ready.
    fn take_over(
        take_state: impl FnOnce(&mut Taken) -> Result<P, Failure>,
    ) -> Result<Self, Failure> {
        let box_name = env::<P>("BOX").unwrap_or_else(|| P::DEFAULT_BOX.to_string());
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
        let mut taken: Taken = present.into_iter().zip(handles).collect();

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
        let listed = match read_memory_file(taken.remove(CONNECTIONS), CONNECTIONS)? {
            Some(bytes) => decode_connections::<P>(&bytes).ok_or(Failure::corrupt(CONNECTIONS))?,
            None => Vec::new(),
        };
        let mut conns = Vec::new();
        for (id, state, partial) in listed {
            let name = format!("{CONN_PREFIX}{id}");
            match taken.remove(&name) {
                Some(boxes::Handle::TcpConnection(tcp)) => {
                    conns.push(Conn::new(tcp, id, state, partial)?)
                }
                Some(_) => return Err(Failure::wrong_kind(&name)),
                None => eprintln!("{}: connection {id} is listed but not boxed", P::NAME),
            }
        }
        // Connections boxed by an instance that died before it wrote
        // `connections`: resumed without their state and partial request.
        let orphans: Vec<String> = taken
            .keys()
            .filter(|name| name.starts_with(CONN_PREFIX))
            .cloned()
            .collect();
        for name in orphans {
            let id = name[CONN_PREFIX.len()..].parse().ok();
            match (id, taken.remove(&name)) {
                (Some(id), Some(boxes::Handle::TcpConnection(tcp))) => {
                    conns.push(Conn::new(tcp, id, P::ConnState::default(), Vec::new())?)
                }
                _ => eprintln!("{}: entry {name:?} is not a connection; dropped", P::NAME),
            }
        }
        let protocol = take_state(&mut taken)?;
        for name in taken.keys() {
            eprintln!(
                "{}: entry {name:?} is not one of this service's; dropped",
                P::NAME
            );
        }

        let next_id = conns.iter().map(|c| c.id + 1).max().unwrap_or(0);
        lifecycle::ready();
        Ok(Service {
            bx,
            listener,
            protocol,
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
                        request if env::<P>("STUBBORN").as_deref() == Some("spin") => {
                            eprintln!("{}: asked for {request:?}; spinning instead", P::NAME);
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
                            if !conn.serve(&mut self.protocol) {
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
            "{}: handing over ({request:?}) with {} connections",
            P::NAME,
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
                    let conn = Conn::new(tcp, self.next_id, P::ConnState::default(), Vec::new())?;
                    self.next_id += 1;
                    self.conns.push(conn);
                    if self.hoard.is_none() {
                        self.hoard = Some(Hoard::take::<P>());
                    }
                }
                Ok(None) => return Ok(()),
                // Out of fds: the connection waits in the backlog; serve the
                // others meanwhile.
                Err(types::ErrorCode::QuotaExceeded) => {
                    eprintln!("{}: accept: quota-exceeded", P::NAME);
                    return Ok(());
                }
                Err(code) => return Err(Failure::code("accept", code.name())),
            }
        }
    }

    /// Boxes the connections, `connections`, the protocol's state and the
    /// listener, seals the box and tells the host.
    fn hand_over(self) -> Result<(), Failure> {
        let Service {
            bx,
            listener,
            protocol,
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
                state,
                partial,
            } = conn;
            drop(ready);
            // Everything written must be on the socket before it is boxed.
            let _ = output.blocking_flush();
            drop(output);
            drop(input);
            listing += &format!("{id} {} {}\n", P::encode_conn(&state), hex(&partial));
            batch.push((
                format!("{CONN_PREFIX}{id}"),
                boxes::Handle::TcpConnection(tcp),
            ));
        }
        batch.push((
            CONNECTIONS.to_string(),
            memory_file(CONNECTIONS, listing.as_bytes())?,
        ));
        batch.extend(protocol.hand_over()?);
        batch.push((LISTENER.to_string(), boxes::Handle::TcpListener(listener)));
        // One request for everything (one round trip to a holder daemon).
        // Should the batch be refused, each handle is tried alone, so what
        // can be kept is kept.
        let names: Vec<String> = batch.iter().map(|(name, _)| name.clone()).collect();
        if let Err(refused) = bx.put_handles(batch) {
            eprintln!(
                "{}: put-handles refused ({}); putting one by one",
                P::NAME,
                refused.code.name()
            );
            for (name, handle) in names.into_iter().zip(refused.handles) {
                if let Err(refused) = bx.put_handle(&name, handle) {
                    // The handle comes back and closes when it drops here;
                    // a peer sees its connection close, nothing is silently
                    // kept half-open.
                    eprintln!("{}: put {name} failed: {}", P::NAME, refused.code.name());
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

/// The content of a memory file the previous instance boxed as `name`, or
/// `None` if it boxed none.
pub fn read_memory_file(
    handle: Option<boxes::Handle>,
    name: &str,
) -> Result<Option<Vec<u8>>, Failure> {
    match handle {
        Some(boxes::Handle::Descriptor(fd)) => {
            Ok(Some(read_to_end(&fd, 0).or_fail("read memory file")?))
        }
        Some(_) => Err(Failure::wrong_kind(name)),
        None => Ok(None),
    }
}

/// A new memory file holding `content`, as a handle to box.
pub fn memory_file(name: &str, content: &[u8]) -> Result<boxes::Handle, Failure> {
    let fd = memory_files::create(name).or_fail("create memory file")?;
    write_all(&fd, content, 0).or_fail("write memory file")?;
    Ok(boxes::Handle::Descriptor(fd))
}

/// A line of `connections`: id, state, unanswered bytes.
type Listed<S> = (u64, S, Vec<u8>);

/// The lines of `connections`.
fn decode_connections<P: Protocol>(bytes: &[u8]) -> Option<Vec<Listed<P::ConnState>>> {
    std::str::from_utf8(bytes)
        .ok()?
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            Some((
                fields.next()?.parse().ok()?,
                P::decode_conn(fields.next()?)?,
                unhex(fields.next()?)?,
            ))
        })
        .collect()
}

/// `bytes` as lowercase hex: every byte safe in a line-and-space format.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex`]; `None` if `text` is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Why taking over or handing over failed.
#[derive(Debug)]
pub struct Failure(pub String);

impl Failure {
    /// `op` failed with the WIT error code `code`.
    pub fn code(op: &str, code: &str) -> Self {
        Failure(format!("{op} failed: {code}"))
    }
    /// The box entry `entry` holds a handle of another kind.
    pub fn wrong_kind(entry: &str) -> Self {
        Failure(format!("box entry {entry} holds the wrong kind of handle"))
    }
    /// The box entry `entry` is not in the format this service writes.
    pub fn corrupt(entry: &str) -> Self {
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
pub trait OrFail<T> {
    /// `op` failed with the error's code.
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

// Plain Rust: runs natively with `cargo test -p fdbox-guest --target
// x86_64-unknown-linux-gnu` (or the host's triple) from `guest-examples/rust`.
#[cfg(test)]
mod tests {
    use super::*;

    /// A protocol that only counts, for the `connections` format.
    struct Counting;

    impl Protocol for Counting {
        const NAME: &'static str = "counting";
        const ENV_PREFIX: &'static str = "COUNTING";
        const DEFAULT_BOX: &'static str = "counting";
        type ConnState = u64;
        fn answer(&mut self, _: &mut u64, _: &[u8], _: &mut Vec<u8>) -> Answered {
            Answered {
                consumed: 0,
                close: false,
            }
        }
        fn encode_conn(state: &u64) -> String {
            state.to_string()
        }
        fn decode_conn(token: &str) -> Option<u64> {
            token.parse().ok()
        }
        fn hand_over(self) -> Result<Vec<(String, boxes::Handle)>, Failure> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn connections_format() {
        let saved = decode_connections::<Counting>(b"3 10 5345\n4 0 \n").unwrap();
        assert_eq!(
            saved
                .iter()
                .map(|(id, count, partial)| (*id, *count, partial.as_slice()))
                .collect::<Vec<_>>(),
            [(3, 10, &b"SE"[..]), (4, 0, &b""[..])]
        );
        assert!(decode_connections::<Counting>(b"3 x 00\n").is_none());
        assert!(decode_connections::<Counting>(b"3 1 0\n").is_none());
        assert_eq!(unhex(&hex(&[0, 0xff, b'\n'])), Some(vec![0, 0xff, b'\n']));
    }
}
