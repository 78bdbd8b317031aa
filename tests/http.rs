//! The HTTP service (`guest-examples/rust/http-service`) under a client
//! nobody here wrote: Debian's `wrk` (installed by
//! `guest-examples/toolchains.sh`).
//!
//! `wrk -t2 -c50 --latency` runs a Lua script that asks `GET /count` over and
//! over while the service is upgraded v1 -> v2 -> v1 ... ten times and
//! restarted once in a new host process on the holder daemon. wrk must see
//! no socket error (connect, read, write, timeout: its `Socket errors:`
//! line, printed only when one is not 0) and no `Non-2xx or 3xx responses`,
//! and the counter, kept in the service's boxed memory file, must then equal
//! exactly the requests wrk sent plus the test's own: wrk counts the
//! responses it read until it stops, not the requests still in flight then,
//! which the service does answer, so the script counts the requests it makes
//! (see [`LUA`]).
//!
//! Meanwhile, on connections of its own, the test checks what wrk does not:
//! a request sent half before an upgrade and half after, on a kept-alive
//! connection, gets its response (another one across the restart); a
//! `POST /kv/KEY` survives upgrades and the restart; `Server:
//! fdbox-http-v2` and `DELETE /kv/KEY` are v2's only; `Connection: close`
//! and a malformed request (400) close the connection. A second test sends
//! what a server must refuse, and checks the status, the close, and that the
//! service still answers.
//!
//! Every process is owned by a `load::serve::Proc`, killed and reaped on
//! every path; everything is on loopback.

#[path = "load/mod.rs"]
mod load;

use fdbox_guest_artifacts::{HTTP_V1, HTTP_V2};
use load::covered;
use load::serve::{Guest, Proc, Service, Step, upgrades_and_a_restart};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// wrk's script. Each thread has a Lua state of its own: `request()`
/// counts in it the requests the thread makes, and `done()` (in the main
/// state, once the threads have stopped) sums them through the threads
/// `setup()` saw. wrk 4.1 calls the first thread's `request()` once more
/// than it sends: `main` checks that the script makes a valid request
/// (`script_verify_request` on that thread's state) before the thread
/// starts. [`sent_by_wrk`] takes that one off.
const LUA: &str = r#"-- Written by fdbox's tests/http.rs.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   calls = 0
end

function request()
   calls = calls + 1
   return wrk.format("GET", "/count")
end

function done(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads) do
      total = total + thread:get("calls")
   end
   io.write(string.format("fdbox: request() calls %d\n", total))
end
"#;

/// The longest wrk may run: the test stops it (SIGINT) once the upgrades
/// and the restart are done.
const WRK_LIMIT: &str = "60s";
/// wrk's connections.
const CONNECTIONS: u64 = 50;

/// A response as read by [`Http`].
#[derive(Debug)]
struct Response {
    status: u16,
    /// Names lowercase.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection.
struct Http {
    reader: BufReader<TcpStream>,
}

impl Http {
    fn connect(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Http {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("send a request");
    }

    /// Reads one response (its body by `Content-Length`, which every
    /// response must have).
    fn response(&mut self) -> Response {
        let mut response = self.response_without_body();
        let length: usize = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length in {response:?}"));
        response.body = vec![0; length];
        self.reader
            .read_exact(&mut response.body)
            .expect("the response body");
        response
    }

    /// Reads the status line and the headers of a response (to `HEAD`:
    /// all there is).
    fn response_without_body(&mut self) -> Response {
        let line = self.line();
        let mut parts = line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("header line {line:?}"));
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        Response {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// A line, which must end in CRLF, without it.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a response line");
        line.strip_suffix("\r\n")
            .unwrap_or_else(|| panic!("line {line:?} does not end in CRLF"))
            .to_string()
    }

    /// Sends `method path` (HTTP/1.1, `Host`, `extra` header lines, the
    /// body with its `Content-Length`) and reads the response.
    fn ask(&mut self, method: &str, path: &str, extra: &str, body: Option<&str>) -> Response {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: fdbox\r\n{extra}");
        if let Some(body) = body {
            request += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
        } else {
            request += "\r\n";
        }
        self.send(request.as_bytes());
        self.response()
    }

    /// Whether the service closes the connection (end of file, or a reset)
    /// within a few seconds, with nothing more to read.
    fn closed(&mut self) -> bool {
        let mut byte = [0];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
        }
    }
}

/// `method path` on a new connection.
fn ask(service: &Service, method: &str, path: &str, body: Option<&str>) -> Response {
    Http::connect(service.addr).ask(method, path, "", body)
}

/// The counter after one more `GET /count`.
fn count(http: &mut Http) -> u64 {
    let response = http.ask("GET", "/count", "", None);
    assert_eq!(response.status, 200, "{response:?}");
    response
        .text()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("/count answered {response:?}"))
}

/// Fails, saying how to install it, if `wrk` is not there.
fn require_wrk() {
    if Command::new("wrk").arg("-v").output().is_err() {
        panic!(
            "wrk is not installed: run guest-examples/toolchains.sh \
             (or apt-get install wrk)"
        );
    }
}

/// What a finished wrk run printed.
struct WrkReport {
    output: String,
}

impl WrkReport {
    /// The figure before `label` on the line that has it (`N requests in`).
    fn line(&self, label: &str) -> Option<&str> {
        self.output.lines().find(|l| l.contains(label))
    }

    /// Responses wrk read: `N requests in ...`.
    fn completed(&self) -> u64 {
        self.line(" requests in ")
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no `requests in` line in wrk's output:\n{}", self.output))
    }

    /// The requests wrk's threads made, from the script's `done()`.
    fn calls(&self) -> u64 {
        self.line("fdbox: request() calls ")
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("the script's done() said nothing:\n{}", self.output))
    }

    /// A latency percentile line (`50%`, `99%`) of `--latency`.
    fn percentile(&self, p: &str) -> &str {
        self.output
            .lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next()? == p).then(|| words.next())?
            })
            .unwrap_or("?")
    }
}

/// The requests wrk sent: the script's `request()` calls less wrk's one
/// check of the first thread's request ([`LUA`]).
fn sent_by_wrk(report: &WrkReport) -> u64 {
    report.calls() - 1
}

#[test]
fn wrk_through_ten_upgrades_and_a_restart_sees_no_error() {
    let began = Instant::now();
    require_wrk();
    let mut service = Service::start_guest("http-wrk", HTTP_V1, Guest::Http, &[], None);
    // The test's own `GET /count`s, to add to wrk's.
    let mut own = 0;

    let root = ask(&service, "GET", "/", None);
    assert_eq!(
        (root.status, root.text().as_str()),
        (200, "fdbox http-service http-v1\n")
    );
    assert_eq!(root.header("server"), Some("fdbox-http-v1"));
    assert_eq!(root.header("connection"), None, "keep-alive is the default");

    // A kept-alive connection: a key set and read back, then a request
    // sent in part now and finished after the first upgrade; the next one is
    // finished after the restart.
    let mut keep = Http::connect(service.addr);
    let stored = keep.ask("POST", "/kv/greeting", "", Some("hello across upgrades"));
    assert_eq!((stored.status, stored.text().as_str()), (200, "stored\n"));
    let read = keep.ask("GET", "/kv/greeting", "", None);
    assert_eq!(read.text(), "hello across upgrades");
    let first = b"GET /count HTTP/1.1\r\nHost: fdbox\r\n\r\n";
    let second =
        b"POST /kv/restart HTTP/1.1\r\nHost: fdbox\r\nContent-Length: 16\r\n\r\nacross-a-restart";
    let second_cut = second.len() - 8;
    keep.send(&first[..22]);

    let script = service.dir.join("count.lua");
    std::fs::write(&script, LUA).unwrap();
    let log = service.dir.join("wrk.log");
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c", &CONNECTIONS.to_string(), "-d", WRK_LIMIT])
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{}/", service.addr));
    let wrk_started = Instant::now();
    let mut wrk = Proc::spawn("wrk", cmd, &log);
    std::thread::sleep(Duration::from_millis(1000));

    let windows = upgrades_and_a_restart(
        &mut service,
        HTTP_V1,
        HTTP_V2,
        Duration::from_millis(500),
        |service, step| {
            let (v2, what) = match step {
                Step::Upgraded { to_v2, index, .. } => (*to_v2, format!("upgrade {index}")),
                Step::Restarted { .. } => (false, "the restart".to_string()),
            };
            let (server, name) = if v2 {
                ("fdbox-http-v2", "http-v2")
            } else {
                ("fdbox-http-v1", "http-v1")
            };
            let root = ask(service, "GET", "/", None);
            assert_eq!(root.header("server"), Some(server), "after {what}");
            assert_eq!(root.text(), format!("fdbox http-service {name}\n"));
            // DELETE is v2's.
            let delete = ask(service, "DELETE", "/kv/absent", None);
            if v2 {
                assert_eq!(
                    (delete.status, delete.text().as_str()),
                    (404, "no such key\n")
                );
            } else {
                assert_eq!(delete.status, 405, "{delete:?}");
                assert_eq!(delete.header("allow"), Some("GET, HEAD, POST"));
            }
            match step {
                Step::Upgraded { index: 0, .. } => {
                    // The rest of the request cut before the upgrade.
                    keep.send(&first[22..]);
                    let counted = keep.response();
                    assert_eq!(counted.status, 200, "{counted:?}");
                    assert_eq!(counted.header("server"), Some("fdbox-http-v2"));
                    own += 1;
                    // A key set in v2, and one deleted.
                    assert_eq!(
                        ask(service, "POST", "/kv/v2", Some("set by v2")).status,
                        200
                    );
                    assert_eq!(ask(service, "POST", "/kv/gone", Some("x")).status, 200);
                    let deleted = ask(service, "DELETE", "/kv/gone", None);
                    assert_eq!(
                        (deleted.status, deleted.text().as_str()),
                        (200, "deleted\n")
                    );
                    assert_eq!(ask(service, "GET", "/kv/gone", None).status, 404);
                }
                Step::Upgraded { index: 3, .. } => {
                    // `Connection: close`: the response, then the close.
                    let mut http = Http::connect(service.addr);
                    let closing = http.ask("GET", "/", "Connection: close\r\n", None);
                    assert_eq!(closing.status, 200);
                    assert_eq!(closing.header("connection"), Some("close"));
                    assert!(http.closed(), "Connection: close left it open");
                }
                Step::Upgraded { index: 5, .. } => {
                    // A malformed request: 400, then the close.
                    let mut http = Http::connect(service.addr);
                    http.send(b"GET / HTTP/1.1 extra\r\nHost: fdbox\r\n\r\n");
                    let bad = http.response();
                    assert_eq!(bad.status, 400, "{bad:?}");
                    assert_eq!(bad.header("connection"), Some("close"));
                    assert!(http.closed(), "a malformed request left it open");
                }
                Step::Upgraded { index: 9, .. } => {
                    // Cut in its body, finished after the restart.
                    keep.send(&second[..second_cut]);
                }
                Step::Upgraded { .. } => {}
                Step::Restarted { .. } => {
                    keep.send(&second[second_cut..]);
                    let stored = keep.response();
                    assert_eq!((stored.status, stored.text().as_str()), (200, "stored\n"));
                    assert_eq!(stored.header("server"), Some("fdbox-http-v1"));
                }
            }
        },
    );

    // Stop wrk (it reports and runs `done()` on SIGINT) and wait for it.
    let interrupted = Command::new("kill")
        .args(["-INT", &wrk.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(interrupted.success(), "kill -INT wrk failed");
    let status = wrk
        .wait_timeout(Duration::from_secs(30))
        .expect("wrk did not stop within 30 s of SIGINT");
    let wrk_ended = Instant::now();
    let report = WrkReport {
        output: std::fs::read_to_string(&log).unwrap_or_default(),
    };
    eprintln!("{}", report.output);
    assert!(
        status.success(),
        "wrk exited with {status}:\n{}",
        report.output
    );

    // Each upgrade and the restart happened while wrk ran.
    for window in &windows {
        assert!(
            covered(&[(wrk_started, wrk_ended)], window.from, window.to),
            "{} happened while wrk was not running",
            window.what
        );
    }
    assert!(
        report.line("Socket errors:").is_none(),
        "wrk saw socket errors:\n{}\n{}",
        report.output,
        service.logs()
    );
    assert!(
        report.line("Non-2xx or 3xx responses").is_none(),
        "wrk got error responses:\n{}\n{}",
        report.output,
        service.logs()
    );
    let (completed, sent) = (report.completed(), sent_by_wrk(&report));
    assert!(
        completed > 0,
        "wrk completed no request:\n{}",
        report.output
    );
    // Each connection has at most one request in flight when wrk stops.
    assert!(
        (completed..=completed + CONNECTIONS).contains(&sent),
        "wrk sent {sent} requests and read {completed} responses"
    );

    // Every request wrk sent was counted, each once, and the test's own.
    // wrk has exited: what it sent last is in the service's sockets and is
    // read within moments.
    std::thread::sleep(Duration::from_millis(300));
    let mut last = Http::connect(service.addr);
    let final_count = count(&mut last);
    own += 1;
    assert_eq!(
        final_count,
        sent + own,
        "the counter after wrk sent {sent} requests ({completed} read) and the test {own}"
    );

    // The keys set before the first upgrade, in v2, and across the restart.
    assert_eq!(
        keep.ask("GET", "/kv/greeting", "", None).text(),
        "hello across upgrades"
    );
    assert_eq!(
        keep.ask("GET", "/kv/restart", "", None).text(),
        "across-a-restart"
    );
    assert_eq!(ask(&service, "GET", "/kv/v2", None).text(), "set by v2");
    let handovers: Vec<String> = windows
        .iter()
        .map(|w| format!("{:.0}", (w.to - w.from).as_secs_f64() * 1000.0))
        .collect();
    eprintln!(
        "wrk: {completed} responses read, {sent} requests sent, counter {final_count}; \
         latency p50 {} p99 {}; the upgrade and restart commands took {} ms; the test took {:?}",
        report.percentile("50%"),
        report.percentile("99%"),
        handovers.join(" "),
        began.elapsed()
    );
    if let Err(e) = service.stop() {
        panic!("{e}\n{}", service.logs());
    }
}

#[test]
fn what_a_server_must_refuse_gets_its_status_and_the_service_stays_up() {
    let mut service = Service::start_guest("http-refuse", HTTP_V1, Guest::Http, &[], None);

    // Each: the request, its status; the connection is then closed.
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: fdbox\r\n\r\n", "a".repeat(9000));
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: fdbox\r\n{}\r\n",
        "X-Filler: 0123456789abcdef\r\n".repeat(400)
    );
    let closing: Vec<(&str, &[u8], u16)> = vec![
        ("not HTTP", b"PING\r\n", 400),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two spaces", b"GET  / HTTP/1.1\r\nHost: fdbox\r\n\r\n", 400),
        (
            "header without colon",
            b"GET / HTTP/1.1\r\nHost: fdbox\r\nnocolon\r\n\r\n",
            400,
        ),
        (
            "bad Content-Length",
            b"POST /kv/k HTTP/1.1\r\nHost: fdbox\r\nContent-Length: 12x\r\n\r\n",
            400,
        ),
        (
            "conflicting Content-Length",
            b"POST /kv/k HTTP/1.1\r\nHost: fdbox\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            400,
        ),
        ("target of 9000 bytes", long_target.as_bytes(), 400),
        ("11 KiB of headers", many_headers.as_bytes(), 400),
        (
            "a body of 2 MiB",
            b"POST /kv/k HTTP/1.1\r\nHost: fdbox\r\nContent-Length: 2097152\r\n\r\n",
            413,
        ),
        (
            "chunked",
            b"POST /kv/k HTTP/1.1\r\nHost: fdbox\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\n\r\n", 505),
        ("HTTP/1.0 without keep-alive", b"GET / HTTP/1.0\r\n\r\n", 200),
    ];
    for (what, request, status) in closing {
        let mut http = Http::connect(service.addr);
        http.send(request);
        let response = http.response();
        assert_eq!(response.status, status, "{what}: {response:?}");
        assert_eq!(response.header("connection"), Some("close"), "{what}");
        assert!(http.closed(), "{what}: the connection stayed open");
    }

    // Each kept open: the status, and the next request on it is answered.
    let mut http = Http::connect(service.addr);
    let big = "v".repeat(100_000);
    let cases: [(&str, &str, Option<&str>, u16); 6] = [
        ("GET", "/nowhere", None, 404),
        ("POST", "/", Some("x"), 405),
        ("POST", "/count", None, 405),
        ("GET", "/kv/", None, 404),
        ("GET", "/kv/missing", None, 404),
        ("POST", "/kv/big", Some(&big), 200),
    ];
    for (method, path, body, status) in cases {
        let response = http.ask(method, path, "", body);
        assert_eq!(response.status, status, "{method} {path}: {response:?}");
        assert_eq!(response.header("connection"), None, "{method} {path}");
    }
    assert_eq!(
        http.ask("POST", "/", "", None).header("allow"),
        Some("GET, HEAD")
    );
    assert_eq!(http.ask("GET", "/kv/big", "", None).body.len(), 100_000);
    // No Content-Length: no body (RFC 9112), so 411, and the connection
    // goes on.
    http.send(b"POST /kv/k HTTP/1.1\r\nHost: fdbox\r\n\r\n");
    assert_eq!(http.response().status, 411);
    // HEAD: the headers of GET, no body.
    http.send(b"HEAD /kv/big HTTP/1.1\r\nHost: fdbox\r\n\r\n");
    let head = http.response_without_body();
    assert_eq!(head.header("content-length"), Some("100000"));

    // Pipelined, answered in order; a query string is not the path.
    let before = count(&mut http);
    http.send(
        b"GET /count HTTP/1.1\r\nHost: fdbox\r\n\r\nPOST /kv/p?x=1 HTTP/1.1\r\nHost: fdbox\r\n\
          Content-Length: 3\r\n\r\nabcGET /kv/p HTTP/1.1\r\nHost: fdbox\r\n\r\nGET /count HTTP/1.1\r\nHost: fdbox\r\n\r\n",
    );
    assert_eq!(http.response().text(), format!("{}\n", before + 1));
    assert_eq!(http.response().text(), "stored\n");
    assert_eq!(http.response().text(), "abc");
    assert_eq!(http.response().text(), format!("{}\n", before + 2));
    // One byte at a time.
    for &byte in b"GET /kv/p HTTP/1.1\r\nHost: fdbox\r\n\r\n".iter() {
        http.send(&[byte]);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(http.response().text(), "abc");
    // HTTP/1.0 asking for keep-alive gets it.
    http.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(http.response().header("connection"), Some("keep-alive"));
    http.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(http.response().status, 200);

    // After all that, the service still answers, and keeps what it had.
    service.wait_answering(Duration::from_secs(10));
    assert_eq!(ask(&service, "GET", "/kv/p", None).text(), "abc");
    if let Err(e) = service.stop() {
        panic!("{e}\n{}", service.logs());
    }
}
