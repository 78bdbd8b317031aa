//! `kv-broken`: a release of the kv service that traps as it starts, before
//! it touches the box or calls `lifecycle.ready`: an upgrade to it must roll
//! back, with the running version still serving and its box untouched.
//!
//! It links the whole service all the same, so it imports what `kv-v1` does
//! (`fdbox:fdbox/lifecycle`, `sockets`, ...): a host that checks a new
//! component's world before it starts it accepts this one, and the failure
//! it sees is the trap.

use std::hint::black_box;

fn main() -> std::process::ExitCode {
    // Never true, but the optimizer cannot know: the service and its imports
    // stay in the component.
    if black_box(false) {
        return kv_service::main(kv_service::Version::V1);
    }
    // A panic is a trap (`unreachable`) on wasm32-wasip2.
    panic!("kv-broken: this release is broken on purpose");
}
