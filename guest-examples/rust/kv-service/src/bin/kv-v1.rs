//! `kv-v1`: version 1 of the kv service (`VERSION 1`, no `DEL`); see the
//! `kv_service` library for the protocol and the hand-over.

fn main() -> std::process::ExitCode {
    kv_service::main(kv_service::Version::V1)
}
