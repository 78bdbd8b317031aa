//! The holder daemon's frame decoder on arbitrary bytes: it must never panic,
//! and whatever it accepts must encode back to the very same bytes (one
//! encoding per frame, so nothing ambiguous reaches the daemon's logic).
//!
//! The first input byte is the number of fds that came with the frame.

#![no_main]

use fdbox_host::device::daemon::wire::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&fds, bytes)) = data.split_first() else {
        return;
    };
    let mut out = Vec::new();
    if let Ok(frame) = Frame::decode_request(bytes, fds as usize) {
        frame.encode(&mut out);
        assert_eq!(out, bytes, "a request decoded from bytes re-encodes to them");
    }
    if let Ok(frame) = Frame::decode_reply(bytes) {
        frame.encode(&mut out);
        assert_eq!(out, bytes, "a reply decoded from bytes re-encodes to them");
    }
});
