//! `http-service`: an HTTP/1.1 service for `fdbox serve`, enough of it for
//! `wrk` and `curl`, that is upgraded and restarted without dropping a
//! connection, a request or a byte.
//!
//! The hand-over (the listener, every connection with the bytes it sent
//! that are not answered yet, the lifecycle) is `fdbox_guest::service`'s,
//! the one `kv-service` and `resp-service` use; the counter and the keys
//! live in `fdbox_guest::store`'s key space, the one `resp-service` keeps,
//! in a memory file the next instance uses as it is. This crate adds the
//! protocol ([`Http`]).
//!
//! The binaries are thin: `http-v1` and `http-v2` call [`main`] with their
//! [`Version`].
//!
//! # Configuration
//!
//! The box is named by the environment variable `HTTP_BOX` (default
//! `http`): grant it with `fdbox serve --box http`; the listener is the
//! host's grant `main` (`fdbox serve --listen main=127.0.0.1:PORT`).
//!
//! # Protocol
//!
//! HTTP/1.1 (RFC 9112) without chunked requests: a connection stays open
//! after a response (HTTP/1.1 by default; HTTP/1.0 only with
//! `Connection: keep-alive`) until the client says `Connection: close`,
//! which gets its response and then the close. Requests may be pipelined
//! (answered in order) and a request may be split anywhere, across reads
//! and across an upgrade. An HTTP/1.1 request needs one `Host` header; a
//! request with a body needs `Content-Length`.
//!
//! | request              | response                                                      |
//! |----------------------|---------------------------------------------------------------|
//! | `GET /`              | 200, `fdbox http-service http-v1` (or `http-v2`) and a newline |
//! | `GET /count`         | 200, the counter plus one, which it now is, and a newline     |
//! | `POST /kv/KEY`       | 200 `stored`: the body is `KEY`'s value                       |
//! | `GET /kv/KEY`        | 200 with the value, or 404                                    |
//! | `DELETE /kv/KEY`     | v2 only: 200 `deleted`, or 404                                |
//!
//! `HEAD` is `GET` without the body, except on `/count` (it would count).
//! Every response has `Content-Length` and `Server: fdbox-http-v1` (or
//! `fdbox-http-v2`); `KEY` is the rest of the path, as sent (no
//! percent-decoding), and a query string is ignored. An unknown path gets
//! 404, a known one with another method 405 with `Allow`, a `POST` without
//! `Content-Length` 411.
//!
//! The connection is closed after the response when the request cannot be
//! framed or is too big: 400 for a malformed request line or header, a bad
//! or conflicting `Content-Length`, a missing `Host`, or a request line and
//! headers longer than [`MAX_HEAD`] bytes; 413 for a body longer than
//! [`MAX_BODY`] (said as soon as the headers are in); 501 for
//! `Transfer-Encoding`; 505 for an HTTP version other than 1.0 and 1.1. So
//! what a connection makes the service keep is bounded: [`MAX_HEAD`] +
//! [`MAX_BODY`] bytes of unanswered request.
//!
//! A client that sends `Expect: 100-continue` gets `100 Continue` once the
//! headers are in and the body is not.
//!
//! # What the box holds between two instances
//!
//! What `fdbox_guest::service` boxes (the listener, `conn-<id>` each, and
//! `connections`; a connection has no state of its own here, `-`), and
//! `store`, the memory file of `fdbox_guest::store`: the counter under the
//! key `count` (a little-endian `u64`, so it is always rewritten in place)
//! and each `KEY` under `kv/KEY`.

use std::process::ExitCode;

use fdbox_guest::fdbox::fdbox::boxes;
use fdbox_guest::service::{self, Answered, Failure, Protocol, Taken};
use fdbox_guest::store::{Store, StoreError};

/// The environment variable that names the box.
pub const BOX_ENV: &str = "HTTP_BOX";
/// The box used when [`BOX_ENV`] is not set.
pub const DEFAULT_BOX: &str = "http";
/// The store key of the counter.
const COUNT_KEY: &[u8] = b"count";
/// The prefix of a `/kv/KEY` key in the store.
const KV_PREFIX: &[u8] = b"kv/";
/// The longest request line and headers, with their line ends, in bytes.
pub const MAX_HEAD: usize = 8 << 10;
/// The longest request body, in bytes.
pub const MAX_BODY: usize = 1 << 20;

/// The version a binary is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `Server: fdbox-http-v1`.
    V1,
    /// `Server: fdbox-http-v2`; adds `DELETE /kv/KEY`.
    V2,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::V1 => "http-v1",
            Version::V2 => "http-v2",
        }
    }

    fn server(self) -> &'static str {
        match self {
            Version::V1 => "fdbox-http-v1",
            Version::V2 => "fdbox-http-v2",
        }
    }
}

/// Runs the service: takes over from the box, serves until asked to hand
/// over, hands over. Exits 0 after a hand-over, 1 (with a message on
/// stderr) if taking over or handing over failed.
pub fn main(version: Version) -> ExitCode {
    service::main(|taken| Http::take_over(version, taken))
}

/// The protocol and its state, as `fdbox_guest::service` runs them.
pub struct Http {
    version: Version,
    store: Store,
}

impl Http {
    fn take_over(version: Version, taken: &mut Taken) -> Result<Self, Failure> {
        let store = Store::take_over(taken)?;
        Ok(Http { version, store })
    }

    /// Appends the response to `request`; whether the connection is to be
    /// closed after it.
    fn respond(&mut self, request: &Request, out: &mut Vec<u8>) -> bool {
        let close = !request.keep_alive;
        let reply = match self.route(request) {
            Ok(reply) => reply,
            Err(e) => Reply::text(500, &format!("store: {}", e.0)),
        };
        reply.write(self.version, request, close, out);
        close
    }

    fn route(&mut self, request: &Request) -> Result<Reply, StoreError> {
        let path = request.path();
        let method = request.method;
        let v2 = self.version == Version::V2;
        Ok(if path == b"/" {
            match method {
                "GET" | "HEAD" => {
                    Reply::text(200, &format!("fdbox http-service {}", self.version.name()))
                }
                _ => Reply::not_allowed("GET, HEAD"),
            }
        } else if path == b"/count" {
            match method {
                "GET" => {
                    let count = match self.store.get(COUNT_KEY)? {
                        Some(bytes) => u64::from_le_bytes(
                            bytes
                                .try_into()
                                .map_err(|_| StoreError("the counter is not 8 bytes".into()))?,
                        ),
                        None => 0,
                    }
                    .wrapping_add(1);
                    self.store.set(COUNT_KEY, &count.to_le_bytes())?;
                    Reply::text(200, &count.to_string())
                }
                _ => Reply::not_allowed("GET"),
            }
        } else if let Some(key) = path.strip_prefix(b"/kv/".as_slice())
            && !key.is_empty()
        {
            let key = [KV_PREFIX, key].concat();
            match method {
                "GET" | "HEAD" => match self.store.get(&key)? {
                    Some(value) => Reply::new(200, value),
                    None => Reply::text(404, "no such key"),
                },
                "POST" => match request.content_length {
                    Some(_) => {
                        self.store.set(&key, request.body)?;
                        Reply::text(200, "stored")
                    }
                    None => Reply::text(411, "POST needs Content-Length"),
                },
                "DELETE" if v2 => match self.store.del(&key)? {
                    true => Reply::text(200, "deleted"),
                    false => Reply::text(404, "no such key"),
                },
                _ if v2 => Reply::not_allowed("GET, HEAD, POST, DELETE"),
                _ => Reply::not_allowed("GET, HEAD, POST"),
            }
        } else {
            Reply::text(404, "not found")
        })
    }
}

impl Protocol for Http {
    const NAME: &'static str = "http-service";
    const ENV_PREFIX: &'static str = "HTTP";
    const DEFAULT_BOX: &'static str = DEFAULT_BOX;
    type ConnState = ();

    fn answer(&mut self, _: &mut (), input: &[u8], out: &mut Vec<u8>) -> Answered {
        let mut consumed = 0;
        loop {
            match parse(&input[consumed..]) {
                Parsed::Request(request) => {
                    consumed += request.len;
                    if self.respond(&request, out) {
                        return Answered {
                            consumed,
                            close: true,
                        };
                    }
                }
                Parsed::Incomplete { expects_continue } => {
                    if expects_continue {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    return Answered {
                        consumed,
                        close: false,
                    };
                }
                Parsed::Rejected { status, why } => {
                    Reply::text(status, why).write_rejection(self.version, out);
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

/// A response before it is written.
struct Reply {
    status: u16,
    /// `Allow`, for a 405.
    allow: Option<&'static str>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, body: Vec<u8>) -> Self {
        Reply {
            status,
            allow: None,
            body,
        }
    }

    /// `text` and a newline.
    fn text(status: u16, text: &str) -> Self {
        Reply::new(status, format!("{text}\n").into_bytes())
    }

    fn not_allowed(allow: &'static str) -> Self {
        Reply {
            allow: Some(allow),
            ..Reply::text(405, "method not allowed")
        }
    }

    /// The response to `request` (no body for `HEAD`); `close` says
    /// `Connection: close`, and an HTTP/1.0 request kept alive gets
    /// `Connection: keep-alive`.
    fn write(&self, version: Version, request: &Request, close: bool, out: &mut Vec<u8>) {
        let connection = if close {
            Some("close")
        } else if request.minor == 0 {
            Some("keep-alive")
        } else {
            None
        };
        self.write_head(version, connection, out);
        if request.method != "HEAD" {
            out.extend_from_slice(&self.body);
        }
    }

    /// The response to a request that could not be read: then the close.
    fn write_rejection(&self, version: Version, out: &mut Vec<u8>) {
        self.write_head(version, Some("close"), out);
        out.extend_from_slice(&self.body);
    }

    fn write_head(&self, version: Version, connection: Option<&str>, out: &mut Vec<u8>) {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nServer: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\n",
            self.status,
            reason(self.status),
            version.server(),
            self.body.len()
        );
        if let Some(allow) = self.allow {
            head += &format!("Allow: {allow}\r\n");
        }
        if let Some(connection) = connection {
            head += &format!("Connection: {connection}\r\n");
        }
        head += "\r\n";
        out.extend_from_slice(head.as_bytes());
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// One complete request, borrowed from the connection's input.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target, as sent (starts with `/`).
    pub target: &'a [u8],
    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor: u8,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    pub body: &'a [u8],
    /// The whole request's length in the input.
    pub len: usize,
}

impl Request<'_> {
    /// The target without its query string.
    pub fn path(&self) -> &[u8] {
        let end = self
            .target
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(self.target.len());
        &self.target[..end]
    }
}

/// What [`parse`] found at the start of a connection's input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole request.
    Request(Request<'a>),
    /// The start of one; more bytes are needed. `expects_continue`: the
    /// headers are in, asked for `100 Continue`, and no byte of the body is.
    Incomplete { expects_continue: bool },
    /// A request that gets `status` (`why` in the body), then the close.
    Rejected { status: u16, why: &'static str },
}

fn reject<'a>(status: u16, why: &'static str) -> Parsed<'a> {
    Parsed::Rejected { status, why }
}

/// A `tchar` of RFC 9110: what a method or a header name is made of.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_token_char(b))
}

/// Parses the first request in `input`. Lines end in CRLF or a bare LF;
/// empty lines before the request line are skipped (RFC 9112, 2.2).
pub fn parse(input: &[u8]) -> Parsed<'_> {
    let mut at = 0;
    // (method, target, minor), once the request line is in.
    let mut start: Option<(&str, &[u8], u8)> = None;
    let mut content_length: Option<usize> = None;
    let (mut close, mut keep_alive, mut hosts, mut expects_continue) = (false, false, 0, false);
    let head_end = loop {
        let Some(newline) = input[at..].iter().position(|&b| b == b'\n') else {
            return if input.len() > MAX_HEAD {
                reject(400, "request line and headers too long")
            } else {
                Parsed::Incomplete {
                    expects_continue: false,
                }
            };
        };
        let end = at + newline + 1;
        if end > MAX_HEAD {
            return reject(400, "request line and headers too long");
        }
        let line = &input[at..at + newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at = end;
        match start {
            None if line.is_empty() => {}
            None => match request_line(line) {
                Ok(parts) => start = Some(parts),
                Err(rejected) => return rejected,
            },
            Some(_) if line.is_empty() => break end,
            Some(_) => {
                if line[0] == b' ' || line[0] == b'\t' {
                    return reject(400, "obsolete header line folding");
                }
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    return reject(400, "header line without a colon");
                };
                let name = &line[..colon];
                if !is_token(name) {
                    return reject(400, "malformed header name");
                }
                let value = line[colon + 1..].trim_ascii();
                if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
                    return reject(400, "control character in a header value");
                }
                let name = String::from_utf8_lossy(name).to_ascii_lowercase();
                match name.as_str() {
                    "content-length" => {
                        if value.is_empty()
                            || value.len() > 19
                            || !value.iter().all(u8::is_ascii_digit)
                        {
                            return reject(400, "malformed Content-Length");
                        }
                        // At most 19 digits: fits in a u64.
                        let n: u64 = std::str::from_utf8(value)
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(u64::MAX);
                        if content_length.is_some_and(|m| m as u64 != n) {
                            return reject(400, "conflicting Content-Length headers");
                        }
                        if n > MAX_BODY as u64 {
                            return reject(413, "body larger than 1 MiB");
                        }
                        content_length = Some(n as usize);
                    }
                    "transfer-encoding" => {
                        return reject(501, "Transfer-Encoding is not supported");
                    }
                    "host" => hosts += 1,
                    "connection" => {
                        for option in value.split(|&b| b == b',') {
                            let option = option.trim_ascii();
                            close |= option.eq_ignore_ascii_case(b"close");
                            keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                        }
                    }
                    "expect" => expects_continue = value.eq_ignore_ascii_case(b"100-continue"),
                    _ => {}
                }
            }
        }
    };
    let Some((method, target, minor)) = start else {
        unreachable!("the head ends only after a request line");
    };
    if minor == 1 && hosts != 1 {
        return reject(400, "an HTTP/1.1 request needs one Host header");
    }
    let body_len = content_length.unwrap_or(0);
    let len = head_end + body_len;
    if input.len() < len {
        return Parsed::Incomplete {
            expects_continue: expects_continue && minor == 1 && input.len() == head_end,
        };
    }
    Parsed::Request(Request {
        method,
        target,
        minor,
        keep_alive: !close && (minor == 1 || keep_alive),
        content_length,
        body: &input[head_end..len],
        len,
    })
}

/// `METHOD SP TARGET SP HTTP/1.x`, the target in origin form.
fn request_line(line: &[u8]) -> Result<(&str, &[u8], u8), Parsed<'static>> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(400, "malformed request line"));
    };
    if !is_token(method) {
        return Err(reject(400, "malformed method"));
    }
    if target.first() != Some(&b'/') || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(reject(400, "malformed request target"));
    }
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(reject(505, "only HTTP/1.0 and HTTP/1.1"));
        }
        _ => return Err(reject(400, "malformed HTTP version")),
    };
    // A token is ASCII.
    let method = std::str::from_utf8(method).map_err(|_| reject(400, "malformed method"))?;
    Ok((method, target, minor))
}

// The parser is plain Rust: these run natively with `cargo test -p
// http-service --target x86_64-unknown-linux-gnu` (or the host's triple)
// from `guest-examples/rust`; the store needs a host (memory files), and the
// service is tested with wrk under `fdbox serve` by the root crate's
// `tests/http.rs`.
#[cfg(test)]
mod tests {
    use super::*;

    fn request(parsed: Parsed<'_>) -> Request<'_> {
        match parsed {
            Parsed::Request(r) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn rejected(parsed: Parsed<'_>) -> u16 {
        match parsed {
            Parsed::Rejected { status, .. } => status,
            other => panic!("not rejected: {other:?}"),
        }
    }

    const INCOMPLETE: Parsed<'static> = Parsed::Incomplete {
        expects_continue: false,
    };

    #[test]
    fn requests_split_anywhere_wait() {
        let post = b"POST /kv/a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let r = request(parse(post));
        assert_eq!(
            (r.method, r.path(), r.body, r.len, r.keep_alive),
            ("POST", &b"/kv/a"[..], &b"hello"[..], post.len(), true)
        );
        for cut in 0..post.len() {
            assert_eq!(parse(&post[..cut]), INCOMPLETE, "cut at {cut}");
        }
        // Pipelined: the first only.
        let two = [&post[..], b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"].concat();
        assert_eq!(request(parse(&two)).len, post.len());
        // Bare LFs, and empty lines before the request line.
        let bare = b"\r\n\nGET /count HTTP/1.0\nconnection: Keep-Alive\n\n";
        let r = request(parse(bare));
        assert_eq!((r.minor, r.keep_alive, r.len), (0, true, bare.len()));
    }

    #[test]
    fn connection_options() {
        let keep = |text: &[u8]| request(parse(text)).keep_alive;
        assert!(keep(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!keep(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(!keep(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te, Close\r\n\r\n"
        ));
        assert!(!keep(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(keep(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn malformed_requests_are_rejected() {
        for bad in [
            &b"PING\r\n"[..],
            b"GET /\r\n",
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/1.1 x\r\n",
            b"G(T / HTTP/1.1\r\n",
            b"GET x HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert_eq!(
                rejected(parse(bad)),
                400,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Said as soon as the line is in, without waiting for the rest.
        assert_eq!(rejected(parse(b"PING\n")), 400);
        assert_eq!(rejected(parse(b"GET / HTTP/2.0\r\n")), 505);
        assert_eq!(
            rejected(parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n")),
            501
        );
        assert_eq!(
            rejected(parse(b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n")),
            413
        );
    }

    #[test]
    fn what_a_connection_makes_it_keep_is_bounded() {
        let long = [&b"GET /"[..], &vec![b'a'; MAX_HEAD]].concat();
        assert_eq!(rejected(parse(&long)), 400);
        assert_eq!(parse(&long[..MAX_HEAD]), INCOMPLETE);
        let mut head = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        while head.len() < MAX_HEAD {
            head.extend_from_slice(b"X-Filler: 0123456789\r\n");
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(rejected(parse(&head)), 400);
        let post = b"POST /kv/k HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n";
        assert_eq!(parse(post), INCOMPLETE);
    }

    #[test]
    fn continue_is_asked_for_once_the_headers_are_in() {
        let post =
            b"POST /kv/k HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            parse(post),
            Parsed::Incomplete {
                expects_continue: true
            }
        );
        assert_eq!(parse(&[&post[..], b"a"].concat()), INCOMPLETE);
        assert_eq!(request(parse(&[&post[..], b"ab"].concat())).body, b"ab");
    }
}
