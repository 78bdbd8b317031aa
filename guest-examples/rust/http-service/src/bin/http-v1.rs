//! `http-v1`: version 1 of the HTTP service (`Server: fdbox-http-v1`); see
//! the `http_service` library for the protocol, the state and the hand-over.

fn main() -> std::process::ExitCode {
    http_service::main(http_service::Version::V1)
}
