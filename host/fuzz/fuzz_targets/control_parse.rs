//! `fdbox serve`'s control protocol on arbitrary bytes: the request and
//! reply parsers must never panic, and whatever they accept must encode back
//! to the very same bytes (one encoding per line, so what the service acts
//! on is exactly what the client meant).

#![no_main]

use fdbox_host::control::{Reply, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::parse(data) {
        let bytes = request.encode().expect("a parsed request encodes");
        assert_eq!(bytes, data, "a request parsed from bytes re-encodes to them");
    }
    if let Ok(reply) = Reply::parse(data) {
        assert_eq!(reply.encode(), data, "a reply parsed from bytes re-encodes to them");
    }
});
