//! `kv-v2`: version 2 of the kv service (`VERSION 2`, adds `DEL`); see the
//! `kv_service` library for the protocol and the hand-over.

fn main() -> std::process::ExitCode {
    kv_service::main(kv_service::Version::V2)
}
