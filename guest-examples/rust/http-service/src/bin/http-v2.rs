//! `http-v2`: version 2 of the HTTP service (`Server: fdbox-http-v2`, adds
//! `DELETE /kv/KEY`); see the `http_service` library for the protocol, the
//! state and the hand-over.

fn main() -> std::process::ExitCode {
    http_service::main(http_service::Version::V2)
}
